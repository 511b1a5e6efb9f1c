//! `databrain`: generate sample data, load it into DuckDB, query indicators, render the city
//! twin and serve it all over HTTP.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicators::{Catalogue, Grain, IndicatorQuery, Level};
use server::state::{AppState, Rendering};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// mimalloc instead of glibc's allocator: loading and meshing a city makes millions of small
/// allocations, where glibc's spent over a quarter of the time (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod bench_stream;
mod bench_twin;

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

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
    /// Apache Parquet (needs --out).
    Parquet,
    /// SDMX-CSV 1.0 (dataflow DATABRAIN:DF_INDICATORS).
    SdmxCsv,
}

/// Output of the commands that print a report rather than values.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SqlFormat {
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
    /// The JSON Schema of catalogue files (as in indicators/catalogue.schema.json).
    Schema,
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
        /// Write to this file instead of stdout (required for parquet).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Load one department file (CSV or Parquet) into a fact table or the region tree:
    /// validated, all-or-nothing unless the mapping says otherwise, idempotent.
    Load {
        /// The DuckDB file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// The fact table (e.g. work_orders) or `regions`.
        #[arg(long)]
        table: String,
        /// A mapping TOML for files in a foreign layout (see the README).
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// The CSV or Parquet file.
        file: PathBuf,
    },
    /// Threshold breaches and anomalies in the latest period, with the regions driving them.
    Alerts {
        #[arg(long)]
        db: PathBuf,
        /// The level whose regions are checked.
        #[arg(long, default_value = "county")]
        level: String,
        /// day, week, month, quarter or year (default: quarters for thresholds, months for
        /// anomalies).
        #[arg(long)]
        grain: Option<String>,
        /// The period to check (default: the latest complete one).
        #[arg(long)]
        period: Option<String>,
        /// Only this subtree, e.g. 3201.
        #[arg(long)]
        region: Option<String>,
        /// Only this indicator.
        #[arg(long)]
        indicator: Option<String>,
        /// Only critical (or warning) alerts.
        #[arg(long)]
        severity: Option<String>,
        /// Fewest records a value must rest on to raise an alert.
        #[arg(long, default_value_t = 30.0)]
        min_support: f64,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Progress toward each target: measured, or forecast to the target year.
    Trends {
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value = "32")]
        region: String,
        /// Forecast as if the data ended on this day (YYYY-MM-DD).
        #[arg(long)]
        as_of: Option<String>,
        #[arg(long)]
        indicator: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Run one read-only SQL query (no writes, no files, a time and a row limit).
    Sql {
        #[arg(long)]
        db: PathBuf,
        /// The query, e.g. "SELECT COUNT(*) FROM work_orders".
        sql: String,
        #[arg(long, default_value_t = 10_000)]
        max_rows: usize,
        #[arg(long, default_value_t = 30.0)]
        timeout_s: f64,
        #[arg(long, value_enum, default_value = "table")]
        format: SqlFormat,
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
        /// Render from this bookmark of the scene instead of its starting camera.
        #[arg(long)]
        bookmark: Option<String>,
        /// Where relative file paths of scene layers are taken from.
        #[arg(long, default_value = ".")]
        data_dir: PathBuf,
    },
    /// Open the planners' window on a scene: orbit, pan, zoom, click to pick, keys for layers,
    /// periods and bookmarks (needs a display; on a machine without one, run under Xvfb).
    Twin {
        /// The DuckDB file.
        #[arg(long)]
        db: PathBuf,
        /// A built-in scene id or a scene TOML file.
        #[arg(long)]
        scene: String,
        /// Where relative file paths of scene layers are taken from.
        #[arg(long, default_value = ".")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Where F12 saves a screenshot.
        #[arg(long, default_value = "databrain-twin.png")]
        screenshot: PathBuf,
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
        /// Tokens: a TOML file of `[[token]]` tables with name, role, scope and secret.
        /// `DATABRAIN_ADMIN_TOKEN` in the environment adds an admin token for the province.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// The audit log (JSON lines); default: next to the database, `<db>.audit.jsonl`.
        #[arg(long)]
        audit: Option<PathBuf>,
    },
    /// Measure the indicator system on a generated dataset and write BENCHMARKS.md.
    Bench {
        /// Where the sample and the benchmark databases live.
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "large")]
        scale: ScaleArg,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The year whose months are queried.
        #[arg(long, default_value_t = 2025)]
        year: i32,
        /// How many times the full catalogue is recomputed.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The Python with `duckdb` and `pandas` for the comparison.
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Benchmark the city twin on generated cities (load, join, mesh, frames, against cjio),
    /// written to the `twin` section of BENCHMARKS.md.
    BenchTwin {
        /// Where the generated CityJSON cities are kept.
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// City sizes in buildings; frames are timed for the first.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        sizes: Vec<usize>,
        /// The Python with `cjio` for the comparison.
        #[arg(long, default_value = "python3")]
        python: String,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Benchmark the view stream on loopback (latency, frames per second per viewer, bytes and
    /// encode time per frame, followers), written to the `stream` section of BENCHMARKS.md.
    BenchStream {
        /// The DuckDB file (e.g. the demo's).
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// One size of `bench-twin`, in a process of its own (prints JSON).
    #[command(hide = true)]
    BenchTwinOne {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        buildings: usize,
        #[arg(long)]
        frames: bool,
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
            out,
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
                out.as_deref(),
            )
        }
        Command::Load {
            db,
            table,
            mapping,
            file,
        } => load(&db, &table, mapping.as_deref(), &file),
        Command::Alerts {
            db,
            level,
            grain,
            period,
            region,
            indicator,
            severity,
            min_support,
            format,
        } => {
            let q = analytics::AlertQuery {
                level: level.parse().context("--level")?,
                grain: grain.map(|g| g.parse()).transpose().context("--grain")?,
                period,
                region,
                indicator,
                min_support,
                ..analytics::AlertQuery::default()
            };
            alerts(&db, &q, severity.as_deref(), format)
        }
        Command::Trends {
            db,
            region,
            as_of,
            indicator,
            format,
        } => {
            let as_of = as_of
                .map(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d"))
                .transpose()
                .context("--as-of: expected a date like 2025-06-30")?;
            let q = analytics::TrendQuery {
                region,
                as_of,
                indicator,
            };
            trends(&db, &q, format)
        }
        Command::Sql {
            db,
            sql,
            max_rows,
            timeout_s,
            format,
        } => run_sql(&db, &sql, max_rows, timeout_s, format),
        Command::Render {
            db,
            scene,
            out,
            width,
            height,
            bookmark,
            data_dir,
        } => render(
            &db,
            &scene,
            &out,
            (width, height),
            bookmark.as_deref(),
            &data_dir,
        ),
        Command::Twin {
            db,
            scene,
            data_dir,
            width,
            height,
            screenshot,
        } => planner_window(&db, &scene, &data_dir, (width, height), screenshot),
        Command::Serve {
            db,
            addr,
            tokens,
            audit,
        } => {
            let auth = load_auth(tokens.as_deref(), &audit_path(&db, audit))?;
            serve(&db, addr, auth)
        }
        Command::BenchTwin {
            dir,
            sizes,
            python,
            out,
        } => bench_twin::run(&bench_twin::TwinBenchArgs {
            dir,
            sizes,
            python,
            out,
        }),
        Command::BenchStream { db, out } => {
            let state = bench_stream::open(&db, state_for(&db))?;
            bench_stream::run(&db, state, &out)
        }
        Command::BenchTwinOne {
            dir,
            buildings,
            frames,
        } => bench_twin::one(&dir, buildings, frames),
        Command::Demo { addr, dir } => demo(&dir, addr),
        Command::Bench {
            dir,
            scale,
            seed,
            year,
            rounds,
            python,
            out,
        } => bench::run(&bench::BenchArgs {
            dir,
            scale: scale_of(scale),
            seed,
            year,
            rounds: rounds.max(1),
            python,
            out,
        }),
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
        IndicatorsAction::Schema => emit(indicators::schema::catalogue_schema_text().as_bytes()),
    }
}

fn scale_of(scale: ScaleArg) -> data_samples::Scale {
    match scale {
        ScaleArg::Small => data_samples::Scale::Small,
        ScaleArg::Medium => data_samples::Scale::Medium,
        ScaleArg::Large => data_samples::Scale::Large,
    }
}

fn generate(out: &Path, scale: ScaleArg, seed: u64) -> Result<()> {
    let config = data_samples::Config {
        scale: scale_of(scale),
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

fn query(db: &Path, id: &str, q: IndicatorQuery, format: Format, out: Option<&Path>) -> Result<()> {
    // Read-only, so queries run beside a server or a planner's window on the same file.
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    let indicator = find_indicator(engine.catalogue(), id)?;
    engine.snapshot()?;
    let rows = engine.values(indicator, &q)?;
    let bytes: Vec<u8> = match format {
        Format::Parquet => {
            let path = out.context("--format parquet needs --out FILE")?;
            engine.write_parquet(&rows, path)?;
            println!("{} rows to {}", rows.len(), path.display());
            return Ok(());
        }
        Format::Json => {
            let mut json = serde_json::to_vec_pretty(&rows)?;
            json.push(b'\n');
            json
        }
        Format::Csv => server::export::values_csv(&rows),
        Format::SdmxCsv => server::export::values_sdmx_csv(indicator, q.grain, &rows),
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
    match out {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))
        }
        None => emit(&bytes),
    }
}

fn load(db: &Path, table: &str, mapping: Option<&Path>, file: &Path) -> Result<()> {
    let mapping = mapping.map(analytics::Mapping::load).transpose()?;
    let engine = analytics::Engine::open(db)?;
    let report = engine.load_file(table, file, mapping.as_ref(), true)?;
    for r in report.rejected.iter().take(20) {
        eprintln!("rejected row {}: {}", r.row, r.reason);
    }
    if report.rows_rejected > 20 {
        eprintln!("... {} rejected rows in all", report.rows_rejected);
    }
    println!(
        "{}: read {} rows, loaded {} ({} new or changed), rejected {}; load {} from {}",
        report.table,
        report.rows_read,
        report.rows_loaded,
        report.rows_changed,
        report.rows_rejected,
        report
            .ingest_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into()),
        report.file.display()
    );
    Ok(())
}

