//! The bus is closed: `concord up` with its generated identities and
//! permissions, probed from every identity (and from none) as an attacker
//! on the same network would (issue 12's probe list), and each service
//! still doing its work with exactly its own permissions. A forged event
//! published with a key that may publish it is never applied, and a
//! service that stops following a log is reported by `/readyz`.
//!
//! A refusal is asserted positively: nats-server reports each refused
//! publish or subscribe to the client as a "Permissions Violation" naming
//! the subject, and what a refused subscription would have received is
//! sent and checked not to arrive; every probing connection also does one
//! thing it may do, and that works.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_addr, ok, problem, up};
use concord_bus::credentials::{self, Seed};
use concord_bus::permissions::{self, Identity};
use concord_core::chain::{canonical_json, seal};
use concord_core::{Actor, CountryCode, EventEnvelope, Hlc, Role, Service, subjects};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

/// What each identity follows, stated here independently of the table
/// (so a table that grants more fails this test rather than widen it).
fn follows(id: Identity) -> &'static [Service] {
    match id {
        Identity::Service(Service::Intel) => &[Service::Operations],
        Identity::Service(Service::Crisis) => &[Service::Deployments],
        Identity::Service(Service::Deployments) => &[Service::Crisis, Service::Operations, Service::Deployments],
        Identity::Projector | Identity::Service(Service::Audit) => &Service::ALL,
        _ => &[],
    }
}

/// The logs it may read: those it follows; every log for the operator
/// (`concord log backup` of a running service).
fn reads(id: Identity) -> &'static [Service] {
    match id {
        Identity::Operator => &Service::ALL,
        _ => follows(id),
    }
}

fn serves(id: Identity) -> Option<Service> {
    match id {
        Identity::Service(s) => Some(s),
        _ => None,
    }
}

fn seed(data: &Path, id: Identity) -> Seed {
    Seed::read_file(&data.join("nats").join(credentials::SEEDS_DIR).join(format!("{id}.nk"))).expect("seed")
}

type Violations = common::Reported;

/// A connection as `id` that records every error the server reports.
async fn probe_as(url: &str, id: Identity, seed: Option<&Seed>) -> Result<(async_nats::Client, Violations), String> {
    common::connect_recording(url, id, seed, format!("probe-{id}")).await
}

