//! The ensemble's networks: `E` MLPs whose weights are stacked (`[E, in, out]`), so that
//! every layer of every member is one batched matrix product over a `[E, B, in]` input.

use burn::module::{Module, Param};
use burn::tensor::activation::{relu, softplus, tanh};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::{Activation, EnsembleConfig};

/// The outputs of every member for a batch: `[E, B, ·]` tensors in normalized units.
#[derive(Debug, Clone)]
pub struct Heads {
    /// Means of the normalized change of observation and reward, `[E, B, obs_dim + 1]`.
    pub mean: Tensor<3>,
    /// Their log-variances, soft-clamped to the learned bounds, when asked for.
    pub logvar: Option<Tensor<3>>,
    /// Termination logits, `[E, B, 1]`.
    pub term_logit: Tensor<3>,
}

/// `E` MLPs from normalized `[obs, action]` to `[Δobs mean, reward mean, Δobs log-var,
/// reward log-var, termination logit]`, all in one batched computation.
#[derive(Module, Debug)]
pub struct EnsembleNet {
    /// Stacked layer weights, `[E, in, out]` each.
    weights: Vec<Param<Tensor<3>>>,
    /// Stacked layer biases, `[E, 1, out]` each.
    biases: Vec<Param<Tensor<3>>>,
    /// Upper soft bound of the log-variance, `[E, 1, obs_dim + 1]`.
    max_logvar: Param<Tensor<3>>,
    /// Lower soft bound of the log-variance, `[E, 1, obs_dim + 1]`.
    min_logvar: Param<Tensor<3>>,
    /// Hidden-layer activation.
    #[module(skip)]
    activation: Activation,
    /// Width of the Gaussian targets: `obs_dim + 1`.
    #[module(skip)]
    target_dim: usize,
}

/// Width of the network's raw output for `target_dim` Gaussian targets.
pub fn output_dim(target_dim: usize) -> usize {
    2 * target_dim + 1
}

