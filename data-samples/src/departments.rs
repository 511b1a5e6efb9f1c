//! The other departments' fact tables: hotline call reports, grid events, enforcement cases,
//! hourly air quality, quarterly county economics, the IT-system census, service scenario
//! lists and data-sharing requests.
//!
//! Each follows the region behaviour of the work orders (slow places are slow everywhere,
//! drifting places get worse over the period) so that risks show up across indicators, and
//! each is anchored where a fact exists (the cities' 2023 GDP).

use crate::regions::{CITIES, Region};
use crate::rng::{Rng, Weighted};
use crate::{Ctx, DAYS, GenerateError, Request, csv_writer, first_day, io_err, ts};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub(crate) struct Inputs<'a> {
    pub ctx: &'a Ctx<'a>,
    pub tree: &'a [Region],
    /// Residents per grid cell, in the order of `ctx.grids`.
    pub residents: &'a [u64],
    /// (slowness, drift) per county code.
    pub county_behaviour: &'a HashMap<String, (f64, f64)>,
    pub orders: usize,
    /// One air-quality station per county (otherwise one per city).
    pub per_county_stations: bool,
}

/// A CSV file being written, counting its rows.
struct Table {
    path: PathBuf,
    w: csv::Writer<BufWriter<File>>,
    rows: usize,
}

impl Table {
    fn create(out: &Path, name: &str, header: &[&str]) -> Result<Table, GenerateError> {
        let path = out.join(format!("{name}.csv"));
        let mut w = csv_writer(&path)?;
        w.write_record(header)
            .map_err(|source| GenerateError::Csv {
                path: path.clone(),
                source,
            })?;
        Ok(Table { path, w, rows: 0 })
    }

    fn row(&mut self, record: &[&str]) -> Result<(), GenerateError> {
        self.rows += 1;
        self.w
            .write_record(record)
            .map_err(|source| GenerateError::Csv {
                path: self.path.clone(),
                source,
            })
    }

    fn finish(mut self) -> Result<usize, GenerateError> {
        self.w.flush().map_err(io_err(&self.path))?;
        Ok(self.rows)
    }
}

fn day(d: i64) -> NaiveDate {
    first_day() + Duration::days(d)
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).expect("midnight")
}

