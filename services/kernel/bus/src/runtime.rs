//! The command runtime every writing service runs on, generic over the
//! service's typed contract (`concord_core::decider::Aggregate`).
//!
//! The runtime does the same for every service: subscribe
//! `concord.cmd.<service>.*` and `concord.qry.<service>.*` in queue group
//! `<service>` (registered with the NATS service protocol), validate the
//! envelope and `data` against their JSON Schemas, read `data` into the
//! typed command, catch up with the logs the service follows, load the
//! stream's state (cached), decide, check the events against their schemas,
//! append with the expected version (retrying once when fresher state
//! resolves a conflict), publish the events after the fsync, and reply. A
//! stream's commands are decided one after another, each on the state the
//! one before leaves, their appends sharing the fsync (`stream`). It also
//! serves the log (`log.read/head`).
//!
//! Must not: hold a domain rule, or reply `ok` before the append returned.

mod stream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use async_nats::service::ServiceExt;
use concord_core::decider::{Aggregate, Ctx, Rejection, stream_id, stream_kind};
use concord_core::envelope::{Actor, EventEnvelope, Hlc, Role};
use concord_core::reply::{ErrorCode, Reply};
use concord_core::tagged::{from_tagged, to_tagged, variant_names};
use concord_core::{CountryCode, subjects};
use concord_log::{Fingerprint, Log, LogError, NewEvent, READ_BATCH_EVENTS_MAX, Recorded};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::cache::{Entry, STATE_CACHE_BYTES_MAX, StateCache, json_bytes};
use crate::follow::{FollowHealth, FollowWatch, Followed};
use crate::logs::{BusError, LogServer, TRACEPARENT};
use crate::one_writer::{NotAlone, ensure_alone};
use crate::schema::{self, SchemaError, Schemas};

/// Commands and queries one service works on at once; beyond it a request
/// is answered `unavailable` at once. Rationale: each holds a task, its
/// state and a place in the log's queue; unbounded, a burst grows memory
/// until the process dies, and the callers wait longer than they would for
/// a quick refusal they can retry.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 1024;
/// How long a stopping service waits for the requests it has started to
/// finish (their events durable and their replies sent) before it exits.
pub const STOP_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    NotAlone(#[from] NotAlone),
    /// The log refuses writes until reopened; the service stopped so that
    /// its supervisor reopens it (`service::supervise`).
    #[error("the log refuses writes until it is reopened: {0}")]
    LogPoisoned(String),
}

/// The next query, or never when the service has no query endpoint.
async fn next_query(
    queries: &mut Option<async_nats::service::endpoint::Endpoint>,
) -> Option<async_nats::service::Request> {
    match queries {
        Some(q) => q.next().await,
        None => std::future::pending().await,
    }
}

/// How often a running service checks whether its log was poisoned.
const POISON_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A service's health as its NATS service `STATS` reports it (each
/// endpoint's `data`), for the gateway's `/readyz`: whether it can decide
/// (every log it follows still followed) and how following each goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub ready: bool,
    /// Why not, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub following: Vec<FollowHealth>,
}

impl Health {
    fn of(watches: &[FollowWatch]) -> Health {
        let following: Vec<FollowHealth> = watches.iter().map(FollowWatch::health).collect();
        let reason = following.iter().find_map(|f| {
            f.failed
                .as_ref()
                .map(|why| format!("stopped following the {} log: {why}", f.source))
        });
        Health {
            ready: reason.is_none(),
            reason,
            following,
        }
    }
}

