//! The city twin: CIM files and region boundaries placed in a local metric frame, meshed into
//! merged tiles, coloured by indicator values and rendered by Bevy (on wgpu) into RGBA images.
//!
//! Data flows one way: [`cim`] reads CityJSON, CityJSONSeq and GeoJSON into a [`CityModel`] in
//! WGS84 (CRS via [`crs`], PROJ and the GCJ-02 correction); [`join`] finds each building's
//! region; the caller adds indicator values per region ([`SceneInput`]); [`prepare`] projects
//! into the scene's [`LocalFrame`], meshes tiles with a per-object colour table, and builds
//! the overlays (choropleth, columns, labels, legend) with no GPU; [`Renderer`] owns one Bevy
//! app on its own thread and renders a prepared scene from an orbit camera at a size. The twin
//! receives values; it never queries a database.

pub mod cim;
pub mod crs;
pub mod frame;
pub mod impostor;
pub mod join;
pub mod material;
pub mod mesh;
pub mod pick;
pub mod planner;
pub mod ramp;
mod render;
pub mod tiles;
pub mod window;

pub use cim::{CityModel, CityObject, LoadOptions, RegionShape, Shape};
pub use frame::LocalFrame;
pub use impostor::Impostor;
pub use mesh::MeshData;
pub use pick::{Pick, pick};
pub use ramp::{Legend, LegendEntry, Ramp};
pub use render::{FOV_DEG, MAX_VIEWS, Renderer, ViewRequest, ViewResult};
pub use scenes::{OrbitCamera, RampKind};

use std::collections::HashMap;

/// A generated building as handed over by analytics: outer ring in lon/lat (WGS84, closed),
/// height in metres and the grid cell it stands in.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildingInput {
    pub id: String,
    pub grid_id: String,
    pub footprint_lon_lat: Vec<[f64; 2]>,
    pub height_m: f64,
}

impl CityModel {
    /// A model of extruded footprints whose regions are already known (the generated city).
    pub fn from_footprints(buildings: Vec<BuildingInput>) -> CityModel {
        let objects = buildings
            .into_iter()
            .map(|b| {
                let mut ring = b.footprint_lon_lat;
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                CityObject {
                    id: b.id,
                    kind: "Building".into(),
                    parent: None,
                    lod: Some("1".into()),
                    attributes: serde_json::Map::new(),
                    shape: Shape::Extruded {
                        polygons: vec![vec![ring]],
                        base_m: 0.0,
                        top_m: b.height_m,
                    },
                    region: Some(b.grid_id),
                }
            })
            .collect();
        CityModel {
            objects,
            sources: Vec::new(),
        }
    }
}

/// What an overlay shows, for the legend and the ramp's direction.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlaySpec {
    pub title: String,
    pub unit: String,
    pub period: String,
    pub higher_is_better: bool,
    /// The indicator's target, which a diverging ramp centres on.
    pub target: Option<f64>,
    pub ramp: scenes::RampKind,
}

/// Which views of one indicator binding are drawn (one definition, many views).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayLayers {
    /// Buildings coloured by their region's value.
    pub buildings: bool,
    /// Region polygons filled by value.
    pub choropleth: bool,
    /// 3-D columns at region centroids, height by value.
    pub columns: bool,
    /// Region names (and values) at their centroids.
    pub labels: bool,
    /// Regions filled by value per km² (e.g. work orders), on a sequential ramp.
    pub density: bool,
    /// Markers over regions whose value is critical.
    pub alerts: bool,
}

impl Default for OverlayLayers {
    fn default() -> Self {
        OverlayLayers {
            buildings: true,
            choropleth: false,
            columns: false,
            labels: false,
            density: false,
            alerts: false,
        }
    }
}

/// Indicator values bound to a scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub spec: OverlaySpec,
    /// Value per region code (division code or grid cell id).
    pub values: HashMap<String, f64>,
    /// Regions whose value is critical (past the indicator's critical threshold).
    pub critical: Vec<String>,
    pub layers: OverlayLayers,
}

/// Everything needed to draw one scene.
#[derive(Clone, Debug)]
pub struct SceneInput {
    /// Identifies the content (scene id plus data snapshot); the renderer keeps meshes per key.
    pub key: String,
    pub model: CityModel,
    /// Region boundaries for the choropleth, columns and labels (may be empty).
    pub regions: Vec<RegionShape>,
    pub overlay: Option<Overlay>,
}

