//! Step-by-step parity with Gymnasium.
//!
//! Every fixture in `fixtures/` was recorded from `gymnasium.make(id)` by
//! `scripts/make_fixtures.py`. Each episode is replayed here with the same seed (or the
//! same raw state) and the same actions, and compared:
//!
//! - the reset observation and the raw state after `reset(seed)`: **bitwise** (the seeding
//!   is NumPy's, bit for bit);
//! - every observation and reward: `|ours - gym| <= 1e-5 * max(1, |gym|)`;
//! - `terminated` and `truncated`: exactly.
//!
//! On Linux with glibc (where the fixtures were recorded, and where NumPy and Rust share
//! the C library's `sin`, `cos` and `pow`) every value is in fact bitwise equal, and
//! `bitwise_equal_on_glibc` checks that; elsewhere the tolerance applies. The counts are
//! printed with `--nocapture`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use plasma_envs::{Action, ENV_IDS, Env, Physics, Space, default_physics, make, make_with};
use serde::Deserialize;

/// Relative tolerance, with an absolute floor of the same size for values below 1.
const TOL: f64 = 1e-5;

#[derive(Deserialize)]
struct Fixture {
    schema: u32,
    env_id: String,
    gymnasium: String,
    numpy: String,
    max_episode_steps: u32,
    observation_space: Space,
    action_space: Space,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    name: String,
    physics: BTreeMap<String, f64>,
    episodes: Vec<Episode>,
}

#[derive(Deserialize)]
struct Episode {
    seed: Option<u64>,
    reset_obs: Vec<f32>,
    reset_state: Vec<f64>,
    set_state: Option<Vec<f64>>,
    set_obs: Option<Vec<f32>>,
    actions: Vec<Action>,
    obs: Vec<Vec<f32>>,
    rewards: Vec<f64>,
    terminated: Vec<u8>,
    truncated: Vec<u8>,
}

fn fixture_path(id: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{id}.json"))
}

fn load(id: &str) -> Fixture {
    let path = fixture_path(id);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    assert_eq!(fixture.schema, 1);
    assert_eq!(fixture.env_id, id);
    fixture
}

fn close(ours: f64, gym: f64) -> bool {
    (ours - gym).abs() <= TOL * gym.abs().max(1.0)
}

#[derive(Default)]
struct Tally {
    steps: usize,
    values: usize,
    exact: usize,
    worst: f64,
    terminated: usize,
    truncated: usize,
}

impl Tally {
    fn value(&mut self, ours: f64, gym: f64, what: &dyn Fn() -> String) {
        assert!(
            close(ours, gym),
            "{}: ours {ours} vs Gymnasium {gym}",
            what()
        );
        self.values += 1;
        if ours.to_bits() != gym.to_bits() {
            eprintln!("INEXACT {} {ours:e} {gym:e}", what());
        }
        if ours.to_bits() == gym.to_bits() {
            self.exact += 1;
        }
        self.worst = self.worst.max((ours - gym).abs() / gym.abs().max(1.0));
    }
}

