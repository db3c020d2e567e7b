//! The audit's index of every writing service's log (pure: no IO): the
//! events as the kernel consumer verified them, which operation each
//! stream hangs off, who did what, and how far each log's chain checked.
//! Everything here is rebuilt from the logs at each start.
//!
//! Causal order across logs is `(hlc.wall_ms, hlc.logical, service, seq)`;
//! an instant `at` takes the events whose HLC wall time is ≤ it. States as
//! of an instant are folded with each contract's own `evolve` and `view`.
//!
//! Must not: hold a rule of its own (the contracts fold the states), or
//! serve a log whose chain failed as if it were whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use concord_contracts::crisis::Crisis;
use concord_contracts::deployments::Deployments;
use concord_contracts::intel::Intel;
use concord_contracts::operations::{self, Operations};
use concord_contracts::projection::{Projection, ProjectionError, Reach};
use concord_core::decider::{Aggregate, read_event, stream_id};
use concord_core::{CountryCode, EventEnvelope, Service};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// How far one log's chain was read and checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogCheck {
    /// The last event read, checked and linked to the one before.
    pub head_seq: u64,
    pub head_hash: String,
    pub events_checked: u64,
    /// The first seq that did not check (the chain breaks there, or the
    /// log no longer holds what was read before).
    pub first_bad_seq: Option<u64>,
    pub error: Option<String>,
    /// The log's identity, as its owner answers it.
    pub identity: Option<String>,
}

/// An event's place: its log and seq.
type At = (Service, u64);

/// What the audit signed of one log before: `(size, head hash hex)` of
/// each checkpoint, by log identity, read back at start.
pub type Signed = HashMap<String, BTreeMap<u64, String>>;

#[derive(Debug, Default)]
pub struct Index {
    /// Checkpoints this audit signed, by service: each event read at a
    /// signed size must have the signed hash, or the log was rewritten.
    signed: BTreeMap<Service, Signed>,
    /// The largest signed size each log was found to still match.
    intact: BTreeMap<Service, u64>,
    logs: BTreeMap<Service, Vec<EventEnvelope>>,
    checks: BTreeMap<Service, LogCheck>,
    /// The root each stream hangs off: the operation or the crisis it
    /// names (its own id for an operation or a crisis).
    links: HashMap<(Service, String), Uuid>,
    by_root: HashMap<Uuid, Vec<At>>,
    by_actor: HashMap<String, Vec<At>>,
}

/// The key of causal order.
fn order(e: &EventEnvelope) -> (u64, u32, Service, u64) {
    (e.hlc.wall_ms, e.hlc.logical, e.service, e.seq)
}

/// The root an event names in its data: its operation (`operation_id`)
/// or its crisis (`crisis_id`, a deployment's), if any.
fn named_root(e: &EventEnvelope) -> Option<Uuid> {
    ["operation_id", "crisis_id"].iter().find_map(|field| {
        e.data
            .get(*field)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
    })
}

/// A refusal to serve a log whose chain failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the {service} log fails verification at seq {seq}: {why}; the audit serves nothing of it past what checked until it is repaired"
)]
pub struct Broken {
    pub service: Service,
    pub seq: u64,
    pub why: String,
}

/// Which reads of the access log: each `None` takes all.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessFilter<'a> {
    pub sub: Option<&'a str>,
    pub item: Option<&'a str>,
    pub from: Option<u64>,
    pub to: Option<u64>,
}

/// Why what a country knew cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnowledgeError {
    #[error(transparent)]
    Broken(#[from] Broken),
    /// The logs hold an event the contracts cannot fold: the projector
    /// stops on it too.
    #[error("the logs cannot be folded: {0}")]
    Unreadable(#[from] ProjectionError),
}

/// Where an event sits, as knowledge answers name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub service: Service,
    pub seq: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub stream: String,
    pub hlc: concord_core::Hlc,
    pub recorded_at: String,
}

