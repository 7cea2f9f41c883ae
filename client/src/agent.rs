//! `Agent`: what an edge program embeds. It acts offline from the loaded packet, buffers
//! what it experiences, and learns in the background (upload, train, compile, download,
//! hot-swap) without ever blocking `act`.
//!
//! The cycle of the original prototype: **think** (phantom paths on the server),
//! **act** (the packet, locally), **learn** (a new base or adapter in the background),
//! **evolve** (learn and wait for the swap).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use plasma_packets::{ActError, Action, Actor, Digest, Loaded};
use plasma_protocol::{
    DeploymentChange, ExperienceBatch, JobRecord, MAX_BATCH_TRANSITIONS, PolicyKind,
    SimulateRequest, TrainMode, TrainRequest, Transition,
};

use crate::cache::PacketCache;
use crate::edge::EdgePolicy;
use crate::error::{ClientError, Result};
use crate::http::PlasmaClient;

/// What an agent learns on and how.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The agent's id (also its WebSocket client id).
    pub agent_id: String,
    /// The task its experience belongs to.
    pub task_name: String,
    /// For adapters on a changed condition: the base training run to adapt (see
    /// [`Agent::set_task`]). `None`: the task's own base.
    pub base_training: Option<String>,
    /// Base, adapter or auto (the server picks adapter once the task has a base).
    pub mode: TrainMode,
    /// Caps the states the planner labels per distillation round.
    pub num_simulations: usize,
    /// LoRA rank of adapters (`None`: the server's default).
    pub lora_rank: Option<usize>,
    /// Deploy a policy even if the auditor rejected it (recorded in the packet).
    pub force: bool,
    /// Transitions per upload request.
    pub upload_batch: usize,
    /// Most transitions buffered; beyond it the oldest are dropped (and counted).
    pub max_buffered: usize,
    /// Longest wait for a training run.
    pub job_timeout: Duration,
}

impl AgentConfig {
    /// Defaults for `agent_id` on `task_name`.
    pub fn new(agent_id: impl Into<String>, task_name: impl Into<String>) -> Self {
        AgentConfig {
            agent_id: agent_id.into(),
            task_name: task_name.into(),
            base_training: None,
            mode: TrainMode::Auto,
            num_simulations: 1000,
            lora_rank: None,
            force: false,
            upload_batch: 4096,
            max_buffered: 200_000,
            job_timeout: Duration::from_secs(3600),
        }
    }
}

/// What one learning cycle did.
#[derive(Debug, Clone)]
pub struct LearnOutcome {
    /// Transitions uploaded.
    pub uploaded: usize,
    /// The training run.
    pub training: JobRecord,
    /// Base or adapter.
    pub kind: PolicyKind,
    /// The packet now running.
    pub packet_id: String,
    /// Its size in bytes.
    pub packet_size: u64,
    /// Wall time of the cycle.
    pub seconds: f64,
}

/// An edge agent: acts offline, learns in the background.
#[derive(Debug)]
pub struct Agent {
    client: PlasmaClient,
    config: AgentConfig,
    cache: Arc<PacketCache>,
    policy: Arc<OnceLock<EdgePolicy>>,
    actor: Option<Actor>,
    buffer: Arc<Mutex<VecDeque<Transition>>>,
    dropped: u64,
    learner: Option<tokio::task::JoinHandle<Result<LearnOutcome>>>,
}

impl Agent {
    /// An agent that resumes whatever `cache` has deployed (no server needed to act).
    pub fn new(client: PlasmaClient, config: AgentConfig, cache: Arc<PacketCache>) -> Result<Self> {
        plasma_protocol::validate_identifier(&config.agent_id)
            .map_err(|e| ClientError::Invalid(format!("agent id: {e}")))?;
        if config.upload_batch == 0 || config.upload_batch > MAX_BATCH_TRANSITIONS {
            return Err(ClientError::Invalid(format!(
                "upload_batch must be 1..={MAX_BATCH_TRANSITIONS}"
            )));
        }
        let policy = Arc::new(OnceLock::new());
        if let Some(p) = EdgePolicy::resume(cache.clone())? {
            let _ = policy.set(p);
        }
        Ok(Agent {
            client,
            config,
            cache,
            policy,
            actor: None,
            buffer: Arc::new(Mutex::new(VecDeque::new())),
            dropped: 0,
            learner: None,
        })
    }

