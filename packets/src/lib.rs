//! Instruction packets: the few-KiB artefact that carries a trained policy from the
//! Plasma server to an edge agent.
//!
//! The crate is deliberately small and dependency-light (no burn, no tokio) because it
//! is compiled into the edge client. It holds:
//!
//! - [`model`]: what a packet describes — a quantized base policy or a LoRA adapter,
//!   observation normalization, the action space and provenance;
//! - [`quant`]: symmetric per-row int8 quantization;
//! - [`float`]: the plain f32 networks that are quantized into packets (and that serve
//!   as the reference the int8 runtime is measured against);
//! - [`codec`]: the byte format of `FORMAT.md` — encoding, and a hardened decoder that
//!   turns any byte string into a packet or a typed error;
//! - [`signing`]: the server's ed25519 signing key and verification against a pinned key;
//! - [`runtime`]: the allocation-free `act` path with lock-free adapter hot-swap and
//!   rollback.

pub mod codec;
pub mod durable;
pub mod error;
pub mod float;
mod kernels;
pub mod limits;
pub mod model;
pub mod quant;
pub mod runtime;
pub mod signing;

pub use codec::{
    Digest, Packet, PacketContent, SignatureStatus, VerifiedPacket, decode_unverified,
};
pub use error::{ActError, PacketError, RuntimeError, SigningError};
pub use float::{FloatLayer, FloatLora, FloatLoraLayer, FloatPolicy};
pub use model::{
    ActionSpace, Activation, AdapterBody, AdapterLayer, AuditStatus, BaseBody, ContinuousMapping,
    ObsNorm, PacketKind, Provenance, QuantLayer, QuantMatrix,
};
pub use runtime::{
    Action, Actor, CompiledPolicy, EdgeRuntime, Kernel, Loaded, OwnedAction, Scratch,
};
pub use signing::{PacketSigner, PublicKey, Verifier};