impl Moment {
    fn of(e: &EventEnvelope) -> Moment {
        Moment {
            service: e.service,
            seq: e.seq,
            event_type: e.event_type.clone(),
            stream: e.stream.clone(),
            hlc: e.hlc,
            recorded_at: e.recorded_at.clone(),
        }
    }
}

/// One change of who could see an item: the event after which it held.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SightChange {
    pub after: Moment,
    /// Every country sees it from here (`false`: no longer, or never did).
    pub everyone: bool,
    pub gained: BTreeSet<CountryCode>,
    pub lost: BTreeSet<CountryCode>,
}

/// A span during which a country could see an item: from the event after
/// which it could, until the event after which it no longer could.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    pub from: Moment,
    pub until: Option<Moment>,
}

/// When countries gained and lost sight of one item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sight {
    pub item: String,
    pub streams: BTreeSet<String>,
    pub changes: Vec<SightChange>,
    /// `country`'s own periods (listed by name, or as one of every
    /// country).
    pub country: CountryCode,
    pub periods: Vec<Period>,
    /// Each country named in the item's audience, its periods (`*`: the
    /// periods every country could see it).
    pub countries: BTreeMap<String, Vec<Period>>,
}

/// Periods from a sequence of (moment, sees) steps.
fn periods<'a>(steps: impl IntoIterator<Item = (&'a Moment, bool)>) -> Vec<Period> {
    let mut out: Vec<Period> = Vec::new();
    let mut open = false;
    for (m, sees) in steps {
        match (open, sees) {
            (false, true) => out.push(Period {
                from: m.clone(),
                until: None,
            }),
            (true, false) => {
                if let Some(p) = out.last_mut() {
                    p.until = Some(m.clone());
                }
            }
            _ => {}
        }
        open = sees;
    }
    out
}

impl Index {
    /// Every event of the domain's logs in causal order, up to `at`.
    fn everything(&self, at: Option<u64>) -> Vec<&EventEnvelope> {
        let mut out: Vec<&EventEnvelope> = Service::ALL
            .iter()
            .filter_map(|s| self.logs.get(s))
            .flatten()
            .filter(|e| at.is_none_or(|t| e.hlc.wall_ms <= t))
            .collect();
        out.sort_by_key(|e| order(e));
        out
    }

    /// What `country` could see as of `at` (now when `None`): each item
    /// its liaisons and coordinators were shown, folded and filtered by
    /// the projection the projector serves, in `(service, stream)` order.
    pub fn knowledge(&self, country: CountryCode, at: Option<u64>) -> Result<Vec<Value>, KnowledgeError> {
        self.whole(Service::ALL)?;
        let mut projection = Projection::default();
        for e in self.everything(at) {
            projection.apply(e)?;
        }
        Ok(projection
            .items()
            .filter(|i| i.reach.country(country))
            .map(
                |i| serde_json::json!({"service": i.service, "stream": i.stream, "version": i.version, "view": projection.view(i)}),
            )
            .collect())
    }

