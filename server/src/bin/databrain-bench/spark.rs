//! `databrain-bench spark`: one catalogue on two engines over the same rows, written to
//! `BENCHMARKS.md`. For each scale it generates the sample (or reuses it), ingests it into a
//! DuckDB file, exports the history as partitioned Parquet, and then, in one run:
//!
//! - the full catalogue (every indicator at city and at county level, monthly or its finest
//!   grain, over the whole history) on DuckDB from the fact rows, on DuckDB as the server
//!   answers (from the cube), and on a Spark standalone cluster (a master and `workers`
//!   workers, separate processes on loopback, started here) from the Parquet history; four
//!   queries in flight at a time on each, as the server's clients would have;
//! - the cube built on each: `rebuild_cube` in DuckDB, `cube_from_spark` on the cluster (its
//!   time on the cluster and its load into the serving file);
//! - fact rows per second per core: the rows of every query's fact tables, over the wall
//!   time and the cores each engine had.
//!
//! A benchmark, not a test: it reports, never fails on a target. It does check that both
//! engines gave the same number of rows for every query (the conformance test checks values).

use crate::catalogue::{ensure_sample, machine, remove_db, write_section};
use analytics::spark::{Cluster, Spark, SparkConfig};
use analytics::{Audience, Engine, IndicatorValue};
use anyhow::{Context, Result, bail};
use indicators::{Grain, Indicator, IndicatorQuery, Level};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

pub struct SparkBenchArgs {
    pub dir: PathBuf,
    pub scales: Vec<data_samples::Scale>,
    pub seed: u64,
    pub workers: usize,
    pub cores: usize,
    pub memory: String,
    pub python: PathBuf,
    pub out: PathBuf,
}

/// What one scale measured.
struct Measured {
    scale: &'static str,
    spark_version: String,
    orders: u64,
    history_rows: u64,
    ingest_s: f64,
    export_s: f64,
    history_mib: f64,
    /// Per level: (queries, fact rows read, DuckDB from facts s, DuckDB served s, Spark s).
    levels: Vec<(Level, usize, u64, f64, f64, f64)>,
    duck_cube_s: f64,
    spark_cube_s: f64,
    spark_cube_load_s: f64,
}

fn catalogue_queries(engine: &Engine, level: Level) -> Vec<(Indicator, IndicatorQuery)> {
    engine
        .catalogue()
        .indicators
        .iter()
        .filter(|ind| ind.levels.contains(&level))
        .map(|ind| {
            let grain = if ind.grains.contains(&Grain::Month) {
                Grain::Month
            } else {
                *ind.grains.first().expect("every indicator has a grain")
            };
            let q = IndicatorQuery {
                level,
                grain,
                from: None,
                to: None,
                region: None,
            };
            (ind.clone(), q)
        })
        .collect()
}

/// Runs the queries four at a time; the wall time and each query's row count.
fn timed(
    queries: &[(Indicator, IndicatorQuery)],
    run: impl Fn(&Indicator, &IndicatorQuery) -> analytics::Result<Vec<IndicatorValue>> + Sync,
) -> Result<(f64, Vec<usize>)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let counted: Vec<analytics::Result<(usize, usize)>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((ind, q)) = queries.get(i) else {
                            return out;
                        };
                        out.push(run(ind, q).map(|rows| (i, rows.len())));
                    }
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("a benchmark client panicked"))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut rows = vec![0; queries.len()];
    for c in counted {
        let (i, n) = c?;
        rows[i] = n;
    }
    Ok((wall, rows))
}

fn dir_mib(dir: &Path) -> f64 {
    fn walk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => 0,
            })
            .sum()
    }
    walk(dir) as f64 / (1024.0 * 1024.0)
}

