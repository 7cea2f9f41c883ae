//! Hostile input: any byte string decodes to a valid packet or a typed error, without
//! panicking and without allocating beyond the format's limits.
//!
//! `frame` below re-implements the framing of FORMAT.md independently of the crate, so
//! these tests also check that the spec and the code agree, and let the property tests
//! reach the decompression, bincode and validation stages with a correct digest.

use plasma_packets::float::synthetic;
use plasma_packets::{EdgeRuntime, Kernel, Packet, PacketError, Verifier, decode_unverified};
use proptest::prelude::*;
use sha2::Digest as _;

use crate::common::*;

/// Builds an unsigned packet from raw sections, per FORMAT.md.
fn frame(kind: u8, base_digest: [u8; 32], header: &[u8], body_raw: &[u8]) -> Vec<u8> {
    let body = zstd::bulk::compress(body_raw, 3).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(b"PLSM");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.push(kind);
    out.push(0);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body_raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&base_digest);
    out.resize(64, 0);
    out.extend_from_slice(header);
    out.extend_from_slice(&body);
    let d: [u8; 32] = sha2::Sha256::digest(&out).into();
    out.extend_from_slice(&d);
    out.extend_from_slice(&[0u8; 64]);
    out
}

/// The sections of a valid unsigned packet: (header, raw body).
fn sections(packet: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let vp = decode_unverified(packet).unwrap();
    let header = packet[64..64 + vp.header_len].to_vec();
    let body = &packet[64 + vp.header_len..64 + vp.header_len + vp.body_len];
    (
        header,
        zstd::bulk::decompress(body, vp.body_raw_len).unwrap(),
    )
}

/// Trusts the test signer and, explicitly, unsigned packets (the reframed ones).
fn allow() -> Verifier {
    Verifier::pinned(signer().public_key()).allow_unsigned(true)
}

/// The signed default base, loaded once.
fn base() -> &'static [u8] {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| default_pair(1).base)
}

/// If a hostile packet decodes, it must also load and act without panicking; an adapter
/// is applied to the base it was made for.
fn exercise(bytes: &[u8]) {
    if let Ok(vp) = Packet::decode(bytes, &allow())
        && let Ok(rt) = EdgeRuntime::load(base(), allow(), Kernel::Merged)
        && rt.apply_verified_adapter(vp).is_ok()
    {
        let _ = rt.actor().act(&[0.5; 4]);
    }
    if let Ok(vp) = Packet::decode(bytes, &allow())
        && let Ok(rt) = EdgeRuntime::from_verified(vp, allow(), Kernel::Merged)
    {
        let dim = rt.policy().obs_dim();
        let mut actor = rt.actor();
        let _ = actor.act(&vec![0.5; dim]);
        let _ = actor.act(&vec![1e30; dim]);
    }
}

#[test]
fn independent_framing_matches_the_crate() {
    let policy = synthetic::default_discrete(1, 4, 2);
    let encoded = base_packet(&policy, None);
    let (header, body) = sections(&encoded);
    let reframed = frame(1, [0; 32], &header, &body);
    // Same sections, possibly another zstd level: same content.
    let a = Packet::decode(&encoded, &allow()).unwrap().packet;
    let b = Packet::decode(&reframed, &allow()).unwrap().packet;
    assert_eq!(a, b);

    // A reframed (unsigned) copy of the default adapter reaches the runtime through the
    // same path the property tests use.
    let adapter = default_pair(1).adapter;
    let (header, body) = sections(&adapter);
    let mut base_digest = [0u8; 32];
    base_digest.copy_from_slice(&adapter[20..52]);
    let vp = Packet::decode(&frame(2, base_digest, &header, &body), &allow()).unwrap();
    let rt = EdgeRuntime::load(base(), allow(), Kernel::Merged).unwrap();
    rt.apply_verified_adapter(vp).unwrap();
    assert!(rt.actor().act(&[0.5; 4]).is_ok());
}

