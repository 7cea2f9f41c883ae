//! A task's declared termination ([`plasma_protocol::Termination`]) applied to imagined
//! observations, batched on the device.
//!
//! When the task spec declares its termination, a family ends imagined episodes by that
//! rule as well as by its learned termination head, as PETS and mbrl-lib plan with the
//! task's known termination function (`termination_fns.cartpole`): a path whose predicted
//! observation leaves the bounds has continue probability 0, any other keeps the head's.
//! The two carry different information. A head trained on a few thousand transitions
//! predicts a blurred, one-sided termination (nothing at a track edge the data never
//! reached), but its blur is a useful risk signal: the probability falls as the pole tilts
//! towards its limit, which ranks plans that all survive the horizon. The rule alone makes
//! every surviving plan score the same (CartPole MPC fell from 386.9 to 121.8 with it); the
//! product keeps the ranking and adds the edges the data never showed.
//!
//! The rule comes from the [`plasma_protocol::TaskSpec`] the model is built for, which a
//! checkpoint saves in its model document, so a reloaded model ends paths identically;
//! checkpoints and specs without a rule keep the learned head.

use burn::tensor::{Device, Tensor, TensorData};
use plasma_protocol::Termination;

use crate::error::{Result, WorldModelError};

/// A termination rule as device tensors, ready to judge `[P, obs_dim]` observations in a
/// few element-wise operations (no per-path loop, no host sync).
#[derive(Debug, Clone)]
pub struct DeclaredTermination {
    /// Lowest value of each dimension that continues, `[1, obs_dim]`.
    low: Tensor<2>,
    /// Highest value of each dimension that continues, `[1, obs_dim]`.
    high: Tensor<2>,
    /// Centre and inverse half-range of the dimensions bounded on both sides, and their
    /// count: what [`DeclaredTermination::margin`] measures (`None`: no such dimension).
    bounded: Option<(Tensor<2>, Tensor<2>, usize)>,
}

impl DeclaredTermination {
    /// The rule for observations of `obs_dim` values on `device`.
    ///
    /// Infinite bounds are stored as `±f32::MAX`, so that they are plain numbers on every
    /// backend; a prediction that overflowed to infinity then ends its path, as a NaN does.
    pub fn new(rule: &Termination, obs_dim: usize, device: &Device) -> Result<Self> {
        rule.validate()
            .map_err(|e| WorldModelError::Config(format!("termination: {e}")))?;
        if rule.dim() != obs_dim {
            return Err(WorldModelError::shape(
                "termination bounds",
                format!("{obs_dim} values"),
                format!("{} values", rule.dim()),
            ));
        }
        let finite = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|x| x.clamp(f32::MIN, f32::MAX))
                .collect::<Vec<_>>()
        };
        let (low, high) = match rule {
            Termination::ObservationBounds { low, high } => (finite(low), finite(high)),
        };
        let tensor = |v: Vec<f32>| Tensor::<2>::from_data(TensorData::new(v, [1, obs_dim]), device);
        let (raw_low, raw_high) = match rule {
            Termination::ObservationBounds { low, high } => (low, high),
        };
        // Unbounded dimensions get centre 0 and inverse half-range 0: their margin term is
        // 1 − 0² = 1 for every value, and the count leaves them out of the mean.
        let mut centre = vec![0f32; obs_dim];
        let mut inv_half = vec![0f32; obs_dim];
        let mut count = 0;
        for k in 0..obs_dim {
            let (lo, hi) = (raw_low[k], raw_high[k]);
            if lo.is_finite() && hi.is_finite() && hi > lo {
                centre[k] = (lo + hi) / 2.0;
                inv_half[k] = 2.0 / (hi - lo);
                count += 1;
            }
        }
        let bounded = (count > 0).then(|| (tensor(centre), tensor(inv_half), count));
        Ok(DeclaredTermination {
            low: tensor(low),
            high: tensor(high),
            bounded,
        })
    }

    /// How far each observation of `obs` (`[P, obs_dim]`) keeps from the bounds, `[P]`:
    /// the mean over the dimensions bounded on both sides of `1 − u²`, `u` the value's
    /// offset from the centre in units of the half-range (1 at the centre, 0 on a bound,
    /// negative beyond it); `None` when no dimension is bounded on both sides.
    pub fn margin(&self, obs: &Tensor<2>) -> Option<Tensor<1>> {
        let (centre, inv_half, count) = self.bounded.as_ref()?;
        let [p, d] = obs.dims();
        let u = (obs.clone() - centre.clone().expand([p, d])) * inv_half.clone().expand([p, d]);
        let unbounded = d - count;
        let term = u.powi_scalar(2).neg().add_scalar(1.0);
        Some(
            term.sum_dim(1)
                .reshape([p])
                .sub_scalar(unbounded as f32)
                .div_scalar(*count as f32),
        )
    }

    /// Continue probability of each path, `[P]`: 1 where every value of the observation
    /// lies within its bounds (inclusive), 0 where any lies outside or is NaN.
    pub fn continue_prob(&self, obs: &Tensor<2>) -> Tensor<1> {
        let [p, d] = obs.dims();
        let above = obs.clone().greater_equal(self.low.clone().expand([p, d]));
        let below = obs.clone().lower_equal(self.high.clone().expand([p, d]));
        (above.float() * below.float()).min_dim(1).reshape([p])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_every_path_at_once() {
        let device = Device::flex();
        let rule =
            Termination::observation_bounds(vec![-1.0, f32::NEG_INFINITY], vec![1.0, 2.0]).unwrap();
        let t = DeclaredTermination::new(&rule, 2, &device).unwrap();
        let obs = [
            0.0,
            -1e30, // inside (no lower bound on the second value)
            1.0,
            2.0, // on the bounds: inside
            1.01,
            0.0, // beyond the first upper bound
            -1.5,
            0.0, // below the first lower bound
            0.0,
            2.5, // beyond the second upper bound
            0.0,
            f32::NAN, // NaN
            0.0,
            f32::NEG_INFINITY, // overflowed prediction
        ];
        let obs = Tensor::<2>::from_data(TensorData::new(obs.to_vec(), [7, 2]), &device);
        let c = t
            .continue_prob(&obs)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(c, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Only the first dimension is bounded on both sides: 1 − u² of it alone.
        let m = t
            .margin(&obs.clone().narrow(0, 0, 3))
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!((m[0] - 1.0).abs() < 1e-6 && m[1].abs() < 1e-6, "{m:?}");
        assert!((m[2] - (1.0 - 1.01f32 * 1.01)).abs() < 1e-5, "{m:?}");
        let open = Termination::observation_bounds(
            vec![f32::NEG_INFINITY, f32::NEG_INFINITY],
            vec![1.0, 2.0],
        )
        .unwrap();
        let open = DeclaredTermination::new(&open, 2, &device).unwrap();
        assert!(open.margin(&obs).is_none());
        assert!(DeclaredTermination::new(&rule, 3, &device).is_err());
        let bad = Termination::ObservationBounds {
            low: vec![1.0, 0.0],
            high: vec![0.0, 1.0],
        };
        assert!(DeclaredTermination::new(&bad, 2, &device).is_err());
    }
}
