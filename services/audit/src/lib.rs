//! The audit service: replays every writing service's log through
//! `concord.log.<service>.read` with the kernel consumer (each chain link
//! checked as it reads) into an [`index::Index`], and answers auditors on
//! `concord.qry.audit.<timeline|state|actions|knowledge|verify>` (queue
//! group `audit`): an operation's timeline across services in causal
//! order, its state as of an instant folded with the contracts' own
//! `evolve`, what one person did, what a country could see as of an
//! instant and when it gained and lost sight of one item (the projector's
//! own projection, replayed), and how far each log's chain checked.
//!
//! It also signs each log's head as a C2SP checkpoint ([`checkpoint`]) once
//! a second, with an Ed25519 key made once in its directory, keeps every
//! checkpoint it signed (`checkpoints.jsonl`) and serves the latest, and
//! its verifier key, to every role (`checkpoints`, `key`): witnesses keep
//! them, and can later prove the log still extends them.
//!
//! Owns: the index (rebuilt from the logs at each start), its signing key
//! and the checkpoints it signed, and who may ask it (auditors, but any
//! role for the checkpoints and the key).
//!
//! Must not: write a log of another service, decide a business rule or a
//! visibility, or serve a log whose chain failed as if it were whole.

pub mod checkpoint;
pub mod index;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use concord_bus::consumer::{Consumer, Hurry, READ_INTERVAL, hurry_behind, start_of_log};
use concord_core::reply::{ErrorCode, Reply};
use concord_core::{CountryCode, Role, Service, subjects};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use concord_contracts::audit::AccessLog;

use crate::index::Index;

/// The name its queries are asked under (`concord.qry.audit.*`) and its
/// queue group.
pub const NAME: &str = concord_bus::permissions::AUDIT;
/// Most events one answer holds.
pub const PAGE_MAX: usize = 500;
/// Events of a page when the request names no limit.
pub const PAGE_DEFAULT: usize = 100;
/// How long a read naming positions (`wait_for`) waits for them.
pub const WAIT_FOR_MAX: Duration = Duration::from_secs(2);

/// Most bytes of events one export answer holds: NATS carries at most
/// 1 MiB by default, and the events travel as they are stored.
pub const EXPORT_PAGE_BYTES: usize = 512 * 1024;
/// Events asked of a log at once while exporting.
const EXPORT_READ_EVENTS: usize = 256;

/// The last seq indexed of each log.
type Applied = BTreeMap<Service, u64>;

/// How often heads that moved are signed.
pub const SIGN_EVERY: Duration = Duration::from_secs(1);
/// The name of the audit's key in signed notes.
pub const KEY_NAME: &str = "concord-audit";
/// The key's file in the audit's directory (PKCS#8, owner only).
pub const KEY_FILE: &str = "checkpoint-key.p8";
/// Every checkpoint signed, one JSON line each (`{service, note}`).
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// The audit's directory under a data dir.
pub fn dir_in(data: &Path) -> PathBuf {
    data.join(NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the audit's files in {dir}: {why}")]
    Files { dir: PathBuf, why: String },
    #[error("following the {service} log: {why}")]
    Source { service: Service, why: String },
    #[error("NATS: {0}")]
    Nats(String),
    #[error("the access log: {0}")]
    AccessLog(#[from] concord_bus::service::Error),
}

/// A running audit service: stop it with [`Audit::stop`].
pub struct Audit {
    readers: Vec<JoinHandle<()>>,
    answer: JoinHandle<()>,
    signing: JoinHandle<()>,
    /// The access log's writer (the kernel runtime on the `AccessLog`
    /// contract, reopening its log after a disk fault).
    writer: Option<JoinHandle<Result<(), concord_bus::service::Error>>>,
    stop: watch::Sender<bool>,
    key: String,
}

/// The signing key in `dir`, made (owner only) when there is none.
pub fn signer(dir: &Path) -> Result<checkpoint::Signer, Error> {
    let files = |why: String| Error::Files {
        dir: dir.to_owned(),
        why,
    };
    std::fs::create_dir_all(dir).map_err(|e| files(e.to_string()))?;
    let file = dir.join(KEY_FILE);
    let pkcs8 = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::OpenOptionsExt;
            let bytes = checkpoint::Signer::generate().map_err(|e| files(e.to_string()))?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| files(e.to_string()))?;
            f.write_all(&bytes).map_err(|e| files(e.to_string()))?;
            f.sync_all().map_err(|e| files(e.to_string()))?;
            bytes
        }
        Err(e) => return Err(files(e.to_string())),
    };
    checkpoint::Signer::from_pkcs8(KEY_NAME, &pkcs8).map_err(|e| files(format!("{}: {e}", file.display())))
}

