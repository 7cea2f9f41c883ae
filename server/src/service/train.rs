//! Training runs: resolve what a request trains (a base policy, or an adapter on the task's
//! base or on a named one), then run the recipe (`pipeline::train_policy`) and store the
//! policy for compilation.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use plasma_protocol::{JobOutput, JobSpec, MAX_REQUEST_COUNT, TrainJob, TrainMode, TrainRequest};
use plasma_world_model::PolicyModel;

use super::{
    Result, Service, ServiceError, blocking, check_id, failure, internal_failure, load_experience,
    policy_key, storage_failure,
};
use crate::error::ErrorCode;
use crate::jobs::{JobContext, Work};
use crate::pipeline::{self, PolicyTarget, StoredPolicy};
use crate::records::{JobKind, JobRecord, JobStatus, PolicyKind, TaskRecord};
use crate::storage::Store;

/// The smallest learning rate accepted (the OpenAPI document's minimum): below it an f32
/// fit does not move.
pub const MIN_LEARNING_RATE: f32 = 1e-9;

/// A training run's work from its (validated) request.
pub struct PreparedTraining {
    /// The work.
    pub work: Work,
    /// What the request resolved to.
    pub resolved: ResolvedTraining,
}

/// What a training request resolved to.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTraining {
    /// Base or adapter.
    pub kind: PolicyKind,
    /// The base an adapter trains on.
    pub base_training: Option<String>,
}

/// Validates a training request and resolves it (task, base policy, mode) into its work.
/// Run when the request arrives and again when a restart resumes the job.
pub async fn prepare(svc: &Arc<Service>, req: &TrainRequest) -> Result<PreparedTraining> {
    check_id("agent_id", &req.agent_id)?;
    let settings = svc.config.compute.clone();
    let rank = req.lora_rank.unwrap_or(settings.lora_rank);
    if rank == 0 || rank > plasma_packets::limits::MAX_RANK {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("lora_rank must be 1..={}", plasma_packets::limits::MAX_RANK),
        ));
    }
    let learning_rate = req
        .learning_rate
        .unwrap_or(settings.distill.fit.learning_rate);
    if !(MIN_LEARNING_RATE..=1.0).contains(&learning_rate) {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("learning_rate must be in [{MIN_LEARNING_RATE:e}, 1]"),
        ));
    }
    if req.num_simulations == 0 || req.num_simulations > MAX_REQUEST_COUNT {
        return Err(ServiceError::invalid(
            ErrorCode::InvalidRequest,
            format!("num_simulations must be 1..={MAX_REQUEST_COUNT}"),
        ));
    }
    let task = svc.usable_task(&req.task_name).await?;
    // The base an adapter trains on: the one the request names (e.g. the base of another
    // task with the same spaces, for a changed condition), else the task's own.
    let base_id = req.base_training.clone().or(task.base_training.clone());
    let base = match (&req.mode, base_id) {
        (TrainMode::Base, _) | (_, None) => None,
        (_, Some(id)) => Some((id.clone(), base_policy(svc, &id, &task).await?)),
    };
    let (kind, base) = match (req.mode, base) {
        (TrainMode::Base, _) | (TrainMode::Auto, None) => (PolicyKind::Base, None),
        (TrainMode::Adapter | TrainMode::Auto, Some(b)) => (PolicyKind::Adapter, Some(b)),
        (TrainMode::Adapter, None) => {
            return Err(ServiceError::conflict(
                ErrorCode::NoBasePolicy,
                format!(
                    "task {} has no base policy yet: train one first (mode \"base\") or name one (base_training)",
                    task.name
                ),
            ));
        }
    };
    let base_training = base.as_ref().map(|(id, _)| id.clone());
    let store = svc.store.clone();
    let bases = svc.bases.clone();
    let loaded = svc.world_model_loaded.clone();
    let max = svc.config.storage.max_task_transitions;
    let use_phantom_paths = req.use_phantom_paths;
    let label_states = req.num_simulations;
    let alpha = settings.lora_alpha;
    let base_for_job = base_training.clone();
    let work: Work = Box::new(move |ctx: &JobContext| {
        let exp = load_experience(store.as_ref(), &task, max)?;
        let root = store.model_root(&task.name);
        let prior = base_for_job
            .as_deref()
            .and_then(|id| base_world_model(store.as_ref(), id, &task.name));
        let target = match &base {
            Some((_, model)) => PolicyTarget::Adapter {
                base: model,
                rank,
                alpha,
            },
            None => PolicyTarget::Base,
        };
        let id = ctx.job_id();
        let params = pipeline::TrainParams {
            target,
            label_states,
            learning_rate,
            use_phantom_paths,
            prior_model: prior.as_deref(),
            training_id: &id,
            base_training: base_for_job.as_deref(),
        };
        let mut progress = ctx;
        let trained = pipeline::train_policy(&exp, &settings, &params, &root, &mut progress)
            .map_err(failure)?;
        loaded.store(true, Ordering::Relaxed);
        let stored = StoredPolicy::new(
            &task.name,
            &id,
            base_for_job.clone(),
            &trained.policy,
            trained.verdict.clone(),
        )
        .map_err(failure)?;
        let bytes = serde_json::to_vec(&stored).map_err(internal_failure)?;
        store
            .put_blob(&policy_key(&id), &bytes)
            .map_err(storage_failure)?;
        if base_for_job.is_none() {
            store
                .set_base_training(&task.name, &id)
                .map_err(storage_failure)?;
            if let Ok(mut b) = bases.lock() {
                b.insert(id.clone(), trained.policy);
            }
        }
        Ok(JobOutput::Training(trained.result))
    });
    Ok(PreparedTraining {
        work,
        resolved: ResolvedTraining {
            kind,
            base_training,
        },
    })
}

