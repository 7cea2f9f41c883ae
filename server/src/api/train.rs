//! `POST /train`, `GET /train/{id}` and an agent's training history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use plasma_protocol::{JobSpec, TrainHistoryEntry};
#[allow(unused_imports)] // the OpenAPI link's request body
use serde_json::json;

use super::jobs::{IdName, job_of_kind, status_view};
use super::{
    ApiJson, ErrorBody, JobStatusView, TrainAccepted, TrainHistory, TrainRequest, blocking,
    check_id,
};
use crate::AppState;
use crate::error::ApiError;
use crate::records::{JobKind, PolicyKind};
use crate::service;

/// Starts training a base policy or a LoRA adapter → 202.
#[utoipa::path(post, path = "/train", request_body = TrainRequest,
    responses((status = 400, body = ErrorBody), (status = 202, body = TrainAccepted, links(
            ("GetTraining" = (operation_id = "get_training", parameters(("training_id" = "$response.body#/training_id")))),
            ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/training_id")))),
            ("TrainHistory" = (operation_id = "train_history", parameters(("agent_id" = "$request.body#/agent_id")))),
            ("CancelJob" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/training_id")))),
            ("Compile" = (operation_id = "compile", request_body = json!({
                "agent_id": "$request.body#/agent_id",
                "trained_lora_path": "$response.body#/training_id",
                "force": true
            })))
        )), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn train(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<TrainRequest>,
) -> Result<(StatusCode, Json<TrainAccepted>), ApiError> {
    let (agent, task) = (req.agent_id.clone(), req.task_name.clone());
    let (job, resolved) = service::train::start(&st.service, req).await?;
    let what = match resolved.kind {
        PolicyKind::Base => "base",
        PolicyKind::Adapter => "LoRA adapter",
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(TrainAccepted {
            message: format!(
                "training a {what} policy on {task}; poll /train/{} or listen on /ws/{agent}",
                job.id
            ),
            training_id: job.id,
            status: "started".into(),
            mode: resolved.kind,
            base_training: resolved.base_training,
        }),
    ))
}

/// A training run's status, progress, metrics and audit.
#[utoipa::path(get, path = "/train/{training_id}", params(("training_id" = String, Path)),
    responses((status = 200, body = JobStatusView, links(
            ("Compile" = (operation_id = "compile", request_body = json!({
                "agent_id": "$response.body#/agent_id",
                "trained_lora_path": "$response.body#/training_id",
                "force": true
            })))
        )), (status = 404, body = ErrorBody)))]
pub async fn get_training(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobStatusView>, ApiError> {
    let job = job_of_kind(&st, id, JobKind::Training).await?;
    Ok(Json(status_view(job, IdName::Training)))
}

/// An agent's training runs.
#[utoipa::path(get, path = "/train/history/{agent_id}", params(("agent_id" = String, Path, pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")),
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
            let mode = match &j.request {
                JobSpec::Train(t) => t.resolved_mode,
                _ => None,
            };
            TrainHistoryEntry {
                task_name: j.task.clone(),
                mode,
                request: j.request.clone(),
                view: status_view(j.brief(), IdName::Training),
            }
        })
        .collect();
    Ok(Json(TrainHistory { agent_id, history }))
}
