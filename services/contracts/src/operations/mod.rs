//! The operations contract: joint operations, their participants and tasks,
//! as a pure decider (`Operations`, the kernel's typed `Aggregate`).
//!
//! One aggregate is one operation (stream `operation-<id>`). A command's
//! name is its `Command` variant (`open`, `assign_task` …), an event's type
//! its `Event` variant's name (`operation.opened` …): each written once, in
//! the serde attributes, and read from the wire's `(name, data)` pair by the
//! kernel. `membership` is the fold of these events that other services
//! (intel, deployments) keep.
//!
//! Order of the checks for every command but `open`, so that the answer a
//! caller gets never says more than the caller may know:
//!
//! 1. no such operation → `not_found`;
//! 2. the caller's country may not see it → the same `not_found`
//!    (existence must not leak);
//! 3. the operation is closed → `rule_violated` ("operation is closed");
//! 4. the caller's role and country → `forbidden`;
//! 5. the command's own fields and rules → `invalid`, `rule_violated`,
//!    `conflict`, `not_found` (an unknown task).
//!
//! Architecture invariant: no IO, no clock, no randomness. Time comes in
//! `Ctx`, the operation's id and a new task's id in the command.

pub mod membership;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use concord_core::decider::{Aggregate, Audience, StreamKind, Viewer, bounded_text, required_text};
use concord_core::{Actor, CountryCode, Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Longest title of an operation or a task, in characters: a title is a
/// line in a list, not a document.
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest objective of an operation, in characters.
pub const OBJECTIVE_CHARS_MAX: usize = 4000;
/// Longest details of a task, in characters.
pub const DETAILS_CHARS_MAX: usize = 4000;
/// Longest note on a task status change, in characters.
pub const NOTE_CHARS_MAX: usize = 4000;
/// Longest outcome of a closed operation, in characters.
pub const OUTCOME_CHARS_MAX: usize = 4000;
/// Most participating countries of one operation, the lead not counted.
pub const PARTICIPANTS_MAX: usize = 50;
/// Most tasks one operation holds over its life. Rationale: the whole state
/// is rebuilt for every command, so it must stay small; an operation that
/// needs more tasks is several operations.
pub const TASKS_MAX: usize = 1000;

// ---------------------------------------------------------------- commands

/// `open`: a coordinator opens an operation its own country leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open {
    pub operation_id: Uuid,
    pub title: String,
    pub objective: String,
    pub lead_country: CountryCode,
    /// The participating countries. Duplicates and the lead itself are
    /// dropped silently: listing the lead among the countries says nothing
    /// the lead does not already say, so refusing it would only annoy.
    pub countries: Vec<CountryCode>,
}

/// `add_participant`: the lead's coordinator invites a country.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    pub operation_id: Uuid,
    pub country: CountryCode,
}

/// `remove_participant`: the lead's coordinator removes a country, which
/// then no longer sees the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveParticipant {
    pub operation_id: Uuid,
    pub country: CountryCode,
}

/// `assign_task`: the lead's coordinator gives a country a task. The caller
/// generates `task_id` so that `decide` stays deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignTask {
    pub operation_id: Uuid,
    pub task_id: Uuid,
    pub assignee_country: CountryCode,
    pub title: String,
    pub details: String,
    /// RFC 3339 date-time.
    #[serde(default)]
    pub due_at: Option<String>,
}

/// `update_task_status`: the assignee country's liaison moves a task on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskStatus {
    pub operation_id: Uuid,
    pub task_id: Uuid,
    pub status: TaskStatus,
    #[serde(default)]
    pub note: Option<String>,
}

/// `close`: the lead's coordinator closes the operation; nothing changes it
/// afterwards. Open tasks do not prevent it: the outcome says why they were
/// left, and they stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Close {
    pub operation_id: Uuid,
    pub outcome: String,
}

/// A command, named by its variant (`open`, `add_participant` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Open(Open),
    AddParticipant(AddParticipant),
    RemoveParticipant(RemoveParticipant),
    AssignTask(AssignTask),
    UpdateTaskStatus(UpdateTaskStatus),
    Close(Close),
}

impl Command {
    /// The operation the command addresses.
    pub fn operation_id(&self) -> Uuid {
        match self {
            Command::Open(c) => c.operation_id,
            Command::AddParticipant(c) => c.operation_id,
            Command::RemoveParticipant(c) => c.operation_id,
            Command::AssignTask(c) => c.operation_id,
            Command::UpdateTaskStatus(c) => c.operation_id,
            Command::Close(c) => c.operation_id,
        }
    }
}

