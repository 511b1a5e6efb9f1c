//! The far level of detail of a tile: its roofs seen from straight above, baked into a
//! texture and drawn on one quad (an impostor, in real-time rendering's terms).
//!
//! Why: a software rasteriser such as lavapipe pays for every triangle on one thread (vertex
//! shading, clipping, set-up, binning), about 60 ns each on the development machine, whatever
//! its size on screen. A city overview puts a hundred thousand buildings of two or three pixels
//! each on the screen: a million triangles, most smaller than a pixel, that cost three times
//! the rest of the frame. Two triangles per tile with a texture cost almost nothing, and a
//! texture filtered through its mip levels shows sub-pixel buildings as their average colour,
//! where triangles that small alias (and flicker as the camera turns).
//!
//! What it loses: walls, and the roofs' heights (the quad lies at the tile's median roof
//! height). The renderer therefore draws a tile as its impostor only where the tile's typical
//! wall would be under [`crate::LOD_WALL_PX`] pixels tall on screen ([`switch_distance_m`]):
//! the rule the roofs-only and block levels it replaces followed (so nothing a view showed
//! before is lost), now measured for each job's tallest view, never below 720 lines.
//!
//! Texels hold the object (index + 1, 0 = no roof) and the roof's shade, not a colour: an
//! overlay recolours buildings through the colour table, and [`Impostor::rgba_mips`] composes
//! the texture from both whenever the table changes.

use crate::mesh::MeshData;

/// The finest a texel gets, metres.
pub const TEXEL_M: f32 = 2.0;
/// The most texels on a side (a power of two).
pub const MAX_TEXELS: u32 = 256;

/// One tile's impostor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Impostor {
    /// Texels on a side (a power of two); the texture is square.
    pub size: u32,
    /// The quad's corners in Bevy's frame (x east, z south): min x, min z, max x, max z.
    pub bounds_xz: [f32; 4],
    /// The quad's height above the scene's ground (Bevy's y), metres: the median roof.
    pub height_m: f32,
    /// The typical (median) height of the tile's objects from their base to their roof,
    /// metres: the walls the impostor leaves out.
    pub wall_m: f32,
    /// Per texel, row by row from min z: the object whose highest roof covers the texel's
    /// centre, as index + 1; 0 where there is none.
    pub objects: Vec<u32>,
    /// Per texel: that roof's shade (linear grey, 0..=255).
    pub shades: Vec<u8>,
}

