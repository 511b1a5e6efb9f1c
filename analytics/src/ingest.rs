//! Loading a directory of sample or department files into the database, all-or-nothing.
//!
//! CSV fact files are read by DuckDB (`read_csv`) with the column types from
//! `indicators::facts`; headers are checked first so a wrong file fails with its name and the
//! missing or unexpected columns. GeoJSON buildings and region shapes are parsed and checked
//! here, feature by feature. Everything happens in one transaction: a failure leaves the
//! database as it was. Loading a directory replaces the data of the tables it holds, so
//! loading the same directory twice changes nothing.

use crate::{AnalyticsError, Engine, Result};
use duckdb::{Connection, OptionalExt, params};
use indicators::facts::{FACT_TABLES, FactTable, RegionKey, Source, file_tables};
use std::io::BufRead;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, serde::Serialize)]
pub struct IngestReport {
    pub ingest_id: i64,
    pub tables: Vec<(String, u64)>,
}

fn create_fact_sql(t: &FactTable) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                c.name,
                c.ty.sql(),
                if c.nullable { "" } else { " NOT NULL" }
            )
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {} ({});\n",
        t.name,
        cols.join(", ")
    )
}

pub(crate) fn schema_sql() -> String {
    let mut sql = String::new();
    for t in FACT_TABLES {
        sql += &create_fact_sql(t);
    }
    sql += "CREATE TABLE IF NOT EXISTS regions (code VARCHAR NOT NULL, name VARCHAR NOT NULL, \
            level VARCHAR NOT NULL, parent_code VARCHAR, lon DOUBLE, lat DOUBLE);\n\
            CREATE TABLE IF NOT EXISTS region_shapes (code VARCHAR NOT NULL, geometry VARCHAR NOT NULL);\n\
            CREATE TABLE IF NOT EXISTS buildings (building_id VARCHAR NOT NULL, grid_id VARCHAR NOT NULL, \
            community_code VARCHAR NOT NULL, height_m DOUBLE NOT NULL, footprint VARCHAR NOT NULL);\n\
            CREATE TABLE IF NOT EXISTS ingests (ingest_id BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL, \
            source VARCHAR NOT NULL);\n\
            CREATE TABLE IF NOT EXISTS task_events (task_id VARCHAR NOT NULL, seq INTEGER NOT NULL, \
            event_at TIMESTAMP NOT NULL, action VARCHAR NOT NULL, actor VARCHAR NOT NULL, event VARCHAR NOT NULL, \
            PRIMARY KEY (task_id, seq));\n";
    sql += crate::cube::REGISTRY_SQL;
    sql
}

