//! The one strict JSON parser for everything that comes from outside: HTTP
//! bodies, every NATS message a service or a consumer reads, tokens.
//!
//! Why not `serde_json::from_slice` alone: for an object with two members of
//! one name, serde_json silently keeps the last, other parsers keep the
//! first or refuse. A message with duplicate keys could then mean one thing
//! to the gateway and another to a verifier or a consumer written in another
//! language. RFC 8785 (the canonical form of `chain`) and I-JSON (RFC 7493)
//! forbid duplicate names; Concord refuses them at every input, naming the
//! key and where it is. Likewise a number with an integer value beyond
//! ±(2^53−1) (`chain::INTEGER_MAX`), however it is written: a parser that
//! holds numbers as IEEE doubles (JavaScript's, RFC 8785's) would read
//! another number.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::chain::INTEGER_MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all (serde_json's message, with line and column).
    #[error("{0}")]
    Syntax(String),
    #[error("duplicate key {key:?} in the object at {path} (parsers disagree on which one counts)")]
    DuplicateKey { path: String, key: String },
    #[error("number {number} at {path} is an integer beyond ±(2^53−1) (send it as a string)")]
    IntegerOutOfRange { path: String, number: String },
    /// Valid JSON of another shape than the one expected.
    #[error("{0}")]
    Shape(String),
}

/// Parses `bytes` as one JSON value, refusing duplicate object keys (see
/// the module doc). The one parser for input from outside.
pub fn parse(bytes: &[u8]) -> Result<Value, JsonError> {
    let failure = RefCell::new(Failure::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict(&failure).deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| failure.into_inner().into_error(e))
}

/// `parse`, then read the value as a `T` (a typed message).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    serde_json::from_value(parse(bytes)?).map_err(|e| JsonError::Shape(e.to_string()))
}

/// What a check of ours refused, and where: the path is collected while the
/// error travels up (innermost segment first), so a value that parses costs
/// nothing for it.
#[derive(Default)]
struct Failure {
    refused: Option<Refusal>,
    path: Vec<Segment>,
}

enum Refusal {
    Duplicate(String),
    Integer(String),
}

enum Segment {
    Key(String),
    Index(usize),
}

impl Failure {
    fn into_error(self, e: serde_json::Error) -> JsonError {
        let path = path_text(&self.path);
        match self.refused {
            None => JsonError::Syntax(e.to_string()),
            Some(Refusal::Duplicate(key)) => JsonError::DuplicateKey { path, key },
            Some(Refusal::Integer(number)) => JsonError::IntegerOutOfRange { path, number },
        }
    }

    /// Records the segment of the value that failed, when the failure is
    /// ours (a syntax error needs no path: serde_json names line and column).
    fn passing(&mut self, segment: Segment) {
        if self.refused.is_some() {
            self.path.push(segment);
        }
    }
}

/// `$`, `.name` for a plain key, `["odd key"]` otherwise, `[i]` for an index.
fn path_text(innermost_first: &[Segment]) -> String {
    let mut out = String::from("$");
    for seg in innermost_first.iter().rev() {
        match seg {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
        }
    }
    out
}

/// A `serde_json::Value` deserializer that refuses what `parse` refuses.
#[derive(Clone, Copy)]
struct Strict<'a>(&'a RefCell<Failure>);

