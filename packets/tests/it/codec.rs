//! Encoding, decoding, signing rules and tamper resistance of packets.

use plasma_packets::codec::{FORMAT_VERSION, MAGIC, PREFIX_LEN, TRAILER_LEN};
use plasma_packets::float::synthetic;
use plasma_packets::{
    Packet, PacketContent, PacketError, PacketSigner, SignatureStatus, Verifier, decode_unverified,
};

use crate::common::*;

#[test]
fn base_and_adapter_round_trip_exactly() {
    let pair = default_pair(1);
    let v = Verifier::pinned(signer().public_key());
    let base = Packet::decode(&pair.base, &v).unwrap();
    assert_eq!(base.signature(), SignatureStatus::Verified);
    assert_eq!(base.packet.provenance, provenance());
    assert_eq!(
        base.packet.content,
        PacketContent::Base(pair.policy.quantize().unwrap())
    );
    let adapter = Packet::decode(&pair.adapter, &v).unwrap();
    match adapter.packet.content {
        PacketContent::Adapter { base_digest, body } => {
            assert_eq!(base_digest, base.digest);
            assert_eq!(body, pair.lora.quantize(&pair.policy).unwrap());
        }
        other => panic!("expected adapter, got {other:?}"),
    }
    // The layout of FORMAT.md: magic, version, kind, flag, sizes add up.
    assert_eq!(&pair.base[..4], &MAGIC);
    assert_eq!(
        u16::from_le_bytes([pair.base[4], pair.base[5]]),
        FORMAT_VERSION
    );
    assert_eq!(pair.base[6], 1);
    assert_eq!(pair.adapter[6], 2);
    assert_eq!(pair.base[7], 1);
    assert_eq!(
        base.size,
        PREFIX_LEN + base.header_len + base.body_len + TRAILER_LEN
    );
}

#[test]
fn encoding_is_deterministic() {
    let a = default_pair(3);
    let b = default_pair(3);
    assert_eq!(a.base, b.base);
    assert_eq!(a.adapter, b.adapter);
}

#[test]
fn default_policy_packets_meet_size_targets() {
    let pair = default_pair(5);
    assert!(
        pair.base.len() <= 32 * 1024,
        "base packet {} bytes",
        pair.base.len()
    );
    assert!(
        pair.adapter.len() <= 4 * 1024,
        "adapter packet {} bytes",
        pair.adapter.len()
    );
    // A hidden-width-64 policy with obs 8 and 3 actions is still well under both targets.
    let p = synthetic::default_discrete(9, 8, 3);
    let l = synthetic::lora(10, &p, 8, 16.0);
    let base = base_packet(&p, Some(&signer()));
    let digest = decode_unverified(&base).unwrap().digest;
    let adapter = adapter_packet(&p, &l, digest, Some(&signer()));
    assert!(
        base.len() <= 32 * 1024 && adapter.len() <= 4 * 1024,
        "{} / {}",
        base.len(),
        adapter.len()
    );
}

#[test]
fn every_single_byte_change_is_refused() {
    let pair = default_pair(2);
    let v = Verifier::pinned(signer().public_key());
    for packet in [&pair.base, &pair.adapter] {
        for i in 0..packet.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = packet.clone();
                bad[i] ^= flip;
                assert!(
                    Packet::decode(&bad, &v).is_err(),
                    "byte {i} ^ {flip:#x} accepted"
                );
            }
        }
    }
}

#[test]
fn truncated_and_extended_packets_are_refused() {
    let pair = default_pair(2);
    let v = Verifier::pinned(signer().public_key());
    for len in 0..pair.adapter.len() {
        assert!(
            Packet::decode(&pair.adapter[..len], &v).is_err(),
            "prefix of {len} accepted"
        );
    }
    let mut longer = pair.adapter.clone();
    longer.push(0);
    assert!(matches!(
        Packet::decode(&longer, &v),
        Err(PacketError::Truncated(_))
    ));
}

#[test]
fn signature_rules() {
    let p = synthetic::default_discrete(4, 4, 2);
    let s = signer();
    let pinned = Verifier::pinned(s.public_key());
    let signed = base_packet(&p, Some(&s));
    let unsigned = base_packet(&p, None);

    // Unsigned is refused unless the caller opts in.
    assert_eq!(
        Packet::decode(&unsigned, &pinned).unwrap_err(),
        PacketError::Unsigned
    );
    let opted = Packet::decode(&unsigned, &pinned.clone().allow_unsigned(true)).unwrap();
    assert_eq!(opted.signature(), SignatureStatus::Unsigned);
    assert_eq!(
        Packet::decode(&unsigned, &Verifier::unsigned_only())
            .unwrap()
            .signature(),
        SignatureStatus::Unsigned
    );

    // Signed by another key: refused, even when unsigned packets are allowed.
    let other =
        Verifier::pinned(PacketSigner::from_seed(&[99; 32]).public_key()).allow_unsigned(true);
    assert_eq!(
        Packet::decode(&signed, &other).unwrap_err(),
        PacketError::BadSignature
    );
    // Signed but no key to check it: refused.
    assert_eq!(
        Packet::decode(&signed, &Verifier::unsigned_only()).unwrap_err(),
        PacketError::BadSignature
    );

    // Stripping the signature (clear the flag, zero the signature, fix the digest) turns it
    // into an unsigned packet, which is refused by default.
    let mut stripped = signed.clone();
    stripped[7] = 0;
    let n = stripped.len();
    stripped[n - 64..].fill(0);
    let digest_at = n - 96;
    use sha2::Digest as _;
    let d: [u8; 32] = sha2::Sha256::digest(&stripped[..digest_at]).into();
    stripped[digest_at..digest_at + 32].copy_from_slice(&d);
    assert_eq!(
        Packet::decode(&stripped, &pinned).unwrap_err(),
        PacketError::Unsigned
    );

    // An inspected (unchecked) packet cannot be loaded to act, whatever the verifier.
    let inspected = decode_unverified(&signed).unwrap();
    assert!(
        plasma_packets::EdgeRuntime::from_verified(
            inspected,
            pinned.clone(),
            plasma_packets::Kernel::Merged
        )
        .is_err()
    );

    // Inspection without a key reports the signature as unchecked.
    assert_eq!(
        decode_unverified(&signed).unwrap().signature(),
        SignatureStatus::NotChecked
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![0u8; plasma_packets::limits::MAX_PACKET_BYTES + 1];
    assert!(matches!(
        decode_unverified(&big),
        Err(PacketError::TooLarge(..))
    ));
}

#[test]
fn encoder_refuses_invalid_content() {
    let mut p = synthetic::default_discrete(4, 4, 2);
    p.layers[1].bias[0] = f32::NAN;
    assert!(p.quantize().is_err());
    let mut body = synthetic::default_discrete(4, 4, 2).quantize().unwrap();
    body.layers[0].bias.pop();
    let packet = Packet {
        provenance: provenance(),
        content: PacketContent::Base(body),
    };
    assert!(matches!(
        packet.encode(None, 3),
        Err(PacketError::Encode(_))
    ));
    let mut prov = provenance();
    prov.task = "x".repeat(5000);
    let packet = Packet {
        provenance: prov,
        content: PacketContent::Base(synthetic::default_discrete(4, 4, 2).quantize().unwrap()),
    };
    assert!(matches!(
        packet.encode(None, 3),
        Err(PacketError::Encode(_))
    ));
}
