//! Apache Spark as a second engine over the fact tables, for history that outgrows one file.
//!
//! The history is the fact tables as Hive-partitioned Parquet ([`Engine::export_history`]).
//! [`Spark::connect`] starts a Spark driver against a master (a standalone cluster's
//! `spark://HOST:PORT`, or `local[N]`) that reads it: `spark/driver.py`, compiled into this
//! crate and run by a Python with PySpark (`python -c`), so no file of the source tree is
//! needed at run time. The two talk JSON lines over the driver's stdin and stdout: a batch of
//! SQL with its `?` parameters (bound by Spark, never pasted in), answered with rows or
//! written as Parquet. Every batch waits at most the configured time; a driver that does not
//! answer in time is killed and the error says so.
//!
//! The catalogue compiles to Spark SQL ([`indicators::sql::Dialect::Spark`]), and an engine
//! made with [`Engine::on_spark`] reads every indicator's parts there and applies the same
//! policy to them as to DuckDB's (suppression, scope, comparisons): one catalogue, one
//! policy, two engines. [`Engine::cube_from_spark`] builds the cube's tables on the cluster
//! and loads them into the serving file.
//!
//! Why a driver process and not a Rust client: Spark's own clients are the JVM and PySpark,
//! which ship with the cluster's version; the Rust Spark Connect clients are early work, and
//! classic PySpark needs no extra service on the cluster.

use crate::{AnalyticsError, Engine, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DRIVER: &str = include_str!("../spark/driver.py");
/// Lines of the driver's stderr kept for error messages.
const STDERR_LINES: usize = 40;

/// Where the cluster is and what it reads.
#[derive(Clone, Debug)]
pub struct SparkConfig {
    /// `spark://HOST:PORT` (a standalone master) or `local[N]`.
    pub master: String,
    /// A directory written by `databrain export --parquet` (every worker must see the same
    /// path: one machine, or a shared file system).
    pub history: PathBuf,
    /// A Python with PySpark installed (`make deps` puts one in the project's venv).
    pub python: PathBuf,
    /// Wait at start until this many executors have registered (at most `start_timeout`).
    pub min_executors: usize,
    /// For the driver to start and for its executors to register.
    pub start_timeout: Duration,
    /// For each batch of queries.
    pub batch_timeout: Duration,
    /// Read every table into the executors' memory at start (`CACHE TABLE`): for a history
    /// small enough, queried many times.
    pub cache_tables: bool,
    /// Further Spark settings (`spark.…` keys) for the driver's session, as they are.
    pub conf: BTreeMap<String, String>,
}

impl SparkConfig {
    pub fn new(master: &str, history: &Path, python: &Path) -> SparkConfig {
        SparkConfig {
            master: master.to_owned(),
            history: history.to_owned(),
            python: python.to_owned(),
            min_executors: 0,
            start_timeout: Duration::from_secs(180),
            batch_timeout: Duration::from_secs(1800),
            cache_tables: false,
            conf: BTreeMap::new(),
        }
    }
}

/// One statement for the driver: its rows come back, or with `out` they are written there
/// as a Parquet directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SparkQuery {
    pub sql: String,
    pub params: Vec<String>,
    pub out: Option<PathBuf>,
}

impl From<&indicators::CompiledSql> for SparkQuery {
    fn from(c: &indicators::CompiledSql) -> SparkQuery {
        SparkQuery {
            sql: c.sql.clone(),
            params: c.params.clone(),
            out: None,
        }
    }
}

/// Rows as the driver sent them: JSON values (text, numbers, null).
pub type Rows = Vec<Vec<Value>>;

/// Rows kept in [`Spark`]'s cache before it is emptied: about 0.5 GiB of JSON cells (a row
/// of six cells is some 250 bytes), for a driver that may serve one history for months.
const CACHED_ROWS: usize = 2_000_000;

