//! Calibration of the path detectors on real data and the model, and the distribution-shift
//! check of real (uploaded) states.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::Verdict;
use super::stats::{Summary, mean_std, nearest_distances, quantile, standardize, subsample};
use crate::data::Dataset;
use crate::error::{Result, WorldModelError, check_finite, read_f32};
use crate::model::{ActionBatch, Noise, StepOptions, WorldModel};

/// The coefficients of the path detectors (each applied to a statistic measured on real
/// data) and the auditor's policy knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Quantile of each real statistic that thresholds start from (`1.0` = the maximum,
    /// as MOReL does; the default 0.99 is robust to a few outliers in the data).
    pub quantile: f64,
    /// `τ_u = disagreement_coef × q(disagreement on real held-out transitions)`.
    pub disagreement_coef: f32,
    /// Rewards outside `[min − k·s, max + k·s]` of the real rewards are spikes, `k` this
    /// coefficient and `s` the reward spread (see [`Calibration::reward_spread`]).
    pub reward_coef: f32,
    /// `τ_s = shift_coef × q(nearest-neighbour distance of held-out real states to the
    /// training states)`.
    pub shift_coef: f32,
    /// A path exploits the model when more than this share of its earned return comes
    /// from steps beyond `τ_u`.
    pub exploit_share: f32,
    /// Steps count for the path detectors while the path's probability of being alive is
    /// at least this (rewards after a predicted termination earn nothing).
    pub min_alive: f32,
    /// The continue probability below which a step is a predicted failure (termination).
    pub collapse_continue: f32,
    /// Most training states kept as the reference of the nearest-neighbour distance
    /// (a uniform subsample; bounds the cost of the shift detector).
    pub max_reference_states: usize,
    /// Most held-out transitions used for calibration (a uniform subsample).
    pub max_calibration_transitions: usize,
    /// A set of paths is rejected as a whole when more than this share of it is rejected.
    pub max_rejected_share: f32,
    /// A batch of real states is rejected as shifted when more than this share of it lies
    /// beyond `τ_s` (held-out real data has about `1 − quantile` there, far less with a
    /// coefficient above 1).
    pub batch_outlier_share: f32,
    /// How many steps before a failure the "conditions that lead there" are read.
    pub condition_lookback: usize,
    /// Sim-to-real gap: tolerance `gap_coef × max(real std, gap_relative_floor × |real mean|)`.
    pub gap_coef: f32,
    /// See `gap_coef`.
    pub gap_relative_floor: f32,
    /// Seed of the subsampling.
    pub seed: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            quantile: 0.99,
            disagreement_coef: 1.5,
            reward_coef: 3.0,
            shift_coef: 1.5,
            exploit_share: 0.1,
            min_alive: 0.5,
            collapse_continue: 0.5,
            max_reference_states: 1024,
            max_calibration_transitions: 4096,
            max_rejected_share: 0.25,
            batch_outlier_share: 0.05,
            condition_lookback: 5,
            gap_coef: 2.0,
            gap_relative_floor: 0.05,
            seed: 0,
        }
    }
}

impl AuditConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(format!("audit: {m}")));
        if !(self.quantile.is_finite() && (0.0..=1.0).contains(&self.quantile)) {
            return bad(format!("quantile must be in [0, 1], got {}", self.quantile));
        }
        for (name, v) in [
            ("disagreement_coef", self.disagreement_coef),
            ("reward_coef", self.reward_coef),
            ("shift_coef", self.shift_coef),
            ("gap_coef", self.gap_coef),
            ("gap_relative_floor", self.gap_relative_floor),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and ≥ 0, got {v}"));
            }
        }
        for (name, v) in [
            ("exploit_share", self.exploit_share),
            ("min_alive", self.min_alive),
            ("collapse_continue", self.collapse_continue),
            ("max_rejected_share", self.max_rejected_share),
            ("batch_outlier_share", self.batch_outlier_share),
        ] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if self.max_reference_states == 0 || self.max_calibration_transitions == 0 {
            return bad("max_reference_states and max_calibration_transitions must be ≥ 1".into());
        }
        Ok(())
    }
}

/// The path detectors' thresholds and the real statistics they come from, measured on a
/// model and its real data by [`Calibration::fit`]. Serializable, so a server stores it
/// beside the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Task name.
    pub task: String,
    /// Values per observation.
    pub obs_dim: usize,
    /// The coefficients used.
    pub config: AuditConfig,
    /// Real training transitions seen.
    pub train_transitions: usize,
    /// Real held-out transitions used (after subsampling).
    pub holdout_transitions: usize,
    /// Member disagreement `u` (the rollout's uncertainty, [`crate::rollout`]) of the
    /// model on real held-out transitions.
    pub disagreement: Summary,
    /// `τ_u`: disagreement beyond this is beyond what the model shows on real data.
    pub disagreement_threshold: f32,
    /// Real rewards (training and held-out).
    pub reward: Summary,
    /// `|predicted − real|` reward of the model on real held-out transitions.
    pub reward_error: Summary,
    /// `s = max(real reward std, q(reward error))`, floored at `1e-6 · max(1, |mean|)`.
    pub reward_spread: f32,
    /// Lowest reward not a spike.
    pub reward_low: f32,
    /// Highest reward not a spike.
    pub reward_high: f32,
    /// Per-dimension mean of the training states.
    pub state_mean: Vec<f32>,
    /// Per-dimension std of the training states (1 where the data is constant).
    pub state_std: Vec<f32>,
    /// Standardized training states the nearest-neighbour distance is measured to,
    /// row-major `[R, obs_dim]`.
    pub reference_states: Vec<f32>,
    /// Nearest-neighbour distance of real held-out states (and next states) to the
    /// reference.
    pub shift: Summary,
    /// `τ_s`: states farther than this from the training data are out of distribution.
    pub shift_threshold: f32,
}