// ---------------------------------------------------------------- tasks

/// Where a task stands. Only the assignee country's liaison moves it, along
/// this table (anything else is `rule_violated`, naming from → to):
///
/// | from          | to                         |
/// |---------------|----------------------------|
/// | `assigned`    | `accepted`, `declined`     |
/// | `accepted`    | `in_progress`, `done`      |
/// | `in_progress` | `done`                     |
/// | `declined`    | — (final)                  |
/// | `done`        | — (final)                  |
///
/// A task is *open* while `assigned`, `accepted` or `in_progress`; a country
/// with open tasks cannot be removed from the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Assigned,
    Accepted,
    Declined,
    InProgress,
    Done,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Assigned,
        TaskStatus::Accepted,
        TaskStatus::Declined,
        TaskStatus::InProgress,
        TaskStatus::Done,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Assigned => "assigned",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Declined => "declined",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
        }
    }

    /// Whether the table above allows `self` → `to`.
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        matches!(
            (self, to),
            (Assigned, Accepted)
                | (Assigned, Declined)
                | (Accepted, InProgress)
                | (Accepted, Done)
                | (InProgress, Done)
        )
    }

    /// Still expects work from its assignee.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TaskStatus::Assigned | TaskStatus::Accepted | TaskStatus::InProgress
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------- events

/// `operation.opened`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationOpened {
    pub operation_id: Uuid,
    pub title: String,
    pub objective: String,
    pub lead_country: CountryCode,
    /// The initial participants: sorted, without duplicates, lead excluded.
    pub participants: Vec<CountryCode>,
    pub opened_at: String,
}

/// `participant.added`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantAdded {
    pub country: CountryCode,
}

/// `participant.removed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRemoved {
    pub country: CountryCode,
}

/// `task.assigned`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskAssigned {
    pub task_id: Uuid,
    pub assignee_country: CountryCode,
    pub title: String,
    pub details: String,
    /// Always present in the stored data, `null` when there is no due date.
    pub due_at: Option<String>,
}

/// `task.status_changed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatusChanged {
    pub task_id: Uuid,
    pub from: TaskStatus,
    pub to: TaskStatus,
    /// Always present in the stored data, `null` when no note was given.
    pub note: Option<String>,
}

/// `operation.closed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationClosed {
    pub outcome: String,
    pub closed_at: String,
}

/// An event, named by its variant (the envelope's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "operation.opened")]
    OperationOpened(OperationOpened),
    #[serde(rename = "participant.added")]
    ParticipantAdded(ParticipantAdded),
    #[serde(rename = "participant.removed")]
    ParticipantRemoved(ParticipantRemoved),
    #[serde(rename = "task.assigned")]
    TaskAssigned(TaskAssigned),
    #[serde(rename = "task.status_changed")]
    TaskStatusChanged(TaskStatusChanged),
    #[serde(rename = "operation.closed")]
    OperationClosed(OperationClosed),
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Open,
    Closed,
}

impl OperationStatus {
    /// Every status, in the order of the lifecycle (lists and filters name them).
    pub const ALL: [OperationStatus; 2] = [OperationStatus::Open, OperationStatus::Closed];

    pub fn as_str(&self) -> &'static str {
        match self {
            OperationStatus::Open => "open",
            OperationStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: Uuid,
    pub assignee_country: CountryCode,
    pub title: String,
    pub details: String,
    pub due_at: Option<String>,
    pub status: TaskStatus,
    /// The note of the latest status change (`None` when it had none).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: Uuid,
    pub title: String,
    pub objective: String,
    pub lead_country: CountryCode,
    /// Current participants, lead excluded.
    pub participants: BTreeSet<CountryCode>,
    pub tasks: BTreeMap<Uuid, Task>,
    pub status: OperationStatus,
    pub outcome: Option<String>,
    pub opened_at: String,
    pub closed_at: Option<String>,
}

/// The aggregate's state: `None` (the default) until `operation.opened`.
pub type State = Option<Operation>;

impl Operation {
    /// Whether `country` may see this operation, its tasks and participants:
    /// the lead and the current participants (a removed participant no
    /// longer does). Auditors see everything; that is the caller's concern,
    /// as it depends on the role, not the country.
    pub fn visible_to(&self, country: CountryCode) -> bool {
        country == self.lead_country || self.participants.contains(&country)
    }

