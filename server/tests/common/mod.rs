//! Helpers shared by the server's tests: a generated sample, opened as `databrain serve`
//! opens it (its one writer, sealed) or read-only and sealed, with tokens of given roles and
//! scopes.

#![allow(dead_code, reason = "each test binary uses its own part")]

use server::auth::{Auth, Principal, Role};
use std::path::Path;

/// The small sample of `seed` in `dir`, ingested, opened read-only and sealed.
pub fn sealed_engine(dir: &Path, seed: u64) -> analytics::Engine {
    let sample = dir.join("sample");
    data_samples::generate(
        &sample,
        &data_samples::Config {
            scale: data_samples::Scale::Small,
            seed,
            progress: false,
        },
    )
    .unwrap();
    let db = dir.join("db.duckdb");
    analytics::Engine::open(&db)
        .unwrap()
        .ingest_dir(&sample)
        .unwrap();
    analytics::Engine::open_read_only(&db, analytics::OpenMode::Analyst).unwrap()
}

/// Tokens `(secret, role, scope)`, each named `"{role} {scope}"`, with `rate_per_s` (bursts
/// of four times that) and the audit log in `dir/audit.jsonl`. A department token acts for
/// [`department_org`] of its scope.
pub fn auth(dir: &Path, tokens: &[(&str, Role, &str)], rate_per_s: f64) -> Auth {
    let mut auth = Auth::default();
    auth.rate_per_s = rate_per_s;
    auth.burst = rate_per_s * 4.0;
    for (secret, role, scope) in tokens {
        auth.add(
            secret,
            Principal {
                name: format!("{} {scope}", role.as_str()),
                role: *role,
                scope: scope.to_string(),
                org: (*role == Role::Department).then(|| department_org(scope)),
            },
        )
        .unwrap();
    }
    auth.audit_to(&dir.join("audit.jsonl")).unwrap();
    auth
}

/// The small sample of `seed` in `dir`, ingested and opened as the server opens it: its one
/// writer, sealed.
pub fn server_engine(dir: &Path, seed: u64) -> analytics::Engine {
    let path = sealed_engine(dir, seed).path().to_owned();
    analytics::Engine::open_for_server(&path).unwrap()
}

/// The organisation a test's department token of `scope` acts for.
pub fn department_org(scope: &str) -> String {
    format!("{scope}/城管局")
}