/// A text label at a point of the scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub text: String,
    /// Metres east, north and up of the origin.
    pub position_enu_m: [f32; 3],
}

/// One polygon of a region in the local frame.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalRegion {
    pub code: String,
    pub name: String,
    pub rings: mesh::LocalPolygon,
}

/// What picking and panels know of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectSummary {
    pub id: String,
    /// CityJSON type (`Building`, `BuildingPart`, `Road`, ...).
    pub kind: String,
    /// The region it stands in (buildings only).
    pub region: Option<String>,
    /// Lowest and highest point above the scene's ground, metres.
    pub height_range_m: [f32; 2],
    /// The first few attributes from the source file, as text.
    pub attributes: Vec<(String, String)>,
}

/// Wall height on screen, pixels, below which a tile may be drawn as its impostor (its
/// typical building's walls; see [`impostor`]).
pub const LOD_WALL_PX: f32 = 2.0;

/// How many source attributes an [`ObjectSummary`] keeps.
const SUMMARY_ATTRIBUTES: usize = 8;

/// A scene ready to render: meshes in the local frame, colour table, overlays, legend.
///
/// Geometry (tiles, regions) is fixed once prepared; the overlay part (colour table,
/// choropleth, columns, labels, legend) is recomputed by [`PreparedScene::set_overlay`], e.g.
/// when a planner steps to another period.
#[derive(Clone, Debug)]
pub struct PreparedScene {
    pub key: String,
    pub frame: LocalFrame,
    /// Merged object meshes, one per tile.
    pub tiles: Vec<MeshData>,
    /// The far level of detail of each tile (its roofs from above on one quad), drawn beyond
    /// [`Impostor::switch_distance_m`] of each view.
    pub impostors: Vec<Impostor>,
    /// Objects by index (the `object_index` of tile vertices).
    pub objects: Vec<ObjectSummary>,
    /// Region polygons in the local frame, for the choropleth and picking.
    pub region_polygons: Vec<LocalRegion>,
    /// Each region's label point (centroid of its largest polygon), metres east and north.
    pub region_centroids: Vec<(String, String, [f32; 2])>,
    /// Half the larger side of the content's bounding box, metres.
    pub radius_m: f32,
    pub building_count: usize,
    /// sRGB colour per object, [`mesh::COLOUR_TABLE_WIDTH`] per row, `colour_rows` rows.
    pub colour_table: Vec<[u8; 4]>,
    pub colour_rows: u32,
    pub choropleth: Option<MeshData>,
    pub columns: Option<MeshData>,
    pub labels: Vec<Label>,
    pub legend: Option<Legend>,
    /// What the colours show (indicator, unit, period).
    pub overlay: Option<OverlaySpec>,
    /// The values shown, by region.
    pub values: HashMap<String, f64>,
}

impl PreparedScene {
    /// The value shown for an object (its region's, or the nearest ancestor's).
    pub fn value_of_object(&self, index: usize) -> Option<f64> {
        value_for(&self.values, self.objects.get(index)?.region.as_deref()?)
    }

