//! Planners: sampling-based optimizers of action sequences in the model (CEM, MPPI),
//! batched across start states so that planning for `N` states costs one batched rollout
//! per iteration.
//!
//! Both planners keep, per start state, a distribution over `H`-step action sequences:
//! - continuous actions: an independent Gaussian per step and dimension (mean, std),
//!   samples clipped to the action box;
//! - discrete actions: a categorical per step (the per-step action probabilities, the
//!   standard CEM for CartPole-like tasks).
//!
//! An iteration samples `C` candidate sequences per start, evaluates all `N × C × K`
//! paths (`K` particles per candidate; path `p` follows member `p % E`, so `K = E`
//! evaluates every candidate with every member) in one rollout, scores each candidate by
//! the mean return of its particles, and refits the distribution to weighted candidates:
//! the elites with equal weights (CEM) or all candidates with softmax weights (MPPI).
//! Refits are smoothed: `θ ← α·θ_old + (1 − α)·θ_fit`.
//!
//! The sampling and refitting run on the host (they are `N × C × H` numbers, tiny beside
//! the rollout); the rollout runs on the model's device. After planning, the solution is
//! shifted by one step and kept as the next call's starting distribution (warm start for
//! model-predictive control) as long as the number of start states is unchanged.

pub mod cem;
pub mod mppi;

use burn::tensor::{Tensor, TensorData};
use plasma_protocol::Action;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::action::ActionCodec;
use crate::ensemble::net::normal;
use crate::error::{Result, WorldModelError, check_finite};
use crate::model::{ActionBatch, Noise, WorldModel};
use crate::rollout::{ActionSequences, Driver, Policy, RolloutOptions, start_states};
use crate::value::TerminalValue;

pub use cem::{Cem, CemConfig};
pub use mppi::{Mppi, MppiConfig};

/// The outcome of planning from `N` start states.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The action to take now, per start state.
    pub actions: Vec<Action>,
    /// The same actions encoded as model inputs, `[N, encoded_dim]` row-major.
    pub encoded: Vec<f32>,
    /// Score of the best candidate of the last iteration, per start state.
    pub best_return: Vec<f32>,
    /// Mean score of the weighted candidates of the last iteration, per start state.
    pub expected_return: Vec<f32>,
}

/// A planner of action sequences in a world model.
pub trait Planner: Send {
    /// Plans from `starts` (`[N, obs_dim]` row-major), warm-started from the previous
    /// call's solution when `N` is unchanged.
    fn plan(&mut self, model: &dyn WorldModel, starts: &[f32]) -> Result<Plan>;
    /// Forgets the previous solution (call at the start of an episode).
    fn reset(&mut self);
    /// Steps planned ahead.
    fn horizon(&self) -> usize;
    /// Values the states plans end in (see [`crate::value`]); `None` scores the horizon
    /// alone. Learned for one model: set it again after refitting the model.
    fn set_terminal_value(&mut self, value: Option<TerminalValue>);
}

