//! Following another service's log to keep a view of it: a task runs a
//! [`Consumer`] from the start of the source log and hands every event, in
//! order, once, to the caller's fold; [`Followed::caught_up`] waits until
//! the fold has seen the source's current head, so a service that decides
//! with the view never decides on a view that lags behind what a caller has
//! already been told. Every folded event's clock stamp is handed to the
//! follower's own log clock ([`Followed::feed`]), so what the service
//! decides next is stamped after what it consumed.
//!
//! A follower whose view is kept ([`Keep`]) stores it, with the checkpoint
//! it was folded to and the newest stamp folded, in one write beside its
//! own log (`Log::keep_view`): once a burst of events is over, at least
//! every [`KEEP_EVENTS_MAX`] events or [`KEEP_INTERVAL`] while events keep
//! coming, and when it stops. It then starts from there ([`Resume`]) instead of refolding
//! the source from seq 1, so starting takes the same time whatever the
//! source's length. View and checkpoint are one value, so a crash can
//! never leave a view with an event applied twice or skipped.
//!
//! Must not: hold a rule of the service (the fold is the caller's), keep
//! going after a log regression, or fold another log than the one it
//! started with (it stops and says why).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::consumer::{Checkpoint, Consumer, ConsumerError, Hurry, READ_INTERVAL, start_of_log};
use crate::logs::fetch_head;
use concord_core::envelope::{EventEnvelope, Hlc, Service};
use concord_log::{HlcObserver, Log, LogIdentity};

/// How long a command waits for a view to reach the source's head.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long asking the source for its head may take.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Most events folded between two keepings of a view while catching up.
/// Rationale: bounds what a restart refolds; a keeping writes the whole
/// view, so keeping after every event would cost a view per event.
pub const KEEP_EVENTS_MAX: u64 = 10_000;
/// How long stopping waits for the view to be kept.
pub const STOP_KEEP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time between two keepings of a changed view.
pub const KEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How long without a new event before a changed view is kept: a burst is
/// kept once, just after it, not once per event.
pub const KEEP_QUIET_AFTER: Duration = Duration::from_millis(100);

/// Where a follower starts: the checkpoint its view was folded to and the
/// newest stamp it folded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resume {
    pub at: Checkpoint,
    pub newest: Option<Hlc>,
}

impl Resume {
    /// Nothing folded yet: from the first event of the source.
    pub fn from_start() -> Resume {
        Resume {
            at: start_of_log(),
            newest: None,
        }
    }
}

/// Writes a view with the `Resume` it stands at.
pub type Snapshot = Arc<dyn Fn(&Resume) -> Result<Vec<u8>, String> + Send + Sync>;

/// How a follower keeps its view: `snapshot` writes the view with the
/// `Resume` it stands at (it runs on a blocking thread while the follower
/// waits, so the view does not move under it); the bytes are kept under
/// `name` beside `log`.
pub struct Keep {
    pub log: Log,
    pub name: String,
    pub snapshot: Snapshot,
}