/// One statement's rows once they are known. Its lock is held while they are computed, so
/// callers asking for the same statement meanwhile wait for that one run (a single flight)
/// instead of starting their own; after a failure the next caller tries again.
type Slot = Arc<Mutex<Option<Arc<Rows>>>>;

/// Statements' rows, dropped all at once past [`CACHED_ROWS`] (as the policy's pattern cache
/// is). Statements repeat within one request's chain of levels and grains, close together,
/// where recency (an LRU such as `moka`'s) would buy little over clearing, and the single
/// flight is a lock per statement.
#[derive(Default)]
struct RowCache {
    slots: HashMap<SparkQuery, Slot>,
    rows: usize,
}

/// Callers waiting for an answer, by request id; `None` once the driver is gone (with why).
type Pending = Arc<Mutex<Option<HashMap<u64, Sender<Value>>>>>;

/// A running Spark driver (see the module documentation); dropped, it is told to stop, and
/// killed if it does not.
pub struct Spark {
    config: SparkConfig,
    child: Mutex<Child>,
    /// Closed on drop: the driver then stops its Spark session and exits.
    stdin: Mutex<Option<ChildStdin>>,
    pending: Pending,
    next_id: AtomicU64,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Rows by statement: the history does not change under a driver.
    cache: Mutex<RowCache>,
    version: String,
    executors: usize,
}

fn spark_error(message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Spark {
        message: message.into(),
    }
}

