//! Writing indicator values to Parquet with DuckDB's own writer.

use crate::{AnalyticsError, Engine, IndicatorValue, Result};
use duckdb::params;
use std::path::Path;

impl Engine {
    /// Writes `values` to a Parquet file (one row per value, the fields of
    /// [`IndicatorValue`] as columns). DuckDB writes through an in-memory database of its
    /// own: the server's database has file access switched off (analysts' SQL runs there),
    /// and the values are already made for their audience.
    pub fn write_parquet(&self, values: &[IndicatorValue], path: &Path) -> Result<()> {
        let conn = duckdb::Connection::open_in_memory()
            .map_err(AnalyticsError::db("cannot open an in-memory DuckDB"))?;
        let db = |what: &str| AnalyticsError::db(format!("{what}, in {}", path.display()));
        conn.execute_batch(
            "CREATE OR REPLACE TEMP TABLE values_export (indicator VARCHAR, region_code VARCHAR, \
             region_name VARCHAR, period VARCHAR, value DOUBLE, numerator DOUBLE, denominator DOUBLE, \
             unit VARCHAR, target DOUBLE, gap_to_target DOUBLE, status VARCHAR, previous_value DOUBLE, \
             change_vs_previous DOUBLE, last_year_value DOUBLE, change_vs_last_year DOUBLE, \
             rank INTEGER, siblings INTEGER, support DOUBLE, partial BOOLEAN, suppressed BOOLEAN); \
             BEGIN TRANSACTION;",
        )
        .map_err(db("cannot stage the values"))?;
        {
            let mut insert = conn
                .prepare("INSERT INTO values_export VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .map_err(db("cannot stage the values"))?;
            for v in values {
                insert
                    .execute(params![
                        v.indicator,
                        v.region_code,
                        v.region_name,
                        v.period,
                        v.value,
                        v.numerator,
                        v.denominator,
                        v.unit,
                        v.target,
                        v.gap_to_target,
                        v.status.as_str(),
                        v.previous_value,
                        v.change_vs_previous,
                        v.last_year_value,
                        v.change_vs_last_year,
                        v.rank,
                        v.siblings,
                        v.support,
                        v.partial,
                        v.suppressed,
                    ])
                    .map_err(db("cannot stage a value"))?;
            }
        }
        conn.execute_batch(&format!(
            "COMMIT; COPY values_export TO '{}' (FORMAT parquet); DROP TABLE values_export;",
            path.to_string_lossy().replace('\'', "''")
        ))
        .map_err(db("cannot write Parquet"))
    }
}

/// The rows of a Parquet file as CSV with a header line (for sending a department's Parquet
/// file to the server, which reads no files), through an in-memory DuckDB.
pub fn parquet_as_csv(path: &Path) -> Result<Vec<u8>> {
    let fail = |message: String| AnalyticsError::Ingest {
        message,
        path: path.to_owned(),
    };
    let conn = duckdb::Connection::open_in_memory()
        .map_err(AnalyticsError::db("cannot open an in-memory DuckDB"))?;
    let out = std::env::temp_dir().join(format!(
        "databrain-{}-{}.csv",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let quote = |p: &Path| format!("'{}'", p.to_string_lossy().replace('\'', "''"));
    let copied = conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_parquet({})) TO {} (FORMAT csv, HEADER true)",
        quote(path),
        quote(&out)
    ));
    let read = copied
        .map_err(|e| fail(format!("cannot read the Parquet file: {e}")))
        .and_then(|()| {
            std::fs::read(&out).map_err(|e| fail(format!("cannot read the converted rows: {e}")))
        });
    let _ = std::fs::remove_file(&out);
    read
}
