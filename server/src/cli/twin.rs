//! The twin commands: render a scene to a PNG, open the planners' window.

use super::args::SceneSource;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Built-in scenes, plus the one named by `scene` when it is a file.
pub(crate) fn load_scene(scene: &str) -> Result<scenes::Scene> {
    let builtin = scenes::builtin()?;
    if let Some(s) = builtin.iter().find(|s| s.id == scene) {
        return Ok(s.clone());
    }
    let path = Path::new(scene);
    if path.is_file() {
        return Ok(scenes::Scene::load(path)?);
    }
    let ids: Vec<&str> = builtin.iter().map(|s| s.id.as_str()).collect();
    bail!(
        "unknown scene {scene:?}: not a built-in scene ({}) nor a file",
        ids.join(", ")
    )
}

/// The database read-only and the scene checked and prepared from its current data, for the
/// operator (every value shown).
fn open_and_prepare(
    source: &SceneSource,
    scene: &scenes::Scene,
) -> Result<(analytics::Engine, twin::PreparedScene)> {
    let engine = analytics::Engine::open_read_only(&source.db, analytics::OpenMode::ReadOnly)?;
    server::views::check_scenes(engine.catalogue(), std::slice::from_ref(scene))
        .map_err(anyhow::Error::msg)?;
    let ingest_id = engine.snapshot()?.ingest_id;
    let prepared = server::views::prepare(
        &engine,
        &analytics::Audience::trusted(),
        engine.catalogue(),
        scene,
        ingest_id,
        &source.data_dir,
    )?;
    Ok((engine, prepared))
}

/// `databrain tiles`: the scene as 3D Tiles in `out`. Everything is built in memory first,
/// then written, so a failure leaves no half tileset.
pub(crate) fn tiles(source: &SceneSource, out: &Path) -> Result<()> {
    let scene = load_scene(&source.scene)?;
    let (_engine, prepared) = open_and_prepare(source, &scene)?;
    let tileset = twin::tiles::tileset(&prepared)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut bytes = 0;
    for (name, glb) in &tileset.tiles {
        let path = out.join(name);
        std::fs::write(&path, glb).with_context(|| format!("cannot write {}", path.display()))?;
        bytes += glb.len();
    }
    let path = out.join("tileset.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&tileset.json)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} tiles, {} objects, {:.1} MiB)",
        path.display(),
        tileset.tiles.len(),
        prepared.objects.len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

pub(crate) fn planner_window(
    source: &SceneSource,
    size: (u32, u32),
    screenshot: PathBuf,
) -> Result<()> {
    let scene = load_scene(&source.scene)?;
    let (engine, prepared) = open_and_prepare(source, &scene)?;
    let periods = server::views::scene_periods(
        &engine,
        &analytics::Audience::trusted(),
        engine.catalogue(),
        &scene,
    )?;
    let bookmarks = scene
        .bookmarks
        .iter()
        .map(|b| (b.name.clone(), b.camera))
        .collect();
    let planner = twin::planner::Planner::new(prepared, scene.camera, bookmarks, periods, size);
    twin::window::run_window(
        planner,
        twin::window::WindowOptions {
            title: format!("{} {}", scene.title_zh, scene.title_en),
            size,
            screenshot_to: screenshot,
        },
    )?;
    Ok(())
}

pub(crate) fn render(
    source: &SceneSource,
    out: &Path,
    (width, height): (u32, u32),
    bookmark: Option<&str>,
) -> Result<()> {
    let scene = load_scene(&source.scene)?;
    let camera = match bookmark {
        None => scene.camera,
        Some(name) => {
            let names: Vec<&str> = scene.bookmarks.iter().map(|b| b.name.as_str()).collect();
            scene
                .bookmarks
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.camera)
                .with_context(|| {
                    format!(
                        "scene {} has no bookmark {name:?} (it has: {})",
                        scene.id,
                        names.join(", ")
                    )
                })?
        }
    };
    let (_engine, prepared) = open_and_prepare(source, &scene)?;
    let renderer = twin::Renderer::start()?;
    let image = renderer.render(std::sync::Arc::new(prepared), camera, width, height)?;
    image
        .save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "rendered {} ({}x{}) on {} to {}",
        scene.id,
        width,
        height,
        renderer.adapter(),
        out.display()
    );
    Ok(())
}
