//! The deployments service over a real nats-server, beside real crisis and
//! operations services: deployments only for an open crisis in the host
//! country, and the choreography — down while a crisis closes (its log
//! still served), on restart it catches up and requests the stand-down of
//! each linked, active deployment exactly once (also across a second
//! restart).

use std::time::Duration;

use futures::StreamExt;

use concord_bus::logs::{fetch_head, fetch_log};
use concord_bus::service::WallClock;
use concord_core::reply::Reply;
use concord_core::{Service, subjects};
use concord_testkit::NatsServer;
use serde_json::{Value, json};
use uuid::Uuid;

struct World {
    _nats: NatsServer,
    dir: tempfile::TempDir,
    url: String,
    client: async_nats::Client,
}

async fn world() -> World {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let url = nats.url();
    let ops = concord_operations::bind(
        &concord_bus::service::Config::new(dir.path().join("operations")),
        async_nats::connect(&url).await.expect("connect"),
    )
    .await
    .expect("operations");
    tokio::spawn(ops.run(std::future::pending()));
    let crisis = concord_crisis::bind(
        &concord_bus::service::Config::new(dir.path().join("crisis")),
        async_nats::connect(&url).await.expect("connect"),
    )
    .await
    .expect("crisis");
    tokio::spawn(crisis.run(std::future::pending()));
    World {
        client: async_nats::connect(&url).await.expect("connect"),
        url,
        _nats: nats,
        dir,
    }
}

