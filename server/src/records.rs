//! What the server stores about tasks, jobs and packets (also what its read endpoints
//! answer).

use plasma_protocol::TaskSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::ErrorDetail;

/// Seconds since the Unix epoch, as a float (the Python prototype's `timestamp`).
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A task the server knows: its spec and how much experience it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskRecord {
    /// The task's name (an identifier), e.g. `CartPole-v1`.
    pub name: String,
    /// Observation and action spaces (plasma-protocol `TaskSpec`).
    #[schema(value_type = Object)]
    pub spec: TaskSpec,
    /// Whether the spec came from the reference environments (plasma-envs).
    pub builtin: bool,
    /// Transitions stored.
    pub transitions: u64,
    /// Experience chunks stored (one per accepted upload).
    pub chunks: u64,
    /// Agents that uploaded experience.
    pub agents: Vec<String>,
    /// The latest completed base-policy training of this task.
    pub base_training: Option<String>,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last change (Unix seconds).
    pub updated_at: f64,
}

/// The kinds of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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
    /// The server stopped (crash or shutdown) while the job was queued or running.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    /// Found queued or running after a restart.
    Interrupted,
}

/// One event of a job, as stored and as pushed on `/ws/{client_id}` (with `type:
/// "job_event"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    /// Current phase, e.g. `fit_world_model`, `label`, `fit_policy`, `audit`.
    pub phase: Option<String>,
    /// Overall progress, 0 to 1.
    pub progress: f64,
    /// Figures of the phase (losses, returns, verdicts).
    #[schema(value_type = Object)]
    pub metrics: Option<Value>,
    /// A human line.
    pub message: Option<String>,
    /// Unix seconds.
    pub timestamp: f64,
}

/// A job: its request, state, result and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub request: Value,
    /// The result of a complete job.
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// The error of a failed job.
    pub error: Option<ErrorDetail>,
    /// Sequence number of the last event.
    pub last_seq: u64,
    /// Unix seconds.
    pub created_at: f64,
    /// Unix seconds.
    pub started_at: Option<f64>,
    /// Unix seconds.
    pub finished_at: Option<f64>,
}

/// Base policy or LoRA adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A full policy.
    Base,
    /// A LoRA adapter on a base policy.
    Adapter,
}

/// A stored packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PacketRecord {
    /// The packet's SHA-256 digest, hex (its identity and file name).
    pub packet_id: String,
    /// Base or adapter.
    pub kind: PolicyKind,
    /// The agent it was compiled for.
    pub agent_id: String,
    /// The task.
    pub task: String,
    /// The training run of its weights.
    pub training_id: String,
    /// For an adapter: the digest of the base packet it must be applied to.
    pub base_packet_id: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Target device recorded at compilation.
    pub target_device: String,
    /// Weight quantization.
    pub quantization: String,
    /// zstd level.
    pub compression_level: i32,
    /// Audit status recorded in the packet (`Approved`, `ForcedAfterRejection`).
    pub audit: String,
    /// The auditor's one-line summary.
    pub audit_summary: String,
    /// Hex ed25519 public key that signed it.
    pub signed_by: String,
    /// Unix seconds.
    pub created_at: f64,
}
