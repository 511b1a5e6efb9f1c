//! Meshing city objects into a few merged tile meshes with baked shading.
//!
//! Objects are grouped into square tiles by their anchor point and each tile becomes one
//! vertex buffer (not one entity per building), so Bevy draws and frustum-culls per tile. Every
//! vertex carries its object's index twice: as `object_index` (for CPU picking) and as a texture
//! coordinate into the scene's colour table (one texel per object, see [`colour_texel_uv`]), so
//! an overlay recolours buildings by rewriting that small table, never the geometry. The vertex
//! colour holds only the shade (a grey from the surface's orientation and semantics), which
//! the unlit material multiplies with the table colour: cheap on software rasterisers and the
//! same pixels everywhere.
//!
//! Footprints with holes are triangulated with the `earcut` crate; LoD2 surfaces are projected
//! onto their dominant plane (from the Newell normal) and triangulated the same way.
//!
//! Frames: input is local metres (x east, y north, z up); mesh positions are in Bevy's
//! convention (x east, y up, z south), i.e. `pos_in_bevy = (east, up, -north)`.

use crate::cim::SurfaceKind;
use earcut::Earcut;

/// A polygon in the local frame: outer ring then holes, open rings, metres east and north.
pub type LocalPolygon = Vec<Vec<[f32; 2]>>;

/// Width of the per-object colour table, texels.
pub const COLOUR_TABLE_WIDTH: u32 = 1024;

/// An object's geometry in the local frame, ready to mesh.
pub enum LocalShape {
    /// Planar polygons (outer ring, then holes; open rings), metres east, north, up.
    Surfaces(Vec<(Vec<Vec<[f32; 3]>>, SurfaceKind)>),
    /// Footprint polygons (outer ring, then holes; open rings) extruded between two heights.
    Extruded {
        polygons: Vec<Vec<Vec<[f32; 2]>>>,
        base_m: f32,
        top_m: f32,
    },
}

pub struct MeshObject {
    /// Index into the scene's object list and colour table.
    pub index: u32,
    /// Where the object stands (for its tile), metres east and north.
    pub anchor_en_m: [f32; 2],
    pub shape: LocalShape,
    /// Whether downward faces are dropped and horizontal ones turned up: true for things
    /// seen only from above (roads, land use), whose rings have no reliable orientation.
    pub flat: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshData {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    /// Linear RGBA shade (grey), multiplied with the object's colour.
    pub shades_linear: Vec<[f32; 4]>,
    /// Texel centre of the object's colour in the colour table.
    pub colour_uv: Vec<[f32; 2]>,
    pub object_index: Vec<u32>,
    pub indices: Vec<u32>,
}

impl MeshData {
    pub fn triangle_count(&self) -> usize {
        self.indices.len() / 3
    }

    /// Axis-aligned bounds in mesh coordinates, `None` when empty.
    pub fn bounds(&self) -> Option<[[f32; 3]; 2]> {
        let mut b = [[f32::INFINITY; 3], [f32::NEG_INFINITY; 3]];
        for p in &self.positions {
            for k in 0..3 {
                b[0][k] = b[0][k].min(p[k]);
                b[1][k] = b[1][k].max(p[k]);
            }
        }
        self.positions.first().map(|_| b)
    }
}

/// The texture coordinate of object `index`'s texel in a table of `rows` rows.
pub fn colour_texel_uv(index: u32, rows: u32) -> [f32; 2] {
    [
        ((index % COLOUR_TABLE_WIDTH) as f32 + 0.5) / COLOUR_TABLE_WIDTH as f32,
        ((index / COLOUR_TABLE_WIDTH) as f32 + 0.5) / rows as f32,
    ]
}

/// Rows of the colour table for `objects` objects.
pub fn colour_table_rows(objects: usize) -> u32 {
    (objects as u32).div_ceil(COLOUR_TABLE_WIDTH).max(1)
}

/// Horizontal direction the light comes from (towards south-east, normalised), for walls.
const LIGHT_DIR_EN: [f32; 2] = [0.6, -0.8];

fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// An sRGB colour as linear RGBA, e.g. for vertex colours.
pub fn linear(colour_srgb: [f32; 4]) -> [f32; 4] {
    [
        srgb_to_linear(colour_srgb[0]),
        srgb_to_linear(colour_srgb[1]),
        srgb_to_linear(colour_srgb[2]),
        colour_srgb[3],
    ]
}

/// The shade of a face by its unit normal (east, north, up): roofs full, walls by the light.
fn shade_of(normal_enu: [f32; 3], kind: SurfaceKind) -> f32 {
    let light = (normal_enu[0] * LIGHT_DIR_EN[0] + normal_enu[1] * LIGHT_DIR_EN[1]).max(0.0);
    let horizontal = (normal_enu[0].powi(2) + normal_enu[1].powi(2)).sqrt();
    match kind {
        SurfaceKind::Roof => 0.82 + 0.18 * normal_enu[2].max(0.0) + 0.1 * light * horizontal,
        SurfaceKind::Wall => 0.55 + 0.35 * light,
        _ if normal_enu[2] > 0.7 => 1.0,
        _ => 0.55 + 0.35 * light,
    }
    .min(1.0)
}

fn signed_area(ring: &[[f32; 2]]) -> f32 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum::<f32>()
        / 2.0
}

