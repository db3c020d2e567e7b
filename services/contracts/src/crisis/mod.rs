//! The crisis contract: crises declared by a country's liaison, their
//! situation reports (sitreps), assistance requests, changes of severity and
//! closing, as a pure decider (`Crisis`, the kernel's typed `Aggregate`).
//!
//! One aggregate is one crisis (stream `crisis-<id>`, `stream_of`), with its
//! sitreps, its assistance requests and its changes of severity. A command's
//! name is its `Command` variant (`declare_crisis`, `post_sitrep` …), an
//! event's type its `Event` variant's name (`crisis.declared` …): each
//! written once, in the serde attributes, and read from the wire's
//! `(name, data)` pair by the kernel. `decide` and `evolve` live in
//! `decide`; `status` is the fold of these events that other services
//! (deployments) keep.
//!
//! What crisis knows of deployments (which countries have a team at which
//! crisis) is its facts: the deployments contract's `teams::TeamsView`,
//! folded from the deployments events by the crisis service.
//!
//! Who sees what, in one place (`Crisis::audience`): every country sees
//! every crisis and its sitreps (docs/design.md, Visibility); an empty stream is
//! seen by nobody, so an unknown crisis is `not_found`.
//!
//! Order of the checks. Every country sees every crisis, so existence is no
//! secret; the order makes the answer predictable:
//!
//! 1. no such crisis → `not_found`, for every command but `declare_crisis`;
//! 2. the crisis is closed → `rule_violated`, for every command,
//!    `declare_crisis` of its id included;
//! 3. the caller's role and country → `forbidden`;
//! 4. the command's own fields and rules → `invalid`, `rule_violated`, and
//!    `conflict` when the new crisis's, sitrep's or request's id is already
//!    used.
//!
//! Choices where docs/design.md is silent:
//!
//! - Only liaisons act on a crisis (docs/design.md gives crises to them alone):
//!   coordinators, reviewers and auditors are `forbidden`, the affected
//!   country's included.
//! - A liaison declares a crisis in its own country only, and `GS` (the
//!   secretariat) is no place: declaring one there is `invalid`. A liaison
//!   of another country gets `forbidden` first (step 3 before step 4).
//! - A sitrep is posted by a liaison of the affected country, or of a
//!   country contributing to a deployment linked to the crisis that is
//!   approved or arrived (`TeamsView::has_team`). A team only requested,
//!   declined, ended or recalled gives no right to report; a stand-down
//!   request changes nothing until the deployment ends or is recalled. The
//!   secretariat may post when it contributes a team.
//! - Asking for assistance, escalating, de-escalating and closing are the
//!   affected country's alone: the host decides what help it needs and how
//!   bad its crisis is. A country with a team there reports, it does not
//!   steer.
//! - Casualties are the counts known when the sitrep is written (totals so
//!   far, not increments); a count left out is "not reported", never zero,
//!   and `casualties` given names at least one count.
//! - A sitrep's `needs` left out is stored as `null` ("not stated"), `[]`
//!   as "nothing needed now"; the two stay distinct. Needs are stored
//!   without duplicates in the order of `Need::ALL`, for sitreps and
//!   assistance requests alike.
//! - An assistance request's id used twice on the crisis is a `conflict`,
//!   like a sitrep's.
//! - Severity moves by one step or several at once; escalating to the
//!   current severity or lower (de-escalating to it or higher) is
//!   `rule_violated`, not a silent no-op: the caller believes something
//!   changes.
//! - Optional texts (an assistance request's `details`), when given, must
//!   not be blank: leave them out instead.
//! - Closing is final: a closed crisis is never reopened; a follow-up is a
//!   new crisis. Its record stays readable by every country.
//!
//! Architecture invariant: no IO, no clock, no randomness. Time and the
//! actor come in `Ctx`, new ids in the command, deployments in the facts.

mod decide;
pub mod status;

use std::fmt;

