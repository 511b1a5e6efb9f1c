//! The scene's local metric frame: an origin in lon/lat and east-north offsets in metres.
//!
//! Coordinates stay f64 until the offset from the origin is taken, then become f32, so
//! buildings far from (0°, 0°) keep centimetre precision on the GPU. The projection is a local
//! tangent-plane (equirectangular) approximation on the WGS84 ellipsoid, accurate to well under
//! a metre across a district; city-scale scenes and other CRSs go through PROJ (twin issue).

/// WGS84 semi-major axis and first eccentricity squared.
const A_M: f64 = 6_378_137.0;
const E2: f64 = 6.694_379_990_14e-3;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalFrame {
    pub origin_lon_lat: [f64; 2],
    /// Metres per degree of longitude and latitude at the origin.
    m_per_deg: [f64; 2],
}

impl LocalFrame {
    pub fn new(origin_lon_lat: [f64; 2]) -> LocalFrame {
        let lat = origin_lon_lat[1].to_radians();
        let s2 = 1.0 - E2 * lat.sin().powi(2);
        // Radii of curvature in the prime vertical and the meridian.
        let n = A_M / s2.sqrt();
        let m = A_M * (1.0 - E2) / s2.powf(1.5);
        LocalFrame {
            origin_lon_lat,
            m_per_deg: [
                n * lat.cos() * std::f64::consts::PI / 180.0,
                m * std::f64::consts::PI / 180.0,
            ],
        }
    }

    /// A frame centred on the bounding box of the points.
    pub fn around(points: impl Iterator<Item = [f64; 2]>) -> LocalFrame {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for [x, y] in points.filter(|p| p[0].is_finite() && p[1].is_finite()) {
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
        if !b[0].is_finite() {
            return LocalFrame::new([0.0, 0.0]);
        }
        LocalFrame::new([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
    }

    /// Metres east and north of the origin.
    pub fn to_local(&self, lon_lat: [f64; 2]) -> [f32; 2] {
        [
            ((lon_lat[0] - self.origin_lon_lat[0]) * self.m_per_deg[0]) as f32,
            ((lon_lat[1] - self.origin_lon_lat[1]) * self.m_per_deg[1]) as f32,
        ]
    }

    /// Checks a closed lon/lat ring and returns it open (without the repeated first vertex)
    /// in local metres.
    pub fn ring_to_local(&self, ring: &[[f64; 2]]) -> Result<Vec<[f32; 2]>, String> {
        if let Some(i) = ring
            .iter()
            .position(|p| !(p[0].is_finite() && p[1].is_finite()))
        {
            return Err(format!("vertex {i} is not a finite coordinate"));
        }
        if ring.len() < 4 {
            return Err(format!("ring has {} vertices, fewer than 4", ring.len()));
        }
        if ring.first() != ring.last() {
            return Err("ring is not closed".into());
        }
        Ok(ring[..ring.len() - 1]
            .iter()
            .map(|p| self.to_local(*p))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metres_per_degree_match_wgs84_at_nanjing() {
        // At 32°N one degree of latitude is about 110.85 km and of longitude about 94.49 km.
        let f = LocalFrame::new([118.8, 32.0]);
        let east = f.to_local([118.81, 32.0]);
        let north = f.to_local([118.8, 32.01]);
        assert!((east[0] - 944.9).abs() < 1.0, "{east:?}");
        assert!((north[1] - 1108.5).abs() < 1.0, "{north:?}");
    }

    #[test]
    fn rings_are_checked() {
        let f = LocalFrame::new([0.0, 0.0]);
        assert!(
            f.ring_to_local(&[[0.0, 0.0], [1e-4, 0.0], [1e-4, 1e-4], [0.0, 0.0]])
                .is_ok()
        );
        let open = f.ring_to_local(&[[0.0, 0.0], [1e-4, 0.0], [1e-4, 1e-4], [0.0, 1e-4]]);
        assert_eq!(open.unwrap_err(), "ring is not closed");
        let nan = f.ring_to_local(&[[0.0, 0.0], [f64::NAN, 0.0], [1e-4, 1e-4], [0.0, 0.0]]);
        assert_eq!(nan.unwrap_err(), "vertex 1 is not a finite coordinate");
    }
}
