//! The supervised task: its events, who may make each, and the state they fold into.

use crate::Calendar;
use crate::evaluation::Outcome;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Longest deadline a task (or a reopening, or a reassignment) may be given.
pub const MAX_WORKING_DAYS: u32 = 60;
/// Longest extension one request may ask for.
pub const MAX_EXTENSION_WORKING_DAYS: u32 = 20;
/// An overdue task gets a yellow card at its deadline and a red one this many working days
/// later.
pub const RED_AFTER_WORKING_DAYS: u32 = 3;
/// Longest note an event may carry.
pub const MAX_NOTE_CHARS: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Assigned,
    Accepted,
    InProgress,
    Returned,
    Resolved,
    Verified,
    Reopened,
    Closed,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Assigned,
        State::Accepted,
        State::InProgress,
        State::Returned,
        State::Resolved,
        State::Verified,
        State::Reopened,
        State::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Assigned => "assigned",
            State::Accepted => "accepted",
            State::InProgress => "in_progress",
            State::Returned => "returned",
            State::Resolved => "resolved",
            State::Verified => "verified",
            State::Reopened => "reopened",
            State::Closed => "closed",
        }
    }

    /// Whether the matter is still with someone to handle (and so can run late).
    pub fn open(self) -> bool {
        matches!(
            self,
            State::Assigned
                | State::Accepted
                | State::InProgress
                | State::Returned
                | State::Reopened
        )
    }
}

/// Escalation: a yellow card at the deadline, a red one later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Card {
    None,
    Yellow,
    Red,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    /// Assigns tasks, reassigns them, decides on extensions, closes.
    Leader,
    /// Verifies or reopens resolved tasks, decides on extensions, closes.
    Supervisor,
    /// The owner organisation: accepts, returns, works, asks for more time, resolves.
    Department,
    /// May do what leaders and supervisors do (never what only the owner does).
    Admin,
    /// The server's own rules: tasks from critical alerts, escalation.
    System,
}

/// Who makes an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The name the audit log knows them by.
    pub name: String,
    pub role: ActorRole,
    /// The region subtree they act for.
    pub scope: String,
    /// Their organisation (`<division code>/<name>`), for departments.
    pub org: Option<String>,
}

impl Actor {
    /// The server's own rules (escalation, tasks from critical alerts).
    pub fn system() -> Actor {
        Actor {
            name: "system".into(),
            role: ActorRole::System,
            scope: "32".into(),
            org: None,
        }
    }
}

/// What a new task is about: the alert that raised it and who is to act.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub region_code: String,
    pub indicator: String,
    pub grain: String,
    pub period: String,
    /// The alert's figures when the task was made.
    pub value: f64,
    pub threshold: Option<f64>,
    /// Records the value rested on; `None` for published statistics, which are not counts
    /// of records (their support is unbounded, which JSON cannot carry as a number).
    pub support: Option<f64>,
    pub severity: Severity,
    pub owner_org: String,
    pub working_days: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Assign(NewTask),
    Accept,
    Start,
    Return,
    Reassign {
        owner_org: String,
        working_days: u32,
    },
    AskExtension {
        working_days: u32,
    },
    GrantExtension,
    RefuseExtension,
    Resolve,
    /// `outcome` is the evaluation when the supervisor verified (the server computes it).
    Verify {
        effective: bool,
        outcome: Outcome,
    },
    Reopen {
        working_days: u32,
    },
    Close,
    Escalate {
        card: Card,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Assign(_) => "assign",
            Action::Accept => "accept",
            Action::Start => "start",
            Action::Return => "return",
            Action::Reassign { .. } => "reassign",
            Action::AskExtension { .. } => "ask_extension",
            Action::GrantExtension => "grant_extension",
            Action::RefuseExtension => "refuse_extension",
            Action::Resolve => "resolve",
            Action::Verify { .. } => "verify",
            Action::Reopen { .. } => "reopen",
            Action::Close => "close",
            Action::Escalate { .. } => "escalate",
        }
    }

    /// Whether the event must say why (or, for `resolve`, what was done).
    pub fn needs_note(&self) -> bool {
        matches!(
            self,
            Action::Return
                | Action::Reassign { .. }
                | Action::AskExtension { .. }
                | Action::RefuseExtension
                | Action::Resolve
                | Action::Reopen { .. }
        )
    }
}

/// One event of a task's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(flatten)]
    pub action: Action,
    pub actor: Actor,
    pub at: NaiveDateTime,
    /// Why, or what was done.
    pub note: String,
}

