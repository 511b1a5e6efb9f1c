//! Compiling an indicator, a level, a grain, a period range and a region subtree to SQL.
//!
//! The SQL returns one row per (region, period) with `region_code`, `period`, `numerator`,
//! `denominator` summed from fact rows at the requested level, so ratios are always recomputed
//! from their parts, and `records`: how many fact records the value rests on (its support, the
//! one number that small-cell suppression and alert floors read; `NULL` for published
//! statistics, see [`crate::facts::Disclosure`]). Every user-supplied value is bound as a `?`
//! parameter.
//!
//! The SQL is written for two engines, DuckDB (the serving file) and Apache Spark SQL (the
//! province's history as Parquet), and stays inside the subset both accept:
//! CTEs; `SELECT … GROUP BY` with ordinals; `INNER`, `LEFT`, `FULL OUTER` and `CROSS JOIN`;
//! inline tables `(VALUES (0), (1)) AS t(c)`; `CASE x WHEN … THEN … END`;
//! `COUNT(*)`, `COUNT(DISTINCT c)`, `SUM`, aggregate `FILTER (WHERE …)`, `GROUP BY ALL`
//! (cube tables); `CAST(… AS DOUBLE | TIMESTAMP)`; `SUBSTR`, `LPAD`, `||`, `LIKE`, `COALESCE`,
//! `DATE_TRUNC('day' | 'month', t)`; `EXTRACT(YEAR | QUARTER | MONTH | WEEK | DAY FROM t)`
//! (weeks are ISO 8601 in both); `?` parameters. Where the two differ, [`Dialect`] is the one
//! place that says how: the text type, string literals and the ISO week-year field.

use crate::catalogue::{Aggregate, Indicator, Measure};
use crate::facts::{Disclosure, fact_table};
use crate::level::{Level, RegionCodeError, region_level};
use crate::period::{Grain, Period, PeriodError};

/// The SQL engines the catalogue compiles for; everything not named here is the portable
/// subset in the module's documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    #[default]
    DuckDb,
    Spark,
}

impl Dialect {
    /// The text type for `CAST` (Spark's `VARCHAR` needs a length).
    pub fn text_type(self) -> &'static str {
        match self {
            Dialect::DuckDb => "VARCHAR",
            Dialect::Spark => "STRING",
        }
    }

    /// A string literal holding `text` exactly. DuckDB doubles quotes; Spark reads a
    /// backslash as an escape and joins adjacent literals (`'it''s'` would be `its`), so
    /// there quotes and backslashes are escaped with backslashes.
    pub fn string_literal(self, text: &str) -> String {
        match self {
            Dialect::DuckDb => format!("'{}'", text.replace('\'', "''")),
            Dialect::Spark => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }

    /// The `EXTRACT` field of the ISO 8601 week-numbering year.
    pub fn iso_year_field(self) -> &'static str {
        match self {
            Dialect::DuckDb => "ISOYEAR",
            Dialect::Spark => "YEAROFWEEK",
        }
    }
}

/// What an analyst asks of one indicator.
#[derive(Clone, Debug, PartialEq)]
pub struct IndicatorQuery {
    pub level: Level,
    pub grain: Grain,
    /// First period label, inclusive.
    pub from: Option<String>,
    /// Last period label, inclusive.
    pub to: Option<String>,
    /// Limit to the subtree of this region code.
    pub region: Option<String>,
}

/// A query that cannot be answered; [`QueryError::parameter`] names the offending parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("indicator {indicator} is not computed at level {level} (allowed: {allowed})")]
    LevelNotAllowed {
        indicator: String,
        level: Level,
        allowed: String,
    },
    #[error("indicator {indicator} is not computed per {grain} (allowed: {allowed})")]
    GrainNotAllowed {
        indicator: String,
        grain: Grain,
        allowed: String,
    },
    #[error("{parameter}: {source}")]
    Period {
        parameter: &'static str,
        source: PeriodError,
    },
    #[error("region: {0}")]
    Region(RegionCodeError),
    #[error("region {region} is a {region_level}, below the requested level {level}")]
    RegionBelowLevel {
        region: String,
        region_level: Level,
        level: Level,
    },
    #[error("from {from} is after to {to}")]
    EmptyRange { from: String, to: String },
    #[error("indicator {indicator} is derived from other indicators and has no SQL of its own")]
    Derived { indicator: String },
}

