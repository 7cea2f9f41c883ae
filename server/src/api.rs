//! Request and response types and the HTTP handlers.
//!
//! The rows of DESIGN.md's API table keep the Python prototype's shapes (more fields are
//! added, none removed or renamed).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, extract::rejection::BytesRejection};
use plasma_packets::codec::Digest;
use plasma_packets::model::Provenance;
use plasma_protocol::{TaskSpec, validate_identifier};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use utoipa::IntoParams;

pub use plasma_protocol::{
    CompileRequest, CompileResponse, ExperienceAccepted, Health, JobStatusView, JobView,
    SigningKey, SimulateAccepted, SimulateRequest, Status, TrainAccepted, TrainHistory, TrainMode,
    TrainRequest,
};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::jobs::{JobContext, JobFailure, Work};
use crate::pipeline::{self, Experience, PipelineError, PolicyTarget, StoredPolicy};
use crate::records::{
    ChunkRecord, DeletionRecord, JobEvent, JobKind, JobRecord, JobStatus, PacketRecord, PolicyKind,
    TaskRecord, now_secs,
};
use crate::storage::Store;
use plasma_world_model::PolicyModel;

pub mod experience;
pub use experience::{delete_experience, list_experience, upload_experience};

/// A JSON body whose rejections are [`ApiError`]s: malformed JSON is 400 `invalid_json`,
/// JSON of the wrong shape 422 `invalid_request`, a body over the limit 413, a non-JSON
/// content type 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if let Some(ct) = &content_type
            && !ct.starts_with("application/json")
            && !ct.contains("+json")
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected application/json, got {ct}"
            )));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|e: BytesRejection| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request(ErrorCode::UnreadableBody, e.body_text())
            }
        })
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::unprocessable(ErrorCode::InvalidRequest, e.to_string())
        }
        _ => ApiError::bad_request(ErrorCode::InvalidJson, e.to_string()),
    })
}

pub(crate) fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    validate_identifier(id)
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidIdentifier, format!("{what}: {e}")))
}

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

// ---------------------------------------------------------------- health and status

/// Liveness, in the Python prototype's shape.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub async fn health(State(st): State<Arc<AppState>>) -> Json<Health> {
    Json(Health {
        status: "healthy".into(),
        timestamp: now_secs(),
        world_model_loaded: st.world_model_loaded.load(Ordering::Relaxed),
        active_simulations: st.jobs.active_of(JobKind::Simulation),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Readiness: 200 when serving, 503 while starting or draining.
#[utoipa::path(get, path = "/ready", responses((status = 200), (status = 503, body = ErrorBody)))]
pub async fn ready(State(st): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    if st.ready.load(Ordering::SeqCst) {
        Ok(Json(json!({ "ready": true })))
    } else {
        Err(ApiError::Unavailable(
            "not ready (starting or shutting down)".into(),
        ))
    }
}

/// Version, device, queue and storage figures.
#[utoipa::path(get, path = "/status", responses((status = 200, body = Status)))]
pub async fn status(State(st): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    let store = st.store.clone();
    let (tasks, models, packets) = blocking(move || {
        let tasks = store.list_tasks()?.len();
        let models = store
            .list_jobs(None, Some(JobKind::Training))?
            .iter()
            .filter(|j| j.status == JobStatus::Complete)
            .count();
        Ok((tasks, models, store.count_packets()?))
    })
    .await?;
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        device: st.config.compute.device.clone(),
        queue_depth: st.jobs.queued(),
        running_jobs: st.jobs.running(),
        max_concurrent_jobs: st.config.jobs.max_concurrent,
        queue_capacity: st.config.jobs.queue_capacity,
        tasks,
        stored_models: models,
        stored_packets: packets,
        open_access: st.auth.is_open(),
        uptime_secs: st.started.elapsed().as_secs_f64(),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, content_type = "text/plain")))]
