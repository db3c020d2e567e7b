//! The append-only event log of one writing service, on fjall.
//!
//! Owns: gapless `seq`, per-stream `version`, optimistic concurrency,
//! idempotency by `command_id`, the hash chain, durable group commit, and
//! bounded reads. Must not: know any domain, publish anything, or block the
//! async runtime (every fjall call happens on the writer thread or in the
//! caller's blocking context; async callers use `append` and
//! `tokio::task::spawn_blocking` for reads).
//!
//! Its hybrid logical clock stamps every event after every stamp the log
//! has observed: those of the events its service consumed (`observe`) and
//! of the event that caused the command (`AppendRequest::observed_hlc`).
//!
//! Architecture invariant: an `append` answers `Ok` only after the fjall batch
//! holding its events was committed with `PersistMode::SyncAll` (fsync).
//! Rationale: fjall's default `Buffer` mode survives a process crash but not a
//! power cut, and every later step (publish, reply) trusts that the event is
//! on disk.

mod format;

/// The names of the metrics the log records (rendered by the bus's
/// `metrics`, which describes them).
pub mod metric {
    /// Events written by one group commit, by `log`.
    pub const APPEND_BATCH: &str = "concord_log_append_batch_events";
    /// How long a group commit's write and fsync took, by `log`.
    pub const FSYNC_SECONDS: &str = "concord_log_fsync_duration_seconds";
}
mod inspect;
mod mark;
mod recent;
mod restore;
mod validate;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use concord_core::chain::{
    BadEvent, BadRecord, CanonicalError, ChainBreak, ChainVerifier, GENESIS_HASH, Link, canonical_json, inspect,
};
use concord_core::envelope::{Actor, EventEnvelope, ExpectedVersion, Hlc, Service};
pub use format::{Migration, migrate};
pub use mark::{MARK_FILE, MARK_INTERVAL, Mark, MarkError, read as read_mark};
pub use recent::{RECENT_BYTES_MAX, RECENT_EVENTS_MAX};
pub use restore::{RestoreError, restore};
pub use validate::InvalidAppend;

/// Threads `verify` hashes with at most (one per core up to it).
const VERIFY_HELPERS_MAX: usize = 4;

/// Largest `data` of one event, in canonical JSON bytes. Rationale: events
/// travel whole in one NATS message (1 MiB by default) next to their
/// envelope, and a log is for facts, not attachments.
pub const EVENT_DATA_BYTES_MAX: usize = 64 * 1024;
/// Most events one append (one command) may write.
pub const EVENTS_PER_APPEND_MAX: usize = 256;
/// Most bytes one read returns (always at least one event when any is left).
/// Half of NATS's default 1 MiB payload, so a batch always fits one reply.
pub const READ_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Most events one read returns.
pub const READ_BATCH_EVENTS_MAX: usize = 10_000;
/// Longest stream name, in bytes.
pub const STREAM_NAME_BYTES_MAX: usize = 128;
/// Longest command id, correlation id or actor `sub`, in bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Most appends group-committed under one fsync. Bounds the latency a
/// single slow batch adds to the appends queued behind it.
pub const APPENDS_PER_COMMIT_MAX: usize = 1024;
/// Appends that may wait for the writer before `append` itself waits
/// (backpressure instead of unbounded memory).
pub const APPEND_QUEUE_DEPTH: usize = 8192;
/// How far ahead of this log's wall clock an observed stamp may be and
/// still be merged. Rationale: a merged stamp never leaves the clock, so
/// one from a clock gone wrong (or forged on the bus) would drag every
/// later event of this log to its time; a minute is far beyond the skew of
/// clocks kept by NTP, and such a stamp is logged and left out instead.
pub const OBSERVED_HLC_AHEAD_MAX_MS: u64 = 60_000;

const KS_EVENTS: &str = "events";
const KS_STREAMS: &str = "streams";
const KS_COMMANDS: &str = "commands";
const KS_META: &str = "meta";
/// fjall's memory and recovery bounds for a log. Rationale: a service's
/// memory and its start time must not grow with its history; fjall's
/// defaults (64 MiB memtables per keyspace, 512 MiB of journals replayed
/// into memory at open, 32 MiB of block cache) would spend most of a small
/// host's memory on one log and seconds of refused commands at each start.
/// Memtables are flushed to tables past `MEMTABLE_BYTES`, journals past
/// `JOURNALS_BYTES_MAX` (fjall's minimum) force a flush.
pub const MEMTABLE_BYTES: u64 = 16 * 1024 * 1024;
pub const JOURNALS_BYTES_MAX: u64 = 64 * 1024 * 1024;
pub const BLOCK_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Opens the fjall database of a log in `dir` with the bounds above.
pub fn open_database(dir: &Path) -> Result<Database, fjall::Error> {
    Database::builder(dir)
        .cache_size(BLOCK_CACHE_BYTES)
        .max_journaling_size(JOURNALS_BYTES_MAX)
        .open()
}

/// Opens (or creates) keyspace `name` of a log's database with the bounds above.
pub fn open_keyspace(db: &Database, name: &str) -> Result<Keyspace, fjall::Error> {
    db.keyspace(name, || {
        KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
    })
}

