//! Causal order over the four logs, as a pure state machine the driver
//! feeds (events as the consumers read them, heads as the owners report
//! them) and asks what to do next.
//!
//! The rule: the logs are applied in one total order, `(hlc, service,
//! seq)`. Before an event with HLC `h` is applied, every event with an
//! earlier HLC of every other log is applied: not only of the logs its
//! service follows (whose events it had seen, so they were in their log
//! before it was decided), because an event of any log can change what
//! another log's events reach (an operation's removal decides who sees
//! the leads posted before it), so the views as of `h` must hold exactly
//! the events before `h`, whichever order the logs were read in; a
//! rebuild from the whole logs then gives the views the live projector
//! gave. An event is ready once, for each other log, either an event of
//! that log is buffered (each log is in HLC order, so it is not earlier:
//! the candidate is the smallest buffered) or a head of that log fetched
//! after the candidate was read has been read up to. Reads and head
//! fetches are stamped from one counter (`tick`) to compare their times.
//! (An event appended after that head with an earlier HLC, from a service
//! that had not seen the candidate, would come after it: the services
//! share the machines' clocks, so that is a skew of milliseconds.)
//!
//! A log whose owner does not answer (stopped) cannot be waited for
//! without stopping every view. For the logs the candidate's service
//! follows, the merge waits all the same: their events decide who the
//! candidate reaches (a removal read late would leak a lead). For the
//! others, once a head was asked after the candidate was read and could
//! not be had ([`Merge::unavailable`]), the candidate goes first: at
//! worst an earlier event of a stopped service is applied after it (a
//! lead the removal then hides, never one shown too widely).

use std::collections::{BTreeMap, VecDeque};

use concord_core::{EventEnvelope, Service};

/// The logs an event of `service` waits for: every other one.
fn others(service: Service) -> impl Iterator<Item = Service> {
    Service::ALL.into_iter().filter(move |s| *s != service)
}

/// The logs whose events a service folds before deciding (its contract's
/// facts): intel the operations log, crisis the deployments log,
/// deployments the crisis and operations logs. Their events are waited
/// for even when their owner does not answer.
pub fn follows(service: Service) -> &'static [Service] {
    match service {
        Service::Operations => &[],
        Service::Intel => &[Service::Operations],
        Service::Crisis => &[Service::Deployments],
        Service::Deployments => &[Service::Crisis, Service::Operations],
        // The projector does not read the access log.
        Service::Audit => &[],
    }
}

#[derive(Debug, Default)]
struct Source {
    /// Read, not yet applied, in seq order, each with the tick it was read at.
    buffered: VecDeque<(EventEnvelope, u64)>,
    /// The last seq read (or applied before a restart).
    read: u64,
    /// The newest head fetched: `(tick, seq)`.
    head: Option<(u64, u64)>,
    /// When its head was last asked and could not be had.
    unavailable: Option<u64>,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Apply this event now.
    Apply(Box<EventEnvelope>),
    /// Fetch the head of this log (then [`Merge::head`]).
    Head(Service),
    /// Wait for more events (of any log).
    Wait,
}

#[derive(Debug)]
pub struct Merge {
    sources: BTreeMap<Service, Source>,
}

impl Merge {
    /// A merge resuming after `applied(service)`, the last seq applied of
    /// each log.
    pub fn new(applied: impl Fn(Service) -> u64) -> Merge {
        Merge {
            sources: Service::ALL
                .into_iter()
                .map(|s| {
                    (
                        s,
                        Source {
                            read: applied(s),
                            ..Source::default()
                        },
                    )
                })
                .collect(),
        }
    }

    /// An event read at `tick`; the consumer delivers each log's events in
    /// seq order, once. An event out of order is a bug of the caller.
    pub fn read(&mut self, e: EventEnvelope, tick: u64) -> Result<(), String> {
        let source = self.source(e.service);
        if e.seq != source.read + 1 {
            return Err(format!("{} seq {} read after seq {}", e.service, e.seq, source.read));
        }
        source.read = e.seq;
        source.buffered.push_back((e, tick));
        Ok(())
    }

    /// `service`'s log stood at `seq` when asked at `tick`.
    pub fn head(&mut self, service: Service, tick: u64, seq: u64) {
        let source = self.source(service);
        if source.head.is_none_or(|(t, _)| t < tick) {
            source.head = Some((tick, seq));
        }
    }

    /// `service`'s head was asked at `tick` and nobody answered.
    pub fn unavailable(&mut self, service: Service, tick: u64) {
        let source = self.source(service);
        if source.unavailable.is_none_or(|t| t < tick) {
            source.unavailable = Some(tick);
        }
    }