/// A standard normal draw by Box–Muller, from the crate's own seeded generator (so that
/// initialization does not depend on a backend's global random state).
pub(crate) fn normal(rng: &mut SmallRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

impl EnsembleNet {
    /// A freshly initialized ensemble: weights from a normal truncated at two standard
    /// deviations with std `1 / (2 √fan_in)` (PETS), zero biases, log-variance bounds at the
    /// configured values. Deterministic in `config.seed`.
    pub fn new(
        config: &EnsembleConfig,
        input_dim: usize,
        target_dim: usize,
        device: &Device,
    ) -> Self {
        let e = config.members;
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut widths = vec![input_dim];
        widths.extend(&config.hidden);
        widths.push(output_dim(target_dim));
        let mut weights = vec![];
        let mut biases = vec![];
        for pair in widths.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let std = 1.0 / (2.0 * (fan_in as f32).sqrt());
            let values: Vec<f32> = (0..e * fan_in * fan_out)
                .map(|_| {
                    loop {
                        let z = normal(&mut rng);
                        if z.abs() <= 2.0 {
                            break z * std;
                        }
                    }
                })
                .collect();
            weights.push(Param::from_data(
                TensorData::new(values, [e, fan_in, fan_out]),
                device,
            ));
            biases.push(Param::from_data(
                TensorData::new(vec![0f32; e * fan_out], [e, 1, fan_out]),
                device,
            ));
        }
        let bound = |v: f32| {
            let p = Param::from_data(
                TensorData::new(vec![v; e * target_dim], [e, 1, target_dim]),
                device,
            );
            if config.learn_logvar_bounds {
                p
            } else {
                p.set_require_grad(false)
            }
        };
        EnsembleNet {
            weights,
            biases,
            max_logvar: bound(config.max_logvar),
            min_logvar: bound(config.min_logvar),
            activation: config.activation,
            target_dim,
        }
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.max_logvar.val().dims()[0]
    }

    /// Width of the input.
    pub fn input_dim(&self) -> usize {
        self.weights[0].val().dims()[1]
    }

    /// Multiply-adds per row of one member's forward pass (for throughput reports).
    pub fn macs_per_row(&self) -> usize {
        self.weights
            .iter()
            .map(|w| {
                let [_, i, o] = w.val().dims();
                i * o
            })
            .sum()
    }

    /// The raw output `[E, B, 2·target_dim + 1]` for a normalized input `[E, B, in]` (member
    /// `e` sees row block `e`).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let last = self.weights.len() - 1;
        let mut h = x;
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            h = h.matmul(w.val()) + b.val();
            if i < last {
                h = match self.activation {
                    // x / (1 + e^−x): the same function as burn's `silu`, composed of ops
                    // that flex vectorizes; measured 2× faster than `silu` on the CPU.
                    Activation::Silu => h.clone() / (h.neg().exp() + 1.0),
                    Activation::Relu => relu(h),
                    Activation::Tanh => tanh(h),
                };
            }
        }
        h
    }

    /// Splits a raw output into its heads; the log-variance is computed only if asked for.
    pub fn heads(&self, raw: Tensor<3>, with_logvar: bool) -> Heads {
        let t = self.target_dim;
        let mean = raw.clone().narrow(2, 0, t);
        let term_logit = raw.clone().narrow(2, 2 * t, 1);
        let logvar = with_logvar.then(|| {
            let max = self.max_logvar.val();
            let min = self.min_logvar.val();
            let lv = raw.narrow(2, t, t);
            let lv = max.clone() - softplus(max - lv, 1.0);
            min.clone() + softplus(lv - min, 1.0)
        });
        Heads {
            mean,
            logvar,
            term_logit,
        }
    }

    /// Sum of the upper bounds minus sum of the lower bounds: PETS's penalty that keeps the
    /// log-variance range tight.
    pub fn logvar_bound_penalty(&self) -> Tensor<1> {
        self.max_logvar.val().sum() - self.min_logvar.val().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_member_independence() {
        let device = Device::flex();
        let config = EnsembleConfig {
            members: 3,
            hidden: vec![8, 8],
            ..EnsembleConfig::default()
        };
        let net = EnsembleNet::new(&config, 5, 4, &device);
        assert_eq!(net.members(), 3);
        assert_eq!(net.macs_per_row(), 5 * 8 + 8 * 8 + 8 * 9);
        let x = Tensor::<3>::from_data(
            TensorData::new(
                (0..3 * 2 * 5).map(|i| i as f32 / 10.0).collect::<Vec<_>>(),
                [3, 2, 5],
            ),
            &device,
        );
        let raw = net.forward(x.clone());
        assert_eq!(raw.dims(), [3, 2, 9]);
        let heads = net.heads(raw.clone(), true);
        assert_eq!(heads.mean.dims(), [3, 2, 4]);
        assert_eq!(heads.term_logit.dims(), [3, 2, 1]);
        let lv = heads
            .logvar
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(lv.iter().all(|v| (-10.0..=0.5).contains(v)));
        // Each member's output depends on its own block of rows only.
        let mut changed = x.into_data().try_into_vec::<f32>().unwrap();
        changed[..10].iter_mut().for_each(|v| *v += 1.0);
        let raw2 = net.forward(Tensor::from_data(
            TensorData::new(changed, [3, 2, 5]),
            &device,
        ));
        let a = raw.into_data().try_into_vec::<f32>().unwrap();
        let b = raw2.into_data().try_into_vec::<f32>().unwrap();
        assert_ne!(a[..18], b[..18]);
        assert_eq!(a[18..], b[18..]);
        // Deterministic initialization.
        let again = EnsembleNet::new(&config, 5, 4, &device);
        assert_eq!(
            again.weights[0]
                .val()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap(),
            net.weights[0]
                .val()
                .into_data()
                .try_into_vec::<f32>()
                .unwrap()
        );
    }
}
