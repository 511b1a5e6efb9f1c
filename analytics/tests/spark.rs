//! One catalogue, two engines: every indicator at every level and grain it allows, computed
//! by DuckDB from the file and by a real Spark standalone cluster (a master and two workers,
//! each a process of its own on loopback) from the history exported as Parquet, must give the
//! same rows with the same values (relative 1e-9) and the same suppression; and the cube built
//! on the cluster must equal the one DuckDB built.
//!
//! Needs Java (skips with a message without it) and a Python with PySpark (`make deps`; the
//! Makefile names it in `DATABRAIN_PYTHON`).

mod common;

use analytics::spark::{Cluster, Spark, SparkConfig};
use analytics::{Audience, Engine, IndicatorValue, SmallCells};
use common::{close, loaded, whole};
use std::path::PathBuf;
use std::sync::Arc;

fn python() -> PathBuf {
    std::env::var_os("DATABRAIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn has_java() -> bool {
    std::process::Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => close(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Differences between two answers to one query, as readable lines.
fn differences(what: &str, duck: &[IndicatorValue], spark: &[IndicatorValue]) -> Vec<String> {
    let mut out = Vec::new();
    if duck.len() != spark.len() {
        out.push(format!(
            "{what}: {} rows from DuckDB, {} from Spark",
            duck.len(),
            spark.len()
        ));
    }
    for (d, s) in duck.iter().zip(spark) {
        let cell = format!("{what} {} {}", d.region_code, d.period);
        if (&d.region_code, &d.period) != (&s.region_code, &s.period) {
            out.push(format!("{cell}: Spark has {} {}", s.region_code, s.period));
            continue;
        }
        let checks = [
            ("value", same(d.value, s.value)),
            ("numerator", close(d.numerator, s.numerator)),
            ("denominator", same(d.denominator, s.denominator)),
            ("support", same(d.support, s.support)),
            ("previous", same(d.previous_value, s.previous_value)),
            ("last year", same(d.last_year_value, s.last_year_value)),
            ("suppressed", d.suppressed == s.suppressed),
            ("partial", d.partial == s.partial),
            ("rank", d.rank == s.rank && d.siblings == s.siblings),
            ("status", d.status == s.status),
        ];
        for (name, ok) in checks {
            if !ok {
                out.push(format!("{cell}: {name} differs: {d:?} / {s:?}"));
            }
        }
    }
    out
}

// Part of `make test` (its time on 2 cores is in the README); `make test-spark` runs it alone.
#[test]
fn every_indicator_agrees_on_duckdb_and_a_two_worker_spark_cluster() {
    if !has_java() {
        eprintln!("skipping: no Java on this machine (Spark needs Java 17)");
        return;
    }
    let python = python();
    let (tmp, duck, _) = loaded(42);
    let history = tmp.path().join("history");
    let manifest = duck.export_history(&history).unwrap();
    assert!(manifest.tables["work_orders"].rows > 0);
    assert_eq!(
        manifest.tables["work_orders"].partitioned_by,
        ["month", "city"]
    );
    assert!(history.join("work_orders").read_dir().unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("month=")
    }));

    let cluster = Cluster::start(&python, 2, 1, "2g", &tmp.path().join("cluster"))
        .expect("a Spark standalone cluster (PySpark from `make deps`)");
    let mut config = SparkConfig::new(cluster.master(), &history, &python);
    config.min_executors = 2;
    // Hundreds of queries over a small history: read it once, not once per query.
    config.cache_tables = true;
    // Tasks over a small cached history are tiny: Spark's fixed costs per query are what
    // count, and these settings took a tenth of the catalogue from 432 s to 375 s here
    // (interpreted plans instead of generated code, no adaptive re-planning, no waiting for
    // a task's preferred executor, one shuffle partition per core).
    for (key, value) in [
        ("spark.sql.codegen.wholeStage", "false"),
        ("spark.sql.adaptive.enabled", "false"),
        ("spark.locality.wait", "0s"),
        ("spark.sql.shuffle.partitions", "2"),
    ] {
        config.conf.insert(key.into(), value.into());
    }
    let spark = Arc::new(Spark::connect(config).unwrap());
    assert_eq!(spark.executors(), 2, "one executor on each worker");
    let on_spark = Engine::on_spark(spark.clone()).unwrap();
    assert_eq!(on_spark.regions().len(), duck.regions().len());
    // What the cluster does not compute is refused, never answered from the empty local tables.
    let refused = on_spark
        .work_orders(None, &analytics::OrderQuery::default())
        .unwrap_err()
        .to_string();
    assert!(refused.contains(cluster.master()), "{refused}");
    assert!(
        !duck
            .work_orders(None, &analytics::OrderQuery::default())
            .unwrap()
            .is_empty()
    );

    let audiences = [
        ("trusted", Audience::trusted()),
        (
            "public",
            Audience::new(
                "32",
                SmallCells::Withheld {
                    floor: analytics::SMALL_CELL_FLOOR,
                },
            )
            .unwrap(),
        ),
    ];
    let catalogue = duck.catalogue().clone();
    // Work in groups of one indicator and grain at every level: the engine on Spark answers
    // all of a group's levels with one statement, so a group is one worker's.
    let mut groups = Vec::new();
    for ind in &catalogue.indicators {
        for &grain in &ind.grains {
            groups.push((ind, grain));
        }
    }
    let queries: usize = groups.iter().map(|(ind, _)| ind.levels.len()).sum();
    let started = std::time::Instant::now();
    // Four at a time: the cluster runs their statements side by side.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<(usize, usize, Vec<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(ind, grain)) = groups.get(i) else {
                            return out;
                        };
                        for &level in &ind.levels {
                            let q = whole(level, grain);
                            for (name, audience) in &audiences {
                                let what = format!("{} {level} {grain} {name}", ind.id);
                                let d = duck.values(audience, ind, &q).unwrap();
                                let s = on_spark
                                    .values(audience, ind, &q)
                                    .unwrap_or_else(|e| panic!("{what} on Spark: {e}"));
                                let withheld = d.iter().filter(|v| v.suppressed).count();
                                out.push((d.len(), withheld, differences(&what, &d, &s)));
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let compared_s = started.elapsed().as_secs_f64();
    let cells: usize = results.iter().map(|r| r.0).sum();
    let withheld: usize = results.iter().map(|r| r.1).sum();
    let diffs: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
    assert!(
        diffs.is_empty(),
        "{} differences, the first: {:#?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
    assert_eq!(results.len(), queries * audiences.len());
    // The comparison covered real numbers and real suppression.
    assert!(cells > 10_000, "{cells} cells compared");
    assert!(withheld > 0, "no cell withheld for the public audience");
    eprintln!(
        "{queries} queries ({} groups) x {} audiences: {cells} cells agree ({withheld} withheld), {compared_s:.0} s",
        groups.len(),
        audiences.len()
    );

    // The cube built on the cluster, loaded into a second file, equals DuckDB's own.
    // Ingest refreshed the cube of the tables the sample has; the cluster builds every one.
    duck.rebuild_cube().unwrap();
    let served = Engine::open(&tmp.path().join("served.duckdb")).unwrap();
    served.ingest_dir(&tmp.path().join("sample")).unwrap();
    let built = served
        .cube_from_spark(&spark, &tmp.path().join("cube-parts"))
        .unwrap();
    assert!(!built.tables.is_empty());
    for (table, rows) in &built.tables {
        // Per row: its text and integer cells, and its doubles (compared to 1e-9).
        let dump = |engine: &Engine| -> Vec<(Vec<String>, Vec<f64>)> {
            engine
                .with_conn(|c| {
                    let sql = format!("SELECT * FROM {table} ORDER BY ALL");
                    let mut stmt = c.prepare(&sql).unwrap();
                    let mut rows = stmt.query([]).unwrap();
                    let mut out = Vec::new();
                    while let Some(row) = rows.next().unwrap() {
                        let (mut exact, mut doubles) = (Vec::new(), Vec::new());
                        for i in 0..row.as_ref().column_count() {
                            match row.get_ref(i).unwrap() {
                                duckdb::types::ValueRef::Double(v) => doubles.push(v),
                                other => exact.push(format!("{other:?}")),
                            }
                        }
                        out.push((exact, doubles));
                    }
                    Ok(out)
                })
                .unwrap()
        };
        let (mine, theirs) = (dump(&duck), dump(&served));
        assert_eq!(mine.len() as u64, *rows, "{table}");
        assert_eq!(mine.len(), theirs.len(), "{table} built on Spark differs");
        for (a, b) in mine.iter().zip(&theirs) {
            assert_eq!(a.0, b.0, "{table} built on Spark differs");
            assert!(
                a.1.len() == b.1.len() && a.1.iter().zip(&b.1).all(|(x, y)| close(*x, *y)),
                "{table}: {a:?} / {b:?}"
            );
        }
    }
    let ind = catalogue.get("hotline_on_time_rate").unwrap();
    let q = whole(indicators::Level::County, indicators::Grain::Month);
    let audience = Audience::trusted();
    assert!(
        differences(
            "served",
            &duck.values(&audience, ind, &q).unwrap(),
            &served.values(&audience, ind, &q).unwrap()
        )
        .is_empty()
    );
    drop(on_spark);
    drop(spark);
    drop(cluster);
}
