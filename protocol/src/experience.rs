//! Real experience that agents report to the server.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::action::{Action, ActionError};
use crate::ident::{IdentifierError, validate_identifier};
use crate::task::TaskSpec;

/// Most transitions accepted in one [`ExperienceBatch`]; larger uploads are split by the
/// sender. Checked by `validate`, after deserialization: the memory one upload takes
/// while it is parsed is bounded by the receiver's request-body limit, not by this.
pub const MAX_BATCH_TRANSITIONS: usize = 10_000;

/// One step of real experience, as Gymnasium's `(obs, action, reward, next_obs,
/// terminated, truncated)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transition {
    /// Observation before the action.
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Vec<crate::space::F32>, min_items = 1, max_items = 4096)
    )]
    pub obs: Vec<f32>,
    /// The action taken.
    pub action: Action,
    /// Reward received for the step: finite and within f32's range (models learn in f32).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::space::F32))]
    pub reward: f64,
    /// Observation after the action (the final observation if the episode ended).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Vec<crate::space::F32>, min_items = 1, max_items = 4096)
    )]
    pub next_obs: Vec<f32>,
    /// The episode reached a terminal state of the task (no bootstrapping past it).
    pub terminated: bool,
    /// The episode was cut short by a time limit or an outside cause.
    pub truncated: bool,
}

/// A batch of transitions from one agent on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperienceBatch {
    /// The reporting agent (an identifier).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub agent_id: String,
    /// The task the experience was collected on; must equal the spec's name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
    )]
    pub task_name: String,
    /// The transitions, in the order they happened.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10000))]
    pub transitions: Vec<Transition>,
}

/// Which observation of a transition an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObsField {
    /// [`Transition::obs`].
    Obs,
    /// [`Transition::next_obs`].
    NextObs,
}

impl fmt::Display for ObsField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObsField::Obs => "obs",
            ObsField::NextObs => "next_obs",
        })
    }
}

/// Why an experience batch was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExperienceError {
    /// The agent id is not a valid identifier.
    #[error("invalid agent id: {0}")]
    AgentId(#[source] IdentifierError),
    /// The batch names another task than the spec it is checked against.
    #[error("batch is for task {found:?}, expected {expected:?}")]
    TaskMismatch {
        /// The spec's name.
        expected: String,
        /// The batch's task name.
        found: String,
    },
    /// The batch holds no transition.
    #[error("batch holds no transition")]
    Empty,
    /// The batch holds more than [`MAX_BATCH_TRANSITIONS`] transitions.
    #[error("batch holds {len} transitions, the limit is {max}")]
    TooLarge {
        /// Number of transitions.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An observation with the wrong number of values.
    #[error("transition {index}: {field} has {found} values, the task expects {expected}")]
    ObservationDim {
        /// Index of the transition in the batch.
        index: usize,
        /// Which observation.
        field: ObsField,
        /// The task's observation dimension.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// A NaN or infinite observation value.
    #[error("transition {index}: {field}[{position}] is not finite")]
    NonFiniteObservation {
        /// Index of the transition in the batch.
        index: usize,
        /// Which observation.
        field: ObsField,
        /// Index of the first offending value.
        position: usize,
    },
    /// An observation value outside a finite bound of the task's observation space.
    #[error(
        "transition {index}: {field}[{position}] = {value} is outside the observation space's [{low}, {high}]"
    )]
    ObservationOutOfBounds {
        /// Index of the transition in the batch.
        index: usize,
        /// Which observation.
        field: ObsField,
        /// Index of the first offending value.
        position: usize,
        /// The value.
        value: f32,
        /// The space's lower bound there.
        low: f32,
        /// The space's upper bound there.
        high: f32,
    },
    /// A NaN or infinite reward, or one beyond f32's range (it would be infinite where
    /// models learn).
    #[error("transition {index}: reward is not a finite f32 (|reward| <= 3.4028235e38)")]
    NonFiniteReward {
        /// Index of the transition in the batch.
        index: usize,
    },
    /// An action that does not fit the task's action space.
    #[error("transition {index}: {source}")]
    InvalidAction {
        /// Index of the transition in the batch.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: ActionError,
    },
}

