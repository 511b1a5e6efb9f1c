//! The task state machine against random event sequences. An oracle written from the rules
//! as the issue states them (which state each event may follow, who may make it, what it
//! must carry) says which rules each event breaks: every accepted event breaks none, every
//! refused one breaks the rule it names, a refusal changes nothing, and replaying the
//! accepted events gives the same task (no event is lost or counted twice).

use chrono::{Duration, NaiveDate, NaiveDateTime};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::collections::BTreeSet;
use workflow::{
    Action, Actor, ActorRole, Calendar, Card, Event, NewTask, Outcome, Rule, Severity, State, Task,
};

const REGION: &str = "320505001";
const OWNER: &str = "320505/城管局";
const OTHER: &str = "320506/城管局";

fn actor(i: usize) -> Actor {
    let (name, role, scope, org) = match i {
        0 => ("leader", ActorRole::Leader, "32", None),
        1 => ("far-leader", ActorRole::Leader, "3201", None),
        2 => ("supervisor", ActorRole::Supervisor, "3205", None),
        3 => ("owner", ActorRole::Department, "320505", Some(OWNER)),
        4 => ("other-dept", ActorRole::Department, "320506", Some(OTHER)),
        5 => (
            "same-scope-other-org",
            ActorRole::Department,
            "320505",
            Some("320505/水务局"),
        ),
        6 => ("admin", ActorRole::Admin, "32", None),
        _ => ("system", ActorRole::System, "32", None),
    };
    Actor {
        name: name.into(),
        role,
        scope: scope.into(),
        org: org.map(str::to_owned),
    }
}

fn new_task(days: u32, org: &str) -> NewTask {
    NewTask {
        region_code: REGION.into(),
        indicator: "hotline_on_time_rate".into(),
        grain: "quarter".into(),
        period: "2025-Q1".into(),
        value: 0.71,
        threshold: Some(0.8),
        support: Some(420.0),
        severity: Severity::Critical,
        owner_org: org.into(),
        working_days: days,
    }
}

const ORGS: [&str; 5] = [OWNER, "320505001/社区服务站", OTHER, "320505", "32/省政府"];
const OUTCOMES: [Outcome; 5] = [
    Outcome::Improved,
    Outcome::Unchanged,
    Outcome::Worse,
    Outcome::Insufficient,
    Outcome::Pending,
];

fn action(kind: usize, days: u32, pick: usize) -> Action {
    match kind {
        0 => Action::Assign(new_task(days, ORGS[pick % ORGS.len()])),
        1 => Action::Accept,
        2 => Action::Start,
        3 => Action::Return,
        4 => Action::Reassign {
            owner_org: ORGS[pick % ORGS.len()].into(),
            working_days: days,
        },
        5 => Action::AskExtension { working_days: days },
        6 => Action::GrantExtension,
        7 => Action::RefuseExtension,
        8 => Action::Resolve,
        9 => Action::Verify {
            effective: pick.is_multiple_of(2),
            outcome: OUTCOMES[pick % OUTCOMES.len()],
        },
        10 => Action::Reopen { working_days: days },
        11 => Action::Close,
        _ => Action::Escalate {
            card: [Card::None, Card::Yellow, Card::Red][pick % 3],
        },
    }
}

fn start() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2025, 4, 3)
        .unwrap()
        .and_hms_opt(9, 0, 0)
        .unwrap()
}

/// The rules, as a table: which states an event may follow.
fn may_follow(action: &str, state: State) -> bool {
    use State::*;
    let from: &[State] = match action {
        "accept" => &[Assigned],
        "return" => &[Assigned, Accepted],
        "reassign" => &[Assigned, Accepted, InProgress, Returned, Reopened],
        "start" => &[Accepted, Reopened],
        "ask_extension" | "resolve" => &[Accepted, InProgress, Reopened],
        "grant_extension" | "refuse_extension" | "escalate" => {
            &[Assigned, Accepted, InProgress, Returned, Reopened]
        }
        "verify" => &[Resolved],
        "reopen" => &[Resolved, Verified],
        "close" => &[Verified],
        _ => &[],
    };
    from.contains(&state)
}

