//! The command runtime every writing service runs on.
//!
//! A service describes itself as an [`Aggregate`] (its commands and their
//! schemas, which stream a command addresses, the pure `decide`/`evolve`,
//! what a reply carries, its queries). The runtime does the rest, the same
//! way for every service: subscribe `concord.cmd.<service>.*` in queue group
//! `<service>`, validate the envelope and `data` against their JSON Schemas,
//! answer a known `command_id` with its first result, load the stream's
//! state (cached), decide, append with the expected version (retrying once
//! when a conflict is resolved by fresher state), publish the events after
//! the fsync, and reply. It also serves the log (`log.read/head`) and the
//! service's queries.
//!
//! Must not: hold a domain rule, or reply `ok` before the append returned.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_nats::service::ServiceExt;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use crate::logs::{BusError, LogServer, TRACEPARENT, publish_appended_traced};
use crate::schema::{SchemaError, Schemas};
use concord_core::envelope::{Actor, EventEnvelope, ExpectedVersion, Role, Service};
use concord_core::reply::{ErrorCode, Reply};
use concord_core::{CountryCode, subjects};
use concord_log::{AppendRequest, Appended, Log, LogError, NewEvent, READ_BATCH_EVENTS_MAX};

/// The command envelope schema, shared by every service.
pub const COMMAND_ENVELOPE_SCHEMA: &str = include_str!("../../../../schemas/envelope/command.schema.json");
const ENVELOPE: &str = "envelope/command";

/// Streams whose folded state a service keeps in memory; past it the cache
/// is dropped and refilled from the log.
const STATE_CACHE_MAX: usize = 10_000;

/// A business refusal: a stable code and a lowercase message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What `decide` may know besides the state and the command.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Actor,
    pub command_id: String,
    pub correlation_id: String,
    /// The runtime's clock when the command was handled (RFC 3339 UTC).
    pub now: String,
}

