//! Single 12345 work orders and their event histories, for the record-level routes (the
//! event history, the Open311 facade). Only rows whose community lies in the caller's scope
//! are ever read: the scope is a condition of the query, not a filter afterwards. Which
//! roles may read records at all is the server's decision.

use crate::{AnalyticsError, Engine, Result};
use chrono::NaiveDateTime;
use duckdb::params_from_iter;
use serde::Serialize;

/// Most orders one query returns.
pub const MAX_ORDERS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkOrder {
    pub order_id: String,
    pub created_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub closed_at: Option<NaiveDateTime>,
    pub request_type: String,
    pub content_code: String,
    pub channel: String,
    pub community_code: String,
    pub grid_id: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// The time of its latest event (or its creation).
    pub updated_at: NaiveDateTime,
    /// The organisation it was last dispatched to.
    pub agency: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkOrderEvent {
    pub seq: i64,
    pub at: NaiveDateTime,
    pub kind: String,
    pub org: Option<String>,
    pub due_at: Option<NaiveDateTime>,
    pub merged_into: Option<String>,
    pub satisfaction: Option<i64>,
}

/// Which orders: all conditions hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrderQuery {
    /// Only these ids (empty: any).
    pub ids: Vec<String>,
    pub content_code: Option<String>,
    /// Created at or after / before.
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
    /// Closed (`Some(true)`) or open (`Some(false)`).
    pub closed: Option<bool>,
    /// At most this many, newest first (capped at [`MAX_ORDERS`]).
    pub limit: usize,
}

/// A `TIMESTAMP` column read as text (the DuckDB crate is built without its chrono
/// feature, whose change would rebuild it).
pub(crate) fn timestamp(r: &duckdb::Row, i: usize) -> duckdb::Result<NaiveDateTime> {
    let text: String = r.get(i)?;
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").map_err(|e| {
        duckdb::Error::FromSqlConversionFailure(i, duckdb::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn opt_timestamp(r: &duckdb::Row, i: usize) -> duckdb::Result<Option<NaiveDateTime>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(_) => timestamp(r, i).map(Some),
    }
}

fn db(context: &'static str) -> impl FnOnce(duckdb::Error) -> AnalyticsError {
    AnalyticsError::db(context)
}

impl Engine {
    /// Work orders in the subtree of `scope` (all with `None`) that match `q`, newest first.
    pub fn work_orders(&self, scope: Option<&str>, q: &OrderQuery) -> Result<Vec<WorkOrder>> {
        self.facts_here("reading work orders")?;
        let mut sql = String::from(
            "SELECT o.order_id, CAST(o.created_at AS VARCHAR), CAST(o.due_at AS VARCHAR), CAST(o.closed_at AS VARCHAR), \
             o.request_type, o.content_code, o.channel, o.community_code, o.grid_id, o.lon, o.lat, \
             CAST(GREATEST(o.created_at, COALESCE(e.last_at, o.created_at), COALESCE(o.closed_at, o.created_at)) AS VARCHAR), e.agency \
             FROM work_orders o LEFT JOIN (SELECT order_id, MAX(event_at) AS last_at, \
             arg_max(org, seq) FILTER (WHERE kind = 'dispatch') AS agency \
             FROM work_order_events WHERE starts_with(community_code, ?) GROUP BY order_id) e USING (order_id) \
             WHERE starts_with(o.community_code, ?)",
        );
        // The scope twice: the events are summed only for orders of the scope, not all.
        let scope = scope.unwrap_or("").to_owned();
        let mut args: Vec<duckdb::types::Value> = vec![scope.clone().into(), scope.into()];
        if !q.ids.is_empty() {
            sql += &format!(" AND o.order_id IN ({})", vec!["?"; q.ids.len()].join(", "));
            args.extend(q.ids.iter().map(|i| i.clone().into()));
        }
        if let Some(c) = &q.content_code {
            sql += " AND o.content_code = ?";
            args.push(c.clone().into());
        }
        if let Some(t) = q.from {
            sql += " AND o.created_at >= CAST(? AS TIMESTAMP)";
            args.push(t.to_string().into());
        }
        if let Some(t) = q.to {
            sql += " AND o.created_at < CAST(? AS TIMESTAMP)";
            args.push(t.to_string().into());
        }
        match q.closed {
            Some(true) => sql += " AND o.closed_at IS NOT NULL",
            Some(false) => sql += " AND o.closed_at IS NULL",
            None => {}
        }
        sql += &format!(
            " ORDER BY o.created_at DESC, o.order_id LIMIT {}",
            q.limit.clamp(1, MAX_ORDERS)
        );
        self.consistent(|| {
            self.with_conn(|conn| {
                let mut stmt = conn.prepare(&sql).map_err(db("cannot read work orders"))?;
                let rows = stmt
                    .query_map(params_from_iter(args.iter()), |r| {
                        Ok(WorkOrder {
                            order_id: r.get(0)?,
                            created_at: timestamp(r, 1)?,
                            due_at: timestamp(r, 2)?,
                            closed_at: opt_timestamp(r, 3)?,
                            request_type: r.get(4)?,
                            content_code: r.get(5)?,
                            channel: r.get(6)?,
                            community_code: r.get(7)?,
                            grid_id: r.get(8)?,
                            lon: r.get(9)?,
                            lat: r.get(10)?,
                            updated_at: timestamp(r, 11)?,
                            agency: r.get(12)?,
                        })
                    })
                    .map_err(db("cannot read work orders"))?;
                rows.collect::<std::result::Result<_, _>>()
                    .map_err(db("cannot read work orders"))
            })
        })
    }

