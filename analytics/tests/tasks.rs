//! Supervised tasks in the database: events append-only and never lost, refusals that change
//! nothing, the ledger's indicators, the evaluation against a computation from the sample's
//! own CSV, and the work orders' event histories against their rows.

mod common;

use analytics::{AnalyticsError, Audience, Engine};
use chrono::{Duration, NaiveDateTime};
use common::{count, loaded, sample_file};
use indicators::{Grain, IndicatorQuery, Level};
use workflow::{Action, Actor, ActorRole, Card, Event, NewTask, Outcome, Severity, State};

const COUNTY: &str = "320102";
const OWNER: &str = "320102/城管局";

fn actor(role: ActorRole) -> Actor {
    Actor {
        name: format!("{role:?}").to_lowercase(),
        role,
        scope: if role == ActorRole::Department {
            COUNTY
        } else {
            "32"
        }
        .into(),
        org: (role == ActorRole::Department).then(|| OWNER.to_owned()),
    }
}

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn assign(engine: &Engine, indicator: &str, period: &str, at: NaiveDateTime) -> String {
    let new = NewTask {
        region_code: COUNTY.into(),
        indicator: indicator.into(),
        grain: "quarter".into(),
        period: period.into(),
        value: 0.7,
        threshold: Some(0.8),
        support: Some(500.0),
        severity: Severity::Critical,
        owner_org: OWNER.into(),
        working_days: 10,
    };
    engine
        .task_event(None, |task| {
            assert!(task.is_none());
            Ok(Event {
                action: Action::Assign(new),
                actor: actor(ActorRole::Leader),
                at,
                note: "on-time rate below the critical threshold".into(),
            })
        })
        .unwrap()
        .task
        .id
}

fn step(
    engine: &Engine,
    id: &str,
    role: ActorRole,
    action: Action,
    at: NaiveDateTime,
    note: &str,
) -> Result<analytics::TaskWrite, AnalyticsError> {
    engine.task_event(Some(id), |_| {
        Ok(Event {
            action,
            actor: actor(role),
            at,
            note: note.into(),
        })
    })
}

/// A ratio from the sample's CSV: rows of `county` counted where `keep` and `hit` hold.
fn ratio_from_csv(
    path: &std::path::Path,
    keep: impl Fn(&csv::StringRecord) -> bool,
    hit: impl Fn(&csv::StringRecord) -> bool,
) -> (f64, f64) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let (mut n, mut d) = (0.0, 0.0);
    for row in reader.records() {
        let row = row.unwrap();
        if row[7].starts_with(COUNTY) && keep(&row) {
            d += 1.0;
            if hit(&row) {
                n += 1.0;
            }
        }
    }
    (n, d)
}

/// The 95% Wilson interval, written out again from its formula.
fn wilson(n: f64, d: f64) -> (f64, f64) {
    let z = 1.96_f64;
    let p = n / d;
    let centre = (p + z * z / (2.0 * d)) / (1.0 + z * z / d);
    let half = z / (1.0 + z * z / d) * (p * (1.0 - p) / d + z * z / (4.0 * d * d)).sqrt();
    (centre - half, centre + half)
}

fn verdict(before: (f64, f64), after: (f64, f64)) -> Outcome {
    let (b_lo, b_hi) = wilson(before.0, before.1);
    let (a_lo, a_hi) = wilson(after.0, after.1);
    if before.1 < 30.0 || after.1 < 30.0 {
        Outcome::Insufficient
    } else if a_lo > b_hi {
        Outcome::Improved
    } else if a_hi < b_lo {
        Outcome::Worse
    } else {
        Outcome::Unchanged
    }
}

