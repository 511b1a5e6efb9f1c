//! The data commands: generate, ingest, load, query, alerts, trends, sql, indicators.
//! The operator at the command line holds the database file, so answers are made for
//! `Audience::trusted()`.

use super::args::*;
use anyhow::{Context, Result, bail};
use indicators::{Catalogue, IndicatorQuery};
use std::path::Path;

/// The catalogue's indicator `id`, or an error listing the known ids.
pub(crate) fn find_indicator<'a>(
    catalogue: &'a Catalogue,
    id: &str,
) -> Result<&'a indicators::Indicator> {
    catalogue.get(id).ok_or_else(|| {
        let ids: Vec<&str> = catalogue.indicators.iter().map(|i| i.id.as_str()).collect();
        anyhow::anyhow!("unknown indicator {id:?}; known: {}", ids.join(", "))
    })
}

pub(crate) fn indicators_cmd(action: IndicatorsAction) -> Result<()> {
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

pub(crate) fn scale_of(scale: ScaleArg) -> data_samples::Scale {
    match scale {
        ScaleArg::Small => data_samples::Scale::Small,
        ScaleArg::Medium => data_samples::Scale::Medium,
        ScaleArg::Large => data_samples::Scale::Large,
    }
}

pub(crate) fn generate(out: &Path, scale: ScaleArg, seed: u64) -> Result<()> {
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

/// `databrain generate --parquet`: a sample straight to the history layout. The CSV files and
/// a DuckDB file are staged beside the history and removed after, so the rows pass the same
/// checks as an ingest and are written by the same export as `databrain export --parquet`.
pub(crate) fn generate_history(history: &Path, scale: ScaleArg, seed: u64) -> Result<()> {
    let parent = history
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".generate-{}", std::process::id()));
    let made = (|| -> Result<()> {
        let sample = staging.join("sample");
        generate(&sample, scale, seed)?;
        let engine = analytics::Engine::open(&staging.join("staging.duckdb"))?;
        engine.ingest_dir(&sample)?;
        // The CSV files are not needed any more: free their space before the Parquet is written.
        std::fs::remove_dir_all(&sample)
            .with_context(|| format!("cannot remove {}", sample.display()))?;
        print_history(&engine.export_history(history)?, history);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    made
}

fn print_history(manifest: &analytics::HistoryManifest, dir: &Path) {
    for (table, t) in &manifest.tables {
        println!(
            "{table:>22}: {} rows{}",
            t.rows,
            if t.partitioned_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", t.partitioned_by.join(", "))
            }
        );
    }
    println!("history in {}", dir.display());
}

/// `databrain export --parquet`: the history for Spark.
pub(crate) fn export(db: &Path, dir: &Path) -> Result<()> {
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    print_history(&engine.export_history(dir)?, dir);
    Ok(())
}

/// `databrain cube`: the cube rebuilt here, or on Spark from the history.
pub(crate) fn cube(db: &Path, args: &EngineArgs) -> Result<()> {
    let engine = analytics::Engine::open(db)?;
    match spark_of(args)? {
        None => {
            let took = engine.rebuild_cube()?;
            println!("cube rebuilt in {:.1} s", took.as_secs_f64());
        }
        Some(spark) => {
            let history = args.history.as_deref().expect("checked by spark_of");
            let scratch = history.join(format!(".cube-{}", std::process::id()));
            let built = engine.cube_from_spark(&spark, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            let built = built?;
            for (table, rows) in &built.tables {
                println!("{table:>30}: {rows} rows");
            }
            println!(
                "cube built on {} in {:.1} s, loaded in {:.1} s",
                args.engine,
                built.on_cluster.as_secs_f64(),
                built.loading.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// `databrain spark-cluster`: a master and workers on loopback until interrupted (Ctrl-C,
/// SIGINT or SIGTERM), then stopped. The signals are caught so that the cluster's `Drop`
/// stops the Java processes: uncaught, they would end this process alone and leave the
/// master and workers running.
pub(crate) fn spark_cluster(
    workers: usize,
    cores: usize,
    memory: &str,
    dir: &Path,
    python: &Path,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Caught before the start: a signal while the cluster starts still stops it.
    let stop = {
        let _context = runtime.enter();
        super::serve::shutdown()
    };
    let mut cluster = analytics::spark::Cluster::start(python, workers, cores, memory, dir)?;
    println!(
        "Spark master {} with {workers} workers (logs in {}); Ctrl-C stops them",
        cluster.master(),
        dir.display()
    );
    let exited = runtime.block_on(async {
        tokio::pin!(stop);
        let mut poll = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = &mut stop => return anyhow::Ok(None),
                _ = poll.tick() => {
                    if let Some(status) = cluster.try_wait()? {
                        return Ok(Some(status));
                    }
                }
            }
        }
    })?;
    drop(cluster);
    match exited {
        None => {
            println!("Spark master and workers stopped");
            Ok(())
        }
        Some(status) => bail!(
            "a Spark process exited ({status}); the others are stopped; see the logs in {}",
            dir.display()
        ),
    }
}

pub(crate) fn ingest(db: &Path, dir: &Path) -> Result<()> {
    let engine = analytics::Engine::open(db)?;
    let report = engine.ingest_dir(dir)?;
    for (table, rows) in &report.tables {
        println!("{table:>22}: {rows} rows");
    }
    println!("ingest {} into {}", report.ingest_id, db.display());
    Ok(())
}

/// `databrain boundaries`: real outlines for the regions they name, converted to WGS84.
pub(crate) fn boundaries(db: &Path, crs: &str, files: &[std::path::PathBuf]) -> Result<()> {
    let options = twin::cim::RegionOptions {
        crs: twin::crs::Crs::parse(crs).with_context(|| format!("--crs {crs}"))?,
        ..Default::default()
    };
    let mut shapes = Vec::new();
    for file in files {
        let regions = twin::cim::load_regions(file, &options)
            .with_context(|| format!("cannot read boundaries from {}", file.display()))?;
        shapes.extend(regions.into_iter().map(|r| {
            // Stored rings are closed (GeoJSON's convention).
            let polygons = r
                .polygons
                .into_iter()
                .map(|rings| {
                    rings
                        .into_iter()
                        .map(|mut ring| {
                            if ring.first() != ring.last()
                                && let Some(&first) = ring.first()
                            {
                                ring.push(first);
                            }
                            ring
                        })
                        .collect()
                })
                .collect();
            (r.code, polygons)
        }));
    }
    let engine = analytics::Engine::open(db)?;
    let source = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let report = engine.replace_region_shapes(Path::new(&source), &shapes)?;
    println!(
        "{} region boundaries replaced (load {}) in {}",
        report.replaced,
        report.ingest_id,
        db.display()
    );
    Ok(())
}

/// The Spark driver an `--engine spark://…` (or `local[N]`) asks for, or `None` for DuckDB.
fn spark_of(args: &EngineArgs) -> Result<Option<analytics::spark::Spark>> {
    if args.engine == "duckdb" {
        return Ok(None);
    }
    if !(args.engine.starts_with("spark://") || args.engine.starts_with("local")) {
        bail!(
            "--engine {}: expected duckdb, spark://HOST:PORT or local[N]",
            args.engine
        );
    }
    let history = args
        .history
        .as_deref()
        .context("--engine spark needs --history DIR (written by `databrain export --parquet`)")?;
    let config = analytics::spark::SparkConfig::new(&args.engine, history, &args.python);
    let spark = analytics::spark::Spark::connect(config)?;
    // On stderr: a query's rows may be on stdout.
    eprintln!(
        "Spark {} at {} with {} executors",
        spark.version(),
        args.engine,
        spark.executors()
    );
    Ok(Some(spark))
}

pub(crate) fn query(
    db: Option<&Path>,
    engine_args: &EngineArgs,
    id: &str,
    q: IndicatorQuery,
    format: Format,
    out: Option<&Path>,
) -> Result<()> {
    let engine = match (spark_of(engine_args)?, db) {
        (Some(spark), _) => analytics::Engine::on_spark(std::sync::Arc::new(spark))?,
        // Read-only, so queries run beside a server or a planner's window on the same file.
        (None, Some(db)) => analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?,
        (None, None) => bail!("--db FILE is needed with --engine duckdb"),
    };
    let indicator = find_indicator(engine.catalogue(), id)?;
    engine.snapshot()?;
    let rows = engine.values(&analytics::Audience::trusted(), indicator, &q)?;
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

pub(crate) fn load(db: &Path, table: &str, mapping: Option<&Path>, file: &Path) -> Result<()> {
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

pub(crate) fn alerts(
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
    let mut found = engine.alerts(&analytics::Audience::trusted(), q)?;
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

pub(crate) fn trends(db: &Path, q: &analytics::TrendQuery, format: ReportFormat) -> Result<()> {
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::ReadOnly)?;
    engine.snapshot()?;
    let found = engine.trends(&analytics::Audience::trusted(), q)?;
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

pub(crate) fn run_sql(
    db: &Path,
    sql: &str,
    max_rows: usize,
    timeout_s: f64,
    format: SqlFormat,
) -> Result<()> {
    if !(timeout_s > 0.0 && timeout_s.is_finite()) {
        bail!("--timeout-s must be a positive number of seconds");
    }
    let engine = analytics::Engine::open_read_only(db, analytics::OpenMode::Analyst)?;
    let limits = analytics::SqlLimits {
        max_rows,
        timeout: std::time::Duration::from_secs_f64(timeout_s),
        ..analytics::SqlLimits::default()
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
pub(crate) fn emit(bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