#[test]
fn huge_length_claims_are_refused_without_allocating() {
    let policy = synthetic::default_discrete(1, 4, 2);
    let (header, _) = sections(&base_packet(&policy, None));
    // bincode varint for a u64 length: 0xFD followed by 8 bytes. A body that claims a
    // vector of 2^62 means.
    let mut body = vec![0xFD];
    body.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let err = Packet::decode(&frame(1, [0; 32], &header, &body), &allow()).unwrap_err();
    assert!(matches!(err, PacketError::Malformed { .. }), "{err:?}");

    // A declared decompressed size above the limit is refused before decompression.
    let mut packet = base_packet(&policy, None);
    packet[16..20].copy_from_slice(&(64u32 << 20).to_le_bytes());
    assert!(matches!(
        decode_unverified(&packet),
        Err(PacketError::SectionTooLarge { .. })
    ));
}

#[test]
fn zstd_bomb_is_refused() {
    let policy = synthetic::default_discrete(1, 4, 2);
    let (header, _) = sections(&base_packet(&policy, None));
    let zeros = vec![0u8; 8 << 20];
    let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
    // Claim a small size; the real content is 8 MiB.
    let mut out = frame(1, [0; 32], &header, &[0u8; 16]);
    let body_len = bomb.len() as u32;
    out.truncate(64 + header.len());
    out[12..16].copy_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&bomb);
    let d: [u8; 32] = sha2::Sha256::digest(&out).into();
    out.extend_from_slice(&d);
    out.extend_from_slice(&[0u8; 64]);
    assert!(matches!(
        Packet::decode(&out, &allow()),
        Err(PacketError::Decompress(_))
    ));
}

#[test]
fn structurally_invalid_bodies_are_refused() {
    let policy = synthetic::default_discrete(1, 4, 2);
    let mut body = policy.quantize().unwrap();
    let header = sections(&base_packet(&policy, None)).0;
    let cfg = bincode::config::standard();
    type Mutation = Box<dyn Fn(&mut plasma_packets::BaseBody)>;
    let cases: Vec<Mutation> = vec![
        Box::new(|b| b.layers[0].weights.rows = 1000),
        Box::new(|b| b.layers[1].weights.cols = 3),
        Box::new(|b| b.layers[2].bias.push(0.0)),
        Box::new(|b| b.layers[0].weights.scales[0] = f32::NAN),
        Box::new(|b| b.layers[0].weights.values[0] = i8::MIN),
        Box::new(|b| b.obs_norm.std[1] = 0.0),
        Box::new(|b| b.obs_norm.mean.pop().map(|_| ()).unwrap_or(())),
        Box::new(|b| b.action_space = plasma_packets::ActionSpace::Discrete { n: 3 }),
        Box::new(|b| b.layers.clear()),
    ];
    for (i, mutate) in cases.iter().enumerate() {
        let mut b = body.clone();
        mutate(&mut b);
        let raw = bincode::serde::encode_to_vec(&b, cfg).unwrap();
        let err = Packet::decode(&frame(1, [0; 32], &header, &raw), &allow()).unwrap_err();
        assert!(matches!(err, PacketError::Invalid(_)), "case {i}: {err:?}");
    }
    // A base packet must not name a base digest.
    body.layers.truncate(3);
    let raw = bincode::serde::encode_to_vec(&body, cfg).unwrap();
    assert!(Packet::decode(&frame(1, [1; 32], &header, &raw), &allow()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_unverified(&bytes);
        exercise(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = base_packet(&synthetic::default_discrete(1, 4, 2), None);
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        exercise(&bytes);
    }

    /// Mutations of the raw body, re-framed with a correct digest, reach bincode and
    /// validation: they must decode to a valid packet (that acts) or fail cleanly.
    #[test]
    fn mutated_bodies_with_valid_digest_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        kind in 1u8..=2,
    ) {
        let pair = default_pair(1);
        let source = if kind == 1 { base_packet(&pair.policy, None) } else { pair.adapter.clone() };
        let vp = decode_unverified(&source).unwrap();
        let header = source[64..64 + vp.header_len].to_vec();
        let body_z = &source[64 + vp.header_len..64 + vp.header_len + vp.body_len];
        let mut raw = zstd::bulk::decompress(body_z, vp.body_raw_len).unwrap();
        for (at, v) in edits {
            let i = at.index(raw.len());
            raw[i] = v;
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&source[20..52]);
        exercise(&frame(kind, digest, &header, &raw));
    }
}
