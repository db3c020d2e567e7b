//! The deployments service: the deployments contract
//! (`concord_contracts::deployments`) run on the kernel's runtime.
//!
//! Owns what is special about it:
//!
//! - what it knows of crises and operations (the contract's facts,
//!   `DeploymentsFacts`), folded from the crisis and operations logs, typed
//!   by their contracts; the runtime waits for both folds to reach their
//!   logs' heads before it decides or answers;
//! - the stand-down choreography: when a crisis closes, it asks, through
//!   its own `request_stand_down` command, for the stand-down of every
//!   deployment linked to it that is approved or arrived — exactly once,
//!   because the command's id is derived from the closing event and the
//!   deployment (`stand-down:<closing event id>:<deployment id>`, so a
//!   repeated reaction answers the first result) and the contract decides
//!   nothing for a stand-down already requested. Which deployments await
//!   one it reads from an index folded from its own log. Each command
//!   carries the closing's clock stamp (`causation_hlc`), so the
//!   stand-down is stamped after the closing whatever this service's
//!   clock says.
//!
//! Must not: hold a rule (the contract has them all), call the crisis or
//! operations service or depend on their runtimes, or lose a closing (the
//! reaction waits, the log keeps what is not read yet).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use concord_bus::consumer::{Checkpoint, Consumer, start_of_log};
use concord_bus::follow::{Followed, KEEP_EVENTS_MAX, KEEP_INTERVAL};
use concord_bus::runtime::{Bound, Host, read_event};
use concord_bus::service::{self, Config, Error, Log, Part, follow};

use concord_contracts::crisis::{self, Crisis};
use concord_contracts::deployments::{self, Command, DeploymentsFacts, RequestStandDown, State};
use concord_contracts::operations::{self, Operations};
use concord_core::country::SECRETARIAT;
use concord_core::decider::Aggregate;
use concord_core::reply::{ErrorCode, Reply};
use concord_core::tagged::to_tagged;
use concord_core::{Actor, CountryCode, Hlc, Role, subjects};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

pub use concord_contracts::deployments::Deployments;

/// Who the choreography's commands name as their actor.
pub const CHOREOGRAPHY_SUB: &str = "deployments-choreography";
/// Why the choreography asks a team to stand down.
const STAND_DOWN_REASON: &str = "the crisis was closed";
/// Pause between attempts when a stand-down command gets no answer or
/// `unavailable`.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause between looks at the facts while they have not folded a closing
/// the reactor already read (both follow the crisis log, each at its pace).
const FACTS_POLL: Duration = Duration::from_millis(20);
/// Crisis closings read from the crisis log and not yet reacted to.
///
/// Bounded because at a first start the closings are read from the start
/// of the crisis log (later starts from where the reactor last kept), and
/// the reaction to each (waiting for the own
/// log, one command per deployment due, retried while unavailable) is far
/// slower than reading: unbounded, the queue would hold the whole history.
/// When it is full, the reader of closings waits and reads no further; the
/// crisis log keeps the rest, so no closing is lost. The wait holds up
/// nothing else: the crises the contract decides with are folded by
/// another follower (which commands, the stand-downs included, wait for),
/// so a full queue cannot stall the very commands that drain it.
pub const CLOSINGS_QUEUED_MAX: usize = 64;

/// Follows the crisis and operations logs into the facts, binds the
/// deployments subjects and starts the choreography; the subjects answer
/// when this returns.
pub async fn bind(cfg: &Config, client: async_nats::Client) -> Result<Bound<Deployments>, Error> {
    let log = service::open::<Deployments>(cfg).await?;
    let facts = Arc::new(RwLock::new(DeploymentsFacts::default()));
    let crisis_log = follow::<Crisis, _, _, _>(
        client.clone(),
        &log,
        facts.clone(),
        Part {
            name: "crises",
            get: |f: &DeploymentsFacts| &f.crises,
            get_mut: |f: &mut DeploymentsFacts| &mut f.crises,
        },
        |crises, envelope, event| crises.apply(crisis::STREAM.id_of(&envelope.stream)?, &event),
    )
    .await?;
    let operations_log = follow::<Operations, _, _, _>(
        client.clone(),
        &log,
        facts.clone(),
        Part {
            name: "membership",
            get: |f: &DeploymentsFacts| &f.operations,
            get_mut: |f: &mut DeploymentsFacts| &mut f.operations,
        },
        |operations, envelope, event| operations.apply(operations::STREAM.id_of(&envelope.stream)?, &event),
    )
    .await?;
    let (bound, started) = oneshot::channel();
    let reactor = choreography(client.clone(), &log, facts.clone(), started).await?;
    let host = Host {
        facts,
        followed: vec![crisis_log, operations_log],
        tasks: vec![reactor],
        ..Host::default()
    };
    let service = service::bind_log(log, client, host).await?;
    // Its stand-downs are commands to the subjects just bound.
    let _ = bound.send(());
    Ok(service)
}

