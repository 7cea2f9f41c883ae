//! The cross-entropy method (PETS's optimizer): refit the sequence distribution to the
//! best `elites` candidates of each start state, equally weighted.

use crate::value::TerminalValue;
use serde::{Deserialize, Serialize};

use super::{Plan, Planner, Search, SearchConfig};
use crate::error::{Result, WorldModelError};
use crate::model::WorldModel;

/// Settings of [`Cem`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CemConfig {
    /// Search settings (horizon, population, iterations, smoothing, ...).
    #[serde(flatten)]
    pub search: SearchConfig,
    /// Candidates per start state the distribution is refitted to.
    pub elites: usize,
}

impl Default for CemConfig {
    fn default() -> Self {
        CemConfig {
            search: SearchConfig::default(),
            elites: 30,
        }
    }
}

/// Cross-entropy-method planner.
#[derive(Debug, Clone)]
pub struct Cem {
    pub(crate) search: Search,
    elites: usize,
}

impl Cem {
    /// A CEM planner; fails on out-of-range settings.
    pub fn new(config: CemConfig) -> Result<Self> {
        if config.elites == 0 || config.elites > config.search.population {
            return Err(WorldModelError::Config(format!(
                "elites must be 1..={}, got {}",
                config.search.population, config.elites
            )));
        }
        Ok(Cem {
            search: Search::new(config.search)?,
            elites: config.elites,
        })
    }
}

/// Equal weights on the `elites` highest scores (ties broken by candidate order).
pub(crate) fn elite_weights(scores: &[f32], elites: usize, weights: &mut [f32]) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    weights.iter_mut().for_each(|w| *w = 0.0);
    let k = elites.min(scores.len());
    for &i in &order[..k] {
        weights[i] = 1.0 / k as f32;
    }
}

impl Planner for Cem {
    fn plan(&mut self, model: &dyn WorldModel, starts: &[f32]) -> Result<Plan> {
        let elites = self.elites;
        self.search
            .run(model, starts, &|s, w| elite_weights(s, elites, w))
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
