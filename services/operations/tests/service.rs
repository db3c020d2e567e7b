//! The operations service over a real nats-server: the operation story as
//! NATS commands, the visibility of the `get` query, and malformed input.

use concord_bus::logs::fetch_head;
use concord_bus::service::Config;
use concord_core::reply::Reply;
use concord_core::{Service, subjects};
use concord_operations::bind;
use concord_testkit::NatsServer;
use serde_json::{Value, json};

struct World {
    _nats: NatsServer,
    _dir: tempfile::TempDir,
    client: async_nats::Client,
    n: std::sync::atomic::AtomicU64,
}

async fn world() -> World {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let svc = bind(&Config::new(dir.path().join("operations")), client.clone())
        .await
        .expect("bind");
    tokio::spawn(svc.run(std::future::pending()));
    World {
        _nats: nats,
        _dir: dir,
        client,
        n: 0.into(),
    }
}

impl World {
    async fn cmd(&self, command: &str, role: &str, country: &str, data: Value) -> Value {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let env = json!({
            "command_id": format!("cmd-{n}"),
            "actor": {"sub": format!("{country}-{role}"), "role": role, "country": country},
            "issued_at": "2026-11-23T10:00:00Z",
            "correlation_id": format!("req-{n}"),
            "data": data,
        });
        self.raw(command, serde_json::to_vec(&env).expect("json")).await
    }

    async fn raw(&self, command: &str, body: Vec<u8>) -> Value {
        let msg = self
            .client
            .request(subjects::command("operations", command), body.into())
            .await
            .expect("reply");
        Reply::parse(&msg.payload).expect("reply").to_json()
    }

    async fn get(&self, id: &str, country: &str) -> Value {
        let body = serde_json::to_vec(&json!({"operation_id": id, "country": country})).expect("json");
        let msg = self
            .client
            .request(subjects::query("operations", "get"), body.into())
            .await
            .expect("reply");
        Reply::parse(&msg.payload).expect("reply").to_json()
    }
}

