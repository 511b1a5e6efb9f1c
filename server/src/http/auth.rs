//! Who is asking: bearer tokens with a role and a region scope, rate limits, the audit log.
//!
//! - A token comes in `Authorization: Bearer TOKEN`, or as `?token=TOKEN` where a browser
//!   cannot set headers (images, WebSockets). The query is decoded once (`form_urlencoded`,
//!   as axum's `Query` decodes it), so `to%6Ben=` is the key `token` too; every `token` pair is
//!   removed and the rest re-encoded before a route, a log line or an error sees the URI.
//!   Two different tokens in one request are refused.
//! - Secrets are compared in constant time against every known token (`subtle`), and never
//!   stored anywhere but in [`Auth`]: the audit log names the token's holder.
//! - [`guard`] runs on the private router only (public routes live in a router of their own,
//!   see `http::app`): no or an unknown token is `401`; more than the token's rate is `429`;
//!   requests without a valid token are limited per client address too, so guessing tokens
//!   is slow. The caller reaches handlers as the typed [`Caller`] extractor, whose
//!   [`Caller::audience`] is what `analytics` answers for: scope and role are applied where
//!   the numbers are made, not here.
//! - The audit log is JSON lines (who, role, what, when, status, rows), each line bounded,
//!   written by a thread of its own through a bounded queue, never on the async workers.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Planner,
    Leader,
    Analyst,
    /// Writes department data of its scope through the server (loads and appends); reads
    /// like a viewer.
    Loader,
    /// Verifies or reopens resolved tasks and decides on extensions, in its scope; reads like
    /// a leader.
    Supervisor,
    /// An organisation that owns tasks (its token names it): accepts, returns, works on,
    /// asks for more time and resolves its own tasks; reads like a viewer.
    Department,
    Admin,
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown role {0:?} (admin, leader, supervisor, department, analyst, loader, planner, viewer)"
)]
pub struct UnknownRole(String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Ok(match s {
            "admin" => Role::Admin,
            "leader" => Role::Leader,
            "analyst" => Role::Analyst,
            "loader" => Role::Loader,
            "supervisor" => Role::Supervisor,
            "department" => Role::Department,
            "planner" => Role::Planner,
            "viewer" => Role::Viewer,
            other => return Err(UnknownRole(other.to_owned())),
        })
    }
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Leader,
        Role::Supervisor,
        Role::Department,
        Role::Analyst,
        Role::Loader,
        Role::Planner,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Analyst => "analyst",
            Role::Loader => "loader",
            Role::Supervisor => "supervisor",
            Role::Department => "department",
            Role::Planner => "planner",
            Role::Viewer => "viewer",
        }
    }

    /// Whether small cells are shown as they are.
    pub fn sees_small_cells(self) -> bool {
        matches!(self, Role::Analyst | Role::Admin)
    }

    /// Whether the role may write data (within its scope).
    pub fn writes(self) -> bool {
        matches!(self, Role::Loader | Role::Admin)
    }

    /// Whether the role may read supervised tasks (of its scope; a department only its own).
    pub fn reads_tasks(self) -> bool {
        matches!(
            self,
            Role::Leader | Role::Supervisor | Role::Department | Role::Analyst | Role::Admin
        )
    }

    /// Whether the role may read single 12345 work orders (of its scope): the record-level
    /// routes (`/api/work-orders`, `/open311`).
    pub fn reads_records(self) -> bool {
        matches!(
            self,
            Role::Leader | Role::Supervisor | Role::Department | Role::Analyst | Role::Admin
        )
    }

    /// The part the role plays in a task's life, if any.
    pub fn actor_role(self) -> Option<workflow::ActorRole> {
        match self {
            Role::Leader => Some(workflow::ActorRole::Leader),
            Role::Supervisor => Some(workflow::ActorRole::Supervisor),
            Role::Department => Some(workflow::ActorRole::Department),
            Role::Admin => Some(workflow::ActorRole::Admin),
            Role::Viewer | Role::Planner | Role::Analyst | Role::Loader => None,
        }
    }

    /// Whether the role may run raw SQL (and then only with the whole province in scope).
    pub fn runs_sql(self) -> bool {
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
    /// The organisation a `department` token acts for (`<scope>/<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// A token that cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token for {0} must be 16 or more letters, digits, - or _")]
    WeakSecret(String),
    #[error("scope {scope:?} of {name} is not a division code")]
    BadScope { name: String, scope: String },
    #[error("the token for {0} is already given to someone else")]
    Duplicate(String),
    #[error(
        "{name}: a department token names its organisation as org = \"<its scope>/<name>\" (and only department tokens have one), not {org:?}"
    )]
    BadOrg { name: String, org: Option<String> },
}

