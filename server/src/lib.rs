//! plasma-server: Plasma's REST and WebSocket service.
//!
//! Agents upload real experience; the server fits world models to it, simulates phantom
//! paths, trains base policies and LoRA adapters, audits them and compiles them into
//! signed int8 instruction packets that agents download. See `../shared/DESIGN.md` for the
//! API contract and the crate README section of the repository for running it.
//!
//! - [`config`]: layered configuration (default file, file, environment, flags).
//! - [`storage`]: the [`storage::Store`] interface and the embedded redb + files store.
//! - [`jobs`]: bounded job runner with progress events and cancellation.
//! - [`pipeline`]: the compute behind the jobs (world model, planner, policy, audit,
//!   packets); the place where the world-model crate's `distill` plugs in.
//! - [`service`]: one executor per job kind (simulate, train, compile) that validates a
//!   job's spec, resolves what it names and builds its work, apart from HTTP.
//! - [`api`], [`ws`], [`auth`], [`metrics`]: HTTP handlers (one module per resource),
//!   WebSocket, tokens, Prometheus.
//! - [`ui`]: the dashboard's page and assets, embedded in the binary, served at `/ui/`.
//! - [`phantom`]: phantom paths drawn for people (bands, real continuations, failures).
//! - [`start`] runs a server in the current tokio runtime and returns a
//!   [`RunningServer`] handle (the binary and the tests use it alike).

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod phantom;
pub mod pipeline;
pub mod records;
pub mod recovery;
pub mod service;
pub mod storage;
pub mod ui;
pub mod ws;

/// The binary experience form, plasma-protocol's (re-exported where it used to live).
pub use plasma_protocol::wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use plasma_packets::signing::PacketSigner;
use thiserror::Error;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::{ErrorBody, ErrorCode, ErrorDetail, code_for_status};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::storage::{EmbeddedStore, Store};

/// Everything the handlers share: the service layer (configuration, storage, jobs, key;
/// reachable through `Deref`) and what only HTTP needs.
pub struct AppState {
    /// The service layer.
    pub service: Arc<Service>,
    /// Tokens.
    pub auth: Auth,
    /// Per-agent rate and storage limits.
    pub limits: limits::AgentLimits,
    /// Ready to serve (false while draining).
    pub ready: AtomicBool,
    /// Flips to true on shutdown (WebSockets close on it).
    pub shutdown: watch::Sender<bool>,
    /// Start time.
    pub started: Instant,
}

impl std::ops::Deref for AppState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Store(#[from] storage::StoreError),
    /// The signing key could not be loaded or created.
    #[error("signing key {path}: {message}")]
    Key {
        /// The key file.
        path: String,
        /// The cause.
        message: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Answers error responses that no handler made (routing 404/405, body-limit 413,
/// timeout 408, panics 500) with the JSON error body too, and closes connections whose
/// request body was refused unread.
async fn json_errors(req: Request, next: Next) -> Response {
    let large_body = has_large_body(&req);
    let mut response = next.run(req).await;
    let status = response.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE
        || (large_body && (status.is_client_error() || status.is_server_error()))
    {
        // A refused body may be left unread, and then the connection cannot carry another
        // request: say that it closes, so that clients do not send their next one on it.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = ErrorBody {
        error: ErrorDetail {
            code: code_for_status(status).into(),
            message: status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase(),
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Whether a request's body is too large (or of unknown length) to be drained cheaply when
/// a handler refuses it without reading it.
fn has_large_body(req: &Request) -> bool {
    const DRAINED_BYTES: u64 = 64 * 1024;
    let headers = req.headers();
    match headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) => len > DRAINED_BYTES,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

async fn count_requests(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    st.metrics.request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn not_found() -> impl IntoResponse {
    error::ApiError::not_found(ErrorCode::NotFound, "no such endpoint")
}

/// The application's router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    use api::*;
    let public = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        .route("/livez", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/signing-key", get(signing_key))
        .route("/whoami", get(whoami))
        .merge(ui::routes());
    let agent = Router::new()
        .route("/status", get(status))
        .route("/packets", get(list_packets))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{name}", get(get_task))
        .route("/agents", get(list_agents))
        .route("/agents/{agent_id}/deployment", put(report_deployment))
        .route(
            "/experience",
            post(upload_experience)
                .get(list_experience)
                .delete(delete_experience),
        )
        .route("/simulate", post(simulate))
        .route("/simulate/{simulation_id}", get(get_simulation))
        .route("/train/{training_id}", get(get_training))
        .route("/train/history/{agent_id}", get(train_history))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/instruction-packet/download/{id}", get(download))
        .route("/instruction-packet/{id}", get(packet_meta))
        .route("/ws/{client_id}", get(ws::ws_handler))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_agent,
        ));
    let admin = Router::new()
        .route("/tasks", post(register_task))
        .route("/train", post(train))
        .route("/instruction-packet/compile", post(compile))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ));
    let config = &state.config.server;
    let cors = if config.cors_origins.is_empty() {
        None
    } else if config.cors_origins.iter().any(|o| o == "*") {
        Some(CorsLayer::new().allow_origin(Any))
    } else {
        let origins: Vec<HeaderValue> = config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        Some(CorsLayer::new().allow_origin(AllowOrigin::list(origins)))
    }
    .map(|c| {
        c.allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
    });
    // Packets are zstd-compressed already; small bodies are not worth it.
    let compress = SizeAbove::new(1024)
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES);
    let mut app = public
        .merge(agent)
        .merge(admin)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.request_timeout_secs),
        ))
        .layer(CompressionLayer::new().compress_when(compress));
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(middleware::from_fn_with_state(
        state.clone(),
        count_requests,
    ))
    .layer(middleware::from_fn(json_errors))
    .layer(TraceLayer::new_for_http())
    .layer(CatchPanicLayer::custom(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(error::ApiError::Internal("panic".into()).body()),
        )
            .into_response()
    }))
    .with_state(state)
}

