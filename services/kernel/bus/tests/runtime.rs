//! The command runtime over a real nats-server, with a small test aggregate:
//! validation, idempotency, concurrency, rejections, publish, trace context.

use std::time::Duration;

use concord_bus::logs::TRACEPARENT;
use concord_bus::runtime::{Host, REQUESTS_IN_FLIGHT_MAX, bind_with_schemas};
use concord_bus::schema::Schemas;
use concord_core::decider::{Aggregate, Audience, Ctx, Rejection};
use concord_core::reply::Reply;
use concord_core::{EventEnvelope, Service, subjects};
use concord_log::Log;
use concord_testkit::NatsServer;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A named note: `create` then `rename`; the name "forbidden" is refused;
/// "buggy" and "untyped" make the decider produce an event its schema
/// refuses and one of a type without a schema; `touch` changes nothing.
struct Notes;

#[derive(Debug, Default, Clone)]
struct Note {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Create(NoteBody),
    Rename(NoteBody),
    Touch(Get),
}

#[derive(Debug, Serialize, Deserialize)]
struct Named {
    name: String,
    by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Event {
    #[serde(rename = "note.created")]
    Created(Named),
    #[serde(rename = "note.renamed")]
    Renamed(Named),
    #[serde(rename = "note.untyped")]
    Untyped(Named),
}

#[derive(Debug, Deserialize)]
struct Get {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Query {
    Get(Get),
}

impl Aggregate for Notes {
    const SERVICE: Service = Service::Operations;
    type Command = Command;
    type Event = Event;
    type Query = Query;
    type State = Note;
    type Facts = ();

    fn stream(command: &Command) -> String {
        let id = match command {
            Command::Create(b) | Command::Rename(b) => &b.id,
            Command::Touch(g) => &g.id,
        };
        format!("note-{id}")
    }

    fn decide(state: &Note, command: &Command, _: &(), ctx: &Ctx) -> Result<Vec<Event>, Rejection> {
        let (Command::Create(b) | Command::Rename(b)) = command else {
            return Ok(Vec::new());
        };
        if b.name == "forbidden" {
            return Err(Rejection::RuleViolated("that name is not allowed".into()));
        }
        let named = Named {
            name: b.name.clone(),
            by: ctx.actor.country.to_string(),
            extra: (b.name == "buggy").then_some(true),
        };
        match (command, &state.name) {
            _ if b.name == "untyped" => Ok(vec![Event::Untyped(named)]),
            (Command::Create(_), None) => Ok(vec![Event::Created(named)]),
            (Command::Create(_), Some(_)) => Err(Rejection::Conflict("note exists".into())),
            (Command::Rename(_), Some(_)) => Ok(vec![Event::Renamed(named)]),
            (Command::Rename(_), None) => Err(Rejection::NotFound("note not found".into())),
            (Command::Touch(_), _) => Ok(Vec::new()),
        }
    }

    fn evolve(_: Note, event: &Event) -> Result<Note, String> {
        let (Event::Created(n) | Event::Renamed(n) | Event::Untyped(n)) = event;
        Ok(Note {
            name: Some(n.name.clone()),
        })
    }

    fn audience(_: &Note, _: &()) -> Audience {
        Audience::everyone()
    }

    fn view(state: &Note) -> Value {
        json!({"name": state.name})
    }

    fn query_stream(query: &Query) -> String {
        let Query::Get(g) = query;
        format!("note-{}", g.id)
    }

    fn answer(query: &Query, state: &Note, version: u64, _: &()) -> Result<Value, Rejection> {
        let Query::Get(g) = query;
        match &state.name {
            Some(n) => Ok(json!({"id": g.id, "name": n, "version": version})),
            None => Err(Rejection::NotFound("note not found".into())),
        }
    }
}

const CREATE: &str = r#"{"type":"object","additionalProperties":false,"required":["id","name"],
  "properties":{"id":{"type":"string","minLength":1,"maxLength":40},"name":{"type":"string","minLength":1,"maxLength":50}}}"#;
const NOTE_EVENT: &str = r#"{"type":"object","additionalProperties":false,"required":["name","by"],
  "properties":{"name":{"type":"string"},"by":{"type":"string"}}}"#;
