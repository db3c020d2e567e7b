//! The hash chain: the canonical form of JSON (RFC 8785), an event's hash,
//! and a verifier that walks stored events in order. Pure: it sees bytes,
//! never a file or a bus, so the log, the `concord log verify` command and
//! the audit service share it.
//!
//! The algorithm is written for third parties in `schemas/README.md`; a change
//! here is a change of that contract.

use std::cmp::Ordering;
use std::ops::Range;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::envelope::EventEnvelope;

#[cfg(test)]
mod differential;
mod scan;

/// The chain format this release writes and reads. 1: the hash covered
/// each event's `data` itself (`format1`). 2: it covers the SHA-256 digest
/// of the data (`data_digest`), so a payload can be erased while the chain
/// still verifies. A log records its format (`concord-log`).
pub const CHAIN_FORMAT: u32 = 2;

/// `prev_hash` of the first event of every log.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The largest magnitude of an integer in the canonical form: 2^53 − 1,
/// the largest up to which every integer is exactly an IEEE 754 double,
/// the number of JavaScript and of RFC 8785. A larger one would be read
/// as another number by a verifier in such a language.
pub const INTEGER_MAX: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// RFC 8785 writes fractions the ECMAScript way, which few libraries
    /// outside JavaScript reproduce exactly; events hold decimals as strings.
    #[error("number {number} at {path} is not an integer (encode decimals as strings)")]
    NonInteger { path: String, number: String },
    #[error("integer {number} at {path} is beyond ±(2^53−1) (encode it as a string)")]
    IntegerOutOfRange { path: String, number: String },
    #[error("an event envelope must be a JSON object")]
    NotAnObject,
}

/// The canonical form of a JSON value: RFC 8785 (JSON Canonicalization
/// Scheme) for the values Concord admits, i.e. with every number an integer
/// within ±(2^53−1), which RFC 8785 (ECMAScript) writes in plain decimal.
/// Object keys sorted by their UTF-16 code units, no whitespace, strings
/// escaped as `write_string` says, UTF-8.
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
            let magnitude = n.as_i64().map(i64::unsigned_abs).or_else(|| n.as_u64());
            match magnitude {
                Some(m) if m <= INTEGER_MAX => out.extend_from_slice(n.to_string().as_bytes()),
                Some(_) => {
                    return Err(CanonicalError::IntegerOutOfRange {
                        path: path.clone(),
                        number: n.to_string(),
                    });
                }
                None => {
                    return Err(CanonicalError::NonInteger {
                        path: path.clone(),
                        number: n.to_string(),
                    });
                }
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
        Value::Object(map) => {
            write_object(map, out, path)?;
        }
    }
    Ok(())
}

/// RFC 8785 §3.2.3: keys ordered by their UTF-16 code units. That is the
/// order of code points (and of UTF-8 bytes) except where a character
/// beyond U+FFFF (a surrogate pair, D800–DFFF) meets one of U+E000–U+FFFF.
fn key_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Writes an object and returns the span of each member (`"key":value`)
/// in `out`, in the order written.
fn write_object<'m>(
    map: &'m Map<String, Value>,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<Vec<(&'m str, Range<usize>)>, CanonicalError> {
    // serde_json's map order is not RFC 8785's (and depends on whether some
    // crate enables `preserve_order`): sort explicitly.
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_unstable_by(|a, b| key_order(a, b));
    let mut spans = Vec::with_capacity(keys.len());
    out.push(b'{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        write_string(key, out);
        out.push(b':');
        let len = path.len();
        path.push('.');
        path.push_str(key);
        write_canonical(&map[key.as_str()], out, path)?;
        path.truncate(len);
        spans.push((key.as_str(), start..out.len()));
    }
    out.push(b'}');
    Ok(spans)
}

