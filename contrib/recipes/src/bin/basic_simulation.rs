//! Phantom paths on the server: upload real CartPole-v1 experience, ask for an audited
//! simulation, and read what the planner-steered paths did and what the auditor said.
//!
//! `cargo run --release -p recipes --bin basic_simulation -- --steps 1000 --trajectories 64`

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use plasma_client::protocol::{ExperienceBatch, SimulateRequest};
use plasma_envs::Physics;
use recipes::{local_server, random_experience};

#[derive(Parser, Debug)]
#[command(about = "Upload experience, simulate phantom paths, read the audit")]
struct Args {
    /// Server data directory.
    #[arg(long, default_value = "plasma-data-sim")]
    data: PathBuf,
    /// Real random-action transitions uploaded.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Phantom paths.
    #[arg(long, default_value_t = 64)]
    trajectories: usize,
    /// Small compute settings.
    #[arg(long)]
    quick: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (server, client) = local_server(&args.data, args.quick).await?;
    let batch = ExperienceBatch {
        agent_id: "sim-agent".into(),
        task_name: "CartPole-v1".into(),
        transitions: random_experience("CartPole-v1", &Physics::new(), args.steps, 1)?,
    };
    let accepted = client.upload_experience(&batch).await?;
    println!(
        "uploaded {} transitions ({} stored)",
        accepted.accepted, accepted.total_transitions
    );
    let sim = client
        .request_simulation(&SimulateRequest {
            agent_id: "sim-agent".into(),
            task_description: "CartPole-v1".into(),
            num_trajectories: args.trajectories,
            adversarial_audit: true,
            horizon: None,
        })
        .await?;
    println!("{}", sim.message);
    let job = client
        .wait_for_simulation(&sim.simulation_id, Duration::from_secs(3600))
        .await?;
    let result = job
        .result
        .as_ref()
        .and_then(|r| r.simulation())
        .context("the simulation has no result")?;
    println!(
        "{} paths of {} steps: mean imagined return {:.1}, survival {:.2}, audit {}",
        result.paths,
        result.horizon,
        result.mean_return,
        result.success_probability,
        match &result.audit {
            Some(a) if a.approved => "approved".to_owned(),
            Some(a) => format!("rejected ({})", a.reasons.join("; ")),
            None => "not run".to_owned(),
        }
    );
    println!("{}", serde_json::to_string_pretty(result)?);
    server.shutdown().await;
    Ok(())
}