impl Strict<'_> {
    fn refuse<E: serde::de::Error>(self, refusal: Refusal) -> E {
        let message = match &refusal {
            Refusal::Duplicate(key) => format!("duplicate key {key:?}"),
            Refusal::Integer(number) => format!("integer {number} out of range"),
        };
        self.0.borrow_mut().refused = Some(refusal);
        E::custom(message)
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() > INTEGER_MAX {
            return Err(self.refuse(Refusal::Integer(v.to_string())));
        }
        Ok(Value::from(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        if v > INTEGER_MAX {
            return Err(self.refuse(Refusal::Integer(v.to_string())));
        }
        Ok(Value::from(v))
    }

    /// serde_json reads an integer beyond u64, and any number with a
    /// fraction or an exponent, as a double: one with an integer value
    /// beyond the range is refused like an integer (`1e20` is one), one
    /// within it is that integer (`1.0` and `1e2` are `1` and `100`, as in
    /// JSON Schema's `integer` and in the canonical form, RFC 8785), so
    /// that a count written `3.0` is read as the 3 it is.
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        if v.fract() == 0.0 {
            // 2^53 − 1 is exact as a double.
            if v.abs() > INTEGER_MAX as f64 {
                return Err(self.refuse(Refusal::Integer(v.to_string())));
            }
            #[allow(clippy::cast_possible_truncation)]
            return Ok(Value::from(v as i64));
        }
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    self.0.borrow_mut().passing(Segment::Index(out.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.refuse(Refusal::Duplicate(key)));
            }
            match map.next_value_seed(self) {
                Ok(v) => {
                    out.insert(key, v);
                }
                Err(e) => {
                    self.0.borrow_mut().passing(Segment::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_what_serde_json_parses() {
        let text = r#" {"a": [1, -2, 2.5, "é\u0000", null, true, {"b": {}}], "": 0} "#;
        let want: Value = serde_json::from_str(text).expect("json");
        assert_eq!(parse(text.as_bytes()), Ok(want));
    }

    #[test]
    fn refuses_duplicate_keys_and_names_the_object() {
        assert_eq!(
            parse(br#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey {
                path: "$".into(),
                key: "a".into()
            })
        );
        // serde_json alone keeps the last one.
        assert_eq!(
            serde_json::from_slice::<Value>(br#"{"a":1,"a":2}"#).expect("json"),
            json!({"a": 2})
        );
        let e = parse(br#"{"data":{"xs":[0,{"k":{"z":1,"y":2,"z":3}}]}}"#).expect_err("duplicate");
        assert_eq!(
            e,
            JsonError::DuplicateKey {
                path: "$.data.xs[1].k".into(),
                key: "z".into()
            }
        );
        // Keys that differ only in how they are escaped are the same key.
        let e = parse(br#"{"odd key":{"\u0061":1,"a":2}}"#).expect_err("duplicate");
        assert_eq!(
            e.to_string(),
            r#"duplicate key "a" in the object at $["odd key"] (parsers disagree on which one counts)"#
        );
    }

    #[test]
    fn refuses_integers_beyond_2_pow_53_however_written() {
        let max = json!({"n": [9_007_199_254_740_991_i64, -9_007_199_254_740_991_i64]});
        assert_eq!(parse(br#"{"n":[9007199254740991,-9007199254740991]}"#), Ok(max));
        for (text, number) in [
            (&br#"{"n":[0,9007199254740992]}"#[..], "9007199254740992"),
            (br#"{"n":[0,-9007199254740992]}"#, "-9007199254740992"),
            (br#"{"n":[0,18446744073709551616]}"#, "18446744073709552000"),
            (br#"{"n":[0,1e16]}"#, "10000000000000000"),
        ] {
            assert_eq!(
                parse(text),
                Err(JsonError::IntegerOutOfRange {
                    path: "$.n[1]".into(),
                    number: number.into()
                }),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        // Fractions are no integers: the schema or the log decides on them.
        assert_eq!(parse(b"[2.5, -0.5]"), Ok(json!([2.5, -0.5])));
        // An integer written with a fraction or an exponent is that integer.
        assert_eq!(
            parse(b"[1.0, 1e2, -3.0, -0.0, 4096.0]"),
            Ok(json!([1, 100, -3, 0, 4096]))
        );
        let typed: Vec<u8> = from_slice(b"[1.0, 5e0]").expect("integers");
        assert_eq!(typed, [1, 5]);
    }

    #[test]
    fn syntax_errors_are_serde_json_s_and_typed_reads_check_the_shape() {
        assert!(matches!(parse(b"{not json"), Err(JsonError::Syntax(m)) if m.contains("line 1")));
        assert!(matches!(parse(b"{} {}"), Err(JsonError::Syntax(_))));
        assert!(
            matches!(parse(br#""\ud800""#), Err(JsonError::Syntax(_))),
            "a lone surrogate"
        );
        assert!(matches!(parse(b"\"\xff\""), Err(JsonError::Syntax(_))), "invalid UTF-8");

        #[derive(Debug, serde::Deserialize, PartialEq)]
        struct Req {
            n: u64,
        }
        assert_eq!(from_slice::<Req>(br#"{"n":3}"#), Ok(Req { n: 3 }));
        assert!(matches!(from_slice::<Req>(br#"{"n":"3"}"#), Err(JsonError::Shape(_))));
        assert!(matches!(
            from_slice::<Req>(br#"{"n":3,"n":4}"#),
            Err(JsonError::DuplicateKey { .. })
        ));
    }
}