use concord_core::decider::{Aggregate, Audience, StreamKind, Viewer};
use concord_core::{CountryCode, Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::deployments::teams::TeamsView;

pub use concord_core::decider::{Ctx, Rejection};

/// Longest title of a crisis, in characters: a headline, not a report;
/// sitreps hold the rest.
pub const TITLE_CHARS_MAX: usize = 200;
/// Longest text of a sitrep, in characters: a situation report of a few
/// pages; the full record stays in the national systems.
pub const SITREP_TEXT_CHARS_MAX: usize = 8000;
/// Longest details of an assistance request, in characters.
pub const DETAILS_CHARS_MAX: usize = 4000;
/// Longest reason of an escalation or a de-escalation, in characters.
pub const REASON_CHARS_MAX: usize = 4000;
/// Longest closing summary of a crisis, in characters: an after-action
/// summary, as long as a sitrep.
pub const SUMMARY_CHARS_MAX: usize = 8000;
/// Least severity of a crisis: minor.
pub const SEVERITY_MIN: u8 = 1;
/// Greatest severity of a crisis: catastrophic. Five steps, so that each
/// step means something to every country reading it.
pub const SEVERITY_MAX: u8 = 5;
/// Most sitreps one crisis holds. Rationale: the whole state is rebuilt
/// for every command, so it must stay small; 2000 is a sitrep an hour from
/// each of 20 countries for four days. A crisis that needs more is a
/// follow-up crisis.
pub const SITREPS_MAX: usize = 2000;
/// Most assistance requests one crisis holds (same rationale as
/// `SITREPS_MAX`): a request names needs, so a few dozen cover a crisis.
pub const ASSISTANCE_REQUESTS_MAX: usize = 200;
/// Most changes of severity one crisis holds (same rationale): a severity
/// of five steps that changed this often is no longer information.
pub const SEVERITY_CHANGES_MAX: usize = 200;

// ---------------------------------------------------------------- values

/// What kind of crisis. An unknown kind does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisKind {
    TerroristAttack,
    NaturalDisaster,
    MassCasualty,
    CyberIncident,
    MajorEvent,
    Other,
}

impl CrisisKind {
    pub const ALL: [CrisisKind; 6] = [
        CrisisKind::TerroristAttack,
        CrisisKind::NaturalDisaster,
        CrisisKind::MassCasualty,
        CrisisKind::CyberIncident,
        CrisisKind::MajorEvent,
        CrisisKind::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            CrisisKind::TerroristAttack => "terrorist_attack",
            CrisisKind::NaturalDisaster => "natural_disaster",
            CrisisKind::MassCasualty => "mass_casualty",
            CrisisKind::CyberIncident => "cyber_incident",
            CrisisKind::MajorEvent => "major_event",
            CrisisKind::Other => "other",
        }
    }
}

impl fmt::Display for CrisisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a crisis is, `SEVERITY_MIN` to `SEVERITY_MAX`. Cannot hold
/// anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Severity(u8);

impl Severity {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Severity {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        if (SEVERITY_MIN..=SEVERITY_MAX).contains(&n) {
            Ok(Severity(n))
        } else {
            Err(format!("severity {n} is not {SEVERITY_MIN} to {SEVERITY_MAX}"))
        }
    }
}

impl From<Severity> for u8 {
    fn from(s: Severity) -> u8 {
        s.0
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What help a crisis needs. Ordered as declared: the order needs are
/// stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// Disaster victim identification.
    Dvi,
    Forensics,
    Investigation,
    Liaison,
    Cyber,
    SearchRescue,
    Medical,
    Logistics,
    Other,
}

impl Need {
    pub const ALL: [Need; 9] = [
        Need::Dvi,
        Need::Forensics,
        Need::Investigation,
        Need::Liaison,
        Need::Cyber,
        Need::SearchRescue,
        Need::Medical,
        Need::Logistics,
        Need::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Need::Dvi => "dvi",
            Need::Forensics => "forensics",
            Need::Investigation => "investigation",
            Need::Liaison => "liaison",
            Need::Cyber => "cyber",
            Need::SearchRescue => "search_rescue",
            Need::Medical => "medical",
            Need::Logistics => "logistics",
            Need::Other => "other",
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The casualties a sitrep reports: totals known when it was written. A
/// count left out is not reported (it is not zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Casualties {
    #[serde(default)]
    pub dead: Option<u32>,
    #[serde(default)]
    pub injured: Option<u32>,
    #[serde(default)]
    pub missing: Option<u32>,
}

impl Casualties {
    /// At least one count is reported.
    pub fn reports_any(&self) -> bool {
        self.dead.is_some() || self.injured.is_some() || self.missing.is_some()
    }
}

/// `declare_crisis`: a liaison declares a crisis in its own country. The
/// caller generates `crisis_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclareCrisis {
    pub crisis_id: Uuid,
    pub kind: CrisisKind,
    pub title: String,
    /// The affected country: the declaring liaison's own, never `GS`.
    pub country: CountryCode,
    pub severity: Severity,
}

/// `post_sitrep`: a liaison of the affected country, or of a country with a
/// team there, reports on the situation. The caller generates `sitrep_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostSitrep {
    pub crisis_id: Uuid,
    pub sitrep_id: Uuid,
    pub text: String,
    #[serde(default)]
    pub casualties: Option<Casualties>,
    /// Duplicates are accepted and dropped; `[]` means "nothing needed".
    #[serde(default)]
    pub needs: Option<Vec<Need>>,
}

