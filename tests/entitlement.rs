//! Black-box: the entitlement oracle. A seeded random history over twelve
//! countries is driven through `concord up` over HTTP (operations with
//! participants added and removed, tasks, restricted and unrestricted
//! leads, arrests, notices approved, rejected and cancelled, diffusions,
//! crises, deployments approved); then, for every country, its view, its
//! lists and its feed are compared with a deliberately simple
//! recomputation of what it is entitled to, written here from
//! docs/design.md (Visibility). An extra item is a leak, a missing one a
//! loss: both fail.
//!
//! `CONCORD_ORACLE_SEEDS=1,2,3…` runs other seeds (a longer run).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Up, free_addr, token_for, up};
use serde_json::{Value, json};

const COUNTRIES: [&str; 12] = ["FR", "DE", "ES", "IT", "NL", "PL", "US", "BE", "AT", "PT", "SE", "GR"];
const STEPS: usize = 160;
/// How long the projector may take to show what was acknowledged.
const CATCH_UP: Duration = Duration::from_secs(20);

/// A small deterministic generator (xorshift): the history is the seed's.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len()))
        }
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
struct Op {
    lead: String,
    participants: BTreeSet<String>,
    open: bool,
    /// task id → (assignee, open)
    tasks: BTreeMap<String, (String, bool)>,
}

impl Op {
    fn takes_part(&self, c: &str) -> bool {
        self.lead == c || self.participants.contains(c)
    }
}

/// A notice: requester, published (ever), recipients of a diffusion,
/// current status.
type NoticeFacts = (String, bool, Option<BTreeSet<String>>, String);

/// What the history made, as the oracle understands it.
#[derive(Default)]
struct World {
    ops: BTreeMap<String, Op>,
    /// lead id → (operation, owner, restricted_to: none, or the countries
    /// besides the owner, possibly none: then the owner alone)
    leads: BTreeMap<String, (String, String, Option<BTreeSet<String>>)>,
    /// arrest id → (operation, reporter)
    arrests: BTreeMap<String, (String, String)>,
    /// notice id → (requester, published, recipients, status)
    notices: BTreeMap<String, NoticeFacts>,
    crises: BTreeMap<String, String>,
    /// deployment id → (host, contributors)
    deployments: BTreeMap<String, (String, BTreeSet<String>)>,
    /// `(service, seq)` of each acknowledged event → the countries it
    /// reached when it happened.
    reached: BTreeMap<(String, u64), BTreeSet<String>>,
}

impl World {
    /// The streams `c` is entitled to now, as `<kind>-<id>`.
    fn entitled(&self, c: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (id, op) in &self.ops {
            if op.takes_part(c) {
                out.insert(format!("operation-{id}"));
            }
        }
        for (id, (op, owner, restricted)) in &self.leads {
            let member = self.ops[op].takes_part(c) && restricted.as_ref().is_none_or(|r| r.contains(c));
            if owner == c || member {
                out.insert(format!("lead-{id}"));
            }
        }
        for (id, (op, reporter)) in &self.arrests {
            if reporter == c || self.ops[op].takes_part(c) {
                out.insert(format!("arrest-{id}"));
            }
        }
        for (id, (requester, published, recipients, _)) in &self.notices {
            let public = *published && recipients.as_ref().is_none_or(|r| r.contains(c));
            if requester == c || public {
                out.insert(format!("notice-{id}"));
            }
        }
        for id in self.crises.keys() {
            out.insert(format!("crisis-{id}"));
        }
        for (id, (host, contributors)) in &self.deployments {
            if host == c || contributors.contains(c) {
                out.insert(format!("deployment-{id}"));
            }
        }
        out
    }

    /// Records that the events of `reply` reached who is entitled to
    /// `stream` now.
    fn reached(&mut self, service: &str, stream: &str, reply: &Value) {
        let who: BTreeSet<String> = COUNTRIES
            .iter()
            .filter(|c| self.entitled(c).contains(stream))
            .map(|c| (*c).to_owned())
            .collect();
        for e in reply["events"].as_array().into_iter().flatten() {
            let seq = e["seq"].as_u64().expect("seq");
            self.reached.insert((service.to_owned(), seq), who.clone());
        }
    }
}

fn liaison(c: &str) -> String {
    format!("{c}_LIAISON")
}

