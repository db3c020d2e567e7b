//! The projector: what each country may see, built from the four writing
//! services' logs (docs/design.md, Visibility), answered on
//! `concord.qry.projector.<view|list|feed|search>`, with each country's
//! feed published on `concord.feed.<CC>.<service>.<type>` ([`feed`]).
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
pub mod feed;
pub mod generation;
pub mod merge;
/// The pure projection lives with the contracts (the audit folds with it
/// too); re-exported where the projector's code has always named it.
pub use concord_contracts::projection;
pub mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use concord_bus::consumer::{Checkpoint, Consumer, Hurry, READ_INTERVAL, hurry_behind};
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
/// Batches are written at most this often: events that arrive within it
/// of the last write join the next batch. Rationale: each batch has a
/// fixed cost (the checkpoints, the membership of each operation it
/// changed, a journal write, a blocking-pool hop), shared by every event
/// in it under a steady flow; an event after a quiet spell is written at
/// once.
const BATCH_INTERVAL_MIN: Duration = Duration::from_millis(5);
/// How long to wait before asking a log's head again after it failed.
const RETRY: Duration = Duration::from_millis(200);
/// How long a read that names positions (`wait_for`) waits for them to be
/// applied before it is answered `unavailable` (then retried).
pub const WAIT_FOR_MAX: Duration = Duration::from_secs(2);
/// Queries reading the store at once; more wait for a slot.
const QUERIES_IN_FLIGHT_MAX: usize = 256;
/// Requests held at once, waiting or reading (a feed waiting for its next
/// entry holds one); more wait to be read off the subscription.
const WAITING_MAX: usize = 8192;

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
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    answer: JoinHandle<()>,
    failed: watch::Receiver<Option<String>>,
}

enum Read {
    /// An event, when it was read, the consumer's position after it, and
    /// the `traceparent` that announced it.
    Event(Box<EventEnvelope>, u64, Checkpoint, Option<String>),
    Failed(Service, String),
}

/// One stamp for reads and head fetches, to order them (see [`merge`]).
static TICK: AtomicU64 = AtomicU64::new(1);

fn tick() -> u64 {
    TICK.fetch_add(1, Ordering::SeqCst) + 1
}

/// What a read uses: one generation's store and projection, and where it
/// stands in each log.
#[derive(Clone)]
struct Views {
    store: Arc<Store>,
    projection: Arc<RwLock<Projection>>,
    applied: watch::Receiver<Applied>,
    /// Each log's consumer, made to read at once for a read waiting on it.
    hurry: Arc<BTreeMap<Service, Hurry>>,
}

/// One generation of the views being kept: readers of the four logs and
/// the task applying them.
struct Engine {
    stop: watch::Sender<bool>,
    apply: JoinHandle<Result<(), Error>>,
    readers: Vec<JoinHandle<()>>,
    views: Views,
    /// Whether it serves (publishes the feeds, reports its failure as the
    /// projector's); a rebuild's engine does not until it is switched to.
    live: Arc<std::sync::atomic::AtomicBool>,
}

