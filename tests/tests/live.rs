//! Live operations against the real binary: `kill -9` in the middle of appends keeps every
//! committed batch and nothing half-written, and the server restarts on the same file; a
//! client that breaks off mid-upload loads nothing; `databrain load --server` and
//! `databrain feed` write through the running server, and the event stream hears of it.

use databrain_tests::{Server, databrain_bin, sample_db};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Grid cells of the sample (code, community).
fn cells(sample: &Path) -> Vec<(String, String)> {
    let mut reader = csv::Reader::from_path(sample.join("regions.csv")).unwrap();
    reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| &r[2] == "grid")
        .map(|r| (r[0].to_owned(), r[0][..12].to_owned()))
        .collect()
}

fn batch(prefix: &str, n: usize, cells: &[(String, String)]) -> String {
    (0..n)
        .map(|i| {
            let (grid, community) = &cells[i % cells.len()];
            format!(
                "{}\n",
                json!({
                    "order_id": format!("{prefix}{i:07}"),
                    "created_at": "2025-06-02 09:00:00", "due_at": "2025-06-05 09:00:00",
                    "closed_at": "2025-06-03 09:00:00", "request_type": "求助",
                    "content_code": "B02", "channel": "网站", "community_code": community,
                    "grid_id": grid, "satisfaction": 5,
                })
            )
        })
        .collect()
}

/// Runs `databrain` with `DATABRAIN_TOKEN` set to `token` (or unset).
fn databrain_with_token(token: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(databrain_bin());
    match token {
        Some(t) => command.env("DATABRAIN_TOKEN", t),
        None => command.env_remove("DATABRAIN_TOKEN"),
    };
    command.args(args).output().unwrap()
}

