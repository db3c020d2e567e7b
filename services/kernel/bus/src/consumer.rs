//! A consumer of another service's log: every event of the source, in order,
//! once, whatever the live feed drops.
//!
//! Core NATS delivers at most once, so the live subscription is only a hint:
//! the consumer keeps the `{seq, hash}` of the last event it delivered, fills
//! any gap through `concord.log.<source>.read`, polls the source's head when
//! the feed is quiet, and skips what it already delivered. It also checks
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

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;

use crate::logs::{BusError, fetch_head, fetch_log};
use concord_core::chain::{GENESIS_HASH, inspect};
use concord_core::envelope::{EventEnvelope, Service};
use concord_core::subjects;
use concord_log::{LogIdentity, READ_BATCH_EVENTS_MAX};
use serde::{Deserialize, Serialize};

/// How often a quiet consumer asks the source for its head. Bounds how long
/// an event whose live message was lost waits to be delivered.
pub const HEAD_POLL_INTERVAL: Duration = Duration::from_millis(500);

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
    poll: Duration,
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
            poll: HEAD_POLL_INTERVAL,
        })
    }

    /// Sets the quiet-feed poll interval (tests shorten it).
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The last event delivered: persist it with what you applied.
    pub fn position(&self) -> &Checkpoint {
        &self.at
    }

    pub fn source(&self) -> Service {
        self.source
    }

    /// The next event of the source, in order, exactly once.
    ///
    /// Waits through a source or bus that is down (retrying every poll
    /// interval); returns an error only for a regression or a closed
    /// subscription. Cancel-safe: every change to the consumer happens
    /// between its awaits, so a dropped call loses no event.
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
                match self.wait_live().await? {
                    Some(event) => return Ok(event),
                    None => continue,
                }
            };
            if let Err(e) = step {
                if e.is_final() {
                    return Err(e);
                }
                tracing::warn!(source = %self.source, error = %e, "consumer cannot reach its source yet; retrying");
                tokio::time::sleep(self.poll).await;
            }
        }
    }

    /// Waits for a live event or the poll interval. Returns the event when it
    /// is the very next one; otherwise records what it learned and returns
    /// `None` so `next` fills the gap from the log.
    async fn wait_live(&mut self) -> Result<Option<EventEnvelope>, ConsumerError> {
        tokio::select! {
            msg = self.live.next() => {
                let Some(msg) = msg else { return Err(ConsumerError::Closed(self.source)) };
                let raw = String::from_utf8_lossy(&msg.payload).into_owned();
                let Ok(event) = serde_json::from_str::<EventEnvelope>(&raw) else {
                    // An unparseable live message is not trusted; the log
                    // read will say what is really there.
                    self.known_head = self.known_head.max(self.at.seq + 1);
                    return Ok(None);
                };
                if self.misfit(&event, &raw).is_none() {
                    self.accept(&event, &raw)?;
                    self.known_head = self.known_head.max(event.seq);
                    return Ok(Some(event));
                }
                // Old (skip), ahead of us (a gap the log read fills), or
                // the next seq but not linking to what was delivered: a
                // live message proves nothing (it may come from another
                // log, or from anyone on the bus), so the log read, which
                // names its log, says what is really there.
                self.known_head = self.known_head.max(event.seq);
                Ok(None)
            }
            () = tokio::time::sleep(self.poll) => {
                match self.check_head().await {
                    Ok(()) => Ok(None),
                    Err(e) if e.is_final() => Err(e),
                    Err(e) => {
                        tracing::warn!(source = %self.source, error = %e, "consumer cannot reach its source; retrying");
                        Ok(None)
                    }
                }
            }
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
        let got = fetch_log(&self.client, self.source, self.at.seq + 1, READ_BATCH_EVENTS_MAX).await?;
        self.same_log(got.identity)?;
        if got.head_seq < self.at.seq {
            return Err(self.regression(format!("the source's head is seq {}", got.head_seq)));
        }
        self.known_head = got.head_seq.max(self.at.seq);
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

    /// Delivers `event` if it fits (see `misfit`); a log read that does not
    /// is a regression.
    fn accept(&mut self, event: &EventEnvelope, raw: &str) -> Result<(), ConsumerError> {
        if let Some(what) = self.misfit(event, raw) {
            return Err(self.regression(what));
        }
        self.at.seq = event.seq;
        self.at.hash.clone_from(&event.hash);
        Ok(())
    }
}