impl QueryError {
    /// The query parameter at fault, as named in the CLI and the HTTP API.
    pub fn parameter(&self) -> &'static str {
        match self {
            QueryError::LevelNotAllowed { .. } => "level",
            QueryError::GrainNotAllowed { .. } => "grain",
            QueryError::Period { parameter, .. } => parameter,
            QueryError::Region(_) | QueryError::RegionBelowLevel { .. } => "region",
            QueryError::EmptyRange { .. } => "from",
            QueryError::Derived { .. } => "indicator",
        }
    }
}

/// SQL text plus its positional parameters, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledSql {
    pub sql: String,
    pub params: Vec<String>,
}

struct Scope {
    level: Level,
    grain: Grain,
    from: Option<Period>,
    to: Option<Period>,
    region: Option<(String, Level)>,
}

/// Checks a query against an indicator's allowed levels and grains and parses its periods.
pub fn check(ind: &Indicator, q: &IndicatorQuery) -> Result<(), QueryError> {
    scope(ind, q).map(|_| ())
}

fn scope(ind: &Indicator, q: &IndicatorQuery) -> Result<Scope, QueryError> {
    let join = |items: Vec<&str>| items.join(", ");
    if !ind.levels.contains(&q.level) {
        return Err(QueryError::LevelNotAllowed {
            indicator: ind.id.clone(),
            level: q.level,
            allowed: join(ind.levels.iter().map(|l| l.as_str()).collect()),
        });
    }
    if !ind.grains.contains(&q.grain) {
        return Err(QueryError::GrainNotAllowed {
            indicator: ind.id.clone(),
            grain: q.grain,
            allowed: join(ind.grains.iter().map(|g| g.as_str()).collect()),
        });
    }
    let period = |parameter: &'static str, label: &Option<String>| {
        label
            .as_deref()
            .map(|l| {
                Period::parse(q.grain, l).map_err(|source| QueryError::Period { parameter, source })
            })
            .transpose()
    };
    let from = period("from", &q.from)?;
    let to = period("to", &q.to)?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(QueryError::EmptyRange {
            from: f.label(),
            to: t.label(),
        });
    }
    let region = match &q.region {
        None => None,
        Some(code) => {
            let region_level = region_level(code).map_err(QueryError::Region)?;
            if region_level > q.level {
                return Err(QueryError::RegionBelowLevel {
                    region: code.clone(),
                    region_level,
                    level: q.level,
                });
            }
            Some((code.clone(), region_level))
        }
    };
    Ok(Scope {
        level: q.level,
        grain: q.grain,
        from,
        to,
        region,
    })
}

/// The aggregate of a measure over fact rows, as SQL.
pub fn aggregate_sql(m: &Measure) -> String {
    match (m.agg, &m.column) {
        (Aggregate::Count, _) => "COUNT(*)".to_owned(),
        (Aggregate::Sum, Some(c)) => format!("SUM({c})"),
        (Aggregate::CountDistinct, Some(c)) => format!("COUNT(DISTINCT {c})"),
        (_, None) => unreachable!("validated: sum and count_distinct have a column"),
    }
}

/// The conditions a fact row must meet to count in a measure: its filters, a non-null
/// aggregated column and a non-null time.
pub fn row_conditions(m: &Measure, dialect: Dialect) -> Vec<String> {
    let mut conds: Vec<String> = m
        .conditions
        .iter()
        .map(|c| format!("({})", c.sql(dialect)))
        .collect();
    if let Some(column) = &m.column {
        conds.push(format!("{column} IS NOT NULL"));
    }
    if let Some(t) = &m.time {
        conds.push(format!("{t} IS NOT NULL"));
    }
    conds
}

/// A stable identity of a measure's rows and aggregate, for naming pre-aggregated tables.
pub fn measure_key(m: &Measure) -> String {
    format!(
        "{}|{:?}|{}|{}|{}",
        m.fact,
        m.agg,
        m.column.as_deref().unwrap_or(""),
        m.time.as_deref().unwrap_or(""),
        m.filter.join("&")
    )
}