// ---------------------------------------------------------------- the choreography

/// A crisis that closed: the id of its closing event keys the reaction,
/// its clock stamp goes with the commands it causes.
struct Closed {
    crisis_id: Uuid,
    event_id: String,
    hlc: Hlc,
}

/// Every deployment's state, folded from the service's own log: the runtime
/// keeps the state of the streams it was asked about, the choreography
/// needs every deployment of a crisis.
type Index = HashMap<Uuid, State>;

/// What the reactor reads besides the closings.
struct Reactor {
    client: async_nats::Client,
    /// The service's facts: a stand-down is asked for once they hold the
    /// closing, as `decide` needs.
    facts: Arc<RwLock<DeploymentsFacts>>,
    index: Arc<RwLock<Index>>,
    own_log: Followed,
    log: Log,
}

/// The reactor: follows the own log into the index and the crisis log's
/// closings, and once the service is bound (`started`), asks for the
/// stand-downs each closing calls for. Ends, doing nothing, when the
/// service was not bound.
async fn choreography(
    client: async_nats::Client,
    log: &Log,
    facts: Arc<RwLock<DeploymentsFacts>>,
    started: oneshot::Receiver<()>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let index: Arc<RwLock<Index>> = Arc::default();
    let own_log = follow::<Deployments, _, _, _>(
        client.clone(),
        log,
        index.clone(),
        Part::whole("stand-down index"),
        |index, envelope, event| {
            let id = deployments::STREAM.id_of(&envelope.stream)?;
            let state = index.remove(&id).unwrap_or_default();
            index.insert(id, Deployments::evolve(state, &event)?);
            Ok(())
        },
    )
    .await?;
    let from = closings_kept(log).await;
    let crisis_log = Consumer::start(client.clone(), Crisis::SERVICE, from)
        .await?
        .named("deployments-stand-down");
    let log = log.clone();
    Ok(tokio::spawn(async move {
        if started.await.is_err() {
            return;
        }
        let (closings, closed) = mpsc::channel(CLOSINGS_QUEUED_MAX);
        let reactor = Reactor {
            client,
            facts,
            index,
            own_log,
            log,
        };
        tokio::join!(read_closings(crisis_log, closings), reactor.react(closed));
    }))
}

/// Where the reader of closings stands in the crisis log, kept beside the
/// deployments log once every closing before it was reacted to: a restart
/// reads on from there instead of from seq 1 (reacting again to a closing
/// after it is harmless, the command ids being derived, but slow).
const CLOSINGS_VIEW: &str = "crisis:closings";

/// The kept checkpoint of the reader of closings, or the start of the log.
async fn closings_kept(log: &Log) -> Checkpoint {
    let l = log.clone();
    match tokio::task::spawn_blocking(move || l.kept_view(CLOSINGS_VIEW)).await {
        Ok(Ok(Some(bytes))) => match serde_json::from_slice(&bytes) {
            Ok(at) => at,
            Err(e) => {
                tracing::warn!(error = %e, "the kept checkpoint of closings does not read; reading from seq 1");
                start_of_log()
            }
        },
        Ok(Ok(None)) => start_of_log(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read the kept checkpoint of closings; reading from seq 1");
            start_of_log()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the kept checkpoint of closings; reading from seq 1");
            start_of_log()
        }
    }
}

/// What the reader hands the reactor, in crisis log order.
enum Work {
    /// React to a closing; then the reader stands at the checkpoint.
    Closed(Closed, Checkpoint),
    /// Events without a closing were read up to the checkpoint.
    Passed(Checkpoint),
}

/// Hands every `crisis.closed` of the crisis log to the reactor, in order,
/// with where the reader stands (and, every `KEEP_EVENTS_MAX` events or
/// `KEEP_INTERVAL` of events without one, just where it stands); waits
/// while `CLOSINGS_QUEUED_MAX` are queued. Stops at an event it cannot
/// read, as every follower of that log does.
async fn read_closings(mut crisis_log: Consumer, closings: mpsc::Sender<Work>) {
    let mut passed = 0u64;
    let mut told = std::time::Instant::now();
    loop {
        let envelope = match crisis_log.next().await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "stopped reading crisis closings; no more stand-downs");
                return;
            }
        };
        let closed = match read_event::<Crisis>(&envelope) {
            Ok(crisis::Event::CrisisClosed(_)) => crisis::STREAM.id_of(&envelope.stream),
            Ok(_) => {
                passed += 1;
                if passed >= KEEP_EVENTS_MAX || told.elapsed() >= KEEP_INTERVAL {
                    if closings
                        .send(Work::Passed(crisis_log.position().clone()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    (passed, told) = (0, std::time::Instant::now());
                }
                continue;
            }
            Err(why) => Err(why),
        };
        let crisis_id = match closed {
            Ok(id) => id,
            Err(why) => {
                tracing::error!(seq = envelope.seq, %why, "stopped reading crisis closings; no more stand-downs");
                return;
            }
        };
        let closed = Closed {
            crisis_id,
            event_id: envelope.id.to_string(),
            hlc: envelope.hlc,
        };
        if closings
            .send(Work::Closed(closed, crisis_log.position().clone()))
            .await
            .is_err()
        {
            return;
        }
        (passed, told) = (0, std::time::Instant::now());
    }
}