    /// The events of work order `id`, in order, if the order exists in the subtree of
    /// `scope` (`None` otherwise: an order outside the scope is not there for this caller).
    pub fn work_order_events(
        &self,
        scope: Option<&str>,
        id: &str,
    ) -> Result<Option<(WorkOrder, Vec<WorkOrderEvent>)>> {
        self.facts_here("reading a work order")?;
        self.consistent(|| {
            let Some(order) = self
                .work_orders(
                    scope,
                    &OrderQuery {
                        ids: vec![id.to_owned()],
                        limit: 1,
                        ..OrderQuery::default()
                    },
                )?
                .pop()
            else {
                return Ok(None);
            };
            let events = self.with_conn(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT seq, CAST(event_at AS VARCHAR), kind, org, CAST(due_at AS VARCHAR), merged_into, satisfaction \
                         FROM work_order_events WHERE order_id = ? ORDER BY seq",
                    )
                    .map_err(db("cannot read work order events"))?;
                let rows = stmt
                    .query_map([id], |r| {
                        Ok(WorkOrderEvent {
                            seq: r.get(0)?,
                            at: timestamp(r, 1)?,
                            kind: r.get(2)?,
                            org: r.get(3)?,
                            due_at: opt_timestamp(r, 4)?,
                            merged_into: r.get(5)?,
                            satisfaction: r.get(6)?,
                        })
                    })
                    .map_err(db("cannot read work order events"))?;
                rows.collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(db("cannot read work order events"))
            })?;
            Ok(Some((order, events)))
        })
    }

    /// The content categories present in the subtree of `scope`, with their request types
    /// and order counts, by code.
    pub fn work_order_services(&self, scope: Option<&str>) -> Result<Vec<(String, String, i64)>> {
        self.facts_here("reading the services")?;
        self.consistent(|| {
            self.with_conn(|conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT content_code, string_agg(DISTINCT request_type, ',' ORDER BY request_type), COUNT(*) \
                         FROM work_orders WHERE starts_with(community_code, ?) GROUP BY 1 ORDER BY 1",
                    )
                    .map_err(db("cannot read services"))?;
                let rows = stmt
                    .query_map([scope.unwrap_or("")], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(db("cannot read services"))?;
                rows.collect::<std::result::Result<_, _>>()
                    .map_err(db("cannot read services"))
            })
        })
    }
}
