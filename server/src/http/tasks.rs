//! `/api/tasks`: supervised tasks (督办) from alerts, their events, their evaluation, and the
//! server's own supervision rules.
//!
//! A leader turns an alert into a task (`POST /api/tasks`): the server finds the alert among
//! those the leader sees and keeps its figures, so a task cannot be raised on numbers the
//! leader was not shown. Every later event (`POST /api/tasks/{id}/events`) is made by the
//! caller as an actor of their role, checked by `workflow` against the task as its stored
//! events leave it, and written through the engine's writer; the audit log gets the task,
//! the action and, when refused, the rule. A `verify` carries the evaluation computed at that
//! moment for the supervisor's audience, so "effective" cannot rest on too few records.
//!
//! Who sees tasks: leaders, supervisors, analysts and admins those of their scope; a
//! department only its own. A task outside the caller's sight answers 404, like one that
//! does not exist. The alert figures a task keeps are shown only where the caller may see
//! that cell (`analytics::Engine::figures_withheld`).
//!
//! [`sweep`] is supervision by rule: each open task past its deadline gets its yellow, then
//! red card, and (with `serve --auto-tasks`) each critical alert without a task becomes one,
//! assigned to the county's government office. The server runs it every
//! [`SWEEP_EVERY`] and after every commit.

use crate::error::AppError;
use crate::http::auth::{AuditDetail, Caller};
use crate::http::events::DataChange;
use crate::http::params;
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use workflow::{Action, Actor, ActorRole, Event, NewTask, Refusal, Rule, Severity, Task};

/// How often supervision runs when nothing is committed.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// Working days a task gets when the leader names none.
pub const DEFAULT_WORKING_DAYS: u32 = 5;
/// Most tasks one list answers with.
pub const MAX_LIST: usize = 1000;

/// The caller as an actor of a task's life, or 403 for roles that play no part in it.
fn actor(caller: &Caller) -> Result<Actor, AppError> {
    let role = caller.0.role.actor_role().ok_or_else(|| {
        AppError::Refused(Refusal {
            rule: Rule::Role,
            message: format!(
                "{} plays no part in supervised tasks (leader, supervisor, department and admin do)",
                caller.0.role.as_str()
            ),
        })
    })?;
    Ok(Actor {
        name: caller.0.name.clone(),
        role,
        scope: caller.0.scope.clone(),
        org: caller.0.org.clone(),
    })
}

fn may_read(caller: &Caller) -> Result<(), AppError> {
    if caller.0.role.reads_tasks() {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            reason: "role".into(),
            message: format!(
                "{} may not read supervised tasks (leader, supervisor, department, analyst and admin may)",
                caller.0.role.as_str()
            ),
        })
    }
}

/// Whether the caller may see `task` at all: in scope, and a department's own.
fn sees(caller: &Caller, task: &Task) -> bool {
    task.raised_by.region_code.starts_with(&caller.0.scope)
        && (caller.0.role != crate::http::auth::Role::Department
            || caller.0.org.as_deref() == Some(task.raised_by.owner_org.as_str()))
}

/// A task as the caller may see it: the figures blanked where withheld, whether it is late.
fn view(task: &Task, withheld: bool, now: chrono::NaiveDateTime) -> Value {
    let mut v = serde_json::to_value(task).expect("tasks serialise");
    if withheld {
        for key in ["value", "threshold", "support"] {
            v[key] = Value::Null;
        }
    }
    v["figures_withheld"] = json!(withheld);
    v["overdue"] = json!(task.overdue(now));
    v
}

fn published(state: &AppState, w: &analytics::TaskWrite) {
    state.live.publish(DataChange {
        ingest_id: w.ingest_id,
        table: "task_outcomes".into(),
        rows_changed: 1,
        at: chrono::Local::now().to_rfc3339(),
    });
}

fn audited(mut response: Response, detail: Value) -> Response {
    response.extensions_mut().insert(AuditDetail(detail));
    response
}