/// The rule a refused event breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `assign` starts a task and nothing else does.
    First,
    /// The event does not follow from the task's state.
    State,
    /// The actor's role may not make this event.
    Role,
    /// Only the owner organisation may.
    Owner,
    /// The task's region is outside the actor's scope.
    Scope,
    /// Events are in time order.
    Order,
    /// The event must say why (or what was done), within the length limit.
    Note,
    /// Working days out of range.
    Deadline,
    /// The organisation is not `<division code>/<name>` of the task's region (county or finer).
    Organisation,
    /// An extension is already pending, or none is.
    Extension,
    /// "Effective" needs an evaluation that shows an improvement.
    Evidence,
    /// The card is not due yet, or not higher than the one held.
    Card,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::First => "first",
            Rule::State => "state",
            Rule::Role => "role",
            Rule::Owner => "owner",
            Rule::Scope => "scope",
            Rule::Order => "order",
            Rule::Note => "note",
            Rule::Deadline => "deadline",
            Rule::Organisation => "organisation",
            Rule::Extension => "extension",
            Rule::Evidence => "evidence",
            Rule::Card => "card",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", rule.as_str())]
pub struct Refusal {
    pub rule: Rule,
    pub message: String,
}

fn refuse<T>(rule: Rule, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        rule,
        message: message.into(),
    })
}

/// A task as its events leave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    #[serde(flatten)]
    pub raised_by: NewTask,
    pub created_at: NaiveDateTime,
    pub created_by: String,
    pub deadline_at: NaiveDateTime,
    pub state: State,
    pub card: Card,
    /// Working days asked for in a pending extension request.
    pub pending_extension: Option<u32>,
    pub reopened: u32,
    pub returned: u32,
    pub reassigned: u32,
    pub extensions_granted: u32,
    /// The last resolution, and whether it came by the deadline in force then.
    pub resolved_at: Option<NaiveDateTime>,
    pub resolved_on_time: Option<bool>,
    pub verified_at: Option<NaiveDateTime>,
    /// The supervisor's verdict and the evaluation it rested on.
    pub effective: Option<bool>,
    pub outcome: Option<Outcome>,
    pub closed_at: Option<NaiveDateTime>,
    /// How many events the task has (the next event is number `events + 1`).
    pub events: u32,
    pub last_at: NaiveDateTime,
}

/// `<division code>/<name>` with the code a county or finer region containing `region`.
fn check_org(org: &str, region: &str) -> Result<(), Refusal> {
    let Some((code, name)) = org.split_once('/') else {
        return refuse(
            Rule::Organisation,
            format!("owner_org {org:?} is not <division code>/<name>"),
        );
    };
    let name_ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c.is_control() || c == '/');
    let code_ok = matches!(code.len(), 6 | 9 | 12) && code.bytes().all(|b| b.is_ascii_digit());
    if !name_ok || !code_ok {
        return refuse(
            Rule::Organisation,
            format!(
                "owner_org {org:?} is not <county or finer division code>/<name of at most 64 characters>"
            ),
        );
    }
    if !region.starts_with(code) {
        return refuse(
            Rule::Organisation,
            format!("owner_org {org:?} does not cover the task's region {region}"),
        );
    }
    Ok(())
}

fn check_days(days: u32, max: u32, what: &str) -> Result<(), Refusal> {
    if days == 0 || days > max {
        return refuse(
            Rule::Deadline,
            format!("{what} must be 1 to {max} working days, not {days}"),
        );
    }
    Ok(())
}

fn check_note(event: &Event) -> Result<(), Refusal> {
    if event.note.chars().count() > MAX_NOTE_CHARS {
        return refuse(
            Rule::Note,
            format!("a note has at most {MAX_NOTE_CHARS} characters"),
        );
    }
    if event.action.needs_note() && event.note.trim().is_empty() {
        let what = if matches!(event.action, Action::Resolve) {
            "what was done"
        } else {
            "why"
        };
        return refuse(
            Rule::Note,
            format!("{} must say {what} (note)", event.action.name()),
        );
    }
    Ok(())
}

/// The roles that may make `action`.
fn allowed_roles(action: &Action) -> &'static [ActorRole] {
    use ActorRole::*;
    match action {
        Action::Assign(_) => &[Leader, Admin, System],
        Action::Accept
        | Action::Start
        | Action::Return
        | Action::AskExtension { .. }
        | Action::Resolve => &[Department],
        Action::Reassign { .. } => &[Leader, Admin],
        Action::GrantExtension | Action::RefuseExtension => &[Leader, Supervisor, Admin],
        Action::Verify { .. } | Action::Reopen { .. } => &[Supervisor, Admin],
        Action::Close => &[Leader, Supervisor, Admin],
        Action::Escalate { .. } => &[System],
    }
}

