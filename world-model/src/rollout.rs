//! Phantom paths: batched imagined rollouts from many start states.
//!
//! A rollout steps `P` paths for `H` steps with one [`WorldModel::transition`] per step,
//! driven by given action sequences or by a [`Policy`] (which may itself plan: see
//! [`crate::planner::PlannerPolicy`]). Path `p` follows ensemble member `p % E` for the
//! whole rollout (trajectory sampling, TS∞), so each member advances its share of the paths
//! in the same batched product.
//!
//! Returns: `G_p = Σ_t γ^t · a_{p,t} · r_{p,t}` where `a_{p,t} = Π_{k<t} c_{p,k}` is the
//! probability that the path is still alive before step `t` and `c` the predicted continue
//! probability: a path stops accumulating reward as the model predicts its termination.
//! When the task declares its termination ([`plasma_protocol::TaskSpec::termination`]),
//! `c` is that rule applied to the predicted observation, 0 or 1 ([`crate::termination`]).
//!
//! Halting (MOReL's pessimistic MDP): a family that tracks the region it knows from data
//! ([`crate::ModelState::in_support`]) halts a path whose state leaves it; from the next
//! step on, the halted mass earns [`WorldModel::halt_reward`] per step instead of the
//! model's (extrapolated) rewards, so planners do not exploit the model where it has no
//! data. With `k_t` the in-support indicator:
//! `G = Σ_t γ^t (m_t · r_t + h_t · r_halt)`, `m_{t+1} = m_t · c_t · k_t`,
//! `h_{t+1} = h_t + m_t · c_t · (1 − k_t)`.
//!
//! Epistemic uncertainty (optional, [`RolloutOptions::uncertainty`]): at every step each
//! path's state-action pair is also passed through *all* members, and the uncertainty is
//! `u = sqrt(mean_d var_e μ_{e,d})`, the standard deviation across members of their
//! predicted means (normalized Δobs and reward), averaged over dimensions. It is a by-product
//! of one `[E, P, in]` batched forward pass (no pairwise loop), but that pass costs `E`
//! times the TS∞ pass, so planners leave it off and audits turn it on.
//!
//! Uncertainty penalty (MOPO's pessimism, [`RolloutOptions::uncertainty_penalty`]): with
//! `λ > 0` the returns count `max(r_t − λ·u_t, r_halt)` instead of `r_t`, so a planner
//! prefers paths where the members agree, i.e. where the model has data, and the penalty
//! grows smoothly as a path leaves the data (unlike halting, which is a cliff). The floor
//! (the halt reward, at most 0) keeps the penalty from making an early termination
//! attractive in tasks that reward survival. It implies `uncertainty`.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Result, WorldModelError, check_finite, read_f32};
use crate::model::{ActionBatch, Noise, StepOptions, WorldModel};
use crate::value::TerminalValue;

/// Options of a rollout.
#[derive(Debug, Clone, Copy)]
pub struct RolloutOptions<'a> {
    /// Mean or sampled predictions.
    pub noise: Noise,
    /// Compute per-step epistemic uncertainty (member disagreement); `E` times the cost.
    pub uncertainty: bool,
    /// Keep the per-step observations, rewards and continue probabilities (planners only
    /// need the returns).
    pub record: bool,
    /// Discount `γ` of the returns.
    pub discount: f32,
    /// `λ ≥ 0`: the returns count `r − λ·u` (MOPO); `λ > 0` computes the uncertainty.
    pub uncertainty_penalty: f32,
    /// Value of the state a path ends in, added to its return as `γ^H · a_H · V(s_H)` (see
    /// [`crate::value`]): what lies beyond the horizon.
    pub terminal_value: Option<&'a TerminalValue>,
}

impl Default for RolloutOptions<'_> {
    fn default() -> Self {
        RolloutOptions {
            noise: Noise::Mean,
            uncertainty: false,
            record: true,
            discount: 1.0,
            uncertainty_penalty: 0.0,
            terminal_value: None,
        }
    }
}

/// Action sequences for `P` paths over `H` steps.
#[derive(Debug, Clone)]
pub enum ActionSequences {
    /// Discrete indices, `[P, H]`.
    Discrete(Tensor<2, Int>),
    /// Continuous actions, `[P, H, action_dim]` (clipped to the action box).
    Continuous(Tensor<3>),
    /// Encoded actions, step-major: `[H, P, encoded_dim]` (what planners build).
    EncodedStepMajor(Tensor<3>),
}

impl ActionSequences {
    /// Number of paths and steps.
    pub fn paths_and_steps(&self) -> (usize, usize) {
        match self {
            ActionSequences::Discrete(t) => {
                let [p, h] = t.dims();
                (p, h)
            }
            ActionSequences::Continuous(t) => {
                let [p, h, _] = t.dims();
                (p, h)
            }
            ActionSequences::EncodedStepMajor(t) => {
                let [h, p, _] = t.dims();
                (p, h)
            }
        }
    }

