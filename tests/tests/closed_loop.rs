//! The closed loop through the pages alone, in headless Chromium against the built binary: a
//! leader follows an alert from the wall's ticker to the task page and assigns it; the
//! owner's department accepts and resolves it in its inbox; a supervisor sees the evaluation,
//! verifies and closes it. The stored history is then read back through the API.

use databrain_tests::{Server, sample_db};
use serde_json::Value;

const LEADER: &str = "loop-leader-province-0001";
const SUPERVISOR: &str = "loop-supervisor-province-01";
const DEPARTMENT: &str = "loop-department-county-0001";

async fn get(server: &Server, token: &str, path: &str) -> Value {
    server.get_as(token, path).await.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_on_the_wall_becomes_a_verified_task_through_the_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 42);
    // A county with a threshold alert, found with a first server run as admin.
    let county = {
        let server = Server::start(&db);
        let alerts = get(&server, &server.token, "/api/alerts?level=county").await;
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "threshold")
            .expect("the sample has a county threshold alert")["region_code"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let tokens = tmp.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nname = \"wall leader\"\nrole = \"leader\"\nscope = \"32\"\nsecret = \"{LEADER}\"\n\n\
             [[token]]\nname = \"supervision office\"\nrole = \"supervisor\"\nscope = \"32\"\nsecret = \"{SUPERVISOR}\"\n\n\
             [[token]]\nname = \"county office\"\nrole = \"department\"\nscope = \"{county}\"\norg = \"{county}/政府办公室\"\nsecret = \"{DEPARTMENT}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &db,
        &[],
        &["--tokens", tokens.to_str().unwrap(), "--clock", "data"],
    );
    let base = server.base_url.clone();
    let url = format!("{base}/wall?scene=jiangsu_by_city&token={LEADER}");
    let mut browser = databrain_tests::cdp::Browser::open(tmp.path(), &url, (1920, 1080)).await;
    let cdp = &mut browser.cdp;

    // The leader: from the alert in the ticker to its task page, and assign it there.
    let link = cdp
        .wait_for(
            &format!(
                "(document.querySelector('#alerts a[href*=\"region={county}\"]') || {{}}).href"
            ),
            "the alert's link in the ticker",
        )
        .await;
    assert!(link.as_str().unwrap().contains("/tasks?"), "{link}");
    cdp.eval(&format!(
        // Clicked after the evaluation returns: a navigation during it is an error.
        "setTimeout(() => document.querySelector('#alerts a[href*=\"region={county}\"]').click(), 0)"
    ))
    .await;
    cdp.wait_for(
        "document.getElementById('assign') !== null",
        "the form to assign the alert",
    )
    .await;
    cdp.eval("document.getElementById('why').value = 'critical on the wall'; document.getElementById('assign').click()").await;
    let id = cdp
        .wait_for(
            "document.getElementById('taskid') && document.getElementById('taskid').dataset.state === 'assigned' && document.getElementById('taskid').textContent.split(' ')[0]",
            "the new task shown",
        )
        .await;
    let id = id.as_str().unwrap().trim().to_owned();
    assert!(id.starts_with('T'), "{id}");

    // The department: its inbox lists the task; accept, then resolve with what was done.
    cdp.eval(&format!(
        "setTimeout(() => {{ location.href = '{base}/tasks?token={DEPARTMENT}'; }}, 0)"
    ))
    .await;
    cdp.wait_for(
        // The URL first: until the new page has loaded, the old one is still there.
        &format!("location.search.includes('{DEPARTMENT}') && document.querySelector('tr.task[data-id=\"{id}\"]') !== null"),
        "the task in the inbox",
    )
    .await;
    assert_eq!(
        cdp.eval("document.querySelectorAll('tr.task').length")
            .await,
        1,
        "the inbox holds only the department's task"
    );
    cdp.eval(&format!(
        "document.querySelector('tr.task[data-id=\"{id}\"]').click()"
    ))
    .await;
    cdp.wait_for(
        "document.querySelector('#actions button[data-action=\"accept\"]') !== null",
        "the accept button",
    )
    .await;
    cdp.eval("document.querySelector('#actions button[data-action=\"accept\"]').click()")
        .await;
    cdp.wait_for(
        "document.getElementById('taskid').dataset.state === 'accepted'",
        "the task accepted",
    )
    .await;
    cdp.eval("document.getElementById('note').value = 'extra staff on the overdue orders'; document.querySelector('#actions button[data-action=\"resolve\"]').click()").await;
    cdp.wait_for(
        "document.getElementById('taskid').dataset.state === 'resolved'",
        "the task resolved",
    )
    .await;

    // The supervisor: the evaluation is shown; verify (not as effective: no data after the
    // resolution yet) and close.
    cdp.eval(&format!(
        "setTimeout(() => {{ location.href = '{base}/tasks?token={SUPERVISOR}&task={id}'; }}, 0)"
    ))
    .await;
    let outcome = cdp
        .wait_for(
            &format!("location.search.includes('{SUPERVISOR}') && (document.getElementById('outcome') || {{}}).textContent"),
            "the evaluation",
        )
        .await;
    assert_eq!(
        outcome, "pending",
        "resolved at the end of the data: the quarter after has not begun"
    );
    // "Effective" is refused on a pending evaluation, with the rule named on the page.
    cdp.eval("document.getElementById('effective').checked = true; document.querySelector('#actions button[data-action=\"verify\"]').click()").await;
    let refused = cdp
        .wait_for("document.getElementById('msg').textContent", "the refusal")
        .await;
    assert!(refused.as_str().unwrap().contains("evidence"), "{refused}");
    cdp.eval("document.getElementById('effective').checked = false; document.querySelector('#actions button[data-action=\"verify\"]').click()").await;
    cdp.wait_for(
        "document.getElementById('taskid').dataset.state === 'verified'",
        "the task verified",
    )
    .await;
    cdp.eval("document.querySelector('#actions button[data-action=\"close\"]').click()")
        .await;
    cdp.wait_for(
        "document.getElementById('taskid').dataset.state === 'closed'",
        "the task closed",
    )
    .await;

    let task = get(&server, SUPERVISOR, &format!("/api/tasks/{id}")).await;
    let history: Vec<(String, String)> = task["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("assign", "wall leader"),
        ("accept", "county office"),
        ("resolve", "county office"),
        ("verify", "supervision office"),
        ("close", "supervision office"),
    ]
    .iter()
    .map(|(a, w)| ((*a).to_owned(), (*w).to_owned()))
    .collect();
    assert_eq!(history, expected);
    assert_eq!(task["task"]["region_code"], county.as_str());
    assert_eq!(task["events"][0]["note"], "critical on the wall");
    assert_eq!(
        task["events"][2]["note"],
        "extra staff on the overdue orders"
    );
}

