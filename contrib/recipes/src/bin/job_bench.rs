//! Benchmark of the server's training jobs as a client sees them: a base job on
//! `--base-steps` transitions and an adapter job on `--adapt-steps` transitions of a
//! changed system, each timed from the request to the signed, verified packet over real
//! HTTP, with the time of every phase of the job (from its WebSocket events) and of every
//! distillation round.
//!
//! `cargo run --release -p recipes --bin job_bench` (`--server URL` measures an external
//! server; by default one starts in-process on the embedded defaults, `--quick` for CI's
//! small settings).
//!
//! The experience is random-action CartPole-v1 (its distribution does not change the
//! amount of work a job does: the fit's epochs, the labels and the rounds are fixed by the
//! configuration; early stopping of the model fit is the exception, and is reported).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_client::episodes::{parse_physics, run_episodes};
use plasma_client::protocol::{
    CompileRequest, EventKind, ExperienceBatch, JobEvent, JobOutput, JobStatus, PhaseMetrics,
    TrainMode, TrainRequest, TrainingResult,
};
use plasma_client::{EventStream, PlasmaClient, Verifier};
use plasma_envs::Physics;
use plasma_packets::Packet;
use plasma_packets::runtime::{EdgeRuntime, Kernel};
use recipes::{local_server_with, random_experience};

#[derive(Parser, Debug)]
#[command(about = "Times the server's base and adapter jobs, request to signed packet")]
struct Args {
    /// An external server; by default one starts in-process on the embedded defaults.
    #[arg(long)]
    server: Option<String>,
    /// Bearer token for an external server (an admin token: the bench registers a task).
    #[arg(long, env = "PLASMA_TOKEN")]
    token: Option<String>,
    /// Data directory of the in-process server (a fresh temporary one by default).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Small compute settings (CI's).
    #[arg(long)]
    quick: bool,
    /// Transitions of the base job.
    #[arg(long, default_value_t = 2000)]
    base_steps: usize,
    /// Transitions of the changed system for the adapter job (0: no adapter job).
    #[arg(long, default_value_t = 1000)]
    adapt_steps: usize,
    /// The changed system of the adapter job (plasma-envs names), `name=value[,…]`.
    #[arg(long, default_value = "gravity=100")]
    change: String,
    /// The system of the base job's experience (default: CartPole-v1 unchanged), e.g. the
    /// changed one to measure a from-scratch policy on it.
    #[arg(long, default_value = "")]
    base_change: String,
    /// Seed of the random experience.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// A configuration file layered over the in-process server's settings (as
    /// `plasma-server --config` reads it), to measure other compute settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Real episodes on which each packet is evaluated (0: none).
    #[arg(long, default_value_t = 20)]
    episodes: usize,
}

const TASK: &str = "CartPole-v1";
const AGENT: &str = "bench-agent";

/// Where one job's time went.
struct JobTiming {
    /// Request to the job's completion, as the client saw it.
    job_seconds: f64,
    /// Compile request to verified packet bytes.
    compile_seconds: f64,
    /// Seconds per phase, from the job's events, in the order the phases came.
    phases: Vec<(String, f64)>,
    /// Wall seconds of each distillation round (when its own event arrived), and of its
    /// labelling.
    rounds: Vec<(Option<f64>, f64)>,
    /// The job's figures (`result`).
    result: TrainingResult,
    packet: Vec<u8>,
}

/// Mean return of `runtime`'s policy over `episodes` real episodes (seeds 90,000 + i).
fn real_return(runtime: &EdgeRuntime, physics: &Physics, episodes: usize) -> Result<f64> {
    let mut actor = runtime.actor();
    let mut ends = [0usize; 3];
    let returns = run_episodes(
        TASK,
        physics,
        episodes,
        90_000,
        |obs| {
            Ok(actor
                .act(obs)
                .map_err(|e| plasma_client::ClientError::Invalid(e.to_string()))?
                .to_owned())
        },
        |t| {
            if t.terminated || t.truncated {
                // CartPole's observation: cart position first, pole angle third.
                let end = if t.truncated {
                    0
                } else if t.next_obs[0].abs() > 2.4 {
                    1
                } else {
                    2
                };
                ends[end] += 1;
            }
        },
    )?;
    println!(
        "    episodes: {} reached the time limit, {} left the track, {} dropped the pole",
        ends[0], ends[1], ends[2]
    );
    Ok(returns.iter().sum::<f64>() / returns.len().max(1) as f64)
}

async fn upload(
    client: &PlasmaClient,
    task: &str,
    physics: &Physics,
    steps: usize,
    seed: u64,
) -> Result<()> {
    let transitions = random_experience(TASK, physics, steps, seed)?;
    for chunk in transitions.chunks(1000) {
        client
            .upload_experience(&ExperienceBatch {
                agent_id: AGENT.into(),
                task_name: task.into(),
                transitions: chunk.to_vec(),
            })
            .await
            .context("uploading experience")?;
    }
    Ok(())
}

