//! The projector's own fjall database (`<data>/projector`): the kept
//! streams (a state and item now and then, the stream's events since in
//! between), the feed with its per-country index, and where each source
//! log was applied to. Everything one applied burst
//! changed is written in one batch with the checkpoints: a crash keeps all
//! of it or none, so after a restart no event is applied twice or skipped.
//! Batches are fsynced by [`Store::sync`] at most [`SYNC_EVERY`] apart,
//! not one by one: a power cut loses at most that tail of whole batches,
//! which the logs (durable before anything is acknowledged) give again.
//!
//! Must not: be called on the async runtime's threads (the driver runs it
//! on the blocking pool).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use concord_bus::consumer::{Checkpoint, start_of_log};
use concord_contracts::operations::membership::OperationsView;
use concord_core::{CountryCode, EventEnvelope, Role, Service};
use fjall::{Database, Keyspace, PersistMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::projection::{Item, Kept, Projection, Reach};

/// How far apart the store is fsynced while it changes.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

const KS_STREAMS: &str = "streams";
/// A stream's events after its kept state, under the stream's key, a 0
/// and the event's version (8 bytes, big-endian): a burst that changed a
/// large stream (an operation with its thousand tasks) adds its events
/// instead of writing the whole state again.
const KS_TAILS: &str = "tails";
/// Events kept after a stream's state before its state is written again.
/// Rationale: bounds what opening folds per stream, while a state of any
/// size is written once per this many of its events, not once per burst.
const TAIL_EVENTS_MAX: usize = 64;
const KS_FEED: &str = "feed";
const KS_REACH: &str = "reach";
const KS_META: &str = "meta";
/// Intel's facts, one entry per operation (its uuid's 16 bytes): written
/// for the operations a burst changed, never whole.
const KS_MEMBERSHIP: &str = "membership";
const META_STATE: &[u8] = b"state";
/// The index key prefix of what reaches everyone.
const EVERYONE: &[u8; 2] = b"**";
/// The index key prefix of what reaches reviewers.
const REVIEWERS: &[u8; 2] = b"RV";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("projector store at {dir}: {source}")]
    Fjall { dir: PathBuf, source: fjall::Error },
    #[error("projector store at {dir}: {what}")]
    Corrupt { dir: PathBuf, what: String },
}

/// Where the projection stands, kept with every batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    checkpoints: BTreeMap<Service, Checkpoint>,
    position: u64,
}

/// A kept event of a stream; the item as it stood after it on the last
/// one a batch kept of that stream.
#[derive(Serialize)]
struct TailRef<'a> {
    event: &'a EventEnvelope,
    item: Option<&'a Item>,
}

#[derive(Deserialize)]
struct Tail {
    event: EventEnvelope,
    item: Option<Item>,
}

/// One entry of the feed: its position, who it reached, the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub position: u64,
    pub reach: Reach,
    pub event: EventEnvelope,
}

pub struct Store {
    dir: PathBuf,
    db: Database,
    streams: Keyspace,
    tails: Keyspace,
    /// The versions kept in `tails` of each stream (by its key), to remove
    /// them when its state is written again.
    tailed: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Vec<u64>>>,
    feed: Keyspace,
    reach: Keyspace,
    meta: Keyspace,
    membership: Keyspace,
    /// The feed position of the last batch committed.
    committed: std::sync::atomic::AtomicU64,
}

/// What the store held at open.
pub struct Opened {
    pub store: Store,
    pub projection: Projection,
    pub checkpoints: BTreeMap<Service, Checkpoint>,
}

fn stream_key(service: Service, stream: &str) -> Vec<u8> {
    let mut k = service.as_str().as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(stream.as_bytes());
    k
}

fn tail_key(stream_key: &[u8], version: u64) -> Vec<u8> {
    let mut k = stream_key.to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// A tail key's stream key and version (split from the end: the stream
/// name is the caller's to choose).
fn split_tail_key(k: &[u8]) -> Option<(&[u8], u64)> {
    let at = k.len().checked_sub(9)?;
    let (stream, rest) = k.split_at(at);
    let (zero, version) = rest.split_first()?;
    (*zero == 0).then(|| (stream, u64::from_be_bytes(version.try_into().unwrap_or([0; 8]))))
}

fn reach_key(prefix: &[u8; 2], position: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&position.to_be_bytes());
    k
}

