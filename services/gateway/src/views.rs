//! The reads the projector answers: a country's view and feed, and the
//! lists (operations, tasks, notices, crises, deployments), each a row of
//! [`VIEWS`], from which the router and `/openapi.json` are both built.
//!
//! The gateway checks the query string's shape (known parameters, a
//! country code, a number) and sends the caller's country and role with
//! the request; who may read which view is the projector's decision.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use concord_contracts::{crisis, deployments, intel, operations};
use concord_core::CountryCode;
use concord_core::reply::ErrorCode;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::problem::Problem;
use crate::{AppState, call};

/// What a query parameter holds, as the gateway checks it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A whole number (`after` of a feed).
    Number,
    /// How many per page: 1 to [`PAGE_MAX`].
    Count,
    /// A country code.
    Country,
    /// One of the values a contract names (a status, a colour).
    OneOf(fn() -> Vec<&'static str>),
    /// An opaque cursor the previous page gave.
    Cursor,
    /// Plain text of 1 to [`QUERY_CHARS_MAX`] characters (a search).
    Text,
    /// A UUID (an operation's id).
    Uuid,
    /// An instant, RFC 3339 (`2026-11-30T10:00:00Z`), sent as ms since
    /// the epoch.
    Instant,
    /// A person's subject as tokens name it (1 to `SUB_BYTES_MAX`
    /// characters of plain text: no token names a longer one).
    Subject,
    /// A writing service's log, by name; required.
    Log,
    /// A signed note, base64 (at most [`NOTE_CHARS_MAX`] characters).
    Note,
}

/// Longest signed note in base64 a query may carry.
pub const NOTE_CHARS_MAX: usize = 4096;

impl Kind {
    /// Whether a read cannot go without it.
    pub fn required(self) -> bool {
        matches!(self, Kind::Text | Kind::Log)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    /// The field of the projector's request it fills.
    pub field: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

/// One read of the projector or of the audit.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub path: &'static str,
    /// Whose query it is: the projector's or the audit's.
    pub asks: &'static str,
    /// Its query (`view`, `feed`, `list`; `timeline` …).
    pub query: &'static str,
    /// A list's kind (`operations` …), sent as `kind`.
    pub list: Option<&'static str>,
    /// Whether the path holds `{cc}`, the country whose view or feed it is.
    pub country: bool,
    /// Other ids in the path (`{id}`, `{sub}`).
    pub path_ids: &'static [QueryParam],
    pub params: &'static [QueryParam],
    pub operation_id: &'static str,
    pub summary: &'static str,
}

/// What a cursor looks like (`<service>:<stream>`, as the projector gives
/// it): documented, and checked here before anything is asked.
pub const CURSOR_PATTERN: &str = "^(operations|intel|crisis|deployments):[!-~]{1,190}$";

/// Longest search query, in characters (the projector's
/// `api::QUERY_CHARS_MAX`).
pub const QUERY_CHARS_MAX: usize = 200;

/// Most items or events one page holds: the projector's
/// `api::PAGE_MAX`, which answers a NATS client the same (a test of the
/// binary keeps the two equal).
pub const PAGE_MAX: usize = 500;

const LIMIT: QueryParam = QueryParam {
    name: "limit",
    field: "limit",
    kind: Kind::Count,
    description: "items per page (1 to 500; 100 when not given)",
};
const AFTER: QueryParam = QueryParam {
    name: "after",
    field: "after",
    kind: Kind::Cursor,
    description: "the `next` cursor of the previous page",
};

const fn status(values: fn() -> Vec<&'static str>) -> QueryParam {
    QueryParam {
        name: "status",
        field: "status",
        kind: Kind::OneOf(values),
        description: "only items in this status",
    }
}

fn names<T>(all: &[T], name: fn(&T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(name).collect()
}

fn operation_statuses() -> Vec<&'static str> {
    names(&operations::OperationStatus::ALL, operations::OperationStatus::as_str)
}
fn task_statuses() -> Vec<&'static str> {
    names(&operations::TaskStatus::ALL, operations::TaskStatus::as_str)
}
fn notice_statuses() -> Vec<&'static str> {
    names(&intel::NoticeStatus::ALL, intel::NoticeStatus::as_str)
}
fn colors() -> Vec<&'static str> {
    names(&intel::Color::ALL, intel::Color::as_str)
}
fn crisis_statuses() -> Vec<&'static str> {
    names(&crisis::CrisisStatus::ALL, crisis::CrisisStatus::as_str)
}
/// The logs an export may name.
pub fn logs() -> Vec<&'static str> {
    names(&concord_core::Service::LOGS, concord_core::Service::as_str)
}