impl Reactor {
    /// For each closed crisis, once the facts hold its closing and the
    /// index has caught up with the own log, a `request_stand_down` per
    /// deployment still awaiting one.
    async fn react(self, mut work: mpsc::Receiver<Work>) {
        while let Some(w) = work.recv().await {
            let (c, at) = match w {
                Work::Closed(c, at) => (c, at),
                Work::Passed(at) => {
                    self.keep(&at).await;
                    continue;
                }
            };
            // Both follow the crisis log: the facts may not have folded the
            // closing yet, and a stand-down decided before they do would be
            // refused ("not closed") and not asked again until a restart.
            loop {
                match self.facts.read() {
                    Ok(facts) if facts.crises.get(c.crisis_id).is_some_and(|crisis| crisis.closed) => break,
                    Ok(_) => {}
                    Err(_) => {
                        tracing::error!("the deployments facts lock is poisoned; no stand-downs");
                        return;
                    }
                }
                tokio::time::sleep(FACTS_POLL).await;
            }
            while let Err(r) = self.own_log.caught_up().await {
                tracing::warn!(why = %r, "stand-downs wait for the deployments index");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            let due: Vec<Uuid> = match self.index.read() {
                Ok(all) => all
                    .iter()
                    .filter(|(_, s)| s.awaits_stand_down(c.crisis_id))
                    .map(|(id, _)| *id)
                    .collect(),
                Err(_) => {
                    tracing::error!("the deployments index lock is poisoned; no stand-downs");
                    return;
                }
            };
            for deployment_id in due {
                request_stand_down(&self.client, &c, deployment_id).await;
            }
            self.keep(&at).await;
        }
    }

    /// Keeps where the reader of closings stood once everything before it
    /// was reacted to. A failure only makes the next start read more.
    async fn keep(&self, at: &Checkpoint) {
        let Ok(bytes) = serde_json::to_vec(at) else { return };
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.keep_view(CLOSINGS_VIEW, &bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot keep the checkpoint of closings"),
            Err(e) => tracing::warn!(error = %e, "cannot keep the checkpoint of closings"),
        }
    }
}

/// Sends the stand-down of `deployment_id` for closing `c` until it is
/// answered, retrying while the answer is `unavailable` or none comes.
async fn request_stand_down(client: &async_nats::Client, c: &Closed, deployment_id: Uuid) {
    let command = Command::RequestStandDown(RequestStandDown {
        deployment_id,
        crisis_id: c.crisis_id,
        reason: STAND_DOWN_REASON.to_owned(),
    });
    let (name, data) = match to_tagged(&command) {
        Ok(tagged) => tagged,
        Err(e) => {
            tracing::error!(%deployment_id, error = %e, "stand-down command does not serialize");
            return;
        }
    };
    let actor = Actor {
        sub: CHOREOGRAPHY_SUB.to_owned(),
        role: Role::Liaison,
        country: CountryCode::parse(SECRETARIAT).expect("GS is in the country list"),
    };
    let envelope = json!({
        // Derived, so a repeated reaction (a redelivered event, a restart)
        // is the same command and answers its first result.
        "command_id": format!("stand-down:{}:{deployment_id}", c.event_id),
        "actor": actor,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": c.event_id,
        "causation_id": c.event_id,
        // The stand-down is stamped after the closing, whatever this
        // service's clock says.
        "causation_hlc": c.hlc,
        "data": data,
    });
    let Ok(body) = serde_json::to_vec(&envelope) else {
        return;
    };
    let subject = subjects::command(Deployments::SERVICE.as_str(), &name);
    loop {
        match client.request(subject.clone(), body.clone().into()).await {
            Ok(msg) => {
                match Reply::parse(&msg.payload) {
                    Ok(Reply::Ok(_)) => {}
                    Ok(Reply::Err(e)) if e.code == ErrorCode::Unavailable => {
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                    other => tracing::error!(%deployment_id, reply = ?other, "stand-down refused"),
                }
                return;
            }
            Err(e) => {
                tracing::warn!(%deployment_id, error = %e, "stand-down request failed; retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
