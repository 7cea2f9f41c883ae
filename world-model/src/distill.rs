//! Phantom-path distillation: DAgger in imagination (Ross et al. 2011; MBMF, Nagabandi et
//! al. 2017). The planner is the expert, the world model the simulator, the small policy
//! the student:
//!
//! 1. round 0 labels real states (drawn from the agent's experience) with the planner's
//!    actions and fits the policy to them;
//! 2. each later round rolls the *current policy* in the model from real start states,
//!    keeps the states of the paths the auditor approves while they are still alive, labels
//!    a sample of them with the planner, adds them to everything labelled so far and fits
//!    the policy again (resuming from its weights).
//!
//! Rolling the student (not the expert) is what makes DAgger work: the policy is trained on
//! the states its own mistakes lead to. Everything runs in the model; no real interaction.
//! Base mode trains every weight of a fresh policy; adapter mode passes a policy made with
//! [`PolicyModel::with_lora`], whose base stays frozen.

use std::ops::ControlFlow;
use std::time::Instant;

use plasma_protocol::Action;
pub use plasma_protocol::reports::DistillProgress;
use rand::rngs::SmallRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::audit::{Calibration, audit_trajectory};
use crate::error::{Result, WorldModelError, read_f32};
use crate::model::{Noise, WorldModel};
use crate::planner::Planner;
use crate::policy::{FitConfig, FitReport, Labels, PolicyModel};
use crate::rollout::{Driver, RolloutOptions, start_states};

/// Settings of a distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// DAgger rounds after the first (expert-labelled real states) one.
    pub iterations: usize,
    /// Real states labelled in round 0.
    pub initial_labels: usize,
    /// Phantom paths the policy drives per round.
    pub paths: usize,
    /// Steps per phantom path.
    pub horizon: usize,
    /// Visited states labelled by the planner per round.
    pub labels_per_round: usize,
    /// States planned for in one batch (bounds memory: each costs the planner's population
    /// × particles paths).
    pub label_batch: usize,
    /// A visited state is used while the path's probability of still being alive is at
    /// least this.
    pub min_alive: f32,
    /// Supervised fit of every round (it resumes from the current weights).
    pub fit: FitConfig,
    /// Seed of the sampling of start states and labelled states.
    pub seed: u64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            iterations: 6,
            initial_labels: 512,
            paths: 256,
            horizon: 50,
            labels_per_round: 512,
            label_batch: 128,
            min_alive: 0.5,
            fit: FitConfig {
                epochs: 40,
                batch_size: 64,
                learning_rate: 3e-3,
                ..FitConfig::default()
            },
            seed: 0,
        }
    }
}