fn coordinator(c: &str) -> String {
    format!("{c}_COORDINATOR")
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

const GROUNDS: &str = r#"{"not_political": true, "not_military": true, "not_religious": true, "not_racial": true, "facts_support_purpose": true}"#;

/// One random step; what succeeded is recorded in `w`.
async fn step(sys: &Up, rng: &mut Rng, w: &mut World) {
    let open_ops: Vec<String> = w.ops.iter().filter(|(_, o)| o.open).map(|(i, _)| i.clone()).collect();
    match rng.below(14) {
        0 | 1 => {
            let lead = *rng.pick(&COUNTRIES).expect("a country");
            let mut others: Vec<&str> = COUNTRIES.iter().copied().filter(|c| *c != lead).collect();
            let n = 1 + rng.below(4);
            let mut participants = BTreeSet::new();
            for _ in 0..n {
                let i = rng.below(others.len());
                participants.insert(others.remove(i).to_owned());
            }
            let r = sys
                .post(
                    "/v1/operations",
                    &coordinator(lead),
                    json!({"title": "op", "objective": "o", "lead_country": lead, "countries": participants}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            let op = id(&v);
            w.ops.insert(
                op.clone(),
                Op {
                    lead: lead.to_owned(),
                    participants,
                    open: true,
                    tasks: BTreeMap::new(),
                },
            );
            w.reached("operations", &format!("operation-{op}"), &v);
        }
        2 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let candidates: Vec<&str> = COUNTRIES
                .iter()
                .copied()
                .filter(|c| !w.ops[&op].takes_part(c))
                .collect();
            let Some(c) = rng.pick(&candidates).copied() else {
                return;
            };
            let r = sys
                .post(
                    &format!("/v1/operations/{op}/participants"),
                    &coordinator(&w.ops[&op].lead),
                    json!({"country": c}),
                )
                .await;
            if r.status == 200 {
                w.ops.get_mut(&op).expect("op").participants.insert(c.to_owned());
                w.reached("operations", &format!("operation-{op}"), &r.json());
            }
        }
        3 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let o = &w.ops[&op];
            let free: Vec<String> = o
                .participants
                .iter()
                .filter(|p| !o.tasks.values().any(|(a, open)| a == *p && *open))
                .cloned()
                .collect();
            let Some(c) = rng.pick(&free).cloned() else { return };
            let r = sys
                .call(
                    "DELETE",
                    &format!("/v1/operations/{op}/participants/{c}"),
                    Some(&coordinator(&o.lead)),
                    &[],
                    None,
                )
                .await;
            if r.status == 200 {
                w.ops.get_mut(&op).expect("op").participants.remove(&c);
                w.reached("operations", &format!("operation-{op}"), &r.json());
            }
        }
        4 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let o = w.ops[&op].clone();
            let parts: Vec<String> = o.participants.iter().cloned().collect();
            let Some(c) = rng.pick(&parts).cloned() else { return };
            let r = sys
                .post(
                    &format!("/v1/operations/{op}/tasks"),
                    &coordinator(&o.lead),
                    json!({"assignee_country": c, "title": "t", "details": "d"}),
                )
                .await;
            if r.status == 201 {
                let v = r.json();
                w.ops.get_mut(&op).expect("op").tasks.insert(id(&v), (c, true));
                w.reached("operations", &format!("operation-{op}"), &v);
            }
        }
        5 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let open_tasks: Vec<(String, String)> = w.ops[&op]
                .tasks
                .iter()
                .filter(|(_, (_, open))| *open)
                .map(|(t, (a, _))| (t.clone(), a.clone()))
                .collect();
            let Some((task, assignee)) = rng.pick(&open_tasks).cloned() else {
                return;
            };
            let status = if rng.chance(50) { "declined" } else { "done" };
            let r = sys
                .post(
                    &format!("/v1/operations/{op}/tasks/{task}/status"),
                    &liaison(&assignee),
                    json!({"status": if status == "done" { "accepted" } else { "declined" }}),
                )
                .await;
            if r.status == 200 {
                w.reached("operations", &format!("operation-{op}"), &r.json());
                if status == "declined" {
                    w.ops.get_mut(&op).expect("op").tasks.insert(task, (assignee, false));
                } else {
                    let r = sys
                        .post(
                            &format!("/v1/operations/{op}/tasks/{task}/status"),
                            &liaison(&assignee),
                            json!({"status": "done"}),
                        )
                        .await;
                    if r.status == 200 {
                        w.reached("operations", &format!("operation-{op}"), &r.json());
                        w.ops.get_mut(&op).expect("op").tasks.insert(task, (assignee, false));
                    }
                }
            }
        }
        6 | 7 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let o = w.ops[&op].clone();
            let members: Vec<String> = o.participants.iter().cloned().chain([o.lead.clone()]).collect();
            let Some(owner) = rng.pick(&members).cloned() else {
                return;
            };
            let restricted: Option<BTreeSet<String>> = rng.chance(50).then(|| {
                members
                    .iter()
                    .filter(|c| **c != owner && rng.chance(40))
                    .cloned()
                    .collect()
            });
            let mut body = json!({"summary": "a lead"});
            if let Some(r) = &restricted {
                body["restricted_to"] = json!(r);
            }
            let r = sys
                .post(&format!("/v1/operations/{op}/leads"), &liaison(&owner), body)
                .await;
            if r.status == 201 {
                let v = r.json();
                let lead = id(&v);
                w.leads.insert(lead.clone(), (op, owner, restricted));
                w.reached("intel", &format!("lead-{lead}"), &v);
            }
        }
        8 => {
            let Some(op) = rng.pick(&open_ops).cloned() else { return };
            let o = w.ops[&op].clone();
            let members: Vec<String> = o.participants.iter().cloned().chain([o.lead.clone()]).collect();
            let Some(reporter) = rng.pick(&members).cloned() else {
                return;
            };
            let r = sys
                .post(
                    &format!("/v1/operations/{op}/arrests"),
                    &liaison(&reporter),
                    json!({"person": {"name": "n"}, "location_country": reporter}),
                )
                .await;
            if r.status == 201 {
                let v = r.json();
                let arrest = id(&v);
                w.arrests.insert(arrest.clone(), (op, reporter));
                w.reached("intel", &format!("arrest-{arrest}"), &v);
            }
        }
        9 => {
            let requester = *rng.pick(&COUNTRIES).expect("a country");
            let recipients: Option<BTreeSet<String>> = rng.chance(30).then(|| {
                COUNTRIES
                    .iter()
                    .filter(|c| **c != requester && rng.chance(30))
                    .map(|c| (*c).to_owned())
                    .collect::<BTreeSet<_>>()
            });
            let recipients = recipients.filter(|r| !r.is_empty());
            let mut body =
                json!({"color": "blue", "subject": {"kind": "person", "description": "a witness"}, "reason": "locate"});
            if let Some(r) = &recipients {
                body["recipients"] = json!(r);
            }
            let r = sys.post("/v1/notices", &liaison(requester), body).await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            let notice = id(&v);
            w.notices.insert(
                notice.clone(),
                (requester.to_owned(), false, recipients, "requested".into()),
            );
            w.reached("intel", &format!("notice-{notice}"), &v);
        }
        10 => {
            let pending: Vec<String> = w
                .notices
                .iter()
                .filter(|(_, n)| n.3 == "requested")
                .map(|(i, _)| i.clone())
                .collect();
            let Some(notice) = rng.pick(&pending).cloned() else {
                return;
            };
            let approve = rng.chance(60);
            let grounds: Value = serde_json::from_str(GROUNDS).expect("grounds");
            let r = sys
                .post(
                    &format!("/v1/notices/{notice}/review"),
                    "GS_REVIEWER",
                    json!({"decision": if approve { "approve" } else { "reject" }, "reason": "checked", "grounds": grounds}),
                )
                .await;
            if r.status == 200 {
                let n = w.notices.get_mut(&notice).expect("notice");
                n.1 = approve;
                n.3 = if approve { "published" } else { "rejected" }.into();
                w.reached("intel", &format!("notice-{notice}"), &r.json());
            }
        }
        11 => {
            let live: Vec<(String, String)> = w
                .notices
                .iter()
                .filter(|(_, n)| n.3 == "requested" || n.3 == "published")
                .map(|(i, n)| (i.clone(), n.0.clone()))
                .collect();
            let Some((notice, requester)) = rng.pick(&live).cloned() else {
                return;
            };
            let r = sys
                .post(
                    &format!("/v1/notices/{notice}/cancel"),
                    &liaison(&requester),
                    json!({"reason": "no longer needed"}),
                )
                .await;
            if r.status == 200 {
                w.notices.get_mut(&notice).expect("notice").3 = "cancelled".into();
                w.reached("intel", &format!("notice-{notice}"), &r.json());
            }
        }
        12 => {
            let country = *rng.pick(&COUNTRIES).expect("a country");
            let r = sys
                .post(
                    "/v1/crises",
                    &liaison(country),
                    json!({"kind": "other", "title": "c", "country": country, "severity": 2}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            let crisis = id(&v);
            w.crises.insert(crisis.clone(), country.to_owned());
            w.reached("crisis", &format!("crisis-{crisis}"), &v);
        }
        _ => {
            let crises: Vec<(String, String)> = w.crises.iter().map(|(i, c)| (i.clone(), c.clone())).collect();
            let Some((crisis, host)) = rng.pick(&crises).cloned() else {
                return;
            };
            let others: Vec<&str> = COUNTRIES.iter().copied().filter(|c| *c != host).collect();
            let Some(from) = rng.pick(&others).copied() else { return };
            let r = sys
                .post(
                    "/v1/deployments",
                    &liaison(from),
                    json!({"team": "irt", "host_country": host, "crisis_id": crisis, "reason": "help",
                           "members": [{"name": "A", "role": "lead", "country": from}]}),
                )
                .await;
            if r.status == 201 {
                let v = r.json();
                let dep = id(&v);
                w.deployments
                    .insert(dep.clone(), (host.clone(), BTreeSet::from([from.to_owned()])));
                w.reached("deployments", &format!("deployment-{dep}"), &v);
                if rng.chance(60) {
                    let r = sys
                        .post(&format!("/v1/deployments/{dep}/approve"), &liaison(&host), json!({}))
                        .await;
                    if r.status == 200 {
                        w.reached("deployments", &format!("deployment-{dep}"), &r.json());
                    }
                }
            }
        }
    }
}

