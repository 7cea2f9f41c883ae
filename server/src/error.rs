//! Errors answered to clients: JSON `{"error": {"code", "message"}}` with a stable code.
//!
//! Internal details (storage and compute errors) are logged, not sent: the client gets
//! `internal` and a request-independent message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use plasma_protocol::{ErrorBody, ErrorCode, ErrorDetail};
use thiserror::Error;

use crate::service::ServiceError;
use crate::storage::StoreError;

/// An error a handler answers with.
#[derive(Debug, Error)]
pub enum ApiError {
    /// 400: the request is malformed (`code` says how).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// 401: no or unknown bearer token.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// 403: the token's role may not do this.
    #[error("this token's role may not {0}")]
    Forbidden(&'static str),
    /// 403: the token may not speak for the agent the request names.
    #[error("this token may not speak for agent {0:?}")]
    WrongAgent(String),
    /// 404: something named by the request does not exist.
    #[error("{message}")]
    NotFound {
        /// Stable code (`unknown_task`, `unknown_job`, …).
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// 413: the body is larger than the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: a body of a type this endpoint does not take.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: well-formed JSON that does not fit the schema or fails validation.
    #[error("{message}")]
    Unprocessable {
        /// Stable code.
        code: ErrorCode,
        /// Details.
        message: String,
    },
    /// 429: the job queue is full.
    #[error("the job queue is full ({0} jobs queued or running); retry later")]
    QueueFull(usize),
    /// 429: a per-agent limit (`code` says which); `retry_after` seconds when waiting
    /// helps.
    #[error("{message}")]
    TooManyRequests {
        /// Stable code (`rate_limited`, `agent_quota_exceeded`).
        code: ErrorCode,
        /// Details.
        message: String,
        /// Seconds until a retry can succeed (the `Retry-After` header).
        retry_after: Option<u64>,
    },
    /// 503: shutting down or not ready.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a fault of the server; the detail is logged only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with a code.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A 409 with a code.
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }

    /// A 422 with a code.
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::WrongAgent(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueueFull(_) | ApiError::TooManyRequests { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::TooManyRequests { code, .. } => *code,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::WrongAgent(_) => ErrorCode::WrongAgent,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::QueueFull(_) => ErrorCode::QueueFull,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) => "internal server error (logged)".to_owned(),
            other => other.to_string(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().as_str().to_owned(),
                message,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(format!("storage: {e}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("blocking task: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code().as_str(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code().as_str(), error = %self, "request refused");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::Unauthorized = self {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        let retry_after = match &self {
            ApiError::QueueFull(_) => Some(5),
            ApiError::TooManyRequests { retry_after, .. } => *retry_after,
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

/// The code of a status for error responses that did not come from a handler (routing,
/// body limits, timeouts, panics).
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::Timeout,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Unprocessable,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::Error,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound { code, message } => ApiError::NotFound { code, message },
            ServiceError::Conflict { code, message } => ApiError::Conflict { code, message },
            ServiceError::Invalid { code, message } => ApiError::Unprocessable { code, message },
            ServiceError::QueueFull(n) => ApiError::QueueFull(n),
            ServiceError::Unavailable(m) => ApiError::Unavailable(m),
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(m) => ApiError::Internal(m),
        }
    }
}
