//! Liveness, readiness, status, Prometheus metrics and the signing key.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ErrorBody, Health, SigningKey, Status, blocking};
use crate::AppState;
use crate::error::ApiError;
use crate::records::{JobKind, JobStatus, now_secs};

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

/// Who a token is: what the dashboard shows and offers depends on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Identity {
    /// The token's role (`admin` for open access); absent when the request carried no
    /// accepted token.
    pub role: Option<crate::config::Role>,
    /// The agents it speaks for; absent: any (or no accepted token).
    pub agents: Option<Vec<String>>,
    /// Whether the server runs open (a loopback bind without tokens).
    pub open: bool,
    /// The token's fingerprint (never the token); absent for open access.
    pub token: Option<String>,
}

/// The caller's role and agents, as the server sees its token (`Authorization: Bearer`
/// or `?token=`). Public, and never 401: a page asks it whether it needs a token.
#[utoipa::path(get, path = "/whoami", responses((status = 200, body = Identity)))]
pub async fn whoami(
    State(st): State<Arc<AppState>>,
    req: axum::extract::Request,
) -> Json<Identity> {
    let caller = st.auth.check(&req, crate::config::Role::Agent).ok();
    Json(Identity {
        open: st.auth.is_open(),
        role: caller.as_ref().map(|c| c.role),
        token: caller.as_ref().and_then(|c| c.token.clone()),
        agents: caller.and_then(|c| c.agents),
    })
}
