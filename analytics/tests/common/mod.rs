//! Helpers shared by the analytics tests: generated samples loaded into fresh databases.

#![allow(dead_code)]

use analytics::{AnalyticsError, Engine};
use data_samples::{Config, Manifest, Scale};
use indicators::{Grain, IndicatorQuery, Level};
use std::path::{Path, PathBuf};

pub fn sample(dir: &Path, seed: u64) -> Manifest {
    data_samples::generate(
        dir,
        &Config {
            scale: Scale::Small,
            seed,
            progress: false,
        },
    )
    .unwrap()
}

/// A generated sample loaded into a fresh database (the directory lives as long as the
/// guard); the sample is in `<guard>/sample`.
pub fn loaded(seed: u64) -> (tempfile::TempDir, Engine, Manifest) {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = sample(&tmp.path().join("sample"), seed);
    let engine = Engine::open(&tmp.path().join("db.duckdb")).unwrap();
    engine.ingest_dir(&tmp.path().join("sample")).unwrap();
    (tmp, engine, manifest)
}

pub fn sample_file(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join("sample").join(name)
}

pub fn count(engine: &Engine, table: &str) -> i64 {
    engine
        .with_conn(|c| {
            c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .map_err(|e| AnalyticsError::Db {
                    context: table.into(),
                    source: e,
                })
        })
        .unwrap()
}

/// The shared real data folder beside the project root, when present.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} is absent (the shared data folder is not on this machine)",
            path.display()
        );
        None
    }
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// A query over the whole data at a level and grain.
pub fn whole(level: Level, grain: Grain) -> IndicatorQuery {
    IndicatorQuery {
        level,
        grain,
        from: None,
        to: None,
        region: None,
    }
}

/// The first `n` work orders (by id) written to a Parquet file at `path` as a department
/// would send them: ids prefixed `PQ`, derived columns left out.
pub fn orders_as_parquet(engine: &Engine, path: &Path, n: usize) {
    engine
        .with_conn(|c| {
            c.execute_batch(&format!(
                "COPY (SELECT * EXCLUDE (handling_hours) REPLACE ('PQ' || order_id AS order_id) \
                 FROM work_orders ORDER BY order_id LIMIT {n}) TO '{}' (FORMAT parquet)",
                path.display()
            ))
            .map_err(|e| AnalyticsError::Db {
                context: "export".into(),
                source: e,
            })
        })
        .unwrap();
}
