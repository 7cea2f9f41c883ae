//! The world-model contract (DESIGN.md, "The world-model contract"): every family encodes
//! observations into states, steps states with actions, decodes them into observations,
//! rewards and continue probabilities, rolls out batches of imagined paths, scores a
//! dataset, trains, and saves to a directory that [`crate::registry::Registry::load`] reads
//! back.

use std::path::Path;

use burn::tensor::{Device, Int, Tensor};
use plasma_protocol::TaskSpec;
use serde::{Deserialize, Serialize};

use crate::action::ActionCodec;
use crate::config::{TrainConfig, WorldModelConfig};
use crate::data::Dataset;
use crate::error::{Result, WorldModelError};
use crate::rollout::{Driver, RolloutOptions, Trajectory};

/// Whether an imagined step predicts the mean or samples the predicted distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Noise {
    /// The predicted mean (deterministic; the better choice for deterministic tasks).
    #[default]
    Mean,
    /// A draw from the predicted Gaussian (aleatoric noise, as PETS's TS∞), reproducible
    /// from the seed: step `t` of a rollout uses a generator seeded from `(seed, t)`.
    Sample {
        /// Base seed of the noise.
        seed: u64,
    },
}

/// Options of one imagined step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepOptions {
    /// Mean or sampled prediction.
    pub noise: Noise,
    /// Also compute the members' disagreement (costs one forward pass per member).
    pub uncertainty: bool,
}

/// A batch of model states, `P` paths, with what the step that produced them predicted.
#[derive(Debug, Clone)]
pub struct ModelState {
    /// Family-specific state, `[P, latent_dim]` (for the ensemble: the observation).
    pub latent: Tensor<2>,
    /// Reward of the step that led here, `[P]` (none right after [`WorldModel::encode`]).
    pub reward: Option<Tensor<1>>,
    /// Probability that the episode goes on after the step that led here, `[P]`.
    pub continue_prob: Option<Tensor<1>>,
    /// Epistemic uncertainty of the step that led here, `[P]`, when asked for.
    pub uncertainty: Option<Tensor<1>>,
    /// 1 where the state lies in the region the model knows from data, 0 where it does not
    /// (the path is then halted), `[P]`; none if the family does not track its support.
    pub in_support: Option<Tensor<1>>,
    /// Per-path bounds `[P, latent_dim]` of the known region, for families that halt paths
    /// leaving it: the data's support widened to contain each path's start, so that a path
    /// starting outside it is halted only if it goes further out (an agent that finds
    /// itself beyond its data is not left indifferent between all plans).
    pub support_bounds: Option<(Tensor<2>, Tensor<2>)>,
    /// Steps taken since encoding.
    pub step: usize,
}

/// What a state means in the task's terms.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Observations, `[P, obs_dim]`.
    pub obs: Tensor<2>,
    /// Rewards of the step that led here, `[P]`.
    pub reward: Option<Tensor<1>>,
    /// Continue probabilities of the step that led here, `[P]`.
    pub continue_prob: Option<Tensor<1>>,
    /// Whether the state lies in the model's known region, `[P]` (see [`ModelState`]).
    pub in_support: Option<Tensor<1>>,
}

/// One action per path for one step.
#[derive(Debug, Clone)]
pub enum ActionBatch {
    /// Indices into a discrete space, `[P]`. An index outside `0..n` encodes as no action
    /// at all (an all-zero one-hot row): device data is not checked, to avoid a sync.
    Discrete(Tensor<1, Int>),
    /// Continuous actions, `[P, action_dim]`, clipped to the action box.
    Continuous(Tensor<2>),
    /// Actions already encoded as the model's input (one-hot or clipped), `[P, encoded_dim]`.
    Encoded(Tensor<2>),
}

