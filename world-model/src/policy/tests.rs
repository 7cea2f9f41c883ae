use burn::tensor::{Device, Tensor, TensorData};
use plasma_envs::{ActionRef, make};
use plasma_packets::codec::PacketContent;
use plasma_packets::model::{ActionSpace, AuditStatus, ContinuousMapping, ObsNorm, Provenance};
use plasma_packets::runtime::{
    Action as PacketAction, CompiledPolicy, EdgeRuntime, Kernel, Scratch,
};
use plasma_packets::signing::{PacketSigner, Verifier};
use plasma_protocol::Action;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::action::ActionCodec;
use crate::error::WorldModelError;
use crate::rollout::Policy;

const HELD_OUT: usize = 10_000;

/// States visited by a real environment under uniformly random actions (reset on episode
/// end), `[n, obs_dim]` row-major.
fn env_states(id: &str, n: usize, seed: u64) -> (Vec<f32>, usize) {
    let mut env = make(id).unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut obs = env.reset(Some(seed));
    let d = obs.len();
    let mut states = Vec::with_capacity(n * d);
    let continuous = matches!(env.action_space(), plasma_protocol::Space::Box { .. });
    while states.len() < n * d {
        states.extend_from_slice(&obs);
        let step = if continuous {
            let a = [rng.random_range(-2.0f32..2.0)];
            env.step(ActionRef::Continuous(&a)).unwrap()
        } else {
            env.step(ActionRef::Discrete(rng.random_range(0..2)))
                .unwrap()
        };
        obs = if step.done() {
            env.reset(None)
        } else {
            step.obs
        };
    }
    (states, d)
}

/// CartPole teacher: push towards the side the pole falls to.
fn cart_label(o: &[f32]) -> u32 {
    u32::from(o[2] + 0.5 * o[3] > 0.0)
}

/// A changed condition for the adapter: the teacher also leans against the cart's velocity.
fn cart_label_adapted(o: &[f32]) -> u32 {
    u32::from(o[2] + 0.5 * o[3] + 0.3 * o[1] > 0.0)
}

/// Pendulum teacher, a smooth torque in [-2, 2].
fn pendulum_label(o: &[f32]) -> f32 {
    2.0 * (-1.5 * o[1] - 0.3 * o[2]).tanh()
}

fn pendulum_label_adapted(o: &[f32]) -> f32 {
    2.0 * (-o[1] - 0.6 * o[2]).tanh()
}

fn provenance(run: &str) -> Provenance {
    Provenance {
        task: "test".into(),
        agent_id: "agent-1".into(),
        training_run: run.into(),
        created_unix_ms: 0,
        audit: AuditStatus::Unaudited,
        audit_summary: String::new(),
    }
}

fn signer() -> PacketSigner {
    PacketSigner::from_seed(&[7u8; 32])
}

fn discrete_labels(states: &[f32], d: usize, f: fn(&[f32]) -> u32) -> Vec<u32> {
    states.chunks_exact(d).map(f).collect()
}

fn continuous_labels(states: &[f32], d: usize, f: fn(&[f32]) -> f32) -> Vec<f32> {
    states.chunks_exact(d).map(f).collect()
}

/// A CartPole base policy trained on 4,000 states, and 10,000 held-out states.
fn trained_cartpole() -> (PolicyModel, Vec<f32>, Vec<f32>, usize) {
    let (train, d) = env_states("CartPole-v1", 4_000, 1);
    let (held, _) = env_states("CartPole-v1", HELD_OUT, 2);
    let mut policy = PolicyModel::from_states(
        PolicyConfig::default(),
        &train,
        d,
        ActionSpace::Discrete { n: 2 },
        &Device::flex(),
    )
    .unwrap();
    let labels = discrete_labels(&train, d, cart_label);
    let report = policy
        .fit(&train, Labels::Discrete(&labels), &FitConfig::default())
        .unwrap();
    assert!(report.accuracy.unwrap() > 0.97, "{report:?}");
    (policy, train, held, d)
}

