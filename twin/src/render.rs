//! The headless renderer: one Bevy app on its own thread, driven by render jobs.
//!
//! The app runs without windows or winit; we pump `App::update` ourselves. A job moves the one
//! camera, points it at an image target of the requested size, shows the requested scene's
//! meshes (kept per scene key, so switching back costs nothing) and its legend, then captures
//! the frame with Bevy's `Screenshot` on an image target, which reads back the frame rendered
//! in that update, not the one before. MSAA is off and the material unlit, so output is
//! deterministic for golden images.

use crate::{OrbitCamera, PreparedScene, TwinError};
use bevy::{
    app::{PluginsState, TerminalCtrlCHandlerPlugin},
    asset::RenderAssetUsages,
    camera::RenderTarget,
    core_pipeline::tonemapping::{DebandDither, Tonemapping},
    image::ImageSampler,
    log::LogPlugin,
    mesh::{Indices, PrimitiveTopology},
    prelude::*,
    render::{
        RenderPlugin,
        pipelined_rendering::PipelinedRenderingPlugin,
        render_resource::{Extent3d, PollType, TextureDimension, TextureFormat},
        renderer::{RenderAdapterInfo, RenderDevice},
        view::screenshot::{Screenshot, ScreenshotCaptured},
    },
    text::{Font, FontSource},
    window::ExitCondition,
    winit::WinitPlugin,
};
use image::RgbaImage;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, mpsc};

pub(crate) const BACKGROUND: Color = Color::srgb(0.02, 0.035, 0.07);
const GROUND: Color = Color::srgb(0.09, 0.11, 0.15);
/// How many scenes' meshes stay on the GPU.
const MAX_SCENES: usize = 8;
/// How many image targets (one per requested size) are kept.
const MAX_TARGETS: usize = 16;

struct Job {
    scene: Arc<PreparedScene>,
    camera: OrbitCamera,
    width: u32,
    height: u32,
    reply: mpsc::Sender<Result<RgbaImage, TwinError>>,
}

