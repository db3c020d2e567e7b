//! `inspect` (scan first) against `inspect_strictly` (the definition) on
//! sealed records and on records bent out of canonical form, as a writer
//! that does not follow RFC 8785 or an edit of the stored bytes would.
//!
//! The data of most records is written non-canonically *before* sealing,
//! so its digest and the hash match the bytes: only the form check can
//! refuse such a record, and the scan must not be what lets it through.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::tests::envelope;
use super::*;

/// Characters that exercise every rule of `write_string` and `key_order`:
/// few letters (so keys collide), controls, `"` `\` `/`, DEL, C1, the line
/// separators, U+D000–U+D7FF, U+E000–U+FFFF and beyond U+FFFF.
fn a_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'd'),
        3 => proptest::char::range('\0', '\u{7f}'),
        1 => proptest::char::range('\u{80}', '\u{9f}'),
        1 => proptest::sample::select(vec![
            '"', '\\', '/', '\u{7f}', 'é', '\u{2028}', '\u{2029}', '\u{d7ff}', '\u{e000}', '\u{fffd}',
            '\u{ffff}', '\u{10000}', '😀', '\u{10ffff}',
        ]),
        1 => proptest::char::range('\u{e000}', '\u{ffff}'),
        1 => proptest::char::range('\u{10000}', '\u{10ffff}'),
        1 => any::<char>(),
    ]
}

fn a_text(max: usize) -> impl Strategy<Value = String> {
    vec(a_char(), 0..=max).prop_map(|cs| cs.into_iter().collect())
}

fn an_integer() -> impl Strategy<Value = i64> {
    #[allow(clippy::cast_possible_wrap)]
    let max = INTEGER_MAX as i64;
    prop_oneof![
        proptest::sample::select(vec![0, 1, -1, 9, 10, -10, max, -max, max - 1, 1 << 40]),
        -max..=max,
        -1000i64..1000,
    ]
}

/// Any value Concord admits as data: nested objects and arrays, unicode
/// keys and strings, integers up to ±(2^53−1).
fn a_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        an_integer().prop_map(Value::from),
        a_text(6).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((a_text(3), inner), 0..6).prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A way to write one node of the data other than canonically. Indexes
/// count the nodes of that kind in writing order (modulo their number).
#[derive(Debug, Clone)]
enum Twist {
    None,
    /// Two adjacent members of an object in the wrong order.
    SwapMembers {
        object: usize,
        member: usize,
    },
    /// A member written twice.
    DuplicateMember {
        object: usize,
        member: usize,
    },
    /// One character of a string (value or key) escaped another way.
    Escape {
        string: usize,
        char: usize,
        upper: bool,
    },
    /// `\/` added to a string.
    Solidus {
        string: usize,
    },
    /// An integer written another way, or replaced by one out of range.
    Number {
        number: usize,
        style: usize,
    },
    /// Whitespace before a node.
    Space {
        node: usize,
        space: usize,
    },
}

const NUMBER_STYLES: usize = 11;
const SPACES: [&str; 4] = [" ", "\n", "\t", "\r"];

fn a_twist() -> impl Strategy<Value = Twist> {
    let i = || 0..64usize;
    prop_oneof![
        6 => Just(Twist::None),
        1 => (i(), i()).prop_map(|(object, member)| Twist::SwapMembers { object, member }),
        1 => (i(), i()).prop_map(|(object, member)| Twist::DuplicateMember { object, member }),
        2 => (i(), i(), any::<bool>()).prop_map(|(string, char, upper)| Twist::Escape { string, char, upper }),
        1 => i().prop_map(|string| Twist::Solidus { string }),
        2 => (i(), 0..NUMBER_STYLES).prop_map(|(number, style)| Twist::Number { number, style }),
        1 => (i(), 0..SPACES.len()).prop_map(|(node, space)| Twist::Space { node, space }),
    ]
}

/// Writes `canonical_json(value)`, but with `twist` applied to the node it
/// picks; counts the nodes of each kind as it goes.
#[derive(Default)]
struct Writer {
    out: String,
    objects: usize,
    strings: usize,
    numbers: usize,
    nodes: usize,
}

