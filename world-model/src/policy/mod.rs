//! Small policies for the edge: a burn MLP laid out exactly as the packet runtime computes
//! it, trained by supervised imitation (what distillation calls), adapted with LoRA, and
//! exported to f32 networks and signed instruction packets.
//!
//! The network, for raw observations `o`:
//!
//! 1. normalization `x = (o − mean) · (1 / std)` ([`ObsNorm`], fitted from states with the
//!    std floored, see [`obs_norm_from_states`]);
//! 2. dense layers `x ← act(x · W + b)` (burn's `Linear`, `W` is `[d_in, d_out]`), the
//!    hidden activation ([`PolicyConfig::activation`], tanh by default) after every layer
//!    but the last, none after the last;
//! 3. the packet's [`ActionSpace`] mapping of the `n` raw outputs `y`: a discrete action is
//!    `argmax y` (logits); a continuous one is `low + (tanh(y) + 1)/2 · (high − low)`
//!    ([`ContinuousMapping::TanhScaled`], the default) or `clamp(y, low, high)`.
//!
//! [`PolicyModel`] holds the network, the normalization, the action space and the device.
//! It drives phantom paths ([`crate::rollout::Policy`]), acts on host observations
//! ([`PolicyModel::act_batch`]) and trains ([`PolicyModel::fit`]: cross-entropy on
//! discrete action labels, squared error on mapped continuous actions; Adam on shuffled
//! minibatches; repeated calls continue from the current weights, as DAgger needs).
//!
//! LoRA ([`PolicyModel::with_lora`]) uses burn's built-in adapters (`module::lora`): the
//! base weights and biases are frozen and each adapted layer gains `A [d_in, r]` and
//! `B [r, d_out]` with `W_eff = W + (alpha / r) · A · B`; [`PolicyModel::fit`] then trains
//! only `A` and `B`. The packet stores weights `out × in`, so the export transposes:
//! `W_packet = Wᵀ`, `A_packet = Aᵀ` (`r × in`), `B_packet = Bᵀ` (`out × r`), and
//! `(alpha / r) · B_packet · A_packet = ((alpha / r) · A · B)ᵀ`, the same update.
//!
//! Export: [`PolicyModel::to_float_policy`] (the base), [`PolicyModel::to_float_lora`]
//! (the adapter), and [`base_packet`] / [`adapter_packet`] for signed packets (the adapter
//! bound to the base packet's digest).

mod export;
mod lora;
mod net;
#[cfg(test)]
mod tests;
mod train;

use burn::module::Module;
use burn::tensor::activation::tanh;
use burn::tensor::{Device, Tensor, TensorData};
use plasma_packets::limits::{MAX_DIM, MAX_LAYERS, MAX_TOTAL_WEIGHTS};
use plasma_packets::model::{ActionSpace, Activation, ContinuousMapping, ObsNorm};
use plasma_packets::runtime::{self as packet_runtime, argmax_first};
use plasma_protocol::{Action, Space};
use serde::{Deserialize, Serialize};

use crate::error::{Result, WorldModelError, check_finite, read_f32};
use crate::model::ActionBatch;

pub use export::{BuiltPacket, adapter_packet, base_packet};
pub use lora::{LoraConfig, LoraSpec};
pub use net::PolicyNet;
pub use train::{FitConfig, FitReport, Labels};

/// Rows per forward pass when acting on or scoring many host observations.
const CHUNK: usize = 8192;

/// The architecture of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Hidden layer widths (default `[64, 64]`).
    pub hidden: Vec<usize>,
    /// Activation after every hidden layer: `Tanh` (default), `Relu` or `Identity`. The
    /// output layer has none.
    pub activation: Activation,
    /// How raw outputs map into a continuous action box (default `TanhScaled`).
    pub continuous_mapping: ContinuousMapping,
    /// Smallest standard deviation of the observation normalization (a constant
    /// dimension would otherwise divide by zero).
    pub std_floor: f32,
    /// Seed of the weight initialization.
    pub seed: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
            continuous_mapping: ContinuousMapping::TanhScaled,
            std_floor: 1e-3,
            seed: 0,
        }
    }
}