/// Options shared by the planners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchConfig {
    /// Steps planned ahead.
    pub horizon: usize,
    /// Candidate sequences per start state and iteration.
    pub population: usize,
    /// Refits of the distribution per plan.
    pub iterations: usize,
    /// Model paths per candidate (its score is their mean return).
    pub particles: usize,
    /// Smoothing `α` of refits (weight of the old distribution).
    pub alpha: f32,
    /// Initial standard deviation of continuous actions, as a fraction of the half-range of
    /// the action box (unbounded dimensions: absolute).
    pub init_std: f32,
    /// Smallest standard deviation, same units as `init_std`.
    pub min_std: f32,
    /// Probability mass mixed into a warm-started categorical from the uniform one (keeps
    /// discrete plans exploring).
    pub warm_uniform_mix: f32,
    /// Discount of the returns.
    pub discount: f32,
    /// Mean or sampled model predictions.
    pub noise: Noise,
    /// `λ` of the uncertainty penalty of the scores (`r − λ·u`, MOPO; see
    /// [`crate::rollout`]): keeps plans where the model has data; `0` turns it off (it
    /// costs one forward pass through every member per path and step).
    pub uncertainty_penalty: f32,
    /// Seed of the candidate sampling.
    pub seed: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            horizon: 20,
            population: 300,
            iterations: 4,
            particles: 1,
            alpha: 0.1,
            init_std: 0.5,
            min_std: 0.02,
            warm_uniform_mix: 0.1,
            discount: 1.0,
            noise: Noise::Mean,
            uncertainty_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SearchConfig {
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if self.horizon == 0 || self.population == 0 || self.iterations == 0 || self.particles == 0
        {
            return bad("horizon, population, iterations and particles must be positive".into());
        }
        if !(0.0..1.0).contains(&self.alpha) {
            return bad(format!("alpha must be in [0, 1), got {}", self.alpha));
        }
        let stds_ok = self.init_std.is_finite()
            && self.init_std > 0.0
            && self.min_std.is_finite()
            && self.min_std >= 0.0;
        if !stds_ok {
            return bad("init_std must be positive and min_std non-negative".into());
        }
        if !(0.0..=1.0).contains(&self.warm_uniform_mix) {
            return bad("warm_uniform_mix must be in [0, 1]".into());
        }
        if !(self.uncertainty_penalty.is_finite() && self.uncertainty_penalty >= 0.0) {
            return bad(format!(
                "uncertainty_penalty must be finite and ≥ 0, got {}",
                self.uncertainty_penalty
            ));
        }
        if !(0.0..=1.0).contains(&self.discount) {
            return bad(format!("discount must be in [0, 1], got {}", self.discount));
        }
        Ok(())
    }
}

/// Per-start distributions over action sequences.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SeqDist {
    /// Means and stds, `[N, H, A]`.
    Gaussian { mean: Vec<f32>, std: Vec<f32> },
    /// Probabilities, `[N, H, n]`.
    Categorical { probs: Vec<f32> },
}

/// Sampled candidates, `[N, C, H, ·]`: indices (discrete) or values (continuous).
enum Samples {
    Indices(Vec<u32>),
    Values(Vec<f32>),
}

/// The machinery both planners share: the distribution, sampling, evaluation, refit,
/// warm start.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub(crate) config: SearchConfig,
    rng: SmallRng,
    /// Kept solution for warm starts, with its number of starts.
    pub(crate) previous: Option<(usize, SeqDist)>,
    /// Value of the states candidate paths end in.
    pub(crate) terminal_value: Option<TerminalValue>,
}

/// Half-range of a box dimension (1 for unbounded ones) and its centre.
fn scale_and_centre(lo: f32, hi: f32) -> (f32, f32) {
    if lo.is_finite() && hi.is_finite() {
        ((hi - lo) / 2.0, (hi + lo) / 2.0)
    } else {
        (1.0, 0.0)
    }
}

impl Search {
    pub(crate) fn new(config: SearchConfig) -> Result<Self> {
        config.validate()?;
        Ok(Search {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            previous: None,
            terminal_value: None,
        })
    }

    pub(crate) fn reset(&mut self) {
        self.previous = None;
    }

    fn initial(&self, codec: &ActionCodec, n: usize) -> SeqDist {
        let h = self.config.horizon;
        match codec {
            ActionCodec::Discrete { n: k } => SeqDist::Categorical {
                probs: vec![1.0 / *k as f32; n * h * k],
            },
            ActionCodec::Continuous { low, high } => {
                let (mut mean, mut std) = (vec![], vec![]);
                for _ in 0..n * h {
                    for (lo, hi) in low.iter().zip(high) {
                        let (scale, centre) = scale_and_centre(*lo, *hi);
                        mean.push(centre);
                        std.push(self.config.init_std * scale);
                    }
                }
                SeqDist::Gaussian { mean, std }
            }
        }
    }

