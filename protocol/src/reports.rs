//! What jobs report, typed: the auditor's verdicts with every detector's figures, the fits
//! of world models and policies, distillation rounds, and the results of simulations and
//! training runs. The world model produces these types (it re-exports the ones it
//! computes); the server stores them with its jobs; clients and the dashboard read them.
//! Their JSON is the server's wire form since its first version.

use std::collections::BTreeMap;

use plasma_packets::AuditStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::records::PolicyKind;

/// The auditor's decision on a set of paths, a packet or a batch of states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verdict {
    /// Whether the audited thing may be used (distilled from, deployed).
    pub approved: bool,
    /// Why it was rejected (empty when approved), one human-readable line each.
    pub reasons: Vec<String>,
    /// The measured figures and thresholds behind the decision, by name.
    pub figures: BTreeMap<String, f64>,
}

/// Approved or rejected, for code that matches on the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    /// Passed every check.
    Approved,
    /// Failed at least one check.
    Rejected,
}

impl Verdict {
    /// A verdict from the reasons found: approved when there are none.
    pub fn from_reasons(reasons: Vec<String>, figures: BTreeMap<String, f64>) -> Self {
        Verdict {
            approved: reasons.is_empty(),
            reasons,
            figures,
        }
    }

    /// Approved or rejected.
    pub fn status(&self) -> VerdictStatus {
        if self.approved {
            VerdictStatus::Approved
        } else {
            VerdictStatus::Rejected
        }
    }

    /// The status to record in a packet's provenance: `Approved` when approved,
    /// `ForcedAfterRejection` when rejected and `forced` by an operator, and `None` when
    /// rejected and not forced (the packet must not be deployed).
    pub fn audit_status(&self, forced: bool) -> Option<AuditStatus> {
        match (self.approved, forced) {
            (true, _) => Some(AuditStatus::Approved),
            (false, true) => Some(AuditStatus::ForcedAfterRejection),
            (false, false) => None,
        }
    }

    /// A one-line summary (at most `max_bytes` bytes, cut on a character boundary), e.g.
    /// for a packet's `audit_summary`.
    pub fn summary(&self, max_bytes: usize) -> String {
        let mut s = if self.approved {
            "approved".to_owned()
        } else {
            format!("rejected: {}", self.reasons.join("; "))
        };
        if s.len() > max_bytes {
            let mut end = max_bytes;
            while end > 0 && !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
}

/// One agent's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentScore {
    /// The agent.
    pub agent: String,
    /// Transitions scored.
    pub transitions: usize,
    /// Median residual of its transitions (see the module docs); `None` when it had too
    /// few to score.
    pub score: Option<f32>,
    /// Whether its data disagrees with the rest.
    pub flagged: bool,
}

/// The outcome: every agent's score, the threshold and who is flagged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentCheck {
    /// Whether enough agents had data to compare them.
    pub compared: bool,
    /// Per agent, in the order given.
    pub agents: Vec<AgentScore>,
    /// Median score over the scored agents.
    pub median_score: f32,
    /// Scores above this are flagged.
    pub threshold: f32,
    /// The flagged agents.
    pub flagged: Vec<String>,
}

/// Which value of a transition a screen dropped it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "field", content = "position")]
pub enum ScreenedField {
    /// `obs[position]`.
    Obs(usize),
    /// `next_obs[position]`.
    NextObs(usize),
    /// The reward.
    Reward,
}

/// What a screen kept and dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScreenReport {
    /// Transitions kept.
    pub kept: usize,
    /// Transitions dropped.
    pub dropped: usize,
    /// The first dropped transition (its index in the input) and the value that dropped it.
    pub first_dropped: Option<(usize, ScreenedField)>,
}

/// What fitting measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueReport {
    /// Mean value over the sampled states after the last sweep.
    pub mean_value: f32,
    /// Mean squared error of the last sweep's regression.
    pub last_loss: f32,
    /// Seconds spent.
    pub seconds: f64,
}