/// A started server.
pub struct RunningServer {
    addr: SocketAddr,
    state: Arc<AppState>,
    serve: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Opens storage, loads or creates the signing key, binds the socket, queues again the
/// jobs a previous run left unfinished (`recovery`) and serves in the background.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    config.validate()?;
    let root = config.storage.data_dir.clone();
    let store: Arc<dyn Store> =
        tokio::task::spawn_blocking(move || EmbeddedStore::open(&root).map(|s| Arc::new(s) as _))
            .await
            .map_err(|e| storage::StoreError::Db(e.to_string()))??;
    let key_path = store.signing_key_path();
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| StartError::Key {
            path: key_path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let signer = PacketSigner::load_or_create(&key_path).map_err(|e| StartError::Key {
        path: key_path.display().to_string(),
        message: e.to_string(),
    })?;
    let models = config.storage.data_dir.join("models");
    let world_model_loaded = std::fs::read_dir(&models)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    let metrics = Arc::new(Metrics::default());
    let jobs = Jobs::new(
        store.clone(),
        config.jobs.max_concurrent,
        config.jobs.queue_capacity,
        config.jobs.max_events_per_job,
        metrics.clone(),
    )
    .map_err(|source| storage::StoreError::Io {
        context: "starting the job writer thread".into(),
        source,
    })?;
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    let (shutdown, _) = watch::channel(false);
    let state = Arc::new(AppState {
        auth: Auth::new(&config.auth.tokens, config.open_access()),
        limits: limits::AgentLimits::new(&config.limits),
        service: Arc::new(Service {
            config: Arc::new(config),
            store,
            jobs,
            signer: Arc::new(signer),
            metrics,
            bases: Arc::new(Mutex::new(HashMap::new())),
            world_model_loaded: Arc::new(AtomicBool::new(world_model_loaded)),
        }),
        ready: AtomicBool::new(true),
        shutdown,
        started: Instant::now(),
    });
    // Jobs of the previous process run again (their requests are stored with them).
    let recovered = recovery::recover(&state).await?;
    if recovered != recovery::Recovered::default() {
        tracing::warn!(?recovered, "jobs of the previous run");
    }
    let app = router(state.clone());
    let mut stop = state.shutdown.subscribe();
    let serve = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, open = state.auth.is_open(), "plasma-server listening");
    Ok(RunningServer { addr, state, serve })
}

impl RunningServer {
    /// The bound address (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests inspect it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Graceful shutdown: not ready, no new jobs, running jobs stopped at their next
    /// safe point and recorded queued again (the next start runs them), WebSockets closed, in-flight requests finished, then up to
    /// `shutdown_grace_secs` for the compute threads to stop.
    pub async fn shutdown(self) {
        let st = &self.state;
        st.ready.store(false, Ordering::SeqCst);
        st.jobs.shutdown();
        let _ = st.shutdown.send(true);
        match self.serve.await {
            Ok(Err(e)) => tracing::error!(error = %e, "server error"),
            Err(e) => tracing::error!(error = %e, "server task"),
            Ok(Ok(())) => {}
        }
        let deadline = Instant::now() + Duration::from_secs(st.config.server.shutdown_grace_secs);
        while st.jobs.live_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Every job's last state (queued again, or how it ended) on disk before exit.
        st.jobs.close().await;
        tracing::info!("plasma-server stopped");
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        self.shutdown().await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Sets up logging (human or JSON lines on stderr) once; `RUST_LOG` overrides the
/// configured filter.
pub fn init_tracing(log: &config::LogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        config::LogFormat::Json => builder.json().try_init(),
        config::LogFormat::Human => builder.try_init(),
    };
}