    /// The action for `obs` under the packet in effect now: lock-free, allocation-free,
    /// offline. [`ClientError::NoPolicy`] before the first packet arrives.
    pub fn act(&mut self, obs: &[f32]) -> Result<Action<'_>> {
        if self.actor.is_none() {
            let policy = self.policy.get().ok_or(ClientError::NoPolicy)?;
            self.actor = Some(policy.actor());
        }
        let actor = self.actor.as_mut().ok_or(ClientError::NoPolicy)?;
        actor
            .act(obs)
            .map_err(|e: ActError| ClientError::Invalid(format!("observation: {e}")))
    }

    /// Whether a policy is loaded.
    pub fn has_policy(&self) -> bool {
        self.policy.get().is_some()
    }

    /// What runs now.
    pub fn loaded(&self) -> Option<Loaded> {
        self.policy.get().map(EdgePolicy::loaded)
    }

    /// The loaded policy (swap, rollback).
    pub fn policy(&self) -> Option<&EdgePolicy> {
        self.policy.get()
    }

    /// Rolls the adapter back to the one before it (or removes the only one) and tells the
    /// server; returns the adapter now in effect.
    pub async fn rollback(&self) -> Result<Option<Digest>> {
        let policy = self.policy.get().ok_or(ClientError::NoPolicy)?;
        let now = policy.rollback()?;
        report(
            &self.client,
            &self.config.agent_id,
            policy,
            DeploymentChange::Rollback,
        )
        .await;
        Ok(now)
    }

    /// The API client.
    pub fn client(&self) -> &PlasmaClient {
        &self.client
    }

    /// Buffers one transition for the next upload.
    pub fn observe(&mut self, transition: Transition) {
        let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        if buf.len() >= self.config.max_buffered {
            buf.pop_front();
            self.dropped += 1;
        }
        buf.push_back(transition);
    }

    /// Transitions waiting for upload.
    pub fn buffered(&self) -> usize {
        self.buffer.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Transitions dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Moves the agent to another task, e.g. a changed condition registered as its own
    /// task, whose adapter trains on `base_training` (the base the agent runs).
    pub fn set_task(&mut self, task_name: impl Into<String>, base_training: Option<String>) {
        self.config.task_name = task_name.into();
        self.config.base_training = base_training;
    }

    /// What the next learning cycles train: base, adapter or auto.
    pub fn set_mode(&mut self, mode: TrainMode) {
        self.config.mode = mode;
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Think: `num_trajectories` phantom paths of the task on the server, audited.
    pub async fn think(&self, num_trajectories: usize) -> Result<JobRecord> {
        let accepted = self
            .client
            .request_simulation(&SimulateRequest {
                agent_id: self.config.agent_id.clone(),
                task_description: self.config.task_name.clone(),
                num_trajectories,
                adversarial_audit: true,
                horizon: None,
            })
            .await?;
        self.client
            .wait_for_simulation(&accepted.simulation_id, self.config.job_timeout)
            .await
    }

    /// Learn: starts a background cycle (upload the buffer, train, compile, download,
    /// verify, hot-swap). Returns at once; [`ClientError::Busy`] while one runs. Needs a
    /// tokio runtime. Transitions that could not be uploaded go back to the buffer.
    pub fn learn(&mut self) -> Result<()> {
        if self.learner.as_ref().is_some_and(|h| !h.is_finished()) {
            return Err(ClientError::Busy);
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| ClientError::Invalid("learn() needs a tokio runtime".into()))?;
        let transitions = Vec::from(std::mem::take(
            &mut *self.buffer.lock().unwrap_or_else(|e| e.into_inner()),
        ));
        let cycle = Cycle {
            client: self.client.clone(),
            config: self.config.clone(),
            cache: self.cache.clone(),
            policy: self.policy.clone(),
            buffer: self.buffer.clone(),
        };
        self.learner = Some(runtime.spawn(cycle.run(transitions)));
        Ok(())
    }

    /// The outcome of the last cycle if it has ended (without waiting).
    pub fn poll_learned(&mut self) -> Option<Result<LearnOutcome>> {
        if !self.learner.as_ref()?.is_finished() {
            return None;
        }
        let handle = self.learner.take()?;
        handle.now_or_never().map(joined)
    }

    /// Waits for the running cycle; `None` if none runs.
    pub async fn wait_learned(&mut self) -> Option<Result<LearnOutcome>> {
        let handle = self.learner.take()?;
        Some(joined(handle.await))
    }

    /// Evolve: one learning cycle, waited for; the new packet runs when it returns.
    pub async fn evolve(&mut self) -> Result<LearnOutcome> {
        self.learn()?;
        self.wait_learned()
            .await
            .unwrap_or_else(|| Err(ClientError::Invalid("no learning cycle ran".into())))
    }
}

/// Tells the server what the agent runs now. A failed report is logged, not returned:
/// the new policy runs either way, and the next install or rollback reports again.
async fn report(
    client: &PlasmaClient,
    agent_id: &str,
    policy: &EdgePolicy,
    change: DeploymentChange,
) {
    let report = policy.deployment_report(change);
    if let Err(e) = client.report_deployment(agent_id, &report).await {
        tracing::warn!(agent_id, error = %e, "could not report the deployment to the server");
    }
}

fn joined(
    r: std::result::Result<Result<LearnOutcome>, tokio::task::JoinError>,
) -> Result<LearnOutcome> {
    r.unwrap_or_else(|e| Err(ClientError::Invalid(format!("learning cycle aborted: {e}"))))
}

/// One background learning cycle.
struct Cycle {
    client: PlasmaClient,
    config: AgentConfig,
    cache: Arc<PacketCache>,
    policy: Arc<OnceLock<EdgePolicy>>,
    buffer: Arc<Mutex<VecDeque<Transition>>>,
}

impl Cycle {
    async fn run(self, transitions: Vec<Transition>) -> Result<LearnOutcome> {
        let start = Instant::now();
        let c = &self.config;
        let mut sent = 0;
        for chunk in transitions.chunks(c.upload_batch) {
            let batch = ExperienceBatch {
                agent_id: c.agent_id.clone(),
                task_name: c.task_name.clone(),
                transitions: chunk.to_vec(),
            };
            if let Err(e) = self.client.upload_experience(&batch).await {
                // Nothing is lost: what was not uploaded goes back, oldest first.
                let mut buf = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
                for t in transitions[sent..].iter().rev() {
                    buf.push_front(t.clone());
                }
                return Err(e);
            }
            sent += chunk.len();
        }
        let req = TrainRequest {
            agent_id: c.agent_id.clone(),
            task_name: c.task_name.clone(),
            num_simulations: c.num_simulations,
            lora_rank: c.lora_rank,
            learning_rate: None,
            use_phantom_paths: true,
            mode: c.mode,
            base_training: c.base_training.clone(),
        };
        let deployed = self
            .client
            .train_and_deploy(&req, c.force, c.job_timeout)
            .await?;
        let compiled = &deployed.compiled;
        let fresh = self
            .client
            .install_packet(
                &deployed.packet,
                compiled.base_packet_id.as_deref(),
                &self.cache,
                self.policy.get(),
            )
            .await?;
        if let Some(p) = fresh {
            // Only this cycle sets the first policy; a lost race would mean two learners.
            let _ = self.policy.set(p);
        }
        if let Some(p) = self.policy.get() {
            report(&self.client, &c.agent_id, p, DeploymentChange::Install).await;
        }
        Ok(LearnOutcome {
            uploaded: sent,
            training: deployed.training,
            kind: compiled.kind,
            packet_id: compiled.packet_id.clone(),
            packet_size: compiled.packet_size,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