fn yes(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Writes one table and returns how many rows it has.
type Writer = fn(&Path, &Inputs, &mut Rng) -> Result<usize, GenerateError>;

/// The tables, in the order (and so with the random streams) they are written.
const WRITERS: [(&str, Writer); 8] = [
    ("hotline_calls", hotline_calls),
    ("grid_events", grid_events),
    ("enforcement_cases", enforcement_cases),
    ("air_quality", air_quality),
    ("economy", economy),
    ("it_systems", it_systems),
    ("service_scenarios", service_scenarios),
    ("data_sharing_requests", data_sharing_requests),
];

/// Writes every table and returns (table, rows) pairs; table `i` draws from stream `10 + i`.
pub(crate) fn write_all(
    out: &Path,
    inputs: &Inputs,
    root: &Rng,
) -> Result<Vec<(String, usize)>, GenerateError> {
    WRITERS
        .iter()
        .zip(10u64..)
        .map(|((name, write), stream)| {
            Ok((
                name.to_string(),
                write(out, inputs, &mut root.fork(stream))?,
            ))
        })
        .collect()
}

fn counties(tree: &[Region]) -> Vec<&Region> {
    tree.iter().filter(|r| r.level == "county").collect()
}

/// Daily call-centre reports per community: calls offered follow the work orders' spread
/// and season (about 1.25 calls per order); slow counties answer fewer.
fn hotline_calls(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    let ctx = inputs.ctx;
    let mut weight_by_community: BTreeMap<&str, f64> = BTreeMap::new();
    for (i, g) in ctx.grids.iter().enumerate() {
        *weight_by_community.entry(&g.code[..12]).or_default() +=
            inputs.residents[i] as f64 * ctx.behaviour[i].2;
    }
    let total: f64 = weight_by_community.values().sum();
    let mut t = Table::create(
        out,
        "hotline_calls",
        &["day", "community_code", "calls_offered", "calls_answered"],
    )?;
    for (community, weight) in &weight_by_community {
        let (slowness, _) = inputs.county_behaviour[&community[..6]];
        let answer_rate = (0.96 - 0.06 * (slowness - 1.0) + 0.01 * rng.normal()).clamp(0.5, 0.995);
        let per_day = 1.25 * inputs.orders as f64 * weight / total / DAYS as f64;
        for d in 0..DAYS {
            let offered = rng.poisson(per_day * ctx.day_weights.relative(d as usize));
            if offered == 0 {
                continue;
            }
            let answered = rng.binomial(offered, answer_rate);
            t.row(&[
                &ts(midnight(day(d))),
                community,
                &offered.to_string(),
                &answered.to_string(),
            ])?;
        }
    }
    t.finish()
}

const EVENT_CATEGORIES: [(&str, f64, f64); 5] = [
    // (category, share, time limit in hours)
    ("市容环境", 0.35, 72.0),
    ("安全隐患", 0.20, 48.0),
    ("矛盾纠纷", 0.15, 120.0),
    ("公共设施", 0.20, 96.0),
    ("违法建设", 0.10, 168.0),
];

const EVENT_SOURCES: [(&str, f64); 3] = [
    ("网格员巡查", 0.55),
    ("群众上报", 0.35),
    ("视频智能发现", 0.10),
];

/// Grid events, four for every ten work orders, disposed of more slowly where things drift.
fn grid_events(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    let ctx = inputs.ctx;
    let categories = Weighted::new(EVENT_CATEGORIES.iter().map(|c| c.1));
    let sources = Weighted::new(EVENT_SOURCES.iter().map(|s| s.1));
    let end = ctx.end();
    let mut t = Table::create(
        out,
        "grid_events",
        &[
            "event_id",
            "reported_at",
            "due_at",
            "resolved_at",
            "category",
            "source",
            "community_code",
            "grid_id",
        ],
    )?;
    for i in 0..inputs.orders * 4 / 10 {
        let Request {
            grid,
            slowness,
            drift,
            at,
            progress,
        } = ctx.request(rng);
        let (category, _, limit_h) = EVENT_CATEGORIES[categories.sample(rng)];
        let due = at + Duration::minutes((limit_h * 60.0) as i64);
        let median_h = limit_h * 0.35 * slowness * (1.0 + drift * progress * progress);
        let hours = rng.lognormal(median_h, 0.5).max(0.1);
        let resolved = at + Duration::seconds((hours * 3600.0) as i64);
        let resolved = (resolved < end && !rng.chance(0.003)).then_some(resolved);
        t.row(&[
            &format!("GE{i:09}"),
            &ts(at),
            &ts(due),
            &resolved.map(ts).unwrap_or_default(),
            category,
            EVENT_SOURCES[sources.sample(rng)].0,
            &grid.code[..12],
            &grid.code,
        ])?;
    }
    t.finish()
}

const DEPARTMENTS: [&str; 8] = [
    "城市管理",
    "市场监管",
    "生态环境",
    "交通运输",
    "应急管理",
    "自然资源",
    "卫生健康",
    "公安",
];

/// Enforcement cases, one for every four work orders; the mobile app spreads over the
/// period, more slowly in slow places.
fn enforcement_cases(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    let ctx = inputs.ctx;
    let end = ctx.end();
    let mut t = Table::create(
        out,
        "enforcement_cases",
        &[
            "case_id",
            "opened_at",
            "closed_at",
            "department",
            "mobile",
            "community_code",
            "grid_id",
        ],
    )?;
    for i in 0..inputs.orders / 4 {
        let Request {
            grid,
            slowness,
            at,
            progress,
            ..
        } = ctx.request(rng);
        let mobile_p = ((0.74 + 0.24 * progress) * slowness.powf(-0.25)).clamp(0.3, 0.995);
        let closed = at + Duration::seconds((rng.lognormal(240.0, 0.6) * 3600.0) as i64);
        let closed = (closed < end).then_some(closed);
        t.row(&[
            &format!("EC{i:09}"),
            &ts(at),
            &closed.map(ts).unwrap_or_default(),
            DEPARTMENTS[rng.below(5)],
            yes(rng.chance(mobile_p)),
            &grid.code[..12],
            &grid.code,
        ])?;
    }
    t.finish()
}

/// The individual air quality index of a PM2.5 concentration (HJ 633-2012 breakpoints for
/// 24-hour means, used hourly here as an approximation).
pub(crate) fn pm25_iaqi(pm25_ug_m3: f64) -> f64 {
    const BREAKPOINTS: [(f64, f64); 8] = [
        (0.0, 0.0),
        (35.0, 50.0),
        (75.0, 100.0),
        (115.0, 150.0),
        (150.0, 200.0),
        (250.0, 300.0),
        (350.0, 400.0),
        (500.0, 500.0),
    ];
    let c = pm25_ug_m3.clamp(0.0, 500.0);
    for w in BREAKPOINTS.windows(2) {
        let ((c_lo, i_lo), (c_hi, i_hi)) = (w[0], w[1]);
        if c <= c_hi {
            return i_lo + (i_hi - i_lo) * (c - c_lo) / (c_hi - c_lo);
        }
    }
    500.0
}

/// Hourly readings per station: a city baseline, winter peaks, weather that persists for
/// days, a daily cycle and a few missing hours.
fn air_quality(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    let mut stations: Vec<&Region> = Vec::new();
    for c in &CITIES {
        let in_city: Vec<&Region> = counties(inputs.tree)
            .into_iter()
            .filter(|r| r.code.starts_with(c.code))
            .collect();
        if inputs.per_county_stations {
            stations.extend(in_city);
        } else if let Some(first) = in_city.first() {
            stations.push(first);
        }
    }
    let mut t = Table::create(
        out,
        "air_quality",
        &[
            "station_id",
            "measured_at",
            "county_code",
            "aqi",
            "pm25_ug_m3",
        ],
    )?;
    let mut city_base: HashMap<&str, f64> = HashMap::new();
    for station in stations {
        let base = *city_base
            .entry(&station.code[..4])
            .or_insert_with(|| rng.lognormal(30.0, 0.15))
            * rng.lognormal(1.0, 0.08);
        let id = format!("ST{}01", station.code);
        let mut weather = 0.0;
        for d in 0..DAYS {
            let date = day(d);
            let doy = date.ordinal0() as f64;
            let season = 1.0 + 0.45 * ((doy - 15.0) / 365.25 * std::f64::consts::TAU).cos();
            weather = 0.6 * weather + 0.8 * 0.4 * rng.normal();
            for h in 0..24 {
                if rng.chance(0.02) {
                    continue;
                }
                let diurnal = 1.0 + 0.15 * ((h as f64 - 8.0) / 24.0 * std::f64::consts::TAU).cos();
                let pm25 = (base * season * f64::exp(weather) * diurnal * rng.lognormal(1.0, 0.2))
                    .clamp(1.0, 999.0);
                let aqi = pm25_iaqi(pm25).round();
                t.row(&[
                    &id,
                    &ts(midnight(date) + Duration::hours(h)),
                    &station.code,
                    &format!("{aqi}"),
                    &format!("{pm25:.1}"),
                ])?;
            }
        }
    }
    t.finish()
}

/// Residents per county code.
fn county_residents<'a>(inputs: &Inputs<'a>) -> HashMap<&'a str, f64> {
    let mut out: HashMap<&str, f64> = HashMap::new();
    for (i, g) in inputs.ctx.grids.iter().enumerate() {
        *out.entry(&g.code[..6]).or_default() += inputs.residents[i] as f64;
    }
    out
}

