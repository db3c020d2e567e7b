//! What every service's contract shares: the typed [`Aggregate`] (commands,
//! events, state, `decide`, `evolve`, who may see a stream), the one
//! [`Rejection`] a decider answers, and the small checks every decider
//! makes on text.
//!
//! Pure: no IO, so contracts depend on it without fjall or NATS, and the
//! projector and the audit service fold and filter with the very functions
//! the writing services use.
//!
//! Must not: hold a rule of any service.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::country::CountryCode;
use crate::envelope::{Actor, Role, Service};
use crate::reply::ErrorCode;

/// A refused command: a business answer with a stable code, never a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    RuleViolated(String),
    #[error("{0}")]
    Conflict(String),
}

impl Rejection {
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejection::Invalid(_) => ErrorCode::Invalid,
            Rejection::Forbidden(_) => ErrorCode::Forbidden,
            Rejection::NotFound(_) => ErrorCode::NotFound,
            Rejection::RuleViolated(_) => ErrorCode::RuleViolated,
            Rejection::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

/// What `decide` may know besides the state, the command and the facts:
/// who asks, and the service's clock when it decided (RFC 3339 UTC with
/// microseconds). Ids of new things arrive in the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub actor: Actor,
    pub now: String,
}

/// Who asks to see something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct Viewer {
    pub country: CountryCode,
    pub role: Role,
}

/// Who may see a stream as it stands: auditors always, then everyone, or
/// the listed countries and roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience {
    pub everyone: bool,
    pub countries: BTreeSet<CountryCode>,
    /// Roles that see it whatever their country (reviewers see notice
    /// requests before publication).
    pub roles: Vec<Role>,
}

impl Audience {
    /// Nobody but auditors.
    pub fn nobody() -> Audience {
        Audience::default()
    }

    pub fn everyone() -> Audience {
        Audience {
            everyone: true,
            ..Audience::default()
        }
    }

    pub fn countries(countries: impl IntoIterator<Item = CountryCode>) -> Audience {
        Audience {
            countries: countries.into_iter().collect(),
            ..Audience::default()
        }
    }

    /// The same audience, plus everyone holding `role`.
    pub fn and_role(mut self, role: Role) -> Audience {
        if !self.roles.contains(&role) {
            self.roles.push(role);
        }
        self
    }

    pub fn admits(&self, viewer: &Viewer) -> bool {
        viewer.role == Role::Auditor
            || self.everyone
            || self.countries.contains(&viewer.country)
            || self.roles.contains(&viewer.role)
    }
}

/// One writing service's contract, as pure functions over typed values.
///
/// `Command`, `Event` and `Query` are serde enums of one-field variants
/// whose variant names are the command names (the last token of
/// `concord.cmd.<service>.<name>`), the event types and the query names:
/// each written once, in a `#[serde(rename = …)]` or by `rename_all`, and
/// listed by [`crate::tagged::variant_names`].
pub trait Aggregate: Send + Sync + 'static {
    const SERVICE: Service;
    type Command: DeserializeOwned + fmt::Debug + Send + Sync;
    type Event: Serialize + DeserializeOwned + fmt::Debug + Send + Sync;
    type Query: DeserializeOwned + fmt::Debug + Send + Sync;
    /// One stream's folded state.
    type State: Default + Clone + fmt::Debug + Send + Sync + 'static;
    /// What the service knows from the logs it follows (`()` when none),
    /// kept by its followers and read by `decide` and `answer`.
    type Facts: Default + Send + Sync + 'static;

    /// The stream a command addresses (`operation-<id>`, `lead-<id>` …).
    fn stream(command: &Self::Command) -> String;

    fn decide(
        state: &Self::State,
        command: &Self::Command,
        facts: &Self::Facts,
        ctx: &Ctx,
    ) -> Result<Vec<Self::Event>, Rejection>;

    /// Folds one event in, or says why it cannot follow `state` (a corrupt
    /// or foreign stream: reported, never skipped).
    fn evolve(state: Self::State, event: &Self::Event) -> Result<Self::State, String>;

    /// Who may see the stream in `state` (the single place the service's
    /// visibility is written; its queries, the projector and the audit
    /// service all ask it). An empty stream is seen by nobody.
    fn audience(state: &Self::State, facts: &Self::Facts) -> Audience;

    /// The stream a query reads.
    fn query_stream(query: &Self::Query) -> String;

    /// A query's answer from the stream's state and version; `NotFound`
    /// alike for an unknown stream and one the asker may not see.
    fn answer(query: &Self::Query, state: &Self::State, version: u64, facts: &Self::Facts) -> Result<Value, Rejection>;

    /// What anyone [`Aggregate::audience`] admits sees of the stream: the
    /// item its `get` answers and the projector's views show (`null` for
    /// an empty stream, which nobody sees).
    fn view(state: &Self::State) -> Value;

    /// What a command's reply names as its `id` when that is not the
    /// stream's own id (a task inside an operation), from the first event
    /// the command recorded (a retry's answer names what the first attempt
    /// created) or, when it recorded none, from the command.
    fn reply_id(command: &Self::Command, first: Option<&Self::Event>) -> Option<String> {
        let _ = (command, first);
        None
    }

    /// The `schema_version` this code writes for `event_type`'s data.
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }

    /// A stored event's data as this code reads it. An event written under
    /// an older `schema_version` is upcast here, never refused by a schema
    /// tightened after it was written; a version this code does not know
    /// (written by a newer release) is an error, not a guess.
    fn upcast(event_type: &str, schema_version: u32, data: &Value) -> Result<Option<Value>, String> {
        let _ = data;
        let current = Self::schema_version(event_type);
        if schema_version == current {
            Ok(None)
        } else {
            Err(format!(
                "{} event {event_type} has schema_version {schema_version}; this release reads {current}",
                Self::SERVICE
            ))
        }
    }
}