/// A JSON string as RFC 8785 §3.2.2.2 writes it: `"` and `\` escaped, the
/// control characters U+0000–U+001F as `\b \t \n \f \r` or else `\u00xx`
/// (lowercase hex); everything else raw UTF-8, including DEL (U+007F),
/// U+0080–U+009F and U+2028/U+2029.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    // Every byte to escape is ASCII, and no byte of a multi-byte UTF-8
    // sequence is, so a byte scan never splits a character.
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut unicode = *b"\\u0000";
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => {
                unicode[4] = HEX[usize::from(b >> 4)];
                unicode[5] = HEX[usize::from(b & 0xf)];
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escaped);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// Lowercase hex of a digest, as `hex::encode` writes it: that one builds
/// the string from an iterator of chars, a tenth of the time of `inspect`
/// once the scan made the rest cheap.
fn hex_lower(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * digest.len());
    for &b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Lowercase hex SHA-256 of a `data`'s canonical bytes: what the chain
/// covers of it (`data_digest`), so the data can be erased and the chain
/// still verifies.
pub fn data_digest(data_canonical: &[u8]) -> String {
    hex_lower(&Sha256::digest(data_canonical))
}

/// Canonical bytes an event's hash covers: the envelope without `hash` and
/// without `data` (whose `data_digest` stays).
pub fn hash_input(envelope: &Value) -> Result<Vec<u8>, CanonicalError> {
    let map = envelope.as_object().ok_or(CanonicalError::NotAnObject)?;
    let mut without = map.clone();
    without.remove("hash");
    without.remove("data");
    canonical_json(&Value::Object(without))
}

/// `hex(SHA-256(prev_hash as ASCII ‖ hash input))`.
pub fn chain_hash(prev_hash: &str, hash_input: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(hash_input);
    hex_lower(&h.finalize())
}

/// Seals an envelope: sets its `data_digest` and its hash and returns the
/// bytes to store, which are its canonical JSON with both.
///
/// `data_canonical` must be `canonical_json(&envelope.data)` (the log
/// computes it once while validating). Writing the fixed fields by hand,
/// in sorted key order, instead of going through a `Value` keeps the single
/// writer thread cheap; `tests::sealed_bytes_are_the_generic_canonical_form`
/// proves both give the same bytes.
pub fn seal(envelope: &mut EventEnvelope, data_canonical: &[u8]) -> Vec<u8> {
    // Keys in RFC 8785 order (all ASCII): actor, causation_id, command_id,
    // correlation_id, [data], data_digest, [hash], hlc, id, prev_hash,
    // recorded_at, schema_version, seq, service, stream, type, version.
    let e = &*envelope;
    let digest = data_digest(data_canonical);
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
    head.push(b',');

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

    let digest_member = format!("\"data_digest\":\"{digest}\",");
    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(&head);
    h.update(digest_member.as_bytes());
    h.update(&tail);
    let hash = hex_lower(&h.finalize());

    let mut stored = head;
    stored.extend_from_slice(b"\"data\":");
    stored.extend_from_slice(data_canonical);
    stored.push(b',');
    stored.extend_from_slice(digest_member.as_bytes());
    stored.extend_from_slice(b"\"hash\":\"");
    stored.extend_from_slice(hash.as_bytes());
    stored.extend_from_slice(b"\",");
    stored.extend_from_slice(&tail);
    envelope.data_digest = digest;
    envelope.hash = hash;
    stored
}

/// Why the chain breaks at a given seq.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("seq {expected} is missing")]
    Missing { expected: u64 },
    #[error("record is unreadable: {0}")]
    Unreadable(String),
    /// Two parsers may read a non-canonical record differently (or the
    /// bytes were altered in a way the hash input does not cover), so it is
    /// refused even when its hash matches.
    #[error("record is not in canonical form (RFC 8785): {0}")]
    NotCanonical(String),
    #[error("record is stored under seq {key} but says seq {found}")]
    MisplacedRecord { key: u64, found: u64 },
    #[error("expected seq {expected}, found seq {found}")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("prev_hash {found} does not match the previous event's hash {expected}")]
    PrevHashMismatch { expected: String, found: String },
    #[error("stored hash {stored} does not match the computed hash {computed}")]
    HashMismatch { stored: String, computed: String },
    /// The data was altered (the envelope's hash, which covers the digest
    /// only, may still match).
    #[error("data_digest {stored} does not match the digest of the data, {computed}")]
    DataDigestMismatch { stored: String, computed: String },
}

