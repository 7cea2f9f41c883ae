//! Planners find the optimum of toy models whose optimum is known.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use plasma_protocol::{Space, TaskSpec};

use super::*;
use crate::config::{TrainConfig, WorldModelConfig};
use crate::data::Dataset;
use crate::model::{Decoded, LossReport, ModelState, StepOptions, TrainReport};

/// `s' = s + u(a)`, reward `−(s' − 2)²`, never terminates; `u(a) = a` for a box action in
/// `[−1, 1]`, `u(a) = (a − 1) / 2` for a discrete action in `{0, 1, 2}`.
struct Track {
    spec: TaskSpec,
    codec: ActionCodec,
    device: Device,
}

impl Track {
    fn new(discrete: bool) -> Self {
        let action_space = if discrete {
            Space::discrete(3).unwrap()
        } else {
            Space::boxed(vec![-1.0], vec![1.0]).unwrap()
        };
        Track {
            codec: ActionCodec::new(&action_space),
            spec: TaskSpec {
                name: "Track-v0".into(),
                observation_space: Space::boxed(vec![-10.0], vec![10.0]).unwrap(),
                action_space,
                max_episode_steps: None,
                termination: None,
            },
            device: Device::flex(),
        }
    }
}

impl WorldModel for Track {
    fn family(&self) -> &str {
        "track"
    }
    fn config(&self) -> WorldModelConfig {
        WorldModelConfig::from_json(r#"{"family":"track"}"#).unwrap()
    }
    fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    fn codec(&self) -> &ActionCodec {
        &self.codec
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn members(&self) -> usize {
        1
    }
    fn is_trained(&self) -> bool {
        true
    }
    fn encode(&self, obs: Tensor<2>) -> Result<ModelState> {
        Ok(ModelState {
            latent: obs,
            reward: None,
            continue_prob: None,
            uncertainty: None,
            in_support: None,
            support_bounds: None,
            step: 0,
        })
    }
    fn transition(
        &self,
        state: &ModelState,
        action: &ActionBatch,
        _options: &StepOptions,
    ) -> Result<ModelState> {
        let [p, _] = state.latent.dims();
        let a = action.encode(&self.codec, p)?;
        let u = match self.codec {
            ActionCodec::Discrete { .. } => {
                let values = Tensor::<2>::from_data(
                    TensorData::new(vec![-0.5f32, 0.0, 0.5], [3, 1]),
                    &self.device,
                );
                a.matmul(values)
            }
            ActionCodec::Continuous { .. } => a,
        };
        let next = state.latent.clone() + u;
        let reward = (next.clone() - 2.0).square().neg().reshape([p]);
        Ok(ModelState {
            latent: next,
            reward: Some(reward),
            continue_prob: None,
            uncertainty: None,
            in_support: None,
            support_bounds: None,
            step: state.step + 1,
        })
    }
    fn decode(&self, state: &ModelState) -> Result<Decoded> {
        Ok(Decoded {
            obs: state.latent.clone(),
            reward: state.reward.clone(),
            continue_prob: state.continue_prob.clone(),
            in_support: None,
        })
    }
    fn loss(&self, _data: &Dataset) -> Result<LossReport> {
        Err(WorldModelError::Config("analytic".into()))
    }
    fn fit(&mut self, _data: &Dataset, _config: &TrainConfig) -> Result<TrainReport> {
        Err(WorldModelError::Config("analytic".into()))
    }
    fn save(&self, _dir: &Path) -> Result<()> {
        Err(WorldModelError::Config("analytic".into()))
    }
}

fn search() -> SearchConfig {
    SearchConfig {
        horizon: 6,
        population: 200,
        iterations: 5,
        ..SearchConfig::default()
    }
}

fn continuous_first(plan: &Plan) -> Vec<f32> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::Continuous(v) => v[0],
            Action::Discrete(_) => f32::NAN,
        })
        .collect()
}

fn discrete_first(plan: &Plan) -> Vec<u32> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::Discrete(i) => *i,
            Action::Continuous(_) => u32::MAX,
        })
        .collect()
}

const STARTS: [f32; 3] = [0.0, 3.5, 2.0];

