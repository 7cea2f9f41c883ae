//! Requests and answers of the server's endpoints (DESIGN.md's API table), in the Python
//! prototype's shapes with fields added, none renamed.

use serde::{Deserialize, Serialize};

use crate::records::PolicyKind;

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `healthy` while the process answers.
    pub status: String,
    /// Unix seconds.
    pub timestamp: f64,
    /// Whether a world model has been fitted (and checkpointed) for some task.
    pub world_model_loaded: bool,
    /// Simulations queued or running.
    pub active_simulations: usize,
    /// Server version.
    pub version: String,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Status {
    /// Server version.
    pub version: String,
    /// Compute device of jobs.
    pub device: String,
    /// Jobs waiting for a slot.
    pub queue_depth: usize,
    /// Jobs computing.
    pub running_jobs: usize,
    /// Compute slots.
    pub max_concurrent_jobs: usize,
    /// Waiting room beyond the slots.
    pub queue_capacity: usize,
    /// Tasks known.
    pub tasks: usize,
    /// Completed training runs (stored policies).
    pub stored_models: usize,
    /// Stored packets.
    pub stored_packets: u64,
    /// Whether requests need no token.
    pub open_access: bool,
    /// Seconds since start.
    pub uptime_secs: f64,
}

/// `GET /signing-key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex: pin it in agents to verify packets.
    pub public_key: String,
}

/// `POST /experience` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperienceAccepted {
    /// The task.
    pub task_name: String,
    /// The uploader.
    pub agent_id: String,
    /// Transitions accepted from this upload.
    pub accepted: usize,
    /// Transitions the task holds now.
    pub total_transitions: u64,
}

/// The largest count a request may give (`num_trajectories`, `num_simulations`, a list's
/// `limit`): larger ones are refused, as the OpenAPI document says; the server caps what it
/// does by its configuration well below it.
pub const MAX_REQUEST_COUNT: usize = 1_000_000_000;

pub(crate) fn default_trajectories() -> usize {
    10
}

pub(crate) fn default_true() -> bool {
    true
}

/// `POST /simulate` (the Python prototype's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulateRequest {
    /// The agent (its WebSocket client id receives the events).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub agent_id: String,
    /// A task the server knows (with uploaded experience). The prototype's name for a
    /// task name; `task_name` is accepted too.
    #[serde(alias = "task_name")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub task_description: String,
    /// Phantom paths (capped by `compute.max_trajectories`).
    #[serde(
        default = "default_trajectories",
        deserialize_with = "crate::lenient::usize"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000000))]
    pub num_trajectories: usize,
    /// Run the Judicial Auditor on the paths.
    #[serde(default = "default_true")]
    pub adversarial_audit: bool,
    /// Steps per path (default `compute.simulate_horizon`, capped at 1000).
    #[serde(default, deserialize_with = "crate::lenient::opt_usize")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub horizon: Option<usize>,
}

/// `POST /simulate` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulateAccepted {
    /// The simulation (a job id).
    pub simulation_id: String,
    /// `started`.
    pub status: String,
    /// A human line.
    pub message: String,
}

/// What `POST /train` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TrainMode {
    /// An adapter when the task has a base policy loaded, else a base policy.
    #[default]
    Auto,
    /// A full base policy for the task.
    Base,
    /// A LoRA adapter on the task's base policy.
    Adapter,
}

pub(crate) fn default_simulations() -> usize {
    1000
}

