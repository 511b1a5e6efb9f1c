//! The router driven without a socket (`tower::ServiceExt::oneshot`), with rendering off so
//! these tests need no GPU; rendering is covered end to end in the `tests` crate.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
mod common;

use server::auth::{Auth, Role};
use server::state::{AppState, Rendering};
use tower::ServiceExt;

fn state(dir: &std::path::Path) -> AppState {
    AppState::new(
        common::server_engine(dir, 5),
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
    .with_auth(auth(dir, 50.0))
}

/// Tokens of the role × scope matrix: (secret, role, scope).
const TOKENS: &[(&str, Role, &str)] = &[
    (ADMIN, Role::Admin, "32"),
    ("leader-province-0001", Role::Leader, "32"),
    ("analyst-province-001", Role::Analyst, "32"),
    ("analyst-nanjing-0001", Role::Analyst, "3201"),
    ("planner-xuanwu-00001", Role::Planner, "320102"),
    ("viewer-province-0001", Role::Viewer, "32"),
];

const ADMIN: &str = "admin-province-00001";

fn auth(dir: &std::path::Path, rate_per_s: f64) -> Auth {
    common::auth(dir, TOKENS, rate_per_s)
}

/// Sends a request, as the admin unless it carries its own token.
async fn send(state: &AppState, mut request: Request<Body>) -> (StatusCode, Vec<u8>) {
    if !request.headers().contains_key("authorization")
        && !request.headers().contains_key("x-anonymous")
        && !request.uri().to_string().contains("token=")
    {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
    }
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
        Some(
            "DATAFLOW,FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS,CONF_STATUS"
        )
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

/// GET as the holder of `token` (`""` for none).
async fn get_as(state: &AppState, token: &str, uri: &str) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    } else {
        // Mark the request so `send` does not add the admin token.
        request = request.header("x-anonymous", "1");
    }
    let (status, bytes) = send(state, request.body(Body::empty()).unwrap()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn roles_and_scopes_decide_who_sees_what() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let values = "/api/indicators/hotline_on_time_rate/values?grain=year&level=";

    // Without a token, or with an unknown one: 401 with a reason; health is public.
    let (status, body) = get_as(&state, "", "/api/indicators").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );
    let (status, body) = get_as(&state, "not-a-known-token-00", "/api/indicators").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    assert_eq!(get_as(&state, "", "/api/health").await.0, StatusCode::OK);

    // The matrix: (route, [expected status per token in TOKENS order]).
    let ok = StatusCode::OK;
    let no = StatusCode::FORBIDDEN;
    let off = StatusCode::SERVICE_UNAVAILABLE; // allowed, but this test has no renderer
    let cases: Vec<(String, [StatusCode; 6])> = vec![
        ("/api/indicators".into(), [ok; 6]),
        ("/api/indicators/hotline_on_time_rate".into(), [ok; 6]),
        (
            format!("{values}county&region=3201"),
            [ok, ok, ok, ok, no, ok],
        ),
        (
            format!("{values}county&region=3202"),
            [ok, ok, ok, no, no, ok],
        ),
        (format!("{values}province"), [ok, ok, ok, no, no, ok]),
        (format!("{values}community&region=320102"), [ok; 6]),
        (
            "/api/indicators/hotline_on_time_rate/series?region=3201&grain=year".into(),
            [ok, ok, ok, ok, no, ok],
        ),
        ("/api/alerts?level=county".into(), [ok; 6]),
        ("/api/alerts?level=city".into(), [ok, ok, ok, ok, no, ok]),
        ("/api/trends".into(), [ok; 6]),
        ("/api/scenes".into(), [ok; 6]),
        (
            "/api/scenes/jiangsu_by_city/snapshot.png".into(),
            [off, off, off, no, no, off],
        ),
        ("/api/scenes/demo_district/snapshot.png".into(), [off; 6]),
        ("/api/scenes/delft/snapshot.png".into(), [off; 6]),
    ];
    for (uri, expected) in &cases {
        for ((token, role, scope), want) in TOKENS.iter().zip(expected) {
            let (status, body) = get_as(&state, token, uri).await;
            assert_eq!(status, *want, "{} {scope} GET {uri}: {body}", role.as_str());
            if status == StatusCode::FORBIDDEN {
                assert_eq!(body["reason"], "scope", "{body}");
                assert!(body["error"].as_str().unwrap().contains(scope), "{body}");
            }
        }
    }

    // Raw SQL: analysts and admins with the province in scope.
    for (token, role, scope) in TOKENS {
        let request = Request::post("/api/sql")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"sql": "SELECT 1 AS one"}"#))
            .unwrap();
        let (status, bytes) = send(&state, request).await;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let expected = match (role, *scope) {
            (Role::Admin | Role::Analyst, "32") => (StatusCode::OK, None),
            (Role::Admin | Role::Analyst, _) => (StatusCode::FORBIDDEN, Some("scope")),
            _ => (StatusCode::FORBIDDEN, Some("role")),
        };
        assert_eq!(
            (status, body["reason"].as_str()),
            expected,
            "{} {scope}: {body}",
            role.as_str()
        );
    }

    // A scoped caller without a region gets its own subtree only.
    let (_, body) = get_as(&state, "analyst-nanjing-0001", &format!("{values}county")).await;
    let rows = body["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["region_code"].as_str().unwrap().starts_with("3201"))
    );
    let (_, alerts) = get_as(
        &state,
        "planner-xuanwu-00001",
        "/api/alerts?level=community",
    )
    .await;
    for a in alerts["alerts"].as_array().unwrap() {
        assert!(
            a["region_code"].as_str().unwrap().starts_with("320102"),
            "{a}"
        );
    }

    // Small cells: grid cells resting on fewer than 10 orders are withheld below analyst.
    let grid = format!("{values}grid&region=320102001");
    let (_, seen) = get_as(&state, "analyst-province-001", &grid).await;
    let (_, withheld) = get_as(&state, "viewer-province-0001", &grid).await;
    let small = |r: &Value| r["denominator"].as_f64().unwrap_or(0.0) < 10.0;
    let seen = seen["rows"].as_array().unwrap();
    let withheld = withheld["rows"].as_array().unwrap();
    assert_eq!(seen.len(), withheld.len());
    let n_small = seen
        .iter()
        .filter(|r| small(r) && !r["value"].is_null())
        .count();
    assert!(n_small > 0, "the sample has small grid cells");
    for (a, v) in seen.iter().zip(withheld) {
        if small(a) {
            assert!(v["value"].is_null() && v["suppressed"] == true, "{v}");
        } else if v["suppressed"] == true {
            // Withheld as a complement of a small cell (see server/tests/security.rs).
            assert!(v["value"].is_null(), "{v}");
        } else {
            assert_eq!(a["value"], v["value"]);
        }
    }
    assert!(seen.iter().all(|r| r.get("suppressed").is_none()));

    // Every request is in the audit log: who, what, when, status, rows.
    state.auth.flush_audit();
    let audit = std::fs::read_to_string(tmp.path().join("audit.jsonl")).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= cases.len() * 6, "{}", entries.len());
    let grid_entry = entries
        .iter()
        .rev()
        .find(|e| e["who"] == "viewer 32" && e["what"].as_str().unwrap().contains("level=grid"))
        .unwrap();
    assert_eq!(grid_entry["rows"], withheld.len());
    assert_eq!(grid_entry["status"], 200);
    assert!(grid_entry["when"].as_str().unwrap().starts_with("20"));
    let refused = entries.iter().find(|e| e["status"] == 401).unwrap();
    assert!(refused["who"].is_null());
}

