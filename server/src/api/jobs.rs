//! Jobs of every kind: read, list, cancel.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{ErrorBody, JobView, blocking, check_id};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::records::{JobEvent, JobKind, JobRecord};

/// A job, live or stored, with its events.
pub(crate) async fn load_job(
    st: &AppState,
    id: String,
) -> Result<(JobRecord, Vec<JobEvent>), ApiError> {
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
    /// At most this many (default 100; more than 1,000 reads as 1,000; more than
    /// 1,000,000,000 is refused).
    #[param(minimum = 0, maximum = 1000000000)]
    pub limit: Option<usize>,
}

/// Jobs, newest first; each result without its phantom paths (`GET /jobs/{id}` has
/// them).
#[utoipa::path(get, path = "/jobs", params(JobQuery), responses((status = 400, body = ErrorBody), (status = 200, body = [JobRecord]), (status = 422, body = ErrorBody)))]
pub async fn list_jobs(
    State(st): State<Arc<AppState>>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Vec<JobRecord>>, ApiError> {
    if let Some(agent) = &q.agent_id {
        check_id("agent_id", agent)?;
    }
    if q.limit
        .is_some_and(|l| l > plasma_protocol::MAX_REQUEST_COUNT)
    {
        return Err(ApiError::unprocessable(
            ErrorCode::InvalidRequest,
            format!(
                "limit must be at most {}",
                plasma_protocol::MAX_REQUEST_COUNT
            ),
        ));
    }
    let store = st.store.clone();
    let jobs = blocking(move || {
        let mut jobs = store.list_jobs(q.agent_id.as_deref(), q.kind)?;
        jobs.truncate(q.limit.unwrap_or(100).min(1000));
        Ok(jobs.into_iter().map(JobRecord::brief).collect::<Vec<_>>())
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

/// Which id name a prototype-shaped view repeats the id under.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdName {
    /// `simulation_id`.
    Simulation,
    /// `training_id`.
    Training,
}

/// A job in the prototype's shape (`GET /simulate/{id}`, `GET /train/{id}`).
pub(crate) fn status_view(job: JobRecord, id_name: IdName) -> plasma_protocol::JobStatusView {
    let audit = job.result.as_ref().and_then(|r| r.audit()).cloned();
    plasma_protocol::JobStatusView {
        simulation_id: matches!(id_name, IdName::Simulation).then(|| job.id.clone()),
        training_id: matches!(id_name, IdName::Training).then(|| job.id.clone()),
        id: job.id,
        status: job.status,
        progress: job.progress,
        phase: job.phase,
        agent_id: job.agent_id,
        task: job.task,
        result: job.result,
        audit,
        error: job.error.as_ref().map(|e| e.message.clone()),
        error_code: job.error.map(|e| e.code),
        last_seq: job.last_seq,
        attempt: job.attempt,
        created_at: job.created_at,
        finished_at: job.finished_at,
    }
}

/// A job that must be of `kind` (404 otherwise).
pub(crate) async fn job_of_kind(
    st: &AppState,
    id: String,
    kind: JobKind,
) -> Result<JobRecord, ApiError> {
    let (job, _) = load_job(st, id.clone()).await?;
    if job.kind != kind {
        return Err(ApiError::not_found(
            ErrorCode::UnknownJob,
            format!("{id:?} is not a {} job", kind.as_str()),
        ));
    }
    Ok(job)
}
