//! The history for Spark (`Engine::export_history`): every fact row exactly once, under the
//! partition its own month and city name, the regions beside them, a manifest that says so;
//! a second export replaces the first whole, and a directory that is not a history is refused.

mod common;

use analytics::{AnalyticsError, HISTORY_FORMAT, HistoryManifest};
use common::{count, loaded};
use indicators::facts::FACT_TABLES;

fn scalar(engine: &analytics::Engine, sql: &str) -> i64 {
    engine
        .with_conn(|c| {
            c.query_row(sql, [], |r| r.get(0))
                .map_err(|e| AnalyticsError::Db {
                    context: sql.into(),
                    source: e,
                })
        })
        .unwrap()
}

#[test]
fn every_fact_row_is_written_once_under_its_own_month_and_city() {
    let (tmp, engine, _) = loaded(7);
    let dir = tmp.path().join("history");
    let manifest = engine.export_history(&dir).unwrap();
    let on_disk: HistoryManifest =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
    assert_eq!(manifest.format, HISTORY_FORMAT);
    assert_eq!(
        manifest.tables.len(),
        FACT_TABLES.len() + 1,
        "facts and regions"
    );

    let mut partitioned = 0;
    for fact in FACT_TABLES {
        let t = &manifest.tables[fact.name];
        let rows = count(&engine, fact.name);
        assert_eq!(t.rows as i64, rows, "{}", fact.name);
        let files = dir.join(&t.path).join("**").join("*.parquet");
        // Partition values stay text, as written (`city=3201`, not the number 3201).
        let back = format!(
            "read_parquet('{}', hive_partitioning = true, hive_types_autocast = false)",
            files.to_string_lossy()
        );
        let own = if t.partitioned_by.is_empty() {
            "*".to_owned()
        } else {
            format!("* EXCLUDE ({})", t.partitioned_by.join(", "))
        };
        // The same rows, each as many times: nothing lost, nothing doubled, nothing changed.
        let diff = |a: &str, b: &str| {
            scalar(
                &engine,
                &format!("SELECT COUNT(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})"),
            )
        };
        let written = format!("(SELECT {own} FROM {back})");
        assert_eq!(diff(fact.name, &written), 0, "{}: rows missing", fact.name);
        assert_eq!(diff(&written, fact.name), 0, "{}: rows added", fact.name);
        if rows == 0 {
            assert!(t.partitioned_by.is_empty());
            continue;
        }
        partitioned += 1;
        let city = format!("SUBSTR({}, 1, 4)", fact.region_column());
        let misplaced = match fact.recorded_at {
            Some(at) => {
                assert_eq!(t.partitioned_by, ["month", "city"], "{}", fact.name);
                format!("city <> {city} OR month <> strftime({at}, '%Y-%m')")
            }
            None => {
                assert_eq!(t.partitioned_by, ["city"], "{}", fact.name);
                format!("city <> {city}")
            }
        };
        assert_eq!(
            scalar(
                &engine,
                &format!("SELECT COUNT(*) FROM {back} WHERE {misplaced}")
            ),
            0,
            "{}: rows under another month or city",
            fact.name
        );
        // Really partitioned: more than one city and, over time, more than one month.
        assert!(
            scalar(&engine, &format!("SELECT COUNT(DISTINCT city) FROM {back}")) > 1,
            "{}",
            fact.name
        );
    }
    assert!(partitioned > 0, "no fact table had rows");

    let regions = &manifest.tables["regions"];
    assert_eq!(regions.rows as i64, count(&engine, "regions"));
    let written = format!(
        "read_parquet('{}')",
        dir.join("regions/regions.parquet").to_string_lossy()
    );
    assert_eq!(
        scalar(
            &engine,
            &format!(
                "SELECT COUNT(*) FROM (SELECT * FROM regions EXCEPT ALL SELECT * FROM {written})"
            )
        ),
        0
    );
}

#[test]
fn a_second_export_replaces_the_first_whole_and_other_directories_are_refused() {
    let (tmp, engine, _) = loaded(7);
    let dir = tmp.path().join("history");
    let first = engine.export_history(&dir).unwrap();
    // Something of the old history that the new one does not write must go with it.
    let stale = dir.join("work_orders").join("month=1999-01");
    std::fs::create_dir_all(&stale).unwrap();
    let second = engine.export_history(&dir).unwrap();
    assert_eq!(first, second);
    assert!(!stale.exists(), "the old history was not replaced whole");
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".history"))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");

    // A directory that is not a history is never written over.
    let other = tmp.path().join("documents");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("report.txt"), "keep me").unwrap();
    let err = engine.export_history(&other).unwrap_err().to_string();
    assert!(err.contains("not a history"), "{err}");
    assert_eq!(
        std::fs::read_to_string(other.join("report.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
}
