//! Commands to one stream are decided one at a time: many clients working
//! on ONE operation at once get no `conflict` (they named no version),
//! every command lands once, versions are gapless, and a query issued
//! after an acknowledgement never shows an older version (read your
//! writes; the state cache never moves backwards).

use std::collections::BTreeSet;
use std::sync::Arc;

use concord_bus::service::Config;
use concord_core::reply::Reply;
use concord_core::subjects;
use concord_operations::bind;
use concord_testkit::NatsServer;
use serde_json::{Value, json};

const CLIENTS: usize = 32;
const TASKS_PER_CLIENT: usize = 30;
const UPDATES_PER_CLIENT: usize = 20;
/// Each client reads the operation after every `READ_EVERY`-th acknowledged
/// command.
const READ_EVERY: usize = 5;
const OP: &str = "019ab0c4-5e00-7000-8000-0000000000aa";

async fn request(client: &async_nats::Client, subject: String, body: Value) -> Value {
    let msg = client
        .request(subject, serde_json::to_vec(&body).expect("json").into())
        .await
        .expect("reply");
    Reply::parse(&msg.payload).expect("reply").to_json()
}

fn envelope(command_id: String, role: &str, country: &str, data: Value) -> Value {
    json!({
        "command_id": command_id,
        "actor": {"sub": format!("{country}-{role}"), "role": role, "country": country},
        "issued_at": "2026-11-23T10:00:00Z",
        "correlation_id": "req",
        "data": data,
    })
}

fn task_id(client: usize, n: usize) -> String {
    format!("019ab0c4-5e00-7000-8000-{:06x}{:06x}", client, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_on_one_operation_get_no_conflict_and_read_their_writes() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let svc_client = async_nats::connect(nats.url()).await.expect("connect");
    let svc = bind(&Config::new(dir.path().join("operations")), svc_client)
        .await
        .expect("bind");
    tokio::spawn(svc.run(std::future::pending()));
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let r = request(
        &client,
        subjects::command("operations", "open"),
        envelope(
            "open".into(),
            "coordinator",
            "FR",
            json!({"operation_id": OP, "title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        ),
    )
    .await;
    assert_eq!(r["version"], json!(1), "{r}");

    let client = Arc::new(client);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = Arc::clone(&client);
            tokio::spawn(async move {
                let mut versions = Vec::new();
                let mut stale = Vec::new();
                let mut refused = Vec::new();
                let commands = (0..TASKS_PER_CLIENT)
                    .map(|n| {
                        (
                            "assign_task",
                            "coordinator",
                            "FR",
                            json!({"operation_id": OP, "task_id": task_id(c, n), "assignee_country": "DE", "title": format!("task {c}/{n}"), "details": ""}),
                        )
                    })
                    .chain((0..UPDATES_PER_CLIENT).map(|n| {
                        (
                            "update_task_status",
                            "liaison",
                            "DE",
                            json!({"operation_id": OP, "task_id": task_id(c, n), "status": "accepted"}),
                        )
                    }));
                for (i, (name, role, country, data)) in commands.enumerate() {
                    let r = request(
                        &client,
                        subjects::command("operations", name),
                        envelope(format!("c{c}-{i}"), role, country, data),
                    )
                    .await;
                    let acked = match r["version"].as_u64() {
                        Some(v) if r["ok"] == json!(true) => v,
                        _ => {
                            refused.push(r);
                            continue;
                        }
                    };
                    versions.push(acked);
                    // A read after every few acknowledgements: each one
                    // ships the whole operation (up to ~1,000 tasks).
                    if i % READ_EVERY != 0 {
                        continue;
                    }
                    let got = request(
                        &client,
                        subjects::query("operations", "get"),
                        json!({"operation_id": OP, "country": "FR"}),
                    )
                    .await;
                    let seen = got["operation"]["version"].as_u64().unwrap_or(0);
                    if seen < acked {
                        stale.push((acked, seen));
                    }
                }
                (versions, stale, refused)
            })
        })
        .collect();
    let mut all = BTreeSet::new();
    for w in workers {
        let (versions, stale, refused) = w.await.expect("worker");
        assert!(refused.is_empty(), "refused (no version was named): {refused:#?}");
        assert!(
            stale.is_empty(),
            "a get after an acknowledgement showed an older version: {stale:?}"
        );
        for v in versions {
            assert!(all.insert(v), "version {v} acknowledged twice");
        }
    }
    let total = CLIENTS * (TASKS_PER_CLIENT + UPDATES_PER_CLIENT);
    let expected: BTreeSet<u64> = (2..=1 + total as u64).collect();
    assert_eq!(all, expected, "every command landed once, versions gapless");
}
