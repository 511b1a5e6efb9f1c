//! `databrain`: generate sample data, load it into DuckDB, query indicators, render the city
//! twin and serve it all over HTTP.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicators::{Catalogue, Grain, IndicatorQuery, Level};
use server::state::{AppState, Rendering};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "databrain",
    version,
    about = "Decision-support indicators and a city digital twin for a provincial data brain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScaleArg {
    Small,
    Medium,
    Large,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum IndicatorsAction {
    /// One line per indicator: id, domain, kind, unit, target, names.
    List,
    /// The full definition of one indicator, as JSON.
    Show { id: String },
}

#[derive(Subcommand)]
enum Command {
    /// Generate deterministic sample data (regions, population, 12345 work orders, service
    /// applications, demo-district buildings) into a directory.
    Generate {
        /// Directory to write the files into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// small: 100k work orders; medium: 1M; large: 10M.
        #[arg(long, value_enum, default_value = "small")]
        scale: ScaleArg,
        /// The same seed and scale always give the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Load a generated directory into a DuckDB file (all-or-nothing; replaces what was there).
    Ingest {
        /// The DuckDB file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// A directory written by `databrain generate`.
        dir: PathBuf,
    },
    /// Print an indicator's values per region and period.
    Query {
        /// Indicator id from the catalogue (see GET /api/indicators), e.g. hotline_on_time_rate.
        indicator: String,
        /// The DuckDB file.
        #[arg(long)]
        db: PathBuf,
        /// province, city, county, township, community or grid.
        #[arg(long, default_value = "city")]
        level: String,
        /// day, week, month, quarter or year.
        #[arg(long, default_value = "month")]
        grain: String,
        /// First period, inclusive: 2024, 2024-Q3, 2024-07, 2024-W27 or 2024-07-15.
        #[arg(long)]
        from: Option<String>,
        /// Last period, inclusive.
        #[arg(long)]
        to: Option<String>,
        /// Limit to the subtree of a division code, e.g. 3201 (Nanjing).
        #[arg(long)]
        region: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Render a scene headlessly to a PNG (Vulkan; on machines without a GPU, Mesa's lavapipe).
    Render {
        /// The DuckDB file.
        #[arg(long)]
        db: PathBuf,
        /// A built-in scene id or a scene TOML file.
        #[arg(long)]
        scene: String,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
    },
    /// List the indicator catalogue, or show one indicator's definition.
    Indicators {
        #[command(subcommand)]
        action: IndicatorsAction,
    },
    /// Serve the API, the page and the streamed twin.
    Serve {
        /// The DuckDB file.
        #[arg(long)]
        db: PathBuf,
        /// Address to listen on; port 0 picks a free port (the URL is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// Generate the small sample if missing, load it and serve it.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Where the sample and the database live.
        #[arg(long, default_value = "demo-data")]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wgpu=warn,naga=warn,bevy=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Generate { out, scale, seed } => generate(&out, scale, seed),
        Command::Ingest { db, dir } => ingest(&db, &dir),
        Command::Query {
            indicator,
            db,
            level,
            grain,
            from,
            to,
            region,
            format,
        } => {
            let level: Level = level.parse().context("--level")?;
            let grain: Grain = grain.parse().context("--grain")?;
            query(
                &db,
                &indicator,
                IndicatorQuery {
                    level,
                    grain,
                    from,
                    to,
                    region,
                },
                format,
            )
        }
        Command::Render {
            db,
            scene,
            out,
            width,
            height,
        } => render(&db, &scene, &out, width, height),
        Command::Serve { db, addr } => serve(&db, addr),
        Command::Demo { addr, dir } => demo(&dir, addr),
        Command::Indicators { action } => indicators_cmd(action),
    }
}

/// The catalogue's indicator `id`, or an error listing the known ids.
fn find_indicator<'a>(catalogue: &'a Catalogue, id: &str) -> Result<&'a indicators::Indicator> {
    catalogue.get(id).ok_or_else(|| {
        let ids: Vec<&str> = catalogue.indicators.iter().map(|i| i.id.as_str()).collect();
        anyhow::anyhow!("unknown indicator {id:?}; known: {}", ids.join(", "))
    })
}

fn indicators_cmd(action: IndicatorsAction) -> Result<()> {
    let catalogue = Catalogue::builtin();
    match action {
        IndicatorsAction::List => {
            use std::fmt::Write as _;
            let mut out = format!(
                "catalogue {} ({} indicators)\n",
                catalogue.version,
                catalogue.indicators.len()
            );
            for i in &catalogue.indicators {
                let domain = serde_json::to_value(i.domain)?;
                let kind = serde_json::to_value(i.kind)?;
                let target = i
                    .target
                    .as_ref()
                    .map(|t| format!("{} by {}", t.value, t.year))
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "{:<30} {:<15} {:<6} {:<18} {:<12} {} / {}",
                    i.id,
                    domain.as_str().unwrap_or_default(),
                    kind.as_str().unwrap_or_default(),
                    i.unit,
                    target,
                    i.name_zh,
                    i.name_en
                )?;
            }
            emit(out.as_bytes())
        }
        IndicatorsAction::Show { id } => {
            let indicator = find_indicator(&catalogue, &id)?;
            let mut json = serde_json::to_vec_pretty(indicator)?;
            json.push(b'\n');
            emit(&json)
        }
    }
}

