//! A consumer of another service's log: every event of the source, in order,
//! once, whatever the live feed drops.
//!
//! The live subscription is only a hint, for two reasons. Core NATS delivers
//! at most once, so the consumer keeps the `{seq, hash}` of the last event
//! it delivered, fills any gap through `concord.log.<source>.read`, polls
//! the source's head when the feed is quiet, and skips what it already
//! delivered. And anyone allowed to publish on `concord.evt.<source>.>` (a
//! stolen key, a misconfigured permission) could publish a well-formed,
//! correctly hashed event: so no live message is ever delivered. A live
//! message only says "the source moved"; every delivered event is read
//! from the owner's log, and the live message's claim (its seq and hash)
//! is checked against it. One that does not match what the log serves (or
//! claims a seq beyond the log's head) is dropped and counted
//! ([`Consumer::rejected`]), and following goes on: stopping on it would
//! hand whoever can publish a denial of service. It also checks
//! that every event links to the previous one by hash, so it can never
//! silently follow a different history: a source whose head is behind the
//! checkpoint, or that serves another hash at an already-delivered seq, is a
//! `Regression` and the consumer stops. The checkpoint also keeps the
//! source log's identity (learnt on first contact): when another log
//! answers for the source (a second instance on another data directory, a
//! replaced one), the consumer stops with `IdentityChanged` rather than
//! mix two histories.
//!
//! Must not: apply anything itself. The caller applies each event and
//! persists `position()` with its own state (atomically, where it can), then
//! restarts from it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{FutureExt, StreamExt};

use crate::logs::{BusError, fetch_head, fetch_log};
use concord_core::chain::{GENESIS_HASH, inspect};
use concord_core::envelope::{EventEnvelope, Service};
use concord_core::subjects;
use concord_log::{LogIdentity, READ_BATCH_EVENTS_MAX};
use serde::{Deserialize, Serialize};

/// How often a quiet consumer asks the source for its head. Bounds how long
/// an event whose live message was lost waits to be delivered.
pub const HEAD_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long after it starts a consumer whose source does not answer yet
/// says so quietly (debug): services that follow each other start
/// together (crisis and deployments each follow the other), so the first
/// asks of a start often find nobody yet. Past it, or once the source
/// answered, that is a warning.
const SOURCE_START_GRACE: Duration = Duration::from_secs(30);
/// How long a source may not answer before a consumer warns of it (info
/// until then): a source that stops with the whole process (a clean stop)
/// is gone for a moment, not worth a warning.
const SOURCE_UNREACHABLE_GRACE: Duration = Duration::from_secs(2);
/// How often a consumer that need not read each event the moment it is
/// published (`Consumer::with_read_interval`) reads its source under a
/// steady flow. Rationale: at thousands of commands a second a read per
/// burst is a request and a reply on the bus for every few events, for
/// each of the four consumers of a log; one read per 5 ms carries them
/// all, and whoever must wait on the consumer asks it to read at once
/// ([`Hurry`]).
pub const READ_INTERVAL: Duration = Duration::from_millis(5);
/// Live claims waiting to be checked against the log. Rationale: bounds
/// what a flood of forged messages can make a consumer hold; a claim not
/// kept is not checked, but its event is still read from the log.
const CLAIMS_MAX: usize = 4096;
/// Delivered `{seq, hash}` kept to check a live message that arrives after
/// its event was read from the log (the usual order when a burst is read
/// in one batch).
const DELIVERED_KEPT: usize = 1024;
/// Live messages taken at once before the log is read: a burst (or a
/// flood) costs one read, not one per message.
const LIVE_BATCH_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error(
        "log regression in {source_log}: consumer is at seq {at_seq} but {what}; refusing to follow a different history"
    )]
    Regression {
        source_log: Service,
        at_seq: u64,
        what: String,
    },
    #[error(
        "the {source_log} log answering now is not the one this consumer follows (identity {seen}, not {known}): \
         two {source_log} instances on different data directories, or a replaced one; refusing to mix two \
         histories: keep the one {source_log} instance on log {known}, or restart this consumer to follow the other"
    )]
    IdentityChanged {
        source_log: Service,
        known: LogIdentity,
        /// The identity now answering, or why there is none.
        seen: String,
    },
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("the live subscription to {0} ended")]
    Closed(Service),
}

impl ConsumerError {
    /// Whether following must stop: waiting cannot make it right.
    fn is_final(&self) -> bool {
        matches!(
            self,
            ConsumerError::Regression { .. } | ConsumerError::IdentityChanged { .. }
        )
    }
}

