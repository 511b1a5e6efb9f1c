//! `databrain-bench stream`: the view stream's speed on loopback, written to the `stream`
//! section of `BENCHMARKS.md`. A benchmark, not a test.
//!
//! It serves the database in process on 127.0.0.1 and measures, with real WebSocket clients:
//! input→frame latency (an orbit sent, the next frame received) at 1280×720 and 1920×1080;
//! frames per second per viewer with 1, 4 and 8 viewers all turning their views; bytes and
//! JPEG encode time per frame; and the process CPU time of one viewer against 50 followers of
//! one shared session over the same time.

use crate::catalogue::{machine, median, percentile};
use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use server::state::AppState;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-stream-token-0001";

/// This process's CPU time (user + system), seconds.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0, utime 11, stime 12 (clock ticks, 100 a second).
    (ticks(11) + ticks(12)) / 100.0
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, query: &str) -> Result<Socket> {
    let url = format!("{base}/ws/view?{query}&token={TOKEN}");
    Ok(tokio_tungstenite::connect_async(&url).await?.0)
}

/// The next frame: its metadata and JPEG.
async fn next_frame(socket: &mut Socket) -> Result<(serde_json::Value, Vec<u8>)> {
    let mut meta = serde_json::Value::Null;
    loop {
        match tokio::time::timeout(Duration::from_secs(60), socket.next()).await? {
            Some(Ok(Message::Text(t))) => meta = serde_json::from_str(&t)?,
            Some(Ok(Message::Binary(b))) => return Ok((meta, b.to_vec())),
            Some(Ok(_)) => {}
            other => anyhow::bail!("the stream ended: {other:?}"),
        }
    }
}

