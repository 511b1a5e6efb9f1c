//! The one place where errors become HTTP responses.
//!
//! Client mistakes are 4xx with a JSON body naming the parameter (or, for analyst SQL, the
//! rule); no or an unknown token is 401, outside the role or scope 403, too many requests 429
//! (each with a `reason`); a query cancelled at its time limit is 504; a missing renderer or
//! empty database is 503; anything else is a generic 500 whose detail is logged here, once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{parameter}: {message}")]
    BadParameter { parameter: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// Analyst SQL that broke one of the rules of `analytics::analyst`.
    #[error("{rule}: {message}")]
    SqlRule { rule: &'static str, message: String },
    /// A query cancelled at its time limit.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// No token, or one this server does not know.
    #[error("{message}")]
    Unauthorized { reason: String, message: String },
    /// Outside the caller's role or region scope.
    #[error("{message}")]
    Forbidden { reason: String, message: String },
    #[error("{0}")]
    RateLimited(String),
    /// An answer larger than one request may receive; the message says how to narrow it.
    #[error("{parameter}: {message}")]
    TooLarge { parameter: String, message: String },
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn bad(parameter: &str, message: impl Into<String>) -> AppError {
        AppError::BadParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }
}

impl From<analytics::AnalyticsError> for AppError {
    fn from(e: analytics::AnalyticsError) -> AppError {
        use analytics::AnalyticsError as A;
        match e {
            A::Query(q) => AppError::bad(q.parameter(), q.to_string()),
            A::Empty { .. } => AppError::Unavailable(e.to_string()),
            A::UnknownIndicator(id) => AppError::NotFound(format!("unknown indicator {id:?}")),
            A::BadBreakdown(message) => AppError::bad("by", message),
            A::OutOfScope { message, .. } => AppError::Forbidden {
                reason: "scope".into(),
                message,
            },
            A::TooLarge { parameter, message } => AppError::TooLarge {
                parameter: parameter.into(),
                message,
            },
            A::Sql {
                rule: "timeout",
                message,
            } => AppError::Timeout(format!("timeout: {message}")),
            A::Sql { rule, message } => AppError::SqlRule { rule, message },
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<twin::TwinError> for AppError {
    fn from(e: twin::TwinError) -> AppError {
        use twin::TwinError as T;
        match e {
            T::BadSize { .. } => AppError::bad("width", e.to_string()),
            T::NoDevice { .. } | T::RendererGone(_) => AppError::Unavailable(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> AppError {
        AppError::Internal(format!("a blocking task failed: {e}"))
    }
}

/// The JSON body of every refusal and error.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
    /// Why a request was refused: `missing_token`, `invalid_token`, `role`, `scope`,
    /// `rate_limited` or `too_large`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The parameter (or body field) at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// The analyst-SQL rule broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The detail, without the parameter's or rule's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let error = self.to_string();
        let (status, body) = match self {
            AppError::BadParameter { parameter, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error,
                    parameter: Some(parameter),
                    message: Some(message),
                    ..ErrorBody::default()
                },
            ),
            AppError::TooLarge { parameter, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error,
                    reason: Some("too_large".into()),
                    parameter: Some(parameter),
                    message: Some(message),
                    ..ErrorBody::default()
                },
            ),
            AppError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                ErrorBody {
                    error,
                    ..ErrorBody::default()
                },
            ),
            AppError::SqlRule { rule, message } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error,
                    rule: Some(rule.into()),
                    message: Some(message),
                    ..ErrorBody::default()
                },
            ),
            AppError::Timeout(_) => (
                StatusCode::GATEWAY_TIMEOUT,
                ErrorBody {
                    error,
                    rule: Some("timeout".into()),
                    ..ErrorBody::default()
                },
            ),
            AppError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorBody {
                    error,
                    ..ErrorBody::default()
                },
            ),
            AppError::Unauthorized { reason, .. } => (
                StatusCode::UNAUTHORIZED,
                ErrorBody {
                    error,
                    reason: Some(reason),
                    ..ErrorBody::default()
                },
            ),
            AppError::Forbidden { reason, .. } => (
                StatusCode::FORBIDDEN,
                ErrorBody {
                    error,
                    reason: Some(reason),
                    ..ErrorBody::default()
                },
            ),
            AppError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody {
                    error,
                    reason: Some("rate_limited".into()),
                    ..ErrorBody::default()
                },
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody {
                        error: "internal error; see the server log".into(),
                        ..ErrorBody::default()
                    },
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
