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
use duckdb::{Connection, OptionalExt};
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
    /// Rows written: new, or replacing a row with the same key and other values (rows equal
    /// to what is there are not written again).
    pub rows_loaded: u64,
    /// Rows whose key was not there before, or whose values differ from what was there.
    pub rows_changed: u64,
    pub rows_rejected: u64,
    /// The first rejected rows (at most [`MAX_LISTED`]).
    pub rejected: Vec<Rejection>,
    /// The load's number in the ingest log; `None` when nothing was written.
    pub ingest_id: Option<i64>,
    /// How long updating the cube took, milliseconds (`None` when nothing was written).
    pub cube_ms: Option<f64>,
}

/// How many rejected rows a report lists.
pub const MAX_LISTED: usize = 1000;

/// The most columns an uploaded batch may have (a fact table has at most a few dozen; a
/// mapping may read a few more).
pub const MAX_UPLOAD_COLUMNS: usize = 256;

/// The format of an [`Upload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadFormat {
    /// A header line, then one record per line (RFC 4180 quoting); an empty field is NULL.
    Csv,
    /// One JSON object per line; a key's value is a string, number, boolean or null.
    Ndjson,
}

/// Rows that arrive in memory (a request body) instead of as a file: the server, which is
/// the one writer of its file and reads no files, loads these. They are staged through
/// DuckDB's appender and then checked and written exactly like a file.
pub struct Upload<'a> {
    /// What reports and errors call the batch (e.g. `POST /api/facts/work_orders`).
    pub label: String,
    pub format: UploadFormat,
    pub bytes: &'a [u8],
}

/// Where a load's rows come from.
enum Rows<'a> {
    File(&'a Path),
    Upload(&'a Upload<'a>),
}

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
fn rejection_case(
    table: &FactTable,
    sources: &[(String, Option<String>)],
    scope: Option<&str>,
) -> String {
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
    if let Some(scope) = scope {
        // A writer with a scope writes only rows of its regions, and replaces only rows of
        // its regions (else a key could carry another region's row away).
        let column = table.region_column();
        let lit = quote(scope);
        arms.push(format!(
            "WHEN NOT starts_with(s.{column}, {lit}) \
             THEN CONCAT('{column} ', s.{column}, ' is outside the scope {scope} of this load')"
        ));
        let same_key: Vec<String> = table.key.iter().map(|k| format!("f.{k} = s.{k}")).collect();
        arms.push(format!(
            "WHEN EXISTS (SELECT 1 FROM {t} f WHERE {m} AND NOT starts_with(f.{column}, {lit})) \
             THEN 'the key belongs to a row outside the scope {scope} of this load'",
            t = table.name,
            m = same_key.join(" AND ")
        ));
    }
    arms.push(
        "WHEN load_dup > 1 THEN CONCAT('duplicate key (first in row ', load_first, ')')".to_owned(),
    );
    format!("CASE {} END", arms.join(" "))
}

/// Stages `rows` as text in the temporary table `load_raw` (`load_row` numbers the rows
/// from 1, as in the file).
fn stage(conn: &Connection, rows: &Rows, label: &Path) -> Result<()> {
    match rows {
        Rows::File(path) => conn
            .execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE load_raw AS SELECT row_number() OVER () AS load_row, * FROM {}",
                reader(path)?
            ))
            .map_err(|e| fail(label, format!("cannot read the file: {e}"))),
        Rows::Upload(upload) => {
            let bytes = upload.bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(upload.bytes);
            match upload.format {
                UploadFormat::Csv => stage_csv(conn, bytes, label),
                UploadFormat::Ndjson => stage_ndjson(conn, bytes, label),
            }
        }
    }
}

/// Creates `load_raw` with one text column per name.
fn create_raw(conn: &Connection, columns: &[String], label: &Path) -> Result<()> {
    if columns.is_empty() {
        return Err(fail(label, "the batch has no columns"));
    }
    if columns.len() > MAX_UPLOAD_COLUMNS {
        return Err(fail(
            label,
            format!(
                "{} columns, more than the {MAX_UPLOAD_COLUMNS} a batch may have",
                columns.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for c in columns {
        if c.is_empty() || c == "load_row" {
            return Err(fail(label, format!("column name {c:?} is not allowed")));
        }
        if !seen.insert(c.to_lowercase()) {
            return Err(fail(label, format!("column {c:?} is given twice")));
        }
    }
    let defs: Vec<String> = columns
        .iter()
        .map(|c| format!("{} VARCHAR", ident(c)))
        .collect();
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE load_raw (load_row BIGINT, {})",
        defs.join(", ")
    ))
    .map_err(AnalyticsError::db(format!(
        "cannot stage the batch, in {}",
        label.display()
    )))
}

fn append_err(label: &Path) -> impl FnOnce(duckdb::Error) -> AnalyticsError {
    AnalyticsError::db(format!("cannot stage the batch, in {}", label.display()))
}

fn stage_csv(conn: &Connection, bytes: &[u8], label: &Path) -> Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| fail(label, format!("cannot read the header line: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    create_raw(conn, &header, label)?;
    let mut appender = conn
        .appender_to_catalog_and_db("load_raw", "temp", "main")
        .map_err(append_err(label))?;
    let mut record = csv::StringRecord::new();
    let mut row: i64 = 0;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(fail(label, format!("row {}: malformed CSV: {e}", row + 1)));
            }
        }
        row += 1;
        let values = record.iter().map(|v| (!v.is_empty()).then_some(v));
        appender
            .append_row(duckdb::appender_params_from_iter(
                std::iter::once(duckdb::types::Value::BigInt(row)).chain(values.map(|v| match v {
                    Some(v) => duckdb::types::Value::Text(v.to_owned()),
                    None => duckdb::types::Value::Null,
                })),
            ))
            .map_err(append_err(label))?;
    }
    appender.flush().map_err(append_err(label))
}

