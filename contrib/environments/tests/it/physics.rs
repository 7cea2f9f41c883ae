//! Adjustable physics change the dynamics the way physics says they should.
//!
//! (That Gymnasium's own classes, with the same attributes changed, give the same
//! trajectories is checked by the "physics" runs of the fixtures in `tests/it/parity.rs`.)

use plasma_envs::{ActionRef, ENV_IDS, Env, EnvError, Physics, default_physics, make_with};

/// Steps until the episode ends, from `state`, with `policy(obs, t)`.
fn steps_to_end(
    id: &str,
    physics: &Physics,
    state: &[f64],
    policy: impl Fn(&[f32], usize) -> ActionOwned,
) -> usize {
    let mut env = make_with(id, physics).unwrap();
    env.reset(Some(0));
    env.set_state(state).unwrap();
    let mut obs = vec![0.0; env.observation_space().dim()];
    env.observe_into(&mut obs).unwrap();
    for t in 0.. {
        let action = policy(&obs, t);
        let step = env.step(action.as_ref()).unwrap();
        if step.done() {
            return t + 1;
        }
        obs = step.obs;
    }
    unreachable!()
}

enum ActionOwned {
    Discrete(u32),
    Continuous([f32; 1]),
}

impl ActionOwned {
    fn as_ref(&self) -> ActionRef<'_> {
        match self {
            ActionOwned::Discrete(i) => ActionRef::Discrete(*i),
            ActionOwned::Continuous(v) => ActionRef::Continuous(v),
        }
    }
}

fn alternate(_: &[f32], t: usize) -> ActionOwned {
    ActionOwned::Discrete((t % 2) as u32)
}

#[test]
fn longer_pole_falls_slower() {
    let tilted = [0.0, 0.0, 0.05, 0.0];
    let default = steps_to_end("CartPole-v1", &Physics::new(), &tilted, alternate);
    let longer = steps_to_end(
        "CartPole-v1",
        &Physics::new().with("length", 1.0),
        &tilted,
        alternate,
    );
    assert!(
        longer > default,
        "longer pole fell in {longer} steps, default in {default}"
    );
}

#[test]
fn stronger_gravity_fells_the_pole_sooner() {
    let tilted = [0.0, 0.0, 0.05, 0.0];
    let default = steps_to_end("CartPole-v1", &Physics::new(), &tilted, alternate);
    let heavy = steps_to_end(
        "CartPole-v1",
        &Physics::new().with("gravity", 20.0),
        &tilted,
        alternate,
    );
    assert!(heavy < default, "{heavy} vs {default}");
}

#[test]
fn stronger_push_moves_the_cart_faster() {
    let x_dot_after_push = |physics: &Physics| {
        let mut env = make_with("CartPole-v1", physics).unwrap();
        env.reset(Some(0));
        env.set_state(&[0.0; 4]).unwrap();
        env.step(ActionRef::Discrete(1)).unwrap();
        env.step(ActionRef::Discrete(1)).unwrap().obs[1]
    };
    let default = x_dot_after_push(&Physics::new());
    let strong = x_dot_after_push(&Physics::new().with("force_mag", 20.0));
    let heavy_cart = x_dot_after_push(&Physics::new().with("masscart", 3.0));
    assert!(
        strong > default && default > heavy_cart,
        "{strong} {default} {heavy_cart}"
    );
}

/// Angular speed after `steps` steps of `torque` from `state`.
fn pendulum_speed(physics: &Physics, state: [f64; 2], torque: f32, steps: usize) -> f64 {
    let mut env = make_with("Pendulum-v1", physics).unwrap();
    env.reset(Some(0));
    env.set_state(&state).unwrap();
    for _ in 0..steps {
        env.step(ActionRef::Continuous(&[torque])).unwrap();
    }
    env.state()[1]
}