fn trained_pendulum() -> (PolicyModel, Vec<f32>, Vec<f32>, usize) {
    let (train, d) = env_states("Pendulum-v1", 4_000, 3);
    let (held, _) = env_states("Pendulum-v1", HELD_OUT, 4);
    let space = action_space_for(
        &plasma_protocol::Space::boxed(vec![-2.0], vec![2.0]).unwrap(),
        ContinuousMapping::TanhScaled,
    )
    .unwrap();
    let mut policy =
        PolicyModel::from_states(PolicyConfig::default(), &train, d, space, &Device::flex())
            .unwrap();
    let labels = continuous_labels(&train, d, pendulum_label);
    let report = policy
        .fit(&train, Labels::Continuous(&labels), &FitConfig::default())
        .unwrap();
    assert!(report.mean_abs_error.unwrap() < 0.03, "{report:?}");
    (policy, train, held, d)
}

/// The packet runtime's actions on `states`: from the decoded packets compiled with the
/// default (merged) kernel, and through an `EdgeRuntime` loading the signed bytes.
fn runtime_actions(
    base: &BuiltPacket,
    adapter: Option<&BuiltPacket>,
    states: &[f32],
    d: usize,
) -> Vec<Action> {
    let PacketContent::Base(base_body) = &base.verified.packet.content else {
        panic!("not a base packet");
    };
    let adapter_body = adapter.map(|a| match &a.verified.packet.content {
        PacketContent::Adapter { base_digest, body } => {
            assert_eq!(*base_digest, base.digest);
            (body, a.digest)
        }
        PacketContent::Base(_) => panic!("not an adapter packet"),
    });
    let compiled =
        CompiledPolicy::compile(base_body, base.digest, adapter_body, Kernel::default()).unwrap();
    let runtime = EdgeRuntime::load(
        &base.bytes,
        Verifier::pinned(signer().public_key()),
        Kernel::default(),
    )
    .unwrap();
    if let Some(a) = adapter {
        runtime.apply_adapter(&a.bytes).unwrap();
    }
    let mut actor = runtime.actor();
    let mut scratch = Scratch::default();
    states
        .chunks_exact(d)
        .map(|o| {
            let owned = match compiled.act(o, &mut scratch).unwrap() {
                PacketAction::Discrete(i) => Action::Discrete(i),
                PacketAction::Continuous(v) => Action::Continuous(v.to_vec()),
            };
            let via_runtime = match actor.act(o).unwrap() {
                PacketAction::Discrete(i) => Action::Discrete(i),
                PacketAction::Continuous(v) => Action::Continuous(v.to_vec()),
            };
            assert_eq!(owned, via_runtime);
            owned
        })
        .collect()
}

fn discrete_agreement(a: &[Action], b: &[Action]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Largest and mean absolute difference of continuous actions, in units of `width`.
fn continuous_error(a: &[Action], b: &[Action], width: f32) -> (f32, f32) {
    let diffs: Vec<f32> = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| match (x, y) {
            (Action::Continuous(x), Action::Continuous(y)) => x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs() / width)
                .collect::<Vec<_>>(),
            _ => panic!("not continuous"),
        })
        .collect();
    (
        diffs.iter().copied().fold(0.0, f32::max),
        diffs.iter().sum::<f32>() / diffs.len() as f32,
    )
}

