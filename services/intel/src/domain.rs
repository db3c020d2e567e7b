//! The intel aggregates as a pure decider:
//! `decide(&State, &Command, &OperationsView, &Ctx) -> Result<Vec<Event>, Rejection>`
//! and `try_evolve(State, &Event) -> Result<State, String>`.
//!
//! Three kinds of aggregate share the intel log, each in its own stream
//! (`stream_of`): a lead (`lead-<id>`), an arrest (`arrest-<id>`) and a
//! notice (`notice-<id>`). Commands arrive with their name on the subject
//! and their whole body, id field included, as JSON `data`
//! (`parse_command`); events are stored as `type` + `data` in the kernel's
//! envelope (`Event::event_type`, `Event::data`, `Event::from_parts`).
//!
//! What intel knows of operations (the lead country, the participants,
//! whether closed) is an `OperationsView` folded from the operations
//! service's events; `decide` receives it as an argument.
//!
//! Order of the checks, so that the answer a caller gets never says more
//! than the caller may know:
//!
//! 1. no such lead or notice, or the caller may not see it → the same
//!    `not_found`; for a command that names an operation (`post_lead`,
//!    `report_arrest`, `request_notice` with `operation_id`), an unknown
//!    operation or one the caller's country does not take part in → the
//!    same `not_found` "operation not found" (existence must not leak);
//! 2. the operation is closed, the lead retracted, the notice no longer in
//!    a status that allows the command → `rule_violated`;
//! 3. the caller's role and country → `forbidden`;
//! 4. the command's own fields and rules → `invalid`, `rule_violated`, and
//!    `conflict` when the new item's id is already used.
//!
//! Auditors see everything, so for them existence is no secret: they pass
//! step 1 and are refused at step 3.
//!
//! Choices where DESIGN.md is silent:
//!
//! - A lead's `restricted_to`, when given, is stored with the owner in it,
//!   so a restriction is never empty: `restricted_to: []` or
//!   `[<own country>]` means "the owner only", while leaving it out means
//!   "every country taking part". A restricted country sees the lead only
//!   while it takes part in the operation, like an unrestricted one; the
//!   owner always sees its own lead.
//! - An arrest is seen by the countries taking part in its operation and,
//!   always, by the reporting country.
//! - A retraction is allowed after the operation closed: it warns that a
//!   lead must not be relied on, which stays true after the operation.
//!   Amendments are not (nothing changes a closed operation's record).
//! - A diffusion's `recipients` must name at least one country besides the
//!   requester (an empty list is `invalid`, the requester `rule_violated`):
//!   an empty diffusion read as "every country" would be a leak.
//! - `GS` (the secretariat) is no place and no nationality: refused as an
//!   arrest's `location_country` and as a `nationality`; it may receive a
//!   diffusion.
//!
//! Architecture invariant: no IO, no clock, no randomness. Time and the
//! actor come in `Ctx`, new ids in the command, operations in the view.

use std::collections::BTreeSet;
use std::fmt;

use concord_core::{Actor, CountryCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Longest summary of a lead, in characters: a line in a list, not a
/// document; the details hold the rest.
pub const SUMMARY_CHARS_MAX: usize = 500;
/// Longest details of a lead, in characters.
pub const DETAILS_CHARS_MAX: usize = 4000;
/// Longest reason (of an amendment, a retraction, a notice request, a
/// review or a cancellation), in characters.
pub const REASON_CHARS_MAX: usize = 4000;
/// Longest description of a subject, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 2000;
/// Longest name of a person or an object, in characters.
pub const NAME_CHARS_MAX: usize = 200;
/// Longest offence of a notice request, in characters: its legal
/// qualification, not the facts (those are the reason).
pub const OFFENCE_CHARS_MAX: usize = 500;
/// Longest warrant of a notice request, in characters: a reference to the
/// arrest warrant, not the warrant itself.
pub const WARRANT_CHARS_MAX: usize = 200;
/// Most countries a lead's `restricted_to` lists: every country of an
/// operation (its lead and at most 50 participants).
pub const RESTRICTED_TO_MAX: usize = 51;
/// Most recipients of a diffusion. Rationale: past that many a diffusion
/// is a published notice in all but name, and should be reviewed as one.
pub const RECIPIENTS_MAX: usize = 100;
/// Most amendments one lead holds over its life. Rationale: the whole state
/// is rebuilt for every command, so it must stay small; a lead rewritten
/// this often is a new lead.
pub const AMENDMENTS_MAX: usize = 1000;

/// The version of every event's `data` schema (the envelope's
/// `schema_version`).
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// What `decide` needs besides the state, the command and the operations
/// view: who asks and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: Actor,
    /// RFC 3339 UTC; becomes `posted_at`, `requested_at`, ….
    pub now: String,
}

// ---------------------------------------------------------------- values

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Person,
    Object,
}

/// Who or what a lead or a notice is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    pub kind: SubjectKind,
    pub description: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `YYYY-MM-DD`; a person's only.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// A person's only.
    #[serde(default)]
    pub nationality: Option<CountryCode>,
}

/// The person an arrest is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    #[serde(default)]
    pub nationality: Option<CountryCode>,
}

/// How reliable the source is: A (always reliable), B (mostly), C (not),
/// X (cannot be assessed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reliability {
    A,
    B,
    C,
    X,
}

/// How accurate the information is, 1 (known to be true) to 4 (cannot be
/// judged). Cannot hold anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Accuracy(u8);

impl Accuracy {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Accuracy {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, Self::Error> {
        if (1..=4).contains(&n) {
            Ok(Accuracy(n))
        } else {
            Err(format!("accuracy {n} is not 1, 2, 3 or 4"))
        }
    }
}

impl From<Accuracy> for u8 {
    fn from(a: Accuracy) -> u8 {
        a.0
    }
}

/// The grading of a lead (source reliability, information accuracy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grading {
    pub reliability: Reliability,
    pub accuracy: Accuracy,
}

/// A notice's colour (DESIGN.md). An unknown colour does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    Red,
    Yellow,
    Blue,
    Black,
    Green,
    Orange,
    Purple,
    Silver,
    UnSpecial,
}

impl Color {
    pub const ALL: [Color; 9] = [
        Color::Red,
        Color::Yellow,
        Color::Blue,
        Color::Black,
        Color::Green,
        Color::Orange,
        Color::Purple,
        Color::Silver,
        Color::UnSpecial,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Yellow => "yellow",
            Color::Blue => "blue",
            Color::Black => "black",
            Color::Green => "green",
            Color::Orange => "orange",
            Color::Purple => "purple",
            Color::Silver => "silver",
            Color::UnSpecial => "un_special",
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// What a reviewer checked: a notice must not be of a predominantly
/// political, military, religious or racial character, and its facts must
/// support its purpose. Every ground is stated, true or false, on approval
/// and on rejection alike, so an auditor reads what was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grounds {
    pub not_political: bool,
    pub not_military: bool,
    pub not_religious: bool,
    pub not_racial: bool,
    pub facts_support_purpose: bool,
}

impl Grounds {
    /// The names of the grounds that do not hold, in the order above.
    pub fn failing(&self) -> Vec<&'static str> {
        [
            ("not_political", self.not_political),
            ("not_military", self.not_military),
            ("not_religious", self.not_religious),
            ("not_racial", self.not_racial),
            ("facts_support_purpose", self.facts_support_purpose),
        ]
        .into_iter()
        .filter(|(_, holds)| !holds)
        .map(|(name, _)| name)
        .collect()
    }
}

// ---------------------------------------------------------------- commands

/// `post_lead`: a liaison posts a lead to an operation its country takes
/// part in. The caller generates `lead_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostLead {
    pub lead_id: Uuid,
    pub operation_id: Uuid,
    pub summary: String,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub subject: Option<Subject>,
    /// Countries besides the owner that may see it, each taking part in the
    /// operation. Duplicates and the owner itself are accepted (the owner is
    /// implied). Left out: every country taking part sees it.
    #[serde(default)]
    pub restricted_to: Option<Vec<CountryCode>>,
    #[serde(default)]
    pub grading: Option<Grading>,
}

/// `amend_lead`: the owner country's liaison changes a lead, with a reason.
/// The fields given replace the lead's; at least one is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendLead {
    pub lead_id: Uuid,
    pub reason: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub subject: Option<Subject>,
    #[serde(default)]
    pub grading: Option<Grading>,
}

/// `retract_lead`: the owner country's liaison withdraws a lead; it stays on
/// the record, marked retracted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetractLead {
    pub lead_id: Uuid,
    pub reason: String,
}

/// `report_arrest`: a liaison reports an arrest in an open operation its
/// country takes part in. The caller generates `arrest_id`. `lead_id` and
/// `notice_id` are references recorded as given: they live in other
/// streams, which a pure decider of this one cannot read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportArrest {
    pub arrest_id: Uuid,
    pub operation_id: Uuid,
    pub person: Person,
    pub location_country: CountryCode,
    #[serde(default)]
    pub lead_id: Option<Uuid>,
    #[serde(default)]
    pub notice_id: Option<Uuid>,
}

/// `request_notice`: a liaison asks for a notice, or with `recipients` a
/// diffusion to those countries only. Either is published only after a
/// reviewer approves it. The caller generates `notice_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestNotice {
    pub notice_id: Uuid,
    pub color: Color,
    pub subject: Subject,
    /// The facts.
    pub reason: String,
    #[serde(default)]
    pub offence: Option<String>,
    /// Reference of the arrest warrant (a red notice needs one).
    #[serde(default)]
    pub warrant: Option<String>,
    #[serde(default)]
    pub operation_id: Option<Uuid>,
    #[serde(default)]
    pub recipients: Option<Vec<CountryCode>>,
}

/// `review_notice`: a reviewer of another country than the requester's
/// approves (publishes) or rejects a requested notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewNotice {
    pub notice_id: Uuid,
    pub decision: Decision,
    pub reason: String,
    pub grounds: Grounds,
}

/// `cancel_notice`: a liaison of the requesting country or a reviewer
/// cancels a requested or published notice; it stays on the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelNotice {
    pub notice_id: Uuid,
    pub reason: String,
}

// A command lives for one request; boxing its variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    PostLead(PostLead),
    AmendLead(AmendLead),
    RetractLead(RetractLead),
    ReportArrest(ReportArrest),
    RequestNotice(RequestNotice),
    ReviewNotice(ReviewNotice),
    CancelNotice(CancelNotice),
}

/// Every command name, i.e. the last token of `concord.cmd.intel.<name>`.
pub const COMMANDS: [&str; 7] = [
    "post_lead",
    "amend_lead",
    "retract_lead",
    "report_arrest",
    "request_notice",
    "review_notice",
    "cancel_notice",
];

impl Command {
    /// The command's name, one of `COMMANDS`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::PostLead(_) => "post_lead",
            Command::AmendLead(_) => "amend_lead",
            Command::RetractLead(_) => "retract_lead",
            Command::ReportArrest(_) => "report_arrest",
            Command::RequestNotice(_) => "request_notice",
            Command::ReviewNotice(_) => "review_notice",
            Command::CancelNotice(_) => "cancel_notice",
        }
    }
}

/// The stream a command addresses: "lead-<lead_id>", "arrest-<arrest_id>",
/// "notice-<notice_id>".
pub fn stream_of(cmd: &Command) -> String {
    match cmd {
        Command::PostLead(c) => format!("lead-{}", c.lead_id),
        Command::AmendLead(c) => format!("lead-{}", c.lead_id),
        Command::RetractLead(c) => format!("lead-{}", c.lead_id),
        Command::ReportArrest(c) => format!("arrest-{}", c.arrest_id),
        Command::RequestNotice(c) => format!("notice-{}", c.notice_id),
        Command::ReviewNotice(c) => format!("notice-{}", c.notice_id),
        Command::CancelNotice(c) => format!("notice-{}", c.notice_id),
    }
}

/// Builds a command from its name (the subject's last token) and its whole
/// body, id field included. An unknown name or a body that does not fit
/// (unknown or missing field, wrong type, a country code that names nobody,
/// an unknown colour) is `Rejection::Invalid`.
pub fn parse_command(name: &str, data: Value) -> Result<Command, Rejection> {
    use concord_core::decider::command_body as body;
    match name {
        "post_lead" => body(name, data).map(Command::PostLead),
        "amend_lead" => body(name, data).map(Command::AmendLead),
        "retract_lead" => body(name, data).map(Command::RetractLead),
        "report_arrest" => body(name, data).map(Command::ReportArrest),
        "request_notice" => body(name, data).map(Command::RequestNotice),
        "review_notice" => body(name, data).map(Command::ReviewNotice),
        "cancel_notice" => body(name, data).map(Command::CancelNotice),
        _ => Err(Rejection::Invalid(format!(
            "unknown command {name:?}: expected one of {}",
            COMMANDS.join(", ")
        ))),
    }
}

// ---------------------------------------------------------------- events

/// `lead.posted`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadPosted {
    pub lead_id: Uuid,
    pub operation_id: Uuid,
    pub owner_country: CountryCode,
    pub summary: String,
    /// Always present in the stored data, `null` when none was given; so
    /// are `subject` and `grading`.
    pub details: Option<String>,
    pub subject: Option<Subject>,
    /// Sorted, without duplicates, the owner included; empty when the lead
    /// is not restricted (every country taking part sees it).
    pub restricted_to: Vec<CountryCode>,
    pub grading: Option<Grading>,
    /// The poster's `sub`.
    pub posted_by: String,
    pub posted_at: String,
}

/// `lead.amended`: only the changed fields are present in the stored data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadAmended {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grading: Option<Grading>,
    pub amended_at: String,
}

/// `lead.retracted`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadRetracted {
    pub reason: String,
    pub retracted_at: String,
}

/// `arrest.reported`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrestReported {
    pub arrest_id: Uuid,
    pub operation_id: Uuid,
    pub person: Person,
    pub location_country: CountryCode,
    /// Always present in the stored data, `null` when not given.
    pub lead_id: Option<Uuid>,
    pub notice_id: Option<Uuid>,
    pub reporting_country: CountryCode,
    pub reported_by: String,
    pub reported_at: String,
}