/// Quarterly GDP per county for 2024 and 2025: each city's real 2023 GDP split over its
/// counties and quarters, grown at about 5-6% a year in real terms.
fn economy(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    const QUARTER_SHARE: [f64; 4] = [0.23, 0.245, 0.25, 0.275];
    let residents = county_residents(inputs);
    let mut t = Table::create(
        out,
        "economy",
        &[
            "county_code",
            "quarter_start",
            "gdp_100m_cny",
            "gdp_comparable_100m_cny",
            "gdp_last_year_100m_cny",
            "tertiary_100m_cny",
        ],
    )?;
    for c in &CITIES {
        let in_city: Vec<&Region> = counties(inputs.tree)
            .into_iter()
            .filter(|r| r.code.starts_with(c.code))
            .collect();
        let weights: Vec<f64> = in_city
            .iter()
            .map(|r| {
                residents.get(r.code.as_str()).copied().unwrap_or(0.0) * rng.lognormal(1.0, 0.3)
            })
            .collect();
        let weight_sum: f64 = weights.iter().sum();
        let city_growth = 0.056 + 0.008 * rng.normal();
        let city_tertiary = 0.53 + 0.04 * rng.normal();
        for (county, w) in in_city.iter().zip(&weights) {
            let county_growth = city_growth + 0.012 * rng.normal();
            let tertiary = (city_tertiary + 0.03 * rng.normal()).clamp(0.3, 0.8);
            let mut last_year: [f64; 4] =
                QUARTER_SHARE.map(|q| c.gdp_2023_100m_cny * w / weight_sum * q);
            for year in [2024, 2025] {
                for (q, ly) in last_year.iter_mut().enumerate() {
                    let growth = county_growth + 0.006 * rng.normal();
                    let comparable = *ly * (1.0 + growth);
                    let gdp = comparable * (1.0 + 0.004 * rng.normal());
                    let start =
                        NaiveDate::from_ymd_opt(year, q as u32 * 3 + 1, 1).expect("quarter");
                    let share = tertiary + 0.005 * (year - 2024) as f64;
                    t.row(&[
                        &county.code,
                        &ts(midnight(start)),
                        &format!("{gdp:.4}"),
                        &format!("{comparable:.4}"),
                        &format!("{ly:.4}"),
                        &format!("{:.4}", (gdp * share).min(gdp)),
                    ])?;
                    *ly = gdp;
                }
            }
        }
    }
    t.finish()
}

