//! The crisis aggregate as a pure decider:
//! `decide(&State, &Command, &TeamsView, &Ctx) -> Result<Vec<Event>, Rejection>`
//! and `try_evolve(State, &Event) -> Result<State, String>`.
//!
//! One kind of aggregate lives in the crisis log: a crisis, in its stream
//! `crisis-<crisis_id>` (`stream_of`), with its sitreps, its assistance
//! requests and its changes of severity. Commands arrive with their name on
//! the subject and their whole body, `crisis_id` included, as JSON `data`
//! (`parse_command`); events are stored as `type` + `data` in the kernel's
//! envelope (`Event::event_type`, `Event::data`, `Event::from_parts`).
//!
//! What crisis knows of deployments (which countries have a team at which
//! crisis) is a `TeamsView` folded from the deployments service's events;
//! `decide` receives it as an argument.
//!
//! Order of the checks. Every country sees every crisis (DESIGN.md,
//! Visibility), so existence is no secret; the order makes the answer
//! predictable:
//!
//! 1. no such crisis → `not_found`, for every command but `declare_crisis`;
//! 2. the crisis is closed → `rule_violated`, for every command,
//!    `declare_crisis` of its id included;
//! 3. the caller's role and country → `forbidden`;
//! 4. the command's own fields and rules → `invalid`, `rule_violated`, and
//!    `conflict` when the new crisis's, sitrep's or request's id is already
//!    used.
//!
//! Choices where DESIGN.md is silent:
//!
//! - Only liaisons act on a crisis (DESIGN.md gives crises to them alone):
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
//! actor come in `Ctx`, new ids in the command, deployments in the view.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use concord_core::{Actor, CountryCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

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

/// The version of every event's `data` schema (the envelope's
/// `schema_version`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What `decide` needs besides the state, the command and the teams view:
/// who asks and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: Actor,
    /// RFC 3339 UTC; becomes `declared_at`, `posted_at`, ….
    pub now: String,
}

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

// ---------------------------------------------------------------- commands

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    DeclareCrisis(DeclareCrisis),
    PostSitrep(PostSitrep),
    RequestAssistance(RequestAssistance),
    Escalate(ChangeSeverity),
    Deescalate(ChangeSeverity),
    CloseCrisis(CloseCrisis),
}

/// Every command name, i.e. the last token of `concord.cmd.crisis.<name>`.
pub const COMMANDS: [&str; 6] = [
    "declare_crisis",
    "post_sitrep",
    "request_assistance",
    "escalate",
    "deescalate",
    "close_crisis",
];

impl Command {
    /// The command's name, one of `COMMANDS`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::DeclareCrisis(_) => "declare_crisis",
            Command::PostSitrep(_) => "post_sitrep",
            Command::RequestAssistance(_) => "request_assistance",
            Command::Escalate(_) => "escalate",
            Command::Deescalate(_) => "deescalate",
            Command::CloseCrisis(_) => "close_crisis",
        }
    }

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

/// The stream a command addresses: "crisis-<crisis_id>".
pub fn stream_of(cmd: &Command) -> String {
    format!("crisis-{}", cmd.crisis_id())
}

/// Builds a command from its name (the subject's last token) and its whole
/// body, `crisis_id` included. An unknown name or a body that does not fit
/// (unknown or missing field, wrong type, a country code that names nobody,
/// an unknown kind or need, a severity out of range, a negative count) is
/// `Rejection::Invalid`.
pub fn parse_command(name: &str, data: Value) -> Result<Command, Rejection> {
    use concord_core::decider::command_body as body;
    match name {
        "declare_crisis" => body(name, data).map(Command::DeclareCrisis),
        "post_sitrep" => body(name, data).map(Command::PostSitrep),
        "request_assistance" => body(name, data).map(Command::RequestAssistance),
        "escalate" => body(name, data).map(Command::Escalate),
        "deescalate" => body(name, data).map(Command::Deescalate),
        "close_crisis" => body(name, data).map(Command::CloseCrisis),
        _ => Err(Rejection::Invalid(format!(
            "unknown command {name:?}: expected one of {}",
            COMMANDS.join(", ")
        ))),
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    CrisisDeclared(CrisisDeclared),
    SitrepPosted(SitrepPosted),
    AssistanceRequested(AssistanceRequested),
    CrisisEscalated(SeverityChanged),
    CrisisDeescalated(SeverityChanged),
    CrisisClosed(CrisisClosed),
}

/// Every event type the crisis log records (the envelope's `type`).
pub const EVENT_TYPES: [&str; 6] = [
    "crisis.declared",
    "sitrep.posted",
    "assistance.requested",
    "crisis.escalated",
    "crisis.deescalated",
    "crisis.closed",
];

impl Event {
    /// The envelope's `type`, one of `EVENT_TYPES`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::CrisisDeclared(_) => "crisis.declared",
            Event::SitrepPosted(_) => "sitrep.posted",
            Event::AssistanceRequested(_) => "assistance.requested",
            Event::CrisisEscalated(_) => "crisis.escalated",
            Event::CrisisDeescalated(_) => "crisis.deescalated",
            Event::CrisisClosed(_) => "crisis.closed",
        }
    }

    /// The envelope's `data`: a JSON object of strings, `null`s, arrays of
    /// strings and non-negative integers (severities, counts; no floats).
    pub fn data(&self) -> Value {
        let data = match self {
            Event::CrisisDeclared(e) => serde_json::to_value(e),
            Event::SitrepPosted(e) => serde_json::to_value(e),
            Event::AssistanceRequested(e) => serde_json::to_value(e),
            Event::CrisisEscalated(e) | Event::CrisisDeescalated(e) => serde_json::to_value(e),
            Event::CrisisClosed(e) => serde_json::to_value(e),
        };
        // Structs of strings, uuids, country codes, integers and unit
        // enums: the only ways `to_value` fails (non-string map keys, a
        // failing custom `Serialize`) cannot occur.
        data.expect("event data of plain fields always serializes")
    }

    /// Rebuilds an event from a stored envelope's `type` and `data`.
    pub fn from_parts(event_type: &str, data: &Value) -> Result<Event, String> {
        use concord_core::decider::event_body as body;
        match event_type {
            "crisis.declared" => body(event_type, data).map(Event::CrisisDeclared),
            "sitrep.posted" => body(event_type, data).map(Event::SitrepPosted),
            "assistance.requested" => body(event_type, data).map(Event::AssistanceRequested),
            "crisis.escalated" => body(event_type, data).map(Event::CrisisEscalated),
            "crisis.deescalated" => body(event_type, data).map(Event::CrisisDeescalated),
            "crisis.closed" => body(event_type, data).map(Event::CrisisClosed),
            _ => Err(format!("unknown crisis event type {event_type:?}")),
        }
    }
}

// ---------------------------------------------------------------- the teams view

/// Where a deployment stands, as the deployments service records it:
///
/// | from        | to                                |
/// |-------------|-----------------------------------|
/// | `requested` | `approved`, `declined`            |
/// | `approved`  | `arrived`, `ended`, `recalled`    |
/// | `arrived`   | `ended`, `recalled`               |
/// | `declined`, `ended`, `recalled` | — (final)     |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// Whether a deployment in this status may become `next`.
    fn may_become(self, next: DeploymentStatus) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, next),
            (Requested, Approved | Declined) | (Approved, Arrived | Ended | Recalled) | (Arrived, Ended | Recalled)
        )
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One deployment as crisis knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentInfo {
    /// `None` for a deployment to an operation.
    pub crisis_id: Option<Uuid>,
    pub contributing_countries: BTreeSet<CountryCode>,
    pub status: DeploymentStatus,
}

impl DeploymentInfo {
    /// Approved or arrived: the team is on its way or there.
    pub fn is_there(&self) -> bool {
        matches!(self.status, DeploymentStatus::Approved | DeploymentStatus::Arrived)
    }
}

/// What crisis knows of deployments, folded from the deployments service's
/// events (it never calls that service).
#[derive(Default, Clone, Debug)]
pub struct TeamsView {
    deployments: BTreeMap<Uuid, DeploymentInfo>,
}

