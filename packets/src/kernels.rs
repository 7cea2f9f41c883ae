//! The arithmetic of `act`: one pass through a compiled policy's layers.
//!
//! The layer code is written once, generic over whether fused multiply-add is used, and
//! compiled twice: for the CPU the binary targets (any x86-64, aarch64, …) and, on x86-64,
//! for AVX2 with FMA, which [`Isa::detect`] selects at run time when the CPU has them. The
//! loops are shaped for the compiler's vectorizer: wide layers are stored by column so
//! that a block of outputs stays in registers while the inputs stream past, narrow ones
//! by row (one dot product per output), and tanh is a branch-free rational function.

use crate::model::Activation;

/// Which compiled version of the kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// The target's baseline instructions.
    Baseline,
    /// AVX2 and FMA (x86-64 only; chosen only when the CPU reports both).
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The best version this CPU runs.
    pub(crate) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2Fma;
        }
        Isa::Baseline
    }
}

/// Outputs at or above which a dense layer is stored by column.
const COLUMN_MIN_OUT: usize = 8;

/// A layer's weights in the form its kernel reads.
#[derive(Debug)]
pub(crate) enum Weights {
    /// f32, `out × in` (row `o` is output `o`'s weights): for narrow layers.
    Rows(Vec<f32>),
    /// f32, `in × out` (row `i` is input `i`'s weights to every output): for wide layers.
    Columns(Vec<f32>),
    /// int8 per-row-scaled `out × in` weights with the adapter kept apart.
    Int8 {
        /// `out × in`.
        q: Vec<i8>,
        /// One scale per output.
        scales: Vec<f32>,
        /// The adapter, applied per call.
        lora: Option<LowRank>,
    },
}

impl Weights {
    /// Dense f32 weights (`out × in`, row-major) in the layout that suits the layer's shape.
    pub(crate) fn dense(w: Vec<f32>, in_dim: usize, out_dim: usize) -> Weights {
        if out_dim < COLUMN_MIN_OUT {
            return Weights::Rows(w);
        }
        let mut t = vec![0.0; w.len()];
        for o in 0..out_dim {
            for i in 0..in_dim {
                t[i * out_dim + o] = w[o * in_dim + i];
            }
        }
        Weights::Columns(t)
    }
}

/// An adapter's low-rank update, kept apart from int8 base weights.
#[derive(Debug)]
pub(crate) struct LowRank {
    /// Its rank.
    pub(crate) rank: usize,
    /// `rank × in`.
    pub(crate) a: Vec<f32>,
    /// `out × rank`, pre-multiplied by `alpha / rank`.
    pub(crate) b: Vec<f32>,
}

/// One layer, ready to run.
#[derive(Debug)]
pub(crate) struct Layer {
    pub(crate) in_dim: usize,
    pub(crate) out_dim: usize,
    pub(crate) weights: Weights,
    pub(crate) bias: Vec<f32>,
    pub(crate) activation: Activation,
}

