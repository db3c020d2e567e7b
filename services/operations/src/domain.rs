//! The operations aggregate as a pure decider:
//! `decide(&State, &Command, &Ctx) -> Result<Vec<Event>, Rejection>` and
//! `evolve(State, &Event) -> State`.
//!
//! One aggregate is one operation (stream `operation-<id>`). Its commands
//! arrive with their name on the subject and their body as JSON `data`
//! (`parse_command`); its events are stored as `type` + `data` in the kernel's
//! envelope (`Event::event_type`, `Event::data`, `Event::from_parts`).
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
//! Architecture invariant: no IO, no clock, no randomness. Time and the
//! operation's id come in `Ctx`, a new task's id in the command.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use concord_core::{Actor, CountryCode, Role};
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

/// The version of every event's `data` schema (the envelope's
/// `schema_version`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What `decide` needs besides the state and the command: who asks, which
/// operation (the stream's id, chosen by the caller for `open`) and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: Actor,
    pub operation_id: Uuid,
    /// RFC 3339 UTC; becomes `opened_at` / `closed_at`.
    pub now: String,
}

// ---------------------------------------------------------------- commands

/// `open`: a coordinator opens an operation its own country leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open {
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
    pub country: CountryCode,
}

/// `remove_participant`: the lead's coordinator removes a country, which
/// then no longer sees the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveParticipant {
    pub country: CountryCode,
}

/// `assign_task`: the lead's coordinator gives a country a task. The caller
/// generates `task_id` so that `decide` stays deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignTask {
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
    pub outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Open(Open),
    AddParticipant(AddParticipant),
    RemoveParticipant(RemoveParticipant),
    AssignTask(AssignTask),
    UpdateTaskStatus(UpdateTaskStatus),
    Close(Close),
}

/// Every command name, i.e. the last token of `concord.cmd.operations.<name>`.
pub const COMMANDS: [&str; 6] = [
    "open",
    "add_participant",
    "remove_participant",
    "assign_task",
    "update_task_status",
    "close",
];

impl Command {
    /// The command's name, one of `COMMANDS`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Open(_) => "open",
            Command::AddParticipant(_) => "add_participant",
            Command::RemoveParticipant(_) => "remove_participant",
            Command::AssignTask(_) => "assign_task",
            Command::UpdateTaskStatus(_) => "update_task_status",
            Command::Close(_) => "close",
        }
    }
}

/// Builds a command from its name (the subject's last token) and its body.
/// An unknown name or a body that does not fit (unknown or missing field,
/// wrong type, a country code that names nobody) is `Rejection::Invalid`.
pub fn parse_command(name: &str, data: Value) -> Result<Command, Rejection> {
    use concord_core::decider::command_body as body;
    match name {
        "open" => body(name, data).map(Command::Open),
        "add_participant" => body(name, data).map(Command::AddParticipant),
        "remove_participant" => body(name, data).map(Command::RemoveParticipant),
        "assign_task" => body(name, data).map(Command::AssignTask),
        "update_task_status" => body(name, data).map(Command::UpdateTaskStatus),
        "close" => body(name, data).map(Command::Close),
        _ => Err(Rejection::Invalid(format!(
            "unknown command {name:?}: expected one of {}",
            COMMANDS.join(", ")
        ))),
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    OperationOpened(OperationOpened),
    ParticipantAdded(ParticipantAdded),
    ParticipantRemoved(ParticipantRemoved),
    TaskAssigned(TaskAssigned),
    TaskStatusChanged(TaskStatusChanged),
    OperationClosed(OperationClosed),
}

/// Every event type this aggregate records (the envelope's `type`).
pub const EVENT_TYPES: [&str; 6] = [
    "operation.opened",
    "participant.added",
    "participant.removed",
    "task.assigned",
    "task.status_changed",
    "operation.closed",
];

impl Event {
    /// The envelope's `type`, one of `EVENT_TYPES`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::OperationOpened(_) => "operation.opened",
            Event::ParticipantAdded(_) => "participant.added",
            Event::ParticipantRemoved(_) => "participant.removed",
            Event::TaskAssigned(_) => "task.assigned",
            Event::TaskStatusChanged(_) => "task.status_changed",
            Event::OperationClosed(_) => "operation.closed",
        }
    }

    /// The envelope's `data`: a JSON object of strings and `null`s (no
    /// numbers at all, so certainly no floats).
    pub fn data(&self) -> Value {
        let data = match self {
            Event::OperationOpened(e) => serde_json::to_value(e),
            Event::ParticipantAdded(e) => serde_json::to_value(e),
            Event::ParticipantRemoved(e) => serde_json::to_value(e),
            Event::TaskAssigned(e) => serde_json::to_value(e),
            Event::TaskStatusChanged(e) => serde_json::to_value(e),
            Event::OperationClosed(e) => serde_json::to_value(e),
        };
        // Structs of strings, uuids, country codes and unit enums: the only
        // ways `to_value` fails (non-string map keys, a failing custom
        // `Serialize`) cannot occur.
        data.expect("event data of plain fields always serializes")
    }

    /// Rebuilds an event from a stored envelope's `type` and `data`.
    pub fn from_parts(event_type: &str, data: &Value) -> Result<Event, String> {
        use concord_core::decider::event_body as body;
        match event_type {
            "operation.opened" => body(event_type, data).map(Event::OperationOpened),
            "participant.added" => body(event_type, data).map(Event::ParticipantAdded),
            "participant.removed" => body(event_type, data).map(Event::ParticipantRemoved),
            "task.assigned" => body(event_type, data).map(Event::TaskAssigned),
            "task.status_changed" => body(event_type, data).map(Event::TaskStatusChanged),
            "operation.closed" => body(event_type, data).map(Event::OperationClosed),
            _ => Err(format!("unknown operations event type {event_type:?}")),
        }
    }
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Open,
    Closed,
}

