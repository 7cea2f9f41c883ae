//! Real experience as the model learns from it: transitions checked against their task and
//! stored flat on the host, actions already encoded.

use plasma_protocol::{ActionRef, ExperienceBatch, TaskSpec, Transition};

use crate::action::ActionCodec;
use crate::error::{Result, WorldModelError, check_finite};

/// Transitions of one task, stored row-major: observations `[N, obs_dim]`, encoded actions
/// `[N, action_dim]`, rewards `[N]`, next observations `[N, obs_dim]` and termination flags.
///
/// Every row was checked when it was added (dimensions, finiteness, the action against the
/// action space), so training and evaluation never meet malformed data.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    codec: ActionCodec,
    obs_dim: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    terminated: Vec<bool>,
}

impl Dataset {
    /// An empty dataset for `spec`'s task.
    pub fn new(spec: &TaskSpec) -> Result<Self> {
        spec.validate()?;
        if spec.observation_space.is_discrete() {
            return Err(WorldModelError::UnsupportedTask(
                "discrete observation spaces are not modelled; one-hot encode them into a box"
                    .into(),
            ));
        }
        Ok(Dataset {
            codec: ActionCodec::new(&spec.action_space),
            obs_dim: spec.observation_space.dim(),
            obs: vec![],
            actions: vec![],
            rewards: vec![],
            next_obs: vec![],
            terminated: vec![],
        })
    }

    /// A dataset holding `transitions`, all checked against `spec`.
    pub fn from_transitions(spec: &TaskSpec, transitions: &[Transition]) -> Result<Self> {
        let mut data = Dataset::new(spec)?;
        for t in transitions {
            data.push(
                &t.obs,
                t.action.as_ref(),
                t.reward,
                &t.next_obs,
                t.terminated,
            )?;
        }
        Ok(data)
    }

    /// Appends an uploaded experience batch, validated against `spec` as a whole first
    /// (nothing is added if any transition is malformed).
    pub fn extend_from_batch(&mut self, spec: &TaskSpec, batch: &ExperienceBatch) -> Result<()> {
        batch.validate(spec)?;
        let before = self.len();
        for t in &batch.transitions {
            if let Err(e) = self.push(
                &t.obs,
                t.action.as_ref(),
                t.reward,
                &t.next_obs,
                t.terminated,
            ) {
                self.truncate(before);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Appends one transition after checking it.
    pub fn push(
        &mut self,
        obs: &[f32],
        action: ActionRef<'_>,
        reward: f64,
        next_obs: &[f32],
        terminated: bool,
    ) -> Result<()> {
        let index = self.len();
        for (what, o) in [("obs", obs), ("next_obs", next_obs)] {
            if o.len() != self.obs_dim {
                return Err(WorldModelError::shape(
                    format!("{what} of transition {index}"),
                    format!("{} values", self.obs_dim),
                    format!("{} values", o.len()),
                ));
            }
            check_finite(&format!("{what} of transition {index}"), o)?;
        }
        // Finite in f32 too: the model computes in f32.
        if !(reward as f32).is_finite() {
            return Err(WorldModelError::NonFinite {
                what: format!("reward of transition {index}"),
                index: 0,
            });
        }
        let mark = self.actions.len();
        if let Err(e) = self.codec.encode_into(action, &mut self.actions) {
            self.actions.truncate(mark);
            return Err(match e {
                WorldModelError::Shape {
                    expected, found, ..
                } => WorldModelError::Shape {
                    what: format!("action of transition {index}"),
                    expected,
                    found,
                },
                other => other,
            });
        }
        self.obs.extend_from_slice(obs);
        self.rewards.push(reward as f32);
        self.next_obs.extend_from_slice(next_obs);
        self.terminated.push(terminated);
        Ok(())
    }

    /// Keeps the first `len` transitions.
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len());
        self.obs.truncate(len * self.obs_dim);
        self.actions.truncate(len * self.codec.encoded_dim());
        self.rewards.truncate(len);
        self.next_obs.truncate(len * self.obs_dim);
        self.terminated.truncate(len);
    }

    /// Appends all transitions of `other` (of the same task shape).
    pub fn extend(&mut self, other: &Dataset) -> Result<()> {
        if other.obs_dim != self.obs_dim || other.codec != self.codec {
            return Err(WorldModelError::shape(
                "dataset",
                format!(
                    "{} observation values, {}",
                    self.obs_dim,
                    self.codec.describe()
                ),
                format!(
                    "{} observation values, {}",
                    other.obs_dim,
                    other.codec.describe()
                ),
            ));
        }
        self.obs.extend_from_slice(&other.obs);
        self.actions.extend_from_slice(&other.actions);
        self.rewards.extend_from_slice(&other.rewards);
        self.next_obs.extend_from_slice(&other.next_obs);
        self.terminated.extend_from_slice(&other.terminated);
        Ok(())
    }

    /// The rows at `indices`, as a new dataset.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let (d, a) = (self.obs_dim, self.codec.encoded_dim());
        let mut out = Dataset {
            codec: self.codec.clone(),
            obs_dim: d,
            obs: Vec::with_capacity(indices.len() * d),
            actions: Vec::with_capacity(indices.len() * a),
            rewards: Vec::with_capacity(indices.len()),
            next_obs: Vec::with_capacity(indices.len() * d),
            terminated: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            out.obs.extend_from_slice(self.obs(i));
            out.actions.extend_from_slice(self.action(i));
            out.rewards.push(self.rewards[i]);
            out.next_obs.extend_from_slice(self.next_obs(i));
            out.terminated.push(self.terminated[i]);
        }
        out
    }

