//! RFC 9457 problem details: the one place where a reply code becomes an
//! HTTP status (docs/design.md, HTTP API).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_core::reply::{ErrorBody, ErrorCode};
use serde::Serialize;
use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/problem+json";
/// Every problem type is `<TYPE_BASE><name>`: a reply code's own
/// (`…/not_found`) or a [`Subtype`]'s.
pub const TYPE_BASE: &str = "https://concord.example/problems/";
/// Seconds a client should wait before retrying an `unavailable` answer.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An RFC 9457 problem as it is sent, with Concord's reply code as an
/// extension member.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// `<TYPE_BASE><code>`, or `<TYPE_BASE><subtype>` for a refusal a
    /// client must tell apart from the others of its code.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The reply code: invalid, unauthorized, forbidden, not_found, conflict,
    /// rule_violated, unavailable, internal.
    pub code: String,
    /// Machine-readable particulars (schema paths that failed, versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// An error answer on its way out; small, since every handler returns it.
#[derive(Debug, Clone)]
pub struct Problem {
    pub code: ErrorCode,
    pub status: StatusCode,
    pub detail: String,
    pub details: Option<Box<Value>>,
    pub subtype: Option<Subtype>,
}

/// A refusal with a problem type of its own beside its code's, because a
/// client must act on it differently (RFC 9457, 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subtype {
    /// The `Idempotency-Key` named another request (another route, body
    /// or role): 422, as draft-ietf-httpapi-idempotency-key-header has it
    /// for a key reused with another payload.
    IdempotencyKeyReused,
}

impl Subtype {
    pub const ALL: [Subtype; 1] = [Subtype::IdempotencyKeyReused];

    pub fn uri(self) -> String {
        format!("{TYPE_BASE}{}", self.name())
    }

    /// The last segment of its type URI.
    pub fn name(self) -> &'static str {
        match self {
            Subtype::IdempotencyKeyReused => concord_core::reply::IDEMPOTENCY_KEY_REUSED,
        }
    }

    pub fn code(self) -> ErrorCode {
        match self {
            Subtype::IdempotencyKeyReused => ErrorCode::RuleViolated,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Subtype::IdempotencyKeyReused => "Idempotency-Key is already used",
        }
    }

    /// What it means, for the API's description.
    pub fn description(self) -> &'static str {
        match self {
            Subtype::IdempotencyKeyReused => {
                "the Idempotency-Key was already used for another request (another route, body or role); \
                 nothing was done, and nothing of the first request is told"
            }
        }
    }

    /// The subtype of a service's refusal, if it has one.
    fn of(e: &ErrorBody) -> Option<Subtype> {
        e.is_idempotency_key_reused().then_some(Subtype::IdempotencyKeyReused)
    }
}

/// Every problem type the API answers with, `(type URI, title)`: each
/// reply code's, then each subtype's.
pub fn types() -> Vec<(String, &'static str)> {
    CODES
        .iter()
        .map(|c| (format!("{TYPE_BASE}{}", c.as_str()), title_of(*c)))
        .chain(Subtype::ALL.iter().map(|s| (s.uri(), s.title())))
        .collect()
}

