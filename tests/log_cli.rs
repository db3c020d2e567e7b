//! `concord log verify|export` on a real log on disk, and the export checked
//! by the independent Python verifier of schemas/verify_export.py.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use serde_json::json;

fn concord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .output()
        .expect("run concord")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write_log(dir: &Path, n: usize) {
    let log = Log::open(dir, Service::Operations).expect("open");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        for i in 0..n {
            let stream = format!("operation-{}", i % 2);
            let actor = Actor {
                sub: "fr-coord".into(),
                role: Role::Coordinator,
                country: CountryCode::parse("FR").expect("FR"),
            };
            log.append(AppendRequest {
                fingerprint: Fingerprint::new("open", &stream, &json!({ "i": i }), &actor).expect("canonical"),
                stream,
                expected: ExpectedVersion::Any,
                command_id: format!("c{i}"),
                actor,
                correlation_id: format!("r{i}"),
                causation_id: None,
                observed_hlc: None,
                events: vec![NewEvent {
                    event_type: "operation.opened".into(),
                    schema_version: 1,
                    data: json!({"title": format!("Opération n°{i} \"quoted\"\ttab"), "n": i}),
                }],
            })
            .await
            .expect("append");
        }
    });
}

#[test]
fn verify_export_and_an_independent_verifier_agree() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("operations");
    write_log(&dir, 12);
    let dir_s = dir.to_str().expect("utf-8 path");

    let out = concord(&["log", "verify", dir_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("ok: operations log, 12 events verified, head seq 12"),
        "{stdout}"
    );

    let out = concord(&["log", "export", dir_s]);
    assert!(out.status.success());
    let export = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = export.lines().collect();
    assert_eq!(lines.len(), 12);
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json line");
        assert_eq!(v["seq"], json!(i + 1));
    }
    let from = concord(&["log", "export", dir_s, "--from", "11"]);
    assert_eq!(String::from_utf8_lossy(&from.stdout).lines().count(), 2);

    let file = tmp.path().join("export.jsonl");
    std::fs::write(&file, &export).expect("write export");
    let py = Command::new("python3")
        .arg(repo().join("schemas/verify_export.py"))
        .arg(&file)
        .output()
        .expect("python3 is needed to run the independent verifier");
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stdout));
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "ok 12 events");

    // The independent verifier catches an edit too.
    let tampered = export.replacen("n°3", "n°4", 1);
    std::fs::write(&file, tampered).expect("write");
    let py = Command::new("python3")
        .arg(repo().join("schemas/verify_export.py"))
        .arg(&file)
        .output()
        .expect("py");
    assert_eq!(py.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&py.stdout).starts_with("BROKEN at seq 4"));
}

#[test]
fn verify_exits_1_and_names_the_first_bad_seq_of_a_tampered_log() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("operations");
    write_log(&dir, 6);
    {
        let db = fjall::Database::builder(&dir).open().expect("raw");
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        events.remove(5u64.to_be_bytes()).expect("delete");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let out = concord(&["log", "verify", dir.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("BROKEN: operations log, first bad seq 5"),
        "{stdout}"
    );
}

#[test]
fn tools_refuse_what_is_not_a_log() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let out = concord(&["log", "verify", tmp.path().to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no log here"));
    let out = concord(&["log", "export", "/nonexistent/concord"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open log at /nonexistent/concord"));
}