    /// The actions of step `t` for all paths.
    fn step(&self, t: usize) -> ActionBatch {
        match self {
            ActionSequences::Discrete(a) => {
                let [p, _] = a.dims();
                ActionBatch::Discrete(a.clone().narrow(1, t, 1).reshape([p]))
            }
            ActionSequences::Continuous(a) => {
                let [p, _, d] = a.dims();
                ActionBatch::Continuous(a.clone().narrow(1, t, 1).reshape([p, d]))
            }
            ActionSequences::EncodedStepMajor(a) => {
                let [_, p, d] = a.dims();
                ActionBatch::Encoded(a.clone().narrow(0, t, 1).reshape([p, d]))
            }
        }
    }
}

/// Maps a batch of (imagined) observations to actions: what drives paths that are not
/// given fixed action sequences.
pub trait Policy {
    /// Actions for observations `obs` (`[P, obs_dim]`) at step `step` of the rollout.
    fn act(&mut self, obs: Tensor<2>, step: usize) -> Result<ActionBatch>;
}

impl<F> Policy for F
where
    F: FnMut(Tensor<2>, usize) -> Result<ActionBatch>,
{
    fn act(&mut self, obs: Tensor<2>, step: usize) -> Result<ActionBatch> {
        self(obs, step)
    }
}

/// What steers the paths of a rollout.
pub enum Driver<'a> {
    /// Fixed action sequences, one per path, at least `horizon` steps long.
    Actions(&'a ActionSequences),
    /// A policy queried at every step with the paths' current observations.
    Policy(&'a mut dyn Policy),
}

/// Imagined paths: `P` paths of `H` steps.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// Return of each path, `[P]` (discounted if asked, reward counted while alive).
    pub returns: Tensor<1>,
    /// Predicted observation after each step, `[P, H, obs_dim]`, if recorded.
    pub obs: Option<Tensor<3>>,
    /// Predicted reward of each step, `[P, H]`, if recorded.
    pub rewards: Option<Tensor<2>>,
    /// Predicted continue probability of each step, `[P, H]`, if recorded.
    pub continue_probs: Option<Tensor<2>>,
    /// Epistemic uncertainty of each step, `[P, H]`, if asked for.
    pub uncertainty: Option<Tensor<2>>,
    /// Probability that the path is still in the model's known region (not halted) after
    /// each step, `[P, H]`, if recorded and the family tracks its support.
    pub in_support: Option<Tensor<2>>,
    /// The member each path followed.
    pub members: Vec<usize>,
    /// Steps per path.
    pub horizon: usize,
}

/// A [`Trajectory`] read back to the host, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTrajectory {
    /// Paths.
    pub paths: usize,
    /// Steps per path.
    pub horizon: usize,
    /// `[P]`.
    pub returns: Vec<f32>,
    /// `[P, H, obs_dim]`, empty if not recorded.
    pub obs: Vec<f32>,
    /// `[P, H]`, empty if not recorded.
    pub rewards: Vec<f32>,
    /// `[P, H]`, empty if not recorded.
    pub continue_probs: Vec<f32>,
    /// `[P, H]`, empty if not computed.
    pub uncertainty: Vec<f32>,
    /// `[P, H]`, empty if not recorded or not tracked.
    pub in_support: Vec<f32>,
    /// The member each path followed.
    pub members: Vec<usize>,
}

impl Trajectory {
    /// The returns, on the host.
    pub fn returns_vec(&self) -> Result<Vec<f32>> {
        read_f32(self.returns.clone())
    }

    /// Everything, on the host.
    pub fn to_host(&self) -> Result<HostTrajectory> {
        let opt = |t: &Option<Tensor<3>>| t.clone().map(read_f32).transpose();
        let opt2 = |t: &Option<Tensor<2>>| t.clone().map(read_f32).transpose();
        Ok(HostTrajectory {
            paths: self.members.len(),
            horizon: self.horizon,
            returns: self.returns_vec()?,
            obs: opt(&self.obs)?.unwrap_or_default(),
            rewards: opt2(&self.rewards)?.unwrap_or_default(),
            continue_probs: opt2(&self.continue_probs)?.unwrap_or_default(),
            uncertainty: opt2(&self.uncertainty)?.unwrap_or_default(),
            in_support: opt2(&self.in_support)?.unwrap_or_default(),
            members: self.members.clone(),
        })
    }
}

/// Start states `[P, obs_dim]` on `device` from host rows, checked for shape and
/// finiteness.
pub fn start_states(values: &[f32], obs_dim: usize, device: &Device) -> Result<Tensor<2>> {
    if obs_dim == 0 || values.is_empty() || !values.len().is_multiple_of(obs_dim) {
        return Err(WorldModelError::shape(
            "start states",
            format!("a non-empty multiple of {obs_dim} values"),
            values.len(),
        ));
    }
    check_finite("start states", values)?;
    Ok(Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len() / obs_dim, obs_dim]),
        device,
    ))
}

