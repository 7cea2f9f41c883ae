//! Tests of the auditor, with planted faults: a world model trained on real CartPole-v1
//! transitions and given a reward exploit in a region its data never covered, and packets
//! with corrupted weights.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor, TensorData};
use plasma_envs::{Env, make};
use plasma_packets::float::synthetic;
use plasma_packets::{ActionSpace, FloatPolicy, ObsNorm, Packet, PacketContent, Provenance};
use plasma_protocol::{ActionRef, TaskSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::action::ActionCodec;
use crate::config::{EnsembleConfig, TrainConfig, WorldModelConfig};
use crate::data::Dataset;
use crate::ensemble::Ensemble;
use crate::error::{Result, WorldModelError};
use crate::model::{
    ActionBatch, Decoded, LossReport, ModelState, StepOptions, TrainReport, WorldModel,
};
use crate::rollout::{ActionSequences, Driver, HostTrajectory, RolloutOptions, start_states};

/// How real transitions are chosen.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Uniformly random actions.
    Random,
    /// The balancing controller of [`controller`] with a target cart velocity.
    Controller(f32),
}

/// A balancing controller that also drives the cart towards velocity `target`: push right
/// when the pole leans or falls right, or when the cart is slower than the target.
fn controller(obs: &[f32], target: f32) -> u32 {
    let (xd, th, thd) = (obs[1], obs[2], obs[3]);
    u32::from(10.0 * th + 2.0 * thd + (xd - target) > 0.0)
}

/// Real CartPole-v1 transitions: whole episodes from seeded resets.
fn cartpole_data(transitions: usize, seed: u64, behaviour: Behaviour) -> Dataset {
    let mut env = make("CartPole-v1").unwrap();
    let mut data = Dataset::new(&env.spec()).unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut episode = 0;
    while data.len() < transitions {
        let mut obs = env.reset(Some(seed * 1000 + episode));
        episode += 1;
        loop {
            let a = match behaviour {
                Behaviour::Random => rng.random_range(0..2u32),
                Behaviour::Controller(v) => controller(&obs, v),
            };
            let step = env.step(ActionRef::Discrete(a)).unwrap();
            data.push(
                &obs,
                ActionRef::Discrete(a),
                step.reward,
                &step.obs,
                step.terminated,
            )
            .unwrap();
            obs = step.obs;
            if step.terminated || step.truncated || data.len() >= transitions {
                break;
            }
        }
    }
    data
}

/// A small ensemble trained on real random-action CartPole data, with its training and
/// held-out data.
fn trained_cartpole() -> (Ensemble, Dataset, Dataset) {
    let train = cartpole_data(3000, 1, Behaviour::Random);
    let holdout = cartpole_data(500, 2, Behaviour::Random);
    let config = EnsembleConfig {
        members: 3,
        hidden: vec![64, 64],
        ..EnsembleConfig::default()
    };
    let spec = make("CartPole-v1").unwrap().spec();
    let mut model = Ensemble::new(config, spec, Device::flex()).unwrap();
    let train_config = TrainConfig {
        max_epochs: 60,
        batch_size: 64,
        learning_rate: 3e-3,
        patience: 40,
        termination_pos_weight: Some(1.0),
        ..TrainConfig::default()
    };
    model.fit(&train, &train_config).unwrap();
    (model, train, holdout)
}

/// The planted fault: the trained ensemble, except that every step landing beyond cart
/// position `threshold` earns `bonus` more reward — a region the random-action data never
/// reached (a model that extrapolates a reward it never saw).
struct PlantedExploit {
    inner: Ensemble,
    threshold: f32,
    bonus: f32,
}