/// `notice.requested`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRequested {
    pub notice_id: Uuid,
    pub color: Color,
    pub subject: Subject,
    pub reason: String,
    /// Always present in the stored data, `null` when not given.
    pub offence: Option<String>,
    pub warrant: Option<String>,
    pub operation_id: Option<Uuid>,
    /// Sorted, without duplicates; `null` when the notice is not a
    /// diffusion (once published, every country sees it).
    pub recipients: Option<Vec<CountryCode>>,
    pub requesting_country: CountryCode,
    pub requested_by: String,
    pub requested_at: String,
}

/// `notice.published`: a reviewer approved the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticePublished {
    pub reviewed_by: String,
    pub reviewer_country: CountryCode,
    pub reason: String,
    pub grounds: Grounds,
    pub published_at: String,
}

/// `notice.rejected`: a reviewer refused the request; it stays private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeRejected {
    pub reviewed_by: String,
    pub reviewer_country: CountryCode,
    pub reason: String,
    pub grounds: Grounds,
    pub rejected_at: String,
}

/// `notice.cancelled`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeCancelled {
    pub reason: String,
    pub cancelled_by: String,
    pub cancelled_at: String,
}

// Events are decoded one at a time; boxing their variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LeadPosted(LeadPosted),
    LeadAmended(LeadAmended),
    LeadRetracted(LeadRetracted),
    ArrestReported(ArrestReported),
    NoticeRequested(NoticeRequested),
    NoticePublished(NoticePublished),
    NoticeRejected(NoticeRejected),
    NoticeCancelled(NoticeCancelled),
}

/// Every event type the intel log records (the envelope's `type`).
pub const EVENT_TYPES: [&str; 8] = [
    "lead.posted",
    "lead.amended",
    "lead.retracted",
    "arrest.reported",
    "notice.requested",
    "notice.published",
    "notice.rejected",
    "notice.cancelled",
];

impl Event {
    /// The envelope's `type`, one of `EVENT_TYPES`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::LeadPosted(_) => "lead.posted",
            Event::LeadAmended(_) => "lead.amended",
            Event::LeadRetracted(_) => "lead.retracted",
            Event::ArrestReported(_) => "arrest.reported",
            Event::NoticeRequested(_) => "notice.requested",
            Event::NoticePublished(_) => "notice.published",
            Event::NoticeRejected(_) => "notice.rejected",
            Event::NoticeCancelled(_) => "notice.cancelled",
        }
    }

    /// The envelope's `data`: a JSON object of strings, booleans, `null`s
    /// and the one small integer of a grading's accuracy (no floats).
    pub fn data(&self) -> Value {
        let data = match self {
            Event::LeadPosted(e) => serde_json::to_value(e),
            Event::LeadAmended(e) => serde_json::to_value(e),
            Event::LeadRetracted(e) => serde_json::to_value(e),
            Event::ArrestReported(e) => serde_json::to_value(e),
            Event::NoticeRequested(e) => serde_json::to_value(e),
            Event::NoticePublished(e) => serde_json::to_value(e),
            Event::NoticeRejected(e) => serde_json::to_value(e),
            Event::NoticeCancelled(e) => serde_json::to_value(e),
        };
        // Structs of strings, uuids, country codes, booleans, a u8 and unit
        // enums: the only ways `to_value` fails (non-string map keys, a
        // failing custom `Serialize`) cannot occur.
        data.expect("event data of plain fields always serializes")
    }

    /// Rebuilds an event from a stored envelope's `type` and `data`.
    pub fn from_parts(event_type: &str, data: &Value) -> Result<Event, String> {
        use concord_core::decider::event_body as body;
        match event_type {
            "lead.posted" => body(event_type, data).map(Event::LeadPosted),
            "lead.amended" => body(event_type, data).map(Event::LeadAmended),
            "lead.retracted" => body(event_type, data).map(Event::LeadRetracted),
            "arrest.reported" => body(event_type, data).map(Event::ArrestReported),
            "notice.requested" => body(event_type, data).map(Event::NoticeRequested),
            "notice.published" => body(event_type, data).map(Event::NoticePublished),
            "notice.rejected" => body(event_type, data).map(Event::NoticeRejected),
            "notice.cancelled" => body(event_type, data).map(Event::NoticeCancelled),
            _ => Err(format!("unknown intel event type {event_type:?}")),
        }
    }
}

// ---------------------------------------------------------------- the operations view

/// What intel knows of operations: the operations crate owns the meaning
/// of its events, and with it this fold (deployments uses it too).
pub use concord_contracts::operations::membership::{OperationInfo, OperationsView};

// ---------------------------------------------------------------- state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    Active,
    Retracted,
}

impl LeadStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            LeadStatus::Active => "active",
            LeadStatus::Retracted => "retracted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub id: Uuid,
    pub operation_id: Uuid,
    pub owner_country: CountryCode,
    pub summary: String,
    pub details: Option<String>,
    pub subject: Option<Subject>,
    /// Empty: not restricted. Otherwise the owner and the listed countries.
    pub restricted_to: BTreeSet<CountryCode>,
    pub grading: Option<Grading>,
    pub posted_by: String,
    pub posted_at: String,
    pub status: LeadStatus,
    /// Every amendment, oldest first, as recorded.
    pub amendments: Vec<LeadAmended>,
    pub retraction: Option<LeadRetracted>,
}

impl Lead {
    /// The owner; with a restriction, the restricted countries still taking
    /// part; without one, every country taking part. (Auditors: see
    /// `State::visible_to`.)
    pub fn visible_to(&self, country: CountryCode, ops: &OperationsView) -> bool {
        country == self.owner_country
            || (ops.takes_part(self.operation_id, country)
                && (self.restricted_to.is_empty() || self.restricted_to.contains(&country)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrest {
    pub id: Uuid,
    pub operation_id: Uuid,
    pub person: Person,
    pub location_country: CountryCode,
    pub lead_id: Option<Uuid>,
    pub notice_id: Option<Uuid>,
    pub reporting_country: CountryCode,
    pub reported_by: String,
    pub reported_at: String,
}

impl Arrest {
    /// The reporting country and the countries taking part in the operation.
    pub fn visible_to(&self, country: CountryCode, ops: &OperationsView) -> bool {
        country == self.reporting_country || ops.takes_part(self.operation_id, country)
    }
}

/// Where a notice stands:
///
/// | from        | to                                  |
/// |-------------|-------------------------------------|
/// | `requested` | `published`, `rejected`, `cancelled` |
/// | `published` | `cancelled`                          |
/// | `rejected`  | — (final)                            |
/// | `cancelled` | — (final)                            |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    Requested,
    Published,
    Rejected,
    Cancelled,
}

impl NoticeStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            NoticeStatus::Requested => "requested",
            NoticeStatus::Published => "published",
            NoticeStatus::Rejected => "rejected",
            NoticeStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for NoticeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reviewer's decision on a notice, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    pub decision: Decision,
    pub reviewed_by: String,
    pub reviewer_country: CountryCode,
    pub reason: String,
    pub grounds: Grounds,
    /// `published_at` or `rejected_at`.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: Uuid,
    pub color: Color,
    pub subject: Subject,
    pub reason: String,
    pub offence: Option<String>,
    pub warrant: Option<String>,
    pub operation_id: Option<Uuid>,
    /// `None`: not a diffusion.
    pub recipients: Option<BTreeSet<CountryCode>>,
    pub requesting_country: CountryCode,
    pub requested_by: String,
    pub requested_at: String,
    pub status: NoticeStatus,
    pub review: Option<Review>,
    pub cancellation: Option<NoticeCancelled>,
}

impl Notice {
    /// Approved at some point (it may have been cancelled since).
    pub fn was_published(&self) -> bool {
        self.review.as_ref().is_some_and(|r| r.decision == Decision::Approve)
    }

    /// The requesting country and every reviewer, always; once published
    /// (and after a cancellation of a published notice), every country, or
    /// for a diffusion its recipients. A rejection stays private.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        if actor.country == self.requesting_country || actor.role == Role::Reviewer {
            return true;
        }
        self.was_published()
            && match &self.recipients {
                None => true,
                Some(recipients) => recipients.contains(&actor.country),
            }
    }
}

/// The state of one stream: `Empty` (the default) until its first event.
// One state per command, rebuilt and dropped; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub enum State {
    #[default]
    Empty,
    Lead(Lead),
    Arrest(Arrest),
    Notice(Notice),
}

impl State {
    /// Whether `actor` may see this lead, arrest or notice (DESIGN.md,
    /// Visibility). Auditors see everything there is; `Empty` is visible to
    /// nobody, so an unknown id and a hidden one get the same answer.
    pub fn visible_to(&self, actor: &Actor, ops: &OperationsView) -> bool {
        match self {
            State::Empty => false,
            _ if actor.role == Role::Auditor => true,
            State::Lead(lead) => lead.visible_to(actor.country, ops),
            State::Arrest(arrest) => arrest.visible_to(actor.country, ops),
            State::Notice(notice) => notice.visible_to(actor),
        }
    }

    /// What the `get` query answers (`null` for `Empty`). The stream version
    /// is not part of it: the caller adds it.
    pub fn view(&self) -> Value {
        match self {
            State::Empty => Value::Null,
            State::Lead(l) => json!({
                "kind": "lead",
                "id": l.id,
                "status": l.status,
                "operation_id": l.operation_id,
                "owner_country": l.owner_country,
                "summary": l.summary,
                "details": l.details,
                "subject": l.subject,
                "restricted_to": l.restricted_to,
                "grading": l.grading,
                "posted_by": l.posted_by,
                "posted_at": l.posted_at,
                "amendments": l.amendments,
                "retraction": l.retraction,
            }),
            State::Arrest(a) => json!({
                "kind": "arrest",
                "id": a.id,
                "status": "reported",
                "operation_id": a.operation_id,
                "person": a.person,
                "location_country": a.location_country,
                "lead_id": a.lead_id,
                "notice_id": a.notice_id,
                "reporting_country": a.reporting_country,
                "reported_by": a.reported_by,
                "reported_at": a.reported_at,
            }),
            State::Notice(n) => json!({
                "kind": "notice",
                "id": n.id,
                "status": n.status,
                "color": n.color,
                "subject": n.subject,
                "reason": n.reason,
                "offence": n.offence,
                "warrant": n.warrant,
                "operation_id": n.operation_id,
                "diffusion": n.recipients.is_some(),
                "recipients": n.recipients,
                "requesting_country": n.requesting_country,
                "requested_by": n.requested_by,
                "requested_at": n.requested_at,
                "review": n.review,
                "cancellation": n.cancellation,
            }),
        }
    }

    /// What the state is, for messages about a corrupt stream.
    fn describe(&self) -> String {
        match self {
            State::Empty => "an empty stream".into(),
            State::Lead(l) => format!("a lead that is {}", l.status.as_str()),
            State::Arrest(_) => "an arrest already reported".into(),
            State::Notice(n) => format!("a notice that is {}", n.status),
        }
    }
}

// ---------------------------------------------------------------- rejections

/// A refused command (shared by every decider).
pub use concord_core::decider::Rejection;

// ---------------------------------------------------------------- decide

/// The events `cmd` produces on `state`, or why it is refused (then nothing
/// is recorded). Deterministic: everything it needs is in its arguments.
pub fn decide(state: &State, cmd: &Command, ops: &OperationsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    match cmd {
        Command::PostLead(c) => decide_post_lead(state, c, ops, ctx),
        Command::AmendLead(c) => decide_amend_lead(state, c, ops, ctx),
        Command::RetractLead(c) => decide_retract_lead(state, c, ops, ctx),
        Command::ReportArrest(c) => decide_report_arrest(state, c, ops, ctx),
        Command::RequestNotice(c) => decide_request_notice(state, c, ops, ctx),
        Command::ReviewNotice(c) => decide_review_notice(state, c, ctx),
        Command::CancelNotice(c) => decide_cancel_notice(state, c, ctx),
    }
}

fn decide_post_lead(state: &State, cmd: &PostLead, ops: &OperationsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let op = open_operation_seen_by(ops, cmd.operation_id, actor)?;
    liaison_only(actor, "post a lead")?;
    required_text("summary", &cmd.summary, SUMMARY_CHARS_MAX)?;
    if let Some(details) = &cmd.details {
        bounded_text("details", details, DETAILS_CHARS_MAX)?;
    }
    if let Some(subject) = &cmd.subject {
        check_subject(subject, &ctx.now)?;
    }
    let restricted_to = match &cmd.restricted_to {
        None => BTreeSet::new(),
        Some(list) => {
            if list.len() > RESTRICTED_TO_MAX {
                return Err(Rejection::Invalid(format!(
                    "restricted_to lists at most {RESTRICTED_TO_MAX} countries, {} given",
                    list.len()
                )));
            }
            if let Some(outsider) = list.iter().find(|c| !op.takes_part(**c)) {
                return Err(Rejection::RuleViolated(format!(
                    "{outsider} does not take part in operation {}",
                    cmd.operation_id
                )));
            }
            // The owner is implied, and kept so that a restriction to the
            // owner alone is not read as no restriction at all.
            list.iter().copied().chain([actor.country]).collect()
        }
    };
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!("lead {} already exists", cmd.lead_id)));
    }
    Ok(vec![Event::LeadPosted(LeadPosted {
        lead_id: cmd.lead_id,
        operation_id: cmd.operation_id,
        owner_country: actor.country,
        summary: cmd.summary.clone(),
        details: cmd.details.clone(),
        subject: cmd.subject.clone(),
        restricted_to: restricted_to.into_iter().collect(),
        grading: cmd.grading,
        posted_by: actor.sub.clone(),
        posted_at: ctx.now.clone(),
    })])
}