/// Where a consumer stands in one source log, and which log that is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: String,
    /// The source log's identity, once known: `None` before the first
    /// contact, or while the source runs a release before log identities.
    #[serde(default)]
    pub identity: Option<LogIdentity>,
}

/// Ends a consumer's read interval wait (`Consumer::hurry`). Asked while
/// the consumer is not waiting, it ends the next wait at once: someone
/// waiting on a seq the consumer has not been told of yet is not left to
/// the interval when the live message comes. At worst that is one read
/// earlier than the interval would have made it.
#[derive(Clone)]
pub struct Hurry(Arc<tokio::sync::Notify>);

impl Hurry {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// Hurries the consumer of each log whose wanted seq is beyond what was
/// applied of it: for a read that names positions and waits for them.
pub fn hurry_behind(
    hurry: &BTreeMap<Service, Hurry>,
    applied: &BTreeMap<Service, u64>,
    wanted: &BTreeMap<Service, u64>,
) {
    for (service, seq) in wanted {
        if applied.get(service).is_none_or(|at| at < seq)
            && let Some(h) = hurry.get(service)
        {
            h.now();
        }
    }
}

/// The checkpoint of a consumer that has delivered nothing yet.
pub fn start_of_log() -> Checkpoint {
    Checkpoint {
        seq: 0,
        hash: GENESIS_HASH.to_owned(),
        identity: None,
    }
}

pub struct Consumer {
    client: async_nats::Client,
    source: Service,
    live: async_nats::Subscriber,
    at: Checkpoint,
    /// Fetched, not yet delivered (seq order, contiguous after `at`).
    pending: VecDeque<(EventEnvelope, String)>,
    /// Highest head the source reported.
    known_head: u64,
    /// Whether the checkpoint was checked against the source yet.
    anchored: bool,
    /// When it started (see `SOURCE_START_GRACE`).
    started: tokio::time::Instant,
    /// Since when its source has not answered, if it does not now.
    unreachable_since: Option<tokio::time::Instant>,
    /// At most one read of the log per this while live messages keep
    /// coming (`None`: a read for each burst at once).
    read_interval: Option<Duration>,
    /// When the log was last read.
    last_read: Option<tokio::time::Instant>,
    /// Ends a read interval's wait at once (see [`Hurry`]).
    hurry: Arc<tokio::sync::Notify>,
    poll: Duration,
    /// Live claims `seq → hashes` beyond the checkpoint, checked when the
    /// log serves that seq (or reports a head below it).
    claims: BTreeMap<u64, Vec<String>>,
    /// The last delivered `(seq, hash)`, oldest first.
    delivered: VecDeque<(u64, String)>,
    /// Live messages that did not match the log.
    rejected: Arc<AtomicU64>,
    /// Who consumes, for the lag metric.
    name: String,
    /// The `traceparent` a live message claiming `seq` with `hash` carried
    /// (the first per seq), kept while its claim is.
    traces: BTreeMap<u64, (String, String)>,
    /// The `traceparent` of the event delivered last, when the live message
    /// that claimed it carried one and the log served that very event.
    last_trace: Option<String>,
}

impl Consumer {
    /// Subscribes to `source`'s events and resumes after `from`.
    pub async fn start(
        client: async_nats::Client,
        source: Service,
        from: Checkpoint,
    ) -> Result<Consumer, ConsumerError> {
        let live = client
            .subscribe(subjects::events_of(source))
            .await
            .map_err(|e| BusError::Nats(e.to_string()))?;
        client.flush().await.map_err(|e| BusError::Nats(e.to_string()))?;
        Ok(Consumer {
            client,
            source,
            live,
            known_head: from.seq,
            at: from,
            pending: VecDeque::new(),
            anchored: false,
            started: tokio::time::Instant::now(),
            unreachable_since: None,
            read_interval: None,
            last_read: None,
            hurry: Arc::default(),
            poll: HEAD_POLL_INTERVAL,
            claims: BTreeMap::new(),
            delivered: VecDeque::new(),
            rejected: Arc::default(),
            name: "consumer".to_owned(),
            traces: BTreeMap::new(),
            last_trace: None,
        })
    }

    /// Names who consumes (the projector, the audit, a service following
    /// another's log) in the lag metric.
    pub fn named(mut self, consumer: &str) -> Self {
        consumer.clone_into(&mut self.name);
        self
    }

