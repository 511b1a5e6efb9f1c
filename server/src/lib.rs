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
pub mod views;

pub use http::{app, auth, openapi};
pub use state::AppState;
