//! The server's file with one writer: batches that arrive in memory (CSV and NDJSON), retried
//! batches that change nothing, writers held to their scope, the cube updated cell by cell
//! (never rebuilt) and still equal to the facts, readers that never see half a batch, and
//! analysts' SQL that stays read-only on a writable file.

mod common;

use analytics::{AnalyticsError, Audience, Engine, SmallCells, SqlLimits, Upload, UploadFormat};
use common::{close, count, loaded, sample_file};
use indicators::{Grain, IndicatorQuery, Level};

/// `n` work orders of the sample under new ids (`prefix` + number), created in 2025.
fn orders(tmp: &tempfile::TempDir, n: usize, prefix: &str) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(sample_file(tmp, "work_orders.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[1].starts_with("2025"))
        .take(n)
        .enumerate()
        .map(|(i, r)| {
            let mut row: Vec<String> = r.iter().map(str::to_owned).collect();
            row[0] = format!("{prefix}{i:06}");
            row
        })
        .collect();
    (header.join(","), rows)
}

fn csv_batch(header: &str, rows: &[Vec<String>]) -> String {
    let lines: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
    format!("{header}\n{}\n", lines.join("\n"))
}

fn upload<'a>(format: UploadFormat, bytes: &'a [u8]) -> Upload<'a> {
    Upload {
        label: "POST /api/facts/work_orders".into(),
        format,
        bytes,
    }
}

/// Loads a batch of work orders on behalf of `writer`.
fn batch(
    engine: &Engine,
    format: UploadFormat,
    bytes: &[u8],
    writer: &Audience,
) -> analytics::Result<analytics::LoadReport> {
    engine.load_upload("work_orders", &upload(format, bytes), None, writer)
}

fn province_orders(engine: &Engine, year: &str) -> f64 {
    let ind = engine.catalogue().get("hotline_orders").unwrap().clone();
    let q = IndicatorQuery {
        level: Level::Province,
        grain: Grain::Year,
        from: Some(year.into()),
        to: Some(year.into()),
        region: None,
    };
    engine
        .values(&Audience::trusted(), &ind, &q)
        .unwrap()
        .iter()
        .map(|v| v.numerator)
        .sum()
}

/// Table oids of the cube: a rebuilt table gets a new one.
fn cube_oids(engine: &Engine) -> Vec<(String, i64)> {
    engine
        .with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT table_name, table_oid FROM duckdb_tables() \
                     WHERE table_name LIKE 'cube\\_%' ESCAPE '\\' ORDER BY 1",
                )
                .unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            Ok(rows)
        })
        .unwrap()
}

