//! The `ensemble` family: a probabilistic ensemble of MLPs (PETS) predicting the change of
//! observation, the reward and termination, with all members in one batched computation.

pub mod net;

use std::path::Path;

use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use plasma_protocol::TaskSpec;

use crate::action::ActionCodec;
use crate::checkpoint;
use crate::config::{ENSEMBLE, EnsembleConfig, NormalizerUpdate, TrainConfig, WorldModelConfig};
use crate::data::Dataset;
use crate::error::{Result, WorldModelError};
use crate::model::{
    ActionBatch, Decoded, LossReport, ModelState, Noise, StepOptions, TrainReport, WorldModel,
};
use crate::normalize::{Normalizers, Support};
use crate::rollout::step_noise;
use crate::termination::DeclaredTermination;
use crate::train;

pub use net::{EnsembleNet, Heads};

/// Normalizer tensors on the inference device, split the way a step uses them.
#[derive(Debug, Clone)]
struct DeviceNorm {
    in_mean: Tensor<2>,
    in_inv_std: Tensor<2>,
    delta_mean: Tensor<2>,
    delta_std: Tensor<2>,
    reward_mean: f32,
    reward_std: f32,
    /// Widened support bounds `[1, obs_dim]`, when paths are halted outside them.
    support: Option<(Tensor<2>, Tensor<2>)>,
    /// Bounds `[1, obs_dim]` the observations fed to the networks are clamped to.
    clamp: Option<(Tensor<2>, Tensor<2>)>,
}

impl DeviceNorm {
    fn new(norm: &Normalizers, obs_dim: usize, config: &EnsembleConfig, device: &Device) -> Self {
        let (in_mean, in_inv_std) = norm.input.tensors(device);
        let (t_mean, t_std) = norm.target.tensors_std(device);
        DeviceNorm {
            in_mean,
            in_inv_std,
            delta_mean: t_mean.narrow(1, 0, obs_dim),
            delta_std: t_std.narrow(1, 0, obs_dim),
            reward_mean: norm.target.mean[obs_dim],
            reward_std: norm.target.std[obs_dim],
            support: match (&norm.support, config.support_margin) {
                (Some(s), Some(m)) => Some(s.bounds(m, device)),
                _ => None,
            },
            clamp: match (&norm.support, config.input_clamp) {
                (Some(s), Some(m)) => Some(s.bounds(m, device)),
                _ => None,
            },
        }
    }
}

/// A probabilistic ensemble world model (family `"ensemble"`).
///
/// The state of a path is its observation. A step normalizes `[obs, encoded action]`,
/// evaluates member `p % E` on path `p` (all members in one batched product), and
/// de-normalizes the predicted change of observation and reward. The continue probability
/// is the learned termination logit's `1 − sigmoid(logit)`, times the task's declared rule
/// applied to the predicted observation (0 outside its bounds, 1 inside; see
/// [`crate::termination`]) when the spec declares one.
#[derive(Debug)]
pub struct Ensemble {
    config: EnsembleConfig,
    spec: TaskSpec,
    codec: ActionCodec,
    device: Device,
    /// The trainable copy, on the autodiff twin of `device`.
    train_net: EnsembleNet,
    /// The inference copy (`train_net.valid()`), on `device`.
    net: EnsembleNet,
    norm: Normalizers,
    device_norm: DeviceNorm,
    /// The spec's termination rule on the device; `None`: the learned head decides.
    termination: Option<DeclaredTermination>,
    trained: bool,
}

impl Ensemble {
    /// A fresh (untrained) ensemble for `spec`'s task on `device`.
    pub fn new(config: EnsembleConfig, spec: TaskSpec, device: Device) -> Result<Self> {
        config.validate()?;
        // Checks the spec and refuses what cannot be modelled.
        let probe = Dataset::new(&spec)?;
        let (obs_dim, action_dim) = (probe.obs_dim(), probe.action_dim());
        let train_net = EnsembleNet::new(
            &config,
            obs_dim + action_dim,
            obs_dim + 1,
            &device.clone().autodiff(),
        );
        let norm = Normalizers::identity(obs_dim, action_dim);
        let termination = spec
            .termination
            .as_ref()
            .map(|rule| DeclaredTermination::new(rule, obs_dim, &device))
            .transpose()?;
        Ok(Ensemble {
            termination,
            net: train_net.valid(),
            train_net,
            device_norm: DeviceNorm::new(&norm, obs_dim, &config, &device),
            norm,
            codec: probe.codec().clone(),
            config,
            spec,
            device,
            trained: false,
        })
    }

