//! Answering indicator queries and reading regions, buildings and the data snapshot.

use crate::{AnalyticsError, Audience, Engine, Result};
use chrono::{Days, NaiveDate};
use duckdb::{OptionalExt, params_from_iter};
use indicators::{Direction, Grain, Indicator, IndicatorQuery, Level, Period, Status, sql};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Summed parts per region and period: `(region_code, period, numerator, denominator,
/// records)`; records is `None` for published statistics (no disclosure control).
pub(crate) type Parts = Vec<(String, String, f64, Option<f64>, Option<f64>)>;

/// A value and its records by `(region_code, period)`.
type ValuesByCell = HashMap<(String, String), (f64, Option<f64>)>;

/// Cells by `(region_code, period)`.
pub(crate) type CellSet = std::collections::HashSet<(String, String)>;

/// One indicator value for one region and period, with the parts it was computed from.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndicatorValue {
    pub indicator: String,
    pub region_code: String,
    pub region_name: String,
    pub period: String,
    pub value: Option<f64>,
    pub numerator: f64,
    pub denominator: Option<f64>,
    pub unit: String,
    pub target: Option<f64>,
    pub gap_to_target: Option<f64>,
    /// `ok`, `warning`, `critical` or `no_data`.
    #[schema(value_type = String)]
    pub status: Status,
    /// Value in the period before, and the change to this one.
    pub previous_value: Option<f64>,
    pub change_vs_previous: Option<f64>,
    /// Value in the same period a year earlier, and the change to this one.
    pub last_year_value: Option<f64>,
    pub change_vs_last_year: Option<f64>,
    /// Rank among the regions with the same parent in the same period (1 = best in the
    /// indicator's direction); `None` without a value.
    pub rank: Option<u32>,
    /// How many regions share the parent in this period, this one included.
    pub siblings: u32,
    /// How many fact records the value rests on (`None` for published statistics, and for
    /// withheld cells).
    pub support: Option<f64>,
    /// The period had not ended by the last day with data: its value is incomplete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Whether the numbers were withheld from this audience: too few records stand behind
    /// them, or they would let a withheld cell be derived (see `policy`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl IndicatorValue {
    /// Withholds every number of the row (value, parts, support, comparisons, rank), keeping
    /// region and period; status becomes no data.
    pub(crate) fn suppress(&mut self) {
        self.support = None;
        self.value = None;
        self.numerator = 0.0;
        self.denominator = None;
        self.gap_to_target = None;
        self.status = indicators::Status::NoData;
        self.previous_value = None;
        self.change_vs_previous = None;
        self.last_year_value = None;
        self.change_vs_last_year = None;
        self.rank = None;
        self.suppressed = true;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionInfo {
    pub code: String,
    pub name: String,
    pub level: String,
    pub parent_code: Option<String>,
    pub lon: f64,
    pub lat: f64,
}

/// A building footprint as stored: outer ring in lon/lat (WGS84), height in metres.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuildingRecord {
    pub building_id: String,
    pub grid_id: String,
    pub height_m: f64,
    pub footprint_lon_lat: Vec<[f64; 2]>,
}

/// A region's boundary as stored: its outer ring in lon/lat (WGS84, closed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegionShapeRecord {
    pub code: String,
    pub name: String,
    /// Polygons, each an outer ring then holes, each ring closed, in lon/lat (WGS84).
    pub polygons_lon_lat: Vec<Vec<Vec<[f64; 2]>>>,
}

/// A stored boundary: the generated sample's one outer ring, or the polygons (with holes) of
/// a boundary file loaded by [`Engine::replace_region_shapes`].
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredShape {
    Ring(Vec<[f64; 2]>),
    Polygons(Vec<Vec<Vec<[f64; 2]>>>),
}

/// Which load the data comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub ingest_id: i64,
    pub loaded_at: String,
    pub source: String,
}

/// The newest period among `values` that had ended by `through` (the last day with recorded
/// data), so a period that has only just begun, such as the days after the data ends into
/// which due dates fall, is not taken for the latest. Without `through`, the newest period.
pub fn latest_complete_period(
    values: &[IndicatorValue],
    grain: Grain,
    through: Option<NaiveDate>,
) -> Option<&str> {
    values
        .iter()
        .map(|v| v.period.as_str())
        .filter(|p| match (through, Period::parse(grain, p)) {
            (Some(last_day), Ok(period)) => period <= Period::latest_complete(grain, last_day),
            (None, _) => true,
            (Some(_), Err(_)) => false,
        })
        .max()
}