/// Accepts a training run: resolved, stored as a queued job, run when a slot frees.
pub async fn start(svc: &Arc<Service>, req: TrainRequest) -> Result<(JobRecord, ResolvedTraining)> {
    let prepared = prepare(svc, &req).await?;
    let (agent, task) = (req.agent_id.clone(), req.task_name.clone());
    let spec = JobSpec::Train(TrainJob {
        request: req,
        resolved_mode: Some(prepared.resolved.kind),
    });
    let (job, _) = svc
        .jobs
        .submit(JobKind::Training, &agent, &task, spec, prepared.work)
        .await?;
    Ok((job, prepared.resolved))
}

/// The checkpoint of the world model that base `base_training` was distilled in, when that
/// base belongs to another task than `task`: an adapter to a changed condition fine-tunes
/// it on the condition's experience. `None` for a base of the same task (its model is
/// refitted on all of the task's experience, the base's included) and for a run that
/// recorded no checkpoint.
fn base_world_model(store: &dyn Store, base_training: &str, task: &str) -> Option<PathBuf> {
    let job = store.get_job(base_training).ok().flatten()?;
    if job.task == task {
        return None;
    }
    // A model fitted on experience deleted since is not reused: the adapter fits afresh.
    let loaded_at = job.started_at.unwrap_or(job.created_at);
    let base_task = store.get_task(&job.task).ok().flatten()?;
    if base_task
        .deletions
        .iter()
        .any(|d| d.oldest_upload_at <= loaded_at)
    {
        tracing::info!(
            base_training,
            "the base's world model saw deleted experience; not used as a prior"
        );
        return None;
    }
    let name = job
        .result
        .as_ref()?
        .training()?
        .world_model
        .checkpoint
        .clone()?;
    // Written by this server, read back from storage: only a plain directory name.
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return None;
    }
    Some(store.model_root(&job.task).join(name))
}

/// The base policy of training run `id`, from memory or reloaded from its stored weights
/// (after a restart), checked against `task`'s spaces.
async fn base_policy(svc: &Service, id: &str, task: &TaskRecord) -> Result<PolicyModel> {
    check_id("base_training", id)?;
    if let Some(p) = svc.bases.lock().ok().and_then(|b| b.get(id).cloned()) {
        return check_base_fits(id, p, task);
    }
    let store = svc.store.clone();
    let device = svc.config.compute.device.clone();
    let key = id.to_owned();
    let policy = blocking(move || {
        let not_a_base = || {
            ServiceError::not_found(
                ErrorCode::UnknownBase,
                format!("{key:?} is not a complete base-policy training run"),
            )
        };
        let job = store.get_job(&key)?.ok_or_else(not_a_base)?;
        if job.kind != JobKind::Training || job.status != JobStatus::Complete {
            return Err(not_a_base());
        }
        let bytes = store.get_blob(&policy_key(&key))?.ok_or_else(not_a_base)?;
        let stored: StoredPolicy = serde_json::from_slice(&bytes)
            .map_err(|e| ServiceError::Internal(format!("policy of {key}: {e}")))?;
        if stored.lora.is_some() {
            return Err(not_a_base());
        }
        let device = plasma_world_model::parse_device(&device)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        PolicyModel::from_float_policy(&stored.network, &device)
            .map_err(|e| ServiceError::Internal(format!("policy of {key}: {e}")))
    })
    .await?;
    if let Ok(mut b) = svc.bases.lock() {
        b.insert(id.to_owned(), policy.clone());
    }
    check_base_fits(id, policy, task)
}

fn check_base_fits(id: &str, policy: PolicyModel, task: &TaskRecord) -> Result<PolicyModel> {
    let obs = task.spec.observation_space.dim();
    let space = plasma_world_model::policy::action_space_for(
        &task.spec.action_space,
        policy.config().continuous_mapping,
    )
    .ok();
    if policy.obs_dim() != obs || space.as_ref() != Some(policy.action_space()) {
        // Like a missing base, a state of the stored resources (409), not a malformed
        // request: the same request fits a base of matching spaces.
        return Err(ServiceError::conflict(
            ErrorCode::BaseMismatch,
            format!(
                "base policy {id} does not fit task {}: its observation or action space differs",
                task.name
            ),
        ));
    }
    Ok(policy)
}
