//! The main job: Plasma end to end, for real, on one machine.
//!
//! Starts plasma-server with the embedded defaults (CPU, a local data directory) on a
//! loopback port (or uses `--server URL`), and an edge agent (plasma-client's `Agent`)
//! against it:
//! 1. base: the agent gathers `--steps` real steps of `--env` in `--rounds` rounds — the
//!    first with random actions, each later one acting with its newest packet and
//!    exploring around it (plasma-client's `Explorer`: ε-greedy for discrete actions,
//!    Gaussian noise for continuous ones) — uploads every step and gets a new base packet
//!    after each round (the server fits a world model, distils the recipe's teacher into
//!    a policy, audits, compiles and signs it); the agent verifies and runs it offline;
//! 2. the physics change (`--change`, by default one that costs a strong base much of its
//!    return); the agent acts with the base on the changed system, uploads `--adapt-steps`
//!    real steps of it under a condition task in `--adapt-rounds` rounds and gets a LoRA
//!    adapter on its base after each — it keeps acting while the adapter trains, and
//!    hot-swaps it when it arrives;
//! 3. the comparison (`--no-scratch` skips it): a second agent learns a base from scratch
//!    on the changed system, through the server, with `--steps` real steps of it;
//! 4. a table: real returns over `--episodes` episodes before and after each step, real
//!    steps used, packet sizes, decision latency.
//!
//! `cargo run --release -p recipes --bin client_server_demo -- --data ./plasma-data`
//! (`--env Pendulum-v1` for the continuous task; `--quick` uses small compute settings:
//! the loop in about a minute, weaker policies).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_client::episodes::{parse_physics, run_episodes};
use plasma_client::protocol::{PolicyKind, Space, TrainMode};
use plasma_client::{
    Agent, AgentConfig, ClientError, Exploration, Explorer, PacketCache, PlasmaClient, Verifier,
};
use plasma_envs::Physics;

#[derive(Parser, Debug)]
#[command(about = "Plasma end to end: a server and an edge agent that learns, deploys and adapts")]
struct Args {
    /// The task (a plasma-envs id): CartPole-v1 or Pendulum-v1.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// An external plasma-server; by default one starts in-process on the embedded
    /// defaults.
    #[arg(long)]
    server: Option<String>,
    /// Bearer token for `--server` (an admin token: the job registers tasks).
    #[arg(long, env = "PLASMA_TOKEN")]
    token: Option<String>,
    /// Data directory of the in-process server and of the agents' packet caches.
    #[arg(long, default_value = "plasma-data")]
    data: PathBuf,
    /// Real steps for the base, in all rounds (default: 2,000 on CartPole, 5,000 on
    /// Pendulum); the from-scratch comparison gets as many of the changed system.
    #[arg(long)]
    steps: Option<usize>,
    /// Base rounds: the first explores at random, each later one with the newest packet.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// The physics change to adapt to (plasma-envs names), `name=value[,…]` (default:
    /// `gravity=100` on CartPole, `m=2.0` on Pendulum).
    #[arg(long)]
    change: Option<String>,
    /// Real steps of the changed system for the adapter, in all adapter rounds.
    #[arg(long, default_value_t = 1000)]
    adapt_steps: usize,
    /// Adapter rounds: each acts with the newest packet on the changed system for its
    /// share of `--adapt-steps` and trains a new adapter on everything seen so far.
    #[arg(long, default_value_t = 2)]
    adapt_rounds: usize,
    /// Probability of a random action while collecting (discrete actions), or the noise's
    /// standard deviation in half-ranges of the box (continuous ones); default 0.1.
    #[arg(long)]
    explore: Option<f32>,
    /// Evaluation episodes per measurement (not counted as learning steps).
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// Skip the from-scratch comparison on the changed system.
    #[arg(long)]
    no_scratch: bool,
    /// Small compute settings (for CI and a first look).
    #[arg(long)]
    quick: bool,
    /// A server configuration file (as `plasma-server --config` reads it) layered over
    /// the in-process server's defaults (or `--quick`'s settings).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop at the first policy the auditor rejects instead of deploying it anyway. By
    /// default a rejected policy is deployed with its rejection recorded in the packet
    /// (and shown in the table): a base fitted to random exploration is expected to leave
    /// the explored states, which the next round's experience covers.
    #[arg(long)]
    respect_audit: bool,
    /// Keep the in-process server running after the run (until Ctrl-C), so that its
    /// dashboard (`/ui/`) can be looked at with the run's jobs, paths and packets.
    #[arg(long)]
    serve: bool,
}

const AGENT: &str = "edge-agent-1";
const SCRATCH_AGENT: &str = "edge-agent-scratch";

struct Row {
    step: String,
    audit: String,
    physics: String,
    real_steps: usize,
    mean_return: f64,
    packet: String,
}

