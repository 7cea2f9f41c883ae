//! Per-dimension standardization of model inputs and targets, learned from the data, so
//! that one learning rate and one log-variance range suit every task's units.

use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Result, WorldModelError};

/// A standard deviation below this is treated as a constant column and scaled by 1 (as
/// mbrl-lib does), so that a feature never seen varying cannot blow up when it does vary.
pub const MIN_STD: f32 = 1e-6;

/// `x ↦ (x − mean) / std` per dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Per-dimension mean.
    pub mean: Vec<f32>,
    /// Per-dimension standard deviation (never below [`MIN_STD`]).
    pub std: Vec<f32>,
}

impl Normalizer {
    /// The identity on `dim` values.
    pub fn identity(dim: usize) -> Self {
        Normalizer {
            mean: vec![0.0; dim],
            std: vec![1.0; dim],
        }
    }

    /// Fits mean and standard deviation of `rows` (`n × dim`, row-major), in f64.
    pub fn fit(rows: &[f32], dim: usize) -> Result<Self> {
        if dim == 0 || rows.is_empty() || !rows.len().is_multiple_of(dim) {
            return Err(WorldModelError::EmptyDataset(
                "no rows to fit a normalizer".into(),
            ));
        }
        let n = (rows.len() / dim) as f64;
        let mut mean = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; dim];
        for row in rows.chunks_exact(dim) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(*v) - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt() as f32;
                if sd.is_finite() && sd >= MIN_STD {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        Ok(Normalizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        })
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Normalizes a row-major block of rows in place.
    pub fn normalize_in_place(&self, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.dim()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Mean and reciprocal standard deviation as `[1, dim]` tensors on `device`.
    pub fn tensors(&self, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let d = self.dim();
        let inv: Vec<f32> = self.std.iter().map(|s| 1.0 / s).collect();
        (
            Tensor::from_data(TensorData::new(self.mean.clone(), [1, d]), device),
            Tensor::from_data(TensorData::new(inv, [1, d]), device),
        )
    }

    /// Mean and standard deviation as `[1, dim]` tensors on `device`.
    pub fn tensors_std(&self, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let d = self.dim();
        (
            Tensor::from_data(TensorData::new(self.mean.clone(), [1, d]), device),
            Tensor::from_data(TensorData::new(self.std.clone(), [1, d]), device),
        )
    }

    fn check(&self, what: &str) -> Result<()> {
        if self.mean.len() != self.std.len() {
            return Err(WorldModelError::shape(
                what,
                format!("{} std values", self.mean.len()),
                self.std.len(),
            ));
        }
        crate::error::check_finite(what, &self.mean)?;
        if let Some(index) = self.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(WorldModelError::NonFinite {
                what: format!("{what} std (must be positive)"),
                index,
            });
        }
        Ok(())
    }
}

/// The region of observation space the model has seen data in, and the lowest reward seen:
/// imagined paths that leave the region (widened by a margin) are halted, as in MOReL's
/// pessimistic MDP, because the model's predictions there are extrapolation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Support {
    /// Per-dimension smallest observation seen (observations and next observations).
    pub obs_low: Vec<f32>,
    /// Per-dimension largest observation seen.
    pub obs_high: Vec<f32>,
    /// Smallest reward seen.
    pub reward_min: f32,
}

impl Support {
    /// The support of a dataset, `None` if it is empty.
    pub fn of(data: &Dataset) -> Option<Self> {
        if data.is_empty() {
            return None;
        }
        let d = data.obs_dim();
        let mut s = Support {
            obs_low: vec![f32::INFINITY; d],
            obs_high: vec![f32::NEG_INFINITY; d],
            reward_min: f32::INFINITY,
        };
        for i in 0..data.len() {
            for o in [data.obs(i), data.next_obs(i)] {
                for (j, v) in o.iter().enumerate() {
                    s.obs_low[j] = s.obs_low[j].min(*v);
                    s.obs_high[j] = s.obs_high[j].max(*v);
                }
            }
            s.reward_min = s.reward_min.min(data.reward(i));
        }
        Some(s)
    }

    /// The smallest support containing both.
    pub fn union(&self, other: &Support) -> Support {
        Support {
            obs_low: self
                .obs_low
                .iter()
                .zip(&other.obs_low)
                .map(|(a, b)| a.min(*b))
                .collect(),
            obs_high: self
                .obs_high
                .iter()
                .zip(&other.obs_high)
                .map(|(a, b)| a.max(*b))
                .collect(),
            reward_min: self.reward_min.min(other.reward_min),
        }
    }

