//! The planners' interaction logic: orbit, pan and zoom the camera, click to pick a building
//! or region, keys to toggle overlay layers, step through periods and jump to bookmarks.
//!
//! [`Planner`] is a Bevy resource driven by [`PlannerInput`] messages and holds no window or
//! GPU state, so [`PlannerPlugin`] runs in a windowless app (that is how it is tested); the
//! window (`crate::window`) turns mouse and keyboard input into these messages and draws what
//! the planner says changed.

use crate::{Overlay, OverlayLayers, Pick, PreparedScene, pick, ramp};
use bevy::prelude::*;
use scenes::OrbitCamera;

/// Which drag a mouse button starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DragButton {
    /// Left button: orbit (a press and release without moving is a click).
    Orbit,
    /// Right or middle button: pan.
    Pan,
}

/// The overlay layers a key toggles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerToggle {
    Buildings,
    Choropleth,
    Columns,
    Labels,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlannerKey {
    NextPeriod,
    PreviousPeriod,
    Toggle(LayerToggle),
    /// Jump to the n-th bookmark.
    Bookmark(usize),
    /// Back to the scene's starting camera.
    Home,
}

/// Input in window pixels (origin top left).
#[derive(Message, Clone, Copy, Debug, PartialEq)]
pub enum PlannerInput {
    Pressed {
        button: DragButton,
        at: [f32; 2],
    },
    Moved {
        at: [f32; 2],
    },
    Released {
        button: DragButton,
        at: [f32; 2],
    },
    /// Wheel lines; positive zooms in.
    Zoom {
        lines: f32,
    },
    Key(PlannerKey),
    Resized {
        width: u32,
        height: u32,
    },
}

/// What a click found, with the lines the pick panel shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub pick: Pick,
    /// Region the value belongs to, if any.
    pub region: Option<String>,
    pub value: Option<f64>,
    pub lines: Vec<String>,
}

/// What changed since the view last drew; the view clears the flags it handled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Changed {
    pub camera: bool,
    pub overlay: bool,
    pub panel: bool,
}

#[derive(Clone, Copy, Debug)]
struct Drag {
    button: DragButton,
    last: [f32; 2],
    travelled_px: f32,
}

/// Movement below which a press and release is a click, pixels.
const CLICK_SLOP_PX: f32 = 4.0;

#[derive(Resource)]
pub struct Planner {
    pub scene: PreparedScene,
    pub camera: OrbitCamera,
    pub home: OrbitCamera,
    pub bookmarks: Vec<(String, OrbitCamera)>,
    /// The indicator's values per period, oldest first (empty without a binding).
    pub periods: Vec<Overlay>,
    pub period: usize,
    pub layers: OverlayLayers,
    pub viewport: (u32, u32),
    pub selection: Option<Selection>,
    pub changed: Changed,
    drag: Option<Drag>,
}

impl Planner {
    /// A planner over a prepared scene, showing the last period of `periods`.
    pub fn new(
        mut scene: PreparedScene,
        camera: OrbitCamera,
        bookmarks: Vec<(String, OrbitCamera)>,
        periods: Vec<Overlay>,
        viewport: (u32, u32),
    ) -> Planner {
        // Start at the period the scene was prepared for, else the newest.
        let shown = scene.overlay.as_ref().map(|o| o.period.clone());
        let period = periods
            .iter()
            .position(|o| Some(&o.spec.period) == shown.as_ref())
            .unwrap_or(periods.len().saturating_sub(1));
        let layers = periods.get(period).map(|o| o.layers).unwrap_or_default();
        if let Some(o) = periods.get(period) {
            scene.set_overlay(Some(o));
        }
        Planner {
            scene,
            camera,
            home: camera,
            bookmarks,
            periods,
            period,
            layers,
            viewport,
            selection: None,
            changed: Changed {
                camera: true,
                overlay: true,
                panel: true,
            },
            drag: None,
        }
    }

    /// The period shown, if the scene has a binding.
    pub fn period_label(&self) -> Option<&str> {
        self.periods
            .get(self.period)
            .map(|o| o.spec.period.as_str())
    }

    fn apply_overlay(&mut self) {
        if let Some(o) = self.periods.get(self.period) {
            let shown = Overlay {
                layers: self.layers,
                ..o.clone()
            };
            self.scene.set_overlay(Some(&shown));
            self.changed.overlay = true;
            // The panel shows the value of the period now shown.
            if let Some(s) = self.selection.take() {
                self.selection = Some(self.describe(s.pick));
                self.changed.panel = true;
            }
        }
    }

    /// Metres on the ground per pixel at the camera's target.
    fn metres_per_px(&self) -> f32 {
        let fov = crate::render::FOV_DEG.to_radians();
        self.camera.distance_m * 2.0 * (fov / 2.0).tan() / self.viewport.1.max(1) as f32
    }

