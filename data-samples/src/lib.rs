//! The deterministic sample-data generator behind `databrain generate`.
//!
//! For a scale and a seed it writes, into one directory: the region tree (`regions.csv`,
//! `regions.geojson`), resident population per grid cell (`population.csv`), 12345 hotline work
//! orders (`work_orders.csv`) and each order's life event by event (`work_order_events.csv`:
//! accepted, dispatched, sometimes returned and dispatched again, acknowledged, sometimes
//! extended or merged into an earlier duplicate, closed, visited back, sometimes reopened
//! after an unhappy visit; the last time limit and closure are the order row's own),
//! government service applications (`service_applications.csv`),
//! the demo district's buildings (`buildings.geojson`), the other departments' fact tables
//! (hotline call reports, grid events, enforcement cases, air quality, county economic
//! statistics, the IT-system census, service scenario lists, data-sharing requests; see
//! `departments`) and a `manifest.json`. The same seed and
//! scale always give byte-identical files. Real facts (city codes, names, 2023 GDP and
//! population) anchor it; everything below the cities is synthetic but keeps the real code
//! shapes, with seasonality, weekday effects and a few districts that drift badly.

mod departments;
pub mod feed;
pub mod regions;
pub mod rng;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use indicatif::{ProgressBar, ProgressStyle};
use regions::{CITIES, DEMO_DISTRICT, Fanout, Region, build_tree, degrees_per_m};
use rng::{Rng, Weighted};
use serde_json::json;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Small,
    Medium,
    Large,
}

impl Scale {
    pub fn parse(s: &str) -> Option<Scale> {
        match s {
            "small" => Some(Scale::Small),
            "medium" => Some(Scale::Medium),
            "large" => Some(Scale::Large),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
        }
    }

    pub fn work_orders(self) -> usize {
        match self {
            Scale::Small => 100_000,
            Scale::Medium => 1_000_000,
            Scale::Large => 10_000_000,
        }
    }

    fn fanout(self) -> Fanout {
        let (c, t, m, g) = match self {
            Scale::Small => (3, 3, 3, 4),
            Scale::Medium => (4, 4, 4, 6),
            Scale::Large => (6, 6, 6, 9),
        };
        Fanout {
            counties_per_city: c,
            townships_per_county: t,
            communities_per_township: m,
            grids_per_community: g,
        }
    }

    /// Spacing of building plots in the demo district, metres.
    fn plot_spacing_m(self) -> f64 {
        match self {
            Scale::Small => 170.0,
            Scale::Medium => 110.0,
            Scale::Large => 70.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub scale: Scale,
    pub seed: u64,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write sample data: {source}, in {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write CSV: {source}, in {path}")]
    Csv { path: PathBuf, source: csv::Error },
}

/// The layout version of generated directories; it changes whenever a file or column does.
pub const FORMAT_VERSION: u32 = 3;

/// What was generated, also written as `manifest.json`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Manifest {
    pub generator: &'static str,
    pub format: u32,
    pub scale: &'static str,
    pub seed: u64,
    pub demo_district: &'static str,
    pub first_day: String,
    pub last_day: String,
    pub regions: usize,
    pub grid_cells: usize,
    pub residents: u64,
    pub work_orders: usize,
    pub service_applications: usize,
    pub buildings: usize,
    /// Rows written per fact table.
    pub rows: std::collections::BTreeMap<String, usize>,
    /// Counties whose handling slows down badly over the period (the risks to be found).
    pub drifting_counties: Vec<String>,
    /// Townships that drift on top of their county.
    pub drifting_townships: Vec<String>,
}

/// The generated period: two full years.
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date")
}
pub const DAYS: i64 = 731;

const REQUEST_TYPES: [(&str, f64, f64); 5] = [
    // (type, share, time limit in hours)
    ("咨询", 0.35, 24.0),
    ("求助", 0.20, 72.0),
    ("投诉", 0.30, 120.0),
    ("举报", 0.05, 168.0),
    ("建议", 0.10, 240.0),
];

const CHANNELS: [(&str, f64); 5] = [
    ("电话", 0.55),
    ("网站", 0.10),
    ("微信", 0.15),
    ("APP", 0.10),
    ("小程序", 0.10),
];

/// Content categories (codes in the style of the GB/T 39666 classification) and their shares.
const CONTENT: [(&str, f64); 12] = [
    ("0101", 0.14), // 市容环卫
    ("0102", 0.10), // 噪声扰民
    ("0201", 0.12), // 物业管理
    ("0301", 0.10), // 交通出行
    ("0401", 0.09), // 劳动保障
    ("0501", 0.07), // 医疗卫生
    ("0601", 0.06), // 教育
    ("0701", 0.09), // 供水供电供气
    ("0801", 0.08), // 市场监管
    ("0901", 0.05), // 房屋征收
    ("1001", 0.06), // 社会保障
    ("1101", 0.04), // 公共安全
];

/// Service items: (code, name, is a 一件事 scenario, share).
const ITEMS: [(&str, &str, bool, f64); 13] = [
    ("YJS001", "出生一件事", true, 0.06),
    ("YJS002", "企业开办一件事", true, 0.07),
    ("YJS003", "退休一件事", true, 0.05),
    ("YJS004", "就业一件事", true, 0.05),
    ("YJS005", "二手房转移登记一件事", true, 0.06),
    ("YJS006", "身后一件事", true, 0.03),
    ("YJS007", "入学一件事", true, 0.04),
    ("ZW001", "居民身份证换领", false, 0.14),
    ("ZW002", "营业执照变更登记", false, 0.12),
    ("ZW003", "社会保障卡申领", false, 0.12),
    ("ZW004", "不动产登记", false, 0.10),
    ("ZW005", "医保费用报销", false, 0.09),
    ("ZW006", "住房公积金提取", false, 0.07),
];

/// Per-region behaviour behind the numbers: how fast work gets done and whether it drifts.
struct Behaviour {
    /// Multiplies handling times; > 1 is slower.
    slowness: f64,
    /// Extra slowness reached at the end of the period (0 for regions that do not drift).
    drift: f64,
    /// Multiplies the number of requests per resident.
    intensity: f64,
}

pub(crate) fn ts(t: NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_owned(),
        source,
    }
}