/// A pre-aggregated table that can stand in for a measure's fact rows: it has the fact
/// table's region columns, a `bucket` timestamp at the start of a period that divides the
/// query's grain, the measure's summed value in `value_column` and the number of fact rows
/// behind it in `rows_column` (buckets where the measure had no rows are skipped, as they
/// never appear in an aggregate over the facts).
#[derive(Clone, Debug, PartialEq)]
pub struct CubeTable {
    pub table: String,
    pub value_column: String,
    pub rows_column: String,
}

/// The levels a statement's rows are at: the scope's one level, or several at once (each
/// fact row counted once at every one of them, tagged with the level's place in the list).
#[derive(Clone, Copy)]
enum Levels<'a> {
    One,
    Tagged(&'a [Level]),
}

impl Levels<'_> {
    /// `{expr} AS lvl, `, the tag column before region and period, when rows are tagged.
    fn tag(self, expr: &str) -> String {
        match self {
            Levels::One => String::new(),
            Levels::Tagged(_) => format!("{expr} AS lvl, "),
        }
    }

    /// `n.lvl = d.lvl AND ` for joins of tagged rows.
    fn join(self, a: &str, b: &str) -> String {
        match self {
            Levels::One => String::new(),
            Levels::Tagged(_) => format!("{a}.lvl = {b}.lvl AND "),
        }
    }

    /// One level's rows come ordered by period, then region; tagged rows unordered (a global
    /// sort is a job of its own on Spark, the engine they are for).
    fn order(self) -> &'static str {
        match self {
            Levels::One => " ORDER BY 2, 1",
            Levels::Tagged(_) => "",
        }
    }
}

fn measure_sql(
    m: &Measure,
    s: &Scope,
    levels: Levels,
    dialect: Dialect,
    cube: Option<&CubeTable>,
    params: &mut Vec<String>,
) -> String {
    let fact = fact_table(m.fact).expect("validated fact table");
    let (value, records, mut conds, from_table, time) = match (cube, &m.time) {
        (Some(c), Some(_)) => (
            format!("SUM({})", c.value_column),
            format!("SUM({})", c.rows_column),
            vec![format!("{} > 0", c.rows_column)],
            c.table.clone(),
            Some("bucket".to_owned()),
        ),
        _ => (
            aggregate_sql(m),
            "COUNT(*)".to_owned(),
            row_conditions(m, dialect),
            m.fact.to_owned(),
            m.time.clone(),
        ),
    };
    let records = match fact.disclosure {
        Disclosure::Records => format!("CAST({records} AS DOUBLE)"),
        Disclosure::Published => "CAST(NULL AS DOUBLE)".to_owned(),
    };
    match &s.region {
        Some((code, Level::Grid)) => {
            conds.push("grid_id = ?".into());
            params.push(code.clone());
        }
        Some((code, _)) => {
            conds.push(format!("{} LIKE ?", fact.region_column()));
            params.push(format!("{code}%"));
        }
        None => {}
    }
    // Several levels: every fact row joins a constant table of level tags, and its region
    // at the tag's level is picked by a CASE; one aggregation then serves them all.
    let (region, tags) = match levels {
        Levels::One => (fact.region_expr(s.level), String::new()),
        Levels::Tagged(levels) => {
            let arms: Vec<String> = levels
                .iter()
                .enumerate()
                .map(|(i, &l)| format!("WHEN {i} THEN {}", fact.region_expr(l)))
                .collect();
            let values: Vec<String> = (0..levels.len()).map(|i| format!("({i})")).collect();
            (
                format!("CASE lv.i {} END", arms.join(" ")),
                format!(" CROSS JOIN (VALUES {}) AS lv(i)", values.join(", ")),
            )
        }
    };
    let select_period = match &time {
        Some(t) => {
            if let Some(from) = s.from {
                conds.push(format!("{t} >= CAST(? AS TIMESTAMP)"));
                params.push(format!("{} 00:00:00", from.start));
            }
            if let Some(to) = s.to {
                conds.push(format!("{t} < CAST(? AS TIMESTAMP)"));
                params.push(format!("{} 00:00:00", to.end()));
            }
            format!(", {} AS period", s.grain.sql_label(t, dialect))
        }
        None => String::new(),
    };
    let tag = levels.tag("lv.i");
    let keys = usize::from(time.is_some()) + 1 + usize::from(matches!(levels, Levels::Tagged(_)));
    let group: Vec<String> = (1..=keys).map(|k| k.to_string()).collect();
    let group = group.join(", ");
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    format!(
        "SELECT {tag}{region} AS region_code{select_period}, CAST({value} AS DOUBLE) AS v, {records} AS r FROM {from_table}{tags}{where_} GROUP BY {group}"
    )
}

