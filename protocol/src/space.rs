//! Observation and action spaces, with Gymnasium's two basic shapes.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::action::{ActionError, ActionRef};

/// Largest number of values in one box space: a guard against absurd specs from the wire.
pub const MAX_SPACE_DIM: usize = 4096;

/// The set of valid observations or actions of a task, as in Gymnasium.
///
/// JSON: `{"type": "discrete", "n": 2}` or
/// `{"type": "box", "low": [-1.0, "-inf"], "high": [1.0, "inf"]}`; infinite bounds are
/// written as the strings `"inf"` / `"-inf"` because JSON has no infinity. Deserializing
/// validates the space, so a space read from the wire is always well formed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawSpace")]
pub enum Space {
    /// `n` choices, numbered `0..n` (Gymnasium's `Discrete(n)` with `start = 0`).
    Discrete {
        /// Number of choices, 1 to [`MAX_SPACE_DIM`].
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096))]
        n: u32,
    },
    /// A vector of `low.len()` real values, each within `[low[i], high[i]]` (Gymnasium's
    /// one-dimensional float32 `Box`). `low` and `high` have equal lengths and
    /// `low[i] <= high[i]`.
    Box {
        /// Lower bounds; `-inf` for unbounded.
        #[serde(with = "bounds")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<bounds::LowBound>, min_items = 1, max_items = 4096))]
        low: Vec<f32>,
        /// Upper bounds; `inf` for unbounded.
        #[serde(with = "bounds")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<bounds::HighBound>, min_items = 1, max_items = 4096))]
        high: Vec<f32>,
    },
}

/// Why a space is malformed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SpaceError {
    /// A discrete space with no choices.
    #[error("a discrete space needs at least one choice")]
    NoChoices,
    /// A discrete space with more than [`MAX_SPACE_DIM`] choices.
    #[error("a discrete space has {0} choices; at most {MAX_SPACE_DIM} are supported")]
    TooManyChoices(u32),
    /// A box whose bound vectors differ in length.
    #[error("box bounds differ in length: {low} low, {high} high")]
    BoundsLength {
        /// Length of `low`.
        low: usize,
        /// Length of `high`.
        high: usize,
    },
    /// A box with no dimension at all.
    #[error("a box space needs at least one dimension")]
    Empty,
    /// A box with more than [`MAX_SPACE_DIM`] dimensions.
    #[error("a box space has {dim} dimensions, the limit is {max}")]
    TooLarge {
        /// Its dimension.
        dim: usize,
        /// The limit.
        max: usize,
    },
    /// A NaN bound.
    #[error("box bound {position} is NaN")]
    NanBound {
        /// Index of the offending dimension.
        position: usize,
    },
    /// A lower bound of `+inf` or an upper bound of `-inf`: no finite value fits.
    #[error("box bound {position}: a lower bound of inf or an upper bound of -inf admits no value")]
    NoValue {
        /// Index of the offending dimension.
        position: usize,
    },
    /// `low[i] > high[i]`.
    #[error("box bound {position}: low {low} is above high {high}")]
    Inverted {
        /// Index of the offending dimension.
        position: usize,
        /// The lower bound.
        low: f32,
        /// The upper bound.
        high: f32,
    },
}

/// Checks a box's bounds: equal lengths, 1 to [`MAX_SPACE_DIM`] dimensions, no NaN,
/// `low ≤ high` everywhere. Shared by box spaces and declared termination bounds.
pub(crate) fn check_box(low: &[f32], high: &[f32]) -> Result<(), SpaceError> {
    if low.len() != high.len() {
        return Err(SpaceError::BoundsLength {
            low: low.len(),
            high: high.len(),
        });
    }
    if low.is_empty() {
        return Err(SpaceError::Empty);
    }
    if low.len() > MAX_SPACE_DIM {
        return Err(SpaceError::TooLarge {
            dim: low.len(),
            max: MAX_SPACE_DIM,
        });
    }
    for (position, (&l, &h)) in low.iter().zip(high).enumerate() {
        if l.is_nan() || h.is_nan() {
            return Err(SpaceError::NanBound { position });
        }
        if l > h {
            return Err(SpaceError::Inverted {
                position,
                low: l,
                high: h,
            });
        }
    }
    Ok(())
}