impl WorldModel for PlantedExploit {
    fn family(&self) -> &str {
        "planted-exploit"
    }
    fn config(&self) -> WorldModelConfig {
        self.inner.config()
    }
    fn spec(&self) -> &TaskSpec {
        self.inner.spec()
    }
    fn codec(&self) -> &ActionCodec {
        self.inner.codec()
    }
    fn device(&self) -> &Device {
        self.inner.device()
    }
    fn members(&self) -> usize {
        self.inner.members()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn encode(&self, obs: Tensor<2>) -> Result<ModelState> {
        self.inner.encode(obs)
    }
    fn transition(
        &self,
        state: &ModelState,
        action: &ActionBatch,
        options: &StepOptions,
    ) -> Result<ModelState> {
        let mut next = self.inner.transition(state, action, options)?;
        let [p, _] = next.latent.dims();
        let x = next.latent.clone().narrow(1, 0, 1).reshape([p]);
        let bonus = x
            .greater_elem(self.threshold)
            .float()
            .mul_scalar(self.bonus);
        next.reward = next.reward.map(|r| r + bonus);
        Ok(next)
    }
    fn decode(&self, state: &ModelState) -> Result<Decoded> {
        self.inner.decode(state)
    }
    fn loss(&self, data: &Dataset) -> Result<LossReport> {
        self.inner.loss(data)
    }
    fn fit(&mut self, data: &Dataset, config: &TrainConfig) -> Result<TrainReport> {
        self.inner.fit(data, config)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        self.inner.save(dir)
    }
}

/// Real reset observations of CartPole-v1.
fn reset_states(n: usize, seed: u64) -> Vec<f32> {
    let mut env = make("CartPole-v1").unwrap();
    (0..n as u64)
        .flat_map(|i| env.reset(Some(seed + i)))
        .collect()
}

fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// Phantom paths from `starts` driven by the controller with cart-velocity target `target`.
fn controlled_paths<M: WorldModel>(
    model: &M,
    starts: &[f32],
    target: f32,
    horizon: usize,
) -> HostTrajectory {
    let device = model.device().clone();
    let start = start_states(starts, 4, &device).unwrap();
    let mut policy = |obs: Tensor<2>, _step: usize| -> Result<ActionBatch> {
        let [p, _] = obs.dims();
        let actions: Vec<i64> = host(obs)
            .chunks_exact(4)
            .map(|o| i64::from(controller(o, target)))
            .collect();
        Ok(ActionBatch::Discrete(Tensor::<1, Int>::from_data(
            TensorData::new(actions, [p]),
            &device,
        )))
    };
    let options = RolloutOptions {
        uncertainty: true,
        record: true,
        ..RolloutOptions::default()
    };
    model
        .rollout(start, Driver::Policy(&mut policy), horizon, &options)
        .unwrap()
        .to_host()
        .unwrap()
}

/// Phantom paths from `starts` with uniformly random actions.
fn random_paths<M: WorldModel>(model: &M, starts: &[f32], horizon: usize) -> HostTrajectory {
    let device = model.device().clone();
    let p = starts.len() / 4;
    let mut rng = SmallRng::seed_from_u64(7);
    let actions: Vec<i64> = (0..p * horizon).map(|_| rng.random_range(0..2)).collect();
    let seq = ActionSequences::Discrete(Tensor::<2, Int>::from_data(
        TensorData::new(actions, [p, horizon]),
        &device,
    ));
    let options = RolloutOptions {
        uncertainty: true,
        record: true,
        ..RolloutOptions::default()
    };
    model
        .rollout(
            start_states(starts, 4, &device).unwrap(),
            Driver::Actions(&seq),
            horizon,
            &options,
        )
        .unwrap()
        .to_host()
        .unwrap()
}

/// Whether path `p` reaches cart position beyond `x` on a step it is alive for (with
/// probability ≥ `min_alive`), i.e. collects the planted bonus.
fn exploits(t: &HostTrajectory, p: usize, x: f32, min_alive: f32) -> bool {
    let mut alive = 1.0;
    for s in 0..t.horizon {
        let i = p * t.horizon + s;
        if alive >= min_alive && t.obs[i * 4] > x {
            return true;
        }
        alive *= t.continue_probs[i];
    }
    false
}

/// Whether path `p` stays, on the steps it is alive for, where real CartPole-v1 can be:
/// short of the planted region (cart position ≤ `x`), and not going on past a state where
/// the real task terminates (|x| > 2.4 or |θ| > 0.2095): imagined paths that stay alive
/// after the pole has fallen are model errors, not honest paths.
fn stays_real(t: &HostTrajectory, p: usize, x: f32, min_alive: f32) -> bool {
    let mut alive = 1.0;
    for s in 0..t.horizon {
        let i = p * t.horizon + s;
        let o = &t.obs[i * 4..i * 4 + 4];
        alive *= t.continue_probs[i];
        // A real episode reaches one terminal state; an honest path does not go on (stay
        // alive) after it.
        if o[0] > x || (alive >= min_alive && (o[0].abs() > 2.4 || o[2].abs() > 0.2095)) {
            return false;
        }
    }
    true
}

#[test]
fn planted_reward_exploit_is_flagged_and_honest_paths_pass() {
    let (ensemble, train, holdout) = trained_cartpole();
    let data_max_x = (0..train.len())
        .flat_map(|i| [train.obs(i)[0], train.next_obs(i)[0]])
        .fold(f32::NEG_INFINITY, f32::max);
    let threshold = 1.0;
    assert!(
        data_max_x < threshold / 1.5,
        "the planted region must lie well outside the data (data reaches x = {data_max_x})"
    );
    let model = PlantedExploit {
        inner: ensemble,
        threshold,
        bonus: 10.0,
    };
    let config = AuditConfig::default();
    let cal = Calibration::fit(&model, &train, &holdout, &config).unwrap();
    eprintln!(
        "calibration: τ_u {:.4} (real q99 {:.4}), rewards [{:.4}, {:.4}], τ_s {:.3} (real q99 {:.3})",
        cal.disagreement_threshold,
        cal.disagreement.q99,
        cal.reward_low,
        cal.reward_high,
        cal.shift_threshold,
        cal.shift.q99
    );

    let starts = reset_states(128, 10_000);
    let horizon = 100;
    let driven = controlled_paths(&model, &starts, 1.5, horizon);
    let balanced = controlled_paths(&model, &starts, 0.0, horizon);
    let random = random_paths(&model, &starts, horizon);

    let rate = |paths: &[PathReport], f: fn(&PathReport) -> bool| {
        paths.iter().filter(|r| f(r)).count() as f32 / paths.len().max(1) as f32
    };
    let describe = |what: &str, paths: &[PathReport]| {
        eprintln!(
            "{what}: {} — rejected {:.1}% (exploitation {:.1}%, reward spike {:.1}%, shift {:.1}%)",
            paths.len(),
            100.0 * rate(paths, |r| !r.approved),
            100.0 * rate(paths, |r| r.flags.exploitation),
            100.0 * rate(paths, |r| r.flags.reward_spike),
            100.0 * rate(paths, |r| r.flags.distribution_shift),
        )
    };
    let mut exploiting = vec![];
    let mut honest = vec![];
    for (name, t) in [
        ("driven right", &driven),
        ("balanced", &balanced),
        ("random", &random),
    ] {
        let audit = audit_paths(&cal, t).unwrap();
        let (mut e, mut h, mut other) = (vec![], vec![], vec![]);
        for p in 0..t.paths {
            let report = audit.paths[p].clone();
            if exploits(t, p, threshold, config.min_alive) {
                e.push(report);
            } else if stays_real(t, p, threshold, config.min_alive) {
                h.push(report);
            } else {
                other.push(report);
            }
        }
        describe(&format!("{name} paths exploiting"), &e);
        describe(&format!("{name} paths honest"), &h);
        describe(
            &format!("{name} paths neither (left the real task's region)"),
            &other,
        );
        exploiting.extend(e);
        honest.extend(h);
        if std::ptr::eq(t, &driven) {
            eprintln!("driven paths' failure modes:");
            for m in &audit.failures.modes {
                eprintln!("  {}", m.description);
            }
            let exploit_mode = audit
                .failures
                .modes
                .iter()
                .find(|m| m.kind == FailureKind::RewardSpike)
                .expect("the planted bonus shows as a failure mode");
            assert!(
                exploit_mode.state_min[0] > threshold,
                "spikes happen in the planted region: {exploit_mode:?}"
            );
            assert!(
                exploit_mode
                    .conditions
                    .iter()
                    .any(|c| c.dim <= 1 && c.direction == Direction::Above),
                "what leads there: the cart far right or fast right: {exploit_mode:?}"
            );
        }
    }
    describe("all exploiting paths", &exploiting);
    describe("all honest paths", &honest);
    assert!(
        exploiting.len() >= 64,
        "too few paths reach the planted region: {}",
        exploiting.len()
    );
    assert!(
        honest.len() >= 128,
        "too few honest paths: {}",
        honest.len()
    );
    assert!(rate(&exploiting, |r| !r.approved) >= 0.95);
    assert!(rate(&exploiting, |r| r.flags.exploitation) >= 0.95);
    assert!(rate(&honest, |r| !r.approved) <= 0.05);
}

#[test]
fn calibration_thresholds_come_from_the_data() {
    let (model, train, holdout) = trained_cartpole();
    let config = AuditConfig::default();
    let a = Calibration::fit(&model, &train, &holdout, &config).unwrap();
    // The thresholds are the documented coefficient times the real quantile.
    assert!((a.disagreement_threshold - 1.5 * a.disagreement.q99).abs() < 1e-6);
    assert!((a.shift_threshold - 1.5 * a.shift.q99).abs() < 1e-5);
    assert_eq!(a.reward.min, 1.0);
    assert!((a.reward_high - (1.0 + 3.0 * a.reward_spread)).abs() < 1e-6);

    // Other real data (a balancing controller's: other states, longer episodes) gives
    // other thresholds.
    let other = cartpole_data(500, 3, Behaviour::Controller(0.0));
    let b = Calibration::fit(&model, &train, &other, &config).unwrap();
    assert_ne!(a.disagreement_threshold, b.disagreement_threshold);
    assert_ne!(a.shift_threshold, b.shift_threshold);
    assert_ne!(a.reward_error, b.reward_error);

    // Other rewards in the data move the reward range.
    let mut doubled = Dataset::new(model.spec()).unwrap();
    for i in 0..holdout.len() {
        doubled
            .push(
                holdout.obs(i),
                ActionRef::Discrete(u32::from(holdout.action(i)[1] > 0.5)),
                2.0,
                holdout.next_obs(i),
                holdout.terminated(i),
            )
            .unwrap();
    }
    let c = Calibration::fit(&model, &train, &doubled, &config).unwrap();
    assert_eq!(c.reward.max, 2.0);
    assert!(c.reward_high > a.reward_high + 0.9);

    // Other training data moves the training-state distribution.
    let d = Calibration::fit(&model, &other, &holdout, &config).unwrap();
    assert_ne!(a.state_mean, d.state_mean);
    assert_ne!(a.shift_threshold, d.shift_threshold);

    // Coefficients scale the thresholds.
    let strict = AuditConfig {
        disagreement_coef: 3.0,
        ..config.clone()
    };
    let e = Calibration::fit(&model, &train, &holdout, &strict).unwrap();
    assert!((e.disagreement_threshold - 2.0 * a.disagreement_threshold).abs() < 1e-5);

    // It round-trips through JSON (the server stores it).
    let json = serde_json::to_string(&a).unwrap();
    let back: Calibration = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);