/// Fills in changes against the previous period and the same period last year, and ranks
/// each value among its siblings (same parent region, same period).
fn compare_and_rank(
    values: &mut [IndicatorValue],
    indicator: &Indicator,
    level: Level,
    grain: Grain,
) {
    let by_key: HashMap<(String, String), f64> = values
        .iter()
        .filter_map(|v| Some(((v.region_code.clone(), v.period.clone()), v.value?)))
        .collect();
    let parent_of = |code: &str| -> String {
        level
            .parent()
            .and_then(|p| indicators::level::ancestor(code, p))
            .unwrap_or("")
            .to_owned()
    };
    // Per (parent, period): the siblings' values and how many siblings there are.
    let mut groups: HashMap<(String, String), (Vec<f64>, u32)> = HashMap::new();
    for v in values.iter() {
        let group = groups
            .entry((parent_of(&v.region_code), v.period.clone()))
            .or_default();
        group.0.extend(v.value);
        group.1 += 1;
    }
    for v in values.iter_mut() {
        let Ok(period) = Period::parse(grain, &v.period) else {
            continue;
        };
        if v.suppressed {
            // A withheld row carries no comparisons and no rank, only how many siblings it has.
            v.siblings = groups[&(parent_of(&v.region_code), v.period.clone())].1;
            continue;
        }
        let lookup = |p: Period| by_key.get(&(v.region_code.clone(), p.label())).copied();
        v.previous_value = lookup(period.previous());
        v.last_year_value = lookup(period.same_period_last_year());
        v.change_vs_previous = v.value.zip(v.previous_value).map(|(a, b)| a - b);
        v.change_vs_last_year = v.value.zip(v.last_year_value).map(|(a, b)| a - b);
        let key = (parent_of(&v.region_code), v.period.clone());
        let (sibling_values, siblings) = &groups[&key];
        v.siblings = *siblings;
        v.rank = v.value.map(|x| {
            let better = sibling_values
                .iter()
                .filter(|&&other| outranks(other, x, indicator.direction))
                .count();
            better as u32 + 1
        });
    }
}

/// Values this close (relative to the larger) are a tie for the rank. Two engines, or one
/// engine's parallel sums in another order, give the same mean to about 1e-15: a rank must not
/// flip on that noise. Real differences between regions are many orders larger.
const RANK_TIE_RELATIVE: f64 = 1e-12;

/// Whether `other` ranks strictly above `x`: better by more than the tie tolerance.
fn outranks(other: f64, x: f64, direction: Direction) -> bool {
    let by = match direction {
        Direction::HigherIsBetter => other - x,
        Direction::LowerIsBetter => x - other,
    };
    by > RANK_TIE_RELATIVE * other.abs().max(x.abs())
}

/// The query checked as asked, then with `from` a year earlier so that every row can be
/// compared with the period before and the same period last year; also the asked `from`.
fn widen(
    indicator: &Indicator,
    query: &IndicatorQuery,
) -> Result<(IndicatorQuery, Option<Period>)> {
    sql::check(indicator, query)?;
    let from = query
        .from
        .as_deref()
        .map(|f| Period::parse(query.grain, f))
        .transpose()
        .expect("checked by compile");
    let mut widened = query.clone();
    widened.from = from.map(|f| f.same_period_last_year().label());
    Ok((widened, from))
}