impl Space {
    /// A validated discrete space of `n` choices.
    pub fn discrete(n: u32) -> Result<Self, SpaceError> {
        let space = Space::Discrete { n };
        space.validate()?;
        Ok(space)
    }

    /// A validated box space.
    pub fn boxed(low: Vec<f32>, high: Vec<f32>) -> Result<Self, SpaceError> {
        let space = Space::Box { low, high };
        space.validate()?;
        Ok(space)
    }

    /// Checks that every dimension admits a finite value (no lower bound of `+inf`, no
    /// upper bound of `-inf`): required of a task registered now ([`crate::TaskSpec::validate`]),
    /// not of a space read back, so that records stored before the rule still load.
    pub fn admits_values(&self) -> Result<(), SpaceError> {
        if let Space::Box { low, high } = self
            && let Some(position) = low
                .iter()
                .zip(high)
                .position(|(&l, &h)| l == f32::INFINITY || h == f32::NEG_INFINITY)
        {
            return Err(SpaceError::NoValue { position });
        }
        Ok(())
    }

    /// Checks the invariants that [`Space::discrete`] and [`Space::boxed`] guarantee, for
    /// spaces built from the public variants directly.
    pub fn validate(&self) -> Result<(), SpaceError> {
        match self {
            Space::Discrete { n } => {
                if *n == 0 {
                    return Err(SpaceError::NoChoices);
                }
                if *n as usize > MAX_SPACE_DIM {
                    return Err(SpaceError::TooManyChoices(*n));
                }
            }
            Space::Box { low, high } => check_box(low, high)?,
        }
        Ok(())
    }

    /// Number of `f32` values one element of the space takes in a flat vector: the box's
    /// dimension, or 1 for a discrete space (its index).
    pub fn dim(&self) -> usize {
        match self {
            Space::Discrete { .. } => 1,
            Space::Box { low, .. } => low.len(),
        }
    }

    /// The bounds of value `i` of an element in its flat form: the box's `[low, high]`, or
    /// `[0, n − 1]` for a discrete space's index; `(-inf, inf)` past the dimension.
    pub fn bounds(&self, i: usize) -> (f32, f32) {
        match self {
            Space::Discrete { n } if i == 0 => (0.0, n.saturating_sub(1) as f32),
            Space::Box { low, high } if i < low.len() => (low[i], high[i]),
            _ => (f32::NEG_INFINITY, f32::INFINITY),
        }
    }

    /// Whether this is a discrete space.
    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete { .. })
    }

    /// Checks that `action` can be applied in this space: the right kind, an index in
    /// range, the right number of values, all finite.
    ///
    /// Finite values outside a box's bounds are accepted, as Gymnasium's environments
    /// accept them (they clip internally); use [`Space::contains`] for the strict test.
    pub fn check_action(&self, action: ActionRef<'_>) -> Result<(), ActionError> {
        match (self, action) {
            (Space::Discrete { n }, ActionRef::Discrete(index)) => {
                if index < *n {
                    Ok(())
                } else {
                    Err(ActionError::OutOfRange { index, n: *n })
                }
            }
            (Space::Discrete { n }, ActionRef::Continuous(_)) => {
                Err(ActionError::ExpectedDiscrete { n: *n })
            }
            (Space::Box { low, .. }, ActionRef::Discrete(_)) => {
                Err(ActionError::ExpectedContinuous { dim: low.len() })
            }
            (Space::Box { low, .. }, ActionRef::Continuous(values)) => {
                if values.len() != low.len() {
                    return Err(ActionError::WrongDimension {
                        expected: low.len(),
                        found: values.len(),
                    });
                }
                match values.iter().position(|v| !v.is_finite()) {
                    Some(position) => Err(ActionError::NonFinite { position }),
                    None => Ok(()),
                }
            }
        }
    }

    /// Gymnasium's `contains`: a valid action that also lies within the box's bounds.
    pub fn contains(&self, action: ActionRef<'_>) -> bool {
        if self.check_action(action).is_err() {
            return false;
        }
        match (self, action) {
            (Space::Box { low, high }, ActionRef::Continuous(values)) => values
                .iter()
                .zip(low.iter().zip(high))
                .all(|(v, (l, h))| l <= v && v <= h),
            _ => true,
        }
    }
}

