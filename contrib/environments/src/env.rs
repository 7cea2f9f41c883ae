//! The environment interface, and the wrapper that gives raw dynamics Gymnasium's
//! episode semantics (seeding, time limit, order of calls).

use plasma_protocol::{ActionRef, Space, TaskSpec, Termination};

use crate::error::EnvError;
use crate::rng::NpRandom;

/// What one step returns, as Gymnasium's `(obs, reward, terminated, truncated)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Vec<f32>,
    /// Reward for the step.
    pub reward: f64,
    /// A terminal state of the task was reached.
    pub terminated: bool,
    /// The time limit was reached.
    pub truncated: bool,
}

impl Step {
    /// The episode is over, one way or the other.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// A step without its observation, for [`Env::step_into`], which writes the observation
/// into a caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Reward for the step.
    pub reward: f64,
    /// A terminal state of the task was reached.
    pub terminated: bool,
    /// The time limit was reached.
    pub truncated: bool,
}

/// An environment with Gymnasium's shape: reset, step, spaces, plus access to the raw
/// physical state.
///
/// The `*_into` methods write observations into a caller's buffer, so that loops over
/// many steps allocate nothing.
pub trait Env {
    /// The registered id, e.g. `"CartPole-v1"`.
    fn id(&self) -> &str;
    /// Space of the observations.
    fn observation_space(&self) -> &Space;
    /// Space of the actions.
    fn action_space(&self) -> &Space;
    /// Steps after which an episode is truncated (Gymnasium's `max_episode_steps`).
    fn max_episode_steps(&self) -> Option<u32>;
    /// The task's termination rule, when it can be declared (see [`Termination`]); `None`
    /// when the task never terminates or its rule is not a box on the observation.
    fn termination(&self) -> Option<Termination> {
        None
    }
    /// Steps taken since the last reset.
    fn elapsed_steps(&self) -> u32;

