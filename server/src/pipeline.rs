//! The compute behind the jobs, apart from HTTP and storage: stored experience in,
//! trained models, policies, verdicts and packets out. Everything here is blocking and
//! heavy; the job runner calls it on a blocking thread.
//!
//! - [`simulate`]: fit (or load) the task's world model, drive phantom paths with the
//!   planner from real start states, audit them (Judicial Auditor).
//! - [`train_policy`]: the training job's one entry point — fit (or load) the world model,
//!   distil the recipe's teacher into a policy (a fresh base, or a LoRA adapter on the
//!   task's base) with `plasma_world_model::distil_policy`, evaluate and audit the policy
//!   in imagination.
//! - [`compile_base`], [`compile_adapter`]: quantize, compress and sign a trained policy or
//!   adapter.
//!
//! The training job's policy step is the shared recipe, `plasma_world_model::recipe` (a
//! terminal value for discrete-action tasks, then DAgger in imagination: the teacher
//! labels real states, then states the policy itself visits in the model, with the
//! auditor's rejected paths left out), configured by `[compute.planner]`,
//! `[compute.value_planner]`, `[compute.terminal_value]`, `[compute.distill]` and the
//! request (`num_simulations` caps the labels per round, `use_phantom_paths = false` keeps
//! round 0 only, `learning_rate` sets the fit's).

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::path::Path;

use burn::tensor::Tensor;
use plasma_packets::codec::Digest;
use plasma_packets::model::Provenance;
use plasma_packets::signing::PacketSigner;
use plasma_packets::{FloatLora, FloatPolicy};
use plasma_protocol::reports::{
    AuditReport, DistillStart, DistillSummary, FitStart, PhantomStep, PhaseMetrics,
    PolicyFitSummary, ReturnSummary, SimulationResult, Steering, TrainingResult, WorldModelFit,
};
use plasma_protocol::{Action, PolicyKind, TaskSpec, Transition};
use plasma_world_model::audit::{
    AgentCheck, AuditConfig, Calibration, PathAudit, Verdict, audit_paths, check_agents,
};
use plasma_world_model::burn;
use plasma_world_model::policy::{adapter_packet, base_packet};
use plasma_world_model::rollout::start_states;
use plasma_world_model::screen::screen;
use plasma_world_model::{
    ActionBatch, BuiltPacket, Cem, Dataset, Driver, HostTrajectory, LoraConfig, NormalizerUpdate,
    PlannerPolicy, PolicyModel, RecipeEvent, Registry, RolloutOptions, WorldModel,
    WorldModelConfig, WorldModelError, distil_policy, parse_device,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::config::ComputeConfig;
use crate::phantom::phantom_report;

/// Why a computation stopped.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The task's data or the request cannot support the computation (e.g. too little
    /// experience, an unbounded action box): the client's to fix.
    #[error("{0}")]
    Input(String),
    /// The computation failed.
    #[error("{0}")]
    Compute(String),
}

impl From<WorldModelError> for PipelineError {
    fn from(e: WorldModelError) -> Self {
        match e {
            WorldModelError::Cancelled => PipelineError::Cancelled,
            WorldModelError::UnsupportedTask(_)
            | WorldModelError::EmptyDataset(_)
            | WorldModelError::Task(_) => PipelineError::Input(e.to_string()),
            other => PipelineError::Compute(other.to_string()),
        }
    }
}

/// Result of pipeline steps.
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Where a computation reports to and learns it should stop.
pub trait Progress {
    /// The overall progress (0 to 1) entering or inside `phase`, with figures.
    fn report(&mut self, phase: &str, fraction: f64, metrics: Option<PhaseMetrics>);
    /// The auditor's verdict.
    fn audit(&mut self, verdict: AuditReport);
    /// Whether the job was cancelled.
    fn cancelled(&self) -> bool;
}

/// A task's stored experience.
#[derive(Debug, Clone)]
pub struct Experience {
    /// The task.
    pub spec: TaskSpec,
    /// Its transitions, oldest first.
    pub transitions: Vec<Transition>,
    /// `agents[agent_of[i]]` uploaded `transitions[i]` (empty: unknown).
    pub agent_of: Vec<usize>,
    /// The uploading agents.
    pub agents: Vec<String>,
}