impl Spark {
    /// Starts the driver and waits until it has read the history's manifest, registered its
    /// tables and seen `min_executors` executors.
    pub fn connect(config: SparkConfig) -> Result<Spark> {
        let settings = serde_json::json!({
            "master": config.master,
            "history": config.history,
            "min_executors": config.min_executors,
            "executor_wait_s": config.start_timeout.as_secs_f64(),
            "cache_tables": config.cache_tables,
            "conf": config.conf,
        });
        let mut command = Command::new(&config.python);
        // A driver of a cluster on loopback (or of `local[N]`) binds to loopback too, where
        // the executors can reach it; elsewhere Spark picks the host's address.
        let host = config
            .master
            .strip_prefix("spark://")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(host, _)| host);
        if config.master.starts_with("local") || matches!(host, Some("127.0.0.1" | "localhost")) {
            command.env("SPARK_LOCAL_IP", "127.0.0.1");
        }
        let mut child = command
            .arg("-c")
            .arg(DRIVER)
            .arg(settings.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                spark_error(format!(
                    "cannot start the Spark driver with {}: {e}",
                    config.python.display()
                ))
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = tail.clone();
        let echo = std::env::var_os("DATABRAIN_SPARK_LOG").is_some();
        let thread = |name: &str| std::thread::Builder::new().name(name.to_owned());
        let fail_thread = |e: std::io::Error| spark_error(format!("cannot start a thread: {e}"));
        thread("databrain-spark-err")
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        eprintln!("spark: {line}");
                    }
                    let mut tail = keep.lock().expect("stderr lock");
                    if tail.len() == STDERR_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.chars().take(300).collect());
                }
            })
            .map_err(fail_thread)?;
        // The first line is the driver's greeting; after it every line answers a request.
        let (greet, greeting) = channel();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let route = pending.clone();
        thread("databrain-spark-out")
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = greet.send(first);
                }
                for line in lines {
                    let Ok(line) = line else { break };
                    let Ok(answer) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let id = answer.get("id").and_then(Value::as_u64);
                    let mut waiting = route.lock().expect("pending lock");
                    if let Some(sender) = id.and_then(|id| waiting.as_mut()?.remove(&id)) {
                        let _ = sender.send(answer);
                    }
                }
                // The driver is gone: every caller still waiting hears so.
                route.lock().expect("pending lock").take();
            })
            .map_err(fail_thread)?;
        let wait = config.start_timeout + Duration::from_secs(120);
        let kill = |child: &mut Child| {
            let _ = child.kill();
            let _ = child.wait();
        };
        let ready: Value = match greeting.recv_timeout(wait) {
            Ok(line) => serde_json::from_str(&line)
                .map_err(|e| spark_error(format!("the Spark driver greeted with {line:?}: {e}"))),
            Err(RecvTimeoutError::Timeout) => Err(spark_error(format!(
                "the Spark driver did not start within {wait:?}{}",
                tail_of(&tail)
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().map(|s| format!(" ({s})")).unwrap_or_default();
                std::thread::sleep(Duration::from_millis(200));
                Err(spark_error(format!(
                    "the Spark driver exited at start{status}{}",
                    tail_of(&tail)
                )))
            }
        }
        .inspect_err(|_| kill(&mut child))?;
        if let Some(error) = ready.get("error").and_then(Value::as_str) {
            kill(&mut child);
            return Err(spark_error(error.to_owned()));
        }
        let executors = ready["executors"].as_u64().unwrap_or(0) as usize;
        if executors < config.min_executors {
            kill(&mut child);
            return Err(spark_error(format!(
                "{} has {executors} executors after {:?}; {} were asked for",
                config.master, config.start_timeout, config.min_executors
            )));
        }
        Ok(Spark {
            version: ready["spark"].as_str().unwrap_or("").to_owned(),
            executors,
            config,
            child: Mutex::new(child),
            stdin: Mutex::new(Some(stdin)),
            pending,
            next_id: AtomicU64::new(1),
            stderr: tail,
            cache: Mutex::new(RowCache::default()),
        })
    }

    /// The Spark version the driver runs.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Executors registered when the driver started.
    pub fn executors(&self) -> usize {
        self.executors
    }

    /// Runs statements side by side on the cluster and returns each one's rows (empty for
    /// those written to `out`), in order. A failed statement fails the call, with Spark's
    /// message and the start of the statement; all of them together wait at most the
    /// configured batch time.
    pub fn run(&self, batch: &[SparkQuery]) -> Result<Vec<Rows>> {
        let mut waiting = Vec::with_capacity(batch.len());
        for q in batch {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (send, receive) = channel();
            match self.pending.lock().expect("pending lock").as_mut() {
                Some(pending) => pending.insert(id, send),
                None => {
                    return Err(spark_error(format!(
                        "the Spark driver is gone{}",
                        self.tail()
                    )));
                }
            };
            let request = serde_json::json!({
                "id": id,
                "sql": q.sql,
                "params": q.params,
                "out": q.out,
            });
            let mut stdin = self.stdin.lock().expect("stdin lock");
            let sent = match stdin.as_mut() {
                Some(w) => writeln!(w, "{request}").and_then(|()| w.flush()),
                None => Err(std::io::Error::other("closed")),
            };
            if let Err(e) = sent {
                return Err(spark_error(format!(
                    "cannot send to the Spark driver: {e}{}",
                    self.tail()
                )));
            }
            waiting.push(receive);
        }
        let deadline = Instant::now() + self.config.batch_timeout;
        batch
            .iter()
            .zip(waiting)
            .map(|(q, receive)| {
                let left = deadline.saturating_duration_since(Instant::now());
                let answer = match receive.recv_timeout(left) {
                    Ok(answer) => answer,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(spark_error(format!(
                            "Spark did not answer within {:?}{}",
                            self.config.batch_timeout,
                            self.tail()
                        )));
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(Duration::from_millis(200));
                        return Err(spark_error(format!(
                            "the Spark driver exited{}",
                            self.tail()
                        )));
                    }
                };
                if let Some(error) = answer.get("error").and_then(Value::as_str) {
                    let head: String = q.sql.chars().take(160).collect();
                    return Err(spark_error(format!("{error} (in: {head}…)")));
                }
                if answer.get("written").is_some() {
                    return Ok(Vec::new());
                }
                let rows = answer
                    .get("rows")
                    .and_then(Value::as_array)
                    .ok_or_else(|| spark_error("an answer without rows"))?;
                rows.iter()
                    .map(|row| {
                        row.as_array()
                            .cloned()
                            .ok_or_else(|| spark_error("a row that is not a list"))
                    })
                    .collect()
            })
            .collect()
    }

    /// The rows of one statement, from the cache when it ran before or is running now.
    pub fn rows(&self, query: &SparkQuery) -> Result<Arc<Rows>> {
        let slot = self
            .cache
            .lock()
            .expect("cache lock")
            .slots
            .entry(query.clone())
            .or_default()
            .clone();
        let mut known = slot.lock().expect("slot lock");
        if let Some(rows) = known.as_ref() {
            return Ok(rows.clone());
        }
        let rows = Arc::new(self.run(std::slice::from_ref(query))?.remove(0));
        *known = Some(rows.clone());
        drop(known);
        let mut cache = self.cache.lock().expect("cache lock");
        cache.rows += rows.len();
        if cache.rows > CACHED_ROWS {
            cache.slots.clear();
            cache.rows = rows.len();
            cache.slots.insert(query.clone(), slot);
        }
        Ok(rows)
    }

    /// Empties the row cache, so the next statements run on the cluster again (a benchmark
    /// timing the cluster, not the cache, calls it before each run).
    pub fn forget_rows(&self) {
        let mut cache = self.cache.lock().expect("cache lock");
        cache.slots.clear();
        cache.rows = 0;
    }

    fn tail(&self) -> String {
        tail_of(&self.stderr)
    }
}