fn deployment_statuses() -> Vec<&'static str> {
    names(
        &deployments::DeploymentStatus::ALL,
        deployments::DeploymentStatus::as_str,
    )
}

const PROJECTOR: &str = concord_bus::permissions::PROJECTOR;
const AUDIT: &str = concord_bus::permissions::AUDIT;

const AT: QueryParam = QueryParam {
    name: "at",
    field: "at",
    kind: Kind::Instant,
    description: "an instant (RFC 3339): only the events whose HLC wall time is at or before it",
};
const OPERATION: QueryParam = QueryParam {
    name: "id",
    field: "operation_id",
    kind: Kind::Uuid,
    description: "an operation's id, or a crisis's (its deployments hang off it)",
};
const EVENTS_AFTER: QueryParam = QueryParam {
    name: "after",
    field: "after",
    kind: Kind::Number,
    description: "the `next` of the previous page (events to skip)",
};

pub static VIEWS: &[View] = &[
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/countries/{cc}/view",
        query: "view",
        list: None,
        country: true,
        params: &[AFTER, LIMIT],
        operation_id: "projector.view",
        summary: "Everything the country may see, a page at a time: its operations (participants, tasks), the leads and arrests it may see, published notices and its own requests, crises, its deployments (its own country's liaison or coordinator; an auditor)",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/countries/{cc}/feed",
        query: "feed",
        list: None,
        country: true,
        params: &[
            QueryParam {
                name: "after",
                field: "after",
                kind: Kind::Number,
                description: "the feed position to read after (0: from the start)",
            },
            QueryParam {
                name: "max",
                field: "max",
                kind: Kind::Count,
                description: "events per answer (1 to 500; 100 when not given)",
            },
        ],
        operation_id: "projector.feed",
        summary: "The events the country may see, in the order the projector applied them, each with its feed position",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/search",
        query: "search",
        list: None,
        country: false,
        params: &[
            QueryParam {
                name: "q",
                field: "q",
                kind: Kind::Text,
                description: "the words to find (a name, as an officer types it: case, accents and script do not matter)",
            },
            LIMIT,
        ],
        operation_id: "projector.search",
        summary: "Published notices and the leads and arrests the caller's country may see whose names and texts hold every word of `q`, best first (a reviewer: notices, published or not)",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/operations",
        query: "list",
        list: Some("operations"),
        country: false,
        params: &[status(operation_statuses), AFTER, LIMIT],
        operation_id: "projector.list_operations",
        summary: "The operations the caller's country leads or takes part in",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/tasks",
        query: "list",
        list: Some("tasks"),
        country: false,
        params: &[
            QueryParam {
                name: "assignee",
                field: "assignee",
                kind: Kind::Country,
                description: "only tasks assigned to this country (a liaison's work queue)",
            },
            status(task_statuses),
            AFTER,
            LIMIT,
        ],
        operation_id: "projector.list_tasks",
        summary: "Tasks of the operations the caller's country sees",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/notices",
        query: "list",
        list: Some("notices"),
        country: false,
        params: &[
            status(notice_statuses),
            QueryParam {
                name: "color",
                field: "color",
                kind: Kind::OneOf(colors),
                description: "only notices of this colour",
            },
            AFTER,
            LIMIT,
        ],
        operation_id: "projector.list_notices",
        summary: "Published notices and the caller's country's own requests (a reviewer: every request and published notice)",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/crises",
        query: "list",
        list: Some("crises"),
        country: false,
        params: &[status(crisis_statuses), AFTER, LIMIT],
        operation_id: "projector.list_crises",
        summary: "Crises (every country sees them)",
    },
    View {
        asks: PROJECTOR,
        path_ids: &[],
        path: "/v1/deployments",
        query: "list",
        list: Some("deployments"),
        country: false,
        params: &[status(deployment_statuses), AFTER, LIMIT],
        operation_id: "projector.list_deployments",
        summary: "The deployments the caller's country hosts or contributes to",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/operations/{id}/timeline",
        query: "timeline",
        list: None,
        country: false,
        path_ids: &[OPERATION],
        params: &[AT, EVENTS_AFTER, LIMIT],
        operation_id: "audit.timeline",
        summary: "Every event of the operation (or crisis) and of what hangs off it (tasks, leads, arrests, notices, deployments linked to it), with actor, time, HLC, command and correlation ids, service and seq, in causal order across services; with `at`, up to that instant (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/operations/{id}/state",
        query: "state",
        list: None,
        country: false,
        path_ids: &[OPERATION],
        params: &[AT],
        operation_id: "audit.state",
        summary: "The operation (or crisis) and what hangs off it as of `at` (now when not given), folded with each service's own rules: `root` (and `operation` for an operation) and `linked` (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/actors/{sub}/actions",
        query: "actions",
        list: None,
        country: false,
        path_ids: &[QueryParam {
            name: "sub",
            field: "sub",
            kind: Kind::Subject,
            description: "the person, as tokens name them (`sub`)",
        }],
        params: &[EVENTS_AFTER, LIMIT],
        operation_id: "audit.actions",
        summary: "Everything one person did, across services, in causal order (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/countries/{cc}/knowledge",
        query: "knowledge",
        list: None,
        country: true,
        path_ids: &[],
        params: &[
            AT,
            QueryParam {
                name: "item",
                field: "item",
                kind: Kind::Uuid,
                description: "an item's id (an operation, a lead, an arrest, a notice, a crisis, a deployment): when each country gained and lost sight of it, instead of the items (takes no other parameter)",
            },
            QueryParam {
                name: "after",
                field: "after",
                kind: Kind::Number,
                description: "the `next` of the previous page (items to skip)",
            },
            LIMIT,
        ],
        operation_id: "audit.knowledge",
        summary: "What the country's liaisons and coordinators could see as of `at` (now when not given), computed with the projector's own projection and each service's audience; or, with `item`, the changes of who could see that item, the country's periods of sight and every named country's (`*`: every country) (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/access",
        query: "access",
        list: None,
        country: false,
        path_ids: &[],
        params: &[
            QueryParam {
                name: "sub",
                field: "sub",
                kind: Kind::Subject,
                description: "only the reads of this person (`sub`)",
            },
            QueryParam {
                name: "item",
                field: "item",
                kind: Kind::Subject,
                description: "only the reads whose answer held, or whose path named, this item (an id, or a stream name such as `lead-<id>`)",
            },
            QueryParam {
                name: "from",
                field: "from",
                kind: Kind::Instant,
                description: "only the reads at or after this instant (RFC 3339)",
            },
            QueryParam {
                name: "to",
                field: "to",
                kind: Kind::Instant,
                description: "only the reads at or before this instant (RFC 3339)",
            },
            EVENTS_AFTER,
            LIMIT,
        ],
        operation_id: "audit.access",
        summary: "Who read what: every read through the gateway, recorded in the audit's access log before it was answered (refused reads too, with their status), each an event of that log: the reader (actor), when, the path and query, the status and the items the answer held; oldest first (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/export",
        query: "export",
        list: None,
        country: false,
        path_ids: &[],
        params: &[
            QueryParam {
                name: "service",
                field: "service",
                kind: Kind::Log,
                description: "the log to export",
            },
            QueryParam {
                name: "from",
                field: "from",
                kind: Kind::Number,
                description: "the first seq (1 when not given)",
            },
            QueryParam {
                name: "to",
                field: "to",
                kind: Kind::Number,
                description: "the last seq (the checkpoint's size when not given, never past it)",
            },
        ],
        operation_id: "audit.export",
        summary: "One log as JSON Lines, each line an event exactly as stored (canonical JSON, RFC 8785, with its hash), streamed, up to the latest checkpoint the audit signed of it, which `Concord-Checkpoint` holds (the signed note, base64): verify the lines against it with the key of /v1/audit/checkpoints/key (schemas/README.md says how) (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/verify",
        query: "verify",
        list: None,
        country: false,
        path_ids: &[],
        params: &[QueryParam {
            name: "checkpoint",
            field: "checkpoint",
            kind: Kind::Note,
            description: "a checkpoint saved earlier (the signed note of /v1/audit/checkpoints/latest, base64): `checkpoint` in the answer says whether its log still extends it (`extends`, `events_after`) or why not (`why`), and `verified` is false if not",
        }],
        operation_id: "audit.verify",
        summary: "Per log: the head seq and hash the audit read to, the events whose chain it checked, and the first seq that failed, if any (auditors)",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/checkpoints/latest",
        query: "checkpoints",
        list: None,
        country: false,
        path_ids: &[],
        params: &[],
        operation_id: "audit.checkpoints",
        summary: "The latest signed checkpoint of each log (C2SP tlog-checkpoint signed notes: `concord/<service>/<log identity>`, size, base64 hash, an Ed25519 signature) and the key that signs them; any role: keep them, and `concord audit verify --checkpoint` proves later that the log still extends them",
    },
    View {
        asks: AUDIT,
        path: "/v1/audit/checkpoints/key",
        query: "key",
        list: None,
        country: false,
        path_ids: &[],
        params: &[],
        operation_id: "audit.key",
        summary: "The verifier key of the audit's checkpoints (`<name>+<key id>+<base64 key>`, as C2SP signed notes write it); any role",
    },
];