/// What the service folded from other logs, kept beside its own log (see
/// `Log::keep_view`).
const KS_VIEWS: &str = "views";
const META_SERVICE: &[u8] = b"service";
const META_IDENTITY: &[u8] = b"identity";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Invalid(#[from] InvalidAppend),
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// The command id is recorded with another request's fingerprint.
    /// Nothing was appended, and nothing of the first command is said: the
    /// caller may be someone else who guessed or replayed its id.
    #[error("the command id was already used for another request")]
    IdempotencyKeyReused,
    /// Nothing was acknowledged; the log refuses writes until it is reopened.
    #[error("{service} log is unavailable: {reason}")]
    Unavailable { service: String, reason: String },
    #[error("{service} log is corrupt at seq {seq}: {reason}")]
    Corrupt { service: String, seq: u64, reason: String },
    #[error("cannot open log at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// A tool's read-only open of a log a service holds: its files change
    /// under a copy.
    #[error(
        "cannot open log at {path}: the log is in use by a running service: stop it first, or back up the \
         running service's log with `concord log backup`"
    )]
    InUse { path: PathBuf },
    /// Every hash differs between chain formats, so a log of the previous
    /// one is refused rather than reported broken (see `format`).
    #[error(
        "the {service} log at {path} is in chain format {found}, and this release reads chain format {current} only: \
         stop its services and run `concord log migrate --data-dir {data_dir}` once \
         (it re-hashes every event in the new format and keeps each one)",
        current = concord_core::chain::CHAIN_FORMAT
    )]
    OldChainFormat {
        service: String,
        path: PathBuf,
        data_dir: PathBuf,
        found: u32,
    },
    #[error(
        "the {service} log at {path} is in chain format {found}, written by a newer release; \
         this release reads chain format {current} only",
        current = concord_core::chain::CHAIN_FORMAT
    )]
    NewerChainFormat { service: String, path: PathBuf, found: u32 },
    /// The store could not give back what it holds. Says once which log,
    /// which seqs and what the store answered (its own error flattened
    /// into `reason`, not chained: a chain printed the same damage three
    /// times and no seq).
    #[error("{log}: storage error{seqs} while {doing}: {reason}")]
    Storage {
        log: Box<LogName>,
        seqs: Seqs,
        doing: &'static str,
        reason: String,
    },
    /// The log holds less than it acknowledged (or something else at the
    /// seq it acknowledged): opening it for writing would let a new event
    /// take a lost one's seq, so it is not opened.
    #[error(
        "{log} was not opened: {breach}. Nothing was appended to it, so no new event can take the place of a \
         lost one.{} {RESTORE_ADVICE}",
        evidence_note(.evidence.as_deref())
    )]
    BehindMark {
        log: Box<LogName>,
        breach: Box<MarkBreach>,
        /// Where the journal as it was before this open is kept: fjall's
        /// recovery has already cut what it could not read in the log's
        /// own directory.
        evidence: Option<PathBuf>,
    },
    /// The high-water mark file cannot be read: whether history was lost
    /// cannot be told, so the log is not opened for writing.
    #[error("{log} was not opened: its high-water mark cannot be used: {source}. {RESTORE_ADVICE}")]
    Mark {
        log: Box<LogName>,
        #[source]
        source: MarkError,
    },
}

/// What to do about a log that lost acknowledged history: said wherever
/// it is refused.
pub const RESTORE_ADVICE: &str = "Keep this directory as evidence (move it aside), then restore the log from a \
     replica, or from a backup made with `concord log backup`: `concord log restore --from BACKUP LOG_DIR` \
     rebuilds the directory from it, verifying its chain (see docs/reliability.md)";

fn evidence_note(evidence: Option<&Path>) -> String {
    evidence.map_or_else(String::new, |p| {
        format!(
            " fjall's recovery dropped the part of its journal it could not read; the journal files as they were \
             before this open are kept in {}.",
            p.display()
        )
    })
}

/// A log named for an operator: its service, directory and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogName {
    pub service: String,
    pub dir: PathBuf,
    pub identity: Option<LogIdentity>,
}

impl std::fmt::Display for LogName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} log at {}", self.service, self.dir.display())?;
        if let Some(id) = self.identity {
            write!(f, " (identity {id})")?;
        }
        Ok(())
    }
}

/// Which seqs a storage error hit, as far as the log could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seqs {
    /// The error does not concern events (metadata, the stream index …).
    Unknown,
    At(u64),
    /// `first..=last`, every one unreadable.
    Range(u64, u64),
    /// `first` and possibly everything after it.
    From(u64),
}

impl Seqs {
    /// The first seq hit, if known.
    pub fn first(&self) -> Option<u64> {
        match *self {
            Seqs::Unknown => None,
            Seqs::At(s) | Seqs::Range(s, _) | Seqs::From(s) => Some(s),
        }
    }
}

impl std::fmt::Display for Seqs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Seqs::Unknown => Ok(()),
            Seqs::At(s) => write!(f, " at seq {s}"),
            Seqs::Range(a, b) if a == b => write!(f, " at seq {a}"),
            Seqs::Range(a, b) => write!(f, " at seqs {a}–{b}"),
            Seqs::From(s) => write!(f, " from seq {s} on"),
        }
    }
}

/// How a log falls short of a head it is held to: its high-water mark,
/// or a head given by whoever checks it (`verify --head`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkBreach {
    /// The log ends before `expected.seq`: `head_seq + 1 ..= expected.seq`
    /// are missing.
    Missing { head_seq: u64, expected: Head },
    /// The log holds another event at `expected.seq`.
    Diverged { expected: Head, found_hash: String },
    /// The mark belongs to another log (a file copied from elsewhere).
    AnotherLog { mark: LogIdentity },
}

impl std::fmt::Display for MarkBreach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MarkBreach::Missing { head_seq, expected } => write!(
                f,
                "it ends at seq {head_seq}, but seq {} (hash {}) was acknowledged: seqs {}–{} are missing",
                expected.seq,
                expected.hash,
                head_seq + 1,
                expected.seq
            ),
            MarkBreach::Diverged { expected, found_hash } => write!(
                f,
                "its event at seq {} has hash {found_hash}, but the one acknowledged there had hash {}: \
                 its history up to seq {} is not the one acknowledged",
                expected.seq, expected.hash, expected.seq
            ),
            MarkBreach::AnotherLog { mark } => write!(
                f,
                "its high-water mark ({MARK_FILE}) is that of another log, {mark}: whether this log lost history \
                 cannot be told"
            ),
        }
    }
}

/// The store's error in a few words, once: fjall's own `Display` is its
/// `Debug` and its `source()` repeats the inner error.
fn describe(e: &fjall::Error) -> String {
    match e {
        fjall::Error::Io(io) => format!("I/O error: {io}"),
        fjall::Error::Storage(lsm_tree) => {
            let text = format!("{lsm_tree:?}");
            if text.starts_with("ChecksumMismatch") {
                // The two checksum values tell an operator nothing.
                "the stored bytes fail their checksum: a block of a table file is damaged".to_owned()
            } else {
                text
            }
        }
        fjall::Error::JournalRecovery(j) => format!("journal recovery failed: {j:?}"),
        other => format!("{other:?}"),
    }
}

/// Which log this is, as opposed to which service's: a log is made once,
/// and two logs of one service (two data directories, a copy that went its
/// own way) are two identities. A UUIDv7 made when the log is created (or,
/// for a log of a release before identities, on its first open), stored in
/// its `meta` keyspace. Rationale: a service's seq and hash say where a log
/// stands, not whose it is; the identity lets an instance about to write
/// and a consumer about to read tell a second log from the one they know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogIdentity(Uuid);

impl LogIdentity {
    fn new() -> LogIdentity {
        LogIdentity(Uuid::now_v7())
    }
}

impl std::fmt::Display for LogIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a log reads the time: `recorded_at` and the wall part of its
/// clock. The system clock; only code (a test playing a service whose
/// clock runs off) can shift it, never a request or a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    offset: chrono::TimeDelta,
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::system()
    }
}

