//! Black-box: Concord on the NATS deployments of `deploy/nats/`, each
//! server started from the deploy file itself (only its addresses
//! replaced) with the identities `concord nats-identities` makes.
//!
//! - A three-node cluster (`cluster/node-*.conf`, routes authenticated):
//!   `concord up` on it, several clients posting operations, tasks and
//!   leads with an `Idempotency-Key`, and the node everything is connected
//!   to killed (-9) meanwhile. Every command ends with a 2xx answer, after
//!   retries with the same key where it failed; asked again, each answers
//!   the same; the logs hold exactly the acknowledged events.
//! - A national site (`leaf-site.conf`): DE's leaf node of a hub running
//!   Concord hears DE's feed, and nothing of FR's reaches it, whatever its
//!   own clients subscribe; DE's key straight on the hub may not subscribe
//!   FR's feed either.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use concord_bus::credentials::{self, Seed};
use concord_bus::nats_server::NatsServer;
use concord_bus::permissions::Identity;
use concord_core::{CountryCode, subjects};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

/// Generous bounds: a node's death costs a client the gateway's request
/// timeout (5 s) and a reconnection; nothing below is a timing assert.
const DEADLINE: Duration = Duration::from_secs(120);
const RETRY_PAUSE: Duration = Duration::from_millis(100);

