//! The generic service adapter: what starting any writing service takes —
//! where its log lives, opening it off the async threads, binding its
//! contract on the runtime, following the logs its facts come from — so a
//! service's crate keeps only what is special about it (which logs it
//! follows, how it reacts).
//!
//! Must not: hold a rule of any service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use concord_core::decider::Aggregate;
use concord_core::envelope::{EventEnvelope, Service};
use concord_log::LogError;
pub use concord_log::{Log, WallClock};

use crate::consumer::ConsumerError;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::follow::{Followed, Keep, Resume};
use crate::runtime::{self, Bound, Host, RuntimeError, read_event};

/// Where a writing service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service's own log directory (`<data>/<service>`).
    pub log_dir: PathBuf,
    /// Where its log reads the time: the system clock (tests shift it to
    /// play a service whose clock runs off).
    pub clock: WallClock,
}

impl Config {
    /// The service's log in `log_dir`, on the system clock.
    pub fn new(log_dir: impl Into<PathBuf>) -> Config {
        Config {
            log_dir: log_dir.into(),
            clock: WallClock::system(),
        }
    }

    /// The service's log in the data directory `data`.
    pub fn in_data_dir(data: &Path, service: Service) -> Config {
        Config::new(data.join(service.as_str()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error("opening the log was interrupted: {0}")]
    Interrupted(String),
    #[error("{0}")]
    Poisoned(String),
}

/// Opens (creating if needed) `service`'s log on a blocking thread: fjall's
/// recovery reads the journal, which must not stall the async runtime.
pub async fn open_log(cfg: &Config, service: Service) -> Result<Log, Error> {
    let dir = cfg.log_dir.clone();
    let clock = cfg.clock;
    tokio::task::spawn_blocking(move || Log::open_with_clock(&dir, service, clock))
        .await
        .map_err(|e| Error::Interrupted(e.to_string()))?
        .map_err(Error::from)
}

/// Opens `A`'s log (see `open_log`).
pub async fn open<A: Aggregate>(cfg: &Config) -> Result<Log, Error> {
    open_log(cfg, A::SERVICE).await
}

/// Opens `A`'s log and binds its subjects; they answer when this returns.
pub async fn bind<A: Aggregate>(cfg: &Config, client: async_nats::Client, host: Host<A>) -> Result<Bound<A>, Error> {
    let log = open::<A>(cfg).await?;
    bind_log(log, client, host).await
}

/// Binds `A`'s subjects on its opened `log` (a service that follows other
/// logs opens its own first, to keep its views beside it).
pub async fn bind_log<A: Aggregate>(log: Log, client: async_nats::Client, host: Host<A>) -> Result<Bound<A>, Error> {
    Ok(runtime::bind(client, log, host).await?)
}

/// The part `V` of a service's facts `F` that one follower folds and keeps,
/// under `name` (unique among the service's followers).
pub struct Part<F, V> {
    pub name: &'static str,
    pub get: fn(&F) -> &V,
    pub get_mut: fn(&mut F) -> &mut V,
}

impl<F> Part<F, F> {
    /// All of the facts, folded by one follower.
    pub fn whole(name: &'static str) -> Part<F, F> {
        Part {
            name,
            get: |f| f,
            get_mut: |f| f,
        }
    }
}

/// A view as kept beside the log: which release kept it, where it stands.
#[derive(Serialize)]
struct KeptRef<'a, V> {
    release: &'a str,
    resume: &'a Resume,
    view: &'a V,
}

#[derive(Deserialize)]
struct Kept<V> {
    release: String,
    resume: Resume,
    view: V,
}

/// The release that keeps views: a view kept by another one is refolded
/// from its source, since a fold's shape or meaning may have changed.
const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The view kept under `name`, if one of this release is there and reads.
async fn kept<V: DeserializeOwned + Send + 'static>(log: &Log, name: &str) -> Result<Option<Kept<V>>, Error> {
    let l = log.clone();
    let n = name.to_owned();
    let bytes = tokio::task::spawn_blocking(move || l.kept_view(&n))
        .await
        .map_err(|e| Error::Interrupted(e.to_string()))??;
    let Some(bytes) = bytes else { return Ok(None) };
    match serde_json::from_slice::<Kept<V>>(&bytes) {
        Ok(k) if k.release == RELEASE => Ok(Some(k)),
        Ok(k) => {
            tracing::info!(view = name, kept_by = %k.release, "a view kept by another release is refolded");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(view = name, error = %e, "the kept view does not read; it is refolded");
            Ok(None)
        }
    }
}

