//! MountainCar-v0 (`mountain_car.py`) and MountainCarContinuous-v0
//! (`continuous_mountain_car.py`), line by line.

use plasma_protocol::{ActionRef, Space};

use crate::env::{Dynamics, GymEnv, copy_into};
use crate::error::EnvError;
use crate::physics::{Physics, PhysicsConfig};
use crate::pymath::pow2;
use crate::rng::NpRandom;

/// The registered id of the discrete version.
pub const ID: &str = "MountainCar-v0";
/// The registered id of the continuous version.
pub const CONTINUOUS_ID: &str = "MountainCarContinuous-v0";

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;

fn observation_space() -> Space {
    Space::Box {
        low: vec![MIN_POSITION as f32, -MAX_SPEED as f32],
        high: vec![MAX_POSITION as f32, MAX_SPEED as f32],
    }
}

/// Physics of MountainCar-v0; `Default` is Gymnasium's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MountainCarConfig {
    /// Acceleration of a push (`force`, 0.001).
    pub force: f64,
    /// Pull of the slope (`gravity`, 0.0025).
    pub gravity: f64,
}

impl Default for MountainCarConfig {
    fn default() -> Self {
        MountainCarConfig {
            force: 0.001,
            gravity: 0.0025,
        }
    }
}

impl PhysicsConfig for MountainCarConfig {
    const ENV_ID: &'static str = ID;

    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("force", self.force), ("gravity", self.gravity)]
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "force" => &mut self.force,
            "gravity" => &mut self.gravity,
            _ => return None,
        })
    }
}

/// A car in a valley, too weak to drive up: push left (0), nothing (1) or right (2) to
/// reach the flag at 0.5. Reward -1 per step; truncated after 200 steps. State
/// `[position, velocity]` in f64.
#[derive(Debug, Clone)]
pub struct MountainCar {
    config: MountainCarConfig,
    state: [f64; 2],
}

impl MountainCar {
    /// MountainCar with the given physics (validated).
    pub fn new(config: MountainCarConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(MountainCar {
            config,
            state: [0.0; 2],
        })
    }

    /// The environment with the given physics, wrapped as `gymnasium.make` wraps it.
    pub fn env(config: MountainCarConfig) -> Result<GymEnv<Self>, EnvError> {
        Ok(GymEnv::new(Self::new(config)?))
    }

    /// The environment with Gymnasium's physics overridden by `physics`.
    pub fn env_with(physics: &Physics) -> Result<GymEnv<Self>, EnvError> {
        Self::env(MountainCarConfig::from_physics(physics)?)
    }

    /// The physics in use.
    pub fn config(&self) -> &MountainCarConfig {
        &self.config
    }
}

/// `np.clip(x, lo, hi)` on a float64 scalar.
fn clip(x: f64, lo: f64, hi: f64) -> f64 {
    x.max(lo).min(hi)
}