/// The state an accepted event leaves (`None`: the state does not change).
fn leads_to(action: &str) -> Option<State> {
    Some(match action {
        "accept" => State::Accepted,
        "return" => State::Returned,
        "reassign" => State::Assigned,
        "start" => State::InProgress,
        "resolve" => State::Resolved,
        "verify" => State::Verified,
        "reopen" => State::Reopened,
        "close" => State::Closed,
        _ => return None,
    })
}

fn may_make(action: &str, role: ActorRole) -> bool {
    use ActorRole::*;
    match action {
        "assign" => matches!(role, Leader | Admin | System),
        "accept" | "start" | "return" | "ask_extension" | "resolve" => role == Department,
        "reassign" => matches!(role, Leader | Admin),
        "grant_extension" | "refuse_extension" => matches!(role, Leader | Supervisor | Admin),
        "verify" | "reopen" => matches!(role, Supervisor | Admin),
        "close" => matches!(role, Leader | Supervisor | Admin),
        "escalate" => role == System,
        _ => false,
    }
}

fn org_ok(org: &str) -> bool {
    // Of the organisations generated, these two cover the task's region at county or finer.
    org == OWNER || org == "320505001/社区服务站"
}

/// Every rule `event` breaks against `task` (`None`: no task yet).
fn broken(task: Option<&Task>, event: &Event, calendar: &Calendar) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    let name = event.action.name();
    let role = event.actor.role;
    let mut add = |cond: bool, rule: Rule| {
        if cond {
            out.insert(rule);
        }
    };
    add(task.is_none() != (name == "assign"), Rule::First);
    add(!may_make(name, role), Rule::Role);
    add(
        role != ActorRole::System && !REGION.starts_with(&event.actor.scope),
        Rule::Scope,
    );
    let needs_note = matches!(
        name,
        "return" | "reassign" | "ask_extension" | "refuse_extension" | "resolve" | "reopen"
    );
    add(needs_note && event.note.trim().is_empty(), Rule::Note);
    let days_ok = |d: u32, max: u32| (1..=max).contains(&d);
    match &event.action {
        Action::Assign(n) => {
            add(!days_ok(n.working_days, 60), Rule::Deadline);
            add(!org_ok(&n.owner_org), Rule::Organisation);
        }
        Action::Reassign {
            owner_org,
            working_days,
        } => {
            add(!days_ok(*working_days, 60), Rule::Deadline);
            add(!org_ok(owner_org), Rule::Organisation);
        }
        Action::Reopen { working_days } => add(!days_ok(*working_days, 60), Rule::Deadline),
        Action::AskExtension { working_days } => {
            add(!days_ok(*working_days, 20), Rule::Deadline);
        }
        Action::Verify { effective, outcome } => {
            add(*effective && *outcome != Outcome::Improved, Rule::Evidence);
        }
        _ => {}
    }
    if let Some(t) = task {
        add(event.at < t.last_at, Rule::Order);
        add(
            role == ActorRole::Department
                && event.actor.org.as_deref() != Some(t.raised_by.owner_org.as_str()),
            Rule::Owner,
        );
        add(name != "assign" && !may_follow(name, t.state), Rule::State);
        match &event.action {
            Action::AskExtension { .. } => add(t.pending_extension.is_some(), Rule::Extension),
            Action::GrantExtension | Action::RefuseExtension => {
                add(t.pending_extension.is_none(), Rule::Extension);
            }
            Action::Escalate { card } => {
                let red_from = calendar.extend(t.deadline_at, 3);
                let due = if !t.state.open() || event.at <= t.deadline_at {
                    Card::None
                } else if event.at > red_from {
                    Card::Red
                } else {
                    Card::Yellow
                };
                add(*card <= t.card || *card > due, Rule::Card);
            }
            _ => {}
        }
    }
    out
}

type Step = (usize, usize, u32, usize, i64, bool);

/// The actor whose role may make event `kind` (so that sequences get deep into the life of
/// a task, not only refusals).
fn rightful(kind: usize, pick: usize) -> usize {
    match kind {
        0 | 4 => 0,
        1 | 2 | 3 | 5 | 8 => 3,
        6 | 7 | 11 => [0, 2, 6][pick % 3],
        9 | 10 => 2,
        _ => 7,
    }
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..13,
        prop_oneof![1 => 0usize..8, 2 => Just(usize::MAX)],
        prop_oneof![1 => Just(0u32), 8 => 1u32..25, 1 => Just(61u32)],
        0usize..30,
        prop_oneof![3 => 0i64..(6 * 24 * 60), 1 => -120i64..0],
        prop_oneof![1 => Just(false), 4 => Just(true)],
    )
        .prop_map(|(kind, who, days, pick, minutes, noted)| {
            let who = if who == usize::MAX {
                rightful(kind, pick)
            } else {
                who
            };
            (kind, who, days, pick, minutes, noted)
        })
}

