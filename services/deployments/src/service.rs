//! The deployments service on the kernel runtime: maps NATS commands and
//! queries to the pure `domain`; follows the crisis and operations logs
//! into views (it never calls those services); and runs the choreography:
//! when a crisis closes, it asks, through its own command, for the stand-
//! down of every active deployment linked to it — exactly once, because
//! the command's id is derived from the closing event and the deployment,
//! and the decider has nothing to do for a stand-down already requested.
//! No rule lives here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use concord_bus::consumer::ConsumerError;
use concord_bus::follow::Followed;
use concord_bus::legacy::{self, Aggregate, Ctx, Rejection, RuntimeError};
use concord_contracts::operations::membership::OperationsView;
use concord_core::reply::{ErrorCode, Reply};
use concord_core::{Actor, CountryCode, EventEnvelope, Role, Service, subjects};
use concord_log::{Appended, Log, NewEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::{self, COMMANDS, CrisesView, EVENT_SCHEMA_VERSION, EVENT_TYPES, Event};

/// Command schemas, in the order of `domain::COMMANDS`.
const COMMAND_SCHEMAS: [&str; 7] = [
    include_str!("../../../schemas/commands/deployments/request_deployment.schema.json"),
    include_str!("../../../schemas/commands/deployments/approve_deployment.schema.json"),
    include_str!("../../../schemas/commands/deployments/decline_deployment.schema.json"),
    include_str!("../../../schemas/commands/deployments/mark_arrived.schema.json"),
    include_str!("../../../schemas/commands/deployments/end_deployment.schema.json"),
    include_str!("../../../schemas/commands/deployments/recall.schema.json"),
    include_str!("../../../schemas/commands/deployments/request_stand_down.schema.json"),
];
/// Event data schemas, in the order of `domain::EVENT_TYPES`.
const EVENT_SCHEMAS: [&str; 7] = [
    include_str!("../../../schemas/events/deployments/deployment.requested.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.approved.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.declined.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.arrived.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.ended.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.recalled.schema.json"),
    include_str!("../../../schemas/events/deployments/deployment.stand_down_requested.schema.json"),
];
const GET_SCHEMA: &str = include_str!("../../../schemas/queries/deployments/get.schema.json");

/// Who the choreography's commands name as their actor.
pub const CHOREOGRAPHY_SUB: &str = "deployments-choreography";
/// Pause between attempts when a stand-down command gets no answer.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Config {
    /// The service's own log directory (`<data>/deployments`).
    pub log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] concord_log::LogError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
}

pub struct Deployments {
    crises: Arc<RwLock<CrisesView>>,
    operations: Arc<RwLock<OperationsView>>,
    crisis_log: Followed,
    operations_log: Followed,
}

pub struct DeploymentsService {
    bound: legacy::Bound<Deployments>,
    reactor: tokio::task::JoinHandle<()>,
    _own_log: Arc<Followed>,
}

impl DeploymentsService {
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let r = self.bound.run(shutdown).await;
        self.reactor.abort();
        Ok(r?)
    }
}

/// A crisis that closed: the id of its closing event keys the reaction.
struct Closed {
    crisis_id: Uuid,
    event_id: String,
}

/// Follows the crisis, operations and own logs, binds the deployments
/// subjects and starts the choreography.
pub async fn bind(cfg: Config, client: async_nats::Client) -> Result<DeploymentsService, Error> {
    let log = Log::open(&cfg.log_dir, Service::Deployments)?;

    let crises = Arc::new(RwLock::new(CrisesView::default()));
    let (closed_tx, closed_rx) = mpsc::unbounded_channel::<Closed>();
    let fold = crises.clone();
    let crisis_log = Followed::start(client.clone(), Service::Crisis, move |e| {
        match fold.write() {
            Ok(mut v) => v.apply(&e.stream, &e.event_type, &e.data)?,
            Err(_) => return Err("the crises view lock is poisoned".to_owned()),
        }
        if e.event_type == "crisis.closed"
            && let Some(crisis_id) = e.stream.strip_prefix("crisis-").and_then(|s| Uuid::parse_str(s).ok())
        {
            let _ = closed_tx.send(Closed {
                crisis_id,
                event_id: e.id.to_string(),
            });
        }
        Ok(())
    })
    .await?;

    let operations = Arc::new(RwLock::new(OperationsView::default()));
    let fold = operations.clone();
    let operations_log = Followed::start(client.clone(), Service::Operations, move |e| match fold.write() {
        Ok(mut v) => v.apply_stored(&e.stream, &e.event_type, &e.data),
        Err(_) => Err("the operations view lock is poisoned".to_owned()),
    })
    .await?;

    // The choreography needs every deployment's state, not one stream's:
    // it follows its own log too.
    let deployments: Arc<Mutex<HashMap<Uuid, domain::State>>> = Arc::default();
    let fold = deployments.clone();
    let own_log = Arc::new(
        Followed::start(client.clone(), Service::Deployments, move |e| {
            let Some(id) = e
                .stream
                .strip_prefix("deployment-")
                .and_then(|s| Uuid::parse_str(s).ok())
            else {
                return Err(format!("event on stream {:?}, not deployment-<uuid>", e.stream));
            };
            let event = Event::from_parts(&e.event_type, &e.data)?;
            let mut all = fold
                .lock()
                .map_err(|_| "the deployments index lock is poisoned".to_owned())?;
            let state = all.remove(&id).unwrap_or_default();
            all.insert(id, domain::try_evolve(state, &event)?);
            Ok(())
        })
        .await?,
    );

    let aggregate = Deployments {
        crises,
        operations,
        crisis_log,
        operations_log,
    };
    let bound = legacy::bind(client.clone(), log, aggregate).await?;
    let reactor = tokio::spawn(react(client, closed_rx, deployments, own_log.clone()));
    Ok(DeploymentsService {
        bound,
        reactor,
        _own_log: own_log,
    })
}

