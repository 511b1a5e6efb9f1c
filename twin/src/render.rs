//! The headless renderer: one Bevy app on its own thread, driven by render jobs.
//!
//! The app runs without windows or winit; we pump `App::update` ourselves. A job is a list of
//! views (scene, camera, size); each view has its own camera entity and image target, and all
//! views of a job are drawn in the same update. Each scene's meshes are kept (per scene key,
//! so switching back costs nothing) on a render layer of their own, and a view's camera sees
//! only its scene's layer, so views of different scenes do not mix. Frames are captured with
//! Bevy's `Screenshot` on each image target, which reads back the frame rendered in that
//! update, not the one before. MSAA is off and materials unlit, so output is deterministic for
//! golden images.

use crate::material::{ImpostorMaterial, TwinMaterial, TwinMaterialPlugin};
use crate::{OrbitCamera, PreparedScene, TwinError, impostor};
use bevy::{
    app::{PluginsState, TerminalCtrlCHandlerPlugin},
    asset::RenderAssetUsages,
    camera::{
        RenderTarget,
        primitives::Aabb,
        visibility::{NoAutoAabb, RenderLayers, VisibilityRange},
    },
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
/// How many scenes' meshes stay on the GPU (each on its own render layer, 1..=MAX_SCENES).
const MAX_SCENES: usize = 8;
/// How many views one job may hold.
pub const MAX_VIEWS: usize = 16;

/// One view to draw: a scene from a camera at a size.
#[derive(Clone)]
pub struct ViewRequest {
    pub scene: Arc<PreparedScene>,
    pub camera: OrbitCamera,
    pub width: u32,
    pub height: u32,
}

/// One view's picture, or why that view alone failed.
pub type ViewResult = Result<RgbaImage, TwinError>;

/// Updates after a screenshot is asked for before it is asked for again. Bevy skips a
/// screenshot whose target image is not yet on the GPU when it extracts it (a new or resized
/// view) and never retries it: the entity stays marked as capturing.
const RETRY_AFTER_UPDATES: usize = 3;
/// Screenshots asked for one view before that view fails alone.
const CAPTURE_ATTEMPTS: usize = 4;

struct Job {
    views: Vec<ViewRequest>,
    reply: mpsc::Sender<Result<Vec<ViewResult>, TwinError>>,
    /// Fault injection for tests: panic inside the render thread, as a lost device would.
    crash: bool,
    /// Fault injection for tests: this many screenshots of view 0 ask for an image that is
    /// not on the GPU, which Bevy skips without a word (as it does for a target not yet
    /// prepared).
    lose_captures: usize,
}

/// A handle to the render thread. Cheap to share; jobs are served one at a time.
pub struct Renderer {
    jobs: mpsc::SyncSender<Job>,
    adapter: String,
    /// Cleared when the render thread stops (after a panic); a stopped renderer is replaced.
    running: Arc<std::sync::atomic::AtomicBool>,
    /// The render thread, joined on drop: the GPU device is torn down before the process
    /// exits (a thread still inside the Vulkan driver while the process runs its exit
    /// handlers can crash it).
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Renderer {
    fn drop(&mut self) {
        // The job channel closes with this handle (its sender is the only one), so the
        // thread's loop ends and it drops the app; wait for that.
        let (closed, _) = mpsc::sync_channel::<Job>(0);
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::Builder::new()
            .name("databrain-renderer".into())
            .spawn(move || {
                let built = std::panic::catch_unwind(AssertUnwindSafe(Headless::new));
                match built {
                    Ok(mut headless) => {
                        let _ = ready_tx.send(Ok(headless.adapter.clone()));
                        headless.serve(job_rx);
                        flag.store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(p) => {
                        let _ = ready_tx.send(Err(panic_text(p)));
                    }
                }
            })
            .map_err(|e| TwinError::RendererGone(format!("cannot start the render thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(adapter)) => Ok(Renderer {
                jobs,
                adapter,
                running,
                thread: Some(thread),
            }),
            Ok(Err(detail)) => Err(TwinError::NoDevice { detail }),
            Err(_) => Err(TwinError::NoDevice {
                detail: "the render thread ended during start-up".into(),
            }),
        }
    }

    /// Whether the render thread still serves (false after a panic ended it).
    pub fn is_running(&self) -> bool {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Fault injection for tests: makes the render thread panic, as a lost device would, and
    /// waits until it has stopped.
    #[doc(hidden)]
    pub fn crash_for_tests(&self) {
        let (reply, answer) = mpsc::channel();
        let _ = self.jobs.send(Job {
            views: Vec::new(),
            reply,
            crash: true,
            lose_captures: 0,
        });
        let _ = answer.recv();
        while self.is_running() {
            std::thread::sleep(std::time::Duration::from_millis(5));
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
        let mut images = self.render_views(vec![ViewRequest {
            scene,
            camera,
            width,
            height,
        }])?;
        images.remove(0)
    }

    /// Renders several independent views in one frame of the one app, an image each, in order
    /// (blocks until done). Views may show different scenes at different sizes. The outer
    /// error fails the whole job (bad views, a stopped renderer); a view whose picture could
    /// not be read back fails alone ([`TwinError::CaptureFailed`]).
    pub fn render_views(&self, views: Vec<ViewRequest>) -> Result<Vec<ViewResult>, TwinError> {
        self.render_views_losing_captures(views, 0)
    }

    /// Fault injection for tests: [`Renderer::render_views`] with the first `lose_captures`
    /// screenshots of view 0 lost, as Bevy loses one whose target is not yet on the GPU.
    #[doc(hidden)]
    pub fn render_views_losing_captures(
        &self,
        views: Vec<ViewRequest>,
        lose_captures: usize,
    ) -> Result<Vec<ViewResult>, TwinError> {
        if views.is_empty() || views.len() > MAX_VIEWS {
            return Err(TwinError::BadViews {
                count: views.len(),
                max: MAX_VIEWS,
            });
        }
        for v in &views {
            if !(16..=4096).contains(&v.width) || !(16..=4096).contains(&v.height) {
                return Err(TwinError::BadSize {
                    width: v.width,
                    height: v.height,
                });
            }
        }
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job {
                views,
                reply,
                crash: false,
                lose_captures,
            })
            .map_err(|_| TwinError::RendererGone("the render thread has ended".into()))?;
        answer.recv().map_err(|_| {
            TwinError::RendererGone("the render thread ended during a render".into())
        })?
    }
}

/// A scene kept on the GPU.
struct KeptScene {
    entities: SceneEntities,
    layer: usize,
}

/// One view slot: a camera with its image target and overlay UI.
struct ViewSlot {
    camera: Entity,
    size: (u32, u32),
    target: Handle<Image>,
    /// Scene key the legend was built for.
    scene_key: Option<String>,
    legend: Option<Entity>,
    labels: Option<Entity>,
}

struct Headless {
    app: App,
    adapter: String,
    material: Handle<TwinMaterial>,
    scenes: HashMap<String, KeptScene>,
    /// Scene keys, oldest first, so that meshes of old scenes (e.g. before a new ingest) are
    /// dropped once more than [`MAX_SCENES`] are kept.
    scene_order: Vec<String>,
    views: Vec<ViewSlot>,
    /// A CJK font for labels and legends, when one is installed.
    font: Option<Handle<Font>>,
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
        )
        .add_plugins(TwinMaterialPlugin);
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
        let material = plain_material(world);
        let font = load_cjk_font().map(|bytes| {
            world
                .resource_mut::<Assets<Font>>()
                .add(Font::from_bytes(bytes))
        });
        Headless {
            app,
            adapter,
            material,
            scenes: HashMap::new(),
            scene_order: Vec::new(),
            views: Vec::new(),
            font,
        }
    }

    fn serve(&mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                if job.crash {
                    panic!("fault injected by a test");
                }
                self.render_views(&job.views, job.lose_captures)
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

    /// Makes sure a scene's meshes are on the GPU; returns its render layer and whether it
    /// was spawned now.
    fn ensure_scene(&mut self, scene: &PreparedScene, in_use: &[String]) -> (usize, bool) {
        if let Some(kept) = self.scenes.get(&scene.key) {
            return (kept.layer, false);
        }
        // Make room: drop the oldest scene no view of this job needs.
        if self.scenes.len() >= MAX_SCENES
            && let Some(pos) = self.scene_order.iter().position(|k| !in_use.contains(k))
        {
            let oldest = self.scene_order.remove(pos);
            if let Some(old) = self.scenes.remove(&oldest) {
                for e in old.entities.entities {
                    self.app.world_mut().entity_mut(e).despawn();
                }
            }
        }
        let used: Vec<usize> = self.scenes.values().map(|k| k.layer).collect();
        let layer = (1..=MAX_SCENES + MAX_VIEWS)
            .find(|l| !used.contains(l))
            .expect("fewer scenes than layers");
        let material = self.material.clone();
        let world = self.app.world_mut();
        let entities = spawn_scene(world, scene, &material);
        for e in &entities.entities {
            world.entity_mut(*e).insert(RenderLayers::layer(layer));
        }
        self.scenes
            .insert(scene.key.clone(), KeptScene { entities, layer });
        self.scene_order.push(scene.key.clone());
        (layer, true)
    }

    /// Makes sure view slot `i` exists with a target of `size`; returns whether it changed.
    fn ensure_slot(&mut self, i: usize, size: (u32, u32)) -> bool {
        let world = self.app.world_mut();
        let new_target = |world: &mut World| {
            let image =
                Image::new_target_texture(size.0, size.1, TextureFormat::Rgba8UnormSrgb, None);
            world.resource_mut::<Assets<Image>>().add(image)
        };
        if i == self.views.len() {
            let target = new_target(world);
            let camera = world
                .spawn((
                    Camera3d::default(),
                    Camera {
                        clear_color: ClearColorConfig::Custom(BACKGROUND),
                        // Views draw in slot order; each has its own target.
                        order: i as isize,
                        ..default()
                    },
                    RenderTarget::Image(target.clone().into()),
                    Msaa::Off,
                    Tonemapping::None,
                    DebandDither::Disabled,
                    Projection::Perspective(PerspectiveProjection {
                        fov: FOV_DEG.to_radians(),
                        ..default()
                    }),
                    Transform::default(),
                ))
                .id();
            self.views.push(ViewSlot {
                camera,
                size,
                target,
                scene_key: None,
                legend: None,
                labels: None,
            });
            return true;
        }
        if self.views[i].size != size {
            let target = new_target(world);
            let old = std::mem::replace(&mut self.views[i].target, target.clone());
            world.resource_mut::<Assets<Image>>().remove(&old);
            world
                .entity_mut(self.views[i].camera)
                .insert(RenderTarget::Image(target.into()));
            self.views[i].size = size;
            self.views[i].scene_key = None;
            return true;
        }
        false
    }

    fn render_views(
        &mut self,
        views: &[ViewRequest],
        mut lose_captures: usize,
    ) -> Result<Vec<ViewResult>, TwinError> {
        let in_use: Vec<String> = views.iter().map(|v| v.scene.key.clone()).collect();
        let mut settle = false;
        for (i, v) in views.iter().enumerate() {
            let (layer, spawned) = self.ensure_scene(&v.scene, &in_use);
            settle |= spawned;
            settle |= self.ensure_slot(i, (v.width, v.height));
            let font = self.font.clone();
            let slot = &mut self.views[i];
            let world = self.app.world_mut();
            world.entity_mut(slot.camera).insert((
                RenderLayers::layer(layer),
                camera_transform(&v.camera),
                projection(&v.camera, &v.scene),
                Camera {
                    clear_color: ClearColorConfig::Custom(BACKGROUND),
                    order: i as isize,
                    is_active: true,
                    ..default()
                },
            ));
            if slot.scene_key.as_deref() != Some(v.scene.key.as_str()) {
                if let Some(e) = slot.legend.take() {
                    world.entity_mut(e).despawn();
                }
                slot.legend = spawn_legend(world, &v.scene, v.height, slot.camera, font.clone());
                slot.scene_key = Some(v.scene.key.clone());
                settle = true;
            }
            if let Some(e) = slot.labels.take() {
                world.entity_mut(e).despawn();
            }
            slot.labels = spawn_labels(
                world,
                &v.scene,
                &v.camera,
                (v.width, v.height),
                slot.camera,
                font,
            );
            settle |= slot.labels.is_some();
        }
        // Each scene's tiles at the level its tallest view asks for: a tile is never coarser
        // than any view of the job needs.
        let mut demands: HashMap<&str, (u32, &PreparedScene)> = HashMap::new();
        for v in views {
            let d = demands.entry(v.scene.key.as_str()).or_insert((0, &v.scene));
            d.0 = d.0.max(v.height);
        }
        for (key, (lines, scene)) in demands {
            if let Some(kept) = self.scenes.get_mut(key) {
                apply_levels(self.app.world_mut(), &mut kept.entities, scene, lines);
            }
        }
        // Slots this job does not use stay idle.
        for slot in &self.views[views.len()..] {
            let world = self.app.world_mut();
            if let Some(mut camera) = world.get_mut::<Camera>(slot.camera) {
                camera.is_active = false;
            }
        }
        if settle {
            // Let new meshes, pipelines and UI layout settle for one frame before capturing.
            self.update();
        }
        let n = views.len();
        let (tx, rx) = mpsc::channel::<(usize, Image)>();
        let mut attempts = vec![0usize; n];
        let mut images: Vec<Option<RgbaImage>> = vec![None; n];
        let mut since_asked = 0;
        loop {
            // Ask (again) for every view still missing that has attempts left: its camera draws
            // one more frame and a fresh screenshot entity replaces the stuck one.
            if since_asked == 0 {
                for i in 0..n {
                    if images[i].is_some() || attempts[i] >= CAPTURE_ATTEMPTS {
                        continue;
                    }
                    attempts[i] += 1;
                    // The stuck entity is left to Bevy: despawning one whose capture is still
                    // in flight would fail Bevy's own command that marks it captured.
                    let world = self.app.world_mut();
                    if let Some(mut camera) = world.get_mut::<Camera>(self.views[i].camera) {
                        camera.is_active = true;
                    }
                    let tx = tx.clone();
                    let target = if i == 0 && lose_captures > 0 {
                        lose_captures -= 1;
                        world.resource::<Assets<Image>>().reserve_handle()
                    } else {
                        self.views[i].target.clone()
                    };
                    world.spawn(Screenshot::image(target)).observe(
                        move |captured: On<ScreenshotCaptured>| {
                            let _ = tx.send((i, captured.image.clone()));
                        },
                    );
                }
            }
            self.update();
            since_asked += 1;
            if since_asked == 1 {
                // The frame is drawn and copied; the capture reaches us in a later update. Its
                // cameras need not draw again for that.
                for slot in &self.views[..n] {
                    if let Some(mut camera) = self.app.world_mut().get_mut::<Camera>(slot.camera) {
                        camera.is_active = false;
                    }
                }
            }
            while let Ok((i, image)) = rx.try_recv() {
                let rgba = image
                    .try_into_dynamic()
                    .map_err(|e| TwinError::RendererGone(format!("unreadable frame: {e}")))?
                    .to_rgba8();
                images[i] = Some(rgba);
            }
            let missing = (0..n).filter(|&i| images[i].is_none());
            let retry = missing.clone().any(|i| attempts[i] < CAPTURE_ATTEMPTS);
            if missing.clone().next().is_none() || (since_asked >= RETRY_AFTER_UPDATES && !retry) {
                break;
            }
            if since_asked >= RETRY_AFTER_UPDATES {
                since_asked = 0;
            }
        }
        Ok(images
            .into_iter()
            .enumerate()
            .map(|(i, image)| {
                image.ok_or(TwinError::CaptureFailed {
                    view: i,
                    width: views[i].width,
                    height: views[i].height,
                    attempts: attempts[i],
                })
            })
            .collect())
    }
}

/// What a scene's entities are, so overlays can be replaced alone.
pub(crate) struct SceneEntities {
    pub(crate) entities: Vec<Entity>,
    /// The colour table image (one texel per object).
    pub(crate) colour_table: Handle<Image>,
    /// The choropleth and column entities, if drawn.
    pub(crate) overlays: Vec<Entity>,
    /// Each tile's two levels.
    pub(crate) tiles: Vec<TileEntities>,
    /// The view height (lines) the tiles' levels were last set for.
    pub(crate) levels_for: Option<u32>,
}

/// A tile's full mesh, and its impostor with the impostor's texture (none for tiles without
/// roofs, which are always drawn in full).
pub(crate) struct TileEntities {
    pub(crate) full: Entity,
    pub(crate) impostor: Option<(Entity, Handle<Image>)>,
}

/// A mesh asset from mesh data; `with_uv` adds the colour-table coordinates.
pub(crate) fn to_mesh(m: &crate::MeshData, with_uv: bool) -> Mesh {
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    );
    // No normals: shading is baked into the vertex colour and the material never reads them,
    // so the vertex stage has less to fetch and transform.
    mesh.insert_attribute(Mesh::ATTRIBUTE_POSITION, m.positions.clone());
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
    material: &Handle<TwinMaterial>,
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

/// A 1×1 white image: the colour table of meshes without one.
fn white_table(world: &mut World) -> Handle<Image> {
    let image = Image::new(
        Extent3d {
            width: 1,
            height: 1,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        vec![255; 4],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    world.resource_mut::<Assets<Image>>().add(image)
}

/// The material of meshes coloured by their vertices alone (overlays).
pub(crate) fn plain_material(world: &mut World) -> Handle<TwinMaterial> {
    let table = white_table(world);
    world
        .resource_mut::<Assets<TwinMaterial>>()
        .add(TwinMaterial {
            base: LinearRgba::WHITE,
            table,
        })
}

/// Spawns a scene's tiles, overlays and ground; `material` is the plain vertex-colour one.
pub(crate) fn spawn_scene(
    world: &mut World,
    scene: &PreparedScene,
    material: &Handle<TwinMaterial>,
) -> SceneEntities {
    let table = world
        .resource_mut::<Assets<Image>>()
        .add(colour_table_image(scene));
    let white = white_table(world);
    let (tile_material, ground_material) = {
        let mut materials = world.resource_mut::<Assets<TwinMaterial>>();
        (
            materials.add(TwinMaterial {
                base: LinearRgba::WHITE,
                table: table.clone(),
            }),
            materials.add(TwinMaterial {
                base: GROUND.to_linear(),
                table: white,
            }),
        )
    };
    let side = (scene.radius_m * 2.6).max(100.0);
    let lift = (scene.radius_m * 1e-4).max(0.05);
    let ground = {
        let mesh = world
            .resource_mut::<Assets<Mesh>>()
            .add(Plane3d::default().mesh().size(side, side).build());
        world
            .spawn((
                Mesh3d(mesh),
                MeshMaterial3d(ground_material),
                Transform::from_xyz(0.0, -lift, 0.0),
            ))
            .id()
    };
    let mut entities = vec![ground];
    // Each tile twice: in full near the camera, as its impostor beyond the distance each job's
    // views ask for (`apply_levels`). Both carry the full tile's box, so the distance Bevy
    // measures (to the box's centre) is the same for both and exactly one is drawn.
    let mut tiles = Vec::with_capacity(scene.tiles.len());
    for (full, impostor) in scene.tiles.iter().zip(&scene.impostors) {
        let Some([min, max]) = full.bounds() else {
            continue;
        };
        let aabb = Aabb::from_min_max(Vec3::from(min), Vec3::from(max));
        let mesh = world
            .resource_mut::<Assets<Mesh>>()
            .add(to_mesh(full, true));
        let full_entity = world
            .spawn((
                Mesh3d(mesh),
                MeshMaterial3d(tile_material.clone()),
                Transform::IDENTITY,
                aabb,
                NoAutoAabb,
            ))
            .id();
        entities.push(full_entity);
        let far = (impostor.size > 0).then(|| {
            let image = world
                .resource_mut::<Assets<Image>>()
                .add(impostor_image(impostor, &scene.colour_table));
            let material = world
                .resource_mut::<Assets<ImpostorMaterial>>()
                .add(ImpostorMaterial {
                    roofs: image.clone(),
                });
            let mesh = world
                .resource_mut::<Assets<Mesh>>()
                .add(impostor_quad(impostor));
            let entity = world
                .spawn((
                    Mesh3d(mesh),
                    MeshMaterial3d(material),
                    Transform::IDENTITY,
                    aabb,
                    NoAutoAabb,
                ))
                .id();
            entities.push(entity);
            (entity, image)
        });
        tiles.push(TileEntities {
            full: full_entity,
            impostor: far,
        });
    }
    let overlays = spawn_overlays(world, scene, material);
    entities.extend(&overlays);
    let mut spawned = SceneEntities {
        entities,
        colour_table: table,
        overlays,
        tiles,
        levels_for: None,
    };
    // Until a view says otherwise: a 720-line view.
    apply_levels(world, &mut spawned, scene, impostor::MIN_LINES);
    spawned
}

/// Sets which level each tile draws at for views up to `lines` pixels high: in full nearer
/// than its impostor's switch distance, as its impostor beyond. Nothing changes when the last
/// call asked the same.
pub(crate) fn apply_levels(
    world: &mut World,
    entities: &mut SceneEntities,
    scene: &PreparedScene,
    lines: u32,
) {
    if entities.levels_for == Some(lines) {
        return;
    }
    entities.levels_for = Some(lines);
    let with_box = |range: VisibilityRange| VisibilityRange {
        use_aabb: true,
        ..range
    };
    for (tile, impostor) in entities.tiles.iter().zip(&scene.impostors) {
        let Some((far, _)) = tile.impostor else {
            continue;
        };
        let switch_m = impostor.switch_distance_m(lines);
        world
            .entity_mut(tile.full)
            .insert(with_box(VisibilityRange::abrupt(0.0, switch_m)));
        world
            .entity_mut(far)
            .insert(with_box(VisibilityRange::abrupt(switch_m, f32::MAX)));
    }
}

/// Recomposes the impostors' textures from the scene's colour table (after an overlay change).
pub(crate) fn refresh_impostors(
    world: &mut World,
    entities: &SceneEntities,
    scene: &PreparedScene,
) {
    for (tile, impostor) in entities.tiles.iter().zip(&scene.impostors) {
        if let Some((_, handle)) = &tile.impostor
            && let Some(mut image) = world.resource_mut::<Assets<Image>>().get_mut(handle)
        {
            image.data = Some(impostor.rgba_mips(&scene.colour_table));
        }
    }
}

/// An impostor's texture with its mip chain, filtered (trilinear).
fn impostor_image(impostor: &crate::Impostor, colour_table: &[[u8; 4]]) -> Image {
    let mut image = Image::new_uninit(
        Extent3d {
            width: impostor.size,
            height: impostor.size,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD | RenderAssetUsages::MAIN_WORLD,
    );
    image.texture_descriptor.mip_level_count = impostor.mip_levels();
    image.data = Some(impostor.rgba_mips(colour_table));
    image.sampler = ImageSampler::linear();
    image
}

/// The impostor's quad, facing up at its height, texture coordinates over its bounds.
fn impostor_quad(impostor: &crate::Impostor) -> Mesh {
    let [x0, z0, x1, z1] = impostor.bounds_xz;
    let y = impostor.height_m;
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::RENDER_WORLD,
    );
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_POSITION,
        vec![[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]],
    );
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_UV_0,
        vec![[0.0f32, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
    );
    // Counter-clockwise seen from above (x east, z south).
    mesh.insert_indices(Indices::U32(vec![0, 3, 2, 0, 2, 1]));
    mesh
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

/// Vertical field of view of every view, degrees.
pub const FOV_DEG: f32 = 40.0;

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
