//! `/api/regions` and `/api/regions/shapes`: the division tree and its boundaries, inside the
//! caller's scope only (what the pages' maps, region pickers and drill-down breadcrumbs use).
//!
//! Both take `within` (a division code in scope, default the scope) and `level` (not above the
//! scope; default the level below `within`). The shapes are GeoJSON, bounded in features and
//! vertices: a larger answer is refused with a message that says to narrow `within`.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::params;
use crate::http::work::blocking;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use indicators::Level;
use serde_json::{Value, json};

/// The most regions one answer lists or draws.
pub const MAX_REGIONS: usize = 5000;
/// The most boundary vertices one shapes answer carries (about 40 MB of GeoJSON).
pub const MAX_VERTICES: usize = 1_000_000;

/// `within` and `level`, decoded and checked against the caller's scope.
fn scoped(
    state: &AppState,
    caller: &Caller,
    params: &std::collections::HashMap<String, String>,
) -> Result<(analytics::Audience, String, Level), AppError> {
    params::only_known(params, &["within", "level"])?;
    let audience = caller.audience(state);
    if let Some(w) = params.get("within") {
        indicators::region_level(w).map_err(|e| AppError::bad("within", e.to_string()))?;
    }
    let within = audience
        .region(params.get("within").map(String::as_str), "within")?
        .unwrap_or_else(|| "32".to_owned());
    let own =
        indicators::region_level(&within).map_err(|e| AppError::bad("within", e.to_string()))?;
    let level = params::level(params, own.child().unwrap_or(own))?;
    audience.level(level)?;
    if level < own {
        return Err(AppError::bad(
            "level",
            format!(
                "{} is above {within} ({}): regions are listed within it",
                level.as_str(),
                own.as_str()
            ),
        ));
    }
    Ok((audience, within, level))
}

/// The chain of regions from the caller's scope down to `within` (for breadcrumbs).
fn path(
    regions: &std::collections::HashMap<String, analytics::RegionInfo>,
    audience: &analytics::Audience,
    within: &str,
) -> Vec<Value> {
    let mut chain = Vec::new();
    let mut at = regions.get(within);
    while let Some(r) = at {
        if !audience.covers(&r.code) {
            break;
        }
        chain.push(json!({ "code": r.code, "name": r.name, "level": r.level }));
        at = r.parent_code.as_deref().and_then(|p| regions.get(p));
    }
    chain.reverse();
    chain
}

/// Coordinates to 1e-6 degrees (about 0.1 m), which is finer than any boundary file here
/// and halves the answer.
fn rounded(mut polygons: Vec<Vec<Vec<[f64; 2]>>>) -> Vec<Vec<Vec<[f64; 2]>>> {
    for v in polygons.iter_mut().flatten().flatten() {
        *v = v.map(|c| (c * 1e6).round() / 1e6);
    }
    polygons
}

/// The regions of a level within a region, with the path from the scope down to it.
#[utoipa::path(get, path = "/api/regions", tag = "regions",
    params(
        ("within" = Option<String>, Query, description = "a division code in scope (default the scope)", example = "3201"),
        ("level" = Option<String>, Query, description = "the level listed (default the one below `within`)", example = "county"),
    ),
    responses(
        (status = 200, description = "`{within, level, path, regions}`: `path` from the scope down to `within`; `regions` with code, name, level, parent_code, lon, lat", body = Value),
        (status = 400, description = "a malformed parameter", body = crate::error::ErrorBody),
        (status = 403, description = "`within` or `level` outside the scope", body = crate::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    let (audience, within, level) = scoped(&state, &caller, &params)?;
    let all = state.engine.regions();
    let mut regions: Vec<&analytics::RegionInfo> = all
        .values()
        .filter(|r| r.level == level.as_str() && r.code.starts_with(&within))
        .collect();
    if regions.len() > MAX_REGIONS {
        return Err(AppError::bad(
            "within",
            format!(
                "{} regions of level {} within {within}, more than {MAX_REGIONS}: ask within a smaller region",
                regions.len(),
                level.as_str()
            ),
        ));
    }
    regions.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(Json(json!({
        "within": within,
        "level": level.as_str(),
        "path": path(&all, &audience, &within),
        "regions": regions,
    })))
}

/// The boundaries of a level's regions within a region, as GeoJSON (WGS84).
#[utoipa::path(get, path = "/api/regions/shapes", tag = "regions",
    params(
        ("within" = Option<String>, Query, description = "a division code in scope (default the scope)", example = "3201"),
        ("level" = Option<String>, Query, description = "the level drawn (default the one below `within`)", example = "county"),
    ),
    responses(
        (status = 200, description = "a GeoJSON FeatureCollection: one MultiPolygon feature per region (`id` and `properties.code` the division code; `name`, `level`, `parent_code`)", body = Value, content_type = "application/geo+json"),
        (status = 400, description = "a malformed parameter, or more regions or vertices than one answer carries", body = crate::error::ErrorBody),
        (status = 403, description = "`within` or `level` outside the scope", body = crate::error::ErrorBody),
    ))]
pub async fn shapes(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<impl IntoResponse, AppError> {
    let (_, within, level) = scoped(&state, &caller, &params)?;
    let engine = state.engine.clone();
    let shapes = blocking(move || Ok(engine.region_shapes(&within, level.as_str())?)).await?;
    if shapes.len() > MAX_REGIONS {
        return Err(AppError::bad(
            "within",
            format!(
                "{} regions to draw, more than {MAX_REGIONS}: ask within a smaller region",
                shapes.len()
            ),
        ));
    }
    let vertices: usize = shapes
        .iter()
        .flat_map(|s| &s.polygons_lon_lat)
        .flatten()
        .map(Vec::len)
        .sum();
    if vertices > MAX_VERTICES {
        return Err(AppError::bad(
            "within",
            format!(
                "{vertices} boundary vertices, more than {MAX_VERTICES}: ask within a smaller region"
            ),
        ));
    }
    let regions = state.engine.regions();
    let features: Vec<Value> = shapes
        .into_iter()
        .map(|s| {
            let parent = regions.get(&s.code).and_then(|r| r.parent_code.clone());
            json!({
                "type": "Feature",
                "id": s.code,
                "properties": { "code": s.code, "name": s.name, "level": level.as_str(), "parent_code": parent },
                "geometry": { "type": "MultiPolygon", "coordinates": rounded(s.polygons_lon_lat) },
            })
        })
        .collect();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/geo+json")],
        Json(json!({ "type": "FeatureCollection", "features": features })),
    ))
}