const OP: &str = "019ab0c4-5e00-7000-8000-0000000000aa";
const TASK: &str = "019ab0c4-5e00-7000-8000-0000000000bb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operation_story_over_nats() {
    let w = world().await;
    let r = w
        .cmd(
            "open",
            "coordinator",
            "FR",
            json!({"operation_id": OP, "title": "Héron", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES"]}),
        )
        .await;
    assert_eq!(
        (r["ok"].clone(), r["id"].clone(), r["version"].clone()),
        (json!(true), json!(OP), json!(1)),
        "{r}"
    );

    let r = w
        .cmd("assign_task", "coordinator", "FR", json!({"operation_id": OP, "task_id": TASK, "assignee_country": "DE", "title": "surveil the port", "details": ""}))
        .await;
    assert_eq!((r["id"].clone(), r["version"].clone()), (json!(TASK), json!(2)), "{r}");

    // Only DE's liaison answers DE's task; ES sees the operation but may not.
    let r = w
        .cmd(
            "update_task_status",
            "liaison",
            "ES",
            json!({"operation_id": OP, "task_id": TASK, "status": "accepted"}),
        )
        .await;
    assert_eq!(r["error"]["code"], json!("forbidden"), "{r}");
    for status in ["accepted", "done"] {
        let r = w
            .cmd(
                "update_task_status",
                "liaison",
                "DE",
                json!({"operation_id": OP, "task_id": TASK, "status": status}),
            )
            .await;
        assert_eq!(r["ok"], json!(true), "{r}");
    }
    let r = w
        .cmd(
            "add_participant",
            "coordinator",
            "FR",
            json!({"operation_id": OP, "country": "IT"}),
        )
        .await;
    assert_eq!(r["version"], json!(5), "{r}");
    let r = w
        .cmd(
            "close",
            "coordinator",
            "FR",
            json!({"operation_id": OP, "outcome": "12 arrests"}),
        )
        .await;
    assert_eq!(r["version"], json!(6), "{r}");
    let r = w
        .cmd(
            "add_participant",
            "coordinator",
            "FR",
            json!({"operation_id": OP, "country": "NL"}),
        )
        .await;
    assert_eq!(r["error"]["code"], json!("rule_violated"), "{r}");

    let seen = w.get(OP, "IT").await;
    assert_eq!(seen["operation"]["status"], json!("closed"), "{seen}");
    assert_eq!(seen["operation"]["version"], json!(6));
    assert_eq!(seen["operation"]["tasks"][0]["status"], json!("done"));
    // A country outside the operation cannot tell it from a missing one.
    let hidden = w.get(OP, "US").await;
    let missing = w.get("019ab0c4-5e00-7000-8000-0000000000cc", "US").await;
    assert_eq!(hidden, missing);
    assert_eq!(hidden["error"]["code"], json!("not_found"));
    // A non-member's command gets the same not_found.
    let r = w
        .cmd(
            "close",
            "coordinator",
            "US",
            json!({"operation_id": OP, "outcome": "x"}),
        )
        .await;
    assert_eq!(r["error"]["code"], json!("not_found"));
    assert_eq!(fetch_head(&w.client, Service::Operations).await.expect("head").seq, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_published_on_nats_get_invalid_and_append_nothing() {
    let w = world().await;
    let r = w.raw("open", b"{\"command_id\": 42}".to_vec()).await;
    assert_eq!(r["error"]["code"], json!("invalid"), "{r}");
    let bad_bodies = [
        json!({"operation_id": "not-a-uuid", "title": "t", "objective": "o", "lead_country": "FR", "countries": []}),
        json!({"operation_id": OP, "title": "", "objective": "o", "lead_country": "FR", "countries": []}),
        json!({"operation_id": OP, "title": "t", "objective": "o", "lead_country": "XX", "countries": []}),
        json!({"operation_id": OP, "title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE"], "secret": 1}),
    ];
    for body in bad_bodies {
        let r = w.cmd("open", "coordinator", "FR", body.clone()).await;
        assert_eq!(r["error"]["code"], json!("invalid"), "{body} → {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("open data is invalid")
                || r["error"]["message"].as_str().unwrap_or_default().contains("XX"),
            "{r}"
        );
    }
    assert_eq!(fetch_head(&w.client, Service::Operations).await.expect("head").seq, 0);
}

/// A stored event is read through the contract, never against today's
/// schemas: data a later, stricter schema would refuse still loads; an
/// event of a `schema_version` this release does not know is an error
/// that names it, never a guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_events_are_read_through_the_contract_not_todays_schemas() {
    use concord_core::{Actor, CountryCode, ExpectedVersion, Role};
    use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};

    const OLD: &str = "019ab0c4-5e00-7000-8000-0000000000c1";
    const NEWER: &str = "019ab0c4-5e00-7000-8000-0000000000c2";
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let cfg = Config::new(dir.path().join("operations"));
    // Written as an earlier release could have: a title of 300 characters
    // (today's schema allows 200), and an opening under schema_version 9.
    let long_title = "t".repeat(300);
    {
        let log = Log::open(&cfg.log_dir, Service::Operations).expect("log");
        for (id, title, schema_version) in [(OLD, long_title.as_str(), 1), (NEWER, "from the future", 9)] {
            let stream = format!("operation-{id}");
            let actor = Actor {
                sub: "fr-coordinator".into(),
                role: Role::Coordinator,
                country: CountryCode::parse("FR").expect("FR"),
            };
            log.append(AppendRequest {
                fingerprint: Fingerprint::new("open", &stream, &json!({"operation_id": id}), &actor)
                    .expect("canonical"),
                stream,
                expected: ExpectedVersion::NoStream,
                command_id: format!("old-{id}"),
                actor,
                correlation_id: "r".into(),
                causation_id: None,
                observed_hlc: None,
                events: vec![NewEvent {
                    event_type: "operation.opened".into(),
                    schema_version,
                    data: json!({"operation_id": id, "title": title, "objective": "o", "lead_country": "FR",
                                 "participants": ["DE"], "opened_at": "2026-01-01T00:00:00.000000Z"}),
                }],
            })
            .await
            .expect("append");
        }
    }
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let svc = bind(&cfg, client.clone()).await.expect("bind");
    tokio::spawn(svc.run(std::future::pending()));
    let w = World {
        _nats: nats,
        _dir: dir,
        client,
        n: 0.into(),
    };
    let r = w.get(OLD, "DE").await;
    assert_eq!(r["operation"]["title"], json!(long_title), "{r}");
    let r = w.get(NEWER, "DE").await;
    assert_eq!(r["error"]["code"], json!("internal"), "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("schema_version 9"), "{message}");
    // The old stream goes on under today's rules.
    let r = w
        .cmd(
            "add_participant",
            "coordinator",
            "FR",
            json!({"operation_id": OLD, "country": "IT"}),
        )
        .await;
    assert_eq!(r["version"], json!(2), "{r}");
}
