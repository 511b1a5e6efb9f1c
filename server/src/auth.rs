//! Who may see what: bearer tokens with a role and a region scope, checked once per request by
//! one middleware ([`guard`]), with a per-token rate limit and an audit log of every request.
//!
//! - A token comes in `Authorization: Bearer TOKEN`, or as `?token=TOKEN` where a browser
//!   cannot set headers (images, WebSockets); the parameter is removed before routes see it.
//! - No or an unknown token: `401`. Outside the role or the scope: `403`. Each answer is JSON
//!   with `error` and a machine-readable `reason`.
//! - Roles: `admin` and `analyst` may run raw SQL (and only with the whole province in scope,
//!   since SQL cannot be limited to a subtree); `leader`, `planner` and `viewer` read
//!   indicators, alerts, trends and scenes. Roles below `analyst` get small cells suppressed
//!   (values resting on fewer than [`Auth::small_cell_min`] records).
//! - Scope: a region code (`32` the province, `3201` Nanjing). A `region` parameter must lie in
//!   the scope and defaults to it; a `level` above the scope's is refused; a scene must cover
//!   only regions in the scope.
//! - `/`, the pages (`/wall`, `/analyst`, `/planner`, whose scripts fetch data with the
//!   page's token), `/api/health` and `/api/openapi.json` need no token.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Planner,
    Leader,
    Analyst,
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Ok(match s {
            "admin" => Role::Admin,
            "leader" => Role::Leader,
            "analyst" => Role::Analyst,
            "planner" => Role::Planner,
            "viewer" => Role::Viewer,
            other => {
                return Err(format!(
                    "unknown role {other:?} (admin, leader, analyst, planner, viewer)"
                ));
            }
        })
    }
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Leader,
        Role::Analyst,
        Role::Planner,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Analyst => "analyst",
            Role::Planner => "planner",
            Role::Viewer => "viewer",
        }
    }

    /// Whether small cells are shown as they are.
    pub fn sees_small_cells(self) -> bool {
        matches!(self, Role::Analyst | Role::Admin)
    }
}

/// The holder of a token.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Principal {
    /// A name for the audit log (never the secret).
    pub name: String,
    pub role: Role,
    /// Region code whose subtree this token may see.
    pub scope: String,
}

impl Principal {
    /// Whether `region` (a division code or grid id) lies in the scope.
    pub fn covers(&self, region: &str) -> bool {
        region.starts_with(&self.scope)
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Tokens, the rate limiter and the audit log.
pub struct Auth {
    tokens: HashMap<String, Principal>,
    /// Sustained requests per second per token, and the burst.
    pub rate_per_s: f64,
    pub burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Cells resting on fewer records are suppressed for roles below analyst.
    pub small_cell_min: f64,
    audit: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            tokens: HashMap::new(),
            rate_per_s: 50.0,
            burst: 200.0,
            buckets: Mutex::new(HashMap::new()),
            small_cell_min: 10.0,
            audit: Mutex::new(None),
        }
    }
}

impl Auth {
    /// Adds a token; secrets are at least 16 characters of letters, digits, `-` or `_`.
    pub fn add(&mut self, secret: &str, principal: Principal) -> Result<(), String> {
        if secret.len() < 16
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "the token for {} must be 16 or more letters, digits, - or _",
                principal.name
            ));
        }
        if principal.scope.is_empty() || !principal.scope.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "scope {:?} of {} is not a division code",
                principal.scope, principal.name
            ));
        }
        self.tokens.insert(secret.to_owned(), principal);
        Ok(())
    }

    /// Writes the audit log (JSON lines: who, what, when, status, rows) to `path`, appending.
    pub fn audit_to(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.audit = Mutex::new(Some(std::io::BufWriter::new(file)));
        Ok(())
    }

    pub fn principal(&self, secret: &str) -> Option<&Principal> {
        self.tokens.get(secret)
    }

    /// Takes one request from the token's bucket; false when it is empty.
    fn allow(&self, secret: &str) -> bool {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let now = Instant::now();
        let b = buckets.entry(secret.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate_per_s).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn record(&self, entry: serde_json::Value) {
        if let Some(w) = self.audit.lock().expect("audit lock").as_mut() {
            let _ = writeln!(w, "{entry}");
            let _ = w.flush();
        }
    }
}

/// How many rows a response carried, for the audit log (set by routes as an extension).
#[derive(Clone, Copy, Debug)]
pub struct AuditRows(pub usize);

/// The query parameters of a URI, and the URI without `token`.
fn split_token(uri: &Uri) -> (HashMap<String, String>, Option<String>, Uri) {
    let query = uri.query().unwrap_or("");
    let pairs: Vec<(String, String)> = url_pairs(query);
    let token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone());
    let kept: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token=") && *p != "token")
        .map(str::to_owned)
        .collect();
    let path = uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    (
        pairs.into_iter().filter(|(k, _)| k != "token").collect(),
        token,
        rebuilt.parse().unwrap_or_else(|_| uri.clone()),
    )
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Paths anyone may open.
/// The pages themselves hold no data (their scripts fetch it with the page's token).
fn public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/api/health"
            | "/api/openapi.json"
            | "/wall"
            | "/analyst"
            | "/planner"
            | "/pages/common.js"
    )
}

/// Routes whose `region` parameter defaults to the caller's scope.
fn takes_region(path: &str) -> bool {
    path.starts_with("/api/indicators/") && !path.ends_with("/api/indicators/")
        || path == "/api/alerts"
        || path == "/api/trends"
}