/// `request_assistance`: the affected country's liaison asks other
/// countries for help. The caller generates `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestAssistance {
    pub crisis_id: Uuid,
    pub request_id: Uuid,
    /// At least one; duplicates are accepted and dropped.
    pub needs: Vec<Need>,
    #[serde(default)]
    pub details: Option<String>,
}

/// `escalate` (to a higher severity) and `deescalate` (to a lower one): the
/// affected country's liaison, with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSeverity {
    pub crisis_id: Uuid,
    /// The new severity.
    pub severity: Severity,
    pub reason: String,
}

/// `close_crisis`: the affected country's liaison ends the crisis, with a
/// summary; it stays on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseCrisis {
    pub crisis_id: Uuid,
    pub summary: String,
}

/// A command, named by its variant (`declare_crisis`, `post_sitrep` …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    DeclareCrisis(DeclareCrisis),
    PostSitrep(PostSitrep),
    RequestAssistance(RequestAssistance),
    Escalate(ChangeSeverity),
    Deescalate(ChangeSeverity),
    CloseCrisis(CloseCrisis),
}

impl Command {
    /// The crisis the command addresses.
    pub fn crisis_id(&self) -> Uuid {
        match self {
            Command::DeclareCrisis(c) => c.crisis_id,
            Command::PostSitrep(c) => c.crisis_id,
            Command::RequestAssistance(c) => c.crisis_id,
            Command::Escalate(c) | Command::Deescalate(c) => c.crisis_id,
            Command::CloseCrisis(c) => c.crisis_id,
        }
    }
}

// ---------------------------------------------------------------- events

/// `crisis.declared`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisisDeclared {
    pub crisis_id: Uuid,
    pub kind: CrisisKind,
    pub title: String,
    /// The affected country, never `GS`.
    pub country: CountryCode,
    pub severity: Severity,
    /// The declaring liaison's `sub`.
    pub declared_by: String,
    pub declared_at: String,
}

/// `sitrep.posted`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitrepPosted {
    pub sitrep_id: Uuid,
    pub text: String,
    /// Always present in the stored data, `null` when not given; so is
    /// `needs`. Inside, every count is present, `null` when not reported.
    pub casualties: Option<Casualties>,
    /// Without duplicates, in the order of `Need::ALL`; may be empty.
    pub needs: Option<Vec<Need>>,
    /// The poster's country: the affected one or one with a team there.
    pub country: CountryCode,
    pub posted_by: String,
    pub posted_at: String,
}

/// `assistance.requested`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistanceRequested {
    pub request_id: Uuid,
    /// At least one, without duplicates, in the order of `Need::ALL`.
    pub needs: Vec<Need>,
    /// Always present in the stored data, `null` when not given.
    pub details: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
}

/// `crisis.escalated` (`to` > `from`) and `crisis.deescalated` (`to` <
/// `from`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityChanged {
    /// The severity before, the crisis's current one.
    pub from: Severity,
    pub to: Severity,
    pub reason: String,
    /// The liaison's `sub`.
    pub by: String,
    pub at: String,
}

/// `crisis.closed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrisisClosed {
    pub crisis_id: Uuid,
    pub summary: String,
    pub closed_by: String,
    pub closed_at: String,
}

/// An event, named by its variant (the envelope's `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "crisis.declared")]
    CrisisDeclared(CrisisDeclared),
    #[serde(rename = "sitrep.posted")]
    SitrepPosted(SitrepPosted),
    #[serde(rename = "assistance.requested")]
    AssistanceRequested(AssistanceRequested),
    #[serde(rename = "crisis.escalated")]
    CrisisEscalated(SeverityChanged),
    #[serde(rename = "crisis.deescalated")]
    CrisisDeescalated(SeverityChanged),
    #[serde(rename = "crisis.closed")]
    CrisisClosed(CrisisClosed),
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisStatus {
    Active,
    Closed,
}

impl CrisisStatus {
    /// Every status, in the order of the lifecycle (lists and filters name them).
    pub const ALL: [CrisisStatus; 2] = [CrisisStatus::Active, CrisisStatus::Closed];

