#![allow(missing_docs)]
//! The default edge policy of the targets, shared by the benchmarks: CartPole-sized
//! (4 observations → 64 → 64 → 2 logits) with a rank-8 adapter on every layer.

use plasma_packets::float::synthetic;
use plasma_packets::model::{AuditStatus, Provenance};
use plasma_packets::{FloatLora, FloatPolicy, Packet, PacketContent, PacketSigner};

pub const OBS_DIM: usize = 4;

pub fn provenance() -> Provenance {
    Provenance {
        task: "CartPole-v1".into(),
        agent_id: "bench-agent".into(),
        training_run: "bench".into(),
        created_unix_ms: 0,
        audit: AuditStatus::Unaudited,
        audit_summary: String::new(),
    }
}

pub struct Fixture {
    pub policy: FloatPolicy,
    pub lora: FloatLora,
    pub signer: PacketSigner,
    pub base_bytes: Vec<u8>,
    pub adapter_bytes: Vec<u8>,
    pub observations: Vec<Vec<f32>>,
}

pub fn fixture() -> Fixture {
    let policy = synthetic::default_discrete(1, OBS_DIM, 2);
    let lora = synthetic::lora(2, &policy, 8, 16.0);
    let signer = PacketSigner::from_seed(&[42; 32]);
    let base = Packet {
        provenance: provenance(),
        content: PacketContent::Base(policy.quantize().expect("quantize base")),
    };
    let base_bytes = base.encode(Some(&signer), 19).expect("encode base");
    let base_digest = plasma_packets::decode_unverified(&base_bytes)
        .expect("decode")
        .digest;
    let adapter = Packet {
        provenance: provenance(),
        content: PacketContent::Adapter {
            base_digest,
            body: lora.quantize(&policy).expect("quantize adapter"),
        },
    };
    let adapter_bytes = adapter.encode(Some(&signer), 19).expect("encode adapter");
    let mut rng = synthetic::Rng::new(3);
    let observations = (0..1024)
        .map(|_| synthetic::observation(&mut rng, &policy))
        .collect();
    Fixture {
        policy,
        lora,
        signer,
        base_bytes,
        adapter_bytes,
        observations,
    }
}