pub async fn metrics(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = st.store.clone();
    let packets = blocking(move || Ok(store.count_packets()?)).await?;
    let text = st.metrics.render(
        st.jobs.queued(),
        st.jobs.running(),
        packets,
        st.started.elapsed().as_secs_f64(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// The packet-signing public key.
#[utoipa::path(get, path = "/signing-key", responses((status = 200, body = SigningKey)))]
pub async fn signing_key(State(st): State<Arc<AppState>>) -> Json<SigningKey> {
    Json(SigningKey {
        algorithm: "ed25519".into(),
        public_key: st.signer.public_key().to_hex(),
    })
}

// ---------------------------------------------------------------- tasks and experience

/// Registers a task from its spec (admin). Reference environments (`CartPole-v1`, …) are
/// known without registration.
#[utoipa::path(post, path = "/tasks", request_body(content = Object, description = "plasma-protocol TaskSpec"),
    responses((status = 400, body = ErrorBody), (status = 201, body = TaskRecord), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn register_task(
    State(st): State<Arc<AppState>>,
    ApiJson(spec): ApiJson<TaskSpec>,
) -> Result<(StatusCode, Json<TaskRecord>), ApiError> {
    spec.validate()
        .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidTask, e.to_string()))?;
    let store = st.store.clone();
    let record = blocking(move || {
        if let Some(existing) = store.get_task(&spec.name)? {
            if existing.spec == spec {
                return Ok(existing);
            }
            return Err(ApiError::conflict(
                ErrorCode::TaskExists,
                format!("task {} exists with another spec", spec.name),
            ));
        }
        let now = now_secs();
        let record = TaskRecord {
            name: spec.name.clone(),
            spec,
            builtin: false,
            transitions: 0,
            chunks: 0,
            agents: vec![],
            base_training: None,
            agent_transitions: Default::default(),
            next_chunk: 0,
            deletions: vec![],
            created_at: now,
            updated_at: now,
        };
        store.put_task(&record)?;
        Ok(record)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// Known tasks.
#[utoipa::path(get, path = "/tasks", responses((status = 200, body = [TaskRecord])))]
pub async fn list_tasks(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<TaskRecord>>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || Ok(store.list_tasks()?)).await?))
}

/// One task.
#[utoipa::path(get, path = "/tasks/{name}", params(("name" = String, Path)),
    responses((status = 200, body = TaskRecord), (status = 404, body = ErrorBody)))]
