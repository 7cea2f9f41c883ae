//! The embedded store: redb for metadata, files for bulk data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plasma_protocol::{ExperienceBatch, TaskSpec, Transition};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::fs::{read_optional, write_atomic};
use super::{Result, Store, StoreError};
use crate::records::{
    EventKind, JobEvent, JobKind, JobRecord, JobStatus, PacketRecord, TaskRecord, now_secs,
};
use crate::wire;

const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const JOB_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("job_events");
const PACKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("packets");
const AGENT_PACKETS: TableDefinition<&str, &str> = TableDefinition::new("agent_packets");

fn dberr<E: Into<redb::Error>>(e: E) -> StoreError {
    StoreError::Db(e.into().to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("record: {e}")))
}

fn from_json<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// redb metadata plus a data directory (see the module docs of `storage`).
pub struct EmbeddedStore {
    root: PathBuf,
    db: Database,
    /// Serializes experience appends (chunk numbering).
    append: Mutex<()>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| StoreError::Io {
            context: format!("create {}", root.display()),
            source,
        })?;
        let db = Database::create(root.join("meta.redb")).map_err(dberr)?;
        let tx = db.begin_write().map_err(dberr)?;
        tx.open_table(TASKS).map_err(dberr)?;
        tx.open_table(JOBS).map_err(dberr)?;
        tx.open_table(JOB_EVENTS).map_err(dberr)?;
        tx.open_table(PACKETS).map_err(dberr)?;
        tx.open_table(AGENT_PACKETS).map_err(dberr)?;
        tx.commit().map_err(dberr)?;
        Ok(EmbeddedStore {
            root: root.to_owned(),
            db,
            append: Mutex::new(()),
        })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(table).map_err(dberr)?;
        match t.get(key).map_err(dberr)? {
            Some(v) => Ok(Some(from_json(table.name(), v.value())?)),
            None => Ok(None),
        }
    }

    fn all<T: DeserializeOwned>(&self, table: TableDefinition<&str, &[u8]>) -> Result<Vec<T>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(table).map_err(dberr)?;
        let mut out = vec![];
        for item in t.iter().map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            out.push(from_json(table.name(), v.value())?);
        }
        Ok(out)
    }

    fn put(&self, table: TableDefinition<&str, &[u8]>, key: &str, bytes: &[u8]) -> Result<()> {
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(table).map_err(dberr)?;
            t.insert(key, bytes).map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    fn chunk_path(&self, task: &str, chunk: u64) -> PathBuf {
        self.root
            .join("experience")
            .join(task)
            .join(format!("{chunk:010}.pxb"))
    }

    fn packet_path(&self, id: &str) -> Option<PathBuf> {
        // Ids are SHA-256 hex digests; anything else names no file.
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let id = id.to_ascii_lowercase();
        Some(
            self.root
                .join("packets")
                .join(&id[..2])
                .join(format!("{id}.pkt")),
        )
    }
}

impl Store for EmbeddedStore {
    fn get_task(&self, name: &str) -> Result<Option<TaskRecord>> {
        self.get(TASKS, name)
    }

    fn put_task(&self, task: &TaskRecord) -> Result<()> {
        self.put(TASKS, &task.name, &to_json(task)?)
    }

    fn list_tasks(&self) -> Result<Vec<TaskRecord>> {
        self.all(TASKS)
    }

