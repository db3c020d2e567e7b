//! A single pass over a stored record that accepts it only when it is a
//! JSON object written exactly in its own canonical form (`canonical_json`):
//! the fast path of `inspect`.
//!
//! Why: `inspect` runs for every event a log verifies and every event a
//! consumer reads from another service. Its definition (parse strictly into
//! a `Value`, write that canonically, compare the bytes) allocates a tree
//! per record and costs several times the hashing. Nearly every record is
//! canonical, since `seal` wrote it; this pass proves that without a tree.
//!
//! It is an acceptor, not a parser: it answers "this is canonical, and here
//! are its top-level members" or "not sure". It never says why, so that
//! `inspect` can hand everything it refuses to the strict path, which names
//! the error exactly as it always did. It must only be sound: whatever it
//! accepts, `json::parse` accepts and `canonical_json` writes back byte for
//! byte (the differential tests of `chain` check that).
//!
//! What canonical means here, rule by rule (`write_canonical`,
//! `write_string`, `key_order`, and `json::parse`'s limits):
//! - valid UTF-8, and no whitespace anywhere;
//! - `null`, `true`, `false`;
//! - integers as `0` or `-?[1-9][0-9]*`, of magnitude at most
//!   `INTEGER_MAX`; no `-0`, no fraction, no exponent;
//! - strings with `"` and `\` escaped, U+0000–U+001F as `\b \t \n \f \r` or
//!   else `\u00xx` in lowercase hex, and every other character raw (so no
//!   `\/`, no `\u0041`, no surrogate escapes);
//! - object keys strictly increasing in UTF-16 code unit order (so no
//!   duplicate), compared as decoded;
//! - objects and arrays nested at most `DEPTH_MAX` deep.

use std::cmp::Ordering;
use std::ops::Range;

use super::INTEGER_MAX;

/// How deep objects and arrays may nest: `json::parse` runs serde_json,
/// whose recursion limit (128) refuses the 128th nested one. The top-level
/// object counts as the first.
pub(super) const DEPTH_MAX: usize = 127;

/// A member of the top-level object as `write_object` gives it: its key as
/// written (the bytes between the quotes, escapes undecoded) and the span
/// of `"key":value`.
pub(super) type Member<'b> = (&'b [u8], Range<usize>);

/// The top-level members of `bytes` in order, when `bytes` is a JSON object
/// in canonical form; `None` when it is not, or may not be.
pub(super) fn canonical_members(bytes: &[u8]) -> Option<Vec<Member<'_>>> {
    // Validated once here, so the scan below reads only ASCII structure and
    // may step over any other byte: none of a multi-byte character is ASCII.
    std::str::from_utf8(bytes).ok()?;
    let mut scan = Scanner { bytes, at: 0 };
    let mut members = Vec::with_capacity(24);
    if scan.peek()? != b'{' {
        return None;
    }
    scan.object(1, Some(&mut members))?;
    (scan.at == bytes.len()).then_some(members)
}

/// Bytes that end a run of raw string content: `"`, `\` and the controls,
/// which `write_string` escapes.
const STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any of the eight bytes of `word` is in `STRING_SPECIAL`
/// (the bit tricks "has zero byte" and "has byte less than n").
fn has_string_special(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0;
    control || zero_byte(word ^ (ONES * u64::from(b'"'))) || zero_byte(word ^ (ONES * u64::from(b'\\')))
}