/// What a call of plasma-world-model's `PolicyModel::fit` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyFitReport {
    /// Training rows.
    pub samples: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Adam steps taken.
    pub steps: usize,
    /// Whether only LoRA factors were trained (adapter mode).
    pub adapter_only: bool,
    /// Loss on all rows before training.
    pub initial_loss: f32,
    /// Loss on all rows after training.
    pub final_loss: f32,
    /// Mean minibatch loss of each epoch.
    pub epoch_losses: Vec<f32>,
    /// Discrete labels: share of rows whose argmax equals the label, after training.
    pub accuracy: Option<f32>,
    /// Continuous labels: mean absolute error of the mapped action, in units of the box's
    /// width, after training.
    pub mean_abs_error: Option<f32>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// What one round did; also the progress event a caller receives after each round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistillProgress {
    /// Round index (0: expert-labelled real states).
    pub iteration: usize,
    /// Rounds in all (`iterations + 1`).
    pub iterations: usize,
    /// States labelled so far.
    pub labels: usize,
    /// Phantom paths driven by the policy this round (0 in round 0).
    pub paths: usize,
    /// Of those, the paths the auditor rejected (their states were not labelled).
    pub rejected_paths: usize,
    /// Mean imagined return of the policy's paths *before* this round's fit (none in round
    /// 0): how well the student does in the model.
    pub imagined_return: Option<f64>,
    /// Training loss after the fit.
    pub loss: f64,
    /// Discrete actions: share of the labels the policy reproduces after the fit.
    pub accuracy: Option<f64>,
    /// Continuous actions: mean absolute error after the fit, in units of the box's width.
    pub mean_abs_error: Option<f64>,
    /// Seconds spent planning labels in this round.
    pub label_seconds: f64,
}

/// Count, mean, spread and range of a set of returns (`{"count": 0}` when empty).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnSummary {
    /// Values summarised.
    pub count: usize,
    /// Mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Smallest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f32>,
    /// Largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f32>,
}

impl ReturnSummary {
    /// The summary of `values`.
    pub fn of(values: &[f32]) -> Self {
        if values.is_empty() {
            return ReturnSummary::default();
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        ReturnSummary {
            count: values.len(),
            mean: Some(mean),
            std: Some(var.sqrt()),
            min: Some(values.iter().copied().fold(f32::INFINITY, f32::min)),
            max: Some(values.iter().copied().fold(f32::NEG_INFINITY, f32::max)),
        }
    }
}

/// One epoch of a world-model fit: what a plot of the fit draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EpochFit {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss of the epoch (all members).
    pub train_loss: f32,
    /// Held-out mean squared error of each ensemble member after the epoch (normalized
    /// units); empty without a held-out split.
    pub holdout_mse: Vec<f32>,
}

/// How a job came by its world model: fitted (with the fit's figures) or loaded from the
/// checkpoint of the same data and settings, and what the per-agent check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorldModelFit {
    /// Transitions the model was fitted to (before screening).
    pub transitions: usize,
    /// Fitted by this job (`false`: loaded from its checkpoint).
    pub fitted: bool,
    /// The checkpoint's directory name under the task's models (none if it could not be
    /// saved).
    pub checkpoint: Option<String>,
    /// The checkpoint fine-tuned from (another task's base model), if any.
    #[serde(default)]
    pub prior: Option<String>,
    /// Extreme transitions left out of the fit.
    #[serde(default)]
    pub screen: Option<ScreenReport>,
    /// Whether the prior was loaded and fine-tuned (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fine_tuned: Option<bool>,
    /// Epochs run (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Transitions trained on (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    /// Held-out mean squared error of each ensemble member (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_mse: Option<Vec<f32>>,
    /// Mean training loss of the last epoch (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_train_loss: Option<f32>,
    /// Seconds the fit took (a fit only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Every epoch's training loss and held-out errors, in order (a fit only): the fit's
    /// complete history, kept with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<EpochFit>>,
    /// The per-agent check of the task's data (none while it has not run).
    #[serde(default)]
    pub agents: Option<AgentCheck>,
    /// What to do about flagged agents.
    #[serde(default)]
    pub agents_advice: Option<String>,
    /// Agents whose data was left out (`compute.exclude_flagged_agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_agents: Option<Vec<String>>,
}