    /// Recomputes everything the overlay draws, leaving geometry alone: the colour table,
    /// the choropleth and column meshes, labels and legend.
    pub fn set_overlay(&mut self, overlay: Option<&Overlay>) {
        // A density overlay colours by value per km² of each region, on a sequential ramp.
        let density_view = overlay.filter(|o| o.layers.density).map(|o| {
            let mut area_km2: HashMap<&str, f64> = HashMap::new();
            for r in &self.region_polygons {
                let rings = &r.rings;
                let holes: f64 = rings[1..].iter().map(|h| cim_ring_area(h).abs()).sum();
                *area_km2.entry(r.code.as_str()).or_default() +=
                    (cim_ring_area(&rings[0]).abs() - holes) / 1e6;
            }
            let values: HashMap<String, f64> = o
                .values
                .iter()
                .filter_map(|(code, v)| {
                    let a = *area_km2.get(code.as_str())?;
                    (a > 0.0).then(|| (code.clone(), v / a))
                })
                .collect();
            Overlay {
                spec: OverlaySpec {
                    title: format!("{} · 每平方公里 per km²", o.spec.title),
                    unit: format!("{}/km²", o.spec.unit),
                    ramp: scenes::RampKind::Sequential,
                    target: None,
                    ..o.spec.clone()
                },
                values,
                layers: OverlayLayers {
                    choropleth: true,
                    ..o.layers
                },
                critical: o.critical.clone(),
            }
        });
        let shown = density_view.as_ref().or(overlay);
        let legend = shown.map(|o| {
            Ramp::for_overlay(o.spec.ramp, o.spec.higher_is_better, o.spec.target)
                .legend(&o.spec, o.values.values().copied())
        });
        let colour_buildings = shown.is_some_and(|o| o.layers.buildings);
        let value = |code: &str| shown.and_then(|o| value_for(&o.values, code));
        self.colour_table = self
            .objects
            .iter()
            .map(|o| match (&legend, colour_buildings) {
                (Some(l), true) if is_building_kind(&o.kind) => {
                    srgb8(l.colour_of(o.region.as_deref().and_then(value)))
                }
                _ if is_building_kind(&o.kind) => PLAIN_BUILDING,
                _ => type_colour(&o.kind),
            })
            .collect();
        self.colour_rows = mesh::colour_table_rows(self.colour_table.len());
        self.colour_table.resize(
            (self.colour_rows * mesh::COLOUR_TABLE_WIDTH) as usize,
            [0, 0, 0, 0],
        );
        let (mut choropleth, mut columns, mut labels) = (None, None, Vec::new());
        let mut bars = Vec::new();
        if let (Some(ov), Some(legend)) = (shown, &legend) {
            if ov.layers.choropleth && !self.region_polygons.is_empty() {
                // Under coloured buildings the fill is dimmed so the buildings stand out.
                let k = if ov.layers.buildings { 0.35 } else { 1.0 };
                let fills: Vec<(mesh::LocalPolygon, [f32; 4])> = self
                    .region_polygons
                    .iter()
                    .map(|r| {
                        let c = mesh::linear(legend.colour_of(value(&r.code)));
                        (r.rings.clone(), [c[0] * k, c[1] * k, c[2] * k, c[3]])
                    })
                    .collect();
                choropleth = Some(mesh::flat_polygons(&fills, 0.0));
            }
            let max = self
                .region_centroids
                .iter()
                .filter_map(|(code, _, _)| value(code))
                .fold(0.0f64, |m, v| m.max(v.abs()));
            if ov.layers.columns && max > 0.0 {
                let half = (self.radius_m * 0.012).max(2.0);
                let tallest = self.radius_m * 0.35;
                bars.extend(self.region_centroids.iter().filter_map(|(code, _, c)| {
                    let v = value(code)?;
                    let h = (v.abs() / max) as f32 * tallest;
                    Some((
                        *c,
                        half,
                        h.max(half * 0.2),
                        mesh::linear(legend.colour_of(Some(v))),
                    ))
                }));
            }
            let critical = |code: &str| ov.layers.alerts && ov.critical.iter().any(|c| c == code);
            if ov.layers.alerts {
                // A red pin over each critical region, taller than the tallest column.
                let half = (self.radius_m * 0.005).max(1.0);
                let height = self.radius_m * 0.45;
                for (code, _, c) in &self.region_centroids {
                    if critical(code) {
                        bars.push((*c, half, height, mesh::linear(ALERT_RED)));
                        bars.push((*c, half * 3.0, half * 6.0, mesh::linear(ALERT_RED)));
                    }
                }
            }
            if !bars.is_empty() {
                columns = Some(mesh::columns(&bars));
            }
            if ov.layers.labels || ov.layers.alerts {
                for (code, name, c) in &self.region_centroids {
                    let alert = critical(code);
                    if !ov.layers.labels && !alert {
                        continue;
                    }
                    let mut text = match value(code) {
                        Some(v) => format!("{name} {}", ramp::format_value(v, &ov.spec.unit)),
                        None => name.clone(),
                    };
                    if alert {
                        text = format!("⚠ {text}");
                    }
                    labels.push(Label {
                        text,
                        position_enu_m: [c[0], c[1], 0.0],
                    });
                }
            }
        }
        self.choropleth = choropleth;
        self.columns = columns;
        self.labels = labels;
        self.legend = legend;
        self.overlay = shown.map(|o| o.spec.clone());
        self.values = overlay.map(|o| o.values.clone()).unwrap_or_default();
    }
}