/// The task, its action space and how the agents explore it.
struct Task {
    env: String,
    space: Space,
    exploration: Exploration,
}

fn evaluate(agent: &mut Agent, task: &Task, physics: &Physics, episodes: usize) -> Result<f64> {
    let returns = run_episodes(
        &task.env,
        physics,
        episodes,
        90_000,
        |obs| Ok(agent.act(obs)?.to_owned()),
        |_| {},
    )?;
    Ok(returns.iter().sum::<f64>() / returns.len().max(1) as f64)
}

/// Acts for `steps` real steps — at random before the agent has a packet, then with the
/// packet and the task's exploration — observing every transition; returns the mean
/// return of the episodes it ran (the last one's whole return, though only its steps up
/// to `steps` are observed).
fn collect(
    agent: &mut Agent,
    task: &Task,
    physics: &Physics,
    steps: usize,
    seed: u64,
) -> Result<f64> {
    let mut explorer = Explorer::new(task.space.clone(), task.exploration, seed);
    let mut seen = Vec::new();
    let mut returns = Vec::new();
    let mut episode = 0;
    while seen.len() < steps {
        let r = run_episodes(
            &task.env,
            physics,
            1,
            seed + episode,
            |obs| {
                let packet = match agent.act(obs) {
                    Ok(a) => Some(a.to_owned()),
                    Err(ClientError::NoPolicy) => None,
                    Err(e) => return Err(e),
                };
                Ok(explorer.act(packet))
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

/// A new agent of `agent_id` on `task_name`, with its own packet cache under `data`.
fn new_agent(
    client: &PlasmaClient,
    key: plasma_client::PublicKey,
    data: &std::path::Path,
    agent_id: &str,
    task_name: &str,
    respect_audit: bool,
) -> Result<Agent> {
    // A fresh cache: an agent resumes what its cache has deployed, and this job's rounds
    // start from random actions.
    let dir = data.join(format!("cache-{agent_id}"));
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("clearing {}", dir.display()));
        }
        _ => {}
    }
    let cache = Arc::new(PacketCache::open(dir, Verifier::pinned(key))?);
    let mut config = AgentConfig::new(agent_id, task_name);
    config.force = !respect_audit;
    config.mode = TrainMode::Base;
    Ok(Agent::new(client.clone(), config, cache)?)
}

/// Registers `name` as a task with `env`'s spaces (a condition of it, or a comparison).
async fn register_like(client: &PlasmaClient, env: &str, name: &str) -> Result<()> {
    let mut spec = plasma_envs::task_spec(env)?;
    spec.name = name.to_owned();
    client.register_task(&spec).await?;
    Ok(())
}

/// Base rounds of `agent` on `physics`: collect (random first, then the newest packet with
/// exploration), upload and train after each; a row per round. Returns the real steps.
#[allow(clippy::too_many_arguments)]
async fn base_rounds(
    agent: &mut Agent,
    task: &Task,
    physics: &Physics,
    physics_name: &str,
    steps: usize,
    rounds: usize,
    episodes: usize,
    seed: u64,
    label: &str,
    rows: &mut Vec<Row>,
) -> Result<usize> {
    let mut real_steps = 0;
    for round in 0..rounds {
        let share = steps * (round + 1) / rounds - steps * round / rounds;
        let what = if agent.has_policy() {
            "acting with the packet, exploring"
        } else {
            "random actions"
        };
        println!("{label}, round {}: {share} real steps ({what})", round + 1);
        let seen = collect(agent, task, physics, share, seed + 1000 * round as u64)?;
        if round == 0 {
            rows.push(Row {
                step: format!("{label}: random actions"),
                audit: "-".into(),
                physics: physics_name.into(),
                real_steps: 0,
                mean_return: seen,
                packet: "-".into(),
            });
        }
        real_steps += share;
        println!("  uploading and training a base policy on {real_steps} real steps…");
        let out = agent.evolve().await?;
        println!(
            "  base packet {} ({} B) deployed in {:.1} s",
            short(&out.packet_id),
            out.packet_size,
            out.seconds
        );
        let audit = verdict(&out);
        let r = evaluate(agent, task, physics, episodes)?;
        println!("  real return over {episodes} episodes: {r:.1}");
        rows.push(Row {
            step: format!("{label}, round {}", round + 1),
            audit,
            physics: physics_name.into(),
            real_steps,
            mean_return: r,
            packet: format!("base {} B", out.packet_size),
        });
    }
    Ok(real_steps)
}

/// The auditor's verdict on a training run's phantom paths, in a few words.
fn verdict(outcome: &plasma_client::LearnOutcome) -> String {
    let audit = outcome.training.result.as_ref().and_then(|r| r.audit());
    match audit.map(|a| a.approved) {
        Some(true) => "approved".into(),
        Some(false) => {
            let reasons = audit.map(|a| a.reasons.join("; ")).unwrap_or_default();
            println!(
                "  the auditor REJECTED it ({reasons}); deployed anyway, recorded in the packet"
            );
            "rejected, forced".into()
        }
        None => "-".into(),
    }
}

/// p50 and p99 of one `act` call, in nanoseconds, over `n` real observations.
fn latency(agent: &mut Agent, task: &Task, n: usize) -> Result<(f64, f64)> {
    let mut obs = Vec::new();
    run_episodes(
        &task.env,
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
        std::hint::black_box(agent.act(std::hint::black_box(o))?);
        times.push(t.elapsed().as_nanos() as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[n / 2], times[n * 99 / 100]))
}

/// How much of `scratch` the adapter reached: the ratio of returns (costs, i.e. negative
/// returns as on Pendulum: the inverse ratio); `None` when the two differ in sign.
fn share_of(adapted: f64, scratch: f64) -> Option<f64> {
    if scratch > 0.0 && adapted >= 0.0 {
        Some(adapted / scratch)
    } else if scratch < 0.0 && adapted < 0.0 {
        Some(scratch / adapted)
    } else {
        None
    }
}

/// The first 12 characters of a packet id, for the log.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A task name of `parts` joined by dots, with every character a task name may not hold
/// replaced by `-`, at most 100 characters.
fn task_name(parts: &[&str]) -> String {
    parts
        .join(".")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.rounds == 0 || args.adapt_rounds == 0 || args.episodes == 0 {
        bail!("--rounds, --adapt-rounds and --episodes must be at least 1");
    }
    if args.server.is_some() && args.config.is_some() {
        bail!("--config configures the in-process server; an external one has its own");
    }
    let pendulum = args.env.starts_with("Pendulum");
    let steps = args.steps.unwrap_or(if pendulum { 5000 } else { 2000 });
    let change = args
        .change
        .clone()
        .unwrap_or_else(|| if pendulum { "m=2.0" } else { "gravity=100" }.to_owned());
    if steps < args.rounds || args.adapt_steps < args.adapt_rounds {
        bail!("every round needs at least one real step");
    }
    let changed = parse_physics(&change)?;
    let started = Instant::now();

    // The server: external, or in-process with the embedded defaults on a free port.
    let (server, client) = match &args.server {
        Some(url) => (None, recipes::external_client(url, args.token.clone())?),
        None => {
            let (server, client) = recipes::local_server_with(
                &args.data.join("server"),
                args.quick,
                args.config.as_deref(),
            )
            .await?;
            (Some(server), client)
        }
    };
    println!(
        "plasma-server on {} (dashboard: {}/ui/){}",
        client.base_url(),
        client.base_url().trim_end_matches('/'),
        if server.is_some() {
            format!(", data in {}", args.data.join("server").display())
        } else {
            String::new()
        }
    );
    let spec = plasma_envs::task_spec(&args.env).with_context(|| format!("task {}", args.env))?;
    let exploration = match (args.explore, &spec.action_space) {
        (None, space) => Exploration::default_for(space),
        (Some(epsilon), Space::Discrete { .. }) => Exploration::EpsilonGreedy { epsilon },
        (Some(std), Space::Box { .. }) => Exploration::Gaussian { std },
    };
    let task = Task {
        env: args.env.clone(),
        space: spec.action_space.clone(),
        exploration,
    };
    // Every run gets its own tasks (the base's, the condition's, the comparison's), all
    // with the environment's spaces, registered before any work: no earlier experience on
    // the server is mixed in, and a name the server refuses fails at once.
    let run = format!("{:x}", std::process::id());
    let base_task = task_name(&[&args.env, "base", &run]);
    let condition = task_name(&[&args.env, &change, &run]);
    let scratch_task = task_name(&[&args.env, &change, "scratch", &run]);
    for name in [&base_task, &condition, &scratch_task] {
        register_like(&client, &args.env, name)
            .await
            .with_context(|| format!("registering task {name}"))?;
    }

    // The edge agent: pins the server's key, keeps a verified packet cache.
    let key = client.signing_key().await?;
    let mut agent = new_agent(
        &client,
        key,
        &args.data,
        AGENT,
        &base_task,
        args.respect_audit,
    )?;
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
    let real_steps = base_rounds(
        &mut agent,
        &task,
        &Physics::new(),
        "default",
        steps,
        args.rounds,
        args.episodes,
        0,
        "base",
        &mut rows,
    )
    .await?;
    let base_return = rows.last().map_or(0.0, |r| r.mean_return);
    let base_id = client
        .train_history(AGENT)
        .await?
        .history
        .first()
        .map(|h| h.view.id.clone())
        .context("no training run recorded")?;

    // The physics change.
    let on_changed = evaluate(&mut agent, &task, &changed, args.episodes)?;
    println!(
        "physics change {change}: the base packet now averages {on_changed:.1} ({:+.0}%)",
        100.0 * (on_changed - base_return) / base_return.abs().max(f64::EPSILON)
    );
    rows.push(Row {
        step: "base policy, changed physics".into(),
        audit: "-".into(),
        physics: change.clone(),
        real_steps,
        mean_return: on_changed,
        packet: "same base".into(),
    });
    agent.set_task(condition.clone(), Some(base_id));
    agent.set_mode(TrainMode::Adapter);
    let mut adapted = on_changed;
    let mut adapt_used = 0;
    for round in 0..args.adapt_rounds {
        let share = args.adapt_steps * (round + 1) / args.adapt_rounds
            - args.adapt_steps * round / args.adapt_rounds;
        println!(
            "condition task {condition}, adapter round {}: {share} real steps with the newest \
             packet, exploring",
            round + 1
        );
        collect(
            &mut agent,
            &task,
            &changed,
            share,
            500_000 + 1000 * round as u64,
        )?;
        adapt_used += share;

        // Learn in the background; act meanwhile; the adapter is hot-swapped when it
        // arrives.
        agent.learn()?;
        let mut acted_while_learning = 0usize;
        let mut episodes_while_learning = 0u64;
        let outcome = loop {
            if let Some(done) = agent.poll_learned() {
                break done?;
            }
            run_episodes(
                &task.env,
                &changed,
                1,
                700_000 + episodes_while_learning,
                |o| Ok(agent.act(o)?.to_owned()),
                |_| acted_while_learning += 1,
            )?;
            episodes_while_learning += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        if outcome.kind != PolicyKind::Adapter {
            bail!("expected an adapter, got a {:?}", outcome.kind);
        }
        println!(
            "  adapter {} ({} B) hot-swapped after {:.1} s; the agent acted {acted_while_learning} \
             steps meanwhile, never blocked",
            short(&outcome.packet_id),
            outcome.packet_size,
            outcome.seconds,
        );
        let audit = verdict(&outcome);
        adapted = evaluate(&mut agent, &task, &changed, args.episodes)?;
        println!(
            "  real return over {} episodes: {adapted:.1}",
            args.episodes
        );
        rows.push(Row {
            step: format!("base + LoRA adapter, round {}", round + 1),
            audit,
            physics: change.clone(),
            real_steps: real_steps + adapt_used,
            mean_return: adapted,
            packet: format!("adapter {} B", outcome.packet_size),
        });
    }
    let (p50, p99) = latency(&mut agent, &task, 200_000)?;

    // The comparison: a policy from scratch on the changed system, the same way.
    let scratch = if args.no_scratch {
        None
    } else {
        let mut scratch_agent = new_agent(
            &client,
            key,
            &args.data,
            SCRATCH_AGENT,
            &scratch_task,
            args.respect_audit,
        )?;
        base_rounds(
            &mut scratch_agent,
            &task,
            &changed,
            &change,
            steps,
            args.rounds,
            args.episodes,
            900_000,
            "from scratch",
            &mut rows,
        )
        .await?;
        rows.last().map(|r| r.mean_return)
    };
    progress.abort();

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
    let cost = base_return - on_changed;
    if cost > 0.0 {
        println!(
            "the change cost the base {:.0}% of its return; the adapter recovered {:.0}% of \
             that with {adapt_used} real steps of the changed system",
            100.0 * cost / base_return.abs().max(f64::EPSILON),
            100.0 * (adapted - on_changed) / cost
        );
    } else {
        println!(
            "the change cost the base nothing ({base_return:.1} → {on_changed:.1}); the \
             adapter averages {adapted:.1} with {adapt_used} real steps of the changed system"
        );
    }
    if let Some(scratch) = scratch {
        match share_of(adapted, scratch) {
            Some(share) => println!(
                "the adapter reached {:.0}% of the policy trained from scratch on the changed \
                 system ({scratch:.1} with {steps} real steps of it)",
                100.0 * share
            ),
            None => println!(
                "the adapter averages {adapted:.1}, the policy trained from scratch on the \
                 changed system {scratch:.1} with {steps} real steps of it"
            ),
        }
    }
    println!(
        "decision latency (base + adapter, one call of Agent::act, 200k calls): p50 {p50:.0} ns, \
         p99 {p99:.0} ns"
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    if let Some(server) = server {
        if args.serve {
            println!(
                "\ndashboard: {}/ui/ — the server keeps running; Ctrl-C stops it",
                client.base_url().trim_end_matches('/')
            );
            tokio::signal::ctrl_c().await?;
        }
        server.shutdown().await;
    }
    Ok(())
}
