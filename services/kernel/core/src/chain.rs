//! The hash chain: canonical bytes of an event, its hash, and a verifier that
//! walks stored events in order. Pure: it sees bytes, never a file or a bus,
//! so the log, the `concord log verify` command and the audit service share it.
//!
//! The algorithm is written for third parties in `schemas/README.md`; a change
//! here is a change of that contract.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::envelope::EventEnvelope;

/// `prev_hash` of the first event of every log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Floats have no single textual form across languages, so an event
    /// holding one could not be re-hashed by a third party reliably.
    #[error("number {number} at {path} is not an integer (encode decimals as strings)")]
    NonInteger { path: String, number: String },
    #[error("an event envelope must be a JSON object")]
    NotAnObject,
}

/// Canonical JSON: object keys sorted by Unicode code point, no whitespace,
/// strings escaped minimally (as serde_json, Python's
/// `json.dumps(ensure_ascii=False)` and JavaScript's `JSON.stringify` do),
/// integers only.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out, &mut String::from("$"))?;
    Ok(out)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>, path: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NonInteger {
                    path: path.clone(),
                    number: n.to_string(),
                });
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                write_canonical(item, out, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, None, out, path)?,
    }
    Ok(())
}

fn write_object(
    map: &Map<String, Value>,
    skip: Option<&str>,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<(), CanonicalError> {
    // serde_json keeps keys sorted unless some crate in the build enables
    // `preserve_order`; sort explicitly so the hash never depends on that.
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        let len = path.len();
        path.push('.');
        path.push_str(key);
        write_canonical(&map[key.as_str()], out, path)?;
        path.truncate(len);
    }
    out.push(b'}');
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Canonical bytes of an envelope: the envelope object without its `hash`.
pub fn canonical_envelope(envelope: &Value) -> Result<Vec<u8>, CanonicalError> {
    let map = envelope.as_object().ok_or(CanonicalError::NotAnObject)?;
    let mut out = Vec::with_capacity(1024);
    write_object(map, Some("hash"), &mut out, &mut String::from("$"))?;
    Ok(out)
}

/// `hex(SHA-256(prev_hash as ASCII ‖ canonical bytes))`.
pub fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    hex::encode(h.finalize())
}

/// Seals an envelope: computes its hash (overwriting `envelope.hash`) and
/// returns the bytes to store, which are its canonical JSON *with* the hash.
///
/// `data_canonical` must be `canonical_json(&envelope.data)` (the log
/// computes it once while validating). Writing the fixed fields by hand,
/// in sorted key order, instead of going through a `Value` keeps the single
/// writer thread cheap; `tests::sealed_bytes_are_the_generic_canonical_form`
/// proves both give the same bytes.
pub fn seal(envelope: &mut EventEnvelope, data_canonical: &[u8]) -> Vec<u8> {
    // Keys in code point order: actor, causation_id, command_id,
    // correlation_id, data, [hash], hlc, id, prev_hash, recorded_at,
    // schema_version, seq, service, stream, type, version.
    let e = &*envelope;
    let mut head = Vec::with_capacity(256 + data_canonical.len());
    head.extend_from_slice(b"{\"actor\":{\"country\":");
    write_string(e.actor.country.as_str(), &mut head);
    head.extend_from_slice(b",\"role\":");
    write_string(e.actor.role.as_str(), &mut head);
    head.extend_from_slice(b",\"sub\":");
    write_string(&e.actor.sub, &mut head);
    head.extend_from_slice(b"},\"causation_id\":");
    match &e.causation_id {
        Some(c) => write_string(c, &mut head),
        None => head.extend_from_slice(b"null"),
    }
    head.extend_from_slice(b",\"command_id\":");
    write_string(&e.command_id, &mut head);
    head.extend_from_slice(b",\"correlation_id\":");
    write_string(&e.correlation_id, &mut head);
    head.extend_from_slice(b",\"data\":");
    head.extend_from_slice(data_canonical);

    let mut tail = Vec::with_capacity(400);
    tail.extend_from_slice(
        format!(
            "\"hlc\":{{\"logical\":{},\"wall_ms\":{}}},\"id\":",
            e.hlc.logical, e.hlc.wall_ms
        )
        .as_bytes(),
    );
    write_string(&e.id.to_string(), &mut tail);
    tail.extend_from_slice(b",\"prev_hash\":");
    write_string(&e.prev_hash, &mut tail);
    tail.extend_from_slice(b",\"recorded_at\":");
    write_string(&e.recorded_at, &mut tail);
    tail.extend_from_slice(
        format!(
            ",\"schema_version\":{},\"seq\":{},\"service\":",
            e.schema_version, e.seq
        )
        .as_bytes(),
    );
    write_string(e.service.as_str(), &mut tail);
    tail.extend_from_slice(b",\"stream\":");
    write_string(&e.stream, &mut tail);
    tail.extend_from_slice(b",\"type\":");
    write_string(&e.event_type, &mut tail);
    tail.extend_from_slice(format!(",\"version\":{}}}", e.version).as_bytes());

    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(&head);
    h.update(b",");
    h.update(&tail);
    let hash = hex::encode(h.finalize());

    let mut stored = head;
    stored.extend_from_slice(b",\"hash\":\"");
    stored.extend_from_slice(hash.as_bytes());
    stored.extend_from_slice(b"\",");
    stored.extend_from_slice(&tail);
    envelope.hash = hash;
    stored
}