/// Summary of a sample of finite values (non-finite values are left out and counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Finite values summarized.
    pub count: usize,
    /// Non-finite values left out.
    pub non_finite: usize,
    /// Mean.
    pub mean: f32,
    /// Standard deviation (population).
    pub std: f32,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Median.
    pub q50: f32,
    /// 90th percentile.
    pub q90: f32,
    /// 99th percentile.
    pub q99: f32,
}

impl Summary {
    /// Summarizes `values`; all zeros when none is finite.
    pub fn of(values: &[f32]) -> Summary {
        let sorted = sorted_finite(values);
        let non_finite = values.len() - sorted.len();
        if sorted.is_empty() {
            return Summary {
                non_finite,
                ..Summary::default()
            };
        }
        let n = sorted.len() as f64;
        let mean = sorted.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = sorted
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        Summary {
            count: sorted.len(),
            non_finite,
            mean: mean as f32,
            std: var.sqrt() as f32,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            q50: quantile_sorted(&sorted, 0.5),
            q90: quantile_sorted(&sorted, 0.9),
            q99: quantile_sorted(&sorted, 0.99),
        }
    }
}

/// The finite values of `values`, sorted ascending.
pub fn sorted_finite(values: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    v
}

/// Quantile `q ∈ [0, 1]` of sorted values, linearly interpolated (NumPy's default);
/// 0 for an empty slice.
pub fn quantile_sorted(sorted: &[f32], q: f64) -> f32 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = (pos - lo as f64) as f32;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// What kind of failure a simulation predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The continue probability collapses: the model predicts the episode ends.
    Termination,
    /// The path earns its return where the model does not know the dynamics.
    Exploitation,
    /// The predicted reward leaves the real reward range.
    RewardSpike,
    /// The path leaves the training data's region.
    DistributionShift,
    /// The model produced non-finite values.
    NonFinite,
}

impl FailureKind {
    /// The kind in words.
    pub fn describe(self) -> &'static str {
        match self {
            FailureKind::Termination => "predicted termination",
            FailureKind::Exploitation => "model exploitation",
            FailureKind::RewardSpike => "reward spike",
            FailureKind::DistributionShift => "distribution shift",
            FailureKind::NonFinite => "non-finite prediction",
        }
    }
}

/// Above or below the training data's mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More than one training std above the mean.
    Above,
    /// More than one training std below the mean.
    Below,
}

/// A condition common to the states that precede a failure: observation dimension `dim`
/// lies more than one training std `direction` the training mean in `share` of the cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Condition {
    /// Observation dimension.
    pub dim: usize,
    /// Above or below.
    pub direction: Direction,
    /// Share of the failures preceded by this condition.
    pub share: f32,
    /// Mean standardized value of the dimension in those preceding states.
    pub mean_z: f32,
}

/// One failure mode of a simulation: where the paths that fail this way end up and what
/// leads there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureMode {
    /// The kind of failure.
    pub kind: FailureKind,
    /// Paths that fail this way (first occurrence per path).
    pub paths: usize,
    /// Share of all paths.
    pub share: f32,
    /// Steps at which the failures occur.
    pub step: Summary,
    /// Per-dimension minimum of the failure states.
    pub state_min: Vec<f32>,
    /// Per-dimension mean of the failure states.
    pub state_mean: Vec<f32>,
    /// Per-dimension maximum of the failure states.
    pub state_max: Vec<f32>,
    /// Per-dimension mean of the states `condition_lookback` steps before the failure
    /// (or the first recorded state).
    pub preceding_mean: Vec<f32>,
    /// The most common conditions of the preceding states, most common first (those
    /// shared by at least half of the failures).
    pub conditions: Vec<Condition>,
    /// The mode in words.
    pub description: String,
}

/// "What could go wrong": the failure modes predicted by one simulation, for an operator
/// to read before deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureReport {
    /// Paths simulated.
    pub paths: usize,
    /// The modes, most frequent first.
    pub modes: Vec<FailureMode>,
}