pub(crate) fn csv_writer(path: &Path) -> Result<csv::Writer<BufWriter<File>>, GenerateError> {
    let file = File::create(path).map_err(io_err(path))?;
    Ok(csv::Writer::from_writer(BufWriter::with_capacity(
        1 << 20,
        file,
    )))
}

fn rect_polygon(r: &[f64; 4]) -> serde_json::Value {
    json!({
        "type": "Polygon",
        "coordinates": [[[r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]], [r[0], r[1]]]],
    })
}

/// Splits `total` into integer parts proportional to `weights` (largest remainder), so the
/// parts sum exactly to the total.
pub fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<u64> = exact.iter().map(|e| e.floor() as u64).collect();
    let mut left = total - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

/// Generates the sample into `out` (created if missing) and returns its manifest.
pub fn generate(out: &Path, config: &Config) -> Result<Manifest, GenerateError> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let root = Rng::new(config.seed);
    let tree = build_tree(config.scale.fanout(), &mut root.fork(1));
    let grids: Vec<&Region> = tree.iter().filter(|r| r.level == "grid").collect();

    // Behaviour: counties vary a little; three random counties, the demo district and one of
    // its townships drift badly.
    let mut rng = root.fork(2);
    let counties: Vec<&Region> = tree.iter().filter(|r| r.level == "county").collect();
    let mut drifting_counties: Vec<String> = Vec::new();
    while drifting_counties.len() < 3 {
        let code = &counties[rng.below(counties.len())].code;
        if code != DEMO_DISTRICT && !drifting_counties.contains(code) {
            drifting_counties.push(code.clone());
        }
    }
    drifting_counties.push(DEMO_DISTRICT.to_owned());
    drifting_counties.sort();
    let drifting_townships = vec![format!("{DEMO_DISTRICT}002")];
    let drifting: Vec<String> = drifting_counties
        .iter()
        .chain(&drifting_townships)
        .cloned()
        .collect();
    let mut behaviour: HashMap<String, Behaviour> = HashMap::new();
    for r in &tree {
        if matches!(r.level, "county" | "township" | "community" | "grid") {
            let spread = if r.level == "grid" { 0.30 } else { 0.15 };
            behaviour.insert(
                r.code.clone(),
                Behaviour {
                    slowness: rng.lognormal(1.0, spread),
                    // The demo district drifts less than the others, so that its planted
                    // township stands out on the map.
                    drift: match r.code.as_str() {
                        DEMO_DISTRICT => 1.6,
                        code if drifting.iter().any(|d| d == code) => 2.5,
                        _ => 0.0,
                    },
                    intensity: rng.lognormal(1.0, 0.25),
                },
            );
        }
    }
    // Product of the behaviour of a grid cell and all its ancestors below the city.
    let grid_behaviour: Vec<(f64, f64, f64)> = grids
        .iter()
        .map(|g| {
            let community = &g.code[..12];
            [&g.code[..], community, &g.code[..9], &g.code[..6]]
                .iter()
                .fold((1.0, 0.0, 1.0), |(s, d, i), code| {
                    let b = &behaviour[*code];
                    (s * b.slowness, d + b.drift, i * b.intensity)
                })
        })
        .collect();

    // Population: each city's real 2023 residents split over its grid cells.
    let mut rng = root.fork(3);
    let mut residents = vec![0u64; grids.len()];
    for c in &CITIES {
        let idx: Vec<usize> = (0..grids.len())
            .filter(|&i| grids[i].code.starts_with(c.code))
            .collect();
        let weights: Vec<f64> = idx.iter().map(|_| rng.lognormal(1.0, 0.5)).collect();
        let total = (c.residents_2023_10k * 10_000.0).round() as u64;
        for (i, part) in idx.iter().zip(apportion(total, &weights)) {
            residents[*i] = part;
        }
    }

    write_regions(out, &tree)?;
    let path = out.join("population.csv");
    let mut w = csv_writer(&path)?;
    let werr = |source| GenerateError::Csv {
        path: path.clone(),
        source,
    };
    w.write_record(["grid_id", "community_code", "residents"])
        .map_err(werr)?;
    for (g, n) in grids.iter().zip(&residents) {
        let record: [&str; 3] = [&g.code, &g.code[..12], &n.to_string()];
        w.write_record(record).map_err(werr)?;
    }
    w.flush().map_err(io_err(&path))?;

    let orders = config.scale.work_orders();
    let applications = orders;
    let bar = if config.progress {
        ProgressBar::new((orders + applications) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {human_pos}/{human_len} rows ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );

    let day_weights = Weighted::new((0..DAYS).map(|d| {
        let date = first_day() + Duration::days(d);
        let season = 1.0 + 0.25 * ((d as f64 - 100.0) / 365.25 * std::f64::consts::TAU).sin();
        let weekday = if chrono::Datelike::weekday(&date).num_days_from_monday() >= 5 {
            0.6
        } else {
            1.0
        };
        season * weekday
    }));
    let hour_weights =
        Weighted::new((0..24).map(|h| if (8..21).contains(&h) { 1.0 } else { 0.08 }));
    let request_grids = Weighted::new(
        residents
            .iter()
            .zip(&grid_behaviour)
            .map(|(n, b)| *n as f64 * b.2),
    );
    let ctx = Ctx {
        grids: &grids,
        behaviour: &grid_behaviour,
        day_weights,
        hour_weights,
        request_grids,
    };

    let mut rows = std::collections::BTreeMap::new();
    rows.insert("population".to_owned(), grids.len());
    bar.set_message("12345 work orders");
    // The events draw from a stream of their own, so the orders are what they were before
    // the events existed.
    let events = write_work_orders(
        out,
        &ctx,
        orders,
        &mut root.fork(4),
        &mut root.fork(8),
        &bar,
    )?;
    rows.insert("work_orders".to_owned(), orders);
    rows.insert("work_order_events".to_owned(), events);
    bar.set_message("service applications");
    write_applications(out, &ctx, applications, &mut root.fork(5), &bar)?;
    rows.insert("service_applications".to_owned(), applications);
    bar.finish_and_clear();
    let county_behaviour: HashMap<String, (f64, f64)> = counties
        .iter()
        .map(|c| {
            let b = &behaviour[&c.code];
            (c.code.clone(), (b.slowness, b.drift))
        })
        .collect();
    rows.extend(departments::write_all(
        out,
        &departments::Inputs {
            ctx: &ctx,
            tree: &tree,
            residents: &residents,
            county_behaviour: &county_behaviour,
            orders,
            per_county_stations: config.scale != Scale::Small,
        },
        &root,
    )?);

    let buildings = write_buildings(out, &tree, config.scale, &mut root.fork(6))?;
    let manifest = Manifest {
        generator: concat!("databrain data-samples ", env!("CARGO_PKG_VERSION")),
        format: FORMAT_VERSION,
        scale: config.scale.as_str(),
        seed: config.seed,
        demo_district: DEMO_DISTRICT,
        first_day: first_day().to_string(),
        last_day: (first_day() + Duration::days(DAYS - 1)).to_string(),
        regions: tree.len(),
        grid_cells: grids.len(),
        residents: residents.iter().sum(),
        work_orders: orders,
        service_applications: applications,
        buildings,
        rows,
        drifting_counties,
        drifting_townships,
    };
    let path = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    std::fs::write(&path, text + "\n").map_err(io_err(&path))?;
    Ok(manifest)
}