impl PolicyConfig {
    /// Checks the configuration for a policy `obs_dim → … → out_dim` against the packet
    /// format's limits.
    pub fn validate(&self, obs_dim: usize, out_dim: usize) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if self.hidden.len() + 1 > MAX_LAYERS {
            return bad(format!(
                "{} hidden layers: a packet holds at most {MAX_LAYERS} layers",
                self.hidden.len()
            ));
        }
        let widths = self.widths(obs_dim, out_dim);
        if let Some(w) = widths.iter().find(|&&w| w == 0 || w > MAX_DIM) {
            return bad(format!("layer width {w} outside 1..={MAX_DIM}"));
        }
        let total: usize = widths.windows(2).map(|p| p[0] * p[1]).sum();
        if total > MAX_TOTAL_WEIGHTS {
            return bad(format!(
                "{total} weights: a packet holds at most {MAX_TOTAL_WEIGHTS}"
            ));
        }
        if !(self.std_floor.is_finite()
            && self.std_floor > 0.0
            && (1.0 / self.std_floor).is_finite())
        {
            return bad(format!(
                "std_floor must be finite and > 0, got {}",
                self.std_floor
            ));
        }
        Ok(())
    }

    fn widths(&self, obs_dim: usize, out_dim: usize) -> Vec<usize> {
        let mut widths = vec![obs_dim];
        widths.extend(&self.hidden);
        widths.push(out_dim);
        widths
    }
}

/// The packet action space of a task's action space: a discrete space keeps its `n`, a box
/// its bounds with `mapping`. Unbounded or inverted boxes are refused (a policy's outputs
/// must map into finite bounds).
pub fn action_space_for(space: &Space, mapping: ContinuousMapping) -> Result<ActionSpace> {
    let action_space = match space {
        Space::Discrete { n } => ActionSpace::Discrete { n: *n },
        Space::Box { low, high } => ActionSpace::Continuous {
            low: low.clone(),
            high: high.clone(),
            mapping,
        },
    };
    check_action_space(&action_space)?;
    Ok(action_space)
}

fn check_action_space(space: &ActionSpace) -> Result<()> {
    let bad = |m: String| Err(WorldModelError::Config(m));
    match space {
        ActionSpace::Discrete { n } => {
            if *n == 0 || *n as usize > MAX_DIM {
                return bad(format!("discrete action count {n} outside 1..={MAX_DIM}"));
            }
        }
        ActionSpace::Continuous { low, high, .. } => {
            if low.is_empty() || low.len() != high.len() || low.len() > MAX_DIM {
                return bad(format!(
                    "action box needs 1..={MAX_DIM} bounds of equal length, got {} and {}",
                    low.len(),
                    high.len()
                ));
            }
            if let Some((l, h)) = low
                .iter()
                .zip(high)
                .find(|(l, h)| !(l.is_finite() && h.is_finite() && l <= h))
            {
                return bad(format!(
                    "action bound [{l}, {h}] must be finite with low ≤ high"
                ));
            }
        }
    }
    Ok(())
}

/// Per-dimension mean and standard deviation of `states` (`[N, obs_dim]`, row-major), the
/// std floored at `std_floor`: the normalization a policy applies to its observations.
pub fn obs_norm_from_states(states: &[f32], obs_dim: usize, std_floor: f32) -> Result<ObsNorm> {
    let n = check_states(states, obs_dim)?;
    if n == 0 {
        return Err(WorldModelError::EmptyDataset(
            "no states to fit the observation normalization".into(),
        ));
    }
    if !(std_floor.is_finite() && std_floor > 0.0) {
        return Err(WorldModelError::Config(format!(
            "std_floor must be finite and > 0, got {std_floor}"
        )));
    }
    let mut sum = vec![0f64; obs_dim];
    for row in states.chunks_exact(obs_dim) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n as f64).collect();
    let mut var = vec![0f64; obs_dim];
    for row in states.chunks_exact(obs_dim) {
        for ((q, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *q += (f64::from(v) - m).powi(2);
        }
    }
    Ok(ObsNorm {
        mean: mean.iter().map(|&m| m as f32).collect(),
        std: var
            .iter()
            .map(|q| ((q / n as f64).sqrt() as f32).max(std_floor))
            .collect(),
    })
}

/// Checks that `states` is finite and holds whole rows of `obs_dim`; returns the row count.
fn check_states(states: &[f32], obs_dim: usize) -> Result<usize> {
    if obs_dim == 0 || !states.len().is_multiple_of(obs_dim) {
        return Err(WorldModelError::shape(
            "states",
            format!("rows of {obs_dim} values"),
            format!("{} values", states.len()),
        ));
    }
    check_finite("states", states)?;
    Ok(states.len() / obs_dim)
}

/// A trained (or trainable) policy: the network on its device, its observation
/// normalization and action space, optionally LoRA adapters.
///
/// Two copies of the network are kept, as the ensemble does: the trainable one on the
/// autodiff twin of the device and its inference copy (`valid()`), which acts.
#[derive(Debug, Clone)]
pub struct PolicyModel {
    config: PolicyConfig,
    obs_norm: ObsNorm,
    action_space: ActionSpace,
    device: Device,
    /// Trainable copy, on `device.autodiff()`.
    train_net: PolicyNet,
    /// Inference copy, on `device`.
    net: PolicyNet,
    /// The adapters, if this is an adapter-mode policy.
    lora: Option<LoraSpec>,
    /// Calls of `fit` so far (varies the minibatch order between calls).
    fits: u64,
    /// `mean` as a `[1, obs_dim]` tensor on `device`.
    mean: Tensor<2>,
    /// `1 / std` as a `[1, obs_dim]` tensor on `device`.
    inv_std: Tensor<2>,
    /// Lower and upper bounds of a continuous space, `[1, action_dim]` on `device`.
    bounds: Option<(Tensor<2>, Tensor<2>)>,
}