fn stage_ndjson(conn: &Connection, bytes: &[u8], label: &Path) -> Result<()> {
    use serde_json::Value as J;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        fail(label, format!("line {line}: not UTF-8"))
    })?;
    let mut objects: Vec<(usize, serde_json::Map<String, J>)> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<J>(line) {
            Ok(J::Object(o)) => o,
            Ok(_) => return Err(fail(label, format!("line {}: not a JSON object", i + 1))),
            Err(e) => return Err(fail(label, format!("line {}: malformed JSON: {e}", i + 1))),
        };
        for (key, value) in &object {
            if matches!(value, J::Array(_) | J::Object(_)) {
                return Err(fail(
                    label,
                    format!(
                        "line {}: {key} is not a string, number, boolean or null",
                        i + 1
                    ),
                ));
            }
            if !index.contains_key(key) {
                index.insert(key.clone(), columns.len());
                columns.push(key.clone());
                if columns.len() > MAX_UPLOAD_COLUMNS {
                    break;
                }
            }
        }
        objects.push((i + 1, object));
    }
    create_raw(conn, &columns, label)?;
    let mut appender = conn
        .appender_to_catalog_and_db("load_raw", "temp", "main")
        .map_err(append_err(label))?;
    // Rows are numbered by their line, so that reports point into the batch.
    for (line, object) in objects {
        let mut values = vec![duckdb::types::Value::Null; columns.len() + 1];
        values[0] = duckdb::types::Value::BigInt(line as i64);
        for (key, value) in object {
            values[index[&key] + 1] = match value {
                J::Null => duckdb::types::Value::Null,
                J::String(s) if s.is_empty() => duckdb::types::Value::Null,
                J::String(s) => duckdb::types::Value::Text(s),
                other => duckdb::types::Value::Text(other.to_string()),
            };
        }
        appender
            .append_row(duckdb::appender_params_from_iter(values))
            .map_err(append_err(label))?;
    }
    appender.flush().map_err(append_err(label))
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
        self.facts_here("a load")?;
        if !path.is_file() {
            return Err(AnalyticsError::MissingFile {
                path: path.to_owned(),
            });
        }
        if table == "regions" {
            self.may_write(path)?;
            let _writing = self.writer.lock().expect("writer lock");
            return self.load_regions_file(path);
        }
        self.load(table, Rows::File(path), path, mapping, progress, None)
    }

    /// Loads a batch that arrived in memory into the fact table `table`, like
    /// [`Engine::load_file`], on behalf of `writer`: every row (and every row it would
    /// replace) must lie in the writer's scope, else it is rejected like any bad row.
    pub fn load_upload(
        &self,
        table: &str,
        upload: &Upload,
        mapping: Option<&Mapping>,
        writer: &crate::Audience,
    ) -> Result<LoadReport> {
        self.facts_here("a load")?;
        let label = PathBuf::from(&upload.label);
        if table == "regions" {
            return Err(fail(
                &label,
                "regions are loaded from a file with `databrain load` (the server loads fact tables)",
            ));
        }
        self.load(
            table,
            Rows::Upload(upload),
            &label,
            mapping,
            false,
            writer.scope(),
        )
    }

    fn may_write(&self, label: &Path) -> Result<()> {
        if self.mode().writes() {
            Ok(())
        } else {
            Err(fail(label, "the database was opened read-only"))
        }
    }

    fn load(
        &self,
        table: &str,
        rows: Rows,
        label: &Path,
        mapping: Option<&Mapping>,
        progress: bool,
        scope: Option<&str>,
    ) -> Result<LoadReport> {
        if let Some(m) = mapping
            && m.table != table
        {
            return Err(fail(
                label,
                format!("the mapping is for {}, not {table}", m.table),
            ));
        }
        self.may_write(label)?;
        let fact = fact_table(table)
            .filter(|t| t.source == Source::File)
            .ok_or_else(|| {
                let names: Vec<&str> = indicators::facts::file_tables().map(|t| t.name).collect();
                fail(
                    label,
                    format!(
                        "unknown table {table:?} (expected regions or one of: {})",
                        names.join(", ")
                    ),
                )
            })?;
        let on_reject = mapping.map(|m| m.on_reject).unwrap_or_default();
        let conn = self.fresh_conn()?;
        let bar = progress.then(|| crate::progress::Bar::start(&conn, &format!("loading {table}")));
        // Staging and checking need no lock: only writing waits for the writer before.
        let result = stage(&conn, &rows, label)
            .and_then(|()| self.load_fact(&conn, fact, label, mapping, on_reject, scope));
        if let Some(bar) = bar {
            bar.finish();
        }
        let _ = conn.execute_batch(
            "DROP TABLE IF EXISTS load_raw; DROP TABLE IF EXISTS load_stage; \
             DROP TABLE IF EXISTS load_changed; DROP TABLE IF EXISTS load_old;",
        );
        result
    }

    fn load_fact(
        &self,
        conn: &Connection,
        fact: &'static FactTable,
        path: &Path,
        mapping: Option<&Mapping>,
        on_reject: OnReject,
        scope: Option<&str>,
    ) -> Result<LoadReport> {
        let db = |what: &str| AnalyticsError::db(format!("{what}, in {}", path.display()));
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
            case = rejection_case(fact, &sources, scope),
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
            cube_ms: None,
        };
        if rows_rejected > 0 && on_reject == OnReject::Fail {
            return Err(AnalyticsError::Rejected(Box::new(report)));
        }
        let (names, select) = insert_lists(fact);
        let file_names: Vec<&str> = fact.file_columns().map(|c| c.name).collect();
        let cols = file_names.join(", ");
        let key_match = |a: &str, b: &str| -> String {
            key.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        // One writer at a time, from here to the commit.
        let _writing = self.writer.lock().expect("writer lock");
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(db("cannot begin"))?;
        let written = (|| -> Result<Option<i64>> {
            // Only rows that are new or differ from what is there are written, so a batch
            // sent again changes nothing (not even the snapshot).
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE load_changed AS \
                 SELECT {cols} FROM load_stage WHERE load_reason IS NULL \
                 EXCEPT SELECT {cols} FROM {t} f WHERE EXISTS \
                 (SELECT 1 FROM load_stage s WHERE s.load_reason IS NULL AND {m})",
                t = fact.name,
                m = key_match("f", "s"),
            ))
            .map_err(db("cannot compare with the loaded rows"))?;
            let changed: i64 = conn
                .query_row("SELECT COUNT(*) FROM load_changed", [], |r| r.get(0))
                .map_err(db("cannot count the changed rows"))?;
            if changed == 0 {
                return Ok(None);
            }
            // Checked again under the writer lock: a row another writer put there since the
            // checks above is not carried away by a writer without its region either.
            if let Some(scope) = scope {
                let column = fact.region_column();
                let taken: Option<String> = conn
                    .query_row(
                        &format!(
                            "SELECT CAST(s.{k} AS VARCHAR) FROM load_changed s JOIN {t} f ON {m} \
                             WHERE NOT starts_with(f.{column}, ?) LIMIT 1",
                            k = key[0],
                            t = fact.name,
                            m = key_match("f", "s"),
                        ),
                        [scope],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db("cannot check the rows replaced"))?;
                if let Some(taken) = taken {
                    return Err(fail(
                        path,
                        format!(
                            "{} {taken} belongs to a row outside the scope {scope} of this load; nothing was loaded",
                            key[0]
                        ),
                    ));
                }
            }
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TEMP TABLE load_old AS SELECT f.* FROM {t} f \
                 WHERE EXISTS (SELECT 1 FROM load_changed s WHERE {m}); \
                 DELETE FROM {t} f WHERE EXISTS (SELECT 1 FROM load_changed s WHERE {m}); \
                 INSERT INTO {t} ({names}) SELECT {select} FROM load_changed;",
                t = fact.name,
                m = key_match("f", "s"),
            ))
            .map_err(db("cannot write the rows"))?;
            let derived = crate::ingest::refresh_derived(conn, &[fact.name])?;
            // The loaded table's cube is updated where the batch (and the rows it replaced)
            // fall; tables derived from it are rebuilt.
            let touched = format!(
                "SELECT * FROM load_old UNION ALL SELECT f.* FROM {t} f \
                 WHERE EXISTS (SELECT 1 FROM load_changed s WHERE {m})",
                t = fact.name,
                m = key_match("f", "s"),
            );
            let started = std::time::Instant::now();
            crate::cube::update(conn, self, fact.name, &touched)?;
            let others: Vec<&str> = derived.into_iter().filter(|t| *t != fact.name).collect();
            if !others.is_empty() {
                crate::cube::refresh(conn, self, &others)?;
            }
            report.cube_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            let ingest_id = record_ingest(
                conn,
                &format!("{} <- {} ({changed} rows)", fact.name, path.display()),
            )?;
            report.rows_loaded = changed as u64;
            report.rows_changed = changed as u64;
            Ok(Some(ingest_id))
        })();
        match written {
            Ok(Some(ingest_id)) => {
                self.commit_visible(conn, false)?;
                report.ingest_id = Some(ingest_id);
            }
            Ok(None) => {
                conn.execute_batch("ROLLBACK")
                    .map_err(db("cannot roll back"))?;
            }
            Err(e) => {
                // The load error is what matters; a failed rollback leaves the transaction
                // aborted, which DuckDB discards with the connection anyway.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
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
            cube_ms: None,
        })
    }
}
