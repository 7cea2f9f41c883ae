//! The one error type of the crate.

use plasma_protocol::ActionError;
use thiserror::Error;

/// Everything that can go wrong when building or driving an environment. Bad input is
/// always reported with this type, never with a panic.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EnvError {
    /// `make` was given an id that is not registered.
    #[error("unknown environment id {id:?}; known ids: {known}")]
    UnknownEnv {
        /// The id asked for.
        id: String,
        /// The registered ids, comma separated.
        known: String,
    },
    /// The action does not fit the action space.
    #[error("invalid action: {0}")]
    InvalidAction(#[from] ActionError),
    /// One action of a batch does not fit the action space (no environment was stepped).
    #[error("invalid action for environment {index} of the batch: {source}")]
    InvalidBatchAction {
        /// Index of the environment in the vector.
        index: usize,
        /// What is wrong with its action.
        #[source]
        source: ActionError,
    },
    /// A batch of actions of the wrong kind or size.
    #[error("batch of actions holds {found} values, expected {expected}")]
    BatchSize {
        /// Values expected: environments times action dimension.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// `step` was called before the first `reset` (or `set_state`).
    #[error("the environment must be reset before it is stepped")]
    ResetNeeded,
    /// A physics parameter this environment does not have.
    #[error("{env} has no physics parameter {name:?}; it has: {known}")]
    UnknownParameter {
        /// The environment id.
        env: &'static str,
        /// The parameter asked for.
        name: String,
        /// The parameters it has, comma separated.
        known: String,
    },
    /// A physics parameter that is not positive and finite.
    #[error("physics parameter {name} must be positive and finite, got {value}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A raw state of the wrong length.
    #[error("state has {found} values, the environment's state has {expected}")]
    StateDim {
        /// Length of the environment's state.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A raw state with a NaN or infinite value.
    #[error("state value {position} is not finite")]
    NonFiniteState {
        /// Index of the first offending value.
        position: usize,
    },
    /// An output buffer of the wrong length.
    #[error("output buffer holds {found} values, expected {expected}")]
    BufferSize {
        /// Length needed.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A vector environment with no environment in it.
    #[error("a vector environment needs at least one environment")]
    EmptyVector,
    /// A vector environment over environments whose spaces differ.
    #[error("environment {index} of the vector has other spaces than environment 0")]
    MixedSpaces {
        /// Index of the first environment that differs.
        index: usize,
    },
}
