//! 3D Tiles 1.1 of a prepared scene, for clients that render themselves (CesiumJS, deck.gl,
//! iTwin): one binary glTF (GLB) per tile of the scene's meshes, each building a feature
//! (`EXT_mesh_features`, attribute `_FEATURE_ID_0`) with a row in the tile's property table
//! (`EXT_structural_metadata`: id, height, region and the value the scene's overlay shows),
//! and a `tileset.json` whose root places the tiles on the globe.
//!
//! Placement. The scene's meshes are in its local transverse-Mercator frame (x east, y up,
//! z south, as Bevy draws them). Each vertex is taken back to WGS84 longitude and latitude by
//! PROJ, then to Earth-centred Earth-fixed (ECEF) metres, then to the east-north-up (ENU)
//! plane at the scene's origin; the root's `transform` is that ENU frame's matrix. So the
//! tiles lie where the buildings stand on the ellipsoid (the Earth's curvature included), and
//! glTF's y-up axis is the ENU up axis, as 3D Tiles expects of glTF content. Heights are above
//! the ellipsoid at the scene's ground (the scene has no terrain).
//!
//! The values are those of the prepared scene, which is prepared for one audience: a value
//! withheld from that audience was never in it and is written as the property's `noData`.
//! The writer is hand-made (about 200 lines of glTF JSON and buffer layout): the glTF crates
//! read and write core glTF, but neither extension.

use crate::{PreparedScene, TwinError, mesh::MeshData};
use serde_json::{Value, json};

/// The `noData` of the value property: a withheld or missing value.
pub const NO_VALUE: f64 = f64::MIN;

const WGS84_A_M: f64 = 6_378_137.0;
const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// ECEF metres of a WGS84 longitude, latitude (degrees) and height above the ellipsoid.
pub fn ecef_m(lon_deg: f64, lat_deg: f64, height_m: f64) -> [f64; 3] {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    let n = WGS84_A_M / (1.0 - e2 * lat.sin().powi(2)).sqrt();
    [
        (n + height_m) * lat.cos() * lon.cos(),
        (n + height_m) * lat.cos() * lon.sin(),
        (n * (1.0 - e2) + height_m) * lat.sin(),
    ]
}

/// The ENU axes (east, north, up) at a longitude and latitude, as ECEF unit vectors.
fn enu_axes(lon_deg: f64, lat_deg: f64) -> [[f64; 3]; 3] {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    [
        [-lon.sin(), lon.cos(), 0.0],
        [-lat.sin() * lon.cos(), -lat.sin() * lon.sin(), lat.cos()],
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()],
    ]
}

/// The column-major 4x4 matrix from the ENU frame at the origin to ECEF (the root transform).
pub fn ecef_from_enu(origin_lon_lat: [f64; 2]) -> [f64; 16] {
    let [e, n, u] = enu_axes(origin_lon_lat[0], origin_lon_lat[1]);
    let o = ecef_m(origin_lon_lat[0], origin_lon_lat[1], 0.0);
    [
        e[0], e[1], e[2], 0.0, n[0], n[1], n[2], 0.0, u[0], u[1], u[2], 0.0, o[0], o[1], o[2], 1.0,
    ]
}

/// Takes scene-frame positions (east, up, -north) to ENU-at-origin, still as glTF's
/// (east, up, -north).
struct Placer {
    to_lon_lat: crate::frame::LocalProjector,
    origin: [f64; 3],
    axes: [[f64; 3]; 3],
}

impl Placer {
    fn new(scene: &PreparedScene) -> Result<Placer, TwinError> {
        let [lon, lat] = scene.frame.origin_lon_lat;
        Ok(Placer {
            to_lon_lat: scene.frame.unprojector()?,
            origin: ecef_m(lon, lat, 0.0),
            axes: enu_axes(lon, lat),
        })
    }

    fn place(&self, positions: &[[f32; 3]]) -> Result<Vec<[f32; 3]>, TwinError> {
        let mut en: Vec<(f64, f64)> = positions
            .iter()
            .map(|p| (p[0] as f64, -(p[2] as f64)))
            .collect();
        self.to_lon_lat.convert(&mut en)?;
        Ok(en
            .iter()
            .zip(positions)
            .map(|(&(lon, lat), p)| {
                let x = ecef_m(lon, lat, p[1] as f64);
                let d = [
                    x[0] - self.origin[0],
                    x[1] - self.origin[1],
                    x[2] - self.origin[2],
                ];
                let dot = |a: [f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
                let [e, n, u] = [dot(self.axes[0]), dot(self.axes[1]), dot(self.axes[2])];
                [e as f32, u as f32, -n as f32]
            })
            .collect())
    }
}

/// One feature of a tile: a row of its property table.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: String,
    pub height_m: f64,
    pub region: Option<String>,
    /// `None` when withheld from the audience or missing.
    pub value: Option<f64>,
}

