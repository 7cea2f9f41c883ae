//! Model-predictive control in a real environment: random transitions, then planning in
//! the learned ensemble with periodic refits; reports the real steps used for learning and
//! the average return of the evaluation episodes.
//!
//! ```text
//! cargo run --release -p plasma-world-model --example mpc -- --env CartPole-v1
//! cargo run --release -p plasma-world-model --example mpc -- --env Pendulum-v1
//! ```

use anyhow::Result;
use clap::Parser;
use plasma_world_model::mpc::{MpcConfig, PlannerConfig, run};
use plasma_world_model::planner::{CemConfig, MppiConfig};

#[derive(Parser, Debug)]
#[command(about = "Model-predictive control with a learned ensemble in a plasma-envs environment")]
struct Args {
    /// Environment id.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random transitions before the first fit (default per environment).
    #[arg(long)]
    random_steps: Option<usize>,
    /// Real transitions used for learning (default per environment).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Real steps between refits (default per environment).
    #[arg(long)]
    refit_every: Option<usize>,
    /// Planner: cem or mppi.
    #[arg(long, default_value = "cem")]
    planner: String,
    /// Planning horizon.
    #[arg(long)]
    horizon: Option<usize>,
    /// Candidates per iteration.
    #[arg(long)]
    population: Option<usize>,
    /// CEM elites.
    #[arg(long)]
    elites: Option<usize>,
    /// Planner iterations.
    #[arg(long)]
    iterations: Option<usize>,
    /// Model paths per candidate.
    #[arg(long)]
    particles: Option<usize>,
    /// Uncertainty penalty λ of the planner's scores (r − λ·u; 0 = off).
    #[arg(long)]
    uncertainty_penalty: Option<f32>,
    /// MPPI temperature (relative to the spread of returns).
    #[arg(long)]
    temperature: Option<f32>,
    /// Ensemble members.
    #[arg(long)]
    members: Option<usize>,
    /// Hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hidden: Option<Vec<usize>>,
    /// Halt imagined paths beyond the data's support widened by this fraction of its
    /// range (negative: never halt).
    #[arg(long)]
    support_margin: Option<f32>,
    /// Clamp the model's observation inputs to the data's support widened by this
    /// fraction of its range (negative: no clamp).
    #[arg(long)]
    input_clamp: Option<f32>,
    /// Most epochs per fit.
    #[arg(long)]
    epochs: Option<usize>,
    /// Plan without a terminal value (CartPole learns one by default).
    #[arg(long)]
    no_terminal_value: bool,
    /// Value-iteration sweeps of the terminal value.
    #[arg(long)]
    value_iterations: Option<usize>,
    /// Discount of the terminal value.
    #[arg(long)]
    value_discount: Option<f32>,
    /// Weight of terminal transitions in the termination loss (1: calibrated
    /// probabilities; absent: the training default).
    #[arg(long)]
    termination_pos_weight: Option<f32>,
    /// Evaluation episodes.
    #[arg(long, default_value_t = 10)]
    eval_episodes: usize,
    /// Device: cpu / wgpu.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print the full report as JSON at the end.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = MpcConfig::for_env(&args.env);
    config.seed = args.seed;
    config.device = args.device.clone();
    config.eval_episodes = args.eval_episodes;
    if let Some(v) = args.random_steps {
        config.random_steps = v;
    }
    if let Some(v) = args.max_steps {
        config.max_real_steps = v;
    }
    if let Some(v) = args.refit_every {
        config.refit_every = v;
    }
    if let Some(v) = args.members {
        config.ensemble.members = v;
    }
    if let Some(v) = &args.hidden {
        config.ensemble.hidden = v.clone();
    }
    if let Some(v) = args.support_margin {
        config.ensemble.support_margin = (v >= 0.0).then_some(v);
    }
    if let Some(v) = args.input_clamp {
        config.ensemble.input_clamp = (v >= 0.0).then_some(v);
    }
    if let Some(v) = args.epochs {
        config.train.max_epochs = v;
    }
    if args.no_terminal_value {
        config.terminal_value = None;
    }
    if let (Some(v), Some(value)) = (args.value_iterations, config.terminal_value.as_mut()) {
        value.iterations = v;
    }
    if let (Some(v), Some(value)) = (args.value_discount, config.terminal_value.as_mut()) {
        value.discount = v;
    }
    if let Some(v) = args.termination_pos_weight {
        config.train.termination_pos_weight = Some(v);
    }
    let (mut search, elites) = match &config.planner {
        PlannerConfig::Cem(c) => (c.search.clone(), c.elites),
        PlannerConfig::Mppi(c) => (c.search.clone(), CemConfig::default().elites),
    };
    search.seed = args.seed;
    if let Some(v) = args.horizon {
        search.horizon = v;
    }
    if let Some(v) = args.population {
        search.population = v;
    }
    if let Some(v) = args.iterations {
        search.iterations = v;
    }
    if let Some(v) = args.particles {
        search.particles = v;
    }
    if let Some(v) = args.uncertainty_penalty {
        search.uncertainty_penalty = v;
    }
    config.planner = match args.planner.as_str() {
        "cem" => PlannerConfig::Cem(CemConfig {
            search,
            elites: args.elites.unwrap_or(elites),
        }),
        "mppi" => PlannerConfig::Mppi(MppiConfig {
            search,
            temperature: args
                .temperature
                .unwrap_or(MppiConfig::default().temperature),
        }),
        other => anyhow::bail!("unknown planner {other:?} (cem, mppi)"),
    };
    println!("config: {}", serde_json::to_string(&config)?);
    let report = run(&config, &mut |line| println!("{line}"))?;
    println!(
        "{}: real steps used for learning: {}, fits: {}, learning time {:.1} s",
        report.env, report.real_steps, report.fits, report.learning_seconds
    );
    println!(
        "{}: evaluation average return over {} episodes: {:.2} (min {:.1}, max {:.1}), evaluation time {:.1} s",
        report.env,
        report.eval_returns.len(),
        report.eval_mean,
        report
            .eval_returns
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min),
        report
            .eval_returns
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
        report.eval_seconds
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