/// The first bad record of a chain and why. `seq` is the seq that record
/// carries (the seq found); when it carries none that can be read, its key
/// in the store, or else the seq expected at its place. `expected` is the
/// seq that was due there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain breaks at seq {seq}: {reason}")]
pub struct BadEvent {
    pub seq: u64,
    pub expected: u64,
    pub reason: ChainBreak,
}

/// A record `inspect` cannot link, with the seq it carries when that much
/// of it is readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub seq: Option<u64>,
    pub reason: ChainBreak,
}

/// Walks events in order from seq 1 (or from an anchor). Feed it every
/// stored record; the first error it returns is the first bad record.
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
    pub fn link(&mut self, key_seq: Option<u64>, record: Result<Link, BadRecord>) -> Result<(), BadEvent> {
        let expected = self.next_seq;
        let bad = |seq, reason| BadEvent { seq, expected, reason };
        if let Some(key) = key_seq
            && key > expected
        {
            return Err(bad(key, ChainBreak::Missing { expected }));
        }
        let link = record.map_err(|r| bad(r.seq.or(key_seq).unwrap_or(expected), r.reason))?;
        if let Some(key) = key_seq
            && key != link.seq
        {
            return Err(bad(link.seq, ChainBreak::MisplacedRecord { key, found: link.seq }));
        }
        if link.seq != expected {
            return Err(bad(
                link.seq,
                ChainBreak::OutOfOrder {
                    expected,
                    found: link.seq,
                },
            ));
        }
        if link.prev_hash != self.prev_hash {
            return Err(bad(
                link.seq,
                ChainBreak::PrevHashMismatch {
                    expected: self.prev_hash.clone(),
                    found: link.prev_hash,
                },
            ));
        }
        if link.computed != link.stored {
            return Err(bad(
                link.seq,
                ChainBreak::HashMismatch {
                    stored: link.stored,
                    computed: link.computed,
                },
            ));
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

/// Reads a stored record, checks that it is canonical, and recomputes its
/// hash. Pure and independent of other records, so it can run in parallel.
///
/// The record is parsed strictly (`json::parse`: no duplicate keys) and
/// must be byte for byte its own canonical form: then every parser reads
/// it alike, and its hash input (schemas/README.md) is a part of its bytes.
/// Its `data`, when present (an erased event has none), must have the
/// digest `data_digest` says.
///
/// Two paths with one result: a single pass over the bytes (`scan`) accepts
/// a record that is canonical, which every record `seal` wrote is, without
/// building a `Value`; whatever it does not accept goes the strict way
/// (`inspect_strictly`), which finds and names what is wrong. The scan only
/// ever accepts what the strict way accepts, so errors are the same.
pub fn inspect(bytes: &[u8]) -> Result<Link, BadRecord> {
    match scan::canonical_members(bytes) {
        Some(members) => link_canonical(bytes, &members),
        None => inspect_strictly(bytes),
    }
}

/// Whether `bytes` are an object byte for byte in its own canonical form
/// (what `seal` writes): then `json::parse` accepts it too (no duplicate
/// keys, integers within ±(2^53−1)), found in one pass without a `Value`.
/// `false` says only that the quick way did not accept it.
pub fn is_canonical(bytes: &[u8]) -> bool {
    scan::canonical_members(bytes).is_some()
}

/// `inspect` by the definition: parse, write canonically, compare.
fn inspect_strictly(bytes: &[u8]) -> Result<Link, BadRecord> {
    let unreadable = |seq, what: String| BadRecord {
        seq,
        reason: ChainBreak::Unreadable(what),
    };
    let value = crate::json::parse(bytes).map_err(|e| unreadable(None, e.to_string()))?;
    let Value::Object(map) = &value else {
        return Err(unreadable(None, "not a JSON object".into()));
    };
    let seq = map.get("seq").and_then(Value::as_u64);
    let not_canonical = |why: String| BadRecord {
        seq,
        reason: ChainBreak::NotCanonical(why),
    };
    let mut canonical = Vec::with_capacity(bytes.len());
    let spans = write_object(map, &mut canonical, &mut String::from("$")).map_err(|e| not_canonical(e.to_string()))?;
    if canonical != bytes {
        let at = canonical.iter().zip(bytes).take_while(|(a, b)| a == b).count();
        return Err(not_canonical(format!(
            "it differs from its canonical form at byte {at}"
        )));
    }
    let seq = seq.ok_or_else(|| unreadable(None, "no integer seq".into()))?;
    let hex64 = |name: &str| {
        map.get(name)
            .and_then(Value::as_str)
            .filter(|h| is_hex64(h.as_bytes()))
            .ok_or_else(|| unreadable(Some(seq), format!("no {name} of 64 lowercase hex digits")))
    };
    link(
        bytes,
        seq,
        hex64("prev_hash")?,
        hex64("hash")?,
        hex64("data_digest")?,
        &spans,
    )
}

/// `inspect_strictly` after its form check, for a record the scan found
/// canonical: each member read from its bytes. In canonical form a key
/// written with an escape is no plain name, a string of hex digits is
/// written as it is, and an integer in range is its digits, so these reads
/// are the strict path's `map.get(name)`, `as_str` and `as_u64`.
fn link_canonical<'b>(bytes: &'b [u8], members: &[scan::Member<'_>]) -> Result<Link, BadRecord> {
    let unreadable = |seq, what: String| BadRecord {
        seq,
        reason: ChainBreak::Unreadable(what),
    };
    let (mut seq, mut prev, mut stored, mut digest) = (None, None, None, None);
    for (key, span) in members {
        let slot = match *key {
            b"seq" => &mut seq,
            b"prev_hash" => &mut prev,
            b"hash" => &mut stored,
            b"data_digest" => &mut digest,
            _ => continue,
        };
        // `"key":value`
        *slot = bytes.get(span.start + key.len() + 3..span.end);
    }
    let seq = seq
        .filter(|v| v.iter().all(u8::is_ascii_digit))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .ok_or_else(|| unreadable(None, "no integer seq".into()))?;
    let hex64 = |value: Option<&'b [u8]>, name: &str| {
        value
            .and_then(|v| v.strip_prefix(b"\"")?.strip_suffix(b"\""))
            .filter(|h| is_hex64(h))
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| unreadable(Some(seq), format!("no {name} of 64 lowercase hex digits")))
    };
    link(
        bytes,
        seq,
        hex64(prev, "prev_hash")?,
        hex64(stored, "hash")?,
        hex64(digest, "data_digest")?,
        members,
    )
}