impl TeamsView {
    /// Folds one deployments event; `stream` is "deployment-<uuid>".
    /// Unknown types are ignored (Ok), and so are unknown fields of known
    /// ones (that service may add some). Malformed data of a known type is
    /// Err, and so is an event of a known type for a deployment never
    /// requested (a gap in what was read) or a change of status the table of
    /// `DeploymentStatus` does not allow (a log crisis misreads). Folding an
    /// event again changes nothing: a second `deployment.requested` of the
    /// same deployment is ignored, and so is a status it already has.
    pub fn apply(&mut self, stream: &str, event_type: &str, data: &Value) -> Result<(), String> {
        // The deployments service's event data, as far as crisis needs it.
        // Unknown fields are tolerated: no `deny_unknown_fields`.
        #[derive(Deserialize)]
        struct Requested {
            deployment_id: Uuid,
            crisis_id: Option<Uuid>,
            contributing_countries: Vec<CountryCode>,
        }
        // The status events are parsed only to refuse malformed data; no
        // field of them is needed.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Approved {
            approved_by: String,
            approved_at: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Declined {
            reason: String,
            declined_by: String,
            declined_at: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Arrived {
            arrived_at: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Ended {
            report: String,
            ended_at: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Recalled {
            reason: String,
            recalled_by: String,
            recalled_at: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct StandDownRequested {
            crisis_id: Uuid,
            reason: String,
            requested_at: String,
        }
        fn body<'a, T: Deserialize<'a>>(event_type: &str, data: &'a Value) -> Result<T, String> {
            if !data.is_object() {
                return Err(format!("malformed deployments {event_type} data: not a JSON object"));
            }
            T::deserialize(data).map_err(|e| format!("malformed deployments {event_type} data: {e}"))
        }

        // Parse before looking the deployment up: malformed data is the
        // clearer error. `None`: a known type that changes no status.
        let next = match event_type {
            "deployment.requested" => None,
            "deployment.approved" => body::<Approved>(event_type, data).map(|_| Some(DeploymentStatus::Approved))?,
            "deployment.declined" => body::<Declined>(event_type, data).map(|_| Some(DeploymentStatus::Declined))?,
            "deployment.arrived" => body::<Arrived>(event_type, data).map(|_| Some(DeploymentStatus::Arrived))?,
            "deployment.ended" => body::<Ended>(event_type, data).map(|_| Some(DeploymentStatus::Ended))?,
            "deployment.recalled" => body::<Recalled>(event_type, data).map(|_| Some(DeploymentStatus::Recalled))?,
            "deployment.stand_down_requested" => body::<StandDownRequested>(event_type, data).map(|_| None)?,
            _ => return Ok(()),
        };
        let id = stream
            .strip_prefix("deployment-")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("deployments {event_type} on stream {stream:?}, not deployment-<uuid>"))?;
        if event_type == "deployment.requested" {
            let e: Requested = body(event_type, data)?;
            if e.deployment_id != id {
                return Err(format!(
                    "deployments deployment.requested of {} on stream {stream}",
                    e.deployment_id
                ));
            }
            self.deployments.entry(id).or_insert_with(|| DeploymentInfo {
                crisis_id: e.crisis_id,
                contributing_countries: e.contributing_countries.into_iter().collect(),
                status: DeploymentStatus::Requested,
            });
            return Ok(());
        }
        let deployment = self
            .deployments
            .get_mut(&id)
            .ok_or_else(|| format!("deployments {event_type} of deployment {id}, never requested"))?;
        match next {
            Some(next) if next == deployment.status => Ok(()),
            Some(next) if deployment.status.may_become(next) => {
                deployment.status = next;
                Ok(())
            }
            Some(_) => Err(format!(
                "deployments {event_type} of deployment {id} that is {}",
                deployment.status
            )),
            // A stand-down request: the team stays until ended or recalled.
            None => Ok(()),
        }
    }

    pub fn get(&self, deployment_id: Uuid) -> Option<&DeploymentInfo> {
        self.deployments.get(&deployment_id)
    }

    /// `country` contributes to a deployment linked to `crisis_id` that is
    /// approved or arrived (not requested, declined, ended or recalled).
    pub fn has_team(&self, crisis_id: Uuid, country: CountryCode) -> bool {
        self.deployments
            .values()
            .any(|d| d.crisis_id == Some(crisis_id) && d.is_there() && d.contributing_countries.contains(&country))
    }
}

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrisisStatus {
    Active,
    Closed,
}

impl CrisisStatus {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crisis {
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
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub enum State {
    #[default]
    Empty,
    Crisis(Crisis),
}

impl State {
    /// What the `get` query answers (`null` for `Empty`, which nobody sees:
    /// an unknown crisis is `not_found`). Every country sees all of a crisis
    /// (DESIGN.md, Visibility). The stream version is not part of it: the
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

// ---------------------------------------------------------------- rejections

/// A refused command (shared by every decider).
pub use concord_core::decider::Rejection;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). Deterministic: everything it needs is in its arguments.
pub fn decide(state: &State, cmd: &Command, teams: &TeamsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    match cmd {
        Command::DeclareCrisis(c) => decide_declare(state, c, ctx),
        Command::PostSitrep(c) => decide_post_sitrep(state, c, teams, ctx),
        Command::RequestAssistance(c) => decide_request_assistance(state, c, ctx),
        Command::Escalate(c) => decide_change_severity(state, c, Direction::Up, ctx),
        Command::Deescalate(c) => decide_change_severity(state, c, Direction::Down, ctx),
        Command::CloseCrisis(c) => decide_close(state, c, ctx),
    }
}

fn decide_declare(state: &State, cmd: &DeclareCrisis, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    if let State::Crisis(crisis) = state {
        not_closed(crisis)?;
    }
    if actor.role != Role::Liaison || actor.country != cmd.country {
        return Err(Rejection::Forbidden(format!(
            "only a liaison of {} can declare a crisis in {}",
            cmd.country, cmd.country
        )));
    }
    if cmd.country.is_secretariat() {
        return Err(Rejection::Invalid(
            "country GS is the secretariat, not a country a crisis can strike".into(),
        ));
    }
    required_text("title", &cmd.title, TITLE_CHARS_MAX)?;
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!("crisis {} already exists", cmd.crisis_id)));
    }
    Ok(vec![Event::CrisisDeclared(CrisisDeclared {
        crisis_id: cmd.crisis_id,
        kind: cmd.kind,
        title: cmd.title.clone(),
        country: cmd.country,
        severity: cmd.severity,
        declared_by: actor.sub.clone(),
        declared_at: ctx.now.clone(),
    })])
}

fn decide_post_sitrep(state: &State, cmd: &PostSitrep, teams: &TeamsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    let reporter = actor.country == crisis.country || teams.has_team(crisis.id, actor.country);
    if actor.role != Role::Liaison || !reporter {
        return Err(Rejection::Forbidden(format!(
            "only a liaison of the affected country {} or of a country with a team deployed there can post a sitrep",
            crisis.country
        )));
    }
    required_text("text", &cmd.text, SITREP_TEXT_CHARS_MAX)?;
    if cmd.casualties.is_some_and(|c| !c.reports_any()) {
        return Err(Rejection::Invalid(
            "casualties reports at least one of dead, injured, missing; leave it out when none is known".into(),
        ));
    }
    if crisis.sitreps.iter().any(|s| s.sitrep_id == cmd.sitrep_id) {
        return Err(Rejection::Conflict(format!("sitrep {} already exists", cmd.sitrep_id)));
    }
    if crisis.sitreps.len() >= SITREPS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis holds at most {SITREPS_MAX} sitreps; declare a follow-up crisis"
        )));
    }
    Ok(vec![Event::SitrepPosted(SitrepPosted {
        sitrep_id: cmd.sitrep_id,
        text: cmd.text.clone(),
        casualties: cmd.casualties,
        needs: cmd.needs.as_deref().map(canonical_needs),
        country: actor.country,
        posted_by: actor.sub.clone(),
        posted_at: ctx.now.clone(),
    })])
}

fn decide_request_assistance(state: &State, cmd: &RequestAssistance, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    affected_liaison_only(crisis, actor, "request assistance")?;
    if cmd.needs.is_empty() {
        return Err(Rejection::Invalid("needs names at least one need".into()));
    }
    if let Some(details) = &cmd.details {
        required_text("details", details, DETAILS_CHARS_MAX)?;
    }
    if crisis
        .assistance_requests
        .iter()
        .any(|r| r.request_id == cmd.request_id)
    {
        return Err(Rejection::Conflict(format!(
            "assistance request {} already exists",
            cmd.request_id
        )));
    }
    if crisis.assistance_requests.len() >= ASSISTANCE_REQUESTS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis holds at most {ASSISTANCE_REQUESTS_MAX} assistance requests"
        )));
    }
    Ok(vec![Event::AssistanceRequested(AssistanceRequested {
        request_id: cmd.request_id,
        needs: canonical_needs(&cmd.needs),
        details: cmd.details.clone(),
        requested_by: actor.sub.clone(),
        requested_at: ctx.now.clone(),
    })])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