/// Plays one random sequence against the oracle; records the states it reached.
fn check(
    first_days: u32,
    steps: Vec<Step>,
    reached: &mut BTreeSet<State>,
) -> Result<(), TestCaseError> {
    let calendar = Calendar::default();
    let mut at = start();
    let opening = Event {
        action: Action::Assign(new_task(first_days, OWNER)),
        actor: actor(0),
        at,
        note: "critical on-time rate".into(),
    };
    let mut task = Task::start("T1", &opening, &calendar).expect("a valid assignment");
    let mut accepted = vec![opening];
    for (kind, who, days, pick, minutes, noted) in steps {
        at += Duration::minutes(minutes);
        let event = Event {
            action: action(kind, days, pick),
            actor: actor(who),
            at,
            note: if noted {
                "because".into()
            } else {
                String::new()
            },
        };
        let rules = broken(Some(&task), &event, &calendar);
        let before = task.clone();
        match task.apply(&event, &calendar) {
            Ok(next) => {
                prop_assert!(
                    rules.is_empty(),
                    "{} accepted but breaks {rules:?}",
                    event.action.name()
                );
                if let Some(state) = leads_to(event.action.name()) {
                    prop_assert_eq!(next.state, state);
                } else {
                    prop_assert_eq!(next.state, before.state);
                }
                prop_assert_eq!(next.events, before.events + 1);
                reached.insert(next.state);
                task = next;
                accepted.push(event);
            }
            Err(refusal) => {
                prop_assert!(
                    rules.contains(&refusal.rule),
                    "{} refused for {:?} ({}) but breaks only {rules:?}",
                    event.action.name(),
                    refusal.rule,
                    refusal.message
                );
                prop_assert!(!refusal.message.is_empty());
                prop_assert_eq!(&task, &before);
                // Time does not move on with a refused event.
                at = task.last_at.max(at);
            }
        }
    }
    let replayed = Task::replay("T1", &accepted, &calendar).expect("accepted events replay");
    prop_assert_eq!(&replayed, &task);
    prop_assert_eq!(task.events as usize, accepted.len());
    Ok(())
}

fn sequences() -> impl Strategy<Value = (u32, Vec<Step>)> {
    (1u32..20, proptest::collection::vec(step(), 1..40))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_follow_the_rules((first_days, steps) in sequences()) {
        check(first_days, steps, &mut BTreeSet::new())?;
    }
}

/// The random sequences reach every state (and so test every kind of event somewhere).
#[test]
fn the_random_sequences_reach_every_state() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    });
    let reached = std::cell::RefCell::new(BTreeSet::new());
    runner
        .run(&sequences(), |(first_days, steps)| {
            check(first_days, steps, &mut reached.borrow_mut())
        })
        .unwrap();
    let reached = reached.into_inner();
    for state in State::ALL {
        assert!(
            reached.contains(&state),
            "no sequence reached {state:?}: {reached:?}"
        );
    }
}

#[test]
fn a_task_only_starts_with_a_valid_assignment() {
    let calendar = Calendar::default();
    let e = |action, who| Event {
        action,
        actor: actor(who),
        at: start(),
        note: String::new(),
    };
    let refused = |event: &Event| Task::start("T", event, &calendar).unwrap_err().rule;
    assert_eq!(refused(&e(Action::Accept, 3)), Rule::First);
    assert_eq!(
        refused(&e(Action::Assign(new_task(5, OWNER)), 3)),
        Rule::Role
    );
    assert_eq!(
        refused(&e(Action::Assign(new_task(5, OWNER)), 1)),
        Rule::Scope
    );
    assert_eq!(
        refused(&e(Action::Assign(new_task(0, OWNER)), 0)),
        Rule::Deadline
    );
    assert_eq!(
        refused(&e(Action::Assign(new_task(5, "32/省政府")), 0)),
        Rule::Organisation
    );
    assert_eq!(
        refused(&e(Action::Assign(new_task(5, OTHER)), 0)),
        Rule::Organisation
    );
    let t = Task::start("T", &e(Action::Assign(new_task(5, OWNER)), 7), &calendar).unwrap();
    assert_eq!(t.state, State::Assigned);
    // 2025-04-03 is a Thursday: five working days later is Thursday the 10th.
    assert_eq!(t.deadline_at.to_string(), "2025-04-10 23:59:59");
}

