//! The single writer thread: group commit.
//!
//! It takes every append waiting at the moment it wakes (up to
//! `APPENDS_PER_COMMIT_MAX`), checks them in arrival order against the state
//! the earlier ones leave, writes one fjall batch, fsyncs once, then answers
//! them all. Rationale: an fsync costs ~200 µs here whatever it carries, so
//! sharing it is the only way many durable appends per second are possible.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{
    APPENDS_PER_COMMIT_MAX, AppendRequest, Appended, CommandRecord, Fingerprint, Head, LogError, Recorded, Shared,
    Stores, recorded, stream_key, stream_version,
};
use concord_core::chain::seal;
use concord_core::envelope::{EventEnvelope, Hlc};
use std::sync::Arc;

/// Bytes of stream versions the writer keeps in memory (each costs its
/// name and about 64 bytes more); past it the streams written least
/// recently leave one by one and are read from the index when written
/// again. A bound, not a tuning knob.
pub const STREAM_VERSIONS_BYTES_MAX: u64 = 16 * 1024 * 1024;
const STREAM_VERSION_OVERHEAD_BYTES: u64 = 64;

/// Weighs a cached stream version by its name.
#[derive(Clone, Copy)]
pub(super) struct ByName;

impl quick_cache::Weighter<String, u64> for ByName {
    fn weight(&self, key: &String, _: &u64) -> u64 {
        key.len() as u64 + STREAM_VERSION_OVERHEAD_BYTES
    }
}

/// stream → its version, bounded in bytes.
pub(super) type Versions = quick_cache::unsync::Cache<String, u64, ByName>;

pub(super) fn versions() -> Versions {
    Versions::with_weighter(
        usize::try_from(STREAM_VERSIONS_BYTES_MAX / 128).unwrap_or(usize::MAX),
        STREAM_VERSIONS_BYTES_MAX,
        ByName,
    )
}

pub(super) struct Job {
    pub req: AppendRequest,
    /// Canonical bytes of each event's data, from validation.
    pub data: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<Result<Appended, LogError>>,
}

pub(super) struct Writer {
    pub stores: Stores,
    pub shared: Arc<Shared>,
    /// Wakes the high-water mark thread after a commit (no IO here: the
    /// mark is never on the acknowledgement path).
    pub mark: Arc<super::mark::Signal>,
    pub head: Head,
    pub hlc: Hlc,
    pub versions: Versions,
}

type Answer = oneshot::Sender<Result<Appended, LogError>>;

/// An append under the id of one accepted earlier in the same batch,
/// answered after the commit: if it fails, the first never happened.
struct Echo {
    reply: Answer,
    /// The index of the first in the batch's pending appends.
    first: usize,
    /// The same request (a retry) rather than another under its id.
    same: bool,
}

/// An append accepted into the current batch, answered after the fsync.
struct Pending {
    reply: oneshot::Sender<Result<Appended, LogError>>,
    appended: Appended,
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut jobs = Vec::with_capacity(APPENDS_PER_COMMIT_MAX);
        while let Some(first) = rx.blocking_recv() {
            jobs.push(first);
            while jobs.len() < APPENDS_PER_COMMIT_MAX {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.commit(&mut jobs);
        }
    }

    fn service(&self) -> String {
        self.shared.service.to_string()
    }