impl Writer {
    /// Numbers of objects with two members or more, strings, integers, nodes.
    fn count(value: &Value) -> [usize; 4] {
        let mut w = Writer::default();
        w.value(value, &Twist::None);
        [w.objects, w.strings, w.numbers, w.nodes]
    }

    fn write(value: &Value, twist: &Twist) -> Vec<u8> {
        let [objects, strings, numbers, nodes] = Self::count(value);
        let pick = |i: usize, of: usize| if of == 0 { usize::MAX } else { i % of };
        let twist = match *twist {
            Twist::SwapMembers { object, member } => Twist::SwapMembers {
                object: pick(object, objects),
                member,
            },
            Twist::DuplicateMember { object, member } => Twist::DuplicateMember {
                object: pick(object, objects),
                member,
            },
            Twist::Escape { string, char, upper } => Twist::Escape {
                string: pick(string, strings),
                char,
                upper,
            },
            Twist::Solidus { string } => Twist::Solidus {
                string: pick(string, strings),
            },
            Twist::Number { number, style } => Twist::Number {
                number: pick(number, numbers),
                style,
            },
            Twist::Space { node, space } => Twist::Space {
                node: pick(node, nodes),
                space,
            },
            Twist::None => Twist::None,
        };
        let mut w = Writer::default();
        w.value(value, &twist);
        w.out.into_bytes()
    }

    fn value(&mut self, value: &Value, twist: &Twist) {
        if let Twist::Space { node, space } = *twist
            && node == self.nodes
        {
            self.out.push_str(SPACES[space]);
        }
        self.nodes += 1;
        match value {
            Value::Number(n) => {
                let n = n.as_i64().expect("integers only");
                let at = self.numbers;
                self.numbers += 1;
                match *twist {
                    Twist::Number { number, style } if number == at => self.out.push_str(&match style {
                        0 => format!("{n}.0"),
                        1 => format!("{n}e0"),
                        2 => format!("{n}E0"),
                        3 => format!("{n}.5"),
                        4 => "-0".into(),
                        5 if n < 0 => format!("-0{}", -n),
                        5 => format!("0{n}"),
                        6 => format!("+{n}"),
                        7 => "9007199254740992".into(),
                        8 => "-9007199254740992".into(),
                        9 => "18446744073709551616".into(),
                        _ => "1e16".into(),
                    }),
                    _ => self.out.push_str(&n.to_string()),
                }
            }
            Value::String(s) => self.string(s, twist),
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.value(item, twist);
                }
                self.out.push(']');
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable_by(|a, b| key_order(a, b));
                if keys.len() >= 2 {
                    let at = self.objects;
                    self.objects += 1;
                    match *twist {
                        Twist::SwapMembers { object, member } if object == at => {
                            let m = member % (keys.len() - 1);
                            keys.swap(m, m + 1);
                        }
                        Twist::DuplicateMember { object, member } if object == at => {
                            let m = member % keys.len();
                            keys.insert(m, keys[m]);
                        }
                        _ => {}
                    }
                }
                self.out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.string(key, twist);
                    self.out.push(':');
                    self.value(&map[key.as_str()], twist);
                }
                self.out.push('}');
            }
            other => self.out.push_str(&other.to_string()),
        }
    }

    fn string(&mut self, s: &str, twist: &Twist) {
        let at = self.strings;
        self.strings += 1;
        let canonical = |s: &str| {
            let mut out = Vec::new();
            write_string(s, &mut out);
            String::from_utf8(out).expect("utf-8")
        };
        match *twist {
            Twist::Escape { string, char, upper } if string == at && !s.is_empty() => {
                let chars: Vec<char> = s.chars().collect();
                let c = char % chars.len();
                let mut units = [0u16; 2];
                let escaped: String = chars[c]
                    .encode_utf16(&mut units)
                    .iter()
                    .map(|u| {
                        if upper {
                            format!("\\u{u:04X}")
                        } else {
                            format!("\\u{u:04x}")
                        }
                    })
                    .collect();
                let before: String = chars[..c].iter().collect();
                let after: String = chars[c + 1..].iter().collect();
                let (before, after) = (canonical(&before), canonical(&after));
                self.out.push_str(&before[..before.len() - 1]);
                self.out.push_str(&escaped);
                self.out.push_str(&after[1..]);
            }
            Twist::Solidus { string } if string == at => {
                let written = canonical(s);
                self.out.push_str(&written[..written.len() - 1]);
                self.out.push_str("\\/\"");
            }
            _ => self.out.push_str(&canonical(s)),
        }
    }
}