pub(crate) struct Ctx<'a> {
    pub(crate) grids: &'a [&'a Region],
    pub(crate) behaviour: &'a [(f64, f64, f64)],
    pub(crate) day_weights: Weighted,
    pub(crate) hour_weights: Weighted,
    pub(crate) request_grids: Weighted,
}

/// One request from a resident: where, how that place behaves, and when.
pub(crate) struct Request<'a> {
    pub(crate) grid: &'a Region,
    pub(crate) slowness: f64,
    pub(crate) drift: f64,
    pub(crate) at: NaiveDateTime,
    /// Fraction of the generated period elapsed at `at`.
    pub(crate) progress: f64,
}

/// Advances the progress bar every 10,000 rows.
pub(crate) fn tick(bar: &ProgressBar, row: usize) {
    if row % 10_000 == 9_999 {
        bar.inc(10_000);
    }
}

impl<'a> Ctx<'a> {
    /// Draws a grid cell (weighted by residents and local intensity) and a time.
    pub(crate) fn request(&self, rng: &mut Rng) -> Request<'a> {
        let gi = self.request_grids.sample(rng);
        let (slowness, drift, _) = self.behaviour[gi];
        let (at, progress) = self.created(rng);
        Request {
            grid: self.grids[gi],
            slowness,
            drift,
            at,
            progress,
        }
    }

    pub(crate) fn end(&self) -> NaiveDateTime {
        (first_day() + Duration::days(DAYS))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
    }

    /// A creation time with seasonality, weekday and office-hour effects, and the fraction of
    /// the period elapsed at that time.
    pub(crate) fn created(&self, rng: &mut Rng) -> (NaiveDateTime, f64) {
        let day = self.day_weights.sample(rng) as i64;
        let hour = self.hour_weights.sample(rng) as i64;
        let second = rng.below(3600) as i64;
        let t = (first_day() + Duration::days(day))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            + Duration::hours(hour)
            + Duration::seconds(second);
        (t, day as f64 / DAYS as f64)
    }

    fn point_in(&self, g: &Region, rng: &mut Rng) -> (f64, f64) {
        (
            rng.range(g.rect[0], g.rect[2]),
            rng.range(g.rect[1], g.rect[3]),
        )
    }
}

