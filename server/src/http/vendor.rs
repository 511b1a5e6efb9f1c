//! The pages' front-end libraries (`GET /vendor/{file}`): files that `make deps` installs from
//! the npm registry into `node_modules/` from the committed `package.json` and lock file. They
//! are never committed and never fetched at run time: the server reads an allow-list of them
//! once, at start, from `DATABRAIN_VENDOR` (default: the workspace's `node_modules`), and a
//! page whose library is missing says so instead of loading anything from elsewhere.
//!
//! The list is ECharts' files by name and CesiumJS's built tree (`cesium/Build/Cesium`: the
//! library, its workers, widgets and assets, about 400 files and 14 MB, served as
//! `/vendor/cesium/...`). A request names a key of the map read at start, so no path from a
//! request ever reaches the file system.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the pages may load: the served name and its path under `node_modules`.
pub const FILES: &[(&str, &str)] = &[
    ("echarts.min.js", "echarts/dist/echarts.min.js"),
    ("echarts.LICENSE", "echarts/LICENSE"),
    ("echarts.NOTICE", "echarts/NOTICE"),
];

/// CesiumJS's built tree under `node_modules`, served below `cesium/`. Its `index.js` and
/// `index.cjs` (module builds for bundlers) are left out: the page loads `Cesium.js`.
pub const CESIUM_DIR: &str = "cesium/Build/Cesium";

/// The vendored files read at start, by served name.
#[derive(Default)]
pub struct Vendor {
    files: BTreeMap<String, axum::body::Bytes>,
    /// Where they were looked for (for the error of a missing one).
    dir: PathBuf,
}

impl Vendor {
    /// The files of the directory named by `DATABRAIN_VENDOR`, else of the workspace's
    /// `node_modules`: read once per process (every `AppState` shares them).
    pub fn shared() -> std::sync::Arc<Vendor> {
        static SHARED: std::sync::OnceLock<std::sync::Arc<Vendor>> = std::sync::OnceLock::new();
        SHARED
            .get_or_init(|| std::sync::Arc::new(Vendor::from_env()))
            .clone()
    }

    /// The directory named by `DATABRAIN_VENDOR`, else the workspace's `node_modules`.
    pub fn from_env() -> Vendor {
        let dir = std::env::var_os("DATABRAIN_VENDOR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules"))
            });
        Vendor::read(dir)
    }

    /// Reads every allowed file present under `dir`; a missing one is logged, not fatal (the
    /// API works without the pages' charts).
    pub fn read(dir: PathBuf) -> Vendor {
        let mut files = BTreeMap::new();
        for (name, rel) in FILES {
            match std::fs::read(dir.join(rel)) {
                Ok(b) => {
                    files.insert(name.to_string(), axum::body::Bytes::from(b));
                }
                Err(e) => tracing::warn!(
                    "page library {name} is not installed ({}: {e}); run `make deps`",
                    dir.join(rel).display()
                ),
            }
        }
        let cesium = dir.join(CESIUM_DIR);
        match tree(&cesium) {
            Ok(found) => {
                for (rel, bytes) in found {
                    if rel != "index.js" && rel != "index.cjs" {
                        files.insert(format!("cesium/{rel}"), bytes);
                    }
                }
            }
            Err(e) => tracing::warn!(
                "page library CesiumJS is not installed ({}: {e}); run `make deps`",
                cesium.display()
            ),
        }
        Vendor { files, dir }
    }

    pub fn get(&self, name: &str) -> Option<&axum::body::Bytes> {
        self.files.get(name)
    }
}

/// Every file under `root`, by its path relative to `root` with `/` separators (links are not
/// followed).
fn tree(root: &std::path::Path) -> std::io::Result<Vec<(String, axum::body::Bytes)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                let Some(rel) = path
                    .strip_prefix(root)
                    .ok()
                    .and_then(|r| r.to_str())
                    .map(|r| r.replace('\\', "/"))
                else {
                    continue;
                };
                out.push((rel, axum::body::Bytes::from(std::fs::read(&path)?)));
            }
        }
    }
    Ok(out)
}

/// The content type of a vendored file, by its extension.
fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "wasm" => "application/wasm",
        "ktx2" => "image/ktx2",
        "xml" => "application/xml",
        "glb" => "model/gltf-binary",
        _ => "text/plain; charset=utf-8",
    }
}

/// One of the pages' libraries.
#[utoipa::path(get, path = "/vendor/{file}", tag = "pages",
    params(("file" = String, Path, description = "the library's file", example = "echarts.min.js")),
    responses(
        (status = 200, description = "the file", body = String, content_type = "text/javascript"),
        (status = 404, description = "not a library the pages use, or not installed (`make deps`)", body = crate::error::ErrorBody),
    ))]
pub async fn file(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    let Some(body) = state.vendor.get(&file) else {
        return Err(AppError::NotFound(
            if FILES.iter().any(|(n, _)| *n == file) {
                format!(
                    "the page library {file} is not installed under {}: run `make deps`",
                    state.vendor.dir.display()
                )
            } else {
                format!("no page library {file}")
            },
        ));
    };
    let kind = content_type(&file);
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            // The file changes only with package-lock.json, that is with a new server build.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body.clone(),
    ))
}

/// `GET /vendor/cesium/{*path}`: CesiumJS's built tree (the library loads its workers and
/// assets by relative paths). Static files like the pages, so outside the OpenAPI
/// description; the path is only ever a key of the map read at start.
pub async fn cesium(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    let key = format!("cesium/{path}");
    let Some(body) = state.vendor.get(&key) else {
        return Err(AppError::NotFound(
            if state.vendor.get("cesium/Cesium.js").is_none() {
                format!(
                    "CesiumJS is not installed under {}: run `make deps`",
                    state.vendor.dir.join(CESIUM_DIR).display()
                )
            } else {
                format!("no CesiumJS file {path}")
            },
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key)),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body.clone(),
    ))
}
