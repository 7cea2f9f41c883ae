#![allow(missing_docs)]
//! Per-call latency percentiles, shared by the latency benchmarks: each call is timed on
//! its own with `Instant` (whose own cost is included in every figure), after a warm-up of
//! a tenth of the calls.

use std::time::Instant;

pub const CALLS: usize = 1_000_000;

/// p50, p90, p99, p99.9 and mean of `CALLS` calls of `f` (given the call's index), in ns.
#[allow(dead_code)]
pub fn measure(mut f: impl FnMut(usize)) -> [f64; 5] {
    for i in 0..CALLS / 10 {
        f(i);
    }
    let mut ns = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        f(i);
        ns.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    summary(ns)
}

/// Like [`measure`] for two functions whose calls alternate (`f`, `g`, `f`, …), so that
/// a change of clock speed or a neighbour's load during the run weighs on both alike.
#[allow(dead_code)]
pub fn measure_interleaved(
    mut f: impl FnMut(usize),
    mut g: impl FnMut(usize),
) -> ([f64; 5], [f64; 5]) {
    for i in 0..CALLS / 10 {
        f(i);
        g(i);
    }
    let (mut nf, mut ng) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for i in 0..CALLS {
        let t = Instant::now();
        f(i);
        nf.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        let t = Instant::now();
        g(i);
        ng.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    (summary(nf), summary(ng))
}

fn summary(mut ns: Vec<u32>) -> [f64; 5] {
    ns.sort_unstable();
    let at = |q: f64| f64::from(ns[((ns.len() as f64 - 1.0) * q) as usize]);
    let mean = ns.iter().map(|&v| f64::from(v)).sum::<f64>() / ns.len() as f64;
    [at(0.5), at(0.9), at(0.99), at(0.999), mean]
}