fn generate(out: &Path, scale: ScaleArg, seed: u64) -> Result<()> {
    let scale = match scale {
        ScaleArg::Small => data_samples::Scale::Small,
        ScaleArg::Medium => data_samples::Scale::Medium,
        ScaleArg::Large => data_samples::Scale::Large,
    };
    let config = data_samples::Config {
        scale,
        seed,
        progress: true,
    };
    let m = data_samples::generate(out, &config)?;
    println!(
        "generated {} scale (seed {}): {} regions, {} grid cells, {} work orders, {} service applications, {} buildings in {}",
        m.scale,
        m.seed,
        m.regions,
        m.grid_cells,
        m.work_orders,
        m.service_applications,
        m.buildings,
        out.display()
    );
    Ok(())
}

fn ingest(db: &Path, dir: &Path) -> Result<()> {
    let engine = analytics::Engine::open(db)?;
    let report = engine.ingest_dir(dir)?;
    for (table, rows) in &report.tables {
        println!("{table:>22}: {rows} rows");
    }
    println!("ingest {} into {}", report.ingest_id, db.display());
    Ok(())
}

fn query(db: &Path, id: &str, q: IndicatorQuery, format: Format) -> Result<()> {
    let catalogue = Catalogue::builtin();
    let indicator = find_indicator(&catalogue, id)?;
    let engine = analytics::Engine::open(db)?;
    engine.snapshot()?;
    let rows = engine.values(indicator, &q)?;
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    let bytes: Vec<u8> = match format {
        Format::Json => {
            let mut json = serde_json::to_vec_pretty(&rows)?;
            json.push(b'\n');
            json
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "region_code",
                "region_name",
                "period",
                "value",
                "numerator",
                "denominator",
                "unit",
                "target",
                "status",
            ])?;
            for r in &rows {
                let record: [&str; 9] = [
                    &r.region_code,
                    &r.region_name,
                    &r.period,
                    &cell(r.value),
                    &format!("{}", r.numerator),
                    &r.denominator.map(|d| d.to_string()).unwrap_or_default(),
                    &r.unit,
                    &cell(r.target),
                    r.status.as_str(),
                ];
                w.write_record(record)?;
            }
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))?
        }
        Format::Table => {
            use std::fmt::Write as _;
            let mut t = String::new();
            writeln!(
                t,
                "{} {} ({}), {} by {}",
                indicator.id, indicator.name_zh, indicator.name_en, q.level, q.grain
            )?;
            writeln!(
                t,
                "{:<18} {:<14} {:<10} {:>12} {:>12} {:>12} {:>8} {:<8}",
                "region", "name", "period", "value", "numerator", "denominator", "target", "status"
            )?;
            for r in &rows {
                writeln!(
                    t,
                    "{:<18} {:<14} {:<10} {:>12} {:>12} {:>12} {:>8} {:<8}",
                    r.region_code,
                    r.region_name,
                    r.period,
                    r.value
                        .map(|v| format!("{v:.4}"))
                        .unwrap_or_else(|| "-".into()),
                    r.numerator,
                    r.denominator
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.target
                        .map(|t| format!("{t}"))
                        .unwrap_or_else(|| "-".into()),
                    r.status.as_str()
                )?;
            }
            writeln!(t, "{} rows", rows.len())?;
            t.into_bytes()
        }
    };
    emit(&bytes)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Built-in scenes, plus the one named by `scene` when it is a file.