impl Calibration {
    /// Measures the real statistics and sets the thresholds.
    ///
    /// `train` is the data the model was fitted to (it defines the training-state
    /// distribution); `holdout` is real data the model did not train on (its disagreement,
    /// reward error and distance to the training states are what "normal" looks like). If
    /// the model did see `holdout`, the thresholds come out tighter (more paths flagged).
    pub fn fit<M: WorldModel + ?Sized>(
        model: &M,
        train: &Dataset,
        holdout: &Dataset,
        config: &AuditConfig,
    ) -> Result<Calibration> {
        config.validate()?;
        let obs_dim = model.spec().observation_space.dim();
        for (what, d) in [("training data", train), ("held-out data", holdout)] {
            if d.is_empty() {
                return Err(WorldModelError::EmptyDataset(format!(
                    "audit calibration needs {what}"
                )));
            }
            if d.obs_dim() != obs_dim || d.codec() != model.codec() {
                return Err(WorldModelError::shape(
                    format!("audit calibration {what}"),
                    format!("{obs_dim} observation values, {}", model.codec().describe()),
                    format!(
                        "{} observation values, {}",
                        d.obs_dim(),
                        d.codec().describe()
                    ),
                ));
            }
        }
        let q = config.quantile;

        // Disagreement and reward error on held-out real transitions.
        let rows = subsample(
            holdout.len(),
            config.max_calibration_transitions,
            config.seed,
        );
        let n = rows.len();
        let a = holdout.action_dim();
        let mut obs = Vec::with_capacity(n * obs_dim);
        let mut actions = Vec::with_capacity(n * a);
        let mut next = Vec::with_capacity(n * obs_dim);
        let mut real_reward = Vec::with_capacity(n);
        for &i in &rows {
            obs.extend_from_slice(holdout.obs(i));
            actions.extend_from_slice(holdout.action(i));
            next.extend_from_slice(holdout.next_obs(i));
            real_reward.push(holdout.reward(i));
        }
        let device = model.device();
        let state = model.encode(Tensor::from_data(
            TensorData::new(obs.clone(), [n, obs_dim]),
            device,
        ))?;
        let action =
            ActionBatch::Encoded(Tensor::from_data(TensorData::new(actions, [n, a]), device));
        let stepped = model.transition(
            &state,
            &action,
            &StepOptions {
                noise: Noise::Mean,
                uncertainty: true,
            },
        )?;
        let u = stepped.uncertainty.ok_or_else(|| {
            WorldModelError::Config(format!(
                "the {} family reports no member disagreement: it cannot be audited",
                model.family()
            ))
        })?;
        let u = read_f32(u)?;
        check_finite("model disagreement on held-out data", &u)?;
        let reward_error: Vec<f32> = match stepped.reward {
            Some(r) => {
                let r = read_f32(r)?;
                check_finite("model reward on held-out data", &r)?;
                r.iter()
                    .zip(&real_reward)
                    .map(|(p, t)| (p - t).abs())
                    .collect()
            }
            None => vec![0.0; n],
        };
        let disagreement = Summary::of(&u);
        let disagreement_threshold = config.disagreement_coef * quantile(&u, q);

        // The real reward distribution.
        let all_rewards: Vec<f32> = (0..train.len())
            .map(|i| train.reward(i))
            .chain((0..holdout.len()).map(|i| holdout.reward(i)))
            .collect();
        let reward = Summary::of(&all_rewards);
        let reward_err = Summary::of(&reward_error);
        let floor = 1e-6 * reward.mean.abs().max(1.0);
        let reward_spread = reward.std.max(quantile(&reward_error, q)).max(floor);
        let reward_low = reward.min - config.reward_coef * reward_spread;
        let reward_high = reward.max + config.reward_coef * reward_spread;

        // The training-state distribution and the held-out states' distance to it.
        let mut train_states = Vec::with_capacity(train.len() * obs_dim);
        for i in 0..train.len() {
            train_states.extend_from_slice(train.obs(i));
        }
        let (state_mean, state_std) = mean_std(&train_states, obs_dim);
        let keep = subsample(
            train.len(),
            config.max_reference_states,
            config.seed.wrapping_add(1),
        );
        let mut reference = Vec::with_capacity(keep.len() * obs_dim);
        for &i in &keep {
            reference.extend_from_slice(train.obs(i));
        }
        let reference_states = standardize(&reference, &state_mean, &state_std);
        let mut held_states = obs;
        held_states.extend_from_slice(&next);
        let distances = nearest_distances(
            &standardize(&held_states, &state_mean, &state_std),
            &reference_states,
            obs_dim,
        );
        let shift = Summary::of(&distances);
        let shift_threshold = (config.shift_coef * quantile(&distances, q)).max(1e-6);

        Ok(Calibration {
            task: model.spec().name.clone(),
            obs_dim,
            config: config.clone(),
            train_transitions: train.len(),
            holdout_transitions: n,
            disagreement,
            disagreement_threshold,
            reward,
            reward_error: reward_err,
            reward_spread,
            reward_low,
            reward_high,
            state_mean,
            state_std,
            reference_states,
            shift,
            shift_threshold,
        })
    }

