//! Many copies of an environment stepped together, with automatic resets.

use plasma_protocol::{ActionRef, Space};

use crate::env::Env;
use crate::error::EnvError;

/// One action per environment of a [`VectorEnv`], flat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchActions<'a> {
    /// One index per environment.
    Discrete(&'a [u32]),
    /// `num_envs × action_dim` values, row-major (environment `i`'s action is
    /// `values[i * dim..(i + 1) * dim]`).
    Continuous(&'a [f32]),
}

/// `N` copies of an environment stepped with one batch of actions, observations written
/// into one flat buffer (`num_envs × obs_dim`, row-major). Stepping allocates nothing.
///
/// **Autoreset: same step** (Gymnasium's `AutoresetMode.SAME_STEP`). When environment `i`
/// terminates or is truncated, its reward and flags for that step are reported as usual,
/// its final observation is copied into [`VectorEnv::final_observations`], and it is reset
/// at once: [`VectorEnv::observations`] already holds the first observation of its next
/// episode. So every step is a real transition; the transition's `next_obs` is the final
/// observation where `terminated || truncated`, else the observation.
///
/// **Seeds.** `reset(Some(seed))` resets environment `i` with seed `seed + i` (wrapping),
/// as Gymnasium's vector environments do; automatic resets continue each environment's
/// own generator, so a run is a deterministic function of the seed, and environment `i`
/// replays exactly `gym.make(id)` reset with `seed + i` and then reset without a seed.
#[derive(Debug)]
pub struct VectorEnv<E> {
    envs: Vec<E>,
    obs_dim: usize,
    action_dim: usize,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    needs_reset: bool,
}

impl<E: Env> VectorEnv<E> {
    /// Vectorizes `envs`, which must be non-empty and share their spaces. Call
    /// [`VectorEnv::reset`] before stepping.
    pub fn new(envs: Vec<E>) -> Result<Self, EnvError> {
        let first = envs.first().ok_or(EnvError::EmptyVector)?;
        let (obs_space, action_space) = (first.observation_space(), first.action_space());
        if let Some(index) = envs
            .iter()
            .position(|e| e.observation_space() != obs_space || e.action_space() != action_space)
        {
            return Err(EnvError::MixedSpaces { index });
        }
        let obs_dim = obs_space.dim();
        let action_dim = action_space.dim();
        let n = envs.len();
        Ok(VectorEnv {
            envs,
            obs_dim,
            action_dim,
            obs: vec![0.0; n * obs_dim],
            final_obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            needs_reset: true,
        })
    }

    /// Number of environments.
    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    /// Values per observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Space of one environment's observations.
    pub fn single_observation_space(&self) -> &Space {
        self.envs[0].observation_space()
    }

    /// Space of one environment's actions.
    pub fn single_action_space(&self) -> &Space {
        self.envs[0].action_space()
    }

    /// The environments, e.g. to read their raw states.
    pub fn envs(&self) -> &[E] {
        &self.envs
    }

    /// Resets every environment (environment `i` with `seed + i`) and returns the
    /// observations.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<&[f32], EnvError> {
        for (i, (env, obs)) in self
            .envs
            .iter_mut()
            .zip(self.obs.chunks_exact_mut(self.obs_dim))
            .enumerate()
        {
            let env_seed = seed.map(|s| s.wrapping_add(i as u64));
            env.reset_into(env_seed, obs)?;
        }
        self.rewards.fill(0.0);
        self.terminated.fill(false);
        self.truncated.fill(false);
        self.needs_reset = false;
        Ok(&self.obs)
    }

    /// Steps every environment with its action, resetting those whose episode ended.
    ///
    /// All actions are checked first: on error no environment has moved.
    pub fn step(&mut self, actions: BatchActions<'_>) -> Result<(), EnvError> {
        if self.needs_reset {
            return Err(EnvError::ResetNeeded);
        }
        let n = self.envs.len();
        let space = self.envs[0].action_space();
        match actions {
            BatchActions::Discrete(indices) => {
                if indices.len() != n {
                    return Err(EnvError::BatchSize {
                        expected: n,
                        found: indices.len(),
                    });
                }
                for (index, &a) in indices.iter().enumerate() {
                    space
                        .check_action(ActionRef::Discrete(a))
                        .map_err(|source| EnvError::InvalidBatchAction { index, source })?;
                }
            }
            BatchActions::Continuous(values) => {
                if values.len() != n * self.action_dim {
                    return Err(EnvError::BatchSize {
                        expected: n * self.action_dim,
                        found: values.len(),
                    });
                }
                for (index, a) in values.chunks_exact(self.action_dim).enumerate() {
                    space
                        .check_action(ActionRef::Continuous(a))
                        .map_err(|source| EnvError::InvalidBatchAction { index, source })?;
                }
            }
        }
        let dim = self.obs_dim;
        for (i, env) in self.envs.iter_mut().enumerate() {
            let action = match actions {
                BatchActions::Discrete(indices) => ActionRef::Discrete(indices[i]),
                BatchActions::Continuous(values) => {
                    ActionRef::Continuous(&values[i * self.action_dim..(i + 1) * self.action_dim])
                }
            };
            let obs = &mut self.obs[i * dim..(i + 1) * dim];
            let outcome = env.step_into(action, obs)?;
            self.rewards[i] = outcome.reward;
            self.terminated[i] = outcome.terminated;
            self.truncated[i] = outcome.truncated;
            if outcome.terminated || outcome.truncated {
                self.final_obs[i * dim..(i + 1) * dim].copy_from_slice(obs);
                env.reset_into(None, obs)?;
            }
        }
        Ok(())
    }

    /// Current observations, `num_envs × obs_dim`: after a step, the first observation of
    /// the new episode for environments that were just reset.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// Final observations of the episodes that ended on the last step (rows of other
    /// environments hold stale values).
    pub fn final_observations(&self) -> &[f32] {
        &self.final_obs
    }

    /// Rewards of the last step.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// Which environments terminated on the last step.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// Which environments were truncated on the last step.
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }
}
