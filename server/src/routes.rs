//! The router: API routes, the page and the view stream.

use crate::auth::{AuditRows, Principal};
use crate::error::AppError;
use crate::state::{AppState, Rendering};
use crate::{page, views, ws};
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use indicators::{Grain, IndicatorQuery, Level};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/wall", get(page::wall))
        .route("/analyst", get(page::analyst))
        .route("/planner", get(page::planner))
        .route("/pages/common.js", get(page::common_js))
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/api/indicators", get(indicators_list))
        .route("/api/indicators/{id}", get(indicator_show))
        .route("/api/indicators/{id}/values", get(values))
        .route("/api/indicators/{id}/series", get(series))
        .route("/api/indicators/{id}/breakdown", get(breakdown))
        .route("/api/alerts", get(alerts))
        .route("/api/trends", get(trends))
        .route("/api/sql", post(sql))
        .route("/api/scenes", get(scenes_list))
        .route("/api/scenes/{id}/snapshot.png", get(snapshot))
        .route("/ws/view", get(ws::view))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .with_state(state)
}

/// How many blocking jobs (DuckDB queries, renders) run at once; the rest wait their turn.
/// Without a bound, hundreds of concurrent requests each hold a DuckDB query's memory.
const BLOCKING_AT_ONCE: usize = 4;
static BLOCKING_PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(BLOCKING_AT_ONCE);

/// Runs blocking work (DuckDB, rendering) off the async workers, at most
/// [`BLOCKING_AT_ONCE`] at a time.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let _permit = BLOCKING_PERMITS
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the blocking-work semaphore closed".into()))?;
    tokio::task::spawn_blocking(f).await?
}

/// Answers that change only with the data (alerts, trends), kept per data snapshot: the
/// first request for a key computes, concurrent ones wait for it, later ones read it.
#[derive(Default)]
pub struct Answers {
    cells: std::sync::Mutex<HashMap<String, AnswerCell>>,
}

type AnswerCell =
    std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<dyn std::any::Any + Send + Sync>>>;

/// Keys kept before the cache starts over.
const MAX_ANSWERS: usize = 512;

impl Answers {
    pub async fn get_or_compute<T: Clone + Send + Sync + 'static>(
        &self,
        engine: &std::sync::Arc<analytics::Engine>,
        key: String,
        compute: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let e = engine.clone();
        let snapshot = blocking(move || Ok(e.snapshot().ok().map(|s| s.ingest_id))).await?;
        let key = format!("{snapshot:?} {key}");
        let cell = {
            let mut cells = self.cells.lock().expect("answers lock");
            if cells.len() >= MAX_ANSWERS && !cells.contains_key(&key) {
                cells.clear();
            }
            cells.entry(key).or_default().clone()
        };
        let value = cell
            .get_or_try_init(|| async move {
                let v = blocking(compute).await?;
                Ok::<_, AppError>(
                    std::sync::Arc::new(v) as std::sync::Arc<dyn std::any::Any + Send + Sync>
                )
            })
            .await?;
        value
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| AppError::Internal("a cached answer of another type".into()))
    }
}

/// Rejects query parameters the route does not know, naming them.
pub fn only_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), AppError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(AppError::bad(
            k,
            format!("unknown parameter (expected one of: {})", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Parses an optional numeric parameter within a range.
pub fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    params: &HashMap<String, String>,
    name: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, AppError> {
    let Some(text) = params.get(name) else {
        return Ok(default);
    };
    let v: T = text
        .parse()
        .map_err(|_| AppError::bad(name, format!("{text:?} is not a number")))?;
    if !range.contains(&v) {
        return Err(AppError::bad(
            name,
            format!("{v} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(v)
}

async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&state.catalogue.version))
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let engine = state.engine.clone();
    let snapshot = blocking(move || Ok(engine.snapshot().ok()))
        .await
        .ok()
        .flatten();
    // Asking for the renderer restarts a stopped one; meanwhile the server is degraded.
    let (rendering, renderer_up) = match &*state.rendering {
        Rendering::Available(slot) => {
            let up = slot.get();
            (
                json!({ "available": up.is_ok(), "adapter": slot.adapter(),
                        "restarts": slot.restarts(), "reason": up.as_ref().err() }),
                up.is_ok(),
            )
        }
        Rendering::Unavailable(why) => (json!({ "available": false, "reason": why }), true),
    };
    let status = match (snapshot.is_some(), renderer_up) {
        (false, _) => "no_data",
        (true, false) => "degraded",
        (true, true) => "ok",
    };
    Json(json!({
        "status": status,
        "rendering_available": matches!(&*state.rendering, Rendering::Available(_)) && renderer_up,
        "rendering": rendering,
        "snapshot": snapshot,
        "catalogue_version": state.catalogue.version,
        "shared_sessions": state.sessions.running(),
    }))
}

async fn indicators_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "version": state.catalogue.version, "indicators": state.catalogue.indicators }))
}