/// A world model ready to use, with the data it was fitted to split for the auditor.
struct FittedModel {
    model: Box<dyn WorldModel>,
    train: Dataset,
    holdout: Dataset,
    /// The index in the experience of each held-out row.
    holdout_rows: Vec<usize>,
    report: WorldModelFit,
    /// The per-agent check of the shared data (`None` before it ran).
    agent_check: Option<AgentCheck>,
}

fn check_cancel(progress: &dyn Progress) -> Result<()> {
    if progress.cancelled() {
        Err(PipelineError::Cancelled)
    } else {
        Ok(())
    }
}

/// Fits the task's world model on its experience, or loads the checkpoint fitted to the
/// same data with the same settings (`model_root/<transitions>-<settings hash>/`).
///
/// With a `prior` checkpoint (the model another task's base policy was distilled in, for
/// an adapter to a changed condition of it), the fit fine-tunes that model instead of
/// starting from random weights: a few hundred transitions of the changed system correct
/// what changed, and the prior keeps what did not (states the condition's data never
/// reached). A prior that cannot be loaded is reported and a fresh model fitted.
fn fit_world_model(
    exp: &Experience,
    settings: &ComputeConfig,
    model_root: &Path,
    prior: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<FittedModel> {
    let n = exp.transitions.len();
    if n < settings.min_transitions {
        return Err(PipelineError::Input(format!(
            "task {} has {n} transitions; at least {} are needed",
            exp.spec.name, settings.min_transitions
        )));
    }
    let device = parse_device(&settings.device)?;
    let (kept, screened) = screen(&exp.spec, &exp.transitions, settings.outlier_widths);
    if screened.dropped > 0 {
        tracing::warn!(task = %exp.spec.name, dropped = screened.dropped, first = ?screened.first_dropped,
            "transitions with extreme values left out of the fit");
    }
    let all = Dataset::from_transitions(&exp.spec, &exp.transitions)?.subset(&kept);
    // Every tenth kept transition is held out for the auditor's calibration.
    let (hold, fit): (Vec<usize>, Vec<usize>) = (0..kept.len()).partition(|i| i % 10 == 9);
    let train = all.subset(&fit);
    let holdout = all.subset(&hold);
    let holdout_rows: Vec<usize> = hold.iter().map(|&i| kept[i]).collect();

    let wm_config = WorldModelConfig::ensemble(&settings.ensemble);
    let fingerprint = {
        let text = serde_json::to_string(&(&wm_config, &settings.world_model_train, n))
            .map_err(|e| PipelineError::Compute(e.to_string()))?;
        let mut h = Sha256::new();
        h.update(text.as_bytes());
        // A declared termination changes how the model's paths end (and is saved in its
        // checkpoint): a model cached without it is not reused. Hashed only when present,
        // so checkpoints of tasks without one keep their names.
        if let Some(t) = &exp.spec.termination {
            let text =
                serde_json::to_string(t).map_err(|e| PipelineError::Compute(e.to_string()))?;
            h.update(text.as_bytes());
        }
        // All of the data, not only its size: after a deletion, or once the newest window
        // has moved, the same count is other data.
        for t in &exp.transitions {
            for v in t.obs.iter().chain(&t.next_obs) {
                h.update(v.to_le_bytes());
            }
            match &t.action {
                Action::Discrete(a) => h.update(a.to_le_bytes()),
                Action::Continuous(values) => values.iter().for_each(|v| h.update(v.to_le_bytes())),
            }
            h.update(t.reward.to_le_bytes());
            h.update([u8::from(t.terminated), u8::from(t.truncated)]);
        }
        h.update(settings.outlier_widths.to_le_bytes());
        // A fine-tuned model differs from a fresh one on the same data.
        if let Some(prior) = prior {
            h.update(b"prior:");
            h.update(prior.to_string_lossy().as_bytes());
        }
        hex::encode(&h.finalize()[..8])
    };
    let name = format!("{n}-{fingerprint}");
    let dir = model_root.join(&name);
    progress.report(
        "fit_world_model",
        0.0,
        Some(PhaseMetrics::FitStart(FitStart { transitions: n })),
    );
    let prior_name = prior.map(|p| p.display().to_string());
    let loaded_report = WorldModelFit {
        transitions: n,
        fitted: false,
        checkpoint: Some(name.clone()),
        prior: prior_name.clone(),
        screen: Some(screened.clone()),
        fine_tuned: None,
        epochs: None,
        train_size: None,
        holdout_mse: None,
        final_train_loss: None,
        seconds: None,
        history: None,
        agents: None,
        agents_advice: None,
        excluded_agents: None,
    };
    if dir.join("model.json").exists()
        && let Ok(model) = Registry::default().load(&dir, &device)
    {
        return Ok(FittedModel {
            model,
            train,
            holdout,
            holdout_rows,
            agent_check: None,
            report: loaded_report,
        });
    }
    let prior_model = prior.and_then(|p| match Registry::default().load(p, &device) {
        Ok(model) if same_system(model.spec(), &exp.spec) => Some(model),
        Ok(_) => {
            tracing::warn!(prior = %p.display(), "prior world model is of other spaces or termination; fitting a fresh one");
            None
        }
        Err(e) => {
            tracing::warn!(prior = %p.display(), error = %e, "prior world model not loaded; fitting a fresh one");
            None
        }
    });
    let fine_tuned = prior_model.is_some();
    let mut train_config = settings.world_model_train.clone();
    let mut model = match prior_model {
        Some(model) => {
            // The prior's weights are tied to its normalizers: keep them (the support
            // still grows to the new data).
            train_config.normalizer = NormalizerUpdate::Keep;
            model
        }
        None => Registry::default().build(&wm_config, &exp.spec, &device)?,
    };
    let report = model.fit(&train, &train_config)?;
    check_cancel(progress)?;
    // Saved under a temporary name and renamed: a crash never leaves half a checkpoint.
    let tmp = model_root.join(format!(".{n}-{fingerprint}.tmp-{}", std::process::id()));
    let saved = std::fs::create_dir_all(model_root)
        .map_err(|e| PipelineError::Compute(e.to_string()))
        .and_then(|_| model.save(&tmp).map_err(PipelineError::from))
        .and_then(|_| {
            std::fs::rename(&tmp, &dir).map_err(|e| PipelineError::Compute(e.to_string()))
        });
    let checkpoint = match saved {
        Ok(()) => Some(name),
        Err(e) => {
            // Another job may have saved the same checkpoint first; the model is still good.
            tracing::warn!(error = %e, "world-model checkpoint not saved");
            let _ = std::fs::remove_dir_all(&tmp);
            dir.join("model.json").exists().then_some(name)
        }
    };
    let report = WorldModelFit {
        fitted: true,
        checkpoint,
        fine_tuned: Some(fine_tuned),
        epochs: Some(report.epochs),
        train_size: Some(report.train_size),
        holdout_mse: Some(report.holdout_mse),
        final_train_loss: Some(report.final_train_loss),
        seconds: Some(report.seconds),
        history: Some(report.history),
        ..loaded_report
    };
    progress.report(
        "fit_world_model",
        0.3,
        Some(PhaseMetrics::WorldModel(report.clone())),
    );
    Ok(FittedModel {
        model,
        train,
        holdout,
        holdout_rows,
        report,
        agent_check: None,
    })
}

/// The task's world model ([`fit_world_model`]), then the per-agent check of its data
/// (`plasma_world_model::audit::check_agents` on the held-out rows): flagged agents are
/// reported in the fit report and the audit and, with `compute.exclude_flagged_agents`,
/// left out — the model is fitted once more without their data, and the job goes on with
/// the experience that remains.
fn world_model<'e>(
    exp: &'e Experience,
    settings: &ComputeConfig,
    model_root: &Path,
    prior: Option<&Path>,
    progress: &mut dyn Progress,
) -> Result<(FittedModel, Cow<'e, Experience>)> {
    let mut fitted = fit_world_model(exp, settings, model_root, prior, progress)?;
    let check = check_agents_of(&fitted, exp, settings)?;
    if let Some(c) = &check
        && !c.flagged.is_empty()
    {
        tracing::warn!(task = %exp.spec.name, flagged = ?c.flagged, "agents whose data disagrees with the others'");
        if settings.exclude_flagged_agents {
            let keep: Vec<usize> = exp
                .agent_of
                .iter()
                .enumerate()
                .filter(|(_, a)| !c.flagged.contains(&exp.agents[**a]))
                .map(|(i, _)| i)
                .collect();
            let rest = Experience {
                spec: exp.spec.clone(),
                transitions: keep.iter().map(|&i| exp.transitions[i].clone()).collect(),
                agent_of: keep.iter().map(|&i| exp.agent_of[i]).collect(),
                agents: exp.agents.clone(),
            };
            let mut refit = fit_world_model(&rest, settings, model_root, prior, progress)?;
            refit.report.agents = Some(c.clone());
            refit.report.agents_advice = agents_advice(Some(c));
            refit.report.excluded_agents = Some(c.flagged.clone());
            refit.agent_check = check;
            return Ok((refit, Cow::Owned(rest)));
        }
    }
    fitted.report.agents = check.clone();
    fitted.report.agents_advice = agents_advice(check.as_ref());
    fitted.agent_check = check;
    Ok((fitted, Cow::Borrowed(exp)))
}

