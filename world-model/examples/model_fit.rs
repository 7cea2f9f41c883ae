//! One-step accuracy of the ensemble: fit it to random transitions of an environment and
//! report, on held-out random transitions from other episodes, the normalized mean squared
//! error of the ensemble-mean prediction (per dimension, divided by the variance of the
//! target over the held-out set) and the termination accuracy.
//!
//! ```text
//! cargo run --release -p plasma-world-model --example model_fit -- --env CartPole-v1 --train 1000
//! ```

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use plasma_envs::make;
use plasma_world_model::burn::tensor::{Tensor, TensorData};
use plasma_world_model::ensemble::Ensemble;
use plasma_world_model::mpc::random_dataset;
use plasma_world_model::{ActionBatch, EnsembleConfig, TrainConfig, WorldModel};

#[derive(Parser, Debug)]
#[command(about = "One-step normalized MSE of the ensemble on held-out transitions")]
struct Args {
    /// Environment id.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Random transitions to train on.
    #[arg(long, default_value_t = 1000)]
    train: usize,
    /// Held-out random transitions (other episodes, other seeds).
    #[arg(long, default_value_t = 2000)]
    test: usize,
    /// Most epochs.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Rows per member per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu / wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let device = plasma_world_model::parse_device(&args.device)?;
    let train = random_dataset(&args.env, args.train, args.seed)?;
    let test = random_dataset(&args.env, args.test, args.seed + 1_000_003)?;
    let spec = make(&args.env)?.spec();
    let config = EnsembleConfig {
        seed: args.seed,
        ..EnsembleConfig::default()
    };
    let mut model = Ensemble::new(config, spec, device.clone())?;
    let started = Instant::now();
    let report = model.fit(
        &train,
        &TrainConfig {
            max_epochs: args.epochs,
            batch_size: args.batch,
            seed: args.seed,
            ..TrainConfig::default()
        },
    )?;
    println!(
        "fit on {} random transitions: {} epochs, {} steps, {:.1} s",
        train.len(),
        report.epochs,
        report.steps,
        started.elapsed().as_secs_f64()
    );

    let (n, d, a) = (test.len(), test.obs_dim(), test.action_dim());
    let mut obs = Vec::with_capacity(n * d);
    let mut act = Vec::with_capacity(n * a);
    for i in 0..n {
        obs.extend_from_slice(test.obs(i));
        act.extend_from_slice(test.action(i));
    }
    let (means, term) = model.member_predictions(
        Tensor::from_data(TensorData::new(obs, [n, d]), &device),
        &ActionBatch::Encoded(Tensor::from_data(TensorData::new(act, [n, a]), &device)),
    )?;
    let e = model.members();
    let means = means
        .mean_dim(0)
        .reshape([n, d + 1])
        .into_data()
        .try_into_vec::<f32>()?;
    let term = term
        .mean_dim(0)
        .reshape([n])
        .into_data()
        .try_into_vec::<f32>()?;
    let mut names: Vec<String> = (0..d).map(|j| format!("d_obs[{j}]")).collect();
    names.push("reward".into());
    let mut nmse_delta = vec![];
    let mut nmse_next = vec![];
    for j in 0..=d {
        let truth: Vec<f64> = (0..n)
            .map(|i| {
                if j < d {
                    f64::from(test.next_obs(i)[j] - test.obs(i)[j])
                } else {
                    f64::from(test.reward(i))
                }
            })
            .collect();
        let mean = truth.iter().sum::<f64>() / n as f64;
        let var = truth.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n as f64;
        let mse = (0..n)
            .map(|i| (f64::from(means[i * (d + 1) + j]) - truth[i]).powi(2))
            .sum::<f64>()
            / n as f64;
        if var < 1e-12 {
            println!("{:>10}: constant target, mse {mse:.3e}", names[j]);
            continue;
        }
        println!(
            "{:>10}: normalized mse {:.2e} (mse {mse:.3e}, variance {var:.3e})",
            names[j],
            mse / var
        );
        if j < d {
            nmse_delta.push(mse / var);
            // The same error against the variance of the next observation itself.
            let next: Vec<f64> = (0..n).map(|i| f64::from(test.next_obs(i)[j])).collect();
            let m = next.iter().sum::<f64>() / n as f64;
            let v = next.iter().map(|t| (t - m).powi(2)).sum::<f64>() / n as f64;
            nmse_next.push(mse / v);
        }
    }
    let correct = (0..n)
        .filter(|&i| (term[i] > 0.5) == test.terminated(i))
        .count();
    let terminal = (0..n).filter(|&i| test.terminated(i)).count();
    let caught = (0..n)
        .filter(|&i| test.terminated(i) && term[i] > 0.5)
        .count();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!(
        "{}: one-step normalized MSE of the change of observation on {n} held-out transitions \
         (ensemble mean of {e} members): mean {:.2e}, max {:.2e}",
        args.env,
        avg(&nmse_delta),
        max(&nmse_delta)
    );
    println!(
        "{}: normalized by the variance of the next observation instead: mean {:.2e}, max {:.2e}",
        args.env,
        avg(&nmse_next),
        max(&nmse_next)
    );
    println!(
        "termination: accuracy {:.4}, terminal transitions caught {caught}/{terminal}",
        correct as f64 / n as f64
    );
    Ok(())
}
