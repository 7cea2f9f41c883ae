//! What can go wrong in the client, typed so that callers can react (retry, re-download,
//! fall back to the cached packet).

use std::path::PathBuf;

use plasma_packets::{PacketError, RuntimeError};
use plasma_protocol::ErrorCode;
use thiserror::Error;

/// Result of client operations.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Every error of the client library.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server answered with an error body (stable `code`, human `message`;
    /// [`ClientError::code`] reads the code typed).
    #[error("server answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code, e.g. `unknown_task`, `queue_full`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// No connection could be made (refused, unreachable, DNS): the server did not see
    /// the request, so any call may be retried, or sent to another server.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The server's base URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request did not complete after the connection was made (reset, a broken
    /// WebSocket): the server may have acted on it.
    #[error("transport ({what}): {source}")]
    Transport {
        /// What was being done (`POST /train`, `WebSocket`, …).
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// Waited longer than allowed.
    #[error("timed out after {secs:.0} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// Seconds waited.
        secs: f64,
    },
    /// A job ended without a result.
    #[error("job {id} ended {status}: {message}")]
    JobFailed {
        /// The job.
        id: String,
        /// Its final status (`failed`, `cancelled`, `interrupted`).
        status: String,
        /// Its error code, if any.
        code: Option<String>,
        /// Why.
        message: String,
    },
    /// A packet failed to decode or verify (digest, signature, limits).
    #[error("packet refused: {0}")]
    Packet(#[from] PacketError),
    /// The runtime refused a packet (wrong kind, wrong base, shapes).
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
    /// A download or file is larger than allowed.
    #[error("{what} exceeds {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// A cache file could not be read or written.
    #[error("packet cache {path}: {source}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A cached file does not hold what its name promises (digest mismatch, bad JSON).
    #[error("packet cache {path}: {message}")]
    CacheCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No base policy is deployed yet: nothing to act with.
    #[error("no policy deployed yet")]
    NoPolicy,
    /// A learning cycle is already running.
    #[error("a learning cycle is already running")]
    Busy,
    /// Invalid configuration or argument.
    #[error("invalid {0}")]
    Invalid(String),
}

impl ClientError {
    /// The server's error code, typed (`None` for errors that are not its answers).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(ErrorCode::parse(code)),
            _ => None,
        }
    }

    /// Whether retrying the same call may succeed: transport failures, timeouts, 429
    /// (except a full per-agent quota, `agent_quota_exceeded`), 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Transport { .. }
            | ClientError::Timeout { .. } => true,
            ClientError::Api { status, code, .. } => {
                (*status == 429 && ErrorCode::parse(code) != ErrorCode::AgentQuotaExceeded)
                    || *status >= 500
            }
            _ => false,
        }
    }

    /// A transport failure of `what`, keeping its source (HTTP and WebSocket only).
    #[cfg(feature = "net")]
    pub(crate) fn transport(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ClientError::Transport {
            what: what.into(),
            source: Box::new(source),
        }
    }

    pub(crate) fn cache(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClientError::Cache {
            path: path.into(),
            source,
        }
    }
}