fn write_regions(out: &Path, tree: &[Region]) -> Result<(), GenerateError> {
    let path = out.join("regions.csv");
    let mut w = csv_writer(&path)?;
    let werr = |source| GenerateError::Csv {
        path: path.clone(),
        source,
    };
    w.write_record(["code", "name", "level", "parent_code", "lon", "lat"])
        .map_err(werr)?;
    for r in tree {
        let [lon, lat] = r.centre();
        let record: [&str; 6] = [
            &r.code,
            &r.name,
            r.level,
            r.parent.as_deref().unwrap_or(""),
            &format!("{lon:.6}"),
            &format!("{lat:.6}"),
        ];
        w.write_record(record).map_err(werr)?;
    }
    w.flush().map_err(io_err(&path))?;

    let path = out.join("regions.geojson");
    let features: Vec<serde_json::Value> = tree
        .iter()
        .map(|r| {
            json!({
                "type": "Feature",
                "id": r.code,
                "properties": { "code": r.code, "name": r.name, "level": r.level, "parent_code": r.parent },
                "geometry": rect_polygon(&r.rect),
            })
        })
        .collect();
    let fc = json!({ "type": "FeatureCollection", "features": features });
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut bw = BufWriter::new(file);
    serde_json::to_writer(&mut bw, &fc).map_err(|e| GenerateError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    bw.flush().map_err(io_err(&path))
}

/// The organisation a content category goes to in a county (`<county>/<department>`).
pub fn department_for(county: &str, content_code: &str) -> String {
    let dept = match content_code.get(..2).unwrap_or("") {
        "01" => "城管局",
        "02" | "09" => "住建局",
        "03" => "交通运输局",
        "04" | "10" => "人社局",
        "05" => "卫健委",
        "06" => "教育局",
        "07" => "公用事业局",
        "08" => "市场监管局",
        "11" => "公安局",
        _ => "政府办公室",
    };
    format!("{county}/{dept}")
}

/// The names of the content categories (codes in the style of GB/T 39666, synthetic).
pub const CONTENT_NAMES: [(&str, &str); 12] = [
    ("0101", "市容环卫"),
    ("0102", "噪声扰民"),
    ("0201", "物业管理"),
    ("0301", "交通出行"),
    ("0401", "劳动保障"),
    ("0501", "医疗卫生"),
    ("0601", "教育"),
    ("0701", "供水供电供气"),
    ("0801", "市场监管"),
    ("0901", "房屋征收"),
    ("1001", "社会保障"),
    ("1101", "公共安全"),
];

/// One order as the generator drew it, for its events.
struct Drawn<'a> {
    id: &'a str,
    created: NaiveDateTime,
    due: NaiveDateTime,
    closed: Option<NaiveDateTime>,
    satisfaction: Option<usize>,
    repeat_of: Option<&'a str>,
    content: &'a str,
    grid: &'a Region,
    trouble: f64,
}