impl Impostor {
    /// Bakes a tile's impostor from its upward-facing triangles ([`crate::mesh::roofs`]) and
    /// the heights of its objects' walls (`walls_m`, from base to roof).
    pub fn bake(roofs: &MeshData, walls_m: &mut [f32]) -> Option<Impostor> {
        let bounds = roofs.bounds()?;
        let [min, max] = bounds;
        let side_m = (max[0] - min[0]).max(max[2] - min[2]).max(TEXEL_M);
        let size = ((side_m / TEXEL_M).ceil() as u32)
            .next_power_of_two()
            .clamp(8, MAX_TEXELS);
        let texel_m = side_m / size as f32;
        let n = (size * size) as usize;
        let mut objects = vec![0u32; n];
        let mut shades = vec![0u8; n];
        let mut top = vec![f32::NEG_INFINITY; n];
        for t in roofs.indices.chunks_exact(3) {
            let [a, b, c] = [t[0], t[1], t[2]].map(|i| roofs.positions[i as usize]);
            // Texel coordinates (u along x, v along z) of the corners.
            let uv = |p: [f32; 3]| [(p[0] - min[0]) / texel_m, (p[2] - min[2]) / texel_m];
            let [pa, pb, pc] = [uv(a), uv(b), uv(c)];
            let area = edge(pa, pb, pc);
            if area.abs() < 1e-12 {
                continue;
            }
            let lo = |k: usize| pa[k].min(pb[k]).min(pc[k]).floor().max(0.0) as u32;
            let hi = |k: usize| {
                (pa[k].max(pb[k]).max(pc[k]).ceil() as u32).min(size) // exclusive
            };
            let object = roofs.object_index[t[0] as usize] + 1;
            let shade = (roofs.shades_linear[t[0] as usize][0].clamp(0.0, 1.0) * 255.0).round();
            for v in lo(1)..hi(1) {
                for u in lo(0)..hi(0) {
                    let p = [u as f32 + 0.5, v as f32 + 0.5];
                    let (w0, w1, w2) = (edge(pb, pc, p), edge(pc, pa, p), edge(pa, pb, p));
                    let inside = if area > 0.0 {
                        w0 >= 0.0 && w1 >= 0.0 && w2 >= 0.0
                    } else {
                        w0 <= 0.0 && w1 <= 0.0 && w2 <= 0.0
                    };
                    if !inside {
                        continue;
                    }
                    let y = (w0 * a[1] + w1 * b[1] + w2 * c[1]) / area;
                    let k = (v * size + u) as usize;
                    if y > top[k] {
                        top[k] = y;
                        objects[k] = object;
                        shades[k] = shade as u8;
                    }
                }
            }
        }
        let mut roof_tops: Vec<f32> = top.iter().copied().filter(|y| y.is_finite()).collect();
        Some(Impostor {
            size,
            bounds_xz: [min[0], min[2], min[0] + side_m, min[2] + side_m],
            height_m: median(&mut roof_tops).unwrap_or(max[1]),
            wall_m: median(walls_m).unwrap_or(0.0),
            objects,
            shades,
        })
    }

    /// The texture, premultiplied sRGB RGBA, with its whole mip chain (level 0 first, each
    /// level half the one before, averaged in linear light): what the renderer uploads.
    /// `colour_table` is the scene's (sRGB, one texel per object).
    pub fn rgba_mips(&self, colour_table: &[[u8; 4]]) -> Vec<u8> {
        // Level 0 in linear, premultiplied.
        let mut level: Vec<[f32; 4]> = self
            .objects
            .iter()
            .zip(&self.shades)
            .map(|(&o, &s)| match o.checked_sub(1) {
                None => [0.0; 4],
                Some(i) => {
                    let c = colour_table.get(i as usize).copied().unwrap_or([255; 4]);
                    let shade = s as f32 / 255.0;
                    [
                        to_linear(c[0]) * shade,
                        to_linear(c[1]) * shade,
                        to_linear(c[2]) * shade,
                        1.0,
                    ]
                }
            })
            .collect();
        let mut size = self.size as usize;
        let mut out = Vec::with_capacity(level.len() * 4 * 4 / 3 + 4);
        loop {
            out.extend(level.iter().flat_map(|p| {
                let a = p[3];
                // Stored premultiplied: the colour channels are encoded as sRGB of the
                // premultiplied linear value, which the sampler decodes back to linear.
                [
                    to_srgb(p[0]),
                    to_srgb(p[1]),
                    to_srgb(p[2]),
                    (a * 255.0).round() as u8,
                ]
            }));
            if size == 1 {
                break;
            }
            let half = size / 2;
            let mut next = vec![[0.0f32; 4]; half * half];
            for v in 0..half {
                for u in 0..half {
                    let mut sum = [0.0f32; 4];
                    for (du, dv) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let p = level[(2 * v + dv) * size + 2 * u + du];
                        for k in 0..4 {
                            sum[k] += p[k] / 4.0;
                        }
                    }
                    next[v * half + u] = sum;
                }
            }
            level = next;
            size = half;
        }
        out
    }

    /// How many mip levels [`Impostor::rgba_mips`] writes.
    pub fn mip_levels(&self) -> u32 {
        self.size.max(1).ilog2() + 1
    }

    /// A texel's side, metres.
    pub fn texel_m(&self) -> f32 {
        (self.bounds_xz[2] - self.bounds_xz[0]) / self.size.max(1) as f32
    }

    /// The camera distance (to the tile's centre, as Bevy measures it) beyond which the tile
    /// may be drawn as this impostor in a view `lines` pixels high: where, for every point of
    /// the tile, its typical wall is under [`crate::LOD_WALL_PX`] pixels tall and a texel is at
    /// most a pixel.
    pub fn switch_distance_m(&self, lines: u32) -> f32 {
        let [x0, z0, x1, z1] = self.bounds_xz;
        let half_diagonal_m = 0.5 * ((x1 - x0).powi(2) + (z1 - z0).powi(2)).sqrt();
        switch_distance_m(self.wall_m, self.texel_m(), lines) + half_diagonal_m
    }
}