fn invalid(message: String) -> Problem {
    Problem::new(ErrorCode::Invalid, message)
}

/// The projector's request for `view` from the path and the query string.
pub fn request(
    view: &View,
    caller: &Caller,
    path: &HashMap<String, String>,
    query: &HashMap<String, String>,
) -> Result<Value, Problem> {
    let mut body = Map::new();
    body.insert(
        "caller".into(),
        json!({"country": caller.0.country, "role": caller.0.role}),
    );
    if let Some(kind) = view.list {
        body.insert("kind".into(), json!(kind));
    }
    if view.country {
        let raw = path.get("cc").map(String::as_str).unwrap_or_default();
        let cc = CountryCode::parse(raw).map_err(|e| invalid(format!("path: {e}")))?;
        body.insert("country".into(), json!(cc));
    }
    for p in view.path_ids {
        let raw = path.get(p.name).map(String::as_str).unwrap_or_default();
        body.insert(
            p.field.into(),
            value(p, raw).map_err(|e| invalid(format!("path: {}", e.detail)))?,
        );
    }
    // A search's words, an export's log.
    if let Some(p) = view
        .params
        .iter()
        .find(|p| p.kind.required() && !query.contains_key(p.name))
    {
        return Err(invalid(format!("{} needs the query parameter {}", view.path, p.name)));
    }
    for (name, raw) in query {
        let Some(p) = view.params.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = view.params.iter().map(|p| p.name).collect();
            return Err(invalid(format!(
                "unknown query parameter {name:?}; {} takes {}",
                view.path,
                known.join(", ")
            )));
        };
        body.insert(p.field.into(), value(p, raw)?);
    }
    Ok(Value::Object(body))
}

