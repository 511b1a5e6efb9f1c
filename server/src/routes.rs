//! The router: API routes, the page and the view stream.

use crate::error::AppError;
use crate::state::{AppState, Rendering};
use crate::{page, views, ws};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use indicators::{Grain, IndicatorQuery, Level};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/api/health", get(health))
        .route("/api/indicators", get(indicators_list))
        .route("/api/indicators/{id}/values", get(values))
        .route("/api/scenes", get(scenes_list))
        .route("/api/scenes/{id}/snapshot.png", get(snapshot))
        .route("/ws/view", get(ws::view))
        .with_state(state)
}

/// Runs blocking work (DuckDB, rendering) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await?
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

async fn health(State(state): State<AppState>) -> Json<Value> {
    let engine = state.engine.clone();
    let snapshot = blocking(move || Ok(engine.snapshot().ok()))
        .await
        .ok()
        .flatten();
    let rendering = match &*state.rendering {
        Rendering::Available(r) => json!({ "available": true, "adapter": r.adapter() }),
        Rendering::Unavailable(why) => json!({ "available": false, "reason": why }),
    };
    let status = if snapshot.is_some() { "ok" } else { "no_data" };
    Json(json!({
        "status": status,
        "rendering_available": matches!(&*state.rendering, Rendering::Available(_)),
        "rendering": rendering,
        "snapshot": snapshot,
        "catalogue_version": state.catalogue.version,
    }))
}

async fn indicators_list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "version": state.catalogue.version, "indicators": state.catalogue.indicators }))
}

/// Parses level, grain, from, to and region into a query; unknown or malformed parameters are
/// 400s that name the parameter.
pub fn parse_query(params: &HashMap<String, String>) -> Result<IndicatorQuery, AppError> {
    only_known(params, &["level", "grain", "from", "to", "region"])?;
    let level: Level = params
        .get("level")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::level::ParseLevelError| AppError::bad("level", e.to_string()))?
        .unwrap_or(Level::City);
    let grain: Grain = params
        .get("grain")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::period::ParseGrainError| AppError::bad("grain", e.to_string()))?
        .unwrap_or(Grain::Month);
    Ok(IndicatorQuery {
        level,
        grain,
        from: params.get("from").cloned(),
        to: params.get("to").cloned(),
        region: params.get("region").cloned(),
    })
}

async fn values(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, AppError> {
    let query = parse_query(&params)?;
    if state.catalogue.get(&id).is_none() {
        return Err(AppError::NotFound(format!("unknown indicator {id:?}")));
    }
    let (engine, catalogue, q) = (state.engine.clone(), state.catalogue.clone(), query.clone());
    let rows = blocking(move || {
        let indicator = catalogue.get(&id).expect("checked above");
        Ok(engine.values(indicator, &q)?)
    })
    .await?;
    Ok(Json(json!({
        "catalogue_version": state.catalogue.version,
        "level": query.level,
        "grain": query.grain,
        "from": query.from,
        "to": query.to,
        "region": query.region,
        "rows": rows,
    })))
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