/// `databrain tasks seed` (what `make demo` starts from): tasks in every state, cards on the
/// late ones, and "effective" only where the evaluation shows an improvement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeded_loop_has_every_state_and_honest_verdicts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 42);
    let out = databrain_tests::run(&["tasks", "seed", "--db", db.to_str().unwrap()]);
    assert!(out.starts_with("seeded "), "{out}");
    let again = databrain_tests::run(&["tasks", "seed", "--db", db.to_str().unwrap()]);
    assert!(again.contains("already has tasks"), "{again}");
    let server = Server::start_with(&db, &[], &["--clock", "data"]);
    let board = get(&server, &server.token, "/api/tasks").await;
    for (state, n) in board["counts"].as_object().unwrap() {
        assert!(
            n.as_u64().unwrap() > 0,
            "no seeded task is {state}: {}",
            board["counts"]
        );
    }
    assert!(
        board["cards"]["red"].as_u64().unwrap() > 0,
        "no late task was carded"
    );
    let mut effective = 0;
    for t in board["tasks"].as_array().unwrap() {
        if t["effective"] == true {
            effective += 1;
            let id = t["id"].as_str().unwrap();
            let e = get(
                &server,
                &server.token,
                &format!("/api/tasks/{id}/evaluation"),
            )
            .await;
            // Verified on the evaluation of its day; the data has not changed since.
            assert_eq!(e["outcome"], "improved", "{id}: {e}");
        }
        let events = get(
            &server,
            &server.token,
            &format!("/api/tasks/{}", t["id"].as_str().unwrap()),
        )
        .await;
        let times: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["at"].as_str().unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "events out of order: {times:?}"
        );
    }
    eprintln!("{effective} seeded tasks verified effective");
}
