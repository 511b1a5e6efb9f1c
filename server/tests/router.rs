//! The router driven without a socket (`tower::ServiceExt::oneshot`), with rendering off so
//! these tests need no GPU; rendering is covered end to end in the `tests` crate.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use server::state::{AppState, Rendering};
use tower::ServiceExt;

fn state(dir: &std::path::Path) -> AppState {
    let sample = dir.join("sample");
    data_samples::generate(
        &sample,
        &data_samples::Config {
            scale: data_samples::Scale::Small,
            seed: 5,
            progress: false,
        },
    )
    .unwrap();
    let db = dir.join("db.duckdb");
    analytics::Engine::open(&db)
        .unwrap()
        .ingest_dir(&sample)
        .unwrap();
    // As `databrain serve` opens it: read-only and sealed.
    let engine = analytics::Engine::open_read_only(&db, analytics::OpenMode::Analyst).unwrap();
    AppState::new(
        engine,
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (status, bytes) = send(state, Request::get(uri).body(Body::empty()).unwrap()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post_sql(state: &AppState, body: Value) -> (StatusCode, Value) {
    let request = Request::post("/api/sql")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, bytes) = send(state, request).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn api_answers_and_names_bad_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());

    let (status, health) = get(&state, "/api/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["rendering_available"], false);
    assert_eq!(health["snapshot"]["ingest_id"], 1);

    let (_, catalogue) = get(&state, "/api/indicators").await;
    let ids: Vec<&str> = catalogue["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.len() >= 5 && ids.contains(&"one_thing_completion_rate"),
        "{ids:?}"
    );

    let (status, body) = get(
        &state,
        "/api/indicators/one_thing_completion_rate/values?level=city&grain=year&from=2025&to=2025",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 13);
    for r in rows {
        assert_eq!(r["target"], 0.8);
        assert_eq!(r["period"], "2025");
        for key in [
            "region_code",
            "region_name",
            "value",
            "numerator",
            "denominator",
            "status",
        ] {
            assert!(!r[key].is_null(), "{key} in {r}");
        }
    }

    for (uri, parameter) in [
        (
            "/api/indicators/hotline_on_time_rate/values?grain=fortnight",
            "grain",
        ),
        (
            "/api/indicators/hotline_on_time_rate/values?grain=quarter&to=2024-Q9",
            "to",
        ),
        (
            "/api/indicators/hotline_on_time_rate/values?level=city&region=320102",
            "region",
        ),
        (
            "/api/indicators/hotline_satisfaction_rate/values?grain=day",
            "grain",
        ),
        (
            "/api/scenes/demo_district/snapshot.png?height=abc",
            "height",
        ),
        ("/ws/view", "scene"),
    ] {
        let (status, body) = get(&state, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }

    let (status, body) = get(&state, "/api/scenes/demo_district/snapshot.png").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().unwrap().contains("no renderer"),
        "{body}"
    );
    let (status, _) = get(&state, "/api/scenes/nowhere/snapshot.png").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, scenes) = get(&state, "/api/scenes").await;
    assert!(
        scenes["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "demo_district")
    );
}

#[tokio::test]
async fn risks_series_exports_and_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());

    let (status, body) = get(&state, "/api/alerts?severity=critical").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alerts = body["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty());
    assert!(
        alerts
            .iter()
            .all(|a| a["severity"] == "critical" && a["level"] == "county")
    );
    let (status, body) = get(&state, "/api/alerts?level=street").await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("level"))
    );

    let (status, body) = get(&state, "/api/trends?region=3201").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let trends = body["trends"].as_array().unwrap();
    assert!(
        trends
            .iter()
            .any(|t| t["indicator"] == "one_thing_completion_rate")
    );
    assert!(trends.iter().all(|t| t["region_code"] == "3201"));
    let (status, body) = get(&state, "/api/trends?as_of=June").await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("as_of"))
    );

    let (status, body) = get(
        &state,
        "/api/indicators/hotline_on_time_rate/series?region=3201&grain=quarter&from=2024-Q1&to=2025-Q4",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let periods: Vec<&str> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(
        periods,
        [
            "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"
        ]
    );
    assert_eq!(body["region_name"], "南京市");

    // CSV and SDMX-CSV carry the same numbers as JSON.
    let uri = "/api/indicators/hotline_on_time_rate/values?level=city&grain=year&from=2025&to=2025";
    let (_, json_rows) = get(&state, uri).await;
    let (status, sdmx) = send(
        &state,
        Request::get(format!("{uri}&format=sdmx-csv"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sdmx = String::from_utf8(sdmx).unwrap();
    let mut lines = sdmx.lines();
    assert_eq!(
        lines.next(),
        Some("DATAFLOW,FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS")
    );
    for (line, row) in lines.zip(json_rows["rows"].as_array().unwrap()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[1], "A");
        assert_eq!(f[2], row["region_code"]);
        assert_eq!(f[4], "2025");
        let v: f64 = f[5].parse().unwrap();
        assert!((v - row["value"].as_f64().unwrap()).abs() < 1e-12);
    }
    let (status, _) = get(&state, &format!("{uri}&format=xlsx")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The top content codes of 2025, largest first, shares summing to one over all codes.
    let (status, body) = get(
        &state,
        "/api/indicators/hotline_orders/breakdown?by=content_code&period=2025&top=50",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shares = body["shares"].as_array().unwrap();
    assert!(shares.len() > 5);
    let total: f64 = shares.iter().map(|s| s["share"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    assert!(
        shares
            .windows(2)
            .all(|w| w[0]["numerator"].as_f64() >= w[1]["numerator"].as_f64())
    );
    let (status, body) = get(
        &state,
        "/api/indicators/hotline_on_time_rate/breakdown?by=request_type&period=2025",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["shares"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["value"].as_f64().is_some())
    );
    let (status, body) = get(
        &state,
        "/api/indicators/hotline_orders/breakdown?by=nope&period=2025",
    )
    .await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("by"))
    );

    // Analysts' SQL: answers, limits, and refusals that name the rule.
    let (status, body) = post_sql(
        &state,
        serde_json::json!({ "sql": "SELECT COUNT(*) AS n FROM work_orders", "max_rows": 5 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["columns"], serde_json::json!(["n"]));
    assert_eq!(body["rows"][0][0], 100_000);
    for (sql, rule) in [
        ("DROP TABLE work_orders", "read_only"),
        (
            "SELECT * FROM read_csv('/etc/hostname')",
            "no_external_access",
        ),
        ("SELECT 1; SELECT 2", "one_statement"),
    ] {
        let (status, body) = post_sql(&state, serde_json::json!({ "sql": sql })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {body}");
        assert_eq!(body["rule"], rule, "{sql}: {body}");
    }
    let (status, body) = post_sql(&state, serde_json::json!({ "query": "SELECT 1" })).await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sql"))
    );
}