/// The latest note signed of each log, as `checkpoints.jsonl` holds them.
type Latest = BTreeMap<Service, String>;

/// The latest checkpoint the audit in `dir` signed of each log.
pub fn latest_signed(dir: &Path) -> BTreeMap<Service, String> {
    load_latest(dir)
}

/// Every checkpoint kept in `dir` that `key` signed, as the index holds
/// logs to them (a line that does not verify is ignored: it proves
/// nothing).
fn load_signed(dir: &Path, key: &str) -> BTreeMap<Service, index::Signed> {
    #[derive(Deserialize)]
    struct Line {
        service: Service,
        note: String,
    }
    let mut out: BTreeMap<Service, index::Signed> = BTreeMap::new();
    let text = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)).unwrap_or_default();
    for line in text.lines() {
        let Ok(l) = serde_json::from_str::<Line>(line) else {
            continue;
        };
        let Ok(cp) = checkpoint::verify(&l.note, key) else {
            continue;
        };
        let Some((_, identity)) = cp.log() else { continue };
        out.entry(l.service)
            .or_default()
            .entry(identity.to_owned())
            .or_default()
            .insert(cp.size, hex::encode(cp.hash));
    }
    out
}

fn load_latest(dir: &Path) -> Latest {
    #[derive(Deserialize)]
    struct Line {
        service: Service,
        note: String,
    }
    std::fs::read_to_string(dir.join(CHECKPOINTS_FILE))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| (l.service, l.note))
        .collect()
}

/// What signs checkpoints: the key, where every note is kept, what the
/// index read, and the latest note of each log.
struct Notary {
    dir: PathBuf,
    signer: checkpoint::Signer,
    index: Arc<RwLock<Index>>,
    latest: Arc<RwLock<Latest>>,
    /// One signing at a time (the timer's and an export's), so a head is
    /// signed once.
    turn: std::sync::Mutex<()>,
}

impl Notary {
    /// Signs the heads that moved, appends each note to the file
    /// (fsynced), and makes it the latest.
    fn sign_moved(&self) -> Result<(), String> {
        let _turn = self.turn.lock().map_err(|e| e.to_string())?;
        let checks = self.index.read().map_err(|e| e.to_string())?.checks();
        let mut notes = Vec::new();
        for (service, c) in checks {
            let Some(identity) = &c.identity else { continue };
            let Ok(hash) = hex::decode(&c.head_hash).map(<[u8; 32]>::try_from) else {
                continue;
            };
            let Ok(hash) = hash else { continue };
            // Only a head past everything signed of the log: below it the
            // log is being read again (a restart), and what was signed
            // holds it until it is read past.
            let signed_size = self
                .index
                .read()
                .map_err(|e| e.to_string())?
                .signed_size(service, identity);
            if c.head_seq == 0 || c.first_bad_seq.is_some() || c.head_seq <= signed_size {
                continue;
            }
            let cp = checkpoint::Checkpoint {
                origin: checkpoint::Checkpoint::origin_of(service.as_str(), identity),
                size: c.head_seq,
                hash,
            };
            let signed_before = self
                .latest
                .read()
                .map_err(|e| e.to_string())?
                .get(&service)
                .is_some_and(|n| n.starts_with(&cp.body()));
            if !signed_before {
                notes.push((service, self.signer.sign(&cp)));
            }
        }
        if notes.is_empty() {
            return Ok(());
        }
        let file = self.dir.join(CHECKPOINTS_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        for (service, note) in &notes {
            let line = json!({"service": service, "note": note}).to_string();
            writeln!(f, "{line}").map_err(|e| format!("{}: {e}", file.display()))?;
        }
        f.sync_all().map_err(|e| format!("{}: {e}", file.display()))?;
        let mut latest = self.latest.write().map_err(|e| e.to_string())?;
        latest.extend(notes);
        Ok(())
    }

    /// [`Notary::sign_moved`] off the async threads (it fsyncs).
    async fn sign_now(self: &Arc<Self>) -> Result<(), String> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.sign_moved())
            .await
            .map_err(|e| e.to_string())?
    }
}

