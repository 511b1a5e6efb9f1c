//! `databrain`: generate sample data, load it into DuckDB, query indicators, render the city
//! twin and serve it all over HTTP. This file only dispatches: the commands are in `cli/`,
//! the benchmarks in the `databrain-bench` binary.

use anyhow::{Context, Result};
use clap::Parser;
use cli::args::{Cli, Command};
use cli::{data, feed, serve, tasks, twin};
use indicators::{Grain, IndicatorQuery, Level};
use std::path::Path;

/// mimalloc instead of glibc's allocator: loading and meshing a city makes millions of small
/// allocations, where glibc's spent over a quarter of the time (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() -> Result<()> {
    server::init_logging();
    match Cli::parse().command {
        Command::Generate {
            out,
            parquet,
            scale,
            seed,
        } => match (out, parquet) {
            (Some(out), None) => data::generate(&out, scale, seed),
            (None, Some(history)) => data::generate_history(&history, scale, seed),
            _ => anyhow::bail!("give --out DIR (CSV) or --parquet DIR (a history), one of them"),
        },
        Command::Ingest { db, dir } => data::ingest(&db, &dir),
        Command::Boundaries { db, crs, files } => data::boundaries(&db, &crs, &files),
        Command::Query {
            indicator,
            db,
            engine,
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
            data::query(
                db.as_deref(),
                &engine,
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
            server,
            table,
            mapping,
            file,
        } => match (db, server) {
            (Some(db), _) => data::load(&db, &table, mapping.as_deref().map(Path::new), &file),
            (None, Some(server)) => feed::load_through(&server, &table, mapping.as_deref(), &file),
            (None, None) => unreachable!("clap requires --db or --server"),
        },
        Command::Feed(args) => feed::feed(&args),
        Command::Export { db, parquet } => data::export(&db, &parquet),
        Command::Cube { db, engine } => data::cube(&db, &engine),
        Command::SparkCluster {
            workers,
            cores,
            memory,
            dir,
            python,
        } => data::spark_cluster(workers, cores, &memory, &dir, &python),
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
            data::alerts(&db, &q, severity.as_deref(), format)
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
            data::trends(&db, &q, format)
        }
        Command::Sql {
            db,
            sql,
            max_rows,
            timeout_s,
            format,
        } => data::run_sql(&db, &sql, max_rows, timeout_s, format),
        Command::Render {
            source,
            out,
            width,
            height,
            bookmark,
        } => twin::render(&source, &out, (width, height), bookmark.as_deref()),
        Command::Tiles { source, out } => twin::tiles(&source, &out),
        Command::Twin {
            source,
            width,
            height,
            screenshot,
        } => twin::planner_window(&source, (width, height), screenshot),
        Command::Serve {
            db,
            addr,
            tokens,
            audit,
            mappings,
            supervision,
        } => {
            let auth = serve::load_auth(tokens.as_deref(), &serve::audit_path(&db, audit))?;
            let mappings = serve::load_mappings(mappings.as_deref())?;
            serve::serve(&db, addr, auth, mappings, &supervision)
        }
        Command::Tasks {
            action: cli::args::TasksAction::Seed { db },
        } => tasks::seed(&db),
        Command::Demo { addr, dir } => serve::demo(&dir, addr),
        Command::Indicators { action } => data::indicators_cmd(action),
    }
}
