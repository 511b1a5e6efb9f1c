//! The one place where errors become HTTP responses.
//!
//! Client mistakes are 4xx with a JSON body naming the parameter (or, for analyst SQL, the
//! rule); no or an unknown token is 401, outside the role or scope 403, too many requests 429
//! (each with a `reason`); a load with bad rows is 422 with its report, a body over its
//! limit 413, a full disk 507; a task event its life does not allow 403, 409 or 422 by the
//! rule it breaks (named in `rule`); a query cancelled at its time limit is 504; a missing
//! renderer or empty database is 503; anything else is a generic 500 whose detail is logged here, once.

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
    /// A batch with bad rows: nothing was loaded; the report names them.
    #[error("{}", analytics::AnalyticsError::Rejected(.0.clone()))]
    Rejected(Box<analytics::LoadReport>),
    /// A request body over its limit.
    /// An event a task's life does not allow: the rule it breaks decides the status (the
    /// actor's role, scope or organisation 403; the task's state or time order 409; what
    /// the event carries 422).
    #[error("{0}")]
    Refused(workflow::Refusal),
    /// The request repeats something that exists (e.g. a second open task for one alert).
    #[error("{message}")]
    Conflict { reason: String, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The database cannot grow (a full disk): nothing was written.
    #[error("{0}")]
    Storage(String),
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
            A::Rejected(report) => AppError::Rejected(report),
            A::Refused(refusal) => AppError::Refused(refusal),
            A::NoSuchTask(id) => AppError::NotFound(format!("no task {id:?}")),
            A::Ingest { message, path } => {
                AppError::bad("body", format!("{message}, in {}", path.display()))
            }
            A::Db { ref source, .. } if out_of_space(&source.to_string()) => {
                AppError::Storage(format!("{e}; nothing was written"))
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// Whether a DuckDB error says the disk (or the database's space) is full.
fn out_of_space(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.contains("no space left") || lower.contains("disk full") || lower.contains("out of space")
}

impl From<twin::TwinError> for AppError {
    fn from(e: twin::TwinError) -> AppError {
        use twin::TwinError as T;
        match e {
            T::BadSize { .. } => AppError::bad("width", e.to_string()),
            T::NoDevice { .. } | T::RendererGone(_) | T::CaptureFailed { .. } => {
                AppError::Unavailable(e.to_string())
            }
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
    /// A refused load's report: rows read and rejected, each rejected row and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
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
            AppError::Rejected(report) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody {
                    error,
                    reason: Some("rejected".into()),
                    report: serde_json::to_value(&report).ok(),
                    ..ErrorBody::default()
                },
            ),
            AppError::Refused(refusal) => {
                use workflow::Rule as R;
                let status = match refusal.rule {
                    R::Role | R::Owner | R::Scope => StatusCode::FORBIDDEN,
                    R::First | R::State | R::Order | R::Extension | R::Card => StatusCode::CONFLICT,
                    R::Note | R::Deadline | R::Organisation | R::Evidence => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                };
                (
                    status,
                    ErrorBody {
                        error,
                        reason: Some("refused".into()),
                        rule: Some(refusal.rule.as_str().into()),
                        message: Some(refusal.message),
                        ..ErrorBody::default()
                    },
                )
            }
            AppError::Conflict { reason, .. } => (
                StatusCode::CONFLICT,
                ErrorBody {
                    error,
                    reason: Some(reason),
                    ..ErrorBody::default()
                },
            ),
            AppError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody {
                    error,
                    reason: Some("too_large".into()),
                    parameter: Some("body".into()),
                    ..ErrorBody::default()
                },
            ),
            AppError::Storage(detail) => {
                tracing::error!(%detail, "the database cannot grow");
                (
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorBody {
                        error,
                        reason: Some("storage".into()),
                        ..ErrorBody::default()
                    },
                )
            }
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