/// A handle to the render thread. Cheap to share; jobs are served one at a time.
pub struct Renderer {
    jobs: mpsc::SyncSender<Job>,
    adapter: String,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Renderer {
    /// Starts the render thread and waits until the GPU (or lavapipe) is initialised.
    pub fn start() -> Result<Renderer, TwinError> {
        let (jobs, job_rx) = mpsc::sync_channel::<Job>(32);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        std::thread::Builder::new()
            .name("databrain-renderer".into())
            .spawn(move || {
                let built = std::panic::catch_unwind(AssertUnwindSafe(Headless::new));
                match built {
                    Ok(mut headless) => {
                        let _ = ready_tx.send(Ok(headless.adapter.clone()));
                        headless.serve(job_rx);
                    }
                    Err(p) => {
                        let _ = ready_tx.send(Err(panic_text(p)));
                    }
                }
            })
            .map_err(|e| TwinError::RendererGone(format!("cannot start the render thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(adapter)) => Ok(Renderer { jobs, adapter }),
            Ok(Err(detail)) => Err(TwinError::NoDevice { detail }),
            Err(_) => Err(TwinError::NoDevice {
                detail: "the render thread ended during start-up".into(),
            }),
        }
    }

    /// Name and driver of the adapter in use, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan)`.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Renders a scene from a camera into an RGBA image (blocks until done).
    pub fn render(
        &self,
        scene: Arc<PreparedScene>,
        camera: OrbitCamera,
        width: u32,
        height: u32,
    ) -> Result<RgbaImage, TwinError> {
        if !(16..=4096).contains(&width) || !(16..=4096).contains(&height) {
            return Err(TwinError::BadSize { width, height });
        }
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job {
                scene,
                camera,
                width,
                height,
                reply,
            })
            .map_err(|_| TwinError::RendererGone("the render thread has ended".into()))?;
        answer.recv().map_err(|_| {
            TwinError::RendererGone("the render thread ended during a render".into())
        })?
    }
}

struct Headless {
    app: App,
    adapter: String,
    camera: Entity,
    material: Handle<StandardMaterial>,
    targets: HashMap<(u32, u32), Handle<Image>>,
    scenes: HashMap<String, SceneEntities>,
    /// Scene keys, oldest first, so that meshes of old scenes (e.g. before a new ingest) are
    /// dropped once more than [`MAX_SCENES`] are kept.
    scene_order: Vec<String>,
    /// What the camera is set up for: scene key and size, and the legend's root entity.
    current: Option<(String, u32, u32, Option<Entity>)>,
    /// The label layer of the last render, replaced at every render (labels follow the camera).
    labels: Option<Entity>,
    /// A CJK font for labels and legends, when one is installed.
    font: Option<Handle<Font>>,
}

/// Vertical field of view of every view, degrees.
pub(crate) const FOV_DEG: f32 = 40.0;

pub(crate) fn near_m(camera: &OrbitCamera) -> f32 {
    (camera.distance_m * 1e-3).max(0.5)
}

pub(crate) fn far_m(camera: &OrbitCamera, scene: &PreparedScene) -> f32 {
    (camera.distance_m + scene.radius_m) * 4.0
}

pub(crate) fn projection(camera: &OrbitCamera, scene: &PreparedScene) -> Projection {
    Projection::Perspective(PerspectiveProjection {
        fov: FOV_DEG.to_radians(),
        near: near_m(camera),
        far: far_m(camera, scene),
        ..default()
    })
}

pub(crate) fn camera_transform(camera: &OrbitCamera) -> Transform {
    let [e, u, n] = camera.eye_enu_m();
    let target = Vec3::new(camera.target_en_m[0], 0.0, -camera.target_en_m[1]);
    Transform::from_xyz(e, u, -n).looking_at(target, Vec3::Y)
}

/// Fonts with Chinese glyphs from Debian packages, in order of preference; the first present
/// is used (`DATABRAIN_CJK_FONT` names another). Nothing is downloaded.
const CJK_FONTS: &[&str] = &[
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

pub(crate) fn load_cjk_font() -> Option<Vec<u8>> {
    let chosen = std::env::var_os("DATABRAIN_CJK_FONT").map(std::path::PathBuf::from);
    chosen
        .into_iter()
        .chain(CJK_FONTS.iter().map(std::path::PathBuf::from))
        .find_map(|p| std::fs::read(p).ok())
}

impl Headless {
    fn new() -> Headless {
        let mut app = App::new();
        app.add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(RenderPlugin {
                    synchronous_pipeline_compilation: true,
                    ..default()
                })
                .disable::<WinitPlugin>()
                .disable::<LogPlugin>()
                .disable::<PipelinedRenderingPlugin>()
                .disable::<TerminalCtrlCHandlerPlugin>(),
        );
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
        let adapter = {
            let info = app.world().resource::<RenderAdapterInfo>();
            format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
        };
        let world = app.world_mut();
        let material = world
            .resource_mut::<Assets<StandardMaterial>>()
            .add(StandardMaterial {
                base_color: Color::WHITE,
                unlit: true,
                ..default()
            });
        let font = load_cjk_font().map(|bytes| {
            world
                .resource_mut::<Assets<Font>>()
                .add(Font::from_bytes(bytes))
        });
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
                Projection::Perspective(PerspectiveProjection {
                    fov: FOV_DEG.to_radians(),
                    ..default()
                }),
                Transform::from_xyz(0.0, 1000.0, 1000.0).looking_at(Vec3::ZERO, Vec3::Y),
            ))
            .id();
        Headless {
            app,
            adapter,
            camera,
            material,
            targets: HashMap::new(),
            scenes: HashMap::new(),
            scene_order: Vec::new(),
            current: None,
            labels: None,
            font,
        }
    }

    fn serve(&mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                self.render(&job.scene, job.camera, job.width, job.height)
            }));
            match result {
                Ok(r) => {
                    let _ = job.reply.send(r);
                }
                Err(p) => {
                    // The app may be inconsistent after a panic: answer and stop serving, so
                    // callers see the renderer as gone rather than getting wrong frames.
                    let _ = job.reply.send(Err(TwinError::RendererGone(panic_text(p))));
                    return;
                }
            }
        }
    }

    fn update(&mut self) {
        self.app.update();
        // Wait for the GPU (or lavapipe) to finish the frame so that readbacks complete.
        let _ = self
            .app
            .world()
            .resource::<RenderDevice>()
            .wgpu_device()
            .poll(PollType::Wait {
                submission_index: None,
                timeout: None,
            });
    }

    fn target(&mut self, width: u32, height: u32) -> Handle<Image> {
        if self.targets.len() >= MAX_TARGETS && !self.targets.contains_key(&(width, height)) {
            // Many sizes were asked for: start over (the camera gets its new target below).
            self.targets.clear();
        }
        let world = self.app.world_mut();
        self.targets
            .entry((width, height))
            .or_insert_with(|| {
                let image =
                    Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
                world.resource_mut::<Assets<Image>>().add(image)
            })
            .clone()
    }

    fn spawn_scene(&mut self, scene: &PreparedScene) -> SceneEntities {
        let material = self.material.clone();
        spawn_scene(self.app.world_mut(), scene, &material)
    }
}

