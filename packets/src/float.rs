//! Plain f32 policies and LoRA adapters: the form in which trained weights leave the
//! trainer, the input to quantization, and the reference that the int8 runtime is
//! measured against (fidelity tests, the latency benchmark's baseline).

use serde::{Deserialize, Serialize};

use crate::model::{
    ActionSpace, Activation, AdapterBody, AdapterLayer, BaseBody, ObsNorm, QuantLayer,
};
use crate::quant::quantize_rows;
use crate::runtime::{OwnedAction, map_action};

/// One dense f32 layer, weights row-major `out × in`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatLayer {
    /// Input width.
    pub in_dim: usize,
    /// Output width.
    pub out_dim: usize,
    /// Weights, `out_dim × in_dim`, row-major.
    pub weights: Vec<f32>,
    /// Biases, `out_dim`.
    pub bias: Vec<f32>,
    /// Non-linearity after the layer.
    pub activation: Activation,
}

/// An f32 policy network with observation normalization and an action space. Its serde
/// form is how the server stores a trained policy between training and compilation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatPolicy {
    /// Normalization of raw observations.
    pub obs_norm: ObsNorm,
    /// Layers, first to last.
    pub layers: Vec<FloatLayer>,
    /// Action space of the outputs.
    pub action_space: ActionSpace,
}

/// The low-rank update of one layer: `ΔW = (alpha / rank) · B · A`. Serialized as the
/// tuple `[layer, a, b]` (the stored form since the first server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    from = "(usize, Vec<f32>, Vec<f32>)",
    into = "(usize, Vec<f32>, Vec<f32>)"
)]
pub struct FloatLoraLayer {
    /// Index of the adapted layer.
    pub layer: usize,
    /// `A`, `rank × in`, row-major.
    pub a: Vec<f32>,
    /// `B`, `out × rank`, row-major.
    pub b: Vec<f32>,
}

/// An f32 LoRA adapter for a [`FloatPolicy`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloatLora {
    /// Rank `r`.
    pub rank: usize,
    /// Alpha; the update is scaled by `alpha / rank`.
    pub alpha: f32,
    /// Adapted layers.
    pub layers: Vec<FloatLoraLayer>,
}

impl From<(usize, Vec<f32>, Vec<f32>)> for FloatLoraLayer {
    fn from((layer, a, b): (usize, Vec<f32>, Vec<f32>)) -> Self {
        FloatLoraLayer { layer, a, b }
    }
}

impl From<FloatLoraLayer> for (usize, Vec<f32>, Vec<f32>) {
    fn from(l: FloatLoraLayer) -> Self {
        (l.layer, l.a, l.b)
    }
}

impl FloatPolicy {
    /// Raw network outputs for one observation, optionally with an adapter, computed the
    /// straightforward way (allocating per layer, adapter applied unmerged).
    pub fn forward(&self, obs: &[f32], lora: Option<&FloatLora>) -> Vec<f32> {
        let mut x: Vec<f32> = obs
            .iter()
            .zip(self.obs_norm.mean.iter().zip(&self.obs_norm.std))
            .map(|(o, (m, s))| (o - m) / s)
            .collect();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut y = layer.bias.clone();
            for (o, yo) in y.iter_mut().enumerate() {
                let row = &layer.weights[o * layer.in_dim..(o + 1) * layer.in_dim];
                *yo += row.iter().zip(&x).map(|(w, xi)| w * xi).sum::<f32>();
            }
            if let Some(l) =
                lora.and_then(|l| l.layers.iter().find(|a| a.layer == i).map(|a| (l, a)))
            {
                let (lora, ad) = l;
                let scaling = lora.alpha / lora.rank as f32;
                let ax: Vec<f32> = (0..lora.rank)
                    .map(|r| {
                        let row = &ad.a[r * layer.in_dim..(r + 1) * layer.in_dim];
                        row.iter().zip(&x).map(|(w, xi)| w * xi).sum()
                    })
                    .collect();
                for (o, yo) in y.iter_mut().enumerate() {
                    let row = &ad.b[o * lora.rank..(o + 1) * lora.rank];
                    *yo += scaling * row.iter().zip(&ax).map(|(w, t)| w * t).sum::<f32>();
                }
            }
            for v in &mut y {
                *v = layer.activation.apply(*v);
            }
            x = y;
        }
        x
    }

    /// The action for one observation (reference path).
    pub fn act(&self, obs: &[f32], lora: Option<&FloatLora>) -> OwnedAction {
        let outputs = self.forward(obs, lora);
        let mut buf = vec![0.0; outputs.len()];
        map_action(&self.action_space, &outputs, &mut buf).to_owned()
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.layers.first().map_or(0, |l| l.in_dim)
    }

    /// Quantizes into the body of a base packet; the result is validated.
    pub fn quantize(&self) -> Result<BaseBody, String> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(QuantLayer {
                    weights: quantize_rows(&l.weights, l.out_dim, l.in_dim)?,
                    bias: l.bias.clone(),
                    activation: l.activation,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let body = BaseBody {
            obs_norm: self.obs_norm.clone(),
            layers,
            action_space: self.action_space.clone(),
        };
        body.validate()?;
        Ok(body)
    }
}

