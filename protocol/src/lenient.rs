//! Integer fields that also read integral JSON numbers written with a fraction (`381.0`):
//! JSON Schema counts them as integers, and some clients (JavaScript, Python's `json`
//! with floats) write them so. A fraction other than zero is still refused.

use serde::{Deserialize, Deserializer, de::Error as _};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Integer(u64),
    Float(f64),
}

impl Number {
    fn to_usize<E: serde::de::Error>(&self) -> Result<usize, E> {
        let n = match *self {
            Number::Integer(n) => n,
            Number::Float(f) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
                f as u64
            }
            Number::Float(f) => {
                return Err(E::custom(format!(
                    "expected a non-negative integer, got {f}"
                )));
            }
        };
        usize::try_from(n).map_err(|_| E::custom(format!("{n} is too large")))
    }
}

/// A `u32` field.
pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = usize(d)?;
    ::core::primitive::u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too large")))
}

/// An optional `u32` field (`null` or absent: none).
pub(crate) fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match opt_usize(d)? {
        Some(n) => ::core::primitive::u32::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{n} is too large"))),
        None => Ok(None),
    }
}

/// A `usize` field.
pub(crate) fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Number::deserialize(d)
        .map_err(|_| D::Error::custom("expected a non-negative integer"))?
        .to_usize()
}

/// An optional `usize` field (`null` or absent: none).
pub(crate) fn opt_usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    match Option::<Number>::deserialize(d)
        .map_err(|_| D::Error::custom("expected a non-negative integer or null"))?
    {
        Some(n) => n.to_usize().map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::usize")]
        n: usize,
        #[serde(default, deserialize_with = "super::opt_usize")]
        m: Option<usize>,
    }

    #[test]
    fn integral_floats_read_as_integers_and_fractions_do_not() {
        let t: T = serde_json::from_str(r#"{"n": 381.0, "m": 4}"#).unwrap();
        assert_eq!((t.n, t.m), (381, Some(4)));
        let t: T = serde_json::from_str(r#"{"n": 7, "m": null}"#).unwrap();
        assert_eq!((t.n, t.m), (7, None));
        assert_eq!(serde_json::from_str::<T>(r#"{"n": 7}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
