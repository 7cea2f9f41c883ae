//! The main job: Plasma end to end, for real, on one machine.
//!
//! Starts plasma-server with the embedded defaults (CPU, a local data directory) on a
//! loopback port, and an edge agent (plasma-client's `Agent`) against it:
//! 1. the agent explores CartPole-v1 with random actions and uploads what it saw;
//! 2. the server fits a world model, distils a base policy, audits, compiles and signs a
//!    packet; the agent downloads, verifies and runs it offline (then, with `--rounds 2`,
//!    acts with it, uploads that experience too, and gets a better base);
//! 3. the physics change (`--change gravity=50`); the agent acts with the base packet on
//!    the changed system, uploads that experience under a condition task, and gets a LoRA
//!    adapter on its base — it keeps acting while the adapter trains, and hot-swaps it when
//!    it arrives;
//! 4. a table: real returns before and after each step, real steps used, packet sizes,
//!    decision latency.
//!
//! `cargo run --release -p recipes --bin client_server_demo -- --data ./plasma-data`
//! (`--quick` uses small compute settings: the loop in about a minute, weaker policies).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_client::episodes::{parse_physics, run_episodes};
use plasma_client::protocol::{PolicyKind, TrainMode};
use plasma_client::{Agent, AgentConfig, ClientError, OwnedAction, PacketCache, Verifier};
use plasma_envs::Physics;

#[derive(Parser, Debug)]
#[command(about = "Plasma end to end: a server and an edge agent that learns, deploys and adapts")]
struct Args {
    /// Data directory of the server (and the agent's packet cache under it).
    #[arg(long, default_value = "plasma-data")]
    data: PathBuf,
    /// Real steps of random exploration before the first base policy.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Base-policy rounds: each after the first acts with the current packet for
    /// `--steps` more real steps, uploads them and trains a new base.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The physics change to adapt to (plasma-envs names), `name=value[,…]`.
    #[arg(long, default_value = "gravity=50")]
    change: String,
    /// Real steps of the changed system for the adapter.
    #[arg(long, default_value_t = 1000)]
    adapt_steps: usize,
    /// Evaluation episodes per measurement (not counted as learning steps).
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Small compute settings (for CI and a first look).
    #[arg(long)]
    quick: bool,
    /// Stop at the first policy the auditor rejects instead of deploying it anyway. By
    /// default a rejected policy is deployed with its rejection recorded in the packet
    /// (and shown in the table): a base fitted to random exploration is expected to leave
    /// the explored states, which the next round's experience covers.
    #[arg(long)]
    respect_audit: bool,
}

const TASK: &str = "CartPole-v1";
const AGENT: &str = "edge-agent-1";

struct Row {
    step: String,
    audit: String,
    physics: String,
    real_steps: usize,
    mean_return: f64,
    packet: String,
}

fn evaluate(agent: &mut Agent, physics: &Physics, episodes: usize) -> Result<f64> {
    let returns = run_episodes(
        TASK,
        physics,
        episodes,
        90_000,
        |obs| Ok(agent.act(obs)?.to_owned()),
        |_| {},
    )?;
    Ok(returns.iter().sum::<f64>() / returns.len().max(1) as f64)
}

/// Acts with the agent's packet (random actions before it has one) for `steps` real
/// steps, observing every transition; returns the episodes' mean return.
fn collect(agent: &mut Agent, physics: &Physics, steps: usize, seed: u64) -> Result<f64> {
    let mut rng = seed | 1;
    let mut seen = Vec::new();
    let mut returns = Vec::new();
    let mut episode = 0;
    while seen.len() < steps {
        let r = run_episodes(
            TASK,
            physics,
            1,
            seed + episode,
            |obs| match agent.act(obs) {
                Ok(a) => Ok(a.to_owned()),
                Err(ClientError::NoPolicy) => {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    Ok(OwnedAction::Discrete((rng >> 33) as u32 % 2))
                }
                Err(e) => Err(e),
            },
            |t| seen.push(t),
        )?;
        returns.extend(r);
        episode += 1;
    }
    seen.truncate(steps);
    for t in seen {
        agent.observe(t);
    }
    Ok(returns.iter().sum::<f64>() / returns.len().max(1) as f64)
}

/// The auditor's verdict on a training run's phantom paths, in a few words.
fn verdict(outcome: &plasma_client::LearnOutcome) -> String {
    let audit = outcome.training.result.as_ref().map(|r| &r["audit"]);
    match audit.and_then(|a| a["approved"].as_bool()) {
        Some(true) => "approved".into(),
        Some(false) => {
            let reasons = audit
                .and_then(|a| a["reasons"].as_array())
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            println!(
                "  the auditor REJECTED it ({reasons}); deployed anyway, recorded in the packet"
            );
            "rejected, forced".into()
        }
        None => "-".into(),
    }
}

