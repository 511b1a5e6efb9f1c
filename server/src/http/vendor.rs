//! The pages' front-end libraries (`GET /vendor/{file}`): files that `make deps` installs from
//! the npm registry into `node_modules/` from the committed `package.json` and lock file. They
//! are never committed and never fetched at run time: the server reads an allow-list of them
//! once, at start, from `DATABRAIN_VENDOR` (default: the workspace's `node_modules`), and a
//! page whose library is missing says so instead of loading anything from elsewhere.

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

/// The vendored files read at start, by served name.
#[derive(Default)]
pub struct Vendor {
    files: BTreeMap<&'static str, axum::body::Bytes>,
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
                    files.insert(*name, axum::body::Bytes::from(b));
                }
                Err(e) => tracing::warn!(
                    "page library {name} is not installed ({}: {e}); run `make deps`",
                    dir.join(rel).display()
                ),
            }
        }
        Vendor { files, dir }
    }

    pub fn get(&self, name: &str) -> Option<&axum::body::Bytes> {
        self.files.get(name)
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
    let kind = if file.ends_with(".js") {
        "text/javascript; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            // The file changes only with package-lock.json, that is with a new server build.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body.clone(),
    ))
}