    /// The previous solution shifted by one step, or a fresh distribution.
    fn start_dist(&self, codec: &ActionCodec, n: usize) -> SeqDist {
        let fresh = self.initial(codec, n);
        let Some((prev_n, prev)) = &self.previous else {
            return fresh;
        };
        if *prev_n != n {
            return fresh;
        }
        let h = self.config.horizon;
        let width = match codec {
            ActionCodec::Discrete { n: k } => *k,
            ActionCodec::Continuous { low, .. } => low.len(),
        };
        let shift = |old: &[f32], fresh: &[f32]| -> Vec<f32> {
            let mut out = fresh.to_vec();
            for i in 0..n {
                let base = i * h * width;
                out[base..base + (h - 1) * width]
                    .copy_from_slice(&old[base + width..base + h * width]);
            }
            out
        };
        match (prev, fresh) {
            (SeqDist::Gaussian { mean, .. }, SeqDist::Gaussian { mean: m0, std: s0 }) => {
                // The means carry over; the spread is reset so that the search can move.
                SeqDist::Gaussian {
                    mean: shift(mean, &m0),
                    std: s0,
                }
            }
            (SeqDist::Categorical { probs }, SeqDist::Categorical { probs: p0 }) => {
                let mix = self.config.warm_uniform_mix;
                let shifted = shift(probs, &p0);
                SeqDist::Categorical {
                    probs: shifted
                        .iter()
                        .zip(&p0)
                        .map(|(p, u)| (1.0 - mix) * p + mix * u)
                        .collect(),
                }
            }
            (_, fresh) => fresh,
        }
    }

    fn sample(&mut self, dist: &SeqDist, codec: &ActionCodec, n: usize) -> Samples {
        let (h, c) = (self.config.horizon, self.config.population);
        match (dist, codec) {
            (SeqDist::Categorical { probs }, ActionCodec::Discrete { n: k }) => {
                let mut out = Vec::with_capacity(n * c * h);
                for i in 0..n {
                    for _ in 0..c {
                        for t in 0..h {
                            let p = &probs[(i * h + t) * k..(i * h + t + 1) * k];
                            let mut u: f32 = self.rng.random();
                            let mut choice = k - 1;
                            for (j, pj) in p.iter().enumerate() {
                                if u < *pj {
                                    choice = j;
                                    break;
                                }
                                u -= pj;
                            }
                            out.push(choice as u32);
                        }
                    }
                }
                Samples::Indices(out)
            }
            (SeqDist::Gaussian { mean, std }, ActionCodec::Continuous { low, high }) => {
                let a = low.len();
                let mut out = Vec::with_capacity(n * c * h * a);
                for i in 0..n {
                    for _ in 0..c {
                        for t in 0..h {
                            for d in 0..a {
                                let j = (i * h + t) * a + d;
                                let v = mean[j] + std[j] * normal(&mut self.rng);
                                out.push(v.clamp(low[d], high[d]));
                            }
                        }
                    }
                }
                Samples::Values(out)
            }
            // The distribution is always built from the same codec.
            _ => Samples::Values(vec![]),
        }
    }

