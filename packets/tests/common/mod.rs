#![allow(missing_docs)]
//! Shared builders for the packet tests.
#![allow(dead_code)]

use plasma_packets::float::synthetic;
use plasma_packets::model::{AuditStatus, Provenance};
use plasma_packets::{
    Digest, FloatLora, FloatPolicy, Packet, PacketContent, PacketSigner, decode_unverified,
};

pub fn provenance() -> Provenance {
    Provenance {
        task: "CartPole-v1".into(),
        agent_id: "agent-7".into(),
        training_run: "run-1".into(),
        created_unix_ms: 1_700_000_000_000,
        audit: AuditStatus::Approved,
        audit_summary: "exploitation 0.0%, reward spikes 0".into(),
    }
}

pub fn signer() -> PacketSigner {
    PacketSigner::from_seed(&[11; 32])
}

pub fn base_packet(policy: &FloatPolicy, signer: Option<&PacketSigner>) -> Vec<u8> {
    Packet {
        provenance: provenance(),
        content: PacketContent::Base(policy.quantize().unwrap()),
    }
    .encode(signer, 19)
    .unwrap()
}

pub fn adapter_packet(
    policy: &FloatPolicy,
    lora: &FloatLora,
    base_digest: Digest,
    signer: Option<&PacketSigner>,
) -> Vec<u8> {
    Packet {
        provenance: provenance(),
        content: PacketContent::Adapter {
            base_digest,
            body: lora.quantize(policy).unwrap(),
        },
    }
    .encode(signer, 19)
    .unwrap()
}

pub struct Pair {
    pub policy: FloatPolicy,
    pub lora: FloatLora,
    pub base: Vec<u8>,
    pub adapter: Vec<u8>,
}

/// The default edge policy (4 → 64 → 64 → 2) with a rank-8 adapter, both signed.
pub fn default_pair(seed: u64) -> Pair {
    let policy = synthetic::default_discrete(seed, 4, 2);
    let lora = synthetic::lora(seed + 1000, &policy, 8, 16.0);
    let s = signer();
    let base = base_packet(&policy, Some(&s));
    let digest = decode_unverified(&base).unwrap().digest;
    let adapter = adapter_packet(&policy, &lora, digest, Some(&s));
    Pair {
        policy,
        lora,
        base,
        adapter,
    }
}
