//! The embedded store: redb for metadata, files for bulk data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plasma_protocol::{ExperienceBatch, TaskSpec};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::fs::{read_optional, write_atomic};
use super::{LoadedExperience, Result, Store, StoreError, retention};
use crate::records::{
    ChunkRecord, DeletionRecord, Deployment, JobEvent, JobKind, JobRecord, PacketRecord,
    TaskRecord, now_secs,
};
use crate::wire;

const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
/// Before events were stored one per row: a job's events as one JSON array (read once, at
/// open, and moved to `EVENT_ROWS`).
const JOB_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("job_events");
/// One row per job event, keyed `<job id>\x01<seq, 20 digits>`: an event costs one small
/// write, not a rewrite of the job's whole history.
const EVENT_ROWS: TableDefinition<&str, &[u8]> = TableDefinition::new("job_event_rows");

fn event_key(job: &str, seq: u64) -> String {
    format!("{job}\u{1}{seq:020}")
}
const PACKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("packets");
const AGENT_PACKETS: TableDefinition<&str, &str> = TableDefinition::new("agent_packets");
/// Provenance of every stored chunk, keyed `<task>\x01<chunk number, 20 digits>`.
const CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("chunks");
/// Agent id → its last reported deployment (JSON).
const DEPLOYMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("deployments");

