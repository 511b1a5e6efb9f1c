//! Serving: the server's state, tokens and audit log, the listener, and the demo.

use super::args::{ClockArg, ScaleArg, SupervisionArgs};
use super::data::{generate, ingest};
use anyhow::{Context, Result};
use server::state::AppState;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The audit log's path: given, or `<db>.audit.jsonl`.
pub(crate) fn audit_path(db: &Path, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        let mut name = db.as_os_str().to_owned();
        name.push(".audit.jsonl");
        PathBuf::from(name)
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensFile {
    token: Vec<TokenEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenEntry {
    name: String,
    role: String,
    scope: String,
    secret: String,
    /// The organisation of a `department` token: `<scope>/<name>`.
    #[serde(default)]
    org: Option<String>,
}

/// Tokens from `DATABRAIN_ADMIN_TOKEN` and the tokens file, with the audit log.
pub(crate) fn load_auth(tokens: Option<&Path>, audit: &Path) -> Result<server::auth::Auth> {
    use server::auth::{Auth, Principal, Role};
    let mut auth = Auth::default();
    if let Ok(secret) = std::env::var("DATABRAIN_ADMIN_TOKEN") {
        let admin = Principal {
            name: "admin (DATABRAIN_ADMIN_TOKEN)".into(),
            role: Role::Admin,
            scope: "32".into(),
            org: None,
        };
        auth.add(&secret, admin)
            .map_err(|e| anyhow::anyhow!("DATABRAIN_ADMIN_TOKEN: {e}"))?;
    }
    if let Some(path) = tokens {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
        let file: TokensFile = toml::from_str(&text)
            .with_context(|| format!("malformed tokens file {}", path.display()))?;
        for t in file.token {
            let role: Role = t.role.parse().map_err(|e: server::auth::UnknownRole| {
                anyhow::anyhow!("token {}: {e}, in {}", t.name, path.display())
            })?;
            auth.add(
                &t.secret,
                Principal {
                    name: t.name.clone(),
                    role,
                    scope: t.scope,
                    org: t.org,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e}, in {}", path.display()))?;
        }
    }
    auth.audit_to(audit)
        .with_context(|| format!("cannot open the audit log {}", audit.display()))?;
    Ok(auth)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidaysFile {
    #[serde(default)]
    holidays: Vec<chrono::NaiveDate>,
    #[serde(default)]
    working_weekends: Vec<chrono::NaiveDate>,
}

/// The working-day calendar of `serve --holidays FILE`.
pub(crate) fn load_calendar(path: &Path) -> Result<workflow::Calendar> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the holidays file {}", path.display()))?;
    let file: HolidaysFile = toml::from_str(&text)
        .with_context(|| format!("malformed holidays file {}", path.display()))?;
    Ok(workflow::Calendar {
        holidays: file.holidays.into_iter().collect(),
        working_weekends: file.working_weekends.into_iter().collect(),
    })
}

/// A random token: 32 hex digits from the operating system's generator.
pub(crate) fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Mappings by name (the file stem) from a directory of `*.toml`.
pub(crate) fn load_mappings(
    dir: Option<&Path>,
) -> Result<std::collections::BTreeMap<String, analytics::Mapping>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(dir) = dir else { return Ok(out) };
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read mappings in {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a mapping file name is not UTF-8")?
            .to_owned();
        out.insert(name, analytics::Mapping::load(&path)?);
    }
    Ok(out)
}

pub(crate) fn serve(
    db: &Path,
    addr: SocketAddr,
    auth: server::auth::Auth,
    mappings: std::collections::BTreeMap<String, analytics::Mapping>,
    supervision: &SupervisionArgs,
) -> Result<()> {
    let clock = match supervision.clock {
        ClockArg::System => server::state::Clock::System,
        ClockArg::Data => server::state::Clock::Data,
    };
    let state = AppState::open(db)?
        .with_auth(auth)
        .with_mappings(mappings)
        .with_clock(clock, supervision.auto_tasks);
    if let Some(path) = &supervision.holidays {
        state.engine.set_calendar(load_calendar(path)?);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        tokio::spawn(server::http::tasks::supervise(state.clone()));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!("databrain listening on http://{local}/");
        use std::io::Write;
        std::io::stdout().flush()?;
        server::http::serve::serve(listener, server::app(state), shutdown()).await?;
        Ok(())
    })
}

/// Catches SIGINT (Ctrl-C) and SIGTERM from the moment it is called (inside a runtime) and
/// returns a future that completes at the first of them. Eager, so that a signal while a
/// command is still starting is caught rather than ending the process unannounced.
pub(crate) fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down");
    }
}

