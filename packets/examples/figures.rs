//! Prints the packet figures of the README: packet sizes, and int8-vs-f32 fidelity on
//! 10,000 random observations for the default policy shape.
//!
//! `cargo run --release -p plasma-packets --example figures`

use plasma_packets::float::synthetic::{self, Tail};
use plasma_packets::model::{AuditStatus, Provenance};
use plasma_packets::{
    ActionSpace, EdgeRuntime, FloatLora, FloatPolicy, Kernel, Packet, PacketContent, PacketSigner,
    Scratch, Verifier, decode_unverified,
};

const N: usize = 10_000;

fn provenance() -> Provenance {
    Provenance {
        task: "CartPole-v1".into(),
        agent_id: "agent-0001".into(),
        training_run: "train-0001".into(),
        created_unix_ms: 1_763_900_000_000,
        audit: AuditStatus::Approved,
        audit_summary: "approved".into(),
    }
}

fn packets(policy: &FloatPolicy, lora: &FloatLora, signer: &PacketSigner) -> (Vec<u8>, Vec<u8>) {
    let base = Packet {
        provenance: provenance(),
        content: PacketContent::Base(policy.quantize().expect("quantize")),
    }
    .encode(Some(signer), 19)
    .expect("encode");
    let base_digest = decode_unverified(&base).expect("decode").digest;
    let adapter = Packet {
        provenance: provenance(),
        content: PacketContent::Adapter {
            base_digest,
            body: lora.quantize(policy).expect("quantize"),
        },
    }
    .encode(Some(signer), 19)
    .expect("encode");
    (base, adapter)
}

fn main() {
    let signer = PacketSigner::from_seed(&[1; 32]);
    let verifier = Verifier::pinned(signer.public_key());
    println!(
        "| policy | base packet | adapter packet (rank 8) | int8 merged agreement | int8 unmerged agreement |"
    );
    println!("|---|---|---|---|---|");
    for (obs_dim, n, tail, tail_name) in [
        (4usize, 2u32, Tail::TRAINED, "trained-like tail"),
        (6, 3, Tail::TRAINED, "trained-like tail"),
        (8, 4, Tail::TRAINED, "trained-like tail"),
        (4, 2, Tail::STRESS, "stress tail"),
        (8, 4, Tail::STRESS, "stress tail"),
    ] {
        let mut agree = Vec::new();
        let mut sizes = (0, 0);
        let mut base_only = Vec::new();
        for seed in 0..5u64 {
            let policy = synthetic::policy_with_tail(
                seed,
                obs_dim,
                &[64, 64],
                ActionSpace::Discrete { n },
                tail,
            );
            let lora = synthetic::lora(seed + 100, &policy, 8, 16.0);
            let (base, adapter) = packets(&policy, &lora, &signer);
            sizes = (sizes.0.max(base.len()), sizes.1.max(adapter.len()));
            for kernel in [Kernel::Merged, Kernel::Int8] {
                let rt = EdgeRuntime::load(&base, verifier.clone(), kernel).expect("load");
                let mut rng = synthetic::Rng::new(seed + 1);
                let mut actor = rt.actor();
                let obs: Vec<_> = (0..N)
                    .map(|_| synthetic::observation(&mut rng, &policy))
                    .collect();
                let same = obs
                    .iter()
                    .filter(|o| actor.act(o).expect("act").to_owned() == policy.act(o, None))
                    .count();
                base_only.push(same as f64 / N as f64);
                rt.apply_adapter(&adapter).expect("apply");
                let same = obs
                    .iter()
                    .filter(|o| actor.act(o).expect("act").to_owned() == policy.act(o, Some(&lora)))
                    .count();
                agree.push((kernel, same as f64 / N as f64));
            }
        }
        let min = |k: Kernel| {
            agree
                .iter()
                .filter(|(kk, _)| *kk == k)
                .map(|(_, a)| *a)
                .fold(1.0, f64::min)
        };
        println!(
            "| obs {obs_dim} → 64 → 64 → {n}, {tail_name}, 5 seeds | {} B | {} B | ≥ {:.2}% | ≥ {:.2}% |",
            sizes.0,
            sizes.1,
            100.0 * min(Kernel::Merged),
            100.0 * min(Kernel::Int8)
        );
        let min_base = base_only.iter().copied().fold(1.0, f64::min);
        println!(
            "|   (base alone, no adapter) | | | ≥ {:.2}% | |",
            100.0 * min_base
        );
    }

    // Continuous outputs: relative error against the output range.
    let policy = synthetic::default_continuous(7, 3, 1, 2.0);
    let lora = synthetic::lora(8, &policy, 8, 16.0);
    let (base, adapter) = packets(&policy, &lora, &signer);
    let rt = EdgeRuntime::load(&base, verifier, Kernel::Merged).expect("load");
    rt.apply_adapter(&adapter).expect("apply");
    let p = rt.policy();
    let mut scratch = Scratch::default();
    let mut rng = synthetic::Rng::new(9);
    let (mut max_abs, mut range, mut max_rel_big) = (0.0f32, 0.0f32, 0.0f32);
    for _ in 0..N {
        let o = synthetic::observation(&mut rng, &policy);
        let got = p.outputs(&o, &mut scratch).expect("act")[0];
        let want = policy.forward(&o, Some(&lora))[0];
        let err = (got - want).abs();
        max_abs = max_abs.max(err);
        range = range.max(want.abs());
        if want.abs() >= 0.1 {
            max_rel_big = max_rel_big.max(err / want.abs());
        }
    }
    println!();
    println!(
        "continuous (obs 3 → 64 → 64 → 1, rank-8 adapter, {N} observations): max |error| {max_abs:.4} \
         = {:.2}% of the output range {range:.2}; max relative error where |y| ≥ 0.1: {:.2}%",
        100.0 * max_abs / range,
        100.0 * max_rel_big
    );
}