#[test]
fn the_evaluation_matches_a_computation_from_the_csv() {
    let (tmp, engine, _) = loaded(42);
    let id = assign(
        &engine,
        "hotline_on_time_rate",
        "2024-Q2",
        t("2024-07-04 09:00:00"),
    );
    step(
        &engine,
        &id,
        ActorRole::Department,
        Action::Accept,
        t("2024-07-04 15:00:00"),
        "",
    )
    .unwrap();
    let (task, _) = engine.task(&id).unwrap().unwrap();
    let everyone = Audience::trusted();
    // Not resolved: the evaluation waits.
    assert_eq!(
        engine.evaluate(&everyone, &task).unwrap().outcome,
        Outcome::Pending
    );
    let w = step(
        &engine,
        &id,
        ActorRole::Department,
        Action::Resolve,
        t("2024-07-20 10:00:00"),
        "more staff",
    )
    .unwrap();
    let e = engine.evaluate(&everyone, &w.task).unwrap();
    // Resolved in Q3: the period after is Q4, the same length as Q2.
    assert_eq!(e.indicator.before.period, "2024-Q2");
    assert_eq!(e.indicator.after.as_ref().unwrap().period, "2024-Q4");
    let orders = sample_file(&tmp, "work_orders.csv");
    let due_in = |from: &str, to: &str| {
        let (from, to) = (from.to_owned(), to.to_owned());
        move |r: &csv::StringRecord| r[2] >= *from && r[2] < *to
    };
    let on_time = |r: &csv::StringRecord| !r[3].is_empty() && r[3] <= r[2];
    let before = ratio_from_csv(&orders, due_in("2024-04-01", "2024-07-01"), on_time);
    let after = ratio_from_csv(&orders, due_in("2024-10-01", "2025-01-01"), on_time);
    let b = e.indicator.before.value;
    let a = e.indicator.after.as_ref().unwrap().value;
    assert!((b.value.unwrap() - before.0 / before.1).abs() < 1e-12);
    assert!((a.value.unwrap() - after.0 / after.1).abs() < 1e-12);
    let (lo, hi) = wilson(before.0, before.1);
    assert!((b.low.unwrap() - lo).abs() < 1e-12 && (b.high.unwrap() - hi).abs() < 1e-12);
    assert_eq!(e.indicator.outcome, verdict(before, after));
    // The feedback: rated orders closed in each quarter, satisfied (4 or 5) over rated.
    let closed_in = |from: &str, to: &str| {
        let (from, to) = (from.to_owned(), to.to_owned());
        move |r: &csv::StringRecord| !r[11].is_empty() && r[3] >= *from && r[3] < *to
    };
    let happy = |r: &csv::StringRecord| r[11].parse::<u32>().unwrap() >= 4;
    let fb_before = ratio_from_csv(&orders, closed_in("2024-04-01", "2024-07-01"), happy);
    let fb_after = ratio_from_csv(&orders, closed_in("2024-10-01", "2025-01-01"), happy);
    let fb = e
        .feedback
        .as_ref()
        .expect("satisfaction is computed per quarter and county");
    assert!((fb.before.value.value.unwrap() - fb_before.0 / fb_before.1).abs() < 1e-12);
    assert_eq!(fb.outcome, verdict(fb_before, fb_after));
    let expected = match (e.indicator.outcome, fb.outcome) {
        (Outcome::Improved, Outcome::Worse) => Outcome::Unchanged,
        (o, _) => o,
    };
    assert_eq!(e.outcome, expected);
    // "Effective" needs an improvement; the rule is applied on the evaluation's outcome.
    let verified = step(
        &engine,
        &id,
        ActorRole::Supervisor,
        Action::Verify {
            effective: true,
            outcome: e.outcome,
        },
        t("2025-01-10 10:00:00"),
        "",
    );
    match e.outcome {
        Outcome::Improved => assert_eq!(verified.unwrap().task.effective, Some(true)),
        _ => match verified {
            Err(AnalyticsError::Refused(r)) => assert_eq!(r.rule, workflow::Rule::Evidence),
            other => panic!("effective on {:?} was not refused: {other:?}", e.outcome),
        },
    }
}

