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
pub mod events;
pub mod indicators;
pub mod loads;
pub mod openapi;
pub mod pages;
pub mod params;
pub mod records;
pub mod regions;
pub mod risks;
pub mod scenes;
pub mod serve;
pub mod sql;
pub mod stream;
pub mod tasks;
pub mod tiles;
pub mod vendor;
pub mod work;

pub use work::{Answers, blocking};

use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The whole router over `state`.
pub fn app(state: AppState) -> Router {
    let (public, private, _) = routes();
    let guard = axum::middleware::from_fn_with_state(state.clone(), auth::guard);
    let private = private
        .layer(axum::extract::DefaultBodyLimit::max(sql::MAX_BODY_BYTES))
        .layer(guard.clone());
    // The start page with a token, behind the same guard; `start_page` hands it on.
    let start = StartPage(
        Router::new()
            .route("/", get(pages::index))
            .layer(guard)
            .with_state(state.clone()),
    );
    public
        .layer(axum::Extension(start))
        .merge(private)
        .with_state(state)
}

/// The private start page (`/` with a token), built once with the router.
#[derive(Clone)]
struct StartPage(Router);

/// The public and the private routes and their OpenAPI description, from one set of
/// declarations (`utoipa_axum::routes!` over the handlers' `#[utoipa::path]`).
pub(crate) fn routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa_axum::{router::OpenApiRouter, routes};
    let (public, public_api) = OpenApiRouter::<AppState>::new()
        .routes(routes!(start_page))
        .routes(routes!(pages::wall))
        .routes(routes!(pages::analyst))
        .routes(routes!(pages::planner))
        .routes(routes!(pages::tiles))
        .routes(routes!(pages::tasks))
        .routes(routes!(pages::common_js))
        .routes(routes!(vendor::file))
        .routes(routes!(scenes::health))
        .routes(routes!(openapi::serve))
        .split_for_parts();
    // CesiumJS's static tree (a few hundred files the library loads by relative path).
    let public = public.route("/vendor/cesium/{*path}", axum::routing::get(vendor::cesium));
    let (private, private_api) = OpenApiRouter::<AppState>::new()
        .routes(routes!(indicators::list))
        .routes(routes!(indicators::show))
        .routes(routes!(indicators::values))
        .routes(routes!(indicators::series))
        .routes(routes!(indicators::breakdown))
        .routes(routes!(risks::alerts))
        .routes(routes!(risks::trends))
        .routes(routes!(sql::run))
        .routes(routes!(scenes::list))
        .routes(routes!(scenes::snapshot))
        .routes(routes!(scenes::legend))
        .routes(routes!(scenes::focus))
        .routes(routes!(tiles::tileset))
        .routes(routes!(tiles::tile))
        .routes(routes!(stream::view))
        .routes(routes!(loads::load))
        .routes(routes!(loads::append))
        .routes(routes!(events::events))
        .routes(routes!(events::events_ws))
        .routes(routes!(tasks::list, tasks::create))
        .routes(routes!(tasks::show))
        .routes(routes!(tasks::event))
        .routes(routes!(tasks::evaluation))
        .routes(routes!(records::events))
        .routes(routes!(records::services))
        .routes(routes!(records::requests))
        .routes(routes!(records::request_one))
        .routes(routes!(regions::list))
        .routes(routes!(regions::shapes))
        .split_for_parts();
    (public, private, openapi::document(public_api, private_api))
}

/// `/`: without credentials the public welcome page; with them the private start page,
/// through the guard like any other private route.
#[utoipa::path(get, path = "/", tag = "pages",
    params(("token" = Option<String>, Query, description = "with a token: the start page of its scope")),
    responses(
        (status = 200, description = "the start page", body = String, content_type = "text/html"),
        (status = 401, description = "an unknown token, or two different ones", body = crate::error::ErrorBody),
        (status = 429, description = "too many requests", body = crate::error::ErrorBody),
    ))]
async fn start_page(
    axum::Extension(StartPage(start)): axum::Extension<StartPage>,
    request: Request,
) -> Response {
    if !auth::carries_token(&request) {
        return pages::welcome().into_response();
    }
    use tower::ServiceExt;
    match start.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
