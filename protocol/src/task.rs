//! The description of a task that server, clients and environments share.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ident::{IdentifierError, validate_identifier};
use crate::space::{Space, SpaceError};

/// What a task looks like from outside: its name and its spaces.
///
/// For the reference environments the name is the Gymnasium id (`"CartPole-v1"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Task name, an identifier (see [`crate::validate_identifier`]).
    pub name: String,
    /// Space of the observations.
    pub observation_space: Space,
    /// Space of the actions.
    pub action_space: Space,
    /// Steps after which an episode is truncated, if the task has such a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_episode_steps: Option<u32>,
}

/// Why a task spec is malformed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TaskError {
    /// The name is not a valid identifier.
    #[error("invalid task name: {0}")]
    Name(#[from] IdentifierError),
    /// The observation space is malformed.
    #[error("invalid observation space: {0}")]
    ObservationSpace(#[source] SpaceError),
    /// The action space is malformed.
    #[error("invalid action space: {0}")]
    ActionSpace(#[source] SpaceError),
    /// A time limit of zero steps.
    #[error("max_episode_steps must be at least 1")]
    ZeroStepLimit,
}

impl TaskSpec {
    /// Checks the name, both spaces and the step limit.
    pub fn validate(&self) -> Result<(), TaskError> {
        validate_identifier(&self.name)?;
        self.observation_space
            .validate()
            .map_err(TaskError::ObservationSpace)?;
        self.action_space
            .validate()
            .map_err(TaskError::ActionSpace)?;
        if self.max_episode_steps == Some(0) {
            return Err(TaskError::ZeroStepLimit);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pendulum() -> TaskSpec {
        TaskSpec {
            name: "Pendulum-v1".into(),
            observation_space: Space::boxed(vec![-1.0, -1.0, -8.0], vec![1.0, 1.0, 8.0]).unwrap(),
            action_space: Space::boxed(vec![-2.0], vec![2.0]).unwrap(),
            max_episode_steps: Some(200),
        }
    }

    #[test]
    fn json_round_trip() {
        let spec = pendulum();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<TaskSpec>(&json).unwrap(), spec);

        let mut no_limit = spec.clone();
        no_limit.max_episode_steps = None;
        let json = serde_json::to_string(&no_limit).unwrap();
        assert!(!json.contains("max_episode_steps"));
        assert_eq!(serde_json::from_str::<TaskSpec>(&json).unwrap(), no_limit);
    }

    #[test]
    fn validate_checks_every_part() {
        assert_eq!(pendulum().validate(), Ok(()));
        let mut bad = pendulum();
        bad.name = "../etc".into();
        assert!(matches!(bad.validate(), Err(TaskError::Name(_))));
        let mut bad = pendulum();
        bad.action_space = Space::Discrete { n: 0 };
        assert_eq!(
            bad.validate(),
            Err(TaskError::ActionSpace(SpaceError::NoChoices))
        );
        let mut bad = pendulum();
        bad.observation_space = Space::Box {
            low: vec![1.0],
            high: vec![0.0],
        };
        assert!(matches!(
            bad.validate(),
            Err(TaskError::ObservationSpace(SpaceError::Inverted { .. }))
        ));
        let mut bad = pendulum();
        bad.max_episode_steps = Some(0);
        assert_eq!(bad.validate(), Err(TaskError::ZeroStepLimit));
    }
}