impl WallClock {
    pub fn system() -> WallClock {
        WallClock {
            offset: chrono::TimeDelta::zero(),
        }
    }

    /// The system clock shifted by `offset` (negative: running behind).
    pub fn shifted(offset: chrono::TimeDelta) -> WallClock {
        WallClock { offset }
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let now = chrono::Utc::now();
        now.checked_add_signed(self.offset).unwrap_or(now)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.now().timestamp_millis()).unwrap_or(0)
    }
}

/// A handle that merges stamps into a log's clock without appending and
/// without keeping the log open (a follower of another log holds one).
#[derive(Clone)]
pub struct HlcObserver {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HlcObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlcObserver")
            .field("service", &self.shared.service)
            .finish()
    }
}

impl HlcObserver {
    /// The next event this log appends is stamped after `hlc`.
    pub fn observe(&self, hlc: Hlc) {
        self.shared.observe(hlc);
    }
}

/// One append: the events one command produced for one stream.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub command_id: String,
    /// The request the command id names, recorded with it: a later append
    /// or lookup under the same id must bring the same one.
    pub fingerprint: Fingerprint,
    pub actor: Actor,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    /// A stamp seen on whatever caused this command, merged into the clock.
    pub observed_hlc: Option<Hlc>,
    pub events: Vec<NewEvent>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
}

/// An append in the writer's queue (`Log::submit`).
pub struct Submitted {
    answer: oneshot::Receiver<Result<Appended, LogError>>,
    shared: Arc<Shared>,
}

impl Submitted {
    /// The append's result, once it is durable (or refused).
    pub async fn durable(self) -> Result<Appended, LogError> {
        self.answer.await.map_err(|_| self.shared.unavailable())?
    }
}

/// The outcome of an append, or of its retry.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub events: Vec<EventEnvelope>,
    /// True when the command id was already recorded: nothing was appended
    /// and `events` are those of the first append.
    pub duplicate: bool,
    /// Each event's bytes exactly as stored (canonical JSON with its hash):
    /// what is published, so consumers can re-verify it byte for byte.
    pub raw: Vec<Vec<u8>>,
}

impl Appended {
    pub fn first_seq(&self) -> u64 {
        self.events.first().map_or(0, |e| e.seq)
    }
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }
    /// The stream's version after this append.
    pub fn version(&self) -> u64 {
        self.events.last().map_or(0, |e| e.version)
    }
}

/// The newest event of a log (seq 0 and the genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    fn empty() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }
}

/// An event exactly as stored (the bytes an export writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// A read's events as they are gathered, and the one rule that cuts a
/// read (from fjall, point reads after damage, or the window in memory):
/// at most `max_events`, and no event that would take it past
/// `max_bytes`, except the first, so a read always makes progress.
pub(crate) struct Gathered {
    pub(crate) events: Vec<RawEvent>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Gathered {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Gathered {
        Gathered {
            events: Vec::new(),
            bytes: 0,
            max_events,
            max_bytes,
        }
    }

    /// Takes the event unless the read is full; `false`: it is, stop.
    pub(crate) fn take(&mut self, seq: u64, bytes: &[u8]) -> bool {
        let full = self.events.len() >= self.max_events
            || (!self.events.is_empty() && self.bytes + bytes.len() > self.max_bytes);
        if !full {
            self.bytes += bytes.len();
            self.events.push(RawEvent {
                seq,
                bytes: bytes.to_vec(),
            });
        }
        !full
    }

    /// Whether another event can be taken at all (so a scan stops before
    /// reading one it would not take).
    fn has_room(&self) -> bool {
        self.events.len() < self.max_events
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadBatch {
    pub events: Vec<RawEvent>,
    pub head_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub service: String,
    pub events_verified: u64,
    pub head: Head,
    /// The first bad seq, if any; `None` means the whole chain verifies.
    pub first_bad: Option<BadEventReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadEventReport {
    pub seq: u64,
    pub reason: String,
}

impl From<BadEvent> for BadEventReport {
    fn from(b: BadEvent) -> Self {
        Self {
            seq: b.seq,
            reason: b.reason.to_string(),
        }
    }
}

/// What makes two commands under one id the same request: the command,
/// the stream it addresses, its data and who sent it. A retry brings the
/// same; anything else under that id is another request, refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    command: String,
    stream: String,
    /// Hex SHA-256 of the data's canonical JSON: key order and spacing
    /// of the wire do not make another request, and the record stays
    /// small whatever the data.
    data_sha256: String,
    actor: Actor,
}

impl Fingerprint {
    pub fn new(command: &str, stream: &str, data: &Value, actor: &Actor) -> Result<Fingerprint, CanonicalError> {
        let data_sha256 = hex::encode(Sha256::digest(canonical_json(data)?));
        Ok(Fingerprint {
            command: command.to_owned(),
            stream: stream.to_owned(),
            data_sha256,
            actor: actor.clone(),
        })
    }
}

/// What the log knows of a command id, for a request under it.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Never appended: the request is new.
    Unknown,
    /// Appended by this same request: what its retry answers.
    Same(Appended),
    /// Appended by another request.
    Reused,
}

/// What the log remembers of a command, to answer its retries.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CommandRecord {
    first_seq: u64,
    count: u64,
    /// `None` in records written before fingerprints were kept: their
    /// request is unknown, so any request under their id is taken for a
    /// retry (it cannot be checked), as those releases did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
}

impl CommandRecord {
    fn admits(&self, fingerprint: &Fingerprint) -> bool {
        self.fingerprint.as_ref().is_none_or(|f| f == fingerprint)
    }
}

/// State both the writer thread and readers see.
struct Shared {
    service: Service,
    identity: LogIdentity,
    clock: WallClock,
    /// The newest stamp observed from elsewhere: the writer ticks past it.
    observed: Mutex<Hlc>,
    head: RwLock<Head>,
    poisoned: AtomicBool,
    poison_reason: RwLock<Option<String>>,
    /// How a group commit is persisted: always `SyncAll`, except in the
    /// power-loss tests' negative control (`open_without_fsync_for_tests`).
    persist: PersistMode,
    /// The newest committed events, for reads of the tail.
    recent: Mutex<recent::Recent>,
}

impl Shared {
    /// Whether `hlc` may be merged into the clock at `now_ms` (see
    /// `OBSERVED_HLC_AHEAD_MAX_MS`).
    fn admissible(&self, hlc: Hlc, now_ms: u64) -> bool {
        let ok = hlc.wall_ms <= now_ms.saturating_add(OBSERVED_HLC_AHEAD_MAX_MS);
        if !ok {
            tracing::warn!(
                service = %self.service,
                observed_wall_ms = hlc.wall_ms,
                now_ms,
                "an observed clock stamp is too far ahead of this log's clock; not merged"
            );
        }
        ok
    }

