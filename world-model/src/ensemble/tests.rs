//! Tests of the ensemble family: it learns a known function, saves and reloads exactly,
//! steps paths with the right shapes and member assignment.

use burn::tensor::{Int, Tensor, TensorData};
use plasma_protocol::{ActionRef, Space, TaskSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::rollout::{ActionSequences, Driver, RolloutOptions, start_states};

/// A toy task with known dynamics: `s' = s + [0.1·(2a − 1), 0.2·s₀]`, `r = s₀ − s₁`,
/// terminated when `s'₀ > 0.8`.
pub(crate) fn toy_spec() -> TaskSpec {
    TaskSpec {
        name: "Toy-v0".into(),
        observation_space: Space::boxed(vec![-1.0; 2], vec![1.0; 2]).unwrap(),
        action_space: Space::discrete(2).unwrap(),
        max_episode_steps: None,
        termination: None,
    }
}

pub(crate) fn toy_step(s: [f32; 2], a: u32) -> ([f32; 2], f32, bool) {
    let next = [s[0] + 0.1 * (2.0 * a as f32 - 1.0), s[1] + 0.2 * s[0]];
    (next, s[0] - s[1], next[0] > 0.8)
}

pub(crate) fn toy_data(n: usize, seed: u64) -> Dataset {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut d = Dataset::new(&toy_spec()).unwrap();
    for _ in 0..n {
        let s = [
            rng.random_range(-1.0..1.0f32),
            rng.random_range(-1.0..1.0f32),
        ];
        let a = rng.random_range(0..2u32);
        let (next, r, done) = toy_step(s, a);
        d.push(&s, ActionRef::Discrete(a), f64::from(r), &next, done)
            .unwrap();
    }
    d
}

pub(crate) fn small_config() -> EnsembleConfig {
    EnsembleConfig {
        members: 3,
        hidden: vec![32, 32],
        support_margin: Some(0.1),
        ..EnsembleConfig::default()
    }
}

pub(crate) fn fast_train() -> TrainConfig {
    TrainConfig {
        max_epochs: 40,
        batch_size: 64,
        learning_rate: 3e-3,
        patience: 40,
        ..TrainConfig::default()
    }
}

pub(crate) fn trained_toy() -> Ensemble {
    let mut model = Ensemble::new(small_config(), toy_spec(), Device::flex()).unwrap();
    let config = TrainConfig {
        max_epochs: 120,
        ..fast_train()
    };
    model.fit(&toy_data(800, 1), &config).unwrap();
    model
}

fn vec2(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn learns_a_known_function() {
    let model = trained_toy();
    assert!(model.is_trained());
    let test = toy_data(300, 2);
    let report = model.loss(&test).unwrap();
    // Normalized units: the targets have unit variance, so 0.01 is 1% of it.
    for mse in &report.mse_per_member {
        assert!(*mse < 0.01, "held-out normalized mse {mse}");
    }
    // One imagined step agrees with the true dynamics.
    let device = Device::flex();
    let starts = [0.5f32, -0.2, -0.3, 0.4, 0.1, 0.1];
    let state = model
        .encode(start_states(&starts, 2, &device).unwrap())
        .unwrap();
    let actions = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0, 1], [3]), &device);
    let next = model
        .transition(
            &state,
            &ActionBatch::Discrete(actions),
            &StepOptions::default(),
        )
        .unwrap();
    let obs = vec2(next.latent.clone());
    let reward = next
        .reward
        .clone()
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    for (i, a) in [1u32, 0, 1].into_iter().enumerate() {
        let (want, r, _) = toy_step([starts[2 * i], starts[2 * i + 1]], a);
        assert!((obs[2 * i] - want[0]).abs() < 0.03, "{obs:?} vs {want:?}");
        assert!(
            (obs[2 * i + 1] - want[1]).abs() < 0.03,
            "{obs:?} vs {want:?}"
        );
        assert!((reward[i] - r).abs() < 0.05, "{reward:?} vs {r}");
    }
}

