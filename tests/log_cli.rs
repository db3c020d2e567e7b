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
    write_events(
        dir,
        (0..n)
            .map(|i| json!({"title": format!("Opération n°{i} \"quoted\"\ttab"), "n": i}))
            .collect(),
    );
}

/// One event per `data`, each appended by its own command.
fn write_events(dir: &Path, data: Vec<serde_json::Value>) {
    let log = Log::open(dir, Service::Operations).expect("open");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        for (i, data) in data.into_iter().enumerate() {
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
                    data,
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
    // The first bad seq is the one found where 5 was due.
    assert!(
        stdout.starts_with("BROKEN: operations log, first bad seq 6: seq 5 is missing"),
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

fn verify_export_py(export: &[u8], args: &[&str]) -> (Option<i32>, String) {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let file = tmp.path().join("export.jsonl");
    std::fs::write(&file, export).expect("write export");
    let out = Command::new("python3")
        .arg(repo().join("schemas/verify_export.py"))
        .arg(&file)
        .args(args)
        .output()
        .expect("python3 is needed to run the independent verifier");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text.trim().to_owned())
}

/// The export's line format and canonical form (schemas/README.md): the
/// independent verifier refuses a line that is not byte for byte its own
/// canonical form even when its hash matches (a naive verifier parses,
/// re-serializes and hashes, and so accepts an escaped `é`), and a partial
/// export verifies from its anchor.
#[test]
fn the_independent_verifier_refuses_non_canonical_lines_and_checks_a_partial_export_s_anchor() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("operations");
    write_log(&dir, 4);
    let out = concord(&["log", "export", dir.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let export = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        verify_export_py(export.as_bytes(), &[]),
        (Some(0), "ok 4 events".into())
    );

    let lines: Vec<&str> = export.lines().collect();
    let with_line = |i: usize, line: String| {
        let mut l: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
        l[i] = line;
        l.join("\n") + "\n"
    };
    for (what, altered, want) in [
        (
            "an escaped é",
            with_line(1, lines[1].replacen('é', "\\u00e9", 1)),
            "BROKEN at seq 2: line is not in canonical form",
        ),
        (
            "a space",
            with_line(1, lines[1].replacen(",\"hlc\":", ", \"hlc\":", 1)),
            "BROKEN at seq 2: line is not in canonical form",
        ),
        (
            "a duplicate key",
            with_line(2, lines[2].replacen("{\"actor\":", "{\"seq\":3,\"actor\":", 1)),
            "BROKEN at seq 3: unreadable line: duplicate key 'seq'",
        ),
        (
            "CRLF",
            export.replace('\n', "\r\n"),
            "BROKEN at seq 1: line is not in canonical form",
        ),
        (
            "no final line feed",
            export.trim_end().to_owned(),
            "BROKEN at seq 4: the last line does not end with a line feed",
        ),
        ("a BOM", format!("\u{feff}{export}"), "BROKEN at seq 1: unreadable line"),
        (
            "an empty line",
            export.replacen('\n', "\n\n", 1),
            "BROKEN at seq 2: unreadable line",
        ),
        (
            "a fraction",
            with_line(3, lines[3].replacen("\"n\":3", "\"n\":3.0", 1)),
            "BROKEN at seq 4: unreadable line: number 3.0 is not an integer",
        ),
    ] {
        let (code, text) = verify_export_py(altered.as_bytes(), &[]);
        assert_eq!(code, Some(1), "{what}: {text}");
        assert!(text.starts_with(want), "{what}: {text}");
    }
    // The data covered by its digest, the digest by the hash: other data
    // of the same length is named; data erased (the member left out, as
    // a redaction will) still verifies.
    let (code, text) = verify_export_py(export.replacen("n°1", "n°7", 1).as_bytes(), &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.starts_with("BROKEN at seq 2: data_digest "), "{text}");
    let mut erased: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    erased.as_object_mut().expect("object").remove("data");
    let erased_line =
        String::from_utf8(concord_core::chain::canonical_json(&erased).expect("canonical")).expect("utf-8");
    assert_eq!(
        verify_export_py(with_line(1, erased_line).as_bytes(), &[]),
        (Some(0), "ok 4 events".into())
    );

    let mut invalid_utf8 = export.clone().into_bytes();
    let at = invalid_utf8.iter().position(|b| *b == 0xc3).expect("é");
    invalid_utf8[at] = 0xff;
    let (code, text) = verify_export_py(&invalid_utf8, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with("BROKEN at seq 1: unreadable line: 'utf-8' codec"),
        "{text}"
    );

    // A partial export (--from 3) verifies from the hash of seq 2, its anchor.
    let partial = concord(&["log", "export", dir.to_str().expect("utf-8"), "--from", "3"]);
    let anchor: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
    let anchor = anchor["hash"].as_str().expect("hash");
    assert_eq!(
        verify_export_py(&partial.stdout, &["--from", "3", "--anchor", anchor]),
        (Some(0), "ok 2 events".into())
    );
    let (code, text) = verify_export_py(&partial.stdout, &["--from", "3", "--anchor", &"f".repeat(64)]);
    assert_eq!(code, Some(1));
    assert!(text.starts_with("BROKEN at seq 3: prev_hash does not match"), "{text}");
    let (code, text) = verify_export_py(&partial.stdout, &[]);
    assert_eq!(code, Some(1), "a partial export is no full one");
    assert!(
        text.starts_with("BROKEN at seq 3: expected seq 1, found seq 3"),
        "{text}"
    );
}

/// Every line of a real export is byte for byte what an implementation of
/// RFC 8785 that Concord shares no code with (PyPI `rfc8785`, pinned in
/// requirements-test.txt) makes of its parsed value, for the cases where
/// RFC 8785 differs from a naive canonical form: keys beyond U+FFFF
/// (UTF-16 order), DEL, C1 controls, U+2028/U+2029, control characters,
/// integers at ±(2^53−1).
#[test]
fn every_line_of_an_export_is_rfc8785_of_its_value() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let dir = tmp.path().join("operations");
    let max = 9_007_199_254_740_991_i64;
    write_events(
        &dir,
        vec![
            json!({"😀": 1, "\u{e000}": 2, "\u{ffff}": 3, "\u{10000}": 4, "z": 5, "é": 6}),
            json!({"text": "del\u{7f} c1\u{80}\u{85}\u{9f} ls\u{2028} ps\u{2029} nul\u{0} esc\u{1b} \t\n\r\u{8}\u{c} \"q\" \\ /"}),
            json!({"max": max, "min": -max, "zero": 0, "nested": {"b": [true, false, null, [], {}], "a": "😀"}}),
            json!({"Opération": "Héron", "ключ": "значение", "鍵": "値"}),
        ],
    );
    let out = concord(&["log", "export", dir.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let file = tmp.path().join("export.jsonl");
    std::fs::write(&file, &out.stdout).expect("write");
    let check = r#"
import json, sys, rfc8785
data = open(sys.argv[1], "rb").read()
lines = data.split(b"\n")
assert lines.pop() == b"", "the export ends with a line feed"
for line in lines:
    ours = json.loads(line)
    if rfc8785.dumps(ours) != line:
        print("differs:", line, rfc8785.dumps(ours))
        sys.exit(1)
print("identical", len(lines))
"#;
    let py = Command::new(concord_testkit::test_python())
        .args(["-c", check])
        .arg(&file)
        .output()
        .expect("the test toolchain's python");
    assert!(
        py.status.success(),
        "{}{}",
        String::from_utf8_lossy(&py.stdout),
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "identical 4");
    assert_eq!(verify_export_py(&out.stdout, &[]), (Some(0), "ok 4 events".into()));
}