/// A stored event as the contract reads it: upcast from an older
/// `schema_version` when needed, then typed. What every reader of a log
/// (the service, a follower, the projector) calls.
pub fn read_event<A: Aggregate>(e: &crate::envelope::EventEnvelope) -> Result<A::Event, String> {
    let upcast = A::upcast(&e.event_type, e.schema_version, &e.data)?;
    let data = upcast.as_ref().unwrap_or(&e.data);
    crate::tagged::from_tagged(&e.event_type, data).map_err(|err| format!("malformed {} data: {err}", e.event_type))
}

/// A kind of stream, named `<prefix>-<uuid>` (`operation-…`, `lead-…`): the
/// name of one from its id, and the id read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamKind(pub &'static str);

impl StreamKind {
    pub fn stream(self, id: uuid::Uuid) -> String {
        format!("{}-{id}", self.0)
    }

    /// The id of `stream`, which must be of this kind (a fold of another
    /// service's events keys what it keeps by it).
    pub fn id_of(self, stream: &str) -> Result<uuid::Uuid, String> {
        stream
            .strip_prefix(self.0)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .ok_or_else(|| format!("event on stream {stream:?}, not {}-<uuid>", self.0))
    }
}

/// The id part of a stream name (`operation-<id>` → `<id>`).
pub fn stream_id(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(_, id)| id)
}

/// The kind part of a stream name (`operation-<id>` → `operation`).
pub fn stream_kind(stream: &str) -> &str {
    stream.split_once('-').map_or(stream, |(kind, _)| kind)
}

/// A text field that must hold something besides whitespace and at most
/// `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::Invalid(format!("{field} must not be empty")));
    }
    bounded_text(field, value, max)
}

/// A text field of at most `max` characters (empty allowed).
pub fn bounded_text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.chars().count() > max {
        return Err(Rejection::Invalid(format!("{field} is longer than {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cc(c: &str) -> CountryCode {
        CountryCode::parse(c).expect("country")
    }

    #[test]
    fn audiences_admit_auditors_always_and_others_by_country_or_role() {
        let de = Viewer {
            country: cc("DE"),
            role: Role::Liaison,
        };
        let auditor = Viewer {
            country: cc("GS"),
            role: Role::Auditor,
        };
        let reviewer = Viewer {
            country: cc("GS"),
            role: Role::Reviewer,
        };
        assert!(!Audience::nobody().admits(&de));
        assert!(Audience::nobody().admits(&auditor));
        assert!(Audience::everyone().admits(&de));
        assert!(Audience::countries([cc("DE")]).admits(&de));
        assert!(!Audience::countries([cc("FR")]).admits(&de));
        assert!(!Audience::countries([cc("FR")]).admits(&reviewer));
        assert!(
            Audience::countries([cc("FR")])
                .and_role(Role::Reviewer)
                .admits(&reviewer)
        );
    }

    #[test]
    fn texts_are_bounded_and_required_ones_not_blank() {
        assert!(required_text("title", "x", 1).is_ok());
        assert_eq!(
            required_text("title", " \n", 5),
            Err(Rejection::Invalid("title must not be empty".into()))
        );
        assert_eq!(
            required_text("title", "ééé", 2),
            Err(Rejection::Invalid("title is longer than 2 characters".into()))
        );
        assert!(bounded_text("note", "", 0).is_ok());
    }

    #[test]
    fn stream_kinds_name_streams_and_read_their_ids_back() {
        let id = uuid::Uuid::from_u128(7);
        let op = StreamKind("operation");
        assert_eq!(op.id_of(&op.stream(id)), Ok(id));
        for bad in [
            "operation-42",
            "operations-00000000-0000-0000-0000-000000000007",
            "operation",
            "lead-x",
        ] {
            let err = op.id_of(bad).expect_err(bad);
            assert!(err.contains("not operation-<uuid>"), "{err}");
        }
    }

    #[test]
    fn stream_names_split_into_kind_and_id() {
        assert_eq!(stream_kind("operation-019a-b"), "operation");
        assert_eq!(stream_id("operation-019a-b"), "019a-b");
    }
}