#[test]
fn cem_finds_the_continuous_optimum_for_every_start_at_once() {
    let model = Track::new(false);
    let mut cem = Cem::new(CemConfig {
        search: search(),
        elites: 20,
    })
    .unwrap();
    let plan = cem.plan(&model, &STARTS).unwrap();
    let first = continuous_first(&plan);
    assert!(first[0] > 0.8, "{first:?}");
    assert!(first[1] < -0.8, "{first:?}");
    assert!(first[2].abs() < 0.25, "{first:?}");
    // From 2.0 the best return is 0; from 0.0 it is −(1 + 0) = −1 at best.
    assert!(
        plan.best_return[2] > -0.2 && plan.best_return[0] > -1.5,
        "{plan:?}"
    );
    assert_eq!(plan.encoded.len(), 3);
}

#[test]
fn cem_finds_the_discrete_optimum() {
    let model = Track::new(true);
    let mut cem = Cem::new(CemConfig {
        search: search(),
        elites: 20,
    })
    .unwrap();
    let plan = cem.plan(&model, &STARTS).unwrap();
    assert_eq!(discrete_first(&plan), [2, 0, 1]);
    assert_eq!(&plan.encoded[..3], [0.0, 0.0, 1.0]);
}

#[test]
fn mppi_finds_both_optima() {
    for discrete in [false, true] {
        let model = Track::new(discrete);
        let mut mppi = Mppi::new(MppiConfig {
            search: search(),
            ..MppiConfig::default()
        })
        .unwrap();
        let plan = mppi.plan(&model, &STARTS).unwrap();
        if discrete {
            assert_eq!(discrete_first(&plan), [2, 0, 1]);
        } else {
            let first = continuous_first(&plan);
            assert!(
                first[0] > 0.6 && first[1] < -0.6 && first[2].abs() < 0.3,
                "{first:?}"
            );
        }
    }
}

#[test]
fn warm_start_shifts_the_previous_solution() {
    let model = Track::new(false);
    let mut cem = Cem::new(CemConfig {
        search: SearchConfig {
            iterations: 1,
            ..search()
        },
        elites: 20,
    })
    .unwrap();
    cem.plan(&model, &[0.0]).unwrap();
    let Some((1, SeqDist::Gaussian { mean, .. })) = cem.search.previous.clone() else {
        panic!("no kept solution");
    };
    let shifted = cem.search.start_dist(&model.codec, 1);
    let SeqDist::Gaussian { mean: m2, std } = shifted else {
        panic!("not gaussian");
    };
    assert_eq!(m2[..5], mean[1..]);
    assert_eq!(m2[5], 0.0);
    assert!(std.iter().all(|s| (*s - 0.5).abs() < 1e-6));
    // A different number of starts starts afresh.
    let fresh = cem.search.start_dist(&model.codec, 2);
    assert!(matches!(fresh, SeqDist::Gaussian { ref mean, .. } if mean.iter().all(|m| *m == 0.0)));
    cem.reset();
    assert!(cem.search.previous.is_none());
}

#[test]
fn planners_drive_phantom_paths_and_check_their_input() {
    let model = Track::new(false);
    let mut cem = Cem::new(CemConfig {
        search: search(),
        elites: 20,
    })
    .unwrap();
    let start = crate::rollout::start_states(&[0.0, 4.0], 1, &model.device).unwrap();
    let mut policy = PlannerPolicy {
        model: &model,
        planner: &mut cem,
    };
    let traj = model
        .rollout(
            start,
            Driver::Policy(&mut policy),
            4,
            &RolloutOptions::default(),
        )
        .unwrap()
        .to_host()
        .unwrap();
    // Both paths reach the target 2.0 within a few steps.
    assert!((traj.obs[3] - 2.0).abs() < 0.3, "{:?}", traj.obs);
    assert!((traj.obs[7] - 2.0).abs() < 0.3, "{:?}", traj.obs);
    assert!(cem.plan(&model, &[]).is_err());
    assert!(cem.plan(&model, &[f32::NAN]).is_err());
    assert!(
        Cem::new(CemConfig {
            elites: 0,
            ..CemConfig::default()
        })
        .is_err()
    );
    assert!(
        Mppi::new(MppiConfig {
            temperature: 0.0,
            ..MppiConfig::default()
        })
        .is_err()
    );
}

#[test]
fn weights_sum_to_one() {
    let scores = [1.0, 5.0, 3.0, 5.0];
    let mut w = [0.0; 4];
    cem::elite_weights(&scores, 2, &mut w);
    assert_eq!(w, [0.0, 0.5, 0.0, 0.5]);
    mppi::softmax_weights(&scores, 0.5, &mut w);
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    assert!(w[1] > w[2] && w[2] > w[0]);
}
