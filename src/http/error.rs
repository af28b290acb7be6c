//! The one HTTP-facing error type, rendered as RFC 9457 `application/problem+json`, and the
//! one place where every other module's error type is mapped to it (the `From` impls below):
//! auth, admin, conversations, agent and store errors know nothing of HTTP.
//!
//! `ApiError::into_response` does not serialise anything itself: it attaches a [`Problem`] to the
//! response extensions. The `problem` middleware (see `http::problem`) then fills in the
//! request id and the instance path, logs 5xx responses with their cause chain, and writes the
//! body. Keeping the rendering in one place also lets that middleware turn every other error
//! response (axum's 404/405, the body limit, a caught panic) into the same shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::AdminError;
use crate::agent::TurnError;
use crate::agent::model::ModelError;
use crate::auth::AuthError;
use crate::conversations::ConversationError;
pub use crate::domain::FieldError;
use crate::domain::turn::FailureCode;
use crate::store::StoreError;
use crate::telemetry::cause_chain;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details, plus agentd's stable `code` and the `request_id`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:agentd:problem:validation-error",
    "title": "Validation failed",
    "status": 422,
    "detail": "The request has 1 invalid field.",
    "instance": "/api/v1/admin/orgs",
    "code": "VALIDATION_ERROR",
    "request_id": "0193a4f2-6c1e-7b3a-9d55-2f1f0c8e4a11",
    "errors": [{"field": "id", "message": "must match ^[A-Za-z0-9_-]{1,100}$"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:agentd:problem:` + the code in kebab case.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request path this problem answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Stable, UPPER_SNAKE machine-readable code; match on this, not on `title` or `detail`.
    pub code: String,
    /// The request id (also in the `X-Request-ID` response header); quote it in bug reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Field errors, for `VALIDATION_ERROR`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// On 409 `VERSION_CONFLICT`: the version the resource is at now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!(
                "urn:agentd:problem:{}",
                code.to_ascii_lowercase().replace('_', "-")
            ),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: None,
            code: code.to_owned(),
            request_id: None,
            errors: Vec::new(),
            current_version: None,
        }
    }

    /// The problem for an error response that was produced without one (axum's own 404/405,
    /// tower-http's 413/408, a caught panic): keyed by status alone.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, title, detail) = match status {
            StatusCode::NOT_FOUND => ("NOT_FOUND", "Not found", "No such resource or route."),
            StatusCode::METHOD_NOT_ALLOWED => (
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                "This route does not accept that method; see the Allow header.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "PAYLOAD_TOO_LARGE",
                "Payload too large",
                "The request body exceeds the 64 KiB limit.",
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
                "REQUEST_TIMEOUT",
                "Request timed out",
                "The server did not finish the request in time.",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "UNSUPPORTED_MEDIA_TYPE",
                "Unsupported media type",
                "Send the body as application/json.",
            ),
            s if s.is_server_error() => (
                "INTERNAL_ERROR",
                "Internal server error",
                "The server failed to handle the request; the request id identifies it in the logs.",
            ),
            _ => (
                "BAD_REQUEST",
                "Bad request",
                "The request could not be handled.",
            ),
        };
        Self::new(status, code, title, detail)
    }
}

/// The cause of a 5xx, kept beside the response for the logging middleware; never serialised.
#[derive(Debug, Clone)]
pub struct ProblemCause(pub String);

/// Every failure a handler or extractor can report to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("token expired")]
    TokenExpired,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("org mismatch")]
    OrgMismatch,
    #[error("organisation is inactive")]
    OrgInactive,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// An update named a version the resource is no longer at (optimistic locking).
    #[error("version conflict: {detail}")]
    VersionConflict {
        detail: String,
        current_version: i64,
    },
    #[error("turn in progress")]
    TurnInProgress,
    #[error("idempotency key reused with another request")]
    IdempotencyMismatch,
    #[error("model provider failed")]
    LlmUpstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("agent timed out")]
    AgentTimeout,
    #[error("the run was cancelled")]
    RunCancelled,
    #[error("the run has already finished: {0}")]
    RunFinished(&'static str),
    #[error("rate limit exceeded")]
    RateLimited { retry_after_secs: u64 },
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// The problem this error renders as (without request id and instance).
    pub fn problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::Validation(errors) => {
                let n = errors.len();
                let mut p = Problem::new(
                    S::UNPROCESSABLE_ENTITY,
                    "VALIDATION_ERROR",
                    "Validation failed",
                    if n == 1 {
                        format!("{}: {}", errors[0].field, errors[0].message)
                    } else {
                        format!("The request has {n} invalid fields.")
                    },
                );
                p.errors.clone_from(errors);
                p
            }
            Self::InvalidJson(detail) => Problem::new(
                S::BAD_REQUEST,
                "INVALID_JSON",
                "Malformed JSON",
                detail.clone(),
            ),
            Self::UnsupportedMediaType => Problem::for_status(S::UNSUPPORTED_MEDIA_TYPE),
            Self::Unauthorized(detail) => {
                Problem::new(S::UNAUTHORIZED, "UNAUTHORIZED", "Unauthorized", *detail)
            }
            Self::TokenExpired => Problem::new(
                S::UNAUTHORIZED,
                "TOKEN_EXPIRED",
                "Token expired",
                "The bearer token has expired; mint a new one with POST /api/v1/auth/token.",
            ),
            Self::Forbidden(detail) => {
                Problem::new(S::FORBIDDEN, "FORBIDDEN", "Forbidden", detail.clone())
            }
            Self::OrgMismatch => Problem::new(
                S::FORBIDDEN,
                "ORG_MISMATCH",
                "Organisation mismatch",
                "org_id does not match the organisation of your credentials.",
            ),
            Self::OrgInactive => Problem::new(
                S::FORBIDDEN,
                "ORG_INACTIVE",
                "Organisation inactive",
                "This organisation has been deactivated; contact the operator.",
            ),
            Self::NotFound(detail) => {
                Problem::new(S::NOT_FOUND, "NOT_FOUND", "Not found", detail.clone())
            }
            Self::Conflict(detail) => {
                Problem::new(S::CONFLICT, "CONFLICT", "Conflict", detail.clone())
            }
            Self::VersionConflict {
                detail,
                current_version,
            } => {
                let mut p = Problem::new(
                    S::CONFLICT,
                    "VERSION_CONFLICT",
                    "Version conflict",
                    detail.clone(),
                );
                p.current_version = Some(*current_version);
                p
            }
            Self::RunCancelled => Problem::new(
                S::CONFLICT,
                "RUN_CANCELLED",
                "Run cancelled",
                "The run was cancelled before it finished; nothing of it was stored.",
            ),
            Self::RunFinished(status) => Problem::new(
                S::CONFLICT,
                "RUN_FINISHED",
                "Run already finished",
                format!("The run has already finished ({status}); there is nothing to cancel."),
            ),
            Self::TurnInProgress => Problem::new(
                S::CONFLICT,
                "TURN_IN_PROGRESS",
                "Turn in progress",
                "Another message of this conversation is still being answered; retry when it is done.",
            ),
            Self::IdempotencyMismatch => Problem::new(
                S::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_MISMATCH",
                "Idempotency key reused",
                "This Idempotency-Key was used with a different request; use a new key.",
            ),
            Self::LlmUpstream(_) => Problem::new(
                S::BAD_GATEWAY,
                "LLM_UPSTREAM_ERROR",
                "Model provider error",
                "The language model provider failed; the reply was not saved. Retry the message.",
            ),
            Self::AgentTimeout => Problem::new(
                S::GATEWAY_TIMEOUT,
                "AGENT_TIMEOUT",
                "Agent timed out",
                "The agent did not finish in time; the reply was not saved. Retry the message.",
            ),
            Self::RateLimited { retry_after_secs } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "RATE_LIMIT_EXCEEDED",
                "Rate limit exceeded",
                format!("Too many requests; retry in {retry_after_secs} s."),
            ),
            Self::PayloadTooLarge => Problem::for_status(S::PAYLOAD_TOO_LARGE),
            Self::Unavailable(detail) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Service unavailable",
                detail.clone(),
            ),
            Self::Internal(_) => Problem::for_status(S::INTERNAL_SERVER_ERROR),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = status.into_response();
        match &self {
            Self::Unauthorized(_) | Self::TokenExpired => {
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="agentd", ApiKey realm="agentd""#),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Internal(err) | Self::LlmUpstream(err) => {
                res.extensions_mut()
                    .insert(ProblemCause(cause_chain(err.as_ref())));
            }
            _ => {}
        }
        res.extensions_mut().insert(problem);
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::Unavailable(_) => {
                Self::Unavailable("The database is unreachable; retry shortly.".to_owned())
            }
            other => Self::internal(other),
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(err: TurnError) -> Self {
        match err {
            TurnError::Busy => Self::TurnInProgress,
            TurnError::NotFound => Self::NotFound("No such conversation.".to_owned()),
            TurnError::NotOwner(_) => Self::not_owner(),
            TurnError::IdempotencyMismatch => Self::IdempotencyMismatch,
            TurnError::Timeout(_) | TurnError::Model(ModelError::Timeout) => Self::AgentTimeout,
            TurnError::Model(e) => Self::LlmUpstream(Box::new(e)),
            TurnError::Store(e) => e.into(),
            TurnError::Cancelled => Self::RunCancelled,
            e @ TurnError::Crashed(_) => Self::internal(e),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(err: ConversationError) -> Self {
        match err {
            ConversationError::NotFound => Self::NotFound("No such conversation.".to_owned()),
            ConversationError::MessageNotFound => Self::NotFound("No such message.".to_owned()),
            ConversationError::NotOwner(_) => Self::not_owner(),
            ConversationError::Busy => Self::TurnInProgress,
            ConversationError::Store(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthorized(detail) => Self::Unauthorized(detail),
            AuthError::TokenExpired => Self::TokenExpired,
            AuthError::Forbidden(detail) => Self::Forbidden(detail),
            AuthError::OrgInactive => Self::OrgInactive,
            AuthError::OrgNotFound(id) => Self::NotFound(format!("no organisation {id}")),
            AuthError::Store(e) => e.into(),
            AuthError::Unavailable => {
                Self::Unavailable("The database is unreachable; retry shortly.".to_owned())
            }
            e @ AuthError::Internal(_) => Self::internal(e),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Validation(errors) => Self::Validation(errors),
            AdminError::NotFound(id) => Self::NotFound(format!("no organisation {id}")),
            AdminError::Conflict(what) => Self::Conflict(what),
            AdminError::Store(e) => e.into(),
            e @ AdminError::Hashing(_) => Self::internal(e),
        }
    }
}

impl ApiError {
    fn not_owner() -> Self {
        Self::Forbidden("This conversation belongs to another user.".to_owned())
    }

    /// The problem a failed run reports in its stream's `error` event: the same as the plain
    /// request would have answered.
    pub fn from_failure(code: FailureCode) -> Self {
        match code {
            FailureCode::TurnInProgress => Self::TurnInProgress,
            FailureCode::NotFound => Self::NotFound("No such conversation.".to_owned()),
            FailureCode::Forbidden => Self::not_owner(),
            FailureCode::IdempotencyMismatch => Self::IdempotencyMismatch,
            FailureCode::AgentTimeout => Self::AgentTimeout,
            FailureCode::LlmUpstreamError => Self::LlmUpstream("the model provider failed".into()),
            FailureCode::InternalError => Self::Internal("the turn failed".into()),
            FailureCode::RunCancelled => Self::RunCancelled,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
