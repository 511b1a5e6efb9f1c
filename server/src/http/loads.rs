//! Writing through the server, the one writer of its file: `POST /api/loads?table=TABLE`
//! (a department's file as the body) and `POST /api/facts/{table}` (a feed's batch of events,
//! such as 12345 work orders and their status changes).
//!
//! Only `admin` and `loader` may write, and a loader only rows of its scope (the engine
//! rejects the others, and any row that would replace one outside it). The body is CSV
//! (`text/csv`) or NDJSON (`application/x-ndjson`), read whole (at most [`MAX_LOAD_BYTES`]
//! or [`MAX_FACTS_BYTES`], at most [`LOADS_AT_ONCE`] bodies held at a time) before anything
//! is written: a client that goes away mid-upload loads nothing. Each batch is one
//! transaction, checked like a file; rows equal to what is there are not written again, so a
//! retried batch changes nothing. A commit is published to `events::Live`, which the pages
//! and the streamed views follow. Mappings are operator configuration (they hold SQL): a
//! request names one the server was started with, never sends one.

use crate::error::AppError;
use crate::http::auth::{AuditDetail, Caller};
use crate::http::events::DataChange;
use crate::http::params;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The largest department file accepted as a body.
pub const MAX_LOAD_BYTES: usize = 256 * 1024 * 1024;
/// The largest batch of events accepted as a body.
pub const MAX_FACTS_BYTES: usize = 32 * 1024 * 1024;
/// Bodies held in memory at once; further writers wait their turn.
pub const LOADS_AT_ONCE: usize = 2;
static LOAD_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(LOADS_AT_ONCE);

fn format_of(headers: &HeaderMap) -> Result<analytics::UploadFormat, AppError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Ok(analytics::UploadFormat::Csv),
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => {
            Ok(analytics::UploadFormat::Ndjson)
        }
        "application/vnd.apache.parquet" => Err(AppError::bad(
            "content-type",
            "Parquet is not read by the server (it reads no files): `databrain load --server` \
             sends a Parquet file's rows as CSV",
        )),
        _ => Err(AppError::bad(
            "content-type",
            format!("{given:?} is not text/csv or application/x-ndjson (one JSON object per line)"),
        )),
    }
}

/// What a request asks to write.
struct Asked {
    table: String,
    mapping: Option<String>,
    /// The body's limit, bytes.
    limit: usize,
    /// What the report calls the batch.
    label: String,
}

/// Checks, reads and loads one body; answers the load report.
async fn write(
    state: AppState,
    caller: Caller,
    asked: Asked,
    headers: HeaderMap,
    body: Body,
) -> Result<(analytics::LoadReport, Response), AppError> {
    let Asked {
        table,
        mapping,
        limit,
        label,
    } = asked;
    if !caller.0.role.writes() {
        return Err(AppError::Forbidden {
            reason: "role".into(),
            message: format!(
                "{} may not write data (admin and loader may)",
                caller.0.role.as_str()
            ),
        });
    }
    if !indicators::facts::file_tables().any(|t| t.name == table) {
        let names: Vec<&str> = indicators::facts::file_tables().map(|t| t.name).collect();
        return Err(AppError::bad(
            "table",
            format!("{table:?} is not one of: {}", names.join(", ")),
        ));
    }
    let mapping = match mapping {
        None => None,
        Some(name) => Some(state.mappings.get(&name).cloned().ok_or_else(|| {
            let names: Vec<&String> = state.mappings.keys().collect();
            AppError::bad(
                "mapping",
                format!("no mapping {name:?} on this server (it has: {names:?})"),
            )
        })?),
    };
    let format = format_of(&headers)?;
    let _permit = LOAD_PERMITS
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the load semaphore closed".into()))?;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            AppError::PayloadTooLarge(format!(
                "the body is larger than {} MiB; nothing was loaded (send it in parts)",
                limit / (1024 * 1024)
            ))
        } else {
            AppError::bad(
                "body",
                format!("the body could not be read whole ({e}); nothing was loaded"),
            )
        }
    })?;
    let audience = caller.audience(&state);
    let engine = state.engine.clone();
    let report = crate::http::blocking(move || {
        let upload = analytics::Upload {
            label,
            format,
            bytes: &bytes,
        };
        Ok(engine.load_upload(&table, &upload, mapping.as_ref(), &audience)?)
    })
    .await?;
    if let Some(ingest_id) = report.ingest_id {
        state.live.publish(DataChange {
            ingest_id,
            table: report.table.clone(),
            rows_changed: report.rows_changed,
            at: chrono::Local::now().to_rfc3339(),
        });
    }
    let response = Json(json!(report)).into_response();
    Ok((report, response))
}