/// Every page of `path` (a view or a list) for `who`.
async fn pages(sys: &Up, path: &str, who: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &after {
            Some(c) => format!("{path}{sep}after={c}&limit=37"),
            None => format!("{path}{sep}limit=37"),
        };
        let r = sys.get(&url, who).await;
        assert_eq!(r.status, 200, "{url} as {who}: {}", String::from_utf8_lossy(&r.body));
        let page = r.json();
        out.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// The whole feed of `c` as `(service, seq)`, in feed order.
async fn feed(sys: &Up, c: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let r = sys
            .get(&format!("/v1/countries/{c}/feed?after={after}&max=100"), &liaison(c))
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        let events = v["events"].as_array().expect("events");
        if events.is_empty() {
            return out;
        }
        for e in events {
            let ev = &e["event"];
            out.push((
                ev["service"].as_str().expect("service").to_owned(),
                ev["seq"].as_u64().expect("seq"),
            ));
        }
        after = v["last"].as_u64().expect("last");
    }
}

/// What differs between what `c` gets and what it is entitled to.
async fn differences(sys: &Up, w: &World, c: &str) -> Vec<String> {
    let mut out = Vec::new();
    let want = w.entitled(c);
    let view: BTreeSet<String> = pages(sys, &format!("/v1/countries/{c}/view"), &liaison(c))
        .await
        .iter()
        .map(|i| i["stream"].as_str().expect("stream").to_owned())
        .collect();
    for leak in view.difference(&want) {
        out.push(format!("{c}'s view leaks {leak}"));
    }
    for loss in want.difference(&view) {
        out.push(format!("{c}'s view misses {loss}"));
    }
    // The lists are the view's items of one kind.
    for (list, prefix) in [
        ("/v1/operations", "operation-"),
        ("/v1/crises", "crisis-"),
        ("/v1/deployments", "deployment-"),
        ("/v1/notices", "notice-"),
    ] {
        let got: BTreeSet<String> = pages(sys, list, &liaison(c))
            .await
            .iter()
            .map(|i| i["stream"].as_str().expect("stream").to_owned())
            .collect();
        let expected: BTreeSet<String> = want.iter().filter(|s| s.starts_with(prefix)).cloned().collect();
        if got != expected {
            out.push(format!("{c}'s {list}: {got:?}, entitled to {expected:?}"));
        }
    }
    // Search finds what the country sees: every lead says "a lead".
    let found: BTreeSet<String> = sys.get("/v1/search?q=a%20lead&limit=500", &liaison(c)).await.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["stream"].as_str().expect("stream").to_owned())
        .collect();
    let expected: BTreeSet<String> = want.iter().filter(|s| s.starts_with("lead-")).cloned().collect();
    if found != expected {
        out.push(format!(
            "{c}'s search for \"a lead\": {found:?}, entitled to {expected:?}"
        ));
    }
    // A liaison's work queue: the open tasks assigned to its country.
    let tasks: BTreeSet<String> = pages(sys, &format!("/v1/tasks?assignee={c}"), &liaison(c))
        .await
        .iter()
        .map(|t| t["id"].as_str().expect("task id").to_owned())
        .collect();
    let expected: BTreeSet<String> = w
        .ops
        .values()
        .filter(|o| o.takes_part(c))
        .flat_map(|o| o.tasks.iter().filter(|(_, (a, _))| a == c).map(|(t, _)| t.clone()))
        .collect();
    if tasks != expected {
        out.push(format!("{c}'s tasks: {tasks:?}, entitled to {expected:?}"));
    }
    let listed = feed(sys, c).await;
    let got: BTreeSet<(String, u64)> = listed.iter().cloned().collect();
    if got.len() != listed.len() {
        out.push(format!("{c}'s feed lists an event twice"));
    }
    // Each log's events come in their log's order.
    for service in ["operations", "intel", "crisis", "deployments"] {
        let seqs: Vec<u64> = listed.iter().filter(|(s, _)| s == service).map(|(_, q)| *q).collect();
        if !seqs.windows(2).all(|p| p[0] < p[1]) {
            out.push(format!("{c}'s feed has {service} events out of order: {seqs:?}"));
        }
    }
    let expected: BTreeSet<(String, u64)> = w
        .reached
        .iter()
        .filter(|(_, who)| who.contains(c))
        .map(|(k, _)| k.clone())
        .collect();
    for leak in got.difference(&expected) {
        out.push(format!("{c}'s feed leaks {leak:?}"));
    }
    for loss in expected.difference(&got) {
        out.push(format!("{c}'s feed misses {loss:?}"));
    }
    out
}

