//! Black-box: a data directory written by the release before the typed
//! contracts (committed in tests/fixtures/v1, made by make_v1.py, in chain
//! format 1) is refused until `concord log migrate` rewrites it; then it
//! verifies with `concord log verify`, and `concord up` on it answers every
//! object exactly as that release did; an old stream takes a new command;
//! a command recorded then still answers its retry.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, free_addr, ok, token_as, token_for, up};
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/v1");
const SERVICES: [&str; 4] = ["operations", "intel", "crisis", "deployments"];

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A private copy of the fixture (opening a log may rewrite its files).
fn fixture_copy(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    copy_dir(Path::new(FIXTURE), &data);
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(data.join("jwt-secret"))
            .expect("secret")
            .permissions(),
        0o600,
    );
    data
}

/// `concord log migrate --data-dir DATA`, which must succeed.
fn migrate(data: &Path) -> String {
    let out = Command::new(BIN)
        .args(["log", "migrate", "--data-dir"])
        .arg(data)
        .output()
        .expect("concord log migrate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn every_log_of_the_old_release_is_refused_then_migrated_and_verifies() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = fixture_copy(dir.path());
    let out = Command::new(BIN)
        .args(["log", "verify"])
        .arg(data.join("operations"))
        .output()
        .expect("concord log verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is in chain format 1")
            && stderr.contains(&format!("concord log migrate --data-dir {}", data.display())),
        "{stderr}"
    );

    let text = migrate(&data);
    for (service, events) in SERVICES.into_iter().zip([7, 8, 5, 4]) {
        assert!(
            text.contains(&format!("migrated: {service} log, {events} events")),
            "{text}"
        );
    }
    assert!(
        migrate(&data).contains("operations log: already in the current chain format (7 events)"),
        "a second run changes nothing"
    );
    for (service, events) in SERVICES.into_iter().zip([7, 8, 5, 4]) {
        let out = Command::new(BIN)
            .args(["log", "verify"])
            .arg(data.join(service))
            .output()
            .expect("concord log verify");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{service}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&format!("ok: {service} log, {events} events verified")),
            "{service}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_release_s_data_answers_as_it_did() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = fixture_copy(dir.path());
    migrate(&data);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(FIXTURE).join("expected.json")).expect("expected"))
            .expect("expected.json");
    let mut sys = up(&data, &free_addr());
    for (name, role, country) in [
        ("FR", "coordinator", "FR"),
        ("FRL", "liaison", "FR"),
        ("MC", "liaison", "MC"),
        ("DE", "liaison", "DE"),
        ("ES", "liaison", "ES"),
    ] {
        sys.tokens.insert(name.into(), token_for(&data, role, country));
    }
    let id = |k: &str| {
        expected[k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} in expected.json"))
            .to_owned()
    };
    for (key, path, who) in [
        ("operation", format!("/v1/operations/{}", id("operation")), "FR"),
        ("lead", format!("/v1/leads/{}", id("lead")), "MC"),
        ("restricted_lead", format!("/v1/leads/{}", id("restricted_lead")), "FR"),
        ("notice", format!("/v1/notices/{}", id("notice")), "ES"),
        (
            "rejected_notice",
            format!("/v1/notices/{}", id("rejected_notice")),
            "DE",
        ),
        ("arrest", format!("/v1/arrests/{}", id("arrest")), "MC"),
        ("crisis", format!("/v1/crises/{}", id("crisis")), "FR"),
        ("deployment", format!("/v1/deployments/{}", id("deployment")), "FRL"),
    ] {
        let got = ok(&sys.get(&path, who).await, 200);
        assert_eq!(got, expected["views"][key], "{key}");
    }
    // The old release recorded no fingerprint with a command id, so a
    // retry cannot be checked against it: it answers the first result,
    // as it did then (here the `Idempotency-Key` the fixture opened with).
    sys.tokens
        .insert("FRC".into(), token_as(&data, "coordinator", "FR", "fr-coord"));
    let retried = ok(
        &sys.call(
            "POST",
            "/v1/operations",
            Some("FRC"),
            &[("Idempotency-Key", "fixture-open")],
            Some(json!({"title": "Opération Héron", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES", "MC"]})),
        )
        .await,
        201,
    );
    assert_eq!(retried["id"], id("operation"), "{retried}");
    assert_eq!(retried["version"], 1, "the first answer: {retried}");
    let operation = ok(
        &sys.get(&format!("/v1/operations/{}", id("operation")), "FR").await,
        200,
    );
    assert_eq!(operation, expected["views"]["operation"], "nothing appended");

    // An old stream goes on: the published notice is cancelled.
    let reply = ok(
        &sys.post(
            &format!("/v1/notices/{}/cancel", id("notice")),
            "MC",
            json!({"reason": "arrested"}),
        )
        .await,
        200,
    );
    assert_eq!(reply["version"], 3, "{reply}");
}
