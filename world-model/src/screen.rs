//! Robust screening of experience before a fit, so that a few extreme values in a dimension
//! the task leaves unbounded cannot move the normalizers or the model.
//!
//! Finite observation bounds are enforced when experience is accepted
//! (`ExperienceBatch::validate`); CartPole's velocities and most rewards have none, so a
//! `1e30` there passes validation. Screening drops every transition with a value far
//! outside the bulk of its column: per screened column (each unbounded observation
//! dimension, over `obs` and `next_obs` together, and the reward), the 0.5% and 99.5%
//! quantiles `lo`, `hi` and their width `w = hi − lo` are taken, and a transition is kept
//! only if each of its values lies in `[lo − k·w, hi + k·w]`. Quantiles have a breakdown
//! point of 0.5%: one value, or a handful in thousands, cannot shift them, so the
//! normalizers fitted to the kept data do not see them at all.

pub use plasma_protocol::reports::{ScreenReport, ScreenedField};
use plasma_protocol::{TaskSpec, Transition};

/// Quantiles the bulk of a column is measured between.
const LOW_QUANTILE: f64 = 0.005;
const HIGH_QUANTILE: f64 = 0.995;

/// Default `k`: a value more than ten widths of the central 99% outside it is dropped.
pub const DEFAULT_OUTLIER_WIDTHS: f32 = 10.0;

/// The `[low, high]` range a column's values must fall in.
#[derive(Debug, Clone, Copy)]
struct Range {
    low: f64,
    high: f64,
}

impl Range {
    fn of(mut values: Vec<f64>, widths: f64) -> Option<Range> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        let (lo, hi) = (at(LOW_QUANTILE), at(HIGH_QUANTILE));
        // A constant column still tolerates rounding-level differences.
        let width = (hi - lo).max(1e-6 * lo.abs().max(hi.abs()).max(1.0));
        Some(Range {
            low: lo - widths * width,
            high: hi + widths * width,
        })
    }

    fn contains(&self, v: f64) -> bool {
        v >= self.low && v <= self.high
    }
}

/// Indices of the transitions to fit on, in order, and what was dropped. `widths` is `k`
/// above ([`DEFAULT_OUTLIER_WIDTHS`]); a non-positive or non-finite `k` keeps everything.
/// Transitions of a malformed length are left for the dataset to refuse.
pub fn screen(
    spec: &TaskSpec,
    transitions: &[Transition],
    widths: f32,
) -> (Vec<usize>, ScreenReport) {
    let all: Vec<usize> = (0..transitions.len()).collect();
    if !(widths.is_finite() && widths > 0.0) || transitions.is_empty() {
        let kept = all.len();
        return (
            all,
            ScreenReport {
                kept,
                dropped: 0,
                first_dropped: None,
            },
        );
    }
    let widths = f64::from(widths);
    let dim = spec.observation_space.dim();
    let unbounded: Vec<usize> = (0..dim)
        .filter(|&i| {
            let (low, high) = spec.observation_space.bounds(i);
            !(low.is_finite() && high.is_finite())
        })
        .collect();
    let obs_ranges: Vec<(usize, Range)> = unbounded
        .iter()
        .filter_map(|&i| {
            let column = transitions
                .iter()
                .flat_map(|t| [t.obs.get(i), t.next_obs.get(i)])
                .flatten()
                .map(|&v| f64::from(v))
                .collect();
            Range::of(column, widths).map(|r| (i, r))
        })
        .collect();
    let reward_range = Range::of(transitions.iter().map(|t| t.reward).collect(), widths);

    let offending = |t: &Transition| -> Option<ScreenedField> {
        for &(i, range) in &obs_ranges {
            if let Some(&v) = t.obs.get(i)
                && !range.contains(f64::from(v))
            {
                return Some(ScreenedField::Obs(i));
            }
            if let Some(&v) = t.next_obs.get(i)
                && !range.contains(f64::from(v))
            {
                return Some(ScreenedField::NextObs(i));
            }
        }
        match reward_range {
            Some(r) if !r.contains(t.reward) => Some(ScreenedField::Reward),
            _ => None,
        }
    };
    let mut kept = Vec::with_capacity(transitions.len());
    let mut first_dropped = None;
    for (index, t) in transitions.iter().enumerate() {
        match offending(t) {
            None => kept.push(index),
            Some(field) => {
                first_dropped.get_or_insert((index, field));
            }
        }
    }
    let report = ScreenReport {
        kept: kept.len(),
        dropped: transitions.len() - kept.len(),
        first_dropped,
    };
    (kept, report)
}

