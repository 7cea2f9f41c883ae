//! From real experience to a deployed int8 packet, and adaptation by LoRA — the
//! distillation targets, end to end:
//!
//! 1. learn: model-predictive control in the real environment collects the real steps and
//!    fits the world model (`mpc::learn`; the real-step budget is the environment's MPC one);
//! 2. distil: the recipe the server's training jobs use (`plasma_world_model::recipe`: a
//!    terminal value, then DAgger in imagination) turns its teacher into a small policy,
//!    the auditor (calibrated on held-out real episodes) leaving out the paths it rejects;
//! 3. deploy: the policy becomes a signed int8 base packet, loaded by the edge runtime and
//!    evaluated in the real environment;
//! 4. with `--change name=value` (repeatable; plasma-envs physics names): the base packet
//!    is evaluated on the changed system; the model is refitted on `--adapt-steps` real
//!    steps of it, a LoRA adapter is distilled on top of the frozen base and deployed as an
//!    adapter packet; a policy is trained from scratch on the changed system with the full
//!    budget for comparison.
//!
//! `--base-dir DIR` keeps the base (world model, base packet, its measured return) in DIR
//! and reuses it on later runs, so that probes and adaptation experiments on one base do
//! not learn it again. Adapters are always trained on top of the base packet's weights
//! (dequantized), the network that the edge runs.
//!
//! ```text
//! cargo run --release -p plasma-world-model --example distill -- --env CartPole-v1
//! cargo run --release -p plasma-world-model --example distill -- --env Pendulum-v1
//! cargo run --release -p plasma-world-model --example distill -- --env CartPole-v1 --change length=2.0
//! ```

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_envs::{Physics, make_with};
use plasma_packets::codec::{Packet, PacketContent};
use plasma_packets::model::{AuditStatus, Provenance};
use plasma_packets::runtime::{EdgeRuntime, Kernel, OwnedAction};
use plasma_packets::signing::{PacketSigner, Verifier};
use plasma_protocol::ActionRef;
use plasma_world_model::audit::{AuditConfig, Calibration};
use plasma_world_model::mpc::{Learned, MpcConfig, learn};
use plasma_world_model::{
    Dataset, LoraConfig, PolicyConfig, PolicyModel, RecipeConfig, RecipeEvent, WorldModel,
    distil_policy,
};

#[derive(Parser, Debug)]
#[command(about = "Distil a planner into an int8 packet policy, then adapt it with LoRA")]
struct Args {
    /// Environment id.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluation episodes of each packet in the real environment.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// Real steps for learning from scratch (default: the environment's MPC budget).
    #[arg(long)]
    max_steps: Option<usize>,
    /// DAgger rounds after the first.
    #[arg(long)]
    iterations: Option<usize>,
    /// A physics change to adapt to, `name=value[,name=value…]`; repeat the flag for
    /// several experiments on the same base.
    #[arg(long, value_parser = parse_changes)]
    change: Vec<Vec<(String, f64)>>,
    /// Physics changes under which to evaluate the base packet only,
    /// `name=value[,name=value…]` (repeatable; each evaluated alone) — to find changes that
    /// hurt it.
    #[arg(long, value_parser = parse_changes)]
    probe: Vec<Vec<(String, f64)>>,
    /// Real steps of the changed system the adapter may use.
    #[arg(long, default_value_t = 1000)]
    adapt_steps: usize,
    /// LoRA rank.
    #[arg(long, default_value_t = 4)]
    rank: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 8.0)]
    alpha: f32,
    /// Skip the from-scratch comparison on the changed system.
    #[arg(long)]
    no_scratch: bool,
    /// Keep the base here, and reuse it when it is already there (made with the same
    /// environment, seed and budget: not checked — use one directory per base).
    #[arg(long)]
    base_dir: Option<PathBuf>,
}

fn parse_change(s: &str) -> std::result::Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or("expected name=value")?;
    let v: f64 = v.parse().map_err(|e| format!("{v}: {e}"))?;
    Ok((k.to_owned(), v))
}

fn parse_changes(s: &str) -> std::result::Result<Vec<(String, f64)>, String> {
    s.split(',').map(parse_change).collect()
}

fn log(line: &str) {
    eprintln!("{line}");
}

