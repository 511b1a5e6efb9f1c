//! The closed loop's rules, without a database: the supervised task (督办) as a state machine
//! over events, working-day deadlines, escalation cards, and the before/after verdict of an
//! evaluation.
//!
//! A task is never stored as a state: it is the fold of its events ([`Task::replay`]). Each
//! event is checked by [`Task::apply`] against the state it meets, the actor's role, scope and
//! organisation, and its time; a refused event changes nothing and names the [`Rule`] it
//! breaks. `analytics` stores the accepted events append-only and folds them again on every
//! read, so what the server serves and what it checks are the same fold.
//!
//! ```text
//!  assign ──► assigned ──accept──► accepted ──start──► in_progress ──resolve──► resolved
//!               │  ▲                  │                    │                   │     │
//!         return│  │reassign    resolve│         ask/grant/refuse extension  verify reopen
//!               ▼  │                  ▼                                        ▼     │
//!             returned            resolved                      verified ──close──► closed
//!                                                                  └──reopen──► reopened
//! ```

mod calendar;
mod evaluation;
mod task;

pub use calendar::Calendar;
pub use evaluation::{Comparison, Outcome, compare};
pub use task::{
    Action, Actor, ActorRole, Card, Event, MAX_EXTENSION_WORKING_DAYS, MAX_WORKING_DAYS, NewTask,
    RED_AFTER_WORKING_DAYS, Refusal, Rule, Severity, State, Task, default_owner,
};