/// What a task raised on `alert` keeps (its figures as they were), for `owner_org` within
/// `working_days`.
pub fn raised_by(alert: &analytics::Alert, owner_org: String, working_days: u32) -> NewTask {
    NewTask {
        region_code: alert.region_code.clone(),
        indicator: alert.indicator.clone(),
        grain: alert.grain.as_str().to_owned(),
        period: alert.period.clone(),
        value: alert.value,
        threshold: alert.threshold,
        support: alert.support.is_finite().then_some(alert.support),
        severity: if alert.severity == indicators::Status::Critical {
            Severity::Critical
        } else {
            Severity::Warning
        },
        owner_org,
        working_days,
    }
}

/// Supervised tasks of the caller's scope (a department: its own), late and carded first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks",
    params(
        ("region" = Option<String>, Query, description = "a division code in scope (default the scope)"),
        ("state" = Option<String>, Query, description = "only tasks in this state (assigned, accepted, in_progress, returned, resolved, verified, reopened, closed)"),
        ("owner_org" = Option<String>, Query, description = "only tasks of this organisation"),
        ("overdue" = Option<bool>, Query, description = "only tasks past their deadline (true) or not (false)"),
        ("limit" = Option<u32>, Query, description = "at most this many tasks (default and most 1000); counts cover all"),
    ),
    responses(
        (status = 200, description = "the clock, counts by state, and the tasks", body = Value),
        (status = 400, description = "a bad parameter", body = crate::error::ErrorBody),
        (status = 403, description = "a role that does not read tasks, or a region outside the scope", body = crate::error::ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params::Params(params): params::Params,
) -> Result<Json<Value>, AppError> {
    params::only_known(
        &params,
        &["region", "state", "owner_org", "overdue", "limit"],
    )?;
    may_read(&caller)?;
    let audience = caller.audience(&state);
    let region = audience
        .region(params::region(&params)?.as_deref(), "region")?
        .unwrap_or_else(|| "32".into());
    let only_state = match params.get("state") {
        None => None,
        Some(s) => Some(
            workflow::State::ALL
                .into_iter()
                .find(|x| x.as_str() == s)
                .ok_or_else(|| {
                    AppError::bad(
                        "state",
                        format!(
                            "{s:?} is not one of {}",
                            workflow::State::ALL.map(|x| x.as_str()).join(", ")
                        ),
                    )
                })?,
        ),
    };
    let overdue = match params.get("overdue").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(AppError::bad(
                "overdue",
                format!("{other:?} is not true or false"),
            ));
        }
    };
    let limit = params::number(&params, "limit", MAX_LIST as f64, 1.0..=MAX_LIST as f64)? as usize;
    let owner_org = params.get("owner_org").cloned();
    let small_cells = caller.0.role.sees_small_cells();
    let engine = state.engine.clone();
    let clock = state.clock;
    crate::http::blocking(move || {
        let now = clock.now(&engine)?;
        let mut tasks: Vec<Task> = engine
            .tasks(Some(&region))?
            .into_iter()
            .filter(|t| sees(&caller, t))
            .filter(|t| {
                owner_org
                    .as_ref()
                    .is_none_or(|o| *o == t.raised_by.owner_org)
            })
            .collect();
        let mut counts: BTreeMap<&str, usize> = workflow::State::ALL
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
        for t in &tasks {
            *counts.entry(t.state.as_str()).or_default() += 1;
        }
        let late = tasks.iter().filter(|t| t.overdue(now)).count();
        let yellow = tasks
            .iter()
            .filter(|t| t.card == workflow::Card::Yellow)
            .count();
        let red = tasks
            .iter()
            .filter(|t| t.card == workflow::Card::Red)
            .count();
        tasks.retain(|t| {
            only_state.is_none_or(|s| t.state == s) && overdue.is_none_or(|o| t.overdue(now) == o)
        });
        // Late and carded first, then by deadline.
        tasks.sort_by(|a, b| {
            b.card
                .cmp(&a.card)
                .then(b.overdue(now).cmp(&a.overdue(now)))
                .then(a.state.open().cmp(&b.state.open()).reverse())
                .then(a.deadline_at.cmp(&b.deadline_at))
                .then(a.id.cmp(&b.id))
        });
        let matched = tasks.len();
        tasks.truncate(limit);
        let withheld = if small_cells {
            vec![false; tasks.len()]
        } else {
            engine.figures_withheld(&audience, &tasks)?
        };
        let views: Vec<Value> = tasks
            .iter()
            .zip(withheld)
            .map(|(t, w)| view(t, w, now))
            .collect();
        Ok(Json(json!({
            "caller": {
                "name": caller.0.name,
                "role": caller.0.role.as_str(),
                "scope": caller.0.scope,
                "org": caller.0.org,
            },
            "now": now,
            "counts": counts,
            "overdue": late,
            "cards": { "yellow": yellow, "red": red },
            "matched": matched,
            "tasks": views,
        })))
    })
    .await
}

