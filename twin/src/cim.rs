//! CIM loading: CityJSON 1.1 and 2.0, CityJSONSeq, GeoJSON building footprints and region
//! boundaries, all read into one [`CityModel`] in WGS84 longitude/latitude (f64) with heights
//! in metres.
//!
//! - CityJSON: integer vertices with the `transform` (required since 1.1), shared vertex lists,
//!   the geometry of the preferred LoD (or the nearest one below it, else the lowest above it,
//!   else the highest when none is preferred), MultiSurface / CompositeSurface / Solid /
//!   MultiSolid / CompositeSolid, roof/wall/ground semantics, BuildingPart children under their
//!   Building. The CRS is `metadata.referenceSystem` unless the caller overrides it.
//! - CityJSONSeq (`.city.jsonl`): the first line carries `transform` and metadata, each further
//!   line one `CityJSONFeature` with its own vertices. Read line by line (streamed).
//! - GeoJSON footprints: Polygon / MultiPolygon features with `height`, `min_height` or levels
//!   (`building:levels`, `levels`; [`METRES_PER_LEVEL`] each); without any of them (or with
//!   0, OpenStreetMap's "unknown") a building is [`DEFAULT_HEIGHT_M`] tall above its
//!   `min_height`. A height at or below `min_height` is an error. Features sharing an id (buildings clipped at tile edges) become
//!   one building with several polygons. GeoJSON is WGS84 unless overridden (e.g. `GCJ-02`).
//!   GeoJSON files are read into memory as text and parsed feature by feature, without a DOM.
//!
//! Bad input is all-or-nothing: any bad object (unclosed or self-intersecting ring, non-finite
//! coordinate, vertex index out of range) fails the whole file, and the error lists every bad
//! object by id (the first [`MAX_LISTED_PROBLEMS`], then a count). Nothing is half-loaded.
//! `NaN` / `Infinity` literals, which some writers emit although JSON has none, are read as
//! bad coordinates of their object rather than as a syntax error.

use crate::crs::{Crs, CrsError, DenseGrid, ToWgs84};
use geo::Validation;
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Height given to a footprint without height or levels, metres.
pub const DEFAULT_HEIGHT_M: f64 = 10.0;
/// Storey height used to turn `building:levels` into metres.
pub const METRES_PER_LEVEL: f64 = 3.0;
/// How many bad objects an error lists by id.
pub const MAX_LISTED_PROBLEMS: usize = 20;

/// What a surface of a CityJSON geometry is, from its semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SurfaceKind {
    Roof,
    Wall,
    Ground,
    Other,
}

/// One planar polygon: the outer ring first, then holes; each ring open (no repeated vertex)
/// as (lon, lat, height_m).
#[derive(Clone, Debug, PartialEq)]
pub struct Surface {
    pub rings: Vec<Vec<[f64; 3]>>,
    pub kind: SurfaceKind,
}

/// A polygon in lon/lat: outer ring first, then holes; rings open.
pub type PolygonLonLat = Vec<Vec<[f64; 2]>>;

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Boundary surfaces (CityJSON), absolute heights as in the file.
    Surfaces(Vec<Surface>),
    /// Footprint polygons extruded from `base_m` to `top_m` above the ground.
    Extruded {
        polygons: Vec<PolygonLonLat>,
        base_m: f64,
        top_m: f64,
    },
    /// No drawable geometry (e.g. a Building whose geometry is all in its BuildingParts).
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CityObject {
    /// The id in the source file.
    pub id: String,
    /// The CityJSON type (`Building`, `BuildingPart`, `Road`, ...); GeoJSON footprints are
    /// `Building` or, with a `root_id`/`building` parent, `BuildingPart`.
    pub kind: String,
    /// The parent object's id (BuildingPart → Building).
    pub parent: Option<String>,
    /// The LoD of the chosen geometry.
    pub lod: Option<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub shape: Shape,
    /// The region (grid cell or division code) the object stands in, once joined.
    pub region: Option<String>,
}

impl CityObject {
    pub fn is_building(&self) -> bool {
        self.kind == "Building" || self.kind == "BuildingPart"
    }

    /// A point inside or at the centre of the object's footprint, lon/lat; `None` without
    /// geometry.
    pub fn anchor_lon_lat(&self) -> Option<[f64; 2]> {
        let mut sum = [0.0, 0.0];
        let mut n = 0usize;
        match &self.shape {
            Shape::Surfaces(surfaces) => {
                for s in surfaces {
                    for p in s.rings.first().into_iter().flatten() {
                        sum = [sum[0] + p[0], sum[1] + p[1]];
                        n += 1;
                    }
                }
            }
            Shape::Extruded { polygons, .. } => {
                // The largest polygon's centroid keeps clipped pieces on their main part.
                let best = polygons
                    .iter()
                    .max_by(|a, b| ring_area(&a[0]).abs().total_cmp(&ring_area(&b[0]).abs()))?;
                let c = polygon_centroid(&best[0]);
                return Some(c);
            }
            Shape::None => {}
        }
        (n > 0).then(|| [sum[0] / n as f64, sum[1] / n as f64])
    }