/// p50 and p99 of one `act` call, in nanoseconds, over `n` real observations.
fn latency(agent: &mut Agent, n: usize) -> Result<(f64, f64)> {
    let mut obs = Vec::new();
    run_episodes(
        TASK,
        &Physics::new(),
        5,
        7,
        |o| Ok(agent.act(o)?.to_owned()),
        |t| obs.push(t.obs),
    )?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let o = &obs[i % obs.len()];
        let t = Instant::now();
        std::hint::black_box(agent.act(std::hint::black_box(o))?.as_discrete());
        times.push(t.elapsed().as_nanos() as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 99 / 100]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.steps == 0 || args.episodes == 0 {
        bail!("--rounds, --steps and --episodes must be at least 1");
    }
    let changed = parse_physics(&args.change)?;
    let started = Instant::now();

    // The server, with the embedded defaults, on a free loopback port.
    let (server, client) = recipes::local_server(&args.data.join("server"), args.quick).await?;
    let url = client.base_url().to_owned();
    println!(
        "plasma-server on {url}, data in {}",
        args.data.join("server").display()
    );

    // The edge agent: pins the server's key, keeps a verified packet cache.
    let key = client.signing_key().await?;
    let cache = Arc::new(PacketCache::open(
        args.data.join("agent-cache"),
        Verifier::pinned(key),
    )?);
    let mut agent_config = AgentConfig::new(AGENT, TASK);
    agent_config.force = !args.respect_audit;
    agent_config.mode = TrainMode::Base;
    let mut agent = Agent::new(client.clone(), agent_config, cache)?;
    let mut events = client.events(AGENT).await?;
    let progress = tokio::spawn(async move {
        while let Ok(Some(ev)) = events.next_event().await {
            if let Some(phase) = &ev.phase {
                eprintln!(
                    "  [{} {:>3.0}%] {} {}",
                    ev.job_id,
                    ev.progress * 100.0,
                    ev.status.as_str(),
                    phase
                );
            }
        }
    });

    let mut rows = Vec::new();
    let mut real_steps = 0;
    for round in 0..args.rounds {
        let what = if round == 0 {
            "random exploration"
        } else {
            "acting with the packet"
        };
        println!("round {}: {} real steps ({what})", round + 1, args.steps);
        let seen = collect(&mut agent, &Physics::new(), args.steps, 1000 * round as u64)?;
        real_steps += args.steps;
        if round == 0 {
            rows.push(Row {
                step: "random actions".into(),
                audit: "-".into(),
                physics: "default".into(),
                real_steps: 0,
                mean_return: seen,
                packet: "-".into(),
            });
        }
        println!("  uploading and training a base policy on {real_steps} real steps…");
        let out = agent.evolve().await?;
        println!(
            "  base packet {} ({} B) deployed in {:.0} s",
            &out.packet_id[..12],
            out.packet_size,
            out.seconds
        );
        let audit = verdict(&out);
        let r = evaluate(&mut agent, &Physics::new(), args.episodes)?;
        println!("  real return over {} episodes: {r:.1}", args.episodes);
        rows.push(Row {
            step: format!("base policy, round {}", round + 1),
            audit,
            physics: "default".into(),
            real_steps,
            mean_return: r,
            packet: format!("base {} B", out.packet_size),
        });
    }
    let base_id = client
        .train_history(AGENT)
        .await?
        .history
        .first()
        .and_then(|h| h["training_id"].as_str().map(str::to_owned))
        .context("no training run recorded")?;

    // The physics change.
    let on_changed = evaluate(&mut agent, &changed, args.episodes)?;
    println!(
        "physics change {}: the base packet now averages {on_changed:.1}",
        args.change
    );
    rows.push(Row {
        step: "base policy, changed physics".into(),
        audit: "-".into(),
        physics: args.change.clone(),
        real_steps,
        mean_return: on_changed,
        packet: "same base".into(),
    });
    let condition = format!("{TASK}.{}", args.change.replace(['=', ','], "-"));
    let mut spec = client.task(TASK).await?.spec;
    spec.name = condition.clone();
    client.register_task(&spec).await?;
    agent.set_task(condition.clone(), Some(base_id));
    agent.set_mode(TrainMode::Adapter);
    println!(
        "condition task {condition}: {} real steps with the base packet",
        args.adapt_steps
    );
    collect(&mut agent, &changed, args.adapt_steps, 500_000)?;
    let adapt_steps = args.adapt_steps;

    // Learn in the background; act meanwhile; the adapter is hot-swapped when it arrives.
    agent.learn()?;
    let mut acted_while_learning = 0usize;
    let outcome = loop {
        if let Some(done) = agent.poll_learned() {
            break done?;
        }
        let r = run_episodes(
            TASK,
            &changed,
            1,
            700_000 + acted_while_learning as u64,
            |o| Ok(agent.act(o)?.to_owned()),
            |_| {},
        )?;
        acted_while_learning += r[0] as usize;
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if outcome.kind != PolicyKind::Adapter {
        bail!("expected an adapter, got a {:?}", outcome.kind);
    }
    println!(
        "  adapter {} ({} B) hot-swapped after {:.0} s; {} steps acted meanwhile, never blocked",
        &outcome.packet_id[..12],
        outcome.packet_size,
        outcome.seconds,
        acted_while_learning
    );
    let audit = verdict(&outcome);
    let adapted = evaluate(&mut agent, &changed, args.episodes)?;
    rows.push(Row {
        step: "base + LoRA adapter".into(),
        audit,
        physics: args.change.clone(),
        real_steps: real_steps + adapt_steps,
        mean_return: adapted,
        packet: format!("adapter {} B", outcome.packet_size),
    });
    let (p50, p99) = latency(&mut agent, 200_000)?;
    progress.abort();
    server.shutdown().await;

    println!();
    println!(
        "| step | physics | real steps used | mean real return ({} episodes) | packet | audit |",
        args.episodes
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} |",
            r.step, r.physics, r.real_steps, r.mean_return, r.packet, r.audit
        );
    }
    println!();
    println!(
        "decision latency (base + adapter, one call of Agent::act, 200k calls): p50 {:.0} ns, p99 {:.0} ns",
        p50, p99
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