/// Follows producer `P`'s log, folding each of its events, typed by `P`'s
/// own contract, into `part` of `facts` with `apply`; the part is kept
/// beside `log` and folding resumes where it was kept.
pub async fn follow<P, F, V, Apply>(
    client: async_nats::Client,
    log: &Log,
    facts: Arc<RwLock<F>>,
    part: Part<F, V>,
    mut apply: Apply,
) -> Result<Followed, Error>
where
    P: Aggregate,
    F: Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Send + Sync + 'static,
    Apply: FnMut(&mut V, &EventEnvelope, P::Event) -> Result<(), String> + Send + 'static,
{
    let name = format!("{}:{}", P::SERVICE, part.name);
    let from = match kept::<V>(log, &name).await? {
        Some(k) => {
            let mut f = facts.write().map_err(|_| Error::Poisoned(poisoned(P::SERVICE)))?;
            *(part.get_mut)(&mut f) = k.view;
            tracing::info!(view = %name, seq = k.resume.at.seq, "resuming a kept view");
            k.resume
        }
        None => Resume::from_start(),
    };
    let kept_facts = facts.clone();
    let get = part.get;
    let keep = Keep {
        log: log.clone(),
        name,
        snapshot: Arc::new(move |resume: &Resume| {
            let f = kept_facts.read().map_err(|_| poisoned(P::SERVICE))?;
            serde_json::to_vec(&KeptRef {
                release: RELEASE,
                resume,
                view: get(&f),
            })
            .map_err(|e| e.to_string())
        }),
    };
    let get_mut = part.get_mut;
    let followed = Followed::start(
        client,
        P::SERVICE,
        from,
        move |envelope| {
            let event = read_event::<P>(envelope)?;
            let mut f = facts.write().map_err(|_| poisoned(P::SERVICE))?;
            apply(get_mut(&mut f), envelope, event)
        },
        Some(keep),
    )
    .await?;
    Ok(followed)
}

fn poisoned(source: Service) -> String {
    format!("the facts kept from the {source} log are poisoned")
}

/// First wait before reopening a poisoned log, doubled up to
/// `REOPEN_BACKOFF_MAX` while it cannot be reopened (the disk still
/// failing, fjall's lock not yet released by the stopping service).
pub const REOPEN_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
pub const REOPEN_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs `bound` until `stop` turns true. When its log is poisoned (a
/// failed fsync, a full disk: nothing acknowledged after it, every append
/// answered `unavailable`), the service stops cleanly and is bound again
/// with `rebind`, which opens the log from disk (fjall's recovery, the
/// high-water mark's check), backing off while that fails; it answers
/// again once the disk does. Any other error ends it.
pub async fn supervise<A, F, Fut>(
    bound: Bound<A>,
    mut rebind: F,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), Error>
where
    A: Aggregate,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Bound<A>, Error>>,
{
    let mut bound = bound;
    loop {
        let mut until = stop.clone();
        match bound
            .run(async move {
                let _ = until.wait_for(|s| *s).await;
            })
            .await
        {
            Ok(()) => return Ok(()),
            Err(RuntimeError::LogPoisoned(why)) => {
                tracing::warn!(service = %A::SERVICE, %why, "reopening the log from disk");
            }
            Err(e) => return Err(e.into()),
        }
        let mut wait = REOPEN_BACKOFF_MIN;
        bound = loop {
            let mut until = stop.clone();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = until.wait_for(|s| *s) => return Ok(()),
            }
            match rebind().await {
                Ok(b) => break b,
                Err(e) => {
                    tracing::warn!(service = %A::SERVICE, error = %e, retry_in = ?wait, "the log does not reopen yet");
                    wait = (wait * 2).min(REOPEN_BACKOFF_MAX);
                }
            }
        };
        tracing::info!(service = %A::SERVICE, "log reopened from disk; serving again");
    }
}