#[cfg(test)]
mod tests {
    use plasma_envs::{Env, make};
    use plasma_protocol::{Action, ActionRef};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;
    use crate::data::Dataset;
    use crate::normalize::Normalizers;

    /// Random-action CartPole experience from the reference environment.
    fn cartpole(n: usize, seed: u64) -> (TaskSpec, Vec<Transition>) {
        let mut env = make("CartPole-v1").unwrap();
        let spec = env.spec();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut obs = env.reset(Some(seed));
        let mut out = vec![];
        while out.len() < n {
            let a = rng.random_range(0..2u32);
            let step = env.step(ActionRef::Discrete(a)).unwrap();
            out.push(Transition {
                obs: obs.clone(),
                action: Action::Discrete(a),
                reward: step.reward,
                next_obs: step.obs.clone(),
                terminated: step.terminated,
                truncated: step.truncated,
            });
            obs = if step.done() {
                env.reset(None)
            } else {
                step.obs
            };
        }
        (spec, out)
    }

    fn normalizers(spec: &TaskSpec, transitions: &[Transition]) -> Normalizers {
        let (kept, _) = screen(spec, transitions, DEFAULT_OUTLIER_WIDTHS);
        let kept: Vec<Transition> = kept.iter().map(|&i| transitions[i].clone()).collect();
        Normalizers::fit(&Dataset::from_transitions(spec, &kept).unwrap()).unwrap()
    }

    #[test]
    fn real_experience_is_kept_whole() {
        let (spec, data) = cartpole(2000, 7);
        let (kept, report) = screen(&spec, &data, DEFAULT_OUTLIER_WIDTHS);
        assert_eq!(kept.len(), data.len(), "{report:?}");
        assert_eq!(report.dropped, 0);
    }

    #[test]
    fn one_extreme_value_cannot_move_the_normalizers() {
        let (spec, data) = cartpole(2000, 11);
        let clean = normalizers(&spec, &data);
        // CartPole's cart velocity (dimension 1) and the reward are unbounded: finite
        // bounds would refuse these at upload, these dimensions have none.
        for (field, value) in [
            (ScreenedField::NextObs(1), 1e30),
            (ScreenedField::Obs(1), 1e4),
            (ScreenedField::Obs(3), -50.0),
            (ScreenedField::Reward, 1e6),
        ] {
            let mut poisoned = data.clone();
            let t = &mut poisoned[1234];
            match field {
                ScreenedField::Obs(i) => t.obs[i] = value as f32,
                ScreenedField::NextObs(i) => t.next_obs[i] = value as f32,
                ScreenedField::Reward => t.reward = value,
            }
            let (kept, report) = screen(&spec, &poisoned, DEFAULT_OUTLIER_WIDTHS);
            assert_eq!(report.dropped, 1, "{value} in {field:?}: {report:?}");
            assert_eq!(report.first_dropped, Some((1234, field)));
            assert!(!kept.contains(&1234));
            // The normalizers equal those fitted to the data without that transition.
            let mut without = data.clone();
            without.remove(1234);
            let expected = normalizers(&spec, &without);
            let got = normalizers(&spec, &poisoned);
            assert_eq!(got.input, expected.input, "{field:?}");
            assert_eq!(got.target, expected.target, "{field:?}");
            // And differ from the clean fit by no more than one transition's weight.
            for (a, b) in got.input.std.iter().zip(&clean.input.std) {
                assert!((a - b).abs() <= 0.01 * b, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn a_nonpositive_width_keeps_everything() {
        let (spec, mut data) = cartpole(300, 3);
        data[5].obs[1] = 1e30;
        let (kept, report) = screen(&spec, &data, 0.0);
        assert_eq!(kept.len(), 300);
        assert_eq!(report.dropped, 0);
    }
}