pub(crate) fn demo(dir: &Path, addr: SocketAddr) -> Result<()> {
    let sample = dir.join("sample-small");
    let db = dir.join("databrain.duckdb");
    // A sample from an older generator lacks tables: make it again and reload.
    let current = std::fs::read_to_string(sample.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m.get("format").and_then(|f| f.as_u64()))
        == Some(u64::from(data_samples::FORMAT_VERSION));
    if !current {
        generate(&sample, ScaleArg::Small, 42)?;
    }
    let has_data = current && analytics::Engine::open(&db)?.snapshot().is_ok();
    if !has_data {
        ingest(&db, &sample)?;
        // Real outlines for the cities and Nanjing's districts when the shared data is there
        // (the generated rectangles stay below them and elsewhere).
        let shared = Path::new("../shared/data/boundaries_jiangsu");
        let files: Vec<std::path::PathBuf> =
            ["jiangsu_cities.geojson", "nanjing_districts.geojson"]
                .iter()
                .map(|f| shared.join(f))
                .filter(|f| f.is_file())
                .collect();
        if !files.is_empty() {
            super::data::boundaries(&db, "GCJ-02", &files)?;
        }
    }
    // The closed loop in every state, from the sample's own alerts (once per database).
    super::tasks::seed(&db)?;
    // One token per role, fresh at every start: the province for admin, leader and viewer, a
    // Nanjing analyst, a planner of the demo district.
    use server::auth::{Principal, Role};
    let mut auth = load_auth(None, &audit_path(&db, None))?;
    println!("tokens for this run (each URL opens the start page as that role):");
    for (role, scope) in [
        (Role::Admin, "32"),
        (Role::Leader, "32"),
        (Role::Supervisor, "32"),
        (Role::Department, data_samples::regions::DEMO_DISTRICT),
        (Role::Analyst, "3201"),
        (Role::Planner, "320102"),
        (Role::Viewer, "32"),
        (Role::Loader, "32"),
    ] {
        let secret = random_token()?;
        auth.add(
            &secret,
            Principal {
                name: format!("demo {}", role.as_str()),
                role,
                scope: scope.into(),
                org: (role == Role::Department).then(|| workflow::default_owner(scope)),
            },
        )?;
        println!(
            "  {:10} scope {scope:7} http://{addr}/?token={secret}",
            role.as_str()
        );
        match role {
            Role::Leader => println!(
                "           the wall:    http://{addr}/wall?scene=jiangsu_by_city&token={secret}"
            ),
            Role::Analyst => {
                println!("           analysis:    http://{addr}/analyst?token={secret}")
            }
            Role::Supervisor => {
                println!("           the board:   http://{addr}/tasks?token={secret}")
            }
            Role::Department => println!(
                "           the inbox:   http://{addr}/tasks?token={secret} ({})",
                workflow::default_owner(scope)
            ),
            Role::Planner => println!(
                "           the planner: http://{addr}/planner?scene=demo_district&token={secret}"
            ),
            Role::Loader => println!(
                "           a live feed: DATABRAIN_TOKEN={secret} databrain feed --server http://{addr} --sample {}",
                sample.display()
            ),
            _ => {}
        }
    }
    // The demo's feed plays on a simulated clock: supervision keeps the data's time, and
    // critical alerts become tasks by rule.
    let supervision = SupervisionArgs {
        clock: ClockArg::Data,
        auto_tasks: true,
        holidays: None,
    };
    serve(&db, addr, auth, Default::default(), &supervision)
}
