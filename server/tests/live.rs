//! Live operations through the router: writers by role and scope, batches that load once,
//! bad and oversized bodies refused with nothing written, the audit log's counts, and the
//! event stream that pushes new snapshots and each audience's alerts as they appear and
//! clear. Driven without a socket (`oneshot`), rendering off.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
mod common;

use server::auth::Role;
use server::state::{AppState, Rendering};
use tower::ServiceExt;

const TOKENS: &[(&str, Role, &str)] = &[
    ("live-admin-province-1", Role::Admin, "32"),
    ("live-loader-nanjing-1", Role::Loader, "3201"),
    ("live-viewer-province-", Role::Viewer, "32"),
    ("live-viewer-suzhou-01", Role::Viewer, "3205"),
    ("live-viewer-nanjing-1", Role::Viewer, "3201"),
];
const ADMIN: &str = TOKENS[0].0;
const LOADER: &str = TOKENS[1].0;
const VIEWER: &str = TOKENS[2].0;
const SUZHOU: &str = TOKENS[3].0;
const NANJING: &str = TOKENS[4].0;

fn state(dir: &std::path::Path, seed: u64) -> AppState {
    AppState::new(
        common::server_engine(dir, seed),
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
    .with_auth(common::auth(dir, TOKENS, 10_000.0))
}

async fn post(
    state: &AppState,
    token: &str,
    uri: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap();
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn count(state: &AppState, filter: &str) -> i64 {
    state
        .engine
        .with_conn(|c| {
            Ok(c.query_row(
                &format!("SELECT COUNT(*) FROM work_orders WHERE {filter}"),
                [],
                |r| r.get(0),
            )
            .unwrap())
        })
        .unwrap()
}

/// A grid cell (and its community) of a county under `prefix`.
fn cell_in(state: &AppState, prefix: &str) -> (String, String) {
    state
        .engine
        .with_conn(|c| {
            Ok(c.query_row(
                "SELECT grid_id, community_code FROM work_orders WHERE community_code LIKE ? \
                 ORDER BY grid_id LIMIT 1",
                [format!("{prefix}%")],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap())
        })
        .unwrap()
}

/// `n` work orders in one grid cell, due on 2025-11-11 and closed `closed` (as NDJSON).
fn orders(prefix: &str, n: usize, (grid, community): &(String, String), closed: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({
                    "order_id": format!("{prefix}{i:05}"),
                    "created_at": "2025-11-10 08:00:00", "due_at": "2025-11-11 08:00:00",
                    "closed_at": closed, "request_type": "投诉", "content_code": "A01",
                    "channel": "热线电话", "community_code": community, "grid_id": grid,
                })
            )
        })
        .collect()
}

