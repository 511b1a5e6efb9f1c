//! `databrain tasks seed`: supervised tasks played into a database from its own alerts, so
//! the demo starts with the closed loop in every state.
//!
//! For each quarter from 2024-Q2 to the last complete one, the county threshold alerts of
//! the demo district and a few others become tasks, created three days after the quarter
//! ends (on the data's own clock) and taken through one of nine stories: closed, verified,
//! resolved, in progress after an extension, reopened, returned and reassigned, left
//! unaccepted, waiting on an extension request, and returned. Every event goes through the same
//! engine call and rules as the server's; verification uses the evaluation, so a task is
//! effective only where the data shows it. Open tasks past their deadline at the end of the
//! data get their cards. Deterministic: the same database gives the same tasks.

use anyhow::{Context, Result};
use chrono::{Duration, NaiveDateTime};
use std::path::Path;
use workflow::{Action, Actor, ActorRole, Event};

/// Other counties' alerts taken per quarter, besides the demo district's.
const OTHERS_PER_QUARTER: usize = 5;

fn person(name: &str, role: ActorRole, scope: &str, org: Option<String>) -> Actor {
    Actor {
        name: name.into(),
        role,
        scope: scope.into(),
        org,
    }
}

pub(crate) fn seed(db: &Path) -> Result<()> {
    let engine = analytics::Engine::open(db)?;
    if !engine.tasks(None)?.is_empty() {
        println!("{} already has tasks; nothing seeded", db.display());
        return Ok(());
    }
    let everyone = analytics::Audience::trusted();
    let end = engine
        .data_now()?
        .context("the database has no data: run `databrain ingest` first")?;
    let last = indicators::Period::latest_complete(indicators::Grain::Quarter, end.date());
    let mut quarter = indicators::Period::parse(indicators::Grain::Quarter, "2024-Q2")?;
    let mut made = 0usize;
    let mut story = 0usize;
    while quarter <= last {
        let alerts = engine.alerts(
            &everyone,
            &analytics::AlertQuery {
                grain: Some(indicators::Grain::Quarter),
                period: Some(quarter.label()),
                ..analytics::AlertQuery::default()
            },
        )?;
        let threshold = alerts
            .iter()
            .filter(|a| a.kind == analytics::AlertKind::Threshold);
        let demo: Vec<&analytics::Alert> = threshold
            .clone()
            .filter(|a| a.region_code == data_samples::regions::DEMO_DISTRICT)
            .collect();
        let others = threshold
            .filter(|a| a.region_code != data_samples::regions::DEMO_DISTRICT)
            .take(OTHERS_PER_QUARTER);
        let created = quarter.end().and_hms_opt(9, 0, 0).expect("valid time") + Duration::days(3);
        for alert in demo.into_iter().chain(others) {
            if created >= end {
                break;
            }
            play(&engine, &everyone, alert, created, story, end)?;
            story += 1;
            made += 1;
        }
        quarter = quarter.next();
    }
    let cards = engine.escalate_overdue(end)?.len();
    println!(
        "seeded {made} supervised tasks ({cards} cards for overdue ones) into {}",
        db.display()
    );
    Ok(())
}