    // Real states: the held-out ones pass, shifted ones are rejected.
    let mut states = vec![];
    for i in 0..holdout.len() {
        states.extend_from_slice(holdout.obs(i));
    }
    let same = audit_states(&a, &states).unwrap();
    assert!(same.verdict.approved, "{:?}", same.verdict);
    let shifted: Vec<f32> = states
        .chunks_exact(4)
        .flat_map(|s| [s[0] + 1.0, s[1], s[2], s[3]])
        .collect();
    let moved = audit_states(&a, &shifted).unwrap();
    assert!(!moved.verdict.approved);
    assert!(moved.beyond_share > 0.9);

    // Bad inputs are errors, not panics.
    let empty = Dataset::new(model.spec()).unwrap();
    assert!(matches!(
        Calibration::fit(&model, &train, &empty, &config),
        Err(WorldModelError::EmptyDataset(_))
    ));
    assert!(audit_states(&a, &[0.0; 3]).is_err());
    assert!(audit_states(&a, &[f32::NAN; 4]).is_err());
    let bad = AuditConfig {
        quantile: 1.5,
        ..config
    };
    assert!(Calibration::fit(&model, &train, &holdout, &bad).is_err());
}

/// A hand-made calibration (no model) for tests of the path checks' mechanics.
fn toy_calibration() -> Calibration {
    Calibration {
        task: "Toy-v0".into(),
        obs_dim: 1,
        config: AuditConfig::default(),
        train_transitions: 3,
        holdout_transitions: 3,
        disagreement: Summary::default(),
        disagreement_threshold: 0.1,
        reward: Summary {
            count: 3,
            min: 0.0,
            max: 1.0,
            ..Summary::default()
        },
        reward_error: Summary::default(),
        reward_spread: 0.1,
        reward_low: -0.3,
        reward_high: 1.3,
        state_mean: vec![0.0],
        state_std: vec![1.0],
        reference_states: vec![-1.0, 0.0, 1.0],
        shift: Summary::default(),
        shift_threshold: 0.5,
    }
}

