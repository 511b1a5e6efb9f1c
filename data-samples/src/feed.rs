//! A live 12345 feed for a running server (`databrain feed`): new work orders and the status
//! changes of open ones (closed, with a return-visit satisfaction), on a simulated clock that
//! runs on from the sample's last day.
//!
//! One county at a time is in trouble: for a simulated month its orders are handled four
//! times slower (most past their due time, and less satisfied), then the trouble moves on,
//! so alerts on on-time handling appear for it and clear after. Rows have the columns of
//! `work_orders.csv` and ids that no generated sample uses (`LV` + the run's seed + number).

use crate::rng::{Rng, Weighted};
use crate::{CHANNELS, CONTENT, REQUEST_TYPES};
use chrono::{Duration, NaiveDateTime};
use serde_json::{Map, Value};

/// A grid cell orders come from.
#[derive(Clone, Debug)]
pub struct Cell {
    pub grid_id: String,
    pub lon: f64,
    pub lat: f64,
}

struct Open {
    row: Map<String, Value>,
    closes_at: NaiveDateTime,
    due_at: NaiveDateTime,
}

pub struct Feed {
    rng: Rng,
    seed: u64,
    cells: Vec<Cell>,
    counties: Vec<String>,
    types: Weighted,
    channels: Weighted,
    contents: Weighted,
    next: u64,
    open: Vec<Open>,
    /// The simulated time.
    pub clock: NaiveDateTime,
    /// The county in trouble and until when.
    pub trouble: Option<(String, NaiveDateTime)>,
}

fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Feed {
    /// A feed over `cells` (grid cells with a point each) from `start`.
    pub fn new(cells: Vec<Cell>, start: NaiveDateTime, seed: u64) -> Feed {
        let mut counties: Vec<String> = cells.iter().map(|c| c.grid_id[..6].to_owned()).collect();
        counties.sort();
        counties.dedup();
        Feed {
            rng: Rng::new(seed),
            seed,
            cells,
            counties,
            types: Weighted::new(REQUEST_TYPES.iter().map(|t| t.1)),
            channels: Weighted::new(CHANNELS.iter().map(|c| c.1)),
            contents: Weighted::new(CONTENT.iter().map(|c| c.1)),
            next: 0,
            open: Vec::new(),
            clock: start,
            trouble: None,
        }
    }

    /// Grid cells from a sample's `regions.csv` (code, name, level, parent_code, lon, lat).
    pub fn cells_from_regions(text: &str) -> Result<Vec<Cell>, String> {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let mut out = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let r = record.map_err(|e| format!("row {}: {e}", i + 1))?;
            if r.get(2) == Some("grid") {
                let number = |k: usize| -> Result<f64, String> {
                    r.get(k)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("row {}: no coordinate in column {}", i + 1, k + 1))
                };
                out.push(Cell {
                    grid_id: r[0].to_owned(),
                    lon: number(4)?,
                    lat: number(5)?,
                });
            }
        }
        if out.is_empty() {
            return Err("no grid cells".into());
        }
        Ok(out)
    }

    /// Advances the clock by `step` and returns what happened meanwhile: `orders` new work
    /// orders spread over the step, and every open order that closed in it (the same row
    /// with `closed_at` and maybe `satisfaction`: a status change, replacing the row by its
    /// key).
    pub fn advance(&mut self, step: Duration, orders: usize) -> Vec<Map<String, Value>> {
        let from = self.clock;
        let to = from + step;
        if self
            .trouble
            .as_ref()
            .is_none_or(|(_, until)| *until <= from)
        {
            let county = self.counties[self.rng.below(self.counties.len())].clone();
            self.trouble = Some((county, from + Duration::days(30)));
        }
        let troubled = self
            .trouble
            .as_ref()
            .map(|(c, _)| c.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        // Status changes of orders that close in this step.
        let mut still_open = Vec::new();
        for o in std::mem::take(&mut self.open) {
            if o.closes_at < to {
                let mut row = o.row;
                row.insert("closed_at".into(), ts(o.closes_at).into());
                if self.rng.chance(0.7) {
                    let happy = if o.closes_at <= o.due_at { 0.9 } else { 0.45 };
                    let s = if self.rng.chance(happy) {
                        4 + self.rng.below(2)
                    } else {
                        1 + self.rng.below(3)
                    };
                    row.insert("satisfaction".into(), (s as u64).into());
                }
                out.push(row);
            } else {
                still_open.push(o);
            }
        }
        self.open = still_open;
        let span_s = step.num_seconds().max(1);
        for _ in 0..orders {
            let cell = self.cells[self.rng.below(self.cells.len())].clone();
            let created = from + Duration::seconds(self.rng.below(span_s as usize) as i64);
            let (kind, _, limit_h) = REQUEST_TYPES[self.types.sample(&mut self.rng)];
            let due = created + Duration::minutes((limit_h * 60.0) as i64);
            let slowness = if cell.grid_id.starts_with(&troubled) {
                4.0
            } else {
                1.0
            };
            let hours = self
                .rng
                .lognormal(limit_h * 0.32 * slowness, 0.55)
                .max(0.05);
            let closes = created + Duration::seconds((hours * 3600.0) as i64);
            self.next += 1;
            let mut row = Map::new();
            row.insert(
                "order_id".into(),
                format!("LV{:x}-{:09}", self.seed, self.next).into(),
            );
            row.insert("created_at".into(), ts(created).into());
            row.insert("due_at".into(), ts(due).into());
            row.insert("request_type".into(), kind.into());
            row.insert(
                "content_code".into(),
                CONTENT[self.contents.sample(&mut self.rng)].0.into(),
            );
            row.insert(
                "channel".into(),
                CHANNELS[self.channels.sample(&mut self.rng)].0.into(),
            );
            row.insert("community_code".into(), cell.grid_id[..12].into());
            row.insert("grid_id".into(), cell.grid_id.clone().into());
            row.insert("lon".into(), cell.lon.into());
            row.insert("lat".into(), cell.lat.into());
            out.push(row.clone());
            self.open.push(Open {
                row,
                closes_at: closes,
                due_at: due,
            });
        }
        self.clock = to;
        out
    }

    /// Orders still open.
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_arrive_then_close_and_the_trouble_is_slower() {
        let cells: Vec<Cell> = ["320102001001-001", "320105001001-001"]
            .iter()
            .map(|g| Cell {
                grid_id: (*g).into(),
                lon: 118.8,
                lat: 32.0,
            })
            .collect();
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let mut feed = Feed::new(cells, start, 7);
        let first = feed.advance(Duration::hours(1), 500);
        assert_eq!(first.len(), 500, "only new orders in the first hour");
        assert!(
            first
                .iter()
                .all(|r| r["created_at"].as_str().unwrap() < "2026-01-01 01")
        );
        let mut closed = 0;
        for _ in 0..24 * 20 {
            closed += feed
                .advance(Duration::hours(1), 0)
                .iter()
                .filter(|r| r.contains_key("closed_at"))
                .count();
        }
        assert!(closed > 400 && feed.open_orders() < 100, "{closed} closed");
        let (troubled, _) = feed.trouble.clone().unwrap();
        assert!(["320102", "320105"].contains(&troubled.as_str()));
    }
}