impl Dynamics for MountainCar {
    fn id(&self) -> &'static str {
        ID
    }

    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: 3 }
    }

    fn max_episode_steps(&self) -> u32 {
        200
    }

    fn state_dim(&self) -> usize {
        2
    }

    fn reset(&mut self, rng: &mut NpRandom) {
        // np.array([self.np_random.uniform(low=-0.6, high=-0.4), 0])
        self.state = [rng.uniform(-0.6, -0.4), 0.0];
    }

    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool) {
        let c = &self.config;
        let a = match action {
            ActionRef::Discrete(i) => f64::from(i),
            ActionRef::Continuous(_) => 1.0,
        };
        let [mut position, mut velocity] = self.state;
        velocity += (a - 1.0) * c.force + (3.0 * position).cos() * (-c.gravity);
        velocity = clip(velocity, -MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = clip(position, MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        // goal_position 0.5, goal_velocity 0
        let terminated = position >= 0.5 && velocity >= 0.0;
        self.state = [position, velocity];
        (-1.0, terminated)
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

/// Physics of MountainCarContinuous-v0; `Default` is Gymnasium's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MountainCarContinuousConfig {
    /// Acceleration per unit of action (`power`, 0.0015).
    pub power: f64,
    /// Pull of the slope (the constant 0.0025 in Gymnasium's step).
    pub gravity: f64,
}

impl Default for MountainCarContinuousConfig {
    fn default() -> Self {
        MountainCarContinuousConfig {
            power: 0.0015,
            gravity: 0.0025,
        }
    }
}

impl PhysicsConfig for MountainCarContinuousConfig {
    const ENV_ID: &'static str = CONTINUOUS_ID;

    fn params(&self) -> Vec<(&'static str, f64)> {
        vec![("power", self.power), ("gravity", self.gravity)]
    }

    fn param_mut(&mut self, name: &str) -> Option<&mut f64> {
        Some(match name {
            "power" => &mut self.power,
            "gravity" => &mut self.gravity,
            _ => return None,
        })
    }
}

/// A number with the NumPy 2 type it has in Gymnasium's step, because the continuous
/// mountain car mixes float32, float64 and Python floats, and the rounding follows the
/// types (NEP 50: a Python float adopts a NumPy float's precision; float64 wins over
/// float32).
#[derive(Debug, Clone, Copy)]
enum Num {
    /// `np.float64`.
    F64(f64),
    /// `np.float32`.
    F32(f32),
    /// A Python `float` (or `int`): double precision, but weak.
    Py(f64),
}

/// The precision an operation between two numbers runs at.
#[derive(Clone, Copy, PartialEq)]
enum Prec {
    F64,
    F32,
    Py,
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::F64(v) | Num::Py(v) => v,
            Num::F32(v) => f64::from(v),
        }
    }

    fn as_f32(self) -> f32 {
        match self {
            Num::F32(v) => v,
            Num::F64(v) | Num::Py(v) => v as f32,
        }
    }

    fn promote(a: Num, b: Num) -> Prec {
        match (a, b) {
            (Num::F64(_), _) | (_, Num::F64(_)) => Prec::F64,
            (Num::F32(_), _) | (_, Num::F32(_)) => Prec::F32,
            _ => Prec::Py,
        }
    }

    fn binary(a: Num, b: Num, op64: fn(f64, f64) -> f64, op32: fn(f32, f32) -> f32) -> Num {
        match Num::promote(a, b) {
            Prec::F64 => Num::F64(op64(a.value(), b.value())),
            Prec::Py => Num::Py(op64(a.value(), b.value())),
            Prec::F32 => Num::F32(op32(a.as_f32(), b.as_f32())),
        }
    }

    fn add(self, b: Num) -> Num {
        Num::binary(self, b, |x, y| x + y, |x, y| x + y)
    }

    fn sub(self, b: Num) -> Num {
        Num::binary(self, b, |x, y| x - y, |x, y| x - y)
    }

    fn mul(self, b: Num) -> Num {
        Num::binary(self, b, |x, y| x * y, |x, y| x * y)
    }

    /// `self > b`, compared at the promoted precision.
    fn gt(self, b: Num) -> bool {
        match Num::promote(self, b) {
            Prec::F32 => self.as_f32() > b.as_f32(),
            _ => self.value() > b.value(),
        }
    }

    fn lt(self, b: Num) -> bool {
        b.gt(self)
    }

    fn ge(self, b: Num) -> bool {
        match Num::promote(self, b) {
            Prec::F32 => self.as_f32() >= b.as_f32(),
            _ => self.value() >= b.value(),
        }
    }

    fn eq(self, b: Num) -> bool {
        match Num::promote(self, b) {
            Prec::F32 => self.as_f32() == b.as_f32(),
            _ => self.value() == b.value(),
        }
    }
}

/// MountainCar with a continuous push in `[-1, 1]`: reward `-0.1·action²` per step (on
/// the unclipped action) and +100 on reaching the flag at 0.45; truncated after 999
/// steps. State `[position, velocity]`: f64 after a reset or `set_state`, f32 after a
/// step, exactly as Gymnasium stores it.
#[derive(Debug, Clone)]
pub struct MountainCarContinuous {
    config: MountainCarContinuousConfig,
    state: [f64; 2],
    /// The state is a float32 array (it is after every step).
    single: bool,
}

impl MountainCarContinuous {
    /// MountainCarContinuous with the given physics (validated).
    pub fn new(config: MountainCarContinuousConfig) -> Result<Self, EnvError> {
        config.validate()?;
        Ok(MountainCarContinuous {
            config,
            state: [0.0; 2],
            single: false,
        })
    }

