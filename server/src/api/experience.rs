//! Experience: uploads from agents (checked against the task's spaces, the token's
//! identity and the agent's limits), and an admin's view and deletion of one agent's data.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::{Extension, Json};
use plasma_protocol::{ExperienceAccepted, ExperienceBatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{blocking, check_id, parse_json, read_body, resolve_spec};
use crate::AppState;
use crate::auth::Caller;
use crate::config::Role;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::records::{ChunkRecord, DeletionRecord};
use crate::wire;

/// Uploads real experience: a plasma-protocol `ExperienceBatch` as JSON, or its compact
/// binary form (`Content-Type: application/x-plasma-experience`, see `wire.rs`).
///
/// Refused, with nothing of the batch stored: values outside the task's finite
/// observation bounds, actions outside its action space, non-finite rewards (422
/// `invalid_experience`, naming the first offending transition and field); an `agent_id`
/// the token does not speak for (403 `wrong_agent`); past the agent's request rate (429
/// `rate_limited`, `Retry-After`) or its stored transitions in the task (429
/// `agent_quota_exceeded`).
#[utoipa::path(post, path = "/experience",
    request_body(content = ExperienceBatch, description = "An ExperienceBatch as JSON, or in plasma-protocol's binary form with Content-Type application/x-plasma-experience (see plasma_protocol::wire). It must fit the stored task's spaces: observations of its dimension within its box, a discrete action below n or a continuous one of its dimension; otherwise 422 invalid_experience"),
    responses((status = 201, body = ExperienceAccepted, links(
            ("GetTask" = (operation_id = "get_task", parameters(("name" = "$response.body#/task_name")))),
            ("ListExperience" = (operation_id = "list_experience", parameters(("task" = "$response.body#/task_name"))))
        )), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn upload_experience(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<(StatusCode, Json<ExperienceAccepted>), ApiError> {
    let metrics = st.metrics.clone();
    upload(st, caller, req).await.inspect_err(|e| {
        metrics.experience_refused(e.code());
    })
}

async fn upload(
    st: Arc<AppState>,
    caller: Caller,
    req: Request,
) -> Result<(StatusCode, Json<ExperienceAccepted>), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    let binary = content_type.starts_with(wire::CONTENT_TYPE);
    if !binary && !content_type.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "expected application/json or {}, got {content_type}",
            wire::CONTENT_TYPE
        )));
    }
    let bytes = read_body(req, &()).await?;
    let batch: ExperienceBatch = if binary {
        wire::decode(&bytes)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBinary, e.to_string()))?
    } else {
        parse_json(&bytes)?
    };
    check_id("agent_id", &batch.agent_id)?;
    check_id("task_name", &batch.task_name)?;
    caller.speak_for(&batch.agent_id)?;
    st.limits.request(&batch.agent_id)?;
    let store = st.store.clone();
    let metrics = st.metrics.clone();
    let accepted = batch.transitions.len();
    let agent_id = batch.agent_id.clone();
    let state = st.clone();
    let record = blocking(move || {
        let (spec, builtin) = resolve_spec(store.as_ref(), &batch.task_name)?;
        batch
            .validate(&spec)
            .map_err(|e| ApiError::unprocessable(ErrorCode::InvalidExperience, e.to_string()))?;
        let task = store.get_task(&spec.name)?;
        state
            .limits
            .store(task.as_ref(), &batch.agent_id, accepted as u64)?;
        Ok(store.append_experience(&spec, builtin, &batch, caller.token.as_deref())?)
    })
    .await?;
    metrics.experience(accepted as u64);
    Ok((
        StatusCode::CREATED,
        Json(ExperienceAccepted {
            task_name: record.name,
            agent_id,
            accepted,
            total_transitions: record.transitions,
        }),
    ))
}

/// Which experience an admin asks about.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ExperienceQuery {
    /// The task.
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub task: String,
    /// The agent (required to delete; optional to list).
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub agent_id: Option<String>,
}

/// Whose experience an admin deletes.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// The task.
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub task: String,
    /// The agent.
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub agent_id: String,
}

/// A task's stored chunks with their provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperienceListing {
    /// The task.
    pub task: String,
    /// The chunks, in upload order.
    pub chunks: Vec<ChunkRecord>,
    /// Transitions in them.
    pub transitions: u64,
}

fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.role < Role::Admin {
        return Err(ApiError::Forbidden(
            "read or delete experience (admin only)",
        ));
    }
    Ok(())
}

/// Lists a task's stored experience, optionally one agent's: each chunk with the agent and
/// the token (fingerprint) that uploaded it (admin).
#[utoipa::path(get, path = "/experience", params(ExperienceQuery),
    responses((status = 400, body = ErrorBody), (status = 200, body = ExperienceListing), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_experience(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ExperienceQuery>,
) -> Result<Json<ExperienceListing>, ApiError> {
    require_admin(&caller)?;
    check_id("task", &q.task)?;
    if let Some(a) = &q.agent_id {
        check_id("agent_id", a)?;
    }
    let store = st.store.clone();
    blocking(move || {
        if store.get_task(&q.task)?.is_none() {
            return Err(ApiError::not_found(
                ErrorCode::UnknownTask,
                format!("no task {:?}", q.task),
            ));
        }
        let chunks = store.list_chunks(&q.task, q.agent_id.as_deref())?;
        Ok(Json(ExperienceListing {
            transitions: chunks.iter().map(|c| c.transitions).sum(),
            task: q.task,
            chunks,
        }))
    })
    .await
}

/// Deletes every transition one agent uploaded to a task (admin). World models fitted on
/// it are not reused (the next job refits), nor is a base's model as an adapter's prior;
/// packets already compiled stay, marked `trained_on_deleted_data`; the deletion is kept
/// in the task's `deletions`.
#[utoipa::path(delete, path = "/experience", params(DeleteQuery),
    responses((status = 400, body = ErrorBody), (status = 200, body = DeletionRecord), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_experience(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<DeletionRecord>, ApiError> {
    require_admin(&caller)?;
    check_id("task", &q.task)?;
    let agent = q.agent_id;
    check_id("agent_id", &agent)?;
    let store = st.store.clone();
    let deletion = blocking(move || {
        store
            .delete_experience(&q.task, &agent, caller.token.as_deref())?
            .ok_or_else(|| {
                ApiError::not_found(
                    ErrorCode::NoExperience,
                    format!("agent {agent:?} has no experience in task {:?}", q.task),
                )
            })
    })
    .await?;
    tracing::info!(agent = %deletion.agent_id, transitions = deletion.transitions,
        tainted_packets = deletion.tainted_packets.len(), "experience deleted");
    Ok(Json(deletion))
}