/// The eight quarterly census dates (mid-quarter) of the generated period.
fn census_dates() -> Vec<NaiveDateTime> {
    [2024, 2025]
        .iter()
        .flat_map(|&y| (0..4).map(move |q| (y, q)))
        .map(|(y, q)| {
            midnight(
                NaiveDate::from_ymd_opt(y, q * 3 + 1, 1).expect("quarter") + Duration::days(45),
            )
        })
        .collect()
}

/// A county's progress on a share that grows from `start` to `end` over the eight censuses:
/// an item is counted at census `k` when its fixed draw falls below the share then, so items
/// never go back.
fn adopted(draw: f64, start: f64, end: f64, quality: f64, census: usize) -> bool {
    let x = census as f64 / 7.0;
    draw < ((start + (end - start) * x) * quality).min(0.995)
}

/// The IT-system census per county: systems moving to the government cloud, private
/// networks merged, apps joining the 苏服办 portal.
fn it_systems(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    let dates = census_dates();
    let mut t = Table::create(
        out,
        "it_systems",
        &[
            "system_id",
            "census_at",
            "county_code",
            "department",
            "kind",
            "classified",
            "on_cloud",
            "integrated",
            "in_portal",
        ],
    )?;
    for county in counties(inputs.tree) {
        let (slowness, _) = inputs.county_behaviour[&county.code];
        let quality = slowness.powf(-0.3) * rng.lognormal(1.0, 0.03);
        let items: Vec<(String, &str, &str, bool, f64)> = (0..40)
            .map(|j| {
                let kind = match j {
                    0..24 => "system",
                    24..34 => "app",
                    _ => "network",
                };
                let classified = kind != "app" && rng.chance(0.12);
                (
                    format!("IT{}{j:03}", county.code),
                    kind,
                    DEPARTMENTS[rng.below(DEPARTMENTS.len())],
                    classified,
                    rng.f64(),
                )
            })
            .collect();
        for (k, date) in dates.iter().enumerate() {
            for (id, kind, department, classified, draw) in &items {
                let (cloud, integrated, portal) = match *kind {
                    "system" => (adopted(*draw, 0.72, 0.97, quality, k), false, false),
                    "network" => (false, adopted(*draw, 0.60, 0.93, quality, k), false),
                    _ => (false, false, adopted(*draw, 0.55, 0.93, quality, k)),
                };
                t.row(&[
                    id,
                    &ts(*date),
                    &county.code,
                    department,
                    kind,
                    yes(*classified),
                    yes(cloud && !classified),
                    yes(integrated && !classified),
                    yes(portal),
                ])?;
            }
        }
    }
    t.finish()
}