impl Engine {
    /// Opens (or sets aside and starts afresh) the store in `dir` and
    /// follows the four logs from where it stood.
    async fn start(
        client: &async_nats::Client,
        dir: PathBuf,
        live: bool,
        failed: watch::Sender<Option<String>>,
    ) -> Result<Engine, Error> {
        let (opened, publisher) = tokio::task::spawn_blocking(move || {
            let (opened, _) = Store::open_or_set_aside(&dir)?;
            let publisher = feed::Publisher::resume(&opened.store)?;
            Ok::<_, StoreError>((opened, publisher))
        })
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
        let mut hurry = BTreeMap::new();
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
                })?
                .named(concord_bus::permissions::PROJECTOR)
                // Views move once a batch (`BATCH_INTERVAL_MIN`) anyway; a
                // read naming positions hurries the consumers it waits on.
                .with_read_interval(READ_INTERVAL);
            hurry.insert(service, consumer.hurry());
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                loop {
                    match consumer.next().await {
                        Ok(e) => {
                            let at = tick();
                            let position = consumer.position().clone();
                            let trace = consumer.traceparent().map(str::to_owned);
                            if tx.send(Read::Event(Box::new(e), at, position, trace)).await.is_err() {
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
        let live = Arc::new(std::sync::atomic::AtomicBool::new(live));
        let sink = Sink {
            client: client.clone(),
            projection: Arc::clone(&projection),
            store: Arc::clone(&store),
            publisher,
            live: Arc::clone(&live),
            applied_tx,
        };
        let serving = Arc::clone(&live);
        let syncing = Arc::clone(&store);
        let mut sync_stopped = stopped.clone();
        tokio::spawn(async move {
            // The batches are committed to the OS's buffers; this makes
            // them durable a little later, off the path to the readers.
            let mut at = syncing.position_committed();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(store::SYNC_EVERY) => {}
                    _ = sync_stopped.changed() => {}
                }
                let now = syncing.position_committed();
                if now != at {
                    let s = Arc::clone(&syncing);
                    match tokio::task::spawn_blocking(move || s.sync()).await {
                        Ok(Ok(())) => at = now,
                        Ok(Err(e)) => tracing::error!(error = %e, "the projector's store cannot be fsynced"),
                        Err(e) => tracing::error!(error = %e, "the projector's fsync task"),
                    }
                }
                if *sync_stopped.borrow() {
                    return;
                }
            }
        });
        let apply = tokio::spawn(async move {
            let r = apply(sink, rx, checkpoints, stopped).await;
            if let Err(e) = &r
                && serving.load(Ordering::SeqCst)
            {
                failed.send_replace(Some(e.to_string()));
            }
            r
        });
        Ok(Engine {
            stop,
            apply,
            readers,
            views: Views {
                store,
                projection,
                applied: applied_rx,
                hurry: Arc::new(hurry),
            },
            live,
        })
    }

    /// Stops following; what was applied is kept.
    async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for r in &self.readers {
            r.abort();
        }
        let applied = self.apply.await.map_err(|e| Error::Task(e.to_string()))?;
        let store = self.views.store;
        tokio::task::spawn_blocking(move || store.sync())
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        applied
    }
}

/// Where a rebuild stands (`concord.ctl.projector.progress`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Progress {
    pub running: bool,
    /// The generation being built (or last built).
    pub generation: u64,
    /// Events applied so far.
    pub done: u64,
    /// Events in the logs when it started.
    pub total: u64,
    pub elapsed_ms: u64,
    /// It switched to the rebuilt views.
    pub finished: bool,
    pub error: Option<String>,
}

/// What the projector's tasks share.
struct Shared {
    client: async_nats::Client,
    dir: PathBuf,
    /// The generation that serves.
    generation: AtomicU64,
    views: RwLock<Views>,
    /// The live engine (`None` once stopped).
    engine: tokio::sync::Mutex<Option<Engine>>,
    progress: std::sync::Mutex<Progress>,
    failed: watch::Sender<Option<String>>,
    stopping: watch::Receiver<bool>,
}

impl Shared {
    fn views(&self) -> Option<Views> {
        self.views.read().ok().map(|v| v.clone())
    }
}

/// Has `a` applied at least what `b` has, in every log?
fn caught_up(a: &Applied, b: &Applied) -> bool {
    b.iter().all(|(s, seq)| a.get(s).copied().unwrap_or(0) >= *seq)
}

impl Projector {
    /// Opens the views in `dir` (the generation that serves), follows the
    /// four logs from where they stood, and answers queries.
    pub async fn bind(dir: &Path, client: async_nats::Client) -> Result<Projector, Error> {
        let root = dir.to_owned();
        let generation = tokio::task::spawn_blocking(move || generation::current(&root))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let (failed_tx, failed) = watch::channel(None);
        let engine = Engine::start(&client, generation::path(dir, generation), true, failed_tx.clone()).await?;
        let (stop, stopping) = watch::channel(false);
        let queries = client
            .queue_subscribe(subjects::queries_of(NAME), subjects::queue_group(NAME))
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let feed_reads = client
            .queue_subscribe(subjects::feed_read(None), subjects::queue_group(NAME))
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let controls = client
            .queue_subscribe(subjects::control(NAME, "*"), subjects::queue_group(NAME))
            .await
            .map_err(|e| Error::Nats(e.to_string()))?;
        let subscriber = futures::stream::select_all([queries, feed_reads, controls]);
        client.flush().await.map_err(|e| Error::Nats(e.to_string()))?;
        let shared = Arc::new(Shared {
            client,
            dir: dir.to_owned(),
            generation: AtomicU64::new(generation),
            views: RwLock::new(engine.views.clone()),
            engine: tokio::sync::Mutex::new(Some(engine)),
            progress: std::sync::Mutex::new(Progress {
                generation,
                ..Progress::default()
            }),
            failed: failed_tx,
            stopping,
        });
        let answer = tokio::spawn(answer(Arc::clone(&shared), subscriber));
        Ok(Projector {
            shared,
            stop,
            answer,
            failed,
        })
    }