    /// Lowest and highest height of the geometry, metres (ground-relative for extrusions).
    pub fn height_range_m(&self) -> Option<[f64; 2]> {
        match &self.shape {
            Shape::Surfaces(surfaces) => {
                let mut r = [f64::INFINITY, f64::NEG_INFINITY];
                for p in surfaces.iter().flat_map(|s| s.rings.iter().flatten()) {
                    r = [r[0].min(p[2]), r[1].max(p[2])];
                }
                r[0].is_finite().then_some(r)
            }
            Shape::Extruded { base_m, top_m, .. } => Some([*base_m, *top_m]),
            Shape::None => None,
        }
    }
}

/// Signed area (shoelace) of an open ring, in its units squared.
pub(crate) fn ring_area(ring: &[[f64; 2]]) -> f64 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f64>()
        / 2.0
}

/// Area centroid of an open ring (the vertex mean for a degenerate one).
pub(crate) fn polygon_centroid(ring: &[[f64; 2]]) -> [f64; 2] {
    let a = ring_area(ring);
    let n = ring.len();
    if a.abs() < 1e-18 {
        let s = ring
            .iter()
            .fold([0.0, 0.0], |s, p| [s[0] + p[0], s[1] + p[1]]);
        return [s[0] / n as f64, s[1] / n as f64];
    }
    let (mut cx, mut cy) = (0.0, 0.0);
    for i in 0..n {
        let (p, q) = (ring[i], ring[(i + 1) % n]);
        let cross = p[0] * q[1] - q[0] * p[1];
        cx += (p[0] + q[0]) * cross;
        cy += (p[1] + q[1]) * cross;
    }
    [cx / (6.0 * a), cy / (6.0 * a)]
}

/// A region boundary (city, county, district, grid cell) in lon/lat.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionShape {
    /// Statistics division code (`3201`, `320102`) or grid-cell id.
    pub code: String,
    pub name: String,
    pub polygons: Vec<PolygonLonLat>,
}

/// Everything loaded from one or more CIM files, in WGS84.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CityModel {
    pub objects: Vec<CityObject>,
    /// The CRS of each file read, for provenance.
    pub sources: Vec<(String, Crs)>,
}

impl CityModel {
    pub fn buildings(&self) -> impl Iterator<Item = &CityObject> {
        self.objects.iter().filter(|o| o.is_building())
    }

    /// Appends another model's objects.
    pub fn extend(&mut self, other: CityModel) {
        self.objects.extend(other.objects);
        self.sources.extend(other.sources);
    }
}

/// How to read a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Use this CRS whatever the file says (needed for files without one, e.g. GCJ-02 data).
    pub crs: Option<Crs>,
    /// The LoD to draw (`"1"`, `"2.2"`); the nearest lower one, else the lowest higher one, is
    /// taken where an object lacks it. `None` takes the highest.
    pub preferred_lod: Option<String>,
}

/// One bad object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectProblem {
    pub id: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CimError {
    #[error("cannot read the file: {source}, in {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed JSON: {message}, in {path}")]
    Json { path: PathBuf, message: String },
    #[error("{message}, in {path}")]
    Format { path: PathBuf, message: String },
    #[error(
        "no coordinate reference system: the file names none (CityJSON metadata.referenceSystem); give one explicitly, e.g. EPSG:7415, in {path}"
    )]
    MissingCrs { path: PathBuf },
    #[error("{source}, in {path}")]
    Crs { path: PathBuf, source: CrsError },
    #[error("{} (nothing was loaded), in {path}", describe_problems(.problems, *.total))]
    BadObjects {
        path: PathBuf,
        problems: Vec<ObjectProblem>,
        total: usize,
    },
}

fn describe_problems(problems: &[ObjectProblem], total: usize) -> String {
    let mut s = format!("{total} bad object{}: ", if total == 1 { "" } else { "s" });
    let listed: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.id, p.message))
        .collect();
    s.push_str(&listed.join("; "));
    if total > problems.len() {
        s.push_str(&format!("; and {} more", total - problems.len()));
    }
    s
}

/// Collects bad objects while a file is read.
#[derive(Default)]
struct Problems {
    listed: Vec<ObjectProblem>,
    total: usize,
}

impl Problems {
    fn add(&mut self, id: &str, message: String) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED_PROBLEMS {
            self.listed.push(ObjectProblem {
                id: id.to_owned(),
                message,
            });
        }
    }

    fn into_result(self, path: &Path) -> Result<(), CimError> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(CimError::BadObjects {
                path: path.to_owned(),
                problems: self.listed,
                total: self.total,
            })
        }
    }
}

/// Loads any supported file, telling the format from its name and content: `.jsonl` is
/// CityJSONSeq; JSON with `"type": "CityJSON"` is CityJSON; anything else is GeoJSON.
pub fn load_file(path: &Path, options: &LoadOptions) -> Result<CityModel, CimError> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
    if name.as_deref().is_some_and(|n| n.ends_with(".jsonl")) {
        return load_cityjson_seq(path, options);
    }
    let text = read_text(path)?;
    // GeoJSON has no "CityObjects"; CityJSON may put its "type" last, so look for that key.
    if text.contains("\"CityObjects\"") {
        parse_cityjson(&text, path, options)
    } else {
        parse_geojson_buildings(&text, path, options)
    }
}