enum AuditMessage {
    Line(String),
    Flush(mpsc::Sender<()>),
}

/// The longest audit line kept; longer request targets are cut.
const MAX_AUDIT_WHAT: usize = 512;
/// Audit lines queued before new ones are counted as dropped.
const AUDIT_QUEUE: usize = 8192;

/// Tokens, the rate limiters and the audit log.
pub struct Auth {
    tokens: Vec<(Vec<u8>, Principal)>,
    /// Sustained requests per second per token, and the burst.
    pub rate_per_s: f64,
    pub burst: f64,
    /// Requests per second (and burst) per client address for requests without a valid
    /// token.
    pub anonymous_rate_per_s: f64,
    pub anonymous_burst: f64,
    /// Cells resting on fewer records are withheld from roles below analyst.
    pub small_cell_min: f64,
    per_token: OnceLock<DefaultKeyedRateLimiter<String>>,
    per_address: OnceLock<DefaultKeyedRateLimiter<String>>,
    audit: Mutex<Option<mpsc::SyncSender<AuditMessage>>>,
    audit_dropped: AtomicU64,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth {
            tokens: Vec::new(),
            rate_per_s: 50.0,
            burst: 200.0,
            anonymous_rate_per_s: 5.0,
            anonymous_burst: 20.0,
            small_cell_min: analytics::SMALL_CELL_FLOOR,
            per_token: OnceLock::new(),
            per_address: OnceLock::new(),
            audit: Mutex::new(None),
            audit_dropped: AtomicU64::new(0),
        }
    }
}

fn limiter(rate_per_s: f64, burst: f64) -> DefaultKeyedRateLimiter<String> {
    let per_s = NonZeroU32::new(rate_per_s.round().clamp(1.0, 1e6) as u32).expect("clamped");
    let burst = NonZeroU32::new(burst.round().clamp(1.0, 1e6) as u32).expect("clamped");
    RateLimiter::keyed(Quota::per_second(per_s).allow_burst(burst))
}

