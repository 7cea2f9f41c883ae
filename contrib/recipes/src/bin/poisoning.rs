//! What one poisoning agent costs a shared task, and what leaving it out recovers: four
//! honest agents upload real CartPole-v1 experience (random actions, different seeds) and
//! a fifth uploads real transitions whose next observations are taken from other ones of
//! its own (inside the observation bounds, so upload checks pass). The same data goes to
//! three servers: without the poisoner, with it (flagged, but used) and with
//! `exclude_flagged_agents` on. Each trains a base policy; its packet is run in the real
//! environment.
//!
//! `cargo run --release -p recipes --bin poisoning [-- --quick --steps 400 --episodes 20]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use plasma_client::protocol::{ExperienceBatch, TrainMode, TrainRequest, Transition};
use plasma_client::{EdgePolicy, PacketCache, Verifier};
use plasma_envs::Physics;
use recipes::{local_server_with, mean_return, random_experience};

#[derive(Parser, Debug)]
#[command(about = "The return of a shared base policy with and without a poisoning agent")]
struct Args {
    /// Data directory (one server directory per case under it).
    #[arg(long, default_value = "plasma-data-poisoning")]
    data: PathBuf,
    /// Real transitions per agent.
    #[arg(long, default_value_t = 500)]
    steps: usize,
    /// Evaluation episodes in the real environment.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// Small compute settings.
    #[arg(long)]
    quick: bool,
}

/// The poisoner's data: real transitions, each given the next observation of another.
fn poison(mut transitions: Vec<Transition>) -> Vec<Transition> {
    let next: Vec<Vec<f32>> = transitions.iter().map(|t| t.next_obs.clone()).collect();
    for (i, t) in transitions.iter_mut().enumerate() {
        t.next_obs = next[(i + 97) % next.len()].clone();
    }
    transitions
}

struct Case {
    name: &'static str,
    poisoner: bool,
    exclude: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cases = [
        Case {
            name: "honest agents only",
            poisoner: false,
            exclude: false,
        },
        Case {
            name: "with the poisoner (flagged, used)",
            poisoner: true,
            exclude: false,
        },
        Case {
            name: "with the poisoner, excluded",
            poisoner: true,
            exclude: true,
        },
    ];
    let physics = Physics::new();
    let mut rows = vec![];
    for (k, case) in cases.iter().enumerate() {
        let dir = args.data.join(format!("case-{k}"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!("[compute]\nexclude_flagged_agents = {}\n", case.exclude),
        )?;
        let (server, client) =
            local_server_with(&dir.join("server"), args.quick, Some(&config)).await?;
        for a in 0..5u64 {
            if a == 4 && !case.poisoner {
                continue;
            }
            let agent = if a == 4 {
                "poisoner".to_owned()
            } else {
                format!("honest-{a}")
            };
            let real = random_experience("CartPole-v1", &physics, args.steps, 1 + a)?;
            let transitions = if a == 4 { poison(real) } else { real };
            client
                .upload_experience(&ExperienceBatch {
                    agent_id: agent,
                    task_name: "CartPole-v1".into(),
                    transitions,
                })
                .await?;
        }
        let request = TrainRequest {
            agent_id: "honest-0".into(),
            task_name: "CartPole-v1".into(),
            num_simulations: 1000,
            lora_rank: None,
            learning_rate: None,
            use_phantom_paths: true,
            mode: TrainMode::Base,
            base_training: None,
        };
        let deployed = client
            .train_and_deploy(&request, true, Duration::from_secs(3600))
            .await?;
        let fit = deployed
            .training
            .result
            .as_ref()
            .and_then(|r| r.training())
            .map(|t| t.world_model.clone())
            .context("the training run has no training result")?;
        let flagged = fit
            .agents
            .as_ref()
            .map(|a| a.flagged.clone())
            .unwrap_or_default();
        let key = client.signing_key().await?;
        let cache = Arc::new(PacketCache::open(dir.join("cache"), Verifier::pinned(key))?);
        let policy = EdgePolicy::load_base(cache, &deployed.packet)?;
        let mean = mean_return(&policy, &physics, args.episodes)?;
        println!(
            "{:<36} fitted on {:>5} transitions, flagged {flagged:?}, return {mean:.1} over {} episodes",
            case.name, fit.transitions, args.episodes
        );
        rows.push((case.name, mean));
        server.shutdown().await;
    }
    println!("\n| case | mean return |\n|---|---|");
    for (name, mean) in rows {
        println!("| {name} | {mean:.1} |");
    }
    Ok(())
}