/// Recreates the fact tables whose columns differ from the schema (a database written by an
/// older version); only for full ingests, which replace every table's data anyway.
fn recreate_changed_tables(conn: &Connection) -> Result<()> {
    for t in FACT_TABLES {
        let mut stmt = conn
            .prepare(
                "SELECT column_name FROM information_schema.columns \
                 WHERE table_name = ? AND table_schema = 'main' ORDER BY ordinal_position",
            )
            .map_err(AnalyticsError::db("cannot read the schema"))?;
        let have: Vec<String> = stmt
            .query_map([t.name], |r| r.get(0))
            .map_err(AnalyticsError::db("cannot read the schema"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(AnalyticsError::db("cannot read the schema"))?;
        let want: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
        if have != want {
            conn.execute_batch(&format!(
                "DROP TABLE IF EXISTS {}; {}",
                t.name,
                create_fact_sql(t)
            ))
            .map_err(AnalyticsError::db(format!("cannot recreate {}", t.name)))?;
        }
    }
    Ok(())
}

/// The fact tables read from files, in load order.
/// SQL listing a table's key columns as one text, for messages.
pub(crate) fn key_text(table: &FactTable) -> String {
    let parts: Vec<String> = table
        .key
        .iter()
        .map(|k| format!("CAST({k} AS VARCHAR)"))
        .collect();
    format!("CONCAT_WS('/', {})", parts.join(", "))
}

/// Recomputes the derived fact tables that read from `loaded`, inside the caller's
/// transaction, and returns the names of the tables that changed (loaded and derived).
pub(crate) fn refresh_derived(
    conn: &Connection,
    loaded: &[&'static str],
) -> Result<Vec<&'static str>> {
    let mut changed: Vec<&'static str> = loaded.to_vec();
    for t in FACT_TABLES {
        if let Source::Derived(select) = t.source
            && loaded.iter().any(|l| select.contains(&format!("FROM {l}")))
        {
            conn.execute_batch(&format!(
                "DELETE FROM {name}; INSERT INTO {name} {select}",
                name = t.name
            ))
            .map_err(AnalyticsError::db(format!("cannot derive {}", t.name)))?;
            changed.push(t.name);
        }
    }
    Ok(changed)
}

/// Rows that break one of the table's rules make the load fail, naming one example.
fn check_rules(conn: &Connection, table: &FactTable, path: &Path) -> Result<()> {
    for rule in table.rules {
        let bad: Option<String> = conn
            .query_row(
                &format!(
                    "SELECT {key} FROM {t} WHERE NOT ({cond}) LIMIT 1",
                    key = key_text(table),
                    t = table.name,
                    cond = rule.sql
                ),
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(AnalyticsError::db(format!("cannot check {}", table.name)))?;
        if let Some(key) = bad {
            return Err(ingest_err(
                path,
                format!("{} row {key}: {}", table.name, rule.reason),
            ));
        }
    }
    Ok(())
}

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A file path as a DuckDB string literal (for `COPY`, `read_csv` and `read_parquet`).
pub(crate) fn quote_path(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

/// The column list of a fact table and the `SELECT` list that fills it from staged file
/// columns (derived columns computed from the others).
pub(crate) fn insert_lists(table: &FactTable) -> (String, String) {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let select: Vec<&str> = table
        .columns
        .iter()
        .map(|c| c.derived_sql.unwrap_or(c.name))
        .collect();
    (names.join(", "), select.join(", "))
}

/// Runs `f` in a transaction: committed when it succeeds, rolled back when it fails.
pub(crate) fn in_transaction<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(AnalyticsError::db("cannot begin"))?;
    match f() {
        Ok(r) => {
            conn.execute_batch("COMMIT")
                .map_err(AnalyticsError::db("cannot commit"))?;
            Ok(r)
        }
        Err(e) => {
            // The load error is what matters; a failed rollback leaves the transaction
            // aborted, which DuckDB discards with the connection anyway.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Numbers a load and writes it to the ingest log; returns its number.
pub(crate) fn record_ingest(conn: &Connection, source: &str) -> Result<i64> {
    let ingest_id: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(ingest_id), 0) + 1 FROM ingests",
            [],
            |r| r.get(0),
        )
        .map_err(AnalyticsError::db("cannot number the load"))?;
    conn.execute(
        "INSERT INTO ingests VALUES (?, CAST(current_timestamp AS TIMESTAMP), ?)",
        params![ingest_id, source],
    )
    .map_err(AnalyticsError::db("cannot record the load"))?;
    Ok(ingest_id)
}

fn ingest_err(path: &Path, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Ingest {
        message: message.into(),
        path: path.to_owned(),
    }
}

fn require(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(AnalyticsError::MissingFile { path })
    }
}

/// Reads the header line and returns the `columns={...}` argument of `read_csv` in file order.
fn csv_columns(path: &Path, table: &FactTable) -> Result<String> {
    let file =
        std::fs::File::open(path).map_err(|e| ingest_err(path, format!("cannot open: {e}")))?;
    let mut header = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut header)
        .map_err(|e| ingest_err(path, format!("cannot read the header: {e}")))?;
    let names: Vec<&str> = header
        .trim_end()
        .split(',')
        .map(|s| s.trim_matches('"'))
        .collect();
    let expected: Vec<&str> = table.file_columns().map(|c| c.name).collect();
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|e| !names.contains(e))
        .collect();
    let unexpected: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !expected.contains(n))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        return Err(ingest_err(
            path,
            format!(
                "header of {} does not match: missing [{}], unexpected [{}]",
                table.name,
                missing.join(", "),
                unexpected.join(", ")
            ),
        ));
    }
    let cols: Vec<String> = names
        .iter()
        .map(|n| {
            let c = table.column(n).expect("checked above");
            format!("{}: {}", quote(n), quote(c.ty.sql()))
        })
        .collect();
    Ok(format!("{{{}}}", cols.join(", ")))
}

/// Loads one fact file; `columns` is its checked `read_csv` column list ([`csv_columns`]).
fn load_fact_csv(conn: &Connection, table: &FactTable, path: &Path, columns: &str) -> Result<u64> {
    let (target, select) = insert_lists(table);
    let sql = format!(
        "INSERT INTO {t} ({target}) SELECT {select} FROM read_csv({file}, header = true, \
         columns = {columns}, timestampformat = '%Y-%m-%d %H:%M:%S', nullstr = '', quote = '\"')",
        t = table.name,
        file = quote_path(path),
    );
    let rows = conn
        .execute(&sql, [])
        .map_err(|e| ingest_err(path, format!("cannot load {}: {e}", table.name)))?;
    Ok(rows as u64)
}

