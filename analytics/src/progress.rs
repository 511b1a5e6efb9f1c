//! A progress bar for long loads, fed by DuckDB's own estimate of the running statement.

use duckdb::Connection;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Polls a connection's query progress on a thread and draws it on stderr (hidden when
/// stderr is not a terminal) until [`Bar::finish`].
pub(crate) struct Bar {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    pub(crate) fn start(conn: &Connection, message: &str) -> Bar {
        let done = Arc::new(AtomicBool::new(false));
        // Without tracking there is no estimate; the bar then only shows elapsed time.
        let _ = conn.set_query_progress_tracking(true);
        let handle = conn.progress_handle();
        let bar = ProgressBar::new(100);
        bar.set_style(
            ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos:>3}% ({elapsed})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message.to_owned());
        let stop = done.clone();
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(pct) = handle.query_progress().percentage() {
                    bar.set_position(pct.clamp(0.0, 100.0) as u64);
                }
                bar.tick();
                std::thread::sleep(Duration::from_millis(200));
            }
            bar.finish_and_clear();
        });
        Bar {
            done,
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panicked drawing thread only loses the bar.
            let _ = t.join();
        }
    }
}
