//! Loading one department file (CSV or Parquet) into one fact table, or into the region
//! tree, with validation, a report of rejected rows and a mapping for foreign layouts.
//!
//! The file is first read as text into a temporary table, each row numbered as in the file
//! (1 = the first data row). Every value is then cast to its column's type and every row
//! checked: types, required values, the table's rules (ranges, timestamp order), region
//! keys that exist, keys that are unique in the file. By default one bad row rejects the
//! whole file and nothing changes; a mapping may say `on_reject = "skip"`, and then only
//! the good rows load. Either way the report lists rejected rows with their row number and
//! reason. Rows replace rows with the same key, so loading a file twice changes nothing.
//!
//! A mapping (TOML) names the target table and gives each target column either a SQL
//! expression over the file's columns (double-quoted, e.g. `"\"Created Date\""`) or a value
//! table that translates a source column's values:
//!
//! ```toml
//! table = "work_orders"
//! on_reject = "skip"
//! [columns]
//! order_id = '"Unique Key"'
//! created_at = '''strptime("Created Date", '%m/%d/%Y %I:%M:%S %p')'''
//! grid_id = { column = "Borough", values = { MANHATTAN = "910101001001-001" } }
//! ```
//!
//! Mappings come from the operator who loads the data and are trusted like configuration:
//! their expressions run over the temporary table only.

use crate::ingest::{in_transaction, insert_lists, quote, record_ingest};
use crate::{AnalyticsError, Engine, Result};
use duckdb::Connection;
use indicators::facts::{FactTable, RegionKey, Source, fact_table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to do with a file that has bad rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReject {
    /// Load nothing (the default).
    #[default]
    Fail,
    /// Load the good rows, report the bad ones.
    Skip,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ColumnMapping {
    /// A SQL expression over the file's columns.
    Expression(String),
    /// A source column whose values are translated; values not listed become NULL (and are
    /// rejected where the target column is required).
    Values {
        column: String,
        values: BTreeMap<String, String>,
    },
}

/// How a foreign file's columns become a fact table's columns.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub table: String,
    #[serde(default)]
    pub on_reject: OnReject,
    /// Target column → how to compute it. Target columns not listed are read from the
    /// file's column of the same name when there is one, else left NULL.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnMapping>,
}

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping> {
        let text = std::fs::read_to_string(path).map_err(|e| AnalyticsError::Ingest {
            message: format!("cannot read the mapping: {e}"),
            path: path.to_owned(),
        })?;
        toml::from_str(&text).map_err(|e| AnalyticsError::Ingest {
            message: format!("malformed mapping: {e}"),
            path: path.to_owned(),
        })
    }
}

/// One rejected row: its number in the file (1 = first data row) and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejection {
    pub row: u64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    pub table: String,
    pub file: PathBuf,
    pub rows_read: u64,
    /// Rows written (new or replacing a row with the same key).
    pub rows_loaded: u64,
    /// Rows whose key was not there before, or whose values differ from what was there.
    pub rows_changed: u64,
    pub rows_rejected: u64,
    /// The first rejected rows (at most [`MAX_LISTED`]).
    pub rejected: Vec<Rejection>,
    /// The load's number in the ingest log; `None` when nothing was written.
    pub ingest_id: Option<i64>,
}

/// How many rejected rows a report lists.
pub const MAX_LISTED: usize = 1000;

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn fail(path: &Path, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Ingest {
        message: message.into(),
        path: path.to_owned(),
    }
}

/// The table function reading `path`, by its extension.
fn reader(path: &Path) -> Result<String> {
    let file = quote(&path.to_string_lossy());
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv" | "txt" | "tsv") => Ok(format!(
            "read_csv({file}, header = true, all_varchar = true, nullstr = '')"
        )),
        Some("parquet") => Ok(format!("read_parquet({file})")),
        _ => Err(fail(
            path,
            "unknown file type: expected .csv, .tsv, .txt or .parquet",
        )),
    }
}