fn chunk_key(task: &str, chunk: u64) -> String {
    format!("{task}\u{1}{chunk:020}")
}

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
        tx.open_table(CHUNKS).map_err(dberr)?;
        tx.open_table(EVENT_ROWS).map_err(dberr)?;
        tx.open_table(DEPLOYMENTS).map_err(dberr)?;
        tx.commit().map_err(dberr)?;
        let store = EmbeddedStore {
            root: root.to_owned(),
            db,
            append: Mutex::new(()),
        };
        store.index_old_chunks()?;
        store.move_event_arrays()?;
        Ok(store)
    }

    /// Moves event arrays written before events had rows into rows (once: the old table
    /// is emptied in the same transaction).
    fn move_event_arrays(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(dberr)?;
        let moved = {
            let mut old = tx.open_table(JOB_EVENTS).map_err(dberr)?;
            let mut rows = tx.open_table(EVENT_ROWS).map_err(dberr)?;
            let mut ids = vec![];
            for item in old.iter().map_err(dberr)? {
                let (k, v) = item.map_err(dberr)?;
                let events: Vec<JobEvent> = from_json(JOB_EVENTS.name(), v.value())?;
                for ev in &events {
                    rows.insert(
                        event_key(k.value(), ev.seq).as_str(),
                        to_json(ev)?.as_slice(),
                    )
                    .map_err(dberr)?;
                }
                ids.push(k.value().to_owned());
            }
            for id in &ids {
                old.remove(id.as_str()).map_err(dberr)?;
            }
            ids.len()
        };
        tx.commit().map_err(dberr)?;
        if moved > 0 {
            tracing::info!(jobs = moved, "job events moved to one row per event");
        }
        Ok(())
    }

    /// Data directories written before chunks had provenance: indexes their chunks (the
    /// agent id is in each chunk file; the token and the time are unknown) and fills the
    /// task records' per-agent counts. Runs once per task: afterwards `next_chunk` is set.
    fn index_old_chunks(&self) -> Result<()> {
        for mut task in self.list_tasks()? {
            if task.next_chunk >= task.chunks {
                continue;
            }
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut records = Vec::with_capacity(task.chunks as usize);
            for chunk in 0..task.chunks {
                let path = self.chunk_path(&task.name, chunk);
                let bytes = read_optional(&path)?
                    .ok_or_else(|| StoreError::Corrupt(format!("missing {}", path.display())))?;
                let batch = wire::decode(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
                let record = ChunkRecord {
                    task: task.name.clone(),
                    chunk,
                    agent_id: batch.agent_id.clone(),
                    token: None,
                    transitions: batch.transitions.len() as u64,
                    uploaded_at: 0.0,
                };
                *counts.entry(batch.agent_id).or_default() += record.transitions;
                records.push(record);
            }
            task.agent_transitions = counts;
            task.next_chunk = task.chunks;
            // The index and the task's counts in one transaction.
            let tx = self.db.begin_write().map_err(dberr)?;
            {
                let mut chunks = tx.open_table(CHUNKS).map_err(dberr)?;
                for r in &records {
                    chunks
                        .insert(
                            chunk_key(&task.name, r.chunk).as_str(),
                            to_json(r)?.as_slice(),
                        )
                        .map_err(dberr)?;
                }
                let mut tasks = tx.open_table(TASKS).map_err(dberr)?;
                tasks
                    .insert(task.name.as_str(), to_json(&task)?.as_slice())
                    .map_err(dberr)?;
            }
            tx.commit().map_err(dberr)?;
            tracing::info!(task = %task.name, chunks = task.chunks, "indexed the provenance of stored experience");
        }
        Ok(())
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
        token: Option<&str>,
    ) -> Result<TaskRecord> {
        let _guard = self
            .append
            .lock()
            .map_err(|_| StoreError::Db("append lock poisoned".into()))?;
        let now = now_secs();
        let mut task = self
            .get_task(&spec.name)?
            .unwrap_or_else(|| TaskRecord::new(spec.clone(), builtin, now));
        let bytes = wire::encode(batch).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The chunk file is durable before the records that count it; a crash in between
        // leaves an uncounted file that the next append overwrites.
        let chunk = task.next_chunk;
        write_atomic(&self.chunk_path(&task.name, chunk), &bytes)?;
        let n = batch.transitions.len() as u64;
        task.next_chunk += 1;
        task.chunks += 1;
        task.transitions += n;
        *task
            .agent_transitions
            .entry(batch.agent_id.clone())
            .or_default() += n;
        let mut agents: BTreeSet<String> = task.agents.into_iter().collect();
        agents.insert(batch.agent_id.clone());
        task.agents = agents.into_iter().collect();
        task.updated_at = now;
        let record = ChunkRecord {
            task: task.name.clone(),
            chunk,
            agent_id: batch.agent_id.clone(),
            token: token.map(str::to_owned),
            transitions: n,
            uploaded_at: now,
        };
        // The chunk's provenance and the task's counts in one transaction.
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut chunks = tx.open_table(CHUNKS).map_err(dberr)?;
            chunks
                .insert(
                    chunk_key(&task.name, chunk).as_str(),
                    to_json(&record)?.as_slice(),
                )
                .map_err(dberr)?;
            let mut tasks = tx.open_table(TASKS).map_err(dberr)?;
            tasks
                .insert(task.name.as_str(), to_json(&task)?.as_slice())
                .map_err(dberr)?;
        }
        tx.commit().map_err(dberr)?;
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

    fn load_experience(&self, task: &str, max: usize) -> Result<LoadedExperience> {
        let chunks = self.list_chunks(task, None)?;
        let mut out = LoadedExperience::default();
        let agents: BTreeSet<&str> = chunks.iter().map(|c| c.agent_id.as_str()).collect();
        out.agents = agents.iter().map(|a| (*a).to_owned()).collect();
        let by_number: BTreeMap<u64, &ChunkRecord> = chunks.iter().map(|c| (c.chunk, c)).collect();
        for (chunk, take) in retention::retained(&chunks, max) {
            let path = self.chunk_path(task, chunk);
            let bytes = read_optional(&path)?
                .ok_or_else(|| StoreError::Corrupt(format!("missing {}", path.display())))?;
            let batch = wire::decode(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
            let agent = by_number
                .get(&chunk)
                .and_then(|c| out.agents.binary_search(&c.agent_id).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("chunk {chunk} of {task}")))?;
            let skip = batch.transitions.len().saturating_sub(take);
            let taken = batch.transitions.into_iter().skip(skip);
            let before = out.transitions.len();
            out.transitions.extend(taken);
            out.agent_of
                .extend(std::iter::repeat_n(agent, out.transitions.len() - before));
        }
        Ok(out)
    }

    fn list_chunks(&self, task: &str, agent: Option<&str>) -> Result<Vec<ChunkRecord>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let t = tx.open_table(CHUNKS).map_err(dberr)?;
        let (from, to) = (format!("{task}\u{1}"), format!("{task}\u{2}"));
        let mut out = vec![];
        for item in t.range(from.as_str()..to.as_str()).map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            let record: ChunkRecord = from_json(CHUNKS.name(), v.value())?;
            if agent.is_none_or(|a| a == record.agent_id) {
                out.push(record);
            }
        }
        Ok(out)
    }

    fn delete_experience(
        &self,
        task: &str,
        agent: &str,
        by: Option<&str>,
    ) -> Result<Option<DeletionRecord>> {
        let _guard = self
            .append
            .lock()
            .map_err(|_| StoreError::Db("append lock poisoned".into()))?;
        let Some(mut record) = self.get_task(task)? else {
            return Ok(None);
        };
        let chunks = self.list_chunks(task, Some(agent))?;
        if chunks.is_empty() {
            return Ok(None);
        }
        let transitions: u64 = chunks.iter().map(|c| c.transitions).sum();
        let oldest_upload_at = chunks
            .iter()
            .map(|c| c.uploaded_at)
            .fold(f64::INFINITY, f64::min);
        // Packets of policies that may have seen the data: compiled for this task since
        // its oldest deleted chunk arrived, and adapters bound to such a base packet.
        let mut packets: Vec<PacketRecord> = self.all(PACKETS)?;
        // A training job loads its data when it starts.
        let mut tainted = BTreeSet::new();
        for p in packets.iter().filter(|p| p.task == task) {
            let loaded_at = match self.get_job(&p.training_id)? {
                Some(job) => job.started_at.unwrap_or(job.created_at),
                None => p.created_at,
            };
            if loaded_at >= oldest_upload_at {
                tainted.insert(p.packet_id.clone());
            }
        }
        let adapters: Vec<String> = packets
            .iter()
            .filter(|p| {
                p.base_packet_id
                    .as_ref()
                    .is_some_and(|b| tainted.contains(b))
            })
            .map(|p| p.packet_id.clone())
            .collect();
        tainted.extend(adapters);
        let now = now_secs();
        let deletion = DeletionRecord {
            agent_id: agent.to_owned(),
            chunks: chunks.iter().map(|c| c.chunk).collect(),
            transitions,
            oldest_upload_at,
            deleted_at: now,
            by: by.map(str::to_owned),
            tainted_packets: tainted.iter().cloned().collect(),
        };
        record.chunks = record.chunks.saturating_sub(chunks.len() as u64);
        record.transitions = record.transitions.saturating_sub(transitions);
        record.agent_transitions.remove(agent);
        record.agents.retain(|a| a != agent);
        record.deletions.push(deletion.clone());
        record.updated_at = now;
        // Metadata first (the chunks stop counting at once), then the files: a crash in
        // between leaves unreferenced files, never a record naming a missing one.
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut table = tx.open_table(CHUNKS).map_err(dberr)?;
            for c in &chunks {
                table
                    .remove(chunk_key(task, c.chunk).as_str())
                    .map_err(dberr)?;
            }
            let mut tasks = tx.open_table(TASKS).map_err(dberr)?;
            tasks
                .insert(task, to_json(&record)?.as_slice())
                .map_err(dberr)?;
            let mut table = tx.open_table(PACKETS).map_err(dberr)?;
            for p in packets
                .iter_mut()
                .filter(|p| tainted.contains(&p.packet_id))
            {
                p.trained_on_deleted_data = true;
                table
                    .insert(p.packet_id.as_str(), to_json(p)?.as_slice())
                    .map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)?;
        for c in &chunks {
            let path = self.chunk_path(task, c.chunk);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "deleted chunk file not removed");
            }
        }
        Ok(Some(deletion))
    }

    fn put_job(&self, job: &JobRecord, events: &[JobEvent]) -> Result<()> {
        let job_bytes = to_json(job)?;
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(JOBS).map_err(dberr)?;
            t.insert(job.id.as_str(), job_bytes.as_slice())
                .map_err(dberr)?;
            let mut rows = tx.open_table(EVENT_ROWS).map_err(dberr)?;
            let (from, to) = (format!("{}\u{1}", job.id), format!("{}\u{2}", job.id));
            let stale: Vec<String> = rows
                .range(from.as_str()..to.as_str())
                .map_err(dberr)?
                .map(|item| item.map(|(k, _)| k.value().to_owned()).map_err(dberr))
                .collect::<Result<_>>()?;
            for k in stale {
                rows.remove(k.as_str()).map_err(dberr)?;
            }
            for ev in events {
                rows.insert(event_key(&job.id, ev.seq).as_str(), to_json(ev)?.as_slice())
                    .map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)
    }

    fn append_job_event(
        &self,
        job: &JobRecord,
        event: &JobEvent,
        dropped: Option<u64>,
    ) -> Result<()> {
        let job_bytes = to_json(job)?;
        let event_bytes = to_json(event)?;
        let tx = self.db.begin_write().map_err(dberr)?;
        {
            let mut t = tx.open_table(JOBS).map_err(dberr)?;
            t.insert(job.id.as_str(), job_bytes.as_slice())
                .map_err(dberr)?;
            let mut rows = tx.open_table(EVENT_ROWS).map_err(dberr)?;
            rows.insert(
                event_key(&job.id, event.seq).as_str(),
                event_bytes.as_slice(),
            )
            .map_err(dberr)?;
            if let Some(seq) = dropped {
                rows.remove(event_key(&job.id, seq).as_str())
                    .map_err(dberr)?;
            }
        }
        tx.commit().map_err(dberr)
    }

    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.get(JOBS, id)
    }

    fn job_events(&self, id: &str) -> Result<Vec<JobEvent>> {
        let tx = self.db.begin_read().map_err(dberr)?;
        let rows = tx.open_table(EVENT_ROWS).map_err(dberr)?;
        let (from, to) = (format!("{id}\u{1}"), format!("{id}\u{2}"));
        let mut out = vec![];
        for item in rows.range(from.as_str()..to.as_str()).map_err(dberr)? {
            let (_, v) = item.map_err(dberr)?;
            out.push(from_json(EVENT_ROWS.name(), v.value())?);
        }
        Ok(out)
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

    fn unfinished_jobs(&self) -> Result<Vec<(JobRecord, Vec<JobEvent>)>> {
        let mut out = vec![];
        for job in self.all::<JobRecord>(JOBS)? {
            if !job.status.is_terminal() {
                let events = self.job_events(&job.id)?;
                out.push((job, events));
            }
        }
        out.sort_by(|a, b| a.0.created_at.total_cmp(&b.0.created_at));
        Ok(out)
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

    fn list_packets(&self) -> Result<Vec<PacketRecord>> {
        let mut packets: Vec<PacketRecord> = self.all(PACKETS)?;
        packets.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
        Ok(packets)
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

    fn put_deployment(&self, deployment: &Deployment) -> Result<()> {
        self.put(DEPLOYMENTS, &deployment.agent_id, &to_json(deployment)?)
    }

    fn list_deployments(&self) -> Result<Vec<Deployment>> {
        self.all(DEPLOYMENTS)
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
    use plasma_protocol::{Action, Space, Transition};

    use crate::records::JobStatus;

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
        batch_of("a", n, reward)
    }

    fn batch_of(agent: &str, n: usize, reward: f64) -> ExperienceBatch {
        ExperienceBatch {
            agent_id: agent.into(),
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
            s.append_experience(&spec(), false, &batch(3, 1.0), None)
                .unwrap();
            let t = s
                .append_experience(&spec(), false, &batch(4, 2.0), Some("sha256:00"))
                .unwrap();
            assert_eq!((t.transitions, t.chunks, t.next_chunk), (7, 2, 2));
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.load_experience("T-v0", 100).unwrap().transitions.len(), 7);
        let newest = s.load_experience("T-v0", 5).unwrap().transitions;
        assert_eq!(newest.len(), 5);
        assert_eq!(newest[0].reward, 1.0);
        assert!(newest[1..].iter().all(|t| t.reward == 2.0));
        assert!(s.load_experience("none", 5).unwrap().transitions.is_empty());
        let chunks = s.list_chunks("T-v0", None).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].token.as_deref(), Some("sha256:00"));
        assert_eq!(
            (chunks[1].agent_id.as_str(), chunks[1].transitions),
            ("a", 4)
        );
        assert!(chunks[1].uploaded_at > 0.0);
    }

    #[test]
    fn each_agent_keeps_its_share_and_transitions_say_whose() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.append_experience(&spec(), false, &batch_of("honest", 30, 1.0), None)
            .unwrap();
        for _ in 0..10 {
            s.append_experience(&spec(), false, &batch_of("flood", 50, 2.0), None)
                .unwrap();
        }
        let loaded = s.load_experience("T-v0", 100).unwrap();
        assert_eq!(loaded.agents, ["flood", "honest"]);
        assert_eq!(loaded.transitions.len(), 100);
        let honest = loaded.agent_of.iter().filter(|&&a| a == 1).count();
        assert_eq!(honest, 30, "the honest agent's data is all kept");
        for (t, a) in loaded.transitions.iter().zip(&loaded.agent_of) {
            assert_eq!(t.reward, if *a == 1 { 1.0 } else { 2.0 });
        }
        let task = s.get_task("T-v0").unwrap().unwrap();
        assert_eq!(task.agent_transitions["flood"], 500);
        assert_eq!(task.agent_transitions["honest"], 30);
    }

    #[test]
    fn deleting_an_agents_experience_removes_it_and_marks_packets() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.append_experience(&spec(), false, &batch_of("keep", 5, 1.0), None)
            .unwrap();
        s.append_experience(&spec(), false, &batch_of("gone", 7, 2.0), None)
            .unwrap();
        let packet = |id: char, task: &str, base: Option<String>| PacketRecord {
            packet_id: id.to_string().repeat(64),
            kind: crate::records::PolicyKind::Base,
            agent_id: "keep".into(),
            task: task.into(),
            training_id: "tr".into(),
            base_packet_id: base,
            size: 1,
            target_device: "edge".into(),
            quantization: "int8".into(),
            compression_level: 3,
            audit: plasma_packets::AuditStatus::Approved,
            audit_summary: String::new(),
            signed_by: String::new(),
            created_at: now_secs(),
            trained_on_deleted_data: false,
        };
        let base = packet('a', "T-v0", None);
        let adapter = packet('b', "Other-v0", Some(base.packet_id.clone()));
        let unrelated = packet('c', "Other-v0", None);
        for p in [&base, &adapter, &unrelated] {
            s.put_packet(p, b"bytes", false).unwrap();
        }
        assert!(
            s.delete_experience("T-v0", "nobody", None)
                .unwrap()
                .is_none()
        );
        let d = s
            .delete_experience("T-v0", "gone", Some("sha256:ad"))
            .unwrap()
            .unwrap();
        assert_eq!((d.transitions, d.chunks.as_slice()), (7, &[1][..]));
        assert_eq!(
            d.tainted_packets,
            [base.packet_id.clone(), adapter.packet_id.clone()]
        );
        assert!(!dir.path().join("experience/T-v0/0000000001.pxb").exists());
        let loaded = s.load_experience("T-v0", 100).unwrap();
        assert_eq!(
            (loaded.transitions.len(), loaded.agents.as_slice()),
            (5, &["keep".to_owned()][..])
        );
        let task = s.get_task("T-v0").unwrap().unwrap();
        assert_eq!((task.transitions, task.chunks, task.next_chunk), (5, 1, 2));
        assert_eq!(task.agents, ["keep"]);
        assert_eq!(task.deletions, [d]);
        let flagged = |p: &PacketRecord| {
            s.get_packet(&p.packet_id)
                .unwrap()
                .unwrap()
                .trained_on_deleted_data
        };
        assert!(flagged(&base) && flagged(&adapter) && !flagged(&unrelated));
        // A new upload takes a new chunk number, never the deleted one's.
        let t = s
            .append_experience(&spec(), false, &batch_of("gone", 2, 3.0), None)
            .unwrap();
        assert_eq!((t.transitions, t.next_chunk), (7, 3));
    }

    #[test]
    fn data_directories_without_provenance_are_indexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.append_experience(&spec(), false, &batch_of("x", 3, 1.0), None)
                .unwrap();
            s.append_experience(&spec(), false, &batch_of("y", 4, 1.0), None)
                .unwrap();
            // What a server before provenance left: no chunk records, no counts.
            let mut task = s.get_task("T-v0").unwrap().unwrap();
            task.next_chunk = 0;
            task.agent_transitions.clear();
            s.put_task(&task).unwrap();
            let tx = s.db.begin_write().unwrap();
            tx.delete_table(CHUNKS).unwrap();
            tx.commit().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let chunks = s.list_chunks("T-v0", None).unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            (chunks[0].agent_id.as_str(), chunks[0].token.clone()),
            ("x", None)
        );
        let task = s.get_task("T-v0").unwrap().unwrap();
        assert_eq!(task.next_chunk, 2);
        assert_eq!(task.agent_transitions["y"], 4);
        assert_eq!(s.load_experience("T-v0", 100).unwrap().transitions.len(), 7);
    }

    #[test]
    fn events_are_rows_appended_one_by_one_and_old_arrays_move_to_rows() {
        let dir = tempfile::tempdir().unwrap();
        let event = |seq: u64| JobEvent {
            seq,
            job_id: "j1".into(),
            job_kind: JobKind::Simulation,
            agent_id: "a".into(),
            event: crate::records::EventKind::Progress,
            status: JobStatus::Running,
            phase: None,
            progress: 0.0,
            metrics: None,
            message: None,
            timestamp: seq as f64,
        };
        let mut job = JobRecord {
            id: "j1".into(),
            kind: JobKind::Simulation,
            agent_id: "a".into(),
            task: "T-v0".into(),
            status: JobStatus::Running,
            phase: None,
            progress: 0.0,
            request: plasma_protocol::JobSpec::Other(serde_json::json!({})),
            result: None,
            error: None,
            last_seq: 2,
            attempt: 1,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
        };
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            // What a server before event rows wrote: one array per job.
            let tx = s.db.begin_write().unwrap();
            {
                let mut t = tx.open_table(JOBS).unwrap();
                t.insert("j1", to_json(&job).unwrap().as_slice()).unwrap();
                let mut e = tx.open_table(JOB_EVENTS).unwrap();
                e.insert("j1", to_json(&vec![event(1), event(2)]).unwrap().as_slice())
                    .unwrap();
            }
            tx.commit().unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let seqs = |s: &EmbeddedStore| -> Vec<u64> {
            s.job_events("j1").unwrap().iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs(&s), [1, 2]);
        job.last_seq = 3;
        s.append_job_event(&job, &event(3), Some(2)).unwrap();
        assert_eq!(seqs(&s), [1, 3], "the third appended, the second dropped");
        assert_eq!(s.get_job("j1").unwrap().unwrap().last_seq, 3);
        s.put_job(&job, &[event(7)]).unwrap();
        assert_eq!(seqs(&s), [7], "put_job replaces the history");
    }

    #[test]
    fn unfinished_jobs_are_found_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let job = |id: &str, status, created_at| JobRecord {
            id: id.into(),
            kind: JobKind::Training,
            agent_id: "a".into(),
            task: "T-v0".into(),
            status,
            phase: None,
            progress: 0.5,
            request: plasma_protocol::JobSpec::Other(serde_json::json!({})),
            result: None,
            error: None,
            last_seq: 0,
            attempt: 1,
            created_at,
            started_at: None,
            finished_at: None,
        };
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            s.put_job(&job("j2", JobStatus::Queued, 2.0), &[]).unwrap();
            s.put_job(&job("j1", JobStatus::Running, 1.0), &[]).unwrap();
            s.put_job(&job("j0", JobStatus::Complete, 0.0), &[])
                .unwrap();
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let ids: Vec<String> = s
            .unfinished_jobs()
            .unwrap()
            .into_iter()
            .map(|(j, _)| j.id)
            .collect();
        assert_eq!(ids, ["j1", "j2"], "oldest first, finished ones left alone");
    }

    #[test]
    fn packet_ids_that_are_not_digests_name_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(s.packet_bytes("../../etc/passwd").unwrap(), None);
        assert_eq!(s.packet_bytes(&"0".repeat(64)).unwrap(), None);
    }
}