fn one_scale(
    args: &SparkBenchArgs,
    scale: data_samples::Scale,
    cluster: &Cluster,
) -> Result<Measured> {
    let name = scale.as_str();
    let sample = args.dir.join(format!("sample-{name}"));
    ensure_sample(&sample, scale, args.seed)?;
    let db = args.dir.join(format!("spark-{name}.duckdb"));
    remove_db(&db);
    eprintln!("ingesting into {}", db.display());
    let started = Instant::now();
    let duck = Engine::open(&db)?;
    duck.ingest_dir(&sample)?;
    let ingest_s = started.elapsed().as_secs_f64();
    let history = args.dir.join(format!("history-{name}"));
    eprintln!("exporting the history to {}", history.display());
    let started = Instant::now();
    let manifest = duck.export_history(&history)?;
    let export_s = started.elapsed().as_secs_f64();
    let history_rows: u64 = manifest
        .tables
        .iter()
        .filter(|(t, _)| t.as_str() != "regions")
        .map(|(_, t)| t.rows)
        .sum();
    let rows_of = |fact: &str| manifest.tables.get(fact).map_or(0, |t| t.rows);

    let mut config = SparkConfig::new(cluster.master(), &history, &args.python);
    config.min_executors = args.workers;
    let spark = Arc::new(Spark::connect(config)?);
    if spark.executors() < args.workers {
        bail!(
            "{} executors registered, {} asked for",
            spark.executors(),
            args.workers
        );
    }
    let on_spark = Engine::on_spark(spark.clone())?;
    duck.snapshot()?;
    let audience = Audience::trusted();

    let mut levels = Vec::new();
    for level in [Level::City, Level::County] {
        let queries = catalogue_queries(&duck, level);
        let read: u64 = queries
            .iter()
            .map(|(ind, _)| {
                let mut facts: Vec<&str> = [&ind.numerator, &ind.denominator]
                    .into_iter()
                    .flatten()
                    .map(|m| m.fact)
                    .collect();
                facts.dedup();
                facts.into_iter().map(rows_of).sum::<u64>()
            })
            .sum();
        eprintln!("{} queries at {} level", queries.len(), level.as_str());
        let (facts_s, facts_rows) =
            timed(&queries, |ind, q| duck.values_from_facts(&audience, ind, q))?;
        let (served_s, served_rows) = timed(&queries, |ind, q| duck.values(&audience, ind, q))?;
        // Each level's run starts with the driver's row cache empty: one statement answers
        // every level, so without this the county run would read the city run's rows.
        spark.forget_rows();
        let (spark_s, spark_rows) = timed(&queries, |ind, q| on_spark.values(&audience, ind, q))?;
        for (i, (ind, _)) in queries.iter().enumerate() {
            if facts_rows[i] != spark_rows[i] || facts_rows[i] != served_rows[i] {
                bail!(
                    "{} at {} level: {} rows from DuckDB's facts, {} from its cube, {} from Spark",
                    ind.id,
                    level.as_str(),
                    facts_rows[i],
                    served_rows[i],
                    spark_rows[i]
                );
            }
        }
        levels.push((level, queries.len(), read, facts_s, served_s, spark_s));
    }

    eprintln!("building the cube in DuckDB");
    let duck_cube_s = duck.rebuild_cube()?.as_secs_f64();
    eprintln!("building the cube on the cluster");
    spark.forget_rows();
    let scratch = args.dir.join(format!("cube-parts-{name}"));
    let built = duck.cube_from_spark(&spark, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let built = built?;
    Ok(Measured {
        scale: name,
        spark_version: spark.version().to_owned(),
        orders: rows_of("work_orders"),
        history_rows,
        ingest_s,
        export_s,
        history_mib: dir_mib(&history),
        levels,
        duck_cube_s,
        spark_cube_s: built.on_cluster.as_secs_f64(),
        spark_cube_load_s: built.loading.as_secs_f64(),
    })
}

pub fn run(args: &SparkBenchArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let cluster = Cluster::start(
        &args.python,
        args.workers,
        args.cores,
        &args.memory,
        &args.dir.join("spark-cluster"),
    )?;
    let mut measured = Vec::new();
    for &scale in &args.scales {
        measured.push(one_scale(args, scale, &cluster)?);
    }
    let duck_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spark_cores = args.workers * args.cores;

    let mut text = String::new();
    writeln!(
        text,
        "## Province scale: the catalogue on Spark and on DuckDB\n\n\
         `databrain-bench spark --scales {} --workers {} --cores {} --memory {}` ({}), {}.\n",
        args.scales
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        args.workers,
        args.cores,
        args.memory,
        chrono::Local::now().format("%Y-%m-%d %H:%M"),
        machine()
    )?;
    writeln!(
        text,
        "Spark {} standalone on loopback: a master and {} workers of {} core(s) and {} each, \
         separate processes, reading the Parquet history; DuckDB reads its own file with {} \
         threads. The cluster and DuckDB share the machine and take turns. Each engine runs \
         the catalogue with four queries in flight. Spark answers each indicator's levels in \
         one statement; the driver's row cache is emptied before each level's run and before \
         the cube, so every Spark figure is the cluster's work.\n",
        measured.first().map_or("", |m| m.spark_version.as_str()),
        args.workers,
        args.cores,
        args.memory,
        duck_cores
    )?;
    writeln!(
        text,
        "| scale | work orders | fact rows | ingest | export | history on disk |\n|---|---:|---:|---:|---:|---:|"
    )?;
    for m in &measured {
        writeln!(
            text,
            "| {} | {} | {} | {:.1} s | {:.1} s | {:.0} MiB |",
            m.scale, m.orders, m.history_rows, m.ingest_s, m.export_s, m.history_mib
        )?;
    }
    writeln!(
        text,
        "\n| scale | level | queries | DuckDB, facts | DuckDB, cube (served) | Spark | Spark ÷ DuckDB facts | fact rows/s/core DuckDB | fact rows/s/core Spark |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for m in &measured {
        for &(level, n, read, facts_s, served_s, spark_s) in &m.levels {
            writeln!(
                text,
                "| {} | {} | {n} | {facts_s:.2} s | {served_s:.2} s | {spark_s:.2} s | {:.1}× | {:.2e} | {:.2e} |",
                m.scale,
                level.as_str(),
                spark_s / facts_s.max(1e-9),
                read as f64 / facts_s.max(1e-9) / duck_cores as f64,
                read as f64 / spark_s.max(1e-9) / spark_cores as f64,
            )?;
        }
    }
    writeln!(
        text,
        "\n| scale | cube in DuckDB | cube on Spark | loading Spark's cube |\n|---|---:|---:|---:|"
    )?;
    for m in &measured {
        writeln!(
            text,
            "| {} | {:.1} s | {:.1} s | {:.1} s |",
            m.scale, m.duck_cube_s, m.spark_cube_s, m.spark_cube_load_s
        )?;
    }
    if let [first, .., last] = measured.as_slice() {
        let growth = last.orders as f64 / first.orders.max(1) as f64;
        writeln!(
            text,
            "\nFrom {} to {} ({growth:.0}× the orders):",
            first.scale, last.scale
        )?;
        for (a, b) in first.levels.iter().zip(&last.levels) {
            writeln!(
                text,
                "- {} level: DuckDB from facts {:.1}×, Spark {:.1}×;",
                a.0.as_str(),
                b.3 / a.3.max(1e-9),
                b.5 / a.5.max(1e-9)
            )?;
        }
        writeln!(
            text,
            "- the cube: DuckDB {:.1}×, Spark {:.1}×.",
            last.duck_cube_s / first.duck_cube_s.max(1e-9),
            last.spark_cube_s / first.spark_cube_s.max(1e-9)
        )?;
    }
    writeln!(
        text,
        "\nFact rows per query are the rows of the tables the indicator reads (numerator and \
         denominator), whatever the engine skipped; rows/s/core divides by the wall time of \
         the whole catalogue and the cores the engine had.\n"
    )?;
    print!("{text}");
    write_section(&args.out, "spark", &text)
}