/// The shared recipe ([`RecipeConfig::default`], as the server's training jobs use it),
/// seeded, with `--iterations` DAgger rounds when given.
fn recipe_config(seed: u64, iterations: Option<usize>) -> RecipeConfig {
    let mut c = RecipeConfig::default();
    c.distill.seed = seed;
    if let Some(i) = iterations {
        c.distill.iterations = i;
    }
    c
}

/// The auditor's calibration: the last fifth of the data as the held-out part.
fn calibration(model: &dyn WorldModel, data: &Dataset) -> Result<Calibration> {
    let n = data.len();
    let cut = n - n / 5;
    let train = data.subset(&(0..cut).collect::<Vec<_>>());
    let holdout = data.subset(&(cut..n).collect::<Vec<_>>());
    Ok(Calibration::fit(
        model,
        &train,
        &holdout,
        &AuditConfig::default(),
    )?)
}

/// The recipe from `learned`'s model and data into `policy`.
fn distil(learned: &Learned, policy: PolicyModel, recipe: &RecipeConfig) -> Result<PolicyModel> {
    let auditor = calibration(learned.agent.model.as_ref(), &learned.data)?;
    let (policy, report) = distil_policy(
        learned.agent.model.as_ref(),
        learned.data.observations(),
        policy,
        recipe,
        Some(&auditor),
        &mut |event| {
            match event {
                RecipeEvent::TerminalValue(v) => log(&format!(
                    "terminal value: mean {:.1}, regression mse {:.3}, {:.1} s",
                    v.mean_value, v.last_loss, v.seconds
                )),
                RecipeEvent::Round(e) => log(&format!(
                    "distil round {}/{}: {} labels, {} of {} paths rejected, imagined return \
                     {}, loss {:.4}, accuracy {:?}, mean abs error {:?}, labelling {:.1} s",
                    e.iteration + 1,
                    e.iterations,
                    e.labels,
                    e.rejected_paths,
                    e.paths,
                    e.imagined_return
                        .map_or("-".to_owned(), |r| format!("{r:.1}")),
                    e.loss,
                    e.accuracy,
                    e.mean_abs_error,
                    e.label_seconds
                )),
            }
            ControlFlow::Continue(())
        },
    )?;
    log(&format!(
        "distilled in {:.1} s ({} trainable values)",
        report.seconds,
        policy.trainable_params()
    ));
    Ok(policy)
}

fn provenance(env: &str, run: &str) -> Provenance {
    Provenance {
        task: env.to_owned(),
        agent_id: "example".into(),
        training_run: run.into(),
        created_unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        audit: AuditStatus::Unaudited,
        audit_summary: String::new(),
    }
}

/// Mean return of the runtime's policy over `episodes` real episodes (seeds 50,000 + i).
fn evaluate(runtime: &EdgeRuntime, env: &str, physics: &Physics, episodes: usize) -> Result<f64> {
    let mut actor = runtime.actor();
    let mut env = make_with(env, physics)?;
    let mut total = 0.0;
    for i in 0..episodes {
        let mut obs = env.reset(Some(50_000 + i as u64));
        loop {
            let step = match actor.act(&obs)?.to_owned() {
                OwnedAction::Discrete(a) => env.step(ActionRef::Discrete(a))?,
                OwnedAction::Continuous(v) => env.step(ActionRef::Continuous(&v))?,
            };
            total += step.reward;
            if step.done() {
                break;
            }
            obs = step.obs;
        }
    }
    Ok(total / episodes.max(1) as f64)
}

/// Learns from scratch with `config`, distils a base policy and deploys it.
fn base_from_scratch(
    config: &MpcConfig,
    settings: &RecipeConfig,
    signer: &PacketSigner,
    episodes: usize,
) -> Result<(Learned, PolicyModel, Vec<u8>, f64)> {
    let learned = learn(config, None, &mut |l| log(l))?;
    log(&format!(
        "learned from {} real steps in {:.1} s ({} fits)",
        learned.report.real_steps, learned.report.learning_seconds, learned.report.fits
    ));
    let spec = learned.agent.model.spec().clone();
    let states = learned.data.observations();
    let policy = PolicyModel::for_space(
        PolicyConfig {
            seed: config.seed,
            ..PolicyConfig::default()
        },
        states,
        spec.observation_space.dim(),
        &spec.action_space,
        learned.agent.model.device(),
    )?;
    let policy = distil(&learned, policy, settings)?;
    let packet = policy.base_packet(provenance(&config.env, "base"), signer, 19)?;
    let runtime = EdgeRuntime::load(
        &packet.bytes,
        Verifier::pinned(signer.public_key()),
        Kernel::default(),
    )?;
    let mean = evaluate(&runtime, &config.env, &config.physics(), episodes)?;
    log(&format!(
        "base packet: {} bytes, real return {mean:.1} over {episodes} episodes",
        packet.bytes.len()
    ));
    Ok((learned, policy, packet.bytes, mean))
}