fn read_text(path: &Path) -> Result<String, CimError> {
    std::fs::read_to_string(path).map_err(|source| CimError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Replaces the non-JSON literals `NaN`, `Infinity` and `-Infinity` outside strings by `null`,
/// so that they surface as bad coordinates of their object. Borrows when there are none.
fn sanitise_non_finite(text: &str) -> std::borrow::Cow<'_, str> {
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return std::borrow::Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t.as_bytes()));
        if let Some(t) = token {
            out.push_str(&text[copied..i]);
            out.push_str("null");
            i += t.len();
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    std::borrow::Cow::Owned(out)
}

fn json_error(path: &Path, e: serde_json::Error) -> CimError {
    CimError::Json {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn crs_error(path: &Path, source: CrsError) -> CimError {
    CimError::Crs {
        path: path.to_owned(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// CityJSON

#[derive(Deserialize)]
struct RawTransform {
    scale: [f64; 3],
    translate: [f64; 3],
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    #[serde(rename = "referenceSystem")]
    reference_system: Option<String>,
}

#[derive(Deserialize)]
struct RawCityJson {
    #[serde(rename = "type")]
    kind: String,
    version: Option<String>,
    transform: Option<RawTransform>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(rename = "CityObjects", default)]
    city_objects: BTreeMap<String, RawObject>,
    #[serde(default)]
    vertices: Vec<RawVertex>,
}

#[derive(Deserialize)]
struct RawFeature {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "CityObjects", default)]
    city_objects: BTreeMap<String, RawObject>,
    #[serde(default)]
    vertices: Vec<RawVertex>,
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    geometry: Vec<RawGeometry>,
    #[serde(default)]
    parents: Vec<String>,
}

#[derive(Deserialize)]
struct RawGeometry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    lod: Option<serde_json::Value>,
    #[serde(default)]
    boundaries: Nested,
    #[serde(default)]
    semantics: Option<RawSemantics>,
}

/// Nested arrays of integers and nulls (boundaries, semantic values), read in one pass as one
/// token stream: 8 bytes a token and one allocation per geometry, no JSON DOM.
#[derive(Clone, Debug, Default, PartialEq)]
struct Nested(Vec<i64>);

const OPEN: i64 = i64::MIN;
const CLOSE: i64 = i64::MIN + 1;
const NULL: i64 = i64::MIN + 2;

/// Appends one JSON value's tokens.
struct Tokens<'a>(&'a mut Vec<i64>);

impl<'de> DeserializeSeed<'de> for Tokens<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tokens<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("nested arrays of integers")
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        if v <= NULL {
            return Err(E::custom(format!("index {v} is out of range")));
        }
        self.0.push(v);
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("index {v} is too large")))?;
        self.visit_i64(v)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.0.push(NULL);
        Ok(())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(OPEN);
        while seq.next_element_seed(Tokens(&mut *self.0))?.is_some() {}
        self.0.push(CLOSE);
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
        let mut tokens = Vec::new();
        Tokens(&mut tokens).deserialize(d)?;
        Ok(Nested(tokens))
    }
}

