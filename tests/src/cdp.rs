//! A minimal Chrome DevTools Protocol client over headless Chromium, for tests that drive a
//! page as a person would (wait for the DOM, drag, click).

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools client: one request at a time, events skipped.
pub struct Cdp {
    socket: Socket,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let v = self.answer(method, params).await;
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }

    /// The whole answer to a command, an error included.
    async fn answer(&mut self, method: &str, params: Value) -> Value {
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
                    return v;
                }
            }
        }
    }

    /// The value of `expression` in the page; `null` when the page navigated away while it
    /// ran (the next page is not there yet: `wait_for` asks again).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let v = self
            .answer(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        if let Some(error) = v.get("error") {
            let navigated = error["message"]
                .as_str()
                .is_some_and(|m| m.contains("navigated or closed"));
            assert!(navigated, "Runtime.evaluate: {v}");
            return Value::Null;
        }
        v["result"]["result"]["value"].clone()
    }

    pub async fn wait_for(&mut self, expression: &str, what: &str) -> Value {
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

    /// Loads `url` in the page (what typing it into the address bar does).
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Asks the page for no motion (`prefers-reduced-motion: reduce`): what a person can set
    /// in their system, and what makes pages still enough for golden screenshots.
    pub async fn reduce_motion(&mut self) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-reduced-motion", "value": "reduce" }] }),
        )
        .await;
    }

    /// A PNG screenshot of the viewport, decoded.
    pub async fn screenshot(&mut self) -> image::RgbaImage {
        use base64::Engine as _;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 screenshot");
        image::load_from_memory(&png)
            .expect("a PNG screenshot")
            .to_rgba8()
    }

    /// The rectangles (in screenshot pixels) of the visible elements matching `selector`.
    pub async fn rects(&mut self, selector: &str) -> Vec<crate::golden::Mask> {
        let js = format!(
            "JSON.stringify([...document.querySelectorAll({sel})]\
             .filter(e => e.checkVisibility({{ visibilityProperty: true }})).map(e => e.getBoundingClientRect())\
             .map(r => [r.x, r.y, r.width, r.height].map(v => v * devicePixelRatio)))",
            sel = serde_json::to_string(selector).unwrap()
        );
        let v = self.eval(&js).await;
        let rects: Vec<[f64; 4]> = serde_json::from_str(v.as_str().unwrap_or("[]")).unwrap();
        rects
            .into_iter()
            .map(|[x, y, w, h]| crate::golden::Mask {
                x: x.max(0.0).floor() as u32,
                y: y.max(0.0).floor() as u32,
                width: (w + x.min(0.0)).max(0.0).ceil() as u32 + 1,
                height: (h + y.min(0.0)).max(0.0).ceil() as u32 + 1,
            })
            .collect()
    }

    pub async fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left",
                    "buttons": if kind == "mouseReleased" { 0 } else { 1 }, "clickCount": 1 }),
        )
        .await;
    }
}

/// Headless Chromium with one page open on `url`, driven over DevTools; killed on drop.
pub struct Browser {
    child: Child,
    pub cdp: Cdp,
}

impl Browser {
    /// Starts Chromium (`CHROMIUM`, default `chromium`) with a fresh profile in `dir` at
    /// `width`×`height` and opens `url`.
    pub async fn open(dir: &std::path::Path, url: &str, (width, height): (u32, u32)) -> Browser {
        let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::tempdir_in(dir).unwrap().keep();
        let mut child = Command::new(&browser)
            .args(crate::CHROMIUM_FLAGS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {browser} (Debian's chromium): {e}"));
        let stderr = BufReader::new(child.stderr.take().unwrap());
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
        let target = cdp.call("Target.createTarget", json!({ "url": url })).await;
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        Browser { child, cdp }
    }
}

impl Browser {
    /// Like [`Browser::open`], with a viewport of exactly `size` CSS pixels at one device
    /// pixel each (a wall's screen; a headless window's viewport is smaller than the window)
    /// and `prefers-reduced-motion: reduce`, both set before `url` loads.
    pub async fn open_still(dir: &std::path::Path, url: &str, size: (u32, u32)) -> Browser {
        let mut b = Browser::open(dir, "about:blank", size).await;
        b.cdp
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": size.0, "height": size.1, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        b.cdp.reduce_motion().await;
        b.cdp.navigate(url).await;
        b
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
