//! Causal order over the four logs, as a pure state machine the driver
//! feeds (events as the consumers read them, heads as the owners report
//! them) and asks what to do next.
//!
//! The rule: before an event with HLC `h` of service `S` is applied, every
//! event with an earlier HLC of the logs `S` follows is applied. Every such
//! event `S` had seen was in its log before the event was decided, so it is
//! within any head of that log fetched after the event was read. Hence an
//! event is ready once, for each log its service follows, either an event
//! of that log is buffered (each log is in HLC order, so it is not
//! earlier: the candidate is the smallest buffered) or a head of that log
//! fetched after the candidate was read has been read up to. Reads and head
//! fetches are stamped from one counter (`tick`) to compare their times.

use std::collections::{BTreeMap, VecDeque};

use concord_core::{EventEnvelope, Service};

/// The logs whose events a service folds before deciding (its contract's
/// facts): intel the operations log, crisis the deployments log,
/// deployments the crisis and operations logs.
pub fn follows(service: Service) -> &'static [Service] {
    match service {
        Service::Operations => &[],
        Service::Intel => &[Service::Operations],
        Service::Crisis => &[Service::Deployments],
        Service::Deployments => &[Service::Crisis, Service::Operations],
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

    pub fn step(&mut self) -> Next {
        let Some((service, event, read_at)) = self.candidate() else {
            return Next::Wait;
        };
        let hlc = event.hlc;
        for l in follows(service) {
            let src = &self.sources[l];
            if src.buffered.front().is_some_and(|(e, _)| e.hlc >= hlc) {
                continue;
            }
            match src.head {
                Some((at, seq)) if at > read_at => {
                    if src.read < seq {
                        // Events of `l` that may be earlier are on the way.
                        return Next::Wait;
                    }
                }
                _ => return Next::Head(*l),
            }
        }
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

    /// An intel event is held until the operations log is known to hold
    /// nothing earlier, then applied after the earlier operations event
    /// that arrived late (a removal read after the lead that followed it).
    #[test]
    fn a_late_event_of_a_followed_log_is_applied_first() {
        let mut m = Merge::new(|_| 0);
        m.read(ev(Service::Intel, 1, 200), 1).expect("read");
        assert_eq!(m.step(), Next::Head(Service::Operations));
        // The head, asked after the lead was read, says one event exists.
        m.head(Service::Operations, 2, 1);
        assert_eq!(m.step(), Next::Wait, "the earlier event is on its way");
        m.read(ev(Service::Operations, 1, 100), 3).expect("read");
        assert_eq!(applied(m.step()), (Service::Operations, 1));
        assert_eq!(applied(m.step()), (Service::Intel, 1));
        assert_eq!(m.step(), Next::Wait);
    }

    /// A head fetched before the event was read proves nothing of it.
    #[test]
    fn a_head_older_than_the_event_is_asked_again() {
        let mut m = Merge::new(|_| 0);
        m.head(Service::Operations, 1, 0);
        m.read(ev(Service::Intel, 1, 200), 2).expect("read");
        assert_eq!(m.step(), Next::Head(Service::Operations));
        m.head(Service::Operations, 3, 0);
        assert_eq!(applied(m.step()), (Service::Intel, 1));
    }

    /// The operations log follows nothing: its events never wait; and a
    /// later buffered event of a followed log lets an event through.
    #[test]
    fn events_go_in_hlc_order_across_logs() {
        let mut m = Merge::new(|_| 0);
        m.read(ev(Service::Operations, 1, 300), 1).expect("read");
        m.read(ev(Service::Intel, 1, 100), 2).expect("read");
        m.read(ev(Service::Crisis, 1, 200), 3).expect("read");
        m.read(ev(Service::Deployments, 1, 400), 4).expect("read");
        // intel@100 first: operations has a buffered event, not earlier.
        assert_eq!(applied(m.step()), (Service::Intel, 1));
        // crisis@200: deployments' buffered event is later.
        assert_eq!(applied(m.step()), (Service::Crisis, 1));
        assert_eq!(applied(m.step()), (Service::Operations, 1));
        // deployments@400 follows crisis and operations, both drained.
        assert_eq!(m.step(), Next::Head(Service::Crisis));
        m.head(Service::Crisis, 5, 1);
        assert_eq!(m.step(), Next::Head(Service::Operations));
        m.head(Service::Operations, 6, 1);
        assert_eq!(applied(m.step()), (Service::Deployments, 1));
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