/// A new task from an alert.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTaskBody {
    /// The alert's indicator.
    pub indicator: String,
    /// The alert's region (county or finer).
    pub region: String,
    /// The alert's period (default: the latest the alerts check).
    pub period: Option<String>,
    /// The alert's grain (default: the alerts' own).
    pub grain: Option<String>,
    /// `<division code>/<name>` of an organisation covering the region (default: the
    /// county's government office).
    pub owner_org: Option<String>,
    /// Working days to resolve it (default 5, at most 60).
    pub working_days: Option<u32>,
    /// Why, for the record.
    pub note: Option<String>,
}

fn decode<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::bad("body", format!("{e}")))
}

/// Turns an alert the caller sees into a supervised task.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks",
    request_body(content = NewTaskBody, content_type = "application/json"),
    responses(
        (status = 201, description = "the task", body = Value),
        (status = 400, description = "a bad body or parameter", body = crate::error::ErrorBody),
        (status = 403, description = "not a leader (or admin), or outside the scope", body = crate::error::ErrorBody),
        (status = 409, description = "an open task exists for this alert", body = crate::error::ErrorBody),
        (status = 422, description = "no such alert, or a bad deadline or organisation", body = crate::error::ErrorBody),
    ))]
pub async fn create(State(state): State<AppState>, caller: Caller, body: Bytes) -> Response {
    let result = async {
        let body: NewTaskBody = decode(&body)?;
        let actor = actor(&caller)?;
        if !matches!(actor.role, ActorRole::Leader | ActorRole::Admin) {
            return Err(AppError::Refused(Refusal {
                rule: Rule::Role,
                message: "assign is for leader, admin (and the server's rules)".into(),
            }));
        }
        let level = indicators::region_level(&body.region)
            .map_err(|e| AppError::bad("region", e.to_string()))?;
        if level.code_len().is_some_and(|n| n < 6) {
            return Err(AppError::bad(
                "region",
                format!(
                    "{} is a {level}: tasks go to the organisation of a county or finer region",
                    body.region
                ),
            ));
        }
        let grain = match (&body.grain, &body.period) {
            (Some(g), _) => Some(
                g.parse::<indicators::Grain>()
                    .map_err(|e| AppError::bad("grain", e.to_string()))?,
            ),
            // A period's label says its grain (2025, 2025-Q4, 2025-11, 2025-W45, 2025-11-03).
            (None, Some(p)) => Some(
                indicators::Grain::ALL
                    .into_iter()
                    .find(|g| indicators::Period::parse(*g, p).is_ok())
                    .ok_or_else(|| AppError::bad("period", format!("{p:?} is not a period")))?,
            ),
            (None, None) => None,
        };
        let audience = caller.audience(&state);
        audience.region(Some(&body.region), "region")?;
        let engine = state.engine.clone();
        let clock = state.clock;
        let w = crate::http::blocking(move || {
            let alerts = engine.alerts(
                &audience,
                &analytics::AlertQuery {
                    level,
                    grain,
                    period: body.period.clone(),
                    region: Some(body.region.clone()),
                    indicator: Some(body.indicator.clone()),
                    ..analytics::AlertQuery::default()
                },
            )?;
            let Some(alert) = alerts.into_iter().find(|a| a.region_code == body.region) else {
                return Err(AppError::Refused(Refusal {
                    rule: Rule::Evidence,
                    message: format!(
                        "you see no alert on {} in {}{}: a task is raised on an alert",
                        body.indicator,
                        body.region,
                        body.period
                            .as_deref()
                            .map(|p| format!(" for {p}"))
                            .unwrap_or_default()
                    ),
                }));
            };
            if let Some(open) = engine
                .tasks(Some(&alert.region_code))?
                .into_iter()
                .find(|t| {
                    t.raised_by.indicator == alert.indicator
                        && t.raised_by.region_code == alert.region_code
                        && t.raised_by.period == alert.period
                        && t.state != workflow::State::Closed
                })
            {
                return Err(AppError::Conflict {
                    reason: "duplicate".into(),
                    message: format!(
                        "task {} is already open for this alert ({} in {} for {})",
                        open.id, alert.indicator, alert.region_code, alert.period
                    ),
                });
            }
            let new = raised_by(
                &alert,
                body.owner_org
                    .clone()
                    .unwrap_or_else(|| workflow::default_owner(&alert.region_code)),
                body.working_days.unwrap_or(DEFAULT_WORKING_DAYS),
            );
            let note = body.note.clone().unwrap_or_default();
            let e2 = engine.clone();
            Ok(engine.task_event(None, move |_| {
                Ok(Event {
                    action: Action::Assign(new),
                    actor,
                    at: clock.now(&e2)?,
                    note,
                })
            })?)
        })
        .await?;
        published(&state, &w);
        let now = w.task.last_at;
        Ok((w.task.id.clone(), view(&w.task, false, now)))
    }
    .await;
    match result {
        Ok((id, task)) => audited(
            (StatusCode::CREATED, Json(task)).into_response(),
            json!({"task": id, "action": "assign"}),
        ),
        Err(e) => refused(e, None, "assign"),
    }
}