/// An edit of the envelope's own members, on the sealed bytes.
#[derive(Debug, Clone)]
enum Edit {
    None,
    Swap(usize),
    Duplicate(usize),
    Drop(usize),
    Replace(usize, usize),
}

/// Values put in place of a member's: some are what an envelope may hold
/// (so the record stays canonical and the scan's reads are what is
/// tested), some not.
const REPLACEMENTS: &[&str] = &[
    "0",
    "7",
    "-7",
    "7.0",
    "9007199254740991",
    "9007199254740992",
    "\"7\"",
    "null",
    "{}",
    "[]",
    "true",
    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
    "\"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"",
    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\"",
    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\"",
    "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\\u0000\"",
    "[\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]",
];

fn an_edit() -> impl Strategy<Value = Edit> {
    let i = || 0..32usize;
    prop_oneof![
        4 => Just(Edit::None),
        1 => i().prop_map(Edit::Swap),
        1 => i().prop_map(Edit::Duplicate),
        1 => i().prop_map(Edit::Drop),
        3 => (i(), 0..REPLACEMENTS.len()).prop_map(|(m, r)| Edit::Replace(m, r)),
    ]
}

impl Edit {
    /// The sealed record with the edit, when it is canonical (the members
    /// are then known from `write_object`).
    fn apply(&self, record: &[u8]) -> Vec<u8> {
        let Ok(Value::Object(map)) = crate::json::parse(record) else {
            return record.to_vec();
        };
        let mut out = Vec::new();
        let Ok(spans) = write_object(&map, &mut out, &mut "$".into()) else {
            return record.to_vec();
        };
        if out != record || matches!(self, Edit::None) {
            return record.to_vec();
        }
        let mut members: Vec<Vec<u8>> = spans.iter().map(|(_, span)| record[span.clone()].to_vec()).collect();
        let n = members.len();
        match *self {
            Edit::None => {}
            Edit::Swap(m) => members.swap(m % (n - 1), m % (n - 1) + 1),
            Edit::Duplicate(m) => members.insert(m % n, members[m % n].clone()),
            Edit::Drop(m) => drop(members.remove(m % n)),
            Edit::Replace(m, r) => {
                let (key, _) = &spans[m % n];
                let mut member = Vec::new();
                write_string(key, &mut member);
                member.push(b':');
                member.extend_from_slice(REPLACEMENTS[r].as_bytes());
                members[m % n] = member;
            }
        }
        let mut edited = b"{".to_vec();
        edited.extend_from_slice(&members.join(&b","[..]));
        edited.push(b'}');
        edited
    }
}

/// An edit of the stored bytes.
#[derive(Debug, Clone)]
enum ByteEdit {
    Flip { at: usize, with: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize },
}

fn a_byte_edit() -> impl Strategy<Value = ByteEdit> {
    let pieces: Vec<&[u8]> = vec![
        b" ",
        b"\n",
        b"\t",
        b"\r",
        b"\"",
        b"\\",
        b",",
        b":",
        b"{",
        b"}",
        b"[",
        b"]",
        b"0",
        b"-",
        b".",
        b"e",
        b"\\/",
        b"\\u0041",
        b"\xff",
        b"\xc3",
        b"\xc0\x80",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98",
        b"\x01",
        b"\x7f",
    ];
    let i = || any::<usize>();
    prop_oneof![
        (i(), 1..=255u8).prop_map(|(at, with)| ByteEdit::Flip { at, with }),
        (i(), proptest::sample::select(pieces)).prop_map(|(at, p)| ByteEdit::Insert { at, bytes: p.to_vec() }),
        (i(), any::<u8>()).prop_map(|(at, b)| ByteEdit::Insert { at, bytes: vec![b] }),
        i().prop_map(|at| ByteEdit::Delete { at }),
    ]
}

impl ByteEdit {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match self {
            ByteEdit::Flip { at, with } => {
                let at = at % bytes.len();
                bytes[at] ^= with;
            }
            ByteEdit::Insert { at, bytes: b } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            ByteEdit::Delete { at } => {
                let at = at % bytes.len();
                bytes.remove(at);
            }
        }
    }
}