/// `,"hash":"` — the member a stored record carries between `data` and `hlc`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
/// `,"hash":"<64 hex>"`
const HASH_MEMBER_BYTES: usize = HASH_MEMBER.len() + 64 + 1;

/// Finds `,"<name>":` after the `data` member (the last occurrence: every
/// member after `data` holds only Concord-formatted values, so user text
/// inside `data` cannot shadow it).
fn member_after_data<'a>(bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let pat = format!(",\"{name}\":");
    let at = memchr::memmem::rfind(bytes, pat.as_bytes())?;
    Some(&bytes[at + pat.len()..])
}

fn hex64_string(after: &[u8]) -> Option<&str> {
    let rest = after.strip_prefix(b"\"")?;
    let hex = rest.get(..64)?;
    (rest.get(64) == Some(&b'"') && hex.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)))
        .then(|| std::str::from_utf8(hex).ok())
        .flatten()
}

/// Why the chain breaks at a given seq.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event is missing (next stored event is seq {next_found})")]
    Missing { next_found: u64 },
    #[error("record is unreadable: {0}")]
    Unreadable(String),
    #[error("record is stored under seq {key} but says seq {found}")]
    MisplacedRecord { key: u64, found: u64 },
    #[error("expected seq {expected}, found seq {found}")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("prev_hash {found} does not match the previous event's hash {expected}")]
    PrevHashMismatch { expected: String, found: String },
    #[error("stored hash {stored} does not match the computed hash {computed}")]
    HashMismatch { stored: String, computed: String },
}

/// The first bad seq of a chain and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain breaks at seq {seq}: {reason}")]
pub struct BadEvent {
    pub seq: u64,
    pub reason: ChainBreak,
}

/// Walks events in order from seq 1. Feed it every stored record; the first
/// error it returns is the first bad seq.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: String,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
        }
    }

    /// Events verified so far.
    pub fn verified(&self) -> u64 {
        self.next_seq - 1
    }

    /// Hash of the last verified event (the genesis hash before any).
    pub fn head_hash(&self) -> &str {
        &self.prev_hash
    }

    /// Checks the next record. `key_seq` is the seq the store filed it under,
    /// when the store has one (an export has none).
    pub fn check(&mut self, key_seq: Option<u64>, bytes: &[u8]) -> Result<(), BadEvent> {
        self.link(key_seq, inspect(bytes))
    }

    /// The sequential half of `check`: links an inspected record to the
    /// chain so far. `inspect` may run on other threads, ahead of this.
    pub fn link(&mut self, key_seq: Option<u64>, record: Result<Link, ChainBreak>) -> Result<(), BadEvent> {
        let expected = self.next_seq;
        let bad = |reason| BadEvent { seq: expected, reason };
        if let Some(key) = key_seq
            && key > expected
        {
            return Err(bad(ChainBreak::Missing { next_found: key }));
        }
        let link = record.map_err(bad)?;
        if let Some(key) = key_seq
            && key != link.seq
        {
            return Err(bad(ChainBreak::MisplacedRecord { key, found: link.seq }));
        }
        if link.seq != expected {
            return Err(bad(ChainBreak::OutOfOrder {
                expected,
                found: link.seq,
            }));
        }
        if link.prev_hash != self.prev_hash {
            return Err(bad(ChainBreak::PrevHashMismatch {
                expected: self.prev_hash.clone(),
                found: link.prev_hash,
            }));
        }
        if link.computed != link.stored {
            return Err(bad(ChainBreak::HashMismatch {
                stored: link.stored,
                computed: link.computed,
            }));
        }
        self.prev_hash = link.computed;
        self.next_seq += 1;
        Ok(())
    }
}