    fn append_experience(
        &self,
        spec: &TaskSpec,
        builtin: bool,
        batch: &ExperienceBatch,
    ) -> Result<TaskRecord> {
        let _guard = self
            .append
            .lock()
            .map_err(|_| StoreError::Db("append lock poisoned".into()))?;
        let now = now_secs();
        let mut task = self.get_task(&spec.name)?.unwrap_or_else(|| TaskRecord {
            name: spec.name.clone(),
            spec: spec.clone(),
            builtin,
            transitions: 0,
            chunks: 0,
            agents: vec![],
            base_training: None,
            created_at: now,
            updated_at: now,
        });
        let bytes = wire::encode(batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The chunk file is durable before the record that counts it; a crash in between
        // leaves an uncounted file that the next append overwrites.
        write_atomic(&self.chunk_path(&task.name, task.chunks), &bytes)?;
        task.chunks += 1;
        task.transitions += batch.transitions.len() as u64;
        let mut agents: BTreeSet<String> = task.agents.into_iter().collect();
        agents.insert(batch.agent_id.clone());
        task.agents = agents.into_iter().collect();
        task.updated_at = now;
        self.put_task(&task)?;
        Ok(task)
    }

    fn set_base_training(&self, task: &str, training_id: &str) -> Result<()> {
        let _guard = self
            .append
            .lock()
            .map_err(|_| StoreError::Db("append lock poisoned".into()))?;
        let mut record = self
            .get_task(task)?
            .ok_or_else(|| StoreError::Corrupt(format!("no task {task}")))?;
        record.base_training = Some(training_id.to_owned());
        record.updated_at = now_secs();
        self.put_task(&record)
    }

    fn load_experience(&self, task: &str, max: usize) -> Result<Vec<Transition>> {
        let Some(record) = self.get_task(task)? else {
            return Ok(vec![]);
        };
        // Newest chunks first until `max` transitions are collected.
        let mut chunks = vec![];
        let mut total = 0;
        for chunk in (0..record.chunks).rev() {
            if total >= max {
                break;
            }
            let path = self.chunk_path(task, chunk);
            let bytes = read_optional(&path)?
                .ok_or_else(|| StoreError::Corrupt(format!("missing {}", path.display())))?;
            let batch = wire::decode(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            total += batch.transitions.len();
            chunks.push(batch.transitions);
        }
        let mut out: Vec<Transition> = chunks.into_iter().rev().flatten().collect();
        if out.len() > max {
            out.drain(..out.len() - max);
        }
        Ok(out)
    }

    fn put_job(&self, job: &JobRecord, events: &[JobEvent]) -> Result<()> {
        let job_bytes = to_json(job)?;
        let event_bytes = to_json(&events)?;
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(JOBS).map_err(dberr)?;
            t.insert(job.id.as_str(), job_bytes.as_slice())
                .map_err(dberr)?;
            let mut e = tx.open_table(JOB_EVENTS).map_err(dberr)?;
            e.insert(job.id.as_str(), event_bytes.as_slice())
                .map_err(dberr)?;
        }
        tx.commit().map_err(dberr)
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.get(JOBS, id)
    }

    fn job_events(&self, id: &str) -> Result<Vec<JobEvent>> {
        Ok(self.get(JOB_EVENTS, id)?.unwrap_or_default())
    }

    fn list_jobs(&self, agent: Option<&str>, kind: Option<JobKind>) -> Result<Vec<JobRecord>> {
        let mut jobs: Vec<JobRecord> = self
            .all::<JobRecord>(JOBS)?
            .into_iter()
            .filter(|j| agent.is_none_or(|a| j.agent_id == a) && kind.is_none_or(|k| j.kind == k))
            .collect();
        jobs.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        Ok(jobs)
    }

    fn mark_interrupted(&self) -> Result<Vec<JobRecord>> {
        let mut changed = vec![];
        for mut job in self.all::<JobRecord>(JOBS)? {
            if job.status.is_terminal() {
                continue;
            }
            let mut events = self.job_events(&job.id)?;
            job.status = JobStatus::Interrupted;
            job.finished_at = Some(now_secs());
            job.last_seq += 1;
            events.push(JobEvent {
                seq: job.last_seq,
                job_id: job.id.clone(),
                job_kind: job.kind,
                agent_id: job.agent_id.clone(),
                event: EventKind::Interrupted,
                status: JobStatus::Interrupted,
                phase: job.phase.clone(),
                progress: job.progress,
                metrics: None,
                message: Some("the server stopped while this job was queued or running".into()),
                timestamp: now_secs(),
            });
            self.put_job(&job, &events)?;
            changed.push(job);
        }
        Ok(changed)
    }

    fn put_packet(&self, record: &PacketRecord, bytes: &[u8], latest: bool) -> Result<()> {
        let path = self
            .packet_path(&record.packet_id)
            .ok_or_else(|| StoreError::Corrupt(format!("packet id {:?}", record.packet_id)))?;
        write_atomic(&path, bytes)?;
        let rec = to_json(record)?;
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(PACKETS).map_err(dberr)?;
            t.insert(record.packet_id.as_str(), rec.as_slice())
                .map_err(dberr)?;
            if latest {
                let mut a = tx.open_table(AGENT_PACKETS).map_err(dberr)?;
                a.insert(record.agent_id.as_str(), record.packet_id.as_str())
                    .map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)
    }

    fn get_packet(&self, id: &str) -> Result<Option<PacketRecord>> {
        self.get(PACKETS, &id.to_ascii_lowercase())
    }

    fn packet_bytes(&self, id: &str) -> Result<Option<Vec<u8>>> {
        match self.packet_path(id) {
            Some(p) => read_optional(&p),
            None => Ok(None),
        }
    }

    fn latest_packet_for_agent(&self, agent: &str) -> Result<Option<PacketRecord>> {
        let id = {
            let tx = self.db.begin_read().map_err(dberr)?;
            let t = tx.open_table(AGENT_PACKETS).map_err(dberr)?;
            match t.get(agent).map_err(dberr)? {
                Some(v) => v.value().to_owned(),
                None => return Ok(None),
            }
        };
        self.get_packet(&id)
    }

    fn count_packets(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(PACKETS).map_err(dberr)?;
        t.len().map_err(dberr)
    }

    fn put_blob(&self, key: &str, bytes: &[u8]) -> Result<()> {
        write_atomic(&self.root.join("blobs").join(key), bytes)
    }

    fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        read_optional(&self.root.join("blobs").join(key))
    }