/// Replays every run of the fixture of `id` on environments built with `physics_for(run)`.
fn replay(id: &str, physics_for: &dyn Fn(&Run) -> Physics) -> Tally {
    let fixture = load(id);
    let mut tally = Tally::default();
    for run in &fixture.runs {
        let physics = physics_for(run);
        let mut env = make_with(id, &physics).unwrap();
        assert_eq!(env.max_episode_steps(), Some(fixture.max_episode_steps));
        for (e, ep) in run.episodes.iter().enumerate() {
            let at = |what: &str| format!("{id} run {:?} episode {e}: {what}", run.name);

            let obs = env.reset(ep.seed);
            assert_eq!(obs, ep.reset_obs, "{}", at("reset observation"));
            assert_eq!(env.state(), ep.reset_state, "{}", at("state after reset"));

            if let Some(state) = &ep.set_state {
                env.set_state(state).unwrap();
                let mut obs = vec![0.0; env.observation_space().dim()];
                env.observe_into(&mut obs).unwrap();
                let expected = ep
                    .set_obs
                    .as_ref()
                    .expect("set_obs recorded with set_state");
                for (i, (&o, &g)) in obs.iter().zip(expected).enumerate() {
                    tally.value(f64::from(o), f64::from(g), &|| at(&format!("set obs[{i}]")));
                }
            }

            let n = ep.actions.len();
            assert!(n > 0, "{}", at("no step recorded"));
            assert_eq!(ep.obs.len(), n);
            assert_eq!(ep.rewards.len(), n);
            assert_eq!(ep.terminated.len(), n);
            assert_eq!(ep.truncated.len(), n);
            for t in 0..n {
                let step = env.step(ep.actions[t].as_ref()).unwrap();
                let here = |what: &str| at(&format!("step {t}: {what}"));
                assert_eq!(step.obs.len(), ep.obs[t].len(), "{}", here("obs length"));
                for (i, (&o, &g)) in step.obs.iter().zip(&ep.obs[t]).enumerate() {
                    tally.value(f64::from(o), f64::from(g), &|| here(&format!("obs[{i}]")));
                }
                tally.value(step.reward, ep.rewards[t], &|| here("reward"));
                assert_eq!(
                    step.terminated,
                    ep.terminated[t] == 1,
                    "{}",
                    here("terminated")
                );
                assert_eq!(
                    step.truncated,
                    ep.truncated[t] == 1,
                    "{}",
                    here("truncated")
                );
                tally.steps += 1;
                tally.terminated += usize::from(step.terminated);
                tally.truncated += usize::from(step.truncated);
            }
        }
    }
    tally
}

fn physics_of(run: &Run) -> Physics {
    run.physics.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

fn check(id: &str) -> Tally {
    let fixture = load(id);
    let tally = replay(id, &physics_of);
    println!(
        "{id} (Gymnasium {}, NumPy {}): {} steps, {} values within {TOL:e}, {} bitwise equal, \
         worst relative difference {:e}; {} terminated, {} truncated steps",
        fixture.gymnasium,
        fixture.numpy,
        tally.steps,
        tally.values,
        tally.exact,
        tally.worst,
        tally.terminated,
        tally.truncated
    );
    assert!(
        tally.truncated > 0,
        "{id}: no truncated episode in the fixture"
    );
    if id != "Pendulum-v1" {
        assert!(
            tally.terminated > 0,
            "{id}: no terminated episode in the fixture"
        );
    }
    tally
}

#[test]
fn cartpole_matches_gymnasium() {
    check("CartPole-v1");
}

#[test]
fn pendulum_matches_gymnasium() {
    check("Pendulum-v1");
}

#[test]
fn acrobot_matches_gymnasium() {
    check("Acrobot-v1");
}

#[test]
fn mountain_car_matches_gymnasium() {
    check("MountainCar-v0");
}

#[test]
fn mountain_car_continuous_matches_gymnasium() {
    check("MountainCarContinuous-v0");
}

/// Where Rust and NumPy call the same C library, the port is exact, not just close.
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
#[test]
fn bitwise_equal_on_glibc() {
    for id in ENV_IDS {
        let tally = check(id);
        assert_eq!(
            tally.exact, tally.values,
            "{id}: not every value is bitwise equal"
        );
    }
}

#[test]
fn every_registered_env_has_a_fixture() {
    for id in ENV_IDS {
        assert!(fixture_path(id).is_file(), "no fixture for {id}");
    }
}

/// Spaces and time limits are Gymnasium's (bounds compared bitwise, as float32).
#[test]
fn spaces_and_time_limits_match_gymnasium() {
    for id in ENV_IDS {
        let fixture = load(id);
        let env = make(id).unwrap();
        assert_eq!(env.observation_space(), &fixture.observation_space, "{id}");
        assert_eq!(env.action_space(), &fixture.action_space, "{id}");
        assert_eq!(
            env.max_episode_steps(),
            Some(fixture.max_episode_steps),
            "{id}"
        );
        let spec = env.spec();
        assert_eq!(spec.name, id);
        assert_eq!(spec.validate(), Ok(()));
    }
}

/// Physics spelled out at their default values reproduce Gymnasium's default runs.
#[test]
fn explicit_default_physics_reproduce_the_fixtures() {
    for id in ENV_IDS {
        let defaults: Physics = default_physics(id).unwrap().into_iter().collect();
        let tally = replay(id, &|run| {
            if run.physics.is_empty() {
                defaults.clone()
            } else {
                physics_of(run)
            }
        });
        assert!(tally.steps > 0);
    }
}