pub async fn get_task(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<TaskRecord>, ApiError> {
    let store = st.store.clone();
    let task = blocking(move || Ok(store.get_task(&name)?)).await?;
    task.map(Json)
        .ok_or_else(|| ApiError::not_found(ErrorCode::UnknownTask, "no such task"))
}

/// The spec of a task: stored, or a reference environment's.
pub(crate) fn resolve_spec(store: &dyn Store, name: &str) -> Result<(TaskSpec, bool), ApiError> {
    if let Some(t) = store.get_task(name)? {
        return Ok((t.spec, t.builtin));
    }
    match plasma_envs::task_spec(name) {
        Ok(spec) => Ok((spec, true)),
        Err(_) => Err(ApiError::not_found(
            ErrorCode::UnknownTask,
            format!(
                "unknown task {name:?}: register it with POST /tasks or use a reference environment ({})",
                plasma_envs::ENV_IDS.join(", ")
            ),
        )),
    }
}

// ---------------------------------------------------------------- jobs

async fn load_job(st: &AppState, id: String) -> Result<(JobRecord, Vec<JobEvent>), ApiError> {
    if let Some(live) = st.jobs.live_job(&id) {
        return Ok(live);
    }
    let store = st.store.clone();
    blocking(move || {
        let job = store
            .get_job(&id)?
            .ok_or_else(|| ApiError::not_found(ErrorCode::UnknownJob, format!("no job {id:?}")))?;
        let events = store.job_events(&id)?;
        Ok((job, events))
    })
    .await
}

/// A job's state, result and events.
#[utoipa::path(get, path = "/jobs/{id}", params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let (job, events) = load_job(&st, id).await?;
    Ok(Json(JobView { job, events }))
}

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct JobQuery {
    /// Only this agent's jobs.
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub agent_id: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
    /// At most this many (default 100; more than 1,000 reads as 1,000).
    #[param(minimum = 0)]
    pub limit: Option<usize>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/jobs", params(JobQuery), responses((status = 400, body = ErrorBody), (status = 200, body = [JobRecord])))]
pub async fn list_jobs(
    State(st): State<Arc<AppState>>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Vec<JobRecord>>, ApiError> {
    let store = st.store.clone();
    let jobs = blocking(move || {
        let mut jobs = store.list_jobs(q.agent_id.as_deref(), q.kind)?;
        jobs.truncate(q.limit.unwrap_or(100).min(1000));
        Ok(jobs)
    })
    .await?;
    Ok(Json(jobs))
}

/// Cancels a queued or running job (admin). 409 if it has already ended.
#[utoipa::path(post, path = "/jobs/{id}/cancel", params(("id" = String, Path)),
    responses((status = 202, body = JobRecord), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel_job(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    if st.jobs.cancel(&id) {
        let (job, _) = load_job(&st, id).await?;
        return Ok((StatusCode::ACCEPTED, Json(job)));
    }
    let (job, _) = load_job(&st, id).await?;
    Err(ApiError::conflict(
        ErrorCode::JobFinished,
        format!("job {} has already ended ({})", job.id, job.status.as_str()),
    ))
}

fn failure(e: PipelineError) -> JobFailure {
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

fn storage_failure(e: crate::storage::StoreError) -> JobFailure {
    tracing::error!(error = %e, "storage failure in a job");
    JobFailure::Failed {
        code: ErrorCode::StorageFailed,
        message: "storage failure (logged)".into(),
    }
}

/// A task that can be computed on: known, with enough experience.
async fn usable_task(st: &AppState, name: &str) -> Result<TaskRecord, ApiError> {
    check_id("task", name)?;
    let store = st.store.clone();
    let n = name.to_owned();
    let task = blocking(move || Ok(store.get_task(&n)?)).await?;
    let task = task.ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::UnknownTask,
            format!("unknown task {name:?}: upload experience for it first (POST /experience)"),
        )
    })?;
    let min = st.config.compute.min_transitions as u64;
    if task.transitions < min {
        return Err(ApiError::conflict(
            ErrorCode::InsufficientData,
            format!(
                "task {name} has {} transitions; at least {min} are needed",
                task.transitions
            ),
        ));
    }
    Ok(task)
}

fn load_experience(
    store: &dyn Store,
    task: &TaskRecord,
    max: usize,
) -> Result<Experience, JobFailure> {
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

// ---------------------------------------------------------------- simulate

/// Starts a phantom-path simulation → 202.
#[utoipa::path(post, path = "/simulate", request_body = SimulateRequest,
    responses((status = 400, body = ErrorBody), (status = 202, body = SimulateAccepted), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn simulate(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<SimulateRequest>,
) -> Result<(StatusCode, Json<SimulateAccepted>), ApiError> {
    check_id("agent_id", &req.agent_id)?;
    caller.speak_for(&req.agent_id)?;
    st.limits.request(&req.agent_id)?;
    let (work, paths) = prepare_simulation(&st, &req).await?;
    let request = serde_json::to_value(&req).unwrap_or(Value::Null);
    let (job, _) = st.jobs.submit(
        JobKind::Simulation,
        &req.agent_id,
        &req.task_description,
        request,
        work,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SimulateAccepted {
            simulation_id: job.id.clone(),
            status: "started".into(),
            message: format!(
                "simulating {} phantom paths on {}; poll /simulate/{} or listen on /ws/{}",
                paths, req.task_description, job.id, req.agent_id
            ),
        }),
    ))
}

/// Validates a simulation request and builds its work; returns it with how many paths it
/// drives. Run when the request arrives and again when a restart resumes the job.
pub(crate) async fn prepare_simulation(
    st: &Arc<AppState>,
    req: &SimulateRequest,
) -> Result<(Work, usize), ApiError> {
    if req.num_trajectories == 0 {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            "num_trajectories must be at least 1",
        ));
    }
    if req.horizon == Some(0) || req.horizon.is_some_and(|h| h > 1000) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            "horizon must be 1..=1000",
        ));
    }
    let task = usable_task(st, &req.task_description).await?;
    let settings = st.config.compute.clone();
    let params = pipeline::SimulateParams {
        paths: req.num_trajectories.min(settings.max_trajectories),
        horizon: req.horizon.unwrap_or(settings.simulate_horizon),
        audit: req.adversarial_audit,
    };
    let store = st.store.clone();
    let max = st.config.storage.max_task_transitions;
    let loaded = st.world_model_loaded.clone();
    let paths = params.paths;
    let work: Work = Box::new(move |ctx: &JobContext| {
        let exp = load_experience(store.as_ref(), &task, max)?;
        let root = store.model_root(&task.name);
        let mut progress = ctx;
        let result =
            pipeline::simulate(&exp, &settings, &params, &root, &mut progress).map_err(failure)?;
        loaded.store(true, Ordering::Relaxed);
        Ok(result)
    });
    Ok((work, paths))
}

fn status_view(job: JobRecord, id_field: &str) -> Value {
    let audit = job.result.as_ref().and_then(|r| r.get("audit")).cloned();
    let view = JobStatusView {
        id: job.id.clone(),
        status: job.status,
        progress: job.progress,
        phase: job.phase,
        agent_id: job.agent_id,
        task: job.task,
        result: job.result,
        audit: audit.filter(|a| !a.is_null()),
        error: job.error.as_ref().map(|e| e.message.clone()),
        error_code: job.error.map(|e| e.code),
        last_seq: job.last_seq,
        attempt: job.attempt,
        created_at: job.created_at,
        finished_at: job.finished_at,
    };
    let mut v = serde_json::to_value(view).unwrap_or(Value::Null);
    v[id_field] = Value::String(job.id);
    v
}