    /// What the `get` query answers. The stream version is not part of it:
    /// the caller adds it.
    pub fn view(&self) -> Value {
        // BTreeMap iteration is ordered by id.
        let tasks: Vec<&Task> = self.tasks.values().collect();
        json!({
            "id": self.id,
            "title": self.title,
            "objective": self.objective,
            "lead_country": self.lead_country,
            "participants": self.participants,
            "status": self.status,
            "outcome": self.outcome,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "tasks": tasks,
        })
    }

    fn lead_coordinator_only(&self, actor: &Actor, what: &str) -> Result<(), Rejection> {
        if actor.role == Role::Coordinator && actor.country == self.lead_country {
            Ok(())
        } else {
            Err(Rejection::Forbidden(format!(
                "only a coordinator of the lead country {} can {what}",
                self.lead_country
            )))
        }
    }

    fn open_tasks_of(&self, country: CountryCode) -> usize {
        self.tasks
            .values()
            .filter(|t| t.assignee_country == country && t.status.is_open())
            .count()
    }
}

// ---------------------------------------------------------------- rejections

pub use concord_core::decider::{Ctx, Rejection};

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). Deterministic: everything it needs is in its arguments.
fn decide(state: &State, cmd: &Command, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    match cmd {
        Command::Open(open) => decide_open(state, open, ctx),
        Command::AddParticipant(AddParticipant { country, .. }) => {
            let op = open_operation_seen_by(state, actor)?;
            op.lead_coordinator_only(actor, "add participants")?;
            let country = *country;
            if country == op.lead_country {
                return Err(Rejection::RuleViolated(format!("{country} leads the operation")));
            }
            if op.participants.contains(&country) {
                return Err(Rejection::RuleViolated(format!(
                    "{country} already takes part in the operation"
                )));
            }
            if op.participants.len() >= PARTICIPANTS_MAX {
                return Err(Rejection::RuleViolated(format!(
                    "an operation has at most {PARTICIPANTS_MAX} participants"
                )));
            }
            Ok(vec![Event::ParticipantAdded(ParticipantAdded { country })])
        }
        Command::RemoveParticipant(RemoveParticipant { country, .. }) => {
            let op = open_operation_seen_by(state, actor)?;
            op.lead_coordinator_only(actor, "remove participants")?;
            let country = *country;
            if country == op.lead_country {
                return Err(Rejection::RuleViolated("the lead country cannot be removed".into()));
            }
            if !op.participants.contains(&country) {
                return Err(Rejection::RuleViolated(format!(
                    "{country} does not take part in the operation"
                )));
            }
            match op.open_tasks_of(country) {
                0 => Ok(vec![Event::ParticipantRemoved(ParticipantRemoved { country })]),
                n => Err(Rejection::RuleViolated(format!(
                    "{country} still has {n} open task{} (assigned, accepted or in progress)",
                    if n == 1 { "" } else { "s" }
                ))),
            }
        }
        Command::AssignTask(task) => {
            let op = open_operation_seen_by(state, actor)?;
            op.lead_coordinator_only(actor, "assign tasks")?;
            if !op.visible_to(task.assignee_country) {
                return Err(Rejection::RuleViolated(format!(
                    "{} does not take part in the operation",
                    task.assignee_country
                )));
            }
            required_text("title", &task.title, TITLE_CHARS_MAX)?;
            bounded_text("details", &task.details, DETAILS_CHARS_MAX)?;
            if let Some(due_at) = &task.due_at
                && !is_rfc3339(due_at)
            {
                return Err(Rejection::Invalid(format!(
                    "due_at {due_at:?} is not an RFC 3339 date-time"
                )));
            }
            if op.tasks.contains_key(&task.task_id) {
                return Err(Rejection::Conflict(format!("task {} already exists", task.task_id)));
            }
            if op.tasks.len() >= TASKS_MAX {
                return Err(Rejection::RuleViolated(format!(
                    "an operation has at most {TASKS_MAX} tasks"
                )));
            }
            Ok(vec![Event::TaskAssigned(TaskAssigned {
                task_id: task.task_id,
                assignee_country: task.assignee_country,
                title: task.title.clone(),
                details: task.details.clone(),
                due_at: task.due_at.clone(),
            })])
        }
        Command::UpdateTaskStatus(UpdateTaskStatus {
            task_id, status, note, ..
        }) => {
            let op = open_operation_seen_by(state, actor)?;
            // Every country that sees the operation sees its tasks, so an
            // unknown task may say so before the role is checked.
            let task = op
                .tasks
                .get(task_id)
                .ok_or_else(|| Rejection::NotFound(format!("task {task_id} not found")))?;
            if actor.role != Role::Liaison || actor.country != task.assignee_country {
                return Err(Rejection::Forbidden(format!(
                    "only a liaison of the assignee country {} can change the status of task {task_id}",
                    task.assignee_country
                )));
            }
            if let Some(note) = note {
                bounded_text("note", note, NOTE_CHARS_MAX)?;
            }
            if !task.status.can_become(*status) {
                return Err(Rejection::RuleViolated(format!(
                    "task status cannot change from {} to {status}",
                    task.status
                )));
            }
            Ok(vec![Event::TaskStatusChanged(TaskStatusChanged {
                task_id: *task_id,
                from: task.status,
                to: *status,
                note: note.clone(),
            })])
        }
        Command::Close(Close { outcome, .. }) => {
            let op = open_operation_seen_by(state, actor)?;
            op.lead_coordinator_only(actor, "close the operation")?;
            required_text("outcome", outcome, OUTCOME_CHARS_MAX)?;
            Ok(vec![Event::OperationClosed(OperationClosed {
                outcome: outcome.clone(),
                closed_at: ctx.now.clone(),
            })])
        }
    }
}