/// What a service brings besides its contract: the facts its followers
/// keep, the followed logs `decide` must have caught up with, and tasks
/// that live as long as it does (reactions to other services' events).
pub struct Host<A: Aggregate> {
    pub facts: Arc<RwLock<A::Facts>>,
    pub followed: Vec<Followed>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Requests worked on at once (`REQUESTS_IN_FLIGHT_MAX` unless a test
    /// sets another).
    pub in_flight_max: usize,
}

impl<A: Aggregate> Default for Host<A> {
    fn default() -> Self {
        Host {
            facts: Arc::default(),
            followed: Vec::new(),
            tasks: Vec::new(),
            in_flight_max: REQUESTS_IN_FLIGHT_MAX,
        }
    }
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
    /// The clock stamp of the event that caused the command (a reaction's).
    #[serde(default)]
    causation_hlc: Option<Hlc>,
    /// Moved in by `read_envelope`: deserialized from the parsed value it
    /// would be copied node by node.
    #[serde(skip)]
    data: Value,
}

/// The command envelope out of its parsed (and schema-checked) value.
fn read_envelope(body: Value) -> Result<CommandEnvelope, serde_json::Error> {
    let Value::Object(mut fields) = body else {
        return serde_json::from_value(body);
    };
    let data = fields
        .remove("data")
        .ok_or_else(|| <serde_json::Error as serde::de::Error>::missing_field("data"))?;
    let mut env: CommandEnvelope = serde_json::from_value(Value::Object(fields))?;
    env.data = data;
    Ok(env)
}

/// The actor as it arrives: the country is checked against the real list
/// after schema validation, with a precise message.
#[derive(Deserialize)]
struct WireActor {
    sub: String,
    role: Role,
    country: String,
}

struct Runtime<A: Aggregate> {
    log: Log,
    client: async_nats::Client,
    schemas: Schemas,
    commands: &'static [&'static str],
    queries: &'static [&'static str],
    cache: StateCache<A::State>,
    /// The commands waiting for each stream being decided (`stream`):
    /// a stream's commands are decided one after another, so a command
    /// without an expected version never fails because of another one;
    /// different streams run in parallel, and all share the group commit.
    turns: Mutex<HashMap<String, stream::Slot<A>>>,
    facts: Arc<RwLock<A::Facts>>,
    followed: Vec<Followed>,
    in_flight: Arc<tokio::sync::Semaphore>,
    in_flight_max: usize,
}

