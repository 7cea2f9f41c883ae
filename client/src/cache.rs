//! A packet cache on disk: content-addressed, verified on the way in and on the way out,
//! so that an agent starts and acts with no server reachable.
//!
//! ```text
//! <dir>/packets/<sha256 hex>.pkt   packet bytes, file name = the packet's digest
//! <dir>/deployed.json              what runs: base digest, adapter digest (or null)
//! ```
//!
//! Every write goes to a temporary file that is synced and renamed, so a crash leaves the
//! old file or the new one, never half of one.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use plasma_packets::limits::MAX_PACKET_BYTES;
use plasma_packets::{Digest, Packet, VerifiedPacket, Verifier};
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};

/// What an agent runs: a base packet and optionally an adapter on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Digest of the base packet.
    pub base: Digest,
    /// Digest of the adapter packet, if one is applied.
    pub adapter: Option<Digest>,
}

/// Largest `deployed.json` read (it holds two digests).
const MAX_DEPLOYMENT_BYTES: u64 = 4096;

/// Content-addressed packets under one directory, checked against a pinned key.
#[derive(Debug)]
pub struct PacketCache {
    dir: PathBuf,
    verifier: Verifier,
}

impl PacketCache {
    /// Opens (creating) the cache at `dir`; packets must verify under `verifier`.
    pub fn open(dir: impl Into<PathBuf>, verifier: Verifier) -> Result<Self> {
        let dir = dir.into();
        let packets = dir.join("packets");
        fs::create_dir_all(&packets).map_err(|e| ClientError::cache(&packets, e))?;
        Ok(PacketCache { dir, verifier })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verifier packets are checked with.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    fn packet_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("packets")
            .join(format!("{}.pkt", digest.to_hex()))
    }

    /// Verifies `bytes` and stores them under their digest (a no-op if present).
    pub fn put(&self, bytes: &[u8]) -> Result<VerifiedPacket> {
        let verified = Packet::decode(bytes, &self.verifier)?;
        let path = self.packet_path(&verified.digest);
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(verified)
    }

    /// The bytes of a cached packet, checked: size, digest and signature.
    pub fn get(&self, digest: &Digest) -> Result<Option<(Vec<u8>, VerifiedPacket)>> {
        let path = self.packet_path(digest);
        let Some(bytes) = read_bounded(&path, MAX_PACKET_BYTES as u64)? else {
            return Ok(None);
        };
        let verified = Packet::decode(&bytes, &self.verifier)?;
        if verified.digest != *digest {
            return Err(ClientError::CacheCorrupt {
                path,
                message: format!("holds packet {}", verified.digest),
            });
        }
        Ok(Some((bytes, verified)))
    }

    /// Digests of the cached packets.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let dir = self.dir.join("packets");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ClientError::cache(&dir, e))? {
            let entry = entry.map_err(|e| ClientError::cache(&dir, e))?;
            let name = entry.file_name();
            if let Some(d) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".pkt"))
                .and_then(|h| h.parse().ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes a cached packet (absent is fine).
    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let path = self.packet_path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ClientError::cache(path, e)),
            _ => Ok(()),
        }
    }

    /// What was deployed last, if anything.
    pub fn deployment(&self) -> Result<Option<Deployment>> {
        let path = self.dir.join("deployed.json");
        let Some(bytes) = read_bounded(&path, MAX_DEPLOYMENT_BYTES)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::CacheCorrupt {
                path,
                message: e.to_string(),
            })
    }

    /// Records what runs now.
    pub fn set_deployment(&self, deployment: &Deployment) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(deployment)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join("deployed.json"), &bytes)
    }
}

/// Reads a file of at most `limit` bytes; `None` if it does not exist.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::cache(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ClientError::cache(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(ClientError::TooLarge {
            what: path.display().to_string(),
            limit: limit as usize,
        });
    }
    Ok(Some(bytes))
}

/// Writes `bytes` to `path` atomically and durably (`plasma_packets::durable`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    plasma_packets::durable::write_atomic(path, bytes).map_err(|e| ClientError::cache(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_packets::{adapter_packet, base_packet, signer};

    #[test]
    fn packets_round_trip_and_tampering_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = signer().public_key();
        let cache = PacketCache::open(dir.path(), Verifier::pinned(key)).unwrap();
        let (base, base_digest) = base_packet(1);
        let v = cache.put(&base).unwrap();
        assert_eq!(v.digest, base_digest);
        assert_eq!(cache.list().unwrap(), vec![base_digest]);
        let (bytes, _) = cache.get(&base_digest).unwrap().unwrap();
        assert_eq!(bytes, base);
        assert!(cache.get(&Digest([9; 32])).unwrap().is_none());

        // A flipped byte on disk is refused, not acted on.
        let path = cache.packet_path(&base_digest);
        let mut bad = base.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&path, &bad).unwrap();
        assert!(matches!(
            cache.get(&base_digest),
            Err(ClientError::Packet(_))
        ));
        // A valid packet under another packet's name is refused too.
        let (adapter, _) = adapter_packet(&base_digest, 2);
        fs::write(&path, &adapter).unwrap();
        assert!(matches!(
            cache.get(&base_digest),
            Err(ClientError::CacheCorrupt { .. })
        ));
        // A packet signed by another key never enters.
        let other = PacketCache::open(
            dir.path().join("other"),
            Verifier::pinned(plasma_packets::PacketSigner::from_seed(&[3; 32]).public_key()),
        )
        .unwrap();
        assert!(matches!(other.put(&base), Err(ClientError::Packet(_))));
        assert!(other.list().unwrap().is_empty());
        // Oversized files are refused before they are read whole.
        fs::write(&path, vec![0u8; MAX_PACKET_BYTES + 1]).unwrap();
        assert!(matches!(
            cache.get(&base_digest),
            Err(ClientError::TooLarge { .. })
        ));
        cache.remove(&base_digest).unwrap();
        cache.remove(&base_digest).unwrap();
        assert!(cache.list().unwrap().is_empty());
    }

    #[test]
    fn the_deployment_record_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = Verifier::pinned(signer().public_key());
        let cache = PacketCache::open(dir.path(), verifier.clone()).unwrap();
        assert_eq!(cache.deployment().unwrap(), None);
        let d = Deployment {
            base: Digest([1; 32]),
            adapter: Some(Digest([2; 32])),
        };
        cache.set_deployment(&d).unwrap();
        let reopened = PacketCache::open(dir.path(), verifier).unwrap();
        assert_eq!(reopened.deployment().unwrap(), Some(d));
        fs::write(dir.path().join("deployed.json"), b"{not json").unwrap();
        assert!(matches!(
            reopened.deployment(),
            Err(ClientError::CacheCorrupt { .. })
        ));
    }
}