    /// Scores of all candidates, `[N, C]`: the mean return of each candidate's particles.
    fn evaluate(
        &self,
        model: &dyn WorldModel,
        starts: &[f32],
        samples: &Samples,
        n: usize,
    ) -> Result<Vec<f32>> {
        let codec = model.codec();
        let (h, c, k) = (
            self.config.horizon,
            self.config.population,
            self.config.particles,
        );
        let obs_dim = starts.len() / n;
        let paths = n * c * k;
        let mut start_rows = Vec::with_capacity(paths * obs_dim);
        for i in 0..n {
            for _ in 0..c * k {
                start_rows.extend_from_slice(&starts[i * obs_dim..(i + 1) * obs_dim]);
            }
        }
        let device = model.device();
        let start = start_states(&start_rows, obs_dim, device)?;
        let enc = codec.encoded_dim();
        // Step-major encoded actions [H, P, enc], path p = (i·C + c)·K + particle.
        let mut actions = vec![0f32; h * paths * enc];
        for t in 0..h {
            for cand in 0..n * c {
                for particle in 0..k {
                    let p = cand * k + particle;
                    let row = &mut actions[(t * paths + p) * enc..(t * paths + p + 1) * enc];
                    match samples {
                        Samples::Indices(idx) => row[idx[cand * h + t] as usize] = 1.0,
                        Samples::Values(v) => {
                            row.copy_from_slice(&v[(cand * h + t) * enc..(cand * h + t + 1) * enc])
                        }
                    }
                }
            }
        }
        let actions = ActionSequences::EncodedStepMajor(Tensor::from_data(
            TensorData::new(actions, [h, paths, enc]),
            device,
        ));
        let options = RolloutOptions {
            noise: self.config.noise,
            uncertainty: false,
            record: false,
            discount: self.config.discount,
            uncertainty_penalty: self.config.uncertainty_penalty,
            terminal_value: self.terminal_value.as_ref(),
        };
        let returns = model
            .rollout(start, Driver::Actions(&actions), h, &options)?
            .returns_vec()?;
        let scores: Vec<f32> = returns
            .chunks_exact(k)
            .map(|r| {
                let s = r.iter().sum::<f32>() / k as f32;
                // A non-finite score (a diverging model) ranks last rather than poisoning
                // the refit.
                if s.is_finite() { s } else { f32::MIN }
            })
            .collect();
        Ok(scores)
    }

    /// Refits `dist` to the candidates with per-candidate `weights` (`[N, C]`, each row
    /// summing to 1), smoothed by `alpha`.
    fn refit(&self, dist: &mut SeqDist, samples: &Samples, weights: &[f32], codec: &ActionCodec) {
        let (h, c, alpha) = (
            self.config.horizon,
            self.config.population,
            self.config.alpha,
        );
        let n = weights.len() / c;
        match (dist, samples, codec) {
            (
                SeqDist::Categorical { probs },
                Samples::Indices(idx),
                ActionCodec::Discrete { n: k },
            ) => {
                let mut fit = vec![0f32; probs.len()];
                for i in 0..n {
                    for cand in 0..c {
                        let w = weights[i * c + cand];
                        if w == 0.0 {
                            continue;
                        }
                        for t in 0..h {
                            let a = idx[(i * c + cand) * h + t] as usize;
                            fit[(i * h + t) * k + a] += w;
                        }
                    }
                }
                for (p, f) in probs.iter_mut().zip(fit) {
                    *p = alpha * *p + (1.0 - alpha) * f;
                }
            }
            (
                SeqDist::Gaussian { mean, std },
                Samples::Values(v),
                ActionCodec::Continuous { low, high },
            ) => {
                let a = low.len();
                let mut m = vec![0f32; mean.len()];
                let mut var = vec![0f32; mean.len()];
                for i in 0..n {
                    for cand in 0..c {
                        let w = weights[i * c + cand];
                        if w == 0.0 {
                            continue;
                        }
                        for j in 0..h * a {
                            m[i * h * a + j] += w * v[(i * c + cand) * h * a + j];
                        }
                    }
                    for cand in 0..c {
                        let w = weights[i * c + cand];
                        if w == 0.0 {
                            continue;
                        }
                        for j in 0..h * a {
                            let dv = v[(i * c + cand) * h * a + j] - m[i * h * a + j];
                            var[i * h * a + j] += w * dv * dv;
                        }
                    }
                }
                for (j, ((mu, sd), (fm, fv))) in mean
                    .iter_mut()
                    .zip(std.iter_mut())
                    .zip(m.iter().zip(&var))
                    .enumerate()
                {
                    let d = j % a;
                    let (scale, _) = scale_and_centre(low[d], high[d]);
                    *mu = alpha * *mu + (1.0 - alpha) * fm;
                    *sd =
                        (alpha * *sd + (1.0 - alpha) * fv.sqrt()).max(self.config.min_std * scale);
                }
            }
            _ => {}
        }
    }

