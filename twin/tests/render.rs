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

/// Looking straight down at the west building, which is red.
fn top() -> OrbitCamera {
    OrbitCamera {
        yaw_deg: 0.0,
        pitch_deg: 89.0,
        distance_m: 400.0,
        target_en_m: [-330.0, 0.0],
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
    let top = top();
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
    let top = top();
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
    let images: Vec<_> = renderer
        .render_views(views)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(images[0].dimensions(), (320, 180));
    assert_eq!(images[1].dimensions(), (200, 120));
    let red = images[0].get_pixel(160, 90).0;
    let green = images[1].get_pixel(100, 60).0;
    assert!(near(red, [215, 48, 39], 2), "view 0 shows {red:?}");
    assert!(near(green, [26, 152, 80], 2), "view 1 shows {green:?}");
    // One view at a time gives the same pixels as the shared frame.
    assert_eq!(images[0], renderer.render(a, top, 320, 180).unwrap());
}

/// Multi-view capture, again and again: each job changes the views' sizes (new render
/// targets, the case Bevy's screenshot could skip), and every view of every job must come
/// back, at its size, showing its own scene. Once in three runs of the stream benchmark, a
/// fresh renderer used to fail its first frames with "not every view was captured".
#[test]
fn multi_view_capture_is_reliable_over_many_jobs() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let a = Arc::new(prepare(&scene()).unwrap());
    let top = top();
    for job in 0..60u32 {
        let views: Vec<ViewRequest> = (0..4u32)
            .map(|k| ViewRequest {
                scene: a.clone(),
                camera: top,
                // Sizes change with every job, so targets are made anew each time.
                width: 256 + 32 * ((job + k) % 5),
                height: 144 + 16 * ((job * 3 + k) % 4),
            })
            .collect();
        let sizes: Vec<(u32, u32)> = views.iter().map(|v| (v.width, v.height)).collect();
        let images = renderer.render_views(views).unwrap();
        for (k, (image, size)) in images.into_iter().zip(sizes).enumerate() {
            let image = image.unwrap_or_else(|e| panic!("job {job} view {k}: {e}"));
            assert_eq!(image.dimensions(), size, "job {job} view {k}");
            let centre = image.get_pixel(size.0 / 2, size.1 / 2).0;
            assert!(
                near(centre, [215, 48, 39], 2),
                "job {job} view {k} shows {centre:?}"
            );
        }
    }
}

/// A view that cannot be captured fails alone: beside a 4096×4096 view (which used to fail the
/// whole job), a small view of the same job still comes back, and the big one either comes
/// back at its size or is a `CaptureFailed` naming it.
#[test]
fn a_view_that_fails_to_capture_fails_alone() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let a = Arc::new(prepare(&scene()).unwrap());
    let top = top();
    let view = |width, height| ViewRequest {
        scene: a.clone(),
        camera: top,
        width,
        height,
    };
    let images = renderer
        .render_views(vec![view(4096, 4096), view(160, 90)])
        .unwrap();
    match &images[0] {
        Ok(big) => assert_eq!(big.dimensions(), (4096, 4096)),
        Err(twin::TwinError::CaptureFailed { view, width, .. }) => {
            assert_eq!((*view, *width), (0, 4096));
        }
        Err(other) => panic!("the big view failed otherwise: {other}"),
    }
    let small = images[1].as_ref().expect("the small view of the same job");
    assert_eq!(small.dimensions(), (160, 90));
    assert!(near(small.get_pixel(80, 45).0, [215, 48, 39], 2));
    // And the renderer serves the next job as before.
    assert!(renderer.render(a, top, 160, 90).is_ok());
}