impl Nested {
    /// The leaves (integers and nulls) in order, e.g. semantic values per surface.
    fn leaves(&self) -> impl Iterator<Item = Option<usize>> + '_ {
        self.0
            .iter()
            .filter(|t| **t != OPEN && **t != CLOSE)
            .map(|t| {
                if *t == NULL {
                    None
                } else {
                    usize::try_from(*t).ok()
                }
            })
    }

    /// The surfaces of a geometry whose rings sit `depth` arrays deep (3 for MultiSurface,
    /// 4 for Solid, 5 for MultiSolid), each as its rings of vertex indices.
    fn surfaces(&self, depth: usize) -> Result<Vec<Rings>, String> {
        let mut out = Vec::new();
        let mut level = 0usize;
        let mut surface: Rings = Vec::new();
        let mut ring: Vec<i64> = Vec::new();
        for &t in &self.0 {
            match t {
                OPEN => {
                    level += 1;
                    if level > depth {
                        return Err(format!("arrays nest deeper than {depth} levels"));
                    }
                }
                CLOSE => {
                    if level == depth {
                        surface.push(std::mem::take(&mut ring));
                    } else if level == depth - 1 {
                        out.push(std::mem::take(&mut surface));
                    }
                    level = level.saturating_sub(1);
                }
                NULL => return Err("a vertex index is null".into()),
                index if level == depth => ring.push(index),
                index => {
                    return Err(format!(
                        "vertex index {index} is {level} arrays deep, not {depth}"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// A vertex `[x, y, z]`; `null` (or a `NaN` literal) becomes NaN and fails where it is used.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RawVertex([f64; 3]);

impl<'de> Deserialize<'de> for RawVertex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawVertex, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawVertex;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a vertex [x, y, z]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawVertex, A::Error> {
                let mut v = [f64::NAN; 3];
                for c in &mut v {
                    *c = seq
                        .next_element::<Option<f64>>()?
                        .ok_or_else(|| serde::de::Error::invalid_length(2, &self))?
                        .unwrap_or(f64::NAN);
                }
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(4, &self));
                }
                Ok(RawVertex(v))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct RawSemantics {
    #[serde(default)]
    surfaces: Vec<RawSemanticSurface>,
    #[serde(default)]
    values: Nested,
}

#[derive(Deserialize)]
struct RawSemanticSurface {
    #[serde(rename = "type")]
    kind: String,
}

/// Shared state while resolving one file's objects.
struct CityJsonContext<'a> {
    transform: Option<&'a RawTransform>,
    to_wgs84: &'a ToWgs84,
    preferred_lod: Option<f64>,
}

fn lod_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn lod_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The geometry to draw: the preferred LoD, else the highest below it, else the lowest above
/// it; with no preference the highest. Geometries that are not surfaces are not candidates.
fn choose_geometry(geometries: &[RawGeometry], preferred: Option<f64>) -> Option<&RawGeometry> {
    let drawable = |g: &&RawGeometry| {
        matches!(
            g.kind.as_str(),
            "MultiSurface" | "CompositeSurface" | "Solid" | "MultiSolid" | "CompositeSolid"
        )
    };
    let lod = |g: &RawGeometry| g.lod.as_ref().and_then(lod_number).unwrap_or(0.0);
    let candidates: Vec<&RawGeometry> = geometries.iter().filter(drawable).collect();
    match preferred {
        None => candidates
            .into_iter()
            .max_by(|a, b| lod(a).total_cmp(&lod(b))),
        Some(p) => candidates
            .iter()
            .copied()
            .filter(|g| lod(g) <= p + 1e-9)
            .max_by(|a, b| lod(a).total_cmp(&lod(b)))
            .or_else(|| {
                candidates
                    .into_iter()
                    .min_by(|a, b| lod(a).total_cmp(&lod(b)))
            }),
    }
}

fn semantic_kind(name: &str) -> SurfaceKind {
    match name {
        "RoofSurface" => SurfaceKind::Roof,
        "WallSurface" | "OuterWallSurface" | "InteriorWallSurface" => SurfaceKind::Wall,
        "GroundSurface" | "OuterFloorSurface" | "FloorSurface" => SurfaceKind::Ground,
        _ => SurfaceKind::Other,
    }
}

/// Flattens a geometry's boundaries into surfaces (lists of rings of vertex indices) with the
/// index of each surface's semantic object.
/// Rings of vertex indices of one surface.
type Rings = Vec<Vec<i64>>;

/// A GeoJSON polygon as read: rings of positions whose parts may be missing (`NaN`).
type RawPolygon = Vec<Vec<[Option<f64>; 2]>>;

fn flatten_boundaries(g: &RawGeometry) -> Result<Vec<(Rings, Option<usize>)>, String> {
    let depth = match g.kind.as_str() {
        "MultiSurface" | "CompositeSurface" => 3,
        "Solid" => 4,
        "MultiSolid" | "CompositeSolid" => 5,
        other => return Err(format!("geometry type {other} is not drawable")),
    };
    let surfaces = g
        .boundaries
        .surfaces(depth)
        .map_err(|e| format!("{} boundaries are malformed: {e}", g.kind))?;
    let mut values = g.semantics.as_ref().map(|s| s.values.leaves());
    Ok(surfaces
        .into_iter()
        .map(|s| (s, values.as_mut().and_then(|v| v.next()).flatten()))
        .collect())
}

/// Resolves one object against its file's (or feature's) placed vertex list.
fn resolve_object(
    id: &str,
    raw: RawObject,
    vertices: &[Placed],
    preferred_lod: Option<f64>,
) -> Result<CityObject, String> {
    {
        let chosen = choose_geometry(&raw.geometry, preferred_lod);
        let mut lod = None;
        let shape = match chosen {
            None => Shape::None,
            Some(g) => {
                lod = g.lod.as_ref().map(lod_text);
                let semantic_surfaces = g.semantics.as_ref().map(|s| &s.surfaces);
                let mut surfaces = Vec::new();
                for (rings, sem) in flatten_boundaries(g)? {
                    let kind = sem
                        .and_then(|s| semantic_surfaces.and_then(|ss| ss.get(s)))
                        .map(|s| semantic_kind(&s.kind))
                        .unwrap_or(SurfaceKind::Other);
                    let mut out_rings = Vec::with_capacity(rings.len());
                    for ring in rings {
                        let mut points = Vec::with_capacity(ring.len());
                        for index in ring {
                            let v = usize::try_from(index)
                                .ok()
                                .and_then(|i| vertices.get(i))
                                .ok_or_else(|| {
                                    format!(
                                        "vertex index {index} is out of range (the vertex list has {})",
                                        vertices.len()
                                    )
                                })?;
                            match *v {
                                Placed::At(p) => points.push(p),
                                Placed::NotFinite => {
                                    return Err(format!(
                                        "vertex {index} is not a finite coordinate"
                                    ));
                                }
                                Placed::NotConvertible => {
                                    return Err("a vertex cannot be converted to WGS84".into());
                                }
                            }
                        }
                        if points.len() < 3 {
                            return Err(format!(
                                "a ring has {} vertices, fewer than 3",
                                points.len()
                            ));
                        }
                        out_rings.push(points);
                    }
                    surfaces.push(Surface {
                        rings: out_rings,
                        kind,
                    });
                }
                Shape::Surfaces(surfaces)
            }
        };
        Ok(CityObject {
            id: id.to_owned(),
            kind: raw.kind,
            parent: raw.parents.into_iter().next(),
            lod,
            attributes: raw.attributes,
            shape,
            region: None,
        })
    }
}

impl CityJsonContext<'_> {
    /// A vertex list with the transform applied and x, y converted to WGS84: once for all
    /// the objects that share the vertices (a box's 8 corners serve its 24 ring points), so
    /// PROJ sees each vertex once. A vertex that is not finite or that PROJ cannot convert is
    /// marked, and becomes an error only for the objects that use it.
    fn place(&self, vertices: &[RawVertex], grid: Option<&DenseGrid>) -> Vec<Placed> {
        let mut placed: Vec<Placed> = vertices.iter().map(|v| self.transformed(v)).collect();
        let mut xy: Vec<(f64, f64)> = placed
            .iter()
            .filter_map(|p| match p {
                Placed::At(p) => Some((p[0], p[1])),
                _ => None,
            })
            .collect();
        if self.to_wgs84.convert_with(grid, &mut xy).is_err() {
            // Some point failed: convert one at a time to find which.
            for p in &mut placed {
                if let Placed::At(q) = p {
                    let mut one = [(q[0], q[1])];
                    *p = match self.to_wgs84.convert(&mut one) {
                        Ok(()) => Placed::from_lon_lat(one[0], q[2]),
                        Err(_) => Placed::NotConvertible,
                    };
                }
            }
            return placed;
        }
        let mut converted = xy.into_iter();
        for p in &mut placed {
            if let Placed::At(q) = p {
                let lon_lat = converted.next().expect("one converted point per vertex");
                *p = Placed::from_lon_lat(lon_lat, q[2]);
            }
        }
        placed
    }
}

impl CityJsonContext<'_> {
    /// A vertex with the file's transform applied (not yet converted).
    fn transformed(&self, v: &RawVertex) -> Placed {
        let [x, y, z] = v.0;
        let p = match self.transform {
            Some(t) => [
                x * t.scale[0] + t.translate[0],
                y * t.scale[1] + t.translate[1],
                z * t.scale[2] + t.translate[2],
            ],
            None => [x, y, z],
        };
        if p.iter().all(|c| c.is_finite()) {
            Placed::At(p)
        } else {
            Placed::NotFinite
        }
    }

    /// The interpolation grid over vertex lists (one for a whole file, so the answer for a
    /// vertex does not depend on how the work was split, and a CityJSONSeq gets the same
    /// coordinates as the same model in one file).
    fn grid<'v>(&self, lists: impl Iterator<Item = &'v [RawVertex]>) -> Option<DenseGrid> {
        let xy = lists.flatten().filter_map(|v| match self.transformed(v) {
            Placed::At(p) => Some((p[0], p[1])),
            _ => None,
        });
        self.to_wgs84.dense_grid(xy)
    }
}

/// A file's vertex in WGS84 (lon, lat, height), or why it has none.
#[derive(Clone, Copy, Debug)]
enum Placed {
    At([f64; 3]),
    NotFinite,
    NotConvertible,
}

impl Placed {
    fn from_lon_lat((lon, lat): (f64, f64), z: f64) -> Placed {
        if lon.is_finite() && lat.is_finite() {
            Placed::At([lon, lat, z])
        } else {
            Placed::NotConvertible
        }
    }
}

fn check_version(version: Option<&str>, path: &Path) -> Result<bool, CimError> {
    // Returns whether a `transform` is required.
    match version {
        Some("1.1") | Some("2.0") => Ok(true),
        Some("1.0") => Ok(false),
        other => Err(CimError::Format {
            path: path.to_owned(),
            message: format!("CityJSON version {other:?} is not supported (1.0, 1.1 and 2.0 are)"),
        }),
    }
}

fn file_crs(named: Option<&str>, options: &LoadOptions, path: &Path) -> Result<Crs, CimError> {
    match (options.crs, named) {
        (Some(crs), _) => Ok(crs),
        (None, Some(text)) => Crs::parse(text).map_err(|e| crs_error(path, e)),
        (None, None) => Err(CimError::MissingCrs {
            path: path.to_owned(),
        }),
    }
}

fn lod_preference(options: &LoadOptions, path: &Path) -> Result<Option<f64>, CimError> {
    options
        .preferred_lod
        .as_deref()
        .map(|l| {
            l.parse::<f64>().map_err(|_| CimError::Format {
                path: path.to_owned(),
                message: format!("preferred LoD {l:?} is not a number such as 1 or 2.2"),
            })
        })
        .transpose()
}

/// Parses a whole CityJSON document.
pub fn parse_cityjson(
    text: &str,
    path: &Path,
    options: &LoadOptions,
) -> Result<CityModel, CimError> {
    let text = sanitise_non_finite(text);
    let raw: RawCityJson = serde_json::from_str(&text).map_err(|e| json_error(path, e))?;
    if raw.kind != "CityJSON" {
        return Err(CimError::Format {
            path: path.to_owned(),
            message: format!("type is {:?}, not \"CityJSON\"", raw.kind),
        });
    }
    let needs_transform = check_version(raw.version.as_deref(), path)?;
    if needs_transform && raw.transform.is_none() {
        return Err(CimError::Format {
            path: path.to_owned(),
            message: format!(
                "missing \"transform\": CityJSON {} stores vertices as integers scaled by it",
                raw.version.as_deref().unwrap_or("")
            ),
        });
    }
    let named = raw
        .metadata
        .as_ref()
        .and_then(|m| m.reference_system.as_deref());
    let crs = file_crs(named, options, path)?;
    // Fail on an unknown CRS before any work. One PROJ context: setting one up costs tens of
    // milliseconds, and with the interpolation grid the vertices hardly need PROJ.
    let to_wgs84 = ToWgs84::new(crs).map_err(|e| crs_error(path, e))?;
    let preferred_lod = lod_preference(options, path)?;
    let ctx = CityJsonContext {
        transform: raw.transform.as_ref(),
        to_wgs84: &to_wgs84,
        preferred_lod,
    };
    let grid = ctx.grid(std::iter::once(raw.vertices.as_slice()));
    let vertices = ctx.place(&raw.vertices, grid.as_ref());
    let vertices = &vertices;
    let raw_objects: Vec<(String, RawObject)> = raw.city_objects.into_iter().collect();
    // Objects are resolved in parallel, results in file order.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = raw_objects.len().div_ceil(threads).max(1);
    let mut chunks: Vec<Vec<(String, RawObject)>> = Vec::new();
    let mut rest = raw_objects;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);
    // Per thread: each object, or its id and what is wrong with it.
    type Resolved = Vec<Result<CityObject, (String, String)>>;
    let resolved: Vec<Resolved> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|objects| {
                scope.spawn(move || {
                    objects
                        .into_iter()
                        .map(|(id, object)| {
                            resolve_object(&id, object, vertices, preferred_lod)
                                .map_err(|m| (id, m))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a resolving thread panicked"))
            .collect()
    });
    let mut problems = Problems::default();
    let mut objects = Vec::new();
    for part in resolved {
        for r in part {
            match r {
                Ok(o) => objects.push(o),
                Err((id, message)) => problems.add(&id, message),
            }
        }
    }
    problems.into_result(path)?;
    Ok(CityModel {
        objects,
        sources: vec![(path.display().to_string(), crs)],
    })
}

/// Reads a CityJSONSeq file line by line.
pub fn load_cityjson_seq(path: &Path, options: &LoadOptions) -> Result<CityModel, CimError> {
    let file = std::fs::File::open(path).map_err(|source| CimError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut lines = std::io::BufReader::new(file).lines();
    let read_err = |source| CimError::Read {
        path: path.to_owned(),
        source,
    };
    let first = lines
        .next()
        .transpose()
        .map_err(read_err)?
        .ok_or_else(|| CimError::Format {
            path: path.to_owned(),
            message: "the file is empty; a CityJSONSeq starts with a CityJSON header line".into(),
        })?;
    let header: RawCityJson =
        serde_json::from_str(&sanitise_non_finite(&first)).map_err(|e| CimError::Json {
            path: path.to_owned(),
            message: format!("line 1: {e}"),
        })?;
    let needs_transform = check_version(header.version.as_deref(), path)?;
    if needs_transform && header.transform.is_none() {
        return Err(CimError::Format {
            path: path.to_owned(),
            message: "missing \"transform\" in the header line".into(),
        });
    }
    let named = header
        .metadata
        .as_ref()
        .and_then(|m| m.reference_system.as_deref());
    let crs = file_crs(named, options, path)?;
    let to_wgs84 = ToWgs84::new(crs).map_err(|e| crs_error(path, e))?;
    let ctx = CityJsonContext {
        transform: header.transform.as_ref(),
        to_wgs84: &to_wgs84,
        preferred_lod: lod_preference(options, path)?,
    };
    // Every feature is read first, so one interpolation grid covers the file's vertices.
    let mut features = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let feature: RawFeature =
            serde_json::from_str(&sanitise_non_finite(&line)).map_err(|e| CimError::Json {
                path: path.to_owned(),
                message: format!("line {}: {e}", i + 2),
            })?;
        if feature.kind != "CityJSONFeature" {
            return Err(CimError::Format {
                path: path.to_owned(),
                message: format!(
                    "line {}: type is {:?}, not \"CityJSONFeature\"",
                    i + 2,
                    feature.kind
                ),
            });
        }
        features.push(feature);
    }
    let grid = ctx.grid(features.iter().map(|f| f.vertices.as_slice()));
    let mut problems = Problems::default();
    let mut objects = Vec::new();
    for feature in features {
        let placed = ctx.place(&feature.vertices, grid.as_ref());
        for (id, object) in feature.city_objects {
            match resolve_object(&id, object, &placed, ctx.preferred_lod) {
                Ok(o) => objects.push(o),
                Err(message) => problems.add(&id, message),
            }
        }
    }
    problems.into_result(path)?;
    Ok(CityModel {
        objects,
        sources: vec![(path.display().to_string(), crs)],
    })
}

// ---------------------------------------------------------------------------------------------
// GeoJSON

#[derive(Deserialize)]
struct RawGeoFeature {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    geometry: Option<RawGeoGeometry>,
    #[serde(default)]
    properties: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawGeoGeometry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    coordinates: serde_json::Value,
}

/// Calls `each` with every feature of a FeatureCollection as it is parsed, with its index.
fn for_each_feature(
    text: &str,
    path: &Path,
    mut each: impl FnMut(usize, RawGeoFeature),
) -> Result<(), CimError> {
    struct Collection<'f, F>(&'f mut F);
    struct Features<'f, F>(&'f mut F);
    impl<'de, F: FnMut(usize, RawGeoFeature)> Visitor<'de> for Collection<'_, F> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a GeoJSON FeatureCollection")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut seen_features = false;
            while let Some(key) = map.next_key::<String>()? {
                if key == "features" {
                    map.next_value_seed(Features(&mut *self.0))?;
                    seen_features = true;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(seen_features)
        }
    }
    impl<'de, F: FnMut(usize, RawGeoFeature)> DeserializeSeed<'de> for Features<'_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de, F: FnMut(usize, RawGeoFeature)> Visitor<'de> for Features<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of features")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while let Some(feature) = seq.next_element::<RawGeoFeature>()? {
                (self.0)(i, feature);
                i += 1;
            }
            Ok(())
        }
    }
    let text = sanitise_non_finite(text);
    let mut de = serde_json::Deserializer::from_str(&text);
    let seen = serde::Deserializer::deserialize_map(&mut de, Collection(&mut each))
        .map_err(|e| json_error(path, e))?;
    if !seen {
        return Err(CimError::Format {
            path: path.to_owned(),
            message: "no \"features\" array: expected a GeoJSON FeatureCollection".into(),
        });
    }
    Ok(())
}

