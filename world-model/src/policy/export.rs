//! Export of a policy to the packet crate's f32 networks and to signed packets.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, TensorData};
use plasma_packets::codec::{Digest, Packet, PacketContent, VerifiedPacket};
use plasma_packets::float::{FloatLayer, FloatLora, FloatPolicy};
use plasma_packets::model::{Activation, Provenance};
use plasma_packets::signing::{PacketSigner, Verifier};

use super::lora::transpose;
use super::net::PolicyNet;
use super::{PolicyConfig, PolicyModel};
use crate::error::{Result, WorldModelError, read_f32};

/// An encoded, signed packet with its identity.
#[derive(Debug, Clone)]
pub struct BuiltPacket {
    /// The packet's bytes, as an agent downloads them.
    pub bytes: Vec<u8>,
    /// Its SHA-256 digest (its identity; an adapter packet names its base by this digest).
    pub digest: Digest,
    /// The packet decoded back and verified against the signer's public key.
    pub verified: VerifiedPacket,
}

fn packet_error(what: &str, e: impl std::fmt::Display) -> WorldModelError {
    WorldModelError::Config(format!("cannot build the {what} packet: {e}"))
}

/// Encodes `content`, signs it with `signer`, then decodes it back under the signer's own
/// public key: a packet that would not verify or compile is never returned.
fn build(
    what: &str,
    provenance: Provenance,
    content: PacketContent,
    signer: &PacketSigner,
    zstd_level: i32,
) -> Result<BuiltPacket> {
    let packet = Packet {
        provenance,
        content,
    };
    let bytes = packet
        .encode(Some(signer), zstd_level)
        .map_err(|e| packet_error(what, e))?;
    let verified = Packet::decode(&bytes, &Verifier::pinned(signer.public_key()))
        .map_err(|e| packet_error(what, e))?;
    Ok(BuiltPacket {
        digest: verified.digest,
        bytes,
        verified,
    })
}

/// A signed base packet of `policy` (int8-quantized, zstd level `zstd_level`).
pub fn base_packet(
    policy: &FloatPolicy,
    provenance: Provenance,
    signer: &PacketSigner,
    zstd_level: i32,
) -> Result<BuiltPacket> {
    let body = policy.quantize().map_err(|e| packet_error("base", e))?;
    build(
        "base",
        provenance,
        PacketContent::Base(body),
        signer,
        zstd_level,
    )
}

/// A signed adapter packet of `adapter` for `base`, bound to the digest of the base packet
/// agents run (`base_digest`, from [`base_packet`]).
pub fn adapter_packet(
    base: &FloatPolicy,
    adapter: &FloatLora,
    base_digest: Digest,
    provenance: Provenance,
    signer: &PacketSigner,
    zstd_level: i32,
) -> Result<BuiltPacket> {
    let body = adapter
        .quantize(base)
        .map_err(|e| packet_error("adapter", e))?;
    build(
        "adapter",
        provenance,
        PacketContent::Adapter { base_digest, body },
        signer,
        zstd_level,
    )
}