    /// Sets the lag metric: what the source is known to hold beyond what
    /// was delivered.
    fn report_lag(&self) {
        let known = self
            .claims
            .last_key_value()
            .map_or(self.known_head, |(seq, _)| (*seq).max(self.known_head));
        metrics::gauge!(
            crate::metrics::CONSUMER_LAG,
            "consumer" => self.name.clone(),
            "source" => self.source.as_str()
        )
        .set(known.saturating_sub(self.at.seq) as f64);
    }

    /// Sets the quiet-feed poll interval (tests shorten it).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Reads the log at most once per `every` while live messages keep
    /// coming, for a consumer that need not have each event the moment it
    /// is published: under a steady flow one read then carries what
    /// arrived over `every` instead of one read per burst (each a request
    /// and a reply on the bus). After a quiet spell the first live message
    /// is read at once, and [`Consumer::hurry`] ends a wait early.
    pub fn with_read_interval(mut self, every: Duration) -> Self {
        self.read_interval = Some(every);
        self
    }

    /// A handle that makes this consumer read what it was told of now,
    /// rather than when its read interval ends: for whoever is about to
    /// wait on it (a command that must decide on a caught-up view, a read
    /// naming positions).
    pub fn hurry(&self) -> Hurry {
        Hurry(Arc::clone(&self.hurry))
    }

    /// The `traceparent` of the event `next` returned last, when the live
    /// message that announced it carried one (an event read to fill a gap
    /// has none): a consumer's span continues the trace that appended it.
    pub fn traceparent(&self) -> Option<&str> {
        self.last_trace.as_deref()
    }

    /// The last event delivered: persist it with what you applied.
    pub fn position(&self) -> &Checkpoint {
        &self.at
    }

    pub fn source(&self) -> Service {
        self.source
    }

