//! The analytics engine: one embedded DuckDB file holding facts, regions and buildings.
//!
//! [`Engine`] owns the file and a small pool of connections. `ingest` loads a directory of
//! generated (or department) files all-or-nothing; `values` runs the SQL that the
//! `indicators` crate compiles for an indicator query and turns summed numerators and
//! denominators into values with target, gap and status. Callers on async runtimes must call
//! it from blocking threads (`spawn_blocking`): every method blocks. This crate knows nothing
//! about rendering or HTTP.

mod ingest;
mod pool;
mod query;

pub use ingest::IngestReport;
pub use pool::Engine;
pub use query::{BuildingRecord, IndicatorValue, RegionInfo, Snapshot, latest_complete_period};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{context}: {source}")]
    Db {
        context: String,
        source: duckdb::Error,
    },
    #[error(transparent)]
    Query(#[from] indicators::QueryError),
    #[error("{message}, in {path}")]
    Ingest { message: String, path: PathBuf },
    #[error("missing input file, in {path}")]
    MissingFile { path: PathBuf },
    #[error("the database has no data yet: run `databrain ingest` first, in {path}")]
    Empty { path: PathBuf },
}

impl AnalyticsError {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(duckdb::Error) -> AnalyticsError {
        let context = context.into();
        move |source| AnalyticsError::Db { context, source }
    }
}

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;