    fn commit(&mut self, jobs: &mut Vec<Job>) {
        if self.shared.poisoned.load(Ordering::Acquire) {
            for job in jobs.drain(..) {
                let _ = job.reply.send(Err(self.shared.unavailable()));
            }
            return;
        }
        let mut batch = self.stores.db.batch().durability(Some(self.shared.persist));
        let mut pending: Vec<Pending> = Vec::new();
        let mut echoes: Vec<Echo> = Vec::new();
        let mut in_batch: HashMap<String, (usize, Fingerprint)> = HashMap::new();
        let mut batch_versions: HashMap<String, u64> = HashMap::new();
        let head_before = self.head.clone();
        let hlc_before = self.hlc;

        for Job { mut req, data, reply } in jobs.drain(..) {
            if let Some((i, fingerprint)) = in_batch.get(&req.command_id) {
                echoes.push(Echo {
                    reply,
                    first: *i,
                    same: *fingerprint == req.fingerprint,
                });
                continue;
            }
            match self.recorded(&req.command_id, &req.fingerprint) {
                Ok(Recorded::Unknown) => {}
                Ok(Recorded::Same(first)) => {
                    let _ = reply.send(Ok(first));
                    continue;
                }
                Ok(Recorded::Reused) => {
                    let _ = reply.send(Err(LogError::IdempotencyKeyReused));
                    continue;
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    continue;
                }
            }
            let actual = match batch_versions.get(&req.stream) {
                Some(v) => *v,
                None => match self.version_of(&req.stream) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        continue;
                    }
                },
            };
            if !req.expected.admits(actual) {
                let _ = reply.send(Err(LogError::Conflict {
                    stream: req.stream,
                    expected: req.expected,
                    actual,
                }));
                continue;
            }
            let built = self.build(&mut req, &data, actual);
            for (env, bytes) in &built {
                batch.insert(&self.stores.events, env.seq.to_be_bytes(), bytes.as_slice());
                batch.insert(
                    &self.stores.streams,
                    stream_key(&env.stream, env.version),
                    env.seq.to_be_bytes(),
                );
            }
            let (events, raw): (Vec<EventEnvelope>, Vec<Vec<u8>>) = built.into_iter().unzip();
            let record = CommandRecord {
                first_seq: events.first().map_or(0, |e| e.seq),
                count: events.len() as u64,
                fingerprint: Some(req.fingerprint.clone()),
            };
            // Integers, strings and an actor (strings) always serialize.
            let record = serde_json::to_vec(&record).unwrap_or_default();
            batch.insert(&self.stores.commands, req.command_id.as_bytes(), record);
            batch_versions.insert(req.stream.clone(), actual + events.len() as u64);
            in_batch.insert(req.command_id, (pending.len(), req.fingerprint));
            pending.push(Pending {
                reply,
                appended: Appended {
                    events,
                    duplicate: false,
                    raw,
                },
            });
        }

        if pending.is_empty() {
            return;
        }
        let events: usize = pending.iter().map(|p| p.appended.events.len()).sum();
        let started = std::time::Instant::now();
        let committed = batch.commit();
        let log = self.service();
        metrics::histogram!(crate::metric::FSYNC_SECONDS, "log" => log.clone()).record(started.elapsed().as_secs_f64());
        metrics::histogram!(crate::metric::APPEND_BATCH, "log" => log).record(events as f64);
        match committed {
            Ok(()) => {
                // Before the head moves: a reader that sees the head finds
                // every event up to it here.
                {
                    let mut recent = self
                        .shared
                        .recent
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    for p in &pending {
                        for (e, raw) in p.appended.events.iter().zip(&p.appended.raw) {
                            recent.push(e.seq, raw);
                        }
                    }
                }
                if let Ok(mut h) = self.shared.head.write() {
                    *h = self.head.clone();
                }
                self.mark.poke();
                for (stream, version) in batch_versions {
                    self.versions.insert(stream, version);
                }
                for echo in echoes {
                    if !echo.same {
                        let _ = echo.reply.send(Err(LogError::IdempotencyKeyReused));
                        continue;
                    }
                    let mut first = pending[echo.first].appended.clone();
                    first.duplicate = true;
                    let _ = echo.reply.send(Ok(first));
                }
                for p in pending {
                    let _ = p.reply.send(Ok(p.appended));
                }
            }
            Err(e) => {
                // fjall poisons itself after a failed fsync; so do we, and
                // nothing in this batch is acknowledged.
                let reason = format!("commit failed, refusing writes until reopened: {e}");
                tracing::error!(service = %self.service(), %reason, "event log poisoned");
                if let Ok(mut r) = self.shared.poison_reason.write() {
                    *r = Some(reason);
                }
                self.shared.poisoned.store(true, Ordering::Release);
                self.head = head_before;
                self.hlc = hlc_before;
                for echo in echoes {
                    let _ = echo.reply.send(Err(self.shared.unavailable()));
                }
                for p in pending {
                    let _ = p.reply.send(Err(self.shared.unavailable()));
                }
            }
        }
    }

    /// What the log holds under a command id already on disk.
    fn recorded(&self, command_id: &str, fingerprint: &Fingerprint) -> Result<Recorded, LogError> {
        recorded(&self.stores, self.shared.service, command_id, fingerprint)
    }

    fn version_of(&mut self, stream: &str) -> Result<u64, LogError> {
        if let Some(v) = self.versions.get(stream) {
            return Ok(*v);
        }
        let v = stream_version(&self.stores, self.shared.service, stream)?;
        self.versions.insert(stream.to_owned(), v);
        Ok(v)
    }

    /// Turns an accepted append into sealed envelopes and their stored bytes,
    /// advancing the writer's head and clock.
    fn build(&mut self, req: &mut AppendRequest, data: &[Vec<u8>], actual: u64) -> Vec<(EventEnvelope, Vec<u8>)> {
        let now = self.shared.clock.now();
        let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let recorded_at = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        // After what caused this command and after everything the service
        // consumed before deciding it.
        let cause = req.observed_hlc.filter(|h| self.shared.admissible(*h, now_ms));
        let observed = cause.max(Some(self.shared.observed()));
        let mut out = Vec::with_capacity(req.events.len());
        for (i, (e, data)) in req.events.iter_mut().zip(data).enumerate() {
            self.hlc = self.hlc.tick(now_ms, observed);
            let mut env = EventEnvelope {
                id: Uuid::now_v7(),
                service: self.shared.service,
                seq: self.head.seq + 1,
                stream: req.stream.clone(),
                version: actual + 1 + i as u64,
                event_type: std::mem::take(&mut e.event_type),
                schema_version: e.schema_version,
                recorded_at: recorded_at.clone(),
                hlc: self.hlc,
                actor: req.actor.clone(),
                command_id: req.command_id.clone(),
                correlation_id: req.correlation_id.clone(),
                causation_id: req.causation_id.clone(),
                data: std::mem::take(&mut e.data),
                data_digest: String::new(),
                prev_hash: std::mem::take(&mut self.head.hash),
                hash: String::new(),
            };
            let bytes = seal(&mut env, data);
            self.head = Head {
                seq: env.seq,
                hash: env.hash.clone(),
            };
            out.push((env, bytes));
        }
        out
    }
}
