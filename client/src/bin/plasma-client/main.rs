//! `plasma-client`: the edge client's command line. Talks to a plasma-server (health,
//! upload, simulate, train, compile, download, watch, deploy) and runs packets offline
//! (inspect, run, eval).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use plasma_client::episodes::{parse_physics, run_episodes};
use plasma_client::protocol::{
    CompileRequest, ExperienceBatch, JobStatus, SimulateRequest, TrainMode, TrainRequest,
};
use plasma_client::{
    ClientConfig, EdgePolicy, OwnedAction, PacketCache, PlasmaClient, PublicKey, Verifier,
};
use plasma_packets::{EdgeRuntime, Kernel, Packet, PacketContent, SignatureStatus};

#[derive(Parser)]
#[command(name = "plasma-client", version, about = "Plasma's edge client")]
struct Cli {
    /// The server's URL; several, comma-separated, for a deployment of several API
    /// processes (the next is tried when one cannot be reached).
    #[arg(
        long,
        env = "PLASMA_SERVER",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    server: String,
    /// Bearer token (agent or admin).
    #[arg(long, env = "PLASMA_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Liveness and status of the server.
    Health,
    /// Uploads experience: a JSON ExperienceBatch file, or random-action episodes of a
    /// reference environment.
    Upload {
        /// JSON file holding one ExperienceBatch.
        #[arg(long, conflicts_with = "env")]
        file: Option<PathBuf>,
        /// A reference environment to collect random-action experience in.
        #[arg(long)]
        env: Option<String>,
        /// Transitions to collect (with --env).
        #[arg(long, default_value_t = 1000)]
        steps: usize,
        /// The uploading agent (with --env).
        #[arg(long, default_value = "cli")]
        agent: String,
        /// Physics changes `name=value,…` (with --env).
        #[arg(long, default_value = "")]
        physics: String,
        /// Seed of the episodes and actions (with --env).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Phantom-path simulation on the server.
    Simulate {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        task: String,
        #[arg(long, default_value_t = 10)]
        trajectories: usize,
        /// Wait for the result and print it.
        #[arg(long)]
        wait: bool,
    },
    /// Trains a base policy or a LoRA adapter.
    Train {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        task: String,
        /// auto, base or adapter.
        #[arg(long, default_value = "auto")]
        mode: String,
        /// For an adapter: the base training run to adapt.
        #[arg(long)]
        base_training: Option<String>,
        #[arg(long, default_value_t = 1000)]
        num_simulations: usize,
        #[arg(long)]
        lora_rank: Option<usize>,
        /// Wait for it to end (with progress bars).
        #[arg(long)]
        wait: bool,
    },
    /// Compiles a training run into a signed packet.
    Compile {
        #[arg(long)]
        agent: String,
        /// The training run (default: the agent's latest complete one).
        #[arg(long)]
        training: Option<String>,
        /// Deploy even though the auditor rejected the policy.
        #[arg(long)]
        force: bool,
    },
    /// Downloads a packet (by packet id, or agent id for its latest), verified against the
    /// server's key or a pinned one.
    Download {
        id: String,
        #[arg(long, short)]
        out: PathBuf,
        /// Pinned signing key (hex); default: ask the server.
        #[arg(long)]
        key: Option<String>,
    },
    /// A packet file's header, provenance and signature check.
    Inspect {
        file: PathBuf,
        /// Key (hex) to check the signature against.
        #[arg(long)]
        key: Option<String>,
    },
    /// Live progress of an agent's jobs from /ws/{agent}.
    Watch {
        agent: String,
        /// Stop once this job ends.
        #[arg(long)]
        job: Option<String>,
    },
    /// Serves a packet offline over stdin/stdout: one JSON observation (array of numbers)
    /// per line in, one JSON action per line out.
    Run {
        #[command(flatten)]
        packet: PacketArgs,
    },
    /// Runs a packet for N episodes of a reference environment and reports the returns.
    Eval {
        #[command(flatten)]
        packet: PacketArgs,
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 20)]
        episodes: usize,
        /// Physics changes `name=value,…`.
        #[arg(long, default_value = "")]
        physics: String,
        #[arg(long, default_value_t = 50_000)]
        seed: u64,
    },
    /// train_and_deploy: trains, compiles, downloads and installs into a packet cache.
    Deploy {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        task: String,
        #[arg(long, default_value = "auto")]
        mode: String,
        #[arg(long)]
        base_training: Option<String>,
        #[arg(long, default_value_t = 1000)]
        num_simulations: usize,
        /// The agent's packet cache.
        #[arg(long)]
        cache: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

/// Where a packet to run comes from.
#[derive(clap::Args)]
struct PacketArgs {
    /// A base packet file.
    #[arg(long, conflicts_with = "cache")]
    packet: Option<PathBuf>,
    /// An adapter packet file for that base.
    #[arg(long, requires = "packet")]
    adapter: Option<PathBuf>,
    /// A packet cache (what `deploy` installed there runs).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Pinned signing key (hex). Required with --packet; a cache keeps its own.
    #[arg(long)]
    key: Option<String>,
}

const PINNED_KEY_FILE: &str = "pinned-key.hex";

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Inspect { file, key } => inspect(&file, key.as_deref()),
        Command::Run { packet } => serve_stdio(&packet),
        Command::Eval {
            packet,
            env,
            episodes,
            physics,
            seed,
        } => eval(&packet, &env, episodes, &physics, seed),
        command => {
            let mut config = ClientConfig::from_list(&cli.server);
            config.token = cli.token;
            let client = PlasmaClient::new(config)?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?
                .block_on(online(client, command))
        }
    }
}

