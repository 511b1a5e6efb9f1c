//! Analysts' SQL runs read-only, sealed from files, one statement at a time, within limits,
//! and every refusal names its rule.

mod common;

use analytics::{AnalyticsError, Engine, OpenMode, SqlLimits};
use common::{count, loaded};
use std::time::Duration;

fn rule_of(engine: &Engine, sql: &str, limits: &SqlLimits) -> &'static str {
    match engine.run_sql(sql, limits) {
        Err(AnalyticsError::Sql { rule, .. }) => rule,
        other => panic!("{sql}: {other:?}"),
    }
}

#[test]
fn analyst_sql_is_read_only_sealed_limited_and_names_the_rule() {
    let (tmp, engine, _) = loaded(11);
    let path = engine.path().to_owned();
    let orders = count(&engine, "work_orders");
    let limits = SqlLimits::default();
    assert_eq!(rule_of(&engine, "SELECT 1", &limits), "sealed");
    drop(engine);

    let analyst = Engine::open_read_only(&path, OpenMode::Analyst).unwrap();
    let ok = analyst
        .run_sql(
            "SELECT SUBSTR(community_code, 1, 4) AS city, COUNT(*) AS orders \
             FROM work_orders GROUP BY 1 ORDER BY 1 -- per city",
            &limits,
        )
        .unwrap();
    assert_eq!(ok.columns, ["city", "orders"]);
    assert_eq!(ok.rows.len(), 13);
    let total: i64 = ok.rows.iter().map(|r| r[1].as_i64().unwrap()).sum();
    assert_eq!(total, orders);
    assert!(!ok.truncated);

    let few = analyst
        .run_sql(
            "SELECT * FROM range(20);",
            &SqlLimits {
                max_rows: 5,
                ..SqlLimits::default()
            },
        )
        .unwrap();
    assert_eq!((few.rows.len(), few.truncated), (5, true));

    let outside = tmp.path().join("leak.csv");
    std::fs::write(&outside, "a\n1\n").unwrap();
    for (sql, rule) in [
        ("DELETE FROM work_orders", "read_only"),
        (
            "INSERT INTO regions VALUES ('1', 'x', 'province', NULL, 0, 0)",
            "read_only",
        ),
        ("SELECT 1; DROP TABLE work_orders", "one_statement"),
        (
            &format!("COPY work_orders TO '{}'", outside.display()) as &str,
            "read_only",
        ),
        (
            &format!("SELECT * FROM read_csv('{}')", outside.display()),
            "no_external_access",
        ),
        ("SELECT * FROM no_such_table", "invalid"),
        ("", "invalid"),
    ] {
        assert_eq!(rule_of(&analyst, sql, &limits), rule, "{sql}");
    }
    let slow = SqlLimits {
        max_rows: 10,
        timeout: Duration::from_millis(300),
        ..SqlLimits::default()
    };
    let started = std::time::Instant::now();
    assert_eq!(
        rule_of(
            &analyst,
            "SELECT SUM(a.range * b.range) FROM range(1000000) a, range(1000000) b",
            &slow
        ),
        "timeout"
    );
    // A bound on behaviour, not a speed target: the cancelled query really stops (without
    // the interrupt it would run for hours).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The configuration is locked for everyone: no statement changes a setting.
    let locked = analyst
        .run_sql(
            "SELECT current_setting('lock_configuration') AS locked",
            &limits,
        )
        .unwrap();
    assert_eq!(locked.rows[0][0], serde_json::json!(true));
    for sql in [
        "SET memory_limit = '1MB'",
        "SELECT 1; SET GLOBAL memory_limit = '1MB'",
        "SELECT $$;$$; SET GLOBAL threads = 1",
    ] {
        assert_ne!(rule_of(&analyst, sql, &limits), "ok", "{sql}");
    }
    let setting = analyst
        .run_sql("SELECT current_setting('memory_limit') AS m", &limits)
        .unwrap();
    assert_ne!(setting.rows[0][0], serde_json::json!("1.0 MiB"));
    drop(analyst);
    assert_eq!(count(&Engine::open(&path).unwrap(), "work_orders"), orders);
}