/// One event of an order as written: time, kind, organisation, new time limit, the order a
/// duplicate is merged into, the return visit's rating.
type EventRow<'a> = (
    NaiveDateTime,
    &'static str,
    String,
    Option<NaiveDateTime>,
    Option<&'a str>,
    Option<usize>,
);

/// Writes one order's events (accepted, dispatched, perhaps returned and dispatched again,
/// acknowledged, perhaps extended or merged into a duplicate's original, closed, perhaps
/// visited unhappily and reopened, closed again, visited) and returns how many. The last
/// time limit and the last closure are the order row's own, so on-time closure computed
/// from the events equals the row's.
fn write_order_events(
    w: &mut csv::Writer<BufWriter<File>>,
    o: &Drawn,
    end: NaiveDateTime,
    rng: &mut Rng,
) -> Result<usize, csv::Error> {
    let county = &o.grid.code[..6];
    let org = department_for(county, o.content);
    let stop = o.closed.unwrap_or(end.min(o.due.max(o.created)));
    let span_s = (stop - o.created).num_seconds().max(0);
    // A point `f` of the way from creation to the closure (or, open, to now or the limit).
    let at = |f: f64| o.created + Duration::seconds((span_s as f64 * f) as i64);
    let mut rows: Vec<EventRow> = Vec::new();
    rows.push((o.created, "accept", "12345热线".into(), None, None, None));
    let returned = rng.chance(0.03 + 0.04 * o.trouble);
    // An extension moves the limit to the row's; the first dispatch had an earlier one.
    let extension_h = if rng.chance(0.05) {
        24 * (1 + rng.below(3) as i64)
    } else {
        0
    };
    let first_due = if o.due - Duration::hours(extension_h) > o.created + Duration::hours(1) {
        o.due - Duration::hours(extension_h)
    } else {
        o.due
    };
    if returned {
        let other = department_for(county, CONTENT_NAMES[rng.below(CONTENT_NAMES.len())].0);
        let wrong = if other == org {
            format!("{county}/政府办公室")
        } else {
            other
        };
        rows.push((
            at(0.02),
            "dispatch",
            wrong.clone(),
            Some(first_due),
            None,
            None,
        ));
        rows.push((at(0.08), "return", wrong, None, None, None));
        rows.push((
            at(0.12),
            "dispatch",
            org.clone(),
            Some(first_due),
            None,
            None,
        ));
    } else {
        rows.push((
            at(0.02),
            "dispatch",
            org.clone(),
            Some(first_due),
            None,
            None,
        ));
    }
    rows.push((at(0.18), "acknowledge", org.clone(), None, None, None));
    if let Some(original) = o.repeat_of.filter(|_| rng.chance(0.5)) {
        rows.push((
            at(0.2),
            "merge",
            "12345热线".into(),
            None,
            Some(original),
            None,
        ));
    }
    if first_due != o.due {
        rows.push((at(0.3), "extend", org.clone(), Some(o.due), None, None));
    }
    if let Some(closed) = o.closed {
        if rng.chance(0.03 + 0.06 * o.trouble) && span_s > 600 {
            rows.push((at(0.55), "close", org.clone(), None, None, None));
            rows.push((
                at(0.6),
                "visit",
                "12345热线".into(),
                None,
                None,
                Some(1 + rng.below(2)),
            ));
            rows.push((at(0.62), "reopen", "12345热线".into(), None, None, None));
        }
        rows.push((closed, "close", org.clone(), None, None, None));
        if let Some(s) = o.satisfaction {
            let visit = (closed + Duration::hours(2 + rng.below(46) as i64))
                .min(end - Duration::seconds(1))
                .max(closed);
            rows.push((visit, "visit", "12345热线".into(), None, None, Some(s)));
        }
    }
    for (seq, (t, kind, org, due, merged, sat)) in rows.iter().enumerate() {
        let record: [&str; 10] = [
            o.id,
            &(seq + 1).to_string(),
            &ts(*t),
            kind,
            org,
            &due.map(ts).unwrap_or_default(),
            merged.unwrap_or(""),
            &sat.map(|s| s.to_string()).unwrap_or_default(),
            &o.grid.code[..12],
            &o.grid.code,
        ];
        w.write_record(record)?;
    }
    Ok(rows.len())
}