struct Scanner<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Scanner<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1, None),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    /// `0` or `-?[1-9][0-9]*` within ±`INTEGER_MAX`. What follows is the
    /// caller's to check (only `,`, `]` or `}` may), so `1.0`, `1e2` and
    /// `01` end up refused there.
    fn integer(&mut self) -> Option<()> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        match self.peek()? {
            // `-0` is written `0`.
            b'0' if negative => return None,
            b'0' => {
                self.at += 1;
                return Some(());
            }
            b'1'..=b'9' => {}
            _ => return None,
        }
        let mut magnitude: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            // INTEGER_MAX has 16 digits: a 17th is out of range (and
            // 16 cannot overflow the u64).
            if self.at - start == 16 {
                return None;
            }
            magnitude = magnitude * 10 + u64::from(d - b'0');
            self.at += 1;
        }
        (magnitude <= INTEGER_MAX).then_some(())
    }

    /// A string as `write_string` writes it; returns its content (between
    /// the quotes) and whether that holds an escape.
    fn string(&mut self) -> Option<(&'b [u8], bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            // Eight bytes at a time past raw content (most of a record).
            while let Some(word) = self.bytes.get(self.at..self.at + 8) {
                if has_string_special(u64::from_le_bytes(word.try_into().ok()?)) {
                    break;
                }
                self.at += 8;
            }
            while !STRING_SPECIAL[usize::from(*self.bytes.get(self.at)?)] {
                self.at += 1;
            }
            match self.bytes[self.at] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.at += escape_len(&self.bytes[self.at..])?;
                }
                // A raw control character: JSON forbids it.
                _ => return None,
            }
        }
        let content = &self.bytes[start..self.at];
        self.at += 1;
        Some((content, escaped))
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > DEPTH_MAX {
            return None;
        }
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object whose keys strictly increase; its members go to `members`
    /// when given (the top level).
    fn object(&mut self, depth: usize, mut members: Option<&mut Vec<Member<'b>>>) -> Option<()> {
        if depth > DEPTH_MAX {
            return None;
        }
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut previous: Option<(&[u8], bool)> = None;
        loop {
            let start = self.at;
            let key = self.string()?;
            if let Some(previous) = previous
                && key_order(previous, key)? != Ordering::Less
            {
                return None;
            }
            previous = Some(key);
            self.eat(b':')?;
            self.value(depth)?;
            if let Some(members) = members.as_deref_mut() {
                members.push((key.0, start..self.at));
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The length of the escape at the start of `s` (which starts with `\`)
/// when `write_string` writes it: `\"`, `\\`, `\b \t \n \f \r`, or `\u00xx`
/// in lowercase hex for any other control character.
fn escape_len(s: &[u8]) -> Option<usize> {
    match *s.get(1)? {
        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => Some(2),
        b'u' => {
            let [b'0', b'0', high @ (b'0' | b'1'), low] = *s.get(2..6)? else {
                return None;
            };
            let low = match low {
                b'0'..=b'9' => low - b'0',
                b'a'..=b'f' => low - b'a' + 10,
                _ => return None,
            };
            let control = (high - b'0') << 4 | low;
            // Those five have a short escape.
            (!matches!(control, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)).then_some(6)
        }
        _ => None,
    }
}

/// The character an escape that `escape_len` accepted stands for (ASCII).
fn unescape(s: &[u8]) -> Option<u8> {
    Some(match *s.get(1)? {
        b'b' => 0x08,
        b't' => 0x09,
        b'n' => 0x0a,
        b'f' => 0x0c,
        b'r' => 0x0d,
        b'u' => {
            let hex = std::str::from_utf8(s.get(4..6)?).ok()?;
            u8::from_str_radix(hex, 16).ok()?
        }
        other => other,
    })
}

/// Decodes string content that `Scanner::string` accepted.
fn decode(content: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len());
    let mut at = 0;
    while let Some(&b) = content.get(at) {
        if b == b'\\' {
            let rest = &content[at..];
            out.push(unescape(rest)?);
            at += escape_len(rest)?;
        } else {
            out.push(b);
            at += 1;
        }
    }
    Some(out)
}

/// `chain::key_order` of two keys as scanned (content, escaped). Keys with
/// an escape, rare, are decoded first; the others are compared as they are.
fn key_order(a: (&[u8], bool), b: (&[u8], bool)) -> Option<Ordering> {
    if a.1 || b.1 {
        return Some(utf16_order(&decode(a.0)?, &decode(b.0)?));
    }
    Some(utf16_order(a.0, b.0))
}

/// The order of two UTF-8 strings by their UTF-16 code units, without
/// decoding: UTF-8 byte order is code point order, which is UTF-16's except
/// that a character beyond U+FFFF (a surrogate pair, D800–DBFF first) sorts
/// before one of U+E000–U+FFFF. Those are the characters whose UTF-8 lead
/// byte is F0–F4 and EE–EF: the first byte where the strings differ is at
/// the same place within a character in both (their prefix is the same),
/// so lifting EE and EF above F4 there orders them as UTF-16 does.
pub(super) fn utf16_order(a: &[u8], b: &[u8]) -> Ordering {
    fn rank(byte: u8) -> u8 {
        match byte {
            0xee | 0xef => byte + 0x10,
            _ => byte,
        }
    }
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(&x), Some(&y)) => rank(x).cmp(&rank(y)),
        _ => a.len().cmp(&b.len()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::chain::canonical_json;

    fn accepts(text: &[u8]) -> bool {
        canonical_members(text).is_some()
    }

    /// The definition the scan stands in for: a JSON object that
    /// `json::parse` reads and `canonical_json` writes back as it is.
    fn canonical_by_definition(text: &[u8]) -> bool {
        crate::json::parse(text)
            .ok()
            .filter(serde_json::Value::is_object)
            .and_then(|v| canonical_json(&v).ok())
            .is_some_and(|c| c == text)
    }

    /// `canonical` is accepted, each of `not` refused, and the definition
    /// agrees on every one (so each refusal is a real rule, not a
    /// stricter one).
    #[track_caller]
    fn rule(canonical: &[u8], not: &[&[u8]]) {
        let show = |t: &[u8]| String::from_utf8_lossy(t).into_owned();
        assert!(canonical_by_definition(canonical), "{} is canonical", show(canonical));
        assert!(accepts(canonical), "the scan accepts {}", show(canonical));
        for &text in not {
            assert!(!canonical_by_definition(text), "{} is not canonical", show(text));
            assert!(!accepts(text), "the scan refuses {}", show(text));
        }
    }

    #[test]
    fn returns_the_top_level_members_as_write_object_does() {
        let text = br#"{"a":{"y":1,"z":[2]},"b":"x\"y","c\n":null}"#;
        let members = canonical_members(text).expect("canonical");
        let value = crate::json::parse(text).expect("json");
        let mut out = Vec::new();
        let spans = super::super::write_object(value.as_object().expect("object"), &mut out, &mut "$".into())
            .expect("integers");
        assert_eq!(out, text);
        let want: Vec<(&[u8], Range<usize>)> = vec![
            (b"a", spans[0].1.clone()),
            (b"b", spans[1].1.clone()),
            (br"c\n", spans[2].1.clone()),
        ];
        assert_eq!(members, want);
    }

    #[test]
    fn only_an_object_whole_and_alone() {
        rule(
            br#"{"a":1}"#,
            &[
                b"",
                b"[]",
                br#""a""#,
                b"1",
                b"null",
                br#"{"a":1}{}"#,
                br#"{"a":1},"#,
                br#"{"a":1"#,
                br#"{"a":1,}"#,
                br#"{"a"1}"#,
                br#"{"a":}"#,
                br#"{a:1}"#,
                br#"{"a":[1,]}"#,
                br#"{"a":[1 2]}"#,
                br#"{"a":[,1]}"#,
            ],
        );
        rule(b"{}", &[b"{", b"}"]);
    }

    #[test]
    fn no_whitespace_anywhere() {
        rule(
            br#"{"a":[1,{"b":2}]}"#,
            &[
                br#" {"a":[1,{"b":2}]}"#,
                br#"{"a":[1,{"b":2}]} "#,
                br#"{"a":[1,{"b":2}]}
"#,
                br#"{ "a":[1,{"b":2}]}"#,
                br#"{"a" :[1,{"b":2}]}"#,
                br#"{"a": [1,{"b":2}]}"#,
                b"{\"a\":[1,\t{\"b\":2}]}",
                b"{\"a\":[1,{\"b\":2}\r]}",
                b"{\"a\":[1,{\"b\":2}]\n}",
            ],
        );
    }

    #[test]
    fn literals_as_written() {
        rule(
            br#"{"a":[true,false,null]}"#,
            &[
                br#"{"a":[True,false,null]}"#,
                br#"{"a":[true,fals,null]}"#,
                br#"{"a":[true,false,nul]}"#,
                br#"{"a":[true,false,nulll]}"#,
                br#"{"a":[true,false,null"#,
            ],
        );
    }

    #[test]
    fn integers_plain_and_within_2_pow_53() {
        rule(
            br#"{"a":[0,-1,7,10,9007199254740991,-9007199254740991,1000000000000000]}"#,
            &[
                br#"{"a":-0}"#,
                br#"{"a":01}"#,
                br#"{"a":-01}"#,
                br#"{"a":+1}"#,
                br#"{"a":-}"#,
                br#"{"a":1.0}"#,
                br#"{"a":0.5}"#,
                br#"{"a":1e2}"#,
                br#"{"a":1E2}"#,
                br#"{"a":0e0}"#,
                br#"{"a":9007199254740992}"#,
                br#"{"a":-9007199254740992}"#,
                br#"{"a":10000000000000000}"#,
                br#"{"a":18446744073709551616}"#,
                br#"{"a":99999999999999999999999}"#,
            ],
        );
    }

    #[test]
    fn strings_escaped_only_as_write_string_does() {
        rule(
            "{\"a\":\"\\\"\\\\\\b\\t\\n\\f\\r\\u0000\\u000b\\u001f é\u{7f}\u{80}\u{9f}\u{2028}\u{2029}\u{e000}😀/\"}"
                .as_bytes(),
            &[
                br#"{"a":"\/"}"#,
                br#"{"a":"\u0041"}"#,
                br#"{"a":"\u00e9"}"#,
                br#"{"a":"\u001F"}"#,
                br#"{"a":"\u000B"}"#,
                br#"{"a":"\u0008"}"#,
                br#"{"a":"\u0009"}"#,
                br#"{"a":"\u000a"}"#,
                br#"{"a":"\u000c"}"#,
                br#"{"a":"\u000d"}"#,
                br#"{"a":"\u0022"}"#,
                br#"{"a":"\u005c"}"#,
                br#"{"a":"\u007f"}"#,
                br#"{"a":"\u2028"}"#,
                br#"{"a":"\ud83d\ude00"}"#,
                br#"{"a":"\ud800"}"#,
                br#"{"a":"\x"}"#,
                br#"{"a":"\u00"}"#,
                br#"{"a":"\"#,
                b"{\"a\":\"\x01\"}",
                b"{\"a\":\"\t\"}",
                b"{\"a\":\"\n\"}",
                b"{\"a\":\"\x1f\"}",
            ],
        );
    }

    #[test]
    fn valid_utf8_only() {
        rule(
            "{\"é\":\"😀\"}".as_bytes(),
            &[
                b"{\"a\":\"\xff\"}",
                b"{\"a\":\"\xc3\"}",
                b"{\"a\":\"\xc0\x80\"}",
                b"{\"a\":\"\xed\xa0\x80\"}",
                b"{\"a\":\"\xf0\x9f\x98\"}",
                b"{\"\xe9\":1}",
                // A non-breaking space, outside any string.
                b"{\"a\":1}\xc2\xa0",
            ],
        );
    }

    /// RFC 8785 §3.2.3: keys strictly increasing by UTF-16 code units, as
    /// decoded; within every object, at every depth.
    #[test]
    fn keys_strictly_increasing_by_utf16_code_units() {
        rule(
            br#"{"":0,"A":1,"a":2,"aa":3,"b":{"a":[{"x":1,"y":2}],"b":4}}"#,
            &[
                br#"{"b":1,"a":2}"#,
                br#"{"a":1,"a":2}"#,
                br#"{"aa":1,"a":2}"#,
                br#"{"a":1,"":2}"#,
                br#"{"a":{"b":1,"a":2}}"#,
                br#"{"a":{"b":1,"b":2}}"#,
                br#"{"a":[0,{"y":1,"x":2}]}"#,
            ],
        );
        // A character beyond U+FFFF sorts before U+E000–U+FFFF, not after
        // as its code point would.
        rule(
            "{\"z\":0,\"é\":1,\"\u{d7ff}\":2,\"\u{10000}\":3,\"😀\":4,\"\u{10ffff}\":5,\"\u{e000}\":6,\"\u{ffff}\":7}"
                .as_bytes(),
            &[
                "{\"\u{e000}\":1,\"😀\":2}".as_bytes(),
                "{\"\u{ffff}\":1,\"\u{10000}\":2}".as_bytes(),
                "{\"😀\":1,\"\u{d7ff}\":2}".as_bytes(),
            ],
        );
        // Escaped keys compare as decoded: U+0001 < `"` < `\` < `a`, though
        // their escapes, `\u0001` `\"` `\\`, sort otherwise as bytes.
        rule(
            br#"{"\u0001":1,"\"":2,"\\":3,"a":4,"a\n":5,"a\"":6}"#,
            &[
                br#"{"\"":1,"\u0001":2}"#,
                br#"{"a":1,"\\":2}"#,
                br#"{"\\":1,"\"":2}"#,
                br#"{"a\"":1,"a\n":2}"#,
                br#"{"\n":1,"\n":2}"#,
            ],
        );
    }

    /// `json::parse` (serde_json's recursion limit) refuses the 128th
    /// nested container; so does the scan, and it accepts the 127th.
    #[test]
    fn nesting_as_deep_as_json_parse_reads() {
        let nested = |depth: usize, open: &str, close: &str| -> Vec<u8> {
            // The top-level object is the first.
            let inner = depth - 1;
            format!("{{\"a\":{}0{}}}", open.repeat(inner), close.repeat(inner)).into_bytes()
        };
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            rule(&nested(DEPTH_MAX, open, close), &[&nested(DEPTH_MAX + 1, open, close)]);
        }
    }

    fn key_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('\0', '\u{7f}'),
            proptest::char::range('\u{d000}', '\u{d7ff}'),
            proptest::char::range('\u{e000}', '\u{ffff}'),
            proptest::char::range('\u{10000}', '\u{10ffff}'),
            any::<char>(),
        ]
    }

    proptest! {
        /// The eight-byte test is the table's, byte by byte.
        #[test]
        fn eight_bytes_at_a_time_is_the_table(word in prop_oneof![
            any::<[u8; 8]>(),
            (any::<u8>(), 0..8usize, any::<u8>()).prop_map(|(b, at, fill)| {
                let mut word = [fill | 0x40; 8];
                word[at] = b;
                word
            }),
        ]) {
            prop_assert_eq!(
                has_string_special(u64::from_le_bytes(word)),
                word.iter().any(|&b| STRING_SPECIAL[usize::from(b)])
            );
        }

        /// The byte comparison is `chain::key_order`.
        #[test]
        fn utf16_order_is_key_order(
            prefix in proptest::collection::vec(key_char(), 0..3),
            a in proptest::collection::vec(key_char(), 0..4),
            b in proptest::collection::vec(key_char(), 0..4),
        ) {
            let prefix: String = prefix.into_iter().collect();
            let a = format!("{prefix}{}", a.into_iter().collect::<String>());
            let b = format!("{prefix}{}", b.into_iter().collect::<String>());
            prop_assert_eq!(utf16_order(a.as_bytes(), b.as_bytes()), super::super::key_order(&a, &b));
        }
    }
}
