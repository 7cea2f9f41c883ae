//! Storage behind one interface, [`Store`], so that a shared database and an object store
//! can back several replicas later. [`EmbeddedStore`] is the default: redb (an embedded,
//! crash-safe, pure-Rust database) for metadata and a data directory for experience chunks,
//! trained policies, world-model checkpoints and content-addressed packets.
//!
//! Layout of the data directory:
//!
//! ```text
//! meta.redb                          tasks, jobs, job events, packets, agent → latest packet
//! experience/<task>/<chunk>.pxb      one file per accepted upload (plasma_protocol::wire's binary form)
//! blobs/<key>                        trained policies (policies/<training_id>.json)
//! models/<task>/<transitions>/       world-model checkpoints (plasma-world-model save)
//! packets/<aa>/<sha256>.pkt          packets, named by their digest
//! keys/packet-signing.key            the ed25519 key (0600, plasma-packets)
//! ```
//!
//! Every file is written to a temporary name, fsynced, renamed into place and its folder
//! fsynced, so a crash leaves either the old or the new file; metadata is committed after
//! the file it names is durable.

mod embedded;
mod fs;
pub mod retention;

use std::path::PathBuf;

use plasma_protocol::{ExperienceBatch, TaskSpec, Transition};
use thiserror::Error;

pub use embedded::EmbeddedStore;
pub use fs::write_atomic;

use crate::records::{
    ChunkRecord, DeletionRecord, Deployment, JobEvent, JobKind, JobRecord, PacketRecord, TaskRecord,
};

/// A task's experience as a job loads it: the transitions, oldest first, and which agent
/// uploaded each (for per-agent checks of the shared model).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedExperience {
    /// The transitions, in upload order.
    pub transitions: Vec<Transition>,
    /// `agents[agent_of[i]]` uploaded `transitions[i]`.
    pub agent_of: Vec<usize>,
    /// The uploading agents, sorted.
    pub agents: Vec<String>,
}

/// A storage failure (I/O, database, corrupt record).
#[derive(Debug, Error)]
pub enum StoreError {
    /// File-system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Database error.
    #[error("database: {0}")]
    Db(String),
    /// A stored record or file that cannot be read back.
    #[error("corrupt {0}")]
    Corrupt(String),
}

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the server persists. Implementations are blocking; async code calls them
/// through `spawn_blocking`.
pub trait Store: Send + Sync + 'static {
    /// A task by name.
    fn get_task(&self, name: &str) -> Result<Option<TaskRecord>>;
    /// Creates or replaces a task record.
    fn put_task(&self, task: &TaskRecord) -> Result<()>;
    /// All tasks.
    fn list_tasks(&self) -> Result<Vec<TaskRecord>>;
    /// Stores a validated batch as a new chunk of its task (creating the task from `spec`
    /// if it is new), with the fingerprint of the token that uploaded it, and returns the
    /// updated task record.
    fn append_experience(
        &self,
        spec: &TaskSpec,
        builtin: bool,
        batch: &ExperienceBatch,
        token: Option<&str>,
    ) -> Result<TaskRecord>;
    /// Records a completed base-policy training as its task's base.
    fn set_base_training(&self, task: &str, training_id: &str) -> Result<()>;
    /// At most `max` transitions of a task, oldest first, every uploading agent keeping an
    /// equal share ([`retention::retained`]).
    fn load_experience(&self, task: &str, max: usize) -> Result<LoadedExperience>;
    /// The stored chunks of a task, in upload order, optionally of one agent.
    fn list_chunks(&self, task: &str, agent: Option<&str>) -> Result<Vec<ChunkRecord>>;
    /// Deletes every chunk `agent` uploaded to `task`, marks the packets whose policies
    /// may have been trained on them and records the deletion in the task; `None` when
    /// the agent has nothing there.
    fn delete_experience(
        &self,
        task: &str,
        agent: &str,
        by: Option<&str>,
    ) -> Result<Option<DeletionRecord>>;

    /// Creates or replaces a job and its events.
    fn put_job(&self, job: &JobRecord, events: &[JobEvent]) -> Result<()>;
    /// Stores a job's new state and one new event, dropping its event `dropped` (the
    /// history is bounded), in one transaction.
    fn append_job_event(
        &self,
        job: &JobRecord,
        event: &JobEvent,
        dropped: Option<u64>,
    ) -> Result<()>;
    /// A job by id.
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;
    /// A job's stored events.
    fn job_events(&self, id: &str) -> Result<Vec<JobEvent>>;
    /// Jobs, newest first, optionally of one agent and one kind.
    fn list_jobs(&self, agent: Option<&str>, kind: Option<JobKind>) -> Result<Vec<JobRecord>>;
    /// Jobs a previous process left queued or running, oldest first, with their events
    /// (called once at start-up, to resume them).
    fn unfinished_jobs(&self) -> Result<Vec<(JobRecord, Vec<JobEvent>)>>;

    /// Stores a packet (bytes content-addressed by `record.packet_id`); if `latest`, it
    /// becomes its agent's latest packet.
    fn put_packet(&self, record: &PacketRecord, bytes: &[u8], latest: bool) -> Result<()>;
    /// A packet's metadata.
    fn get_packet(&self, id: &str) -> Result<Option<PacketRecord>>;
    /// A packet's bytes.
    fn packet_bytes(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// The latest packet compiled for an agent.
    fn latest_packet_for_agent(&self, agent: &str) -> Result<Option<PacketRecord>>;
    /// Number of stored packets.
    fn count_packets(&self) -> Result<u64>;
    /// Every stored packet's metadata, newest first.
    fn list_packets(&self) -> Result<Vec<PacketRecord>>;

    /// Stores an agent's reported deployment in place of its previous one.
    fn put_deployment(&self, deployment: &Deployment) -> Result<()>;
    /// Every agent's last reported deployment.
    fn list_deployments(&self) -> Result<Vec<Deployment>>;

    /// Stores a small named document (trained policies).
    fn put_blob(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// A named document.
    fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// The local folder for world-model checkpoints of a task (burn writes directories).
    fn model_root(&self, task: &str) -> PathBuf;
    /// The path of the packet-signing key.
    fn signing_key_path(&self) -> PathBuf;
}