    /// When each country gained and lost sight of the item `id` (the id
    /// of a stream: an operation, a lead, a notice …), and `country`'s own
    /// periods. `None`: no stream has that id.
    pub fn sight(&self, id: &str, country: CountryCode) -> Result<Option<Sight>, KnowledgeError> {
        self.whole(Service::ALL)?;
        let mut projection = Projection::default();
        let mut streams: BTreeSet<(Service, String)> = BTreeSet::new();
        let mut reach: BTreeMap<(Service, String), Reach> = BTreeMap::new();
        let mut changes = Vec::new();
        for e in self.everything(None) {
            let applied = projection.apply(e)?;
            if stream_id(&e.stream) == id {
                streams.insert((e.service, e.stream.clone()));
            }
            // The item's reach moves with its own events and, for a lead
            // or an arrest, with its operation's membership.
            let touched = applied.changed.iter().any(|k| streams.contains(k));
            if !touched {
                continue;
            }
            let before = union(reach.values());
            for k in &streams {
                if let Some(item) = projection.item(k.0, &k.1) {
                    reach.insert(k.clone(), item.reach.clone());
                }
            }
            let after = union(reach.values());
            if before != after {
                changes.push(SightChange {
                    after: Moment::of(e),
                    everyone: after.everyone,
                    gained: after.countries.difference(&before.countries).copied().collect(),
                    lost: before.countries.difference(&after.countries).copied().collect(),
                });
            }
        }
        if streams.is_empty() {
            return Ok(None);
        }
        let mut named: BTreeSet<CountryCode> = changes.iter().flat_map(|c| c.gained.iter().copied()).collect();
        named.insert(country);
        let mut countries = BTreeMap::new();
        countries.insert("*".to_owned(), periods(changes.iter().map(|c| (&c.after, c.everyone))));
        let mut listed: BTreeMap<CountryCode, bool> = BTreeMap::new();
        let mut steps: BTreeMap<CountryCode, Vec<(&Moment, bool)>> = BTreeMap::new();
        for c in &changes {
            for cc in &c.gained {
                listed.insert(*cc, true);
            }
            for cc in &c.lost {
                listed.insert(*cc, false);
            }
            for cc in &named {
                let sees = c.everyone || listed.get(cc).copied().unwrap_or(false);
                steps.entry(*cc).or_default().push((&c.after, sees));
            }
        }
        for cc in &named {
            let p = periods(steps.remove(cc).unwrap_or_default());
            if *cc != country || !p.is_empty() {
                countries.insert(cc.as_str().to_owned(), p);
            }
        }
        let own = countries.get(country.as_str()).cloned().unwrap_or_default();
        Ok(Some(Sight {
            item: id.to_owned(),
            streams: streams.into_iter().map(|(_, s)| s).collect(),
            changes,
            country,
            periods: own,
            countries,
        }))
    }

    /// An index that holds each log to the checkpoints signed of it before.
    pub fn holding_to(signed: BTreeMap<Service, Signed>) -> Index {
        Index {
            signed,
            ..Index::default()
        }
    }

    /// Whether `e`, read from the log with `identity`, has the hash a
    /// checkpoint signed for its seq; marks the log failed if not, naming
    /// the span the rewrite began in (after the last signed size that
    /// still matched). A log rewritten and re-sealed by someone with the
    /// disk passes its own chain check; it fails this one.
    pub fn against_signed(&mut self, e: &EventEnvelope, identity: &str) -> bool {
        let Some(hash) = self
            .signed
            .get(&e.service)
            .and_then(|s| s.get(identity))
            .and_then(|sizes| sizes.get(&e.seq))
        else {
            return true;
        };
        if *hash == e.hash {
            self.intact.insert(e.service, e.seq);
            return true;
        }
        let after = self.intact.get(&e.service).copied().unwrap_or(0);
        let why = if after + 1 == e.seq {
            format!(
                "seq {} no longer has the hash this audit signed for it ({hash}, now {}): the log was rewritten from seq {} on",
                e.seq, e.hash, e.seq
            )
        } else {
            format!(
                "seq {} no longer has the hash this audit signed for it ({hash}, now {}): the log was rewritten, from a seq between {} and {} (seq {after} still matched what was signed)",
                e.seq,
                e.hash,
                after + 1,
                e.seq
            )
        };
        self.failed(e.service, after + 1, why);
        false
    }

