#![allow(missing_docs)]
//! `Agent::act` against the packet runtime's own `Actor::act`, measured the same way in
//! one run (each call timed with `Instant`, the default policy with a rank-8 adapter, the
//! same observations): the agent's wrapper should cost little. Run it pinned to one core:
//!
//! `taskset -c 0 cargo bench -p plasma-client --bench agent_act`

use std::hint::black_box;
use std::sync::Arc;

use plasma_client::{
    Agent, AgentConfig, ClientConfig, EdgePolicy, PacketCache, PlasmaClient, Verifier,
};
use plasma_packets::{EdgeRuntime, Kernel};

// The packets crate's benchmark fixture: the same policy, adapter and observations.
#[path = "../../packets/benches/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../../packets/benches/timing/mod.rs"]
mod timing;

use timing::measure_interleaved;

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
        // The two calls alternate, so that drift in the VM's speed weighs on both alike.
        let (rt, ag) = measure_interleaved(
            |i| {
                black_box(
                    actor
                        .act(black_box(&f.observations[i & 1023]))
                        .expect("act")
                        .as_discrete(),
                );
            },
            |i| {
                black_box(
                    agent
                        .act(black_box(&f.observations[i & 1023]))
                        .expect("act")
                        .as_discrete(),
                );
            },
        );
        for (name, r) in [("runtime Actor::act", rt), ("Agent::act", ag)] {
            println!(
                "{:<34} {:>8.0} {:>8.0} {:>8.0}",
                format!("{name} ({round})"),
                r[0],
                r[2],
                r[4]
            );
        }
        println!("Agent::act / runtime, p50: {:.2}×", ag[0] / rt[0]);
    }
}
