//! Model-predictive control in real environments: the proof that the model and the planner
//! are real. The agent collects random transitions, fits the ensemble, then acts by
//! planning in the model (re-planning at every step, warm-started), refitting the model on
//! all its experience every `refit_every` real steps; finally it is evaluated on fresh
//! episodes without learning.

use std::time::Instant;

use plasma_envs::{Env, Physics, make_with};
use plasma_protocol::{Action, Space};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::config::{EnsembleConfig, NormalizerUpdate, TrainConfig, WorldModelConfig};
use crate::data::Dataset;
use crate::device::parse_device;
use crate::error::{Result, WorldModelError};
use crate::model::{TrainReport, WorldModel};
use crate::planner::{Cem, CemConfig, Mppi, MppiConfig, Planner};
use crate::registry::Registry;
use crate::value::{TerminalValue, ValueConfig};

/// Which planner an MPC agent uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlannerConfig {
    /// Cross-entropy method.
    Cem(CemConfig),
    /// Model-predictive path integral.
    Mppi(MppiConfig),
}

impl PlannerConfig {
    /// Builds the planner.
    pub fn build(&self) -> Result<Box<dyn Planner>> {
        Ok(match self {
            PlannerConfig::Cem(c) => Box::new(Cem::new(c.clone())?),
            PlannerConfig::Mppi(c) => Box::new(Mppi::new(c.clone())?),
        })
    }
}

/// Settings of an MPC run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpcConfig {
    /// Environment id (plasma-envs), e.g. `"CartPole-v1"`.
    pub env: String,
    /// Seed of the environment, the random phase, the model and the planner.
    pub seed: u64,
    /// Uniformly random transitions collected before the first fit.
    pub random_steps: usize,
    /// Real transitions used for learning, random ones included.
    pub max_real_steps: usize,
    /// Real steps between refits of the model once control has begun.
    pub refit_every: usize,
    /// The model.
    pub ensemble: EnsembleConfig,
    /// Training of every fit (refits start from the current weights).
    pub train: TrainConfig,
    /// The planner.
    pub planner: PlannerConfig,
    /// Evaluation episodes after learning (run in parallel, batched planning).
    pub eval_episodes: usize,
    /// Device name (`"cpu"`, `"wgpu"`).
    pub device: String,
    /// Physics parameters overridden in the environment (names as in plasma-envs' config
    /// structs, e.g. `("length", 1.0)` for CartPole), for changed-system experiments.
    #[serde(default)]
    pub physics: Vec<(String, f64)>,
    /// A terminal value learned in the model after every fit (see [`crate::value`]), for
    /// discrete-action tasks whose reward only says "still alive": it tells the planner
    /// what lies beyond its horizon. `None`: plans score the horizon alone.
    #[serde(default)]
    pub terminal_value: Option<ValueConfig>,
}

impl MpcConfig {
    /// The environment's physics overrides.
    pub fn physics(&self) -> Physics {
        self.physics.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// PETS-style settings for an environment, sized for a 2-core CPU.
    pub fn for_env(env: &str) -> Self {
        let search = crate::planner::SearchConfig {
            horizon: 30,
            ..crate::planner::SearchConfig::default()
        };
        let mut config = MpcConfig {
            env: env.to_owned(),
            seed: 0,
            random_steps: 200,
            max_real_steps: 2000,
            refit_every: 250,
            // Halting far outside the visited region (one range beyond it on each side)
            // keeps the planner from exploiting extrapolation (on CartPole: running the
            // cart off the track, whose end the data has barely seen) without trapping it.
            ensemble: EnsembleConfig {
                support_margin: Some(1.0),
                ..EnsembleConfig::default()
            },
            train: TrainConfig {
                max_epochs: 60,
                batch_size: 32,
                patience: 10,
                normalizer: NormalizerUpdate::Refit,
                ..TrainConfig::default()
            },
            planner: PlannerConfig::Cem(CemConfig {
                search: search.clone(),
                elites: 30,
            }),
            eval_episodes: 10,
            device: "cpu".into(),
            physics: Vec::new(),
            terminal_value: None,
        };
        if env.starts_with("CartPole") {
            config.terminal_value = Some(ValueConfig::default());
        }
        if env.starts_with("Pendulum") {
            config.max_real_steps = 5000;
            config.random_steps = 400;
            config.refit_every = 400;
            // Swing-up needs ~1 s of look-ahead; a smaller population keeps the 5,000
            // planned steps affordable on two cores.
            config.planner = PlannerConfig::Cem(CemConfig {
                search: crate::planner::SearchConfig {
                    horizon: 25,
                    population: 200,
                    ..search
                },
                elites: 20,
            });
        }
        config
    }
}

/// An agent that acts by planning in its world model.
pub struct MpcAgent {
    /// The model planned in.
    pub model: Box<dyn WorldModel>,
    /// The planner.
    pub planner: Box<dyn Planner>,
}

impl MpcAgent {
    /// Actions for `n` observations at once (`[n, obs_dim]` row-major): one batched plan.
    pub fn act_batch(&mut self, obs: &[f32]) -> Result<Vec<Action>> {
        Ok(self.planner.plan(self.model.as_ref(), obs)?.actions)
    }

