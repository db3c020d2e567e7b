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
pub use concord_log::WallClock;
use concord_log::{Log, LogError};

use crate::consumer::ConsumerError;
use crate::follow::Followed;
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

/// Opens `A`'s log and binds its subjects; they answer when this returns.
pub async fn bind<A: Aggregate>(cfg: &Config, client: async_nats::Client, host: Host<A>) -> Result<Bound<A>, Error> {
    let log = open_log(cfg, A::SERVICE).await?;
    Ok(runtime::bind(client, log, host).await?)
}

/// Follows producer `P`'s log from its start, folding each of its events,
/// typed by `P`'s own contract, into `facts` with `apply`.
pub async fn follow<P, F, Apply>(
    client: async_nats::Client,
    facts: Arc<RwLock<F>>,
    mut apply: Apply,
) -> Result<Followed, ConsumerError>
where
    P: Aggregate,
    F: Send + Sync + 'static,
    Apply: FnMut(&mut F, &EventEnvelope, P::Event) -> Result<(), String> + Send + 'static,
{
    Followed::start(client, P::SERVICE, move |envelope| {
        let event = read_event::<P>(envelope)?;
        let mut facts = facts
            .write()
            .map_err(|_| format!("the facts kept from the {} log are poisoned", P::SERVICE))?;
        apply(&mut facts, envelope, event)
    })
    .await
}