/// The audit line's detail of a load: its counts.
fn audited(result: Result<(analytics::LoadReport, Response), AppError>) -> Response {
    let (counts, mut response) = match result {
        Ok((report, response)) => (Some(counts(&report)), response),
        Err(AppError::Rejected(report)) => (
            Some(counts(&report)),
            AppError::Rejected(report).into_response(),
        ),
        Err(e) => (None, e.into_response()),
    };
    if let Some(c) = counts {
        response.extensions_mut().insert(AuditDetail(c));
    }
    response
}

fn counts(r: &analytics::LoadReport) -> serde_json::Value {
    json!({
        "table": r.table, "rows_read": r.rows_read, "rows_loaded": r.rows_loaded,
        "rows_changed": r.rows_changed, "rows_rejected": r.rows_rejected, "ingest_id": r.ingest_id,
    })
}

/// Loads a department's file into a fact table (admin, or a loader of the rows' region).
#[utoipa::path(post, path = "/api/loads", tag = "live",
    params(
        ("table" = String, Query, description = "the fact table written"),
        ("mapping" = Option<String>, Query, description = "a mapping the server was started with (--mappings DIR), for a foreign layout"),
    ),
    request_body(description = "CSV or NDJSON (one JSON object per line)", content(
        (String = "text/csv"),
        (Vec<serde_json::Map<String, serde_json::Value>> = "application/x-ndjson"),
    )),
    responses(
        (status = 200, description = "the load report (rows read, loaded, changed; the new snapshot, or none when nothing changed)", body = serde_json::Value),
        (status = 400, description = "a bad parameter, content type or body (malformed CSV names its row)", body = crate::error::ErrorBody),
        (status = 403, description = "not a writer", body = crate::error::ErrorBody),
        (status = 413, description = "the body is over its limit", body = crate::error::ErrorBody),
        (status = 422, description = "rows rejected (each named); nothing loaded", body = crate::error::ErrorBody),
    ))]
pub async fn load(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        params::only_known(&params, &["table", "mapping"])?;
        let table = params
            .get("table")
            .cloned()
            .ok_or_else(|| AppError::bad("table", "required"))?;
        let asked = Asked {
            label: format!("POST /api/loads?table={table}"),
            mapping: params.get("mapping").cloned(),
            table,
            limit: MAX_LOAD_BYTES,
        };
        write(state, caller, asked, headers, body).await
    };
    audited(run.await)
}

/// Appends a batch of events (new rows, or rows replacing those with the same key: status
/// changes) to a fact table; a batch sent again changes nothing.
#[utoipa::path(post, path = "/api/facts/{table}", tag = "live",
    params(("table" = String, Path, description = "the fact table written", example = "work_orders")),
    request_body(description = "NDJSON (one JSON object per line) or CSV", content(
        (Vec<serde_json::Map<String, serde_json::Value>> = "application/x-ndjson"),
        (String = "text/csv"),
    )),
    responses(
        (status = 200, description = "the batch's report", body = serde_json::Value),
        (status = 400, description = "a bad content type or body", body = crate::error::ErrorBody),
        (status = 403, description = "not a writer", body = crate::error::ErrorBody),
        (status = 413, description = "the batch is over its limit", body = crate::error::ErrorBody),
        (status = 422, description = "rows rejected; nothing loaded", body = crate::error::ErrorBody),
    ))]
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(table): Path<String>,
    params::Params(params): params::Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let run = async {
        params::only_known(&params, &[])?;
        let asked = Asked {
            label: format!("POST /api/facts/{table}"),
            mapping: None,
            table,
            limit: MAX_FACTS_BYTES,
        };
        write(state, caller, asked, headers, body).await
    };
    audited(run.await)
}