/// The catalogue's indicator `id` (a copy, for blocking work), or a 404.
fn indicator(state: &AppState, id: &str) -> Result<indicators::Indicator, AppError> {
    state
        .catalogue
        .get(id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("unknown indicator {id:?}")))
}

/// An indicator's values for a query, computed off the async workers.
async fn indicator_values(
    state: &AppState,
    indicator: &indicators::Indicator,
    query: &IndicatorQuery,
) -> Result<Vec<analytics::IndicatorValue>, AppError> {
    let (engine, indicator, query) = (state.engine.clone(), indicator.clone(), query.clone());
    blocking(move || Ok(engine.values(&indicator, &query)?)).await
}

async fn indicator_show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let indicator = indicator(&state, &id)?;
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "indicator": indicator }),
    ))
}

fn level_param(params: &HashMap<String, String>, default: Level) -> Result<Level, AppError> {
    Ok(params
        .get("level")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::level::ParseLevelError| AppError::bad("level", e.to_string()))?
        .unwrap_or(default))
}

fn grain_param(params: &HashMap<String, String>) -> Result<Option<Grain>, AppError> {
    params
        .get("grain")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::period::ParseGrainError| AppError::bad("grain", e.to_string()))
}

/// Parses level, grain, from, to and region into a query; unknown or malformed parameters are
/// 400s that name the parameter.
pub fn parse_query(params: &HashMap<String, String>) -> Result<IndicatorQuery, AppError> {
    only_known(params, &["level", "grain", "from", "to", "region"])?;
    let level = level_param(params, Level::City)?;
    let grain = grain_param(params)?.unwrap_or(Grain::Month);
    Ok(IndicatorQuery {
        level,
        grain,
        from: params.get("from").cloned(),
        to: params.get("to").cloned(),
        region: params.get("region").cloned(),
    })
}

/// Withholds rows resting on too few records from roles that may not see small cells.
fn suppress_small_cells(
    state: &AppState,
    who: Option<&Principal>,
    rows: &mut [analytics::IndicatorValue],
) {
    if who.is_some_and(|p| !p.role.sees_small_cells()) {
        for r in rows.iter_mut() {
            if r.support() < state.auth.small_cell_min {
                r.suppress();
            }
        }
    }
}

/// Adds the row count for the audit log.
fn with_rows(mut response: Response, rows: usize) -> Response {
    response.extensions_mut().insert(AuditRows(rows));
    response
}

async fn values(
    State(state): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Query(mut params): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let format = params.remove("format").unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "sdmx-csv") {
        return Err(AppError::bad(
            "format",
            format!("{format:?} is not one of json, csv, sdmx-csv"),
        ));
    }
    let query = parse_query(&params)?;
    let indicator = indicator(&state, &id)?;
    let mut rows = indicator_values(&state, &indicator, &query).await?;
    suppress_small_cells(&state, who.as_deref(), &mut rows);
    let count = rows.len();
    let file = |ext: &str| {
        format!(
            "attachment; filename=\"{id}-{}-{}.{ext}\"",
            query.level, query.grain
        )
    };
    Ok(with_rows(
        match format.as_str() {
            "csv" => (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, file("csv")),
                ],
                crate::export::values_csv(&rows),
            )
                .into_response(),
            "sdmx-csv" => (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.sdmx.data+csv; version=1.0.0; charset=utf-8".to_owned(),
                    ),
                    (header::CONTENT_DISPOSITION, file("sdmx.csv")),
                ],
                crate::export::values_sdmx_csv(&indicator, query.grain, &rows),
            )
                .into_response(),
            _ => Json(json!({
                "catalogue_version": state.catalogue.version,
                "level": query.level,
                "grain": query.grain,
                "from": query.from,
                "to": query.to,
                "region": query.region,
                "rows": rows,
            }))
            .into_response(),
        },
        count,
    ))
}

/// One region's values over time: the level is the region's own.
async fn series(
    State(state): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    only_known(&params, &["region", "grain", "from", "to"])?;
    let region = params.get("region").cloned().unwrap_or_else(|| "32".into());
    let level =
        indicators::region_level(&region).map_err(|e| AppError::bad("region", e.to_string()))?;
    let grain = grain_param(&params)?.unwrap_or(Grain::Month);
    let query = IndicatorQuery {
        level,
        grain,
        from: params.get("from").cloned(),
        to: params.get("to").cloned(),
        region: Some(region.clone()),
    };
    let indicator = indicator(&state, &id)?;
    let mut rows = indicator_values(&state, &indicator, &query).await?;
    suppress_small_cells(&state, who.as_deref(), &mut rows);
    let points: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "period": r.period, "value": r.value, "numerator": r.numerator, "denominator": r.denominator, "status": r.status, "suppressed": r.suppressed }))
        .collect();
    let count = points.len();
    Ok(with_rows(
        Json(json!({
            "indicator": id,
            "region": region,
            "region_name": rows.first().map(|r| r.region_name.clone()),
            "level": level,
            "grain": grain,
            "unit": indicator.unit,
            "target": indicator.target,
            "points": points,
        }))
        .into_response(),
        count,
    ))
}