/// A service's subjects, subscribed and ready.
pub struct Bound<A: Aggregate> {
    rt: Arc<Runtime<A>>,
    service: async_nats::service::Service,
    commands: async_nats::service::endpoint::Endpoint,
    /// `None` for a contract without queries (the audit's access log):
    /// its service answers `concord.qry.<service>.*` itself.
    queries: Option<async_nats::service::endpoint::Endpoint>,
    log_server: LogServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Subscribes everything the service answers; when this returns, requests
/// are answered.
pub async fn bind<A: Aggregate>(client: async_nats::Client, log: Log, host: Host<A>) -> Result<Bound<A>, RuntimeError> {
    let schemas = Schemas::for_service(
        A::SERVICE,
        variant_names::<A::Command>(),
        variant_names::<A::Query>(),
        variant_names::<A::Event>(),
    )?;
    bind_with_schemas(client, log, host, schemas).await
}

/// `bind` with schemas other than the embedded ones: for the runtime's own
/// tests, whose contract is not one of Concord's services.
pub async fn bind_with_schemas<A: Aggregate>(
    client: async_nats::Client,
    log: Log,
    host: Host<A>,
    schemas: Schemas,
) -> Result<Bound<A>, RuntimeError> {
    let service = A::SERVICE;
    let commands = variant_names::<A::Command>();
    let queries = variant_names::<A::Query>();
    ensure_alone(&client, &log).await?;
    for followed in &host.followed {
        followed.feed(log.hlc_observer());
    }
    // Registered with the NATS service protocol so standard tooling
    // (`nats micro ls/info/stats`) finds every instance and its endpoint
    // stats; the endpoints are plain queue subscriptions underneath.
    let nats = |e: async_nats::Error| BusError::Nats(e.to_string());
    // `STATS` carries the service's health (`Health`): a follower that
    // stopped leaves the service answering, but `unavailable`, and
    // `/readyz` must say so.
    let watches: Vec<FollowWatch> = host.followed.iter().map(Followed::watch).collect();
    let svc = client
        .service_builder()
        .description(format!("Concord {service} service"))
        .stats_handler(move |_endpoint, _stats| serde_json::to_value(Health::of(&watches)).unwrap_or_default())
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
    let qry_subs = if queries.is_empty() {
        None
    } else {
        Some(
            svc.endpoint_builder()
                .name("queries")
                .add(subjects::query(service.as_str(), "*"))
                .await
                .map_err(nats)?,
        )
    };
    let log_server = LogServer::bind(client.clone(), log.clone()).await?;
    // "Bound" must mean "answering" to every connection, not only this one:
    // async-nats' flush only empties the write buffer, so a request from
    // another connection could still find no responder. A round trip
    // through the server on this connection (after the SUBs, in order)
    // proves the server has registered them.
    client
        .request(subjects::service_api("PING", service.as_str()), Vec::new().into())
        .await
        .map_err(|e| BusError::Nats(format!("the service did not answer its own PING: {e}")))?;
    Ok(Bound {
        rt: Arc::new(Runtime {
            log,
            client,
            schemas,
            commands,
            queries,
            cache: StateCache::new(STATE_CACHE_BYTES_MAX),
            turns: Mutex::new(HashMap::new()),
            facts: host.facts,
            followed: host.followed,
            in_flight: Arc::new(tokio::sync::Semaphore::new(host.in_flight_max)),
            in_flight_max: host.in_flight_max,
        }),
        service: svc,
        commands: cmd_subs,
        queries: qry_subs,
        log_server,
        tasks: host.tasks,
    })
}

impl<A: Aggregate> Bound<A> {
    /// Answers until `shutdown` resolves. Each request runs in its own task,
    /// so concurrent commands share the log's group commit; at most
    /// `in_flight_max` at once, beyond which a request is answered
    /// `unavailable` at once. On `shutdown` it takes no new request, lets
    /// those it started finish (their events durable, their replies sent;
    /// at most `STOP_DRAIN_TIMEOUT`), then returns.
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
            tasks,
            ..
        } = self;
        tokio::pin!(shutdown);
        let mut poison_check = tokio::time::interval(POISON_CHECK_INTERVAL);
        let mut poisoned = None;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = poison_check.tick() => {
                    // Every append would answer `unavailable` until the
                    // log is reopened from disk: stop, cleanly, for that.
                    if let Some(why) = rt.log.poisoned() {
                        tracing::error!(service = %A::SERVICE, %why, "log poisoned: stopping to reopen it");
                        poisoned = Some(why);
                        break;
                    }
                }
                msg = commands.next() => {
                    let Some(msg) = msg else { break };
                    let Some(permit) = rt.admit(&msg).await else { continue };
                    let rt = rt.clone();
                    tokio::spawn(async move {
                        rt.on_command(msg).await;
                        drop(permit);
                    });
                }
                msg = next_query(&mut queries) => {
                    let Some(msg) = msg else { break };
                    let Some(permit) = rt.admit(&msg).await else { continue };
                    let rt = rt.clone();
                    tokio::spawn(async move {
                        rt.on_query(msg).await;
                        drop(permit);
                    });
                }
            }
        }
        // No new request from here: the endpoints stop and their
        // subscriptions go (requests still queued in them are never
        // started, so their callers time out with nothing appended).
        let _ = service.stop().await;
        drop(commands);
        drop(queries);
        flush_if_connected(&rt.client).await;
        // Every started request finishes: an event made durable is answered.
        let all = u32::try_from(rt.in_flight_max).unwrap_or(u32::MAX);
        if tokio::time::timeout(STOP_DRAIN_TIMEOUT, rt.in_flight.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(service = %A::SERVICE, "requests still in flight after {STOP_DRAIN_TIMEOUT:?}; stopping anyway");
        }
        for t in &tasks {
            t.abort();
        }
        // Kept as they stand, so the next start resumes from here.
        for f in &rt.followed {
            f.stop().await;
        }
        let _ = stop_tx.send(true);
        let _ = log_task.await;
        // The replies just sent leave before `run` returns, and the server
        // has applied the UNSUBs: a successor started after this gets
        // every new request. A flush only empties the write buffer (a
        // process that exits then, with requests unread on its socket,
        // resets the connection and the kernel drops what was not yet
        // sent), so a round trip proves the server has processed the
        // replies: a request to its own log's head, which the server
        // answers (no responders, or another instance) only after them.
        if flush_if_connected(&rt.client).await {
            let _ = tokio::time::timeout(
                STOP_ROUND_TRIP_TIMEOUT,
                rt.client.request(subjects::log_head(A::SERVICE), Vec::new().into()),
            )
            .await;
        }
        match poisoned {
            Some(why) => Err(RuntimeError::LogPoisoned(why)),
            None => Ok(()),
        }
    }
}

fn last_token(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or_default()
}

