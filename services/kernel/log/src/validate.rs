//! Checks an append before it reaches the writer, so bad input is refused
//! with a precise reason and never costs the group commit anything.

use super::{AppendRequest, EVENT_DATA_BYTES_MAX, EVENTS_PER_APPEND_MAX, ID_BYTES_MAX, STREAM_NAME_BYTES_MAX};
use concord_core::chain::{CanonicalError, canonical_json};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAppend {
    #[error("stream name is empty")]
    EmptyStream,
    #[error("stream name is {len} bytes, the limit is {STREAM_NAME_BYTES_MAX}")]
    StreamTooLong { len: usize },
    #[error("stream name {stream:?} may only hold ASCII letters, digits and . _ : -")]
    StreamBadChar { stream: String },
    #[error("{field} is empty")]
    EmptyId { field: &'static str },
    #[error("{field} is {len} bytes, the limit is {ID_BYTES_MAX}")]
    IdTooLong { field: &'static str, len: usize },
    #[error("{field} holds control characters")]
    IdControlChar { field: &'static str },
    /// A fingerprint names the append's own stream and actor: one that
    /// does not would record a request other than the one appended.
    #[error("the fingerprint's {field} is not the append's")]
    FingerprintMismatch { field: &'static str },
    #[error("an append needs at least one event")]
    NoEvents,
    #[error("an append holds {count} events, the limit is {EVENTS_PER_APPEND_MAX}")]
    TooManyEvents { count: usize },
    #[error("event {index} has type {event_type:?}: a type is dot-separated lowercase words, e.g. operation.opened")]
    BadEventType { index: usize, event_type: String },
    #[error("event {index} data must be a JSON object")]
    DataNotObject { index: usize },
    #[error("event {index} data is {bytes} bytes, the limit is {EVENT_DATA_BYTES_MAX}")]
    EventTooLarge { index: usize, bytes: usize },
    #[error("event {index} data: {source}")]
    NotCanonical {
        index: usize,
        #[source]
        source: CanonicalError,
    },
}

/// Returns the canonical bytes of each event's data, which the writer
/// needs for the hash and would otherwise compute again.
pub(super) fn append(req: &AppendRequest) -> Result<Vec<Vec<u8>>, InvalidAppend> {
    stream(&req.stream)?;
    id("command_id", &req.command_id)?;
    id("correlation_id", &req.correlation_id)?;
    id("actor.sub", &req.actor.sub)?;
    if let Some(c) = &req.causation_id {
        id("causation_id", c)?;
    }
    id("fingerprint.command", &req.fingerprint.command)?;
    if req.fingerprint.stream != req.stream {
        return Err(InvalidAppend::FingerprintMismatch { field: "stream" });
    }
    if req.fingerprint.actor != req.actor {
        return Err(InvalidAppend::FingerprintMismatch { field: "actor" });
    }
    if req.events.is_empty() {
        return Err(InvalidAppend::NoEvents);
    }
    if req.events.len() > EVENTS_PER_APPEND_MAX {
        return Err(InvalidAppend::TooManyEvents {
            count: req.events.len(),
        });
    }
    let mut canonical = Vec::with_capacity(req.events.len());
    for (index, e) in req.events.iter().enumerate() {
        if !event_type_ok(&e.event_type) {
            return Err(InvalidAppend::BadEventType {
                index,
                event_type: e.event_type.clone(),
            });
        }
        if !e.data.is_object() {
            return Err(InvalidAppend::DataNotObject { index });
        }
        let bytes = canonical_json(&e.data).map_err(|source| InvalidAppend::NotCanonical { index, source })?;
        if bytes.len() > EVENT_DATA_BYTES_MAX {
            return Err(InvalidAppend::EventTooLarge {
                index,
                bytes: bytes.len(),
            });
        }
        canonical.push(bytes);
    }
    Ok(canonical)
}

pub(super) fn stream(s: &str) -> Result<(), InvalidAppend> {
    if s.is_empty() {
        return Err(InvalidAppend::EmptyStream);
    }
    if s.len() > STREAM_NAME_BYTES_MAX {
        return Err(InvalidAppend::StreamTooLong { len: s.len() });
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(InvalidAppend::StreamBadChar { stream: s.to_owned() });
    }
    Ok(())
}

fn id(field: &'static str, s: &str) -> Result<(), InvalidAppend> {
    if s.is_empty() {
        return Err(InvalidAppend::EmptyId { field });
    }
    if s.len() > ID_BYTES_MAX {
        return Err(InvalidAppend::IdTooLong { field, len: s.len() });
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidAppend::IdControlChar { field });
    }
    Ok(())
}

fn event_type_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.split('.').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}
