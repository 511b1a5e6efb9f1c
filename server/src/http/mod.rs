//! HTTP: the router and one module per route family.
//!
//! [`app`] builds two routers and merges them:
//! - **public**: the pages' HTML and script (they hold no data: their scripts fetch it with the
//!   page's token), `/api/health` and `/api/openapi.json`;
//! - **private**: everything else, behind [`auth::guard`] (token, rate limits, audit line).
//!   Its handlers take the typed [`auth::Caller`] and hand `analytics` the caller's audience,
//!   which applies scope and suppression where the numbers are made.
//!
//! A route that is in neither is 404. Modules depend one way: route families use `params`,
//! `auth` and the crate's `error`, `state` and `views`; nothing here is used by them.

pub mod auth;
pub mod indicators;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod risks;
pub mod scenes;
pub mod serve;
pub mod sql;
pub mod stream;
pub mod work;

pub use work::{Answers, blocking};

use crate::state::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// The whole router over `state`.
pub fn app(state: AppState) -> Router {
    let public = Router::new()
        .route("/", get(start_page))
        .route("/wall", get(pages::wall))
        .route("/analyst", get(pages::analyst))
        .route("/planner", get(pages::planner))
        .route("/pages/common.js", get(pages::common_js))
        .route("/api/health", get(scenes::health))
        .route("/api/openapi.json", get(openapi::serve));
    public.merge(private(state.clone())).with_state(state)
}

/// The routes that need a token, behind the guard.
fn private(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/api/indicators", get(indicators::list))
        .route("/api/indicators/{id}", get(indicators::show))
        .route("/api/indicators/{id}/values", get(indicators::values))
        .route("/api/indicators/{id}/series", get(indicators::series))
        .route("/api/indicators/{id}/breakdown", get(indicators::breakdown))
        .route("/api/alerts", get(risks::alerts))
        .route("/api/trends", get(risks::trends))
        .route(
            "/api/sql",
            post(sql::run).layer(axum::extract::DefaultBodyLimit::max(sql::MAX_BODY_BYTES)),
        )
        .route("/api/scenes", get(scenes::list))
        .route("/api/scenes/{id}/snapshot.png", get(scenes::snapshot))
        .route("/ws/view", get(stream::view))
        .layer(axum::middleware::from_fn_with_state(state, auth::guard))
}

/// `/`: without credentials the public welcome page; with them the private start page,
/// through the guard like any other private route.
async fn start_page(State(state): State<AppState>, request: Request) -> Response {
    let has_credentials = request
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
        || form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .any(|(k, _)| k == "token");
    if !has_credentials {
        return pages::welcome().into_response();
    }
    let start = Router::new()
        .route("/", get(pages::index))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state);
    use tower::ServiceExt;
    match start.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