fn decide_change_severity(
    state: &State,
    cmd: &ChangeSeverity,
    direction: Direction,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    let what = match direction {
        Direction::Up => "escalate the crisis",
        Direction::Down => "de-escalate the crisis",
    };
    affected_liaison_only(crisis, actor, what)?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    let (from, to) = (crisis.severity, cmd.severity);
    match direction {
        Direction::Up if to <= from => {
            return Err(Rejection::RuleViolated(format!(
                "severity {to} is not higher than the current {from}; escalating raises it"
            )));
        }
        Direction::Down if to >= from => {
            return Err(Rejection::RuleViolated(format!(
                "severity {to} is not lower than the current {from}; de-escalating lowers it"
            )));
        }
        _ => {}
    }
    if crisis.severity_changes.len() >= SEVERITY_CHANGES_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a crisis changes severity at most {SEVERITY_CHANGES_MAX} times"
        )));
    }
    let change = SeverityChanged {
        from,
        to,
        reason: cmd.reason.clone(),
        by: actor.sub.clone(),
        at: ctx.now.clone(),
    };
    Ok(vec![match direction {
        Direction::Up => Event::CrisisEscalated(change),
        Direction::Down => Event::CrisisDeescalated(change),
    }])
}

fn decide_close(state: &State, cmd: &CloseCrisis, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let crisis = open_crisis(state)?;
    affected_liaison_only(crisis, actor, "close the crisis")?;
    required_text("summary", &cmd.summary, SUMMARY_CHARS_MAX)?;
    Ok(vec![Event::CrisisClosed(CrisisClosed {
        crisis_id: crisis.id,
        summary: cmd.summary.clone(),
        closed_by: actor.sub.clone(),
        closed_at: ctx.now.clone(),
    })])
}

/// Steps 1 and 2 for a command on an existing crisis.
fn open_crisis(state: &State) -> Result<&Crisis, Rejection> {
    match state {
        State::Empty => Err(Rejection::NotFound("crisis not found".into())),
        State::Crisis(crisis) => {
            not_closed(crisis)?;
            Ok(crisis)
        }
    }
}

fn not_closed(crisis: &Crisis) -> Result<(), Rejection> {
    match crisis.status {
        CrisisStatus::Active => Ok(()),
        CrisisStatus::Closed => Err(Rejection::RuleViolated("crisis is closed".into())),
    }
}

fn affected_liaison_only(crisis: &Crisis, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && actor.country == crisis.country {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the affected country {} can {what}",
            crisis.country
        )))
    }
}