impl PolicyModel {
    /// A freshly initialized policy with the given normalization and action space.
    pub fn new(
        config: PolicyConfig,
        obs_norm: ObsNorm,
        action_space: ActionSpace,
        device: &Device,
    ) -> Result<Self> {
        let obs_dim = obs_norm.mean.len();
        check_action_space(&action_space)?;
        config.validate(obs_dim, action_space.output_dim())?;
        check_obs_norm(&obs_norm)?;
        let train_net = PolicyNet::new(
            &config.widths(obs_dim, action_space.output_dim()),
            config.activation,
            config.seed,
            &device.clone().autodiff(),
        );
        Ok(Self::assemble(
            config,
            obs_norm,
            action_space,
            device,
            train_net,
            None,
        ))
    }

    /// A freshly initialized policy whose normalization is fitted to `states`
    /// (`[N, obs_dim]`, row-major), with [`PolicyConfig::std_floor`].
    pub fn from_states(
        config: PolicyConfig,
        states: &[f32],
        obs_dim: usize,
        action_space: ActionSpace,
        device: &Device,
    ) -> Result<Self> {
        let obs_norm = obs_norm_from_states(states, obs_dim, config.std_floor)?;
        Self::new(config, obs_norm, action_space, device)
    }

    /// A freshly initialized policy for a task's action space (mapped with
    /// [`PolicyConfig::continuous_mapping`]), normalization fitted to `states`.
    pub fn for_space(
        config: PolicyConfig,
        states: &[f32],
        obs_dim: usize,
        action_space: &Space,
        device: &Device,
    ) -> Result<Self> {
        let space = action_space_for(action_space, config.continuous_mapping)?;
        Self::from_states(config, states, obs_dim, space, device)
    }

    fn assemble(
        config: PolicyConfig,
        obs_norm: ObsNorm,
        action_space: ActionSpace,
        device: &Device,
        train_net: PolicyNet,
        lora: Option<LoraSpec>,
    ) -> Self {
        let row = |v: Vec<f32>| {
            let d = v.len();
            Tensor::<2>::from_data(TensorData::new(v, [1, d]), device)
        };
        let mean = row(obs_norm.mean.clone());
        let inv_std = row(obs_norm.std.iter().map(|s| 1.0 / s).collect());
        let bounds = match &action_space {
            ActionSpace::Discrete { .. } => None,
            ActionSpace::Continuous { low, high, .. } => {
                Some((row(low.clone()), row(high.clone())))
            }
        };
        PolicyModel {
            config,
            obs_norm,
            action_space,
            device: device.clone(),
            net: train_net.valid(),
            train_net,
            lora,
            fits: 0,
            mean,
            inv_std,
            bounds,
        }
    }

    /// The architecture.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// The observation normalization.
    pub fn obs_norm(&self) -> &ObsNorm {
        &self.obs_norm
    }

    /// The packet action space.
    pub fn action_space(&self) -> &ActionSpace {
        &self.action_space
    }

