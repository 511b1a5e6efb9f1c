//! The `databrain` server: the HTTP API, the page and the streamed twin views.
//!
//! [`app`] (in [`http`], one module per route family) builds the axum router over an
//! [`AppState`] (the analytics engine, the catalogue, the
//! scenes and, when a GPU or lavapipe is present, the renderer). Numbers come from `analytics`,
//! pixels from `twin`; this crate holds no SQL and no Bevy code. DuckDB and rendering work runs
//! on blocking threads, never on the async workers. Errors become HTTP responses in exactly one
//! place, [`error::AppError`].

pub mod error;
pub mod export;
pub mod http;
pub mod state;
pub mod video;
pub mod views;

pub use http::{app, auth, openapi};

/// Logging for the binaries: to stderr, `RUST_LOG` or info with the renderer's crates quiet.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu=warn,naga=warn,bevy=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
pub use state::AppState;