/// Every work-order indicator the cube covers answers the same from the cube and from the
/// fact rows, at the levels and grains the cube keeps.
fn assert_cube_is_exact(engine: &Engine) {
    let catalogue = engine.catalogue().clone();
    let mut compared = 0;
    for ind in catalogue.indicators.iter().filter(|i| {
        i.numerator
            .as_ref()
            .is_some_and(|m| m.fact == "work_orders")
    }) {
        for (level, grain, from, to) in [
            (Level::City, Grain::Day, "2025-03-01", "2025-03-31"),
            (Level::Community, Grain::Month, "2025-01", "2025-12"),
            (Level::Grid, Grain::Month, "2025-01", "2025-12"),
            (Level::County, Grain::Year, "2024", "2025"),
        ] {
            if !ind.levels.contains(&level) || !ind.grains.contains(&grain) {
                continue;
            }
            let q = IndicatorQuery {
                level,
                grain,
                from: Some(from.into()),
                to: Some(to.into()),
                region: None,
            };
            let cube = engine.values(&Audience::trusted(), ind, &q).unwrap();
            let facts = engine
                .values_from_facts(&Audience::trusted(), ind, &q)
                .unwrap();
            assert_eq!(cube.len(), facts.len(), "{} {level} {grain}", ind.id);
            for (a, b) in cube.iter().zip(&facts) {
                let at = format!("{} {level} {grain} {} {}", ind.id, a.region_code, a.period);
                assert_eq!((&a.region_code, &a.period), (&b.region_code, &b.period));
                assert!(close(a.numerator, b.numerator), "{at}");
                assert_eq!(a.support, b.support, "{at}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 8, "only {compared} comparisons");
}

#[test]
fn batches_load_once_and_the_cube_follows_cell_by_cell() {
    let (tmp, engine, _) = loaded(21);
    let before = count(&engine, "work_orders");
    let orders_2025 = province_orders(&engine, "2025");
    let oids = cube_oids(&engine);
    assert!(!oids.is_empty());

    // A CSV batch of new orders.
    let (header, rows) = orders(&tmp, 300, "LIVE");
    let text = csv_batch(&header, &rows);
    let report = batch(
        &engine,
        UploadFormat::Csv,
        text.as_bytes(),
        &Audience::trusted(),
    )
    .unwrap();
    assert_eq!(
        (report.rows_read, report.rows_loaded, report.rows_rejected),
        (300, 300, 0)
    );
    assert!(report.ingest_id.is_some());
    assert_eq!(count(&engine, "work_orders"), before + 300);
    assert_eq!(province_orders(&engine, "2025"), orders_2025 + 300.0);
    let snapshot = engine.snapshot().unwrap();
    let generation = engine.generation();

    // The same batch again (a retry) changes nothing, not even the snapshot.
    let again = batch(
        &engine,
        UploadFormat::Csv,
        text.as_bytes(),
        &Audience::trusted(),
    )
    .unwrap();
    assert_eq!((again.rows_read, again.rows_changed), (300, 0));
    assert_eq!(again.ingest_id, None);
    assert_eq!(engine.snapshot().unwrap(), snapshot);
    assert_eq!(engine.generation(), generation);

    // Status changes as NDJSON: 40 of them closed now (a day later, fully satisfied), with
    // the optional columns left out where they are empty.
    let names: Vec<&str> = header.split(',').collect();
    let ndjson: String = rows[..40]
        .iter()
        .map(|r| {
            let mut object = serde_json::Map::new();
            for (name, value) in names.iter().zip(r) {
                if !value.is_empty() {
                    object.insert((*name).to_owned(), value.clone().into());
                }
            }
            let created = chrono::NaiveDateTime::parse_from_str(&r[1], "%Y-%m-%d %H:%M:%S")
                .expect("created_at");
            let closed = created + chrono::Duration::hours(20);
            object.insert(
                "closed_at".into(),
                closed.format("%Y-%m-%d %H:%M:%S").to_string().into(),
            );
            object.insert("satisfaction".into(), 5.into());
            format!("{}\n", serde_json::Value::Object(object))
        })
        .collect();
    let status = batch(
        &engine,
        UploadFormat::Ndjson,
        ndjson.as_bytes(),
        &Audience::trusted(),
    )
    .unwrap();
    assert_eq!((status.rows_read, status.rows_rejected), (40, 0));
    assert!(status.rows_changed > 0 && status.rows_changed <= 40);
    assert_eq!(
        count(&engine, "work_orders"),
        before + 300,
        "replaced, not added"
    );
    let satisfied: i64 = engine
        .with_conn(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM work_orders WHERE order_id LIKE 'LIVE%' AND satisfaction = 5 \
                 AND closed_at IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap())
        })
        .unwrap();
    assert!(satisfied >= 40);

    // The cube was updated in place (the same tables) and still equals the facts.
    assert_eq!(cube_oids(&engine), oids, "the cube tables were rebuilt");
    assert_cube_is_exact(&engine);
}

#[test]
fn bad_batches_name_the_row_and_load_nothing() {
    let (tmp, engine, _) = loaded(22);
    let before = count(&engine, "work_orders");
    let snapshot = engine.snapshot().unwrap();
    let (header, rows) = orders(&tmp, 5, "BAD");
    let load = |format, text: &str| {
        engine.load_upload(
            "work_orders",
            &upload(format, text.as_bytes()),
            None,
            &Audience::trusted(),
        )
    };
    let ragged = format!("{}\n{}\n1,2\n", header, rows[0].join(","));
    let err = load(UploadFormat::Csv, &ragged).unwrap_err().to_string();
    assert!(
        err.contains("row 2") && err.contains("malformed CSV"),
        "{err}"
    );
    let err = load(UploadFormat::Ndjson, "{\"order_id\": \"X\"}\n[1, 2]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("not a JSON object"),
        "{err}"
    );
    let err = load(UploadFormat::Ndjson, "{\"order_id\": {\"nested\": 1}}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1") && err.contains("order_id"), "{err}");
    let err = load(UploadFormat::Csv, "order_id,order_id\nA,B\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("given twice"), "{err}");
    // A row with a bad value rejects the batch and names it.
    let mut bad = rows.clone();
    bad[3][2] = "soon".into();
    let err = load(UploadFormat::Csv, &csv_batch(&header, &bad)).unwrap_err();
    let AnalyticsError::Rejected(report) = err else {
        panic!("{err}");
    };
    assert_eq!(report.rejected[0].row, 4);
    assert!(report.rejected[0].reason.contains("due_at"), "{report:?}");
    assert_eq!(count(&engine, "work_orders"), before);
    assert_eq!(engine.snapshot().unwrap(), snapshot);
}

#[test]
fn a_scoped_writer_writes_and_replaces_only_its_regions() {
    let (tmp, engine, _) = loaded(23);
    let (header, rows) = orders(&tmp, 400, "SCOPE");
    let nanjing = Audience::new("3201", SmallCells::Shown).unwrap();
    let community = header
        .split(',')
        .position(|c| c == "community_code")
        .unwrap();
    let (inside, outside): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|r| r[community].starts_with("3201"));
    assert!(!inside.is_empty() && !outside.is_empty());
    let before = count(&engine, "work_orders");

    // Another city's rows are rejected, named, and nothing loads.
    let mixed: Vec<Vec<String>> = inside.iter().chain(&outside[..1]).cloned().collect();
    let err = batch(
        &engine,
        UploadFormat::Csv,
        csv_batch(&header, &mixed).as_bytes(),
        &nanjing,
    )
    .unwrap_err();
    let AnalyticsError::Rejected(report) = err else {
        panic!("{err}");
    };
    assert_eq!(report.rows_rejected, 1);
    assert!(
        report.rejected[0].reason.contains("outside the scope 3201"),
        "{report:?}"
    );
    assert_eq!(count(&engine, "work_orders"), before);

    // Its own rows load.
    let own = batch(
        &engine,
        UploadFormat::Csv,
        csv_batch(&header, &inside).as_bytes(),
        &nanjing,
    )
    .unwrap();
    assert_eq!(own.rows_loaded as usize, inside.len());

    // Another city's row, loaded by the province ...
    engine
        .load_upload(
            "work_orders",
            &upload(
                UploadFormat::Csv,
                csv_batch(&header, &outside[..1]).as_bytes(),
            ),
            None,
            &Audience::trusted(),
        )
        .unwrap();
    // ... cannot be taken over through its key by a row moved into Nanjing.
    let mut moved = outside[0].clone();
    let grid = header.split(',').position(|c| c == "grid_id").unwrap();
    moved[community] = inside[0][community].clone();
    moved[grid] = inside[0][grid].clone();
    let err = batch(
        &engine,
        UploadFormat::Csv,
        csv_batch(&header, &[moved]).as_bytes(),
        &nanjing,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the key belongs to a row outside the scope 3201"),
        "{err}"
    );
    let kept: String = engine
        .with_conn(|c| {
            Ok(c.query_row(
                "SELECT community_code FROM work_orders WHERE order_id = ?",
                [&outside[0][0]],
                |r| r.get(0),
            )
            .unwrap())
        })
        .unwrap();
    assert_eq!(kept, outside[0][community]);
}

#[test]
fn readers_see_whole_batches_while_a_writer_loads() {
    let (tmp, engine, _) = loaded(24);
    let engine = std::sync::Arc::new(engine);
    let base = province_orders(&engine, "2025");
    let (header, rows) = orders(&tmp, 600, "CONC");
    let batches: Vec<String> = rows.chunks(100).map(|c| csv_batch(&header, c)).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (engine, done) = (engine.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    seen.push(province_orders(&engine, "2025"));
                }
                seen
            })
        })
        .collect();
    for text in &batches {
        batch(
            &engine,
            UploadFormat::Csv,
            text.as_bytes(),
            &Audience::trusted(),
        )
        .unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut observed = 0;
    for reader in readers {
        for total in reader.join().unwrap() {
            let added = total - base;
            assert!(
                (0.0..=600.0).contains(&added) && added % 100.0 == 0.0,
                "a reader saw {added} orders added: part of a batch"
            );
            observed += 1;
        }
    }
    assert!(observed > 0);
    assert_eq!(province_orders(&engine, "2025"), base + 600.0);
}