#[test]
fn pendulum_responds_to_gravity_mass_length_and_torque_limit() {
    let tilted = [0.3, 0.0];
    let base = pendulum_speed(&Physics::new(), tilted, 0.0, 5);
    assert!(base > 0.0, "the pendulum falls away from upright");
    let strong_g = pendulum_speed(&Physics::new().with("g", 20.0), tilted, 0.0, 5);
    assert!(strong_g > base);
    let long = pendulum_speed(&Physics::new().with("l", 2.0), tilted, 0.0, 5);
    assert!(long < base, "a longer pendulum falls slower");

    let at_rest = [std::f64::consts::PI, 0.0];
    let push = pendulum_speed(&Physics::new(), at_rest, 3.0, 1);
    let push_clipped_at_2 = pendulum_speed(&Physics::new(), at_rest, 2.0, 1);
    assert_eq!(push, push_clipped_at_2, "default torque limit is 2");
    let wider = pendulum_speed(&Physics::new().with("max_torque", 3.0), at_rest, 3.0, 1);
    assert!(wider > push);
    let heavy = pendulum_speed(&Physics::new().with("m", 2.0), at_rest, 2.0, 1);
    assert!(heavy < push, "the same torque moves a heavier bob less");

    let capped = pendulum_speed(&Physics::new().with("max_speed", 1.0), at_rest, 2.0, 50);
    assert!(capped <= 1.0);
}

#[test]
fn acrobot_link_masses_change_the_swing() {
    let swing = |physics: &Physics| {
        let mut env = make_with("Acrobot-v1", physics).unwrap();
        env.reset(Some(0));
        env.set_state(&[0.3, 0.0, 0.0, 0.0]).unwrap();
        env.step(ActionRef::Discrete(1)).unwrap();
        env.state()
    };
    let base = swing(&Physics::new());
    assert!(base[2] < 0.0, "a tilted acrobot swings back");
    let weak_gravity = swing(&Physics::new().with("gravity", 1e-6));
    assert!(weak_gravity[2].abs() < 1e-6, "without gravity it stays put");
    let heavy = swing(&Physics::new().with("link_mass_2", 3.0));
    assert_ne!(heavy, base);
}

fn pump(obs: &[f32], _: usize) -> ActionOwned {
    ActionOwned::Discrete(if obs[1] >= 0.0 { 2 } else { 0 })
}

fn pump_continuous(obs: &[f32], _: usize) -> ActionOwned {
    ActionOwned::Continuous([if obs[1] >= 0.0 { 1.0 } else { -1.0 }])
}

#[test]
fn stronger_engines_reach_the_flag_sooner() {
    let start = [-0.5, 0.0];
    let base = steps_to_end("MountainCar-v0", &Physics::new(), &start, pump);
    let strong = steps_to_end(
        "MountainCar-v0",
        &Physics::new().with("force", 0.0015),
        &start,
        pump,
    );
    assert!(strong < base, "{strong} vs {base}");

    // Full throttle straight up the hill fails under Gymnasium's gravity (the episode
    // runs into the time limit) and succeeds on a gentler slope.
    let full_right = |_: &[f32], _: usize| ActionOwned::Discrete(2);
    let steep = steps_to_end("MountainCar-v0", &Physics::new(), &start, full_right);
    assert_eq!(steep, 200);
    let gentle = steps_to_end(
        "MountainCar-v0",
        &Physics::new().with("gravity", 0.0005),
        &start,
        full_right,
    );
    assert!(gentle < 200, "{gentle}");

    let base = steps_to_end(
        "MountainCarContinuous-v0",
        &Physics::new(),
        &start,
        pump_continuous,
    );
    let strong = steps_to_end(
        "MountainCarContinuous-v0",
        &Physics::new().with("power", 0.0025),
        &start,
        pump_continuous,
    );
    assert!(strong < base, "{strong} vs {base}");
}

#[test]
fn bad_physics_is_a_typed_error() {
    for id in ENV_IDS {
        let params = default_physics(id).unwrap();
        assert!(!params.is_empty());
        for (name, default) in &params {
            assert!(*default > 0.0 && default.is_finite());
            for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let err = make_with(id, &Physics::new().with(*name, bad)).err();
                assert!(
                    matches!(err, Some(EnvError::InvalidParameter { name: n, .. }) if n == *name),
                    "{id} {name}={bad}: {err:?}"
                );
            }
        }
        let err = make_with(id, &Physics::new().with("warp_drive", 1.0)).err();
        assert!(
            matches!(err, Some(EnvError::UnknownParameter { .. })),
            "{id}: {err:?}"
        );
    }
}