/// The per-agent check on the held-out rows; `None` when the rows' agents are unknown.
fn check_agents_of(
    fitted: &FittedModel,
    exp: &Experience,
    settings: &ComputeConfig,
) -> Result<Option<AgentCheck>> {
    if exp.agent_of.len() != exp.transitions.len() || fitted.holdout.is_empty() {
        return Ok(None);
    }
    let labels: Vec<usize> = fitted
        .holdout_rows
        .iter()
        .map(|&i| exp.agent_of[i])
        .collect();
    Ok(Some(check_agents(
        fitted.model.as_ref(),
        &fitted.holdout,
        &labels,
        &exp.agents,
        &settings.agent_check,
    )?))
}

/// Whether a model of task `a` can be fine-tuned into one of task `b`: the same spaces and
/// the same declared termination (names and episode limits may differ).
fn same_system(a: &TaskSpec, b: &TaskSpec) -> bool {
    a.observation_space == b.observation_space
        && a.action_space == b.action_space
        && a.termination == b.termination
}

/// `count` real observations spread evenly over the experience, row-major.
fn real_states(exp: &Experience, count: usize) -> Vec<f32> {
    let n = exp.transitions.len();
    let count = count.clamp(1, n);
    let mut out = Vec::with_capacity(count * exp.transitions[0].obs.len());
    for k in 0..count {
        out.extend_from_slice(&exp.transitions[k * n / count].obs);
    }
    out
}