    /// Checks that the calibration is internally consistent (e.g. after deserialization).
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        let d = self.obs_dim;
        if d == 0
            || self.state_mean.len() != d
            || self.state_std.len() != d
            || self.reference_states.is_empty()
            || !self.reference_states.len().is_multiple_of(d)
        {
            return Err(WorldModelError::shape(
                "audit calibration",
                format!("{d} means and stds, a non-empty multiple of {d} reference values"),
                format!(
                    "{} means, {} stds, {} reference values",
                    self.state_mean.len(),
                    self.state_std.len(),
                    self.reference_states.len()
                ),
            ));
        }
        check_finite("calibration state mean", &self.state_mean)?;
        check_finite("calibration reference states", &self.reference_states)?;
        if self.state_std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(WorldModelError::Config(
                "audit calibration: state std must be finite and positive".into(),
            ));
        }
        check_finite(
            "calibration thresholds",
            &[
                self.disagreement_threshold,
                self.reward_low,
                self.reward_high,
                self.shift_threshold,
            ],
        )?;
        Ok(())
    }

    /// Nearest-neighbour distance (standardized units) of each state of row-major `states`
    /// to the training data.
    pub fn shift_distances(&self, states: &[f32]) -> Vec<f32> {
        nearest_distances(
            &standardize(states, &self.state_mean, &self.state_std),
            &self.reference_states,
            self.obs_dim,
        )
    }

    /// The thresholds and their sources, as verdict figures.
    pub(crate) fn figures(&self, out: &mut BTreeMap<String, f64>) {
        out.insert(
            "disagreement_threshold".into(),
            self.disagreement_threshold.into(),
        );
        out.insert("disagreement_real_q50".into(), self.disagreement.q50.into());
        out.insert("reward_low".into(), self.reward_low.into());
        out.insert("reward_high".into(), self.reward_high.into());
        out.insert("shift_threshold".into(), self.shift_threshold.into());
        out.insert("shift_real_q50".into(), self.shift.q50.into());
    }
}

/// How far a batch of real states (e.g. newly uploaded experience) lies from the data the
/// model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftReport {
    /// Nearest-neighbour distances of the batch's states (standardized units).
    pub distance: Summary,
    /// Share of the batch farther than `τ_s`.
    pub beyond_share: f32,
    /// Rejected when `beyond_share` exceeds [`AuditConfig::batch_outlier_share`].
    pub verdict: Verdict,
}

/// Distribution shift of real states (row-major `[N, obs_dim]`) against the training data:
/// the share of states beyond `τ_s`. A rejected batch means the world changed (or the
/// agent went somewhere new): the model should be refitted before it is trusted there.
pub fn audit_states(calibration: &Calibration, states: &[f32]) -> Result<ShiftReport> {
    calibration.validate()?;
    let d = calibration.obs_dim;
    if states.is_empty() || !states.len().is_multiple_of(d) {
        return Err(WorldModelError::shape(
            "audited states",
            format!("a non-empty multiple of {d} values"),
            states.len(),
        ));
    }
    check_finite("audited states", states)?;
    let distances = calibration.shift_distances(states);
    let beyond = distances
        .iter()
        .filter(|&&x| x > calibration.shift_threshold)
        .count();
    let beyond_share = beyond as f32 / distances.len() as f32;
    let distance = Summary::of(&distances);
    let mut figures = BTreeMap::new();
    figures.insert("states".into(), distances.len() as f64);
    figures.insert("beyond_share".into(), beyond_share.into());
    figures.insert("distance_q50".into(), distance.q50.into());
    figures.insert("distance_max".into(), distance.max.into());
    figures.insert("shift_threshold".into(), calibration.shift_threshold.into());
    let mut reasons = vec![];
    if beyond_share > calibration.config.batch_outlier_share {
        reasons.push(format!(
            "distribution shift: {:.1}% of the states lie beyond the training data's \
             distance threshold {:.3} (allowed {:.1}%)",
            100.0 * beyond_share,
            calibration.shift_threshold,
            100.0 * calibration.config.batch_outlier_share
        ));
    }
    Ok(ShiftReport {
        distance,
        beyond_share,
        verdict: Verdict::from_reasons(reasons, figures),
    })
}