async fn job_of_kind(st: &AppState, id: String, kind: JobKind) -> Result<JobRecord, ApiError> {
    let (job, _) = load_job(st, id.clone()).await?;
    if job.kind != kind {
        return Err(ApiError::not_found(
            ErrorCode::UnknownJob,
            format!("{id:?} is not a {} job", kind.as_str()),
        ));
    }
    Ok(job)
}

/// A simulation's status, progress, result and audit.
#[utoipa::path(get, path = "/simulate/{simulation_id}", params(("simulation_id" = String, Path)),
    responses((status = 200, body = JobStatusView), (status = 404, body = ErrorBody)))]
pub async fn get_simulation(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = job_of_kind(&st, id, JobKind::Simulation).await?;
    Ok(Json(status_view(job, "simulation_id")))
}

// ---------------------------------------------------------------- train

/// Starts training a base policy or a LoRA adapter → 202.
#[utoipa::path(post, path = "/train", request_body = TrainRequest,
    responses((status = 400, body = ErrorBody), (status = 202, body = TrainAccepted), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn train(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<TrainRequest>,
) -> Result<(StatusCode, Json<TrainAccepted>), ApiError> {
    check_id("agent_id", &req.agent_id)?;
    let prepared = prepare_training(&st, &req).await?;
    let (kind, base_training) = (prepared.kind, prepared.base_training.clone());
    let mut request = serde_json::to_value(&req).unwrap_or(Value::Null);
    request["resolved_mode"] = json!(kind);
    let (job, _) = st.jobs.submit(
        JobKind::Training,
        &req.agent_id,
        &req.task_name,
        request,
        prepared.work,
    )?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TrainAccepted {
            training_id: job.id.clone(),
            status: "started".into(),
            mode: kind,
            base_training,
            message: format!(
                "training a {} policy on {}; poll /train/{} or listen on /ws/{}",
                match kind {
                    PolicyKind::Base => "base",
                    PolicyKind::Adapter => "LoRA adapter",
                },
                req.task_name,
                job.id,
                req.agent_id
            ),
        }),
    ))
}

/// A training run's work from its (validated) request.
pub(crate) struct PreparedTraining {
    /// The work.
    pub work: Work,
    /// Base or adapter, as resolved.
    pub kind: PolicyKind,
    /// The base an adapter trains on.
    pub base_training: Option<String>,
}

