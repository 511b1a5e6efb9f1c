//! Blocking work off the async workers, bounded, and answers kept per data snapshot.

use crate::error::AppError;
use std::collections::HashMap;

/// How many blocking jobs (DuckDB queries, renders) run at once; the rest wait their turn.
/// Without a bound, hundreds of concurrent requests each hold a DuckDB query's memory.
const BLOCKING_AT_ONCE: usize = 4;
static BLOCKING_PERMITS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(BLOCKING_AT_ONCE);

/// Runs blocking work (DuckDB, rendering) off the async workers, at most
/// [`BLOCKING_AT_ONCE`] at a time.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    let _permit = BLOCKING_PERMITS
        .acquire()
        .await
        .map_err(|_| AppError::Internal("the blocking-work semaphore closed".into()))?;
    tokio::task::spawn_blocking(f).await?
}

/// Answers that change only with the data (alerts, trends), kept per data snapshot and
/// audience: the first request for a key computes, concurrent ones wait for it, later ones
/// read it.
#[derive(Default)]
pub struct Answers {
    cells: std::sync::Mutex<HashMap<String, AnswerCell>>,
}

type AnswerCell =
    std::sync::Arc<tokio::sync::OnceCell<std::sync::Arc<dyn std::any::Any + Send + Sync>>>;

/// Keys kept before the cache starts over.
const MAX_ANSWERS: usize = 512;

impl Answers {
    /// `key` must name everything the answer depends on besides the data snapshot,
    /// the audience included.
    pub async fn get_or_compute<T: Clone + Send + Sync + 'static>(
        &self,
        engine: &std::sync::Arc<analytics::Engine>,
        key: String,
        compute: impl FnOnce() -> Result<T, AppError> + Send + 'static,
    ) -> Result<T, AppError> {
        let e = engine.clone();
        let snapshot = blocking(move || Ok(e.snapshot().ok().map(|s| s.ingest_id))).await?;
        let key = format!("{snapshot:?} {key}");
        let cell = {
            let mut cells = self.cells.lock().expect("answers lock");
            if cells.len() >= MAX_ANSWERS && !cells.contains_key(&key) {
                cells.clear();
            }
            cells.entry(key).or_default().clone()
        };
        let value = cell
            .get_or_try_init(|| async move {
                let v = blocking(compute).await?;
                Ok::<_, AppError>(
                    std::sync::Arc::new(v) as std::sync::Arc<dyn std::any::Any + Send + Sync>
                )
            })
            .await?;
        value
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| AppError::Internal("a cached answer of another type".into()))
    }
}
