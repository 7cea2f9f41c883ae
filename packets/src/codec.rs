//! The byte format of an instruction packet (specified in `packets/FORMAT.md`).
//!
//! Decoding is written for hostile input: sizes are checked against [`crate::limits`]
//! before anything is allocated, the digest is checked before the body is decompressed,
//! the signature before the body is parsed, and the parsed content is validated before it
//! is returned. Every failure is a [`PacketError`].

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

use crate::error::PacketError;
use crate::limits::{MAX_BODY_RAW_BYTES, MAX_HEADER_BYTES, MAX_PACKET_BYTES};
use crate::model::{AdapterBody, BaseBody, PacketKind, Provenance};
use crate::signing::{PacketSigner, Verifier};

/// First four bytes of every packet.
pub const MAGIC: [u8; 4] = *b"PLSM";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed prefix.
pub const PREFIX_LEN: usize = 64;
/// Length of the trailer: SHA-256 digest then ed25519 signature.
pub const TRAILER_LEN: usize = 32 + 64;
/// Flag bit: the packet carries a signature.
pub const FLAG_SIGNED: u8 = 1;
/// Default zstd level (the server's COMPRESSION_LEVEL overrides it).
pub const DEFAULT_ZSTD_LEVEL: i32 = 19;

/// A SHA-256 content digest; a packet's digest is its identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// A digest string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest is 64 hex digits")]
pub struct InvalidDigest;

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut d = [0u8; 32];
        hex::decode_to_slice(s, &mut d).map_err(|_| InvalidDigest)?;
        Ok(Digest(d))
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a packet holds.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketContent {
    /// A complete policy.
    Base(BaseBody),
    /// An adapter and the digest of the base packet it belongs to.
    Adapter {
        /// Digest of the base packet.
        base_digest: Digest,
        /// The adapter.
        body: AdapterBody,
    },
}

impl PacketContent {
    /// Base or adapter.
    pub fn kind(&self) -> PacketKind {
        match self {
            PacketContent::Base(_) => PacketKind::Base,
            PacketContent::Adapter { .. } => PacketKind::Adapter,
        }
    }
}

/// A packet's decoded content and provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Where it came from.
    pub provenance: Provenance,
    /// The policy or adapter.
    pub content: PacketContent,
}

/// Whether and how a decoded packet's signature was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureStatus {
    /// The packet carries no signature.
    Unsigned,
    /// The signature verified against the pinned key.
    Verified,
    /// The packet is signed but no key was given to check it (inspection only).
    NotChecked,
}

/// A decoded packet together with its identity and signature status. Only the decoder
/// makes these; the runtime acts only on ones whose signature status its verifier
/// accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPacket {
    /// The content.
    pub packet: Packet,
    /// SHA-256 digest over everything before the trailer.
    pub digest: Digest,
    /// How the signature was checked (private, so a `VerifiedPacket` can only come
    /// from the decoder).
    signature: SignatureStatus,
    /// Size of the encoded packet in bytes.
    pub size: usize,
    /// Size of the header section in bytes.
    pub header_len: usize,
    /// Size of the compressed body in bytes.
    pub body_len: usize,
    /// Size of the decompressed body in bytes.
    pub body_raw_len: usize,
}