/// One adaptation experiment: the base packet on the changed system, an adapter from
/// `--adapt-steps` real steps of it, and (unless skipped) a policy from scratch.
#[allow(clippy::too_many_arguments)]
fn adapt(
    args: &Args,
    config: &MpcConfig,
    settings: &RecipeConfig,
    signer: &PacketSigner,
    change: &[(String, f64)],
    model: Box<dyn WorldModel>,
    policy: &PolicyModel,
    base_bytes: &[u8],
    base_return: f64,
) -> Result<()> {
    let mut changed = config.clone();
    changed.physics = change.to_vec();
    let runtime = EdgeRuntime::load(
        base_bytes,
        Verifier::pinned(signer.public_key()),
        Kernel::default(),
    )?;
    let base_on_changed = evaluate(&runtime, &args.env, &changed.physics(), args.episodes)?;
    println!(
        "changed physics {change:?}: the base packet averages {base_on_changed:.1} (default \
         physics: {base_return:.1}, a {:.0}% loss)",
        100.0 * (base_return - base_on_changed) / base_return.abs()
    );
    let mut adapt = changed.clone();
    adapt.max_real_steps = args.adapt_steps;
    adapt.random_steps = 0;
    // The base model is wrong about the changed system: refit it early and often.
    adapt.refit_every = (args.adapt_steps / 10).max(1);
    let adapted = learn(&adapt, Some(model), &mut |l| log(l))?;
    let lora = policy.with_lora(&LoraConfig {
        rank: args.rank,
        alpha: args.alpha,
        seed: args.seed,
        ..LoraConfig::default()
    })?;
    let base_digest = runtime.loaded().base;
    let lora = distil(&adapted, lora, settings)?;
    let adapter = lora.adapter_packet(base_digest, provenance(&args.env, "adapter"), signer, 19)?;
    runtime
        .apply_adapter(&adapter.bytes)
        .context("the edge runtime refused the adapter packet")?;
    let adapted_return = evaluate(&runtime, &args.env, &changed.physics(), args.episodes)?;
    println!(
        "changed physics {change:?}: adapter packet ({} bytes, rank {}, {} real steps of the \
         changed system) averages {adapted_return:.1}",
        adapter.bytes.len(),
        args.rank,
        adapted.report.real_steps
    );
    if args.no_scratch {
        return Ok(());
    }
    let (_, _, scratch_bytes, scratch_return) =
        base_from_scratch(&changed, settings, signer, args.episodes)?;
    if scratch_return.abs() <= f64::EPSILON {
        bail!("the from-scratch policy's return is 0");
    }
    // Positive returns: the ratio; negative ones (Pendulum's costs): the inverse ratio.
    let recovered = if scratch_return > 0.0 {
        adapted_return / scratch_return
    } else {
        scratch_return / adapted_return
    };
    println!(
        "changed physics {change:?}: from scratch ({} bytes, {} real steps) averages \
         {scratch_return:.1}; the adapter recovers {:.1}% of it",
        scratch_bytes.len(),
        changed.max_real_steps,
        100.0 * recovered
    );
    Ok(())
}

/// A base ready for probes and adaptation: its world model on disk, its packet, and the
/// packet's measured return on the unchanged system.
struct Base {
    model_dir: PathBuf,
    packet: Vec<u8>,
    mean: f64,
    real_steps: usize,
}

const BASE_PACKET: &str = "base.packet";
const BASE_FIGURES: &str = "base.json";

