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

/// Why an agent's deployment changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeploymentChange {
    /// A packet (base or adapter) was installed.
    Install,
    /// The adapter was rolled back to the previous one (or removed).
    Rollback,
}

/// What an agent runs, as it reports after every install or rollback
/// (`PUT /agents/{agent_id}/deployment`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentReport {
    /// The base packet's digest (64 hex digits).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub base: String,
    /// The adapter packet's digest, if an adapter runs.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub adapter: Option<String>,
    /// When it took effect on the agent (Unix seconds, the agent's clock).
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0e11))]
    pub since: f64,
    /// What changed.
    pub change: DeploymentChange,
}

impl DeploymentReport {
    /// Checks the digests' form and the time.
    pub fn validate(&self) -> Result<(), String> {
        let digest = |what: &str, d: &str| {
            if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: a packet digest is 64 hex digits, got {d:?}"
                ))
            }
        };
        digest("base", &self.base)?;
        if let Some(a) = &self.adapter {
            digest("adapter", a)?;
        }
        if !(0.0..=1.0e11).contains(&self.since) {
            return Err(format!(
                "since: Unix seconds between 0 and 1e11, got {}",
                self.since
            ));
        }
        Ok(())
    }
}

/// An agent's last reported deployment, as the server stored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deployment {
    /// The agent.
    pub agent_id: String,
    /// What it reported.
    #[serde(flatten)]
    pub report: DeploymentReport,
    /// When the server received the report (Unix seconds, the server's clock).
    pub reported_at: f64,
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
    /// What it last reported running, if it ever reported.
    pub deployment: Option<Deployment>,
}

impl AgentSummary {
    /// The agents with experience in `tasks` or a reported deployment, ordered by
    /// identifier, without packets.
    pub fn gather(tasks: &[TaskRecord], deployments: Vec<Deployment>) -> Vec<AgentSummary> {
        let mut agents: std::collections::BTreeMap<String, AgentSummary> = Default::default();
        for task in tasks {
            for (agent, &count) in &task.agent_transitions {
                let entry = agents
                    .entry(agent.clone())
                    .or_insert_with(|| AgentSummary::new(agent));
                entry.tasks.insert(task.name.clone(), count);
                entry.transitions += count;
            }
        }
        for d in deployments {
            let id = d.agent_id.clone();
            agents
                .entry(id.clone())
                .or_insert_with(|| AgentSummary::new(&id))
                .deployment = Some(d);
        }
        agents.into_values().collect()
    }

    fn new(agent_id: &str) -> AgentSummary {
        AgentSummary {
            agent_id: agent_id.to_owned(),
            tasks: Default::default(),
            transitions: 0,
            latest_packet: None,
            deployment: None,
        }
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

/// A stored packet and the agents that report running it (`GET /packets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PacketListing {
    /// The packet's metadata.
    #[serde(flatten)]
    pub packet: PacketRecord,
    /// Agents whose last reported deployment runs it (as base or adapter).
    pub running_on: Vec<String>,
}

impl PacketListing {
    /// Each packet with the agents whose deployment names it.
    pub fn gather(packets: Vec<PacketRecord>, deployments: &[Deployment]) -> Vec<PacketListing> {
        packets
            .into_iter()
            .map(|packet| {
                let running_on = deployments
                    .iter()
                    .filter(|d| {
                        d.report.base.eq_ignore_ascii_case(&packet.packet_id)
                            || d.report
                                .adapter
                                .as_deref()
                                .is_some_and(|a| a.eq_ignore_ascii_case(&packet.packet_id))
                    })
                    .map(|d| d.agent_id.clone())
                    .collect();
                PacketListing { packet, running_on }
            })
            .collect()
    }
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
        let deployed = Deployment {
            agent_id: "robot-3".into(),
            report: DeploymentReport {
                base: "ab".repeat(32),
                adapter: None,
                since: 1.0,
                change: DeploymentChange::Install,
            },
            reported_at: 2.0,
        };
        let agents = AgentSummary::gather(&tasks, vec![deployed.clone()]);
        let ids: Vec<_> = agents.iter().map(|a| a.agent_id.as_str()).collect();
        assert_eq!(
            ids,
            ["robot-1", "robot-2", "robot-3"],
            "also an agent known only by its report"
        );
        assert_eq!(agents[2].deployment.as_ref(), Some(&deployed));
        assert_eq!(agents[2].transitions, 0);
        assert_eq!(agents[0].transitions, 12);
        assert_eq!(agents[0].tasks["a-task"], 7);
        assert_eq!(agents[0].tasks["b-task"], 5);
        assert_eq!(agents[1].tasks.len(), 1);
        assert_eq!(agents[1].transitions, 30);
        assert!(agents.iter().all(|a| a.latest_packet.is_none()));
    }

    #[test]
    fn deployment_reports_are_checked_and_keep_their_wire_shape() {
        let report = DeploymentReport {
            base: "0f".repeat(32),
            adapter: Some("a1".repeat(32)),
            since: 1_764_000_000.5,
            change: DeploymentChange::Rollback,
        };
        assert_eq!(report.validate(), Ok(()));
        let json = serde_json::to_value(Deployment {
            agent_id: "robot-1".into(),
            report: report.clone(),
            reported_at: 3.0,
        })
        .unwrap();
        assert_eq!(json["change"], "rollback");
        assert_eq!(json["base"], "0f".repeat(32));
        assert_eq!(json["reported_at"], 3.0);
        for bad in [
            DeploymentReport {
                base: "xyz".into(),
                ..report.clone()
            },
            DeploymentReport {
                adapter: Some("0".repeat(63)),
                ..report.clone()
            },
            DeploymentReport {
                since: -1.0,
                ..report.clone()
            },
            DeploymentReport {
                since: f64::NAN,
                ..report.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn packets_list_the_agents_that_run_them() {
        let packet = |id: &str, kind| PacketRecord {
            packet_id: id.into(),
            kind,
            agent_id: "robot-1".into(),
            task: "t".into(),
            training_id: "tr".into(),
            base_packet_id: None,
            size: 10,
            target_device: "cpu".into(),
            quantization: "int8".into(),
            compression_level: 3,
            audit: plasma_packets::AuditStatus::Approved,
            audit_summary: "approved".into(),
            signed_by: "k".into(),
            created_at: 1.0,
            trained_on_deleted_data: false,
        };
        let (base, adapter, other) = ("ab".repeat(32), "cd".repeat(32), "ef".repeat(32));
        let runs = |agent: &str, adapter: Option<&str>| Deployment {
            agent_id: agent.into(),
            report: DeploymentReport {
                base: base.to_ascii_uppercase(),
                adapter: adapter.map(str::to_owned),
                since: 1.0,
                change: DeploymentChange::Install,
            },
            reported_at: 2.0,
        };
        let listed = PacketListing::gather(
            vec![
                packet(&base, PolicyKind::Base),
                packet(&adapter, PolicyKind::Adapter),
                packet(&other, PolicyKind::Base),
            ],
            &[runs("robot-1", Some(&adapter)), runs("robot-2", None)],
        );
        assert_eq!(
            listed[0].running_on,
            ["robot-1", "robot-2"],
            "digests compare without case"
        );
        assert_eq!(listed[1].running_on, ["robot-1"]);
        assert!(listed[2].running_on.is_empty());
        let json = serde_json::to_value(&listed[1]).unwrap();
        assert_eq!(
            json["packet_id"],
            adapter.as_str(),
            "the record's fields stay at the top"
        );
        assert_eq!(json["running_on"][0], "robot-1");
    }
}
