//! Pre-aggregation: every additive measure of the catalogue summed per region and day and per
//! region and month, built at ingest and kept up to date by every load.
//!
//! Measures of one fact table that share a time column are computed in one scan into one
//! table per bucket (`cube_day_*`, `cube_month_*`), two columns per measure: the summed value
//! and the number of fact rows behind it. Day and month tables keep the fact table's region
//! column (communities for grid-keyed tables), and grid-keyed tables get a third, per grid
//! cell and month. A query reads the smallest table that keeps its level and whose buckets
//! divide its grain (days for day and week, months for month, quarter and year) instead of
//! the fact rows. A load rebuilds nothing: it recomputes only the cells (region and day or
//! month) its rows, old and new, fall in. Counts and sums add up the same way, so answers
//! are the same with and without it (tested); distinct counts and static measures always
//! read the facts.

use crate::ingest::quote_path;
use crate::{AnalyticsError, Engine, Result};
use duckdb::Connection;
use indicators::facts::{FactTable, RegionKey, fact_table};
use indicators::sql::{CubeTable, Dialect, aggregate_sql, measure_key, row_conditions};
use indicators::{Aggregate, Grain, Level, Measure};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// The three tables of a (fact table, time column): per region column and day, per region
/// column and month, and (for grid-keyed tables) per grid cell and month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Day,
    Month,
    GridMonth,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Month => "month",
            Bucket::GridMonth => "grid_month",
        }
    }

    fn parse(s: &str) -> Option<Bucket> {
        match s {
            "day" => Some(Bucket::Day),
            "month" => Some(Bucket::Month),
            "grid_month" => Some(Bucket::GridMonth),
            _ => None,
        }
    }

    /// The unit `DATE_TRUNC` rounds to.
    fn unit(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Month | Bucket::GridMonth => "month",
        }
    }

    /// The table that serves `grain` at `level`: the smallest one that keeps both.
    fn for_query(grain: Grain, level: Level) -> Bucket {
        match (grain, level) {
            (Grain::Day | Grain::Week, _) => Bucket::Day,
            (_, Level::Grid) => Bucket::GridMonth,
            _ => Bucket::Month,
        }
    }

    /// The buckets built for a fact table.
    fn all_for(table: &FactTable) -> &'static [Bucket] {
        match table.region {
            RegionKey::Grid => &[Bucket::Day, Bucket::Month, Bucket::GridMonth],
            RegionKey::Column { .. } => &[Bucket::Day, Bucket::Month],
        }
    }

    /// The region columns a table of this bucket keeps.
    fn keys(self, table: &FactTable) -> Vec<&'static str> {
        match self {
            Bucket::GridMonth => vec!["community_code", "grid_id"],
            _ => vec![table.region_column()],
        }
    }
}

/// Whether a measure can be pre-aggregated at all.
fn additive(m: &Measure) -> bool {
    m.time.is_some() && matches!(m.agg, Aggregate::Count | Aggregate::Sum)
}

/// Whether a table of `bucket` over `table` keeps `level`.
fn keeps_level(table: &FactTable, bucket: Bucket, level: Level) -> bool {
    match (table.region, bucket) {
        (RegionKey::Grid, Bucket::GridMonth) => true,
        (RegionKey::Grid, _) => level <= Level::Community,
        (RegionKey::Column { level: own, .. }, _) => level <= own,
    }
}

/// FNV-1a, for table and column names.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) const REGISTRY_SQL: &str = "CREATE TABLE IF NOT EXISTS cube_columns (table_name VARCHAR NOT NULL, \
    value_column VARCHAR NOT NULL, rows_column VARCHAR NOT NULL, measure_key VARCHAR NOT NULL, \
    fact VARCHAR NOT NULL, bucket VARCHAR NOT NULL);\n";

/// One cube table: its name, what it groups by and the columns it computes.
struct Plan {
    name: String,
    fact: &'static str,
    time: String,
    bucket: Bucket,
    /// The region columns it keeps.
    keys: Vec<&'static str>,
    /// `SELECT` items of the measures, two per measure.
    columns: Vec<String>,
    /// (value column, rows column, measure key) per measure.
    registered: Vec<(String, String, String)>,
}

