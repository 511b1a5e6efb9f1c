//! The planners' window: a real window (winit, X11) showing one prepared scene, driven by the
//! [`Planner`](crate::planner::Planner) logic. Left-drag orbits, right-drag pans, the wheel
//! zooms, a click picks a building or region into the panel (top right); keys `1`-`4`
//! toggle buildings, choropleth, columns and labels, `[` and `]` step through periods, `F1`-`F8`
//! jump to bookmarks, `H` goes home, `F12` saves a screenshot, `Esc` closes.
//!
//! Picks, screenshots and readiness are also printed on stdout, one JSON object per line, so
//! scripts and tests can follow a session.
//!
//! One Bevy plugin per feature, configured on the plugin, with state in resources:
//! [`ViewPlugin`] (scene, camera, labels), [`MouseKeyboardPlugin`] (input into planner
//! messages), [`OverlayViewPlugin`] (colour table, overlay meshes, legend), [`PickPanelPlugin`]
//! and [`CapturePlugin`] (screenshots, exit, readiness), beside the windowless
//! [`PlannerPlugin`] and the material's [`TwinMaterialPlugin`].

use crate::TwinError;
use crate::material::{TwinMaterial, TwinMaterialPlugin};
use crate::planner::{
    DragButton, LayerToggle, Planner, PlannerInput, PlannerKey, PlannerPlugin, PlannerSystems,
};
use crate::render::{
    BACKGROUND, SceneEntities, apply_levels, camera_transform, colour_table_image, load_cjk_font,
    plain_material, projection, refresh_impostors, spawn_labels, spawn_legend, spawn_overlays,
    spawn_scene,
};
use bevy::{
    core_pipeline::tonemapping::{DebandDither, Tonemapping},
    input::mouse::{MouseScrollUnit, MouseWheel},
    prelude::*,
    render::view::screenshot::{Screenshot, ScreenshotCaptured},
    text::{Font, FontSource},
    window::{PrimaryWindow, WindowResized, WindowResolution},
};
use std::io::Write;
use std::path::PathBuf;

/// How the window is opened.
#[derive(Clone, Debug)]
pub struct WindowOptions {
    pub title: String,
    /// Logical size, pixels.
    pub size: (u32, u32),
    /// Where `F12` saves a screenshot.
    pub screenshot_to: PathBuf,
}

/// Entities of the view that change as the planner acts.
#[derive(Resource)]
struct View {
    /// The scene's title, shown with the period.
    title_text: String,
    camera: Entity,
    material: Handle<TwinMaterial>,
    scene: SceneEntities,
    font: Option<Handle<Font>>,
    legend: Option<Entity>,
    labels: Option<Entity>,
    panel: Option<Entity>,
    title: Entity,
}

fn print_json(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Opens the window and runs until it is closed.
pub fn run_window(planner: Planner, options: WindowOptions) -> Result<(), TwinError> {
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        return Err(TwinError::NoDevice {
            detail: "no display: DISPLAY is not set (on a machine without a screen, run under \
                     Xvfb: xvfb-run databrain twin ...)"
                .into(),
        });
    }
    let (w, h) = options.size;
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: options.title.clone(),
                    resolution: WindowResolution::new(w, h),
                    ..default()
                }),
                ..default()
            })
            .disable::<bevy::log::LogPlugin>(),
    )
    .insert_resource(planner)
    .add_plugins((
        TwinMaterialPlugin,
        PlannerPlugin,
        ViewPlugin {
            title: options.title.clone(),
        },
        MouseKeyboardPlugin,
        OverlayViewPlugin,
        PickPanelPlugin,
        CapturePlugin {
            screenshot_to: options.screenshot_to.clone(),
        },
    ));
    app.run();
    Ok(())
}

