//! Supervised tasks (督办) in the database: their events, append-only, and the ledger.
//!
//! `task_events` holds every accepted event (task id, number, time, action, actor, and the
//! event as JSON); nothing is ever updated or deleted there. A task is the fold of its events
//! through `workflow` ([`workflow::Task::replay`]), on every read. A new event is checked
//! under the engine's writer lock against the task as its stored events leave it, so two
//! actors cannot both move a task from the same state; an accepted event is written with
//! the task's row of the ledger (`task_outcomes`, a fact table like any other, so the
//! accountability indicators have levels, periods, targets and alerts) and its cube cells,
//! in one transaction that readers see whole.
//!
//! [`Engine::evaluate`] measures whether the action worked: the indicator that raised the
//! task, on its region, in the period that raised it and in the first period of the same
//! grain that starts after the resolution, each with the interval the alerts use; the
//! region's 12345 satisfaction over the same periods is the feedback.

use crate::alerts::wilson;
use crate::ingest::{quote, record_ingest};
use crate::{AnalyticsError, Audience, Engine, Result};
use chrono::NaiveDateTime;
use duckdb::params;
use indicators::{Direction, Grain, IndicatorQuery, Kind, Period};
use serde::Serialize;
use workflow::{Calendar, Comparison, Event, Outcome, Task};

/// The indicator whose return-visit ratings are the feedback of an evaluation.
pub const FEEDBACK_INDICATOR: &str = "hotline_satisfaction_rate";

/// One stored event: its number in the task (1 for the assignment) and the event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredEvent {
    pub seq: u32,
    #[serde(flatten)]
    pub event: Event,
}

/// What an accepted event did.
#[derive(Clone, Debug, Serialize)]
pub struct TaskWrite {
    pub task: Task,
    pub seq: u32,
    pub ingest_id: i64,
}

/// One side of an evaluation, with the period it covers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    pub period: String,
    #[serde(flatten)]
    pub value: Comparison,
}

/// The indicator (or the feedback) before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measured {
    pub indicator: String,
    pub before: Side,
    /// `None` while the period after the resolution has not ended.
    pub after: Option<Side>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub task_id: String,
    pub region_code: String,
    pub grain: String,
    /// The indicator that raised the task.
    pub indicator: Measured,
    /// The region's 12345 return-visit satisfaction over the same periods (when the
    /// catalogue has it at this grain and level).
    pub feedback: Option<Measured>,
    /// The verdict: the indicator's, except that an improvement with satisfaction worse
    /// beyond its uncertainty is `unchanged` (the numbers moved, the residents did not
    /// notice).
    pub outcome: Outcome,
    /// Records each value must rest on.
    pub min_support: f64,
    pub message: String,
}

fn db(context: &str) -> impl FnOnce(duckdb::Error) -> AnalyticsError + '_ {
    move |source| AnalyticsError::Db {
        context: context.to_owned(),
        source,
    }
}

impl Engine {
    /// The working-day calendar deadlines are counted in.
    pub fn calendar(&self) -> std::sync::Arc<Calendar> {
        self.calendar.read().expect("calendar lock").clone()
    }

    /// Sets the calendar (holidays only ever added: the deadlines of stored events are
    /// counted again with it on every read).
    pub fn set_calendar(&self, calendar: Calendar) {
        *self.calendar.write().expect("calendar lock") = std::sync::Arc::new(calendar);
    }