#[test]
fn rollouts_have_the_right_shapes_and_member_assignment() {
    let model = Ensemble::new(small_config(), toy_spec(), Device::flex()).unwrap();
    let device = Device::flex();
    let paths = 7;
    let horizon = 4;
    let start = start_states(&vec![0.1; paths * 2], 2, &device).unwrap();
    let actions = ActionSequences::Discrete(Tensor::<2, Int>::zeros([paths, horizon], &device));
    let options = RolloutOptions {
        uncertainty: true,
        ..RolloutOptions::default()
    };
    let traj = model
        .rollout(start.clone(), Driver::Actions(&actions), horizon, &options)
        .unwrap();
    assert_eq!(traj.members, [0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(traj.obs.as_ref().unwrap().dims(), [paths, horizon, 2]);
    assert_eq!(traj.rewards.as_ref().unwrap().dims(), [paths, horizon]);
    assert_eq!(traj.uncertainty.as_ref().unwrap().dims(), [paths, horizon]);
    let host = traj.to_host().unwrap();
    assert_eq!(host.returns.len(), paths);
    // Identical starts and actions: paths on the same member agree, members differ.
    let first_obs = |p: usize| host.obs[p * horizon * 2..p * horizon * 2 + 2].to_vec();
    assert_eq!(first_obs(0), first_obs(3));
    assert_eq!(first_obs(1), first_obs(4));
    assert_ne!(first_obs(0), first_obs(1));
    assert!(host.uncertainty.iter().all(|u| *u > 0.0));
    // The TS∞ path (no uncertainty) gives the same predictions as the all-member path.
    let plain = model
        .rollout(
            start,
            Driver::Actions(&actions),
            horizon,
            &RolloutOptions::default(),
        )
        .unwrap()
        .to_host()
        .unwrap();
    for (a, b) in plain.obs.iter().zip(&host.obs) {
        assert!((a - b).abs() < 1e-5);
    }
    assert!(plain.uncertainty.is_empty());
}

#[test]
fn returns_stop_accumulating_after_predicted_termination() {
    let model = trained_toy();
    let device = Device::flex();
    // Pushing right from 0.5 terminates after the third step (0.6, 0.7, 0.8, 0.9 > 0.8).
    let start = start_states(&[0.5, 0.0], 2, &device).unwrap();
    let right = ActionSequences::Discrete(Tensor::<2, Int>::ones([1, 6], &device));
    let traj = model
        .rollout(
            start,
            Driver::Actions(&right),
            6,
            &RolloutOptions::default(),
        )
        .unwrap()
        .to_host()
        .unwrap();
    assert!(traj.continue_probs[0] > 0.8, "{:?}", traj.continue_probs);
    assert!(traj.continue_probs[5] < 0.2, "{:?}", traj.continue_probs);
    let full: f32 = traj.rewards.iter().sum();
    assert!(
        traj.returns[0] < full - 0.1,
        "{} vs {}",
        traj.returns[0],
        full
    );
}

#[test]
fn policies_drive_rollouts_and_noise_is_reproducible() {
    let model = trained_toy();
    let device = Device::flex();
    let start = start_states(&[0.0, 0.0, 0.2, 0.0], 2, &device).unwrap();
    let mut calls = 0;
    let mut always_right = |obs: Tensor<2>, _step: usize| {
        calls += 1;
        let [p, _] = obs.dims();
        Ok(ActionBatch::Discrete(Tensor::<1, Int>::ones(
            [p],
            &obs.device(),
        )))
    };
    let options = RolloutOptions {
        noise: Noise::Sample { seed: 9 },
        ..RolloutOptions::default()
    };
    let a = model
        .rollout(
            start.clone(),
            Driver::Policy(&mut always_right),
            3,
            &options,
        )
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(calls, 3);
    let mut always_right = |obs: Tensor<2>, _step: usize| {
        let [p, _] = obs.dims();
        Ok(ActionBatch::Discrete(Tensor::<1, Int>::ones(
            [p],
            &obs.device(),
        )))
    };
    let b = model
        .rollout(start, Driver::Policy(&mut always_right), 3, &options)
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(a, b);
    // Moving right by about 0.1 per step.
    assert!((a.obs[4] - 0.3).abs() < 0.1, "{:?}", a.obs);
}

#[test]
fn save_and_load_reproduce_predictions_exactly() {
    let model = trained_toy();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = crate::registry::load(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded.family(), "ensemble");
    assert!(loaded.is_trained());
    // The loaded model owns its weights: deleting its checkpoint changes nothing.
    drop(dir);
    let device = Device::flex();
    let start = start_states(&[0.3, -0.1, -0.5, 0.2, 0.0, 0.9, 0.1, 0.1], 2, &device).unwrap();
    let actions = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
        TensorData::new(vec![0i64, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0], [4, 3]),
        &device,
    ));
    let options = RolloutOptions {
        uncertainty: true,
        noise: Noise::Sample { seed: 3 },
        ..RolloutOptions::default()
    };
    let a = model
        .rollout(start.clone(), Driver::Actions(&actions), 3, &options)
        .unwrap()
        .to_host()
        .unwrap();
    let b = loaded
        .rollout(start, Driver::Actions(&actions), 3, &options)
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(a, b, "bit-identical predictions after reload");
    // Missing, corrupt or oversized files are errors.
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let weights = std::fs::read(dir.path().join("weights.bpk")).unwrap();
    let mut padded = weights.clone();
    padded.resize(weights.len() * 3 + (1 << 20), 0);
    std::fs::write(dir.path().join("weights.bpk"), padded).unwrap();
    match crate::registry::load(dir.path(), &device) {
        Err(err) => assert!(err.to_string().contains("larger than"), "{err}"),
        Ok(_) => panic!("an oversized weights file loaded"),
    }
    std::fs::write(dir.path().join("weights.bpk"), b"garbage").unwrap();
    assert!(crate::registry::load(dir.path(), &device).is_err());
    assert!(crate::registry::load(&dir.path().join("nowhere"), &device).is_err());
}

