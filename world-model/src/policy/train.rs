//! Supervised training of a policy: cross-entropy on discrete action labels, squared error
//! on mapped continuous actions, Adam on shuffled minibatches.

use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use plasma_packets::model::{ActionSpace, ContinuousMapping};
use plasma_protocol::ActionError;
/// What a call of [`PolicyModel::fit`] did (plasma-protocol's type: it crosses the wire).
pub use plasma_protocol::reports::PolicyFitReport as FitReport;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{CHUNK, PolicyModel, PolicyNet, check_states, map_continuous};
use crate::error::{Result, WorldModelError, check_finite};

/// How [`PolicyModel::fit`] trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Rows per Adam step (the last minibatch of an epoch may be smaller).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// L2 weight decay (0 for none).
    pub weight_decay: f32,
    /// Seed of the minibatch order (mixed with the number of earlier `fit` calls, so that
    /// repeated calls do not replay the same order).
    pub seed: u64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            epochs: 30,
            batch_size: 128,
            learning_rate: 3e-3,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

impl FitConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if self.batch_size == 0 {
            return bad("batch_size must be ≥ 1".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be finite and > 0, got {}",
                self.learning_rate
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight_decay must be finite and ≥ 0, got {}",
                self.weight_decay
            ));
        }
        Ok(())
    }
}

/// The targets of supervised training, one per state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Labels<'a> {
    /// Discrete action indices, `[N]` (cross-entropy on the logits).
    Discrete(&'a [u32]),
    /// Continuous actions, `[N, action_dim]` row-major (squared error of the mapped action,
    /// in units of the box's width; labels outside the box are clipped to it).
    Continuous(&'a [f32]),
}

/// Training rows on the host: normalized observations and targets.
struct Prepared {
    obs_dim: usize,
    out_dim: usize,
    x: Vec<f32>,
    /// One-hot rows (discrete) or clipped actions (continuous), `[N, out_dim]`.
    y: Vec<f32>,
    /// Discrete labels, for accuracy.
    indices: Option<Vec<u32>>,
}

impl Prepared {
    fn gather(&self, rows: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>) {
        let (d, n) = (self.obs_dim, self.out_dim);
        let mut x = Vec::with_capacity(rows.len() * d);
        let mut y = Vec::with_capacity(rows.len() * n);
        for &i in rows {
            x.extend_from_slice(&self.x[i * d..(i + 1) * d]);
            y.extend_from_slice(&self.y[i * n..(i + 1) * n]);
        }
        (
            Tensor::from_data(TensorData::new(x, [rows.len(), d]), device),
            Tensor::from_data(TensorData::new(y, [rows.len(), n]), device),
        )
    }
}

/// How the loss is computed.
enum Objective {
    /// Cross-entropy of the logits with one-hot labels.
    CrossEntropy,
    /// Squared error of the mapped actions, in units of the box's width.
    Box(Box<BoxTarget>),
}

/// A continuous action box on the loss's device, `[1, action_dim]` each.
struct BoxTarget {
    mapping: ContinuousMapping,
    low: Tensor<2>,
    high: Tensor<2>,
    inv_width: Tensor<2>,
}

impl Objective {
    fn new(space: &ActionSpace, device: &Device) -> Self {
        match space {
            ActionSpace::Discrete { .. } => Objective::CrossEntropy,
            ActionSpace::Continuous { low, high, mapping } => {
                let d = low.len();
                let row = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, d]), device);
                let inv_width = low
                    .iter()
                    .zip(high)
                    .map(|(l, h)| if h > l { 1.0 / (h - l) } else { 1.0 })
                    .collect();
                Objective::Box(Box::new(BoxTarget {
                    mapping: *mapping,
                    low: row(low.clone()),
                    high: row(high.clone()),
                    inv_width: row(inv_width),
                }))
            }
        }
    }

    /// Per-row losses `[B, 1]`, and the mapped actions (continuous) for error reports.
    fn rows(&self, outputs: Tensor<2>, y: Tensor<2>) -> (Tensor<2>, Option<Tensor<2>>) {
        match self {
            Objective::CrossEntropy => {
                let ce = (log_softmax(outputs, 1) * y).sum_dim(1).neg();
                (ce, None)
            }
            Objective::Box(target) => {
                let BoxTarget {
                    mapping,
                    low,
                    high,
                    inv_width,
                } = &**target;
                let dims = outputs.dims();
                let a = map_continuous(
                    *mapping,
                    outputs,
                    low.clone().expand(dims),
                    high.clone().expand(dims),
                );
                let err = (a.clone() - y) * inv_width.clone().expand(dims);
                (err.square().mean_dim(1), Some(a))
            }
        }
    }

    fn loss(&self, outputs: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
        self.rows(outputs, y).0.mean()
    }
}

