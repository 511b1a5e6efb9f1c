//! `/api/events` (server-sent events) and `/ws/events` (the same events as WebSocket text
//! messages `{"type": NAME, "data": ...}`, which the pages use): what changed, pushed as it
//! happens.
//!
//! Every commit the server makes (a load or an append) is published to [`Live`] as a
//! [`DataChange`]. Each subscriber then gets, for its own audience (scope, floor, withheld
//! cells: the alerts come from `analytics` like `/api/alerts`), a `snapshot` event naming the
//! new data snapshot, an `alert` event for each alert that is new or whose value moved (with
//! the region, indicator, value, threshold and a situation shot: the URL of a picture of the
//! region, rendered from the data when it is fetched) and a `cleared` event for each alert
//! that is gone. The first event, `hello`, carries the current snapshot and alerts, so a page
//! starts in step. Subscribers that fall behind skip to the newest snapshot: changes are a
//! `watch`, never a queue.

use crate::error::AppError;
use crate::http::auth::Caller;
use crate::http::params;
use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One server-sent event as the OpenAPI description gives it (documentation only).
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "describes the event stream in the OpenAPI document"
)]
pub struct StreamEvent {
    /// `hello`, `snapshot`, `alert`, `cleared` or `problem`.
    event: String,
    /// The event's JSON object, as text.
    data: String,
}

/// A commit made visible: what the pushes and the streamed views follow.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DataChange {
    pub ingest_id: i64,
    pub table: String,
    pub rows_changed: u64,
    /// When the server committed it (RFC 3339).
    pub at: String,
}

/// The newest commit, for everyone who follows the data.
pub struct Live {
    latest: tokio::sync::watch::Sender<Option<DataChange>>,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            latest: tokio::sync::watch::Sender::new(None),
        }
    }
}

impl Live {
    pub fn publish(&self, change: DataChange) {
        self.latest.send_replace(Some(change));
    }

    /// A receiver that wakes at every commit after now.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Option<DataChange>> {
        self.latest.subscribe()
    }
}

/// Event streams open at once, over all callers; and per caller.
const STREAMS_AT_ONCE: usize = 512;
const STREAMS_PER_CALLER: usize = 8;
static STREAMS: AtomicUsize = AtomicUsize::new(0);
static PER_CALLER: std::sync::Mutex<BTreeMap<String, usize>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Held by an open stream; frees its places when the stream ends.
struct Open {
    caller: String,
}

impl Open {
    fn take(caller: &str) -> Result<Open, AppError> {
        let mut per = PER_CALLER.lock().expect("stream count lock");
        let mine = per.entry(caller.to_owned()).or_default();
        if *mine >= STREAMS_PER_CALLER {
            return Err(AppError::RateLimited(format!(
                "{caller} has {STREAMS_PER_CALLER} event streams open already"
            )));
        }
        if STREAMS.fetch_add(1, Ordering::SeqCst) >= STREAMS_AT_ONCE {
            STREAMS.fetch_sub(1, Ordering::SeqCst);
            return Err(AppError::Unavailable(format!(
                "{STREAMS_AT_ONCE} event streams are open; try again later"
            )));
        }
        *mine += 1;
        Ok(Open {
            caller: caller.to_owned(),
        })
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        STREAMS.fetch_sub(1, Ordering::SeqCst);
        let mut per = PER_CALLER.lock().expect("stream count lock");
        if let Some(n) = per.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&self.caller);
            }
        }
    }
}

/// What tells two alerts apart.
fn alert_key(a: &analytics::Alert) -> String {
    format!(
        "{}|{}|{:?}|{}|{}",
        a.indicator, a.region_code, a.kind, a.grain, a.period
    )
}

