//! Throughput of phantom paths: imagined transitions per second of batched rollouts of the
//! default ensemble, and the GFLOP/s they reach beside a large matmul's on the same
//! backend (the ceiling), measured in the same run.
//!
//! ```text
//! cargo run --release -p plasma-world-model --example bench -- --paths 5000 --horizon 25
//! ```

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use plasma_world_model::burn::tensor::{Tensor, TensorData};
use plasma_world_model::ensemble::Ensemble;
use plasma_world_model::rollout::{ActionSequences, Driver, RolloutOptions, start_states};
use plasma_world_model::{EnsembleConfig, WorldModel, parse_device};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Parser, Debug)]
#[command(about = "Imagined transitions per second of the default ensemble")]
struct Args {
    /// Environment whose task shapes the model (observation and action widths).
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Paths per rollout.
    #[arg(long, default_value_t = 5000)]
    paths: usize,
    /// Steps per path.
    #[arg(long, default_value_t = 25)]
    horizon: usize,
    /// Timed rollouts (after one warm-up).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Ensemble members (default: the crate's default).
    #[arg(long)]
    members: Option<usize>,
    /// Hidden widths, comma-separated (default: the crate's default).
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Also compute per-step member disagreement (E forward passes per step).
    #[arg(long)]
    uncertainty: bool,
    /// Device: cpu / flex / wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Side of the square matmul measured as the ceiling.
    #[arg(long, default_value_t = 2048)]
    matmul: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = parse_device(&args.device)?;
    let spec = plasma_envs::task_spec(&args.env)?;
    let mut config = EnsembleConfig::default();
    if let Some(m) = args.members {
        config.members = m;
    }
    if let Some(h) = &args.hidden {
        config.hidden = h.clone();
    }
    let model = Ensemble::new(config.clone(), spec.clone(), device.clone())?;
    let obs_dim = spec.observation_space.dim();
    let discrete = model.codec().is_discrete();
    let a_dim = model.codec().encoded_dim();
    let mut rng = SmallRng::seed_from_u64(0);
    let starts: Vec<f32> = (0..args.paths * obs_dim)
        .map(|_| rng.random_range(-0.05..0.05))
        .collect();
    let start = start_states(&starts, obs_dim, &device)?;
    let actions: Vec<f32> = (0..args.horizon * args.paths)
        .flat_map(|_| {
            let k = rng.random_range(0..a_dim);
            (0..a_dim).map(move |j| if discrete { f32::from(j == k) } else { 0.5 })
        })
        .collect();
    let actions = ActionSequences::EncodedStepMajor(Tensor::from_data(
        TensorData::new(actions, [args.horizon, args.paths, a_dim]),
        &device,
    ));
    let options = RolloutOptions {
        record: false,
        uncertainty: args.uncertainty,
        ..RolloutOptions::default()
    };
    let run = || -> Result<()> {
        let t = model.rollout(
            start.clone(),
            Driver::Actions(&actions),
            args.horizon,
            &options,
        )?;
        t.returns_vec()?;
        Ok(())
    };
    run()?;
    let t0 = Instant::now();
    for _ in 0..args.repeats {
        run()?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let transitions = (args.paths * args.horizon * args.repeats) as f64;
    let rate = transitions / secs;
    let forward_rows = if args.uncertainty {
        config.members as f64
    } else {
        1.0
    };
    let flops_per_transition = 2.0 * model.net().macs_per_row() as f64 * forward_rows;
    println!(
        "ensemble: {} members, hidden {:?}, input {}, {} params per member",
        config.members,
        config.hidden,
        obs_dim + a_dim,
        model.net().macs_per_row()
    );
    println!(
        "rollouts: {} paths x {} steps x {} repeats in {:.3} s on {} (uncertainty: {})",
        args.paths, args.horizon, args.repeats, secs, args.device, args.uncertainty
    );
    println!("imagined transitions/s: {:.0}", rate);
    println!(
        "rollout GFLOP/s (matmul flops only): {:.2}",
        rate * flops_per_transition / 1e9
    );

    let n = args.matmul;
    let a = Tensor::<2>::from_data(
        TensorData::new(
            (0..n * n)
                .map(|i| (i % 7) as f32 * 0.01)
                .collect::<Vec<_>>(),
            [n, n],
        ),
        &device,
    );
    let b = a.clone();
    a.clone().matmul(b.clone()).into_data();
    let reps = 3;
    let t0 = Instant::now();
    for _ in 0..reps {
        a.clone().matmul(b.clone()).into_data();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "ceiling: {n}x{n} matmul GFLOP/s: {:.2}",
        reps as f64 * 2.0 * (n * n * n) as f64 / secs / 1e9
    );
    Ok(())
}
