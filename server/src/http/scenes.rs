//! `/api/scenes`, scene snapshots and `/api/health`.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::params;
use crate::http::work::blocking;
use crate::state::{AppState, Rendering};
use crate::views;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The largest picture a snapshot or a stream may ask for (a 4K wall), in pixels a side and
/// in all.
pub const MAX_SIZE: (u32, u32) = (3840, 2160);

/// Checks a requested view size: each side in 16..=the 4K side, the area at most 4K's.
pub fn check_size(width: u32, height: u32) -> Result<(), AppError> {
    let (max_w, max_h) = MAX_SIZE;
    if !(16..=max_w.max(max_h)).contains(&width) {
        return Err(AppError::bad(
            "width",
            format!("{width} is outside 16..={}", max_w.max(max_h)),
        ));
    }
    if !(16..=max_w.max(max_h)).contains(&height) {
        return Err(AppError::bad(
            "height",
            format!("{height} is outside 16..={}", max_w.max(max_h)),
        ));
    }
    if u64::from(width) * u64::from(height) > u64::from(max_w) * u64::from(max_h) {
        return Err(AppError::bad(
            "width",
            format!("{width}x{height} is larger than {max_w}x{max_h} in all"),
        ));
    }
    Ok(())
}

/// Status, rendering, the data snapshot, the catalogue version (public).
#[utoipa::path(get, path = "/api/health", tag = "service",
    responses((status = 200, description = "ok, degraded or no_data, and why", body = Value)))]
pub async fn health(State(state): State<AppState>) -> Json<Value> {
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
        "audit_lines_dropped": state.auth.audit_dropped(),
    }))
}

/// The scenes the caller may open (those in their scope).
#[utoipa::path(get, path = "/api/scenes", tag = "scenes",
    responses((status = 200, description = "scenes in the caller's scope", body = Value)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let scenes: Vec<&scenes::Scene> = state
        .scenes
        .iter()
        .filter(|s| caller.may_see_scene(&state, s).is_ok())
        .collect();
    Json(json!({ "scenes": scenes }))
}

/// The scene `id`, when it exists and the caller may see it.
pub fn scene_for(state: &AppState, caller: &Caller, id: &str) -> Result<scenes::Scene, AppError> {
    let scene = state
        .scene(id)
        .cloned()
        .ok_or_else(|| AppError::NotFound(format!("unknown scene {id:?}")))?;
    caller.may_see_scene(state, &scene)?;
    Ok(scene)
}

/// The variant the `indicator` and `period` parameters ask for (the legend's and the
/// tiles'; `None` for the binding's); any other parameter is refused.
pub fn variant_of(
    params: &std::collections::HashMap<String, String>,
) -> Result<views::Variant, AppError> {
    params::only_known(params, &["indicator", "period"])?;
    Ok(views::Variant {
        indicator: params.get("indicator").cloned(),
        period: params.get("period").cloned(),
        layers: None,
    })
}

/// A rendered PNG of a scene in scope, coloured with the values the caller sees.
#[utoipa::path(get, path = "/api/scenes/{id}/snapshot.png", tag = "scenes",
    params(
        ("id" = String, Path, description = "a scene id", example = "demo_district"),
        ("width" = Option<u32>, Query, description = "16..=3840, at most 3840x2160 in all (default 960)"),
        ("height" = Option<u32>, Query, description = "16..=3840 (default 540)"),
        ("region" = Option<String>, Query, description = "a division code in scope the scene shows: the camera looks at it (a situation shot)"),
    ),
    responses((status = 200, description = "the picture", body = Vec<u8>, content_type = "image/png")))]
