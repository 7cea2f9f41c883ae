//! The body of every error answer: a stable code and a human message.

use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable code, e.g. `unknown_task`, `invalid_json`, `queue_full`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// Declares [`ErrorCode`]: each variant with its wire string and what it means.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// The stable codes of [`ErrorDetail::code`], as one type: the server answers
        /// with them and clients decide by them (`ErrorCode::parse` of a code string; a
        /// code of a newer server reads [`ErrorCode::Unknown`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code this version does not know.
            Unknown,
        }

        impl ErrorCode {
            /// The code as sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The code a string names ([`ErrorCode::Unknown`] for others).
            pub fn parse(code: &str) -> ErrorCode {
                match code {
                    $($text => ErrorCode::$variant,)*
                    _ => ErrorCode::Unknown,
                }
            }

            /// Every known code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];
        }
    };
}

error_codes! {
    /// Malformed JSON.
    InvalidJson = "invalid_json",
    /// JSON of the wrong shape, or values out of range.
    InvalidRequest = "invalid_request",
    /// A body that could not be read.
    UnreadableBody = "unreadable_body",
    /// A malformed binary experience body.
    InvalidBinary = "invalid_binary",
    /// An id that is not an identifier.
    InvalidIdentifier = "invalid_identifier",
    /// A task spec that does not validate.
    InvalidTask = "invalid_task",
    /// Experience outside the task's spaces.
    InvalidExperience = "invalid_experience",
    /// Bad input to a job's computation.
    InvalidInput = "invalid_input",
    /// No or unknown bearer token.
    Unauthorized = "unauthorized",
    /// The token's role may not do this.
    Forbidden = "forbidden",
    /// The token may not speak for the agent named.
    WrongAgent = "wrong_agent",
    /// No such route.
    NotFound = "not_found",
    /// No such task.
    UnknownTask = "unknown_task",
    /// No such job.
    UnknownJob = "unknown_job",
    /// No such training run.
    UnknownTraining = "unknown_training",
    /// No such base policy.
    UnknownBase = "unknown_base",
    /// No such packet.
    UnknownPacket = "unknown_packet",
    /// The agent has no experience in the task.
    NoExperience = "no_experience",
    /// The task has no base policy yet.
    NoBasePolicy = "no_base_policy",
    /// A task of that name exists with another spec.
    TaskExists = "task_exists",
    /// The job has finished.
    JobFinished = "job_finished",
    /// The training run is not complete.
    TrainingNotComplete = "training_not_complete",
    /// The auditor rejected the policy (`force` deploys it anyway).
    AuditRejected = "audit_rejected",
    /// The base does not fit the task.
    BaseMismatch = "base_mismatch",
    /// The base's weights are missing.
    BaseMissing = "base_missing",
    /// Too little experience for a job.
    InsufficientData = "insufficient_data",
    /// Compilation failed on its input.
    CompileFailed = "compile_failed",
    /// A job's computation failed.
    ComputeFailed = "compute_failed",
    /// Storage failed during a job.
    StorageFailed = "storage_failed",
    /// A restart found the job cut off too often.
    AttemptsExhausted = "attempts_exhausted",
    /// The body is over the limit.
    PayloadTooLarge = "payload_too_large",
    /// A content type the endpoint does not take.
    UnsupportedMediaType = "unsupported_media_type",
    /// No such method on the route.
    MethodNotAllowed = "method_not_allowed",
    /// The request took longer than allowed.
    Timeout = "timeout",
    /// A malformed request outside any handler.
    BadRequest = "bad_request",
    /// Unprocessable outside any handler.
    Unprocessable = "unprocessable",
    /// The job queue is full.
    QueueFull = "queue_full",
    /// The agent sends faster than its rate.
    RateLimited = "rate_limited",
    /// The agent stores as much as its quota allows in the task.
    AgentQuotaExceeded = "agent_quota_exceeded",
    /// Too many requests outside any handler.
    TooManyRequests = "too_many_requests",
    /// Shutting down or not ready.
    Unavailable = "unavailable",
    /// A fault of the server.
    Internal = "internal",
    /// A WebSocket message of an unknown type.
    UnknownMessageType = "unknown_message_type",
    /// A binary WebSocket message.
    BinaryNotSupported = "binary_not_supported",
    /// An error status without a more precise code.
    Error = "error",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> String {
        code.as_str().to_owned()
    }
}

impl ErrorDetail {
    /// The code, typed.
    pub fn kind(&self) -> ErrorCode {
        ErrorCode::parse(&self.code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), c);
            assert!(seen.insert(c.as_str()), "{c} twice");
        }
        assert_eq!(ErrorCode::parse("from_the_future"), ErrorCode::Unknown);
    }
}
