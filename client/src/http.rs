//! `PlasmaClient`: the server's REST API with the original client's workflow
//! (request_simulation … train_and_deploy), retries and timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plasma_packets::limits::MAX_PACKET_BYTES;
use plasma_packets::{PacketKind, PublicKey};
use plasma_protocol::{
    AgentSummary, CompileRequest, CompileResponse, Deployment, DeploymentReport, ErrorBody,
    ExperienceAccepted, ExperienceBatch, Health, JobRecord, JobStatus, JobStatusView, JobView,
    SigningKey, SimulateAccepted, SimulateRequest, Status, TaskRecord, TaskSpec, TrainAccepted,
    TrainHistory, TrainRequest, wire,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::PacketCache;
use crate::edge::EdgePolicy;
use crate::error::{ClientError, Result};
use crate::events::EventStream;
use crate::retry::RetryPolicy;
use plasma_protocol::ErrorCode;

/// Largest JSON answer read from the server.
const MAX_JSON_BYTES: usize = 16 << 20;
/// The longest `Retry-After` honoured; longer ones wait this long.
const MAX_RETRY_AFTER_SECS: u64 = 60;

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` (no trailing slash needed).
    pub base_url: String,
    /// Further servers of the same deployment (API processes sharing one store), tried in
    /// order when the current one cannot be reached; the client stays on the one that
    /// answered.
    pub fallback_urls: Vec<String>,
    /// Bearer token (agent or admin); `None` for an open loopback server.
    pub token: Option<String>,
    /// Limit of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Retries of idempotent calls (and of any call the server refused with 429).
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults for the servers of a comma-separated list (`http://a:8000,http://b:8000`):
    /// the first, then the others as fallbacks.
    pub fn from_list(urls: &str) -> Self {
        let mut urls = urls.split(',').map(str::trim).filter(|u| !u.is_empty());
        let mut config = ClientConfig::new(urls.next().unwrap_or_default());
        config.fallback_urls = urls.map(str::to_owned).collect();
        config
    }

    /// Defaults for a server at `base_url`: no token, 30 s per request, 5 tries.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            fallback_urls: vec![],
            token: None,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A request body.
enum Body {
    Empty,
    Json(Vec<u8>),
    Binary(Vec<u8>, &'static str),
}

/// What a complete training run, compiled and downloaded, left deployed.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The training run.
    pub training: JobRecord,
    /// The compilation's answer (packet id, size, kind).
    pub compiled: CompileResponse,
    /// The packet's bytes.
    pub packet: Vec<u8>,
}

/// An async client of a plasma-server (or of several API processes of one deployment,
/// moving to the next when one cannot be reached).
#[derive(Debug, Clone)]
pub struct PlasmaClient {
    http: reqwest::Client,
    /// The servers, in the configured order.
    bases: Arc<[Box<str>]>,
    /// Index of the one in use, shared by the client's clones.
    current: Arc<AtomicUsize>,
    config: Arc<ClientConfig>,
}

impl PlasmaClient {
    /// A client for `config.base_url`.
    pub fn new(config: ClientConfig) -> Result<Self> {
        let mut bases = Vec::with_capacity(1 + config.fallback_urls.len());
        for url in std::iter::once(&config.base_url).chain(&config.fallback_urls) {
            let base = url.trim_end_matches('/');
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(ClientError::Invalid(format!(
                    "server URL {base:?}: it must start with http:// or https://"
                )));
            }
            bases.push(Box::from(base));
        }
        if config.retry.attempts == 0 {
            return Err(ClientError::Invalid("retry attempts: at least 1".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClientError::transport("building the HTTP client", e))?;
        Ok(PlasmaClient {
            http,
            bases: bases.into(),
            current: Arc::new(AtomicUsize::new(0)),
            config: Arc::new(config),
        })
    }

    /// The base URL of the server in use.
    pub fn base_url(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Every configured server, in order.
    pub fn base_urls(&self) -> impl Iterator<Item = &str> {
        self.bases.iter().map(|b| &**b)
    }

    /// Moves to the server after `from` (the one a request could not reach), unless
    /// another request has moved already; says whether there is another server to try.
    fn fail_over(&self, from: &str) -> bool {
        let n = self.bases.len();
        if n < 2 {
            return false;
        }
        let i = self.current.load(Ordering::Relaxed) % n;
        if &*self.bases[i] == from {
            let _ =
                self.current
                    .compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
            tracing::warn!(unreachable = from, next = %self.base_url(), "moving to the next server");
        }
        true
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    // ------------------------------------------------------------ transport

    /// One try; a failure comes with the server's `Retry-After`, when it sent one.
    async fn attempt(
        &self,
        method: &Method,
        path: &str,
        body: &Body,
    ) -> std::result::Result<reqwest::Response, (ClientError, Option<Duration>)> {
        let base = self.base_url();
        let mut req = self.http.request(method.clone(), format!("{base}{path}"));
        if let Some(token) = &self.config.token {
            req = req.bearer_auth(token);
        }
        req = match body {
            Body::Empty => req,
            Body::Json(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(b.clone()),
            Body::Binary(b, ct) => req.header(header::CONTENT_TYPE, *ct).body(b.clone()),
        };
        let resp = req.send().await.map_err(|e| {
            let error = if e.is_timeout() {
                ClientError::Timeout {
                    what: format!("{method} {path}"),
                    secs: self.config.request_timeout.as_secs_f64(),
                }
            } else if e.is_connect() {
                ClientError::Connect {
                    url: base.to_owned(),
                    source: Box::new(e),
                }
            } else {
                ClientError::transport(format!("{method} {path}"), e)
            };
            (error, None)
        })?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        // Seconds only (the form plasma-server sends), capped: a server cannot park us.
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(MAX_RETRY_AFTER_SECS)));
        let bytes = read_limited(resp, 64 << 10, "error body")
            .await
            .unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                format!("http_{status}"),
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
            ),
        };
        Err((
            ClientError::Api {
                status,
                code,
                message,
            },
            retry_after,
        ))
    }

    /// Sends with retries: idempotent calls retry every transient failure; others only
    /// failures where the server did not act (429, refused connections).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        idempotent: bool,
    ) -> Result<reqwest::Response> {
        let mut rng = SmallRng::from_os_rng();
        let mut retry = 0;
        // Servers moved past since the last counted try.
        let mut switched = 0;
        loop {
            let outcome = self.attempt(&method, path, &body).await;
            let (err, retry_after) = match outcome {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let safe = match &err {
                // A full quota stays full: retrying cannot help.
                ClientError::Api {
                    status: 429, code, ..
                } => ErrorCode::parse(code) != ErrorCode::AgentQuotaExceeded,
                // The server never saw the request.
                ClientError::Connect { .. } => true,
                e => idempotent && e.is_transient(),
            };
            // An unreachable server: the next one at once, each once per round of tries.
            if let ClientError::Connect { url, .. } = &err
                && switched + 1 < self.bases.len()
                && self.fail_over(url)
            {
                switched += 1;
                continue;
            }
            switched = 0;
            retry += 1;
            if !safe || retry >= self.config.retry.attempts {
                return Err(err);
            }
            // The server's Retry-After when it gave one, else the policy's backoff.
            let wait = retry_after.unwrap_or_else(|| self.config.retry.delay(retry, &mut rng));
            tracing::debug!(%method, path, retry, ?wait, error = %err, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
        idempotent: bool,
    ) -> Result<T> {
        let resp = self.send(method, path, body, idempotent).await?;
        let bytes = read_limited(resp, MAX_JSON_BYTES, path).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{path}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(Method::GET, path, Body::Empty, true).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.json(Method::POST, path, Body::Json(bytes), false)
            .await
    }

    // ------------------------------------------------------------ endpoints

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health> {
        self.get("/health").await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Status> {
        self.get("/status").await
    }

    /// The server's packet-signing key (`GET /signing-key`). Pin it once, over a channel
    /// you trust; a cache then verifies everything against the pinned key.
    pub async fn signing_key(&self) -> Result<PublicKey> {
        let key: SigningKey = self.get("/signing-key").await?;
        PublicKey::from_hex(&key.public_key)
            .map_err(|e| ClientError::Decode(format!("signing key: {e}")))
    }

    /// `POST /tasks`: registers a task (idempotent for an identical spec).
    pub async fn register_task(&self, spec: &TaskSpec) -> Result<TaskRecord> {
        let bytes = serde_json::to_vec(spec).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.json(Method::POST, "/tasks", Body::Json(bytes), true)
            .await
    }

    /// `GET /tasks/{name}`.
    pub async fn task(&self, name: &str) -> Result<TaskRecord> {
        self.get(&format!("/tasks/{}", segment(name)?)).await
    }

    /// `POST /experience` in the compact binary form.
    pub async fn upload_experience(&self, batch: &ExperienceBatch) -> Result<ExperienceAccepted> {
        let bytes = wire::encode(batch).map_err(|e| ClientError::Invalid(e.to_string()))?;
        self.json(
            Method::POST,
            "/experience",
            Body::Binary(bytes, wire::CONTENT_TYPE),
            false,
        )
        .await
    }

    /// `GET /agents`: the agents the server knows, with what each uploaded and runs.
    pub async fn agents(&self) -> Result<Vec<AgentSummary>> {
        self.get("/agents").await
    }

    /// `PUT /agents/{agent_id}/deployment`: tells the server what the agent runs now (after
    /// an install or a rollback), so that operators see it in `GET /agents`.
    pub async fn report_deployment(
        &self,
        agent_id: &str,
        report: &DeploymentReport,
    ) -> Result<Deployment> {
        let bytes = serde_json::to_vec(report).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let path = format!("/agents/{}/deployment", segment(agent_id)?);
        self.json(Method::PUT, &path, Body::Json(bytes), true).await
    }

    /// `POST /simulate`: phantom paths on the server → the simulation's id.
    pub async fn request_simulation(&self, req: &SimulateRequest) -> Result<SimulateAccepted> {
        self.post("/simulate", req).await
    }

    /// `GET /simulate/{id}`.
    pub async fn simulation(&self, id: &str) -> Result<JobStatusView> {
        self.get(&format!("/simulate/{}", segment(id)?)).await
    }

    /// Polls a simulation until it ends; its result, or why it has none.
    pub async fn wait_for_simulation(&self, id: &str, timeout: Duration) -> Result<JobRecord> {
        self.wait_for_job(id, timeout).await
    }

    /// `POST /train`: a base policy or a LoRA adapter → the training run's id.
    pub async fn start_training(&self, req: &TrainRequest) -> Result<TrainAccepted> {
        self.post("/train", req).await
    }

    /// `GET /train/{id}`.
    pub async fn training(&self, id: &str) -> Result<JobStatusView> {
        self.get(&format!("/train/{}", segment(id)?)).await
    }

    /// `GET /train/history/{agent_id}`.
    pub async fn train_history(&self, agent_id: &str) -> Result<TrainHistory> {
        self.get(&format!("/train/history/{}", segment(agent_id)?))
            .await
    }

    /// `GET /jobs/{id}`: any job with its events.
    pub async fn job(&self, id: &str) -> Result<JobView> {
        self.get(&format!("/jobs/{}", segment(id)?)).await
    }

    /// `POST /jobs/{id}/cancel`.
    pub async fn cancel_job(&self, id: &str) -> Result<JobRecord> {
        self.json(
            Method::POST,
            &format!("/jobs/{}/cancel", segment(id)?),
            Body::Empty,
            true,
        )
        .await
    }

    /// Polls a job (every 0.2 s, slowing to 2 s) until it ends: the record of a complete
    /// job, [`ClientError::JobFailed`] for any other ending.
    pub async fn wait_for_job(&self, id: &str, timeout: Duration) -> Result<JobRecord> {
        let start = Instant::now();
        let mut interval = Duration::from_millis(200);
        loop {
            let job = self.job(id).await?.job;
            if job.status.is_terminal() {
                return match job.status {
                    JobStatus::Complete => Ok(job),
                    other => Err(ClientError::JobFailed {
                        id: job.id,
                        status: other.as_str().into(),
                        code: job.error.as_ref().map(|e| e.code.clone()),
                        message: job
                            .error
                            .map(|e| e.message)
                            .unwrap_or_else(|| format!("the job was {}", other.as_str())),
                    }),
                };
            }
            if start.elapsed() >= timeout {
                return Err(ClientError::Timeout {
                    what: format!("job {id}"),
                    secs: timeout.as_secs_f64(),
                });
            }
            tokio::time::sleep(interval.min(timeout.saturating_sub(start.elapsed()))).await;
            interval = (interval * 3 / 2).min(Duration::from_secs(2));
        }
    }

    /// `POST /instruction-packet/compile`.
    pub async fn compile_instruction_packet(
        &self,
        req: &CompileRequest,
    ) -> Result<CompileResponse> {
        self.post("/instruction-packet/compile", req).await
    }

    /// `GET /instruction-packet/download/{id}`: a packet's bytes (a packet id, or an agent id
    /// for that agent's latest packet), at most the packet format's size limit. Verify them
    /// before use ([`PacketCache::put`] does).
    pub async fn download_instruction_packet(&self, id: &str) -> Result<Vec<u8>> {
        let path = format!("/instruction-packet/download/{}", segment(id)?);
        let resp = self.send(Method::GET, &path, Body::Empty, true).await?;
        read_limited(resp, MAX_PACKET_BYTES, "packet").await
    }

    /// Downloads packet `id` and installs it ([`PlasmaClient::install_packet`]).
    pub async fn load_instruction_packet(
        &self,
        id: &str,
        base_id: Option<&str>,
        cache: &Arc<PacketCache>,
        policy: Option<&EdgePolicy>,
    ) -> Result<Option<EdgePolicy>> {
        let bytes = self.download_instruction_packet(id).await?;
        self.install_packet(&bytes, base_id, cache, policy).await
    }

    /// Verifies `bytes` against the cache's pinned key and loads them: a base replaces what
    /// runs, an adapter is hot-swapped in — after downloading its base `base_id` when
    /// `policy` does not run that base. Returns the policy when `policy` was `None`.
    pub async fn install_packet(
        &self,
        bytes: &[u8],
        base_id: Option<&str>,
        cache: &Arc<PacketCache>,
        policy: Option<&EdgePolicy>,
    ) -> Result<Option<EdgePolicy>> {
        let verified = cache.put(bytes)?;
        let runs_base = |p: &EdgePolicy| base_id.is_none_or(|b| p.loaded().base.to_hex() == b);
        match (verified.packet.content.kind(), policy) {
            (PacketKind::Base, None) => Ok(Some(EdgePolicy::load_base(cache.clone(), bytes)?)),
            (PacketKind::Base, Some(p)) => {
                p.replace_base(bytes)?;
                Ok(None)
            }
            (PacketKind::Adapter, Some(p)) if runs_base(p) => {
                p.apply_adapter(bytes)?;
                Ok(None)
            }
            (PacketKind::Adapter, current) => {
                let base_id = base_id.ok_or_else(|| {
                    ClientError::Invalid("an adapter needs its base packet id".into())
                })?;
                let base = self.download_instruction_packet(base_id).await?;
                match current {
                    Some(p) => {
                        p.replace_base(&base)?;
                        p.apply_adapter(bytes)?;
                        Ok(None)
                    }
                    None => {
                        let p = EdgePolicy::load_base(cache.clone(), &base)?;
                        p.apply_adapter(bytes)?;
                        Ok(Some(p))
                    }
                }
            }
        }
    }

    /// The whole workflow: train (base or adapter), wait, compile, download and verify.
    /// `force` deploys a policy the auditor rejected (recorded in the packet).
    pub async fn train_and_deploy(
        &self,
        req: &TrainRequest,
        force: bool,
        timeout: Duration,
    ) -> Result<Deployed> {
        let accepted = self.start_training(req).await?;
        let training = self.wait_for_job(&accepted.training_id, timeout).await?;
        let compiled = self
            .compile_instruction_packet(&CompileRequest {
                agent_id: req.agent_id.clone(),
                trained_lora_path: Some(training.id.clone()),
                target_device: "edge".into(),
                force,
            })
            .await?;
        let packet = self
            .download_instruction_packet(&compiled.packet_id)
            .await?;
        Ok(Deployed {
            training,
            compiled,
            packet,
        })
    }

    /// Job events of `client_id` (its agent id) over `/ws/{client_id}`, replayed and live.
    /// Connects to the server in use, or to the next one that can be reached.
    pub async fn events(&self, client_id: &str) -> Result<EventStream> {
        let mut last = None;
        for _ in 0..self.bases.len() {
            let base = self.base_url().to_owned();
            match EventStream::connect(&base, client_id, self.config.token.as_deref()).await {
                Ok(stream) => return Ok(stream),
                Err(e @ ClientError::Connect { .. }) if self.fail_over(&base) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no server configured".into())))
    }
}

/// Checks an id used as one path segment (the server's identifier rules).
fn segment(id: &str) -> Result<&str> {
    plasma_protocol::validate_identifier(id)
        .map_err(|e| ClientError::Invalid(format!("identifier {id:?}: {e}")))?;
    Ok(id)
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut resp: reqwest::Response, limit: usize, what: &str) -> Result<Vec<u8>> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ClientError::TooLarge {
            what: what.into(),
            limit,
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::transport(format!("reading {what}"), e))?
    {
        if out.len() + chunk.len() > limit {
            return Err(ClientError::TooLarge {
                what: what.into(),
                limit,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