/// What a scene's entities are, so overlays can be replaced alone.
pub(crate) struct SceneEntities {
    pub(crate) entities: Vec<Entity>,
    /// The colour table image (one texel per object).
    pub(crate) colour_table: Handle<Image>,
    /// The choropleth and column entities, if drawn.
    pub(crate) overlays: Vec<Entity>,
}

/// A mesh asset from mesh data; `with_uv` adds the colour-table coordinates.
pub(crate) fn to_mesh(m: &crate::MeshData, with_uv: bool) -> Mesh {
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    );
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, m.positions.clone());
    mesh.insert_attribute(Mesh::ATTRIBUTE_NORMAL, m.normals.clone());
    mesh.insert_attribute(Mesh::ATTRIBUTE_COLOR, m.shades_linear.clone());
    if with_uv {
        mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, m.colour_uv.clone());
    }
    mesh.insert_indices(Indices::U32(m.indices.clone()));
    mesh
}

/// The colour table as an image: one texel per object, sampled without filtering.
pub(crate) fn colour_table_image(scene: &PreparedScene) -> Image {
    let mut table = Image::new(
        Extent3d {
            width: crate::mesh::COLOUR_TABLE_WIDTH,
            height: scene.colour_rows,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        scene.colour_table.iter().flatten().copied().collect(),
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
    );
    table.sampler = ImageSampler::nearest();
    table
}

/// Spawns the overlay meshes (choropleth, columns) with a vertex-colour material.
pub(crate) fn spawn_overlays(
    world: &mut World,
    scene: &PreparedScene,
    material: &Handle<StandardMaterial>,
) -> Vec<Entity> {
    // Overlays sit a little above the ground (and the choropleth under the buildings).
    let lift = (scene.radius_m * 1e-4).max(0.05);
    let mut out = Vec::new();
    for (m, y) in [(&scene.choropleth, lift), (&scene.columns, 0.0)] {
        if let Some(m) = m {
            let mesh = world.resource_mut::<Assets<Mesh>>().add(to_mesh(m, false));
            out.push(
                world
                    .spawn((
                        Mesh3d(mesh),
                        MeshMaterial3d(material.clone()),
                        Transform::from_xyz(0.0, y, 0.0),
                    ))
                    .id(),
            );
        }
    }
    out
}

/// Spawns a scene's tiles, overlays and ground; `material` is the plain vertex-colour one.
pub(crate) fn spawn_scene(
    world: &mut World,
    scene: &PreparedScene,
    material: &Handle<StandardMaterial>,
) -> SceneEntities {
    let table = world
        .resource_mut::<Assets<Image>>()
        .add(colour_table_image(scene));
    let (tile_material, ground_material) = {
        let mut materials = world.resource_mut::<Assets<StandardMaterial>>();
        (
            materials.add(StandardMaterial {
                base_color: Color::WHITE,
                base_color_texture: Some(table.clone()),
                unlit: true,
                ..default()
            }),
            materials.add(StandardMaterial {
                base_color: GROUND,
                unlit: true,
                ..default()
            }),
        )
    };
    let side = (scene.radius_m * 2.6).max(100.0);
    let lift = (scene.radius_m * 1e-4).max(0.05);
    let mut meshes: Vec<(Mesh, Handle<StandardMaterial>, f32)> = scene
        .tiles
        .iter()
        .map(|t| (to_mesh(t, true), tile_material.clone(), 0.0))
        .collect();
    meshes.push((
        Plane3d::default().mesh().size(side, side).build(),
        ground_material,
        -lift,
    ));
    let handles: Vec<_> = {
        let mut assets = world.resource_mut::<Assets<Mesh>>();
        meshes
            .into_iter()
            .map(|(m, material, y)| (assets.add(m), material, y))
            .collect()
    };
    let mut entities: Vec<Entity> = handles
        .into_iter()
        .map(|(mesh, material, y)| {
            world
                .spawn((
                    Mesh3d(mesh),
                    MeshMaterial3d(material),
                    Transform::from_xyz(0.0, y, 0.0),
                ))
                .id()
        })
        .collect();
    let overlays = spawn_overlays(world, scene, material);
    entities.extend(&overlays);
    SceneEntities {
        entities,
        colour_table: table,
        overlays,
    }
}

impl Headless {
    fn spawn_legend(&mut self, scene: &PreparedScene, height: u32) -> Option<Entity> {
        let (camera, font) = (self.camera, self.font.clone());
        spawn_legend(self.app.world_mut(), scene, height, camera, font)
    }

    fn spawn_labels(
        &mut self,
        scene: &PreparedScene,
        camera: &OrbitCamera,
        width: u32,
        height: u32,
    ) -> Option<Entity> {
        let (ui_camera, font) = (self.camera, self.font.clone());
        spawn_labels(
            self.app.world_mut(),
            scene,
            camera,
            (width, height),
            ui_camera,
            font,
        )
    }
}

/// The legend panel (bottom left) of a view of `height` pixels; `None` without an overlay.
pub(crate) fn spawn_legend(
    world: &mut World,
    scene: &PreparedScene,
    height: u32,
    camera: Entity,
    font: Option<Handle<Font>>,
) -> Option<Entity> {
    {
        let s = (height as f32 / 720.0).max(0.4);
        let px = |v: f32| Val::Px(v * s);
        let legend = scene.legend.as_ref()?;
        let text = |t: &str, size: f32, colour: Color| {
            (
                Text::new(t),
                TextFont {
                    font: font.clone().map(FontSource::from).unwrap_or_default(),
                    font_size: FontSize::Px(size * s),
                    ..default()
                },
                TextColor(colour),
            )
        };
        let mut root = world.spawn((
            Node {
                position_type: PositionType::Absolute,
                left: px(16.0),
                bottom: px(16.0),
                padding: UiRect::all(px(10.0)),
                flex_direction: FlexDirection::Column,
                row_gap: px(4.0),
                ..default()
            },
            BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.65)),
            UiTargetCamera(camera),
        ));
        root.with_children(|p| {
            p.spawn(text(&legend.title, 18.0, Color::WHITE));
            p.spawn(text(&legend.subtitle, 13.0, Color::srgb(0.75, 0.78, 0.85)));
            for e in &legend.entries {
                p.spawn(Node {
                    flex_direction: FlexDirection::Row,
                    align_items: AlignItems::Center,
                    column_gap: px(8.0),
                    ..default()
                })
                .with_children(|row| {
                    let [r, g, b, a] = e.colour_srgb;
                    row.spawn((
                        Node {
                            width: px(24.0),
                            height: px(14.0),
                            ..default()
                        },
                        BackgroundColor(Color::srgba(r, g, b, a)),
                    ));
                    row.spawn(text(&e.label, 14.0, Color::WHITE));
                });
            }
        });
        Some(root.id())
    }
}

