//! The description of a task that server, clients and environments share.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ident::{IdentifierError, validate_identifier};
use crate::space::{Space, SpaceError};
use crate::termination::{Termination, TerminationError};

/// What a task looks like from outside: its name and its spaces.
///
/// For the reference environments the name is the Gymnasium id (`"CartPole-v1"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskSpec {
    /// Task name, an identifier (see [`crate::validate_identifier`]).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub name: String,
    /// Space of the observations.
    pub observation_space: Space,
    /// Space of the actions.
    pub action_space: Space,
    /// Steps after which an episode is truncated, if the task has such a limit.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::lenient::opt_u32"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295_u64)
    )]
    pub max_episode_steps: Option<u32>,
    /// The task's termination rule, when it is known in advance (CartPole: the cart leaves
    /// the track or the pole falls past 12°). World models then end imagined episodes by
    /// this rule wherever their learned guess would not; absent, they rely on the guess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
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
    /// The termination rule is malformed.
    #[error("invalid termination: {0}")]
    Termination(#[source] TerminationError),
    /// The termination rule reads another number of values than an observation has.
    #[error("termination reads {found} observation values, an observation has {expected}")]
    TerminationDim {
        /// Values per observation.
        expected: usize,
        /// Values the rule reads.
        found: usize,
    },
}

impl TaskSpec {
    /// Checks the name, both spaces, the step limit and the termination rule.
    pub fn validate(&self) -> Result<(), TaskError> {
        validate_identifier(&self.name)?;
        self.observation_space
            .validate()
            .and_then(|()| self.observation_space.admits_values())
            .map_err(TaskError::ObservationSpace)?;
        self.action_space
            .validate()
            .and_then(|()| self.action_space.admits_values())
            .map_err(TaskError::ActionSpace)?;
        if self.max_episode_steps == Some(0) {
            return Err(TaskError::ZeroStepLimit);
        }
        if let Some(t) = &self.termination {
            t.validate().map_err(TaskError::Termination)?;
            let expected = self.observation_space.dim();
            if t.dim() != expected {
                return Err(TaskError::TerminationDim {
                    expected,
                    found: t.dim(),
                });
            }
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
            termination: None,
        }
    }

    fn cartpole() -> TaskSpec {
        let high = vec![4.8, f32::INFINITY, 0.418_879_03, f32::INFINITY];
        let bounds = vec![2.4, f32::INFINITY, 0.209_439_52, f32::INFINITY];
        TaskSpec {
            name: "CartPole-v1".into(),
            observation_space: Space::boxed(high.iter().map(|h| -h).collect(), high).unwrap(),
            action_space: Space::discrete(2).unwrap(),
            max_episode_steps: Some(500),
            termination: Some(
                Termination::observation_bounds(bounds.iter().map(|h| -h).collect(), bounds)
                    .unwrap(),
            ),
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
        assert!(!json.contains("termination"));

        let spec = cartpole();
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains(r#""termination":{"type":"observation_bounds","low":[-2.4,"-inf","#));
        assert_eq!(serde_json::from_str::<TaskSpec>(&json).unwrap(), spec);
    }

    #[test]
    fn json_without_termination_still_parses() {
        let old = r#"{"name":"Pendulum-v1",
            "observation_space":{"type":"box","low":[-1.0,-1.0,-8.0],"high":[1.0,1.0,8.0]},
            "action_space":{"type":"box","low":[-2.0],"high":[2.0]},
            "max_episode_steps":200}"#;
        assert_eq!(serde_json::from_str::<TaskSpec>(old).unwrap(), pendulum());
        let bad = r#"{"name":"x","observation_space":{"type":"discrete","n":2},
            "action_space":{"type":"discrete","n":2},
            "termination":{"type":"observation_bounds","low":[1.0],"high":[0.0]}}"#;
        assert!(serde_json::from_str::<TaskSpec>(bad).is_err());
    }

    #[test]
    fn validate_checks_the_termination() {
        assert_eq!(cartpole().validate(), Ok(()));
        let mut bad = cartpole();
        bad.termination = Some(Termination::observation_bounds(vec![-1.0], vec![1.0]).unwrap());
        assert_eq!(
            bad.validate(),
            Err(TaskError::TerminationDim {
                expected: 4,
                found: 1
            })
        );
        let mut bad = cartpole();
        bad.termination = Some(Termination::ObservationBounds {
            low: vec![0.0, 0.0, f32::NAN, 0.0],
            high: vec![1.0; 4],
        });
        assert_eq!(
            bad.validate(),
            Err(TaskError::Termination(TerminationError::Bounds(
                SpaceError::NanBound { position: 2 }
            )))
        );
        let mut bad = cartpole();
        bad.termination = Some(Termination::ObservationBounds {
            low: vec![0.0, 2.0, 0.0, 0.0],
            high: vec![1.0; 4],
        });
        assert!(matches!(
            bad.validate(),
            Err(TaskError::Termination(TerminationError::Bounds(
                SpaceError::Inverted { position: 1, .. }
            )))
        ));
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
