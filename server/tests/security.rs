//! The server played as an attacker would, with data-level assertions: every row in scope for
//! every role × scope × route × format, nothing withheld recoverable from what is shown,
//! encoding tricks refused, tokens never written anywhere, oversized requests refused.
//! Driven without a socket (`oneshot`), rendering off.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
mod common;

use server::auth::Role;
use server::state::{AppState, Rendering};
use std::collections::BTreeMap;
use tower::ServiceExt;

/// (secret, role, scope).
const TOKENS: &[(&str, Role, &str)] = &[
    ("sec-admin-province-01", Role::Admin, "32"),
    ("sec-leader-province-1", Role::Leader, "32"),
    ("sec-analyst-nanjing-1", Role::Analyst, "3201"),
    ("sec-planner-xuanwu-01", Role::Planner, "320102"),
    ("sec-viewer-province-1", Role::Viewer, "32"),
    ("sec-viewer-suzhou-001", Role::Viewer, "3205"),
    ("sec-loader-nanjing-01", Role::Loader, "3201"),
];

fn state(dir: &std::path::Path) -> AppState {
    AppState::new(
        common::server_engine(dir, 9),
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
    .with_auth(common::auth(dir, TOKENS, 10_000.0))
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Vec<u8>) {
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

async fn get(state: &AppState, token: &str, uri: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    send(state, request).await
}

async fn get_json(state: &AppState, token: &str, uri: &str) -> (StatusCode, Value) {
    let (status, bytes) = get(state, token, uri).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn region_codes_of(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["rows", "alerts", "trends"] {
        for r in body[key].as_array().into_iter().flatten() {
            out.extend(r["region_code"].as_str().map(str::to_owned));
            for d in r["drivers"].as_array().into_iter().flatten() {
                out.extend(d["region_code"].as_str().map(str::to_owned));
            }
        }
    }
    out.extend(body["region"].as_str().map(str::to_owned));
    out
}

#[tokio::test]
async fn every_answer_lies_in_the_callers_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let routes = [
        "/api/indicators/hotline_on_time_rate/values?level=county&grain=year",
        "/api/indicators/hotline_orders/values?level=township&grain=quarter&from=2025-Q1",
        "/api/indicators/hotline_intensity/values?level=community&grain=year&from=2025",
        "/api/indicators/hotline_on_time_rate/series?grain=quarter",
        "/api/alerts?level=county",
        "/api/alerts?level=community&min_support=0",
        "/api/trends",
    ];
    for (token, role, scope) in TOKENS {
        for uri in routes {
            let (status, body) = get_json(&state, token, uri).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{} {scope} {uri}: {body}",
                role.as_str()
            );
            for code in region_codes_of(&body) {
                assert!(
                    code.starts_with(scope),
                    "{} {scope} {uri}: {code}",
                    role.as_str()
                );
            }
        }
        // CSV and SDMX-CSV of the same query: every region column in scope.
        for (format, column) in [("csv", "region_code"), ("sdmx-csv", "REF_AREA")] {
            let (status, bytes) = get(
                &state,
                token,
                &format!(
                    "/api/indicators/hotline_orders/values?level=community&grain=year&format={format}"
                ),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            let at = reader
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == column)
                .unwrap();
            let mut n = 0;
            for record in reader.records() {
                let record = record.unwrap();
                assert!(
                    record[at].starts_with(scope),
                    "{format} {scope}: {}",
                    &record[at]
                );
                n += 1;
            }
            assert!(n > 0, "{format} {scope}");
        }
        // Scenes listed are the caller's only.
        let (_, scenes) = get_json(&state, token, "/api/scenes").await;
        for s in scenes["scenes"].as_array().unwrap() {
            if let Some(region) = s["region"].as_str() {
                assert!(region.starts_with(scope), "{scope}: {s}");
            }
        }
    }
}

#[tokio::test]
async fn withheld_cells_stay_withheld_in_every_view_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let (viewer, admin) = ("sec-viewer-province-1", "sec-admin-province-01");
    let uri = "/api/indicators/hotline_on_time_rate/values?level=grid&grain=quarter&region=320102";
    let (_, shown) = get_json(&state, viewer, uri).await;
    let (_, truth) = get_json(&state, admin, uri).await;
    let shown = shown["rows"].as_array().unwrap();
    let truth: BTreeMap<(String, String), &Value> = truth["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["region_code"].as_str().unwrap().to_owned(),
                    r["period"].as_str().unwrap().to_owned(),
                ),
                r,
            )
        })
        .collect();
    let hidden: Vec<&Value> = shown.iter().filter(|r| r["suppressed"] == true).collect();
    assert!(!hidden.is_empty(), "the sample has small grid cells");
    let hidden_keys: std::collections::BTreeSet<(String, String)> = hidden
        .iter()
        .map(|r| {
            (
                r["region_code"].as_str().unwrap().to_owned(),
                r["period"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for r in shown {
        let key = (
            r["region_code"].as_str().unwrap().to_owned(),
            r["period"].as_str().unwrap().to_owned(),
        );
        let t = truth[&key];
        if r["suppressed"] == true {
            for field in [
                "value",
                "denominator",
                "support",
                "rank",
                "previous_value",
                "last_year_value",
            ] {
                assert!(r[field].is_null(), "{field} of a withheld cell: {r}");
            }
        } else {
            // Visible cells rest on enough records and say exactly what the truth says.
            assert!(r["support"].as_f64().unwrap() >= 10.0, "{r}");
            assert_eq!(r["value"], t["value"]);
            // A comparison never carries a withheld neighbour's value.
            let previous = t["previous_value"].clone();
            if !previous.is_null() && r["previous_value"] != previous {
                assert!(r["previous_value"].is_null(), "{r}");
            }
        }
    }
    // Parent minus visible children: a community with a withheld grid cell beside visible
    // ones has at least two withheld; a lone withheld cell (the community's only one with
    // data, so equal to it) has its community withheld too.
    let mut per_parent: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for r in shown {
        let community = r["region_code"]
            .as_str()
            .unwrap()
            .split('-')
            .next()
            .unwrap();
        let e = per_parent
            .entry((
                community.to_owned(),
                r["period"].as_str().unwrap().to_owned(),
            ))
            .or_default();
        e.0 += usize::from(r["suppressed"] == true);
        e.1 += 1;
    }
    let (_, communities) = get_json(
        &state,
        viewer,
        "/api/indicators/hotline_on_time_rate/values?level=community&grain=quarter&region=320102",
    )
    .await;
    let community_withheld: std::collections::BTreeSet<(String, String)> = communities["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["suppressed"] == true)
        .map(|r| {
            (
                r["region_code"].as_str().unwrap().to_owned(),
                r["period"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (key, (hidden, members)) in &per_parent {
        match (*hidden, *members) {
            (1, 1) => assert!(community_withheld.contains(key), "{key:?}"),
            (1, _) => panic!("{key:?}: one withheld grid cell beside visible ones"),
            _ => {}
        }
    }

    // The same cells asked one by one, as a series, or in a narrower range stay withheld.
    for (code, period) in hidden_keys.iter().take(4) {
        let (_, one) = get_json(
            &state,
            viewer,
            &format!("/api/indicators/hotline_on_time_rate/values?level=grid&grain=quarter&region={code}&from={period}&to={period}"),
        )
        .await;
        assert_eq!(one["rows"][0]["suppressed"], true, "{one}");
        let (_, series) = get_json(
            &state,
            viewer,
            &format!("/api/indicators/hotline_on_time_rate/series?region={code}&grain=quarter"),
        )
        .await;
        let point = series["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["period"] == period.as_str())
            .unwrap();
        assert!(
            point["value"].is_null() && point["numerator"] == 0.0,
            "{point}"
        );
    }

    // A non-analyst cannot lower the alert floor.
    let (_, alerts) = get_json(
        &state,
        viewer,
        "/api/alerts?level=grid&grain=quarter&min_support=0",
    )
    .await;
    for a in alerts["alerts"].as_array().unwrap() {
        assert!(
            a["support"].as_f64().unwrap_or(f64::INFINITY) >= 30.0,
            "{a}"
        );
    }

    // Record identifiers are never dimensions.
    for by in ["order_id", "grid_id", "community_code", "repeat_of"] {
        let (status, body) = get_json(
            &state,
            admin,
            &format!("/api/indicators/hotline_orders/breakdown?by={by}&period=2025"),
        )
        .await;
        assert_eq!(
            (status, body["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some("by")),
            "{by}"
        );
    }
    let (_, shares) = get_json(
        &state,
        viewer,
        "/api/indicators/hotline_orders/breakdown?by=content_code&grain=month&period=2025-03&region=320102001001&top=1000",
    )
    .await;
    let withheld = shares["shares"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["suppressed"] == true)
        .count();
    assert_ne!(withheld, 1, "{shares}");
}

#[tokio::test]
async fn encoding_tricks_and_token_leaks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let planner = "sec-planner-xuanwu-01";
    // A percent-encoded scene id is the same scene, and outside a district planner's scope.
    for uri in [
        "/api/scenes/jiangsu_by_city/snapshot.png",
        "/api/scenes/jiangsu%5Fby%5Fcity/snapshot.png",
        "/api/scenes/%6Aiangsu_by_city/snapshot.png",
    ] {
        let (status, body) = get_json(&state, planner, uri).await;
        assert_eq!(
            (status, body["reason"].as_str()),
            (StatusCode::FORBIDDEN, Some("scope")),
            "{uri}"
        );
    }
    for uri in [
        "/api/indicators/hotline_orders/values?level=county&region=3202",
        "/api/indicators/hotline_orders/values?level=county&re%67ion=3202",
        "/api/indicators/hotline_orders/values?level=c%6Funty&region=%33202",
        "/api/indicators/hotline_orders/values?level=city",
        "/api/alerts?region=32",
        "/api/trends?region=3201",
    ] {
        let (status, _) = get_json(&state, planner, uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
    }
    // A parameter given twice is not a way around the check either.
    let (status, _) = get_json(
        &state,
        planner,
        "/api/indicators/hotline_orders/values?level=county&region=320102&region=3202",
    )
    .await;
    assert_ne!(status, StatusCode::OK);

    // An encoded token key authenticates, and the secret is written nowhere.
    let secret = "sec-viewer-suzhou-001";
    let encoded = "sec%2Dviewer%2Dsuzhou%2D001";
    for uri in [
        format!("/api/indicators?token={secret}"),
        format!("/api/indicators?to%6Ben={secret}"),
        format!("/api/indicators?%74oken={encoded}"),
    ] {
        let request = Request::get(&uri).body(Body::empty()).unwrap();
        let (status, _) = send(&state, request).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let request = Request::get(format!(
        "/api/indicators?token={secret}&to%6Ben=sec-viewer-province-1"
    ))
    .body(Body::empty())
    .unwrap();
    assert_eq!(send(&state, request).await.0, StatusCode::UNAUTHORIZED);
    state.auth.flush_audit();
    let audit = std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap();
    assert!(audit.lines().count() >= 10);
    for (t, _, _) in TOKENS {
        for form in [t.to_string(), t.replace('-', "%2D"), t.replace('-', "%2d")] {
            assert!(
                !audit.contains(&form),
                "the audit log holds a token ({form})"
            );
        }
    }
    assert!(!audit.contains("sec%2Dviewer"));

    // Unknown tokens are rate-limited per address.
    let mut limited = false;
    for i in 0..60 {
        let (status, body) = get_json(&state, &format!("guess-{i:016}"), "/api/indicators").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["reason"], "rate_limited");
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(limited, "guessing tokens is never slowed down");
}

#[tokio::test]
async fn analyst_sql_cannot_reach_outside_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let admin = "sec-admin-province-01";
    let post = |sql: String| {
        Request::post("/api/sql")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::json!({ "sql": sql }).to_string()))
            .unwrap()
    };
    let setting = |state: AppState| async move {
        let (status, bytes) = send(
            &state,
            post(
                "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t"
                    .into(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        body["rows"][0].clone()
    };
    let before = setting(state.clone()).await;
    for attack in [
        "SELECT 1; SET GLOBAL memory_limit = '1MB'",
        "SELECT 1 /* a /* b */ ; SET GLOBAL memory_limit = '1MB'; /* */",
        "SELECT E'\\''; SET GLOBAL memory_limit = '1MB'; SELECT '",
        "SELECT $$ ; $$; SET GLOBAL memory_limit='1MB'",
        "SET GLOBAL memory_limit = '1MB'",
        "PRAGMA threads = 1",
        "SELECT * FROM read_csv('/etc/passwd')",
        "ATTACH ':memory:' AS x",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "1) AS a; SET GLOBAL threads = 1; SELECT (1",
    ] {
        let (status, bytes) = send(&state, post(attack.into())).await;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{attack}: {body}");
        assert!(body["rule"].is_string(), "{attack}: {body}");
    }
    assert_eq!(setting(state.clone()).await, before, "a setting changed");
    // Answers are capped in bytes as well as rows.
    let (status, bytes) = send(
        &state,
        post("SELECT repeat('x', 100000) AS big FROM range(1000)".into()),
    )
    .await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["truncated"], true);
    assert_eq!(body["truncated_by"], "max_bytes");
    assert!(bytes.len() < 9 * 1024 * 1024, "{}", bytes.len());
    // A long query holds neither the other routes' slots nor a second query of its token.
    let mut slow_state = state.clone();
    slow_state.sql_timeout = std::time::Duration::from_secs(3);
    let long = {
        let (state, request) = (
            slow_state.clone(),
            post("SELECT SUM(a.range * b.range) FROM range(100000000) a, range(1000) b".into()),
        );
        tokio::spawn(async move { send(&state, request).await.0 })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _) = send(&slow_state, post("SELECT 1".into())).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a second query of the same token"
    );
    let request = Request::get("/api/indicators/hotline_orders/values?level=city&grain=year")
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&slow_state, request).await.0, StatusCode::OK);
    assert_eq!(long.await.unwrap(), StatusCode::GATEWAY_TIMEOUT);
    // The body is bounded.
    let huge = format!("SELECT '{}'", "x".repeat(200_000));
    assert_eq!(
        send(&state, post(huge)).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn oversized_requests_are_refused_and_others_keep_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let viewer = "sec-viewer-province-1";
    let (status, body) = get_json(
        &state,
        viewer,
        "/api/indicators/hotline_orders/values?level=grid&grain=day",
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("too_large")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("region="),
        "{body}"
    );
    for uri in [
        "/ws/view?scene=demo_district&width=4096&height=4096",
        "/ws/view?scene=demo_district&width=3840&height=3840",
        "/api/scenes/demo_district/snapshot.png?width=4096&height=4096",
    ] {
        let (status, body) = get_json(&state, viewer, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    }
    let long = "x".repeat(5000);
    let (status, body) = get_json(&state, viewer, &format!("/api/alerts?indicator={long}")).await;
    assert_eq!(
        (status, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("indicator"))
    );
    // Meanwhile a normal question is answered.
    let (status, _) = get_json(
        &state,
        viewer,
        "/api/indicators/hotline_orders/values?level=city&grain=year",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_start_page_shows_complete_periods_only() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let (status, page) = get(&state, "sec-leader-province-1", "/?x=1").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    // The data ends in 2025: no KPI row may name a later year.
    assert!(page.contains("<td>2025</td>"), "no 2025 row");
    assert!(
        !page.contains("<td>2026</td>"),
        "a partial year is shown as the latest"
    );
    // Without a token the page holds no data.
    let (status, bytes) = send(&state, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!String::from_utf8(bytes).unwrap().contains("12345"));
}

/// The division tree, its boundaries and the planner's legend and camera: every region in
/// the caller's scope, none outside; the boundaries are those of exactly the regions listed;
/// a region or level outside the scope is refused, like any other route's.
#[tokio::test]
async fn regions_shapes_and_scene_helpers_stay_in_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    for (token, role, scope) in TOKENS {
        let (status, list) = get_json(&state, token, "/api/regions").await;
        assert_eq!(status, StatusCode::OK, "{} {scope}: {list}", role.as_str());
        assert_eq!(list["within"], *scope);
        let codes: Vec<&str> = list["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert!(!codes.is_empty(), "{scope}");
        assert!(
            codes.iter().all(|c| c.starts_with(scope) && *c != *scope),
            "{scope}: {codes:?}"
        );
        // Breadcrumbs start at the scope, never above it.
        let path: Vec<&str> = list["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["code"].as_str().unwrap())
            .collect();
        assert_eq!(path, vec![*scope], "{scope}");
        let level = list["level"].as_str().unwrap();
        let (status, shapes) =
            get_json(&state, token, &format!("/api/regions/shapes?level={level}")).await;
        assert_eq!(status, StatusCode::OK);
        let drawn: Vec<&str> = shapes["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["properties"]["code"].as_str().unwrap())
            .collect();
        assert_eq!(
            drawn, codes,
            "{scope}: a shape for every region listed, and no other"
        );
        for f in shapes["features"].as_array().unwrap() {
            assert_eq!(f["geometry"]["type"], "MultiPolygon");
            let ring = &f["geometry"]["coordinates"][0][0];
            assert!(
                ring.as_array().unwrap().len() >= 4
                    && ring[0] == ring[ring.as_array().unwrap().len() - 1]
            );
        }
        // Finer levels of the scope are listed whole (grid cells of the subtree).
        let (status, grid) = get_json(&state, token, "/api/regions?level=grid").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            grid["regions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["code"].as_str().unwrap().starts_with(scope))
        );
        if *scope != "32" {
            for uri in [
                "/api/regions?within=32",
                "/api/regions/shapes?within=3202&level=county",
                "/api/regions?level=province",
            ] {
                let (status, body) = get_json(&state, token, uri).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{scope} {uri}: {body}");
            }
        }
    }
    let admin = "sec-admin-province-01";
    for (uri, parameter) in [
        ("/api/regions?within=abc", "within"),
        ("/api/regions?level=street", "level"),
        ("/api/regions?within=3201&level=province", "level"),
        ("/api/regions/shapes?colour=red", "colour"),
    ] {
        let (status, body) = get_json(&state, admin, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    }
    // The planner's helpers: a camera for a region of the scene in scope, refused outside it.
    let planner = "sec-planner-xuanwu-01";
    let (status, focus) = get_json(
        &state,
        planner,
        "/api/scenes/demo_district/focus?region=320102001",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{focus}");
    assert!(focus["camera"]["distance_m"].as_f64().unwrap() > 0.0);
    let (status, _) = get_json(
        &state,
        planner,
        "/api/scenes/demo_district/focus?region=320104",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get_json(&state, planner, "/api/scenes/demo_district/focus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, legend) = get_json(&state, planner, "/api/scenes/demo_district/legend").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        legend["legend"]["classes"].as_array().unwrap().len() >= 2,
        "{legend}"
    );
    let (status, _) = get_json(
        &state,
        planner,
        "/api/scenes/demo_district/legend?indicator=nothing",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get_json(
        &state,
        "sec-viewer-suzhou-001",
        "/api/scenes/demo_district/legend",
    )
    .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
}

/// The Parquet download is the same rows as the JSON, in scope, withheld cells empty.
#[tokio::test]
async fn the_parquet_download_is_the_callers_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let uri = "/api/indicators/hotline_on_time_rate/values?level=grid&grain=quarter&region=320102";
    for token in ["sec-viewer-province-1", "sec-analyst-nanjing-1"] {
        let (_, json) = get_json(&state, token, uri).await;
        let (status, bytes) = get(&state, token, &format!("{uri}&format=parquet")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(bytes.starts_with(b"PAR1"));
        let file = tmp.path().join("values.parquet");
        std::fs::write(&file, &bytes).unwrap();
        let csv = analytics::parquet_as_csv(&file).unwrap();
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (code, value, suppressed) = (col("region_code"), col("value"), col("suppressed"));
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let expected = json["rows"].as_array().unwrap();
        assert_eq!(rows.len(), expected.len());
        for (r, e) in rows.iter().zip(expected) {
            assert_eq!(&r[code], e["region_code"].as_str().unwrap());
            assert!(r[code].starts_with("320102"));
            if e["suppressed"] == true {
                assert_eq!(&r[suppressed], "true");
                assert_eq!(&r[value], "", "a withheld value in the Parquet file");
            } else if let Some(v) = e["value"].as_f64() {
                assert!((r[value].parse::<f64>().unwrap() - v).abs() < 1e-12);
            }
        }
    }
}

/// The pages' library is served from the allow-list only.
#[tokio::test]
async fn the_vendor_route_serves_its_list_only() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let (status, body) = get(&state, "", "/vendor/echarts.min.js").await;
    assert_eq!(status, StatusCode::OK, "run `make deps` (npm ci) first");
    assert!(body.len() > 100_000 && String::from_utf8_lossy(&body[..2000]).contains("echarts"));
    for uri in [
        "/vendor/..%2FCargo.toml",
        "/vendor/%2e%2e%2fpackage.json",
        "/vendor/zrender.js",
    ] {
        let (status, body) = get(&state, "", uri).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
