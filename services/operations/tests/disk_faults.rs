//! The operations service on a disk that fails (the power-cut disk of
//! `concord-powercut`): while fsync answers `EIO` or the disk is full,
//! commands are answered `unavailable` and nothing is acknowledged; once
//! the disk works again, the service, supervised as `concord up` and
//! `concord serve` run it, has reopened its log from disk by itself and
//! takes commands again, every acknowledged command is in the log once,
//! and the retry of the command answered `unavailable` takes effect once.
//!
//! Without `/dev/fuse` these tests fail; they never skip.

use std::time::{Duration, Instant};

use concord_core::reply::Reply;
use concord_core::subjects;
use concord_log::Log;
use concord_powercut::{Disk, Faults};
use concord_testkit::NatsServer;
use serde_json::{Value, json};

async fn open_operation(client: &async_nats::Client, id: &str) -> Value {
    let env = json!({
        "command_id": format!("cmd-{id}"),
        "actor": {"sub": "fr-coord", "role": "coordinator", "country": "FR"},
        "issued_at": "2026-11-30T10:00:00Z",
        "correlation_id": "req",
        "data": {"operation_id": id, "title": "Op", "objective": "o", "lead_country": "FR", "countries": ["DE"]},
    });
    match client
        .request(
            subjects::command("operations", "open"),
            serde_json::to_vec(&env).expect("json").into(),
        )
        .await
    {
        Ok(msg) => Reply::parse(&msg.payload).expect("reply").to_json(),
        // While it reopens its log the service does not listen (the
        // gateway answers 503 then).
        Err(e) => json!({"error": {"code": format!("no reply: {e}")}}),
    }
}

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("ok")
}

fn id(n: u32) -> String {
    format!("019ab0c4-5e00-7000-8000-{n:012x}")
}

async fn a_failing_disk_then_a_healthy_one(faults: Faults) {
    let disk = Disk::mount().expect("the power-cut disk (needs /dev/fuse)");
    let nats = NatsServer::start().expect("nats-server");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let cfg = concord_bus::service::Config::new(disk.path().join("operations"));
    let svc_client = async_nats::connect(nats.url()).await.expect("connect");
    let bound = concord_operations::bind(&cfg, svc_client.clone()).await.expect("bind");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rebind_cfg = cfg.clone();
    let supervised = tokio::spawn(concord_bus::service::supervise(
        bound,
        move || {
            let (cfg, c) = (rebind_cfg.clone(), svc_client.clone());
            async move { concord_operations::bind(&cfg, c).await }
        },
        stop_rx,
    ));

    let mut acknowledged = Vec::new();
    for n in 0..5 {
        let r = open_operation(&client, &id(n)).await;
        assert_eq!(r["ok"], true, "{r}");
        acknowledged.push(id(n));
    }

    disk.set_faults(faults);
    let r = open_operation(&client, &id(100)).await;
    assert_eq!(code(&r), "unavailable", "{r}");

    disk.set_faults(Faults::default());
    // The service notices the poisoned log, stops, and reopens it from
    // disk with backoff; a generous deadline bounds only a hung test.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 200;
    loop {
        let r = match tokio::time::timeout(Duration::from_secs(5), open_operation(&client, &id(n))).await {
            Ok(r) => r,
            Err(_) => json!({"error": {"code": "timeout"}}),
        };
        if r["ok"] == true {
            acknowledged.push(id(n));
            break;
        }
        assert!(Instant::now() < deadline, "the service never took commands again: {r}");
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `unavailable` says nothing was acknowledged, not that nothing was
    // written (a full disk's buffered write may land once space is back):
    // the caller retries under the same command id and gets one effect.
    let r = open_operation(&client, &id(100)).await;
    assert_eq!(r["ok"], true, "the retry of the refused command: {r}");
    acknowledged.push(id(100));
    for m in 300..305 {
        let r = open_operation(&client, &id(m)).await;
        assert_eq!(r["ok"], true, "after the reopen: {r}");
        acknowledged.push(id(m));
    }

    stop_tx.send(true).expect("stop");
    supervised.await.expect("task").expect("stopped cleanly");
    let log = Log::open(disk.path().join("operations"), concord_core::Service::Operations).expect("reopen");
    let events = log.read_events(1, 10_000).expect("read");
    let opened: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "operation.opened")
        .map(|e| e.data["operation_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    for a in &acknowledged {
        assert!(opened.contains(a), "acknowledged {a} is not in the log: {opened:?}");
    }
    for a in &acknowledged {
        let times = opened.iter().filter(|o| *o == a).count();
        assert_eq!(times, 1, "{a} opened {times} times: {opened:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reopens_its_log_by_itself_after_fsync_failed() {
    a_failing_disk_then_a_healthy_one(Faults {
        fsync_eio: true,
        full: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reopens_its_log_by_itself_after_the_disk_was_full() {
    a_failing_disk_then_a_healthy_one(Faults {
        fsync_eio: false,
        full: true,
    })
    .await;
}