#[test]
fn path_checks_flag_what_they_document() {
    let cal = toy_calibration();
    // Path 0: honest. Path 1: earns a spike where members disagree. Path 2: wanders far
    // from the data. Path 3: dies at step 1 (continue 0.1), then earns a bonus that does
    // not count. Path 4: NaN reward.
    let t = HostTrajectory {
        paths: 5,
        horizon: 3,
        returns: vec![1.5, 10.5, 1.5, 0.5, 0.0],
        obs: vec![
            0.0, 0.5, 1.0, //
            0.0, 0.5, 1.0, //
            0.0, 2.0, 3.0, //
            0.0, 0.0, 9.0, //
            0.0, 0.0, 0.0,
        ],
        rewards: vec![
            0.5,
            0.5,
            0.5, //
            0.5,
            9.5,
            0.5, //
            0.5,
            0.5,
            0.5, //
            0.5,
            0.5,
            99.0, //
            0.5,
            f32::NAN,
            0.5,
        ],
        continue_probs: vec![
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 1.0, 1.0,
        ],
        uncertainty: vec![
            0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0,
        ],
        in_support: vec![],
        members: vec![0, 1, 2, 0, 1],
    };
    let audit = audit_paths(&cal, &t).unwrap();
    assert_eq!(audit.approved, [true, false, false, true, false]);
    let f = |p: usize| audit.paths[p].flags;
    assert!(f(1).exploitation && f(1).reward_spike && !f(1).distribution_shift);
    assert!(f(2).distribution_shift && !f(2).exploitation && !f(2).reward_spike);
    assert!(
        !f(3).any(),
        "steps after a predicted termination do not count"
    );
    assert_eq!(audit.paths[3].collapse_step, Some(1));
    assert!(f(4).non_finite);
    assert!(!audit.verdict.approved, "3 of 5 rejected is more than 25%");
    let kinds: Vec<FailureKind> = audit.failures.modes.iter().map(|m| m.kind).collect();
    assert!(kinds.contains(&FailureKind::Termination));
    assert!(kinds.contains(&FailureKind::DistributionShift));
    assert_eq!(audit.approved_indices(), [0, 3]);

    // Without recorded uncertainty the audit refuses, naming what is missing.
    let mut missing = t.clone();
    missing.uncertainty.clear();
    assert!(matches!(
        audit_paths(&cal, &missing),
        Err(WorldModelError::Shape { .. })
    ));
    let mut broken = cal.clone();
    broken.state_std = vec![0.0];
    assert!(audit_paths(&broken, &t).is_err());
}

