//! Writing indicator values to Parquet with DuckDB's own writer.

use crate::ingest::quote_path;
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
            "COMMIT; COPY values_export TO {} (FORMAT parquet); DROP TABLE values_export;",
            quote_path(path)
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
    let copied = conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_parquet({})) TO {} (FORMAT csv, HEADER true)",
        quote_path(path),
        quote_path(&out)
    ));
    let read = copied
        .map_err(|e| fail(format!("cannot read the Parquet file: {e}")))
        .and_then(|()| {
            std::fs::read(&out).map_err(|e| fail(format!("cannot read the converted rows: {e}")))
        });
    let _ = std::fs::remove_file(&out);
    read
}

/// The layout [`Engine::export_history`] writes, named in its `manifest.json`.
pub const HISTORY_FORMAT: &str = "databrain-history/1";

/// `manifest.json` of a history: every table, where it is, its rows and partition columns.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryManifest {
    pub format: String,
    pub tables: std::collections::BTreeMap<String, HistoryTable>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistoryTable {
    /// Relative to the history's directory.
    pub path: String,
    pub rows: u64,
    /// Hive partition columns, outermost first (`month=2024-07/city=3201/…`).
    pub partitioned_by: Vec<String>,
}

impl Engine {
    /// Writes every fact table and the regions as Parquet under `dir`, for engines that read
    /// history from files (Spark): fact tables Hive-partitioned by the month of their
    /// `recorded_at` column (`YYYY-MM`) and by city (the first four digits of their region
    /// code), so a cluster reads only the months and cities a query names; `regions` as one
    /// file; and `manifest.json`. All of one committed snapshot. The files are written to a
    /// directory beside `dir` and moved into place at the end, so `dir` holds either the
    /// previous history or the whole new one; a `dir` that exists and is not a history is
    /// refused.
    pub fn export_history(&self, dir: &Path) -> Result<HistoryManifest> {
        self.facts_here("exporting the history")?;
        let fail = |message: String| AnalyticsError::Ingest {
            message,
            path: dir.to_owned(),
        };
        if self.mode().sealed() {
            return Err(fail("this database was opened without file access".into()));
        }
        if dir.exists() {
            let empty = std::fs::read_dir(dir)
                .map_err(|e| fail(format!("cannot read the directory: {e}")))?
                .next()
                .is_none();
            if !empty && !dir.join("manifest.json").is_file() {
                return Err(fail(
                    "the directory exists and is not a history (no manifest.json); nothing written"
                        .into(),
                ));
            }
        }
        let name = dir
            .file_name()
            .ok_or_else(|| fail("the history needs a directory name".into()))?
            .to_string_lossy()
            .into_owned();
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| fail(format!("cannot create {e}")))?;
        let staging = parent.join(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| fail(format!("cannot create: {e}")))?;
        let written = self.consistent(|| self.write_history(&staging));
        let manifest = match written {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        let moved = std::fs::write(staging.join("manifest.json"), json)
            .map_err(|e| fail(format!("cannot write manifest.json: {e}")))
            .and_then(|()| {
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                if dir.exists() {
                    std::fs::rename(dir, &old)
                        .map_err(|e| fail(format!("cannot move the old history aside: {e}")))?;
                }
                std::fs::rename(&staging, dir)
                    .map_err(|e| fail(format!("cannot move the history into place: {e}")))?;
                let _ = std::fs::remove_dir_all(&old);
                Ok(())
            });
        if let Err(e) = moved {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok(manifest)
    }

    fn write_history(&self, out: &Path) -> Result<HistoryManifest> {
        let mut tables = std::collections::BTreeMap::new();
        self.with_conn(|conn| {
            let count = |table: &str| -> Result<u64> {
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(AnalyticsError::db(format!("cannot count {table}")))
            };
            for fact in indicators::facts::FACT_TABLES {
                let rows = count(fact.name)?;
                let path = out.join(fact.name);
                let city = format!("SUBSTR({}, 1, 4)", fact.region_column());
                let (select, partitioned_by) = match fact.recorded_at {
                    Some(t) => (
                        format!(
                            "SELECT *, strftime({t}, '%Y-%m') AS month, {city} AS city FROM {}",
                            fact.name
                        ),
                        vec!["month".to_owned(), "city".to_owned()],
                    ),
                    None => (
                        format!("SELECT *, {city} AS city FROM {}", fact.name),
                        vec!["city".to_owned()],
                    ),
                };
                let sql = if rows == 0 {
                    // No partitions to write: one empty file keeps the table's columns.
                    std::fs::create_dir_all(&path).map_err(|e| AnalyticsError::Ingest {
                        message: format!("cannot create: {e}"),
                        path: path.clone(),
                    })?;
                    format!(
                        "COPY (SELECT * FROM {}) TO {} (FORMAT parquet)",
                        fact.name,
                        quote_path(&path.join("empty.parquet"))
                    )
                } else {
                    format!(
                        "COPY ({select}) TO {} (FORMAT parquet, PARTITION_BY ({}))",
                        quote_path(&path),
                        partitioned_by.join(", ")
                    )
                };
                conn.execute_batch(&sql)
                    .map_err(AnalyticsError::db(format!(
                        "cannot write {}, in {}",
                        fact.name,
                        path.display()
                    )))?;
                tables.insert(
                    fact.name.to_owned(),
                    HistoryTable {
                        path: fact.name.to_owned(),
                        rows,
                        partitioned_by: if rows == 0 {
                            Vec::new()
                        } else {
                            partitioned_by
                        },
                    },
                );
            }
            let rows = count("regions")?;
            let path = out.join("regions");
            std::fs::create_dir_all(&path).map_err(|e| AnalyticsError::Ingest {
                message: format!("cannot create: {e}"),
                path: path.clone(),
            })?;
            conn.execute_batch(&format!(
                "COPY (SELECT * FROM regions ORDER BY code) TO {} (FORMAT parquet)",
                quote_path(&path.join("regions.parquet"))
            ))
            .map_err(AnalyticsError::db("cannot write regions"))?;
            tables.insert(
                "regions".to_owned(),
                HistoryTable {
                    path: "regions".to_owned(),
                    rows,
                    partitioned_by: Vec::new(),
                },
            );
            Ok(())
        })?;
        Ok(HistoryManifest {
            format: HISTORY_FORMAT.to_owned(),
            tables,
        })
    }
}
