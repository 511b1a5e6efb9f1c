//! The engine and its connection pool.
//!
//! DuckDB connections are `Send` but not `Sync`; each call checks one out of the pool (opening
//! a new one on the same database when all are busy) and puts it back afterwards. Inside a
//! read (`Engine::consistent`) every call of the thread uses the read's own connection, in
//! one read-only transaction, so the read sees one commit however many queries it makes.

use crate::{AnalyticsError, Result};
use duckdb::{AccessMode, Config, Connection};
use indicators::Catalogue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How a database file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file and schema when missing; load data.
    ReadWrite,
    /// Read only; DuckDB may still read and write other files (e.g. to export Parquet).
    ReadOnly,
    /// Read only and sealed: DuckDB reads nothing but this database and writes nothing at
    /// all, so analysts' SQL (`Engine::run_sql`) can run safely.
    Analyst,
    /// What the server uses: the one writer of the file (loads and appends arrive as
    /// request bodies, see [`crate::Upload`]) and sealed like `Analyst` (no files, no
    /// network, no extensions, configuration locked); analysts' SQL runs in read-only
    /// transactions.
    Server,
}

impl OpenMode {
    /// Whether loads may write through this engine.
    pub fn writes(self) -> bool {
        matches!(self, OpenMode::ReadWrite | OpenMode::Server)
    }

    /// Whether DuckDB reads nothing but the database (what analysts' SQL needs).
    pub fn sealed(self) -> bool {
        matches!(self, OpenMode::Analyst | OpenMode::Server)
    }
}

pub struct Engine {
    path: PathBuf,
    mode: OpenMode,
    /// Kept to open further connections on the same database.
    base: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    pub(crate) catalogue: Arc<Catalogue>,
    pub(crate) regions: RwLock<Arc<HashMap<String, crate::RegionInfo>>>,
    /// Pre-aggregated tables by (measure key, bucket), see `cube`.
    pub(crate) cubes: RwLock<Arc<HashMap<(String, crate::cube::Bucket), indicators::CubeTable>>>,
    /// The last day each fact table's data covers, read once per load (see
    /// `Engine::recorded_through`); cleared whenever facts change.
    pub(crate) recorded: RwLock<HashMap<&'static str, Option<chrono::NaiveDate>>>,
    /// Suppression patterns by indicator, table and floor (see `Engine::withheld_pattern`);
    /// cleared whenever facts change.
    pub(crate) patterns: RwLock<HashMap<String, Arc<crate::query::CellSet>>>,
    /// One write at a time (DuckDB would refuse the second upsert as a conflict anyway).
    pub(crate) writer: Mutex<()>,
    /// Counts commits: odd while one is being made visible, even otherwise, so that a read
    /// knows whether what it computed may be cached (see [`Engine::consistent`]).
    pub(crate) generation: AtomicU64,
    /// Working days for task deadlines (see `tasks`).
    pub(crate) calendar: RwLock<Arc<workflow::Calendar>>,
    /// Where the fact rows are when they are not in this file: a Spark cluster reading the
    /// history (see [`Engine::on_spark`]).
    pub(crate) spark: Option<Arc<crate::spark::Spark>>,
}

thread_local! {
    /// The generation the current thread's read started at (inside [`Engine::consistent`]).
    static READING_AT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    /// The connection (in its read transaction) that the current thread's read runs on.
    static PINNED: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
}

/// No files, no network, no extensions loaded on demand, and the configuration locked, so no
/// statement can change the database's settings (memory, threads, access) for the others.
fn sealed(config: Config) -> Result<Config> {
    config
        .enable_external_access(false)
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
        .and_then(|c| c.with("lock_configuration", "true"))
        .map_err(AnalyticsError::db("cannot seal DuckDB"))
}

impl Engine {
    /// Opens (or creates) the database file for reading and writing and makes sure the
    /// schema exists.
    pub fn open(path: &Path) -> Result<Engine> {
        Engine::open_with(path, OpenMode::ReadWrite, Arc::new(Catalogue::builtin()))
    }

    /// Opens an existing database without writing to it (see [`OpenMode`]).
    pub fn open_read_only(path: &Path, mode: OpenMode) -> Result<Engine> {
        Engine::open_with(path, mode, Arc::new(Catalogue::builtin()))
    }

    /// Opens an existing database as the server does ([`OpenMode::Server`]).
    pub fn open_for_server(path: &Path) -> Result<Engine> {
        Engine::open_with(path, OpenMode::Server, Arc::new(Catalogue::builtin()))
    }

