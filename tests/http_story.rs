//! Black-box: the built `concord up` on a temp data dir and a free port,
//! driven over HTTP with the demo tokens it prints. The joint operation
//! story, the 400/401/403/404/409 answers, a kill -9 and a restart on the
//! same data dir (every acknowledged change still there, the operation
//! goes on), `concord token`, and a clean stop on SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;
use concord_testkit::http::request;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_story_over_http_survives_kill_9() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let addr = free_addr();
    let mut sys = up(&data, &addr);
    assert_eq!(sys.tokens.len(), 9, "{:?}", sys.tokens.keys());

    // Open with FR as lead and DE, ES as participants.
    let r = sys
        .post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Lys", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES"]}),
        )
        .await;
    let op = ok(&r, 201)["id"].as_str().expect("id").to_owned();
    let ops = format!("/v1/operations/{op}");

    // Task DE; DE accepts, then completes.
    let task_body = json!({"assignee_country": "DE", "title": "trace the boat", "details": "port of Hamburg", "due_at": "2026-12-01T18:00:00Z"});
    let task = ok(
        &sys.post(&format!("{ops}/tasks"), "FR_COORDINATOR", task_body).await,
        201,
    )["id"]
        .as_str()
        .expect("task")
        .to_owned();
    let status = format!("{ops}/tasks/{task}/status");
    ok(
        &sys.post(&status, "DE_LIAISON", json!({"status": "accepted"})).await,
        200,
    );
    ok(
        &sys.post(&status, "DE_LIAISON", json!({"status": "in_progress"})).await,
        200,
    );
    let done = ok(
        &sys.post(&status, "DE_LIAISON", json!({"status": "done", "note": "boat found"}))
            .await,
        200,
    );
    assert_eq!(done["id"], task.as_str());

    // The error paths.
    problem(&sys.post(&ops, "FR_COORDINATOR", json!({})).await, 405, "invalid");
    problem(
        &sys.get(&format!("{ops}/nothing"), "FR_COORDINATOR").await,
        404,
        "not_found",
    );
    problem(
        &sys.post(&format!("{ops}/participants"), "FR_COORDINATOR", json!({"country": 7}))
            .await,
        400,
        "invalid",
    );
    problem(
        &sys.call(
            "POST",
            &format!("{ops}/close"),
            None,
            &[],
            Some(json!({"outcome": "x"})),
        )
        .await,
        401,
        "unauthorized",
    );
    problem(
        &sys.post(&format!("{ops}/close"), "DE_LIAISON", json!({"outcome": "x"}))
            .await,
        403,
        "forbidden",
    );
    problem(&sys.get(&ops, "US_LIAISON").await, 404, "not_found");
    let stale = sys
        .call(
            "POST",
            &format!("{ops}/participants"),
            Some("FR_COORDINATOR"),
            &[("If-Match", "\"1\"")],
            Some(json!({"country": "IT"})),
        )
        .await;
    problem(&stale, 409, "conflict");

    // Add IT, with the current version.
    let before = sys.get(&ops, "FR_COORDINATOR").await;
    let etag = before.header("etag").expect("etag").to_owned();
    let added = sys
        .call(
            "POST",
            &format!("{ops}/participants"),
            Some("FR_COORDINATOR"),
            &[("If-Match", &etag)],
            Some(json!({"country": "IT"})),
        )
        .await;
    let acked_version = ok(&added, 200)["version"].as_u64().expect("version");
    ok(&sys.get(&ops, "IT_LIAISON").await, 200);

    // kill -9: its nats-server child dies with it (the kernel's parent
    // death signal), no orphan left holding a port.
    let nats_pid = std::fs::read_to_string(data.join("nats").join("nats-server.pid")).expect("pid");
    let nats_pid = nats_pid.trim().to_owned();
    assert!(Path::new(&format!("/proc/{nats_pid}")).exists(), "the child runs");
    sys.child.kill().expect("kill -9");
    sys.child.wait().expect("reaped");
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = || {
        std::fs::read_to_string(format!("/proc/{nats_pid}/stat"))
            .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"))
    };
    while !gone() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(), "the nats-server child {nats_pid} outlived a killed concord up");
    // The same data dir again: all of it is there.
    let addr2 = free_addr();
    let sys2 = up(&data, &addr2);
    let view = ok(&sys2.get(&ops, "FR_COORDINATOR").await, 200);
    assert_eq!(view["version"].as_u64(), Some(acked_version), "{view}");
    assert_eq!(view["status"], "open", "{view}");
    let participants = view["participants"].to_string();
    for cc in ["DE", "ES", "IT"] {
        assert!(participants.contains(cc), "{cc} in {participants}");
    }
    assert!(view["tasks"].to_string().contains("done"), "{view}");
    // Tokens printed by the first run still work (same secret).
    ok(
        &sys2
            .call(
                "GET",
                &ops,
                None,
                &[("Authorization", &format!("Bearer {}", sys.token("IT_LIAISON")))],
                None,
            )
            .await,
        200,
    );

    // The operation goes on: close it.
    let closed = ok(
        &sys2
            .post(
                &format!("{ops}/close"),
                "FR_COORDINATOR",
                json!({"outcome": "network dismantled"}),
            )
            .await,
        200,
    );
    assert_eq!(closed["id"], op.as_str());
    assert_eq!(ok(&sys2.get(&ops, "ES_LIAISON").await, 200)["status"], "closed");

    // `concord token` makes a token the running system accepts.
    let out = Command::new(BIN)
        .args([
            "token",
            "--role",
            "liaison",
            "--country",
            "NL",
            "--sub",
            "nl-officer",
            "--ttl",
            "5m",
            "--data",
        ])
        .arg(&data)
        .env_remove("CONCORD_JWT_SECRET")
        .output()
        .expect("concord token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let tok = stdout.lines().last().expect("token line").trim();
    let auth = format!("Bearer {tok}");
    problem(
        &request(&addr2, "GET", &ops, &[("Authorization", &auth)], None)
            .await
            .expect("http"),
        404,
        "not_found",
    );

    // SIGTERM stops it cleanly, its nats-server included.
    let nats_pid = std::fs::read_to_string(data.join("nats").join("nats-server.pid")).expect("pid");
    let mut sys2 = sys2;
    let status = Command::new("kill")
        .args(["-TERM", &sys2.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = sys2.child.wait().expect("wait");
    assert!(exit.success(), "clean exit, got {exit}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", nats_pid.trim())).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !Path::new(&format!("/proc/{}", nats_pid.trim())).exists(),
        "nats-server child left running"
    );
}

