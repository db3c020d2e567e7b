//! From an HTTP request to a NATS request and back: the command envelope
//! (Idempotency-Key → command_id, If-Match → expected_version), the W3C
//! trace context, the request timeout, and the reply turned into a result
//! or a problem.

use std::time::Duration;

use axum::http::HeaderMap;
pub use concord_bus::logs::TRACEPARENT;
use concord_core::auth::Claims;
use concord_core::reply::{ErrorCode, Reply};
use concord_core::{Service, subjects};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Gateway;
use crate::problem::Problem;

/// Longest `Idempotency-Key` or `X-Request-Id` accepted.
pub const KEY_BYTES_MAX: usize = 128;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Problem> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Problem::new(ErrorCode::Invalid, format!("{name} header is not visible ASCII"))),
    }
}

fn key(headers: &HeaderMap, name: &str) -> Result<Option<String>, Problem> {
    let Some(v) = header(headers, name)? else {
        return Ok(None);
    };
    let v = v.trim();
    if v.is_empty() || v.len() > KEY_BYTES_MAX || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::new(
            ErrorCode::Invalid,
            format!("{name} must be 1 to {KEY_BYTES_MAX} visible ASCII characters"),
        ));
    }
    Ok(Some(v.to_owned()))
}

/// The `Idempotency-Key`, checked: the IETF draft makes it a
/// structured-field String (RFC 8941, `"8e03978e-…"`), and what is sent
/// as one must be one (closed, escapes only of `"` and `\\`, nothing after
/// it). A bare value (`8e03978e-…`, a Token, not a String) is taken too,
/// as earlier releases took every key. The key is the value as sent:
/// stored command ids were derived from it byte for byte, so a retry of a
/// request an earlier release took finds it (a String has one spelling;
/// `k1` and `"k1"` stay two keys).
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    const NAME: &str = "Idempotency-Key";
    let Some(v) = header(headers, NAME)? else {
        return Ok(None);
    };
    let v = v.trim_matches(' ');
    let refused = |why: &str| {
        Problem::new(
            ErrorCode::Invalid,
            format!(
                "{NAME} {why}: send one structured-field String of 1 to {KEY_BYTES_MAX} characters, e.g. \"8e03978e-40d5-43e8-bc93-6894a57f9324\""
            ),
        )
    };
    let key = match v.strip_prefix('"') {
        Some(quoted) => {
            let mut key = String::with_capacity(quoted.len());
            let mut chars = quoted.chars();
            loop {
                match chars.next() {
                    None => return Err(refused("has no closing quote")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\')) => key.push(c),
                        _ => return Err(refused("escapes something other than \" or \\")),
                    },
                    Some(c @ ' '..='~') => key.push(c),
                    Some(_) => return Err(refused("holds a character a String cannot")),
                }
            }
            if !chars.as_str().is_empty() {
                return Err(refused(
                    "has something after its String (parameters are not defined for it)",
                ));
            }
            key
        }
        None => {
            if !v.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(refused("is not a String, nor a bare run of visible characters"));
            }
            v.to_owned()
        }
    };
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(refused(&format!("holds {} characters", key.len())));
    }
    Ok(Some(v.to_owned()))
}

/// The namespace of the ids minted from a command id (UUIDv5); fixed
/// forever, or a retry after an upgrade would name another item.
const MINTED: Uuid = Uuid::from_u128(0x9c56_4227_a1c2_4362_b59a_ad3c_d570_6441);

/// A command's id: derived from the caller and its `Idempotency-Key`, so a
/// retried POST finds its first answer and two callers never share a key;
/// a fresh id without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandId {
    id: String,
    /// From a key: every retry of the request has this same id.
    keyed: bool,
}

