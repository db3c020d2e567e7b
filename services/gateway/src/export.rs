//! `GET /v1/audit/export`: one log as JSON Lines, each line an event
//! exactly as the log stores it (canonical JSON with its hash), streamed a
//! page at a time from the audit's `export` query (never the whole
//! history in memory), with the signed checkpoint it was taken against in
//! `Concord-Checkpoint` (the note, base64) so whoever keeps the file can
//! prove it against the audit's key without trusting the operator.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use concord_core::reply::ErrorCode;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::problem::Problem;
use crate::{AppState, call};

/// The media type of the body (JSON Lines).
pub const JSONL: &str = "application/jsonl";
/// The header holding the checkpoint's signed note, base64 (a note spans
/// lines, which a header cannot).
pub const CHECKPOINT: &str = "concord-checkpoint";

#[derive(Deserialize)]
struct Page {
    checkpoint: String,
    size: u64,
    to: u64,
    next: Option<u64>,
    events: Vec<Box<RawValue>>,
}

async fn page(gw: &AppState, headers: &HeaderMap, body: &Value) -> Result<Page, Problem> {
    let payload = call::read_bytes(gw, headers, concord_bus::permissions::AUDIT, "export", body.clone()).await?;
    serde_json::from_slice(&payload).map_err(|e| {
        Problem::new(
            ErrorCode::Internal,
            format!("malformed export page from the audit: {e}"),
        )
    })
}

fn lines(events: &[Box<RawValue>]) -> Bytes {
    let mut out = Vec::with_capacity(events.iter().map(|e| e.get().len() + 1).sum());
    for e in events {
        out.extend_from_slice(e.get().as_bytes());
        out.push(b'\n');
    }
    Bytes::from(out)
}

/// Serves the export request `body` (as `views::request` built it).
pub async fn serve(gw: AppState, headers: HeaderMap, body: Value) -> Result<Response, Problem> {
    // The first page is read before answering, so a refusal is an
    // ordinary problem and the checkpoint can go in the headers.
    let first = page(&gw, &headers, &body).await?;
    let checkpoint = base64::engine::general_purpose::STANDARD.encode(first.checkpoint.as_bytes());
    let (size, to, next) = (first.size, first.to, first.next);
    let head = lines(&first.events);
    let rest = futures::stream::unfold(next, move |next| {
        let (gw, headers, mut body) = (gw.clone(), headers.clone(), body.clone());
        async move {
            let from = next?;
            body["from"] = from.into();
            body["to"] = to.into();
            match page(&gw, &headers, &body).await {
                Ok(p) if !p.events.is_empty() => Some((Ok::<_, std::io::Error>(lines(&p.events)), p.next)),
                Ok(_) => Some((
                    Err(std::io::Error::other(format!("the audit gave no event at seq {from}"))),
                    None,
                )),
                // The status line is gone: a cut body (no last chunk) is
                // how the client learns, and the lines it has still verify.
                Err(p) => {
                    tracing::warn!(detail = %p.detail, "an export stopped before its end");
                    Some((Err(std::io::Error::other(p.detail)), None))
                }
            }
        }
    });
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(rest);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSONL));
    if let Ok(v) = HeaderValue::from_str(&checkpoint) {
        h.insert(CHECKPOINT, v);
    }
    h.insert("concord-checkpoint-size", HeaderValue::from(size));
    h.insert("concord-export-to", HeaderValue::from(to));
    Ok(resp)
}
