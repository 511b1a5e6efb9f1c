//! Extruding footprints into one merged triangle mesh with baked shading.
//!
//! All buildings of a scene go into one vertex buffer (not one entity per building). Each
//! vertex carries the index of its building (for picking) and a colour: the building's overlay
//! colour times a fixed directional shade, so the renderer can use an unlit material, which is
//! cheap on software rasterisers and gives the same pixels everywhere.
//!
//! Frames: footprints are in local metres (x east, y north); mesh positions are in Bevy's
//! convention (x east, y up, z south), i.e. `pos_in_bevy = (east, up, -north)`.

use earcut::Earcut;

pub struct Footprint {
    /// Open ring (no repeated last vertex), metres east and north of the scene origin.
    pub ring_en_m: Vec<[f32; 2]>,
    pub height_m: f32,
    pub colour_srgb: [f32; 4],
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshData {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    /// Linear RGBA, shading included.
    pub colours_linear: Vec<[f32; 4]>,
    pub building_index: Vec<u32>,
    pub indices: Vec<u32>,
}

/// Horizontal direction the light comes from (towards south-east, normalised), for wall shading.
const LIGHT_DIR_EN: [f32; 2] = [0.6, -0.8];

fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn shaded(colour_srgb: [f32; 4], shade: f32) -> [f32; 4] {
    [
        srgb_to_linear(colour_srgb[0]) * shade,
        srgb_to_linear(colour_srgb[1]) * shade,
        srgb_to_linear(colour_srgb[2]) * shade,
        colour_srgb[3],
    ]
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

/// Extrudes every footprint into walls and a flat roof. On a degenerate footprint returns its
/// index and what is wrong.
pub fn extrude(footprints: &[Footprint]) -> Result<MeshData, (usize, String)> {
    let mut out = MeshData::default();
    let mut earcut = Earcut::new();
    let mut triangles: Vec<u32> = Vec::new();
    for (index, f) in footprints.iter().enumerate() {
        let mut ring = f.ring_en_m.clone();
        // Drop repeated consecutive vertices, which make zero-length walls.
        ring.dedup();
        if ring.len() < 3 {
            return Err((
                index,
                format!(
                    "footprint has {} distinct vertices, fewer than 3",
                    ring.len()
                ),
            ));
        }
        let area = signed_area(&ring);
        if area.abs() < 1e-6 {
            return Err((index, "footprint has no area".into()));
        }
        if area < 0.0 {
            ring.reverse(); // counter-clockwise seen from above
        }
        let id = index as u32;
        let h = f.height_m;
        // Walls: one quad per edge, outward normals, counter-clockwise seen from outside.
        for i in 0..ring.len() {
            let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len = (dx * dx + dy * dy).sqrt();
            let normal_en = [dy / len, -dx / len];
            let light = (normal_en[0] * LIGHT_DIR_EN[0] + normal_en[1] * LIGHT_DIR_EN[1]).max(0.0);
            let colour = shaded(f.colour_srgb, 0.55 + 0.35 * light);
            let normal = [normal_en[0], 0.0, -normal_en[1]];
            let base = out.positions.len() as u32;
            for (p, z) in [(a, 0.0), (b, 0.0), (b, h), (a, h)] {
                out.positions.push([p[0], z, -p[1]]);
                out.normals.push(normal);
                out.colours_linear.push(colour);
                out.building_index.push(id);
            }
            out.indices
                .extend([base, base + 1, base + 2, base, base + 2, base + 3]);
        }
        // Roof: ear-cut triangulation of the ring, made counter-clockwise seen from above.
        let base = out.positions.len() as u32;
        let colour = shaded(f.colour_srgb, 1.0);
        for p in &ring {
            out.positions.push([p[0], h, -p[1]]);
            out.normals.push([0.0, 1.0, 0.0]);
            out.colours_linear.push(colour);
            out.building_index.push(id);
        }
        earcut.earcut(
            ring.iter().map(|p| [p[0] as f64, p[1] as f64]),
            &[] as &[u32],
            &mut triangles,
        );
        if triangles.is_empty() {
            return Err((index, "footprint cannot be triangulated".into()));
        }
        for t in triangles.chunks_exact(3) {
            let tri = [
                ring[t[0] as usize],
                ring[t[1] as usize],
                ring[t[2] as usize],
            ];
            let ccw = signed_area(&tri) > 0.0;
            let (i0, i1, i2) = if ccw {
                (t[0], t[1], t[2])
            } else {
                (t[0], t[2], t[1])
            };
            out.indices.extend([base + i0, base + i1, base + i2]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(clockwise: bool) -> Footprint {
        let mut ring = vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        if clockwise {
            ring.reverse();
        }
        Footprint {
            ring_en_m: ring,
            height_m: 20.0,
            colour_srgb: [1.0, 0.5, 0.0, 1.0],
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

    #[test]
    fn triangles_face_along_their_normals() {
        for clockwise in [false, true] {
            let m = extrude(&[square(clockwise)]).unwrap();
            assert_eq!(m.indices.len() % 3, 0);
            // 4 walls of 2 triangles plus a roof of 2.
            assert_eq!(m.indices.len() / 3, 10);
            for t in m.indices.chunks_exact(3) {
                let [a, b, c] = [0, 1, 2].map(|k| m.positions[t[k] as usize]);
                let n = cross(sub(b, a), sub(c, a));
                let vn = m.normals[t[0] as usize];
                assert!(
                    n[0] * vn[0] + n[1] * vn[1] + n[2] * vn[2] > 0.0,
                    "clockwise={clockwise}"
                );
            }
            let top = m.positions.iter().map(|p| p[1]).fold(0.0f32, f32::max);
            assert_eq!(top, 20.0);
        }
    }

    #[test]
    fn concave_footprints_triangulate() {
        let l_shape = Footprint {
            ring_en_m: vec![
                [0.0, 0.0],
                [20.0, 0.0],
                [20.0, 5.0],
                [5.0, 5.0],
                [5.0, 20.0],
                [0.0, 20.0],
            ],
            height_m: 9.0,
            colour_srgb: [0.2, 0.4, 0.6, 1.0],
        };
        let m = extrude(&[l_shape]).unwrap();
        let roof_area: f32 = m
            .indices
            .chunks_exact(3)
            .filter(|t| t.iter().all(|&i| m.normals[i as usize][1] == 1.0))
            .map(|t| {
                let [a, b, c] = [0, 1, 2].map(|k| m.positions[t[k] as usize]);
                let n = cross(sub(b, a), sub(c, a));
                n[1] / 2.0
            })
            .sum();
        assert!((roof_area - 175.0).abs() < 1e-3, "{roof_area}");
    }

    #[test]
    fn degenerate_footprints_are_errors() {
        let flat = Footprint {
            ring_en_m: vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]],
            height_m: 3.0,
            colour_srgb: [1.0; 4],
        };
        assert_eq!(
            extrude(&[square(false), flat]).unwrap_err(),
            (1, "footprint has no area".to_string())
        );
    }
}
