//! Wire types shared by the Plasma server, its clients and the reference environments.
//!
//! Everything an agent, the server and an environment must agree on lives here, so that
//! the three can never drift apart: the shape of a task ([`TaskSpec`], [`Space`]), what an
//! agent does ([`Action`], [`ActionRef`]) and what it reports back ([`Transition`],
//! [`ExperienceBatch`]), and a task's known termination rule ([`Termination`]). The crate
//! depends on serde-level crates only, so that small edge devices can use it.
//!
//! All types round-trip through JSON with serde. Values that JSON cannot hold (infinite
//! bounds of a box space or of a termination rule) are written as the strings `"inf"` and
//! `"-inf"`.

mod action;
mod experience;
mod ident;
mod space;
mod task;
mod termination;

pub use action::{Action, ActionError, ActionRef};
pub use experience::{
    ExperienceBatch, ExperienceError, MAX_BATCH_TRANSITIONS, ObsField, Transition,
};
pub use ident::{IdentifierError, MAX_IDENTIFIER_LEN, validate_identifier};
pub use space::{MAX_SPACE_DIM, Space, SpaceError};
pub use task::{TaskError, TaskSpec};
pub use termination::{Termination, TerminationError};