/// The polygons of a Polygon or MultiPolygon geometry, rings closed as in the file; `None`
/// for other geometry types.
fn geo_polygons(g: &RawGeoGeometry) -> Option<Result<Vec<RawPolygon>, String>> {
    let parse = |v: &serde_json::Value| -> Result<RawPolygon, String> {
        let rings: Vec<Vec<Vec<Option<f64>>>> =
            serde_json::from_value(v.clone()).map_err(|e| format!("malformed coordinates: {e}"))?;
        Ok(rings
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|p| [p.first().copied().flatten(), p.get(1).copied().flatten()])
                    .collect()
            })
            .collect())
    };
    match g.kind.as_str() {
        "Polygon" => Some(parse(&g.coordinates).map(|p| vec![p])),
        "MultiPolygon" => Some(match g.coordinates.as_array() {
            Some(polys) => polys.iter().map(parse).collect(),
            None => Err("malformed coordinates: MultiPolygon needs an array".into()),
        }),
        _ => None,
    }
}

/// Checks rings (closed, finite, at least 4 positions), converts them to WGS84 and validates
/// the polygons (no self-intersections); returns open rings.
fn checked_polygons(
    polygons: Vec<RawPolygon>,
    to_wgs84: &ToWgs84,
) -> Result<Vec<PolygonLonLat>, String> {
    let mut out = Vec::with_capacity(polygons.len());
    for (pi, rings) in polygons.into_iter().enumerate() {
        if rings.is_empty() {
            return Err(format!("polygon {pi} has no rings"));
        }
        let mut open_rings = Vec::with_capacity(rings.len());
        for (ri, ring) in rings.into_iter().enumerate() {
            let which = if ri == 0 {
                format!("polygon {pi} outer ring")
            } else {
                format!("polygon {pi} hole {}", ri - 1)
            };
            let mut pts = Vec::with_capacity(ring.len());
            for (vi, p) in ring.iter().enumerate() {
                match p {
                    [Some(x), Some(y)] if x.is_finite() && y.is_finite() => pts.push((*x, *y)),
                    _ => return Err(format!("{which}: vertex {vi} is not a finite coordinate")),
                }
            }
            if pts.len() < 4 {
                return Err(format!(
                    "{which} has {} positions; a closed ring needs at least 4",
                    pts.len()
                ));
            }
            if pts.first() != pts.last() {
                return Err(format!(
                    "{which} is not closed (its last position differs from its first)"
                ));
            }
            pts.pop();
            to_wgs84.convert(&mut pts).map_err(|e| e.to_string())?;
            open_rings.push(pts.into_iter().map(|(x, y)| [x, y]).collect::<Vec<_>>());
        }
        let polygon = geo::Polygon::new(
            geo::LineString::from(open_rings[0].clone()),
            open_rings[1..]
                .iter()
                .map(|r| geo::LineString::from(r.clone()))
                .collect(),
        );
        if let Some(problem) = polygon.validation_errors().into_iter().next() {
            return Err(format!("polygon {pi}: {problem}"));
        }
        out.push(open_rings);
    }
    Ok(out)
}

