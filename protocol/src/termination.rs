//! A task's termination, when it is known in advance and can be declared.
//!
//! Under a reward that is the same at every step (CartPole's +1) the only thing that tells
//! a planner a plan is bad is the episode ending, and a termination learned from a few
//! thousand transitions is blurred and one-sided. Model-based agents that solve such tasks
//! (PETS, mbrl-lib's `termination_fns`) give the planner the task's own termination rule.
//! Declaring it in the [`crate::TaskSpec`] keeps it data, not code, so that a task an agent
//! uploads can declare it as well as the reference environments.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::space::{SpaceError, bounds, check_box};

/// The rule that ends an episode, known in advance.
///
/// JSON: `{"type": "observation_bounds", "low": [-2.4, "-inf"], "high": [2.4, "inf"]}`;
/// infinite bounds are written as in [`crate::Space`]. `low` and `high` have equal lengths
/// and `low[i] < high[i]` (strictly); deserializing validates that, and
/// [`crate::TaskSpec::validate`] checks that the length is the observation space's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawTermination")]
pub enum Termination {
    /// The episode ends after a step whose observation leaves the box: some dimension `i`
    /// has `obs[i] < low[i]` or `obs[i] > high[i]`. The bounds themselves do not end it
    /// (Gymnasium's CartPole compares strictly), an infinite bound never does, and a NaN
    /// value does (it is in no interval; real environments do not produce one, a diverged
    /// model prediction may).
    ObservationBounds {
        /// Lowest value of each dimension that continues; `-inf` for none.
        #[serde(with = "bounds")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::space::bounds::LowBound>))]
        low: Vec<f32>,
        /// Highest value of each dimension that continues; `inf` for none.
        #[serde(with = "bounds")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::space::bounds::HighBound>))]
        high: Vec<f32>,
    },
}

/// Why a termination rule is malformed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TerminationError {
    /// The bounds are no valid box (lengths, size, NaN, low above high).
    #[error("termination bounds: {0}")]
    Bounds(#[from] SpaceError),
    /// A dimension whose interval holds no value: every observation would end the episode.
    #[error("termination bound {position}: low {low} is not below high {high}")]
    EmptyInterval {
        /// Index of the offending dimension.
        position: usize,
        /// The lower bound.
        low: f32,
        /// The upper bound.
        high: f32,
    },
}

impl Termination {
    /// A validated [`Termination::ObservationBounds`].
    pub fn observation_bounds(low: Vec<f32>, high: Vec<f32>) -> Result<Self, TerminationError> {
        let t = Termination::ObservationBounds { low, high };
        t.validate()?;
        Ok(t)
    }

    /// Checks what [`Termination::observation_bounds`] guarantees, for rules built from the
    /// public variant directly.
    pub fn validate(&self) -> Result<(), TerminationError> {
        match self {
            Termination::ObservationBounds { low, high } => {
                check_box(low, high)?;
                // Strictly below: a one-point interval would end nearly every episode at once.
                if let Some(position) = low.iter().zip(high).position(|(l, h)| l >= h) {
                    return Err(TerminationError::EmptyInterval {
                        position,
                        low: low[position],
                        high: high[position],
                    });
                }
                Ok(())
            }
        }
    }

    /// Number of observation values the rule reads.
    pub fn dim(&self) -> usize {
        match self {
            Termination::ObservationBounds { low, .. } => low.len(),
        }
    }

    /// Whether an episode ends on reaching observation `obs` (a slice shorter than the
    /// rule is read as far as it goes).
    pub fn terminates(&self, obs: &[f32]) -> bool {
        match self {
            Termination::ObservationBounds { low, high } => obs
                .iter()
                .zip(low.iter().zip(high))
                .any(|(v, (l, h))| !(l <= v && v <= h)),
        }
    }
}

/// The serialized form before validation.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawTermination {
    ObservationBounds {
        #[serde(with = "bounds")]
        low: Vec<f32>,
        #[serde(with = "bounds")]
        high: Vec<f32>,
    },
}

impl TryFrom<RawTermination> for Termination {
    type Error = TerminationError;

    fn try_from(raw: RawTermination) -> Result<Self, Self::Error> {
        match raw {
            RawTermination::ObservationBounds { low, high } => {
                Termination::observation_bounds(low, high)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cartpole() -> Termination {
        let high = vec![2.4, f32::INFINITY, 0.209_439_52, f32::INFINITY];
        Termination::observation_bounds(high.iter().map(|h| -h).collect(), high).unwrap()
    }

    #[test]
    fn json_round_trip_with_infinite_bounds() {
        let t = cartpole();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"type":"observation_bounds","low":[-2.4,"-inf",-0.20943952,"-inf"],"high":[2.4,"inf",0.20943952,"inf"]}"#
        );
        assert_eq!(serde_json::from_str::<Termination>(&json).unwrap(), t);
    }

    #[test]
    fn deserializing_validates() {
        for bad in [
            r#"{"type":"observation_bounds","low":[0.0],"high":[]}"#,
            r#"{"type":"observation_bounds","low":[],"high":[]}"#,
            r#"{"type":"observation_bounds","low":[1.0],"high":[1.0]}"#,
            r#"{"type":"observation_bounds","low":["nan"],"high":[1.0]}"#,
            r#"{"type":"observation_bounds","low":["inf"],"high":["inf"]}"#,
            r#"{"type":"reward_below","low":[0.0],"high":[1.0]}"#,
        ] {
            assert!(serde_json::from_str::<Termination>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_reports_the_fault() {
        assert_eq!(
            Termination::observation_bounds(vec![0.0, 2.0], vec![1.0, 2.0]),
            Err(TerminationError::EmptyInterval {
                position: 1,
                low: 2.0,
                high: 2.0
            })
        );
        assert_eq!(
            Termination::observation_bounds(vec![0.0], vec![f32::NAN]),
            Err(TerminationError::Bounds(SpaceError::NanBound {
                position: 0
            }))
        );
        assert_eq!(
            Termination::observation_bounds(vec![0.0], vec![1.0, 2.0]),
            Err(TerminationError::Bounds(SpaceError::BoundsLength {
                low: 1,
                high: 2
            }))
        );
        assert_eq!(
            Termination::observation_bounds(vec![], vec![]),
            Err(TerminationError::Bounds(SpaceError::Empty))
        );
        assert!(matches!(
            Termination::observation_bounds(
                vec![0.0; crate::MAX_SPACE_DIM + 1],
                vec![1.0; crate::MAX_SPACE_DIM + 1]
            ),
            Err(TerminationError::Bounds(SpaceError::TooLarge { .. }))
        ));
    }

    #[test]
    fn terminates_strictly_outside_the_bounds() {
        let t = cartpole();
        assert_eq!(t.dim(), 4);
        assert!(!t.terminates(&[0.0, 100.0, 0.0, -100.0]));
        assert!(!t.terminates(&[2.4, 0.0, -0.209_439_52, 0.0]));
        assert!(t.terminates(&[2.41, 0.0, 0.0, 0.0]));
        assert!(t.terminates(&[-2.41, 0.0, 0.0, 0.0]));
        assert!(t.terminates(&[0.0, 0.0, 0.21, 0.0]));
        assert!(t.terminates(&[0.0, f32::NAN, 0.0, 0.0]));
    }
}
