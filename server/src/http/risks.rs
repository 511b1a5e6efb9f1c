//! `/api/alerts` and `/api/trends`: risks and progress toward the 2025 targets, made by
//! `analytics` for the caller's audience (scope, floor, withheld cells) and kept per data
//! snapshot and audience.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// Threshold breaches and anomalies, from the values the caller sees.
#[utoipa::path(get, path = "/api/alerts", tag = "risks",
    params(
        ("level" = Option<String>, Query, description = "the level checked (default county)"),
        ("grain" = Option<String>, Query, description = "one grain for both kinds of alert"),
        ("period" = Option<String>, Query, description = "the period checked (default the latest complete one)"),
        ("region" = Option<String>, Query, description = "a division code in scope"),
        ("indicator" = Option<String>, Query, description = "only this indicator"),
        ("min_support" = Option<f64>, Query, description = "records a value must rest on (at least 30 below analyst)"),
        ("severity" = Option<String>, Query, description = "critical or warning"),
    ),
    responses((status = 200, description = "alerts, worst first", body = Value)))]
pub async fn alerts(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    params::only_known(
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
        level: params::level(&params, defaults.level)?,
        grain: params::grain(&params)?,
        period: params.get("period").cloned(),
        region: params::region(&params)?,
        indicator: params.get("indicator").cloned(),
        min_support: params::number(&params, "min_support", defaults.min_support, 0.0..=1e9)?,
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
    let audience = caller.audience(&state);
    let engine = state.engine.clone();
    let key = format!("alerts {} {q:?}", audience.key());
    let mut found: Vec<analytics::Alert> = state
        .answers
        .get_or_compute(
            &state.engine,
            key,
            move || Ok(engine.alerts(&audience, &q)?),
        )
        .await?;
    if let Some(severity) = only {
        found.retain(|a| a.severity == severity);
    }
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "alerts": found }),
    ))
}

/// Progress toward the 2025 targets for a region in scope.
#[utoipa::path(get, path = "/api/trends", tag = "risks",
    params(
        ("region" = Option<String>, Query, description = "a division code in scope (default: the scope)"),
        ("as_of" = Option<String>, Query, description = "pretend the data ends on this day, YYYY-MM-DD"),
        ("indicator" = Option<String>, Query, description = "only this indicator"),
    ),
    responses((status = 200, description = "one trend per indicator with a target", body = Value)))]
pub async fn trends(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    params::only_known(&params, &["region", "as_of", "indicator"])?;
    let as_of = params
        .get("as_of")
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| AppError::bad("as_of", format!("{d:?} is not a date like 2025-06-30")))
        })
        .transpose()?;
    let q = analytics::TrendQuery {
        region: params::region(&params)?.unwrap_or_else(|| caller.0.scope.clone()),
        as_of,
        indicator: params.get("indicator").cloned(),
    };
    let audience = caller.audience(&state);
    let engine = state.engine.clone();
    let key = format!("trends {} {q:?}", audience.key());
    let found: Vec<analytics::Trend> = state
        .answers
        .get_or_compute(
            &state.engine,
            key,
            move || Ok(engine.trends(&audience, &q)?),
        )
        .await?;
    Ok(Json(
        json!({ "catalogue_version": state.catalogue.version, "trends": found }),
    ))
}