fn tail_of(stderr: &Mutex<VecDeque<String>>) -> String {
    let tail = stderr.lock().expect("stderr lock");
    if tail.is_empty() {
        String::new()
    } else {
        let last: Vec<&str> = tail
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(String::as_str)
            .collect();
        format!("; the driver's last words: {}", last.join(" | "))
    }
}

impl Drop for Spark {
    fn drop(&mut self) {
        // End of input: the driver stops its Spark session (the master frees its
        // executors) and exits; one that does not is killed after a while.
        self.stdin.get_mut().expect("stdin lock").take();
        let child = self.child.get_mut().expect("child lock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A text cell (`None` for null).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl SparkQuery {
    /// A statement without parameters whose rows come back.
    pub fn text(sql: impl Into<String>) -> SparkQuery {
        SparkQuery {
            sql: sql.into(),
            params: Vec::new(),
            out: None,
        }
    }
}

impl Engine {
    /// An engine whose fact tables are the history on a Spark cluster: regions are read from
    /// the history's `regions` table into an in-memory DuckDB (scope, names, levels), and
    /// every indicator's parts are computed by Spark, from the fact rows, in its dialect. The
    /// policy, comparisons and derived indicators are this crate's, as for DuckDB.
    pub fn on_spark(spark: Arc<Spark>) -> Result<Engine> {
        let mut engine = Engine::open(Path::new(":memory:"))?;
        let regions = spark.rows(&SparkQuery::text(
            "SELECT code, name, level, parent_code, lon, lat FROM regions",
        ))?;
        engine.with_conn(|conn| {
            let mut appender = conn
                .appender("regions")
                .map_err(AnalyticsError::db("cannot stage the regions"))?;
            for (i, row) in regions.iter().enumerate() {
                let cell = |j: usize| row.get(j).unwrap_or(&Value::Null);
                let (Some(code), Some(name), Some(level)) =
                    (text(cell(0)), text(cell(1)), text(cell(2)))
                else {
                    return Err(spark_error(format!(
                        "regions row {} from Spark has no code, name or level",
                        i + 1
                    )));
                };
                appender
                    .append_row(duckdb::params![
                        code,
                        name,
                        level,
                        text(cell(3)),
                        cell(4).as_f64(),
                        cell(5).as_f64()
                    ])
                    .map_err(AnalyticsError::db("cannot stage a region"))?;
            }
            appender
                .flush()
                .map_err(AnalyticsError::db("cannot stage the regions"))
        })?;
        engine.reload_regions()?;
        engine.spark = Some(spark);
        Ok(engine)
    }

    /// Refuses `what`, a call that reads (or writes) fact rows in this process's DuckDB, on an
    /// engine whose facts are on a Spark cluster: its in-memory DuckDB holds only the regions,
    /// so the call would answer from empty tables as if nothing had happened.
    pub(crate) fn facts_here(&self, what: &str) -> Result<()> {
        match &self.spark {
            Some(spark) => Err(spark_error(format!(
                "{what} needs the fact rows in a DuckDB file; this engine's facts are on {} \
                 (it computes indicator values, alerts and trends there)",
                spark.config.master
            ))),
            None => Ok(()),
        }
    }

    /// The cluster this engine's facts are on, if they are.
    pub fn spark(&self) -> Option<&Arc<Spark>> {
        self.spark.as_ref()
    }

    /// An indicator's parts (see `Engine::parts`) computed by Spark from the fact rows.
    ///
    /// One statement answers every level the indicator allows at and below the query's
    /// region, and later queries at the other levels are served from its rows: Spark's fixed
    /// cost per statement is most of a query's on any history measured (BENCHMARKS.md), and a
    /// suppressed answer reads the levels above the one asked anyway. The statement has no
    /// `ORDER BY` (a global sort is a job of its own on Spark); the rows are sorted here.
    pub(crate) fn parts_on_spark(
        &self,
        spark: &Spark,
        indicator: &indicators::Indicator,
        query: &indicators::IndicatorQuery,
    ) -> Result<crate::query::Parts> {
        indicators::sql::check(indicator, query)?;
        let levels: Vec<indicators::Level> = indicator
            .levels
            .iter()
            .copied()
            .filter(|&level| {
                indicators::sql::check(
                    indicator,
                    &indicators::IndicatorQuery {
                        level,
                        ..query.clone()
                    },
                )
                .is_ok()
            })
            .collect();
        let tag = levels
            .iter()
            .position(|&l| l == query.level)
            .expect("the query's own level passed the check");
        let compiled = indicators::sql::compile_levels(
            indicator,
            query,
            &levels,
            indicators::sql::Dialect::Spark,
        )?;
        let rows = spark.rows(&SparkQuery::from(&compiled))?;
        let mut parts = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let bad = || {
                spark_error(format!(
                    "row {} of {} from Spark is not (level, region, period, numerator, denominator, records): {row:?}",
                    i + 1,
                    indicator.id
                ))
            };
            if row.len() != 6 {
                return Err(bad());
            }
            if row[0].as_u64().ok_or_else(bad)? != tag as u64 {
                continue;
            }
            parts.push((
                text(&row[1]).ok_or_else(bad)?,
                text(&row[2]).ok_or_else(bad)?,
                row[3].as_f64().ok_or_else(bad)?,
                row[4].as_f64(),
                row[5].as_f64(),
            ));
        }
        // As DuckDB's statement orders them: by period, then region (both ASCII, compared
        // byte by byte in both).
        parts.sort_by(|a, b| (&a.1, &a.0).cmp(&(&b.1, &b.0)));
        Ok(parts)
    }

    /// The newest day of `column` in `fact` on Spark, as `YYYY-MM-DD`.
    pub(crate) fn extent_on_spark(
        &self,
        spark: &Spark,
        fact: &str,
        column: &str,
    ) -> Result<Option<String>> {
        let rows = spark.rows(&SparkQuery::text(format!(
            "SELECT CAST(CAST(MAX({column}) AS DATE) AS STRING) FROM {fact}"
        )))?;
        Ok(rows.first().and_then(|r| r.first()).and_then(text))
    }
}

/// A Spark standalone cluster on loopback: a master and its workers, each a process of its
/// own (Spark's `Master` and `Worker`, started with the `spark-class` script PySpark ships),
/// logging to files in its work directory; dropped, they are stopped.
pub struct Cluster {
    master: String,
    processes: Vec<Child>,
}

/// A TCP port free on loopback now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| spark_error(format!("no free port on loopback: {e}")))
}

