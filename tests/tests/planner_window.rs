//! The planners' window for real: `databrain twin` under Xvfb, clicked with xdotool. A click on
//! a building must put that building's grid cell and value in the panel, and they must equal
//! what `databrain sql` and `databrain query` say; F12 must save a screenshot of the window.
//! Skips (saying so) when Xvfb or xdotool is not installed; `make test` installs both.

use databrain_tests::{databrain_bin, run, sample_db};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SIZE: (u32, u32) = (960, 540);

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A private X server, killed on drop.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        // A display number nobody holds (Xvfb leaves a lock file per display).
        let n = (90..140)
            .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .expect("a free X display number");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(
                Instant::now() < deadline,
                "Xvfb did not come up on {display}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Xvfb { child, display }
    }

    fn xdotool(&self, args: &[&str]) -> String {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .expect("xdotool runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The window's stdout, one JSON object per line.
struct Lines(mpsc::Receiver<Value>);

impl Lines {
    fn wait_for(&self, key: &str, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(v) if v.get(key).is_some() => return Some(v[key].clone()),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

#[test]
fn the_window_opens_and_a_click_shows_the_buildings_values() {
    if !(installed("Xvfb") && installed("xdotool")) {
        eprintln!("skipped: Xvfb and xdotool are needed (Debian packages xvfb, xdotool)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 7);
    let db = db.to_str().unwrap();
    let x = Xvfb::start();
    let shot = tmp.path().join("window.png");
    let mut child = Command::new(databrain_bin())
        .args([
            "twin",
            "--db",
            db,
            "--scene",
            "demo_district",
            "--width",
            &SIZE.0.to_string(),
            "--height",
            &SIZE.1.to_string(),
            "--screenshot",
            shot.to_str().unwrap(),
        ])
        .env("DISPLAY", &x.display)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("databrain twin starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let lines = Lines(rx);
    let ready = lines.wait_for("ready", Duration::from_secs(90));
    assert!(ready.is_some(), "the window never said it was ready");
    let window = x.xdotool(&["search", "--name", "Xuanwu"]);
    let window = window
        .lines()
        .next()
        .expect("the window is on the X display")
        .to_owned();
    x.xdotool(&["windowfocus", &window]);

    // Click across the view until a building (not the ground between them) is hit.
    let mut building = None;
    'search: for row in 0..5 {
        for col in 0..7 {
            let (px, py) = (300 + col * 60, 200 + row * 40);
            x.xdotool(&[
                "mousemove",
                "--window",
                &window,
                &px.to_string(),
                &py.to_string(),
            ]);
            std::thread::sleep(Duration::from_millis(150));
            x.xdotool(&["click", "1"]);
            if let Some(p) = lines.wait_for("picked", Duration::from_secs(5))
                && p["kind"] == "object"
            {
                building = Some(p);
                break 'search;
            }
        }
    }
    let picked = building.expect("no click hit a building");
    let id = picked["id"].as_str().unwrap();
    let grid = picked["region"].as_str().unwrap();
    let period = picked["period"].as_str().unwrap();

    // The building stands in that grid cell ...
    let sql: Value = serde_json::from_str(&run(&[
        "sql",
        "--db",
        db,
        "--format",
        "json",
        &format!("SELECT grid_id FROM buildings WHERE building_id = '{id}'"),
    ]))
    .unwrap();
    assert_eq!(sql["rows"][0][0], grid, "{picked}");
    // ... and the panel shows that cell's value in the period on screen.
    let community = grid.split('-').next().unwrap();
    let values: Value = serde_json::from_str(&run(&[
        "query",
        "hotline_on_time_rate",
        "--db",
        db,
        "--level",
        "grid",
        "--grain",
        "year",
        "--from",
        period,
        "--to",
        period,
        "--region",
        community,
        "--format",
        "json",
    ]))
    .unwrap();
    let expected = values
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["region_code"] == grid)
        .map(|v| v["value"].clone())
        .unwrap_or(Value::Null);
    assert_eq!(picked["value"], expected, "{picked}");
    let lines_shown: Vec<&str> = picked["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines_shown[0].contains(id), "{lines_shown:?}");

    // F12 saves a screenshot of the real window.
    x.xdotool(&["key", "--window", &window, "F12"]);
    let saved = lines.wait_for("screenshot", Duration::from_secs(30));
    assert!(saved.is_some(), "no screenshot was saved");
    let image = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), SIZE);
    let colours: std::collections::HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 50, "the screenshot is nearly blank");

    x.xdotool(&["key", "--window", &window, "Escape"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the window did not close on Escape");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