    pub fn as_str(&self) -> &'static str {
        match self {
            CrisisStatus::Active => "active",
            CrisisStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for CrisisStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declared crisis, as its events recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrisisRecord {
    pub id: Uuid,
    pub kind: CrisisKind,
    pub title: String,
    /// The affected country.
    pub country: CountryCode,
    /// The current severity.
    pub severity: Severity,
    pub declared_by: String,
    pub declared_at: String,
    pub status: CrisisStatus,
    /// Every sitrep, oldest first, as recorded.
    pub sitreps: Vec<SitrepPosted>,
    /// Every assistance request, oldest first, as recorded.
    pub assistance_requests: Vec<AssistanceRequested>,
    /// Every change of severity, oldest first, as recorded (up when `to` >
    /// `from`).
    pub severity_changes: Vec<SeverityChanged>,
    pub closure: Option<CrisisClosed>,
}

/// The state of one stream: `Empty` (the default) until its first event.
// One state per command, rebuilt and dropped; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[default]
    Empty,
    Crisis(CrisisRecord),
}

impl State {
    /// What the `get` query answers (`null` for `Empty`, which nobody sees:
    /// an unknown crisis is `not_found`). Every country sees all of a crisis
    /// (docs/design.md, Visibility). The stream version is not part of it: the
    /// caller adds it.
    pub fn view(&self) -> Value {
        match self {
            State::Empty => Value::Null,
            State::Crisis(c) => json!({
                "id": c.id,
                "status": c.status,
                "kind": c.kind,
                "title": c.title,
                "country": c.country,
                "severity": c.severity,
                "declared_by": c.declared_by,
                "declared_at": c.declared_at,
                "sitreps": c.sitreps,
                "assistance_requests": c.assistance_requests,
                "severity_changes": c.severity_changes,
                "closure": c.closure,
            }),
        }
    }

    /// What the state is, for messages about a corrupt stream.
    fn describe(&self) -> String {
        match self {
            State::Empty => "an empty stream".into(),
            State::Crisis(c) => format!("a crisis that is {} at severity {}", c.status, c.severity),
        }
    }
}

// ---------------------------------------------------------------- the contract

/// `get`: a crisis with its sitreps, assistance requests and changes of
/// severity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Get {
    pub crisis_id: Uuid,
    pub country: CountryCode,
    /// The asker's role; it changes nothing, every country sees a crisis.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A query, named by its variant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    Get(Get),
}

/// The stream of crisis `id`.
pub fn stream_of(id: Uuid) -> String {
    STREAM.stream(id)
}

/// The kind of this contract's streams, `crisis-<uuid>`.
pub const STREAM: StreamKind = StreamKind("crisis");

/// The crisis service's contract.
pub struct Crisis;

impl Aggregate for Crisis {
    const SERVICE: Service = Service::Crisis;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    type State = State;
    type Facts = TeamsView;

    fn stream(command: &Command) -> String {
        stream_of(command.crisis_id())
    }

    fn decide(state: &State, command: &Command, teams: &TeamsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
        decide::decide(state, command, teams, ctx)
    }

    fn evolve(state: State, event: &Event) -> Result<State, String> {
        decide::evolve(state, event)
    }

    /// Every country, once the crisis is declared (docs/design.md, Visibility):
    /// a crisis concerns the whole network, and its sitreps are how it
    /// learns what is needed.
    fn audience(state: &State, _: &TeamsView) -> Audience {
        match state {
            State::Empty => Audience::nobody(),
            State::Crisis(_) => Audience::everyone(),
        }
    }

    fn view(state: &State) -> Value {
        state.view()
    }

    fn query_stream(query: &Query) -> String {
        let Query::Get(get) = query;
        stream_of(get.crisis_id)
    }

    fn answer(query: &Query, state: &State, version: u64, teams: &TeamsView) -> Result<Value, Rejection> {
        let Query::Get(get) = query;
        let viewer = Viewer {
            country: get.country,
            role: get.role.unwrap_or(Role::Liaison),
        };
        match state {
            // Same answer for unknown and invisible: existence must not leak.
            State::Crisis(_) if Self::audience(state, teams).admits(&viewer) => {
                let mut view = state.view();
                view["version"] = json!(version);
                Ok(json!({ "crisis": view }))
            }
            _ => Err(Rejection::NotFound("crisis not found".into())),
        }
    }

    /// A sitrep or an assistance request names what it created: the one
    /// its first event recorded (a retry's answer names the first
    /// attempt's), or the command's when nothing was recorded.
    fn reply_id(command: &Command, first: Option<&Event>) -> Option<String> {
        let created = match (command, first) {
            (Command::PostSitrep(_), Some(Event::SitrepPosted(e))) => e.sitrep_id,
            (Command::PostSitrep(c), _) => c.sitrep_id,
            (Command::RequestAssistance(_), Some(Event::AssistanceRequested(e))) => e.request_id,
            (Command::RequestAssistance(c), _) => c.request_id,
            _ => return None,
        };
        Some(created.to_string())
    }
}

#[cfg(test)]
mod tests;
