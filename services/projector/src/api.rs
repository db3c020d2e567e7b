//! What the projector answers on `concord.qry.projector.<name>` (`view`,
//! `list`, `feed`): the caller's country and role come with each request
//! (the gateway puts in what the token says), and who may read what is
//! decided here, once:
//!
//! - a liaison or a coordinator reads its own country's view, feed and
//!   lists, nothing of another country;
//! - a reviewer reads the notice list (requests under review and
//!   published notices), nothing else;
//! - an auditor reads everything;
//! - what a country may not see is never in its answers (items reach a
//!   country by their contract's audience, see `projection`).

use concord_contracts::{crisis, deployments, intel, operations};
use concord_core::decider::Rejection;
use concord_core::{CountryCode, Role, Service};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::projection::{Item, Projection};
use crate::store::{FeedEntry, Store, StoreError};

/// Most items or feed entries one answer holds.
pub const PAGE_MAX: usize = 500;
/// Items or entries of a page when the request names no limit.
pub const PAGE_DEFAULT: usize = 100;

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    pub country: CountryCode,
    pub role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewRequest {
    pub caller: Caller,
    /// Answer only once these positions are applied (read your writes).
    #[serde(default)]
    pub wait_for: std::collections::BTreeMap<Service, u64>,
    pub country: CountryCode,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedRequest {
    pub caller: Caller,
    /// Answer only once these positions are applied (read your writes).
    #[serde(default)]
    pub wait_for: std::collections::BTreeMap<Service, u64>,
    pub country: CountryCode,
    #[serde(default)]
    pub after: u64,
    #[serde(default)]
    pub max: Option<usize>,
    /// When nothing follows `after` yet, wait this long for an entry
    /// before answering none (a live feed: the gateway's Server-Sent
    /// Events), at most [`FEED_WAIT_MAX_MS`].
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// Longest a feed read may wait for its next entry.
pub const FEED_WAIT_MAX_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    Operations,
    Tasks,
    Notices,
    Crises,
    Deployments,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    pub caller: Caller,
    /// Answer only once these positions are applied (read your writes).
    #[serde(default)]
    pub wait_for: std::collections::BTreeMap<Service, u64>,
    pub kind: ListKind,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub assignee: Option<CountryCode>,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

fn page(limit: Option<usize>) -> Result<usize, Rejection> {
    match limit {
        None => Ok(PAGE_DEFAULT),
        Some(n) if (1..=PAGE_MAX).contains(&n) => Ok(n),
        Some(n) => Err(Rejection::Invalid(format!("limit {n} is not within 1 to {PAGE_MAX}"))),
    }
}

/// A cursor is the last item's `<service>:<stream>`, opaque to clients.
fn cursor(item: &Item) -> String {
    format!("{}:{}", item.service, item.stream)
}

fn parse_cursor(after: Option<&str>) -> Result<Option<(Service, String)>, Rejection> {
    let Some(after) = after else { return Ok(None) };
    let bad = || Rejection::Invalid(format!("cursor {after:?} is not one this API gave"));
    let (service, stream) = after.split_once(':').ok_or_else(bad)?;
    let service = Service::ALL
        .into_iter()
        .find(|s| s.as_str() == service)
        .ok_or_else(bad)?;
    Ok(Some((service, stream.to_owned())))
}

/// May `caller` read `country`'s own view and feed?
fn may_read_country(caller: &Caller, country: CountryCode) -> Result<(), Rejection> {
    match caller.role {
        Role::Auditor => Ok(()),
        Role::Liaison | Role::Coordinator if caller.country == country => Ok(()),
        Role::Liaison | Role::Coordinator => Err(Rejection::Forbidden(format!(
            "a {} of {} reads its own country's view, not {country}'s",
            caller.role.as_str(),
            caller.country
        ))),
        Role::Reviewer => Err(Rejection::Forbidden(
            "a reviewer reads the notice list, not a country's view".into(),
        )),
    }
}

fn entry(p: &Projection, item: &Item) -> Value {
    entry_with(item, p.view(item))
}

fn entry_with(item: &Item, view: Value) -> Value {
    json!({
        "service": item.service,
        "stream": item.stream,
        "version": item.version,
        "item": view,
    })
}

/// `country`'s view: every item it may see, a page at a time.
pub fn view(p: &Projection, req: &ViewRequest) -> Result<Value, Rejection> {
    may_read_country(&req.caller, req.country)?;
    let limit = page(req.limit)?;
    let after = parse_cursor(req.after.as_deref())?;
    // An auditor reading a country's view sees what that country sees.
    let role = Role::Liaison;
    let items: Vec<&Item> = p.seen_by(req.country, role, after.as_ref()).take(limit + 1).collect();
    let more = items.len() > limit;
    let shown = &items[..items.len().min(limit)];
    Ok(json!({
        "country": req.country,
        "position": p.position(),
        "items": shown.iter().map(|i| entry(p, i)).collect::<Vec<_>>(),
        "next": if more { shown.last().map(|i| cursor(i)) } else { None },
    }))
}

fn field_is(view: &Value, field: &str, want: Option<&str>) -> bool {
    want.is_none_or(|w| view.get(field).and_then(Value::as_str) == Some(w))
}

/// A list, filtered to what the caller may see.
pub fn list(p: &Projection, req: &ListRequest) -> Result<Value, Rejection> {
    let caller = req.caller;
    if caller.role == Role::Reviewer && req.kind != ListKind::Notices {
        return Err(Rejection::Forbidden("a reviewer reads the notice list only".into()));
    }
    if req.assignee.is_some() && req.kind != ListKind::Tasks {
        return Err(Rejection::Invalid("assignee filters tasks only".into()));
    }
    if req.color.is_some() && req.kind != ListKind::Notices {
        return Err(Rejection::Invalid("color filters notices only".into()));
    }
    let limit = page(req.limit)?;
    let after = parse_cursor(req.after.as_deref())?;
    let (service, prefix) = match req.kind {
        ListKind::Operations | ListKind::Tasks => (Service::Operations, "operation-"),
        ListKind::Notices => (Service::Intel, "notice-"),
        ListKind::Crises => (Service::Crisis, "crisis-"),
        ListKind::Deployments => (Service::Deployments, "deployment-"),
    };
    // Which statuses and colours exist is each contract's: an unknown one
    // is refused, not answered with an empty list.
    fn known<T: serde::de::DeserializeOwned>(what: &str, value: Option<&str>) -> Result<(), Rejection> {
        match value {
            Some(v) if serde_json::from_value::<T>(json!(v)).is_err() => {
                Err(Rejection::Invalid(format!("no {what} is {v:?}")))
            }
            _ => Ok(()),
        }
    }
    let status = req.status.as_deref();
    match req.kind {
        ListKind::Operations => known::<operations::OperationStatus>("operation status", status)?,
        ListKind::Tasks => known::<operations::TaskStatus>("task status", status)?,
        ListKind::Notices => known::<intel::notice::NoticeStatus>("notice status", status)?,
        ListKind::Crises => known::<crisis::CrisisStatus>("crisis status", status)?,
        ListKind::Deployments => known::<deployments::DeploymentStatus>("deployment status", status)?,
    }
    known::<intel::Color>("notice colour", req.color.as_deref())?;
    let mut out = Vec::new();
    let mut last = None;
    let mut more = false;
    for item in p.seen_by(caller.country, caller.role, after.as_ref()) {
        if item.service != service || !item.stream.starts_with(prefix) {
            continue;
        }
        let view = p.view(item);
        let rows: Vec<Value> = match req.kind {
            ListKind::Tasks => view
                .get("tasks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|t| field_is(t, "status", status))
                .filter(|t| {
                    req.assignee
                        .is_none_or(|a| t.get("assignee_country").and_then(Value::as_str) == Some(a.as_str()))
                })
                .map(|t| {
                    let mut t = t.clone();
                    t["operation_id"] = view["id"].clone();
                    t
                })
                .collect(),
            _ if field_is(&view, "status", status) && field_is(&view, "color", req.color.as_deref()) => {
                vec![entry_with(item, view)]
            }
            _ => vec![],
        };
        if rows.is_empty() {
            continue;
        }
        if out.len() >= limit {
            more = true;
            break;
        }
        out.extend(rows);
        last = Some(cursor(item));
    }
    Ok(json!({
        "items": out,
        "next": if more { last } else { None },
    }))
}

/// `country`'s feed after `after`.
pub fn feed(store: &Store, req: &FeedRequest) -> Result<Result<Value, Rejection>, StoreError> {
    if let Err(e) = may_read_country(&req.caller, req.country) {
        return Ok(Err(e));
    }
    let max = match page(req.max) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    // An auditor reading a country's feed reads what reached that country.
    let entries: Vec<FeedEntry> = store.feed(req.country, Role::Liaison, req.after, max)?;
    let last = entries.last().map_or(req.after, |e| e.position);
    Ok(Ok(json!({
        "country": req.country,
        "events": entries.iter().map(|e| json!({"position": e.position, "event": e.event})).collect::<Vec<_>>(),
        "last": last,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    pub caller: Caller,
    #[serde(default)]
    pub wait_for: std::collections::BTreeMap<Service, u64>,
    pub q: String,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Longest query, in characters.
pub const QUERY_CHARS_MAX: usize = 200;

/// `text` folded for search: transliterated to ASCII by `deunicode` (any
/// script, accents dropped, `ß` → `ss`), lowercased, cut into words.
pub fn words(text: &str) -> Vec<String> {
    deunicode::deunicode(text)
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The searchable texts of an item, each with its weight (a name counts
/// more than a description): published notices, leads and arrests.
fn texts(v: &Value) -> Vec<(u32, String)> {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    match v.get("kind").and_then(Value::as_str) {
        Some("notice") => vec![
            (3, s("/subject/name")),
            (1, s("/subject/description")),
            (1, s("/reason")),
            (1, s("/offence")),
        ],
        Some("lead") => vec![
            (3, s("/subject/name")),
            (1, s("/subject/description")),
            (1, s("/summary")),
            (1, s("/details")),
        ],
        Some("arrest") => vec![(3, s("/person/name"))],
        _ => vec![],
    }
}

/// Published notices and the leads and arrests the caller may see whose
/// texts hold the query's words, best first: each query word found as a
/// word scores its field's weight twice, as the start of a word once; an
/// item must match every query word.
pub fn search(p: &Projection, req: &SearchRequest) -> Result<Value, Rejection> {
    let caller = req.caller;
    let limit = page(req.limit)?;
    if req.q.chars().count() > QUERY_CHARS_MAX {
        return Err(Rejection::Invalid(format!(
            "q is longer than {QUERY_CHARS_MAX} characters"
        )));
    }
    // A query of no letter or digit matches nothing (answered, not
    // refused: it is a well-formed question).
    let wanted = words(&req.q);
    let mut hits: Vec<(u32, &Item)> = Vec::new();
    for item in p.seen_by(caller.country, caller.role, None) {
        // Only intel's streams are searched: the others are not rendered.
        if item.service != Service::Intel {
            continue;
        }
        let view = p.view(item);
        let kind = view.get("kind").and_then(Value::as_str);
        // A reviewer searches notices only; a notice is searched once it
        // was published (a request under review is not a wanted person).
        let searchable = match kind {
            Some("notice") => {
                view.pointer("/review/decision").and_then(Value::as_str) == Some("approve")
                    || caller.role == Role::Reviewer
            }
            Some("lead" | "arrest") => caller.role != Role::Reviewer,
            _ => false,
        };
        if !searchable {
            continue;
        }
        let fields: Vec<(u32, Vec<String>)> = texts(&view).into_iter().map(|(w, t)| (w, words(&t))).collect();
        let mut score = 0;
        let mut all = true;
        for q in &wanted {
            let best = fields
                .iter()
                .map(|(weight, ws)| {
                    if ws.iter().any(|w| w == q) {
                        weight * 2
                    } else if ws.iter().any(|w| w.starts_with(q.as_str())) {
                        *weight
                    } else {
                        0
                    }
                })
                .max()
                .unwrap_or(0);
            all &= best > 0;
            score += best;
        }
        if all && !wanted.is_empty() {
            hits.push((score, item));
        }
    }
    hits.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| (a.1.service, &a.1.stream).cmp(&(b.1.service, &b.1.stream)))
    });
    Ok(json!({
        "q": req.q,
        "items": hits.iter().take(limit).map(|(score, i)| {
            let mut e = entry(p, i);
            e["score"] = json!(score);
            e
        }).collect::<Vec<_>>(),
    }))
}