impl Engine {
    pub(crate) fn reload_regions(&self) -> Result<()> {
        let regions = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT code, name, level, parent_code, lon, lat FROM regions")
                .map_err(AnalyticsError::db("cannot read regions"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(RegionInfo {
                        code: r.get(0)?,
                        name: r.get(1)?,
                        level: r.get(2)?,
                        parent_code: r.get(3)?,
                        lon: r.get(4)?,
                        lat: r.get(5)?,
                    })
                })
                .map_err(AnalyticsError::db("cannot read regions"))?;
            rows.map(|r| r.map(|r| (r.code.clone(), r)))
                .collect::<std::result::Result<HashMap<_, _>, _>>()
                .map_err(AnalyticsError::db("cannot read regions"))
        })?;
        *self.regions.write().expect("regions lock") = Arc::new(regions);
        Ok(())
    }

    /// All regions by code (empty before the first ingest).
    pub fn regions(&self) -> Arc<HashMap<String, RegionInfo>> {
        self.regions.read().expect("regions lock").clone()
    }

    /// Whether anything but fact rows (regions, shapes, buildings: a whole ingest or a
    /// regions load) was loaded after ingest `ingest_id`.
    pub fn places_changed_since(&self, ingest_id: i64) -> Result<bool> {
        let facts: Vec<String> = indicators::facts::FACT_TABLES
            .iter()
            .map(|t| format!("{} <- ", t.name))
            .collect();
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT source FROM ingests WHERE ingest_id > ?")
                .map_err(AnalyticsError::db("cannot read the ingest log"))?;
            let sources = stmt
                .query_map([ingest_id], |r| r.get::<_, String>(0))
                .map_err(AnalyticsError::db("cannot read the ingest log"))?;
            for source in sources {
                let source = source.map_err(AnalyticsError::db("cannot read the ingest log"))?;
                if !facts.iter().any(|f| source.starts_with(f.as_str())) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// The latest ingest, or an error when nothing was loaded yet.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let found = self.with_conn(|conn| {
            conn.query_row(
                "SELECT ingest_id, CAST(loaded_at AS VARCHAR), source FROM ingests ORDER BY ingest_id DESC LIMIT 1",
                [],
                |r| Ok(Snapshot { ingest_id: r.get(0)?, loaded_at: r.get(1)?, source: r.get(2)? }),
            )
            .optional()
            .map_err(AnalyticsError::db("cannot read the ingest log"))
        })?;
        found.ok_or_else(|| AnalyticsError::Empty {
            path: self.path().to_owned(),
        })
    }

    /// The last day the data of the fact table behind an indicator's numerator covers: the
    /// day of its newest row, or the end of that row's quarter for quarterly tables (`None`
    /// when the table records no time or is empty).
    /// For a derived indicator, the earliest such day among the indicators it reads.
    pub fn recorded_through(&self, indicator: &Indicator) -> Result<Option<NaiveDate>> {
        self.consistent(|| self.recorded_through_now(indicator))
    }

    fn recorded_through_now(&self, indicator: &Indicator) -> Result<Option<NaiveDate>> {
        let Some(numerator) = &indicator.numerator else {
            let mut earliest: Option<NaiveDate> = None;
            for id in indicator.formula.iter().flat_map(|f| f.indicators()) {
                if let Some(dep) = self.catalogue.get(id)
                    && let Some(day) = self.recorded_through(dep)?
                {
                    earliest = Some(earliest.map_or(day, |e| e.min(day)));
                }
            }
            return Ok(earliest);
        };
        let Some(table) = indicators::facts::fact_table(numerator.fact) else {
            return Ok(None);
        };
        let Some(column) = table.recorded_at else {
            return Ok(None);
        };
        if let Some(known) = self.recorded.read().expect("extent lock").get(table.name) {
            return Ok(*known);
        }
        let last: Option<String> = match &self.spark {
            Some(spark) => self.extent_on_spark(spark, numerator.fact, column)?,
            None => self.with_conn(|conn| {
                let sql = format!(
                    "SELECT CAST(CAST(MAX({column}) AS DATE) AS VARCHAR) FROM {}",
                    numerator.fact
                );
                conn.query_row(&sql, [], |r| r.get(0))
                    .map_err(AnalyticsError::db(format!(
                        "cannot read the data extent of {}",
                        numerator.fact
                    )))
            })?,
        };
        // A census in the middle of a quarter describes the whole quarter.
        let through = last
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok())
            .map(|d| Period::containing(table.row_covers, d).end() - Days::new(1));
        let mut recorded = self.recorded.write().expect("extent lock");
        if self.still_current() {
            recorded.insert(table.name, through);
        }
        Ok(through)
    }

    /// Values of `indicator` for a query as `audience` may see them (see [`crate::policy`]),
    /// ordered by period then region code, read from the cube where it covers the query.
    pub fn values(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        query: &IndicatorQuery,
    ) -> Result<Vec<IndicatorValue>> {
        self.values_with(audience, indicator, query, true)
    }

    /// Like [`Engine::values`], always from the fact rows (to check the cube against).
    pub fn values_from_facts(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        query: &IndicatorQuery,
    ) -> Result<Vec<IndicatorValue>> {
        self.facts_here("values from the fact rows")?;
        self.values_with(audience, indicator, query, false)
    }

    /// An upper bound on the rows `values` returns for a query: the regions of its level in
    /// its region times the periods in its range (an open range reaches five years back from
    /// the last day with data). Cheap, for refusing answers too large before computing them.
    pub fn estimate_cells(&self, indicator: &Indicator, query: &IndicatorQuery) -> Result<u64> {
        sql::check(indicator, query)?;
        let regions = self.regions();
        let prefix = query.region.as_deref().unwrap_or("");
        let level = query.level.as_str();
        let in_region = regions
            .values()
            .filter(|r| r.level == level && r.code.starts_with(prefix))
            .count()
            .max(1) as u64;
        let through = self
            .recorded_through(indicator)?
            .unwrap_or_else(|| chrono::Local::now().date_naive());
        let parse = |label: &Option<String>| {
            label
                .as_deref()
                .and_then(|l| Period::parse(query.grain, l).ok())
        };
        let to = parse(&query.to).unwrap_or_else(|| Period::containing(query.grain, through));
        let from = parse(&query.from)
            .unwrap_or_else(|| Period::containing(query.grain, through - chrono::Months::new(60)));
        let mut periods = 0u64;
        let mut p = from;
        while p <= to && periods < 1_000_000 {
            periods += 1;
            p = p.next();
        }
        Ok(in_region.saturating_mul(periods))
    }

    /// The SQL `values` runs for a (non-derived) indicator: the query widened by a year for
    /// the comparisons, reading the cube where it covers it.
    pub fn values_sql(
        &self,
        indicator: &Indicator,
        query: &IndicatorQuery,
    ) -> Result<indicators::CompiledSql> {
        let (widened, _) = widen(indicator, query)?;
        self.compiled_sql(indicator, &widened)
    }

    /// The SQL for exactly the asked range of a (non-derived) indicator, reading the cube
    /// where it covers the query (no widening for comparisons).
    pub fn compiled_sql(
        &self,
        indicator: &Indicator,
        query: &IndicatorQuery,
    ) -> Result<indicators::CompiledSql> {
        Ok(sql::compile_with(
            indicator,
            query,
            sql::Dialect::DuckDb,
            &|m, grain, level| self.cube_for(m, grain, level),
        )?)
    }

    /// Runs compiled indicator SQL as it is and returns how many rows it gave (to compare
    /// `values` with the bare SQL in benchmarks).
    pub fn run_compiled(&self, compiled: &indicators::CompiledSql) -> Result<usize> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(&compiled.sql)
                .map_err(AnalyticsError::db("cannot prepare SQL"))?;
            let rows = stmt
                .query_map(params_from_iter(compiled.params.iter()), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(AnalyticsError::db("cannot run SQL"))?;
            let mut n = 0;
            for row in rows {
                row.map_err(AnalyticsError::db("cannot read a row"))?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Summed parts of an indicator for a query; derived indicators evaluate their formula
    /// on the values of the indicators it names, region by region and period by period.
    pub(crate) fn parts(
        &self,
        indicator: &Indicator,
        query: &IndicatorQuery,
        use_cube: bool,
    ) -> Result<Parts> {
        if let Some(formula) = &indicator.formula {
            sql::check(indicator, query)?;
            let mut by_indicator: HashMap<&str, ValuesByCell> = HashMap::new();
            let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
            for id in formula.indicators() {
                let dep = self
                    .catalogue
                    .get(id)
                    .ok_or_else(|| AnalyticsError::UnknownIndicator(id.to_owned()))?;
                let values: ValuesByCell = self
                    .parts(dep, query, use_cube)?
                    .into_iter()
                    .filter_map(|(r, p, n, d, records)| Some(((r, p), (dep.value(n, d)?, records))))
                    .collect();
                keys.extend(values.keys().cloned());
                by_indicator.insert(id, values);
            }
            let mut out: Parts = keys
                .into_iter()
                .filter_map(|key| {
                    let v = formula.eval(&|id| Some(by_indicator.get(id)?.get(&key)?.0))?;
                    // A derived value rests on the fewest records of the values it reads.
                    let records = formula
                        .indicators()
                        .into_iter()
                        .filter_map(|id| by_indicator.get(id)?.get(&key)?.1)
                        .reduce(f64::min);
                    Some((key.0, key.1, v, None, records))
                })
                .collect();
            out.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
            return Ok(out);
        }
        if let Some(spark) = &self.spark {
            return self.parts_on_spark(spark, indicator, query);
        }
        let compiled = if use_cube {
            sql::compile_with(
                indicator,
                query,
                sql::Dialect::DuckDb,
                &|m, grain, level| self.cube_for(m, grain, level),
            )?
        } else {
            sql::compile(indicator, query)?
        };
        self.with_conn(|conn| {
            // Each pooled connection keeps its recent plans: the same indicator query with
            // other parameters skips parsing and planning.
            let mut stmt = conn
                .prepare_cached(&compiled.sql)
                .map_err(AnalyticsError::db(format!(
                    "cannot prepare the query for {}",
                    indicator.id
                )))?;
            let rows = stmt
                .query_map(params_from_iter(compiled.params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .map_err(AnalyticsError::db(format!(
                    "cannot run the query for {}",
                    indicator.id
                )))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(AnalyticsError::db(format!(
                    "cannot read the result for {}",
                    indicator.id
                )))
        })
    }

    /// The cells of a suppression domain `q` withheld at `floor` (see `policy`), consistent
    /// with the patterns of the level above and of the coarser grains, which are made first
    /// (recursively, top-down); kept until the facts change. `rows` are the domain's parts
    /// when the caller has them already.
    pub(crate) fn withheld_pattern(
        &self,
        indicator: &Indicator,
        q: &IndicatorQuery,
        floor: f64,
        use_cube: bool,
        rows: Option<&Parts>,
    ) -> Result<Arc<CellSet>> {
        use crate::policy::{Cell, Outer, outer_grains, suppression_domain, withheld};
        let key = format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{floor}|{use_cube}",
            indicator.id, q.level, q.grain, q.region, q.from, q.to
        );
        if let Some(hit) = self.patterns.read().expect("pattern lock").get(&key) {
            return Ok(hit.clone());
        }
        let mut parents: Option<(Level, Arc<CellSet>)> = None;
        if let Some(parent) = q.level.parent().filter(|p| indicator.levels.contains(p)) {
            let above = suppression_domain(&IndicatorQuery {
                level: parent,
                ..q.clone()
            });
            parents = Some((
                parent,
                self.withheld_pattern(indicator, &above, floor, use_cube, None)?,
            ));
        }
        let mut coarser: Vec<(Grain, Arc<CellSet>)> = Vec::new();
        for &g in outer_grains(q.grain)
            .iter()
            .filter(|g| indicator.grains.contains(g))
        {
            let at = |label: &Option<String>| {
                label
                    .as_deref()
                    .and_then(|l| Period::parse(q.grain, l).ok())
                    .map(|p| Period::containing(g, p.start).label())
            };
            let outer = suppression_domain(&IndicatorQuery {
                grain: g,
                from: at(&q.from),
                to: at(&q.to),
                ..q.clone()
            });
            coarser.push((
                g,
                self.withheld_pattern(indicator, &outer, floor, use_cube, None)?,
            ));
        }
        let fetched;
        let rows = match rows {
            Some(r) => r,
            None => {
                fetched = self.parts(indicator, q, use_cube)?;
                &fetched
            }
        };
        let cells: Vec<Cell> = rows
            .iter()
            .map(|(region, period, _, _, records)| Cell {
                region,
                period,
                support: *records,
            })
            .collect();
        let mut outer: Vec<Outer> = Vec::new();
        if let Some((level, set)) = &parents {
            outer.push(Outer::Parent {
                level: *level,
                withheld: set,
            });
        }
        for (grain, set) in &coarser {
            outer.push(Outer::Grain {
                grain: *grain,
                withheld: set,
            });
        }
        let set: CellSet = withheld(&cells, q.level, q.grain, floor, &outer)
            .into_iter()
            .map(|i| (rows[i].0.clone(), rows[i].1.clone()))
            .collect();
        let set = Arc::new(set);
        let mut cache = self.patterns.write().expect("pattern lock");
        if cache.len() >= 4096 {
            cache.clear();
        }
        // A pattern made while a commit became visible may mix old and new data: not kept.
        if self.still_current() {
            cache.insert(key, set.clone());
        }
        Ok(set)
    }

    fn values_with(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        query: &IndicatorQuery,
        use_cube: bool,
    ) -> Result<Vec<IndicatorValue>> {
        self.consistent(|| self.values_now(audience, indicator, query, use_cube))
    }

    fn values_now(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        query: &IndicatorQuery,
        use_cube: bool,
    ) -> Result<Vec<IndicatorValue>> {
        let asked = audience.scope_query(query)?;
        let (widened, from) = widen(indicator, &asked)?;
        // Audiences that may not see small cells get a pattern computed over whole sibling
        // groups and years, so that the range or region asked cannot change it.
        let floor = audience.floor();
        let computed = match floor {
            Some(_) => crate::policy::suppression_domain(&widened),
            None => widened.clone(),
        };
        let rows = self.parts(indicator, &computed, use_cube)?;
        let hidden = floor
            .map(|floor| self.withheld_pattern(indicator, &computed, floor, use_cube, Some(&rows)))
            .transpose()?;
        // Periods after the latest complete one are partial.
        let complete = self
            .recorded_through(indicator)?
            .map(|last_day| Period::latest_complete(query.grain, last_day));
        let regions = self.regions();
        let mut values: Vec<IndicatorValue> = rows
            .into_iter()
            .map(|(region_code, period, numerator, denominator, records)| {
                let value = indicator.value(numerator, denominator);
                let partial = match (complete, Period::parse(query.grain, &period)) {
                    (Some(complete), Ok(p)) => p > complete,
                    _ => false,
                };
                // The key is built from the row's own strings, then handed back: no copies.
                let key = (region_code, period);
                let withheld = hidden.as_ref().is_some_and(|h| h.contains(&key));
                let (region_code, period) = key;
                let mut v = IndicatorValue {
                    indicator: indicator.id.clone(),
                    region_name: regions
                        .get(&region_code)
                        .map(|r| r.name.clone())
                        .unwrap_or_default(),
                    region_code,
                    period,
                    value,
                    numerator,
                    denominator,
                    unit: indicator.unit.clone(),
                    target: indicator.target.as_ref().map(|t| t.value),
                    gap_to_target: indicator.gap_to_target(value),
                    status: indicator.status(value),
                    previous_value: None,
                    change_vs_previous: None,
                    last_year_value: None,
                    change_vs_last_year: None,
                    rank: None,
                    siblings: 0,
                    support: records,
                    partial,
                    suppressed: false,
                };
                if withheld {
                    v.suppress();
                }
                v
            })
            .collect();
        if hidden.is_some() {
            // Back to what was asked (after the pattern, before comparisons and ranks, which
            // read only what this audience sees). `widen` checked both bounds.
            let bound = |label: &Option<String>| {
                label
                    .as_deref()
                    .map(|l| Period::parse(query.grain, l).expect("checked by widen"))
            };
            let (first, last) = (bound(&widened.from), bound(&widened.to));
            values.retain(|v| {
                let in_range = Period::parse(query.grain, &v.period)
                    .is_ok_and(|p| first.is_none_or(|f| p >= f) && last.is_none_or(|l| p <= l));
                in_range
                    && widened
                        .region
                        .as_deref()
                        .is_none_or(|r| v.region_code.starts_with(r))
            });
        }
        compare_and_rank(&mut values, indicator, query.level, query.grain);
        if let Some(from) = from {
            values.retain(|v| Period::parse(query.grain, &v.period).is_ok_and(|p| p >= from));
        }
        Ok(values)
    }

    /// The boundaries of the regions of `level` (e.g. `"city"`, `"grid"`) in the subtree of
    /// `within`, by code.
    pub fn region_shapes(&self, within: &str, level: &str) -> Result<Vec<RegionShapeRecord>> {
        let rows: Vec<(String, String, String)> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT s.code, r.name, s.geometry FROM region_shapes s \
                     JOIN regions r USING (code) WHERE r.level = ? AND s.code LIKE ? ORDER BY s.code",
                )
                .map_err(AnalyticsError::db("cannot read region shapes"))?;
            let rows = stmt
                .query_map([level.to_owned(), format!("{within}%")], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(AnalyticsError::db("cannot read region shapes"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(AnalyticsError::db("cannot read region shapes"))
        })?;
        rows.into_iter()
            .map(|(code, name, stored)| {
                let shape: StoredShape =
                    serde_json::from_str(&stored).map_err(|e| AnalyticsError::Ingest {
                        message: format!(
                            "region {code}: stored shape is neither a ring nor polygons: {e}"
                        ),
                        path: self.path().to_owned(),
                    })?;
                let polygons_lon_lat = match shape {
                    StoredShape::Ring(ring) => vec![vec![ring]],
                    StoredShape::Polygons(p) => p,
                };
                Ok(RegionShapeRecord {
                    code,
                    name,
                    polygons_lon_lat,
                })
            })
            .collect()
    }

    /// Buildings standing in the subtree of `region` (a division code), by id.
    pub fn buildings(&self, region: &str) -> Result<Vec<BuildingRecord>> {
        self.facts_here("reading buildings")?;
        let rows: Vec<(String, String, f64, String)> = self.with_conn(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT building_id, grid_id, height_m, footprint FROM buildings \
                     WHERE community_code LIKE ? ORDER BY building_id",
                )
                .map_err(AnalyticsError::db("cannot read buildings"))?;
            let rows = stmt
                .query_map([format!("{region}%")], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(AnalyticsError::db("cannot read buildings"))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(AnalyticsError::db("cannot read buildings"))
        })?;
        rows.into_iter()
            .map(|(building_id, grid_id, height_m, footprint)| {
                let footprint_lon_lat =
                    serde_json::from_str(&footprint).map_err(|e| AnalyticsError::Ingest {
                        message: format!(
                            "building {building_id}: stored footprint is not a ring: {e}"
                        ),
                        path: self.path().to_owned(),
                    })?;
                Ok(BuildingRecord {
                    building_id,
                    grid_id,
                    height_m,
                    footprint_lon_lat,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(period: &str) -> IndicatorValue {
        IndicatorValue {
            indicator: "x".into(),
            region_code: "32".into(),
            region_name: "江苏省".into(),
            period: period.into(),
            value: Some(1.0),
            numerator: 1.0,
            denominator: Some(1.0),
            unit: "ratio".into(),
            target: None,
            gap_to_target: None,
            status: Status::Ok,
            previous_value: None,
            change_vs_previous: None,
            last_year_value: None,
            change_vs_last_year: None,
            rank: None,
            siblings: 1,
            support: Some(1.0),
            partial: false,
            suppressed: false,
        }
    }

    #[test]
    fn ranks_tie_on_rounding_noise_and_not_on_real_differences() {
        // 0.1 + 0.2 is 0.30000000000000004: the same mean summed in another order.
        let summed = 0.1 + 0.2;
        assert_ne!(summed, 0.3);
        for direction in [Direction::HigherIsBetter, Direction::LowerIsBetter] {
            assert!(!outranks(summed, 0.3, direction));
            assert!(!outranks(0.3, summed, direction));
            assert!(!outranks(0.0, 0.0, direction));
        }
        assert!(outranks(0.31, 0.3, Direction::HigherIsBetter));
        assert!(!outranks(0.31, 0.3, Direction::LowerIsBetter));
        assert!(outranks(0.3, 0.31, Direction::LowerIsBetter));
        // A difference of one part in a billion is real, at any magnitude.
        assert!(outranks(1e9 + 1.0, 1e9, Direction::HigherIsBetter));
        assert!(outranks(-1.0, -1.0 - 1e-9, Direction::HigherIsBetter));
    }

    #[test]
    fn latest_complete_period_skips_periods_after_the_data() {
        let values = [value("2024"), value("2025"), value("2026")];
        let end_2025 = NaiveDate::from_ymd_opt(2025, 12, 31);
        assert_eq!(
            latest_complete_period(&values, Grain::Year, end_2025),
            Some("2025")
        );
        let mid_2025 = NaiveDate::from_ymd_opt(2025, 6, 30);
        assert_eq!(
            latest_complete_period(&values, Grain::Year, mid_2025),
            Some("2024")
        );
        assert_eq!(
            latest_complete_period(&values, Grain::Year, None),
            Some("2026")
        );
        let months = [value("2025-11"), value("2025-12"), value("2026-01")];
        assert_eq!(
            latest_complete_period(&months, Grain::Month, end_2025),
            Some("2025-12")
        );
    }
}