/// For each closed crisis, once the own-log index has caught up, a
/// `request_stand_down` per deployment still awaiting one.
async fn react(
    client: async_nats::Client,
    mut closed: mpsc::UnboundedReceiver<Closed>,
    deployments: Arc<Mutex<HashMap<Uuid, domain::State>>>,
    own_log: Arc<Followed>,
) {
    while let Some(c) = closed.recv().await {
        while let Err(r) = own_log.caught_up().await {
            tracing::warn!(why = %r.message, "stand-downs wait for the deployments index");
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let due: Vec<Uuid> = match deployments.lock() {
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
            request_stand_down(&client, &c, deployment_id).await;
        }
    }
}

async fn request_stand_down(client: &async_nats::Client, c: &Closed, deployment_id: Uuid) {
    let actor = Actor {
        sub: CHOREOGRAPHY_SUB.to_owned(),
        role: Role::Liaison,
        country: CountryCode::parse(concord_core::country::SECRETARIAT)
            .unwrap_or_else(|_| unreachable!("GS is a country code")),
    };
    let envelope = json!({
        // Derived, so a repeated reaction (a redelivered event, a restart)
        // is the same command and answers its first result.
        "command_id": format!("stand-down:{}:{deployment_id}", c.event_id),
        "actor": actor,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "correlation_id": c.event_id,
        "causation_id": c.event_id,
        "data": {"deployment_id": deployment_id, "crisis_id": c.crisis_id, "reason": "the crisis was closed"},
    });
    let Ok(body) = serde_json::to_vec(&envelope) else {
        return;
    };
    let subject = subjects::command(Service::Deployments.as_str(), "request_stand_down");
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

fn rejection(r: domain::Rejection) -> Rejection {
    Rejection::new(r.code(), r.to_string())
}

fn poisoned(what: &str) -> Rejection {
    Rejection::new(ErrorCode::Internal, format!("the {what} view lock is poisoned"))
}

impl Aggregate for Deployments {
    type State = domain::State;

    fn service(&self) -> Service {
        Service::Deployments
    }

    fn commands(&self) -> Vec<(&'static str, &'static str)> {
        COMMANDS.into_iter().zip(COMMAND_SCHEMAS).collect()
    }

    fn events(&self) -> Vec<(&'static str, &'static str)> {
        EVENT_TYPES.into_iter().zip(EVENT_SCHEMAS).collect()
    }

    fn stream(&self, command: &str, data: &Value) -> Result<String, Rejection> {
        let cmd = domain::parse_command(command, data.clone()).map_err(rejection)?;
        Ok(domain::stream_of(&cmd))
    }

    async fn sync(&self) -> Result<(), Rejection> {
        self.crisis_log.caught_up().await?;
        self.operations_log.caught_up().await
    }

    fn decide(
        &self,
        state: &domain::State,
        command: &str,
        data: &Value,
        ctx: &Ctx,
    ) -> Result<Vec<NewEvent>, Rejection> {
        let cmd = domain::parse_command(command, data.clone()).map_err(rejection)?;
        let dctx = domain::Ctx {
            actor: ctx.actor.clone(),
            now: ctx.now.clone(),
        };
        let crises = self.crises.read().map_err(|_| poisoned("crises"))?;
        let operations = self.operations.read().map_err(|_| poisoned("operations"))?;
        let events = domain::decide(state, &cmd, &crises, &operations, &dctx).map_err(rejection)?;
        Ok(events
            .iter()
            .map(|e| NewEvent {
                event_type: e.event_type().to_owned(),
                schema_version: EVENT_SCHEMA_VERSION,
                data: e.data(),
            })
            .collect())
    }

    fn evolve(&self, state: domain::State, event: &EventEnvelope) -> Result<domain::State, String> {
        let e = Event::from_parts(&event.event_type, &event.data)?;
        domain::try_evolve(state, &e)
    }

    fn reply(&self, _command: &str, data: &Value, appended: &Appended) -> Value {
        let id = appended
            .events
            .first()
            .and_then(|e| e.stream.strip_prefix("deployment-"))
            .map(|s| json!(s))
            .or_else(|| data.get("deployment_id").cloned());
        json!({
            "id": id,
            "version": appended.version(),
            "events": appended.events.iter().map(|e| json!({"seq": e.seq, "type": e.event_type})).collect::<Vec<_>>(),
        })
    }

    fn queries(&self) -> Vec<(&'static str, &'static str)> {
        vec![("get", GET_SCHEMA)]
    }

    fn query_stream(&self, _query: &str, body: &Value) -> Result<String, Rejection> {
        body.get("deployment_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(|id| format!("deployment-{id}"))
            .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "deployment_id must be a UUID"))
    }

    fn answer(&self, _query: &str, body: &Value, state: &domain::State, version: u64) -> Result<Value, Rejection> {
        let country = body
            .get("country")
            .and_then(Value::as_str)
            .and_then(|c| CountryCode::parse(c).ok())
            .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "country must be a country code"))?;
        let role: Role = body
            .get("role")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or(Role::Liaison);
        let asker = Actor {
            sub: "query".into(),
            role,
            country,
        };
        // Same answer for unknown and invisible: existence must not leak.
        if state.visible_to(&asker) {
            let mut view = state.view();
            view["version"] = json!(version);
            Ok(json!({ "deployment": view }))
        } else {
            Err(Rejection::new(ErrorCode::NotFound, "deployment not found"))
        }
    }
}