impl Audit {
    /// Follows the four logs from their start, signs their heads with the
    /// key in `dir`, and answers queries.
    pub async fn bind(dir: &Path, client: async_nats::Client) -> Result<Audit, Error> {
        let signer = signer(dir)?;
        // The access log first: the index reads it like any other log.
        let cfg = concord_bus::service::Config::new(dir);
        let bound = concord_bus::service::bind::<AccessLog>(&cfg, client.clone(), Default::default()).await?;
        let (stop, stopped) = watch::channel(false);
        let writer = {
            let client = client.clone();
            tokio::spawn(concord_bus::service::supervise(
                bound,
                move || {
                    let (cfg, client) = (cfg.clone(), client.clone());
                    async move { concord_bus::service::bind::<AccessLog>(&cfg, client, Default::default()).await }
                },
                stopped,
            ))
        };
        let latest = Arc::new(RwLock::new(load_latest(dir)));
        let index = Arc::new(RwLock::new(Index::holding_to(load_signed(dir, &signer.verifier_key()))));
        let (applied_tx, applied) = watch::channel(Applied::new());
        let applied_tx = Arc::new(applied_tx);
        let mut readers = Vec::new();
        let mut hurry = BTreeMap::new();
        for service in Service::LOGS {
            let mut consumer = Consumer::start(client.clone(), service, start_of_log())
                .await
                .map_err(|e| Error::Source {
                    service,
                    why: e.to_string(),
                })?
                .named("audit")
                .with_read_interval(READ_INTERVAL);
            hurry.insert(service, consumer.hurry());
            let (index, applied_tx) = (Arc::clone(&index), Arc::clone(&applied_tx));
            readers.push(tokio::spawn(async move {
                loop {
                    match consumer.next().await {
                        Ok(e) => {
                            let seq = e.seq;
                            let identity = consumer.position().identity.map(|i| i.to_string());
                            if let Ok(mut i) = index.write() {
                                let intact = identity.as_deref().is_none_or(|id| i.against_signed(&e, id));
                                if !intact {
                                    tracing::error!(%service, seq, "a log no longer extends a checkpoint this audit signed");
                                    return;
                                }
                                i.add(e);
                                if let Some(identity) = identity {
                                    i.identify(service, identity);
                                }
                            }
                            applied_tx.send_modify(|a| {
                                a.insert(service, seq);
                            });
                        }
                        Err(e) => {
                            // The consumer stops only for what is final: a
                            // chain that does not link, a log that is not
                            // the one read before.
                            let seq = consumer.position().seq + 1;
                            tracing::error!(%service, seq, error = %e, "a log fails the audit's verification");
                            if let Ok(mut i) = index.write() {
                                i.failed(service, seq, e.to_string());
                            }
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
        let key = signer.verifier_key();
        let notary = Arc::new(Notary {
            dir: dir.to_owned(),
            signer,
            index: Arc::clone(&index),
            latest: Arc::clone(&latest),
            turn: std::sync::Mutex::new(()),
        });
        let signing = {
            let notary = Arc::clone(&notary);
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(SIGN_EVERY).await;
                    cut_short(&client, &notary.index).await;
                    if let Err(e) = notary.sign_now().await {
                        tracing::error!(error = %e, "the audit could not sign or keep a checkpoint");
                    }
                }
            })
        };
        let answer = tokio::spawn(answer(
            client,
            subscriber,
            index,
            applied,
            Arc::new(hurry),
            notary,
            key.clone(),
        ));
        Ok(Audit {
            readers,
            answer,
            signing,
            writer: Some(writer),
            stop,
            key,
        })
    }

    /// The verifier key of its checkpoints (`<name>+<id>+<key>`).
    pub fn verifier_key(&self) -> &str {
        &self.key
    }

    /// Stops following and answering; the access log's writer finishes
    /// the records it started (durable and answered) first.
    pub async fn stop(self) {
        for r in &self.readers {
            r.abort();
        }
        self.answer.abort();
        self.signing.abort();
        let _ = self.stop.send(true);
        let Some(writer) = self.writer else { return };
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the access log stopped"),
            Err(e) => tracing::error!(error = %e, "the access log's task"),
        }
    }

    /// Resolves if the access log's writer stops for good (an error that
    /// reopening does not cure), naming why.
    pub async fn stopped(&mut self) -> Result<(), Error> {
        let Some(writer) = &mut self.writer else {
            return std::future::pending().await;
        };
        let r = writer.await;
        self.writer = None;
        match r {
            Ok(r) => r.map_err(Error::from),
            Err(e) => Err(Error::Nats(format!("the access log's task: {e}"))),
        }
    }
}

async fn answer(
    client: async_nats::Client,
    mut subscriber: async_nats::Subscriber,
    index: Arc<RwLock<Index>>,
    applied: watch::Receiver<Applied>,
    hurry: Arc<BTreeMap<Service, Hurry>>,
    notary: Arc<Notary>,
    key: String,
) {
    let key = Arc::new(key);
    while let Some(msg) = subscriber.next().await {
        let Some(reply_to) = msg.reply.clone() else { continue };
        let (client, index, mut applied) = (client.clone(), Arc::clone(&index), applied.clone());
        let hurry = Arc::clone(&hurry);
        let (notary, key) = (Arc::clone(&notary), Arc::clone(&key));
        tokio::spawn(async move {
            let name = msg.subject.as_str().rsplit('.').next().unwrap_or("").to_owned();
            // Who read what is answered up to every read recorded before
            // the question (each was durable before its reader had data).
            let caught_up = if name == "access" {
                access_log_read(&client, &mut applied, &hurry).await
            } else {
                Ok(())
            };
            let waited = match caught_up {
                Ok(()) => wait_for(&msg.payload, &mut applied, &hurry).await,
                Err(r) => Err(r),
            };
            let reply = match waited {
                Err(reply) => reply.to_bytes(),
                // An export's events are spliced in as the log stores
                // them: no value of ours could say them byte for byte.
                Ok(()) if name == "export" => export(&client, &msg.payload, &notary)
                    .await
                    .unwrap_or_else(|r| r.to_bytes()),
                Ok(()) => tokio::task::spawn_blocking(move || {
                    respond(
                        &name,
                        &msg.payload,
                        &Reads {
                            index: &index,
                            latest: &notary.latest,
                            key: &key,
                        },
                    )
                })
                .await
                .unwrap_or_else(|e| Reply::error(ErrorCode::Internal, e.to_string()))
                .to_bytes(),
            };
            if let Err(e) = client.publish(reply_to, reply.into()).await {
                tracing::warn!(error = %e, "the audit could not answer a query");
            }
        });
    }
}

/// Marks failed each log whose owner's head is now below what this audit
/// signed of it: its newest events were cut off (a chain alone cannot
/// show it).
async fn cut_short(client: &async_nats::Client, index: &RwLock<Index>) {
    let Ok(checks) = index.read().map(|i| i.checks()) else {
        return;
    };
    for (service, c) in checks {
        let Some(identity) = c.identity.clone() else { continue };
        let signed = index.read().map(|i| i.signed_size(service, &identity)).unwrap_or(0);
        if c.first_bad_seq.is_some() || c.head_seq >= signed {
            continue;
        }
        let Ok(head) = concord_bus::logs::fetch_head(client, service).await else {
            continue;
        };
        if head.identity.map(|i| i.to_string()).as_deref() == Some(identity.as_str()) && head.seq < signed {
            tracing::error!(%service, head = head.seq, signed, "a log is shorter than a checkpoint this audit signed");
            if let Ok(mut i) = index.write() {
                i.failed(
                    service,
                    head.seq + 1,
                    format!(
                        "the log ends at seq {}, but this audit signed a checkpoint of {signed} events: its newest events were cut off",
                        head.seq
                    ),
                );
            }
        }
    }
}

/// Waits until the index holds the access log up to its head now.
async fn access_log_read(
    client: &async_nats::Client,
    applied: &mut watch::Receiver<Applied>,
    hurry: &BTreeMap<Service, Hurry>,
) -> Result<(), Reply> {
    let head = concord_bus::logs::fetch_head(client, Service::Audit)
        .await
        .map_err(|e| Reply::error(ErrorCode::Unavailable, format!("the access log's head: {e}")))?;
    hurry_behind(hurry, &applied.borrow(), &BTreeMap::from([(Service::Audit, head.seq)]));
    let done = |now: &Applied| now.get(&Service::Audit).copied().unwrap_or(0) >= head.seq;
    match tokio::time::timeout(WAIT_FOR_MAX, applied.wait_for(done)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Reply::error(
            ErrorCode::Unavailable,
            "the audit has not read its access log up to its head yet; retry",
        )),
    }
}

/// Waits until the positions the request names in `wait_for` are indexed,
/// at most [`WAIT_FOR_MAX`].
async fn wait_for(
    payload: &[u8],
    applied: &mut watch::Receiver<Applied>,
    hurry: &BTreeMap<Service, Hurry>,
) -> Result<(), Reply> {
    #[derive(Deserialize)]
    struct Positions {
        #[serde(default)]
        wait_for: Applied,
    }
    let Ok(Positions { wait_for }) = serde_json::from_slice::<Positions>(payload) else {
        return Ok(());
    };
    hurry_behind(hurry, &applied.borrow(), &wait_for);
    let done = |now: &Applied| wait_for.iter().all(|(s, seq)| now.get(s).copied().unwrap_or(0) >= *seq);
    match tokio::time::timeout(WAIT_FOR_MAX, applied.wait_for(done)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(Reply::error(
            ErrorCode::Unavailable,
            "the audit has not read those positions yet; retry",
        )),
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct Caller {
    #[allow(dead_code)]
    country: CountryCode,
    role: Role,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    operation_id: Uuid,
    /// HLC wall time, ms since the epoch: the events up to it.
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionsRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    sub: String,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    item: Option<String>,
    /// HLC wall time, ms: reads at or after it.
    #[serde(default)]
    from: Option<u64>,
    /// HLC wall time, ms: reads at or before it.
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnowledgeRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    country: CountryCode,
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    item: Option<Uuid>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    service: Service,
    /// The first seq (1 when not given).
    #[serde(default)]
    from: Option<u64>,
    /// The last seq (the checkpoint's size when not given; never past it).
    #[serde(default)]
    to: Option<u64>,
}

/// One page of an export of `service`'s log as stored, against the latest
/// checkpoint signed of it: `{checkpoint, size, from, to, next, events}`,
/// `next` the seq to ask from for the following page (null at the end).
async fn export(client: &async_nats::Client, payload: &[u8], notary: &Arc<Notary>) -> Result<Vec<u8>, Reply> {
    let req: ExportRequest = request("export", payload)?;
    auditor(req.caller)?;
    let service = req.service;
    // Against the head read so far, not one up to a second older.
    if let Err(e) = notary.sign_now().await {
        tracing::error!(error = %e, "the audit could not sign a checkpoint for an export");
    }
    let note = notary
        .latest
        .read()
        .map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()))?
        .get(&service)
        .cloned();
    let Some(note) = note else {
        return Err(Reply::error(
            ErrorCode::Unavailable,
            format!(
                "no checkpoint of the {service} log is signed: the audit has read none of its events yet (an empty log has none); retry"
            ),
        ));
    };
    let cp = checkpoint::Checkpoint::stated_by(&note).map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()))?;
    let from = req.from.unwrap_or(1);
    if from == 0 {
        return Err(invalid("from is a seq: 1 or more".into()));
    }
    let to = req.to.map_or(cp.size, |t| t.min(cp.size));
    let mut events: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut next = from;
    'pages: while next <= to {
        let want = usize::try_from(to - next + 1)
            .unwrap_or(usize::MAX)
            .min(EXPORT_READ_EVENTS);
        let read = concord_bus::logs::fetch_log(client, service, next, want)
            .await
            .map_err(|e| Reply::error(ErrorCode::Unavailable, format!("reading the {service} log: {e}")))?;
        if let (Some(identity), Some((_, checkpointed))) = (&read.identity, cp.log())
            && identity.to_string() != checkpointed
        {
            return Err(Reply::error(
                ErrorCode::Conflict,
                format!("the {service} log answering is {identity}, not {checkpointed}, the log checkpointed"),
            ));
        }
        if read.raw.is_empty() {
            return Err(Reply::error(
                ErrorCode::Conflict,
                format!(
                    "the {service} log holds no event at seq {next} (its head is {}), below the checkpoint's size {}: it was cut short",
                    read.head_seq, cp.size
                ),
            ));
        }
        for raw in read.raw {
            if !events.is_empty() && bytes + raw.len() > EXPORT_PAGE_BYTES {
                break 'pages;
            }
            bytes += raw.len();
            events.push(raw);
            next += 1;
            if next > to {
                break 'pages;
            }
        }
    }
    let head = json!({
        "ok": true,
        "service": service,
        "checkpoint": note,
        "size": cp.size,
        "from": from,
        "to": to,
        "next": (next <= to).then_some(next),
    })
    .to_string();
    let mut out = Vec::with_capacity(head.len() + bytes + events.len() + 16);
    out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    out.extend_from_slice(b",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    caller: Caller,
    /// Awaited before the request is read (`wait_for`); named here so
    /// the strict parse accepts it.
    #[serde(default, rename = "wait_for")]
    _wait_for: Applied,
    /// A checkpoint a witness saved (the signed note, base64): whether
    /// its log still extends it.
    #[serde(default)]
    checkpoint: Option<String>,
}