/// Runs `layers` on the input in `a[..in_dim]`, using `b` and `t` as scratch; returns
/// whether the output ended in `a` (true) or `b`.
pub(crate) fn run(isa: Isa, layers: &[Layer], a: &mut [f32], b: &mut [f32], t: &mut [f32]) -> bool {
    match isa {
        Isa::Baseline => run_layers::<false>(layers, a, b, t),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            #[allow(unsafe_code)]
            // SAFETY: `Isa::Avx2Fma` is only ever produced by `Isa::detect`, after the CPU
            // reported both AVX2 and FMA.
            unsafe {
                run_avx2_fma(layers, a, b, t)
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn run_avx2_fma(layers: &[Layer], a: &mut [f32], b: &mut [f32], t: &mut [f32]) -> bool {
    run_layers::<true>(layers, a, b, t)
}

#[inline(always)]
fn run_layers<const FMA: bool>(
    layers: &[Layer],
    a: &mut [f32],
    b: &mut [f32],
    t: &mut [f32],
) -> bool {
    let (mut src, mut dst) = (a, b);
    let mut in_a = true;
    for layer in layers {
        let x = &src[..layer.in_dim];
        let y = &mut dst[..layer.out_dim];
        match &layer.weights {
            Weights::Rows(w) => {
                for (o, yo) in y.iter_mut().enumerate() {
                    *yo =
                        dot::<FMA>(&w[o * layer.in_dim..(o + 1) * layer.in_dim], x) + layer.bias[o];
                }
            }
            Weights::Columns(w) if FMA => by_columns::<FMA, { block(true) }>(w, x, &layer.bias, y),
            Weights::Columns(w) => by_columns::<FMA, { block(false) }>(w, x, &layer.bias, y),
            Weights::Int8 { q, scales, lora } => {
                for (o, yo) in y.iter_mut().enumerate() {
                    *yo = scales[o]
                        * dot_i8::<FMA>(&q[o * layer.in_dim..(o + 1) * layer.in_dim], x)
                        + layer.bias[o];
                }
                if let Some(lr) = lora {
                    let t = &mut t[..lr.rank];
                    for (k, tk) in t.iter_mut().enumerate() {
                        *tk = dot::<FMA>(&lr.a[k * layer.in_dim..(k + 1) * layer.in_dim], x);
                    }
                    for (o, yo) in y.iter_mut().enumerate() {
                        *yo += dot::<FMA>(&lr.b[o * lr.rank..(o + 1) * lr.rank], t);
                    }
                }
            }
        }
        match layer.activation {
            Activation::Identity => {}
            Activation::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Tanh => y.iter_mut().for_each(|v| *v = tanh::<FMA>(*v)),
        }
        std::mem::swap(&mut src, &mut dst);
        in_a = !in_a;
    }
    in_a
}

/// `a · b + c`, fused where the kernel is compiled with FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Outputs a column-stored layer computes at once, accumulators held in registers: 64
/// (eight AVX registers, enough independent chains to keep both FMA units busy) where
/// compiled for AVX2, 32 otherwise (sixteen 128-bit registers hold no more).
const fn block(fma: bool) -> usize {
    if fma { 64 } else { 32 }
}

/// `y = Wᵀx + bias` for `w` stored `in × out`: each block of outputs accumulates over
/// every input before it is written.
#[inline(always)]
fn by_columns<const FMA: bool, const BLOCK: usize>(
    w: &[f32],
    x: &[f32],
    bias: &[f32],
    y: &mut [f32],
) {
    let out = y.len();
    let mut start = 0;
    while start + BLOCK <= out {
        let mut acc = [0.0f32; BLOCK];
        acc.copy_from_slice(&bias[start..start + BLOCK]);
        for (i, &xi) in x.iter().enumerate() {
            let row: &[f32; BLOCK] = w[i * out + start..i * out + start + BLOCK]
                .try_into()
                .expect("a block of BLOCK weights");
            for k in 0..BLOCK {
                acc[k] = madd::<FMA>(xi, row[k], acc[k]);
            }
        }
        y[start..start + BLOCK].copy_from_slice(&acc);
        start += BLOCK;
    }
    for o in start..out {
        let mut s = bias[o];
        for (i, &xi) in x.iter().enumerate() {
            s = madd::<FMA>(xi, w[i * out + o], s);
        }
        y[o] = s;
    }
}

#[inline(always)]
fn dot<const FMA: bool>(w: &[f32], x: &[f32]) -> f32 {
    dot_of::<FMA, f32>(w, x)
}

#[inline(always)]
fn dot_i8<const FMA: bool>(w: &[i8], x: &[f32]) -> f32 {
    dot_of::<FMA, i8>(w, x)
}

/// `w · x` with eight independent accumulators (so the loop vectorizes), for f32 or int8
/// weights.
#[inline(always)]
fn dot_of<const FMA: bool, W: Copy + Into<f32>>(w: &[W], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (wc, xc) = (w.chunks_exact(8), x.chunks_exact(8));
    let (wr, xr) = (wc.remainder(), xc.remainder());
    for (a, b) in wc.zip(xc) {
        for i in 0..8 {
            acc[i] = madd::<FMA>(a[i].into(), b[i], acc[i]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in wr.iter().zip(xr) {
        s = madd::<FMA>((*a).into(), *b, s);
    }
    s
}

/// Where the rational approximation stops: tanh(9) is 1 in f32 to within 3e-8.
const TANH_CLAMP: f32 = 9.0;
/// Numerator coefficients, `x · P(x²)` (a weighted least-squares fit of the relative
/// error on [0, 9], `scripts/fit_tanh.py`).
const TANH_P: [f32; 6] = [
    1.0,
    0.129_339_44,
    0.002_936_401_9,
    9.406_467e-6,
    -1.318_235_4e-8,
    1.924_238e-11,
];
/// Denominator coefficients, `Q(x²)`.
const TANH_Q: [f32; 4] = [1.0, 0.462_672_53, 0.023_827_685, 0.000_230_237_52];

/// tanh, to within 6 ulp (relative error below 4e-7) for every f32, without branches so
/// that a loop over a layer vectorizes. NaN stays NaN.
#[inline(always)]
pub(crate) fn tanh<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-TANH_CLAMP, TANH_CLAMP);
    let s = x * x;
    let p = TANH_P[..5]
        .iter()
        .rev()
        .fold(TANH_P[5], |acc, &c| madd::<FMA>(acc, s, c));
    let q = TANH_Q[..3]
        .iter()
        .rev()
        .fold(TANH_Q[3], |acc, &c| madd::<FMA>(acc, s, c));
    (x * p / q).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_within_a_few_ulp_everywhere() {
        let mut worst = 0.0f64;
        let mut x = 1e-30f32;
        while x < 30.0 {
            for v in [x, -x] {
                let exact = f64::from(v).tanh();
                // One ulp: the spacing of f32 values at the exact result's magnitude.
                let e = (exact as f32).abs();
                let ulp = f64::from(f32::from_bits(e.to_bits() + 1) - e);
                for got in [tanh::<false>(v), tanh::<true>(v)] {
                    worst = worst.max((f64::from(got) - exact).abs() / ulp);
                    assert_eq!(f64::from(got).signum(), exact.signum(), "sign at {v}");
                }
            }
            x *= 1.0001;
        }
        assert!(worst <= 6.0, "worst error {worst} ulp");
        assert_eq!(tanh::<false>(0.0), 0.0);
        assert_eq!(tanh::<false>(f32::INFINITY), 1.0);
        assert_eq!(tanh::<false>(f32::NEG_INFINITY), -1.0);
        assert!(tanh::<false>(f32::NAN).is_nan());
    }

    fn layer(in_dim: usize, out_dim: usize, seed: u32) -> (Vec<f32>, Vec<f32>) {
        let w = (0..in_dim * out_dim)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect();
        let b = (0..out_dim)
            .map(|o| o as f32 / out_dim as f32 - 0.5)
            .collect();
        (w, b)
    }

    /// Both layouts, both compiled versions and every activation agree with a plain
    /// row-by-row evaluation, for widths on and off the block size.
    #[test]
    fn every_layout_and_version_computes_the_same_layer() {
        let mut isas = vec![Isa::Baseline];
        if Isa::detect() != Isa::Baseline {
            isas.push(Isa::detect());
        }
        for (in_dim, out_dim) in [
            (4, 64),
            (64, 64),
            (64, 2),
            (3, 37),
            (70, 8),
            (5, 7),
            (10, 100),
        ] {
            for activation in [Activation::Identity, Activation::Relu, Activation::Tanh] {
                let (w, bias) = layer(in_dim, out_dim, 7);
                let x: Vec<f32> = (0..in_dim).map(|i| (i as f32 * 0.37).sin()).collect();
                let expected: Vec<f32> = (0..out_dim)
                    .map(|o| {
                        let s: f32 =
                            (0..in_dim).map(|i| w[o * in_dim + i] * x[i]).sum::<f32>() + bias[o];
                        match activation {
                            Activation::Identity => s,
                            Activation::Relu => s.max(0.0),
                            Activation::Tanh => s.tanh(),
                        }
                    })
                    .collect();
                let layers = [Layer {
                    in_dim,
                    out_dim,
                    weights: Weights::dense(w, in_dim, out_dim),
                    bias,
                    activation,
                }];
                for &isa in &isas {
                    let width = in_dim.max(out_dim);
                    let (mut a, mut b) = (vec![0.0; width], vec![0.0; width]);
                    a[..in_dim].copy_from_slice(&x);
                    let in_a = run(isa, &layers, &mut a, &mut b, &mut []);
                    assert!(!in_a);
                    for (o, (got, want)) in b[..out_dim].iter().zip(&expected).enumerate() {
                        assert!(
                            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "{isa:?} {in_dim}→{out_dim} {activation:?} output {o}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