fn mean(values: &[f32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64
}

/// Probability that each path is still alive at its end: the product of its continue
/// probabilities.
fn survival(host: &HostTrajectory) -> Vec<f32> {
    if host.continue_probs.is_empty() || host.horizon == 0 {
        return vec![];
    }
    host.continue_probs
        .chunks_exact(host.horizon)
        .map(|c| c.iter().product())
        .collect()
}

/// What an operator should do about flagged agents.
fn agents_advice(agents: Option<&AgentCheck>) -> Option<String> {
    let flagged = &agents?.flagged;
    (!flagged.is_empty()).then(|| {
        format!(
            "the data of {flagged:?} disagrees with the other agents' under the shared model: \
             if such an agent's system really differs (another condition or site), register a \
             condition task for it (POST /tasks, same spaces) and upload there; otherwise check \
             its data (GET /experience) and delete it (DELETE /experience) or set \
             compute.exclude_flagged_agents"
        )
    })
}

fn audit_report(audit: &PathAudit, agents: Option<&AgentCheck>) -> AuditReport {
    AuditReport {
        agents: agents.cloned(),
        agents_advice: agents_advice(agents),
        approved: audit.verdict.approved,
        reasons: audit.verdict.reasons.clone(),
        figures: audit.verdict.figures.clone(),
        flagged: audit.flagged.clone(),
        rejected_share: audit.rejected_share(),
        paths: audit.approved.len(),
        detectors: audit.detectors.clone(),
        failures: Some(audit.failures.clone()),
    }
}

/// Parameters of a simulation.
#[derive(Debug, Clone)]
pub struct SimulateParams {
    /// Phantom paths.
    pub paths: usize,
    /// Steps per path.
    pub horizon: usize,
    /// Run the Judicial Auditor on the paths.
    pub audit: bool,
}

/// Phantom paths steered by the planner from real start states, audited.
pub fn simulate(
    exp: &Experience,
    settings: &ComputeConfig,
    params: &SimulateParams,
    model_root: &Path,
    progress: &mut dyn Progress,
) -> Result<SimulationResult> {
    let (fitted, exp) = world_model(exp, settings, model_root, None, progress)?;
    let exp = exp.as_ref();
    let model = fitted.model.as_ref();
    let obs_dim = exp.spec.observation_space.dim();
    let starts = real_states(exp, params.paths);
    let paths = starts.len() / obs_dim;
    let start = start_states(&starts, obs_dim, model.device())?;
    let mut planner = Cem::new(settings.planner.clone())?;
    let horizon = params.horizon;
    let options = RolloutOptions {
        uncertainty: true,
        record: true,
        ..RolloutOptions::default()
    };
    let mut cancelled = false;
    let trajectory = {
        let progress = &mut *progress;
        let cancelled = &mut cancelled;
        let planner = &mut planner;
        let mut steer = |obs: Tensor<2>, step: usize| -> plasma_world_model::Result<ActionBatch> {
            if progress.cancelled() {
                *cancelled = true;
                return Err(WorldModelError::Config("cancelled".into()));
            }
            progress.report(
                "phantom_paths",
                0.3 + 0.6 * step as f64 / horizon as f64,
                Some(PhaseMetrics::PhantomStep(PhantomStep {
                    step,
                    horizon,
                    paths,
                })),
            );
            let mut policy = PlannerPolicy {
                model,
                planner: &mut *planner,
            };
            plasma_world_model::Policy::act(&mut policy, obs, step)
        };
        model.rollout(start, Driver::Policy(&mut steer), horizon, &options)
    };
    if cancelled {
        return Err(PipelineError::Cancelled);
    }
    let host = trajectory?.to_host()?;
    let survival = survival(&host);
    let mut result = SimulationResult {
        task: exp.spec.name.clone(),
        paths,
        horizon,
        planner: "cem".into(),
        returns: ReturnSummary::of(&host.returns),
        mean_return: mean(&host.returns),
        path_returns: host.returns.iter().take(64).copied().collect(),
        success_probability: mean(&survival),
        mean_uncertainty: mean(&host.uncertainty),
        world_model: fitted.report.clone(),
        audit: None,
        phantom: None,
    };
    if params.audit {
        progress.report("audit", 0.9, None);
        let calibration = Calibration::fit(
            model,
            &fitted.train,
            &fitted.holdout,
            &AuditConfig::default(),
        )?;
        let audit = audit_paths(&calibration, &host)?;
        let verdict = audit_report(&audit, fitted.agent_check.as_ref());
        progress.audit(verdict.clone());
        result.audit = Some(verdict);
        let mut steer = PlannerPolicy {
            model,
            planner: &mut planner,
        };
        result.phantom = Some(phantom_report(
            model,
            exp,
            &calibration,
            Steering::Planner,
            &mut steer,
            horizon,
        )?);
    }
    Ok(result)
}

/// Base policy or LoRA adapter on a base.
pub enum PolicyTarget<'a> {
    /// A fresh full policy.
    Base,
    /// An adapter on this base policy.
    Adapter {
        /// The base, as trained.
        base: &'a PolicyModel,
        /// LoRA rank.
        rank: usize,
        /// LoRA alpha.
        alpha: f32,
    },
}

