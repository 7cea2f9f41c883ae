//! CartPole-v1: `gymnasium/envs/classic_control/cartpole.py`, line by line.

use plasma_protocol::{ActionRef, Space, Termination};

use crate::env::{Dynamics, GymEnv, copy_into};
use crate::error::EnvError;
use crate::physics::{Physics, PhysicsConfig};
use crate::rng::NpRandom;

/// The registered id.
pub const ID: &str = "CartPole-v1";

/// Physics of CartPole; `Default` is Gymnasium's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CartPoleConfig {
    /// Gravity, m/s² (`gravity`, 9.8).
    pub gravity: f64,
    /// Mass of the cart, kg (`masscart`, 1.0).
    pub masscart: f64,
    /// Mass of the pole, kg (`masspole`, 0.1).
    pub masspole: f64,
    /// Half the pole's length, m (`length`, 0.5), as Gymnasium defines it.
    pub length: f64,
    /// Magnitude of the push, N (`force_mag`, 10.0).
    pub force_mag: f64,
    /// Seconds between state updates (`tau`, 0.02).
    pub tau: f64,
}

impl Default for CartPoleConfig {
    fn default() -> Self {
        CartPoleConfig {
            gravity: 9.8,
            masscart: 1.0,
            masspole: 0.1,
            length: 0.5,
            force_mag: 10.0,
            tau: 0.02,
        }
    }
}

impl PhysicsConfig for CartPoleConfig {
    const ENV_ID: &'static str = ID;

    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("gravity", self.gravity),
            ("masscart", self.masscart),
            ("masspole", self.masspole),
            ("length", self.length),
            ("force_mag", self.force_mag),
            ("tau", self.tau),
        ]
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "gravity" => &mut self.gravity,
            "masscart" => &mut self.masscart,
            "masspole" => &mut self.masspole,
            "length" => &mut self.length,
            "force_mag" => &mut self.force_mag,
            "tau" => &mut self.tau,
            _ => return None,
        })
    }
}

/// Episode ends when the cart leaves ±2.4 m.
const X_THRESHOLD: f64 = 2.4;

/// A pole on a cart; push left (0) or right (1) to keep it up. Reward 1 per step
/// (including the terminating one), 0 for steps taken after termination without a reset.
/// State `[x, x_dot, theta, theta_dot]`, kept in f64 as Gymnasium keeps it.
#[derive(Debug, Clone)]
pub struct CartPole {
    config: CartPoleConfig,
    total_mass: f64,
    polemass_length: f64,
    theta_threshold_radians: f64,
    state: [f64; 4],
    steps_beyond_terminated: Option<u32>,
}

impl CartPole {
    /// CartPole with the given physics (validated).
    pub fn new(config: CartPoleConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(CartPole {
            config,
            total_mass: config.masspole + config.masscart,
            polemass_length: config.masspole * config.length,
            theta_threshold_radians: 12.0 * 2.0 * std::f64::consts::PI / 360.0,
            state: [0.0; 4],
            steps_beyond_terminated: None,
        })
    }

    /// The environment with the given physics, wrapped as `gymnasium.make` wraps it.
    pub fn env(config: CartPoleConfig) -> Result<GymEnv<Self>, EnvError> {
        Ok(GymEnv::new(Self::new(config)?))
    }

    /// The environment with Gymnasium's physics overridden by `physics`.
    pub fn env_with(physics: &Physics) -> Result<GymEnv<Self>, EnvError> {
        Self::env(CartPoleConfig::from_physics(physics)?)
    }

    /// The physics in use.
    pub fn config(&self) -> &CartPoleConfig {
        &self.config
    }
}

