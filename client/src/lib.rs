//! The Plasma edge client.
//!
//! - [`PacketCache`] and [`EdgePolicy`]: verified, content-addressed packets on disk and
//!   the runtime that acts on them offline, with hot-swapped adapters and rollback. These
//!   need no network (`--no-default-features` builds only them, for the smallest devices).
//! - [`PlasmaClient`] (feature `net`): the server's REST API with the original client's
//!   workflow (`request_simulation`, `wait_for_simulation`, `start_training`,
//!   `compile_instruction_packet`, `download_instruction_packet`, `load_instruction_packet`,
//!   `train_and_deploy`), experience upload, retries with backoff and jitter, timeouts, and
//!   job events from `/ws/{client_id}` ([`EventStream`]).
//! - [`Agent`] (feature `net`): what an edge program embeds — `act` offline, `observe`,
//!   `learn` in the background with a hot swap when the packet arrives.
//!
//! No burn and no world model anywhere in the dependency tree: the client runs on devices
//! that only ever act.

mod cache;
mod edge;
mod error;
pub mod explore;

#[cfg(feature = "net")]
mod agent;
#[cfg(feature = "envs")]
pub mod episodes;
#[cfg(feature = "net")]
mod events;
#[cfg(feature = "net")]
mod http;
#[cfg(feature = "net")]
mod retry;

pub use cache::{Deployment, PacketCache};
pub use edge::EdgePolicy;
pub use error::{ClientError, Result};
pub use explore::{Exploration, Explorer};

#[cfg(feature = "net")]
pub use agent::{Agent, AgentConfig, LearnOutcome};
#[cfg(feature = "net")]
pub use events::EventStream;
#[cfg(feature = "net")]
pub use http::{ClientConfig, Deployed, PlasmaClient};
#[cfg(feature = "net")]
pub use retry::RetryPolicy;

/// Re-exported so that edge programs need only this crate.
pub use plasma_packets::{Action, Digest, OwnedAction, PublicKey, Verifier};
pub use plasma_protocol as protocol;

#[cfg(test)]
pub(crate) mod test_packets {
    use plasma_packets::float::synthetic;
    use plasma_packets::{
        AuditStatus, Digest, FloatPolicy, Packet, PacketContent, PacketSigner, Provenance, Verifier,
    };

    pub fn signer() -> PacketSigner {
        PacketSigner::from_seed(&[5; 32])
    }

    fn provenance() -> Provenance {
        Provenance {
            task: "CartPole-v1".into(),
            agent_id: "robot-1".into(),
            training_run: "train_test".into(),
            created_unix_ms: 0,
            audit: AuditStatus::Approved,
            audit_summary: String::new(),
        }
    }

    fn base_policy(seed: u64) -> FloatPolicy {
        synthetic::default_discrete(seed, 4, 2)
    }

    fn encode(content: PacketContent) -> (Vec<u8>, Digest) {
        let bytes = Packet {
            provenance: provenance(),
            content,
        }
        .encode(Some(&signer()), 3)
        .unwrap();
        let digest = Packet::decode(&bytes, &Verifier::pinned(signer().public_key()))
            .unwrap()
            .digest;
        (bytes, digest)
    }

    /// A signed base packet (4 observations, 2 actions).
    pub fn base_packet(seed: u64) -> (Vec<u8>, Digest) {
        encode(PacketContent::Base(base_policy(seed).quantize().unwrap()))
    }

    /// A signed rank-4 adapter for `base_packet(1)`, bound to `base_digest`.
    pub fn adapter_packet(base_digest: &Digest, seed: u64) -> (Vec<u8>, Digest) {
        let base = base_policy(1);
        let lora = synthetic::lora(seed, &base, 4, 8.0);
        encode(PacketContent::Adapter {
            base_digest: *base_digest,
            body: lora.quantize(&base).unwrap(),
        })
    }
}