/// Parameters of a training run.
pub struct TrainParams<'a> {
    /// What to train.
    pub target: PolicyTarget<'a>,
    /// Real states to label (capped by the configuration).
    pub label_states: usize,
    /// Learning rate of the policy fit.
    pub learning_rate: f32,
    /// Run DAgger rounds on phantom paths.
    pub use_phantom_paths: bool,
    /// A world-model checkpoint to fine-tune instead of fitting from scratch: the model of
    /// another task's base, for an adapter to a changed condition.
    pub prior_model: Option<&'a Path>,
    /// The training run (the job's id), named in the result.
    pub training_id: &'a str,
    /// For an adapter: the training run of its base.
    pub base_training: Option<&'a str>,
}

/// What a training run produced.
pub struct TrainedPolicy {
    /// The policy (adapter mode for adapters).
    pub policy: PolicyModel,
    /// The auditor's verdict on the policy's phantom paths.
    pub verdict: Verdict,
    /// The job's result.
    pub result: TrainingResult,
}

/// Policy-driven phantom paths from real starts (evaluation and audit).
fn policy_paths(
    model: &dyn WorldModel,
    policy: &PolicyModel,
    starts: &[f32],
    obs_dim: usize,
    horizon: usize,
) -> Result<HostTrajectory> {
    let start = start_states(starts, obs_dim, model.device())?;
    let mut driver = policy.clone();
    let options = RolloutOptions {
        uncertainty: true,
        record: true,
        ..RolloutOptions::default()
    };
    Ok(model
        .rollout(start, Driver::Policy(&mut driver), horizon, &options)?
        .to_host()?)
}