/// What one stored record says about its place in the chain, and the hash
/// its bytes actually have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub prev_hash: String,
    pub stored: String,
    pub computed: String,
}

/// Reads a stored record's chain fields and recomputes its hash. Pure and
/// independent of other records, so it can run in parallel.
///
/// Works on the stored bytes, which are canonical JSON: the hash input is
/// the record with its `,"hash":"…"` member cut out, exactly the canonical
/// form of schemas/README.md, so no parse is needed. Any change to a stored
/// byte changes that input.
pub fn inspect(bytes: &[u8]) -> Result<Link, ChainBreak> {
    let unreadable = |what: &str| ChainBreak::Unreadable(what.to_owned());
    if bytes.first() != Some(&b'{') || bytes.last() != Some(&b'}') {
        return Err(unreadable("not a JSON object"));
    }
    let seq = member_after_data(bytes, "seq")
        .and_then(|rest| {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse::<u64>().ok()
        })
        .ok_or_else(|| unreadable("no integer seq"))?;
    let prev = member_after_data(bytes, "prev_hash")
        .and_then(hex64_string)
        .ok_or_else(|| unreadable("no prev_hash"))?;
    let at = memchr::memmem::rfind(bytes, HASH_MEMBER).ok_or_else(|| unreadable("no hash"))?;
    let stored = hex64_string(&bytes[at + HASH_MEMBER.len() - 1..]).ok_or_else(|| unreadable("no hash"))?;
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(&bytes[..at]);
    h.update(&bytes[at + HASH_MEMBER_BYTES..]);
    Ok(Link {
        seq,
        prev_hash: prev.to_owned(),
        stored: stored.to_owned(),
        computed: hex::encode(h.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_sorts_keys_strips_space_and_escapes_minimally() {
        let v = json!({"b": [1, -2, {"z": null, "a": true}], "a": "é\"\\\n\u{1}", "A": 0});
        let c = canonical_json(&v).expect("integers only");
        assert_eq!(
            String::from_utf8(c).expect("utf-8"),
            r#"{"A":0,"a":"é\"\\\n\u0001","b":[1,-2,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn canonical_refuses_floats_and_names_the_path() {
        let e = canonical_json(&json!({"data": {"xs": [1, 2.5]}})).expect_err("float");
        assert_eq!(
            e,
            CanonicalError::NonInteger {
                path: "$.data.xs[1]".into(),
                number: "2.5".into()
            }
        );
    }

    #[test]
    fn envelope_canonical_form_leaves_out_the_hash_only() {
        let v = json!({"seq": 1, "hash": "ff", "prev_hash": GENESIS_HASH, "data": {"hash": 1}});
        let c = String::from_utf8(canonical_envelope(&v).expect("ok")).expect("utf-8");
        assert_eq!(
            c,
            format!(r#"{{"data":{{"hash":1}},"prev_hash":"{GENESIS_HASH}","seq":1}}"#)
        );
    }

    fn envelope(
        sub: String,
        note: String,
        n: i64,
        stream: String,
        causation: Option<String>,
    ) -> (EventEnvelope, Vec<u8>) {
        use crate::envelope::{Actor, Hlc, Role, Service};
        let data = json!({"note": note, "n": n, "nested": {"z": [1, {"y": note.clone()}], "a": null}});
        let data_canonical = canonical_json(&data).expect("integers");
        let mut env = EventEnvelope {
            id: uuid::Uuid::now_v7(),
            service: Service::Intel,
            seq: 7,
            stream,
            version: 3,
            event_type: "lead.posted".into(),
            schema_version: 1,
            recorded_at: "2026-11-23T09:32:30.123456Z".into(),
            hlc: Hlc {
                wall_ms: 1_795_000_000_000,
                logical: 4,
            },
            actor: Actor {
                sub,
                role: Role::Liaison,
                country: crate::CountryCode::parse("MC").expect("MC"),
            },
            command_id: "cmd-1".into(),
            correlation_id: "corr-1".into(),
            causation_id: causation,
            data,
            prev_hash: "ab".repeat(32),
            hash: String::new(),
        };
        let stored = seal(&mut env, &data_canonical);
        (env, stored)
    }

    proptest::proptest! {
        /// The hand-written sealing equals the generic definition of
        /// schemas/README.md for any text a user can put in an event.
        #[test]
        fn sealed_bytes_are_the_generic_canonical_form(
            sub in "\\PC{1,20}",
            note in proptest::string::string_regex("(?s).{0,40}").expect("regex"),
            n in proptest::num::i64::ANY,
            stream in "[A-Za-z0-9._:-]{1,30}",
            causation in proptest::option::of("\\PC{1,10}"),
        ) {
            let (env, stored) = envelope(sub, note, n, stream, causation);
            let value: Value = serde_json::from_slice(&stored).expect("stored bytes are JSON");
            // Stored bytes are themselves canonical JSON.
            proptest::prop_assert_eq!(&canonical_json(&value).expect("integers"), &stored);
            // The hash is the generic one.
            let generic = chain_hash(&env.prev_hash, &canonical_envelope(&value).expect("object"));
            proptest::prop_assert_eq!(&generic, &env.hash);
            // And the stored bytes parse back into the same envelope.
            let back: EventEnvelope = serde_json::from_slice(&stored).expect("envelope");
            proptest::prop_assert_eq!(back, env);
        }
    }

    #[test]
    fn verifier_accepts_a_sealed_chain_and_names_the_first_bad_seq() {
        let mut records = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for seq in 1..=5u64 {
            let (mut env, _) = envelope("bob".into(), format!("note {seq}"), seq as i64, "lead-1".into(), None);
            env.seq = seq;
            env.prev_hash = prev.clone();
            let data = canonical_json(&env.data).expect("integers");
            let stored = seal(&mut env, &data);
            prev = env.hash.clone();
            records.push(stored);
        }
        let mut v = ChainVerifier::new();
        for (i, r) in records.iter().enumerate() {
            v.check(Some(i as u64 + 1), r).expect("valid chain");
        }
        assert_eq!((v.verified(), v.head_hash()), (5, prev.as_str()));

        // A data key named like an envelope member cannot fool the verifier.
        let mut v = ChainVerifier::new();
        let mut forged = records[0].clone();
        let at = forged.windows(6).position(|w| w == b"note 1").expect("note");
        forged[at + 5] = b'9';
        let err = v.check(Some(1), &forged).expect_err("edited");
        assert_eq!(err.seq, 1);
        assert!(matches!(err.reason, ChainBreak::HashMismatch { .. }), "{err}");

        let mut v = ChainVerifier::new();
        v.check(None, &records[0]).expect("first");
        let err = v.check(None, &records[2]).expect_err("skipped one");
        assert_eq!(
            (err.seq, err.reason),
            (2, ChainBreak::OutOfOrder { expected: 2, found: 3 })
        );
    }

    /// The worked example of schemas/README.md: if this fails, the README
    /// and every third-party verifier disagree with the code.
    #[test]
    fn worked_example_of_the_readme() {
        use crate::envelope::{Actor, Hlc, Role, Service};
        let readme = include_str!("../../../../schemas/README.md");
        let data = json!({"title": "Opération Héron", "countries": ["DE", "ES"], "lead_country": "FR"});
        let mut env = EventEnvelope {
            id: "019ab0c4-5e00-7000-8000-000000000001".parse().expect("uuid"),
            service: Service::Operations,
            seq: 1,
            stream: "operation-019ab0c4-5e00-7000-8000-0000000000aa".into(),
            version: 1,
            event_type: "operation.opened".into(),
            schema_version: 1,
            recorded_at: "2026-11-23T09:30:00.000000Z".into(),
            hlc: Hlc {
                wall_ms: 1_795_426_200_000,
                logical: 0,
            },
            actor: Actor {
                sub: "fr-coordinator".into(),
                role: Role::Coordinator,
                country: crate::CountryCode::parse("FR").expect("FR"),
            },
            command_id: "cmd-1".into(),
            correlation_id: "req-1".into(),
            causation_id: None,
            data: data.clone(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let stored = seal(&mut env, &canonical_json(&data).expect("integers"));
        let value: Value = serde_json::from_slice(&stored).expect("json");
        let canonical = String::from_utf8(canonical_envelope(&value).expect("object")).expect("utf-8");
        assert!(
            readme.contains(&canonical),
            "README's canonical line differs from {canonical}"
        );
        assert_eq!(
            env.hash,
            "abe8d5e5912c83ada6792705e5ab2f529bce4d84782e499755c393ced3e8b9e8"
        );
        assert!(readme.contains(&env.hash));
    }
}