    fn observe(&self, hlc: Hlc) {
        if !self.admissible(hlc, self.clock.now_ms()) {
            return;
        }
        let mut seen = self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *seen = (*seen).max(hlc);
    }

    fn observed(&self) -> Hlc {
        *self.observed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unavailable(&self) -> LogError {
        let reason = self
            .poison_reason
            .read()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "the log writer has stopped".to_owned());
        LogError::Unavailable {
            service: self.service.to_string(),
            reason,
        }
    }
}

#[derive(Clone)]
struct Stores {
    /// Which log, for its errors.
    name: Arc<LogName>,
    db: Database,
    events: Keyspace,
    streams: Keyspace,
    commands: Keyspace,
}

struct Inner {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// What the high-water mark said at open.
    mark: MarkCheck,
    views: Keyspace,
    tx: Option<mpsc::Sender<writer::Job>>,
    writer: Option<JoinHandle<()>>,
    /// The thread keeping the high-water mark (none when inspecting).
    marker: Option<mark::Marker>,
    stores: Stores,
    /// The private copy an inspection opened, removed after the store
    /// (declared after it: fields drop in order).
    _copy: Option<inspect::Copy>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue stops the writer after its current batch; joining
        // it releases fjall's directory lock before `drop` returns, so the
        // same directory can be reopened at once.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        // The head is final now: the mark is written at it once more.
        if let Some(marker) = self.marker.as_mut() {
            marker.stop();
        }
    }
}

/// What a log's high-water mark said when it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkCheck {
    /// No mark: a new log, or one of a release before marks (a writing
    /// open writes one at once).
    Absent,
    /// The log extends to the mark, with the mark's hash at its seq.
    Holds(Head),
    /// The mark file cannot be read or parsed.
    Unusable(String),
    /// The log falls short of its mark.
    Breach(MarkBreach),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A service's open: refused below the mark, keeps the mark.
    Write,
    /// A tool's open of a private copy: never refused for the mark (the
    /// tool reports it), writes nothing that matters.
    Inspect,
}

