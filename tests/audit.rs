//! Black-box: the audit over HTTP, through `concord up`. An operation is
//! opened with DE, a task assigned to DE, a lead posted by DE, DE removed;
//! then an auditor reads the operation's timeline (every event across
//! services, in causal order, with its actor), its state as of three
//! instants (folded by the services' own rules), one person's actions and
//! the verification of every log; nobody else may read any of it.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{free_addr, id, instant, ok, problem, token_for, up};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_replays_who_did_what_and_the_state_at_each_instant() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    sys.tokens
        .insert("DE_LIAISON".into(), token_for(&data, "liaison", "DE"));
    let mut seen = Vec::new();
    let mut position = |r: &concord_testkit::http::Response| {
        seen.push(r.header("concord-position").expect("Concord-Position").to_owned());
    };

    let r = sys
        .post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Audit", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await;
    let op = id(&ok(&r, 201));
    position(&r);
    let opened = instant().await;
    let r = sys
        .post(
            &format!("/v1/operations/{op}/tasks"),
            "FR_COORDINATOR",
            json!({"assignee_country": "DE", "title": "watch the port", "details": "d"}),
        )
        .await;
    let task = id(&ok(&r, 201));
    position(&r);
    let r = sys
        .post(
            &format!("/v1/operations/{op}/leads"),
            "DE_LIAISON",
            json!({"summary": "a van"}),
        )
        .await;
    let lead = id(&ok(&r, 201));
    position(&r);
    let tasked = instant().await;
    // DE declines its task (an open task keeps it in), then is removed.
    let r = sys
        .post(
            &format!("/v1/operations/{op}/tasks/{task}/status"),
            "DE_LIAISON",
            json!({"status": "declined"}),
        )
        .await;
    ok(&r, 200);
    position(&r);
    let r = sys
        .call(
            "DELETE",
            &format!("/v1/operations/{op}/participants/DE"),
            Some("FR_COORDINATOR"),
            &[],
            None,
        )
        .await;
    ok(&r, 200);
    position(&r);
    let removed = instant().await;
    let seen = seen.join(", ");
    let get = |path: String| {
        let sys = &sys;
        let seen = seen.clone();
        async move {
            sys.call("GET", &path, Some("GS_AUDITOR"), &[("Concord-Seen", &seen)], None)
                .await
        }
    };

    // The timeline: every event of the operation and of its lead, in
    // causal order, each with who did it.
    let timeline = ok(&get(format!("/v1/audit/operations/{op}/timeline")).await, 200);
    let events = timeline["events"].as_array().expect("events");
    let got: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["actor"]["role"].as_str().unwrap_or(""),
                e["actor"]["country"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("operation.opened", "coordinator", "FR"),
            ("task.assigned", "coordinator", "FR"),
            ("lead.posted", "liaison", "DE"),
            ("task.status_changed", "liaison", "DE"),
            ("participant.removed", "coordinator", "FR"),
        ]
    );
    let hlcs: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            (
                e["hlc"]["wall_ms"].as_u64().expect("hlc"),
                e["hlc"]["logical"].as_u64().expect("hlc"),
            )
        })
        .collect();
    assert!(hlcs.windows(2).all(|w| w[0] <= w[1]), "causal order: {hlcs:?}");
    assert_eq!(events[2]["service"], "intel");
    assert_eq!(events[2]["data"]["lead_id"], json!(lead));
    for e in events {
        for field in ["command_id", "correlation_id", "recorded_at", "seq"] {
            assert!(!e[field].is_null(), "{field} in {e}");
        }
    }

    // Up to an instant, and paged.
    let early = ok(
        &get(format!("/v1/audit/operations/{op}/timeline?at={}", urlencode(&opened))).await,
        200,
    );
    assert_eq!(early["events"].as_array().map(Vec::len), Some(1));
    let first = ok(&get(format!("/v1/audit/operations/{op}/timeline?limit=3")).await, 200);
    assert_eq!(first["events"].as_array().map(Vec::len), Some(3));
    let next = first["next"].as_u64().expect("a next page");
    let rest = ok(
        &get(format!("/v1/audit/operations/{op}/timeline?limit=3&after={next}")).await,
        200,
    );
    assert_eq!(rest["events"][0]["type"], "task.status_changed");
    assert_eq!(rest["events"][1]["type"], "participant.removed");
    assert!(rest["next"].is_null());

    // The state as of three instants, folded by the operations contract.
    let state_at = |t: &str| get(format!("/v1/audit/operations/{op}/state?at={}", urlencode(t)));
    let s1 = ok(&state_at(&opened).await, 200);
    let s2 = ok(&state_at(&tasked).await, 200);
    let s3 = ok(&state_at(&removed).await, 200);
    let participants = |s: &Value| s["operation"]["view"]["participants"].to_string();
    assert!(participants(&s1).contains("DE"), "{s1}");
    assert!(participants(&s2).contains("DE"), "{s2}");
    assert!(!participants(&s3).contains("DE"), "DE was removed: {s3}");
    assert_eq!(s1["operation"]["version"], 1);
    assert_eq!(s2["operation"]["version"], 2);
    assert!(s1["linked"].as_array().expect("linked").is_empty());
    assert_eq!(s2["linked"].as_array().map(Vec::len), Some(1), "the lead: {s2}");

    // One person's actions, across services.
    let de = events[2]["actor"]["sub"].as_str().expect("sub").to_owned();
    let actions = ok(&get(format!("/v1/audit/actors/{de}/actions")).await, 200);
    let types: Vec<&str> = actions["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["lead.posted", "task.status_changed"]);

    // What DE knew: the operation and its lead while it took part, not
    // the operation once removed; and when it gained and lost sight.
    let knew = |at: &str| get(format!("/v1/audit/countries/DE/knowledge?at={}", urlencode(at)));
    let streams = |k: &Value| -> Vec<String> {
        k["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["stream"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let during = ok(&knew(&tasked).await, 200);
    let after = ok(&knew(&removed).await, 200);
    let operation = format!("operation-{op}");
    assert!(streams(&during).contains(&operation), "{during}");
    assert!(streams(&during).contains(&format!("lead-{lead}")), "{during}");
    assert!(!streams(&after).contains(&operation), "{after}");
    let sight = ok(&get(format!("/v1/audit/countries/DE/knowledge?item={op}")).await, 200);
    let periods = sight["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 1, "{sight}");
    assert_eq!(periods[0]["from"]["type"], "operation.opened");
    assert_eq!(periods[0]["until"]["type"], "participant.removed");
    assert!(sight["countries"]["FR"][0]["until"].is_null(), "{sight}");
    let r = get(format!(
        "/v1/audit/countries/DE/knowledge?item={op}&at={}",
        urlencode(&tasked)
    ))
    .await;
    problem(&r, 400, "invalid");
    let r = get(format!(
        "/v1/audit/countries/DE/knowledge?item={}",
        uuid::Uuid::now_v7()
    ))
    .await;
    problem(&r, 404, "not_found");

    // Every log's chain checked to its head.
    let verify = ok(&get("/v1/audit/verify".into()).await, 200);
    assert_eq!(verify["verified"], true, "{verify}");
    assert_eq!(verify["logs"]["operations"]["events_checked"], 4);
    assert_eq!(verify["logs"]["intel"]["head_seq"], 1);

    // The operations log exported as stored, against a signed checkpoint
    // that an independent verifier (Python, from the docs) accepts.
    let (export, note) = {
        let r = get("/v1/audit/export?service=operations".into()).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/jsonl"));
        use base64::Engine as _;
        let note = base64::engine::general_purpose::STANDARD
            .decode(r.header("concord-checkpoint").expect("Concord-Checkpoint"))
            .expect("base64");
        (r.body, String::from_utf8(note).expect("UTF-8"))
    };
    let size = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse::<usize>().ok())
        .expect("a size");
    assert_eq!(size, 4, "the head the audit read (Concord-Seen): {note}");
    assert_eq!(export.iter().filter(|b| **b == b'\n').count(), size);
    let key = ok(&get("/v1/audit/checkpoints/key".into()).await, 200)["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let files = dir.path();
    std::fs::write(files.join("export.jsonl"), &export).expect("write");
    std::fs::write(files.join("note"), &note).expect("write");
    std::fs::write(files.join("key"), &key).expect("write");
    let verifier = |export: &str| {
        let out = std::process::Command::new(concord_testkit::test_python())
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/verify_checkpoint.py"))
            .args([files.join(export), files.join("note"), files.join("key")])
            .output()
            .expect("python");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, said) = verifier("export.jsonl");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.starts_with("ok concord/operations/"), "{said}");
    // One event fewer, or one byte changed, and it says so.
    let cut: Vec<&[u8]> = export.split_inclusive(|b| *b == b'\n').collect();
    std::fs::write(files.join("short.jsonl"), cut[..size - 1].concat()).expect("write");
    let (code, said) = verifier("short.jsonl");
    assert_eq!(code, Some(1), "{said}");
    let altered = String::from_utf8(export.clone())
        .expect("UTF-8")
        .replacen("Op Audit", "Op Audiy", 1);
    std::fs::write(files.join("altered.jsonl"), altered).expect("write");
    let (code, said) = verifier("altered.jsonl");
    assert!(code == Some(1) && said.contains("BROKEN at seq 1"), "{said}");
    // The command line writes the same lines and the same checkpoint.
    let out = std::process::Command::new(common::BIN)
        .args(["audit", "export", "--service", "operations", "--out"])
        .arg(files.join("cli.jsonl"))
        .arg("--data")
        .arg(&data)
        .env_remove("NATS_URL")
        .env_remove("CONCORD_NATS_SEED")
        .output()
        .expect("concord audit export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(files.join("cli.jsonl")).expect("read"), export);
    assert_eq!(
        std::fs::read_to_string(files.join("cli.jsonl.checkpoint")).expect("read"),
        note
    );
    let part = get("/v1/audit/export?service=operations&from=2&to=2".into()).await;
    assert_eq!(part.status, 200);
    assert_eq!(part.body, cut[1]);
    let r = sys.get("/v1/audit/export?service=operations", "DE_LIAISON").await;
    problem(&r, 403, "forbidden");
    let r = get("/v1/audit/export?service=ledger".into()).await;
    problem(&r, 400, "invalid");

    // Nobody but an auditor; unknown and malformed are told apart.
    for who in ["FR_COORDINATOR", "DE_LIAISON"] {
        let r = sys.get(&format!("/v1/audit/operations/{op}/timeline"), who).await;
        problem(&r, 403, "forbidden");
    }
    let r = sys
        .get(
            &format!("/v1/audit/operations/{}/timeline", uuid::Uuid::now_v7()),
            "GS_AUDITOR",
        )
        .await;
    problem(&r, 404, "not_found");
    let r = sys
        .get(&format!("/v1/audit/operations/{op}/state?at=yesterday"), "GS_AUDITOR")
        .await;
    problem(&r, 400, "invalid");
    let r = sys.get("/v1/audit/operations/not-a-uuid/timeline", "GS_AUDITOR").await;
    problem(&r, 400, "invalid");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// An event rewritten on disk (its data changed, its hash left as it
/// was) is found when the audit replays the log: verification names the
/// log and the first seq that no longer checks, and timelines say so
/// instead of serving the altered record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_event_is_named_by_verify_and_the_timeline_refuses_to_serve_it() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up(&data, &free_addr());
    let mut ops = Vec::new();
    let mut last = String::new();
    for title in ["Op One", "Op Two", "Op Three"] {
        let r = open(&sys, title).await;
        ops.push(id(&ok(&r, 201)));
        last = r.header("concord-position").expect("position").to_owned();
    }
    // The projector has applied them all: it would stop the system on
    // reading the rewritten event (it remembers the chain), and this test
    // is about what the audit says.
    let r = sys
        .call(
            "GET",
            "/v1/countries/FR/view",
            Some("FR_COORDINATOR"),
            &[("Concord-Seen", &last)],
            None,
        )
        .await;
    ok(&r, 200);
    drop(sys);

    // What an insider with the disk would do, through fjall's own API:
    // seq 2's title changed.
    {
        let db = concord_log::open_database(&data.join("operations")).expect("open the log's database");
        let events = concord_log::open_keyspace(&db, "events").expect("events");
        let raw = events.get(2u64.to_be_bytes()).expect("read").expect("seq 2");
        let text = String::from_utf8(raw.to_vec()).expect("utf-8");
        assert!(text.contains("Op Two"), "{text}");
        events
            .insert(2u64.to_be_bytes(), text.replace("Op Two", "Op Tw0").into_bytes())
            .expect("rewrite");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }

    let sys = up(&data, &free_addr());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let verify = loop {
        let v = ok(&sys.get("/v1/audit/verify", "GS_AUDITOR").await, 200);
        if v["verified"] == false || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(verify["verified"], false, "{verify}");
    assert_eq!(verify["logs"]["operations"]["first_bad_seq"], 2, "{verify}");
    assert_eq!(verify["logs"]["operations"]["events_checked"], 1, "{verify}");
    assert!(verify["logs"]["operations"]["error"].is_string());
    let r = sys
        .get(&format!("/v1/audit/operations/{}/timeline", ops[0]), "GS_AUDITOR")
        .await;
    problem(&r, 409, "conflict");
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("operations log fails verification at seq 2"), "{body}");
}

/// The events of `dir`'s log from seq `from` on, rewritten through fjall's
/// own API as a capable insider would: `change` applied to each event's
/// data, every hash re-sealed so the chain links, the high-water mark
/// moved to the new head. `keep`: the events kept (the rest deleted).
fn reseal(dir: &std::path::Path, from: u64, keep: u64, change: impl Fn(&mut Value)) {
    use concord_core::chain::{canonical_json, seal};
    let db = concord_log::open_database(dir).expect("the log's database");
    let events = concord_log::open_keyspace(&db, "events").expect("events");
    let mut prev: Option<String> = None;
    let mut head = None;
    let mut seq = from;
    while let Some(raw) = events.get(seq.to_be_bytes()).expect("read") {
        if seq > keep {
            events.remove(seq.to_be_bytes()).expect("remove");
            seq += 1;
            continue;
        }
        let mut e: concord_core::EventEnvelope = serde_json::from_slice(&raw).expect("an event");
        change(&mut e.data);
        if let Some(p) = &prev {
            e.prev_hash.clone_from(p);
        }
        let canonical = canonical_json(&e.data).expect("canonical");
        let bytes = seal(&mut e, &canonical);
        events.insert(seq.to_be_bytes(), bytes).expect("write");
        prev = Some(e.hash.clone());
        head = Some((seq, e.hash.clone()));
        seq += 1;
    }
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
    drop(events);
    drop(db);
    let (seq, hash) = head.expect("events rewritten");
    let file = dir.join(concord_log::MARK_FILE);
    let mut mark: Value = serde_json::from_slice(&std::fs::read(&file).expect("the mark")).expect("json");
    mark["seq"] = json!(seq);
    mark["hash"] = json!(hash);
    std::fs::write(&file, serde_json::to_vec(&mark).expect("json")).expect("write the mark");
}

/// The latest checkpoint of the operations log once it covers `size`
/// events, and the audit's key, as any role reads them.
async fn saved_checkpoint(sys: &common::Up, dir: &std::path::Path, size: u64) -> (PathBuf, PathBuf) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let latest = ok(&sys.get("/v1/audit/checkpoints/latest", "FR_COORDINATOR").await, 200);
        let note = latest["checkpoints"]["operations"].as_str().unwrap_or("").to_owned();
        if note.lines().nth(1) == Some(size.to_string().as_str()) {
            let key = ok(&sys.get("/v1/audit/checkpoints/key", "FR_COORDINATOR").await, 200);
            assert_eq!(key["key"], latest["key"]);
            let (n, k) = (dir.join(format!("checkpoint-{size}.txt")), dir.join("audit.vkey"));
            std::fs::write(&n, note).expect("save");
            std::fs::write(&k, key["key"].as_str().expect("key")).expect("save");
            return (n, k);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint of size {size}: {latest}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn audit_verify(data: &std::path::Path, note: &std::path::Path, key: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new(common::BIN)
        .args(["audit", "verify", "--checkpoint"])
        .arg(note)
        .arg("--key")
        .arg(key)
        .arg("--data")
        .arg(data)
        .env_remove("NATS_URL")
        .env_remove("CONCORD_NATS_SEED")
        .output()
        .expect("concord audit verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn open(sys: &common::Up, title: &str) -> concord_testkit::http::Response {
    sys.post(
        "/v1/operations",
        "FR_COORDINATOR",
        json!({"title": title, "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
    )
    .await
}

/// A checkpoint saved by a witness proves what a re-sealed chain hides: a
/// rewrite of the events before it, and a log cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_checkpoint_catches_a_resealed_rewrite_and_a_truncation() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up(&data, &free_addr());
    let mut ops = Vec::new();
    for title in ["Op One", "Op Two", "Op Three"] {
        ops.push(id(&ok(&open(&sys, title).await, 201)));
    }
    let (note3, key) = saved_checkpoint(&sys, dir.path(), 3).await;
    let text = std::fs::read_to_string(&note3).expect("note");
    assert!(text.starts_with("concord/operations/"), "{text}");
    assert!(text.contains("\n\n\u{2014} concord-audit "), "{text}");
    let (good, said) = audit_verify(&data, &note3, &key);
    assert!(good, "{said}");
    // The log grows: it still extends the checkpoint.
    ok(&open(&sys, "Op Four").await, 201);
    let (note4, _) = saved_checkpoint(&sys, dir.path(), 4).await;
    let (good, said) = audit_verify(&data, &note3, &key);
    assert!(good && said.contains("1 events after it"), "{said}");
    // The HTTP verify says the same of a witness's checkpoint.
    let v = ok(&witness(&sys, &note3).await, 200);
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["checkpoint"]["extends"], true, "{v}");
    assert_eq!(v["checkpoint"]["events_after"], 1, "{v}");
    let r = sys
        .get("/v1/audit/verify?checkpoint=bm90IGEgbm90ZQ%3D%3D", "GS_AUDITOR")
        .await;
    problem(&r, 422, "rule_violated");
    let r = sys.get("/v1/audit/verify?checkpoint=%7Bnot%7D", "GS_AUDITOR").await;
    problem(&r, 400, "invalid");
    drop(sys);

    // The newest event cut off, the mark lowered to match: the chain that
    // is left links. The projector's views, which remember the old chain
    // (they would stop the system), deleted to be built again.
    reseal(&data.join("operations"), 1, 3, |_| {});
    std::fs::remove_dir_all(data.join("projector")).expect("the views");
    let sys = up(&data, &free_addr());
    let (good, said) = audit_verify(&data, &note4, &key);
    assert!(!good, "a truncation passed: {said}");
    assert!(
        said.contains("cut short: its head is seq 3, the checkpoint saw 4"),
        "{said}"
    );
    // The audit holds the log to what it signed itself, and says so.
    let failed = audit_failure(&sys, "operations").await;
    assert_eq!(failed["first_bad_seq"], 4, "{failed}");
    assert!(failed["error"].as_str().unwrap_or("").contains("cut off"), "{failed}");
    let v = ok(&witness(&sys, &note4).await, 200);
    assert_eq!(
        (&v["verified"], &v["checkpoint"]["extends"]),
        (&json!(false), &json!(false)),
        "{v}"
    );
    assert!(v["checkpoint"]["why"].as_str().unwrap_or("").contains("cut off"), "{v}");
    drop(sys);

    // Seq 2 on rewritten and re-sealed: the chain links, the mark agrees.
    reseal(&data.join("operations"), 2, u64::MAX, |d| {
        if d["title"] == "Op Two" {
            d["title"] = json!("Op Tw0");
        }
    });
    std::fs::remove_dir_all(data.join("projector")).expect("the views");
    let sys = up(&data, &free_addr());
    let (good, said) = audit_verify(&data, &note3, &key);
    assert!(!good, "a re-sealed rewrite passed: {said}");
    assert!(
        said.contains("operations log was rewritten at or before seq 3"),
        "{said}"
    );
    // The audit's replay finds the chain whole, but not what it signed:
    // it names the log and where the rewrite began, and serves nothing of
    // it.
    let failed = audit_failure(&sys, "operations").await;
    let first = failed["first_bad_seq"].as_u64().expect("a first bad seq");
    assert!((1..=2).contains(&first), "the rewrite began at seq 2: {failed}");
    assert!(failed["error"].as_str().unwrap_or("").contains("rewritten"), "{failed}");
    let r = sys
        .get(&format!("/v1/audit/operations/{}/timeline", ops[1]), "GS_AUDITOR")
        .await;
    problem(&r, 409, "conflict");
    let v = ok(&witness(&sys, &note3).await, 200);
    assert_eq!(v["checkpoint"]["extends"], false, "{v}");
    assert!(
        v["checkpoint"]["why"].as_str().unwrap_or("").contains("rewritten"),
        "{v}"
    );
}

/// `/v1/audit/verify` against the checkpoint saved in `note`.
async fn witness(sys: &common::Up, note: &std::path::Path) -> concord_testkit::http::Response {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(note).expect("the note"));
    let q = b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    sys.get(&format!("/v1/audit/verify?checkpoint={q}"), "GS_AUDITOR").await
}

/// The audit's verification of `service`'s log once it has found it
/// failing (within a few seconds of the start).
async fn audit_failure(sys: &common::Up, service: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let verify = ok(&sys.get("/v1/audit/verify", "GS_AUDITOR").await, 200);
        if verify["verified"] == false {
            return verify["logs"][service].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the audit found nothing: {verify}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every read through the gateway is in the access log before it is
/// answered: a lead read by two countries is found with both readers, a
/// refused read with its status, the auditor's own reads too; a read
/// without a token anyone verifies names nobody and is not recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_says_who_read_what() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    for (name, role, cc) in [
        ("DE_LIAISON", "liaison", "DE"),
        ("FR_LIAISON", "liaison", "FR"),
        ("ES_LIAISON", "liaison", "ES"),
    ] {
        sys.tokens.insert(name.into(), token_for(&data, role, cc));
    }
    let r = sys
        .post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Access", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await;
    let op = id(&ok(&r, 201));
    let r = sys
        .post(
            &format!("/v1/operations/{op}/leads"),
            "DE_LIAISON",
            json!({"summary": "a van"}),
        )
        .await;
    let lead = id(&ok(&r, 201));
    let seen = r.header("concord-position").expect("position").to_owned();

    // DE and FR read their views, which hold the lead.
    let mut access_ids = Vec::new();
    for (who, cc) in [("DE_LIAISON", "DE"), ("FR_LIAISON", "FR")] {
        let r = sys
            .call(
                "GET",
                &format!("/v1/countries/{cc}/view"),
                Some(who),
                &[("Concord-Seen", &seen)],
                None,
            )
            .await;
        let view = ok(&r, 200);
        assert!(view.to_string().contains(&lead), "{view}");
        access_ids.push(r.header("concord-access-id").expect("Concord-Access-Id").to_owned());
    }
    // ES may not see the operation: refused, and recorded so.
    let r = sys.get(&format!("/v1/operations/{op}"), "ES_LIAISON").await;
    problem(&r, 404, "not_found");
    let r = sys.get("/v1/audit/verify", "DE_LIAISON").await;
    problem(&r, 403, "forbidden");
    // No token: nobody to name, nothing recorded.
    let r = sys.call("GET", &format!("/v1/operations/{op}"), None, &[], None).await;
    problem(&r, 401, "unauthorized");

    let access = |query: String| {
        let sys = &sys;
        async move { ok(&sys.get(&format!("/v1/audit/access?{query}"), "GS_AUDITOR").await, 200) }
    };
    let of_lead = access(format!("item={lead}")).await;
    let reads = of_lead["reads"].as_array().expect("reads");
    let readers: Vec<(&str, &str, u64)> = reads
        .iter()
        .map(|r| {
            (
                r["actor"]["country"].as_str().unwrap_or(""),
                r["data"]["path"].as_str().unwrap_or(""),
                r["data"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        readers,
        [
            ("DE", "/v1/countries/DE/view", 200),
            ("FR", "/v1/countries/FR/view", 200)
        ],
        "{of_lead}"
    );
    for (r, access_id) in reads.iter().zip(&access_ids) {
        assert_eq!(r["data"]["access_id"], json!(access_id));
        assert_eq!(r["service"], "audit");
        assert_eq!(r["type"], "access.recorded");
        assert!(
            r["data"]["items"]
                .as_array()
                .expect("items")
                .contains(&json!(format!("lead-{lead}")))
        );
    }
    let es = access("sub=es-liaison".into()).await;
    assert_eq!(es["reads"].as_array().map(Vec::len), Some(1), "{es}");
    assert_eq!(es["reads"][0]["data"]["status"], 404);
    assert_eq!(es["reads"][0]["data"]["items"], json!([op]));
    let refused = access("sub=de-liaison".into()).await;
    let statuses: Vec<u64> = refused["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|r| r["data"]["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200, 403], "{refused}");
    // The operation: in both views, and asked for by ES; the read
    // without a token is not there.
    let of_op = access(format!("item={op}")).await;
    let statuses: Vec<u64> = of_op["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|r| r["data"]["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [200, 200, 404], "{of_op}");
    // The auditor's own reads are recorded, each before the next.
    let own = access("sub=demo-gs-auditor".into()).await;
    let queries: Vec<&str> = own["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .map(|r| r["data"]["query"].as_str().unwrap_or(""))
        .collect();
    let lead_query = format!("item={lead}");
    let op_query = format!("item={op}");
    assert_eq!(
        queries,
        [
            lead_query.as_str(),
            "sub=es-liaison",
            "sub=de-liaison",
            op_query.as_str()
        ],
        "{own}"
    );
    // By time: nothing before the system existed, nothing after now.
    let none = access("to=2000-01-01T00:00:00Z".into()).await;
    assert_eq!(none["reads"], json!([]));
    let r = sys.get("/v1/audit/access?from=yesterday", "GS_AUDITOR").await;
    problem(&r, 400, "invalid");
    // The access log is a log like the others: verified and checkpointed.
    let verify = ok(&sys.get("/v1/audit/verify", "GS_AUDITOR").await, 200);
    assert!(
        verify["logs"]["audit"]["events_checked"].as_u64().unwrap_or(0) >= 8,
        "{verify}"
    );
    assert_eq!(verify["verified"], true);
    let r = sys.get("/v1/audit/export?service=audit", "GS_AUDITOR").await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("access.recorded"));
}
