//! `gymnasium.make` for the reference environments.

use plasma_protocol::TaskSpec;

use crate::acrobot::{self, Acrobot, AcrobotConfig};
use crate::cartpole::{self, CartPole, CartPoleConfig};
use crate::env::Env;
use crate::error::EnvError;
use crate::mountain_car::{
    self, MountainCar, MountainCarConfig, MountainCarContinuous, MountainCarContinuousConfig,
};
use crate::pendulum::{self, Pendulum, PendulumConfig};
use crate::physics::{Physics, PhysicsConfig};
use crate::vector::VectorEnv;

/// The registered ids, as in Gymnasium.
pub const ENV_IDS: [&str; 5] = [
    cartpole::ID,
    pendulum::ID,
    acrobot::ID,
    mountain_car::ID,
    mountain_car::CONTINUOUS_ID,
];

fn unknown(id: &str) -> EnvError {
    EnvError::UnknownEnv {
        id: id.to_owned(),
        known: ENV_IDS.join(", "),
    }
}

/// `gymnasium.make(id)`: the environment with Gymnasium's physics and time limit.
///
/// ```
/// use plasma_envs::{ActionRef, make};
/// let mut env = make("CartPole-v1").unwrap();
/// let obs = env.reset(Some(42));
/// let step = env.step(ActionRef::Discrete(1)).unwrap();
/// assert_eq!(obs.len(), 4);
/// assert_eq!(step.reward, 1.0);
/// assert!(make("CartPole-v9").is_err());
/// ```
pub fn make(id: &str) -> Result<Box<dyn Env + Send>, EnvError> {
    make_with(id, &Physics::new())
}

/// [`make`] with physics parameters overridden (see each environment's config struct
/// for the names and defaults). Unknown names and values that are not positive and
/// finite are refused.
pub fn make_with(id: &str, physics: &Physics) -> Result<Box<dyn Env + Send>, EnvError> {
    Ok(match id {
        cartpole::ID => Box::new(CartPole::env_with(physics)?),
        pendulum::ID => Box::new(Pendulum::env_with(physics)?),
        acrobot::ID => Box::new(Acrobot::env_with(physics)?),
        mountain_car::ID => Box::new(MountainCar::env_with(physics)?),
        mountain_car::CONTINUOUS_ID => Box::new(MountainCarContinuous::env_with(physics)?),
        _ => return Err(unknown(id)),
    })
}

/// `num_envs` copies of [`make_with`]`(id, physics)` as one [`VectorEnv`].
pub fn make_vec(
    id: &str,
    num_envs: usize,
    physics: &Physics,
) -> Result<VectorEnv<Box<dyn Env + Send>>, EnvError> {
    let envs = (0..num_envs)
        .map(|_| make_with(id, physics))
        .collect::<Result<Vec<_>, _>>()?;
    VectorEnv::new(envs)
}

/// The task spec of a registered environment (with Gymnasium's physics).
pub fn task_spec(id: &str) -> Result<TaskSpec, EnvError> {
    Ok(make(id)?.spec())
}

/// The physics parameters of a registered environment and their default values.
pub fn default_physics(id: &str) -> Result<Vec<(&'static str, f64)>, EnvError> {
    Ok(match id {
        cartpole::ID => CartPoleConfig::default().params(),
        pendulum::ID => PendulumConfig::default().params(),
        acrobot::ID => AcrobotConfig::default().params(),
        mountain_car::ID => MountainCarConfig::default().params(),
        mountain_car::CONTINUOUS_ID => MountainCarContinuousConfig::default().params(),
        _ => return Err(unknown(id)),
    })
}