fn decide_amend_lead(state: &State, cmd: &AmendLead, ops: &OperationsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let lead = lead_seen_by(state, actor, ops)?;
    if lead.status == LeadStatus::Retracted {
        return Err(Rejection::RuleViolated("lead is retracted".into()));
    }
    operation_not_closed(ops, lead.operation_id)?;
    owner_liaison_only(lead, actor, "amend the lead")?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    if cmd.summary.is_none() && cmd.details.is_none() && cmd.subject.is_none() && cmd.grading.is_none() {
        return Err(Rejection::Invalid(
            "an amendment changes at least one of summary, details, subject, grading".into(),
        ));
    }
    if let Some(summary) = &cmd.summary {
        required_text("summary", summary, SUMMARY_CHARS_MAX)?;
    }
    if let Some(details) = &cmd.details {
        bounded_text("details", details, DETAILS_CHARS_MAX)?;
    }
    if let Some(subject) = &cmd.subject {
        check_subject(subject, &ctx.now)?;
    }
    if lead.amendments.len() >= AMENDMENTS_MAX {
        return Err(Rejection::RuleViolated(format!(
            "a lead is amended at most {AMENDMENTS_MAX} times; post a new one"
        )));
    }
    Ok(vec![Event::LeadAmended(LeadAmended {
        reason: cmd.reason.clone(),
        summary: cmd.summary.clone(),
        details: cmd.details.clone(),
        subject: cmd.subject.clone(),
        grading: cmd.grading,
        amended_at: ctx.now.clone(),
    })])
}

fn decide_retract_lead(
    state: &State,
    cmd: &RetractLead,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let lead = lead_seen_by(state, actor, ops)?;
    if lead.status == LeadStatus::Retracted {
        return Err(Rejection::RuleViolated("lead is already retracted".into()));
    }
    // No check that the operation is open: see the module's choices.
    owner_liaison_only(lead, actor, "retract the lead")?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::LeadRetracted(LeadRetracted {
        reason: cmd.reason.clone(),
        retracted_at: ctx.now.clone(),
    })])
}

fn decide_report_arrest(
    state: &State,
    cmd: &ReportArrest,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    open_operation_seen_by(ops, cmd.operation_id, actor)?;
    liaison_only(actor, "report an arrest")?;
    required_text("person.name", &cmd.person.name, NAME_CHARS_MAX)?;
    if let Some(dob) = &cmd.person.date_of_birth {
        check_date_of_birth("person.date_of_birth", dob, &ctx.now)?;
    }
    if let Some(nationality) = cmd.person.nationality {
        not_the_secretariat("person.nationality", nationality)?;
    }
    not_the_secretariat("location_country", cmd.location_country)?;
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!("arrest {} already exists", cmd.arrest_id)));
    }
    Ok(vec![Event::ArrestReported(ArrestReported {
        arrest_id: cmd.arrest_id,
        operation_id: cmd.operation_id,
        person: cmd.person.clone(),
        location_country: cmd.location_country,
        lead_id: cmd.lead_id,
        notice_id: cmd.notice_id,
        reporting_country: actor.country,
        reported_by: actor.sub.clone(),
        reported_at: ctx.now.clone(),
    })])
}

fn decide_request_notice(
    state: &State,
    cmd: &RequestNotice,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    if let Some(operation_id) = cmd.operation_id {
        open_operation_seen_by(ops, operation_id, actor)?;
    }
    liaison_only(actor, "request a notice")?;
    check_subject(&cmd.subject, &ctx.now)?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    if let Some(offence) = &cmd.offence {
        required_text("offence", offence, OFFENCE_CHARS_MAX)?;
    }
    if let Some(warrant) = &cmd.warrant {
        required_text("warrant", warrant, WARRANT_CHARS_MAX)?;
    }
    if cmd.color == Color::Red {
        let missing: Vec<&str> = [
            (cmd.offence.is_none(), "an offence"),
            (cmd.warrant.is_none(), "a warrant"),
        ]
        .into_iter()
        .filter(|(absent, _)| *absent)
        .map(|(_, what)| what)
        .collect();
        if !missing.is_empty() {
            return Err(Rejection::RuleViolated(format!(
                "a red notice needs {}",
                missing.join(" and ")
            )));
        }
    }
    let recipients = match &cmd.recipients {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(Rejection::Invalid(
                "recipients must name at least one country; leave it out for a notice to every country".into(),
            ));
        }
        Some(list) if list.len() > RECIPIENTS_MAX => {
            return Err(Rejection::Invalid(format!(
                "a diffusion has at most {RECIPIENTS_MAX} recipients, {} given",
                list.len()
            )));
        }
        Some(list) if list.contains(&actor.country) => {
            return Err(Rejection::RuleViolated(format!(
                "{} requests the notice and cannot be one of its recipients",
                actor.country
            )));
        }
        Some(list) => Some(list.iter().copied().collect::<BTreeSet<_>>()),
    };
    if *state != State::Empty {
        return Err(Rejection::Conflict(format!("notice {} already exists", cmd.notice_id)));
    }
    Ok(vec![Event::NoticeRequested(NoticeRequested {
        notice_id: cmd.notice_id,
        color: cmd.color,
        subject: cmd.subject.clone(),
        reason: cmd.reason.clone(),
        offence: cmd.offence.clone(),
        warrant: cmd.warrant.clone(),
        operation_id: cmd.operation_id,
        recipients: recipients.map(|r| r.into_iter().collect()),
        requesting_country: actor.country,
        requested_by: actor.sub.clone(),
        requested_at: ctx.now.clone(),
    })])
}

fn decide_review_notice(state: &State, cmd: &ReviewNotice, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let notice = notice_seen_by(state, actor)?;
    if notice.status != NoticeStatus::Requested {
        return Err(Rejection::RuleViolated(format!(
            "notice is already {}; it is reviewed once",
            notice.status
        )));
    }
    if actor.role != Role::Reviewer {
        return Err(Rejection::Forbidden("only a reviewer can review a notice".into()));
    }
    if actor.country == notice.requesting_country {
        return Err(Rejection::Forbidden(format!(
            "a reviewer of {} cannot review a notice {} requested",
            actor.country, notice.requesting_country
        )));
    }
    bounded_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    let reviewed_by = actor.sub.clone();
    let reviewer_country = actor.country;
    match cmd.decision {
        Decision::Approve => {
            let failing = cmd.grounds.failing();
            if !failing.is_empty() {
                return Err(Rejection::RuleViolated(format!(
                    "a notice is approved only when every ground holds; failing: {}",
                    failing.join(", ")
                )));
            }
            Ok(vec![Event::NoticePublished(NoticePublished {
                reviewed_by,
                reviewer_country,
                reason: cmd.reason.clone(),
                grounds: cmd.grounds,
                published_at: ctx.now.clone(),
            })])
        }
        Decision::Reject => {
            required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
            Ok(vec![Event::NoticeRejected(NoticeRejected {
                reviewed_by,
                reviewer_country,
                reason: cmd.reason.clone(),
                grounds: cmd.grounds,
                rejected_at: ctx.now.clone(),
            })])
        }
    }
}

fn decide_cancel_notice(state: &State, cmd: &CancelNotice, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let notice = notice_seen_by(state, actor)?;
    match notice.status {
        NoticeStatus::Requested | NoticeStatus::Published => {}
        NoticeStatus::Rejected => {
            return Err(Rejection::RuleViolated("a rejected notice cannot be cancelled".into()));
        }
        NoticeStatus::Cancelled => {
            return Err(Rejection::RuleViolated("notice is already cancelled".into()));
        }
    }
    let requester = actor.role == Role::Liaison && actor.country == notice.requesting_country;
    if !(requester || actor.role == Role::Reviewer) {
        return Err(Rejection::Forbidden(format!(
            "only a liaison of the requesting country {} or a reviewer can cancel the notice",
            notice.requesting_country
        )));
    }
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::NoticeCancelled(NoticeCancelled {
        reason: cmd.reason.clone(),
        cancelled_by: actor.sub.clone(),
        cancelled_at: ctx.now.clone(),
    })])
}

/// Steps 1 and 2 for a command that names an operation: it is known, the
/// actor's country takes part (or the actor audits), and it is open.
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

/// Step 2 for a lead: its operation is still open. An operation intel does
/// not know cannot be checked, so it is refused too (the service brings the
/// view up to date before deciding, so this does not happen).
fn operation_not_closed(ops: &OperationsView, id: Uuid) -> Result<(), Rejection> {
    match ops.get(id) {
        Some(op) if !op.closed => Ok(()),
        Some(_) => Err(Rejection::RuleViolated("operation is closed".into())),
        None => Err(Rejection::RuleViolated(format!("operation {id} is unknown to intel"))),
    }
}

/// Step 1 for a lead command.
fn lead_seen_by<'a>(state: &'a State, actor: &Actor, ops: &OperationsView) -> Result<&'a Lead, Rejection> {
    match state {
        State::Lead(lead) if state.visible_to(actor, ops) => Ok(lead),
        _ => Err(Rejection::NotFound("lead not found".into())),
    }
}

/// Step 1 for a notice command.
fn notice_seen_by<'a>(state: &'a State, actor: &Actor) -> Result<&'a Notice, Rejection> {
    match state {
        State::Notice(notice) if actor.role == Role::Auditor || notice.visible_to(actor) => Ok(notice),
        _ => Err(Rejection::NotFound("notice not found".into())),
    }
}

fn liaison_only(actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!("only a liaison can {what}")))
    }
}

fn owner_liaison_only(lead: &Lead, actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison && actor.country == lead.owner_country {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!(
            "only a liaison of the owner country {} can {what}",
            lead.owner_country
        )))
    }
}

fn check_subject(subject: &Subject, now: &str) -> Result<(), Rejection> {
    required_text("subject.description", &subject.description, DESCRIPTION_CHARS_MAX)?;
    if let Some(name) = &subject.name {
        required_text("subject.name", name, NAME_CHARS_MAX)?;
    }
    if subject.kind == SubjectKind::Object {
        for (field, given) in [
            ("date_of_birth", subject.date_of_birth.is_some()),
            ("nationality", subject.nationality.is_some()),
        ] {
            if given {
                return Err(Rejection::Invalid(format!(
                    "subject.{field} is for a person, not an object"
                )));
            }
        }
    }
    if let Some(dob) = &subject.date_of_birth {
        check_date_of_birth("subject.date_of_birth", dob, now)?;
    }
    if let Some(nationality) = subject.nationality {
        not_the_secretariat("subject.nationality", nationality)?;
    }
    Ok(())
}

/// A real calendar date, not after today (`now`'s date).
fn check_date_of_birth(field: &str, dob: &str, now: &str) -> Result<(), Rejection> {
    if !is_full_date(dob) {
        return Err(Rejection::Invalid(format!("{field} {dob:?} is not a YYYY-MM-DD date")));
    }
    // Both are YYYY-MM-DD with four-digit years: they compare as strings.
    if now.get(..10).is_some_and(|today| dob > today) {
        return Err(Rejection::Invalid(format!("{field} {dob} is in the future")));
    }
    Ok(())
}