    /// Opens the file in `mode`; `catalogue` resolves derived indicators and says which
    /// measures are pre-aggregated at load time.
    pub fn open_with(path: &Path, mode: OpenMode, catalogue: Arc<Catalogue>) -> Result<Engine> {
        let config_err = AnalyticsError::db("cannot configure DuckDB");
        let conn = match mode {
            OpenMode::ReadWrite | OpenMode::Server => {
                if mode == OpenMode::Server && !path.is_file() {
                    return Err(AnalyticsError::MissingFile {
                        path: path.to_owned(),
                    });
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| AnalyticsError::Ingest {
                        message: format!("cannot create the database directory: {e}"),
                        path: dir.to_owned(),
                    })?;
                }
                if mode == OpenMode::Server {
                    Connection::open_with_flags(path, sealed(Config::default())?)
                } else {
                    Connection::open(path)
                }
            }
            OpenMode::ReadOnly | OpenMode::Analyst => {
                if !path.is_file() {
                    return Err(AnalyticsError::MissingFile {
                        path: path.to_owned(),
                    });
                }
                let mut config = Config::default()
                    .access_mode(AccessMode::ReadOnly)
                    .map_err(config_err)?;
                if mode == OpenMode::Analyst {
                    config = sealed(config)?;
                }
                Connection::open_with_flags(path, config)
            }
        }
        .map_err(AnalyticsError::db(format!(
            "cannot open DuckDB file {}",
            path.display()
        )))?;
        if mode.writes() {
            conn.execute_batch(&crate::ingest::schema_sql())
                .map_err(AnalyticsError::db("cannot create the schema"))?;
        }
        let engine = Engine {
            path: path.to_owned(),
            mode,
            base: Mutex::new(conn),
            idle: Mutex::new(Vec::new()),
            catalogue,
            regions: RwLock::new(Arc::new(HashMap::new())),
            cubes: RwLock::new(Arc::new(HashMap::new())),
            recorded: RwLock::new(HashMap::new()),
            patterns: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
            generation: AtomicU64::new(0),
            calendar: RwLock::new(Arc::new(workflow::Calendar::default())),
            spark: None,
        };
        engine.reload_regions()?;
        engine.reload_cubes()?;
        Ok(engine)
    }

    /// Runs `read` so that every query in it sees the same committed data: its queries all
    /// run on one connection inside one read-only DuckDB transaction (a snapshot of its
    /// own), so a commit meanwhile neither shows in part nor waits for it. Nested calls run
    /// inside the outer one.
    pub(crate) fn consistent<T>(&self, read: impl FnOnce() -> Result<T>) -> Result<T> {
        if READING_AT.get().is_some() {
            return read();
        }
        // The generation first, then the transaction: when a commit becomes visible in
        // between, the generation has moved and nothing this read computes is cached.
        let mut at = self.generation.load(Ordering::Acquire);
        while at % 2 == 1 {
            std::thread::yield_now();
            at = self.generation.load(Ordering::Acquire);
        }
        let conn = self.checkout()?;
        conn.execute_batch("BEGIN TRANSACTION READ ONLY")
            .map_err(AnalyticsError::db("cannot begin a read"))?;
        struct Pinned;
        impl Drop for Pinned {
            fn drop(&mut self) {
                READING_AT.set(None);
                // After a panic the connection is dropped, and its transaction with it.
                PINNED.with(|p| p.borrow_mut().take());
            }
        }
        PINNED.with(|p| *p.borrow_mut() = Some(conn));
        READING_AT.set(Some(at));
        let pinned = Pinned;
        let out = read();
        let conn = PINNED.with(|p| p.borrow_mut().take());
        drop(pinned);
        if let Some(conn) = conn
            && conn.execute_batch("COMMIT").is_ok()
        {
            self.checkin(conn);
        }
        out
    }

    /// Whether what the current read computed may be kept: no commit has been made visible
    /// since it started. Call with the cache's lock held (commits clear caches under it).
    pub(crate) fn still_current(&self) -> bool {
        READING_AT
            .get()
            .is_some_and(|at| at == self.generation.load(Ordering::Acquire))
    }

    /// Commits the transaction on `conn` and makes it visible to readers: the generation
    /// turns odd, the commit runs, the caches are cleared and the cube registry and regions
    /// re-read, and the generation turns even again. Readers never wait for it.
    pub(crate) fn commit_visible(&self, conn: &Connection, regions_changed: bool) -> Result<()> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let committed = conn
            .execute_batch("COMMIT")
            .map_err(AnalyticsError::db("cannot commit"));
        let reloaded = committed.and_then(|()| {
            if regions_changed {
                self.reload_regions()?;
            }
            self.reload_cubes()
        });
        {
            // Cleared under their locks, so a read that started before cannot put back
            // what it computed from the old data (see `still_current`).
            let mut patterns = self.patterns.write().expect("pattern lock");
            let mut recorded = self.recorded.write().expect("extent lock");
            patterns.clear();
            recorded.clear();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        reloaded
    }

    /// How many commits this engine has made visible since it was opened.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire) / 2
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// The catalogue this engine computes with.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// A connection of its own, not shared with the pool (for work that leaves session
    /// state behind, such as temporary tables, or that may be interrupted).
    pub(crate) fn fresh_conn(&self) -> Result<Connection> {
        self.base
            .lock()
            .expect("base connection lock")
            .try_clone()
            .map_err(AnalyticsError::db("cannot open a connection"))
    }

    /// Runs `f` with a connection from the pool (inside a consistent read, the read's own).
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        // Taken out while `f` runs, so a nested call (there is none) could not alias it.
        if let Some(mut conn) = PINNED.with(|p| p.borrow_mut().take()) {
            let out = f(&mut conn);
            PINNED.with(|p| *p.borrow_mut() = Some(conn));
            return out;
        }
        let mut conn = self.checkout()?;
        let out = f(&mut conn);
        self.checkin(conn);
        out
    }

    /// An idle connection of the pool, or a new one (keeping its recent query plans).
    fn checkout(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().expect("pool lock").pop() {
            return Ok(c);
        }
        let c = self.fresh_conn()?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(c)
    }

    /// Back to the pool (at most 8 are kept idle).
    fn checkin(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 8 {
            idle.push(conn);
        }
    }
}
