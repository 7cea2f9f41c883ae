//! Pendulum-v1: `gymnasium/envs/classic_control/pendulum.py`, line by line.

use std::f64::consts::PI;

use plasma_protocol::{ActionRef, Space};

use crate::env::{Dynamics, GymEnv, copy_into};
use crate::error::EnvError;
use crate::physics::{Physics, PhysicsConfig};
use crate::pymath::{pow2, pow2_f32, py_mod};
use crate::rng::NpRandom;

/// The registered id.
pub const ID: &str = "Pendulum-v1";

/// Physics of Pendulum; `Default` is Gymnasium's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendulumConfig {
    /// Gravity, m/s² (`g`, 10.0; `gym.make("Pendulum-v1", g=...)` sets the same).
    pub g: f64,
    /// Mass of the bob, kg (`m`, 1.0).
    pub m: f64,
    /// Length of the rod, m (`l`, 1.0).
    pub l: f64,
    /// Largest torque; actions are clipped to ±this, N·m (`max_torque`, 2.0).
    pub max_torque: f64,
    /// Largest angular speed; clipped to ±this, rad/s (`max_speed`, 8.0).
    pub max_speed: f64,
    /// Seconds per step (`dt`, 0.05).
    pub dt: f64,
}

impl Default for PendulumConfig {
    fn default() -> Self {
        PendulumConfig {
            g: 10.0,
            m: 1.0,
            l: 1.0,
            max_torque: 2.0,
            max_speed: 8.0,
            dt: 0.05,
        }
    }
}

impl PhysicsConfig for PendulumConfig {
    const ENV_ID: &'static str = ID;

    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("g", self.g),
            ("m", self.m),
            ("l", self.l),
            ("max_torque", self.max_torque),
            ("max_speed", self.max_speed),
            ("dt", self.dt),
        ]
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "g" => &mut self.g,
            "m" => &mut self.m,
            "l" => &mut self.l,
            "max_torque" => &mut self.max_torque,
            "max_speed" => &mut self.max_speed,
            "dt" => &mut self.dt,
            _ => return None,
        })
    }
}

/// `angle_normalize`: the angle brought into `[-pi, pi)`.
fn angle_normalize(x: f64) -> f64 {
    py_mod(x + PI, 2.0 * PI) - PI
}

/// Swing a pendulum up and hold it: torque in `[-2, 2]`, reward
/// `-(angle² + 0.1·speed² + 0.001·torque²)`. Never terminates; truncated after 200 steps.
/// State `[theta, theta_dot]` in f64; observation `[cos, sin, theta_dot]` in f32.
///
/// As in Gymnasium with a float32 action, the torque is clipped and squared in f32.
#[derive(Debug, Clone)]
pub struct Pendulum {
    config: PendulumConfig,
    state: [f64; 2],
}

impl Pendulum {
    /// Pendulum with the given physics (validated).
    pub fn new(config: PendulumConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(Pendulum {
            config,
            state: [0.0; 2],
        })
    }

    /// The environment with the given physics, wrapped as `gymnasium.make` wraps it.
    pub fn env(config: PendulumConfig) -> Result<GymEnv<Self>, EnvError> {
        Ok(GymEnv::new(Self::new(config)?))
    }

    /// The environment with Gymnasium's physics overridden by `physics`.
    pub fn env_with(physics: &Physics) -> Result<GymEnv<Self>, EnvError> {
        Self::env(PendulumConfig::from_physics(physics)?)
    }

    /// The physics in use.
    pub fn config(&self) -> &PendulumConfig {
        &self.config
    }
}

impl Dynamics for Pendulum {
    fn id(&self) -> &'static str {
        ID
    }

    fn observation_space(&self) -> Space {
        let high = [1.0, 1.0, self.config.max_speed as f32];
        Space::Box {
            low: high.iter().map(|h| -h).collect(),
            high: high.to_vec(),
        }
    }

    fn action_space(&self) -> Space {
        let t = self.config.max_torque as f32;
        Space::Box {
            low: vec![-t],
            high: vec![t],
        }
    }

    fn max_episode_steps(&self) -> u32 {
        200
    }

    fn state_dim(&self) -> usize {
        2
    }

    fn reset(&mut self, rng: &mut NpRandom) {
        // high = [pi, 1.0]; self.np_random.uniform(low=-high, high=high)
        self.state = [rng.uniform(-PI, PI), rng.uniform(-1.0, 1.0)];
    }

    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool) {
        let c = &self.config;
        let [th, thdot] = self.state;
        let raw = match action {
            ActionRef::Continuous(values) => values.first().copied().unwrap_or(0.0),
            ActionRef::Discrete(_) => 0.0,
        };
        // u = np.clip(u, -max_torque, max_torque)[0]: float32, bounds cast to float32.
        let t = c.max_torque as f32;
        let u = raw.max(-t).min(t);
        // costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2), where the
        // last term is float32 arithmetic (u is np.float32, 0.001 a weak Python float).
        let torque_cost = 0.001_f32 * pow2_f32(u);
        let costs = pow2(angle_normalize(th)) + 0.1 * pow2(thdot) + f64::from(torque_cost);
        // 3.0 / (m * l**2) * u is float32 arithmetic too.
        let torque_term = ((3.0 / (c.m * pow2(c.l))) as f32) * u;
        let newthdot = thdot + (3.0 * c.g / (2.0 * c.l) * th.sin() + f64::from(torque_term)) * c.dt;
        let newthdot = newthdot.max(-c.max_speed).min(c.max_speed);
        let newth = th + newthdot * c.dt;
        self.state = [newth, newthdot];
        (-costs, false)
    }

    fn observe(&self, obs: &mut [f32]) {
        let [theta, thetadot] = self.state;
        // np.array([np.cos(theta), np.sin(theta), thetadot], dtype=np.float32)
        let values = [theta.cos() as f32, theta.sin() as f32, thetadot as f32];
        copy_into(obs, &values);
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

    #[test]
    fn angle_normalize_wraps_into_minus_pi_pi() {
        assert!((angle_normalize(3.0 * PI) - (-PI)).abs() < 1e-12);
        assert!((angle_normalize(0.5) - 0.5).abs() < 1e-15);
        assert!((angle_normalize(-0.5 - 2.0 * PI) + 0.5).abs() < 1e-12);
    }
}