/// Views smaller than this many lines get the levels of a view this tall: thumbnails, the
/// start page's picture and the golden images keep the walls a 720-line view shows.
pub const MIN_LINES: u32 = 720;

/// The distance at which a wall of `wall_m` is [`crate::LOD_WALL_PX`] pixels tall and a texel
/// of `texel_m` a pixel wide (whichever is farther) in a view of `lines` (at least
/// [`MIN_LINES`]). Walls are taken as seen side-on, whatever the pitch: looking down they are
/// shorter on screen, so the rule never drops a wall that would show more.
pub fn switch_distance_m(wall_m: f32, texel_m: f32, lines: u32) -> f32 {
    // Pixels a metre spans at a metre's distance, in the middle of the view.
    let lines = lines.max(MIN_LINES);
    let px_per_m_at_1_m = lines as f32 / (2.0 * (crate::FOV_DEG.to_radians() / 2.0).tan());
    (wall_m / crate::LOD_WALL_PX).max(texel_m) * px_per_m_at_1_m
}

/// Twice the signed area of (a, b, p): positive when p is left of a→b.
fn edge(a: [f32; 2], b: [f32; 2], p: [f32; 2]) -> f32 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

fn median(values: &mut [f32]) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    values.select_nth_unstable_by(mid, f32::total_cmp);
    Some(values[mid])
}

