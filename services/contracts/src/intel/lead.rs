//! Leads (stream `lead-<id>`): tips a liaison posts to an operation its
//! country takes part in, amends with a reason, and retracts; the record
//! stays, marked retracted.

use std::collections::BTreeSet;

use concord_core::decider::{Audience, Ctx, Rejection, bounded_text, required_text};
use concord_core::{Actor, CountryCode, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    Event, Grading, REASON_CHARS_MAX, State, Subject, check_subject, liaison_only, seen_by, taking_part, viewer,
};
use crate::operations::membership::OperationsView;

/// Longest summary of a lead, in characters: a line in a list, not a
/// document; the details hold the rest.
pub const SUMMARY_CHARS_MAX: usize = 500;
/// Longest details of a lead, in characters.
pub const DETAILS_CHARS_MAX: usize = 4000;
/// Most countries a lead's `restricted_to` lists: every country of an
/// operation (its lead and at most 50 participants).
pub const RESTRICTED_TO_MAX: usize = 51;
/// Most amendments one lead holds over its life. Rationale: the whole state
/// is rebuilt for every command, so it must stay small; a lead rewritten
/// this often is a new lead.
pub const AMENDMENTS_MAX: usize = 1000;

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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub(super) fn posted(e: &LeadPosted) -> Lead {
        Lead {
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
        }
    }

    /// The lead after `event`, or what the lead is when `event` cannot
    /// follow it (for the contract's message about a corrupt stream).
    pub(super) fn evolve(mut self, event: &Event) -> Result<Lead, String> {
        match event {
            Event::LeadAmended(e) if self.status == LeadStatus::Active => {
                if let Some(summary) = &e.summary {
                    self.summary = summary.clone();
                }
                if let Some(details) = &e.details {
                    self.details = Some(details.clone());
                }
                if let Some(subject) = &e.subject {
                    self.subject = Some(subject.clone());
                }
                if let Some(grading) = e.grading {
                    self.grading = Some(grading);
                }
                self.amendments.push(e.clone());
                Ok(self)
            }
            Event::LeadRetracted(e) if self.status == LeadStatus::Active => {
                self.status = LeadStatus::Retracted;
                self.retraction = Some(e.clone());
                Ok(self)
            }
            _ => Err(format!("a lead that is {}", self.status.as_str())),
        }
    }

    /// The owner, always; then the countries taking part in the operation
    /// (its lead and current participants), all of them or, with a
    /// restriction, the listed ones only.
    pub(super) fn audience(&self, ops: &OperationsView) -> Audience {
        let allowed = taking_part(ops, self.operation_id)
            .filter(|c| self.restricted_to.is_empty() || self.restricted_to.contains(c));
        Audience::countries(allowed.chain([self.owner_country]))
    }

    pub(super) fn view(&self) -> Value {
        json!({
            "kind": "lead",
            "id": self.id,
            "status": self.status,
            "operation_id": self.operation_id,
            "owner_country": self.owner_country,
            "summary": self.summary,
            "details": self.details,
            "subject": self.subject,
            "restricted_to": self.restricted_to,
            "grading": self.grading,
            "posted_by": self.posted_by,
            "posted_at": self.posted_at,
            "amendments": self.amendments,
            "retraction": self.retraction,
        })
    }
}

// ---------------------------------------------------------------- decide

pub(super) fn decide_post(
    state: &State,
    cmd: &PostLead,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let op = ops.open_operation_seen_by(cmd.operation_id, actor)?;
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

pub(super) fn decide_amend(
    state: &State,
    cmd: &AmendLead,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let lead = lead_seen_by(state, ops, actor)?;
    if lead.status == LeadStatus::Retracted {
        return Err(Rejection::RuleViolated("lead is retracted".into()));
    }
    // Write access follows current membership: a country removed from the
    // operation is answered as one that never took part.
    ops.open_operation_seen_by(lead.operation_id, actor)?;
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

pub(super) fn decide_retract(
    state: &State,
    cmd: &RetractLead,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    let lead = lead_seen_by(state, ops, actor)?;
    if lead.status == LeadStatus::Retracted {
        return Err(Rejection::RuleViolated("lead is already retracted".into()));
    }
    // No check that the operation is open (see the contract's choices), but
    // write access follows current membership, as for an amendment.
    if !ops.takes_part(lead.operation_id, actor.country) && actor.role != Role::Auditor {
        return Err(Rejection::NotFound("operation not found".into()));
    }
    owner_liaison_only(lead, actor, "retract the lead")?;
    required_text("reason", &cmd.reason, REASON_CHARS_MAX)?;
    Ok(vec![Event::LeadRetracted(LeadRetracted {
        reason: cmd.reason.clone(),
        retracted_at: ctx.now.clone(),
    })])
}

/// Step 1 for a lead command.
fn lead_seen_by<'a>(state: &'a State, ops: &OperationsView, actor: &Actor) -> Result<&'a Lead, Rejection> {
    match state {
        State::Lead(lead) if seen_by(state, ops, &viewer(actor)) => Ok(lead),
        _ => Err(Rejection::NotFound("lead not found".into())),
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