#[test]
fn the_whole_loop_with_an_extension_a_reopening_and_cards() {
    let calendar = Calendar::default();
    let mut at = start();
    let mut step = |task: &Task, action, who, hours: i64, note: &str| {
        at += Duration::hours(hours);
        task.apply(
            &Event {
                action,
                actor: actor(who),
                at,
                note: note.into(),
            },
            &calendar,
        )
    };
    let t = Task::start(
        "T",
        &Event {
            action: Action::Assign(new_task(2, OWNER)),
            actor: actor(0),
            at: start(),
            note: String::new(),
        },
        &calendar,
    )
    .unwrap();
    let t = step(&t, Action::Accept, 3, 1, "").unwrap();
    let t = step(&t, Action::AskExtension { working_days: 2 }, 3, 1, "").unwrap_err();
    assert_eq!(t.rule, Rule::Note);
    let t0 = Task::start(
        "T",
        &Event {
            action: Action::Assign(new_task(2, OWNER)),
            actor: actor(0),
            at: start(),
            note: String::new(),
        },
        &calendar,
    )
    .unwrap();
    let t = step(&t0, Action::Accept, 3, 0, "").unwrap();
    let t = step(
        &t,
        Action::AskExtension { working_days: 2 },
        3,
        1,
        "need the contractor",
    )
    .unwrap();
    assert_eq!(
        step(&t, Action::AskExtension { working_days: 1 }, 3, 0, "more")
            .unwrap_err()
            .rule,
        Rule::Extension
    );
    assert_eq!(
        step(&t, Action::GrantExtension, 3, 0, "").unwrap_err().rule,
        Rule::Role
    );
    let t = step(&t, Action::GrantExtension, 0, 1, "").unwrap();
    // Due Monday the 7th, extended by two working days to Wednesday the 9th.
    assert_eq!(t.deadline_at.to_string(), "2025-04-09 23:59:59");
    // Not yet late on Wednesday; yellow on Thursday; red after three more working days.
    let t = step(&t, Action::Start, 3, 24 * 5, "").unwrap();
    assert_eq!(
        step(&t, Action::Escalate { card: Card::Red }, 7, 24, "")
            .unwrap_err()
            .rule,
        Rule::Card
    );
    let t = step(&t, Action::Escalate { card: Card::Yellow }, 7, 24, "").unwrap();
    let t = step(&t, Action::Escalate { card: Card::Red }, 7, 24 * 5, "").unwrap();
    let t = step(&t, Action::Resolve, 3, 1, "cleared the backlog").unwrap();
    assert_eq!(t.resolved_on_time, Some(false));
    let refused = step(
        &t,
        Action::Verify {
            effective: true,
            outcome: Outcome::Insufficient,
        },
        2,
        1,
        "",
    )
    .unwrap_err();
    assert_eq!(refused.rule, Rule::Evidence);
    let t = step(
        &t,
        Action::Reopen { working_days: 5 },
        2,
        1,
        "residents still complain",
    )
    .unwrap();
    assert_eq!((t.state, t.reopened), (State::Reopened, 1));
    let t = step(&t, Action::Resolve, 3, 24, "second round").unwrap();
    let t = step(
        &t,
        Action::Verify {
            effective: true,
            outcome: Outcome::Improved,
        },
        2,
        1,
        "",
    )
    .unwrap();
    assert_eq!(t.effective, Some(true));
    assert_eq!(
        step(&t, Action::Close, 3, 1, "").unwrap_err().rule,
        Rule::Role
    );
    let t = step(&t, Action::Close, 0, 1, "").unwrap();
    assert_eq!(t.state, State::Closed);
    assert_eq!(
        step(&t, Action::Reopen { working_days: 5 }, 2, 1, "again")
            .unwrap_err()
            .rule,
        Rule::State
    );
}