/// Writes the work orders and their events; returns how many events.
fn write_work_orders(
    out: &Path,
    ctx: &Ctx,
    n: usize,
    rng: &mut Rng,
    events_rng: &mut Rng,
    bar: &ProgressBar,
) -> Result<usize, GenerateError> {
    let events_path = out.join("work_order_events.csv");
    let mut events = csv_writer(&events_path)?;
    let eerr = |source| GenerateError::Csv {
        path: events_path.clone(),
        source,
    };
    events
        .write_record([
            "order_id",
            "seq",
            "event_at",
            "kind",
            "org",
            "due_at",
            "merged_into",
            "satisfaction",
            "community_code",
            "grid_id",
        ])
        .map_err(eerr)?;
    let mut event_count = 0;
    let path = out.join("work_orders.csv");
    let mut w = csv_writer(&path)?;
    let werr = |source| GenerateError::Csv {
        path: path.clone(),
        source,
    };
    w.write_record([
        "order_id",
        "created_at",
        "due_at",
        "closed_at",
        "request_type",
        "content_code",
        "channel",
        "community_code",
        "grid_id",
        "lon",
        "lat",
        "satisfaction",
        "repeat_of",
    ])
    .map_err(werr)?;
    let types = Weighted::new(REQUEST_TYPES.iter().map(|t| t.1));
    // The last order of each grid cell, which a repeat request refers back to.
    let grid_index: HashMap<&str, usize> = ctx
        .grids
        .iter()
        .enumerate()
        .map(|(i, g)| (g.code.as_str(), i))
        .collect();
    let mut last_order: Vec<Option<usize>> = vec![None; ctx.grids.len()];
    let channels = Weighted::new(CHANNELS.iter().map(|c| c.1));
    let contents = Weighted::new(CONTENT.iter().map(|c| c.1));
    let end = ctx.end();
    for i in 0..n {
        let Request {
            grid: g,
            slowness,
            drift,
            at: created,
            progress,
        } = ctx.request(rng);
        let (kind, _, limit_h) = REQUEST_TYPES[types.sample(rng)];
        let due = created + Duration::minutes((limit_h * 60.0) as i64);
        let median_h = limit_h * 0.32 * slowness * (1.0 + drift * progress * progress);
        let hours = rng.lognormal(median_h, 0.55).max(0.05);
        let closed = created + Duration::seconds((hours * 3600.0) as i64);
        let never = rng.chance(0.004);
        let closed = (!never && closed < end).then_some(closed);
        let satisfaction = match closed {
            Some(c) if rng.chance(0.7) => {
                let happy = if c <= due { 0.9 } else { 0.5 };
                Some(if rng.chance(happy) {
                    4 + rng.below(2)
                } else {
                    1 + rng.below(3)
                })
            }
            _ => None,
        };
        let (lon, lat) = ctx.point_in(g, rng);
        // Requests repeat when matters stay unresolved, more so where handling drifts.
        let slot = &mut last_order[grid_index[g.code.as_str()]];
        let repeat_p = 0.05 + 0.08 * drift * progress * progress;
        let repeat_of = slot.filter(|_| rng.chance(repeat_p));
        *slot = Some(i);
        let id = format!("WO{i:09}");
        let content = CONTENT[contents.sample(rng)].0;
        let repeat_id = repeat_of.map(|j| format!("WO{j:09}"));
        event_count += write_order_events(
            &mut events,
            &Drawn {
                id: &id,
                created,
                due,
                closed,
                satisfaction,
                repeat_of: repeat_id.as_deref(),
                content,
                grid: g,
                trouble: drift * progress * progress,
            },
            end,
            events_rng,
        )
        .map_err(eerr)?;
        let record: [&str; 13] = [
            &id,
            &ts(created),
            &ts(due),
            &closed.map(ts).unwrap_or_default(),
            kind,
            content,
            CHANNELS[channels.sample(rng)].0,
            &g.code[..12],
            &g.code,
            &format!("{lon:.6}"),
            &format!("{lat:.6}"),
            &satisfaction.map(|s| s.to_string()).unwrap_or_default(),
            &repeat_id.unwrap_or_default(),
        ];
        w.write_record(record).map_err(werr)?;
        tick(bar, i);
    }
    bar.inc((n % 10_000) as u64);
    w.flush().map_err(io_err(&path))?;
    events.flush().map_err(io_err(&events_path))?;
    Ok(event_count)
}

