//! `databrain-bench catalogue`: the indicator system's speed on a generated dataset, written to
//! `BENCHMARKS.md`. A benchmark, not a test: it measures and reports, and never fails on a
//! target.
//!
//! It measures: the full-catalogue recompute (every indicator at every level it allows,
//! monthly, or its finest of quarter and year, over one year); p50/p95 of single-indicator
//! queries per level; our query against the same SQL run directly in DuckDB (in process, and
//! through the Python `duckdb` package when installed) and the same computation in pandas;
//! ingest against DuckDB's own `read_csv` of the same files; peak resident memory.

use anyhow::{Context, Result};
use indicators::{Grain, IndicatorQuery, Level};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct BenchArgs {
    pub dir: PathBuf,
    pub scale: data_samples::Scale,
    pub seed: u64,
    pub year: i32,
    pub rounds: usize,
    pub python: String,
    pub out: PathBuf,
}

pub(crate) fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub(crate) fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 50.0)
}

/// SSIM of two pictures in grey, 8×8 windows (`image-compare`'s MSSIMSimple): the stream's
/// codecs against the raw frame, the twin's impostors against full geometry.
pub(crate) fn grey_ssim(a: &image::GrayImage, b: &image::GrayImage) -> Result<f64> {
    Ok(
        image_compare::gray_similarity_structure(&image_compare::Algorithm::MSSIMSimple, a, b)?
            .score,
    )
}

/// Peak resident set size of this process, MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB memory")
}

fn remove_db(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("duckdb.wal"));
}

/// One admin token for the province, without rate limits: what the benchmarks' clients send.
pub fn bench_auth(token: &str) -> Result<server::auth::Auth> {
    use server::auth::{Auth, Principal, Role};
    let mut auth = Auth::default();
    auth.rate_per_s = 1e6;
    auth.burst = 1e6;
    auth.add(
        token,
        Principal {
            name: "bench".into(),
            role: Role::Admin,
            scope: "32".into(),
            org: None,
        },
    )?;
    Ok(auth)
}

