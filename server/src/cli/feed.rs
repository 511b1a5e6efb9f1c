//! Writing through a running server: `databrain load --server` and `databrain feed`. The
//! token comes from `DATABRAIN_TOKEN` (never the command line, which other users can read).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn token() -> Result<String> {
    std::env::var("DATABRAIN_TOKEN")
        .context("set DATABRAIN_TOKEN to an admin's or a loader's token of the server")
}

fn base(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

/// Prints a load report (or a refusal) and says whether it loaded.
fn report(status: reqwest::StatusCode, body: &serde_json::Value) -> Result<()> {
    let r = if status.is_success() {
        body
    } else {
        &body["report"]
    };
    if let Some(rejected) = r["rejected"].as_array() {
        for x in rejected.iter().take(20) {
            eprintln!(
                "rejected row {}: {}",
                x["row"],
                x["reason"].as_str().unwrap_or("")
            );
        }
    }
    if !status.is_success() {
        bail!(
            "the server refused the load ({status}): {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    println!(
        "{}: read {} rows, loaded {} ({} new or changed), rejected {}; snapshot {}",
        r["table"].as_str().unwrap_or("?"),
        r["rows_read"],
        r["rows_loaded"],
        r["rows_changed"],
        r["rows_rejected"],
        r["ingest_id"]
    );
    Ok(())
}

/// `databrain load --server URL`: the file's rows go to `POST /api/loads` (Parquet files are
/// read here and sent as CSV: the server reads no files).
pub(crate) fn load_through(
    server: &str,
    table: &str,
    mapping: Option<&str>,
    file: &Path,
) -> Result<()> {
    let token = token()?;
    let parquet = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let body = if parquet {
        analytics::parquet_as_csv(file)?
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let mut url = reqwest::Url::parse(&format!("{}/api/loads", base(server)))
        .with_context(|| format!("{server:?} is not a URL"))?;
    url.query_pairs_mut().append_pair("table", table);
    if let Some(m) = mapping {
        url.query_pairs_mut().append_pair("mapping", m);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {server}"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        report(status, &body)
    })
}

/// `databrain feed`'s arguments.
#[derive(clap::Args)]
pub(crate) struct FeedArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub server: String,
    /// The sample the server was loaded from (its regions.csv and manifest.json).
    #[arg(long, default_value = "demo-data/sample-small")]
    pub sample: PathBuf,
    /// New work orders per second (default: the sample's own daily volume, scaled by
    /// --speed, so the history's anomaly checks see no change of level).
    #[arg(long)]
    pub rate: Option<usize>,
    /// Simulated seconds per second (86400: a day a second).
    #[arg(long, default_value_t = 86400.0)]
    pub speed: f64,
    /// Stop after this many seconds (default: run until stopped).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The simulated start, YYYY-MM-DD (default: the day after the sample's last day).
    #[arg(long)]
    pub from: Option<String>,
    /// Seed of the generated events (and of their ids).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `databrain feed`: a batch of events a second to `POST /api/facts/work_orders`, each sent
/// again (unchanged, so nothing doubles) when the server did not answer it.
pub(crate) fn feed(args: &FeedArgs) -> Result<()> {
    let token = token()?;
    let regions = args.sample.join("regions.csv");
    let text = std::fs::read_to_string(&regions)
        .with_context(|| format!("cannot read {} (see --sample)", regions.display()))?;
    let cells = data_samples::feed::Feed::cells_from_regions(&text)
        .map_err(|e| anyhow::anyhow!("{e}, in {}", regions.display()))?;
    if !(args.speed > 0.0 && args.speed <= 1e7) {
        bail!("--speed must be above 0 and at most 10,000,000 simulated seconds a second");
    }
    let manifest = args.sample.join("manifest.json");
    let m: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?,
    )
    .with_context(|| format!("malformed {}", manifest.display()))?;
    let day = |key: &str| -> Result<chrono::NaiveDate> {
        let text = m[key]
            .as_str()
            .with_context(|| format!("{} names no {key}", manifest.display()))?;
        Ok(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")?)
    };
    let start = match &args.from {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("--from {d:?} is not a date like 2026-01-01"))?,
        None => day("last_day")? + chrono::Days::new(1),
    };
    let rate = match args.rate {
        Some(r) => r,
        None => {
            let days = (day("last_day")? - day("first_day")?).num_days().max(0) + 1;
            let per_day = m["work_orders"].as_f64().unwrap_or(0.0) / days as f64;
            (per_day * args.speed / 86_400.0).round().max(1.0) as usize
        }
    };
    let mut feed = data_samples::feed::Feed::new(
        cells,
        start.and_hms_opt(0, 0, 0).expect("midnight"),
        args.seed,
    );
    let url = format!("{}/api/facts/work_orders", base(&args.server));
    let step = chrono::Duration::milliseconds((args.speed * 1000.0) as i64);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if args
                .seconds
                .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
            {
                return Ok(());
            }
            let rows = feed.advance(step, rate);
            let body: String = rows
                .iter()
                .map(|r| format!("{}\n", serde_json::Value::Object(r.clone())))
                .collect();
            let mut answer = None;
            for attempt in 0..3 {
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) => {
                        answer = Some((
                            r.status(),
                            r.json::<serde_json::Value>().await.unwrap_or_default(),
                        ));
                        break;
                    }
                    Err(e) => {
                        eprintln!(
                            "batch not answered ({e}); sending it again ({})",
                            attempt + 1
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let Some((status, body)) = answer else {
                bail!("the server at {} did not answer three times", args.server);
            };
            if !status.is_success() {
                bail!(
                    "the server refused a batch ({status}): {}",
                    body["error"].as_str().unwrap_or("no reason given")
                );
            }
            println!(
                "{} simulated {}: {} events, {} changed, snapshot {}; trouble in {}",
                chrono::Local::now().format("%H:%M:%S"),
                feed.clock.format("%Y-%m-%d %H:%M"),
                rows.len(),
                body["rows_changed"],
                body["ingest_id"],
                feed.trouble
                    .as_ref()
                    .map(|(c, _)| c.as_str())
                    .unwrap_or("-")
            );
        }
    })
}