impl Auth {
    /// Adds a token; secrets are at least 16 characters of letters, digits, `-` or `_`.
    pub fn add(&mut self, secret: &str, principal: Principal) -> Result<(), TokenError> {
        if secret.len() < 16
            || !secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TokenError::WeakSecret(principal.name));
        }
        if !matches!(
            indicators::region_level(&principal.scope),
            Ok(level) if level != indicators::Level::Grid
        ) {
            return Err(TokenError::BadScope {
                name: principal.name,
                scope: principal.scope,
            });
        }
        let org_ok = match (&principal.org, principal.role) {
            (Some(org), Role::Department) => org.split_once('/').is_some_and(|(code, name)| {
                code == principal.scope
                    && !name.trim().is_empty()
                    && name.chars().count() <= 64
                    && !name.chars().any(|c| c.is_control() || c == '/')
            }),
            (None, Role::Department) | (Some(_), _) => false,
            (None, _) => true,
        };
        if !org_ok {
            return Err(TokenError::BadOrg {
                name: principal.name,
                org: principal.org,
            });
        }
        if self.lookup(secret.as_bytes()).is_some() {
            return Err(TokenError::Duplicate(principal.name));
        }
        self.tokens.push((secret.as_bytes().to_vec(), principal));
        Ok(())
    }

    /// Writes the audit log (JSON lines: who, what, when, status, rows) to `path`, appending,
    /// from a thread of its own.
    pub fn audit_to(&mut self, path: &std::path::Path) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let (tx, rx) = mpsc::sync_channel::<AuditMessage>(AUDIT_QUEUE);
        std::thread::Builder::new()
            .name("databrain-audit".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::new(file);
                // Drain what is queued, then flush: lines reach the file promptly without a
                // write per line.
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(message) = next.take() {
                        match message {
                            AuditMessage::Line(line) => {
                                if let Err(e) = writeln!(out, "{line}") {
                                    tracing::error!(error = %e, "cannot write the audit log");
                                }
                            }
                            AuditMessage::Flush(done) => {
                                let _ = out.flush();
                                let _ = done.send(());
                            }
                        }
                        next = rx.try_recv().ok();
                    }
                    let _ = out.flush();
                }
            })?;
        *self.audit.get_mut().expect("audit lock") = Some(tx);
        Ok(())
    }

    /// Waits until every audit line queued so far is in the file.
    pub fn flush_audit(&self) {
        let sender = self.audit.lock().expect("audit lock").clone();
        if let Some(tx) = sender {
            let (done, wait) = mpsc::channel();
            if tx.send(AuditMessage::Flush(done)).is_ok() {
                let _ = wait.recv_timeout(std::time::Duration::from_secs(5));
            }
        }
    }

    /// Audit lines dropped because the writer fell behind.
    pub fn audit_dropped(&self) -> u64 {
        self.audit_dropped.load(Ordering::Relaxed)
    }

    /// The holder of `secret`, compared in constant time with every known token.
    fn lookup(&self, secret: &[u8]) -> Option<&Principal> {
        let mut found = None;
        for (known, principal) in &self.tokens {
            // `ct_eq` on slices of different lengths is false without looking at the bytes;
            // the loop visits every token whatever matched.
            if bool::from(known.as_slice().ct_eq(secret)) {
                found = Some(principal);
            }
        }
        found
    }

    pub fn principal(&self, secret: &str) -> Option<&Principal> {
        self.lookup(secret.as_bytes())
    }

    /// Takes one request from the token holder's allowance.
    fn allow_token(&self, who: &Principal) -> bool {
        self.per_token
            .get_or_init(|| limiter(self.rate_per_s, self.burst))
            .check_key(&who.name)
            .is_ok()
    }

    /// Takes one request from a client address's allowance for requests without a valid
    /// token.
    fn allow_anonymous(&self, address: &str) -> bool {
        let limiter = self
            .per_address
            .get_or_init(|| limiter(self.anonymous_rate_per_s, self.anonymous_burst));
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        limiter.check_key(&address.to_owned()).is_ok()
    }

    /// An audit line for what the server did by its own rules (no request behind it), such as
    /// escalating an overdue task.
    pub fn record_system(&self, what: &str, detail: serde_json::Value) {
        self.record(serde_json::json!({
            "when": chrono::Local::now().to_rfc3339(),
            "who": "system",
            "role": "system",
            "what": bounded(what),
            "detail": detail,
        }));
    }

    fn record(&self, entry: serde_json::Value) {
        let sender = self.audit.lock().expect("audit lock").clone();
        if let Some(tx) = sender
            && tx.try_send(AuditMessage::Line(entry.to_string())).is_err()
        {
            self.audit_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How many rows a response carried, for the audit log (set by routes as an extension).
#[derive(Clone, Copy, Debug)]
pub struct AuditRows(pub usize);

/// What a write did (its counts), for the audit log (set by routes as an extension).
#[derive(Clone, Debug)]
pub struct AuditDetail(pub serde_json::Value);

/// The caller of a private route, as the guard found them: handlers take it as an argument,
/// so a route cannot forget who is asking.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// What `analytics` answers this caller with: their scope, and small cells withheld
    /// below analyst.
    pub fn audience(&self, state: &AppState) -> analytics::Audience {
        let small_cells = if self.0.role.sees_small_cells() {
            analytics::SmallCells::Shown
        } else {
            analytics::SmallCells::Withheld {
                floor: state.auth.small_cell_min,
            }
        };
        analytics::Audience::new(&self.0.scope, small_cells)
            .expect("scopes are checked when tokens are added")
    }

    /// Refuses a scene outside the caller's scope.
    pub fn may_see_scene(&self, state: &AppState, scene: &scenes::Scene) -> Result<(), AppError> {
        match &scene.region {
            Some(region) if !self.audience(state).covers(region) => Err(AppError::Forbidden {
                reason: "scope".into(),
                message: format!(
                    "scene {} covers {region}, outside your scope {}",
                    scene.id, self.0.scope
                ),
            }),
            // A scene without a region shows no indicator: anyone may see it.
            _ => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, AppError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| AppError::Unauthorized {
                reason: "missing_token".into(),
                message: "this route needs a token: Authorization: Bearer TOKEN (or ?token=)"
                    .into(),
            })
    }
}

/// Whether a request carries a token at all (in the header or, by its decoded name, in the
/// query), valid or not: such a request goes through the guard.
pub fn carries_token(request: &Request) -> bool {
    request
        .headers()
        .contains_key(axum::http::header::AUTHORIZATION)
        || form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .any(|(k, _)| k == "token")
}

/// The token of a request and its URI without any `token` parameter (re-encoded from the
/// decoded pairs), or why the request is refused.
fn take_token(request: &Request) -> Result<(Option<String>, String), AppError> {
    let uri = request.uri();
    let mut tokens: Vec<String> = Vec::new();
    let mut kept = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k == "token" {
            tokens.push(v.into_owned());
        } else {
            kept.append_pair(&k, &v);
            any = true;
        }
    }
    let header = match request
        .headers()
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .count()
    {
        0 => None,
        1 => {
            let value = request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Some(token.trim().to_owned())
                }
                _ => {
                    return Err(AppError::Unauthorized {
                        reason: "invalid_token".into(),
                        message: "the Authorization header must be `Bearer TOKEN`".into(),
                    });
                }
            }
        }
        _ => {
            return Err(AppError::Unauthorized {
                reason: "invalid_token".into(),
                message: "more than one Authorization header".into(),
            });
        }
    };
    tokens.extend(header);
    tokens.dedup();
    if tokens.len() > 1 {
        return Err(AppError::Unauthorized {
            reason: "invalid_token".into(),
            message: "the request carries more than one token".into(),
        });
    }
    let path = uri.path();
    let rest = if any {
        format!("{path}?{}", kept.finish())
    } else {
        path.to_owned()
    };
    Ok((tokens.pop(), rest))
}