/// Labels at their scene positions, placed in pixels for this camera (they are UI text,
/// so they stay readable at any distance). Labels behind the camera are left out.
pub(crate) fn spawn_labels(
    world: &mut World,
    scene: &PreparedScene,
    camera: &OrbitCamera,
    (width, height): (u32, u32),
    ui_camera: Entity,
    font: Option<Handle<Font>>,
) -> Option<Entity> {
    {
        if scene.labels.is_empty() {
            return None;
        }
        let s = (height as f32 / 720.0).max(0.4);
        let view_from_world = camera_transform(camera).to_matrix().inverse();
        let clip_from_view = Mat4::perspective_rh(
            FOV_DEG.to_radians(),
            width as f32 / height as f32,
            near_m(camera),
            far_m(camera, scene),
        );
        let clip_from_world = clip_from_view * view_from_world;
        let mut root = world.spawn((
            Node {
                position_type: PositionType::Absolute,
                left: Val::Px(0.0),
                top: Val::Px(0.0),
                width: Val::Px(width as f32),
                height: Val::Px(height as f32),
                ..default()
            },
            UiTargetCamera(ui_camera),
        ));
        root.with_children(|p| {
            for label in &scene.labels {
                let [e, n, u] = label.position_enu_m;
                let clip = clip_from_world * Vec4::new(e, u, -n, 1.0);
                if clip.w <= 0.0 {
                    continue;
                }
                let ndc = clip.truncate() / clip.w;
                if ndc.x.abs() > 1.0 || ndc.y.abs() > 1.0 {
                    continue;
                }
                let x = (ndc.x + 1.0) / 2.0 * width as f32;
                let y = (1.0 - ndc.y) / 2.0 * height as f32;
                p.spawn((
                    Node {
                        position_type: PositionType::Absolute,
                        left: Val::Px(x - 40.0 * s),
                        top: Val::Px(y - 10.0 * s),
                        padding: UiRect::axes(Val::Px(4.0 * s), Val::Px(1.0 * s)),
                        ..default()
                    },
                    BackgroundColor(Color::srgba(0.0, 0.0, 0.0, 0.55)),
                ))
                .with_children(|l| {
                    l.spawn((
                        Text::new(label.text.clone()),
                        TextFont {
                            font: font.clone().map(FontSource::from).unwrap_or_default(),
                            font_size: FontSize::Px(13.0 * s),
                            ..default()
                        },
                        TextColor(Color::WHITE),
                    ));
                });
            }
        });
        Some(root.id())
    }
}

