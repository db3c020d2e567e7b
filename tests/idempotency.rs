//! Black-box: on `concord up`, an `Idempotency-Key` names one request. A
//! retry of the same request answers the first result and appends nothing;
//! the key on another body, another route or in another role of the same
//! person is refused with 422 and changes nothing.

mod common;

use common::*;
use concord_testkit::http::Response;
use serde_json::{Value, json};

fn reused(r: &Response, first_id: &str) {
    problem(r, 422, "rule_violated");
    let p = r.json();
    assert_eq!(
        p["type"], "https://concord.example/problems/idempotency_key_reused",
        "{p}"
    );
    assert_eq!(p["title"], "Idempotency-Key is already used", "{p}");
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains(first_id) && !text.contains("version"), "{text}");
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_request() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    // One FR officer holding two roles: the same sub and country, so the
    // same key gives both tokens the same command id.
    sys.tokens
        .insert("LIAISON".into(), token_as(&data, "liaison", "FR", "fr-officer"));
    sys.tokens
        .insert("REVIEWER".into(), token_as(&data, "reviewer", "FR", "fr-officer"));
    let key = |k| [("Idempotency-Key", k)];

    let notice = json!({"color": "blue", "subject": {"kind": "person", "description": "a witness", "name": "Jana Novak"}, "reason": "locate a witness"});
    let first = sys
        .call(
            "POST",
            "/v1/notices",
            Some("LIAISON"),
            &key("notice-1"),
            Some(notice.clone()),
        )
        .await;
    let first_reply = ok(&first, 201);
    let a = id_of(&first_reply);
    assert_eq!(
        uuid::Uuid::parse_str(&a).expect("uuid").get_version_num(),
        5,
        "minted from the key: {a}"
    );
    let again = sys
        .call(
            "POST",
            "/v1/notices",
            Some("LIAISON"),
            &key("notice-1"),
            Some(notice.clone()),
        )
        .await;
    assert_eq!(ok(&again, 201), first_reply);
    assert_eq!(again.header("location"), first.header("location"));
    // The draft's form of a key, a structured-field String, names one
    // request the same way; what is not one String is refused.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = sys
            .call(
                "POST",
                "/v1/notices",
                Some("LIAISON"),
                &key("\"notice-q\""),
                Some(notice.clone()),
            )
            .await;
        answers.push(ok(&r, 201));
    }
    let (q1, q2) = (&answers[0], &answers[1]);
    assert_eq!(q1, q2, "a retry under a quoted key answers the first result");
    assert_ne!(id_of(q1), a, "another key, another request");
    for bad in ["\"notice-1\";p=1", "\"notice-1", "\"\""] {
        let r = sys
            .call("POST", "/v1/notices", Some("LIAISON"), &key(bad), Some(notice.clone()))
            .await;
        problem(&r, 400, "invalid");
        assert!(
            r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Idempotency-Key")),
            "{bad}"
        );
    }
    let path = format!("/v1/notices/{a}");
    let view = ok(&sys.get(&path, "LIAISON").await, 200);
    assert_eq!(
        (view["version"].clone(), view["status"].clone()),
        (json!(1), json!("requested"))
    );

    // Another body, another route, another role: each is another request.
    let mut other = notice.clone();
    other["reason"] = json!("locate another witness");
    reused(
        &sys.call("POST", "/v1/notices", Some("LIAISON"), &key("notice-1"), Some(other))
            .await,
        &a,
    );
    reused(
        &sys.call(
            "POST",
            &format!("{path}/cancel"),
            Some("REVIEWER"),
            &key("notice-1"),
            Some(json!({"reason": "duplicate"})),
        )
        .await,
        &a,
    );
    let view = ok(&sys.get(&path, "LIAISON").await, 200);
    assert_eq!(
        (view["version"].clone(), view["status"].clone()),
        (json!(1), json!("requested")),
        "nothing cancelled: {view}"
    );

    let cancel = json!({"reason": "located"});
    let cancelled = ok(
        &sys.call(
            "POST",
            &format!("{path}/cancel"),
            Some("LIAISON"),
            &key("cancel-1"),
            Some(cancel.clone()),
        )
        .await,
        200,
    );
    assert_eq!(cancelled["version"], 2, "{cancelled}");
    reused(
        &sys.call(
            "POST",
            &format!("{path}/cancel"),
            Some("REVIEWER"),
            &key("cancel-1"),
            Some(cancel.clone()),
        )
        .await,
        &a,
    );
    assert_eq!(
        ok(
            &sys.call(
                "POST",
                &format!("{path}/cancel"),
                Some("LIAISON"),
                &key("cancel-1"),
                Some(cancel)
            )
            .await,
            200
        ),
        cancelled,
        "the liaison's retry is its first answer"
    );
    let view = ok(&sys.get(&path, "LIAISON").await, 200);
    assert_eq!(view["version"], 2, "{view}");
    assert_eq!(view["cancellation"]["cancelled_by"], "fr-officer", "{view}");
}