impl Plan {
    /// Its rows in `cube_columns`.
    fn register(&self, conn: &Connection) -> Result<()> {
        for (value, rows, key) in &self.registered {
            conn.execute(
                "INSERT INTO cube_columns VALUES (?, ?, ?, ?, ?, ?)",
                [
                    self.name.as_str(),
                    value.as_str(),
                    rows.as_str(),
                    key.as_str(),
                    self.fact,
                    self.bucket.as_str(),
                ],
            )
            .map_err(AnalyticsError::db("cannot register a cube column"))?;
        }
        Ok(())
    }

    /// The table's columns in order, typed as DuckDB builds them, read from `source`.
    fn typed_columns(&self) -> String {
        let mut cols: Vec<String> = self.keys.iter().map(|k| k.to_string()).collect();
        cols.push("CAST(bucket AS TIMESTAMP) AS bucket".into());
        for (value, rows, _) in &self.registered {
            cols.push(format!("CAST({value} AS DOUBLE) AS {value}"));
            cols.push(format!("CAST({rows} AS BIGINT) AS {rows}"));
        }
        cols.join(", ")
    }
    /// The select list and grouping the table is made of (one definition for a rebuild and
    /// an update, so that their column orders agree).
    fn select(&self, filter: &str) -> String {
        format!(
            "SELECT {keys}, DATE_TRUNC('{b}', {time}) AS bucket, {cols} \
             FROM {fact} f WHERE {time} IS NOT NULL {filter} GROUP BY ALL",
            keys = self.keys.join(", "),
            b = self.bucket.unit(),
            time = self.time,
            cols = self.columns.join(", "),
            fact = self.fact,
        )
    }
}

/// The cube tables of every additive measure of the catalogue over the fact tables in
/// `facts`: measures grouped by (fact table, time column), one scan each, in `dialect`.
fn plans(engine: &Engine, facts: &[&str], dialect: Dialect) -> Vec<Plan> {
    let mut groups: BTreeMap<(&'static str, &str), BTreeMap<String, &Measure>> = BTreeMap::new();
    for ind in &engine.catalogue.indicators {
        for m in ind.numerator.iter().chain(ind.denominator.iter()) {
            if additive(m) && facts.contains(&m.fact) {
                let time = m.time.as_deref().expect("additive measures have time");
                groups
                    .entry((m.fact, time))
                    .or_default()
                    .insert(measure_key(m), m);
            }
        }
    }
    let mut out = Vec::new();
    for ((fact, time), measures) in groups {
        let table = fact_table(fact).expect("validated fact table");
        for &bucket in Bucket::all_for(table) {
            let name = format!(
                "cube_{}_{:016x}",
                bucket.as_str(),
                hash(&format!("{fact}|{time}"))
            );
            let mut columns = Vec::new();
            let mut registered = Vec::new();
            for (key, m) in &measures {
                let id = format!("{:016x}", hash(key));
                let (value, rows) = (format!("v_{id}"), format!("n_{id}"));
                let conds = row_conditions(m, dialect).join(" AND ");
                columns.push(format!(
                    "CAST({agg} FILTER (WHERE {conds}) AS DOUBLE) AS {value}, \
                     COUNT(*) FILTER (WHERE {conds}) AS {rows}",
                    agg = aggregate_sql(m)
                ));
                registered.push((value, rows, key.clone()));
            }
            out.push(Plan {
                name,
                fact,
                time: time.to_owned(),
                bucket,
                keys: bucket.keys(table),
                columns,
                registered,
            });
        }
    }
    out
}

fn registered_tables(conn: &Connection, fact: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT DISTINCT table_name FROM cube_columns WHERE fact = ? ORDER BY 1")
        .map_err(AnalyticsError::db("cannot read the cube registry"))?;
    let rows = stmt
        .query_map([fact], |r| r.get(0))
        .map_err(AnalyticsError::db("cannot read the cube registry"))?;
    rows.collect::<std::result::Result<_, _>>()
        .map_err(AnalyticsError::db("cannot read the cube registry"))
}

/// Rebuilds the cube tables of every additive measure of the catalogue over the fact tables
/// in `facts`, inside the caller's transaction.
pub(crate) fn refresh(conn: &Connection, engine: &Engine, facts: &[&str]) -> Result<()> {
    drop_tables(conn, facts)?;
    for plan in plans(engine, facts, Dialect::DuckDb) {
        let sql = format!("CREATE TABLE {} AS {}", plan.name, plan.select(""));
        conn.execute_batch(&sql)
            .map_err(AnalyticsError::db(format!(
                "cannot build cube {}",
                plan.name
            )))?;
        plan.register(conn)?;
    }
    Ok(())
}

/// Drops the cube tables of `facts` and their registry rows, inside the caller's transaction.
fn drop_tables(conn: &Connection, facts: &[&str]) -> Result<()> {
    for fact in facts {
        for table in registered_tables(conn, fact)? {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))
                .map_err(AnalyticsError::db(format!("cannot drop cube {table}")))?;
        }
        conn.execute("DELETE FROM cube_columns WHERE fact = ?", [fact])
            .map_err(AnalyticsError::db("cannot update the cube registry"))?;
    }
    Ok(())
}

