//! The deployments aggregate as a pure decider:
//! `decide(&State, &Command, &CrisesView, &OperationsView, &Ctx) -> Result<Vec<Event>, Rejection>`
//! and `try_evolve(State, &Event) -> Result<State, String>`.
//!
//! One aggregate is one deployment of a specialist team to a host country,
//! for a crisis or for a joint operation (stream `deployment-<id>`,
//! `stream_of`). Commands arrive with their name on the subject and their
//! whole body, `deployment_id` included, as JSON `data` (`parse_command`);
//! events are stored as `type` + `data` in the kernel's envelope
//! (`Event::event_type`, `Event::data`, `Event::from_parts`).
//!
//! What deployments knows of crises (the country, whether closed) is a
//! `CrisesView` folded from the crisis service's events, and of operations
//! (the lead, the participants, whether closed) an `OperationsView` folded
//! from the operations service's events; `decide` receives both as
//! arguments.
//!
//! Where a deployment stands:
//!
//! | from        | to                                |
//! |-------------|-----------------------------------|
//! | `requested` | `approved`, `declined`, `recalled` |
//! | `approved`  | `arrived`, `ended`, `recalled`     |
//! | `arrived`   | `ended`, `recalled`                |
//! | `declined`, `ended`, `recalled` | — (final)      |
//!
//! A stand-down request changes no status: it sets a flag on an approved or
//! arrived deployment of a crisis that closed, once.
//!
//! Order of the checks, so that the answer a caller gets never says more
//! than the caller may know:
//!
//! 1. no such deployment, or the caller's country may not see it (neither
//!    host nor contributor nor auditor) → the same `not_found`; for
//!    `request_deployment`, an unknown crisis → `not_found` "crisis not
//!    found", and an unknown operation or one the caller's country does not
//!    take part in → the same `not_found` "operation not found";
//! 2. the deployment is not in a status that allows the command, the crisis
//!    or the operation is closed → `rule_violated`;
//! 3. the caller's role and country → `forbidden`;
//! 4. the command's own fields and rules → `invalid`, `rule_violated`, and
//!    `conflict` when the new deployment's id is already used.
//!
//! Auditors see everything, so for them existence is no secret: they pass
//! step 1 and are refused at step 3.
//!
//! Choices where DESIGN.md is silent:
//!
//! - `request_deployment` names exactly one of `crisis_id` and
//!   `operation_id`; that is checked before step 1 (`invalid`): without it
//!   there is nothing to look up, and the answer tells the caller only about
//!   its own command.
//! - The caller of `request_deployment` contributes: its country is among
//!   the members' countries. Contributing countries may be any country or
//!   the secretariat `GS` (incident response teams are often secretariat
//!   staff); the host is a country, never `GS`, and never a contributor.
//! - For an operation, every contributing country takes part in it, not
//!   only the caller and the host: a contributor sees the deployment, so a
//!   country outside the operation would learn of it.
//! - A member is listed once: the same name, role and country twice is
//!   `invalid` (a roster, not a head count).
//! - Approval is refused (`rule_violated`) once the crisis or the operation
//!   is closed: no team is sent to what is over. Declining, arriving,
//!   ending and recalling are not: they answer, record a fact or wind down.
//! - `request_stand_down` is sent by the service itself when it sees
//!   `crisis.closed`, under whatever actor it uses; it is accepted only
//!   when true (linked crisis, closed, deployment approved or arrived), so
//!   it has no visibility, role or country step: any actor may send it.
//!   On a deployment already stood down, ended, declined or recalled it
//!   decides nothing (`Ok(vec![])`), so that it can be sent again safely.
//!   On a deployment still `requested` it is refused: the host may still
//!   decline it, the contributors recall it, and approval is refused.
//! - A team asked to stand down may still be marked arrived (it may have
//!   been on its way) and must still be ended or recalled.
//!
//! Architecture invariant: no IO, no clock, no randomness. Time and the
//! actor come in `Ctx`, new ids in the command, crises and operations in
//! the views.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use concord_core::{Actor, CountryCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Longest reason (of a request, a decline, a recall or a stand-down), in
/// characters.
pub const REASON_CHARS_MAX: usize = 4000;
/// Longest end-of-deployment report, in characters: a summary of what the
/// team did; the full report is a document of its own.
pub const REPORT_CHARS_MAX: usize = 4000;
/// Longest name of a team member, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Longest role of a team member ("team leader", "forensic odontologist"),
/// in characters: a function, not a job description.
pub const MEMBER_ROLE_CHARS_MAX: usize = 200;
/// Most members of one team. Rationale: the largest victim identification
/// deployments count a few dozen officers; past a hundred it is several
/// teams, and the whole state is rebuilt for every command.
pub const MEMBERS_MAX: usize = 100;

/// The version of every event's `data` schema (the envelope's
/// `schema_version`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What `decide` needs besides the state, the command and the views: who
/// asks and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: Actor,
    /// RFC 3339 UTC; becomes `requested_at`, `approved_at`, ….
    pub now: String,
}

// ---------------------------------------------------------------- values

/// The kind of specialist team. An unknown kind does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Team {
    /// Incident response team.
    Irt,
    /// Disaster victim identification.
    Dvi,
    /// Major event support team.
    Imest,
    Cyber,
    Forensics,
}

impl Team {
    pub const ALL: [Team; 5] = [Team::Irt, Team::Dvi, Team::Imest, Team::Cyber, Team::Forensics];

    pub fn as_str(&self) -> &'static str {
        match self {
            Team::Irt => "irt",
            Team::Dvi => "dvi",
            Team::Imest => "imest",
            Team::Cyber => "cyber",
            Team::Forensics => "forensics",
        }
    }
}

impl fmt::Display for Team {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One officer of a team, and the country that sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    /// What the officer does in the team.
    pub role: String,
    pub country: CountryCode,
}

// ---------------------------------------------------------------- commands

/// `request_deployment`: a liaison of a contributing country asks to send a
/// team to a host country, for a crisis there or for an operation both take
/// part in. The caller generates `deployment_id`; exactly one of
/// `crisis_id` and `operation_id` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDeployment {
    pub deployment_id: Uuid,
    pub team: Team,
    pub host_country: CountryCode,
    #[serde(default)]
    pub crisis_id: Option<Uuid>,
    #[serde(default)]
    pub operation_id: Option<Uuid>,
    pub reason: String,
    /// The contributing countries are the members' countries.
    pub members: Vec<Member>,
}

/// `approve_deployment`: a liaison of the host country consents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveDeployment {
    pub deployment_id: Uuid,
}

/// `decline_deployment`: a liaison of the host country refuses, with a
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineDeployment {
    pub deployment_id: Uuid,
    pub reason: String,
}

/// `mark_arrived`: a liaison of the host or of a contributing country
/// records that the approved team arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkArrived {
    pub deployment_id: Uuid,
}

/// `end_deployment`: a liaison of the host or of a contributing country
/// ends an approved or arrived deployment, with a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndDeployment {
    pub deployment_id: Uuid,
    pub report: String,
}

/// `recall`: a liaison of a contributing country calls the team back before
/// it ended, with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recall {
    pub deployment_id: Uuid,
    pub reason: String,
}

/// `request_stand_down`: the service itself, on seeing its crisis closed,
/// asks an approved or arrived team to stand down. No HTTP route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStandDown {
    pub deployment_id: Uuid,
    pub crisis_id: Uuid,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    RequestDeployment(RequestDeployment),
    ApproveDeployment(ApproveDeployment),
    DeclineDeployment(DeclineDeployment),
    MarkArrived(MarkArrived),
    EndDeployment(EndDeployment),
    Recall(Recall),
    RequestStandDown(RequestStandDown),
}

/// Every command name, i.e. the last token of
/// `concord.cmd.deployments.<name>`.
pub const COMMANDS: [&str; 7] = [
    "request_deployment",
    "approve_deployment",
    "decline_deployment",
    "mark_arrived",
    "end_deployment",
    "recall",
    "request_stand_down",
];

impl Command {
    /// The command's name, one of `COMMANDS`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RequestDeployment(_) => "request_deployment",
            Command::ApproveDeployment(_) => "approve_deployment",
            Command::DeclineDeployment(_) => "decline_deployment",
            Command::MarkArrived(_) => "mark_arrived",
            Command::EndDeployment(_) => "end_deployment",
            Command::Recall(_) => "recall",
            Command::RequestStandDown(_) => "request_stand_down",
        }
    }

    /// The deployment the command addresses.
    pub fn deployment_id(&self) -> Uuid {
        match self {
            Command::RequestDeployment(c) => c.deployment_id,
            Command::ApproveDeployment(c) => c.deployment_id,
            Command::DeclineDeployment(c) => c.deployment_id,
            Command::MarkArrived(c) => c.deployment_id,
            Command::EndDeployment(c) => c.deployment_id,
            Command::Recall(c) => c.deployment_id,
            Command::RequestStandDown(c) => c.deployment_id,
        }
    }
}

/// The stream a command addresses: "deployment-<deployment_id>".
pub fn stream_of(cmd: &Command) -> String {
    format!("deployment-{}", cmd.deployment_id())
}

/// Builds a command from its name (the subject's last token) and its whole
/// body, `deployment_id` included. An unknown name or a body that does not
/// fit (unknown or missing field, wrong type, a country code that names
/// nobody, an unknown team) is `Rejection::Invalid`.
pub fn parse_command(name: &str, data: Value) -> Result<Command, Rejection> {
    use concord_core::decider::command_body as body;
    match name {
        "request_deployment" => body(name, data).map(Command::RequestDeployment),
        "approve_deployment" => body(name, data).map(Command::ApproveDeployment),
        "decline_deployment" => body(name, data).map(Command::DeclineDeployment),
        "mark_arrived" => body(name, data).map(Command::MarkArrived),
        "end_deployment" => body(name, data).map(Command::EndDeployment),
        "recall" => body(name, data).map(Command::Recall),
        "request_stand_down" => body(name, data).map(Command::RequestStandDown),
        _ => Err(Rejection::Invalid(format!(
            "unknown command {name:?}: expected one of {}",
            COMMANDS.join(", ")
        ))),
    }
}

// ---------------------------------------------------------------- events

/// `deployment.requested`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequested {
    pub deployment_id: Uuid,
    pub team: Team,
    pub host_country: CountryCode,
    /// Exactly one of `crisis_id` and `operation_id` is set; both are
    /// always present in the stored data, the other one `null`.
    pub crisis_id: Option<Uuid>,
    pub operation_id: Option<Uuid>,
    /// The members' countries, sorted, without duplicates; never the host.
    pub contributing_countries: Vec<CountryCode>,
    pub members: Vec<Member>,
    pub reason: String,
    /// The requester's country, one of the contributing countries.
    pub requesting_country: CountryCode,
    /// The requester's `sub`.
    pub requested_by: String,
    pub requested_at: String,
}

/// `deployment.approved`: the host consented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentApproved {
    pub approved_by: String,
    pub approved_at: String,
}

/// `deployment.declined`: the host refused; final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentDeclined {
    pub reason: String,
    pub declined_by: String,
    pub declined_at: String,
}

/// `deployment.arrived`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentArrived {
    pub arrived_at: String,
    pub marked_by: String,
}

/// `deployment.ended`: final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentEnded {
    pub report: String,
    pub ended_by: String,
    pub ended_at: String,
}

/// `deployment.recalled`: a contributing country called the team back;
/// final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRecalled {
    pub reason: String,
    pub recalled_by: String,
    pub recalled_at: String,
}

/// `deployment.stand_down_requested`: the deployment's crisis closed; the
/// status stays what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandDownRequested {
    pub crisis_id: Uuid,
    pub reason: String,
    pub requested_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    DeploymentRequested(DeploymentRequested),
    DeploymentApproved(DeploymentApproved),
    DeploymentDeclined(DeploymentDeclined),
    DeploymentArrived(DeploymentArrived),
    DeploymentEnded(DeploymentEnded),
    DeploymentRecalled(DeploymentRecalled),
    StandDownRequested(StandDownRequested),
}