/// One query or path parameter's value, checked.
fn value(p: &QueryParam, raw: &str) -> Result<Value, Problem> {
    let name = p.name;
    Ok(match p.kind {
        Kind::Number => raw
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= concord_core::chain::INTEGER_MAX && raw.bytes().all(|b| b.is_ascii_digit()))
            .map(|n| json!(n))
            .ok_or_else(|| invalid(format!("{name} must be a whole number, not {raw:?}")))?,
        Kind::Country => json!(CountryCode::parse(raw).map_err(|e| invalid(format!("{name}: {e}")))?),
        Kind::Note => {
            // A `+` not percent-encoded arrives as a space (form
            // decoding); base64 has no space, so it can only be that.
            let b64 = raw.replace(' ', "+");
            let base64_chars = b64.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
            if b64.is_empty() || b64.len() > NOTE_CHARS_MAX || !base64_chars {
                return Err(invalid(format!(
                    "{name} must be a signed note in base64, at most {NOTE_CHARS_MAX} characters"
                )));
            }
            json!(b64)
        }
        Kind::Log => {
            let logs = logs();
            if !logs.contains(&raw) {
                return Err(invalid(format!(
                    "{name} must be one of {}, not {raw:?}",
                    logs.join(", ")
                )));
            }
            json!(raw)
        }
        Kind::OneOf(values) => {
            let values = values();
            if !values.contains(&raw) {
                return Err(invalid(format!(
                    "{name} must be one of {}, not {raw:?}",
                    values.join(", ")
                )));
            }
            json!(raw)
        }
        Kind::Count => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n) && raw.bytes().all(|b| b.is_ascii_digit()))
            .map(|n| json!(n))
            .ok_or_else(|| {
                invalid(format!(
                    "{name} must be a whole number from 1 to {PAGE_MAX}, not {raw:?}"
                ))
            })?,
        Kind::Text => {
            let plain = raw.chars().all(|c| !c.is_control() || c == '\n' || c == '\t');
            let chars = raw.chars().count();
            if !plain || chars == 0 || chars > QUERY_CHARS_MAX || raw.trim().is_empty() {
                return Err(invalid(format!(
                    "{name} must be 1 to {QUERY_CHARS_MAX} characters of plain text"
                )));
            }
            json!(raw)
        }
        Kind::Cursor => {
            let well_formed = raw.split_once(':').is_some_and(|(service, stream)| {
                ["operations", "intel", "crisis", "deployments"].contains(&service)
                    && (1..=190).contains(&stream.len())
                    && stream.bytes().all(|b| b.is_ascii_graphic())
            });
            if !well_formed {
                return Err(invalid(format!("{name} is not a cursor this API gave")));
            }
            json!(raw)
        }
        Kind::Uuid => json!(
            uuid::Uuid::parse_str(raw)
                .ok()
                .filter(|_| raw.len() == 36)
                .ok_or_else(|| invalid(format!("{name} must be a UUID, not {raw:?}")))?
        ),
        Kind::Instant => {
            let t = chrono::DateTime::parse_from_rfc3339(raw).map_err(|e| {
                invalid(format!(
                    "{name} must be an RFC 3339 instant (2026-11-30T10:00:00Z): {e}"
                ))
            })?;
            // Nothing happened before 1970: an earlier instant is 0.
            json!(u64::try_from(t.timestamp_millis()).unwrap_or(0))
        }
        Kind::Subject => {
            // Counted in characters, as the OpenAPI document's maxLength
            // is: a token's sub (at most this many bytes) never has more.
            let max = concord_core::auth::SUB_BYTES_MAX;
            let chars = raw.chars().count();
            let plain = raw.chars().all(|c| !c.is_control() || c == '\n' || c == '\t');
            if chars == 0 || chars > max || !plain {
                return Err(invalid(format!("{name} must be 1 to {max} characters of plain text")));
            }
            json!(raw)
        }
    })
}