#[test]
fn a_value_on_too_few_records_gives_no_verdict() {
    let (_tmp, engine, _) = loaded(42);
    // One grid cell in one month: far fewer than 30 orders.
    let grid: String = engine
        .with_conn(|c| {
            c.query_row(
                "SELECT MIN(grid_id) FROM work_orders WHERE community_code LIKE '320102%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| AnalyticsError::Db {
                context: "grid".into(),
                source: e,
            })
        })
        .unwrap();
    let new = NewTask {
        region_code: grid.clone(),
        indicator: "hotline_on_time_rate".into(),
        grain: "month".into(),
        period: "2024-05".into(),
        value: 0.5,
        threshold: Some(0.8),
        support: Some(12.0),
        severity: Severity::Warning,
        owner_org: OWNER.into(),
        working_days: 5,
    };
    let id = engine
        .task_event(None, |_| {
            Ok(Event {
                action: Action::Assign(new),
                actor: actor(ActorRole::Admin),
                at: t("2024-06-03 09:00:00"),
                note: String::new(),
            })
        })
        .unwrap()
        .task
        .id;
    step(
        &engine,
        &id,
        ActorRole::Department,
        Action::Accept,
        t("2024-06-03 10:00:00"),
        "",
    )
    .unwrap();
    let w = step(
        &engine,
        &id,
        ActorRole::Department,
        Action::Resolve,
        t("2024-06-05 10:00:00"),
        "fixed",
    )
    .unwrap();
    let e = engine.evaluate(&Audience::trusted(), &w.task).unwrap();
    assert_eq!(e.outcome, Outcome::Insufficient, "{e:?}");
    let refused = step(
        &engine,
        &id,
        ActorRole::Supervisor,
        Action::Verify {
            effective: true,
            outcome: e.outcome,
        },
        t("2024-08-01 10:00:00"),
        "",
    );
    assert!(
        matches!(refused, Err(AnalyticsError::Refused(r)) if r.rule == workflow::Rule::Evidence)
    );
    // Verified as done but not shown effective: allowed.
    let w = step(
        &engine,
        &id,
        ActorRole::Supervisor,
        Action::Verify {
            effective: false,
            outcome: e.outcome,
        },
        t("2024-08-01 10:00:00"),
        "",
    )
    .unwrap();
    assert_eq!(
        (w.task.state, w.task.effective),
        (State::Verified, Some(false))
    );
}