    /// The action for one observation.
    pub fn act(&mut self, obs: &[f32]) -> Result<Action> {
        self.act_batch(obs)?
            .pop()
            .ok_or_else(|| WorldModelError::Config("planner returned no action".into()))
    }

    /// Forgets the warm start (a new episode begins).
    pub fn reset(&mut self) {
        self.planner.reset();
    }
}

/// What an MPC run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MpcReport {
    /// Environment id.
    pub env: String,
    /// Real transitions used for learning (random and controlled).
    pub real_steps: usize,
    /// Returns of the episodes completed while learning (random phase included).
    pub learning_returns: Vec<f64>,
    /// Model fits (the first included).
    pub fits: usize,
    /// Report of the last fit.
    pub last_fit: Option<TrainReport>,
    /// Returns of the evaluation episodes.
    pub eval_returns: Vec<f64>,
    /// Their mean.
    pub eval_mean: f64,
    /// Seconds spent learning (acting, planning and fitting).
    pub learning_seconds: f64,
    /// Seconds spent evaluating.
    pub eval_seconds: f64,
}

/// `steps` real transitions of `env_id` under uniformly random actions (the first episode
/// resets with `seed`, later ones continue the environment's generator): exploration
/// before there is a model, and the data of tests and examples.
pub fn random_dataset(env_id: &str, steps: usize, seed: u64) -> Result<Dataset> {
    let mut env = make_with(env_id, &Physics::new())?;
    let spec = env.spec();
    let mut data = Dataset::new(&spec)?;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut obs = env.reset(Some(seed));
    while data.len() < steps {
        let action = random_action(&spec.action_space, &mut rng);
        let step = env.step(action.as_ref())?;
        data.push(
            &obs,
            action.as_ref(),
            step.reward,
            &step.obs,
            step.terminated,
        )?;
        obs = if step.done() {
            env.reset(None)
        } else {
            step.obs
        };
    }
    Ok(data)
}

fn random_action(space: &Space, rng: &mut SmallRng) -> Action {
    match space {
        Space::Discrete { n } => Action::Discrete(rng.random_range(0..*n)),
        Space::Box { low, high } => Action::Continuous(
            low.iter()
                .zip(high)
                .map(|(l, h)| {
                    if l.is_finite() && h.is_finite() {
                        rng.random_range(*l..=*h)
                    } else {
                        rng.random_range(-1.0..=1.0)
                    }
                })
                .collect(),
        ),
    }
}

/// What learning produced: the agent (its model fitted to all the data), the real data,
/// and the report so far (no evaluation yet).
pub struct Learned {
    /// The planning agent.
    pub agent: MpcAgent,
    /// Every real transition collected.
    pub data: Dataset,
    /// Learning figures.
    pub report: MpcReport,
}

