//! Training the ensemble: Gaussian negative log-likelihood of the normalized change of
//! observation and reward, plus termination cross-entropy, minimized with Adam on
//! bootstrapped minibatches (one resample per member, all members in one batched step),
//! with a held-out split for early stopping (mbrl-lib's rule: stop after `patience` epochs
//! in which no member improved its held-out error by `min_improvement`, keep the best
//! weights).

use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use plasma_protocol::EpochFit;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::config::TrainConfig;
use crate::data::Dataset;
use crate::ensemble::EnsembleNet;
use crate::error::{Result, WorldModelError, read_f32};
use crate::model::{LossReport, TrainReport};
use crate::normalize::Normalizers;

/// Rows per forward pass when scoring a dataset.
const EVAL_CHUNK: usize = 4096;

/// A dataset in normalized units, on the host.
struct Prepared {
    input_dim: usize,
    target_dim: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    term: Vec<f32>,
}

impl Prepared {
    fn new(norm: &Normalizers, data: &Dataset) -> Self {
        let (mut x, mut y) = (vec![], vec![]);
        for i in 0..data.len() {
            data.input_into(i, &mut x);
            data.target_into(i, &mut y);
        }
        norm.input.normalize_in_place(&mut x);
        norm.target.normalize_in_place(&mut y);
        Prepared {
            input_dim: norm.input.dim(),
            target_dim: norm.target.dim(),
            x,
            y,
            term: (0..data.len())
                .map(|i| if data.terminated(i) { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// `[E, B, ·]` tensors of the rows `rows[e]` for member `e` (all of length `B`).
    fn gather(&self, rows: &[&[usize]], device: &Device) -> (Tensor<3>, Tensor<3>, Tensor<3>) {
        let (e, b) = (rows.len(), rows[0].len());
        let (di, dt) = (self.input_dim, self.target_dim);
        let mut x = Vec::with_capacity(e * b * di);
        let mut y = Vec::with_capacity(e * b * dt);
        let mut term = Vec::with_capacity(e * b);
        for member in rows {
            for &i in *member {
                x.extend_from_slice(&self.x[i * di..(i + 1) * di]);
                y.extend_from_slice(&self.y[i * dt..(i + 1) * dt]);
                term.push(self.term[i]);
            }
        }
        (
            Tensor::from_data(TensorData::new(x, [e, b, di]), device),
            Tensor::from_data(TensorData::new(y, [e, b, dt]), device),
            Tensor::from_data(TensorData::new(term, [e, b, 1]), device),
        )
    }
}

/// The loss terms of one batch, as tensors (differentiable on an autodiff device).
struct BatchLoss {
    /// The objective.
    total: Tensor<1>,
    /// NLL, mean over members, rows and dimensions.
    nll: Tensor<1>,
    /// Termination BCE, mean over members and rows.
    bce: Tensor<1>,
    /// Squared error of the means per member, mean over rows and dimensions, `[E]`.
    mse: Tensor<1>,
}

fn batch_loss(
    net: &EnsembleNet,
    x: Tensor<3>,
    y: Tensor<3>,
    term: Tensor<3>,
    termination_weight: f32,
    pos_weight: f32,
    bound_weight: f32,
) -> BatchLoss {
    let e = net.members() as f32;
    let heads = net.heads(net.forward(x), true);
    let logvar = heads.logvar.unwrap_or_else(|| heads.mean.zeros_like());
    let sq = (heads.mean - y).square();
    let [members, _, _] = sq.dims();
    let mse = sq.clone().mean_dims(&[1, 2]).reshape([members]);
    let nll = (sq * logvar.clone().neg().exp() + logvar).mean();
    // Weighted binary cross-entropy with logits, stable:
    // w·y·softplus(−z) + (1 − y)·softplus(z), softplus(z) = max(z, 0) + log(1 + e^−|z|).
    let z = heads.term_logit;
    let log1p = z.clone().abs().neg().exp().log1p();
    let sp_pos = relu(z.clone()) + log1p.clone();
    let sp_neg = relu(z.neg()) + log1p;
    let bce = (term.clone().mul_scalar(pos_weight) * sp_neg + (term.neg() + 1.0) * sp_pos).mean();
    let total = nll.clone().mul_scalar(e)
        + bce.clone().mul_scalar(e * termination_weight)
        + net.logvar_bound_penalty().mul_scalar(bound_weight);
    BatchLoss {
        total,
        nll,
        bce,
        mse,
    }
}

fn scalar(t: Tensor<1>) -> Result<f32> {
    t.try_into_scalar::<f32>()
        .map_err(|e| WorldModelError::Backend(format!("reading a loss: {e:?}")))
}

/// Scores `net` (an inference copy) on the rows `rows` of `prepared`, every member on every
/// row.
fn score(
    net: &EnsembleNet,
    prepared: &Prepared,
    rows: &[usize],
    device: &Device,
    train: &TrainConfig,
) -> Result<LossReport> {
    let e = net.members();
    let mut sums = (0f64, 0f64, 0f64, vec![0f64; e]);
    for chunk in rows.chunks(EVAL_CHUNK) {
        let (x, y, term) = prepared.gather(&[chunk], device);
        let [_, b, di] = x.dims();
        let dt = prepared.target_dim;
        let loss = batch_loss(
            net,
            x.expand([e, b, di]),
            y.expand([e, b, dt]),
            term.expand([e, b, 1]),
            train.termination_weight,
            1.0,
            train.logvar_bound_weight,
        );
        let w = chunk.len() as f64;
        sums.0 += f64::from(scalar(loss.total)?) * w;
        sums.1 += f64::from(scalar(loss.nll)?) * w;
        sums.2 += f64::from(scalar(loss.bce)?) * w;
        let mse = read_f32(loss.mse)?;
        for (s, m) in sums.3.iter_mut().zip(mse) {
            *s += f64::from(m) * w;
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(LossReport {
        total: (sums.0 / n) as f32,
        nll: (sums.1 / n) as f32,
        termination_bce: (sums.2 / n) as f32,
        mse_per_member: sums.3.iter().map(|s| (s / n) as f32).collect(),
    })
}

/// Scores an inference network on a whole dataset with the default loss weights.
pub(crate) fn evaluate(
    net: &EnsembleNet,
    norm: &Normalizers,
    data: &Dataset,
    device: &Device,
) -> Result<LossReport> {
    if data.is_empty() {
        return Err(WorldModelError::EmptyDataset("nothing to score".into()));
    }
    let prepared = Prepared::new(norm, data);
    let rows: Vec<usize> = (0..data.len()).collect();
    score(net, &prepared, &rows, device, &TrainConfig::default())
}

/// Trains `net` (on the autodiff twin of `device`) and returns the kept weights.
pub(crate) fn train(
    mut net: EnsembleNet,
    norm: &Normalizers,
    data: &Dataset,
    config: &TrainConfig,
    device: &Device,
) -> Result<(EnsembleNet, TrainReport)> {
    let started = Instant::now();
    let n = data.len();
    if n == 0 {
        return Err(WorldModelError::EmptyDataset("nothing to train on".into()));
    }
    let ad_device = device.clone().autodiff();
    let prepared = Prepared::new(norm, data);
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let holdout = if n >= 2 {
        ((n as f64 * f64::from(config.holdout_fraction)).round() as usize)
            .min(config.max_holdout)
            .min(n - 1)
    } else {
        0
    };
    let (val_rows, train_rows) = order.split_at(holdout);
    let e = net.members();
    let mut member_rows: Vec<Vec<usize>> = (0..e)
        .map(|_| {
            if config.bootstrap {
                (0..train_rows.len())
                    .map(|_| train_rows[rng.random_range(0..train_rows.len())])
                    .collect()
            } else {
                train_rows.to_vec()
            }
        })
        .collect();

    let positives = train_rows
        .iter()
        .filter(|&&i| prepared.term[i] > 0.5)
        .count();
    let pos_weight = config.termination_pos_weight.unwrap_or_else(|| {
        ((train_rows.len() - positives) as f32 / positives.max(1) as f32).clamp(1.0, 100.0)
    });
    let mut adam = AdamConfig::new();
    if config.weight_decay > 0.0 {
        adam = adam.with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay)));
    }
    let mut optim = adam.init();

    let score_val = |net: &EnsembleNet| score(&net.valid(), &prepared, val_rows, device, config);
    let mut best_mse = if val_rows.is_empty() {
        vec![]
    } else {
        score_val(&net)?.mse_per_member
    };
    let mut best_net = net.clone();
    let mut since_improved = 0;
    let (mut epochs, mut steps, mut final_loss, mut stopped_early) = (0, 0, f32::NAN, false);
    let batch = config.batch_size.min(train_rows.len());
    let mut history = Vec::with_capacity(config.max_epochs);
    for epoch in 0..config.max_epochs {
        for rows in &mut member_rows {
            rows.shuffle(&mut rng);
        }
        let (mut loss_sum, mut batches) = (0f64, 0usize);
        for start in (0..train_rows.len()).step_by(batch) {
            let end = (start + batch).min(train_rows.len());
            let slices: Vec<&[usize]> = member_rows.iter().map(|r| &r[start..end]).collect();
            let (x, y, term) = prepared.gather(&slices, &ad_device);
            let loss = batch_loss(
                &net,
                x,
                y,
                term,
                config.termination_weight,
                pos_weight,
                config.logvar_bound_weight,
            );
            let value = scalar(loss.total.clone())?;
            if !value.is_finite() {
                return Err(WorldModelError::Diverged { epoch });
            }
            let grads = GradientsParams::from_grads(loss.total.backward(), &net);
            net = optim.step(config.learning_rate, net, grads);
            loss_sum += f64::from(value);
            batches += 1;
            steps += 1;
        }
        epochs = epoch + 1;
        final_loss = (loss_sum / batches.max(1) as f64) as f32;
        if val_rows.is_empty() {
            best_net = net.clone();
            history.push(EpochFit {
                epoch: epochs,
                train_loss: final_loss,
                holdout_mse: vec![],
            });
            continue;
        }
        let mse = score_val(&net)?.mse_per_member;
        if mse.iter().any(|m| !m.is_finite()) {
            return Err(WorldModelError::Diverged { epoch });
        }
        history.push(EpochFit {
            epoch: epochs,
            train_loss: final_loss,
            holdout_mse: mse.clone(),
        });
        let improved = mse
            .iter()
            .zip(&best_mse)
            .any(|(now, best)| (best - now) / best.max(f32::MIN_POSITIVE) > config.min_improvement);
        if improved {
            best_mse = mse;
            best_net = net.clone();
            since_improved = 0;
        } else {
            since_improved += 1;
            if since_improved >= config.patience {
                stopped_early = epochs < config.max_epochs;
                break;
            }
        }
    }
    Ok((
        best_net,
        TrainReport {
            epochs,
            steps,
            train_size: train_rows.len(),
            holdout_size: val_rows.len(),
            final_train_loss: final_loss,
            holdout_mse: best_mse,
            stopped_early,
            history,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}