/// A handle on one service's log. Cheap to clone; the log closes when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("service", &self.inner.shared.service)
            .field("identity", &self.inner.shared.identity)
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Log {
    /// Opens (or creates) the log of `service` in `dir`, recovering its head.
    pub fn open(dir: impl AsRef<Path>, service: Service) -> Result<Log, LogError> {
        Self::open_with_clock(dir, service, WallClock::system())
    }

    /// `open`, with the time read from `clock`.
    pub fn open_with_clock(dir: impl AsRef<Path>, service: Service, clock: WallClock) -> Result<Log, LogError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir).map_err(|e| LogError::Open {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        Self::open_inner(dir, Some(service), clock, Mode::Write, None)
    }

    /// `open` with group commits persisted without fsync (fjall's
    /// `PersistMode::Buffer`): a log that loses acknowledged events in a
    /// power cut. Only for the power-loss tests' negative control, which
    /// proves they detect a missing fsync; the feature that enables it is
    /// turned on by the log's own dev-dependency, never in a release build.
    #[cfg(feature = "test-buffer-mode")]
    #[doc(hidden)]
    pub fn open_without_fsync_for_tests(dir: impl AsRef<Path>, service: Service) -> Result<Log, LogError> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durably(&dir).map_err(|e| LogError::Open {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        Self::open_inner_persisting(
            dir,
            Some(service),
            WallClock::system(),
            Mode::Write,
            None,
            PersistMode::Buffer,
        )
    }

    /// Opens a log that must already exist, whatever its service (for tools
    /// such as `concord log verify`).
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Log, LogError> {
        let dir = dir.as_ref().to_path_buf();
        let empty = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_none())
            .map_err(|e| LogError::Open {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
        if empty {
            return Err(LogError::Open {
                path: dir,
                reason: "the directory is empty: no log here".into(),
            });
        }
        Self::open_inner(dir, None, WallClock::system(), Mode::Write, None)
    }

    fn open_inner(
        dir: PathBuf,
        want: Option<Service>,
        clock: WallClock,
        mode: Mode,
        copy: Option<inspect::Copy>,
    ) -> Result<Log, LogError> {
        Self::open_inner_persisting(dir, want, clock, mode, copy, PersistMode::SyncAll)
    }

    fn open_inner_persisting(
        dir: PathBuf,
        want: Option<Service>,
        clock: WallClock,
        mode: Mode,
        copy: Option<inspect::Copy>,
        persist: PersistMode,
    ) -> Result<Log, LogError> {
        // The directory errors name: the one asked for, not a tool's
        // private copy of it.
        let shown_dir = copy.as_ref().map_or_else(|| dir.clone(), |c| c.original.clone());
        let open_err = |reason: String| LogError::Open {
            path: shown_dir.clone(),
            reason,
        };
        // fjall's recovery cuts, in place, the part of the journal it cannot
        // read. For a log held to a mark, the journal files are copied
        // first (their data bytes only): should the open be refused, the
        // bytes fjall dropped are kept as evidence. Best effort: without a
        // copy the refusal still stands.
        let journals = match mode {
            Mode::Write if dir.join(MARK_FILE).exists() => inspect::copy_journals(&dir)
                .inspect_err(|e| tracing::warn!(dir = %dir.display(), error = %e, "journal not copied before open"))
                .ok()
                .flatten(),
            _ => None,
        };
        let db = open_database(&dir).map_err(|e| match e {
            fjall::Error::Locked => open_err("the log is in use by another process".into()),
            other => open_err(describe(&other)),
        })?;
        let ks = |name: &str| open_keyspace(&db, name).map_err(|e| open_err(format!("opening keyspace {name}: {e}")));
        let meta = ks(KS_META)?;
        let views = ks(KS_VIEWS)?;
        let mut stores = Stores {
            name: Arc::new(LogName {
                service: want.map_or_else(|| "the".to_owned(), |w| w.to_string()),
                dir: shown_dir.clone(),
                identity: None,
            }),
            events: ks(KS_EVENTS)?,
            streams: ks(KS_STREAMS)?,
            commands: ks(KS_COMMANDS)?,
            db: db.clone(),
        };
        // fjall (3.1) fsyncs a new keyspace's own folder but not the
        // `keyspaces` folder that names it: a power cut would take every
        // keyspace made since, and with them all the events (found by
        // `tests/power_loss.rs`). Made durable here, before anything is
        // acknowledged.
        sync_dir(&dir.join("keyspaces")).map_err(|e| open_err(format!("syncing the keyspaces folder: {e}")))?;
        let stored = meta
            .get(META_SERVICE)
            .map_err(|e| open_err(e.to_string()))?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let service = match (stored, want) {
            (Some(s), want) => {
                let svc =
                    Service::parse(&s).ok_or_else(|| open_err(format!("unknown service {s:?} in log metadata")))?;
                if let Some(w) = want.filter(|w| *w != svc) {
                    return Err(open_err(format!("this is the {svc} log, not the {w} log")));
                }
                svc
            }
            (None, Some(w)) => {
                let has_events = stores.events.first_key_value().is_some();
                if has_events {
                    return Err(open_err("events without log metadata".into()));
                }
                meta.insert(META_SERVICE, w.as_str())
                    .and_then(|()| db.persist(PersistMode::SyncAll))
                    .map_err(|e| open_err(e.to_string()))?;
                w
            }
            (None, None) => return Err(open_err("no Concord log here".into())),
        };
        format::check(&shown_dir, service, &db, &meta, &stores.events)?;
        let identity = match meta.get(META_IDENTITY).map_err(|e| open_err(e.to_string()))? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|t| Uuid::parse_str(t).ok())
                .map(LogIdentity)
                .ok_or_else(|| open_err("the log identity in its metadata is not a uuid".into()))?,
            None => {
                // A new log, or one of a release before identities: it is
                // given one now, durably, before anyone can be told it.
                let made = LogIdentity::new();
                meta.insert(META_IDENTITY, made.to_string())
                    .and_then(|()| db.persist(PersistMode::SyncAll))
                    .map_err(|e| open_err(format!("storing the log identity: {e}")))?;
                made
            }
        };
        let name = LogName {
            service: service.to_string(),
            dir: shown_dir.clone(),
            identity: Some(identity),
        };
        stores.name = Arc::new(name.clone());
        let (head, hlc) = recover_head(&stores, service)?;
        let mark = check_mark(&stores, service, identity, &dir, &head);
        if mode == Mode::Write {
            match &mark {
                MarkCheck::Breach(breach) => {
                    tracing::error!(log = %name, %breach, "log refused: it holds less than it acknowledged");
                    return Err(LogError::BehindMark {
                        log: Box::new(name),
                        breach: Box::new(breach.clone()),
                        evidence: journals.map(tempfile::TempDir::keep),
                    });
                }
                MarkCheck::Unusable(reason) => {
                    return Err(LogError::Mark {
                        log: Box::new(name),
                        source: MarkError::Unusable(reason.clone()),
                    });
                }
                MarkCheck::Absent => {
                    // From now on this log is held to what it holds.
                    mark::write(&dir, &Mark::new(service.as_str(), identity, &head)).map_err(|source| {
                        LogError::Mark {
                            log: Box::new(name.clone()),
                            source,
                        }
                    })?;
                }
                MarkCheck::Holds(_) => {}
            }
        }
        let shared = Arc::new(Shared {
            service,
            identity,
            clock,
            observed: Mutex::new(Hlc::default()),
            head: RwLock::new(head.clone()),
            poisoned: AtomicBool::new(false),
            poison_reason: RwLock::new(None),
            persist,
            recent: Mutex::default(),
        });
        let signal = Arc::new(mark::Signal::default());
        let marker = match mode {
            Mode::Write => Some(
                mark::Marker::start(dir.clone(), shared.clone(), signal.clone(), head.clone())
                    .map_err(|e| open_err(format!("starting the high-water mark thread: {e}")))?,
            ),
            Mode::Inspect => None,
        };
        let (tx, rx) = mpsc::channel(APPEND_QUEUE_DEPTH);
        let w = writer::Writer {
            stores: stores.clone(),
            shared: shared.clone(),
            mark: signal,
            head,
            hlc,
            versions: writer::versions(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("log-{service}"))
            .spawn(move || w.run(rx))
            .map_err(|e| open_err(format!("starting the writer thread: {e}")))?;
        Ok(Log {
            inner: Arc::new(Inner {
                dir,
                shared,
                mark,
                views,
                tx: Some(tx),
                writer: Some(handle),
                marker,
                stores,
                _copy: copy,
            }),
        })
    }

    pub fn service(&self) -> Service {
        self.inner.shared.service
    }

    /// Which log this is: made when the log was created, stored with it.
    pub fn identity(&self) -> LogIdentity {
        self.inner.shared.identity
    }

    /// Merges a stamp seen elsewhere (an event of another log this service
    /// consumed) into the clock without appending: the next event is
    /// stamped after it.
    pub fn observe(&self, hlc: Hlc) {
        self.inner.shared.observe(hlc);
    }

    /// A handle that observes for this log (see `observe`).
    pub fn hlc_observer(&self) -> HlcObserver {
        HlcObserver {
            shared: self.inner.shared.clone(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// What the high-water mark said when this log was opened (a writing
    /// open refuses every answer but `Absent` and `Holds`).
    pub fn mark_check(&self) -> &MarkCheck {
        &self.inner.mark
    }

    /// Whether this log extends to `expected` (a head a consumer or an
    /// auditor holds), with `expected`'s hash at its seq. Blocking.
    pub fn check_head(&self, expected: &Head) -> Result<Option<MarkBreach>, LogError> {
        held_to(&self.inner.stores, self.service(), &self.head(), expected)
    }

    /// Opens a private copy of the log in `dir` for reading, leaving every
    /// byte of `dir` as it was (see `inspect`). Refused while a service
    /// has the log open: its files change under a copy. Never refused for
    /// its high-water mark: `mark_check` says what it found.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Log, LogError> {
        let copy = inspect::Copy::make(dir.as_ref())?;
        let at = copy.path().to_path_buf();
        Self::open_inner(at, None, WallClock::system(), Mode::Inspect, Some(copy))
    }

    /// Keeps `bytes` under `name` beside the log, replacing what was kept
    /// there, in one atomic write: a view the service folded from another
    /// log together with where it stands in that log, so that the service
    /// resumes from there at its next start instead of refolding that whole
    /// log. Not part of the log: not hashed, not exported, not fsynced on
    /// its own (a view lost in a power cut is refolded from its source,
    /// which still has every event). Blocking: call it off the async threads.
    pub fn keep_view(&self, name: &str, bytes: &[u8]) -> Result<(), LogError> {
        self.inner
            .views
            .insert(name, bytes)
            .map_err(|e| self.inner.stores.storage("keeping a view", Seqs::Unknown, &e))
    }

    /// What `keep_view` kept under `name`, if anything. Blocking.
    pub fn kept_view(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        self.inner
            .views
            .get(name)
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| self.inner.stores.storage("reading a kept view", Seqs::Unknown, &e))
    }

    /// Why the log refuses writes until it is reopened (a failed commit:
    /// fsync answered an error, the disk is full), if it does.
    pub fn poisoned(&self) -> Option<String> {
        if !self.inner.shared.poisoned.load(Ordering::Acquire) {
            return None;
        }
        match self.inner.shared.unavailable() {
            LogError::Unavailable { reason, .. } => Some(reason),
            other => Some(other.to_string()),
        }
    }

    /// Appends one command's events, durably. See the module doc.
    pub async fn append(&self, req: AppendRequest) -> Result<Appended, LogError> {
        self.submit(req).await?.durable().await
    }

    /// Puts one command's events in the writer's queue, behind every
    /// append submitted before it returned, and answers at once; its
    /// result comes from `Submitted::durable`. Rationale: a caller that
    /// submits several appends to one stream, each expecting the version
    /// the one before leaves, has them checked in that order and shares
    /// their fsync (a refused one makes those after it conflict).
    pub async fn submit(&self, req: AppendRequest) -> Result<Submitted, LogError> {
        let data = validate::append(&req)?;
        if self.inner.shared.poisoned.load(Ordering::Acquire) {
            return Err(self.inner.shared.unavailable());
        }
        let tx = self.inner.tx.as_ref().ok_or_else(|| self.inner.shared.unavailable())?;
        let (reply, answer) = oneshot::channel();
        tx.send(writer::Job { req, data, reply })
            .await
            .map_err(|_| self.inner.shared.unavailable())?;
        Ok(Submitted {
            answer,
            shared: Arc::clone(&self.inner.shared),
        })
    }

    /// The newest committed event.
    pub fn head(&self) -> Head {
        self.inner
            .shared
            .head
            .read()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// A storage error met while reading events after `last_read` (0:
    /// none read yet), with the damaged seqs located as far as point reads
    /// can tell.
    fn storage_after(&self, doing: &'static str, last_read: u64, e: &fjall::Error) -> LogError {
        let seqs = locate_damage(&self.inner.stores, last_read + 1, self.head().seq);
        self.inner.stores.storage(doing, seqs, e)
    }

    /// Events from `from_seq` on, in order, at most `max_events` (capped by
    /// `READ_BATCH_EVENTS_MAX`) and about `READ_BATCH_BYTES_MAX` bytes.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub fn read_from(&self, from_seq: u64, max_events: usize) -> Result<ReadBatch, LogError> {
        let (head_seq, from, last, max_events) = self.read_range(from_seq, max_events);
        let mut read = Gathered::new(max_events, READ_BATCH_BYTES_MAX);
        if from <= head_seq {
            for item in self.inner.stores.events.range(from.to_be_bytes()..=last.to_be_bytes()) {
                let (k, v) = match item.into_inner() {
                    Ok(kv) => kv,
                    Err(e) => {
                        // A scan fails as a whole, sometimes on a block
                        // past the seqs it is at: the events before the
                        // damage are read one by one and returned, the
                        // error comes with the read that starts at it.
                        let last_read = read.events.last().map_or(from - 1, |r: &RawEvent| r.seq);
                        self.salvage(last_read + 1, last, &mut read);
                        if read.events.is_empty() {
                            return Err(self.storage_after("reading events", last_read, &e));
                        }
                        break;
                    }
                };
                let seq = key_seq(&k).ok_or_else(|| self.corrupt(0, "event key is not 8 bytes"))?;
                if !read.take(seq, &v) || !read.has_room() {
                    break;
                }
            }
        }
        Ok(ReadBatch {
            events: read.events,
            head_seq,
        })
    }

    /// What `read_from` answers, when the newest committed events kept in
    /// memory hold all of it; `None` otherwise (then call `read_from`).
    /// Never blocks: async code calls it in place.
    pub fn read_recent(&self, from_seq: u64, max_events: usize) -> Option<ReadBatch> {
        let (head_seq, from, last, max_events) = self.read_range(from_seq, max_events);
        if from > head_seq {
            return Some(ReadBatch {
                events: Vec::new(),
                head_seq,
            });
        }
        let events = self
            .inner
            .shared
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .read(from, last, Gathered::new(max_events, READ_BATCH_BYTES_MAX))?;
        Some(ReadBatch { events, head_seq })
    }

    /// `(head, first, last, max_events)` of a read from `from_seq`: no
    /// further than `max_events` can reach, so a scan never touches (or
    /// fails on) a block past what it returns.
    fn read_range(&self, from_seq: u64, max_events: usize) -> (u64, u64, u64, usize) {
        let head_seq = self.head().seq;
        let max_events = max_events.clamp(1, READ_BATCH_EVENTS_MAX);
        let from = from_seq.max(1);
        let last = head_seq.min(from.saturating_add(max_events as u64 - 1));
        (head_seq, from, last, max_events)
    }

    /// Point reads from `from` to `last` into `read` until one fails or
    /// the read is full.
    fn salvage(&self, from: u64, last: u64, read: &mut Gathered) {
        for seq in from..=last {
            if !read.has_room() {
                return;
            }
            let Ok(Some(v)) = self.inner.stores.events.get(seq.to_be_bytes()) else {
                return;
            };
            if !read.take(seq, &v) {
                return;
            }
        }
    }

    /// Decoded events from `from_seq` on (see `read_from`).
    pub fn read_events(&self, from_seq: u64, max_events: usize) -> Result<Vec<EventEnvelope>, LogError> {
        self.read_from(from_seq, max_events)?
            .events
            .iter()
            .map(|r| decode(self.service(), r.seq, &r.bytes))
            .collect()
    }

    /// Events of one stream from `from_version` on, at most `max_events`.
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max_events: usize,
    ) -> Result<Vec<EventEnvelope>, LogError> {
        let max_events = max_events.clamp(1, READ_BATCH_EVENTS_MAX);
        let start = stream_key(stream, from_version.max(1));
        let end = stream_key(stream, u64::MAX);
        let mut out = Vec::new();
        for item in self.inner.stores.streams.range(start..=end) {
            let (_, v) = item
                .into_inner()
                .map_err(|e| self.inner.stores.storage("reading a stream index", Seqs::Unknown, &e))?;
            let seq = key_seq(&v).ok_or_else(|| self.corrupt(0, "stream index entry is not 8 bytes"))?;
            out.push(self.event_at(seq)?);
            if out.len() >= max_events {
                break;
            }
        }
        Ok(out)
    }

    /// What a request under `command_id` with `fingerprint` must answer:
    /// the first result of that same request, a refusal when the id names
    /// another one, or nothing recorded. Blocking.
    pub fn recorded(&self, command_id: &str, fingerprint: &Fingerprint) -> Result<Recorded, LogError> {
        recorded(&self.inner.stores, self.service(), command_id, fingerprint)
    }

    /// The current version of a stream (0 when it does not exist).
    pub fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        stream_version(&self.inner.stores, self.service(), stream)
    }

    fn event_at(&self, seq: u64) -> Result<EventEnvelope, LogError> {
        event_at(&self.inner.stores, self.service(), seq)
    }

    fn corrupt(&self, seq: u64, reason: &str) -> LogError {
        LogError::Corrupt {
            service: self.service().to_string(),
            seq,
            reason: reason.to_owned(),
        }
    }

    /// Walks the whole chain from seq 1 and reports the first bad seq.
    /// Blocking.
    ///
    /// Two stages: this thread reads records in key order, chunk by
    /// chunk, and hands each chunk to one of a few helpers in turn, which
    /// check and hash it (`chain::inspect` needs no other record); the
    /// results come back in the order they went out, and linking stays
    /// sequential. One helper per core: hashing is the slower stage.
    pub fn verify(&self) -> Result<VerifyReport, LogError> {
        const CHUNK_EVENTS: usize = VERIFY_CHUNK_EVENTS;
        /// Chunks out at once per helper: memory stays bounded.
        const CHUNKS_PER_HELPER: usize = 2;
        type Chunk = Vec<(Option<u64>, Result<Link, BadRecord>)>;
        let helpers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, VERIFY_HELPERS_MAX);
        let mut verifier = ChainVerifier::new();
        let mut first_bad = None;
        // Taken before the scan: the scan sees at least this much.
        let head = self.head();
        let scan = std::thread::scope(|scope| -> Result<(), LogError> {
            let mut to_helpers = Vec::with_capacity(helpers);
            let mut from_helpers = Vec::with_capacity(helpers);
            for _ in 0..helpers {
                let (raw_tx, raw_rx) =
                    std::sync::mpsc::sync_channel::<Vec<(Option<u64>, fjall::Slice)>>(CHUNKS_PER_HELPER);
                let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_PER_HELPER);
                scope.spawn(move || {
                    for raw in raw_rx {
                        let chunk: Chunk = raw.into_iter().map(|(k, v)| (k, inspect(&v))).collect();
                        if done_tx.send(chunk).is_err() {
                            return;
                        }
                    }
                });
                to_helpers.push(raw_tx);
                from_helpers.push(done_rx);
            }
            let link_chunk = |chunk: Chunk, verifier: &mut ChainVerifier| {
                for (key, record) in chunk {
                    let record = match key {
                        Some(_) => record,
                        None => Err(BadRecord {
                            seq: None,
                            reason: ChainBreak::Unreadable("event key is not 8 bytes".into()),
                        }),
                    };
                    if let Err(bad) = verifier.link(key, record) {
                        return Some(BadEventReport::from(bad));
                    }
                }
                None
            };
            // Chunk n goes to helper n % helpers and comes back from it.
            let (mut sent, mut linked) = (0usize, 0usize);
            let mut raw = Vec::with_capacity(CHUNK_EVENTS);
            let mut iter = self.inner.stores.events.iter();
            let mut last_read = 0;
            loop {
                let item = iter.next();
                let at_end = item.is_none();
                if let Some(item) = item {
                    let (k, v) = item
                        .into_inner()
                        .map_err(|e| self.storage_after("verifying events", last_read, &e))?;
                    let seq = key_seq(&k);
                    last_read = seq.unwrap_or(last_read);
                    raw.push((seq, v));
                }
                if (raw.len() == CHUNK_EVENTS || (at_end && !raw.is_empty()))
                    && to_helpers[sent % helpers].send(std::mem::take(&mut raw)).is_ok()
                {
                    sent += 1;
                }
                // Apart from the send: a log that ends on a chunk boundary
                // sends nothing at its end, and its last chunks must still
                // be linked.
                while sent - linked >= helpers * CHUNKS_PER_HELPER || (at_end && sent > linked) {
                    let Ok(chunk) = from_helpers[linked % helpers].recv() else {
                        break;
                    };
                    linked += 1;
                    if first_bad.is_none() {
                        first_bad = link_chunk(chunk, &mut verifier);
                    }
                }
                if at_end || first_bad.is_some() {
                    break;
                }
            }
            drop(to_helpers);
            Ok(())
        });
        scan?;
        // A chain that verifies but stops short of the head (or reaches
        // it under another hash) is a finding, never a pass: it is what a
        // scan that skipped its last records would otherwise report.
        let reached = verifier.verified();
        if first_bad.is_none()
            && (reached < head.seq || (reached == head.seq && reached > 0 && verifier.head_hash() != head.hash))
        {
            first_bad = Some(BadEventReport {
                seq: reached.min(head.seq.saturating_sub(1)) + 1,
                reason: format!(
                    "the chain ends at seq {reached} (hash {}) but the log's head is seq {} (hash {})",
                    verifier.head_hash(),
                    head.seq,
                    head.hash
                ),
            });
        }
        Ok(VerifyReport {
            service: self.service().to_string(),
            events_verified: reached,
            head,
            first_bad,
        })
    }
}

