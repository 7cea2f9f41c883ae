//! The edge half of Plasma's loop, end to end on real files and a real environment:
//! sign and store a policy as an instruction packet, verify and load it, act in
//! CartPole-v1, change the physics, hot-swap a LoRA adapter, refuse a tampered packet,
//! roll back — and report returns, packet sizes and decision latency.
//!
//! The policies here are hand-written linear controllers (`push right when
//! θ + k·θ̇ > 0`), written as packets: this recipe exercises the packet path, not learning.
//! Learned policies replace them when the world model and distillation land.
//!
//! `cargo run --release -p recipes --bin edge_demo -- --episodes 20`

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use plasma_envs::{ActionRef, Env, Physics, make_with};
use plasma_packets::model::{ActionSpace, Activation, AuditStatus, ObsNorm, Provenance};
use plasma_packets::{
    Action, Digest, EdgeRuntime, FloatLayer, FloatLora, FloatLoraLayer, FloatPolicy, Kernel,
    Packet, PacketContent, PacketSigner, Verifier, decode_unverified,
};

#[derive(Parser, Debug)]
#[command(about = "Packets end to end: sign, store, verify, act, adapt, hot-swap, roll back")]
struct Args {
    /// Episodes per evaluation.
    #[arg(long, default_value_t = 20)]
    episodes: u64,
    /// Data directory (signing key, packets).
    #[arg(long, default_value = "data")]
    data: PathBuf,
    /// Pole length of the changed physics (Gymnasium's default is 0.5).
    #[arg(long, default_value_t = 0.15)]
    changed_length: f64,
}

const TASK: &str = "CartPole-v1";

fn provenance(run: &str) -> Provenance {
    Provenance {
        task: TASK.into(),
        agent_id: "edge-demo".into(),
        training_run: run.into(),
        created_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        audit: AuditStatus::Unaudited,
        audit_summary: "hand-written controller, not audited".into(),
    }
}

/// Logits `[0, θ + k·θ̇]`: action 1 (push right) when the pole leans or falls right.
fn controller(k: f32) -> FloatPolicy {
    FloatPolicy {
        obs_norm: ObsNorm::identity(4),
        layers: vec![FloatLayer {
            in_dim: 4,
            out_dim: 2,
            weights: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, k],
            bias: vec![0.0, 0.0],
            activation: Activation::Identity,
        }],
        action_space: ActionSpace::Discrete { n: 2 },
    }
}