    /// The feed position of the last event applied.
    pub fn position(&self) -> u64 {
        self.shared
            .views()
            .and_then(|v| v.projection.read().ok().map(|p| p.position()))
            .unwrap_or(0)
    }

    /// Resolves when the projector stops on its own (an error); pending
    /// forever once it has resolved.
    pub async fn stopped(&mut self) -> Result<(), Error> {
        let said: Option<String> = self.failed.wait_for(Option::is_some).await.ok().and_then(|w| w.clone());
        let Some(why) = said else {
            return std::future::pending().await;
        };
        // Once said, not again.
        self.failed = watch::channel(None).1;
        Err(Error::Task(why))
    }

    /// Stops following and answering (a rebuild too); what was applied is
    /// kept.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        self.answer.abort();
        let engine = self.shared.engine.lock().await.take();
        match engine {
            Some(engine) => engine.stop().await,
            None => Ok(()),
        }
    }
}

/// Builds the next generation of the views from the logs beside the live
/// one (which keeps serving), then switches to it: the live engine stops,
/// the rebuilt one applies what the live one had, becomes live, and the
/// old generation is removed.
async fn rebuild(shared: Arc<Shared>) -> Result<(), Error> {
    let mut total = 0;
    for service in Service::ALL {
        total += concord_bus::logs::fetch_head(&shared.client, service)
            .await
            .map_err(|e| Error::Source {
                service,
                why: e.to_string(),
            })?
            .seq;
    }
    let next = shared.generation.load(Ordering::SeqCst) + 1;
    let dir = generation::path(&shared.dir, next);
    let fresh = dir.clone();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&fresh) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Fjall {
            dir: fresh,
            source: fjall::Error::Io(e),
        }),
        _ => Ok(()),
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    let started = std::time::Instant::now();
    let report = |done: u64| {
        if let Ok(mut p) = shared.progress.lock() {
            p.done = done;
            p.total = total;
            p.generation = next;
            p.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        }
    };
    report(0);
    let engine = Engine::start(&shared.client, dir, false, shared.failed.clone()).await?;
    let mut applied = engine.views.applied.clone();
    let mut stopping = shared.stopping.clone();
    // Until it has applied what the live views have.
    loop {
        let now = applied.borrow_and_update().clone();
        report(now.values().sum());
        if engine.apply.is_finished() {
            return match engine.stop().await {
                Err(e) => Err(e),
                Ok(()) => Err(Error::Task("the rebuild stopped".into())),
            };
        }
        let live = shared.views().map(|v| v.applied.borrow().clone()).unwrap_or_default();
        if caught_up(&now, &live) {
            break;
        }
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_millis(250), applied.changed()) => {}
            _ = stopping.changed() => return engine.stop().await,
        }
    }
    // The switch: the live engine stops where it is, the rebuilt one
    // applies at least that much, then serves.
    let mut live = shared.engine.lock().await;
    let Some(old) = live.take() else {
        return engine.stop().await;
    };
    let last = old.views.applied.borrow().clone();
    if let Err(e) = old.stop().await {
        tracing::warn!(error = %e, "the views being replaced stopped with an error");
    }
    let reached = matches!(
        tokio::time::timeout(WAIT_FOR_MAX * 15, applied.wait_for(|a| caught_up(a, &last))).await,
        Ok(Ok(_))
    );
    if !reached {
        // Back to the old generation: it resumes where it stopped.
        let _ = engine.stop().await;
        let old_dir = generation::path(&shared.dir, next - 1);
        let again = match Engine::start(&shared.client, old_dir, true, shared.failed.clone()).await {
            Ok(e) => e,
            Err(e) => {
                // Nothing serves: the projector stops, and is started again.
                shared.failed.send_replace(Some(e.to_string()));
                return Err(e);
            }
        };
        if let Ok(mut v) = shared.views.write() {
            *v = again.views.clone();
        }
        *live = Some(again);
        return Err(Error::Task(
            "the rebuilt views did not reach the live ones in time; the live ones serve on".into(),
        ));
    }
    engine.live.store(true, Ordering::SeqCst);
    let root = shared.dir.clone();
    tokio::task::spawn_blocking(move || generation::switch(&root, next))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    shared.generation.store(next, Ordering::SeqCst);
    if let Ok(mut v) = shared.views.write() {
        *v = engine.views.clone();
    }
    *live = Some(engine);
    drop(live);
    report(applied.borrow().values().sum());
    // The old generation goes once no read holds it (else at the next
    // start, `generation::current`).
    let old_dir = generation::path(&shared.dir, next - 1);
    tokio::spawn(async move {
        tokio::time::sleep(WAIT_FOR_MAX * 2).await;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(old_dir)).await;
    });
    Ok(())
}

