//! Does one agent's data disagree with everyone else's? When a task's experience comes
//! from several agents, the model fitted to all of it explains honest agents' transitions
//! about equally well; an agent whose next observations come from other episodes, whose
//! actions are relabelled or whose rewards are made up, is explained much worse. This
//! check scores every agent by its held-out residuals under the shared model and flags the
//! ones far above the others — no refit per agent, one batched model step.
//!
//! Per transition, the residual is the mean over observation dimensions of
//! `((predicted − real next observation) / s_d)²`, with `s_d` the robust spread (1.4826 ×
//! median absolute deviation) of dimension `d`'s real one-step change over all agents. An
//! agent's score is the median of its residuals. An agent is flagged when its score is
//! above both `ratio` × the median score of all agents and that median plus `spreads` ×
//! the robust spread of the scores — medians, so a poisoner among four honest agents
//! cannot drag the reference up.

use burn::tensor::{Tensor, TensorData};
pub use plasma_protocol::reports::{AgentCheck, AgentScore};
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Result, WorldModelError, check_finite, read_f32};
use crate::model::{ActionBatch, Noise, StepOptions, WorldModel};

/// When an agent counts as disagreeing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentCheckConfig {
    /// Fewest agents with data for a comparison (below it nothing is flagged).
    pub min_agents: usize,
    /// Fewest scored transitions an agent needs to be scored.
    pub min_transitions: usize,
    /// A flagged score is at least this many times the median score.
    pub ratio: f32,
    /// … and at least this many robust spreads of the scores above the median.
    pub spreads: f32,
    /// Most transitions scored per agent (its newest).
    pub max_transitions_per_agent: usize,
}

impl Default for AgentCheckConfig {
    fn default() -> Self {
        AgentCheckConfig {
            min_agents: 3,
            min_transitions: 10,
            ratio: 3.0,
            spreads: 5.0,
            max_transitions_per_agent: 1024,
        }
    }
}

fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Robust spread: 1.4826 × the median absolute deviation from `centre`.
fn spread(values: &[f32], centre: f32) -> f32 {
    let mut dev: Vec<f32> = values.iter().map(|v| (v - centre).abs()).collect();
    1.4826 * median(&mut dev)
}

/// Scores `agents` by their transitions in `data` (`agent_of[i]` indexes `agents` for row
/// `i`) under `model`. Use data the model did not train on where there is enough of it.
pub fn check_agents(
    model: &dyn WorldModel,
    data: &Dataset,
    agent_of: &[usize],
    agents: &[String],
    config: &AgentCheckConfig,
) -> Result<AgentCheck> {
    if agent_of.len() != data.len() || agent_of.iter().any(|&a| a >= agents.len()) {
        return Err(WorldModelError::Config(format!(
            "agent labels: {} for {} transitions of {} agents",
            agent_of.len(),
            data.len(),
            agents.len()
        )));
    }
    // Each agent's newest rows, capped.
    let mut rows_of: Vec<Vec<usize>> = vec![vec![]; agents.len()];
    for (i, &a) in agent_of.iter().enumerate().rev() {
        if rows_of[a].len() < config.max_transitions_per_agent {
            rows_of[a].push(i);
        }
    }
    let rows: Vec<usize> = rows_of.iter().flatten().copied().collect();
    let obs_dim = data.obs_dim();
    let residuals = if rows.is_empty() {
        vec![]
    } else {
        residuals(model, data, &rows, obs_dim)?
    };
    let mut at = 0;
    let mut scores = Vec::with_capacity(agents.len());
    for (a, agent_rows) in rows_of.iter().enumerate() {
        let mut mine = residuals[at..at + agent_rows.len()].to_vec();
        at += agent_rows.len();
        let score = (mine.len() >= config.min_transitions.max(1)).then(|| median(&mut mine));
        scores.push(AgentScore {
            agent: agents[a].clone(),
            transitions: agent_rows.len(),
            score,
            flagged: false,
        });
    }
    let scored: Vec<f32> = scores.iter().filter_map(|s| s.score).collect();
    let compared = scored.len() >= config.min_agents.max(2);
    let median_score = median(&mut scored.clone());
    let threshold = (config.ratio * median_score)
        .max(median_score + config.spreads * spread(&scored, median_score));
    let mut flagged = vec![];
    if compared {
        for s in &mut scores {
            if s.score.is_some_and(|v| v > threshold) {
                s.flagged = true;
                flagged.push(s.agent.clone());
            }
        }
    }
    Ok(AgentCheck {
        compared,
        agents: scores,
        median_score,
        threshold,
        flagged,
    })
}