impl Stores {
    fn storage(&self, doing: &'static str, seqs: Seqs, e: &fjall::Error) -> LogError {
        LogError::Storage {
            log: Box::new((*self.name).clone()),
            seqs,
            doing,
            reason: describe(e),
        }
    }
}

/// Events one verify helper hashes at a time.
const VERIFY_CHUNK_EVENTS: usize = 4096;

/// Most point reads spent on locating a damaged range. Rationale: it is
/// only for the error message; past this many the range is given open.
const DAMAGE_PROBES_MAX: u64 = 100_000;

/// Which seqs from `first` on cannot be read, one point read each: a
/// scan only says that it stopped, and a damaged block of a table holds
/// a run of seqs while the blocks after it may read fine.
fn locate_damage(stores: &Stores, first: u64, head_seq: u64) -> Seqs {
    let last = head_seq.min(first.saturating_add(DAMAGE_PROBES_MAX));
    let mut bad: Option<u64> = None;
    for seq in first..=last {
        match (stores.events.get(seq.to_be_bytes()), bad) {
            (Err(_), None) => bad = Some(seq),
            (Err(_), Some(_)) => {}
            (Ok(_), Some(b)) => return Seqs::Range(b, seq - 1),
            (Ok(_), None) => {}
        }
    }
    match bad {
        Some(b) if last == head_seq => Seqs::Range(b, head_seq),
        Some(b) => Seqs::From(b),
        None => Seqs::From(first),
    }
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each
/// one created. Rationale: fjall fsyncs the log's directory, not the entry
/// that names it; without this a power cut soon after a log is created can
/// take the whole directory, acknowledged events and all (found by
/// `tests/power_loss.rs`).
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        missing.push(d);
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        sync_dir(
            d.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )?;
    }
    Ok(())
}