    fn describe(&self, pick: Pick) -> Selection {
        let spec = self.scene.overlay.as_ref();
        let value_line = |value: Option<f64>| match spec {
            Some(s) => format!(
                "{} {}: {}",
                s.title,
                s.period,
                value.map_or("无数据 no data".to_owned(), |v| ramp::format_value(
                    v, &s.unit
                ))
            ),
            None => "无指标 no indicator bound".to_owned(),
        };
        match &pick {
            Pick::Object { index, id, .. } => {
                let o = &self.scene.objects[*index];
                let value = self.scene.value_of_object(*index);
                let mut lines = vec![
                    format!(
                        "{} {id}",
                        if o.kind.starts_with("Building") {
                            "建筑"
                        } else {
                            "对象"
                        }
                    ),
                    format!("类型 Type: {}", o.kind),
                    format!(
                        "高度 Height: {:.1} m",
                        o.height_range_m[1] - o.height_range_m[0]
                    ),
                    format!("区域 Region: {}", o.region.as_deref().unwrap_or("-")),
                    value_line(value),
                ];
                lines.extend(o.attributes.iter().map(|(k, v)| format!("{k}: {v}")));
                Selection {
                    region: o.region.clone(),
                    value,
                    lines,
                    pick,
                }
            }
            Pick::Region { code, name, .. } => {
                let value = crate::value_for(&self.scene.values, code);
                Selection {
                    region: Some(code.clone()),
                    value,
                    lines: vec![format!("区域 Region: {name} ({code})"), value_line(value)],
                    pick,
                }
            }
        }
    }

    /// Applies one input.
    pub fn handle(&mut self, input: PlannerInput) {
        match input {
            PlannerInput::Pressed { button, at } => {
                self.drag = Some(Drag {
                    button,
                    last: at,
                    travelled_px: 0.0,
                });
            }
            PlannerInput::Moved { at } => {
                let Some(drag) = &mut self.drag else { return };
                let (dx, dy) = (at[0] - drag.last[0], at[1] - drag.last[1]);
                drag.last = at;
                drag.travelled_px += (dx * dx + dy * dy).sqrt();
                if drag.travelled_px < CLICK_SLOP_PX {
                    return;
                }
                match drag.button {
                    DragButton::Orbit => self.camera.orbit(-dx * 0.3, dy * 0.2),
                    DragButton::Pan => {
                        // The content follows the mouse: the target moves the other way.
                        let m = self.metres_per_px();
                        self.camera.pan(-dx * m, dy * m);
                    }
                }
                self.changed.camera = true;
            }
            PlannerInput::Released { button, at } => {
                let Some(drag) = self.drag.take() else { return };
                if drag.button == button
                    && button == DragButton::Orbit
                    && drag.travelled_px < CLICK_SLOP_PX
                {
                    self.selection = pick(&self.scene, &self.camera, self.viewport, at)
                        .map(|p| self.describe(p));
                    self.changed.panel = true;
                }
            }
            PlannerInput::Zoom { lines } => {
                self.camera.zoom(0.85f32.powf(lines));
                self.changed.camera = true;
            }
            PlannerInput::Resized { width, height } => {
                self.viewport = (width.max(1), height.max(1));
                self.changed.camera = true;
            }
            PlannerInput::Key(key) => match key {
                PlannerKey::NextPeriod | PlannerKey::PreviousPeriod => {
                    let before = self.period;
                    self.period = match key {
                        PlannerKey::NextPeriod => {
                            (self.period + 1).min(self.periods.len().saturating_sub(1))
                        }
                        _ => self.period.saturating_sub(1),
                    };
                    if self.period != before {
                        self.apply_overlay();
                    }
                }
                PlannerKey::Toggle(layer) => {
                    let l = &mut self.layers;
                    let flag = match layer {
                        LayerToggle::Buildings => &mut l.buildings,
                        LayerToggle::Choropleth => &mut l.choropleth,
                        LayerToggle::Columns => &mut l.columns,
                        LayerToggle::Labels => &mut l.labels,
                    };
                    *flag = !*flag;
                    self.apply_overlay();
                }
                PlannerKey::Bookmark(i) => {
                    if let Some((_, c)) = self.bookmarks.get(i) {
                        self.camera = *c;
                        self.changed.camera = true;
                    }
                }
                PlannerKey::Home => {
                    self.camera = self.home;
                    self.changed.camera = true;
                }
            },
        }
    }
}

fn apply_inputs(mut planner: ResMut<Planner>, mut inputs: MessageReader<PlannerInput>) {
    for input in inputs.read() {
        planner.handle(*input);
    }
}

/// The system set in which [`PlannerInput`] messages are applied.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlannerSystems;

/// The interaction logic: the [`Planner`] resource (inserted by the caller) fed by
/// [`PlannerInput`] messages. No window or rendering needed.
pub struct PlannerPlugin;

impl Plugin for PlannerPlugin {
    fn build(&self, app: &mut App) {
        app.add_message::<PlannerInput>().add_systems(
            PreUpdate,
            apply_inputs
                .in_set(PlannerSystems)
                .after(bevy::input::InputSystems),
        );
    }
}