impl World {
    async fn start_deployments(&self) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        self.start_deployments_on(WallClock::system()).await
    }

    /// Starts the deployments service with its log's time read from `clock`.
    async fn start_deployments_on(
        &self,
        clock: WallClock,
    ) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let mut cfg = concord_bus::service::Config::new(self.dir.path().join("deployments"));
        cfg.clock = clock;
        let svc = concord_deployments::bind(&cfg, async_nats::connect(&self.url).await.expect("connect"))
            .await
            .expect("deployments");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = svc
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        (tx, done)
    }

    /// Serves the deployments log (`log.read/head`), and only that, while
    /// the service is stopped; the handle ends when the log is closed.
    async fn serve_deployments_log(&self) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let cfg = concord_bus::service::Config::new(self.dir.path().join("deployments"));
        let log = concord_bus::service::open_log(&cfg, Service::Deployments)
            .await
            .expect("deployments log");
        let client = async_nats::connect(&self.url).await.expect("connect");
        let server = concord_bus::logs::LogServer::bind(client, log)
            .await
            .expect("serve the log");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        (tx, done)
    }

    async fn cmd(&self, service: &str, command: &str, country: &str, data: Value) -> Value {
        let env = json!({
            "command_id": Uuid::now_v7().to_string(),
            "actor": {"sub": format!("{country}-liaison"), "role": "liaison", "country": country},
            "issued_at": "2026-11-23T10:00:00Z",
            "correlation_id": "req",
            "data": data,
        });
        let subject = subjects::command(service, command);
        let msg = self
            .client
            .request(subject.clone(), serde_json::to_vec(&env).expect("json").into())
            .await
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
        Reply::parse(&msg.payload).expect("reply").to_json()
    }

    async fn deploy(&self, crisis: Uuid) -> Uuid {
        let id = Uuid::now_v7();
        let data = json!({"deployment_id": id, "team": "irt", "host_country": "ES", "crisis_id": crisis,
            "reason": "bombing", "members": [{"name": "Anne", "role": "lead", "country": "FR"}, {"name": "Jens", "role": "bomb expert", "country": "DE"}]});
        let r = self.cmd("deployments", "request_deployment", "DE", data).await;
        assert_eq!(r["ok"], true, "{r}");
        let r = self
            .cmd("deployments", "approve_deployment", "ES", json!({"deployment_id": id}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        id
    }

    async fn declare(&self) -> Uuid {
        let id = Uuid::now_v7();
        let data =
            json!({"crisis_id": id, "kind": "terrorist_attack", "title": "Bombing", "country": "ES", "severity": 4});
        let r = self.cmd("crisis", "declare_crisis", "ES", data).await;
        assert_eq!(r["ok"], true, "{r}");
        id
    }

    /// `(deployment stream, crisis_id)` of every stand-down in the log.
    async fn stand_downs(&self) -> Vec<(String, String)> {
        let read = fetch_log(&self.client, Service::Deployments, 1, 1000)
            .await
            .expect("log");
        read.events
            .iter()
            .filter(|e| e.event_type == "deployment.stand_down_requested")
            .map(|e| {
                (
                    e.stream.clone(),
                    e.data["crisis_id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_down_exactly_once_after_a_crisis_closed_while_down() {
    let w = world().await;
    let (stop, stopped) = w.start_deployments().await;
    let bombing = w.declare().await;
    let other = w.declare().await;
    let a = w.deploy(bombing).await;
    let b = w.deploy(bombing).await;
    let c = w.deploy(other).await;
    // Only requested, never approved: nothing to stand down.
    let pending = Uuid::now_v7();
    let data = json!({"deployment_id": pending, "team": "dvi", "host_country": "ES", "crisis_id": bombing,
        "reason": "victims", "members": [{"name": "Marc", "role": "odontologist", "country": "FR"}]});
    assert_eq!(w.cmd("deployments", "request_deployment", "FR", data).await["ok"], true);

    stop.send(()).expect("stop");
    stopped.await.expect("stopped");
    // The crisis service never decides without learning where the
    // deployments log stands, so the stopped service's log is still served
    // (as a reader of it would): the service and its reaction are down,
    // what it has written is not.
    let (stop_log, log_served) = w.serve_deployments_log().await;
    let r = w
        .cmd(
            "crisis",
            "close_crisis",
            "ES",
            json!({"crisis_id": bombing, "summary": "over"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    stop_log.send(()).expect("stop serving");
    log_served.await.expect("log server stopped");

    let (stop, stopped) = w.start_deployments().await;
    let mut got = Vec::new();
    for _ in 0..200 {
        got = w.stand_downs().await;
        if got.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut want = vec![
        (format!("deployment-{a}"), bombing.to_string()),
        (format!("deployment-{b}"), bombing.to_string()),
    ];
    want.sort();
    got.sort();
    assert_eq!(got, want, "one stand-down per active deployment of the closed crisis");
    let _ = c;

    // Restart again: the reaction is replayed, nothing is appended twice.
    let head = fetch_head(&w.client, Service::Deployments).await.expect("head").seq;
    stop.send(()).expect("stop");
    stopped.await.expect("stopped");
    let (_stop, _stopped) = w.start_deployments().await;
    // The restarted service has caught up when it answers a command that
    // needs its views (an approval for a closed crisis is refused: no team
    // lands for a crisis that is over); then give the reactor time to
    // (not) act.
    let r = w
        .cmd(
            "deployments",
            "approve_deployment",
            "ES",
            json!({"deployment_id": pending}),
        )
        .await;
    assert_eq!(code(&r), "rule_violated", "{r}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.stand_downs().await.len(), 2);
    assert_eq!(
        fetch_head(&w.client, Service::Deployments).await.expect("head").seq,
        head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_need_an_open_crisis_in_the_host_country() {
    let w = world().await;
    let (_stop, _stopped) = w.start_deployments().await;
    let crisis = w.declare().await;
    let member = json!([{"name": "Anne", "role": "lead", "country": "FR"}]);
    let req = |host: &str, crisis_id: Uuid| {
        json!({"deployment_id": Uuid::now_v7(), "team": "irt", "host_country": host, "crisis_id": crisis_id,
            "reason": "help", "members": member})
    };
    assert_eq!(
        code(
            &w.cmd("deployments", "request_deployment", "FR", req("PT", crisis))
                .await
        ),
        "rule_violated"
    );
    assert_eq!(
        code(
            &w.cmd("deployments", "request_deployment", "FR", req("ES", Uuid::now_v7()))
                .await
        ),
        "not_found"
    );
    let r = w
        .cmd(
            "crisis",
            "close_crisis",
            "ES",
            json!({"crisis_id": crisis, "summary": "over"}),
        )
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(
        code(
            &w.cmd("deployments", "request_deployment", "FR", req("ES", crisis))
                .await
        ),
        "rule_violated"
    );
    assert_eq!(fetch_head(&w.client, Service::Deployments).await.expect("head").seq, 0);
}

/// Causal order across services whose clocks disagree: the deployments
/// service's clock runs 5 s behind the crisis service's, yet what it
/// decides after folding a crisis event, and the stand-down a closing
/// causes, are stamped after that crisis event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn causal_order_holds_with_the_deployments_clock_5_s_behind() {
    let w = world().await;
    let behind = WallClock::shifted(chrono::TimeDelta::seconds(-5));
    let (_stop, _stopped) = w.start_deployments_on(behind).await;
    let crisis = w.declare().await;
    w.deploy(crisis).await;
    // A copy of the choreography's command, as it goes on the bus.
    let mut stand_down_commands = w
        .client
        .subscribe(subjects::command("deployments", "request_stand_down"))
        .await
        .expect("subscribe");
    w.client.flush().await.expect("flush");
    let r = w
        .cmd(
            "crisis",
            "close_crisis",
            "ES",
            json!({"crisis_id": crisis, "summary": "over"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let sent = tokio::time::timeout(Duration::from_secs(10), stand_down_commands.next())
        .await
        .expect("a stand-down command in time")
        .expect("message");
    let sent: Value = serde_json::from_slice(&sent.payload).expect("json");
    for _ in 0..200 {
        if !w.stand_downs().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stamp = |read: &concord_bus::logs::LogRead, event_type: &str| {
        read.events
            .iter()
            .find(|e| e.event_type == event_type)
            .map(|e| e.hlc)
            .unwrap_or_else(|| panic!("no {event_type}"))
    };
    let crises = fetch_log(&w.client, Service::Crisis, 1, 100).await.expect("crisis log");
    let deployments = fetch_log(&w.client, Service::Deployments, 1, 100)
        .await
        .expect("deployments log");
    let (declared, closed) = (stamp(&crises, "crisis.declared"), stamp(&crises, "crisis.closed"));
    assert_eq!(
        sent["causation_hlc"],
        json!(closed),
        "the stand-down command carries its cause's stamp: {sent}"
    );
    let requested = stamp(&deployments, "deployment.requested");
    let stand_down = stamp(&deployments, "deployment.stand_down_requested");
    assert!(
        requested > declared,
        "deployment.requested {requested:?} after crisis.declared {declared:?}"
    );
    assert!(
        stand_down > closed,
        "deployment.stand_down_requested {stand_down:?} after crisis.closed {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_crisis_log_on_from_where_it_stopped() {
    let w = world().await;
    let (stop, stopped) = w.start_deployments().await;
    let crisis = w.declare().await;
    w.deploy(crisis).await;
    let r = w
        .cmd(
            "crisis",
            "close_crisis",
            "ES",
            json!({"crisis_id": crisis, "summary": "over"}),
        )
        .await;
    assert_eq!(r["ok"], true, "{r}");
    // The stand-down is reacted to: the closing is behind the reader.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while w.stand_downs().await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no stand-down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let crisis_head = fetch_head(&w.client, Service::Crisis).await.expect("head").seq;
    stop.send(()).expect("stop");
    stopped.await.expect("stopped");

    let mut reads = w
        .client
        .subscribe(subjects::log_read(Service::Crisis))
        .await
        .expect("subscribe");
    w.client.flush().await.expect("flush");
    let _running = w.start_deployments().await;
    let froms = concord_testkit::sniff::read_froms(&mut reads, std::time::Duration::from_millis(1000)).await;
    assert!(
        froms.iter().all(|f| *f >= crisis_head),
        "the crisis log was read again from {froms:?}, not from seq {crisis_head}"
    );
    assert_eq!(w.stand_downs().await.len(), 1, "one stand-down, not one per start");
}