/// Runs one training job and its compilation, timing both and every phase.
async fn timed_job(
    client: &PlasmaClient,
    events: &mut EventStream,
    req: &TrainRequest,
) -> Result<(String, JobTiming)> {
    let started = Instant::now();
    let accepted = client.start_training(req).await?;
    let id = accepted.training_id;
    // Every event of this job, until it ends.
    let mut seen: Vec<JobEvent> = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next_event()).await {
            Ok(ev) => {
                let ev = ev?.context("the event stream closed")?;
                if ev.job_id != id {
                    continue;
                }
                let done = ev.status.is_terminal();
                seen.push(ev);
                if done {
                    break;
                }
            }
            // A quiet stream (a long phase, or events the server dropped for a slow
            // reader): the job's own record says whether it is still running.
            Err(_) => {
                if client.job(&id).await?.job.status.is_terminal() {
                    break;
                }
            }
        }
    }
    let job = client.wait_for_job(&id, Duration::from_secs(60)).await?;
    let job_seconds = started.elapsed().as_secs_f64();
    if job.status != JobStatus::Complete {
        bail!("job {id} ended {:?}: {:?}", job.status, job.error);
    }

    let compile_started = Instant::now();
    let compiled = client
        .compile_instruction_packet(&CompileRequest {
            agent_id: req.agent_id.clone(),
            trained_lora_path: Some(id.clone()),
            target_device: "edge".into(),
            force: true,
        })
        .await?;
    let bytes = client
        .download_instruction_packet(&compiled.packet_id)
        .await?;
    let key = client.signing_key().await?;
    // Verified as an agent would: digest and signature against the served key.
    Packet::decode(&bytes, &Verifier::pinned(key)).context("verifying the packet")?;
    let compile_seconds = compile_started.elapsed().as_secs_f64();

    // A phase lasts from its first event to the next phase's first event (the last one to
    // the job's end); before the first, the job waited in the queue.
    let queued = job
        .started_at
        .map_or(0.0, |s| (s - job.created_at).max(0.0));
    let mut phases: Vec<(String, f64)> = vec![("queued".into(), queued)];
    let mut current: Option<(String, f64)> = None;
    let end_ts = job
        .finished_at
        .or(seen.last().map(|e| e.timestamp))
        .unwrap_or(0.0);
    for ev in &seen {
        let Some(phase) = &ev.phase else { continue };
        match &current {
            Some((p, _)) if p == phase => {}
            _ => {
                if let Some((p, t)) = current.take() {
                    phases.push((p, ev.timestamp - t));
                }
                current = Some((phase.clone(), ev.timestamp));
            }
        }
    }
    if let Some((p, t)) = current {
        phases.push((p, end_ts - t));
    }
    // Each distillation round ends with a `distill` progress event carrying its figures;
    // its wall time runs from the previous one (the first from the phase's start).
    let mut round_ends = BTreeMap::new();
    let mut last = seen
        .iter()
        .find(|e| e.phase.as_deref() == Some("distill"))
        .map(|e| e.timestamp);
    for ev in &seen {
        if ev.phase.as_deref() != Some("distill") || ev.event != EventKind::Progress {
            continue;
        }
        let round = match &ev.metrics {
            Some(PhaseMetrics::Round(r)) => Some(r.iteration as u64),
            _ => None,
        };
        if let (Some(i), Some(t)) = (round, last) {
            round_ends.insert(i, ev.timestamp - t);
            last = Some(ev.timestamp);
        }
    }
    // The rounds themselves come from the result: the event stream coalesces events that
    // follow each other closely, so a round may have no event (and then no wall time).
    let result = match job.result {
        Some(JobOutput::Training(t)) => t,
        other => bail!("training job {id} has no training result: {other:?}"),
    };
    let rounds = result
        .distill
        .rounds
        .iter()
        .enumerate()
        .map(|(i, r)| (round_ends.get(&(i as u64)).copied(), r.label_seconds))
        .collect();
    Ok((
        id,
        JobTiming {
            job_seconds,
            compile_seconds,
            phases,
            rounds,
            result,
            packet: bytes.to_vec(),
        },
    ))
}