    /// Builds an ensemble from a family document (the registry's entry point).
    pub fn from_config(
        config: &WorldModelConfig,
        spec: &TaskSpec,
        device: &Device,
    ) -> Result<Self> {
        Ensemble::new(config.parse_params()?, spec.clone(), device.clone())
    }

    /// Reads an ensemble saved by [`WorldModel::save`] (the registry's entry point).
    pub fn load(dir: &Path, doc: &checkpoint::ModelDocument, device: &Device) -> Result<Self> {
        let mut model = Ensemble::from_config(&doc.config, &doc.spec, device)?;
        let norm = checkpoint::read_normalizers(dir)?;
        norm.validate(model.obs_dim(), model.codec.encoded_dim())?;
        let train_net = checkpoint::read_weights(dir, model.train_net.clone())?;
        model.set_net(train_net);
        model.set_normalizers(norm);
        model.trained = doc.trained;
        Ok(model)
    }

    /// The typed configuration.
    pub fn ensemble_config(&self) -> &EnsembleConfig {
        &self.config
    }

    /// The normalizers in use.
    pub fn normalizers(&self) -> &Normalizers {
        &self.norm
    }

    /// The inference network.
    pub fn net(&self) -> &EnsembleNet {
        &self.net
    }

    /// Values per observation.
    pub fn obs_dim(&self) -> usize {
        self.spec.observation_space.dim()
    }

    fn set_net(&mut self, train_net: EnsembleNet) {
        self.net = train_net.valid();
        self.train_net = train_net;
    }

    fn set_normalizers(&mut self, norm: Normalizers) {
        self.device_norm = DeviceNorm::new(&norm, self.obs_dim(), &self.config, &self.device);
        self.norm = norm;
    }

    /// Normalized model input `[P, in]` of states and actions.
    fn normalized_input(&self, obs: &Tensor<2>, action: &ActionBatch) -> Result<Tensor<2>> {
        let [p, d] = obs.dims();
        if d != self.obs_dim() {
            return Err(WorldModelError::shape(
                "state",
                format!("[P, {}]", self.obs_dim()),
                format!("[{p}, {d}]"),
            ));
        }
        let a = action.encode(&self.codec, p)?;
        let obs = match &self.device_norm.clamp {
            Some((lo, hi)) => obs
                .clone()
                .max_pair(lo.clone().expand([p, d]))
                .min_pair(hi.clone().expand([p, d])),
            None => obs.clone(),
        };
        let x = Tensor::cat(vec![obs, a], 1);
        Ok((x - self.device_norm.in_mean.clone()) * self.device_norm.in_inv_std.clone())
    }

    /// Heads of the member each path follows (TS∞): path `p` goes to member `p % E`. The
    /// rows are regrouped `[P, in] → [E, ⌈P/E⌉, in]` (padding the last group) so that all
    /// members run in one batched product.
    fn forward_ts(
        &self,
        xn: Tensor<2>,
        with_logvar: bool,
    ) -> (Tensor<2>, Option<Tensor<2>>, Tensor<1>) {
        let [p, inp] = xn.dims();
        let e = self.config.members;
        let m = p.div_ceil(e);
        let padded = m * e;
        let xn = if padded > p {
            Tensor::cat(vec![xn, Tensor::zeros([padded - p, inp], &self.device)], 0)
        } else {
            xn
        };
        let xs = xn.reshape([m, e, inp]).swap_dims(0, 1);
        let heads = self.net.heads(self.net.forward(xs), with_logvar);
        let back = |t: Tensor<3>| {
            let [_, _, k] = t.dims();
            let t = t.swap_dims(0, 1).reshape([padded, k]);
            if padded > p { t.narrow(0, 0, p) } else { t }
        };
        let term = back(heads.term_logit).reshape([p]);
        (back(heads.mean), heads.logvar.map(back), term)
    }

