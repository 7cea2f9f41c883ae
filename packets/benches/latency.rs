#![allow(missing_docs)]
//! Per-call latency percentiles of `act` (p50, p90, p99, p99.9) for both kernels and a
//! plain f32 implementation of the same network, measured in one run; run it pinned to
//! one core:
//!
//! `taskset -c 0 cargo bench -p plasma-packets --bench latency`
//!
//! Each call is timed on its own with `Instant` (whose own cost, measured and printed
//! first, is included in every figure).

use std::hint::black_box;

use plasma_packets::{EdgeRuntime, Kernel, Verifier};

mod common;
mod timing;

use timing::measure;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run quickly.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let f = common::fixture();
    let verifier = Verifier::pinned(f.signer.public_key());
    let timer = measure(|_| {
        black_box(());
    });
    println!(
        "timer overhead (Instant::now + elapsed): p50 {:.0} ns",
        timer[0]
    );
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "act, 4→64→64→2 + rank 8", "p50 ns", "p90 ns", "p99 ns", "p99.9 ns", "mean ns"
    );
    let mut rows = Vec::new();
    for (name, kernel) in [
        ("int8 merged (default)", Kernel::Merged),
        ("int8 unmerged", Kernel::Int8),
    ] {
        let rt = EdgeRuntime::load(&f.base_bytes, verifier.clone(), kernel).expect("load");
        rt.apply_adapter(&f.adapter_bytes).expect("adapter");
        let mut actor = rt.actor();
        let r = measure(|i| {
            black_box(
                actor
                    .act(black_box(&f.observations[i & 1023]))
                    .expect("act")
                    .as_discrete(),
            );
        });
        rows.push((name, r));
    }
    let reference = measure(|i| {
        black_box(
            f.policy
                .forward(black_box(&f.observations[i & 1023]), Some(&f.lora)),
        );
    });
    rows.push(("plain f32 reference", reference));
    for (name, r) in &rows {
        println!(
            "{name:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    for (name, r) in &rows[..2] {
        println!(
            "{name}: p50 {:.2}x, mean {:.2}x the f32 reference's",
            r[0] / reference[0],
            r[4] / reference[4]
        );
    }
}