/// The URL of a situation shot of `region`: the picture of the narrowest scene in the
/// caller's scope that shows it.
fn shot(state: &AppState, caller: &Caller, region: &str) -> Option<String> {
    state
        .scenes
        .iter()
        .filter(|s| s.binding.is_some() && caller.may_see_scene(state, s).is_ok())
        .filter(|s| s.region.as_deref().is_some_and(|r| region.starts_with(r)))
        .max_by_key(|s| s.region.as_ref().map_or(0, String::len))
        .map(|s| {
            format!(
                "/api/scenes/{}/snapshot.png?region={region}&width=480&height=270",
                s.id
            )
        })
}

fn alert_json(state: &AppState, caller: &Caller, a: &analytics::Alert) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), alert_key(a).into());
        o.insert("shot".into(), shot(state, caller, &a.region_code).into());
    }
    v
}

async fn current_alerts(
    state: &AppState,
    caller: &Caller,
    q: &analytics::AlertQuery,
) -> Result<Vec<analytics::Alert>, AppError> {
    let audience = caller.audience(state);
    let engine = state.engine.clone();
    let key = format!("alerts {} {q:?}", audience.key());
    let q = q.clone();
    state
        .answers
        .get_or_compute(
            &state.engine,
            key,
            move || Ok(engine.alerts(&audience, &q)?),
        )
        .await
}

struct Follow {
    state: AppState,
    caller: Caller,
    query: analytics::AlertQuery,
    changes: tokio::sync::watch::Receiver<Option<DataChange>>,
    shown: BTreeMap<String, f64>,
    pending: VecDeque<(&'static str, Value)>,
    /// A snapshot was announced whose alerts are not computed yet.
    stale: bool,
    /// The alerts being computed (in a task of their own, so that a new snapshot is
    /// announced while they are).
    computing: Option<tokio::task::JoinHandle<Result<Vec<analytics::Alert>, AppError>>>,
    _open: Open,
}

fn event(name: &'static str, data: &Value) -> (&'static str, Value) {
    (name, data.clone())
}

impl Follow {
    /// The events that take a subscriber from what it was shown to `alerts`.
    fn diff(&mut self, alerts: &[analytics::Alert]) {
        let mut now = BTreeMap::new();
        for a in alerts {
            let key = alert_key(a);
            if self.shown.get(&key) != Some(&a.value) {
                self.pending
                    .push_back(event("alert", &alert_json(&self.state, &self.caller, a)));
            }
            now.insert(key, a.value);
        }
        for (key, _) in self.shown.iter().filter(|(k, _)| !now.contains_key(*k)) {
            self.pending
                .push_back(event("cleared", &json!({ "key": key })));
        }
        self.shown = now;
    }

    /// The next event (name, data), waiting for a commit when none is pending.
    async fn next(&mut self) -> Option<(&'static str, Value)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            // A snapshot is announced at once; its alerts (which take a while on a large
            // database) follow, computed for the newest snapshot when more came meanwhile.
            if self.stale && self.computing.is_none() {
                self.stale = false;
                let (state, caller, query) =
                    (self.state.clone(), self.caller.clone(), self.query.clone());
                self.computing = Some(tokio::spawn(async move {
                    current_alerts(&state, &caller, &query).await
                }));
            }
            let Follow {
                changes, computing, ..
            } = self;
            tokio::select! {
                changed = changes.changed() => {
                    changed.ok()?;
                    let change = changes.borrow_and_update().clone();
                    if let Some(change) = change {
                        self.pending.push_back(event("snapshot", &json!(change)));
                        self.stale = true;
                    }
                }
                done = async { computing.as_mut().expect("a computation").await }, if computing.is_some() => {
                    self.computing = None;
                    match done {
                        Ok(Ok(alerts)) => self.diff(&alerts),
                        Ok(Err(e)) => self
                            .pending
                            .push_back(event("problem", &json!({ "error": e.to_string() }))),
                        Err(e) => self
                            .pending
                            .push_back(event("problem", &json!({ "error": e.to_string() }))),
                    }
                }
            }
        }
    }
}