/// A request target cut to a bounded length for the audit log.
fn bounded(what: &str) -> String {
    if what.len() <= MAX_AUDIT_WHAT {
        return what.to_owned();
    }
    let mut end = MAX_AUDIT_WHAT;
    while !what.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &what[..end])
}

/// The guard of the private router: token, rate limits, then the route, then one audit line.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = chrono::Local::now();
    let method = request.method().to_string();
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let taken = take_token(&request);
    let what = match &taken {
        Ok((_, rest)) => rest.clone(),
        Err(_) => request.uri().path().to_owned(),
    };
    let principal = match &taken {
        Ok((Some(t), _)) => state.auth.principal(t).cloned(),
        _ => None,
    };
    let outcome: Result<Principal, AppError> = match (taken, principal) {
        (Ok(_), Some(p)) => {
            if state.auth.allow_token(&p) {
                Ok(p)
            } else {
                Err(AppError::RateLimited(format!(
                    "more than {} requests per second (burst {}) for {}",
                    state.auth.rate_per_s, state.auth.burst, p.name
                )))
            }
        }
        (refused, _) => {
            if !state.auth.allow_anonymous(&address) {
                Err(AppError::RateLimited(format!(
                    "more than {} requests per second without a valid token from this address",
                    state.auth.anonymous_rate_per_s
                )))
            } else {
                Err(match refused {
                    Err(e) => e,
                    Ok((None, _)) => AppError::Unauthorized {
                        reason: "missing_token".into(),
                        message:
                            "this route needs a token: Authorization: Bearer TOKEN (or ?token=)"
                                .into(),
                    },
                    Ok((Some(_), _)) => AppError::Unauthorized {
                        reason: "invalid_token".into(),
                        message: "the token is not known to this server".into(),
                    },
                })
            }
        }
    };
    let (response, who) = match outcome {
        Ok(p) => {
            match what.parse() {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => {
                    return AppError::bad("query", "the request target cannot be re-encoded")
                        .into_response();
                }
            }
            request
                .headers_mut()
                .remove(axum::http::header::AUTHORIZATION);
            request.extensions_mut().insert(p.clone());
            (next.run(request).await, Some(p))
        }
        Err(e) => (e.into_response(), None),
    };
    state.auth.record(serde_json::json!({
        "when": started.to_rfc3339(),
        "who": who.as_ref().map(|p| p.name.as_str()),
        "role": who.as_ref().map(|p| p.role.as_str()),
        "from": address,
        "what": bounded(&format!("{method} {what}")),
        "status": response.status().as_u16(),
        "rows": response.extensions().get::<AuditRows>().map(|r| r.0),
        "detail": response.extensions().get::<AuditDetail>().map(|d| d.0.clone()),
    }));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        Request::get(uri).body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn tokens_leave_the_query_whatever_its_encoding() {
        for uri in [
            "/api/alerts?level=county&token=abc&region=32",
            "/api/alerts?level=county&to%6Ben=abc&region=32",
            "/api/alerts?level=county&%74%6F%6B%65%6E=abc&region=32",
            "/api/alerts?token=abc&level=county&region=32&token=abc",
        ] {
            let (token, rest) = take_token(&request(uri)).unwrap();
            assert_eq!(token.as_deref(), Some("abc"), "{uri}");
            assert_eq!(rest, "/api/alerts?level=county&region=32", "{uri}");
            assert!(!rest.contains("abc"));
        }
        let (_, rest) = take_token(&request("/x?region=32%2001&a=%E6%B1%9F")).unwrap();
        assert_eq!(rest, "/x?region=32+01&a=%E6%B1%9F");
    }

    #[test]
    fn two_different_tokens_are_refused() {
        assert!(take_token(&request("/x?token=a&to%6Ben=b")).is_err());
        let mut r = request("/x?token=a");
        r.headers_mut()
            .insert("authorization", "Bearer b".parse().unwrap());
        assert!(take_token(&r).is_err());
        let mut r = request("/x");
        r.headers_mut()
            .insert("authorization", "bearer b".parse().unwrap());
        assert_eq!(take_token(&r).unwrap().0.as_deref(), Some("b"));
    }

    #[test]
    fn secrets_and_scopes_are_checked() {
        let mut auth = Auth::default();
        let p = |scope: &str| Principal {
            name: "x".into(),
            role: Role::Viewer,
            scope: scope.into(),
            org: None,
        };
        assert!(auth.add("short", p("32")).is_err());
        assert!(auth.add("0123456789abcdef", p("nanjing")).is_err());
        assert!(auth.add("0123456789abcdef", p("320")).is_err());
        assert!(auth.add("0123456789abcdef", p("3201")).is_ok());
        assert!(
            auth.add("0123456789abcdef", p("3202")).is_err(),
            "duplicate"
        );
        assert_eq!(auth.principal("0123456789abcdef").unwrap().scope, "3201");
        assert!(auth.principal("0123456789abcdeg").is_none());
        assert!(auth.principal("0123456789abcde").is_none());
    }

    #[test]
    fn audit_targets_are_bounded() {
        let long = "a".repeat(10_000);
        assert!(bounded(&long).len() <= MAX_AUDIT_WHAT + 4);
        assert_eq!(bounded("GET /x"), "GET /x");
    }
}
