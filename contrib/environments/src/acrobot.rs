//! Acrobot-v1: `gymnasium/envs/classic_control/acrobot.py`, line by line (the "book"
//! dynamics, RK4 over one 0.2 s step, no torque noise).

use std::f64::consts::PI;

use plasma_protocol::{ActionRef, Space};

use crate::env::{Dynamics, GymEnv, copy_into};
use crate::error::EnvError;
use crate::physics::{Physics, PhysicsConfig};
use crate::pymath::pow2;
use crate::rng::NpRandom;

/// The registered id.
pub const ID: &str = "Acrobot-v1";

const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

/// Physics of Acrobot; `Default` is Gymnasium's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcrobotConfig {
    /// Length of link 1, m (`LINK_LENGTH_1`, 1.0). Link 2's length does not enter
    /// Gymnasium's dynamics (only `link_com_pos_2` does), so it is not a parameter.
    pub link_length_1: f64,
    /// Mass of link 1, kg (`LINK_MASS_1`, 1.0).
    pub link_mass_1: f64,
    /// Mass of link 2, kg (`LINK_MASS_2`, 1.0).
    pub link_mass_2: f64,
    /// Position of link 1's centre of mass, m (`LINK_COM_POS_1`, 0.5).
    pub link_com_pos_1: f64,
    /// Position of link 2's centre of mass, m (`LINK_COM_POS_2`, 0.5).
    pub link_com_pos_2: f64,
    /// Moment of inertia of each link (`LINK_MOI`, 1.0).
    pub link_moi: f64,
    /// Gravity, m/s² (9.8).
    pub gravity: f64,
    /// Seconds per step (`dt`, 0.2).
    pub dt: f64,
}

impl Default for AcrobotConfig {
    fn default() -> Self {
        AcrobotConfig {
            link_length_1: 1.0,
            link_mass_1: 1.0,
            link_mass_2: 1.0,
            link_com_pos_1: 0.5,
            link_com_pos_2: 0.5,
            link_moi: 1.0,
            gravity: 9.8,
            dt: 0.2,
        }
    }
}

impl PhysicsConfig for AcrobotConfig {
    const ENV_ID: &'static str = ID;

    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("link_length_1", self.link_length_1),
            ("link_mass_1", self.link_mass_1),
            ("link_mass_2", self.link_mass_2),
            ("link_com_pos_1", self.link_com_pos_1),
            ("link_com_pos_2", self.link_com_pos_2),
            ("link_moi", self.link_moi),
            ("gravity", self.gravity),
            ("dt", self.dt),
        ]
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "link_length_1" => &mut self.link_length_1,
            "link_mass_1" => &mut self.link_mass_1,
            "link_mass_2" => &mut self.link_mass_2,
            "link_com_pos_1" => &mut self.link_com_pos_1,
            "link_com_pos_2" => &mut self.link_com_pos_2,
            "link_moi" => &mut self.link_moi,
            "gravity" => &mut self.gravity,
            "dt" => &mut self.dt,
            _ => return None,
        })
    }
}

/// A two-link pendulum actuated at the middle joint (torque -1, 0 or +1): swing the tip
/// above the line. Reward -1 per step, 0 on reaching the goal; truncated after 500 steps.
/// State `[theta1, theta2, dtheta1, dtheta2]` in f64 (the initial draw is rounded to f32
/// as Gymnasium does); observation `[cos θ1, sin θ1, cos θ2, sin θ2, dθ1, dθ2]` in f32.
#[derive(Debug, Clone)]
pub struct Acrobot {
    config: AcrobotConfig,
    state: [f64; 4],
}

/// `wrap(x, m, M)`: brings `x` into `[m, M]` by whole turns.
///
/// Gymnasium loops one turn at a time; so does this for the few turns physical states
/// need (keeping results bitwise equal), and falls back to a modulo for far-out or
/// non-finite values, where the loop would take forever or never end.
fn wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    if !x.is_finite() {
        return x;
    }
    if !(m - 64.0 * diff..=big_m + 64.0 * diff).contains(&x) {
        return m + crate::pymath::py_mod(x - m, diff);
    }
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

#[cfg(test)]
mod wrap_tests {
    use super::wrap;
    use std::f64::consts::PI;

    #[test]
    fn wrap_terminates_on_huge_and_non_finite_values() {
        let w = wrap(1e18, -PI, PI);
        assert!((-PI..=PI).contains(&w), "{w}");
        assert!(wrap(f64::INFINITY, -PI, PI).is_infinite());
        assert!(wrap(f64::NAN, -PI, PI).is_nan());
        assert_eq!(wrap(3.0 * PI, -PI, PI), 3.0 * PI - 2.0 * PI);
    }
}

/// `bound(x, m, M)`: `min(max(x, m), M)`.
fn bound(x: f64, m: f64, big_m: f64) -> f64 {
    // Python's max/min keep the first argument unless the other compares greater/less.
    let lo = if m > x { m } else { x };
    if big_m < lo { big_m } else { lo }
}

impl Acrobot {
    /// Acrobot with the given physics (validated).
    pub fn new(config: AcrobotConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(Acrobot {
            config,
            state: [0.0; 4],
        })
    }

    /// The environment with the given physics, wrapped as `gymnasium.make` wraps it.
    pub fn env(config: AcrobotConfig) -> Result<GymEnv<Self>, EnvError> {
        Ok(GymEnv::new(Self::new(config)?))
    }

