//! One thin path through every engine, as a user drives it: `databrain generate`, `ingest`,
//! `serve` on port 0, then HTTP, WebSocket and a headless browser against the real server.

use databrain_tests::{Server, run};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// 按时办结率 per (city, year), computed from the raw CSV without the catalogue or DuckDB:
/// work orders due in the year that were closed by their due time, over all due in the year.
fn on_time_by_city_year(work_orders: &Path) -> BTreeMap<(String, String), (u64, u64)> {
    let mut reader = csv::Reader::from_path(work_orders).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (due, closed, community) = (col("due_at"), col("closed_at"), col("community_code"));
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for record in reader.records() {
        let r = record.unwrap();
        let key = (r[community][..4].to_owned(), r[due][..4].to_owned());
        let entry = out.entry(key).or_default();
        entry.1 += 1;
        // Timestamps are `YYYY-MM-DD HH:MM:SS`, so text order is time order.
        if !r[closed].is_empty() && r[closed] <= r[due] {
            entry.0 += 1;
        }
    }
    out
}

fn distinct_colours(image: &image::RgbaImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for p in image.pixels() {
        seen.insert(p.0);
    }
    seen.len()
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_ingest_serve_query_render_stream_and_browse() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let db = tmp.path().join("databrain.duckdb");
    let sample_arg = sample.to_str().unwrap();
    let db_arg = db.to_str().unwrap();
    run(&[
        "generate", "--out", sample_arg, "--scale", "small", "--seed", "7",
    ]);
    let ingested = run(&["ingest", "--db", db_arg, sample_arg]);
    assert!(ingested.contains("work_orders: 100000 rows"), "{ingested}");

    // The catalogue from the CLI.
    let list = run(&["indicators", "list"]);
    assert!(
        list.contains("one_thing_completion_rate") && list.contains("0.8 by 2025"),
        "{list}"
    );
    let shown: Value =
        serde_json::from_str(&run(&["indicators", "show", "hotline_on_time_rate"])).unwrap();
    assert_eq!(shown["kind"], "ratio");
    assert_eq!(shown["numerator"]["time"], "due_at");

    // The CLI answers too, in CSV.
    let csv_out = run(&[
        "query",
        "hotline_on_time_rate",
        "--db",
        db_arg,
        "--level",
        "province",
        "--grain",
        "year",
        "--from",
        "2024",
        "--to",
        "2025",
        "--format",
        "csv",
    ]);
    assert!(
        csv_out.starts_with("indicator,region_code,region_name,period,value"),
        "{csv_out}"
    );
    assert_eq!(csv_out.lines().count(), 3, "{csv_out}");

    // Analysts' SQL and the risk report from the command line.
    let counted = run(&[
        "sql",
        "--db",
        db_arg,
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM work_orders",
    ]);
    assert_eq!(counted, "n\n100000\n");
    let alerts: Value = serde_json::from_str(&run(&[
        "alerts",
        "--db",
        db_arg,
        "--severity",
        "critical",
        "--format",
        "json",
    ]))
    .unwrap();
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["indicator"] == "hotline_on_time_rate"),
        "{alerts}"
    );

    let server = Server::start(&db);
    let base = server.base_url.clone();
    // A client that starts a request and goes silent is dropped by the server (its headers
    // must arrive within 10 s), while everything below goes on.
    let silent = {
        let addr = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            let started = std::time::Instant::now();
            let mut buf = [0u8; 1024];
            let ended = tokio::time::timeout(Duration::from_secs(60), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            (ended.is_ok(), started.elapsed())
        })
    };
    let client = server.client();
    let token = server.token.clone();

    let (status, health) = get_json(&client, &format!("{base}/api/health")).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["rendering_available"], true,
        "rendering needs Vulkan (lavapipe): {health}"
    );

    // 按时办结率 per city and year against the independent computation.
    let expected = on_time_by_city_year(&sample.join("work_orders.csv"));
    let (status, body) = get_json(
        &client,
        &format!("{base}/api/indicators/hotline_on_time_rate/values?level=city&grain=year"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    let by_key: BTreeMap<(String, String), &Value> = rows
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
    assert_eq!(by_key.len(), expected.len(), "one row per city and year");
    for ((city, year), (numerator, denominator)) in &expected {
        let row = by_key[&(city.clone(), year.clone())];
        assert_eq!(
            row["numerator"].as_f64().unwrap(),
            *numerator as f64,
            "{city} {year}"
        );
        assert_eq!(
            row["denominator"].as_f64().unwrap(),
            *denominator as f64,
            "{city} {year}"
        );
        let value = row["value"].as_f64().unwrap();
        assert!(
            (value - *numerator as f64 / *denominator as f64).abs() < 1e-12,
            "{city} {year}"
        );
        assert!(!row["region_name"].as_str().unwrap().is_empty());
        assert!(["ok", "warning", "critical"].contains(&row["status"].as_str().unwrap()));
    }
    assert_eq!(
        by_key[&("3201".to_owned(), "2025".to_owned())]["region_name"],
        "南京市"
    );

    // Bad parameters are 400s that name the parameter.
    for (query, parameter) in [
        ("level=district", "level"),
        ("grain=month&from=2024-13", "from"),
        ("region=32x", "region"),
        ("levle=city", "levle"),
    ] {
        let (status, body) = get_json(
            &client,
            &format!("{base}/api/indicators/hotline_on_time_rate/values?{query}"),
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
    }
    let (status, _) = get_json(&client, &format!("{base}/api/indicators/nope/values")).await;
    assert_eq!(status, 404);

    // A snapshot PNG of the demo district, rendered by Bevy.
    let response = client
        .get(format!(
            "{base}/api/scenes/demo_district/snapshot.png?width=320&height=180"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = image::load_from_memory(&response.bytes().await.unwrap())
        .unwrap()
        .to_rgba8();
    assert_eq!(png.dimensions(), (320, 180));
    assert!(distinct_colours(&png) > 20, "the snapshot looks uniform");
    let (status, body) = get_json(
        &client,
        &format!("{base}/api/scenes/demo_district/snapshot.png?width=99999"),
    )
    .await;
    assert_eq!((status, body["parameter"].as_str()), (400, Some("width")));

    // The view stream: a frame, an orbit, a different frame.
    let ws_url = format!(
        "{}/ws/view?scene=demo_district&width=320&height=180&fps=10&token={token}",
        base.replacen("http", "ws", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    async fn next_frame(
        socket: &mut (
                 impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin
             ),
    ) -> (Value, Vec<u8>) {
        let mut meta = None;
        loop {
            match socket.next().await.unwrap().unwrap() {
                Message::Text(t) => meta = Some(serde_json::from_str::<Value>(&t).unwrap()),
                Message::Binary(b) => {
                    return (meta.expect("metadata precedes each frame"), b.to_vec());
                }
                _ => {}
            }
        }
    }
    let (meta1, jpeg1) = next_frame(&mut socket).await;
    assert_eq!(meta1["scene"], "demo_district");
    assert_eq!(meta1["bytes"].as_u64().unwrap() as usize, jpeg1.len());
    let frame1 = image::load_from_memory(&jpeg1).unwrap().to_rgba8();
    assert_eq!(frame1.dimensions(), (320, 180));
    socket
        .send(Message::Text(
            r#"{"type":"orbit","d_yaw_deg":90,"d_pitch_deg":10}"#.into(),
        ))
        .await
        .unwrap();
    let (meta2, jpeg2) = next_frame(&mut socket).await;
    assert!(meta2["seq"].as_u64() > meta1["seq"].as_u64());
    // A view larger than a 4K wall is refused when it opens, and the viewer already watching
    // keeps its stream.
    let huge = ws_url.replace("width=320&height=180", "width=4096&height=4096");
    match tokio_tungstenite::connect_async(&huge).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!(
            "a 4096x4096 view opened: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    socket
        .send(Message::Text(
            r#"{"type":"orbit","d_yaw_deg":-30,"d_pitch_deg":0}"#.into(),
        ))
        .await
        .unwrap();
    let (meta_after, _) = next_frame(&mut socket).await;
    assert!(meta_after["seq"].as_u64() > meta2["seq"].as_u64());
    assert_ne!(meta1["camera"], meta2["camera"]);
    let frame2 = image::load_from_memory(&jpeg2).unwrap().to_rgba8();
    let changed = frame1
        .pixels()
        .zip(frame2.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 320 * 180 / 20,
        "the orbit barely changed the frame ({changed} pixels)"
    );
    // A pick at the centre names what is there: a building or a grid cell of the district,
    // with the value shown and its period.
    socket
        .send(Message::Text(r#"{"type":"pick","x":160,"y":90}"#.into()))
        .await
        .unwrap();
    let pick = loop {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "pick" {
                break v;
            }
        }
    };
    let hit = &pick["hit"];
    let place = match hit["kind"].as_str() {
        Some("object") => hit["region"].as_str().unwrap().to_owned(),
        Some("region") => hit["id"].as_str().unwrap().to_owned(),
        other => panic!("the centre of the district hit {other:?}: {pick}"),
    };
    assert!(place.starts_with("320102"), "{pick}");
    assert_eq!(hit["shown"]["period"], meta2["period"], "{pick}");
    // Another period and another indicator: new frames that say so; an unknown indicator is
    // refused with a message and the stream goes on.
    for (command, key, value) in [
        (r#"{"type":"period","period":"2024"}"#, "period", "2024"),
        (
            r#"{"type":"indicator","id":"hotline_satisfaction_rate"}"#,
            "indicator",
            "hotline_satisfaction_rate",
        ),
    ] {
        socket.send(Message::Text(command.into())).await.unwrap();
        let (meta, _) = next_frame(&mut socket).await;
        assert_eq!(meta["variant"][key], value, "{meta}");
    }
    socket
        .send(Message::Text(
            r#"{"type":"indicator","id":"no_such_thing"}"#.into(),
        ))
        .await
        .unwrap();
    let refusal = loop {
        if let Message::Text(t) = socket.next().await.unwrap().unwrap() {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "error" {
                break v;
            }
        }
    };
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("no_such_thing"),
        "{refusal}"
    );
    socket
        .send(Message::Text(
            r#"{"type":"layer","name":"choropleth","on":false}"#.into(),
        ))
        .await
        .unwrap();
    let (meta, _) = next_frame(&mut socket).await;
    assert_eq!(
        meta["variant"]["indicator"], "hotline_satisfaction_rate",
        "{meta}"
    );
    socket.close(None).await.unwrap();

    // Two followers of one wall session see the same frames, rendered once.
    let follow_url = format!(
        "{}/ws/view?scene=demo_district&width=320&height=180&fps=8&spin=20&follow=wall&token={token}",
        base.replacen("http", "ws", 1)
    );
    let (mut a, _) = tokio_tungstenite::connect_async(&follow_url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&follow_url).await.unwrap();
    let mut seen_a = std::collections::BTreeMap::new();
    let mut seen_b = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let (m, jpeg) = next_frame(&mut a).await;
        assert_eq!(m["follow"], true);
        seen_a.insert(m["seq"].as_u64().unwrap(), jpeg);
        let (m, jpeg) = next_frame(&mut b).await;
        seen_b.insert(m["seq"].as_u64().unwrap(), jpeg);
    }
    let shared: Vec<&u64> = seen_a.keys().filter(|k| seen_b.contains_key(k)).collect();
    assert!(
        !shared.is_empty(),
        "{:?} / {:?}",
        seen_a.keys(),
        seen_b.keys()
    );
    for k in shared {
        assert_eq!(seen_a[k], seen_b[k], "frame {k} differs between followers");
    }
    let (_, health) = get_json(&client, &format!("{base}/api/health")).await;
    assert_eq!(health["shared_sessions"], 1);
    a.close(None).await.unwrap();
    b.close(None).await.unwrap();

    // The H.264 stream: the same picture as the JPEG stream, decoded by a third-party decoder.
    let video_url = ws_url.replace("fps=10", "fps=10&codec=h264");
    let (mut v, _) = tokio_tungstenite::connect_async(&video_url).await.unwrap();
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut decode = |bytes: &[u8]| -> image::RgbaImage {
        let yuv = decoder.decode(bytes).unwrap().expect("a picture per frame");
        let (w, h) = openh264::formats::YUVSource::dimensions(&yuv);
        let mut rgba = vec![0u8; w * h * 4];
        yuv.write_rgba8(&mut rgba);
        image::RgbaImage::from_raw(w as u32, h as u32, rgba).unwrap()
    };
    let (key_meta, key_bytes) = next_frame(&mut v).await;
    assert_eq!(
        (key_meta["codec"].as_str(), key_meta["key"].as_bool()),
        (Some("h264"), Some(true)),
        "{key_meta}"
    );
    assert!(
        key_meta["codec_string"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.42")),
        "a Baseline codec string for WebCodecs: {key_meta}"
    );
    let decoded1 = decode(&key_bytes);
    assert_eq!(decoded1.dimensions(), (320, 180));
    // The scene's starting camera, as the JPEG stream's first frame showed it.
    let error = mean_luma_error(&decoded1, &frame1);
    assert!(
        error < 8.0,
        "the video's first frame is not the view: {error}"
    );
    // At rest: a sharp JPEG still of the same frame.
    let (still_meta, still) = next_frame(&mut v).await;
    assert_eq!(
        (
            still_meta["still"].as_bool(),
            still_meta["codec"].as_str(),
            still_meta["seq"].as_u64()
        ),
        (Some(true), Some("jpeg"), key_meta["seq"].as_u64()),
        "{still_meta}"
    );
    let still = image::load_from_memory(&still).unwrap().to_rgba8();
    let error = mean_luma_error(&still, &frame1);
    // (Two JPEG qualities, one with chroma subsampled: a few levels apart on small detail.)
    assert!(error < 8.0, "the still is not the view: {error}");
    // A move: a P-frame, smaller than the keyframe, decoding to the new view.
    v.send(Message::Text(
        r#"{"type":"orbit","d_yaw_deg":90,"d_pitch_deg":10}"#.into(),
    ))
    .await
    .unwrap();
    let (p_meta, p_bytes) = next_frame(&mut v).await;
    assert_eq!(p_meta["key"], false, "{p_meta}");
    assert!(p_bytes.len() < key_bytes.len());
    let decoded2 = decode(&p_bytes);
    let turned = image::load_from_memory(&jpeg2).unwrap().to_rgba8();
    // A P-frame after a 90° turn is soft at the stream's rate: it must show the new view,
    // nearer to it than to the view before.
    let (to_new, to_old) = (
        mean_luma_error(&decoded2, &turned),
        mean_luma_error(&decoded2, &frame1),
    );
    assert!(
        to_new < to_old,
        "the P-frame shows the view before the turn: {to_new} against {to_old}"
    );
    // Asked for, a keyframe.
    v.send(Message::Text(r#"{"type":"keyframe"}"#.into()))
        .await
        .unwrap();
    let key_again = loop {
        let (m, _) = next_frame(&mut v).await;
        if m["still"] == false {
            break m;
        }
    };
    assert_eq!(key_again["key"], true, "{key_again}");
    v.close(None).await.unwrap();
    // Sizes H.264 cannot code and unknown codecs are refused before the upgrade.
    for (bad, parameter) in [
        (video_url.replace("width=320", "width=321"), "width"),
        (ws_url.replace("fps=10", "fps=10&codec=vp9"), "codec"),
    ] {
        let http = bad.replacen("ws", "http", 1);
        let response = client.get(&http).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], parameter, "{bad}");
    }
    // Followers of one video session get one bitstream; each starts at a keyframe.
    let video_follow = follow_url.replace("follow=wall", "follow=wall&codec=h264");
    let (mut a, _) = tokio_tungstenite::connect_async(&video_follow)
        .await
        .unwrap();
    let (first_a, _) = next_frame(&mut a).await;
    assert_eq!(first_a["key"], true, "{first_a}");
    let (mut b, _) = tokio_tungstenite::connect_async(&video_follow)
        .await
        .unwrap();
    let (first_b, bytes_b) = next_frame(&mut b).await;
    assert_eq!(
        first_b["key"], true,
        "a late joiner starts at a keyframe: {first_b}"
    );
    let mut seen_a = std::collections::BTreeMap::new();
    while seen_a.len() < 6 {
        let (m, bytes) = next_frame(&mut a).await;
        seen_a.insert(m["seq"].as_u64().unwrap(), bytes);
    }
    if let Some(same) = seen_a.get(&first_b["seq"].as_u64().unwrap()) {
        assert_eq!(
            same, &bytes_b,
            "followers got different bytes for one frame"
        );
    }
    a.close(None).await.unwrap();
    b.close(None).await.unwrap();

    // The page, in headless Chromium.
    let page = client
        .get(format!("{base}/?token={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("12345按时办结率") && page.contains("一件事通办完成率"),
        "KPI table missing"
    );
    let shot = tmp.path().join("page.png");
    chromium(
        tmp.path(),
        &format!("{base}/?token={token}"),
        &[format!("--screenshot={}", shot.display())],
    )
    .await;
    let screenshot = image::open(&shot).unwrap().to_rgba8();
    assert!(
        distinct_colours(&screenshot) > 50,
        "the page screenshot is blank"
    );

    // The wall: the streamed twin in the centre, panels (targets, trend, ranking, tasks,
    // alerts) in the columns either side.
    let wall = tmp.path().join("wall.png");
    chromium(
        tmp.path(),
        &format!("{base}/wall?scene=demo_district&token={token}"),
        &[format!("--screenshot={}", wall.display())],
    )
    .await;
    let wall = image::open(&wall).unwrap().to_rgba8();
    let (w, h) = wall.dimensions();
    let twin = image::imageops::crop_imm(&wall, w * 3 / 10, h / 5, w * 2 / 5, h / 2).to_image();
    assert!(distinct_colours(&twin) > 50, "no twin on the wall");
    // Panels are drawn in #0d1a2e; a good part of the right column must be panels.
    let card_pixels = (w * 7 / 10..w)
        .flat_map(|x| (h / 10..h * 8 / 10).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            let p = wall.get_pixel(x, y).0;
            p[0].abs_diff(0x0d) < 3 && p[1].abs_diff(0x1a) < 3 && p[2].abs_diff(0x2e) < 3
        })
        .count();
    assert!(
        card_pixels > 20_000,
        "no panels on the wall ({card_pixels} panel pixels)"
    );

    // The analyst page: the table of the query, and a CSV link that gives the API's CSV.
    let dom = chromium(
        tmp.path(),
        &format!("{base}/analyst?indicator=hotline_on_time_rate&token={token}"),
        &["--dump-dom".to_owned()],
    )
    .await;
    assert!(
        dom.contains("<small>3201</small>"),
        "no table rows in the analyst page"
    );
    let href = dom
        .split("id=\"csv\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSV link")
        .replace("&amp;", "&");
    let from_page = client.get(format!("{base}{href}")).send().await.unwrap();
    assert_eq!(from_page.status().as_u16(), 200);
    let from_page = from_page.text().await.unwrap();
    let from_api = client
        .get(format!(
            "{base}/api/indicators/hotline_on_time_rate/values?level=city&grain=month&format=csv"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(from_page, from_api);
    assert!(from_page.lines().count() > 13, "{from_page}");

    let (dropped, after) = silent.await.unwrap();
    assert!(dropped, "a silent connection was kept for {after:?}");

    // SIGTERM: the server finishes and exits cleanly.
    let mut server = server;
    assert!(
        server.terminate(Duration::from_secs(20)),
        "the server did not exit cleanly on SIGTERM"
    );
}

/// Runs headless Chromium on a URL with extra arguments; returns its stdout.
async fn chromium(dir: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let (target, extra, profile_path) = (url.to_owned(), extra.to_vec(), profile.path().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        // `timeout` bounds a browser that never finishes loading.
        std::process::Command::new("timeout")
            .arg("120")
            .arg(&browser)
            .args(databrain_tests::CHROMIUM_FLAGS)
            .args([
                "--hide-scrollbars",
                "--window-size=1600,900",
                "--virtual-time-budget=10000",
            ])
            .args(&extra)
            .arg(format!("--user-data-dir={}", profile_path.display()))
            .arg(&target)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {browser} (install Debian's chromium, as `make test` does): {e}")
            })
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With no Vulkan driver at all, `render` fails with a clear message and the server still
/// answers everything but pictures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_vulkan_rendering_fails_clearly_and_the_api_still_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample");
    let db = tmp.path().join("databrain.duckdb");
    run(&[
        "generate",
        "--out",
        sample.to_str().unwrap(),
        "--scale",
        "small",
        "--seed",
        "1",
    ]);
    run(&[
        "ingest",
        "--db",
        db.to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    let no_vulkan = [
        ("VK_ICD_FILENAMES", "/nonexistent.json"),
        ("VK_DRIVER_FILES", "/nonexistent.json"),
    ];

    let out = std::process::Command::new(databrain_tests::databrain_bin())
        .args([
            "render",
            "--db",
            db.to_str().unwrap(),
            "--scene",
            "demo_district",
            "--out",
        ])
        .arg(tmp.path().join("x.png"))
        .envs(no_vulkan)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rendering is unavailable") && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );

    let server = databrain_tests::Server::start_with_env(&db, &no_vulkan);
    let client = server.client();
    let (status, health) = get_json(&client, &format!("{}/api/health", server.base_url)).await;
    assert_eq!(status, 200);
    assert_eq!(health["rendering_available"], false, "{health}");
    let (status, body) = get_json(
        &client,
        &format!(
            "{}/api/indicators/hotline_intensity/values?level=city&grain=quarter",
            server.base_url
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"].as_array().unwrap().len(), 13 * 8);
    let (status, body) = get_json(
        &client,
        &format!("{}/api/scenes/demo_district/snapshot.png", server.base_url),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let page = client
        .get(format!("{}/?token={}", server.base_url, server.token))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Rendering is unavailable")
    );
}

/// The mean difference of two same-sized pictures' luma, in 0..=255 levels.
fn mean_luma_error(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let luma =
        |p: &image::Rgba<u8>| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64;
    a.pixels()
        .zip(b.pixels())
        .map(|(p, q)| (luma(p) - luma(q)).abs())
        .sum::<f64>()
        / (a.width() as f64 * a.height() as f64)
}
