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
pub mod join;
pub mod mesh;
pub mod pick;
pub mod ramp;
mod render;

pub use cim::{CityModel, CityObject, LoadOptions, RegionShape, Shape};
pub use frame::LocalFrame;
pub use mesh::MeshData;
pub use pick::{Pick, pick};
pub use ramp::{Legend, LegendEntry, Ramp};
pub use render::Renderer;
pub use scenes::OrbitCamera;

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
}

impl Default for OverlayLayers {
    fn default() -> Self {
        OverlayLayers {
            buildings: true,
            choropleth: false,
            columns: false,
            labels: false,
        }
    }
}

/// Indicator values bound to a scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub spec: OverlaySpec,
    /// Value per region code (division code or grid cell id).
    pub values: HashMap<String, f64>,
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

/// A scene ready to render: meshes in the local frame, colour table, overlays, legend.
#[derive(Clone, Debug)]
pub struct PreparedScene {
    pub key: String,
    pub frame: LocalFrame,
    /// Merged object meshes, one per tile.
    pub tiles: Vec<MeshData>,
    /// Object ids by index (the `object_index` of tile vertices).
    pub object_ids: Vec<String>,
    /// Each object's region and value, by index, for picking.
    pub object_regions: Vec<Option<String>>,
    /// sRGB colour per object, [`mesh::COLOUR_TABLE_WIDTH`] per row, `colour_rows` rows.
    pub colour_table: Vec<[u8; 4]>,
    pub colour_rows: u32,
    pub choropleth: Option<MeshData>,
    pub columns: Option<MeshData>,
    pub labels: Vec<Label>,
    /// Region polygons in the local frame (code, name, rings), for picking.
    pub region_polygons: Vec<(String, String, Vec<Vec<[f32; 2]>>)>,
    pub legend: Option<Legend>,
    /// What the colours show (indicator, unit, period).
    pub overlay: Option<OverlaySpec>,
    /// Half the larger side of the content's bounding box, metres.
    pub radius_m: f32,
    pub building_count: usize,
}

impl PreparedScene {
    /// Recolours objects without touching geometry: the colour table for other values.
    pub fn recolour(&mut self, values: &HashMap<String, f64>) {
        let Some(legend) = &self.legend else { return };
        for (i, region) in self.object_regions.iter().enumerate() {
            if self.colour_table[i][3] == 0 {
                continue;
            }
            if let Some(r) = region {
                self.colour_table[i] = srgb8(legend.colour_of(value_for(values, r)));
            }
        }
    }
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

    let legend = input
        .overlay
        .as_ref()
        .map(|o| Ramp::new(o.spec.higher_is_better).legend(&o.spec, o.values.values().copied()));
    let colour_buildings = input.overlay.as_ref().is_some_and(|o| o.layers.buildings);

    let mut mesh_objects = Vec::with_capacity(drawable.len());
    let mut object_ids = Vec::with_capacity(drawable.len());
    let mut object_regions = Vec::with_capacity(drawable.len());
    let mut colour_table = Vec::with_capacity(drawable.len());
    let mut radius_m = 0.0f32;
    let mut building_count = 0;
    let mut buffer: Vec<(f64, f64)> = Vec::new();
    for (index, o) in drawable.iter().enumerate() {
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
                projector.to_local(&mut buffer)?;
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
                projector.to_local(&mut buffer)?;
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
        for (e, n) in &buffer {
            radius_m = radius_m.max(e.abs() as f32).max(n.abs() as f32);
        }
        let colour = if o.is_building() {
            building_count += 1;
            match (&legend, colour_buildings, &input.overlay) {
                (Some(l), true, Some(ov)) => {
                    srgb8(l.colour_of(o.region.as_deref().and_then(|r| value_for(&ov.values, r))))
                }
                _ => PLAIN_BUILDING,
            }
        } else {
            type_colour(&o.kind)
        };
        colour_table.push(colour);
        object_ids.push(o.id.clone());
        object_regions.push(if o.is_building() {
            o.region.clone()
        } else {
            None
        });
        mesh_objects.push(mesh::MeshObject {
            index: index as u32,
            anchor_en_m: anchor_en,
            shape,
            flat: !o.is_building(),
        });
    }
    let colour_rows = mesh::colour_table_rows(colour_table.len());
    colour_table.resize(
        (colour_rows * mesh::COLOUR_TABLE_WIDTH) as usize,
        [0, 0, 0, 0],
    );