    /// Appends an event to task `id`, or starts a new task when `id` is `None` (the event
    /// must then be an assignment). `make` builds the event under the writer lock from the
    /// task as its stored events leave it (`None` for a new task), so its time and anything
    /// it rests on (an evaluation) are taken at the moment it is written. Refused events
    /// change nothing ([`AnalyticsError::Refused`] names the rule).
    pub fn task_event(
        &self,
        id: Option<&str>,
        make: impl FnOnce(Option<&Task>) -> Result<Event>,
    ) -> Result<TaskWrite> {
        if !self.mode().writes() {
            return Err(AnalyticsError::Ingest {
                message: "the database was opened read-only".into(),
                path: self.path().to_owned(),
            });
        }
        let calendar = self.calendar();
        let conn = self.fresh_conn()?;
        let _writing = self.writer.lock().expect("writer lock");
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(db("cannot begin"))?;
        let written = (|| -> Result<TaskWrite> {
            let (id, task, event) = match id {
                None => {
                    let n: i64 = conn
                        .query_row("SELECT COUNT(DISTINCT task_id) FROM task_events", [], |r| {
                            r.get(0)
                        })
                        .map_err(db("cannot count tasks"))?;
                    let id = format!("T{:06}", n + 1);
                    let event = make(None)?;
                    let task = Task::start(&id, &event, &calendar)?;
                    (id, task, event)
                }
                Some(id) => {
                    let stored = read_events(&conn, Some(id))?;
                    if stored.is_empty() {
                        return Err(AnalyticsError::NoSuchTask(id.to_owned()));
                    }
                    let task = replay(id, &stored, &calendar)?;
                    let event = make(Some(&task))?;
                    (id.to_owned(), task.apply(&event, &calendar)?, event)
                }
            };
            let event = &event;
            let json = serde_json::to_string(event).expect("events serialise");
            conn.execute(
                "INSERT INTO task_events VALUES (?, ?, ?, ?, ?, ?)",
                params![
                    id,
                    task.events,
                    event.at.to_string(),
                    event.action.name(),
                    event.actor.name,
                    json
                ],
            )
            .map_err(db("cannot append the task event"))?;
            write_ledger_row(&conn, self, &task)?;
            let ingest_id = record_ingest(
                &conn,
                &format!("task_outcomes <- task {id}: {}", event.action.name()),
            )?;
            Ok(TaskWrite {
                seq: task.events,
                task,
                ingest_id,
            })
        })();
        match written {
            Ok(w) => {
                self.commit_visible(&conn, false)?;
                Ok(w)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Supervision by rule at `now`: each open task past its deadline gets the card it has
    /// earned (yellow at the deadline, red later), as an event of the system's. Returns what
    /// was written.
    pub fn escalate_overdue(&self, now: NaiveDateTime) -> Result<Vec<TaskWrite>> {
        let calendar = self.calendar();
        let mut out = Vec::new();
        for t in self.tasks(None)? {
            let due = t.card_due(now, &calendar);
            if due <= t.card {
                continue;
            }
            let deadline = t.deadline_at;
            match self.task_event(Some(&t.id), |_| {
                Ok(Event {
                    action: workflow::Action::Escalate { card: due },
                    actor: workflow::Actor::system(),
                    at: now,
                    note: format!("past its deadline of {deadline}"),
                })
            }) {
                Ok(w) => out.push(w),
                // Another event moved the task meanwhile; the next round looks again.
                Err(AnalyticsError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// A task and its events, or `None` when there is no such task.
    pub fn task(&self, id: &str) -> Result<Option<(Task, Vec<StoredEvent>)>> {
        let calendar = self.calendar();
        self.consistent(|| {
            self.with_conn(|conn| {
                let stored = read_events(conn, Some(id))?;
                if stored.is_empty() {
                    return Ok(None);
                }
                let task = replay(id, &stored, &calendar)?;
                Ok(Some((task, stored.into_iter().map(|(_, e)| e).collect())))
            })
        })
    }

    /// Every task whose region is in the subtree of `within` (all with `None`), by id.
    pub fn tasks(&self, within: Option<&str>) -> Result<Vec<Task>> {
        let calendar = self.calendar();
        let stored = self.consistent(|| self.with_conn(|conn| read_events(conn, None)))?;
        let mut out = Vec::new();
        let mut start = 0;
        while start < stored.len() {
            let id = stored[start].0.clone();
            let end = start + stored[start..].iter().take_while(|(t, _)| *t == id).count();
            let task = replay(&id, &stored[start..end], &calendar)?;
            if within.is_none_or(|w| task.raised_by.region_code.starts_with(w)) {
                out.push(task);
            }
            start = end;
        }
        Ok(out)
    }

    /// The latest time any fact table's data has reached (its largest `recorded_at`): the
    /// "now" of a system that runs on the data's own clock (the demo's simulated feed).
    pub fn data_now(&self) -> Result<Option<NaiveDateTime>> {
        let parts: Vec<String> = indicators::facts::file_tables()
            .filter_map(|t| {
                t.recorded_at
                    .map(|c| format!("SELECT MAX(CAST({c} AS TIMESTAMP)) AS t FROM {}", t.name))
            })
            .collect();
        let sql = format!(
            "SELECT CAST(MAX(t) AS VARCHAR) FROM ({})",
            parts.join(" UNION ALL ")
        );
        self.consistent(|| {
            self.with_conn(|conn| {
                conn.query_row(&sql, [], |r| crate::records::opt_timestamp(r, 0))
                    .map_err(db("cannot read the data's clock"))
            })
        })
    }

    /// For each task, whether the alert figures it keeps (value, threshold, support) rest on
    /// a cell `audience` may not see: the figures were the assigning leader's, and a
    /// narrower audience's pattern of withheld cells may differ.
    pub fn figures_withheld(&self, audience: &Audience, tasks: &[Task]) -> Result<Vec<bool>> {
        self.consistent(|| {
            let mut out = vec![true; tasks.len()];
            let mut groups: std::collections::BTreeMap<(String, String, String), Vec<usize>> =
                Default::default();
            for (i, t) in tasks.iter().enumerate() {
                let r = &t.raised_by;
                if audience.covers(&r.region_code) {
                    groups
                        .entry((r.indicator.clone(), r.grain.clone(), r.period.clone()))
                        .or_default()
                        .push(i);
                }
            }
            for ((indicator, grain, period), members) in groups {
                let (Some(ind), Ok(grain)) = (
                    self.catalogue.get(&indicator).cloned(),
                    grain.parse::<Grain>(),
                ) else {
                    continue;
                };
                let mut by_level: std::collections::BTreeMap<indicators::Level, Vec<usize>> =
                    Default::default();
                for i in members {
                    if let Ok(level) = indicators::region_level(&tasks[i].raised_by.region_code) {
                        by_level.entry(level).or_default().push(i);
                    }
                }
                for (level, members) in by_level {
                    let q = IndicatorQuery {
                        level,
                        grain,
                        from: Some(period.clone()),
                        to: Some(period.clone()),
                        region: audience.scope().map(str::to_owned),
                    };
                    let values = match self.values(audience, &ind, &q) {
                        Ok(v) => v,
                        // A period or level the indicator no longer has: nothing to show.
                        Err(AnalyticsError::Query(_)) => continue,
                        Err(e) => return Err(e),
                    };
                    for i in members {
                        let region = &tasks[i].raised_by.region_code;
                        out[i] = !values.iter().any(|v| {
                            v.region_code == *region && !v.suppressed && v.value.is_some()
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    /// Whether the action on `task` worked, for `audience` (see the module's description).
    pub fn evaluate(&self, audience: &Audience, task: &Task) -> Result<Evaluation> {
        self.consistent(|| self.evaluate_now(audience, task))
    }

    fn evaluate_now(&self, audience: &Audience, task: &Task) -> Result<Evaluation> {
        let raised = &task.raised_by;
        let grain: Grain = raised.grain.parse().map_err(|_| AnalyticsError::Ingest {
            message: format!("task {}: unknown grain {:?}", task.id, raised.grain),
            path: self.path().to_owned(),
        })?;
        let before = Period::parse(grain, &raised.period).map_err(|source| {
            indicators::QueryError::Period {
                parameter: "period",
                source,
            }
        })?;
        let min_support = audience.alert_floor(crate::ALERT_FLOOR);
        let after = task
            .resolved_at
            .map(|at| Period::containing(grain, at.date()).next());
        let measure = |id: &str| -> Result<Option<Measured>> {
            let Some(ind) = self.catalogue.get(id).cloned() else {
                return Err(AnalyticsError::UnknownIndicator(id.to_owned()));
            };
            let level = indicators::region_level(&raised.region_code)
                .map_err(indicators::QueryError::Region)?;
            if !ind.grains.contains(&grain) || !ind.levels.contains(&level) {
                return Ok(None);
            }
            let through = self.recorded_through(&ind)?;
            // The after-period counts once it has ended with data through its last day.
            let after =
                after.filter(|p| through.is_some_and(|t| p.end() <= t + chrono::Days::new(1)));
            let last = after.unwrap_or(before);
            let values = self.values(
                audience,
                &ind,
                &IndicatorQuery {
                    level,
                    grain,
                    from: Some(before.label()),
                    to: Some(last.label()),
                    region: Some(raised.region_code.clone()),
                },
            )?;
            let side = |p: Period| -> Side {
                let label = p.label();
                let v = values
                    .iter()
                    .find(|v| v.period == label && v.region_code == raised.region_code);
                Side {
                    period: label,
                    value: v.map_or(
                        Comparison {
                            value: None,
                            low: None,
                            high: None,
                            support: Some(0.0),
                        },
                        |v| comparison(ind.kind, v),
                    ),
                }
            };
            let b = side(before);
            let a = after.map(side);
            let outcome = workflow::compare(
                &b.value,
                a.as_ref().map(|s| &s.value),
                ind.direction == Direction::HigherIsBetter,
                min_support,
            );
            Ok(Some(Measured {
                indicator: id.to_owned(),
                before: b,
                after: a,
                outcome,
            }))
        };
        let indicator = measure(&raised.indicator)?.ok_or_else(|| AnalyticsError::Ingest {
            message: format!(
                "task {}: indicator {} has no {} values at the level of {}",
                task.id, raised.indicator, raised.grain, raised.region_code
            ),
            path: std::path::PathBuf::from("task_events"),
        })?;
        let feedback = if raised.indicator == FEEDBACK_INDICATOR {
            None
        } else {
            measure(FEEDBACK_INDICATOR)?
        };
        let outcome = match (indicator.outcome, feedback.as_ref().map(|f| f.outcome)) {
            (Outcome::Improved, Some(Outcome::Worse)) => Outcome::Unchanged,
            (o, _) => o,
        };
        let message = match (outcome, &task.resolved_at) {
            (_, None) => "not resolved yet: nothing to evaluate".to_owned(),
            (Outcome::Pending, _) => format!(
                "waiting for {} to end",
                after.map(|p| p.label()).unwrap_or_default()
            ),
            (Outcome::Insufficient, _) => format!(
                "a value rests on fewer than {min_support} records (or is withheld): no verdict"
            ),
            (o, _) => format!(
                "{} from {} to {}{}",
                o.as_str(),
                indicator.before.period,
                indicator
                    .after
                    .as_ref()
                    .map(|s| s.period.as_str())
                    .unwrap_or(""),
                if o != indicator.outcome {
                    " (the indicator improved, satisfaction got worse)"
                } else {
                    ""
                }
            ),
        };
        Ok(Evaluation {
            task_id: task.id.clone(),
            region_code: raised.region_code.clone(),
            grain: raised.grain.clone(),
            indicator,
            feedback,
            outcome,
            min_support,
            message,
        })
    }
}

/// A value and its 95% interval the way the alerts judge it: Wilson for shares, Poisson for
/// counts and rates; sums and means have none.
fn comparison(kind: Kind, v: &crate::IndicatorValue) -> Comparison {
    let support = if v.suppressed { Some(0.0) } else { v.support };
    let Some(value) = v.value.filter(|_| !v.suppressed) else {
        return Comparison {
            value: None,
            low: None,
            high: None,
            support,
        };
    };
    let (low, high) = match (kind, v.denominator) {
        (Kind::Ratio, Some(d)) => {
            let (lo, hi) = wilson(v.numerator, d);
            (Some(lo), Some(hi))
        }
        (Kind::Count | Kind::Rate, _) if v.numerator > 0.0 => {
            let half = 1.96 / v.numerator.sqrt();
            (
                Some(value * (1.0 - half).max(0.0)),
                Some(value * (1.0 + half)),
            )
        }
        _ => (None, None),
    };
    Comparison {
        value: Some(value),
        low,
        high,
        support,
    }
}

type Row = (String, StoredEvent);

fn read_events(conn: &duckdb::Connection, id: Option<&str>) -> Result<Vec<Row>> {
    let sql = "SELECT task_id, seq, event FROM task_events WHERE (? IS NULL OR task_id = ?) \
               ORDER BY task_id, seq";
    let mut stmt = conn.prepare(sql).map_err(db("cannot read task events"))?;
    let rows = stmt
        .query_map(params![id, id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(db("cannot read task events"))?;
    let mut out = Vec::new();
    for row in rows {
        let (task, seq, json) = row.map_err(db("cannot read task events"))?;
        let event: Event = serde_json::from_str(&json).map_err(|e| AnalyticsError::Ingest {
            message: format!("task {task} event {seq} cannot be read: {e}"),
            path: std::path::PathBuf::from("task_events"),
        })?;
        out.push((task, StoredEvent { seq, event }));
    }
    Ok(out)
}

/// The task its stored events make; a stored history that breaks a rule is a corrupt file.
fn replay(id: &str, stored: &[Row], calendar: &Calendar) -> Result<Task> {
    let events: Vec<Event> = stored.iter().map(|(_, s)| s.event.clone()).collect();
    Task::replay(id, &events, calendar).map_err(|(i, refusal)| AnalyticsError::Ingest {
        message: format!(
            "task {id} event {} breaks a rule of the task's life ({refusal}): the stored history is damaged",
            i + 1
        ),
        path: std::path::PathBuf::from("task_events"),
    })
}

/// Rewrites the task's row of the ledger and the cube cells it was and is in.
fn write_ledger_row(conn: &duckdb::Connection, engine: &Engine, task: &Task) -> Result<()> {
    let on_time: Option<i32> = match (task.resolved_on_time, task.card) {
        (Some(on_time), _) => Some(on_time.into()),
        (None, workflow::Card::None) => None,
        (None, _) => Some(0),
    };
    let escalated = match task.card {
        workflow::Card::None => 0,
        workflow::Card::Yellow => 1,
        workflow::Card::Red => 2,
    };
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE task_old AS SELECT * FROM task_outcomes WHERE task_id = ?",
        [&task.id],
    )
    .map_err(db("cannot read the ledger row"))?;
    conn.execute("DELETE FROM task_outcomes WHERE task_id = ?", [&task.id])
        .map_err(db("cannot replace the ledger row"))?;
    let region = &task.raised_by.region_code;
    conn.execute(
        "INSERT INTO task_outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            task.id,
            &region[..region.len().min(6)],
            region,
            task.raised_by.indicator,
            task.raised_by.owner_org,
            task.state.as_str(),
            task.created_at.to_string(),
            task.deadline_at.to_string(),
            task.resolved_at.map(|t| t.to_string()),
            task.closed_at.map(|t| t.to_string()),
            on_time,
            task.reopened,
            escalated,
            task.effective.map(i32::from),
        ],
    )
    .map_err(db("cannot write the ledger row"))?;
    crate::cube::update(
        conn,
        engine,
        "task_outcomes",
        &format!(
            "SELECT * FROM task_old UNION ALL SELECT * FROM task_outcomes WHERE task_id = {}",
            quote(&task.id)
        ),
    )?;
    conn.execute_batch("DROP TABLE task_old")
        .map_err(db("cannot drop a temporary table"))?;
    Ok(())
}