/// Runs learning and evaluation; `log` receives one line per event (fits, episodes).
pub fn run(config: &MpcConfig, log: &mut dyn FnMut(&str)) -> Result<MpcReport> {
    let Learned {
        mut agent,
        mut report,
        ..
    } = learn(config, None, log)?;
    let started = Instant::now();
    report.eval_returns = evaluate(
        &mut agent,
        &config.env,
        &config.physics(),
        config.seed,
        config.eval_episodes,
        log,
    )?;
    report.eval_mean = if report.eval_returns.is_empty() {
        f64::NAN
    } else {
        report.eval_returns.iter().sum::<f64>() / report.eval_returns.len() as f64
    };
    report.eval_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The learning phase of [`run`]: random transitions, then planning with periodic refits,
/// until `max_real_steps`. With `model`, learning starts from that (trained) model —
/// adaptation to a changed system — and skips the random phase's first fit from scratch.
pub fn learn(
    config: &MpcConfig,
    model: Option<Box<dyn WorldModel>>,
    log: &mut dyn FnMut(&str),
) -> Result<Learned> {
    let pretrained = model.as_ref().is_some_and(|m| m.is_trained());
    if config.max_real_steps < config.random_steps || (config.random_steps == 0 && !pretrained) {
        return Err(WorldModelError::Config(
            "need random_steps <= max_real_steps, and random_steps > 0 without a trained model"
                .into(),
        ));
    }
    if config.refit_every == 0 {
        return Err(WorldModelError::Config(
            "refit_every must be positive".into(),
        ));
    }
    let device = parse_device(&config.device)?;
    let mut env = make_with(&config.env, &config.physics())?;
    let spec = env.spec();
    let space = spec.action_space.clone();
    let model = match model {
        Some(model) => {
            if model.spec() != &spec {
                return Err(WorldModelError::Config(format!(
                    "the starting model was made for another task than {}",
                    config.env
                )));
            }
            model
        }
        None => {
            let mut ensemble = config.ensemble.clone();
            ensemble.seed = config.seed;
            Registry::default().build(&WorldModelConfig::ensemble(&ensemble), &spec, &device)?
        }
    };
    let mut agent = MpcAgent {
        model,
        planner: config.planner.build()?,
    };
    let mut data = Dataset::new(&spec)?;
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let started = Instant::now();
    let mut report = MpcReport {
        env: config.env.clone(),
        real_steps: 0,
        learning_returns: vec![],
        fits: 0,
        last_fit: None,
        eval_returns: vec![],
        eval_mean: f64::NAN,
        learning_seconds: 0.0,
        eval_seconds: 0.0,
    };
    let mut obs = env.reset(Some(config.seed));
    let mut episode_return = 0.0;
    let mut since_fit = 0;
    let fit = |agent: &mut MpcAgent,
               data: &Dataset,
               report: &mut MpcReport,
               log: &mut dyn FnMut(&str)|
     -> Result<()> {
        let mut train = config.train.clone();
        train.seed = config.seed.wrapping_add(report.fits as u64);
        let r = agent.model.fit(data, &train)?;
        report.fits += 1;
        log(&format!(
            "fit {} on {} transitions: {} epochs in {:.1} s, held-out mse {:?}",
            report.fits,
            data.len(),
            r.epochs,
            r.seconds,
            r.holdout_mse
        ));
        report.last_fit = Some(r);
        if let Some(value_config) = &config.terminal_value {
            let value_config = ValueConfig {
                seed: value_config.seed.wrapping_add(report.fits as u64),
                ..value_config.clone()
            };
            let (value, v) =
                TerminalValue::fit(agent.model.as_ref(), data.observations(), &value_config)?;
            log(&format!(
                "terminal value: mean {:.1}, regression mse {:.3}, {:.1} s",
                v.mean_value, v.last_loss, v.seconds
            ));
            agent.planner.set_terminal_value(Some(value));
        }
        Ok(())
    };
    while report.real_steps < config.max_real_steps {
        let controlled = report.real_steps >= config.random_steps;
        if controlled && (!agent.model.is_trained() || since_fit >= config.refit_every) {
            fit(&mut agent, &data, &mut report, log)?;
            since_fit = 0;
        }
        let action = if controlled {
            agent.act(&obs)?
        } else {
            random_action(&space, &mut rng)
        };
        let step = env.step(action.as_ref())?;
        data.push(
            &obs,
            action.as_ref(),
            step.reward,
            &step.obs,
            step.terminated,
        )?;
        report.real_steps += 1;
        since_fit += 1;
        episode_return += step.reward;
        if step.done() {
            log(&format!(
                "episode {} ({}): return {episode_return:.1} after {} real steps, final observation {:?}",
                report.learning_returns.len() + 1,
                if controlled { "mpc" } else { "random" },
                report.real_steps,
                step.obs
            ));
            report.learning_returns.push(episode_return);
            episode_return = 0.0;
            agent.reset();
            obs = env.reset(None);
        } else {
            obs = step.obs;
        }
    }
    if since_fit > 0 || !agent.model.is_trained() {
        fit(&mut agent, &data, &mut report, log)?;
    }
    report.learning_seconds = started.elapsed().as_secs_f64();
    Ok(Learned {
        agent,
        data,
        report,
    })
}

/// Runs `episodes` evaluation episodes in parallel (seeds `seed + 10_000 + i`), planning
/// for all of them in one batch per step; finished episodes keep their last observation
/// in the batch (so the batch, and the warm start, keep their shape) and their actions are
/// ignored.
pub fn evaluate(
    agent: &mut MpcAgent,
    env_id: &str,
    physics: &Physics,
    seed: u64,
    episodes: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<f64>> {
    if episodes == 0 {
        return Ok(vec![]);
    }
    let mut envs: Vec<Box<dyn Env + Send>> = (0..episodes)
        .map(|_| make_with(env_id, physics))
        .collect::<std::result::Result<_, _>>()?;
    let obs_dim = envs[0].observation_space().dim();
    let mut obs = vec![0f32; episodes * obs_dim];
    for (i, env) in envs.iter_mut().enumerate() {
        let o = env.reset(Some(seed.wrapping_add(10_000 + i as u64)));
        obs[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(&o);
    }
    let mut returns = vec![0f64; episodes];
    let mut done = vec![false; episodes];
    agent.reset();
    let mut steps = 0;
    while done.iter().any(|d| !d) {
        let actions = agent.act_batch(&obs)?;
        for (i, env) in envs.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            let step = env.step(actions[i].as_ref())?;
            returns[i] += step.reward;
            obs[i * obs_dim..(i + 1) * obs_dim].copy_from_slice(&step.obs);
            if step.done() {
                done[i] = true;
                log(&format!(
                    "eval episode {}: return {:.1}, final observation {:?}",
                    i + 1,
                    returns[i],
                    step.obs
                ));
            }
        }
        steps += 1;
        if steps % 100 == 0 {
            log(&format!("eval: {steps} steps"));
        }
    }
    Ok(returns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::SearchConfig;

    fn tiny(env: &str) -> MpcConfig {
        let mut c = MpcConfig::for_env(env);
        c.random_steps = 60;
        c.max_real_steps = 100;
        c.refit_every = 20;
        c.eval_episodes = 2;
        c.ensemble.members = 2;
        c.ensemble.hidden = vec![16];
        c.train.max_epochs = 3;
        c.planner = PlannerConfig::Cem(CemConfig {
            search: SearchConfig {
                horizon: 4,
                population: 16,
                iterations: 1,
                ..SearchConfig::default()
            },
            elites: 4,
        });
        c
    }

    #[test]
    fn a_short_run_counts_its_real_steps_and_evaluates() {
        for env in ["CartPole-v1", "Pendulum-v1"] {
            let mut lines = 0;
            let mut config = tiny(env);
            if env.starts_with("Pendulum") {
                config.planner = PlannerConfig::Mppi(MppiConfig {
                    search: SearchConfig {
                        horizon: 4,
                        population: 16,
                        iterations: 1,
                        ..SearchConfig::default()
                    },
                    ..MppiConfig::default()
                });
                // Pendulum episodes last 200 steps: evaluate one.
                config.eval_episodes = 1;
            }
            let report = run(&config, &mut |_| lines += 1).unwrap();
            assert_eq!(report.real_steps, 100);
            // A first fit at step 60, refits at 80 and 100 (the final one).
            assert_eq!(report.fits, 3);
            assert_eq!(report.eval_returns.len(), config.eval_episodes);
            assert!(report.eval_mean.is_finite());
            assert!(lines > 0);
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let mut c = tiny("CartPole-v1");
        c.random_steps = 0;
        assert!(run(&c, &mut |_| {}).is_err());
        let mut c = tiny("CartPole-v1");
        c.env = "Nope-v0".into();
        assert!(matches!(run(&c, &mut |_| {}), Err(WorldModelError::Env(_))));
        let mut c = tiny("CartPole-v1");
        c.device = "tpu".into();
        assert!(run(&c, &mut |_| {}).is_err());
    }
}