/// Per-row residuals (module docs) of `rows` of `data`, in that order.
fn residuals(
    model: &dyn WorldModel,
    data: &Dataset,
    rows: &[usize],
    obs_dim: usize,
) -> Result<Vec<f32>> {
    let n = rows.len();
    let a = data.action_dim();
    let (mut obs, mut actions, mut next) = (
        Vec::with_capacity(n * obs_dim),
        Vec::with_capacity(n * a),
        Vec::with_capacity(n * obs_dim),
    );
    for &i in rows {
        obs.extend_from_slice(data.obs(i));
        actions.extend_from_slice(data.action(i));
        next.extend_from_slice(data.next_obs(i));
    }
    // The robust spread of each dimension's real change, over all of the data.
    let scale: Vec<f32> = (0..obs_dim)
        .map(|d| {
            let deltas: Vec<f32> = (0..data.len())
                .map(|i| data.next_obs(i)[d] - data.obs(i)[d])
                .collect();
            let centre = median(&mut deltas.clone());
            spread(&deltas, centre).max(1e-6 * (1.0 + centre.abs()))
        })
        .collect();
    let device = model.device();
    let state = model.encode(Tensor::from_data(
        TensorData::new(obs, [n, obs_dim]),
        device,
    ))?;
    let action = ActionBatch::Encoded(Tensor::from_data(TensorData::new(actions, [n, a]), device));
    let stepped = model.transition(
        &state,
        &action,
        &StepOptions {
            noise: Noise::Mean,
            uncertainty: false,
        },
    )?;
    let predicted = read_f32(model.decode(&stepped)?.obs)?;
    check_finite("predicted next observations", &predicted)?;
    Ok(predicted
        .chunks_exact(obs_dim)
        .zip(next.chunks_exact(obs_dim))
        .map(|(p, r)| {
            p.iter()
                .zip(r)
                .zip(&scale)
                .map(|((p, r), s)| ((p - r) / s).powi(2))
                .sum::<f32>()
                / obs_dim as f32
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;
    use plasma_envs::{Env, make};
    use plasma_protocol::ActionRef;
    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::config::{EnsembleConfig, TrainConfig};
    use crate::ensemble::Ensemble;

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        assert!((spread(&[1.0, 2.0, 3.0, 100.0], 2.5) - 1.4826).abs() < 1e-5);
    }

    /// How the poisoner corrupts its (real) data, staying inside the observation bounds.
    #[derive(Clone, Copy, Debug)]
    enum Poison {
        /// Next observations taken from other transitions (other episodes).
        ShuffledNext,
        /// Every action flipped.
        RelabelledActions,
    }

    /// One transition: `(obs, action, reward, next_obs, terminated)`.
    type Row = (Vec<f32>, u32, f64, Vec<f32>, bool);

    /// `n` real random-action CartPole-v1 transitions of one agent.
    fn episodes(n: usize, seed: u64) -> Vec<Row> {
        let mut env = make("CartPole-v1").unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut out = vec![];
        let mut episode = 0;
        while out.len() < n {
            let mut obs = env.reset(Some(seed * 1000 + episode));
            episode += 1;
            loop {
                let a = rng.random_range(0..2u32);
                let step = env.step(ActionRef::Discrete(a)).unwrap();
                out.push((obs, a, step.reward, step.obs.clone(), step.terminated));
                obs = step.obs.clone();
                if step.done() || out.len() >= n {
                    break;
                }
            }
        }
        out
    }

    fn poisoned(mut rows: Vec<Row>, poison: Poison, seed: u64) -> Vec<Row> {
        match poison {
            Poison::ShuffledNext => {
                let mut next: Vec<Vec<f32>> = rows.iter().map(|r| r.3.clone()).collect();
                next.shuffle(&mut SmallRng::seed_from_u64(seed));
                for (r, n) in rows.iter_mut().zip(next) {
                    r.3 = n;
                }
            }
            Poison::RelabelledActions => rows.iter_mut().for_each(|r| r.1 = 1 - r.1),
        }
        rows
    }

    /// Four honest agents and one poisoner, 500 transitions each; a model fitted to all of
    /// it; the check on held-out transitions of every agent (every fifth row).
    fn run(seed: u64, poison: Poison) -> AgentCheck {
        let spec = make("CartPole-v1").unwrap().spec();
        let agents: Vec<String> = (0..5)
            .map(|i| {
                if i == 4 {
                    "poisoner".into()
                } else {
                    format!("honest-{i}")
                }
            })
            .collect();
        let (mut train, mut held) = (Dataset::new(&spec).unwrap(), Dataset::new(&spec).unwrap());
        let mut held_agents = vec![];
        for a in 0..5 {
            let rows = episodes(500, seed * 10 + a as u64);
            let rows = if a == 4 {
                poisoned(rows, poison, seed)
            } else {
                rows
            };
            for (i, (obs, act, reward, next, term)) in rows.iter().enumerate() {
                let d = if i % 5 == 4 { &mut held } else { &mut train };
                d.push(obs, ActionRef::Discrete(*act), *reward, next, *term)
                    .unwrap();
                if i % 5 == 4 {
                    held_agents.push(a);
                }
            }
        }
        let config = EnsembleConfig {
            members: 2,
            hidden: vec![64, 64],
            ..EnsembleConfig::default()
        };
        let mut model = Ensemble::new(config, spec, Device::flex()).unwrap();
        let fit = TrainConfig {
            max_epochs: 40,
            batch_size: 64,
            learning_rate: 3e-3,
            patience: 40,
            seed,
            ..TrainConfig::default()
        };
        model.fit(&train, &fit).unwrap();
        check_agents(
            &model,
            &held,
            &held_agents,
            &agents,
            &AgentCheckConfig::default(),
        )
        .unwrap()
    }

    /// The poisoner is flagged and no honest agent is, over several seeds and both kinds
    /// of poison: the false-positive rate over these 16 honest agents is 0.
    #[test]
    fn a_poisoner_among_honest_agents_is_flagged_and_no_one_else() {
        let mut false_positives = 0;
        for (seed, poison) in [
            (1, Poison::ShuffledNext),
            (2, Poison::RelabelledActions),
            (3, Poison::ShuffledNext),
            (4, Poison::RelabelledActions),
        ] {
            let check = run(seed, poison);
            assert!(check.compared);
            assert!(
                check.flagged.contains(&"poisoner".to_owned()),
                "seed {seed}, {poison:?}: {check:#?}"
            );
            false_positives += check.flagged.len() - 1;
            let honest_max = check.agents[..4]
                .iter()
                .filter_map(|s| s.score)
                .fold(0.0, f32::max);
            let poisoner = check.agents[4].score.unwrap();
            eprintln!(
                "seed {seed}, {poison:?}: honest scores up to {honest_max:.3}, poisoner {poisoner:.3}, threshold {:.3}",
                check.threshold
            );
        }
        assert_eq!(false_positives, 0);
    }

    #[test]
    fn too_few_agents_are_not_compared() {
        let spec = make("CartPole-v1").unwrap().spec();
        let mut data = Dataset::new(&spec).unwrap();
        for (obs, a, r, next, t) in episodes(40, 9) {
            data.push(&obs, ActionRef::Discrete(a), r, &next, t)
                .unwrap();
        }
        let model = Ensemble::new(EnsembleConfig::default(), spec, Device::flex()).unwrap();
        let agents = vec!["a".to_owned(), "b".to_owned()];
        let labels: Vec<usize> = (0..40).map(|i| i % 2).collect();
        let check = check_agents(
            &model,
            &data,
            &labels,
            &agents,
            &AgentCheckConfig::default(),
        )
        .unwrap();
        assert!(!check.compared && check.flagged.is_empty());
        assert!(
            check_agents(
                &model,
                &data,
                &labels[..3],
                &agents,
                &AgentCheckConfig::default()
            )
            .is_err()
        );
    }
}
