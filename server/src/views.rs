//! From a scene to pixels: resolve its binding against the catalogue, fetch values and
//! buildings from analytics, hand them to the twin, encode frames. All functions here block;
//! async callers use `spawn_blocking`.

use crate::error::AppError;
use crate::state::{AppState, Prepared};
use analytics::{Audience, Engine, IndicatorValue, latest_complete_period};
use indicators::{Catalogue, Direction, Grain, IndicatorQuery, Level};
use scenes::{Layer, Show};
use scenes::{OrbitCamera, Scene};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twin::{
    BuildingInput, CityModel, Overlay, OverlayLayers, OverlaySpec, PreparedScene, RegionShape,
    SceneInput,
};

/// A scene's binding, checked against the catalogue.
pub struct Binding<'a> {
    pub indicator: &'a indicators::Indicator,
    pub level: Level,
    pub grain: Grain,
    /// `None` for `latest`.
    pub period: Option<String>,
    pub show: &'a [scenes::Show],
    pub ramp: scenes::RampKind,
}

pub fn binding<'a>(
    catalogue: &'a Catalogue,
    scene: &'a Scene,
) -> Result<Option<Binding<'a>>, String> {
    let Some(b) = &scene.binding else {
        return Ok(None);
    };
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
    if scene.region.is_none() {
        return Err(format!(
            "scene {}: a binding needs the scene's region to take values in",
            scene.id
        ));
    }
    Ok(Some(Binding {
        indicator,
        level,
        grain,
        period,
        show: &b.show,
        ramp: b.ramp,
    }))
}

/// Checks every scene's binding and layer CRSs; used at start-up so a bad scene fails loudly,
/// once. (Files are read when a scene is first drawn: a missing one fails that scene only.)
pub fn check_scenes(catalogue: &Catalogue, scenes: &[Scene]) -> Result<(), String> {
    for s in scenes {
        binding(catalogue, s)?;
        for layer in &s.layers {
            if let Layer::Cim { crs: Some(c), .. } | Layer::Regions { crs: Some(c), .. } = layer {
                twin::crs::Crs::parse(c).map_err(|e| format!("scene {}: {e}", s.id))?;
            }
            if let Layer::Regions { level, .. } = layer {
                level
                    .parse::<Level>()
                    .map_err(|e| format!("scene {}: layer level: {e}", s.id))?;
            }
        }
    }
    Ok(())
}