fn parse_mode(mode: &str) -> Result<TrainMode> {
    Ok(match mode {
        "auto" => TrainMode::Auto,
        "base" => TrainMode::Base,
        "adapter" => TrainMode::Adapter,
        other => bail!("mode {other:?}: auto, base or adapter"),
    })
}

/// Prints pretty JSON; a closed stdout (`… | head`) ends the program quietly.
fn print_json(v: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

async fn online(client: PlasmaClient, command: Command) -> Result<()> {
    match command {
        Command::Health => {
            print_json(&client.health().await?)?;
            print_json(&client.status().await?)?;
        }
        Command::Upload {
            file,
            env,
            steps,
            agent,
            physics,
            seed,
        } => {
            let batch = match (file, env) {
                (Some(f), _) => {
                    let bytes = std::fs::read(&f).with_context(|| f.display().to_string())?;
                    serde_json::from_slice::<ExperienceBatch>(&bytes)
                        .with_context(|| format!("{} is not an ExperienceBatch", f.display()))?
                }
                (None, Some(env)) => random_experience(&env, &agent, steps, &physics, seed)?,
                (None, None) => bail!("give --file or --env"),
            };
            print_json(&client.upload_experience(&batch).await?)?;
        }
        Command::Simulate {
            agent,
            task,
            trajectories,
            wait,
        } => {
            let accepted = client
                .request_simulation(&SimulateRequest {
                    agent_id: agent.clone(),
                    task_description: task,
                    num_trajectories: trajectories,
                    adversarial_audit: true,
                    horizon: None,
                })
                .await?;
            if wait {
                watch(&client, &agent, Some(&accepted.simulation_id)).await?;
                print_json(&client.simulation(&accepted.simulation_id).await?)?;
            } else {
                print_json(&accepted)?;
            }
        }
        Command::Train {
            agent,
            task,
            mode,
            base_training,
            num_simulations,
            lora_rank,
            wait,
        } => {
            let accepted = client
                .start_training(&train_request(
                    &agent,
                    &task,
                    &mode,
                    base_training,
                    num_simulations,
                    lora_rank,
                )?)
                .await?;
            if wait {
                watch(&client, &agent, Some(&accepted.training_id)).await?;
                print_json(&client.training(&accepted.training_id).await?)?;
            } else {
                print_json(&accepted)?;
            }
        }
        Command::Compile {
            agent,
            training,
            force,
        } => {
            print_json(
                &client
                    .compile_instruction_packet(&CompileRequest {
                        agent_id: agent,
                        trained_lora_path: training,
                        target_device: "edge".into(),
                        force,
                    })
                    .await?,
            )?;
        }
        Command::Download { id, out, key } => {
            let key = match key {
                Some(k) => PublicKey::from_hex(&k)?,
                None => client.signing_key().await?,
            };
            let bytes = client.download_instruction_packet(&id).await?;
            let verified = Packet::decode(&bytes, &Verifier::pinned(key))
                .context("the downloaded packet does not verify")?;
            std::fs::write(&out, &bytes).with_context(|| out.display().to_string())?;
            println!(
                "{} packet {} ({} bytes) → {}",
                verified.packet.content.kind().as_str(),
                verified.digest,
                bytes.len(),
                out.display()
            );
        }
        Command::Watch { agent, job } => watch(&client, &agent, job.as_deref()).await?,
        Command::Deploy {
            agent,
            task,
            mode,
            base_training,
            num_simulations,
            cache,
            force,
        } => {
            let key = client.signing_key().await?;
            let cache = open_cache(&cache, Some(key))?;
            let req = train_request(&agent, &task, &mode, base_training, num_simulations, None)?;
            let accepted = client.start_training(&req).await?;
            watch(&client, &agent, Some(&accepted.training_id)).await?;
            client
                .wait_for_job(&accepted.training_id, Duration::from_secs(10))
                .await?;
            let compiled = client
                .compile_instruction_packet(&CompileRequest {
                    agent_id: agent.clone(),
                    trained_lora_path: Some(accepted.training_id.clone()),
                    target_device: "edge".into(),
                    force,
                })
                .await?;
            let current = EdgePolicy::resume(cache.clone())?;
            let fresh = client
                .load_instruction_packet(
                    &compiled.packet_id,
                    compiled.base_packet_id.as_deref(),
                    &cache,
                    current.as_ref(),
                )
                .await?;
            let policy = fresh.or(current).context("nothing deployed")?;
            // The packet runs either way: a failed report is a warning, not a failed deploy.
            if let Err(e) = client
                .report_deployment(
                    &agent,
                    &policy.deployment_report(plasma_client::protocol::DeploymentChange::Install),
                )
                .await
            {
                eprintln!("warning: the packet runs, but reporting it to the server failed: {e}");
            }
            let loaded = policy.loaded();
            println!(
                "deployed {} packet {} ({} bytes) into {}: base {}, adapter {}",
                compiled.kind_str(),
                compiled.packet_id,
                compiled.packet_size,
                cache.dir().display(),
                loaded.base,
                loaded.adapter.map_or("none".into(), |a| a.to_hex())
            );
        }
        Command::Inspect { .. } | Command::Run { .. } | Command::Eval { .. } => unreachable!(),
    }
    Ok(())
}

trait KindStr {
    fn kind_str(&self) -> &'static str;
}

impl KindStr for plasma_client::protocol::CompileResponse {
    fn kind_str(&self) -> &'static str {
        match self.kind {
            plasma_client::protocol::PolicyKind::Base => "base",
            plasma_client::protocol::PolicyKind::Adapter => "adapter",
        }
    }
}

