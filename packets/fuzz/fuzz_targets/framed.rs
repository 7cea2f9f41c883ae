//! Reaches past the digest: the input is split into a kind, a header and a raw body,
//! framed with a correct SHA-256 digest, so every mutation exercises zstd, bincode and
//! validation. Run: `cd packets && cargo fuzz run framed`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plasma_packets::{EdgeRuntime, Kernel, Packet, Verifier};
use sha2::Digest as _;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let kind = 1 + (data[0] & 1);
    let split = usize::from(data[1]).min(data.len() - 2);
    let (header, body_raw) = data[2..].split_at(split);
    let Ok(body) = zstd::bulk::compress(body_raw, 1) else { return };
    let mut out = Vec::new();
    out.extend_from_slice(b"PLSM");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body_raw.len() as u32).to_le_bytes());
    out.resize(64, 0);
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    let d: [u8; 32] = sha2::Sha256::digest(&out).into();
    out.extend_from_slice(&d);
    out.extend_from_slice(&[0u8; 64]);
    let verifier = Verifier::unsigned_only();
    if let Ok(vp) = Packet::decode(&out, &verifier)
        && let Ok(rt) = EdgeRuntime::from_verified(vp, verifier, Kernel::Merged)
    {
        {
            let dim = rt.policy().obs_dim();
            let _ = rt.actor().act(&vec![0.25; dim]);
        }
    }
});
