//! A base policy and a LoRA adapter through the API, without the `Agent`: upload, train,
//! compile, download, verify and run the packets, evaluate them in the real environment
//! before and after a physics change.
//!
//! `cargo run --release -p recipes --bin lora_training -- --change gravity=50`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use plasma_client::episodes::parse_physics;
use plasma_client::protocol::{ExperienceBatch, TrainMode, TrainRequest};
use plasma_client::{EdgePolicy, PacketCache, Verifier};
use plasma_envs::Physics;
use recipes::{local_server, mean_return, random_experience};

#[derive(Parser, Debug)]
#[command(about = "Base policy and LoRA adapter through the API")]
struct Args {
    /// Server data directory (the packet cache goes under it).
    #[arg(long, default_value = "plasma-data-lora")]
    data: PathBuf,
    /// Real transitions for the base.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Real transitions of the changed system for the adapter.
    #[arg(long, default_value_t = 1000)]
    adapt_steps: usize,
    /// The physics change, `name=value[,…]`.
    #[arg(long, default_value = "gravity=50")]
    change: String,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// Evaluation episodes.
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Small compute settings.
    #[arg(long)]
    quick: bool,
}

async fn upload(
    client: &plasma_client::PlasmaClient,
    task: &str,
    physics: &Physics,
    steps: usize,
    seed: u64,
) -> Result<()> {
    let transitions = random_experience("CartPole-v1", physics, steps, seed)?;
    for chunk in transitions.chunks(4096) {
        client
            .upload_experience(&ExperienceBatch {
                agent_id: "lora-agent".into(),
                task_name: task.into(),
                transitions: chunk.to_vec(),
            })
            .await?;
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let changed = parse_physics(&args.change)?;
    let (server, client) = local_server(&args.data.join("server"), args.quick).await?;
    let key = client.signing_key().await?;
    let cache = Arc::new(PacketCache::open(
        args.data.join("cache"),
        Verifier::pinned(key),
    )?);
    let timeout = Duration::from_secs(3600);
    let train = |task: &str, mode, base: Option<String>| TrainRequest {
        agent_id: "lora-agent".into(),
        task_name: task.into(),
        num_simulations: 1000,
        lora_rank: Some(args.rank),
        learning_rate: None,
        use_phantom_paths: true,
        mode,
        base_training: base,
    };

    upload(&client, "CartPole-v1", &Physics::new(), args.steps, 1).await?;
    let base = client
        .train_and_deploy(&train("CartPole-v1", TrainMode::Base, None), true, timeout)
        .await?;
    let policy = EdgePolicy::load_base(cache.clone(), &base.packet)?;
    let base_default = mean_return(&policy, &Physics::new(), args.episodes)?;
    let base_changed = mean_return(&policy, &changed, args.episodes)?;
    println!(
        "base packet {} B: {base_default:.1} on the default physics, {base_changed:.1} with {}",
        base.compiled.packet_size, args.change
    );

    let condition = format!("CartPole-v1.{}", args.change.replace(['=', ','], "-"));
    let mut spec = client.task("CartPole-v1").await?.spec;
    spec.name = condition.clone();
    client.register_task(&spec).await?;
    upload(&client, &condition, &changed, args.adapt_steps, 2).await?;
    let adapter = client
        .train_and_deploy(
            &train(
                &condition,
                TrainMode::Adapter,
                Some(base.training.id.clone()),
            ),
            true,
            timeout,
        )
        .await?;
    policy.apply_adapter(&adapter.packet)?;
    let adapted = mean_return(&policy, &changed, args.episodes)?;
    println!(
        "adapter packet {} B (rank {}): {adapted:.1} with {}",
        adapter.compiled.packet_size, args.rank, args.change
    );
    let loaded = policy.loaded();
    println!(
        "running base {} + adapter {}",
        loaded.base,
        loaded.adapter.context("adapter applied")?
    );
    server.shutdown().await;
    Ok(())
}
