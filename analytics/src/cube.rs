//! Pre-aggregation: every additive measure of the catalogue summed per region key and day
//! and per region key and month, refreshed whenever its fact table is loaded.
//!
//! A query at a level the cube keeps (down to the fact table's region column, so not grid
//! cells of grid-keyed tables) and a grain its buckets divide (days for day and week, months
//! for month, quarter and year) reads the cube instead of the fact rows. Counts and sums add
//! up exactly the same way, so answers are the same with and without it (tested); distinct
//! counts and static measures always read the facts.

use crate::{AnalyticsError, Engine, Result};
use duckdb::Connection;
use indicators::facts::{FactTable, RegionKey, fact_table};
use indicators::sql::{CubeTable, aggregate_sql, measure_key, row_conditions};
use indicators::{Aggregate, Grain, Level, Measure};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Day,
    Month,
}

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Month => "month",
        }
    }

    fn parse(s: &str) -> Option<Bucket> {
        match s {
            "day" => Some(Bucket::Day),
            "month" => Some(Bucket::Month),
            _ => None,
        }
    }

    /// The bucket whose periods divide `grain`'s.
    fn for_grain(grain: Grain) -> Bucket {
        match grain {
            Grain::Day | Grain::Week => Bucket::Day,
            Grain::Month | Grain::Quarter | Grain::Year => Bucket::Month,
        }
    }
}

/// Whether a measure can be pre-aggregated at all.
fn additive(m: &Measure) -> bool {
    m.time.is_some() && matches!(m.agg, Aggregate::Count | Aggregate::Sum)
}

/// Whether the cube of a measure's table keeps `level`.
fn keeps_level(table: &FactTable, level: Level) -> bool {
    match table.region {
        RegionKey::Grid => level <= Level::Community,
        RegionKey::Column { level: own, .. } => level <= own,
    }
}

/// FNV-1a of a measure key, for table names.
fn hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub(crate) const REGISTRY_SQL: &str = "CREATE TABLE IF NOT EXISTS cubes (table_name VARCHAR NOT NULL, \
    measure_key VARCHAR NOT NULL, fact VARCHAR NOT NULL, bucket VARCHAR NOT NULL);\n";

/// Rebuilds the cubes of every additive measure of the catalogue over the fact tables in
/// `facts`, inside the caller's transaction.
pub(crate) fn refresh(conn: &Connection, engine: &Engine, facts: &[&str]) -> Result<()> {
    let mut measures: BTreeMap<String, &Measure> = BTreeMap::new();
    for ind in &engine.catalogue.indicators {
        for m in ind.numerator.iter().chain(ind.denominator.iter()) {
            if additive(m) && facts.contains(&m.fact) {
                measures.insert(measure_key(m), m);
            }
        }
    }
    for fact in facts {
        let old: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT table_name FROM cubes WHERE fact = ?")
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            let rows = stmt
                .query_map([fact], |r| r.get(0))
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(AnalyticsError::db("cannot read the cube registry"))?
        };
        for table in old {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))
                .map_err(AnalyticsError::db(format!("cannot drop cube {table}")))?;
        }
        conn.execute("DELETE FROM cubes WHERE fact = ?", [fact])
            .map_err(AnalyticsError::db("cannot clear the cube registry"))?;
    }
    for (key, m) in measures {
        let table = fact_table(m.fact).expect("validated fact table");
        let time = m.time.as_deref().expect("additive measures have time");
        for bucket in [Bucket::Day, Bucket::Month] {
            let name = format!("cube_{}_{:016x}", bucket.as_str(), hash(&key));
            let conds = row_conditions(m);
            let where_ = if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            };
            let region = table.region_column();
            let sql = format!(
                "CREATE TABLE {name} AS SELECT {region}, DATE_TRUNC('{b}', {time}) AS bucket, \
                 CAST({agg} AS DOUBLE) AS v FROM {fact}{where_} GROUP BY 1, 2",
                b = bucket.as_str(),
                agg = aggregate_sql(m),
                fact = m.fact,
            );
            conn.execute_batch(&sql)
                .map_err(AnalyticsError::db(format!(
                    "cannot build cube {name} ({key})"
                )))?;
            conn.execute(
                "INSERT INTO cubes VALUES (?, ?, ?, ?)",
                [name.as_str(), key.as_str(), m.fact, bucket.as_str()],
            )
            .map_err(AnalyticsError::db("cannot register a cube"))?;
        }
    }
    Ok(())
}

impl Engine {
    /// Re-reads the cube registry (after a load, or at open).
    pub(crate) fn reload_cubes(&self) -> Result<()> {
        let rows: Vec<(String, String, String)> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT table_name, measure_key, bucket FROM cubes")
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(AnalyticsError::db("cannot read the cube registry"))?;
            rows.collect::<std::result::Result<_, _>>()
                .map_err(AnalyticsError::db("cannot read the cube registry"))
        })?;
        let map: HashMap<(String, Bucket), String> = rows
            .into_iter()
            .filter_map(|(table, key, bucket)| Some(((key, Bucket::parse(&bucket)?), table)))
            .collect();
        *self.cubes.write().expect("cube lock") = Arc::new(map);
        Ok(())
    }

    /// The cube that covers `m` at `grain` and `level`, if there is one.
    pub(crate) fn cube_for(&self, m: &Measure, grain: Grain, level: Level) -> Option<CubeTable> {
        let table = fact_table(m.fact)?;
        if !additive(m) || !keeps_level(table, level) {
            return None;
        }
        let cubes = self.cubes.read().expect("cube lock").clone();
        cubes
            .get(&(measure_key(m), Bucket::for_grain(grain)))
            .map(|t| CubeTable { table: t.clone() })
    }
}