/// Updates the cube tables of `fact` after some of its rows changed, inside the caller's
/// transaction: `touched` is a query giving the rows before and after the change, and only
/// the (region, day or month) cells they fall in are recomputed, from the fact rows of those
/// cells alone. Falls back to [`refresh`] when the cube was made for another catalogue.
pub(crate) fn update(conn: &Connection, engine: &Engine, fact: &str, touched: &str) -> Result<()> {
    let plans = plans(engine, &[fact], Dialect::DuckDb);
    let mut planned: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    planned.sort();
    planned.dedup();
    if registered_tables(conn, fact)? != planned {
        return refresh(conn, engine, &[fact]);
    }
    for plan in &plans {
        let unit = plan.bucket.unit();
        let time = &plan.time;
        let matching = |a: &str, b: &str| -> String {
            plan.keys
                .iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        // The cells the change falls in; the time range first, so that DuckDB skips the
        // row groups outside it by their zone maps.
        let sql = format!(
            "CREATE OR REPLACE TEMP TABLE cube_touched AS SELECT DISTINCT {keys}, \
             DATE_TRUNC('{unit}', {time}) AS bucket FROM ({touched}) WHERE {time} IS NOT NULL; \
             DELETE FROM {name} c WHERE EXISTS (SELECT 1 FROM cube_touched t WHERE {ct} AND c.bucket = t.bucket); \
             INSERT INTO {name} {select}; \
             DROP TABLE cube_touched;",
            keys = plan.keys.join(", "),
            name = plan.name,
            ct = matching("c", "t"),
            select = plan.select(&format!(
                "AND {time} >= (SELECT MIN(bucket) FROM cube_touched) \
                 AND {time} < (SELECT MAX(bucket) FROM cube_touched) + INTERVAL 1 {unit} \
                 AND EXISTS (SELECT 1 FROM cube_touched t WHERE {ft} \
                 AND t.bucket = DATE_TRUNC('{unit}', f.{time}))",
                ft = matching("f", "t"),
            )),
        );
        conn.execute_batch(&sql)
            .map_err(AnalyticsError::db(format!(
                "cannot update cube {}",
                plan.name
            )))?;
    }
    Ok(())
}

impl Engine {
    /// Rebuilds the whole cube from the fact rows in one transaction (maintenance, and what
    /// the benchmark compares a load's cell-by-cell update with); returns how long it took.
    pub fn rebuild_cube(&self) -> Result<std::time::Duration> {
        self.facts_here("rebuilding the cube")?;
        if !self.mode().writes() {
            return Err(AnalyticsError::Ingest {
                message: "the database was opened read-only".into(),
                path: self.path().to_owned(),
            });
        }
        let _writing = self.writer.lock().expect("writer lock");
        let conn = self.fresh_conn()?;
        let started = std::time::Instant::now();
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(AnalyticsError::db("cannot begin"))?;
        let facts: Vec<&str> = indicators::facts::FACT_TABLES
            .iter()
            .map(|t| t.name)
            .collect();
        if let Err(e) = refresh(&conn, self, &facts) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        self.commit_visible(&conn, false)?;
        Ok(started.elapsed())
    }

    /// Re-reads the cube registry (after a load, or at open).
    pub(crate) fn reload_cubes(&self) -> Result<()> {
        // Facts changed: the data extents read before are stale.
        self.recorded.write().expect("extent lock").clear();
        self.patterns.write().expect("pattern lock").clear();
        let rows: Vec<(String, String, String, String, String)> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT table_name, value_column, rows_column, measure_key, bucket FROM cube_columns",
                )
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(AnalyticsError::db("cannot read the cube registry"))
        })?;
        let map: HashMap<(String, Bucket), CubeTable> = rows
            .into_iter()
            .filter_map(|(table, value_column, rows_column, key, bucket)| {
                Some((
                    (key, Bucket::parse(&bucket)?),
                    CubeTable {
                        table,
                        value_column,
                        rows_column,
                    },
                ))
            })
            .collect();
        *self.cubes.write().expect("cube lock") = Arc::new(map);
        Ok(())
    }

    /// The cube that covers `m` at `grain` and `level`, if there is one.
    pub(crate) fn cube_for(&self, m: &Measure, grain: Grain, level: Level) -> Option<CubeTable> {
        let table = fact_table(m.fact)?;
        let bucket = Bucket::for_query(grain, level);
        if !additive(m) || !keeps_level(table, bucket, level) {
            return None;
        }
        let cubes = self.cubes.read().expect("cube lock").clone();
        cubes.get(&(measure_key(m), bucket)).cloned()
    }
}

