//! The edge runtime: fidelity of the int8 kernels against the f32 network, adapter
//! binding, hot-swap under concurrent acting, rollback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use plasma_packets::float::synthetic;
use plasma_packets::{
    ActError, Action, EdgeRuntime, FloatLora, FloatPolicy, Kernel, OwnedAction, RuntimeError,
    Verifier, decode_unverified,
};

use crate::common::*;

fn pinned() -> Verifier {
    Verifier::pinned(signer().public_key())
}

/// Share of observations on which the runtime and the f32 reference choose the same
/// discrete action.
fn agreement(
    rt: &EdgeRuntime,
    policy: &FloatPolicy,
    lora: Option<&FloatLora>,
    n: usize,
    seed: u64,
) -> f64 {
    let mut rng = synthetic::Rng::new(seed);
    let mut actor = rt.actor();
    let same = (0..n)
        .filter(|_| {
            let obs = synthetic::observation(&mut rng, policy);
            let got = actor.act(&obs).unwrap().to_owned();
            got == policy.act(&obs, lora)
        })
        .count();
    same as f64 / n as f64
}

#[test]
fn int8_agrees_with_f32_on_99_percent_of_actions() {
    for seed in [1, 2, 3] {
        let pair = default_pair(seed);
        for kernel in [Kernel::Merged, Kernel::Int8] {
            let rt = EdgeRuntime::load(&pair.base, pinned(), kernel).unwrap();
            let base_agree = agreement(&rt, &pair.policy, None, 10_000, seed + 7);
            rt.apply_adapter(&pair.adapter).unwrap();
            let adapted_agree = agreement(&rt, &pair.policy, Some(&pair.lora), 10_000, seed + 7);
            assert!(
                base_agree >= 0.99,
                "seed {seed} {kernel:?}: base agreement {base_agree}"
            );
            assert!(
                adapted_agree >= 0.99,
                "seed {seed} {kernel:?}: adapted agreement {adapted_agree}"
            );
        }
    }
}

#[test]
fn continuous_outputs_stay_close_to_f32() {
    let policy = synthetic::default_continuous(4, 3, 1, 2.0);
    let lora = synthetic::lora(5, &policy, 8, 16.0);
    let base = base_packet(&policy, Some(&signer()));
    let digest = decode_unverified(&base).unwrap().digest;
    let adapter = adapter_packet(&policy, &lora, digest, Some(&signer()));
    let rt = EdgeRuntime::load(&base, pinned(), Kernel::Merged).unwrap();
    rt.apply_adapter(&adapter).unwrap();
    let p = rt.policy();
    let mut scratch = plasma_packets::Scratch::default();
    let mut rng = synthetic::Rng::new(6);
    let (mut max_err, mut max_ref) = (0.0f32, 0.0f32);
    for _ in 0..10_000 {
        let obs = synthetic::observation(&mut rng, &policy);
        let got = p.outputs(&obs, &mut scratch).unwrap();
        let want = policy.forward(&obs, Some(&lora));
        max_err = max_err.max((got[0] - want[0]).abs());
        max_ref = max_ref.max(want[0].abs());
        // The action is the clamped output.
        let OwnedAction::Continuous(a) = p.act(&obs, &mut scratch).unwrap().to_owned() else {
            panic!()
        };
        assert!((-2.0..=2.0).contains(&a[0]));
    }
    // Error relative to the output range: int8 weights keep it to about a percent.
    assert!(
        max_err / max_ref < 0.03,
        "max error {max_err} of range {max_ref}"
    );
}

#[test]
fn adapter_for_another_base_is_refused() {
    let a = default_pair(1);
    let b = default_pair(2);
    let rt = EdgeRuntime::load(&a.base, pinned(), Kernel::Merged).unwrap();
    assert!(matches!(
        rt.apply_adapter(&b.adapter),
        Err(RuntimeError::BaseMismatch { .. })
    ));
    assert!(matches!(
        rt.apply_adapter(&a.base),
        Err(RuntimeError::WrongKind { .. })
    ));
    assert!(matches!(
        EdgeRuntime::load(&a.adapter, pinned(), Kernel::Merged),
        Err(RuntimeError::WrongKind { .. })
    ));
    assert_eq!(rt.loaded().adapter, None);
}

#[test]
fn bad_observations_are_errors() {
    let pair = default_pair(1);
    let rt = EdgeRuntime::load(&pair.base, pinned(), Kernel::Merged).unwrap();
    let mut actor = rt.actor();
    assert_eq!(
        actor.act(&[0.0; 3]).unwrap_err(),
        ActError::ObsDim {
            got: 3,
            expected: 4
        }
    );
    assert_eq!(
        actor.act(&[0.0, f32::NAN, 0.0, 0.0]).unwrap_err(),
        ActError::NonFinite
    );
    assert!(matches!(
        actor.act(&[0.0; 4]).unwrap(),
        Action::Discrete(0 | 1)
    ));
}