fn setup(world: &mut World) {
    let font = load_cjk_font().map(|b| {
        world
            .resource_mut::<Assets<Font>>()
            .add(Font::from_bytes(b))
    });
    let material = plain_material(world);
    let (camera_transform_now, projection_now) = {
        let p = world.resource::<Planner>();
        (camera_transform(&p.camera), projection(&p.camera, &p.scene))
    };
    let camera = world
        .spawn((
            Camera3d::default(),
            Camera {
                clear_color: ClearColorConfig::Custom(BACKGROUND),
                ..default()
            },
            Msaa::Off,
            Tonemapping::None,
            DebandDither::Disabled,
            projection_now,
            camera_transform_now,
        ))
        .id();
    let scene = {
        let planner = world.resource::<Planner>();
        let prepared = planner.scene.clone();
        spawn_scene(world, &prepared, &material)
    };
    let title_text = world.resource::<ViewConfig>().title.clone();
    let title = world
        .spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(16.0),
                top: Val::Px(12.0),
                ..default()
            },
            Text::new(title_text),
            TextFont {
                font: font.clone().map(FontSource::from).unwrap_or_default(),
                font_size: FontSize::Px(18.0),
                ..default()
            },
            TextColor(Color::WHITE),
            UiTargetCamera(camera),
        ))
        .id();
    world.spawn((
        Node {
            position_type: PositionType::Absolute,
            right: Val::Px(16.0),
            bottom: Val::Px(12.0),
            ..default()
        },
        Text::new("拖动 drag: orbit · 右键 right: pan · 滚轮 wheel: zoom · 单击 click: pick\n1-4 layers · [ ] period · F1-F8 bookmarks · H home · F12 screenshot"),
        TextFont {
            font: font.clone().map(FontSource::from).unwrap_or_default(),
            font_size: FontSize::Px(12.0),
            ..default()
        },
        TextColor(Color::srgb(0.75, 0.78, 0.85)),
        UiTargetCamera(camera),
    ));
    world.insert_resource(View {
        title_text: world.resource::<ViewConfig>().title.clone(),
        camera,
        material,
        scene,
        font,
        legend: None,
        labels: None,
        panel: None,
        title,
    });
}

/// Turns mouse, wheel, resize and planner keys into [`PlannerInput`].
fn read_input(
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    mut wheel: MessageReader<MouseWheel>,
    mut resized: MessageReader<WindowResized>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut out: MessageWriter<PlannerInput>,
    mut last_cursor: Local<Option<[f32; 2]>>,
) {
    let Ok(window) = windows.single() else { return };
    for r in resized.read() {
        out.write(PlannerInput::Resized {
            width: r.width as u32,
            height: r.height as u32,
        });
    }
    if let Some(c) = window.cursor_position() {
        let at = [c.x, c.y];
        if *last_cursor != Some(at) {
            out.write(PlannerInput::Moved { at });
            *last_cursor = Some(at);
        }
        for (button, drag) in [
            (MouseButton::Left, DragButton::Orbit),
            (MouseButton::Right, DragButton::Pan),
            (MouseButton::Middle, DragButton::Pan),
        ] {
            if buttons.just_pressed(button) {
                out.write(PlannerInput::Pressed { button: drag, at });
            }
            if buttons.just_released(button) {
                out.write(PlannerInput::Released { button: drag, at });
            }
        }
    }
    for w in wheel.read() {
        let lines = match w.unit {
            MouseScrollUnit::Line => w.y,
            MouseScrollUnit::Pixel => w.y / 40.0,
        };
        out.write(PlannerInput::Zoom { lines });
    }
    let bindings = [
        (KeyCode::BracketRight, PlannerKey::NextPeriod),
        (KeyCode::BracketLeft, PlannerKey::PreviousPeriod),
        (KeyCode::Digit1, PlannerKey::Toggle(LayerToggle::Buildings)),
        (KeyCode::Digit2, PlannerKey::Toggle(LayerToggle::Choropleth)),
        (KeyCode::Digit3, PlannerKey::Toggle(LayerToggle::Columns)),
        (KeyCode::Digit4, PlannerKey::Toggle(LayerToggle::Labels)),
        (KeyCode::KeyH, PlannerKey::Home),
        (KeyCode::F1, PlannerKey::Bookmark(0)),
        (KeyCode::F2, PlannerKey::Bookmark(1)),
        (KeyCode::F3, PlannerKey::Bookmark(2)),
        (KeyCode::F4, PlannerKey::Bookmark(3)),
        (KeyCode::F5, PlannerKey::Bookmark(4)),
        (KeyCode::F6, PlannerKey::Bookmark(5)),
        (KeyCode::F7, PlannerKey::Bookmark(6)),
        (KeyCode::F8, PlannerKey::Bookmark(7)),
    ];
    for (code, key) in bindings {
        if keys.just_pressed(code) {
            out.write(PlannerInput::Key(key));
        }
    }
}

