//! Black-box: `concord serve operations` stopped with SIGTERM in the middle
//! of a burst of commands. Every command answered `ok` is in the log; every
//! one answered with an error, or not answered at all, is not: the service
//! takes no new request once told to stop, and finishes (durably, with its
//! reply) every one it started.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use concord_core::reply::Reply;
use concord_core::subjects;
use concord_testkit::NatsServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_concord");
const BURST: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_a_burst_loses_no_acknowledged_command_and_keeps_no_unanswered_one() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let mut child = Command::new(BIN)
        .args(["serve", "operations", "--data"])
        .arg(dir.path())
        .env("NATS_URL", nats.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("concord serve");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    // Up when it answers its NATS service PING.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.request("$SRV.PING.operations", "".into()).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "concord serve operations did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel::<()>(BURST);
    // Set once the service has exited and every reply it sent has reached
    // this client: a request still waiting then was never answered.
    let (gone_tx, gone_rx) = tokio::sync::watch::channel(false);
    let sends: Vec<_> = (0..BURST)
        .map(|i| {
            let client = client.clone();
            let first = first_tx.clone();
            let mut gone = gone_rx.clone();
            tokio::spawn(async move {
                let id = format!("019ab0c4-5e00-7000-8000-{i:012x}");
                let env = json!({
                    "command_id": format!("burst-{i}"),
                    "actor": {"sub": "fr-coordinator", "role": "coordinator", "country": "FR"},
                    "issued_at": "2026-11-30T10:00:00Z",
                    "correlation_id": format!("req-{i}"),
                    "data": {"operation_id": id, "title": format!("burst {i}"), "objective": "o",
                             "lead_country": "FR", "countries": []},
                });
                let request = async_nats::Request::new()
                    .payload(serde_json::to_vec(&env).expect("json").into())
                    .timeout(None);
                let sent = client.send_request(subjects::command("operations", "open"), request);
                let answer = tokio::select! {
                    biased;
                    reply = sent => reply.ok().and_then(|m| Reply::parse(&m.payload).ok()),
                    _ = gone.wait_for(|g| *g) => None,
                };
                let _ = first.send(()).await;
                (format!("burst-{i}"), answer)
            })
        })
        .collect();
    // Stop it once the burst is under way.
    first_rx.recv().await.expect("a first answer");
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "concord serve exited with {status}");
    // NATS delivers in order: what the service sent before it exited is
    // here once this round trip is.
    client.flush().await.expect("flush");
    let _ = gone_tx.send(true);

    let mut acknowledged = BTreeSet::new();
    let mut not_acknowledged = BTreeSet::new();
    for s in sends {
        let (command_id, answer) = s.await.expect("send");
        match answer {
            Some(Reply::Ok(_)) => acknowledged.insert(command_id),
            _ => not_acknowledged.insert(command_id),
        };
    }
    let export = Command::new(BIN)
        .args(["log", "export"])
        .arg(dir.path().join("operations"))
        .output()
        .expect("concord log export");
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let logged: BTreeSet<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| {
            let e: Value = serde_json::from_str(l).expect("an exported line is JSON");
            e["command_id"].as_str().expect("command_id").to_owned()
        })
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&logged).collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let unanswered_but_kept: Vec<&String> = not_acknowledged.intersection(&logged).collect();
    assert!(
        unanswered_but_kept.is_empty(),
        "in the log though never acknowledged: {unanswered_but_kept:?}"
    );
    assert!(!acknowledged.is_empty(), "the burst was under way when it stopped");
}