/// A tileset: its `tileset.json` and the GLB of each tile, named as the JSON names them.
pub struct Tileset {
    pub json: Value,
    pub tiles: Vec<(String, Vec<u8>)>,
}

/// The file name of tile `index`.
pub fn tile_name(index: usize) -> String {
    format!("t{index}.glb")
}

/// The tile index a file name names (`t3.glb` → 3), for the routes.
pub fn parse_tile_name(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('t')?.strip_suffix(".glb")?;
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The tiles that have geometry, numbered densely (`t0.glb` is the first of them).
fn drawn(scene: &PreparedScene) -> impl Iterator<Item = (usize, &MeshData)> {
    scene
        .tiles
        .iter()
        .filter(|m| !m.indices.is_empty())
        .enumerate()
}

/// The whole tileset (what `databrain tiles` writes).
pub fn tileset(scene: &PreparedScene) -> Result<Tileset, TwinError> {
    let placer = Placer::new(scene)?;
    let mut children = Vec::new();
    let mut tiles = Vec::new();
    for (index, mesh) in drawn(scene) {
        let (glb, bounds) = tile_glb_placed(scene, mesh, &placer)?;
        children.push(child(index, bounds));
        tiles.push((tile_name(index), glb));
    }
    Ok(Tileset {
        json: tileset_json(scene, children),
        tiles,
    })
}

/// `tileset.json` alone: bounds from each tile's placed vertices.
pub fn tileset_only(scene: &PreparedScene) -> Result<Value, TwinError> {
    let placer = Placer::new(scene)?;
    let mut children = Vec::new();
    for (index, mesh) in drawn(scene) {
        let placed = placer.place(&mesh.positions)?;
        children.push(child(index, bounds_of(&placed)));
    }
    Ok(tileset_json(scene, children))
}

/// One tile's GLB, `None` for a tile the tileset does not name.
pub fn tile_glb(scene: &PreparedScene, index: usize) -> Result<Option<Vec<u8>>, TwinError> {
    let Some((_, mesh)) = drawn(scene).nth(index) else {
        return Ok(None);
    };
    let placer = Placer::new(scene)?;
    Ok(Some(tile_glb_placed(scene, mesh, &placer)?.0))
}

fn bounds_of(positions: &[[f32; 3]]) -> [[f64; 3]; 2] {
    let mut b = [[f64::INFINITY; 3], [f64::NEG_INFINITY; 3]];
    for p in positions {
        for k in 0..3 {
            b[0][k] = b[0][k].min(p[k] as f64);
            b[1][k] = b[1][k].max(p[k] as f64);
        }
    }
    b
}

/// A bounding box in the tileset's (z-up) ENU frame from glTF (y-up) bounds.
fn enu_box(b: [[f64; 3]; 2]) -> Value {
    // glTF (x, y, z) = (e, u, -n).
    let (e0, e1) = (b[0][0], b[1][0]);
    let (u0, u1) = (b[0][1], b[1][1]);
    let (n0, n1) = (-b[1][2], -b[0][2]);
    // Half a metre of margin: float rounding of the placed vertices.
    let half = |lo: f64, hi: f64| (hi - lo) / 2.0 + 0.5;
    json!([
        (e0 + e1) / 2.0,
        (n0 + n1) / 2.0,
        (u0 + u1) / 2.0,
        half(e0, e1),
        0.0,
        0.0,
        0.0,
        half(n0, n1),
        0.0,
        0.0,
        0.0,
        half(u0, u1)
    ])
}

fn child(index: usize, bounds: [[f64; 3]; 2]) -> (Value, [[f64; 3]; 2]) {
    (
        json!({
            "boundingVolume": { "box": enu_box(bounds) },
            "geometricError": 0.0,
            "content": { "uri": tile_name(index) },
        }),
        bounds,
    )
}

fn tileset_json(scene: &PreparedScene, children: Vec<(Value, [[f64; 3]; 2])>) -> Value {
    let mut all = [[f64::INFINITY; 3], [f64::NEG_INFINITY; 3]];
    for (_, b) in &children {
        for k in 0..3 {
            all[0][k] = all[0][k].min(b[0][k]);
            all[1][k] = all[1][k].max(b[1][k]);
        }
    }
    if !all[0][0].is_finite() {
        all = [[0.0; 3], [0.0; 3]];
    }
    // The root has no content: its error only says when to open the tiles (always, once the
    // scene is on screen at all).
    let error_m = (2.0 * scene.radius_m as f64).max(100.0);
    json!({
        "asset": { "version": "1.1", "generator": "databrain" },
        "geometricError": error_m,
        "root": {
            "transform": ecef_from_enu(scene.frame.origin_lon_lat),
            "boundingVolume": { "box": enu_box(all) },
            "geometricError": error_m,
            "refine": "ADD",
            "children": children.into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
        },
    })
}

/// The features of a tile, in feature-id order, and each vertex's feature id.
fn features(scene: &PreparedScene, mesh: &MeshData) -> (Vec<Feature>, Vec<f32>) {
    let mut ids = std::collections::HashMap::new();
    let mut list = Vec::new();
    let vertex_ids = mesh
        .object_index
        .iter()
        .map(|&object| {
            *ids.entry(object).or_insert_with(|| {
                let o = scene.objects.get(object as usize);
                list.push(Feature {
                    id: o.map(|o| o.id.clone()).unwrap_or_default(),
                    height_m: o.map_or(0.0, |o| o.height_range_m[1] as f64),
                    region: o.and_then(|o| o.region.clone()),
                    value: scene.value_of_object(object as usize),
                });
                (list.len() - 1) as f32
            })
        })
        .collect();
    (list, vertex_ids)
}

/// A growing binary chunk: each part 8-byte aligned (as property tables require).
#[derive(Default)]
struct Bin {
    bytes: Vec<u8>,
    views: Vec<Value>,
}

impl Bin {
    fn push(&mut self, data: &[u8], target: Option<u32>) -> usize {
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        let mut view =
            json!({ "buffer": 0, "byteOffset": self.bytes.len(), "byteLength": data.len() });
        if let Some(t) = target {
            view["target"] = t.into();
        }
        self.bytes.extend_from_slice(data);
        self.views.push(view);
        self.views.len() - 1
    }
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(f32::to_le_bytes).collect()
}

const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;
const FLOAT: u32 = 5126;
const UNSIGNED_BYTE: u32 = 5121;
const UNSIGNED_INT: u32 = 5125;

fn tile_glb_placed(
    scene: &PreparedScene,
    mesh: &MeshData,
    placer: &Placer,
) -> Result<(Vec<u8>, [[f64; 3]; 2]), TwinError> {
    let positions = placer.place(&mesh.positions)?;
    let bounds = bounds_of(&positions);
    let (features, feature_ids) = features(scene, mesh);
    let mut bin = Bin::default();
    let position_view = bin.push(
        &f32_bytes(positions.iter().flatten().copied()),
        Some(ARRAY_BUFFER),
    );
    let normal_view = bin.push(
        &f32_bytes(mesh.normals.iter().flatten().copied()),
        Some(ARRAY_BUFFER),
    );
    // Vertex colour: the object's colour (linear) times the vertex's shade, as the renderer.
    let colours: Vec<u8> = mesh
        .object_index
        .iter()
        .zip(&mesh.shades_linear)
        .flat_map(|(&object, shade)| {
            let srgb = scene
                .colour_table
                .get(object as usize)
                .copied()
                .unwrap_or([200, 200, 200, 255]);
            let linear = crate::mesh::linear(srgb.map(|c| c as f32 / 255.0));
            [
                (linear[0] * shade[0]).clamp(0.0, 1.0),
                (linear[1] * shade[1]).clamp(0.0, 1.0),
                (linear[2] * shade[2]).clamp(0.0, 1.0),
                1.0,
            ]
            .map(|c| (c * 255.0).round() as u8)
        })
        .collect();
    let colour_view = bin.push(&colours, Some(ARRAY_BUFFER));
    let feature_view = bin.push(&f32_bytes(feature_ids.iter().copied()), Some(ARRAY_BUFFER));
    let index_bytes: Vec<u8> = mesh.indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    let index_view = bin.push(&index_bytes, Some(ELEMENT_ARRAY_BUFFER));
    // The property table: strings as UTF-8 with UINT32 offsets, numbers as FLOAT64.
    let strings = |bin: &mut Bin, values: Vec<&str>| {
        let mut data = Vec::new();
        let mut offsets = vec![0u32];
        for v in values {
            data.extend_from_slice(v.as_bytes());
            offsets.push(data.len() as u32);
        }
        let values = bin.push(&data, None);
        let offsets = bin.push(
            &offsets
                .iter()
                .flat_map(|o| o.to_le_bytes())
                .collect::<Vec<_>>(),
            None,
        );
        json!({ "values": values, "stringOffsets": offsets })
    };
    let numbers = |bin: &mut Bin, values: Vec<f64>| {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        json!({ "values": bin.push(&data, None) })
    };
    let id_column = strings(&mut bin, features.iter().map(|f| f.id.as_str()).collect());
    let region_column = strings(
        &mut bin,
        features
            .iter()
            .map(|f| f.region.as_deref().unwrap_or(""))
            .collect(),
    );
    let height_column = numbers(&mut bin, features.iter().map(|f| f.height_m).collect());
    let value_column = numbers(
        &mut bin,
        features
            .iter()
            .map(|f| f.value.unwrap_or(NO_VALUE))
            .collect(),
    );
    let n = positions.len();
    let b = bounds;
    let value_description = scene.overlay.as_ref().map_or_else(
        || "no indicator is shown".to_owned(),
        |o| format!("{} ({}), {}", o.title, o.unit, o.period),
    );
    let gltf = json!({
        "asset": { "version": "2.0", "generator": "databrain" },
        "extensionsUsed": ["EXT_mesh_features", "EXT_structural_metadata"],
        "scene": 0,
        "scenes": [{ "nodes": [0] }],
        "nodes": [{ "mesh": 0 }],
        "materials": [{
            "pbrMetallicRoughness": { "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 1.0 },
            "doubleSided": true,
        }],
        "meshes": [{ "primitives": [{
            "attributes": { "POSITION": 0, "NORMAL": 1, "COLOR_0": 2, "_FEATURE_ID_0": 3 },
            "indices": 4,
            "material": 0,
            "mode": 4,
            "extensions": { "EXT_mesh_features": { "featureIds": [
                { "featureCount": features.len(), "attribute": 0, "propertyTable": 0 }
            ] } },
        }] }],
        "accessors": [
            { "bufferView": position_view, "componentType": FLOAT, "count": n, "type": "VEC3",
              "min": [b[0][0], b[0][1], b[0][2]], "max": [b[1][0], b[1][1], b[1][2]] },
            { "bufferView": normal_view, "componentType": FLOAT, "count": n, "type": "VEC3" },
            { "bufferView": colour_view, "componentType": UNSIGNED_BYTE, "normalized": true, "count": n, "type": "VEC4" },
            { "bufferView": feature_view, "componentType": FLOAT, "count": n, "type": "SCALAR" },
            { "bufferView": index_view, "componentType": UNSIGNED_INT, "count": mesh.indices.len(), "type": "SCALAR" },
        ],
        "bufferViews": bin.views,
        "buffers": [{ "byteLength": bin.bytes.len() }],
        "extensions": { "EXT_structural_metadata": {
            "schema": { "id": "databrain", "classes": { "building": {
                "name": "城市对象 city object",
                "properties": {
                    "id": { "type": "STRING", "description": "the CityJSON object id" },
                    "height_m": { "type": "SCALAR", "componentType": "FLOAT64", "description": "top above the scene's ground, metres" },
                    "region": { "type": "STRING", "description": "the 12-digit division (or grid cell) it stands in; empty when none" },
                    "value": { "type": "SCALAR", "componentType": "FLOAT64", "noData": NO_VALUE,
                               "description": value_description },
                },
            } } },
            "propertyTables": [{
                "class": "building",
                "count": features.len(),
                "properties": {
                    "id": id_column,
                    "height_m": height_column,
                    "region": region_column,
                    "value": value_column,
                },
            }],
        } },
    });
    Ok((glb(&gltf, bin.bytes), bounds))
}

/// A GLB container: the JSON chunk (space-padded) and the binary chunk (zero-padded).
fn glb(gltf: &Value, mut bin: Vec<u8>) -> Vec<u8> {
    let mut json = gltf.to_string().into_bytes();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecef_and_enu_agree_with_known_points() {
        // The equator at the prime meridian, and the north pole.
        let p = ecef_m(0.0, 0.0, 0.0);
        assert!((p[0] - WGS84_A_M).abs() < 1e-6 && p[1].abs() < 1e-6 && p[2].abs() < 1e-6);
        let pole = ecef_m(0.0, 90.0, 0.0);
        assert!((pole[2] - 6_356_752.314_245).abs() < 1e-3, "{pole:?}");
        // The ENU axes are orthonormal; up points away from the Earth's centre.
        let axes = enu_axes(118.8, 32.0);
        for (i, a) in axes.iter().enumerate() {
            for (j, b) in axes.iter().enumerate() {
                let dot: f64 = (0..3).map(|k| a[k] * b[k]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        let o = ecef_m(118.8, 32.0, 0.0);
        let up = ecef_m(118.8, 32.0, 100.0);
        let d: Vec<f64> = (0..3).map(|k| (up[k] - o[k]) / 100.0).collect();
        assert!((0..3).all(|k| (d[k] - axes[2][k]).abs() < 1e-9));
        assert_eq!(parse_tile_name("t12.glb"), Some(12));
        for bad in [
            "t.glb",
            "12.glb",
            "t1.glb.x",
            "t-1.glb",
            "t1234567.glb",
            "../t1.glb",
        ] {
            assert_eq!(parse_tile_name(bad), None, "{bad}");
        }
    }
}
