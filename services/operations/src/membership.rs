//! Membership and status of operations as other services see them
//! (intel, deployments): a pure fold of this service's events, kept here
//! because this crate owns what its events mean. Followers get it from the
//! log through the kernel consumer; they never ask the operations service.
//!
//! Must not: do IO, or hold a rule of the services that use it.

use std::collections::{BTreeMap, BTreeSet};

use concord_core::CountryCode;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// One operation as another service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Default, Clone, Debug)]
pub struct OperationsView {
    operations: BTreeMap<Uuid, OperationInfo>,
}

impl OperationsView {
    /// Folds one operations event. `stream` is "operation-<uuid>". Task events
    /// and unknown types are ignored (Ok). Malformed data of a known type is
    /// Err, and so is an event of a known type for an operation never opened
    /// (a gap in what was read). A second `operation.opened` of the same
    /// operation is ignored, so that folding an event again changes nothing.
    pub fn apply(&mut self, stream: &str, event_type: &str, data: &Value) -> Result<(), String> {
        // The operations service's event data, as far as others need it.
        // Unknown fields are tolerated: that service may add some.
        #[derive(Deserialize)]
        struct Opened {
            operation_id: Uuid,
            lead_country: CountryCode,
            participants: Vec<CountryCode>,
        }
        #[derive(Deserialize)]
        struct Participant {
            country: CountryCode,
        }
        // Parsed only to refuse malformed data; no field of it is needed.
        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct Closed {
            outcome: String,
            closed_at: String,
        }
        fn body<'a, T: Deserialize<'a>>(event_type: &str, data: &'a Value) -> Result<T, String> {
            if !data.is_object() {
                return Err(format!("malformed operations {event_type} data: not a JSON object"));
            }
            T::deserialize(data).map_err(|e| format!("malformed operations {event_type} data: {e}"))
        }

        if !matches!(
            event_type,
            "operation.opened" | "participant.added" | "participant.removed" | "operation.closed"
        ) {
            return Ok(());
        }
        let id = stream
            .strip_prefix("operation-")
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("operations {event_type} on stream {stream:?}, not operation-<uuid>"))?;
        if event_type == "operation.opened" {
            let e: Opened = body(event_type, data)?;
            if e.operation_id != id {
                return Err(format!(
                    "operations operation.opened of {} on stream {stream}",
                    e.operation_id
                ));
            }
            self.operations.entry(id).or_insert_with(|| OperationInfo {
                lead_country: e.lead_country,
                participants: e.participants.into_iter().filter(|c| *c != e.lead_country).collect(),
                closed: false,
            });
            return Ok(());
        }
        // Parse before looking the operation up: malformed data is the
        // clearer error.
        enum Change {
            Add(CountryCode),
            Remove(CountryCode),
            Close,
        }
        let change = match event_type {
            "participant.added" => Change::Add(body::<Participant>(event_type, data)?.country),
            "participant.removed" => Change::Remove(body::<Participant>(event_type, data)?.country),
            _ => {
                body::<Closed>(event_type, data)?;
                Change::Close
            }
        };
        let op = self
            .operations
            .get_mut(&id)
            .ok_or_else(|| format!("operations {event_type} of operation {id}, never opened"))?;
        match change {
            Change::Add(c) if c != op.lead_country => {
                op.participants.insert(c);
            }
            Change::Add(_) => {}
            Change::Remove(c) => {
                op.participants.remove(&c);
            }
            Change::Close => op.closed = true,
        }
        Ok(())
    }

    pub fn get(&self, id: Uuid) -> Option<&OperationInfo> {
        self.operations.get(&id)
    }

    /// The lead country or a current participant of operation `id`.
    pub fn takes_part(&self, id: Uuid, country: CountryCode) -> bool {
        self.get(id).is_some_and(|op| op.takes_part(country))
    }
}