/// The service lists per county: items available online, and 一件事 / 一类事 / 一体事
/// scenarios implemented, census by census.
fn service_scenarios(out: &Path, inputs: &Inputs, rng: &mut Rng) -> Result<usize, GenerateError> {
    // (kind, name, how many per county, share at the first census, share at the last)
    const KINDS: [(&str, &str, usize, f64, f64); 4] = [
        ("item", "政务服务事项", 60, 0.80, 0.96),
        ("one_thing", "一件事", 12, 0.55, 0.88),
        ("one_class", "一类事", 10, 0.45, 0.86),
        ("one_body", "一体事", 8, 0.35, 0.84),
    ];
    let dates = census_dates();
    let mut t = Table::create(
        out,
        "service_scenarios",
        &[
            "scenario_id",
            "census_at",
            "county_code",
            "kind",
            "name",
            "online_available",
            "implemented",
        ],
    )?;
    for county in counties(inputs.tree) {
        let (slowness, _) = inputs.county_behaviour[&county.code];
        let quality = slowness.powf(-0.3) * rng.lognormal(1.0, 0.03);
        for (kind, name, n, start, end) in KINDS {
            let draws: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
            for (k, date) in dates.iter().enumerate() {
                for (j, draw) in draws.iter().enumerate() {
                    let done = adopted(*draw, start, end, quality, k);
                    let (online, implemented) = if kind == "item" {
                        (done, true)
                    } else {
                        (done, done)
                    };
                    t.row(&[
                        &format!("{}-{kind}-{j:03}", county.code),
                        &ts(*date),
                        &county.code,
                        kind,
                        &format!("{name}{}", j + 1),
                        yes(online),
                        yes(implemented),
                    ])?;
                }
            }
        }
    }
    t.finish()
}

/// Data-sharing requests between departments, one for every five work orders, answered
/// faster as the sharing platform matures and more slowly in slow counties.
fn data_sharing_requests(
    out: &Path,
    inputs: &Inputs,
    rng: &mut Rng,
) -> Result<usize, GenerateError> {
    let ctx = inputs.ctx;
    let end = ctx.end();
    let mut t = Table::create(
        out,
        "data_sharing_requests",
        &[
            "request_id",
            "requested_at",
            "due_at",
            "fulfilled_at",
            "requesting_department",
            "providing_department",
            "county_code",
        ],
    )?;
    for i in 0..inputs.orders / 5 {
        let Request {
            grid, at, progress, ..
        } = ctx.request(rng);
        let county = &grid.code[..6];
        let (slowness, _) = inputs.county_behaviour[county];
        let due = at + Duration::hours(72);
        let median_h = 20.0 * slowness * (1.0 - 0.45 * progress);
        let fulfilled = at + Duration::seconds((rng.lognormal(median_h, 0.6) * 3600.0) as i64);
        let fulfilled = (fulfilled < end && !rng.chance(0.002)).then_some(fulfilled);
        let asking = rng.below(DEPARTMENTS.len());
        let giving = (asking + 1 + rng.below(DEPARTMENTS.len() - 1)) % DEPARTMENTS.len();
        t.row(&[
            &format!("DS{i:09}"),
            &ts(at),
            &ts(due),
            &fulfilled.map(ts).unwrap_or_default(),
            DEPARTMENTS[asking],
            DEPARTMENTS[giving],
            county,
        ])?;
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pm25_iaqi_follows_the_breakpoints() {
        assert_eq!(pm25_iaqi(0.0), 0.0);
        assert_eq!(pm25_iaqi(35.0), 50.0);
        assert_eq!(pm25_iaqi(75.0), 100.0);
        assert!((pm25_iaqi(55.0) - 75.0).abs() < 1e-9);
        assert_eq!(pm25_iaqi(900.0), 500.0);
    }

    #[test]
    fn adoption_never_goes_back() {
        for draw in [0.1, 0.5, 0.8, 0.95] {
            let seen: Vec<bool> = (0..8).map(|k| adopted(draw, 0.5, 0.9, 1.0, k)).collect();
            let first = seen.iter().position(|b| *b).unwrap_or(8);
            assert!(seen[first..].iter().all(|b| *b), "{draw}: {seen:?}");
        }
    }
}
