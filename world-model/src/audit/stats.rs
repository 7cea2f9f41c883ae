//! Small statistics shared by the detectors: summaries, quantiles, standardization and
//! nearest-neighbour distances.

pub use plasma_protocol::reports::Summary;
pub(crate) use plasma_protocol::reports::{quantile_sorted, sorted_finite};

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
