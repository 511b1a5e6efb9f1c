//! The closed loop through the router: tasks from alerts, every transition by the right and
//! the wrong roles, scopes and organisations (with the rule each refusal names, the stored
//! history and the audit log checked), supervision by rule, and the 12345 records: the
//! event history and the Open311 GeoReport v2 facade. Driven without a socket (`oneshot`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
mod common;

use server::auth::Role;
use server::state::{AppState, Clock, Rendering};
use tower::ServiceExt;

async fn call(
    state: &AppState,
    token: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let response = server::app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A county (outside Nanjing) with a threshold alert a province leader sees, and the alert.
fn alerted_county(engine: &analytics::Engine) -> analytics::Alert {
    let leader = analytics::Audience::new(
        "32",
        analytics::SmallCells::Withheld {
            floor: analytics::SMALL_CELL_FLOOR,
        },
    )
    .unwrap();
    engine
        .alerts(&leader, &analytics::AlertQuery::default())
        .unwrap()
        .into_iter()
        .find(|a| {
            a.kind == analytics::AlertKind::Threshold
                && !a.region_code.starts_with("3201")
                && a.region_code.len() == 6
        })
        .expect("the sample has a threshold alert outside Nanjing")
}

struct Loop {
    state: AppState,
    alert: analytics::Alert,
    dir: tempfile::TempDir,
}

const ADMIN: &str = "tasks-admin-province1";
const LEADER: &str = "tasks-leader-province";
const NANJING_LEADER: &str = "tasks-leader-nanjing1";
const SUPERVISOR: &str = "tasks-supervisor-prov";
const OWNER: &str = "tasks-department-owner";
const OTHER_DEPT: &str = "tasks-department-other";
const VIEWER: &str = "tasks-viewer-province1";
const ANALYST: &str = "tasks-analyst-province";
const LOADER: &str = "tasks-loader-province1";

fn setup(auto_tasks: bool) -> Loop {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::server_engine(dir.path(), 42);
    let alert = alerted_county(&engine);
    let county = alert.region_code.clone();
    // Another county of the same city, for a department that is not the owner.
    let other = if county.ends_with('1') {
        format!("{}2", &county[..5])
    } else {
        format!("{}1", &county[..5])
    };
    let tokens: Vec<(&str, Role, &str)> = vec![
        (ADMIN, Role::Admin, "32"),
        (LEADER, Role::Leader, "32"),
        (NANJING_LEADER, Role::Leader, "3201"),
        (SUPERVISOR, Role::Supervisor, "32"),
        (OWNER, Role::Department, &county),
        (OTHER_DEPT, Role::Department, &other),
        (VIEWER, Role::Viewer, "32"),
        (ANALYST, Role::Analyst, "32"),
        (LOADER, Role::Loader, "32"),
    ];
    let auth = common::auth(dir.path(), &tokens, 10_000.0);
    let state = AppState::new(
        engine,
        scenes::builtin().unwrap(),
        Rendering::Unavailable("no renderer in this test".into()),
    )
    .with_auth(auth)
    .with_clock(Clock::Data, auto_tasks);
    Loop { state, alert, dir }
}

fn audit(l: &Loop) -> Vec<Value> {
    l.state.auth.flush_audit();
    std::fs::read_to_string(l.dir.path().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn every_transition_checks_role_scope_and_owner() {
    let l = setup(false);
    let s = &l.state;
    let a = &l.alert;
    let owner_org = common::department_org(&a.region_code);
    let new = json!({"indicator": a.indicator, "region": a.region_code, "period": a.period, "owner_org": owner_org, "working_days": 5, "note": "from the wall"});
    // Only leaders (and admins) assign, and only in scope.
    for (token, status, rule) in [
        (VIEWER, StatusCode::FORBIDDEN, Some("role")),
        (ANALYST, StatusCode::FORBIDDEN, Some("role")),
        (LOADER, StatusCode::FORBIDDEN, Some("role")),
        (SUPERVISOR, StatusCode::FORBIDDEN, Some("role")),
        (OWNER, StatusCode::FORBIDDEN, Some("role")),
        (NANJING_LEADER, StatusCode::FORBIDDEN, None),
    ] {
        let (got, body) = call(s, token, "POST", "/api/tasks", Some(new.clone())).await;
        assert_eq!(got, status, "{token}: {body}");
        assert_eq!(body["rule"].as_str(), rule, "{token}: {body}");
    }
    // A task needs an alert the leader sees.
    let (got, body) = call(s, LEADER, "POST", "/api/tasks", Some(json!({"indicator": a.indicator, "region": a.region_code, "period": "2019-Q1", "grain": "quarter"}))).await;
    assert_eq!(
        (got, body["rule"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("evidence")),
        "{body}"
    );
    let (got, body) = call(
        s,
        LEADER,
        "POST",
        "/api/tasks",
        Some(json!({"indicator": a.indicator, "region": "32"})),
    )
    .await;
    assert_eq!(
        (got, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("region")),
        "{body}"
    );
    let (got, body) = call(
        s,
        LEADER,
        "POST",
        "/api/tasks",
        Some(json!({"indicator": a.indicator, "region": a.region_code, "bogus": 1})),
    )
    .await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    let (got, task) = call(s, LEADER, "POST", "/api/tasks", Some(new.clone())).await;
    assert_eq!(got, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    // The figures are the alert's, not the request's.
    assert_eq!(task["value"].as_f64(), Some(a.value));
    assert_eq!(task["support"].as_f64(), Some(a.support));
    assert_eq!(task["state"], "assigned");
    let (got, body) = call(s, LEADER, "POST", "/api/tasks", Some(new.clone())).await;
    assert_eq!(
        (got, body["reason"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate")),
        "{body}"
    );

    let uri = format!("/api/tasks/{id}/events");
    let mut accepted = vec!["assign"];
    // (who, body, expected status, rule named when refused)
    let steps: Vec<(&str, Value, StatusCode, Option<&str>)> = vec![
        (
            VIEWER,
            json!({"action": "accept"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        (
            LEADER,
            json!({"action": "accept"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        (
            SUPERVISOR,
            json!({"action": "accept"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        // Another county's department does not even see the task.
        (
            OTHER_DEPT,
            json!({"action": "accept"}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            NANJING_LEADER,
            json!({"action": "reassign", "owner_org": owner_org, "note": "x"}),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            OWNER,
            json!({"action": "resolve", "note": "done"}),
            StatusCode::CONFLICT,
            Some("state"),
        ),
        (
            OWNER,
            json!({"action": "accept", "working_days": 3}),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            OWNER,
            json!({"action": "escalate"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        (OWNER, json!({"action": "accept"}), StatusCode::OK, None),
        (
            OWNER,
            json!({"action": "accept"}),
            StatusCode::CONFLICT,
            Some("state"),
        ),
        (
            OWNER,
            json!({"action": "ask_extension", "working_days": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("note"),
        ),
        (
            OWNER,
            json!({"action": "ask_extension", "working_days": 99, "note": "crew"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("deadline"),
        ),
        (
            OWNER,
            json!({"action": "ask_extension", "working_days": 2, "note": "waiting for the crew"}),
            StatusCode::OK,
            None,
        ),
        (
            OWNER,
            json!({"action": "grant_extension"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        (
            LEADER,
            json!({"action": "grant_extension"}),
            StatusCode::OK,
            None,
        ),
        (
            SUPERVISOR,
            json!({"action": "refuse_extension", "note": "no"}),
            StatusCode::CONFLICT,
            Some("extension"),
        ),
        (OWNER, json!({"action": "start"}), StatusCode::OK, None),
        (
            OWNER,
            json!({"action": "resolve"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("note"),
        ),
        (
            OWNER,
            json!({"action": "resolve", "note": "two more teams on the backlog"}),
            StatusCode::OK,
            None,
        ),
        (
            LEADER,
            json!({"action": "verify", "effective": false}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        // Resolved at the end of the data: the quarter after has no data, so no effect yet.
        (
            SUPERVISOR,
            json!({"action": "verify", "effective": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("evidence"),
        ),
        (
            SUPERVISOR,
            json!({"action": "verify", "effective": false}),
            StatusCode::OK,
            None,
        ),
        (
            OWNER,
            json!({"action": "close"}),
            StatusCode::FORBIDDEN,
            Some("role"),
        ),
        (LEADER, json!({"action": "close"}), StatusCode::OK, None),
        (
            SUPERVISOR,
            json!({"action": "reopen", "note": "again"}),
            StatusCode::CONFLICT,
            Some("state"),
        ),
        (
            ADMIN,
            json!({"action": "frobnicate"}),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (who, body, status, rule) in &steps {
        let (got, answer) = call(s, who, "POST", &uri, Some(body.clone())).await;
        assert_eq!(got, *status, "{who} {body}: {answer}");
        assert_eq!(answer["rule"].as_str(), *rule, "{who} {body}: {answer}");
        if got == StatusCode::OK {
            accepted.push(body["action"].as_str().unwrap());
            assert_eq!(answer["seq"].as_u64(), Some(accepted.len() as u64));
        }
    }
    // The stored history is exactly the accepted events, each naming who made it.
    let (got, shown) = call(s, LEADER, "GET", &format!("/api/tasks/{id}"), None).await;
    assert_eq!(got, StatusCode::OK);
    let events = shown["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, accepted);
    let owner_name = format!("department {}", a.region_code);
    for e in events {
        let who = e["actor"]["name"].as_str().unwrap();
        match e["action"].as_str().unwrap() {
            "accept" | "ask_extension" | "start" | "resolve" => assert_eq!(who, owner_name),
            "verify" => assert_eq!(who, "supervisor 32"),
            _ => assert_eq!(who, "leader 32"),
        }
    }
    assert_eq!(shown["task"]["state"], "closed");
    assert_eq!(shown["task"]["effective"], false);
    assert_eq!(shown["task"]["extensions_granted"], 1);
    assert!(shown["evaluation"]["outcome"].is_string());
    // Every attempt is in the audit log with the task, the action and, when refused, the rule.
    let lines = audit(&l);
    let on_task: Vec<&Value> = lines
        .iter()
        .filter(|x| x["detail"]["task"] == json!(id))
        .collect();
    assert_eq!(
        on_task.len(),
        steps.len() + 1,
        "one line per attempt on the task, and the assignment"
    );
    let refused_rules: Vec<&str> = on_task
        .iter()
        .filter_map(|x| x["detail"]["refused"].as_str())
        .collect();
    let expected_rules: Vec<&str> = steps.iter().filter_map(|(_, _, _, r)| *r).collect();
    assert_eq!(refused_rules, expected_rules);

    // Who sees what: the owner and the province roles that read tasks; not another county's
    // department, not a viewer; a Nanjing leader does not see a task outside Nanjing.
    for (token, status, n) in [
        (OWNER, 200, 1),
        (OTHER_DEPT, 200, 0),
        (ANALYST, 200, 1),
        (SUPERVISOR, 200, 1),
        (NANJING_LEADER, 200, 0),
        (VIEWER, 403, 0),
        (LOADER, 403, 0),
    ] {
        let (got, list) = call(s, token, "GET", "/api/tasks", None).await;
        assert_eq!(got.as_u16(), status, "{token}: {list}");
        if status == 200 {
            assert_eq!(list["tasks"].as_array().unwrap().len(), n, "{token}");
            assert_eq!(
                list["counts"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_u64().unwrap())
                    .sum::<u64>() as usize,
                n
            );
        }
    }
    let (got, _) = call(s, NANJING_LEADER, "GET", &format!("/api/tasks/{id}"), None).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    let (got, _) = call(
        s,
        OTHER_DEPT,
        "GET",
        &format!("/api/tasks/{id}/evaluation"),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    // The ledger shows the closed task in the county's accountability indicators.
    let (got, v) = call(
        s,
        ADMIN,
        "GET",
        &format!(
            "/api/indicators/tasks_created/values?level=county&grain=year&region={}",
            a.region_code
        ),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{v}");
    let total: f64 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["numerator"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 1.0, "{v}");
}

#[tokio::test]
async fn supervision_cards_late_tasks_and_makes_tasks_of_critical_alerts() {
    let l = setup(true);
    let s = &l.state;
    let now = s.clock.now(&s.engine).unwrap();
    let a = &l.alert;
    let new = workflow::NewTask {
        region_code: a.region_code.clone(),
        indicator: a.indicator.clone(),
        grain: a.grain.as_str().into(),
        period: "2023-Q4".into(),
        value: a.value,
        threshold: a.threshold,
        support: Some(a.support),
        severity: workflow::Severity::Warning,
        owner_org: common::department_org(&a.region_code),
        working_days: 5,
    };
    let late = s
        .engine
        .task_event(None, |_| {
            Ok(workflow::Event {
                action: workflow::Action::Assign(new),
                actor: workflow::Actor {
                    name: "leader".into(),
                    role: workflow::ActorRole::Leader,
                    scope: "32".into(),
                    org: None,
                },
                at: now - chrono::Duration::days(30),
                note: String::new(),
            })
        })
        .unwrap()
        .task
        .id;
    let swept = server::http::tasks::sweep(s, true).unwrap();
    assert_eq!(swept.escalated, vec![(late.clone(), workflow::Card::Red)]);
    let critical: Vec<analytics::Alert> = s
        .engine
        .alerts(
            &analytics::Audience::trusted(),
            &analytics::AlertQuery::default(),
        )
        .unwrap()
        .into_iter()
        .filter(|a| a.severity == indicators::Status::Critical)
        .collect();
    assert!(!critical.is_empty(), "the sample has critical alerts");
    assert_eq!(swept.created.len(), critical.len());
    // A second round has nothing left to do.
    assert_eq!(
        server::http::tasks::sweep(s, true).unwrap(),
        server::http::tasks::Swept::default()
    );
    let tasks = s.engine.tasks(None).unwrap();
    for c in &critical {
        let t = tasks
            .iter()
            .find(|t| {
                t.raised_by.indicator == c.indicator
                    && t.raised_by.region_code == c.region_code
                    && t.raised_by.period == c.period
            })
            .expect("a task per critical alert");
        assert_eq!(
            t.raised_by.owner_org,
            workflow::default_owner(&c.region_code)
        );
        // Stored as JSON: equal to the last bits serde_json keeps.
        assert!((t.raised_by.value - c.value).abs() <= 1e-12 * c.value.abs().max(1.0));
    }
    let (_, events) = s.engine.task(&late).unwrap().unwrap();
    let last = &events.last().unwrap().event;
    assert_eq!(
        (last.action.name(), last.actor.role),
        ("escalate", workflow::ActorRole::System)
    );
    let lines = audit(&l);
    assert!(lines.iter().any(|x| x["who"] == "system"
        && x["detail"]["task"] == json!(late)
        && x["detail"]["action"] == "escalate"));
    assert_eq!(
        lines
            .iter()
            .filter(|x| x["who"] == "system" && x["detail"]["action"] == "assign")
            .count(),
        critical.len()
    );
    // The board puts the red card first.
    let (_, board) = call(s, LEADER, "GET", "/api/tasks", None).await;
    assert_eq!(board["tasks"][0]["id"], json!(late));
    assert_eq!(board["tasks"][0]["card"], "red");
    assert_eq!(board["cards"]["red"], 1);
}

const GEOREPORT_REQUEST_FIELDS: [&str; 17] = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
];
const GEOREPORT_SERVICE_FIELDS: [&str; 7] = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
];

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(fields: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
    k.sort();
    k
}

#[tokio::test]
async fn open311_and_the_event_history_follow_the_scope() {
    let l = setup(false);
    let s = &l.state;
    let county = l.alert.region_code.clone();
    let (got, services) = call(s, OWNER, "GET", "/open311/v2/services.json", None).await;
    assert_eq!(got, StatusCode::OK, "{services}");
    assert!(!services.as_array().unwrap().is_empty());
    for svc in services.as_array().unwrap() {
        assert_eq!(keys(svc), sorted(&GEOREPORT_SERVICE_FIELDS));
    }
    let uri =
        "/open311/v2/requests.json?start_date=2025-10-01T00:00:00%2B08:00&end_date=2025-11-01";
    let (got, list) = call(s, OWNER, "GET", uri, None).await;
    assert_eq!(got, StatusCode::OK, "{list}");
    let list = list.as_array().unwrap();
    let in_scope: i64 = s
        .engine
        .with_conn(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM work_orders WHERE starts_with(community_code, ?) AND created_at >= '2025-10-01' AND created_at < '2025-11-01'",
                [&county],
                |r| r.get(0),
            )
            .unwrap())
        })
        .unwrap();
    assert_eq!(list.len() as i64, in_scope.min(1000));
    for r in list {
        assert_eq!(keys(r), sorted(&GEOREPORT_REQUEST_FIELDS));
        assert!(
            r["address_id"].as_str().unwrap().starts_with(&county),
            "{r}"
        );
        let requested = r["requested_datetime"].as_str().unwrap();
        assert!(
            requested.ends_with("+08:00")
                && ("2025-10-01T00:00:00".."2025-11-01").contains(&requested),
            "{requested}"
        );
        assert!(matches!(r["status"].as_str(), Some("open" | "closed")));
    }
    let (_, open) = call(s, OWNER, "GET", &format!("{uri}&status=open"), None).await;
    assert!(
        open.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "open")
    );
    // Ids: one of the scope and one outside it; only the first comes back.
    let mine = list[0]["service_request_id"].as_str().unwrap().to_owned();
    let outside: String = s
        .engine
        .with_conn(|c| {
            Ok(c.query_row(
                "SELECT MIN(order_id) FROM work_orders WHERE NOT starts_with(community_code, ?)",
                [&county],
                |r| r.get(0),
            )
            .unwrap())
        })
        .unwrap();
    let (_, both) = call(
        s,
        OWNER,
        "GET",
        &format!("/open311/v2/requests.json?service_request_id={mine},{outside}"),
        None,
    )
    .await;
    let ids: Vec<&str> = both
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service_request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![mine.as_str()]);
    let (got, one) = call(
        s,
        OWNER,
        "GET",
        &format!("/open311/v2/requests/{mine}.json"),
        None,
    )
    .await;
    assert_eq!(
        (got, one.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (got, _) = call(
        s,
        OWNER,
        "GET",
        &format!("/open311/v2/requests/{outside}.json"),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    let (got, _) = call(
        s,
        ADMIN,
        "GET",
        &format!("/open311/v2/requests/{outside}.json"),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::OK);
    for token in [VIEWER, LOADER] {
        let (got, _) = call(s, token, "GET", "/open311/v2/requests.json", None).await;
        assert_eq!(got, StatusCode::FORBIDDEN);
    }
    let (got, body) = call(
        s,
        OWNER,
        "GET",
        "/open311/v2/requests.json?status=pending",
        None,
    )
    .await;
    assert_eq!(
        (got, body["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
    // The event history: in order, starting with the hotline's acceptance.
    let (got, history) = call(
        s,
        OWNER,
        "GET",
        &format!("/api/work-orders/{mine}/events"),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{history}");
    let events = history["events"].as_array().unwrap();
    assert_eq!(events[0]["kind"], "accept");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .all(|e| indicators::facts::WORK_ORDER_EVENT_KINDS
                .contains(&e["kind"].as_str().unwrap()))
    );
    let (got, _) = call(
        s,
        OWNER,
        "GET",
        &format!("/api/work-orders/{outside}/events"),
        None,
    )
    .await;
    assert_eq!(got, StatusCode::NOT_FOUND);
}
