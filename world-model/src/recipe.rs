//! The learning recipe: how a fitted world model becomes a small policy. The server's
//! training jobs (base and adapter) and the examples call [`distil_policy`] with a
//! [`RecipeConfig`]; its [`Default`] is the one set of settings they share (the server's
//! `config/default.toml` holds the same values, checked by a test there).
//!
//! 1. For a discrete action space, a terminal value is learned in the model
//!    ([`crate::value`]): what a state is worth beyond the planner's horizon. It lets the
//!    teacher plan a few steps instead of dozens (TD-MPC's short horizon), which is where
//!    a training job's time goes: every label is one plan.
//! 2. The teacher, a CEM planner scoring `horizon` imagined steps plus that value, labels
//!    real states, then the states the student's own phantom paths visit (DAgger in
//!    imagination, [`crate::distill`]), leaving out the paths the auditor rejects.
//!
//! A base trains a fresh policy; an adapter passes a policy made with
//! [`PolicyModel::with_lora`], whose base stays frozen. Continuous action spaces have no
//! terminal value (its fit enumerates the actions): their teacher scores the horizon.

use std::ops::ControlFlow;
use std::time::Instant;

use plasma_protocol::Space;
use serde::{Deserialize, Serialize};

use crate::audit::Calibration;
use crate::distill::{DistillConfig, DistillProgress, DistillReport, distill};
use crate::error::Result;
use crate::model::WorldModel;
use crate::planner::{Cem, CemConfig, Planner, SearchConfig};
use crate::policy::PolicyModel;
use crate::value::{TerminalValue, ValueConfig, ValueReport};

/// Settings of the recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecipeConfig {
    /// The teacher where no terminal value is learned (continuous actions, or
    /// `terminal_value: None`): its horizon must itself reach the consequences of an action.
    pub planner: CemConfig,
    /// The teacher where a terminal value is learned: a few steps, few candidates.
    pub value_planner: CemConfig,
    /// The terminal value of discrete-action tasks; `None` scores the horizon alone.
    pub terminal_value: Option<ValueConfig>,
    /// DAgger in imagination.
    pub distill: DistillConfig,
}

impl Default for RecipeConfig {
    fn default() -> Self {
        RecipeConfig {
            planner: CemConfig {
                search: SearchConfig {
                    horizon: 30,
                    population: 300,
                    iterations: 4,
                    ..SearchConfig::default()
                },
                elites: 30,
            },
            // TD-MPC plans 3 steps ahead on a learned value; on CartPole-v1 (2,000 random
            // transitions, job_bench) this teacher's base averaged 500.0 over 20 real
            // episodes, its job 22 s against 400 s with the 30-step one.
            value_planner: CemConfig {
                search: SearchConfig {
                    horizon: 3,
                    population: 16,
                    iterations: 3,
                    // Every candidate scored in all five members of the default ensemble:
                    // scored in one member each (TS∞), the elites are the candidates their
                    // member is most optimistic about, and a teacher that trusts its least
                    // accurate member drops the pole.
                    particles: 5,
                    ..SearchConfig::default()
                },
                elites: 4,
            },
            terminal_value: Some(ValueConfig::default()),
            distill: DistillConfig {
                iterations: 4,
                paths: 128,
                ..DistillConfig::default()
            },
        }
    }
}

impl RecipeConfig {
    /// The terminal value learned for a task of this action space: the configured one on
    /// discrete actions (its fit enumerates them), none on a box.
    pub fn value_for(&self, actions: &Space) -> Option<&ValueConfig> {
        self.terminal_value
            .as_ref()
            .filter(|_| actions.is_discrete())
    }

    /// The teacher of a task of this action space: the short-horizon planner where a
    /// terminal value is learned, the long one where none is.
    pub fn teacher_for(&self, actions: &Space) -> &CemConfig {
        match self.value_for(actions) {
            Some(_) => &self.value_planner,
            None => &self.planner,
        }
    }
}

/// What the recipe reports while it runs; returning [`ControlFlow::Break`] from the
/// callback stops it with [`crate::WorldModelError::Cancelled`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecipeEvent<'a> {
    /// The terminal value was learned.
    TerminalValue(&'a ValueReport),
    /// A distillation round ended.
    Round(&'a DistillProgress),
}

/// What the recipe did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipeReport {
    /// The terminal value's fit (`None`: not used for this task).
    pub terminal_value: Option<ValueReport>,
    /// The distillation.
    pub distill: DistillReport,
    /// Wall-clock seconds of the whole recipe.
    pub seconds: f64,
}

/// The recipe's teacher for `model`, with the terminal value it plans with learned around
/// `starts` (real states, `[N, obs_dim]`) where the task has one, and that fit's figures.
pub fn teacher(
    model: &dyn WorldModel,
    starts: &[f32],
    config: &RecipeConfig,
) -> Result<(Cem, Option<ValueReport>)> {
    let actions = &model.spec().action_space;
    let mut teacher = Cem::new(config.teacher_for(actions).clone())?;
    let report = match config.value_for(actions) {
        Some(value_config) => {
            let (value, report) = TerminalValue::fit(model, starts, value_config)?;
            teacher.set_terminal_value(Some(value));
            Some(report)
        }
        None => None,
    };
    Ok((teacher, report))
}