/// Rows whose region keys do not exist or disagree make the load fail, naming one example.
fn check_region_keys(conn: &Connection, table: &FactTable, path: &Path) -> Result<()> {
    let (condition, describe) = match table.region {
        RegionKey::Grid => (
            "NOT EXISTS (SELECT 1 FROM regions r WHERE r.code = f.grid_id AND r.level = 'grid') \
             OR SUBSTR(f.grid_id, 1, 12) <> f.community_code"
                .to_owned(),
            "CONCAT('grid cell ', f.grid_id, ' is not a known grid cell of community ', f.community_code)"
                .to_owned(),
        ),
        RegionKey::Column { name, level } => (
            format!(
                "NOT EXISTS (SELECT 1 FROM regions r WHERE r.code = f.{name} AND r.level = '{}')",
                level.as_str()
            ),
            format!("CONCAT('{name} ', f.{name}, ' is not a known {} code')", level.as_str()),
        ),
    };
    let sql = format!(
        "SELECT {key}, {describe} FROM {t} f WHERE {condition} LIMIT 1",
        key = key_text(table),
        t = table.name
    );
    let bad: Option<(String, String)> = conn
        .query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(AnalyticsError::db("cannot check region keys"))?;
    match bad {
        Some((key, why)) => Err(ingest_err(path, format!("{} row {key}: {why}", table.name))),
        None => Ok(()),
    }
}

/// Every region code must have the shape of its level, and every parent must exist.
pub(crate) fn check_regions(conn: &Connection, path: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT code, level FROM regions")
        .map_err(AnalyticsError::db("cannot read regions"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(AnalyticsError::db("cannot read regions"))?;
    for row in rows {
        let (code, level) = row.map_err(AnalyticsError::db("cannot read regions"))?;
        match indicators::region_level(&code) {
            Ok(l) if l.as_str() == level => {}
            _ => {
                return Err(ingest_err(
                    path,
                    format!("region {code:?} does not have the shape of a {level} code"),
                ));
            }
        }
    }
    let orphan: Option<String> = conn
        .query_row(
            "SELECT c.code FROM regions c LEFT JOIN regions p ON p.code = c.parent_code \
             WHERE c.parent_code IS NOT NULL AND p.code IS NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(AnalyticsError::db("cannot check region parents"))?;
    match orphan {
        Some(code) => Err(ingest_err(
            path,
            format!("region {code:?} has an unknown parent"),
        )),
        None => Ok(()),
    }
}

fn load_regions(conn: &Connection, path: &Path) -> Result<u64> {
    let sql = format!(
        "INSERT INTO regions SELECT code, name, level, NULLIF(parent_code, ''), lon, lat FROM read_csv({}, header = true, \
         columns = {{'code': 'VARCHAR', 'name': 'VARCHAR', 'level': 'VARCHAR', 'parent_code': 'VARCHAR', 'lon': 'DOUBLE', 'lat': 'DOUBLE'}})",
        quote_path(path)
    );
    let n = conn
        .execute(&sql, [])
        .map_err(|e| ingest_err(path, format!("cannot load regions: {e}")))?;
    check_regions(conn, path)?;
    Ok(n as u64)
}

/// A closed ring of finite lon/lat pairs, or an error naming what is wrong.
fn ring_of(value: &serde_json::Value) -> std::result::Result<Vec<[f64; 2]>, String> {
    let ring = value
        .get("coordinates")
        .and_then(|c| c.get(0))
        .and_then(|r| r.as_array())
        .ok_or("geometry has no Polygon coordinates")?;
    let mut out = Vec::with_capacity(ring.len());
    for (i, p) in ring.iter().enumerate() {
        let (x, y) = (
            p.get(0).and_then(|v| v.as_f64()),
            p.get(1).and_then(|v| v.as_f64()),
        );
        match (x, y) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => out.push([x, y]),
            _ => return Err(format!("vertex {i} is not a finite [lon, lat] pair")),
        }
    }
    if out.len() < 4 {
        return Err(format!(
            "outer ring has {} vertices, fewer than 4",
            out.len()
        ));
    }
    if out.first() != out.last() {
        return Err("outer ring is not closed".into());
    }
    Ok(out)
}

fn features(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ingest_err(path, format!("cannot read: {e}")))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ingest_err(path, format!("malformed GeoJSON: {e}")))?;
    match doc.get_mut("features").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(f)) => Ok(f),
        _ => Err(ingest_err(path, "not a GeoJSON FeatureCollection")),
    }
}

