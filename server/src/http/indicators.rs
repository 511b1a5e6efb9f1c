//! `/api/indicators…`: the catalogue, one indicator's values (JSON, CSV, SDMX-CSV), one
//! region's series and breakdowns. Every number comes from `analytics` made for the caller's
//! audience; these handlers only decode parameters and shape the answer.

use crate::error::AppError;
use crate::http::auth::{AuditRows, Caller};
use crate::http::params;
use crate::http::work::blocking;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use indicators::{Grain, IndicatorQuery};
use serde_json::{Value, json};

/// The most cells one values or series answer may hold; larger questions are refused with a
/// 400 that says how to narrow them.
pub const MAX_CELLS: u64 = 50_000;

/// The indicator catalogue.
#[utoipa::path(get, path = "/api/indicators", tag = "indicators",
    responses((status = 200, description = "the catalogue: version and indicators", body = Value)))]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
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

/// One indicator's definition.
#[utoipa::path(get, path = "/api/indicators/{id}", tag = "indicators",
    params(("id" = String, Path, description = "an indicator id, e.g. hotline_on_time_rate", example = "hotline_on_time_rate")),
    responses((status = 200, description = "the definition", body = Value)))]
pub async fn show(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let indicator = indicator(&state, &id)?;
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "indicator": indicator }),
    ))
}

/// The caller's values of an indicator for a query, refused before computing when the
/// answer would be larger than [`MAX_CELLS`].
async fn values_for(
    state: &AppState,
    caller: &Caller,
    indicator: &indicators::Indicator,
    query: &IndicatorQuery,
) -> Result<Vec<analytics::IndicatorValue>, AppError> {
    let audience = caller.audience(state);
    let (engine, indicator, query) = (state.engine.clone(), indicator.clone(), query.clone());
    blocking(move || {
        let scoped = audience.scope_query(&query)?;
        let cells = engine.estimate_cells(&indicator, &scoped)?;
        if cells > MAX_CELLS {
            return Err(AppError::TooLarge {
                parameter: "level".into(),
                message: format!(
                    "this would be up to {cells} rows, more than {MAX_CELLS}: narrow it with region=, a coarser level or grain, or from= and to="
                ),
            });
        }
        Ok(engine.values(&audience, &indicator, &scoped)?)
    })
    .await
}

/// `GET /api/indicators/{id}/values` in JSON.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ValuesAnswer {
    pub catalogue_version: String,
    pub level: String,
    pub grain: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The region asked (the caller's scope by default).
    pub region: String,
    pub rows: Vec<analytics::IndicatorValue>,
}

/// Adds the row count for the audit log.
fn with_rows(mut response: Response, rows: usize) -> Response {
    response.extensions_mut().insert(AuditRows(rows));
    response
}

/// Values per region and period, made for the caller: in scope, small cells withheld below
/// analyst (primary and complementary), comparisons and ranks among what the caller sees.
#[utoipa::path(get, path = "/api/indicators/{id}/values", tag = "indicators",
    params(
        ("id" = String, Path, description = "an indicator id", example = "hotline_on_time_rate"),
        ("level" = Option<String>, Query, description = "province, city, county, township, community or grid (default city)"),
        ("grain" = Option<String>, Query, description = "day, week, month, quarter or year (default month)"),
        ("from" = Option<String>, Query, description = "first period, inclusive: 2024, 2024-Q3, 2024-07, 2024-W27, 2024-07-15"),
        ("to" = Option<String>, Query, description = "last period, inclusive"),
        ("region" = Option<String>, Query, description = "a division code in the caller's scope (default: the scope)"),
        ("format" = Option<String>, Query, description = "json (default), csv, sdmx-csv or parquet"),
    ),
    responses((status = 200, description = "the rows, as JSON, CSV, SDMX-CSV or Parquet (format=)", content(
        (ValuesAnswer = "application/json"),
        (String = "text/csv"),
        (String = "application/vnd.sdmx.data+csv"),
        (Vec<u8> = "application/vnd.apache.parquet"),
    ))))]
