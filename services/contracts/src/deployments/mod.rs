//! The deployments contract: specialist teams (incident response, victim
//! identification, major events support, cyber, forensics) sent by one or
//! more countries to a host country, for a crisis or for a joint operation,
//! as a pure decider (`Deployments`, the kernel's typed `Aggregate`).
//!
//! One aggregate is one deployment (stream `deployment-<id>`,
//! `stream_of`). A command's name is its `Command` variant
//! (`request_deployment`, `approve_deployment` …), an event's type its
//! `Event` variant's name (`deployment.requested` …): each written once, in
//! the serde attributes, and read from the wire's `(name, data)` pair by
//! the kernel. `decide` and `evolve` live in `decide`; `teams` is the fold
//! of these events that other services (crisis) keep.
//!
//! What deployments knows of crises (the country, whether closed) and of
//! operations (the lead, the participants, whether closed) is its facts,
//! `DeploymentsFacts`: the crisis contract's `status::CrisesView` and the
//! operations contract's `membership::OperationsView`, folded from those
//! services' events by the deployments service.
//!
//! Who sees what, in one place (`Deployments::audience`): a deployment is
//! seen by its host country and its contributing countries (the members'
//! countries, the requesting one among them); auditors see everything; an
//! empty stream is seen by nobody, so an unknown id and a hidden one get
//! the same `not_found`.
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
//! This table is `DeploymentStatus::can_become`, which `evolve` and the
//! `teams` fold both follow. A stand-down request changes no status: it
//! sets a flag on an approved or arrived deployment of a crisis that
//! closed, once.
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
//! Choices where docs/design.md is silent:
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
//! the facts.

mod decide;
pub mod teams;

use std::collections::BTreeSet;
use std::fmt;

use concord_core::decider::{Aggregate, Audience, StreamKind, Viewer};
use concord_core::{CountryCode, Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::crisis::status::CrisesView;
use crate::operations::membership::OperationsView;

pub use concord_core::decider::{Ctx, Rejection};

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

/// A command, named by its variant (`request_deployment` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    RequestDeployment(RequestDeployment),
    ApproveDeployment(ApproveDeployment),
    DeclineDeployment(DeclineDeployment),
    MarkArrived(MarkArrived),
    EndDeployment(EndDeployment),
    Recall(Recall),
    RequestStandDown(RequestStandDown),
}

impl Command {
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

/// An event, named by its variant (the envelope's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "deployment.requested")]
    DeploymentRequested(DeploymentRequested),
    #[serde(rename = "deployment.approved")]
    DeploymentApproved(DeploymentApproved),
    #[serde(rename = "deployment.declined")]
    DeploymentDeclined(DeploymentDeclined),
    #[serde(rename = "deployment.arrived")]
    DeploymentArrived(DeploymentArrived),
    #[serde(rename = "deployment.ended")]
    DeploymentEnded(DeploymentEnded),
    #[serde(rename = "deployment.recalled")]
    DeploymentRecalled(DeploymentRecalled),
    #[serde(rename = "deployment.stand_down_requested")]
    StandDownRequested(StandDownRequested),
}

impl Event {
    /// The status the event moves its deployment to; `None` for the
    /// request, which starts one, and for a stand-down, which changes none.
    pub fn moves_to(&self) -> Option<DeploymentStatus> {
        match self {
            Event::DeploymentRequested(_) | Event::StandDownRequested(_) => None,
            Event::DeploymentApproved(_) => Some(DeploymentStatus::Approved),
            Event::DeploymentDeclined(_) => Some(DeploymentStatus::Declined),
            Event::DeploymentArrived(_) => Some(DeploymentStatus::Arrived),
            Event::DeploymentEnded(_) => Some(DeploymentStatus::Ended),
            Event::DeploymentRecalled(_) => Some(DeploymentStatus::Recalled),
        }
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
    /// Every status, in the order of the lifecycle (lists and filters name them).
    pub const ALL: [DeploymentStatus; 6] = [
        DeploymentStatus::Requested,
        DeploymentStatus::Approved,
        DeploymentStatus::Declined,
        DeploymentStatus::Arrived,
        DeploymentStatus::Ended,
        DeploymentStatus::Recalled,
    ];

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

    /// Whether the table in the module's doc allows `self` → `next`: what
    /// `evolve` accepts, and what the folds of these events (`teams`)
    /// check a status change against.
    pub fn can_become(self, next: DeploymentStatus) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, next),
            (Requested, Approved | Declined | Recalled)
                | (Approved, Arrived | Ended | Recalled)
                | (Arrived, Ended | Recalled)
        )
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The host and the contributing countries: who sees the deployment
    /// (`Deployments::audience`), and whose liaisons mark its arrival and
    /// end it.
    pub fn countries(&self) -> impl Iterator<Item = CountryCode> + '_ {
        std::iter::once(self.host_country).chain(self.contributing_countries.iter().copied())
    }
}

/// The state of one stream: `Empty` (the default) until its first event.
// One state per command, rebuilt and dropped; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    #[default]
    Empty,
    Deployment(Deployment),
}

impl State {
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

// ---------------------------------------------------------------- the contract

/// What deployments knows from the logs it follows, kept by its followers
/// under one lock, so that a decision reads crises and operations as they
/// stood together.
#[derive(Debug, Clone, Default)]
pub struct DeploymentsFacts {
    pub crises: CrisesView,
    pub operations: OperationsView,
}

/// `get`: a deployment as the asking country sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Get {
    pub deployment_id: Uuid,
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

/// The stream of deployment `id`.
pub fn stream_of(id: Uuid) -> String {
    STREAM.stream(id)
}

/// The kind of this contract's streams, `deployment-<uuid>`.
pub const STREAM: StreamKind = StreamKind("deployment");

/// The deployments service's contract.
pub struct Deployments;

impl Aggregate for Deployments {
    const SERVICE: Service = Service::Deployments;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    type State = State;
    type Facts = DeploymentsFacts;

    fn stream(command: &Command) -> String {
        stream_of(command.deployment_id())
    }

    fn decide(state: &State, command: &Command, facts: &DeploymentsFacts, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
        decide::decide(state, command, facts, ctx)
    }

    fn evolve(state: State, event: &Event) -> Result<State, String> {
        decide::evolve(state, event)
    }

    /// The host and the contributing countries (docs/design.md, Visibility): the
    /// countries whose officers or territory the deployment involves. Others,
    /// an operation's other participants included, do not see it.
    fn audience(state: &State, _: &DeploymentsFacts) -> Audience {
        match state {
            State::Empty => Audience::nobody(),
            State::Deployment(d) => Audience::countries(d.countries()),
        }
    }

    fn view(state: &State) -> Value {
        state.view()
    }

    fn query_stream(query: &Query) -> String {
        let Query::Get(get) = query;
        stream_of(get.deployment_id)
    }

    fn answer(query: &Query, state: &State, version: u64, facts: &DeploymentsFacts) -> Result<Value, Rejection> {
        let Query::Get(get) = query;
        let viewer = Viewer {
            country: get.country,
            role: get.role.unwrap_or(Role::Liaison),
        };
        match state {
            // Same answer for unknown and invisible: existence must not leak.
            State::Deployment(_) if Self::audience(state, facts).admits(&viewer) => {
                let mut view = state.view();
                view["version"] = json!(version);
                Ok(json!({ "deployment": view }))
            }
            _ => Err(Rejection::NotFound("deployment not found".into())),
        }
    }
}

#[cfg(test)]
mod tests;