#[test]
fn sim_to_real_gap_verdicts() {
    let config = AuditConfig::default();
    let close = sim_to_real_gap(&[500.0; 16], &[500.0, 480.0, 500.0, 500.0], &config).unwrap();
    assert!(close.verdict.approved, "{:?}", close.verdict);
    let optimistic = sim_to_real_gap(&[500.0; 16], &[90.0, 110.0, 100.0], &config).unwrap();
    assert!(!optimistic.verdict.approved);
    assert!(optimistic.gap > 0.0);
    assert!(optimistic.verdict.reasons[0].contains("optimistic"));
    let pessimistic = sim_to_real_gap(&[-900.0; 4], &[-200.0, -150.0], &config).unwrap();
    assert!(!pessimistic.verdict.approved);
    assert!(sim_to_real_gap(&[], &[1.0], &config).is_err());
    assert!(sim_to_real_gap(&[1.0], &[f32::NAN], &config).is_err());
}

#[test]
fn verdicts_map_to_packet_audit_status() {
    use plasma_packets::AuditStatus;
    let ok = Verdict::from_reasons(vec![], Default::default());
    assert_eq!(ok.audit_status(false), Some(AuditStatus::Approved));
    let no = Verdict::from_reasons(vec!["é".repeat(100)], Default::default());
    assert_eq!(no.status(), VerdictStatus::Rejected);
    assert_eq!(no.audit_status(false), None);
    assert_eq!(
        no.audit_status(true),
        Some(AuditStatus::ForcedAfterRejection)
    );
    assert!(no.summary(21).len() <= 21);
}