/// Validates a training request and resolves it (task, base policy, mode) into its work.
/// Run when the request arrives and again when a restart resumes the job.
pub(crate) async fn prepare_training(
    st: &Arc<AppState>,
    req: &TrainRequest,
) -> Result<PreparedTraining, ApiError> {
    let settings = st.config.compute.clone();
    let rank = req.lora_rank.unwrap_or(settings.lora_rank);
    if rank == 0 || rank > plasma_packets::limits::MAX_RANK {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            format!("lora_rank must be 1..={}", plasma_packets::limits::MAX_RANK),
        ));
    }
    let learning_rate = req
        .learning_rate
        .unwrap_or(settings.distill.fit.learning_rate);
    if !(learning_rate.is_finite() && learning_rate > 0.0 && learning_rate <= 1.0) {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            "learning_rate must be in (0, 1]",
        ));
    }
    if req.num_simulations == 0 {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            "num_simulations must be at least 1",
        ));
    }
    let task = usable_task(st, &req.task_name).await?;
    // The base an adapter trains on: the one the request names (e.g. the base of another
    // task with the same spaces, for a changed condition), else the task's own.
    let base_id = req.base_training.clone().or(task.base_training.clone());
    let base = match (&req.mode, base_id) {
        (TrainMode::Base, _) | (_, None) => None,
        (_, Some(id)) => Some((id.clone(), base_policy(st, &id, &task).await?)),
    };
    let (kind, base) = match (req.mode, base) {
        (TrainMode::Base, _) | (TrainMode::Auto, None) => (PolicyKind::Base, None),
        (TrainMode::Adapter | TrainMode::Auto, Some(b)) => (PolicyKind::Adapter, Some(b)),
        (TrainMode::Adapter, None) => {
            return Err(ApiError::conflict(
                ErrorCode::NoBasePolicy,
                format!(
                    "task {} has no base policy yet: train one first (mode \"base\") or name one (base_training)",
                    task.name
                ),
            ));
        }
    };
    let base_training = base.as_ref().map(|(id, _)| id.clone());
    let store = st.store.clone();
    let bases = st.bases.clone();
    let loaded = st.world_model_loaded.clone();
    let max = st.config.storage.max_task_transitions;
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
        let params = pipeline::TrainParams {
            target,
            label_states,
            learning_rate,
            use_phantom_paths,
            prior_model: prior.as_deref(),
        };
        let mut progress = ctx;
        let trained = pipeline::train_policy(&exp, &settings, &params, &root, &mut progress)
            .map_err(failure)?;
        loaded.store(true, Ordering::Relaxed);
        let id = ctx.job_id();
        let stored = StoredPolicy::new(
            &task.name,
            &id,
            base_for_job.clone(),
            &trained.policy,
            trained.verdict.clone(),
        )
        .map_err(failure)?;
        let bytes = serde_json::to_vec(&stored).map_err(|e| JobFailure::Failed {
            code: ErrorCode::Internal,
            message: e.to_string(),
        })?;
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
        let mut result = trained.metrics;
        result["training_id"] = json!(id);
        result["task"] = json!(task.name);
        result["base_training"] = json!(base_for_job);
        result["trained_lora_path"] = json!(format!("checkpoints/{id}"));
        result["verdict_approved"] = json!(trained.verdict.approved);
        Ok(result)
    });
    Ok(PreparedTraining {
        work,
        kind,
        base_training,
    })
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
    let name = job.result.as_ref()?["world_model"]["checkpoint"].as_str()?;
    // Written by this server, read back from storage: only a plain directory name.
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return None;
    }
    Some(store.model_root(&job.task).join(name))
}

/// The base policy of training run `id`, from memory or reloaded from its stored weights
/// (after a restart), checked against `task`'s spaces.
async fn base_policy(st: &AppState, id: &str, task: &TaskRecord) -> Result<PolicyModel, ApiError> {
    check_id("base_training", id)?;
    if let Some(p) = st.bases.lock().ok().and_then(|b| b.get(id).cloned()) {
        return check_base_fits(id, p, task);
    }
    let store = st.store.clone();
    let device = st.config.compute.device.clone();
    let key = id.to_owned();
    let policy = blocking(move || {
        let not_a_base = || {
            ApiError::not_found(
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
            .map_err(|e| ApiError::Internal(format!("policy of {key}: {e}")))?;
        if stored.lora.is_some() {
            return Err(not_a_base());
        }
        let device = plasma_world_model::parse_device(&device)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        PolicyModel::from_float_policy(&stored.network.to_float(), &device)
            .map_err(|e| ApiError::Internal(format!("policy of {key}: {e}")))
    })
    .await?;
    if let Ok(mut b) = st.bases.lock() {
        b.insert(id.to_owned(), policy.clone());
    }
    check_base_fits(id, policy, task)
}

fn check_base_fits(
    id: &str,
    policy: PolicyModel,
    task: &TaskRecord,
) -> Result<PolicyModel, ApiError> {
    let obs = task.spec.observation_space.dim();
    let space = plasma_world_model::policy::action_space_for(
        &task.spec.action_space,
        policy.config().continuous_mapping,
    )
    .ok();
    if policy.obs_dim() != obs || space.as_ref() != Some(policy.action_space()) {
        return Err(ApiError::unprocessable(
            ErrorCode::BaseMismatch,
            format!(
                "base policy {id} does not fit task {}: its observation or action space differs",
                task.name
            ),
        ));
    }
    Ok(policy)
}

fn policy_key(training_id: &str) -> String {
    format!("policies/{training_id}.json")
}

fn base_packet_key(training_id: &str) -> String {
    format!("base-packets/{training_id}")
}

/// A training run's status, progress, metrics and audit.
#[utoipa::path(get, path = "/train/{training_id}", params(("training_id" = String, Path)),
    responses((status = 200, body = JobStatusView), (status = 404, body = ErrorBody)))]
pub async fn get_training(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = job_of_kind(&st, id, JobKind::Training).await?;
    Ok(Json(status_view(job, "training_id")))
}

/// An agent's training runs.
#[utoipa::path(get, path = "/train/history/{agent_id}", params(("agent_id" = String, Path)),
    responses((status = 400, body = ErrorBody), (status = 200, body = TrainHistory), (status = 422, body = ErrorBody)))]