fn write_applications(
    out: &Path,
    ctx: &Ctx,
    n: usize,
    rng: &mut Rng,
    bar: &ProgressBar,
) -> Result<(), GenerateError> {
    let path = out.join("service_applications.csv");
    let mut w = csv_writer(&path)?;
    let werr = |source| GenerateError::Csv {
        path: path.clone(),
        source,
    };
    w.write_record([
        "app_id",
        "item_code",
        "item_name",
        "one_thing",
        "joint_handled",
        "online",
        "submitted_at",
        "due_at",
        "completed_at",
        "rating",
        "rectified_at",
        "community_code",
        "grid_id",
    ])
    .map_err(werr)?;
    let items = Weighted::new(ITEMS.iter().map(|i| i.3));
    let end = ctx.end();
    for i in 0..n {
        let Request {
            grid: g,
            slowness,
            drift,
            at: submitted,
            progress,
        } = ctx.request(rng);
        let (code, name, one_thing, _) = ITEMS[items.sample(rng)];
        // Joint handling and online submission improve over the plan period, less so where
        // things drift.
        let joint_p = (0.62 + 0.25 * progress) / slowness.sqrt() - 0.2 * drift * progress;
        let joint = one_thing && rng.chance(joint_p.clamp(0.05, 0.98));
        let online = rng.chance((0.55 + 0.25 * progress).clamp(0.0, 0.95));
        let due = submitted + Duration::hours(120);
        let hours = rng
            .lognormal(40.0 * slowness * (1.0 + drift * progress), 0.6)
            .max(0.1);
        let completed = submitted + Duration::seconds((hours * 3600.0) as i64);
        let completed = (completed < end && !rng.chance(0.01)).then_some(completed);
        let rating = match completed {
            Some(c) if rng.chance(0.6) => {
                let happy = if c <= due { 0.93 } else { 0.6 };
                Some(if rng.chance(happy) {
                    4 + rng.below(2)
                } else {
                    1 + rng.below(3)
                })
            }
            _ => None,
        };
        // Bad ratings (差评) are followed up within days; drifting places let some slide.
        let rectified = match (rating, completed) {
            (Some(r), Some(c)) if r <= 2 && rng.chance(0.97 - 0.15 * drift * progress) => {
                Some(c + Duration::hours(2 + rng.below(120) as i64))
            }
            _ => None,
        }
        .filter(|r| *r < end);
        let record: [&str; 13] = [
            &format!("SA{i:09}"),
            code,
            name,
            if one_thing { "true" } else { "false" },
            if joint { "true" } else { "false" },
            if online { "true" } else { "false" },
            &ts(submitted),
            &ts(due),
            &completed.map(ts).unwrap_or_default(),
            &rating.map(|r| r.to_string()).unwrap_or_default(),
            &rectified.map(ts).unwrap_or_default(),
            &g.code[..12],
            &g.code,
        ];
        w.write_record(record).map_err(werr)?;
        tick(bar, i);
    }
    bar.inc((n % 10_000) as u64);
    w.flush().map_err(io_err(&path))
}

