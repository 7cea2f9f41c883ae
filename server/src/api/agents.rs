//! The agents the server knows of.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use plasma_protocol::AgentSummary;

use crate::AppState;
use crate::error::ApiError;
use crate::service;

/// Agents with stored experience: transitions per task and the newest packet compiled
/// for each, ordered by identifier.
#[utoipa::path(get, path = "/agents", responses((status = 200, body = [AgentSummary])))]
pub async fn list_agents(
    State(st): State<Arc<AppState>>,
) -> Result<Json<Vec<AgentSummary>>, ApiError> {
    Ok(Json(service::agents::list(&st.service).await?))
}
