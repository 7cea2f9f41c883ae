//! Jobs as the server answers them and job events as it stores and pushes them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::api::{CompileRequest, SimulateRequest, TrainRequest};
use crate::error_body::ErrorDetail;
use crate::records::{PacketRecord, PolicyKind};
use crate::reports::{AuditReport, PhaseMetrics, SimulationResult, TrainingResult};

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
    pub metrics: Option<PhaseMetrics>,
    /// A human line.
    pub message: Option<String>,
    /// Unix seconds.
    pub timestamp: f64,
}

/// What a job was asked to do: the request as accepted (defaults filled in) and what was
/// resolved from it. Jobs are data: any process can run a job from its spec. Written as the
/// request's own JSON (the form stored since the first server); a job record reads it back
/// by the job's kind ([`JobSpec::read`]), other readers by its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobSpec {
    /// A training run.
    Train(TrainJob),
    /// A phantom-path simulation.
    Simulate(SimulateRequest),
    /// A packet compilation.
    Compile(CompileJob),
    /// A request of a shape this version does not read (stored by another version).
    Other(Value),
}

/// A training job: the request and the kind of policy it resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainJob {
    /// The request.
    #[serde(flatten)]
    pub request: TrainRequest,
    /// Base or adapter, as resolved when the job was accepted.
    #[serde(default)]
    pub resolved_mode: Option<PolicyKind>,
}

/// A compilation job: the request and the training run it resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompileJob {
    /// The request.
    #[serde(flatten)]
    pub request: CompileRequest,
    /// The training run compiled (the request may say `latest`).
    #[serde(default)]
    pub resolved_training: Option<String>,
}

impl JobSpec {
    /// The kind of job this spec is for (`None` for an unreadable one).
    pub fn kind(&self) -> Option<JobKind> {
        match self {
            JobSpec::Simulate(_) => Some(JobKind::Simulation),
            JobSpec::Train(_) => Some(JobKind::Training),
            JobSpec::Compile(_) => Some(JobKind::Compilation),
            JobSpec::Other(_) => None,
        }
    }

    /// Reads a stored request as a job of `kind`.
    pub fn read(kind: JobKind, value: Value) -> JobSpec {
        let typed = match kind {
            JobKind::Simulation => serde_json::from_value(value.clone()).map(JobSpec::Simulate),
            JobKind::Training => serde_json::from_value(value.clone()).map(JobSpec::Train),
            JobKind::Compilation => serde_json::from_value(value.clone()).map(JobSpec::Compile),
        };
        typed.unwrap_or(JobSpec::Other(value))
    }
}

/// What a complete job produced. Written as the result's own JSON; a job record reads it
/// back by the job's kind ([`JobOutput::read`]), other readers by its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum JobOutput {
    /// A simulation's paths, figures and audit.
    Simulation(SimulationResult),
    /// A training run's policy figures and audit.
    Training(TrainingResult),
    /// The packet compiled.
    Compilation(PacketRecord),
    /// A result of a shape this version does not read (stored by an earlier version).
    Other(Value),
}

impl JobOutput {
    /// Reads a stored result of a job of `kind`.
    pub fn read(kind: JobKind, value: Value) -> JobOutput {
        let typed = match kind {
            JobKind::Simulation => serde_json::from_value(value.clone()).map(JobOutput::Simulation),
            JobKind::Training => serde_json::from_value(value.clone()).map(JobOutput::Training),
            JobKind::Compilation => {
                serde_json::from_value(value.clone()).map(JobOutput::Compilation)
            }
        };
        typed.unwrap_or(JobOutput::Other(value))
    }

    /// The auditor's report in the result, if any.
    pub fn audit(&self) -> Option<&AuditReport> {
        match self {
            JobOutput::Simulation(s) => s.audit.as_ref(),
            JobOutput::Training(t) => Some(&t.audit),
            _ => None,
        }
    }

    /// The training result, if this is one.
    pub fn training(&self) -> Option<&TrainingResult> {
        match self {
            JobOutput::Training(t) => Some(t),
            _ => None,
        }
    }

