//! Query parameters, decoded and typed before any decision is made on them: unknown names
//! and malformed values are 400s that name the parameter.

use crate::error::AppError;
use indicators::{Grain, IndicatorQuery, Level};
use std::collections::HashMap;

/// The most characters any one parameter value may have.
const MAX_VALUE_CHARS: usize = 256;

/// Rejects query parameters the route does not know, naming them, and values too long to be
/// meant.
pub fn only_known(params: &HashMap<String, String>, known: &[&str]) -> Result<(), AppError> {
    if let Some(k) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(AppError::bad(
            k,
            format!("unknown parameter (expected one of: {})", known.join(", ")),
        ));
    }
    if let Some((k, _)) = params
        .iter()
        .find(|(_, v)| v.chars().count() > MAX_VALUE_CHARS)
    {
        return Err(AppError::bad(
            k,
            format!("longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    Ok(())
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

pub fn level(params: &HashMap<String, String>, default: Level) -> Result<Level, AppError> {
    Ok(params
        .get("level")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::level::ParseLevelError| AppError::bad("level", e.to_string()))?
        .unwrap_or(default))
}

pub fn grain(params: &HashMap<String, String>) -> Result<Option<Grain>, AppError> {
    params
        .get("grain")
        .map(|s| s.parse())
        .transpose()
        .map_err(|e: indicators::period::ParseGrainError| AppError::bad("grain", e.to_string()))
}

/// A region code parameter, checked for its shape (scope is the engine's to check).
pub fn region(params: &HashMap<String, String>) -> Result<Option<String>, AppError> {
    params
        .get("region")
        .map(|r| {
            indicators::region_level(r)
                .map(|_| r.clone())
                .map_err(|e| AppError::bad("region", e.to_string()))
        })
        .transpose()
}

/// Parses level, grain, from, to and region into a query; unknown or malformed parameters are
/// 400s that name the parameter.
pub fn indicator_query(params: &HashMap<String, String>) -> Result<IndicatorQuery, AppError> {
    only_known(params, &["level", "grain", "from", "to", "region"])?;
    Ok(IndicatorQuery {
        level: level(params, Level::City)?,
        grain: grain(params)?.unwrap_or(Grain::Month),
        from: params.get("from").cloned(),
        to: params.get("to").cloned(),
        region: region(params)?,
    })
}

/// The query string as a map of decoded names to decoded values; a name given twice is a 400
/// (which of two values a check and a handler read must never differ).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Params, AppError> {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            if map.insert(k.to_string(), v.into_owned()).is_some() {
                return Err(AppError::bad(&k, "given more than once"));
            }
        }
        Ok(Params(map))
    }
}

/// The WebSocket upgrade of a request, or a `400` naming `upgrade` when it is not one.
pub fn upgrade(
    ws: Result<
        axum::extract::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<axum::extract::WebSocketUpgrade, AppError> {
    ws.map_err(|e| {
        AppError::bad(
            "upgrade",
            format!("not a WebSocket request: {}", e.body_text()),
        )
    })
}
