//! End-to-end tests of databrain, run against the built `databrain` binary: generate, ingest,
//! serve on port 0, query the API and check numbers against an independent computation, fetch
//! rendered snapshots, drive the view stream, load the page in headless Chromium, and check
//! the workspace's dependency rule with `cargo metadata`. The tests live in `tests/`; this
//! library only locates the binary and runs the server.

pub mod cdp;
pub mod golden;

/// How every test runs Chromium: headless, no sandbox (root in CI), no GPU, and nothing that
/// reaches the network on its own.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `databrain` binary built next to the running test executable
/// (`<target>/release/deps/<test>` → `<target>/release/databrain`).
pub fn databrain_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let bin = dir.join("databrain");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `make build` (what `make test` builds)",
        bin.display()
    );
    bin
}

/// Runs `databrain` with arguments and returns its stdout, failing with its stderr.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(databrain_bin())
        .args(args)
        .output()
        .expect("databrain runs");
    assert!(
        out.status.success(),
        "databrain {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Generates the small sample with `seed` under `dir` and ingests it; returns the database.
pub fn sample_db(dir: &Path, seed: u64) -> PathBuf {
    let (sample, db) = (dir.join("sample"), dir.join("databrain.duckdb"));
    let (s, d) = (sample.to_str().unwrap(), db.to_str().unwrap());
    run(&[
        "generate",
        "--out",
        s,
        "--scale",
        "small",
        "--seed",
        &seed.to_string(),
    ]);
    run(&["ingest", "--db", d, s]);
    db
}

/// A running `databrain serve`, killed on drop.
pub struct Server {
    child: Child,
    /// Kept open so that later writes to stdout by the server do not fail.
    _stdout: BufReader<std::process::ChildStdout>,
    pub base_url: String,
    /// The admin token (`Authorization: Bearer`, or `?token=` for pages and WebSockets).
    pub token: String,
}

impl Server {
    /// Starts `databrain serve --db DB --addr 127.0.0.1:0` and waits for its address.
    pub fn start(db: &Path) -> Server {
        Server::start_with_env(db, &[])
    }

    /// Like [`Server::start`], with extra environment variables. The server gets an admin
    /// token ([`Server::token`]) through `DATABRAIN_ADMIN_TOKEN`.
    pub fn start_with_env(db: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(db, env, &[])
    }

    /// Like [`Server::start_with_env`], with extra arguments to `serve`.
    pub fn start_with(db: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut child = Command::new(databrain_bin())
            .env("DATABRAIN_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env.iter().copied())
            .args(["serve", "--db"])
            .arg(db)
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("databrain serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("server prints its address");
        let base_url = line
            .trim()
            .strip_prefix("databrain listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Server {
            child,
            _stdout: stdout,
            base_url,
            token: ADMIN_TOKEN.to_owned(),
        }
    }

    /// Sends SIGTERM and waits for the server to exit; returns whether it exited cleanly
    /// within `within`.
    pub fn terminate(&mut self, within: std::time::Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    /// Kills the server at once (SIGKILL: no shutdown, no checkpoint) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server's process id (for its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET path` with `token` as the caller (not the admin).
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(token)
            .send()
            .await
            .expect("a response")
    }

    /// An HTTP client that sends the admin token.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.token)
                .parse()
                .expect("a header value"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }
}

/// The admin token the test servers start with.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
