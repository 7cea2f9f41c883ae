//! Environment steps per second: one environment, and a vector of 64.
//!
//! Run: `cargo bench -p plasma-envs --bench steps -- --warm-up-time 1 --measurement-time 3`
//! (criterion reports the rate as elements/s, one element being one environment step).

// `criterion_group!` generates a public function without documentation.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plasma_envs::{ActionRef, BatchActions, ENV_IDS, Env, Physics, make, make_vec};

const VECTOR: usize = 64;

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("single");
    group.throughput(Throughput::Elements(1));
    for id in ENV_IDS {
        let mut env = make(id).unwrap();
        let mut obs = vec![0.0f32; env.observation_space().dim()];
        env.reset_into(Some(0), &mut obs).unwrap();
        let discrete = env.action_space().is_discrete();
        let mut t = 0u32;
        group.bench_function(id, |b| {
            b.iter(|| {
                t = t.wrapping_add(1);
                let value = [if t.is_multiple_of(2) { 0.7f32 } else { -0.7 }];
                let action = if discrete {
                    ActionRef::Discrete(t % 2)
                } else {
                    ActionRef::Continuous(&value)
                };
                let out = env.step_into(action, &mut obs).unwrap();
                if out.terminated || out.truncated {
                    env.reset_into(None, &mut obs).unwrap();
                }
                black_box(&obs);
            })
        });
    }
    group.finish();
}

fn vector(c: &mut Criterion) {
    let mut group = c.benchmark_group("vector64");
    group.throughput(Throughput::Elements(VECTOR as u64));
    for id in ENV_IDS {
        let mut envs = make_vec(id, VECTOR, &Physics::new()).unwrap();
        envs.reset(Some(0)).unwrap();
        let discrete = envs.single_action_space().is_discrete();
        let even: Vec<u32> = (0..VECTOR as u32).map(|i| i % 2).collect();
        let odd: Vec<u32> = (0..VECTOR as u32).map(|i| (i + 1) % 2).collect();
        let push: Vec<f32> = (0..VECTOR).map(|i| (i as f32 / 32.0) - 1.0).collect();
        let pull: Vec<f32> = push.iter().map(|v| -v).collect();
        let mut t = 0u32;
        group.bench_function(id, |b| {
            b.iter(|| {
                t = t.wrapping_add(1);
                let actions = match (discrete, t.is_multiple_of(2)) {
                    (true, true) => BatchActions::Discrete(&even),
                    (true, false) => BatchActions::Discrete(&odd),
                    (false, true) => BatchActions::Continuous(&push),
                    (false, false) => BatchActions::Continuous(&pull),
                };
                envs.step(actions).unwrap();
                black_box(envs.observations());
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single, vector);
criterion_main!(benches);