    /// Starts a new episode and returns its first observation.
    ///
    /// With `Some(seed)` the environment's generator is re-seeded and the initial state is
    /// the one Gymnasium draws for `env.reset(seed=seed)`. With `None` the generator goes
    /// on where it was, or is seeded from OS entropy if it was never seeded.
    fn reset(&mut self, seed: Option<u64>) -> Vec<f32>;
    /// [`Env::reset`], writing the observation into `obs` (of length
    /// `observation_space().dim()`).
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Result<(), EnvError>;
    /// Applies one action.
    fn step(&mut self, action: ActionRef<'_>) -> Result<Step, EnvError>;
    /// [`Env::step`], writing the observation into `obs`. On error nothing changed.
    fn step_into(
        &mut self,
        action: ActionRef<'_>,
        obs: &mut [f32],
    ) -> Result<StepOutcome, EnvError>;

    /// The raw physical state, in Gymnasium's order and units (its `env.unwrapped.state`).
    fn state(&self) -> Vec<f64>;
    /// Replaces the raw physical state, as assigning `env.unwrapped.state` in Gymnasium
    /// does: the episode's step count and the generator are left as they are. Allows
    /// stepping without a prior reset.
    fn set_state(&mut self, state: &[f64]) -> Result<(), EnvError>;
    /// The observation of the current state, written into `obs`.
    fn observe_into(&self, obs: &mut [f32]) -> Result<(), EnvError>;

    /// The task this environment poses, for the wire.
    fn spec(&self) -> TaskSpec {
        TaskSpec {
            name: self.id().to_owned(),
            observation_space: self.observation_space().clone(),
            action_space: self.action_space().clone(),
            max_episode_steps: self.max_episode_steps(),
            termination: self.termination(),
        }
    }
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn id(&self) -> &str {
        (**self).id()
    }
    fn observation_space(&self) -> &Space {
        (**self).observation_space()
    }
    fn action_space(&self) -> &Space {
        (**self).action_space()
    }
    fn max_episode_steps(&self) -> Option<u32> {
        (**self).max_episode_steps()
    }
    fn termination(&self) -> Option<Termination> {
        (**self).termination()
    }
    fn elapsed_steps(&self) -> u32 {
        (**self).elapsed_steps()
    }
    fn reset(&mut self, seed: Option<u64>) -> Vec<f32> {
        (**self).reset(seed)
    }
    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Result<(), EnvError> {
        (**self).reset_into(seed, obs)
    }
    fn step(&mut self, action: ActionRef<'_>) -> Result<Step, EnvError> {
        (**self).step(action)
    }
    fn step_into(
        &mut self,
        action: ActionRef<'_>,
        obs: &mut [f32],
    ) -> Result<StepOutcome, EnvError> {
        (**self).step_into(action, obs)
    }
    fn state(&self) -> Vec<f64> {
        (**self).state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<(), EnvError> {
        (**self).set_state(state)
    }
    fn observe_into(&self, obs: &mut [f32]) -> Result<(), EnvError> {
        (**self).observe_into(obs)
    }
}

/// The raw dynamics of an environment, without episode bookkeeping: what Gymnasium's
/// unwrapped environment class computes.
///
/// [`GymEnv`] adds seeding, the time limit and the checks of `gymnasium.make`'s wrappers.
pub trait Dynamics: Send {
    /// The registered id.
    fn id(&self) -> &'static str;
    /// Space of the observations.
    fn observation_space(&self) -> Space;
    /// Space of the actions.
    fn action_space(&self) -> Space;
    /// The time limit `gymnasium.make` applies.
    fn max_episode_steps(&self) -> u32;
    /// The termination rule [`Dynamics::step`] applies, when it is a box on the
    /// observation (see [`Env::termination`]).
    fn termination(&self) -> Option<Termination> {
        None
    }
    /// Length of the raw state.
    fn state_dim(&self) -> usize;
    /// Draws an initial state, consuming the generator as Gymnasium's `reset` does.
    fn reset(&mut self, rng: &mut NpRandom);
    /// Advances one step with an action already checked against the action space;
    /// returns the reward and whether a terminal state was reached.
    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool);
    /// Writes the observation of the current state (`obs.len()` is the observation
    /// dimension).
    fn observe(&self, obs: &mut [f32]);
    /// Writes the raw state (`out.len()` is [`Dynamics::state_dim`]).
    fn state(&self, out: &mut [f64]);
    /// Replaces the raw state (`state.len()` is [`Dynamics::state_dim`], all finite).
    fn set_state(&mut self, state: &[f64]);
}

/// Copies `src` into `dst` as far as both go: the `Dynamics` buffers have the right
/// length by contract, and a wrong one must not panic.
pub(crate) fn copy_into<T: Copy>(dst: &mut [T], src: &[T]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Raw dynamics wrapped as `gymnasium.make` wraps them: seeded resets, a time limit
/// (`TimeLimit`) and a refusal to step before the first reset (`OrderEnforcing`).
#[derive(Debug, Clone)]
pub struct GymEnv<D> {
    dynamics: D,
    observation_space: Space,
    action_space: Space,
    max_episode_steps: u32,
    rng: Option<NpRandom>,
    elapsed: u32,
    ready: bool,
}

impl<D: Dynamics> GymEnv<D> {
    /// Wraps `dynamics`; the environment must be reset before it is stepped.
    pub fn new(dynamics: D) -> Self {
        GymEnv {
            observation_space: dynamics.observation_space(),
            action_space: dynamics.action_space(),
            max_episode_steps: dynamics.max_episode_steps(),
            dynamics,
            rng: None,
            elapsed: 0,
            ready: false,
        }
    }

    /// The wrapped dynamics.
    pub fn dynamics(&self) -> &D {
        &self.dynamics
    }

    fn check_obs_len(&self, obs: &[f32]) -> Result<(), EnvError> {
        let expected = self.observation_space.dim();
        if obs.len() == expected {
            Ok(())
        } else {
            Err(EnvError::BufferSize {
                expected,
                found: obs.len(),
            })
        }
    }

    fn reset_state(&mut self, seed: Option<u64>) {
        let rng = match (seed, &mut self.rng) {
            (Some(seed), rng) => rng.insert(NpRandom::from_seed(seed)),
            (None, Some(rng)) => rng,
            (None, rng @ None) => rng.insert(NpRandom::from_entropy()),
        };
        self.dynamics.reset(rng);
        self.elapsed = 0;
        self.ready = true;
    }
}

impl<D: Dynamics> Env for GymEnv<D> {
    fn id(&self) -> &str {
        self.dynamics.id()
    }
    fn observation_space(&self) -> &Space {
        &self.observation_space
    }
    fn action_space(&self) -> &Space {
        &self.action_space
    }
    fn max_episode_steps(&self) -> Option<u32> {
        Some(self.max_episode_steps)
    }
    fn termination(&self) -> Option<Termination> {
        self.dynamics.termination()
    }
    fn elapsed_steps(&self) -> u32 {
        self.elapsed
    }

    fn reset(&mut self, seed: Option<u64>) -> Vec<f32> {
        self.reset_state(seed);
        let mut obs = vec![0.0; self.observation_space.dim()];
        self.dynamics.observe(&mut obs);
        obs
    }

    fn reset_into(&mut self, seed: Option<u64>, obs: &mut [f32]) -> Result<(), EnvError> {
        self.check_obs_len(obs)?;
        self.reset_state(seed);
        self.dynamics.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: ActionRef<'_>) -> Result<Step, EnvError> {
        let mut obs = vec![0.0; self.observation_space.dim()];
        let outcome = self.step_into(action, &mut obs)?;
        Ok(Step {
            obs,
            reward: outcome.reward,
            terminated: outcome.terminated,
            truncated: outcome.truncated,
        })
    }

    fn step_into(
        &mut self,
        action: ActionRef<'_>,
        obs: &mut [f32],
    ) -> Result<StepOutcome, EnvError> {
        if !self.ready {
            return Err(EnvError::ResetNeeded);
        }
        self.check_obs_len(obs)?;
        self.action_space.check_action(action)?;
        let (reward, terminated) = self.dynamics.step(action);
        self.dynamics.observe(obs);
        // TimeLimit: `truncated = elapsed >= max_episode_steps`, counted on every step.
        self.elapsed = self.elapsed.saturating_add(1);
        Ok(StepOutcome {
            reward,
            terminated,
            truncated: self.elapsed >= self.max_episode_steps,
        })
    }

    fn state(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.dynamics.state_dim()];
        self.dynamics.state(&mut out);
        out
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), EnvError> {
        let expected = self.dynamics.state_dim();
        if state.len() != expected {
            return Err(EnvError::StateDim {
                expected,
                found: state.len(),
            });
        }
        if let Some(position) = state.iter().position(|v| !v.is_finite()) {
            return Err(EnvError::NonFiniteState { position });
        }
        self.dynamics.set_state(state);
        self.ready = true;
        Ok(())
    }

    fn observe_into(&self, obs: &mut [f32]) -> Result<(), EnvError> {
        self.check_obs_len(obs)?;
        self.dynamics.observe(obs);
        Ok(())
    }
}