    /// The simulation result, if this is one.
    pub fn simulation(&self) -> Option<&SimulationResult> {
        match self {
            JobOutput::Simulation(s) => Some(s),
            _ => None,
        }
    }
}

/// A job: its request, state, result and events.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub request: JobSpec,
    /// The result of a complete job.
    pub result: Option<JobOutput>,
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

/// [`JobRecord`] as stored: request and result read by the job's kind.
#[derive(Deserialize)]
struct StoredJob {
    id: String,
    kind: JobKind,
    agent_id: String,
    task: String,
    status: JobStatus,
    phase: Option<String>,
    progress: f64,
    request: Value,
    result: Option<Value>,
    error: Option<ErrorDetail>,
    last_seq: u64,
    #[serde(default)]
    attempt: u32,
    created_at: f64,
    started_at: Option<f64>,
    finished_at: Option<f64>,
}

impl<'de> Deserialize<'de> for JobRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = StoredJob::deserialize(d)?;
        Ok(JobRecord {
            request: JobSpec::read(j.kind, j.request),
            result: j
                .result
                .filter(|r| !r.is_null())
                .map(|r| JobOutput::read(j.kind, r)),
            id: j.id,
            kind: j.kind,
            agent_id: j.agent_id,
            task: j.task,
            status: j.status,
            phase: j.phase,
            progress: j.progress,
            error: j.error,
            last_seq: j.last_seq,
            attempt: j.attempt,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        })
    }
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
    /// The id again, under the name the simulation endpoints use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulation_id: Option<String>,
    /// The id again, under the name the training endpoints use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_id: Option<String>,
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
    pub result: Option<JobOutput>,
    /// The auditor's verdict, when one ran.
    pub audit: Option<AuditReport>,
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

impl JobRecord {
    /// The record as listings show it: its result without the phantom paths drawn for
    /// the run (tens of KiB each); `GET /jobs/{id}` serves them.
    pub fn brief(mut self) -> Self {
        match &mut self.result {
            Some(JobOutput::Training(t)) => t.phantom = None,
            Some(JobOutput::Simulation(s)) => s.phantom = None,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A training job as the previous version stored it (request with `resolved_mode`,
    /// result as plain JSON): it reads back typed; a result of an unknown shape reads as
    /// `Other` instead of failing the record.
    #[test]
    fn stored_job_records_read_back_typed() {
        let stored = serde_json::json!({
            "id": "train_1", "kind": "training", "agent_id": "a", "task": "CartPole-v1",
            "status": "complete", "phase": "audit", "progress": 1.0,
            "request": {"agent_id": "a", "task_name": "CartPole-v1", "num_simulations": 30,
                "lora_rank": null, "learning_rate": null, "use_phantom_paths": true,
                "mode": "auto", "resolved_mode": "base"},
            "result": {"mean_return": 1.0},
            "error": null, "last_seq": 9, "created_at": 1.0, "started_at": 1.5,
            "finished_at": 2.0
        });
        let job: JobRecord = serde_json::from_value(stored.clone()).unwrap();
        match &job.request {
            JobSpec::Train(t) => {
                assert_eq!(t.resolved_mode, Some(PolicyKind::Base));
                assert_eq!(t.request.num_simulations, 30);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(job.result, Some(JobOutput::Other(_))));
        assert_eq!(job.attempt, 0);
        // Written back, the record is what was stored (plus the attempt).
        let mut back = serde_json::to_value(&job).unwrap();
        back.as_object_mut().unwrap().remove("attempt");
        assert_eq!(back, stored);
        let sim: JobRecord = serde_json::from_value(serde_json::json!({
            "id": "sim_1", "kind": "simulation", "agent_id": "a", "task": "t",
            "status": "queued", "phase": null, "progress": 0.0,
            "request": {"agent_id": "a", "task_description": "t"},
            "result": null, "error": null, "last_seq": 1, "created_at": 1.0,
            "started_at": null, "finished_at": null
        }))
        .unwrap();
        assert!(matches!(sim.request, JobSpec::Simulate(ref r) if r.num_trajectories == 10));
    }
}