/// The values a scene shows to `audience`: its binding at its level within its region, for
/// its period (the newest complete one with data for `latest`).
pub fn scene_values(
    engine: &Engine,
    audience: &Audience,
    region: &str,
    b: &Binding,
) -> Result<(Vec<IndicatorValue>, String), AppError> {
    let query = IndicatorQuery {
        level: b.level,
        grain: b.grain,
        from: b.period.clone(),
        to: b.period.clone(),
        region: Some(region.to_owned()),
    };
    let rows = engine.values(audience, b.indicator, &query)?;
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

/// A file path of a scene layer: relative paths are taken from the data directory.
fn data_path(data_dir: &Path, file: &Path) -> PathBuf {
    if file.is_absolute() {
        file.to_owned()
    } else {
        data_dir.join(file)
    }
}

fn parse_crs(text: &Option<String>) -> Result<Option<twin::crs::Crs>, AppError> {
    text.as_deref()
        .map(twin::crs::Crs::parse)
        .transpose()
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Region boundaries of `level` within `within`: from the file when given and present, else
/// from the database.
fn regions(
    engine: &Engine,
    data_dir: &Path,
    within: Option<&str>,
    level: &str,
    file: &Option<PathBuf>,
    crs: &Option<String>,
) -> Result<Vec<RegionShape>, AppError> {
    if let Some(f) = file {
        let path = data_path(data_dir, f);
        if path.exists() {
            let mut options = twin::cim::RegionOptions::default();
            if let Some(c) = parse_crs(crs)? {
                options.crs = c;
            }
            let shapes = twin::cim::load_regions(&path, &options).map_err(twin::TwinError::from)?;
            return Ok(shapes
                .into_iter()
                .filter(|r| within.is_none_or(|w| r.code.starts_with(w) && r.code != w))
                .collect());
        }
        tracing::warn!(
            "region file {} is absent; using the database's {level} shapes",
            path.display()
        );
    }
    let Some(within) = within else {
        return Ok(Vec::new());
    };
    engine
        .region_shapes(within, level)?
        .into_iter()
        .map(|r| {
            // The renderer takes open rings.
            let polygons = r
                .polygons_lon_lat
                .into_iter()
                .map(|rings| {
                    rings
                        .into_iter()
                        .map(|mut ring| {
                            if ring.len() > 1 && ring.first() == ring.last() {
                                ring.pop();
                            }
                            ring
                        })
                        .collect()
                })
                .collect();
            Ok(RegionShape {
                code: r.code,
                name: r.name,
                polygons,
            })
        })
        .collect()
}

/// The overlay of a binding for one period.
fn overlay(b: &Binding, period: String, rows: &[IndicatorValue]) -> Overlay {
    Overlay {
        spec: OverlaySpec {
            title: format!("{} {}", b.indicator.name_zh, b.indicator.name_en),
            unit: b.indicator.unit.clone(),
            period,
            higher_is_better: b.indicator.direction == Direction::HigherIsBetter,
            target: b.indicator.target.as_ref().map(|t| t.value),
            ramp: b.ramp,
        },
        values: rows
            .iter()
            .filter_map(|r| r.value.map(|v| (r.region_code.clone(), v)))
            .collect(),
        critical: rows
            .iter()
            .filter(|r| r.status == indicators::Status::Critical)
            .map(|r| r.region_code.clone())
            .collect(),
        layers: OverlayLayers {
            buildings: b.show.contains(&Show::Buildings),
            choropleth: b.show.contains(&Show::Choropleth),
            columns: b.show.contains(&Show::Columns),
            labels: b.show.contains(&Show::Labels),
            density: b.show.contains(&Show::Density),
            alerts: b.show.contains(&Show::Alerts),
        },
    }
}

/// The scene's binding for every complete period with data, oldest first (for time
/// playback); empty without a binding.
pub fn scene_periods(
    engine: &Engine,
    audience: &Audience,
    catalogue: &Catalogue,
    scene: &Scene,
) -> Result<Vec<Overlay>, AppError> {
    let (Some(b), Some(region)) = (
        binding(catalogue, scene).map_err(AppError::Internal)?,
        scene.region.as_deref(),
    ) else {
        return Ok(Vec::new());
    };
    let query = IndicatorQuery {
        level: b.level,
        grain: b.grain,
        from: None,
        to: None,
        region: Some(region.to_owned()),
    };
    let rows = engine.values(audience, b.indicator, &query)?;
    let through = engine.recorded_through(b.indicator)?;
    let Some(latest) = latest_complete_period(&rows, b.grain, through).map(str::to_owned) else {
        return Ok(Vec::new());
    };
    let mut by_period: std::collections::BTreeMap<String, Vec<IndicatorValue>> = Default::default();
    for r in rows.into_iter().filter(|r| r.period <= latest) {
        by_period.entry(r.period.clone()).or_default().push(r);
    }
    Ok(by_period
        .into_iter()
        .map(|(period, rows)| overlay(&b, period, &rows))
        .collect())
}

/// Prepares a scene for rendering to `audience` from the data of ingest `ingest_id` (the
/// current one).
pub fn prepare(
    engine: &Engine,
    audience: &Audience,
    catalogue: &Catalogue,
    scene: &Scene,
    ingest_id: i64,
    data_dir: &Path,
) -> Result<PreparedScene, AppError> {
    let b = binding(catalogue, scene).map_err(AppError::Internal)?;
    let region = scene.region.as_deref();
    let mut model = CityModel::default();
    let mut shapes = Vec::new();
    for layer in scene.layers() {
        match layer {
            Layer::Buildings => {
                let buildings = engine
                    .buildings(region.unwrap_or(""))?
                    .into_iter()
                    .map(|r| BuildingInput {
                        id: r.building_id,
                        grid_id: r.grid_id,
                        footprint_lon_lat: r.footprint_lon_lat,
                        height_m: r.height_m,
                    })
                    .collect();
                model.extend(CityModel::from_footprints(buildings));
            }
            Layer::Cim { file, crs, lod } => {
                let options = twin::LoadOptions {
                    crs: parse_crs(&crs)?,
                    preferred_lod: lod,
                };
                let path = data_path(data_dir, &file);
                model.extend(twin::cim::load_file(&path, &options).map_err(twin::TwinError::from)?);
            }
            Layer::Regions { level, file, crs } => {
                shapes.extend(regions(engine, data_dir, region, &level, &file, &crs)?);
            }
        }
    }
    let overlay = match (&b, region) {
        (Some(b), Some(region)) => {
            let (rows, period) = scene_values(engine, audience, region, b)?;
            // CIM buildings learn their region from the binding level's boundaries.
            if model
                .objects
                .iter()
                .any(|o| o.is_building() && o.region.is_none())
            {
                let at_level = |code: &str| match b.level.code_len() {
                    Some(n) => code.len() == n,
                    None => code.contains('-'),
                };
                let join_shapes = if shapes.iter().any(|s| at_level(&s.code)) {
                    shapes.clone()
                } else {
                    regions(
                        engine,
                        data_dir,
                        Some(region),
                        b.level.as_str(),
                        &None,
                        &None,
                    )?
                };
                twin::join::join(&mut model, &twin::join::RegionIndex::new(&join_shapes));
            }
            Some(overlay(b, period, &rows))
        }
        _ => None,
    };
    let input = SceneInput {
        key: format!("{}@{}", scene.id, ingest_id),
        model,
        regions: shapes,
        overlay,
    };
    Ok(twin::prepare(&input)?)
}

/// The scene prepared with every value shown (the operator's), for the current ingest, from
/// the cache when the data has not changed. Private: audiences get [`prepared`].
fn prepared_full(state: &AppState, scene: &Scene) -> Result<Prepared, AppError> {
    let ingest_id = state.engine.snapshot()?.ingest_id;
    let cached = state
        .prepared
        .lock()
        .expect("cache lock")
        .get(&scene.id)
        .cloned();
    if let Some(cached) = &cached
        && cached.ingest_id == ingest_id
    {
        return Ok(cached.clone());
    }
    let entry = match cached {
        // Only facts changed since (loads and appends): the geometry stays, the overlay is
        // made again from the new values.
        Some(cached) if !state.engine.places_changed_since(cached.ingest_id)? => {
            let mut scene_now = (*cached.scene).clone();
            scene_now.key = format!("{}@{}", scene.id, ingest_id);
            if let (Some(b), Some(region)) = (
                binding(&state.catalogue, scene).map_err(AppError::Internal)?,
                scene.region.as_deref(),
            ) {
                let (rows, period) = scene_values(&state.engine, &Audience::trusted(), region, &b)?;
                scene_now.set_overlay(Some(&overlay(&b, period, &rows)));
            }
            Prepared {
                ingest_id,
                scene: Arc::new(scene_now),
            }
        }
        _ => Prepared {
            ingest_id,
            scene: Arc::new(prepare(
                &state.engine,
                &Audience::trusted(),
                &state.catalogue,
                scene,
                ingest_id,
                &state.data_dir,
            )?),
        },
    };
    state
        .prepared
        .lock()
        .expect("cache lock")
        .insert(scene.id.clone(), entry.clone());
    Ok(entry)
}

/// The scene prepared for `audience`, for the current ingest: the shared geometry with the
/// overlay of the values this audience sees (colours, columns, markers and picks then hold
/// no withheld value). Kept per audience class and ingest.
pub fn prepared(
    state: &AppState,
    scene: &Scene,
    audience: &Audience,
) -> Result<Prepared, AppError> {
    let full = prepared_full(state, scene)?;
    let (Some(_), Some(b), Some(region)) = (
        audience.floor(),
        binding(&state.catalogue, scene).map_err(AppError::Internal)?,
        scene.region.as_deref(),
    ) else {
        // Every value shown, or nothing bound to withhold.
        return Ok(full);
    };
    let key = format!("{}|{}", scene.id, audience.key());
    if let Some(cached) = state.prepared.lock().expect("cache lock").get(&key)
        && cached.ingest_id == full.ingest_id
    {
        return Ok(cached.clone());
    }
    let (rows, period) = scene_values(&state.engine, audience, region, &b)?;
    let mut prepared = (*full.scene).clone();
    prepared.key = format!("{}|{}", prepared.key, audience.key());
    prepared.set_overlay(Some(&overlay(&b, period, &rows)));
    let entry = Prepared {
        ingest_id: full.ingest_id,
        scene: Arc::new(prepared),
    };
    state
        .prepared
        .lock()
        .expect("cache lock")
        .insert(key, entry.clone());
    Ok(entry)
}

/// A viewer's changes to a scene's binding: another indicator, another period, other layers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Variant {
    pub indicator: Option<String>,
    pub period: Option<String>,
    pub layers: Option<OverlayLayers>,
}

/// How many prepared scenes (variants included) are kept.
const MAX_PREPARED: usize = 32;

/// The scene as a viewer changed it: the same geometry (cloned from the prepared scene) with
/// the overlay of the variant's indicator, period and layers. Kept per variant and ingest.
pub fn prepared_variant(
    state: &AppState,
    scene: &Scene,
    variant: &Variant,
    audience: &Audience,
) -> Result<Prepared, AppError> {
    let base = prepared(state, scene, audience)?;
    if *variant == Variant::default() {
        return Ok(base);
    }
    let key = format!(
        "{}|{}#{:?}|{:?}|{:?}",
        scene.id,
        audience.key(),
        variant.indicator,
        variant.period,
        variant.layers
    );
    if let Some(cached) = state.prepared.lock().expect("cache lock").get(&key)
        && cached.ingest_id == base.ingest_id
    {
        return Ok(cached.clone());
    }
    let Some(bound) = &scene.binding else {
        return Err(AppError::bad(
            "binding",
            format!("scene {} shows no indicator", scene.id),
        ));
    };
    let mut changed = scene.clone();
    changed.binding = Some(scenes::Binding {
        indicator: variant
            .indicator
            .clone()
            .unwrap_or_else(|| bound.indicator.clone()),
        period: variant
            .period
            .clone()
            .unwrap_or_else(|| bound.period.clone()),
        ..bound.clone()
    });
    let b = binding(&state.catalogue, &changed)
        .map_err(|e| AppError::bad("binding", e))?
        .expect("the binding was set above");
    if !b.indicator.levels.contains(&b.level) || !b.indicator.grains.contains(&b.grain) {
        return Err(AppError::bad(
            "indicator",
            format!(
                "{} is not computed at {} level by {}",
                b.indicator.id,
                b.level.as_str(),
                b.grain
            ),
        ));
    }
    let region = scene.region.as_deref().unwrap_or("32");
    let (rows, period) = scene_values(&state.engine, audience, region, &b)?;
    let mut o = overlay(&b, period, &rows);
    if let Some(layers) = variant.layers {
        o.layers = layers;
    }
    let mut prepared = (*base.scene).clone();
    prepared.key = format!("{}#{key}", prepared.key);
    prepared.set_overlay(Some(&o));
    let entry = Prepared {
        ingest_id: base.ingest_id,
        scene: Arc::new(prepared),
    };
    let mut cache = state.prepared.lock().expect("cache lock");
    if cache.len() >= MAX_PREPARED {
        cache.retain(|k, _| !k.contains('#'));
    }
    cache.insert(key, entry.clone());
    Ok(entry)
}

/// A camera looking at region `code` (its polygons in the scene, its parts', or else those of
/// the region it lies in), from the heading and elevation of `like`; `None` when the scene
/// shows none of them.
pub fn focus(prepared: &PreparedScene, like: &OrbitCamera, code: &str) -> Option<OrbitCamera> {
    let (mut min, mut max) = ([f32::MAX; 2], [f32::MIN; 2]);
    // The region or its parts; else the region it lies in (a county on a map of cities).
    let inside = prepared
        .region_polygons
        .iter()
        .any(|r| r.code.starts_with(code));
    for region in prepared.region_polygons.iter().filter(|r| {
        if inside {
            r.code.starts_with(code)
        } else {
            code.starts_with(r.code.as_str())
        }
    }) {
        for [x, y] in region.rings.iter().flatten() {
            min = [min[0].min(*x), min[1].min(*y)];
            max = [max[0].max(*x), max[1].max(*y)];
        }
    }
    if min[0] > max[0] {
        return None;
    }
    let half_extent_m = ((max[0] - min[0]).max(max[1] - min[1]) / 2.0).max(150.0);
    Some(OrbitCamera {
        target_en_m: [(min[0] + max[0]) / 2.0, (min[1] + max[1]) / 2.0],
        // The region fills about two thirds of the picture's height.
        distance_m: half_extent_m * 1.5 / (twin::FOV_DEG.to_radians() / 2.0).tan().max(0.1),
        ..*like
    })
}

/// What is under a pixel of a view, for a stream's pick: the building (id, kind, height,
/// region, attributes) or the region, with the value shown there; `null` for nothing.
pub fn pick_json(
    scene: &PreparedScene,
    camera: &scenes::OrbitCamera,
    size: (u32, u32),
    at: [f32; 2],
) -> serde_json::Value {
    use serde_json::json;
    let spec = scene.overlay.as_ref();
    let shown = json!({
        "indicator": spec.map(|s| s.title.clone()),
        "unit": spec.map(|s| s.unit.clone()),
        "period": spec.map(|s| s.period.clone()),
    });
    match twin::pick(scene, camera, size, at) {
        None => serde_json::Value::Null,
        Some(twin::Pick::Object {
            index,
            id,
            at_enu_m,
        }) => {
            let o = &scene.objects[index];
            json!({
                "kind": "object", "id": id, "type": o.kind, "region": o.region,
                "height_m": o.height_range_m[1] - o.height_range_m[0],
                "attributes": o.attributes.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "value": scene.value_of_object(index), "shown": shown, "at_enu_m": at_enu_m,
            })
        }
        Some(twin::Pick::Region {
            code,
            name,
            at_enu_m,
        }) => json!({
            "kind": "region", "id": code, "name": name,
            "value": twin::value_for(&scene.values, &code), "shown": shown, "at_enu_m": at_enu_m,
        }),
    }
}

pub fn encode_png(image: &image::RgbaImage) -> Result<Vec<u8>, AppError> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| AppError::Internal(format!("cannot encode PNG: {e}")))?;
    Ok(out.into_inner())
}

/// A frame as JPEG, through `jpeg-encoder` rather than the `image` crate's encoder: it reads
/// RGBA as it is (no copy to RGB), uses AVX2 where the CPU has it (detected at run time) and
/// subsamples chroma below quality 90; BENCHMARKS.md ("The view stream") has its times.
pub fn encode_jpeg(image: &image::RgbaImage, quality: u8) -> Result<Vec<u8>, AppError> {
    let (width, height) = image.dimensions();
    let side = |v: u32| {
        u16::try_from(v)
            .map_err(|_| AppError::Internal(format!("{v} pixels is too large for JPEG")))
    };
    let mut out = Vec::with_capacity(image.as_raw().len() / 10);
    jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100))
        .encode(
            image.as_raw(),
            side(width)?,
            side(height)?,
            jpeg_encoder::ColorType::Rgba,
        )
        .map_err(|e| AppError::Internal(format!("cannot encode JPEG: {e}")))?;
    Ok(out)
}
