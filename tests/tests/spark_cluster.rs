//! `databrain spark-cluster` as an operator runs it: started, it prints the master's URL and
//! the master accepts connections; told to stop (SIGTERM, as a service manager or `kill`
//! does, and SIGINT, as Ctrl-C does), it exits cleanly and leaves no Spark process behind.
//!
//! Needs Java and a Python with PySpark (`make deps`; the Makefile names it in
//! `DATABRAIN_PYTHON`); skips with a message without them.

use databrain_tests::databrain_bin;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> PathBuf {
    std::env::var_os("DATABRAIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

fn can_run_spark() -> bool {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    let pyspark = Command::new(python())
        .args(["-c", "import pyspark"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !java || !pyspark {
        eprintln!("skipping: Spark needs Java 17 and PySpark (java: {java}, pyspark: {pyspark})");
    }
    java && pyspark
}

/// Process ids whose command line names `dir` (the master's log directory and the workers'
/// work directories are under it, so every Spark process of this cluster does).
fn processes_naming(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // The environment is not in cmdline; SPARK_LOG_DIR names the dir for the master.
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if args.contains(&needle) || String::from_utf8_lossy(&environ).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

fn stops_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("cluster");
    let mut child = Command::new(databrain_bin())
        .args(["spark-cluster", "--workers", "1", "--memory", "1g", "--dir"])
        .arg(&work)
        .arg("--python")
        .arg(python())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let master = line
        .split_whitespace()
        .find(|w| w.starts_with("spark://"))
        .unwrap_or_else(|| panic!("no master URL in {line:?}"))
        .to_owned();
    let port: u16 = master.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "{master} does not accept connections"
    );
    // The worker has registered with the master (a real Java process, past its launcher)
    // before the signal.
    let log = work.join("worker-0.log");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Successfully registered with master")
    {
        assert!(
            Instant::now() < deadline,
            "the worker did not register within 120 s: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let running = processes_naming(&work);
    assert!(
        running.len() >= 2,
        "expected the master and a worker, found processes {running:?}"
    );

    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "spark-cluster still running 60 s after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        status.success(),
        "SIG{signal}: exited with {status}; {rest}"
    );
    assert!(
        rest.contains("stopped"),
        "no word that it stopped: {rest:?}"
    );
    // The cluster waits for the processes it kills; a moment for the kernel to reap them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = processes_naming(&work);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        left = processes_naming(&work);
    }
    assert!(
        left.is_empty(),
        "SIG{signal} left Spark processes {left:?} running"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "{master} still accepts connections after SIG{signal}"
    );
}

#[test]
fn sigterm_stops_the_master_and_its_workers() {
    if can_run_spark() {
        stops_on("TERM");
    }
}

#[test]
fn sigint_stops_the_master_and_its_workers() {
    if can_run_spark() {
        stops_on("INT");
    }
}