/// The states `action` may follow.
fn from_states(action: &Action) -> &'static [State] {
    use State::*;
    match action {
        Action::Assign(_) => &[],
        Action::Accept => &[Assigned],
        Action::Return => &[Assigned, Accepted],
        Action::Reassign { .. } => &[Assigned, Accepted, InProgress, Returned, Reopened],
        Action::Start => &[Accepted, Reopened],
        Action::AskExtension { .. } | Action::Resolve => &[Accepted, InProgress, Reopened],
        Action::GrantExtension | Action::RefuseExtension | Action::Escalate { .. } => {
            &[Assigned, Accepted, InProgress, Returned, Reopened]
        }
        Action::Verify { .. } => &[Resolved],
        Action::Reopen { .. } => &[Resolved, Verified],
        Action::Close => &[Verified],
    }
}

fn check_actor(event: &Event, region: &str) -> Result<(), Refusal> {
    let roles = allowed_roles(&event.action);
    if !roles.contains(&event.actor.role) {
        return refuse(
            Rule::Role,
            format!(
                "{} is for {}, not {:?}",
                event.action.name(),
                roles
                    .iter()
                    .map(|r| format!("{r:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
                event.actor.role
            )
            .to_lowercase(),
        );
    }
    if event.actor.role != ActorRole::System && !region.starts_with(&event.actor.scope) {
        return refuse(
            Rule::Scope,
            format!(
                "the task's region {region} is outside the scope {} of {}",
                event.actor.scope, event.actor.name
            ),
        );
    }
    Ok(())
}

impl Task {
    /// The task an `assign` event starts.
    pub fn start(id: &str, event: &Event, calendar: &Calendar) -> Result<Task, Refusal> {
        let Action::Assign(new) = &event.action else {
            return refuse(
                Rule::First,
                format!("a task starts with assign, not {}", event.action.name()),
            );
        };
        check_actor(event, &new.region_code)?;
        check_note(event)?;
        check_days(new.working_days, MAX_WORKING_DAYS, "a deadline")?;
        check_org(&new.owner_org, &new.region_code)?;
        Ok(Task {
            id: id.to_owned(),
            raised_by: new.clone(),
            created_at: event.at,
            created_by: event.actor.name.clone(),
            deadline_at: calendar.deadline(event.at, new.working_days),
            state: State::Assigned,
            card: Card::None,
            pending_extension: None,
            reopened: 0,
            returned: 0,
            reassigned: 0,
            extensions_granted: 0,
            resolved_at: None,
            resolved_on_time: None,
            verified_at: None,
            effective: None,
            outcome: None,
            closed_at: None,
            events: 1,
            last_at: event.at,
        })
    }

    /// The task after `event`, or the rule it breaks (the task is left as it was).
    pub fn apply(&self, event: &Event, calendar: &Calendar) -> Result<Task, Refusal> {
        if matches!(event.action, Action::Assign(_)) {
            return refuse(Rule::First, format!("task {} is already assigned", self.id));
        }
        if event.at < self.last_at {
            return refuse(
                Rule::Order,
                format!(
                    "{} at {} is before the task's last event at {}",
                    event.action.name(),
                    event.at,
                    self.last_at
                ),
            );
        }
        check_actor(event, &self.raised_by.region_code)?;
        if event.actor.role == ActorRole::Department
            && event.actor.org.as_deref() != Some(self.raised_by.owner_org.as_str())
        {
            return refuse(
                Rule::Owner,
                format!(
                    "{} is for the owner {}, not {}",
                    event.action.name(),
                    self.raised_by.owner_org,
                    event
                        .actor
                        .org
                        .as_deref()
                        .unwrap_or("someone without an organisation")
                ),
            );
        }
        if !from_states(&event.action).contains(&self.state) {
            return refuse(
                Rule::State,
                format!(
                    "{} cannot follow {} (task {})",
                    event.action.name(),
                    self.state.as_str(),
                    self.id
                ),
            );
        }
        check_note(event)?;
        let mut next = self.clone();
        next.events += 1;
        next.last_at = event.at;
        match &event.action {
            Action::Assign(_) => unreachable!("refused above"),
            Action::Accept => next.state = State::Accepted,
            Action::Start => next.state = State::InProgress,
            Action::Return => {
                next.state = State::Returned;
                next.returned += 1;
                next.pending_extension = None;
            }
            Action::Reassign {
                owner_org,
                working_days,
            } => {
                check_days(*working_days, MAX_WORKING_DAYS, "a deadline")?;
                check_org(owner_org, &self.raised_by.region_code)?;
                next.raised_by.owner_org = owner_org.clone();
                next.deadline_at = calendar.deadline(event.at, *working_days);
                next.state = State::Assigned;
                next.reassigned += 1;
                next.pending_extension = None;
            }
            Action::AskExtension { working_days } => {
                if self.pending_extension.is_some() {
                    return refuse(Rule::Extension, "an extension request is already pending");
                }
                check_days(*working_days, MAX_EXTENSION_WORKING_DAYS, "an extension")?;
                next.pending_extension = Some(*working_days);
            }
            Action::GrantExtension | Action::RefuseExtension => {
                let Some(days) = self.pending_extension else {
                    return refuse(Rule::Extension, "no extension request is pending");
                };
                if matches!(event.action, Action::GrantExtension) {
                    next.deadline_at = calendar.extend(self.deadline_at, days);
                    next.extensions_granted += 1;
                }
                next.pending_extension = None;
            }
            Action::Resolve => {
                next.state = State::Resolved;
                next.resolved_at = Some(event.at);
                next.resolved_on_time = Some(event.at <= self.deadline_at);
                // A pending request for more time is withdrawn by resolving.
                next.pending_extension = None;
            }
            Action::Verify { effective, outcome } => {
                if *effective && !outcome.shows_effect() {
                    return refuse(
                        Rule::Evidence,
                        format!(
                            "the evaluation is {}: a task is verified as effective only on an improvement beyond the uncertainty, on enough records",
                            outcome.as_str()
                        ),
                    );
                }
                next.state = State::Verified;
                next.verified_at = Some(event.at);
                next.effective = Some(*effective);
                next.outcome = Some(*outcome);
            }
            Action::Reopen { working_days } => {
                check_days(*working_days, MAX_WORKING_DAYS, "a deadline")?;
                next.state = State::Reopened;
                next.reopened += 1;
                next.deadline_at = calendar.deadline(event.at, *working_days);
                next.verified_at = None;
                next.effective = None;
                next.outcome = None;
            }
            Action::Close => {
                next.state = State::Closed;
                next.closed_at = Some(event.at);
            }
            Action::Escalate { card } => {
                let due = self.card_due(event.at, calendar);
                if *card <= self.card || *card > due {
                    return refuse(
                        Rule::Card,
                        format!(
                            "a {card:?} card is not due at {} (holding {:?}, due {due:?}, deadline {})",
                            event.at, self.card, self.deadline_at
                        )
                        .to_lowercase(),
                    );
                }
                next.card = *card;
            }
        }
        Ok(next)
    }

    /// The task its events make, or the first event that breaks a rule (by its index).
    pub fn replay(
        id: &str,
        events: &[Event],
        calendar: &Calendar,
    ) -> Result<Task, (usize, Refusal)> {
        let Some(first) = events.first() else {
            return Err((
                0,
                Refusal {
                    rule: Rule::First,
                    message: format!("task {id} has no events"),
                },
            ));
        };
        let mut task = Task::start(id, first, calendar).map_err(|r| (0, r))?;
        for (i, e) in events.iter().enumerate().skip(1) {
            task = task.apply(e, calendar).map_err(|r| (i, r))?;
        }
        Ok(task)
    }

    /// The card an open task has earned by `now`: yellow once past its deadline, red
    /// [`RED_AFTER_WORKING_DAYS`] working days after it.
    pub fn card_due(&self, now: NaiveDateTime, calendar: &Calendar) -> Card {
        if !self.state.open() || now <= self.deadline_at {
            Card::None
        } else if now > calendar.extend(self.deadline_at, RED_AFTER_WORKING_DAYS) {
            Card::Red
        } else {
            Card::Yellow
        }
    }

    /// Whether the task is past its deadline without a resolution.
    pub fn overdue(&self, now: NaiveDateTime) -> bool {
        self.state.open() && now > self.deadline_at
    }
}

/// The organisation a task goes to when none is named: the government office of the
/// region's county (`<county code>/政府办公室`).
pub fn default_owner(region: &str) -> String {
    format!("{}/政府办公室", &region[..region.len().min(6)])
}