/// One writing service, as the runtime sees it.
pub trait Aggregate: Send + Sync + 'static {
    type State: Default + Clone + Send + Sync + 'static;

    fn service(&self) -> Service;
    /// `(command name, JSON Schema of its data)`.
    fn commands(&self) -> Vec<(&'static str, &'static str)>;
    /// `(event type, JSON Schema of its data)`: every event the service
    /// appends is checked against its schema first; a type without one is
    /// never appended.
    fn events(&self) -> Vec<(&'static str, &'static str)>;
    /// The stream a (schema-valid) command addresses.
    fn stream(&self, command: &str, data: &Value) -> Result<String, Rejection>;
    fn decide(&self, state: &Self::State, command: &str, data: &Value, ctx: &Ctx) -> Result<Vec<NewEvent>, Rejection>;
    /// Folds one stored event in. An event the aggregate cannot read is a
    /// corrupt log, reported as an error, never skipped.
    fn evolve(&self, state: Self::State, event: &EventEnvelope) -> Result<Self::State, String>;
    /// The reply's fields besides `ok` (at least `id` and `version`).
    fn reply(&self, command: &str, data: &Value, appended: &Appended) -> Value;
    /// Awaited before every command and query is decided or answered: a
    /// service that decides with what it learned from other logs catches up
    /// with them here, so a caller who got another service's answer is not
    /// refused for the consumer's lag.
    fn sync(&self) -> impl Future<Output = Result<(), Rejection>> + Send {
        std::future::ready(Ok(()))
    }
    /// `(query name, JSON Schema of its body)`.
    fn queries(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
    /// The stream a query reads.
    fn query_stream(&self, query: &str, body: &Value) -> Result<String, Rejection> {
        let _ = body;
        Err(Rejection::new(ErrorCode::Invalid, format!("unknown query {query}")))
    }
    fn answer(&self, query: &str, body: &Value, state: &Self::State, version: u64) -> Result<Value, Rejection> {
        let _ = (body, state, version);
        Err(Rejection::new(ErrorCode::Invalid, format!("unknown query {query}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

#[derive(Deserialize)]
struct CommandEnvelope {
    command_id: String,
    actor: WireActor,
    correlation_id: String,
    #[serde(default)]
    causation_id: Option<String>,
    #[serde(default)]
    expected_version: Option<u64>,
    data: Value,
}

/// The actor as it arrives: the country is checked against the real list
/// after schema validation, with a precise message.
#[derive(Deserialize)]
struct WireActor {
    sub: String,
    role: Role,
    country: String,
}

/// stream → (version, folded state at that version).
type StateCache<S> = HashMap<String, (u64, Arc<S>)>;

struct Runtime<A: Aggregate> {
    aggregate: A,
    log: Log,
    client: async_nats::Client,
    schemas: Schemas,
    cache: Mutex<StateCache<A::State>>,
}

/// A service's subjects, subscribed and ready.
pub struct Bound<A: Aggregate> {
    rt: Arc<Runtime<A>>,
    service: async_nats::service::Service,
    commands: async_nats::service::endpoint::Endpoint,
    queries: async_nats::service::endpoint::Endpoint,
    log_server: LogServer,
}

/// Subscribes everything the service answers; when this returns, requests
/// are answered.
pub async fn bind<A: Aggregate>(client: async_nats::Client, log: Log, aggregate: A) -> Result<Bound<A>, RuntimeError> {
    let service = aggregate.service();
    let command_names: Vec<String> = aggregate
        .commands()
        .iter()
        .map(|(n, _)| format!("commands/{service}/{n}"))
        .collect();
    let query_names: Vec<String> = aggregate
        .queries()
        .iter()
        .map(|(n, _)| format!("queries/{service}/{n}"))
        .collect();
    let event_names: Vec<String> = aggregate
        .events()
        .iter()
        .map(|(t, _)| format!("events/{service}/{t}"))
        .collect();
    let commands = aggregate.commands();
    let queries = aggregate.queries();
    let events = aggregate.events();
    let sources = std::iter::once((ENVELOPE, COMMAND_ENVELOPE_SCHEMA))
        .chain(
            command_names
                .iter()
                .map(String::as_str)
                .zip(commands.iter().map(|(_, s)| *s)),
        )
        .chain(
            query_names
                .iter()
                .map(String::as_str)
                .zip(queries.iter().map(|(_, s)| *s)),
        )
        .chain(
            event_names
                .iter()
                .map(String::as_str)
                .zip(events.iter().map(|(_, s)| *s)),
        );
    let schemas = Schemas::compile(sources)?;
    // Registered with the NATS service protocol so standard tooling
    // (`nats micro ls/info/stats`) finds every instance and its endpoint
    // stats; the endpoints are plain queue subscriptions underneath.
    let nats = |e: async_nats::Error| BusError::Nats(e.to_string());
    let svc = client
        .service_builder()
        .description(format!("Concord {service} service"))
        .queue_group(subjects::queue_group(service.as_str()))
        .start(service.as_str(), env!("CARGO_PKG_VERSION"))
        .await
        .map_err(nats)?;
    let cmd_subs = svc
        .endpoint_builder()
        .name("commands")
        .add(subjects::command(service.as_str(), "*"))
        .await
        .map_err(nats)?;
    let qry_subs = svc
        .endpoint_builder()
        .name("queries")
        .add(subjects::query(service.as_str(), "*"))
        .await
        .map_err(nats)?;
    let log_server = LogServer::bind(client.clone(), log.clone()).await?;
    // "Bound" must mean "answering" to every connection, not only this one:
    // async-nats' flush only empties the write buffer, so a request from
    // another connection could still find no responder. A round trip
    // through the server on this connection (after the SUBs, in order)
    // proves the server has registered them.
    client
        .request(format!("$SRV.PING.{service}"), Vec::new().into())
        .await
        .map_err(|e| BusError::Nats(format!("the service did not answer its own PING: {e}")))?;
    Ok(Bound {
        rt: Arc::new(Runtime {
            aggregate,
            log,
            client,
            schemas,
            cache: Mutex::new(HashMap::new()),
        }),
        service: svc,
        commands: cmd_subs,
        queries: qry_subs,
        log_server,
    })
}

impl<A: Aggregate> Bound<A> {
    /// Answers until `shutdown` resolves. Each request runs in its own task,
    /// so concurrent commands share the log's group commit.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), RuntimeError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut log_stop = stop_rx.clone();
        let log_task = tokio::spawn(self.log_server.run(async move {
            let _ = log_stop.wait_for(|s| *s).await;
        }));
        let Bound {
            rt,
            service,
            mut commands,
            mut queries,
            ..
        } = self;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                msg = commands.next() => {
                    let Some(msg) = msg else { break };
                    let rt = rt.clone();
                    tokio::spawn(async move { rt.on_command(msg).await });
                }
                msg = queries.next() => {
                    let Some(msg) = msg else { break };
                    let rt = rt.clone();
                    tokio::spawn(async move { rt.on_query(msg).await });
                }
            }
        }
        let _ = stop_tx.send(true);
        let _ = log_task.await;
        let _ = service.stop().await;
        // Dropping the subscriptions queues their UNSUBs; the flush makes
        // the server apply them before `run` returns, so no request is
        // routed to an instance that has stopped answering (a successor
        // started after this returns gets them all).
        drop(commands);
        drop(queries);
        let _ = rt.client.flush().await;
        Ok(())
    }
}

/// Runs `aggregate` on `log` over `client` until `shutdown` resolves.
pub async fn run<A: Aggregate>(
    client: async_nats::Client,
    log: Log,
    aggregate: A,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    bind(client, log, aggregate).await?.run(shutdown).await
}

fn last_token(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or_default()
}

fn invalid_input(what: &str, violations: Vec<crate::schema::Violation>) -> Reply {
    let message = format!(
        "{what} is invalid: {}",
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    Reply::error_with(
        ErrorCode::Invalid,
        message,
        serde_json::to_value(&violations).unwrap_or_default(),
    )
}

fn log_reply(e: &LogError) -> Reply {
    match e {
        LogError::Invalid(_) => Reply::error(ErrorCode::Invalid, e.to_string()),
        LogError::Conflict { .. } => Reply::error(ErrorCode::Conflict, e.to_string()),
        LogError::Unavailable { .. } => Reply::error(ErrorCode::Unavailable, e.to_string()),
        _ => Reply::error(ErrorCode::Internal, e.to_string()),
    }
}

impl<A: Aggregate> Runtime<A> {
    async fn on_command(&self, req: async_nats::service::Request) {
        let msg = &req.message;
        let traceparent = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(TRACEPARENT))
            .map(|v| v.as_str().to_owned());
        let command = last_token(msg.subject.as_str()).to_owned();
        let span = tracing::info_span!("command", service = %self.aggregate.service(), %command, traceparent = traceparent.as_deref().unwrap_or(""));
        let reply = self
            .handle_command(&command, &msg.payload, traceparent.as_deref())
            .instrument(span)
            .await;
        // Refusals are answers too: the reply body carries the code, so the
        // endpoint stats count only transport failures as errors.
        let _ = req.respond(Ok(reply.to_bytes().into())).await;
    }

    async fn handle_command(&self, command: &str, payload: &[u8], traceparent: Option<&str>) -> Reply {
        let service = self.aggregate.service();
        let schema = format!("commands/{service}/{command}");
        if !self.schemas.names().any(|n| n == schema) {
            return Reply::error(
                ErrorCode::Invalid,
                format!("unknown command {command} of the {service} service"),
            );
        }
        let body: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("command is not JSON: {e}")),
        };
        match self.schemas.check(ENVELOPE, &body) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input("command envelope", v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        let env: CommandEnvelope = match serde_json::from_value(body) {
            Ok(e) => e,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("command envelope is invalid: {e}")),
        };
        let country = match CountryCode::parse(&env.actor.country) {
            Ok(c) => c,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("actor.country: {e}")),
        };
        match self.schemas.check(&schema, &env.data) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input(&format!("{command} data"), v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        let stream = match self.aggregate.stream(command, &env.data) {
            Ok(s) => s,
            Err(r) => return Reply::error(r.code, r.message),
        };
        if let Err(r) = self.aggregate.sync().await {
            return Reply::error(r.code, r.message);
        }
        let ctx = Ctx {
            actor: Actor {
                sub: env.actor.sub.clone(),
                role: env.actor.role,
                country,
            },
            command_id: env.command_id.clone(),
            correlation_id: env.correlation_id.clone(),
            now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        // One retry: a conflict that fresher state resolves is not the
        // caller's problem unless the caller named a version itself.
        for attempt in 0..2 {
            let (version, state) = match self.load(&stream, attempt > 0).await {
                Ok(s) => s,
                Err(e) => return e,
            };
            if let Some(expected) = env.expected_version
                && expected != version
            {
                if let Some(first) = self.first_result(&env.command_id, command, &env.data).await {
                    return first;
                }
                return Reply::error_with(
                    ErrorCode::Conflict,
                    format!("{stream} is at version {version}, expected {expected}"),
                    serde_json::json!({"expected": expected, "actual": version}),
                );
            }
            let events = match self.aggregate.decide(&state, command, &env.data, &ctx) {
                Ok(e) => e,
                Err(r) => {
                    // A retry of a command that already took effect is
                    // often refused by the state it produced; it answers
                    // its first result instead.
                    if let Some(first) = self.first_result(&env.command_id, command, &env.data).await {
                        return first;
                    }
                    return Reply::error(r.code, r.message);
                }
            };
            if let Err(reply) = self.check_events(&events) {
                return reply;
            }
            if events.is_empty() {
                let nothing = Appended {
                    events: Vec::new(),
                    duplicate: false,
                    raw: Vec::new(),
                };
                return Reply::ok(self.aggregate.reply(command, &env.data, &nothing));
            }
            let req = AppendRequest {
                stream: stream.clone(),
                expected: if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                },
                command_id: env.command_id.clone(),
                actor: ctx.actor.clone(),
                correlation_id: env.correlation_id.clone(),
                causation_id: env.causation_id.clone(),
                observed_hlc: None,
                events,
            };
            match self.log.append(req).await {
                Ok(appended) => {
                    if !appended.duplicate {
                        self.remember(&stream, state, &appended);
                    }
                    if let Err(e) = publish_appended_traced(&self.client, &appended, traceparent).await {
                        // Durable already; consumers will read it from the log.
                        tracing::warn!(error = %e, "publishing events failed");
                    }
                    return Reply::ok(self.aggregate.reply(command, &env.data, &appended));
                }
                Err(LogError::Conflict { .. }) if attempt == 0 && env.expected_version.is_none() => continue,
                Err(e @ LogError::Conflict { .. }) => {
                    if let Some(first) = self.first_result(&env.command_id, command, &env.data).await {
                        return first;
                    }
                    return log_reply(&e);
                }
                Err(e) => return log_reply(&e),
            }
        }
        Reply::error(ErrorCode::Conflict, format!("{stream} changed concurrently; retry"))
    }

    /// A decider's events must match their schemas: a mismatch is a bug in
    /// the service, answered `internal` with nothing appended, never stored
    /// for every consumer to trip over.
    fn check_events(&self, events: &[NewEvent]) -> Result<(), Reply> {
        let service = self.aggregate.service();
        for e in events {
            let name = format!("events/{service}/{}", e.event_type);
            let checked = if self.schemas.names().any(|n| n == name) {
                self.schemas.check(&name, &e.data)
            } else {
                return Err(Reply::error(
                    ErrorCode::Internal,
                    format!("event type {} has no schema; not appended", e.event_type),
                ));
            };
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(v)) => {
                    let why = v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                    tracing::error!(event_type = %e.event_type, %why, "decider produced an invalid event");
                    return Err(Reply::error(
                        ErrorCode::Internal,
                        format!("{} event does not match its schema ({why}); not appended", e.event_type),
                    ));
                }
                Err(err) => return Err(Reply::error(ErrorCode::Internal, err.to_string())),
            }
        }
        Ok(())
    }

    /// The first answer of an already recorded command id, if any. Only
    /// asked when the command would otherwise be refused: on the way to an
    /// append, the log itself answers a known id with its first result, so
    /// the common path needs no extra read.
    async fn first_result(&self, command_id: &str, command: &str, data: &Value) -> Option<Reply> {
        let log = self.log.clone();
        let cid = command_id.to_owned();
        match tokio::task::spawn_blocking(move || log.recorded(&cid)).await {
            Ok(Ok(Some(first))) => Some(Reply::ok(self.aggregate.reply(command, data, &first))),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => Some(log_reply(&e)),
            Err(e) => Some(Reply::error(ErrorCode::Internal, e.to_string())),
        }
    }

    /// The stream's version and folded state, from the cache unless `fresh`.
    async fn load(&self, stream: &str, fresh: bool) -> Result<(u64, Arc<A::State>), Reply> {
        if !fresh
            && let Ok(cache) = self.cache.lock()
            && let Some((v, s)) = cache.get(stream)
        {
            return Ok((*v, Arc::clone(s)));
        }
        let mut state = A::State::default();
        let mut version = 0u64;
        loop {
            let log = self.log.clone();
            let s = stream.to_owned();
            let batch = match tokio::task::spawn_blocking(move || {
                log.read_stream(&s, version + 1, READ_BATCH_EVENTS_MAX)
            })
            .await
            {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(log_reply(&e)),
                Err(e) => return Err(Reply::error(ErrorCode::Internal, e.to_string())),
            };
            let Some(last) = batch.last().map(|e| e.version) else {
                break;
            };
            for e in &batch {
                state = self.aggregate.evolve(state, e).map_err(|why| {
                    Reply::error(
                        ErrorCode::Internal,
                        format!(
                            "{} log: event seq {} of {stream} cannot be applied: {why}",
                            e.service, e.seq
                        ),
                    )
                })?;
            }
            version = last;
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= STATE_CACHE_MAX {
                cache.clear();
            }
            let state = Arc::new(state);
            cache.insert(stream.to_owned(), (version, Arc::clone(&state)));
            return Ok((version, state));
        }
        Ok((version, Arc::new(state)))
    }

    fn remember(&self, stream: &str, state: Arc<A::State>, appended: &Appended) {
        // Take the cached copy out so that, unless another command on this
        // stream holds it right now, the state is moved, not cloned: states
        // grow with their stream.
        if let Ok(mut cache) = self.cache.lock()
            && cache.get(stream).is_some_and(|(_, s)| Arc::ptr_eq(s, &state))
        {
            cache.remove(stream);
        }
        let mut state = Arc::unwrap_or_clone(state);
        for e in &appended.events {
            match self.aggregate.evolve(state, e) {
                Ok(s) => state = s,
                Err(_) => {
                    // Reload from the log next time rather than cache a guess.
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.remove(stream);
                    }
                    return;
                }
            }
        }
        if let Ok(mut cache) = self.cache.lock() {
            let newer = cache.get(stream).is_none_or(|(v, _)| *v < appended.version());
            if newer {
                cache.insert(stream.to_owned(), (appended.version(), Arc::new(state)));
            }
        }
    }

    async fn on_query(&self, req: async_nats::service::Request) {
        let query = last_token(req.message.subject.as_str()).to_owned();
        let reply = self.handle_query(&query, &req.message.payload).await;
        let _ = req.respond(Ok(reply.to_bytes().into())).await;
    }

    async fn handle_query(&self, query: &str, payload: &[u8]) -> Reply {
        let service = self.aggregate.service();
        let schema = format!("queries/{service}/{query}");
        if !self.schemas.names().any(|n| n == schema) {
            return Reply::error(
                ErrorCode::Invalid,
                format!("unknown query {query} of the {service} service"),
            );
        }
        let body: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("query is not JSON: {e}")),
        };
        match self.schemas.check(&schema, &body) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input(&format!("{query} query"), v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        let stream = match self.aggregate.query_stream(query, &body) {
            Ok(s) => s,
            Err(r) => return Reply::error(r.code, r.message),
        };
        if let Err(r) = self.aggregate.sync().await {
            return Reply::error(r.code, r.message);
        }
        let (version, state) = match self.load(&stream, false).await {
            Ok(s) => s,
            Err(e) => return e,
        };
        match self.aggregate.answer(query, &body, &state, version) {
            Ok(v) => Reply::ok(v),
            Err(r) => Reply::error(r.code, r.message),
        }
    }
}