#[test]
fn analysts_sql_cannot_write_the_servers_file() {
    let (tmp, engine, _) = loaded(25);
    let path = engine.path().to_owned();
    let before = count(&engine, "work_orders");
    drop(engine);
    let server = Engine::open_for_server(&path).unwrap();
    let limits = SqlLimits::default();
    for sql in [
        "DELETE FROM work_orders",
        "INSERT INTO regions SELECT * FROM regions",
        "CREATE TABLE x AS SELECT 1",
        "SELECT * FROM force_checkpoint()",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET threads = 1",
    ] {
        let err = server.run_sql(sql, &limits).unwrap_err();
        assert!(matches!(err, AnalyticsError::Sql { .. }), "{sql}: {err}");
    }
    assert_eq!(
        server
            .run_sql("SELECT COUNT(*) AS n FROM work_orders", &limits)
            .unwrap()
            .rows[0][0],
        serde_json::json!(before)
    );
    // The server reads no files: a load names a path in vain ...
    let file = sample_file(&tmp, "work_orders.csv");
    assert!(server.load_file("work_orders", &file, None, false).is_err());
    // ... and takes batches in memory.
    let (header, rows) = orders(&tmp, 10, "SRV");
    let report = batch(
        &server,
        UploadFormat::Csv,
        csv_batch(&header, &rows).as_bytes(),
        &Audience::trusted(),
    )
    .unwrap();
    assert_eq!(report.rows_loaded, 10);
    assert_eq!(count(&server, "work_orders"), before + 10);
}

#[test]
fn parquet_files_become_csv_batches() {
    let (tmp, engine, _) = loaded(26);
    let parquet = tmp.path().join("dept.parquet");
    common::orders_as_parquet(&engine, &parquet, 40);
    let csv = analytics::parquet_as_csv(&parquet).unwrap();
    let report = batch(&engine, UploadFormat::Csv, &csv, &Audience::trusted()).unwrap();
    assert_eq!((report.rows_loaded, report.rows_rejected), (40, 0));
    let err = analytics::parquet_as_csv(&tmp.path().join("missing.parquet")).unwrap_err();
    assert!(err.to_string().contains("missing.parquet"), "{err}");
}