/// `POST /train` (the Python prototype's shape plus `mode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainRequest {
    /// The agent.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub agent_id: String,
    /// The task (with uploaded experience).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub task_name: String,
    /// Caps the states the planner labels per distillation round (with
    /// `compute.distill.initial_labels` / `labels_per_round`).
    #[serde(
        default = "default_simulations",
        deserialize_with = "crate::lenient::usize"
    )]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000000))]
    pub num_simulations: usize,
    /// LoRA rank of an adapter (default `compute.lora_rank`).
    #[serde(default, deserialize_with = "crate::lenient::opt_usize")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub lora_rank: Option<usize>,
    /// Learning rate of the policy fit (default `compute.distill.fit.learning_rate`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1e-9, maximum = 1.0))]
    pub learning_rate: Option<f32>,
    /// Run the DAgger rounds on audited phantom paths (false: real states only).
    #[serde(default = "default_true")]
    pub use_phantom_paths: bool,
    /// Base, adapter, or auto.
    #[serde(default)]
    pub mode: TrainMode,
    /// For an adapter: the base-policy training run to adapt, e.g. the base of another
    /// task with the same spaces (a changed condition registered as its own task). Default:
    /// the task's own base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub base_training: Option<String>,
}

/// `POST /train` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainAccepted {
    /// The training run (a job id).
    pub training_id: String,
    /// `started`.
    pub status: String,
    /// `base` or `adapter`.
    pub mode: PolicyKind,
    /// For an adapter: the base training run.
    pub base_training: Option<String>,
    /// A human line.
    pub message: String,
}

/// `GET /train/history/{agent_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainHistory {
    /// The agent.
    pub agent_id: String,
    /// Its training runs, newest first.
    pub history: Vec<TrainHistoryEntry>,
}

/// One training run in an agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainHistoryEntry {
    /// The run's status, result and audit.
    #[serde(flatten)]
    pub view: crate::jobs::JobStatusView,
    /// The task (also `task` in the view).
    pub task_name: String,
    /// Base or adapter, as resolved when the run was accepted.
    pub mode: Option<PolicyKind>,
    /// The request.
    pub request: crate::jobs::JobSpec,
}

pub(crate) fn default_target() -> String {
    "edge".into()
}

/// `POST /instruction-packet/compile` (the Python prototype's shape plus `force`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompileRequest {
    /// The agent the packet is for.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub agent_id: String,
    /// A training run: its id, a path ending in it (`checkpoints/<id>`), or empty /
    /// `latest` for the agent's newest complete training run. The prototype's name for
    /// a training id; `training_id` is accepted too.
    #[serde(default, alias = "training_id")]
    pub trained_lora_path: Option<String>,
    /// Target device recorded with the packet.
    #[serde(default = "default_target")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64))]
    pub target_device: String,
    /// Deploy even though the auditor rejected the policy (recorded in the packet).
    #[serde(default)]
    pub force: bool,
}

/// `POST /instruction-packet/compile` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompileResponse {
    /// `compiled`.
    pub status: String,
    /// The agent.
    pub agent_id: String,
    /// The packet's SHA-256 digest (hex): its id.
    pub packet_id: String,
    /// Bytes.
    pub packet_size: u64,
    /// Where to download it.
    pub download_url: String,
    /// Base or adapter.
    pub kind: PolicyKind,
    /// For an adapter: the base packet it applies to.
    pub base_packet_id: Option<String>,
    /// For an adapter: where to download its base.
    pub base_download_url: Option<String>,
    /// The compilation job.
    pub compilation_id: String,
    /// The training run compiled.
    pub training_id: String,
    /// A human line.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearer_names_are_accepted_beside_the_prototypes() {
        let a: SimulateRequest =
            serde_json::from_str(r#"{"agent_id": "a", "task_name": "CartPole-v1"}"#).unwrap();
        let b: SimulateRequest =
            serde_json::from_str(r#"{"agent_id": "a", "task_description": "CartPole-v1"}"#)
                .unwrap();
        assert_eq!(a.task_description, b.task_description);
        let c: CompileRequest =
            serde_json::from_str(r#"{"agent_id": "a", "training_id": "train_1"}"#).unwrap();
        assert_eq!(c.trained_lora_path.as_deref(), Some("train_1"));
        // Answers keep the prototype's names.
        assert!(
            serde_json::to_string(&a)
                .unwrap()
                .contains("task_description")
        );
    }
}