fn scalar(t: Tensor<1>) -> Result<f32> {
    t.try_into_scalar::<f32>()
        .map_err(|e| WorldModelError::Backend(format!("reading a loss: {e:?}")))
}

/// Loss, and accuracy or mean absolute error, of an inference network on all rows.
fn score(
    net: &PolicyNet,
    prepared: &Prepared,
    objective: &Objective,
    device: &Device,
) -> Result<(f32, Option<f32>, Option<f32>)> {
    let n = prepared.x.len() / prepared.obs_dim;
    let all: Vec<usize> = (0..n).collect();
    let (mut loss, mut correct, mut abs_err) = (0f64, 0usize, 0f64);
    for rows in all.chunks(CHUNK) {
        let (x, y) = prepared.gather(rows, device);
        let outputs = net.forward(x);
        let (per_row, mapped) = objective.rows(outputs.clone(), y.clone());
        loss += f64::from(scalar(per_row.sum())?);
        if let Some(indices) = &prepared.indices {
            let logits = crate::error::read_f32(outputs)?;
            correct += logits
                .chunks_exact(prepared.out_dim)
                .zip(&indices[rows[0]..rows[0] + rows.len()])
                .filter(|(row, label)| plasma_packets::runtime::argmax_first(row) == **label)
                .count();
        }
        if let (Some(a), Objective::Box(target)) = (mapped, objective) {
            let dims = a.dims();
            let err = ((a - y).abs() * target.inv_width.clone().expand(dims))
                .mean_dim(1)
                .sum();
            abs_err += f64::from(scalar(err)?);
        }
    }
    let n = n.max(1) as f64;
    Ok((
        (loss / n) as f32,
        prepared
            .indices
            .as_ref()
            .map(|_| (correct as f64 / n) as f32),
        matches!(objective, Objective::Box(_)).then_some((abs_err / n) as f32),
    ))
}

impl PolicyModel {
    fn prepare(&self, states: &[f32], labels: Labels<'_>) -> Result<Prepared> {
        let d = self.obs_dim();
        let n = check_states(states, d)?;
        if n == 0 {
            return Err(WorldModelError::EmptyDataset("no states to fit".into()));
        }
        let out_dim = self.output_dim();
        let (y, indices) = match (labels, &self.action_space) {
            (Labels::Discrete(idx), ActionSpace::Discrete { n: classes }) => {
                if idx.len() != n {
                    return Err(WorldModelError::shape(
                        "labels",
                        format!("{n} action indices"),
                        format!("{} indices", idx.len()),
                    ));
                }
                if let Some(index) = idx.iter().position(|&i| i >= *classes) {
                    return Err(WorldModelError::Action {
                        index,
                        source: ActionError::OutOfRange {
                            index: idx[index],
                            n: *classes,
                        },
                    });
                }
                let mut y = vec![0f32; n * out_dim];
                for (r, &i) in idx.iter().enumerate() {
                    y[r * out_dim + i as usize] = 1.0;
                }
                (y, Some(idx.to_vec()))
            }
            (Labels::Continuous(values), ActionSpace::Continuous { low, high, .. }) => {
                if values.len() != n * out_dim {
                    return Err(WorldModelError::shape(
                        "labels",
                        format!("{n} × {out_dim} action values"),
                        format!("{} values", values.len()),
                    ));
                }
                check_finite("labels", values)?;
                let y = values
                    .chunks_exact(out_dim)
                    .flat_map(|row| {
                        row.iter()
                            .zip(low.iter().zip(high))
                            .map(|(v, (l, h))| v.clamp(*l, *h))
                    })
                    .collect();
                (y, None)
            }
            (Labels::Discrete(_), _) => {
                return Err(WorldModelError::shape(
                    "labels",
                    "continuous actions",
                    "discrete indices",
                ));
            }
            (Labels::Continuous(_), _) => {
                return Err(WorldModelError::shape(
                    "labels",
                    "discrete action indices",
                    "continuous actions",
                ));
            }
        };
        let mut x = states.to_vec();
        for row in x.chunks_exact_mut(d) {
            for ((v, m), s) in row
                .iter_mut()
                .zip(&self.obs_norm.mean)
                .zip(&self.obs_norm.std)
            {
                *v = (*v - m) * (1.0 / s);
            }
        }
        Ok(Prepared {
            obs_dim: d,
            out_dim,
            x,
            y,
            indices,
        })
    }