const GET: &str =
    r#"{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":{"type":"string"}}}"#;

/// The notes' schemas; `note.untyped` has none on purpose.
fn schemas() -> Schemas {
    let envelope = concord_bus::schema::text("envelope/command").expect("embedded");
    Schemas::compile([
        ("envelope/command", envelope),
        ("commands/operations/create", CREATE),
        ("commands/operations/rename", CREATE),
        ("commands/operations/touch", GET),
        ("events/operations/note.created", NOTE_EVENT),
        ("events/operations/note.renamed", NOTE_EVENT),
        ("queries/operations/get", GET),
    ])
    .expect("compiles")
}

struct World {
    _nats: NatsServer,
    dir: tempfile::TempDir,
    log: Log,
    client: async_nats::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<()>>,
    in_flight_max: usize,
}

async fn world() -> World {
    world_with(REQUESTS_IN_FLIGHT_MAX).await
}

/// A world whose service works on at most `in_flight_max` requests at once.
async fn world_with(in_flight_max: usize) -> World {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = Log::open(dir.path(), Service::Operations).expect("log");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let mut w = World {
        _nats: nats,
        dir,
        log,
        client,
        stop: None,
        running: None,
        in_flight_max,
    };
    w.serve().await;
    w
}

impl World {
    async fn serve(&mut self) {
        let host = Host {
            in_flight_max: self.in_flight_max,
            ..Host::default()
        };
        let bound = bind_with_schemas::<Notes>(self.client.clone(), self.log.clone(), host, schemas())
            .await
            .expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.running = Some(tokio::spawn(async move {
            bound
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("run");
        }));
    }

    /// Stops the service, closes its log, reopens the same directory and
    /// serves it again: what a restarted process finds.
    async fn restarted(mut self) -> World {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.expect("stopped");
        }
        let World {
            _nats,
            dir,
            log,
            client,
            in_flight_max,
            ..
        } = self;
        drop(log);
        // The last handle closes the log; a request task of the stopped
        // service may still hold one for a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let log = loop {
            match Log::open(dir.path(), Service::Operations) {
                Ok(log) => break log,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopening the log: {e}"),
            }
        };
        let mut w = World {
            _nats,
            dir,
            log,
            client,
            stop: None,
            running: None,
            in_flight_max,
        };
        w.serve().await;
        w
    }
}

fn envelope(command_id: &str, data: Value) -> Value {
    json!({
        "command_id": command_id,
        "actor": {"sub": "fr-1", "role": "coordinator", "country": "FR"},
        "issued_at": "2026-11-23T10:00:00Z",
        "correlation_id": "req-1",
        "data": data,
    })
}

async fn send(w: &World, command: &str, body: &[u8]) -> Value {
    let msg = w
        .client
        .request(subjects::command("operations", command), body.to_vec().into())
        .await
        .expect("reply");
    let reply = Reply::parse(&msg.payload).expect("a reply");
    reply.to_json()
}