pub async fn values(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(mut params): params::Params,
) -> Result<Response, AppError> {
    let format = params.remove("format").unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "sdmx-csv" | "parquet") {
        return Err(AppError::bad(
            "format",
            format!("{format:?} is not one of json, csv, sdmx-csv, parquet"),
        ));
    }
    let query = params::indicator_query(&params)?;
    let indicator = indicator(&state, &id)?;
    let rows = values_for(&state, &caller, &indicator, &query).await?;
    let count = rows.len();
    let file = |ext: &str| {
        format!(
            "attachment; filename=\"{id}-{}-{}.{ext}\"",
            query.level, query.grain
        )
    };
    if format == "parquet" {
        // DuckDB writes Parquet to a file only: a private temporary one, read back and removed.
        let engine = state.engine.clone();
        let bytes = blocking(move || {
            let dir = tempfile::tempdir()
                .map_err(|e| AppError::Internal(format!("no temporary directory: {e}")))?;
            let path = dir.path().join("values.parquet");
            engine.write_parquet(&rows, &path)?;
            std::fs::read(&path)
                .map_err(|e| AppError::Internal(format!("cannot read back the Parquet file: {e}")))
        })
        .await?;
        return Ok(with_rows(
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/vnd.apache.parquet".to_owned(),
                    ),
                    (header::CONTENT_DISPOSITION, file("parquet")),
                ],
                bytes,
            )
                .into_response(),
            count,
        ));
    }
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
            _ => Json(ValuesAnswer {
                catalogue_version: state.catalogue.version.clone(),
                level: query.level.as_str().to_owned(),
                grain: query.grain.as_str().to_owned(),
                from: query.from.clone(),
                to: query.to.clone(),
                region: query
                    .region
                    .clone()
                    .unwrap_or_else(|| caller.0.scope.clone()),
                rows,
            })
            .into_response(),
        },
        count,
    ))
}

/// One region's values over time: the level is the region's own.
#[utoipa::path(get, path = "/api/indicators/{id}/series", tag = "indicators",
    params(
        ("id" = String, Path, description = "an indicator id", example = "hotline_on_time_rate"),
        ("region" = Option<String>, Query, description = "a division code or grid id in scope (default: the scope)"),
        ("grain" = Option<String>, Query, description = "day, week, month, quarter or year (default month)"),
        ("from" = Option<String>, Query, description = "first period, inclusive"),
        ("to" = Option<String>, Query, description = "last period, inclusive"),
    ),
    responses((status = 200, description = "points over time, with unit and target", body = Value)))]
pub async fn series(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(&params, &["region", "grain", "from", "to"])?;
    let region = params::region(&params)?.unwrap_or_else(|| caller.0.scope.clone());
    let level =
        indicators::region_level(&region).map_err(|e| AppError::bad("region", e.to_string()))?;
    let grain = params::grain(&params)?.unwrap_or(Grain::Month);
    let query = IndicatorQuery {
        level,
        grain,
        from: params.get("from").cloned(),
        to: params.get("to").cloned(),
        region: Some(region.clone()),
    };
    let indicator = indicator(&state, &id)?;
    let rows = values_for(&state, &caller, &indicator, &query).await?;
    let points: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "period": r.period, "value": r.value, "numerator": r.numerator, "denominator": r.denominator, "status": r.status, "support": r.support, "partial": r.partial, "suppressed": r.suppressed }))
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

/// The indicator in one period split by a dimension, largest first (e.g. the top 12345
/// content codes).
#[utoipa::path(get, path = "/api/indicators/{id}/breakdown", tag = "indicators",
    params(
        ("id" = String, Path, description = "an indicator id", example = "hotline_on_time_rate"),
        ("by" = String, Query, description = "a dimension of the fact table, e.g. content_code", example = "content_code"),
        ("period" = String, Query, description = "the period, e.g. 2025", example = "2025"),
        ("grain" = Option<String>, Query, description = "the period's grain (default year)"),
        ("region" = Option<String>, Query, description = "a division code in scope"),
        ("top" = Option<u32>, Query, description = "how many categories, 1..=1000 (default 10)"),
    ),
    responses((status = 200, description = "shares, largest first", body = Value)))]
pub async fn breakdown(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(&params, &["by", "grain", "period", "region", "top"])?;
    let by = params
        .get("by")
        .cloned()
        .ok_or_else(|| AppError::bad("by", "missing: a dimension, e.g. by=content_code"))?;
    let grain = params::grain(&params)?.unwrap_or(Grain::Year);
    let period = params
        .get("period")
        .cloned()
        .ok_or_else(|| AppError::bad("period", "missing, e.g. period=2025"))?;
    let top = params::number(&params, "top", 10usize, 1..=1000)?;
    let region = params::region(&params)?;
    let indicator = indicator(&state, &id)?;
    let audience = caller.audience(&state);
    let (engine, by2, period2) = (state.engine.clone(), by.clone(), period.clone());
    let shares = blocking(move || {
        Ok(engine.breakdown(
            &audience,
            &indicator,
            &by2,
            grain,
            &period2,
            region.as_deref(),
            top,
        )?)
    })
    .await?;
    let count = shares.len();
    Ok(with_rows(
        Json(json!({ "indicator": id, "by": by, "period": period, "shares": shares }))
            .into_response(),
        count,
    ))
}
