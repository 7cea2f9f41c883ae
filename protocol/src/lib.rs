//! Wire types shared by the Plasma server, its clients and the reference environments.
//!
//! Everything an agent, the server and an environment must agree on lives here, so that
//! the three can never drift apart: the shape of a task ([`TaskSpec`], [`Space`]), what an
//! agent does ([`Action`], [`ActionRef`]) and what it reports back ([`Transition`],
//! [`ExperienceBatch`]), a task's known termination rule ([`Termination`]), and the server's API: requests and answers of its endpoints
//! ([`TrainRequest`], [`CompileResponse`], …), jobs and their events ([`JobRecord`],
//! [`JobEvent`]), what jobs report ([`reports`]) and error bodies ([`ErrorBody`]). The crate
//! depends on serde-level crates and plasma-packets (whose packet kind and audit status
//! the API uses), all of which edge devices carry anyway; the `openapi` feature derives
//! utoipa schemas for the server's OpenAPI document.
//!
//! All types round-trip through JSON with serde. Values that JSON cannot hold (infinite
//! bounds of a box space or of a termination rule) are written as the strings `"inf"` and
//! `"-inf"`.

mod action;
mod api;
mod error_body;
mod experience;
mod ident;
mod jobs;
mod lenient;
mod records;
pub mod reports;
#[cfg(feature = "openapi")]
mod schema;
mod space;
mod task;
mod termination;
pub mod wire;
pub mod ws;

pub use action::{Action, ActionError, ActionRef};
pub use api::{
    CompileRequest, CompileResponse, ExperienceAccepted, Health, MAX_REQUEST_COUNT, SigningKey,
    SimulateAccepted, SimulateRequest, Status, TrainAccepted, TrainHistory, TrainHistoryEntry,
    TrainMode, TrainRequest,
};
pub use error_body::{ErrorBody, ErrorCode, ErrorDetail};
pub use experience::{
    ExperienceBatch, ExperienceError, MAX_BATCH_TRANSITIONS, ObsField, Transition,
};
pub use ident::{IdentifierError, MAX_IDENTIFIER_LEN, validate_identifier};
pub use jobs::{
    CompileJob, EventKind, JobEvent, JobKind, JobOutput, JobRecord, JobSpec, JobStatus,
    JobStatusView, JobView, TrainJob,
};
pub use records::{
    AgentSummary, ChunkRecord, DeletionRecord, Deployment, DeploymentChange, DeploymentReport,
    PacketListing, PacketRecord, PolicyKind, TaskRecord,
};
pub use reports::{
    AuditReport, EpochFit, PhaseMetrics, SimulationResult, TrainingResult, WorldModelFit,
};
pub use space::{MAX_SPACE_DIM, Space, SpaceError};
pub use task::{TaskError, TaskSpec};
pub use termination::{Termination, TerminationError};
pub use ws::{WsMessage, WsRequest};
