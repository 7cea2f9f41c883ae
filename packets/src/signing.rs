//! The server's packet-signing key and verification against a pinned public key.
//!
//! Signatures are ed25519 over a domain-separated message (`SIGNING_CONTEXT` followed by
//! the packet's SHA-256 digest) and are checked with `verify_strict`, which rejects
//! malleable and small-order signatures.

use std::fmt;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::Digest;
use crate::error::SigningError;

/// Prefix of every signed message, so a packet signature can never be confused with a
/// signature made by the same key for another purpose.
pub const SIGNING_CONTEXT: &[u8] = b"plasma-instruction-packet/v1";

fn message(digest: &Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + 32);
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(&digest.0);
    m
}

/// The server's secret signing key. Its bytes are zeroed on drop.
pub struct PacketSigner {
    key: SigningKey,
}

impl fmt::Debug for PacketSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketSigner")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl PacketSigner {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, SigningError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SigningError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }

    /// A key from its 32-byte seed (deterministic; for tests and key import).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        PacketSigner {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public key agents pin.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs a packet digest.
    pub fn sign_digest(&self, digest: &Digest) -> [u8; 64] {
        self.key.sign(&message(digest)).to_bytes()
    }

    /// Loads the key at `path`, or creates it there (mode 0600) if it does not exist.
    /// An existing key file readable by group or others is refused. Creation is atomic
    /// and exclusive: a key is written to a fresh temporary file and hard-linked into
    /// place, so two processes starting together end up with the same key.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningError> {
        let io = |source| SigningError::Io {
            path: path.display().to_string(),
            source,
        };
        match Self::load(path) {
            Err(SigningError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let signer = Self::generate()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        match write_private_exclusive(path, &signer.key.to_bytes()) {
            Ok(()) => Ok(signer),
            // Another process created the key first: use that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// Loads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, SigningError> {
        let bytes = std::fs::read(path).map_err(|source| SigningError::Io {
            path: path.display().to_string(),
            source,
        })?;
        check_private(path)?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            SigningError::InvalidKey(format!("{} is not a 32-byte key", path.display()))
        })?;
        Ok(Self::from_seed(&seed))
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), SigningError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| SigningError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(SigningError::InsecurePermissions(
            path.display().to_string(),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), SigningError> {
    Ok(())
}

/// Creates `path` holding `bytes`, readable only by its owner, atomically and only if it
/// does not exist yet (`AlreadyExists` otherwise).
fn write_private_exclusive(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("tmp.{}.{nanos}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// A packet-signing public key, as pinned by agents. Displays as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) VerifyingKey);

impl PublicKey {
    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Parses 32 key bytes; fails on bytes that are not a valid curve point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SigningError> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|e| SigningError::InvalidKey(e.to_string()))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, SigningError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|e| SigningError::InvalidKey(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Whether `signature` is this key's strict signature of `digest`.
    pub fn verify_digest(&self, digest: &Digest, signature: &[u8; 64]) -> bool {
        let sig = Signature::from_bytes(signature);
        self.0.verify_strict(&message(digest), &sig).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What a loader trusts: a pinned key, and whether unsigned packets are acceptable.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub(crate) key: Option<PublicKey>,
    pub(crate) allow_unsigned: bool,
}

impl Verifier {
    /// Accept only packets signed by `key`.
    pub fn pinned(key: PublicKey) -> Self {
        Verifier {
            key: Some(key),
            allow_unsigned: false,
        }
    }

    /// Accept only unsigned packets (local development without a server key). Signed
    /// packets are refused because there is no key to check them against.
    pub fn unsigned_only() -> Self {
        Verifier {
            key: None,
            allow_unsigned: true,
        }
    }

    /// Also accept unsigned packets — an explicit opt-in. Note that this removes the
    /// protection of the signature altogether: anyone can strip a signature and
    /// recompute the digest. Use it only for local development.
    pub fn allow_unsigned(mut self, allow: bool) -> Self {
        self.allow_unsigned = allow;
        self
    }

    /// The pinned key, if any.
    pub fn key(&self) -> Option<&PublicKey> {
        self.key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/signing.key");
        let a = PacketSigner::load_or_create(&path).unwrap();
        let b = PacketSigner::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                PacketSigner::load_or_create(&path),
                Err(SigningError::InsecurePermissions(_))
            ));
        }
    }

    #[test]
    fn truncated_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_private_exclusive(&path, &[1, 2, 3]).unwrap();
        assert_eq!(
            write_private_exclusive(&path, &[4]).unwrap_err().kind(),
            std::io::ErrorKind::AlreadyExists
        );
        assert!(matches!(
            PacketSigner::load_or_create(&path),
            Err(SigningError::InvalidKey(_))
        ));
    }

    #[test]
    fn concurrent_creation_agrees_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let keys: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    PacketSigner::load_or_create(&path).unwrap().public_key()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(keys.iter().all(|k| *k == keys[0]));
        assert_eq!(PacketSigner::load(&path).unwrap().public_key(), keys[0]);
    }

    #[test]
    fn public_key_hex_round_trip_and_bad_input() {
        let s = PacketSigner::from_seed(&[7; 32]);
        let k = s.public_key();
        assert_eq!(PublicKey::from_hex(&k.to_hex()).unwrap(), k);
        assert!(PublicKey::from_hex("abc").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn signature_binds_key_and_digest() {
        let s = PacketSigner::from_seed(&[1; 32]);
        let other = PacketSigner::from_seed(&[2; 32]);
        let d = Digest([9; 32]);
        let sig = s.sign_digest(&d);
        assert!(s.public_key().verify_digest(&d, &sig));
        assert!(!other.public_key().verify_digest(&d, &sig));
        assert!(!s.public_key().verify_digest(&Digest([8; 32]), &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!s.public_key().verify_digest(&d, &bad));
    }
}