/// A sealed record of `data` written as `twist` says.
fn sealed(text: String, seq: u64, prev_hash: String, data: Value, twist: &Twist) -> (EventEnvelope, Vec<u8>) {
    let (mut env, _) = envelope(text.clone(), text.clone(), text.clone(), 0, "s".into(), Some(text));
    env.seq = seq;
    env.prev_hash = prev_hash;
    let written = Writer::write(&data, twist);
    env.data = data;
    let stored = seal(&mut env, &written);
    (env, stored)
}

/// `inspect` gives what the definition gives, and when the scan accepts,
/// the definition agrees the record is canonical and has those members.
fn same_as_strict(bytes: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(inspect(bytes), inspect_strictly(bytes));
    if let Some(members) = scan::canonical_members(bytes) {
        let value = crate::json::parse(bytes);
        prop_assert!(value.is_ok(), "the scan accepted what json::parse refuses: {value:?}");
        let Ok(Value::Object(map)) = value else {
            return Err(TestCaseError::fail("the scan accepted a record that is no object"));
        };
        let mut canonical = Vec::new();
        let spans = write_object(&map, &mut canonical, &mut "$".into());
        prop_assert!(spans.is_ok(), "the scan accepted a number out of range: {spans:?}");
        prop_assert!(
            canonical == bytes,
            "the scan accepted a non-canonical record: {}",
            String::from_utf8_lossy(bytes)
        );
        let spans: Vec<Range<usize>> = spans.into_iter().flatten().map(|(_, span)| span).collect();
        let scanned: Vec<Range<usize>> = members.into_iter().map(|(_, span)| span).collect();
        prop_assert_eq!(scanned, spans);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn inspect_is_inspect_strictly(
        text in a_text(6),
        seq in prop_oneof![12 => 1..1000u64, 1 => Just(0u64), 1 => Just(INTEGER_MAX), 1 => Just(INTEGER_MAX + 1)],
        prev_hash in prop_oneof![
            6 => "[0-9a-f]{64}",
            1 => Just(GENESIS_HASH.to_owned()),
            1 => "[0-9a-fA-F]{63,65}",
        ],
        data in a_value(),
        twist in a_twist(),
        edit in an_edit(),
        byte_edits in prop_oneof![vec(a_byte_edit(), 0..1), vec(a_byte_edit(), 1..3)],
    ) {
        let (env, stored) = sealed(text, seq, prev_hash.clone(), data, &twist);
        if matches!(twist, Twist::None) && seq <= INTEGER_MAX {
            // Every record `seal` writes takes the fast path (a prev_hash
            // that is not 64 lowercase hex digits is canonical too, and
            // refused after).
            prop_assert!(scan::canonical_members(&stored).is_some(), "{}", String::from_utf8_lossy(&stored));
            if is_hex64(prev_hash.as_bytes()) {
                prop_assert_eq!(inspect(&stored).map(|l| l.computed), Ok(env.hash.clone()));
            }
        }
        same_as_strict(&stored)?;
        let mut bytes = edit.apply(&stored);
        same_as_strict(&bytes)?;
        for byte_edit in &byte_edits {
            byte_edit.apply(&mut bytes);
            same_as_strict(&bytes)?;
        }
    }
}

/// Data nested as deep as `json::parse` reads, and deeper, each way.
#[test]
fn deep_nesting() {
    for depth in scan::DEPTH_MAX - 3..=scan::DEPTH_MAX + 3 {
        // The record is the first level, its data the second.
        let nested = |wrap: &dyn Fn(Value) -> Value| (1..depth).fold(json!(0), |v, _| wrap(v));
        for data in [nested(&|v| json!([v])), nested(&|v| json!({ "k": v }))] {
            let (_, stored) = sealed("x".into(), 1, GENESIS_HASH.into(), data, &Twist::None);
            assert_eq!(inspect(&stored), inspect_strictly(&stored), "depth {depth}");
            assert_eq!(
                scan::canonical_members(&stored).is_some(),
                depth <= scan::DEPTH_MAX,
                "depth {depth}"
            );
        }
    }
}
