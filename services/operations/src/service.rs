//! The operations service on the kernel runtime: maps NATS commands and
//! queries to the pure `domain` and back. No rule lives here.

use std::path::PathBuf;

use concord_bus::runtime::{self, Aggregate, Ctx, Rejection, RuntimeError};
use concord_core::reply::ErrorCode;
use concord_core::{CountryCode, EventEnvelope, Service};
use concord_log::{Appended, Log, NewEvent};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::{self, COMMANDS, EVENT_SCHEMA_VERSION, Event};

/// Command schemas, in the order of `domain::COMMANDS`.
const COMMAND_SCHEMAS: [&str; 6] = [
    include_str!("../../../schemas/commands/operations/open.schema.json"),
    include_str!("../../../schemas/commands/operations/add_participant.schema.json"),
    include_str!("../../../schemas/commands/operations/remove_participant.schema.json"),
    include_str!("../../../schemas/commands/operations/assign_task.schema.json"),
    include_str!("../../../schemas/commands/operations/update_task_status.schema.json"),
    include_str!("../../../schemas/commands/operations/close.schema.json"),
];
/// Event data schemas, in the order of `domain::EVENT_TYPES`.
const EVENT_SCHEMAS: [&str; 6] = [
    include_str!("../../../schemas/events/operations/operation.opened.schema.json"),
    include_str!("../../../schemas/events/operations/participant.added.schema.json"),
    include_str!("../../../schemas/events/operations/participant.removed.schema.json"),
    include_str!("../../../schemas/events/operations/task.assigned.schema.json"),
    include_str!("../../../schemas/events/operations/task.status_changed.schema.json"),
    include_str!("../../../schemas/events/operations/operation.closed.schema.json"),
];
const GET_SCHEMA: &str = include_str!("../../../schemas/queries/operations/get.schema.json");

/// Where and how the service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service's own log directory (`<data>/operations`).
    pub log_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] concord_log::LogError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Runs the operations service on `client` until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    client: async_nats::Client,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let log = Log::open(&cfg.log_dir, Service::Operations)?;
    runtime::run(client, log, Operations, shutdown).await?;
    Ok(())
}

/// Binds the service's subjects and returns once they answer (tests and
/// `concord up` use it to know the service is ready).
pub async fn bind(cfg: Config, client: async_nats::Client) -> Result<runtime::Bound<Operations>, Error> {
    let log = Log::open(&cfg.log_dir, Service::Operations)?;
    Ok(runtime::bind(client, log, Operations).await?)
}

pub struct Operations;

fn operation_id(data: &Value) -> Result<Uuid, Rejection> {
    data.get("operation_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "operation_id must be a UUID"))
}

fn rejection(r: domain::Rejection) -> Rejection {
    Rejection::new(r.code(), r.to_string())
}

pub fn stream_of(id: Uuid) -> String {
    format!("operation-{id}")
}

impl Aggregate for Operations {
    type State = domain::State;

    fn service(&self) -> Service {
        Service::Operations
    }

    fn commands(&self) -> Vec<(&'static str, &'static str)> {
        COMMANDS.into_iter().zip(COMMAND_SCHEMAS).collect()
    }

    fn events(&self) -> Vec<(&'static str, &'static str)> {
        domain::EVENT_TYPES.into_iter().zip(EVENT_SCHEMAS).collect()
    }

    fn stream(&self, _command: &str, data: &Value) -> Result<String, Rejection> {
        operation_id(data).map(stream_of)
    }

    fn decide(
        &self,
        state: &domain::State,
        command: &str,
        data: &Value,
        ctx: &Ctx,
    ) -> Result<Vec<NewEvent>, Rejection> {
        let id = operation_id(data)?;
        // The id addresses the stream; the command body is the rest.
        let mut body = data.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("operation_id");
        }
        let cmd = domain::parse_command(command, body).map_err(rejection)?;
        let dctx = domain::Ctx {
            actor: ctx.actor.clone(),
            operation_id: id,
            now: ctx.now.clone(),
        };
        let events = domain::decide(state, &cmd, &dctx).map_err(rejection)?;
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
        // `id` is what the command created or changed: the task for task
        // commands, the operation otherwise (DESIGN.md, HTTP API). Ids come
        // from the recorded events when there are any: a retried command
        // (same command_id) may carry freshly minted ids, but its answer is
        // the first one.
        let first = appended.events.first();
        let operation_id = first
            .and_then(|e| e.stream.strip_prefix("operation-"))
            .map(|s| json!(s))
            .or_else(|| data.get("operation_id").cloned());
        let id = match command {
            "assign_task" | "update_task_status" => first
                .and_then(|e| e.data.get("task_id"))
                .or_else(|| data.get("task_id"))
                .cloned(),
            _ => operation_id.clone(),
        };
        json!({
            "id": id,
            "operation_id": operation_id,
            "version": appended.version(),
            "events": appended.events.iter().map(|e| json!({"seq": e.seq, "type": e.event_type})).collect::<Vec<_>>(),
        })
    }

    fn queries(&self) -> Vec<(&'static str, &'static str)> {
        vec![("get", GET_SCHEMA)]
    }

    fn query_stream(&self, _query: &str, body: &Value) -> Result<String, Rejection> {
        operation_id(body).map(stream_of)
    }

    fn answer(&self, _query: &str, body: &Value, state: &domain::State, version: u64) -> Result<Value, Rejection> {
        let country = body
            .get("country")
            .and_then(Value::as_str)
            .and_then(|c| CountryCode::parse(c).ok())
            .ok_or_else(|| Rejection::new(ErrorCode::Invalid, "country must be a country code"))?;
        // Auditors see everything (DESIGN.md, Visibility); nobody else is
        // helped by their role here.
        let auditor = body.get("role").and_then(Value::as_str) == Some("auditor");
        match state {
            // Same answer for unknown and invisible: existence must not leak.
            Some(op) if auditor || op.visible_to(country) => {
                let mut view = op.view();
                view["version"] = json!(version);
                Ok(json!({ "operation": view }))
            }
            _ => Err(Rejection::new(ErrorCode::NotFound, "operation not found")),
        }
    }
}
