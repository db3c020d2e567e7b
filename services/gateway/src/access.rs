//! The access log's edge: every read through the gateway (a `GET` under
//! `/v1`: views, lists, search, feeds, single objects, the audit's own
//! reads) is recorded in the audit service's access log — who, what, the
//! items the answer held, and the status — and only once the audit has
//! made the record durable does the answer leave; if it cannot be
//! recorded, the reader gets 503 and nothing of the data.
//!
//! Refused reads are recorded with their status (403, 404 …) and so is a
//! 401 whose token is signed by a key the gateway trusts (expired, not yet
//! valid: the person is known). A request with no token, or one no key
//! verifies, names nobody: it is not written to the audit's disk (an
//! anonymous flood must not fill it) but logged here.
//!
//! A streamed answer (a feed's Server-Sent Events, an export) is recorded
//! when it opens, with the ids its path and query name.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use concord_bus::logs::TRACEPARENT;
use concord_contracts::audit::{ITEMS_MAX, URI_PART_BYTES_MAX};
use concord_core::Service;
use concord_core::auth::{self, Claims};
use concord_core::reply::ErrorCode;
use serde_json::{Map, Value, json};

use crate::problem::Problem;
use crate::{AppState, call};

/// Largest answer whose items are read to record them (a page of 500
/// items is far below it); beyond it the read is refused, never recorded
/// without its items.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Longest item name recorded (the schema's bound).
const ITEM_CHARS_MAX: usize = 256;

/// Who the request's bearer token names, when a trusted key signed it.
fn reader(gw: &AppState, headers: &HeaderMap) -> Option<Claims> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let now = chrono::Utc::now().timestamp();
    let token = token.trim();
    auth::verify(token, &gw.config.keys, &gw.config.token_rules, now)
        .or_else(|_| auth::signed_claims(token, &gw.config.keys))
        .ok()
        .filter(|c| (1..=128).contains(&c.sub.len()))
}

/// Every `"stream"` named in an answer, at any depth (a view's items, a
/// feed's events, a timeline's events, an item's own).
fn streams_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) if k == "stream" => out.push(s.clone()),
                    _ => streams_in(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| streams_in(v, out)),
        _ => {}
    }
}

/// The ids a path names (`/v1/operations/<id>` → `<id>`): what a refused
/// read asked for.
fn path_ids(path: &str) -> impl Iterator<Item = String> + '_ {
    path.split('/')
        .filter(|s| s.len() == 36 && uuid::Uuid::parse_str(s).is_ok())
        .map(str::to_owned)
}

fn streamed(resp: &Response) -> bool {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream") || t.starts_with(crate::export::JSONL))
}

/// The headers the record's command may carry: the trace and the
/// request's id, nothing that would change the command (`If-Match`,
/// `Idempotency-Key` are the read's, not the record's).
fn record_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(tp) = headers.get(TRACEPARENT) {
        out.insert(TRACEPARENT, tp.clone());
    }
    if let Some(id) = headers.get("x-request-id")
        && id.to_str().is_ok_and(|s| {
            let s = s.trim();
            !s.is_empty() && s.len() <= call::KEY_BYTES_MAX && s.bytes().all(|b| b.is_ascii_graphic())
        })
    {
        out.insert("x-request-id", id.clone());
    }
    out
}

/// Cut to at most `max` bytes, on a character boundary.
fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The middleware: records every read under `/v1` before answering it.
pub async fn record(State(gw): State<AppState>, req: Request, next: Next) -> Response {
    if !gw.config.access_log || req.method() != Method::GET || !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let reader = reader(&gw, req.headers());
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = record_headers(req.headers());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let Some(reader) = reader else {
        tracing::info!(%path, status, "a read without a verifiable token: not recorded in the access log");
        return resp;
    };
    let mut items = Vec::new();
    let resp = if streamed(&resp) {
        resp
    } else {
        let (parts, body) = resp.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, ANSWER_BYTES_MAX).await else {
            return Problem::new(
                ErrorCode::Internal,
                "the answer could not be read to record it in the access log; nothing of it is returned",
            )
            .into_response();
        };
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            streams_in(&v, &mut items);
        }
        Response::from_parts(parts, Body::from(bytes))
    };
    items.extend(path_ids(&path));
    let mut seen = std::collections::HashSet::new();
    items.retain(|i| !i.is_empty() && i.chars().count() <= ITEM_CHARS_MAX && seen.insert(i.clone()));
    items.truncate(ITEMS_MAX);
    let command_id = match call::CommandId::of(&HeaderMap::new(), &reader) {
        Ok(id) => id,
        Err(p) => return p.into_response(),
    };
    let access_id = command_id.mint("access_id");
    let mut data = Map::new();
    data.insert("access_id".into(), json!(access_id));
    data.insert("method".into(), json!("GET"));
    data.insert("path".into(), json!(bounded(&path, URI_PART_BYTES_MAX)));
    data.insert(
        "query".into(),
        json!(query.as_deref().map(|q| bounded(q, URI_PART_BYTES_MAX))),
    );
    data.insert("status".into(), json!(status));
    data.insert("items".into(), json!(items));
    match call::command(
        &gw,
        &reader,
        &headers,
        &command_id,
        Service::Audit,
        "record_access",
        data,
    )
    .await
    {
        Ok(_) => {
            let mut resp = resp;
            if let Ok(v) = HeaderValue::from_str(&access_id.to_string()) {
                resp.headers_mut().insert("concord-access-id", v);
            }
            resp
        }
        Err(p) => {
            tracing::error!(%path, detail = %p.detail, "a read could not be recorded in the access log");
            Problem::new(
                ErrorCode::Unavailable,
                format!(
                    "the read could not be recorded in the access log, so nothing of it is returned; retry ({})",
                    p.detail
                ),
            )
            .into_response()
        }
    }
}
