//! Small statistics shared by the detectors: summaries, quantiles, standardization and
//! nearest-neighbour distances.

use serde::{Deserialize, Serialize};

/// Summary of a sample of finite values (non-finite values are left out and counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Finite values summarized.
    pub count: usize,
    /// Non-finite values left out.
    pub non_finite: usize,
    /// Mean.
    pub mean: f32,
    /// Standard deviation (population).
    pub std: f32,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Median.
    pub q50: f32,
    /// 90th percentile.
    pub q90: f32,
    /// 99th percentile.
    pub q99: f32,
}

impl Summary {
    /// Summarizes `values`; all zeros when none is finite.
    pub fn of(values: &[f32]) -> Summary {
        let sorted = sorted_finite(values);
        let non_finite = values.len() - sorted.len();
        if sorted.is_empty() {
            return Summary {
                non_finite,
                ..Summary::default()
            };
        }
        let n = sorted.len() as f64;
        let mean = sorted.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = sorted
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        Summary {
            count: sorted.len(),
            non_finite,
            mean: mean as f32,
            std: var.sqrt() as f32,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            q50: quantile_sorted(&sorted, 0.5),
            q90: quantile_sorted(&sorted, 0.9),
            q99: quantile_sorted(&sorted, 0.99),
        }
    }
}

/// The finite values of `values`, sorted ascending.
pub(crate) fn sorted_finite(values: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    v
}

/// Quantile `q ∈ [0, 1]` of sorted values, linearly interpolated (NumPy's default);
/// 0 for an empty slice.
pub(crate) fn quantile_sorted(sorted: &[f32], q: f64) -> f32 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = (pos - lo as f64) as f32;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Quantile `q` of the finite values of `values`.
pub(crate) fn quantile(values: &[f32], q: f64) -> f32 {
    quantile_sorted(&sorted_finite(values), q)
}

/// Per-dimension mean and standard deviation of row-major `rows` (`dim` values each); a
/// dimension whose std is not a usable divisor gets std 1.
pub(crate) fn mean_std(rows: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (rows.len() / dim.max(1)).max(1) as f64;
    let mut mean = vec![0f64; dim];
    for row in rows.chunks_exact(dim.max(1)) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0f64; dim];
    for row in rows.chunks_exact(dim.max(1)) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let std = var
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt() as f32;
            if sd.is_finite() && sd >= crate::normalize::MIN_STD {
                sd
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

/// Rows standardized with `mean` and `std`.
pub(crate) fn standardize(rows: &[f32], mean: &[f32], std: &[f32]) -> Vec<f32> {
    let dim = mean.len().max(1);
    rows.chunks_exact(dim)
        .flat_map(|row| {
            row.iter()
                .zip(mean.iter().zip(std))
                .map(|(v, (m, s))| (v - m) / s)
        })
        .collect()
}

/// Euclidean distance from each standardized query row to its nearest reference row.
/// Non-finite query rows get an infinite distance.
pub(crate) fn nearest_distances(queries: &[f32], reference: &[f32], dim: usize) -> Vec<f32> {
    let dim = dim.max(1);
    queries
        .chunks_exact(dim)
        .map(|q| {
            if q.iter().any(|v| !v.is_finite()) {
                return f32::INFINITY;
            }
            let best = reference
                .chunks_exact(dim)
                .map(|r| q.iter().zip(r).map(|(a, b)| (a - b) * (a - b)).sum::<f32>())
                .fold(f32::INFINITY, f32::min);
            best.sqrt()
        })
        .collect()
}

/// `k` distinct indices of `0..n` drawn uniformly (all of them, in order, when `k ≥ n`).
pub(crate) fn subsample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    use rand::seq::SliceRandom;
    use rand::{SeedableRng, rngs::SmallRng};
    let mut idx: Vec<usize> = (0..n).collect();
    if k >= n {
        return idx;
    }
    idx.shuffle(&mut SmallRng::seed_from_u64(seed));
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_skip_non_finite() {
        let v = [3.0, 1.0, f32::NAN, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert_eq!(quantile(&v, 0.5), 2.5);
        let s = Summary::of(&v);
        assert_eq!((s.count, s.non_finite), (4, 1));
        assert_eq!(s.mean, 2.5);
        assert_eq!(Summary::of(&[]).count, 0);
    }

    #[test]
    fn nearest_neighbour_distances() {
        let reference = [0.0, 0.0, 1.0, 1.0];
        let d = nearest_distances(&[0.0, 0.1, 3.0, 1.0, f32::NAN, 0.0], &reference, 2);
        assert!((d[0] - 0.1).abs() < 1e-6);
        assert!((d[1] - 2.0).abs() < 1e-6);
        assert!(d[2].is_infinite());
    }
}
