//! Spatial join: which region (grid cell, community, county …) each building stands in.
//!
//! Region polygons go into an R-tree of their bounding boxes (`rstar`); a building's anchor
//! point (its footprint centroid) is looked up in the tree and tested exactly against the few
//! candidate polygons (`geo`'s point-in-polygon). Where regions of several levels overlap, the
//! most specific one wins: the longest code.

use crate::cim::{CityModel, RegionShape};
use geo::{BoundingRect, Contains};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

type Entry = GeomWithData<Rectangle<[f64; 2]>, usize>;

pub struct RegionIndex {
    tree: RTree<Entry>,
    regions: Vec<(String, geo::MultiPolygon<f64>)>,
}

fn to_geo(shape: &RegionShape) -> geo::MultiPolygon<f64> {
    geo::MultiPolygon::new(
        shape
            .polygons
            .iter()
            .map(|rings| {
                let ring = |r: &Vec<[f64; 2]>| geo::LineString::from(r.clone());
                geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
            })
            .collect(),
    )
}

impl RegionIndex {
    pub fn new(shapes: &[RegionShape]) -> RegionIndex {
        let regions: Vec<(String, geo::MultiPolygon<f64>)> =
            shapes.iter().map(|s| (s.code.clone(), to_geo(s))).collect();
        let entries = regions
            .iter()
            .enumerate()
            .flat_map(|(i, (_, mp))| {
                mp.0.iter().filter_map(move |p| {
                    let r = p.bounding_rect()?;
                    Some(GeomWithData::new(
                        Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]),
                        i,
                    ))
                })
            })
            .collect();
        RegionIndex {
            tree: RTree::bulk_load(entries),
            regions,
        }
    }

    /// The most specific region containing the point, if any.
    pub fn locate(&self, lon_lat: [f64; 2]) -> Option<&str> {
        let point = geo::Point::new(lon_lat[0], lon_lat[1]);
        self.tree
            .locate_in_envelope_intersecting(&AABB::from_point(lon_lat))
            .map(|e| e.data)
            .filter(|&i| self.regions[i].1.contains(&point))
            .map(|i| self.regions[i].0.as_str())
            .max_by_key(|code| code.len())
    }
}

/// Sets `region` on every object with geometry; returns how many found a region.
pub fn join(model: &mut CityModel, index: &RegionIndex) -> usize {
    let mut found = 0;
    for o in &mut model.objects {
        if let Some(p) = o.anchor_lon_lat() {
            o.region = index.locate(p).map(str::to_owned);
            found += usize::from(o.region.is_some());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(code: &str, x: f64, y: f64, size: f64) -> RegionShape {
        RegionShape {
            code: code.into(),
            name: code.into(),
            polygons: vec![vec![vec![
                [x, y],
                [x + size, y],
                [x + size, y + size],
                [x, y + size],
            ]]],
        }
    }

    #[test]
    fn the_most_specific_containing_region_wins() {
        let index = RegionIndex::new(&[
            square("3201", 0.0, 0.0, 10.0),
            square("320102", 0.0, 0.0, 5.0),
            square("320104", 5.0, 0.0, 5.0),
        ]);
        assert_eq!(index.locate([1.0, 1.0]), Some("320102"));
        assert_eq!(index.locate([6.0, 1.0]), Some("320104"));
        assert_eq!(index.locate([1.0, 8.0]), Some("3201"));
        assert_eq!(index.locate([11.0, 1.0]), None);
    }
}
