//! Reference environments for Plasma, exact to Gymnasium, with adjustable physics.
//!
//! These are the "real world" in which demo agents, end-to-end tests and learning
//! benchmarks act: CartPole-v1, Pendulum-v1, Acrobot-v1, MountainCar-v0 and
//! MountainCarContinuous-v0, ported line by line from Gymnasium 1.x's
//! `classic_control` package, so that a result measured here means what it means there.
//!
//! - Same dynamics, rewards, termination and time limits as `gymnasium.make(id)`; the
//!   physics run in f64 and observations are f32, with Gymnasium's roundings.
//! - `reset(Some(seed))` draws the same initial state as `env.reset(seed=seed)`: the
//!   [`rng`] module is NumPy's `SeedSequence` + `PCG64` + `Generator.uniform`, bit for bit.
//! - Physics parameters can be changed ([`Physics`], [`make_with`], the config structs)
//!   for adaptation experiments; defaults are Gymnasium's.
//! - [`VectorEnv`] steps many copies with same-step autoreset, without allocating.
//!
//! Parity with Gymnasium is checked step by step against trajectories recorded from
//! Gymnasium itself (`tests/it/parity.rs`, `fixtures/`).
//!
//! ```
//! use plasma_envs::{ActionRef, Env, Physics, make, make_with};
//!
//! let mut env = make("Pendulum-v1").unwrap();
//! env.reset(Some(0));
//! let step = env.step(ActionRef::Continuous(&[0.5])).unwrap();
//! assert!(!step.terminated);
//!
//! // A heavier pendulum on Mars.
//! let mars = Physics::new().with("g", 3.71).with("m", 2.0);
//! let mut env = make_with("Pendulum-v1", &mars).unwrap();
//! env.reset(Some(0));
//!
//! // Bad input is a typed error, never a panic.
//! assert!(env.step(ActionRef::Continuous(&[f32::NAN])).is_err());
//! assert!(make_with("Pendulum-v1", &Physics::new().with("g", -1.0)).is_err());
//! ```

pub mod acrobot;
pub mod cartpole;
mod env;
mod error;
pub mod mountain_car;
pub mod pendulum;
mod physics;
mod pymath;
mod registry;
pub mod rng;
mod vector;

pub use acrobot::{Acrobot, AcrobotConfig};
pub use cartpole::{CartPole, CartPoleConfig};
pub use env::{Dynamics, Env, GymEnv, Step, StepOutcome};
pub use error::EnvError;
pub use mountain_car::{
    MountainCar, MountainCarConfig, MountainCarContinuous, MountainCarContinuousConfig,
};
pub use pendulum::{Pendulum, PendulumConfig};
pub use physics::{Physics, PhysicsConfig};
pub use plasma_protocol::{Action, ActionError, ActionRef, Space, TaskSpec, Termination};
pub use registry::{ENV_IDS, default_physics, make, make_vec, make_with, task_spec};
pub use vector::{BatchActions, VectorEnv};