/// The generic rollout behind [`WorldModel::rollout`]: any family that implements
/// `encode`, `transition` and `decode` gets batched phantom paths from it.
///
/// Shapes are checked; the values of tensors already on the device are not (that would
/// cost a device sync per call): build start states from host data with [`start_states`],
/// which refuses NaNs and infinities.
pub fn rollout<M: WorldModel + ?Sized>(
    model: &M,
    start: Tensor<2>,
    mut driver: Driver<'_>,
    horizon: usize,
    options: &RolloutOptions,
) -> Result<Trajectory> {
    let [paths, obs_dim] = start.dims();
    let expected = model.spec().observation_space.dim();
    if obs_dim != expected || paths == 0 {
        return Err(WorldModelError::shape(
            "start states",
            format!("[P ≥ 1, {expected}]"),
            format!("[{paths}, {obs_dim}]"),
        ));
    }
    if horizon == 0 {
        return Err(WorldModelError::Config("horizon must be positive".into()));
    }
    if !(options.discount.is_finite() && (0.0..=1.0).contains(&options.discount)) {
        return Err(WorldModelError::Config(format!(
            "discount must be in [0, 1], got {}",
            options.discount
        )));
    }
    if let Driver::Actions(seq) = &driver {
        let (p, h) = seq.paths_and_steps();
        if p != paths || h < horizon {
            return Err(WorldModelError::shape(
                "action sequences",
                format!("{paths} paths × at least {horizon} steps"),
                format!("{p} paths × {h} steps"),
            ));
        }
    }
    let penalty = options.uncertainty_penalty;
    if !(penalty.is_finite() && penalty >= 0.0) {
        return Err(WorldModelError::Config(format!(
            "uncertainty_penalty must be finite and ≥ 0, got {penalty}"
        )));
    }
    let device = start.device();
    let step_options = StepOptions {
        noise: options.noise,
        uncertainty: options.uncertainty || penalty > 0.0,
    };
    let mut state = model.encode(start)?;
    let mut returns = Tensor::<1>::zeros([paths], &device);
    // Mass of each path still alive in the known region, and mass halted.
    let mut alive = Tensor::<1>::ones([paths], &device);
    let mut halted: Option<Tensor<1>> = None;
    let halt_reward = model.halt_reward().unwrap_or(0.0);
    let mut discount = 1.0f32;
    let (mut obs_steps, mut reward_steps, mut cont_steps, mut unc_steps, mut support_steps) =
        (vec![], vec![], vec![], vec![], vec![]);
    for t in 0..horizon {
        let action = match &mut driver {
            Driver::Actions(seq) => seq.step(t),
            Driver::Policy(policy) => {
                let obs = model.decode(&state)?.obs;
                policy.act(obs, t)?
            }
        };
        state = model.transition(&state, &action, &step_options)?;
        let decoded = model.decode(&state)?;
        let reward = decoded
            .reward
            .unwrap_or_else(|| Tensor::zeros([paths], &device));
        let earned = match (&state.uncertainty, penalty > 0.0) {
            // Floored at the halt reward: an uncertain step is never worse than the
            // unknown state, so the penalty cannot make termination attractive.
            (Some(u), true) => {
                (reward.clone() - u.clone().mul_scalar(penalty)).clamp_min(halt_reward.min(0.0))
            }
            _ => reward.clone(),
        };
        returns = returns + alive.clone().mul(earned).mul_scalar(discount);
        if let Some(h) = &halted {
            returns = returns + h.clone().mul_scalar(halt_reward * discount);
        }
        if let Some(c) = &decoded.continue_prob {
            alive = alive * c.clone();
        }
        if let Some(k) = &decoded.in_support {
            let leaving = alive.clone() * (k.clone().neg() + 1.0);
            halted = Some(match halted {
                Some(h) => h + leaving,
                None => leaving,
            });
            alive = alive * k.clone();
            if let (true, Some(h)) = (options.record, &halted) {
                support_steps.push(h.clone().neg() + 1.0);
            }
        }
        discount *= options.discount;
        if options.record {
            obs_steps.push(decoded.obs);
            reward_steps.push(reward);
            cont_steps.push(
                decoded
                    .continue_prob
                    .unwrap_or_else(|| Tensor::ones([paths], &device)),
            );
        }
        if let Some(u) = state.uncertainty.clone() {
            unc_steps.push(u);
        }
    }
    if let Some(value) = options.terminal_value {
        let last = model.decode(&state)?.obs;
        returns = returns + alive.clone().mul(value.value(last)).mul_scalar(discount);
    }
    let stack2 = |v: Vec<Tensor<1>>| (!v.is_empty()).then(|| Tensor::stack::<2>(v, 1));
    let members = model.members().max(1);
    Ok(Trajectory {
        returns,
        obs: (!obs_steps.is_empty()).then(|| Tensor::stack::<3>(obs_steps, 1)),
        rewards: stack2(reward_steps),
        continue_probs: stack2(cont_steps),
        uncertainty: stack2(unc_steps),
        in_support: stack2(support_steps),
        members: (0..paths).map(|p| p % members).collect(),
        horizon,
    })
}

/// Draws `n` standard normal values from a generator seeded by `(seed, step)`.
pub(crate) fn step_noise(seed: u64, step: usize, n: usize) -> Vec<f32> {
    use rand::SeedableRng;
    let mixed = seed ^ (step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(mixed);
    (0..n)
        .map(|_| crate::ensemble::net::normal(&mut rng))
        .collect()
}