    // Regions: choropleth fill, columns and labels at their centroids.
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
            region_polygons.push((r, local_rings));
        }
        if let Some((_, c)) = best {
            centroids.push((r, [c[0] as f32, c[1] as f32]));
        }
    }
    let (mut choropleth, mut columns, mut labels) = (None, None, Vec::new());
    if let (Some(ov), Some(legend)) = (&input.overlay, &legend) {
        let value = |code: &str| value_for(&ov.values, code);
        if ov.layers.choropleth && !region_polygons.is_empty() {
            let fills: Vec<(Vec<Vec<[f32; 2]>>, [f32; 4])> = region_polygons
                .iter()
                .map(|(r, rings)| {
                    let c = mesh::linear(legend.colour_of(value(&r.code)));
                    // Under coloured buildings the fill is dimmed so the buildings stand out.
                    let k = if ov.layers.buildings { 0.35 } else { 1.0 };
                    (rings.clone(), [c[0] * k, c[1] * k, c[2] * k, c[3]])
                })
                .collect();
            choropleth = Some(mesh::flat_polygons(&fills, 0.0));
        }
        let max = centroids
            .iter()
            .filter_map(|(r, _)| value(&r.code))
            .fold(0.0f64, |m, v| m.max(v.abs()));
        if ov.layers.columns && max > 0.0 {
            let half = (radius_m * 0.012).max(2.0);
            let tallest = radius_m * 0.35;
            let bars: Vec<_> = centroids
                .iter()
                .filter_map(|(r, c)| {
                    let v = value(&r.code)?;
                    let h = (v.abs() / max) as f32 * tallest;
                    Some((
                        *c,
                        half,
                        h.max(half * 0.2),
                        mesh::linear(legend.colour_of(Some(v))),
                    ))
                })
                .collect();
            columns = Some(mesh::columns(&bars));
        }
        if ov.layers.labels {
            for (r, c) in &centroids {
                let text = match value(&r.code) {
                    Some(v) => format!("{} {}", r.name, ramp::format_value(v, &ov.spec.unit)),
                    None => r.name.clone(),
                };
                labels.push(Label {
                    text,
                    position_enu_m: [c[0], c[1], 0.0],
                });
            }
        }
    }
    let tile_size_m = (radius_m / 4.0).max(250.0);
    let tiles = mesh::tiles(&mesh_objects, object_ids.len(), tile_size_m);
    if tiles.is_empty() && choropleth.is_none() && columns.is_none() {
        return Err(TwinError::Empty);
    }
    Ok(PreparedScene {
        key: input.key.clone(),
        frame,
        tiles,
        object_ids,
        object_regions,
        colour_table,
        colour_rows,
        choropleth,
        columns,
        labels,
        region_polygons: region_polygons
            .into_iter()
            .map(|(r, rings)| (r.code.clone(), r.name.clone(), rings))
            .collect(),
        legend,
        overlay: input.overlay.as_ref().map(|o| o.spec.clone()),
        radius_m: radius_m.max(50.0),
        building_count,
    })
}

fn cim_ring_area(ring: &[[f32; 2]]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] as f64 * b[1] as f64 - b[0] as f64 * a[1] as f64
        })
        .sum::<f64>()
        / 2.0
}

fn centroid_f32(ring: &[[f32; 2]]) -> [f64; 2] {
    let a = cim_ring_area(ring);
    let n = ring.len();
    if a.abs() < 1e-9 {
        let s = ring
            .iter()
            .fold([0.0, 0.0], |s, p| [s[0] + p[0] as f64, s[1] + p[1] as f64]);
        return [s[0] / n as f64, s[1] / n as f64];
    }
    let (mut cx, mut cy) = (0.0, 0.0);
    for i in 0..n {
        let (p, q) = (ring[i].map(f64::from), ring[(i + 1) % n].map(f64::from));
        let cross = p[0] * q[1] - q[0] * p[1];
        cx += (p[0] + q[0]) * cross;
        cy += (p[1] + q[1]) * cross;
    }
    [cx / (6.0 * a), cy / (6.0 * a)]
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
