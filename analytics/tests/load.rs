//! Department files: validated, all-or-nothing, idempotent, CSV and Parquet, and foreign
//! layouts through a mapping (the real NYC 311 requests as work orders).

mod common;

use analytics::{AnalyticsError, Engine, Mapping};
use common::{count, loaded, sample_file, shared_data};
use indicators::{Grain, IndicatorQuery, Level};
use std::collections::BTreeMap;
use std::path::Path;

/// The first `n` work orders of the sample under new ids, as a department would send them.
fn department_file(tmp: &tempfile::TempDir, n: usize, prefix: &str) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(sample_file(tmp, "work_orders.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_owned();
    let rows = lines.take(n).map(|l| l.replacen("WO", prefix, 1)).collect();
    (header, rows)
}

fn write(path: &Path, header: &str, rows: &[String]) {
    std::fs::write(path, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
}

fn orders_in_2024(engine: &Engine) -> f64 {
    let ind = engine.catalogue().get("hotline_orders").unwrap().clone();
    let q = IndicatorQuery {
        level: Level::Province,
        grain: Grain::Year,
        from: Some("2024".into()),
        to: Some("2025".into()),
        region: None,
    };
    engine
        .values(&analytics::Audience::trusted(), &ind, &q)
        .unwrap()
        .iter()
        .map(|v| v.numerator)
        .sum()
}

#[test]
fn department_files_load_checked_once_and_all_or_nothing() {
    let (tmp, engine, _) = loaded(11);
    let before = count(&engine, "work_orders");
    let orders_before = orders_in_2024(&engine);
    let (header, rows) = department_file(&tmp, 200, "DEPT");
    let file = tmp.path().join("dept.csv");
    write(&file, &header, &rows);

    let report = engine.load_file("work_orders", &file, None, false).unwrap();
    assert_eq!(
        (
            report.rows_read,
            report.rows_loaded,
            report.rows_changed,
            report.rows_rejected
        ),
        (200, 200, 200, 0)
    );
    assert_eq!(count(&engine, "work_orders"), before + 200);
    // The cube was refreshed with the load: indicator answers include the new rows.
    assert_eq!(orders_in_2024(&engine), orders_before + 200.0);

    // The same file again changes nothing.
    let again = engine.load_file("work_orders", &file, None, false).unwrap();
    assert_eq!((again.rows_loaded, again.rows_changed), (0, 0));
    assert_eq!(again.ingest_id, None, "nothing written, no new snapshot");
    assert_eq!(count(&engine, "work_orders"), before + 200);
    assert_eq!(orders_in_2024(&engine), orders_before + 200.0);
    let snapshot = engine.snapshot().unwrap();

    // Bad rows: each is named with its row number and reason, and nothing is loaded.
    let (_, fresh) = department_file(&tmp, 20, "BAD");
    let mut bad = fresh.clone();
    let mut cols: Vec<String> = bad[2].split(',').map(str::to_owned).collect();
    cols[1] = "yesterday".into();
    bad[2] = cols.join(",");
    let mut cols: Vec<String> = bad[6].split(',').map(str::to_owned).collect();
    cols[8] = "320102001001-999".into();
    bad[6] = cols.join(",");
    let mut cols: Vec<String> = bad[8].split(',').map(str::to_owned).collect();
    cols[3] = "2023-01-01 00:00:00".into();
    bad[8] = cols.join(",");
    bad[11] = bad[1].clone();
    let bad_file = tmp.path().join("bad.csv");
    write(&bad_file, &header, &bad);
    let err = engine
        .load_file("work_orders", &bad_file, None, false)
        .unwrap_err();
    let text = err.to_string();
    let AnalyticsError::Rejected(report) = err else {
        panic!("{text}");
    };
    let rows: Vec<u64> = report.rejected.iter().map(|r| r.row).collect();
    assert_eq!(rows, [3, 7, 9, 12], "{:?}", report.rejected);
    let reasons: Vec<&str> = report.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("created_at") && reasons[0].contains("yesterday"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("320102001001-999"), "{reasons:?}");
    assert!(
        reasons[2].contains("closed_at is before created_at"),
        "{reasons:?}"
    );
    assert!(
        reasons[3].contains("duplicate key (first in row 2)"),
        "{reasons:?}"
    );
    assert!(
        text.contains("nothing was loaded") && text.ends_with(&bad_file.display().to_string()),
        "{text}"
    );
    assert_eq!(
        count(&engine, "work_orders"),
        before + 200,
        "nothing half-loaded"
    );
    assert_eq!(engine.snapshot().unwrap(), snapshot);

    // Parquet works the same way.
    let parquet = tmp.path().join("dept.parquet");
    common::orders_as_parquet(&engine, &parquet, 50);
    let report = engine
        .load_file("work_orders", &parquet, None, false)
        .unwrap();
    assert_eq!((report.rows_loaded, report.rows_rejected), (50, 0));
    assert_eq!(count(&engine, "work_orders"), before + 250);

    // Unknown tables and foreign headers are named.
    let e = engine
        .load_file("orders", &file, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown table \"orders\""), "{e}");
    let foreign = tmp.path().join("foreign.csv");
    std::fs::write(&foreign, "id,when\n1,2024-01-01\n").unwrap();
    let e = engine
        .load_file("work_orders", &foreign, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs columns [order_id, created_at"), "{e}");
}

/// (on-time, due) work orders per (county, year of the due date).
type OnTimeParts = BTreeMap<(String, String), (f64, f64)>;

/// 12345 on-time closure per borough and year computed straight from the 311 file, with the
/// mapping's rules (a due date, a known borough, no closure before creation); also how many
/// rows load and which are rejected.
fn nyc_on_time(file: &Path) -> (OnTimeParts, u64, Vec<u64>) {
    let boroughs = BTreeMap::from([
        ("MANHATTAN", "910101"),
        ("BRONX", "910102"),
        ("BROOKLYN", "910103"),
        ("QUEENS", "910104"),
        ("STATEN ISLAND", "910105"),
    ]);
    let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%m/%d/%Y %I:%M:%S %p").ok();
    let mut reader = csv::Reader::from_path(file).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (created, due, closed, borough) = (
        col("Created Date"),
        col("Due Date"),
        col("Closed Date"),
        col("Borough"),
    );
    let mut out = OnTimeParts::new();
    let (mut loaded, mut rejected) = (0, Vec::new());
    for (i, r) in reader.records().enumerate() {
        let r = r.unwrap();
        let (c, d, x) = (t(&r[created]), t(&r[due]), t(&r[closed]));
        let county = boroughs.get(&r[borough]);
        match (c, d, county) {
            (Some(c), Some(d), Some(county)) if x.is_none_or(|x| x >= c) && d >= c => {
                loaded += 1;
                let e = out
                    .entry((county.to_string(), d.format("%Y").to_string()))
                    .or_default();
                e.1 += 1.0;
                if x.is_some_and(|x| x <= d) {
                    e.0 += 1.0;
                }
            }
            _ => rejected.push(i as u64 + 1),
        }
    }
    (out, loaded, rejected)
}

#[test]
fn nyc_311_requests_load_as_work_orders_through_a_mapping() {
    let Some(file) = shared_data("complaints_nyc311/nyc311_subset_2000.csv") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(&tmp.path().join("nyc.duckdb")).unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    engine
        .load_file("regions", &data.join("nyc_regions.csv"), None, false)
        .unwrap();
    let mapping = Mapping::load(&data.join("nyc311_work_orders.toml")).unwrap();
    let report = engine
        .load_file("work_orders", &file, Some(&mapping), false)
        .unwrap();
    let (expected, loaded, rejected) = nyc_on_time(&file);
    assert_eq!(report.rows_read, 2000);
    assert_eq!(report.rows_loaded, loaded);
    assert_eq!(
        report.rejected.iter().map(|r| r.row).collect::<Vec<_>>(),
        rejected,
        "{:?}",
        &report.rejected[..5.min(report.rejected.len())]
    );

    let ind = engine
        .catalogue()
        .get("hotline_on_time_rate")
        .unwrap()
        .clone();
    let values = engine
        .values(
            &analytics::Audience::trusted(),
            &ind,
            &IndicatorQuery {
                level: Level::County,
                grain: Grain::Year,
                from: None,
                to: None,
                region: None,
            },
        )
        .unwrap();
    let ours: BTreeMap<(String, String), (f64, f64)> = values
        .iter()
        .map(|v| {
            (
                (v.region_code.clone(), v.period.clone()),
                (v.numerator, v.denominator.unwrap()),
            )
        })
        .collect();
    assert_eq!(ours, expected);
    let manhattan_2011 = values
        .iter()
        .find(|v| v.region_code == "910101" && v.period == "2011")
        .unwrap();
    assert_eq!(manhattan_2011.region_name, "Manhattan");

    // Loading the same requests again changes nothing.
    let again = engine
        .load_file("work_orders", &file, Some(&mapping), false)
        .unwrap();
    assert_eq!(again.rows_changed, 0);
    assert_eq!(count(&engine, "work_orders") as u64, loaded);
}

#[test]
fn values_export_to_parquet_that_reads_back() {
    let (tmp, engine, _) = loaded(11);
    let ind = engine
        .catalogue()
        .get("hotline_on_time_rate")
        .unwrap()
        .clone();
    let q = IndicatorQuery {
        level: Level::City,
        grain: Grain::Month,
        from: Some("2025-01".into()),
        to: Some("2025-12".into()),
        region: None,
    };
    let values = engine
        .values(&analytics::Audience::trusted(), &ind, &q)
        .unwrap();
    let path = tmp.path().join("values.parquet");
    engine.write_parquet(&values, &path).unwrap();
    let (rows, numerators, ranked): (i64, f64, i64) = engine
        .with_conn(|c| {
            c.query_row(
                &format!(
                    "SELECT COUNT(*), SUM(numerator), COUNT(rank) FROM read_parquet('{}')",
                    path.display()
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| AnalyticsError::Db {
                context: "read back".into(),
                source: e,
            })
        })
        .unwrap();
    assert_eq!(rows as usize, values.len());
    assert_eq!(numerators, values.iter().map(|v| v.numerator).sum::<f64>());
    assert_eq!(
        ranked as usize,
        values.iter().filter(|v| v.rank.is_some()).count()
    );
}