/// Colour of alert markers (sRGB).
const ALERT_RED: [f32; 4] = [0.9, 0.1, 0.12, 1.0];

fn is_building_kind(kind: &str) -> bool {
    kind == "Building" || kind == "BuildingPart"
}

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error("object {id}: {message}")]
    BadObject { id: String, message: String },
    #[error("the scene has nothing to draw")]
    Empty,
    #[error(transparent)]
    Cim(#[from] cim::CimError),
    #[error(transparent)]
    Crs(#[from] crs::CrsError),
    #[error(
        "rendering is unavailable: no usable GPU or Vulkan device was found ({detail}); install Mesa's lavapipe (Debian package mesa-vulkan-drivers) for CPU rendering"
    )]
    NoDevice { detail: String },
    #[error("the renderer stopped: {0}")]
    RendererGone(String),
    /// One view of a job could not be read back; the job's other views are unaffected.
    #[error("view {view} ({width}x{height}) was not captured after {attempts} screenshots")]
    CaptureFailed {
        view: usize,
        width: u32,
        height: u32,
        attempts: usize,
    },
    #[error("a render job needs 1..={max} views, not {count}")]
    BadViews { count: usize, max: usize },
    #[error("image size {width}x{height} is outside 16..=4096 pixels per side")]
    BadSize { width: u32, height: u32 },
}

/// The value of a region or, failing that, of its nearest ancestor with one: a grid cell
/// `<community>-nnn` falls back to its community, township, county, city and province.
pub fn value_for(values: &HashMap<String, f64>, region: &str) -> Option<f64> {
    if let Some(v) = values.get(region) {
        return Some(*v);
    }
    let code = region.split('-').next().unwrap_or(region);
    [12, 9, 6, 4, 2]
        .into_iter()
        .filter(|&n| n <= code.len() && (n < code.len() || code != region))
        .find_map(|n| values.get(&code[..n]).copied())
}

fn srgb8(c: [f32; 4]) -> [u8; 4] {
    c.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
}

/// Colour of objects that are not buildings, by CityJSON type (sRGB).
fn type_colour(kind: &str) -> [u8; 4] {
    match kind {
        "Road" | "Railway" | "TransportSquare" => [92, 96, 104, 255],
        "PlantCover" | "SolitaryVegetationObject" => [74, 122, 70, 255],
        "WaterBody" => [52, 96, 150, 255],
        "LandUse" => [112, 106, 90, 255],
        "Bridge" | "BridgePart" | "Tunnel" => [140, 136, 128, 255],
        _ => [120, 120, 124, 255],
    }
}

/// Buildings' colour when no overlay colours them (sRGB).
const PLAIN_BUILDING: [u8; 4] = [205, 200, 190, 255];

