//! The one place where errors become HTTP responses.
//!
//! Client mistakes are 4xx with a JSON body naming the parameter (or, for analyst SQL, the
//! rule); no or an unknown token is 401, outside the role or scope 403, too many requests 429
//! (each with a `reason`); a query cancelled at its time limit is 504; a missing renderer or
//! empty database is 503; anything else is a generic 500 whose detail is logged here, once.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            AppError::BadParameter { parameter, message } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": self.to_string(), "parameter": parameter, "message": message }),
            ),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, json!({ "error": m })),
            AppError::SqlRule { rule, message } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": self.to_string(), "rule": rule, "message": message }),
            ),
            AppError::TooLarge { parameter, message } => (
                StatusCode::BAD_REQUEST,
                json!({ "error": self.to_string(), "parameter": parameter, "message": message,
                        "reason": "too_large" }),
            ),
            AppError::Timeout(m) => (
                StatusCode::GATEWAY_TIMEOUT,
                json!({ "error": m, "rule": "timeout" }),
            ),
            AppError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "error": m })),
            AppError::Unauthorized { reason, message } => (
                StatusCode::UNAUTHORIZED,
                json!({ "error": message, "reason": reason }),
            ),
            AppError::Forbidden { reason, message } => (
                StatusCode::FORBIDDEN,
                json!({ "error": message, "reason": reason }),
            ),
            AppError::RateLimited(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": m, "reason": "rate_limited" }),
            ),
            AppError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error; see the server log" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