/// Without duplicates, in the order of `Need::ALL`.
fn canonical_needs(needs: &[Need]) -> Vec<Need> {
    needs.iter().copied().collect::<BTreeSet<_>>().into_iter().collect()
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
/// not declare a crisis; a declaration on a stream that already holds one;
/// anything after the closing; a sitrep or an assistance request whose id
/// the crisis already holds; a change of severity that does not start from
/// the current one or goes the wrong way; a closing of another crisis. The
/// log only ever holds what `decide` produced, under a hash chain, so such
/// a sequence means a corrupt log, and carrying on from a silently skipped
/// event would answer with a wrong state.
pub fn try_evolve(state: State, event: &Event) -> Result<State, String> {
    let corrupt = |state: &State| format!("corrupt crisis stream: {} on {}", event.event_type(), state.describe());
    match (state, event) {
        (State::Empty, Event::CrisisDeclared(e)) => Ok(State::Crisis(Crisis {
            id: e.crisis_id,
            kind: e.kind,
            title: e.title.clone(),
            country: e.country,
            severity: e.severity,
            declared_by: e.declared_by.clone(),
            declared_at: e.declared_at.clone(),
            status: CrisisStatus::Active,
            sitreps: Vec::new(),
            assistance_requests: Vec::new(),
            severity_changes: Vec::new(),
            closure: None,
        })),
        (State::Crisis(mut c), Event::SitrepPosted(e))
            if c.status == CrisisStatus::Active && !c.sitreps.iter().any(|s| s.sitrep_id == e.sitrep_id) =>
        {
            c.sitreps.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::AssistanceRequested(e))
            if c.status == CrisisStatus::Active
                && !c.assistance_requests.iter().any(|r| r.request_id == e.request_id) =>
        {
            c.assistance_requests.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisEscalated(e))
            if c.status == CrisisStatus::Active && e.from == c.severity && e.to > e.from =>
        {
            c.severity = e.to;
            c.severity_changes.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisDeescalated(e))
            if c.status == CrisisStatus::Active && e.from == c.severity && e.to < e.from =>
        {
            c.severity = e.to;
            c.severity_changes.push(e.clone());
            Ok(State::Crisis(c))
        }
        (State::Crisis(mut c), Event::CrisisClosed(e)) if c.status == CrisisStatus::Active && e.crisis_id == c.id => {
            c.status = CrisisStatus::Closed;
            c.closure = Some(e.clone());
            Ok(State::Crisis(c))
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

    /// Declared by FR, severity 3.
    const CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00c1);
    /// Another crisis (NL has a team there).
    const OTHER_CRISIS: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00c2);
    const OPERATION: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
    /// To `CRISIS` from DE and GS: approved.
    const DEP_APPROVED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0001);
    /// To `CRISIS` from IT: only requested.
    const DEP_REQUESTED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0002);
    /// To `CRISIS` from ES: approved, arrived, ended.
    const DEP_ENDED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0003);
    /// To `CRISIS` from PT: declined.
    const DEP_DECLINED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0004);
    /// To `CRISIS` from AT: approved, arrived, recalled.
    const DEP_RECALLED: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0005);
    /// To `OTHER_CRISIS` from NL: arrived.
    const DEP_ELSEWHERE: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0006);
    /// To `OPERATION` from BE: arrived.
    const DEP_OPERATION: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0007);
    const SITREP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0005_0001);
    const SITREP_2: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0005_0002);
    const REQUEST: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0006_0001);
    const NOW: &str = "2026-11-23T09:30:00.000000Z";
    const LATER: &str = "2026-11-24T17:00:00.000000Z";

    fn cc(code: &str) -> CountryCode {
        CountryCode::parse(code).expect("test country codes are real")
    }
    fn sev(n: u8) -> Severity {
        Severity::try_from(n).expect("test severities are 1 to 5")
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

    // The teams view, built the way the service builds it, from data shaped
    // as the deployments service records it.
    fn apply(view: &mut TeamsView, deployment: Uuid, event_type: &str, data: Value) {
        view.apply(&format!("deployment-{deployment}"), event_type, &data)
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
    fn requested_data(deployment: Uuid, crisis: Option<Uuid>, contributing: &[&str]) -> Value {
        json!({
            "deployment_id": deployment,
            "team": "DVI team",
            "host_country": "FR",
            "crisis_id": crisis,
            "operation_id": if crisis.is_none() { Some(OPERATION) } else { None },
            "contributing_countries": contributing,
            "members": [{"name": "Dr A. Weber", "role": "odontologist", "country": contributing[0]}],
            "reason": "victim identification",
            "requesting_country": "FR",
            "requested_by": "fr-liaison",
            "requested_at": NOW,
        })
    }
    fn status_data(event_type: &str) -> Value {
        match event_type {
            "deployment.approved" => json!({"approved_by": "fr-liaison", "approved_at": NOW}),
            "deployment.declined" => json!({"reason": "no need", "declined_by": "fr-liaison", "declined_at": NOW}),
            "deployment.arrived" => json!({"arrived_at": NOW}),
            "deployment.ended" => json!({"report": "42 victims identified", "ended_at": NOW}),
            "deployment.recalled" => {
                json!({"reason": "needed at home", "recalled_by": "at-liaison", "recalled_at": NOW})
            }
            "deployment.stand_down_requested" => {
                json!({"crisis_id": CRISIS, "reason": "crisis winding down", "requested_at": NOW})
            }
            other => panic!("no status data for {other}"),
        }
    }
    fn deploy(view: &mut TeamsView, deployment: Uuid, crisis: Option<Uuid>, contributing: &[&str], then: &[&str]) {
        apply(
            view,
            deployment,
            "deployment.requested",
            requested_data(deployment, crisis, contributing),
        );
        for t in then {
            let event_type = format!("deployment.{t}");
            apply(view, deployment, &event_type, status_data(&event_type));
        }
    }
    fn teams() -> TeamsView {
        let mut v = TeamsView::default();
        deploy(&mut v, DEP_APPROVED, Some(CRISIS), &["DE", "GS"], &["approved"]);
        deploy(&mut v, DEP_REQUESTED, Some(CRISIS), &["IT"], &[]);
        deploy(
            &mut v,
            DEP_ENDED,
            Some(CRISIS),
            &["ES"],
            &["approved", "arrived", "ended"],
        );
        deploy(&mut v, DEP_DECLINED, Some(CRISIS), &["PT"], &["declined"]);
        deploy(
            &mut v,
            DEP_RECALLED,
            Some(CRISIS),
            &["AT"],
            &["approved", "arrived", "recalled"],
        );
        deploy(
            &mut v,
            DEP_ELSEWHERE,
            Some(OTHER_CRISIS),
            &["NL"],
            &["approved", "arrived"],
        );
        deploy(&mut v, DEP_OPERATION, None, &["BE"], &["approved", "arrived"]);
        v
    }

    // Commands.
    fn declare_crisis() -> DeclareCrisis {
        DeclareCrisis {
            crisis_id: CRISIS,
            kind: CrisisKind::NaturalDisaster,
            title: "Floods in the Var".into(),
            country: cc("FR"),
            severity: sev(3),
        }
    }
    fn declare() -> Command {
        Command::DeclareCrisis(declare_crisis())
    }
    fn declare_in(country: &str) -> Command {
        Command::DeclareCrisis(DeclareCrisis {
            country: cc(country),
            ..declare_crisis()
        })
    }
    fn post_sitrep() -> PostSitrep {
        PostSitrep {
            crisis_id: CRISIS,
            sitrep_id: SITREP,
            text: "water receding in Draguignan".into(),
            casualties: None,
            needs: None,
        }
    }
    fn sitrep() -> Command {
        Command::PostSitrep(post_sitrep())
    }
    fn request_assistance() -> RequestAssistance {
        RequestAssistance {
            crisis_id: CRISIS,
            request_id: REQUEST,
            needs: vec![Need::Dvi],
            details: None,
        }
    }
    fn assistance() -> Command {
        Command::RequestAssistance(request_assistance())
    }
    fn change(severity: u8, reason: &str) -> ChangeSeverity {
        ChangeSeverity {
            crisis_id: CRISIS,
            severity: sev(severity),
            reason: reason.into(),
        }
    }
    fn escalate(to: u8) -> Command {
        Command::Escalate(change(to, "second dam failed"))
    }
    fn deescalate(to: u8) -> Command {
        Command::Deescalate(change(to, "water receding"))
    }
    fn close() -> Command {
        Command::CloseCrisis(CloseCrisis {
            crisis_id: CRISIS,
            summary: "all missing persons accounted for".into(),
        })
    }
    /// One of each command on `CRISIS`, each allowed to FR's liaison on an
    /// active crisis of severity 3.
    fn every_command() -> Vec<Command> {
        vec![declare(), sitrep(), assistance(), escalate(4), deescalate(2), close()]
    }

    // Events.
    fn declared() -> Event {
        Event::CrisisDeclared(CrisisDeclared {
            crisis_id: CRISIS,
            kind: CrisisKind::NaturalDisaster,
            title: "Floods in the Var".into(),
            country: cc("FR"),
            severity: sev(3),
            declared_by: "fr-liaison".into(),
            declared_at: NOW.into(),
        })
    }
    fn posted(id: Uuid, by: &str) -> Event {
        Event::SitrepPosted(SitrepPosted {
            sitrep_id: id,
            text: "water receding in Draguignan".into(),
            casualties: None,
            needs: None,
            country: cc(by),
            posted_by: sub(Role::Liaison, by),
            posted_at: NOW.into(),
        })
    }
    fn requested() -> Event {
        Event::AssistanceRequested(AssistanceRequested {
            request_id: REQUEST,
            needs: vec![Need::Dvi],
            details: None,
            requested_by: "fr-liaison".into(),
            requested_at: NOW.into(),
        })
    }
    fn changed(from: u8, to: u8) -> SeverityChanged {
        SeverityChanged {
            from: sev(from),
            to: sev(to),
            reason: if to > from {
                "second dam failed".into()
            } else {
                "water receding".into()
            },
            by: "fr-liaison".into(),
            at: NOW.into(),
        }
    }
    fn escalated(from: u8, to: u8) -> Event {
        Event::CrisisEscalated(changed(from, to))
    }
    fn deescalated(from: u8, to: u8) -> Event {
        Event::CrisisDeescalated(changed(from, to))
    }
    fn closed() -> Event {
        Event::CrisisClosed(CrisisClosed {
            crisis_id: CRISIS,
            summary: "all missing persons accounted for".into(),
            closed_by: "fr-liaison".into(),
            closed_at: NOW.into(),
        })
    }

    fn crisis() -> Vec<Event> {
        vec![declared()]
    }
    fn closed_crisis() -> Vec<Event> {
        vec![declared(), posted(SITREP, "FR"), closed()]
    }

    // ------------------------------------------------------------ given / when / then

    struct Given {
        history: Vec<Event>,
        teams: TeamsView,
    }

    fn given(history: impl IntoIterator<Item = Event>) -> Given {
        Given {
            history: history.into_iter().collect(),
            teams: teams(),
        }
    }

    impl Given {
        fn with_teams(self, teams: TeamsView) -> Given {
            Given { teams, ..self }
        }

        fn when(self, cmd: Command, actor: Actor) -> When {
            self.when_at(cmd, actor, NOW)
        }

        fn when_at(self, cmd: Command, actor: Actor, now: &str) -> When {
            let state = replay(&self.history);
            let ctx = Ctx { actor, now: now.into() };
            let result = decide(&state, &cmd, &self.teams, &ctx);
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

    fn the_crisis(history: &[Event]) -> Crisis {
        match replay(history) {
            State::Crisis(c) => c,
            State::Empty => panic!("no crisis"),
        }
    }

    // ------------------------------------------------------------ the story

    #[test]
    fn the_story_of_a_crisis() {
        let h = given([]).when(declare(), liaison("FR")).then([declared()]);
        let h = given(h)
            .when(
                Command::PostSitrep(PostSitrep {
                    casualties: Some(Casualties {
                        dead: Some(3),
                        injured: None,
                        missing: Some(12),
                    }),
                    needs: Some(vec![Need::SearchRescue, Need::Dvi, Need::SearchRescue]),
                    ..post_sitrep()
                }),
                liaison("FR"),
            )
            .then([Event::SitrepPosted(SitrepPosted {
                casualties: Some(Casualties {
                    dead: Some(3),
                    injured: None,
                    missing: Some(12),
                }),
                needs: Some(vec![Need::Dvi, Need::SearchRescue]),
                ..match posted(SITREP, "FR") {
                    Event::SitrepPosted(e) => e,
                    _ => unreachable!(),
                }
            })]);
        // DE has an approved team there.
        let h = given(h)
            .when(
                Command::PostSitrep(PostSitrep {
                    sitrep_id: SITREP_2,
                    ..post_sitrep()
                }),
                liaison("DE"),
            )
            .then([posted(SITREP_2, "DE")]);
        let h = given(h)
            .when(
                Command::RequestAssistance(RequestAssistance {
                    needs: vec![Need::Medical, Need::Dvi, Need::Medical],
                    details: Some("two DVI teams for a week".into()),
                    ..request_assistance()
                }),
                liaison("FR"),
            )
            .then([Event::AssistanceRequested(AssistanceRequested {
                needs: vec![Need::Dvi, Need::Medical],
                details: Some("two DVI teams for a week".into()),
                ..match requested() {
                    Event::AssistanceRequested(e) => e,
                    _ => unreachable!(),
                }
            })]);
        let h = given(h).when(escalate(5), liaison("FR")).then([escalated(3, 5)]);
        let h = given(h).when(deescalate(2), liaison("FR")).then([deescalated(5, 2)]);
        let h = given(h)
            .when_at(close(), liaison("FR"), LATER)
            .then([Event::CrisisClosed(CrisisClosed {
                closed_at: LATER.into(),
                ..match closed() {
                    Event::CrisisClosed(e) => e,
                    _ => unreachable!(),
                }
            })]);

        let c = the_crisis(&h);
        assert_eq!(c.status, CrisisStatus::Closed);
        assert_eq!(c.severity, sev(2));
        assert_eq!(
            replay(&h).view(),
            json!({
                "id": CRISIS,
                "status": "closed",
                "kind": "natural_disaster",
                "title": "Floods in the Var",
                "country": "FR",
                "severity": 2,
                "declared_by": "fr-liaison",
                "declared_at": NOW,
                "sitreps": [
                    {"sitrep_id": SITREP, "text": "water receding in Draguignan",
                     "casualties": {"dead": 3, "injured": null, "missing": 12},
                     "needs": ["dvi", "search_rescue"],
                     "country": "FR", "posted_by": "fr-liaison", "posted_at": NOW},
                    {"sitrep_id": SITREP_2, "text": "water receding in Draguignan",
                     "casualties": null, "needs": null,
                     "country": "DE", "posted_by": "de-liaison", "posted_at": NOW},
                ],
                "assistance_requests": [
                    {"request_id": REQUEST, "needs": ["dvi", "medical"], "details": "two DVI teams for a week",
                     "requested_by": "fr-liaison", "requested_at": NOW},
                ],
                "severity_changes": [
                    {"from": 3, "to": 5, "reason": "second dam failed", "by": "fr-liaison", "at": NOW},
                    {"from": 5, "to": 2, "reason": "water receding", "by": "fr-liaison", "at": NOW},
                ],
                "closure": {"crisis_id": CRISIS, "summary": "all missing persons accounted for",
                            "closed_by": "fr-liaison", "closed_at": LATER},
            })
        );
    }

    #[test]
    fn nobody_sees_an_empty_stream() {
        assert_eq!(State::Empty.view(), Value::Null);
        assert_eq!(replay(&crisis()).view()["status"], "active");
    }

    // ------------------------------------------------------------ declaring

    #[test]
    fn only_a_liaison_of_the_country_declares_a_crisis_there() {
        for who in [
            liaison("DE"),
            liaison("GS"),
            coordinator("FR"),
            coordinator("GS"),
            reviewer("FR"),
            auditor("FR"),
        ] {
            given([])
                .when(declare(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison of FR can declare a crisis in FR");
        }
        given([]).when(declare(), liaison("FR")).then([declared()]);
    }

    #[test]
    fn the_secretariat_is_no_place_for_a_crisis() {
        given([])
            .when(declare_in("GS"), liaison("GS"))
            .then_rejected(ErrorCode::Invalid, "country GS is the secretariat");
        // Another country's liaison is refused first for who it is.
        given([])
            .when(declare_in("GS"), liaison("FR"))
            .then_rejected(ErrorCode::Forbidden, "only a liaison of GS");
    }

    #[test]
    fn a_crisis_has_a_title_of_bounded_length() {
        for (title, contains) in [
            ("", "title must not be empty"),
            (" \t\n", "title must not be empty"),
            (&"t".repeat(TITLE_CHARS_MAX + 1), "title is longer than 200 characters"),
        ] {
            given([])
                .when(
                    Command::DeclareCrisis(DeclareCrisis {
                        title: title.into(),
                        ..declare_crisis()
                    }),
                    liaison("FR"),
                )
                .then_rejected(ErrorCode::Invalid, contains);
        }
        let longest = "é".repeat(TITLE_CHARS_MAX);
        let h = given([])
            .when(
                Command::DeclareCrisis(DeclareCrisis {
                    title: longest.clone(),
                    ..declare_crisis()
                }),
                liaison("FR"),
            )
            .then([Event::CrisisDeclared(CrisisDeclared {
                title: longest,
                ..match declared() {
                    Event::CrisisDeclared(e) => e,
                    _ => unreachable!(),
                }
            })]);
        assert_eq!(the_crisis(&h).title.chars().count(), TITLE_CHARS_MAX);
    }

    #[test]
    fn severity_holds_1_to_5_only() {
        for n in 1..=5u8 {
            assert_eq!(Severity::try_from(n).map(Severity::get), Ok(n));
        }
        for n in [0u8, 6, 255] {
            assert_eq!(Severity::try_from(n), Err(format!("severity {n} is not 1 to 5")), "{n}");
        }
        for severity in [json!(0), json!(6), json!(-1), json!(256), json!(2.5), json!("3")] {
            let body =
                json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "FR", "severity": severity});
            match parse_command("declare_crisis", body) {
                Ok(cmd) => panic!("severity {severity} accepted: {cmd:?}"),
                Err(r) => assert_eq!(r.code(), ErrorCode::Invalid, "{r}"),
            }
        }
    }

    #[test]
    fn declaring_an_existing_crisis_is_a_conflict() {
        given(crisis()).when(declare(), liaison("FR")).then_rejected(
            ErrorCode::Conflict,
            "crisis 019ab0c4-5e00-7000-8000-0000000000c1 already exists",
        );
        // Whoever asks, with whatever kind.
        given(crisis())
            .when(
                Command::DeclareCrisis(DeclareCrisis {
                    kind: CrisisKind::TerroristAttack,
                    ..declare_crisis()
                }),
                liaison("FR"),
            )
            .then_rejected(ErrorCode::Conflict, "already exists");
        given(crisis())
            .when(declare(), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "only a liaison of FR");
    }

    // ------------------------------------------------------------ no crisis, closed crisis

    #[test]
    fn every_command_but_declare_on_no_crisis_is_not_found() {
        for cmd in every_command().into_iter().skip(1) {
            for who in [liaison("FR"), liaison("DE"), coordinator("FR"), auditor("GS")] {
                given([])
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "crisis not found");
            }
        }
    }

    #[test]
    fn a_closed_crisis_refuses_everything() {
        assert_eq!(every_command().len(), COMMANDS.len(), "every command");
        for cmd in every_command() {
            // The affected liaison, and whoever else: closed comes before who.
            for who in [liaison("FR"), liaison("DE"), liaison("US"), auditor("GS")] {
                given(closed_crisis())
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::RuleViolated, "crisis is closed");
            }
        }
    }

    // ------------------------------------------------------------ sitreps

    #[test]
    fn the_affected_country_and_countries_with_a_team_there_post_sitreps() {
        given(crisis())
            .when(sitrep(), liaison("FR"))
            .then([posted(SITREP, "FR")]);
        // DE and the secretariat contribute to an approved deployment.
        given(crisis())
            .when(sitrep(), liaison("DE"))
            .then([posted(SITREP, "DE")]);
        given(crisis())
            .when(sitrep(), liaison("GS"))
            .then([posted(SITREP, "GS")]);
        // Still once the team arrived.
        let mut arrived = teams();
        apply(
            &mut arrived,
            DEP_APPROVED,
            "deployment.arrived",
            status_data("deployment.arrived"),
        );
        given(crisis())
            .with_teams(arrived.clone())
            .when(sitrep(), liaison("DE"))
            .then([posted(SITREP, "DE")]);
        // A stand-down request changes nothing until the deployment ends.
        apply(
            &mut arrived,
            DEP_APPROVED,
            "deployment.stand_down_requested",
            status_data("deployment.stand_down_requested"),
        );
        given(crisis())
            .with_teams(arrived.clone())
            .when(sitrep(), liaison("DE"))
            .then([posted(SITREP, "DE")]);
        apply(
            &mut arrived,
            DEP_APPROVED,
            "deployment.ended",
            status_data("deployment.ended"),
        );
        given(crisis())
            .with_teams(arrived)
            .when(sitrep(), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
    }

    #[test]
    fn a_country_whose_team_is_not_there_may_not_post_a_sitrep() {
        // IT: requested only; ES: ended; PT: declined; AT: recalled.
        for country in ["IT", "ES", "PT", "AT"] {
            given(crisis()).when(sitrep(), liaison(country)).then_rejected(
                ErrorCode::Forbidden,
                "only a liaison of the affected country FR or of a country with a team deployed there can post a sitrep",
            );
        }
    }

    #[test]
    fn an_unrelated_country_may_not_post_a_sitrep() {
        // US: no team at all; NL: a team at another crisis; BE: a team on an
        // operation.
        for country in ["US", "NL", "BE"] {
            given(crisis())
                .when(sitrep(), liaison(country))
                .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
        }
        // With no deployments known at all, only FR.
        given(crisis())
            .with_teams(TeamsView::default())
            .when(sitrep(), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "with a team deployed there");
    }

    #[test]
    fn only_a_liaison_posts_a_sitrep() {
        for who in [
            coordinator("FR"),
            coordinator("DE"),
            reviewer("GS"),
            auditor("FR"),
            auditor("GS"),
        ] {
            given(crisis())
                .when(sitrep(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison of the affected country FR");
        }
    }

    #[test]
    fn a_sitrep_has_a_text_and_reports_casualties_and_needs_when_given() {
        let with = |f: fn(&mut PostSitrep)| {
            let mut c = post_sitrep();
            f(&mut c);
            Command::PostSitrep(c)
        };
        for (cmd, contains) in [
            (with(|c| c.text = String::new()), "text must not be empty"),
            (with(|c| c.text = "\u{3000}\n".into()), "text must not be empty"),
            (
                with(|c| c.text = "x".repeat(SITREP_TEXT_CHARS_MAX + 1)),
                "text is longer than 8000 characters",
            ),
            (
                with(|c| {
                    c.casualties = Some(Casualties {
                        dead: None,
                        injured: None,
                        missing: None,
                    })
                }),
                "casualties reports at least one of dead, injured, missing",
            ),
        ] {
            given(crisis())
                .when(cmd, liaison("FR"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // Zero is a count; no needs is an answer.
        let h = given(crisis())
            .when(
                with(|c| {
                    c.casualties = Some(Casualties {
                        dead: Some(0),
                        injured: None,
                        missing: None,
                    });
                    c.needs = Some(vec![]);
                }),
                liaison("FR"),
            )
            .then([Event::SitrepPosted(SitrepPosted {
                casualties: Some(Casualties {
                    dead: Some(0),
                    injured: None,
                    missing: None,
                }),
                needs: Some(vec![]),
                ..match posted(SITREP, "FR") {
                    Event::SitrepPosted(e) => e,
                    _ => unreachable!(),
                }
            })]);
        assert_eq!(h[1].data()["needs"], json!([]));
        // Negative counts do not parse.
        let body = json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"dead": -1}});
        assert!(parse_command("post_sitrep", body).is_err());
    }

    #[test]
    fn a_sitrep_id_is_used_once() {
        let mut h = crisis();
        h.push(posted(SITREP, "DE"));
        given(h).when(sitrep(), liaison("FR")).then_rejected(
            ErrorCode::Conflict,
            "sitrep 019ab0c4-5e00-7000-8000-000000050001 already exists",
        );
    }

    #[test]
    fn a_crisis_holds_at_most_2000_sitreps() {
        let mut h = crisis();
        h.extend((0..SITREPS_MAX as u128).map(|n| posted(Uuid::from_u128(n + 1), "FR")));
        given(h.clone())
            .when(sitrep(), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "at most 2000 sitreps");
        h.pop();
        given(h).when(sitrep(), liaison("FR")).then([posted(SITREP, "FR")]);
    }

    // ------------------------------------------------------------ assistance, severity, closing

    #[test]
    fn only_the_affected_liaison_requests_assistance_changes_severity_and_closes() {
        for (cmd, what) in [
            (assistance(), "request assistance"),
            (escalate(4), "escalate the crisis"),
            (deescalate(2), "de-escalate the crisis"),
            (close(), "close the crisis"),
        ] {
            // DE has a team there: it reports, it does not steer.
            for who in [
                liaison("DE"),
                liaison("US"),
                coordinator("FR"),
                reviewer("FR"),
                auditor("FR"),
            ] {
                given(crisis()).when(cmd.clone(), who).then_rejected(
                    ErrorCode::Forbidden,
                    &format!("only a liaison of the affected country FR can {what}"),
                );
            }
        }
    }

    #[test]
    fn an_assistance_request_names_needs_and_bounded_details() {
        let with = |f: fn(&mut RequestAssistance)| {
            let mut c = request_assistance();
            f(&mut c);
            Command::RequestAssistance(c)
        };
        for (cmd, contains) in [
            (with(|c| c.needs = vec![]), "needs names at least one need"),
            (with(|c| c.details = Some(" ".into())), "details must not be empty"),
            (
                with(|c| c.details = Some("d".repeat(DETAILS_CHARS_MAX + 1))),
                "details is longer than 4000 characters",
            ),
        ] {
            given(crisis())
                .when(cmd, liaison("FR"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        let h = given(crisis())
            .when(
                with(|c| c.needs = Need::ALL.iter().rev().chain(Need::ALL.iter()).copied().collect()),
                liaison("FR"),
            )
            .then([Event::AssistanceRequested(AssistanceRequested {
                needs: Need::ALL.to_vec(),
                ..match requested() {
                    Event::AssistanceRequested(e) => e,
                    _ => unreachable!(),
                }
            })]);
        given(h).when(assistance(), liaison("FR")).then_rejected(
            ErrorCode::Conflict,
            "assistance request 019ab0c4-5e00-7000-8000-000000060001 already exists",
        );
        let unknown = json!({"crisis_id": CRISIS, "request_id": REQUEST, "needs": ["helicopters"]});
        match parse_command("request_assistance", unknown) {
            Err(r) => assert!(r.to_string().contains("unknown variant `helicopters`"), "{r}"),
            Ok(cmd) => panic!("accepted: {cmd:?}"),
        }
    }

    #[test]
    fn escalating_raises_the_severity() {
        for to in [1, 2, 3] {
            given(crisis()).when(escalate(to), liaison("FR")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("severity {to} is not higher than the current 3"),
            );
        }
        let h = given(crisis()).when(escalate(4), liaison("FR")).then([escalated(3, 4)]);
        assert_eq!(the_crisis(&h).severity, sev(4));
        let h = given(h).when(escalate(5), liaison("FR")).then([escalated(4, 5)]);
        given(h)
            .when(escalate(5), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "severity 5 is not higher than the current 5");
    }

    #[test]
    fn deescalating_lowers_the_severity() {
        for to in [3, 4, 5] {
            given(crisis()).when(deescalate(to), liaison("FR")).then_rejected(
                ErrorCode::RuleViolated,
                &format!("severity {to} is not lower than the current 3"),
            );
        }
        let h = given(crisis())
            .when(deescalate(1), liaison("FR"))
            .then([deescalated(3, 1)]);
        assert_eq!(the_crisis(&h).severity, sev(1));
        given(h)
            .when(deescalate(1), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "severity 1 is not lower than the current 1");
    }

    #[test]
    fn a_change_of_severity_has_a_reason() {
        for cmd in [Command::Escalate(change(4, "")), Command::Deescalate(change(2, "\t"))] {
            given(crisis())
                .when(cmd, liaison("FR"))
                .then_rejected(ErrorCode::Invalid, "reason must not be empty");
        }
        given(crisis())
            .when(
                Command::Escalate(change(4, &"r".repeat(REASON_CHARS_MAX + 1))),
                liaison("FR"),
            )
            .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
        // Fields come after the rule on who: a forbidden caller learns nothing more.
        given(crisis())
            .when(Command::Escalate(change(1, "")), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "can escalate the crisis");
    }

    #[test]
    fn severity_changes_are_bounded() {
        let mut h = crisis();
        for n in 0..SEVERITY_CHANGES_MAX {
            h.push(if n % 2 == 0 { escalated(3, 4) } else { deescalated(4, 3) });
        }
        given(h)
            .when(escalate(4), liaison("FR"))
            .then_rejected(ErrorCode::RuleViolated, "at most 200 times");
    }

    #[test]
    fn closing_needs_a_summary() {
        for (summary, contains) in [
            (String::new(), "summary must not be empty"),
            (
                "s".repeat(SUMMARY_CHARS_MAX + 1),
                "summary is longer than 8000 characters",
            ),
        ] {
            given(crisis())
                .when(
                    Command::CloseCrisis(CloseCrisis {
                        crisis_id: CRISIS,
                        summary,
                    }),
                    liaison("FR"),
                )
                .then_rejected(ErrorCode::Invalid, contains);
        }
        given(crisis()).when(close(), liaison("FR")).then([closed()]);
    }

    // ------------------------------------------------------------ one story, live and replayed

    #[test]
    fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
        let story: Vec<(Command, Actor)> = vec![
            (declare(), liaison("FR")),
            (sitrep(), liaison("GS")),
            (assistance(), liaison("FR")),
            (escalate(5), liaison("FR")),
            (deescalate(1), liaison("FR")),
            (close(), liaison("FR")),
        ];
        let mut live = State::default();
        let mut stored: Vec<(&'static str, Value)> = Vec::new();
        for (cmd, actor) in story {
            assert_eq!(stream_of(&cmd), format!("crisis-{CRISIS}"));
            let ctx = Ctx { actor, now: NOW.into() };
            let events = decide(&live, &cmd, &teams(), &ctx).expect("every step of the story is allowed");
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
        assert_eq!(stored.len(), EVENT_TYPES.len(), "one of each");
    }

    // ------------------------------------------------------------ parse_command and streams

    fn full_bodies() -> [Value; 6] {
        [
            json!({"crisis_id": CRISIS, "kind": "cyber_incident", "title": "t", "country": "FR", "severity": 5}),
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t",
                   "casualties": {"dead": 1, "injured": 2, "missing": 3}, "needs": ["dvi", "cyber"]}),
            json!({"crisis_id": CRISIS, "request_id": REQUEST, "needs": ["other"], "details": "d"}),
            json!({"crisis_id": CRISIS, "severity": 4, "reason": "r"}),
            json!({"crisis_id": CRISIS, "severity": 1, "reason": "r"}),
            json!({"crisis_id": CRISIS, "summary": "s"}),
        ]
    }

    #[test]
    fn parse_command_reads_every_command_and_names_its_stream() {
        for (name, data) in COMMANDS.into_iter().zip(full_bodies()) {
            let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cmd.name(), name);
            assert_eq!(cmd.crisis_id(), CRISIS);
            assert_eq!(stream_of(&cmd), format!("crisis-{CRISIS}"));
        }
        // Optional fields may be left out.
        let cmd = parse_command(
            "post_sitrep",
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "water receding in Draguignan"}),
        );
        assert_eq!(cmd, Ok(sitrep()));
        let cmd = parse_command(
            "post_sitrep",
            json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"injured": 4}}),
        )
        .expect("one count is enough");
        let Command::PostSitrep(c) = cmd else {
            panic!("a sitrep")
        };
        assert_eq!(
            c.casualties,
            Some(Casualties {
                dead: None,
                injured: Some(4),
                missing: None
            })
        );
    }

    #[test]
    fn parse_command_refuses_what_does_not_fit_precisely() {
        for (name, data, contains) in [
            (
                "reopen_crisis",
                json!({}),
                "unknown command \"reopen_crisis\": expected one of declare_crisis, post_sitrep",
            ),
            (
                "close_crisis",
                json!({"crisis_id": CRISIS, "summary": "s", "sneaky": true}),
                "invalid close_crisis command: unknown field `sneaky`",
            ),
            ("close_crisis", json!({"summary": "s"}), "missing field `crisis_id`"),
            ("close_crisis", json!(null), "data must be a JSON object, not null"),
            (
                "close_crisis",
                json!([CRISIS, "s"]),
                "data must be a JSON object, not an array",
            ),
            (
                "close_crisis",
                json!({"crisis_id": "42", "summary": "s"}),
                "invalid close_crisis command",
            ),
            (
                "declare_crisis",
                json!({"crisis_id": CRISIS, "kind": "alien_invasion", "title": "t", "country": "FR", "severity": 1}),
                "unknown variant `alien_invasion`",
            ),
            (
                "declare_crisis",
                json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "XX", "severity": 1}),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                "declare_crisis",
                json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "FR", "severity": 6}),
                "severity 6 is not 1 to 5",
            ),
            (
                "post_sitrep",
                json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"wounded": 1}}),
                "unknown field `wounded`",
            ),
            (
                "post_sitrep",
                json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "casualties": {"dead": 1.5}}),
                "invalid post_sitrep command",
            ),
            (
                "post_sitrep",
                json!({"crisis_id": CRISIS, "sitrep_id": SITREP, "text": "t", "country": "DE"}),
                "unknown field `country`",
            ),
            (
                "request_assistance",
                json!({"crisis_id": CRISIS, "request_id": REQUEST}),
                "missing field `needs`",
            ),
            (
                "escalate",
                json!({"crisis_id": CRISIS, "reason": "r"}),
                "missing field `severity`",
            ),
            (
                "deescalate",
                json!({"crisis_id": CRISIS, "severity": 0, "reason": "r"}),
                "severity 0 is not 1 to 5",
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

    #[test]
    fn the_enums_list_every_value_once() {
        let kinds: BTreeSet<&str> = CrisisKind::ALL.iter().map(CrisisKind::as_str).collect();
        assert_eq!(kinds.len(), CrisisKind::ALL.len());
        for k in CrisisKind::ALL {
            assert_eq!(serde_json::to_value(k).expect("serializes"), json!(k.as_str()));
        }
        let needs: BTreeSet<&str> = Need::ALL.iter().map(Need::as_str).collect();
        assert_eq!(needs.len(), Need::ALL.len());
        for n in Need::ALL {
            assert_eq!(serde_json::to_value(n).expect("serializes"), json!(n.as_str()));
        }
        // Need::ALL is the order needs are stored in.
        assert!(Need::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    // ------------------------------------------------------------ events as stored

    fn every_kind_of_event() -> Vec<Event> {
        vec![
            declared(),
            posted(SITREP, "FR"),
            Event::SitrepPosted(SitrepPosted {
                text: "t\n\"quoted\"".into(),
                casualties: Some(Casualties {
                    dead: Some(0),
                    injured: Some(u32::MAX),
                    missing: None,
                }),
                needs: Some(vec![Need::Dvi, Need::Other]),
                ..match posted(SITREP_2, "GS") {
                    Event::SitrepPosted(e) => e,
                    _ => unreachable!(),
                }
            }),
            requested(),
            Event::AssistanceRequested(AssistanceRequested {
                details: Some("d".into()),
                ..match requested() {
                    Event::AssistanceRequested(e) => e,
                    _ => unreachable!(),
                }
            }),
            escalated(1, 5),
            deescalated(5, 1),
            closed(),
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
            declared().data(),
            json!({
                "crisis_id": CRISIS,
                "kind": "natural_disaster",
                "title": "Floods in the Var",
                "country": "FR",
                "severity": 3,
                "declared_by": "fr-liaison",
                "declared_at": NOW,
            })
        );
        assert_eq!(
            posted(SITREP, "DE").data(),
            json!({
                "sitrep_id": SITREP,
                "text": "water receding in Draguignan",
                "casualties": null,
                "needs": null,
                "country": "DE",
                "posted_by": "de-liaison",
                "posted_at": NOW,
            })
        );
        assert_eq!(
            every_kind_of_event()[2].data()["casualties"],
            json!({"dead": 0, "injured": u32::MAX, "missing": null})
        );
        assert_eq!(
            requested().data(),
            json!({"request_id": REQUEST, "needs": ["dvi"], "details": null,
                   "requested_by": "fr-liaison", "requested_at": NOW})
        );
        assert_eq!(
            escalated(3, 4).data(),
            json!({"from": 3, "to": 4, "reason": "second dam failed", "by": "fr-liaison", "at": NOW})
        );
        assert_eq!(deescalated(4, 3).data()["to"], 3);
        assert_eq!(
            closed().data(),
            json!({"crisis_id": CRISIS, "summary": "all missing persons accounted for",
                   "closed_by": "fr-liaison", "closed_at": NOW})
        );
    }

    #[test]
    fn from_parts_refuses_unknown_types_and_malformed_data() {
        let e = Event::from_parts("crisis.reopened", &json!({}));
        assert_eq!(e, Err("unknown crisis event type \"crisis.reopened\"".into()));
        for (t, data, contains) in [
            (
                "crisis.closed",
                json!({"crisis_id": CRISIS, "summary": "s", "closed_by": "x", "closed_at": NOW, "extra": 1}),
                "unknown field `extra`",
            ),
            (
                "crisis.closed",
                json!({"crisis_id": CRISIS, "summary": "s"}),
                "missing field `closed_by`",
            ),
            ("crisis.escalated", json!(["r"]), "not a JSON object"),
            (
                "crisis.escalated",
                json!({"from": 3, "to": 9, "reason": "r", "by": "x", "at": NOW}),
                "severity 9 is not 1 to 5",
            ),
            (
                "crisis.declared",
                json!({"crisis_id": CRISIS, "kind": "other", "title": "t", "country": "XX", "severity": 1,
                       "declared_by": "x", "declared_at": NOW}),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                "sitrep.posted",
                json!({"sitrep_id": SITREP, "text": "t", "casualties": {"dead": -3}, "needs": null,
                       "country": "FR", "posted_by": "x", "posted_at": NOW}),
                "invalid value: integer `-3`",
            ),
            (
                "assistance.requested",
                json!({"request_id": REQUEST, "needs": ["tanks"], "details": null,
                       "requested_by": "x", "requested_at": NOW}),
                "unknown variant `tanks`",
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
        let with_sitrep = vec![declared(), posted(SITREP, "FR")];
        let with_request = vec![declared(), requested()];
        let other_closed = Event::CrisisClosed(CrisisClosed {
            crisis_id: OTHER_CRISIS,
            ..match closed() {
                Event::CrisisClosed(e) => e,
                _ => unreachable!(),
            }
        });
        for (history, next, contains) in [
            (vec![], posted(SITREP, "FR"), "sitrep.posted on an empty stream"),
            (vec![], closed(), "crisis.closed on an empty stream"),
            (
                crisis(),
                declared(),
                "crisis.declared on a crisis that is active at severity 3",
            ),
            (with_sitrep, posted(SITREP, "DE"), "sitrep.posted on a crisis"),
            (with_request, requested(), "assistance.requested on a crisis"),
            (
                crisis(),
                escalated(2, 4),
                "crisis.escalated on a crisis that is active at severity 3",
            ),
            (crisis(), escalated(3, 3), "crisis.escalated on a crisis"),
            (crisis(), escalated(3, 2), "crisis.escalated on a crisis"),
            (crisis(), deescalated(4, 1), "crisis.deescalated on a crisis"),
            (crisis(), deescalated(3, 4), "crisis.deescalated on a crisis"),
            (crisis(), other_closed, "crisis.closed on a crisis that is active"),
            (closed_crisis(), closed(), "crisis.closed on a crisis that is closed"),
            (
                closed_crisis(),
                posted(SITREP_2, "FR"),
                "sitrep.posted on a crisis that is closed",
            ),
            (
                closed_crisis(),
                escalated(3, 4),
                "crisis.escalated on a crisis that is closed",
            ),
        ] {
            let state = replay(&history);
            match try_evolve(state, &next) {
                Ok(s) => panic!("{} accepted: {s:?}", next.event_type()),
                Err(msg) => {
                    assert!(msg.starts_with("corrupt crisis stream: "), "{msg}");
                    assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "corrupt crisis stream: crisis.closed on an empty stream")]
    fn evolve_panics_on_a_corrupt_stream() {
        let _ = replay(&[closed()]);
    }

    // ------------------------------------------------------------ the teams view

    #[test]
    fn the_teams_view_follows_a_deployment_from_request_to_end() {
        let mut v = TeamsView::default();
        let dep = DEP_APPROVED;
        let de = cc("DE");
        assert!(!v.has_team(CRISIS, de));
        apply(
            &mut v,
            dep,
            "deployment.requested",
            requested_data(dep, Some(CRISIS), &["DE", "GS"]),
        );
        assert_eq!(v.get(dep).map(|d| d.status), Some(DeploymentStatus::Requested));
        assert!(!v.has_team(CRISIS, de), "requested is not there");
        apply(&mut v, dep, "deployment.approved", status_data("deployment.approved"));
        assert!(v.has_team(CRISIS, de));
        assert!(v.has_team(CRISIS, cc("GS")));
        assert!(!v.has_team(CRISIS, cc("FR")), "the host is no contributor");
        assert!(!v.has_team(OTHER_CRISIS, de), "another crisis");
        apply(&mut v, dep, "deployment.arrived", status_data("deployment.arrived"));
        assert!(v.has_team(CRISIS, de));
        apply(&mut v, dep, "deployment.ended", status_data("deployment.ended"));
        assert_eq!(v.get(dep).map(|d| d.status), Some(DeploymentStatus::Ended));
        assert!(!v.has_team(CRISIS, de), "ended is gone");

        // Approved then ended directly (without arriving).
        let mut v = TeamsView::default();
        deploy(&mut v, dep, Some(CRISIS), &["DE"], &["approved"]);
        assert!(v.has_team(CRISIS, de));
        apply(&mut v, dep, "deployment.ended", status_data("deployment.ended"));
        assert!(!v.has_team(CRISIS, de));

        // Two deployments from one country: one is enough.
        let mut v = teams();
        let second = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0100);
        deploy(&mut v, second, Some(CRISIS), &["ES"], &["approved"]);
        assert!(v.has_team(CRISIS, cc("ES")), "ES has a second team, approved");
        let v = teams();
        for (country, there) in [
            ("DE", true),
            ("GS", true),
            ("IT", false),
            ("ES", false),
            ("PT", false),
            ("AT", false),
            ("NL", false),
            ("BE", false),
        ] {
            assert_eq!(v.has_team(CRISIS, cc(country)), there, "{country}");
        }
        assert!(v.has_team(OTHER_CRISIS, cc("NL")));
    }

    #[test]
    fn the_teams_view_ignores_unknown_types_and_fields_and_folds_twice_the_same() {
        let mut v = teams();
        let stream = format!("deployment-{DEP_APPROVED}");
        for (t, data) in [
            ("deployment.member_added", json!({"name": "x"})),
            ("deployment.renamed", json!("anything")),
            ("operation.opened", json!([])),
        ] {
            assert_eq!(v.apply(&stream, t, &data), Ok(()), "{t}");
            assert_eq!(v.apply("not-a-stream", t, &data), Ok(()), "{t}");
        }
        assert!(v.has_team(CRISIS, cc("DE")));
        // New fields of known types are tolerated.
        let new = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_00ff);
        let mut data = requested_data(new, Some(CRISIS), &["SE"]);
        data["priority"] = json!("high");
        apply(&mut v, new, "deployment.requested", data);
        let mut approved = status_data("deployment.approved");
        approved["note"] = json!("cleared by the ministry");
        apply(&mut v, new, "deployment.approved", approved);
        assert!(v.has_team(CRISIS, cc("SE")));
        // Folding an event again changes nothing.
        apply(
            &mut v,
            new,
            "deployment.requested",
            requested_data(new, Some(OTHER_CRISIS), &["NO"]),
        );
        apply(&mut v, new, "deployment.approved", status_data("deployment.approved"));
        assert!(v.has_team(CRISIS, cc("SE")));
        assert!(!v.has_team(OTHER_CRISIS, cc("NO")));
    }

    #[test]
    fn the_teams_view_refuses_malformed_events_of_known_types() {
        let stream = format!("deployment-{DEP_APPROVED}");
        let never = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0004_0eee);
        let never_stream = format!("deployment-{never}");
        let ended_stream = format!("deployment-{DEP_ENDED}");
        let declined_stream = format!("deployment-{DEP_DECLINED}");
        let requested_stream = format!("deployment-{DEP_REQUESTED}");
        for (stream, t, data, contains) in [
            (
                stream.as_str(),
                "deployment.requested",
                json!({"deployment_id": DEP_APPROVED, "crisis_id": CRISIS}),
                "malformed deployments deployment.requested data: missing field `contributing_countries`",
            ),
            (
                stream.as_str(),
                "deployment.requested",
                requested_data(DEP_APPROVED, Some(CRISIS), &["XX"]),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                stream.as_str(),
                "deployment.requested",
                json!({"deployment_id": DEP_APPROVED, "crisis_id": "crisis-1", "contributing_countries": []}),
                "malformed deployments deployment.requested data",
            ),
            (stream.as_str(), "deployment.approved", json!([]), "not a JSON object"),
            (
                stream.as_str(),
                "deployment.arrived",
                json!({}),
                "malformed deployments deployment.arrived data: missing field `arrived_at`",
            ),
            (
                stream.as_str(),
                "deployment.recalled",
                json!({"reason": 1, "recalled_by": "x", "recalled_at": NOW}),
                "malformed deployments deployment.recalled data",
            ),
            (
                stream.as_str(),
                "deployment.stand_down_requested",
                json!({"reason": "r", "requested_at": NOW}),
                "missing field `crisis_id`",
            ),
            (
                "deployment-42",
                "deployment.approved",
                status_data("deployment.approved"),
                "not deployment-<uuid>",
            ),
            (
                never_stream.as_str(),
                "deployment.approved",
                status_data("deployment.approved"),
                "never requested",
            ),
            (
                never_stream.as_str(),
                "deployment.requested",
                requested_data(DEP_APPROVED, Some(CRISIS), &["DE"]),
                "deployments deployment.requested of",
            ),
            // Changes of status the deployments service never records.
            (
                ended_stream.as_str(),
                "deployment.approved",
                status_data("deployment.approved"),
                "deployment.approved of deployment 019ab0c4-5e00-7000-8000-000000040003 that is ended",
            ),
            (
                declined_stream.as_str(),
                "deployment.arrived",
                status_data("deployment.arrived"),
                "that is declined",
            ),
            (
                requested_stream.as_str(),
                "deployment.arrived",
                status_data("deployment.arrived"),
                "that is requested",
            ),
        ] {
            let mut v = teams();
            match v.apply(stream, t, &data) {
                Ok(()) => panic!("{t} on {stream} accepted: {data}"),
                Err(msg) => assert!(msg.contains(contains), "{msg} does not contain {contains:?}"),
            }
        }
    }

    // ------------------------------------------------------------ small parts

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
