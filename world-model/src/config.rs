//! Configuration: which family a world model is and its parameters, and how it is trained.
//!
//! A [`WorldModelConfig`] is the JSON document that names a family and carries that
//! family's parameters beside the name, e.g.
//! `{"family": "ensemble", "members": 5, "hidden": [128, 128, 128]}`; the registry hands the
//! parameters to the family, which parses them into its own typed config (for the
//! ensemble, [`EnsembleConfig`]), refusing unknown fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, WorldModelError};

/// The family name of the probabilistic ensemble.
pub const ENSEMBLE: &str = "ensemble";

/// A world model's configuration: the family's name and the family's own parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorldModelConfig {
    /// Registered family name, e.g. `"ensemble"`.
    pub family: String,
    /// The family's parameters, parsed by the family itself.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

impl WorldModelConfig {
    /// A configuration of the ensemble family with these parameters.
    pub fn ensemble(config: &EnsembleConfig) -> Self {
        let params = match serde_json::to_value(config) {
            Ok(Value::Object(map)) => map,
            // A struct always serializes to an object.
            _ => Map::new(),
        };
        WorldModelConfig {
            family: ENSEMBLE.to_owned(),
            params,
        }
    }

    /// Parses a configuration from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|source| WorldModelError::Json {
            what: "world-model config".into(),
            source,
        })
    }

    /// Parses the parameters into a family's typed config.
    pub fn parse_params<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_value(Value::Object(self.params.clone())).map_err(|source| {
            WorldModelError::Json {
                what: format!("parameters of family {:?}", self.family),
                source,
            }
        })
    }
}

impl Default for WorldModelConfig {
    fn default() -> Self {
        WorldModelConfig::ensemble(&EnsembleConfig::default())
    }
}

/// Hidden-layer activation of the ensemble's MLPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · sigmoid(x)` (swish), as in PETS and mbrl-lib.
    #[default]
    Silu,
    /// `max(x, 0)`.
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

/// Parameters of the probabilistic ensemble family.
///
/// Each member is an MLP from the normalized `[observation, encoded action]` to the
/// normalized change of observation and reward (a mean and a bounded log-variance for each)
/// and a termination logit. All members are evaluated in one batched computation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnsembleConfig {
    /// Number of members (bootstrapped networks).
    pub members: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Hidden-layer activation.
    pub activation: Activation,
    /// Initial upper soft bound of the predicted log-variance (normalized units).
    pub max_logvar: f32,
    /// Initial lower soft bound of the predicted log-variance (normalized units).
    pub min_logvar: f32,
    /// Learn the log-variance bounds (PETS) rather than keep them fixed.
    pub learn_logvar_bounds: bool,
    /// Halt imagined paths whose observation leaves the data's support widened by this
    /// fraction of each dimension's range (MOReL-style pessimism: a halted path earns
    /// `min(lowest reward seen, 0)` per step from then on); `None` never halts. Off by
    /// default: for control it can trap the agent in the region it has already visited
    /// (measured on CartPole: the cart stops at the edge of the visited positions and the
    /// pole falls); audits of phantom paths turn it on.
    pub support_margin: Option<f32>,
    /// Clamp the observation part of the model's input to the data's support widened by
    /// this fraction of each dimension's range, so that beyond its data the model
    /// extrapolates as a constant instead of along its last units' slopes. Dynamics that do
    /// not depend on a coordinate (CartPole's cart position) then stay right far from the
    /// visited region; `None` feeds observations as they are.
    pub input_clamp: Option<f32>,
    /// Seed of the weight initialization.
    pub seed: u64,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            members: 5,
            hidden: vec![128, 128, 128],
            activation: Activation::Silu,
            max_logvar: 0.5,
            min_logvar: -10.0,
            learn_logvar_bounds: true,
            support_margin: None,
            input_clamp: None,
            seed: 0,
        }
    }
}

/// Most members an ensemble may have: a guard against absurd configs from the wire.
pub const MAX_MEMBERS: usize = 64;
/// Widest hidden layer accepted.
pub const MAX_WIDTH: usize = 8192;
/// Most hidden layers accepted.
pub const MAX_LAYERS: usize = 16;

impl EnsembleConfig {
    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if self.members == 0 || self.members > MAX_MEMBERS {
            return bad(format!(
                "members must be 1..={MAX_MEMBERS}, got {}",
                self.members
            ));
        }
        if self.hidden.is_empty() || self.hidden.len() > MAX_LAYERS {
            return bad(format!(
                "hidden must have 1..={MAX_LAYERS} layers, got {}",
                self.hidden.len()
            ));
        }
        if let Some(w) = self.hidden.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            return bad(format!("hidden widths must be 1..={MAX_WIDTH}, got {w}"));
        }
        if !(self.min_logvar.is_finite()
            && self.max_logvar.is_finite()
            && self.min_logvar < self.max_logvar)
        {
            return bad(format!(
                "need finite min_logvar < max_logvar, got {} and {}",
                self.min_logvar, self.max_logvar
            ));
        }
        if let Some(m) = self.support_margin
            && !(m.is_finite() && m >= 0.0)
        {
            return bad(format!("support_margin must be non-negative, got {m}"));
        }
        if let Some(m) = self.input_clamp
            && !(m.is_finite() && m >= 0.0)
        {
            return bad(format!("input_clamp must be non-negative, got {m}"));
        }
        Ok(())
    }
}