#[test]
fn fine_tuning_continues_from_a_checkpoint() {
    let model = trained_toy();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let mut loaded = crate::registry::load(dir.path(), &Device::flex()).unwrap();
    let before = loaded.loss(&toy_data(300, 5)).unwrap();
    let config = TrainConfig {
        max_epochs: 5,
        ..fast_train()
    };
    let report = loaded.fit(&toy_data(200, 4), &config).unwrap();
    assert_eq!(report.epochs, 5);
    // The complete history: one entry per epoch, each member's held-out error in it.
    let epochs: Vec<usize> = report.history.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, [1, 2, 3, 4, 5]);
    assert!(
        report
            .history
            .iter()
            .all(|e| e.holdout_mse.len() == 3 && e.train_loss.is_finite())
    );
    let after = loaded.loss(&toy_data(300, 5)).unwrap();
    // Starts where the checkpoint was (not from scratch) and keeps its normalizers.
    let mean = |r: &LossReport| r.mse_per_member.iter().sum::<f32>() / 3.0;
    assert!(
        mean(&after) < 2.0 * mean(&before) + 1e-3,
        "{before:?} → {after:?}"
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut model = Ensemble::new(small_config(), toy_spec(), Device::flex()).unwrap();
    let device = Device::flex();
    let empty = Dataset::new(&toy_spec()).unwrap();
    assert!(matches!(
        model.fit(&empty, &fast_train()),
        Err(WorldModelError::EmptyDataset(_))
    ));
    assert!(model.loss(&empty).is_err());
    let other = TaskSpec {
        action_space: Space::discrete(3).unwrap(),
        ..toy_spec()
    };
    assert!(matches!(
        model.fit(&Dataset::new(&other).unwrap(), &fast_train()),
        Err(WorldModelError::Shape { .. })
    ));
    let start = Tensor::<2>::zeros([2, 3], &device);
    assert!(model.encode(start).is_err());
    let state = model.encode(Tensor::<2>::zeros([2, 2], &device)).unwrap();
    let wrong = ActionBatch::Continuous(Tensor::<2>::zeros([2, 1], &device));
    assert!(
        model
            .transition(&state, &wrong, &StepOptions::default())
            .is_err()
    );
    let short = ActionBatch::Discrete(Tensor::<1, Int>::zeros([3], &device));
    assert!(
        model
            .transition(&state, &short, &StepOptions::default())
            .is_err()
    );
    let seq = ActionSequences::Discrete(Tensor::<2, Int>::zeros([2, 2], &device));
    let start = Tensor::<2>::zeros([2, 2], &device);
    assert!(
        model
            .rollout(
                start.clone(),
                Driver::Actions(&seq),
                3,
                &RolloutOptions::default()
            )
            .is_err()
    );
    let bad_discount = RolloutOptions {
        discount: 1.5,
        ..RolloutOptions::default()
    };
    assert!(
        model
            .rollout(start, Driver::Actions(&seq), 2, &bad_discount)
            .is_err()
    );
    assert!(start_states(&[0.0, f32::NAN], 2, &device).is_err());
    assert!(start_states(&[0.0, 1.0, 2.0], 2, &device).is_err());
    let bad = TrainConfig {
        learning_rate: f64::INFINITY,
        ..fast_train()
    };
    assert!(matches!(
        model.fit(&toy_data(10, 0), &bad),
        Err(WorldModelError::Config(_))
    ));
}

