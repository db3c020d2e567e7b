//! The audit's access log: every read through the gateway, recorded as an
//! event of the audit service's own log before the gateway answers it —
//! who (the event's actor), what (method, path, query string and the items
//! the answer held), and how it ended (the HTTP status: refused reads are
//! what oversight asks about first).
//!
//! One record is one stream (`access-<id>`, the id minted by the gateway
//! for the read), so records never wait on each other and a retried record
//! (same command id) answers its first result.
//!
//! Who sees the records: auditors only (they see everything); no country's
//! view holds them.
//!
//! Architecture invariant: no IO, no clock, no randomness.

use concord_core::Service;
use concord_core::decider::{Aggregate, Audience, Ctx, Rejection, StreamKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// Streams of the access log: `access-<id>`.
pub const STREAM: StreamKind = StreamKind("access");
/// Most items one record names (a page holds at most 500 items, a feed
/// page 500 events).
pub const ITEMS_MAX: usize = 1000;
/// Longest path or query string recorded, in bytes (the gateway refuses
/// longer URIs before anything is read).
pub const URI_PART_BYTES_MAX: usize = 2048;

/// One read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub access_id: Uuid,
    pub method: String,
    pub path: String,
    /// The query string, as sent (`None`: there was none).
    pub query: Option<String>,
    /// The HTTP status the reader got.
    pub status: u16,
    /// The streams the answer held (`lead-<id>` …), and the ids the path
    /// named (a refused read names what was asked for).
    pub items: Vec<String>,
}

/// A command, named by its variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    RecordAccess(Access),
}

/// An event, named by its variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    #[serde(rename = "access.recorded")]
    AccessRecorded(Access),
}

/// The access log answers no query of its own: the audit service's
/// queries (`access` among them) read its index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum Query {}

/// The access log's contract.
pub struct AccessLog;

impl Aggregate for AccessLog {
    const SERVICE: Service = Service::Audit;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    /// The record, once made.
    type State = Option<Access>;
    type Facts = ();

    fn stream(command: &Command) -> String {
        let Command::RecordAccess(a) = command;
        STREAM.stream(a.access_id)
    }

    fn decide(state: &Option<Access>, command: &Command, _: &(), _: &Ctx) -> Result<Vec<Event>, Rejection> {
        let Command::RecordAccess(a) = command;
        if state.is_some() {
            return Err(Rejection::Conflict(format!(
                "access {} is already recorded",
                a.access_id
            )));
        }
        if a.items.len() > ITEMS_MAX {
            return Err(Rejection::Invalid(format!("a record names at most {ITEMS_MAX} items")));
        }
        Ok(vec![Event::AccessRecorded(a.clone())])
    }

    fn evolve(state: Option<Access>, event: &Event) -> Result<Option<Access>, String> {
        let Event::AccessRecorded(a) = event;
        match state {
            None => Ok(Some(a.clone())),
            Some(_) => Err(format!("access {} recorded twice on its stream", a.access_id)),
        }
    }

    /// Auditors only, who see everything anyway.
    fn audience(_: &Option<Access>, _: &()) -> Audience {
        Audience::nobody()
    }

    fn query_stream(query: &Query) -> String {
        match *query {}
    }

    fn answer(query: &Query, _: &Option<Access>, _: u64, _: &()) -> Result<Value, Rejection> {
        match *query {}
    }

    fn view(state: &Option<Access>) -> Value {
        json!(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::{Actor, CountryCode, Role};

    fn ctx() -> Ctx {
        Ctx {
            actor: Actor {
                sub: "de-liaison".into(),
                role: Role::Liaison,
                country: CountryCode::parse("DE").expect("DE"),
            },
            now: "2026-11-30T10:00:00.000000Z".into(),
        }
    }

    fn read() -> Access {
        Access {
            access_id: Uuid::now_v7(),
            method: "GET".into(),
            path: "/v1/countries/DE/view".into(),
            query: None,
            status: 200,
            items: vec![format!("lead-{}", Uuid::now_v7())],
        }
    }

    #[test]
    fn a_read_is_recorded_once() {
        let a = read();
        let cmd = Command::RecordAccess(a.clone());
        let events = AccessLog::decide(&None, &cmd, &(), &ctx()).expect("recorded");
        assert_eq!(events, [Event::AccessRecorded(a.clone())]);
        let state = AccessLog::evolve(None, &events[0]).expect("folds");
        assert!(matches!(
            AccessLog::decide(&state, &cmd, &(), &ctx()),
            Err(Rejection::Conflict(_))
        ));
        assert!(AccessLog::evolve(state, &events[0]).is_err());
        assert_eq!(AccessLog::stream(&cmd), format!("access-{}", a.access_id));
        assert!(!AccessLog::audience(&None, &()).admits(&concord_core::decider::Viewer {
            country: CountryCode::parse("DE").expect("DE"),
            role: Role::Liaison
        }));
    }

    #[test]
    fn a_record_names_a_bounded_number_of_items() {
        let mut a = read();
        a.items = (0..=ITEMS_MAX).map(|i| format!("lead-{i}")).collect();
        let cmd = Command::RecordAccess(a);
        assert!(matches!(
            AccessLog::decide(&None, &cmd, &(), &ctx()),
            Err(Rejection::Invalid(_))
        ));
    }
}
