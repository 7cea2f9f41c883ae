#![allow(missing_docs)]
//! `Agent::act` against the packet runtime's own `Actor::act`, measured the same way in
//! one run (each call timed with `Instant`, the default policy with a rank-8 adapter, the
//! same observations): the agent's wrapper should cost little. Run it pinned to one core:
//!
//! `taskset -c 0 cargo bench -p plasma-client --bench agent_act`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use plasma_client::{
    Agent, AgentConfig, ClientConfig, EdgePolicy, PacketCache, PlasmaClient, Verifier,
};
use plasma_packets::{EdgeRuntime, Kernel};

// The packets crate's benchmark fixture: the same policy, adapter and observations.
#[path = "../../packets/benches/common/mod.rs"]
#[allow(dead_code)]
mod common;

const CALLS: usize = 1_000_000;

fn measure(mut f: impl FnMut(usize)) -> [f64; 3] {
    for i in 0..CALLS / 10 {
        f(i);
    }
    let mut ns = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        f(i);
        ns.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
    }
    ns.sort_unstable();
    let at = |q: f64| f64::from(ns[((ns.len() as f64 - 1.0) * q) as usize]);
    [
        at(0.5),
        at(0.99),
        ns.iter().map(|&v| f64::from(v)).sum::<f64>() / ns.len() as f64,
    ]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run quickly.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let f = common::fixture();
    let verifier = Verifier::pinned(f.signer.public_key());

    let runtime = EdgeRuntime::load(&f.base_bytes, verifier.clone(), Kernel::default())
        .expect("load the base");
    runtime
        .apply_adapter(&f.adapter_bytes)
        .expect("apply the adapter");
    let mut actor = runtime.actor();

    // The agent resumes the same two packets from its cache (no server is contacted).
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = Arc::new(PacketCache::open(dir.path(), verifier).expect("open the cache"));
    let edge = EdgePolicy::load_base(cache.clone(), &f.base_bytes).expect("deploy the base");
    edge.apply_adapter(&f.adapter_bytes)
        .expect("deploy the adapter");
    drop(edge);
    let client = PlasmaClient::new(ClientConfig::new("http://127.0.0.1:9")).expect("client");
    let mut agent = Agent::new(
        client,
        AgentConfig::new("bench-agent", "CartPole-v1"),
        cache,
    )
    .expect("agent");

    println!(
        "{:<34} {:>8} {:>8} {:>8}",
        "act, 4→64→64→2 + rank 8", "p50 ns", "p99 ns", "mean ns"
    );
    // Alternated twice, so that a drift of the machine shows as a spread.
    for round in 1..=2 {
        let rt = measure(|i| {
            black_box(
                actor
                    .act(black_box(&f.observations[i & 1023]))
                    .expect("act")
                    .as_discrete(),
            );
        });
        let ag = measure(|i| {
            black_box(
                agent
                    .act(black_box(&f.observations[i & 1023]))
                    .expect("act")
                    .as_discrete(),
            );
        });
        println!(
            "{:<34} {:>8.0} {:>8.0} {:>8.0}",
            format!("runtime Actor::act ({round})"),
            rt[0],
            rt[1],
            rt[2]
        );
        println!(
            "{:<34} {:>8.0} {:>8.0} {:>8.0}",
            format!("Agent::act ({round})"),
            ag[0],
            ag[1],
            ag[2]
        );
        println!("Agent::act / runtime, p50: {:.2}×", ag[0] / rt[0]);
    }
}