/// Where on one path a failure is predicted: the first step of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailureEvent {
    /// The kind of failure.
    pub kind: FailureKind,
    /// The step (0-based, after that step's action) where it first occurs.
    pub step: usize,
}

/// One of the auditor's detectors, its worst figure over the audited paths against the
/// threshold it is held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetectorCheck {
    /// The detector.
    pub detector: Detector,
    /// Its worst figure over the live steps of all paths (the largest, or for the lower
    /// reward bound the smallest).
    pub measured: f64,
    /// The threshold: the detector fires on a path where the figure lies beyond it.
    pub threshold: f64,
    /// Whether firing means below the threshold (the lower reward bound) rather than above.
    #[serde(default)]
    pub below: bool,
    /// Paths it fired on.
    pub flagged: usize,
    /// What the figure is, in words (with its unit).
    pub meaning: String,
}

/// The auditor's detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Share of a path's return earned where the members disagree beyond τ_u.
    Exploitation,
    /// Member disagreement against what the model shows on real held-out data (τ_u).
    Disagreement,
    /// Predicted reward above the real range.
    RewardHigh,
    /// Predicted reward below the real range.
    RewardLow,
    /// Distance of an imagined state to the training data (τ_s).
    DistributionShift,
    /// Share of the paths rejected, against the share a verdict allows.
    RejectedShare,
}

/// How phantom paths were steered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Steering {
    /// By the trained policy (a training run's).
    Policy,
    /// By the planner (a simulation's).
    Planner,
    /// By the actions an agent really took from the same start (a replay).
    RecordedActions,
}

/// Imagined values per step, over the ensemble: every member imagines the same start
/// under the same steering, and the band is the spread of their paths. Step `t` is the
/// state after the `t`-th action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImaginedBand {
    /// Mean over the members, `[steps][obs_dim]`.
    pub mean: Vec<Vec<f32>>,
    /// Lowest member, `[steps][obs_dim]`.
    pub low: Vec<Vec<f32>>,
    /// Highest member, `[steps][obs_dim]`.
    pub high: Vec<Vec<f32>>,
    /// Predicted reward per step, mean over the members.
    pub reward: Vec<f32>,
    /// Probability that the path is still alive after each step (declared termination or
    /// the model's continue prediction), mean over the members.
    pub alive: Vec<f32>,
    /// Member disagreement per step (the auditor's `u`), mean over the members.
    pub uncertainty: Vec<f32>,
}

/// How a real stretch of experience ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RealEnd {
    /// The episode reached a terminal state.
    Terminated,
    /// The episode was truncated (time limit or outside cause).
    Truncated,
    /// The stored data stops (or the horizon was reached) while the episode went on.
    Continues,
}

/// What really happened from a start state: the agent's own steps, and the model
/// replaying the actions it took (the model's error, drawn over the truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RealPath {
    /// The observation after each real step, `[steps][obs_dim]`.
    pub obs: Vec<Vec<f32>>,
    /// The reward of each real step.
    pub reward: Vec<f32>,
    /// How the stretch ended.
    pub end: RealEnd,
    /// The ensemble under the recorded actions, as many steps.
    pub replayed: ImaginedBand,
}

/// One start state and what the model imagines from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhantomPath {
    /// Index of the start state's transition in the task's (screened) experience.
    pub start_index: usize,
    /// The agent that recorded it, when known.
    pub agent_id: Option<String>,
    /// The start state.
    pub start: Vec<f32>,
    /// The imagined paths' band, steered as the report says.
    pub imagined: ImaginedBand,
    /// The real continuation from the same start, when the data holds one.
    pub real: Option<RealPath>,
    /// Failures the auditor predicts on the member paths: `(member, event)`, first step of
    /// each kind per member.
    pub failures: Vec<MemberFailure>,
    /// Member paths the auditor approved (of `members`).
    pub approved_members: usize,
    /// Why member paths were rejected, one line each.
    pub reasons: Vec<String>,
}