impl CommandId {
    pub fn of(headers: &HeaderMap, caller: &Claims) -> Result<CommandId, Problem> {
        Ok(match idempotency_key(headers)? {
            Some(k) => {
                let mut h = Sha256::new();
                for part in [caller.country.as_str(), caller.sub.as_str(), k.as_str()] {
                    h.update((part.len() as u64).to_be_bytes());
                    h.update(part.as_bytes());
                }
                CommandId {
                    id: format!("idem-{}", hex::encode(h.finalize())),
                    keyed: true,
                }
            }
            None => CommandId {
                id: Uuid::now_v7().to_string(),
                keyed: false,
            },
        })
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The id of what the command creates, for `field`. Under a key it is
    /// derived from the command id, so a retry is the same request (same
    /// stream, same data), which the service answers with its first result
    /// rather than refuse as another; otherwise it is fresh.
    pub fn mint(&self, field: &str) -> Uuid {
        if self.keyed {
            Uuid::new_v5(&MINTED, format!("{}/{field}", self.id).as_bytes())
        } else {
            Uuid::now_v7()
        }
    }
}

/// `If-Match: "3"` (or `W/"3"`, or `3`) → expected version 3; `*` or no
/// header → none.
pub fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let Some(v) = header(headers, "if-match")? else {
        return Ok(None);
    };
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    let bare = v.strip_prefix("W/").unwrap_or(v);
    let bare = bare.strip_prefix('"').and_then(|b| b.strip_suffix('"')).unwrap_or(bare);
    bare.parse::<u64>()
        .ok()
        .filter(|n| *n <= concord_core::chain::INTEGER_MAX && bare.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| {
            Problem::new(
                ErrorCode::Invalid,
                format!("If-Match must be a version as returned in ETag (e.g. \"3\"), not {v:?}"),
            )
        })
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A `traceparent` for the NATS request: the request's span when spans
/// are exported (so the service's span is its child); else a child of
/// the caller's when it sent a valid one (same trace, new span id), else a
/// new trace.
pub fn traceparent(headers: &HeaderMap) -> String {
    if let Some(own) = concord_bus::trace::traceparent_of(&tracing::Span::current()) {
        return own;
    }
    let incoming = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
    let trace_id = incoming
        .and_then(concord_bus::trace::trace_id_of)
        .map_or_else(|| random_hex(16), str::to_owned);
    format!("00-{trace_id}-{}-01", random_hex(8))
}

/// Replaces a missing or invalid `traceparent` with a new trace's, so
/// every NATS request of one HTTP request continues the same trace.
pub fn ensure_traceparent(headers: &mut HeaderMap) {
    let valid = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(concord_bus::trace::trace_id_of)
        .is_some();
    if !valid && concord_bus::trace::exporting() {
        // The request's own span starts the trace; a made-up parent would
        // be a span no exporter ever sees.
        headers.remove(TRACEPARENT);
    } else if !valid {
        let fresh = format!("00-{}-{}-01", random_hex(16), random_hex(8));
        if let Ok(v) = axum::http::HeaderValue::from_str(&fresh) {
            headers.insert(TRACEPARENT, v);
        }
    }
}

/// Sends a command and returns the reply's fields (without `ok`).
pub async fn command(
    gw: &Gateway,
    caller: &Claims,
    headers: &HeaderMap,
    command_id: &CommandId,
    service: Service,
    command: &str,
    data: Map<String, Value>,
) -> Result<Map<String, Value>, Problem> {
    let correlation_id = key(headers, "x-request-id")?.unwrap_or_else(|| Uuid::now_v7().to_string());
    let mut envelope = json!({
        "command_id": command_id.as_str(),
        "actor": {"sub": caller.sub, "role": caller.role, "country": caller.country},
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": correlation_id,
        "data": data,
    });
    if let Some(v) = expected_version(headers)? {
        envelope["expected_version"] = json!(v);
    }
    let subject = subjects::command(service.as_str(), command);
    request(gw, subject, &envelope, &traceparent(headers)).await
}

/// Sends a query and returns the reply's fields (without `ok`).
pub async fn query(
    gw: &Gateway,
    headers: &HeaderMap,
    service: Service,
    query: &str,
    body: Value,
) -> Result<Map<String, Value>, Problem> {
    let subject = subjects::query(service.as_str(), query);
    request(gw, subject, &body, &traceparent(headers)).await
}

/// Asks the projector's `query` (a view, a list, a feed) and returns the
/// reply's fields (without `ok`).
pub async fn view(gw: &Gateway, headers: &HeaderMap, query: &str, body: Value) -> Result<Map<String, Value>, Problem> {
    view_waiting(gw, headers, query, body, Duration::ZERO).await
}

/// Asks `component`'s `query` (`concord.qry.<component>.<query>`: the
/// projector's or the audit's reads) and returns the reply's fields.
pub async fn read(
    gw: &Gateway,
    headers: &HeaderMap,
    component: &str,
    query: &str,
    body: Value,
) -> Result<Map<String, Value>, Problem> {
    let subject = subjects::query(component, query);
    request(gw, subject, &body, &traceparent(headers)).await
}

/// [`view`] of a read the projector may hold for up to `wait` (a feed's
/// long poll): its answer is awaited that much longer.
pub async fn view_waiting(
    gw: &Gateway,
    headers: &HeaderMap,
    query: &str,
    body: Value,
    wait: Duration,
) -> Result<Map<String, Value>, Problem> {
    let subject = subjects::query(concord_bus::permissions::PROJECTOR, query);
    request_within(
        gw,
        subject,
        &body,
        &traceparent(headers),
        gw.config.request_timeout + wait,
    )
    .await
}

async fn request(
    gw: &Gateway,
    subject: String,
    body: &Value,
    traceparent: &str,
) -> Result<Map<String, Value>, Problem> {
    request_within(gw, subject, body, traceparent, gw.config.request_timeout).await
}

/// [`read`] whose answer is kept as its bytes (an export splices in
/// events as stored, which a parsed value could not say again byte for
/// byte); a refusal is a problem as for any read.
pub async fn read_bytes(
    gw: &Gateway,
    headers: &HeaderMap,
    component: &str,
    query: &str,
    body: Value,
) -> Result<axum::body::Bytes, Problem> {
    let subject = subjects::query(component, query);
    let payload = send(gw, &subject, &body, &traceparent(headers), gw.config.request_timeout).await?;
    match Reply::parse(&payload) {
        Ok(Reply::Ok(_)) => Ok(payload),
        Ok(Reply::Err(e)) => Err(Problem::from_reply(e)),
        Err(e) => Err(Problem::new(
            ErrorCode::Internal,
            format!("malformed reply on {subject}: {e}"),
        )),
    }
}

/// Sends `body` on `subject`; the answer's payload, or 503.
async fn send(
    gw: &Gateway,
    subject: &str,
    body: &Value,
    traceparent: &str,
    timeout: Duration,
) -> Result<axum::body::Bytes, Problem> {
    let payload = serde_json::to_vec(body).map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    let mut nats_headers = async_nats::HeaderMap::new();
    nats_headers.insert(TRACEPARENT, traceparent);
    let req = async_nats::Request::new()
        .payload(payload.into())
        .headers(nats_headers)
        .timeout(Some(timeout));
    let msg = gw.client.send_request(subject.to_owned(), req).await.map_err(|e| {
        use async_nats::RequestErrorKind as K;
        let why = match e.kind() {
            K::TimedOut => format!("no answer on {subject} within {timeout:?}"),
            K::NoResponders => format!("no service answers {subject}"),
            _ => format!("request on {subject} failed: {e}"),
        };
        tracing::warn!(%subject, error = %e, "request failed");
        Problem::new(ErrorCode::Unavailable, why)
    })?;
    Ok(msg.payload)
}

async fn request_within(
    gw: &Gateway,
    subject: String,
    body: &Value,
    traceparent: &str,
    timeout: Duration,
) -> Result<Map<String, Value>, Problem> {
    let payload = send(gw, &subject, body, traceparent, timeout).await?;
    match Reply::parse(&payload) {
        Ok(Reply::Ok(mut map)) => {
            map.remove("ok");
            Ok(map)
        }
        Ok(Reply::Err(e)) => Err(Problem::from_reply(e)),
        Err(e) => Err(Problem::new(
            ErrorCode::Internal,
            format!("malformed reply on {subject}: {e}"),
        )),
    }
}

/// Default time a NATS request may take before the client gets 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::{CountryCode, Role};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    fn claims(sub: &str, country: &str) -> Claims {
        Claims {
            sub: sub.into(),
            role: Role::Coordinator,
            country: CountryCode::parse(country).expect("cc"),
            exp: 0,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
        }
    }

    fn command_id(headers: &HeaderMap, caller: &Claims) -> Result<String, Problem> {
        CommandId::of(headers, caller).map(|c| c.as_str().to_owned())
    }

    #[test]
    fn idempotency_keys_are_per_caller() {
        let h = headers(&[("idempotency-key", "k1")]);
        let a = command_id(&h, &claims("alice", "FR")).expect("id");
        assert_eq!(a, command_id(&h, &claims("alice", "FR")).expect("id"));
        assert_ne!(a, command_id(&h, &claims("bob", "FR")).expect("id"));
        assert_ne!(a, command_id(&h, &claims("alice", "DE")).expect("id"));
        // Length-prefixed parts: ("ab","c") and ("a","bc") differ.
        assert_ne!(
            command_id(&headers(&[("idempotency-key", "c")]), &claims("ab", "FR")).expect("id"),
            command_id(&headers(&[("idempotency-key", "bc")]), &claims("a", "FR")).expect("id"),
        );
        assert_ne!(command_id(&HeaderMap::new(), &claims("a", "FR")).expect("id"), a);
        let long = "k".repeat(KEY_BYTES_MAX + 1);
        assert!(command_id(&headers(&[("idempotency-key", &long)]), &claims("a", "FR")).is_err());
    }

    /// The draft's header is a structured-field String: what is sent as
    /// one must be one; a bare value is taken as earlier releases took it.
    #[test]
    fn an_idempotency_key_is_a_structured_field_string() {
        let alice = claims("alice", "FR");
        let id = |v: &str| command_id(&headers(&[("idempotency-key", v)]), &alice);
        let k1 = id("\"k1\"").expect("a String");
        assert_eq!(id("  \"k1\" ").expect("spaces around"), k1);
        assert_ne!(
            id("k1").expect("bare"),
            k1,
            "a bare key is the key earlier releases took"
        );
        assert!(id(r#""a\"b\\c""#).is_ok(), "escapes");
        assert!(id(r#"a"b\c"#).is_ok(), "a bare value of visible characters");
        assert!(id("\"a b\"").is_ok(), "a String may hold a space");
        assert_ne!(id("\"a b\"").expect("ok"), id("\"ab\"").expect("ok"));
        for bad in ["\"\"", "\"k1", "\"k1\";p=1", "\"k1\" \"k2\"", r#""a\nb""#, "a b"] {
            let p = id(bad).expect_err(bad);
            assert!(p.detail.contains("Idempotency-Key"), "{bad}: {}", p.detail);
        }
        let longest = "k".repeat(KEY_BYTES_MAX);
        assert!(
            id(&format!("\"{longest}\"")).is_ok(),
            "the limit is on the key, not its quotes"
        );
        assert!(id(&format!("\"{longest}k\"")).is_err());
    }

    #[test]
    fn ids_minted_under_a_key_are_the_same_on_every_retry() {
        let keyed = |key: &str, sub: &str| {
            CommandId::of(&headers(&[("idempotency-key", key)]), &claims(sub, "FR")).expect("id")
        };
        let a = keyed("k1", "alice");
        assert_eq!(a.mint("operation_id"), keyed("k1", "alice").mint("operation_id"));
        assert_eq!(a.mint("operation_id").get_version_num(), 5);
        assert_ne!(a.mint("operation_id"), a.mint("task_id"), "one id per field");
        assert_ne!(a.mint("operation_id"), keyed("k2", "alice").mint("operation_id"));
        assert_ne!(a.mint("operation_id"), keyed("k1", "bob").mint("operation_id"));
        let fresh = CommandId::of(&HeaderMap::new(), &claims("alice", "FR")).expect("id");
        assert_eq!(fresh.mint("operation_id").get_version_num(), 7);
        assert_ne!(fresh.mint("operation_id"), fresh.mint("operation_id"));
    }

    #[test]
    fn if_match_forms() {
        assert_eq!(expected_version(&HeaderMap::new()).expect("none"), None);
        for (v, want) in [("\"3\"", Some(3)), ("W/\"4\"", Some(4)), ("5", Some(5)), ("*", None)] {
            assert_eq!(expected_version(&headers(&[("if-match", v)])).expect(v), want, "{v}");
        }
        for bad in ["\"x\"", "-1", "\"3", "3.0", "+3", "9007199254740992"] {
            assert!(expected_version(&headers(&[("if-match", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn traceparent_continues_a_valid_trace_only() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = traceparent(&headers(&[("traceparent", incoming)]));
        assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
        assert!(!tp.contains("00f067aa0ba902b7"), "a new span id: {tp}");
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let tp = traceparent(&headers(&[("traceparent", bad)]));
            assert!(!tp.contains("4bf92f3577b34da6"), "{bad} -> {tp}");
            assert_eq!(tp.len(), 55, "{tp}");
        }
    }
}