/// Waits for the server's violation report naming `what` and `subject`.
async fn refused(seen: &Violations, id: Identity, what: &str, subject: &str) {
    let wanted = format!("Permissions Violation for {what} to \"{subject}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if seen.lock().expect("lock").iter().any(|e| e.contains(&wanted)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: no refusal of {what} to {subject}; the server reported {:?}",
            seen.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Call after the traffic had time to arrive.
fn nothing_arrived(sub: &mut async_nats::Subscriber, id: Identity, what: &str) {
    if let Some(Some(m)) = sub.next().now_or_never() {
        panic!("{id}: {what} received {} ({:?})", m.subject, m.payload);
    }
}

/// Every probe of the issue from `id`'s connection: each refused by the
/// server, none doing anything; then one permitted request that works.
async fn probe(url: &str, data: &Path, id: Identity, traffic: &async_nats::Client) {
    let (c, seen) = probe_as(url, id, Some(&seed(data, id))).await.expect("connects");
    let mut published: Vec<String> = Vec::new();
    let mut rogue: Vec<(String, async_nats::Subscriber)> = Vec::new();
    // Replies to refused requests would arrive here: none may.
    let replies = c.new_inbox();
    let mut answers = c.subscribe(format!("{replies}.*")).await.expect("own inbox");
    let mut send = |subject: String, body: Value| {
        let c = c.clone();
        let reply = format!("{replies}.{}", published.len());
        published.push(subject.clone());
        async move {
            c.publish_with_reply(subject, reply, serde_json::to_vec(&body).expect("json").into())
                .await
                .expect("publish");
        }
    };

    // Read a log it does not follow (every event, restricted leads too).
    for s in Service::ALL.into_iter().filter(|s| !reads(id).contains(s)) {
        send(subjects::log_read(s), json!({"from_seq": 1, "max_events": 100})).await;
    }
    if id != Identity::Gateway {
        // Query as someone else: any country, as an auditor.
        send(
            subjects::query("intel", "get"),
            json!({"kind": "lead", "id": uuid::Uuid::now_v7(), "country": "US", "role": "auditor"}),
        )
        .await;
        // Forge a command with any actor.
        let forged = json!({"command_id": "forged", "actor": {"sub": "nobody", "role": "reviewer", "country": "GS"},
                            "issued_at": "2026-11-30T10:00:00Z", "correlation_id": "x", "data": {}});
        send(subjects::command("intel", "review_notice"), forged.clone()).await;
        send(subjects::command("operations", "add_participant"), forged.clone()).await;
        send(subjects::command("deployments", "approve_deployment"), forged).await;
    }
    // Publish an event of another service.
    for s in Service::ALL.into_iter().filter(|s| Some(*s) != serves(id)) {
        send(subjects::event(s, "participant.added"), json!({"seq": 1})).await;
    }
    // Forge a country's feed, read another country's gaps.
    if id != Identity::Projector {
        send(
            subjects::feed_event("DE", Service::Intel, "lead.posted"),
            json!({"seq": 1}),
        )
        .await;
    }
    send(subjects::feed_read(Some("FR")), json!({"after": 0})).await;
    // Hear another country's feed, or every country's.
    for subject in [
        subjects::feed_of(Some("FR"), Service::Intel),
        subjects::feed_of(None, Service::Intel),
    ] {
        let sub = c.subscribe(subject.clone()).await.expect("subscribe");
        rogue.push((subject, sub));
    }
    // Join another service's queue group, and hear commands outside it.
    for s in Service::ALL {
        let subject = subjects::commands_of(s.as_str());
        if Some(s) != serves(id) {
            let sub = c
                .queue_subscribe(subject.clone(), subjects::queue_group(s.as_str()))
                .await
                .expect("subscribe");
            rogue.push((format!("{subject} in queue {s}"), sub));
        }
        let sub = c.subscribe(subject.clone()).await.expect("subscribe");
        rogue.push((subject, sub));
    }
    // Everyone's replies, and everything.
    let others_inbox = if id == Identity::Gateway {
        Identity::Service(Service::Intel)
    } else {
        Identity::Gateway
    };
    for subject in [
        "_INBOX.>".to_owned(),
        format!("{}.>", others_inbox.inbox_prefix()),
        "concord.>".to_owned(),
        "concord.evt.>".to_owned(),
        ">".to_owned(),
    ] {
        let sub = c.subscribe(subject.clone()).await.expect("subscribe");
        rogue.push((subject, sub));
    }
    c.flush().await.expect("flush");

    for subject in &published {
        refused(&seen, id, "Publish", subject).await;
    }
    for (what, _) in &rogue {
        let (subject, queue) = match what.split_once(" in queue ") {
            Some((s, q)) => (s, Some(q)),
            None => (what.as_str(), None),
        };
        let wanted = match queue {
            Some(q) => format!("{subject}\" using queue \"{q}"),
            None => subject.to_owned(),
        };
        refused(&seen, id, "Subscription", &wanted).await;
    }

    // What a refused subscription would have received: commands to every
    // service (each answered, so they reached the service's own group),
    // queries, and replies to the gateway.
    for s in Service::ALL {
        for i in 0..16 {
            let r = traffic
                .request(
                    subjects::command(s.as_str(), "open"),
                    format!("{{\"probe\":{i}}}").into(),
                )
                .await
                .expect("the service answers");
            let answered = concord_core::reply::Reply::parse(&r.payload);
            assert!(
                matches!(answered, Ok(concord_core::reply::Reply::Err(_))),
                "{:?}",
                r.payload
            );
        }
    }
    // The replies above came through the server after anything it would
    // have delivered to these; a further round trip makes sure.
    traffic.flush().await.expect("flush");
    c.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (what, mut sub) in rogue {
        nothing_arrived(&mut sub, id, &what);
    }
    nothing_arrived(&mut answers, id, "a refused request");

    // And what it may do works on this very connection.
    let allowed = match id {
        Identity::Service(s) => subjects::service_api("PING", s.as_str()),
        Identity::Gateway => subjects::service_api("PING", "operations"),
        Identity::Operator | Identity::Projector => subjects::log_head(Service::Intel),
        Identity::Site(cc) => subjects::feed_read(Some(cc.as_str())),
    };
    let r = tokio::time::timeout(Duration::from_secs(5), c.request(allowed.clone(), "{}".into()))
        .await
        .expect("in time")
        .unwrap_or_else(|e| panic!("{id}: {allowed} refused: {e}"));
    assert!(!r.payload.is_empty());
    for &source in reads(id) {
        let read = concord_bus::logs::fetch_log(&c, source, 1, 1)
            .await
            .unwrap_or_else(|e| panic!("{id} reads the {source} log: {e}"));
        assert!(read.identity.is_some());
    }
}

/// The nats-server log's violations by Concord's own connections (named
/// `concord-<identity>`): a service that needs more than its grant.
fn own_violations(data: &Path) -> Vec<String> {
    std::fs::read_to_string(data.join("nats").join("nats.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Violation") && l.contains("concord-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_is_refused_from_every_identity_and_each_service_works_with_its_own() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    // Germany runs a national site.
    let de: CountryCode = "DE".parse().expect("DE");
    credentials::add_site(&data.join("nats"), de).expect("a national site");
    let sys = up(&data, &free_addr());
    let url = sys.nats_url();
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions());
    for id in Identity::ALL {
        let file = data.join("nats").join(credentials::SEEDS_DIR).join(format!("{id}.nk"));
        assert_eq!(mode(&file) & 0o777, 0o600, "{id}'s seed is its owner's only");
    }

    // No anonymous connection, and no key the server does not know.
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    let err = anonymous.expect_err("an anonymous connection is refused").to_string();
    assert!(err.to_lowercase().contains("authorization"), "{err}");
    let stranger = Seed::generate().expect("seed");
    let err = probe_as(&url, Identity::Gateway, Some(&stranger))
        .await
        .expect_err("an unknown key is refused");
    assert!(err.to_lowercase().contains("authorization"), "{err}");

    // The probes, from every identity.
    let (traffic, _) = probe_as(&url, Identity::Gateway, Some(&seed(&data, Identity::Gateway)))
        .await
        .expect("gateway");
    for id in Identity::ALL.into_iter().chain([Identity::Site(de)]) {
        probe(&url, &data, id, &traffic).await;
    }

    // Each service does its work with its own permissions: operations and
    // intel (which follows operations), crisis and deployments (which
    // follow each other), the stand-down the choreography sends.
    let op = sys.open_operation().await;
    ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "DE_LIAISON",
            json!({"summary": "a boat"}),
        )
        .await,
        201,
    );
    let crisis = ok(
        &sys.post(
            "/v1/crises",
            "ES_LIAISON",
            json!({"kind": "natural_disaster", "title": "Floods", "country": "ES", "severity": 3}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("crisis")
        .to_owned();
    let dep = ok(
        &sys.post(
            "/v1/deployments",
            "DE_LIAISON",
            json!({"team": "irt", "host_country": "ES", "crisis_id": crisis, "reason": "rescue",
                   "members": [{"name": "Jens Weber", "role": "lead", "country": "DE"}]}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("deployment")
        .to_owned();
    ok(
        &sys.call(
            "POST",
            &format!("/v1/deployments/{dep}/approve"),
            Some("ES_LIAISON"),
            &[],
            None,
        )
        .await,
        200,
    );
    ok(
        &sys.call(
            "POST",
            &format!("/v1/deployments/{dep}/arrive"),
            Some("DE_LIAISON"),
            &[],
            None,
        )
        .await,
        200,
    );
    // DE has a team there (crisis knows it from the deployments log).
    ok(
        &sys.post(
            &format!("/v1/crises/{crisis}/sitreps"),
            "DE_LIAISON",
            json!({"text": "on site"}),
        )
        .await,
        201,
    );
    ok(
        &sys.post(
            &format!("/v1/crises/{crisis}/close"),
            "ES_LIAISON",
            json!({"summary": "over"}),
        )
        .await,
        200,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = ok(&sys.get(&format!("/v1/deployments/{dep}"), "DE_LIAISON").await, 200);
        if d["stand_down"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "no stand-down requested: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = sys.call("GET", "/readyz", None, &[], None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());
    // The projector, with its own identity, answers too.
    assert_eq!(
        ready.json()["checks"]["services"]["projector"],
        "up",
        "{:?}",
        ready.json()
    );
    // The operator's tool reads a running service's log whole, with the
    // operator's key `concord up` made beside it.
    let backup = std::process::Command::new(common::BIN)
        .args(["log", "backup"])
        .arg(data.join("intel"))
        .arg("--out")
        .arg(dir.path().join("intel-backup"))
        .args(["--nats", &url])
        .env_remove("CONCORD_NATS_SEED")
        .output()
        .expect("concord log backup");
    let said = String::from_utf8_lossy(&backup.stdout);
    assert!(
        backup.status.success() && said.contains("read from nats"),
        "{said}{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let own = own_violations(&data);
    assert!(
        own.is_empty(),
        "Concord's own connections hit their permissions: {own:?}"
    );
    // The probes did reach the server's log (so the check above looks at
    // the right file).
    let log = std::fs::read_to_string(data.join("nats").join("nats.log")).expect("nats.log");
    assert!(
        log.contains("probe-intel"),
        "the server logs violations with the connection's name"
    );
}

/// The event `participant.added {country}` for operation `op`, at `seq`
/// and stream version `version`, linked to `prev_hash` and correctly
/// hashed: what a holder of a key that may publish operations events (a
/// stolen one, or a misconfigured permission) can make.
fn forged_participant(op: &str, country: &str, seq: u64, version: u64, prev_hash: &str) -> String {
    let data = json!({"country": country});
    let mut env = EventEnvelope {
        id: uuid::Uuid::now_v7(),
        service: Service::Operations,
        seq,
        stream: format!("operation-{op}"),
        version,
        event_type: "participant.added".into(),
        schema_version: 1,
        recorded_at: "2026-11-30T10:00:00.000000Z".into(),
        hlc: Hlc::default(),
        actor: Actor {
            sub: "demo-fr-coordinator".into(),
            role: Role::Coordinator,
            country: CountryCode::parse("FR").expect("FR"),
        },
        command_id: format!("forged-{seq}"),
        correlation_id: "forged".into(),
        causation_id: None,
        data: data.clone(),
        data_digest: String::new(),
        prev_hash: prev_hash.into(),
        hash: String::new(),
    };
    String::from_utf8(seal(&mut env, &canonical_json(&data).expect("canonical"))).expect("utf-8")
}

async fn intel_health(operator: &async_nats::Client) -> Value {
    let r = operator
        .request(subjects::service_api("STATS", "intel"), "".into())
        .await
        .expect("intel's STATS");
    let stats: Value = serde_json::from_slice(&r.payload).expect("json");
    stats["endpoints"][0]["data"].clone()
}

/// A key that may publish operations events (simulating a misconfigured
/// permission) publishes a correctly hashed `participant.added` for the US
/// into an FR operation, then one that does not hash: intel applies
/// neither (the US still may not post or read there), counts both, stays
/// ready and keeps following the real log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correctly_hashed_forged_event_from_a_permitted_key_is_never_applied() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up(&data, &free_addr());
    let url = sys.nats_url();
    let op = sys.open_operation().await;
    let lead = ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "DE_LIAISON",
            json!({"summary": "a boat"}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("lead")
        .to_owned();
    let us_post = |sys: &common::Up| {
        let path = format!("/v1/operations/{op}/leads");
        let token = sys.token("US_LIAISON").to_owned();
        let addr = sys.addr.clone();
        async move {
            concord_testkit::http::request(
                &addr,
                "POST",
                &path,
                &[
                    ("Authorization", &format!("Bearer {token}")),
                    ("Content-Type", "application/json"),
                ],
                Some(br#"{"summary":"planted"}"#),
            )
            .await
            .expect("http")
        }
    };
    let before = us_post(&sys).await.status;
    assert!(before == 403 || before == 404, "the US is no participant: {before}");

    let (forger, _) = probe_as(
        &url,
        Identity::Service(Service::Operations),
        Some(&seed(&data, Identity::Service(Service::Operations))),
    )
    .await
    .expect("the operations key connects");
    let head = concord_bus::logs::fetch_head(&forger, Service::Operations)
        .await
        .expect("head");
    let good = forged_participant(&op, "US", head.seq + 1, 2, &head.hash);
    let link = concord_core::chain::inspect(good.as_bytes()).expect("sealed");
    assert_eq!(link.computed, link.stored, "correctly hashed");
    forger
        .publish(
            subjects::event(Service::Operations, "participant.added"),
            good.clone().into(),
        )
        .await
        .expect("publish");
    let bad = good.replace("\"US\"", "\"IT\"");
    forger
        .publish(subjects::event(Service::Operations, "participant.added"), bad.into())
        .await
        .expect("publish");
    forger.flush().await.expect("flush");

    let (operator, _) = probe_as(&url, Identity::Operator, Some(&seed(&data, Identity::Operator)))
        .await
        .expect("operator");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = intel_health(&operator).await;
        if h["following"][0]["rejected_live"].as_u64() >= Some(2) {
            assert_eq!(h["ready"], true, "{h}");
            assert_eq!(h["following"][0]["source"], "operations");
            break;
        }
        assert!(Instant::now() < deadline, "both forgeries counted: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing applied: the US may still neither post nor read there.
    assert_eq!(us_post(&sys).await.status, before);
    problem(
        &sys.get(&format!("/v1/leads/{lead}"), "US_LIAISON").await,
        404,
        "not_found",
    );
    problem(
        &sys.get(&format!("/v1/operations/{op}"), "US_LIAISON").await,
        404,
        "not_found",
    );
    let ready = sys.call("GET", "/readyz", None, &[], None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());

    // The real log goes on at the seq the forgery claimed, and intel
    // follows it: IT, really added, posts.
    ok(
        &sys.post(
            &format!("/v1/operations/{op}/participants"),
            "FR_COORDINATOR",
            json!({"country": "IT"}),
        )
        .await,
        200,
    );
    ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "IT_LIAISON",
            json!({"summary": "real"}),
        )
        .await,
        201,
    );
    assert_eq!(us_post(&sys).await.status, before);
    let h = intel_health(&operator).await;
    assert_eq!(h["ready"], true, "{h}");
}

/// A service whose follower stopped (here: another operations log answers,
/// as a second instance on another data directory would) answers
/// `unavailable`; `/readyz` says it is not ready, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_names_a_service_that_stopped_following_and_why() {
    use concord_bus::logs::LogServer;
    use concord_log::Log;

    let nats = concord_testkit::NatsServer::start_secured().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let as_ = |id| nats.connect_as(id);
    let ops = as_(Identity::Service(Service::Operations)).await.expect("operations");
    let first = Log::open(dir.path().join("first"), Service::Operations).expect("log");
    let serving = tokio::spawn(
        LogServer::bind(ops.clone(), first)
            .await
            .expect("bind")
            .run(std::future::pending()),
    );
    let intel = concord_intel::bind(
        &concord_bus::service::Config::in_data_dir(dir.path(), Service::Intel),
        as_(Identity::Service(Service::Intel)).await.expect("intel"),
    )
    .await
    .expect("intel");
    tokio::spawn(intel.run(std::future::pending()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let addr = listener.local_addr().expect("addr").to_string();
    let config = concord_gateway::Config::new(vec![7; 32], vec![Service::Intel]);
    tokio::spawn(concord_gateway::serve(
        listener,
        as_(Identity::Gateway).await.expect("gateway"),
        config,
        std::future::pending(),
    ));
    let readyz = || concord_testkit::http::request(&addr, "GET", "/readyz", &[], None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz().await.expect("http").status != 200 {
        assert!(Instant::now() < deadline, "ready in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    serving.abort();
    let _ = serving.await;
    let second = Log::open(dir.path().join("second"), Service::Operations).expect("log");
    tokio::spawn(
        LogServer::bind(ops, second)
            .await
            .expect("bind")
            .run(std::future::pending()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = readyz().await.expect("http");
        if r.status == 503 {
            let why = r.json()["details"]["services"]["intel"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                why.starts_with("not ready: stopped following the operations log"),
                "{why}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "not ready in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The permissions are written once, in `concord_bus::permissions`: the
/// configuration for operators and the table in docs/security.md are its
/// output, checked here so they cannot drift.
#[test]
fn deploy_config_and_security_doc_are_generated_from_the_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let deployed =
        std::fs::read_to_string(root.join("deploy/nats").join(permissions::CONFIG_FILE)).expect("deploy/nats");
    assert_eq!(
        deployed,
        permissions::server_config(&[]),
        "deploy/nats/concord.conf: regenerate it with `concord nats-identities` and copy <data>/nats/concord.conf"
    );
    let doc = std::fs::read_to_string(root.join("docs/security.md")).expect("docs/security.md");
    assert!(
        doc.contains(&permissions::markdown_table()),
        "docs/security.md must hold the permission table as permissions::markdown_table() writes it:\n{}",
        permissions::markdown_table()
    );
}
