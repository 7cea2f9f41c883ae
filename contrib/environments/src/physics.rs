//! Adjustable physics: named overrides of an environment's physical parameters, for
//! adaptation experiments ("the pole got longer; adapt").

use crate::error::EnvError;

/// Overrides of physics parameters by name, applied on top of Gymnasium's defaults by
/// [`crate::make_with`].
///
/// Names are the attribute names of Gymnasium's classes (`length`, `masspole`, `g`,
/// ...); each environment's config struct documents its own. An unknown name or a value
/// that is not positive and finite is refused with a typed error.
///
/// ```
/// use plasma_envs::{Physics, make_with};
/// let physics = Physics::new().with("length", 1.0).with("masspole", 0.2);
/// let env = make_with("CartPole-v1", &physics).unwrap();
/// # let _ = env;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Physics {
    values: Vec<(String, f64)>,
}

impl Physics {
    /// No overrides: Gymnasium's physics.
    pub fn new() -> Self {
        Physics::default()
    }

    /// Adds (or replaces) one override.
    pub fn with(mut self, name: impl Into<String>, value: f64) -> Self {
        self.set(name, value);
        self
    }

    /// Adds (or replaces) one override.
    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        let name = name.into();
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// The override for `name`, if any.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// The overrides, in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// Whether there is no override.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<S: Into<String>> FromIterator<(S, f64)> for Physics {
    fn from_iter<I: IntoIterator<Item = (S, f64)>>(iter: I) -> Self {
        let mut physics = Physics::new();
        for (name, value) in iter {
            physics.set(name, value);
        }
        physics
    }
}

/// The physical parameters of one environment, all positive and finite.
///
/// Implemented by each environment's config struct (whose `Default` is Gymnasium's).
pub trait PhysicsConfig: Default + Clone {
    /// The environment id these parameters belong to.
    const ENV_ID: &'static str;

    /// Every parameter with its current value, in a fixed order.
    fn params(&self) -> Vec<(&'static str, f64)>;

    /// The parameter called `name`, to change it.
    fn param_mut(&mut self, name: &str) -> Option<&mut f64>;

    /// Checks that every parameter is positive and finite.
    fn validate(&self) -> Result<(), EnvError> {
        for (name, value) in self.params() {
            if !(value.is_finite() && value > 0.0) {
                return Err(EnvError::InvalidParameter { name, value });
            }
        }
        Ok(())
    }

    /// Applies `physics` on top of these values and validates the result.
    fn apply(&mut self, physics: &Physics) -> Result<(), EnvError> {
        for (name, value) in physics.iter() {
            match self.param_mut(name) {
                Some(slot) => *slot = value,
                None => {
                    let known: Vec<&str> = self.params().iter().map(|(n, _)| *n).collect();
                    return Err(EnvError::UnknownParameter {
                        env: Self::ENV_ID,
                        name: name.to_owned(),
                        known: known.join(", "),
                    });
                }
            }
        }
        self.validate()
    }

    /// Gymnasium's defaults with `physics` applied.
    fn from_physics(physics: &Physics) -> Result<Self, EnvError> {
        let mut config = Self::default();
        config.apply(physics)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_and_keep_order() {
        let p = Physics::new().with("a", 1.0).with("b", 2.0).with("a", 3.0);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![("a", 3.0), ("b", 2.0)]);
        assert_eq!(p.get("b"), Some(2.0));
        assert_eq!(p.get("c"), None);
        let q: Physics = [("a", 3.0), ("b", 2.0)].into_iter().collect();
        assert_eq!(p, q);
        assert!(Physics::new().is_empty());
    }
}