/// Runs the history of `seed`; with `crash_at`, the whole system is
/// killed (SIGKILL: the projector mid-burst, nothing stopped cleanly)
/// after that many steps and started again on the same data. Returns the
/// running system (its data in the temp dir) once every country's views
/// are exactly its entitlements.
async fn run(seed: u64, crash_at: Option<usize>) -> (tempfile::TempDir, Up) {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    let mut tokens = std::collections::HashMap::new();
    for c in COUNTRIES {
        for role in ["coordinator", "liaison"] {
            tokens.insert(format!("{c}_{}", role.to_ascii_uppercase()), token_for(&data, role, c));
        }
    }
    sys.tokens.extend(tokens.clone());
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut w = World::default();
    for i in 0..STEPS {
        if crash_at == Some(i) {
            let demo = sys.tokens.clone();
            let _ = sys.child.kill();
            let _ = sys.child.wait();
            drop(sys);
            sys = up(&data, &free_addr());
            sys.tokens.extend(demo);
            sys.tokens.extend(tokens.clone());
        }
        step(&sys, &mut rng, &mut w).await;
    }
    assert!(
        w.ops.len() >= 3 && !w.leads.is_empty() && !w.notices.is_empty(),
        "seed {seed}: the history is too thin to test anything"
    );
    eprintln!(
        "seed {seed}: {} operations, {} leads, {} arrests, {} notices, {} crises, {} deployments, {} events{}",
        w.ops.len(),
        w.leads.len(),
        w.arrests.len(),
        w.notices.len(),
        w.crises.len(),
        w.deployments.len(),
        w.reached.len(),
        if crash_at.is_some() { ", killed halfway" } else { "" }
    );
    // The projector follows the logs: give it time to show everything,
    // then every difference is a leak or a loss.
    let deadline = Instant::now() + CATCH_UP;
    let mut diffs = Vec::new();
    for c in COUNTRIES {
        loop {
            diffs = differences(&sys, &w, c).await;
            if diffs.is_empty() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !diffs.is_empty() {
            break;
        }
    }
    assert!(diffs.is_empty(), "seed {seed}:\n{}", diffs.join("\n"));
    (dir, sys)
}

/// What a country is shown, positions aside: every item of its view as
/// served, and its feed's events with each log's order.
async fn shown(sys: &Up, c: &str) -> (Vec<Value>, BTreeSet<(String, u64)>, Vec<Vec<u64>>) {
    let mut view = pages(sys, &format!("/v1/countries/{c}/view"), &liaison(c)).await;
    view.sort_by_key(|i| format!("{}:{}", i["service"], i["stream"]));
    let feed = feed(sys, c).await;
    let by_log = ["operations", "intel", "crisis", "deployments"]
        .iter()
        .map(|l| feed.iter().filter(|(s, _)| s == l).map(|(_, q)| *q).collect())
        .collect();
    (view, feed.into_iter().collect(), by_log)
}

/// DE's view once the projector has applied the positions `seen`.
async fn de_view_after(sys: &Up, seen: &str) -> concord_testkit::http::Response {
    sys.call(
        "GET",
        "/v1/countries/DE/view?limit=500",
        Some("DE_LIAISON"),
        &[("Concord-Seen", seen)],
        None,
    )
    .await
}

fn seeds(default: &[u64]) -> Vec<u64> {
    std::env::var("CONCORD_ORACLE_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_country_sees_exactly_what_it_is_entitled_to() {
    for seed in seeds(&[1]) {
        run(seed, None).await;
    }
}

/// `concord projector rebuild` builds every view again from the logs
/// beside the live ones and switches to them: every country is then shown
/// the same views and the same feed contents (positions may differ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_shows_every_country_the_same_views_and_feeds() {
    let (dir, sys) = run(7, None).await;
    let mut before = BTreeMap::new();
    for c in COUNTRIES {
        before.insert(c, shown(&sys, c).await);
    }
    let out = tokio::process::Command::new(common::BIN)
        .args(["projector", "rebuild", "--data"])
        .arg(dir.path().join("data"))
        .env_remove("NATS_URL")
        .env_remove("CONCORD_NATS_SEED")
        .output()
        .await
        .expect("concord projector rebuild");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rebuilt views-2"), "{stdout}");
    assert!(stderr.contains("views-2 ["), "a progress line: {stderr}");
    for c in COUNTRIES {
        let after = shown(&sys, c).await;
        let was = &before[c];
        assert_eq!(after.0, was.0, "{c}'s view after the rebuild");
        assert_eq!(after.1, was.1, "{c}'s feed contents after the rebuild");
        assert_eq!(after.2, was.2, "{c}'s feed keeps each log's order");
    }
    // And it keeps following: what happens next is shown.
    let r = sys
        .post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "after the rebuild", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    let seen = r.header("concord-position").expect("position").to_owned();
    let view = de_view_after(&sys, &seen).await;
    assert_eq!(view.status, 200, "{}", String::from_utf8_lossy(&view.body));
    assert!(view.json()["items"].to_string().contains(&id(&r.json())));
}

/// The same after a kill -9 of the whole system halfway: the projector
/// resumes from what it kept, and applies nothing twice and skips nothing
/// (a feed entry twice or missing would show as a difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_halfway_resumes_to_exactly_the_entitlements() {
    for seed in seeds(&[20_261_130]) {
        run(seed, Some(STEPS / 2)).await;
    }
}

