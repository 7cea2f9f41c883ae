//! The service layer: what the server does, apart from HTTP. Each job kind has one
//! executor ([`simulate`], [`train`], [`compile`]) that validates a [`JobSpec`], resolves
//! what it names (task, base policy, training run) and builds the job's work; the same
//! code runs when a request arrives and when a restart resumes a stored job. Handlers
//! (`crate::api`) parse and authorize, call in here and answer; errors here are
//! [`ServiceError`]s, which the HTTP layer maps to status codes.

pub mod agents;
pub mod compile;
pub mod simulate;
pub mod train;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use plasma_packets::signing::PacketSigner;
use plasma_protocol::{JobSpec, TaskSpec};
use plasma_world_model::PolicyModel;
use thiserror::Error;

use crate::config::Config;
use crate::error::ErrorCode;
use crate::jobs::{JobFailure, Jobs, Work};
use crate::metrics::Metrics;
use crate::pipeline::{Experience, PipelineError};
use crate::records::{JobRecord, TaskRecord};
use crate::storage::{Store, StoreError};

/// Why the service refused or could not do something.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// Something the request names does not exist (`code` says what).
    #[error("{message}")]
    NotFound {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// The request conflicts with the current state (not enough data, not complete yet).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// The request's values are out of range or do not fit what they name.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// The job queue is full.
    #[error("the job queue is full ({0} jobs queued or running); retry later")]
    QueueFull(usize),
    /// The server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (logged; clients see a generic message).
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// A missing thing.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A conflict with the current state.
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// An invalid value.
    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Result of service calls.
pub type Result<T> = std::result::Result<T, ServiceError>;

/// What the executors share: configuration, storage, the job runner, the signing key.
pub struct Service {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// The job runner.
    pub jobs: Arc<Jobs>,
    /// The packet-signing key.
    pub signer: Arc<PacketSigner>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Base policies trained or loaded by this process, by training id (adapters start
    /// from them).
    pub bases: Arc<Mutex<HashMap<String, PolicyModel>>>,
    /// Whether a world model has been fitted and checkpointed.
    pub world_model_loaded: Arc<AtomicBool>,
}

impl Service {
    /// The work of a stored job, rebuilt from its spec (a restart resumes it).
    pub async fn work_for(self: &Arc<Self>, job: &JobRecord) -> Result<Work> {
        match &job.request {
            JobSpec::Simulate(req) => Ok(simulate::prepare(self, req).await?.0),
            JobSpec::Train(spec) => Ok(train::prepare(self, &spec.request).await?.work),
            JobSpec::Compile(spec) => Ok(compile::prepare(self, spec).await?.work),
            JobSpec::Other(_) => Err(ServiceError::Internal(
                "its stored request is of a shape this version does not read".into(),
            )),
        }
    }

    /// A task that can be computed on: known, with enough experience.
    pub(crate) async fn usable_task(&self, name: &str) -> Result<TaskRecord> {
        check_id("task", name)?;
        let store = self.store.clone();
        let n = name.to_owned();
        let task = blocking(move || Ok(store.get_task(&n)?)).await?;
        let task = task.ok_or_else(|| {
            ServiceError::not_found(
                ErrorCode::UnknownTask,
                format!("unknown task {name:?}: upload experience for it first (POST /experience)"),
            )
        })?;
        let min = self.config.compute.min_transitions as u64;
        if task.transitions < min {
            return Err(ServiceError::conflict(
                ErrorCode::InsufficientData,
                format!(
                    "task {name} has {} transitions; at least {min} are needed",
                    task.transitions
                ),
            ));
        }
        Ok(task)
    }
}

/// Checks that `id` is an identifier.
pub(crate) fn check_id(what: &str, id: &str) -> Result<()> {
    plasma_protocol::validate_identifier(id)
        .map_err(|e| ServiceError::invalid(ErrorCode::InvalidIdentifier, format!("{what}: {e}")))
}

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("blocking task: {e}")))?
}

/// A job failure from a computation's error.
pub(crate) fn failure(e: PipelineError) -> JobFailure {
    match e {
        PipelineError::Cancelled => JobFailure::Cancelled,
        PipelineError::Input(message) => JobFailure::Failed {
            code: ErrorCode::InvalidInput,
            message,
        },
        PipelineError::Compute(message) => JobFailure::Failed {
            code: ErrorCode::ComputeFailed,
            message,
        },
    }
}

/// A job failure from a storage error (logged; the job says only that storage failed).
pub(crate) fn storage_failure(e: StoreError) -> JobFailure {
    tracing::error!(error = %e, "storage failure in a job");
    JobFailure::Failed {
        code: ErrorCode::StorageFailed,
        message: "storage failure (logged)".into(),
    }
}

/// A job failure from a value that does not serialize (a bug).
pub(crate) fn internal_failure(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::Failed {
        code: ErrorCode::Internal,
        message: e.to_string(),
    }
}

/// A task's stored experience, as a job computes on it.
pub(crate) fn load_experience(
    store: &dyn Store,
    task: &TaskRecord,
    max: usize,
) -> std::result::Result<Experience, JobFailure> {
    let loaded = store
        .load_experience(&task.name, max)
        .map_err(storage_failure)?;
    Ok(Experience {
        spec: job_spec(task),
        transitions: loaded.transitions,
        agent_of: loaded.agent_of,
        agents: loaded.agents,
    })
}

/// The spec a job computes with: the stored one, except that a reference environment's task
/// stored before specs declared termination rules takes its environment's rule (the spec is
/// otherwise the same), so its world model ends imagined episodes as the task does.
fn job_spec(task: &TaskRecord) -> TaskSpec {
    let mut spec = task.spec.clone();
    if task.builtin
        && spec.termination.is_none()
        && let Ok(reference) = plasma_envs::task_spec(&task.name)
        && reference.name == spec.name
        && reference.observation_space == spec.observation_space
        && reference.action_space == spec.action_space
        && reference.max_episode_steps == spec.max_episode_steps
    {
        spec.termination = reference.termination;
    }
    spec
}

/// Where a training run's policy is stored between training and compilation.
pub(crate) fn policy_key(training_id: &str) -> String {
    format!("policies/{training_id}.json")
}

/// Where the id of the base packet that adapters of a base run bind to is stored.
pub(crate) fn base_packet_key(training_id: &str) -> String {
    format!("base-packets/{training_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: TaskSpec, builtin: bool) -> TaskRecord {
        TaskRecord::new(spec, builtin, 0.0)
    }

    #[test]
    fn a_reference_task_stored_without_its_termination_rule_gets_it() {
        let reference = plasma_envs::task_spec("CartPole-v1").unwrap();
        assert!(reference.termination.is_some());
        let old = TaskSpec {
            termination: None,
            ..reference.clone()
        };
        assert_eq!(job_spec(&record(old.clone(), true)), reference);
        // An uploaded task's spec is its own, with or without a rule.
        assert_eq!(job_spec(&record(old.clone(), false)), old);
        // A stored reference spec that differs otherwise is left as it is.
        let other = TaskSpec {
            max_episode_steps: Some(200),
            ..old
        };
        assert_eq!(job_spec(&record(other.clone(), true)), other);
        let pendulum = plasma_envs::task_spec("Pendulum-v1").unwrap();
        assert_eq!(job_spec(&record(pendulum.clone(), true)), pendulum);
    }
}