/// Steps 1 to 3 of the module's order of checks: the operation exists, the
/// actor may see it, and it is still open.
fn open_operation_seen_by<'a>(state: &'a State, actor: &Actor) -> Result<&'a Operation, Rejection> {
    let op = match state {
        // Auditors see every operation (docs/design.md, Visibility), so for them
        // existence is no secret and a refusal may say `forbidden`.
        Some(op) if op.visible_to(actor.country) || actor.role == Role::Auditor => op,
        _ => return Err(Rejection::NotFound("operation not found".into())),
    };
    if op.status == OperationStatus::Closed {
        return Err(Rejection::RuleViolated("operation is closed".into()));
    }
    Ok(op)
}

fn decide_open(state: &State, open: &Open, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    if actor.role != Role::Coordinator {
        return Err(Rejection::Forbidden("only a coordinator can open an operation".into()));
    }
    if open.lead_country != actor.country {
        return Err(Rejection::Forbidden(format!(
            "a coordinator of {} can only open operations led by {}",
            actor.country, actor.country
        )));
    }
    required_text("title", &open.title, TITLE_CHARS_MAX)?;
    required_text("objective", &open.objective, OBJECTIVE_CHARS_MAX)?;
    let participants: BTreeSet<CountryCode> = open
        .countries
        .iter()
        .copied()
        .filter(|c| *c != open.lead_country)
        .collect();
    if participants.len() > PARTICIPANTS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "an operation has at most {PARTICIPANTS_MAX} participants, {} given",
            participants.len()
        )));
    }
    if state.is_some() {
        return Err(Rejection::Conflict(format!(
            "operation {} already exists",
            open.operation_id
        )));
    }
    Ok(vec![Event::OperationOpened(OperationOpened {
        operation_id: open.operation_id,
        title: open.title.clone(),
        objective: open.objective.clone(),
        lead_country: open.lead_country,
        participants: participants.into_iter().collect(),
        opened_at: ctx.now.clone(),
    })])
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with a real calendar date
/// (RFC 3339 `date-time`; `t`/`z` allowed in lower case, a leap second
/// allowed, at most 9 fraction digits).
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u32> {
        b.get(from..from + len)?
            .iter()
            .try_fold(0, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let sep = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2))
    else {
        return false;
    };
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return false;
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let Some(mut rest) = b.get(19..) else {
        return false;
    };
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return false;
        }
        rest = &fraction[digits..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let two = |a: u8, b: u8| (a.is_ascii_digit() && b.is_ascii_digit()).then(|| (a - b'0') * 10 + (b - b'0'));
            matches!((two(*h1, *h2), two(*m1, *m2)), (Some(h), Some(m)) if h <= 23 && m <= 59)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- evolve

/// The state after `event`, or why `event` cannot follow `state`.
///
/// It cannot when `event` cannot follow `state`: anything before `operation.opened`, a
/// second `operation.opened`, a status change of an unknown task or from a
/// status the task is not in. The log only ever holds what `decide`
/// produced, under a hash chain, so such a sequence means a corrupt log, and
/// carrying on from a silently skipped event would answer with a wrong state.
fn evolve(state: State, event: &Event) -> Result<State, String> {
    let corrupt = |why: &str| format!("corrupt operations stream: {} {why}", crate::tag_of(event));
    let Some(mut op) = state else {
        let Event::OperationOpened(e) = event else {
            return Err(corrupt("before operation.opened"));
        };
        return Ok(Some(Operation {
            id: e.operation_id,
            title: e.title.clone(),
            objective: e.objective.clone(),
            lead_country: e.lead_country,
            participants: e.participants.iter().copied().collect(),
            tasks: BTreeMap::new(),
            status: OperationStatus::Open,
            outcome: None,
            opened_at: e.opened_at.clone(),
            closed_at: None,
        }));
    };
    match event {
        Event::OperationOpened(_) => return Err(corrupt("on an operation already opened")),
        Event::ParticipantAdded(e) => {
            op.participants.insert(e.country);
        }
        Event::ParticipantRemoved(e) => {
            op.participants.remove(&e.country);
        }
        Event::TaskAssigned(e) => {
            op.tasks.insert(
                e.task_id,
                Task {
                    id: e.task_id,
                    assignee_country: e.assignee_country,
                    title: e.title.clone(),
                    details: e.details.clone(),
                    due_at: e.due_at.clone(),
                    status: TaskStatus::Assigned,
                    note: None,
                },
            );
        }
        Event::TaskStatusChanged(e) => {
            let Some(task) = op.tasks.get_mut(&e.task_id) else {
                return Err(corrupt(&format!("of unknown task {}", e.task_id)));
            };
            if task.status != e.from {
                return Err(corrupt(&format!(
                    "of task {} from {} while it is {}",
                    e.task_id, e.from, task.status
                )));
            }
            task.status = e.to;
            task.note = e.note.clone();
        }
        Event::OperationClosed(e) => {
            op.status = OperationStatus::Closed;
            op.outcome = Some(e.outcome.clone());
            op.closed_at = Some(e.closed_at.clone());
        }
    }
    Ok(Some(op))
}

// ---------------------------------------------------------------- the contract

/// `get`: an operation as the asking country sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Get {
    pub operation_id: Uuid,
    pub country: CountryCode,
    /// Only `auditor` changes what is visible.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A query, named by its variant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    Get(Get),
}