/// Starts a rebuild unless one runs; its outcome goes to the progress.
fn start_rebuild(shared: &Arc<Shared>) -> Reply {
    {
        let Ok(mut p) = shared.progress.lock() else {
            return Reply::error(ErrorCode::Internal, "the rebuild's progress is poisoned");
        };
        if p.running {
            return Reply::error(
                ErrorCode::Conflict,
                format!("a rebuild (generation {}) is running", p.generation),
            );
        }
        *p = Progress {
            running: true,
            generation: shared.generation.load(Ordering::SeqCst) + 1,
            ..Progress::default()
        };
    }
    let running = Arc::clone(shared);
    tokio::spawn(async move {
        let shared = running;
        let r = rebuild(Arc::clone(&shared)).await;
        if let Err(e) = &r {
            tracing::error!(error = %e, "the rebuild of the views failed");
        } else {
            tracing::info!(
                generation = shared.generation.load(Ordering::SeqCst),
                "the rebuilt views serve"
            );
        }
        if let Ok(mut p) = shared.progress.lock() {
            p.running = false;
            p.finished = r.is_ok();
            p.error = r.err().map(|e| e.to_string());
        }
    });
    progress(shared)
}

fn progress(shared: &Shared) -> Reply {
    match shared.progress.lock() {
        Ok(p) => Reply::ok(serde_json::to_value(&*p).unwrap_or_default()),
        Err(_) => Reply::error(ErrorCode::Internal, "the rebuild's progress is poisoned"),
    }
}

/// Where applied events go: the projection, its store, the feeds on NATS,
/// and the readers waiting for a position.
struct Sink {
    client: async_nats::Client,
    projection: Arc<RwLock<Projection>>,
    store: Arc<Store>,
    publisher: feed::Publisher,
    /// Publish the feeds (a rebuild's engine only chains them).
    live: Arc<std::sync::atomic::AtomicBool>,
    applied_tx: watch::Sender<Applied>,
}