    /// Heads of every member for every path (`[E, P, ·]`), for the disagreement.
    fn forward_all(&self, xn: Tensor<2>, with_logvar: bool) -> Heads {
        let [p, inp] = xn.dims();
        let xs = xn
            .unsqueeze_dim::<3>(0)
            .expand([self.config.members, p, inp]);
        self.net.heads(self.net.forward(xs), with_logvar)
    }

    /// Mask `[E, P, 1]` selecting member `p % E` for path `p`.
    fn member_mask(&self, p: usize) -> Tensor<3> {
        let e = self.config.members;
        let values: Vec<f32> = (0..e)
            .flat_map(|m| (0..p).map(move |i| if i % e == m { 1.0 } else { 0.0 }))
            .collect();
        Tensor::from_data(TensorData::new(values, [e, p, 1]), &self.device)
    }

    /// Means of each member's prediction for transitions, de-normalized: `[E, P, obs_dim + 1]`
    /// host rows (Δobs then reward) and the members' learned termination probabilities
    /// `[E, P]` (the heads', even when the task declares its termination).
    /// For diagnostics and audits (e.g. MOReL's pairwise discrepancy).
    pub fn member_predictions(
        &self,
        obs: Tensor<2>,
        action: &ActionBatch,
    ) -> Result<(Tensor<3>, Tensor<2>)> {
        let xn = self.normalized_input(&obs, action)?;
        let heads = self.forward_all(xn, false);
        let (t_mean, t_std) = self.norm.target.tensors_std(&self.device);
        let mean = heads.mean * t_std.unsqueeze_dim::<3>(0) + t_mean.unsqueeze_dim::<3>(0);
        let [e, p, _] = heads.term_logit.dims();
        Ok((mean, sigmoid(heads.term_logit).reshape([e, p])))
    }
}

impl WorldModel for Ensemble {
    fn family(&self) -> &str {
        ENSEMBLE
    }

    fn config(&self) -> WorldModelConfig {
        WorldModelConfig::ensemble(&self.config)
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
        self.config.members
    }

    fn is_trained(&self) -> bool {
        self.trained
    }

    fn encode(&self, obs: Tensor<2>) -> Result<ModelState> {
        let [p, d] = obs.dims();
        if d != self.obs_dim() || p == 0 {
            return Err(WorldModelError::shape(
                "observations",
                format!("[P ≥ 1, {}]", self.obs_dim()),
                format!("[{p}, {d}]"),
            ));
        }
        let support_bounds = self.device_norm.support.as_ref().map(|(lo, hi)| {
            (
                lo.clone().expand([p, d]).min_pair(obs.clone()),
                hi.clone().expand([p, d]).max_pair(obs.clone()),
            )
        });
        Ok(ModelState {
            latent: obs,
            reward: None,
            continue_prob: None,
            uncertainty: None,
            in_support: None,
            support_bounds,
            step: 0,
        })
    }