/// The serialized form before validation.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawSpace {
    Discrete {
        #[serde(deserialize_with = "crate::lenient::u32")]
        n: u32,
    },
    Box {
        #[serde(with = "bounds")]
        low: Vec<f32>,
        #[serde(with = "bounds")]
        high: Vec<f32>,
    },
}

impl TryFrom<RawSpace> for Space {
    type Error = SpaceError;

    fn try_from(raw: RawSpace) -> Result<Self, Self::Error> {
        match raw {
            RawSpace::Discrete { n } => Space::discrete(n),
            RawSpace::Box { low, high } => Space::boxed(low, high),
        }
    }
}

/// The OpenAPI schema of an `f32` value in JSON: a number within the finite `f32` range
/// (serde refuses larger ones).
#[cfg(feature = "openapi")]
pub struct F32;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for F32 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Float)))
            .minimum(Some(-f64::from(f32::MAX)))
            .maximum(Some(f64::from(f32::MAX)))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for F32 {}

/// The OpenAPI schema of a vector of `f32` values: 1 to [`MAX_SPACE_DIM`] of them.
#[cfg(feature = "openapi")]
pub struct F32Vector;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for F32Vector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::ArrayBuilder;
        ArrayBuilder::new()
            .items(<F32 as utoipa::PartialSchema>::schema())
            .min_items(Some(1))
            .max_items(Some(MAX_SPACE_DIM))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for F32Vector {}

/// The OpenAPI schema of a `u32` value: an integer from 0 to 2³² − 1.
#[cfg(feature = "openapi")]
pub struct U32;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for U32 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u32::MAX))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for U32 {}

/// Bounds as JSON numbers, with infinities as the strings `"inf"` and `"-inf"` (shared with
/// [`crate::Termination`], so both write infinities the same way).
pub(crate) mod bounds {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// One bound as JSON writes it: a number, or an infinity as text.
    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Bound {
        /// A finite bound.
        Number(f32),
        /// `"inf"` or `"-inf"`.
        Text(String),
    }

    /// A lower bound: a number, or `"-inf"` for none (a lower bound of `+inf` would leave
    /// no value, and is refused).
    #[cfg(feature = "openapi")]
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum LowBound {
        /// A finite bound.
        #[schema(value_type = crate::space::F32)]
        Number(f32),
        /// No lower bound.
        #[schema(value_type = NegInfinity)]
        Text(String),
    }

    /// An upper bound: a number, or `"inf"` for none (an upper bound of `-inf` would leave
    /// no value, and is refused).
    #[cfg(feature = "openapi")]
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum HighBound {
        /// A finite bound.
        #[schema(value_type = crate::space::F32)]
        Number(f32),
        /// No upper bound.
        #[schema(value_type = PosInfinity)]
        Text(String),
    }