/// The training job's compute: stored experience in, trained policy and figures out.
pub fn train_policy(
    exp: &Experience,
    settings: &ComputeConfig,
    params: &TrainParams<'_>,
    model_root: &Path,
    progress: &mut dyn Progress,
) -> Result<TrainedPolicy> {
    let (fitted, exp) = world_model(exp, settings, model_root, params.prior_model, progress)?;
    let exp = exp.as_ref();
    check_cancel(progress)?;
    let (policy, result, audit) = distil_fitted(&fitted, exp, settings, params, progress)?;
    Ok(TrainedPolicy {
        policy,
        verdict: audit.verdict,
        result,
    })
}

/// The shared recipe on the fitted model (`plasma_world_model::distil_policy`: a terminal
/// value for discrete actions, then DAgger in imagination on audited paths only), then an
/// evaluation and audit of the distilled policy on fresh phantom paths. The value's
/// figures come with the `distill` phase's first event (sent when the value is learned).
fn distil_fitted(
    fitted: &FittedModel,
    exp: &Experience,
    settings: &ComputeConfig,
    params: &TrainParams<'_>,
    progress: &mut dyn Progress,
) -> Result<(PolicyModel, TrainingResult, PathAudit)> {
    let model = fitted.model.as_ref();
    let obs_dim = exp.spec.observation_space.dim();
    let device = model.device().clone();
    // Start states: the real observations (spread evenly, at most 4096 of them).
    let starts = real_states(exp, exp.transitions.len().min(4096));
    let policy = match &params.target {
        PolicyTarget::Base => PolicyModel::for_space(
            settings.policy.clone(),
            &starts,
            obs_dim,
            &exp.spec.action_space,
            &device,
        )
        .map_err(|e| PipelineError::Input(format!("cannot build a policy for this task: {e}")))?,
        PolicyTarget::Adapter { base, rank, alpha } => base.with_lora(&LoraConfig {
            rank: *rank,
            alpha: *alpha,
            ..LoraConfig::default()
        })?,
    };
    let calibration = Calibration::fit(
        model,
        &fitted.train,
        &fitted.holdout,
        &AuditConfig::default(),
    )?;
    let mut recipe = settings.recipe();
    let config = &mut recipe.distill;
    let labels = params.label_states.max(1);
    config.initial_labels = config.initial_labels.min(labels);
    config.labels_per_round = config.labels_per_round.min(labels);
    if !params.use_phantom_paths {
        config.iterations = 0;
    }
    config.fit.learning_rate = params.learning_rate;
    if !params.use_phantom_paths {
        // The refit rolls the student in the model: phantom paths too.
        recipe.value_refit.refits = 0;
    }
    let rounds = recipe.rounds_for(&exp.spec.action_space);
    check_cancel(progress)?;
    let start = DistillStart {
        rounds,
        initial_labels: recipe.distill.initial_labels,
        terminal_value: None,
    };
    if recipe.value_for(&exp.spec.action_space).is_some() {
        progress.report("terminal_value", 0.3, None);
    } else {
        progress.report(
            "distill",
            0.35,
            Some(PhaseMetrics::DistillStart(start.clone())),
        );
    }
    let (policy, report) = {
        let mut on_event = |event: RecipeEvent<'_>| {
            match event {
                RecipeEvent::TerminalValue(v) => {
                    let figures = DistillStart {
                        terminal_value: Some(v.clone()),
                        ..start.clone()
                    };
                    progress.report("distill", 0.35, Some(PhaseMetrics::DistillStart(figures)));
                }
                RecipeEvent::Round(p) => progress.report(
                    "distill",
                    0.35 + 0.55 * (p.iteration + 1) as f64 / rounds as f64,
                    Some(PhaseMetrics::Round(p.clone())),
                ),
            }
            if progress.cancelled() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        distil_policy(
            model,
            &starts,
            policy,
            &recipe,
            Some(&calibration),
            &mut on_event,
        )?
    };

    check_cancel(progress)?;
    progress.report("audit", 0.9, None);
    let eval_starts = real_states(exp, settings.max_trajectories.min(64));
    let host = policy_paths(
        model,
        &policy,
        &eval_starts,
        obs_dim,
        settings.phantom_horizon,
    )?;
    let audit = audit_paths(&calibration, &host)?;
    let audit_figures = audit_report(&audit, fitted.agent_check.as_ref());
    progress.audit(audit_figures.clone());
    let phantom = phantom_report(
        model,
        exp,
        &calibration,
        Steering::Policy,
        &mut policy.clone(),
        settings.phantom_horizon,
    )?;
    let last = report.distill.rounds.last();
    let fit = report.distill.last_fit.as_ref();
    let result = TrainingResult {
        training_id: params.training_id.to_owned(),
        task: exp.spec.name.clone(),
        base_training: params.base_training.map(str::to_owned),
        trained_lora_path: format!("checkpoints/{}", params.training_id),
        verdict_approved: audit.verdict.approved,
        mode: match params.target {
            PolicyTarget::Base => PolicyKind::Base,
            PolicyTarget::Adapter { .. } => PolicyKind::Adapter,
        },
        labels: last.map(|r| r.labels),
        rounds: report.distill.rounds.len(),
        rejected_paths: report.distill.rounds.iter().map(|r| r.rejected_paths).sum(),
        imagined_return: ReturnSummary::of(&host.returns),
        imagined_survival: mean(&survival(&host)),
        policy_fit: fit.map(|f| PolicyFitSummary {
            samples: f.samples,
            epochs: f.epochs,
            initial_loss: f.initial_loss,
            final_loss: f.final_loss,
            accuracy: f.accuracy,
            mean_abs_error: f.mean_abs_error,
            learning_rate: params.learning_rate,
        }),
        trainable_params: policy.trainable_params(),
        audit: audit_figures,
        terminal_value: report.terminal_value.clone(),
        distill: DistillSummary {
            rounds: report.distill.rounds.clone(),
            seconds: report.distill.seconds,
            passes: report.pass_returns.clone(),
            chosen_pass: report.chosen_pass,
        },
        world_model: fitted.report.clone(),
        phantom: Some(phantom),
    };
    Ok((policy, result, audit))
}