/// Checks role and scope for one request; `Ok(Some(region))` asks to add `region=` to it.
fn permit(
    state: &AppState,
    who: &Principal,
    path: &str,
    params: &HashMap<String, String>,
) -> Result<Option<String>, AppError> {
    let forbid = |reason: &str, message: String| AppError::Forbidden {
        reason: reason.to_owned(),
        message,
    };
    if path == "/api/sql" {
        if !matches!(who.role, Role::Analyst | Role::Admin) {
            return Err(forbid(
                "role",
                format!(
                    "raw SQL is for analysts and admins, not {}",
                    who.role.as_str()
                ),
            ));
        }
        if who.scope != "32" {
            return Err(forbid(
                "scope",
                format!(
                    "raw SQL cannot be limited to a region, so it needs the whole province in scope, not {}",
                    who.scope
                ),
            ));
        }
    }
    if let Some(region) = params.get("region")
        && !who.covers(region)
    {
        return Err(forbid(
            "scope",
            format!("region {region} is outside your scope {}", who.scope),
        ));
    }
    if let Some(level) = params.get("level")
        && let Ok(level) = level.parse::<indicators::Level>()
        && level.code_len().is_some_and(|n| n < who.scope.len())
    {
        return Err(forbid(
            "scope",
            format!("level {} is above your scope {}", level.as_str(), who.scope),
        ));
    }
    let scene_id = path
        .strip_prefix("/api/scenes/")
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned)
        .or_else(|| {
            (path == "/ws/view")
                .then(|| params.get("scene").cloned())
                .flatten()
        });
    if let Some(id) = scene_id
        && let Some(scene) = state.scene(&id)
        && let Some(region) = &scene.region
        && !who.covers(region)
    {
        return Err(forbid(
            "scope",
            format!(
                "scene {id} covers {region}, outside your scope {}",
                who.scope
            ),
        ));
    }
    if takes_region(path) && !params.contains_key("region") && who.scope != "32" {
        return Ok(Some(who.scope.clone()));
    }
    Ok(None)
}

/// The one middleware: token, rate limit, role and scope, then the audit entry.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let started = chrono::Local::now();
    let (params, query_token, uri) = split_token(request.uri());
    let path = uri.path().to_owned();
    let header_token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = header_token.or(query_token);
    *request.uri_mut() = uri.clone();
    let principal = token
        .as_deref()
        .and_then(|t| state.auth.principal(t))
        .cloned();
    let outcome: Result<(), AppError> = (|| {
        match (&token, &principal) {
            (_, Some(_)) => {}
            (None, None) if public(&path) => return Ok(()),
            (None, None) => {
                return Err(AppError::Unauthorized {
                    reason: "missing_token".into(),
                    message: "this route needs a token: Authorization: Bearer TOKEN (or ?token=)"
                        .into(),
                });
            }
            (Some(_), None) => {
                return Err(AppError::Unauthorized {
                    reason: "invalid_token".into(),
                    message: "the token is not known to this server".into(),
                });
            }
        }
        let who = principal.as_ref().expect("checked above");
        if !state.auth.allow(token.as_deref().unwrap_or_default()) {
            return Err(AppError::RateLimited(format!(
                "more than {} requests per second (burst {}) for {}",
                state.auth.rate_per_s, state.auth.burst, who.name
            )));
        }
        if public(&path) {
            return Ok(());
        }
        if let Some(region) = permit(&state, who, &path, &params)? {
            let q = uri.query().map(|q| format!("{q}&")).unwrap_or_default();
            if let Ok(u) = format!("{path}?{q}region={region}").parse() {
                *request.uri_mut() = u;
            }
        }
        Ok(())
    })();
    let what = request.uri().to_string();
    let method = request.method().to_string();
    let response = match outcome {
        Ok(()) => {
            if let Some(p) = &principal {
                request.extensions_mut().insert(p.clone());
            }
            next.run(request).await
        }
        Err(e) => e.into_response(),
    };
    if !(public(&path) && principal.is_none()) {
        state.auth.record(serde_json::json!({
            "when": started.to_rfc3339(),
            "who": principal.as_ref().map(|p| p.name.as_str()),
            "role": principal.as_ref().map(|p| p.role.as_str()),
            "what": format!("{method} {what}"),
            "status": response.status().as_u16(),
            "rows": response.extensions().get::<AuditRows>().map(|r| r.0),
        }));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_leave_the_query_and_percent_escapes_decode() {
        let uri: Uri = "/api/alerts?level=county&token=abc&region=32%2001"
            .parse()
            .unwrap();
        let (params, token, rest) = split_token(&uri);
        assert_eq!(token.as_deref(), Some("abc"));
        assert_eq!(rest.to_string(), "/api/alerts?level=county&region=32%2001");
        assert_eq!(params["region"], "32 01");
        assert!(!params.contains_key("token"));
    }

    #[test]
    fn secrets_and_scopes_are_checked() {
        let mut auth = Auth::default();
        let p = |scope: &str| Principal {
            name: "x".into(),
            role: Role::Viewer,
            scope: scope.into(),
        };
        assert!(auth.add("short", p("32")).is_err());
        assert!(auth.add("0123456789abcdef", p("nanjing")).is_err());
        assert!(auth.add("0123456789abcdef", p("3201")).is_ok());
    }
}
