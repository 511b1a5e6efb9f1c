//! From a scene to pixels: resolve its binding against the catalogue, fetch values and
//! buildings from analytics, hand them to the twin, encode frames. All functions here block;
//! async callers use `spawn_blocking`.

use crate::error::AppError;
use crate::state::{AppState, Prepared};
use analytics::{Engine, IndicatorValue, latest_complete_period};
use indicators::{Catalogue, Direction, Grain, IndicatorQuery, Level};
use scenes::Scene;
use std::sync::Arc;
use twin::{BuildingInput, OverlaySpec, PreparedScene, SceneInput};

/// A scene's binding, checked against the catalogue.
pub struct Binding<'a> {
    pub indicator: &'a indicators::Indicator,
    pub level: Level,
    pub grain: Grain,
    /// `None` for `latest`.
    pub period: Option<String>,
}

pub fn binding<'a>(catalogue: &'a Catalogue, scene: &Scene) -> Result<Binding<'a>, String> {
    let b = &scene.binding;
    let indicator = catalogue
        .get(&b.indicator)
        .ok_or_else(|| format!("scene {}: unknown indicator {:?}", scene.id, b.indicator))?;
    let level: Level = b
        .level
        .parse()
        .map_err(|e| format!("scene {}: binding.level: {e}", scene.id))?;
    let grain: Grain = b
        .grain
        .parse()
        .map_err(|e| format!("scene {}: binding.grain: {e}", scene.id))?;
    let period = (b.period != "latest").then(|| b.period.clone());
    if let Some(p) = &period {
        indicators::Period::parse(grain, p)
            .map_err(|e| format!("scene {}: binding.period: {e}", scene.id))?;
    }
    Ok(Binding {
        indicator,
        level,
        grain,
        period,
    })
}

/// Checks every scene's binding; used at start-up so a bad scene fails loudly, once.
pub fn check_scenes(catalogue: &Catalogue, scenes: &[Scene]) -> Result<(), String> {
    scenes
        .iter()
        .try_for_each(|s| binding(catalogue, s).map(|_| ()))
}

/// The values a scene shows: its binding at its level within its region, for its period (the
/// newest one with data for `latest`).
pub fn scene_values(
    engine: &Engine,
    scene: &Scene,
    b: &Binding,
) -> Result<(Vec<IndicatorValue>, String), AppError> {
    let query = IndicatorQuery {
        level: b.level,
        grain: b.grain,
        from: b.period.clone(),
        to: b.period.clone(),
        region: Some(scene.region.clone()),
    };
    let rows = engine.values(b.indicator, &query)?;
    let period = match &b.period {
        Some(p) => p.clone(),
        None => {
            let through = engine.recorded_through(b.indicator)?;
            latest_complete_period(&rows, b.grain, through)
                .unwrap_or("none")
                .to_owned()
        }
    };
    let rows = rows.into_iter().filter(|r| r.period == period).collect();
    Ok((rows, period))
}

/// Prepares a scene for rendering from the data of ingest `ingest_id` (the current one).
pub fn prepare(
    engine: &Engine,
    catalogue: &Catalogue,
    scene: &Scene,
    ingest_id: i64,
) -> Result<PreparedScene, AppError> {
    let b = binding(catalogue, scene).map_err(AppError::Internal)?;
    let (rows, period) = scene_values(engine, scene, &b)?;
    let buildings = engine
        .buildings(&scene.region)?
        .into_iter()
        .map(|r| BuildingInput {
            id: r.building_id,
            grid_id: r.grid_id,
            footprint_lon_lat: r.footprint_lon_lat,
            height_m: r.height_m,
        })
        .collect();
    let input = SceneInput {
        key: format!("{}@{}", scene.id, ingest_id),
        buildings,
        values: rows
            .iter()
            .filter_map(|r| r.value.map(|v| (r.region_code.clone(), v)))
            .collect(),
        overlay: OverlaySpec {
            title: b.indicator.name_en.clone(),
            unit: b.indicator.unit.clone(),
            period,
            higher_is_better: b.indicator.direction == Direction::HigherIsBetter,
        },
    };
    twin::prepare(&input).map_err(|e| AppError::Internal(format!("scene {}: {e}", scene.id)))
}

/// The prepared scene for the current ingest, from the cache when the data has not changed.
pub fn prepared(state: &AppState, scene: &Scene) -> Result<Prepared, AppError> {
    let ingest_id = state.engine.snapshot()?.ingest_id;
    if let Some(cached) = state.prepared.lock().expect("cache lock").get(&scene.id)
        && cached.ingest_id == ingest_id
    {
        return Ok(cached.clone());
    }
    let entry = Prepared {
        ingest_id,
        scene: Arc::new(prepare(&state.engine, &state.catalogue, scene, ingest_id)?),
    };
    state
        .prepared
        .lock()
        .expect("cache lock")
        .insert(scene.id.clone(), entry.clone());
    Ok(entry)
}

pub fn encode_png(image: &image::RgbaImage) -> Result<Vec<u8>, AppError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| AppError::Internal(format!("cannot encode PNG: {e}")))?;
    Ok(out.into_inner())
}

pub fn encode_jpeg(image: &image::RgbaImage, quality: u8) -> Result<Vec<u8>, AppError> {
    let rgb = image::DynamicImage::ImageRgba8(image.clone()).to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| AppError::Internal(format!("cannot encode JPEG: {e}")))?;
    Ok(out)
}
