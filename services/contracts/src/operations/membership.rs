//! Membership and status of operations as other services see them
//! (intel, deployments): a pure fold of the operations events, kept with
//! the contract because it owns what its events mean. Followers get it from the
//! log through the kernel consumer; they never ask the operations service.
//!
//! Must not: do IO, or hold a rule of the services that use it.

use std::collections::{BTreeMap, BTreeSet};

use concord_core::decider::Rejection;
use concord_core::{Actor, CountryCode, Role};
use uuid::Uuid;

use super::Event;

/// One operation as another service knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperationInfo {
    pub lead_country: CountryCode,
    /// Current participants, lead excluded.
    pub participants: BTreeSet<CountryCode>,
    pub closed: bool,
}

impl OperationInfo {
    /// The lead or a current participant (a removed one no longer is).
    pub fn takes_part(&self, country: CountryCode) -> bool {
        country == self.lead_country || self.participants.contains(&country)
    }
}

/// What another service knows of operations, folded from the operations
/// service's events (it never calls that service).
#[derive(Default, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OperationsView {
    operations: BTreeMap<Uuid, OperationInfo>,
}

impl OperationsView {
    /// Folds one event of operation `operation_id` (the id in its stream
    /// name). Task events change nothing. An event of an operation never
    /// opened is Err (a gap in what was read); a second `operation.opened`
    /// of the same operation is ignored, so folding an event again changes
    /// nothing.
    pub fn apply(&mut self, operation_id: Uuid, event: &Event) -> Result<(), String> {
        if let Event::OperationOpened(e) = event {
            if e.operation_id != operation_id {
                return Err(format!(
                    "operations operation.opened of {} on stream of {operation_id}",
                    e.operation_id
                ));
            }
            self.operations.entry(operation_id).or_insert_with(|| OperationInfo {
                lead_country: e.lead_country,
                participants: e
                    .participants
                    .iter()
                    .copied()
                    .filter(|c| *c != e.lead_country)
                    .collect(),
                closed: false,
            });
            return Ok(());
        }
        if matches!(event, Event::TaskAssigned(_) | Event::TaskStatusChanged(_)) {
            return Ok(());
        }
        let op = self
            .operations
            .get_mut(&operation_id)
            .ok_or_else(|| format!("an operations event of operation {operation_id}, never opened"))?;
        match event {
            Event::ParticipantAdded(e) if e.country != op.lead_country => {
                op.participants.insert(e.country);
            }
            Event::ParticipantRemoved(e) => {
                op.participants.remove(&e.country);
            }
            Event::OperationClosed(_) => op.closed = true,
            _ => {}
        }
        Ok(())
    }

    pub fn get(&self, id: Uuid) -> Option<&OperationInfo> {
        self.operations.get(&id)
    }

    /// The view that holds `operations` (as [`OperationsView::get`] gave
    /// them): a follower that keeps each operation apart, so it writes
    /// only what changed, reads them back with this.
    pub fn from_operations(operations: impl IntoIterator<Item = (Uuid, OperationInfo)>) -> OperationsView {
        OperationsView {
            operations: operations.into_iter().collect(),
        }
    }

    /// Operation `id` for a command of `actor` that needs it open: unknown
    /// and not visible to the actor's country answer the same `not_found`
    /// (existence must not leak; auditors see every operation), a closed
    /// one `rule_violated`.
    pub fn open_operation_seen_by(&self, id: Uuid, actor: &Actor) -> Result<&OperationInfo, Rejection> {
        let op = match self.get(id) {
            Some(op) if op.takes_part(actor.country) || actor.role == Role::Auditor => op,
            _ => return Err(Rejection::NotFound("operation not found".into())),
        };
        if op.closed {
            return Err(Rejection::RuleViolated("operation is closed".into()));
        }
        Ok(op)
    }

    /// The lead country or a current participant of operation `id`.
    pub fn takes_part(&self, id: Uuid, country: CountryCode) -> bool {
        self.get(id).is_some_and(|op| op.takes_part(country))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OperationClosed, OperationOpened, ParticipantAdded, ParticipantRemoved, TaskAssigned};
    use super::*;

    const OP: Uuid = Uuid::from_u128(0xaa);
    const OTHER: Uuid = Uuid::from_u128(0xbb);

    fn cc(c: &str) -> CountryCode {
        CountryCode::parse(c).expect("country")
    }

    fn opened(id: Uuid, lead: &str, participants: &[&str]) -> Event {
        Event::OperationOpened(OperationOpened {
            operation_id: id,
            title: "t".into(),
            objective: "o".into(),
            lead_country: cc(lead),
            participants: participants.iter().map(|c| cc(c)).collect(),
            opened_at: "2026-11-23T09:30:00.000000Z".into(),
        })
    }

    #[test]
    fn membership_and_status_follow_the_events() {
        let mut v = OperationsView::default();
        v.apply(OP, &opened(OP, "FR", &["FR", "DE"])).expect("opened");
        assert_eq!(
            v.get(OP).expect("known").participants,
            [cc("DE")].into(),
            "the lead is no participant"
        );
        v.apply(OP, &Event::ParticipantAdded(ParticipantAdded { country: cc("IT") }))
            .expect("added");
        v.apply(OP, &Event::ParticipantAdded(ParticipantAdded { country: cc("FR") }))
            .expect("the lead added changes nothing");
        v.apply(OP, &Event::ParticipantRemoved(ParticipantRemoved { country: cc("DE") }))
            .expect("removed");
        let task = Event::TaskAssigned(TaskAssigned {
            task_id: OTHER,
            assignee_country: cc("IT"),
            title: "t".into(),
            details: String::new(),
            due_at: None,
        });
        v.apply(OP, &task).expect("tasks change nothing");
        assert!(v.takes_part(OP, cc("IT")) && v.takes_part(OP, cc("FR")) && !v.takes_part(OP, cc("DE")));
        // Folding an event again changes nothing.
        v.apply(OP, &opened(OP, "ES", &[]))
            .expect("a second opening is ignored");
        assert_eq!(v.get(OP).expect("known").lead_country, cc("FR"));
        v.apply(
            OP,
            &Event::OperationClosed(OperationClosed {
                outcome: "done".into(),
                closed_at: "2026-11-24T09:30:00.000000Z".into(),
            }),
        )
        .expect("closed");
        assert!(v.get(OP).expect("known").closed);
        assert!(v.takes_part(OP, cc("IT")), "a closed operation keeps its participants");
    }

    #[test]
    fn gaps_and_foreign_streams_are_errors() {
        let mut v = OperationsView::default();
        let err = v
            .apply(OP, &Event::ParticipantAdded(ParticipantAdded { country: cc("IT") }))
            .expect_err("never opened");
        assert!(err.contains("never opened"), "{err}");
        let err = v.apply(OTHER, &opened(OP, "FR", &[])).expect_err("another stream");
        assert!(err.contains("on stream of"), "{err}");
    }
}