fn alerts(
    db: &Path,
    q: &analytics::AlertQuery,
    severity: Option<&str>,
    format: ReportFormat,
) -> Result<()> {
    let only = match severity {
        None => None,
        Some("critical") => Some(indicators::Status::Critical),
        Some("warning") => Some(indicators::Status::Warning),
        Some(other) => bail!("--severity: {other:?} is not one of critical, warning"),
    };
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    engine.snapshot()?;
    let mut found = engine.alerts(q)?;
    if let Some(s) = only {
        found.retain(|a| a.severity == s);
    }
    if format == ReportFormat::Json {
        let mut json = serde_json::to_vec_pretty(&found)?;
        json.push(b'\n');
        return emit(&json);
    }
    use std::fmt::Write as _;
    let mut t = String::new();
    for a in &found {
        writeln!(
            t,
            "{:<8} {:<9} {:<12} {:<34} {:<8} {}",
            a.severity.as_str(),
            format!("{:?}", a.kind).to_lowercase(),
            a.region_code,
            a.indicator,
            a.period,
            a.message
        )?;
        for d in &a.drivers {
            writeln!(
                t,
                "{:>30} {} {} value {} (pulls {:.4})",
                "driven by",
                d.region_code,
                d.region_name,
                d.value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "-".into()),
                d.contribution
            )?;
        }
    }
    writeln!(t, "{} alerts", found.len())?;
    emit(t.as_bytes())
}