/// The indicator in one period split by a text column, largest first (e.g. the top 12345
/// content codes).
async fn breakdown(
    State(state): State<AppState>,
    Path(id): Path<String>,
    who: Option<Extension<Principal>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    only_known(&params, &["by", "grain", "period", "region", "top"])?;
    let by = params
        .get("by")
        .cloned()
        .ok_or_else(|| AppError::bad("by", "missing: a text column, e.g. by=content_code"))?;
    let grain = grain_param(&params)?.unwrap_or(Grain::Year);
    let period = params
        .get("period")
        .cloned()
        .ok_or_else(|| AppError::bad("period", "missing, e.g. period=2025"))?;
    let top = number(&params, "top", 10usize, 1..=1000)?;
    let region = params.get("region").cloned();
    let indicator = indicator(&state, &id)?;
    let (engine, by2, period2) = (state.engine.clone(), by.clone(), period.clone());
    let shares = blocking(move || {
        Ok(engine.breakdown(&indicator, &by2, grain, &period2, region.as_deref(), top)?)
    })
    .await?;
    // Categories resting on few records are withheld below analyst, as values are.
    let hide = who.as_deref().is_some_and(|p| !p.role.sees_small_cells());
    let shares: Vec<Value> = shares
        .into_iter()
        .map(|s| {
            if hide && s.denominator.unwrap_or(s.numerator) < state.auth.small_cell_min {
                json!({ "category": s.category, "numerator": null, "denominator": null,
                        "value": null, "share": null, "suppressed": true })
            } else {
                json!(s)
            }
        })
        .collect();
    Ok(Json(
        json!({ "indicator": id, "by": by, "period": period, "shares": shares }),
    ))
}

async fn alerts(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    only_known(
        &params,
        &[
            "level",
            "grain",
            "period",
            "region",
            "indicator",
            "min_support",
            "severity",
        ],
    )?;
    let defaults = analytics::AlertQuery::default();
    let q = analytics::AlertQuery {
        level: level_param(&params, defaults.level)?,
        grain: grain_param(&params)?,
        period: params.get("period").cloned(),
        region: params.get("region").cloned(),
        indicator: params.get("indicator").cloned(),
        min_support: number(&params, "min_support", defaults.min_support, 0.0..=1e9)?,
        anomaly_score: defaults.anomaly_score,
    };
    let only = match params.get("severity").map(String::as_str) {
        None => None,
        Some("critical") => Some(indicators::Status::Critical),
        Some("warning") => Some(indicators::Status::Warning),
        Some(other) => {
            return Err(AppError::bad(
                "severity",
                format!("{other:?} is not one of critical, warning"),
            ));
        }
    };
    let engine = state.engine.clone();
    let key = format!("alerts {q:?}");
    let mut found: Vec<analytics::Alert> = state
        .answers
        .get_or_compute(&state.engine, key, move || Ok(engine.alerts(&q)?))
        .await?;
    if let Some(severity) = only {
        found.retain(|a| a.severity == severity);
    }
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "alerts": found }),
    ))
}

async fn trends(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    only_known(&params, &["region", "as_of", "indicator"])?;
    let as_of = params
        .get("as_of")
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| AppError::bad("as_of", format!("{d:?} is not a date like 2025-06-30")))
        })
        .transpose()?;
    let q = analytics::TrendQuery {
        region: params.get("region").cloned().unwrap_or_else(|| "32".into()),
        as_of,
        indicator: params.get("indicator").cloned(),
    };
    let engine = state.engine.clone();
    let key = format!("trends {q:?}");
    let found: Vec<analytics::Trend> = state
        .answers
        .get_or_compute(&state.engine, key, move || Ok(engine.trends(&q)?))
        .await?;
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "trends": found }),
    ))
}

/// `POST /api/sql` with `{"sql": "SELECT ...", "max_rows": 1000}`: one read-only query.
async fn sql(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, AppError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad("body", format!("not JSON: {e}")))?;
    let text = request
        .get("sql")
        .and_then(Value::as_str)
        .ok_or_else(|| AppError::bad("sql", "missing: send {\"sql\": \"SELECT ...\"}"))?
        .to_owned();
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
        timeout: state.sql_timeout,
    };
    let engine = state.engine.clone();
    let result = blocking(move || Ok(engine.run_sql(&text, &limits)?)).await?;
    Ok(Json(json!(result)))
}

async fn scenes_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "scenes": *state.scenes }))
}

async fn snapshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    only_known(&params, &["width", "height"])?;
    let width = number(&params, "width", 960u32, 16..=4096)?;
    let height = number(&params, "height", 540u32, 16..=4096)?;
    let scene = state
        .scene(&id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("unknown scene {id:?}")))?;
    let renderer = state.renderer()?;
    let png = blocking(move || {
        let prepared = views::prepared(&state, &scene)?.scene;
        let image = renderer.render(prepared, scene.camera, width, height)?;
        views::encode_png(&image)
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}
