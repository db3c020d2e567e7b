//! The reply every request-reply subject answers with (docs/design.md):
//! `{"ok": true, …}` or `{"ok": false, "error": {code, message, details}}`.
//! Error codes are defined once here; the gateway maps them to HTTP once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Invalid,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RuleViolated,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RuleViolated => "rule_violated",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// `details.reason` of the `rule_violated` reply to a command whose
/// `command_id` was already used for another request (another command,
/// stream, data or actor): nothing was done, and nothing of the first is
/// said. The gateway answers it with a problem type of its own.
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub details: Value,
}

impl ErrorBody {
    /// The refusal of a `command_id` used for another request.
    pub fn is_idempotency_key_reused(&self) -> bool {
        self.code == ErrorCode::RuleViolated
            && self.details.get("reason").and_then(Value::as_str) == Some(IDEMPOTENCY_KEY_REUSED)
    }
}

/// A reply as it travels: `ok` plus either the result's fields or `error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok(Map<String, Value>),
    Err(ErrorBody),
}

impl Reply {
    /// An `ok` reply with the fields of `body` (which must serialize to an
    /// object; anything else is an internal error, never a panic).
    pub fn ok(body: impl Serialize) -> Reply {
        match serde_json::to_value(body) {
            Ok(Value::Object(map)) => Reply::Ok(map),
            Ok(other) => Reply::error(ErrorCode::Internal, format!("reply body is not an object: {other}")),
            Err(e) => Reply::error(ErrorCode::Internal, format!("reply body does not serialize: {e}")),
        }
    }

    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        Reply::Err(ErrorBody {
            code,
            message: message.into(),
            details: Value::Null,
        })
    }

    pub fn error_with(code: ErrorCode, message: impl Into<String>, details: Value) -> Reply {
        Reply::Err(ErrorBody {
            code,
            message: message.into(),
            details,
        })
    }

    /// The refusal of a `command_id` used for another request.
    pub fn idempotency_key_reused(message: impl Into<String>) -> Reply {
        Reply::error_with(
            ErrorCode::RuleViolated,
            message,
            serde_json::json!({ "reason": IDEMPOTENCY_KEY_REUSED }),
        )
    }

    pub fn to_json(&self) -> Value {
        match self {
            Reply::Ok(map) => {
                let mut m = map.clone();
                m.insert("ok".into(), Value::Bool(true));
                Value::Object(m)
            }
            Reply::Err(e) => serde_json::json!({ "ok": false, "error": e }),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // A Value always serializes.
        serde_json::to_vec(&self.to_json()).unwrap_or_default()
    }

    /// Parses a reply received from a peer, refusing what is not one.
    pub fn parse(bytes: &[u8]) -> Result<Reply, String> {
        let v = crate::json::parse(bytes).map_err(|e| format!("reply is not JSON: {e}"))?;
        let Value::Object(mut map) = v else {
            return Err("reply is not a JSON object".into());
        };
        match map.remove("ok") {
            Some(Value::Bool(true)) => Ok(Reply::Ok(map)),
            Some(Value::Bool(false)) => {
                let err = map.remove("error").ok_or("failed reply without error")?;
                serde_json::from_value(err)
                    .map(Reply::Err)
                    .map_err(|e| format!("malformed error in reply: {e}"))
            }
            _ => Err("reply has no boolean ok".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replies_round_trip_in_the_design_shape() {
        let ok = Reply::ok(json!({"id": "x", "version": 2}));
        assert_eq!(ok.to_json(), json!({"ok": true, "id": "x", "version": 2}));
        assert_eq!(Reply::parse(&ok.to_bytes()), Ok(ok));
        let err = Reply::error(ErrorCode::RuleViolated, "operation is closed");
        assert_eq!(
            err.to_json(),
            json!({"ok": false, "error": {"code": "rule_violated", "message": "operation is closed", "details": null}})
        );
        assert_eq!(Reply::parse(&err.to_bytes()), Ok(err));
    }

    #[test]
    fn a_reused_key_is_told_by_its_reason() {
        let reused = Reply::idempotency_key_reused("used for another request");
        let Reply::Err(e) = Reply::parse(&reused.to_bytes()).expect("parses") else {
            panic!("an error")
        };
        assert!(e.is_idempotency_key_reused());
        assert_eq!(e.details, json!({"reason": "idempotency_key_reused"}));
        let Reply::Err(other) = Reply::error(ErrorCode::RuleViolated, "operation is closed") else {
            panic!("an error")
        };
        assert!(!other.is_idempotency_key_reused());
    }

    #[test]
    fn malformed_replies_are_refused() {
        for bad in [
            &b"nope"[..],
            b"[1]",
            b"{}",
            b"{\"ok\":false}",
            b"{\"ok\":false,\"error\":{\"code\":\"weird\"}}",
        ] {
            assert!(Reply::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Reply::ok(json!(3)).to_json()["error"]["code"], "internal");
    }
}
