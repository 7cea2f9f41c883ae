//! `POST /simulate` and `GET /simulate/{id}`: phantom-path simulations.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::jobs::{IdName, job_of_kind, status_view};
use super::{ApiJson, ErrorBody, JobStatusView, SimulateAccepted, SimulateRequest, check_id};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::records::JobKind;
use crate::service;

/// Starts a phantom-path simulation → 202.
#[utoipa::path(post, path = "/simulate", request_body = SimulateRequest,
    responses((status = 400, body = ErrorBody), (status = 202, body = SimulateAccepted, links(
            ("GetSimulation" = (operation_id = "get_simulation", parameters(("simulation_id" = "$response.body#/simulation_id")))),
            ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/simulation_id")))),
            ("CancelJob" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/simulation_id"))))
        )), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn simulate(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<SimulateRequest>,
) -> Result<(StatusCode, Json<SimulateAccepted>), ApiError> {
    check_id("agent_id", &req.agent_id)?;
    caller.speak_for(&req.agent_id)?;
    st.limits.request(&req.agent_id)?;
    let (agent, task) = (req.agent_id.clone(), req.task_description.clone());
    let (job, paths) = service::simulate::start(&st.service, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SimulateAccepted {
            message: format!(
                "simulating {paths} phantom paths on {task}; poll /simulate/{} or listen on /ws/{agent}",
                job.id
            ),
            simulation_id: job.id,
            status: "started".into(),
        }),
    ))
}

/// A simulation's status, progress, result and audit.
#[utoipa::path(get, path = "/simulate/{simulation_id}", params(("simulation_id" = String, Path)),
    responses((status = 200, body = JobStatusView), (status = 404, body = ErrorBody)))]
pub async fn get_simulation(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobStatusView>, ApiError> {
    let job = job_of_kind(&st, id, JobKind::Simulation).await?;
    Ok(Json(status_view(job, IdName::Simulation)))
}