fn save_base(dir: &Path, learned: &Learned, packet: &[u8], mean: f64) -> Result<Base> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let model_dir = dir.join("model");
    learned.agent.model.save(&model_dir)?;
    let figures = serde_json::json!({ "mean": mean, "real_steps": learned.report.real_steps });
    std::fs::write(dir.join(BASE_FIGURES), figures.to_string())?;
    // The packet last: its presence says the base is complete.
    std::fs::write(dir.join(BASE_PACKET), packet)?;
    Ok(Base {
        model_dir,
        packet: packet.to_vec(),
        mean,
        real_steps: learned.report.real_steps,
    })
}

fn load_base(dir: &Path) -> Result<Base> {
    let packet = std::fs::read(dir.join(BASE_PACKET))?;
    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(BASE_FIGURES))?)?;
    let (Some(mean), Some(real_steps)) = (figures["mean"].as_f64(), figures["real_steps"].as_u64())
    else {
        bail!(
            "{} lacks mean or real_steps",
            dir.join(BASE_FIGURES).display()
        );
    };
    Ok(Base {
        model_dir: dir.join("model"),
        packet,
        mean,
        real_steps: real_steps as usize,
    })
}

/// The base packet's network (dequantized) as a trainable policy, for adapters on top.
fn policy_of_packet(
    packet: &[u8],
    signer: &PacketSigner,
    device: &plasma_world_model::burn::tensor::Device,
) -> Result<PolicyModel> {
    let decoded = Packet::decode(packet, &Verifier::pinned(signer.public_key()))?;
    let PacketContent::Base(body) = decoded.packet.content else {
        bail!("not a base packet");
    };
    Ok(PolicyModel::from_float_policy(&body.dequantize(), device)?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut config = MpcConfig::for_env(&args.env);
    config.seed = args.seed;
    config.eval_episodes = 0;
    if let Some(v) = args.max_steps {
        config.max_real_steps = v;
    }
    let settings = recipe_config(args.seed, args.iterations);
    let signer = PacketSigner::from_seed(&[7; 32]);

    let kept = args
        .base_dir
        .as_ref()
        .filter(|dir| dir.join(BASE_PACKET).is_file());
    let (base, temporary) = match kept {
        Some(dir) => {
            let base = load_base(dir)?;
            log(&format!("base reused from {}", dir.display()));
            (base, None)
        }
        None => {
            let (learned, _, bytes, mean) =
                base_from_scratch(&config, &settings, &signer, args.episodes)?;
            let dir = args.base_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("plasma-distill-{}", std::process::id()))
            });
            let base = save_base(&dir, &learned, &bytes, mean)?;
            (base, args.base_dir.is_none().then_some(dir))
        }
    };
    println!(
        "{}: base packet ({} bytes) averages {:.1} over {} real episodes with {} real steps \
         for learning",
        args.env,
        base.packet.len(),
        base.mean,
        args.episodes,
        base.real_steps
    );
    let result = probe_and_adapt(&args, &config, &settings, &signer, &base);
    if let Some(dir) = temporary {
        let _ = std::fs::remove_dir_all(dir);
    }
    result?;
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The probes, then one adaptation experiment per `--change`, each starting from the base.
fn probe_and_adapt(
    args: &Args,
    config: &MpcConfig,
    settings: &RecipeConfig,
    signer: &PacketSigner,
    base: &Base,
) -> Result<()> {
    if !args.probe.is_empty() {
        let runtime = EdgeRuntime::load(
            &base.packet,
            Verifier::pinned(signer.public_key()),
            Kernel::default(),
        )?;
        for change in &args.probe {
            let physics: Physics = change.iter().cloned().collect();
            let r = evaluate(&runtime, &args.env, &physics, args.episodes)?;
            println!(
                "probe {change:?}: the base packet averages {r:.1} ({:+.0}%)",
                100.0 * (r - base.mean) / base.mean.abs()
            );
        }
    }
    let device = plasma_world_model::parse_device(&config.device)?;
    for change in &args.change {
        let model = plasma_world_model::registry::load(&base.model_dir, &device)?;
        let policy = policy_of_packet(&base.packet, signer, model.device())?;
        adapt(
            args,
            config,
            settings,
            signer,
            change,
            model,
            &policy,
            &base.packet,
            base.mean,
        )?;
    }
    Ok(())
}