impl VerifiedPacket {
    /// How the signature was checked.
    pub fn signature(&self) -> SignatureStatus {
        self.signature
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_BODY_RAW_BYTES>()
}

fn encode_err<E: fmt::Display>(e: E) -> PacketError {
    PacketError::Encode(e.to_string())
}

impl Packet {
    /// Encodes the packet, signing it when a signer is given. `zstd_level` is clamped to
    /// zstd's range.
    pub fn encode(
        &self,
        signer: Option<&PacketSigner>,
        zstd_level: i32,
    ) -> Result<Vec<u8>, PacketError> {
        self.provenance.validate().map_err(PacketError::Encode)?;
        let (body_raw, base_digest) = match &self.content {
            PacketContent::Base(b) => {
                b.validate().map_err(PacketError::Encode)?;
                (
                    bincode::serde::encode_to_vec(b, bincode_config()).map_err(encode_err)?,
                    Digest::default(),
                )
            }
            PacketContent::Adapter { base_digest, body } => {
                body.validate().map_err(PacketError::Encode)?;
                (
                    bincode::serde::encode_to_vec(body, bincode_config()).map_err(encode_err)?,
                    *base_digest,
                )
            }
        };
        let header = bincode::serde::encode_to_vec(&self.provenance, bincode_config())
            .map_err(encode_err)?;
        if header.len() > MAX_HEADER_BYTES {
            return Err(PacketError::Encode(format!(
                "header is {} bytes, limit {MAX_HEADER_BYTES}",
                header.len()
            )));
        }
        if body_raw.len() > MAX_BODY_RAW_BYTES {
            return Err(PacketError::Encode(format!(
                "body is {} bytes, limit {MAX_BODY_RAW_BYTES}",
                body_raw.len()
            )));
        }
        let level = zstd_level.clamp(1, 22);
        let body = zstd::bulk::compress(&body_raw, level).map_err(encode_err)?;
        let total = PREFIX_LEN + header.len() + body.len() + TRAILER_LEN;
        if total > MAX_PACKET_BYTES {
            return Err(PacketError::Encode(format!(
                "packet would be {total} bytes, limit {MAX_PACKET_BYTES}"
            )));
        }

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.push(self.content.kind().to_byte());
        out.push(if signer.is_some() { FLAG_SIGNED } else { 0 });
        // Lengths fit in u32: each is bounded by MAX_PACKET_BYTES above.
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&(body_raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&base_digest.0);
        out.resize(PREFIX_LEN, 0);
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        let digest = Digest(Sha256::digest(&out).into());
        out.extend_from_slice(&digest.0);
        let signature = signer.map_or([0u8; 64], |s| s.sign_digest(&digest));
        out.extend_from_slice(&signature);
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }

    /// Decodes and verifies a packet under `verifier`'s trust rules.
    pub fn decode(bytes: &[u8], verifier: &Verifier) -> Result<VerifiedPacket, PacketError> {
        decode_inner(bytes, Some(verifier))
    }
}

/// Decodes a packet and checks its digest and content, but not its signature: for
/// inspecting a packet's header. Never use the result to act.
pub fn decode_unverified(bytes: &[u8]) -> Result<VerifiedPacket, PacketError> {
    decode_inner(bytes, None)
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b) as usize
}