/// Screenshot and exit keys, which are the window's, not the planner's.
fn keys_outside_the_planner(
    keys: Res<ButtonInput<KeyCode>>,
    options: Res<CaptureConfig>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    if keys.just_pressed(KeyCode::F12) {
        let path = options.screenshot_to.clone();
        commands.spawn(Screenshot::primary_window()).observe(
            move |captured: On<ScreenshotCaptured>| {
                let saved = captured
                    .image
                    .clone()
                    .try_into_dynamic()
                    .map_err(|e| e.to_string())
                    .and_then(|i| i.to_rgb8().save(&path).map_err(|e| e.to_string()));
                match saved {
                    Ok(()) => print_json(serde_json::json!({ "screenshot": path })),
                    Err(e) => print_json(serde_json::json!({ "screenshot_error": e })),
                }
            },
        );
    }
    if keys.just_pressed(KeyCode::Escape) {
        exit.write(AppExit::Success);
    }
}

/// Says once, after the first frames are drawn, that the window takes input.
fn announce_ready(mut frames: Local<u32>, planner: Res<Planner>) {
    *frames += 1;
    if *frames == 5 {
        print_json(serde_json::json!({
            "ready": { "width": planner.viewport.0, "height": planner.viewport.1 },
        }));
    }
}

/// Labels follow the camera and the overlay; they are rebuilt when either changed (this runs
/// before the systems that clear those flags).
fn sync_labels(world: &mut World) {
    let changed = world.resource::<Planner>().changed;
    if !(changed.camera || changed.overlay) {
        return;
    }
    world.resource_scope(|world, mut view: Mut<View>| {
        let planner = world.resource::<Planner>();
        let (scene, camera, viewport) = (planner.scene.clone(), planner.camera, planner.viewport);
        if let Some(e) = view.labels.take() {
            world.entity_mut(e).despawn();
        }
        view.labels = spawn_labels(
            world,
            &scene,
            &camera,
            viewport,
            view.camera,
            view.font.clone(),
        );
    });
}

fn sync_camera(world: &mut World) {
    if !std::mem::take(&mut world.resource_mut::<Planner>().changed.camera) {
        return;
    }
    let planner = world.resource::<Planner>();
    let (transform, projection) = (
        camera_transform(&planner.camera),
        projection(&planner.camera, &planner.scene),
    );
    let lines = planner.viewport.1;
    let scene = planner.scene.clone();
    world.resource_scope(|world, mut view: Mut<View>| {
        world
            .entity_mut(view.camera)
            .insert((transform, projection));
        apply_levels(world, &mut view.scene, &scene, lines);
    });
}

/// The overlay changed (period, layers): new colour table data (the geometry stays), new
/// overlay meshes, legend and title.
fn sync_overlay(world: &mut World) {
    if !std::mem::take(&mut world.resource_mut::<Planner>().changed.overlay) {
        return;
    }
    world.resource_scope(|world, mut view: Mut<View>| {
        let planner = world.resource::<Planner>();
        let scene = planner.scene.clone();
        let height = planner.viewport.1;
        let title = match planner.period_label() {
            Some(p) => format!("{} · {p}", view.title_text),
            None => view.title_text.clone(),
        };
        let table = colour_table_image(&scene);
        let handle = view.scene.colour_table.clone();
        if let Some(mut image) = world.resource_mut::<Assets<Image>>().get_mut(&handle) {
            image.data = table.data;
        }
        refresh_impostors(world, &view.scene, &scene);
        for e in std::mem::take(&mut view.scene.overlays) {
            world.entity_mut(e).despawn();
        }
        let material = view.material.clone();
        view.scene.overlays = spawn_overlays(world, &scene, &material);
        if let Some(e) = view.legend.take() {
            world.entity_mut(e).despawn();
        }
        view.legend = spawn_legend(world, &scene, height, view.camera, view.font.clone());
        if let Some(mut text) = world.get_mut::<Text>(view.title) {
            text.0 = title;
        }
    });
}

