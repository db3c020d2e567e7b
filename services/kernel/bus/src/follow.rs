//! Following another service's log to keep a view of it: a task runs a
//! [`Consumer`] from the start of the source log and hands every event, in
//! order, once, to the caller's fold; [`Followed::caught_up`] waits until
//! the fold has seen the source's current head, so a service that decides
//! with the view never decides on a view that lags behind what a caller has
//! already been told. Every folded event's clock stamp is handed to the
//! follower's own log clock ([`Followed::feed`]), so what the service
//! decides next is stamped after what it consumed.
//!
//! Must not: hold a rule of the service (the fold is the caller's), keep
//! going after a log regression, or fold another log than the one it
//! started with (it stops and says why).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::consumer::{Consumer, ConsumerError, start_of_log};
use crate::logs::fetch_head;
use concord_core::envelope::{EventEnvelope, Hlc, Service};
use concord_log::{HlcObserver, LogIdentity};

/// How long a command waits for a view to reach the source's head.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long asking the source for its head may take.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

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

/// A view kept current from another service's log.
pub struct Followed {
    source: Service,
    client: async_nats::Client,
    progress: watch::Receiver<Progress>,
    stamps: Arc<Mutex<Stamps>>,
    task: tokio::task::JoinHandle<()>,
}

impl Followed {
    /// Starts following `source` from its first event; `apply` folds each
    /// event and returns an error for one it cannot apply (following then
    /// stops: the view would be wrong).
    pub async fn start<F>(client: async_nats::Client, source: Service, mut apply: F) -> Result<Followed, ConsumerError>
    where
        F: FnMut(&EventEnvelope) -> Result<(), String> + Send + 'static,
    {
        let mut consumer = Consumer::start(client.clone(), source, start_of_log()).await?;
        let (tx, rx) = watch::channel(Progress::default());
        let stamps = Arc::new(Mutex::new(Stamps::default()));
        let folded = stamps.clone();
        let task = tokio::spawn(async move {
            let fail = |why: String| {
                tracing::error!(%source, %why, "stopped following");
                tx.send_modify(|p| p.failed = Some(why));
            };
            loop {
                let event = match consumer.next().await {
                    Ok(e) => e,
                    Err(e) => return fail(e.to_string()),
                };
                if let Err(why) = apply(&event) {
                    return fail(format!("{source} log seq {}: {why}", event.seq));
                }
                // Observed before the seq is published: a command that
                // waited for this seq is stamped after this event.
                Stamps::folded(&folded, event.hlc);
                let identity = consumer.position().identity;
                tx.send_modify(|p| {
                    p.seq = event.seq;
                    p.identity = identity;
                });
            }
        });
        Ok(Followed {
            source,
            client,
            progress: rx,
            stamps,
            task,
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
        self.task.abort();
    }
}