/// Whether values of a measure's table are subject to disclosure control.
fn counts_records(m: &Measure) -> bool {
    fact_table(m.fact).is_some_and(|t| t.disclosure == Disclosure::Records)
}

/// Compiles `q` for `ind` into DuckDB SQL returning `region_code, period, numerator,
/// denominator, records`, ordered by period then region, from the fact rows.
pub fn compile(ind: &Indicator, q: &IndicatorQuery) -> Result<CompiledSql, QueryError> {
    compile_with(ind, q, Dialect::DuckDb, &|_, _, _| None)
}

/// Like [`compile`], in `dialect`, reading a measure from the pre-aggregated table
/// `cube(measure, grain, level)` returns where there is one (the caller answers only for
/// tables that cover the measure at that grain and level).
pub fn compile_with(
    ind: &Indicator,
    q: &IndicatorQuery,
    dialect: Dialect,
    cube: &dyn Fn(&Measure, Grain, Level) -> Option<CubeTable>,
) -> Result<CompiledSql, QueryError> {
    let s = scope(ind, q)?;
    compile_scope(ind, &s, Levels::One, dialect, cube)
}

/// `q` for `ind` at every one of `levels` at once (its own level is ignored), in one
/// statement returning `lvl, region_code, period, numerator, denominator, records`, where
/// `lvl` is the level's index in `levels`: each level's rows are those [`compile_with`]
/// gives for it, unordered (the caller sorts). For engines whose fixed cost per statement
/// is most of a query's (Spark), and for callers that need a region's whole chain of levels
/// anyway (suppression reads the levels above the one asked). Every level must be allowed
/// for the indicator and not above `q.region`'s.
pub fn compile_levels(
    ind: &Indicator,
    q: &IndicatorQuery,
    levels: &[Level],
    dialect: Dialect,
) -> Result<CompiledSql, QueryError> {
    let mut first = None;
    for &level in levels {
        let s = scope(ind, &IndicatorQuery { level, ..q.clone() })?;
        first.get_or_insert(s);
    }
    // A statement with no level at all would be one with no rows: the caller's mistake.
    let s = first.ok_or_else(|| QueryError::LevelNotAllowed {
        indicator: ind.id.clone(),
        level: q.level,
        allowed: "(no level asked)".to_owned(),
    })?;
    compile_scope(ind, &s, Levels::Tagged(levels), dialect, &|_, _, _| None)
}

