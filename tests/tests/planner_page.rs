//! The planner page in a real browser, driven over the Chrome DevTools Protocol: a drag on the
//! streamed view makes the server render new frames (idle views render none), and a click
//! fills the pick panel with what is under the pointer.

use databrain_tests::cdp::Browser;
use databrain_tests::{Server, sample_db};
use serde_json::Value;
use std::time::Duration;

/// A server on the seed-7 sample and the planner page of the demo district (`extra` added to
/// its URL), once its first streamed frame is drawn.
async fn planner(dir: &std::path::Path, extra: &str) -> (Server, Browser) {
    let db = sample_db(dir, 7);
    let server = Server::start(&db);
    let url = format!(
        "{}/planner?scene=demo_district{extra}&token={}",
        server.base_url, server.token
    );
    let mut browser = Browser::open(dir, &url, (1400, 900)).await;
    browser
        .cdp
        .wait_for(
            "Number(document.getElementById('view').dataset.seq || 0) >= 1",
            "the first streamed frame",
        )
        .await;
    (server, browser)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drag_changes_the_view_and_a_click_fills_the_pick_panel() {
    let tmp = tempfile::tempdir().unwrap();
    // Frames arrive over the stream.
    let (server, mut browser) = planner(tmp.path(), "").await;
    let cdp = &mut browser.cdp;
    let rect = cdp
        .eval("JSON.stringify(document.getElementById('view').getBoundingClientRect())")
        .await;
    let rect: Value = serde_json::from_str(rect.as_str().unwrap()).unwrap();
    let (cx, cy) = (
        rect["x"].as_f64().unwrap() + rect["width"].as_f64().unwrap() / 2.0,
        rect["y"].as_f64().unwrap() + rect["height"].as_f64().unwrap() / 2.0,
    );
    // The browser decodes the H.264 stream with WebCodecs (Debian's Chromium has it).
    let codec = cdp
        .wait_for(
            "Number(document.getElementById('view').dataset.decoded || 0) >= 1 && document.getElementById('view').dataset.codec",
            "a decoded video frame",
        )
        .await;
    assert_eq!(codec, "h264");
    let print_before = cdp
        .eval("document.getElementById('view').dataset.print")
        .await;
    let print_before = thumbnail(&print_before);
    assert!(
        print_before.iter().max().unwrap() - print_before.iter().min().unwrap() > 40,
        "the decoded frame is flat: {print_before:?}"
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
    // The decoded video changed with the drag (a thumbnail of the decoded frame, not the still).
    let decoded = cdp
        .wait_for(
            &format!("(() => {{ const v = document.getElementById('view'); return v.dataset.print !== {print:?} && v.dataset.print; }})()",
                print = hex(&print_before)),
            "a different decoded frame after the drag",
        )
        .await;
    let print_after = thumbnail(&decoded);
    let moved = print_before
        .iter()
        .zip(&print_after)
        .filter(|(a, b)| a.abs_diff(**b) > 24)
        .count();
    assert!(
        moved > print_before.len() / 20,
        "the drag barely changed the decoded picture ({moved} of {} thumbnail pixels)",
        print_before.len()
    );

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

    // The legend beside the view is the server's, class for class.
    let classes = cdp
        .wait_for(
            "document.getElementById('legendbody').dataset.classes",
            "the legend",
        )
        .await;
    let legend: Value = server
        .client()
        .get(format!(
            "{}/api/scenes/demo_district/legend",
            server.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api: Vec<String> = legend["legend"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["colour"].as_str().unwrap().to_owned())
        .collect();
    assert!(api.len() >= 2, "{legend}");
    assert_eq!(classes.as_str().unwrap(), api.len().to_string());
    let shown = cdp
        .eval("JSON.stringify([...document.querySelectorAll('#legendbody .cls')].map(c => c.dataset.colour))")
        .await;
    let shown: Vec<String> = serde_json::from_str(shown.as_str().unwrap()).unwrap();
    assert_eq!(shown, api, "the legend's colours");

    // Drill-down: the breadcrumbs end at the scene's district, a township's button flies the camera
    // there (a new frame), and the crumbs follow.
    cdp.wait_for(
        "document.getElementById('crumbs').dataset.region === '320102' && document.querySelector('#children button')",
        "the district's townships",
    )
    .await;
    let township = cdp
        .eval("document.querySelector('#children button').dataset.code")
        .await;
    let township = township.as_str().unwrap().to_owned();
    assert!(
        township.starts_with("320102") && township.len() == 9,
        "{township}"
    );
    let before = cdp
        .eval("Number(document.getElementById('view').dataset.seq)")
        .await
        .as_f64()
        .unwrap();
    cdp.eval("document.querySelector('#children button').click()")
        .await;
    cdp.wait_for(
        &format!(
            "document.getElementById('crumbs').dataset.region === '{township}' && Number(document.getElementById('view').dataset.seq) > {before}"
        ),
        "the view of the township",
    )
    .await;
    let crumbs = cdp
        .eval("JSON.stringify([...document.querySelectorAll('#crumbs [data-code]')].map(c => c.dataset.code))")
        .await;
    assert_eq!(
        crumbs,
        Value::String(format!("[\"32\",\"3201\",\"320102\",\"{township}\"]")),
        "from the admin's scope, the province, down to the township"
    );
    let message = cdp
        .eval("document.getElementById('message').textContent")
        .await;
    assert_eq!(
        message,
        Value::String(String::new()),
        "the stream refused the camera"
    );
}

/// The page's 32x18 grey thumbnail of a decoded frame (hex pairs).
fn thumbnail(v: &Value) -> Vec<u8> {
    let hex = v.as_str().expect("a thumbnail");
    assert_eq!(hex.len(), 32 * 18 * 2, "{hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Told to (`codec=jpeg`), or where WebCodecs cannot decode H.264, the page streams JPEG.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_page_falls_back_to_jpeg_when_told_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, mut browser) = planner(tmp.path(), "&codec=jpeg").await;
    let cdp = &mut browser.cdp;
    let shown = cdp
        .eval("(() => { const v = document.getElementById('view'); return JSON.stringify([v.dataset.codec, v.dataset.decoded || null]); })()")
        .await;
    assert_eq!(shown, "[\"jpeg\",null]", "no video was decoded");
    // The JPEG frame is drawn: the canvas is not blank.
    let spread = cdp
        .eval("(() => { const v = document.getElementById('view'); const d = v.getContext('2d').getImageData(0, 0, v.width, v.height).data; let lo = 255, hi = 0; for (let i = 0; i < d.length; i += 4 * 101) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); } return hi - lo; })()")
        .await;
    assert!(spread.as_f64().unwrap() > 40.0, "a blank view: {spread}");
}
