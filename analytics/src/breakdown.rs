//! Breakdowns: an indicator split by a text column of its fact table (e.g. 12345 work orders
//! by content code), largest first, for "top N" lists.

use crate::{AnalyticsError, Engine, Result};
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
    pub share: f64,
}

impl Engine {
    /// The indicator in one period (a year by default: `period` is `2025`, `2025-Q3`, ...)
    /// per value of the text column `by` of its numerator's fact table, largest numerator
    /// first, at most `top`. A denominator on the same fact table is split the same way;
    /// any other denominator (residents) is not split, so the value is left out.
    pub fn breakdown(
        &self,
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
            .filter(|c| c.ty == ColumnType::Text && by != "grid_id");
        if column.is_none() {
            let text: Vec<&str> = table
                .columns
                .iter()
                .filter(|c| {
                    c.ty == ColumnType::Text
                        && !c.name.ends_with("_id")
                        && !c.name.ends_with("_code")
                        && c.name != "repeat_of"
                })
                .map(|c| c.name)
                .collect();
            return Err(AnalyticsError::BadBreakdown(format!(
                "{by:?} is not a text column of {} (try: {})",
                table.name,
                text.join(", ")
            )));
        }
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
            let mut conds = row_conditions(m);
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
                "SELECT CAST({by} AS VARCHAR) AS category, CAST({} AS DOUBLE) AS v FROM {} WHERE {} GROUP BY 1",
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
                     COALESCE(n.v, 0), d.v FROM n FULL OUTER JOIN d ON n.category = d.category"
                )
            }
            None => format!("SELECT category, v, CAST(NULL AS DOUBLE) FROM ({n_sql})"),
        };
        let rows: Vec<(Option<String>, f64, Option<f64>)> = self.with_conn(|conn| {
            let mut stmt = conn.prepare(&sql).map_err(AnalyticsError::db(format!(
                "cannot break down {}",
                indicator.id
            )))?;
            let rows = stmt
                .query_map(params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
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
            .map(|(category, numerator, denominator)| Share {
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
                share: if total > 0.0 { numerator / total } else { 0.0 },
            })
            .collect();
        out.sort_by(|a, b| {
            b.numerator
                .total_cmp(&a.numerator)
                .then(a.category.cmp(&b.category))
        });
        out.truncate(top);
        Ok(out)
    }
}