    fn transition(
        &self,
        state: &ModelState,
        action: &ActionBatch,
        options: &StepOptions,
    ) -> Result<ModelState> {
        let xn = self.normalized_input(&state.latent, action)?;
        let [p, _] = xn.dims();
        let d = self.obs_dim();
        let sample = matches!(options.noise, Noise::Sample { .. });
        let (mut mean, logvar, term, uncertainty) = if options.uncertainty {
            let heads = self.forward_all(xn, sample);
            let uncertainty = heads
                .mean
                .clone()
                .var_bias(0)
                .mean_dim(2)
                .sqrt()
                .reshape([p]);
            let mask = self.member_mask(p);
            let own = |t: Tensor<3>| {
                let [_, _, k] = t.dims();
                (t * mask.clone()).sum_dim(0).reshape([p, k])
            };
            let term = own(heads.term_logit).reshape([p]);
            (
                own(heads.mean),
                heads.logvar.map(own),
                term,
                Some(uncertainty),
            )
        } else {
            let (mean, logvar, term) = self.forward_ts(xn, sample);
            (mean, logvar, term, None)
        };
        if let (Noise::Sample { seed }, Some(logvar)) = (options.noise, logvar) {
            let t = d + 1;
            let eps = Tensor::<2>::from_data(
                TensorData::new(step_noise(seed, state.step, p * t), [p, t]),
                &self.device,
            );
            mean = mean + logvar.mul_scalar(0.5).exp() * eps;
        }
        let n = &self.device_norm;
        let delta = mean.clone().narrow(1, 0, d) * n.delta_std.clone() + n.delta_mean.clone();
        let reward = mean
            .narrow(1, d, 1)
            .reshape([p])
            .mul_scalar(n.reward_std)
            .add_scalar(n.reward_mean);
        let latent = state.latent.clone() + delta;
        let bounds = match (&state.support_bounds, &n.support) {
            (Some((lo, hi)), _) => Some((lo.clone(), hi.clone())),
            (None, Some((lo, hi))) => Some((lo.clone().expand([p, d]), hi.clone().expand([p, d]))),
            (None, None) => None,
        };
        let in_support = bounds.as_ref().map(|(lo, hi)| {
            let above = latent.clone().greater_equal(lo.clone());
            let below = latent.clone().lower_equal(hi.clone());
            (above.float() * below.float()).min_dim(1).reshape([p])
        });
        // The learned head's soft risk (a pole tilting towards its limit) times the
        // declared rule's certainty (a state beyond the rule's bounds has ended).
        let learned = sigmoid(term.neg());
        let continue_prob = match &self.termination {
            Some(rule) => learned * rule.continue_prob(&latent),
            None => learned,
        };
        Ok(ModelState {
            latent,
            reward: Some(reward),
            continue_prob: Some(continue_prob),
            uncertainty,
            in_support,
            support_bounds: bounds,
            step: state.step + 1,
        })
    }

    fn decode(&self, state: &ModelState) -> Result<Decoded> {
        Ok(Decoded {
            obs: state.latent.clone(),
            reward: state.reward.clone(),
            continue_prob: state.continue_prob.clone(),
            in_support: state.in_support.clone(),
        })
    }

    fn halt_reward(&self) -> Option<f32> {
        self.norm.support.as_ref().map(|s| s.reward_min.min(0.0))
    }

    fn loss(&self, data: &Dataset) -> Result<LossReport> {
        self.check_data(data)?;
        train::evaluate(&self.net, &self.norm, data, &self.device)
    }

    fn fit(&mut self, data: &Dataset, config: &TrainConfig) -> Result<TrainReport> {
        config.validate()?;
        self.check_data(data)?;
        if data.is_empty() {
            return Err(WorldModelError::EmptyDataset("nothing to train on".into()));
        }
        let refit = match config.normalizer {
            NormalizerUpdate::Auto => !self.trained,
            NormalizerUpdate::Refit => true,
            NormalizerUpdate::Keep => false,
        };
        // The support only grows: it is the region of all data the model was fitted to.
        let support = match (&self.norm.support, Support::of(data)) {
            (Some(old), Some(new)) if self.trained => Some(old.union(&new)),
            (_, new) => new,
        };
        let mut norm = if refit {
            Normalizers::fit(data)?
        } else {
            self.norm.clone()
        };
        norm.support = support;
        self.set_normalizers(norm);
        let (net, report) = train::train(
            self.train_net.clone(),
            &self.norm,
            data,
            config,
            &self.device,
        )?;
        self.set_net(net);
        self.trained = true;
        Ok(report)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save(
            dir,
            &checkpoint::ModelDocument::new(self.config(), self.spec.clone(), self.trained),
            &self.norm,
            self.train_net.clone(),
        )
    }
}

impl Ensemble {
    fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.obs_dim() != self.obs_dim() || data.codec() != &self.codec {
            return Err(WorldModelError::shape(
                "dataset",
                format!(
                    "{} observation values, {}",
                    self.obs_dim(),
                    self.codec.describe()
                ),
                format!(
                    "{} observation values, {}",
                    data.obs_dim(),
                    data.codec().describe()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