impl Keep {
    async fn keep(&self, resume: Resume) -> Result<(), String> {
        let log = self.log.clone();
        let name = self.name.clone();
        let snapshot = self.snapshot.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = snapshot(&resume)?;
            log.keep_view(&name, &bytes).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

#[derive(Debug, Clone, Default)]
struct Progress {
    seq: u64,
    /// The source log the fold was made from, once known.
    identity: Option<LogIdentity>,
    failed: Option<String>,
}

/// The stamps of the folded events, for the follower's own log clock: the
/// newest so far, until that clock is attached, then each as it comes.
#[derive(Default)]
struct Stamps {
    newest: Option<Hlc>,
    clock: Option<HlcObserver>,
}

impl Stamps {
    fn folded(stamps: &Mutex<Stamps>, hlc: Hlc) {
        let mut s = stamps.lock().unwrap_or_else(PoisonError::into_inner);
        s.newest = s.newest.max(Some(hlc));
        if let Some(clock) = &s.clock {
            clock.observe(hlc);
        }
    }
}

/// Why a view cannot be used to decide now: answered `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotCaughtUp(pub String);

/// How following one log goes, as a service reports it (`runtime::Health`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowHealth {
    pub source: Service,
    /// The last source seq folded.
    pub seq: u64,
    /// Live messages that did not match the source's log, dropped.
    pub rejected_live: u64,
    /// Why following stopped, if it did: the service answers
    /// `unavailable` from then on, until it is restarted.
    pub failed: Option<String>,
}

/// A handle that reads a [`Followed`]'s health from anywhere (the NATS
/// service's stats handler), cheaply and without waiting.
#[derive(Clone)]
pub struct FollowWatch {
    source: Service,
    progress: watch::Receiver<Progress>,
    rejected: Arc<AtomicU64>,
}

impl FollowWatch {
    pub fn health(&self) -> FollowHealth {
        let p = self.progress.borrow();
        FollowHealth {
            source: self.source,
            seq: p.seq,
            rejected_live: self.rejected.load(Ordering::Relaxed),
            failed: p.failed.clone(),
        }
    }
}

/// A view kept current from another service's log.
pub struct Followed {
    source: Service,
    client: async_nats::Client,
    progress: watch::Receiver<Progress>,
    /// Makes the consumer read at once for a command waiting on it.
    hurry: Hurry,
    rejected: Arc<AtomicU64>,
    stamps: Arc<Mutex<Stamps>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

enum Step {
    Event(Box<Result<EventEnvelope, ConsumerError>>),
    /// No event for `KEEP_QUIET_AFTER` with some folded since the last keeping.
    Quiet,
    Stop,
}

impl Followed {
    /// Starts following `source` after `from` (the start of the log, or
    /// where a kept view stands); `apply` folds each event and returns an
    /// error for one it cannot apply (following then stops: the view would
    /// be wrong). With `keep`, the view is kept as it grows (module doc).
    pub async fn start<F>(
        client: async_nats::Client,
        source: Service,
        from: Resume,
        mut apply: F,
        keep: Option<Keep>,
    ) -> Result<Followed, ConsumerError>
    where
        F: FnMut(&EventEnvelope) -> Result<(), String> + Send + 'static,
    {
        // The follower is the service whose log keeps the view.
        let follower = keep
            .as_ref()
            .map_or_else(|| "follower".to_owned(), |k| k.log.service().to_string());
        // Under a steady flow of the source's events the view need not
        // move with each burst: only a command about to decide waits on
        // it, and `caught_up` hurries the consumer.
        let mut consumer = Consumer::start(client.clone(), source, from.at.clone())
            .await?
            .named(&follower)
            .with_read_interval(READ_INTERVAL);
        let rejected = consumer.rejected_counter();
        let hurry = consumer.hurry();
        let (tx, rx) = watch::channel(Progress {
            seq: from.at.seq,
            identity: from.at.identity,
            failed: None,
        });
        let stamps = Arc::new(Mutex::new(Stamps {
            newest: from.newest,
            clock: None,
        }));
        let folded = stamps.clone();
        let (stop, mut stopping) = watch::channel(false);
        let task = tokio::spawn(async move {
            let fail = |why: String| {
                tracing::error!(%source, %why, "stopped following");
                tx.send_modify(|p| p.failed = Some(why));
            };
            let mut newest = from.newest;
            let mut unkept = 0u64;
            let mut kept_at = Instant::now();
            loop {
                // `Consumer::next` is cancel-safe: a quiet pause or a stop
                // in the middle of it loses no event.
                let next = tokio::select! {
                    e = consumer.next() => Step::Event(Box::new(e)),
                    () = tokio::time::sleep(KEEP_QUIET_AFTER), if unkept > 0 => Step::Quiet,
                    _ = stopping.wait_for(|s| *s) => Step::Stop,
                };
                let event = match next {
                    Step::Event(e) => match *e {
                        Ok(e) => e,
                        Err(e) => return fail(e.to_string()),
                    },
                    Step::Quiet | Step::Stop => {
                        if let Some(keep) = &keep
                            && unkept > 0
                        {
                            let resume = Resume {
                                at: consumer.position().clone(),
                                newest,
                            };
                            match keep.keep(resume).await {
                                Ok(()) => unkept = 0,
                                Err(why) => tracing::warn!(%source, %why, "cannot keep the view"),
                            }
                            kept_at = Instant::now();
                        }
                        if matches!(next, Step::Stop) {
                            return;
                        }
                        continue;
                    }
                };
                if let Err(why) = apply(&event) {
                    return fail(format!("{source} log seq {}: {why}", event.seq));
                }
                // Observed before the seq is published: a command that
                // waited for this seq is stamped after this event.
                Stamps::folded(&folded, event.hlc);
                newest = newest.max(Some(event.hlc));
                let identity = consumer.position().identity;
                tx.send_modify(|p| {
                    p.seq = event.seq;
                    p.identity = identity;
                });
                let Some(keep) = &keep else { continue };
                unkept += 1;
                if unkept >= KEEP_EVENTS_MAX || kept_at.elapsed() >= KEEP_INTERVAL {
                    let resume = Resume {
                        at: consumer.position().clone(),
                        newest,
                    };
                    match keep.keep(resume).await {
                        Ok(()) => unkept = 0,
                        // The view in memory is right; only a restart
                        // refolds more. Tried again soon.
                        Err(why) => tracing::warn!(%source, %why, "cannot keep the view"),
                    }
                    kept_at = Instant::now();
                }
            }
        });
        Ok(Followed {
            source,
            client,
            progress: rx,
            hurry,
            rejected,
            stamps,
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Hands every folded event's stamp, those folded already included, to
    /// `clock` (the follower's own log): what the follower appends after
    /// deciding with the view is stamped after what the view holds.
    pub fn feed(&self, clock: HlcObserver) {
        let mut s = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(newest) = s.newest {
            clock.observe(newest);
        }
        s.clock = Some(clock);
    }

    /// Stops following, keeping the view first (at most `STOP_KEEP_TIMEOUT`):
    /// the next start resumes exactly where this one ended.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(STOP_KEEP_TIMEOUT, task).await.is_err() {
                tracing::warn!(source = %self.source, "the view was not kept in time; the next start refolds more");
                abort.abort();
            }
        }
    }

