//! Model-predictive path integral control: refit the sequence distribution to all
//! candidates, weighted by `exp((G − max G) / (λ · std G))`. The temperature `λ` is
//! relative to the spread of the returns, so one setting suits tasks whose rewards differ
//! in scale.

use crate::value::TerminalValue;
use serde::{Deserialize, Serialize};

use super::{Plan, Planner, Search, SearchConfig};
use crate::error::{Result, WorldModelError};
use crate::model::WorldModel;

/// Settings of [`Mppi`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MppiConfig {
    /// Search settings (horizon, population, iterations, smoothing, ...).
    #[serde(flatten)]
    pub search: SearchConfig,
    /// Temperature `λ`, in units of the standard deviation of the candidates' returns.
    pub temperature: f32,
}

impl Default for MppiConfig {
    fn default() -> Self {
        MppiConfig {
            search: SearchConfig::default(),
            temperature: 0.5,
        }
    }
}

/// MPPI planner.
#[derive(Debug, Clone)]
pub struct Mppi {
    search: Search,
    temperature: f32,
}

impl Mppi {
    /// An MPPI planner; fails on out-of-range settings.
    pub fn new(config: MppiConfig) -> Result<Self> {
        if !(config.temperature.is_finite() && config.temperature > 0.0) {
            return Err(WorldModelError::Config(format!(
                "temperature must be positive, got {}",
                config.temperature
            )));
        }
        Ok(Mppi {
            search: Search::new(config.search)?,
            temperature: config.temperature,
        })
    }
}

/// Softmax weights of scores at a temperature relative to their spread.
pub(crate) fn softmax_weights(scores: &[f32], temperature: f32, weights: &mut [f32]) {
    let n = scores.len() as f32;
    let max = scores.iter().copied().fold(f32::MIN, f32::max);
    let mean = scores.iter().sum::<f32>() / n;
    let std = (scores.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / n).sqrt();
    let scale = temperature * std.max(1e-6);
    let mut total = 0.0;
    for (w, s) in weights.iter_mut().zip(scores) {
        *w = ((s - max) / scale).exp();
        total += *w;
    }
    weights.iter_mut().for_each(|w| *w /= total);
}

impl Planner for Mppi {
    fn plan(&mut self, model: &dyn WorldModel, starts: &[f32]) -> Result<Plan> {
        let temperature = self.temperature;
        self.search
            .run(model, starts, &|s, w| softmax_weights(s, temperature, w))
    }

    fn reset(&mut self) {
        self.search.reset();
    }

    fn set_terminal_value(&mut self, value: Option<TerminalValue>) {
        self.search.terminal_value = value;
    }

    fn horizon(&self) -> usize {
        self.search.config.horizon
    }
}
