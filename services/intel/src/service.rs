//! The intel service on the kernel runtime: maps NATS commands and queries
//! to the pure `domain`, and keeps `domain::OperationsView` current by
//! following the operations service's log with the kernel consumer (it
//! never calls the operations service). No rule lives here.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use concord_bus::consumer::ConsumerError;
use concord_bus::follow::Followed;
use concord_bus::legacy::{self, Aggregate, Ctx, Rejection, RuntimeError};
use concord_core::reply::ErrorCode;
use concord_core::{Actor, CountryCode, EventEnvelope, Role, Service};
use concord_log::{Appended, Log, NewEvent};
use serde_json::{Value, json};

use crate::domain::{self, COMMANDS, EVENT_SCHEMA_VERSION, Event, OperationsView};

/// Command schemas, in the order of `domain::COMMANDS`.
const COMMAND_SCHEMAS: [&str; 7] = [
    include_str!("../../../schemas/commands/intel/post_lead.schema.json"),
    include_str!("../../../schemas/commands/intel/amend_lead.schema.json"),
    include_str!("../../../schemas/commands/intel/retract_lead.schema.json"),
    include_str!("../../../schemas/commands/intel/report_arrest.schema.json"),
    include_str!("../../../schemas/commands/intel/request_notice.schema.json"),
    include_str!("../../../schemas/commands/intel/review_notice.schema.json"),
    include_str!("../../../schemas/commands/intel/cancel_notice.schema.json"),
];
/// Event data schemas, in the order of `domain::EVENT_TYPES`.
const EVENT_SCHEMAS: [&str; 8] = [
    include_str!("../../../schemas/events/intel/lead.posted.schema.json"),
    include_str!("../../../schemas/events/intel/lead.amended.schema.json"),
    include_str!("../../../schemas/events/intel/lead.retracted.schema.json"),
    include_str!("../../../schemas/events/intel/arrest.reported.schema.json"),
    include_str!("../../../schemas/events/intel/notice.requested.schema.json"),
    include_str!("../../../schemas/events/intel/notice.published.schema.json"),
    include_str!("../../../schemas/events/intel/notice.rejected.schema.json"),
    include_str!("../../../schemas/events/intel/notice.cancelled.schema.json"),
];
const GET_SCHEMA: &str = include_str!("../../../schemas/queries/intel/get.schema.json");

#[derive(Debug, Clone)]
pub struct Config {
    /// The service's own log directory (`<data>/intel`).
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

pub struct Intel {
    view: Arc<RwLock<OperationsView>>,
    operations: Followed,
}

/// The bound service (following the operations log until it stops).
pub struct IntelService {
    bound: legacy::Bound<Intel>,
}

impl IntelService {
    /// Answers until `shutdown` resolves, then stops following.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        Ok(self.bound.run(shutdown).await?)
    }
}

/// Starts following the operations log and binds the intel subjects; they
/// answer when this returns.
pub async fn bind(cfg: Config, client: async_nats::Client) -> Result<IntelService, Error> {
    let log = Log::open(&cfg.log_dir, Service::Intel)?;
    let view = Arc::new(RwLock::new(OperationsView::default()));
    // The view is rebuilt from the start of the operations log at every
    // start: it is small (membership and status only) and never stale.
    let fold = view.clone();
    let operations = Followed::start(client.clone(), Service::Operations, move |e| match fold.write() {
        Ok(mut v) => v.apply_stored(&e.stream, &e.event_type, &e.data),
        Err(_) => Err("the operations view lock is poisoned".to_owned()),
    })
    .await?;
    let intel = Intel { view, operations };
    let bound = legacy::bind(client, log, intel).await?;
    Ok(IntelService { bound })
}

pub async fn run(
    cfg: Config,
    client: async_nats::Client,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    bind(cfg, client).await?.run(shutdown).await
}

fn rejection(r: domain::Rejection) -> Rejection {
    Rejection::new(r.code(), r.to_string())
}

impl Intel {
    fn view(&self) -> Result<std::sync::RwLockReadGuard<'_, OperationsView>, Rejection> {
        self.view
            .read()
            .map_err(|_| Rejection::new(ErrorCode::Internal, "the operations view lock is poisoned"))
    }
}

impl Aggregate for Intel {
    type State = domain::State;

    fn service(&self) -> Service {
        Service::Intel
    }

    fn commands(&self) -> Vec<(&'static str, &'static str)> {
        COMMANDS.into_iter().zip(COMMAND_SCHEMAS).collect()
    }

    fn events(&self) -> Vec<(&'static str, &'static str)> {
        domain::EVENT_TYPES.into_iter().zip(EVENT_SCHEMAS).collect()
    }

    fn stream(&self, command: &str, data: &Value) -> Result<String, Rejection> {
        let cmd = domain::parse_command(command, data.clone()).map_err(rejection)?;
        Ok(domain::stream_of(&cmd))
    }

    fn sync(&self) -> impl Future<Output = Result<(), Rejection>> + Send {
        self.operations.caught_up()
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
        let events = domain::decide(state, &cmd, &*self.view()?, &dctx).map_err(rejection)?;
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
        // The id of what the command created or changed, from the recorded
        // events when there are any (a retry may carry fresh ids).
        let from_stream = appended
            .events
            .first()
            .and_then(|e| e.stream.split_once('-'))
            .map(|(_, id)| json!(id));
        let field = match command {
            "post_lead" | "amend_lead" | "retract_lead" => "lead_id",
            "report_arrest" => "arrest_id",
            _ => "notice_id",
        };
        json!({
            "id": from_stream.or_else(|| data.get(field).cloned()),
            "version": appended.version(),
            "events": appended.events.iter().map(|e| json!({"seq": e.seq, "type": e.event_type})).collect::<Vec<_>>(),
        })
    }

    fn queries(&self) -> Vec<(&'static str, &'static str)> {
        vec![("get", GET_SCHEMA)]
    }

    fn query_stream(&self, _query: &str, body: &Value) -> Result<String, Rejection> {
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "id must be a UUID"))?;
        match kind {
            "lead" | "arrest" | "notice" => Ok(format!("{kind}-{id}")),
            other => Err(Rejection::new(ErrorCode::Invalid, format!("unknown kind {other:?}"))),
        }
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
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("item");
        // Same answer for unknown and invisible: existence must not leak.
        if state.visible_to(&asker, &*self.view()?) {
            let mut view = state.view();
            view["version"] = json!(version);
            Ok(json!({ kind: view }))
        } else {
            Err(Rejection::new(ErrorCode::NotFound, format!("{kind} not found")))
        }
    }
}