/// A small deterministic generator, so the sequence is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn every_accepted_event_is_stored_and_refused_ones_change_nothing() {
    let (_tmp, engine, _) = loaded(7);
    let mut rng = Lcg(12345);
    let mut at = t("2025-01-06 09:00:00");
    let ids: Vec<String> = (0..3)
        .map(|i| {
            assign(
                &engine,
                "hotline_on_time_rate",
                &format!("2024-Q{}", i + 2),
                at,
            )
        })
        .collect();
    let mut accepted: std::collections::HashMap<String, Vec<String>> = ids
        .iter()
        .map(|id| (id.clone(), vec!["assign".to_owned()]))
        .collect();
    let roles = [
        ActorRole::Leader,
        ActorRole::Supervisor,
        ActorRole::Department,
        ActorRole::Admin,
        ActorRole::System,
    ];
    for _ in 0..150 {
        at += Duration::hours(rng.below(30) as i64);
        let id = &ids[rng.below(3) as usize];
        let action = match rng.below(11) {
            0 => Action::Accept,
            1 => Action::Start,
            2 => Action::Return,
            3 => Action::Reassign {
                owner_org: OWNER.into(),
                working_days: 5,
            },
            4 => Action::AskExtension { working_days: 2 },
            5 => Action::GrantExtension,
            6 => Action::RefuseExtension,
            7 => Action::Resolve,
            8 => Action::Verify {
                effective: false,
                outcome: Outcome::Unchanged,
            },
            9 => Action::Reopen { working_days: 5 },
            _ => Action::Close,
        };
        let name = action.name().to_owned();
        // Mostly the role the event is for, so that tasks get deep into their lives.
        let rightful = match name.as_str() {
            "accept" | "start" | "return" | "ask_extension" | "resolve" => ActorRole::Department,
            "verify" | "reopen" => ActorRole::Supervisor,
            _ => ActorRole::Leader,
        };
        let role = if rng.below(3) == 0 {
            roles[rng.below(roles.len() as u64) as usize]
        } else {
            rightful
        };
        let generation = engine.generation();
        let events_before = count(&engine, "task_events");
        match step(&engine, id, role, action, at, "because") {
            Ok(w) => {
                accepted.get_mut(id).unwrap().push(name);
                assert_eq!(w.seq as usize, accepted[id].len());
                assert_eq!(engine.generation(), generation + 1);
            }
            Err(AnalyticsError::Refused(r)) => {
                assert!(!r.message.is_empty());
                assert_eq!(
                    count(&engine, "task_events"),
                    events_before,
                    "a refusal wrote"
                );
                assert_eq!(
                    engine.generation(),
                    generation,
                    "a refusal made a commit visible"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
    for id in &ids {
        let (task, events) = engine.task(id).unwrap().unwrap();
        let stored: Vec<&str> = events.iter().map(|e| e.event.action.name()).collect();
        assert_eq!(
            stored,
            accepted[id].iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=events.len() as u32).collect::<Vec<_>>()
        );
        assert_eq!(task.events as usize, events.len());
    }
    assert_eq!(count(&engine, "task_outcomes"), 3);
    assert!(
        accepted.values().map(Vec::len).sum::<usize>() > 10,
        "too few events were accepted to show anything"
    );
}

#[test]
fn the_ledger_is_an_indicator_like_any_other() {
    let (tmp, engine, _) = loaded(42);
    let created = t("2024-07-04 09:00:00");
    let a = assign(&engine, "hotline_on_time_rate", "2024-Q2", created);
    let b = assign(&engine, "hotline_satisfaction_rate", "2024-Q2", created);
    let c = assign(&engine, "hotline_mean_handling_hours", "2024-Q2", created);
    // Ten working days from Thursday 4 July: Thursday 18 July.
    let (task, _) = engine.task(&a).unwrap().unwrap();
    assert_eq!(task.deadline_at, t("2024-07-18 23:59:59"));
    for id in [&a, &b] {
        step(
            &engine,
            id,
            ActorRole::Department,
            Action::Accept,
            t("2024-07-05 09:00:00"),
            "",
        )
        .unwrap();
    }
    step(
        &engine,
        &a,
        ActorRole::Department,
        Action::Resolve,
        t("2024-07-10 09:00:00"),
        "done",
    )
    .unwrap();
    step(
        &engine,
        &b,
        ActorRole::Department,
        Action::Resolve,
        t("2024-07-25 09:00:00"),
        "done late",
    )
    .unwrap();
    // c was never accepted: supervision cards it, yellow after the deadline, red three
    // working days later.
    let yellow = engine.escalate_overdue(t("2024-07-19 09:00:00")).unwrap();
    assert_eq!(
        yellow
            .iter()
            .map(|w| (w.task.id.clone(), w.task.card))
            .collect::<Vec<_>>(),
        vec![(c.clone(), Card::Yellow)]
    );
    assert!(
        engine
            .escalate_overdue(t("2024-07-19 10:00:00"))
            .unwrap()
            .is_empty(),
        "a card is given once"
    );
    let red = engine.escalate_overdue(t("2024-07-24 09:00:00")).unwrap();
    assert_eq!(red.len(), 1);
    assert_eq!(red[0].task.card, Card::Red);
    let (_, events) = engine.task(&c).unwrap().unwrap();
    assert!(events.iter().all(|e| e.event.action.name() != "escalate" || e.event.actor.role == ActorRole::System));
    // On time: a only, of the three due in 2024-Q3 (b late, c overdue).
    let everyone = Audience::trusted();
    let q = IndicatorQuery {
        level: Level::County,
        grain: Grain::Quarter,
        from: Some("2024-Q3".into()),
        to: Some("2024-Q3".into()),
        region: Some(COUNTY.into()),
    };
    let rate = engine.catalogue().get("task_on_time_rate").unwrap().clone();
    let v = engine.values(&everyone, &rate, &q).unwrap();
    let v = v.iter().find(|v| v.region_code == COUNTY).unwrap();
    assert_eq!((v.numerator, v.denominator), (1.0, Some(3.0)));
    let escalation = engine
        .catalogue()
        .get("task_escalation_rate")
        .unwrap()
        .clone();
    let v = engine.values(&everyone, &escalation, &q).unwrap();
    let v = v.iter().find(|v| v.region_code == COUNTY).unwrap();
    assert_eq!((v.numerator, v.denominator), (1.0, Some(3.0)));
    // The city above adds the county's tasks up; the cube agrees with the rows.
    let city = IndicatorQuery {
        level: Level::City,
        region: Some("3201".into()),
        ..q.clone()
    };
    let v = engine.values(&everyone, &rate, &city).unwrap();
    assert_eq!(v[0].denominator, Some(3.0));
    // A re-ingest of the sample replaces the data, not the loop's record.
    engine.ingest_dir(&tmp.path().join("sample")).unwrap();
    assert_eq!(engine.tasks(None).unwrap().len(), 3);
    assert_eq!(count(&engine, "task_outcomes"), 3);
}

#[test]
fn work_order_events_agree_with_the_orders() {
    let (tmp, engine, manifest) = loaded(42);
    let sql = |q: &str| -> i64 {
        engine
            .with_conn(|c| {
                c.query_row(q, [], |r| r.get(0))
                    .map_err(|e| AnalyticsError::Db {
                        context: q.into(),
                        source: e,
                    })
            })
            .unwrap()
    };
    assert_eq!(
        sql("SELECT COUNT(*) FROM work_order_outcomes"),
        sql("SELECT COUNT(*) FROM work_orders")
    );
    // On time from the events equals on time from the order rows, order by order.
    assert_eq!(
        sql(
            "SELECT COUNT(*) FROM work_orders o JOIN work_order_outcomes w USING (order_id) \
             WHERE o.closed_at IS NOT NULL AND w.on_time <> CAST(o.closed_at <= o.due_at AS INTEGER)"
        ),
        0
    );
    assert_eq!(
        sql(
            "SELECT COUNT(*) FROM work_orders o JOIN work_order_outcomes w USING (order_id) WHERE o.closed_at IS DISTINCT FROM w.closed_at"
        ),
        0
    );
    assert!(sql("SELECT COUNT(*) FROM work_order_outcomes WHERE returns > 0") > 0);
    assert!(sql("SELECT COUNT(*) FROM work_order_outcomes WHERE reopenings > 0") > 0);
    assert!(sql("SELECT COUNT(*) FROM work_order_outcomes WHERE merged") > 0);
    assert!(sql("SELECT COUNT(*) FROM work_order_outcomes WHERE extensions > 0") > 0);
    assert_eq!(
        manifest.rows["work_order_events"] as i64,
        sql("SELECT COUNT(*) FROM work_order_events")
    );
    // First-time resolution of the county in 2025-Q1, from the events CSV.
    let mut orders: std::collections::HashMap<String, (bool, Option<String>, bool)> =
        Default::default();
    let mut reader = csv::Reader::from_path(sample_file(&tmp, "work_order_events.csv")).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        if !row[8].starts_with(COUNTY) {
            continue;
        }
        let o = orders.entry(row[0].to_owned()).or_default();
        match &row[3] {
            "return" | "reopen" => o.0 = true,
            "close" => o.1 = Some(row[2].to_owned()),
            "merge" => o.2 = true,
            _ => {}
        }
    }
    let (mut n, mut d) = (0.0, 0.0);
    for (again, closed, merged) in orders.values() {
        if let Some(c) = closed
            && !*merged
            && c.as_str() >= "2025-01-01"
            && c.as_str() < "2025-04-01"
        {
            d += 1.0;
            if !*again {
                n += 1.0;
            }
        }
    }
    let ind = engine
        .catalogue()
        .get("hotline_first_time_rate")
        .unwrap()
        .clone();
    let v = engine
        .values(
            &Audience::trusted(),
            &ind,
            &IndicatorQuery {
                level: Level::County,
                grain: Grain::Quarter,
                from: Some("2025-Q1".into()),
                to: Some("2025-Q1".into()),
                region: Some(COUNTY.into()),
            },
        )
        .unwrap();
    let v = v.iter().find(|v| v.region_code == COUNTY).unwrap();
    assert_eq!((v.numerator, v.denominator), (n, Some(d)));
    assert!(n < d, "some orders were returned or reopened");
}