/// A "trained" CartPole policy: a synthetic network whose input normalization is the real
/// data's (as a trained policy's is), and the real states it is audited on.
fn cartpole_policy() -> (FloatPolicy, Vec<f32>, Vec<f32>) {
    let data = cartpole_data(600, 4, Behaviour::Random);
    let mut states = vec![];
    for i in 0..data.len() {
        states.extend_from_slice(data.obs(i));
    }
    let (mean, std) = super::stats::mean_std(&states, 4);
    let mut policy = synthetic::policy(3, 4, &[64, 64], ActionSpace::Discrete { n: 2 });
    policy.obs_norm = ObsNorm {
        mean,
        std: std.clone(),
    };
    (policy, states, std)
}

fn provenance() -> Provenance {
    Provenance {
        task: "CartPole-v1".into(),
        agent_id: String::new(),
        training_run: "test".into(),
        created_unix_ms: 0,
        audit: plasma_packets::AuditStatus::Unaudited,
        audit_summary: String::new(),
    }
}

#[test]
fn corrupted_packets_are_rejected() {
    let (policy, states, std) = cartpole_policy();
    let config = PacketAuditConfig::default();
    let limits = PacketLimits::calibrate(&policy, None, &states, &std, &config).unwrap();
    let clean = policy.quantize().unwrap();
    let bytes = Packet {
        provenance: provenance(),
        content: PacketContent::Base(clean.clone()),
    }
    .encode(None, 19)
    .unwrap();
    let audit = audit_encoded_packet(&limits, &bytes, None).unwrap();
    eprintln!(
        "clean packet: agreement {:.3}, flip rate {:.4} (trained {:.4}, limit {:.4}), \
         sensitivity {:.4} (trained {:.4}), {} bytes",
        audit.agreement,
        audit.flip_rate,
        limits.reference_flip_rate,
        limits.max_flip_rate,
        audit.sensitivity,
        limits.reference_sensitivity,
        bytes.len()
    );
    assert!(audit.verdict.approved, "{:?}", audit.verdict);

    // A blown-up layer (scales × 1000): finite, valid, and wrong.
    let mut blown = clean.clone();
    blown.layers[1]
        .weights
        .scales
        .iter_mut()
        .for_each(|s| *s *= 1000.0);
    let audit = audit_packet(&limits, &blown, None, None).unwrap();
    eprintln!("blown-up layer: {:?}", audit.verdict.reasons);
    assert!(!audit.verdict.approved);
    assert!(
        audit
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("weight norm"))
    );

    // A flipped weight block: norms unchanged, behaviour not.
    let mut flipped = clean.clone();
    let cols = flipped.layers[0].weights.cols as usize;
    for v in &mut flipped.layers[0].weights.values[..32 * cols] {
        *v = -*v;
    }
    let audit = audit_packet(&limits, &flipped, None, None).unwrap();
    eprintln!(
        "flipped block: agreement {:.3}, flip rate {:.4}, reasons {:?}",
        audit.agreement, audit.flip_rate, audit.verdict.reasons
    );
    assert!(!audit.verdict.approved);

    // NaN and infinite scales: refused by validation.
    let mut nan = clean.clone();
    nan.layers[2].weights.scales[0] = f32::NAN;
    assert!(
        !audit_packet(&limits, &nan, None, None)
            .unwrap()
            .verdict
            .approved
    );
    let mut huge = clean.clone();
    huge.layers[0].weights.scales[0] = f32::MAX;
    assert!(
        !audit_packet(&limits, &huge, None, None)
            .unwrap()
            .verdict
            .approved
    );

    // A corrupted byte: the packet does not decode.
    let mut bad_bytes = bytes.clone();
    let mid = bad_bytes.len() / 2;
    bad_bytes[mid] ^= 0x55;
    assert!(
        !audit_encoded_packet(&limits, &bad_bytes, None)
            .unwrap()
            .verdict
            .approved
    );

    // Too large for its kind.
    let small = PacketAuditConfig {
        max_base_bytes: 100,
        ..config.clone()
    };
    let tight = PacketLimits::calibrate(&policy, None, &states, &std, &small).unwrap();
    assert!(
        !audit_packet(&tight, &clean, None, Some(bytes.len()))
            .unwrap()
            .verdict
            .approved
    );

    // Bad calibration input is an error.
    assert!(PacketLimits::calibrate(&policy, None, &states[..3], &std, &config).is_err());
    assert!(PacketLimits::calibrate(&policy, None, &states, &std[..2], &config).is_err());
}

#[test]
fn corrupted_adapters_are_rejected() {
    let (policy, states, std) = cartpole_policy();
    let lora = synthetic::lora(5, &policy, 4, 8.0);
    let config = PacketAuditConfig::default();
    let limits = PacketLimits::calibrate(&policy, Some(&lora), &states, &std, &config).unwrap();
    let base = policy.quantize().unwrap();
    let adapter = lora.quantize(&policy).unwrap();
    let audit = audit_packet(&limits, &base, Some(&adapter), Some(2000)).unwrap();
    eprintln!(
        "clean adapter: delta ratios {:?}, agreement {:.3}",
        audit.delta_ratios, audit.agreement
    );
    assert!(audit.verdict.approved, "{:?}", audit.verdict);

    // An adapter whose update is 20 times larger.
    let mut big = adapter.clone();
    big.alpha *= 20.0;
    let audit = audit_packet(&limits, &base, Some(&big), None).unwrap();
    assert!(!audit.verdict.approved);
    assert!(
        audit
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("LoRA delta"))
    );

    // Without a reference adapter the absolute ratio limit applies.
    let plain = PacketLimits::calibrate(&policy, None, &states, &std, &config).unwrap();
    assert_eq!(plain.max_delta_ratios, vec![1.0; 3]);
}