pub async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    params::only_known(&params, &["width", "height", "region"])?;
    let width = params::number(&params, "width", 960u32, 16..=MAX_SIZE.0)?;
    let height = params::number(&params, "height", 540u32, 16..=MAX_SIZE.0)?;
    check_size(width, height)?;
    let scene = scene_for(&state, &caller, &id)?;
    let audience = caller.audience(&state);
    let region = params::region(&params)?;
    if let Some(r) = &region
        && !audience.covers(r)
    {
        return Err(AppError::Forbidden {
            reason: "scope".into(),
            message: format!("region {r} is outside your scope {}", caller.0.scope),
        });
    }
    let renderer = state.renderer()?;
    let png = blocking(move || {
        let prepared = views::prepared(&state, &scene, &audience)?.scene;
        let camera = match &region {
            None => scene.camera,
            Some(r) => views::focus(&prepared, &scene.camera, r).ok_or_else(|| {
                AppError::bad(
                    "region",
                    format!("scene {} does not show region {r}", scene.id),
                )
            })?,
        };
        let image = renderer.render(prepared, camera, width, height)?;
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

/// The colours and classes of a scene's overlay as the caller sees it (the legend the planner
/// page draws beside the stream), for the scene's binding or the indicator and period asked.
#[utoipa::path(get, path = "/api/scenes/{id}/legend", tag = "scenes",
    params(
        ("id" = String, Path, description = "a scene id", example = "demo_district"),
        ("indicator" = Option<String>, Query, description = "an indicator other than the binding's"),
        ("period" = Option<String>, Query, description = "a period other than the binding's (or latest)"),
    ),
    responses(
        (status = 200, description = "`{legend: {title, subtitle, classes: [{colour, label}]}}`, classes lowest first, `null` when the scene shows no indicator", body = Value),
        (status = 400, description = "an indicator or period the scene cannot show", body = crate::error::ErrorBody),
    ))]
pub async fn legend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    let variant = variant_of(&params)?;
    let scene = scene_for(&state, &caller, &id)?;
    let audience = caller.audience(&state);
    let legend = blocking(move || {
        Ok(
            views::prepared_variant(&state, &scene, &variant, &audience)?
                .scene
                .legend
                .clone(),
        )
    })
    .await?;
    let hex = |c: [f32; 4]| {
        format!(
            "#{:02x}{:02x}{:02x}",
            (c[0].clamp(0.0, 1.0) * 255.0).round() as u8,
            (c[1].clamp(0.0, 1.0) * 255.0).round() as u8,
            (c[2].clamp(0.0, 1.0) * 255.0).round() as u8
        )
    };
    Ok(Json(json!({
        "legend": legend.map(|l| json!({
            "title": l.title,
            "subtitle": l.subtitle,
            "classes": l.entries.iter().map(|e| json!({ "colour": hex(e.colour_srgb), "label": e.label })).collect::<Vec<_>>(),
        })),
    })))
}

/// A camera looking at one region of a scene (what the planner page's drill-down sends to
/// its stream as a `camera` command).
#[utoipa::path(get, path = "/api/scenes/{id}/focus", tag = "scenes",
    params(
        ("id" = String, Path, description = "a scene id", example = "demo_district"),
        ("region" = String, Query, description = "a division code in scope that the scene shows", example = "320102001"),
    ),
    responses(
        (status = 200, description = "`{region, camera}`: the orbit camera framing the region", body = Value),
        (status = 400, description = "no region, or one the scene does not show", body = crate::error::ErrorBody),
        (status = 403, description = "a region outside the caller's scope", body = crate::error::ErrorBody),
    ))]
pub async fn focus(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    params::only_known(&params, &["region"])?;
    let scene = scene_for(&state, &caller, &id)?;
    let audience = caller.audience(&state);
    let region = params::region(&params)?
        .ok_or_else(|| AppError::bad("region", "a division code is required"))?;
    audience.region(Some(&region), "region")?;
    let camera = blocking(move || {
        let prepared = views::prepared(&state, &scene, &audience)?.scene;
        views::focus(&prepared, &scene.camera, &region)
            .map(|c| (region.clone(), c))
            .ok_or_else(|| {
                AppError::bad(
                    "region",
                    format!("scene {} does not show region {region}", scene.id),
                )
            })
    })
    .await?;
    Ok(Json(json!({ "region": camera.0, "camera": camera.1 })))
}
