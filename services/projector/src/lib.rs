//! The projector: what each country may see, built from the four writing
//! services' logs (docs/design.md, Visibility), answered on
//! `concord.qry.projector.<view|list|feed>`.
//!
//! Owns: the pure projection of typed events into per-country items and
//! feed reach ([`projection`]), the causal order in which events of
//! several logs are applied ([`merge`]), its own fjall database of views,
//! feed and checkpoints ([`store`]), and who may read which view ([`api`]).
//!
//! Must not: decide who sees what (each contract's `audience` does, with
//! the facts its own service decides with), write to another service's
//! log, or send a command.

pub mod api;
pub mod merge;
pub mod projection;
pub mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use concord_bus::consumer::{Checkpoint, Consumer};
use concord_core::decider::Rejection;
use concord_core::reply::{ErrorCode, Reply};
use concord_core::{EventEnvelope, Service, subjects};
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::merge::{Merge, Next};
use crate::projection::{Projection, ProjectionError};
use crate::store::{FeedEntry, Store, StoreError};

/// The name its queries are asked under (`concord.qry.projector.*`) and
/// its queue group.
pub const NAME: &str = concord_bus::permissions::PROJECTOR;
/// Events applied before they are written, at most (one batch).
pub const BATCH_MAX: usize = 1000;
/// How long to wait before asking a log's head again after it failed.
const RETRY: Duration = Duration::from_millis(200);
/// How long a read that names positions (`wait_for`) waits for them to be
/// applied before it is answered `unavailable` (then retried).
pub const WAIT_FOR_MAX: Duration = Duration::from_secs(2);
/// Queries answered at once; more wait for a slot.
const QUERIES_IN_FLIGHT_MAX: usize = 256;

/// The last seq applied of each log.
type Applied = BTreeMap<Service, u64>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("following the {service} log: {why}")]
    Source { service: Service, why: String },
    #[error("NATS: {0}")]
    Nats(String),
    #[error("the projector's task: {0}")]
    Task(String),
}

/// The projector's data directory under a data dir.
pub fn dir_in(data: &Path) -> PathBuf {
    data.join(NAME)
}

/// A running projector: stop it with [`Projector::stop`].
pub struct Projector {
    stop: watch::Sender<bool>,
    /// `None` once it has been awaited to its end.
    apply: Option<JoinHandle<Result<(), Error>>>,
    answer: JoinHandle<()>,
    readers: Vec<JoinHandle<()>>,
    projection: Arc<RwLock<Projection>>,
}

enum Read {
    Event(Box<EventEnvelope>, u64, Checkpoint),
    Failed(Service, String),
}

/// One stamp for reads and head fetches, to order them (see [`merge`]).
static TICK: AtomicU64 = AtomicU64::new(1);

fn tick() -> u64 {
    TICK.fetch_add(1, Ordering::SeqCst) + 1
}

impl Projector {
    /// Opens the store in `dir`, follows the four logs from where it
    /// stood, and answers queries.
    pub async fn bind(dir: &Path, client: async_nats::Client) -> Result<Projector, Error> {
        let dir = dir.to_owned();
        let (opened, _) = tokio::task::spawn_blocking(move || Store::open_or_set_aside(&dir))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let store = Arc::new(opened.store);
        let projection = Arc::new(RwLock::new(opened.projection));
        let checkpoints = opened.checkpoints;
        let (stop, stopped) = watch::channel(false);
        let (applied_tx, applied_rx) =
            watch::channel::<Applied>(checkpoints.iter().map(|(s, c)| (*s, c.seq)).collect());

        let (tx, rx) = mpsc::channel(BATCH_MAX * 4);
        let mut readers = Vec::new();
        for service in Service::ALL {
            let from = checkpoints
                .get(&service)
                .cloned()
                .unwrap_or_else(concord_bus::consumer::start_of_log);
            let mut consumer = Consumer::start(client.clone(), service, from)
                .await
                .map_err(|e| Error::Source {
                    service,
                    why: e.to_string(),
                })?;
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                loop {
                    match consumer.next().await {
                        Ok(e) => {
                            let at = tick();
                            let position = consumer.position().clone();
                            if tx.send(Read::Event(Box::new(e), at, position)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Read::Failed(service, e.to_string())).await;
                            return;
                        }
                    }
                }
            }));
        }
        let subscriber = client
            .queue_subscribe(subjects::queries_of(NAME), subjects::queue_group(NAME))
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        client.flush().await.map_err(|e| Error::Nats(e.to_string()))?;
        let answer = tokio::spawn(answer(
            client.clone(),
            subscriber,
            Arc::clone(&projection),
            Arc::clone(&store),
            applied_rx,
            stopped.clone(),
        ));
        let apply = tokio::spawn(apply(
            client,
            rx,
            Arc::clone(&projection),
            store,
            checkpoints,
            applied_tx,
            stopped,
        ));
        Ok(Projector {
            stop,
            apply: Some(apply),
            answer,
            readers,
            projection,
        })
    }

    /// The feed position of the last event applied.
    pub fn position(&self) -> u64 {
        self.projection.read().map(|p| p.position()).unwrap_or(0)
    }

    /// Resolves when the projector stops on its own (an error); pending
    /// forever once it has resolved.
    pub async fn stopped(&mut self) -> Result<(), Error> {
        let Some(apply) = self.apply.as_mut() else {
            return std::future::pending().await;
        };
        let r = apply.await;
        self.apply = None;
        r.map_err(|e| Error::Task(e.to_string()))?
    }

    /// Stops following and answering; what was applied is kept.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for r in &self.readers {
            r.abort();
        }
        self.answer.abort();
        match self.apply {
            Some(apply) => apply.await.map_err(|e| Error::Task(e.to_string()))?,
            None => Ok(()),
        }
    }
}