/// Applies events in causal order and writes each burst in one batch.
async fn apply(
    sink: Sink,
    mut rx: mpsc::Receiver<Read>,
    mut checkpoints: BTreeMap<Service, Checkpoint>,
    mut stopped: watch::Receiver<bool>,
) -> Result<(), Error> {
    let Sink {
        client,
        projection,
        store,
        mut publisher,
        live,
        applied_tx,
    } = sink;
    let mut merge = Merge::new(|s| checkpoints.get(&s).map_or(0, |c| c.seq));
    let mut positions: BTreeMap<(Service, u64), Checkpoint> = BTreeMap::new();
    // Taken out as each event is applied, so bounded like `positions`.
    let mut traces: BTreeMap<(Service, u64), String> = BTreeMap::new();
    let take = |read: Read,
                merge: &mut Merge,
                positions: &mut BTreeMap<(Service, u64), Checkpoint>,
                traces: &mut BTreeMap<(Service, u64), String>| match read {
        Read::Event(e, at, position, trace) => {
            positions.insert((e.service, e.seq), position);
            if let Some(tp) = trace {
                traces.insert((e.service, e.seq), tp);
            }
            let service = e.service;
            merge.read(*e, at).map_err(|why| Error::Source { service, why })
        }
        Read::Failed(service, why) => Err(Error::Source { service, why }),
    };
    let mut applied: Vec<(FeedEntry, Vec<(Service, String)>)> = Vec::new();
    let now = tokio::time::Instant::now();
    let mut written = now.checked_sub(BATCH_INTERVAL_MIN).unwrap_or(now);
    // Stopping (or the reads ended) with events applied: they are written
    // first, then the loop ends.
    let mut ending = false;
    loop {
        while let Ok(read) = rx.try_recv() {
            take(read, &mut merge, &mut positions, &mut traces)?;
        }
        let mut need_head = None;
        {
            let mut p = projection.write().map_err(|e| Error::Task(e.to_string()))?;
            while applied.len() < BATCH_MAX {
                match merge.step() {
                    Next::Apply(e) => {
                        let span = tracing::info_span!("project", service = %e.service, seq = e.seq);
                        concord_bus::trace::continue_from(&span, traces.remove(&(e.service, e.seq)).as_deref());
                        let a = span.in_scope(|| p.apply(&e))?;
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
        let due = written + BATCH_INTERVAL_MIN;
        // Under a steady flow the heads an event waits for are asked when
        // the batch is due, not as soon as it is read: one round then
        // covers every event read until then (a round per event made the
        // head requests a third of the bus's messages at 1,000 commands/s),
        // and the events are written no later than before, at `due`.
        if !ending
            && (!applied.is_empty() || need_head.is_some())
            && applied.len() < BATCH_MAX
            && merge.buffered() < BATCH_MAX
            && tokio::time::Instant::now() < due
        {
            tokio::select! {
                read = rx.recv() => match read {
                    Some(read) => take(read, &mut merge, &mut positions, &mut traces)?,
                    None => ending = true,
                },
                () = tokio::time::sleep_until(due) => {}
                _ = stopped.changed() => ending = true,
            }
            continue;
        }
        if !applied.is_empty() {
            written = tokio::time::Instant::now();
            let (store, projection, cps) = (Arc::clone(&store), Arc::clone(&projection), checkpoints.clone());
            let batch = std::mem::take(&mut applied);
            let batch = tokio::task::spawn_blocking(move || {
                let p = projection.read().map_err(|e| Error::Task(e.to_string()))?;
                store.commit(&p, &batch, &cps).map_err(Error::from)?;
                Ok::<_, Error>(batch)
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
            // Durable: each country hears it now. A message lost here (a
            // crash, a slow subscriber) is found by the next one's
            // `previous` and read from the store.
            let entries: Vec<FeedEntry> = batch.into_iter().map(|(e, _)| e).collect();
            let messages = publisher.messages(&entries);
            for m in messages.into_iter().filter(|_| live.load(Ordering::SeqCst)) {
                let headers = m.headers();
                if let Err(e) = client.publish_with_headers(m.subject, headers, m.payload).await {
                    tracing::warn!(error = %e, "the projector could not publish a feed message");
                }
            }
            // Only now, durable, does a waiting read see it.
            applied_tx.send_replace(checkpoints.iter().map(|(s, c)| (*s, c.seq)).collect());
            if ending {
                return Ok(());
            }
            continue;
        }
        if ending {
            return Ok(());
        }
        if let Some(service) = need_head {
            // Every log's at once: the next candidates will want the others
            // too, and one round trip costs what three do.
            let at = tick();
            let asked = Service::ALL;
            let heads =
                futures::future::join_all(asked.iter().map(|s| concord_bus::logs::fetch_head(&client, *s))).await;
            let mut failed = None;
            for (s, head) in asked.into_iter().zip(heads) {
                match head {
                    Ok(head) => merge.head(s, at, head.seq),
                    Err(e) => {
                        merge.unavailable(s, at);
                        if s == service {
                            failed = Some(e);
                        }
                    }
                }
            }
            // Still needed (the event follows that log): wait.
            if let Some(e) = failed
                && merge.step_needs(service)
            {
                tracing::warn!(%service, error = %e, "the projector cannot ask the log's head yet; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    _ = stopped.changed() => return Ok(()),
                }
            }
            continue;
        }
        tokio::select! {
            read = rx.recv() => match read {
                Some(read) => take(read, &mut merge, &mut positions, &mut traces)?,
                None => return Ok(()),
            },
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// Answers `concord.qry.projector.<view|list|feed|search|health>` and
/// `concord.feed.<CC>.read`, each request in its own task: one that waits
/// (for a position, or for a feed's next entry) holds no other, and only
/// [`QUERIES_IN_FLIGHT_MAX`] read the store at once.
async fn answer(shared: Arc<Shared>, mut subscriber: impl futures::Stream<Item = async_nats::Message> + Unpin) {
    let waiting = Arc::new(tokio::sync::Semaphore::new(WAITING_MAX));
    let slots = Arc::new(tokio::sync::Semaphore::new(QUERIES_IN_FLIGHT_MAX));
    let mut stopping = shared.stopping.clone();
    loop {
        let msg = tokio::select! {
            msg = subscriber.next() => match msg { Some(m) => m, None => return },
            _ = stopping.changed() => return,
        };
        let Some(reply_to) = msg.reply.clone() else { continue };
        let Ok(waiter) = Arc::clone(&waiting).acquire_owned().await else {
            return;
        };
        let (shared, slots) = (Arc::clone(&shared), Arc::clone(&slots));
        tokio::spawn(async move {
            let reply = match (Asked::of(msg.subject.as_str(), &msg.payload), shared.views()) {
                (Err(reply), _) => reply,
                (Ok(_), None) => Reply::error(ErrorCode::Internal, "the projector's views are poisoned"),
                (Ok(Asked::Control(verb)), _) => match verb.as_str() {
                    "rebuild" => start_rebuild(&shared),
                    "progress" => progress(&shared),
                    other => Reply::error(ErrorCode::NotFound, format!("the projector has no control {other:?}")),
                },
                (Ok(asked), Some(views)) => {
                    let mut applied = views.applied.clone();
                    match wait_for(&msg.payload, &mut applied, &views.hurry).await {
                        Err(reply) => reply,
                        Ok(()) => asked.answer(&shared, views, &slots).await,
                    }
                }
            };
            if let Err(e) = shared.client.publish(reply_to, reply.to_bytes().into()).await {
                tracing::warn!(error = %e, "the projector could not answer a query");
            }
            drop(waiter);
        });
    }
}

/// What a request on one of the projector's subjects asks.
enum Asked {
    Health,
    /// A query on `concord.qry.projector.<name>`.
    Query(String, bytes::Bytes),
    /// A feed read: a site's on `concord.feed.<CC>.read`, or a feed query
    /// that may wait for its next entry.
    Feed(api::FeedRequest),
    /// An operator's `concord.ctl.projector.<verb>`.
    Control(String),
}

/// What a national site sends on `concord.feed.<CC>.read`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRead {
    #[serde(default)]
    after: u64,
    #[serde(default)]
    max: Option<usize>,
}

impl Asked {
    fn of(subject: &str, payload: &bytes::Bytes) -> Result<Asked, Reply> {
        let mut tokens = subject.split('.');
        match (
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
            tokens.next(),
        ) {
            (Some(_), Some("feed"), Some(cc), Some("read"), None) => {
                // The subject names the country; nats-server lets only
                // that country's site (and the projector's peers) ask it.
                let country: concord_core::CountryCode = cc
                    .parse()
                    .map_err(|e| Reply::error(ErrorCode::Invalid, format!("{subject}: {e}")))?;
                let SiteRead { after, max } = request("feed read", payload)?;
                Ok(Asked::Feed(api::FeedRequest {
                    caller: api::Caller {
                        country,
                        role: concord_core::Role::Liaison,
                    },
                    wait_for: BTreeMap::new(),
                    country,
                    after,
                    max,
                    wait_ms: None,
                }))
            }
            (Some(_), Some("ctl"), Some(_), Some(verb), None) => Ok(Asked::Control(verb.to_owned())),
            (.., Some("health"), None) => Ok(Asked::Health),
            (.., Some("feed"), None) => Ok(Asked::Feed(request("feed", payload)?)),
            (.., Some(name), None) => Ok(Asked::Query(name.to_owned(), payload.clone())),
            _ => Err(Reply::error(
                ErrorCode::NotFound,
                format!("the projector answers no {subject:?}"),
            )),
        }
    }

    async fn answer(self, shared: &Shared, views: Views, slots: &Arc<tokio::sync::Semaphore>) -> Reply {
        let (projection, mut applied) = (&views.projection, views.applied.clone());
        match self {
            Asked::Control(_) => Reply::error(ErrorCode::Internal, "a control is not a read"),
            // Readiness (the gateway's /readyz): it answers, and where it
            // stands in each log.
            Asked::Health => Reply::ok(json!({"applied": *applied.borrow()})),
            Asked::Query(name, payload) => {
                let projection = Arc::clone(projection);
                let Ok(_slot) = Arc::clone(slots).acquire_owned().await else {
                    return Reply::error(ErrorCode::Unavailable, "the projector is stopping");
                };
                tokio::task::spawn_blocking(move || respond(&name, &payload, &projection))
                    .await
                    .unwrap_or_else(|e| Reply::error(ErrorCode::Internal, e.to_string()))
            }
            Asked::Feed(req) => {
                let wait = match req.wait_ms {
                    None => Duration::ZERO,
                    Some(ms) if ms <= api::FEED_WAIT_MAX_MS => Duration::from_millis(ms),
                    Some(ms) => {
                        return Reply::error(
                            ErrorCode::Invalid,
                            format!("wait_ms {ms} is more than {}", api::FEED_WAIT_MAX_MS),
                        );
                    }
                };
                let deadline = tokio::time::Instant::now() + wait;
                let req = Arc::new(req);
                let mut store = Arc::clone(&views.store);
                loop {
                    // Marked seen before reading, so an entry written
                    // after the read wakes the wait below.
                    applied.borrow_and_update();
                    let Ok(slot) = Arc::clone(slots).acquire_owned().await else {
                        return Reply::error(ErrorCode::Unavailable, "the projector is stopping");
                    };
                    let (st, r) = (Arc::clone(&store), Arc::clone(&req));
                    let read = tokio::task::spawn_blocking(move || api::feed(&st, &r)).await;
                    drop(slot);
                    let answer = match read {
                        Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
                        Ok(Err(e)) => return Reply::error(ErrorCode::Unavailable, e.to_string()),
                        Ok(Ok(Err(r))) => return refused(&r),
                        Ok(Ok(Ok(v))) => v,
                    };
                    let empty = answer["events"].as_array().is_none_or(Vec::is_empty);
                    if !empty || tokio::time::Instant::now() >= deadline {
                        return Reply::ok(answer);
                    }
                    match tokio::time::timeout_at(deadline, applied.changed()).await {
                        Err(_) => return Reply::ok(answer),
                        Ok(Ok(())) => {}
                        // The views were switched (a rebuild): read the new ones.
                        Ok(Err(_)) => match shared.views() {
                            Some(v) => {
                                store = v.store;
                                applied = v.applied;
                            }
                            None => return Reply::ok(answer),
                        },
                    }
                }
            }
        }
    }
}

/// Waits until the positions the request names in `wait_for` are applied
/// (and written), at most [`WAIT_FOR_MAX`].
async fn wait_for(
    payload: &[u8],
    applied: &mut watch::Receiver<Applied>,
    hurry: &BTreeMap<Service, Hurry>,
) -> Result<(), Reply> {
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
    hurry_behind(hurry, &applied.borrow(), &wait_for);
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

fn respond(name: &str, payload: &[u8], projection: &RwLock<Projection>) -> Reply {
    let answer = match name {
        "view" => request(name, payload).and_then(|req| from_projection(projection, &req, api::view)),
        "list" => request(name, payload).and_then(|req| from_projection(projection, &req, api::list)),
        "search" => request(name, payload).and_then(|req| from_projection(projection, &req, api::search)),
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