    /// How many live messages did not match the source's log (forged,
    /// or from a misconfigured publisher), dropped without stopping.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The counter behind [`Consumer::rejected`], to watch it from
    /// elsewhere (a service's health).
    pub fn rejected_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.rejected)
    }

    /// The next event of the source, in order, exactly once, as the
    /// source's log serves it.
    ///
    /// Waits through a source or bus that is down (retrying every poll
    /// interval); returns an error only for a regression of the log itself,
    /// another log answering, or a closed subscription (never for a live
    /// message). Cancel-safe: every change to the consumer happens between
    /// its awaits, so a dropped call loses no event.
    pub async fn next(&mut self) -> Result<EventEnvelope, ConsumerError> {
        loop {
            if let Some((event, raw)) = self.pending.pop_front() {
                self.accept(&event, &raw)?;
                return Ok(event);
            }
            let step = if !self.anchored {
                // Learn where the source stands, and whether it went
                // backwards, before trusting anything live.
                self.check_head().await
            } else if self.known_head > self.at.seq {
                self.fill().await
            } else {
                self.wait_live().await?;
                continue;
            };
            match step {
                Ok(()) => self.unreachable_since = None,
                Err(e) if e.is_final() => return Err(e),
                Err(e) => {
                    self.unreachable(&e);
                    tokio::time::sleep(self.poll).await;
                }
            }
        }
    }

    /// Waits for live messages or the poll interval, and records what they
    /// claim: `next` then reads the log up to the highest claimed seq.
    async fn wait_live(&mut self) -> Result<(), ConsumerError> {
        tokio::select! {
            msg = self.live.next() => {
                let Some(msg) = msg else { return Err(ConsumerError::Closed(self.source)) };
                self.claim(&msg.payload, trace_of(&msg));
                // Whatever else has arrived is taken now, so a burst is
                // read from the log once.
                for _ in 1..LIVE_BATCH_MAX {
                    match self.live.next().now_or_never() {
                        Some(Some(msg)) => self.claim(&msg.payload, trace_of(&msg)),
                        _ => break,
                    }
                }
                let due = self.read_interval.zip(self.last_read).map(|(every, at)| at + every);
                if let Some(due) = due {
                    loop {
                        tokio::select! {
                            biased;
                            () = tokio::time::sleep_until(due) => break,
                            () = self.hurry.notified() => break,
                            msg = self.live.next() => match msg {
                                Some(msg) => self.claim(&msg.payload, trace_of(&msg)),
                                None => return Err(ConsumerError::Closed(self.source)),
                            },
                        }
                    }
                }
                Ok(())
            }
            () = tokio::time::sleep(self.poll) => {
                match self.check_head().await {
                    Ok(()) => {
                        self.unreachable_since = None;
                        Ok(())
                    }
                    Err(e) if e.is_final() => Err(e),
                    Err(e) => {
                        self.unreachable(&e);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Says that the source did not answer: a warning once it has not
    /// for `SOURCE_UNREACHABLE_GRACE`, an info line until then, and only
    /// a debug line before it ever answered, for `SOURCE_START_GRACE`
    /// after the start (waiting for a peer to start is a normal start).
    fn unreachable(&mut self, e: &ConsumerError) {
        let now = tokio::time::Instant::now();
        let since = *self.unreachable_since.get_or_insert(now);
        if !self.anchored && now.duration_since(self.started) < SOURCE_START_GRACE {
            tracing::debug!(source = %self.source, error = %e, "consumer waits for its source to start");
        } else if now.duration_since(since) < SOURCE_UNREACHABLE_GRACE {
            tracing::info!(source = %self.source, error = %e, "consumer waits for its source to answer");
        } else {
            tracing::warn!(source = %self.source, error = %e, "consumer cannot reach its source; retrying");
        }
    }

    /// Records what a live message claims. It proves nothing (it may come
    /// from another log, or from anyone allowed to publish there): its
    /// claim is checked when the log serves that seq.
    fn claim(&mut self, payload: &[u8], traceparent: Option<String>) {
        // A message that is not a canonical, sealed record, or whose bytes
        // do not hash to the hash it states, is false on its face.
        let (seq, hash) = match inspect(payload) {
            Ok(link) if link.computed == link.stored => (link.seq, link.stored),
            Ok(link) => return self.reject(link.seq, "it does not hash to its stated hash"),
            Err(e) => return self.reject(e.seq.unwrap_or_default(), "it is not a sealed event"),
        };
        if seq <= self.at.seq {
            let served = self.delivered.iter().find(|(s, _)| *s == seq);
            if let Some((_, served)) = served
                && *served != hash
            {
                self.reject(seq, "the log serves another event at that seq");
            }
            return;
        }
        // Several claims for one seq: one at most is true, and the log
        // decides which when it serves the seq. A claim not kept (the
        // bound is reached) is not checked, but its event is still read
        // from the log.
        let kept = self.claims.values().map(Vec::len).sum::<usize>();
        let at_seq = self.claims.entry(seq).or_default();
        if !at_seq.contains(&hash) && kept < CLAIMS_MAX {
            if let Some(tp) = traceparent {
                self.traces.entry(seq).or_insert_with(|| (hash.clone(), tp));
            }
            at_seq.push(hash);
        }
        self.known_head = self.known_head.max(seq);
    }

    /// Counts a live message that does not match the log, and says so
    /// (the first, then every thousandth: a flood must not flood the logs).
    fn reject(&self, seq: u64, why: &str) {
        let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 || n.is_multiple_of(1000) {
            tracing::warn!(source = %self.source, seq, why, rejected = n, "a live event does not match the source's log: dropped");
        }
    }

    fn regression(&self, what: String) -> ConsumerError {
        tracing::error!(source = %self.source, at_seq = self.at.seq, %what, "log regression: consumer stops");
        ConsumerError::Regression {
            source_log: self.source,
            at_seq: self.at.seq,
            what,
        }
    }

    /// Keeps the identity of the log first seen; any other answering is
    /// another log.
    fn same_log(&mut self, seen: Option<LogIdentity>) -> Result<(), ConsumerError> {
        match (self.at.identity, seen) {
            (None, seen) => {
                self.at.identity = seen;
                Ok(())
            }
            (Some(known), Some(seen)) if known == seen => Ok(()),
            (Some(known), seen) => {
                let seen = seen.map_or_else(|| "none: a release before log identities".to_owned(), |s| s.to_string());
                tracing::error!(source = %self.source, %known, %seen, "another source log answers: consumer stops");
                Err(ConsumerError::IdentityChanged {
                    source_log: self.source,
                    known,
                    seen,
                })
            }
        }
    }

    /// Asks the source for its head; on first contact also checks that the
    /// event at our checkpoint is still the one we delivered.
    async fn check_head(&mut self) -> Result<(), ConsumerError> {
        let head = fetch_head(&self.client, self.source).await?;
        self.same_log(head.identity)?;
        if head.seq < self.at.seq {
            return Err(self.regression(format!("the source's head is seq {}", head.seq)));
        }
        if !self.anchored && self.at.seq > 0 {
            let got = fetch_log(&self.client, self.source, self.at.seq, 1).await?;
            self.same_log(got.identity)?;
            match got.events.first() {
                Some(e) if e.seq == self.at.seq && e.hash == self.at.hash => {}
                Some(e) => {
                    return Err(self.regression(format!(
                        "the source now has hash {} at that seq, not {}",
                        e.hash, self.at.hash
                    )));
                }
                None => return Err(self.regression("the source no longer serves that seq".into())),
            }
        }
        self.anchored = true;
        self.known_head = self.known_head.max(head.seq);
        Ok(())
    }

    async fn fill(&mut self) -> Result<(), ConsumerError> {
        self.last_read = Some(tokio::time::Instant::now());
        let got = fetch_log(&self.client, self.source, self.at.seq + 1, READ_BATCH_EVENTS_MAX).await?;
        self.same_log(got.identity)?;
        if got.head_seq < self.at.seq {
            return Err(self.regression(format!("the source's head is seq {}", got.head_seq)));
        }
        self.known_head = got.head_seq.max(self.at.seq);
        self.report_lag();
        // Every claim checked here arrived before this read was asked,
        // and an event is published only once durable: a claim beyond
        // the head the log reports names no event of it.
        let beyond = self.claims.split_off(&(got.head_seq + 1));
        drop(self.traces.split_off(&(got.head_seq + 1)));
        for (seq, hashes) in beyond {
            for _ in hashes {
                self.reject(seq, "it is beyond the head of the source's log");
            }
        }
        for (expected, (event, raw)) in (self.at.seq + 1..).zip(got.events.into_iter().zip(got.raw)) {
            if event.seq != expected {
                return Err(self.regression(format!("log read returned seq {} where {expected} was due", event.seq)));
            }
            self.pending.push_back((event, raw));
        }
        Ok(())
    }

    /// Why `event` cannot be delivered next, if it cannot: it must link to
    /// the last delivered one and its bytes hash to what it claims.
    fn misfit(&self, event: &EventEnvelope, raw: &str) -> Option<String> {
        if event.seq != self.at.seq + 1 {
            return Some(format!("seq {} does not follow", event.seq));
        }
        if event.prev_hash != self.at.hash {
            return Some(format!(
                "seq {} links to {} instead of the delivered {}",
                event.seq, event.prev_hash, self.at.hash
            ));
        }
        match inspect(raw.as_bytes()) {
            Ok(link) if link.computed == event.hash && link.stored == event.hash => None,
            _ => Some(format!("seq {} does not hash to its stored hash", event.seq)),
        }
    }

    /// Delivers `event`, read from the source's log, if it fits (see
    /// `misfit`): the log itself not verifying is a regression. A live
    /// claim for its seq is checked against it.
    fn accept(&mut self, event: &EventEnvelope, raw: &str) -> Result<(), ConsumerError> {
        if let Some(what) = self.misfit(event, raw) {
            return Err(self.regression(what));
        }
        self.last_trace = self
            .traces
            .remove(&event.seq)
            .filter(|(hash, _)| *hash == event.hash)
            .map(|(_, tp)| tp);
        for claimed in self.claims.remove(&event.seq).unwrap_or_default() {
            if claimed != event.hash {
                self.reject(event.seq, "the log serves another event at that seq");
            }
        }
        self.at.seq = event.seq;
        self.at.hash.clone_from(&event.hash);
        if self.delivered.len() == DELIVERED_KEPT {
            self.delivered.pop_front();
        }
        self.delivered.push_back((event.seq, event.hash.clone()));
        self.report_lag();
        Ok(())
    }
}

/// The `traceparent` header of a live message, if any.
fn trace_of(msg: &async_nats::Message) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(crate::logs::TRACEPARENT))
        .map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hurried(h: &Hurry) -> bool {
        h.0.notified().now_or_never().is_some()
    }

    #[test]
    fn only_the_consumers_behind_a_wanted_seq_are_hurried() {
        let hurry: BTreeMap<Service, Hurry> = [Service::Operations, Service::Intel, Service::Crisis]
            .into_iter()
            .map(|s| (s, Hurry(Arc::default())))
            .collect();
        let applied = BTreeMap::from([(Service::Operations, 7), (Service::Intel, 3)]);
        let wanted = BTreeMap::from([(Service::Operations, 7), (Service::Intel, 4), (Service::Crisis, 1)]);
        hurry_behind(&hurry, &applied, &wanted);
        assert!(!hurried(&hurry[&Service::Operations]), "applied already");
        assert!(hurried(&hurry[&Service::Intel]), "one behind");
        assert!(hurried(&hurry[&Service::Crisis]), "nothing applied yet");
        assert!(!hurried(&hurry[&Service::Intel]), "a hurry is taken once");
    }
}
