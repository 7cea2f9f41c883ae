//! What an agent does in one step.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An action, owned: an index into a discrete space or a vector of a box space.
///
/// JSON is untagged so that it reads as in Gymnasium: `1` for a discrete action,
/// `[0.25]` for a continuous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged, try_from = "RawAction")]
pub enum Action {
    /// Index of the chosen action in a discrete space.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::space::U32))]
    Discrete(u32),
    /// Values of a continuous action, one per dimension of a box space.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::space::F32Vector))]
    Continuous(Vec<f32>),
}

/// An action as JSON may write it: a discrete index also as an integral float (`3.0`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawAction {
    Index(u64),
    Number(f64),
    Values(Vec<f32>),
}

impl TryFrom<RawAction> for Action {
    type Error = String;

    fn try_from(raw: RawAction) -> Result<Self, String> {
        let index = |n: u64| {
            u32::try_from(n)
                .map(Action::Discrete)
                .map_err(|_| format!("discrete action {n} is too large"))
        };
        match raw {
            RawAction::Index(n) => index(n),
            RawAction::Number(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
                index(f as u64)
            }
            RawAction::Number(f) => Err(format!(
                "a discrete action is a non-negative integer, got {f}"
            )),
            RawAction::Values(v) => Ok(Action::Continuous(v)),
        }
    }
}

/// An action, borrowed: lets environments be stepped without allocating per step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActionRef<'a> {
    /// Index of the chosen action in a discrete space.
    Discrete(u32),
    /// Values of a continuous action, one per dimension of a box space.
    Continuous(&'a [f32]),
}

impl Action {
    /// Borrows this action.
    pub fn as_ref(&self) -> ActionRef<'_> {
        match self {
            Action::Discrete(i) => ActionRef::Discrete(*i),
            Action::Continuous(v) => ActionRef::Continuous(v),
        }
    }
}

impl ActionRef<'_> {
    /// Copies this action into an owned [`Action`].
    pub fn to_action(self) -> Action {
        match self {
            ActionRef::Discrete(i) => Action::Discrete(i),
            ActionRef::Continuous(v) => Action::Continuous(v.to_vec()),
        }
    }
}

impl<'a> From<&'a Action> for ActionRef<'a> {
    fn from(action: &'a Action) -> Self {
        action.as_ref()
    }
}

impl From<u32> for ActionRef<'_> {
    fn from(index: u32) -> Self {
        ActionRef::Discrete(index)
    }
}

impl<'a> From<&'a [f32]> for ActionRef<'a> {
    fn from(values: &'a [f32]) -> Self {
        ActionRef::Continuous(values)
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for ActionRef<'a> {
    fn from(values: &'a [f32; N]) -> Self {
        ActionRef::Continuous(values)
    }
}

impl From<u32> for Action {
    fn from(index: u32) -> Self {
        Action::Discrete(index)
    }
}

impl From<Vec<f32>> for Action {
    fn from(values: Vec<f32>) -> Self {
        Action::Continuous(values)
    }
}

/// Why an action does not fit a space.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActionError {
    /// A continuous action was given to a discrete space.
    #[error("expected a discrete action (an index below {n}), got a continuous one")]
    ExpectedDiscrete {
        /// Number of choices of the space.
        n: u32,
    },
    /// A discrete action was given to a box space.
    #[error("expected a continuous action of {dim} values, got a discrete one")]
    ExpectedContinuous {
        /// Dimension of the space.
        dim: usize,
    },
    /// A discrete index at or above the number of choices.
    #[error("action index {index} is out of range: the space has {n} choices")]
    OutOfRange {
        /// The index given.
        index: u32,
        /// Number of choices of the space.
        n: u32,
    },
    /// A continuous action with the wrong number of values.
    #[error("action has {found} values, the space expects {expected}")]
    WrongDimension {
        /// Dimension of the space.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// A NaN or infinite value in a continuous action.
    #[error("action value {position} is not finite")]
    NonFinite {
        /// Index of the first offending value.
        position: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_untagged() {
        assert_eq!(serde_json::to_string(&Action::Discrete(1)).unwrap(), "1");
        assert_eq!(
            serde_json::to_string(&Action::Continuous(vec![0.25, -1.5])).unwrap(),
            "[0.25,-1.5]"
        );
        for action in [Action::Discrete(7), Action::Continuous(vec![0.1, -0.3])] {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), action);
        }
        assert!(serde_json::from_str::<Action>("-1").is_err());
        assert_eq!(
            serde_json::from_str::<Action>("3.0").unwrap(),
            Action::Discrete(3)
        );
        assert!(serde_json::from_str::<Action>("2.5").is_err());
        assert!(serde_json::from_str::<Action>("4294967296").is_err());
        assert!(serde_json::from_str::<Action>("\"left\"").is_err());
    }

    #[test]
    fn borrowing_round_trips() {
        let a = Action::Continuous(vec![1.0, 2.0]);
        assert_eq!(a.as_ref().to_action(), a);
        assert_eq!(ActionRef::from(3u32), ActionRef::Discrete(3));
        assert_eq!(ActionRef::from(&[0.5f32]), ActionRef::Continuous(&[0.5]));
    }
}