#[test]
fn unknown_families_are_typed_errors() {
    let config = WorldModelConfig::from_json(r#"{"family":"transformer"}"#).unwrap();
    match crate::registry::build(&config, &toy_spec(), &Device::flex()) {
        Err(WorldModelError::UnknownFamily { family, known }) => {
            assert_eq!(family, "transformer");
            assert_eq!(known, ["ensemble"]);
        }
        other => panic!(
            "expected UnknownFamily, got {:?}",
            other.map(|m| m.family().to_owned())
        ),
    }
    let config = WorldModelConfig::from_json(r#"{"family":"ensemble","members":2}"#).unwrap();
    let model = crate::registry::build(&config, &toy_spec(), &Device::flex()).unwrap();
    assert_eq!(model.members(), 2);
}

#[test]
fn paths_leaving_the_data_are_halted_with_the_halt_reward() {
    let model = trained_toy();
    let device = Device::flex();
    // Going left from −0.9: the data's observations lie in about [−1.1, 1.1], widened by
    // 10% of the range to about ±1.32, so the path leaves the known region at step 5.
    let start = start_states(&[-0.9, 0.0], 2, &device).unwrap();
    let horizon = 8;
    let left = ActionSequences::Discrete(Tensor::<2, Int>::zeros([1, horizon], &device));
    let t = model
        .rollout(
            start,
            Driver::Actions(&left),
            horizon,
            &RolloutOptions::default(),
        )
        .unwrap()
        .to_host()
        .unwrap();
    assert_eq!(t.in_support.len(), horizon);
    assert_eq!(t.in_support[0], 1.0);
    assert_eq!(t.in_support[horizon - 1], 0.0);
    let k = t.in_support.iter().position(|v| *v == 0.0).unwrap();
    assert!((3..=6).contains(&k), "{:?} {:?}", t.in_support, t.obs);
    let halt = model.halt_reward().unwrap();
    assert!(halt < -1.5, "lowest reward of the data, {halt}");
    // No termination on the left: the return is the model's rewards up to the step that
    // left, then the halt reward.
    let expected: f32 = t.rewards[..=k].iter().sum::<f32>() + (horizon - 1 - k) as f32 * halt;
    assert!(
        (t.returns[0] - expected).abs() < 0.1,
        "{} vs {expected}",
        t.returns[0]
    );

    // Without a margin nothing is halted.
    let mut free = Ensemble::new(
        EnsembleConfig {
            support_margin: None,
            ..small_config()
        },
        toy_spec(),
        Device::flex(),
    )
    .unwrap();
    free.fit(&toy_data(200, 1), &fast_train()).unwrap();
    let start = start_states(&[-0.9, 0.0], 2, &device).unwrap();
    let t = free
        .rollout(
            start,
            Driver::Actions(&left),
            horizon,
            &RolloutOptions::default(),
        )
        .unwrap()
        .to_host()
        .unwrap();
    assert!(t.in_support.is_empty());
}

/// With `input_clamp`, an observation beyond the data's support is fed to the networks as
/// the nearest point of the (widened) support: the predicted step from far outside equals
/// the one from the edge, shifted by the difference of the starting observations. Without
/// it the networks extrapolate and the two differ.
#[test]
fn input_clamp_extrapolates_as_a_constant() {
    let device = Device::flex();
    let predicted_delta = |model: &Ensemble, s: [f32; 2]| -> Vec<f32> {
        let start = start_states(&s, 2, &device).unwrap();
        let actions = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
            TensorData::new(vec![1i64], [1, 1]),
            &device,
        ));
        let t = model
            .rollout(
                start,
                Driver::Actions(&actions),
                1,
                &RolloutOptions::default(),
            )
            .unwrap()
            .to_host()
            .unwrap();
        vec![t.obs[0] - s[0], t.obs[1] - s[1], t.rewards[0]]
    };
    let data = toy_data(400, 5);
    let fit = |clamp: Option<f32>| {
        let mut m = Ensemble::new(
            EnsembleConfig {
                input_clamp: clamp,
                support_margin: None,
                ..small_config()
            },
            toy_spec(),
            Device::flex(),
        )
        .unwrap();
        m.fit(&data, &fast_train()).unwrap();
        m
    };
    let clamped = fit(Some(0.0));
    let free = fit(None);
    // toy_data's states lie in [-1, 1]², its next states a little beyond: the support's
    // upper edge of s₁ is above 1 and below 1.5.
    let far = [0.0, 6.0];
    let edge_high = Support::of(&data).unwrap().obs_high[1];
    assert!((1.0..1.5).contains(&edge_high), "{edge_high}");
    let at_edge = predicted_delta(&clamped, [0.0, edge_high]);
    let beyond = predicted_delta(&clamped, far);
    for (a, b) in at_edge.iter().zip(&beyond) {
        assert!((a - b).abs() < 1e-5, "{at_edge:?} vs {beyond:?}");
    }
    let free_edge = predicted_delta(&free, [0.0, edge_high]);
    let free_far = predicted_delta(&free, far);
    let differs = free_edge
        .iter()
        .zip(&free_far)
        .any(|(a, b)| (a - b).abs() > 1e-3);
    assert!(differs, "{free_edge:?} vs {free_far:?}");
    assert!(
        EnsembleConfig {
            input_clamp: Some(-1.0),
            ..small_config()
        }
        .validate()
        .is_err()
    );
}

