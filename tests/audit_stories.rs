//! Black-box: the two cases the audit is judged on, run through HTTP
//! against `concord up`, then replayed by an auditor.
//!
//! Monaco: a burglary ring; a lead restricted to MC and FR, a red notice
//! reviewed and published, an arrest by DE, then DE removed from the
//! operation. The timeline (order, actors), the state at three instants,
//! what DE knew before and after its removal, and who read the lead.
//!
//! Spain: a bombing; a crisis, a team requested, approved and arrived,
//! the crisis closed and the team's stand-down requested by the
//! deployments service itself. The crisis's timeline with its deployment,
//! and its state at three instants.

mod common;

use std::time::{Duration, Instant};

use common::{free_addr, id, instant, ok, problem, token_for, up};
use serde_json::{Value, json};

fn enc(t: &str) -> String {
    t.replace(':', "%3A").replace('+', "%2B")
}

fn types_and_countries(timeline: &Value) -> Vec<(String, String)> {
    timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["actor"]["country"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn streams(knowledge: &Value) -> Vec<String> {
    knowledge["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["stream"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monaco_case_replayed() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    for (name, role, cc) in [("MC_LIAISON", "liaison", "MC"), ("FR_LIAISON", "liaison", "FR")] {
        sys.tokens.insert(name.into(), token_for(&data, role, cc));
    }
    let mut seen = Vec::new();
    let mut step = |r: &concord_testkit::http::Response, status: u16| -> Value {
        let v = ok(r, status);
        seen.push(r.header("concord-position").expect("Concord-Position").to_owned());
        v
    };
    let op = id(&step(
        &sys.post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Rocher", "objective": "the jewellery burglaries", "lead_country": "FR", "countries": ["MC", "DE"]}),
        )
        .await,
        201,
    ));
    let opened = instant().await;
    let lead = id(&step(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "MC_LIAISON",
            json!({"summary": "fingerprints at the jeweller's", "restricted_to": ["MC", "FR"]}),
        )
        .await,
        201,
    ));
    let subject = json!({"kind": "person", "description": "burglar", "name": "Ivan Petrov", "nationality": "RS"});
    let notice = id(&step(
        &sys.post(
            "/v1/notices",
            "MC_LIAISON",
            json!({"color": "red", "subject": subject, "reason": "wanted for aggravated burglary",
                   "offence": "aggravated burglary", "warrant": "MC-2026-0457", "operation_id": op}),
        )
        .await,
        201,
    ));
    let grounds = json!({"not_political": true, "not_military": true, "not_religious": true, "not_racial": true, "facts_support_purpose": true});
    step(
        &sys.post(
            &format!("/v1/notices/{notice}/review"),
            "GS_REVIEWER",
            json!({"decision": "approve", "reason": "ordinary crime", "grounds": grounds}),
        )
        .await,
        200,
    );
    let arrest = id(&step(
        &sys.post(
            &format!("/v1/operations/{op}/arrests"),
            "DE_LIAISON",
            json!({"person": {"name": "Ivan Petrov", "nationality": "RS"}, "location_country": "DE", "notice_id": notice}),
        )
        .await,
        201,
    ));
    let arrested = instant().await;
    step(
        &sys.call(
            "DELETE",
            &format!("/v1/operations/{op}/participants/DE"),
            Some("FR_COORDINATOR"),
            &[],
            None,
        )
        .await,
        200,
    );
    let removed = instant().await;
    let seen = seen.join(", ");

    // The lead read by its two countries, and tried by DE.
    for who in ["MC_LIAISON", "FR_LIAISON"] {
        let r = sys
            .call(
                "GET",
                &format!("/v1/leads/{lead}"),
                Some(who),
                &[("Concord-Seen", &seen)],
                None,
            )
            .await;
        ok(&r, 200);
    }
    problem(
        &sys.get(&format!("/v1/leads/{lead}"), "DE_LIAISON").await,
        404,
        "not_found",
    );

    let get = |path: String| {
        let sys = &sys;
        let seen = seen.clone();
        async move {
            ok(
                &sys.call("GET", &path, Some("GS_AUDITOR"), &[("Concord-Seen", &seen)], None)
                    .await,
                200,
            )
        }
    };

    // Who did what, in causal order across services.
    let timeline = get(format!("/v1/audit/operations/{op}/timeline")).await;
    let got = types_and_countries(&timeline);
    let want: Vec<(String, String)> = [
        ("operation.opened", "FR"),
        ("lead.posted", "MC"),
        ("notice.requested", "MC"),
        ("notice.published", "GS"),
        ("arrest.reported", "DE"),
        ("participant.removed", "FR"),
    ]
    .iter()
    .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(got, want, "{timeline}");
    let linked: Vec<&str> = timeline["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["stream"].as_str().unwrap_or(""))
        .collect();
    for (stream, what) in [
        (format!("lead-{lead}"), "the lead"),
        (format!("notice-{notice}"), "the notice"),
        (format!("arrest-{arrest}"), "the arrest"),
    ] {
        assert!(
            linked.contains(&stream.as_str()),
            "{what} hangs off the operation: {linked:?}"
        );
    }

    // The state at three instants.
    let state = |t: String| get(format!("/v1/audit/operations/{op}/state?at={}", enc(&t)));
    let s1 = state(opened.clone()).await;
    let s2 = state(arrested.clone()).await;
    let s3 = state(removed.clone()).await;
    assert!(s1["linked"].as_array().expect("linked").is_empty(), "{s1}");
    assert_eq!(
        s2["linked"].as_array().map(Vec::len),
        Some(3),
        "lead, notice, arrest: {s2}"
    );
    let participants = |s: &Value| s["operation"]["view"]["participants"].to_string();
    assert!(participants(&s2).contains("DE"), "{s2}");
    assert!(!participants(&s3).contains("DE"), "{s3}");

    // What DE knew: the operation and the published notice while it took
    // part, never the restricted lead; after its removal, not the
    // operation (the notice stays published for every country).
    let knew = |t: String| get(format!("/v1/audit/countries/DE/knowledge?at={}", enc(&t)));
    let before = streams(&knew(arrested.clone()).await);
    let after = streams(&knew(removed.clone()).await);
    let operation = format!("operation-{op}");
    let lead_stream = format!("lead-{lead}");
    let notice_stream = format!("notice-{notice}");
    assert!(
        before.contains(&operation) && before.contains(&notice_stream),
        "{before:?}"
    );
    assert!(!before.contains(&lead_stream), "the lead is MC's and FR's: {before:?}");
    assert!(!after.contains(&operation), "{after:?}");
    assert!(after.contains(&notice_stream), "{after:?}");
    let fr = streams(&get(format!("/v1/audit/countries/FR/knowledge?at={}", enc(&removed))).await);
    assert!(fr.contains(&lead_stream), "{fr:?}");
    let sight = get(format!("/v1/audit/countries/DE/knowledge?item={op}")).await;
    let periods = sight["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 1, "{sight}");
    assert_eq!(periods[0]["until"]["type"], "participant.removed", "{sight}");
    let lead_sight = get(format!("/v1/audit/countries/MC/knowledge?item={lead}")).await;
    assert!(
        lead_sight["countries"].get("DE").is_none(),
        "DE never saw the lead: {lead_sight}"
    );
    assert_eq!(
        lead_sight["countries"]["FR"][0]["from"]["type"], "lead.posted",
        "{lead_sight}"
    );

    // Who read the lead.
    let reads = get(format!("/v1/audit/access?item={lead}")).await;
    let readers: Vec<(&str, u64)> = reads["reads"]
        .as_array()
        .expect("reads")
        .iter()
        .filter(|r| r["actor"]["role"] != "auditor")
        .map(|r| {
            (
                r["actor"]["country"].as_str().unwrap_or(""),
                r["data"]["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(readers, [("MC", 200), ("FR", 200), ("DE", 404)], "{reads}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spain_case_replayed() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    sys.tokens
        .insert("FR_LIAISON".into(), token_for(&data, "liaison", "FR"));
    let crisis = id(&ok(
        &sys.post(
            "/v1/crises",
            "ES_LIAISON",
            json!({"kind": "terrorist_attack", "title": "Bombing at Atocha", "country": "ES", "severity": 4}),
        )
        .await,
        201,
    ));
    let declared = instant().await;
    let dep = id(&ok(
        &sys.post(
            "/v1/deployments",
            "FR_LIAISON",
            json!({"team": "irt", "host_country": "ES", "crisis_id": crisis, "reason": "post-blast investigation",
                   "members": [{"name": "Anne Martin", "role": "team lead", "country": "FR"}]}),
        )
        .await,
        201,
    ));
    let dpath = format!("/v1/deployments/{dep}");
    ok(
        &sys.call("POST", &format!("{dpath}/approve"), Some("ES_LIAISON"), &[], None)
            .await,
        200,
    );
    ok(
        &sys.call("POST", &format!("{dpath}/arrive"), Some("FR_LIAISON"), &[], None)
            .await,
        200,
    );
    let arrived = instant().await;
    ok(
        &sys.post(
            &format!("/v1/crises/{crisis}/close"),
            "ES_LIAISON",
            json!({"summary": "investigation handed to the courts"}),
        )
        .await,
        200,
    );
    // The deployments service answers the closing on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let d = ok(&sys.get(&dpath, "FR_LIAISON").await, 200);
        if d["stand_down"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "no stand-down: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed = instant().await;

    let get = |path: String| {
        let sys = &sys;
        async move { sys.get(&path, "GS_AUDITOR").await }
    };
    // The crisis's timeline holds the deployment linked to it, in causal
    // order: the stand-down after the closing that caused it.
    let r = get(format!("/v1/audit/operations/{crisis}/timeline")).await;
    let timeline = ok(&r, 200);
    let got = types_and_countries(&timeline);
    let want: Vec<(String, String)> = [
        ("crisis.declared", "ES"),
        ("deployment.requested", "FR"),
        ("deployment.approved", "ES"),
        ("deployment.arrived", "FR"),
        ("crisis.closed", "ES"),
        ("deployment.stand_down_requested", "ES"),
    ]
    .iter()
    .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(
        got.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        want.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        "{timeline}"
    );
    assert_eq!(got[..5], want[..5], "{timeline}");

    // The state at three instants: the team asked for and not there yet,
    // then there, then the crisis closed and the team told to stand down.
    let state = |t: &str| get(format!("/v1/audit/operations/{crisis}/state?at={}", enc(t)));
    let s1 = ok(&state(&declared).await, 200);
    let s2 = ok(&state(&arrived).await, 200);
    let s3 = ok(&state(&closed).await, 200);
    assert!(s1["linked"].as_array().expect("linked").is_empty(), "{s1}");
    assert_eq!(s2["linked"][0]["view"]["status"], "arrived", "{s2}");
    assert_eq!(s2["root"]["view"]["status"], "active", "{s2}");
    assert_eq!(s3["root"]["view"]["status"], "closed", "{s3}");
    assert!(s3["linked"][0]["view"]["stand_down"].is_object(), "{s3}");
}
