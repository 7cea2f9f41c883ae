//! Task registration and reads.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use plasma_protocol::TaskSpec;

use super::{ApiJson, ErrorBody, blocking};
use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::records::{TaskRecord, now_secs};

/// Registers a task from its spec (admin). Reference environments (`CartPole-v1`, …) are
/// known without registration.
#[utoipa::path(post, path = "/tasks", request_body = TaskSpec,
    responses((status = 400, body = ErrorBody), (status = 201, body = TaskRecord, links(
            ("GetTask" = (operation_id = "get_task", parameters(("name" = "$response.body#/name"))))
        )), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
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
        let record = TaskRecord::new(spec, false, now_secs());
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