fn load_scene(scene: &str) -> Result<scenes::Scene> {
    let builtin = scenes::builtin()?;
    if let Some(s) = builtin.iter().find(|s| s.id == scene) {
        return Ok(s.clone());
    }
    let path = Path::new(scene);
    if path.is_file() {
        return Ok(scenes::Scene::load(path)?);
    }
    let ids: Vec<&str> = builtin.iter().map(|s| s.id.as_str()).collect();
    bail!(
        "unknown scene {scene:?}: not a built-in scene ({}) nor a file",
        ids.join(", ")
    )
}

fn render(db: &Path, scene: &str, out: &Path, width: u32, height: u32) -> Result<()> {
    let scene = load_scene(scene)?;
    let catalogue = Catalogue::builtin();
    server::views::check_scenes(&catalogue, std::slice::from_ref(&scene))
        .map_err(anyhow::Error::msg)?;
    let engine = analytics::Engine::open(db)?;
    let ingest_id = engine.snapshot()?.ingest_id;
    let prepared = server::views::prepare(&engine, &catalogue, &scene, ingest_id)?;
    let renderer = twin::Renderer::start()?;
    let image = renderer.render(std::sync::Arc::new(prepared), scene.camera, width, height)?;
    image
        .save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "rendered {} ({}x{}) on {} to {}",
        scene.id,
        width,
        height,
        renderer.adapter(),
        out.display()
    );
    Ok(())
}

fn state_for(db: &Path) -> Result<AppState> {
    let catalogue = Catalogue::builtin();
    let scenes = scenes::builtin()?;
    server::views::check_scenes(&catalogue, &scenes).map_err(anyhow::Error::msg)?;
    let engine = analytics::Engine::open(db)?;
    let rendering = match twin::Renderer::start() {
        Ok(r) => {
            tracing::info!(adapter = r.adapter(), "rendering available");
            Rendering::Available(std::sync::Arc::new(r))
        }
        Err(e) => {
            tracing::warn!(error = %e, "serving without rendering");
            Rendering::Unavailable(e.to_string())
        }
    };
    Ok(AppState::new(engine, catalogue, scenes, rendering))
}

fn serve(db: &Path, addr: SocketAddr) -> Result<()> {
    let state = state_for(db)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!("databrain listening on http://{local}/");
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, server::app(state))
            .with_graceful_shutdown(shutdown())
            .await?;
        Ok(())
    })
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

fn demo(dir: &Path, addr: SocketAddr) -> Result<()> {
    let sample = dir.join("sample-small");
    let db = dir.join("databrain.duckdb");
    if !sample.join("manifest.json").is_file() {
        generate(&sample, ScaleArg::Small, 42)?;
    }
    let has_data = analytics::Engine::open(&db)?.snapshot().is_ok();
    if !has_data {
        ingest(&db, &sample)?;
    }
    serve(&db, addr)
}
