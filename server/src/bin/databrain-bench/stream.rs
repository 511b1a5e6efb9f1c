//! `databrain-bench stream`: the view stream's speed on loopback, written to the `stream`
//! section of `BENCHMARKS.md`. A benchmark, not a test.
//!
//! It renders the same frames through both codecs (H.264 and JPEG: bytes, encode time, SSIM
//! against the raw frame), then serves the database in process on 127.0.0.1 and measures,
//! with real WebSocket clients and each codec: input→frame latency (an orbit sent, the next
//! frame received) at 1280×720 and 1920×1080; frames per second per viewer with 1, 4, 8 and
//! 16 viewers all turning their views; and the process CPU time of one H.264 viewer against
//! 50 followers of one shared session over the same time.

use crate::catalogue::{machine, median, percentile};
use crate::ssim::{grey_ssim, image_compare_score};
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

/// The frames each socket receives in `seconds`, all at once; each socket is closed after.
async fn count_frames(sockets: Vec<Socket>, seconds: f64) -> Vec<usize> {
    futures_util::future::join_all(sockets.into_iter().map(|mut s| async move {
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
    .await
}

pub fn run(db: &Path, state: AppState, out: &Path) -> Result<()> {
    let state = state.with_auth(crate::catalogue::bench_auth(TOKEN)?);
    let codec_state = state.clone();
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

        // Bytes, encode time and SSIM against the raw frame: the same rendered frames (a
        // camera turning 3° a frame, as a drag does) through both encoders.
        // The rate against quality at 720p: what the stream's rate was chosen from.
        use server::video::Rate;
        for rate in [Rate::BitsPerPixel(0.1), Rate::BitsPerPixel(0.4), Rate::Qp(18), Rate::Qp(24), Rate::Qp(30), Rate::Qp(36)] {
            let c = codec_frames(&codec_state, 1280, 720, rate)?;
            writeln!(t, "| H.264 at {rate:?}, 1280×720: P-frame median / keyframe / SSIM (grey, 8×8 windows) median, lowest | {:.1} KiB ({:.1}% of JPEG) / {:.1} KiB / {:.3}, {:.3} | |",
                c.h264_p_bytes / 1024.0, 100.0 * c.h264_p_bytes / c.jpeg_bytes, c.h264_key_bytes / 1024.0, c.h264_ssim_median, c.h264_ssim)?;
        }
        for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
            let c = codec_frames(&codec_state, w, h, server::video::RATE)?;
            writeln!(t, "| bytes per frame at {w}×{h}, median: H.264 (P-frames) / keyframe / JPEG quality 80 | {:.1} KiB / {:.1} KiB / {:.1} KiB ({:.1}% of JPEG) | H.264 ≤ 10% of JPEG |",
                c.h264_p_bytes / 1024.0, c.h264_key_bytes / 1024.0, c.jpeg_bytes / 1024.0, 100.0 * c.h264_p_bytes / c.jpeg_bytes)?;
            writeln!(t, "| SSIM (grey, 8×8 windows) against the raw frame at {w}×{h}, median / lowest: H.264 / JPEG | {:.3} / {:.3} and {:.3} / {:.3} | H.264 ≥ 0.95 |", c.h264_ssim_median, c.h264_ssim, c.jpeg_ssim_median, c.jpeg_ssim)?;
            writeln!(t, "| the same frames by the score of runs before 2026-12-04 (`image-compare` 0.5 MSSIMSimple, see the reading), median: H.264 / JPEG | {:.3} / {:.3} | |", c.h264_old_score_median, c.jpeg_old_score_median)?;
            let target = if h == 720 { "H.264 ≤ 10 ms" } else { "" };
            writeln!(t, "| encode per frame at {w}×{h}, median: H.264 (with RGBA→YUV) / JPEG | {:.1} ms / {:.1} ms | {target} |", c.h264_ms, c.jpeg_ms)?;
            writeln!(t, "| the same JPEG with the `image` crate's encoder (the stream's until 2026-12-02), median | {:.1} ms | |", c.image_crate_ms)?;
        }

        // Input → frame latency over the socket, each codec in turn.
        for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
            for codec in ["jpeg", "h264"] {
                let mut s = connect(&base, &format!("{scene}&width={w}&height={h}&fps=30&codec={codec}")).await?;
                let _ = next_frame(&mut s).await?;
                let mut latency = Vec::new();
                for k in 0..15 {
                    let t0 = Instant::now();
                    let cmd = format!(r#"{{"type":"orbit","d_yaw_deg":{}}}"#, 3 + k % 5);
                    s.send(Message::Text(cmd.into())).await?;
                    // The next frame of the motion (a resting view's still is not an answer).
                    loop {
                        let (meta, _) = next_frame(&mut s).await?;
                        if meta["still"] != true {
                            break;
                        }
                    }
                    latency.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                let _ = s.close(None).await;
                let (p50, p95) = (percentile(&mut latency.clone(), 50.0), percentile(&mut latency, 95.0));
                let target = match (codec, h) {
                    ("h264", 720) => "p50 ≤ 80 ms",
                    ("h264", _) => "p50 ≤ 120 ms",
                    _ => "",
                };
                writeln!(t, "| input→frame latency at {w}×{h}, {codec}, p50 / p95 (15 orbits) | {p50:.0} / {p95:.0} ms | {target} |")?;
            }
        }

        // Frames per second per viewer, every viewer turning (spin) and asking 30 a second.
        for codec in ["jpeg", "h264"] {
            for viewers in [1usize, 4, 8, 16] {
                let mut sockets = Vec::new();
                for _ in 0..viewers {
                    sockets.push(connect(&base, &format!("{scene}&width=640&height=360&fps=30&spin=45&codec={codec}")).await?);
                }
                let seconds = 8.0;
                let counts = count_frames(sockets, seconds).await;
                let per_viewer: Vec<f64> = counts.iter().map(|n| *n as f64 / seconds).collect();
                let min = per_viewer.iter().copied().fold(f64::INFINITY, f64::min);
                let target = if viewers == 8 && codec == "h264" { "≥ 10 fps each" } else { "" };
                writeln!(t, "| frames per second per viewer, {viewers} viewer(s) at 640×360, {codec} (slowest viewer) | {min:.1} | {target} |")?;
            }
        }

        // One viewer against 50 followers of one shared session, same size and motion.
        let cost = |followers: usize, follow: bool| {
            let base = base.clone();
            async move {
                let q = if follow {
                    format!("{scene}&width=640&height=360&fps=4&spin=30&codec=h264&follow=bench")
                } else {
                    format!("{scene}&width=640&height=360&fps=4&spin=30&codec=h264")
                };
                let mut sockets = Vec::new();
                for _ in 0..followers {
                    sockets.push(connect(&base, &q).await?);
                }
                let (c0, t0) = (cpu_s(), Instant::now());
                let frames = count_frames(sockets, 8.0).await;
                anyhow::Ok((cpu_s() - c0, t0.elapsed().as_secs_f64(), frames.iter().sum::<usize>()))
            }
        };
        let (one_cpu, one_s, one_frames) = cost(1, false).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (many_cpu, many_s, many_frames) = cost(50, true).await?;
        writeln!(t, "| CPU seconds per second of this process (server and its clients), H.264: 1 viewer ({one_frames} frames) / 50 followers of one session ({many_frames} frames delivered) | {:.2} / {:.2} ({:+.0}%) | within 10% |",
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

/// The two codecs on the same rendered frames.
struct CodecFrames {
    h264_p_bytes: f64,
    h264_key_bytes: f64,
    jpeg_bytes: f64,
    h264_ssim: f64,
    jpeg_ssim: f64,
    h264_ssim_median: f64,
    jpeg_ssim_median: f64,
    /// Medians by the score of earlier runs (`image_compare_score`).
    h264_old_score_median: f64,
    jpeg_old_score_median: f64,
    h264_ms: f64,
    jpeg_ms: f64,
    image_crate_ms: f64,
}

/// Renders 20 frames of the demo district at `w`×`h`, the camera turning 3° a frame, and
/// encodes each with the stream's H.264 encoder (a keyframe, then P-frames, at the stream's
/// rate for 30 fps) and its JPEG encoder; decodes both and compares them with the raw frame.
fn codec_frames(
    state: &AppState,
    w: u32,
    h: u32,
    rate: server::video::Rate,
) -> Result<CodecFrames> {
    let scene = state
        .scene("demo_district")
        .context("the demo district scene")?
        .clone();
    let renderer = state.renderer().map_err(|e| anyhow::anyhow!("{e}"))?;
    let prepared = server::views::prepared(state, &scene, &analytics::Audience::trusted())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .scene;
    let mut encoder = server::video::VideoEncoder::with_rate((w, h), 30.0, rate)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut decoder = openh264::decoder::Decoder::new()?;
    let (mut p_bytes, mut key_bytes, mut jpeg_bytes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut h264_ms, mut jpeg_ms, mut image_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut h264_ssim, mut jpeg_ssim) = (Vec::new(), Vec::new());
    let (mut h264_old, mut jpeg_old) = (Vec::new(), Vec::new());
    let mut camera = scene.camera;
    for k in 0..20 {
        camera.orbit(3.0, 0.0);
        let raw = renderer
            .render(prepared.clone(), camera, w, h)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t0 = Instant::now();
        let frame = encoder
            .encode(&raw, k == 0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        h264_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if frame.key {
            key_bytes.push(frame.bytes.len() as f64);
        } else {
            p_bytes.push(frame.bytes.len() as f64);
        }
        let t0 = Instant::now();
        let jpeg = server::views::encode_jpeg(&raw, 80).map_err(|e| anyhow::anyhow!("{e}"))?;
        jpeg_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        jpeg_bytes.push(jpeg.len() as f64);
        let rgb = image::DynamicImage::ImageRgba8(raw.clone()).to_rgb8();
        let t0 = Instant::now();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&rgb)?;
        image_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        // Decoded as a browser would, compared in grey with the raw frame.
        let yuv = decoder.decode(&frame.bytes)?.context("a decoded picture")?;
        let mut decoded = vec![0u8; (w * h * 3) as usize];
        yuv.write_rgb8(&mut decoded);
        let decoded = image::RgbImage::from_raw(w, h, decoded).context("the decoded size")?;
        let grey = |img: &image::RgbImage| image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
        let raw_grey = grey(&rgb);
        let ssim = |other: &image::GrayImage| grey_ssim(&raw_grey, other);
        let h264_decoded = grey(&decoded);
        h264_ssim.push(ssim(&h264_decoded)?);
        h264_old.push(image_compare_score(&raw_grey, &h264_decoded)?);
        let jpeg_decoded = image::load_from_memory(&jpeg)?.to_luma8();
        jpeg_ssim.push(ssim(&jpeg_decoded)?);
        jpeg_old.push(image_compare_score(&raw_grey, &jpeg_decoded)?);
    }
    Ok(CodecFrames {
        h264_p_bytes: median(&mut p_bytes),
        h264_key_bytes: median(&mut key_bytes),
        jpeg_bytes: median(&mut jpeg_bytes),
        h264_ssim: h264_ssim.iter().copied().fold(f64::INFINITY, f64::min),
        jpeg_ssim: jpeg_ssim.iter().copied().fold(f64::INFINITY, f64::min),
        h264_ssim_median: median(&mut h264_ssim),
        jpeg_ssim_median: median(&mut jpeg_ssim),
        h264_old_score_median: median(&mut h264_old),
        jpeg_old_score_median: median(&mut jpeg_old),
        h264_ms: median(&mut h264_ms),
        jpeg_ms: median(&mut jpeg_ms),
        image_crate_ms: median(&mut image_ms),
    })
}