/// Prints one job's figures; `target` is DESIGN.md's goal for the default job sizes
/// (`None` with `--quick` or other sizes, where it does not apply).
fn report(name: &str, transitions: usize, t: &JobTiming, target: Option<f64>) {
    let total = t.job_seconds + t.compile_seconds;
    let verdict = match target {
        Some(target) if total <= target => format!("target ≤ {target:.0} s: met"),
        Some(target) => format!("target ≤ {target:.0} s: {:.1}× over", total / target),
        None => "other settings than the target's".to_owned(),
    };
    println!(
        "\n{name} job on {transitions} transitions: {total:.1} s request → signed packet \
         ({verdict}); packet {} bytes",
        t.packet.len()
    );
    println!("  {:<28} {:>8}", "phase", "seconds");
    for (phase, secs) in &t.phases {
        println!("  {phase:<28} {secs:>8.2}");
    }
    println!(
        "  {:<28} {:>8.2}",
        "compile + download + verify", t.compile_seconds
    );
    let wm = &t.result.world_model;
    if wm.fitted {
        println!(
            "  world model: fitted, {} epochs in {:.2} s",
            wm.epochs.unwrap_or(0),
            wm.seconds.unwrap_or(0.0)
        );
    } else {
        println!("  world model: loaded from its checkpoint (same data and settings)");
    }
    let imagined = &t.result.imagined_return;
    println!(
        "  the policy in imagination: mean return {:.1} (min {:.1}, max {:.1}) over {} paths of \
         compute.phantom_horizon steps, alive at the end {:.2}",
        imagined.mean.unwrap_or(f64::NAN),
        imagined.min.unwrap_or(f32::NAN),
        imagined.max.unwrap_or(f32::NAN),
        imagined.count,
        t.result.imagined_survival
    );
    let distill = &t.result.distill;
    if !distill.passes.is_empty() {
        let scores: Vec<String> = distill.passes.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "  distillation passes scored by long imagined paths: {}; kept pass {}",
            scores.join(", "),
            distill.chosen_pass + 1
        );
    }
    for (i, (secs, label)) in t.rounds.iter().enumerate() {
        let wall = secs.map_or("-".to_owned(), |s| format!("{s:.2} s"));
        println!(
            "  distillation round {}: {wall}, of which labelling {label:.2} s",
            i + 1
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Declared before the server, so the server stops before its directory is removed.
    let mut tmp = None;
    let (_server, client) = match &args.server {
        Some(url) => (None, recipes::external_client(url, args.token.clone())?),
        None => {
            let dir = match &args.data {
                Some(d) => d.clone(),
                None => tmp
                    .insert(tempfile::tempdir().context("creating a data directory")?)
                    .path()
                    .to_path_buf(),
            };
            let (server, client) =
                local_server_with(&dir, args.quick, args.config.as_deref()).await?;
            (Some(server), client)
        }
    };
    let mut events = client.events(AGENT).await?;
    let changed = parse_physics(&args.change)?;

    let base_physics = parse_physics(&args.base_change)?;
    upload(&client, TASK, &base_physics, args.base_steps, args.seed).await?;
    let (base_id, base) = timed_job(
        &client,
        &mut events,
        &TrainRequest {
            mode: TrainMode::Base,
            ..train_request(TASK)
        },
    )
    .await?;
    let defaults = !args.quick && args.config.is_none();
    report(
        "base",
        args.base_steps,
        &base,
        (defaults && args.base_steps == 2000).then_some(30.0),
    );
    let key = client.signing_key().await?;
    let runtime = EdgeRuntime::load(&base.packet, Verifier::pinned(key), Kernel::default())
        .context("loading the base packet")?;
    if args.episodes > 0 {
        let own = real_return(&runtime, &base_physics, args.episodes)?;
        let on_change = real_return(&runtime, &changed, args.episodes)?;
        println!(
            "  base packet, real {TASK} ({}): {own:.1} (changed system {}: {on_change:.1}) \
             over {} episodes",
            if args.base_change.is_empty() {
                "unchanged"
            } else {
                &args.base_change
            },
            args.change,
            args.episodes
        );
    }

    if args.adapt_steps > 0 {
        // A condition task of its own per run: no model of an earlier run is reused.
        let condition = format!("{TASK}.bench-{}", std::process::id());
        let mut spec = client.task(TASK).await?.spec;
        spec.name = condition.clone();
        client.register_task(&spec).await?;
        upload(
            &client,
            &condition,
            &changed,
            args.adapt_steps,
            args.seed + 1,
        )
        .await?;
        let (_, adapter) = timed_job(
            &client,
            &mut events,
            &TrainRequest {
                mode: TrainMode::Adapter,
                base_training: Some(base_id),
                ..train_request(&condition)
            },
        )
        .await?;
        report(
            "adapter",
            args.adapt_steps,
            &adapter,
            (defaults && args.adapt_steps == 1000).then_some(20.0),
        );
        runtime
            .apply_adapter(&adapter.packet)
            .context("applying the adapter packet")?;
        if args.episodes > 0 {
            let adapted = real_return(&runtime, &changed, args.episodes)?;
            println!(
                "  base + adapter packets, real {TASK} under {}: {adapted:.1} over {} episodes",
                args.change, args.episodes
            );
        }
    }
    Ok(())
}

/// The request an Agent sends (the server's defaults for everything else).
fn train_request(task: &str) -> TrainRequest {
    TrainRequest {
        agent_id: AGENT.into(),
        task_name: task.into(),
        num_simulations: 1000,
        lora_rank: None,
        learning_rate: None,
        use_phantom_paths: true,
        mode: TrainMode::Auto,
        base_training: None,
    }
}