    fn source(&mut self, service: Service) -> &mut Source {
        self.sources.entry(service).or_default()
    }

    /// The buffered event first in causal order: the smallest
    /// `(hlc, service, seq)` among the logs' first buffered events.
    fn candidate(&self) -> Option<(Service, &EventEnvelope, u64)> {
        self.sources
            .iter()
            .filter_map(|(s, src)| src.buffered.front().map(|(e, t)| (*s, e, *t)))
            .min_by_key(|(s, e, _)| (e.hlc, *s, e.seq))
    }

    /// What is next without doing it: `None` to apply the candidate.
    fn blocked(&self) -> Option<Next> {
        let Some((service, event, read_at)) = self.candidate() else {
            return Some(Next::Wait);
        };
        let hlc = event.hlc;
        for l in others(service) {
            let src = &self.sources[&l];
            if src.buffered.front().is_some_and(|(e, _)| e.hlc >= hlc) {
                continue;
            }
            match src.head {
                Some((at, seq)) if at > read_at => {
                    if src.read < seq {
                        // Events of `l` that may be earlier are on the way.
                        return Some(Next::Wait);
                    }
                }
                _ if src.unavailable.is_some_and(|at| at > read_at) && !follows(service).contains(&l) => {}
                _ => return Some(Next::Head(l)),
            }
        }
        None
    }

    /// Whether the next step asks `service`'s head (still, after it could
    /// not be had: the candidate follows that log).
    pub fn step_needs(&self, service: Service) -> bool {
        self.blocked() == Some(Next::Head(service))
    }

    pub fn step(&mut self) -> Next {
        if let Some(next) = self.blocked() {
            return next;
        }
        let Some((service, ..)) = self.candidate() else {
            return Next::Wait;
        };
        match self.sources.get_mut(&service).and_then(|s| s.buffered.pop_front()) {
            Some((e, _)) => Next::Apply(Box::new(e)),
            None => Next::Wait,
        }
    }