/// What [`Engine::cube_from_spark`] built: each table's rows, and the time on the cluster and
/// loading into this file.
#[derive(Clone, Debug)]
pub struct CubeBuild {
    pub tables: Vec<(String, u64)>,
    pub on_cluster: std::time::Duration,
    pub loading: std::time::Duration,
}

impl Engine {
    /// Builds every cube table on the Spark cluster from the history's fact rows (the same
    /// plans, in Spark's dialect, side by side), writes them as Parquet under `scratch` (a
    /// directory the cluster and this process both see) and replaces this file's cube with
    /// them in one transaction. The serving file then answers the history's counts and sums
    /// from its cube; measures the cube does not hold (distinct counts, static tables) still
    /// read this file's fact rows.
    pub fn cube_from_spark(
        &self,
        spark: &crate::spark::Spark,
        scratch: &Path,
    ) -> Result<CubeBuild> {
        if !self.mode().writes() || self.mode().sealed() {
            return Err(AnalyticsError::Ingest {
                message: "the cube is loaded through a writable file opened with file access"
                    .into(),
                path: self.path().to_owned(),
            });
        }
        let facts: Vec<&str> = indicators::facts::FACT_TABLES
            .iter()
            .map(|t| t.name)
            .collect();
        let on_spark = plans(self, &facts, Dialect::Spark);
        let here = plans(self, &facts, Dialect::DuckDb);
        let out = |plan: &Plan| scratch.join(&plan.name);
        let started = std::time::Instant::now();
        let batch: Vec<crate::spark::SparkQuery> = on_spark
            .iter()
            .map(|plan| crate::spark::SparkQuery {
                sql: plan.select(""),
                params: Vec::new(),
                out: Some(out(plan)),
            })
            .collect();
        spark.run(&batch)?;
        let on_cluster = started.elapsed();
        let started = std::time::Instant::now();
        let _writing = self.writer.lock().expect("writer lock");
        let conn = self.fresh_conn()?;
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(AnalyticsError::db("cannot begin"))?;
        let loaded = (|| {
            drop_tables(&conn, &facts)?;
            let mut tables = Vec::new();
            for plan in &here {
                let dir = out(plan);
                let has_files = std::fs::read_dir(&dir)
                    .map_err(|e| AnalyticsError::Ingest {
                        message: format!("Spark wrote no cube table here: {e}"),
                        path: dir.clone(),
                    })?
                    .filter_map(|e| e.ok())
                    .any(|e| e.path().extension().is_some_and(|x| x == "parquet"));
                let sql = if has_files {
                    format!(
                        "CREATE TABLE {} AS SELECT {} FROM read_parquet({})",
                        plan.name,
                        plan.typed_columns(),
                        quote_path(&dir.join("*.parquet"))
                    )
                } else {
                    // An empty result: the same columns, no rows.
                    format!("CREATE TABLE {} AS {}", plan.name, plan.select("AND FALSE"))
                };
                conn.execute_batch(&sql)
                    .map_err(AnalyticsError::db(format!(
                        "cannot load cube {} from {}",
                        plan.name,
                        dir.display()
                    )))?;
                plan.register(&conn)?;
                let rows: i64 = conn
                    .query_row(&format!("SELECT COUNT(*) FROM {}", plan.name), [], |r| {
                        r.get(0)
                    })
                    .map_err(AnalyticsError::db("cannot count a cube table"))?;
                tables.push((plan.name.clone(), rows as u64));
            }
            Ok(tables)
        })();
        let tables = match loaded {
            Ok(t) => t,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        self.commit_visible(&conn, false)?;
        Ok(CubeBuild {
            tables,
            on_cluster,
            loading: started.elapsed(),
        })
    }
}