impl Headless {
    fn render(
        &mut self,
        scene: &PreparedScene,
        camera: OrbitCamera,
        width: u32,
        height: u32,
    ) -> Result<RgbaImage, TwinError> {
        let same_setup = matches!(&self.current, Some((k, w, h, _)) if *k == scene.key && *w == width && *h == height);
        if !same_setup {
            if !self.scenes.contains_key(&scene.key) {
                let entities = self.spawn_scene(scene);
                self.scenes.insert(scene.key.clone(), entities);
                self.scene_order.push(scene.key.clone());
                if self.scene_order.len() > MAX_SCENES {
                    let oldest = self.scene_order.remove(0);
                    if let Some(old) = self.scenes.remove(&oldest) {
                        for e in old.entities {
                            self.app.world_mut().entity_mut(e).despawn();
                        }
                    }
                }
            }
            for (key, s) in &self.scenes {
                let visibility = if *key == scene.key {
                    Visibility::Visible
                } else {
                    Visibility::Hidden
                };
                for e in &s.entities {
                    self.app.world_mut().entity_mut(*e).insert(visibility);
                }
            }
            if let Some((_, _, _, Some(legend))) = self.current.take() {
                self.app.world_mut().entity_mut(legend).despawn();
            }
            let target = self.target(width, height);
            self.app
                .world_mut()
                .entity_mut(self.camera)
                .insert(RenderTarget::Image(target.into()));
            let legend = self.spawn_legend(scene, height);
            self.current = Some((scene.key.clone(), width, height, legend));
        }
        *self
            .app
            .world_mut()
            .get_mut::<Transform>(self.camera)
            .expect("camera has a transform") = camera_transform(&camera);
        *self
            .app
            .world_mut()
            .get_mut::<Projection>(self.camera)
            .expect("camera has a projection") = projection(&camera, scene);
        if let Some(old) = self.labels.take() {
            self.app.world_mut().entity_mut(old).despawn();
        }
        self.labels = self.spawn_labels(scene, &camera, width, height);
        if !same_setup || self.labels.is_some() {
            // Let new meshes, pipelines and UI layout settle for one frame before capturing.
            self.update();
        }
        let handle = self.targets[&(width, height)].clone();
        let (tx, rx) = mpsc::channel::<Image>();
        self.app
            .world_mut()
            .spawn(Screenshot::image(handle))
            .observe(move |captured: On<ScreenshotCaptured>| {
                let _ = tx.send(captured.image.clone());
            });
        for _ in 0..10 {
            self.update();
            if let Ok(image) = rx.try_recv() {
                let dynamic = image
                    .try_into_dynamic()
                    .map_err(|e| TwinError::RendererGone(format!("unreadable frame: {e}")))?;
                return Ok(dynamic.to_rgba8());
            }
        }
        Err(TwinError::RendererGone(
            "no frame was captured after 10 updates".into(),
        ))
    }
}
