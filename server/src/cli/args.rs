//! The command line: every subcommand and its options (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "databrain",
    version,
    about = "Decision-support indicators and a city digital twin for a provincial data brain"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScaleArg {
    Small,
    Medium,
    Large,
}

/// How the closed loop keeps time and which rules it runs by.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct SupervisionArgs {
    /// The clock of task events, deadlines and escalation: the wall clock (UTC+8), or the
    /// latest time the data has reached (for a simulated feed).
    #[arg(long, value_enum, default_value_t = ClockArg::System)]
    pub(crate) clock: ClockArg,
    /// Make a task of every critical alert that has none (assigned to the county's
    /// government office, 5 working days).
    #[arg(long)]
    pub(crate) auto_tasks: bool,
    /// Public holidays and worked weekend days for working-day deadlines: a TOML file with
    /// `holidays = ["YYYY-MM-DD", ...]` and `working_weekends = [...]` (default: weekends
    /// only).
    #[arg(long)]
    pub(crate) holidays: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClockArg {
    System,
    Data,
}

#[derive(Subcommand)]
pub(crate) enum TasksAction {
    /// Plays supervised tasks into the database from its own alerts of past quarters, through
    /// every state of their life, on the data's clock (what `make demo` starts from).
    Seed {
        #[arg(long)]
        db: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
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
pub(crate) enum ReportFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SqlFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum IndicatorsAction {
    /// One line per indicator: id, domain, kind, unit, target, names.
    List,
    /// The full definition of one indicator, as JSON.
    Show { id: String },
    /// The JSON Schema of catalogue files (as in indicators/catalogue.schema.json).
    Schema,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate deterministic sample data (regions, population, 12345 work orders, service
    /// applications, demo-district buildings) into a directory, as CSV (`--out`) or as a
    /// history for Spark (`--parquet`: the layout `databrain export --parquet` writes).
    Generate {
        /// Directory to write the CSV files into (created if missing).
        #[arg(long, required_unless_present = "parquet", conflicts_with = "parquet")]
        out: Option<PathBuf>,
        /// Directory to write the history into instead (a previous history there is replaced,
        /// all at once). The rows pass the checks of an ingest on the way.
        #[arg(long)]
        parquet: Option<PathBuf>,
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
    /// Replace the boundaries of the database's regions with those of GeoJSON boundary files
    /// (Polygon or MultiPolygon features with a `code` or `adcode` property), e.g. the real
    /// Jiangsu city outlines for the generated rectangles. All files or nothing; every code
    /// must be a region of the database.
    Boundaries {
        /// The DuckDB file (no server may have it open).
        #[arg(long)]
        db: PathBuf,
        /// The files' coordinate system: WGS84, GCJ-02 (Chinese web maps) or an EPSG code.
        #[arg(long, default_value = "WGS84")]
        crs: String,
        /// GeoJSON boundary files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print an indicator's values per region and period, from a DuckDB file or from the
    /// history on a Spark cluster.
    Query {
        /// Indicator id from the catalogue (see GET /api/indicators), e.g. hotline_on_time_rate.
        indicator: String,
        /// The DuckDB file (with `--engine duckdb`).
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
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
        /// The DuckDB file (created if missing), when no server has it open.
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        db: Option<PathBuf>,
        /// A running server (e.g. http://127.0.0.1:8080), the one writer of its file: the
        /// load goes through it (token in `DATABRAIN_TOKEN`, an admin's or a loader's).
        #[arg(long)]
        server: Option<String>,
        /// The fact table (e.g. work_orders) or `regions` (regions only with --db).
        #[arg(long)]
        table: String,
        /// For a file in a foreign layout: a mapping TOML (with --db; see the README), or
        /// the name of a mapping the server was started with (with --server).
        #[arg(long)]
        mapping: Option<String>,
        /// The CSV or Parquet file.
        file: PathBuf,
    },
    /// Play generated 12345 events (new work orders, and open ones closing) into a running
    /// server on a simulated clock, one batch a second (token in `DATABRAIN_TOKEN`).
    Feed(super::feed::FeedArgs),
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
        #[command(flatten)]
        source: SceneSource,
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
    },
    /// Write a scene as 3D Tiles 1.1 (tileset.json and one GLB per tile, with a feature and
    /// properties per building) for CesiumJS and other 3D Tiles clients; every value shown.
    Tiles {
        #[command(flatten)]
        source: SceneSource,
        /// The directory to write (created; its tileset.json and tN.glb files are replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Open the planners' window on a scene: orbit, pan, zoom, click to pick, keys for layers,
    /// periods and bookmarks (needs a display; on a machine without one, run under Xvfb).
    Twin {
        #[command(flatten)]
        source: SceneSource,
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
        /// A directory of mapping TOMLs (`NAME.toml`) that loads may name (`mapping=NAME`).
        #[arg(long)]
        mappings: Option<PathBuf>,
        #[command(flatten)]
        supervision: SupervisionArgs,
    },
    /// Supervised tasks in a database no server has open.
    Tasks {
        #[command(subcommand)]
        action: TasksAction,
    },
    /// Write every fact table as Parquet, Hive-partitioned by month and city, with the
    /// regions and a manifest.json: the history a Spark cluster reads (`--engine`).
    Export {
        /// The DuckDB file.
        #[arg(long)]
        db: PathBuf,
        /// The directory to write (a previous history there is replaced, all at once).
        #[arg(long)]
        parquet: PathBuf,
    },
    /// Rebuild the cube (the pre-aggregated counts and sums the server reads) of a DuckDB
    /// file: here, or with `--engine spark://HOST:PORT` on the cluster from the history.
    Cube {
        /// The DuckDB file (no server may have it open).
        #[arg(long)]
        db: PathBuf,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run a Spark standalone cluster on loopback (a master and workers, each a process of
    /// its own) until interrupted; prints the master's URL for `--engine`.
    SparkCluster {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Cores each worker offers.
        #[arg(long, default_value_t = 1)]
        cores: usize,
        /// Memory each worker offers.
        #[arg(long, default_value = "2g")]
        memory: String,
        /// Logs and the workers' directories.
        #[arg(long, default_value = "spark-cluster")]
        dir: PathBuf,
        #[arg(long, env = "DATABRAIN_PYTHON", default_value = "python3")]
        python: PathBuf,
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

/// Which engine computes: DuckDB on the file, or Spark on the history.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// `duckdb`, or a Spark master: `spark://HOST:PORT` (a standalone cluster) or `local[N]`.
    #[arg(long, default_value = "duckdb")]
    pub engine: String,
    /// With Spark: the history the cluster reads (`databrain export --parquet`; every
    /// worker must see this path).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// With Spark: a Python with PySpark for the driver (`make deps` installs one).
    #[arg(long, env = "DATABRAIN_PYTHON", default_value = "python3")]
    pub python: PathBuf,
}

/// Where a twin command's scene comes from: the database, the scene, and the directory its
/// layer files are named relative to.
#[derive(Args, Debug)]
pub struct SceneSource {
    /// The DuckDB file.
    #[arg(long)]
    pub db: PathBuf,
    /// A built-in scene id or a scene TOML file.
    #[arg(long)]
    pub scene: String,
    /// Where relative file paths of scene layers are taken from.
    #[arg(long, default_value = ".")]
    pub data_dir: PathBuf,
}