/// Every event type the deployments log records (the envelope's `type`).
pub const EVENT_TYPES: [&str; 7] = [
    "deployment.requested",
    "deployment.approved",
    "deployment.declined",
    "deployment.arrived",
    "deployment.ended",
    "deployment.recalled",
    "deployment.stand_down_requested",
];

impl Event {
    /// The envelope's `type`, one of `EVENT_TYPES`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::DeploymentRequested(_) => "deployment.requested",
            Event::DeploymentApproved(_) => "deployment.approved",
            Event::DeploymentDeclined(_) => "deployment.declined",
            Event::DeploymentArrived(_) => "deployment.arrived",
            Event::DeploymentEnded(_) => "deployment.ended",
            Event::DeploymentRecalled(_) => "deployment.recalled",
            Event::StandDownRequested(_) => "deployment.stand_down_requested",
        }
    }

    /// The envelope's `data`: a JSON object of strings, arrays and `null`s
    /// (no numbers).
    pub fn data(&self) -> Value {
        let data = match self {
            Event::DeploymentRequested(e) => serde_json::to_value(e),
            Event::DeploymentApproved(e) => serde_json::to_value(e),
            Event::DeploymentDeclined(e) => serde_json::to_value(e),
            Event::DeploymentArrived(e) => serde_json::to_value(e),
            Event::DeploymentEnded(e) => serde_json::to_value(e),
            Event::DeploymentRecalled(e) => serde_json::to_value(e),
            Event::StandDownRequested(e) => serde_json::to_value(e),
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
            "deployment.requested" => body(event_type, data).map(Event::DeploymentRequested),
            "deployment.approved" => body(event_type, data).map(Event::DeploymentApproved),
            "deployment.declined" => body(event_type, data).map(Event::DeploymentDeclined),
            "deployment.arrived" => body(event_type, data).map(Event::DeploymentArrived),
            "deployment.ended" => body(event_type, data).map(Event::DeploymentEnded),
            "deployment.recalled" => body(event_type, data).map(Event::DeploymentRecalled),
            "deployment.stand_down_requested" => body(event_type, data).map(Event::StandDownRequested),
            _ => Err(format!("unknown deployments event type {event_type:?}")),
        }
    }
}

// ---------------------------------------------------------------- the views

/// What deployments knows of operations: the operations crate owns the
/// meaning of its events, and with it this fold (intel uses it too).
pub use concord_contracts::operations::membership::{OperationInfo, OperationsView};

/// One crisis as deployments knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrisisInfo {
    /// Where the crisis is: the only possible host of its deployments.
    pub country: CountryCode,
    pub closed: bool,
}

/// What deployments knows of crises, folded from the crisis service's
/// events (it never calls that service).
#[derive(Default, Clone, Debug)]
pub struct CrisesView {
    crises: BTreeMap<Uuid, CrisisInfo>,
}

impl CrisesView {
    /// Folds one crisis event. `stream` is "crisis-<uuid>". Sitreps,
    /// assistance requests, escalations and unknown types are ignored (Ok).
    /// Malformed data of a known type is Err, and so is a `crisis.closed` of
    /// a crisis never declared (a gap in what was read), or an event whose
    /// `crisis_id` is not its stream's. A second `crisis.declared` of the
    /// same crisis is ignored, and closing twice is closing, so that folding
    /// an event again changes nothing.
    pub fn apply(&mut self, stream: &str, event_type: &str, data: &Value) -> Result<(), String> {
        // The crisis service's event data, as far as deployments needs it.
        // Unknown fields are tolerated: that service may add some.
        #[derive(Deserialize)]
        struct Declared {
            crisis_id: Uuid,
            country: CountryCode,
        }
        // `closed_at` is parsed only to refuse malformed data.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Closed {
            crisis_id: Uuid,
            closed_at: String,
        }
        fn body<'a, T: Deserialize<'a>>(event_type: &str, data: &'a Value) -> Result<T, String> {
            if !data.is_object() {
                return Err(format!("malformed crisis {event_type} data: not a JSON object"));
            }
            T::deserialize(data).map_err(|e| format!("malformed crisis {event_type} data: {e}"))
        }

        if !matches!(event_type, "crisis.declared" | "crisis.closed") {
            return Ok(());
        }
        let id = stream
            .strip_prefix("crisis-")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("crisis {event_type} on stream {stream:?}, not crisis-<uuid>"))?;
        let same_crisis = |crisis_id: Uuid| {
            if crisis_id == id {
                Ok(())
            } else {
                Err(format!("crisis {event_type} of {crisis_id} on stream {stream}"))
            }
        };
        if event_type == "crisis.declared" {
            let e: Declared = body(event_type, data)?;
            same_crisis(e.crisis_id)?;
            self.crises.entry(id).or_insert(CrisisInfo {
                country: e.country,
                closed: false,
            });
            return Ok(());
        }
        // Parse before looking the crisis up: malformed data is the clearer
        // error.
        let e: Closed = body(event_type, data)?;
        same_crisis(e.crisis_id)?;
        let crisis = self
            .crises
            .get_mut(&id)
            .ok_or_else(|| format!("crisis {event_type} of crisis {id}, never declared"))?;
        crisis.closed = true;
        Ok(())
    }

    pub fn get(&self, id: Uuid) -> Option<&CrisisInfo> {
        self.crises.get(&id)
    }
}

// ---------------------------------------------------------------- state

/// Where a deployment stands (see the table in the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Requested,
    Approved,
    Declined,
    Arrived,
    Ended,
    Recalled,
}

impl DeploymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeploymentStatus::Requested => "requested",
            DeploymentStatus::Approved => "approved",
            DeploymentStatus::Declined => "declined",
            DeploymentStatus::Arrived => "arrived",
            DeploymentStatus::Ended => "ended",
            DeploymentStatus::Recalled => "recalled",
        }
    }

    /// Declined, ended or recalled: nothing changes it any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            DeploymentStatus::Declined | DeploymentStatus::Ended | DeploymentStatus::Recalled
        )
    }

    /// Approved or arrived: the team is on its way or there.
    pub fn is_under_way(&self) -> bool {
        matches!(self, DeploymentStatus::Approved | DeploymentStatus::Arrived)
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: Uuid,
    pub team: Team,
    pub host_country: CountryCode,
    pub crisis_id: Option<Uuid>,
    pub operation_id: Option<Uuid>,
    pub contributing_countries: BTreeSet<CountryCode>,
    pub members: Vec<Member>,
    pub reason: String,
    pub requesting_country: CountryCode,
    pub requested_by: String,
    pub requested_at: String,
    pub status: DeploymentStatus,
    pub approval: Option<DeploymentApproved>,
    pub decline: Option<DeploymentDeclined>,
    pub arrival: Option<DeploymentArrived>,
    pub end: Option<DeploymentEnded>,
    pub recall: Option<DeploymentRecalled>,
    pub stand_down: Option<StandDownRequested>,
}

impl Deployment {
    /// The host and the contributing countries. (Auditors: see
    /// `State::visible_to`.)
    pub fn visible_to(&self, country: CountryCode) -> bool {
        country == self.host_country || self.contributing_countries.contains(&country)
    }
}

/// The state of one stream: `Empty` (the default) until its first event.
// One state per command, rebuilt and dropped; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub enum State {
    #[default]
    Empty,
    Deployment(Deployment),
}

impl State {
    /// Whether `actor` may see this deployment (DESIGN.md, Visibility): the
    /// host and the contributing countries; auditors see everything there
    /// is. `Empty` is visible to nobody, so an unknown id and a hidden one
    /// get the same answer.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        match self {
            State::Empty => false,
            State::Deployment(_) if actor.role == Role::Auditor => true,
            State::Deployment(d) => d.visible_to(actor.country),
        }
    }

    /// The crisis the deployment is for; `None` for one for an operation,
    /// and for `Empty`.
    pub fn crisis_id(&self) -> Option<Uuid> {
        match self {
            State::Empty => None,
            State::Deployment(d) => d.crisis_id,
        }
    }

    /// Whether the choreography owes this deployment a `request_stand_down`
    /// when crisis `crisis_id` closes: it is for that crisis, approved or
    /// arrived, and not asked to stand down yet.
    pub fn awaits_stand_down(&self, crisis_id: Uuid) -> bool {
        match self {
            State::Empty => false,
            State::Deployment(d) => d.crisis_id == Some(crisis_id) && d.status.is_under_way() && d.stand_down.is_none(),
        }
    }

    /// What the `get` query answers (`null` for `Empty`). The stream version
    /// is not part of it: the caller adds it.
    pub fn view(&self) -> Value {
        match self {
            State::Empty => Value::Null,
            State::Deployment(d) => json!({
                "id": d.id,
                "status": d.status,
                "team": d.team,
                "host_country": d.host_country,
                "crisis_id": d.crisis_id,
                "operation_id": d.operation_id,
                "contributing_countries": d.contributing_countries,
                "members": d.members,
                "reason": d.reason,
                "requesting_country": d.requesting_country,
                "requested_by": d.requested_by,
                "requested_at": d.requested_at,
                "approval": d.approval,
                "decline": d.decline,
                "arrival": d.arrival,
                "end": d.end,
                "recall": d.recall,
                "stand_down": d.stand_down,
            }),
        }
    }

    /// What the state is, for messages about a corrupt stream.
    fn describe(&self) -> String {
        match self {
            State::Empty => "an empty stream".into(),
            State::Deployment(d) if d.stand_down.is_some() => {
                format!("a deployment that is {}, asked to stand down", d.status)
            }
            State::Deployment(d) => format!("a deployment that is {}", d.status),
        }
    }
}

// ---------------------------------------------------------------- rejections

