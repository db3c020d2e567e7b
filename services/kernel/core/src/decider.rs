//! What every service's pure decider shares: the refusal a decider
//! answers, and reading a command's or an event's JSON body into its type.
//! Pure: no IO, so domain modules depend on it without fjall or NATS.
//!
//! Must not: hold a rule of any service.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::reply::ErrorCode;

/// A refused command: a business answer with a stable code, never a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    RuleViolated(String),
    #[error("{0}")]
    Conflict(String),
}

impl Rejection {
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejection::Invalid(_) => ErrorCode::Invalid,
            Rejection::Forbidden(_) => ErrorCode::Forbidden,
            Rejection::NotFound(_) => ErrorCode::NotFound,
            Rejection::RuleViolated(_) => ErrorCode::RuleViolated,
            Rejection::Conflict(_) => ErrorCode::Conflict,
        }
    }
}

/// The body of command `name` as `T`; anything else is `Invalid`.
pub fn command_body<T: DeserializeOwned>(name: &str, data: Value) -> Result<T, Rejection> {
    // serde also fills a struct from an array, by position; a command body
    // is an object with named fields and nothing else.
    let kind = match &data {
        Value::Object(_) => None,
        Value::Null => Some("null"),
        Value::Bool(_) => Some("a boolean"),
        Value::Number(_) => Some("a number"),
        Value::String(_) => Some("a string"),
        Value::Array(_) => Some("an array"),
    };
    if let Some(kind) = kind {
        return Err(Rejection::Invalid(format!(
            "invalid {name} command: data must be a JSON object, not {kind}"
        )));
    }
    serde_json::from_value(data).map_err(|e| Rejection::Invalid(format!("invalid {name} command: {e}")))
}

/// The data of a stored event of type `what` as `T`; the error names it
/// (a corrupt log, reported, never skipped).
pub fn event_body<'a, T: Deserialize<'a>>(what: &str, data: &'a Value) -> Result<T, String> {
    if !data.is_object() {
        return Err(format!("malformed {what} data: not a JSON object"));
    }
    T::deserialize(data).map_err(|e| format!("malformed {what} data: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Close {
        outcome: String,
    }

    #[test]
    fn command_bodies_are_objects_of_the_right_shape() {
        assert_eq!(
            command_body::<Close>("close", json!({"outcome": "done"})),
            Ok(Close { outcome: "done".into() })
        );
        let err = command_body::<Close>("close", json!(["done"])).expect_err("array");
        assert_eq!(
            err,
            Rejection::Invalid("invalid close command: data must be a JSON object, not an array".into())
        );
        assert!(matches!(
            command_body::<Close>("close", json!({"outcome": 1})),
            Err(Rejection::Invalid(_))
        ));
        assert!(matches!(
            command_body::<Close>("close", json!({"outcome": "x", "more": 1})),
            Err(Rejection::Invalid(_))
        ));
    }

    #[test]
    fn event_bodies_name_what_is_malformed() {
        assert_eq!(
            event_body::<Close>("operation.closed", &json!(null)),
            Err("malformed operation.closed data: not a JSON object".into())
        );
        assert!(event_body::<Close>("operation.closed", &json!({})).is_err_and(|e| e.contains("outcome")));
    }
}