fn refused(e: AppError, id: Option<&str>, action: &str) -> Response {
    let rule = match &e {
        AppError::Refused(r) => Some(r.rule.as_str()),
        _ => None,
    };
    audited(
        e.into_response(),
        json!({"task": id, "action": action, "refused": rule}),
    )
}

/// One event of a task's life, as a caller sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventBody {
    /// accept, start, return, reassign, ask_extension, grant_extension, refuse_extension,
    /// resolve, verify, reopen or close.
    pub action: String,
    /// Why (or, for resolve, what was done); required for return, reassign, ask_extension,
    /// refuse_extension, resolve and reopen.
    pub note: Option<String>,
    /// For reassign and reopen (default 5), and ask_extension (required).
    pub working_days: Option<u32>,
    /// For reassign (required).
    pub owner_org: Option<String>,
    /// For verify: whether the action worked (needs an evaluation that shows it).
    pub effective: Option<bool>,
}

/// The action a body asks for (its outcome filled in later for verify), refusing fields the
/// action does not take.
fn action_of(body: &EventBody) -> Result<Action, AppError> {
    let extra = |fields: &[(&str, bool)]| -> Result<(), AppError> {
        match fields.iter().find(|(_, present)| *present) {
            Some((name, _)) => Err(AppError::bad(
                name,
                format!("{} takes no {name}", body.action),
            )),
            None => Ok(()),
        }
    };
    let days = body.working_days.is_some();
    let org = body.owner_org.is_some();
    let eff = body.effective.is_some();
    Ok(match body.action.as_str() {
        simple @ ("accept" | "start" | "return" | "grant_extension" | "refuse_extension"
        | "resolve" | "close") => {
            extra(&[
                ("working_days", days),
                ("owner_org", org),
                ("effective", eff),
            ])?;
            match simple {
                "accept" => Action::Accept,
                "start" => Action::Start,
                "return" => Action::Return,
                "grant_extension" => Action::GrantExtension,
                "refuse_extension" => Action::RefuseExtension,
                "resolve" => Action::Resolve,
                _ => Action::Close,
            }
        }
        "reassign" => {
            extra(&[("effective", eff)])?;
            Action::Reassign {
                owner_org: body
                    .owner_org
                    .clone()
                    .ok_or_else(|| AppError::bad("owner_org", "reassign names the new owner"))?,
                working_days: body.working_days.unwrap_or(DEFAULT_WORKING_DAYS),
            }
        }
        "ask_extension" => {
            extra(&[("owner_org", org), ("effective", eff)])?;
            Action::AskExtension {
                working_days: body.working_days.ok_or_else(|| {
                    AppError::bad("working_days", "ask_extension says how many working days")
                })?,
            }
        }
        "verify" => {
            extra(&[("working_days", days), ("owner_org", org)])?;
            Action::Verify {
                effective: body.effective.unwrap_or(false),
                outcome: workflow::Outcome::Pending,
            }
        }
        "reopen" => {
            extra(&[("owner_org", org), ("effective", eff)])?;
            Action::Reopen {
                working_days: body.working_days.unwrap_or(DEFAULT_WORKING_DAYS),
            }
        }
        "assign" => {
            return Err(AppError::bad(
                "action",
                "a task is assigned with POST /api/tasks, from an alert",
            ));
        }
        "escalate" => {
            return Err(AppError::Refused(Refusal {
                rule: Rule::Role,
                message: "escalate is for the server's supervision rules only".into(),
            }));
        }
        other => {
            return Err(AppError::bad(
                "action",
                format!(
                    "{other:?} is not one of accept, start, return, reassign, ask_extension, grant_extension, refuse_extension, resolve, verify, reopen, close"
                ),
            ));
        }
    })
}