fn trends(db: &Path, q: &analytics::TrendQuery, format: ReportFormat) -> Result<()> {
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    engine.snapshot()?;
    let found = engine.trends(q)?;
    if format == ReportFormat::Json {
        let mut json = serde_json::to_vec_pretty(&found)?;
        json.push(b'\n');
        return emit(&json);
    }
    use std::fmt::Write as _;
    let mut t = String::new();
    let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into());
    writeln!(
        t,
        "{:<34} {:<10} {:>8} {:>10} {:>10} {:>10} verdict",
        "indicator", "latest", "value", "target", "forecast", "by"
    )?;
    for tr in &found {
        writeln!(
            t,
            "{:<34} {:<10} {:>8} {:>10} {:>10} {:>10} {:?}",
            tr.indicator,
            tr.latest_period.as_deref().unwrap_or("-"),
            num(tr.latest_value),
            tr.target,
            num(tr.forecast),
            tr.target_year,
            tr.verdict
        )?;
    }
    emit(t.as_bytes())
}

fn run_sql(db: &Path, sql: &str, max_rows: usize, timeout_s: f64, format: SqlFormat) -> Result<()> {
    if !(timeout_s > 0.0 && timeout_s.is_finite()) {
        bail!("--timeout-s must be a positive number of seconds");
    }
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::Analyst)?;
    let limits = analytics::SqlLimits {
        max_rows,
        timeout: std::time::Duration::from_secs_f64(timeout_s),
    };
    let result = engine.run_sql(sql, &limits)?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bytes = match format {
        SqlFormat::Json => {
            let mut json = serde_json::to_vec_pretty(&result)?;
            json.push(b'\n');
            json
        }
        SqlFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(&result.columns)?;
            for row in &result.rows {
                w.write_record(row.iter().map(text))?;
            }
            w.into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))?
        }
        SqlFormat::Table => {
            use std::fmt::Write as _;
            let mut t = result.columns.join("\t");
            t.push('\n');
            for row in &result.rows {
                let cells: Vec<String> = row.iter().map(text).collect();
                writeln!(t, "{}", cells.join("\t"))?;
            }
            writeln!(
                t,
                "{} rows{} in {:.1} ms",
                result.rows.len(),
                if result.truncated { " (truncated)" } else { "" },
                result.elapsed_ms
            )?;
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

fn planner_window(
    db: &Path,
    scene: &str,
    data_dir: &Path,
    size: (u32, u32),
    screenshot: PathBuf,
) -> Result<()> {
    let scene = load_scene(scene)?;
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    let catalogue = engine.catalogue().clone();
    server::views::check_scenes(&catalogue, std::slice::from_ref(&scene))
        .map_err(anyhow::Error::msg)?;
    let ingest_id = engine.snapshot()?.ingest_id;
    let prepared = server::views::prepare(&engine, &catalogue, &scene, ingest_id, data_dir)?;
    let periods = server::views::scene_periods(&engine, &catalogue, &scene)?;
    let bookmarks = scene
        .bookmarks
        .iter()
        .map(|b| (b.name.clone(), b.camera))
        .collect();
    let planner = twin::planner::Planner::new(prepared, scene.camera, bookmarks, periods, size);
    twin::window::run_window(
        planner,
        twin::window::WindowOptions {
            title: format!("{} {}", scene.title_zh, scene.title_en),
            size,
            screenshot_to: screenshot,
        },
    )?;
    Ok(())
}

fn render(
    db: &Path,
    scene: &str,
    out: &Path,
    (width, height): (u32, u32),
    bookmark: Option<&str>,
    data_dir: &Path,
) -> Result<()> {
    let scene = load_scene(scene)?;
    let camera = match bookmark {
        None => scene.camera,
        Some(name) => {
            let names: Vec<&str> = scene.bookmarks.iter().map(|b| b.name.as_str()).collect();
            scene
                .bookmarks
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.camera)
                .with_context(|| {
                    format!(
                        "scene {} has no bookmark {name:?} (it has: {})",
                        scene.id,
                        names.join(", ")
                    )
                })?
        }
    };
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    let catalogue = engine.catalogue().clone();
    server::views::check_scenes(&catalogue, std::slice::from_ref(&scene))
        .map_err(anyhow::Error::msg)?;
    let ingest_id = engine.snapshot()?.ingest_id;
    let prepared = server::views::prepare(&engine, &catalogue, &scene, ingest_id, data_dir)?;
    let renderer = twin::Renderer::start()?;
    let image = renderer.render(std::sync::Arc::new(prepared), camera, width, height)?;
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
    // The server never writes: read-only and sealed, so analysts' SQL cannot reach files.
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::Analyst)?;
    let scenes = scenes::builtin()?;
    server::views::check_scenes(engine.catalogue(), &scenes).map_err(anyhow::Error::msg)?;
    let rendering = match twin::Renderer::start() {
        Ok(r) => {
            tracing::info!(adapter = r.adapter(), "rendering available");
            Rendering::Available(std::sync::Arc::new(server::state::RenderSlot::new(r)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "serving without rendering");
            Rendering::Unavailable(e.to_string())
        }
    };
    Ok(AppState::new(engine, scenes, rendering))
}