impl Dynamics for CartPole {
    fn id(&self) -> &'static str {
        ID
    }

    fn observation_space(&self) -> Space {
        let high = [
            (X_THRESHOLD * 2.0) as f32,
            f32::INFINITY,
            (self.theta_threshold_radians * 2.0) as f32,
            f32::INFINITY,
        ];
        Space::Box {
            low: high.iter().map(|h| -h).collect(),
            high: high.to_vec(),
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: 2 }
    }

    fn max_episode_steps(&self) -> u32 {
        500
    }

    /// `step`'s rule, from the same thresholds: the cart beyond ±2.4 m or the pole beyond
    /// ±12°; velocities never end an episode.
    fn termination(&self) -> Option<Termination> {
        let high = vec![
            X_THRESHOLD as f32,
            f32::INFINITY,
            self.theta_threshold_radians as f32,
            f32::INFINITY,
        ];
        Termination::observation_bounds(high.iter().map(|h| -h).collect(), high).ok()
    }

    fn state_dim(&self) -> usize {
        4
    }

    fn reset(&mut self, rng: &mut NpRandom) {
        // self.np_random.uniform(low=-0.05, high=0.05, size=(4,))
        rng.uniform_into(-0.05, 0.05, &mut self.state);
        self.steps_beyond_terminated = None;
    }

    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool) {
        let c = &self.config;
        let [mut x, mut x_dot, mut theta, mut theta_dot] = self.state;
        let force = if action == ActionRef::Discrete(1) {
            c.force_mag
        } else {
            -c.force_mag
        };
        let costheta = theta.cos();
        let sintheta = theta.sin();
        let temp =
            (force + self.polemass_length * (theta_dot * theta_dot) * sintheta) / self.total_mass;
        let thetaacc = (c.gravity * sintheta - costheta * temp)
            / (c.length * (4.0 / 3.0 - c.masspole * (costheta * costheta) / self.total_mass));
        let xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass;
        // kinematics_integrator == "euler"
        x += c.tau * x_dot;
        x_dot += c.tau * xacc;
        theta += c.tau * theta_dot;
        theta_dot += c.tau * thetaacc;
        self.state = [x, x_dot, theta, theta_dot];

        // Gymnasium's comparisons as written (a NaN state does not terminate there).
        #[allow(clippy::manual_range_contains)]
        let terminated = x < -X_THRESHOLD
            || x > X_THRESHOLD
            || theta < -self.theta_threshold_radians
            || theta > self.theta_threshold_radians;
        let reward = if !terminated {
            1.0
        } else if self.steps_beyond_terminated.is_none() {
            self.steps_beyond_terminated = Some(0);
            1.0
        } else {
            self.steps_beyond_terminated =
                self.steps_beyond_terminated.map(|s| s.saturating_add(1));
            0.0
        };
        (reward, terminated)
    }

    fn observe(&self, obs: &mut [f32]) {
        copy_into(obs, &self.state.map(|s| s as f32));
    }

    fn state(&self, out: &mut [f64]) {
        copy_into(out, &self.state);
    }

    fn set_state(&mut self, state: &[f64]) {
        copy_into(&mut self.state, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Env;

    #[test]
    fn seeded_reset_matches_gymnasium() {
        // gym.make("CartPole-v1").reset(seed=0) draws uniform(-0.05, 0.05, size=4): the
        // values printed by scripts/rng_reference.py for seed 0.
        let mut env = CartPole::env(CartPoleConfig::default()).unwrap();
        let obs = env.reset(Some(0));
        let expect = [
            0.013696168732145436_f64,
            -0.02302132862361297,
            -0.045902647606380534,
            -0.04834723644714709,
        ];
        assert_eq!(env.state(), expect.to_vec());
        assert_eq!(obs, expect.map(|v| v as f32).to_vec());
    }

    #[test]
    fn declared_termination_is_the_one_step_applies() {
        let mut env = CartPole::env(CartPoleConfig {
            length: 2.0,
            ..CartPoleConfig::default()
        })
        .unwrap();
        let spec = env.spec();
        assert_eq!(spec.validate(), Ok(()));
        let rule = spec.termination.expect("CartPole declares its termination");
        let Termination::ObservationBounds { low, high } = &rule;
        assert_eq!(high, &vec![2.4, f32::INFINITY, 0.209_439_52, f32::INFINITY]);
        assert_eq!(low, &high.iter().map(|h| -h).collect::<Vec<_>>());
        // Random states, many across the thresholds: the rule on the observation agrees
        // with the environment's own flag.
        let mut rng = NpRandom::from_seed(7);
        let mut state = [0.0; 4];
        let (mut ended, mut went_on) = (0, 0);
        for _ in 0..2000 {
            rng.uniform_into(-1.0, 1.0, &mut state);
            let s = [
                state[0] * 3.0,
                state[1] * 2.0,
                state[2] * 0.3,
                state[3] * 2.0,
            ];
            env.set_state(&s).unwrap();
            let step = env.step(ActionRef::Discrete(1)).unwrap();
            assert_eq!(rule.terminates(&step.obs), step.terminated, "{s:?}");
            if step.terminated {
                ended += 1
            } else {
                went_on += 1
            }
        }
        assert!(ended > 100 && went_on > 100, "{ended} {went_on}");
    }

    #[test]
    fn invalid_physics_is_refused() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = CartPoleConfig {
                length: bad,
                ..CartPoleConfig::default()
            };
            assert!(matches!(
                CartPole::new(config),
                Err(EnvError::InvalidParameter { name: "length", .. })
            ));
        }
        assert!(matches!(
            CartPole::env_with(&Physics::new().with("pole_colour", 1.0)),
            Err(EnvError::UnknownParameter { .. })
        ));
    }

    #[test]
    fn reward_is_zero_after_termination() {
        let mut env = CartPole::env(CartPoleConfig::default()).unwrap();
        env.reset(Some(1));
        env.set_state(&[2.39, 1.0, 0.0, 0.0]).unwrap();
        let first = env.step(ActionRef::Discrete(1)).unwrap();
        assert!(first.terminated);
        assert_eq!(first.reward, 1.0);
        let after = env.step(ActionRef::Discrete(1)).unwrap();
        assert!(after.terminated);
        assert_eq!(after.reward, 0.0);
    }
}
