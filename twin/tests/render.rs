//! Rendering on the real GPU path (lavapipe on machines without a GPU): colours arrive exactly,
//! the legend is drawn, and every capture shows the camera of its own request, not the frame
//! before; several views of different scenes share one frame without mixing.

use std::collections::HashMap;
use std::sync::Arc;
use twin::{
    BuildingInput, CityModel, OrbitCamera, Overlay, OverlayLayers, OverlaySpec, Renderer,
    SceneInput, ViewRequest, prepare,
};

/// Two 200 m square buildings 600 m apart in Nanjing, in grid cells with values 0.2 and 0.9.
fn scene() -> SceneInput {
    let square = |lon: f64, lat: f64| {
        let (dlon, dlat) = (0.001_06, 0.000_90); // about 100 m each way at 32°N
        vec![
            [lon - dlon, lat - dlat],
            [lon + dlon, lat - dlat],
            [lon + dlon, lat + dlat],
            [lon - dlon, lat + dlat],
            [lon - dlon, lat - dlat],
        ]
    };
    SceneInput {
        key: "test@1".into(),
        model: CityModel::from_footprints(vec![
            BuildingInput {
                id: "west".into(),
                grid_id: "g1".into(),
                footprint_lon_lat: square(118.800, 32.05),
                height_m: 60.0,
            },
            BuildingInput {
                id: "east".into(),
                grid_id: "g2".into(),
                footprint_lon_lat: square(118.807, 32.05),
                height_m: 30.0,
            },
        ]),
        regions: Vec::new(),
        overlay: Some(Overlay {
            spec: OverlaySpec {
                title: "Test".into(),
                unit: "ratio".into(),
                period: "2025".into(),
                higher_is_better: true,
                target: None,
                ramp: twin::RampKind::Diverging,
            },
            values: HashMap::from([("g1".to_string(), 0.2), ("g2".to_string(), 0.9)]),
            critical: Vec::new(),
            layers: OverlayLayers::default(),
        }),
    }
}

fn near(a: [u8; 4], b: [u8; 3], tolerance: i32) -> bool {
    (0..3).all(|i| (a[i] as i32 - b[i] as i32).abs() <= tolerance)
}

#[test]
fn renders_roof_colours_legend_and_the_requested_camera() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let prepared = Arc::new(prepare(&scene()).unwrap());
    // Straight down over the west building: its roof fills the centre.
    let top = OrbitCamera {
        yaw_deg: 0.0,
        pitch_deg: 89.0,
        distance_m: 400.0,
        target_en_m: [-330.0, 0.0],
    };
    let image = renderer.render(prepared.clone(), top, 320, 180).unwrap();
    assert_eq!(image.dimensions(), (320, 180));
    let centre = image.get_pixel(160, 90).0;
    // The lowest class of a "higher is better" ramp is red (215, 48, 39); roofs are unshaded.
    assert!(near(centre, [215, 48, 39], 2), "centre pixel {centre:?}");
    // The legend panel darkens the bottom-left corner and holds the ramp's green swatch.
    let legend_green = (0..90u32)
        .flat_map(|y| (0..120u32).map(move |x| (x, 90 + y)))
        .any(|(x, y)| near(image.get_pixel(x, y).0, [26, 152, 80], 3));
    assert!(legend_green, "no legend swatch found");

    // Same size, another camera: over the east building, which is green.
    let east = OrbitCamera {
        target_en_m: [330.0, 0.0],
        ..top
    };
    let image = renderer.render(prepared.clone(), east, 320, 180).unwrap();
    let centre = image.get_pixel(160, 90).0;
    assert!(
        near(centre, [26, 152, 80], 2),
        "the capture shows an older frame: {centre:?}"
    );

    // Same camera twice gives identical pixels (no MSAA, no temporal effects).
    let again = renderer.render(prepared, east, 320, 180).unwrap();
    assert_eq!(image, again);
}

#[test]
fn several_views_of_different_scenes_render_in_one_job() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let a = Arc::new(prepare(&scene()).unwrap());
    // The same buildings with the values swapped: only render layers keep the two apart.
    let mut swapped = scene();
    swapped.key = "swapped@1".into();
    if let Some(o) = &mut swapped.overlay {
        o.values = HashMap::from([("g1".to_string(), 0.9), ("g2".to_string(), 0.2)]);
    }
    let b = Arc::new(prepare(&swapped).unwrap());
    let top = OrbitCamera {
        yaw_deg: 0.0,
        pitch_deg: 89.0,
        distance_m: 400.0,
        target_en_m: [-330.0, 0.0],
    };
    let views = vec![
        ViewRequest {
            scene: a.clone(),
            camera: top,
            width: 320,
            height: 180,
        },
        ViewRequest {
            scene: b,
            camera: top,
            width: 200,
            height: 120,
        },
    ];
    let images = renderer.render_views(views).unwrap();
    assert_eq!(images[0].dimensions(), (320, 180));
    assert_eq!(images[1].dimensions(), (200, 120));
    let red = images[0].get_pixel(160, 90).0;
    let green = images[1].get_pixel(100, 60).0;
    assert!(near(red, [215, 48, 39], 2), "view 0 shows {red:?}");
    assert!(near(green, [26, 152, 80], 2), "view 1 shows {green:?}");
    // One view at a time gives the same pixels as the shared frame.
    assert_eq!(images[0], renderer.render(a, top, 320, 180).unwrap());
}
