//! The learning recipe on random experience, teacher and student both evaluated in the
//! real environment: where a weak packet comes from (the model and terminal value the
//! teacher plans with, or the distillation of the teacher into the policy).
//!
//! Uses the server's default world model and recipe (`RecipeConfig::default()`), random
//! actions for `--steps` real steps, then: the teacher (the recipe's planner with its
//! terminal value) acting in the real environment by model-predictive control, and the
//! distilled policy acting alone.
//!
//! ```text
//! cargo run --release -p plasma-world-model --example recipe -- --seed 1
//! ```

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use plasma_envs::make;
use plasma_protocol::{Action, ActionRef};
use plasma_world_model::audit::{AuditConfig, Calibration};
use plasma_world_model::mpc::{MpcConfig, random_dataset};
use plasma_world_model::recipe::teacher;
use plasma_world_model::{
    Planner, PolicyConfig, PolicyModel, RecipeConfig, RecipeEvent, Registry, WorldModelConfig,
    distil_policy,
};

#[derive(Parser, Debug)]
struct Args {
    /// Environment id.
    #[arg(long, default_value = "CartPole-v1")]
    env: String,
    /// Seed of the random experience, the model and the recipe.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random real steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Real episodes of the teacher (each plans every step).
    #[arg(long, default_value_t = 3)]
    teacher_episodes: usize,
    /// Real episodes of the distilled policy.
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// The world model as JSON (`EnsembleConfig` fields over the server's).
    #[arg(long)]
    ensemble: Option<String>,
    /// The world model's training as JSON (`TrainConfig` fields over the server's).
    #[arg(long)]
    train: Option<String>,
    /// A recipe as JSON (`RecipeConfig`), instead of the default: top-level fields left out
    /// keep the recipe's defaults, but a nested object given replaces the whole field
    /// (its missing keys take that type's own defaults, e.g. `CemConfig`'s).
    #[arg(long)]
    recipe: Option<String>,
}

/// Mean return and how CartPole episodes ended (time limit, off the track, pole fell).
fn run(
    env_id: &str,
    episodes: usize,
    mut act: impl FnMut(&[f32]) -> Result<Action>,
) -> Result<(f64, [usize; 3])> {
    let mut env = make(env_id)?;
    let mut total = 0.0;
    let mut ends = [0; 3];
    for i in 0..episodes {
        let mut obs = env.reset(Some(50_000 + i as u64));
        loop {
            let action = act(&obs)?;
            let step = env.step(match &action {
                Action::Discrete(a) => ActionRef::Discrete(*a),
                Action::Continuous(v) => ActionRef::Continuous(v),
            })?;
            total += step.reward;
            if step.done() {
                ends[if step.truncated {
                    0
                } else if step.obs[0].abs() > 2.4 {
                    1
                } else {
                    2
                }] += 1;
                break;
            }
            obs = step.obs;
        }
    }
    Ok((total / episodes.max(1) as f64, ends))
}

/// `base` with the fields of the JSON object `extra` replaced.
fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    extra: Option<&str>,
) -> Result<T> {
    let mut value = serde_json::to_value(base)?;
    if let Some(json) = extra {
        let extra: serde_json::Value = serde_json::from_str(json)?;
        for (k, v) in extra.as_object().into_iter().flatten() {
            value[k] = v.clone();
        }
    }
    Ok(serde_json::from_value(value)?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let recipe: RecipeConfig = match &args.recipe {
        Some(json) => serde_json::from_str(json)?,
        None => RecipeConfig::default(),
    };
    let mut recipe = recipe;
    recipe.distill.seed = args.seed;
    let spec = make(&args.env)?.spec();
    let data = random_dataset(&args.env, args.steps, args.seed)?;
    let n = data.len();
    let (hold, fit): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % 10 == 9);
    let (train, holdout) = (data.subset(&fit), data.subset(&hold));
    let mpc = MpcConfig::for_env(&args.env);
    let mut ensemble = merged(&mpc.ensemble, args.ensemble.as_deref())?;
    ensemble.seed = args.seed;
    let device = plasma_world_model::parse_device("cpu")?;
    let mut model =
        Registry::default().build(&WorldModelConfig::ensemble(&ensemble), &spec, &device)?;
    let started = Instant::now();
    let train_config = merged(&mpc.train, args.train.as_deref())?;
    let fit_report = model.fit(&train, &train_config)?;
    println!(
        "model: {} epochs, held-out mse {:?}, {:.1} s",
        fit_report.epochs,
        fit_report.holdout_mse,
        started.elapsed().as_secs_f64()
    );
    let starts = data.observations();

    // The teacher as the recipe builds it.
    let (mut teacher, value) = teacher(model.as_ref(), starts, &recipe)?;
    if let Some(report) = value {
        println!(
            "terminal value: mean {:.1}, mse {:.3}, {:.1} s",
            report.mean_value, report.last_loss, report.seconds
        );
    }
    if args.teacher_episodes > 0 {
        let started = Instant::now();
        let (mean, ends) = run(&args.env, args.teacher_episodes, |obs| {
            Ok(teacher.plan(model.as_ref(), obs)?.actions.remove(0))
        })?;
        println!(
            "teacher in the real environment: {mean:.1} over {} episodes (time limit / track \
             / pole: {ends:?}), {:.1} s",
            args.teacher_episodes,
            started.elapsed().as_secs_f64()
        );
    }

    let calibration = Calibration::fit(model.as_ref(), &train, &holdout, &AuditConfig::default())?;
    let policy = PolicyModel::for_space(
        PolicyConfig::default(),
        starts,
        spec.observation_space.dim(),
        &spec.action_space,
        &device,
    )?;
    let (policy, report) = distil_policy(
        model.as_ref(),
        starts,
        policy,
        &recipe,
        Some(&calibration),
        &mut |e| {
            if let RecipeEvent::Round(r) = e {
                println!(
                    "round {}: {} labels, {}/{} paths rejected, imagined {:?}, accuracy {:?}",
                    r.iteration, r.labels, r.rejected_paths, r.paths, r.imagined_return, r.accuracy
                );
            }
            ControlFlow::Continue(())
        },
    )?;
    let (mean, ends) = run(&args.env, args.episodes, |obs| {
        Ok(policy.act_batch(obs)?.remove(0))
    })?;
    println!(
        "student in the real environment: {mean:.1} over {} episodes (time limit / track / \
         pole: {ends:?}); recipe {:.1} s",
        args.episodes, report.seconds
    );
    Ok(())
}