    /// The device the policy acts on (training uses its autodiff twin).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.obs_norm.mean.len()
    }

    /// Number of raw outputs (logits or pre-mapping continuous values).
    pub fn output_dim(&self) -> usize {
        self.action_space.output_dim()
    }

    /// Number of dense layers.
    pub fn num_layers(&self) -> usize {
        self.net.layers.len()
    }

    /// The adapters of an adapter-mode policy, `None` for a base policy.
    pub fn lora(&self) -> Option<&LoraSpec> {
        self.lora.as_ref()
    }

    /// The inference network.
    pub fn net(&self) -> &PolicyNet {
        &self.net
    }

    fn check_obs_tensor(&self, obs: &Tensor<2>) -> Result<usize> {
        let [p, d] = obs.dims();
        if d != self.obs_dim() {
            return Err(WorldModelError::shape(
                "observations",
                format!("[P, {}]", self.obs_dim()),
                format!("[{p}, {d}]"),
            ));
        }
        Ok(p)
    }

    /// Raw network outputs `[P, n]` for raw observations `[P, obs_dim]` on the policy's
    /// device (no check of the values: that would synchronize with the device).
    pub fn outputs(&self, obs: Tensor<2>) -> Result<Tensor<2>> {
        let p = self.check_obs_tensor(&obs)?;
        let d = self.obs_dim();
        let x = (obs - self.mean.clone().expand([p, d])) * self.inv_std.clone().expand([p, d]);
        Ok(self.net.forward(x))
    }

    /// Continuous actions `[P, d]` from raw outputs `[P, d]` (the packet's mapping).
    fn map_continuous(&self, y: Tensor<2>) -> Tensor<2> {
        let Some((low, high)) = &self.bounds else {
            return y;
        };
        let dims = y.dims();
        let (low, high) = (low.clone().expand(dims), high.clone().expand(dims));
        map_continuous(self.continuous_mapping(), y, low, high)
    }

    fn continuous_mapping(&self) -> ContinuousMapping {
        match &self.action_space {
            ActionSpace::Continuous { mapping, .. } => *mapping,
            ActionSpace::Discrete { .. } => ContinuousMapping::Clamp,
        }
    }

    /// The actions for raw observations `[P, obs_dim]` on the policy's device: argmax
    /// indices for a discrete space, mapped values for a continuous one.
    pub fn act_tensor(&self, obs: Tensor<2>) -> Result<ActionBatch> {
        let p = self.check_obs_tensor(&obs)?;
        let y = self.outputs(obs)?;
        Ok(match &self.action_space {
            ActionSpace::Discrete { .. } => ActionBatch::Discrete(y.argmax(1).reshape([p])),
            ActionSpace::Continuous { .. } => ActionBatch::Continuous(self.map_continuous(y)),
        })
    }

    /// Raw outputs for host observations (`[N, obs_dim]`, row-major), `[N, n]` row-major.
    pub fn outputs_batch(&self, obs: &[f32]) -> Result<Vec<f32>> {
        let n = check_states(obs, self.obs_dim())?;
        let d = self.obs_dim();
        let mut out = Vec::with_capacity(n * self.output_dim());
        for chunk in obs.chunks(CHUNK * d) {
            let rows = chunk.len() / d;
            let t =
                Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [rows, d]), &self.device);
            out.extend(read_f32(self.outputs(t)?)?);
        }
        Ok(out)
    }

    /// The actions for host observations (`[N, obs_dim]`, row-major): argmax of the logits
    /// (first maximum, as the packet runtime) or the mapped continuous values.
    pub fn act_batch(&self, obs: &[f32]) -> Result<Vec<Action>> {
        let raw = self.outputs_batch(obs)?;
        let n = self.output_dim();
        Ok(match &self.action_space {
            ActionSpace::Discrete { .. } => raw
                .chunks_exact(n)
                .map(|row| Action::Discrete(argmax_first(row)))
                .collect(),
            ActionSpace::Continuous { low, high, mapping } => raw
                .chunks_exact(n)
                .map(|row| {
                    Action::Continuous(
                        row.iter()
                            .zip(low.iter().zip(high))
                            .map(|(&y, (&l, &h))| packet_runtime::map_continuous(*mapping, y, l, h))
                            .collect(),
                    )
                })
                .collect(),
        })
    }
}

/// The packet runtime's mapping of raw outputs into a box, on tensors of equal shape.
fn map_continuous<const D: usize>(
    mapping: ContinuousMapping,
    y: Tensor<D>,
    low: Tensor<D>,
    high: Tensor<D>,
) -> Tensor<D> {
    match mapping {
        ContinuousMapping::Clamp => y.max_pair(low).min_pair(high),
        ContinuousMapping::TanhScaled => {
            let t = tanh(y);
            let lo = (t.clone().neg() + 1.0).mul_scalar(0.5) * low;
            let hi = (t + 1.0).mul_scalar(0.5) * high;
            lo + hi
        }
    }
}

fn check_obs_norm(norm: &ObsNorm) -> Result<()> {
    let d = norm.mean.len();
    if d == 0 || d > MAX_DIM || norm.std.len() != d {
        return Err(WorldModelError::shape(
            "observation normalization",
            format!("1..={MAX_DIM} means and as many stds"),
            format!("{} means, {} stds", d, norm.std.len()),
        ));
    }
    check_finite("normalization mean", &norm.mean)?;
    if let Some(index) = norm
        .std
        .iter()
        .position(|s| !(s.is_finite() && *s > 0.0 && (1.0 / s).is_finite()))
    {
        return Err(WorldModelError::Config(format!(
            "normalization std {} at index {index} must be finite and > 0",
            norm.std[index]
        )));
    }
    Ok(())
}

impl crate::rollout::Policy for PolicyModel {
    fn act(&mut self, obs: Tensor<2>, _step: usize) -> Result<ActionBatch> {
        self.act_tensor(obs)
    }
}