fn invalid_input(what: &str, violations: Vec<schema::Violation>) -> Reply {
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

/// [`plain_text`] as a JSON Schema `pattern` (ECMA-262), for the API
/// description: a string of no control character but the line feed and
/// the tab, empty or holding something that is not white space. A test
/// checks it against `plain_text` over the Basic Multilingual Plane.
pub const PLAIN_TEXT_PATTERN: &str = "^(?:|[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*\
    [^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]\
    [^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F]*)$";

/// Every text of a command is plain text: no control character but the
/// line feed and the tab (NUL, escapes and C1 controls hide or forge what a
/// reader sees, in a log, a terminal or an export), and none is made of
/// white space alone (a blank that looks like a value). `at` is the JSON
/// pointer of `value`.
fn plain_text(at: &str, value: &Value) -> Result<(), String> {
    text_fault(value).map_or(Ok(()), |(mut path, why)| {
        // Built only for the refusal: every command passes through here.
        path.push(at.to_owned());
        path.reverse();
        let pointer = path.concat();
        Err(format!("{}: {why}", if pointer.is_empty() { "/" } else { &pointer }))
    })
}

/// The first text of `value` that is not plain, as the JSON pointer tokens
/// leading to it (innermost first, each with its `/`) and why.
fn text_fault(value: &Value) -> Option<(Vec<String>, String)> {
    match value {
        Value::String(s) => {
            if let Some(c) = s.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
                return Some((
                    Vec::new(),
                    format!("control character U+{:04X} is not allowed in a text", u32::from(c)),
                ));
            }
            (!s.is_empty() && s.trim().is_empty())
                .then(|| (Vec::new(), "a text of white space only is not allowed".to_owned()))
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            text_fault(v).map(|(mut path, why)| {
                path.push(format!("/{i}"));
                (path, why)
            })
        }),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            text_fault(v).map(|(mut path, why)| {
                // A JSON pointer escapes `~` and `/` in a key.
                path.push(format!("/{}", k.replace('~', "~0").replace('/', "~1")));
                (path, why)
            })
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn log_reply(e: &LogError) -> Reply {
    match e {
        LogError::Invalid(_) => Reply::error(ErrorCode::Invalid, e.to_string()),
        LogError::Conflict { .. } => Reply::error(ErrorCode::Conflict, e.to_string()),
        LogError::IdempotencyKeyReused => Reply::idempotency_key_reused(e.to_string()),
        LogError::Unavailable { .. } => Reply::error(ErrorCode::Unavailable, e.to_string()),
        _ => Reply::error(ErrorCode::Internal, e.to_string()),
    }
}

fn refused(r: &Rejection) -> Reply {
    Reply::error(r.code(), r.to_string())
}

pub use concord_core::decider::read_event;

/// How long a stopping service waits for the round trip that proves its
/// last replies reached the server.
const STOP_ROUND_TRIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Empties the client's write buffer to the server, and says whether it
/// did. A client cut off from its server (the server stopped first, as
/// on Ctrl-C to `concord up`'s process group) would hold a flush until
/// it reconnects, that is for ever: what it buffered can no longer reach
/// anyone, so a stopping service does not wait for it. The timeout
/// covers a cut that comes during the flush.
async fn flush_if_connected(client: &async_nats::Client) -> bool {
    if client.connection_state() != async_nats::connection::State::Connected {
        return false;
    }
    matches!(
        tokio::time::timeout(STOP_ROUND_TRIP_TIMEOUT, client.flush()).await,
        Ok(Ok(()))
    )
}

/// What a command answers: the id of what it created or changed, the
/// stream's id under `<kind>_id`, the stream's version after it and the
/// events it appended (none when it changed nothing).
fn reply<A: Aggregate>(command: &A::Command, stream: &str, events: &[EventEnvelope], version: u64) -> Reply {
    // Ids come from the recorded events when there are any: a retry under
    // a command id recorded before fingerprints may carry other ids, but
    // its answer is the first one.
    let first = events.first();
    let stream = first.map_or(stream, |e| e.stream.as_str());
    let first_event = first.and_then(|e| read_event::<A>(e).ok());
    let id = A::reply_id(command, first_event.as_ref()).unwrap_or_else(|| stream_id(stream).to_owned());
    let mut body = serde_json::Map::new();
    body.insert("id".into(), json!(id));
    body.insert(format!("{}_id", stream_kind(stream)), json!(stream_id(stream)));
    body.insert("version".into(), json!(version));
    body.insert(
        "events".into(),
        events
            .iter()
            .map(|e| json!({"seq": e.seq, "type": e.event_type}))
            .collect(),
    );
    Reply::Ok(body)
}

impl<A: Aggregate> Runtime<A> {
    /// A place for one more request, or `None` after answering it
    /// `unavailable` (the service is at `in_flight_max`).
    async fn admit(&self, req: &async_nats::service::Request) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match Arc::clone(&self.in_flight).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let busy = Reply::error(
                    ErrorCode::Unavailable,
                    format!(
                        "the {} service is at its limit of {} requests at once; retry",
                        A::SERVICE,
                        self.in_flight_max
                    ),
                );
                let _ = req.respond(Ok(busy.to_bytes().into())).await;
                None
            }
        }
    }

    async fn on_command(&self, req: async_nats::service::Request) {
        let msg = &req.message;
        let traceparent = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(TRACEPARENT))
            .map(|v| v.as_str().to_owned());
        let command = last_token(msg.subject.as_str()).to_owned();
        let trace_id = traceparent.as_deref().and_then(crate::trace::trace_id_of).unwrap_or("");
        let span = tracing::info_span!("command", service = %A::SERVICE, %command, trace_id);
        crate::trace::continue_from(&span, traceparent.as_deref());
        if let Some(own) = crate::trace::traceparent_of(&span) {
            span.record("trace_id", crate::trace::trace_id_of(&own).unwrap_or(""));
        }
        let started = std::time::Instant::now();
        let reply = self
            .handle_command(&command, &msg.payload, traceparent.as_deref())
            .instrument(span)
            .await;
        // Only known names label a metric: a peer's made-up subject must
        // not grow the series without bound.
        let known = self
            .commands
            .iter()
            .find(|c| **c == command)
            .copied()
            .unwrap_or("unknown");
        let result = match &reply {
            Reply::Ok(_) => "ok",
            Reply::Err(e) => e.code.as_str(),
        };
        metrics::counter!(crate::metrics::COMMANDS, "service" => A::SERVICE.as_str(), "command" => known, "result" => result)
            .increment(1);
        metrics::histogram!(crate::metrics::COMMAND_SECONDS, "service" => A::SERVICE.as_str())
            .record(started.elapsed().as_secs_f64());
        // Refusals are answers too: the reply body carries the code, so the
        // endpoint stats count only transport failures as errors.
        let _ = req.respond(Ok(reply.to_bytes().into())).await;
    }

    /// Waits until every followed log's view has caught up with its head.
    async fn sync(&self) -> Result<(), Reply> {
        for f in &self.followed {
            f.caught_up()
                .await
                .map_err(|e| Reply::error(ErrorCode::Unavailable, e.to_string()))?;
        }
        Ok(())
    }

    fn facts(&self) -> Result<std::sync::RwLockReadGuard<'_, A::Facts>, Reply> {
        self.facts.read().map_err(|_| {
            Reply::error(
                ErrorCode::Internal,
                format!("the {} service's facts lock is poisoned", A::SERVICE),
            )
        })
    }

    async fn handle_command(&self, name: &str, payload: &[u8], traceparent: Option<&str>) -> Reply {
        let service = A::SERVICE;
        let Some(&name) = self.commands.iter().find(|c| **c == name) else {
            return Reply::error(
                ErrorCode::Invalid,
                format!("unknown command {name} of the {service} service"),
            );
        };
        let body: Value = match concord_core::json::parse(payload) {
            Ok(v) => v,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("command is not JSON: {e}")),
        };
        match self.schemas.check(schema::COMMAND_ENVELOPE, &body) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input("command envelope", v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        let env = match read_envelope(body) {
            Ok(e) => e,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("command envelope is invalid: {e}")),
        };
        let country = match CountryCode::parse(&env.actor.country) {
            Ok(c) => c,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("actor.country: {e}")),
        };
        match self.schemas.check(&schema::command_name(service, name), &env.data) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input(&format!("{name} data"), v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        if let Err(why) = plain_text("", &env.data) {
            return Reply::error(ErrorCode::Invalid, format!("{name} data is invalid: {why}"));
        }
        let command: A::Command = match from_tagged(name, &env.data) {
            Ok(c) => c,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("invalid {name} command: {e}")),
        };
        let stream = A::stream(&command);
        if let Err(reply) = self.sync().await {
            return reply;
        }
        let ctx = Ctx {
            actor: Actor {
                sub: env.actor.sub.clone(),
                role: env.actor.role,
                country,
            },
            now: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        // The request the command id names: every answer drawn from the log
        // under that id (its first result) must be for this same request.
        let fingerprint = match Fingerprint::new(name, &stream, &env.data, &ctx.actor) {
            Ok(f) => f,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("{name} data: {e}")),
        };
        let work = stream::Work {
            command,
            stream,
            command_id: env.command_id,
            expected_version: env.expected_version,
            correlation_id: env.correlation_id,
            causation_id: env.causation_id,
            causation_hlc: env.causation_hlc,
            ctx,
            fingerprint,
            traceparent: traceparent.map(str::to_owned),
            span: tracing::Span::current(),
            attempt: 0,
        };
        self.on_stream(work).await
    }

    /// The decided events as the log stores them. Each must match its
    /// schema: a mismatch is a bug in the service, answered `internal` with
    /// nothing appended, never stored for every consumer to trip over.
    fn new_events(&self, events: &[A::Event]) -> Result<Vec<NewEvent>, Reply> {
        let service = A::SERVICE;
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let (event_type, data) = to_tagged(e).map_err(|err| {
                Reply::error(
                    ErrorCode::Internal,
                    format!("a {service} event does not serialize: {err}"),
                )
            })?;
            match self.schemas.check(&schema::event_name(service, &event_type), &data) {
                Ok(Ok(())) => {}
                Ok(Err(v)) => {
                    let why = v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
                    tracing::error!(%event_type, %why, "decider produced an invalid event");
                    return Err(Reply::error(
                        ErrorCode::Internal,
                        format!("{event_type} event does not match its schema ({why}); not appended"),
                    ));
                }
                Err(err) => return Err(Reply::error(ErrorCode::Internal, err.to_string())),
            }
            out.push(NewEvent {
                schema_version: A::schema_version(&event_type),
                event_type,
                data,
            });
        }
        Ok(out)
    }

    /// The answer an already recorded command id gives this request, if
    /// any: its first result when it is the same request, the refusal of a
    /// reused id when it is another. Only asked when the command would
    /// otherwise be refused or change nothing: on the way to an append, the
    /// log itself checks the id, so the common path needs no extra read.
    async fn first_result(
        &self,
        command_id: &str,
        fingerprint: &Fingerprint,
        command: &A::Command,
        stream: &str,
    ) -> Option<Reply> {
        let log = self.log.clone();
        let cid = command_id.to_owned();
        let fp = fingerprint.clone();
        match tokio::task::spawn_blocking(move || log.recorded(&cid, &fp)).await {
            Ok(Ok(Recorded::Same(first))) => Some(reply::<A>(command, stream, &first.events, first.version())),
            Ok(Ok(Recorded::Reused)) => Some(log_reply(&LogError::IdempotencyKeyReused)),
            Ok(Ok(Recorded::Unknown)) => None,
            Ok(Err(e)) => Some(log_reply(&e)),
            Err(e) => Some(Reply::error(ErrorCode::Internal, e.to_string())),
        }
    }

    /// The stream's version and folded state, from the cache unless `fresh`.
    async fn load(&self, stream: &str, fresh: bool) -> Result<Entry<A::State>, Reply> {
        if !fresh && let Some(e) = self.cache.get(stream) {
            return Ok(e);
        }
        let mut state = A::State::default();
        let mut version = 0u64;
        let mut bytes = 0u64;
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
                let cannot = |why: String| {
                    Reply::error(
                        ErrorCode::Internal,
                        format!(
                            "{} log: event seq {} of {stream} cannot be applied: {why}",
                            e.service, e.seq
                        ),
                    )
                };
                let event = read_event::<A>(e).map_err(cannot)?;
                state = A::evolve(state, &event).map_err(cannot)?;
                bytes = bytes.saturating_add(json_bytes(&e.data));
            }
            version = last;
        }
        Ok(self.cache.offer(
            stream,
            Entry {
                version,
                state: Arc::new(state),
                bytes,
            },
        ))
    }

    async fn on_query(&self, req: async_nats::service::Request) {
        let query = last_token(req.message.subject.as_str()).to_owned();
        let reply = self.handle_query(&query, &req.message.payload).await;
        let _ = req.respond(Ok(reply.to_bytes().into())).await;
    }

    async fn handle_query(&self, name: &str, payload: &[u8]) -> Reply {
        let service = A::SERVICE;
        let Some(&name) = self.queries.iter().find(|q| **q == name) else {
            return Reply::error(
                ErrorCode::Invalid,
                format!("unknown query {name} of the {service} service"),
            );
        };
        let body: Value = match concord_core::json::parse(payload) {
            Ok(v) => v,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("query is not JSON: {e}")),
        };
        match self.schemas.check(&schema::query_name(service, name), &body) {
            Ok(Ok(())) => {}
            Ok(Err(v)) => return invalid_input(&format!("{name} query"), v),
            Err(e) => return Reply::error(ErrorCode::Internal, e.to_string()),
        }
        let query: A::Query = match from_tagged(name, &body) {
            Ok(q) => q,
            Err(e) => return Reply::error(ErrorCode::Invalid, format!("invalid {name} query: {e}")),
        };
        let stream = A::query_stream(&query);
        if let Err(reply) = self.sync().await {
            return reply;
        }
        let (version, state) = match self.load(&stream, false).await {
            Ok(e) => (e.version, e.state),
            Err(e) => return e,
        };
        let answered = match self.facts() {
            Ok(facts) => A::answer(&query, &state, version, &facts),
            Err(reply) => return reply,
        };
        match answered {
            Ok(v) => Reply::ok(v),
            Err(r) => refused(&r),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{PLAIN_TEXT_PATTERN, plain_text, read_envelope};

    #[test]
    fn the_envelope_keeps_its_data_and_names_what_is_missing() {
        let actor = json!({"sub": "u", "role": "coordinator", "country": "FR"});
        let env = read_envelope(json!({"command_id": "c", "actor": actor, "correlation_id": "k",
            "expected_version": 3, "data": {"a": [1, {"b": "x"}]}}))
        .expect("an envelope");
        assert_eq!(env.data, json!({"a": [1, {"b": "x"}]}));
        assert_eq!((env.command_id.as_str(), env.expected_version), ("c", Some(3)));
        let err = read_envelope(json!({"command_id": "c", "actor": actor, "correlation_id": "k"}))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("missing field `data`"), "{err}");
        let err = read_envelope(json!({"actor": actor, "correlation_id": "k", "data": {}}))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("missing field `command_id`"), "{err}");
        assert!(read_envelope(json!([1])).is_err());
    }

    /// The pattern the API description shows admits exactly the texts
    /// `plain_text` admits: every character of the Basic Multilingual
    /// Plane alone, beside a letter, and doubled.
    #[test]
    fn the_documented_pattern_is_the_rule() {
        let schema = json!({"type": "string", "pattern": PLAIN_TEXT_PATTERN});
        let pattern = jsonschema::draft202012::new(&schema).expect("the pattern compiles");
        for c in (0u32..0x1_0000).filter_map(char::from_u32) {
            for text in [c.to_string(), format!("a{c}"), format!("{c}{c}")] {
                let rule = plain_text("", &json!(text)).is_ok();
                assert_eq!(
                    pattern.is_valid(&json!(text)),
                    rule,
                    "{text:?} (U+{:04X})",
                    u32::from(c)
                );
            }
        }
        assert!(pattern.is_valid(&json!("")));
    }

    #[test]
    fn texts_are_plain_and_not_blank() {
        assert_eq!(
            plain_text(
                "",
                &json!({"a": "line one\nline two\ttab", "b": "", "n": [1, null, true]})
            ),
            Ok(())
        );
        for (value, why) in [
            (json!({"title": "a\u{0}b"}), "/title: control character U+0000"),
            (json!({"title": "bell\u{7}"}), "/title: control character U+0007"),
            (
                json!({"x": {"y": ["ok", "esc\u{1b}[31m"]}}),
                "/x/y/1: control character U+001B",
            ),
            (json!({"t": "carriage\rreturn"}), "/t: control character U+000D"),
            (json!({"t": "del\u{7f}"}), "/t: control character U+007F"),
            (json!({"t": "c1\u{85}"}), "/t: control character U+0085"),
            (json!({"summary": " \n\t "}), "/summary: a text of white space only"),
            (json!({"a/b~c": " "}), "/a~1b~0c: a text of white space only"),
        ] {
            let err = plain_text("", &value).expect_err("refused");
            assert!(err.starts_with(why), "{err} (wanted {why})");
        }
    }
}