fn is_hex64(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The end of `inspect`, once the record is known canonical: checks the
/// data's digest and hashes the record's own bytes. `members` are the
/// top-level members (key, span of `"key":value`) in order.
fn link<K: AsRef<[u8]>>(
    bytes: &[u8],
    seq: u64,
    prev: &str,
    stored: &str,
    digest: &str,
    members: &[(K, Range<usize>)],
) -> Result<Link, BadRecord> {
    if let Some((_, span)) = members.iter().find(|(key, _)| key.as_ref() == b"data") {
        let data = &bytes[span.start + b"\"data\":".len()..span.end];
        let computed = data_digest(data);
        if computed != digest {
            return Err(BadRecord {
                seq: Some(seq),
                reason: ChainBreak::DataDigestMismatch {
                    stored: digest.to_owned(),
                    computed,
                },
            });
        }
    }
    // The hash input is the canonical form without the `hash` and `data`
    // members: the record's own bytes with those members left out.
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"{");
    let mut first = true;
    for (key, span) in members {
        if key.as_ref() == b"hash" || key.as_ref() == b"data" {
            continue;
        }
        if !first {
            h.update(b",");
        }
        first = false;
        h.update(&bytes[span.clone()]);
    }
    h.update(b"}");
    Ok(Link {
        seq,
        prev_hash: prev.to_owned(),
        stored: stored.to_owned(),
        computed: hex_lower(&h.finalize()),
    })
}

/// Chain format 1, of releases before the data digest: the hash covered
/// the whole record, `data` included, and the form was not checked. Kept
/// only so `concord log migrate` verifies an old log before rewriting it.
pub mod format1 {
    use sha2::{Digest, Sha256};

    use super::{BadRecord, ChainBreak, Link};

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

