//! Typed errors of the world-model crate: bad input is an error, never a panic.

use std::path::PathBuf;

use plasma_protocol::{ActionError, ExperienceError, TaskError};
use thiserror::Error;

/// Result of a world-model operation.
pub type Result<T, E = WorldModelError> = std::result::Result<T, E>;

/// Why a world-model operation failed.
#[derive(Debug, Error)]
pub enum WorldModelError {
    /// The configuration names a family that the registry does not know.
    #[error("unknown world-model family {family:?} (known: {known:?})")]
    UnknownFamily {
        /// The family named by the configuration.
        family: String,
        /// The families the registry knows.
        known: Vec<String>,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A configuration or checkpoint document could not be parsed or written.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The task specification is malformed.
    #[error("invalid task spec: {0}")]
    Task(#[from] TaskError),
    /// The task is one this family cannot model.
    #[error("unsupported task: {0}")]
    UnsupportedTask(String),
    /// Input of the wrong shape (uploaded experience, start states, action sequences).
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    Shape {
        /// What was malformed.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape found, in words.
        found: String,
    },
    /// A NaN or an infinity where finite numbers are required.
    #[error("{what} is not finite at index {index}")]
    NonFinite {
        /// What held the value.
        what: String,
        /// Flat index of the first offending value.
        index: usize,
    },
    /// An action that does not fit the task's action space.
    #[error("invalid action at index {index}: {source}")]
    Action {
        /// Index of the action in its batch.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ActionError,
    },
    /// An experience batch that does not fit its task.
    #[error("invalid experience: {0}")]
    Experience(#[from] ExperienceError),
    /// A dataset with no transition where at least one is needed.
    #[error("dataset is empty: {0}")]
    EmptyDataset(String),
    /// Training produced a non-finite loss (learning rate too high, bad data).
    #[error("training diverged at epoch {epoch}: the loss is not finite")]
    Diverged {
        /// Epoch at which the loss became non-finite.
        epoch: usize,
    },
    /// The requested device cannot be used in this build or on this machine.
    #[error("device {0:?} is unavailable: {1}")]
    Device(String, String),
    /// Reading or writing a file failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The weights file could not be written or read back.
    #[error("weights record {path}: {message}")]
    Record {
        /// The weights file.
        path: PathBuf,
        /// burn's description of the failure.
        message: String,
    },
    /// The compute backend failed (e.g. reading a tensor back from a GPU).
    #[error("backend: {0}")]
    Backend(String),
    /// Long work stopped because its caller asked it to (a cancelled job).
    #[error("cancelled")]
    Cancelled,
    /// An environment refused a step (model-predictive control in a real environment).
    #[error("environment: {0}")]
    Env(#[from] plasma_envs::EnvError),
}

impl WorldModelError {
    /// A shape error with formatted descriptions.
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        found: impl std::fmt::Display,
    ) -> Self {
        WorldModelError::Shape {
            what: what.into(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// An I/O error on a path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WorldModelError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Fails with [`WorldModelError::NonFinite`] at the first NaN or infinity of `values`.
pub(crate) fn check_finite(what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(WorldModelError::NonFinite {
            what: what.to_owned(),
            index,
        }),
        None => Ok(()),
    }
}

/// Reads a float tensor back to the host.
pub(crate) fn read_f32<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| WorldModelError::Backend(format!("reading a tensor: {e:?}")))
}
