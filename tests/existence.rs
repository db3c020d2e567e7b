//! Black-box: existence does not leak, whatever the headers. For every
//! command on something that exists, an id the caller's country may not
//! see and an id that exists nowhere answer the same 404 — with and without
//! `If-Match` (a `conflict` naming the version would tell them apart).

mod common;

use common::{free_addr, ok, token_for, up};
use serde_json::{Value, json};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_invisible_answer_the_same_whatever_the_headers() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    for (name, role, country) in [("FR_LIAISON", "liaison", "FR"), ("IT_COORDINATOR", "coordinator", "IT")] {
        sys.tokens.insert(name.into(), token_for(&data, role, country));
    }
    // What IT may not see: an FR operation with DE, its task, DE's lead
    // restricted to FR, DE's notice request, a deployment to ES.
    let op = id(&ok(
        &sys.post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await,
        201,
    ));
    let task = id(&ok(
        &sys.post(
            &format!("/v1/operations/{op}/tasks"),
            "FR_COORDINATOR",
            json!({"assignee_country": "DE", "title": "t", "details": "d"}),
        )
        .await,
        201,
    ));
    let lead = id(&ok(
        &sys.post(
            &format!("/v1/operations/{op}/leads"),
            "DE_LIAISON",
            json!({"summary": "s", "restricted_to": ["FR"]}),
        )
        .await,
        201,
    ));
    let notice = id(&ok(
        &sys.post(
            "/v1/notices",
            "DE_LIAISON",
            json!({"color": "blue", "subject": {"kind": "person", "description": "a witness"}, "reason": "locate"}),
        )
        .await,
        201,
    ));
    let crisis = id(&ok(
        &sys.post(
            "/v1/crises",
            "ES_LIAISON",
            json!({"kind": "other", "title": "t", "country": "ES", "severity": 2}),
        )
        .await,
        201,
    ));
    let deployment = id(&ok(
        &sys.post(
            "/v1/deployments",
            "FR_LIAISON",
            json!({"team": "irt", "host_country": "ES", "crisis_id": crisis, "reason": "r",
                   "members": [{"name": "A", "role": "lead", "country": "FR"}]}),
        )
        .await,
        201,
    ));
    let nobody = "019ab0c4-5e00-7000-8000-00000000dead";

    // (method, path with {} for the id, id seen by nobody but others, token, body)
    let task_path = format!("/v1/operations/{{}}/tasks/{task}/status");
    let routes: Vec<(&str, String, &str, &str, Value)> = vec![
        (
            "POST",
            "/v1/operations/{}/participants".into(),
            &op,
            "IT_COORDINATOR",
            json!({"country": "PL"}),
        ),
        (
            "DELETE",
            "/v1/operations/{}/participants/DE".into(),
            &op,
            "IT_COORDINATOR",
            Value::Null,
        ),
        (
            "POST",
            "/v1/operations/{}/tasks".into(),
            &op,
            "IT_COORDINATOR",
            json!({"assignee_country": "DE", "title": "t", "details": "d"}),
        ),
        ("POST", task_path, &op, "IT_LIAISON", json!({"status": "accepted"})),
        (
            "POST",
            "/v1/operations/{}/close".into(),
            &op,
            "IT_COORDINATOR",
            json!({"outcome": "x"}),
        ),
        (
            "POST",
            "/v1/operations/{}/leads".into(),
            &op,
            "IT_LIAISON",
            json!({"summary": "s"}),
        ),
        (
            "POST",
            "/v1/operations/{}/arrests".into(),
            &op,
            "IT_LIAISON",
            json!({"person": {"name": "n"}, "location_country": "IT"}),
        ),
        (
            "POST",
            "/v1/leads/{}/amend".into(),
            &lead,
            "IT_LIAISON",
            json!({"reason": "r", "summary": "s2"}),
        ),
        (
            "POST",
            "/v1/leads/{}/retract".into(),
            &lead,
            "IT_LIAISON",
            json!({"reason": "r"}),
        ),
        (
            "POST",
            "/v1/notices/{}/cancel".into(),
            &notice,
            "IT_LIAISON",
            json!({"reason": "r"}),
        ),
        (
            "POST",
            "/v1/deployments/{}/approve".into(),
            &deployment,
            "IT_LIAISON",
            Value::Null,
        ),
        (
            "POST",
            "/v1/deployments/{}/decline".into(),
            &deployment,
            "IT_LIAISON",
            json!({"reason": "r"}),
        ),
        (
            "POST",
            "/v1/deployments/{}/arrive".into(),
            &deployment,
            "IT_LIAISON",
            Value::Null,
        ),
        (
            "POST",
            "/v1/deployments/{}/end".into(),
            &deployment,
            "IT_LIAISON",
            json!({"report": "r"}),
        ),
        (
            "POST",
            "/v1/deployments/{}/recall".into(),
            &deployment,
            "IT_LIAISON",
            json!({"reason": "r"}),
        ),
    ];
    let mut leaks = Vec::new();
    for (method, path, hidden, who, body) in &routes {
        let mut answers = Vec::new();
        for target in [*hidden, nobody] {
            for if_match in [None, Some("\"99\""), Some("\"1\"")] {
                let headers: Vec<(&str, &str)> = if_match.map(|v| ("If-Match", v)).into_iter().collect();
                let body = (!body.is_null()).then(|| body.clone());
                let r = sys
                    .call(method, &path.replace("{}", target), Some(who), &headers, body)
                    .await;
                let mut problem = r.json();
                // Where the problem happened differs by the id, nothing else may.
                if let Some(p) = problem.as_object_mut() {
                    p.remove("instance");
                }
                answers.push((r.status, problem, target == nobody, if_match));
            }
        }
        let (status, first, ..) = answers[0].clone();
        if status != 404 {
            leaks.push(format!("{method} {path}: {status} {first}"));
        }
        for (status, problem, unknown, if_match) in &answers[1..] {
            if (*status, problem) != (404, &first) {
                leaks.push(format!(
                    "{method} {path} ({}, If-Match {if_match:?}): {status} {problem}, not the 404 {first}",
                    if *unknown { "unknown" } else { "not visible" }
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "existence leaks:\n{}", leaks.join("\n"));
}
