//! Typed errors: every failure of decoding, verification, signing or acting has a variant
//! the caller can match on.

use thiserror::Error;

/// Why a byte string is not an acceptable packet, or why a packet could not be encoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// The input is shorter than the fixed prefix plus trailer, or its section lengths do
    /// not add up to its size.
    #[error("packet truncated or mis-sized: {0}")]
    Truncated(String),
    /// The input is larger than [`crate::limits::MAX_PACKET_BYTES`].
    #[error("packet is {0} bytes, more than the limit of {1}")]
    TooLarge(usize, usize),
    /// The first four bytes are not `PLSM`.
    #[error("not an instruction packet (bad magic)")]
    BadMagic,
    /// A format version this build does not understand.
    #[error("unsupported packet format version {0}")]
    UnsupportedVersion(u16),
    /// The kind byte is neither base nor adapter.
    #[error("unknown packet kind {0}")]
    UnknownKind(u8),
    /// Reserved flag bits or reserved bytes are not zero.
    #[error("reserved bits or bytes are set")]
    Reserved,
    /// A section length exceeds its limit.
    #[error("{section} is {len} bytes, more than the limit of {limit}")]
    SectionTooLarge {
        /// Which section.
        section: &'static str,
        /// Its declared length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The SHA-256 digest does not match the content: the packet was corrupted or altered.
    #[error("digest mismatch: the packet was corrupted or altered")]
    DigestMismatch,
    /// The signature does not verify against the pinned key.
    #[error("signature does not verify against the pinned key")]
    BadSignature,
    /// The packet is unsigned and the caller did not opt in to unsigned packets.
    #[error("packet is unsigned and unsigned packets are not allowed")]
    Unsigned,
    /// The zstd body could not be decompressed, or decompressed to a size other than declared.
    #[error("body decompression failed: {0}")]
    Decompress(String),
    /// The header or body is not valid bincode for its kind.
    #[error("malformed {section}: {message}")]
    Malformed {
        /// Which section.
        section: &'static str,
        /// Decoder message.
        message: String,
    },
    /// The content decoded but is inconsistent (shapes, non-finite values, limits).
    #[error("invalid packet content: {0}")]
    Invalid(String),
    /// Encoding failed (content invalid or too large for the format).
    #[error("cannot encode packet: {0}")]
    Encode(String),
}

/// Failures of key handling.
#[derive(Debug, Error)]
pub enum SigningError {
    /// A key's bytes or hex text have the wrong length or encoding.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An existing key file is readable by others than its owner.
    #[error("key file {0} must not be readable by group or others (chmod 600)")]
    InsecurePermissions(String),
}

/// Why a packet could not be loaded into the runtime.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RuntimeError {
    /// The packet is not of the kind this operation needs.
    #[error("expected a {expected} packet")]
    WrongKind {
        /// What the operation needs.
        expected: &'static str,
    },
    /// The adapter was trained for another base policy.
    #[error("adapter belongs to base {adapter_base}, but base {loaded_base} is loaded")]
    BaseMismatch {
        /// Base digest the adapter names (hex).
        adapter_base: String,
        /// Digest of the loaded base (hex).
        loaded_base: String,
    },
    /// The adapter's layer shapes do not fit the base.
    #[error("adapter does not fit the base: {0}")]
    Shape(String),
    /// There is no previous adapter state to roll back to.
    #[error("nothing to roll back to")]
    NothingToRollBack,
    /// Packet decoding or verification failed.
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// Why one `act` call failed.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ActError {
    /// The observation has the wrong number of values.
    #[error("observation has {got} values, the policy expects {expected}")]
    ObsDim {
        /// Values given.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// The observation holds NaN or an infinity.
    #[error("observation holds a non-finite value")]
    NonFinite,
}