pub async fn train_history(
    State(st): State<Arc<AppState>>,
    Path(agent_id): Path<String>,
) -> Result<Json<TrainHistory>, ApiError> {
    check_id("agent_id", &agent_id)?;
    let store = st.store.clone();
    let agent = agent_id.clone();
    let jobs =
        blocking(move || Ok(store.list_jobs(Some(&agent), Some(JobKind::Training))?)).await?;
    let history = jobs
        .into_iter()
        .map(|j| {
            let mut v = status_view(j.clone(), "training_id");
            v["task_name"] = json!(j.task);
            v["mode"] = j
                .request
                .get("resolved_mode")
                .cloned()
                .unwrap_or(Value::Null);
            v["request"] = j.request;
            v
        })
        .collect();
    Ok(Json(TrainHistory { agent_id, history }))
}

// ---------------------------------------------------------------- packets

/// Compiles a trained policy or adapter into a signed int8 packet.
#[utoipa::path(post, path = "/instruction-packet/compile", request_body = CompileRequest,
    responses((status = 400, body = ErrorBody), (status = 200, body = CompileResponse), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn compile(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CompileRequest>,
) -> Result<Json<CompileResponse>, ApiError> {
    check_id("agent_id", &req.agent_id)?;
    if req.target_device.is_empty() || req.target_device.len() > 64 {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            "target_device must be 1 to 64 characters",
        ));
    }
    let name = req
        .trained_lora_path
        .as_deref()
        .map(|p| p.trim_end_matches('/').rsplit('/').next().unwrap_or(""))
        .map(|p| p.strip_suffix(".json").unwrap_or(p))
        .unwrap_or("");
    let store = st.store.clone();
    let agent = req.agent_id.clone();
    let name = name.to_owned();
    let (training, policy) = blocking(move || {
        let training = if name.is_empty() || name == "latest" {
            store
                .list_jobs(Some(&agent), Some(JobKind::Training))?
                .into_iter()
                .find(|j| j.status == JobStatus::Complete)
                .ok_or_else(|| {
                    ApiError::not_found(
                        ErrorCode::UnknownTraining,
                        format!("agent {agent} has no complete training run"),
                    )
                })?
        } else {
            store
                .get_job(&name)?
                .filter(|j| j.kind == JobKind::Training)
                .ok_or_else(|| {
                    ApiError::not_found(
                        ErrorCode::UnknownTraining,
                        format!("no training run {name:?}"),
                    )
                })?
        };
        if training.status != JobStatus::Complete {
            return Err(ApiError::conflict(
                ErrorCode::TrainingNotComplete,
                format!(
                    "training run {} is {}",
                    training.id,
                    training.status.as_str()
                ),
            ));
        }
        let bytes = store
            .get_blob(&policy_key(&training.id))?
            .ok_or_else(|| ApiError::Internal(format!("policy of {} missing", training.id)))?;
        let policy: StoredPolicy = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(format!("policy of {}: {e}", training.id)))?;
        Ok((training, policy))
    })
    .await?;
    let audit = match policy.verdict.audit_status(req.force) {
        Some(a) => a,
        None => {
            return Err(ApiError::conflict(
                ErrorCode::AuditRejected,
                format!(
                    "the auditor rejected training run {}: {}; pass \"force\": true to deploy anyway",
                    training.id,
                    policy.verdict.reasons.join("; ")
                ),
            ));
        }
    };
    let signer = st.signer.clone();
    let store = st.store.clone();
    let metrics = st.metrics.clone();
    let packets = st.config.packets.clone();
    let target_device = req.target_device.clone();
    let agent = req.agent_id.clone();
    let training_id = training.id.clone();
    let work = Box::new(move |ctx: &JobContext| {
        let level = packets.compression_level;
        let provenance =
            |agent_id: &str, training_run: &str, verdict: &plasma_world_model::audit::Verdict| {
                Provenance {
                    task: policy.task.clone(),
                    agent_id: agent_id.to_owned(),
                    training_run: training_run.to_owned(),
                    created_unix_ms: (now_secs() * 1000.0) as u64,
                    audit: verdict.audit_status(true).unwrap_or(audit),
                    audit_summary: verdict.summary(200),
                }
            };
        let record = |built: &plasma_world_model::BuiltPacket,
                      kind: PolicyKind,
                      agent_id: &str,
                      training_run: &str,
                      base: Option<String>,
                      audit: plasma_packets::AuditStatus,
                      summary: String| PacketRecord {
            packet_id: built.digest.to_hex(),
            kind,
            agent_id: agent_id.to_owned(),
            task: policy.task.clone(),
            training_id: training_run.to_owned(),
            base_packet_id: base,
            size: built.bytes.len() as u64,
            target_device: target_device.clone(),
            quantization: packets.quantization.clone(),
            compression_level: level,
            audit: format!("{audit:?}"),
            audit_summary: summary,
            signed_by: signer.public_key().to_hex(),
            created_at: now_secs(),
            trained_on_deleted_data: false,
        };
        ctx.progress("compile", 0.1, None);
        let (built, kind, base_id) = match &policy.base_training {
            None => {
                let mut prov = provenance(&agent, &training_id, &policy.verdict);
                prov.audit = audit;
                let built = pipeline::compile_base(&policy, prov.clone(), &signer, level)
                    .map_err(failure)?;
                (built, PolicyKind::Base, None)
            }
            Some(base_training) => {
                // The adapter binds to the base packet of its base run: reuse it, or
                // compile it once.
                let existing = store
                    .get_blob(&base_packet_key(base_training))
                    .map_err(storage_failure)?
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|id| store.get_packet(id).ok().flatten().is_some());
                let base_id = match existing {
                    Some(id) => id,
                    None => {
                        let bytes = store
                            .get_blob(&policy_key(base_training))
                            .map_err(storage_failure)?
                            .ok_or(JobFailure::Failed {
                                code: ErrorCode::BaseMissing,
                                message: format!("the base policy {base_training} is missing"),
                            })?;
                        let base: StoredPolicy =
                            serde_json::from_slice(&bytes).map_err(|e| JobFailure::Failed {
                                code: ErrorCode::Internal,
                                message: e.to_string(),
                            })?;
                        let prov = provenance("", base_training, &base.verdict);
                        let built = pipeline::compile_base(&base, prov.clone(), &signer, level)
                            .map_err(failure)?;
                        let rec = record(
                            &built,
                            PolicyKind::Base,
                            "",
                            base_training,
                            None,
                            prov.audit,
                            prov.audit_summary.clone(),
                        );
                        store
                            .put_packet(&rec, &built.bytes, false)
                            .map_err(storage_failure)?;
                        store
                            .put_blob(&base_packet_key(base_training), rec.packet_id.as_bytes())
                            .map_err(storage_failure)?;
                        metrics.packet_compiled();
                        rec.packet_id
                    }
                };
                let digest: Digest = base_id.parse().map_err(|_| JobFailure::Failed {
                    code: ErrorCode::Internal,
                    message: format!("bad base packet id {base_id}"),
                })?;
                let mut prov = provenance(&agent, &training_id, &policy.verdict);
                prov.audit = audit;
                let built = pipeline::compile_adapter(&policy, digest, prov, &signer, level)
                    .map_err(failure)?;
                (built, PolicyKind::Adapter, Some(base_id))
            }
        };
        let rec = record(
            &built,
            kind,
            &agent,
            &training_id,
            base_id,
            audit,
            policy.verdict.summary(200),
        );
        store
            .put_packet(&rec, &built.bytes, true)
            .map_err(storage_failure)?;
        // The first base packet of a run is the one later adapters bind to: the packet
        // its agents already run.
        if kind == PolicyKind::Base
            && store
                .get_blob(&base_packet_key(&training_id))
                .map_err(storage_failure)?
                .is_none()
        {
            store
                .put_blob(&base_packet_key(&training_id), rec.packet_id.as_bytes())
                .map_err(storage_failure)?;
        }
        metrics.packet_compiled();
        serde_json::to_value(&rec).map_err(|e| JobFailure::Failed {
            code: ErrorCode::Internal,
            message: e.to_string(),
        })
    });
    let request = serde_json::to_value(&req).unwrap_or(Value::Null);
    let (_, done) = st.jobs.submit(
        JobKind::Compilation,
        &req.agent_id,
        &training.task,
        request,
        work,
    )?;
    let job = done
        .await
        .map_err(|_| ApiError::Internal("compilation job vanished".into()))?;
    let rec: PacketRecord = match (&job.status, &job.result) {
        (JobStatus::Complete, Some(r)) => serde_json::from_value(r.clone())
            .map_err(|e| ApiError::Internal(format!("compilation result: {e}")))?,
        (JobStatus::Failed, _) => {
            let e = job.error.unwrap_or(crate::error::ErrorDetail {
                code: ErrorCode::Internal.into(),
                message: "compilation failed".into(),
            });
            return Err(if e.kind() == ErrorCode::InvalidInput {
                ApiError::unprocessable(ErrorCode::CompileFailed, e.message)
            } else {
                ApiError::Internal(e.message)
            });
        }
        _ => {
            return Err(ApiError::Unavailable(format!(
                "compilation {}",
                job.status.as_str()
            )));
        }
    };
    Ok(Json(CompileResponse {
        status: "compiled".into(),
        agent_id: req.agent_id.clone(),
        download_url: format!("/instruction-packet/download/{}", rec.packet_id),
        base_download_url: rec
            .base_packet_id
            .as_ref()
            .map(|b| format!("/instruction-packet/download/{b}")),
        base_packet_id: rec.base_packet_id.clone(),
        packet_size: rec.size,
        kind: rec.kind,
        compilation_id: job.id,
        training_id: rec.training_id.clone(),
        message: format!(
            "compiled a signed int8 {} packet of {} bytes for {}",
            match rec.kind {
                PolicyKind::Base => "base",
                PolicyKind::Adapter => "adapter",
            },
            rec.size,
            req.agent_id
        ),
        packet_id: rec.packet_id,
    }))
}