/// A refused command (shared by every decider).
pub use concord_core::decider::Rejection;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). `Ok(vec![])` means there is nothing to do (a stand-down
/// already requested or no longer needed). Deterministic: everything it
/// needs is in its arguments.
pub fn decide(
    state: &State,
    cmd: &Command,
    crises: &CrisesView,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    match cmd {
        Command::RequestDeployment(c) => decide_request(state, c, crises, ops, ctx),
        Command::ApproveDeployment(_) => decide_approve(state, crises, ops, ctx),
        Command::DeclineDeployment(c) => decide_decline(state, c, ctx),
        Command::MarkArrived(_) => decide_mark_arrived(state, ctx),
        Command::EndDeployment(c) => decide_end(state, c, ctx),
        Command::Recall(c) => decide_recall(state, c, ctx),
        Command::RequestStandDown(c) => decide_request_stand_down(state, c, crises, ctx),
    }
}

/// What a deployment is for, once looked up.
enum Purpose<'a> {
    Crisis(Uuid, &'a CrisisInfo),
    Operation(Uuid, &'a OperationInfo),
}

fn decide_request(
    state: &State,
    cmd: &RequestDeployment,
    crises: &CrisesView,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    // Before step 1: see the module's choices.
    let purpose = match (cmd.crisis_id, cmd.operation_id) {
        (Some(_), Some(_)) => {
            return Err(Rejection::Invalid(
                "a deployment is for a crisis or for an operation, not both: give crisis_id or operation_id".into(),
            ));
        }
        (None, None) => {
            return Err(Rejection::Invalid(
                "a deployment is for a crisis or for an operation: give crisis_id or operation_id".into(),
            ));
        }
        // Steps 1 and 2.
        (Some(id), None) => match crises.get(id) {
            None => return Err(Rejection::NotFound("crisis not found".into())),
            Some(crisis) if crisis.closed => return Err(Rejection::RuleViolated("crisis is closed".into())),
            Some(crisis) => Purpose::Crisis(id, crisis),
        },
        (None, Some(id)) => Purpose::Operation(id, open_operation_seen_by(ops, id, actor)?),
    };
    // Step 3.
    if actor.role != Role::Liaison {
        return Err(Rejection::Forbidden("only a liaison can request a deployment".into()));
    }
    let contributing: BTreeSet<CountryCode> = cmd.members.iter().map(|m| m.country).collect();
    if !contributing.contains(&actor.country) {
        return Err(Rejection::Forbidden(format!(
            "{} contributes no member to the team; a liaison requests a deployment its own country contributes to",
            actor.country
        )));
    }
    // Step 4.
    let host = cmd.host_country;
    if host.is_secretariat() {
        return Err(Rejection::Invalid(
            "host_country GS is the secretariat, not a country".into(),
        ));
    }
    if cmd.members.len() > MEMBERS_MAX {
        return Err(Rejection::Invalid(format!(
            "a team has at most {MEMBERS_MAX} members, {} given",
            cmd.members.len()
        )));
    }
    for (i, member) in cmd.members.iter().enumerate() {
        required_text(&format!("members[{i}].name"), &member.name, NAME_CHARS_MAX)?;
        required_text(&format!("members[{i}].role"), &member.role, MEMBER_ROLE_CHARS_MAX)?;
        if cmd.members[..i].contains(member) {
            return Err(Rejection::Invalid(format!(
                "members lists {} ({}, {}) twice",
                member.name, member.role, member.country
            )));
        }
    }
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    if contributing.contains(&host) {
        return Err(Rejection::RuleViolated(format!(
            "{host} hosts the deployment and cannot also contribute to it"
        )));
    }
    match purpose {
        Purpose::Crisis(id, crisis) if crisis.country != host => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {id} is in {}, not in the host country {host}",
                crisis.country
            )));
        }
        Purpose::Crisis(..) => {}
        Purpose::Operation(id, op) => {
            if let Some(outsider) = [host].iter().chain(&contributing).find(|c| !op.takes_part(**c)) {
                return Err(Rejection::RuleViolated(format!(
                    "{outsider} does not take part in operation {id}"
                )));
            }
        }
    }
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!(
            "deployment {} already exists",
            cmd.deployment_id
        )));
    }
    Ok(vec![Event::DeploymentRequested(DeploymentRequested {
        deployment_id: cmd.deployment_id,
        team: cmd.team,
        host_country: host,
        crisis_id: cmd.crisis_id,
        operation_id: cmd.operation_id,
        contributing_countries: contributing.into_iter().collect(),
        members: cmd.members.clone(),
        reason: cmd.reason.clone(),
        requesting_country: actor.country,
        requested_by: actor.sub.clone(),
        requested_at: ctx.now.clone(),
    })])
}

fn decide_approve(
    state: &State,
    crises: &CrisesView,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Requested],
        "only a requested deployment is approved",
    )?;
    purpose_still_open(d, crises, ops)?;
    host_liaison_only(d, actor, "approve")?;
    Ok(vec![Event::DeploymentApproved(DeploymentApproved {
        approved_by: actor.sub.clone(),
        approved_at: ctx.now.clone(),
    })])
}

fn decide_decline(state: &State, cmd: &DeclineDeployment, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Requested],
        "only a requested deployment is declined",
    )?;
    host_liaison_only(d, actor, "decline")?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::DeploymentDeclined(DeploymentDeclined {
        reason: cmd.reason.clone(),
        declined_by: actor.sub.clone(),
        declined_at: ctx.now.clone(),
    })])
}

fn decide_mark_arrived(state: &State, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Approved],
        "a team arrives once, after the host approved its deployment",
    )?;
    host_or_contributor_liaison_only(d, actor, "mark the team arrived")?;
    Ok(vec![Event::DeploymentArrived(DeploymentArrived {
        arrived_at: ctx.now.clone(),
        marked_by: actor.sub.clone(),
    })])
}

fn decide_end(state: &State, cmd: &EndDeployment, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, actor)?;
    status_in(
        d,
        &[DeploymentStatus::Approved, DeploymentStatus::Arrived],
        "only an approved or arrived deployment is ended",
    )?;
    host_or_contributor_liaison_only(d, actor, "end the deployment")?;
    required_text("report", &cmd.report, REPORT_CHARS_MAX)?;
    Ok(vec![Event::DeploymentEnded(DeploymentEnded {
        report: cmd.report.clone(),
        ended_by: actor.sub.clone(),
        ended_at: ctx.now.clone(),
    })])
}

fn decide_recall(state: &State, cmd: &Recall, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let d = deployment_seen_by(state, actor)?;
    status_in(
        d,
        &[
            DeploymentStatus::Requested,
            DeploymentStatus::Approved,
            DeploymentStatus::Arrived,
        ],
        "only a requested, approved or arrived deployment is recalled",
    )?;
    if !(actor.role == Role::Liaison && d.contributing_countries.contains(&actor.country)) {
        return Err(Rejection::Forbidden(
            "only a liaison of a contributing country can recall the team".into(),
        ));
    }
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::DeploymentRecalled(DeploymentRecalled {
        reason: cmd.reason.clone(),
        recalled_by: actor.sub.clone(),
        recalled_at: ctx.now.clone(),
    })])
}

fn decide_request_stand_down(
    state: &State,
    cmd: &RequestStandDown,
    crises: &CrisesView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    // No visibility, role or country step: see the module's choices.
    let State::Deployment(d) = state else {
        return Err(Rejection::NotFound("deployment not found".into()));
    };
    match d.crisis_id {
        Some(id) if id == cmd.crisis_id => {}
        Some(id) => {
            return Err(Rejection::RuleViolated(format!(
                "deployment is for crisis {id}, not for crisis {}",
                cmd.crisis_id
            )));
        }
        None => {
            return Err(Rejection::RuleViolated(format!(
                "deployment is for an operation, not for crisis {}",
                cmd.crisis_id
            )));
        }
    }
    match crises.get(cmd.crisis_id) {
        Some(crisis) if crisis.closed => {}
        Some(_) => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {} is not closed; a stand-down follows its closing",
                cmd.crisis_id
            )));
        }
        None => {
            return Err(Rejection::RuleViolated(format!(
                "crisis {} is unknown to deployments",
                cmd.crisis_id
            )));
        }
    }
    if d.stand_down.is_some() || d.status.is_final() {
        // Already asked, or nothing left to stand down.
        return Ok(vec![]);
    }
    status_in(
        d,
        &[DeploymentStatus::Approved, DeploymentStatus::Arrived],
        "only an approved or arrived team is asked to stand down",
    )?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::StandDownRequested(StandDownRequested {
        crisis_id: cmd.crisis_id,
        reason: cmd.reason.clone(),
        requested_at: ctx.now.clone(),
    })])
}

/// Steps 1 and 2 for a request for an operation: it is known, the actor's
/// country takes part (or the actor audits), and it is open.
fn open_operation_seen_by<'a>(
    ops: &'a OperationsView,
    id: Uuid,
    actor: &Actor,
) -> Result<&'a OperationInfo, Rejection> {
    let op = match ops.get(id) {
        Some(op) if op.takes_part(actor.country) || actor.role == Role::Auditor => op,
        _ => return Err(Rejection::NotFound("operation not found".into())),
    };
    if op.closed {
        return Err(Rejection::RuleViolated("operation is closed".into()));
    }
    Ok(op)
}

/// Step 2 for an approval: the crisis or the operation is still open. One
/// deployments does not know cannot be checked, so it is refused too (the
/// service brings the views up to date before deciding, so this does not
/// happen).
fn purpose_still_open(d: &Deployment, crises: &CrisesView, ops: &OperationsView) -> Result<(), Rejection> {
    if let Some(id) = d.crisis_id {
        match crises.get(id) {
            Some(crisis) if !crisis.closed => {}
            Some(_) => return Err(Rejection::RuleViolated("crisis is closed".into())),
            None => {
                return Err(Rejection::RuleViolated(format!(
                    "crisis {id} is unknown to deployments"
                )));
            }
        }
    }
    if let Some(id) = d.operation_id {
        match ops.get(id) {
            Some(op) if !op.closed => {}
            Some(_) => return Err(Rejection::RuleViolated("operation is closed".into())),
            None => {
                return Err(Rejection::RuleViolated(format!(
                    "operation {id} is unknown to deployments"
                )));
            }
        }
    }
    Ok(())
}

/// Step 1 for a command on an existing deployment.
fn deployment_seen_by<'a>(state: &'a State, actor: &Actor) -> Result<&'a Deployment, Rejection> {
    match state {
        State::Deployment(d) if state.visible_to(actor) => Ok(d),
        _ => Err(Rejection::NotFound("deployment not found".into())),
    }
}

/// Step 2: the deployment is in one of `allowed`.
fn status_in(d: &Deployment, allowed: &[DeploymentStatus], rule: &str) -> Result<(), Rejection> {
    if allowed.contains(&d.status) {
        Ok(())
    } else {
        Err(Rejection::RuleViolated(format!("deployment is {}; {rule}", d.status)))
    }
}

fn host_liaison_only(d: &Deployment, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && actor.country == d.host_country {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the host country {} can {what} the deployment",
            d.host_country
        )))
    }
}

fn host_or_contributor_liaison_only(d: &Deployment, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && d.visible_to(actor.country) {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the host or of a contributing country can {what}"
        )))
    }
}

