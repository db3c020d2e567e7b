//! A country's feed as Server-Sent Events (`GET /v1/countries/{cc}/feed`
//! with `Accept: text/event-stream`): each event the country may see, in
//! feed order, as `id: <position>` and `data: {"position", "event"}`; a
//! comment line as heartbeat when nothing happened for [`HEARTBEAT`]; a
//! client that reconnects with `Last-Event-ID` resumes after that position,
//! with no gap and no duplicate, because every event is read from the
//! projector's store by position (a long poll: the projector answers as
//! soon as an entry follows, or after [`WAIT`] with none).
//!
//! At most [`PER_TOKEN_MAX`] streams are open per bearer token (429
//! beyond); a stream ends when its token expires or the gateway stops.
//!
//! Must not: decide what a country may see (the projector's feed does);
//! keep events (each is sent once, as read).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use concord_core::reply::ErrorCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{AppState, Gateway, call};

/// A comment line is sent after this long without an event, so proxies
/// and clients can tell a quiet feed from a dead connection.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long one read of the projector waits for the next entry.
pub const WAIT: Duration = Duration::from_secs(20);
/// Streams open at once with one bearer token.
pub const PER_TOKEN_MAX: usize = 4;
/// After the projector could not answer, try again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// Does the request ask for Server-Sent Events?
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// The streams open per token (by the token's SHA-256: the gateway keeps
/// no bearer token).
#[derive(Debug, Default)]
pub struct Streams {
    open: Mutex<HashMap<[u8; 32], usize>>,
}

/// One open stream's place; given back when the stream ends.
struct Held {
    gw: Arc<Gateway>,
    key: [u8; 32],
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::gauge!(concord_bus::metrics::SSE_OPEN).decrement(1.0);
        if let Ok(mut open) = self.gw.streams.open.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

fn hold(gw: &AppState, headers: &HeaderMap) -> Result<Held, Problem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let key: [u8; 32] = Sha256::digest(token).into();
    let mut open = gw
        .streams
        .open
        .lock()
        .map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    let n = open.entry(key).or_insert(0);
    if *n >= PER_TOKEN_MAX {
        return Err(Problem::http(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{PER_TOKEN_MAX} event streams are open with this token already; close one first"),
        ));
    }
    *n += 1;
    metrics::gauge!(concord_bus::metrics::SSE_OPEN).increment(1.0);
    Ok(Held {
        gw: Arc::clone(gw),
        key,
    })
}

/// `Last-Event-ID`: the position the client saw last, as this stream gave
/// it.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = v.to_str().unwrap_or_default().trim();
    text.parse::<u64>()
        .ok()
        .filter(|n| *n <= concord_core::chain::INTEGER_MAX && text.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| {
            Problem::new(
                ErrorCode::Invalid,
                "Last-Event-ID must be a feed position this stream gave (a whole number)",
            )
        })
}

struct Stream {
    gw: AppState,
    headers: HeaderMap,
    body: Value,
    after: u64,
    pending: VecDeque<Value>,
    expires_at: i64,
    closing: tokio::sync::watch::Receiver<bool>,
    _held: Held,
}

fn to_event(entry: &Value) -> Event {
    let position = entry["position"].as_u64().unwrap_or(0);
    Event::default()
        .id(position.to_string())
        .data(serde_json::to_string(entry).unwrap_or_default())
}

impl Stream {
    fn take(&mut self, reply: &serde_json::Map<String, Value>) {
        if let Some(events) = reply.get("events").and_then(Value::as_array) {
            for e in events {
                // Only what follows what was sent: a read is by position,
                // so this holds anyway; it is what "no duplicate" rests on.
                if e["position"].as_u64().is_some_and(|p| p > self.after) {
                    self.after = e["position"].as_u64().unwrap_or(self.after);
                    self.pending.push_back(e.clone());
                }
            }
        }
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(to_event(&e));
            }
            if *self.closing.borrow() || chrono::Utc::now().timestamp() >= self.expires_at {
                return None;
            }
            let mut body = self.body.clone();
            body["after"] = self.after.into();
            body["wait_ms"] = u64::try_from(WAIT.as_millis()).unwrap_or(u64::MAX).into();
            let read = call::view_waiting(&self.gw, &self.headers, "feed", body, WAIT);
            let answered = tokio::select! {
                r = read => r,
                _ = self.closing.changed() => return None,
            };
            match answered {
                Ok(reply) => self.take(&reply),
                Err(p) if p.code == ErrorCode::Unavailable => {
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = self.closing.changed() => return None,
                    }
                }
                // Refused now (it was allowed when the stream opened):
                // the stream ends, the client's reconnect gets the problem.
                Err(_) => return None,
            }
        }
    }
}

/// Serves the feed request `body` (as `views::request` built it) as a
/// stream of events.
pub async fn serve(gw: AppState, caller: &Caller, headers: HeaderMap, mut body: Value) -> Result<Response, Problem> {
    if let Some(after) = last_event_id(&headers)? {
        body["after"] = after.into();
    }
    let held = hold(&gw, &headers)?;
    // The first read is made before the stream starts, so a refusal (not
    // its country, an unknown query) is an ordinary problem response.
    let first = call::view(&gw, &headers, "feed", body.clone()).await?;
    let mut stream = Stream {
        after: body["after"].as_u64().unwrap_or(0),
        closing: gw.closing.subscribe(),
        gw,
        headers,
        body,
        pending: VecDeque::new(),
        expires_at: caller.0.exp,
        _held: held,
    };
    stream.take(&first);
    let events = futures::stream::unfold(stream, |mut s| async move {
        let e = s.next().await?;
        Some((Ok::<_, Infallible>(e), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_streams_are_asked_for_by_accept() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, v.parse().expect("header"));
            h
        };
        assert!(wanted(&with("text/event-stream")));
        assert!(wanted(&with("application/json, TEXT/Event-Stream;q=0.5")));
        assert!(!wanted(&with("application/json")));
        assert!(!wanted(&HeaderMap::new()));
    }

    #[test]
    fn last_event_id_is_a_position() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("last-event-id", v.parse().expect("header"));
            h
        };
        assert_eq!(last_event_id(&with("42")).expect("ok"), Some(42));
        assert_eq!(last_event_id(&HeaderMap::new()).expect("none"), None);
        for bad in ["-1", "x", "+4", "9007199254740992", ""] {
            assert!(last_event_id(&with(bad)).is_err(), "{bad:?}");
        }
    }
}
