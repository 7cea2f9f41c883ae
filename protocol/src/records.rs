//! What the server stores about tasks, policies and packets, as its read endpoints answer.

use serde::{Deserialize, Serialize};

use crate::task::TaskSpec;

/// A task the server knows: its spec and how much experience it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Task))]
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
    /// Transitions stored per uploading agent (what per-agent quotas and retention count).
    #[serde(default)]
    pub agent_transitions: std::collections::BTreeMap<String, u64>,
    /// Number the next chunk gets (chunk numbers are never reused, also after deletions).
    #[serde(default)]
    pub next_chunk: u64,
    /// Every deletion of experience from this task, oldest first.
    #[serde(default)]
    pub deletions: Vec<DeletionRecord>,
    /// Creation time (Unix seconds).
    pub created_at: f64,
    /// Last change (Unix seconds).
    pub updated_at: f64,
}

impl TaskRecord {
    /// A task with no experience yet, created at `now` (Unix seconds).
    pub fn new(spec: TaskSpec, builtin: bool, now: f64) -> Self {
        TaskRecord {
            name: spec.name.clone(),
            spec,
            builtin,
            transitions: 0,
            chunks: 0,
            agents: vec![],
            base_training: None,
            agent_transitions: Default::default(),
            next_chunk: 0,
            deletions: vec![],
            created_at: now,
            updated_at: now,
        }
    }
}

/// An agent the server knows of through its experience: what it uploaded to each task
/// and the newest packet compiled for it (`GET /agents`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Agent))]
pub struct AgentSummary {
    /// The agent (an identifier).
    pub agent_id: String,
    /// Transitions stored for it, per task it uploaded to (task name → transitions).
    pub tasks: std::collections::BTreeMap<String, u64>,
    /// Its transitions over every task.
    pub transitions: u64,
    /// The newest packet compiled for it, if any.
    pub latest_packet: Option<String>,
}

impl AgentSummary {
    /// The agents with experience in `tasks`, ordered by identifier, without packets.
    pub fn from_tasks(tasks: &[TaskRecord]) -> Vec<AgentSummary> {
        let mut agents: std::collections::BTreeMap<&str, AgentSummary> = Default::default();
        for task in tasks {
            for (agent, &count) in &task.agent_transitions {
                let entry = agents.entry(agent).or_insert_with(|| AgentSummary {
                    agent_id: agent.clone(),
                    tasks: Default::default(),
                    transitions: 0,
                    latest_packet: None,
                });
                entry.tasks.insert(task.name.clone(), count);
                entry.transitions += count;
            }
        }
        agents.into_values().collect()
    }
}

/// One stored upload of experience and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChunkRecord {
    /// The task.
    pub task: String,
    /// The chunk's number within the task (upload order).
    pub chunk: u64,
    /// The agent the upload was made for.
    pub agent_id: String,
    /// Which token uploaded it: `sha256:` and the first 16 hex digits of its digest (never
    /// the token itself); none for open access or data stored before provenance was kept.
    pub token: Option<String>,
    /// Transitions in the chunk.
    pub transitions: u64,
    /// Unix seconds; 0 for data stored before provenance was kept.
    pub uploaded_at: f64,
}

/// A deletion of one agent's experience from a task (`DELETE /experience`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeletionRecord {
    /// The agent whose experience was deleted.
    pub agent_id: String,
    /// Chunk numbers deleted.
    pub chunks: Vec<u64>,
    /// Transitions deleted.
    pub transitions: u64,
    /// When the oldest deleted chunk was uploaded (Unix seconds): anything trained on the
    /// task since then may have seen the deleted data.
    pub oldest_upload_at: f64,
    /// Unix seconds.
    pub deleted_at: f64,
    /// The token that asked for it (fingerprint as in [`ChunkRecord::token`]).
    pub by: Option<String>,
    /// Packets compiled from policies trained on the deleted data (they stay, marked).
    pub tainted_packets: Vec<String>,
}

/// Base policy or LoRA adapter: one concept with the packet's kind (plasma-packets owns it).
pub use plasma_packets::PacketKind as PolicyKind;

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
    pub audit: plasma_packets::AuditStatus,
    /// The auditor's one-line summary.
    pub audit_summary: String,
    /// Hex ed25519 public key that signed it.
    pub signed_by: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Set when experience its policy was trained on was deleted afterwards: the signed
    /// packet stays as it was, this says its training data is no longer held.
    #[serde(default)]
    pub trained_on_deleted_data: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Space;

    fn task(name: &str, uploads: &[(&str, u64)]) -> TaskRecord {
        let spec = TaskSpec {
            name: name.into(),
            observation_space: Space::boxed(vec![-1.0], vec![1.0]).unwrap(),
            action_space: Space::discrete(2).unwrap(),
            max_episode_steps: None,
            termination: None,
        };
        let mut record = TaskRecord::new(spec, false, 0.0);
        for &(agent, count) in uploads {
            record.agents.push(agent.into());
            record.agent_transitions.insert(agent.into(), count);
            record.transitions += count;
        }
        record
    }

    #[test]
    fn agents_are_gathered_across_tasks() {
        let tasks = [
            task("b-task", &[("robot-2", 30), ("robot-1", 5)]),
            task("a-task", &[("robot-1", 7)]),
            task("empty", &[]),
        ];
        let agents = AgentSummary::from_tasks(&tasks);
        let ids: Vec<_> = agents.iter().map(|a| a.agent_id.as_str()).collect();
        assert_eq!(ids, ["robot-1", "robot-2"]);
        assert_eq!(agents[0].transitions, 12);
        assert_eq!(agents[0].tasks["a-task"], 7);
        assert_eq!(agents[0].tasks["b-task"], 5);
        assert_eq!(agents[1].tasks.len(), 1);
        assert_eq!(agents[1].transitions, 30);
        assert!(agents.iter().all(|a| a.latest_packet.is_none()));
    }
}
