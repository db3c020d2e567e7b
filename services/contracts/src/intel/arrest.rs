//! Arrests (stream `arrest-<id>`): reported once by a liaison in an open
//! operation its country takes part in; nothing changes them afterwards.

use concord_core::CountryCode;
use concord_core::decider::{Audience, Ctx, Rejection, required_text};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Event, NAME_CHARS_MAX, State, check_date_of_birth, liaison_only, not_the_secretariat, taking_part};
use crate::operations::membership::OperationsView;

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

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    pub(super) fn reported(e: &ArrestReported) -> Arrest {
        Arrest {
            id: e.arrest_id,
            operation_id: e.operation_id,
            person: e.person.clone(),
            location_country: e.location_country,
            lead_id: e.lead_id,
            notice_id: e.notice_id,
            reporting_country: e.reporting_country,
            reported_by: e.reported_by.clone(),
            reported_at: e.reported_at.clone(),
        }
    }

    /// The reporting country, always, and the countries taking part in the
    /// operation (its lead and current participants).
    pub(super) fn audience(&self, ops: &OperationsView) -> Audience {
        Audience::countries(taking_part(ops, self.operation_id).chain([self.reporting_country]))
    }

    pub(super) fn view(&self) -> Value {
        json!({
            "kind": "arrest",
            "id": self.id,
            "status": "reported",
            "operation_id": self.operation_id,
            "person": self.person,
            "location_country": self.location_country,
            "lead_id": self.lead_id,
            "notice_id": self.notice_id,
            "reporting_country": self.reporting_country,
            "reported_by": self.reported_by,
            "reported_at": self.reported_at,
        })
    }
}

pub(super) fn decide_report(
    state: &State,
    cmd: &ReportArrest,
    ops: &OperationsView,
    ctx: &Ctx,
) -> Result<Vec<Event>, Rejection> {
    let actor = &ctx.actor;
    ops.open_operation_seen_by(cmd.operation_id, actor)?;
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
