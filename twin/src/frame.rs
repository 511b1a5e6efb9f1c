//! The scene's local metric frame: an origin in WGS84 lon/lat, with x east, y north and z up
//! in metres.
//!
//! The projection is a transverse Mercator centred on the origin (scale 1 there), computed by
//! PROJ in f64: conformal, flat (a province-wide scene does not droop with the Earth's
//! curvature) and within 0.01% of true distance across 100 km. Coordinates stay f64 until the
//! offset from the origin is taken and only then become f32, so buildings keep centimetre
//! precision on the GPU wherever they are on Earth.

use crate::crs::{CrsError, proj_between};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LocalFrame {
    pub origin_lon_lat: [f64; 2],
}

impl LocalFrame {
    pub fn new(origin_lon_lat: [f64; 2]) -> LocalFrame {
        LocalFrame { origin_lon_lat }
    }

    /// A frame centred on the bounding box of the (finite) points.
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

    /// The frame as a PROJ definition.
    fn definition(&self) -> String {
        let [lon, lat] = self.origin_lon_lat;
        format!(
            "+proj=tmerc +lat_0={lat} +lon_0={lon} +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs +type=crs"
        )
    }

    /// The PROJ transformation from lon/lat into this frame.
    pub fn projector(&self) -> Result<LocalProjector, CrsError> {
        Ok(LocalProjector {
            proj: proj_between("EPSG:4326", &self.definition())?,
        })
    }

    /// The PROJ transformation from this frame back to lon/lat (e.g. for 3D Tiles).
    pub fn unprojector(&self) -> Result<LocalProjector, CrsError> {
        Ok(LocalProjector {
            proj: proj_between(&self.definition(), "EPSG:4326")?,
        })
    }
}

/// Converts WGS84 lon/lat to metres east and north of a frame's origin (or, made by
/// [`LocalFrame::unprojector`], back).
pub struct LocalProjector {
    proj: proj::Proj,
}

impl LocalProjector {
    /// In place: (lon, lat) become (east, north) in metres, still f64.
    pub fn to_local(&self, points: &mut [(f64, f64)]) -> Result<(), CrsError> {
        self.convert(points)
    }

    /// In place, in the direction it was made: lon/lat to the frame, or (an unprojector)
    /// the frame's east and north to lon/lat.
    pub fn convert(&self, points: &mut [(f64, f64)]) -> Result<(), CrsError> {
        self.proj
            .convert_array(points)
            .map_err(|e| CrsError::Transform {
                crs: crate::crs::Crs::WGS84,
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// One point, as f32 metres east and north.
    pub fn point(&self, lon_lat: [f64; 2]) -> Result<[f32; 2], CrsError> {
        let mut p = [(lon_lat[0], lon_lat[1])];
        self.to_local(&mut p)?;
        Ok([p[0].0 as f32, p[0].1 as f32])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metres_match_wgs84_at_nanjing() {
        // At 32°N one hundredth of a degree of longitude is about 944.9 m and of latitude
        // about 1108.5 m.
        let p = LocalFrame::new([118.8, 32.0]).projector().unwrap();
        let east = p.point([118.81, 32.0]).unwrap();
        let north = p.point([118.8, 32.01]).unwrap();
        assert!(
            (east[0] - 944.9).abs() < 1.0 && east[1].abs() < 0.1,
            "{east:?}"
        );
        assert!(
            (north[1] - 1108.5).abs() < 1.0 && north[0].abs() < 1e-3,
            "{north:?}"
        );
        let origin = p.point([118.8, 32.0]).unwrap();
        assert!(
            origin[0].abs() < 1e-6 && origin[1].abs() < 1e-6,
            "{origin:?}"
        );
    }

    #[test]
    fn precision_is_kept_far_from_the_prime_meridian() {
        // Two points 1 cm apart, 10 000 km from (0, 0), stay 1 cm apart in f32.
        let p = LocalFrame::new([118.8, 32.0]).projector().unwrap();
        let a = p.point([118.800_000_0, 32.0]).unwrap();
        let b = p.point([118.800_000_106, 32.0]).unwrap();
        assert!(((b[0] - a[0]) - 0.01).abs() < 0.001, "{a:?} {b:?}");
    }
}
