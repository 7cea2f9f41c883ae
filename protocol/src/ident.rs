//! Identifiers (agent ids, task names) that may end up in file names, URLs and logs.

use thiserror::Error;

/// Longest accepted identifier, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentifierError {
    /// The identifier is the empty string.
    #[error("identifier is empty")]
    Empty,
    /// The identifier is longer than [`MAX_IDENTIFIER_LEN`] bytes.
    #[error("identifier is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The identifier starts with a dot (it could name a hidden file or a parent folder).
    #[error("identifier must not start with '.'")]
    LeadingDot,
    /// The identifier holds a character outside `[A-Za-z0-9_.:-]`.
    #[error(
        "identifier holds the character {found:?}; allowed are ASCII letters, digits and _ . : -"
    )]
    BadCharacter {
        /// The first offending character.
        found: char,
    },
}

/// Checks that `id` is safe to use as an agent id or a task name.
///
/// Identifiers travel into storage paths and URLs, so only a conservative alphabet is
/// accepted: ASCII letters, digits, `_`, `.`, `:` and `-`, not starting with `.`, at most
/// [`MAX_IDENTIFIER_LEN`] bytes. Gymnasium ids such as `CartPole-v1` qualify.
pub fn validate_identifier(id: &str) -> Result<(), IdentifierError> {
    if id.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if id.len() > MAX_IDENTIFIER_LEN {
        return Err(IdentifierError::TooLong {
            len: id.len(),
            max: MAX_IDENTIFIER_LEN,
        });
    }
    if id.starts_with('.') {
        return Err(IdentifierError::LeadingDot);
    }
    if let Some(found) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(IdentifierError::BadCharacter { found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_gymnasium_ids_and_agent_names() {
        for id in [
            "CartPole-v1",
            "MountainCarContinuous-v0",
            "agent_7",
            "robot:arm.2",
        ] {
            assert_eq!(validate_identifier(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn refuses_unsafe_ids() {
        assert_eq!(validate_identifier(""), Err(IdentifierError::Empty));
        assert_eq!(validate_identifier(".."), Err(IdentifierError::LeadingDot));
        assert_eq!(
            validate_identifier("a/b"),
            Err(IdentifierError::BadCharacter { found: '/' })
        );
        assert_eq!(
            validate_identifier("é"),
            Err(IdentifierError::BadCharacter { found: 'é' })
        );
        let long = "a".repeat(MAX_IDENTIFIER_LEN + 1);
        assert!(matches!(
            validate_identifier(&long),
            Err(IdentifierError::TooLong { .. })
        ));
    }
}