/// Writes `bytes` under its digest, atomically (temp file, fsync, rename).
fn store(dir: &Path, bytes: &[u8]) -> Result<(Digest, PathBuf)> {
    let digest = decode_unverified(bytes)?.digest;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{digest}.plasma"));
    let tmp = dir.join(format!(".{digest}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok((digest, path))
}

struct Eval {
    mean_return: f64,
    steps: u64,
    latencies_ns: Vec<u64>,
}

fn evaluate(rt: &EdgeRuntime, physics: &Physics, episodes: u64) -> Result<Eval> {
    let mut env = make_with(TASK, physics)?;
    let mut actor = rt.actor();
    let mut total = 0.0;
    let mut steps = 0;
    let mut latencies_ns = Vec::new();
    for seed in 0..episodes {
        let mut obs = env.reset(Some(1000 + seed));
        loop {
            let t = Instant::now();
            let action = actor.act(&obs)?;
            latencies_ns.push(t.elapsed().as_nanos() as u64);
            let Action::Discrete(a) = action else {
                bail!("CartPole needs a discrete action")
            };
            let step = env.step(ActionRef::Discrete(a))?;
            total += step.reward;
            steps += 1;
            let done = step.done();
            obs = step.obs;
            if done {
                break;
            }
        }
    }
    Ok(Eval {
        mean_return: total / episodes as f64,
        steps,
        latencies_ns,
    })
}

fn percentile(v: &mut [u64], q: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * q) as usize]
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let packets_dir = args.data.join("packets");
    let signer =
        PacketSigner::load_or_create(&args.data.join("keys/signing.key")).context("signing key")?;
    let key = signer.public_key();
    println!(
        "signing key  {key}  ({})",
        args.data.join("keys/signing.key").display()
    );

    // 1. The base policy as a signed packet on disk, then loaded back as an agent would.
    let base_policy = controller(1.0);
    let base_bytes = Packet {
        provenance: provenance("hand-written k=1.0"),
        content: PacketContent::Base(base_policy.quantize().map_err(anyhow::Error::msg)?),
    }
    .encode(Some(&signer), 19)?;
    let (base_digest, base_path) = store(&packets_dir, &base_bytes)?;
    println!(
        "base packet  {} bytes  {}",
        base_bytes.len(),
        base_path.display()
    );
    let t = Instant::now();
    let rt = EdgeRuntime::load(
        &std::fs::read(&base_path)?,
        Verifier::pinned(key),
        Kernel::Merged,
    )?;
    let load_us = t.elapsed().as_secs_f64() * 1e6;

    let default_physics = Physics::new();
    let changed = Physics::new().with("length", args.changed_length);
    let mut rows = Vec::new();
    let mut latencies = Vec::new();
    let mut record = |name: &str, physics_name: &str, e: Eval| {
        println!(
            "  {name:<34} on {physics_name:<16} mean return {:>6.1}",
            e.mean_return
        );
        rows.push((
            name.to_string(),
            physics_name.to_string(),
            e.mean_return,
            e.steps,
        ));
        latencies.extend(e.latencies_ns);
    };
    let changed_name = format!("pole {} m", args.changed_length);
    record(
        "base",
        "default physics",
        evaluate(&rt, &default_physics, args.episodes)?,
    );
    record(
        "base",
        &changed_name,
        evaluate(&rt, &changed, args.episodes)?,
    );

    // 2. A rank-1 adapter that halves the θ̇ gain for the short pole: ΔW = B·A with
    //    A = e_θ̇ (1×4) and B = [0, −0.5]ᵀ (2×1).
    let lora = FloatLora {
        rank: 1,
        alpha: 1.0,
        layers: vec![FloatLoraLayer {
            layer: 0,
            a: vec![0.0, 0.0, 0.0, 1.0],
            b: vec![0.0, -0.5],
        }],
    };
    let adapter_bytes = Packet {
        provenance: provenance("hand-written adapter k=0.5"),
        content: PacketContent::Adapter {
            base_digest,
            body: lora.quantize(&base_policy).map_err(anyhow::Error::msg)?,
        },
    }
    .encode(Some(&signer), 19)?;
    let (_, adapter_path) = store(&packets_dir, &adapter_bytes)?;
    println!(
        "adapter      {} bytes  {}",
        adapter_bytes.len(),
        adapter_path.display()
    );

    // 3. A tampered copy is refused; the genuine one is hot-swapped in.
    let mut tampered = adapter_bytes.clone();
    let last = tampered.len() - 100;
    tampered[last] ^= 0x01;
    match rt.apply_adapter(&tampered) {
        Ok(_) => bail!("a tampered adapter was accepted"),
        Err(e) => println!("tampered adapter refused: {e}"),
    }
    rt.apply_adapter(&std::fs::read(&adapter_path)?)?;
    record(
        "base + adapter",
        &changed_name,
        evaluate(&rt, &changed, args.episodes)?,
    );

    // 4. Roll back to the plain base.
    rt.rollback()?;
    record(
        "after rollback",
        &changed_name,
        evaluate(&rt, &changed, args.episodes)?,
    );

    let p50 = percentile(&mut latencies, 0.5);
    let p99 = percentile(&mut latencies, 0.99);
    println!();
    println!(
        "| policy | physics | mean return ({} episodes) | real steps |",
        args.episodes
    );
    println!("|---|---|---|---|");
    for (name, physics, ret, steps) in &rows {
        println!("| {name} | {physics} | {ret:.1} | {steps} |");
    }
    println!();
    println!(
        "packets: base {} B, adapter {} B; decode + verify + load {load_us:.0} µs; \
         decision latency p50 {p50} ns, p99 {p99} ns over {} decisions (timer included)",
        base_bytes.len(),
        adapter_bytes.len(),
        latencies.len()
    );
    Ok(())
}