/// One task through story `story % 9`, its events no later than `end`.
fn play(
    engine: &analytics::Engine,
    everyone: &analytics::Audience,
    alert: &analytics::Alert,
    created: NaiveDateTime,
    story: usize,
    end: NaiveDateTime,
) -> Result<()> {
    let region = &alert.region_code;
    let owner = workflow::default_owner(region);
    let county = &region[..6];
    let leader = person("demo leader", ActorRole::Leader, "32", None);
    let supervisor = person("demo supervisor", ActorRole::Supervisor, "32", None);
    let department = person(&owner, ActorRole::Department, county, Some(owner.clone()));
    let street = format!("{county}/城管局");
    let second = person(&street, ActorRole::Department, county, Some(street.clone()));
    let new = server::http::tasks::raised_by(alert, owner.clone(), 10);
    let first = engine.task_event(None, |_| {
        Ok(Event {
            action: Action::Assign(new),
            actor: leader.clone(),
            at: created,
            note: alert.message.clone(),
        })
    })?;
    let id = first.task.id.clone();
    let mut at = created;
    // One event `hours` after the last, as `who`; stops quietly at the end of the data.
    let mut step = |hours: i64, who: &Actor, action: Action, note: &str| -> Result<bool> {
        at += Duration::hours(hours);
        if at > end {
            return Ok(false);
        }
        let when = at;
        let action = match action {
            Action::Verify { effective, .. } => {
                let (task, _) = engine.task(&id)?.context("the task just made")?;
                let outcome = engine.evaluate(everyone, &task)?.outcome;
                Action::Verify {
                    effective: effective && outcome.shows_effect(),
                    outcome,
                }
            }
            other => other,
        };
        engine.task_event(Some(&id), |_| {
            Ok(Event {
                action,
                actor: who.clone(),
                at: when,
                note: note.into(),
            })
        })?;
        Ok(true)
    };
    let worked = |step: &mut dyn FnMut(i64, &Actor, Action, &str) -> Result<bool>| -> Result<bool> {
        Ok(step(20, &department, Action::Accept, "")? && step(24, &department, Action::Start, "")?)
    };
    let resolve = "extra staff on the overdue orders; daily review of open ones";
    match story % 9 {
        // Closed after verification.
        0 => {
            let _ = worked(&mut step)?
                && step(24 * 9, &department, Action::Resolve, resolve)?
                && step(
                    24 * 180,
                    &supervisor,
                    Action::Verify {
                        effective: true,
                        outcome: workflow::Outcome::Pending,
                    },
                    "",
                )?
                && step(24, &leader, Action::Close, "")?;
        }
        // Verified, not yet closed.
        1 => {
            let _ = worked(&mut step)?
                && step(24 * 6, &department, Action::Resolve, resolve)?
                && step(
                    24 * 180,
                    &supervisor,
                    Action::Verify {
                        effective: true,
                        outcome: workflow::Outcome::Pending,
                    },
                    "",
                )?;
        }
        // Resolved (late), waiting for the supervisor.
        2 => {
            let _ = worked(&mut step)? && step(24 * 20, &department, Action::Resolve, resolve)?;
        }
        // In progress, with an extension granted.
        3 => {
            let _ = worked(&mut step)?
                && step(
                    24 * 3,
                    &department,
                    Action::AskExtension { working_days: 5 },
                    "waiting for the contractor's crew",
                )?
                && step(4, &leader, Action::GrantExtension, "")?;
        }
        // Reopened after an unconvincing resolution.
        4 => {
            let _ = worked(&mut step)?
                && step(
                    24 * 5,
                    &department,
                    Action::Resolve,
                    "reminded staff of the time limits",
                )?
                && step(
                    24 * 2,
                    &supervisor,
                    Action::Reopen { working_days: 10 },
                    "a reminder is not a remedy: show the backlog falling",
                )?;
        }
        // Returned as not theirs, reassigned, accepted by the new owner's office.
        5 => {
            let _ = step(
                6,
                &department,
                Action::Return,
                "the backlog is the street teams', not the county office's",
            )? && step(
                20,
                &leader,
                Action::Reassign {
                    owner_org: street.clone(),
                    working_days: 10,
                },
                "the city management bureau runs the street teams",
            )? && step(4, &second, Action::Accept, "")?;
        }
        // Never accepted: it will run late.
        6 => {}
        // Returned as not theirs, waiting for the leader to reassign it.
        8 => {
            let _ = step(
                8,
                &department,
                Action::Return,
                "a matter for the provincial bureau, not the county",
            )?;
        }
        // Accepted, an extension asked and not yet decided.
        _ => {
            let _ = step(30, &department, Action::Accept, "")?
                && step(
                    24 * 2,
                    &department,
                    Action::AskExtension { working_days: 3 },
                    "the data for the review arrives next week",
                )?;
        }
    }
    Ok(())
}