    /// The shared loop: sample, evaluate, weight, refit; `weigh` turns a start's candidate
    /// scores into weights summing to 1.
    pub(crate) fn run(
        &mut self,
        model: &dyn WorldModel,
        starts: &[f32],
        weigh: &dyn Fn(&[f32], &mut [f32]),
    ) -> Result<Plan> {
        let obs_dim = model.spec().observation_space.dim();
        if obs_dim == 0 || starts.is_empty() || !starts.len().is_multiple_of(obs_dim) {
            return Err(WorldModelError::shape(
                "planner start states",
                format!("a non-empty multiple of {obs_dim} values"),
                starts.len(),
            ));
        }
        check_finite("planner start states", starts)?;
        let codec = model.codec().clone();
        let n = starts.len() / obs_dim;
        let c = self.config.population;
        let mut dist = self.start_dist(&codec, n);
        let mut weights = vec![0f32; n * c];
        let (mut best, mut expected) = (vec![f32::MIN; n], vec![0f32; n]);
        for _ in 0..self.config.iterations {
            let samples = self.sample(&dist, &codec, n);
            let scores = self.evaluate(model, starts, &samples, n)?;
            for i in 0..n {
                let s = &scores[i * c..(i + 1) * c];
                let w = &mut weights[i * c..(i + 1) * c];
                weigh(s, w);
                best[i] = s.iter().copied().fold(f32::MIN, f32::max);
                expected[i] = s.iter().zip(w.iter()).map(|(s, w)| s * w).sum();
            }
            self.refit(&mut dist, &samples, &weights, &codec);
        }
        let h = self.config.horizon;
        let enc = codec.encoded_dim();
        let (mut actions, mut encoded) = (vec![], vec![]);
        match (&dist, &codec) {
            (SeqDist::Categorical { probs }, ActionCodec::Discrete { n: k }) => {
                for i in 0..n {
                    let p = &probs[i * h * k..i * h * k + k];
                    let a = p
                        .iter()
                        .enumerate()
                        .fold(
                            (0, f32::MIN),
                            |(bi, bp), (j, pj)| {
                                if *pj > bp { (j, *pj) } else { (bi, bp) }
                            },
                        )
                        .0;
                    actions.push(Action::Discrete(a as u32));
                    encoded.extend((0..*k).map(|j| f32::from(j == a)));
                }
            }
            (SeqDist::Gaussian { mean, .. }, ActionCodec::Continuous { low, .. }) => {
                let a = low.len();
                for i in 0..n {
                    let first = mean[i * h * a..i * h * a + a].to_vec();
                    encoded.extend_from_slice(&first);
                    actions.push(Action::Continuous(first));
                }
            }
            _ => {}
        }
        debug_assert_eq!(encoded.len(), n * enc);
        self.previous = Some((n, dist));
        Ok(Plan {
            actions,
            encoded,
            best_return: best,
            expected_return: expected,
        })
    }
}

/// A planner used as a [`Policy`]: phantom paths steered by planning from every imagined
/// state (model-predictive control inside the model).
pub struct PlannerPolicy<'a, P: Planner + ?Sized> {
    /// The model planned in.
    pub model: &'a dyn WorldModel,
    /// The planner.
    pub planner: &'a mut P,
}

impl<P: Planner + ?Sized> Policy for PlannerPolicy<'_, P> {
    fn act(&mut self, obs: Tensor<2>, _step: usize) -> Result<ActionBatch> {
        let [n, _] = obs.dims();
        let device = obs.device();
        let starts = crate::error::read_f32(obs)?;
        let plan = self.planner.plan(self.model, &starts)?;
        let enc = self.model.codec().encoded_dim();
        Ok(ActionBatch::Encoded(Tensor::from_data(
            TensorData::new(plan.encoded, [n, enc]),
            &device,
        )))
    }
}

#[cfg(test)]
mod tests;