#[test]
fn cartpole_packet_runtime_agrees_with_the_burn_policy_base_and_adapter() {
    let (base, train, held, d) = trained_cartpole();
    let burn_actions = base.act_batch(&held).unwrap();
    let teacher = discrete_labels(&held, d, cart_label);
    let held_accuracy = burn_actions
        .iter()
        .zip(&teacher)
        .filter(|(a, t)| **a == Action::Discrete(**t))
        .count() as f64
        / HELD_OUT as f64;

    let float = base.to_float_policy().unwrap();
    let float_actions: Vec<Action> = held
        .chunks_exact(d)
        .map(|o| match float.act(o, None) {
            plasma_packets::OwnedAction::Discrete(i) => Action::Discrete(i),
            plasma_packets::OwnedAction::Continuous(v) => Action::Continuous(v),
        })
        .collect();
    let base_packet = base.base_packet(provenance("base"), &signer(), 19).unwrap();
    let packet_actions = runtime_actions(&base_packet, None, &held, d);
    let f32_agree = discrete_agreement(&burn_actions, &float_actions);
    let int8_agree = discrete_agreement(&burn_actions, &packet_actions);
    println!(
        "CartPole base: held-out accuracy vs teacher {held_accuracy:.4}, burn vs f32 export \
         {f32_agree:.4}, burn vs int8 packet {int8_agree:.4}, packet {} bytes",
        base_packet.bytes.len()
    );
    assert!(held_accuracy > 0.95);
    assert!(f32_agree >= 0.999);
    assert!(int8_agree >= 0.99);

    // Adapter for a changed teacher.
    let mut adapted = base.with_lora(&LoraConfig::default()).unwrap();
    let labels = discrete_labels(&train, d, cart_label_adapted);
    let report = adapted
        .fit(&train, Labels::Discrete(&labels), &FitConfig::default())
        .unwrap();
    assert!(report.adapter_only);
    let adapted_actions = adapted.act_batch(&held).unwrap();
    let teacher2 = discrete_labels(&held, d, cart_label_adapted);
    let acc2 = adapted_actions
        .iter()
        .zip(&teacher2)
        .filter(|(a, t)| **a == Action::Discrete(**t))
        .count() as f64
        / HELD_OUT as f64;
    let base_acc2 = burn_actions
        .iter()
        .zip(&teacher2)
        .filter(|(a, t)| **a == Action::Discrete(**t))
        .count() as f64
        / HELD_OUT as f64;
    let adapter_packet = adapted
        .adapter_packet(base_packet.digest, provenance("adapter"), &signer(), 19)
        .unwrap();
    let packet_actions = runtime_actions(&base_packet, Some(&adapter_packet), &held, d);
    let agree = discrete_agreement(&adapted_actions, &packet_actions);
    println!(
        "CartPole adapter (rank 4, {} trainable values): accuracy on the new teacher {acc2:.4} \
         (base {base_acc2:.4}), burn vs int8 base+adapter packets {agree:.4}, adapter packet {} bytes",
        adapted.trainable_params(),
        adapter_packet.bytes.len()
    );
    assert!(acc2 > base_acc2);
    assert!(acc2 > 0.95);
    assert!(agree >= 0.99);
}

#[test]
fn pendulum_packet_runtime_agrees_with_the_burn_policy_base_and_adapter() {
    let (base, train, held, d) = trained_pendulum();
    let width = 4.0;
    let burn_actions = base.act_batch(&held).unwrap();
    let teacher: Vec<Action> = continuous_labels(&held, d, pendulum_label)
        .into_iter()
        .map(|a| Action::Continuous(vec![a]))
        .collect();
    let (_, teacher_mean) = continuous_error(&burn_actions, &teacher, width);
    let base_packet = base.base_packet(provenance("base"), &signer(), 19).unwrap();
    let packet_actions = runtime_actions(&base_packet, None, &held, d);
    let (max_err, mean_err) = continuous_error(&burn_actions, &packet_actions, width);
    println!(
        "Pendulum base: mean error vs teacher {teacher_mean:.4} of the range; burn vs int8 \
         packet: max {max_err:.5}, mean {mean_err:.6} of the range"
    );
    assert!(max_err < 0.02);
    assert!(mean_err < 0.002);

    let mut adapted = base
        .with_lora(&LoraConfig {
            rank: 2,
            alpha: 4.0,
            ..LoraConfig::default()
        })
        .unwrap();
    let labels = continuous_labels(&train, d, pendulum_label_adapted);
    let before = adapted
        .evaluate(&train, Labels::Continuous(&labels))
        .unwrap();
    let report = adapted
        .fit(&train, Labels::Continuous(&labels), &FitConfig::default())
        .unwrap();
    assert!(report.final_loss < 0.2 * before.0, "{report:?}");
    let adapted_actions = adapted.act_batch(&held).unwrap();
    let adapter_packet = adapted
        .adapter_packet(base_packet.digest, provenance("adapter"), &signer(), 19)
        .unwrap();
    let packet_actions = runtime_actions(&base_packet, Some(&adapter_packet), &held, d);
    let (max_err, mean_err) = continuous_error(&adapted_actions, &packet_actions, width);
    println!(
        "Pendulum adapter (rank 2): training mean error {:.4} of the range (before {:.4}); \
         burn vs int8 base+adapter packets: max {max_err:.5}, mean {mean_err:.6} of the range",
        report.mean_abs_error.unwrap(),
        before.2.unwrap()
    );
    assert!(max_err < 0.02);
    assert!(mean_err < 0.002);
}