fn staged_columns(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_name = 'load_raw' ORDER BY ordinal_position",
        )
        .map_err(AnalyticsError::db("cannot read the staged columns"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(AnalyticsError::db("cannot read the staged columns"))?;
    rows.collect::<std::result::Result<Vec<_>, _>>()
        .map_err(AnalyticsError::db("cannot read the staged columns"))
}

/// The SQL for each file column of `table`, from the mapping or the file's own columns.
fn column_sources(
    table: &FactTable,
    mapping: Option<&Mapping>,
    staged: &[String],
    path: &Path,
) -> Result<Vec<(String, Option<String>)>> {
    let staged_lower: Vec<String> = staged.iter().map(|c| c.to_lowercase()).collect();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in table.file_columns() {
        let mapped = mapping.and_then(|m| m.columns.get(c.name));
        let sql = match mapped {
            Some(ColumnMapping::Expression(e)) => Some(format!("({e})")),
            Some(ColumnMapping::Values { column, values }) => {
                let source = ident(column);
                let arms: Vec<String> = values
                    .iter()
                    .map(|(from, to)| format!("WHEN {} THEN {}", quote(from), quote(to)))
                    .collect();
                Some(format!(
                    "(CASE CAST({source} AS VARCHAR) {} ELSE NULL END)",
                    arms.join(" ")
                ))
            }
            None => staged_lower
                .iter()
                .position(|s| s == c.name)
                .map(|i| ident(&staged[i])),
        };
        if sql.is_none() && !c.nullable {
            missing.push(c.name);
        }
        out.push((c.name.to_owned(), sql));
    }
    if !missing.is_empty() {
        return Err(fail(
            path,
            format!(
                "{} needs columns [{}] that the file does not have (file columns: [{}]); a mapping can supply them",
                table.name,
                missing.join(", "),
                staged.join(", ")
            ),
        ));
    }
    if mapping.is_none() {
        let unexpected: Vec<&str> = staged
            .iter()
            .filter(|s| table.column(&s.to_lowercase()).is_none())
            .map(String::as_str)
            .collect();
        if !unexpected.is_empty() {
            return Err(fail(
                path,
                format!(
                    "unexpected columns [{}] for {}; a mapping can say how to read the file",
                    unexpected.join(", "),
                    table.name
                ),
            ));
        }
    }
    Ok(out)
}

/// The condition under which a typed row is rejected and its reason, first failure first.
fn rejection_case(table: &FactTable, sources: &[(String, Option<String>)]) -> String {
    let mut arms: Vec<String> = Vec::new();
    for (name, sql) in sources {
        let c = table.column(name).expect("file column");
        if sql.is_some() {
            arms.push(format!(
                "WHEN {raw} IS NOT NULL AND {name} IS NULL THEN CONCAT('{name}: ', CAST({raw} AS VARCHAR), ' is not a {ty}')",
                raw = format!("{name}__raw"),
                ty = c.ty.sql()
            ));
        }
        if !c.nullable {
            arms.push(format!("WHEN {name} IS NULL THEN '{name} is empty'"));
        }
    }
    for rule in table.rules {
        // A rule over NULLs (of missing optional values) is not broken.
        arms.push(format!(
            "WHEN NOT COALESCE(({}), TRUE) THEN {}",
            rule.sql,
            quote(rule.reason)
        ));
    }
    match table.region {
        RegionKey::Grid => {
            arms.push(
                "WHEN NOT EXISTS (SELECT 1 FROM regions r WHERE r.code = s.grid_id AND r.level = 'grid') \
                 THEN CONCAT('grid_id ', s.grid_id, ' is not a known grid cell')"
                    .to_owned(),
            );
            arms.push(
                "WHEN SUBSTR(s.grid_id, 1, 12) <> s.community_code \
                 THEN CONCAT('grid cell ', s.grid_id, ' is not in community ', s.community_code)"
                    .to_owned(),
            );
        }
        RegionKey::Column { name, level } => arms.push(format!(
            "WHEN NOT EXISTS (SELECT 1 FROM regions r WHERE r.code = s.{name} AND r.level = '{l}') \
             THEN CONCAT('{name} ', s.{name}, ' is not a known {l} code')",
            l = level.as_str()
        )),
    }
    arms.push(
        "WHEN load_dup > 1 THEN CONCAT('duplicate key (first in row ', load_first, ')')".to_owned(),
    );
    format!("CASE {} END", arms.join(" "))
}

impl Engine {
    /// Loads one file into `table` (a fact table, or `regions`), as described in the module
    /// documentation. With `progress`, long statements draw a progress bar on stderr.
    pub fn load_file(
        &self,
        table: &str,
        path: &Path,
        mapping: Option<&Mapping>,
        progress: bool,
    ) -> Result<LoadReport> {
        if let Some(m) = mapping
            && m.table != table
        {
            return Err(fail(
                path,
                format!("the mapping is for {}, not {table}", m.table),
            ));
        }
        if self.mode() != crate::OpenMode::ReadWrite {
            return Err(fail(path, "the database was opened read-only"));
        }
        if !path.is_file() {
            return Err(AnalyticsError::MissingFile {
                path: path.to_owned(),
            });
        }
        if table == "regions" {
            return self.load_regions_file(path);
        }
        let fact = fact_table(table)
            .filter(|t| t.source == Source::File)
            .ok_or_else(|| {
                let names: Vec<&str> = crate::ingest::file_tables().map(|t| t.name).collect();
                fail(
                    path,
                    format!(
                        "unknown table {table:?} (expected regions or one of: {})",
                        names.join(", ")
                    ),
                )
            })?;
        let on_reject = mapping.map(|m| m.on_reject).unwrap_or_default();
        let conn = self.fresh_conn()?;
        let bar = progress.then(|| crate::progress::Bar::start(&conn, &format!("loading {table}")));
        let result = self.load_fact(&conn, fact, path, mapping, on_reject);
        if let Some(bar) = bar {
            bar.finish();
        }
        let _ =
            conn.execute_batch("DROP TABLE IF EXISTS load_raw; DROP TABLE IF EXISTS load_stage;");
        let report = result?;
        if report.ingest_id.is_some() {
            self.reload_cubes()?;
        }
        Ok(report)
    }

    fn load_fact(
        &self,
        conn: &Connection,
        fact: &'static FactTable,
        path: &Path,
        mapping: Option<&Mapping>,
        on_reject: OnReject,
    ) -> Result<LoadReport> {
        let db = |what: &str| AnalyticsError::db(format!("{what}, in {}", path.display()));
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE load_raw AS SELECT row_number() OVER () AS load_row, * FROM {}",
            reader(path)?
        ))
        .map_err(|e| fail(path, format!("cannot read the file: {e}")))?;
        let staged: Vec<String> = staged_columns(conn)?
            .into_iter()
            .filter(|c| c != "load_row")
            .collect();
        let sources = column_sources(fact, mapping, &staged, path)?;
        let typed: Vec<String> = sources
            .iter()
            .map(|(name, sql)| {
                let ty = fact.column(name).expect("file column").ty.sql();
                match sql {
                    Some(sql) => format!("TRY_CAST({sql} AS {ty}) AS {name}, {sql} AS {name}__raw"),
                    None => format!("CAST(NULL AS {ty}) AS {name}, NULL AS {name}__raw"),
                }
            })
            .collect();
        let key: Vec<&str> = fact.key.to_vec();
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE load_stage AS SELECT s.*, {case} AS load_reason FROM ( \
             SELECT *, row_number() OVER (PARTITION BY {k} ORDER BY load_row) AS load_dup, \
             MIN(load_row) OVER (PARTITION BY {k}) AS load_first \
             FROM (SELECT load_row, {typed} FROM load_raw)) s",
            case = rejection_case(fact, &sources),
            k = key.join(", "),
            typed = typed.join(", ")
        ))
        .map_err(|e| fail(path, format!("cannot check the values: {e}")))?;
        let rows_read: u64 = conn
            .query_row("SELECT COUNT(*) FROM load_stage", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(db("cannot count the rows"))? as u64;
        let rows_rejected: u64 = conn
            .query_row(
                "SELECT COUNT(*) FROM load_stage WHERE load_reason IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(db("cannot count the rejected rows"))? as u64;
        let rejected: Vec<Rejection> = {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT load_row, load_reason FROM load_stage WHERE load_reason IS NOT NULL \
                     ORDER BY load_row LIMIT {MAX_LISTED}"
                ))
                .map_err(db("cannot list the rejected rows"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Rejection {
                        row: r.get::<_, i64>(0)? as u64,
                        reason: r.get(1)?,
                    })
                })
                .map_err(db("cannot list the rejected rows"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(db("cannot list the rejected rows"))?
        };
        let mut report = LoadReport {
            table: fact.name.to_owned(),
            file: path.to_owned(),
            rows_read,
            rows_loaded: 0,
            rows_changed: 0,
            rows_rejected,
            rejected,
            ingest_id: None,
        };
        if rows_rejected > 0 && on_reject == OnReject::Fail {
            return Err(AnalyticsError::Rejected(Box::new(report)));
        }
        let (names, select) = insert_lists(fact);
        let file_names: Vec<&str> = fact.file_columns().map(|c| c.name).collect();
        let good = "FROM load_stage WHERE load_reason IS NULL";
        let (loaded, changed, ingest_id) = in_transaction(conn, || {
            let changed: i64 = conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM (SELECT {cols} {good} EXCEPT SELECT {cols} FROM {t})",
                        cols = file_names.join(", "),
                        t = fact.name
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(db("cannot compare with the loaded rows"))?;
            let key_match: Vec<String> = key.iter().map(|k| format!("f.{k} = s.{k}")).collect();
            conn.execute(
                &format!(
                    "DELETE FROM {t} f WHERE EXISTS (SELECT 1 FROM load_stage s \
                     WHERE s.load_reason IS NULL AND {m})",
                    t = fact.name,
                    m = key_match.join(" AND ")
                ),
                [],
            )
            .map_err(db("cannot replace rows"))?;
            let loaded = conn
                .execute(
                    &format!(
                        "INSERT INTO {t} ({names}) SELECT {select} {good}",
                        t = fact.name
                    ),
                    [],
                )
                .map_err(db("cannot insert rows"))?;
            let tables = crate::ingest::refresh_derived(conn, &[fact.name])?;
            crate::cube::refresh(conn, self, &tables)?;
            let ingest_id = record_ingest(conn, &format!("{} <- {}", fact.name, path.display()))?;
            Ok((loaded as u64, changed as u64, ingest_id))
        })?;
        report.rows_loaded = loaded;
        report.rows_changed = changed;
        report.ingest_id = Some(ingest_id);
        Ok(report)
    }

    /// Adds or replaces regions from a CSV with the columns of `regions.csv`; every code must
    /// have its level's shape and every parent must exist afterwards.
    fn load_regions_file(&self, path: &Path) -> Result<LoadReport> {
        let conn = self.fresh_conn()?;
        let db = |what: &str| AnalyticsError::db(format!("{what}, in {}", path.display()));
        let result = in_transaction(&conn, || {
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE load_regions AS SELECT code, name, level, NULLIF(parent_code, '') AS parent_code, lon, lat \
                 FROM read_csv({}, header = true, columns = {{'code': 'VARCHAR', 'name': 'VARCHAR', 'level': 'VARCHAR', \
                 'parent_code': 'VARCHAR', 'lon': 'DOUBLE', 'lat': 'DOUBLE'}})",
                quote(&path.to_string_lossy())
            ))
            .map_err(|e| fail(path, format!("cannot read regions: {e}")))?;
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM load_regions", [], |r| r.get(0))
                .map_err(db("cannot count regions"))?;
            conn.execute_batch(
                "DELETE FROM regions WHERE code IN (SELECT code FROM load_regions); \
                 INSERT INTO regions SELECT * FROM load_regions;",
            )
            .map_err(db("cannot write regions"))?;
            crate::ingest::check_regions(&conn, path)?;
            let ingest_id = record_ingest(&conn, &format!("regions <- {}", path.display()))?;
            Ok((n as u64, ingest_id))
        });
        let _ = conn.execute_batch("DROP TABLE IF EXISTS load_regions");
        let (n, ingest_id) = result?;
        self.reload_regions()?;
        Ok(LoadReport {
            table: "regions".into(),
            file: path.to_owned(),
            rows_read: n,
            rows_loaded: n,
            rows_changed: n,
            rows_rejected: 0,
            rejected: Vec::new(),
            ingest_id: Some(ingest_id),
        })
    }
}
