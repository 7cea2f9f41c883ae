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

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_client::episodes::parse_physics;
use plasma_client::protocol::{
    CompileRequest, EventKind, ExperienceBatch, JobEvent, JobStatus, TrainMode, TrainRequest,
};
use plasma_client::{ClientConfig, EventStream, PlasmaClient, Verifier};
use plasma_envs::Physics;
use plasma_packets::Packet;
use recipes::{local_server, random_experience};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(about = "Times the server's base and adapter jobs, request to signed packet")]
struct Args {
    /// An external server; by default one starts in-process on the embedded defaults.
    #[arg(long)]
    server: Option<String>,
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
    /// Seed of the random experience.
    #[arg(long, default_value_t = 7)]
    seed: u64,
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
    /// Seconds of each distillation round, and of its labelling.
    rounds: Vec<(f64, f64)>,
    /// The job's figures (`result`).
    result: Value,
    packet_bytes: usize,
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
        let ev = tokio::time::timeout(Duration::from_secs(3600), events.next_event())
            .await
            .context("no job event for an hour")??
            .context("the event stream closed")?;
        if ev.job_id != id {
            continue;
        }
        let done = ev.status.is_terminal();
        seen.push(ev);
        if done {
            break;
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
    // Verified as an agent would: digest and signature against the served key. An adapter
    // packet is checked by its own header here (it needs its base to run).
    Packet::decode(&bytes, &Verifier::pinned(key)).context("verifying the packet")?;
    let compile_seconds = compile_started.elapsed().as_secs_f64();

    // A phase lasts from its first event to the next phase's first event (the last one to
    // the job's end).
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut current: Option<(String, f64)> = None;
    let start_ts = seen.first().map_or(0.0, |e| e.timestamp);
    let end_ts = seen.last().map_or(0.0, |e| e.timestamp);
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
    let queued = seen
        .iter()
        .find(|e| e.phase.is_some())
        .map_or(0.0, |e| e.timestamp - start_ts);
    if queued > 0.0 {
        phases.insert(0, ("queued / start".into(), queued));
    }
    // Distillation rounds end with a `distill` progress event carrying the round's figures.
    let mut rounds = Vec::new();
    let mut last = seen
        .iter()
        .find(|e| e.phase.as_deref() == Some("distill"))
        .map(|e| e.timestamp);
    for ev in seen.iter().filter(|e| {
        e.phase.as_deref() == Some("distill")
            && e.event == EventKind::Progress
            && e.metrics
                .as_ref()
                .is_some_and(|m| m.get("iteration").is_some())
    }) {
        let label = ev
            .metrics
            .as_ref()
            .and_then(|m| m.get("label_seconds"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        if let Some(t) = last {
            rounds.push((ev.timestamp - t, label));
        }
        last = Some(ev.timestamp);
    }
    Ok((
        id,
        JobTiming {
            job_seconds,
            compile_seconds,
            phases,
            rounds,
            result: job.result.unwrap_or(Value::Null),
            packet_bytes: bytes.len(),
        },
    ))
}

/// Prints one job's figures; `target` is the goal on the default settings (`None` with
/// other settings, where it does not apply).
fn report(name: &str, transitions: usize, t: &JobTiming, target: Option<f64>) {
    let total = t.job_seconds + t.compile_seconds;
    let verdict = match target {
        Some(target) if total <= target => format!("target ≤ {target:.0} s: met"),
        Some(target) => format!("target ≤ {target:.0} s: {:.1}× over", total / target),
        None => "small settings: no target".to_owned(),
    };
    println!(
        "\n{name} job on {transitions} transitions: {total:.1} s request → signed packet \
         ({verdict}); packet {} bytes",
        t.packet_bytes
    );
    println!("  {:<28} {:>8}", "phase", "seconds");
    for (phase, secs) in &t.phases {
        println!("  {phase:<28} {secs:>8.2}");
    }
    println!(
        "  {:<28} {:>8.2}",
        "compile + download + verify", t.compile_seconds
    );
    let wm = &t.result["world_model"];
    println!(
        "  world model: fitted {}, {} epochs in {:.2} s",
        wm["fitted"],
        wm["epochs"],
        wm["seconds"].as_f64().unwrap_or(0.0)
    );
    for (i, (secs, label)) in t.rounds.iter().enumerate() {
        println!(
            "  distillation round {}: {secs:.2} s, of which labelling {label:.2} s",
            i + 1
        );
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp;
    let (_server, client) = match &args.server {
        Some(url) => (None, PlasmaClient::new(ClientConfig::new(url.clone()))?),
        None => {
            let dir = match &args.data {
                Some(d) => d.clone(),
                None => {
                    tmp = tempfile_dir()?;
                    tmp.clone()
                }
            };
            let (server, client) = local_server(&dir, args.quick).await?;
            (Some(server), client)
        }
    };
    let mut events = client.events(AGENT).await?;
    let changed = parse_physics(&args.change)?;
    let run = std::process::id();
    let task = TASK.to_owned();

    upload(
        &client,
        &task,
        &Physics::default(),
        args.base_steps,
        args.seed,
    )
    .await?;
    let (base_id, base) = timed_job(
        &client,
        &mut events,
        &TrainRequest {
            mode: TrainMode::Base,
            ..train_request(&task)
        },
    )
    .await?;
    report(
        "base",
        args.base_steps,
        &base,
        (!args.quick).then_some(30.0),
    );

    if args.adapt_steps > 0 {
        let condition = format!("{TASK}.bench-{run}");
        let mut spec = client.task(&task).await?.spec;
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
            (!args.quick).then_some(20.0),
        );
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

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("plasma-job-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
