//! The intel contract: leads, arrests and notices with their compliance
//! review, as a pure decider (`Intel`, the kernel's typed `Aggregate`).
//!
//! Three kinds of aggregate share the intel log, each in its own stream: a
//! lead (`lead-<id>`, `lead`), an arrest (`arrest-<id>`, `arrest`) and a
//! notice (`notice-<id>`, `notice`). Each module holds its commands, events,
//! state and its part of `decide` and `evolve`; this one holds the values
//! they share, the `Command`, `Event` and `Query` enums whose variant names
//! are the command names (`post_lead` …) and event types (`lead.posted` …),
//! and the one place visibility is written: `Intel::audience`.
//!
//! What intel knows of operations (the lead country, the participants,
//! whether closed) is the operations contract's `OperationsView`, folded
//! from the operations log: the contract's `Facts`.
//!
//! Order of the checks, so that the answer a caller gets never says more
//! than the caller may know:
//!
//! 1. no such lead or notice, or the caller is not in its audience → the
//!    same `not_found`; for a command that names an operation (`post_lead`,
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
//! Choices where docs/design.md is silent:
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
//! actor come in `Ctx`, new ids in the command, operations in the facts.

pub mod arrest;
pub mod lead;
pub mod notice;

use std::fmt;

use concord_core::decider::{Aggregate, Audience, Ctx, Rejection, Viewer, required_text};
use concord_core::{Actor, CountryCode, Role, Service};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

pub use self::arrest::{Arrest, ArrestReported, Person, ReportArrest};
pub use self::lead::{
    AMENDMENTS_MAX, AmendLead, DETAILS_CHARS_MAX, Lead, LeadAmended, LeadPosted, LeadRetracted, LeadStatus, PostLead,
    RESTRICTED_TO_MAX, RetractLead, SUMMARY_CHARS_MAX,
};
pub use self::notice::{
    CancelNotice, Decision, Grounds, Notice, NoticeCancelled, NoticePublished, NoticeRejected, NoticeRequested,
    NoticeStatus, OFFENCE_CHARS_MAX, RECIPIENTS_MAX, RequestNotice, Review, ReviewNotice, WARRANT_CHARS_MAX,
};
use crate::operations::membership::OperationsView;

/// Longest reason (of an amendment, a retraction, a notice request, a
/// review or a cancellation), in characters.
pub const REASON_CHARS_MAX: usize = 4000;
/// Longest description of a subject, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 2000;
/// Longest name of a person or an object, in characters.
pub const NAME_CHARS_MAX: usize = 200;

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

/// A notice's colour (docs/design.md). An unknown colour does not parse.
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

// ---------------------------------------------------------------- commands, events, state

/// A command, named by its variant (`post_lead`, `review_notice` …).
// A command lives for one request; boxing its variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    PostLead(PostLead),
    AmendLead(AmendLead),
    RetractLead(RetractLead),
    ReportArrest(ReportArrest),
    RequestNotice(RequestNotice),
    ReviewNotice(ReviewNotice),
    CancelNotice(CancelNotice),
}

/// An event, named by its variant (the envelope's `type`).
// Events are decoded one at a time; boxing their variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "lead.posted")]
    LeadPosted(LeadPosted),
    #[serde(rename = "lead.amended")]
    LeadAmended(LeadAmended),
    #[serde(rename = "lead.retracted")]
    LeadRetracted(LeadRetracted),
    #[serde(rename = "arrest.reported")]
    ArrestReported(ArrestReported),
    #[serde(rename = "notice.requested")]
    NoticeRequested(NoticeRequested),
    #[serde(rename = "notice.published")]
    NoticePublished(NoticePublished),
    #[serde(rename = "notice.rejected")]
    NoticeRejected(NoticeRejected),
    #[serde(rename = "notice.cancelled")]
    NoticeCancelled(NoticeCancelled),
}

/// The state of one stream: `Empty` (the default) until its first event.
// One state per command, rebuilt and dropped; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[default]
    Empty,
    Lead(Lead),
    Arrest(Arrest),
    Notice(Notice),
}

impl State {
    /// What the `get` query answers (`null` for `Empty`). The stream version
    /// is not part of it: the caller adds it.
    pub fn view(&self) -> Value {
        match self {
            State::Empty => Value::Null,
            State::Lead(l) => l.view(),
            State::Arrest(a) => a.view(),
            State::Notice(n) => n.view(),
        }
    }
}

// ---------------------------------------------------------------- queries

/// What `get` reads; a stream holds one kind of aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Lead,
    Arrest,
    Notice,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Lead => "lead",
            Kind::Arrest => "arrest",
            Kind::Notice => "notice",
        }
    }
}

/// `get`: a lead, an arrest or a notice as the asker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    pub kind: Kind,
    pub id: Uuid,
    pub country: CountryCode,
    /// Auditors and reviewers see more; anyone else as a liaison.
    #[serde(default)]
    pub role: Option<Role>,
}

/// A query, named by its variant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    Get(Get),
}

/// The stream of the `kind` aggregate `id` (`lead-<id>` …).
pub fn stream_of(kind: Kind, id: Uuid) -> String {
    format!("{}-{id}", kind.as_str())
}

// ---------------------------------------------------------------- the contract

/// The intel service's contract.
pub struct Intel;

impl Aggregate for Intel {
    const SERVICE: Service = Service::Intel;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    type State = State;
    type Facts = OperationsView;