/// A path that starts beyond the data's support is halted only if it goes further out:
/// moving back towards the data keeps it alive, so a planner there still prefers returning.
#[test]
fn a_path_starting_outside_the_support_is_halted_only_going_further_out() {
    let model = trained_toy();
    let device = Device::flex();
    // s₀ = −1.6 is beyond the widened support (about ±1.32).
    let horizon = 4;
    let run = |action: i64| {
        let start = start_states(&[-1.6, 0.0], 2, &device).unwrap();
        let actions = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
            TensorData::new(vec![action; horizon], [1, horizon]),
            &device,
        ));
        model
            .rollout(
                start,
                Driver::Actions(&actions),
                horizon,
                &RolloutOptions::default(),
            )
            .unwrap()
            .to_host()
            .unwrap()
    };
    let back = run(1);
    assert_eq!(back.in_support, vec![1.0; horizon], "{:?}", back.obs);
    let further = run(0);
    assert_eq!(further.in_support, vec![0.0; horizon], "{:?}", further.obs);
}

/// The toy task declaring a termination rule that its data does not follow: `s₀` leaving
/// `[−0.45, 0.45]` ends the episode, `s₁` never does.
fn declared_spec() -> TaskSpec {
    TaskSpec {
        termination: Some(
            plasma_protocol::Termination::observation_bounds(
                vec![-0.45, f32::NEG_INFINITY],
                vec![0.45, f32::INFINITY],
            )
            .unwrap(),
        ),
        ..toy_spec()
    }
}

fn declared_model() -> Ensemble {
    let config = EnsembleConfig {
        support_margin: None,
        ..small_config()
    };
    let mut model = Ensemble::new(config, declared_spec(), Device::flex()).unwrap();
    model.fit(&toy_data(400, 1), &fast_train()).unwrap();
    model
}

