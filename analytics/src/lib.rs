//! The analytics engine: one embedded DuckDB file holding facts, regions and buildings.
//!
//! [`Engine`] owns the file and a small pool of connections. `ingest` loads a directory of
//! generated (or department) files all-or-nothing; `values` runs the SQL that the
//! `indicators` crate compiles for an indicator query and turns summed numerators and
//! denominators into values with target, gap and status. Callers on async runtimes must call
//! it from blocking threads (`spawn_blocking`): every method blocks. `load_file` adds one
//! department file (CSV or Parquet, optionally through a mapping) with a report of rejected
//! rows, and `load_upload` a batch that arrived in memory (the server is the one writer of
//! its file); a cube of pre-aggregated measures is updated by every load, only where the
//! load's rows fall; reads see one committed snapshot (`Engine::consistent`); `alerts` and `trends`
//! find risks and forecast targets; `run_sql` answers analysts' read-only SQL. Supervised
//! tasks (`tasks`) are stored as append-only events checked by `workflow`, with a ledger
//! table the accountability indicators read, and evaluated before and after on the
//! indicator that raised them; `records` reads single 12345 work orders and their event
//! histories within a scope. This crate knows nothing about rendering or HTTP.

mod alerts;
mod analyst;
mod breakdown;
mod cube;
mod export;
mod ingest;
mod load;
mod policy;
mod pool;
mod progress;
mod query;
mod records;
pub mod spark;
mod tasks;

pub use alerts::{Alert, AlertKind, AlertQuery, Driver, Trend, TrendQuery, Verdict};
pub use analyst::{SqlLimits, SqlResult};
pub use breakdown::Share;
pub use cube::CubeBuild;
pub use export::{HISTORY_FORMAT, HistoryManifest, HistoryTable, parquet_as_csv};
pub use ingest::{IngestReport, RegionPolygons, ShapesReport};
pub use load::{
    ColumnMapping, LoadReport, MAX_UPLOAD_COLUMNS, Mapping, OnReject, Rejection, Upload,
    UploadFormat,
};
pub use policy::{ALERT_FLOOR, Audience, SMALL_CELL_FLOOR, SmallCells};
pub use pool::{Engine, OpenMode};
pub use query::{
    BuildingRecord, IndicatorValue, RegionInfo, RegionShapeRecord, Snapshot, latest_complete_period,
};
pub use records::{MAX_ORDERS, OrderQuery, WorkOrder, WorkOrderEvent};
pub use tasks::{Evaluation, FEEDBACK_INDICATOR, Measured, Side, StoredEvent, TaskWrite};

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
    #[error("{}", rejected_message(.0))]
    Rejected(Box<LoadReport>),
    #[error("unknown indicator {0:?}")]
    UnknownIndicator(String),
    #[error("by: {0}")]
    BadBreakdown(String),
    /// Outside the audience's region scope (`parameter` names what asked for it).
    #[error("{message}")]
    OutOfScope {
        parameter: &'static str,
        message: String,
    },
    /// An answer larger than a caller may receive at once; the message says how to narrow it.
    #[error("{parameter}: {message}")]
    TooLarge {
        parameter: &'static str,
        message: String,
    },
    /// An event a task's life does not allow (`workflow::Rule` names why); nothing changed.
    #[error(transparent)]
    Refused(#[from] workflow::Refusal),
    #[error("no task {0}")]
    NoSuchTask(String),
    /// Analyst SQL broke a rule (`rule` names it: one_statement, read_only,
    /// no_external_access, timeout, invalid).
    #[error("{rule}: {message}")]
    Sql { rule: &'static str, message: String },
    /// The Spark engine failed: its driver, the cluster or a statement (named).
    #[error("spark: {message}")]
    Spark { message: String },
}

fn rejected_message(r: &LoadReport) -> String {
    let examples: Vec<String> = r
        .rejected
        .iter()
        .take(5)
        .map(|x| format!("row {}: {}", x.row, x.reason))
        .collect();
    format!(
        "{} of {} rows rejected ({}{}); nothing was loaded into {}, in {}",
        r.rows_rejected,
        r.rows_read,
        examples.join("; "),
        if r.rows_rejected > 5 { "; ..." } else { "" },
        r.table,
        r.file.display()
    )
}

impl AnalyticsError {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(duckdb::Error) -> AnalyticsError {
        let context = context.into();
        move |source| AnalyticsError::Db { context, source }
    }
}

pub type Result<T, E = AnalyticsError> = std::result::Result<T, E>;