fn deploy_file(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/nats")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` of the deploy file `file` with each `(from, to)` replaced, each
/// `from` being there exactly once (so the deploy file is what runs).
fn with_addresses(file: &str, text: &str, replace: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in replace {
        assert_eq!(out.matches(from).count(), 1, "{file} names {from} once");
        out = out.replace(from, to);
    }
    out
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
}

/// `concord nats-identities --data data` with national sites `sites`.
fn identities(data: &Path, sites: &[&str]) {
    let mut cmd = Command::new(BIN);
    cmd.args(["nats-identities", "--data"]).arg(data);
    for s in sites {
        cmd.args(["--site", s]);
    }
    let out = cmd.output().expect("concord nats-identities");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A monitoring endpoint's JSON (`/routez`, `/connz`, …).
async fn monitor(addr: &str, path: &str) -> Value {
    let r = concord_testkit::http::request(addr, "GET", path, &[], None)
        .await
        .unwrap_or_else(|e| panic!("{addr}{path}: {e}"));
    assert_eq!(r.status, 200, "{addr}{path}");
    r.json()
}

struct Node {
    name: String,
    server: NatsServer,
    monitor: String,
    /// Where leaf nodes connect.
    leaf: String,
}

/// The nodes `names` of `cluster/` (`a`, `b`, `c`), configured in
/// `<data>/nats` beside the generated `concord.conf` (the client port
/// given on the command line, which wins over the file's), each run in
/// `<run>/node-<name>`.
fn start_nodes(data: &Path, run: &Path, names: &[&str]) -> Vec<Node> {
    let nats = data.join("nats");
    let routes: Vec<String> = names.iter().map(|_| free_addr()).collect();
    let password = format!("{:032x}", rand::random::<u128>());
    let urls: Vec<String> = routes
        .iter()
        .map(|r| format!("  \"nats-route://concord-route:{password}@{r}\"\n"))
        .collect();
    // As deploy/nats/cluster/README.md makes it.
    write_private(
        &nats.join("routes.conf"),
        &format!(
            "authorization {{ user: concord-route, password: \"{password}\", timeout: 2 }}\nroutes = [\n{}]\n",
            urls.concat()
        ),
    );
    names
        .iter()
        .zip(&routes)
        .map(|(name, route)| {
            let file = format!("cluster/node-{name}.conf");
            let monitor = free_addr();
            let leaf = free_addr();
            let text = with_addresses(
                &file,
                &deploy_file(&file),
                &[
                    ("127.0.0.1:8222", &monitor),
                    ("0.0.0.0:6222", route),
                    ("0.0.0.0:7422", &leaf),
                ],
            );
            let config = nats.join(format!("node-{name}.conf"));
            std::fs::write(&config, text).expect("node config");
            let server = NatsServer::start_with_config(&run.join(format!("node-{name}")), &config)
                .unwrap_or_else(|e| panic!("node {name}: {e}"));
            Node {
                name: format!("concord-{name}"),
                server,
                monitor,
                leaf,
            }
        })
        .collect()
}

/// Waits until every node has a route to each of the others.
async fn routes_formed(nodes: &[Node]) {
    let mut ids = Vec::new();
    for n in nodes {
        ids.push(
            monitor(&n.monitor, "/varz").await["server_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let deadline = Instant::now() + DEADLINE;
    for (i, n) in nodes.iter().enumerate() {
        loop {
            let routez = monitor(&n.monitor, "/routez").await;
            let remote: BTreeSet<&str> = routez["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["remote_id"].as_str())
                .collect();
            let others: Vec<&String> = ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| id)
                .collect();
            if others.iter().all(|id| remote.contains(id.as_str())) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no route to every other node: {routez}",
                n.name
            );
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// The names of Concord's connections to `node`.
async fn concord_clients(node: &Node) -> Vec<String> {
    monitor(&node.monitor, "/connz").await["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .filter(|n| n.starts_with("concord-"))
        .map(str::to_owned)
        .collect()
}

/// One command of the story, sent until it gets `status`.
#[derive(Debug, Clone)]
struct Cmd {
    service: &'static str,
    path: String,
    who: &'static str,
    key: String,
    body: Value,
    status: u16,
}

#[derive(Debug, Clone)]
struct Answered {
    cmd: Cmd,
    answer: Value,
    /// The failed attempts before it (answered 5xx, or no answer).
    failed: Vec<String>,
}

/// Sends `cmd` with its `Idempotency-Key` until it gets its 2xx; a 5xx or
/// a broken exchange is retried with the same key, anything else fails
/// the test.
async fn send(addr: &str, tokens: &BTreeMap<&'static str, String>, cmd: &Cmd) -> Answered {
    let auth = format!("Bearer {}", tokens[cmd.who]);
    let body = serde_json::to_vec(&cmd.body).expect("json");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", cmd.key.as_str()),
    ];
    let deadline = Instant::now() + DEADLINE;
    let mut failed = Vec::new();
    loop {
        match concord_testkit::http::request(addr, "POST", &cmd.path, &headers, Some(&body)).await {
            Ok(r) if r.status == cmd.status => {
                return Answered {
                    cmd: cmd.clone(),
                    answer: r.json(),
                    failed,
                };
            }
            Ok(r) if r.status >= 500 => failed.push(format!("{} {}", r.status, r.json()["code"])),
            Ok(r) => panic!(
                "{} {}: {} {}",
                cmd.path,
                cmd.key,
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => failed.push(e.to_string()),
        }
        assert!(
            Instant::now() < deadline,
            "{} {} never answered {}: {failed:?}",
            cmd.path,
            cmd.key,
            cmd.status
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

fn task(op: &str, client: usize, i: usize) -> Cmd {
    Cmd {
        service: "operations",
        path: format!("/v1/operations/{op}/tasks"),
        who: "FR_COORDINATOR",
        key: format!("task-{client}-{i}"),
        body: json!({"assignee_country": "DE", "title": format!("task {i} of client {client}"), "details": "d"}),
        status: 201,
    }
}

/// Clients, and the tasks each assigns before and after the node dies.
const CLIENTS: usize = 4;
const TASKS_BEFORE: usize = 8;
const TASKS_AFTER: usize = 2;
/// Acknowledged commands after which the node is killed (of the
/// `CLIENTS * (1 + TASKS_BEFORE)` sent before it).
const KILL_AFTER: usize = 12;

/// One client: an operation of FR's with DE, tasks for DE; once the node
/// is dead (`killed`), more tasks and a lead of DE's (intel, which must
/// reach the operations log's head to decide).
async fn client(
    k: usize,
    addr: String,
    tokens: BTreeMap<&'static str, String>,
    progress: Arc<AtomicUsize>,
    mut killed: tokio::sync::watch::Receiver<bool>,
) -> Vec<Answered> {
    let mut done = Vec::new();
    let open = Cmd {
        service: "operations",
        path: "/v1/operations".into(),
        who: "FR_COORDINATOR",
        key: format!("op-{k}"),
        body: json!({"title": format!("Op {k}"), "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        status: 201,
    };
    let opened = send(&addr, &tokens, &open).await;
    let op = id(&opened.answer);
    done.push(opened);
    progress.fetch_add(1, Ordering::SeqCst);
    for i in 0..TASKS_BEFORE {
        done.push(send(&addr, &tokens, &task(&op, k, i)).await);
        progress.fetch_add(1, Ordering::SeqCst);
    }
    killed.wait_for(|k| *k).await.expect("the killer");
    for i in TASKS_BEFORE..TASKS_BEFORE + TASKS_AFTER {
        done.push(send(&addr, &tokens, &task(&op, k, i)).await);
    }
    let lead = Cmd {
        service: "intel",
        path: format!("/v1/operations/{op}/leads"),
        who: "DE_LIAISON",
        key: format!("lead-{k}"),
        body: json!({"summary": format!("a boat, seen by client {k}")}),
        status: 201,
    };
    done.push(send(&addr, &tokens, &lead).await);
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_and_duplicates_no_acknowledged_event() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    identities(&data, &[]);
    let mut nodes = start_nodes(&data, dir.path(), &["a", "b", "c"]);
    routes_formed(&nodes).await;

    // Every node's URL, comma-separated, as deploy/ gives them.
    let urls: Vec<String> = nodes.iter().map(|n| n.server.url()).collect();
    let sys = up_on(&data, &free_addr(), &urls.join(","));
    let tokens: BTreeMap<&'static str, String> = ["FR_COORDINATOR", "DE_LIAISON"]
        .into_iter()
        .map(|w| (w, sys.token(w).to_owned()))
        .collect();

    let progress = Arc::new(AtomicUsize::new(0));
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            tokio::spawn(client(
                k,
                sys.addr.clone(),
                tokens.clone(),
                progress.clone(),
                kill_rx.clone(),
            ))
        })
        .collect();

    // Under load: the node with Concord's connections dies.
    let deadline = Instant::now() + DEADLINE;
    while progress.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The clients spread over the nodes (each shuffles the URLs): the one
    // the gateway is on dies, and with it whichever services share it.
    let mut victim = None;
    for (i, n) in nodes.iter().enumerate() {
        let names = concord_clients(n).await;
        if names.iter().any(|n| n == "concord-gateway") {
            victim = Some((i, names));
        }
    }
    let (victim, names) = victim.expect("the gateway is connected to a node");
    eprintln!("killing {} with {names:?}", nodes[victim].name);
    nodes[victim].server.stop();
    let acknowledged_at_kill = progress.load(Ordering::SeqCst);
    kill_tx.send(true).expect("clients wait");

    let mut answered = Vec::new();
    for c in clients {
        answered.extend(c.await.expect("a client"));
    }
    let retried: Vec<&Answered> = answered.iter().filter(|a| !a.failed.is_empty()).collect();
    eprintln!(
        "killed {} after {acknowledged_at_kill} acknowledged; {} of {} commands retried: {:?}",
        nodes[victim].name,
        retried.len(),
        answered.len(),
        retried.iter().map(|a| (&a.cmd.key, &a.failed)).collect::<Vec<_>>()
    );

    // Everything moved to the nodes left.
    let mut moved = Vec::new();
    for n in nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n) {
        moved.extend(concord_clients(n).await);
    }
    for name in names {
        assert!(moved.contains(&name), "{name} reconnected to another node: {moved:?}");
    }

    // Asked again, each command answers what it answered: the same id,
    // version and events, nothing appended.
    let mut acknowledged = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for a in &answered {
        let again = send(&sys.addr, &tokens, &a.cmd).await;
        assert_eq!(again.answer, a.answer, "{}: asked again", a.cmd.key);
        assert!(ids.insert(id(&a.answer)), "{}: an id answered twice", a.cmd.key);
        acknowledge(a.cmd.service, &a.answer, &mut acknowledged);
    }
    assert_eq!(answered.len(), CLIENTS * (1 + TASKS_BEFORE + TASKS_AFTER + 1));
    let ops: Vec<String> = answered
        .iter()
        .filter(|a| a.cmd.path == "/v1/operations")
        .map(|a| id(&a.answer))
        .collect();
    for op in &ops {
        let view = ok(&sys.get(&format!("/v1/operations/{op}"), "FR_COORDINATOR").await, 200);
        let tasks = view["tasks"]
            .as_array()
            .map(Vec::len)
            .or_else(|| view["tasks"].as_object().map(serde_json::Map::len));
        assert_eq!(tasks, Some(TASKS_BEFORE + TASKS_AFTER), "{view}");
    }
    drop(sys);
    assert_only_acknowledged(&data, acknowledged);
}

/// A connection as `identity` that records every error the server reports.
async fn connect(url: &str, identity: Identity, seed: Option<&Seed>) -> (async_nats::Client, Reported) {
    connect_recording(url, identity, seed, format!("test-{identity}"))
        .await
        .unwrap_or_else(|e| panic!("{identity} connects to {url}: {e}"))
}

/// Every message `sub` holds now.
fn drain(sub: &mut async_nats::Subscriber) -> Vec<async_nats::Message> {
    let mut out = Vec::new();
    while let Some(Some(m)) = sub.next().now_or_never() {
        out.push(m);
    }
    out
}

/// Whether `text` names any of `secrets` (what DE may not see).
fn names_any(text: &str, secrets: &[String]) -> bool {
    secrets.iter().any(|s| text.contains(s.as_str()))
}

/// The leaf node of `leaf-site.conf` in `dir`, connected to `hub` with
/// the seed of `seed_file` (`site-seed.conf`, as the file says to make it).
fn start_leaf(dir: &Path, hub: &Node, seed_file: &Path) -> (NatsServer, String) {
    std::fs::create_dir_all(dir).expect("site dir");
    let seed = std::fs::read_to_string(seed_file).expect("seed");
    write_private(
        &dir.join("site-seed.conf"),
        &format!("CONCORD_SITE_SEED: \"{}\"\n", seed.trim()),
    );
    let monitor = free_addr();
    let text = with_addresses(
        "leaf-site.conf",
        &deploy_file("leaf-site.conf"),
        &[
            (
                "\"nats-leaf://nats-a.example.org:7422\"",
                &format!("\"nats-leaf://{}\"", hub.leaf),
            ),
            ("\"nats-leaf://nats-b.example.org:7422\"", ""),
            ("\"nats-leaf://nats-c.example.org:7422\"", ""),
            ("127.0.0.1:8222", &monitor),
        ],
    );
    let config = dir.join("leaf-site.conf");
    std::fs::write(&config, text).expect("leaf config");
    let server = NatsServer::start_with_config(&dir.join("run"), &config).expect("the site's leaf node");
    (server, monitor)
}

/// The hub's view of its leaf connections.
async fn leafs(hub: &Node) -> Vec<Value> {
    monitor(&hub.monitor, "/leafz?subs=1").await["leafs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_sites_leaf_node_hears_its_countrys_feed_and_nothing_of_another() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    identities(&data, &["DE", "FR"]);
    let seeds = data.join("nats").join(credentials::SEEDS_DIR);
    // The hub: one node of the cluster's files (its route to itself is
    // skipped), with Concord on it.
    let nodes = start_nodes(&data, dir.path(), &["a"]);
    let hub = &nodes[0];
    let (_leaf, _) = start_leaf(&dir.path().join("site-de"), hub, &seeds.join("site-de.nk"));
    let deadline = Instant::now() + DEADLINE;
    while leafs(hub).await.len() != 1 {
        assert!(Instant::now() < deadline, "DE's leaf node never connected");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    let leaf_url = _leaf.url();
    let mut sys = up_on(&data, &free_addr(), &hub.server.url());
    sys.tokens
        .insert("FR_LIAISON".into(), token_for(&data, "liaison", "FR"));

    // A service's key does not make a leaf node: the hub refuses it.
    let rogue_dir = dir.path().join("rogue");
    let (rogue, _) = start_leaf(&rogue_dir, hub, &seeds.join("gateway.nk"));
    let deadline = Instant::now() + DEADLINE;
    loop {
        let log = std::fs::read_to_string(rogue.dir().join("nats.log")).unwrap_or_default();
        if log.contains("Authorization Violation") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a leaf with the gateway's key was not refused:\n{log}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    drop(rogue);
    assert_eq!(leafs(hub).await.len(), 1, "only DE's site is a leaf");

    // The site's own clients subscribe what they like on the leaf node.
    let de: CountryCode = "DE".parse().expect("DE");
    let (local, _) = connect(&leaf_url, Identity::Site(de), None).await;
    let mut de_feed = local.subscribe("concord.feed.DE.>").await.expect("subscribe");
    let mut fr_feed = local.subscribe("concord.feed.FR.>").await.expect("subscribe");
    let mut all_concord = local.subscribe("concord.>").await.expect("subscribe");
    let mut everything = local.subscribe(">").await.expect("subscribe");
    local.flush().await.expect("flush");
    // Their interest has reached the hub (what it may send the leaf, it
    // then sends).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let subs: Vec<String> = leafs(hub).await[0]["subscriptions_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        if ["concord.feed.DE.>", "concord.>", ">"]
            .iter()
            .all(|s| subs.iter().any(|x| x == s))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leaf's interest never reached the hub: {subs:?}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    // FR's site, straight on the hub: FR's feed is published.
    let fr: CountryCode = "FR".parse().expect("FR");
    let fr_seed = Seed::read_file(&seeds.join("site-fr.nk")).expect("FR's seed");
    let (fr_site, _) = connect(&hub.server.url(), Identity::Site(fr), Some(&fr_seed)).await;
    let mut fr_heard = fr_site
        .subscribe(subjects::feed_of(Some("FR"), concord_core::Service::Intel))
        .await
        .expect("subscribe");
    fr_site.flush().await.expect("flush");

    // FR leads Rhein with DE and Tevere with IT; a lead in Rhein for FR
    // alone; then a task for DE in Rhein.
    let open =
        |title: &str, with: &str| json!({"title": title, "objective": "o", "lead_country": "FR", "countries": [with]});
    let rhein = id(&ok(
        &sys.post("/v1/operations", "FR_COORDINATOR", open("Op Rhein", "DE"))
            .await,
        201,
    ));
    let tevere = id(&ok(
        &sys.post("/v1/operations", "FR_COORDINATOR", open("Op Tevere", "IT"))
            .await,
        201,
    ));
    let lead = id(&ok(
        &sys.post(
            &format!("/v1/operations/{rhein}/leads"),
            "FR_LIAISON",
            json!({"summary": "only for France", "restricted_to": []}),
        )
        .await,
        201,
    ));
    let task = id(&ok(
        &sys.post(
            &format!("/v1/operations/{rhein}/tasks"),
            "FR_COORDINATOR",
            json!({"assignee_country": "DE", "title": "for Germany", "details": "d"}),
        )
        .await,
        201,
    ));
    let secrets = vec![tevere.clone(), lead.clone()];

    let heard_by_fr = tokio::time::timeout(DEADLINE, fr_heard.next())
        .await
        .expect("FR's feed carries the lead")
        .expect("a message");
    assert!(
        String::from_utf8_lossy(&heard_by_fr.payload).contains(&lead),
        "FR's feed: {}",
        heard_by_fr.subject
    );

    // The leaf hears DE's feed up to DE's task.
    let until = Instant::now() + DEADLINE;
    let mut heard = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, de_feed.next())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("DE's leaf heard no task.assigned of {task}; heard {heard:?}"));
        assert!(m.subject.starts_with("concord.feed.DE."), "{}", m.subject);
        let text = String::from_utf8_lossy(&m.payload).into_owned();
        assert!(
            !names_any(&text, &secrets),
            "DE's leaf heard what DE may not see: {text}"
        );
        heard.push(m.subject.to_string());
        if text.contains(&task) && m.subject.as_str() == "concord.feed.DE.operations.task.assigned" {
            break;
        }
    }
    // The hub sends the leaf its messages in order, and the local client
    // reads them in order: whatever came before DE's task, on any
    // subscription, is here now.
    local.flush().await.expect("flush");
    let foreign = drain(&mut fr_feed);
    assert!(
        foreign.is_empty(),
        "FR's feed reached DE's leaf: {:?}",
        foreign.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    for (what, sub) in [("concord.>", &mut all_concord), (">", &mut everything)] {
        let got = drain(sub);
        assert!(
            got.iter()
                .any(|m| m.subject.as_str() == "concord.feed.DE.operations.task.assigned"),
            "{what} on the leaf hears DE's feed too"
        );
        for m in got {
            assert!(
                m.subject.starts_with("concord.feed.DE."),
                "{what} on the leaf: {}",
                m.subject
            );
            let text = String::from_utf8_lossy(&m.payload);
            assert!(!names_any(&text, &secrets), "{what} on the leaf: {text}");
        }
    }

    // Through the leaf, the site's clients read what they missed (replies
    // come back on the site's own inbox prefix).
    let read = local
        .request(
            subjects::feed_read(Some("DE")),
            json!({"after": 0, "max": 500}).to_string().into(),
        )
        .await
        .expect("a gap read through the leaf");
    let text = String::from_utf8_lossy(&read.payload);
    let read: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(read["ok"], true, "{read}");
    assert!(text.contains(&task), "{text}");
    assert!(!names_any(&text, &secrets), "{text}");

    // DE's key straight on the hub may not subscribe FR's feed.
    let de_seed = Seed::read_file(&seeds.join("site-de.nk")).expect("DE's seed");
    let (direct, refused) = connect(&hub.server.url(), Identity::Site(de), Some(&de_seed)).await;
    let fr_intel = subjects::feed_of(Some("FR"), concord_core::Service::Intel);
    let _sub = direct.subscribe(fr_intel.clone()).await.expect("subscribe");
    direct.flush().await.expect("flush");
    let wanted = format!("Permissions Violation for Subscription to \"{fr_intel}\"");
    let deadline = Instant::now() + DEADLINE;
    while !refused.lock().expect("lock").iter().any(|e| e.contains(&wanted)) {
        assert!(
            Instant::now() < deadline,
            "no refusal of {fr_intel}: {:?}",
            refused.lock().expect("lock")
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
