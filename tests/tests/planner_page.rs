//! The planner page in a real browser, driven over the Chrome DevTools Protocol: a drag on the
//! streamed view makes the server render new frames (idle views render none), and a click
//! fills the pick panel with what is under the pointer.

use databrain_tests::{Server, sample_db};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools client: one request at a time, events skipped.
struct Cdp {
    socket: Socket,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut msg = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("DevTools answers")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == self.next_id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    async fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == json!(false) || v == json!("")) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left",
                    "buttons": if kind == "mouseReleased" { 0 } else { 1 }, "clickCount": 1 }),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drag_changes_the_view_and_a_click_fills_the_pick_panel() {
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 7);
    let server = Server::start(&db);
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tmp.path().join("profile");
    let mut chromium = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {browser} (Debian's chromium): {e}"));
    let stderr = BufReader::new(chromium.stderr.take().unwrap());
    let endpoint = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split("DevTools listening on ").nth(1).map(str::to_owned))
        .expect("chromium prints its DevTools endpoint");
    let (socket, _) = tokio_tungstenite::connect_async(endpoint.trim())
        .await
        .unwrap();
    let mut cdp = Cdp {
        socket,
        next_id: 0,
        session: None,
    };
    let url = format!(
        "{}/planner?scene=demo_district&token={}",
        server.base_url, server.token
    );
    let target = cdp.call("Target.createTarget", json!({ "url": url })).await;
    let attached = cdp
        .call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        )
        .await;
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());

    // Frames arrive over the stream.
    cdp.wait_for(
        "Number(document.getElementById('view').dataset.seq || 0) >= 1",
        "the first streamed frame",
    )
    .await;
    let rect = cdp
        .eval("JSON.stringify(document.getElementById('view').getBoundingClientRect())")
        .await;
    let rect: Value = serde_json::from_str(rect.as_str().unwrap()).unwrap();
    let (cx, cy) = (
        rect["x"].as_f64().unwrap() + rect["width"].as_f64().unwrap() / 2.0,
        rect["y"].as_f64().unwrap() + rect["height"].as_f64().unwrap() / 2.0,
    );
    // Idle: no new frames.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let idle = cdp
        .eval("Number(document.getElementById('view').dataset.seq)")
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        cdp.eval("Number(document.getElementById('view').dataset.seq)")
            .await,
        idle,
        "an idle view rendered"
    );

    // A drag: new frames follow.
    cdp.mouse("mousePressed", cx, cy).await;
    for step in 1..=8 {
        cdp.mouse("mouseMoved", cx + 25.0 * step as f64, cy).await;
    }
    cdp.mouse("mouseReleased", cx + 200.0, cy).await;
    let before = idle.as_f64().unwrap();
    cdp.wait_for(
        &format!("Number(document.getElementById('view').dataset.seq) > {before}"),
        "a frame after the drag",
    )
    .await;

    // A click: the pick panel names what is under the pointer.
    cdp.mouse("mousePressed", cx, cy).await;
    cdp.mouse("mouseReleased", cx, cy).await;
    let picked = cdp
        .wait_for(
            "document.getElementById('pickbody').dataset.picked",
            "the pick panel",
        )
        .await;
    let picked = picked.as_str().unwrap();
    assert!(
        picked.starts_with("320102"),
        "the centre of the demo district picked {picked}"
    );
    let panel = cdp
        .eval("document.getElementById('pickbody').innerText")
        .await;
    assert!(
        panel.as_str().unwrap().contains("2025"),
        "the panel shows no period: {panel}"
    );
    let _ = chromium.kill();
    let _ = chromium.wait();
}