/// A failure predicted on one member's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberFailure {
    /// The ensemble member whose path it is.
    pub member: usize,
    /// What, and where.
    #[serde(flatten)]
    pub event: FailureEvent,
}

/// Phantom paths for people to look at: a few real start states, each imagined by every
/// ensemble member with the real continuation beside it, and the failures predicted on
/// them. Stored with the run (training or simulation) that drew them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhantomReport {
    /// What steered the imagined paths.
    pub steering: Steering,
    /// Steps per imagined path.
    pub horizon: usize,
    /// Ensemble members (paths per start).
    pub members: usize,
    /// Values per observation.
    pub obs_dim: usize,
    /// The auditor's disagreement threshold τ_u (the uncertainty plot's line).
    pub disagreement_threshold: f32,
    /// The real reward range the auditor allows, `[low, high]`.
    pub reward_range: [f32; 2],
    /// The start states and their paths.
    pub paths: Vec<PhantomPath>,
}

/// The Judicial Auditor's report on a set of phantom paths: the verdict, every detector's
/// figure and threshold (`figures`), how many paths each detector flagged, and the
/// per-agent check of the data behind the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    /// May the paths (or the policy that drove them) be used?
    pub approved: bool,
    /// Why not, one line each.
    pub reasons: Vec<String>,
    /// Measured figures and thresholds, by name.
    pub figures: BTreeMap<String, f64>,
    /// Paths each detector flagged.
    pub flagged: BTreeMap<String, usize>,
    /// Share of the paths rejected.
    pub rejected_share: f32,
    /// Paths audited.
    pub paths: usize,
    /// The per-agent check of the task's data.
    #[serde(default)]
    pub agents: Option<AgentCheck>,
    /// What to do about flagged agents.
    #[serde(default)]
    pub agents_advice: Option<String>,
    /// Every detector's worst figure against its threshold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<DetectorCheck>,
    /// What could go wrong: the failure modes the audited paths predict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<FailureReport>,
}

/// The result of a phantom-path simulation (`POST /simulate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimulationResult {
    /// The task.
    pub task: String,
    /// Paths driven.
    pub paths: usize,
    /// Steps per path.
    pub horizon: usize,
    /// The planner that steered them (`cem`).
    pub planner: String,
    /// Imagined returns.
    pub returns: ReturnSummary,
    /// Their mean.
    pub mean_return: f64,
    /// The first 64 paths' returns.
    pub path_returns: Vec<f32>,
    /// Mean probability that a path is still alive at its end.
    pub success_probability: f64,
    /// Mean ensemble disagreement along the paths.
    pub mean_uncertainty: f64,
    /// The world model used.
    pub world_model: WorldModelFit,
    /// The auditor's report (none when `adversarial_audit` was off).
    pub audit: Option<AuditReport>,
    /// A few of the paths drawn per step, with the real continuations beside them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phantom: Option<PhantomReport>,
}

/// The policy fit of a training run's last distillation round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyFitSummary {
    /// Labelled rows.
    pub samples: usize,
    /// Epochs.
    pub epochs: usize,
    /// Loss before the fit.
    pub initial_loss: f32,
    /// Loss after it.
    pub final_loss: f32,
    /// Discrete actions: share of labels reproduced.
    pub accuracy: Option<f32>,
    /// Continuous actions: mean absolute error in box widths.
    pub mean_abs_error: Option<f32>,
    /// The fit's learning rate.
    pub learning_rate: f32,
}

/// Every round of a training run's distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistillSummary {
    /// One entry per round.
    pub rounds: Vec<DistillProgress>,
    /// Seconds of the distillation.
    pub seconds: f64,
    /// Each distillation pass's student scored by its mean imagined return over long
    /// paths from real starts (one pass without value refits).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passes: Vec<f64>,
    /// The pass whose student was kept (the best scored), from 0.
    #[serde(default)]
    pub chosen_pass: usize,
}