impl PolicyModel {
    /// A policy holding exactly the weights of an f32 packet policy: the inverse of
    /// [`PolicyModel::to_float_policy`], so that a stored base policy can be reloaded (after
    /// a restart) to train adapters on it. The architecture is read from the layers; the
    /// network must be one this crate could have built (chained widths, one hidden
    /// activation, an identity output layer, finite values, the packet format's limits).
    pub fn from_float_policy(policy: &FloatPolicy, device: &Device) -> Result<Self> {
        let bad = |m: String| Err(WorldModelError::Config(format!("float policy: {m}")));
        let Some(last) = policy.layers.last() else {
            return bad("no layers".into());
        };
        let obs_dim = policy.obs_norm.mean.len();
        let mut width = obs_dim;
        for (i, l) in policy.layers.iter().enumerate() {
            if l.in_dim != width {
                return bad(format!("layer {i} takes {} inputs, not {width}", l.in_dim));
            }
            if l.weights.len() != l.in_dim * l.out_dim || l.bias.len() != l.out_dim {
                return bad(format!("layer {i} has misshapen weights or biases"));
            }
            if l.weights.iter().chain(&l.bias).any(|v| !v.is_finite()) {
                return bad(format!("layer {i} holds a non-finite value"));
            }
            width = l.out_dim;
        }
        if last.activation != Activation::Identity {
            return bad("the output layer must have no activation".into());
        }
        let hidden = &policy.layers[..policy.layers.len() - 1];
        let activation = hidden.first().map_or(Activation::Tanh, |l| l.activation);
        if hidden.iter().any(|l| l.activation != activation) {
            return bad("hidden layers with different activations".into());
        }
        let config = PolicyConfig {
            hidden: hidden.iter().map(|l| l.out_dim).collect(),
            activation,
            continuous_mapping: match &policy.action_space {
                plasma_packets::model::ActionSpace::Continuous { mapping, .. } => *mapping,
                plasma_packets::model::ActionSpace::Discrete { .. } => {
                    PolicyConfig::default().continuous_mapping
                }
            },
            ..PolicyConfig::default()
        };
        // Validates the widths, the normalization and the action space.
        let fresh = PolicyModel::new(
            config.clone(),
            policy.obs_norm.clone(),
            policy.action_space.clone(),
            device,
        )?;
        let autodiff = device.clone().autodiff();
        let layers = policy
            .layers
            .iter()
            .map(|l| Linear {
                weight: Param::from_data(
                    TensorData::new(
                        transpose(&l.weights, l.out_dim, l.in_dim),
                        [l.in_dim, l.out_dim],
                    ),
                    &autodiff,
                ),
                bias: Some(Param::from_data(
                    TensorData::new(l.bias.clone(), [l.out_dim]),
                    &autodiff,
                )),
            })
            .collect();
        let net = PolicyNet {
            layers,
            hidden_activation: activation,
        };
        Ok(PolicyModel::assemble(
            config,
            fresh.obs_norm,
            fresh.action_space,
            device,
            net,
            None,
        ))
    }

    /// The base network as an f32 packet policy: weights transposed from burn's
    /// `[d_in, d_out]` to the packet's `out × in` row-major, biases, the hidden activation
    /// on every layer but the last (`Identity`), the normalization and action space. For an
    /// adapter-mode policy this is the frozen base (the adapters are
    /// [`PolicyModel::to_float_lora`]; [`PolicyModel::merged`] folds them in).
    pub fn to_float_policy(&self) -> Result<FloatPolicy> {
        let n = self.net.layers.len();
        let mut layers = Vec::with_capacity(n);
        for (i, layer) in self.net.layers.iter().enumerate() {
            let w = layer.weight.base();
            let [in_dim, out_dim] = w.dims();
            let bias = match &layer.bias {
                Some(b) => read_f32(b.val())?,
                None => vec![0.0; out_dim],
            };
            layers.push(FloatLayer {
                in_dim,
                out_dim,
                weights: transpose(&read_f32(w)?, in_dim, out_dim),
                bias,
                activation: if i + 1 == n {
                    Activation::Identity
                } else {
                    self.net.hidden_activation
                },
            });
        }
        Ok(FloatPolicy {
            obs_norm: self.obs_norm.clone(),
            layers,
            action_space: self.action_space.clone(),
        })
    }

    /// A signed base packet of this policy's base network ([`PolicyModel::to_float_policy`]).
    pub fn base_packet(
        &self,
        provenance: Provenance,
        signer: &PacketSigner,
        zstd_level: i32,
    ) -> Result<BuiltPacket> {
        base_packet(&self.to_float_policy()?, provenance, signer, zstd_level)
    }

    /// A signed adapter packet of this adapter-mode policy's adapters, bound to
    /// `base_digest`, the digest of the base packet of the same base network.
    pub fn adapter_packet(
        &self,
        base_digest: Digest,
        provenance: Provenance,
        signer: &PacketSigner,
        zstd_level: i32,
    ) -> Result<BuiltPacket> {
        adapter_packet(
            &self.to_float_policy()?,
            &self.to_float_lora()?,
            base_digest,
            provenance,
            signer,
            zstd_level,
        )
    }

    /// Number of trainable values: all weights and biases of a base policy, the LoRA
    /// factors of an adapter-mode one.
    pub fn trainable_params(&self) -> usize {
        match &self.lora {
            None => self.net.num_params(),
            Some(spec) => spec
                .layers
                .iter()
                .map(|&l| {
                    let [i, o] = self.net.layers[l].weight.base().dims();
                    spec.rank * (i + o)
                })
                .sum(),
        }
    }
}