pub fn run(db: &Path, state: AppState, out: &Path) -> Result<()> {
    let state = state.with_auth(crate::catalogue::bench_auth(TOKEN)?);
    let runtime = tokio::runtime::Runtime::new()?;
    let text = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("ws://{}", listener.local_addr()?);
        let app = server::app(state);
        // Served as `databrain serve` serves: the same listener and its limits.
        tokio::spawn(server::http::serve::serve(
            listener,
            app,
            std::future::pending::<()>(),
        ));
        let scene = "scene=demo_district";
        let mut t = String::new();
        writeln!(t, "## The view stream\n")?;
        writeln!(
            t,
            "Written by `databrain-bench stream --db {}` on {} ({}). The server runs in the \
             same process on loopback; clients are real WebSocket connections; the scene is \
             the demo district (about 1,000 buildings over grid cells).\n",
            db.display(),
            machine(),
            chrono::Local::now().format("%Y-%m-%d %H:%M")
        )?;
        writeln!(t, "| measure | value | target |\n|---|---|---|")?;

        // Input → frame latency, and bytes and encode time per frame.
        for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
            let mut s = connect(&base, &format!("{scene}&width={w}&height={h}&fps=30")).await?;
            let (_, first) = next_frame(&mut s).await?;
            let mut latency = Vec::new();
            let mut bytes = vec![first.len() as f64];
            let mut last = first;
            for k in 0..15 {
                let t0 = Instant::now();
                let cmd = format!(r#"{{"type":"orbit","d_yaw_deg":{}}}"#, 3 + k % 5);
                s.send(Message::Text(cmd.into())).await?;
                let (_, jpeg) = next_frame(&mut s).await?;
                latency.push(t0.elapsed().as_secs_f64() * 1e3);
                bytes.push(jpeg.len() as f64);
                last = jpeg;
            }
            let _ = s.close(None).await;
            let (p50, p95) = (percentile(&mut latency.clone(), 50.0), percentile(&mut latency, 95.0));
            let target = if h == 720 { "p50 ≤ 150 ms" } else { "" };
            writeln!(t, "| input→frame latency at {w}×{h}, p50 / p95 (15 orbits) | {p50:.0} / {p95:.0} ms | {target} |")?;
            writeln!(t, "| bytes per frame at {w}×{h} (JPEG quality 80), median | {:.0} KiB | |", median(&mut bytes) / 1024.0)?;
            // Encode time of a real frame: the last one, decoded and encoded again.
            let image = image::load_from_memory(&last)?.to_rgba8();
            let mut enc = Vec::new();
            for _ in 0..5 {
                let t0 = Instant::now();
                server::views::encode_jpeg(&image, 80).map_err(|e| anyhow::anyhow!("{e}"))?;
                enc.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            writeln!(t, "| JPEG encode per frame at {w}×{h} (a streamed frame encoded again), median | {:.1} ms | |", median(&mut enc))?;
            // The same frame through the `image` crate's encoder (the stream's encoder until
            // 2026-12-02), in the same run: what the change to `jpeg-encoder` gained.
            let rgb = image::DynamicImage::ImageRgba8(image.clone()).to_rgb8();
            let (mut old, mut old_bytes) = (Vec::new(), 0);
            for _ in 0..5 {
                let t0 = Instant::now();
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&rgb)?;
                old.push(t0.elapsed().as_secs_f64() * 1e3);
                old_bytes = out.len();
            }
            let new_bytes = server::views::encode_jpeg(&image, 80).map_err(|e| anyhow::anyhow!("{e}"))?.len();
            writeln!(
                t,
                "| the same frame with the `image` crate's encoder (before), median / bytes against now | {:.1} ms / {} KiB vs {} KiB | |",
                median(&mut old),
                old_bytes / 1024,
                new_bytes / 1024
            )?;
        }

        // Frames per second per viewer, every viewer turning (spin) and asking 30 a second.
        for viewers in [1usize, 4, 8] {
            let mut sockets = Vec::new();
            for _ in 0..viewers {
                sockets.push(connect(&base, &format!("{scene}&width=640&height=360&fps=30&spin=45")).await?);
            }
            let seconds = 8.0;
            let counts = futures_util::future::join_all(sockets.into_iter().map(|mut s| async move {
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                let mut n = 0usize;
                while Instant::now() < end {
                    if next_frame(&mut s).await.is_err() {
                        break;
                    }
                    n += 1;
                }
                let _ = s.close(None).await;
                n
            }))
            .await;
            let per_viewer: Vec<f64> = counts.iter().map(|n| *n as f64 / seconds).collect();
            let min = per_viewer.iter().copied().fold(f64::INFINITY, f64::min);
            let target = if viewers == 4 { "≥ 5 fps each" } else { "" };
            writeln!(t, "| frames per second per viewer, {viewers} viewer(s) at 640×360 (slowest viewer) | {min:.1} | {target} |")?;
        }

        // One viewer against 50 followers of one shared session, same size and motion.
        let cost = |followers: usize, follow: bool| {
            let base = base.clone();
            async move {
                let q = if follow {
                    format!("{scene}&width=640&height=360&fps=4&spin=30&follow=bench")
                } else {
                    format!("{scene}&width=640&height=360&fps=4&spin=30")
                };
                let mut sockets = Vec::new();
                for _ in 0..followers {
                    sockets.push(connect(&base, &q).await?);
                }
                let (c0, t0) = (cpu_s(), Instant::now());
                let frames = futures_util::future::join_all(sockets.into_iter().map(|mut s| async move {
                    let end = Instant::now() + Duration::from_secs(8);
                    let mut n = 0usize;
                    while Instant::now() < end {
                        if next_frame(&mut s).await.is_err() {
                            break;
                        }
                        n += 1;
                    }
                    let _ = s.close(None).await;
                    n
                }))
                .await;
                anyhow::Ok((cpu_s() - c0, t0.elapsed().as_secs_f64(), frames.iter().sum::<usize>()))
            }
        };
        let (one_cpu, one_s, one_frames) = cost(1, false).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (many_cpu, many_s, many_frames) = cost(50, true).await?;
        writeln!(t, "| CPU seconds per second of this process (server and its clients): 1 viewer ({one_frames} frames) / 50 followers of one session ({many_frames} frames delivered) | {:.2} / {:.2} ({:+.0}%) | within 10% |",
            one_cpu / one_s, many_cpu / many_s, (many_cpu / many_s / (one_cpu / one_s) - 1.0) * 100.0)?;
        writeln!(t)?;
        anyhow::Ok(t)
    })?;
    crate::catalogue::write_section(out, "stream", &text)?;
    println!("{text}");
    Ok(())
}

/// Opens the database for the benchmark as `serve` does.
pub fn open(db: &Path, state: Result<AppState>) -> Result<AppState> {
    state.with_context(|| format!("cannot serve {}", db.display()))
}