/// Makes one event of a task's life as the caller.
#[utoipa::path(post, path = "/api/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path, description = "the task")),
    request_body(content = EventBody, content_type = "application/json"),
    responses(
        (status = 200, description = "the task after the event", body = Value),
        (status = 400, description = "a bad body", body = crate::error::ErrorBody),
        (status = 403, description = "the role, scope or organisation may not (rule named)", body = crate::error::ErrorBody),
        (status = 404, description = "no such task in the caller's sight", body = crate::error::ErrorBody),
        (status = 409, description = "the task's state does not allow it (rule named)", body = crate::error::ErrorBody),
        (status = 422, description = "the event lacks what it must carry (rule named)", body = crate::error::ErrorBody),
    ))]
pub async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let mut action_name = String::from("?");
    let result = async {
        let body: EventBody = decode(&body)?;
        action_name = body.action.clone();
        let action = action_of(&body)?;
        let actor = actor(&caller)?;
        let audience = caller.audience(&state);
        let engine = state.engine.clone();
        let clock = state.clock;
        let note = body.note.unwrap_or_default();
        let task_id = id.clone();
        let w = crate::http::blocking(move || {
            let e2 = engine.clone();
            let missing = task_id.clone();
            Ok(engine.task_event(Some(&task_id), move |task| {
                let task = task
                    .filter(|t| sees(&caller, t))
                    .ok_or(analytics::AnalyticsError::NoSuchTask(missing))?;
                let action = match action {
                    Action::Verify { effective, .. } => Action::Verify {
                        effective,
                        outcome: e2.evaluate(&audience, task)?.outcome,
                    },
                    other => other,
                };
                Ok(Event {
                    action,
                    actor,
                    at: clock.now(&e2)?,
                    note,
                })
            })?)
        })
        .await?;
        published(&state, &w);
        Ok(w)
    }
    .await;
    match result {
        Ok(w) => audited(
            Json(json!({"seq": w.seq, "task": view(&w.task, false, w.task.last_at)}))
                .into_response(),
            json!({"task": id, "action": action_name, "seq": w.seq}),
        ),
        Err(e) => refused(e, Some(&id), &action_name),
    }
}

/// A task the caller may see, or 404.
async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Task, Vec<analytics::StoredEvent>), AppError> {
    may_read(caller)?;
    let engine = state.engine.clone();
    let owned = id.to_owned();
    let found = crate::http::blocking(move || Ok(engine.task(&owned)?)).await?;
    match found {
        Some((task, events)) if sees(caller, &task) => Ok((task, events)),
        _ => Err(AppError::NotFound(format!("no task {id:?}"))),
    }
}

