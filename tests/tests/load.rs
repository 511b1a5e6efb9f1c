//! A bounded load test on loopback: 200 concurrent API clients (each with its own token, as
//! 200 people would have) and 8 stream viewers against the real server, for
//! `DATABRAIN_LOAD_SECONDS` (10 here; `databrain` benchmarks run it for 60). Zero errors are
//! required; throughput, p95 latency and the server's peak memory are reported.

use databrain_tests::{Server, sample_db};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 200;
const VIEWERS: usize = 8;

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_clients_and_eight_viewers_get_no_errors() {
    let seconds: u64 = std::env::var("DATABRAIN_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let db = sample_db(tmp.path(), 3);
    // One token per client: viewers of the province and analysts of Nanjing, alternately.
    let mut tokens = String::new();
    let secrets: Vec<String> = (0..CLIENTS)
        .map(|k| format!("load-client-token-{k:05}"))
        .collect();
    for (k, secret) in secrets.iter().enumerate() {
        let (role, scope) = if k % 2 == 0 {
            ("viewer", "32")
        } else {
            ("analyst", "3201")
        };
        tokens += &format!(
            "[[token]]\nname = \"client {k}\"\nrole = \"{role}\"\nscope = \"{scope}\"\nsecret = \"{secret}\"\n"
        );
    }
    let tokens_file = tmp.path().join("tokens.toml");
    std::fs::write(&tokens_file, tokens).unwrap();
    let server = Server::start_with(&db, &[], &["--tokens", tokens_file.to_str().unwrap()]);
    let base = server.base_url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let frames = Arc::new(AtomicUsize::new(0));

    // The viewers: streams that keep turning.
    let mut viewers = Vec::new();
    for v in 0..VIEWERS {
        let url = format!(
            "{}/ws/view?scene=demo_district&width=320&height=180&fps=4&spin=30&token={}",
            base.replacen("http", "ws", 1),
            server.token
        );
        let (stop, errors, frames) = (stop.clone(), errors.clone(), frames.clone());
        viewers.push(tokio::spawn(async move {
            let (mut socket, _) = match tokio_tungstenite::connect_async(&url).await {
                Ok(s) => s,
                Err(e) => {
                    errors.lock().unwrap().push(format!("viewer {v}: {e}"));
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
                    Ok(Some(Ok(Message::Binary(_)))) => {
                        frames.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Some(Ok(_))) => {}
                    other => {
                        errors
                            .lock()
                            .unwrap()
                            .push(format!("viewer {v}: {other:?}"));
                        return;
                    }
                }
            }
        }));
    }

    // The API clients: a mix of what analysts and walls ask for.
    let paths = [
        "/api/indicators",
        "/api/indicators/hotline_on_time_rate/values?level=county&grain=month&from=2025-01",
        "/api/indicators/one_thing_completion_rate/series?grain=year",
        "/api/alerts?level=county",
        "/api/health",
    ];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for (k, secret) in secrets.into_iter().enumerate() {
        let (base, errors) = (base.clone(), errors.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies_ms = Vec::new();
            let mut i = k;
            while Instant::now() < deadline {
                let path = paths[i % paths.len()];
                i += 1;
                let t = Instant::now();
                let r = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(&secret)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok(r) => errors
                        .lock()
                        .unwrap()
                        .push(format!("{path}: {}", r.status())),
                    Err(e) => errors.lock().unwrap().push(format!("{path}: {e}")),
                }
            }
            latencies_ms
        }));
    }
    let mut latencies: Vec<f64> = Vec::new();
    for c in clients {
        latencies.extend(c.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for v in viewers {
        let _ = tokio::time::timeout(Duration::from_secs(30), v).await;
    }
    latencies.sort_by(f64::total_cmp);
    let p95 = latencies[(latencies.len() as f64 * 0.95) as usize - 1];
    let errors = errors.lock().unwrap();
    println!(
        "load: {} requests in {elapsed:.1} s ({:.0}/s), p95 {p95:.0} ms, {} frames to {VIEWERS} viewers, server peak RSS {:.0} MiB, {} errors",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        frames.load(Ordering::Relaxed),
        peak_rss_mib(server.pid()).unwrap_or(f64::NAN),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(latencies.len() > CLIENTS, "too few requests completed");
    assert!(
        frames.load(Ordering::Relaxed) >= VIEWERS,
        "the viewers got no frames"
    );
}
