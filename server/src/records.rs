//! What the server stores about tasks, jobs and packets (also what its read endpoints
//! answer). The types are plasma-protocol's, shared with clients.

pub use plasma_protocol::{
    ChunkRecord, DeletionRecord, Deployment, EventKind, JobEvent, JobKind, JobRecord, JobStatus,
    PacketRecord, PolicyKind, TaskRecord,
};

/// Seconds since the Unix epoch, as a float (the Python prototype's `timestamp`).
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
