//! The vector environment: same-step autoreset, deterministic seeds, atomic errors.

use plasma_envs::{ActionRef, BatchActions, Env, EnvError, Physics, VectorEnv, make, make_vec};

/// A tiny deterministic action source, so that tests need no RNG crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 5_000.0 - 1.0
    }
}

/// Steps a vector env and N single envs with the same actions and checks they agree:
/// environment `i` must behave as a single env reset with `seed + i`, then reset without
/// a seed each time its episode ends.
fn agrees_with_single_envs(id: &str, n: usize, seed: u64, steps: usize) {
    let mut vec_env = make_vec(id, n, &Physics::new()).unwrap();
    let mut singles: Vec<_> = (0..n).map(|_| make(id).unwrap()).collect();
    let dim = vec_env.obs_dim();
    let first = vec_env.reset(Some(seed)).unwrap().to_vec();
    for (i, env) in singles.iter_mut().enumerate() {
        assert_eq!(
            env.reset(Some(seed + i as u64)),
            first[i * dim..(i + 1) * dim]
        );
    }

    let discrete = vec_env.single_action_space().is_discrete();
    let act_dim = vec_env.single_action_space().dim();
    let mut lcg = Lcg(seed);
    let mut ended = 0;
    for _ in 0..steps {
        let indices: Vec<u32> = (0..n).map(|_| (lcg.next() % 2) as u32).collect();
        let values: Vec<f32> = (0..n * act_dim).map(|_| lcg.unit()).collect();
        let batch = if discrete {
            BatchActions::Discrete(&indices)
        } else {
            BatchActions::Continuous(&values)
        };
        vec_env.step(batch).unwrap();
        for (i, env) in singles.iter_mut().enumerate() {
            let action = if discrete {
                ActionRef::Discrete(indices[i])
            } else {
                ActionRef::Continuous(&values[i * act_dim..(i + 1) * act_dim])
            };
            let step = env.step(action).unwrap();
            let row = i * dim..(i + 1) * dim;
            assert_eq!(vec_env.rewards()[i], step.reward);
            assert_eq!(vec_env.terminated()[i], step.terminated);
            assert_eq!(vec_env.truncated()[i], step.truncated);
            if step.done() {
                ended += 1;
                assert_eq!(
                    &vec_env.final_observations()[row.clone()],
                    step.obs.as_slice()
                );
                let next = env.reset(None);
                assert_eq!(&vec_env.observations()[row], next.as_slice());
            } else {
                assert_eq!(&vec_env.observations()[row], step.obs.as_slice());
            }
        }
    }
    assert!(ended > 0, "{id}: no episode ended in {steps} steps");
}

#[test]
fn cartpole_vector_matches_single_envs() {
    agrees_with_single_envs("CartPole-v1", 8, 7, 300);
}

#[test]
fn pendulum_vector_matches_single_envs() {
    agrees_with_single_envs("Pendulum-v1", 4, 100, 450);
}

#[test]
fn mountain_car_continuous_vector_matches_single_envs() {
    agrees_with_single_envs("MountainCarContinuous-v0", 3, 5, 1000);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut v = make_vec("Acrobot-v1", 5, &Physics::new()).unwrap();
        v.reset(Some(seed)).unwrap();
        let actions = [0, 1, 2, 1, 0];
        for _ in 0..50 {
            v.step(BatchActions::Discrete(&actions)).unwrap();
        }
        v.observations().to_vec()
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
}

#[test]
fn errors_are_typed_and_leave_every_env_unmoved() {
    let mut v = make_vec("CartPole-v1", 4, &Physics::new()).unwrap();
    assert_eq!(
        v.step(BatchActions::Discrete(&[0, 1, 0, 1])),
        Err(EnvError::ResetNeeded)
    );
    v.reset(Some(0)).unwrap();
    let before: Vec<Vec<f64>> = v.envs().iter().map(|e| e.state()).collect();
    assert_eq!(
        v.step(BatchActions::Discrete(&[0, 1, 0])),
        Err(EnvError::BatchSize {
            expected: 4,
            found: 3
        })
    );
    assert!(matches!(
        v.step(BatchActions::Discrete(&[0, 1, 2, 1])),
        Err(EnvError::InvalidBatchAction { index: 2, .. })
    ));
    assert!(matches!(
        v.step(BatchActions::Continuous(&[0.0; 4])),
        Err(EnvError::BatchSize { .. }) | Err(EnvError::InvalidBatchAction { .. })
    ));
    let after: Vec<Vec<f64>> = v.envs().iter().map(|e| e.state()).collect();
    assert_eq!(before, after);

    let mut p = make_vec("Pendulum-v1", 2, &Physics::new()).unwrap();
    p.reset(Some(0)).unwrap();
    assert!(matches!(
        p.step(BatchActions::Continuous(&[0.0, f32::NAN])),
        Err(EnvError::InvalidBatchAction { index: 1, .. })
    ));
    assert!(matches!(
        p.step(BatchActions::Discrete(&[0, 0])),
        Err(EnvError::InvalidBatchAction { index: 0, .. })
    ));
}

#[test]
fn construction_errors() {
    assert!(matches!(
        make_vec("CartPole-v1", 0, &Physics::new()),
        Err(EnvError::EmptyVector)
    ));
    let mixed = vec![make("CartPole-v1").unwrap(), make("Acrobot-v1").unwrap()];
    assert!(matches!(
        VectorEnv::new(mixed),
        Err(EnvError::MixedSpaces { index: 1 })
    ));
    assert!(matches!(
        make_vec("Nope-v0", 2, &Physics::new()),
        Err(EnvError::UnknownEnv { .. })
    ));
}