impl Store {
    pub fn open(dir: &Path) -> Result<Opened, StoreError> {
        let fj = |source| StoreError::Fjall {
            dir: dir.to_owned(),
            source,
        };
        let corrupt = |what: String| StoreError::Corrupt {
            dir: dir.to_owned(),
            what,
        };
        std::fs::create_dir_all(dir).map_err(|e| fj(fjall::Error::Io(e)))?;
        let db = concord_log::open_database(dir).map_err(fj)?;
        let ks = |name| concord_log::open_keyspace(&db, name).map_err(fj);
        let (streams, feed, reach, meta) = (ks(KS_STREAMS)?, ks(KS_FEED)?, ks(KS_REACH)?, ks(KS_META)?);
        let membership = ks(KS_MEMBERSHIP)?;
        let tails = ks(KS_TAILS)?;
        let state: State = match meta.get(META_STATE).map_err(fj)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("its state: {e}")))?,
            None => State {
                checkpoints: Service::ALL.into_iter().map(|s| (s, start_of_log())).collect(),
                position: 0,
            },
        };
        let mut operations = Vec::new();
        for item in membership.iter() {
            let (k, v) = item.into_inner().map_err(fj)?;
            let id = uuid::Uuid::from_slice(&k).map_err(|e| corrupt(format!("a membership key: {e}")))?;
            let info = serde_json::from_slice(&v).map_err(|e| corrupt(format!("the membership of {id}: {e}")))?;
            operations.push((id, info));
        }
        let members = OperationsView::from_operations(operations);
        let mut tails_of: BTreeMap<Vec<u8>, Vec<Tail>> = BTreeMap::new();
        for item in tails.iter() {
            let (k, v) = item.into_inner().map_err(fj)?;
            let (stream, version) = split_tail_key(&k).ok_or_else(|| corrupt("a kept event's key".into()))?;
            let tail: Tail = serde_json::from_slice(&v).map_err(|e| corrupt(format!("a kept event: {e}")))?;
            if tail.event.version != version {
                return Err(corrupt(format!(
                    "a kept event of {} is version {} under version {version}",
                    tail.event.stream, tail.event.version
                )));
            }
            tails_of.entry(stream.to_vec()).or_default().push(tail);
        }
        let mut tailed = std::collections::HashMap::new();
        let mut with_tail = |state: Option<Value>, from: u64, key: Vec<u8>, tail: Vec<Tail>| {
            let item = tail
                .last()
                .and_then(|t| t.item.clone())
                .ok_or_else(|| corrupt("a stream's last kept event has no item".into()))?;
            if stream_key(item.service, &item.stream) != key {
                return Err(corrupt(format!(
                    "the kept events of {} are under another stream's key",
                    item.stream
                )));
            }
            tailed.insert(key, tail.iter().map(|t| t.event.version).collect());
            let events: Vec<EventEnvelope> = tail.into_iter().map(|t| t.event).collect();
            Kept::fold_tail(state, from, &events, item).map_err(corrupt)
        };
        let mut kept = Vec::new();
        for item in streams.iter() {
            let (k, v) = item.into_inner().map_err(fj)?;
            let stream = serde_json::from_slice::<Kept>(&v).map_err(|e| corrupt(format!("a kept stream: {e}")))?;
            // Resuming keys the views by the item's stream: one kept under
            // another's key would silently stand in for it.
            if stream_key(stream.item.service, &stream.item.stream) != k.as_ref() {
                return Err(corrupt(format!(
                    "kept stream {} is under another stream's key",
                    stream.item.stream
                )));
            }
            kept.push(match tails_of.remove(k.as_ref()) {
                Some(tail) => with_tail(Some(stream.state), stream.item.version, k.to_vec(), tail)?,
                None => stream,
            });
        }
        // Streams whose events are all kept as a tail, from no state.
        for (k, tail) in tails_of {
            kept.push(with_tail(None, 0, k, tail)?);
        }
        let projection = Projection::resume(kept, members, state.position).map_err(corrupt)?;
        Ok(Opened {
            store: Store {
                dir: dir.to_owned(),
                db,
                streams,
                tails,
                tailed: std::sync::Mutex::new(tailed),
                feed,
                reach,
                meta,
                membership,
                committed: std::sync::atomic::AtomicU64::new(state.position),
            },
            projection,
            checkpoints: state.checkpoints,
        })
    }

    /// [`Store::open`], or, when what is kept in `dir` cannot be read
    /// (damaged on disk, written by another release), a fresh store: the
    /// damaged directory is moved aside (`<dir>.damaged-<unix seconds>`,
    /// kept for whoever investigates) and the views are built again from
    /// the logs, which are the truth. A damaged view must not keep the
    /// whole system from starting.
    pub fn open_or_set_aside(dir: &Path) -> Result<(Opened, Option<PathBuf>), StoreError> {
        match Store::open(dir) {
            Ok(opened) => Ok((opened, None)),
            Err(e) => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let name = format!(
                    "{}.damaged-{secs}",
                    dir.file_name()
                        .map_or_else(|| "projector".into(), |n| n.to_string_lossy())
                );
                let aside = dir.with_file_name(name);
                tracing::error!(error = %e, aside = %aside.display(), "the projector's store cannot be read; building the views again from the logs");
                std::fs::rename(dir, &aside).map_err(|io| StoreError::Fjall {
                    dir: dir.to_owned(),
                    source: fjall::Error::Io(io),
                })?;
                Ok((Store::open(dir)?, Some(aside)))
            }
        }
    }

    fn fjall(&self, source: fjall::Error) -> StoreError {
        StoreError::Fjall {
            dir: self.dir.clone(),
            source,
        }
    }

    /// Writes, in one batch: the feed entries `applied`, the streams they
    /// changed as `projection` now holds them (a stream's new events, or
    /// its state when it has kept [`TAIL_EVENTS_MAX`] events or changed
    /// without an event of its own), and the checkpoints.
    pub fn commit(
        &self,
        projection: &Projection,
        applied: &[(FeedEntry, Vec<(Service, String)>)],
        checkpoints: &BTreeMap<Service, Checkpoint>,
    ) -> Result<(), StoreError> {
        // Into the OS's buffers, not fsynced: the views are derived from
        // the logs, and a batch is atomic in fjall's journal, so what a
        // power cut takes is a tail of whole batches (checkpoints with
        // them), applied again from the logs at the next start. `sync`
        // bounds that tail off the acknowledgement path.
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        // Each changed stream's own events in this batch, and the streams
        // that changed without one (an intel item whose operation's
        // membership changed).
        let mut own: BTreeMap<(Service, String), Vec<&EventEnvelope>> = BTreeMap::new();
        let mut otherwise = std::collections::BTreeSet::new();
        for (entry, streams) in applied {
            let bytes = serde_json::to_vec(entry).map_err(|e| self.fjall(fjall::Error::Io(e.into())))?;
            batch.insert(&self.feed, entry.position.to_be_bytes(), bytes);
            let r = &entry.reach;
            if r.everyone {
                batch.insert(&self.reach, reach_key(EVERYONE, entry.position), []);
            }
            if r.reviewers {
                batch.insert(&self.reach, reach_key(REVIEWERS, entry.position), []);
            }
            for c in &r.countries {
                let mut prefix = [0u8; 2];
                prefix.copy_from_slice(c.as_str().as_bytes());
                batch.insert(&self.reach, reach_key(&prefix, entry.position), []);
            }
            for changed in streams {
                let e = &entry.event;
                if changed.0 == e.service && changed.1 == e.stream {
                    own.entry(changed.clone()).or_default().push(e);
                } else {
                    otherwise.insert(changed.clone());
                }
            }
        }
        let mut tailed = self.tailed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Applied to `tailed` once the batch is in.
        let mut now_tailed: Vec<(Vec<u8>, Vec<u64>)> = Vec::new();
        let changed: std::collections::BTreeSet<(Service, String)> =
            own.keys().cloned().chain(otherwise.iter().cloned()).collect();
        for (service, stream) in changed {
            let key = stream_key(service, &stream);
            let events = own.get(&(service, stream.clone())).map_or(&[][..], Vec::as_slice);
            let held = tailed.get(&key).map_or(&[][..], Vec::as_slice);
            let item = projection.item(service, &stream);
            match item {
                Some(item)
                    if !events.is_empty()
                        && !otherwise.contains(&(service, stream.clone()))
                        && held.len() + events.len() <= TAIL_EVENTS_MAX =>
                {
                    let mut versions = held.to_vec();
                    for (i, e) in events.iter().enumerate() {
                        let tail = TailRef {
                            event: e,
                            item: (i + 1 == events.len()).then_some(item),
                        };
                        let bytes = serde_json::to_vec(&tail).map_err(|e| self.fjall(fjall::Error::Io(e.into())))?;
                        batch.insert(&self.tails, tail_key(&key, e.version), bytes);
                        versions.push(e.version);
                    }
                    now_tailed.push((key, versions));
                }
                _ => {
                    if let Some(bytes) = projection.kept_bytes(service, &stream) {
                        let bytes = bytes.map_err(|e| self.fjall(fjall::Error::Io(e.into())))?;
                        batch.insert(&self.streams, key.clone(), bytes);
                        for v in held {
                            batch.remove(&self.tails, tail_key(&key, *v));
                        }
                        now_tailed.push((key, Vec::new()));
                    }
                }
            }
            if service == Service::Operations
                && let Ok(id) = concord_contracts::operations::STREAM.id_of(&stream)
                && let Some(info) = projection.membership().get(id)
            {
                let bytes = serde_json::to_vec(info).map_err(|e| self.fjall(fjall::Error::Io(e.into())))?;
                batch.insert(&self.membership, id.as_bytes(), bytes);
            }
        }
        let state = State {
            checkpoints: checkpoints.clone(),
            position: projection.position(),
        };
        let bytes = serde_json::to_vec(&state).map_err(|e| self.fjall(fjall::Error::Io(e.into())))?;
        batch.insert(&self.meta, META_STATE, bytes);
        batch.commit().map_err(|e| self.fjall(e))?;
        for (key, versions) in now_tailed {
            if versions.is_empty() {
                tailed.remove(&key);
            } else {
                tailed.insert(key, versions);
            }
        }
        drop(tailed);
        self.committed
            .store(projection.position(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Events kept after their streams' states.
    #[cfg(test)]
    pub(crate) fn tails_kept(&self) -> usize {
        self.tails.iter().count()
    }

    /// The feed position of the last batch committed.
    pub fn position_committed(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes what was committed durable (fsync).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.persist(PersistMode::SyncAll).map_err(|e| self.fjall(e))
    }

    /// The last feed position that reached each country by name, and the
    /// last that reached everyone (`feed::Publisher` chains from them).
    pub fn feed_heads(&self) -> Result<(BTreeMap<CountryCode, u64>, u64), StoreError> {
        let last = |prefix: &[u8; 2]| -> Result<Option<u64>, StoreError> {
            match self.reach.prefix(prefix).next_back() {
                Some(item) => {
                    let k = item.key().map_err(|e| self.fjall(e))?;
                    Ok(Some(position_of(&k[2..])))
                }
                None => Ok(None),
            }
        };
        let mut heads = BTreeMap::new();
        for cc in CountryCode::all() {
            let mut prefix = [0u8; 2];
            prefix.copy_from_slice(cc.as_str().as_bytes());
            if let Some(p) = last(&prefix)? {
                heads.insert(cc, p);
            }
        }
        Ok((heads, last(EVERYONE)?.unwrap_or(0)))
    }

    /// The feed of `country` as a caller of `role` may read it: entries
    /// after `after`, at most `max`, in position order. Auditors read every
    /// entry.
    pub fn feed(&self, country: CountryCode, role: Role, after: u64, max: usize) -> Result<Vec<FeedEntry>, StoreError> {
        let from = after.saturating_add(1);
        let positions: Vec<u64> = if role == Role::Auditor {
            let mut out = Vec::new();
            for item in self.feed.range(from.to_be_bytes()..).take(max) {
                let (k, _) = item.into_inner().map_err(|e| self.fjall(e))?;
                out.push(position_of(&k));
            }
            out
        } else {
            let mut prefixes = vec![*EVERYONE];
            let mut own = [0u8; 2];
            own.copy_from_slice(country.as_str().as_bytes());
            prefixes.push(own);
            if role == Role::Reviewer {
                prefixes.push(*REVIEWERS);
            }
            let mut merged = std::collections::BTreeSet::new();
            for p in prefixes {
                for item in self
                    .reach
                    .range(reach_key(&p, from)..=reach_key(&p, u64::MAX))
                    .take(max)
                {
                    let (k, _) = item.into_inner().map_err(|e| self.fjall(e))?;
                    merged.insert(position_of(&k[2..]));
                }
            }
            merged.into_iter().take(max).collect()
        };
        let mut out = Vec::with_capacity(positions.len());
        for p in positions {
            let Some(bytes) = self.feed.get(p.to_be_bytes()).map_err(|e| self.fjall(e))? else {
                continue;
            };
            let entry: FeedEntry = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                dir: self.dir.clone(),
                what: format!("feed entry {p}: {e}"),
            })?;
            out.push(entry);
        }
        Ok(out)
    }
}