/// A follower of the data for `caller`: the first event (`hello`) is ready.
async fn follow(
    state: AppState,
    caller: Caller,
    params: &std::collections::HashMap<String, String>,
) -> Result<Follow, AppError> {
    params::only_known(params, &["level", "indicator"])?;
    let defaults = analytics::AlertQuery::default();
    // By default counties, or the scope's own level when it lies below them.
    let own = indicators::region_level(&caller.0.scope).unwrap_or(defaults.level);
    let query = analytics::AlertQuery {
        level: params::level(params, defaults.level.max(own))?,
        indicator: params.get("indicator").cloned(),
        ..defaults
    };
    if let Some(id) = &query.indicator
        && state.catalogue.get(id).is_none()
    {
        return Err(AppError::NotFound(format!("unknown indicator {id:?}")));
    }
    let open = Open::take(&caller.0.name)?;
    let changes = state.live.watch();
    // Refusals (a level above the scope) are answered here, before the stream starts.
    let alerts = current_alerts(&state, &caller, &query).await?;
    let engine = state.engine.clone();
    let snapshot = crate::http::blocking(move || Ok(engine.snapshot().ok())).await?;
    let mut follow = Follow {
        state,
        caller,
        query,
        changes,
        shown: BTreeMap::new(),
        pending: VecDeque::new(),
        stale: false,
        computing: None,
        _open: open,
    };
    let listed: Vec<Value> = alerts
        .iter()
        .map(|a| alert_json(&follow.state, &follow.caller, a))
        .collect();
    follow.shown = alerts.iter().map(|a| (alert_key(a), a.value)).collect();
    follow.pending.push_back(event(
        "hello",
        &json!({ "snapshot": snapshot, "alerts": listed }),
    ));
    Ok(follow)
}

/// Follows the data: a `hello` with the snapshot and the alerts the caller sees, then a
/// `snapshot` event per commit with the `alert` and `cleared` events it brings.
#[utoipa::path(get, path = "/api/events", tag = "live",
    params(
        ("level" = Option<String>, Query, description = "the level alerts are checked at (default county, or the scope's level below it)"),
        ("indicator" = Option<String>, Query, description = "only this indicator's alerts"),
    ),
    responses(
        (status = 200, description = "server-sent events: hello, snapshot, alert, cleared", content_type = "text/event-stream", body = StreamEvent),
        (status = 429, description = "too many streams open for this caller", body = crate::error::ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, AppError> {
    let follow = follow(state, caller, &params).await?;
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let (name, data) = f.next().await?;
        Some((Ok(Event::default().event(name).data(data.to_string())), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The events of `/api/events` over a WebSocket, one text message each:
/// `{"type": "hello" | "snapshot" | "alert" | "cleared", "data": ...}`. What the pages use
/// (a browser's event source keeps a page's load from finishing in tools that wait for it).
#[utoipa::path(get, path = "/ws/events", tag = "live",
    params(
        ("level" = Option<String>, Query, description = "the level alerts are checked at (default county, or the scope's level below it)"),
        ("indicator" = Option<String>, Query, description = "only this indicator's alerts"),
    ),
    responses((status = 101, description = "switching to WebSocket")))]
pub async fn events_ws(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Response, AppError> {
    let ws = params::upgrade(ws)?;
    let mut follow = follow(state, caller, &params).await?;
    Ok(ws.on_upgrade(move |socket| async move {
        use futures_util::{SinkExt, StreamExt};
        let (mut sink, mut incoming) = socket.split();
        // What the browser sends is read apart, so that waiting for it never cuts an event
        // short; it ends the stream when the browser goes.
        let (closed_tx, mut closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            while let Some(Ok(m)) = incoming.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
            let _ = closed_tx.send(());
        });
        loop {
            tokio::select! {
                _ = &mut closed => return,
                next = follow.next() => {
                    let Some((name, data)) = next else { return };
                    let text = json!({ "type": name, "data": data }).to_string();
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }))
}
