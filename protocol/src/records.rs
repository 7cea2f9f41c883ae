//! What the server stores about tasks, policies and packets, as its read endpoints answer.

use serde::{Deserialize, Serialize};

use crate::task::TaskSpec;

/// A task the server knows: its spec and how much experience it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskRecord {
    /// The task's name (an identifier), e.g. `CartPole-v1`.
    pub name: String,
    /// Observation and action spaces (plasma-protocol `TaskSpec`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
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

/// Base policy or LoRA adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A full policy.
    Base,
    /// A LoRA adapter on a base policy.
    Adapter,
}

/// A stored packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