fn newell_normal(ring: &[[f32; 3]]) -> [f32; 3] {
    let mut n = [0.0f64; 3];
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
        let (a, b) = (a.map(f64::from), b.map(f64::from));
        n[0] += (a[1] - b[1]) * (a[2] + b[2]);
        n[1] += (a[2] - b[2]) * (a[0] + b[0]);
        n[2] += (a[0] - b[0]) * (a[1] + b[1]);
    }
    let len = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
    if len < 1e-12 {
        return [0.0, 0.0, 0.0];
    }
    [
        (n[0] / len) as f32,
        (n[1] / len) as f32,
        (n[2] / len) as f32,
    ]
}

/// Accumulates one tile's mesh.
struct TileBuilder<'a> {
    out: MeshData,
    earcut: &'a mut Earcut<f64>,
    triangles: Vec<u32>,
    rows: u32,
}

impl TileBuilder<'_> {
    fn push_vertex(&mut self, p_enu: [f32; 3], n_enu: [f32; 3], shade: f32, index: u32) {
        self.out.positions.push([p_enu[0], p_enu[2], -p_enu[1]]);
        self.out.normals.push([n_enu[0], n_enu[2], -n_enu[1]]);
        self.out.shades_linear.push([shade, shade, shade, 1.0]);
        self.out.colour_uv.push(colour_texel_uv(index, self.rows));
        self.out.object_index.push(index);
    }

    /// Triangulates a planar polygon (outer ring then holes, in 3-D) facing along `normal`.
    fn polygon(&mut self, rings: &[Vec<[f32; 3]>], normal: [f32; 3], shade: f32, index: u32) {
        // Drop the dominant axis of the normal and triangulate in the remaining plane.
        let axis = (0..3)
            .max_by(|&a, &b| normal[a].abs().total_cmp(&normal[b].abs()))
            .unwrap_or(2);
        let (u, v) = match axis {
            0 => (1, 2),
            1 => (2, 0),
            _ => (0, 1),
        };
        let mut holes = Vec::with_capacity(rings.len().saturating_sub(1));
        let mut count = 0u32;
        for (i, r) in rings.iter().enumerate() {
            if i > 0 {
                holes.push(count);
            }
            count += r.len() as u32;
        }
        let flat = rings.iter().flatten().map(|p| [p[u] as f64, p[v] as f64]);
        self.earcut.earcut(flat, &holes, &mut self.triangles);
        if self.triangles.is_empty() {
            return;
        }
        let all: Vec<[f32; 3]> = rings.iter().flatten().copied().collect();
        let base = self.out.positions.len() as u32;
        for p in &all {
            self.push_vertex(*p, normal, shade, index);
        }
        let triangles = std::mem::take(&mut self.triangles);
        for t in triangles.chunks_exact(3) {
            let [a, b, c] = [t[0], t[1], t[2]].map(|k| all[k as usize]);
            let cross = [
                (b[1] - a[1]) * (c[2] - a[2]) - (b[2] - a[2]) * (c[1] - a[1]),
                (b[2] - a[2]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[2] - a[2]),
                (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]),
            ];
            let agrees = cross[0] * normal[0] + cross[1] * normal[1] + cross[2] * normal[2];
            // ENU is right-handed and Bevy's (x, y, z) = (e, u, -n) too, so winding carries over.
            if agrees >= 0.0 {
                self.out
                    .indices
                    .extend([base + t[0], base + t[1], base + t[2]]);
            } else {
                self.out
                    .indices
                    .extend([base + t[0], base + t[2], base + t[1]]);
            }
        }
        self.triangles = triangles;
    }

    fn object(&mut self, o: &MeshObject) {
        match &o.shape {
            LocalShape::Surfaces(surfaces) => {
                for (rings, kind) in surfaces {
                    let Some(outer) = rings.first() else { continue };
                    let mut normal = newell_normal(outer);
                    if normal == [0.0; 3] {
                        continue; // degenerate sliver
                    }
                    if o.flat && normal[2] < 0.0 {
                        normal = normal.map(|c| -c);
                    }
                    if !o.flat && (*kind == SurfaceKind::Ground || normal[2] < -0.7) {
                        continue; // floors face the ground: never seen from above
                    }
                    self.polygon(rings, normal, shade_of(normal, *kind), o.index);
                }
            }
            LocalShape::Extruded {
                polygons,
                base_m,
                top_m,
            } => {
                for polygon in polygons {
                    let mut rings: Vec<Vec<[f32; 2]>> = polygon
                        .iter()
                        .map(|r| {
                            let mut r = r.clone();
                            r.dedup();
                            if r.len() > 1 && r.first() == r.last() {
                                r.pop();
                            }
                            r
                        })
                        .filter(|r| r.len() >= 3)
                        .collect();
                    if rings.is_empty() {
                        continue;
                    }
                    // Outer ring counter-clockwise and holes clockwise seen from above, so
                    // every wall's outward side is on the right of its edge.
                    for (i, r) in rings.iter_mut().enumerate() {
                        if (signed_area(r) < 0.0) == (i == 0) {
                            r.reverse();
                        }
                    }
                    for r in &rings {
                        self.walls(r, *base_m, *top_m, o.index);
                    }
                    let roof: Vec<Vec<[f32; 3]>> = rings
                        .iter()
                        .map(|r| r.iter().map(|p| [p[0], p[1], *top_m]).collect())
                        .collect();
                    self.polygon(&roof, [0.0, 0.0, 1.0], 1.0, o.index);
                }
            }
        }
    }

    fn walls(&mut self, ring: &[[f32; 2]], base_m: f32, top_m: f32, index: u32) {
        for i in 0..ring.len() {
            let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len = (dx * dx + dy * dy).sqrt();
            if len < 1e-4 {
                continue;
            }
            let normal = [dy / len, -dx / len, 0.0];
            let shade = shade_of(normal, SurfaceKind::Wall);
            let base = self.out.positions.len() as u32;
            for (p, z) in [(a, base_m), (b, base_m), (b, top_m), (a, top_m)] {
                self.push_vertex([p[0], p[1], z], normal, shade, index);
            }
            self.out
                .indices
                .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        }
    }
}

