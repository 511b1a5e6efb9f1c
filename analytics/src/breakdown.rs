//! Breakdowns: an indicator split by a dimension of its fact table (e.g. 12345 work orders
//! by content code), largest first, for "top N" lists.
//!
//! Only the table's declared dimensions can split it (`FactTable::dimensions`): record
//! identifiers, free text and region keys never can. For an audience that may not see small
//! cells, a category resting on fewer records than its floor is withheld, and when exactly
//! one is withheld the next smallest goes too (the region's total is visible, so the total
//! minus the visible categories would give it away). The pattern is made over every
//! category before `top` cuts the list.

use crate::{AnalyticsError, Audience, Engine, Result};
use duckdb::params_from_iter;
use indicators::facts::{ColumnType, fact_table};
use indicators::sql::{aggregate_sql, row_conditions};
use indicators::{Grain, Indicator, Period, QueryError};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Share {
    pub category: String,
    pub numerator: f64,
    pub denominator: Option<f64>,
    pub value: Option<f64>,
    /// The category's share of the numerator over all categories.
    pub share: Option<f64>,
    /// How many fact records the category rests on (`None` when withheld).
    pub support: Option<f64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Engine {
    /// The indicator in one period (a year by default: `period` is `2025`, `2025-Q3`, ...)
    /// per value of the text column `by` of its numerator's fact table, largest numerator
    /// first, at most `top`. A denominator on the same fact table is split the same way;
    /// any other denominator (residents) is not split, so the value is left out.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parameters of GET .../breakdown"
    )]
    pub fn breakdown(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        by: &str,
        grain: Grain,
        period: &str,
        region: Option<&str>,
        top: usize,
    ) -> Result<Vec<Share>> {
        self.facts_here("a breakdown")?;
        self.consistent(|| self.breakdown_now(audience, indicator, by, grain, period, region, top))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parameters of GET .../breakdown"
    )]
    fn breakdown_now(
        &self,
        audience: &Audience,
        indicator: &Indicator,
        by: &str,
        grain: Grain,
        period: &str,
        region: Option<&str>,
        top: usize,
    ) -> Result<Vec<Share>> {
        let Some(numerator) = &indicator.numerator else {
            return Err(QueryError::Derived {
                indicator: indicator.id.clone(),
            }
            .into());
        };
        let table = fact_table(numerator.fact).expect("validated fact table");
        let column = table
            .column(by)
            .filter(|c| c.ty == ColumnType::Text && table.dimensions.contains(&by));
        if column.is_none() {
            return Err(AnalyticsError::BadBreakdown(
                if table.dimensions.is_empty() {
                    format!(
                        "{} has no dimension to break {} down by",
                        table.name, indicator.id
                    )
                } else {
                    format!(
                        "{by:?} is not a dimension of {} (one of: {})",
                        table.name,
                        table.dimensions.join(", ")
                    )
                },
            ));
        }
        let region = audience.region(region, "region")?;
        let region = region.as_deref();
        let period = Period::parse(grain, period).map_err(|source| QueryError::Period {
            parameter: "period",
            source,
        })?;
        let region = region
            .map(|r| {
                indicators::region_level(r)
                    .map(|_| r)
                    .map_err(QueryError::Region)
            })
            .transpose()?;
        let side = |m: &indicators::Measure| {
            let mut conds = row_conditions(m, indicators::sql::Dialect::DuckDb);
            let mut params = Vec::new();
            if let Some(t) = &m.time {
                conds.push(format!(
                    "{t} >= CAST(? AS TIMESTAMP) AND {t} < CAST(? AS TIMESTAMP)"
                ));
                params.push(format!("{} 00:00:00", period.start));
                params.push(format!("{} 00:00:00", period.end()));
            }
            if let Some(r) = region {
                conds.push(format!("{} LIKE ?", table.region_column()));
                params.push(format!("{r}%"));
            }
            let sql = format!(
                "SELECT CAST({by} AS VARCHAR) AS category, CAST({} AS DOUBLE) AS v, CAST(COUNT(*) AS DOUBLE) AS r FROM {} WHERE {} GROUP BY 1",
                aggregate_sql(m),
                m.fact,
                conds.join(" AND ")
            );
            (sql, params)
        };
        let (n_sql, mut params) = side(numerator);
        let split_denominator = indicator
            .denominator
            .as_ref()
            .filter(|d| d.fact == numerator.fact && d.time.is_some());
        let sql = match split_denominator {
            Some(d) => {
                let (d_sql, d_params) = side(d);
                params.extend(d_params);
                format!(
                    "WITH n AS ({n_sql}), d AS ({d_sql}) SELECT COALESCE(n.category, d.category), \
                     COALESCE(n.v, 0), d.v, COALESCE(d.r, 0) FROM n FULL OUTER JOIN d ON n.category = d.category"
                )
            }
            None => format!("SELECT category, v, CAST(NULL AS DOUBLE), r FROM ({n_sql})"),
        };
        let rows: Vec<(Option<String>, f64, Option<f64>, f64)> = self.with_conn(|conn| {
            let mut stmt = conn.prepare(&sql).map_err(AnalyticsError::db(format!(
                "cannot break down {}",
                indicator.id
            )))?;
            let rows = stmt
                .query_map(params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(AnalyticsError::db(format!(
                    "cannot break down {}",
                    indicator.id
                )))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(AnalyticsError::db(format!(
                    "cannot break down {}",
                    indicator.id
                )))
        })?;
        let total: f64 = rows.iter().map(|r| r.1).sum();
        let mut out: Vec<Share> = rows
            .into_iter()
            .map(|(category, numerator, denominator, records)| Share {
                category: category.unwrap_or_else(|| "(none)".into()),
                numerator,
                denominator,
                value: if split_denominator.is_some() {
                    indicator.value(numerator, denominator)
                } else if indicator.denominator.is_none() {
                    Some(numerator)
                } else {
                    None
                },
                share: Some(if total > 0.0 { numerator / total } else { 0.0 }),
                support: Some(records),
                suppressed: false,
            })
            .collect();
        let published = table.disclosure == indicators::facts::Disclosure::Published;
        if let (Some(floor), false) = (audience.floor(), published) {
            let members: Vec<(Option<f64>, &str)> = out
                .iter()
                .map(|s| (s.support, s.category.as_str()))
                .collect();
            let hidden = crate::policy::withheld_in_group(&members, floor);
            for i in hidden {
                let s = &mut out[i];
                s.numerator = 0.0;
                s.denominator = None;
                s.value = None;
                s.share = None;
                s.support = None;
                s.suppressed = true;
            }
        }
        out.sort_by(|a, b| {
            b.numerator
                .total_cmp(&a.numerator)
                .then(a.category.cmp(&b.category))
        });
        out.truncate(top);
        Ok(out)
    }
}
