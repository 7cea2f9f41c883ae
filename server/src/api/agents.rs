//! The agents the server knows of, and the deployments they report.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use plasma_protocol::{AgentSummary, Deployment, DeploymentReport};

use super::{ApiJson, ErrorBody};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::service;

/// The agent a deployment report is for (an identifier).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AgentPath {
    /// The agent.
    #[param(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")]
    pub agent_id: String,
}

/// Agents with stored experience or a reported deployment: transitions per task, the
/// newest packet compiled for each and what each last reported running, ordered by
/// identifier.
#[utoipa::path(get, path = "/agents", responses((status = 200, body = [AgentSummary])))]
pub async fn list_agents(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<AgentSummary>>, ApiError> {
    Ok(Json(service::agents::list(&st.service).await?))
}

/// An agent reports what it runs (base and adapter digests, since when) after every
/// install or rollback; the last report is kept and shown by `GET /agents`.
/// An agent token may report only for the agents it speaks for.
#[utoipa::path(put, path = "/agents/{agent_id}/deployment", params(AgentPath),
    request_body = DeploymentReport,
    responses((status = 200, body = Deployment), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report_deployment(
    State(st): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(agent_id): Path<String>,
    ApiJson(report): ApiJson<DeploymentReport>,
) -> Result<Json<Deployment>, ApiError> {
    super::check_id("agent_id", &agent_id)?;
    caller.speak_for(&agent_id)?;
    Ok(Json(
        service::agents::report_deployment(&st.service, agent_id, report).await?,
    ))
}