/// The Spark installation inside PySpark (`bin/spark-class`, `jars/`).
pub fn spark_home(python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .map_err(|e| spark_error(format!("cannot run {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(spark_error(format!(
            "{} has no PySpark (run `make deps`): {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl Cluster {
    /// Starts a master and `workers` workers (each offering `cores` cores and `memory`,
    /// e.g. `"2g"`) on 127.0.0.1, and returns when the master accepts connections. Workers
    /// register a moment later: a driver waits for its executors
    /// ([`SparkConfig::min_executors`]).
    pub fn start(
        python: &Path,
        workers: usize,
        cores: usize,
        memory: &str,
        work_dir: &Path,
    ) -> Result<Cluster> {
        let home = spark_home(python)?;
        std::fs::create_dir_all(work_dir)
            .map_err(|e| spark_error(format!("cannot create {}: {e}", work_dir.display())))?;
        let port = free_port()?;
        let master = format!("spark://127.0.0.1:{port}");
        let spawn = |name: &str, args: &[String]| -> Result<Child> {
            let log = std::fs::File::create(work_dir.join(format!("{name}.log"))).map_err(|e| {
                spark_error(format!(
                    "cannot create a log in {}: {e}",
                    work_dir.display()
                ))
            })?;
            let err = log
                .try_clone()
                .map_err(|e| spark_error(format!("cannot open a log: {e}")))?;
            // A process group of its own: a terminal's Ctrl-C reaches the caller alone, which
            // stops workers before the master (`Drop`), instead of every process at once.
            Command::new(home.join("bin/spark-class"))
                .process_group(0)
                .args(args)
                .env("SPARK_HOME", &home)
                .env("SPARK_LOCAL_IP", "127.0.0.1")
                .env("SPARK_LOG_DIR", work_dir)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| spark_error(format!("cannot start the Spark {name}: {e}")))
        };
        let mut cluster = Cluster {
            master: master.clone(),
            processes: Vec::new(),
        };
        cluster.processes.push(spawn(
            "master",
            &[
                "org.apache.spark.deploy.master.Master".into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--webui-port".into(),
                free_port()?.to_string(),
            ],
        )?);
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(spark_error(format!(
                    "the Spark master did not listen on {port} within 120 s (see {})",
                    work_dir.join("master.log").display()
                )));
            }
            if let Ok(Some(status)) = cluster.processes[0].try_wait() {
                return Err(spark_error(format!(
                    "the Spark master exited ({status}; see {})",
                    work_dir.join("master.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        for i in 0..workers {
            let dir = work_dir.join(format!("worker-{i}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| spark_error(format!("cannot create {}: {e}", dir.display())))?;
            cluster.processes.push(spawn(
                &format!("worker-{i}"),
                &[
                    "org.apache.spark.deploy.worker.Worker".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--cores".into(),
                    cores.to_string(),
                    "--memory".into(),
                    memory.into(),
                    "--work-dir".into(),
                    dir.to_string_lossy().into_owned(),
                    "--webui-port".into(),
                    free_port()?.to_string(),
                    master.clone(),
                ],
            )?);
        }
        Ok(cluster)
    }

    /// `spark://127.0.0.1:PORT`.
    pub fn master(&self) -> &str {
        &self.master
    }

    /// The exit status of the first of its processes found to have exited, if any has: a
    /// cluster run by hand polls this until it is told to stop.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        for p in &mut self.processes {
            if let Some(status) = p.try_wait()? {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Workers first, then the master.
        for p in self.processes.iter_mut().rev() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
