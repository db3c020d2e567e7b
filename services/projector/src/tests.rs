//! The projection over typed events, without NATS or disk: visibility
//! follows time, restrictions and publication.

use concord_core::{Actor, CountryCode, EventEnvelope, Hlc, Role, Service};
use serde_json::{Value, json};

use crate::projection::{Projection, ProjectionError};

const OP: &str = "01900000-0000-7000-8000-000000000001";
const LEAD: &str = "01900000-0000-7000-8000-000000000002";
const NOTICE: &str = "01900000-0000-7000-8000-000000000003";
const AT: &str = "2026-11-30T10:00:00.000000Z";

fn cc(c: &str) -> CountryCode {
    CountryCode::parse(c).expect("country")
}

pub(crate) struct Logs {
    seqs: std::collections::HashMap<Service, u64>,
    versions: std::collections::HashMap<String, u64>,
    clock: u64,
}

impl Logs {
    pub(crate) fn new() -> Logs {
        Logs {
            seqs: Default::default(),
            versions: Default::default(),
            clock: 1000,
        }
    }

    pub(crate) fn event(
        &mut self,
        service: Service,
        stream: &str,
        event_type: &str,
        by: &str,
        data: Value,
    ) -> EventEnvelope {
        let seq = self.seqs.entry(service).or_default();
        *seq += 1;
        let version = self.versions.entry(stream.to_owned()).or_default();
        *version += 1;
        self.clock += 1;
        EventEnvelope {
            id: uuid::Uuid::now_v7(),
            service,
            seq: *seq,
            stream: stream.to_owned(),
            version: *version,
            event_type: event_type.to_owned(),
            schema_version: 1,
            recorded_at: AT.to_owned(),
            hlc: Hlc {
                wall_ms: self.clock,
                logical: 0,
            },
            actor: Actor {
                sub: "someone".into(),
                role: Role::Liaison,
                country: cc(by),
            },
            command_id: uuid::Uuid::now_v7().to_string(),
            correlation_id: "c".into(),
            causation_id: None,
            data,
            data_digest: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

fn opened(logs: &mut Logs, lead: &str, participants: &[&str]) -> EventEnvelope {
    logs.event(
        Service::Operations,
        &format!("operation-{OP}"),
        "operation.opened",
        lead,
        json!({"operation_id": OP, "title": "Op", "objective": "o", "lead_country": lead,
               "participants": participants, "opened_at": AT}),
    )
}

fn lead_posted(logs: &mut Logs, owner: &str, restricted_to: &[&str]) -> EventEnvelope {
    logs.event(
        Service::Intel,
        &format!("lead-{LEAD}"),
        "lead.posted",
        owner,
        json!({"lead_id": LEAD, "operation_id": OP, "owner_country": owner, "summary": "a van",
               "details": null, "subject": null, "restricted_to": restricted_to, "grading": null,
               "posted_by": "x", "posted_at": AT}),
    )
}

fn removed(logs: &mut Logs, country: &str) -> EventEnvelope {
    logs.event(
        Service::Operations,
        &format!("operation-{OP}"),
        "participant.removed",
        "FR",
        json!({"country": country}),
    )
}

/// A notice request of `requester` about a person named `name` (or null).
fn notice_requested(logs: &mut Logs, requester: &str, name: Value) -> EventEnvelope {
    logs.event(
        Service::Intel,
        &format!("notice-{NOTICE}"),
        "notice.requested",
        requester,
        json!({"notice_id": NOTICE, "color": "red",
               "subject": {"kind": "person", "description": "wanted", "name": name, "date_of_birth": null, "nationality": null},
               "reason": "fraud", "offence": "fraud", "warrant": "w-1", "operation_id": null, "recipients": null,
               "requesting_country": requester, "requested_by": "x", "requested_at": AT}),
    )
}

fn published(logs: &mut Logs) -> EventEnvelope {
    logs.event(
        Service::Intel,
        &format!("notice-{NOTICE}"),
        "notice.published",
        "GS",
        json!({"reviewed_by": "r", "reviewer_country": "GS", "reason": "fine",
               "grounds": {"not_political": true, "not_military": true, "not_religious": true, "not_racial": true, "facts_support_purpose": true},
               "published_at": AT}),
    )
}

fn sees(p: &Projection, country: &str) -> Vec<String> {
    p.seen_by(cc(country), Role::Liaison, None)
        .map(|i| i.stream.split('-').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_removed_country_stops_seeing_the_operation_and_its_leads() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    let a = p.apply(&opened(&mut logs, "FR", &["DE", "ES"])).expect("opened");
    assert_eq!(a.position, 1);
    assert!(a.reach.country(cc("DE")) && !a.reach.country(cc("IT")));
    let a = p.apply(&lead_posted(&mut logs, "DE", &[])).expect("lead");
    assert!(
        a.reach.country(cc("ES")),
        "an unrestricted lead reaches every participant"
    );
    assert_eq!(sees(&p, "ES"), ["operation", "lead"]);
    assert!(sees(&p, "IT").is_empty());

    let removed = removed(&mut logs, "ES");
    let a = p.apply(&removed).expect("removed");
    assert!(!a.reach.country(cc("ES")), "the removal itself does not reach ES");
    assert!(
        a.changed.contains(&(Service::Intel, format!("lead-{LEAD}"))),
        "the lead's reach changed with the membership: {:?}",
        a.changed
    );
    assert!(sees(&p, "ES").is_empty(), "ES left the operation: {:?}", sees(&p, "ES"));
    assert_eq!(sees(&p, "DE"), ["operation", "lead"]);
    // Auditors see everything, whatever their country.
    assert_eq!(p.seen_by(cc("GS"), Role::Auditor, None).count(), 2);
}

#[test]
fn a_restricted_lead_reaches_only_its_owner_and_the_listed_countries() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    p.apply(&opened(&mut logs, "FR", &["DE", "ES"])).expect("opened");
    let a = p.apply(&lead_posted(&mut logs, "DE", &["FR"])).expect("lead");
    assert!(a.reach.country(cc("DE")) && a.reach.country(cc("FR")));
    assert!(!a.reach.country(cc("ES")));
    assert_eq!(sees(&p, "ES"), ["operation"]);
}

#[test]
fn a_notice_reaches_every_country_only_once_published() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    let requested = notice_requested(&mut logs, "DE", json!(null));
    let a = p.apply(&requested).expect("requested");
    assert!(a.reach.country(cc("DE")) && !a.reach.country(cc("FR")));
    assert!(a.reach.admits(cc("GS"), Role::Reviewer), "reviewers see a request");
    assert!(!a.reach.admits(cc("GS"), Role::Liaison));
    let published = published(&mut logs);
    let a = p.apply(&published).expect("published");
    assert!(a.reach.everyone, "published: everyone");
    assert_eq!(sees(&p, "IT"), ["notice"]);
}

#[test]
fn an_unreadable_event_changes_nothing() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    let bad = logs.event(
        Service::Operations,
        &format!("operation-{OP}"),
        "operation.opened",
        "FR",
        json!({"operation_id": OP}),
    );
    assert!(matches!(p.apply(&bad), Err(ProjectionError::Unreadable { .. })));
    assert_eq!(p.position(), 0);
    assert_eq!(p.items().count(), 0);
}

#[test]
fn a_kept_projection_resumes_where_it_stood() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    p.apply(&opened(&mut logs, "FR", &["DE", "ES"])).expect("opened");
    p.apply(&lead_posted(&mut logs, "DE", &[])).expect("lead");
    // Resumed from the bytes the store writes, which read back as `kept`.
    let kept: Vec<_> = p
        .items()
        .filter_map(|i| p.kept_bytes(i.service, &i.stream))
        .map(|b| serde_json::from_slice::<concord_contracts::projection::Kept>(&b.expect("serializes")).expect("reads"))
        .collect();
    assert_eq!(
        kept,
        p.items()
            .filter_map(|i| p.kept(i.service, &i.stream))
            .collect::<Vec<_>>()
    );
    assert_eq!(kept.len(), 2);
    let mut resumed = Projection::resume(kept, p.membership().clone(), p.position()).expect("resume");
    assert_eq!(resumed.position(), 2);
    let removed = removed(&mut logs, "ES");
    let (a, b) = (
        p.apply(&removed).expect("live"),
        resumed.apply(&removed).expect("resumed"),
    );
    assert_eq!(a, b);
    assert_eq!(p.items().collect::<Vec<_>>(), resumed.items().collect::<Vec<_>>());
    for item in p.items() {
        assert_ne!(p.view(item), serde_json::Value::Null, "{}", item.stream);
        assert_eq!(p.view(item), resumed.view(item), "{}", item.stream);
    }
}