    /// A format 1 record's chain fields, and the hash of its bytes without
    /// the `hash` member.
    pub fn inspect(bytes: &[u8]) -> Result<Link, BadRecord> {
        let unreadable = |what: &str| BadRecord {
            seq: None,
            reason: ChainBreak::Unreadable(what.to_owned()),
        };
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

    /// RFC 8785 §3.2.3 orders keys by UTF-16 code units: a character beyond
    /// U+FFFF (a surrogate pair, D83D DE00 for 😀) sorts before U+E000–U+FFFF,
    /// where code point (and UTF-8 byte) order puts it after.
    #[test]
    fn keys_sort_by_utf16_code_units() {
        let v = json!({"\u{ffff}": 1, "😀": 2, "\u{e000}": 3, "z": 4, "\u{10000}": 5, "é": 6});
        assert_eq!(
            String::from_utf8(canonical_json(&v).expect("ok")).expect("utf-8"),
            "{\"z\":4,\"é\":6,\"\u{10000}\":5,\"😀\":2,\"\u{e000}\":3,\"\u{ffff}\":1}"
        );
    }

    /// RFC 8785 §3.2.2.2: only `"`, `\` and U+0000–U+001F are escaped, the
    /// latter as `\b \t \n \f \r` or `\u00xx` in lowercase hex.
    #[test]
    fn strings_are_escaped_as_rfc8785_says() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(
            String::from_utf8(canonical_json(&json!(all_controls)).expect("ok")).expect("utf-8"),
            r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f""#
        );
        // DEL, the C1 controls, the line and paragraph separators, a
        // character beyond U+FFFF: raw UTF-8.
        let raw = "\u{7f}\u{80}\u{9f}\u{2028}\u{2029}😀\"\\/";
        assert_eq!(
            String::from_utf8(canonical_json(&json!(raw)).expect("ok")).expect("utf-8"),
            "\"\u{7f}\u{80}\u{9f}\u{2028}\u{2029}😀\\\"\\\\/\""
        );
    }

    #[test]
    fn canonical_refuses_floats_and_integers_beyond_2_pow_53_and_names_the_path() {
        let e = canonical_json(&json!({"data": {"xs": [1, 2.5]}})).expect_err("float");
        assert_eq!(
            e,
            CanonicalError::NonInteger {
                path: "$.data.xs[1]".into(),
                number: "2.5".into()
            }
        );
        let max = 9_007_199_254_740_991_i64;
        assert_eq!(
            canonical_json(&json!([max, -max])).expect("in range"),
            b"[9007199254740991,-9007199254740991]"
        );
        for (v, number) in [
            (json!({"n": max + 1}), "9007199254740992"),
            (json!({"n": -max - 1}), "-9007199254740992"),
            (json!({"n": u64::MAX}), "18446744073709551615"),
        ] {
            assert_eq!(
                canonical_json(&v),
                Err(CanonicalError::IntegerOutOfRange {
                    path: "$.n".into(),
                    number: number.into()
                })
            );
        }
    }