fn load_buildings(conn: &Connection, path: &Path) -> Result<u64> {
    let mut app = conn
        .appender("buildings")
        .map_err(AnalyticsError::db("cannot append buildings"))?;
    let mut n = 0;
    for (i, f) in features(path)?.iter().enumerate() {
        let props = f.get("properties");
        let text = |k: &str| {
            props
                .and_then(|p| p.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let id = text("building_id").unwrap_or_else(|| format!("#{i}"));
        let fail = |m: String| ingest_err(path, format!("building {id}: {m}"));
        let grid = text("grid_id").ok_or_else(|| fail("no grid_id".into()))?;
        let community = text("community_code").ok_or_else(|| fail("no community_code".into()))?;
        let height = props
            .and_then(|p| p.get("height_m"))
            .and_then(|v| v.as_f64())
            .filter(|h| h.is_finite() && *h > 0.0)
            .ok_or_else(|| fail("height_m is missing or not a positive number".into()))?;
        let ring = ring_of(f.get("geometry").unwrap_or(&serde_json::Value::Null)).map_err(fail)?;
        let footprint = serde_json::to_string(&ring).expect("ring serialises");
        app.append_row(params![id, grid, community, height, footprint])
            .map_err(AnalyticsError::db("cannot append a building"))?;
        n += 1;
    }
    app.flush()
        .map_err(AnalyticsError::db("cannot append buildings"))?;
    Ok(n)
}

fn load_region_shapes(conn: &Connection, path: &Path) -> Result<u64> {
    let mut app = conn
        .appender("region_shapes")
        .map_err(AnalyticsError::db("cannot append shapes"))?;
    let mut n = 0;
    for (i, f) in features(path)?.iter().enumerate() {
        let code = f
            .get("properties")
            .and_then(|p| p.get("code"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| ingest_err(path, format!("feature {i}: no code property")))?;
        let ring = ring_of(f.get("geometry").unwrap_or(&serde_json::Value::Null))
            .map_err(|m| ingest_err(path, format!("region {code}: {m}")))?;
        app.append_row(params![
            code,
            serde_json::to_string(&ring).expect("ring serialises")
        ])
        .map_err(AnalyticsError::db("cannot append a region shape"))?;
        n += 1;
    }
    app.flush()
        .map_err(AnalyticsError::db("cannot append shapes"))?;
    Ok(n)
}

impl Engine {
    /// Loads a directory written by `databrain generate` (regions, population, facts,
    /// buildings) in one transaction, replacing what was there, then recomputes derived
    /// tables and the cube.
    pub fn ingest_dir(&self, dir: &Path) -> Result<IngestReport> {
        self.facts_here("an ingest")?;
        if self.mode() != crate::OpenMode::ReadWrite {
            return Err(ingest_err(dir, "the database was opened read-only"));
        }
        let regions = require(dir.join("regions.csv"))?;
        let shapes = require(dir.join("regions.geojson"))?;
        let buildings = require(dir.join("buildings.geojson"))?;
        // Every header is checked before anything is loaded, so a wrong file fails at once.
        let facts: Vec<(&FactTable, PathBuf, String)> = file_tables()
            .map(|t| {
                let path = require(dir.join(format!("{}.csv", t.name)))?;
                let columns = csv_columns(&path, t)?;
                Ok((t, path, columns))
            })
            .collect::<Result<_>>()?;
        let report = self.with_conn(|conn| {
            in_transaction(conn, || {
                recreate_changed_tables(conn)?;
                let mut tables = Vec::new();
                for t in ["regions", "region_shapes", "buildings"]
                    .iter()
                    .copied()
                    // The task ledger is the loop's own record, not the data's: it stays.
                    .chain(
                        FACT_TABLES
                            .iter()
                            .filter(|t| t.source != Source::System)
                            .map(|t| t.name),
                    )
                {
                    conn.execute(&format!("DELETE FROM {t}"), [])
                        .map_err(AnalyticsError::db(format!("cannot clear {t}")))?;
                }
                tables.push(("regions".to_owned(), load_regions(conn, &regions)?));
                tables.push((
                    "region_shapes".to_owned(),
                    load_region_shapes(conn, &shapes)?,
                ));
                for (t, path, columns) in &facts {
                    let n = load_fact_csv(conn, t, path, columns)?;
                    check_region_keys(conn, t, path)?;
                    check_rules(conn, t, path)?;
                    tables.push((t.name.to_owned(), n));
                }
                let loaded: Vec<&'static str> = file_tables().map(|t| t.name).collect();
                let changed = refresh_derived(conn, &loaded)?;
                crate::cube::refresh(conn, self, &changed)?;
                let n = load_buildings(conn, &buildings)?;
                check_region_keys_buildings(conn, &buildings)?;
                tables.push(("buildings".to_owned(), n));
                let ingest_id = record_ingest(conn, &dir.display().to_string())?;
                Ok(IngestReport { ingest_id, tables })
            })
        })?;
        self.reload_regions()?;
        self.reload_cubes()?;
        Ok(report)
    }
}

fn check_region_keys_buildings(conn: &Connection, path: &Path) -> Result<()> {
    let bad: Option<(String, String)> = conn
        .query_row(
            "SELECT building_id, grid_id FROM buildings b WHERE NOT EXISTS \
             (SELECT 1 FROM regions r WHERE r.code = b.grid_id AND r.level = 'grid') LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(AnalyticsError::db("cannot check building grid cells"))?;
    match bad {
        Some((id, grid)) => Err(ingest_err(
            path,
            format!("building {id}: unknown grid cell {grid:?}"),
        )),
        None => Ok(()),
    }
}

/// What [`Engine::replace_region_shapes`] did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ShapesReport {
    pub ingest_id: i64,
    /// Regions whose boundary was replaced.
    pub replaced: u64,
}

/// One region's boundary for [`Engine::replace_region_shapes`]: polygons, each an outer ring
/// then holes, in lon/lat (WGS84).
pub type RegionPolygons = (String, Vec<Vec<Vec<[f64; 2]>>>);

impl Engine {
    /// Replaces the boundaries of the named regions (e.g. the generated rectangles by real
    /// outlines from a boundary file, read and converted to WGS84 by the caller), in one
    /// transaction and as a load of its own (a new snapshot). Every code must be a region of
    /// the database and every ring closed with at least four finite vertices; otherwise the
    /// error names the first offender and nothing changes. `source` names the file.
    pub fn replace_region_shapes(
        &self,
        source: &Path,
        shapes: &[RegionPolygons],
    ) -> Result<ShapesReport> {
        if self.mode() != crate::OpenMode::ReadWrite {
            return Err(ingest_err(source, "the database was opened read-only"));
        }
        for (code, polygons) in shapes {
            if polygons.is_empty() {
                return Err(ingest_err(source, format!("region {code}: no polygon")));
            }
            for (p, rings) in polygons.iter().enumerate() {
                for (r, ring) in rings.iter().enumerate() {
                    let what = format!("region {code}: polygon {p} ring {r}");
                    if ring.len() < 4 {
                        return Err(ingest_err(
                            source,
                            format!("{what} has {} vertices, fewer than 4", ring.len()),
                        ));
                    }
                    if ring.first() != ring.last() {
                        return Err(ingest_err(source, format!("{what} is not closed")));
                    }
                    if let Some(i) = ring
                        .iter()
                        .position(|v| !(v[0].is_finite() && v[1].is_finite()))
                    {
                        return Err(ingest_err(
                            source,
                            format!("{what}: vertex {i} is not finite"),
                        ));
                    }
                }
            }
        }
        let known = self.regions();
        let unknown: Vec<&str> = shapes
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| !known.contains_key(*c))
            .collect();
        if !unknown.is_empty() {
            return Err(ingest_err(
                source,
                format!(
                    "{} boundaries name no region of the database: {}",
                    unknown.len(),
                    unknown
                        .iter()
                        .take(10)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let report = self.with_conn(|conn| {
            in_transaction(conn, || {
                let mut replaced = 0;
                for (code, polygons) in shapes {
                    conn.execute("DELETE FROM region_shapes WHERE code = ?", params![code])
                        .map_err(AnalyticsError::db("cannot replace a region shape"))?;
                    conn.execute(
                        "INSERT INTO region_shapes VALUES (?, ?)",
                        params![
                            code,
                            serde_json::to_string(polygons).expect("polygons serialise")
                        ],
                    )
                    .map_err(AnalyticsError::db("cannot replace a region shape"))?;
                    replaced += 1;
                }
                let ingest_id = record_ingest(conn, &format!("boundaries {}", source.display()))?;
                Ok(ShapesReport {
                    ingest_id,
                    replaced,
                })
            })
        })?;
        self.reload_regions()?;
        Ok(report)
    }
}