/// The result of a training run (`POST /train`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrainingResult {
    /// The training run.
    pub training_id: String,
    /// The task.
    pub task: String,
    /// Base policy or adapter.
    pub mode: PolicyKind,
    /// For an adapter: the base's training run.
    pub base_training: Option<String>,
    /// The prototype's name for the training run (`checkpoints/<id>`), accepted by
    /// `POST /instruction-packet/compile`.
    pub trained_lora_path: String,
    /// Whether the auditor approved the policy (compilation needs it, or `force`).
    pub verdict_approved: bool,
    /// States labelled by the last round.
    pub labels: Option<usize>,
    /// Distillation rounds run.
    pub rounds: usize,
    /// Phantom paths the auditor kept out of distillation.
    pub rejected_paths: usize,
    /// The policy's returns in imagination, from real start states.
    pub imagined_return: ReturnSummary,
    /// Mean probability that its imagined paths are still alive at their end.
    pub imagined_survival: f64,
    /// The last policy fit.
    pub policy_fit: Option<PolicyFitSummary>,
    /// Trainable parameters (LoRA factors only for an adapter).
    pub trainable_params: usize,
    /// The auditor's report on the policy's phantom paths.
    pub audit: AuditReport,
    /// The terminal value's fit (discrete-action tasks).
    pub terminal_value: Option<ValueReport>,
    /// The distillation's rounds.
    pub distill: DistillSummary,
    /// The world model used.
    pub world_model: WorldModelFit,
    /// A few of the policy's phantom paths drawn per step, with the real continuations
    /// beside them and the failures predicted on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phantom: Option<PhantomReport>,
}

/// The figures that come with a job event, by phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PhaseMetrics {
    /// `audit`: the auditor's report.
    Audit(AuditReport),
    /// `distill`: one distillation round.
    Round(DistillProgress),
    /// `fit_world_model`: the fit (or the checkpoint loaded).
    WorldModel(WorldModelFit),
    /// `distill` starts (after the terminal value, when there is one).
    DistillStart(DistillStart),
    /// `phantom_paths`: a simulation's step.
    PhantomStep(PhantomStep),
    /// `fit_world_model` starts.
    FitStart(FitStart),
    /// Figures of a shape this version does not know (an event stored by another one).
    Other(Value),
}

/// A distillation's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DistillStart {
    /// Rounds it will run.
    pub rounds: usize,
    /// Real states labelled in round 0.
    pub initial_labels: usize,
    /// The terminal value's fit, when the task has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal_value: Option<ValueReport>,
}

/// A simulation's progress through its horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhantomStep {
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub horizon: usize,
    /// Paths driven.
    pub paths: usize,
}

/// A world-model fit's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FitStart {
    /// Transitions it fits.
    pub transitions: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_figures_read_back_as_the_phase_that_wrote_them() {
        let fit = serde_json::json!({ "transitions": 80 });
        assert!(matches!(
            serde_json::from_value::<PhaseMetrics>(fit).unwrap(),
            PhaseMetrics::FitStart(FitStart { transitions: 80 })
        ));
        let loaded = serde_json::json!({ "transitions": 80, "fitted": false, "checkpoint": "80-ab", "prior": null, "screen": null });
        assert!(matches!(
            serde_json::from_value::<PhaseMetrics>(loaded).unwrap(),
            PhaseMetrics::WorldModel(WorldModelFit { fitted: false, .. })
        ));
        let step = serde_json::json!({ "step": 3, "horizon": 10, "paths": 4 });
        assert!(matches!(
            serde_json::from_value::<PhaseMetrics>(step).unwrap(),
            PhaseMetrics::PhantomStep(PhantomStep { step: 3, .. })
        ));
        let other = serde_json::json!({ "something": "else" });
        assert!(matches!(
            serde_json::from_value::<PhaseMetrics>(other).unwrap(),
            PhaseMetrics::Other(_)
        ));
    }

    #[test]
    fn an_empty_summary_is_its_count_alone() {
        assert_eq!(
            serde_json::to_value(ReturnSummary::of(&[])).unwrap(),
            serde_json::json!({ "count": 0 })
        );
        let s = ReturnSummary::of(&[1.0, 3.0]);
        assert_eq!((s.mean, s.min, s.max), (Some(2.0), Some(1.0), Some(3.0)));
    }
}