/// A packet by digest, or an agent's latest.
fn find_packet(store: &dyn Store, id: &str) -> Result<PacketRecord, ApiError> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Some(p) = store.get_packet(id)? {
            return Ok(p);
        }
    } else if validate_identifier(id).is_ok()
        && let Some(p) = store.latest_packet_for_agent(id)?
    {
        return Ok(p);
    }
    Err(ApiError::not_found(
        ErrorCode::UnknownPacket,
        format!("no packet or agent with a packet named {id:?}"),
    ))
}

/// A packet's bytes, by packet id or agent id (that agent's latest packet).
#[utoipa::path(get, path = "/instruction-packet/download/{id}", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = st.store.clone();
    let (rec, bytes) = blocking(move || {
        let rec = find_packet(store.as_ref(), &id)?;
        let bytes = store
            .packet_bytes(&rec.packet_id)?
            .ok_or_else(|| ApiError::Internal(format!("packet file {} missing", rec.packet_id)))?;
        Ok((rec, bytes))
    })
    .await?;
    let etag = format!("\"{}\"", rec.packet_id);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    st.metrics.packet_downloaded();
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let pairs = [
        (header::ETAG.as_str(), etag),
        ("x-plasma-packet-id", rec.packet_id.clone()),
        (
            "x-plasma-packet-kind",
            match rec.kind {
                PolicyKind::Base => "base".to_owned(),
                PolicyKind::Adapter => "adapter".to_owned(),
            },
        ),
        (
            header::CONTENT_DISPOSITION.as_str(),
            format!("attachment; filename=\"{}.pkt\"", rec.packet_id),
        ),
    ];
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::try_from(v),
        ) {
            h.insert(k, v);
        }
    }
    if let Some(base) = rec
        .base_packet_id
        .and_then(|b| HeaderValue::try_from(b).ok())
    {
        h.insert("x-plasma-base-packet-id", base);
    }
    Ok(response)
}

