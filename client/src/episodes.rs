//! Episodes of a reference environment (plasma-envs) driven by any policy: evaluation of
//! packets (`plasma-client eval`) and collection of real experience for upload.

use plasma_envs::{ActionRef, Physics, make_with};
use plasma_packets::OwnedAction;
use plasma_protocol::{Action, Transition};

use crate::error::{ClientError, Result};

/// Runs `episodes` episodes of `env_id` under `physics` (reset seeds `seed`, `seed + 1`, …),
/// choosing actions with `policy`, handing every transition to `record`; returns each
/// episode's return.
pub fn run_episodes(
    env_id: &str,
    physics: &Physics,
    episodes: usize,
    seed: u64,
    mut policy: impl FnMut(&[f32]) -> Result<OwnedAction>,
    mut record: impl FnMut(Transition),
) -> Result<Vec<f64>> {
    let mut env = make_with(env_id, physics).map_err(|e| ClientError::Invalid(e.to_string()))?;
    let mut returns = Vec::with_capacity(episodes);
    for i in 0..episodes {
        let mut obs = env.reset(Some(seed.wrapping_add(i as u64)));
        let mut total = 0.0;
        loop {
            let action = policy(&obs)?;
            let step = match &action {
                OwnedAction::Discrete(a) => env.step(ActionRef::Discrete(*a)),
                OwnedAction::Continuous(v) => env.step(ActionRef::Continuous(v)),
            }
            .map_err(|e| ClientError::Invalid(format!("environment step: {e}")))?;
            total += step.reward;
            let done = step.done();
            record(Transition {
                obs: std::mem::take(&mut obs),
                action: match action {
                    OwnedAction::Discrete(a) => Action::Discrete(a),
                    OwnedAction::Continuous(v) => Action::Continuous(v),
                },
                reward: step.reward,
                next_obs: step.obs.clone(),
                terminated: step.terminated,
                truncated: step.truncated,
            });
            if done {
                break;
            }
            obs = step.obs;
        }
        returns.push(total);
    }
    Ok(returns)
}

/// `steps` real transitions of `env_id` under uniformly random actions of its action space
/// (xorshift, seeded; episode `k` resets with `seed + k`): exploration before any policy.
pub fn random_experience(
    env_id: &str,
    physics: &Physics,
    steps: usize,
    seed: u64,
) -> Result<Vec<Transition>> {
    let space = plasma_envs::task_spec(env_id)
        .map_err(|e| ClientError::Invalid(e.to_string()))?
        .action_space;
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(steps);
    let mut episode = 0;
    while out.len() < steps {
        run_episodes(
            env_id,
            physics,
            1,
            seed.wrapping_add(episode),
            |_| {
                Ok(match &space {
                    plasma_protocol::Space::Discrete { n } => {
                        OwnedAction::Discrete(((uniform() * f64::from(*n)) as u32).min(n - 1))
                    }
                    plasma_protocol::Space::Box { low, high } => OwnedAction::Continuous(
                        low.iter()
                            .zip(high)
                            .map(|(&l, &h)| {
                                let (l, h) = if l.is_finite() && h.is_finite() {
                                    (f64::from(l), f64::from(h))
                                } else {
                                    (-1.0, 1.0)
                                };
                                (l + (h - l) * uniform()) as f32
                            })
                            .collect(),
                    ),
                })
            },
            |t| out.push(t),
        )?;
        episode += 1;
    }
    out.truncate(steps);
    Ok(out)
}

/// Parses `name=value[,name=value…]` physics changes (plasma-envs names).
pub fn parse_physics(text: &str) -> Result<Physics> {
    let mut physics = Physics::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(|| {
            ClientError::Invalid(format!("physics change {pair:?}: use name=value"))
        })?;
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| ClientError::Invalid(format!("physics value {value:?}")))?;
        physics.set(name.trim(), value);
    }
    Ok(physics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_record_every_transition_and_physics_change_the_dynamics() {
        let mut seen = Vec::new();
        let push_right = |_: &[f32]| Ok(OwnedAction::Discrete(1));
        let returns = run_episodes("CartPole-v1", &Physics::new(), 3, 7, push_right, |t| {
            seen.push(t)
        })
        .unwrap();
        assert_eq!(returns.len(), 3);
        assert_eq!(seen.len() as f64, returns.iter().sum::<f64>());
        assert!(seen.iter().filter(|t| t.terminated).count() == 3);
        assert!(
            seen.windows(2)
                .all(|w| w[0].terminated || w[0].next_obs == w[1].obs)
        );
        let heavy = parse_physics("gravity=50").unwrap();
        let mut first = None;
        run_episodes("CartPole-v1", &heavy, 1, 7, push_right, |t| {
            first.get_or_insert(t);
        })
        .unwrap();
        let first = first.unwrap();
        assert_eq!(first.obs, seen[0].obs, "same reset");
        assert_ne!(first.next_obs, seen[0].next_obs, "other dynamics");
        assert!(parse_physics("gravity").is_err());
        assert!(parse_physics("gravity=x").is_err());
        assert!(run_episodes("Nope-v0", &Physics::new(), 1, 0, push_right, |_| {}).is_err());

        let random = random_experience("CartPole-v1", &Physics::new(), 300, 3).unwrap();
        assert_eq!(random.len(), 300);
        assert!(random.iter().any(|t| t.action == Action::Discrete(0)));
        assert!(random.iter().any(|t| t.action == Action::Discrete(1)));
        let torques = random_experience("Pendulum-v1", &Physics::new(), 50, 3).unwrap();
        assert!(torques.iter().all(
            |t| matches!(&t.action, Action::Continuous(v) if v.len() == 1 && v[0].abs() <= 2.0)
        ));
    }
}
