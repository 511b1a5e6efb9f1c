//! Staying up: when the render thread dies (here a fault injected as a panic, as a lost device
//! would cause), the API keeps answering, `/api/health` says `degraded`, a new renderer is
//! started, and pictures come back. Needs Vulkan (lavapipe on machines without a GPU).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use server::auth::{Auth, Principal, Role};
use server::state::{AppState, RenderSlot, Rendering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const TOKEN: &str = "restart-test-token-0001";

async fn get(state: &AppState, uri: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn health(state: &AppState) -> Value {
    serde_json::from_slice(&get(state, "/api/health").await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_renderer_is_replaced_and_the_api_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    data_samples::generate(
        &sample,
        &data_samples::Config {
            scale: data_samples::Scale::Small,
            seed: 9,
            progress: false,
        },
    )
    .unwrap();
    let db = tmp.path().join("db.duckdb");
    analytics::Engine::open(&db)
        .unwrap()
        .ingest_dir(&sample)
        .unwrap();
    let engine = analytics::Engine::open_read_only(&db, analytics::OpenMode::Analyst).unwrap();
    let renderer = twin::Renderer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut auth = Auth::default();
    auth.add(
        TOKEN,
        Principal {
            name: "admin".into(),
            role: Role::Admin,
            scope: "32".into(),
            org: None,
        },
    )
    .unwrap();
    let state = AppState::new(
        engine,
        scenes::builtin().unwrap(),
        Rendering::Available(Arc::new(RenderSlot::new(renderer))),
    )
    .with_auth(auth);
    let snapshot = "/api/scenes/demo_district/snapshot.png?width=160&height=90";
    assert_eq!(get(&state, snapshot).await.0, StatusCode::OK);
    assert_eq!(health(&state).await["status"], "ok");

    // The render thread dies.
    state.renderer().unwrap().crash_for_tests();
    // Numbers still flow; pictures are 503 while a new renderer starts; health says so.
    let (status, _) = get(&state, "/api/indicators").await;
    assert_eq!(status, StatusCode::OK);
    let h = health(&state).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["rendering"]["available"], false, "{h}");
    assert_eq!(
        get(&state, snapshot).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Within a while, a new renderer serves again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = health(&state).await;
        if h["status"] == "ok" {
            assert_eq!(h["rendering"]["restarts"], 1, "{h}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renderer was not restarted: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, png) = get(&state, snapshot).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&png).unwrap().width(), 160);
}
