//! The indicator catalogue of databrain: what each indicator means and how it is computed.
//!
//! Indicators are declared in TOML files (one per domain, see `indicators/catalogue/`) and
//! validated against the fact-table schema in [`facts`] when loaded. A validated [`Indicator`]
//! compiles, for a level, a time grain, a period range and a region subtree, to plain SQL
//! ([`sql::compile`]) that returns `(region_code, period, numerator, denominator)` rows; the
//! value, target gap and status are then derived here from summed parts, never from averaged
//! values. This crate knows nothing about DuckDB, rendering or HTTP, and the SQL it emits stays
//! portable (no engine-specific functions), so the same definitions could run elsewhere.

pub mod catalogue;
pub mod facts;
pub mod filter;
pub mod formula;
pub mod level;
pub mod period;
pub mod schema;
pub mod sql;

pub use catalogue::{
    Aggregate, Catalogue, CatalogueError, Direction, Domain, Indicator, Kind, Measure, Status,
    Target, Thresholds,
};
pub use formula::Formula;
pub use level::{Level, RegionCodeError, region_level};
pub use period::{Grain, Period, PeriodError};
pub use sql::{CompiledSql, CubeTable, IndicatorQuery, QueryError};
