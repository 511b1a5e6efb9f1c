//! The planners' interaction logic in a windowless Bevy app: clicks pick and describe the
//! building under the cursor with its value, drags orbit and pan, the wheel zooms, keys step
//! through periods (recolouring without new geometry) and toggle layers.

use bevy::prelude::*;
use std::collections::HashMap;
use twin::planner::{DragButton, LayerToggle, Planner, PlannerInput, PlannerKey, PlannerPlugin};
use twin::{
    BuildingInput, CityModel, OrbitCamera, Overlay, OverlayLayers, OverlaySpec, Pick, RegionShape,
    SceneInput, prepare,
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

fn overlay(period: &str, west: f64, east: f64) -> Overlay {
    Overlay {
        spec: OverlaySpec {
            title: "按时办结率".into(),
            unit: "ratio".into(),
            period: period.into(),
            higher_is_better: true,
            target: None,
            ramp: twin::RampKind::Diverging,
        },
        values: HashMap::from([("320102".into(), west), ("320104".into(), east)]),
        critical: Vec::new(),
        layers: OverlayLayers {
            buildings: true,
            choropleth: true,
            ..OverlayLayers::default()
        },
    }
}

fn app() -> App {
    let building = |id: &str, lon: f64, code: &str| BuildingInput {
        id: id.into(),
        grid_id: code.into(),
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
    let periods = vec![overlay("2024", 0.95, 0.2), overlay("2025", 0.3, 0.9)];
    let scene = prepare(&SceneInput {
        key: "planner".into(),
        model: CityModel::from_footprints(vec![
            building("west", 118.79, "320102"),
            building("east", 118.81, "320104"),
        ]),
        regions: vec![region("320102", 118.79), region("320104", 118.81)],
        overlay: None,
    })
    .unwrap();
    let west = scene
        .frame
        .projector()
        .unwrap()
        .point([118.79, 32.05])
        .unwrap();
    let camera = OrbitCamera {
        yaw_deg: 0.0,
        pitch_deg: 89.0,
        distance_m: 1500.0,
        target_en_m: west,
    };
    let far = OrbitCamera {
        distance_m: 9000.0,
        ..camera
    };
    let planner = Planner::new(
        scene,
        camera,
        vec![("far".into(), far)],
        periods,
        (640, 360),
    );
    let mut app = App::new();
    app.add_plugins(PlannerPlugin).insert_resource(planner);
    app
}

fn send(app: &mut App, inputs: &[PlannerInput]) {
    for i in inputs {
        app.world_mut().write_message(*i);
    }
    app.update();
}

fn planner(app: &App) -> &Planner {
    app.world().resource::<Planner>()
}

fn click(app: &mut App, at: [f32; 2]) {
    send(
        app,
        &[
            PlannerInput::Pressed {
                button: DragButton::Orbit,
                at,
            },
            PlannerInput::Released {
                button: DragButton::Orbit,
                at,
            },
        ],
    );
}

#[test]
fn a_click_describes_the_building_and_its_value_in_the_period_shown() {
    let mut app = app();
    assert_eq!(planner(&app).period_label(), Some("2025"));
    click(&mut app, [320.0, 180.0]);
    let s = planner(&app).selection.clone().expect("a selection");
    assert!(
        matches!(&s.pick, Pick::Object { id, .. } if id == "west"),
        "{s:?}"
    );
    assert_eq!(s.region.as_deref(), Some("320102"));
    assert_eq!(s.value, Some(0.3));
    assert!(
        s.lines.iter().any(|l| l == "按时办结率 2025: 30.0%"),
        "{:?}",
        s.lines
    );
    let west_colour = planner(&app).scene.colour_table[0];

    // A step back in time recolours the building and the panel, with the same geometry.
    let tiles_before = planner(&app).scene.tiles.clone();
    send(&mut app, &[PlannerInput::Key(PlannerKey::PreviousPeriod)]);
    let p = planner(&app);
    assert_eq!(p.period_label(), Some("2024"));
    assert_eq!(p.selection.as_ref().unwrap().value, Some(0.95));
    assert_ne!(p.scene.colour_table[0], west_colour);
    assert_eq!(p.scene.tiles, tiles_before);
    assert!(p.changed.overlay && p.changed.panel);
    // There is nothing before the first period.
    send(&mut app, &[PlannerInput::Key(PlannerKey::PreviousPeriod)]);
    assert_eq!(planner(&app).period_label(), Some("2024"));

    // A click on open ground picks the region.
    click(&mut app, [100.0, 180.0]);
    let s = planner(&app).selection.clone().unwrap();
    assert!(
        matches!(&s.pick, Pick::Region { code, .. } if code == "320102"),
        "{s:?}"
    );
}

#[test]
fn drags_orbit_and_pan_and_the_wheel_zooms() {
    let mut app = app();
    let start = planner(&app).camera;
    send(
        &mut app,
        &[
            PlannerInput::Pressed {
                button: DragButton::Orbit,
                at: [100.0, 100.0],
            },
            PlannerInput::Moved { at: [150.0, 100.0] },
            PlannerInput::Moved { at: [200.0, 100.0] },
            PlannerInput::Released {
                button: DragButton::Orbit,
                at: [200.0, 100.0],
            },
        ],
    );
    let p = planner(&app);
    assert!(p.selection.is_none(), "a drag is not a click");
    // 100 px right turns the camera 30 degrees anticlockwise (yaw wraps to 330).
    assert!(
        (p.camera.yaw_deg - 330.0).abs() < 1e-3,
        "{}",
        p.camera.yaw_deg
    );

    // At yaw 330 the camera stands north-north-west of its target, so screen right points
    // west-south-west; a pan drag to the right moves the content right and the target the
    // other way, east-north-east.
    let before = planner(&app).camera.target_en_m;
    send(
        &mut app,
        &[
            PlannerInput::Pressed {
                button: DragButton::Pan,
                at: [300.0, 200.0],
            },
            PlannerInput::Moved { at: [400.0, 200.0] },
            PlannerInput::Released {
                button: DragButton::Pan,
                at: [400.0, 200.0],
            },
        ],
    );
    let after = planner(&app).camera.target_en_m;
    let moved_m = ((after[0] - before[0]).powi(2) + (after[1] - before[1]).powi(2)).sqrt();
    // 100 px at 1500 m with a 40 degree field of view over 360 px: about 303 m.
    assert!((moved_m - 303.3).abs() < 1.0, "{moved_m}");
    assert!(
        after[0] > before[0],
        "dragging right at yaw 330 moves the target east"
    );

    send(&mut app, &[PlannerInput::Zoom { lines: 2.0 }]);
    let d = planner(&app).camera.distance_m;
    assert!((d - 1500.0 * 0.85f32.powi(2)).abs() < 0.1, "{d}");

    send(&mut app, &[PlannerInput::Key(PlannerKey::Bookmark(0))]);
    assert_eq!(planner(&app).camera.distance_m, 9000.0);
    send(&mut app, &[PlannerInput::Key(PlannerKey::Home)]);
    assert_eq!(planner(&app).camera, start);
}

#[test]
fn keys_toggle_layers() {
    let mut app = app();
    assert!(planner(&app).scene.choropleth.is_some());
    send(
        &mut app,
        &[PlannerInput::Key(PlannerKey::Toggle(
            LayerToggle::Choropleth,
        ))],
    );
    assert!(planner(&app).scene.choropleth.is_none());
    let coloured = planner(&app).scene.colour_table[0];
    send(
        &mut app,
        &[PlannerInput::Key(PlannerKey::Toggle(
            LayerToggle::Buildings,
        ))],
    );
    // Buildings fall back to their plain colour.
    assert_ne!(planner(&app).scene.colour_table[0], coloured);
    send(
        &mut app,
        &[PlannerInput::Key(PlannerKey::Toggle(LayerToggle::Columns))],
    );
    assert!(planner(&app).scene.columns.is_some());
}