#[test]
fn rollback_restores_previous_states() {
    let pair = default_pair(1);
    let s = signer();
    let lora2 = synthetic::lora(77, &pair.policy, 4, 8.0);
    let base_digest = decode_unverified(&pair.base).unwrap().digest;
    let adapter2 = adapter_packet(&pair.policy, &lora2, base_digest, Some(&s));
    let rt = EdgeRuntime::load(&pair.base, pinned(), Kernel::Merged).unwrap();
    assert!(matches!(
        rt.rollback(),
        Err(RuntimeError::NothingToRollBack)
    ));
    let d1 = rt.apply_adapter(&pair.adapter).unwrap();
    let d2 = rt.apply_adapter(&adapter2).unwrap();
    assert_eq!(rt.loaded().adapter, Some(d2));
    assert_eq!(rt.rollback().unwrap(), Some(d1));
    assert_eq!(rt.policy().adapter_digest(), Some(d1));
    assert_eq!(rt.rollback().unwrap(), None);
    assert_eq!(rt.policy().adapter_digest(), None);
    rt.apply_adapter(&adapter2).unwrap();
    // Re-applying the adapter in effect, or removing twice, adds no history.
    rt.apply_adapter(&adapter2).unwrap();
    rt.remove_adapter().unwrap();
    rt.remove_adapter().unwrap();
    assert_eq!(rt.loaded().adapter, None);
    assert_eq!(rt.rollback().unwrap(), Some(d2));
    assert_eq!(rt.rollback().unwrap(), None);
}

#[test]
fn hot_swap_while_threads_act() {
    let pair = default_pair(1);
    let lora2 = synthetic::lora(78, &pair.policy, 8, 16.0);
    let base_digest = decode_unverified(&pair.base).unwrap().digest;
    let adapter2 = adapter_packet(&pair.policy, &lora2, base_digest, Some(&signer()));
    let rt = Arc::new(EdgeRuntime::load(&pair.base, pinned(), Kernel::Merged).unwrap());
    let stop = Arc::new(AtomicBool::new(false));

    // Each acting thread checks, for a sample of its calls, that the action equals what
    // the f32 reference of the very policy that acted (as the actor reports it) chooses.
    let policy = pair.policy.clone();
    let digest_of = |bytes: &[u8]| decode_unverified(bytes).unwrap().digest;
    let by_adapter: Vec<(Option<plasma_packets::Digest>, Option<FloatLora>)> = vec![
        (None, None),
        (Some(digest_of(&pair.adapter)), Some(pair.lora.clone())),
        (Some(digest_of(&adapter2)), Some(lora2.clone())),
    ];
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let rt = Arc::clone(&rt);
            let stop = Arc::clone(&stop);
            let policy = policy.clone();
            let by_adapter = by_adapter.clone();
            std::thread::spawn(move || {
                let mut actor = rt.actor();
                let mut rng = synthetic::Rng::new(t);
                let mut seen = std::collections::HashSet::new();
                let (mut calls, mut checked, mut matched) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) || calls < 1000 {
                    let obs = synthetic::observation(&mut rng, &policy);
                    let (action, base, adapter) = actor.act_traced(&obs).unwrap();
                    let action = action.to_owned();
                    assert_eq!(base, base_digest);
                    seen.insert(adapter);
                    if calls.is_multiple_of(7) {
                        let (_, lora) = by_adapter.iter().find(|(d, _)| *d == adapter).unwrap();
                        checked += 1;
                        matched += u64::from(policy.act(&obs, lora.as_ref()) == action);
                    }
                    calls += 1;
                }
                (calls, seen.len(), checked, matched)
            })
        })
        .collect();
    for i in 0..200 {
        match i % 3 {
            0 => rt.apply_adapter(&pair.adapter).map(|_| ()).unwrap(),
            1 => rt.apply_adapter(&adapter2).map(|_| ()).unwrap(),
            _ => {
                rt.rollback().unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let (calls, distinct, checked, matched) = w.join().unwrap();
        assert!(calls >= 1000);
        // Every action comes from one of the published policies (up to the rare int8
        // disagreement with the f32 reference, under 1%).
        assert!(
            matched as f64 >= 0.98 * checked as f64,
            "{matched} of {checked} actions match a policy"
        );
        assert!(
            distinct >= 2,
            "a thread saw only {distinct} policy while 200 swaps happened"
        );
    }
}