fn train_request(
    agent: &str,
    task: &str,
    mode: &str,
    base_training: Option<String>,
    num_simulations: usize,
    lora_rank: Option<usize>,
) -> Result<TrainRequest> {
    Ok(TrainRequest {
        agent_id: agent.into(),
        task_name: task.into(),
        num_simulations,
        lora_rank,
        learning_rate: None,
        use_phantom_paths: true,
        mode: parse_mode(mode)?,
        base_training,
    })
}

/// Random-action experience of a reference environment, as one batch.
fn random_experience(
    env: &str,
    agent: &str,
    steps: usize,
    physics: &str,
    seed: u64,
) -> Result<ExperienceBatch> {
    Ok(ExperienceBatch {
        agent_id: agent.into(),
        task_name: env.into(),
        transitions: plasma_client::episodes::random_experience(
            env,
            &parse_physics(physics)?,
            steps,
            seed,
        )?,
    })
}

/// Progress bars of an agent's jobs until `job` ends (or forever without one).
async fn watch(client: &PlasmaClient, agent: &str, job: Option<&str>) -> Result<()> {
    let mut events = client.events(agent).await?;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {percent:>3}% {msg}")?
        .progress_chars("=> ");
    let mut by_job: std::collections::HashMap<String, ProgressBar> = Default::default();
    if let Some(id) = job
        && client.job(id).await?.job.status.is_terminal()
    {
        return Ok(());
    }
    while let Some(ev) = events.next_event().await? {
        let bar = by_job.entry(ev.job_id.clone()).or_insert_with(|| {
            let b = bars.add(ProgressBar::new(1000));
            b.set_style(style.clone());
            b.set_prefix(ev.job_id.clone());
            b
        });
        bar.set_position((ev.progress.clamp(0.0, 1.0) * 1000.0) as u64);
        let mut msg = format!(
            "{} {}",
            ev.status.as_str(),
            ev.phase.clone().unwrap_or_default()
        );
        if let Some(m) = &ev.message {
            msg.push_str(": ");
            msg.push_str(m);
        }
        bar.set_message(msg);
        if ev.status.is_terminal() {
            bar.finish();
            if job == Some(ev.job_id.as_str()) {
                if ev.status != JobStatus::Complete {
                    bail!("job {} ended {}", ev.job_id, ev.status.as_str());
                }
                break;
            }
        }
    }
    events.close().await;
    Ok(())
}