    /// Whether `service`'s log as read still extends the checkpoint of
    /// `size` events with head `hash` (hex) of the log `identity`: `Ok`
    /// with the events read after it, `Err` why not, `Ok(None)` when the
    /// log has not been read that far yet (and is not known to be short).
    pub fn extends(&self, service: Service, identity: &str, size: u64, hash: &str) -> Result<Option<u64>, String> {
        let check = self.checks.get(&service).cloned().unwrap_or_default();
        if let Some(read) = &check.identity
            && read != identity
        {
            return Err(format!(
                "the {service} log is {read}, not the log {identity} the checkpoint names"
            ));
        }
        if let Some(bad) = check.first_bad_seq
            && bad <= size
        {
            return Err(check
                .error
                .unwrap_or_else(|| format!("the {service} log fails at seq {bad}")));
        }
        let Some(e) = self.event((service, size)) else {
            return Ok(None);
        };
        if e.hash != hash {
            return Err(format!(
                "the {service} log was rewritten at or before seq {size}: it now holds hash {} there, the checkpoint {hash}",
                e.hash
            ));
        }
        Ok(Some(check.head_seq - size))
    }

    /// The largest size signed of `service`'s log with `identity`.
    pub fn signed_size(&self, service: Service, identity: &str) -> u64 {
        self.signed
            .get(&service)
            .and_then(|s| s.get(identity))
            .and_then(|sizes| sizes.keys().next_back().copied())
            .unwrap_or(0)
    }

    /// Adds the next event of its log (read in seq order, its chain link
    /// checked by the consumer).
    pub fn add(&mut self, e: EventEnvelope) {
        let at = (e.service, e.seq);
        let check = self.checks.entry(e.service).or_default();
        check.head_seq = e.seq;
        check.head_hash.clone_from(&e.hash);
        check.events_checked += 1;
        if e.service == Service::Audit {
            // A read is no action: the access log answers who read what.
            self.logs.entry(e.service).or_default().push(e);
            return;
        }
        let key = (e.service, e.stream.clone());
        let root = match e.service {
            Service::Operations => operations::STREAM.id_of(&e.stream).ok(),
            Service::Crisis => concord_contracts::crisis::STREAM.id_of(&e.stream).ok(),
            _ => self.links.get(&key).copied().or_else(|| named_root(&e)),
        };
        if let Some(root) = root {
            self.links.entry(key).or_insert(root);
            self.by_root.entry(root).or_default().push(at);
        }
        self.by_actor.entry(e.actor.sub.clone()).or_default().push(at);
        self.logs.entry(e.service).or_default().push(e);
    }

    /// `service`'s log is the one with `identity`.
    pub fn identify(&mut self, service: Service, identity: String) {
        self.checks.entry(service).or_default().identity = Some(identity);
    }

    /// `service`'s log stopped checking at `seq`.
    pub fn failed(&mut self, service: Service, seq: u64, why: String) {
        let check = self.checks.entry(service).or_default();
        check.first_bad_seq = Some(seq);
        check.error = Some(why);
    }

