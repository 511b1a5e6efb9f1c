//! Single 12345 work orders: their event history (`/api/work-orders/{id}/events`) and an
//! Open311 GeoReport v2 facade (`/open311/v2/services.json`, `/open311/v2/requests.json`,
//! `/open311/v2/requests/{id}.json`), so existing Open311 clients can read the same orders.
//!
//! Orders are records about residents' requests: only roles that read records see them
//! (`Role::reads_records`), and only those of their scope; `analytics` puts the scope in the
//! query. An order outside the scope answers 404, like one that does not exist. The facade
//! reads only (no `POST /requests`: requests enter through the hotline's own system and
//! `/api/facts/work_orders`); errors keep this server's JSON body rather than GeoReport's
//! error list, so every route fails one way. Field names follow the GeoReport v2
//! specification (wiki.open311.org/GeoReport_v2); times are ISO 8601 with the +08:00 offset.

use crate::error::AppError;
use crate::http::auth::{AuditRows, Caller};
use crate::http::params;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

/// Days a request list covers when no start is given (GeoReport v2's default).
pub const DEFAULT_WINDOW_DAYS: i64 = 90;

fn may_read(caller: &Caller) -> Result<(), AppError> {
    if caller.0.role.reads_records() {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            reason: "role".into(),
            message: format!(
                "{} may not read single work orders (leader, supervisor, department, analyst and admin may)",
                caller.0.role.as_str()
            ),
        })
    }
}

/// The name of a content category (codes in the style of GB/T 39666, as the sample has
/// them); unknown codes are their own name.
fn service_name(code: &str) -> String {
    data_samples::CONTENT_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_owned(), |(_, n)| (*n).to_owned())
}

fn w3(t: NaiveDateTime) -> String {
    format!("{}+08:00", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// A time parameter: RFC 3339 (converted to UTC+8) or a plain date (its midnight).
fn time_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<NaiveDateTime>, AppError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let china = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
        return Ok(Some(t.with_timezone(&china).naive_local()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Some(d.and_hms_opt(0, 0, 0).expect("midnight")));
    }
    Err(AppError::bad(
        name,
        format!("{text:?} is not an ISO 8601 time (2025-03-01T00:00:00+08:00) or date"),
    ))
}

fn request(
    o: &analytics::WorkOrder,
    names: &std::collections::HashMap<String, analytics::RegionInfo>,
) -> Value {
    json!({
        "service_request_id": o.order_id,
        "status": if o.closed_at.is_some() { "closed" } else { "open" },
        "status_notes": Value::Null,
        "service_name": service_name(&o.content_code),
        "service_code": o.content_code,
        "description": format!("{} · {} · {}", o.request_type, service_name(&o.content_code), o.channel),
        "agency_responsible": o.agency,
        "service_notice": Value::Null,
        "requested_datetime": w3(o.created_at),
        "updated_datetime": w3(o.updated_at),
        "expected_datetime": w3(o.due_at),
        "address": names.get(&o.community_code).map(|r| r.name.clone()),
        "address_id": o.grid_id,
        "zipcode": Value::Null,
        "lat": o.lat,
        "long": o.lon,
        "media_url": Value::Null,
    })
}

fn rows(response: impl IntoResponse, n: usize) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(AuditRows(n));
    response
}

/// A work order's life, event by event.
#[utoipa::path(get, path = "/api/work-orders/{id}/events", tag = "records",
    params(("id" = String, Path, description = "the work order")),
    responses(
        (status = 200, description = "the order and its events in order", body = Value),
        (status = 403, description = "a role that does not read single orders", body = crate::error::ErrorBody),
        (status = 404, description = "no such order in the caller's scope", body = crate::error::ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    may_read(&caller)?;
    let engine = state.engine.clone();
    let scope = caller.0.scope.clone();
    let owned = id.clone();
    let found =
        crate::http::blocking(move || Ok(engine.work_order_events(Some(&scope), &owned)?)).await?;
    let (order, events) =
        found.ok_or_else(|| AppError::NotFound(format!("no work order {id:?}")))?;
    let n = events.len();
    Ok(rows(Json(json!({"order": order, "events": events})), n))
}

/// Open311 GeoReport v2: the service list (content categories present in the scope).
#[utoipa::path(get, path = "/open311/v2/services.json", tag = "open311",
    params(("jurisdiction_id" = Option<String>, Query, description = "ignored: one jurisdiction per server")),
    responses(
        (status = 200, description = "services (GeoReport v2 fields)", body = Value),
        (status = 403, description = "a role that does not read single orders", body = crate::error::ErrorBody),
    ))]
pub async fn services(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(&params, &["jurisdiction_id"])?;
    may_read(&caller)?;
    let engine = state.engine.clone();
    let scope = caller.0.scope.clone();
    let found =
        crate::http::blocking(move || Ok(engine.work_order_services(Some(&scope))?)).await?;
    let list: Vec<Value> = found
        .iter()
        .map(|(code, types, _)| {
            json!({
                "service_code": code,
                "service_name": service_name(code),
                "description": format!("12345 {} ({types})", service_name(code)),
                "metadata": false,
                "type": "batch",
                "keywords": types,
                "group": code.get(..2).unwrap_or(""),
            })
        })
        .collect();
    let n = list.len();
    Ok(rows(Json(Value::Array(list)), n))
}