fn open_cache(dir: &Path, key: Option<PublicKey>) -> Result<Arc<PacketCache>> {
    let key_file = dir.join(PINNED_KEY_FILE);
    let pinned = match std::fs::read_to_string(&key_file) {
        Ok(text) => Some(PublicKey::from_hex(text.trim())?),
        Err(_) => None,
    };
    let key = match (pinned, key) {
        (Some(p), Some(k)) if p != k => bail!(
            "the server's key {} is not the key pinned in {}",
            k.to_hex(),
            key_file.display()
        ),
        (Some(p), _) => p,
        (None, Some(k)) => {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&key_file, k.to_hex())?;
            k
        }
        (None, None) => bail!("{} pins no key: deploy into it first", dir.display()),
    };
    Ok(Arc::new(PacketCache::open(dir, Verifier::pinned(key))?))
}

/// The runtime of `--packet [--adapter] --key` or of `--cache`.
fn load_runtime(args: &PacketArgs) -> Result<(Option<EdgePolicy>, Option<EdgeRuntime>)> {
    if let Some(dir) = &args.cache {
        let cache = open_cache(dir, None)?;
        let policy = EdgePolicy::resume(cache)?.context("the cache has nothing deployed")?;
        return Ok((Some(policy), None));
    }
    let file = args.packet.as_ref().context("give --packet or --cache")?;
    let key = PublicKey::from_hex(args.key.as_deref().context("--packet needs --key (hex)")?)?;
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let runtime = EdgeRuntime::load(&bytes, Verifier::pinned(key), Kernel::default())?;
    if let Some(a) = &args.adapter {
        runtime.apply_adapter(&std::fs::read(a).with_context(|| a.display().to_string())?)?;
    }
    Ok((None, Some(runtime)))
}

/// An actor for the packet of `args`, with what keeps its runtime alive.
fn actor_of(args: &PacketArgs) -> Result<(plasma_packets::Actor, Box<dyn std::any::Any>)> {
    let (policy, runtime) = load_runtime(args)?;
    let (actor, keep): (_, Box<dyn std::any::Any>) = match (policy, runtime) {
        (Some(p), _) => (p.actor(), Box::new(p)),
        (None, Some(r)) => (r.actor(), Box::new(r)),
        (None, None) => bail!("no policy"),
    };
    Ok((actor, keep))
}

