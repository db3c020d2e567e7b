//! Commands and events as serde enums whose variant name is the command
//! name or the event type, written once (`#[serde(rename = "task.assigned")]`),
//! and read from and written to the wire's `(name, data)` pair without
//! building an intermediate JSON object.
//!
//! Must not: know any service's commands or events.

use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::ser::Serialize;
use serde_json::Value;

/// Why a `(name, data)` pair is not a value of the enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TaggedError(pub String);

impl de::Error for TaggedError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        TaggedError(msg.to_string())
    }
}

/// The variant names of enum `T`, in declaration order: every command name
/// or event type, from the one place they are written.
pub fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Names(Option<&'static [&'static str]>);
    struct Capture<'a>(&'a mut Names);
    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = TaggedError;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TaggedError> {
            Err(TaggedError("not an enum".into()))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, TaggedError> {
            self.0.0 = Some(variants);
            Err(TaggedError("captured".into()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map struct identifier ignored_any
        }
    }
    let mut names = Names(None);
    let _ = T::deserialize(Capture(&mut names));
    names.0.unwrap_or(&[])
}

/// `T`'s variant `tag` with `data` as its content. The content is a JSON
/// object with named fields and nothing else: serde would also fill a
/// struct from an array, by position.
pub fn from_tagged<'de, T: Deserialize<'de>>(tag: &'de str, data: &'de Value) -> Result<T, TaggedError> {
    let kind = match data {
        Value::Object(_) => return T::deserialize(Tagged { tag, data }),
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
    };
    Err(TaggedError(format!("{tag}: data must be a JSON object, not {kind}")))
}

/// The variant name and the content of `value`, an enum of newtype
/// variants.
pub fn to_tagged<T: Serialize>(value: &T) -> Result<(String, Value), TaggedError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) if map.len() == 1 => {
            let Some((tag, data)) = map.into_iter().next() else {
                return Err(TaggedError("an enum of one-field variants".into()));
            };
            Ok((tag, data))
        }
        Ok(_) => Err(TaggedError("not an enum of newtype variants".into())),
        Err(e) => Err(TaggedError(e.to_string())),
    }
}

struct Tagged<'de> {
    tag: &'de str,
    data: &'de Value,
}

impl<'de> Deserializer<'de> for Tagged<'de> {
    type Error = TaggedError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TaggedError> {
        Err(TaggedError("a tagged value is read as an enum only".into()))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TaggedError> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

impl<'de> EnumAccess<'de> for Tagged<'de> {
    type Error = TaggedError;
    type Variant = Content<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Content<'de>), TaggedError> {
        let tag = BorrowedStrDeserializer::<TaggedError>::new(self.tag);
        Ok((seed.deserialize(tag)?, Content(self.data)))
    }
}

struct Content<'de>(&'de Value);

impl<'de> VariantAccess<'de> for Content<'de> {
    type Error = TaggedError;

    fn unit_variant(self) -> Result<(), TaggedError> {
        Err(TaggedError("unit variants carry no data".into()))
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, TaggedError> {
        seed.deserialize(self.0).map_err(|e| TaggedError(e.to_string()))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, TaggedError> {
        Err(TaggedError("tuple variants are not used".into()))
    }

    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value, TaggedError> {
        Err(TaggedError("struct variants are not used".into()))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Close {
        outcome: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Opened {
        title: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Event {
        #[serde(rename = "operation.opened")]
        Opened(Opened),
        #[serde(rename = "operation.closed")]
        Closed(Close),
    }

    #[test]
    fn names_are_listed_from_the_enum() {
        assert_eq!(variant_names::<Event>(), ["operation.opened", "operation.closed"]);
        assert!(variant_names::<Close>().is_empty());
    }

    #[test]
    fn a_tagged_pair_reads_and_writes_without_a_wrapper() {
        let data = json!({"outcome": "done"});
        let e: Event = from_tagged("operation.closed", &data).expect("reads");
        assert_eq!(e, Event::Closed(Close { outcome: "done".into() }));
        assert_eq!(to_tagged(&e).expect("writes"), ("operation.closed".to_owned(), data));
    }

    #[test]
    fn bad_pairs_say_what_is_wrong() {
        let err = from_tagged::<Event>("operation.closed", &json!(["done"])).expect_err("array");
        assert_eq!(err.0, "operation.closed: data must be a JSON object, not an array");
        let err = from_tagged::<Event>("operation.exploded", &json!({})).expect_err("unknown");
        assert!(
            err.0.contains("unknown variant") && err.0.contains("operation.opened"),
            "{err}"
        );
        let err = from_tagged::<Event>("operation.closed", &json!({"outcome": 1})).expect_err("type");
        assert!(err.0.contains("invalid type"), "{err}");
        let err = from_tagged::<Event>("operation.closed", &json!({"outcome": "x", "more": 1})).expect_err("extra");
        assert!(err.0.contains("unknown field"), "{err}");
    }
}
