//! Writes sample packets (the default synthetic policy, signed and unsigned, with a
//! rank-8 adapter) into a directory: seeds for the fuzzer and material for trying the
//! client's `inspect`.
//!
//! `cargo run --release -p plasma-packets --example sample_packets -- DIR [FRAMED_DIR]`
//!
//! With `FRAMED_DIR`, also writes seeds for the `framed` fuzz target: a kind byte, the
//! header length, the header and the raw (uncompressed) body.

use plasma_packets::float::synthetic;
use plasma_packets::model::{AuditStatus, Provenance};
use plasma_packets::{Packet, PacketContent, PacketSigner, decode_unverified};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: sample_packets DIR")?;
    std::fs::create_dir_all(&dir)?;
    let signer = PacketSigner::from_seed(&[5; 32]);
    let provenance = Provenance {
        task: "CartPole-v1".into(),
        agent_id: "sample".into(),
        training_run: "sample".into(),
        created_unix_ms: 0,
        audit: AuditStatus::Unaudited,
        audit_summary: String::new(),
    };
    for (name, policy) in [
        ("discrete", synthetic::default_discrete(1, 4, 2)),
        ("continuous", synthetic::default_continuous(2, 3, 1, 2.0)),
    ] {
        let lora = synthetic::lora(3, &policy, 8, 16.0);
        for (suffix, key) in [("signed", Some(&signer)), ("unsigned", None)] {
            let base = Packet {
                provenance: provenance.clone(),
                content: PacketContent::Base(policy.quantize()?),
            }
            .encode(key, 19)?;
            let digest = decode_unverified(&base)?.digest;
            let adapter = Packet {
                provenance: provenance.clone(),
                content: PacketContent::Adapter {
                    base_digest: digest,
                    body: lora.quantize(&policy)?,
                },
            }
            .encode(key, 19)?;
            std::fs::write(format!("{dir}/{name}-base-{suffix}.plasma"), &base)?;
            std::fs::write(format!("{dir}/{name}-adapter-{suffix}.plasma"), &adapter)?;
            if let Some(framed) = std::env::args().nth(2) {
                std::fs::create_dir_all(&framed)?;
                for (kind, packet) in [(1u8, &base), (2u8, &adapter)] {
                    let vp = decode_unverified(packet)?;
                    let header = &packet[64..64 + vp.header_len];
                    let body = &packet[64 + vp.header_len..64 + vp.header_len + vp.body_len];
                    let mut seed = vec![kind - 1, u8::try_from(vp.header_len)?];
                    seed.extend_from_slice(header);
                    seed.extend_from_slice(&zstd::bulk::decompress(body, vp.body_raw_len)?);
                    std::fs::write(format!("{framed}/{name}-{kind}-{suffix}"), seed)?;
                }
            }
        }
    }
    println!("public key: {}", signer.public_key());
    Ok(())
}