    /// The text of an absent lower bound.
    #[cfg(feature = "openapi")]
    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)]
    pub enum NegInfinity {
        /// `-∞`.
        #[schema(rename = "-inf")]
        NegInf,
    }

    /// The text of an absent upper bound.
    #[cfg(feature = "openapi")]
    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)]
    pub enum PosInfinity {
        /// `+∞`.
        #[schema(rename = "inf")]
        Inf,
    }

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let bounds: Vec<Bound> = values
            .iter()
            .map(|&v| {
                if v.is_finite() {
                    Bound::Number(v)
                } else if v.is_nan() {
                    Bound::Text("nan".to_owned())
                } else if v > 0.0 {
                    Bound::Text("inf".to_owned())
                } else {
                    Bound::Text("-inf".to_owned())
                }
            })
            .collect();
        bounds.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let bounds = Vec::<Bound>::deserialize(deserializer)?;
        bounds
            .into_iter()
            .map(|b| match b {
                Bound::Number(v) => Ok(v),
                Bound::Text(t) => match t.to_ascii_lowercase().as_str() {
                    "inf" | "+inf" | "infinity" | "+infinity" => Ok(f32::INFINITY),
                    "-inf" | "-infinity" => Ok(f32::NEG_INFINITY),
                    _ => Err(D::Error::custom(format!(
                        "bound {t:?} is neither a number nor \"inf\" / \"-inf\""
                    ))),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cartpole_obs() -> Space {
        let high = [4.8_f32, f32::INFINITY, 0.418_879_03, f32::INFINITY];
        Space::boxed(high.iter().map(|h| -h).collect(), high.to_vec()).unwrap()
    }

    #[test]
    fn json_round_trip_with_infinite_bounds() {
        let space = cartpole_obs();
        let json = serde_json::to_string(&space).unwrap();
        assert_eq!(
            json,
            r#"{"type":"box","low":[-4.8,"-inf",-0.41887903,"-inf"],"high":[4.8,"inf",0.41887903,"inf"]}"#
        );
        let back: Space = serde_json::from_str(&json).unwrap();
        assert_eq!(back, space);

        let discrete = Space::discrete(3).unwrap();
        let json = serde_json::to_string(&discrete).unwrap();
        assert_eq!(json, r#"{"type":"discrete","n":3}"#);
        assert_eq!(serde_json::from_str::<Space>(&json).unwrap(), discrete);
    }

    #[test]
    fn deserializing_validates() {
        for bad in [
            r#"{"type":"discrete","n":0}"#,
            r#"{"type":"box","low":[0.0],"high":[]}"#,
            r#"{"type":"box","low":[],"high":[]}"#,
            r#"{"type":"box","low":[1.0],"high":[0.0]}"#,
            r#"{"type":"box","low":["nan"],"high":[0.0]}"#,
            r#"{"type":"box","low":["wide"],"high":[0.0]}"#,
            r#"{"type":"ring","n":3}"#,
        ] {
            assert!(serde_json::from_str::<Space>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_reports_the_fault() {
        assert_eq!(Space::discrete(0), Err(SpaceError::NoChoices));
        assert_eq!(Space::discrete(4097), Err(SpaceError::TooManyChoices(4097)));
        assert_eq!(
            Space::boxed(vec![0.0, 2.0], vec![1.0, 1.0]),
            Err(SpaceError::Inverted {
                position: 1,
                low: 2.0,
                high: 1.0
            })
        );
        assert_eq!(
            Space::boxed(vec![f32::NAN], vec![1.0]),
            Err(SpaceError::NanBound { position: 0 })
        );
        // A dimension whose only value would be an infinity: read back (records stored
        // before the rule), refused for registration.
        let inf = Space::boxed(vec![0.0, f32::INFINITY], vec![1.0, f32::INFINITY]).unwrap();
        assert_eq!(
            inf.admits_values(),
            Err(SpaceError::NoValue { position: 1 })
        );
        let json = serde_json::to_string(&inf).unwrap();
        assert_eq!(serde_json::from_str::<Space>(&json).unwrap(), inf);
        let neg = Space::boxed(vec![f32::NEG_INFINITY], vec![f32::NEG_INFINITY]).unwrap();
        assert_eq!(
            neg.admits_values(),
            Err(SpaceError::NoValue { position: 0 })
        );
        assert_eq!(cartpole_obs().admits_values(), Ok(()));
        assert!(matches!(
            Space::boxed(vec![0.0; MAX_SPACE_DIM + 1], vec![1.0; MAX_SPACE_DIM + 1]),
            Err(SpaceError::TooLarge { .. })
        ));
    }

    #[test]
    fn check_action_and_contains() {
        let d = Space::discrete(2).unwrap();
        assert_eq!(d.check_action(ActionRef::Discrete(1)), Ok(()));
        assert_eq!(
            d.check_action(ActionRef::Discrete(2)),
            Err(ActionError::OutOfRange { index: 2, n: 2 })
        );
        assert_eq!(
            d.check_action(ActionRef::Continuous(&[0.0])),
            Err(ActionError::ExpectedDiscrete { n: 2 })
        );

        let b = Space::boxed(vec![-2.0], vec![2.0]).unwrap();
        assert_eq!(b.check_action(ActionRef::Continuous(&[5.0])), Ok(()));
        assert!(!b.contains(ActionRef::Continuous(&[5.0])));
        assert!(b.contains(ActionRef::Continuous(&[-2.0])));
        assert_eq!(
            b.check_action(ActionRef::Continuous(&[f32::NAN])),
            Err(ActionError::NonFinite { position: 0 })
        );
        assert_eq!(
            b.check_action(ActionRef::Continuous(&[0.0, 1.0])),
            Err(ActionError::WrongDimension {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            b.check_action(ActionRef::Discrete(0)),
            Err(ActionError::ExpectedContinuous { dim: 1 })
        );
        assert_eq!(b.dim(), 1);
        assert_eq!(d.dim(), 1);
    }
}