    /// A handle on this follower's health.
    pub fn watch(&self) -> FollowWatch {
        FollowWatch {
            source: self.source,
            progress: self.progress.clone(),
            rejected: Arc::clone(&self.rejected),
        }
    }

    /// The last source seq folded.
    pub fn seq(&self) -> u64 {
        self.progress.borrow().seq
    }

    /// Waits until the fold has applied the source's current head.
    /// `unavailable` when the source cannot say where its head is (it is
    /// down, unreachable or slow: none of these means its log stands
    /// still, and a decision on a view that may lag is the one thing this
    /// wait exists to prevent), when following stopped, or when the fold
    /// lags too long.
    pub async fn caught_up(&self) -> Result<(), NotCaughtUp> {
        let unavailable = NotCaughtUp;
        let source = self.source;
        let head = match tokio::time::timeout(HEAD_TIMEOUT, fetch_head(&self.client, source)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                return Err(unavailable(format!(
                    "cannot learn the head of the {source} log ({e}); retry when the {source} service answers"
                )));
            }
            Err(_) => {
                return Err(unavailable(format!(
                    "the {source} log did not tell its head within {HEAD_TIMEOUT:?}; retry"
                )));
            }
        };
        // The head of another log says nothing of this view (the follower
        // task stops on it too, but perhaps not before this command).
        let known = self.progress.borrow().identity;
        if let Some(known) = known
            && head.identity != Some(known)
        {
            let seen = head.identity.map_or_else(|| "none".to_owned(), |i| i.to_string());
            return Err(unavailable(format!(
                "the {source} log answering now (identity {seen}) is not the one this view was folded from ({known}); \
                 one {source} instance must write one log"
            )));
        }
        let head = head.seq;
        if self.progress.borrow().seq < head {
            self.hurry.now();
        }
        let mut rx = self.progress.clone();
        match tokio::time::timeout(CATCH_UP_TIMEOUT, rx.wait_for(|p| p.seq >= head || p.failed.is_some())).await {
            Ok(Ok(p)) => match &p.failed {
                Some(why) => Err(unavailable(format!("cannot follow the {source} log: {why}"))),
                None => Ok(()),
            },
            Ok(Err(_)) => Err(unavailable(format!("stopped following the {source} log"))),
            Err(_) => Err(unavailable(format!(
                "has not caught up with the {source} log (seq {head}) yet; retry"
            ))),
        }
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
    }
}
