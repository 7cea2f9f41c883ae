//! LoRA adapters on a policy, with burn's built-in LoRA (`module::lora`), and their export
//! to the packet layout.

use burn::module::{Lora, LoraAdapter, Module, Param, ParamGroup, Reparameterizer};
use burn::tensor::{Tensor, TensorData};
use plasma_packets::float::{FloatLora, FloatLoraLayer};
use plasma_packets::limits::MAX_RANK;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use super::PolicyModel;
use crate::ensemble::net::normal;
use crate::error::{Result, WorldModelError, read_f32};

/// How [`PolicyModel::with_lora`] adapts a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of the update (1..=64).
    pub rank: usize,
    /// Scale numerator: the update is `(alpha / r) · A · B`.
    pub alpha: f32,
    /// Indices of the layers that get adapters (first layer 0); `None`: all layers.
    pub layers: Option<Vec<usize>>,
    /// Standard deviation of `A`'s initial values; `None`: burn's default `1 / r`. `B`
    /// starts at zero, so a fresh adapter leaves the policy unchanged.
    pub init_std: Option<f32>,
    /// Seed of `A`'s initialization.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 4,
            alpha: 8.0,
            layers: None,
            init_std: None,
            seed: 0,
        }
    }
}

/// The adapters of an adapter-mode policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSpec {
    /// Rank `r`.
    pub rank: usize,
    /// Scale numerator `alpha`.
    pub alpha: f32,
    /// Indices of the adapted layers, ascending.
    pub layers: Vec<usize>,
}

/// burn's [`Lora`] with `A` drawn from the crate's own seeded generator instead of the
/// device's global random state, so that an adapter's initialization is reproducible.
struct SeededLora {
    lora: Lora,
    std: f32,
    rng: SmallRng,
}

impl Reparameterizer for SeededLora {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let (base, adapter) = self.lora.reparameterize(path, param);
        let adapter = adapter.map(|adapter| {
            let a = adapter.a.val();
            let [d_in, rank] = a.dims();
            let values: Vec<f32> = (0..d_in * rank)
                .map(|_| normal(&mut self.rng) * self.std)
                .collect();
            LoraAdapter {
                a: Param::from_data(TensorData::new(values, [d_in, rank]), &a.device()),
                b: adapter.b,
                scale: adapter.scale,
            }
        });
        (base, adapter)
    }
}

impl PolicyModel {
    /// An adapter-mode copy of this (base) policy: every weight and bias frozen, a rank-`r`
    /// LoRA adapter on each chosen layer's weight (`B = 0`, so the copy acts exactly as
    /// the base until trained). [`PolicyModel::fit`] on the copy trains only the adapters.
    pub fn with_lora(&self, config: &LoraConfig) -> Result<PolicyModel> {
        if self.lora.is_some() {
            return Err(WorldModelError::Config(
                "this policy already has adapters; merge them first".into(),
            ));
        }
        let bad = |m: String| Err(WorldModelError::Config(m));
        if config.rank == 0 || config.rank > MAX_RANK {
            return bad(format!("LoRA rank {} outside 1..={MAX_RANK}", config.rank));
        }
        if !config.alpha.is_finite() {
            return bad(format!("LoRA alpha must be finite, got {}", config.alpha));
        }
        let std = config.init_std.unwrap_or(1.0 / config.rank as f32);
        if !(std.is_finite() && std > 0.0) {
            return bad(format!("LoRA init_std must be finite and > 0, got {std}"));
        }
        let n = self.train_net.layers.len();
        let mut layers = config.layers.clone().unwrap_or_else(|| (0..n).collect());
        layers.sort_unstable();
        layers.dedup();
        if layers.is_empty() {
            return bad("LoRA needs at least one adapted layer".into());
        }
        if let Some(l) = layers.iter().find(|&&l| l >= n) {
            return bad(format!("LoRA layer {l}, but the policy has {n} layers"));
        }
        let ids = layers
            .iter()
            .map(|&l| self.train_net.layers[l].weight.id)
            .collect();
        let reparameterizer = SeededLora {
            lora: Lora::new(config.rank, f64::from(config.alpha))
                .set_param_group(ParamGroup::from_ids(ids)),
            std,
            rng: SmallRng::seed_from_u64(config.seed),
        };
        let train_net = self
            .train_net
            .clone()
            .apply_reparameterization(reparameterizer);
        Ok(PolicyModel::assemble(
            self.config.clone(),
            self.obs_norm.clone(),
            self.action_space.clone(),
            &self.device,
            train_net,
            Some(LoraSpec {
                rank: config.rank,
                alpha: config.alpha,
                layers,
            }),
        ))
    }

    /// A base policy whose weights are this policy's effective weights (adapters folded
    /// in, `W + (alpha / r) · A · B`); a base policy is returned as it is.
    pub fn merged(&self) -> PolicyModel {
        if self.lora.is_none() {
            return self.clone();
        }
        // `materialize` folds the adapters in but keeps the base's frozen state; training the
        // merged policy as a new base needs its parameters trainable again.
        let train_net = self.train_net.clone().materialize().unfreeze();
        PolicyModel::assemble(
            self.config.clone(),
            self.obs_norm.clone(),
            self.action_space.clone(),
            &self.device,
            train_net,
            None,
        )
    }

    /// The adapters in the packet's layout: per adapted layer `A` as `r × in` and `B` as
    /// `out × r`, row-major (the transposes of burn's `A [in, r]`, `B [r, out]`), with the
    /// same `alpha` and rank, so that `(alpha / r) · B · A` is the transpose of burn's
    /// update. Fails on a base policy.
    pub fn to_float_lora(&self) -> Result<FloatLora> {
        let Some(spec) = &self.lora else {
            return Err(WorldModelError::Config(
                "a base policy has no adapters to export".into(),
            ));
        };
        let mut layers = Vec::with_capacity(spec.layers.len());
        for &l in &spec.layers {
            let Some(adapter) = self.net.layers[l].weight.adapter() else {
                return Err(WorldModelError::Backend(format!(
                    "layer {l} lost its LoRA adapter"
                )));
            };
            let expected = f64::from(spec.alpha) / spec.rank as f64;
            if (adapter.scale - expected).abs() > 1e-9 * expected.abs().max(1.0) {
                return Err(WorldModelError::Backend(format!(
                    "layer {l}: LoRA scale {} is not alpha / rank = {expected}",
                    adapter.scale
                )));
            }
            let a = adapter.a.val();
            let [d_in, r] = a.dims();
            let b = adapter.b.val();
            let [_, d_out] = b.dims();
            layers.push(FloatLoraLayer {
                layer: l,
                a: transpose(&read_f32(a)?, d_in, r),
                b: transpose(&read_f32(b)?, r, d_out),
            });
        }
        Ok(FloatLora {
            rank: spec.rank,
            alpha: spec.alpha,
            layers,
        })
    }
}

/// The transpose of a row-major `rows × cols` matrix (row-major `cols × rows`).
pub(super) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}
