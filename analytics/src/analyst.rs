//! Analysts' SQL: one read-only query, with a time limit, a row limit and a byte limit.
//!
//! The rules, each named in the error that enforces it:
//! - `sealed`: SQL runs only on an engine opened as [`crate::OpenMode::Analyst`] or
//!   [`crate::OpenMode::Server`], in a read-only transaction, where DuckDB itself refuses
//!   writes to the database and any access to other files or the network, and its
//!   configuration is locked (`lock_configuration`: no `SET`, `SET GLOBAL` or `PRAGMA` that
//!   changes a setting can run, so one analyst cannot change the database for everyone);
//! - `one_statement`: a single statement, as DuckDB's own parser splits them (on an empty
//!   in-memory database, so nothing runs while counting): comments, `E''` strings and `$$`
//!   strings cannot hide a second one. The query then runs wrapped as
//!   `SELECT * FROM (query) LIMIT n`, and the wrapped text is counted again, so only a query
//!   can stand inside it;
//! - `read_only`: a query (`SELECT`, `WITH`, `FROM`, `VALUES`, `TABLE`), nothing else; a
//!   write that gets past this is refused by DuckDB and reported under the same rule;
//! - `no_external_access`: no files, no network (`read_csv`, `COPY`, `ATTACH`, ...);
//! - `timeout`: a query past the time limit is interrupted;
//! - `invalid`: DuckDB could not parse or bind it.
//!
//! Only the first `max_rows` rows, and no more than `max_bytes` of values, come back;
//! `truncated` says when there were more and `truncated_by` which limit cut them. The
//! watchdog interrupts a query at its time limit; DuckDB stops within a fraction of a second.

use crate::{AnalyticsError, Engine, Result};
use duckdb::types::{TimeUnit, Value};
use serde::Serialize;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub struct SqlLimits {
    pub max_rows: usize,
    /// The most bytes of values (as JSON text) an answer may carry.
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 10_000,
            max_bytes: 8 * 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SqlResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows matched than came back.
    pub truncated: bool,
    /// Which limit cut the rows: `max_rows` or `max_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub truncated_by: Option<&'static str>,
    pub elapsed_ms: f64,
}

fn rule(rule: &'static str, message: impl Into<String>) -> AnalyticsError {
    AnalyticsError::Sql {
        rule,
        message: message.into(),
    }
}