    /// The environment with Gymnasium's physics overridden by `physics`.
    pub fn env_with(physics: &Physics) -> Result<GymEnv<Self>, EnvError> {
        Self::env(AcrobotConfig::from_physics(physics)?)
    }

    /// The physics in use.
    pub fn config(&self) -> &AcrobotConfig {
        &self.config
    }

    /// `_dsdt`: time derivative of the augmented state `[θ1, θ2, dθ1, dθ2, torque]`.
    fn dsdt(&self, s: &[f64; 5]) -> [f64; 5] {
        let c = &self.config;
        let m1 = c.link_mass_1;
        let m2 = c.link_mass_2;
        let l1 = c.link_length_1;
        let lc1 = c.link_com_pos_1;
        let lc2 = c.link_com_pos_2;
        let i1 = c.link_moi;
        let i2 = c.link_moi;
        let g = c.gravity;
        let a = s[4];
        let [theta1, theta2, dtheta1, dtheta2] = [s[0], s[1], s[2], s[3]];
        // Every `**2` is Python's, i.e. the C library's pow (see `pymath`).
        let d1 =
            m1 * pow2(lc1) + m2 * (pow2(l1) + pow2(lc2) + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
        let d2 = m2 * (pow2(lc2) + l1 * lc2 * theta2.cos()) + i2;
        let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
        let phi1 = -m2 * l1 * lc2 * pow2(dtheta2) * theta2.sin()
            - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
            + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
            + phi2;
        // book_or_nips == "book"
        let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * pow2(dtheta1) * theta2.sin() - phi2)
            / (m2 * pow2(lc2) + i2 - pow2(d2) / d1);
        let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
    }

    /// `rk4(self._dsdt, s_augmented, [0, dt])`: one classic Runge-Kutta step, with
    /// NumPy's element-wise order of operations.
    fn rk4(&self, y0: &[f64; 5]) -> [f64; 5] {
        let dt = self.config.dt - 0.0;
        let dt2 = dt / 2.0;
        let shifted =
            |k: &[f64; 5], h: f64| -> [f64; 5] { std::array::from_fn(|i| y0[i] + h * k[i]) };
        let k1 = self.dsdt(y0);
        let k2 = self.dsdt(&shifted(&k1, dt2));
        let k3 = self.dsdt(&shifted(&k2, dt2));
        let k4 = self.dsdt(&shifted(&k3, dt));
        let w = dt / 6.0;
        std::array::from_fn(|i| y0[i] + w * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
    }
}

impl Dynamics for Acrobot {
    fn id(&self) -> &'static str {
        ID
    }

    fn observation_space(&self) -> Space {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        Space::Box {
            low: high.iter().map(|h| -h).collect(),
            high: high.to_vec(),
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: 3 }
    }

    fn max_episode_steps(&self) -> u32 {
        500
    }

    fn state_dim(&self) -> usize {
        4
    }

    fn reset(&mut self, rng: &mut NpRandom) {
        // self.np_random.uniform(low=-0.1, high=0.1, size=(4,)).astype(np.float32)
        rng.uniform_into(-0.1, 0.1, &mut self.state);
        for s in &mut self.state {
            *s = f64::from(*s as f32);
        }
    }

    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool) {
        let index = match action {
            ActionRef::Discrete(i) => i as usize,
            ActionRef::Continuous(_) => 1,
        };
        let torque = AVAIL_TORQUE.get(index).copied().unwrap_or(0.0);
        let s = self.state;
        let ns = self.rk4(&[s[0], s[1], s[2], s[3], torque]);
        self.state = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            bound(ns[2], -MAX_VEL_1, MAX_VEL_1),
            bound(ns[3], -MAX_VEL_2, MAX_VEL_2),
        ];
        let terminated = self.terminal();
        (if terminated { 0.0 } else { -1.0 }, terminated)
    }

    fn observe(&self, obs: &mut [f32]) {
        let s = &self.state;
        let values = [
            s[0].cos() as f32,
            s[0].sin() as f32,
            s[1].cos() as f32,
            s[1].sin() as f32,
            s[2] as f32,
            s[3] as f32,
        ];
        copy_into(obs, &values);
    }

    fn state(&self, out: &mut [f64]) {
        copy_into(out, &self.state);
    }

    fn set_state(&mut self, state: &[f64]) {
        copy_into(&mut self.state, state);
    }
}

impl Acrobot {
    /// `_terminal`: `-cos θ1 - cos(θ1 + θ2) > 1`, the tip above the line for links of
    /// equal length. Kept as Gymnasium writes it whatever the physics, so that changed
    /// physics still mean what they mean in Gymnasium.
    fn terminal(&self) -> bool {
        let s = &self.state;
        -s[0].cos() - (s[1] + s[0]).cos() > 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_bound() {
        assert_eq!(wrap(0.5, -PI, PI), 0.5);
        assert!((wrap(PI + 0.5, -PI, PI) - (-PI + 0.5)).abs() < 1e-12);
        assert!((wrap(-PI - 0.5, -PI, PI) - (PI - 0.5)).abs() < 1e-12);
        assert_eq!(bound(20.0, -MAX_VEL_1, MAX_VEL_1), MAX_VEL_1);
        assert_eq!(bound(-20.0, -MAX_VEL_1, MAX_VEL_1), -MAX_VEL_1);
        assert_eq!(bound(1.0, -MAX_VEL_1, MAX_VEL_1), 1.0);
    }
}
