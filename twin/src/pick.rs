//! Picking: which building or region is under a pixel of a view.
//!
//! Done on the CPU against the same merged tile meshes the GPU draws: a ray from the camera
//! through the pixel is tested against each tile's bounds and then its triangles
//! (Möller–Trumbore); the nearest hit names the object through the per-vertex object index.
//! Missing every object, the ray meets the ground and the region whose polygon contains that
//! point is picked. Pure arithmetic, so planners' clicks and browser picks are testable without
//! a GPU.

use crate::render::{FOV_DEG, camera_transform, far_m, near_m};
use crate::{OrbitCamera, PreparedScene};
use bevy::math::{Mat4, Vec3, Vec4};

/// What a pick found.
#[derive(Clone, Debug, PartialEq)]
pub enum Pick {
    Object {
        /// Index into [`PreparedScene::objects`].
        index: usize,
        id: String,
        /// Where the ray met it: metres east, north and up.
        at_enu_m: [f32; 3],
    },
    Region {
        code: String,
        name: String,
        at_enu_m: [f32; 3],
    },
}

/// A ray in Bevy's world frame.
struct Ray {
    origin: Vec3,
    dir: Vec3,
}

fn ray_through(camera: &OrbitCamera, scene: &PreparedScene, size: (u32, u32), px: [f32; 2]) -> Ray {
    let (w, h) = (size.0 as f32, size.1 as f32);
    let world_from_view = camera_transform(camera).to_matrix();
    let clip_from_view = Mat4::perspective_rh(
        FOV_DEG.to_radians(),
        w / h,
        near_m(camera),
        far_m(camera, scene),
    );
    let world_from_clip = world_from_view * clip_from_view.inverse();
    let ndc = [px[0] / w * 2.0 - 1.0, 1.0 - px[1] / h * 2.0];
    let point = |z: f32| {
        let p = world_from_clip * Vec4::new(ndc[0], ndc[1], z, 1.0);
        p.truncate() / p.w
    };
    // Any two depths on the line through the pixel give its direction.
    let (a, b) = (point(0.2), point(0.8));
    Ray {
        origin: world_from_view.w_axis.truncate(),
        dir: (b - a).normalize(),
    }
}

fn hits_box(ray: &Ray, bounds: [[f32; 3]; 2]) -> bool {
    let (mut t0, mut t1) = (0.0f32, f32::INFINITY);
    for (k, (lo, hi)) in bounds[0].iter().zip(bounds[1]).enumerate() {
        let inv = 1.0 / ray.dir[k];
        let (mut a, mut b) = ((lo - ray.origin[k]) * inv, (hi - ray.origin[k]) * inv);
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        t0 = t0.max(a);
        t1 = t1.min(b);
        if t0 > t1 {
            return false;
        }
    }
    true
}

fn hit_triangle(ray: &Ray, a: Vec3, b: Vec3, c: Vec3) -> Option<f32> {
    let (e1, e2) = (b - a, c - a);
    let p = ray.dir.cross(e2);
    let det = e1.dot(p);
    if det.abs() < 1e-9 {
        return None;
    }
    let inv = 1.0 / det;
    let s = ray.origin - a;
    let u = s.dot(p) * inv;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(e1);
    let v = ray.dir.dot(q) * inv;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let t = e2.dot(q) * inv;
    (t > 0.0).then_some(t)
}

fn contains(rings: &[Vec<[f32; 2]>], p: [f32; 2]) -> bool {
    let inside = |ring: &Vec<[f32; 2]>| {
        let mut c = false;
        let n = ring.len();
        for i in 0..n {
            let (a, b) = (ring[i], ring[(i + n - 1) % n]);
            if (a[1] > p[1]) != (b[1] > p[1])
                && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
            {
                c = !c;
            }
        }
        c
    };
    rings.first().is_some_and(inside) && !rings[1..].iter().any(inside)
}

/// The building (or other object), else the region, under pixel `px` of a view of `size`.
pub fn pick(
    scene: &PreparedScene,
    camera: &OrbitCamera,
    size: (u32, u32),
    px: [f32; 2],
) -> Option<Pick> {
    let ray = ray_through(camera, scene, size, px);
    let mut best: Option<(f32, u32)> = None;
    for tile in &scene.tiles {
        let Some(bounds) = tile.bounds() else {
            continue;
        };
        if !hits_box(&ray, bounds) {
            continue;
        }
        for t in tile.indices.chunks_exact(3) {
            let [a, b, c] = [t[0], t[1], t[2]].map(|i| Vec3::from(tile.positions[i as usize]));
            if let Some(d) = hit_triangle(&ray, a, b, c)
                && best.is_none_or(|(bd, _)| d < bd)
            {
                best = Some((d, tile.object_index[t[0] as usize]));
            }
        }
    }
    if let Some((d, index)) = best {
        let p = ray.origin + ray.dir * d;
        return Some(Pick::Object {
            index: index as usize,
            id: scene.objects[index as usize].id.clone(),
            at_enu_m: [p.x, -p.z, p.y],
        });
    }
    // The ground (y = 0).
    if ray.dir.y >= 0.0 {
        return None;
    }
    let t = -ray.origin.y / ray.dir.y;
    let g = ray.origin + ray.dir * t;
    let en = [g.x, -g.z];
    scene
        .region_polygons
        .iter()
        .filter(|r| contains(&r.rings, en))
        .max_by_key(|r| r.code.len())
        .map(|r| Pick::Region {
            code: r.code.clone(),
            name: r.name.clone(),
            at_enu_m: [en[0], en[1], 0.0],
        })
}