/// The text without comments and quoted parts replaced, for finding the first keyword (the
/// statements are counted by DuckDB's own parser, `statement_count`).
fn code_only(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // Quoted text (doubled quotes escape themselves) becomes a space.
                loop {
                    match chars.next() {
                        Some(q) if q == c => {
                            if chars.peek() == Some(&c) {
                                chars.next();
                            } else {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
                out.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Checks the statement rules and returns the statement without a trailing `;`.
pub(crate) fn check_statement(sql: &str) -> Result<&str> {
    let mut text = sql.trim();
    while let Some(stripped) = text.strip_suffix(';') {
        text = stripped.trim_end();
    }
    let code = code_only(text);
    if code.trim().is_empty() {
        return Err(rule("invalid", "the query is empty"));
    }
    one_statement(text)?;
    let first = code
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if !matches!(
        first.as_str(),
        "SELECT" | "WITH" | "FROM" | "VALUES" | "TABLE"
    ) {
        return Err(rule(
            "read_only",
            format!(
                "only queries may run (SELECT, WITH, FROM, VALUES, TABLE); this statement starts with {first}"
            ),
        ));
    }
    Ok(text)
}

/// An empty in-memory DuckDB to split statements with: parsing only, nothing runs on it.
/// One per thread, opened at its first use (blocking threads are reused, so an analyst query
/// does not open a database to count its statements).
struct Parser {
    db: duckdb::ffi::duckdb_database,
    con: duckdb::ffi::duckdb_connection,
}

impl Parser {
    fn open() -> Option<Parser> {
        use duckdb::ffi;
        // SAFETY: the handles are created here and owned by the `Parser`, which closes them
        // (in `Drop`) on the thread that opened them.
        unsafe {
            let mut db: ffi::duckdb_database = std::ptr::null_mut();
            if ffi::duckdb_open(std::ptr::null(), &mut db) != ffi::DuckDBSuccess {
                return None;
            }
            let mut con: ffi::duckdb_connection = std::ptr::null_mut();
            if ffi::duckdb_connect(db, &mut con) != ffi::DuckDBSuccess {
                ffi::duckdb_close(&mut db);
                return None;
            }
            Some(Parser { db, con })
        }
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: the handles were opened by `Parser::open` and are closed once, here.
        unsafe {
            duckdb::ffi::duckdb_disconnect(&mut self.con);
            duckdb::ffi::duckdb_close(&mut self.db);
        }
    }
}

thread_local! {
    static PARSER: Option<Parser> = Parser::open();
}

/// How many statements DuckDB's own parser finds in `sql`.
pub(crate) fn statement_count(sql: &str) -> Result<usize> {
    use duckdb::ffi;
    use std::ffi::{CStr, CString};
    let text =
        CString::new(sql).map_err(|_| rule("invalid", "the query contains a NUL character"))?;
    PARSER.with(|parser| {
        let parser = parser
            .as_ref()
            .ok_or_else(|| rule("invalid", "cannot start DuckDB's parser"))?;
        // SAFETY: the connection lives as long as this thread's parser; the extracted
        // statements are destroyed here, after their error string is copied.
        unsafe {
            let mut extracted: ffi::duckdb_extracted_statements = std::ptr::null_mut();
            let n = ffi::duckdb_extract_statements(parser.con, text.as_ptr(), &mut extracted);
            let result = if n == 0 {
                let e = ffi::duckdb_extract_statements_error(extracted);
                Err(rule(
                    "invalid",
                    if e.is_null() {
                        "the query is empty".to_owned()
                    } else {
                        CStr::from_ptr(e).to_string_lossy().into_owned()
                    },
                ))
            } else {
                Ok(n as usize)
            };
            ffi::duckdb_destroy_extracted(&mut extracted);
            result
        }
    })
}

/// Refuses anything but exactly one statement, as DuckDB counts them.
fn one_statement(sql: &str) -> Result<()> {
    match statement_count(sql)? {
        1 => Ok(()),
        n => Err(rule(
            "one_statement",
            format!("only one statement may run; DuckDB reads {n} here"),
        )),
    }
}

/// Which rule a DuckDB error shows was hit.
fn classify(e: &duckdb::Error) -> AnalyticsError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("configuration has been locked") || lower.contains("lock_configuration") {
        rule("sealed", text)
    } else if lower.contains("read-only") || lower.contains("read only") {
        rule("read_only", text)
    } else if lower.contains("external access")
        || lower.contains("permission error")
        || lower.contains("file system")
    {
        rule("no_external_access", text)
    } else {
        rule("invalid", text)
    }
}

fn json_value(v: Value) -> serde_json::Value {
    use serde_json::Value as J;
    let ts = |unit: TimeUnit, n: i64| {
        let micros = match unit {
            TimeUnit::Second => n.saturating_mul(1_000_000),
            TimeUnit::Millisecond => n.saturating_mul(1_000),
            TimeUnit::Microsecond => n,
            TimeUnit::Nanosecond => n / 1_000,
        };
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| J::String(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()))
            .unwrap_or(J::Null)
    };
    match v {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(b),
        Value::TinyInt(n) => n.into(),
        Value::SmallInt(n) => n.into(),
        Value::Int(n) => n.into(),
        Value::BigInt(n) => n.into(),
        Value::UTinyInt(n) => n.into(),
        Value::USmallInt(n) => n.into(),
        Value::UInt(n) => n.into(),
        Value::UBigInt(n) => n.into(),
        Value::HugeInt(n) => i64::try_from(n)
            .map(J::from)
            .unwrap_or_else(|_| J::String(n.to_string())),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(f))
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Double(f) => serde_json::Number::from_f64(f)
            .map(J::Number)
            .unwrap_or(J::Null),
        Value::Text(s) | Value::Enum(s) => J::String(s),
        Value::Timestamp(unit, n) => ts(unit, n),
        Value::Date32(days) => chrono::NaiveDate::from_num_days_from_ce_opt(days + 719_163)
            .map(|d| J::String(d.to_string()))
            .unwrap_or(J::Null),
        Value::List(items) | Value::Array(items) => {
            J::Array(items.into_iter().map(json_value).collect())
        }
        other => J::String(format!("{other:?}")),
    }
}

impl Engine {
    /// Runs one analyst query under the rules of this module.
    pub fn run_sql(&self, sql: &str, limits: &SqlLimits) -> Result<SqlResult> {
        self.facts_here("analyst SQL")?;
        if !self.mode().sealed() {
            return Err(rule(
                "sealed",
                "analyst SQL runs only on a database opened with external access off",
            ));
        }
        let text = check_statement(sql)?;
        let wrapped = format!(
            "SELECT * FROM ({text}\n) AS analyst_query LIMIT {}",
            limits.max_rows + 1
        );
        // The wrapped text must still be one statement: then only a query fits inside.
        one_statement(&wrapped)?;
        let conn = self.fresh_conn()?;
        // Read-only whatever the file's mode: on the server's writable file DuckDB refuses
        // any write in this transaction, which is rolled back when the connection drops.
        conn.execute_batch("BEGIN TRANSACTION READ ONLY")
            .map_err(AnalyticsError::db("cannot begin a read-only transaction"))?;
        let interrupt = conn.interrupt_handle();
        let (done, wait) = mpsc::channel::<()>();
        let timeout = limits.timeout;
        let watchdog = std::thread::spawn(move || {
            let expired = wait.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout);
            if expired {
                interrupt.interrupt();
            }
            expired
        });
        let started = Instant::now();
        let max_bytes = limits.max_bytes;
        type Answer = (Vec<String>, Vec<Vec<serde_json::Value>>, bool);
        let result = (|| -> std::result::Result<Answer, duckdb::Error> {
            let mut stmt = conn.prepare(&wrapped)?;
            let width = stmt.column_count();
            let mut rows = Vec::new();
            let mut bytes = 0usize;
            let mut cut_by_bytes = false;
            {
                let mut cursor = stmt.query([])?;
                while let Some(row) = cursor.next()? {
                    let mut out = Vec::with_capacity(width);
                    for i in 0..width {
                        let v = json_value(row.get::<_, Value>(i)?);
                        bytes += v.to_string().len() + 1;
                        out.push(v);
                    }
                    if bytes > max_bytes {
                        cut_by_bytes = true;
                        break;
                    }
                    rows.push(out);
                }
            }
            Ok((stmt.column_names(), rows, cut_by_bytes))
        })();
        let elapsed = started.elapsed();
        let _ = done.send(());
        let expired = watchdog.join().unwrap_or(false);
        let (columns, mut rows, cut_by_bytes) = match result {
            Ok(r) => r,
            Err(_) if expired => {
                return Err(rule(
                    "timeout",
                    format!("cancelled after {:.1} s", timeout.as_secs_f64()),
                ));
            }
            Err(e) => return Err(classify(&e)),
        };
        let cut_by_rows = rows.len() > limits.max_rows;
        rows.truncate(limits.max_rows);
        Ok(SqlResult {
            columns,
            rows,
            truncated: cut_by_rows || cut_by_bytes,
            truncated_by: if cut_by_bytes {
                Some("max_bytes")
            } else if cut_by_rows {
                Some("max_rows")
            } else {
                None
            },
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_checked_before_duckdb_sees_them() {
        assert_eq!(check_statement("SELECT 1;  ").unwrap(), "SELECT 1");
        assert!(check_statement("with x as (select 1) select * from x").is_ok());
        assert!(check_statement("-- note\n(SELECT ';' AS semi)").is_ok());
        let rule_of = |sql: &str| match check_statement(sql) {
            Err(AnalyticsError::Sql { rule, .. }) => rule,
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(rule_of("SELECT 1; DROP TABLE regions"), "one_statement");
        assert_eq!(rule_of("DELETE FROM regions"), "read_only");
        assert_eq!(rule_of("/* hi */ COPY regions TO 'x.csv'"), "read_only");
        assert_eq!(rule_of("ATTACH 'other.db'"), "read_only");
        assert_eq!(rule_of("  ;"), "invalid");
    }

    #[test]
    fn duckdb_counts_the_statements_whatever_hides_them() {
        for sql in [
            "SELECT 1",
            "SELECT ';' AS semi",
            "SELECT $$;$$",
            "SELECT 1 -- ;",
        ] {
            assert_eq!(statement_count(sql).unwrap(), 1, "{sql}");
        }
        // Texts that hide a second statement from a hand-made splitter: DuckDB finds more
        // than one, or cannot split them at all (refused as invalid, which is as safe).
        for sql in [
            "SELECT 1; SELECT 2",
            "SELECT 1 /* a /* b */ ; SET threads = 1; /* */",
            "SELECT E'\\''; SET GLOBAL memory_limit = '1MB'; SELECT '",
            "SELECT $x$ ; $x$; SET GLOBAL memory_limit='1MB'",
        ] {
            match statement_count(sql) {
                Ok(count) => assert!(count > 1, "{sql}: {count}"),
                Err(AnalyticsError::Sql { rule, .. }) => assert_eq!(rule, "invalid", "{sql}"),
                Err(e) => panic!("{sql}: {e}"),
            }
        }
        assert!(one_statement("SELECT 1; SELECT 2").is_err());
    }

    #[test]
    fn values_become_json() {
        assert_eq!(json_value(Value::Int(3)), serde_json::json!(3));
        assert_eq!(
            json_value(Value::Timestamp(TimeUnit::Microsecond, 86_400_000_000)),
            serde_json::json!("1970-01-02 00:00:00")
        );
        assert_eq!(
            json_value(Value::Date32(1)),
            serde_json::json!("1970-01-02")
        );
        assert_eq!(json_value(Value::Double(f64::NAN)), serde_json::Value::Null);
    }
}