/// A screenshot Bevy skips (its target not on the GPU when extracted: it is never captured,
/// and nothing says so) is asked for again: with fewer losses than attempts every view comes
/// back right; with more, that view alone fails, the others and the next job are unharmed.
/// (Without the retry, one lost screenshot failed the whole job.)
#[test]
fn a_lost_capture_is_asked_again_and_fails_its_view_alone() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let a = Arc::new(prepare(&scene()).unwrap());
    let top = top();
    let views = || {
        vec![
            ViewRequest {
                scene: a.clone(),
                camera: top,
                width: 320,
                height: 180,
            },
            ViewRequest {
                scene: a.clone(),
                camera: top,
                width: 240,
                height: 135,
            },
        ]
    };
    let images = renderer.render_views_losing_captures(views(), 2).unwrap();
    for (k, image) in images.iter().enumerate() {
        let image = image.as_ref().unwrap_or_else(|e| panic!("view {k}: {e}"));
        let (w, h) = image.dimensions();
        assert!(
            near(image.get_pixel(w / 2, h / 2).0, [215, 48, 39], 2),
            "view {k}"
        );
    }
    let images = renderer.render_views_losing_captures(views(), 100).unwrap();
    match &images[0] {
        Err(twin::TwinError::CaptureFailed { view, attempts, .. }) => {
            assert_eq!(*view, 0);
            assert!(*attempts > 1, "asked {attempts} times");
        }
        other => panic!(
            "view 0 should have failed alone: {:?}",
            other.as_ref().map(|i| i.dimensions())
        ),
    }
    assert_eq!(images[1].as_ref().unwrap().dimensions(), (240, 135));
    let next = renderer.render(a, top, 320, 180).unwrap();
    assert!(near(next.get_pixel(160, 90).0, [215, 48, 39], 2));
}

/// Far away a tile is drawn as its impostor and near in full: a test impostor baked at half
/// shade shows exactly where it is drawn. Views smaller than 720 lines switch as 720 does.
#[test]
fn far_tiles_are_drawn_as_their_impostors_and_near_ones_in_full() {
    let renderer = Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut prepared = prepare(&scene()).unwrap();
    assert!(prepared.impostors.iter().all(|i| i.size > 0));
    let switch_m = prepared
        .impostors
        .iter()
        .map(|i| i.switch_distance_m(720))
        .fold(0.0f32, f32::max);
    for i in &mut prepared.impostors {
        i.shades.iter_mut().for_each(|s| *s /= 2);
    }
    let prepared = Arc::new(prepared);
    let at = |distance_m: f32, width: u32, height: u32| {
        let camera = OrbitCamera {
            distance_m,
            ..top()
        };
        let image = renderer
            .render(prepared.clone(), camera, width, height)
            .unwrap_or_else(|e| panic!("{width}x{height} from {distance_m} m: {e}"));
        image.get_pixel(width / 2, height / 2).0
    };
    // Near: the west building's roof in full colour (the lowest class, red 215, 48, 39).
    let near_px = at(400.0, 320, 180);
    assert!(near(near_px, [215, 48, 39], 3), "{near_px:?}");
    // Beyond the switch: the impostor's half shade, in linear light.
    let half = |c: u8| {
        let linear = ((c as f32 / 255.0 + 0.055) / 1.055).powf(2.4) * (127.0 / 255.0);
        (255.0 * (1.055 * linear.powf(1.0 / 2.4) - 0.055)).round() as u8
    };
    // A 180-line view beyond the switch sees the impostor (it switches as 720 lines do). The
    // views go from small to large once: going back to 320×180 after 1280×720 lost a capture
    // in 2 of about 27 runs (an open renderer question, see the issue-14 note).
    let small_far = at(switch_m * 1.05, 320, 180);
    assert!(
        near(small_far, [half(215), half(48), half(39)], 12),
        "{small_far:?}"
    );
    let far_px = at(switch_m * 1.05, 1280, 720);
    assert!(
        near(far_px, [half(215), half(48), half(39)], 6),
        "{far_px:?}"
    );
    // Just inside the switch, the building in full.
    let inside = at(switch_m * 0.8, 1280, 720);
    assert!(near(inside, [215, 48, 39], 6), "{inside:?}");
}