    /// The reads recorded in the access log, oldest first: by `sub`, of an
    /// item (a stream name, or the id in one), between two instants (HLC
    /// wall time, ms, both included), each when given.
    pub fn access(&self, who: &AccessFilter<'_>) -> Result<Vec<&EventEnvelope>, Broken> {
        self.whole([Service::Audit])?;
        let names_item = |e: &EventEnvelope, item: &str| {
            e.data.get("items").and_then(Value::as_array).is_some_and(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|i| i == item || stream_id(i) == item)
            })
        };
        Ok(self
            .logs
            .get(&Service::Audit)
            .into_iter()
            .flatten()
            .filter(|e| who.sub.is_none_or(|s| e.actor.sub == s))
            .filter(|e| who.item.is_none_or(|i| names_item(e, i)))
            .filter(|e| who.from.is_none_or(|t| e.hlc.wall_ms >= t))
            .filter(|e| who.to.is_none_or(|t| e.hlc.wall_ms <= t))
            .collect())
    }

    /// Each log's check, for every writing service.
    pub fn checks(&self) -> BTreeMap<Service, LogCheck> {
        Service::LOGS
            .into_iter()
            .map(|s| (s, self.checks.get(&s).cloned().unwrap_or_default()))
            .collect()
    }

    /// Err if `services` includes a log whose chain failed.
    fn whole(&self, services: impl IntoIterator<Item = Service>) -> Result<(), Broken> {
        for s in services {
            if let Some(c) = self.checks.get(&s)
                && let Some(seq) = c.first_bad_seq
            {
                return Err(Broken {
                    service: s,
                    seq,
                    why: c.error.clone().unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    fn event(&self, (service, seq): At) -> Option<&EventEnvelope> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.logs.get(&service)?.get(i)
    }

    fn ordered(&self, places: &[At], at: Option<u64>) -> Vec<&EventEnvelope> {
        let mut out: Vec<&EventEnvelope> = places
            .iter()
            .filter_map(|p| self.event(*p))
            .filter(|e| at.is_none_or(|t| e.hlc.wall_ms <= t))
            .collect();
        out.sort_by_key(|e| order(e));
        out
    }

    /// Every event of operation (or crisis) `root` and of what hangs off
    /// it, in causal order, up to `at` (HLC wall time, ms) when given.
    /// `None`: no such operation or crisis.
    pub fn timeline(&self, root: Uuid, at: Option<u64>) -> Result<Option<Vec<&EventEnvelope>>, Broken> {
        self.whole(Service::ALL)?;
        Ok(self.by_root.get(&root).map(|p| self.ordered(p, at)))
    }

    /// Everything `sub` did, in causal order.
    pub fn actions(&self, sub: &str) -> Result<Vec<&EventEnvelope>, Broken> {
        self.whole(Service::ALL)?;
        Ok(self
            .by_actor
            .get(sub)
            .map(|p| self.ordered(p, None))
            .unwrap_or_default())
    }

    /// Operation (or crisis) `root` and what hangs off it as of `at`: each
    /// stream's state folded with its own contract and shown as its view.
    pub fn state(&self, root: Uuid, at: Option<u64>) -> Result<Option<Value>, Broken> {
        let Some(events) = self.timeline(root, at)? else {
            return Ok(None);
        };
        let mut streams: BTreeMap<(Service, &str), Vec<&EventEnvelope>> = BTreeMap::new();
        for e in events {
            streams.entry((e.service, e.stream.as_str())).or_default().push(e);
        }
        let mut operation = Value::Null;
        let mut top = Value::Null;
        let mut linked = Vec::new();
        for ((service, stream), events) in streams {
            let version = events.last().map_or(0, |e| e.version);
            let view = match service {
                Service::Operations => fold::<Operations>(&events),
                Service::Intel => fold::<Intel>(&events),
                Service::Crisis => fold::<Crisis>(&events),
                Service::Deployments => fold::<Deployments>(&events),
                Service::Audit => fold::<concord_contracts::audit::AccessLog>(&events),
            };
            let view = view.unwrap_or_else(|why| serde_json::json!({"unreadable": why}));
            let entry = serde_json::json!({"service": service, "stream": stream, "version": version, "view": view});
            if stream_id(stream) == root.to_string() && matches!(service, Service::Operations | Service::Crisis) {
                if service == Service::Operations {
                    operation = entry.clone();
                }
                top = entry;
            } else {
                linked.push(entry);
            }
        }
        Ok(Some(
            serde_json::json!({"at": at, "root": top, "operation": operation, "linked": linked}),
        ))
    }
}

/// Who any of `reaches` reaches.
fn union<'a>(reaches: impl IntoIterator<Item = &'a Reach>) -> Reach {
    let mut out = Reach::default();
    for r in reaches {
        out.everyone |= r.everyone;
        out.reviewers |= r.reviewers;
        out.countries.extend(r.countries.iter().copied());
    }
    out
}

/// The view of one stream's `events` folded with contract `A`.
fn fold<A: Aggregate>(events: &[&EventEnvelope]) -> Result<Value, String> {
    let mut state = A::State::default();
    for e in events {
        let event = read_event::<A>(e)?;
        state = A::evolve(state, &event)?;
    }
    Ok(A::view(&state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::{Actor, CountryCode, Hlc, Role};
    use serde_json::json;

    struct Logs {
        seqs: BTreeMap<Service, u64>,
        versions: HashMap<String, u64>,
    }

    impl Logs {
        fn event(
            &mut self,
            service: Service,
            stream: &str,
            t: &str,
            by: &str,
            wall_ms: u64,
            data: Value,
        ) -> EventEnvelope {
            let seq = self.seqs.entry(service).or_default();
            *seq += 1;
            let version = self.versions.entry(stream.to_owned()).or_default();
            *version += 1;
            EventEnvelope {
                id: Uuid::now_v7(),
                service,
                seq: *seq,
                stream: stream.to_owned(),
                version: *version,
                event_type: t.to_owned(),
                schema_version: 1,
                recorded_at: "2026-11-30T10:00:00.000000Z".into(),
                hlc: Hlc { wall_ms, logical: 0 },
                actor: Actor {
                    sub: by.to_owned(),
                    role: Role::Coordinator,
                    country: CountryCode::parse("FR").expect("FR"),
                },
                command_id: Uuid::now_v7().to_string(),
                correlation_id: "c".into(),
                causation_id: None,
                data,
                data_digest: String::new(),
                prev_hash: String::new(),
                hash: format!("h{seq}"),
            }
        }
    }

    fn history() -> (Index, Uuid) {
        let mut logs = Logs {
            seqs: BTreeMap::new(),
            versions: HashMap::new(),
        };
        let op = Uuid::now_v7();
        let lead = Uuid::now_v7();
        let stream = format!("operation-{op}");
        let mut index = Index::default();
        // Read out of causal order across logs: intel first.
        let events = [
            logs.event(
                Service::Intel,
                &format!("lead-{lead}"),
                "lead.posted",
                "de-liaison",
                300,
                json!({"lead_id": lead, "operation_id": op, "owner_country": "DE", "summary": "s", "details": null,
                       "subject": null, "restricted_to": [], "grading": null, "posted_by": "de-liaison",
                       "posted_at": "2026-11-30T10:00:00.300Z"}),
            ),
            logs.event(
                Service::Operations,
                &stream,
                "operation.opened",
                "fr-coordinator",
                100,
                json!({"operation_id": op, "title": "t", "objective": "o", "lead_country": "FR", "participants": ["DE"],
                       "opened_at": "2026-11-30T10:00:00.100Z"}),
            ),
            logs.event(
                Service::Operations,
                &stream,
                "participant.removed",
                "fr-coordinator",
                500,
                json!({"country": "DE"}),
            ),
        ];
        for e in events {
            index.add(e);
        }
        (index, op)
    }

    #[test]
    fn a_timeline_is_in_causal_order_and_stops_at_an_instant() {
        let (index, op) = history();
        let types = |at| -> Vec<String> {
            index
                .timeline(op, at)
                .expect("whole")
                .expect("known")
                .iter()
                .map(|e| e.event_type.clone())
                .collect()
        };
        assert_eq!(types(None), ["operation.opened", "lead.posted", "participant.removed"]);
        assert_eq!(types(Some(300)), ["operation.opened", "lead.posted"]);
        assert_eq!(types(Some(99)), Vec::<String>::new());
        assert!(index.timeline(Uuid::now_v7(), None).expect("whole").is_none());
        assert_eq!(index.actions("de-liaison").expect("whole").len(), 1);
    }

    #[test]
    fn a_state_as_of_an_instant_is_folded_by_the_contract() {
        let (index, op) = history();
        let before = index.state(op, Some(400)).expect("whole").expect("known");
        let after = index.state(op, None).expect("whole").expect("known");
        assert_eq!(before["operation"]["version"], 1);
        assert_eq!(after["operation"]["version"], 2);
        assert!(
            before["operation"]["view"]["participants"].to_string().contains("DE"),
            "{before}"
        );
        assert!(
            !after["operation"]["view"]["participants"].to_string().contains("DE"),
            "{after}"
        );
        assert!(before["linked"][0]["view"].get("unreadable").is_none(), "{before}");
        assert_eq!(before["linked"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_country_knew_an_operation_until_it_was_removed() {
        let (index, op) = history();
        let de = CountryCode::parse("DE").expect("DE");
        let streams = |at| -> Vec<String> {
            index
                .knowledge(de, at)
                .expect("folds")
                .iter()
                .map(|i| i["stream"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let operation = format!("operation-{op}");
        assert!(streams(Some(99)).is_empty());
        assert!(streams(Some(400)).contains(&operation), "{:?}", streams(Some(400)));
        assert!(!streams(None).contains(&operation), "{:?}", streams(None));
        let sight = index.sight(&op.to_string(), de).expect("folds").expect("known");
        assert_eq!(sight.periods.len(), 1, "{sight:?}");
        assert_eq!(sight.periods[0].from.event_type, "operation.opened");
        assert_eq!(
            sight.periods[0].until.as_ref().map(|m| m.event_type.as_str()),
            Some("participant.removed")
        );
        let fr = &sight.countries["FR"];
        assert_eq!((fr.len(), fr[0].until.is_none()), (1, true), "{sight:?}");
        assert!(sight.countries["*"].is_empty());
        assert!(index.sight(&Uuid::now_v7().to_string(), de).expect("folds").is_none());
    }

    #[test]
    fn a_log_rewritten_after_a_signed_checkpoint_is_named_where_it_began() {
        let (index, _) = history();
        let ops: Vec<EventEnvelope> = index.logs[&Service::Operations].clone();
        let signed = |sizes: &[(u64, &str)]| {
            let mut s: Signed = HashMap::new();
            s.insert(
                "log-1".into(),
                sizes.iter().map(|(n, h)| (*n, (*h).to_owned())).collect(),
            );
            BTreeMap::from([(Service::Operations, s)])
        };
        // Both events as signed: intact.
        let mut fresh = Index::holding_to(signed(&[(1, "h1"), (2, "h2")]));
        assert!(ops.iter().all(|e| fresh.against_signed(e, "log-1")));
        assert_eq!(fresh.checks()[&Service::Operations].first_bad_seq, None);
        // Seq 2 signed with another hash: rewritten from seq 2, exactly.
        let mut rewritten = Index::holding_to(signed(&[(1, "h1"), (2, "other")]));
        assert!(rewritten.against_signed(&ops[0], "log-1"));
        assert!(!rewritten.against_signed(&ops[1], "log-1"));
        let check = &rewritten.checks()[&Service::Operations];
        assert_eq!(check.first_bad_seq, Some(2));
        assert!(
            check.error.as_deref().unwrap_or("").contains("rewritten from seq 2"),
            "{check:?}"
        );
        // Only seq 2 signed: the rewrite began at seq 1 or 2.
        let mut coarse = Index::holding_to(signed(&[(2, "other")]));
        assert!(coarse.against_signed(&ops[0], "log-1"));
        assert!(!coarse.against_signed(&ops[1], "log-1"));
        assert_eq!(coarse.checks()[&Service::Operations].first_bad_seq, Some(1));
        // Another log (another identity) is not held to them.
        assert!(coarse.against_signed(&ops[1], "log-2"));
        assert_eq!(coarse.signed_size(Service::Operations, "log-1"), 2);
    }

    #[test]
    fn a_log_that_failed_is_not_served_as_if_whole() {
        let (mut index, op) = history();
        index.failed(Service::Intel, 2, "it does not link".into());
        let err = index.timeline(op, None).expect_err("refused");
        assert_eq!((err.service, err.seq), (Service::Intel, 2));
        assert_eq!(index.checks()[&Service::Intel].first_bad_seq, Some(2));
        assert_eq!(index.checks()[&Service::Operations].events_checked, 2);
    }
}