/// Distils the recipe's teacher acting in `model` into `policy` (see the module docs).
///
/// `starts` are real states (`[N, obs_dim]`, row-major): the teacher labels them and the
/// student's phantom paths start from them; the terminal value is learned around them.
pub fn distil_policy(
    model: &dyn WorldModel,
    starts: &[f32],
    policy: PolicyModel,
    config: &RecipeConfig,
    auditor: Option<&Calibration>,
    progress: &mut dyn FnMut(RecipeEvent<'_>) -> ControlFlow<()>,
) -> Result<(PolicyModel, RecipeReport)> {
    let started = Instant::now();
    let (mut teacher, terminal_value) = teacher(model, starts, config)?;
    if let Some(report) = &terminal_value
        && progress(RecipeEvent::TerminalValue(report)).is_break()
    {
        return Err(crate::WorldModelError::Cancelled);
    }
    let (policy, distilled) = distill(
        model,
        &mut teacher,
        starts,
        policy,
        &config.distill,
        auditor,
        &mut |round| progress(RecipeEvent::Round(round)),
    )?;
    Ok((
        policy,
        RecipeReport {
            terminal_value,
            distill: distilled,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use plasma_envs::make;

    use super::*;
    use crate::config::{EnsembleConfig, TrainConfig};
    use crate::ensemble::Ensemble;
    use crate::mpc::random_dataset;
    use crate::policy::PolicyConfig;

    /// A small ensemble on 600 real random-action CartPole-v1 transitions, and their
    /// observations.
    fn cartpole() -> (Ensemble, Vec<f32>) {
        let data = random_dataset("CartPole-v1", 600, 5).unwrap();
        let config = EnsembleConfig {
            members: 2,
            hidden: vec![32, 32],
            ..EnsembleConfig::default()
        };
        let spec = make("CartPole-v1").unwrap().spec();
        let mut model = Ensemble::new(config, spec, Device::flex()).unwrap();
        let train = TrainConfig {
            max_epochs: 15,
            batch_size: 64,
            ..TrainConfig::default()
        };
        model.fit(&data, &train).unwrap();
        let starts = data.observations().to_vec();
        (model, starts)
    }

    fn small() -> RecipeConfig {
        let mut c = RecipeConfig::default();
        c.value_planner.search.particles = 2;
        c.terminal_value = Some(ValueConfig {
            iterations: 5,
            states: 128,
            hidden: vec![16],
            ..ValueConfig::default()
        });
        c.distill.iterations = 1;
        c.distill.initial_labels = 64;
        c.distill.paths = 16;
        c.distill.horizon = 10;
        c.distill.labels_per_round = 32;
        c.distill.fit.epochs = 5;
        c
    }

    fn policy(model: &Ensemble, starts: &[f32]) -> PolicyModel {
        let config = PolicyConfig {
            hidden: vec![16],
            ..PolicyConfig::default()
        };
        let space = model.spec().action_space.clone();
        PolicyModel::for_space(config, starts, 4, &space, &Device::flex()).unwrap()
    }

    /// On a discrete task the recipe learns the terminal value first and says so, then
    /// distils round by round; without one it goes straight to the rounds; a callback that
    /// breaks at the value stops it.
    #[test]
    fn terminal_value_then_rounds_and_cancellation() {
        let (model, starts) = cartpole();
        let mut seen = Vec::new();
        let (_, report) = distil_policy(
            &model,
            &starts,
            policy(&model, &starts),
            &small(),
            None,
            &mut |e| {
                seen.push(match e {
                    RecipeEvent::TerminalValue(_) => "value".to_owned(),
                    RecipeEvent::Round(r) => format!("round {}", r.iteration),
                });
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(seen, ["value", "round 0", "round 1"]);
        let value = report
            .terminal_value
            .expect("a discrete task learns a value");
        assert!(value.mean_value.is_finite() && value.mean_value > 0.0);
        assert_eq!(report.distill.rounds.len(), 2);

        let horizon_only = RecipeConfig {
            terminal_value: None,
            ..small()
        };
        let mut rounds = 0;
        let (_, report) = distil_policy(
            &model,
            &starts,
            policy(&model, &starts),
            &horizon_only,
            None,
            &mut |e| {
                assert!(matches!(e, RecipeEvent::Round(_)), "{e:?}");
                rounds += 1;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert!(report.terminal_value.is_none());
        assert_eq!(rounds, 2);

        let err = distil_policy(
            &model,
            &starts,
            policy(&model, &starts),
            &small(),
            None,
            &mut |_| ControlFlow::Break(()),
        )
        .unwrap_err();
        assert!(matches!(err, crate::WorldModelError::Cancelled), "{err}");
    }
}
