//! `databrain-bench live`: live operations on a database, written to the `live` section of
//! `BENCHMARKS.md`. A benchmark, not a test.
//!
//! The server runs in this process on loopback (rendering off: the two cores are the
//! benchmark's). First, idle: single-indicator queries for one month over the whole province
//! at community and grid level, and 50 API clients reading for a while. Then a whole cube
//! rebuild, for comparison. Then `--orders` generated work orders (new ones and status
//! changes, from `data_samples::feed`) are appended in batches of `--batch` through
//! `POST /api/facts/work_orders` while the 50 clients keep reading and one wall follows
//! `/api/events`: per batch, the time to apply it, commit→visible on the API (the first
//! answer that counts the batch), commit→pushed to the wall (its `snapshot` event), and the
//! cube's update time; the clients' read p95 during appends against idle; peak memory.

use crate::catalogue::{machine, peak_rss_mib, percentile, write_section};
use anyhow::{Context, Result, bail};
use server::state::{AppState, Rendering};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-live-token-00001";

pub struct LiveArgs {
    pub db: PathBuf,
    pub orders: usize,
    pub batch: usize,
    pub readers: usize,
    /// How many times each fine-level query runs.
    pub rounds: usize,
    pub out: PathBuf,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `q`th percentile (0..=100) of `samples`.
fn p(samples: &[f64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    percentile(&mut s, q)
}

/// Reads until `stop`: alternately a values query and the alerts; the latencies, ms.
async fn reader(client: reqwest::Client, base: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let urls = [
        format!(
            "{base}/api/indicators/hotline_on_time_rate/values?level=county&grain=month&from=2025-01&to=2025-12"
        ),
        format!("{base}/api/alerts?level=county"),
        format!("{base}/api/indicators/hotline_orders/values?level=city&grain=year"),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let ok = client
            .get(&urls[i % urls.len()])
            .bearer_auth(TOKEN)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            out.push(ms(started.elapsed()));
        }
        i += 1;
    }
    out
}

/// A province-wide count of work orders created on or after `from` (the feed's rows).
async fn fed_count(client: &reqwest::Client, base: &str, year: &str) -> Result<f64> {
    let url = format!(
        "{base}/api/indicators/hotline_orders/values?level=province&grain=year&from={year}&to={year}"
    );
    let body: serde_json::Value = client
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    Ok(body["rows"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| r["numerator"].as_f64())
        .unwrap_or(0.0))
}

pub fn run(args: &LiveArgs) -> Result<()> {
    let engine = analytics::Engine::open_for_server(&args.db)?;
    let auth = crate::catalogue::bench_auth(TOKEN)?;
    let state = AppState::new(
        engine,
        scenes::builtin()?,
        Rendering::Unavailable("off in the live benchmark".into()),
    )
    .with_auth(auth);
    let engine = state.engine.clone();
    let cells: Vec<data_samples::feed::Cell> = engine
        .regions()
        .values()
        .filter(|r| r.level == "grid")
        .map(|r| data_samples::feed::Cell {
            grid_id: r.code.clone(),
            lon: r.lon,
            lat: r.lat,
        })
        .collect();
    if cells.is_empty() {
        bail!("{} has no grid cells", args.db.display());
    }
    let orders_before = engine
        .with_conn(|c| {
            c.query_row("SELECT COUNT(*) FROM work_orders", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| analytics::AnalyticsError::Db {
                context: "count".into(),
                source: e,
            })
        })
        .context("count the work orders")?;

    // Fine levels, idle: one month, the whole province.
    let mut fine = Vec::new();
    for (level, name) in [
        (indicators::Level::Community, "community"),
        (indicators::Level::Grid, "grid"),
    ] {
        let ind = engine
            .catalogue()
            .get("hotline_orders")
            .context("hotline_orders")?
            .clone();
        let q = indicators::IndicatorQuery {
            level,
            grain: indicators::Grain::Month,
            from: Some("2025-11".into()),
            to: Some("2025-11".into()),
            region: None,
        };
        for (audience, who) in [
            (analytics::Audience::trusted(), "operator"),
            (
                analytics::Audience::new(
                    "32",
                    analytics::SmallCells::Withheld {
                        floor: analytics::SMALL_CELL_FLOOR,
                    },
                )
                .expect("the province"),
                "viewer",
            ),
        ] {
            let mut times = Vec::new();
            for _ in 0..args.rounds {
                let started = Instant::now();
                engine.values(&audience, &ind, &q)?;
                times.push(ms(started.elapsed()));
            }
            fine.push((name, who, p(&times, 50.0), p(&times, 95.0)));
        }
    }

    let rebuild = engine.rebuild_cube()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let readers_n = args.readers;
    let (orders, batch) = (args.orders, args.batch.max(1));
    let report = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(server::http::serve::serve(
            listener,
            server::app(state),
            std::future::pending::<()>(),
        ));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(readers_n + 4)
            .build()?;

        // Idle reads.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..readers_n)
            .map(|_| tokio::spawn(reader(client.clone(), base.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(15)).await;
        stop.store(true, Ordering::SeqCst);
        let mut idle = Vec::new();
        for t in tasks {
            idle.extend(t.await?);
        }

        // The wall: one event stream, the arrival of each snapshot.
        let pushed: Arc<std::sync::Mutex<std::collections::HashMap<i64, Instant>>> = Arc::default();
        {
            let (pushed, client, base) = (pushed.clone(), client.clone(), base.clone());
            let mut events = client
                .get(format!("{base}/api/events"))
                .bearer_auth(TOKEN)
                .send()
                .await?;
            tokio::spawn(async move {
                let mut text = String::new();
                while let Ok(Some(chunk)) = events.chunk().await {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = text.find("\n\n") {
                        let block: String = text.drain(..end + 2).collect();
                        if block.starts_with("event: snapshot")
                            && let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: "))
                            && let Ok(v) = serde_json::from_str::<serde_json::Value>(data)
                            && let Some(id) = v["ingest_id"].as_i64()
                        {
                            pushed
                                .lock()
                                .expect("pushed lock")
                                .insert(id, Instant::now());
                        }
                    }
                }
            });
        }

        // Appends while the readers read.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..readers_n)
            .map(|_| tokio::spawn(reader(client.clone(), base.clone(), stop.clone())))
            .collect();
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .expect("a date")
            .and_hms_opt(0, 0, 0)
            .expect("midnight");
        let mut feed = data_samples::feed::Feed::new(cells, start, 11);
        let (mut apply, mut visible, mut push, mut cube) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut committed: Vec<(i64, Instant)> = Vec::new();
        let mut sent_new = 0usize;
        let there = fed_count(&client, &base, "2026").await?;
        let mut rows_sent = 0usize;
        let began = Instant::now();
        while sent_new < orders {
            let made = Instant::now();
            let n = batch.min(orders - sent_new);
            // A simulated hour per batch: new orders, and the open ones that closed in it.
            let rows = feed.advance(chrono::Duration::hours(1), n);
            sent_new += n;
            rows_sent += rows.len();
            let body: String = rows
                .iter()
                .map(|r| format!("{}\n", serde_json::Value::Object(r.clone())))
                .collect();
            let started = Instant::now();
            let answer = client
                .post(format!("{base}/api/facts/work_orders"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?;
            if !answer.status().is_success() {
                bail!(
                    "a batch was refused: {}",
                    answer.text().await.unwrap_or_default()
                );
            }
            let report: serde_json::Value = answer.json().await?;
            let acked = Instant::now();
            apply.push(ms(acked - started));
            if let Some(c) = report["cube_ms"].as_f64() {
                cube.push(c);
            }
            // Visible: the first answer that counts every new order sent so far.
            let expected = there + sent_new as f64;
            loop {
                if fed_count(&client, &base, "2026").await? >= expected {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            visible.push(ms(acked.elapsed()));
            eprintln!(
                "batch {}: {} rows; made in {:.0} ms, applied in {:.0} ms, visible after {:.0} ms",
                apply.len(),
                rows.len(),
                ms(started - made),
                apply.last().copied().unwrap_or(0.0),
                visible.last().copied().unwrap_or(0.0)
            );
            if let Some(id) = report["ingest_id"].as_i64() {
                committed.push((id, acked));
            }
        }
        let appending = began.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::SeqCst);
        let mut during = Vec::new();
        for t in tasks {
            during.extend(t.await?);
        }
        {
            let pushed = pushed.lock().expect("pushed lock");
            for (id, acked) in &committed {
                if let Some(at) = pushed.get(id) {
                    // Pushes come at most one commit behind (a watch): missing ones were
                    // skipped for a newer snapshot.
                    push.push(ms(at.saturating_duration_since(*acked)));
                }
            }
        }
        Ok::<_, anyhow::Error>((
            idle,
            during,
            apply,
            visible,
            push,
            cube,
            rows_sent,
            committed.len(),
            appending,
        ))
    })?;
    let (idle, during, apply, visible, push, cube, rows_sent, commits, appending) = report;

    let mut t = String::new();
    writeln!(t, "## Live operations\n")?;
    writeln!(
        t,
        "Written by `databrain-bench live --db {} --orders {} --batch {} --readers {} --rounds {}` on {} ({}), the \
         database holding {orders_before} work orders at the start. Each batch holds `--batch` new orders \
         and the status changes of the simulated hour. The server runs in the same \
         process on loopback with rendering off; {} API clients read in a loop (county values \
         per month, county alerts, city values per year) for 15 s idle and then throughout the \
         appends; one wall follows `/api/events`. Batches are NDJSON through `POST \
         /api/facts/work_orders`: the new orders of a simulated hour and the open orders that \
         closed in it (status changes). Commit→visible is measured from the batch's answer to \
         the first API answer that counts it (the commit precedes the answer); commit→pushed \
         from the answer to the wall's `snapshot` event. Fine-level queries: {} runs each, \
         the first of a data snapshot included (it makes the viewer's suppression patterns).\n",
        args.db.display(),
        args.orders,
        args.batch,
        args.readers,
        args.rounds,
        machine(),
        chrono::Local::now().format("%Y-%m-%d %H:%M"),
        args.readers,
        args.rounds
    )?;
    writeln!(t, "| measure | value | target |\n|---|---|---|")?;
    writeln!(
        t,
        "| batches committed; rows sent (new and status changes) | {commits}; {rows_sent} in {:.0} s ({:.0} rows/s) | |",
        appending.as_secs_f64(),
        rows_sent as f64 / appending.as_secs_f64().max(1e-9)
    )?;
    writeln!(
        t,
        "| batch applied (sent → answered), p50 / p95 | {:.0} / {:.0} ms | |",
        p(&apply, 50.0),
        p(&apply, 95.0)
    )?;
    writeln!(
        t,
        "| commit → visible on the API, p50 / p95 | {:.0} / {:.0} ms | ≤ 1,000 / 2,000 ms |",
        p(&visible, 50.0),
        p(&visible, 95.0)
    )?;
    writeln!(
        t,
        "| commit → pushed to the wall, p50 / p95 ({} of {commits} pushes seen; a wall that falls behind skips to the newest) | {:.0} / {:.0} ms | ≤ 2,000 ms |",
        push.len(),
        p(&push, 50.0),
        p(&push, 95.0)
    )?;
    writeln!(
        t,
        "| read p95 idle / during appends ({} / {} reads) | {:.0} / {:.0} ms ({:.2}×) | ≤ 1.5× |",
        idle.len(),
        during.len(),
        p(&idle, 95.0),
        p(&during, 95.0),
        p(&during, 95.0) / p(&idle, 95.0).max(1e-9)
    )?;
    writeln!(
        t,
        "| the cube per batch (cell-by-cell update), p50 / p95, against a full rebuild | {:.0} / {:.0} ms against {:.0} ms | |",
        p(&cube, 50.0),
        p(&cube, 95.0),
        ms(rebuild)
    )?;
    for (level, who, p50, p95) in &fine {
        writeln!(
            t,
            "| one indicator (`hotline_orders`), one month, the whole province at {level} level, {who}: p50 / p95 | {p50:.0} / {p95:.0} ms | ≤ 50 ms (p95) |"
        )?;
    }
    writeln!(
        t,
        "| peak memory (resident) | {} | |",
        peak_rss_mib()
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "unknown".into())
    )?;
    writeln!(t)?;
    write_section(&args.out, "live", &t)?;
    print!("{t}");
    Ok(())
}