/// Meshes objects into tiles of `tile_size_m` (by anchor); returns the non-empty tiles.
/// `object_count` sizes the colour table the texture coordinates point into.
pub fn tiles(objects: &[MeshObject], object_count: usize, tile_size_m: f32) -> Vec<MeshData> {
    let rows = colour_table_rows(object_count);
    let key = |o: &MeshObject| {
        (
            (o.anchor_en_m[0] / tile_size_m).floor() as i32,
            (o.anchor_en_m[1] / tile_size_m).floor() as i32,
        )
    };
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| key(&objects[i]));
    // Tile boundaries in `order`.
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let k = key(&objects[order[start]]);
        let end = start
            + order[start..]
                .iter()
                .take_while(|&&i| key(&objects[i]) == k)
                .count();
        ranges.push(start..end);
        start = end;
    }
    // Tiles are meshed in parallel (each thread its own ear-cutter), kept in tile order.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per_thread = ranges.len().div_ceil(threads).max(1);
    let order = &order;
    let meshed: Vec<Vec<MeshData>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .chunks(per_thread)
            .map(|group| {
                scope.spawn(move || {
                    let mut earcut = Earcut::new();
                    group
                        .iter()
                        .map(|r| {
                            let mut tile = TileBuilder {
                                out: MeshData::default(),
                                earcut: &mut earcut,
                                triangles: Vec::new(),
                                rows,
                            };
                            for &i in &order[r.clone()] {
                                tile.object(&objects[i]);
                            }
                            tile.out
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a meshing thread panicked"))
            .collect()
    });
    meshed
        .into_iter()
        .flatten()
        .filter(|m| !m.indices.is_empty())
        .collect()
}

/// A tile's upward-facing triangles only (flat and sloped roofs, ground-level surfaces), with
/// the vertices they use: what its impostor ([`crate::impostor`]) is baked from.
pub fn roofs(m: &MeshData) -> MeshData {
    let mut out = MeshData::default();
    let mut remap = vec![u32::MAX; m.positions.len()];
    for t in m.indices.chunks_exact(3) {
        if m.normals[t[0] as usize][1] <= 0.5 {
            continue;
        }
        for &i in t {
            let i = i as usize;
            if remap[i] == u32::MAX {
                remap[i] = out.positions.len() as u32;
                out.positions.push(m.positions[i]);
                out.normals.push(m.normals[i]);
                out.shades_linear.push(m.shades_linear[i]);
                out.colour_uv.push(m.colour_uv[i]);
                out.object_index.push(m.object_index[i]);
            }
            out.indices.push(remap[i]);
        }
    }
    out
}

/// Flat polygons (outer ring then holes, metres east/north) at height `up_m`, one colour
/// each (linear RGBA), e.g. a choropleth.
pub fn flat_polygons(polygons: &[(LocalPolygon, [f32; 4])], up_m: f32) -> MeshData {
    let mut earcut = Earcut::new();
    let mut out = MeshData::default();
    let mut tile = TileBuilder {
        out: MeshData::default(),
        earcut: &mut earcut,
        triangles: Vec::new(),
        rows: 1,
    };
    for (rings, colour) in polygons {
        let start = tile.out.positions.len();
        let rings3: Vec<Vec<[f32; 3]>> = rings
            .iter()
            .map(|r| r.iter().map(|p| [p[0], p[1], up_m]).collect())
            .collect();
        tile.polygon(&rings3, [0.0, 0.0, 1.0], 1.0, 0);
        for s in &mut tile.out.shades_linear[start..] {
            *s = *colour;
        }
    }
    std::mem::swap(&mut out, &mut tile.out);
    out
}

/// Square columns (centre east/north, half width, height, linear colour), e.g. 3-D bars.
pub fn columns(columns: &[([f32; 2], f32, f32, [f32; 4])]) -> MeshData {
    let mut earcut = Earcut::new();
    let mut tile = TileBuilder {
        out: MeshData::default(),
        earcut: &mut earcut,
        triangles: Vec::new(),
        rows: 1,
    };
    for (c, half, height_m, colour) in columns {
        let start = tile.out.positions.len();
        let ring = vec![
            [c[0] - half, c[1] - half],
            [c[0] + half, c[1] - half],
            [c[0] + half, c[1] + half],
            [c[0] - half, c[1] + half],
        ];
        tile.object(&MeshObject {
            index: 0,
            anchor_en_m: *c,
            shape: LocalShape::Extruded {
                polygons: vec![vec![ring]],
                base_m: 0.0,
                top_m: *height_m,
            },
            flat: false,
        });
        for s in &mut tile.out.shades_linear[start..] {
            let k = s[0];
            *s = [colour[0] * k, colour[1] * k, colour[2] * k, colour[3]];
        }
    }
    tile.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_object(clockwise: bool, hole: bool) -> MeshObject {
        let mut outer = vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        if clockwise {
            outer.reverse();
        }
        let mut rings = vec![outer];
        if hole {
            rings.push(vec![[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0]]);
        }
        MeshObject {
            index: 3,
            anchor_en_m: [5.0, 5.0],
            shape: LocalShape::Extruded {
                polygons: vec![rings],
                base_m: 0.0,
                top_m: 20.0,
            },
            flat: false,
        }
    }

    fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    }

    fn cross(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    }

    fn roof_area(m: &MeshData) -> f32 {
        m.indices
            .chunks_exact(3)
            .filter(|t| t.iter().all(|&i| m.normals[i as usize][1] == 1.0))
            .map(|t| {
                let [a, b, c] = [0, 1, 2].map(|k| m.positions[t[k] as usize]);
                cross(sub(b, a), sub(c, a))[1] / 2.0
            })
            .sum()
    }

    fn assert_faces_follow_normals(m: &MeshData) {
        for t in m.indices.chunks_exact(3) {
            let [a, b, c] = [0, 1, 2].map(|k| m.positions[t[k] as usize]);
            let n = cross(sub(b, a), sub(c, a));
            let vn = m.normals[t[0] as usize];
            assert!(n[0] * vn[0] + n[1] * vn[1] + n[2] * vn[2] > 0.0, "{t:?}");
        }
    }

    #[test]
    fn extrusions_face_outwards_whatever_the_winding() {
        for clockwise in [false, true] {
            let m = &tiles(&[square_object(clockwise, false)], 4, 100.0)[0];
            // 4 walls of 2 triangles plus a roof of 2.
            assert_eq!(m.triangle_count(), 10);
            assert_faces_follow_normals(m);
            assert_eq!(m.bounds().unwrap()[1][1], 20.0);
            assert!(m.object_index.iter().all(|&i| i == 3));
            assert_eq!(m.colour_uv[0], colour_texel_uv(3, 1));
        }
    }

    #[test]
    fn holes_are_cut_out_of_roofs_and_get_walls() {
        let m = &tiles(&[square_object(true, true)], 4, 100.0)[0];
        assert!((roof_area(m) - 96.0).abs() < 1e-3, "{}", roof_area(m));
        // 8 walls (outer and hole) of 2 triangles, roof of 8 triangles.
        assert_eq!(m.triangle_count(), 16 + 8);
        assert_faces_follow_normals(m);
    }

    #[test]
    fn sloped_surfaces_triangulate_on_their_plane() {
        // A 10 x 10 m roof rising 5 m to the north, counter-clockwise seen from outside (above),
        // as CityJSON requires.
        let roof = vec![vec![
            [0.0, 0.0, 10.0],
            [10.0, 0.0, 10.0],
            [10.0, 10.0, 15.0],
            [0.0, 10.0, 15.0],
        ]];
        let object = |rings: Vec<Vec<[f32; 3]>>| MeshObject {
            index: 0,
            anchor_en_m: [5.0, 5.0],
            shape: LocalShape::Surfaces(vec![(rings, SurfaceKind::Roof)]),
            flat: false,
        };
        let m = &tiles(&[object(roof.clone())], 1, 100.0)[0];
        assert_eq!(m.triangle_count(), 2);
        assert_faces_follow_normals(m);
        // The normal leans south (Bevy +z) and up.
        let n = m.normals[0];
        assert!(
            (n[1] - 0.894).abs() < 1e-3 && (n[2] - 0.447).abs() < 1e-3,
            "{n:?}"
        );
        // The same ring reversed faces the ground and is not drawn.
        let mut down = roof;
        down[0].reverse();
        assert!(tiles(&[object(down)], 1, 100.0).is_empty());
    }

    #[test]
    fn roofs_keep_the_upward_faces_only() {
        let m = &tiles(&[square_object(false, false)], 4, 100.0)[0];
        let r = roofs(m);
        assert_eq!(r.triangle_count(), 2);
        assert_eq!(r.positions.len(), 4);
        assert!(r.positions.iter().all(|p| p[1] == 20.0));
    }

    #[test]
    fn tiles_split_by_anchor() {
        let mut far = square_object(false, false);
        far.anchor_en_m = [500.0, 5.0];
        far.index = 1;
        let t = tiles(&[square_object(false, false), far], 4, 100.0);
        assert_eq!(t.len(), 2);
    }
}
