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
                    population: 64,
                    iterations: 3,
                    ..SearchConfig::default()
                },
                elites: 8,
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
    let discrete = matches!(model.spec().action_space, Space::Discrete { .. });
    let value_config = config.terminal_value.as_ref().filter(|_| discrete);
    let mut teacher = Cem::new(match value_config {
        Some(_) => config.value_planner.clone(),
        None => config.planner.clone(),
    })?;
    let terminal_value = match value_config {
        Some(value_config) => {
            let (value, report) = TerminalValue::fit(model, starts, value_config)?;
            teacher.set_terminal_value(Some(value));
            if progress(RecipeEvent::TerminalValue(&report)).is_break() {
                return Err(crate::WorldModelError::Cancelled);
            }
            Some(report)
        }
        None => None,
    };
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