/// A trained policy as stored between training and compilation (`blobs/policies/<id>.json`):
/// the f32 network, and for an adapter its LoRA factors and the base's training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicy {
    /// The task.
    pub task: String,
    /// The training run.
    pub training_id: String,
    /// For an adapter: the training run of its base.
    pub base_training: Option<String>,
    /// The (base) network.
    pub network: FloatPolicy,
    /// The adapter.
    pub lora: Option<FloatLora>,
    /// The auditor's verdict on its phantom paths.
    pub verdict: Verdict,
}

impl StoredPolicy {
    /// The stored form of a trained policy.
    pub fn new(
        task: &str,
        training_id: &str,
        base_training: Option<String>,
        policy: &PolicyModel,
        verdict: Verdict,
    ) -> Result<Self> {
        let network = policy.to_float_policy()?;
        let lora = match policy.lora() {
            Some(_) => Some(policy.to_float_lora()?),
            None => None,
        };
        Ok(StoredPolicy {
            task: task.to_owned(),
            training_id: training_id.to_owned(),
            base_training,
            network,
            lora,
            verdict,
        })
    }
}

/// Compiles a base packet of `policy`'s network.
pub fn compile_base(
    policy: &StoredPolicy,
    provenance: Provenance,
    signer: &PacketSigner,
    level: i32,
) -> Result<BuiltPacket> {
    Ok(base_packet(&policy.network, provenance, signer, level)?)
}

/// Compiles an adapter packet of `policy` (which must hold a LoRA adapter), bound to the
/// base packet `base_digest` of the same base network.
pub fn compile_adapter(
    policy: &StoredPolicy,
    base_digest: Digest,
    provenance: Provenance,
    signer: &PacketSigner,
    level: i32,
) -> Result<BuiltPacket> {
    let lora = policy
        .lora
        .as_ref()
        .ok_or_else(|| PipelineError::Input("this training run holds no adapter".into()))?;
    Ok(adapter_packet(
        &policy.network,
        lora,
        base_digest,
        provenance,
        signer,
        level,
    )?)
}
