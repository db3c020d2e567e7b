//! RFC 9457 problem details: the one place where a reply code becomes an
//! HTTP status (docs/design.md, HTTP API).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_core::reply::{ErrorBody, ErrorCode};
use serde::Serialize;
use serde_json::Value;

pub const CONTENT_TYPE: &str = "application/problem+json";
/// Seconds a client should wait before retrying an `unavailable` answer.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An RFC 9457 problem as it is sent, with Concord's reply code as an
/// extension member.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// `https://concord.example/problems/<code>`
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
        let title = if self.status == status_of(self.code) {
            title_of(self.code)
        } else {
            self.status.canonical_reason().unwrap_or("Invalid request")
        };
        ProblemBody {
            kind: format!("https://concord.example/problems/{}", self.code.as_str()),
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.as_str().to_owned(),
            details: self.details.as_deref().cloned(),
        }
    }

    pub fn from_reply(e: ErrorBody) -> Problem {
        Problem::new(e.code, e.message).with_details(e.details)
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
            StatusCode::SERVICE_UNAVAILABLE => {
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
    fn unavailable_tells_when_to_retry() {
        let r = Problem::new(ErrorCode::Unavailable, "down").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        assert_eq!(r.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
    }
}