#[test]
fn items_kept_by_earlier_releases_with_a_rendered_view_still_resume() {
    let mut logs = Logs::new();
    let mut p = Projection::default();
    p.apply(&opened(&mut logs, "FR", &["DE", "ES"])).expect("opened");
    let item = p.items().next().expect("an item").clone();
    let mut old = serde_json::to_value(p.kept(item.service, &item.stream).expect("kept")).expect("json");
    old["item"]["view"] = p.view(&item);
    let kept: concord_contracts::projection::Kept = serde_json::from_value(old).expect("reads");
    let resumed = Projection::resume([kept], p.membership().clone(), p.position()).expect("resume");
    assert_eq!(resumed.view(&item), p.view(&item));
}

#[test]
fn search_folds_case_accents_and_scripts_and_keeps_to_what_the_caller_sees() {
    use crate::api::{Caller, SearchRequest, search, words};
    assert_eq!(
        words("Müller, STRASSE-straße Петров"),
        ["muller", "strasse", "strasse", "petrov"]
    );
    let mut logs = Logs::new();
    let mut p = Projection::default();
    p.apply(&opened(&mut logs, "FR", &["DE"])).expect("opened");
    let mut lead = lead_posted(&mut logs, "DE", &["FR"]);
    lead.data["summary"] = json!("Hans MÜLLER seen at the border");
    p.apply(&lead).expect("lead");
    let notice = notice_requested(&mut logs, "ES", json!("Jürgen Muller"));
    p.apply(&notice).expect("notice");
    fn ask(p: &Projection, country: &str, role: Role, q: &str) -> Vec<String> {
        let req = SearchRequest {
            caller: Caller {
                country: cc(country),
                role,
            },
            wait_for: Default::default(),
            q: q.to_owned(),
            limit: None,
        };
        search(p, &req).expect("search")["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                i["stream"]
                    .as_str()
                    .unwrap_or("")
                    .split('-')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }
    // FR sees DE's lead restricted to it; the notice is not published yet.
    assert_eq!(ask(&p, "FR", Role::Liaison, "muller"), ["lead"]);
    assert_eq!(ask(&p, "FR", Role::Liaison, "Müller hans"), ["lead"]);
    assert!(
        ask(&p, "FR", Role::Liaison, "müller nobody").is_empty(),
        "every word must match"
    );
    // IT sees neither: not in the operation, notice unpublished.
    assert!(ask(&p, "IT", Role::Liaison, "Muller").is_empty());
    // A reviewer searches notices, published or not; not leads.
    assert_eq!(ask(&p, "GS", Role::Reviewer, "MULLER"), ["notice"]);
    let published = published(&mut logs);
    p.apply(&published).expect("published");
    // Published: every country finds it; the name ranks it above the lead's summary.
    assert_eq!(ask(&p, "IT", Role::Liaison, "jurgen"), ["notice"]);
    assert_eq!(ask(&p, "FR", Role::Liaison, "muller"), ["notice", "lead"]);
    assert!(ask(&p, "FR", Role::Liaison, "!!").is_empty());
}

/// A large stream is kept as a state now and then and its events in
/// between: reopened at any point (twice here, across a state write and a
/// membership change that rewrites an intel item), the store resumes the
/// views the live projection holds, and keeps appending where it stood.
#[test]
fn a_store_keeping_a_large_stream_s_events_reopens_to_the_same_views() {
    use crate::store::{FeedEntry, Store};
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("projector");
    let mut logs = Logs::new();
    let mut live = Projection::default();
    let mut task = 0u32;
    let mut next_task = |logs: &mut Logs| {
        task += 1;
        logs.event(
            Service::Operations,
            &format!("operation-{OP}"),
            "task.assigned",
            "FR",
            json!({"task_id": format!("01900000-0000-7000-8000-1{task:011}"), "assignee_country": "DE",
                   "title": format!("task {task}"), "details": "d", "due_at": null}),
        )
    };
    let check = |live: &Projection| {
        let opened = Store::open(&dir).expect("reopen");
        let p = &opened.projection;
        assert_eq!(p.position(), live.position());
        assert_eq!(p.items().collect::<Vec<_>>(), live.items().collect::<Vec<_>>());
        for item in live.items() {
            assert_eq!(p.view(item), live.view(item), "{}", item.stream);
        }
        opened
    };
    // Bursts of 1 to 13 events; the operation's events go past several
    // state writes.
    let mut sizes = [1usize, 13, 5, 9, 2, 11, 7, 3].into_iter().cycle();
    let mut kept = Store::open(&dir).expect("open");
    let mut burst = vec![
        opened(&mut logs, "FR", &["DE", "ES"]),
        lead_posted(&mut logs, "DE", &[]),
    ];
    for round in 0..30 {
        if round == 10 {
            drop(kept);
            kept = check(&live);
        }
        if round == 17 {
            burst.push(removed(&mut logs, "ES"));
        }
        let size = sizes.next().expect("cycle");
        while burst.len() < size {
            burst.push(next_task(&mut logs));
        }
        let applied: Vec<_> = burst
            .drain(..)
            .map(|e| {
                let a = live.apply(&e).expect("applies");
                (
                    FeedEntry {
                        position: a.position,
                        reach: a.reach,
                        event: e,
                    },
                    a.changed,
                )
            })
            .collect();
        kept.store.commit(&live, &applied, &kept.checkpoints).expect("commit");
    }
    assert!(task > 150, "{task} tasks: past two state writes of the operation");
    drop(kept);
    let kept = check(&live);
    assert!(
        kept.store.tails_kept() > 0,
        "the operation's latest events are kept as events"
    );
    drop(kept);
    // The same kept events moved under another stream's key are refused,
    // not folded into the stream they name.
    {
        let db = concord_log::open_database(&dir).expect("raw open");
        let tails = concord_log::open_keyspace(&db, "tails").expect("tails");
        let entries: Vec<_> = tails.iter().map(|e| e.into_inner().expect("entry")).collect();
        for (k, v) in entries {
            let mut moved = k.to_vec();
            let at = moved.len() - 10;
            moved[at] ^= 1;
            tails.remove(k).expect("remove");
            tails.insert(moved, v).expect("insert");
        }
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let Err(crate::store::StoreError::Corrupt { what, .. }) = Store::open(&dir) else {
        panic!("kept events under another stream's key must be refused");
    };
    assert!(what.contains("under another stream's key"), "{what}");
}

/// Kept events that do not follow the kept state one version at a time
/// (a gap, another stream's event) are refused: the store is then set
/// aside and the views built again from the logs.
#[test]
fn kept_events_that_do_not_follow_their_state_are_refused() {
    use concord_contracts::projection::Kept;
    let mut logs = Logs::new();
    let mut p = Projection::default();
    let first = opened(&mut logs, "FR", &["DE"]);
    p.apply(&first).expect("opened");
    let removed = removed(&mut logs, "DE");
    p.apply(&removed).expect("removed");
    let item = p.items().next().expect("item").clone();
    let folded = Kept::fold_tail(None, 0, &[first.clone(), removed.clone()], item.clone()).expect("folds");
    assert_eq!(Some(folded), p.kept(item.service, &item.stream));
    // A gap, a repeat, or one event short of the item.
    assert!(Kept::fold_tail(None, 0, std::slice::from_ref(&removed), item.clone()).is_err());
    assert!(Kept::fold_tail(None, 0, &[first.clone(), first.clone()], item.clone()).is_err());
    assert!(Kept::fold_tail(None, 0, std::slice::from_ref(&first), item.clone()).is_err());
    // Another stream's event.
    let mut other = removed.clone();
    other.stream = format!("operation-{LEAD}");
    assert!(Kept::fold_tail(None, 0, &[first, other], item).is_err());
}
