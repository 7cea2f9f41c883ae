#![allow(missing_docs)]
//! Criterion benchmarks of the edge runtime: `act` for both kernels beside a plain f32
//! implementation of the same network, and decode + verify + load of packets.
//!
//! `cargo bench -p plasma-packets --bench runtime`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use plasma_packets::{EdgeRuntime, Kernel, Packet, Verifier};

mod common;

fn act(c: &mut Criterion) {
    let f = common::fixture();
    let verifier = Verifier::pinned(f.signer.public_key());
    let mut group = c.benchmark_group("act");
    for (name, kernel) in [("merged", Kernel::Merged), ("int8", Kernel::Int8)] {
        let rt = EdgeRuntime::load(&f.base_bytes, verifier.clone(), kernel).expect("load");
        rt.apply_adapter(&f.adapter_bytes).expect("adapter");
        let mut actor = rt.actor();
        let mut i = 0usize;
        group.bench_function(format!("{name}+rank8"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                let a = actor.act(black_box(&f.observations[i])).expect("act");
                black_box(a.as_discrete());
            })
        });
    }
    let mut i = 0usize;
    group.bench_function("f32-reference+rank8", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            black_box(
                f.policy
                    .forward(black_box(&f.observations[i]), Some(&f.lora)),
            );
        })
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let f = common::fixture();
    let verifier = Verifier::pinned(f.signer.public_key());
    let mut group = c.benchmark_group("load");
    group.bench_function("decode+verify base", |b| {
        b.iter(|| Packet::decode(black_box(&f.base_bytes), &verifier).expect("decode"))
    });
    group.bench_function("decode+verify+load base", |b| {
        b.iter(|| {
            EdgeRuntime::load(black_box(&f.base_bytes), verifier.clone(), Kernel::Merged)
                .expect("load")
        })
    });
    let rt = EdgeRuntime::load(&f.base_bytes, verifier.clone(), Kernel::Merged).expect("load");
    group.bench_function("decode+verify+hot-swap adapter", |b| {
        b.iter(|| {
            rt.apply_adapter(black_box(&f.adapter_bytes))
                .expect("apply")
        })
    });
    group.finish();
}

criterion_group!(benches, act, load);
criterion_main!(benches);