const NDJSON: &str = "application/x-ndjson";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_write_their_scope_once_and_bad_bodies_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path(), 31);
    let nanjing = cell_in(&state, "3201");
    let suzhou = cell_in(&state, "3205");
    let uri = "/api/facts/work_orders";

    // Readers may not write.
    let batch = orders("NJ", 20, &nanjing, "2025-11-10 12:00:00");
    let (status, body) = post(&state, VIEWER, uri, NDJSON, batch.clone()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::FORBIDDEN, Some("role"))
    );
    assert_eq!(count(&state, "order_id LIKE 'NJ%'"), 0);

    // A Nanjing loader writes Nanjing rows ...
    let (status, report) = post(&state, LOADER, uri, NDJSON, batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["rows_loaded"].as_u64(),
            report["rows_rejected"].as_u64()
        ),
        (Some(20), Some(0))
    );
    let snapshot = report["ingest_id"].as_i64().unwrap();
    assert_eq!(count(&state, "order_id LIKE 'NJ%'"), 20);
    // ... and the same batch again (a retry) changes nothing, not even the snapshot.
    let (status, again) = post(&state, LOADER, uri, NDJSON, batch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (again["rows_changed"].as_u64(), again["ingest_id"].as_i64()),
        (Some(0), None)
    );
    assert_eq!(state.engine.snapshot().unwrap().ingest_id, snapshot);

    // Not a Suzhou row, not even one among Nanjing's: the batch is refused, the row named.
    let mixed = format!(
        "{}{}",
        orders("NJB", 5, &nanjing, "2025-11-10 12:00:00"),
        orders("SZ", 1, &suzhou, "2025-11-10 12:00:00")
    );
    let (status, body) = post(&state, LOADER, uri, NDJSON, mixed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["report"]["rejected"][0]["row"], 6);
    assert!(
        body["report"]["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("outside the scope 3201"),
        "{body}"
    );
    assert_eq!(
        count(&state, "order_id LIKE 'NJB%' OR order_id LIKE 'SZ%'"),
        0
    );
    // The province's admin may.
    let (status, _) = post(
        &state,
        ADMIN,
        uri,
        NDJSON,
        orders("SZ", 3, &suzhou, "2025-11-10 12:00:00"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Bad bodies: each names what is wrong, and nothing is written.
    let before = count(&state, "TRUE");
    for (content_type, body, parameter, says) in [
        ("text/plain", "x".to_owned(), "content-type", "not text/csv"),
        (
            "application/vnd.apache.parquet",
            "PAR1".to_owned(),
            "content-type",
            "databrain load --server",
        ),
        (
            NDJSON,
            "{\"order_id\": \"A\"}\n{oops\n".to_owned(),
            "body",
            "line 2",
        ),
        (
            "text/csv",
            "order_id,created_at\nA\n".to_owned(),
            "body",
            "row 1",
        ),
    ] {
        let (status, answer) = post(&state, ADMIN, uri, content_type, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["parameter"], parameter, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (status, answer) = post(
        &state,
        ADMIN,
        "/api/loads?table=regions",
        "text/csv",
        "code\n",
    )
    .await;
    assert_eq!(
        (status, answer["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("table"))
    );
    let (status, answer) = post(
        &state,
        ADMIN,
        "/api/loads?table=work_orders&mapping=nyc",
        "text/csv",
        "a\n",
    )
    .await;
    assert_eq!(
        (status, answer["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("mapping"))
    );
    // Over the limit: 413 before anything is parsed.
    let huge = vec![b'x'; server::http::loads::MAX_FACTS_BYTES + 1];
    let (status, answer) = post(&state, ADMIN, uri, NDJSON, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    // A body that breaks off mid-upload loads nothing.
    let broken = Body::from_stream(futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from(orders(
            "CUT",
            3,
            &nanjing,
            "2025-11-10 12:00:00",
        ))),
        Err(std::io::Error::other("the client went away")),
    ]));
    let (status, answer) = post(&state, ADMIN, uri, NDJSON, broken).await;
    assert_eq!(
        (status, answer["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body"))
    );
    assert_eq!(count(&state, "TRUE"), before);

    // Every write is in the audit log with its counts, under its holder's name.
    state.auth.flush_audit();
    let log = std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap();
    let writes: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["what"].as_str().unwrap().starts_with("POST /api/facts"))
        .collect();
    assert!(writes.len() >= 10, "{log}");
    let first_load = writes.iter().find(|l| l["status"] == 200).unwrap();
    assert_eq!(first_load["who"], "loader 3201");
    assert_eq!(first_load["detail"]["rows_loaded"], 20);
    let refused = writes.iter().find(|l| l["status"] == 422).unwrap();
    assert_eq!(refused["detail"]["rows_rejected"], 1);
}

/// The next server-sent event of `body` (name, data), within ten seconds.
async fn next_event(body: &mut Body, buffer: &mut String) -> (String, Value) {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = n.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if name.is_empty() {
                continue; // a keep-alive comment
            }
            return (name, serde_json::from_str(&data).unwrap());
        }
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("an event within ten seconds")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

async fn subscribe(state: &AppState, token: &str) -> (Body, String) {
    let request = Request::get("/api/events?level=county&indicator=hotline_on_time_rate")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    (response.into_body(), String::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_push_snapshots_and_each_audiences_alerts_as_they_come_and_go() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path(), 32);

    let (mut sz, mut sz_buf) = subscribe(&state, SUZHOU).await;
    let (mut nj, mut nj_buf) = subscribe(&state, NANJING).await;
    let (name, hello) = next_event(&mut sz, &mut sz_buf).await;
    assert_eq!(name, "hello");
    let before = state.engine.snapshot().unwrap().ingest_id;
    assert_eq!(hello["snapshot"]["ingest_id"], before);
    let in_scope = |alerts: &Value, scope: &str| {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["region_code"].as_str().unwrap().starts_with(scope))
    };
    assert!(in_scope(&hello["alerts"], "3205"), "{hello}");
    let key_of = |a: &Value| a["key"].as_str().unwrap().to_owned();
    let had: Vec<String> = hello["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(key_of)
        .collect();
    // A Suzhou county without an alert yet.
    let alerting: Vec<&str> = hello["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["region_code"].as_str().unwrap())
        .collect();
    let counties: Vec<(String, String)> = state
        .engine
        .with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT MIN(grid_id), MIN(community_code) FROM work_orders \
                     WHERE community_code LIKE '3205%' GROUP BY SUBSTR(community_code, 1, 6) ORDER BY 2",
                )
                .unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            Ok(rows)
        })
        .unwrap();
    let suzhou = counties
        .into_iter()
        .find(|(_, community)| !alerting.contains(&&community[..6]))
        .expect("a Suzhou county without an alert");
    let county = &suzhou.1[..6];
    let (name, nj_hello) = next_event(&mut nj, &mut nj_buf).await;
    assert_eq!(name, "hello");
    assert!(in_scope(&nj_hello["alerts"], "3201"), "{nj_hello}");

    // A thousand complaints in one Suzhou county, all closed days late: its on-time rate
    // for 2025-Q4 falls far below the critical threshold.
    let late = orders("LATE", 1000, &suzhou, "2025-11-20 08:00:00");
    let (status, report) = post(&state, ADMIN, "/api/facts/work_orders", NDJSON, late).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (name, change) = next_event(&mut sz, &mut sz_buf).await;
    assert_eq!(
        (name.as_str(), &change["ingest_id"]),
        ("snapshot", &report["ingest_id"])
    );
    let alert = loop {
        let (name, a) = next_event(&mut sz, &mut sz_buf).await;
        assert_ne!(name, "snapshot", "no alert came with the snapshot");
        if name == "alert" && a["region_code"] == county {
            break a;
        }
    };
    assert_eq!(alert["indicator"], "hotline_on_time_rate");
    assert_eq!(alert["severity"], "critical");
    assert!(alert["value"].as_f64().unwrap() < alert["threshold"].as_f64().unwrap());
    assert_eq!(alert["threshold"], 0.8);
    assert!(!had.contains(&key_of(&alert)));

    // Nanjing's viewer hears of the snapshot, and of no Suzhou alert.
    let (name, _) = next_event(&mut nj, &mut nj_buf).await;
    assert_eq!(name, "snapshot");

    // The same orders closed in time (a status change): the alert clears.
    let fixed = orders("LATE", 1000, &suzhou, "2025-11-10 12:00:00");
    let (status, report) = post(&state, ADMIN, "/api/facts/work_orders", NDJSON, fixed).await;
    assert_eq!(
        (status, report["rows_changed"].as_u64()),
        (StatusCode::OK, Some(1000))
    );
    let cleared = loop {
        let (name, e) = next_event(&mut sz, &mut sz_buf).await;
        if name == "cleared" {
            break e;
        }
    };
    assert_eq!(cleared["key"], key_of(&alert));
    // What Nanjing's viewer was sent since names no region outside Nanjing.
    while nj_buf.contains("\n\n") {
        let (name, e) = next_event(&mut nj, &mut nj_buf).await;
        if name == "alert" {
            assert!(
                e["region_code"].as_str().unwrap().starts_with("3201"),
                "{e}"
            );
        }
    }
}