fn position_of(k: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if k.len() >= 8 {
        b.copy_from_slice(&k[..8]);
    }
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose kept state does not read is set aside, not fatal:
    /// the projector starts from nothing and refolds the logs.
    #[test]
    fn a_damaged_store_is_set_aside_and_started_afresh() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let dir = tmp.path().join("projector");
        {
            let opened = Store::open(&dir).expect("open");
            let mut batch = opened.store.db.batch();
            batch.insert(&opened.store.meta, META_STATE, b"{not json".as_slice());
            batch.commit().expect("commit");
            opened.store.db.persist(PersistMode::SyncAll).expect("persist");
        }
        assert!(matches!(Store::open(&dir), Err(StoreError::Corrupt { .. })));
        let (opened, aside) = Store::open_or_set_aside(&dir).expect("fresh");
        let aside = aside.expect("set aside");
        assert!(aside.is_dir(), "the damaged store is kept for whoever investigates");
        assert_eq!(opened.projection.position(), 0);
        assert!(opened.checkpoints.values().all(|c| c.seq == 0));
        drop(opened);
        // And the fresh one opens as usual from then on.
        let (_, again) = Store::open_or_set_aside(&dir).expect("open");
        assert!(again.is_none());
    }

    /// A kept stream moved under another stream's key is refused, not
    /// resumed as the stream it names (its kept events: in
    /// `a_store_keeping_a_large_stream_s_events_reopens_to_the_same_views`).
    #[test]
    fn a_kept_stream_under_another_stream_s_key_is_refused() {
        use concord_contracts::projection::{Item, Reach};
        let item = Item {
            service: Service::Operations,
            stream: "operation-01900000-0000-7000-8000-000000000001".into(),
            version: 0,
            reach: Reach::default(),
        };
        let kept = serde_json::to_vec(&Kept {
            // An operation before its first event.
            state: Value::Null,
            item: item.clone(),
        })
        .expect("kept");
        let other = stream_key(Service::Operations, "operation-01900000-0000-7000-8000-000000000002");
        let own = stream_key(item.service, &item.stream);
        let tmp = tempfile::TempDir::new().expect("tmp");
        for (n, key) in [own.clone(), other].into_iter().enumerate() {
            let dir = tmp.path().join(format!("projector-{n}"));
            {
                let opened = Store::open(&dir).expect("open");
                opened.store.streams.insert(&key, &kept).expect("insert");
                opened.store.db.persist(PersistMode::SyncAll).expect("persist");
            }
            let opened = Store::open(&dir);
            if key == own {
                assert_eq!(opened.expect("its own key").projection.items().count(), 1);
            } else {
                let Err(StoreError::Corrupt { what, .. }) = opened else {
                    panic!("a stream under another's key must be refused");
                };
                assert!(what.contains("under another stream's key"), "{what}");
            }
        }
    }
}
