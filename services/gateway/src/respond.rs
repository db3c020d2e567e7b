//! What every route shares: ids from the path or minted here, a command's
//! answer (`ETag` = new version, `Location` of what was created) and a
//! query's answer (`ETag` = the item's version).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use concord_core::Service;
use serde_json::{Map, Value, json};

use crate::body::{path_uuid, refuse_fields};
use crate::call::CommandId;
use crate::problem::Problem;
use crate::routes::Param;
use crate::{AppState, call};

const PATH_ID: &str = "it comes from the path";
const MINTED: &str = "the gateway assigns it";

/// Mints `field` for a new item (see [`CommandId::mint`]), refusing a
/// client-sent one.
pub fn mint(data: &mut Map<String, Value>, field: &str, command_id: &CommandId) -> Result<(), Problem> {
    refuse_fields(data, &[field], MINTED)?;
    data.insert(field.into(), json!(command_id.mint(field)));
    Ok(())
}

/// Puts the path segment under its field (a UUID when the row says so),
/// refusing a body that has one.
pub fn from_path(data: &mut Map<String, Value>, param: &Param, raw: &str) -> Result<(), Problem> {
    let value = match param.uuid_of {
        Some(what) => json!(path_uuid(raw, what)?),
        None => json!(raw),
    };
    refuse_fields(data, &[param.field], PATH_ID)?;
    data.insert(param.field.into(), value);
    Ok(())
}

fn etag(resp: &mut Response, version: Option<u64>) {
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
}

/// A command's answer: the reply's fields, `ETag` = the new version;
/// `Location` = `{prefix}/{id}` when the command created something.
pub fn answer(
    status: StatusCode,
    service: concord_core::Service,
    reply: Map<String, Value>,
    location_prefix: Option<&str>,
) -> Response {
    let version = reply.get("version").and_then(Value::as_u64);
    // Where the command left its log, for a read that must show it
    // (`Concord-Seen`, docs/design.md).
    let position = reply
        .get("events")
        .and_then(Value::as_array)
        .and_then(|events| events.iter().filter_map(|e| e["seq"].as_u64()).max())
        .map(|seq| format!("{service}:{seq}"));
    let location = location_prefix.and_then(|p| reply.get("id").and_then(Value::as_str).map(|id| format!("{p}/{id}")));
    let mut resp = (status, axum::Json(Value::Object(reply))).into_response();
    etag(&mut resp, version);
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    if let Some(p) = position.and_then(|p| HeaderValue::from_str(&p).ok()) {
        resp.headers_mut().insert(POSITION, p);
    }
    resp
}

/// The response header of a command that appended: `<service>:<seq>` of
/// its last event.
pub const POSITION: &str = "concord-position";
/// The request header of a read that must show what the caller wrote:
/// positions as `Concord-Position` gave them, comma-separated.
pub const SEEN: &str = "concord-seen";

/// A query's answer: the item under `key` in the reply, `ETag` = its version.
pub async fn item(
    gw: &AppState,
    headers: &HeaderMap,
    service: Service,
    name: &str,
    query: Value,
    key: &str,
) -> Result<Response, Problem> {
    let mut reply = call::query(gw, headers, service, name, query).await?;
    let item = reply.remove(key).unwrap_or(Value::Null);
    let version = item.get("version").and_then(Value::as_u64);
    let mut resp = axum::Json(item).into_response();
    etag(&mut resp, version);
    Ok(resp)
}