/// Replaces the section `name` of a Markdown file (between `<!-- name -->` and
/// `<!-- /name -->`), appending it when absent.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let block = format!("{open}\n{body}{close}\n");
    let text = match (existing.find(&open), existing.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            format!(
                "{}{block}{}",
                &existing[..a],
                existing[b + close.len()..].trim_start_matches('\n')
            )
        }
        _ => format!(
            "{}\n{block}",
            existing.trim_end_matches('\n').to_owned() + "\n"
        ),
    };
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: &BenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let sample = args.dir.join(format!("sample-{}", args.scale.as_str()));
    let current = std::fs::read_to_string(sample.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|m| {
            m["format"].as_u64() == Some(u64::from(data_samples::FORMAT_VERSION))
                && m["seed"].as_u64() == Some(args.seed)
        });
    let mut notes: Vec<String> = Vec::new();
    if !current {
        let started = Instant::now();
        data_samples::generate(
            &sample,
            &data_samples::Config {
                scale: args.scale,
                seed: args.seed,
                progress: true,
            },
        )?;
        notes.push(format!(
            "generating the sample took {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sample.join("manifest.json"))?)?;

    // Ingest, then DuckDB's own read_csv of the same fact files into a fresh file.
    let db = args
        .dir
        .join(format!("bench-{}.duckdb", args.scale.as_str()));
    remove_db(&db);
    eprintln!("ingesting {}", sample.display());
    let started = Instant::now();
    analytics::Engine::open(&db)?.ingest_dir(&sample)?;
    let ingest_s = started.elapsed().as_secs_f64();
    let baseline_db = args.dir.join("bench-read_csv.duckdb");
    remove_db(&baseline_db);
    let read_csv_s = {
        let baseline = analytics::Engine::open(&baseline_db)?;
        let started = Instant::now();
        for t in indicators::facts::FACT_TABLES
            .iter()
            .filter(|t| t.source == indicators::facts::Source::File)
        {
            let path = sample.join(format!("{}.csv", t.name));
            baseline.with_conn(|c| {
                c.execute_batch(&format!(
                    "CREATE TABLE raw_{} AS SELECT * FROM read_csv('{}', header = true)",
                    t.name,
                    path.display()
                ))
                .map_err(|e| analytics::AnalyticsError::Db {
                    context: format!("read_csv baseline of {}", t.name),
                    source: e,
                })
            })?;
        }
        started.elapsed().as_secs_f64()
    };
    remove_db(&baseline_db);

    let engine = analytics::Engine::open_read_only(&db, analytics::OpenMode::ReadOnly)?;
    let catalogue = engine.catalogue().clone();
    let year = args.year.to_string();

    // Full-catalogue recompute, rounds times; each query's latency by level.
    let mut per_level: BTreeMap<Level, Vec<f64>> = BTreeMap::new();
    let mut recompute_s = Vec::new();
    let mut queries = 0;
    for round in 0..args.rounds {
        let started = Instant::now();
        for ind in &catalogue.indicators {
            let Some(grain) = [Grain::Month, Grain::Quarter, Grain::Year]
                .into_iter()
                .find(|g| ind.grains.contains(g))
            else {
                continue;
            };
            let (from, to) = match grain {
                Grain::Month => (format!("{year}-01"), format!("{year}-12")),
                Grain::Quarter => (format!("{year}-Q1"), format!("{year}-Q4")),
                _ => (year.clone(), year.clone()),
            };
            for &level in &ind.levels {
                let q = IndicatorQuery {
                    level,
                    grain,
                    from: Some(from.clone()),
                    to: Some(to.clone()),
                    region: None,
                };
                let t = Instant::now();
                engine.values(&analytics::Audience::trusted(), ind, &q)?;
                per_level
                    .entry(level)
                    .or_default()
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                if round == 0 {
                    queries += 1;
                }
            }
        }
        recompute_s.push(started.elapsed().as_secs_f64());
    }

    // Our query against the same SQL run directly, for one indicator at city level.
    let on_time = catalogue
        .get("hotline_on_time_rate")
        .context("hotline_on_time_rate is in the catalogue")?;
    let city_month = IndicatorQuery {
        level: Level::City,
        grain: Grain::Month,
        from: Some(format!("{year}-01")),
        to: Some(format!("{year}-12")),
        region: None,
    };
    // The exact SQL `values` runs (widened by a year for the comparisons, from the cube),
    // the asked year alone from the cube, and the asked year from the fact rows.
    let exact = engine.values_sql(on_time, &city_month)?;
    let asked = engine.compiled_sql(on_time, &city_month)?;
    let raw_sql = indicators::sql::compile(on_time, &city_month)?;
    let mut ours = Vec::new();
    let (mut direct, mut direct_asked, mut direct_raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        engine.values(&analytics::Audience::trusted(), on_time, &city_month)?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        for (sql, into) in [
            (&exact, &mut direct),
            (&asked, &mut direct_asked),
            (&raw_sql, &mut direct_raw),
        ] {
            let t = Instant::now();
            engine.run_compiled(sql)?;
            into.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let ours_ms = median(&mut ours);
    let direct_ms = median(&mut direct);
    let direct_asked_ms = median(&mut direct_asked);
    let direct_raw_ms = median(&mut direct_raw);
    let rss = peak_rss_mib();
    drop(engine);

    // The same SQL through the Python duckdb package, and the computation in pandas.
    let sql_file = args.dir.join("bench-query.sql");
    std::fs::write(&sql_file, &exact.sql)?;
    // The comparison script is compiled in, so the benchmark runs from any directory.
    let script = args.dir.join("compare.py");
    std::fs::write(&script, include_str!("../../../../bench/compare.py"))?;
    let python: serde_json::Value = std::process::Command::new(&args.python)
        .arg(&script)
        .arg("--db")
        .arg(&db)
        .arg("--csv")
        .arg(sample.join("work_orders.csv"))
        .arg("--sql")
        .arg(&sql_file)
        .arg("--params")
        .arg(serde_json::to_string(&exact.params)?)
        .arg("--year")
        .arg(&year)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_else(|| {
            serde_json::json!({ "duckdb_error": format!("{} {} did not run", args.python, script.display()) })
        });

    // The table.
    let mut t = String::new();
    writeln!(t, "## The indicator system\n")?;
    writeln!(
        t,
        "Written by `databrain-bench catalogue --scale {} --seed {} --year {}` on {} ({}).\n",
        args.scale.as_str(),
        args.seed,
        args.year,
        machine(),
        chrono::Local::now().format("%Y-%m-%d %H:%M")
    )?;
    writeln!(
        t,
        "Data: {} work orders, {} service applications, {} grid cells (`{}`).\n",
        manifest["work_orders"],
        manifest["service_applications"],
        manifest["grid_cells"],
        sample.display()
    )?;
    writeln!(t, "| measure | value | target |")?;
    writeln!(t, "|---|---|---|")?;
    let mut rec = recompute_s.clone();
    writeln!(
        t,
        "| full-catalogue recompute ({queries} queries: every indicator × level, {year} monthly or quarterly), median of {} | {:.2} s | |",
        args.rounds,
        median(&mut rec)
    )?;
    for (level, samples) in per_level.iter_mut() {
        let target = if *level == Level::City {
            "p95 ≤ 50 ms"
        } else {
            ""
        };
        writeln!(
            t,
            "| single-indicator query at {level}: p50 / p95 ({} queries) | {:.1} / {:.1} ms | {target} |",
            samples.len(),
            percentile(samples, 50.0),
            percentile(samples, 95.0)
        )?;
    }
    writeln!(
        t,
        "| hotline_on_time_rate, city × month {year}: `Engine::values` (with comparisons and ranks; plans cached per connection) | {ours_ms:.1} ms | |"
    )?;
    writeln!(
        t,
        "| the SQL it runs (two years, for the comparisons), prepared afresh and run directly in process | {direct_ms:.1} ms | |"
    )?;
    writeln!(
        t,
        "| overhead: `Engine::values` ÷ its SQL run directly | {:.2}× | ≤ 1.2× |",
        ours_ms / direct_ms
    )?;
    writeln!(
        t,
        "| the asked year alone: from the cube / from the fact rows | {direct_asked_ms:.1} / {direct_raw_ms:.1} ms | |"
    )?;
    match python.get("duckdb_ms").and_then(|v| v.as_f64()) {
        Some(ms) => writeln!(
            t,
            "| the same SQL in Python duckdb {} on the same file (target: ours ≤ 1.2× this) | {ms:.1} ms (ours is {:.2}× that) | |",
            python["duckdb_version"].as_str().unwrap_or("?"),
            ours_ms / ms
        )?,
        None => writeln!(
            t,
            "| the SQL in Python duckdb | not run: {} | |",
            python["duckdb_error"].as_str().unwrap_or("unknown")
        )?,
    }
    match python.get("pandas_ms").and_then(|v| v.as_f64()) {
        Some(ms) => writeln!(
            t,
            "| the same computation in pandas {} (CSV read {:.0} ms not counted) | {ms:.1} ms ({:.1}× slower than ours) | ≥ 10× |",
            python["pandas_version"].as_str().unwrap_or("?"),
            python["pandas_load_ms"].as_f64().unwrap_or(f64::NAN),
            ms / ours_ms
        )?,
        None => writeln!(
            t,
            "| the same computation in pandas | not run: {} | |",
            python["pandas_error"].as_str().unwrap_or("unknown")
        )?,
    }
    writeln!(
        t,
        "| ingest (checks, derived tables and the cube included) | {ingest_s:.1} s | |"
    )?;
    writeln!(
        t,
        "| DuckDB `read_csv` of the same fact files | {read_csv_s:.1} s | |"
    )?;
    writeln!(
        t,
        "| ingest ÷ `read_csv` | {:.2}× | ≤ 1.3× |",
        ingest_s / read_csv_s
    )?;
    writeln!(
        t,
        "| peak resident memory (this process, before Python) | {} | ≤ 4 GiB |",
        rss.map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    )?;
    for n in &notes {
        writeln!(t, "\n{n}.")?;
    }
    // Its own section, so the twin's benchmark (another section) survives a rerun.
    write_section(&args.out, "indicators", &t)?;
    print!("{t}");
    Ok(())
}