/// Applies events in causal order and writes each burst in one batch.
async fn apply(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<Read>,
    projection: Arc<RwLock<Projection>>,
    store: Arc<Store>,
    mut checkpoints: BTreeMap<Service, Checkpoint>,
    applied_tx: watch::Sender<Applied>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut merge = Merge::new(|s| checkpoints.get(&s).map_or(0, |c| c.seq));
    let mut positions: BTreeMap<(Service, u64), Checkpoint> = BTreeMap::new();
    let take = |read: Read, merge: &mut Merge, positions: &mut BTreeMap<(Service, u64), Checkpoint>| match read {
        Read::Event(e, at, position) => {
            positions.insert((e.service, e.seq), position);
            let service = e.service;
            merge.read(*e, at).map_err(|why| Error::Source { service, why })
        }
        Read::Failed(service, why) => Err(Error::Source { service, why }),
    };
    loop {
        while let Ok(read) = rx.try_recv() {
            take(read, &mut merge, &mut positions)?;
        }
        let mut applied: Vec<(FeedEntry, Vec<(Service, String)>)> = Vec::new();
        let mut need_head = None;
        {
            let mut p = projection.write().map_err(|e| Error::Task(e.to_string()))?;
            while applied.len() < BATCH_MAX {
                match merge.step() {
                    Next::Apply(e) => {
                        let a = p.apply(&e)?;
                        if let Some(c) = positions.remove(&(e.service, e.seq)) {
                            checkpoints.insert(e.service, c);
                        }
                        applied.push((
                            FeedEntry {
                                position: a.position,
                                reach: a.reach,
                                event: *e,
                            },
                            a.changed,
                        ));
                    }
                    Next::Head(s) => {
                        need_head = Some(s);
                        break;
                    }
                    Next::Wait => break,
                }
            }
        }
        if !applied.is_empty() {
            let (store, projection, cps) = (Arc::clone(&store), Arc::clone(&projection), checkpoints.clone());
            tokio::task::spawn_blocking(move || {
                let p = projection.read().map_err(|e| Error::Task(e.to_string()))?;
                store.commit(&p, &applied, &cps).map_err(Error::from)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            // Only now, durable, does a waiting read see it.
            applied_tx.send_replace(checkpoints.iter().map(|(s, c)| (*s, c.seq)).collect());
            continue;
        }
        if let Some(service) = need_head {
            let at = tick();
            match concord_bus::logs::fetch_head(&client, service).await {
                Ok(head) => merge.head(service, at, head.seq),
                Err(e) => {
                    tracing::warn!(%service, error = %e, "the projector cannot ask the log's head yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY) => {}
                        _ = stopped.changed() => return Ok(()),
                    }
                }
            }
            continue;
        }
        tokio::select! {
            read = rx.recv() => match read {
                Some(read) => take(read, &mut merge, &mut positions)?,
                None => return Ok(()),
            },
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Answers `concord.qry.projector.<view|list|feed>`, each request in its
/// own task (one that waits for a position holds no other).
async fn answer(
    client: async_nats::Client,
    mut subscriber: async_nats::Subscriber,
    projection: Arc<RwLock<Projection>>,
    store: Arc<Store>,
    applied: watch::Receiver<Applied>,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(QUERIES_IN_FLIGHT_MAX));
    loop {
        let msg = tokio::select! {
            msg = subscriber.next() => match msg { Some(m) => m, None => return },
            _ = stopped.changed() => return,
        };
        let Some(reply_to) = msg.reply.clone() else { continue };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let (client, projection, store, mut applied) = (
            client.clone(),
            Arc::clone(&projection),
            Arc::clone(&store),
            applied.clone(),
        );
        tokio::spawn(async move {
            let name = msg.subject.as_str().rsplit('.').next().unwrap_or("").to_owned();
            // Readiness (the gateway's /readyz): it answers, and where it
            // stands in each log.
            let health = (name == "health").then(|| Reply::ok(json!({"applied": *applied.borrow()})));
            let reply = match health {
                Some(reply) => reply,
                None => match wait_for(&msg.payload, &mut applied).await {
                    Err(reply) => reply,
                    Ok(()) => tokio::task::spawn_blocking(move || respond(&name, &msg.payload, &projection, &store))
                        .await
                        .unwrap_or_else(|e| Reply::error(ErrorCode::Internal, e.to_string())),
                },
            };
            if let Err(e) = client.publish(reply_to, reply.to_bytes().into()).await {
                tracing::warn!(error = %e, "the projector could not answer a query");
            }
            drop(slot);
        });
    }
}

/// Waits until the positions the request names in `wait_for` are applied
/// (and written), at most [`WAIT_FOR_MAX`].
async fn wait_for(payload: &[u8], applied: &mut watch::Receiver<Applied>) -> Result<(), Reply> {
    #[derive(serde::Deserialize)]
    struct Positions {
        #[serde(default)]
        wait_for: Applied,
    }
    // A request that does not parse is refused precisely by `respond`.
    let Ok(v) = concord_core::json::parse(payload) else {
        return Ok(());
    };
    let Ok(Positions { wait_for }) = serde_json::from_value::<Positions>(v) else {
        return Ok(());
    };
    if wait_for.is_empty() {
        return Ok(());
    }
    let done = |now: &Applied| wait_for.iter().all(|(s, seq)| now.get(s).is_some_and(|at| at >= seq));
    let reached = matches!(
        tokio::time::timeout(WAIT_FOR_MAX, applied.wait_for(done)).await,
        Ok(Ok(_))
    );
    if reached {
        Ok(())
    } else {
        {
            let now = applied.borrow().clone();
            let behind: Vec<String> = wait_for
                .iter()
                .filter(|(s, seq)| now.get(s).is_none_or(|at| at < seq))
                .map(|(s, seq)| format!("{s}:{seq} (it stands at {s}:{})", now.get(s).copied().unwrap_or(0)))
                .collect();
            Err(Reply::error(
                ErrorCode::Unavailable,
                format!("the projector has not applied {} yet; retry", behind.join(", ")),
            ))
        }
    }
}

fn refused(r: &Rejection) -> Reply {
    Reply::error(r.code(), r.to_string())
}

/// `payload` read strictly (`core::json`) as the request of query `what`.
fn request<T: serde::de::DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T, Reply> {
    concord_core::json::from_slice(payload).map_err(|e| Reply::error(ErrorCode::Invalid, format!("{what} query: {e}")))
}

/// Answers `req` from the projection as it stands.
fn from_projection<T>(
    projection: &RwLock<Projection>,
    req: &T,
    answer: fn(&Projection, &T) -> Result<serde_json::Value, Rejection>,
) -> Result<serde_json::Value, Reply> {
    let p = projection
        .read()
        .map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()))?;
    answer(&p, req).map_err(|r| refused(&r))
}

fn respond(name: &str, payload: &[u8], projection: &RwLock<Projection>, store: &Store) -> Reply {
    let answer = match name {
        "view" => request(name, payload).and_then(|req| from_projection(projection, &req, api::view)),
        "list" => request(name, payload).and_then(|req| from_projection(projection, &req, api::list)),
        "search" => request(name, payload).and_then(|req| from_projection(projection, &req, api::search)),
        "feed" => request::<api::FeedRequest>(name, payload).and_then(|req| match api::feed(store, &req) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(r)) => Err(refused(&r)),
            Err(e) => Err(Reply::error(ErrorCode::Unavailable, e.to_string())),
        }),
        other => Err(Reply::error(
            ErrorCode::NotFound,
            format!("the projector has no query {other:?}"),
        )),
    };
    match answer {
        Ok(v) => Reply::ok(v),
        Err(r) => r,
    }
}