fn compile_scope(
    ind: &Indicator,
    s: &Scope,
    levels: Levels,
    dialect: Dialect,
    cube: &dyn Fn(&Measure, Grain, Level) -> Option<CubeTable>,
) -> Result<CompiledSql, QueryError> {
    let Some(numerator) = &ind.numerator else {
        return Err(QueryError::Derived {
            indicator: ind.id.clone(),
        });
    };
    let mut params = Vec::new();
    let n = measure_sql(
        numerator,
        s,
        levels,
        dialect,
        cube(numerator, s.grain, s.level).as_ref(),
        &mut params,
    );
    let order = levels.order();
    let sql = match &ind.denominator {
        None => format!(
            "WITH n AS ({n}) SELECT {}region_code, period, v AS numerator, CAST(NULL AS DOUBLE) AS denominator, r AS records FROM n{order}",
            levels.tag("n.lvl")
        ),
        Some(d) if d.time.is_some() => {
            // A ratio or mean rests on the records of its denominator (the orders closed, the
            // applications rated), which hold the numerator's.
            let records = if counts_records(d) {
                "COALESCE(d.r, 0)"
            } else if counts_records(numerator) {
                "COALESCE(n.r, 0)"
            } else {
                "CAST(NULL AS DOUBLE)"
            };
            let d = measure_sql(
                d,
                s,
                levels,
                dialect,
                cube(d, s.grain, s.level).as_ref(),
                &mut params,
            );
            let tag = levels.tag("COALESCE(n.lvl, d.lvl)");
            let on = levels.join("n", "d");
            format!(
                "WITH n AS ({n}), d AS ({d}) \
                 SELECT {tag}COALESCE(n.region_code, d.region_code) AS region_code, \
                 COALESCE(n.period, d.period) AS period, \
                 COALESCE(n.v, 0) AS numerator, d.v AS denominator, {records} AS records \
                 FROM n FULL OUTER JOIN d ON {on}n.region_code = d.region_code AND n.period = d.period{order}"
            )
        }
        Some(d) => {
            // A static denominator (e.g. residents) applies to every period of the numerator;
            // the value rests on the numerator's records (work orders), never on residents.
            let records = if counts_records(numerator) {
                "COALESCE(n.r, 0)"
            } else {
                "CAST(NULL AS DOUBLE)"
            };
            let d = measure_sql(d, s, levels, dialect, None, &mut params);
            let (tag, on) = (levels.tag("d.lvl"), levels.join("n", "d"));
            format!(
                "WITH n AS ({n}), d AS ({d}), p AS (SELECT DISTINCT period FROM n) \
                 SELECT {tag}d.region_code AS region_code, p.period AS period, \
                 COALESCE(n.v, 0) AS numerator, d.v AS denominator, {records} AS records \
                 FROM d CROSS JOIN p LEFT JOIN n ON {on}n.region_code = d.region_code AND n.period = p.period{order}"
            )
        }
    };
    Ok(CompiledSql { sql, params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    fn q(level: Level, grain: Grain) -> IndicatorQuery {
        IndicatorQuery {
            level,
            grain,
            from: None,
            to: None,
            region: None,
        }
    }

    #[test]
    fn ratio_sums_parts_and_binds_values() {
        let c = Catalogue::builtin();
        let ind = c.get("hotline_on_time_rate").unwrap();
        let mut query = q(Level::City, Grain::Quarter);
        query.from = Some("2024-Q2".into());
        query.to = Some("2024-Q3".into());
        query.region = Some("3201".into());
        let out = compile(ind, &query).unwrap();
        assert!(
            out.sql
                .contains("SUBSTR(community_code, 1, 4) AS region_code"),
            "{}",
            out.sql
        );
        assert!(out.sql.contains("FULL OUTER JOIN"));
        assert!(out.sql.contains("(closed_at <= due_at)"));
        assert_eq!(
            out.params,
            [
                "3201%",
                "2024-04-01 00:00:00",
                "2024-10-01 00:00:00",
                "3201%",
                "2024-04-01 00:00:00",
                "2024-10-01 00:00:00"
            ]
        );
        assert_eq!(out.sql.matches('?').count(), out.params.len());
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        let c = Catalogue::builtin();
        let ind = c.get("hotline_on_time_rate").unwrap();
        let mut bad = Vec::new();
        let mut a = q(Level::City, Grain::Month);
        a.from = Some("2024-13".into());
        bad.push((a, "from"));
        let mut b = q(Level::City, Grain::Month);
        b.region = Some("32'--".into());
        bad.push((b, "region"));
        let mut c2 = q(Level::City, Grain::Month);
        c2.region = Some("320102".into());
        bad.push((c2, "region"));
        let mut d = q(Level::City, Grain::Month);
        d.from = Some("2024-05".into());
        d.to = Some("2024-04".into());
        bad.push((d, "from"));
        for (query, parameter) in bad {
            let e = compile(ind, &query).unwrap_err();
            assert_eq!(e.parameter(), parameter, "{e}");
        }
    }

    #[test]
    fn static_denominators_join_on_region_only() {
        let c = Catalogue::builtin();
        let ind = c.get("hotline_intensity").unwrap();
        let out = compile(ind, &q(Level::Grid, Grain::Month)).unwrap();
        assert!(out.sql.contains("grid_id AS region_code"));
        assert!(out.sql.contains("CROSS JOIN p"));
        assert!(out.params.is_empty());
        // Support is the work orders behind the rate, never the residents.
        assert!(
            out.sql.contains("COALESCE(n.r, 0) AS records"),
            "{}",
            out.sql
        );
    }

    #[test]
    fn published_statistics_have_no_record_count() {
        let c = Catalogue::builtin();
        let out = compile(c.get("gdp").unwrap(), &q(Level::County, Grain::Quarter)).unwrap();
        assert!(out.sql.contains("CAST(NULL AS DOUBLE) AS r"), "{}", out.sql);
        let ratio = compile(
            c.get("hotline_on_time_rate").unwrap(),
            &q(Level::County, Grain::Quarter),
        )
        .unwrap();
        assert!(
            ratio.sql.contains("COALESCE(d.r, 0) AS records"),
            "{}",
            ratio.sql
        );
    }

    #[test]
    fn one_statement_for_several_levels_tags_its_rows_and_checks_each_level() {
        let c = Catalogue::builtin();
        let ind = c.get("hotline_on_time_rate").unwrap();
        let mut query = q(Level::Province, Grain::Month);
        query.region = Some("3201".into());
        query.from = Some("2024-05".into());
        let levels = [Level::County, Level::Grid];
        let out = compile_levels(ind, &query, &levels, Dialect::Spark).unwrap();
        assert!(
            out.sql.contains(
                "CASE lv.i WHEN 0 THEN SUBSTR(community_code, 1, 6) WHEN 1 THEN grid_id END"
            ),
            "{}",
            out.sql
        );
        assert!(out.sql.contains("CROSS JOIN (VALUES (0), (1)) AS lv(i)"));
        assert!(
            out.sql
                .contains("ON n.lvl = d.lvl AND n.region_code = d.region_code")
        );
        assert!(!out.sql.contains("ORDER BY"));
        // The region and range are bound once per measure, as for one level.
        assert_eq!(
            out.params,
            [
                "3201%",
                "2024-05-01 00:00:00",
                "3201%",
                "2024-05-01 00:00:00"
            ]
        );
        assert_eq!(out.sql.matches('?').count(), out.params.len());
        // A level above the region, one the indicator does not have, or none: refused.
        let above = compile_levels(
            ind,
            &query,
            &[Level::Province, Level::County],
            Dialect::Spark,
        );
        assert_eq!(above.unwrap_err().parameter(), "region");
        let gdp = c.get("gdp").unwrap();
        let grid = compile_levels(
            gdp,
            &q(Level::City, Grain::Quarter),
            &[Level::Grid],
            Dialect::Spark,
        );
        assert_eq!(grid.unwrap_err().parameter(), "level");
        assert!(compile_levels(ind, &query, &[], Dialect::Spark).is_err());
        // Static denominators: tagged on both sides of the join.
        let intensity = c.get("hotline_intensity").unwrap();
        let out = compile_levels(
            intensity,
            &q(Level::City, Grain::Month),
            &[Level::City, Level::Grid],
            Dialect::DuckDb,
        )
        .unwrap();
        assert!(
            out.sql
                .contains("SELECT d.lvl AS lvl, d.region_code AS region_code"),
            "{}",
            out.sql
        );
        assert!(
            out.sql.contains("LEFT JOIN n ON n.lvl = d.lvl AND"),
            "{}",
            out.sql
        );
    }

    #[test]
    fn spark_sql_differs_only_where_the_dialect_says() {
        let c = Catalogue::builtin();
        let ind = c.get("hotline_on_time_rate").unwrap();
        let week = q(Level::County, Grain::Week);
        let duck = compile_with(ind, &week, Dialect::DuckDb, &|_, _, _| None).unwrap();
        let spark = compile_with(ind, &week, Dialect::Spark, &|_, _, _| None).unwrap();
        assert!(
            spark
                .sql
                .contains("EXTRACT(YEAROFWEEK FROM due_at) AS STRING"),
            "{}",
            spark.sql
        );
        assert!(!spark.sql.contains("VARCHAR") && !spark.sql.contains("ISOYEAR"));
        assert_eq!(
            spark
                .sql
                .replace("YEAROFWEEK", "ISOYEAR")
                .replace("STRING", "VARCHAR"),
            duck.sql
        );
        assert_eq!(spark.params, duck.params);
    }
}