/// A packet's metadata, by packet id or agent id.
#[utoipa::path(get, path = "/instruction-packet/{id}", params(("id" = String, Path)),
    responses((status = 200, body = PacketRecord), (status = 404, body = ErrorBody)))]
pub async fn packet_meta(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<PacketRecord>, ApiError> {
    let store = st.store.clone();
    Ok(Json(
        blocking(move || find_packet(store.as_ref(), &id)).await?,
    ))
}

/// The OpenAPI document, generated by utoipa from the handlers' annotations and types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "plasma-server",
        description = "Plasma's REST and WebSocket API (DESIGN.md). WebSocket: GET /ws/{client_id} upgrades; messages are JSON: send {\"type\":\"ping\"} or {\"type\":\"status_update\"}; job events arrive as {\"type\":\"job_event\", …JobEvent}."
    ),
    paths(
        health,
        ready,
        status,
        metrics,
        signing_key,
        register_task,
        list_tasks,
        get_task,
        experience::upload_experience,
        experience::list_experience,
        experience::delete_experience,
        get_job,
        list_jobs,
        cancel_job,
        simulate,
        get_simulation,
        train,
        get_training,
        train_history,
        compile,
        download,
        packet_meta
    ),
    components(schemas(
        ErrorBody,
        JobEvent,
        JobRecord,
        TaskRecord,
        PacketRecord,
        JobView,
        ChunkRecord,
        DeletionRecord
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: TaskSpec, builtin: bool) -> TaskRecord {
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
            created_at: 0.0,
            updated_at: 0.0,
        }
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