impl ExperienceBatch {
    /// Checks the batch against the task it claims to belong to.
    ///
    /// Checked: the agent id, the task name, the size (1 to [`MAX_BATCH_TRANSITIONS`]),
    /// the dimension and finiteness of every observation, every observation value inside
    /// the observation space's finite bounds (an unbounded side, `±inf`, is not checked:
    /// the world model screens such dimensions for outliers instead), finite rewards, and
    /// every action with [`crate::Space::check_action`]. The first fault found is
    /// reported, so a refused batch names the transition and the field; nothing of a
    /// refused batch should be stored. `spec` is assumed valid ([`TaskSpec::validate`]).
    pub fn validate(&self, spec: &TaskSpec) -> Result<(), ExperienceError> {
        validate_identifier(&self.agent_id).map_err(ExperienceError::AgentId)?;
        if self.task_name != spec.name {
            return Err(ExperienceError::TaskMismatch {
                expected: spec.name.clone(),
                found: self.task_name.clone(),
            });
        }
        if self.transitions.is_empty() {
            return Err(ExperienceError::Empty);
        }
        if self.transitions.len() > MAX_BATCH_TRANSITIONS {
            return Err(ExperienceError::TooLarge {
                len: self.transitions.len(),
                max: MAX_BATCH_TRANSITIONS,
            });
        }
        let obs_dim = spec.observation_space.dim();
        for (index, t) in self.transitions.iter().enumerate() {
            for (field, values) in [(ObsField::Obs, &t.obs), (ObsField::NextObs, &t.next_obs)] {
                if values.len() != obs_dim {
                    return Err(ExperienceError::ObservationDim {
                        index,
                        field,
                        expected: obs_dim,
                        found: values.len(),
                    });
                }
                if let Some(position) = values.iter().position(|v| !v.is_finite()) {
                    return Err(ExperienceError::NonFiniteObservation {
                        index,
                        field,
                        position,
                    });
                }
                if let Some((position, value, low, high)) = values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let (low, high) = spec.observation_space.bounds(i);
                        (i, v, low, high)
                    })
                    .find(|&(_, v, low, high)| v < low || v > high)
                {
                    return Err(ExperienceError::ObservationOutOfBounds {
                        index,
                        field,
                        position,
                        value,
                        low,
                        high,
                    });
                }
            }
            if !(t.reward as f32).is_finite() {
                return Err(ExperienceError::NonFiniteReward { index });
            }
            spec.action_space
                .check_action(t.action.as_ref())
                .map_err(|source| ExperienceError::InvalidAction { index, source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Space;

    fn cartpole() -> TaskSpec {
        let high = vec![4.8, f32::INFINITY, 0.418_879_02, f32::INFINITY];
        TaskSpec {
            name: "CartPole-v1".into(),
            observation_space: Space::boxed(high.iter().map(|h| -h).collect(), high).unwrap(),
            action_space: Space::discrete(2).unwrap(),
            max_episode_steps: Some(500),
            termination: None,
        }
    }

    fn step(action: u32) -> Transition {
        Transition {
            obs: vec![0.01, -0.02, 0.03, 0.04],
            action: Action::Discrete(action),
            reward: 1.0,
            next_obs: vec![0.011, 0.17, 0.031, -0.25],
            terminated: false,
            truncated: false,
        }
    }

    fn batch(transitions: Vec<Transition>) -> ExperienceBatch {
        ExperienceBatch {
            agent_id: "robot-1".into(),
            task_name: "CartPole-v1".into(),
            transitions,
        }
    }

    #[test]
    fn json_round_trip() {
        let mut last = step(1);
        last.terminated = true;
        let b = batch(vec![step(0), last]);
        let json = serde_json::to_string(&b).unwrap();
        let back: ExperienceBatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b);
        assert!(json.contains(r#""action":0"#), "{json}");
    }

    #[test]
    fn valid_batch_passes() {
        assert_eq!(batch(vec![step(0), step(1)]).validate(&cartpole()), Ok(()));
    }

    #[test]
    fn each_fault_is_reported() {
        let spec = cartpole();

        let mut b = batch(vec![step(0)]);
        b.agent_id = "a b".into();
        assert!(matches!(
            b.validate(&spec),
            Err(ExperienceError::AgentId(_))
        ));

        let mut b = batch(vec![step(0)]);
        b.task_name = "Pendulum-v1".into();
        assert!(matches!(
            b.validate(&spec),
            Err(ExperienceError::TaskMismatch { .. })
        ));

        assert_eq!(batch(vec![]).validate(&spec), Err(ExperienceError::Empty));
        assert_eq!(
            batch(vec![step(0); MAX_BATCH_TRANSITIONS + 1]).validate(&spec),
            Err(ExperienceError::TooLarge {
                len: MAX_BATCH_TRANSITIONS + 1,
                max: MAX_BATCH_TRANSITIONS
            })
        );

        let mut t = step(0);
        t.next_obs.pop();
        assert_eq!(
            batch(vec![step(0), t]).validate(&spec),
            Err(ExperienceError::ObservationDim {
                index: 1,
                field: ObsField::NextObs,
                expected: 4,
                found: 3
            })
        );

        let mut t = step(0);
        t.obs[2] = f32::NAN;
        assert_eq!(
            batch(vec![t]).validate(&spec),
            Err(ExperienceError::NonFiniteObservation {
                index: 0,
                field: ObsField::Obs,
                position: 2
            })
        );

        // CartPole's cart position lies in [-4.8, 4.8]; its velocities are unbounded.
        let mut t = step(0);
        t.next_obs[0] = 1e30;
        assert_eq!(
            batch(vec![step(1), t]).validate(&spec),
            Err(ExperienceError::ObservationOutOfBounds {
                index: 1,
                field: ObsField::NextObs,
                position: 0,
                value: 1e30,
                low: -4.8,
                high: 4.8
            })
        );
        let mut t = step(0);
        t.obs[1] = 1e30;
        assert_eq!(
            batch(vec![t]).validate(&spec),
            Ok(()),
            "an unbounded dimension"
        );

        let mut t = step(0);
        t.reward = f64::INFINITY;
        assert_eq!(
            batch(vec![t]).validate(&spec),
            Err(ExperienceError::NonFiniteReward { index: 0 })
        );
        let mut t = step(0);
        t.reward = -1e39;
        assert_eq!(
            batch(vec![step(0), t]).validate(&spec),
            Err(ExperienceError::NonFiniteReward { index: 1 }),
            "a reward that is infinite as f32"
        );

        assert_eq!(
            batch(vec![step(2)]).validate(&spec),
            Err(ExperienceError::InvalidAction {
                index: 0,
                source: ActionError::OutOfRange { index: 2, n: 2 }
            })
        );
        let mut t = step(0);
        t.action = Action::Continuous(vec![0.5]);
        assert!(matches!(
            batch(vec![t]).validate(&spec),
            Err(ExperienceError::InvalidAction { .. })
        ));
    }
}
