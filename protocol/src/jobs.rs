//! Jobs as the server answers them and job events as it stores and pushes them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error_body::ErrorDetail;

/// The kinds of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Phantom-path simulation (`POST /simulate`).
    Simulation,
    /// Policy training, base or adapter (`POST /train`).
    Training,
    /// Packet compilation (`POST /instruction-packet/compile`).
    Compilation,
}

impl JobKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Simulation => "simulation",
            JobKind::Training => "training",
            JobKind::Compilation => "compilation",
        }
    }
}

/// Where a job is. `complete` (not `completed`) as the Python prototype's clients expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a compute slot.
    Queued,
    /// Computing.
    Running,
    /// Finished with a result.
    Complete,
    /// Finished with an error.
    Failed,
    /// Cancelled by a client.
    Cancelled,
    /// The server stopped while the job was queued or running, and did not resume it.
    Interrupted,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Interrupted => "interrupted",
        }
    }
}

/// What happened, in a job event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Accepted and waiting.
    Queued,
    /// Started computing.
    Started,
    /// A phase advanced (with metrics).
    Progress,
    /// The auditor's verdict.
    Audit,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Cancelled,
    /// The server stopped while the job was queued or running and will not run it again
    /// (a compilation, or a job stored before jobs were resumable).
    Interrupted,
    /// The server stopped (SIGTERM, or a crash found at the next start) while the job was
    /// queued or running; it is queued again and runs from its start.
    Requeued,
}

/// One event of a job, as stored and as pushed on `/ws/{client_id}` (with `type:
/// "job_event"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEvent {
    /// 1, 2, 3, … per job, in order.
    pub seq: u64,
    /// The job.
    pub job_id: String,
    /// Its kind.
    pub job_kind: JobKind,
    /// The agent (WebSocket client id) the job belongs to.
    pub agent_id: String,
    /// What happened.
    pub event: EventKind,
    /// The job's status after the event.
    pub status: JobStatus,
    /// Current phase, e.g. `fit_world_model`, `terminal_value`, `distill`, `audit` (a
    /// training job), `phantom_paths` (a simulation).
    pub phase: Option<String>,
    /// Overall progress, 0 to 1.
    pub progress: f64,
    /// Figures of the phase (losses, returns, verdicts).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metrics: Option<Value>,
    /// A human line.
    pub message: Option<String>,
    /// Unix seconds.
    pub timestamp: f64,
}

/// A job: its request, state, result and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRecord {
    /// Identifier (`sim_…`, `train_…`, `compile_…`).
    pub id: String,
    /// Kind.
    pub kind: JobKind,
    /// The agent the job is for.
    pub agent_id: String,
    /// The task.
    pub task: String,
    /// State.
    pub status: JobStatus,
    /// Current phase.
    pub phase: Option<String>,
    /// Overall progress, 0 to 1.
    pub progress: f64,
    /// The request as accepted (defaults filled in).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request: Value,
    /// The result of a complete job.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Option<Value>,
    /// The error of a failed job.
    pub error: Option<ErrorDetail>,
    /// Sequence number of the last event.
    pub last_seq: u64,
    /// Times the job started running (a restart after a crash runs it again, up to the
    /// server's `jobs.max_attempts`).
    #[serde(default)]
    pub attempt: u32,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds.
    pub started_at: Option<f64>,
    /// Unix seconds.
    pub finished_at: Option<f64>,
}

/// A job as answered by the job endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    /// The job.
    #[serde(flatten)]
    pub job: JobRecord,
    /// Its events (bounded: the first and the newest).
    pub events: Vec<JobEvent>,
}

/// `GET /simulate/{id}` and `GET /train/{id}`: a job in the prototype's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStatusView {
    /// The simulation or training id.
    pub id: String,
    /// `queued`, `running`, `complete`, `failed`, `cancelled`, `interrupted`.
    pub status: JobStatus,
    /// 0 to 1.
    pub progress: f64,
    /// Current phase.
    pub phase: Option<String>,
    /// The agent.
    pub agent_id: String,
    /// The task.
    pub task: String,
    /// The result when complete.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Option<Value>,
    /// The auditor's verdict, when one ran.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub audit: Option<Value>,
    /// The error message when failed.
    pub error: Option<String>,
    /// The error code when failed.
    pub error_code: Option<String>,
    /// Sequence number of the last event.
    pub last_seq: u64,
    /// Times the job started running (a restart after a crash runs it again, up to the
    /// server's `jobs.max_attempts`).
    #[serde(default)]
    pub attempt: u32,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds.
    pub finished_at: Option<f64>,
}
