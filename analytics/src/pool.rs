//! The engine and its connection pool.
//!
//! DuckDB connections are `Send` but not `Sync`; each call checks one out of the pool (opening
//! a new one on the same database when all are busy) and puts it back afterwards.

use crate::{AnalyticsError, Result};
use duckdb::{AccessMode, Config, Connection};
use indicators::Catalogue;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// How a database file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file and schema when missing; load data.
    ReadWrite,
    /// Read only; DuckDB may still read and write other files (e.g. to export Parquet).
    ReadOnly,
    /// Read only and sealed: DuckDB reads nothing but this database and writes nothing at
    /// all, so analysts' SQL (`Engine::run_sql`) can run safely. What the server uses.
    Analyst,
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

    /// Opens the file in `mode`; `catalogue` resolves derived indicators and says which
    /// measures are pre-aggregated at load time.
    pub fn open_with(path: &Path, mode: OpenMode, catalogue: Arc<Catalogue>) -> Result<Engine> {
        let config_err = AnalyticsError::db("cannot configure DuckDB");
        let conn = match mode {
            OpenMode::ReadWrite => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| AnalyticsError::Ingest {
                        message: format!("cannot create the database directory: {e}"),
                        path: dir.to_owned(),
                    })?;
                }
                Connection::open(path)
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
                    // Sealed: no files, no network, no extensions loaded on demand, and the
                    // configuration locked, so no statement can change the database's
                    // settings (memory, threads, access) for the other users.
                    config = config
                        .enable_external_access(false)
                        .and_then(|c| c.enable_autoload_extension(false))
                        .and_then(|c| c.with("autoinstall_known_extensions", "false"))
                        .and_then(|c| c.with("lock_configuration", "true"))
                        .map_err(AnalyticsError::db("cannot seal DuckDB"))?;
                }
                Connection::open_with_flags(path, config)
            }
        }
        .map_err(AnalyticsError::db(format!(
            "cannot open DuckDB file {}",
            path.display()
        )))?;
        if mode == OpenMode::ReadWrite {
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
        };
        engine.reload_regions()?;
        engine.reload_cubes()?;
        Ok(engine)
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

    /// Runs `f` with a connection from the pool.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = self.fresh_conn()?;
                c.set_prepared_statement_cache_capacity(64);
                c
            }
        };
        let out = f(&mut conn);
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 8 {
            idle.push(conn);
        }
        out
    }
}