/// The pick panel (top right) shows the selection; each pick is also printed as JSON.
fn sync_panel(world: &mut World) {
    if !std::mem::take(&mut world.resource_mut::<Planner>().changed.panel) {
        return;
    }
    world.resource_scope(|world, mut view: Mut<View>| {
        if let Some(e) = view.panel.take() {
            world.entity_mut(e).despawn();
        }
        let planner = world.resource::<Planner>();
        let Some(selection) = planner.selection.clone() else {
            return;
        };
        let period = planner.period_label().map(str::to_owned);
        let font = view.font.clone();
        let mut panel = world.spawn((
            Node {
                position_type: PositionType::Absolute,
                right: Val::Px(16.0),
                top: Val::Px(48.0),
                max_width: Val::Px(460.0),
                padding: UiRect::all(Val::Px(10.0)),
                flex_direction: FlexDirection::Column,
                row_gap: Val::Px(3.0),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.75)),
            UiTargetCamera(view.camera),
        ));
        panel.with_children(|p| {
            for (i, line) in selection.lines.iter().enumerate() {
                p.spawn((
                    Text::new(line.clone()),
                    TextFont {
                        font: font.clone().map(FontSource::from).unwrap_or_default(),
                        font_size: FontSize::Px(if i == 0 { 16.0 } else { 13.0 }),
                        ..default()
                    },
                    TextColor(Color::WHITE),
                ));
            }
        });
        view.panel = Some(panel.id());
        let (kind, id) = match &selection.pick {
            crate::Pick::Object { id, .. } => ("object", id.clone()),
            crate::Pick::Region { code, .. } => ("region", code.clone()),
        };
        print_json(serde_json::json!({ "picked": {
            "kind": kind, "id": id, "region": selection.region,
            "value": selection.value, "period": period, "lines": selection.lines,
        }}));
    });
}

/// Configuration of [`ViewPlugin`], as a resource for its start-up system.
#[derive(Resource, Clone)]
struct ViewConfig {
    title: String,
}

/// The scene and camera: spawns the prepared scene's meshes, the camera and the fixed UI at
/// start, and moves the camera when the planner does.
pub struct ViewPlugin {
    pub title: String,
}

impl Plugin for ViewPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ViewConfig {
            title: self.title.clone(),
        })
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (sync_labels, sync_camera).chain().in_set(ViewSystems),
        );
    }
}

/// Where the view systems run, so overlay and panel updates can follow the labels.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ViewSystems;

/// Mouse, wheel, resize and keys into [`PlannerInput`] messages.
pub struct MouseKeyboardPlugin;

impl Plugin for MouseKeyboardPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PreUpdate, read_input.before(PlannerSystems));
    }
}

/// Overlay changes (period steps, layer toggles) applied without touching geometry.
pub struct OverlayViewPlugin;

impl Plugin for OverlayViewPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, sync_overlay.after(ViewSystems));
    }
}

/// The pick panel.
pub struct PickPanelPlugin;

impl Plugin for PickPanelPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, sync_panel.after(ViewSystems));
    }
}

/// Configuration of [`CapturePlugin`].
#[derive(Resource, Clone)]
struct CaptureConfig {
    screenshot_to: PathBuf,
}

/// Screenshots (`F12`, saved to `screenshot_to`), `Esc` to close, and the ready line.
pub struct CapturePlugin {
    pub screenshot_to: PathBuf,
}

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(CaptureConfig {
            screenshot_to: self.screenshot_to.clone(),
        })
        .add_systems(Update, (keys_outside_the_planner, announce_ready));
    }
}