impl DistillConfig {
    /// Refuses settings the fit cannot run with.
    pub fn validate(&self) -> Result<()> {
        if self.initial_labels == 0
            || self.paths == 0
            || self.horizon == 0
            || self.label_batch == 0
            || (self.iterations > 0 && self.labels_per_round == 0)
        {
            return Err(WorldModelError::Config(
                "distillation needs positive initial_labels, paths, horizon, label_batch and \
                 (with iterations) labels_per_round"
                    .into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_alive) {
            return Err(WorldModelError::Config(format!(
                "min_alive must be in [0, 1], got {}",
                self.min_alive
            )));
        }
        Ok(())
    }
}

/// What a distillation did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillReport {
    /// One entry per round.
    pub rounds: Vec<DistillProgress>,
    /// The last fit.
    pub last_fit: Option<FitReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Labels `states` (`[N, obs_dim]`) with the planner's first action, `batch` states per
/// plan. The planner's warm start is reset for every batch: the states are unrelated.
fn label(
    model: &dyn WorldModel,
    planner: &mut dyn Planner,
    states: &[f32],
    obs_dim: usize,
    batch: usize,
    discrete: &mut Vec<u32>,
    continuous: &mut Vec<f32>,
) -> Result<()> {
    for chunk in states.chunks(batch * obs_dim) {
        planner.reset();
        let plan = planner.plan(model, chunk)?;
        for action in plan.actions {
            match action {
                Action::Discrete(i) => discrete.push(i),
                Action::Continuous(v) => continuous.extend_from_slice(&v),
            }
        }
    }
    planner.reset();
    Ok(())
}

/// Draws `n` rows of `rows` (`[N, obs_dim]`) without replacement (all of them if `n ≥ N`).
fn draw(rows: &[f32], obs_dim: usize, n: usize, rng: &mut SmallRng) -> Vec<f32> {
    let total = rows.len() / obs_dim;
    if n >= total {
        return rows.to_vec();
    }
    let mut out = Vec::with_capacity(n * obs_dim);
    for i in sample(rng, total, n) {
        out.extend_from_slice(&rows[i * obs_dim..(i + 1) * obs_dim]);
    }
    out
}

/// Distils `planner` acting in `model` into `policy` (see the module docs).
///
/// `starts` are real states (`[N, obs_dim]`, row-major), e.g. the observations of the
/// agent's experience. With `auditor`, the paths it rejects are left out of the labels.
/// `progress` is called after every round; returning [`ControlFlow::Break`] stops the
/// distillation with [`WorldModelError::Cancelled`].
pub fn distill(
    model: &dyn WorldModel,
    planner: &mut dyn Planner,
    starts: &[f32],
    mut policy: PolicyModel,
    config: &DistillConfig,
    auditor: Option<&Calibration>,
    progress: &mut dyn FnMut(&DistillProgress) -> ControlFlow<()>,
) -> Result<(PolicyModel, DistillReport)> {
    let started = Instant::now();
    config.validate()?;
    let obs_dim = model.spec().observation_space.dim();
    if policy.obs_dim() != obs_dim {
        return Err(WorldModelError::shape(
            "policy observations",
            obs_dim.to_string(),
            policy.obs_dim(),
        ));
    }
    // Checks shape and finiteness of the start states once.
    start_states(starts, obs_dim, model.device())?;
    if !model.is_trained() {
        return Err(WorldModelError::Config(
            "distillation needs a trained world model".into(),
        ));
    }
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let (mut states, mut discrete, mut continuous) = (Vec::new(), Vec::new(), Vec::new());
    let mut report = DistillReport {
        rounds: Vec::new(),
        last_fit: None,
        seconds: 0.0,
    };
    let options = RolloutOptions {
        noise: Noise::Mean,
        uncertainty: auditor.is_some(),
        record: true,
        ..RolloutOptions::default()
    };
    for iteration in 0..=config.iterations {
        let (mut imagined_return, mut paths, mut rejected) = (None, 0, 0);
        let new_states = if iteration == 0 {
            draw(starts, obs_dim, config.initial_labels, &mut rng)
        } else {
            let from = draw(starts, obs_dim, config.paths, &mut rng);
            let start = start_states(&from, obs_dim, model.device())?;
            let trajectory = model.rollout(
                start,
                Driver::Policy(&mut policy.clone()),
                config.horizon,
                &options,
            )?;
            let returns = trajectory.returns_vec()?;
            paths = returns.len();
            imagined_return =
                Some(returns.iter().map(|r| f64::from(*r)).sum::<f64>() / paths as f64);
            let approved = match auditor {
                Some(calibration) => audit_trajectory(calibration, &trajectory)?.approved,
                None => vec![true; paths],
            };
            rejected = approved.iter().filter(|a| !**a).count();
            let obs = read_f32(
                trajectory
                    .obs
                    .ok_or_else(|| WorldModelError::Config("rollout did not record".into()))?,
            )?;
            let cont = match trajectory.continue_probs {
                Some(c) => read_f32(c)?,
                None => vec![1.0; paths * config.horizon],
            };
            let mut visited = Vec::new();
            for p in (0..paths).filter(|&p| approved[p]) {
                let mut alive = 1.0f32;
                for t in 0..config.horizon {
                    alive *= cont[p * config.horizon + t];
                    if alive < config.min_alive {
                        break;
                    }
                    let row = &obs[(p * config.horizon + t) * obs_dim..][..obs_dim];
                    if row.iter().all(|v| v.is_finite()) {
                        visited.extend_from_slice(row);
                    }
                }
            }
            if visited.is_empty() {
                // Every path was rejected or died at once: fall back to real states, so the
                // round still adds expert labels where they are trustworthy.
                visited = draw(starts, obs_dim, config.labels_per_round, &mut rng);
            }
            draw(&visited, obs_dim, config.labels_per_round, &mut rng)
        };
        let label_started = Instant::now();
        label(
            model,
            planner,
            &new_states,
            obs_dim,
            config.label_batch,
            &mut discrete,
            &mut continuous,
        )?;
        let label_seconds = label_started.elapsed().as_secs_f64();
        states.extend_from_slice(&new_states);
        let labels = if discrete.is_empty() {
            Labels::Continuous(&continuous)
        } else {
            Labels::Discrete(&discrete)
        };
        let mut fit = config.fit.clone();
        fit.seed = config.fit.seed.wrapping_add(rng.random::<u32>() as u64);
        let fitted = policy.fit(&states, labels, &fit)?;
        let event = DistillProgress {
            iteration,
            iterations: config.iterations + 1,
            labels: states.len() / obs_dim,
            paths,
            rejected_paths: rejected,
            imagined_return,
            loss: f64::from(fitted.final_loss),
            accuracy: fitted.accuracy.map(f64::from),
            mean_abs_error: fitted.mean_abs_error.map(f64::from),
            label_seconds,
        };
        report.last_fit = Some(fitted);
        report.rounds.push(event.clone());
        if progress(&event).is_break() {
            return Err(WorldModelError::Cancelled);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok((policy, report))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use plasma_envs::make;

    use super::*;
    use crate::config::{EnsembleConfig, TrainConfig};
    use crate::ensemble::Ensemble;
    use crate::mpc::random_dataset;
    use crate::planner::{Cem, CemConfig, SearchConfig};
    use crate::policy::PolicyConfig;

    /// A small ensemble fitted to real random-action CartPole-v1 transitions, and their
    /// observations (the real start states).
    fn cartpole_model() -> (Ensemble, Vec<f32>) {
        let data = random_dataset("CartPole-v1", 1500, 3).unwrap();
        let config = EnsembleConfig {
            members: 3,
            hidden: vec![64, 64],
            ..EnsembleConfig::default()
        };
        let spec = make("CartPole-v1").unwrap().spec();
        let mut model = Ensemble::new(config, spec, Device::flex()).unwrap();
        let train = TrainConfig {
            max_epochs: 60,
            batch_size: 64,
            learning_rate: 3e-3,
            patience: 40,
            ..TrainConfig::default()
        };
        model.fit(&data, &train).unwrap();
        let starts = data.observations().to_vec();
        (model, starts)
    }

    fn planner() -> Cem {
        Cem::new(CemConfig {
            search: SearchConfig {
                horizon: 20,
                population: 100,
                iterations: 3,
                ..SearchConfig::default()
            },
            elites: 10,
        })
        .unwrap()
    }

    fn small() -> DistillConfig {
        DistillConfig {
            iterations: 2,
            initial_labels: 256,
            paths: 64,
            horizon: 30,
            labels_per_round: 256,
            ..DistillConfig::default()
        }
    }

    fn fresh_policy(model: &Ensemble, starts: &[f32]) -> PolicyModel {
        let config = PolicyConfig {
            hidden: vec![32],
            ..PolicyConfig::default()
        };
        let space = model.spec().action_space.clone();
        PolicyModel::for_space(config, starts, 4, &space, &Device::flex()).unwrap()
    }

    /// The distilled policy imitates the planner and, acting alone in the real
    /// environment, balances the pole far longer than chance (random actions last ~22
    /// steps); every round reports progress and adds labels.
    #[test]
    fn distilled_policy_balances_the_real_cartpole() {
        let (model, starts) = cartpole_model();
        let mut events = Vec::new();
        let (policy, report) = distill(
            &model,
            &mut planner(),
            &starts,
            fresh_policy(&model, &starts),
            &small(),
            None,
            &mut |e| {
                events.push(e.clone());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(report.rounds, events);
        let labels: Vec<usize> = events.iter().map(|e| e.labels).collect();
        assert_eq!(labels, vec![256, 512, 768]);
        assert!(events[0].imagined_return.is_none());
        assert!(
            events[1..]
                .iter()
                .all(|e| e.paths == 64 && e.imagined_return > Some(0.0))
        );
        // CartPole declares its termination, so a plan's score is the steps it survives: in
        // states where both actions survive the horizon the planner's label is a tie broken
        // by its sampling, which no policy can imitate exactly.
        let accuracy = events[2].accuracy.unwrap();
        assert!(accuracy > 0.7, "imitation accuracy {accuracy}");

        let mut env = make("CartPole-v1").unwrap();
        let mut total = 0.0;
        for episode in 0..5 {
            let mut obs = env.reset(Some(100 + episode));
            loop {
                let action = policy.act_batch(&obs).unwrap().remove(0);
                let step = env.step(action.as_ref()).unwrap();
                total += step.reward;
                if step.done() {
                    break;
                }
                obs = step.obs;
            }
        }
        let mean = total / 5.0;
        assert!(
            mean >= 100.0,
            "distilled policy averages {mean} in the real env"
        );
    }

    /// A progress callback that breaks stops the work with `Cancelled`; bad settings and
    /// an untrained model are refused.
    #[test]
    fn cancellation_and_refusals() {
        let (model, starts) = cartpole_model();
        let policy = fresh_policy(&model, &starts);
        let err = distill(
            &model,
            &mut planner(),
            &starts,
            policy.clone(),
            &small(),
            None,
            &mut |_| ControlFlow::Break(()),
        )
        .unwrap_err();
        assert!(matches!(err, WorldModelError::Cancelled), "{err}");

        let bad = DistillConfig {
            horizon: 0,
            ..small()
        };
        let run = |config: &DistillConfig, starts: &[f32]| {
            distill(
                &model,
                &mut planner(),
                starts,
                policy.clone(),
                config,
                None,
                &mut |_| ControlFlow::Continue(()),
            )
        };
        assert!(matches!(
            run(&bad, &starts),
            Err(WorldModelError::Config(_))
        ));
        assert!(run(&small(), &[0.0, f32::NAN, 0.0, 0.0]).is_err());
        assert!(run(&small(), &[0.0; 3]).is_err());

        let untrained = Ensemble::new(
            EnsembleConfig::default(),
            model.spec().clone(),
            Device::flex(),
        )
        .unwrap();
        let err = distill(
            &untrained,
            &mut planner(),
            &starts,
            policy,
            &small(),
            None,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(matches!(err, WorldModelError::Config(_)), "{err}");
    }
}