#[test]
fn adapter_training_changes_only_the_lora_factors() {
    let (train, d) = env_states("CartPole-v1", 2_000, 5);
    let mut base = PolicyModel::from_states(
        PolicyConfig {
            hidden: vec![32, 32],
            activation: plasma_packets::Activation::Relu,
            ..PolicyConfig::default()
        },
        &train,
        d,
        ActionSpace::Discrete { n: 2 },
        &Device::flex(),
    )
    .unwrap();
    let labels = discrete_labels(&train, d, cart_label);
    let fit = FitConfig {
        epochs: 10,
        ..FitConfig::default()
    };
    base.fit(&train, Labels::Discrete(&labels), &fit).unwrap();
    let base_float = base.to_float_policy().unwrap();

    // Adapters on the first and last layers only.
    let lora = LoraConfig {
        rank: 3,
        alpha: 6.0,
        layers: Some(vec![2, 0]),
        ..LoraConfig::default()
    };
    let mut adapted = base.with_lora(&lora).unwrap();
    assert_eq!(adapted.lora().unwrap().layers, [0, 2]);
    assert_eq!(adapted.trainable_params(), 3 * (4 + 32) + 3 * (32 + 2));
    let fresh = adapted.to_float_lora().unwrap();
    assert!(fresh.layers.iter().all(|l| l.b.iter().all(|&v| v == 0.0)));
    // A fresh adapter (B = 0) leaves the policy unchanged.
    assert_eq!(
        adapted.outputs_batch(&train[..40 * d]).unwrap(),
        base.outputs_batch(&train[..40 * d]).unwrap()
    );

    let labels2 = discrete_labels(&train, d, cart_label_adapted);
    adapted
        .fit(&train, Labels::Discrete(&labels2), &fit)
        .unwrap();
    // The base weights and biases are bit for bit those before adapter training.
    assert_eq!(adapted.to_float_policy().unwrap(), base_float);
    let trained = adapted.to_float_lora().unwrap();
    assert_eq!(trained.rank, 3);
    assert_eq!(trained.alpha, 6.0);
    assert_eq!(
        trained.layers.iter().map(|l| l.layer).collect::<Vec<_>>(),
        [0, 2]
    );
    for (new, old) in trained.layers.iter().zip(&fresh.layers) {
        assert_ne!(new.a, old.a, "A of layer {} was not trained", new.layer);
        assert!(new.b.iter().any(|&v| v != 0.0), "B of layer {}", new.layer);
    }
    // The exported adapter, applied the packet's way (ΔW = alpha/r · B·A on out × in
    // weights), reproduces burn's adapted outputs: the layout mapping is exact.
    let raw = adapted.outputs_batch(&train[..500 * d]).unwrap();
    let mut max_diff = 0f32;
    for (o, row) in train[..500 * d].chunks_exact(d).zip(raw.chunks_exact(2)) {
        let reference = base_float.forward(o, Some(&trained));
        for (a, b) in reference.iter().zip(row) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    assert!(max_diff < 1e-4, "max difference {max_diff}");
    // The merged policy acts as the adapted one.
    let merged = adapted.merged();
    assert!(merged.lora().is_none());
    let merged_raw = merged.outputs_batch(&train[..500 * d]).unwrap();
    assert!(
        merged_raw
            .iter()
            .zip(&raw)
            .all(|(a, b)| (a - b).abs() < 1e-4)
    );
    // Training the original base afterwards is unaffected by the adapter copy.
    assert_eq!(base.to_float_policy().unwrap(), base_float);
}

#[test]
fn fit_learns_a_labelling_and_continues_from_its_weights() {
    let (train, d) = env_states("CartPole-v1", 3_000, 6);
    let (held, _) = env_states("CartPole-v1", 3_000, 7);
    let make_policy = || {
        PolicyModel::from_states(
            PolicyConfig::default(),
            &train,
            d,
            ActionSpace::Discrete { n: 2 },
            &Device::flex(),
        )
        .unwrap()
    };
    let labels = discrete_labels(&train, d, cart_label);
    let fit = FitConfig {
        epochs: 15,
        ..FitConfig::default()
    };
    let mut policy = make_policy();
    let first = policy.fit(&train, Labels::Discrete(&labels), &fit).unwrap();
    assert!(first.final_loss < 0.3 * first.initial_loss, "{first:?}");
    assert_eq!(first.epoch_losses.len(), 15);
    assert_eq!(first.steps, 15 * 3_000_usize.div_ceil(128));
    // A second call starts where the first ended (DAgger).
    let second = policy.fit(&train, Labels::Discrete(&labels), &fit).unwrap();
    assert!((second.initial_loss - first.final_loss).abs() < 1e-5);
    assert!(second.final_loss <= first.final_loss * 1.05);
    let held_labels = discrete_labels(&held, d, cart_label);
    let (_, accuracy, _) = policy
        .evaluate(&held, Labels::Discrete(&held_labels))
        .unwrap();
    println!(
        "fit: loss {:.4} → {:.4} → {:.4}, train accuracy {:.4}, held-out {:.4}, {:.2}s per call",
        first.initial_loss,
        first.final_loss,
        second.final_loss,
        second.accuracy.unwrap(),
        accuracy.unwrap(),
        first.seconds
    );
    assert!(accuracy.unwrap() > 0.97);
    // Deterministic in the seeds.
    let mut again = make_policy();
    again.fit(&train, Labels::Discrete(&labels), &fit).unwrap();
    let mut once = make_policy();
    once.fit(&train, Labels::Discrete(&labels), &fit).unwrap();
    assert_eq!(
        again.to_float_policy().unwrap(),
        once.to_float_policy().unwrap()
    );

    // The policy drives phantom paths: tensor observations in, an action batch out that the
    // world model's action codec encodes one-hot.
    let p = 64;
    let obs = Tensor::<2>::from_data(
        TensorData::new(held[..p * d].to_vec(), [p, d]),
        &Device::flex(),
    );
    let batch = policy.act(obs, 0).unwrap();
    let encoded = batch
        .encode(&ActionCodec::Discrete { n: 2 }, p)
        .unwrap()
        .into_data()
        .try_into_vec::<f32>()
        .unwrap();
    let host = policy.act_batch(&held[..p * d]).unwrap();
    for (row, action) in encoded.chunks_exact(2).zip(&host) {
        let Action::Discrete(i) = action else {
            panic!()
        };
        assert_eq!(row[*i as usize], 1.0);
        assert_eq!(row.iter().sum::<f32>(), 1.0);
    }
}

#[test]
fn continuous_policy_drives_paths_with_actions_in_the_box() {
    let (train, d) = env_states("Pendulum-v1", 500, 8);
    let space = ActionSpace::Continuous {
        low: vec![-2.0],
        high: vec![2.0],
        mapping: ContinuousMapping::TanhScaled,
    };
    let mut policy =
        PolicyModel::from_states(PolicyConfig::default(), &train, d, space, &Device::flex())
            .unwrap();
    let labels = continuous_labels(&train, d, pendulum_label);
    policy
        .fit(
            &train,
            Labels::Continuous(&labels),
            &FitConfig {
                epochs: 3,
                ..FitConfig::default()
            },
        )
        .unwrap();
    let p = 100;
    let obs = Tensor::<2>::from_data(
        TensorData::new(train[..p * d].to_vec(), [p, d]),
        &Device::flex(),
    );
    let ActionBatch::Continuous(a) = policy.act(obs, 0).unwrap() else {
        panic!("expected continuous actions")
    };
    assert_eq!(a.dims(), [p, 1]);
    let tensor_actions = a.into_data().try_into_vec::<f32>().unwrap();
    let host = policy.act_batch(&train[..p * d]).unwrap();
    for (t, h) in tensor_actions.iter().zip(&host) {
        let Action::Continuous(h) = h else { panic!() };
        assert!((t - h[0]).abs() < 1e-5);
        assert!((-2.0..=2.0).contains(t));
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let device = Device::flex();
    let (train, d) = env_states("CartPole-v1", 200, 9);
    let discrete = ActionSpace::Discrete { n: 2 };
    let config = PolicyConfig::default();
    let mut policy =
        PolicyModel::from_states(config.clone(), &train, d, discrete.clone(), &device).unwrap();
    let labels = discrete_labels(&train, d, cart_label);
    let fit = FitConfig {
        epochs: 1,
        ..FitConfig::default()
    };

    // Construction.
    assert!(matches!(
        PolicyModel::from_states(
            config.clone(),
            &train[..d + 1],
            d,
            discrete.clone(),
            &device
        ),
        Err(WorldModelError::Shape { .. })
    ));
    assert!(matches!(
        PolicyModel::from_states(config.clone(), &[], d, discrete.clone(), &device),
        Err(WorldModelError::EmptyDataset(_))
    ));
    let mut nan_states = train.clone();
    nan_states[5] = f32::NAN;
    assert!(matches!(
        PolicyModel::from_states(config.clone(), &nan_states, d, discrete.clone(), &device),
        Err(WorldModelError::NonFinite { index: 5, .. })
    ));
    let zero_width = PolicyConfig {
        hidden: vec![64, 0],
        ..PolicyConfig::default()
    };
    assert!(matches!(
        PolicyModel::from_states(zero_width, &train, d, discrete.clone(), &device),
        Err(WorldModelError::Config(_))
    ));
    assert!(matches!(
        PolicyModel::new(
            config.clone(),
            ObsNorm {
                mean: vec![0.0; 4],
                std: vec![1.0, 0.0, 1.0, 1.0]
            },
            discrete.clone(),
            &device
        ),
        Err(WorldModelError::Config(_))
    ));
    assert!(matches!(
        PolicyModel::new(
            config.clone(),
            ObsNorm::identity(4),
            ActionSpace::Discrete { n: 0 },
            &device
        ),
        Err(WorldModelError::Config(_))
    ));
    assert!(matches!(
        action_space_for(
            &plasma_protocol::Space::boxed(vec![f32::NEG_INFINITY], vec![1.0]).unwrap(),
            ContinuousMapping::TanhScaled
        ),
        Err(WorldModelError::Config(_))
    ));

    // Fitting.
    assert!(matches!(
        policy.fit(&train, Labels::Discrete(&labels[1..]), &fit),
        Err(WorldModelError::Shape { .. })
    ));
    let mut out_of_range = labels.clone();
    out_of_range[3] = 2;
    assert!(matches!(
        policy.fit(&train, Labels::Discrete(&out_of_range), &fit),
        Err(WorldModelError::Action { index: 3, .. })
    ));
    assert!(matches!(
        policy.fit(&train, Labels::Continuous(&[0.0; 200]), &fit),
        Err(WorldModelError::Shape { .. })
    ));
    assert!(matches!(
        policy.fit(&nan_states, Labels::Discrete(&labels), &fit),
        Err(WorldModelError::NonFinite { .. })
    ));
    assert!(matches!(
        policy.fit(&train[..train.len() - 1], Labels::Discrete(&labels), &fit),
        Err(WorldModelError::Shape { .. })
    ));
    assert!(matches!(
        policy.fit(&[], Labels::Discrete(&[]), &fit),
        Err(WorldModelError::EmptyDataset(_))
    ));
    for bad in [
        FitConfig {
            batch_size: 0,
            ..fit.clone()
        },
        FitConfig {
            learning_rate: f32::NAN,
            ..fit.clone()
        },
    ] {
        assert!(matches!(
            policy.fit(&train, Labels::Discrete(&labels), &bad),
            Err(WorldModelError::Config(_))
        ));
    }
    // A learning rate that blows up is a typed error and leaves the policy as it was.
    let before = policy.to_float_policy().unwrap();
    let huge = FitConfig {
        learning_rate: 1e38,
        epochs: 5,
        ..fit.clone()
    };
    assert!(matches!(
        policy.fit(&train, Labels::Discrete(&labels), &huge),
        Err(WorldModelError::Diverged { .. })
    ));
    assert_eq!(policy.to_float_policy().unwrap(), before);

    // Acting.
    let policy = PolicyModel::from_states(config, &train, d, discrete, &device).unwrap();
    assert!(matches!(
        policy.act_batch(&train[..d + 2]),
        Err(WorldModelError::Shape { .. })
    ));
    assert!(matches!(
        policy.act_batch(&nan_states[..2 * d]),
        Err(WorldModelError::NonFinite { .. })
    ));
    assert!(policy.act_batch(&[]).unwrap().is_empty());
    let wrong = Tensor::<2>::zeros([3, d + 1], &device);
    assert!(matches!(
        policy.act_tensor(wrong),
        Err(WorldModelError::Shape { .. })
    ));

    // LoRA.
    for bad in [
        LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        },
        LoraConfig {
            rank: 65,
            ..LoraConfig::default()
        },
        LoraConfig {
            layers: Some(vec![3]),
            ..LoraConfig::default()
        },
        LoraConfig {
            layers: Some(vec![]),
            ..LoraConfig::default()
        },
        LoraConfig {
            alpha: f32::INFINITY,
            ..LoraConfig::default()
        },
    ] {
        assert!(matches!(
            policy.with_lora(&bad),
            Err(WorldModelError::Config(_))
        ));
    }
    assert!(matches!(
        policy.to_float_lora(),
        Err(WorldModelError::Config(_))
    ));
    let adapted = policy.with_lora(&LoraConfig::default()).unwrap();
    assert!(matches!(
        adapted.with_lora(&LoraConfig::default()),
        Err(WorldModelError::Config(_))
    ));
    // An adapter for a base of another shape cannot be packed.
    let other = PolicyModel::new(
        PolicyConfig {
            hidden: vec![8],
            ..PolicyConfig::default()
        },
        ObsNorm::identity(d),
        ActionSpace::Discrete { n: 2 },
        &device,
    )
    .unwrap();
    assert!(matches!(
        adapter_packet(
            &other.to_float_policy().unwrap(),
            &adapted.to_float_lora().unwrap(),
            Default::default(),
            provenance("x"),
            &signer(),
            3
        ),
        Err(WorldModelError::Config(_))
    ));
}

#[test]
fn configs_round_trip_through_json_with_defaults() {
    let config: PolicyConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, PolicyConfig::default());
    assert_eq!(config.hidden, [64, 64]);
    assert_eq!(config.activation, plasma_packets::Activation::Tanh);
    assert_eq!(config.continuous_mapping, ContinuousMapping::TanhScaled);
    let relu: PolicyConfig = serde_json::from_str(r#"{"activation": "Relu"}"#).unwrap();
    assert_eq!(relu.activation, plasma_packets::Activation::Relu);
    assert!(serde_json::from_str::<PolicyConfig>(r#"{"hiden": [3]}"#).is_err());
    let lora: LoraConfig = serde_json::from_str(r#"{"rank": 2, "layers": [1]}"#).unwrap();
    assert_eq!(lora.rank, 2);
    assert_eq!(lora.layers, Some(vec![1]));
    let fit: FitConfig = serde_json::from_str(r#"{"epochs": 5}"#).unwrap();
    assert_eq!(fit.epochs, 5);
    assert_eq!(fit.batch_size, FitConfig::default().batch_size);
}

#[test]
fn a_float_policy_reloads_to_the_same_network_and_takes_adapters() {
    let device = Device::flex();
    let (train, d) = env_states("CartPole-v1", 400, 21);
    let mut policy = PolicyModel::from_states(
        PolicyConfig {
            hidden: vec![16, 8],
            ..PolicyConfig::default()
        },
        &train,
        d,
        ActionSpace::Discrete { n: 2 },
        &device,
    )
    .unwrap();
    let labels: Vec<u32> = train.chunks(d).map(cart_label).collect();
    policy
        .fit(
            &train,
            Labels::Discrete(&labels),
            &FitConfig {
                epochs: 2,
                ..FitConfig::default()
            },
        )
        .unwrap();
    let float = policy.to_float_policy().unwrap();
    let reloaded = PolicyModel::from_float_policy(&float, &device).unwrap();
    assert_eq!(reloaded.to_float_policy().unwrap(), float);
    assert_eq!(reloaded.config().hidden, vec![16, 8]);
    let (a, b) = (
        policy.outputs_batch(&train).unwrap(),
        reloaded.outputs_batch(&train).unwrap(),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    // An adapter on the reloaded base starts as the base (B = 0) and trains.
    let adapter = reloaded.with_lora(&LoraConfig::default()).unwrap();
    assert!(adapter.trainable_params() < reloaded.trainable_params());

    // Networks this crate could not have built are typed errors, not panics.
    let mut bad = float.clone();
    bad.layers[0].weights.pop();
    assert!(PolicyModel::from_float_policy(&bad, &device).is_err());
    let mut bad = float.clone();
    bad.layers[1].in_dim = 7;
    assert!(PolicyModel::from_float_policy(&bad, &device).is_err());
    let mut bad = float.clone();
    bad.layers[2].activation = Activation::Tanh;
    assert!(PolicyModel::from_float_policy(&bad, &device).is_err());
    let mut bad = float;
    bad.layers[0].bias[0] = f32::NAN;
    assert!(PolicyModel::from_float_policy(&bad, &device).is_err());
}