/// Whether the log a witness's checkpoint (`b64`, the signed note in
/// base64) names still extends it, as the index read it.
fn against_witness(index: &Index, b64: &str, key: &str) -> Result<Value, Reply> {
    use base64::Engine as _;
    // Well formed, but not a note this audit signed: unprocessable.
    let refused = |why: String| Reply::error(ErrorCode::RuleViolated, format!("checkpoint: {why}"));
    let note = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| refused("not a signed note in base64".into()))?;
    let cp = checkpoint::verify(&note, key).map_err(|e| refused(e.to_string()))?;
    let (service, identity) = cp
        .log()
        .ok_or_else(|| refused(format!("origin {:?} is not a Concord log", cp.origin)))?;
    let service = Service::parse(service).ok_or_else(|| refused(format!("origin {:?} names no log", cp.origin)))?;
    let hash = hex::encode(cp.hash);
    let mut out = json!({"origin": cp.origin, "service": service, "size": cp.size, "hash": hash});
    match index.extends(service, identity, cp.size, &hash) {
        Ok(Some(after)) => {
            out["extends"] = json!(true);
            out["events_after"] = json!(after);
        }
        Ok(None) => {
            return Err(Reply::error(
                ErrorCode::Unavailable,
                format!(
                    "the audit has not read the {service} log up to seq {} yet; retry",
                    cp.size
                ),
            ));
        }
        Err(why) => {
            out["extends"] = json!(false);
            out["why"] = json!(why);
        }
    }
    Ok(out)
}