fn decode_inner(bytes: &[u8], verifier: Option<&Verifier>) -> Result<VerifiedPacket, PacketError> {
    if bytes.len() > MAX_PACKET_BYTES {
        return Err(PacketError::TooLarge(bytes.len(), MAX_PACKET_BYTES));
    }
    if bytes.len() < PREFIX_LEN + TRAILER_LEN {
        return Err(PacketError::Truncated(format!(
            "{} bytes is shorter than prefix and trailer",
            bytes.len()
        )));
    }
    if bytes[0..4] != MAGIC {
        return Err(PacketError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(PacketError::UnsupportedVersion(version));
    }
    let kind = PacketKind::from_byte(bytes[6]).ok_or(PacketError::UnknownKind(bytes[6]))?;
    let flags = bytes[7];
    if flags & !FLAG_SIGNED != 0 || bytes[52..PREFIX_LEN].iter().any(|&b| b != 0) {
        return Err(PacketError::Reserved);
    }
    let header_len = u32_at(bytes, 8);
    let body_len = u32_at(bytes, 12);
    let body_raw_len = u32_at(bytes, 16);
    for (section, len, limit) in [
        ("header", header_len, MAX_HEADER_BYTES),
        ("body", body_len, MAX_PACKET_BYTES),
        ("decompressed body", body_raw_len, MAX_BODY_RAW_BYTES),
    ] {
        if len > limit {
            return Err(PacketError::SectionTooLarge {
                section,
                len,
                limit,
            });
        }
    }
    let expected = PREFIX_LEN + header_len + body_len + TRAILER_LEN;
    if expected != bytes.len() {
        return Err(PacketError::Truncated(format!(
            "sections add up to {expected} bytes but the packet has {}",
            bytes.len()
        )));
    }
    let mut base_digest = Digest::default();
    base_digest.0.copy_from_slice(&bytes[20..52]);
    if kind == PacketKind::Base && base_digest != Digest::default() {
        return Err(PacketError::Reserved);
    }

    let digest_at = PREFIX_LEN + header_len + body_len;
    let computed = Digest(Sha256::digest(&bytes[..digest_at]).into());
    if bytes[digest_at..digest_at + 32] != computed.0 {
        return Err(PacketError::DigestMismatch);
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[digest_at + 32..]);
    let signed = flags & FLAG_SIGNED != 0;
    if !signed && signature.iter().any(|&b| b != 0) {
        return Err(PacketError::Reserved);
    }
    let status = match (signed, verifier) {
        (false, Some(v)) if !v.allow_unsigned => return Err(PacketError::Unsigned),
        (false, _) => SignatureStatus::Unsigned,
        (true, None) => SignatureStatus::NotChecked,
        (true, Some(v)) => match v.key() {
            Some(key) if key.verify_digest(&computed, &signature) => SignatureStatus::Verified,
            _ => return Err(PacketError::BadSignature),
        },
    };

    let header = &bytes[PREFIX_LEN..PREFIX_LEN + header_len];
    let provenance: Provenance = decode_exact(header, "header")?;
    provenance.validate().map_err(PacketError::Invalid)?;

    let body = &bytes[PREFIX_LEN + header_len..digest_at];
    match zstd::zstd_safe::find_frame_compressed_size(body) {
        Ok(n) if n == body.len() => {}
        _ => {
            return Err(PacketError::Decompress(
                "the body must be exactly one zstd frame".into(),
            ));
        }
    }
    let raw = zstd::bulk::decompress(body, body_raw_len)
        .map_err(|e| PacketError::Decompress(e.to_string()))?;
    if raw.len() != body_raw_len {
        return Err(PacketError::Decompress(format!(
            "body decompressed to {} bytes, header says {body_raw_len}",
            raw.len()
        )));
    }
    let content = match kind {
        PacketKind::Base => {
            let body: BaseBody = decode_exact(&raw, "base body")?;
            body.validate().map_err(PacketError::Invalid)?;
            PacketContent::Base(body)
        }
        PacketKind::Adapter => {
            let body: AdapterBody = decode_exact(&raw, "adapter body")?;
            body.validate().map_err(PacketError::Invalid)?;
            PacketContent::Adapter { base_digest, body }
        }
    };
    Ok(VerifiedPacket {
        packet: Packet {
            provenance,
            content,
        },
        digest: computed,
        signature: status,
        size: bytes.len(),
        header_len,
        body_len,
        body_raw_len,
    })
}

fn decode_exact<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    section: &'static str,
) -> Result<T, PacketError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(|e| {
            PacketError::Malformed {
                section,
                message: e.to_string(),
            }
        })?;
    if used != bytes.len() {
        return Err(PacketError::Malformed {
            section,
            message: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parses_hex_and_round_trips_through_serde() {
        let d = Digest([0xab; 32]);
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert_eq!("xyz".parse::<Digest>().unwrap_err(), InvalidDigest);
        assert!("ab".repeat(31).parse::<Digest>().is_err());
        let json = bincode::serde::encode_to_vec(d, bincode::config::standard()).unwrap();
        let (back, _): (Digest, usize) =
            bincode::serde::decode_from_slice(&json, bincode::config::standard()).unwrap();
        assert_eq!(back, d);
    }
}