impl OperationStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationStatus::Open => "open",
            OperationStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A refused command (shared by every decider).
pub use concord_core::decider::Rejection;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). Deterministic: everything it needs is in its arguments.
pub fn decide(state: &State, cmd: &Command, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    match cmd {
        Command::Open(open) => decide_open(state, open, ctx),
        Command::AddParticipant(AddParticipant { country }) => {
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
        Command::RemoveParticipant(RemoveParticipant { country }) => {
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
        Command::UpdateTaskStatus(UpdateTaskStatus { task_id, status, note }) => {
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
        Command::Close(Close { outcome }) => {
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
        // Auditors see every operation (DESIGN.md, Visibility), so for them
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
            ctx.operation_id
        )));
    }
    Ok(vec![Event::OperationOpened(OperationOpened {
        operation_id: ctx.operation_id,
        title: open.title.clone(),
        objective: open.objective.clone(),
        lead_country: open.lead_country,
        participants: participants.into_iter().collect(),
        opened_at: ctx.now.clone(),
    })])
}

/// Not blank, and at most `max` characters.
fn required_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::Invalid(format!("{field} must not be empty")));
    }
    bounded_text(field, value, max)
}

fn bounded_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.chars().count() > max {
        return Err(Rejection::Invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(())
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
pub fn try_evolve(state: State, event: &Event) -> Result<State, String> {
    let corrupt = |why: &str| format!("corrupt operations stream: {} {why}", event.event_type());
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

/// `try_evolve` for replays of events `decide` just produced.
///
/// # Panics
///
/// When `try_evolve` refuses: a corrupt stream is a crash with a clear
/// message, never a silent skip. The runtime uses `try_evolve` and reports
/// the error instead.
pub fn evolve(state: State, event: &Event) -> State {
    match try_evolve(state, event) {
        Ok(s) => s,
        Err(why) => panic!("{why}"),
    }
}

/// The state after all of `events`, in order (see `evolve` for panics).
pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> State {
    events.into_iter().fold(State::default(), evolve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::reply::ErrorCode;

    // ------------------------------------------------------------ fixtures

    const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
    const NOW: &str = "2026-11-23T09:30:00.000000Z";
    const LATER: &str = "2026-12-01T17:00:00.000000Z";

    /// 51 real countries, FR (the lead of every story) not among them.
    const OTHERS: [&str; 51] = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT",
        "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "AL", "AD", "AM", "AZ", "BA", "GE", "IS", "LI", "MD", "MC",
        "ME", "MK", "NO", "RS", "SM", "CH", "TR", "UA", "GB", "CA", "US", "MX", "BR", "AR", "JP",
    ];

    fn cc(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("test country codes are real")
    }

    fn actor(role: Role, country: &str) -> Actor {
        Actor {
            sub: format!("{}-{}", country.to_lowercase(), role.as_str()),
            role,
            country: cc(country),
        }
    }
    fn coordinator(country: &str) -> Actor {
        actor(Role::Coordinator, country)
    }
    fn liaison(country: &str) -> Actor {
        actor(Role::Liaison, country)
    }
    fn auditor(country: &str) -> Actor {
        actor(Role::Auditor, country)
    }

    fn task_id(n: u128) -> Uuid {
        Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0001_0000 + n)
    }

    // Commands.
    fn open(lead: &str, countries: &[&str]) -> Command {
        Command::Open(Open {
            title: "Opération Héron".into(),
            objective: "dismantle the trafficking network".into(),
            lead_country: cc(lead),
            countries: countries.iter().map(|c| cc(c)).collect(),
        })
    }
    fn add(country: &str) -> Command {
        Command::AddParticipant(AddParticipant { country: cc(country) })
    }
    fn remove(country: &str) -> Command {
        Command::RemoveParticipant(RemoveParticipant { country: cc(country) })
    }
    fn assign(n: u128, country: &str) -> Command {
        Command::AssignTask(AssignTask {
            task_id: task_id(n),
            assignee_country: cc(country),
            title: format!("task {n}"),
            details: "search the warehouse".into(),
            due_at: None,
        })
    }
    fn set_status(n: u128, to: TaskStatus) -> Command {
        Command::UpdateTaskStatus(UpdateTaskStatus {
            task_id: task_id(n),
            status: to,
            note: None,
        })
    }
    fn close(outcome: &str) -> Command {
        Command::Close(Close {
            outcome: outcome.into(),
        })
    }
    /// One of each command but `open`, each allowed on the `heron` story for
    /// the right actor (DE and ES take part, IT does not, task 1 is DE's).
    fn every_command_but_open() -> Vec<Command> {
        vec![
            add("IT"),
            remove("ES"),
            assign(2, "DE"),
            set_status(1, TaskStatus::Accepted),
            close("done"),
        ]
    }

    // Events.
    fn opened(lead: &str, participants: &[&str]) -> Event {
        Event::OperationOpened(OperationOpened {
            operation_id: OP,
            title: "Opération Héron".into(),
            objective: "dismantle the trafficking network".into(),
            lead_country: cc(lead),
            participants: participants.iter().map(|c| cc(c)).collect(),
            opened_at: NOW.into(),
        })
    }
    fn added(country: &str) -> Event {
        Event::ParticipantAdded(ParticipantAdded { country: cc(country) })
    }
    fn removed(country: &str) -> Event {
        Event::ParticipantRemoved(ParticipantRemoved { country: cc(country) })
    }
    fn assigned(n: u128, country: &str) -> Event {
        Event::TaskAssigned(TaskAssigned {
            task_id: task_id(n),
            assignee_country: cc(country),
            title: format!("task {n}"),
            details: "search the warehouse".into(),
            due_at: None,
        })
    }
    fn changed(n: u128, from: TaskStatus, to: TaskStatus) -> Event {
        Event::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id(n),
            from,
            to,
            note: None,
        })
    }
    fn closed(outcome: &str) -> Event {
        Event::OperationClosed(OperationClosed {
            outcome: outcome.into(),
            closed_at: NOW.into(),
        })
    }

    /// FR leads, DE and ES take part, task 1 is assigned to DE.
    fn heron() -> Vec<Event> {
        vec![opened("FR", &["DE", "ES"]), assigned(1, "DE")]
    }

    // ------------------------------------------------------------ given / when / then

    struct Given {
        history: Vec<Event>,
    }

    fn given(history: impl IntoIterator<Item = Event>) -> Given {
        Given {
            history: history.into_iter().collect(),
        }
    }

    impl Given {
        fn when(self, cmd: Command, actor: Actor) -> When {
            self.when_at(cmd, actor, NOW)
        }

        fn when_at(self, cmd: Command, actor: Actor, now: &str) -> When {
            let state = replay(&self.history);
            let ctx = Ctx {
                actor,
                operation_id: OP,
                now: now.into(),
            };
            let result = decide(&state, &cmd, &ctx);
            When {
                history: self.history,
                result,
            }
        }
    }

    struct When {
        history: Vec<Event>,
        result: Result<Vec<Event>, Rejection>,
    }

    impl When {
        /// Asserts the events decided and returns the history with them, so
        /// that a story can go on.
        #[track_caller]
        fn then(self, expected: impl IntoIterator<Item = Event>) -> Vec<Event> {
            let expected: Vec<Event> = expected.into_iter().collect();
            match self.result {
                Ok(events) => assert_eq!(events, expected),
                Err(r) => panic!("refused with {}: {r}", r.code().as_str()),
            }
            let mut history = self.history;
            history.extend(expected);
            // What decide produced, evolve accepts.
            assert!(replay(&history).is_some());
            history
        }

        #[track_caller]
        fn then_rejected(self, code: ErrorCode, contains: &str) {
            match self.result {
                Ok(events) => panic!("accepted, expected {}: {events:?}", code.as_str()),
                Err(r) => {
                    let message = r.to_string();
                    assert_eq!(r.code(), code, "{message}");
                    assert!(message.contains(contains), "{message:?} does not contain {contains:?}");
                    assert!(!message.ends_with('.'), "{message:?} ends with a period");
                    // Lowercase, though it may start with a country code ("DE …").
                    let mut first = message.chars();
                    let capitalized = matches!((first.next(), first.next()), (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase());
                    assert!(!capitalized, "{message:?} is capitalized");
                }
            }
        }
    }

    // ------------------------------------------------------------ the story

    #[test]
    fn the_full_story_of_an_operation() {
        use TaskStatus::*;
        let h = given([])
            .when(open("FR", &["DE", "ES"]), coordinator("FR"))
            .then([opened("FR", &["DE", "ES"])]);
        let h = given(h)
            .when(assign(1, "DE"), coordinator("FR"))
            .then([assigned(1, "DE")]);
        let h = given(h)
            .when(set_status(1, Accepted), liaison("DE"))
            .then([changed(1, Assigned, Accepted)]);
        let h = given(h)
            .when(
                Command::UpdateTaskStatus(UpdateTaskStatus {
                    task_id: task_id(1),
                    status: Done,
                    note: Some("warehouse searched, 2 arrests".into()),
                }),
                liaison("DE"),
            )
            .then([Event::TaskStatusChanged(TaskStatusChanged {
                task_id: task_id(1),
                from: Accepted,
                to: Done,
                note: Some("warehouse searched, 2 arrests".into()),
            })]);
        let h = given(h).when(add("IT"), coordinator("FR")).then([added("IT")]);
        let h = given(h)
            .when_at(close("network dismantled"), coordinator("FR"), LATER)
            .then([Event::OperationClosed(OperationClosed {
                outcome: "network dismantled".into(),
                closed_at: LATER.into(),
            })]);

        let op = replay(&h).expect("opened");
        assert_eq!(op.status, OperationStatus::Closed);
        assert_eq!(
            op.view(),
            json!({
                "id": OP,
                "title": "Opération Héron",
                "objective": "dismantle the trafficking network",
                "lead_country": "FR",
                "participants": ["DE", "ES", "IT"],
                "status": "closed",
                "outcome": "network dismantled",
                "opened_at": NOW,
                "closed_at": LATER,
                "tasks": [{
                    "id": task_id(1),
                    "assignee_country": "DE",
                    "title": "task 1",
                    "details": "search the warehouse",
                    "due_at": null,
                    "status": "done",
                    "note": "warehouse searched, 2 arrests",
                }],
            })
        );
        for c in ["FR", "DE", "ES", "IT"] {
            assert!(op.visible_to(cc(c)), "{c}");
        }
    }

    #[test]
    fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
        use TaskStatus::*;
        let story = [
            (open("FR", &["DE", "ES", "FR", "DE"]), coordinator("FR")),
            (assign(2, "ES"), coordinator("FR")),
            (assign(1, "DE"), coordinator("FR")),
            (assign(3, "FR"), coordinator("FR")),
            (set_status(1, Accepted), liaison("DE")),
            (set_status(1, InProgress), liaison("DE")),
            (set_status(2, Declined), liaison("ES")),
            (remove("ES"), coordinator("FR")),
            (add("IT"), coordinator("FR")),
            (set_status(1, Done), liaison("DE")),
            (close("network dismantled"), coordinator("FR")),
        ];
        let mut live = State::default();
        let mut stored: Vec<(&'static str, Value)> = Vec::new();
        for (cmd, actor) in story {
            let ctx = Ctx {
                actor,
                operation_id: OP,
                now: NOW.into(),
            };
            let events = decide(&live, &cmd, &ctx).expect("every step of the story is allowed");
            for e in &events {
                live = evolve(live, e);
                stored.push((e.event_type(), e.data()));
            }
        }
        let loaded: Vec<Event> = stored
            .iter()
            .map(|(t, data)| Event::from_parts(t, data).expect("stored events load"))
            .collect();
        assert_eq!(replay(&loaded), live);
        let op = live.expect("opened");
        assert_eq!(op.participants, [cc("DE"), cc("IT")].into());
        let ids: Vec<Uuid> = op.tasks.keys().copied().collect();
        assert_eq!(ids, vec![task_id(1), task_id(2), task_id(3)]);
        let view_ids: Vec<Value> = op.view()["tasks"]
            .as_array()
            .expect("tasks is an array")
            .iter()
            .map(|t| t["id"].clone())
            .collect();
        assert_eq!(view_ids, ids.iter().map(|id| json!(id)).collect::<Vec<_>>());
        assert!(!op.visible_to(cc("ES")), "a removed participant no longer sees it");
    }

    #[test]
    fn the_default_state_is_not_opened() {
        assert_eq!(State::default(), None);
        assert_eq!(replay(&[]), None);
    }

    // ------------------------------------------------------------ open

    #[test]
    fn open_drops_the_lead_and_duplicates_from_the_countries() {
        given([])
            .when(open("FR", &["ES", "DE", "FR", "ES"]), coordinator("FR"))
            .then([opened("FR", &["DE", "ES"])]);
        given([])
            .when(open("FR", &[]), coordinator("FR"))
            .then([opened("FR", &[])]);
    }

    #[test]
    fn the_secretariat_may_lead_an_operation() {
        given([])
            .when(open("GS", &["DE"]), coordinator("GS"))
            .then([opened("GS", &["DE"])]);
    }

    #[test]
    fn only_a_coordinator_opens() {
        for who in [liaison("FR"), auditor("FR"), actor(Role::Reviewer, "FR")] {
            given([])
                .when(open("FR", &["DE"]), who)
                .then_rejected(ErrorCode::Forbidden, "only a coordinator can open");
        }
    }

    #[test]
    fn a_coordinator_opens_only_for_its_own_country() {
        given([])
            .when(open("DE", &["FR"]), coordinator("FR"))
            .then_rejected(ErrorCode::Forbidden, "can only open operations led by FR");
    }

    #[test]
    fn open_needs_a_title_and_an_objective_within_limits() {
        let with = |title: String, objective: String| {
            Command::Open(Open {
                title,
                objective,
                lead_country: cc("FR"),
                countries: vec![cc("DE")],
            })
        };
        let ok = || "x".to_owned();
        // Limits count characters, not bytes.
        let at_limit = with("é".repeat(TITLE_CHARS_MAX), "é".repeat(OBJECTIVE_CHARS_MAX));
        assert!(matches!(given([]).when(at_limit, coordinator("FR")).result, Ok(ref e) if e.len() == 1));
        for (cmd, contains) in [
            (with(String::new(), ok()), "title must not be empty"),
            (with("  \t".into(), ok()), "title must not be empty"),
            (
                with("é".repeat(TITLE_CHARS_MAX + 1), ok()),
                "title is longer than 200 characters",
            ),
            (with(ok(), String::new()), "objective must not be empty"),
            (
                with(ok(), "é".repeat(OBJECTIVE_CHARS_MAX + 1)),
                "objective is longer than 4000 characters",
            ),
        ] {
            given([])
                .when(cmd, coordinator("FR"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
    }

    #[test]
    fn open_takes_at_most_50_participants() {
        let fifty = &OTHERS[..PARTICIPANTS_MAX];
        let mut with_lead_and_duplicates = fifty.to_vec();
        with_lead_and_duplicates.extend(["FR", "DE", "DE"]);
        let mut sorted = fifty.to_vec();
        sorted.sort_unstable();
        given([])
            .when(open("FR", &with_lead_and_duplicates), coordinator("FR"))
            .then([opened("FR", &sorted)]);
        given([])
            .when(open("FR", &OTHERS[..PARTICIPANTS_MAX + 1]), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "at most 50 participants, 51 given");
    }

    #[test]
    fn opening_an_opened_operation_is_a_conflict() {
        let id = OP.to_string();
        given(heron())
            .when(open("FR", &["DE"]), coordinator("FR"))
            .then_rejected(ErrorCode::Conflict, &format!("operation {id} already exists"));
        let mut closed_history = heron();
        closed_history.push(closed("done"));
        given(closed_history)
            .when(open("FR", &["DE"]), coordinator("FR"))
            .then_rejected(ErrorCode::Conflict, "already exists");
    }

    // ------------------------------------------------------------ existence and visibility

    #[test]
    fn every_command_but_open_on_no_operation_is_not_found() {
        for cmd in every_command_but_open() {
            for who in [coordinator("FR"), liaison("DE"), auditor("FR")] {
                given([])
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "operation not found");
            }
        }
    }

    #[test]
    fn a_country_that_cannot_see_the_operation_gets_not_found_for_everything() {
        let mut closed_history = heron();
        closed_history.push(closed("done"));
        let mut removed_history = heron();
        removed_history.push(removed("ES"));
        for history in [heron(), closed_history] {
            for cmd in every_command_but_open() {
                for who in [coordinator("IT"), liaison("IT"), actor(Role::Reviewer, "GS")] {
                    given(history.clone())
                        .when(cmd.clone(), who)
                        .then_rejected(ErrorCode::NotFound, "operation not found");
                }
            }
        }
        // A removed participant is an outsider again.
        for cmd in every_command_but_open() {
            for who in [coordinator("ES"), liaison("ES")] {
                given(removed_history.clone())
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "operation not found");
            }
        }
    }

    #[test]
    fn an_auditor_sees_every_operation_so_is_forbidden_not_kept_in_the_dark() {
        for cmd in every_command_but_open() {
            given(heron())
                .when(cmd, auditor("IT"))
                .then_rejected(ErrorCode::Forbidden, "only a");
        }
    }

    #[test]
    fn visibility_is_the_lead_and_the_current_participants() {
        let mut h = heron();
        h.push(added("IT"));
        h.push(removed("ES"));
        let op = replay(&h).expect("opened");
        for (c, sees) in [
            ("FR", true),
            ("DE", true),
            ("IT", true),
            ("ES", false),
            ("JP", false),
            ("GS", false),
        ] {
            assert_eq!(op.visible_to(cc(c)), sees, "{c}");
        }
    }

    // ------------------------------------------------------------ lead coordinator only

    #[test]
    fn only_a_coordinator_of_the_lead_country_manages_the_operation() {
        for cmd in [add("IT"), remove("ES"), assign(2, "DE"), close("done")] {
            for who in [
                liaison("FR"),
                coordinator("DE"),
                liaison("DE"),
                actor(Role::Reviewer, "FR"),
            ] {
                given(heron())
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::Forbidden, "only a coordinator of the lead country FR");
            }
        }
    }

    // ------------------------------------------------------------ participants

    #[test]
    fn adding_the_lead_or_a_participant_again_is_refused() {
        given(heron())
            .when(add("FR"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "FR leads the operation");
        given(heron())
            .when(add("DE"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "DE already takes part in the operation");
    }

    #[test]
    fn adding_a_51st_participant_is_refused() {
        let mut sorted = OTHERS[..PARTICIPANTS_MAX].to_vec();
        sorted.sort_unstable();
        given([opened("FR", &sorted)])
            .when(add(OTHERS[PARTICIPANTS_MAX]), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "at most 50 participants");
        given([opened("FR", &sorted[1..])])
            .when(add(sorted[0]), coordinator("FR"))
            .then([added(sorted[0])]);
    }

    #[test]
    fn a_removed_country_may_be_invited_again() {
        let mut h = heron();
        h.push(removed("ES"));
        given(h).when(add("ES"), coordinator("FR")).then([added("ES")]);
    }

    #[test]
    fn removing_the_lead_or_a_non_participant_is_refused() {
        given(heron())
            .when(remove("FR"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "the lead country cannot be removed");
        given(heron())
            .when(remove("IT"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "IT does not take part in the operation");
    }

    #[test]
    fn a_participant_with_open_tasks_cannot_be_removed() {
        use TaskStatus::*;
        given(heron())
            .when(remove("DE"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "DE still has 1 open task (");
        let mut h = heron();
        h.extend([
            assigned(2, "DE"),
            changed(2, Assigned, Accepted),
            assigned(3, "DE"),
            changed(3, Assigned, Accepted),
            changed(3, Accepted, InProgress),
            assigned(4, "DE"),
            changed(4, Assigned, Declined),
            assigned(5, "DE"),
            changed(5, Assigned, Accepted),
            changed(5, Accepted, Done),
            assigned(6, "ES"),
        ]);
        // Tasks 1 (assigned), 2 (accepted), 3 (in progress) are open; 4 and 5 are not.
        given(h)
            .when(remove("DE"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "DE still has 3 open tasks");
    }

    #[test]
    fn a_participant_whose_tasks_are_all_finished_can_be_removed() {
        use TaskStatus::*;
        let mut h = heron();
        h.extend([
            changed(1, Assigned, Declined),
            assigned(2, "DE"),
            changed(2, Assigned, Accepted),
            changed(2, Accepted, Done),
        ]);
        let h = given(h).when(remove("DE"), coordinator("FR")).then([removed("DE")]);
        // Its finished tasks stay on the record.
        assert_eq!(replay(&h).expect("opened").tasks.len(), 2);
    }

    // ------------------------------------------------------------ tasks

    #[test]
    fn a_task_goes_to_the_lead_or_a_participant_only() {
        given(heron())
            .when(assign(2, "FR"), coordinator("FR"))
            .then([assigned(2, "FR")]);
        given(heron())
            .when(assign(2, "ES"), coordinator("FR"))
            .then([assigned(2, "ES")]);
        given(heron())
            .when(assign(2, "IT"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "IT does not take part in the operation");
        let mut h = heron();
        h.push(removed("ES"));
        given(h)
            .when(assign(2, "ES"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "ES does not take part");
    }

    #[test]
    fn a_task_needs_a_title_and_bounded_details_and_due_date() {
        let with = |title: &str, details: String, due_at: Option<&str>| {
            Command::AssignTask(AssignTask {
                task_id: task_id(2),
                assignee_country: cc("DE"),
                title: title.into(),
                details,
                due_at: due_at.map(str::to_owned),
            })
        };
        let long_title = "t".repeat(TITLE_CHARS_MAX + 1);
        for (cmd, contains) in [
            (with("", String::new(), None), "title must not be empty"),
            (with(" ", String::new(), None), "title must not be empty"),
            (
                with(&long_title, String::new(), None),
                "title is longer than 200 characters",
            ),
            (
                with("t", "d".repeat(DETAILS_CHARS_MAX + 1), None),
                "details is longer than 4000 characters",
            ),
            (
                with("t", String::new(), Some("next friday")),
                "due_at \"next friday\" is not an RFC 3339 date-time",
            ),
        ] {
            given(heron())
                .when(cmd, coordinator("FR"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // Empty details, the longest title and a due date are fine.
        let title = "t".repeat(TITLE_CHARS_MAX);
        given(heron())
            .when(
                with(&title, String::new(), Some("2026-12-01T18:00:00+01:00")),
                coordinator("FR"),
            )
            .then([Event::TaskAssigned(TaskAssigned {
                task_id: task_id(2),
                assignee_country: cc("DE"),
                title,
                details: String::new(),
                due_at: Some("2026-12-01T18:00:00+01:00".into()),
            })]);
    }

    #[test]
    fn a_task_id_is_used_once() {
        given(heron())
            .when(assign(1, "ES"), coordinator("FR"))
            .then_rejected(ErrorCode::Conflict, &format!("task {} already exists", task_id(1)));
    }

    #[test]
    fn an_operation_holds_at_most_1000_tasks() {
        let mut h = vec![opened("FR", &["DE"])];
        h.extend((0..TASKS_MAX as u128).map(|n| assigned(n, "DE")));
        given(h)
            .when(assign(TASKS_MAX as u128, "DE"), coordinator("FR"))
            .then_rejected(ErrorCode::RuleViolated, "at most 1000 tasks");
    }

    // ------------------------------------------------------------ task status

    /// The history that brings task 1 (DE's) to `status`.
    fn task_in(status: TaskStatus) -> Vec<Event> {
        use TaskStatus::*;
        let mut h = heron();
        h.extend(match status {
            Assigned => vec![],
            Accepted => vec![changed(1, Assigned, Accepted)],
            Declined => vec![changed(1, Assigned, Declined)],
            InProgress => vec![changed(1, Assigned, Accepted), changed(1, Accepted, InProgress)],
            Done => vec![changed(1, Assigned, Accepted), changed(1, Accepted, Done)],
        });
        assert_eq!(replay(&h).expect("opened").tasks[&task_id(1)].status, status);
        h
    }

    #[test]
    fn task_status_follows_the_transition_table_and_nothing_else() {
        use TaskStatus::*;
        let table = [
            (Assigned, Accepted),
            (Assigned, Declined),
            (Accepted, InProgress),
            (Accepted, Done),
            (InProgress, Done),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let allowed = table.contains(&(from, to));
                assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
                let when = given(task_in(from)).when(set_status(1, to), liaison("DE"));
                if allowed {
                    when.then([changed(1, from, to)]);
                } else {
                    when.then_rejected(
                        ErrorCode::RuleViolated,
                        &format!("task status cannot change from {from} to {to}"),
                    );
                }
            }
        }
        assert_eq!(
            TaskStatus::ALL.iter().filter(|s| s.is_open()).count(),
            3,
            "assigned, accepted and in_progress are open"
        );
    }

    #[test]
    fn only_a_liaison_of_the_assignee_country_changes_a_task() {
        use TaskStatus::*;
        for who in [
            coordinator("DE"),
            liaison("ES"),
            liaison("FR"),
            coordinator("FR"),
            auditor("DE"),
        ] {
            given(heron())
                .when(set_status(1, Accepted), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison of the assignee country DE");
        }
        given(heron())
            .when(set_status(1, Accepted), liaison("IT"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        // The lead's own tasks are its liaison's.
        let mut h = heron();
        h.push(assigned(2, "FR"));
        given(h)
            .when(set_status(2, Declined), liaison("FR"))
            .then([changed(2, Assigned, Declined)]);
    }

    #[test]
    fn an_unknown_task_is_not_found() {
        given(heron())
            .when(set_status(9, TaskStatus::Accepted), liaison("DE"))
            .then_rejected(ErrorCode::NotFound, &format!("task {} not found", task_id(9)));
    }

    #[test]
    fn a_status_note_is_bounded_and_kept_until_the_next_change() {
        use TaskStatus::*;
        let with_note = |to: TaskStatus, note: String| {
            Command::UpdateTaskStatus(UpdateTaskStatus {
                task_id: task_id(1),
                status: to,
                note: Some(note),
            })
        };
        given(heron())
            .when(with_note(Accepted, "n".repeat(NOTE_CHARS_MAX + 1)), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "note is longer than 4000 characters");
        let h = given(heron())
            .when(with_note(Accepted, "on it".into()), liaison("DE"))
            .then([Event::TaskStatusChanged(TaskStatusChanged {
                task_id: task_id(1),
                from: Assigned,
                to: Accepted,
                note: Some("on it".into()),
            })]);
        assert_eq!(
            replay(&h).expect("opened").tasks[&task_id(1)].note.as_deref(),
            Some("on it")
        );
        let h = given(h)
            .when(set_status(1, InProgress), liaison("DE"))
            .then([changed(1, Accepted, InProgress)]);
        assert_eq!(replay(&h).expect("opened").tasks[&task_id(1)].note, None);
    }

    // ------------------------------------------------------------ close

    #[test]
    fn close_needs_an_outcome() {
        for (outcome, contains) in [
            (String::new(), "outcome must not be empty"),
            ("\n".into(), "outcome must not be empty"),
            (
                "o".repeat(OUTCOME_CHARS_MAX + 1),
                "outcome is longer than 4000 characters",
            ),
        ] {
            given(heron())
                .when(close(&outcome), coordinator("FR"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
    }

    #[test]
    fn open_tasks_do_not_prevent_closing_and_stay_as_they_were() {
        let h = given(heron())
            .when(close("done"), coordinator("FR"))
            .then([closed("done")]);
        let op = replay(&h).expect("opened");
        assert_eq!(op.tasks[&task_id(1)].status, TaskStatus::Assigned);
        assert_eq!(op.outcome.as_deref(), Some("done"));
    }

    #[test]
    fn nothing_changes_a_closed_operation() {
        let mut h = heron();
        h.push(closed("done"));
        for (cmd, who) in [
            (add("IT"), coordinator("FR")),
            (remove("ES"), coordinator("FR")),
            (assign(2, "DE"), coordinator("FR")),
            (set_status(1, TaskStatus::Accepted), liaison("DE")),
            (close("again"), coordinator("FR")),
            // Closed comes before the role: nobody may change it, so say that.
            (add("IT"), liaison("DE")),
        ] {
            given(h.clone())
                .when(cmd, who)
                .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        }
    }

    // ------------------------------------------------------------ parse_command

    #[test]
    fn parse_command_reads_every_command() {
        let task = task_id(1).to_string();
        let bodies = [
            json!({"title": "Héron", "objective": "o", "lead_country": "FR", "countries": ["DE", "ES"]}),
            json!({"country": "IT"}),
            json!({"country": "ES"}),
            json!({"task_id": task, "assignee_country": "DE", "title": "t", "details": "d", "due_at": "2026-12-01T18:00:00Z"}),
            json!({"task_id": task, "status": "in_progress", "note": "n"}),
            json!({"outcome": "done"}),
        ];
        for (name, data) in COMMANDS.into_iter().zip(bodies) {
            let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cmd.name(), name);
        }
        // Optional fields may be left out.
        let cmd = parse_command(
            "assign_task",
            json!({"task_id": task, "assignee_country": "DE", "title": "t", "details": ""}),
        );
        assert!(matches!(cmd, Ok(Command::AssignTask(AssignTask { due_at: None, .. }))));
        let cmd = parse_command("update_task_status", json!({"task_id": task, "status": "done"}));
        assert!(matches!(
            cmd,
            Ok(Command::UpdateTaskStatus(UpdateTaskStatus {
                note: None,
                status: TaskStatus::Done,
                ..
            }))
        ));
    }

    #[test]
    fn parse_command_refuses_what_does_not_fit_precisely() {
        let task = task_id(1).to_string();
        for (name, data, contains) in [
            (
                "delete",
                json!({}),
                "unknown command \"delete\": expected one of open, add_participant",
            ),
            ("Open", json!({}), "unknown command \"Open\""),
            (
                "open",
                json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": [], "secret": 1}),
                "invalid open command: unknown field `secret`",
            ),
            (
                "open",
                json!({"title": "t", "objective": "o", "lead_country": "FR"}),
                "missing field `countries`",
            ),
            (
                "open",
                json!({"title": "t", "objective": "o", "lead_country": "XX", "countries": []}),
                "\"XX\" is not an ISO 3166-1 alpha-2 country code",
            ),
            (
                "open",
                json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE", "XX"]}),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                "open",
                json!({"title": 5, "objective": "o", "lead_country": "FR", "countries": []}),
                "invalid type: integer `5`, expected a string",
            ),
            (
                "open",
                json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": "DE"}),
                "invalid type: string \"DE\", expected a sequence",
            ),
            (
                "add_participant",
                json!({"country": "fr"}),
                "\"fr\" is not an ISO 3166-1",
            ),
            (
                "add_participant",
                json!(null),
                "invalid add_participant command: data must be a JSON object, not null",
            ),
            // serde would take an array by position; a body has named fields.
            (
                "remove_participant",
                json!(["DE"]),
                "data must be a JSON object, not an array",
            ),
            (
                "assign_task",
                json!({"task_id": "42", "assignee_country": "DE", "title": "t", "details": ""}),
                "invalid assign_task command",
            ),
            (
                "update_task_status",
                json!({"task_id": task, "status": "finished"}),
                "unknown variant `finished`",
            ),
            (
                "update_task_status",
                json!({"task_id": task, "status": "done", "note": 3}),
                "invalid type",
            ),
            (
                "close",
                json!({"outcome": "done", "lead_country": "FR"}),
                "unknown field `lead_country`",
            ),
            ("close", json!({"outcome": true}), "invalid type: boolean `true`"),
        ] {
            match parse_command(name, data) {
                Ok(cmd) => panic!("{name} accepted: {cmd:?}"),
                Err(r) => {
                    assert_eq!(r.code(), ErrorCode::Invalid, "{r}");
                    assert!(r.to_string().contains(contains), "{r} does not contain {contains:?}");
                }
            }
        }
    }

    // ------------------------------------------------------------ events as stored

    fn every_kind_of_event() -> Vec<Event> {
        vec![
            opened("FR", &["DE", "ES"]),
            opened("GS", &[]),
            added("IT"),
            removed("ES"),
            assigned(1, "DE"),
            Event::TaskAssigned(TaskAssigned {
                task_id: task_id(2),
                assignee_country: cc("FR"),
                title: "t".into(),
                details: "d\n\"quoted\"".into(),
                due_at: Some("2026-12-01T18:00:00Z".into()),
            }),
            changed(1, TaskStatus::Assigned, TaskStatus::Accepted),
            Event::TaskStatusChanged(TaskStatusChanged {
                task_id: task_id(1),
                from: TaskStatus::InProgress,
                to: TaskStatus::Done,
                note: Some("n".into()),
            }),
            closed("done"),
        ]
    }

    fn holds_no_number(v: &Value) -> bool {
        match v {
            Value::Number(_) => false,
            Value::Array(a) => a.iter().all(holds_no_number),
            Value::Object(o) => o.values().all(holds_no_number),
            _ => true,
        }
    }

    #[test]
    fn every_event_round_trips_through_type_and_data() {
        let events = every_kind_of_event();
        let kinds: BTreeSet<&str> = events.iter().map(Event::event_type).collect();
        assert_eq!(kinds, EVENT_TYPES.into_iter().collect(), "every kind is covered");
        for e in events {
            let data = e.data();
            assert!(data.is_object(), "{data}");
            assert!(holds_no_number(&data), "no floats, in fact no numbers: {data}");
            assert_eq!(Event::from_parts(e.event_type(), &data), Ok(e));
        }
    }

    #[test]
    fn stored_data_has_the_documented_shape() {
        assert_eq!(
            opened("FR", &["DE", "ES"]).data(),
            json!({
                "operation_id": OP,
                "title": "Opération Héron",
                "objective": "dismantle the trafficking network",
                "lead_country": "FR",
                "participants": ["DE", "ES"],
                "opened_at": NOW,
            })
        );
        assert_eq!(assigned(1, "DE").data()["due_at"], Value::Null);
        assert_eq!(
            changed(1, TaskStatus::Accepted, TaskStatus::InProgress).data(),
            json!({"task_id": task_id(1), "from": "accepted", "to": "in_progress", "note": null})
        );
    }

    #[test]
    fn from_parts_refuses_unknown_types_and_malformed_data() {
        let e = Event::from_parts("operation.deleted", &json!({}));
        assert_eq!(e, Err("unknown operations event type \"operation.deleted\"".into()));
        for (t, data, contains) in [
            (
                "participant.added",
                json!({"country": "DE", "extra": "x"}),
                "unknown field `extra`",
            ),
            ("participant.added", json!({}), "missing field `country`"),
            ("participant.added", json!(["DE"]), "not a JSON object"),
            ("operation.closed", json!({"outcome": "x"}), "missing field `closed_at`"),
            (
                "task.status_changed",
                json!({"task_id": task_id(1), "from": "new", "to": "done", "note": null}),
                "unknown variant `new`",
            ),
        ] {
            match Event::from_parts(t, &data) {
                Ok(e) => panic!("{t} accepted: {e:?}"),
                Err(msg) => {
                    assert!(msg.starts_with(&format!("malformed {t} data: ")), "{msg}");
                    assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
                }
            }
        }
    }

    // ------------------------------------------------------------ evolve on a corrupt stream

    #[test]
    #[should_panic(expected = "corrupt operations stream: participant.added before operation.opened")]
    fn evolve_refuses_an_event_before_opened() {
        let _ = replay(&[added("DE")]);
    }

    #[test]
    #[should_panic(expected = "corrupt operations stream: operation.opened on an operation already opened")]
    fn evolve_refuses_a_second_opened() {
        let _ = replay(&[opened("FR", &[]), opened("FR", &[])]);
    }

    #[test]
    #[should_panic(expected = "corrupt operations stream: task.status_changed of unknown task")]
    fn evolve_refuses_a_status_change_of_an_unknown_task() {
        let _ = replay(&[
            opened("FR", &[]),
            changed(1, TaskStatus::Assigned, TaskStatus::Accepted),
        ]);
    }

    #[test]
    #[should_panic(expected = "from accepted while it is assigned")]
    fn evolve_refuses_a_status_change_from_another_status() {
        let _ = replay(&[
            opened("FR", &["DE"]),
            assigned(1, "DE"),
            changed(1, TaskStatus::Accepted, TaskStatus::Done),
        ]);
    }

    // ------------------------------------------------------------ RFC 3339

    #[test]
    fn due_dates_are_rfc_3339_date_times() {
        for ok in [
            "2026-12-01T18:00:00Z",
            "2026-12-01t18:00:00z",
            "2026-12-01T18:00:00.123456Z",
            "2026-12-01T18:00:00.123456789-05:30",
            "2024-02-29T00:00:00+01:00",
            "2000-02-29T00:00:00Z",
            "2026-12-31T23:59:60Z",
        ] {
            assert!(is_rfc3339(ok), "{ok} refused");
        }
        for bad in [
            "",
            "tomorrow",
            "2026-12-01",
            "2026-12-01T18:00:00",
            "2026-12-01 18:00:00Z",
            "2026-12-01T18:00Z",
            "2026-12-01T18:00:00.Z",
            "2026-12-01T18:00:00.1234567890Z",
            "2026-12-01T18:00:00+0100",
            "2026-12-01T18:00:00+1:00",
            "2026-12-01T18:00:00+24:00",
            "2026-12-01T18:00:00Z ",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-12-00T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T18:60:00Z",
            "2026-12-01T18:00:61Z",
            "+026-12-01T18:00:00Z",
            "2026-12-01T18:00:00ZZ",
            "２０２６-12-01T18:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad} accepted");
        }
    }

    #[test]
    fn rejections_carry_their_stable_code() {
        for (r, code) in [
            (Rejection::Invalid("x".into()), "invalid"),
            (Rejection::Forbidden("x".into()), "forbidden"),
            (Rejection::NotFound("x".into()), "not_found"),
            (Rejection::RuleViolated("x".into()), "rule_violated"),
            (Rejection::Conflict("x".into()), "conflict"),
        ] {
            assert_eq!(r.code().as_str(), code);
            assert_eq!(r.to_string(), "x");
        }
    }
}