/// A task, its events in order, and (once resolved) its evaluation.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "the task")),
    responses(
        (status = 200, description = "the task, its events and its evaluation", body = Value),
        (status = 403, description = "a role that does not read tasks", body = crate::error::ErrorBody),
        (status = 404, description = "no such task in the caller's sight", body = crate::error::ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (task, events) = visible(&state, &caller, &id).await?;
    let audience = caller.audience(&state);
    let engine = state.engine.clone();
    let clock = state.clock;
    let small_cells = caller.0.role.sees_small_cells();
    crate::http::blocking(move || {
        let now = clock.now(&engine)?;
        let withheld =
            !small_cells && engine.figures_withheld(&audience, std::slice::from_ref(&task))?[0];
        let evaluation = match task.resolved_at {
            Some(_) => Some(engine.evaluate(&audience, &task)?),
            None => None,
        };
        Ok(Json(json!({
            "now": now,
            "task": view(&task, withheld, now),
            "card_due": task.card_due(now, &engine.calendar()),
            "events": events,
            "evaluation": evaluation,
        })))
    })
    .await
}

/// Whether the action worked: the indicator before and after, and the return visits.
#[utoipa::path(get, path = "/api/tasks/{id}/evaluation", tag = "tasks",
    params(("id" = String, Path, description = "the task")),
    responses(
        (status = 200, description = "the evaluation (pending until the period after the resolution has ended)", body = Value),
        (status = 403, description = "a role that does not read tasks", body = crate::error::ErrorBody),
        (status = 404, description = "no such task in the caller's sight", body = crate::error::ErrorBody),
        (status = 409, description = "the task is not resolved yet", body = crate::error::ErrorBody),
    ))]
pub async fn evaluation(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let (task, _) = visible(&state, &caller, &id).await?;
    if task.resolved_at.is_none() {
        return Err(AppError::Conflict {
            reason: "not_resolved".into(),
            message: format!(
                "task {id} is {}: nothing to evaluate yet",
                task.state.as_str()
            ),
        });
    }
    let audience = caller.audience(&state);
    let engine = state.engine.clone();
    crate::http::blocking(move || Ok(Json(json!(engine.evaluate(&audience, &task)?)))).await
}

/// What one supervision round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub escalated: Vec<(String, workflow::Card)>,
    pub created: Vec<String>,
}

/// Supervision by rule, once (blocking): cards for late tasks, and (with `auto_tasks`) a
/// task for each critical alert that has none. Each event goes to the audit log and is
/// published.
pub fn sweep(state: &AppState, with_alerts: bool) -> Result<Swept, AppError> {
    let engine = &state.engine;
    let now = state.clock.now(engine)?;
    let mut out = Swept::default();
    for w in engine.escalate_overdue(now)? {
        state.auth.record_system(
            &format!("escalate {}", w.task.id),
            json!({"task": w.task.id, "action": "escalate", "card": w.task.card, "seq": w.seq}),
        );
        published(state, &w);
        out.escalated.push((w.task.id.clone(), w.task.card));
    }
    if state.auto_tasks && with_alerts {
        let tasks = engine.tasks(None)?;
        let alerts = engine.alerts(
            &analytics::Audience::trusted(),
            &analytics::AlertQuery::default(),
        )?;
        for a in alerts
            .iter()
            .filter(|a| a.severity == indicators::Status::Critical)
        {
            let exists = tasks.iter().any(|t| {
                t.raised_by.indicator == a.indicator
                    && t.raised_by.region_code == a.region_code
                    && t.raised_by.period == a.period
            });
            if exists || a.region_code.len() < 6 {
                continue;
            }
            let new = raised_by(
                a,
                workflow::default_owner(&a.region_code),
                DEFAULT_WORKING_DAYS,
            );
            let w = engine.task_event(None, |_| {
                Ok(Event {
                    action: Action::Assign(new),
                    actor: Actor::system(),
                    at: now,
                    note: format!("rule: a critical alert gets a task ({})", a.message),
                })
            })?;
            state.auth.record_system(
                &format!("assign {}", w.task.id),
                json!({"task": w.task.id, "action": "assign", "rule": "critical alert"}),
            );
            published(state, &w);
            out.created.push(w.task.id.clone());
        }
    }
    Ok(out)
}

/// Runs [`sweep`] every [`SWEEP_EVERY`] and after every commit, for as long as the server
/// runs; alerts (which take seconds on a large file) are looked at once per
/// [`SWEEP_EVERY`] at most.
pub async fn supervise(state: AppState) {
    let mut changes = state.live.watch();
    let mut alerts_at: Option<std::time::Instant> = None;
    loop {
        let s = state.clone();
        let with_alerts = alerts_at.is_none_or(|t| t.elapsed() >= SWEEP_EVERY);
        if with_alerts {
            alerts_at = Some(std::time::Instant::now());
        }
        match tokio::task::spawn_blocking(move || sweep(&s, with_alerts)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "supervision round failed"),
            Err(e) => tracing::error!(error = %e, "supervision round panicked"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
