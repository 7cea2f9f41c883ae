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

/// The normalizers of one model: inputs (observation, encoded action) and targets (change
/// of observation, reward). Termination flags are not normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizers {
    /// Of `[obs, action]`.
    pub input: Normalizer,
    /// Of `[next_obs − obs, reward]`.
    pub target: Normalizer,
}

impl Normalizers {
    /// Identity normalizers for a model with these widths.
    pub fn identity(obs_dim: usize, action_dim: usize) -> Self {
        Normalizers {
            input: Normalizer::identity(obs_dim + action_dim),
            target: Normalizer::identity(obs_dim + 1),
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
        self.target.check("target normalizer")
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
