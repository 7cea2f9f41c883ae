//! How actions enter the model: a discrete action is one-hot encoded, a continuous one is
//! clipped to its box (as the environments clip it), so that every family sees a vector of
//! floats of a fixed width.

use burn::tensor::{Device, Int, Tensor, TensorData};
use plasma_protocol::{ActionRef, Space};

use crate::error::{Result, WorldModelError};

/// The encoding of a task's actions into model inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionCodec {
    /// `n` choices, encoded one-hot into `n` floats.
    Discrete {
        /// Number of choices.
        n: usize,
    },
    /// A box, encoded as its values clipped to the bounds.
    Continuous {
        /// Lower bounds.
        low: Vec<f32>,
        /// Upper bounds.
        high: Vec<f32>,
    },
}

impl ActionCodec {
    /// The codec of an action space.
    pub fn new(space: &Space) -> Self {
        match space {
            Space::Discrete { n } => ActionCodec::Discrete { n: *n as usize },
            Space::Box { low, high } => ActionCodec::Continuous {
                low: low.clone(),
                high: high.clone(),
            },
        }
    }

    /// Width of an encoded action.
    pub fn encoded_dim(&self) -> usize {
        match self {
            ActionCodec::Discrete { n } => *n,
            ActionCodec::Continuous { low, .. } => low.len(),
        }
    }

    /// Width of a raw action as planners manipulate it: 1 index for a discrete action, the
    /// box's dimension for a continuous one.
    pub fn raw_dim(&self) -> usize {
        match self {
            ActionCodec::Discrete { .. } => 1,
            ActionCodec::Continuous { low, .. } => low.len(),
        }
    }

    /// Whether actions are discrete.
    pub fn is_discrete(&self) -> bool {
        matches!(self, ActionCodec::Discrete { .. })
    }

    /// Appends the encoding of `action` to `out`, checking that it fits the space.
    pub fn encode_into(&self, action: ActionRef<'_>, out: &mut Vec<f32>) -> Result<()> {
        match (self, action) {
            (ActionCodec::Discrete { n }, ActionRef::Discrete(i)) if (i as usize) < *n => {
                out.extend((0..*n).map(|k| if k == i as usize { 1.0 } else { 0.0 }));
                Ok(())
            }
            (ActionCodec::Continuous { low, high }, ActionRef::Continuous(v))
                if v.len() == low.len() =>
            {
                crate::error::check_finite("action", v)?;
                out.extend(
                    v.iter()
                        .zip(low.iter().zip(high))
                        .map(|(x, (lo, hi))| x.clamp(*lo, *hi)),
                );
                Ok(())
            }
            (codec, action) => Err(WorldModelError::shape(
                "action",
                codec.describe(),
                format!("{action:?}"),
            )),
        }
    }

    /// Encodes a batch of discrete indices (`[B]`) into one-hot rows (`[B, n]`) on `device`,
    /// or fails if the codec is continuous or an index is out of range.
    pub fn encode_indices(&self, indices: &[u32], device: &Device) -> Result<Tensor<2>> {
        let ActionCodec::Discrete { n } = self else {
            return Err(WorldModelError::shape(
                "actions",
                self.describe(),
                "discrete indices",
            ));
        };
        if let Some(index) = indices.iter().position(|&i| i as usize >= *n) {
            return Err(WorldModelError::Action {
                index,
                source: plasma_protocol::ActionError::OutOfRange {
                    index: indices[index],
                    n: *n as u32,
                },
            });
        }
        let ints: Vec<i64> = indices.iter().map(|&i| i64::from(i)).collect();
        let t = Tensor::<1, Int>::from_data(TensorData::new(ints, [indices.len()]), device);
        Ok(t.one_hot::<2>(*n).float())
    }

    /// Clamps a batch of continuous actions (`[.., dim]`, any rank) to the box, on the device.
    pub fn clip<const D: usize>(&self, actions: Tensor<D>) -> Tensor<D> {
        match self {
            ActionCodec::Discrete { .. } => actions,
            ActionCodec::Continuous { low, high } => {
                let device = actions.device();
                let dims = actions.dims();
                let mut shape = [1usize; D];
                shape[D - 1] = low.len();
                let lo = Tensor::<1>::from_data(TensorData::new(low.clone(), [low.len()]), &device)
                    .reshape(shape)
                    .expand(dims);
                let hi =
                    Tensor::<1>::from_data(TensorData::new(high.clone(), [high.len()]), &device)
                        .reshape(shape)
                        .expand(dims);
                actions.max_pair(lo).min_pair(hi)
            }
        }
    }

    /// Describes the expected action, for error messages.
    pub fn describe(&self) -> String {
        match self {
            ActionCodec::Discrete { n } => format!("a discrete action in 0..{n}"),
            ActionCodec::Continuous { low, .. } => {
                format!("a continuous action of {} values", low.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discrete_actions_encode_one_hot_and_out_of_range_is_an_error() {
        let codec = ActionCodec::new(&Space::discrete(3).unwrap());
        assert_eq!(codec.encoded_dim(), 3);
        let mut out = vec![];
        codec.encode_into(ActionRef::Discrete(1), &mut out).unwrap();
        assert_eq!(out, [0.0, 1.0, 0.0]);
        assert!(codec.encode_into(ActionRef::Discrete(3), &mut out).is_err());
        assert!(
            codec
                .encode_into(ActionRef::Continuous(&[0.0]), &mut out)
                .is_err()
        );
        let device = Device::flex();
        let t = codec.encode_indices(&[2, 0], &device).unwrap();
        assert_eq!(
            t.into_data().try_into_vec::<f32>().unwrap(),
            [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert!(codec.encode_indices(&[5], &device).is_err());
    }

    #[test]
    fn continuous_actions_are_clipped_and_checked() {
        let codec = ActionCodec::new(&Space::boxed(vec![-2.0], vec![2.0]).unwrap());
        let mut out = vec![];
        codec
            .encode_into(ActionRef::Continuous(&[3.5]), &mut out)
            .unwrap();
        assert_eq!(out, [2.0]);
        assert!(
            codec
                .encode_into(ActionRef::Continuous(&[f32::NAN]), &mut out)
                .is_err()
        );
        assert!(
            codec
                .encode_into(ActionRef::Continuous(&[0.0, 1.0]), &mut out)
                .is_err()
        );
        let device = Device::flex();
        let t = Tensor::<2>::from_data(TensorData::new(vec![-5.0f32, 1.0], [2, 1]), &device);
        assert_eq!(
            codec.clip(t).into_data().try_into_vec::<f32>().unwrap(),
            [-2.0, 1.0]
        );
    }
}
