//! Black-box: schema-driven fuzzing of every route of `/openapi.json` by a
//! standard tool (PyPI `schemathesis`, pinned in requirements-test.txt;
//! its settings in tests/fuzz/schemathesis.toml) against `concord up`, as
//! a liaison, a coordinator and a reviewer: fixed seed, one worker.
//!
//! It passes when schemathesis finds nothing (no 5xx; every answer is a
//! problem+json or the body the document describes; a schema-valid request
//! is not refused as malformed, a schema-violating one not accepted) and
//! when nothing was written for a request answered 4xx: every event in every
//! log afterwards is one a 2xx answer reported (`events[].seq`), or a
//! stand-down the deployments service sent itself.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{acknowledge, assert_only_acknowledged, free_addr, service_of, up};
use serde_json::Value;

/// Roles the fuzzer acts as (demo tokens of `concord up`).
const AS: [&str; 3] = ["DE_LIAISON", "FR_COORDINATOR", "GS_REVIEWER"];
/// Generated cases per operation and phase, per role.
const EXAMPLES_PER_OPERATION: &str = "10";
/// The floor for one run.
const REQUESTS_MIN: usize = 2000;
const SEED: &str = "20261130";

fn schemathesis() -> std::path::PathBuf {
    let python = concord_testkit::test_python();
    python.with_file_name("schemathesis")
}

/// `(service, seq)` of every event a 2xx answer of the HAR `file` reported.
/// And the first few 5xx answers, `method url → body`, to say which.
fn reported(doc: &Value, file: &Path, out: &mut BTreeSet<(String, u64)>) -> (usize, BTreeMap<u16, usize>, Vec<String>) {
    let har: Value = serde_json::from_slice(&std::fs::read(file).expect("the HAR report")).expect("HAR is JSON");
    let entries = har["log"]["entries"].as_array().expect("HAR entries");
    let mut statuses = BTreeMap::new();
    let mut server_errors = Vec::new();
    for e in entries {
        let status = u16::try_from(e["response"]["status"].as_u64().expect("status")).expect("u16");
        *statuses.entry(status).or_insert(0) += 1;
        if status >= 500 && server_errors.len() < 5 {
            server_errors.push(format!(
                "{} {} → {}",
                e["request"]["method"].as_str().unwrap_or(""),
                e["request"]["url"].as_str().unwrap_or(""),
                e["response"]["content"]["text"].as_str().unwrap_or("")
            ));
        }
        if !(200..300).contains(&status) {
            continue;
        }
        let url = e["request"]["url"].as_str().expect("url");
        let path = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = path.find('/').map_or("/", |i| &path[i..]);
        let path = path.split('?').next().unwrap_or(path);
        let method = e["request"]["method"].as_str().expect("method");
        // Reads (a feed lists events too) append nothing.
        if method == "GET" {
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(e["response"]["content"]["text"].as_str().unwrap_or("")) else {
            continue;
        };
        // Only commands list events (reads, /healthz … have no service).
        if body["events"].as_array().is_none() {
            continue;
        }
        let service = service_of(doc, method, path).unwrap_or_else(|| panic!("{method} {path}: no route"));
        acknowledge(&service, &body, out);
    }
    (entries.len(), statuses, server_errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_survives_schema_driven_fuzzing_and_refusals_write_nothing() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up(&data, &free_addr());
    let doc = sys.call("GET", "/openapi.json", None, &[], None).await.json();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/schemathesis.toml");

    let mut acknowledged = BTreeSet::new();
    let mut requests = 0;
    let mut failures = Vec::new();
    for who in AS {
        let har = dir.path().join(format!("{who}.har"));
        let out = Command::new(schemathesis())
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("http://{}/openapi.json", sys.addr))
            .args(["--checks", "all", "--workers", "1", "--seed", SEED])
            .args(["--max-examples", EXAMPLES_PER_OPERATION, "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {}", sys.token(who))])
            .args(["--report", "har", "--report-har-path"])
            .arg(&har)
            .current_dir(dir.path())
            .output()
            .expect("run schemathesis (scripts/test installs it into .venv-test)");
        let said = String::from_utf8_lossy(&out.stdout);
        let summary: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("generated") || l.contains(" in ") && l.starts_with('='))
            .collect();
        eprintln!("{who}: {}", summary.join(" | "));
        if !out.status.success() {
            failures.push(format!(
                "as {who}, schemathesis found problems:\n{said}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let (n, statuses, server_errors) = reported(&doc, &har, &mut acknowledged);
        eprintln!("{who}: {n} requests, by status {statuses:?}");
        assert!(
            !statuses.keys().any(|s| *s >= 500),
            "as {who}: a 5xx answer: {statuses:?}\n{}",
            server_errors.join("\n")
        );
        requests += n;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(requests >= REQUESTS_MIN, "only {requests} requests");
    drop(sys);

    // Nothing but what was acknowledged: a request answered 4xx moved no log.
    assert_only_acknowledged(&data, acknowledged);
}
