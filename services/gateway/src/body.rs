//! The JSON body of a command request: a size limit, a content type and a
//! JSON object, each refused with a precise problem. The fields are checked
//! by the service against the command's JSON Schema, not here, so NATS and
//! HTTP clients get the same validation.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use concord_core::json::JsonError;
use concord_core::reply::ErrorCode;
use serde_json::{Map, Value};

use crate::problem::Problem;
use crate::{AppState, BODY_BYTES_MAX};

pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::http(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body is larger than {BODY_BYTES_MAX} bytes"),
                )
            } else {
                Problem::new(ErrorCode::Invalid, format!("body could not be read: {e}"))
            }
        })?;
        // A command with nothing to say besides its path (approve, arrive)
        // may come without a body; the schema still decides if that is
        // enough.
        if bytes.is_empty() {
            return Ok(JsonObject(Map::new()));
        }
        if json_type != Some(true) {
            return Err(Problem::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        match concord_core::json::parse(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(Problem::new(ErrorCode::Invalid, "body must be a JSON object")),
            Err(e @ JsonError::Syntax(_)) => Err(Problem::new(ErrorCode::Invalid, format!("body is not JSON: {e}"))),
            Err(e) => Err(Problem::new(ErrorCode::Invalid, format!("body is refused: {e}"))),
        }
    }
}

/// Ids that come from the path or that the gateway mints may not be sent
/// in the body as well: the answer would be ambiguous.
pub fn refuse_fields(body: &Map<String, Value>, fields: &[&str], why: &str) -> Result<(), Problem> {
    for f in fields {
        if body.contains_key(*f) {
            return Err(Problem::new(
                ErrorCode::Invalid,
                format!("{f} may not be in the body: {why}"),
            ));
        }
    }
    Ok(())
}

/// An id from the path: a UUID, or 400 naming what it should identify.
pub fn path_uuid(raw: &str, what: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(raw).map_err(|_| Problem::new(ErrorCode::Invalid, format!("{what} id {raw:?} is not a UUID")))
}