fn invalid(message: String) -> Reply {
    Reply::error(ErrorCode::Invalid, message)
}

fn request<T: serde::de::DeserializeOwned>(what: &str, payload: &[u8]) -> Result<T, Reply> {
    concord_core::json::from_slice(payload).map_err(|e| invalid(format!("{what} query: {e}")))
}

fn auditor(caller: Caller) -> Result<(), Reply> {
    if caller.role == Role::Auditor {
        Ok(())
    } else {
        Err(Reply::error(
            ErrorCode::Forbidden,
            format!("a {} may not read the audit; it takes an auditor", caller.role.as_str()),
        ))
    }
}

/// A page of `all` after the offset `after` (as `next` gave it), as
/// `{<field>: […], next}`.
fn page<T: serde::Serialize>(field: &str, all: &[T], after: Option<u64>, limit: Option<usize>) -> Result<Value, Reply> {
    let limit = match limit {
        None => PAGE_DEFAULT,
        Some(n) if (1..=PAGE_MAX).contains(&n) => n,
        Some(n) => return Err(invalid(format!("limit {n} is not within 1 to {PAGE_MAX}"))),
    };
    let from = usize::try_from(after.unwrap_or(0)).unwrap_or(usize::MAX);
    let items: Vec<&T> = all.iter().skip(from).take(limit).collect();
    let next = (from.saturating_add(items.len()) < all.len()).then(|| from + items.len());
    let mut out = serde_json::Map::new();
    out.insert(field.to_owned(), json!(items));
    out.insert("next".into(), json!(next));
    Ok(Value::Object(out))
}