async fn cmd(w: &World, command: &str, env: Value) -> Value {
    send(w, command, &serde_json::to_vec(&env).expect("json")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_decided_appended_published_and_answered() {
    let w = world().await;
    let mut events = w
        .client
        .subscribe(subjects::events_of(Service::Operations))
        .await
        .expect("sub");
    w.client.flush().await.expect("flush");
    let r = cmd(&w, "create", envelope("c1", json!({"id": "a", "name": "first"}))).await;
    assert_eq!(
        r,
        json!({"ok": true, "id": "a", "note_id": "a", "version": 1, "events": [{"seq": 1, "type": "note.created"}]})
    );
    let r = cmd(&w, "rename", envelope("c2", json!({"id": "a", "name": "second"}))).await;
    assert_eq!(
        r,
        json!({"ok": true, "id": "a", "note_id": "a", "version": 2, "events": [{"seq": 2, "type": "note.renamed"}]})
    );

    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("published")
        .expect("msg");
    assert_eq!(first.subject.as_str(), "concord.evt.operations.note.created");
    let env: EventEnvelope = serde_json::from_slice(&first.payload).expect("envelope");
    assert_eq!(
        (env.seq, env.actor.country.as_str(), env.command_id.as_str()),
        (1, "FR", "c1")
    );

    let got = w
        .client
        .request(subjects::query("operations", "get"), b"{\"id\":\"a\"}".to_vec().into())
        .await
        .expect("query");
    assert_eq!(
        Reply::parse(&got.payload).expect("reply").to_json(),
        json!({"ok": true, "id": "a", "name": "second", "version": 2})
    );
    assert_eq!(w.log.head().seq, 2);

    // A query, and a read of the log, with a duplicate key are refused
    // rather than read as their last member.
    for (subject, body, want) in [
        (
            subjects::query("operations", "get"),
            &br#"{"id":"nobody","id":"a"}"#[..],
            r#"query is not JSON: duplicate key "id" in the object at $ "#,
        ),
        (
            subjects::log_read(Service::Operations),
            &br#"{"from_seq":1,"max_events":1,"from_seq":2}"#[..],
            r#"log read request must be {"from_seq": u64, "max_events": u64}: duplicate key "from_seq""#,
        ),
    ] {
        let got = w.client.request(subject, body.to_vec().into()).await.expect("answer");
        let r = Reply::parse(&got.payload).expect("reply").to_json();
        assert_eq!(r["error"]["code"], json!("invalid"), "{r}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(want), "{msg:?} should start with {want:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_invalid_and_append_nothing() {
    let w = world().await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("create", b"not json".to_vec(), "command is not JSON"),
        ("create", b"[1,2]".to_vec(), "command envelope is invalid"),
        (
            "create",
            serde_json::to_vec(&json!({"actor": {"sub": "x", "role": "liaison", "country": "FR"}, "data": {}}))
                .expect("json"),
            "command envelope is invalid",
        ),
        (
            "create",
            serde_json::to_vec(&envelope("c", json!({"id": "a"}))).expect("json"),
            "create data is invalid",
        ),
        (
            "create",
            serde_json::to_vec(&envelope("c", json!({"id": "a", "name": "n", "extra": 1}))).expect("json"),
            "create data is invalid",
        ),
        (
            "create",
            serde_json::to_vec(&{
                let mut e = envelope("c", json!({"id": "a", "name": "n"}));
                e["actor"]["country"] = json!("XX");
                e
            })
            .expect("json"),
            "actor.country: \"XX\" is not an ISO 3166-1",
        ),
        (
            "create",
            serde_json::to_vec(&{
                let mut e = envelope("c", json!({"id": "a", "name": "n"}));
                e["actor"]["role"] = json!("admin");
                e
            })
            .expect("json"),
            "command envelope is invalid: /actor/role",
        ),
        (
            "explode",
            serde_json::to_vec(&envelope("c", json!({}))).expect("json"),
            "unknown command explode",
        ),
        // Duplicate keys, in the envelope or in the data: serde_json would
        // keep the last one, another parser the first.
        (
            "create",
            br#"{"command_id":"c","command_id":"d","actor":{"sub":"fr-1","role":"coordinator","country":"FR"},"issued_at":"2026-11-23T10:00:00Z","correlation_id":"req-1","data":{"id":"a","name":"n"}}"#.to_vec(),
            r#"command is not JSON: duplicate key "command_id" in the object at $ "#,
        ),
        (
            "create",
            br#"{"command_id":"c","actor":{"sub":"fr-1","role":"coordinator","country":"FR"},"issued_at":"2026-11-23T10:00:00Z","correlation_id":"req-1","data":{"id":"a","name":"forbidden","name":"n"}}"#.to_vec(),
            r#"command is not JSON: duplicate key "name" in the object at $.data "#,
        ),
    ];
    for (command, body, want) in cases {
        let r = send(&w, command, &body).await;
        assert_eq!(r["ok"], json!(false), "{r}");
        assert_eq!(r["error"]["code"], json!("invalid"), "{r}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.starts_with(want), "{msg:?} should start with {want:?}");
    }
    assert_eq!(w.log.head().seq, 0, "nothing appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_conflicts_and_retries() {
    let w = world().await;
    // A business refusal: its code, nothing appended.
    let r = cmd(&w, "rename", envelope("c0", json!({"id": "a", "name": "x"}))).await;
    assert_eq!(r["error"]["code"], json!("not_found"));
    let r = cmd(&w, "create", envelope("c1", json!({"id": "a", "name": "forbidden"}))).await;
    assert_eq!(r["error"]["code"], json!("rule_violated"));
    // Events that do not match their schema are never stored.
    let r = cmd(&w, "create", envelope("c1b", json!({"id": "a", "name": "buggy"}))).await;
    assert_eq!(r["error"]["code"], json!("internal"), "{r}");
    let r = cmd(&w, "create", envelope("c1c", json!({"id": "a", "name": "untyped"}))).await;
    assert_eq!(r["error"]["code"], json!("internal"), "{r}");
    assert_eq!(w.log.head().seq, 0);

    let first = cmd(&w, "create", envelope("c2", json!({"id": "a", "name": "one"}))).await;
    // The same command id again answers the first result and appends nothing,
    // even though a fresh `create` would now be a conflict.
    assert_eq!(
        cmd(&w, "create", envelope("c2", json!({"id": "a", "name": "one"}))).await,
        first
    );
    assert_eq!(w.log.head().seq, 1);

    // A stale expected version is a conflict with both versions.
    let mut stale = envelope("c3", json!({"id": "a", "name": "two"}));
    stale["expected_version"] = json!(0);
    let r = cmd(&w, "rename", stale).await;
    assert_eq!(r["error"]["code"], json!("conflict"));
    assert_eq!(r["error"]["details"], json!({"expected": 0, "actual": 1}));
    let mut current = envelope("c4", json!({"id": "a", "name": "two"}));
    current["expected_version"] = json!(1);
    assert_eq!(cmd(&w, "rename", current.clone()).await["version"], json!(2));
    // Its retry names a version that is stale now: still the first answer.
    assert_eq!(cmd(&w, "rename", current).await["version"], json!(2));
    // A retry that the current state would accept again is not applied
    // twice: the log answers the known id.
    let r5 = cmd(&w, "rename", envelope("c5", json!({"id": "a", "name": "three"}))).await;
    assert_eq!(
        cmd(&w, "rename", envelope("c5", json!({"id": "a", "name": "three"}))).await,
        r5
    );
    assert_eq!(w.log.head().seq, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_all_land_and_carry_their_trace_context() {
    let w = world().await;
    let mut events = w
        .client
        .subscribe(subjects::events_of(Service::Operations))
        .await
        .expect("sub");
    w.client.flush().await.expect("flush");
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let client = w.client.clone();
            tokio::spawn(async move {
                let mut headers = async_nats::HeaderMap::new();
                let tp = format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
                headers.insert(TRACEPARENT, tp.as_str());
                let body = serde_json::to_vec(&envelope(&format!("k{i}"), json!({"id": format!("n{i}"), "name": "x"})))
                    .expect("json");
                let msg = client
                    .request_with_headers(subjects::command("operations", "create"), headers, body.into())
                    .await
                    .expect("reply");
                (tp, Reply::parse(&msg.payload).expect("reply").to_json())
            })
        })
        .collect();
    let mut sent = std::collections::HashMap::new();
    for t in tasks {
        let (tp, r) = t.await.expect("task");
        assert_eq!(r["ok"], json!(true), "{r}");
        sent.insert(r["id"].as_str().expect("id").to_owned(), tp);
    }
    assert_eq!(w.log.head().seq, 40);
    for _ in 0..40 {
        let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("event")
            .expect("msg");
        let env: EventEnvelope = serde_json::from_slice(&msg.payload).expect("envelope");
        let id = env.stream.trim_start_matches("note-");
        let tp = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(TRACEPARENT))
            .map(|v| v.as_str().to_owned());
        assert_eq!(tp.as_deref(), sent.get(id).map(String::as_str), "trace context of {id}");
    }
}

/// Standard NATS tooling finds the service (`$SRV.PING/INFO/STATS`) and its
/// endpoints count the requests they answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_registered_with_the_nats_service_protocol() {
    let w = world().await;
    let ack = cmd(&w, "create", envelope("srv-1", json!({"id": "n1", "name": "one"}))).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let bad = send(&w, "create", b"{").await;
    assert_eq!(bad["ok"], false);

    let ask = |subject: &'static str| {
        let client = w.client.clone();
        async move {
            let msg = client.request(subject, "".into()).await.expect(subject);
            serde_json::from_slice::<Value>(&msg.payload).expect("json")
        }
    };
    let ping = ask("$SRV.PING.operations").await;
    assert_eq!(ping["name"], "operations", "{ping}");
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    let info = ask("$SRV.INFO.operations").await;
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert!(subjects.contains(&"concord.cmd.operations.*"), "{info}");
    assert!(subjects.contains(&"concord.qry.operations.*"), "{info}");
    let stats = ask("$SRV.STATS.operations").await;
    let commands = stats["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|e| e["name"] == "commands")
        .cloned()
        .expect("commands endpoint");
    assert_eq!(commands["num_requests"], 2, "{stats}");
    assert_eq!(commands["queue_group"], "operations", "{stats}");
}

/// The refusal of a command id used for another request: `rule_violated`
/// with its reason, and nothing of the first command in it.
fn assert_reused(r: &Value, what: &str) {
    assert_eq!(r["ok"], json!(false), "{what}: {r}");
    assert_eq!(r["error"]["code"], json!("rule_violated"), "{what}: {r}");
    assert_eq!(
        r["error"]["details"],
        json!({"reason": "idempotency_key_reused"}),
        "{what}: {r}"
    );
    let text = r.to_string();
    for secret in ["note-a", "\"a\"", "version", "seq"] {
        assert!(!text.contains(secret), "{what} reveals {secret}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_id_names_one_request_and_is_refused_for_another() {
    let w = world().await;
    let first = cmd(&w, "create", envelope("k1", json!({"id": "a", "name": "one"}))).await;
    assert_eq!(first["version"], json!(1), "{first}");

    let with_actor = |field: &str, value: &str| {
        let mut e = envelope("k1", json!({"id": "a", "name": "one"}));
        e["actor"][field] = json!(value);
        e
    };
    let mut stale = envelope("k1", json!({"id": "a", "name": "two"}));
    stale["expected_version"] = json!(0);
    let cases = [
        // Refused by the state the first one left: the runtime's lookup.
        (
            "create",
            envelope("k1", json!({"id": "a", "name": "two"})),
            "other data",
        ),
        ("create", with_actor("sub", "fr-2"), "other sub"),
        ("create", with_actor("role", "liaison"), "other role"),
        ("create", with_actor("country", "DE"), "other country"),
        ("rename", stale, "other data with a stale expected version"),
        // Accepted by the state, so refused by the log itself.
        (
            "rename",
            envelope("k1", json!({"id": "a", "name": "one"})),
            "other command",
        ),
        (
            "create",
            envelope("k1", json!({"id": "b", "name": "one"})),
            "other stream",
        ),
        // Decided to nothing at all.
        (
            "touch",
            envelope("k1", json!({"id": "a"})),
            "a command that changes nothing",
        ),
    ];
    for (command, env, what) in cases {
        assert_reused(&cmd(&w, command, env).await, what);
    }
    assert_eq!(w.log.head().seq, 1, "nothing appended");
    assert_eq!(w.log.stream_version("note-b").expect("version"), 0);

    // The same request again is a retry: its first answer.
    let again = cmd(&w, "create", envelope("k1", json!({"id": "a", "name": "one"}))).await;
    assert_eq!(again, first);
    // A refused reuse did not take the id over either.
    let renamed = cmd(&w, "rename", envelope("k2", json!({"id": "a", "name": "two"}))).await;
    assert_eq!(renamed["version"], json!(2), "{renamed}");
    assert_reused(
        &cmd(&w, "rename", envelope("k2", json!({"id": "a", "name": "three"}))).await,
        "a rename's id for another name",
    );
    assert_eq!(w.log.head().seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reuses_of_one_id_append_one_request() {
    let w = world().await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = w.client.clone();
            tokio::spawn(async move {
                // Half send one request, half another, with one id.
                let name = if i % 2 == 0 { "even" } else { "odd" };
                let body = serde_json::to_vec(&envelope("race", json!({"id": "r", "name": name}))).expect("json");
                let msg = client
                    .request(subjects::command("operations", "create"), body.into())
                    .await
                    .expect("reply");
                (name, Reply::parse(&msg.payload).expect("reply").to_json())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    assert_eq!(w.log.head().seq, 1, "one request appended");
    let winner = w.log.read_events(1, 1).expect("read")[0].data["name"].clone();
    for (name, r) in answers {
        if name == winner {
            assert_eq!(r["version"], json!(1), "{name}: {r}");
        } else {
            assert_reused(&r, name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_survives_a_restart_of_the_service() {
    let w = world().await;
    let first = cmd(&w, "create", envelope("k1", json!({"id": "a", "name": "one"}))).await;
    assert_eq!(first["ok"], json!(true), "{first}");
    let w = w.restarted().await;
    assert_eq!(
        cmd(&w, "create", envelope("k1", json!({"id": "a", "name": "one"}))).await,
        first,
        "a retry after the restart answers the first result"
    );
    assert_reused(
        &cmd(&w, "create", envelope("k1", json!({"id": "b", "name": "one"}))).await,
        "another stream after the restart",
    );
    assert_reused(
        &cmd(&w, "create", envelope("k1", json!({"id": "a", "name": "two"}))).await,
        "other data after the restart",
    );
    assert_eq!(w.log.head().seq, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_changes_nothing_answers_the_stream_s_version() {
    let w = world().await;
    cmd(&w, "create", envelope("c1", json!({"id": "a", "name": "one"}))).await;
    cmd(&w, "rename", envelope("c2", json!({"id": "a", "name": "two"}))).await;
    let r = cmd(&w, "touch", envelope("c3", json!({"id": "a"}))).await;
    assert_eq!(
        r,
        json!({"ok": true, "id": "a", "note_id": "a", "version": 2, "events": []})
    );
    let r = cmd(&w, "touch", envelope("c4", json!({"id": "nothing"}))).await;
    assert_eq!(r["version"], json!(0), "{r}");
    assert_eq!(w.log.head().seq, 2);
}

/// Requests beyond the service's bound are answered `unavailable` at once,
/// and nothing of them is appended; within it they are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_bound_are_refused_at_once() {
    let full = world_with(0).await;
    let r = cmd(&full, "create", envelope("b1", json!({"id": "a", "name": "one"}))).await;
    assert_eq!(r["error"]["code"], json!("unavailable"), "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("limit of 0 requests"), "{message}");
    assert_eq!(full.log.head().seq, 0, "nothing appended");

    let one = world_with(1).await;
    for (i, name) in ["one", "two", "three"].into_iter().enumerate() {
        let command = if i == 0 { "create" } else { "rename" };
        let r = cmd(
            &one,
            command,
            envelope(&format!("s{i}"), json!({"id": "a", "name": name})),
        )
        .await;
        assert_eq!(r["ok"], json!(true), "{r}");
    }
    assert_eq!(one.log.head().seq, 3);
}

/// A text with a control character (but line feed and tab) or of white
/// space only is refused with the field's path, and nothing is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_with_control_characters_or_only_blanks_are_refused() {
    let w = world().await;
    for (name, want) in [
        ("nul\u{0}byte", "/name: control character U+0000"),
        ("\u{1b}[2Jcleared", "/name: control character U+001B"),
        ("   ", "/name: a text of white space only"),
    ] {
        let r = cmd(
            &w,
            "create",
            envelope(&format!("t-{name}"), json!({"id": "a", "name": name})),
        )
        .await;
        assert_eq!(r["error"]["code"], json!("invalid"), "{r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(want), "{message} (wanted {want})");
    }
    assert_eq!(w.log.head().seq, 0, "nothing appended");
    let r = cmd(
        &w,
        "create",
        envelope("t-ok", json!({"id": "a", "name": "two\nlines\tand a tab"})),
    )
    .await;
    assert_eq!(r["ok"], json!(true), "{r}");
}

/// Many commands on one stream at once, decided one after another and
/// appended without waiting for each other's fsync, with refused appends
/// among them (another request under a used id): every other command
/// lands once, versions stay gapless, and a query after an
/// acknowledgement never shows an older version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_one_stream_land_once_in_order_around_refused_appends() {
    // More than one round takes, so that rounds also hand over.
    const COMMANDS: usize = 330;
    let w = world().await;
    let r = cmd(&w, "create", envelope("p-create", json!({"id": "p", "name": "first"}))).await;
    assert_eq!(r["version"], json!(1), "{r}");
    let tasks: Vec<_> = (0..COMMANDS)
        .map(|i| {
            let client = w.client.clone();
            tokio::spawn(async move {
                // Every seventh reuses the create's id for another request:
                // the log refuses its append, decided after others and
                // before others.
                let id = if i % 7 == 3 {
                    "p-create".to_owned()
                } else {
                    format!("p-rename-{i}")
                };
                let env = envelope(&id, json!({"id": "p", "name": format!("name {i}")}));
                let body = serde_json::to_vec(&env).expect("json");
                let msg = client
                    .request(subjects::command("operations", "rename"), body.into())
                    .await
                    .expect("reply");
                let r = Reply::parse(&msg.payload).expect("reply").to_json();
                let get = serde_json::to_vec(&json!({"id": "p"})).expect("json");
                let seen = client
                    .request(subjects::query("operations", "get"), get.into())
                    .await
                    .expect("reply");
                let seen = Reply::parse(&seen.payload).expect("reply").to_json();
                (id, r, seen["version"].as_u64().unwrap_or(0))
            })
        })
        .collect();
    let mut versions = std::collections::BTreeSet::new();
    let mut reused = 0;
    for t in tasks {
        let (id, r, seen) = t.await.expect("task");
        if id == "p-create" {
            assert_reused(&r, "another request under the create's id");
            reused += 1;
            continue;
        }
        let v = r["version"].as_u64().unwrap_or_else(|| panic!("{id} refused: {r}"));
        assert!(versions.insert(v), "version {v} acknowledged twice");
        assert!(seen >= v, "{id}: a get after version {v} showed {seen}");
    }
    assert_eq!(reused, (0..COMMANDS).filter(|i| i % 7 == 3).count());
    let landed = (COMMANDS - reused) as u64;
    assert_eq!(versions, (2..=1 + landed).collect(), "gapless, each once");
    assert_eq!(w.log.head().seq, 1 + landed, "nothing else appended");
    let events = w.log.read_events(1, 1000).expect("read");
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=1 + landed).collect::<Vec<_>>()
    );
}

/// Callers naming the same version of one stream at once: exactly one
/// lands, every other is told the version it missed, whatever round each
/// is decided in; a caller naming the version the winner leaves lands
/// after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_naming_one_version_at_once_land_once() {
    const CALLERS: usize = 40;
    let w = world().await;
    let r = cmd(&w, "create", envelope("v-create", json!({"id": "v", "name": "first"}))).await;
    assert_eq!(r["version"], json!(1), "{r}");
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let client = w.client.clone();
            tokio::spawn(async move {
                let mut env = envelope(&format!("v-{i}"), json!({"id": "v", "name": format!("name {i}")}));
                env["expected_version"] = json!(1);
                let body = serde_json::to_vec(&env).expect("json");
                let msg = client
                    .request(subjects::command("operations", "rename"), body.into())
                    .await
                    .expect("reply");
                Reply::parse(&msg.payload).expect("reply").to_json()
            })
        })
        .collect();
    let mut landed = 0;
    for t in tasks {
        let r = t.await.expect("task");
        if r["ok"] == json!(true) {
            assert_eq!(r["version"], json!(2), "{r}");
            landed += 1;
        } else {
            assert_eq!(r["error"]["code"], json!("conflict"), "{r}");
            assert_eq!(r["error"]["details"], json!({"expected": 1, "actual": 2}), "{r}");
        }
    }
    assert_eq!(landed, 1, "one caller of version 1 lands");
    let mut next = envelope("v-next", json!({"id": "v", "name": "after"}));
    next["expected_version"] = json!(2);
    assert_eq!(cmd(&w, "rename", next).await["version"], json!(3));
    assert_eq!(w.log.head().seq, 3);
}