    fn model_root(&self, task: &str) -> PathBuf {
        self.root.join("models").join(task)
    }

    fn signing_key_path(&self) -> PathBuf {
        self.root.join("keys").join("packet-signing.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plasma_protocol::{Action, Space};

    fn spec() -> TaskSpec {
        TaskSpec {
            name: "T-v0".into(),
            observation_space: Space::boxed(vec![-1.0; 2], vec![1.0; 2]).unwrap(),
            action_space: Space::discrete(2).unwrap(),
            max_episode_steps: None,
            termination: None,
        }
    }

    fn batch(n: usize, reward: f64) -> ExperienceBatch {
        ExperienceBatch {
            agent_id: "a".into(),
            task_name: "T-v0".into(),
            transitions: (0..n)
                .map(|i| Transition {
                    obs: vec![i as f32, 0.0],
                    action: Action::Discrete(1),
                    reward,
                    next_obs: vec![0.0, i as f32],
                    terminated: false,
                    truncated: false,
                })
                .collect(),
        }
    }

    #[test]
    fn experience_keeps_the_newest_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.append_experience(&spec(), false, &batch(3, 1.0)).unwrap();
            let t = s.append_experience(&spec(), false, &batch(4, 2.0)).unwrap();
            assert_eq!((t.transitions, t.chunks), (7, 2));
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.load_experience("T-v0", 100).unwrap().len(), 7);
        let newest = s.load_experience("T-v0", 5).unwrap();
        assert_eq!(newest.len(), 5);
        assert_eq!(newest[0].reward, 1.0);
        assert!(newest[1..].iter().all(|t| t.reward == 2.0));
        assert!(s.load_experience("none", 5).unwrap().is_empty());
    }

    #[test]
    fn running_jobs_read_interrupted_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let job = JobRecord {
            id: "j1".into(),
            kind: JobKind::Training,
            agent_id: "a".into(),
            task: "T-v0".into(),
            status: JobStatus::Running,
            phase: None,
            progress: 0.5,
            request: serde_json::json!({}),
            result: None,
            error: None,
            last_seq: 0,
            created_at: 1.0,
            started_at: None,
            finished_at: None,
        };
        EmbeddedStore::open(dir.path())
            .unwrap()
            .put_job(&job, &[])
            .unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.mark_interrupted().unwrap().len(), 1);
        let j = s.get_job("j1").unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Interrupted);
        assert_eq!(s.job_events("j1").unwrap().len(), 1);
        assert!(s.mark_interrupted().unwrap().is_empty());
    }

    #[test]
    fn packet_ids_that_are_not_digests_name_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.packet_bytes("../../etc/passwd").unwrap(), None);
        assert_eq!(s.packet_bytes(&"0".repeat(64)).unwrap(), None);
    }
}