    /// How many events are read and not applied.
    pub fn buffered(&self) -> usize {
        self.sources.values().map(|s| s.buffered.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use concord_core::{Actor, CountryCode, Hlc, Role};
    use serde_json::json;

    use super::*;

    fn ev(service: Service, seq: u64, wall_ms: u64) -> EventEnvelope {
        EventEnvelope {
            id: uuid::Uuid::now_v7(),
            service,
            seq,
            stream: "s".into(),
            version: seq,
            event_type: "t".into(),
            schema_version: 1,
            recorded_at: String::new(),
            hlc: Hlc { wall_ms, logical: 0 },
            actor: Actor {
                sub: "x".into(),
                role: Role::Liaison,
                country: CountryCode::parse("FR").expect("FR"),
            },
            command_id: "c".into(),
            correlation_id: "c".into(),
            causation_id: None,
            data: json!({}),
            data_digest: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn applied(next: Next) -> (Service, u64) {
        match next {
            Next::Apply(e) => (e.service, e.seq),
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Answers each head asked with `heads` (the log's last seq), at
    /// increasing ticks from `tick`, until an event is applied or none is
    /// ready.
    fn drive(m: &mut Merge, tick: &mut u64, heads: &BTreeMap<Service, u64>) -> Next {
        loop {
            match m.step() {
                Next::Head(s) => {
                    *tick += 1;
                    m.head(s, *tick, heads.get(&s).copied().unwrap_or(0));
                }
                other => return other,
            }
        }
    }

    /// An intel event is held until the operations log is known to hold
    /// nothing earlier, then applied after the earlier operations event
    /// that arrived late (a removal read after the lead that followed it).
    #[test]
    fn a_late_event_of_a_followed_log_is_applied_first() {
        let mut m = Merge::new(|_| 0);
        m.read(ev(Service::Intel, 1, 200), 1).expect("read");
        let mut tick = 1;
        // The heads, asked after the lead was read, say one operations
        // event exists.
        let heads = BTreeMap::from([(Service::Operations, 1)]);
        assert_eq!(
            drive(&mut m, &mut tick, &heads),
            Next::Wait,
            "the earlier event is on its way"
        );
        m.read(ev(Service::Operations, 1, 100), 10).expect("read");
        assert_eq!(applied(drive(&mut m, &mut tick, &heads)), (Service::Operations, 1));
        assert_eq!(applied(drive(&mut m, &mut tick, &heads)), (Service::Intel, 1));
        assert_eq!(drive(&mut m, &mut tick, &heads), Next::Wait);
    }

    /// The other way round too: an operations event waits for an earlier
    /// intel event read late (the lead posted before a removal reaches the
    /// country removed), so the order does not depend on which log was
    /// read first.
    #[test]
    fn an_operations_event_waits_for_an_earlier_event_of_any_log() {
        let mut m = Merge::new(|_| 0);
        m.read(ev(Service::Operations, 1, 300), 1).expect("read");
        let mut tick = 1;
        let heads = BTreeMap::from([(Service::Intel, 1)]);
        assert_eq!(drive(&mut m, &mut tick, &heads), Next::Wait);
        m.read(ev(Service::Intel, 1, 200), 10).expect("read");
        assert_eq!(applied(drive(&mut m, &mut tick, &heads)), (Service::Intel, 1));
        assert_eq!(applied(drive(&mut m, &mut tick, &heads)), (Service::Operations, 1));
    }

    /// A log whose owner does not answer holds up only the events of the
    /// services that follow it.
    #[test]
    fn a_stopped_service_holds_up_only_its_followers() {
        let mut m = Merge::new(|_| 0);
        m.read(ev(Service::Operations, 1, 100), 1).expect("read");
        m.read(ev(Service::Intel, 1, 200), 2).expect("read");
        let mut tick = 2;
        for s in [Service::Crisis, Service::Deployments] {
            tick += 1;
            m.unavailable(s, tick);
        }
        // Operations and intel go: neither follows crisis or deployments.
        assert_eq!(applied(m.step()), (Service::Operations, 1));
        tick += 1;
        m.head(Service::Operations, tick, 1);
        assert_eq!(applied(m.step()), (Service::Intel, 1));
        // A deployments event waits for crisis, which it follows.
        tick += 1;
        m.read(ev(Service::Deployments, 1, 300), tick).expect("read");
        for s in [Service::Operations, Service::Intel] {
            tick += 1;
            m.head(s, tick, 1);
        }
        tick += 1;
        m.unavailable(Service::Crisis, tick);
        assert_eq!(m.step(), Next::Head(Service::Crisis));
    }

    /// A head fetched before the event was read proves nothing of it.
    #[test]
    fn a_head_older_than_the_event_is_asked_again() {
        let mut m = Merge::new(|_| 0);
        for s in Service::ALL {
            m.head(s, 1, 0);
        }
        m.read(ev(Service::Intel, 1, 200), 2).expect("read");
        assert!(matches!(m.step(), Next::Head(_)));
        let mut tick = 2;
        assert_eq!(applied(drive(&mut m, &mut tick, &BTreeMap::new())), (Service::Intel, 1));
    }

    /// Whatever order the logs are read in, the events are applied in
    /// `(hlc, service, seq)` order.
    #[test]
    fn events_go_in_hlc_order_across_logs() {
        let events = [
            ev(Service::Operations, 1, 300),
            ev(Service::Intel, 1, 100),
            ev(Service::Crisis, 1, 200),
            ev(Service::Deployments, 1, 400),
            ev(Service::Operations, 2, 350),
        ];
        let heads: BTreeMap<Service, u64> = BTreeMap::from([
            (Service::Operations, 2),
            (Service::Intel, 1),
            (Service::Crisis, 1),
            (Service::Deployments, 1),
        ]);
        for rotation in 0..events.len() {
            let mut m = Merge::new(|_| 0);
            let mut tick = 0;
            let mut order: Vec<&EventEnvelope> = events.iter().collect();
            order.rotate_left(rotation);
            // Each log's events in seq order, the logs interleaved as rotated.
            let first = order[0].service;
            order.sort_by_key(|e| (e.service != first, e.seq));
            let mut got = Vec::new();
            for e in order {
                tick += 1;
                m.read(e.clone(), tick).expect("read");
                while let Next::Apply(e) = drive(&mut m, &mut tick, &heads) {
                    got.push((e.service, e.seq));
                }
            }
            assert_eq!(
                got,
                vec![
                    (Service::Intel, 1),
                    (Service::Crisis, 1),
                    (Service::Operations, 1),
                    (Service::Operations, 2),
                    (Service::Deployments, 1)
                ],
                "rotation {rotation}"
            );
        }
    }

    #[test]
    fn a_gap_or_a_repeat_is_refused() {
        let mut m = Merge::new(|s| if s == Service::Intel { 5 } else { 0 });
        assert!(m.read(ev(Service::Intel, 5, 1), 1).is_err());
        assert!(m.read(ev(Service::Intel, 7, 1), 1).is_err());
        assert!(m.read(ev(Service::Intel, 6, 1), 1).is_ok());
        assert_eq!(m.buffered(), 1);
    }
}
