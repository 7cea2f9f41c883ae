//! The policy network: dense layers laid out exactly as the packet runtime computes them.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Device, Tensor, TensorData};
use plasma_packets::model::Activation;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::ensemble::net::normal;

/// Dense layers `in → hidden… → out`: `y = act(x · W + b)` per layer, burn's `Linear`
/// (weights `[d_in, d_out]`), the hidden activation after every layer but the last, no
/// activation after the last (its outputs go to the action mapping).
#[derive(Module, Debug)]
pub struct PolicyNet {
    /// The layers, first to last.
    pub(crate) layers: Vec<Linear>,
    /// Activation after every layer but the last.
    #[module(skip)]
    pub(crate) hidden_activation: Activation,
}

/// Applies a packet activation to a tensor.
pub(crate) fn activate<const D: usize>(x: Tensor<D>, activation: Activation) -> Tensor<D> {
    match activation {
        Activation::Identity => x,
        Activation::Relu => relu(x),
        Activation::Tanh => tanh(x),
    }
}

impl PolicyNet {
    /// A freshly initialized network, deterministic in `seed`: weights normal with std
    /// `gain / √fan_in` (gain 1 for tanh and identity, √2 for ReLU; 0.1 on the output layer
    /// so that an untrained policy starts near the middle of its action range), biases zero.
    pub(crate) fn new(
        widths: &[usize],
        hidden_activation: Activation,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = widths.len() - 1;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, pair)| {
                let (fan_in, fan_out) = (pair[0], pair[1]);
                let gain = if i + 1 == n {
                    0.1
                } else if hidden_activation == Activation::Relu {
                    std::f32::consts::SQRT_2
                } else {
                    1.0
                };
                let std = gain / (fan_in as f32).sqrt();
                let values: Vec<f32> = (0..fan_in * fan_out)
                    .map(|_| normal(&mut rng) * std)
                    .collect();
                Linear {
                    weight: Param::from_data(TensorData::new(values, [fan_in, fan_out]), device),
                    bias: Some(Param::from_data(
                        TensorData::new(vec![0f32; fan_out], [fan_out]),
                        device,
                    )),
                }
            })
            .collect();
        PolicyNet {
            layers,
            hidden_activation,
        }
    }

    /// Raw outputs `[B, out]` for normalized observations `[B, in]`.
    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(h);
            if i < last {
                h = activate(h, self.hidden_activation);
            }
        }
        h
    }
}