async fn count(server: &Server, like: &str) -> i64 {
    let response = server
        .client()
        .post(format!("{}/api/sql", server.base_url))
        .json(&json!({ "sql": format!("SELECT COUNT(*) AS n FROM work_orders WHERE order_id LIKE '{like}'") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["rows"][0][0].as_i64().unwrap()
}

async fn append(server: &Server, body: String) -> reqwest::Result<reqwest::Response> {
    server
        .client()
        .post(format!("{}/api/facts/work_orders", server.base_url))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_committed_batch_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 5);
    let cells = cells(&tmp.path().join("sample"));
    let mut acknowledged = 0i64;
    // Killed at different moments of a large batch: staging, checking, writing, committing.
    for (round, wait_ms) in [(0, 150u64), (1, 600), (2, 1500)] {
        let mut server = Server::start(&db);
        let prefix = format!("K{round}-");
        assert_eq!(count(&server, &format!("K{round}-%")).await, 0);
        for k in 0..3 {
            let small = batch(&format!("{prefix}{k}-"), 500, &cells);
            let answer = append(&server, small).await.unwrap();
            assert_eq!(answer.status(), 200);
            acknowledged += 500;
        }
        let big = batch(&format!("{prefix}big-"), 40_000, &cells);
        let in_flight = {
            let (url, token) = (server.base_url.clone(), server.token.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{url}/api/facts/work_orders"))
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .body(big)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        };
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        server.kill();
        let answered = in_flight.await.unwrap().ok();
        // On the same file again: every acknowledged batch, and the big one whole or not.
        let server = Server::start(&db);
        let total = count(&server, "K%").await;
        let big_rows = count(&server, &format!("{prefix}big-%")).await;
        assert!(
            big_rows == 0 || big_rows == 40_000,
            "round {round}: {big_rows} rows of a batch survived"
        );
        if answered == Some(200) {
            assert_eq!(big_rows, 40_000, "an acknowledged batch was lost");
        }
        eprintln!(
            "round {round}: killed after {wait_ms} ms; the batch answered {answered:?}, {big_rows} rows kept"
        );
        acknowledged += big_rows;
        assert_eq!(total, acknowledged, "round {round}");
        // It answers as before.
        let health: Value = reqwest::get(format!("{}/api/health", server.base_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(health["status"].as_str().is_some(), "{health}");
        assert!(
            health["snapshot"]["ingest_id"].as_i64().unwrap() > 1,
            "{health}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_cut_short_load_nothing_and_the_cli_writes_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 6);
    let sample = tmp.path().join("sample");
    let cells = cells(&sample);
    let server = Server::start(&db);
    let before = count(&server, "%").await;

    // A client that announces a megabyte, sends a few rows and goes away.
    let address = server.base_url.trim_start_matches("http://").to_owned();
    {
        let mut socket = std::net::TcpStream::connect(&address).unwrap();
        let rows = batch("CUT", 50, &cells);
        write!(
            socket,
            "POST /api/facts/work_orders HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: 1000000\r\n\r\n{rows}",
            server.token
        )
        .unwrap();
        socket.flush().unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&server, "CUT%").await, 0);
    assert_eq!(count(&server, "%").await, before);

    // Follow the events while the command line writes.
    let mut events = server
        .client()
        .get(format!("{}/api/events", server.base_url))
        .send()
        .await
        .unwrap();

    // And as the pages follow them: over a WebSocket.
    let ws_url = format!(
        "{}/ws/events?token={}",
        server.base_url.replacen("http", "ws", 1),
        server.token
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();

    // `databrain load --server` with a department CSV.
    let file = tmp.path().join("dept.csv");
    let text = std::fs::read_to_string(sample.join("work_orders.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<String> = lines.take(25).map(|l| l.replacen("WO", "CLI", 1)).collect();
    std::fs::write(&file, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
    let load = [
        "load",
        "--server",
        &server.base_url,
        "--table",
        "work_orders",
        file.to_str().unwrap(),
    ];
    let out = databrain_with_token(Some(&server.token), &load);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("loaded 25"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(count(&server, "CLI%").await, 25);
    // Without a token it is refused before anything is sent.
    let out = databrain_with_token(None, &load);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABRAIN_TOKEN"));

    // `databrain feed` plays events for three seconds.
    let out = databrain_with_token(
        Some(&server.token),
        &[
            "feed",
            "--server",
            &server.base_url,
            "--seconds",
            "3",
            "--rate",
            "100",
            "--sample",
            sample.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fed = count(&server, "LV%").await;
    assert!(fed >= 200, "{fed} orders fed");

    // The stream heard of the commits: a hello, then snapshots.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while text.matches("event: snapshot").count() < 2 {
        let chunk = tokio::time::timeout_at(deadline, events.chunk())
            .await
            .expect("snapshot events within ten seconds")
            .unwrap()
            .expect("the stream is open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("event: hello"), "{text}");
    let mut kinds = Vec::new();
    while !kinds.iter().any(|k| k == "snapshot") {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("events on the WebSocket within ten seconds")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = message {
            let v: Value = serde_json::from_str(&t).unwrap();
            kinds.push(v["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(kinds[0], "hello", "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_alerts_as_they_appear_and_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 8);
    let cells = cells(&tmp.path().join("sample"));
    let server = Server::start(&db);
    let (status, alerts) = {
        let r = server
            .client()
            .get(format!("{}/api/alerts?level=county", server.base_url))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200);
    let alerting: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["region_code"].as_str().unwrap())
        .collect();
    // A Nanjing county without an alert, and its grid cells.
    let county = cells
        .iter()
        .map(|(g, _)| g[..6].to_owned())
        .find(|c| c.starts_with("3201") && !alerting.contains(&c.as_str()))
        .expect("a quiet Nanjing county");
    let own: Vec<(String, String)> = cells
        .iter()
        .filter(|(g, _)| g.starts_with(&county))
        .cloned()
        .collect();
    let url = format!(
        "{}/wall?scene=jiangsu_by_city&token={}",
        server.base_url, server.token
    );
    let mut browser = databrain_tests::cdp::Browser::open(tmp.path(), &url, (1920, 1080)).await;
    let cdp = &mut browser.cdp;
    cdp.wait_for(
        "document.getElementById('alerts').dataset.count !== undefined",
        "the ticker filled from the events",
    )
    .await;
    assert_eq!(
        cdp.eval("Number(document.getElementById('alerts').dataset.count)")
            .await,
        json!(alerting.len()),
        "the ticker shows another set of alerts than the API"
    );

    // A thousand complaints in the county, due 2025-11-11 and closed days late.
    let orders = |closed: &str| -> String {
        (0..1000)
            .map(|i| {
                let (grid, community) = &own[i % own.len()];
                format!(
                    "{}\n",
                    json!({
                        "order_id": format!("WALL{i:05}"),
                        "created_at": "2025-11-10 08:00:00", "due_at": "2025-11-11 08:00:00",
                        "closed_at": closed, "request_type": "投诉", "content_code": "A01",
                        "channel": "热线电话", "community_code": community, "grid_id": grid,
                    })
                )
            })
            .collect()
    };
    let answer = append(&server, orders("2025-11-20 08:00:00"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let shown = format!("document.querySelector('#alerts [data-key*=\"|{county}|\"]') !== null");
    cdp.wait_for(&shown, "the new alert in the ticker").await;
    // Its situation shot stands beside the ticker: a picture of the county.
    let shot = cdp
        .wait_for(
            "document.getElementById('shot').complete && document.getElementById('shot').naturalWidth > 0 \
             && document.getElementById('shot').src",
            "the situation shot",
        )
        .await;
    assert!(
        shot.as_str().unwrap().contains(&format!("region={county}")),
        "{shot}"
    );

    // Handled in time after all (status changes): the alert leaves the wall.
    let answer = append(&server, orders("2025-11-10 12:00:00"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    cdp.wait_for(&format!("!({shown})"), "the alert to clear")
        .await;
}