/// Random action sequences from a grid of starts, so that some paths leave the bounds
/// (at different steps) and some never do.
fn declared_rollout(model: &dyn WorldModel, uncertainty: bool) -> crate::HostTrajectory {
    let device = Device::flex();
    let (paths, horizon) = (40, 8);
    let starts: Vec<f32> = (0..paths)
        .flat_map(|p| [-0.4 + 0.02 * p as f32, 0.1])
        .collect();
    let mut rng = SmallRng::seed_from_u64(3);
    let actions: Vec<i64> = (0..paths * horizon)
        .map(|_| rng.random_range(0..2i64))
        .collect();
    let actions = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
        TensorData::new(actions, [paths, horizon]),
        &device,
    ));
    let options = RolloutOptions {
        uncertainty,
        ..RolloutOptions::default()
    };
    model
        .rollout(
            start_states(&starts, 2, &device).unwrap(),
            Driver::Actions(&actions),
            horizon,
            &options,
        )
        .unwrap()
        .to_host()
        .unwrap()
}

/// The same weights without the declaration: the model saved, its document stripped of the
/// rule (as written before rules existed), and loaded again.
fn without_declaration(model: &Ensemble) -> Box<dyn WorldModel> {
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let doc = dir.path().join(crate::checkpoint::MODEL_FILE);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    json["spec"].as_object_mut().unwrap().remove("termination");
    std::fs::write(&doc, serde_json::to_string(&json).unwrap()).unwrap();
    let old = crate::registry::load(dir.path(), &Device::flex()).unwrap();
    assert_eq!(old.spec(), &toy_spec());
    old
}

#[test]
fn a_declared_termination_ends_paths_exactly_when_they_leave_its_bounds() {
    let model = declared_model();
    let learned_only = without_declaration(&model);
    for uncertainty in [false, true] {
        let t = declared_rollout(&model, uncertainty);
        let head = declared_rollout(learned_only.as_ref(), uncertainty);
        // Same weights, same actions: the same imagined states.
        assert_eq!(t.obs, head.obs);
        let (mut ended, mut survived) = (0, 0);
        for p in 0..t.paths {
            let mut expected_return = 0.0;
            let mut alive = 1.0;
            for s in 0..t.horizon {
                let i = p * t.horizon + s;
                let x = t.obs[i * 2];
                let inside = (-0.45..=0.45).contains(&x);
                // 0 outside the bounds; inside, the learned head's soft probability.
                let expected = if inside { head.continue_probs[i] } else { 0.0 };
                assert_eq!(t.continue_probs[i], expected, "{x}");
                expected_return += alive * t.rewards[i];
                alive *= t.continue_probs[i];
            }
            // The step that leaves earns its reward, none after it does.
            assert!(
                (t.returns[p] - expected_return).abs() < 1e-4,
                "path {p}: {} vs {expected_return}",
                t.returns[p]
            );
            if alive == 0.0 {
                ended += 1
            } else {
                survived += 1
            }
        }
        assert!(
            ended >= 5 && survived >= 5,
            "{ended} ended, {survived} survived"
        );
    }
    // The head itself is soft: the rule adds certainty, it does not replace the risk signal.
    let t = declared_rollout(learned_only.as_ref(), false);
    assert!(t.continue_probs.iter().any(|c| *c > 0.0 && *c < 1.0));
}

#[test]
fn a_declared_termination_survives_a_checkpoint() {
    let model = declared_model();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = crate::registry::load(dir.path(), &Device::flex()).unwrap();
    assert_eq!(loaded.spec(), &declared_spec());
    assert_eq!(
        declared_rollout(&model, false),
        declared_rollout(loaded.as_ref(), false)
    );
    // A document written before termination rules existed loads, with the learned head
    // alone: paths beyond the bounds go on.
    let old = without_declaration(&model);
    let t = declared_rollout(old.as_ref(), false);
    let beyond = (0..t.paths * t.horizon)
        .filter(|&i| !(-0.45..=0.45).contains(&t.obs[i * 2]))
        .filter(|&i| t.continue_probs[i] > 0.0)
        .count();
    assert!(beyond > 0, "no path beyond the bounds continued");
}
