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

/// Fills in `envelope.hash` from its other fields (including `prev_hash`).
pub fn seal(envelope: &mut EventEnvelope) -> Result<(), CanonicalError> {
    envelope.hash.clear();
    let value = serde_json::to_value(&*envelope).map_err(|_| CanonicalError::NotAnObject)?;
    let canonical = canonical_envelope(&value)?;
    envelope.hash = chain_hash(&envelope.prev_hash, &canonical);
    Ok(())
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
    pub fn check(&mut self, key_seq: Option<u64>, bytes: &[u8]) -> Result<Value, BadEvent> {
        let expected = self.next_seq;
        let bad = |reason| BadEvent { seq: expected, reason };
        if let Some(key) = key_seq
            && key > expected
        {
            return Err(bad(ChainBreak::Missing { next_found: key }));
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(ChainBreak::Unreadable(e.to_string())))?;
        let field = |name: &str| value.get(name);
        let seq = field("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(ChainBreak::Unreadable("no integer seq".into())))?;
        if let Some(key) = key_seq
            && key != seq
        {
            return Err(bad(ChainBreak::MisplacedRecord { key, found: seq }));
        }
        if seq != expected {
            return Err(bad(ChainBreak::OutOfOrder { expected, found: seq }));
        }
        let prev = field("prev_hash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(ChainBreak::Unreadable("no prev_hash".into())))?;
        if prev != self.prev_hash {
            return Err(bad(ChainBreak::PrevHashMismatch {
                expected: self.prev_hash.clone(),
                found: prev.to_owned(),
            }));
        }
        let stored = field("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(ChainBreak::Unreadable("no hash".into())))?;
        let canonical = canonical_envelope(&value).map_err(|e| bad(ChainBreak::Unreadable(e.to_string())))?;
        let computed = chain_hash(prev, &canonical);
        if computed != stored {
            return Err(bad(ChainBreak::HashMismatch {
                stored: stored.to_owned(),
                computed,
            }));
        }
        self.prev_hash = computed;
        self.next_seq += 1;
        Ok(value)
    }
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
}