fn knowledge_refused(e: &index::KnowledgeError) -> Reply {
    match e {
        index::KnowledgeError::Broken(b) => broken(b),
        index::KnowledgeError::Unreadable(_) => Reply::error(ErrorCode::Internal, e.to_string()),
    }
}

fn read(index: &RwLock<Index>) -> Result<std::sync::RwLockReadGuard<'_, Index>, Reply> {
    index
        .read()
        .map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()))
}

fn broken(b: &index::Broken) -> Reply {
    Reply::error(ErrorCode::Conflict, b.to_string())
}

/// What the queries read.
struct Reads<'a> {
    index: &'a RwLock<Index>,
    latest: &'a RwLock<Latest>,
    key: &'a str,
}

fn respond(name: &str, payload: &[u8], reads: &Reads<'_>) -> Reply {
    let index = reads.index;
    let answer = (|| -> Result<Value, Reply> {
        match name {
            // Witnesses (any role) keep checkpoints and the key.
            "checkpoints" => {
                let _: VerifyRequest = request(name, payload)?;
                let latest = reads
                    .latest
                    .read()
                    .map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()))?
                    .clone();
                Ok(json!({"key": reads.key, "checkpoints": latest}))
            }
            "key" => {
                let _: VerifyRequest = request(name, payload)?;
                Ok(json!({"key": reads.key}))
            }
            "timeline" => {
                let req: TimelineRequest = request(name, payload)?;
                auditor(req.caller)?;
                let index = read(index)?;
                let events = index
                    .timeline(req.operation_id, req.at)
                    .map_err(|b| broken(&b))?
                    .ok_or_else(|| {
                        Reply::error(
                            ErrorCode::NotFound,
                            format!("no operation or crisis {}", req.operation_id),
                        )
                    })?;
                let mut v = page("events", &events, req.after, req.limit)?;
                v["operation_id"] = json!(req.operation_id);
                v["at"] = json!(req.at);
                Ok(v)
            }
            "state" => {
                let req: TimelineRequest = request(name, payload)?;
                auditor(req.caller)?;
                if req.after.is_some() || req.limit.is_some() {
                    return Err(invalid("a state takes no after or limit".into()));
                }
                let index = read(index)?;
                index
                    .state(req.operation_id, req.at)
                    .map_err(|b| broken(&b))?
                    .ok_or_else(|| {
                        Reply::error(
                            ErrorCode::NotFound,
                            format!("no operation or crisis {}", req.operation_id),
                        )
                    })
            }
            "actions" => {
                let req: ActionsRequest = request(name, payload)?;
                auditor(req.caller)?;
                let index = read(index)?;
                let events = index.actions(&req.sub).map_err(|b| broken(&b))?;
                let mut v = page("events", &events, req.after, req.limit)?;
                v["sub"] = json!(req.sub);
                Ok(v)
            }
            "access" => {
                let req: AccessRequest = request(name, payload)?;
                auditor(req.caller)?;
                let index = read(index)?;
                let filter = index::AccessFilter {
                    sub: req.sub.as_deref(),
                    item: req.item.as_deref(),
                    from: req.from,
                    to: req.to,
                };
                let reads = index.access(&filter).map_err(|b| broken(&b))?;
                page("reads", &reads, req.after, req.limit)
            }
            "knowledge" => {
                let req: KnowledgeRequest = request(name, payload)?;
                auditor(req.caller)?;
                let index = read(index)?;
                if let Some(item) = req.item {
                    if req.at.is_some() || req.after.is_some() || req.limit.is_some() {
                        return Err(invalid(
                            "knowledge of an item takes no at, after or limit: it answers its whole history".into(),
                        ));
                    }
                    let sight = index
                        .sight(&item.to_string(), req.country)
                        .map_err(|e| knowledge_refused(&e))?
                        .ok_or_else(|| Reply::error(ErrorCode::NotFound, format!("no item {item}")))?;
                    return serde_json::to_value(sight).map_err(|e| Reply::error(ErrorCode::Internal, e.to_string()));
                }
                let items = index
                    .knowledge(req.country, req.at)
                    .map_err(|e| knowledge_refused(&e))?;
                let mut v = page("items", &items, req.after, req.limit)?;
                v["country"] = json!(req.country);
                v["at"] = json!(req.at);
                Ok(v)
            }
            "verify" => {
                let req: VerifyRequest = request(name, payload)?;
                auditor(req.caller)?;
                let index = read(index)?;
                let checks = index.checks();
                let mut ok = checks.values().all(|c| c.first_bad_seq.is_none());
                let mut answer = json!({"logs": checks});
                if let Some(b64) = &req.checkpoint {
                    let witness = against_witness(&index, b64, reads.key)?;
                    ok &= witness["extends"] == true;
                    answer["checkpoint"] = witness;
                }
                answer["verified"] = json!(ok);
                Ok(answer)
            }
            other => Err(Reply::error(
                ErrorCode::NotFound,
                format!("the audit has no query {other:?}"),
            )),
        }
    })();
    match answer {
        Ok(v) => Reply::ok(v),
        Err(r) => r,
    }
}
