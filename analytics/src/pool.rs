//! The engine and its connection pool.
//!
//! DuckDB connections are `Send` but not `Sync`; each call checks one out of the pool (opening
//! a new one on the same database when all are busy) and puts it back afterwards.

use crate::{AnalyticsError, Result};
use duckdb::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub struct Engine {
    path: PathBuf,
    /// Kept to open further connections on the same database.
    base: Mutex<Connection>,
    idle: Mutex<Vec<Connection>>,
    pub(crate) regions: RwLock<Arc<HashMap<String, crate::RegionInfo>>>,
}

impl Engine {
    /// Opens (or creates) the database file and makes sure the schema exists.
    pub fn open(path: &Path) -> Result<Engine> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AnalyticsError::Ingest {
                message: format!("cannot create the database directory: {e}"),
                path: dir.to_owned(),
            })?;
        }
        let conn = Connection::open(path).map_err(AnalyticsError::db(format!(
            "cannot open DuckDB file {}",
            path.display()
        )))?;
        conn.execute_batch(&crate::ingest::schema_sql())
            .map_err(AnalyticsError::db("cannot create the schema"))?;
        let engine = Engine {
            path: path.to_owned(),
            base: Mutex::new(conn),
            idle: Mutex::new(Vec::new()),
            regions: RwLock::new(Arc::new(HashMap::new())),
        };
        engine.reload_regions()?;
        Ok(engine)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a connection from the pool.
    pub fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = self.idle.lock().expect("pool lock").pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self
                .base
                .lock()
                .expect("base connection lock")
                .try_clone()
                .map_err(AnalyticsError::db("cannot open a connection"))?,
        };
        let out = f(&mut conn);
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 8 {
            idle.push(conn);
        }
        out
    }
}