fn not_the_secretariat(field: &str, country: CountryCode) -> Result<(), Rejection> {
    if country.is_secretariat() {
        return Err(Rejection::Invalid(format!(
            "{field} GS is the secretariat, not a country"
        )));
    }
    Ok(())
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

/// `YYYY-MM-DD` with a real calendar date (RFC 3339 `full-date`).
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |from: usize, len: usize| -> Option<u32> {
        b[from..from + len]
            .iter()
            .try_fold(0, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let (Some(year), Some(month), Some(day)) = (num(0, 4), num(5, 2), num(8, 2)) else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

// ---------------------------------------------------------------- evolve

/// The state after `event`, or why `event` cannot follow `state`.
///
/// It cannot when the stream would make no sense: a first event that does
/// not create a lead, an arrest or a notice; a creation on a stream that
/// already holds one; an event of another kind of aggregate; an amendment
/// or a retraction of a retracted lead; a review of a notice that is not
/// `requested`, a cancellation of one that is neither `requested` nor
/// `published`. The log only ever holds what `decide` produced, under a
/// hash chain, so such a sequence means a corrupt log, and carrying on from
/// a silently skipped event would answer with a wrong state.
pub fn try_evolve(state: State, event: &Event) -> Result<State, String> {
    let corrupt = |state: &State| format!("corrupt intel stream: {} on {}", event.event_type(), state.describe());
    match (state, event) {
        (State::Empty, Event::LeadPosted(e)) => Ok(State::Lead(Lead {
            id: e.lead_id,
            operation_id: e.operation_id,
            owner_country: e.owner_country,
            summary: e.summary.clone(),
            details: e.details.clone(),
            subject: e.subject.clone(),
            restricted_to: e.restricted_to.iter().copied().collect(),
            grading: e.grading,
            posted_by: e.posted_by.clone(),
            posted_at: e.posted_at.clone(),
            status: LeadStatus::Active,
            amendments: Vec::new(),
            retraction: None,
        })),
        (State::Empty, Event::ArrestReported(e)) => Ok(State::Arrest(Arrest {
            id: e.arrest_id,
            operation_id: e.operation_id,
            person: e.person.clone(),
            location_country: e.location_country,
            lead_id: e.lead_id,
            notice_id: e.notice_id,
            reporting_country: e.reporting_country,
            reported_by: e.reported_by.clone(),
            reported_at: e.reported_at.clone(),
        })),
        (State::Empty, Event::NoticeRequested(e)) => Ok(State::Notice(Notice {
            id: e.notice_id,
            color: e.color,
            subject: e.subject.clone(),
            reason: e.reason.clone(),
            offence: e.offence.clone(),
            warrant: e.warrant.clone(),
            operation_id: e.operation_id,
            recipients: e.recipients.as_ref().map(|r| r.iter().copied().collect()),
            requesting_country: e.requesting_country,
            requested_by: e.requested_by.clone(),
            requested_at: e.requested_at.clone(),
            status: NoticeStatus::Requested,
            review: None,
            cancellation: None,
        })),
        (State::Lead(mut lead), Event::LeadAmended(e)) if lead.status == LeadStatus::Active => {
            if let Some(summary) = &e.summary {
                lead.summary = summary.clone();
            }
            if let Some(details) = &e.details {
                lead.details = Some(details.clone());
            }
            if let Some(subject) = &e.subject {
                lead.subject = Some(subject.clone());
            }
            if let Some(grading) = e.grading {
                lead.grading = Some(grading);
            }
            lead.amendments.push(e.clone());
            Ok(State::Lead(lead))
        }
        (State::Lead(mut lead), Event::LeadRetracted(e)) if lead.status == LeadStatus::Active => {
            lead.status = LeadStatus::Retracted;
            lead.retraction = Some(e.clone());
            Ok(State::Lead(lead))
        }
        (State::Notice(mut notice), Event::NoticePublished(e)) if notice.status == NoticeStatus::Requested => {
            notice.status = NoticeStatus::Published;
            notice.review = Some(Review {
                decision: Decision::Approve,
                reviewed_by: e.reviewed_by.clone(),
                reviewer_country: e.reviewer_country,
                reason: e.reason.clone(),
                grounds: e.grounds,
                at: e.published_at.clone(),
            });
            Ok(State::Notice(notice))
        }
        (State::Notice(mut notice), Event::NoticeRejected(e)) if notice.status == NoticeStatus::Requested => {
            notice.status = NoticeStatus::Rejected;
            notice.review = Some(Review {
                decision: Decision::Reject,
                reviewed_by: e.reviewed_by.clone(),
                reviewer_country: e.reviewer_country,
                reason: e.reason.clone(),
                grounds: e.grounds,
                at: e.rejected_at.clone(),
            });
            Ok(State::Notice(notice))
        }
        (State::Notice(mut notice), Event::NoticeCancelled(e))
            if matches!(notice.status, NoticeStatus::Requested | NoticeStatus::Published) =>
        {
            notice.status = NoticeStatus::Cancelled;
            notice.cancellation = Some(e.clone());
            Ok(State::Notice(notice))
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

    /// FR leads; DE, ES and MC take part.
    const OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00aa);
    /// FR leads, DE takes part; closed.
    const CLOSED_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00bb);
    /// Known to nobody.
    const UNKNOWN_OP: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0000_00cc);
    const LEAD: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0001_0001);
    const ARREST: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0002_0001);
    const NOTICE: Uuid = Uuid::from_u128(0x019a_b0c4_5e00_7000_8000_0000_0003_0001);
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

    // The operations view, built the way the service builds it.
    fn apply(view: &mut OperationsView, op: Uuid, event_type: &str, data: Value) {
        view.apply_stored(&format!("operation-{op}"), event_type, &data)
            .unwrap_or_else(|e| panic!("{event_type}: {e}"));
    }
    fn opened_data(op: Uuid, lead: &str, participants: &[&str]) -> Value {
        json!({
            "operation_id": op,
            "title": "Opération Rocher",
            "objective": "identify and arrest the burglar",
            "lead_country": lead,
            "participants": participants,
            "opened_at": NOW,
        })
    }
    fn ops() -> OperationsView {
        let mut v = OperationsView::default();
        apply(
            &mut v,
            OP,
            "operation.opened",
            opened_data(OP, "FR", &["DE", "ES", "MC"]),
        );
        apply(
            &mut v,
            CLOSED_OP,
            "operation.opened",
            opened_data(CLOSED_OP, "FR", &["DE"]),
        );
        apply(
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
        apply(&mut v, OP, event_type, data);
        v
    }
    fn ops_without(country: &str) -> OperationsView {
        ops_and("participant.removed", json!({"country": country}))
    }
    fn ops_closed() -> OperationsView {
        ops_and("operation.closed", json!({"outcome": "done", "closed_at": LATER}))
    }

    // Commands.
    fn post_lead() -> PostLead {
        PostLead {
            lead_id: LEAD,
            operation_id: OP,
            summary: "fingerprints at the jeweller's".into(),
            details: None,
            subject: None,
            restricted_to: None,
            grading: None,
        }
    }
    fn post() -> Command {
        Command::PostLead(post_lead())
    }
    fn post_restricted(to: &[&str]) -> Command {
        Command::PostLead(PostLead {
            restricted_to: Some(ccs(to)),
            ..post_lead()
        })
    }
    fn amend_lead() -> AmendLead {
        AmendLead {
            lead_id: LEAD,
            reason: "AFIS match".into(),
            summary: Some("fingerprints matched".into()),
            details: None,
            subject: None,
            grading: None,
        }
    }
    fn amend() -> Command {
        Command::AmendLead(amend_lead())
    }
    fn retract() -> Command {
        Command::RetractLead(RetractLead {
            lead_id: LEAD,
            reason: "wrong prints".into(),
        })
    }
    fn person_subject() -> Subject {
        Subject {
            kind: SubjectKind::Person,
            description: "burglar".into(),
            name: Some("Ivan Petrov".into()),
            date_of_birth: Some("1985-04-12".into()),
            nationality: Some(cc("RS")),
        }
    }
    fn object_subject() -> Subject {
        Subject {
            kind: SubjectKind::Object,
            description: "latent fingerprints".into(),
            name: None,
            date_of_birth: None,
            nationality: None,
        }
    }
    fn report_arrest() -> ReportArrest {
        ReportArrest {
            arrest_id: ARREST,
            operation_id: OP,
            person: Person {
                name: "Ivan Petrov".into(),
                date_of_birth: None,
                nationality: Some(cc("RS")),
            },
            location_country: cc("DE"),
            lead_id: Some(LEAD),
            notice_id: Some(NOTICE),
        }
    }
    fn report() -> Command {
        Command::ReportArrest(report_arrest())
    }
    fn request_notice() -> RequestNotice {
        RequestNotice {
            notice_id: NOTICE,
            color: Color::Red,
            subject: person_subject(),
            reason: "wanted in five countries for aggravated burglary".into(),
            offence: Some("aggravated burglary".into()),
            warrant: Some("MC-2026-0457".into()),
            operation_id: None,
            recipients: None,
        }
    }
    fn request() -> Command {
        Command::RequestNotice(request_notice())
    }
    fn diffusion(to: &[&str]) -> Command {
        Command::RequestNotice(RequestNotice {
            recipients: Some(ccs(to)),
            ..request_notice()
        })
    }
    const ALL_HOLD: Grounds = Grounds {
        not_political: true,
        not_military: true,
        not_religious: true,
        not_racial: true,
        facts_support_purpose: true,
    };
    fn review(decision: Decision, grounds: Grounds, reason: &str) -> Command {
        Command::ReviewNotice(ReviewNotice {
            notice_id: NOTICE,
            decision,
            reason: reason.into(),
            grounds,
        })
    }
    fn approve() -> Command {
        review(
            Decision::Approve,
            ALL_HOLD,
            "ordinary crime, facts support a red notice",
        )
    }
    fn reject() -> Command {
        review(Decision::Reject, ALL_HOLD, "facts too thin")
    }
    fn cancel() -> Command {
        Command::CancelNotice(CancelNotice {
            notice_id: NOTICE,
            reason: "arrested".into(),
        })
    }

    // Events.
    fn posted(owner: &str, restricted_to: &[&str]) -> Event {
        Event::LeadPosted(LeadPosted {
            lead_id: LEAD,
            operation_id: OP,
            owner_country: cc(owner),
            summary: "fingerprints at the jeweller's".into(),
            details: None,
            subject: None,
            restricted_to: ccs(restricted_to),
            grading: None,
            posted_by: sub(Role::Liaison, owner),
            posted_at: NOW.into(),
        })
    }
    fn amended() -> Event {
        Event::LeadAmended(LeadAmended {
            reason: "AFIS match".into(),
            summary: Some("fingerprints matched".into()),
            details: None,
            subject: None,
            grading: None,
            amended_at: NOW.into(),
        })
    }
    fn retracted() -> Event {
        Event::LeadRetracted(LeadRetracted {
            reason: "wrong prints".into(),
            retracted_at: NOW.into(),
        })
    }
    fn reported(by: &str) -> Event {
        let c = report_arrest();
        Event::ArrestReported(ArrestReported {
            arrest_id: ARREST,
            operation_id: OP,
            person: c.person,
            location_country: c.location_country,
            lead_id: c.lead_id,
            notice_id: c.notice_id,
            reporting_country: cc(by),
            reported_by: sub(Role::Liaison, by),
            reported_at: NOW.into(),
        })
    }
    fn requested(by: &str, recipients: Option<&[&str]>) -> Event {
        let c = request_notice();
        Event::NoticeRequested(NoticeRequested {
            notice_id: NOTICE,
            color: c.color,
            subject: c.subject,
            reason: c.reason,
            offence: c.offence,
            warrant: c.warrant,
            operation_id: None,
            recipients: recipients.map(ccs),
            requesting_country: cc(by),
            requested_by: sub(Role::Liaison, by),
            requested_at: NOW.into(),
        })
    }
    fn published() -> Event {
        Event::NoticePublished(NoticePublished {
            reviewed_by: sub(Role::Reviewer, "GS"),
            reviewer_country: cc("GS"),
            reason: "ordinary crime, facts support a red notice".into(),
            grounds: ALL_HOLD,
            published_at: NOW.into(),
        })
    }
    fn rejected() -> Event {
        Event::NoticeRejected(NoticeRejected {
            reviewed_by: sub(Role::Reviewer, "GS"),
            reviewer_country: cc("GS"),
            reason: "facts too thin".into(),
            grounds: ALL_HOLD,
            rejected_at: NOW.into(),
        })
    }
    fn cancelled(by: &Actor) -> Event {
        Event::NoticeCancelled(NoticeCancelled {
            reason: "arrested".into(),
            cancelled_by: by.sub.clone(),
            cancelled_at: NOW.into(),
        })
    }

    /// DE's unrestricted lead on `OP`.
    fn lead() -> Vec<Event> {
        vec![posted("DE", &[])]
    }
    /// MC's red notice, not a diffusion, in `status`.
    fn notice(status: NoticeStatus) -> Vec<Event> {
        let mut h = vec![requested("MC", None)];
        h.extend(match status {
            NoticeStatus::Requested => vec![],
            NoticeStatus::Published => vec![published()],
            NoticeStatus::Rejected => vec![rejected()],
            NoticeStatus::Cancelled => vec![published(), cancelled(&liaison("MC"))],
        });
        h
    }

    // ------------------------------------------------------------ given / when / then

    struct Given {
        history: Vec<Event>,
        ops: OperationsView,
    }

    fn given(history: impl IntoIterator<Item = Event>) -> Given {
        Given {
            history: history.into_iter().collect(),
            ops: ops(),
        }
    }

    impl Given {
        fn with_ops(self, ops: OperationsView) -> Given {
            Given { ops, ..self }
        }

        fn when(self, cmd: Command, actor: Actor) -> When {
            self.when_at(cmd, actor, NOW)
        }

        fn when_at(self, cmd: Command, actor: Actor, now: &str) -> When {
            let state = replay(&self.history);
            let ctx = Ctx { actor, now: now.into() };
            let result = decide(&state, &cmd, &self.ops, &ctx);
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

    /// Whether `who` sees the stream `history` builds, with `ops`.
    fn sees(history: &[Event], ops: &OperationsView, who: &Actor) -> bool {
        replay(history).visible_to(who, ops)
    }

    // ------------------------------------------------------------ leads: the story

    #[test]
    fn the_story_of_a_lead() {
        let grading = Grading {
            reliability: Reliability::A,
            accuracy: Accuracy::try_from(1).expect("1 is an accuracy"),
        };
        let h = given([])
            .when(
                Command::PostLead(PostLead {
                    details: Some("latent prints on the display case".into()),
                    subject: Some(object_subject()),
                    grading: Some(grading),
                    ..post_lead()
                }),
                liaison("MC"),
            )
            .then([Event::LeadPosted(LeadPosted {
                details: Some("latent prints on the display case".into()),
                subject: Some(object_subject()),
                grading: Some(grading),
                owner_country: cc("MC"),
                posted_by: "mc-liaison".into(),
                ..match posted("DE", &[]) {
                    Event::LeadPosted(e) => e,
                    _ => unreachable!(),
                }
            })]);
        let h = given(h)
            .when_at(
                Command::AmendLead(AmendLead {
                    summary: None,
                    subject: Some(person_subject()),
                    ..amend_lead()
                }),
                liaison("MC"),
                LATER,
            )
            .then([Event::LeadAmended(LeadAmended {
                reason: "AFIS match".into(),
                summary: None,
                details: None,
                subject: Some(person_subject()),
                grading: None,
                amended_at: LATER.into(),
            })]);
        let h = given(h).when(retract(), liaison("MC")).then([retracted()]);

        let State::Lead(lead) = replay(&h) else {
            panic!("a lead")
        };
        assert_eq!(lead.status, LeadStatus::Retracted);
        assert_eq!(
            lead.subject,
            Some(person_subject()),
            "the amendment replaced the subject"
        );
        assert_eq!(
            replay(&h).view(),
            json!({
                "kind": "lead",
                "id": LEAD,
                "status": "retracted",
                "operation_id": OP,
                "owner_country": "MC",
                "summary": "fingerprints at the jeweller's",
                "details": "latent prints on the display case",
                "subject": {"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                            "date_of_birth": "1985-04-12", "nationality": "RS"},
                "restricted_to": [],
                "grading": {"reliability": "A", "accuracy": 1},
                "posted_by": "mc-liaison",
                "posted_at": NOW,
                "amendments": [{"reason": "AFIS match",
                                "subject": {"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                                            "date_of_birth": "1985-04-12", "nationality": "RS"},
                                "amended_at": LATER}],
                "retraction": {"reason": "wrong prints", "retracted_at": NOW},
            })
        );
    }

    // ------------------------------------------------------------ leads: posting

    #[test]
    fn only_a_liaison_posts_a_lead() {
        for who in [
            coordinator("FR"),
            coordinator("DE"),
            reviewer("DE"),
            auditor("DE"),
            auditor("GS"),
        ] {
            given([])
                .when(post(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison can post a lead");
        }
        given([]).when(post(), liaison("FR")).then([posted("FR", &[])]);
    }

    #[test]
    fn a_lead_on_an_unknown_operation_is_not_found() {
        let unknown = Command::PostLead(PostLead {
            operation_id: UNKNOWN_OP,
            ..post_lead()
        });
        for who in [liaison("DE"), coordinator("DE"), auditor("GS")] {
            given([])
                .when(unknown.clone(), who)
                .then_rejected(ErrorCode::NotFound, "operation not found");
        }
    }

    #[test]
    fn a_country_outside_the_operation_gets_the_same_not_found() {
        // Open or closed, the answer says nothing more than for an unknown id.
        for operation_id in [OP, CLOSED_OP] {
            let cmd = Command::PostLead(PostLead {
                operation_id,
                ..post_lead()
            });
            for who in [liaison("IT"), liaison("US"), coordinator("IT"), reviewer("GS")] {
                let result = given([]).when(cmd.clone(), who).result;
                assert_eq!(result, Err(Rejection::NotFound("operation not found".into())));
            }
        }
    }

    #[test]
    fn a_removed_participant_can_no_longer_post_and_an_added_one_can() {
        given([])
            .with_ops(ops_without("DE"))
            .when(post(), liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        given([])
            .with_ops(ops_and("participant.added", json!({"country": "IT"})))
            .when(post(), liaison("IT"))
            .then([posted("IT", &[])]);
    }

    #[test]
    fn no_lead_is_posted_to_a_closed_operation() {
        for who in [liaison("DE"), liaison("FR"), coordinator("DE"), auditor("GS")] {
            given([])
                .with_ops(ops_closed())
                .when(post(), who)
                .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        }
    }

    #[test]
    fn restricted_to_names_only_countries_taking_part() {
        given([])
            .when(post_restricted(&["ES", "US"]), liaison("DE"))
            .then_rejected(
                ErrorCode::RuleViolated,
                &format!("US does not take part in operation {OP}"),
            );
        given([])
            .with_ops(ops_without("ES"))
            .when(post_restricted(&["ES"]), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "ES does not take part");
        // The lead country takes part.
        given([])
            .when(post_restricted(&["FR"]), liaison("DE"))
            .then([posted("DE", &["DE", "FR"])]);
    }

    #[test]
    fn restricted_to_drops_duplicates_is_sorted_and_implies_the_owner() {
        given([])
            .when(post_restricted(&["MC", "FR", "MC", "DE"]), liaison("DE"))
            .then([posted("DE", &["DE", "FR", "MC"])]);
        // A restriction to nobody else is the owner alone, not "no restriction".
        for only_me in [&[][..], &["DE"][..]] {
            let h = given([])
                .when(post_restricted(only_me), liaison("DE"))
                .then([posted("DE", &["DE"])]);
            assert!(sees(&h, &ops(), &liaison("DE")));
            assert!(!sees(&h, &ops(), &liaison("FR")));
        }
    }

    #[test]
    fn restricted_to_is_bounded() {
        let many = vec!["FR"; RESTRICTED_TO_MAX + 1];
        given([])
            .when(post_restricted(&many), liaison("DE"))
            .then_rejected(ErrorCode::Invalid, "restricted_to lists at most 51 countries, 52 given");
    }

    #[test]
    fn a_lead_needs_a_summary_and_bounded_details() {
        let with = |summary: String, details: Option<String>| {
            Command::PostLead(PostLead {
                summary,
                details,
                ..post_lead()
            })
        };
        for (cmd, contains) in [
            (with(String::new(), None), "summary must not be empty"),
            (with(" \n\t".into(), None), "summary must not be empty"),
            (
                with("é".repeat(SUMMARY_CHARS_MAX + 1), None),
                "summary is longer than 500 characters",
            ),
            (
                with("s".into(), Some("d".repeat(DETAILS_CHARS_MAX + 1))),
                "details is longer than 4000 characters",
            ),
        ] {
            given([])
                .when(cmd, liaison("DE"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // Limits count characters, not bytes; empty details are fine.
        let at_limit = with("é".repeat(SUMMARY_CHARS_MAX), Some(String::new()));
        assert!(matches!(given([]).when(at_limit, liaison("DE")).result, Ok(ref e) if e.len() == 1));
    }

    #[test]
    fn a_subject_is_checked() {
        let with = |f: &dyn Fn(&mut Subject), base: Subject| {
            let mut subject = base;
            f(&mut subject);
            Command::PostLead(PostLead {
                subject: Some(subject),
                ..post_lead()
            })
        };
        for (cmd, contains) in [
            (
                with(&|s| s.description = " ".into(), person_subject()),
                "subject.description must not be empty",
            ),
            (
                with(
                    &|s| s.description = "d".repeat(DESCRIPTION_CHARS_MAX + 1),
                    person_subject(),
                ),
                "subject.description is longer than 2000 characters",
            ),
            (
                with(&|s| s.name = Some(String::new()), person_subject()),
                "subject.name must not be empty",
            ),
            (
                with(&|s| s.name = Some("n".repeat(NAME_CHARS_MAX + 1)), person_subject()),
                "subject.name is longer than 200 characters",
            ),
            (
                with(&|s| s.date_of_birth = Some("1985-02-29".into()), person_subject()),
                "subject.date_of_birth \"1985-02-29\" is not a YYYY-MM-DD date",
            ),
            (
                with(&|s| s.date_of_birth = Some("12/04/1985".into()), person_subject()),
                "is not a YYYY-MM-DD date",
            ),
            (
                with(&|s| s.date_of_birth = Some("2026-11-24".into()), person_subject()),
                "subject.date_of_birth 2026-11-24 is in the future",
            ),
            (
                with(&|s| s.nationality = Some(cc("GS")), person_subject()),
                "subject.nationality GS is the secretariat, not a country",
            ),
            (
                with(&|s| s.date_of_birth = Some("1985-04-12".into()), object_subject()),
                "subject.date_of_birth is for a person, not an object",
            ),
            (
                with(&|s| s.nationality = Some(cc("RS")), object_subject()),
                "subject.nationality is for a person, not an object",
            ),
        ] {
            given([])
                .when(cmd, liaison("DE"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // Born today is fine; an object may have a name (a ship, a car).
        for ok in [
            with(&|s| s.date_of_birth = Some("2026-11-23".into()), person_subject()),
            with(&|s| s.name = Some("MV Aurora".into()), object_subject()),
        ] {
            assert!(given([]).when(ok, liaison("DE")).result.is_ok());
        }
    }

    #[test]
    fn posting_an_existing_lead_is_a_conflict() {
        given(lead())
            .when(post(), liaison("DE"))
            .then_rejected(ErrorCode::Conflict, &format!("lead {LEAD} already exists"));
    }

    // ------------------------------------------------------------ leads: amend and retract

    #[test]
    fn amending_or_retracting_no_lead_is_not_found() {
        for cmd in [amend(), retract()] {
            for who in [liaison("DE"), auditor("GS")] {
                given([])
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "lead not found");
            }
        }
    }

    #[test]
    fn amending_or_retracting_a_lead_one_cannot_see_is_not_found() {
        let restricted = vec![posted("DE", &["DE", "ES"])];
        for cmd in [amend(), retract()] {
            for who in [liaison("IT"), coordinator("US")] {
                given(lead())
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "lead not found");
            }
            // MC takes part, but the lead is restricted to DE and ES.
            given(restricted.clone())
                .when(cmd.clone(), liaison("MC"))
                .then_rejected(ErrorCode::NotFound, "lead not found");
            // A removed participant is an outsider again.
            given(lead())
                .with_ops(ops_without("ES"))
                .when(cmd.clone(), liaison("ES"))
                .then_rejected(ErrorCode::NotFound, "lead not found");
        }
    }

    #[test]
    fn only_a_liaison_of_the_owner_country_amends_or_retracts() {
        for (cmd, what) in [(amend(), "amend the lead"), (retract(), "retract the lead")] {
            for who in [
                liaison("ES"),
                liaison("FR"),
                coordinator("DE"),
                coordinator("FR"),
                auditor("GS"),
            ] {
                given(lead()).when(cmd.clone(), who).then_rejected(
                    ErrorCode::Forbidden,
                    &format!("only a liaison of the owner country DE can {what}"),
                );
            }
        }
        given(lead()).when(amend(), liaison("DE")).then([amended()]);
        given(lead()).when(retract(), liaison("DE")).then([retracted()]);
    }

    #[test]
    fn a_retracted_lead_is_neither_amended_nor_retracted_again() {
        let mut h = lead();
        h.push(retracted());
        given(h.clone())
            .when(amend(), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "lead is retracted");
        given(h.clone())
            .when(retract(), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "lead is already retracted");
        // The status comes before the role: nobody may, so say that.
        given(h)
            .when(retract(), liaison("ES"))
            .then_rejected(ErrorCode::RuleViolated, "lead is already retracted");
    }

    #[test]
    fn a_lead_of_a_closed_operation_is_not_amended_but_may_be_retracted() {
        for who in [liaison("DE"), liaison("ES")] {
            given(lead())
                .with_ops(ops_closed())
                .when(amend(), who)
                .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        }
        given(lead())
            .with_ops(ops_closed())
            .when(retract(), liaison("DE"))
            .then([retracted()]);
    }

    #[test]
    fn an_amendment_has_a_reason_and_changes_something_valid() {
        let with = |f: &dyn Fn(&mut AmendLead)| {
            let mut a = amend_lead();
            f(&mut a);
            Command::AmendLead(a)
        };
        for (cmd, contains) in [
            (with(&|a| a.reason = String::new()), "reason must not be empty"),
            (
                with(&|a| a.reason = "r".repeat(REASON_CHARS_MAX + 1)),
                "reason is longer than 4000 characters",
            ),
            (
                with(&|a| a.summary = None),
                "an amendment changes at least one of summary, details, subject, grading",
            ),
            (with(&|a| a.summary = Some(" ".into())), "summary must not be empty"),
            (
                with(&|a| a.details = Some("d".repeat(DETAILS_CHARS_MAX + 1))),
                "details is longer than 4000 characters",
            ),
            (
                with(&|a| {
                    a.subject = Some(Subject {
                        description: String::new(),
                        ..object_subject()
                    })
                }),
                "subject.description must not be empty",
            ),
        ] {
            given(lead())
                .when(cmd, liaison("DE"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
    }

    #[test]
    fn an_amendment_replaces_the_given_fields_only_and_is_kept() {
        let grading = Grading {
            reliability: Reliability::B,
            accuracy: Accuracy::try_from(2).expect("2 is an accuracy"),
        };
        let h = given(lead())
            .when(
                Command::AmendLead(AmendLead {
                    summary: None,
                    details: Some("seen twice".into()),
                    grading: Some(grading),
                    ..amend_lead()
                }),
                liaison("DE"),
            )
            .then([Event::LeadAmended(LeadAmended {
                reason: "AFIS match".into(),
                summary: None,
                details: Some("seen twice".into()),
                subject: None,
                grading: Some(grading),
                amended_at: NOW.into(),
            })]);
        let h = given(h).when(amend(), liaison("DE")).then([amended()]);
        let State::Lead(l) = replay(&h) else { panic!("a lead") };
        assert_eq!(l.summary, "fingerprints matched");
        assert_eq!(l.details.as_deref(), Some("seen twice"));
        assert_eq!(l.grading, Some(grading));
        assert_eq!(l.subject, None);
        assert_eq!(l.amendments.len(), 2);
        assert_eq!(l.status, LeadStatus::Active);
    }

    #[test]
    fn a_lead_is_amended_at_most_1000_times() {
        let mut h = lead();
        h.extend(std::iter::repeat_n(amended(), AMENDMENTS_MAX));
        given(h)
            .when(amend(), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "a lead is amended at most 1000 times");
    }

    // ------------------------------------------------------------ leads: visibility

    #[test]
    fn an_unrestricted_lead_is_seen_by_every_country_taking_part() {
        let h = lead();
        for (c, seen) in [
            ("DE", true),
            ("FR", true),
            ("ES", true),
            ("MC", true),
            ("IT", false),
            ("GS", false),
        ] {
            for role in [Role::Liaison, Role::Coordinator, Role::Reviewer] {
                assert_eq!(sees(&h, &ops(), &actor(role, c)), seen, "{c} {role:?}");
            }
        }
        // Removed, ES no longer sees it; added, IT does.
        assert!(!sees(&h, &ops_without("ES"), &liaison("ES")));
        assert!(sees(
            &h,
            &ops_and("participant.added", json!({"country": "IT"})),
            &liaison("IT")
        ));
        // The owner always sees its own lead, even once removed.
        assert!(sees(&h, &ops_without("DE"), &liaison("DE")));
        // A retracted lead stays visible: it warns.
        let mut retracted_lead = h.clone();
        retracted_lead.push(retracted());
        assert!(sees(&retracted_lead, &ops(), &liaison("ES")));
    }

    #[test]
    fn a_restricted_lead_is_seen_by_its_owner_and_the_listed_countries_only() {
        let h = given([])
            .when(post_restricted(&["FR", "MC"]), liaison("DE"))
            .then([posted("DE", &["DE", "FR", "MC"])]);
        for (c, seen) in [("DE", true), ("FR", true), ("MC", true), ("ES", false), ("IT", false)] {
            assert_eq!(sees(&h, &ops(), &liaison(c)), seen, "{c}");
            assert_eq!(sees(&h, &ops(), &coordinator(c)), seen, "{c}");
        }
        // A listed country removed from the operation no longer sees it.
        assert!(!sees(&h, &ops_without("MC"), &liaison("MC")));
    }

    #[test]
    fn auditors_see_everything_and_nobody_sees_an_empty_stream() {
        let restricted = vec![posted("DE", &["DE"])];
        let histories = [
            lead(),
            restricted,
            vec![reported("DE")],
            notice(NoticeStatus::Requested),
            notice(NoticeStatus::Rejected),
            notice(NoticeStatus::Published),
            notice(NoticeStatus::Cancelled),
        ];
        for h in &histories {
            for view in [ops(), OperationsView::default()] {
                assert!(sees(h, &view, &auditor("US")), "{h:?}");
                assert!(sees(h, &view, &auditor("GS")), "{h:?}");
            }
        }
        for who in [auditor("GS"), liaison("FR"), reviewer("GS"), coordinator("FR")] {
            assert!(!State::Empty.visible_to(&who, &ops()));
        }
        assert_eq!(State::Empty.view(), Value::Null);
    }

    // ------------------------------------------------------------ arrests

    #[test]
    fn the_story_of_an_arrest() {
        let h = given([]).when(report(), liaison("DE")).then([reported("DE")]);
        assert_eq!(
            replay(&h).view(),
            json!({
                "kind": "arrest",
                "id": ARREST,
                "status": "reported",
                "operation_id": OP,
                "person": {"name": "Ivan Petrov", "date_of_birth": null, "nationality": "RS"},
                "location_country": "DE",
                "lead_id": LEAD,
                "notice_id": NOTICE,
                "reporting_country": "DE",
                "reported_by": "de-liaison",
                "reported_at": NOW,
            })
        );
    }

    #[test]
    fn an_arrest_needs_an_open_operation_the_reporter_takes_part_in() {
        let unknown = Command::ReportArrest(ReportArrest {
            operation_id: UNKNOWN_OP,
            ..report_arrest()
        });
        given([])
            .when(unknown, liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        for who in [liaison("IT"), liaison("US")] {
            given([])
                .when(report(), who)
                .then_rejected(ErrorCode::NotFound, "operation not found");
        }
        given([])
            .with_ops(ops_without("DE"))
            .when(report(), liaison("DE"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        given([])
            .with_ops(ops_closed())
            .when(report(), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
    }

    #[test]
    fn only_a_liaison_reports_an_arrest() {
        for who in [coordinator("DE"), coordinator("FR"), reviewer("DE"), auditor("GS")] {
            given([])
                .when(report(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison can report an arrest");
        }
    }

    #[test]
    fn an_arrest_names_a_person_and_a_real_place() {
        let with = |f: &dyn Fn(&mut ReportArrest)| {
            let mut r = report_arrest();
            f(&mut r);
            Command::ReportArrest(r)
        };
        for (cmd, contains) in [
            (with(&|r| r.person.name = " ".into()), "person.name must not be empty"),
            (
                with(&|r| r.person.name = "n".repeat(NAME_CHARS_MAX + 1)),
                "person.name is longer than 200 characters",
            ),
            (
                with(&|r| r.person.date_of_birth = Some("1985-13-01".into())),
                "person.date_of_birth \"1985-13-01\" is not a YYYY-MM-DD date",
            ),
            (
                with(&|r| r.person.date_of_birth = Some("2030-01-01".into())),
                "person.date_of_birth 2030-01-01 is in the future",
            ),
            (
                with(&|r| r.person.nationality = Some(cc("GS"))),
                "person.nationality GS is the secretariat",
            ),
            (
                with(&|r| r.location_country = cc("GS")),
                "location_country GS is the secretariat, not a country",
            ),
        ] {
            given([])
                .when(cmd, liaison("DE"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
        // Anywhere in the world, not only in a participating country.
        given([])
            .when(with(&|r| r.location_country = cc("TH")), liaison("DE"))
            .then([Event::ArrestReported(ArrestReported {
                location_country: cc("TH"),
                ..match reported("DE") {
                    Event::ArrestReported(e) => e,
                    _ => unreachable!(),
                }
            })]);
        let bad = json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n"}, "location_country": "XX"});
        let r = parse_command("report_arrest", bad).expect_err("XX is no country");
        assert_eq!(r.code(), ErrorCode::Invalid);
        assert!(r.to_string().contains("\"XX\" is not an ISO 3166-1"), "{r}");
    }

    #[test]
    fn reporting_an_existing_arrest_is_a_conflict() {
        given([reported("DE")])
            .when(report(), liaison("ES"))
            .then_rejected(ErrorCode::Conflict, &format!("arrest {ARREST} already exists"));
    }

    #[test]
    fn an_arrest_is_seen_by_the_countries_taking_part_and_its_reporter() {
        let h = vec![reported("DE")];
        for (c, seen) in [
            ("DE", true),
            ("FR", true),
            ("ES", true),
            ("MC", true),
            ("US", false),
            ("GS", false),
        ] {
            assert_eq!(sees(&h, &ops(), &liaison(c)), seen, "{c}");
        }
        assert!(!sees(&h, &ops_without("ES"), &liaison("ES")));
        assert!(
            sees(&h, &ops_without("DE"), &liaison("DE")),
            "the reporter keeps its record"
        );
        assert!(sees(&h, &ops_closed(), &liaison("ES")), "closing changes nothing");
    }

    // ------------------------------------------------------------ notices: requests

    #[test]
    fn the_story_of_a_red_notice() {
        let with_op = Command::RequestNotice(RequestNotice {
            operation_id: Some(OP),
            ..request_notice()
        });
        let mut first = requested("MC", None);
        if let Event::NoticeRequested(e) = &mut first {
            e.operation_id = Some(OP);
        }
        let h = given([]).when(with_op, liaison("MC")).then([first]);
        for (who, seen) in [
            (liaison("MC"), true),
            (reviewer("GS"), true),
            (liaison("DE"), false),
            (liaison("US"), false),
        ] {
            assert_eq!(sees(&h, &ops(), &who), seen, "requested: {who:?}");
        }
        let h = given(h).when(approve(), reviewer("GS")).then([published()]);
        for who in [liaison("DE"), liaison("US"), coordinator("PL")] {
            assert!(sees(&h, &ops(), &who), "published: {who:?}");
        }
        let h = given(h).when(cancel(), liaison("MC")).then([cancelled(&liaison("MC"))]);
        assert!(sees(&h, &ops(), &liaison("US")), "cancelled, never deleted");
        let view = replay(&h).view();
        assert_eq!(view["kind"], "notice");
        assert_eq!(view["id"], json!(NOTICE));
        assert_eq!(view["status"], "cancelled");
        assert_eq!(view["color"], "red");
        assert_eq!(view["operation_id"], json!(OP));
        assert_eq!(view["diffusion"], false);
        assert_eq!(view["recipients"], Value::Null);
        assert_eq!(view["requesting_country"], "MC");
        assert_eq!(view["warrant"], "MC-2026-0457");
        assert_eq!(
            view["review"],
            json!({"decision": "approve", "reviewed_by": "gs-reviewer", "reviewer_country": "GS",
                   "reason": "ordinary crime, facts support a red notice",
                   "grounds": {"not_political": true, "not_military": true, "not_religious": true,
                               "not_racial": true, "facts_support_purpose": true},
                   "at": NOW})
        );
        assert_eq!(
            view["cancellation"],
            json!({"reason": "arrested", "cancelled_by": "mc-liaison", "cancelled_at": NOW})
        );
    }

    #[test]
    fn an_unknown_colour_is_invalid() {
        for colour in ["crimson", "Red", "RED", "un-special", ""] {
            let data = json!({"notice_id": NOTICE, "color": colour, "subject": {"kind": "person", "description": "d"}, "reason": "r"});
            let r = parse_command("request_notice", data).expect_err("not a colour");
            assert_eq!(r.code(), ErrorCode::Invalid, "{colour}");
            assert!(r.to_string().contains("unknown variant"), "{r}");
        }
    }

    #[test]
    fn only_red_needs_an_offence_and_a_warrant() {
        for color in Color::ALL {
            let bare = Command::RequestNotice(RequestNotice {
                color,
                offence: None,
                warrant: None,
                ..request_notice()
            });
            let result = given([]).when(bare, liaison("MC")).result;
            assert_eq!(result.is_ok(), color != Color::Red, "{color}");
            // The colour round-trips under its name.
            assert_eq!(serde_json::to_value(color).expect("serializes"), json!(color.as_str()));
        }
    }

    #[test]
    fn a_red_notice_without_warrant_or_offence_is_refused_naming_what_is_missing() {
        let with = |offence: Option<&str>, warrant: Option<&str>| {
            Command::RequestNotice(RequestNotice {
                offence: offence.map(str::to_owned),
                warrant: warrant.map(str::to_owned),
                ..request_notice()
            })
        };
        for (cmd, contains) in [
            (with(Some("burglary"), None), "a red notice needs a warrant"),
            (with(None, Some("W-1")), "a red notice needs an offence"),
            (with(None, None), "a red notice needs an offence and a warrant"),
        ] {
            given([])
                .when(cmd, liaison("MC"))
                .then_rejected(ErrorCode::RuleViolated, contains);
        }
        // Given but blank is no offence or warrant either, and says so.
        given([])
            .when(with(Some("burglary"), Some("  ")), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "warrant must not be empty");
        given([])
            .when(with(Some(""), Some("W-1")), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "offence must not be empty");
    }

    #[test]
    fn a_notice_request_has_a_subject_a_reason_and_bounded_texts() {
        let with = |f: &dyn Fn(&mut RequestNotice)| {
            let mut r = request_notice();
            f(&mut r);
            Command::RequestNotice(r)
        };
        for (cmd, contains) in [
            (with(&|r| r.reason = "\n".into()), "reason must not be empty"),
            (
                with(&|r| r.reason = "r".repeat(REASON_CHARS_MAX + 1)),
                "reason is longer than 4000 characters",
            ),
            (
                with(&|r| r.offence = Some("o".repeat(OFFENCE_CHARS_MAX + 1))),
                "offence is longer than 500 characters",
            ),
            (
                with(&|r| r.warrant = Some("w".repeat(WARRANT_CHARS_MAX + 1))),
                "warrant is longer than 200 characters",
            ),
            (
                with(&|r| r.subject.description = String::new()),
                "subject.description must not be empty",
            ),
        ] {
            given([])
                .when(cmd, liaison("MC"))
                .then_rejected(ErrorCode::Invalid, contains);
        }
    }

    #[test]
    fn only_a_liaison_requests_a_notice() {
        for who in [coordinator("MC"), reviewer("GS"), auditor("GS")] {
            given([])
                .when(request(), who)
                .then_rejected(ErrorCode::Forbidden, "only a liaison can request a notice");
        }
    }

    #[test]
    fn a_notice_for_an_operation_needs_a_country_taking_part_in_an_open_one() {
        let for_op = |operation_id| {
            Command::RequestNotice(RequestNotice {
                operation_id: Some(operation_id),
                ..request_notice()
            })
        };
        given([])
            .when(for_op(UNKNOWN_OP), liaison("MC"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        given([])
            .when(for_op(OP), liaison("IT"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        given([])
            .when(for_op(CLOSED_OP), liaison("MC"))
            .then_rejected(ErrorCode::NotFound, "operation not found");
        given([])
            .when(for_op(CLOSED_OP), liaison("DE"))
            .then_rejected(ErrorCode::RuleViolated, "operation is closed");
        // Without an operation, any liaison may ask.
        assert!(given([]).when(request(), liaison("IT")).result.is_ok());
    }

    #[test]
    fn requesting_an_existing_notice_is_a_conflict() {
        given(notice(NoticeStatus::Requested))
            .when(request(), liaison("MC"))
            .then_rejected(ErrorCode::Conflict, &format!("notice {NOTICE} already exists"));
    }

    #[test]
    fn a_diffusion_goes_to_other_real_countries_without_duplicates() {
        given([])
            .when(diffusion(&["RS", "DE", "RS", "GS"]), liaison("MC"))
            .then([requested("MC", Some(&["DE", "GS", "RS"]))]);
        given([]).when(diffusion(&["DE", "MC"]), liaison("MC")).then_rejected(
            ErrorCode::RuleViolated,
            "MC requests the notice and cannot be one of its recipients",
        );
        given([])
            .when(diffusion(&[]), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "recipients must name at least one country");
        let many = vec!["DE"; RECIPIENTS_MAX + 1];
        given([])
            .when(diffusion(&many), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "a diffusion has at most 100 recipients, 101 given");
        let r = parse_command(
            "request_notice",
            json!({"notice_id": NOTICE, "color": "blue", "subject": {"kind": "person", "description": "d"},
                   "reason": "r", "recipients": ["DE", "QQ"]}),
        )
        .expect_err("QQ is no country");
        assert!(r.to_string().contains("\"QQ\" is not an ISO 3166-1"), "{r}");
    }

    #[test]
    fn a_published_diffusion_is_seen_by_its_requester_recipients_and_reviewers_only() {
        let requested_h = vec![requested("MC", Some(&["DE", "RS"]))];
        let mut published_h = requested_h.clone();
        published_h.push(published());
        let mut cancelled_h = published_h.clone();
        cancelled_h.push(cancelled(&reviewer("GS")));
        for (who, before, after) in [
            (liaison("MC"), true, true),
            (reviewer("GS"), true, true),
            (reviewer("FR"), true, true),
            (liaison("DE"), false, true),
            (coordinator("RS"), false, true),
            (liaison("US"), false, false),
            (liaison("FR"), false, false),
            (auditor("US"), true, true),
        ] {
            assert_eq!(sees(&requested_h, &ops(), &who), before, "requested: {who:?}");
            assert_eq!(sees(&published_h, &ops(), &who), after, "published: {who:?}");
            assert_eq!(sees(&cancelled_h, &ops(), &who), after, "cancelled: {who:?}");
        }
        assert_eq!(replay(&published_h).view()["diffusion"], true);
        assert_eq!(replay(&published_h).view()["recipients"], json!(["DE", "RS"]));
    }

    // ------------------------------------------------------------ notices: review

    #[test]
    fn reviewing_or_cancelling_no_notice_is_not_found() {
        for cmd in [approve(), reject(), cancel()] {
            for who in [reviewer("GS"), liaison("MC"), auditor("GS")] {
                given([])
                    .when(cmd.clone(), who)
                    .then_rejected(ErrorCode::NotFound, "notice not found");
            }
        }
    }

    #[test]
    fn a_country_that_cannot_see_the_notice_gets_not_found() {
        for status in [NoticeStatus::Requested, NoticeStatus::Rejected] {
            for cmd in [approve(), cancel()] {
                for who in [liaison("DE"), coordinator("US")] {
                    given(notice(status))
                        .when(cmd.clone(), who)
                        .then_rejected(ErrorCode::NotFound, "notice not found");
                }
            }
        }
        // A diffusion's outsider, once published, too.
        let mut h = vec![requested("MC", Some(&["DE"]))];
        h.push(published());
        given(h)
            .when(cancel(), liaison("US"))
            .then_rejected(ErrorCode::NotFound, "notice not found");
    }

    #[test]
    fn only_a_reviewer_reviews() {
        for who in [liaison("MC"), coordinator("MC"), auditor("GS")] {
            given(notice(NoticeStatus::Requested))
                .when(approve(), who)
                .then_rejected(ErrorCode::Forbidden, "only a reviewer can review a notice");
        }
    }

    #[test]
    fn a_reviewer_of_the_requesting_country_cannot_review() {
        for cmd in [approve(), reject()] {
            given(notice(NoticeStatus::Requested))
                .when(cmd, reviewer("MC"))
                .then_rejected(
                    ErrorCode::Forbidden,
                    "a reviewer of MC cannot review a notice MC requested",
                );
        }
        // Another country's reviewer may.
        given(notice(NoticeStatus::Requested))
            .when(approve(), reviewer("GS"))
            .then([published()]);
    }

    #[test]
    fn a_notice_is_reviewed_once() {
        for (status, now) in [
            (NoticeStatus::Published, "published"),
            (NoticeStatus::Rejected, "rejected"),
            (NoticeStatus::Cancelled, "cancelled"),
        ] {
            for cmd in [approve(), reject()] {
                given(notice(status)).when(cmd, reviewer("GS")).then_rejected(
                    ErrorCode::RuleViolated,
                    &format!("notice is already {now}; it is reviewed once"),
                );
            }
        }
    }

    #[test]
    fn approval_needs_every_ground_and_names_the_failing_ones() {
        let names = [
            "not_political",
            "not_military",
            "not_religious",
            "not_racial",
            "facts_support_purpose",
        ];
        for (i, name) in names.iter().enumerate() {
            let mut g = ALL_HOLD;
            match i {
                0 => g.not_political = false,
                1 => g.not_military = false,
                2 => g.not_religious = false,
                3 => g.not_racial = false,
                _ => g.facts_support_purpose = false,
            }
            assert_eq!(g.failing(), vec![*name]);
            given(notice(NoticeStatus::Requested))
                .when(review(Decision::Approve, g, "looks fine"), reviewer("GS"))
                .then_rejected(
                    ErrorCode::RuleViolated,
                    &format!("a notice is approved only when every ground holds; failing: {name}"),
                );
        }
        let mut two = ALL_HOLD;
        two.not_political = false;
        two.not_racial = false;
        given(notice(NoticeStatus::Requested))
            .when(review(Decision::Approve, two, "r"), reviewer("GS"))
            .then_rejected(ErrorCode::RuleViolated, "failing: not_political, not_racial");
        // An approval needs no reason; it is bounded all the same.
        given(notice(NoticeStatus::Requested))
            .when(review(Decision::Approve, ALL_HOLD, ""), reviewer("GS"))
            .then([Event::NoticePublished(NoticePublished {
                reason: String::new(),
                ..match published() {
                    Event::NoticePublished(e) => e,
                    _ => unreachable!(),
                }
            })]);
        given(notice(NoticeStatus::Requested))
            .when(
                review(Decision::Approve, ALL_HOLD, &"r".repeat(REASON_CHARS_MAX + 1)),
                reviewer("GS"),
            )
            .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
    }

    #[test]
    fn a_rejection_needs_a_reason_and_stays_private() {
        for blank in ["", "  "] {
            given(notice(NoticeStatus::Requested))
                .when(review(Decision::Reject, ALL_HOLD, blank), reviewer("GS"))
                .then_rejected(ErrorCode::Invalid, "reason must not be empty");
        }
        let mut political = ALL_HOLD;
        political.not_political = false;
        let h = given(notice(NoticeStatus::Requested))
            .when(
                review(Decision::Reject, political, "predominantly political"),
                reviewer("GS"),
            )
            .then([Event::NoticeRejected(NoticeRejected {
                reason: "predominantly political".into(),
                grounds: political,
                ..match rejected() {
                    Event::NoticeRejected(e) => e,
                    _ => unreachable!(),
                }
            })]);
        for (who, seen) in [
            (liaison("MC"), true),
            (reviewer("GS"), true),
            (auditor("US"), true),
            (liaison("DE"), false),
            (liaison("US"), false),
        ] {
            assert_eq!(sees(&h, &ops(), &who), seen, "{who:?}");
        }
        assert_eq!(replay(&h).view()["status"], "rejected");
    }

    // ------------------------------------------------------------ notices: cancel

    #[test]
    fn a_rejected_notice_cannot_be_cancelled() {
        for who in [liaison("MC"), reviewer("GS")] {
            given(notice(NoticeStatus::Rejected))
                .when(cancel(), who)
                .then_rejected(ErrorCode::RuleViolated, "a rejected notice cannot be cancelled");
        }
    }

    #[test]
    fn a_notice_is_cancelled_once() {
        given(notice(NoticeStatus::Cancelled))
            .when(cancel(), liaison("MC"))
            .then_rejected(ErrorCode::RuleViolated, "notice is already cancelled");
    }

    #[test]
    fn the_requesting_liaison_or_any_reviewer_cancels() {
        for status in [NoticeStatus::Requested, NoticeStatus::Published] {
            for who in [liaison("MC"), reviewer("GS"), reviewer("MC"), reviewer("FR")] {
                given(notice(status))
                    .when(cancel(), who.clone())
                    .then([cancelled(&who)]);
            }
            for who in [coordinator("MC"), auditor("GS")] {
                given(notice(status)).when(cancel(), who).then_rejected(
                    ErrorCode::Forbidden,
                    "only a liaison of the requesting country MC or a reviewer can cancel the notice",
                );
            }
        }
        // Published, every country sees it, yet only those may cancel.
        given(notice(NoticeStatus::Published))
            .when(cancel(), liaison("DE"))
            .then_rejected(ErrorCode::Forbidden, "only a liaison of the requesting country MC");
    }

    #[test]
    fn a_cancellation_needs_a_reason() {
        let with = |reason: String| {
            Command::CancelNotice(CancelNotice {
                notice_id: NOTICE,
                reason,
            })
        };
        given(notice(NoticeStatus::Published))
            .when(with(" ".into()), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "reason must not be empty");
        given(notice(NoticeStatus::Published))
            .when(with("r".repeat(REASON_CHARS_MAX + 1)), liaison("MC"))
            .then_rejected(ErrorCode::Invalid, "reason is longer than 4000 characters");
    }

    #[test]
    fn a_cancelled_notice_keeps_the_visibility_it_had() {
        let mut never_published = notice(NoticeStatus::Requested);
        never_published.push(cancelled(&liaison("MC")));
        let was_published = notice(NoticeStatus::Cancelled);
        for (who, private_seen, public_seen) in [
            (liaison("MC"), true, true),
            (reviewer("GS"), true, true),
            (liaison("DE"), false, true),
            (liaison("US"), false, true),
        ] {
            assert_eq!(sees(&never_published, &ops(), &who), private_seen, "{who:?}");
            assert_eq!(sees(&was_published, &ops(), &who), public_seen, "{who:?}");
        }
    }

    // ------------------------------------------------------------ one story, live and replayed

    #[test]
    fn live_evolve_and_replay_from_stored_events_give_the_same_state() {
        let streams: [Vec<(Command, Actor)>; 3] = [
            vec![
                (post_restricted(&["ES"]), liaison("DE")),
                (amend(), liaison("DE")),
                (retract(), liaison("DE")),
            ],
            vec![(report(), liaison("ES"))],
            vec![(diffusion(&["DE", "RS"]), liaison("MC")), (reject(), reviewer("GS"))],
        ];
        for story in streams {
            let mut live = State::default();
            let mut stored: Vec<(&'static str, Value)> = Vec::new();
            let mut stream = None;
            for (cmd, actor) in story {
                let s = stream_of(&cmd);
                assert_eq!(stream.get_or_insert_with(|| s.clone()), &s, "one stream per story");
                let ctx = Ctx { actor, now: NOW.into() };
                let events = decide(&live, &cmd, &ops(), &ctx).expect("every step of the story is allowed");
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
            assert_ne!(live, State::Empty);
        }
    }

    // ------------------------------------------------------------ parse_command and streams

    fn full_bodies() -> [Value; 7] {
        let subject = json!({"kind": "person", "description": "burglar", "name": "Ivan Petrov",
                             "date_of_birth": "1985-04-12", "nationality": "RS"});
        let grading = json!({"reliability": "A", "accuracy": 1});
        [
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "details": "d", "subject": subject,
                   "restricted_to": ["FR"], "grading": grading}),
            json!({"lead_id": LEAD, "reason": "r", "summary": "s", "details": "d", "subject": subject,
                   "grading": grading}),
            json!({"lead_id": LEAD, "reason": "r"}),
            json!({"arrest_id": ARREST, "operation_id": OP,
                   "person": {"name": "Ivan Petrov", "date_of_birth": "1985-04-12", "nationality": "RS"},
                   "location_country": "DE", "lead_id": LEAD, "notice_id": NOTICE}),
            json!({"notice_id": NOTICE, "color": "un_special", "subject": subject, "reason": "r", "offence": "o",
                   "warrant": "w", "operation_id": OP, "recipients": ["DE"]}),
            json!({"notice_id": NOTICE, "decision": "reject", "reason": "r",
                   "grounds": {"not_political": true, "not_military": true, "not_religious": false,
                               "not_racial": true, "facts_support_purpose": true}}),
            json!({"notice_id": NOTICE, "reason": "r"}),
        ]
    }

    #[test]
    fn parse_command_reads_every_command_and_names_its_stream() {
        let streams = [
            format!("lead-{LEAD}"),
            format!("lead-{LEAD}"),
            format!("lead-{LEAD}"),
            format!("arrest-{ARREST}"),
            format!("notice-{NOTICE}"),
            format!("notice-{NOTICE}"),
            format!("notice-{NOTICE}"),
        ];
        for ((name, data), stream) in COMMANDS.into_iter().zip(full_bodies()).zip(streams) {
            let cmd = parse_command(name, data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(cmd.name(), name);
            assert_eq!(stream_of(&cmd), stream);
        }
        // Optional fields may be left out.
        let cmd = parse_command(
            "post_lead",
            json!({"lead_id": LEAD, "operation_id": OP, "summary": "s"}),
        );
        assert_eq!(cmd, Ok(post_lead_with_summary("s")));
    }

    fn post_lead_with_summary(summary: &str) -> Command {
        Command::PostLead(PostLead {
            summary: summary.into(),
            ..post_lead()
        })
    }

    #[test]
    fn parse_command_refuses_what_does_not_fit_precisely() {
        for (name, data, contains) in [
            (
                "delete_lead",
                json!({}),
                "unknown command \"delete_lead\": expected one of post_lead, amend_lead",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "sneaky": true}),
                "invalid post_lead command: unknown field `sneaky`",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "summary": "s"}),
                "missing field `operation_id`",
            ),
            ("post_lead", json!(null), "data must be a JSON object, not null"),
            (
                "retract_lead",
                json!([LEAD, "r"]),
                "data must be a JSON object, not an array",
            ),
            (
                "post_lead",
                json!({"lead_id": "42", "operation_id": OP, "summary": "s"}),
                "invalid post_lead command",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "A", "accuracy": 5}}),
                "accuracy 5 is not 1, 2, 3 or 4",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "A", "accuracy": 0}}),
                "accuracy 0 is not 1, 2, 3 or 4",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "grading": {"reliability": "D", "accuracy": 1}}),
                "unknown variant `D`",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "animal", "description": "d"}}),
                "unknown variant `animal`",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "person", "description": "d", "eyes": "blue"}}),
                "unknown field `eyes`",
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "restricted_to": ["fr"]}),
                "\"fr\" is not an ISO 3166-1",
            ),
            (
                "review_notice",
                json!({"notice_id": NOTICE, "decision": "maybe", "reason": "r", "grounds": ALL_HOLD}),
                "unknown variant `maybe`",
            ),
            (
                "review_notice",
                json!({"notice_id": NOTICE, "decision": "approve", "reason": "r",
                       "grounds": {"not_political": true}}),
                "missing field `not_military`",
            ),
            (
                "review_notice",
                json!({"notice_id": NOTICE, "decision": "approve", "reason": "r",
                       "grounds": {"not_political": "yes", "not_military": true, "not_religious": true,
                                   "not_racial": true, "facts_support_purpose": true}}),
                "invalid type: string \"yes\", expected a boolean",
            ),
            ("cancel_notice", json!({"notice_id": NOTICE}), "missing field `reason`"),
            (
                "report_arrest",
                json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n", "alias": "x"}, "location_country": "DE"}),
                "unknown field `alias`",
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

    // ------------------------------------------------------------ schemas

    /// The command schemas, in the order of `COMMANDS`.
    const SCHEMAS: [(&str, &str); 7] = [
        (
            "post_lead",
            include_str!("../../../schemas/commands/intel/post_lead.schema.json"),
        ),
        (
            "amend_lead",
            include_str!("../../../schemas/commands/intel/amend_lead.schema.json"),
        ),
        (
            "retract_lead",
            include_str!("../../../schemas/commands/intel/retract_lead.schema.json"),
        ),
        (
            "report_arrest",
            include_str!("../../../schemas/commands/intel/report_arrest.schema.json"),
        ),
        (
            "request_notice",
            include_str!("../../../schemas/commands/intel/request_notice.schema.json"),
        ),
        (
            "review_notice",
            include_str!("../../../schemas/commands/intel/review_notice.schema.json"),
        ),
        (
            "cancel_notice",
            include_str!("../../../schemas/commands/intel/cancel_notice.schema.json"),
        ),
    ];

    /// Every field each command struct accepts, and the required ones (its
    /// fields that are not `Option`), by hand from the structs above.
    const FIELDS: [(&[&str], &[&str]); 7] = [
        (
            &[
                "lead_id",
                "operation_id",
                "summary",
                "details",
                "subject",
                "restricted_to",
                "grading",
            ],
            &["lead_id", "operation_id", "summary"],
        ),
        (
            &["lead_id", "reason", "summary", "details", "subject", "grading"],
            &["lead_id", "reason"],
        ),
        (&["lead_id", "reason"], &["lead_id", "reason"]),
        (
            &[
                "arrest_id",
                "operation_id",
                "person",
                "location_country",
                "lead_id",
                "notice_id",
            ],
            &["arrest_id", "operation_id", "person", "location_country"],
        ),
        (
            &[
                "notice_id",
                "color",
                "subject",
                "reason",
                "offence",
                "warrant",
                "operation_id",
                "recipients",
            ],
            &["notice_id", "color", "subject", "reason"],
        ),
        (
            &["notice_id", "decision", "reason", "grounds"],
            &["notice_id", "decision", "reason", "grounds"],
        ),
        (&["notice_id", "reason"], &["notice_id", "reason"]),
    ];

    fn names(v: &Value) -> BTreeSet<String> {
        match v {
            Value::Object(o) => o.keys().cloned().collect(),
            Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => panic!("neither object nor array: {v}"),
        }
    }
    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn every_command_schema_lists_exactly_the_fields_its_command_accepts() {
        for (((name, text), (fields, required)), full) in SCHEMAS.into_iter().zip(FIELDS).zip(full_bodies()) {
            let schema: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(COMMANDS.contains(&name));
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{name}"
            );
            assert_eq!(schema["title"], format!("intel.{name}"));
            assert_eq!(schema["additionalProperties"], false, "{name}");
            assert_eq!(names(&schema["properties"]), set(fields), "{name} properties");
            assert_eq!(names(&schema["required"]), set(required), "{name} required");
            // The hand list is the struct's: a body with every field parses,
            // one without a required field or with one more does not.
            assert_eq!(names(&full), set(fields), "{name} example");
            parse_command(name, full.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let minimal: serde_json::Map<String, Value> = full
                .as_object()
                .expect("object")
                .iter()
                .filter(|(k, _)| required.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            parse_command(name, Value::Object(minimal.clone())).unwrap_or_else(|e| panic!("{name} minimal: {e}"));
            for field in required {
                let mut without = minimal.clone();
                without.remove(*field);
                assert!(
                    parse_command(name, Value::Object(without)).is_err(),
                    "{name} without {field}"
                );
            }
            let mut more = minimal;
            more.insert("extra".into(), json!(1));
            assert!(parse_command(name, Value::Object(more)).is_err(), "{name} with extra");
        }
    }

    #[test]
    fn the_schemas_accept_what_the_commands_accept() {
        use concord_bus::schema::Schemas;
        let schemas = Schemas::compile(SCHEMAS).expect("every intel command schema compiles");
        for ((name, _), full) in SCHEMAS.into_iter().zip(full_bodies()) {
            assert_eq!(schemas.check(name, &full).expect("known"), Ok(()), "{name}");
            let mut more = full.clone();
            more["extra"] = json!(1);
            assert!(schemas.check(name, &more).expect("known").is_err(), "{name} with extra");
        }
        for (name, data) in [
            ("post_lead", json!({"lead_id": LEAD, "operation_id": OP, "summary": ""})),
            (
                "post_lead",
                json!({"lead_id": "42", "operation_id": OP, "summary": "s"}),
            ),
            (
                "post_lead",
                json!({"lead_id": LEAD, "operation_id": OP, "summary": "s", "subject": {"kind": "person", "description": "d", "date_of_birth": "12/04/1985"}}),
            ),
            // An amendment changes something.
            ("amend_lead", json!({"lead_id": LEAD, "reason": "r"})),
            (
                "request_notice",
                json!({"notice_id": NOTICE, "color": "crimson", "subject": {"kind": "person", "description": "d"}, "reason": "r"}),
            ),
            (
                "request_notice",
                json!({"notice_id": NOTICE, "color": "blue", "subject": {"kind": "person", "description": "d"}, "reason": "r", "recipients": []}),
            ),
            (
                "report_arrest",
                json!({"arrest_id": ARREST, "operation_id": OP, "person": {"name": "n"}, "location_country": "de"}),
            ),
        ] {
            assert!(
                schemas.check(name, &data).expect("known").is_err(),
                "{name} accepted {data}"
            );
        }
    }

    #[test]
    fn the_get_query_schema_names_the_three_kinds() {
        let text = include_str!("../../../schemas/queries/intel/get.schema.json");
        let schema: Value = serde_json::from_str(text).expect("get schema is JSON");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(names(&schema["properties"]), set(&["kind", "id", "country", "role"]));
        assert_eq!(names(&schema["required"]), set(&["kind", "id", "country"]));
        assert_eq!(
            schema["properties"]["kind"]["enum"],
            json!(["lead", "arrest", "notice"])
        );
        let schemas = concord_bus::schema::Schemas::compile([("get", text)]).expect("compiles");
        let ok = json!({"kind": "lead", "id": LEAD, "country": "DE", "role": "auditor"});
        assert_eq!(schemas.check("get", &ok).expect("known"), Ok(()));
        let bad = json!({"kind": "operation", "id": LEAD, "country": "DE"});
        assert!(schemas.check("get", &bad).expect("known").is_err());
    }

    // ------------------------------------------------------------ events as stored

    fn every_kind_of_event() -> Vec<Event> {
        vec![
            posted("DE", &[]),
            Event::LeadPosted(LeadPosted {
                details: Some("d\n\"quoted\"".into()),
                subject: Some(person_subject()),
                grading: Some(Grading {
                    reliability: Reliability::X,
                    accuracy: Accuracy::try_from(4).expect("4 is an accuracy"),
                }),
                ..match posted("DE", &["DE", "FR"]) {
                    Event::LeadPosted(e) => e,
                    _ => unreachable!(),
                }
            }),
            amended(),
            Event::LeadAmended(LeadAmended {
                reason: "r".into(),
                summary: Some("s".into()),
                details: Some(String::new()),
                subject: Some(object_subject()),
                grading: Some(Grading {
                    reliability: Reliability::C,
                    accuracy: Accuracy::try_from(3).expect("3 is an accuracy"),
                }),
                amended_at: LATER.into(),
            }),
            retracted(),
            reported("DE"),
            Event::ArrestReported(ArrestReported {
                lead_id: None,
                notice_id: None,
                ..match reported("ES") {
                    Event::ArrestReported(e) => e,
                    _ => unreachable!(),
                }
            }),
            requested("MC", None),
            requested("MC", Some(&["DE", "RS"])),
            published(),
            rejected(),
            cancelled(&reviewer("GS")),
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
            posted("DE", &["DE", "FR"]).data(),
            json!({
                "lead_id": LEAD,
                "operation_id": OP,
                "owner_country": "DE",
                "summary": "fingerprints at the jeweller's",
                "details": null,
                "subject": null,
                "restricted_to": ["DE", "FR"],
                "grading": null,
                "posted_by": "de-liaison",
                "posted_at": NOW,
            })
        );
        // Only what changed.
        assert_eq!(
            amended().data(),
            json!({"reason": "AFIS match", "summary": "fingerprints matched", "amended_at": NOW})
        );
        assert_eq!(
            retracted().data(),
            json!({"reason": "wrong prints", "retracted_at": NOW})
        );
        let requested_data = requested("MC", None).data();
        assert_eq!(requested_data["recipients"], Value::Null);
        assert_eq!(requested_data["operation_id"], Value::Null);
        assert_eq!(requested_data["color"], "red");
        assert_eq!(requested_data["requesting_country"], "MC");
        assert_eq!(requested_data["requested_by"], "mc-liaison");
        assert_eq!(
            names(&requested_data),
            set(&[
                "notice_id",
                "color",
                "subject",
                "reason",
                "offence",
                "warrant",
                "operation_id",
                "recipients",
                "requesting_country",
                "requested_by",
                "requested_at"
            ])
        );
        assert_eq!(
            names(&published().data()),
            set(&["reviewed_by", "reviewer_country", "reason", "grounds", "published_at"])
        );
        assert_eq!(
            names(&rejected().data()),
            set(&["reviewed_by", "reviewer_country", "reason", "grounds", "rejected_at"])
        );
        assert_eq!(
            cancelled(&liaison("MC")).data(),
            json!({"reason": "arrested", "cancelled_by": "mc-liaison", "cancelled_at": NOW})
        );
        assert_eq!(
            names(&reported("DE").data()),
            set(&[
                "arrest_id",
                "operation_id",
                "person",
                "location_country",
                "lead_id",
                "notice_id",
                "reporting_country",
                "reported_by",
                "reported_at"
            ])
        );
    }

    #[test]
    fn from_parts_refuses_unknown_types_and_malformed_data() {
        let e = Event::from_parts("lead.deleted", &json!({}));
        assert_eq!(e, Err("unknown intel event type \"lead.deleted\"".into()));
        for (t, data, contains) in [
            (
                "lead.retracted",
                json!({"reason": "r", "retracted_at": NOW, "extra": "x"}),
                "unknown field `extra`",
            ),
            ("lead.retracted", json!({"reason": "r"}), "missing field `retracted_at`"),
            ("notice.cancelled", json!(["r"]), "not a JSON object"),
            (
                "notice.published",
                json!({"reviewed_by": "x", "reviewer_country": "XX", "reason": "r", "grounds": ALL_HOLD, "published_at": NOW}),
                "\"XX\" is not an ISO 3166-1",
            ),
            (
                "lead.amended",
                json!({"reason": "r", "grading": {"reliability": "A", "accuracy": 9}, "amended_at": NOW}),
                "accuracy 9 is not 1, 2, 3 or 4",
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
        let mut retracted_lead = lead();
        retracted_lead.push(retracted());
        for (history, next, contains) in [
            (vec![], amended(), "lead.amended on an empty stream"),
            (vec![], published(), "notice.published on an empty stream"),
            (lead(), posted("DE", &[]), "lead.posted on a lead that is active"),
            (lead(), published(), "notice.published on a lead that is active"),
            (
                retracted_lead.clone(),
                amended(),
                "lead.amended on a lead that is retracted",
            ),
            (
                retracted_lead,
                retracted(),
                "lead.retracted on a lead that is retracted",
            ),
            (
                vec![reported("DE")],
                reported("DE"),
                "arrest.reported on an arrest already reported",
            ),
            (vec![reported("DE")], retracted(), "lead.retracted on an arrest"),
            (
                notice(NoticeStatus::Published),
                rejected(),
                "notice.rejected on a notice that is published",
            ),
            (
                notice(NoticeStatus::Rejected),
                published(),
                "notice.published on a notice that is rejected",
            ),
            (
                notice(NoticeStatus::Rejected),
                cancelled(&liaison("MC")),
                "notice.cancelled on a notice that is rejected",
            ),
            (
                notice(NoticeStatus::Cancelled),
                cancelled(&liaison("MC")),
                "notice.cancelled on a notice that is cancelled",
            ),
            (
                notice(NoticeStatus::Requested),
                requested("MC", None),
                "notice.requested on a notice that is requested",
            ),
        ] {
            let state = replay(&history);
            match try_evolve(state, &next) {
                Ok(s) => panic!("{} accepted: {s:?}", next.event_type()),
                Err(msg) => {
                    assert!(msg.starts_with("corrupt intel stream: "), "{msg}");
                    assert!(msg.contains(contains), "{msg} does not contain {contains:?}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "corrupt intel stream: lead.retracted on an empty stream")]
    fn evolve_panics_on_a_corrupt_stream() {
        let _ = replay(&[retracted()]);
    }

    // ------------------------------------------------------------ the operations view

    #[test]
    fn the_operations_view_follows_membership_and_status() {
        let v = ops();
        let op = v.get(OP).expect("opened");
        assert_eq!(op.lead_country, cc("FR"));
        assert_eq!(op.participants, ccs(&["DE", "ES", "MC"]).into_iter().collect());
        assert!(!op.closed);
        assert!(v.get(CLOSED_OP).expect("opened").closed);
        assert!(v.get(UNKNOWN_OP).is_none());
        for (c, takes_part) in [("FR", true), ("DE", true), ("MC", true), ("IT", false)] {
            assert_eq!(v.takes_part(OP, cc(c)), takes_part, "{c}");
        }
        assert!(!v.takes_part(UNKNOWN_OP, cc("FR")));

        let mut v = ops();
        apply(&mut v, OP, "participant.added", json!({"country": "IT"}));
        apply(&mut v, OP, "participant.removed", json!({"country": "ES"}));
        // Adding the lead is meaningless and changes nothing.
        apply(&mut v, OP, "participant.added", json!({"country": "FR"}));
        assert!(v.takes_part(OP, cc("IT")));
        assert!(!v.takes_part(OP, cc("ES")));
        assert_eq!(
            v.get(OP).expect("opened").participants,
            ccs(&["DE", "IT", "MC"]).into_iter().collect()
        );
        // Folding the opening again changes nothing.
        apply(
            &mut v,
            OP,
            "operation.opened",
            opened_data(OP, "FR", &["DE", "ES", "MC"]),
        );
        assert!(!v.takes_part(OP, cc("ES")));
        apply(
            &mut v,
            OP,
            "operation.closed",
            json!({"outcome": "done", "closed_at": NOW}),
        );
        assert!(v.get(OP).expect("opened").closed);
        assert!(v.takes_part(OP, cc("DE")), "a closed operation keeps its participants");
    }

    // ------------------------------------------------------------ small parts

    #[test]
    fn dates_of_birth_are_calendar_dates() {
        for ok in ["1985-04-12", "2000-02-29", "2024-02-29", "1900-12-31", "0001-01-01"] {
            assert!(is_full_date(ok), "{ok} refused");
        }
        for bad in [
            "",
            "1985-4-12",
            "1985-04-12T00:00:00Z",
            "1900-02-29",
            "2026-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "+985-04-12",
            "1985/04/12",
            "１９８５-04-12",
        ] {
            assert!(!is_full_date(bad), "{bad} accepted");
        }
    }

    #[test]
    fn accuracy_holds_1_to_4_only() {
        for n in 1..=4u8 {
            assert_eq!(Accuracy::try_from(n).map(Accuracy::get), Ok(n));
        }
        for n in [0u8, 5, 255] {
            assert!(Accuracy::try_from(n).is_err(), "{n}");
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