    fn stream(command: &Command) -> String {
        match command {
            Command::PostLead(c) => stream_of(Kind::Lead, c.lead_id),
            Command::AmendLead(c) => stream_of(Kind::Lead, c.lead_id),
            Command::RetractLead(c) => stream_of(Kind::Lead, c.lead_id),
            Command::ReportArrest(c) => stream_of(Kind::Arrest, c.arrest_id),
            Command::RequestNotice(c) => stream_of(Kind::Notice, c.notice_id),
            Command::ReviewNotice(c) => stream_of(Kind::Notice, c.notice_id),
            Command::CancelNotice(c) => stream_of(Kind::Notice, c.notice_id),
        }
    }

    fn decide(state: &State, command: &Command, ops: &OperationsView, ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
        match command {
            Command::PostLead(c) => lead::decide_post(state, c, ops, ctx),
            Command::AmendLead(c) => lead::decide_amend(state, c, ops, ctx),
            Command::RetractLead(c) => lead::decide_retract(state, c, ops, ctx),
            Command::ReportArrest(c) => arrest::decide_report(state, c, ops, ctx),
            Command::RequestNotice(c) => notice::decide_request(state, c, ops, ctx),
            Command::ReviewNotice(c) => notice::decide_review(state, c, ops, ctx),
            Command::CancelNotice(c) => notice::decide_cancel(state, c, ops, ctx),
        }
    }

    /// The state after `event`, or why `event` cannot follow `state`.
    ///
    /// It cannot when the stream would make no sense: a first event that
    /// does not create a lead, an arrest or a notice; a creation on a stream
    /// that already holds one; an event of another kind of aggregate; an
    /// amendment or a retraction of a retracted lead; a review of a notice
    /// that is not `requested`, a cancellation of one that is neither
    /// `requested` nor `published`. The log only ever holds what `decide`
    /// produced, under a hash chain, so such a sequence means a corrupt log,
    /// and carrying on from a silently skipped event would answer with a
    /// wrong state.
    fn evolve(state: State, event: &Event) -> Result<State, String> {
        let next = match (state, event) {
            (State::Empty, Event::LeadPosted(e)) => Ok(State::Lead(Lead::posted(e))),
            (State::Empty, Event::ArrestReported(e)) => Ok(State::Arrest(Arrest::reported(e))),
            (State::Empty, Event::NoticeRequested(e)) => Ok(State::Notice(Notice::requested(e))),
            (State::Empty, _) => Err("an empty stream".to_owned()),
            (State::Lead(lead), e) => lead.evolve(e).map(State::Lead),
            (State::Arrest(_), _) => Err("an arrest already reported".to_owned()),
            (State::Notice(notice), e) => notice.evolve(e).map(State::Notice),
        };
        next.map_err(|what| format!("corrupt intel stream: {} on {what}", crate::tag_of(event)))
    }

    /// Auditors always (the kernel's `Audience` admits them); then per kind:
    /// a lead its owner and the countries of its operation its restriction
    /// allows, an arrest its reporter and the countries of its operation, a
    /// notice its requester and reviewers until published, then everyone or
    /// its recipients. Membership is the operations log's as intel last
    /// read it, so a removed participant no longer sees what it saw.
    fn audience(state: &State, ops: &OperationsView) -> Audience {
        match state {
            State::Empty => Audience::nobody(),
            State::Lead(lead) => lead.audience(ops),
            State::Arrest(arrest) => arrest.audience(ops),
            State::Notice(notice) => notice.audience(),
        }
    }

    fn view(state: &State) -> Value {
        state.view()
    }

    fn query_stream(query: &Query) -> String {
        let Query::Get(get) = query;
        stream_of(get.kind, get.id)
    }

    fn answer(query: &Query, state: &State, version: u64, ops: &OperationsView) -> Result<Value, Rejection> {
        let Query::Get(get) = query;
        let kind = get.kind.as_str();
        let viewer = Viewer {
            country: get.country,
            role: get.role.unwrap_or(Role::Liaison),
        };
        // Same answer for unknown and invisible: existence must not leak.
        if !seen_by(state, ops, &viewer) {
            return Err(Rejection::NotFound(format!("{kind} not found")));
        }
        let mut view = state.view();
        view["version"] = json!(version);
        Ok(json!({ kind: view }))
    }
}

// ---------------------------------------------------------------- checks every kind makes

/// Whether `viewer` may see the stream in `state`, as its audience says;
/// asked by `decide` (step 1) and by the `get` query alike. An empty stream
/// holds nothing to see, auditors included, so an unknown id and a hidden
/// one get the same answer.
fn seen_by(state: &State, ops: &OperationsView, viewer: &Viewer) -> bool {
    *state != State::Empty && Intel::audience(state, ops).admits(viewer)
}

/// The actor of a command, as a viewer of the stream it addresses.
fn viewer(actor: &Actor) -> Viewer {
    Viewer {
        country: actor.country,
        role: actor.role,
    }
}

/// The countries taking part in operation `id`: its lead and current
/// participants (none while intel does not know it).
fn taking_part(ops: &OperationsView, id: Uuid) -> impl Iterator<Item = CountryCode> + '_ {
    ops.get(id)
        .into_iter()
        .flat_map(|op| op.participants.iter().copied().chain([op.lead_country]))
}

fn liaison_only(actor: &Actor, what: &str) -> Result<(), Rejection> {
    if actor.role == Role::Liaison {
        Ok(())
    } else {
        Err(Rejection::Forbidden(format!("only a liaison can {what}")))
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
    // A rule of the day, not of the shape (422, not 400): the same request
    // is well-formed, and a schema cannot say "not after today".
    if now.get(..10).is_some_and(|today| dob > today) {
        return Err(Rejection::RuleViolated(format!("{field} {dob} is in the future")));
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

#[cfg(test)]
mod tests;