/// `concord serve`: each service its own process on a shared NATS, as
/// deploy/ runs them, each with its own identity (`--creds`) on a server
/// configured like `concord up`'s; the gateway answers once the services,
/// the projector and the audit (every read is recorded) answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_as_separate_processes() {
    let nats = concord_testkit::NatsServer::start_secured().expect("nats-server");
    let ids = nats.identities().expect("secured");
    let dir = tempfile::TempDir::new().expect("tmp");
    let secret = "separate-processes-secret-0123456789abcdef";
    let addr = free_addr();
    let spawn = |args: &[&str]| {
        let identity = concord_bus::permissions::Identity::parse(args[1]).expect("an identity");
        Command::new(BIN)
            .args(args)
            .arg("--creds")
            .arg(ids.seed_file(identity))
            .env("NATS_URL", nats.url())
            .env("CONCORD_JWT_SECRET", secret)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let data = dir.path().to_string_lossy().to_string();
    // Each process's own metrics, as deploy/ scrapes them.
    let (ops_metrics, projector_metrics) = (free_addr(), free_addr());
    let mut ops = spawn(&["serve", "operations", "--data", &data, "--metrics", &ops_metrics]);
    let mut intel = spawn(&["serve", "intel", "--data", &data]);
    let mut crisis = spawn(&["serve", "crisis", "--data", &data]);
    let mut deployments = spawn(&["serve", "deployments", "--data", &data]);
    let mut projector = spawn(&["serve", "projector", "--data", &data, "--metrics", &projector_metrics]);
    let mut audit = spawn(&["serve", "audit", "--data", &data]);
    let mut gw = spawn(&["serve", "gateway", "--http", &addr]);
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = request(&addr, "GET", "/readyz", &[], None).await
            && r.status == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "gateway not ready in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = Command::new(BIN)
        .args(["token", "--role", "coordinator", "--country", "FR", "--sub", "fr-1"])
        .env("CONCORD_JWT_SECRET", secret)
        .output()
        .expect("token");
    let tok = String::from_utf8_lossy(&token.stdout)
        .lines()
        .last()
        .expect("line")
        .trim()
        .to_owned();
    let body = serde_json::to_vec(&json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE"]}))
        .expect("json");
    let auth = format!("Bearer {tok}");
    let r = request(
        &addr,
        "POST",
        "/v1/operations",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        Some(&body),
    )
    .await
    .expect("http");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        dir.path().join("operations").is_dir(),
        "the service's log is in its data dir"
    );
    // The projector, in its own process, shows it to FR (read your writes).
    let position = r.header("concord-position").expect("Concord-Position").to_owned();
    let list = request(
        &addr,
        "GET",
        "/v1/operations",
        &[("Authorization", &auth), ("Concord-Seen", &position)],
        None,
    )
    .await
    .expect("http");
    assert_eq!(list.status, 200, "{}", String::from_utf8_lossy(&list.body));
    assert_eq!(
        list.json()["items"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        list.json()
    );
    assert!(
        dir.path().join("projector").is_dir(),
        "the projector's store is in its data dir"
    );
    assert!(dir.path().join("audit").is_dir(), "the access log is in its data dir");
    // The operations process counted its command and timed its fsync; the
    // projector says how far behind each log it is; neither serves
    // anything but /metrics there.
    let scraped = request(&ops_metrics, "GET", "/metrics", &[], None).await.expect("http");
    assert_eq!(scraped.status, 200);
    let text = String::from_utf8_lossy(&scraped.body).into_owned();
    assert!(
        text.contains(r#"concord_commands_total{service="operations",command="open",result="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"concord_log_fsync_duration_seconds_count{log="operations"}"#),
        "{text}"
    );
    let scraped = request(&projector_metrics, "GET", "/metrics", &[], None)
        .await
        .expect("http");
    let text = String::from_utf8_lossy(&scraped.body).into_owned();
    assert!(
        text.contains(r#"concord_consumer_lag_events{consumer="projector",source="operations"} 0"#),
        "{text}"
    );
    let elsewhere = request(&ops_metrics, "GET", "/v1/operations", &[], None)
        .await
        .expect("http");
    assert_eq!(elsewhere.status, 404);
    for child in [
        &mut gw,
        &mut audit,
        &mut projector,
        &mut deployments,
        &mut crisis,
        &mut intel,
        &mut ops,
    ] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(child.wait().expect("wait").success());
    }
}

/// The Monaco case: fingerprints at a scene (lead by MC), identity found,
/// links to crimes in RS (lead by RS, restricted to MC and FR), wanted in
/// several countries → red notice requested by MC, approved by a GS
/// reviewer, arrest reported by DE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monaco_case_over_http() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    for (role, cc) in [("liaison", "MC"), ("liaison", "RS"), ("coordinator", "MC")] {
        let name = format!("{cc}_{}", role.to_ascii_uppercase());
        let tok = token_for(&data, role, cc);
        sys.tokens.insert(name, tok);
    }

    let op = ok(
        &sys.post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Rocher", "objective": "identify and arrest the burglar", "lead_country": "FR", "countries": ["MC", "RS", "DE"]}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("op")
        .to_owned();

    // Fingerprints at a scene in Monaco.
    let lead = ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "MC_LIAISON",
            json!({"summary": "fingerprints at the jeweller's", "details": "latent prints on the display case",
                   "subject": {"kind": "object", "description": "latent fingerprints"},
                   "grading": {"reliability": "A", "accuracy": 1}}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("lead")
        .to_owned();
    // Identity found.
    ok(
        &sys.post(
            &format!("/v1/leads/{lead}/amend"),
            "MC_LIAISON",
            json!({"reason": "AFIS match", "subject": {"kind": "person", "description": "matched by AFIS", "name": "Ivan Petrov", "nationality": "RS"}}),
        )
        .await,
        200,
    );
    // Only MC amends its own lead.
    problem(
        &sys.post(
            &format!("/v1/leads/{lead}/amend"),
            "DE_LIAISON",
            json!({"reason": "x", "summary": "y"}),
        )
        .await,
        403,
        "forbidden",
    );
    // Every participant sees an unrestricted lead; a stranger does not.
    ok(&sys.get(&format!("/v1/leads/{lead}"), "DE_LIAISON").await, 200);
    problem(
        &sys.get(&format!("/v1/leads/{lead}"), "US_LIAISON").await,
        404,
        "not_found",
    );

    // Links to crimes in RS, restricted to MC and FR.
    let rs_lead = ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "RS_LIAISON",
            json!({"summary": "same prints in three Belgrade burglaries", "restricted_to": ["MC", "FR"]}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("lead")
        .to_owned();
    for who in ["MC_LIAISON", "FR_COORDINATOR", "GS_AUDITOR", "RS_LIAISON"] {
        ok(&sys.get(&format!("/v1/leads/{rs_lead}"), who).await, 200);
    }
    problem(
        &sys.get(&format!("/v1/leads/{rs_lead}"), "DE_LIAISON").await,
        404,
        "not_found",
    );
    // Restricted to a country outside the operation: refused, nothing posted.
    problem(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "RS_LIAISON",
            json!({"summary": "s", "restricted_to": ["US"]}),
        )
        .await,
        422,
        "rule_violated",
    );
    // A country outside the operation cannot post to it.
    problem(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "US_LIAISON",
            json!({"summary": "s"}),
        )
        .await,
        404,
        "not_found",
    );

    // Wanted: a red notice needs an offence and a warrant.
    let subject = json!({"kind": "person", "description": "burglar", "name": "Ivan Petrov", "nationality": "RS"});
    problem(
        &sys.post("/v1/notices", "MC_LIAISON", json!({"color": "red", "subject": subject, "reason": "wanted in five countries", "offence": "aggravated burglary"})).await,
        422,
        "rule_violated",
    );
    problem(
        &sys.post(
            "/v1/notices",
            "MC_LIAISON",
            json!({"color": "crimson", "subject": subject, "reason": "r"}),
        )
        .await,
        400,
        "invalid",
    );
    let notice = ok(
        &sys.post(
            "/v1/notices",
            "MC_LIAISON",
            json!({"color": "red", "subject": subject, "reason": "wanted in five countries for aggravated burglary",
                   "offence": "aggravated burglary", "warrant": "MC-2026-0457", "operation_id": op}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("notice")
        .to_owned();
    let path = format!("/v1/notices/{notice}");
    // Not published yet: the requester and reviewers see it, others do not.
    ok(&sys.get(&path, "MC_LIAISON").await, 200);
    ok(&sys.get(&path, "GS_REVIEWER").await, 200);
    problem(&sys.get(&path, "DE_LIAISON").await, 404, "not_found");

    let grounds = json!({"not_political": true, "not_military": true, "not_religious": true, "not_racial": true, "facts_support_purpose": true});
    problem(
        &sys.post(
            &format!("{path}/review"),
            "MC_LIAISON",
            json!({"decision": "approve", "reason": "r", "grounds": grounds}),
        )
        .await,
        403,
        "forbidden",
    );
    ok(
        &sys.post(
            &format!("{path}/review"),
            "GS_REVIEWER",
            json!({"decision": "approve", "reason": "ordinary crime, facts support a red notice", "grounds": grounds}),
        )
        .await,
        200,
    );
    problem(
        &sys.post(
            &format!("{path}/review"),
            "GS_REVIEWER",
            json!({"decision": "reject", "reason": "again", "grounds": grounds}),
        )
        .await,
        422,
        "rule_violated",
    );
    // Published: every country sees it.
    for who in ["DE_LIAISON", "US_LIAISON", "PL_LIAISON"] {
        let v = ok(&sys.get(&path, who).await, 200);
        assert_eq!(v["status"], "published", "{v}");
    }

    // Arrest reported by DE, linked to the notice and the lead.
    let arrest = ok(
        &sys.post(
            &format!("/v1/operations/{op}/arrests"),
            "DE_LIAISON",
            json!({"person": {"name": "Ivan Petrov", "nationality": "RS"}, "location_country": "DE", "notice_id": notice, "lead_id": lead}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("arrest")
        .to_owned();
    ok(&sys.get(&format!("/v1/arrests/{arrest}"), "MC_LIAISON").await, 200);
    problem(
        &sys.get(&format!("/v1/arrests/{arrest}"), "US_LIAISON").await,
        404,
        "not_found",
    );

    // The operation closes: no new leads.
    ok(
        &sys.post(
            &format!("/v1/operations/{op}/close"),
            "FR_COORDINATOR",
            json!({"outcome": "arrested in Munich"}),
        )
        .await,
        200,
    );
    problem(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "MC_LIAISON",
            json!({"summary": "late"}),
        )
        .await,
        422,
        "rule_violated",
    );
}

/// A bombing in ES: ES declares a crisis and asks for DVI and investigation
/// help; FR and DE contribute an incident response team; ES approves; the
/// team arrives; sitreps; the crisis is closed; stand-down is requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bombing_in_spain_over_http() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    let fr = token_for(&data, "liaison", "FR");
    sys.tokens.insert("FR_LIAISON".into(), fr);

    let crisis = ok(
        &sys.post(
            "/v1/crises",
            "ES_LIAISON",
            json!({"kind": "terrorist_attack", "title": "Bombing at Atocha", "country": "ES", "severity": 4}),
        )
        .await,
        201,
    )["id"]
        .as_str()
        .expect("crisis")
        .to_owned();
    let cpath = format!("/v1/crises/{crisis}");
    // Only the affected country declares for itself.
    problem(
        &sys.post(
            "/v1/crises",
            "DE_LIAISON",
            json!({"kind": "other", "title": "t", "country": "ES", "severity": 1}),
        )
        .await,
        403,
        "forbidden",
    );
    ok(
        &sys.post(
            &format!("{cpath}/assistance-requests"),
            "ES_LIAISON",
            json!({"needs": ["dvi", "investigation"], "details": "many victims"}),
        )
        .await,
        201,
    );

    let request = json!({"team": "irt", "host_country": "ES", "crisis_id": crisis, "reason": "post-blast investigation",
        "members": [{"name": "Anne Martin", "role": "team lead", "country": "FR"}, {"name": "Jens Weber", "role": "explosives", "country": "DE"}]});
    let dep = ok(&sys.post("/v1/deployments", "FR_LIAISON", request).await, 201)["id"]
        .as_str()
        .expect("deployment")
        .to_owned();
    let dpath = format!("/v1/deployments/{dep}");
    // No team lands without the host's consent: DE may not approve, IT
    // may not even see it.
    problem(
        &sys.call("POST", &format!("{dpath}/approve"), Some("DE_LIAISON"), &[], None)
            .await,
        403,
        "forbidden",
    );
    problem(
        &sys.call("POST", &format!("{dpath}/approve"), Some("IT_LIAISON"), &[], None)
            .await,
        404,
        "not_found",
    );
    problem(
        &sys.call("POST", &format!("{dpath}/arrive"), Some("DE_LIAISON"), &[], None)
            .await,
        422,
        "rule_violated",
    );
    ok(
        &sys.call("POST", &format!("{dpath}/approve"), Some("ES_LIAISON"), &[], None)
            .await,
        200,
    );
    ok(
        &sys.call("POST", &format!("{dpath}/arrive"), Some("DE_LIAISON"), &[], None)
            .await,
        200,
    );

    // Sitreps: the affected country and a country with a team there.
    ok(
        &sys.post(
            &format!("{cpath}/sitreps"),
            "ES_LIAISON",
            json!({"text": "191 dead, 1,800 injured", "casualties": {"dead": 191, "injured": 1800}}),
        )
        .await,
        201,
    );
    ok(
        &sys.post(
            &format!("{cpath}/sitreps"),
            "DE_LIAISON",
            json!({"text": "team on site, evidence secured"}),
        )
        .await,
        201,
    );
    problem(
        &sys.post(&format!("{cpath}/sitreps"), "IT_LIAISON", json!({"text": "?"}))
            .await,
        403,
        "forbidden",
    );
    // Every country sees the crisis.
    let c = ok(&sys.get(&cpath, "US_LIAISON").await, 200);
    assert_eq!(c["status"], "active", "{c}");

    ok(
        &sys.post(
            &format!("{cpath}/close"),
            "ES_LIAISON",
            json!({"summary": "investigation handed to the courts"}),
        )
        .await,
        200,
    );
    problem(
        &sys.post(&format!("{cpath}/sitreps"), "ES_LIAISON", json!({"text": "late"}))
            .await,
        422,
        "rule_violated",
    );

    // The deployments service reacts to crisis.closed on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = ok(&sys.get(&dpath, "FR_LIAISON").await, 200);
        if d["stand_down"].is_object() {
            assert_eq!(d["stand_down"]["crisis_id"], crisis.as_str(), "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "no stand-down requested: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    problem(&sys.get(&dpath, "IT_LIAISON").await, 404, "not_found");
}