/// The audit log's path: given, or `<db>.audit.jsonl`.
fn audit_path(db: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let mut name = db.as_os_str().to_owned();
        name.push(".audit.jsonl");
        PathBuf::from(name)
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    token: Vec<TokenEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: String,
    scope: String,
    secret: String,
}

/// Tokens from `DATABRAIN_ADMIN_TOKEN` and the tokens file, with the audit log.
fn load_auth(tokens: Option<&Path>, audit: &Path) -> Result<server::auth::Auth> {
    use server::auth::{Auth, Principal, Role};
    let mut auth = Auth::default();
    if let Ok(secret) = std::env::var("DATABRAIN_ADMIN_TOKEN") {
        let admin = Principal {
            name: "admin (DATABRAIN_ADMIN_TOKEN)".into(),
            role: Role::Admin,
            scope: "32".into(),
        };
        auth.add(&secret, admin)
            .map_err(|e| anyhow::anyhow!("DATABRAIN_ADMIN_TOKEN: {e}"))?;
    }
    if let Some(path) = tokens {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
        let file: TokensFile = toml::from_str(&text)
            .with_context(|| format!("malformed tokens file {}", path.display()))?;
        for t in file.token {
            let role: Role = t.role.parse().map_err(|e: String| {
                anyhow::anyhow!("token {}: {e}, in {}", t.name, path.display())
            })?;
            auth.add(
                &t.secret,
                Principal {
                    name: t.name.clone(),
                    role,
                    scope: t.scope,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}, in {}", path.display()))?;
        }
    }
    auth.audit_to(audit)
        .with_context(|| format!("cannot open the audit log {}", audit.display()))?;
    Ok(auth)
}

/// A random token: 32 hex digits from the operating system's generator.
fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn serve(db: &Path, addr: SocketAddr, auth: server::auth::Auth) -> Result<()> {
    let state = state_for(db)?.with_auth(auth);
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
    // A sample from an older generator lacks tables: make it again and reload.
    let current = std::fs::read_to_string(sample.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m.get("format").and_then(|f| f.as_u64()))
        == Some(u64::from(data_samples::FORMAT_VERSION));
    if !current {
        generate(&sample, ScaleArg::Small, 42)?;
    }
    let has_data = current && analytics::Engine::open(&db)?.snapshot().is_ok();
    if !has_data {
        ingest(&db, &sample)?;
    }
    // One token per role, fresh at every start: the province for admin, leader and viewer, a
    // Nanjing analyst, a planner of the demo district.
    use server::auth::{Principal, Role};
    let mut auth = load_auth(None, &audit_path(&db, None))?;
    println!("tokens for this run (each URL opens the start page as that role):");
    for (role, scope) in [
        (Role::Admin, "32"),
        (Role::Leader, "32"),
        (Role::Analyst, "3201"),
        (Role::Planner, "320102"),
        (Role::Viewer, "32"),
    ] {
        let secret = random_token()?;
        auth.add(
            &secret,
            Principal {
                name: format!("demo {}", role.as_str()),
                role,
                scope: scope.into(),
            },
        )
        .map_err(anyhow::Error::msg)?;
        println!(
            "  {:8} scope {scope:7} http://{addr}/?token={secret}",
            role.as_str()
        );
        match role {
            Role::Leader => println!(
                "           the wall:    http://{addr}/wall?scene=jiangsu_by_city&token={secret}"
            ),
            Role::Analyst => {
                println!("           analysis:    http://{addr}/analyst?token={secret}")
            }
            Role::Planner => println!(
                "           the planner: http://{addr}/planner?scene=demo_district&token={secret}"
            ),
            _ => {}
        }
    }
    serve(&db, addr, auth)
}