fn to_linear(c: u8) -> f32 {
    let c = c as f32 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn to_srgb(c: f32) -> u8 {
    let c = c.clamp(0.0, 1.0);
    let s = if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{LocalShape, MeshObject, roofs, tiles};

    /// The texel's object at a point of Bevy's frame (x, z), index + 1 or 0.
    fn object_at(imp: &Impostor, x: f32, z: f32) -> u32 {
        let [x0, z0, x1, z1] = imp.bounds_xz;
        let u = ((x - x0) / (x1 - x0) * imp.size as f32).floor();
        let v = ((z - z0) / (z1 - z0) * imp.size as f32).floor();
        if u < 0.0 || v < 0.0 || u >= imp.size as f32 || v >= imp.size as f32 {
            return 0;
        }
        imp.objects[(v as u32 * imp.size + u as u32) as usize]
    }

    fn block(index: u32, x: f32, y: f32, side: f32, top_m: f32) -> MeshObject {
        MeshObject {
            index,
            anchor_en_m: [x, y],
            shape: LocalShape::Extruded {
                polygons: vec![vec![vec![
                    [x, y],
                    [x + side, y],
                    [x + side, y + side],
                    [x, y + side],
                ]]],
                base_m: 0.0,
                top_m,
            },
            flat: false,
        }
    }

    #[test]
    fn texels_name_the_roof_above_them_and_nothing_elsewhere() {
        // Two blocks side by side and a tall one standing on part of the first (its roof
        // wins where both cover a texel); an empty gap between them.
        let objects = vec![
            block(0, 0.0, 0.0, 40.0, 10.0),
            block(1, 60.0, 0.0, 40.0, 20.0),
            block(2, 10.0, 10.0, 10.0, 50.0),
        ];
        let tile = &tiles(&objects, 3, 1000.0)[0];
        let r = roofs(tile);
        let mut walls = vec![10.0, 20.0, 50.0];
        let imp = Impostor::bake(&r, &mut walls).expect("an impostor");
        assert_eq!(imp.objects.len(), (imp.size * imp.size) as usize);
        // Bevy's z is minus north.
        let at = |e: f32, n: f32| object_at(&imp, e, -n);
        assert_eq!(at(30.0, 30.0), 1, "the first block's roof");
        assert_eq!(at(15.0, 15.0), 3, "the tower's roof over the first block");
        assert_eq!(at(80.0, 20.0), 2, "the second block");
        assert_eq!(at(50.0, 20.0), 0, "the gap between them");
        assert_eq!(imp.wall_m, 20.0, "the median wall");
        // The median roof over covered texels: 1,500 m² at 10 m, 1,600 m² at 20 m, 100 m² at 50 m.
        assert_eq!(imp.height_m, 20.0);
        let shade = imp.shades[imp.objects.iter().position(|&o| o == 2).unwrap()];
        assert_eq!(shade, 255, "flat roofs are drawn at full shade");
    }

    #[test]
    fn the_texture_follows_the_colour_table_and_averages_down_its_mips() {
        let objects = vec![block(0, 0.0, 0.0, 64.0, 10.0)];
        let tile = &tiles(&objects, 1, 1000.0)[0];
        let imp = Impostor::bake(&roofs(tile), &mut [10.0]).unwrap();
        let red = imp.rgba_mips(&[[255, 0, 0, 255]]);
        let blue = imp.rgba_mips(&[[0, 0, 255, 255]]);
        let n = (imp.size * imp.size) as usize;
        let expected: usize = (0..imp.mip_levels())
            .map(|l| ((imp.size >> l).pow(2)) as usize)
            .sum();
        assert_eq!(red.len(), expected * 4);
        // Every texel of level 0 is covered (the block fills the tile) and takes the colour.
        assert!(red[..n * 4].chunks(4).all(|p| p == [255, 0, 0, 255]));
        assert!(blue[..n * 4].chunks(4).all(|p| p == [0, 0, 255, 255]));
        // Two blocks on a diagonal cover half the tile: the last mip level is half covered.
        let objects = vec![
            block(0, 0.0, 0.0, 32.0, 10.0),
            block(1, 32.0, 32.0, 32.0, 10.0),
        ];
        let tile = &tiles(&objects, 2, 1000.0)[0];
        let imp = Impostor::bake(&roofs(tile), &mut [10.0, 10.0]).unwrap();
        let mips = imp.rgba_mips(&[[255, 255, 255, 255], [255, 255, 255, 255]]);
        let last_alpha = mips[mips.len() - 1];
        assert!((120..=136).contains(&last_alpha), "alpha {last_alpha}");
    }

    #[test]
    fn the_switch_distance_grows_with_lines_walls_and_texels() {
        let d = switch_distance_m(20.0, 1.0, 720);
        // 20 m walls are 2 px tall at 720 lines and a 40° field of view at about 9.9 km.
        assert!((d - 9891.0).abs() < 10.0, "{d}");
        assert!((switch_distance_m(20.0, 1.0, 1080) / d - 1.5).abs() < 1e-4);
        assert!((switch_distance_m(40.0, 1.0, 720) / d - 2.0).abs() < 1e-4);
        // Smaller views switch as a 720-line one does.
        assert_eq!(switch_distance_m(20.0, 1.0, 270), d);
        // Flat tiles (no walls) switch by their texels alone: 4 m texels are a pixel wide at
        // about 3.96 km.
        let flat = switch_distance_m(0.0, 4.0, 720);
        assert!((flat - 3956.4).abs() < 1.0, "{flat}");
        // A tile's own distance adds the farthest its corners are from its centre.
        let tile = Impostor {
            size: 512,
            bounds_xz: [0.0, 0.0, 300.0, 400.0],
            wall_m: 20.0,
            ..Impostor::default()
        };
        assert!((tile.switch_distance_m(720) - (d + 250.0)).abs() < 1.0);
    }
}
