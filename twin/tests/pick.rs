//! Picking without a GPU: the pixel under a building names it; the ground names the region.

use std::collections::HashMap;
use twin::{
    BuildingInput, CityModel, OrbitCamera, Overlay, OverlayLayers, OverlaySpec, Pick, RegionShape,
    SceneInput, pick, prepare,
};

fn square(lon: f64, lat: f64, half_deg: f64) -> Vec<[f64; 2]> {
    vec![
        [lon - half_deg, lat - half_deg],
        [lon + half_deg, lat - half_deg],
        [lon + half_deg, lat + half_deg],
        [lon - half_deg, lat + half_deg],
        [lon - half_deg, lat - half_deg],
    ]
}

#[test]
fn clicks_name_the_building_else_the_region() {
    let building = |id: &str, lon: f64| BuildingInput {
        id: id.into(),
        grid_id: "g".into(),
        footprint_lon_lat: square(lon, 32.05, 0.0009),
        height_m: 40.0,
    };
    let region = |code: &str, lon: f64| RegionShape {
        code: code.into(),
        name: format!("region {code}"),
        polygons: vec![vec![{
            let mut r = square(lon, 32.05, 0.01);
            r.pop();
            r
        }]],
    };
    let input = SceneInput {
        key: "pick".into(),
        model: CityModel::from_footprints(vec![building("west", 118.79), building("east", 118.81)]),
        regions: vec![region("320102", 118.79), region("320104", 118.81)],
        overlay: Some(Overlay {
            spec: OverlaySpec {
                title: "t".into(),
                unit: "ratio".into(),
                period: "2025".into(),
                higher_is_better: true,
                target: None,
                ramp: twin::RampKind::Diverging,
            },
            values: HashMap::from([("320102".into(), 0.4), ("320104".into(), 0.9)]),
            critical: Vec::new(),
            layers: OverlayLayers {
                choropleth: true,
                ..OverlayLayers::default()
            },
        }),
    };
    let scene = prepare(&input).unwrap();
    let west_en = {
        let p = scene.frame.projector().unwrap();
        p.point([118.79, 32.05]).unwrap()
    };
    let top = OrbitCamera {
        yaw_deg: 0.0,
        pitch_deg: 89.0,
        distance_m: 1500.0,
        target_en_m: west_en,
    };
    let size = (640, 360);
    // The centre pixel is the west building's roof, 40 m up.
    match pick(&scene, &top, size, [320.0, 180.0]) {
        Some(Pick::Object { id, at_enu_m, .. }) => {
            assert_eq!(id, "west");
            assert!((at_enu_m[2] - 40.0).abs() < 0.5, "{at_enu_m:?}");
        }
        other => panic!("{other:?}"),
    }
    // Near the left edge there is no building but the west region's ground.
    match pick(&scene, &top, size, [100.0, 180.0]) {
        Some(Pick::Region { code, .. }) => assert_eq!(code, "320102"),
        other => panic!("{other:?}"),
    }
    // Looking at the sky picks nothing.
    let level = OrbitCamera {
        pitch_deg: 5.0,
        ..top
    };
    assert_eq!(pick(&scene, &level, size, [320.0, 5.0]), None);
}