/// Every reply code, as the API documents them. Kept beside [`status_of`]:
/// its exhaustive match is where a code the kernel adds first breaks the
/// build.
pub const CODES: [ErrorCode; 8] = [
    ErrorCode::Invalid,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::RuleViolated,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Invalid => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        // Well-formed but refused by a business rule: 422, so clients can
        // tell "fix the request" (400) from "the operation does not allow it".
        ErrorCode::RuleViolated => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Invalid => "Invalid request",
        ErrorCode::Unauthorized => "Not authenticated",
        ErrorCode::Forbidden => "Not allowed",
        ErrorCode::NotFound => "Not found",
        ErrorCode::Conflict => "Conflict",
        ErrorCode::RuleViolated => "Refused by a rule",
        ErrorCode::Unavailable => "Temporarily unavailable",
        ErrorCode::Internal => "Internal error",
    }
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            code,
            status: status_of(code),
            detail: detail.into(),
            details: None,
            subtype: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Problem {
        if !details.is_null() {
            self.details = Some(Box::new(details));
        }
        self
    }

    /// A problem with an HTTP status that has no reply code of its own
    /// (413, 415): reported under the closest code, `invalid`.
    pub fn http(status: StatusCode, detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(ErrorCode::Invalid, detail);
        p.status = status;
        p
    }

    pub fn body(&self) -> ProblemBody {
        let title = match self.subtype {
            Some(s) => s.title(),
            None if self.status == status_of(self.code) => title_of(self.code),
            None => self.status.canonical_reason().unwrap_or("Invalid request"),
        };
        let name = self.subtype.map_or(self.code.as_str(), Subtype::name);
        ProblemBody {
            kind: format!("{TYPE_BASE}{name}"),
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: printable(&self.detail),
            code: self.code.as_str().to_owned(),
            details: self.details.as_deref().map(printable_value),
        }
    }

    pub fn from_reply(e: ErrorBody) -> Problem {
        match Subtype::of(&e) {
            // The service speaks of a command id; over HTTP that id is the
            // caller's key.
            Some(Subtype::IdempotencyKeyReused) => Problem {
                subtype: Some(Subtype::IdempotencyKeyReused),
                ..Problem::new(
                    e.code,
                    "this Idempotency-Key was already used for another request; a key names one \
                     request (its route, body and role), so send this one with a new key",
                )
                .with_details(e.details)
            },
            None => Problem::new(e.code, e.message).with_details(e.details),
        }
    }
}

/// `text` with each control character written as `\u{…}`. A problem often
/// quotes what the client sent (a key, a value, where it is); quoted raw,
/// a NUL, an escape sequence or a line break in it would reach the
/// terminal or the log line of whoever reads the problem, where it can
/// hide or forge what they see.
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\u{{{:04x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn printable_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(printable(s)),
        Value::Array(items) => Value::Array(items.iter().map(printable_value).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (printable(k), printable_value(v))).collect())
        }
        other => other.clone(),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status;
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        match status {
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            StatusCode::UNAUTHORIZED => {
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    /// What a problem quotes of a request never carries its control
    /// characters raw, in `detail` nor in `details`.
    #[test]
    fn quoted_input_is_printable() {
        let p = Problem::new(ErrorCode::Invalid, "key \"a\u{1b}[31m\nb\" at $.x\u{0}")
            .with_details(serde_json::json!([{"message": "bell\u{7}", "k\u{85}": 1}]));
        let body = p.body();
        assert_eq!(body.detail, "key \"a\\u{001b}[31m\\u{000a}b\" at $.x\\u{0000}");
        assert_eq!(
            body.details,
            Some(serde_json::json!([{"message": "bell\\u{0007}", "k\\u{0085}": 1}]))
        );
        assert_eq!(Problem::new(ErrorCode::Invalid, "plain ü").body().detail, "plain ü");
    }

    use super::*;

    #[test]
    fn every_code_has_its_status() {
        let statuses = [400, 401, 403, 404, 409, 422, 503, 500];
        for (code, status) in CODES.into_iter().zip(statuses) {
            let p = Problem::new(code, "x").body();
            assert_eq!(p.status, status, "{code:?}");
            assert_eq!(p.code, code.as_str());
            assert!(p.kind.ends_with(code.as_str()));
        }
    }

    #[test]
    fn a_reused_key_has_its_own_type() {
        let reply = concord_core::reply::Reply::idempotency_key_reused("the command id was already used");
        let concord_core::reply::Reply::Err(e) = reply else {
            panic!("an error")
        };
        let p = Problem::from_reply(e).body();
        assert_eq!(p.status, 422);
        assert_eq!(p.code, "rule_violated");
        assert_eq!(p.kind, "https://concord.example/problems/idempotency_key_reused");
        assert_eq!(p.title, "Idempotency-Key is already used");
        assert!(p.detail.contains("Idempotency-Key"), "{}", p.detail);
        let other = Problem::from_reply(ErrorBody {
            code: ErrorCode::RuleViolated,
            message: "operation is closed".into(),
            details: Value::Null,
        })
        .body();
        assert_eq!(other.kind, "https://concord.example/problems/rule_violated");
        let types = types();
        assert_eq!(types.len(), CODES.len() + Subtype::ALL.len());
        assert!(types.iter().any(|(t, _)| *t == p.kind));
    }

    #[test]
    fn unavailable_tells_when_to_retry() {
        let r = Problem::new(ErrorCode::Unavailable, "down").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
