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
    let engine = analytics::Engine::open(&dir.join("db.duckdb")).unwrap();
    engine.ingest_dir(&sample).unwrap();
    AppState::new(
        engine,
        indicators::Catalogue::builtin(),
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let response = server::app(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
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