    #[test]
    fn hex_lower_is_hex_encode() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_lower(&bytes), hex::encode(&bytes));
    }

    #[test]
    fn the_hash_input_leaves_out_the_hash_and_the_data_only() {
        let v = json!({"seq": 1, "hash": "ff", "prev_hash": GENESIS_HASH, "data": {"hash": 1}, "data_digest": "dd"});
        let c = String::from_utf8(hash_input(&v).expect("ok")).expect("utf-8");
        assert_eq!(
            c,
            format!(r#"{{"data_digest":"dd","prev_hash":"{GENESIS_HASH}","seq":1}}"#)
        );
    }

    pub(super) fn envelope(
        sub: String,
        note: String,
        key: String,
        n: i64,
        stream: String,
        causation: Option<String>,
    ) -> (EventEnvelope, Vec<u8>) {
        use crate::envelope::{Actor, Hlc, Role, Service};
        let data = json!({
            "note": note, "n": n,
            "nested": {"z": [1, {"y": note.clone()}], "a": null},
            "keys": {key: 1, "\u{e000}": 2, "~": 3},
        });
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
            data_digest: String::new(),
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
            key in proptest::string::string_regex("(?s).{0,4}").expect("regex"),
            n in -9_007_199_254_740_991_i64..=9_007_199_254_740_991,
            stream in "[A-Za-z0-9._:-]{1,30}",
            causation in proptest::option::of("\\PC{1,10}"),
        ) {
            let (env, stored) = envelope(sub, note, key, n, stream, causation);
            let value: Value = serde_json::from_slice(&stored).expect("stored bytes are JSON");
            // Stored bytes are themselves canonical JSON.
            proptest::prop_assert_eq!(&canonical_json(&value).expect("integers"), &stored);
            // The hash is the generic one, and the verifier's.
            let generic = chain_hash(&env.prev_hash, &hash_input(&value).expect("object"));
            proptest::prop_assert_eq!(&generic, &env.hash);
            let digest = data_digest(&canonical_json(&value["data"]).expect("integers"));
            proptest::prop_assert_eq!(&digest, &env.data_digest);
            let link = inspect(&stored).expect("canonical");
            proptest::prop_assert_eq!(&link.computed, &env.hash);
            // And the stored bytes parse back into the same envelope.
            let back: EventEnvelope = serde_json::from_slice(&stored).expect("envelope");
            proptest::prop_assert_eq!(back, env);
        }
    }

    fn chain_of(n: u64) -> (Vec<Vec<u8>>, String) {
        let mut records = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for seq in 1..=n {
            let (mut env, _) = envelope(
                "bob".into(),
                format!("note {seq} é"),
                "k".into(),
                seq as i64,
                "lead-1".into(),
                None,
            );
            env.seq = seq;
            env.prev_hash = prev.clone();
            let data = canonical_json(&env.data).expect("integers");
            let stored = seal(&mut env, &data);
            prev = env.hash.clone();
            records.push(stored);
        }
        (records, prev)
    }

    #[test]
    fn verifier_accepts_a_sealed_chain_and_names_the_first_bad_seq_found() {
        let (records, head) = chain_of(5);
        let mut v = ChainVerifier::new();
        for (i, r) in records.iter().enumerate() {
            v.check(Some(i as u64 + 1), r).expect("valid chain");
        }
        assert_eq!((v.verified(), v.head_hash()), (5, head.as_str()));

        // A data key named like an envelope member cannot fool the verifier.
        let mut v = ChainVerifier::new();
        let mut forged = records[0].clone();
        let at = forged.windows(6).position(|w| w == b"note 1").expect("note");
        forged[at + 5] = b'9';
        let err = v.check(Some(1), &forged).expect_err("edited");
        assert_eq!(err.seq, 1);
        assert!(matches!(err.reason, ChainBreak::DataDigestMismatch { .. }), "{err}");

        // An export that skips seq 2: the first bad seq is the one found.
        let mut v = ChainVerifier::new();
        v.check(None, &records[0]).expect("first");
        let err = v.check(None, &records[2]).expect_err("skipped one");
        assert_eq!(
            err,
            BadEvent {
                seq: 3,
                expected: 2,
                reason: ChainBreak::OutOfOrder { expected: 2, found: 3 }
            }
        );
        assert_eq!(err.to_string(), "chain breaks at seq 3: expected seq 2, found seq 3");

        // A store whose key 2 is gone: seq 3 is found where 2 was due.
        let mut v = ChainVerifier::new();
        v.check(Some(1), &records[0]).expect("first");
        let err = v.check(Some(3), &records[2]).expect_err("missing");
        assert_eq!(err.to_string(), "chain breaks at seq 3: seq 2 is missing");

        // A line with no readable seq is named by the seq expected there.
        let mut v = ChainVerifier::new();
        let err = v.check(None, b"{not json").expect_err("unreadable");
        assert_eq!((err.seq, err.expected), (1, 1));
    }

    /// A record whose hash matches its own bytes but which is not canonical
    /// (an escape where RFC 8785 writes the character, a space, keys out of
    /// order, a duplicate key) is refused: another parser or a verifier
    /// that re-serializes would not agree on its bytes.
    #[test]
    fn verifier_refuses_a_non_canonical_record_even_when_its_hash_matches() {
        let (records, _) = chain_of(1);
        let good = String::from_utf8(records[0].clone()).expect("utf-8");
        // Re-digest the data and rehash the record from its own bytes, as
        // a verifier that does not check the form would.
        let rehashed = |text: &str| -> Vec<u8> {
            let d0 = text.find("\"data\":").expect("data member");
            let d1 = text.find(",\"data_digest\":\"").expect("digest member");
            let h0 = d1 + text[d1..].find(",\"hash\":\"").expect("hash member");
            let (head, data, rest) = (&text[..d0], &text[d0 + 7..d1], &text[h0 + 74..]);
            let digest = data_digest(data.as_bytes());
            let hash = chain_hash(
                GENESIS_HASH,
                format!("{head}\"data_digest\":\"{digest}\"{rest}").as_bytes(),
            );
            format!("{head}\"data\":{data},\"data_digest\":\"{digest}\",\"hash\":\"{hash}\"{rest}").into_bytes()
        };
        assert_eq!(rehashed(&good), records[0], "the rehash is the sealing hash");
        for (what, text, why) in [
            (
                "an escaped é",
                good.replacen('é', "\\u00e9", 1),
                "not in canonical form",
            ),
            (
                "a space",
                good.replacen("\"note\":", "\"note\": ", 1),
                "not in canonical form",
            ),
            (
                "keys out of order",
                good.replacen("\"a\":null,\"z\":", "\"z\":", 1)
                    .replacen("]}", "],\"a\":null}", 1),
                "not in canonical form",
            ),
            (
                "a duplicate key",
                good.replacen("\"n\":1,", "\"n\":1,\"n\":1,", 1),
                "duplicate key \"n\"",
            ),
        ] {
            assert_ne!(text, good, "{what}: the edit applies");
            let err = ChainVerifier::new().check(None, &rehashed(&text)).expect_err(what);
            assert_eq!(err.seq, 1, "{what}");
            assert!(err.to_string().contains(why), "{what}: {err}");
        }
    }

    /// The chain covers the data's digest, not the data: a record whose data
    /// is erased (the member left out) still links and verifies, and data
    /// that does not match its digest is named as such.
    #[test]
    fn an_erased_payload_still_verifies_and_an_altered_one_is_named() {
        let (records, head) = chain_of(3);
        let erase = |record: &[u8]| -> Vec<u8> {
            let text = String::from_utf8(record.to_vec()).expect("utf-8");
            let d0 = text.find("\"data\":").expect("data member");
            let d1 = text.find("\"data_digest\":").expect("digest member");
            format!("{}{}", &text[..d0], &text[d1..]).into_bytes()
        };
        let erased = erase(&records[1]);
        assert!(!String::from_utf8_lossy(&erased).contains("note 2"));
        let mut v = ChainVerifier::new();
        for r in [&records[0], &erased, &records[2]] {
            v.check(None, r).expect("verifies without the data");
        }
        assert_eq!(v.head_hash(), head);

        // Data replaced by other data of the same length: only its digest
        // says so (the hash covers the digest).
        let altered = String::from_utf8(records[1].clone())
            .expect("utf-8")
            .replacen("note 2", "note 7", 1);
        let mut v = ChainVerifier::new();
        v.check(None, &records[0]).expect("first");
        let err = v.check(None, altered.as_bytes()).expect_err("altered data");
        assert_eq!(err.seq, 2);
        assert!(matches!(err.reason, ChainBreak::DataDigestMismatch { .. }), "{err}");
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
            data_digest: String::new(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        let data_canonical = canonical_json(&data).expect("integers");
        let stored = seal(&mut env, &data_canonical);
        let value: Value = serde_json::from_slice(&stored).expect("json");
        let input = String::from_utf8(hash_input(&value).expect("object")).expect("utf-8");
        for (what, text) in [
            ("canonical data", String::from_utf8(data_canonical).expect("utf-8")),
            ("data digest", env.data_digest.clone()),
            ("hash input", input),
            ("hash", env.hash.clone()),
            ("stored line", String::from_utf8(stored).expect("utf-8")),
        ] {
            assert!(readme.contains(&text), "the README's {what} differs from {text}");
        }
        assert_eq!(
            env.hash,
            "e1a25f9f69f25a2047bc677ed6338c1d9f174c46c7fe1543ccce9efc6aaa20ca"
        );
    }
}