/// How [`crate::WorldModel::fit`] treats the normalizers of inputs and targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormalizerUpdate {
    /// Recompute from the data if the model was never trained, else keep: a first fit
    /// learns the data's scales, a fine-tuning on a little new data does not distort them.
    #[default]
    Auto,
    /// Recompute from the data given to this fit (mbrl-lib's behaviour when refitting on the
    /// whole replay buffer).
    Refit,
    /// Keep the current normalizers.
    Keep,
}

/// How to train a model on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Most passes over the training split.
    pub max_epochs: usize,
    /// Rows per member per gradient step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// L2 weight decay added to the gradients (PETS uses 2.5e-5 to 1e-4).
    pub weight_decay: f32,
    /// Fraction of the data held out for early stopping and the reported validation score.
    pub holdout_fraction: f32,
    /// Most held-out transitions (the rest trains).
    pub max_holdout: usize,
    /// Epochs without a relative improvement of at least `min_improvement` in any member's
    /// held-out error after which training stops (the best weights are kept).
    pub patience: usize,
    /// Relative improvement that counts as progress for early stopping.
    pub min_improvement: f32,
    /// Train each member on its own bootstrap resample of the training split.
    pub bootstrap: bool,
    /// Weight of the termination cross-entropy beside the Gaussian negative log-likelihood.
    pub termination_weight: f32,
    /// Weight of terminal transitions in the termination cross-entropy relative to the
    /// others; `None` balances the classes (weight = non-terminal / terminal count, capped
    /// at 100), which makes the rare terminal transitions of a small dataset count.
    pub termination_pos_weight: Option<f32>,
    /// Weight of the penalty `Σ max_logvar − Σ min_logvar` that keeps the bounds tight.
    pub logvar_bound_weight: f32,
    /// Treatment of the normalizers.
    pub normalizer: NormalizerUpdate,
    /// Seed of the split, the bootstrap and the minibatch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            max_epochs: 100,
            batch_size: 256,
            learning_rate: 1e-3,
            weight_decay: 5e-5,
            holdout_fraction: 0.1,
            max_holdout: 5000,
            patience: 8,
            min_improvement: 0.01,
            bootstrap: true,
            termination_weight: 1.0,
            termination_pos_weight: None,
            logvar_bound_weight: 0.01,
            normalizer: NormalizerUpdate::Auto,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks the parameters' ranges.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if self.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            ));
        }
        if !(0.0..0.9).contains(&self.holdout_fraction) {
            return bad(format!(
                "holdout_fraction must be in [0, 0.9), got {}",
                self.holdout_fraction
            ));
        }
        for (name, v) in [
            ("weight_decay", self.weight_decay),
            ("min_improvement", self.min_improvement),
            ("termination_weight", self.termination_weight),
            ("logvar_bound_weight", self.logvar_bound_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and non-negative, got {v}"));
            }
        }
        if let Some(w) = self.termination_pos_weight
            && !(w.is_finite() && w > 0.0)
        {
            return bad(format!("termination_pos_weight must be positive, got {w}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_config_round_trips_through_the_family_document() {
        let config = EnsembleConfig {
            members: 3,
            hidden: vec![32, 32],
            ..EnsembleConfig::default()
        };
        let doc = WorldModelConfig::ensemble(&config);
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.contains("\"family\":\"ensemble\""));
        let back = WorldModelConfig::from_json(&text).unwrap();
        assert_eq!(back.family, ENSEMBLE);
        assert_eq!(back.parse_params::<EnsembleConfig>().unwrap(), config);
    }

    #[test]
    fn missing_fields_take_defaults_and_unknown_fields_are_errors() {
        let doc = WorldModelConfig::from_json(r#"{"family":"ensemble","members":7}"#).unwrap();
        let config: EnsembleConfig = doc.parse_params().unwrap();
        assert_eq!(config.members, 7);
        assert_eq!(config.hidden, EnsembleConfig::default().hidden);
        let doc = WorldModelConfig::from_json(r#"{"family":"ensemble","layers":7}"#).unwrap();
        assert!(matches!(
            doc.parse_params::<EnsembleConfig>(),
            Err(WorldModelError::Json { .. })
        ));
        assert!(WorldModelConfig::from_json(r#"{"members":7}"#).is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let mut c = EnsembleConfig {
            members: 0,
            ..EnsembleConfig::default()
        };
        assert!(c.validate().is_err());
        c.members = 2;
        c.hidden = vec![];
        assert!(c.validate().is_err());
        c.hidden = vec![8];
        c.min_logvar = 1.0;
        assert!(c.validate().is_err());
        let t = TrainConfig {
            learning_rate: f64::NAN,
            ..TrainConfig::default()
        };
        assert!(t.validate().is_err());
        assert!(TrainConfig::default().validate().is_ok());
    }
}
