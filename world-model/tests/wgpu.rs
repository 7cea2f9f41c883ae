//! The wgpu path: the same code on a GPU device. Needs the crate's `wgpu` feature and a
//! Vulkan/Metal/DX12 adapter (Mesa's software lavapipe will do: see
//! `scripts/wgpu-smoke.sh`), hence ignored by default:
//!
//! ```text
//! cargo test --release -p plasma-world-model --features wgpu --test wgpu -- --ignored
//! ```
#![cfg(feature = "wgpu")]

use plasma_protocol::{ActionRef, Space, TaskSpec};
use plasma_world_model::burn::tensor::{Int, Tensor, TensorData};
use plasma_world_model::rollout::{ActionSequences, Driver, RolloutOptions, start_states};
use plasma_world_model::{
    Cem, CemConfig, Dataset, EnsembleConfig, Planner, SearchConfig, TrainConfig, WorldModel,
    WorldModelConfig, parse_device, registry,
};

fn spec() -> TaskSpec {
    TaskSpec {
        name: "Toy-v0".into(),
        observation_space: Space::boxed(vec![-1.0; 2], vec![1.0; 2]).unwrap(),
        action_space: Space::discrete(2).unwrap(),
        max_episode_steps: None,
        termination: None,
    }
}

fn data() -> Dataset {
    let mut d = Dataset::new(&spec()).unwrap();
    for i in 0..400 {
        let s = [
            ((i * 37) % 200) as f32 / 100.0 - 1.0,
            ((i * 91) % 200) as f32 / 100.0 - 1.0,
        ];
        let a = (i % 2) as u32;
        let next = [s[0] + 0.1 * (2.0 * a as f32 - 1.0), s[1] + 0.2 * s[0]];
        d.push(
            &s,
            ActionRef::Discrete(a),
            f64::from(s[0] - s[1]),
            &next,
            next[0] > 0.8,
        )
        .unwrap();
    }
    d
}

#[test]
#[ignore = "needs a wgpu adapter (run scripts/wgpu-smoke.sh)"]
fn trains_rolls_out_and_plans_on_wgpu_like_on_the_cpu() {
    let gpu = parse_device("wgpu").unwrap();
    let cpu = parse_device("cpu").unwrap();
    let config = WorldModelConfig::ensemble(&EnsembleConfig {
        members: 3,
        hidden: vec![32, 32],
        ..EnsembleConfig::default()
    });
    // Training runs on the GPU's autodiff twin.
    let mut model = registry::build(&config, &spec(), &gpu).unwrap();
    let report = model
        .fit(
            &data(),
            &TrainConfig {
                max_epochs: 20,
                batch_size: 64,
                ..TrainConfig::default()
            },
        )
        .unwrap();
    assert!(report.final_train_loss.is_finite());
    let loss = model.loss(&data()).unwrap();
    assert!(loss.mse_per_member.iter().all(|m| *m < 0.1), "{loss:?}");

    // The same weights predict the same paths on both devices.
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let on_cpu = registry::load(dir.path(), &cpu).unwrap();
    let paths = 6;
    let run = |m: &dyn WorldModel, device| {
        let start = start_states(&[0.1; 12], 2, device).unwrap();
        let actions = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
            TensorData::new(
                (0..paths * 5).map(|i| (i % 2) as i64).collect::<Vec<_>>(),
                [paths, 5],
            ),
            device,
        ));
        let options = RolloutOptions {
            uncertainty: true,
            ..RolloutOptions::default()
        };
        m.rollout(start, Driver::Actions(&actions), 5, &options)
            .unwrap()
            .to_host()
            .unwrap()
    };
    let a = run(model.as_ref(), &gpu);
    let b = run(on_cpu.as_ref(), &cpu);
    for (x, y) in a.obs.iter().zip(&b.obs) {
        assert!((x - y).abs() < 1e-3, "{x} vs {y}");
    }
    for (x, y) in a.returns.iter().zip(&b.returns) {
        assert!((x - y).abs() < 1e-2, "{x} vs {y}");
    }

    // Planning on the GPU.
    let mut cem = Cem::new(CemConfig {
        search: SearchConfig {
            horizon: 5,
            population: 64,
            iterations: 2,
            ..SearchConfig::default()
        },
        elites: 8,
    })
    .unwrap();
    let plan = cem.plan(model.as_ref(), &[0.0, 0.0, 0.5, 0.5]).unwrap();
    assert_eq!(plan.actions.len(), 2);
}