    /// The environment with the given physics, wrapped as `gymnasium.make` wraps it.
    pub fn env(config: MountainCarContinuousConfig) -> Result<GymEnv<Self>, EnvError> {
        Ok(GymEnv::new(Self::new(config)?))
    }

    /// The environment with Gymnasium's physics overridden by `physics`.
    pub fn env_with(physics: &Physics) -> Result<GymEnv<Self>, EnvError> {
        Self::env(MountainCarContinuousConfig::from_physics(physics)?)
    }

    /// The physics in use.
    pub fn config(&self) -> &MountainCarContinuousConfig {
        &self.config
    }
}

impl Dynamics for MountainCarContinuous {
    fn id(&self) -> &'static str {
        CONTINUOUS_ID
    }

    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Space::Box {
            low: vec![-1.0],
            high: vec![1.0],
        }
    }

    fn max_episode_steps(&self) -> u32 {
        999
    }

    fn state_dim(&self) -> usize {
        2
    }

    fn reset(&mut self, rng: &mut NpRandom) {
        // np.array([self.np_random.uniform(low=-0.6, high=-0.4), 0])
        self.state = [rng.uniform(-0.6, -0.4), 0.0];
        self.single = false;
    }

    fn step(&mut self, action: ActionRef<'_>) -> (f64, bool) {
        let c = &self.config;
        let a = match action {
            ActionRef::Continuous(values) => values.first().copied().unwrap_or(0.0),
            ActionRef::Discrete(_) => 0.0,
        };
        let (mut position, mut velocity) = if self.single {
            (
                Num::F32(self.state[0] as f32),
                Num::F32(self.state[1] as f32),
            )
        } else {
            (Num::F64(self.state[0]), Num::F64(self.state[1]))
        };
        let max_speed = Num::Py(MAX_SPEED);
        let min_position = Num::Py(MIN_POSITION);
        let max_position = Num::Py(MAX_POSITION);

        // force = min(max(action[0], self.min_action), self.max_action)
        let mut force = Num::F32(a);
        if Num::Py(-1.0).gt(force) {
            force = Num::Py(-1.0);
        }
        if Num::Py(1.0).lt(force) {
            force = Num::Py(1.0);
        }
        // velocity += force * self.power - 0.0025 * math.cos(3 * position)
        let slope = Num::Py(c.gravity * Num::Py(3.0).mul(position).value().cos());
        velocity = velocity.add(force.mul(Num::Py(c.power)).sub(slope));
        if velocity.gt(max_speed) {
            velocity = max_speed;
        }
        if velocity.lt(Num::Py(-MAX_SPEED)) {
            velocity = Num::Py(-MAX_SPEED);
        }
        position = position.add(velocity);
        if position.gt(max_position) {
            position = max_position;
        }
        if position.lt(min_position) {
            position = min_position;
        }
        if position.eq(min_position) && velocity.lt(Num::Py(0.0)) {
            velocity = Num::Py(0.0);
        }
        // goal_position 0.45, goal_velocity 0
        let terminated = position.ge(Num::Py(0.45)) && velocity.ge(Num::Py(0.0));
        let mut reward = if terminated { 100.0 } else { 0.0 };
        reward -= pow2(f64::from(a)) * 0.1; // math.pow(action[0], 2) * 0.1
        // self.state = np.array([position, velocity], dtype=np.float32)
        self.state = [f64::from(position.as_f32()), f64::from(velocity.as_f32())];
        self.single = true;
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
        self.single = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_promotion_rules() {
        // np.float32 op Python float stays float32; float64 wins over float32.
        assert!(matches!(Num::F32(1.0).mul(Num::Py(0.0015)), Num::F32(_)));
        assert!(matches!(Num::F64(1.0).add(Num::F32(1.0)), Num::F64(_)));
        assert!(matches!(Num::Py(1.0).sub(Num::Py(1.0)), Num::Py(_)));
        // np.float32(-1.2) == -1.2 is True in NumPy 2; np.float32(0.45) >= 0.45 too.
        assert!(Num::F32(-1.2).eq(Num::Py(-1.2)));
        assert!(!Num::F32(-1.2).lt(Num::Py(-1.2)));
        assert!(Num::F32(0.45).ge(Num::Py(0.45)));
        assert!(!Num::F64(f64::from(0.45_f32)).ge(Num::Py(0.45)));
    }
}