/// The stream of operation `id`.
pub fn stream_of(id: Uuid) -> String {
    STREAM.stream(id)
}

/// The kind of this contract's streams, `operation-<uuid>`.
pub const STREAM: StreamKind = StreamKind("operation");

/// The operations service's contract.
pub struct Operations;

impl Aggregate for Operations {
    const SERVICE: Service = Service::Operations;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    type State = State;
    type Facts = ();

    fn stream(command: &Command) -> String {
        stream_of(command.operation_id())
    }

    fn decide(state: &State, command: &Command, _: &(), ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
        decide(state, command, ctx)
    }

    fn evolve(state: State, event: &Event) -> Result<State, String> {
        evolve(state, event)
    }

    /// The lead and the current participants (a removed participant no
    /// longer sees the operation, its tasks nor its participants).
    fn audience(state: &State, _: &()) -> Audience {
        match state {
            Some(op) => Audience::countries(op.participants.iter().copied().chain([op.lead_country])),
            None => Audience::nobody(),
        }
    }

    fn view(state: &State) -> Value {
        state.as_ref().map_or(Value::Null, Operation::view)
    }

    fn query_stream(query: &Query) -> String {
        let Query::Get(get) = query;
        stream_of(get.operation_id)
    }

    fn answer(query: &Query, state: &State, version: u64, facts: &()) -> Result<Value, Rejection> {
        let Query::Get(get) = query;
        let viewer = Viewer {
            country: get.country,
            role: get.role.unwrap_or(Role::Liaison),
        };
        match state {
            // Same answer for unknown and invisible: existence must not leak.
            Some(op) if Self::audience(state, facts).admits(&viewer) => {
                let mut view = op.view();
                view["version"] = json!(version);
                Ok(json!({ "operation": view }))
            }
            _ => Err(Rejection::NotFound("operation not found".into())),
        }
    }

    /// A task command names the task: the one its first event recorded (a
    /// retry's answer names the task the first attempt created).
    fn reply_id(command: &Command, first: Option<&Event>) -> Option<String> {
        let recorded = match first {
            Some(Event::TaskAssigned(e)) => Some(e.task_id),
            Some(Event::TaskStatusChanged(e)) => Some(e.task_id),
            _ => None,
        };
        let task = match command {
            Command::AssignTask(c) => recorded.or(Some(c.task_id)),
            Command::UpdateTaskStatus(c) => recorded.or(Some(c.task_id)),
            _ => None,
        };
        task.map(|t| t.to_string())
    }
}

#[cfg(test)]
mod tests;