/// A number from a property that may be a number or text such as `"12"` or `"12 m"`.
fn number_property(
    props: &serde_json::Map<String, serde_json::Value>,
    keys: &[&str],
) -> Option<f64> {
    keys.iter()
        .find_map(|k| match props.get(*k)? {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => {
                let t = s.trim();
                let end = t
                    .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                    .unwrap_or(t.len());
                t[..end].parse().ok()
            }
            _ => None,
        })
        .filter(|v: &f64| v.is_finite())
}

fn feature_id(
    f: &RawGeoFeature,
    props: &serde_json::Map<String, serde_json::Value>,
    i: usize,
) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    f.id.as_ref()
        .and_then(text)
        .or_else(|| props.get("id").and_then(text))
        .unwrap_or_else(|| format!("feature {i}"))
}

/// Parses GeoJSON building footprints (see the module docs for heights and clipped pieces).
pub fn parse_geojson_buildings(
    text: &str,
    path: &Path,
    options: &LoadOptions,
) -> Result<CityModel, CimError> {
    let crs = options.crs.unwrap_or(Crs::WGS84);
    let to_wgs84 = ToWgs84::new(crs).map_err(|e| crs_error(path, e))?;
    let mut problems = Problems::default();
    let mut objects: Vec<CityObject> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for_each_feature(text, path, |i, f| {
        let props = f.properties.clone().unwrap_or_default();
        let id = feature_id(&f, &props, i);
        let Some(geometry) = &f.geometry else { return };
        let Some(polygons) = geo_polygons(geometry) else {
            return; // points and lines are not buildings
        };
        let polygons = match polygons.and_then(|p| checked_polygons(p, &to_wgs84)) {
            Ok(p) => p,
            Err(message) => return problems.add(&id, message),
        };
        // OSM writes 0 for an unknown height; only positive heights and levels count.
        let positive = |v: Option<f64>| v.filter(|v| *v > 0.0);
        let levels = positive(number_property(&props, &["building:levels", "levels"]));
        let base = number_property(&props, &["min_height", "building:min_height"])
            .or_else(|| {
                number_property(&props, &["building:min_level", "min_level"])
                    .map(|l| l * METRES_PER_LEVEL)
            })
            .unwrap_or(0.0);
        let given = positive(number_property(&props, &["height", "building:height"]))
            .or(levels.map(|l| l * METRES_PER_LEVEL));
        // A part without a height (e.g. a crown on a tower) is DEFAULT_HEIGHT_M tall.
        let top = given.unwrap_or(base + DEFAULT_HEIGHT_M);
        if base < 0.0 || top <= base {
            return problems.add(
                &id,
                format!("height {top} m is not above min_height {base} m"),
            );
        }
        if let Some(&k) = by_id.get(&id) {
            // Another piece of a building clipped at a tile edge.
            if let Shape::Extruded { polygons: p, .. } = &mut objects[k].shape {
                p.extend(polygons);
            }
            return;
        }
        let parent = ["root_id", "building_id"]
            .iter()
            .find_map(|k| props.get(*k))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        by_id.insert(id.clone(), objects.len());
        objects.push(CityObject {
            id,
            kind: if parent.is_some() {
                "BuildingPart"
            } else {
                "Building"
            }
            .into(),
            parent,
            lod: Some("1".into()),
            attributes: props,
            shape: Shape::Extruded {
                polygons,
                base_m: base,
                top_m: top,
            },
            region: None,
        });
    })?;
    problems.into_result(path)?;
    Ok(CityModel {
        objects,
        sources: vec![(path.display().to_string(), crs)],
    })
}