impl BaseBody {
    /// The f32 network that this quantized body stands for (weights dequantized), so that
    /// a deployed base can be trained on — an adapter fitted on top of it sees the weights
    /// that the edge runs.
    pub fn dequantize(&self) -> FloatPolicy {
        FloatPolicy {
            obs_norm: self.obs_norm.clone(),
            layers: self
                .layers
                .iter()
                .map(|l| FloatLayer {
                    in_dim: l.in_dim(),
                    out_dim: l.out_dim(),
                    weights: l.weights.dequantize(),
                    bias: l.bias.clone(),
                    activation: l.activation,
                })
                .collect(),
            action_space: self.action_space.clone(),
        }
    }
}

impl FloatLora {
    /// Quantizes into the body of an adapter packet for `base`; the result is validated
    /// and checked to fit.
    pub fn quantize(&self, base: &FloatPolicy) -> Result<AdapterBody, String> {
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let target = base
                .layers
                .get(l.layer)
                .ok_or_else(|| format!("adapter names layer {} the base lacks", l.layer))?;
            layers.push(AdapterLayer {
                layer: u32::try_from(l.layer).map_err(|_| "layer index too large".to_string())?,
                a: quantize_rows(&l.a, self.rank, target.in_dim)?,
                b: quantize_rows(&l.b, target.out_dim, self.rank)?,
            });
        }
        let body = AdapterBody {
            rank: u32::try_from(self.rank).map_err(|_| "rank too large".to_string())?,
            alpha: self.alpha,
            layers,
        };
        body.validate()?;
        Ok(body)
    }
}

/// Deterministic synthetic networks that look trained (He-scaled weights with a heavy
/// tail of outliers, small biases, non-trivial normalization), for tests, benchmarks and
/// demos that need a policy before any training has run.
pub mod synthetic {
    use super::*;
    use crate::model::ContinuousMapping;

    /// SplitMix64 with Box–Muller normals: tiny, seedable, good enough for weights.
    #[derive(Debug, Clone)]
    pub struct Rng(u64);

    impl Rng {
        /// A generator from a seed.
        pub fn new(seed: u64) -> Self {
            Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
        }

        /// Next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        pub fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        }

        /// Uniform in [lo, hi).
        pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * self.uniform() as f32
        }

