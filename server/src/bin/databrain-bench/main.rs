//! `databrain-bench`: the benchmarks, out of the product binary. Each writes its section of
//! BENCHMARKS.md with the command that produced it and the machine it ran on.
//!
//! - `catalogue`: the indicator system on a generated dataset (recompute, queries per level,
//!   against the same SQL in DuckDB and pandas, ingest against `read_csv`, memory);
//! - `policy`: what the access policy costs (values p95 with and without it, same run);
//! - `twin`: the city twin on generated cities (load, join, mesh, frames, against cjio);
//! - `stream`: the view stream on loopback (latency, frames per viewer, bytes, followers);
//! - `spark`: the catalogue and the cube on a Spark standalone cluster against DuckDB, at
//!   one or more scales;
//! - `live`: appends while clients read and a wall follows (commit→visible, commit→pushed,
//!   reads during against idle, the cube per batch against a rebuild, the fine levels).

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// mimalloc, as in `databrain`: the twin benchmark meshes as the server does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod catalogue;
mod live;
mod policy;
mod spark;
mod ssim;
mod stream;
mod twin;

#[derive(Parser)]
#[command(name = "databrain-bench", version, about = "databrain's benchmarks")]
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

#[derive(Subcommand)]
enum Command {
    /// The indicator system on a generated dataset, written to BENCHMARKS.md.
    Catalogue {
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
    /// The cost of the access policy on a database: values p95 for the operator (no policy)
    /// and for a viewer (scope, suppression), same queries, same run.
    Policy {
        #[arg(long)]
        db: PathBuf,
        /// How many times each query runs per audience.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// The city twin on generated cities (load, join, mesh, frames, against cjio).
    Twin {
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
    /// The view stream on loopback (latency, frames per second per viewer, bytes and encode
    /// time per frame, followers).
    Stream {
        /// The DuckDB file (e.g. the demo's).
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Appends through the server while clients read and a wall follows the events
    /// (commit→visible, commit→pushed, read p95 during against idle, the cube per batch).
    /// It writes to the database: use a copy.
    Live {
        #[arg(long)]
        db: PathBuf,
        /// New work orders appended in all.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// New work orders per batch.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// API clients reading meanwhile.
        #[arg(long, default_value_t = 50)]
        readers: usize,
        /// How many times each fine-level query runs.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// The catalogue at city and county level and the cube, on a Spark standalone cluster
    /// (started here on loopback) and on DuckDB, over the same generated rows, per scale.
    Spark {
        /// Where the samples, the DuckDB files and the Parquet histories live.
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// One or more scales, smallest first (the growth is from the first to the last).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "medium,large"
        )]
        scales: Vec<ScaleArg>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Cores per worker.
        #[arg(long, default_value_t = 1)]
        cores: usize,
        /// Memory per worker (its executor's).
        #[arg(long, default_value = "4g")]
        memory: String,
        /// A Python with PySpark (`make deps`; the Makefile names it in DATABRAIN_PYTHON).
        #[arg(long, env = "DATABRAIN_PYTHON", default_value = "python3")]
        python: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// One size of `twin`, in a process of its own (prints JSON).
    #[command(hide = true)]
    TwinOne {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        buildings: usize,
        #[arg(long)]
        frames: bool,
    },
}

fn main() -> Result<()> {
    server::init_logging();
    match Cli::parse().command {
        Command::Catalogue {
            dir,
            scale,
            seed,
            year,
            rounds,
            python,
            out,
        } => catalogue::run(&catalogue::BenchArgs {
            dir,
            scale: scale_of(scale),
            seed,
            year,
            rounds: rounds.max(1),
            python,
            out,
        }),
        Command::Policy { db, rounds, out } => policy::run(&db, rounds.max(1), &out),
        Command::Twin {
            dir,
            sizes,
            python,
            out,
        } => twin::run(&twin::TwinBenchArgs {
            dir,
            sizes,
            python,
            out,
        }),
        Command::Stream { db, out } => {
            let state = stream::open(&db, server::AppState::open(&db).map_err(Into::into))?;
            stream::run(&db, state, &out)
        }
        Command::Live {
            db,
            orders,
            batch,
            readers,
            rounds,
            out,
        } => live::run(&live::LiveArgs {
            db,
            orders,
            batch,
            readers,
            rounds: rounds.max(1),
            out,
        }),
        Command::Spark {
            dir,
            scales,
            seed,
            workers,
            cores,
            memory,
            python,
            out,
        } => spark::run(&spark::SparkBenchArgs {
            dir,
            scales: scales.into_iter().map(scale_of).collect(),
            seed,
            workers,
            cores,
            memory,
            python,
            out,
        }),
        Command::TwinOne {
            dir,
            buildings,
            frames,
        } => twin::one(&dir, buildings, frames),
    }
}

fn scale_of(scale: ScaleArg) -> data_samples::Scale {
    match scale {
        ScaleArg::Small => data_samples::Scale::Small,
        ScaleArg::Medium => data_samples::Scale::Medium,
        ScaleArg::Large => data_samples::Scale::Large,
    }
}
