//! 3D Tiles 1.1 of a scene, for clients that render themselves (CesiumJS, deck.gl, iTwin):
//! `GET /api/scenes/{id}/tiles/tileset.json` and its tiles `GET /api/scenes/{id}/tiles/tN.glb`.
//!
//! Like every view of a scene, the tiles are made from the scene prepared for the caller's
//! audience (`views::prepared_variant`): a scene outside the caller's scope is 403 as for
//! every view of a scene, and a value withheld from the caller is not in the property table (its
//! `noData`), because it was never in the prepared scene. The `indicator` and `period`
//! parameters choose another variant, as the legend's do; CesiumJS hands the tileset's query
//! parameters on to its tiles.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::params;
use crate::http::scenes::{scene_for, variant_of};
use crate::http::work::blocking;
use crate::state::AppState;
use crate::views;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The tileset of a scene in scope: its root placed on the globe (ENU at the scene's origin),
/// one child per tile of buildings with its bounding box.
#[utoipa::path(get, path = "/api/scenes/{id}/tiles/tileset.json", tag = "scenes",
    params(
        ("id" = String, Path, description = "a scene id", example = "demo_district"),
        ("indicator" = Option<String>, Query, description = "an indicator other than the binding's"),
        ("period" = Option<String>, Query, description = "a period other than the binding's (or latest)"),
    ),
    responses(
        (status = 200, description = "a 3D Tiles 1.1 tileset (asset, geometricError, root with transform and children)", body = Value),
        (status = 400, description = "an indicator or period the scene cannot show", body = crate::error::ErrorBody),
        (status = 403, description = "a scene outside the caller's scope", body = crate::error::ErrorBody),
        (status = 404, description = "no such scene", body = crate::error::ErrorBody),
    ))]
pub async fn tileset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    let variant = variant_of(&params)?;
    let scene = scene_for(&state, &caller, &id)?;
    let audience = caller.audience(&state);
    let (state_p, id) = (state.clone(), scene.id.clone());
    // Preparing checks the variant (an indicator or period the scene cannot show is 400).
    let prepared =
        blocking(move || Ok(views::prepared_variant(&state_p, &scene, &variant, &audience)?.scene))
            .await?;
    // The tileset holds geometry only (bounds, placement), the same for every audience and
    // variant: kept per scene and data snapshot, so every vertex is not placed again for
    // each client that opens it.
    let json = state
        .answers
        .get_or_compute(&state.engine, format!("tileset {id}"), move || {
            Ok(twin::tiles::tileset_only(&prepared)?)
        })
        .await?;
    Ok(Json(json))
}

/// One tile: a GLB with `EXT_mesh_features` (a feature per building) and
/// `EXT_structural_metadata` (id, height_m, region and the overlay's value per feature).
#[utoipa::path(get, path = "/api/scenes/{id}/tiles/{file}", tag = "scenes",
    params(
        ("id" = String, Path, description = "a scene id", example = "demo_district"),
        ("file" = String, Path, description = "a tile the tileset names, tN.glb", example = "t0.glb"),
        ("indicator" = Option<String>, Query, description = "an indicator other than the binding's"),
        ("period" = Option<String>, Query, description = "a period other than the binding's (or latest)"),
    ),
    responses(
        (status = 200, description = "the tile", body = Vec<u8>, content_type = "model/gltf-binary"),
        (status = 403, description = "a scene outside the caller's scope", body = crate::error::ErrorBody),
        (status = 404, description = "no such scene, or no such tile", body = crate::error::ErrorBody),
    ))]
pub async fn tile(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, file)): Path<(String, String)>,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    let variant = variant_of(&params)?;
    let scene = scene_for(&state, &caller, &id)?;
    let index = twin::tiles::parse_tile_name(&file)
        .ok_or_else(|| AppError::NotFound(format!("no tile {file:?} (tiles are named tN.glb)")))?;
    let audience = caller.audience(&state);
    let glb = blocking(move || {
        let prepared = views::prepared_variant(&state, &scene, &variant, &audience)?.scene;
        twin::tiles::tile_glb(&prepared, index)?
            .ok_or_else(|| AppError::NotFound(format!("scene {} has no tile {file}", scene.id)))
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "model/gltf-binary"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        glb,
    )
        .into_response())
}
