//! Notices (stream `notice-<id>`): requested by a liaison, reviewed once by
//! a reviewer of another country, published or rejected, and cancelled; a
//! request with `recipients` is a diffusion to those countries only.
//!
//! | from        | to                                   |
//! |-------------|--------------------------------------|
//! | `requested` | `published`, `rejected`, `cancelled` |
//! | `published` | `cancelled`                          |
//! | `rejected`  | — (final)                            |
//! | `cancelled` | — (final)                            |

use std::collections::BTreeSet;
use std::fmt;

use concord_core::decider::{Audience, Ctx, Rejection, bounded_text, required_text};
use concord_core::{Actor, CountryCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Color, Event, REASON_CHARS_MAX, State, Subject, check_subject, liaison_only, seen_by, viewer};
use crate::operations::membership::OperationsView;

/// Longest offence of a notice request, in characters: its legal
/// qualification, not the facts (those are the reason).
pub const OFFENCE_CHARS_MAX: usize = 500;
/// Longest warrant of a notice request, in characters: a reference to the
/// arrest warrant, not the warrant itself.
pub const WARRANT_CHARS_MAX: usize = 200;
/// Most recipients of a diffusion. Rationale: past that many a diffusion
/// is a published notice in all but name, and should be reviewed as one.
pub const RECIPIENTS_MAX: usize = 100;

// ---------------------------------------------------------------- values

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

// ---------------------------------------------------------------- events

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

// ---------------------------------------------------------------- state

/// Where a notice stands (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeStatus {
    Requested,
    Published,
    Rejected,
    Cancelled,
}

impl NoticeStatus {
    /// Every status, in the order of the lifecycle (lists and filters name them).
    pub const ALL: [NoticeStatus; 4] = [
        NoticeStatus::Requested,
        NoticeStatus::Published,
        NoticeStatus::Rejected,
        NoticeStatus::Cancelled,
    ];

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Review {
    pub decision: Decision,
    pub reviewed_by: String,
    pub reviewer_country: CountryCode,
    pub reason: String,
    pub grounds: Grounds,
    /// `published_at` or `rejected_at`.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub(super) fn requested(e: &NoticeRequested) -> Notice {
        Notice {
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
        }
    }

    /// The notice after `event`, or what the notice is when `event` cannot
    /// follow it (for the contract's message about a corrupt stream).
    pub(super) fn evolve(mut self, event: &Event) -> Result<Notice, String> {
        match event {
            Event::NoticePublished(e) if self.status == NoticeStatus::Requested => {
                self.status = NoticeStatus::Published;
                self.review = Some(Review {
                    decision: Decision::Approve,
                    reviewed_by: e.reviewed_by.clone(),
                    reviewer_country: e.reviewer_country,
                    reason: e.reason.clone(),
                    grounds: e.grounds,
                    at: e.published_at.clone(),
                });
                Ok(self)
            }
            Event::NoticeRejected(e) if self.status == NoticeStatus::Requested => {
                self.status = NoticeStatus::Rejected;
                self.review = Some(Review {
                    decision: Decision::Reject,
                    reviewed_by: e.reviewed_by.clone(),
                    reviewer_country: e.reviewer_country,
                    reason: e.reason.clone(),
                    grounds: e.grounds,
                    at: e.rejected_at.clone(),
                });
                Ok(self)
            }
            Event::NoticeCancelled(e) if matches!(self.status, NoticeStatus::Requested | NoticeStatus::Published) => {
                self.status = NoticeStatus::Cancelled;
                self.cancellation = Some(e.clone());
                Ok(self)
            }
            _ => Err(format!("a notice that is {}", self.status)),
        }
    }

    /// Approved at some point (it may have been cancelled since).
    pub fn was_published(&self) -> bool {
        self.review.as_ref().is_some_and(|r| r.decision == Decision::Approve)
    }

    /// The requesting country and every reviewer, always; once published
    /// (and after a cancellation of a published notice), every country, or
    /// for a diffusion its recipients. A rejection stays private.
    pub(super) fn audience(&self) -> Audience {
        if !self.was_published() {
            return Audience::countries([self.requesting_country]).and_role(Role::Reviewer);
        }
        match &self.recipients {
            None => Audience::everyone(),
            Some(recipients) => Audience::countries(recipients.iter().copied().chain([self.requesting_country]))
                .and_role(Role::Reviewer),
        }
    }

    pub(super) fn view(&self) -> Value {
        json!({
            "kind": "notice",
            "id": self.id,
            "status": self.status,
            "color": self.color,
            "subject": self.subject,
            "reason": self.reason,
            "offence": self.offence,
            "warrant": self.warrant,
            "operation_id": self.operation_id,
            "diffusion": self.recipients.is_some(),
            "recipients": self.recipients,
            "requesting_country": self.requesting_country,
            "requested_by": self.requested_by,
            "requested_at": self.requested_at,
            "review": self.review,
            "cancellation": self.cancellation,
        })
    }
}

// ---------------------------------------------------------------- decide

pub(super) fn decide_request(
    state: &State,
    cmd: &RequestNotice,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    if let Some(operation_id) = cmd.operation_id {
        ops.open_operation_seen_by(operation_id, actor)?;
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

pub(super) fn decide_review(
    state: &State,
    cmd: &ReviewNotice,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let notice = notice_seen_by(state, ops, actor)?;
    if notice.status != NoticeStatus::Requested {
        return Err(Rejection::RuleViolated(format!(
            "notice is already {}; it is reviewed once",
            notice.status
        )));
    }
    // The secretariat reviews (docs/design.md, Users): a reviewer of any
    // other country is refused, as any other role is.
    if actor.role != Role::Reviewer || !actor.country.is_secretariat() {
        return Err(Rejection::Forbidden(
            "only a reviewer of the secretariat (GS) can review a notice".into(),
        ));
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

pub(super) fn decide_cancel(
    state: &State,
    cmd: &CancelNotice,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let notice = notice_seen_by(state, ops, actor)?;
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

/// Step 1 for a notice command.
fn notice_seen_by<'a>(state: &'a State, ops: &OperationsView, actor: &Actor) -> Result<&'a Notice, Rejection> {
    match state {
        State::Notice(notice) if seen_by(state, ops, &viewer(actor)) => Ok(notice),
        _ => Err(Rejection::NotFound("notice not found".into())),
    }
}