        /// Standard normal.
        pub fn normal(&mut self) -> f32 {
            let u1 = self.uniform().max(f64::MIN_POSITIVE);
            let u2 = self.uniform();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        }
    }

    /// The heavy tail of a synthetic network's weights: a share of weights is scaled up
    /// by a factor. Outliers are what per-row int8 scales suffer from most.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Tail {
        /// Share of weights that are outliers.
        pub share: f64,
        /// How much larger an outlier is.
        pub factor: f32,
    }

    impl Tail {
        /// What small trained MLPs look like: 1% of weights at three times the spread.
        pub const TRAINED: Tail = Tail {
            share: 0.01,
            factor: 3.0,
        };
        /// A stress case: 2% of weights at four times the spread (most rows then hold
        /// an outlier that sets their scale).
        pub const STRESS: Tail = Tail {
            share: 0.02,
            factor: 4.0,
        };
    }

    fn layer(
        rng: &mut Rng,
        in_dim: usize,
        out_dim: usize,
        activation: Activation,
        tail: Tail,
    ) -> FloatLayer {
        let std = (2.0 / in_dim as f32).sqrt();
        let weights = (0..in_dim * out_dim)
            .map(|_| {
                let w = rng.normal() * std;
                if rng.uniform() < tail.share {
                    w * tail.factor
                } else {
                    w
                }
            })
            .collect();
        let bias = (0..out_dim).map(|_| rng.normal() * 0.1).collect();
        FloatLayer {
            in_dim,
            out_dim,
            weights,
            bias,
            activation,
        }
    }

    /// A ReLU MLP `obs_dim → hidden… → action_space.output_dim()` with the weights of
    /// [`Tail::TRAINED`].
    pub fn policy(
        seed: u64,
        obs_dim: usize,
        hidden: &[usize],
        action_space: ActionSpace,
    ) -> FloatPolicy {
        policy_with_tail(seed, obs_dim, hidden, action_space, Tail::TRAINED)
    }

    /// A tanh MLP (the hidden activation of the policies Plasma distils) with a chosen
    /// weight tail.
    pub fn policy_with_tail(
        seed: u64,
        obs_dim: usize,
        hidden: &[usize],
        action_space: ActionSpace,
        tail: Tail,
    ) -> FloatPolicy {
        let mut rng = Rng::new(seed);
        let mut dims = vec![obs_dim];
        dims.extend_from_slice(hidden);
        dims.push(action_space.output_dim());
        let n = dims.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let act = if i + 1 == n {
                    Activation::Identity
                } else {
                    Activation::Tanh
                };
                layer(&mut rng, dims[i], dims[i + 1], act, tail)
            })
            .collect();
        let obs_norm = ObsNorm {
            mean: (0..obs_dim).map(|_| rng.normal() * 0.5).collect(),
            std: (0..obs_dim).map(|_| rng.range(0.2, 3.0)).collect(),
        };
        FloatPolicy {
            obs_norm,
            layers,
            action_space,
        }
    }

    /// A rank-`rank` adapter on every layer of `base`, with updates about 10% of the
    /// base weights' size (as after fine-tuning).
    pub fn lora(seed: u64, base: &FloatPolicy, rank: usize, alpha: f32) -> FloatLora {
        let mut rng = Rng::new(seed);
        let layers = base
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let a = (0..rank * l.in_dim)
                    .map(|_| rng.normal() / (rank as f32).sqrt())
                    .collect();
                let b_std =
                    0.1 * (2.0 / l.in_dim as f32).sqrt() / (alpha / rank as f32).abs().max(1e-3);
                let b = (0..l.out_dim * rank)
                    .map(|_| rng.normal() * b_std / (rank as f32).sqrt())
                    .collect();
                FloatLoraLayer { layer: i, a, b }
            })
            .collect();
        FloatLora {
            rank,
            alpha,
            layers,
        }
    }

    /// The default edge policy shape of the targets: `obs_dim → 64 → 64 → n` logits.
    pub fn default_discrete(seed: u64, obs_dim: usize, n: u32) -> FloatPolicy {
        policy(seed, obs_dim, &[64, 64], ActionSpace::Discrete { n })
    }

    /// `obs_dim → 64 → 64 → act_dim`, clamped to `[-bound, bound]`.
    pub fn default_continuous(
        seed: u64,
        obs_dim: usize,
        act_dim: usize,
        bound: f32,
    ) -> FloatPolicy {
        policy(
            seed,
            obs_dim,
            &[64, 64],
            ActionSpace::Continuous {
                low: vec![-bound; act_dim],
                high: vec![bound; act_dim],
                mapping: ContinuousMapping::Clamp,
            },
        )
    }

    /// A random observation roughly in the range the normalization expects.
    pub fn observation(rng: &mut Rng, policy: &FloatPolicy) -> Vec<f32> {
        policy
            .obs_norm
            .mean
            .iter()
            .zip(&policy.obs_norm.std)
            .map(|(m, s)| m + s * rng.normal())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::synthetic;

    #[test]
    fn a_dequantized_body_is_the_network_the_int8_weights_stand_for() {
        let float = synthetic::default_discrete(3, 4, 2);
        let body = float.quantize().unwrap();
        let back = body.dequantize();
        assert_eq!(back.obs_norm, float.obs_norm);
        assert_eq!(back.action_space, float.action_space);
        for (b, (f, q)) in back
            .layers
            .iter()
            .zip(float.layers.iter().zip(&body.layers))
        {
            assert_eq!((b.in_dim, b.out_dim), (f.in_dim, f.out_dim));
            assert_eq!((&b.bias, b.activation), (&f.bias, f.activation));
            for (i, (bw, fw)) in b.weights.iter().zip(&f.weights).enumerate() {
                let half_step = q.weights.scales[i / f.in_dim] / 2.0;
                assert!((bw - fw).abs() <= half_step * 1.0001, "weight {i}");
            }
        }
        // The dequantized network quantizes back to the same body, bit for bit.
        assert_eq!(back.quantize().unwrap(), body);
    }
}