    /// Bounds widened by `margin` times each dimension's range, as `[1, obs_dim]` tensors.
    pub fn bounds(&self, margin: f32, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let d = self.obs_low.len();
        let (mut lo, mut hi) = (vec![], vec![]);
        for (l, h) in self.obs_low.iter().zip(&self.obs_high) {
            let pad = margin * (h - l);
            lo.push(l - pad);
            hi.push(h + pad);
        }
        (
            Tensor::from_data(TensorData::new(lo, [1, d]), device),
            Tensor::from_data(TensorData::new(hi, [1, d]), device),
        )
    }

    fn check(&self, obs_dim: usize) -> Result<()> {
        if self.obs_low.len() != obs_dim || self.obs_high.len() != obs_dim {
            return Err(WorldModelError::shape(
                "support",
                format!("{obs_dim} bounds"),
                format!("{} and {}", self.obs_low.len(), self.obs_high.len()),
            ));
        }
        crate::error::check_finite("support low", &self.obs_low)?;
        crate::error::check_finite("support high", &self.obs_high)?;
        crate::error::check_finite("support reward", &[self.reward_min])
    }
}

/// The data statistics of one model: normalizers of inputs (observation, encoded action)
/// and targets (change of observation, reward), and the support of the data. Termination
/// flags are not normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizers {
    /// Of `[obs, action]`.
    pub input: Normalizer,
    /// Of `[next_obs − obs, reward]`.
    pub target: Normalizer,
    /// Where the data lies (none before the first fit).
    #[serde(default)]
    pub support: Option<Support>,
}

impl Normalizers {
    /// Identity normalizers for a model with these widths.
    pub fn identity(obs_dim: usize, action_dim: usize) -> Self {
        Normalizers {
            input: Normalizer::identity(obs_dim + action_dim),
            target: Normalizer::identity(obs_dim + 1),
            support: None,
        }
    }

    /// Fits both normalizers to a dataset.
    pub fn fit(data: &Dataset) -> Result<Self> {
        if data.is_empty() {
            return Err(WorldModelError::EmptyDataset(
                "cannot fit normalizers".into(),
            ));
        }
        let (mut x, mut y) = (vec![], vec![]);
        for i in 0..data.len() {
            data.input_into(i, &mut x);
            data.target_into(i, &mut y);
        }
        Ok(Normalizers {
            input: Normalizer::fit(&x, data.obs_dim() + data.action_dim())?,
            target: Normalizer::fit(&y, data.obs_dim() + 1)?,
            support: Support::of(data),
        })
    }

    /// Checks widths and values (e.g. of normalizers read from a checkpoint).
    pub fn validate(&self, obs_dim: usize, action_dim: usize) -> Result<()> {
        if self.input.dim() != obs_dim + action_dim || self.target.dim() != obs_dim + 1 {
            return Err(WorldModelError::shape(
                "normalizers",
                format!("input {} and target {}", obs_dim + action_dim, obs_dim + 1),
                format!(
                    "input {} and target {}",
                    self.input.dim(),
                    self.target.dim()
                ),
            ));
        }
        self.input.check("input normalizer")?;
        self.target.check("target normalizer")?;
        match &self.support {
            Some(s) => s.check(obs_dim),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_standardizes_and_constant_columns_keep_unit_scale() {
        let rows = [1.0, 5.0, 3.0, 5.0];
        let n = Normalizer::fit(&rows, 2).unwrap();
        assert_eq!(n.mean, [2.0, 5.0]);
        assert_eq!(n.std, [1.0, 1.0]);
        let mut r = rows;
        n.normalize_in_place(&mut r);
        assert_eq!(r, [-1.0, 0.0, 1.0, 0.0]);
        assert!(Normalizer::fit(&[], 2).is_err());
    }

    #[test]
    fn validation_catches_bad_widths_and_values() {
        let mut n = Normalizers::identity(3, 2);
        assert!(n.validate(3, 2).is_ok());
        assert!(n.validate(3, 1).is_err());
        n.target.std[1] = 0.0;
        assert!(n.validate(3, 2).is_err());
    }
}