/// Read your writes: a command answers where it left its log
/// (`Concord-Position`); a view asked with it (`Concord-Seen`) shows what
/// the command wrote at once, without polling; a position the projector
/// has not reached is a 503 with Retry-After, and a malformed one a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_names_a_commands_position_shows_it() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let sys = up(&dir.path().join("data"), &free_addr());
    for round in 0..20 {
        let r = sys
            .post(
                "/v1/operations",
                "FR_COORDINATOR",
                json!({"title": format!("op {round}"), "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
            )
            .await;
        assert_eq!(r.status, 201);
        let op = id(&r.json());
        let position = r.header("concord-position").expect("Concord-Position").to_owned();
        assert!(position.starts_with("operations:"), "{position}");
        let r = sys
            .post(
                &format!("/v1/operations/{op}/leads"),
                "DE_LIAISON",
                json!({"summary": "s"}),
            )
            .await;
        assert_eq!(r.status, 201);
        let lead = id(&r.json());
        let seen = format!("{position}, {}", r.header("concord-position").expect("position"));
        let view = de_view_after(&sys, &seen).await;
        assert_eq!(view.status, 200, "{}", String::from_utf8_lossy(&view.body));
        let streams: Vec<String> = view.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["stream"].as_str().expect("stream").to_owned())
            .collect();
        assert!(
            streams.contains(&format!("operation-{op}")),
            "round {round}: {streams:?}"
        );
        assert!(streams.contains(&format!("lead-{lead}")), "round {round}: {streams:?}");
    }
    let ahead = sys
        .call(
            "GET",
            "/v1/operations",
            Some("DE_LIAISON"),
            &[("Concord-Seen", "intel:999999")],
            None,
        )
        .await;
    assert_eq!(ahead.status, 503, "{}", String::from_utf8_lossy(&ahead.body));
    assert_eq!(ahead.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&ahead.body).contains("intel:999999"));
    let bad = sys
        .call(
            "GET",
            "/v1/operations",
            Some("DE_LIAISON"),
            &[("Concord-Seen", "intel:x")],
            None,
        )
        .await;
    assert_eq!(bad.status, 400);
}