    /// Trains the policy to imitate `labels` on `states` (`[N, obs_dim]`, row-major), from
    /// its current weights, so that repeated calls continue training (DAgger). A base policy
    /// trains all weights and biases; an adapter-mode policy ([`PolicyModel::with_lora`])
    /// trains only the LoRA factors. The normalization is kept: it was fixed when the policy
    /// was made. The optimizer's moments start afresh at every call.
    ///
    /// Bad shapes, non-finite values and out-of-range labels are errors; a loss that
    /// becomes non-finite fails with [`WorldModelError::Diverged`] and leaves the policy
    /// unchanged.
    pub fn fit(
        &mut self,
        states: &[f32],
        labels: Labels<'_>,
        config: &FitConfig,
    ) -> Result<FitReport> {
        let started = Instant::now();
        config.validate()?;
        let prepared = self.prepare(states, labels)?;
        let n = prepared.x.len() / prepared.obs_dim;
        let ad_device = self.device.clone().autodiff();
        let objective = Objective::new(&self.action_space, &self.device);
        let ad_objective = Objective::new(&self.action_space, &ad_device);
        let (initial_loss, _, _) = score(&self.net, &prepared, &objective, &self.device)?;

        let mut rng = SmallRng::seed_from_u64(
            config
                .seed
                .wrapping_add(self.fits.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        );
        let mut adam = AdamConfig::new();
        if config.weight_decay > 0.0 {
            adam = adam.with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay)));
        }
        let mut optim = adam.init();
        let mut net = self.train_net.clone();
        let mut order: Vec<usize> = (0..n).collect();
        let batch = config.batch_size.min(n);
        let (mut steps, mut epoch_losses) = (0, Vec::with_capacity(config.epochs));
        for epoch in 0..config.epochs {
            order.shuffle(&mut rng);
            let (mut sum, mut batches) = (0f64, 0usize);
            for rows in order.chunks(batch) {
                let (x, y) = prepared.gather(rows, &ad_device);
                let loss = ad_objective.loss(net.forward(x), y);
                let value = scalar(loss.clone())?;
                if !value.is_finite() {
                    return Err(WorldModelError::Diverged { epoch });
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(f64::from(config.learning_rate), net, grads);
                sum += f64::from(value);
                batches += 1;
                steps += 1;
            }
            epoch_losses.push((sum / batches.max(1) as f64) as f32);
        }
        let valid = net.valid();
        let (final_loss, accuracy, mean_abs_error) =
            score(&valid, &prepared, &objective, &self.device)?;
        if !final_loss.is_finite() {
            return Err(WorldModelError::Diverged {
                epoch: config.epochs,
            });
        }
        self.train_net = net;
        self.net = valid;
        self.fits += 1;
        Ok(FitReport {
            samples: n,
            epochs: config.epochs,
            steps,
            adapter_only: self.lora.is_some(),
            initial_loss,
            final_loss,
            epoch_losses,
            accuracy,
            mean_abs_error,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Loss (and accuracy or mean absolute error) of the policy on labelled states, without
    /// training: `(loss, accuracy, mean_abs_error)` as in [`FitReport`].
    pub fn evaluate(
        &self,
        states: &[f32],
        labels: Labels<'_>,
    ) -> Result<(f32, Option<f32>, Option<f32>)> {
        let prepared = self.prepare(states, labels)?;
        let objective = Objective::new(&self.action_space, &self.device);
        score(&self.net, &prepared, &objective, &self.device)
    }
}