/// Not blank, and at most `max` characters.
fn required_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::Invalid(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(Rejection::Invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

// ---------------------------------------------------------------- evolve

/// The state after `event`, or why `event` cannot follow `state`.
///
/// It cannot when the stream would make no sense: a first event that does
/// not request a deployment, or a request for both or neither of a crisis
/// and an operation; a second request; a move the status table does not
/// allow; a stand-down of a deployment that is not approved or arrived, is
/// already asked to stand down, or is for another crisis. The log only ever
/// holds what `decide` produced, under a hash chain, so such a sequence
/// means a corrupt log, and carrying on from a silently skipped event would
/// answer with a wrong state.
pub fn try_evolve(state: State, event: &Event) -> Result<State, String> {
    use DeploymentStatus as S;
    let corrupt = |state: &State| {
        format!(
            "corrupt deployments stream: {} on {}",
            event.event_type(),
            state.describe()
        )
    };
    match (state, event) {
        (State::Empty, Event::DeploymentRequested(e)) if e.crisis_id.is_some() != e.operation_id.is_some() => {
            Ok(State::Deployment(Deployment {
                id: e.deployment_id,
                team: e.team,
                host_country: e.host_country,
                crisis_id: e.crisis_id,
                operation_id: e.operation_id,
                contributing_countries: e.contributing_countries.iter().copied().collect(),
                members: e.members.clone(),
                reason: e.reason.clone(),
                requesting_country: e.requesting_country,
                requested_by: e.requested_by.clone(),
                requested_at: e.requested_at.clone(),
                status: S::Requested,
                approval: None,
                decline: None,
                arrival: None,
                end: None,
                recall: None,
                stand_down: None,
            }))
        }
        (State::Empty, Event::DeploymentRequested(_)) => Err(
            "corrupt deployments stream: deployment.requested for both or neither of a crisis and an operation".into(),
        ),
        (State::Deployment(mut d), Event::DeploymentApproved(e)) if d.status == S::Requested => {
            d.status = S::Approved;
            d.approval = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentDeclined(e)) if d.status == S::Requested => {
            d.status = S::Declined;
            d.decline = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentArrived(e)) if d.status == S::Approved => {
            d.status = S::Arrived;
            d.arrival = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentEnded(e)) if d.status.is_under_way() => {
            d.status = S::Ended;
            d.end = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::DeploymentRecalled(e)) if !d.status.is_final() => {
            d.status = S::Recalled;
            d.recall = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (State::Deployment(mut d), Event::StandDownRequested(e))
            if d.status.is_under_way() && d.stand_down.is_none() && d.crisis_id == Some(e.crisis_id) =>
        {
            d.stand_down = Some(e.clone());
            Ok(State::Deployment(d))
        }
        (state, _) => Err(corrupt(&state)),
    }
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

    /// An earthquake in IT; open.
    const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c01);
    /// A flood in IT; open.
    const OTHER_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c02);
    /// A wildfire in GR; closed.
    const CLOSED_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c03);
    /// Known to nobody.
    const UNKNOWN_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_0c04);
    /// FR leads; DE, ES and IT take part.
    const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
    /// FR leads, ES takes part; closed.
    const CLOSED_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00bb);
    /// Known to nobody.
    const UNKNOWN_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00cc);
    const DEPLOYMENT: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0001);
    const NOW: &str = "2026-11-23T09:30:00.000000Z";
    const LATER: &str = "2026-12-01T17:00:00.000000Z";

    fn cc(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("test country codes are real")
    }
    fn ccs(codes: &[&str]) -> Vec<CountryCode> {
        codes.iter().map(|c| cc(c)).collect()
    }

    fn sub(role: Role, country: &str) -> String {
        format!("{}-{}", country.to_lowercase(), role.as_str())
    }
    fn actor(role: Role, country: &str) -> Actor {
        Actor {
            sub: sub(role, country),
            role,
            country: cc(country),
        }
    }
    fn liaison(country: &str) -> Actor {
        actor(Role::Liaison, country)
    }
    fn coordinator(country: &str) -> Actor {
        actor(Role::Coordinator, country)
    }
    fn reviewer(country: &str) -> Actor {
        actor(Role::Reviewer, country)
    }
    fn auditor(country: &str) -> Actor {
        actor(Role::Auditor, country)
    }

    // The crises view, built the way the service builds it.
    fn apply_crisis(view: &mut CrisesView, crisis: Uuid, event_type: &str, data: Value) {
        view.apply(&format!("crisis-{crisis}"), event_type, &data)
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
    fn declared_data(crisis: Uuid, country: &str) -> Value {
        json!({
            "crisis_id": crisis,
            "kind": "earthquake",
            "title": "Terremoto in Umbria",
            "country": country,
            "severity": "high",
            "declared_by": "it-liaison",
            "declared_at": NOW,
        })
    }
    fn closed_data(crisis: Uuid) -> Value {
        json!({"crisis_id": crisis, "summary": "relief over", "closed_by": "it-liaison", "closed_at": LATER})
    }
    fn crises() -> CrisesView {
        let mut v = CrisesView::default();
        apply_crisis(&mut v, CRISIS, "crisis.declared", declared_data(CRISIS, "IT"));
        apply_crisis(
            &mut v,
            OTHER_CRISIS,
            "crisis.declared",
            declared_data(OTHER_CRISIS, "IT"),
        );
        apply_crisis(
            &mut v,
            CLOSED_CRISIS,
            "crisis.declared",
            declared_data(CLOSED_CRISIS, "GR"),
        );
        apply_crisis(&mut v, CLOSED_CRISIS, "crisis.closed", closed_data(CLOSED_CRISIS));
        v
    }
    /// `crises()` with `CRISIS` closed.
    fn crisis_closed() -> CrisesView {
        let mut v = crises();
        apply_crisis(&mut v, CRISIS, "crisis.closed", closed_data(CRISIS));
        v
    }

    // The operations view, built the way the service builds it.
    fn apply_op(view: &mut OperationsView, op: Uuid, event_type: &str, data: Value) {
        view.apply_stored(&format!("operation-{op}"), event_type, &data)
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
    fn opened_data(op: Uuid, lead: &str, participants: &[&str]) -> Value {
        json!({
            "operation_id": op,
            "title": "Operazione Rete",
            "objective": "take the botnet down",
            "lead_country": lead,
            "participants": participants,
            "opened_at": NOW,
        })
    }
    fn ops() -> OperationsView {
        let mut v = OperationsView::default();
        apply_op(
            &mut v,
            OP,
            "operation.opened",
            opened_data(OP, "FR", &["DE", "ES", "IT"]),
        );
        apply_op(
            &mut v,
            CLOSED_OP,
            "operation.opened",
            opened_data(CLOSED_OP, "FR", &["ES"]),
        );
        apply_op(
            &mut v,
            CLOSED_OP,
            "operation.closed",
            json!({"outcome": "done", "closed_at": NOW}),
        );
        v
    }
    /// `ops()` after one more event of `OP`.
    fn ops_and(event_type: &str, data: Value) -> OperationsView {
        let mut v = ops();
        apply_op(&mut v, OP, event_type, data);
        v
    }

    // Commands.
    fn member(name: &str, role: &str, country: &str) -> Member {
        Member {
            name: name.into(),
            role: role.into(),
            country: cc(country),
        }
    }
    /// Two officers of DE and one of NL.
    fn dvi_team() -> Vec<Member> {
        vec![
            member("Anna Schmidt", "team leader", "DE"),
            member("Jan de Vries", "forensic odontologist", "NL"),
            member("Karl Weber", "fingerprint expert", "DE"),
        ]
    }
    /// A DVI team of DE and NL to IT, for `CRISIS`.
    fn crisis_request() -> RequestDeployment {
        RequestDeployment {
            deployment_id: DEPLOYMENT,
            team: Team::Dvi,
            host_country: cc("IT"),
            crisis_id: Some(CRISIS),
            operation_id: None,
            reason: "identify the victims of the earthquake".into(),
            members: dvi_team(),
        }
    }
    fn request() -> Command {
        Command::RequestDeployment(crisis_request())
    }
    fn request_with(change: impl FnOnce(&mut RequestDeployment)) -> Command {
        let mut c = crisis_request();
        change(&mut c);
        Command::RequestDeployment(c)
    }
    /// A cyber team of FR and DE to ES, for `OP`.
    fn operation_request() -> RequestDeployment {
        RequestDeployment {
            deployment_id: DEPLOYMENT,
            team: Team::Cyber,
            host_country: cc("ES"),
            crisis_id: None,
            operation_id: Some(OP),
            reason: "image the seized servers".into(),
            members: vec![
                member("Claire Martin", "team leader", "FR"),
                member("Lukas Braun", "malware analyst", "DE"),
            ],
        }
    }
    fn request_op_with(change: impl FnOnce(&mut RequestDeployment)) -> Command {
        let mut c = operation_request();
        change(&mut c);
        Command::RequestDeployment(c)
    }
    fn approve() -> Command {
        Command::ApproveDeployment(ApproveDeployment {
            deployment_id: DEPLOYMENT,
        })
    }
    fn decline(reason: &str) -> Command {
        Command::DeclineDeployment(DeclineDeployment {
            deployment_id: DEPLOYMENT,
            reason: reason.into(),
        })
    }
    fn arrive() -> Command {
        Command::MarkArrived(MarkArrived {
            deployment_id: DEPLOYMENT,
        })
    }
    fn end(report: &str) -> Command {
        Command::EndDeployment(EndDeployment {
            deployment_id: DEPLOYMENT,
            report: report.into(),
        })
    }
    fn recall(reason: &str) -> Command {
        Command::Recall(Recall {
            deployment_id: DEPLOYMENT,
            reason: reason.into(),
        })
    }
    fn stand_down(crisis: Uuid) -> Command {
        Command::RequestStandDown(RequestStandDown {
            deployment_id: DEPLOYMENT,
            crisis_id: crisis,
            reason: "the crisis is closed".into(),
        })
    }

    // Events.
    fn requested() -> Event {
        Event::DeploymentRequested(DeploymentRequested {
            deployment_id: DEPLOYMENT,
            team: Team::Dvi,
            host_country: cc("IT"),
            crisis_id: Some(CRISIS),
            operation_id: None,
            contributing_countries: ccs(&["DE", "NL"]),
            members: dvi_team(),
            reason: "identify the victims of the earthquake".into(),
            requesting_country: cc("DE"),
            requested_by: "de-liaison".into(),
            requested_at: NOW.into(),
        })
    }
    fn requested_for_operation() -> Event {
        let c = operation_request();
        Event::DeploymentRequested(DeploymentRequested {
            deployment_id: DEPLOYMENT,
            team: c.team,
            host_country: c.host_country,
            crisis_id: None,
            operation_id: Some(OP),
            contributing_countries: ccs(&["DE", "FR"]),
            members: c.members,
            reason: c.reason,
            requesting_country: cc("FR"),
            requested_by: "fr-liaison".into(),
            requested_at: NOW.into(),
        })
    }
    fn approved() -> Event {
        Event::DeploymentApproved(DeploymentApproved {
            approved_by: "it-liaison".into(),
            approved_at: NOW.into(),
        })
    }
    fn declined() -> Event {
        Event::DeploymentDeclined(DeploymentDeclined {
            reason: "national teams suffice".into(),
            declined_by: "it-liaison".into(),
            declined_at: NOW.into(),
        })
    }
    fn arrived(by: &str) -> Event {
        Event::DeploymentArrived(DeploymentArrived {
            arrived_at: NOW.into(),
            marked_by: sub(Role::Liaison, by),
        })
    }
    fn ended(by: &str) -> Event {
        Event::DeploymentEnded(DeploymentEnded {
            report: "212 victims identified".into(),
            ended_by: sub(Role::Liaison, by),
            ended_at: NOW.into(),
        })
    }
    fn recalled(by: &str) -> Event {
        Event::DeploymentRecalled(DeploymentRecalled {
            reason: "needed at home".into(),
            recalled_by: sub(Role::Liaison, by),
            recalled_at: NOW.into(),
        })
    }
    fn stood_down(crisis: Uuid) -> Event {
        Event::StandDownRequested(StandDownRequested {
            crisis_id: crisis,
            reason: "the crisis is closed".into(),
            requested_at: NOW.into(),
        })
    }

    /// The DVI team to IT for `CRISIS`, in `status`.
    fn deployment(status: DeploymentStatus) -> Vec<Event> {
        let mut h = vec![requested()];
        h.extend(match status {
            DeploymentStatus::Requested => vec![],
            DeploymentStatus::Approved => vec![approved()],
            DeploymentStatus::Declined => vec![declined()],
            DeploymentStatus::Arrived => vec![approved(), arrived("IT")],
            DeploymentStatus::Ended => vec![approved(), arrived("IT"), ended("DE")],
            DeploymentStatus::Recalled => vec![approved(), recalled("NL")],
        });
        h
    }
    fn status_of(history: &[Event]) -> DeploymentStatus {
        match replay(history) {
            State::Deployment(d) => d.status,
            State::Empty => panic!("no deployment"),
        }
    }

    // ------------------------------------------------------------ given / when / then

    struct Given {
        history: Vec<Event>,
        crises: CrisesView,
        ops: OperationsView,
    }

    fn given(history: impl IntoIterator<Item = Event>) -> Given {
        Given {
            history: history.into_iter().collect(),
            crises: crises(),
            ops: ops(),
        }
    }

    impl Given {
        fn with_crises(self, crises: CrisesView) -> Given {
            Given { crises, ..self }
        }

        fn with_ops(self, ops: OperationsView) -> Given {
            Given { ops, ..self }
        }

        fn when(self, cmd: Command, actor: Actor) -> When {
            let state = replay(&self.history);
            let ctx = Ctx { actor, now: NOW.into() };
            let result = decide(&state, &cmd, &self.crises, &self.ops, &ctx);
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
            assert_ne!(replay(&history), State::Empty);
            history
        }

        /// Accepted, with nothing to record.
        #[track_caller]
        fn then_nothing(self) {
            assert_eq!(self.result, Ok(vec![]));
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

    fn sees(history: &[Event], who: &Actor) -> bool {
        replay(history).visible_to(who)
    }

    // ------------------------------------------------------------ the stories

    #[test]
    fn the_story_of_a_deployment_to_a_crisis() {
        let h = given([]).when(request(), liaison("DE")).then([requested()]);
        assert_eq!(status_of(&h), DeploymentStatus::Requested);
        let h = given(h).when(approve(), liaison("IT")).then([approved()]);
        assert_eq!(status_of(&h), DeploymentStatus::Approved);
        // A contributor other than the requester marks the arrival.
        let h = given(h).when(arrive(), liaison("NL")).then([arrived("NL")]);
        assert_eq!(status_of(&h), DeploymentStatus::Arrived);
        // Whether the crisis is closed is the choreography's to know.
        assert!(replay(&h).awaits_stand_down(CRISIS), "arrived, not asked yet");
        // The crisis closes: the choreography asks the team to stand down,
        // under any actor.
        let h = given(h)
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), coordinator("GS"))
            .then([stood_down(CRISIS)]);
        assert_eq!(
            status_of(&h),
            DeploymentStatus::Arrived,
            "a stand-down changes no status"
        );
        assert!(!replay(&h).awaits_stand_down(CRISIS));
        let h = given(h)
            .when(end("212 victims identified"), liaison("IT"))
            .then([ended("IT")]);
        assert_eq!(status_of(&h), DeploymentStatus::Ended);

        let view = replay(&h).view();
        assert_eq!(view["id"], json!(DEPLOYMENT));
        assert_eq!(view["status"], "ended");
        assert_eq!(view["team"], "dvi");
        assert_eq!(view["host_country"], "IT");
        assert_eq!(view["crisis_id"], json!(CRISIS));
        assert_eq!(view["operation_id"], Value::Null);
        assert_eq!(view["contributing_countries"], json!(["DE", "NL"]));
        assert_eq!(
            view["members"][1],
            json!({"name": "Jan de Vries", "role": "forensic odontologist", "country": "NL"})
        );
        assert_eq!(view["requesting_country"], "DE");
        assert_eq!(view["requested_by"], "de-liaison");
        assert_eq!(
            view["approval"],
            json!({"approved_by": "it-liaison", "approved_at": NOW})
        );
        assert_eq!(view["arrival"], json!({"arrived_at": NOW, "marked_by": "nl-liaison"}));
        assert_eq!(view["stand_down"]["crisis_id"], json!(CRISIS));
        assert_eq!(view["end"]["ended_by"], "it-liaison");
        assert_eq!(view["decline"], Value::Null);
        assert_eq!(view["recall"], Value::Null);
        assert_eq!(State::Empty.view(), Value::Null);
    }

    #[test]
    fn the_story_of_a_deployment_for_an_operation() {
        let h = given([])
            .when(Command::RequestDeployment(operation_request()), liaison("FR"))
            .then([requested_for_operation()]);
        let h = given(h).when(approve(), liaison("ES")).then([approved_by("ES")]);
        let h = given(h)
            .when(recall("needed at home"), liaison("DE"))
            .then([recalled("DE")]);
        assert_eq!(status_of(&h), DeploymentStatus::Recalled);
        let state = replay(&h);
        assert_eq!(state.crisis_id(), None);
        assert!(!state.awaits_stand_down(CRISIS));
        assert_eq!(state.view()["operation_id"], json!(OP));
        assert_eq!(state.view()["recall"]["recalled_by"], "de-liaison");
    }

    fn approved_by(country: &str) -> Event {
        Event::DeploymentApproved(DeploymentApproved {
            approved_by: sub(Role::Liaison, country),
            approved_at: NOW.into(),
        })
    }

    #[test]
    fn the_host_declines_with_a_reason() {
        let h = given(deployment(DeploymentStatus::Requested))
            .when(decline("national teams suffice"), liaison("IT"))
            .then([declined()]);
        assert_eq!(status_of(&h), DeploymentStatus::Declined);
        assert_eq!(replay(&h).view()["decline"]["reason"], "national teams suffice");
        for reason in ["", " \n"] {
            given(deployment(DeploymentStatus::Requested))
                .when(decline(reason), liaison("IT"))
                .then_rejected(ErrorCode::Invalid, "reason must not be empty");
        }
        given(deployment(DeploymentStatus::Requested))
            .when(decline(&"r".repeat(REASON_CHARS_MAX + 1)), liaison("IT"))
            .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
        given(deployment(DeploymentStatus::Requested))
            .when(decline(&"r".repeat(REASON_CHARS_MAX)), liaison("IT"))
            .then([Event::DeploymentDeclined(DeploymentDeclined {
                reason: "r".repeat(REASON_CHARS_MAX),
                declined_by: "it-liaison".into(),
                declined_at: NOW.into(),
            })]);
    }

    // ------------------------------------------------------------ request_deployment

    #[test]
    fn a_deployment_is_for_exactly_one_crisis_or_operation() {
        given([])
            .when(request_with(|c| c.operation_id = Some(OP)), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "not both");
        given([])
            .when(request_with(|c| c.crisis_id = None), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "give crisis_id or operation_id");
    }

    #[test]
    fn a_deployment_to_an_unknown_crisis_is_not_found() {
        given([])
            .when(request_with(|c| c.crisis_id = Some(UNKNOWN_CRISIS)), liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "crisis not found");
    }

    #[test]
    fn no_team_is_sent_to_a_closed_crisis() {
        given([])
            .when(
                request_with(|c| {
                    c.crisis_id = Some(CLOSED_CRISIS);
                    c.host_country = cc("GR");
                }),
                liaison("DE"),
            )
            .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
        // Step 2 before step 3: a coordinator learns it too.
        given([])
            .when(request_with(|c| c.crisis_id = Some(CLOSED_CRISIS)), coordinator("DE"))
            .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
    }

    #[test]
    fn a_crisis_deployment_is_hosted_by_the_crisis_country() {
        given([])
            .when(request_with(|c| c.host_country = cc("AT")), liaison("DE"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("crisis {CRISIS} is in IT, not in the host country AT"),
            );
    }

    #[test]
    fn a_deployment_for_an_unknown_operation_or_one_the_caller_is_not_in_is_not_found() {
        given([])
            .when(request_op_with(|c| c.operation_id = Some(UNKNOWN_OP)), liaison("FR"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        // NL takes no part in OP: the same answer.
        given([])
            .when(
                request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
                liaison("NL"),
            )
            .then_rejected(ErrorCode::NotFound, "operation not found");
        // Removed from it: no longer.
        given([])
            .with_ops(ops_and("participant.removed", json!({"country": "DE"})))
            .when(Command::RequestDeployment(operation_request()), liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
    }

    #[test]
    fn no_team_is_sent_for_a_closed_operation() {
        given([])
            .when(request_op_with(|c| c.operation_id = Some(CLOSED_OP)), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        given([])
            .with_ops(ops_and(
                "operation.closed",
                json!({"outcome": "done", "closed_at": LATER}),
            ))
            .when(Command::RequestDeployment(operation_request()), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    }

    #[test]
    fn the_host_and_every_contributor_take_part_in_the_operation() {
        // AT is not in OP.
        given([])
            .when(request_op_with(|c| c.host_country = cc("AT")), liaison("FR"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("AT does not take part in operation {OP}"),
            );
        given([])
            .with_ops(ops_and("participant.removed", json!({"country": "ES"})))
            .when(Command::RequestDeployment(operation_request()), liaison("FR"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("ES does not take part in operation {OP}"),
            );
        given([])
            .when(
                request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
                liaison("FR"),
            )
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("NL does not take part in operation {OP}"),
            );
        // An added participant does.
        given([])
            .with_ops(ops_and("participant.added", json!({"country": "NL"})))
            .when(
                request_op_with(|c| c.members.push(member("Piet Jansen", "analyst", "NL"))),
                liaison("NL"),
            )
            .then([Event::DeploymentRequested(DeploymentRequested {
                contributing_countries: ccs(&["DE", "FR", "NL"]),
                members: {
                    let mut m = operation_request().members;
                    m.push(member("Piet Jansen", "analyst", "NL"));
                    m
                },
                requesting_country: cc("NL"),
                requested_by: "nl-liaison".into(),
                ..match requested_for_operation() {
                    Event::DeploymentRequested(e) => e,
                    _ => unreachable!(),
                }
            })]);
    }

    #[test]
    fn only_a_liaison_of_a_contributing_country_requests() {
        for who in [coordinator("DE"), reviewer("DE"), auditor("DE")] {
            given([])
                .when(request(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison can request a deployment");
        }
        for country in ["IT", "FR"] {
            given([]).when(request(), liaison(country)).then_rejected(
                ErrorCode::Forbidden,
                &format!("{country} contributes no member to the team"),
            );
        }
        // Any contributor, not only the first listed.
        let h = given([])
            .when(request(), liaison("NL"))
            .then([Event::DeploymentRequested(DeploymentRequested {
                requesting_country: cc("NL"),
                requested_by: "nl-liaison".into(),
                ..match requested() {
                    Event::DeploymentRequested(e) => e,
                    _ => unreachable!(),
                }
            })]);
        assert!(sees(&h, &liaison("NL")));
        // An auditor passes the operation lookup and is refused at step 3.
        given([])
            .when(Command::RequestDeployment(operation_request()), auditor("NL"))
            .then_rejected(ErrorCode::Forbidden, "only a liaison can request a deployment");
    }

    #[test]
    fn the_secretariat_contributes_but_never_hosts() {
        given([])
            .when(
                request_with(|c| c.members.push(member("Ines Moreau", "IRT coordinator", "GS"))),
                liaison("GS"),
            )
            .then([Event::DeploymentRequested(DeploymentRequested {
                contributing_countries: ccs(&["DE", "GS", "NL"]),
                members: {
                    let mut m = dvi_team();
                    m.push(member("Ines Moreau", "IRT coordinator", "GS"));
                    m
                },
                requesting_country: cc("GS"),
                requested_by: "gs-liaison".into(),
                ..match requested() {
                    Event::DeploymentRequested(e) => e,
                    _ => unreachable!(),
                }
            })]);
        given([])
            .when(request_with(|c| c.host_country = cc("GS")), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "host_country GS is the secretariat, not a country");
    }

    #[test]
    fn the_host_is_no_contributor() {
        let mut crises = crises();
        apply_crisis(
            &mut crises,
            UNKNOWN_CRISIS,
            "crisis.declared",
            declared_data(UNKNOWN_CRISIS, "DE"),
        );
        given([])
            .with_crises(crises)
            .when(
                request_with(|c| {
                    c.crisis_id = Some(UNKNOWN_CRISIS);
                    c.host_country = cc("DE");
                }),
                liaison("DE"),
            )
            .then_rejected(
                ErrorCode::RuleViolated,
                "DE hosts the deployment and cannot also contribute to it",
            );
    }

    #[test]
    fn a_team_has_1_to_100_members_each_named_once() {
        given([])
            .when(request_with(|c| c.members.clear()), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "DE contributes no member");
        let many: Vec<Member> = (0..=MEMBERS_MAX)
            .map(|i| member(&format!("officer {i}"), "officer", "DE"))
            .collect();
        given([])
            .when(request_with(|c| c.members = many.clone()), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "a team has at most 100 members, 101 given");
        let hundred = many[..MEMBERS_MAX].to_vec();
        let events = given([])
            .when(request_with(|c| c.members = hundred.clone()), liaison("DE"))
            .then(match requested() {
                Event::DeploymentRequested(e) => [Event::DeploymentRequested(DeploymentRequested {
                    contributing_countries: ccs(&["DE"]),
                    members: hundred.clone(),
                    ..e
                })],
                _ => unreachable!(),
            });
        assert_eq!(events.len(), 1);
        for (change, contains) in [
            (member("", "officer", "DE"), "members[3].name must not be empty"),
            (member("x", "\t", "DE"), "members[3].role must not be empty"),
            (
                member(&"n".repeat(NAME_CHARS_MAX + 1), "officer", "DE"),
                "members[3].name is longer than 200 characters",
            ),
            (
                member("x", &"r".repeat(MEMBER_ROLE_CHARS_MAX + 1), "DE"),
                "members[3].role is longer than 200 characters",
            ),
            (
                member("Jan de Vries", "forensic odontologist", "NL"),
                "members lists Jan de Vries (forensic odontologist, NL) twice",
            ),
        ] {
            given([])
                .when(request_with(|c| c.members.push(change)), liaison("DE"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // The same name in another role or country is another entry.
        given([])
            .when(
                request_with(|c| c.members.push(member("Jan de Vries", "team leader", "NL"))),
                liaison("DE"),
            )
            .then(match requested() {
                Event::DeploymentRequested(e) => [Event::DeploymentRequested(DeploymentRequested {
                    members: {
                        let mut m = dvi_team();
                        m.push(member("Jan de Vries", "team leader", "NL"));
                        m
                    },
                    ..e
                })],
                _ => unreachable!(),
            });
    }

    #[test]
    fn a_request_has_a_reason() {
        for reason in ["", "\u{3000}"] {
            given([])
                .when(request_with(|c| c.reason = reason.into()), liaison("DE"))
                .then_rejected(ErrorCode::Invalid, "reason must not be empty");
        }
        given([])
            .when(
                request_with(|c| c.reason = "r".repeat(REASON_CHARS_MAX + 1)),
                liaison("DE"),
            )
            .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
    }

    #[test]
    fn contributing_countries_are_sorted_and_distinct() {
        let events = given([])
            .when(
                request_with(|c| {
                    c.members = vec![
                        member("a", "officer", "NL"),
                        member("b", "officer", "DE"),
                        member("c", "officer", "NL"),
                        member("d", "officer", "AT"),
                    ];
                }),
                liaison("NL"),
            )
            .then_any();
        match &events[..] {
            [Event::DeploymentRequested(e)] => assert_eq!(e.contributing_countries, ccs(&["AT", "DE", "NL"])),
            other => panic!("{other:?}"),
        }
    }

    impl When {
        /// Accepted; the events, whatever they are.
        #[track_caller]
        fn then_any(self) -> Vec<Event> {
            self.result
                .unwrap_or_else(|r| panic!("refused with {}: {r}", r.code().as_str()))
        }
    }

    #[test]
    fn requesting_an_existing_deployment_is_a_conflict() {
        for status in [DeploymentStatus::Requested, DeploymentStatus::Ended] {
            given(deployment(status))
                .when(request(), liaison("DE"))
                .then_rejected(ErrorCode::Conflict, &format!("deployment {DEPLOYMENT} already exists"));
        }
    }

    // ------------------------------------------------------------ approve, decline

    #[test]
    fn commands_on_no_deployment_are_not_found() {
        for cmd in [
            approve(),
            decline("r"),
            arrive(),
            end("r"),
            recall("r"),
            stand_down(CRISIS),
        ] {
            given([])
                .with_crises(crisis_closed())
                .when(cmd, liaison("IT"))
                .then_rejected(ErrorCode::NotFound, "deployment not found");
        }
    }

    #[test]
    fn a_stranger_gets_not_found_not_forbidden() {
        for (cmd, status) in [
            (approve(), DeploymentStatus::Requested),
            (decline("r"), DeploymentStatus::Requested),
            (arrive(), DeploymentStatus::Approved),
            (end("r"), DeploymentStatus::Arrived),
            (recall("r"), DeploymentStatus::Arrived),
        ] {
            for who in [liaison("FR"), coordinator("AT"), reviewer("GS")] {
                given(deployment(status))
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "deployment not found");
            }
            // Even when the status would refuse it: step 1 comes first.
            given(deployment(DeploymentStatus::Ended))
                .when(cmd, liaison("FR"))
                .then_rejected(ErrorCode::NotFound, "deployment not found");
        }
    }

    #[test]
    fn only_a_liaison_of_the_host_approves_or_declines() {
        for cmd in [approve(), decline("no")] {
            for who in [liaison("DE"), liaison("NL"), coordinator("IT"), auditor("FR")] {
                given(deployment(DeploymentStatus::Requested))
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::Forbidden, "only a liaison of the host country IT can");
            }
        }
    }

    #[test]
    fn a_deployment_is_approved_or_declined_once_while_requested() {
        for status in [
            DeploymentStatus::Approved,
            DeploymentStatus::Declined,
            DeploymentStatus::Arrived,
            DeploymentStatus::Ended,
            DeploymentStatus::Recalled,
        ] {
            given(deployment(status)).when(approve(), liaison("IT")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is {status}; only a requested deployment is approved"),
            );
            given(deployment(status))
                .when(decline("no"), liaison("IT"))
                .then_rejected(
                    ErrorCode::RuleViolated,
                    &format!("deployment is {status}; only a requested deployment is declined"),
                );
        }
        // Step 2 before step 3: a contributor learns it too.
        given(deployment(DeploymentStatus::Approved))
            .when(approve(), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "deployment is approved");
    }

    #[test]
    fn no_approval_once_the_crisis_or_operation_closed() {
        given(deployment(DeploymentStatus::Requested))
            .with_crises(crisis_closed())
            .when(approve(), liaison("IT"))
            .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
        given(deployment(DeploymentStatus::Requested))
            .with_crises(CrisesView::default())
            .when(approve(), liaison("IT"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("crisis {CRISIS} is unknown to deployments"),
            );
        given([requested_for_operation()])
            .with_ops(ops_and(
                "operation.closed",
                json!({"outcome": "done", "closed_at": LATER}),
            ))
            .when(approve(), liaison("ES"))
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        given([requested_for_operation()])
            .with_ops(OperationsView::default())
            .when(approve(), liaison("ES"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("operation {OP} is unknown to deployments"),
            );
        // Declining still works.
        given(deployment(DeploymentStatus::Requested))
            .with_crises(crisis_closed())
            .when(decline("national teams suffice"), liaison("IT"))
            .then([declined()]);
    }

    // ------------------------------------------------------------ arrive, end, recall

    #[test]
    fn a_team_arrives_only_after_approval_and_once() {
        for status in [
            DeploymentStatus::Requested,
            DeploymentStatus::Arrived,
            DeploymentStatus::Declined,
            DeploymentStatus::Ended,
            DeploymentStatus::Recalled,
        ] {
            given(deployment(status)).when(arrive(), liaison("IT")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is {status}; a team arrives once, after the host approved"),
            );
        }
    }

    #[test]
    fn the_host_or_a_contributor_marks_the_arrival_and_ends() {
        for country in ["IT", "DE", "NL"] {
            given(deployment(DeploymentStatus::Approved))
                .when(arrive(), liaison(country))
                .then([arrived(country)]);
            for status in [DeploymentStatus::Approved, DeploymentStatus::Arrived] {
                given(deployment(status))
                    .when(end("212 victims identified"), liaison(country))
                    .then([ended(country)]);
            }
        }
        for who in [coordinator("IT"), auditor("FR"), reviewer("DE")] {
            given(deployment(DeploymentStatus::Approved))
                .when(arrive(), who.clone())
                .then_rejected(
                    ErrorCode::Forbidden,
                    "only a liaison of the host or of a contributing country",
                );
            given(deployment(DeploymentStatus::Arrived))
                .when(end("r"), who)
                .then_rejected(
                    ErrorCode::Forbidden,
                    "only a liaison of the host or of a contributing country",
                );
        }
    }

    #[test]
    fn only_an_approved_or_arrived_deployment_is_ended() {
        for status in [
            DeploymentStatus::Requested,
            DeploymentStatus::Declined,
            DeploymentStatus::Ended,
            DeploymentStatus::Recalled,
        ] {
            given(deployment(status)).when(end("r"), liaison("IT")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is {status}; only an approved or arrived deployment is ended"),
            );
        }
    }

    #[test]
    fn an_end_has_a_report() {
        given(deployment(DeploymentStatus::Arrived))
            .when(end(" "), liaison("IT"))
            .then_rejected(ErrorCode::Invalid, "report must not be empty");
        given(deployment(DeploymentStatus::Arrived))
            .when(end(&"r".repeat(REPORT_CHARS_MAX + 1)), liaison("IT"))
            .then_rejected(ErrorCode::Invalid, "report is longer than 4000 characters");
    }

    #[test]
    fn only_a_liaison_of_a_contributing_country_recalls() {
        for status in [
            DeploymentStatus::Requested,
            DeploymentStatus::Approved,
            DeploymentStatus::Arrived,
        ] {
            for country in ["DE", "NL"] {
                let h = given(deployment(status))
                    .when(recall("needed at home"), liaison(country))
                    .then([recalled(country)]);
                assert_eq!(status_of(&h), DeploymentStatus::Recalled);
            }
        }
        for who in [liaison("IT"), coordinator("DE"), auditor("NL")] {
            given(deployment(DeploymentStatus::Arrived))
                .when(recall("r"), who)
                .then_rejected(
                    ErrorCode::Forbidden,
                    "only a liaison of a contributing country can recall",
                );
        }
    }

    #[test]
    fn a_recall_has_a_reason_and_comes_before_the_end() {
        for status in [
            DeploymentStatus::Declined,
            DeploymentStatus::Ended,
            DeploymentStatus::Recalled,
        ] {
            given(deployment(status))
                .when(recall("r"), liaison("DE"))
                .then_rejected(
                    ErrorCode::RuleViolated,
                    &format!("deployment is {status}; only a requested, approved or arrived deployment is recalled"),
                );
        }
        given(deployment(DeploymentStatus::Approved))
            .when(recall(""), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
    }

    // ------------------------------------------------------------ the stand-down

    #[test]
    fn no_stand_down_before_the_crisis_closed() {
        given(deployment(DeploymentStatus::Arrived))
            .when(stand_down(CRISIS), liaison("IT"))
            .then_rejected(ErrorCode::RuleViolated, &format!("crisis {CRISIS} is not closed"));
        given(deployment(DeploymentStatus::Arrived))
            .with_crises(CrisesView::default())
            .when(stand_down(CRISIS), liaison("IT"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("crisis {CRISIS} is unknown to deployments"),
            );
    }

    #[test]
    fn a_stand_down_is_for_the_deployment_s_own_crisis() {
        // Another crisis, closed or not.
        given(deployment(DeploymentStatus::Arrived))
            .with_crises(crisis_closed())
            .when(stand_down(CLOSED_CRISIS), liaison("IT"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is for crisis {CRISIS}, not for crisis {CLOSED_CRISIS}"),
            );
        given(deployment(DeploymentStatus::Ended))
            .when(stand_down(OTHER_CRISIS), liaison("IT"))
            .then_rejected(ErrorCode::RuleViolated, "not for crisis");
        given([requested_for_operation(), approved_by("ES")])
            .when(stand_down(CLOSED_CRISIS), liaison("ES"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("deployment is for an operation, not for crisis {CLOSED_CRISIS}"),
            );
    }

    #[test]
    fn a_stand_down_is_requested_once_and_not_after_the_end() {
        for status in [DeploymentStatus::Approved, DeploymentStatus::Arrived] {
            let h = given(deployment(status))
                .with_crises(crisis_closed())
                .when(stand_down(CRISIS), liaison("IT"))
                .then([stood_down(CRISIS)]);
            assert_eq!(status_of(&h), status);
            given(h)
                .with_crises(crisis_closed())
                .when(stand_down(CRISIS), liaison("IT"))
                .then_nothing();
        }
        for status in [
            DeploymentStatus::Ended,
            DeploymentStatus::Declined,
            DeploymentStatus::Recalled,
        ] {
            given(deployment(status))
                .with_crises(crisis_closed())
                .when(stand_down(CRISIS), liaison("IT"))
                .then_nothing();
        }
        // Nothing to do, even with a blank reason: there is nothing to record.
        let mut h = deployment(DeploymentStatus::Arrived);
        h.push(stood_down(CRISIS));
        given(h)
            .with_crises(crisis_closed())
            .when(
                Command::RequestStandDown(RequestStandDown {
                    deployment_id: DEPLOYMENT,
                    crisis_id: CRISIS,
                    reason: String::new(),
                }),
                liaison("IT"),
            )
            .then_nothing();
    }

    #[test]
    fn a_requested_deployment_is_not_stood_down() {
        given(deployment(DeploymentStatus::Requested))
            .with_crises(crisis_closed())
            .when(stand_down(CRISIS), liaison("IT"))
            .then_rejected(
                ErrorCode::RuleViolated,
                "deployment is requested; only an approved or arrived team is asked to stand down",
            );
    }

    #[test]
    fn any_actor_may_ask_for_a_stand_down_that_is_true() {
        for who in [
            liaison("FR"),
            coordinator("GS"),
            reviewer("AT"),
            auditor("US"),
            liaison("DE"),
        ] {
            given(deployment(DeploymentStatus::Approved))
                .with_crises(crisis_closed())
                .when(stand_down(CRISIS), who)
                .then([stood_down(CRISIS)]);
        }
    }

    #[test]
    fn a_stand_down_has_a_reason() {
        for (reason, contains) in [
            (String::new(), "reason must not be empty"),
            (
                "r".repeat(REASON_CHARS_MAX + 1),
                "reason is longer than 4000 characters",
            ),
        ] {
            given(deployment(DeploymentStatus::Approved))
                .with_crises(crisis_closed())
                .when(
                    Command::RequestStandDown(RequestStandDown {
                        deployment_id: DEPLOYMENT,
                        crisis_id: CRISIS,
                        reason,
                    }),
                    liaison("IT"),
                )
                .then_rejected(ErrorCode::Invalid, contains);
        }
    }

    #[test]
    fn a_team_asked_to_stand_down_still_arrives_ends_or_is_recalled() {
        let mut h = deployment(DeploymentStatus::Approved);
        h.push(stood_down(CRISIS));
        let arrived_h = given(h.clone()).when(arrive(), liaison("IT")).then([arrived("IT")]);
        assert!(replay(&arrived_h).view()["stand_down"].is_object(), "the flag stays");
        given(arrived_h)
            .when(end("r"), liaison("DE"))
            .then([Event::DeploymentEnded(DeploymentEnded {
                report: "r".into(),
                ended_by: "de-liaison".into(),
                ended_at: NOW.into(),
            })]);
        given(h)
            .when(recall("needed at home"), liaison("NL"))
            .then([recalled("NL")]);
    }

    #[test]
    fn awaits_stand_down_names_the_approved_and_arrived_of_the_crisis_not_yet_asked() {
        for (status, awaits) in [
            (DeploymentStatus::Requested, false),
            (DeploymentStatus::Approved, true),
            (DeploymentStatus::Arrived, true),
            (DeploymentStatus::Declined, false),
            (DeploymentStatus::Ended, false),
            (DeploymentStatus::Recalled, false),
        ] {
            let state = replay(&deployment(status));
            assert_eq!(state.awaits_stand_down(CRISIS), awaits, "{status}");
            assert!(!state.awaits_stand_down(OTHER_CRISIS), "{status}");
            assert_eq!(state.crisis_id(), Some(CRISIS));
        }
        let mut h = deployment(DeploymentStatus::Arrived);
        h.push(stood_down(CRISIS));
        assert!(!replay(&h).awaits_stand_down(CRISIS));
        let op = replay(&[requested_for_operation(), approved_by("ES")]);
        assert!(!op.awaits_stand_down(CRISIS));
        assert_eq!(op.crisis_id(), None);
        assert!(!State::Empty.awaits_stand_down(CRISIS));
        assert_eq!(State::Empty.crisis_id(), None);
    }

    /// What `awaits_stand_down` says is what `decide` accepts with events.
    #[test]
    fn awaits_stand_down_agrees_with_decide() {
        let mut histories: Vec<Vec<Event>> = [
            DeploymentStatus::Requested,
            DeploymentStatus::Approved,
            DeploymentStatus::Arrived,
            DeploymentStatus::Declined,
            DeploymentStatus::Ended,
            DeploymentStatus::Recalled,
        ]
        .into_iter()
        .map(deployment)
        .collect();
        let mut asked = deployment(DeploymentStatus::Approved);
        asked.push(stood_down(CRISIS));
        histories.push(asked);
        for h in histories {
            let state = replay(&h);
            let ctx = Ctx {
                actor: liaison("IT"),
                now: NOW.into(),
            };
            let decided = decide(&state, &stand_down(CRISIS), &crisis_closed(), &ops(), &ctx);
            let records = matches!(&decided, Ok(events) if !events.is_empty());
            assert_eq!(state.awaits_stand_down(CRISIS), records, "{h:?}: {decided:?}");
        }
    }

    // ------------------------------------------------------------ visibility

    #[test]
    fn a_deployment_is_seen_by_its_host_its_contributors_and_auditors() {
        let h = deployment(DeploymentStatus::Arrived);
        for (who, seen) in [
            (liaison("IT"), true),
            (coordinator("IT"), true),
            (liaison("DE"), true),
            (reviewer("NL"), true),
            (auditor("FR"), true),
            (liaison("FR"), false),
            (coordinator("GS"), false),
            (reviewer("AT"), false),
        ] {
            assert_eq!(sees(&h, &who), seen, "{who:?}");
        }
        // Nobody sees an empty stream, auditors included.
        assert!(!sees(&[], &auditor("FR")));
        assert!(!sees(&[], &liaison("IT")));
        // Operation participants that neither host nor contribute do not.
        let op = [requested_for_operation()];
        assert!(sees(&op, &liaison("ES")));
        assert!(
            !sees(&op, &liaison("IT")),
            "IT takes part in OP but not in the deployment"
        );
    }

    // ------------------------------------------------------------ one story, live and replayed

    #[test]
    fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
        let stories: [(CrisesView, Vec<(Command, Actor)>); 3] = [
            (
                crises(),
                vec![
                    (request(), liaison("DE")),
                    (approve(), liaison("IT")),
                    (arrive(), liaison("DE")),
                ],
            ),
            (
                crises(),
                vec![
                    (Command::RequestDeployment(operation_request()), liaison("FR")),
                    (decline("no"), liaison("ES")),
                ],
            ),
            (
                crisis_closed(),
                vec![(stand_down(CRISIS), coordinator("GS")), (end("done"), liaison("NL"))],
            ),
        ];
        let mut previous = Vec::new();
        for (i, (crises, story)) in stories.into_iter().enumerate() {
            // The third story goes on from the first.
            let mut live = if i == 2 { replay(&previous) } else { State::default() };
            let mut stored: Vec<(&'static str, Value)> = Vec::new();
            for (cmd, actor) in story {
                assert_eq!(stream_of(&cmd), format!("deployment-{DEPLOYMENT}"));
                let ctx = Ctx { actor, now: NOW.into() };
                let events = decide(&live, &cmd, &crises, &ops(), &ctx).expect("every step of the story is allowed");
                assert!(!events.is_empty());
                for e in &events {
                    live = evolve(live, e);
                    stored.push((e.event_type(), e.data()));
                }
            }
            let loaded: Vec<Event> = stored
                .iter()
                .map(|(t, data)| Event::from_parts(t, data).expect("stored events load"))
                .collect();
            let base = if i == 2 { previous.clone() } else { Vec::new() };
            assert_eq!(replay(base.iter().chain(&loaded)), live);
            assert_ne!(live, State::Empty);
            if i == 0 {
                previous = loaded;
            }
        }
    }

    // ------------------------------------------------------------ parse_command and streams

    fn full_bodies() -> [Value; 7] {
        [
            json!({"deployment_id": DEPLOYMENT, "team": "imest", "host_country": "IT", "crisis_id": CRISIS,
                   "reason": "r", "members": [{"name": "n", "role": "r", "country": "DE"}]}),
            json!({"deployment_id": DEPLOYMENT}),
            json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
            json!({"deployment_id": DEPLOYMENT}),
            json!({"deployment_id": DEPLOYMENT, "report": "r"}),
            json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
            json!({"deployment_id": DEPLOYMENT, "crisis_id": CRISIS, "reason": "r"}),
        ]
    }

    #[test]
    fn parse_command_reads_every_command_and_names_its_stream() {
        for (name, data) in COMMANDS.into_iter().zip(full_bodies()) {
            let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cmd.name(), name);
            assert_eq!(cmd.deployment_id(), DEPLOYMENT);
            assert_eq!(stream_of(&cmd), format!("deployment-{DEPLOYMENT}"));
        }
        let cmd = parse_command(
            "request_deployment",
            json!({"deployment_id": DEPLOYMENT, "team": "cyber", "host_country": "ES", "operation_id": OP,
                   "reason": "image the seized servers",
                   "members": [{"name": "Claire Martin", "role": "team leader", "country": "FR"},
                               {"name": "Lukas Braun", "role": "malware analyst", "country": "DE"}]}),
        );
        assert_eq!(cmd, Ok(Command::RequestDeployment(operation_request())));
        for team in Team::ALL {
            let mut body = full_bodies()[0].clone();
            body["team"] = json!(team.as_str());
            match parse_command("request_deployment", body) {
                Ok(Command::RequestDeployment(c)) => assert_eq!(c.team, team),
                other => panic!("{other:?}"),
            }
            assert_eq!(team.to_string(), team.as_str());
        }
    }

    #[test]
    fn parse_command_refuses_what_does_not_fit_precisely() {
        let member = json!({"name": "n", "role": "r", "country": "DE"});
        for (name, data, contains) in [
            (
                "deploy",
                json!({}),
                "unknown command \"deploy\": expected one of request_deployment, approve_deployment",
            ),
            (
                "approve_deployment",
                json!({"deployment_id": DEPLOYMENT, "sneaky": true}),
                "invalid approve_deployment command: unknown field `sneaky`",
            ),
            ("approve_deployment", json!({}), "missing field `deployment_id`"),
            (
                "approve_deployment",
                json!(null),
                "data must be a JSON object, not null",
            ),
            (
                "recall",
                json!([DEPLOYMENT, "r"]),
                "data must be a JSON object, not an array",
            ),
            (
                "mark_arrived",
                json!({"deployment_id": "42"}),
                "invalid mark_arrived command",
            ),
            (
                "request_deployment",
                json!({"deployment_id": DEPLOYMENT, "team": "swat", "host_country": "IT", "crisis_id": CRISIS,
                       "reason": "r", "members": [member]}),
                "unknown variant `swat`",
            ),
            (
                "request_deployment",
                json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "XX", "crisis_id": CRISIS,
                       "reason": "r", "members": [member]}),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                "request_deployment",
                json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                       "reason": "r", "members": [{"name": "n", "role": "r", "country": "DE", "rank": "x"}]}),
                "unknown field `rank`",
            ),
            (
                "request_deployment",
                json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                       "reason": "r", "members": [{"name": "n", "country": "DE"}]}),
                "missing field `role`",
            ),
            (
                "request_deployment",
                json!({"deployment_id": DEPLOYMENT, "team": "dvi", "host_country": "IT", "crisis_id": CRISIS,
                       "reason": "r"}),
                "missing field `members`",
            ),
            (
                "end_deployment",
                json!({"deployment_id": DEPLOYMENT}),
                "missing field `report`",
            ),
            (
                "request_stand_down",
                json!({"deployment_id": DEPLOYMENT, "reason": "r"}),
                "missing field `crisis_id`",
            ),
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
            requested(),
            requested_for_operation(),
            approved(),
            declined(),
            arrived("NL"),
            ended("IT"),
            recalled("DE"),
            stood_down(CRISIS),
        ]
    }

    #[test]
    fn every_event_round_trips_through_type_and_data() {
        let events = every_kind_of_event();
        let kinds: BTreeSet<&str> = events.iter().map(Event::event_type).collect();
        assert_eq!(kinds, EVENT_TYPES.into_iter().collect(), "every kind is covered");
        for e in events {
            let data = e.data();
            assert!(data.is_object(), "{data}");
            assert_eq!(Event::from_parts(e.event_type(), &data), Ok(e));
        }
    }

    #[test]
    fn stored_data_has_the_documented_shape() {
        assert_eq!(
            requested().data(),
            json!({
                "deployment_id": DEPLOYMENT,
                "team": "dvi",
                "host_country": "IT",
                "crisis_id": CRISIS,
                "operation_id": null,
                "contributing_countries": ["DE", "NL"],
                "members": [
                    {"name": "Anna Schmidt", "role": "team leader", "country": "DE"},
                    {"name": "Jan de Vries", "role": "forensic odontologist", "country": "NL"},
                    {"name": "Karl Weber", "role": "fingerprint expert", "country": "DE"},
                ],
                "reason": "identify the victims of the earthquake",
                "requesting_country": "DE",
                "requested_by": "de-liaison",
                "requested_at": NOW,
            })
        );
        let for_op = requested_for_operation().data();
        assert_eq!(for_op["crisis_id"], Value::Null);
        assert_eq!(for_op["operation_id"], json!(OP));
        assert_eq!(
            approved().data(),
            json!({"approved_by": "it-liaison", "approved_at": NOW})
        );
        assert_eq!(
            declined().data(),
            json!({"reason": "national teams suffice", "declined_by": "it-liaison", "declined_at": NOW})
        );
        assert_eq!(
            arrived("NL").data(),
            json!({"arrived_at": NOW, "marked_by": "nl-liaison"})
        );
        assert_eq!(
            ended("IT").data(),
            json!({"report": "212 victims identified", "ended_by": "it-liaison", "ended_at": NOW})
        );
        assert_eq!(
            recalled("DE").data(),
            json!({"reason": "needed at home", "recalled_by": "de-liaison", "recalled_at": NOW})
        );
        assert_eq!(
            stood_down(CRISIS).data(),
            json!({"crisis_id": CRISIS, "reason": "the crisis is closed", "requested_at": NOW})
        );
    }

    #[test]
    fn from_parts_refuses_unknown_types_and_malformed_data() {
        let e = Event::from_parts("deployment.cancelled", &json!({}));
        assert_eq!(e, Err("unknown deployments event type \"deployment.cancelled\"".into()));
        let mut requested_data = requested().data();
        requested_data["team"] = json!("swat");
        for (t, data, contains) in [
            (
                "deployment.approved",
                json!({"approved_by": "x", "approved_at": NOW, "extra": "x"}),
                "unknown field `extra`",
            ),
            (
                "deployment.ended",
                json!({"report": "r", "ended_by": "x"}),
                "missing field `ended_at`",
            ),
            ("deployment.recalled", json!(["r"]), "not a JSON object"),
            ("deployment.requested", requested_data, "unknown variant `swat`"),
            (
                "deployment.stand_down_requested",
                json!({"crisis_id": "c", "reason": "r", "requested_at": NOW}),
                "malformed deployment.stand_down_requested data",
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

    #[test]
    fn try_evolve_refuses_what_cannot_follow() {
        use DeploymentStatus as S;
        let both = match requested() {
            Event::DeploymentRequested(e) => Event::DeploymentRequested(DeploymentRequested {
                operation_id: Some(OP),
                ..e
            }),
            _ => unreachable!(),
        };
        let neither = match requested() {
            Event::DeploymentRequested(e) => Event::DeploymentRequested(DeploymentRequested { crisis_id: None, ..e }),
            _ => unreachable!(),
        };
        let mut asked = deployment(S::Arrived);
        asked.push(stood_down(CRISIS));
        for (history, next, contains) in [
            (vec![], approved(), "deployment.approved on an empty stream"),
            (
                vec![],
                stood_down(CRISIS),
                "deployment.stand_down_requested on an empty stream",
            ),
            (vec![], both, "for both or neither"),
            (vec![], neither, "for both or neither"),
            (
                deployment(S::Requested),
                requested(),
                "deployment.requested on a deployment that is requested",
            ),
            (
                deployment(S::Approved),
                approved(),
                "deployment.approved on a deployment that is approved",
            ),
            (
                deployment(S::Declined),
                approved(),
                "deployment.approved on a deployment that is declined",
            ),
            (
                deployment(S::Approved),
                declined(),
                "deployment.declined on a deployment that is approved",
            ),
            (
                deployment(S::Requested),
                arrived("IT"),
                "deployment.arrived on a deployment that is requested",
            ),
            (
                deployment(S::Arrived),
                arrived("IT"),
                "deployment.arrived on a deployment that is arrived",
            ),
            (
                deployment(S::Requested),
                ended("IT"),
                "deployment.ended on a deployment that is requested",
            ),
            (
                deployment(S::Ended),
                ended("IT"),
                "deployment.ended on a deployment that is ended",
            ),
            (
                deployment(S::Recalled),
                recalled("DE"),
                "deployment.recalled on a deployment that is recalled",
            ),
            (
                deployment(S::Declined),
                recalled("DE"),
                "deployment.recalled on a deployment that is declined",
            ),
            (
                deployment(S::Requested),
                stood_down(CRISIS),
                "deployment.stand_down_requested on a deployment that is requested",
            ),
            (
                deployment(S::Ended),
                stood_down(CRISIS),
                "deployment.stand_down_requested on a deployment that is ended",
            ),
            (
                deployment(S::Arrived),
                stood_down(OTHER_CRISIS),
                "deployment.stand_down_requested on a deployment that is arrived",
            ),
            (
                asked,
                stood_down(CRISIS),
                "deployment.stand_down_requested on a deployment that is arrived, asked to stand down",
            ),
        ] {
            let state = replay(&history);
            match try_evolve(state, &next) {
                Ok(s) => panic!("{} accepted: {s:?}", next.event_type()),
                Err(msg) => {
                    assert!(msg.starts_with("corrupt deployments stream: "), "{msg}");
                    assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "corrupt deployments stream: deployment.ended on an empty stream")]
    fn evolve_panics_on_a_corrupt_stream() {
        let _ = replay(&[ended("IT")]);
    }

    // ------------------------------------------------------------ the crises view

    #[test]
    fn the_crises_view_follows_declarations_and_closings() {
        let v = crises();
        assert_eq!(
            v.get(CRISIS),
            Some(&CrisisInfo {
                country: cc("IT"),
                closed: false
            })
        );
        assert_eq!(
            v.get(CLOSED_CRISIS),
            Some(&CrisisInfo {
                country: cc("GR"),
                closed: true
            })
        );
        assert_eq!(v.get(UNKNOWN_CRISIS), None);

        let mut v = crises();
        apply_crisis(&mut v, CRISIS, "crisis.closed", closed_data(CRISIS));
        assert!(v.get(CRISIS).expect("declared").closed);
        // Folding an event again changes nothing: a second declaration does
        // not reopen, a second closing stays closed.
        apply_crisis(&mut v, CRISIS, "crisis.declared", declared_data(CRISIS, "AT"));
        apply_crisis(&mut v, CRISIS, "crisis.closed", closed_data(CRISIS));
        assert_eq!(
            v.get(CRISIS),
            Some(&CrisisInfo {
                country: cc("IT"),
                closed: true
            })
        );
    }

    #[test]
    fn the_crises_view_ignores_other_events_and_tolerates_new_fields() {
        let mut v = crises();
        let stream = format!("crisis-{CRISIS}");
        for (t, data) in [
            ("sitrep.posted", json!({"text": "aftershocks"})),
            ("assistance.requested", json!({"needs": ["dvi"]})),
            ("crisis.escalated", json!("anything")),
            ("crisis.deescalated", json!(null)),
            ("crisis.renamed", json!({"title": "x"})),
        ] {
            assert_eq!(v.apply(&stream, t, &data), Ok(()), "{t}");
            assert_eq!(v.apply("not-a-stream", t, &data), Ok(()), "{t}");
        }
        assert!(!v.get(CRISIS).expect("declared").closed);
        let mut data = declared_data(UNKNOWN_CRISIS, "PT");
        data["affected_regions"] = json!(["Lisboa"]);
        apply_crisis(&mut v, UNKNOWN_CRISIS, "crisis.declared", data);
        let mut data = closed_data(UNKNOWN_CRISIS);
        data["lessons"] = json!("more boats");
        apply_crisis(&mut v, UNKNOWN_CRISIS, "crisis.closed", data);
        assert_eq!(
            v.get(UNKNOWN_CRISIS),
            Some(&CrisisInfo {
                country: cc("PT"),
                closed: true
            })
        );
    }

    #[test]
    fn the_crises_view_refuses_malformed_events_of_known_types() {
        let stream = format!("crisis-{CRISIS}");
        let unknown_stream = format!("crisis-{UNKNOWN_CRISIS}");
        let mut no_country = declared_data(CRISIS, "IT");
        no_country.as_object_mut().expect("an object").remove("country");
        for (stream, t, data, contains) in [
            (
                stream.as_str(),
                "crisis.declared",
                no_country,
                "malformed crisis crisis.declared data: missing field `country`",
            ),
            (
                stream.as_str(),
                "crisis.declared",
                declared_data(CRISIS, "XX"),
                "\"XX\" is not an ISO 3166-1",
            ),
            (stream.as_str(), "crisis.closed", json!([]), "not a JSON object"),
            (
                stream.as_str(),
                "crisis.closed",
                json!({"crisis_id": CRISIS, "summary": "s"}),
                "malformed crisis crisis.closed data: missing field `closed_at`",
            ),
            ("crisis-42", "crisis.closed", closed_data(CRISIS), "not crisis-<uuid>"),
            (
                unknown_stream.as_str(),
                "crisis.closed",
                closed_data(UNKNOWN_CRISIS),
                "never declared",
            ),
            (
                unknown_stream.as_str(),
                "crisis.declared",
                declared_data(CRISIS, "IT"),
                &format!("crisis crisis.declared of {CRISIS} on stream crisis-{UNKNOWN_CRISIS}"),
            ),
            (
                stream.as_str(),
                "crisis.closed",
                closed_data(OTHER_CRISIS),
                "crisis crisis.closed of",
            ),
        ] {
            let mut v = crises();
            match v.apply(stream, t, &data) {
                Ok(()) => panic!("{t} on {stream} accepted: {data}"),
                Err(msg) => assert!(msg.contains(contains), "{msg} does not contain {contains:?}"),
            }
        }
    }

    // ------------------------------------------------------------ small parts

    #[test]
    fn statuses_and_teams_have_their_names() {
        use DeploymentStatus as S;
        for (s, name, is_final, under_way) in [
            (S::Requested, "requested", false, false),
            (S::Approved, "approved", false, true),
            (S::Declined, "declined", true, false),
            (S::Arrived, "arrived", false, true),
            (S::Ended, "ended", true, false),
            (S::Recalled, "recalled", true, false),
        ] {
            assert_eq!(s.as_str(), name);
            assert_eq!(json!(s), json!(name));
            assert_eq!(s.is_final(), is_final, "{s}");
            assert_eq!(s.is_under_way(), under_way, "{s}");
        }
        let names: Vec<&str> = Team::ALL.iter().map(Team::as_str).collect();
        assert_eq!(names, ["irt", "dvi", "imest", "cyber", "forensics"]);
        for team in Team::ALL {
            assert_eq!(json!(team), json!(team.as_str()));
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
