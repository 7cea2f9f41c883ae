//! Symmetric per-row int8 quantization.
//!
//! Each row `r` gets `scale = max_c |w[r][c]| / 127` and `q = round(w / scale)`, so every
//! weight is reproduced within half a quantization step: `|w − q·scale| ≤ scale / 2`.
//! Per-row scales keep one large weight from flattening a whole matrix's precision.

use crate::model::QuantMatrix;

/// Rows whose largest magnitude is below this are stored as zeros with scale 0: their
/// scale would be a subnormal f32 that cannot hold the step size. No trained weight is
/// this small (≈1.5e-36).
pub const FLUSH_BELOW: f32 = 127.0 * f32::MIN_POSITIVE;

/// Quantizes a row-major `rows × cols` matrix. Fails on non-finite weights or a length
/// that does not match the shape.
pub fn quantize_rows(weights: &[f32], rows: usize, cols: usize) -> Result<QuantMatrix, String> {
    if weights.len() != rows * cols {
        return Err(format!("{} weights for shape {rows}x{cols}", weights.len()));
    }
    if weights.iter().any(|w| !w.is_finite()) {
        return Err("cannot quantize non-finite weights".into());
    }
    let rows_u32 = u32::try_from(rows).map_err(|_| "too many rows".to_string())?;
    let cols_u32 = u32::try_from(cols).map_err(|_| "too many columns".to_string())?;
    let mut values = Vec::with_capacity(weights.len());
    let mut scales = Vec::with_capacity(rows);
    for row in weights.chunks_exact(cols.max(1)).take(rows) {
        let max_abs = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = max_abs / 127.0;
        if max_abs < FLUSH_BELOW {
            scales.push(0.0);
            values.extend(std::iter::repeat_n(0i8, row.len()));
            continue;
        }
        scales.push(scale);
        let inv = 1.0 / f64::from(scale);
        values.extend(row.iter().map(|&w| {
            // Clamp before the cast: rounding of `scale` may put the largest weight a hair
            // above 127 steps.
            (f64::from(w) * inv).round().clamp(-127.0, 127.0) as i8
        }));
    }
    Ok(QuantMatrix {
        rows: rows_u32,
        cols: cols_u32,
        values,
        scales,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bound is checked in f64 so that the check itself adds no rounding; the slack
    /// of 1e-9 relative covers only the f64 division inside quantization.
    fn assert_within_half_step(w: &[f32], q: &QuantMatrix) {
        let cols = q.cols as usize;
        for (i, &wi) in w.iter().enumerate() {
            let scale = f64::from(q.scales[i / cols]);
            if scale == 0.0 {
                assert_eq!(q.values[i], 0);
                assert!(wi.abs() < FLUSH_BELOW, "weight {i} = {wi} flushed to zero");
                continue;
            }
            let deq = f64::from(q.values[i]) * scale;
            let err = (f64::from(wi) - deq).abs();
            assert!(
                err <= scale / 2.0 * (1.0 + 1e-9),
                "weight {i}: |{wi} - {deq}| = {err} > scale/2 = {}",
                scale / 2.0
            );
        }
    }

    #[test]
    fn zero_rows_quantize_to_zero_with_zero_scale() {
        let q = quantize_rows(&[0.0, 0.0, 1.0, -2.0], 2, 2).unwrap();
        assert_eq!(q.scales[0], 0.0);
        assert_eq!(&q.values[..2], &[0, 0]);
        assert_eq!(q.values[3], -127);
        assert_within_half_step(&[0.0, 0.0, 1.0, -2.0], &q);
    }

    #[test]
    fn subnormal_rows_flush_to_zero() {
        let w = [1e-45, -1e-40, 0.0, 1e-39];
        let q = quantize_rows(&w, 1, 4).unwrap();
        assert_eq!(q.scales, vec![0.0]);
        assert_within_half_step(&w, &q);
    }

    #[test]
    fn rejects_non_finite_and_bad_shapes() {
        assert!(quantize_rows(&[f32::NAN], 1, 1).is_err());
        assert!(quantize_rows(&[f32::INFINITY, 1.0], 1, 2).is_err());
        assert!(quantize_rows(&[1.0, 2.0, 3.0], 2, 2).is_err());
    }

    #[test]
    fn extreme_magnitudes_stay_in_range() {
        let w = [f32::MAX, -f32::MAX, 1e-38, -1e-45, 3.0e38, 0.5];
        let q = quantize_rows(&w, 2, 3).unwrap();
        assert!(q.values.iter().all(|&v| v != i8::MIN));
        assert_within_half_step(&w, &q);
    }

    proptest! {
        #[test]
        fn every_weight_within_half_a_step(
            (rows, cols, w) in (1usize..12, 1usize..40).prop_flat_map(|(r, c)| {
                (Just(r), Just(c), proptest::collection::vec(-1.0e6f32..1.0e6, r * c))
            })
        ) {
            let q = quantize_rows(&w, rows, cols).unwrap();
            prop_assert_eq!(q.values.len(), rows * cols);
            prop_assert!(q.validate("q").is_ok());
            assert_within_half_step(&w, &q);
        }

        #[test]
        fn tiny_and_mixed_scales_within_half_a_step(
            w in proptest::collection::vec(prop_oneof![
                -1.0e-30f32..1.0e-30, -1.0f32..1.0, Just(0.0f32)
            ], 64)
        ) {
            let q = quantize_rows(&w, 8, 8).unwrap();
            assert_within_half_step(&w, &q);
        }
    }
}
