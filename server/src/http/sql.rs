//! `POST /api/sql`: one read-only query for analysts and admins with the whole province in
//! scope (SQL cannot be limited to a region). The rules are `analytics::analyst`'s; here: the
//! role and scope, a bounded body, at most [`SQL_AT_ONCE`] queries at a time on slots of
//! their own (a long query never holds the indicator routes' slots), and one query at a time
//! per token.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;

/// `{"sql": "SELECT ...", "max_rows": 1000}` (read field by field, so that each mistake names
/// its field).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the body in the OpenAPI document")]
pub struct SqlRequest {
    /// One query: SELECT, WITH, FROM, VALUES or TABLE.
    sql: String,
    /// At most this many rows, 1..=10000 (default 1000).
    #[schema(minimum = 1, maximum = 10000)]
    max_rows: Option<u32>,
}

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest answer, in bytes of JSON values.
pub const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;
/// Analyst queries running at once, over all tokens.
pub const SQL_AT_ONCE: usize = 2;
static SQL_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SQL_AT_ONCE);
/// Tokens (by holder) with a query running.
static RUNNING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Marks a holder's query as running until dropped.
struct Running(String);

impl Running {
    fn start(name: &str) -> Option<Running> {
        let mut running = RUNNING.lock().expect("running lock");
        running
            .get_or_insert_with(HashSet::new)
            .insert(name.to_owned())
            .then(|| Running(name.to_owned()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(set) = RUNNING.lock().expect("running lock").as_mut() {
            set.remove(&self.0);
        }
    }
}

/// One read-only SQL query (analysts and admins with the province in scope).
#[utoipa::path(post, path = "/api/sql", tag = "sql",
    request_body(content = SqlRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "columns and rows", body = analytics::SqlResult),
        (status = 413, description = "a body over 64 KiB"),
        (status = 504, description = "cancelled at the time limit", body = crate::error::ErrorBody),
    ))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<Value>, AppError> {
    let who = &caller.0;
    if !who.role.runs_sql() {
        return Err(AppError::Forbidden {
            reason: "role".into(),
            message: format!(
                "raw SQL is for analysts and admins, not {}",
                who.role.as_str()
            ),
        });
    }
    if who.scope != "32" {
        return Err(AppError::Forbidden {
            reason: "scope".into(),
            message: format!(
                "raw SQL cannot be limited to a region, so it needs the whole province in scope, not {}",
                who.scope
            ),
        });
    }
    // `{"sql": "SELECT ...", "max_rows": 1000}`, every field named when wrong.
    let request: serde_json::Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad(
            "body",
            format!("not a JSON object {{\"sql\": \"SELECT ...\"}}: {e}"),
        )
    })?;
    let text = request
        .get("sql")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::bad("sql", "missing: send {\"sql\": \"SELECT ...\"}"))?
        .to_owned();
    if let Some(k) = request
        .keys()
        .find(|k| !["sql", "max_rows"].contains(&k.as_str()))
    {
        return Err(AppError::bad(k, "unknown field (expected sql, max_rows)"));
    }
    let max_rows = match request.get("max_rows") {
        None => 1000,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| AppError::bad("max_rows", "must be a whole number in 1..=10000"))?
            as usize,
    };
    let limits = analytics::SqlLimits {
        max_rows,
        max_bytes: MAX_RESULT_BYTES,
        timeout: state.sql_timeout,
    };
    let running = Running::start(&who.name).ok_or_else(|| {
        AppError::RateLimited(format!(
            "{} already has a query running: one at a time per token",
            who.name
        ))
    })?;
    let _permit = SQL_PERMITS
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the SQL semaphore closed".into()))?;
    let engine = state.engine.clone();
    let result = tokio::task::spawn_blocking(move || engine.run_sql(&text, &limits)).await?;
    drop(running);
    Ok(Json(json!(result?)))
}
