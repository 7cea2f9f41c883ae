//! Python's and NumPy's scalar arithmetic where it differs from the obvious Rust.
//!
//! `x ** 2` on a Python float or a NumPy scalar calls the C library's `pow(x, 2.0)`,
//! which is not always the correctly rounded `x * x` (glibc's `pow` may be off by one
//! unit in the last place). The compiler rewrites `powf(x, 2.0)` into `x * x`, so the
//! exponent is hidden from it to call the real `pow`.

use std::hint::black_box;

/// `x ** 2` for a Python float or `np.float64`: the C library's `pow(x, 2.0)`.
pub(crate) fn pow2(x: f64) -> f64 {
    x.powf(black_box(2.0))
}

/// `x ** 2` for an `np.float32`: the C library's `powf(x, 2.0f)`.
pub(crate) fn pow2_f32(x: f32) -> f32 {
    x.powf(black_box(2.0))
}

/// Python's (and NumPy's) floored `%`: the result takes the divisor's sign.
pub(crate) fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) { m + b } else { m }
    } else {
        0.0_f64.copysign(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_modulo() {
        assert_eq!(py_mod(5.0, 3.0), 2.0);
        assert_eq!(py_mod(-1.0, 3.0), 2.0);
        assert_eq!(py_mod(1.0, -3.0), -2.0);
        assert_eq!(py_mod(-3.0, 3.0), 0.0);
        assert!(py_mod(-3.0, 3.0).is_sign_positive());
    }

    #[test]
    fn squares_are_close_to_products() {
        for x in [0.0, 1.5, -2.846_845_266_205_744_6, 1e-3, 7.25] {
            assert!((pow2(x) - x * x).abs() <= f64::EPSILON * x * x);
        }
        assert_eq!(pow2_f32(3.0), 9.0);
    }

    /// glibc's `pow` is what Python calls; this value is one where it differs from
    /// `x * x` (`math.pow(x, 2)` in CPython on glibc prints 8.104527969718056).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn pow_is_the_c_library_pow() {
        let x = f64::from_bits(0x4006_c656_cf99_023a); // 2.8468452662057446
        assert_eq!(pow2(x).to_bits(), 8.104_527_969_718_056_f64.to_bits());
    }
}