    /// Number of transitions.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether there is no transition.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Values per observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Values per encoded action.
    pub fn action_dim(&self) -> usize {
        self.codec.encoded_dim()
    }

    /// The action encoding.
    pub fn codec(&self) -> &ActionCodec {
        &self.codec
    }

    /// Every transition's observation, row-major (`[len, obs_dim]`): the real states that
    /// planners label and paths start from.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// Observation of transition `i`.
    pub fn obs(&self, i: usize) -> &[f32] {
        &self.obs[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// Encoded action of transition `i`.
    pub fn action(&self, i: usize) -> &[f32] {
        let a = self.codec.encoded_dim();
        &self.actions[i * a..(i + 1) * a]
    }

    /// Reward of transition `i`.
    pub fn reward(&self, i: usize) -> f32 {
        self.rewards[i]
    }

    /// Next observation of transition `i`.
    pub fn next_obs(&self, i: usize) -> &[f32] {
        &self.next_obs[i * self.obs_dim..(i + 1) * self.obs_dim]
    }

    /// Whether transition `i` reached a terminal state.
    pub fn terminated(&self, i: usize) -> bool {
        self.terminated[i]
    }

    /// Model input of transition `i` (observation then encoded action), appended to `out`.
    pub(crate) fn input_into(&self, i: usize, out: &mut Vec<f32>) {
        out.extend_from_slice(self.obs(i));
        out.extend_from_slice(self.action(i));
    }

    /// Regression target of transition `i` (change of observation then reward), appended to
    /// `out`.
    pub(crate) fn target_into(&self, i: usize, out: &mut Vec<f32>) {
        out.extend(
            self.next_obs(i)
                .iter()
                .zip(self.obs(i))
                .map(|(next, now)| next - now),
        );
        out.push(self.rewards[i]);
    }
}

#[cfg(test)]
mod tests {
    use plasma_protocol::{Action, Space};

    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec {
            name: "Toy-v0".into(),
            observation_space: Space::boxed(vec![-1.0; 2], vec![1.0; 2]).unwrap(),
            action_space: Space::discrete(2).unwrap(),
            max_episode_steps: None,
            termination: None,
        }
    }

    #[test]
    fn push_checks_shapes_actions_and_finiteness() {
        let mut d = Dataset::new(&spec()).unwrap();
        d.push(&[0.0, 1.0], ActionRef::Discrete(1), 1.0, &[0.5, 1.0], false)
            .unwrap();
        assert_eq!(d.len(), 1);
        assert!(matches!(
            d.push(&[0.0], ActionRef::Discrete(1), 1.0, &[0.5, 1.0], false),
            Err(WorldModelError::Shape { .. })
        ));
        assert!(matches!(
            d.push(
                &[0.0, f32::NAN],
                ActionRef::Discrete(1),
                1.0,
                &[0.5, 1.0],
                false
            ),
            Err(WorldModelError::NonFinite { .. })
        ));
        assert!(matches!(
            d.push(
                &[0.0, 0.0],
                ActionRef::Discrete(1),
                f64::INFINITY,
                &[0.5, 1.0],
                false
            ),
            Err(WorldModelError::NonFinite { .. })
        ));
        // Finite in f64 but not in f32.
        assert!(
            d.push(
                &[0.0, 0.0],
                ActionRef::Discrete(1),
                1e300,
                &[0.5, 1.0],
                false
            )
            .is_err()
        );
        assert!(
            d.push(&[0.0, 0.0], ActionRef::Discrete(2), 0.0, &[0.5, 1.0], false)
                .is_err()
        );
        assert_eq!(d.len(), 1, "failed pushes leave the dataset unchanged");
        let mut target = vec![];
        d.target_into(0, &mut target);
        assert_eq!(target, [0.5, 0.0, 1.0]);
        let mut input = vec![];
        d.input_into(0, &mut input);
        assert_eq!(input, [0.0, 1.0, 0.0, 1.0]);
    }

    #[test]
    fn experience_batches_are_validated_whole() {
        let good = Transition {
            obs: vec![0.0, 0.0],
            action: Action::Discrete(0),
            reward: 1.0,
            next_obs: vec![0.1, 0.0],
            terminated: false,
            truncated: false,
        };
        let mut bad = good.clone();
        bad.next_obs = vec![0.0; 3];
        let batch = ExperienceBatch {
            agent_id: "agent-1".into(),
            task_name: "Toy-v0".into(),
            transitions: vec![good.clone(), bad],
        };
        let mut d = Dataset::new(&spec()).unwrap();
        assert!(d.extend_from_batch(&spec(), &batch).is_err());
        assert!(d.is_empty());
        let batch = ExperienceBatch {
            transitions: vec![good.clone(), good],
            ..batch
        };
        d.extend_from_batch(&spec(), &batch).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.subset(&[1]).len(), 1);
    }
}
