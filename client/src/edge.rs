//! The policy an edge agent runs: the packet runtime fed from the verified cache, with
//! hot-swapped adapters and rollback, recorded so that a restart resumes offline.

use std::sync::Arc;

use plasma_packets::{Actor, Digest, EdgeRuntime, Kernel, Loaded, PacketKind};
use plasma_protocol::{DeploymentChange, DeploymentReport};

use crate::cache::{Deployment, PacketCache};
use crate::error::{ClientError, Result};

/// A base packet and optional adapter, loaded from and recorded in a [`PacketCache`].
///
/// Every method takes `&self`: a learner thread can swap packets while actors keep acting
/// lock-free on the policy in effect when each action started.
#[derive(Debug)]
pub struct EdgePolicy {
    runtime: EdgeRuntime,
    cache: Arc<PacketCache>,
}

impl EdgePolicy {
    /// What runs now, as a deployment report for the server (`since` is now).
    pub fn deployment_report(&self, change: DeploymentChange) -> DeploymentReport {
        let loaded = self.loaded();
        DeploymentReport {
            base: loaded.base.to_hex(),
            adapter: loaded.adapter.map(|a| a.to_hex()),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            change,
        }
    }

    /// Resumes what `cache` records as deployed, with no network: `Ok(None)` when
    /// nothing was deployed yet. A recorded adapter that no longer verifies is dropped
    /// (the base runs alone) rather than refusing to start.
    pub fn resume(cache: Arc<PacketCache>) -> Result<Option<Self>> {
        let Some(deployment) = cache.deployment()? else {
            return Ok(None);
        };
        let (base, _) = cache
            .get(&deployment.base)?
            .ok_or_else(|| ClientError::CacheCorrupt {
                path: cache.dir().to_path_buf(),
                message: format!("deployed base {} is not cached", deployment.base),
            })?;
        let policy = EdgePolicy::load_base(cache, &base)?;
        if let Some(adapter) = deployment.adapter {
            match policy.cache.get(&adapter) {
                Ok(Some((bytes, _))) => {
                    policy.runtime.apply_adapter(&bytes)?;
                }
                other => {
                    tracing::warn!(adapter = %adapter, outcome = ?other.err(), "deployed adapter unusable; running the base alone");
                    policy.record()?;
                }
            }
        }
        Ok(Some(policy))
    }

    /// Verifies, caches and loads a base packet, and records it as deployed.
    pub fn load_base(cache: Arc<PacketCache>, bytes: &[u8]) -> Result<Self> {
        let verified = cache.put(bytes)?;
        if verified.packet.content.kind() != PacketKind::Base {
            return Err(plasma_packets::RuntimeError::WrongKind { expected: "base" }.into());
        }
        let runtime =
            EdgeRuntime::from_verified(verified, cache.verifier().clone(), Kernel::default())?;
        let policy = EdgePolicy { runtime, cache };
        policy.record()?;
        Ok(policy)
    }

    /// Swaps in a new base packet (dropping any adapter); returns its digest.
    pub fn replace_base(&self, bytes: &[u8]) -> Result<Digest> {
        self.cache.put(bytes)?;
        let digest = self.runtime.replace_base(bytes)?;
        self.record()?;
        Ok(digest)
    }

    /// Verifies, caches and hot-swaps in an adapter for the loaded base; returns its digest.
    pub fn apply_adapter(&self, bytes: &[u8]) -> Result<Digest> {
        self.cache.put(bytes)?;
        let digest = self.runtime.apply_adapter(bytes)?;
        self.record()?;
        Ok(digest)
    }

    /// Returns to the previous adapter state (this process's history); returns the adapter
    /// now applied.
    pub fn rollback(&self) -> Result<Option<Digest>> {
        let now = self.runtime.rollback()?;
        self.record()?;
        Ok(now)
    }

    /// Runs the base alone.
    pub fn remove_adapter(&self) -> Result<()> {
        self.runtime.remove_adapter()?;
        self.record()
    }

    /// A lock-free handle for acting on one thread.
    pub fn actor(&self) -> Actor {
        self.runtime.actor()
    }

    /// What runs now.
    pub fn loaded(&self) -> Loaded {
        self.runtime.loaded()
    }

    /// The runtime underneath.
    pub fn runtime(&self) -> &EdgeRuntime {
        &self.runtime
    }

    /// The cache it loads from.
    pub fn cache(&self) -> &Arc<PacketCache> {
        &self.cache
    }

    fn record(&self) -> Result<()> {
        let loaded = self.runtime.loaded();
        self.cache.set_deployment(&Deployment {
            base: loaded.base,
            adapter: loaded.adapter,
        })
    }
}

#[cfg(test)]
mod tests {
    use plasma_packets::Verifier;

    use super::*;
    use crate::test_packets::{adapter_packet, base_packet, signer};

    fn outputs(policy: &EdgePolicy, obs: &[f32]) -> Vec<f32> {
        let mut scratch = plasma_packets::Scratch::default();
        policy
            .runtime()
            .policy()
            .outputs(obs, &mut scratch)
            .unwrap()
    }

    #[test]
    fn deploys_swaps_rolls_back_and_resumes_offline() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = Verifier::pinned(signer().public_key());
        let cache = Arc::new(PacketCache::open(dir.path(), verifier.clone()).unwrap());
        assert!(EdgePolicy::resume(cache.clone()).unwrap().is_none());
        let (base, base_digest) = base_packet(1);
        let (adapter, adapter_digest) = adapter_packet(&base_digest, 2);
        let policy = EdgePolicy::load_base(cache.clone(), &base).unwrap();
        let obs = [0.1, -0.2, 0.03, 0.4];
        let base_out = outputs(&policy, &obs);
        let mut actor = policy.actor();
        actor.act(&obs).unwrap();

        assert_eq!(policy.apply_adapter(&adapter).unwrap(), adapter_digest);
        let adapted_out = outputs(&policy, &obs);
        assert_ne!(base_out, adapted_out, "the adapter changes the outputs");
        // The actor created before the swap acts under the adapter now.
        assert_eq!(actor.current(), (base_digest, Some(adapter_digest)));
        // An adapter is no base, a base is no adapter.
        assert!(EdgePolicy::load_base(cache.clone(), &adapter).is_err());
        assert!(policy.apply_adapter(&base).is_err());

        // A new process resumes the same policy from the cache alone.
        let resumed = EdgePolicy::resume(Arc::new(
            PacketCache::open(dir.path(), verifier.clone()).unwrap(),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(resumed.loaded().adapter, Some(adapter_digest));
        assert_eq!(outputs(&resumed, &obs), adapted_out);

        assert_eq!(policy.rollback().unwrap(), None);
        assert_eq!(outputs(&policy, &obs), base_out);
        let resumed =
            EdgePolicy::resume(Arc::new(PacketCache::open(dir.path(), verifier).unwrap()))
                .unwrap()
                .unwrap();
        assert_eq!(resumed.loaded().adapter, None);

        // A tampered adapter is refused and changes nothing.
        let mut bad = adapter.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        assert!(policy.apply_adapter(&bad).is_err());
        assert_eq!(policy.loaded().adapter, None);
    }
}
