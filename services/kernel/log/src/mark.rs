//! The durable high-water mark: the highest `{seq, hash}` this log has
//! acknowledged, kept in a small file of its own (`head.json`) beside
//! fjall's files, outside fjall's journal.
//!
//! Why: fjall's recovery cannot tell a torn tail (a crash in the middle of
//! a write, harmless: nothing in it was acknowledged) from damage in the
//! middle of its journal (a flipped byte): both end the recovered history
//! there, silently. Without a record of its own, a log that lost seqs
//! 12–23 that way opens as a shorter log, and its next append is a new
//! seq 12: history forks. The mark lets `open` see that the recovered head
//! is below what was acknowledged, and refuse.
//!
//! It may lag (it is written after the fact, at most every
//! `MARK_INTERVAL` and at shutdown), but it never leads: it only ever
//! records a head that was already committed with an fsync. It is written
//! by a thread of its own, never on the acknowledgement path: an append
//! waits for its fsync and nothing else.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Head, LogIdentity, Shared};

/// The mark's file name in the log directory.
pub const MARK_FILE: &str = "head.json";
/// The mark's temporary file, renamed over `MARK_FILE` once synced.
const MARK_TMP: &str = "head.json.tmp";
/// Most often the mark is rewritten. Rationale: one small write, fsync,
/// rename and directory fsync costs about as much as a group commit; at
/// 10 a second it is noise next to the appends, and a mark 100 ms behind
/// still catches any loss of history older than that.
pub const MARK_INTERVAL: Duration = Duration::from_millis(100);
/// The version of the file's shape.
const MARK_FORMAT: u32 = 1;

/// What `head.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    pub format: u32,
    /// Which service's log (as its metadata says).
    pub service: String,
    /// Which log: a mark of another log says nothing about this one.
    pub identity: LogIdentity,
    pub seq: u64,
    pub hash: String,
}

impl Mark {
    pub fn new(service: &str, identity: LogIdentity, head: &Head) -> Mark {
        Mark {
            format: MARK_FORMAT,
            service: service.to_owned(),
            identity,
            seq: head.seq,
            hash: head.hash.clone(),
        }
    }

    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// Why a mark file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a high-water mark: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    /// Found when the mark was checked at open (a read or parse error
    /// above, or the event at its seq unreadable), said as it was found.
    #[error("{0}")]
    Unusable(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The mark in `dir`, if there is one (a log of a release before marks,
/// or a new log, has none).
pub fn read(dir: &Path) -> Result<Option<Mark>, MarkError> {
    let path = dir.join(MARK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MarkError::Read { path, source }),
    };
    let mark: Mark = serde_json::from_slice(&bytes).map_err(|e| MarkError::Unreadable {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if mark.format != MARK_FORMAT {
        return Err(MarkError::Unreadable {
            path,
            reason: format!("format {} is not {MARK_FORMAT}", mark.format),
        });
    }
    Ok(Some(mark))
}

/// Writes `mark` durably: temp file, fsync, rename over the old one, fsync
/// of the directory (so the rename itself survives a power cut). A crash
/// at any point leaves either the old mark or the new one, never a torn
/// file.
pub fn write(dir: &Path, mark: &Mark) -> Result<(), MarkError> {
    let tmp = dir.join(MARK_TMP);
    let path = dir.join(MARK_FILE);
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MarkError::Write { path, source }
    };
    // A mark is integers, strings and a uuid: it always serializes.
    let mut bytes = serde_json::to_vec(mark).unwrap_or_default();
    bytes.push(b'\n');
    let mut f = File::create(&tmp).map_err(write_err(&tmp))?;
    f.write_all(&bytes).map_err(write_err(&tmp))?;
    f.sync_all().map_err(write_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(write_err(&path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(write_err(dir))?;
    Ok(())
}

#[derive(Default)]
struct State {
    /// A commit moved the head since the mark was last written.
    dirty: bool,
    stop: bool,
}

/// The wake-up between the writer thread (which pokes after each group
/// commit: a lock and a notify, no IO) and the mark thread.
#[derive(Default)]
pub struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

impl Signal {
    /// The head moved: write the mark soon.
    pub fn poke(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if !s.dirty {
            s.dirty = true;
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        self.wake.notify_one();
    }
}

/// The thread that keeps `head.json` up to date.
pub struct Marker {
    signal: Arc<Signal>,
    handle: Option<JoinHandle<()>>,
}

impl Marker {
    /// Starts the mark thread of the log in `dir`; `written` is the head
    /// the mark on disk already holds.
    pub fn start(dir: PathBuf, shared: Arc<Shared>, signal: Arc<Signal>, written: Head) -> std::io::Result<Marker> {
        let thread_signal = signal.clone();
        let handle = std::thread::Builder::new()
            .name(format!("log-{}-mark", shared.service))
            .spawn(move || run(&dir, &shared, &thread_signal, written))?;
        Ok(Marker {
            signal,
            handle: Some(handle),
        })
    }

    /// Writes the mark one last time (at the final head) and stops. Call
    /// after the writer thread has stopped, so that head is final.
    pub fn stop(&mut self) {
        self.signal.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(dir: &Path, shared: &Shared, signal: &Signal, mut written: Head) {
    let mut last_write: Option<Instant> = None;
    loop {
        let stop = {
            let mut s = signal.state.lock().unwrap_or_else(PoisonError::into_inner);
            // At most one write per interval: wait out the rest of it
            // first (a stop cuts the wait short).
            if let Some(at) = last_write {
                let until = at + MARK_INTERVAL;
                while !s.stop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    s = signal
                        .wake
                        .wait_timeout(s, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            while !s.dirty && !s.stop {
                s = signal.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            s.dirty = false;
            s.stop
        };
        let head = shared
            .head
            .read()
            .map(|h| h.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        if head != written {
            let mark = Mark::new(shared.service.as_str(), shared.identity, &head);
            match write(dir, &mark) {
                Ok(()) => written = head,
                // A mark that cannot be written only lags; the appends go
                // on (they never waited for it), and the next poke retries.
                Err(e) => tracing::error!(service = %shared.service, error = %e, "high-water mark not written"),
            }
            last_write = Some(Instant::now());
        }
        if stop {
            return;
        }
    }
}