/// How region boundary features are read.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionOptions {
    /// The CRS of the file (GeoJSON says WGS84; Chinese web-map data is GCJ-02).
    pub crs: Crs,
    /// Properties holding the code, tried in order.
    pub code_properties: Vec<String>,
}

impl Default for RegionOptions {
    fn default() -> Self {
        RegionOptions {
            crs: Crs::WGS84,
            code_properties: ["code", "region_code", "adcode", "grid_id"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// Turns a 6-digit administrative code (`320100`, `320000`) into the statistics division
/// code of its level (`3201`, `32`); other codes are kept.
pub fn division_code(code: &str) -> String {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(p) = code.strip_suffix("0000") {
            return p.to_owned();
        }
        if let Some(c) = code.strip_suffix("00") {
            return c.to_owned();
        }
    }
    code.to_owned()
}

/// Reads region boundaries (Polygon / MultiPolygon features with a code property).
pub fn load_regions(path: &Path, options: &RegionOptions) -> Result<Vec<RegionShape>, CimError> {
    let text = read_text(path)?;
    let to_wgs84 = ToWgs84::new(options.crs).map_err(|e| crs_error(path, e))?;
    let mut problems = Problems::default();
    let mut regions = Vec::new();
    for_each_feature(&text, path, |i, f| {
        let props = f.properties.clone().unwrap_or_default();
        let code = options
            .code_properties
            .iter()
            .find_map(|k| match props.get(k)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        let Some(code) = code else {
            return problems.add(
                &feature_id(&f, &props, i),
                format!(
                    "no code property (tried {})",
                    options.code_properties.join(", ")
                ),
            );
        };
        let code = division_code(&code);
        let polygons = match f.geometry.as_ref().and_then(geo_polygons) {
            Some(p) => p.and_then(|p| checked_polygons(p, &to_wgs84)),
            None => Err("geometry is not a Polygon or MultiPolygon".into()),
        };
        match polygons {
            Ok(polygons) => regions.push(RegionShape {
                name: props
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or(&code)
                    .to_owned(),
                code,
                polygons,
            }),
            Err(message) => problems.add(&code, message),
        }
    })?;
    problems.into_result(path)?;
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_literals_become_null_outside_strings() {
        let t = r#"{"a": [NaN, -Infinity, 1], "s": "NaN \" Infinity"}"#;
        assert_eq!(
            sanitise_non_finite(t),
            r#"{"a": [null, null, 1], "s": "NaN \" Infinity"}"#
        );
        assert!(matches!(
            sanitise_non_finite("[1]"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn division_codes_follow_the_level() {
        assert_eq!(division_code("320000"), "32");
        assert_eq!(division_code("320100"), "3201");
        assert_eq!(division_code("320102"), "320102");
        assert_eq!(division_code("320102002001-003"), "320102002001-003");
    }
}