/// Projects, meshes and colours a scene. Errors name the object at fault.
pub fn prepare(input: &SceneInput) -> Result<PreparedScene, TwinError> {
    let drawable: Vec<&CityObject> = input
        .model
        .objects
        .iter()
        .filter(|o| o.shape != Shape::None)
        .collect();
    if drawable.is_empty() && input.regions.is_empty() {
        return Err(TwinError::Empty);
    }
    let object_points = drawable.iter().flat_map(|o| match &o.shape {
        Shape::Surfaces(s) => s
            .iter()
            .flat_map(|s| s.rings.iter().flatten().map(|p| [p[0], p[1]]))
            .collect::<Vec<_>>(),
        Shape::Extruded { polygons, .. } => polygons.iter().flatten().flatten().copied().collect(),
        Shape::None => Vec::new(),
    });
    let region_points = input
        .regions
        .iter()
        .flat_map(|r| r.polygons.iter().flatten().flatten().copied());
    let frame = LocalFrame::around(object_points.chain(region_points));
    let projector = frame.projector()?;
    // Absolute heights (CityJSON) are measured from the lowest point of the model.
    let ground_m = drawable
        .iter()
        .filter(|o| matches!(o.shape, Shape::Surfaces(_)))
        .filter_map(|o| o.height_range_m())
        .map(|r| r[0])
        .fold(f64::INFINITY, f64::min);
    let ground_m = if ground_m.is_finite() { ground_m } else { 0.0 };

    // Objects are projected and shaped in parallel, one PROJ context per thread, in order.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = drawable.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<LocalObject>, TwinError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = drawable
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let frame = &frame;
                scope.spawn(move || {
                    let projector = frame.projector()?;
                    let mut buffer = Vec::new();
                    part.iter()
                        .enumerate()
                        .map(|(k, o)| {
                            local_object(o, c * chunk + k, &projector, ground_m, &mut buffer)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a preparing thread panicked"))
            .collect()
    });
    let mut mesh_objects = Vec::with_capacity(drawable.len());
    let mut objects = Vec::with_capacity(drawable.len());
    let mut radius_m = 0.0f32;
    for part in parts {
        for (summary, mesh_object, r) in part? {
            radius_m = radius_m.max(r);
            objects.push(summary);
            mesh_objects.push(mesh_object);
        }
    }
    let building_count = objects.iter().filter(|o| is_building_kind(&o.kind)).count();
    let mut buffer: Vec<(f64, f64)> = Vec::new();
    // Regions: polygons in the local frame and a label point each.
    let mut region_polygons = Vec::new();
    let mut centroids = Vec::new();
    for r in &input.regions {
        let mut best: Option<(f64, [f64; 2])> = None;
        for rings in &r.polygons {
            let mut local_rings = Vec::with_capacity(rings.len());
            for ring in rings {
                buffer.clear();
                buffer.extend(ring.iter().map(|p| (p[0], p[1])));
                projector.to_local(&mut buffer)?;
                for (e, n) in &buffer {
                    radius_m = radius_m.max(e.abs() as f32).max(n.abs() as f32);
                }
                local_rings.push(
                    buffer
                        .iter()
                        .map(|(e, n)| [*e as f32, *n as f32])
                        .collect::<Vec<_>>(),
                );
            }
            let area = cim_ring_area(&local_rings[0]);
            if best.is_none_or(|(a, _)| area.abs() > a) {
                best = Some((area.abs(), centroid_f32(&local_rings[0])));
            }
            region_polygons.push(LocalRegion {
                code: r.code.clone(),
                name: r.name.clone(),
                rings: local_rings,
            });
        }
        if let Some((_, c)) = best {
            centroids.push((r.code.clone(), r.name.clone(), [c[0] as f32, c[1] as f32]));
        }
    }
    let tile_size_m = (radius_m / 4.0).max(250.0);
    let tiles = mesh::tiles(&mesh_objects, objects.len(), tile_size_m);
    if tiles.is_empty() && region_polygons.is_empty() {
        return Err(TwinError::Empty);
    }
    // Each tile's impostor (its far level), baked from its roofs, with the typical wall of
    // its buildings (other objects, such as roads, have none worth drawing).
    let impostors: Vec<Impostor> = tiles
        .iter()
        .map(|t| {
            let mut seen = std::collections::HashSet::new();
            let mut walls_m: Vec<f32> = t
                .object_index
                .iter()
                .filter(|&&i| seen.insert(i))
                .filter_map(|&i| objects.get(i as usize))
                .filter(|o| is_building_kind(&o.kind))
                .map(|o| o.height_range_m[1] - o.height_range_m[0])
                .collect();
            Impostor::bake(&mesh::roofs(t), &mut walls_m).unwrap_or_default()
        })
        .collect();
    let mut scene = PreparedScene {
        key: input.key.clone(),
        frame,
        tiles,
        impostors,
        objects,
        region_polygons,
        region_centroids: centroids,
        radius_m: radius_m.max(50.0),
        building_count,
        colour_table: Vec::new(),
        colour_rows: 1,
        choropleth: None,
        columns: None,
        labels: Vec::new(),
        legend: None,
        overlay: None,
        values: HashMap::new(),
    };
    scene.set_overlay(input.overlay.as_ref());
    Ok(scene)
}

/// An object in the local frame: what picking knows, its mesh input and its extent.
type LocalObject = (ObjectSummary, mesh::MeshObject, f32);

/// Projects one object into the local frame; heights of absolute (CityJSON) geometry are
/// taken from `ground_m`.
fn local_object(
    o: &CityObject,
    index: usize,
    projector: &frame::LocalProjector,
    ground_m: f64,
    buffer: &mut Vec<(f64, f64)>,
) -> Result<LocalObject, TwinError> {
    let bad = |message: String| TwinError::BadObject {
        id: o.id.clone(),
        message,
    };
    let anchor = o
        .anchor_lon_lat()
        .ok_or_else(|| bad("has no footprint".into()))?;
    let anchor_en = projector.point(anchor)?;
    let shape = match &o.shape {
        Shape::Surfaces(surfaces) => {
            buffer.clear();
            buffer.extend(
                surfaces
                    .iter()
                    .flat_map(|s| s.rings.iter().flatten().map(|p| (p[0], p[1]))),
            );
            projector.to_local(buffer)?;
            let mut it = buffer.iter();
            let local = surfaces
                .iter()
                .map(|s| {
                    let rings = s
                        .rings
                        .iter()
                        .map(|r| {
                            r.iter()
                                .map(|p| {
                                    let (e, n) = it.next().expect("one point per vertex");
                                    [*e as f32, *n as f32, (p[2] - ground_m) as f32]
                                })
                                .collect()
                        })
                        .collect();
                    (rings, s.kind)
                })
                .collect();
            mesh::LocalShape::Surfaces(local)
        }
        Shape::Extruded {
            polygons,
            base_m,
            top_m,
        } => {
            buffer.clear();
            buffer.extend(polygons.iter().flatten().flatten().map(|p| (p[0], p[1])));
            projector.to_local(buffer)?;
            let mut it = buffer.iter();
            let local = polygons
                .iter()
                .map(|rings| {
                    rings
                        .iter()
                        .map(|r| {
                            r.iter()
                                .map(|_| {
                                    let (e, n) = it.next().expect("one point per vertex");
                                    [*e as f32, *n as f32]
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect();
            if !(top_m.is_finite() && *top_m > *base_m) {
                return Err(bad(format!("height {top_m} m is not above {base_m} m")));
            }
            mesh::LocalShape::Extruded {
                polygons: local,
                base_m: *base_m as f32,
                top_m: *top_m as f32,
            }
        }
        Shape::None => unreachable!("filtered above"),
    };
    let mut radius_m = 0.0f32;
    for (e, n) in &*buffer {
        radius_m = radius_m.max(e.abs() as f32).max(n.abs() as f32);
    }
    let heights = o.height_range_m().unwrap_or([0.0, 0.0]);
    let ground = if matches!(o.shape, Shape::Surfaces(_)) {
        ground_m
    } else {
        0.0
    };
    let summary = ObjectSummary {
        id: o.id.clone(),
        kind: o.kind.clone(),
        region: if o.is_building() {
            o.region.clone()
        } else {
            None
        },
        height_range_m: [(heights[0] - ground) as f32, (heights[1] - ground) as f32],
        attributes: o
            .attributes
            .iter()
            .take(SUMMARY_ATTRIBUTES)
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
    };
    let mesh_object = mesh::MeshObject {
        index: index as u32,
        anchor_en_m: anchor_en,
        shape,
        flat: !o.is_building(),
    };
    Ok((summary, mesh_object, radius_m))
}

/// A local ring in f64, for the area and centroid arithmetic `cim` does in lon/lat.
fn widen(ring: &[[f32; 2]]) -> Vec<[f64; 2]> {
    ring.iter().map(|p| [p[0] as f64, p[1] as f64]).collect()
}

fn cim_ring_area(ring: &[[f32; 2]]) -> f64 {
    cim::ring_area(&widen(ring))
}

fn centroid_f32(ring: &[[f32; 2]]) -> [f64; 2] {
    cim::polygon_centroid(&widen(ring))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_back_to_the_nearest_ancestor() {
        let values = HashMap::from([
            ("320102".to_string(), 0.5),
            ("320102002001-003".to_string(), 0.9),
        ]);
        assert_eq!(value_for(&values, "320102002001-003"), Some(0.9));
        assert_eq!(value_for(&values, "320102002001-004"), Some(0.5));
        assert_eq!(value_for(&values, "320102002"), Some(0.5));
        assert_eq!(value_for(&values, "320104"), None);
    }
}