/// Open311 GeoReport v2: requests of the scope, newest first.
#[utoipa::path(get, path = "/open311/v2/requests.json", tag = "open311",
    params(
        ("service_request_id" = Option<String>, Query, description = "comma-separated ids (the other filters are then ignored, as GeoReport v2 says)"),
        ("service_code" = Option<String>, Query, description = "one content category"),
        ("start_date" = Option<String>, Query, description = "requested at or after (ISO 8601); default 90 days before end_date"),
        ("end_date" = Option<String>, Query, description = "requested before (ISO 8601); default now (on the server's clock)"),
        ("status" = Option<String>, Query, description = "open, closed, or both comma-separated"),
        ("jurisdiction_id" = Option<String>, Query, description = "ignored: one jurisdiction per server"),
    ),
    responses(
        (status = 200, description = "requests (GeoReport v2 fields), at most 1000", body = Value),
        (status = 400, description = "a bad parameter", body = crate::error::ErrorBody),
        (status = 403, description = "a role that does not read single orders", body = crate::error::ErrorBody),
    ))]
pub async fn requests(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(
        &params,
        &[
            "service_request_id",
            "service_code",
            "start_date",
            "end_date",
            "status",
            "jurisdiction_id",
        ],
    )?;
    may_read(&caller)?;
    let ids: Vec<String> = params
        .get("service_request_id")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > analytics::MAX_ORDERS {
        return Err(AppError::bad(
            "service_request_id",
            format!("at most {} ids", analytics::MAX_ORDERS),
        ));
    }
    let closed = match params.get("status").map(String::as_str) {
        None => None,
        Some(s) => {
            let mut open = false;
            let mut closed = false;
            for part in s.split(',') {
                match part.trim() {
                    "open" => open = true,
                    "closed" => closed = true,
                    other => {
                        return Err(AppError::bad(
                            "status",
                            format!("{other:?} is not open or closed"),
                        ));
                    }
                }
            }
            (open != closed).then_some(closed)
        }
    };
    let start = time_param(&params, "start_date")?;
    let end = time_param(&params, "end_date")?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(AppError::bad("start_date", "start_date is after end_date"));
    }
    let content_code = params.get("service_code").cloned();
    let engine = state.engine.clone();
    let clock = state.clock;
    let scope = caller.0.scope.clone();
    let list = crate::http::blocking(move || {
        let q = if ids.is_empty() {
            let to = match end {
                Some(t) => t,
                None => clock.now(&engine)? + chrono::Duration::seconds(1),
            };
            analytics::OrderQuery {
                ids,
                content_code,
                from: Some(start.unwrap_or(to - chrono::Duration::days(DEFAULT_WINDOW_DAYS))),
                to: Some(to),
                closed,
                limit: analytics::MAX_ORDERS,
            }
        } else {
            analytics::OrderQuery {
                ids,
                limit: analytics::MAX_ORDERS,
                ..analytics::OrderQuery::default()
            }
        };
        let names = engine.regions();
        let found = engine.work_orders(Some(&scope), &q)?;
        Ok(found
            .iter()
            .map(|o| request(o, &names))
            .collect::<Vec<Value>>())
    })
    .await?;
    let n = list.len();
    Ok(rows(Json(Value::Array(list)), n))
}

/// Open311 GeoReport v2: one request (`/open311/v2/requests/ID.json`), as a list of one.
#[utoipa::path(get, path = "/open311/v2/requests/{file}", tag = "open311",
    params(
        ("file" = String, Path, description = "the request's id followed by .json"),
        ("jurisdiction_id" = Option<String>, Query, description = "ignored: one jurisdiction per server"),
    ),
    responses(
        (status = 200, description = "the request (GeoReport v2 fields), in a list of one", body = Value),
        (status = 403, description = "a role that does not read single orders", body = crate::error::ErrorBody),
        (status = 404, description = "no such request in the caller's scope", body = crate::error::ErrorBody),
    ))]
pub async fn request_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(file): Path<String>,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(&params, &["jurisdiction_id"])?;
    may_read(&caller)?;
    let id = file
        .strip_suffix(".json")
        .ok_or_else(|| AppError::NotFound(format!("{file:?}: requests are read as ID.json")))?
        .to_owned();
    let engine = state.engine.clone();
    let scope = caller.0.scope.clone();
    let owned = id.clone();
    let found = crate::http::blocking(move || {
        let names = engine.regions();
        let q = analytics::OrderQuery {
            ids: vec![owned],
            limit: 1,
            ..analytics::OrderQuery::default()
        };
        Ok(engine
            .work_orders(Some(&scope), &q)?
            .iter()
            .map(|o| request(o, &names))
            .collect::<Vec<Value>>())
    })
    .await?;
    if found.is_empty() {
        return Err(AppError::NotFound(format!("no request {id:?}")));
    }
    Ok(rows(Json(Value::Array(found)), 1))
}