fn serve_stdio(args: &PacketArgs) -> Result<()> {
    let (mut actor, _keep) = actor_of(args)?;
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > 1 << 16 {
            writeln!(out, r#"{{"error":"line longer than 65536 bytes"}}"#)?;
            out.flush()?;
            continue;
        }
        let reply = match serde_json::from_str::<Vec<f32>>(&line) {
            Ok(obs) => match actor.act(&obs) {
                Ok(a) => match a.to_owned() {
                    OwnedAction::Discrete(a) => serde_json::json!(a),
                    OwnedAction::Continuous(v) => serde_json::json!(v),
                },
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            },
            Err(e) => {
                serde_json::json!({ "error": format!("an observation is a JSON array of numbers: {e}") })
            }
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

fn eval(args: &PacketArgs, env: &str, episodes: usize, physics: &str, seed: u64) -> Result<()> {
    let (mut actor, _keep) = actor_of(args)?;
    let physics = parse_physics(physics)?;
    let start = Instant::now();
    let mut steps = 0usize;
    let returns = run_episodes(
        env,
        &physics,
        episodes,
        seed,
        |obs| {
            actor
                .act(obs)
                .map(|a| a.to_owned())
                .map_err(|e| plasma_client::ClientError::Invalid(e.to_string()))
        },
        |_| steps += 1,
    )?;
    let mean = returns.iter().sum::<f64>() / returns.len().max(1) as f64;
    print_json(&serde_json::json!({
        "env": env,
        "episodes": returns.len(),
        "mean_return": mean,
        "min_return": returns.iter().cloned().fold(f64::INFINITY, f64::min),
        "max_return": returns.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        "returns": returns,
        "steps": steps,
        "seconds": start.elapsed().as_secs_f64(),
    }))
}

fn inspect(file: &Path, key: Option<&str>) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let unverified = plasma_packets::decode_unverified(&bytes).context("not a valid packet")?;
    let mut refused = false;
    let signature = match key {
        Some(k) => match Packet::decode(&bytes, &Verifier::pinned(PublicKey::from_hex(k)?)) {
            Ok(v) => match v.signature() {
                SignatureStatus::Verified => "valid for the given key".to_owned(),
                other => format!("{other:?}"),
            },
            Err(e) => {
                refused = true;
                format!("REFUSED: {e}")
            }
        },
        None => format!("{:?} (not checked: give --key)", unverified.signature()),
    };
    let p = &unverified.packet;
    let (layers, base) = match &p.content {
        PacketContent::Base(b) => (
            b.layers
                .iter()
                .map(|l| format!("{}→{}", l.weights.cols, l.weights.rows))
                .collect::<Vec<_>>(),
            None,
        ),
        PacketContent::Adapter { base_digest, body } => (
            body.layers
                .iter()
                .map(|l| format!("layer {} rank {}", l.layer, body.rank))
                .collect(),
            Some(base_digest.to_hex()),
        ),
    };
    print_json(&serde_json::json!({
        "file": file.display().to_string(),
        "bytes": bytes.len(),
        "digest": unverified.digest.to_hex(),
        "kind": p.content.kind().as_str(),
        "base_digest": base,
        "layers": layers,
        "provenance": {
            "task": p.provenance.task,
            "agent_id": p.provenance.agent_id,
            "training_run": p.provenance.training_run,
            "created_unix_ms": p.provenance.created_unix_ms,
            "audit": format!("{:?}", p.provenance.audit),
            "audit_summary": p.provenance.audit_summary,
        },
        "signature": signature,
    }))?;
    if refused {
        // The report is printed either way; the exit status says the packet is not to be
        // trusted.
        bail!("the packet's signature is refused for the given key");
    }
    Ok(())
}