impl ActionBatch {
    /// The model-input encoding of this batch for `paths` paths.
    pub fn encode(&self, codec: &ActionCodec, paths: usize) -> Result<Tensor<2>> {
        let bad = |found: String| {
            Err(WorldModelError::shape(
                "action batch",
                format!("{paths} × ({})", codec.describe()),
                found,
            ))
        };
        match (self, codec) {
            (ActionBatch::Discrete(idx), ActionCodec::Discrete { n }) => {
                let [p] = idx.dims();
                if p != paths {
                    return bad(format!("{p} indices"));
                }
                let device = idx.device();
                let classes = Tensor::<1, Int>::arange(0..*n as i64, &device).reshape([1, *n]);
                Ok(idx
                    .clone()
                    .reshape([p, 1])
                    .expand([p, *n])
                    .equal(classes.expand([p, *n]))
                    .float())
            }
            (ActionBatch::Continuous(a), ActionCodec::Continuous { low, .. }) => {
                let dims = a.dims();
                if dims != [paths, low.len()] {
                    return bad(format!("continuous {dims:?}"));
                }
                Ok(codec.clip(a.clone()))
            }
            (ActionBatch::Encoded(a), _) => {
                let dims = a.dims();
                if dims != [paths, codec.encoded_dim()] {
                    return bad(format!("encoded {dims:?}"));
                }
                Ok(a.clone())
            }
            (ActionBatch::Discrete(_), _) => bad("discrete indices".into()),
            (ActionBatch::Continuous(_), _) => bad("continuous values".into()),
        }
    }
}

/// Scores of a model on a dataset, in normalized units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossReport {
    /// The training objective: Gaussian negative log-likelihood (summed over members) plus
    /// weighted termination cross-entropy and log-variance bound penalty.
    pub total: f32,
    /// Gaussian negative log-likelihood, mean over members, rows and dimensions.
    pub nll: f32,
    /// Termination cross-entropy, mean over members and rows.
    pub termination_bce: f32,
    /// Squared error of each member's mean, mean over rows and target dimensions.
    pub mse_per_member: Vec<f32>,
}

/// What a call to [`WorldModel::fit`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// Gradient steps taken.
    pub steps: usize,
    /// Transitions trained on.
    pub train_size: usize,
    /// Transitions held out.
    pub holdout_size: usize,
    /// Mean training loss of the last epoch.
    pub final_train_loss: f32,
    /// Held-out mean squared error (normalized units) of each member, of the kept weights;
    /// empty without a held-out split.
    pub holdout_mse: Vec<f32>,
    /// Whether early stopping ended training before `max_epochs`.
    pub stopped_early: bool,
    /// Every epoch's training loss and held-out errors, in order.
    #[serde(default)]
    pub history: Vec<plasma_protocol::EpochFit>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A world model: one family's implementation of the contract.
///
/// Everything is batched: `P` paths are stepped by one call, and a family evaluates them in
/// as few tensor operations as it can (the ensemble: one batched matrix product per layer
/// for all paths and members).
pub trait WorldModel: Send {
    /// The family's registered name.
    fn family(&self) -> &str;
    /// The configuration this model was built from (what [`WorldModel::save`] writes).
    fn config(&self) -> WorldModelConfig;
    /// The task modelled.
    fn spec(&self) -> &TaskSpec;
    /// How actions are encoded.
    fn codec(&self) -> &ActionCodec;
    /// The device the model computes on (inference; training uses its autodiff twin).
    fn device(&self) -> &Device;
    /// Number of members; imagined path `p` follows member `p % members()` (TS∞).
    fn members(&self) -> usize;
    /// Whether the model has been fitted to data at least once (or loaded trained).
    fn is_trained(&self) -> bool;
    /// Reward per step of a halted path (one that left the known region), if the family
    /// halts paths.
    fn halt_reward(&self) -> Option<f32> {
        None
    }

    /// The states of observations `[P, obs_dim]`.
    fn encode(&self, obs: Tensor<2>) -> Result<ModelState>;
    /// One imagined step of every path.
    fn transition(
        &self,
        state: &ModelState,
        action: &ActionBatch,
        options: &StepOptions,
    ) -> Result<ModelState>;
    /// The observations, rewards and continue probabilities of states.
    fn decode(&self, state: &ModelState) -> Result<Decoded>;

    /// Imagined paths from `start` (`[P, obs_dim]`) over `horizon` steps, driven by
    /// `driver`. See [`crate::rollout`].
    fn rollout(
        &self,
        start: Tensor<2>,
        driver: Driver<'_>,
        horizon: usize,
        options: &RolloutOptions,
    ) -> Result<Trajectory> {
        crate::rollout::rollout(self, start, driver, horizon, options)
    }

    /// Scores the model on `data` without changing it.
    fn loss(&self, data: &Dataset) -> Result<LossReport>;
    /// Trains on `data` (from the current weights: a fresh model learns, a trained or
    /// loaded one is fine-tuned).
    fn fit(&mut self, data: &Dataset, config: &TrainConfig) -> Result<TrainReport>;
    /// Writes the model to directory `dir` (created if missing): its config, weights and
    /// whatever else the family needs to reload it to identical predictions.
    fn save(&self, dir: &Path) -> Result<()>;
}