/// `Concord-Seen: intel:55, operations:3` → `{"intel": 55, "operations": 3}`:
/// the projector answers once it has applied those (or 503).
pub fn seen(headers: &HeaderMap) -> Result<Option<Value>, Problem> {
    let mut out = Map::new();
    for value in headers.get_all(crate::respond::SEEN) {
        let text = value
            .to_str()
            .map_err(|_| invalid("Concord-Seen is not visible ASCII".into()))?;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = part.split_once(':').and_then(|(service, seq)| {
                let service = concord_core::Service::ALL.into_iter().find(|s| s.as_str() == service)?;
                let digits = !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
                let seq = seq
                    .parse::<u64>()
                    .ok()
                    .filter(|n| digits && *n <= concord_core::chain::INTEGER_MAX)?;
                Some((service, seq))
            });
            let Some((service, seq)) = parsed else {
                return Err(invalid(format!(
                    "Concord-Seen takes positions as a command answer's Concord-Position gives them (`intel:55`), not {part:?}"
                )));
            };
            let at = out.entry(service.as_str().to_owned()).or_insert(json!(0));
            if at.as_u64().unwrap_or(0) < seq {
                *at = json!(seq);
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// Serves one row of [`VIEWS`].
pub async fn serve(
    view: &'static View,
    gw: AppState,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Path(path) = path.map_err(|e| invalid(e.body_text()))?;
    let Query(query) = query.map_err(|e| invalid(e.body_text()))?;
    let mut body = request(view, &caller, &path, &query)?;
    if let Some(seen) = seen(&headers)? {
        body["wait_for"] = seen;
    }
    if view.query == "feed" && crate::sse::wanted(&headers) {
        return crate::sse::serve(gw, &caller, headers, body).await;
    }
    if view.query == "export" {
        return crate::export::serve(gw, headers, body).await;
    }
    let reply = call::read(&gw, &headers, view.asks, view.query, body).await?;
    Ok(axum::Json(Value::Object(reply)).into_response())
}

/// Handlers of [`VIEWS`] as `(path, handler)`.
pub fn handlers() -> Vec<(&'static str, axum::routing::MethodRouter<AppState>)> {
    VIEWS
        .iter()
        .map(|v| {
            (
                v.path,
                axum::routing::get(move |State(gw), caller, headers, path, query| {
                    serve(v, gw, caller, headers, path, query)
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::Role;
    use concord_core::auth::Claims;

    fn caller() -> Caller {
        Caller(Claims {
            sub: "a".into(),
            role: Role::Liaison,
            country: CountryCode::parse("DE").expect("DE"),
            exp: 0,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
        })
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn seen_positions_are_read_as_command_answers_give_them() {
        let mut h = HeaderMap::new();
        h.append(crate::respond::SEEN, "intel:55, operations:3".parse().expect("header"));
        h.append(crate::respond::SEEN, "intel:7".parse().expect("header"));
        assert_eq!(seen(&h).expect("ok"), Some(json!({"intel": 55, "operations": 3})));
        assert_eq!(seen(&HeaderMap::new()).expect("none"), None);
        for bad in [
            "intel",
            "intel:",
            "nowhere:3",
            "intel:+3",
            "intel:-1",
            "intel:9007199254740992",
        ] {
            let mut h = HeaderMap::new();
            h.insert(crate::respond::SEEN, bad.parse().expect("header"));
            assert!(seen(&h).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_strings_are_checked_before_anything_is_asked() {
        let tasks = VIEWS.iter().find(|v| v.path == "/v1/tasks").expect("tasks");
        let ok = request(tasks, &caller(), &q(&[]), &q(&[("assignee", "DE"), ("status", "done")])).expect("ok");
        assert_eq!(ok["kind"], "tasks");
        assert_eq!(ok["assignee"], "DE");
        assert_eq!(ok["caller"]["country"], "DE");
        for bad in [
            &[("assignee", "XX")][..],
            &[("status", "nope")],
            &[("limit", "0")],
            &[("limit", "501")],
            &[("limit", "-1")],
            &[("limit", "1.5")],
            &[("color", "red")],
            &[("after", "\u{1}")],
        ] {
            assert!(request(tasks, &caller(), &q(&[]), &q(bad)).is_err(), "{bad:?}");
        }
        // A `sub` no token can carry is refused, not looked for.
        let access = VIEWS.iter().find(|v| v.query == "access").expect("access");
        let longest = "é".repeat(concord_core::auth::SUB_BYTES_MAX);
        assert!(request(access, &caller(), &q(&[]), &q(&[("sub", &longest)])).is_ok());
        let longer = format!("{longest}x");
        assert!(request(access, &caller(), &q(&[]), &q(&[("sub", &longer)])).is_err());
        let view = VIEWS.iter().find(|v| v.path.ends_with("/view")).expect("view");
        assert!(request(view, &caller(), &q(&[("cc", "XX")]), &q(&[])).is_err());
        let v = request(view, &caller(), &q(&[("cc", "FR")]), &q(&[])).expect("FR");
        assert_eq!(v["country"], "FR", "who may read FR's view is the projector's call");
    }
}
