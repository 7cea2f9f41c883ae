//! Terminal values: what a state is worth beyond a planner's horizon, learned in the model.
//!
//! A planner that scores `H` imagined steps is blind to what happens after them. In tasks
//! that reward survival (CartPole: +1 per step until the pole falls or the cart leaves the
//! track) every plan that survives the horizon scores the same, so the planner lets the
//! cart creep towards the end of the track until the end is within the horizon, which is
//! too late to turn back. Model-based value expansion (MVE, POLO, TD-MPC) closes the gap
//! with a value of the last imagined state: `G = Σ_{t<H} γ^t a_t r_t + γ^H a_H V(s_H)`.
//!
//! [`TerminalValue::fit`] learns `V` by fitted value iteration in the world model itself,
//! no further real data: from states near the real ones (real states plus Gaussian noise
//! scaled by the data's spread), each iteration imagines one step of every action in every
//! member, takes the best action's mean `r + γ·c·V(s')` (`c` the continue probability, so
//! a task's declared termination and the learned head both count), and regresses `V` on it
//! with a few Adam steps. `k` iterations see `k` steps ahead. Discrete action spaces only
//! (the best action is an enumeration).

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use plasma_packets::model::Activation;
use plasma_protocol::Space;
pub use plasma_protocol::reports::ValueReport;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::ensemble::net::normal;
use crate::error::{Result, WorldModelError, check_finite, read_f32};
use crate::model::{ActionBatch, StepOptions, WorldModel};
use crate::policy::PolicyNet;
use crate::termination::DeclaredTermination;

/// How a terminal value is learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ValueConfig {
    /// Discount `γ` of the value (its horizon is about `1 / (1 − γ)` steps).
    pub discount: f32,
    /// Value-iteration sweeps (each looks one step further).
    pub iterations: usize,
    /// States per sweep.
    pub states: usize,
    /// Adam steps per sweep.
    pub steps_per_iteration: usize,
    /// Rows per Adam step.
    pub batch_size: usize,
    /// Hidden widths of the value network.
    pub hidden: Vec<usize>,
    /// Adam's learning rate.
    pub learning_rate: f32,
    /// Noise added to the real states, in units of the data's standard deviation per
    /// dimension (covers the states imagined paths reach near the data).
    pub spread: f32,
    /// Weight `k` of a reward for keeping away from the task's declared termination
    /// bounds, added to each backed-up step: `r + k·c·m(s')`, `m` the margin of
    /// [`crate::termination::DeclaredTermination::margin`] (1 at the centre of the bounded
    /// dimensions, 0 on a bound). A survival task's reward is flat until the end, and a
    /// discount short enough to learn sees no end 200 steps away (the cart drifting off
    /// the track); the margin makes that drift cost something now. `0`, or a task without
    /// declared bounds, learns the task's reward alone.
    pub margin_reward: f32,
    /// Seed of the state sampling and the initial weights.
    pub seed: u64,
}

impl Default for ValueConfig {
    fn default() -> Self {
        ValueConfig {
            discount: 0.98,
            iterations: 80,
            states: 2048,
            steps_per_iteration: 8,
            batch_size: 256,
            hidden: vec![64, 64],
            learning_rate: 3e-3,
            spread: 0.5,
            margin_reward: 0.0,
            seed: 0,
        }
    }
}

impl ValueConfig {
    /// Refuses settings the fit cannot run with.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WorldModelError::Config(m));
        if !(self.discount.is_finite() && (0.0..1.0).contains(&self.discount)) {
            return bad(format!(
                "value discount must be in [0, 1), got {}",
                self.discount
            ));
        }
        if self.iterations == 0 || self.states == 0 || self.batch_size == 0 {
            return bad("value iterations, states and batch_size must be positive".into());
        }
        if self.states > 1 << 20 || self.iterations > 10_000 || self.steps_per_iteration > 1000 {
            return bad("value states ≤ 2^20, iterations ≤ 10,000, steps ≤ 1,000".into());
        }
        if self.hidden.is_empty() || self.hidden.iter().any(|&w| w == 0 || w > 4096) {
            return bad("value hidden widths must be in 1..=4096".into());
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "value learning_rate must be > 0, got {}",
                self.learning_rate
            ));
        }
        if !(self.spread.is_finite() && self.spread >= 0.0) {
            return bad(format!("value spread must be ≥ 0, got {}", self.spread));
        }
        if !(self.margin_reward.is_finite() && self.margin_reward >= 0.0) {
            return bad(format!(
                "value margin_reward must be ≥ 0, got {}",
                self.margin_reward
            ));
        }
        Ok(())
    }
}