/// Procedural blocks on a plot grid inside every grid cell of the demo district: rectangular
/// footprints, taller towards the district centre. Returns how many were written.
fn write_buildings(
    out: &Path,
    tree: &[Region],
    scale: Scale,
    rng: &mut Rng,
) -> Result<usize, GenerateError> {
    let district = tree
        .iter()
        .find(|r| r.code == DEMO_DISTRICT)
        .expect("demo district exists");
    let centre = district.centre();
    let [dlon, dlat] = degrees_per_m(centre[1]);
    let spacing = scale.plot_spacing_m();
    let mut features = Vec::new();
    for g in tree
        .iter()
        .filter(|r| r.level == "grid" && r.code.starts_with(DEMO_DISTRICT))
    {
        let width_m = (g.rect[2] - g.rect[0]) / dlon;
        let height_m = (g.rect[3] - g.rect[1]) / dlat;
        let (nx, ny) = (
            (width_m / spacing).floor() as usize,
            (height_m / spacing).floor() as usize,
        );
        let (mx, my) = (
            (width_m - nx as f64 * spacing) / 2.0,
            (height_m - ny as f64 * spacing) / 2.0,
        );
        for ix in 0..nx {
            for iy in 0..ny {
                if !rng.chance(0.75) {
                    continue;
                }
                let cx = g.rect[0] + (mx + (ix as f64 + 0.5) * spacing) * dlon;
                let cy = g.rect[1] + (my + (iy as f64 + 0.5) * spacing) * dlat;
                let w = rng.range(0.35, 0.8) * spacing / 2.0;
                let h = rng.range(0.35, 0.8) * spacing / 2.0;
                let dist_m =
                    (((cx - centre[0]) / dlon).powi(2) + ((cy - centre[1]) / dlat).powi(2)).sqrt();
                let height = (rng.lognormal(15.0, 0.5) * (1.0 + 4.0 * (-dist_m / 1200.0).exp()))
                    .clamp(4.0, 250.0);
                let height = (height * 10.0).round() / 10.0;
                let id = format!("{DEMO_DISTRICT}-B{:06}", features.len() + 1);
                let ring = [
                    [cx - w * dlon, cy - h * dlat],
                    [cx + w * dlon, cy - h * dlat],
                    [cx + w * dlon, cy + h * dlat],
                    [cx - w * dlon, cy + h * dlat],
                    [cx - w * dlon, cy - h * dlat],
                ];
                let ring: Vec<[f64; 2]> = ring
                    .iter()
                    .map(|p| [(p[0] * 1e7).round() / 1e7, (p[1] * 1e7).round() / 1e7])
                    .collect();
                features.push(json!({
                    "type": "Feature",
                    "id": id,
                    "properties": {
                        "building_id": id,
                        "grid_id": g.code,
                        "community_code": &g.code[..12],
                        "height_m": height,
                        "levels": (height / 3.0).round().max(1.0),
                    },
                    "geometry": { "type": "Polygon", "coordinates": [ring] },
                }));
            }
        }
    }
    let n = features.len();
    let path = out.join("buildings.geojson");
    let fc = json!({ "type": "FeatureCollection", "name": "demo district buildings", "features": features });
    let file = File::create(&path).map_err(io_err(&path))?;
    let mut bw = BufWriter::new(file);
    serde_json::to_writer(&mut bw, &fc).map_err(|e| GenerateError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    bw.flush().map_err(io_err(&path))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_sums_exactly() {
        let parts = apportion(1001, &[1.0, 1.0, 1.0]);
        assert_eq!(parts.iter().sum::<u64>(), 1001);
        assert_eq!(parts, [334, 334, 333]);
    }

    #[test]
    fn scales_parse() {
        assert_eq!(Scale::parse("small"), Some(Scale::Small));
        assert_eq!(Scale::parse("huge"), None);
        assert_eq!(Scale::Large.work_orders(), 10_000_000);
    }
}