/// Makes a directory's entries durable (fsync of the directory).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn key_seq(k: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(k).ok().map(u64::from_be_bytes)
}

/// `stream ‖ 0x00 ‖ version (big endian)`: stream names hold no NUL, so one
/// stream's keys are never a prefix of another's, and versions sort.
fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.len() + 9);
    k.extend_from_slice(stream.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn stream_version(stores: &Stores, service: Service, stream: &str) -> Result<u64, LogError> {
    let mut prefix = stream.as_bytes().to_vec();
    prefix.push(0);
    match stores.streams.prefix(&prefix).next_back() {
        None => Ok(0),
        Some(g) => {
            let k = g
                .key()
                .map_err(|e| stores.storage("reading a stream version", Seqs::Unknown, &e))?;
            k.get(prefix.len()..)
                .and_then(key_seq)
                .ok_or_else(|| LogError::Corrupt {
                    service: service.to_string(),
                    seq: 0,
                    reason: format!("stream index key of {stream} is malformed"),
                })
        }
    }
}

/// What the log holds under `command_id`, for a request with `fingerprint`.
fn recorded(
    stores: &Stores,
    service: Service,
    command_id: &str,
    fingerprint: &Fingerprint,
) -> Result<Recorded, LogError> {
    let Some(bytes) = stores
        .commands
        .get(command_id.as_bytes())
        .map_err(|e| stores.storage("looking up a command id", Seqs::Unknown, &e))?
    else {
        return Ok(Recorded::Unknown);
    };
    let record: CommandRecord = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
        service: service.to_string(),
        seq: 0,
        reason: format!("command record {command_id:?} is unreadable: {e}"),
    })?;
    if !record.admits(fingerprint) {
        return Ok(Recorded::Reused);
    }
    let raw = (record.first_seq..record.first_seq + record.count)
        .map(|seq| raw_at(stores, service, seq))
        .collect::<Result<Vec<_>, _>>()?;
    let events = raw
        .iter()
        .zip(record.first_seq..)
        .map(|(bytes, seq)| decode(service, seq, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Recorded::Same(Appended {
        events,
        duplicate: true,
        raw,
    }))
}