/// A learned state value `V(s)` for the end of imagined paths.
#[derive(Debug, Clone)]
pub struct TerminalValue {
    net: PolicyNet,
    mean: Tensor<2>,
    inv_std: Tensor<2>,
    discount: f32,
}

impl TerminalValue {
    /// Learns `V` for `model` around `states` (`[N, obs_dim]` row-major, real observations)
    /// by fitted value iteration (see the module documentation).
    pub fn fit(
        model: &dyn WorldModel,
        states: &[f32],
        config: &ValueConfig,
    ) -> Result<(TerminalValue, ValueReport)> {
        let started = std::time::Instant::now();
        config.validate()?;
        let actions = match &model.spec().action_space {
            Space::Discrete { n } => *n as usize,
            Space::Box { .. } => {
                return Err(WorldModelError::Config(
                    "terminal values need a discrete action space".into(),
                ));
            }
        };
        let d = model.spec().observation_space.dim();
        if d == 0 || states.is_empty() || !states.len().is_multiple_of(d) {
            return Err(WorldModelError::Config(format!(
                "value states: {} values are no whole number of {d}-value observations",
                states.len()
            )));
        }
        check_finite("value states", states)?;
        let n = states.len() / d;
        let mut mean = vec![0f32; d];
        let mut std = vec![0f32; d];
        for row in states.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n as f32;
            }
        }
        for row in states.chunks_exact(d) {
            for ((s, v), m) in std.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / n as f32;
            }
        }
        let std: Vec<f32> = std.iter().map(|v| v.sqrt().max(1e-3)).collect();
        let inv_std: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        let device = model.device().clone();
        let row = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, d]), &device);
        let ad_device = device.clone().autodiff();
        let mut widths = vec![d];
        widths.extend(&config.hidden);
        widths.push(1);
        let mut train_net = PolicyNet::new(&widths, Activation::Tanh, config.seed, &ad_device);
        let mut value = TerminalValue {
            net: train_net.valid(),
            mean: row(mean.clone()),
            inv_std: row(inv_std.clone()),
            discount: config.discount,
        };
        let ad_mean = Tensor::<2>::from_data(TensorData::new(mean, [1, d]), &ad_device);
        let ad_inv_std = Tensor::<2>::from_data(TensorData::new(inv_std, [1, d]), &ad_device);

        let margin = match (&model.spec().termination, config.margin_reward) {
            (Some(rule), k) if k > 0.0 => Some((DeclaredTermination::new(rule, d, &device)?, k)),
            _ => None,
        };
        let members = model.members().max(1);
        let b = config.states;
        let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x005e_ed0f_7a1e);
        let mut optim = AdamConfig::new().init();
        let (mut last_loss, mut mean_value) = (f32::NAN, f32::NAN);
        let mut order: Vec<usize> = (0..b).collect();
        for sweep in 0..config.iterations {
            // Start states: real ones with noise scaled by the data's spread.
            let mut x = Vec::with_capacity(b * d);
            for _ in 0..b {
                let r = rand::Rng::random_range(&mut rng, 0..n);
                for (k, s) in std.iter().enumerate() {
                    x.push(states[r * d + k] + config.spread * s * normal(&mut rng));
                }
            }
            let targets = value.backup(model, &x, actions, members, margin.as_ref())?;
            mean_value = targets.iter().sum::<f32>() / b as f32;
            // Regress V on the backed-up targets.
            order.shuffle(&mut rng);
            let batch = config.batch_size.min(b);
            let mut loss_sum = 0f32;
            for step in 0..config.steps_per_iteration {
                let start = (step * batch) % b;
                let rows: Vec<usize> = (0..batch).map(|i| order[(start + i) % b]).collect();
                let xs: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| x[r * d..(r + 1) * d].iter().copied())
                    .collect();
                let ys: Vec<f32> = rows.iter().map(|&r| targets[r]).collect();
                let xt = Tensor::<2>::from_data(TensorData::new(xs, [batch, d]), &ad_device);
                let yt = Tensor::<2>::from_data(TensorData::new(ys, [batch, 1]), &ad_device);
                let pred = train_net.forward((xt - ad_mean.clone()) * ad_inv_std.clone());
                let loss = (pred - yt).powi_scalar(2).mean();
                let l = loss
                    .clone()
                    .try_into_scalar::<f32>()
                    .map_err(|e| WorldModelError::Backend(format!("reading a loss: {e:?}")))?;
                if !l.is_finite() {
                    return Err(WorldModelError::Diverged { epoch: sweep });
                }
                loss_sum += l;
                let grads = GradientsParams::from_grads(loss.backward(), &train_net);
                train_net = optim.step(f64::from(config.learning_rate), train_net, grads);
            }
            last_loss = loss_sum / config.steps_per_iteration.max(1) as f32;
            value.net = train_net.valid();
        }
        Ok((
            value,
            ValueReport {
                mean_value,
                last_loss,
                seconds: started.elapsed().as_secs_f64(),
            },
        ))
    }

    /// `max_a mean_members [r + c·(k·m(s') + γ·V(s'))]` for host states `x`
    /// (`[B, obs_dim]`), `k·m` the margin reward where one is configured.
    fn backup(
        &self,
        model: &dyn WorldModel,
        x: &[f32],
        actions: usize,
        members: usize,
        margin: Option<&(DeclaredTermination, f32)>,
    ) -> Result<Vec<f32>> {
        let device = model.device();
        let d = self.mean.dims()[1];
        let b = x.len() / d;
        // Row i·E + e is state i under member e (path p follows member p % E).
        let rows: Vec<f32> = x
            .chunks_exact(d)
            .flat_map(|s| std::iter::repeat_n(s, members).flatten().copied())
            .collect();
        let start = Tensor::<2>::from_data(TensorData::new(rows, [b * members, d]), device);
        let state = model.encode(start)?;
        let mut best: Option<Tensor<1>> = None;
        for a in 0..actions {
            let batch = ActionBatch::Discrete(Tensor::<1, Int>::from_data(
                TensorData::new(vec![a as i64; b * members], [b * members]),
                device,
            ));
            let next = model.transition(&state, &batch, &StepOptions::default())?;
            let decoded = model.decode(&next)?;
            let reward = decoded
                .reward
                .unwrap_or_else(|| Tensor::zeros([b * members], device));
            let cont = decoded
                .continue_prob
                .unwrap_or_else(|| Tensor::ones([b * members], device));
            let mut ahead = self.value(decoded.obs.clone()).mul_scalar(self.discount);
            if let Some(m) =
                margin.and_then(|(rule, k)| Some(rule.margin(&decoded.obs)?.mul_scalar(*k)))
            {
                ahead = ahead + m;
            }
            let q = reward + cont * ahead;
            let q = q.reshape([b, members]).mean_dim(1).reshape([b]);
            best = Some(match best {
                Some(m) => m.max_pair(q),
                None => q,
            });
        }
        let best = best.ok_or_else(|| WorldModelError::Config("no actions".into()))?;
        let values = read_f32(best)?;
        check_finite("value targets", &values)?;
        Ok(values)
    }

    /// `V(s)` of observations `[P, obs_dim]`, on the model's device: `[P]`.
    pub fn value(&self, obs: Tensor<2>) -> Tensor<1> {
        let p = obs.dims()[0];
        self.net
            .forward((obs - self.mean.clone()) * self.inv_std.clone())
            .reshape([p])
    }

    /// The discount the value was learned with.
    pub fn discount(&self) -> f32 {
        self.discount
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::MpcConfig;
    use crate::registry::Registry;
    use crate::{Dataset, WorldModelConfig};
    use burn::tensor::Device;
    use plasma_envs::{Env, make};

    /// A CartPole model from random data and a value learned in it: states where the pole
    /// is falling fast are worth less than upright ones, and states beyond the track's end
    /// (the task's declared termination) are worth less than the same state at the centre.
    #[test]
    fn a_value_learned_in_the_model_ranks_cartpole_states() {
        let mut env = make("CartPole-v1").unwrap();
        let spec = env.spec();
        let mut data = Dataset::new(&spec).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut obs = env.reset(Some(1));
        while data.len() < 1500 {
            let a = rand::Rng::random_range(&mut rng, 0..2u32);
            let step = env.step(plasma_protocol::ActionRef::Discrete(a)).unwrap();
            data.push(
                &obs,
                plasma_protocol::ActionRef::Discrete(a),
                step.reward,
                &step.obs,
                step.terminated,
            )
            .unwrap();
            obs = if step.done() {
                env.reset(Some(data.len() as u64))
            } else {
                step.obs
            };
        }
        let mut config = MpcConfig::for_env("CartPole-v1");
        // No halting, so that a path's alive mass is its continue probabilities' product.
        config.ensemble.support_margin = None;
        let mut model = Registry::default()
            .build(
                &WorldModelConfig::ensemble(&config.ensemble),
                &spec,
                &Device::flex(),
            )
            .unwrap();
        model.fit(&data, &config.train).unwrap();
        let value_config = ValueConfig {
            iterations: 40,
            states: 1024,
            ..ValueConfig::default()
        };
        let (value, report) =
            TerminalValue::fit(model.as_ref(), data.observations(), &value_config).unwrap();
        assert!(
            report.mean_value.is_finite() && report.mean_value > 0.0,
            "{report:?}"
        );
        let probe = |rows: Vec<f32>| {
            let n = rows.len() / 4;
            value
                .value(Tensor::<2>::from_data(
                    TensorData::new(rows, [n, 4]),
                    &Device::flex(),
                ))
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let v = probe(vec![
            0.0, 0.0, 0.0, 0.0, // upright, at rest, centre
            0.0, 0.0, 0.15, 1.5, // falling fast
            2.39, 1.5, 0.0, 0.0, // about to leave the track
        ]);
        assert!(v[0] > v[1] + 1.0, "upright {} vs falling {}", v[0], v[1]);
        assert!(v[0] > v[2] + 1.0, "centre {} vs leaving {}", v[0], v[2]);
        // A rollout adds `γ^H · a_H · V(s_H)` to each return, nothing else.
        let device = Device::flex();
        let starts =
            crate::rollout::start_states(&data.observations()[..8 * 4], 4, &device).unwrap();
        let horizon = 6;
        let actions = crate::rollout::ActionSequences::Discrete(Tensor::<2, Int>::from_data(
            TensorData::new(
                (0..8 * horizon)
                    .map(|i| (i % 3 == 0) as i64)
                    .collect::<Vec<_>>(),
                [8, horizon],
            ),
            &device,
        ));
        let discount = 0.9f32;
        let plain = crate::rollout::RolloutOptions {
            discount,
            ..Default::default()
        };
        let valued = crate::rollout::RolloutOptions {
            terminal_value: Some(&value),
            ..plain
        };
        let run = |options| {
            model
                .rollout(
                    starts.clone(),
                    crate::rollout::Driver::Actions(&actions),
                    horizon,
                    &options,
                )
                .unwrap()
                .to_host()
                .unwrap()
        };
        let (a, b) = (run(plain), run(valued));
        assert_eq!(a.obs, b.obs);
        for p in 0..8 {
            let steps = p * horizon..(p + 1) * horizon;
            assert!(a.in_support.is_empty(), "no halting in this model");
            let alive: f32 = a.continue_probs[steps].iter().product();
            let last = &a.obs[(p * horizon + horizon - 1) * 4..(p * horizon + horizon) * 4];
            let v = probe(last.to_vec())[0];
            let expected = a.returns[p] + discount.powi(horizon as i32) * alive * v;
            assert!(
                (b.returns[p] - expected).abs() < 1e-3 * expected.abs().max(1.0),
                "path {p}: {} vs {expected}",
                b.returns[p]
            );
        }
        // Continuous action spaces are refused, not mis-handled.
        let pendulum = make("Pendulum-v1").unwrap().spec();
        let other = Registry::default()
            .build(
                &WorldModelConfig::ensemble(&config.ensemble),
                &pendulum,
                &Device::flex(),
            )
            .unwrap();
        assert!(TerminalValue::fit(other.as_ref(), &[0.0, 1.0, 0.0], &value_config).is_err());
    }
}
