//! Black-box: `concord log backup` of a running service while commands keep
//! being appended, then the log directory wiped, `concord log restore`,
//! and the service started again on the restored log: every event of the
//! backup is there byte for byte, with the backup's head hash, the log's
//! identity is the original's and its high-water mark is the backup's head.
//! Also a backup of a stopped service's log (read from disk), and a
//! tampered backup refused by restore.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use concord_core::reply::Reply;
use concord_core::{Service, subjects};
use concord_testkit::NatsServer;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_concord");

fn concord(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run concord")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

async fn serve(data: &Path, nats: &NatsServer, client: &async_nats::Client) -> Child {
    let child = Command::new(BIN)
        .args(["serve", "operations", "--data", s(data)])
        .env("NATS_URL", nats.url())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("concord serve");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Up when its log answers (its command endpoint may answer first).
    while concord_bus::logs::fetch_head(client, Service::Operations)
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "concord serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

async fn stop(mut child: Child) {
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
}

async fn open_operation(client: &async_nats::Client, i: usize) -> bool {
    let env = json!({
        "command_id": format!("load-{i}"),
        "actor": {"sub": "fr-coordinator", "role": "coordinator", "country": "FR"},
        "issued_at": "2026-11-30T10:00:00Z",
        "correlation_id": format!("req-{i}"),
        "data": {"operation_id": format!("019ab0c4-5e00-7000-8000-{i:012x}"), "title": format!("load {i}"),
                 "objective": "o", "lead_country": "FR", "countries": []},
    });
    let reply = client
        .request(
            subjects::command("operations", "open"),
            serde_json::to_vec(&env).expect("json").into(),
        )
        .await;
    matches!(reply.ok().map(|m| Reply::parse(&m.payload)), Some(Ok(Reply::Ok(_))))
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_event_with_its_head_and_identity() {
    let nats = NatsServer::start().expect("nats-server");
    let tmp = tempfile::TempDir::new().expect("tmp");
    let data = tmp.path().join("data");
    let log_dir = data.join("operations");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let service = serve(&data, &nats, &client).await;
    let original = concord_bus::logs::fetch_head(&client, Service::Operations)
        .await
        .expect("head");

    // Load: four tasks appending until told to stop.
    let stop_load = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (client, stop_load, acked) = (client.clone(), stop_load.clone(), acked.clone());
            tokio::spawn(async move {
                let mut i = t;
                while !stop_load.load(Ordering::Relaxed) {
                    if open_operation(&client, i).await {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 4;
                }
            })
        })
        .collect();
    while acked.load(Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let backup_dir = tmp.path().join("backup");
    let out = {
        let args = [
            "log".to_owned(),
            "backup".to_owned(),
            s(&log_dir).to_owned(),
            "--out".to_owned(),
            s(&backup_dir).to_owned(),
            "--nats".to_owned(),
            nats.url(),
        ];
        tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().expect("backup"))
            .await
            .expect("join")
    };
    let acked_during = acked.load(Ordering::Relaxed);
    // Let the load run on past the backup, then stop it.
    while acked.load(Ordering::Relaxed) < acked_during + 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_load.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("read from nats"),
        "a running service is read over NATS: {stdout}"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(backup_dir.join("backup.json")).expect("manifest"))
            .expect("json");
    let backed_up = lines(&backup_dir.join("events.jsonl"));
    let head_seq = manifest["head"]["seq"].as_u64().expect("seq");
    let head_hash = manifest["head"]["hash"].as_str().expect("hash").to_owned();
    assert_eq!(backed_up.len() as u64, head_seq);
    assert!(head_seq >= 100, "the backup holds what was acknowledged before it");
    let before_wipe = concord_bus::logs::fetch_head(&client, Service::Operations)
        .await
        .expect("head");
    assert!(
        before_wipe.seq > head_seq,
        "appends went on during and after the backup"
    );
    stop(service).await;

    // Wipe, restore, start.
    std::fs::remove_dir_all(&log_dir).expect("wipe");
    let out = concord(&["log", "restore", "--from", s(&backup_dir), s(&log_dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let service = serve(&data, &nats, &client).await;
    let head = concord_bus::logs::fetch_head(&client, Service::Operations)
        .await
        .expect("head");
    assert_eq!((head.seq, head.hash.as_str()), (head_seq, head_hash.as_str()));
    assert_eq!(head.identity, original.identity, "the restored log keeps its identity");
    let mut restored = Vec::new();
    while (restored.len() as u64) < head_seq {
        let read = concord_bus::logs::fetch_log(&client, Service::Operations, restored.len() as u64 + 1, 1000)
            .await
            .expect("read");
        assert!(!read.raw.is_empty());
        restored.extend(read.raw);
    }
    assert_eq!(restored, backed_up, "every event of the backup, byte for byte");
    // It takes new commands after the backup's head.
    assert!(open_operation(&client, 1_000_000).await);
    stop(service).await;
    let out = concord(&["log", "verify", s(&log_dir)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{} events verified", head_seq + 1)),
        "{stdout}"
    );
}

fn append(i: usize) -> concord_log::AppendRequest {
    let stream = format!("operation-{}", i % 3);
    let actor = concord_core::Actor {
        sub: "fr".into(),
        role: concord_core::Role::Coordinator,
        country: concord_core::CountryCode::parse("FR").expect("FR"),
    };
    concord_log::AppendRequest {
        fingerprint: concord_log::Fingerprint::new("open", &stream, &json!({"i": i}), &actor).expect("canonical"),
        stream,
        expected: concord_core::ExpectedVersion::Any,
        command_id: format!("c{i}"),
        actor,
        correlation_id: format!("r{i}"),
        causation_id: None,
        observed_hlc: None,
        events: (0..1 + i % 3)
            .map(|k| concord_log::NewEvent {
                event_type: "operation.opened".into(),
                schema_version: 1,
                data: json!({"i": i, "k": k}),
            })
            .collect(),
    }
}

/// A stopped service's log is read from disk; a restore refuses a target
/// that holds something, and a backup whose events were edited.
#[test]
fn a_stopped_log_is_backed_up_from_disk_and_a_tampered_backup_is_refused() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let log_dir = tmp.path().join("operations");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let identity = {
        let log = concord_log::Log::open(&log_dir, Service::Operations).expect("open");
        rt.block_on(async {
            for i in 0..20 {
                log.append(append(i)).await.expect("append");
            }
        });
        log.identity()
    };
    let backup_dir = tmp.path().join("backup");
    let out = concord(&["log", "backup", s(&log_dir), "--out", s(&backup_dir)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("read from disk") && stdout.contains(&identity.to_string()),
        "{stdout}"
    );
    let export = concord(&["log", "export", s(&log_dir)]);
    assert_eq!(
        String::from_utf8_lossy(&export.stdout),
        std::fs::read_to_string(backup_dir.join("events.jsonl")).expect("events"),
        "the backup's events are the export"
    );

    let out = concord(&["log", "restore", "--from", s(&backup_dir), s(&log_dir)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists and is not empty"));

    let restored = tmp.path().join("restored/operations");
    let out = concord(&["log", "restore", "--from", s(&backup_dir), s(&restored)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = concord(&["log", "export", s(&restored)]);
    assert_eq!(again.stdout, export.stdout);
    let log = concord_log::Log::open(&restored, Service::Operations).expect("opens");
    assert_eq!(log.identity(), identity);
    // The command records were rebuilt: a retry answers the first result
    // and appends nothing.
    let head = log.head();
    let retry = rt.block_on(log.append(append(5))).expect("retry");
    assert!(retry.duplicate);
    assert_eq!(retry.events.len(), 3, "c5 wrote 3 events");
    assert_eq!(log.head(), head);
    drop(log);

    let tampered = tmp.path().join("tampered");
    std::fs::create_dir_all(&tampered).expect("mkdir");
    std::fs::copy(backup_dir.join("backup.json"), tampered.join("backup.json")).expect("copy");
    let events = std::fs::read_to_string(backup_dir.join("events.jsonl")).expect("events");
    std::fs::write(tampered.join("events.jsonl"), events.replacen("\"k\":0", "\"k\":7", 1)).expect("write");
    let target = tmp.path().join("from-tampered/operations");
    let out = concord(&["log", "restore", "--from", s(&tampered), s(&target)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chain breaks at seq 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!target.exists(), "a failed restore leaves no log behind");
}
