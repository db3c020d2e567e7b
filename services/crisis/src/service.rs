//! The crisis service on the kernel runtime: maps NATS commands and
//! queries to the pure `domain`, and keeps `domain::TeamsView` (which
//! countries have a team deployed for a crisis) current by following the
//! deployments log (it never calls the deployments service). No rule lives
//! here.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use concord_bus::consumer::ConsumerError;
use concord_bus::follow::Followed;
use concord_bus::legacy::{self, Aggregate, Ctx, Rejection, RuntimeError};
use concord_core::reply::ErrorCode;
use concord_core::{EventEnvelope, Service};
use concord_log::{Appended, Log, NewEvent};
use serde_json::{Value, json};

use crate::domain::{self, COMMANDS, EVENT_SCHEMA_VERSION, EVENT_TYPES, Event, TeamsView};

/// Command schemas, in the order of `domain::COMMANDS`.
const COMMAND_SCHEMAS: [&str; 6] = [
    include_str!("../../../schemas/commands/crisis/declare_crisis.schema.json"),
    include_str!("../../../schemas/commands/crisis/post_sitrep.schema.json"),
    include_str!("../../../schemas/commands/crisis/request_assistance.schema.json"),
    include_str!("../../../schemas/commands/crisis/escalate.schema.json"),
    include_str!("../../../schemas/commands/crisis/deescalate.schema.json"),
    include_str!("../../../schemas/commands/crisis/close_crisis.schema.json"),
];
/// Event data schemas, in the order of `domain::EVENT_TYPES`.
const EVENT_SCHEMAS: [&str; 6] = [
    include_str!("../../../schemas/events/crisis/crisis.declared.schema.json"),
    include_str!("../../../schemas/events/crisis/sitrep.posted.schema.json"),
    include_str!("../../../schemas/events/crisis/assistance.requested.schema.json"),
    include_str!("../../../schemas/events/crisis/crisis.escalated.schema.json"),
    include_str!("../../../schemas/events/crisis/crisis.deescalated.schema.json"),
    include_str!("../../../schemas/events/crisis/crisis.closed.schema.json"),
];
const GET_SCHEMA: &str = include_str!("../../../schemas/queries/crisis/get.schema.json");

#[derive(Debug, Clone)]
pub struct Config {
    /// The service's own log directory (`<data>/crisis`).
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

pub struct Crisis {
    teams: Arc<RwLock<TeamsView>>,
    deployments: Followed,
}

pub struct CrisisService {
    bound: legacy::Bound<Crisis>,
}

impl CrisisService {
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        Ok(self.bound.run(shutdown).await?)
    }
}

/// Starts following the deployments log and binds the crisis subjects.
pub async fn bind(cfg: Config, client: async_nats::Client) -> Result<CrisisService, Error> {
    let log = Log::open(&cfg.log_dir, Service::Crisis)?;
    let teams = Arc::new(RwLock::new(TeamsView::default()));
    let fold = teams.clone();
    let deployments = Followed::start(client.clone(), Service::Deployments, move |e| match fold.write() {
        Ok(mut v) => v.apply(&e.stream, &e.event_type, &e.data),
        Err(_) => Err("the teams view lock is poisoned".to_owned()),
    })
    .await?;
    let bound = legacy::bind(client, log, Crisis { teams, deployments }).await?;
    Ok(CrisisService { bound })
}

fn rejection(r: domain::Rejection) -> Rejection {
    Rejection::new(r.code(), r.to_string())
}

impl Aggregate for Crisis {
    type State = domain::State;

    fn service(&self) -> Service {
        Service::Crisis
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

    fn sync(&self) -> impl Future<Output = Result<(), Rejection>> + Send {
        self.deployments.caught_up()
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
        let teams = self
            .teams
            .read()
            .map_err(|_| Rejection::new(ErrorCode::Internal, "the teams view lock is poisoned"))?;
        let events = domain::decide(state, &cmd, &teams, &dctx).map_err(rejection)?;
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

    fn reply(&self, command: &str, data: &Value, appended: &Appended) -> Value {
        let crisis_id = appended
            .events
            .first()
            .and_then(|e| e.stream.strip_prefix("crisis-"))
            .map(|s| json!(s))
            .or_else(|| data.get("crisis_id").cloned());
        // What the command created: a sitrep or an assistance request; the
        // crisis otherwise. From the recorded event when there is one.
        let created = |field: &str| {
            appended
                .events
                .first()
                .and_then(|e| e.data.get(field))
                .or_else(|| data.get(field))
                .cloned()
        };
        let id = match command {
            "post_sitrep" => created("sitrep_id"),
            "request_assistance" => created("request_id"),
            _ => crisis_id.clone(),
        };
        json!({
            "id": id,
            "crisis_id": crisis_id,
            "version": appended.version(),
            "events": appended.events.iter().map(|e| json!({"seq": e.seq, "type": e.event_type})).collect::<Vec<_>>(),
        })
    }

    fn queries(&self) -> Vec<(&'static str, &'static str)> {
        vec![("get", GET_SCHEMA)]
    }

    fn query_stream(&self, _query: &str, body: &Value) -> Result<String, Rejection> {
        body.get("crisis_id")
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(|id| format!("crisis-{id}"))
            .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "crisis_id must be a UUID"))
    }

    fn answer(&self, _query: &str, _body: &Value, state: &domain::State, version: u64) -> Result<Value, Rejection> {
        // Every country sees a crisis and its sitreps (DESIGN.md, Visibility).
        match state {
            domain::State::Empty => Err(Rejection::new(ErrorCode::NotFound, "crisis not found")),
            _ => {
                let mut view = state.view();
                view["version"] = json!(version);
                Ok(json!({ "crisis": view }))
            }
        }
    }
}