#[tokio::test]
async fn tokens_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    // One request a second, a burst of four.
    let state = state(tmp.path()).with_auth(auth(tmp.path(), 1.0));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            get_as(&state, "viewer-province-0001", "/api/indicators")
                .await
                .0,
        );
    }
    assert_eq!(statuses[..4], [StatusCode::OK; 4]);
    let (status, body) = get_as(&state, "viewer-province-0001", "/api/indicators").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // Another token has its own bucket.
    assert_eq!(
        get_as(&state, "leader-province-0001", "/api/indicators")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_openapi_description_matches_the_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let state = state(tmp.path());
    let (status, doc) = get_as(&state, "", "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let described: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    // The routes the README documents; the description is generated from the router's own
    // declarations, so a route missing here is one the README does not know.
    let served: std::collections::BTreeSet<(String, String)> = [
        ("get", "/"),
        ("get", "/wall"),
        ("get", "/analyst"),
        ("get", "/planner"),
        ("get", "/tiles"),
        ("get", "/pages/common.js"),
        ("get", "/vendor/{file}"),
        ("get", "/api/health"),
        ("get", "/api/openapi.json"),
        ("get", "/api/indicators"),
        ("get", "/api/indicators/{id}"),
        ("get", "/api/indicators/{id}/values"),
        ("get", "/api/indicators/{id}/series"),
        ("get", "/api/indicators/{id}/breakdown"),
        ("get", "/api/alerts"),
        ("get", "/api/trends"),
        ("post", "/api/sql"),
        ("get", "/api/scenes"),
        ("get", "/api/scenes/{id}/snapshot.png"),
        ("get", "/api/scenes/{id}/legend"),
        ("get", "/api/scenes/{id}/focus"),
        ("get", "/api/scenes/{id}/tiles/tileset.json"),
        ("get", "/api/scenes/{id}/tiles/{file}"),
        ("get", "/api/regions"),
        ("get", "/api/regions/shapes"),
        ("get", "/ws/view"),
        ("post", "/api/loads"),
        ("post", "/api/facts/{table}"),
        ("get", "/api/events"),
        ("get", "/ws/events"),
        ("get", "/tasks"),
        ("get", "/api/tasks"),
        ("post", "/api/tasks"),
        ("get", "/api/tasks/{id}"),
        ("post", "/api/tasks/{id}/events"),
        ("get", "/api/tasks/{id}/evaluation"),
        ("get", "/api/work-orders/{id}/events"),
        ("get", "/open311/v2/services.json"),
        ("get", "/open311/v2/requests.json"),
        ("get", "/open311/v2/requests/{file}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(described, served);
    // Private operations carry the bearer scheme and their refusals; public ones do not.
    for (method, path) in &described {
        let op = &doc["paths"][path][method];
        let public = [
            "/",
            "/wall",
            "/analyst",
            "/planner",
            "/tiles",
            "/tasks",
            "/pages/common.js",
            "/vendor/{file}",
            "/api/health",
            "/api/openapi.json",
        ]
        .contains(&path.as_str());
        assert_eq!(op["security"].is_array(), !public, "{method} {path}: {op}");
        if !public {
            assert_eq!(
                op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
        }
    }
    // Every described route is served: none answers 404 or 405 with example parameters (a
    // task and a work order that exist).
    let task = state
        .engine
        .task_event(None, |_| {
            Ok(workflow::Event {
                action: workflow::Action::Assign(workflow::NewTask {
                    region_code: "320102".into(),
                    indicator: "hotline_on_time_rate".into(),
                    grain: "quarter".into(),
                    period: "2025-Q1".into(),
                    value: 0.7,
                    threshold: Some(0.8),
                    support: Some(100.0),
                    severity: workflow::Severity::Warning,
                    owner_org: "320102/政府办公室".into(),
                    working_days: 5,
                }),
                actor: workflow::Actor {
                    name: "admin".into(),
                    role: workflow::ActorRole::Admin,
                    scope: "32".into(),
                    org: None,
                },
                at: chrono::NaiveDate::from_ymd_opt(2025, 6, 2)
                    .unwrap()
                    .and_hms_opt(9, 0, 0)
                    .unwrap(),
                note: String::new(),
            })
        })
        .unwrap()
        .task
        .id;
    let order: String = state
        .engine
        .with_conn(|c| {
            Ok(
                c.query_row("SELECT MIN(order_id) FROM work_orders", [], |r| r.get(0))
                    .unwrap(),
            )
        })
        .unwrap();
    for (method, path) in &served {
        let uri = path
            .replace("/vendor/{file}", "/vendor/echarts.min.js")
            .replace("/tiles/{file}", "/tiles/t0.glb")
            .replace(
                "/api/indicators/{id}",
                "/api/indicators/hotline_on_time_rate",
            )
            .replace("/api/scenes/{id}", "/api/scenes/demo_district")
            .replace("/api/tasks/{id}", &format!("/api/tasks/{task}"))
            .replace(
                "/api/work-orders/{id}",
                &format!("/api/work-orders/{order}"),
            )
            .replace("{file}", &format!("{order}.json"))
            .replace("{table}", "work_orders");
        let bearer = format!("Bearer {ADMIN}");
        let request = match method.as_str() {
            "get" => Request::get(&uri)
                .header("authorization", &bearer)
                .body(Body::empty())
                .unwrap(),
            "post" => Request::post(&uri)
                .header("authorization", &bearer)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"sql": "SELECT 1"}"#))
                .unwrap(),
            other => panic!("method {other}"),
        };
        // The event stream never ends: only its status is read.
        let status = server::app(state.clone())
            .oneshot(request)
            .await
            .unwrap()
            .status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {status}"
        );
    }
    // And an unknown one is not.
    assert_eq!(get(&state, "/api/nothing").await.0, StatusCode::NOT_FOUND);
}