fn raw_at(stores: &Stores, service: Service, seq: u64) -> Result<Vec<u8>, LogError> {
    stores
        .events
        .get(seq.to_be_bytes())
        .map_err(|e| stores.storage("reading an event", Seqs::At(seq), &e))?
        .map(|b| b.to_vec())
        .ok_or_else(|| LogError::Corrupt {
            service: service.to_string(),
            seq,
            reason: "indexed event is missing".into(),
        })
}

fn event_at(stores: &Stores, service: Service, seq: u64) -> Result<EventEnvelope, LogError> {
    decode(service, seq, &raw_at(stores, service, seq)?)
}

/// Parses a stored record, refusing one that is not what its key says.
pub fn decode(service: Service, seq: u64, bytes: &[u8]) -> Result<EventEnvelope, LogError> {
    let corrupt = |reason: String| LogError::Corrupt {
        service: service.to_string(),
        seq,
        reason,
    };
    let env: EventEnvelope = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("unreadable record: {e}")))?;
    if env.seq != seq {
        return Err(corrupt(format!("record says seq {}", env.seq)));
    }
    Ok(env)
}

/// What the mark in `dir` says of a log recovered at `head`.
fn check_mark(stores: &Stores, service: Service, identity: LogIdentity, dir: &Path, head: &Head) -> MarkCheck {
    let mark = match mark::read(dir) {
        Ok(None) => return MarkCheck::Absent,
        Ok(Some(m)) => m,
        Err(e) => return MarkCheck::Unusable(e.to_string()),
    };
    if mark.identity != identity || mark.service != service.as_str() {
        return MarkCheck::Breach(MarkBreach::AnotherLog { mark: mark.identity });
    }
    match held_to(stores, service, head, &mark.head()) {
        Ok(None) => MarkCheck::Holds(mark.head()),
        Ok(Some(breach)) => MarkCheck::Breach(breach),
        Err(e) => MarkCheck::Unusable(format!(
            "the event at its seq {} cannot be read to compare: {e}",
            mark.seq
        )),
    }
}

/// Whether a log at `head` extends to `expected` with `expected`'s hash at
/// its seq; `Some` says how it falls short.
fn held_to(stores: &Stores, service: Service, head: &Head, expected: &Head) -> Result<Option<MarkBreach>, LogError> {
    if expected.seq > head.seq {
        return Ok(Some(MarkBreach::Missing {
            head_seq: head.seq,
            expected: expected.clone(),
        }));
    }
    let found_hash = match expected.seq {
        0 => GENESIS_HASH.to_owned(),
        seq if seq == head.seq => head.hash.clone(),
        seq => event_at(stores, service, seq)?.hash,
    };
    if found_hash == expected.hash {
        Ok(None)
    } else {
        Ok(Some(MarkBreach::Diverged {
            expected: expected.clone(),
            found_hash,
        }))
    }
}

fn recover_head(stores: &Stores, service: Service) -> Result<(Head, Hlc), LogError> {
    let Some(last) = stores.events.last_key_value() else {
        return Ok((Head::empty(), Hlc::default()));
    };
    // The last event is the one that failed to read, whatever its seq.
    let (k, v) = last
        .into_inner()
        .map_err(|e| stores.storage("recovering the head (the last event)", Seqs::Unknown, &e))?;
    let seq = key_seq(&k).ok_or_else(|| LogError::Corrupt {
        service: service.to_string(),
        seq: 0,
        reason: "last event key is not 8 bytes".into(),
    })?;
    let env = decode(service, seq, &v)?;
    Ok((Head { seq, hash: env.hash }, env.hlc))
}

#[cfg(test)]
mod tests;
