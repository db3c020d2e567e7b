//! The gateway over real HTTP, in front of the operations service over a
//! real nats-server: the operation story, authentication, roles, bad
//! input, idempotency, If-Match, trace context, readiness and 503s.

use std::time::Duration;

use concord_core::auth::{Claims, sign};
use concord_core::{CountryCode, Role, Service};
use concord_gateway::Config;
use concord_testkit::NatsServer;
use concord_testkit::http::{Response, request};
use futures::StreamExt;
use serde_json::{Value, json};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

struct World {
    nats: NatsServer,
    _dir: tempfile::TempDir,
    addr: String,
}

async fn gateway(nats: &NatsServer, timeout: Duration) -> String {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut config = Config::new(SECRET.to_vec(), vec![Service::Operations]);
    config.request_timeout = timeout;
    tokio::spawn(concord_gateway::serve(listener, client, config, std::future::pending()));
    addr
}

async fn world() -> World {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let cfg = concord_bus::service::Config::new(dir.path().join("operations"));
    let svc = concord_operations::bind(&cfg, client).await.expect("bind");
    tokio::spawn(svc.run(std::future::pending()));
    let addr = gateway(&nats, Duration::from_secs(5)).await;
    World { nats, _dir: dir, addr }
}

fn token_with(role: Role, country: &str, exp: i64, secret: &[u8]) -> String {
    let claims = Claims {
        sub: format!("{country}-{}", role.as_str()),
        role,
        country: CountryCode::parse(country).expect("country"),
        exp,
        iat: None,
        nbf: None,
        iss: None,
        aud: None,
    };
    sign(&claims, secret).expect("sign")
}

fn token(role: Role, country: &str) -> String {
    token_with(role, country, chrono::Utc::now().timestamp() + 3600, SECRET)
}

impl World {
    async fn send(
        &self,
        method: &str,
        path: &str,
        tok: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        let auth = tok.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let bytes = body.map(|b| serde_json::to_vec(&b).expect("json"));
        if bytes.is_some() && !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            headers.push(("Content-Type", "application/json"));
        }
        request(&self.addr, method, path, &headers, bytes.as_deref())
            .await
            .expect("http")
    }

    async fn post(&self, path: &str, tok: &str, body: Value) -> Response {
        self.send("POST", path, Some(tok), &[], Some(body)).await
    }

    async fn get(&self, path: &str, tok: &str) -> Response {
        self.send("GET", path, Some(tok), &[], None).await
    }

    async fn open(&self) -> String {
        let r = self
            .post(
                "/v1/operations",
                &token(Role::Coordinator, "FR"),
                json!({"title": "Op Lys", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        r.json()["id"].as_str().expect("id").to_owned()
    }
}

fn problem(r: &Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let p = r.json();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status);
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    p
}

#[tokio::test]
async fn the_operation_story_over_http() {
    let w = world().await;
    let fr = token(Role::Coordinator, "FR");
    let de = token(Role::Liaison, "DE");
    let es = token(Role::Liaison, "ES");

    let r = w
        .post(
            "/v1/operations",
            &fr,
            json!({"title": "Op Lys", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let op = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(r.header("location"), Some(format!("/v1/operations/{op}").as_str()));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.json()["version"], 1);

    let r = w
        .post(
            &format!("/v1/operations/{op}/tasks"),
            &fr,
            json!({"assignee_country": "DE", "title": "trace the boat", "details": "port of Hamburg"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let task = r.json()["id"].as_str().expect("task id").to_owned();
    assert_ne!(task, op);

    // ES may not move DE's task; DE may.
    let status_path = format!("/v1/operations/{op}/tasks/{task}/status");
    problem(
        &w.post(&status_path, &es, json!({"status": "accepted"})).await,
        403,
        "forbidden",
    );
    let r = w.post(&status_path, &de, json!({"status": "accepted"})).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["id"], task.as_str());
    // accepted → done is not a transition; in_progress first.
    problem(
        &w.post(&status_path, &de, json!({"status": "accepted"})).await,
        422,
        "rule_violated",
    );
    assert_eq!(
        w.post(&status_path, &de, json!({"status": "in_progress"})).await.status,
        200
    );
    let r = w
        .post(&status_path, &de, json!({"status": "done", "note": "boat found"}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());

    let r = w
        .post(
            &format!("/v1/operations/{op}/participants"),
            &fr,
            json!({"country": "IT"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());

    // Seen by its lead, its participants and auditors; 404 for the rest.
    let view = w.get(&format!("/v1/operations/{op}"), &de).await;
    assert_eq!(view.status, 200);
    let v = view.json();
    assert_eq!(v["lead_country"], "FR");
    assert_eq!(view.header("etag"), Some(format!("\"{}\"", v["version"]).as_str()));
    assert_eq!(
        w.get(&format!("/v1/operations/{op}"), &token(Role::Liaison, "IT"))
            .await
            .status,
        200
    );
    assert_eq!(
        w.get(&format!("/v1/operations/{op}"), &token(Role::Auditor, "GS"))
            .await
            .status,
        200
    );
    let hidden = w
        .get(&format!("/v1/operations/{op}"), &token(Role::Liaison, "US"))
        .await;
    let unknown = w
        .get(
            &format!("/v1/operations/{}", uuid::Uuid::now_v7()),
            &token(Role::Liaison, "US"),
        )
        .await;
    problem(&hidden, 404, "not_found");
    problem(&unknown, 404, "not_found");
    assert_eq!(
        hidden.json()["detail"],
        unknown.json()["detail"],
        "existence must not leak"
    );

    let r = w
        .post(
            &format!("/v1/operations/{op}/close"),
            &fr,
            json!({"outcome": "network dismantled"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["id"], op.as_str());
    problem(
        &w.post(
            &format!("/v1/operations/{op}/participants"),
            &fr,
            json!({"country": "PL"}),
        )
        .await,
        422,
        "rule_violated",
    );
}

#[tokio::test]
async fn tokens_are_checked() {
    let w = world().await;
    let body = json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": []});
    let r = w
        .send(
            "POST",
            "/v1/operations",
            None,
            &[("Content-Type", "application/json")],
            Some(body.clone()),
        )
        .await;
    problem(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    let now = chrono::Utc::now().timestamp();
    let expired = token_with(Role::Coordinator, "FR", now - 2 * concord_core::auth::SKEW_SECS, SECRET);
    let wrong_key = token_with(
        Role::Coordinator,
        "FR",
        now + 60,
        b"another-secret-another-secret-another",
    );
    let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64_url(
        format!(
            r#"{{"sub":"x","role":"coordinator","country":"FR","exp":{}}}"#,
            now + 60
        )
        .as_bytes(),
    );
    let none = format!("{header}.{payload}.");
    for (tok, why) in [
        (expired, "expired"),
        (wrong_key, "signature"),
        (none, "none"),
        ("garbage".to_owned(), "malformed"),
    ] {
        let r = w.post("/v1/operations", &tok, body.clone()).await;
        problem(&r, 401, "unauthorized");
        let _ = why;
    }
    let r = w
        .send(
            "POST",
            "/v1/operations",
            None,
            &[("Authorization", "Basic Zm9vOmJhcg==")],
            Some(body.clone()),
        )
        .await;
    problem(&r, 401, "unauthorized");

    // A role the route does not take: 403 before anything reaches NATS.
    let p = problem(
        &w.post("/v1/operations", &token(Role::Liaison, "FR"), body.clone())
            .await,
        403,
        "forbidden",
    );
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("coordinator")), "{p}");
    problem(
        &w.post("/v1/operations", &token(Role::Auditor, "GS"), body).await,
        403,
        "forbidden",
    );
}

fn base64_url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn bad_input_is_refused_precisely_and_changes_nothing() {
    let w = world().await;
    let fr = token(Role::Coordinator, "FR");
    let op = w.open().await;

    // Not JSON, not an object, no JSON content type, too big.
    let raw = request(
        &w.addr,
        "POST",
        "/v1/operations",
        &[
            ("Authorization", &format!("Bearer {fr}")),
            ("Content-Type", "application/json"),
        ],
        Some(b"{not json"),
    )
    .await
    .expect("http");
    problem(&raw, 400, "invalid");
    problem(&w.post("/v1/operations", &fr, json!([1, 2])).await, 400, "invalid");
    // A duplicate key: serde_json would keep the last title, another
    // parser the first; refused, naming it.
    let raw = request(
        &w.addr,
        "POST",
        "/v1/operations",
        &[
            ("Authorization", &format!("Bearer {fr}")),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"title":"Op A","objective":"o","lead_country":"FR","countries":[],"title":"Op B"}"#),
    )
    .await
    .expect("http");
    let p = problem(&raw, 400, "invalid");
    assert_eq!(
        p["detail"],
        r#"body is refused: duplicate key "title" in the object at $ (parsers disagree on which one counts)"#,
        "{p}"
    );
    // An integer a JavaScript or RFC 8785 verifier cannot hold exactly.
    let raw = request(
        &w.addr,
        "POST",
        &format!("/v1/operations/{op}/participants"),
        &[
            ("Authorization", &format!("Bearer {fr}")),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"country":"IT","n":9007199254740993}"#),
    )
    .await
    .expect("http");
    let p = problem(&raw, 400, "invalid");
    assert_eq!(
        p["detail"],
        "body is refused: number 9007199254740993 at $.n is an integer beyond ±(2^53−1) (send it as a string)",
        "{p}"
    );
    let r = w
        .send(
            "POST",
            "/v1/operations",
            Some(&fr),
            &[("Content-Type", "text/plain")],
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 415);
    let big = json!({"title": "x".repeat(70_000), "objective": "o", "lead_country": "FR", "countries": []});
    assert_eq!(w.post("/v1/operations", &fr, big).await.status, 413);

    // Schema: unknown field, missing field, wrong type; the path is named.
    let p = problem(
        &w.post(
            &format!("/v1/operations/{op}/participants"),
            &fr,
            json!({"country": "IT", "extra": 1}),
        )
        .await,
        400,
        "invalid",
    );
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("extra")), "{p}");
    let p = problem(
        &w.post(&format!("/v1/operations/{op}/close"), &fr, json!({})).await,
        400,
        "invalid",
    );
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("outcome")), "{p}");
    assert!(p["details"].is_array(), "{p}");
    // Not a real country (the pattern passes, the list does not).
    problem(
        &w.post(
            &format!("/v1/operations/{op}/participants"),
            &fr,
            json!({"country": "XX"}),
        )
        .await,
        400,
        "invalid",
    );
    // Ids: from the path, never the body; malformed ones named.
    problem(
        &w.post(
            &format!("/v1/operations/{op}/close"),
            &fr,
            json!({"outcome": "o", "operation_id": op}),
        )
        .await,
        400,
        "invalid",
    );
    problem(
        &w.post("/v1/operations/not-a-uuid/close", &fr, json!({"outcome": "o"}))
            .await,
        400,
        "invalid",
    );
    problem(&w.get("/v1/operations/not-a-uuid", &fr).await, 400, "invalid");
    problem(&w.get("/v1/nothing-here", &fr).await, 404, "not_found");

    // Unknown operation: 404, like one the caller may not see.
    problem(
        &w.post(
            &format!("/v1/operations/{}/close", uuid::Uuid::now_v7()),
            &fr,
            json!({"outcome": "o"}),
        )
        .await,
        404,
        "not_found",
    );

    // Nothing of the above changed the operation.
    let v = w.get(&format!("/v1/operations/{op}"), &fr).await;
    assert_eq!(v.json()["version"], 1, "{:?}", v.json());
}

#[tokio::test]
async fn idempotency_key_and_if_match() {
    let w = world().await;
    let fr = token(Role::Coordinator, "FR");
    let body = json!({"title": "Op", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
    let key = [("Idempotency-Key", "open-op-1")];
    let first = w
        .send("POST", "/v1/operations", Some(&fr), &key, Some(body.clone()))
        .await;
    let again = w
        .send("POST", "/v1/operations", Some(&fr), &key, Some(body.clone()))
        .await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201);
    assert_eq!(
        first.json()["id"],
        again.json()["id"],
        "a retry answers the first result"
    );
    assert_eq!(first.json()["events"], again.json()["events"]);
    // Another caller's identical key is its own command.
    let other = w
        .send(
            "POST",
            "/v1/operations",
            Some(&token(Role::Coordinator, "DE")),
            &key,
            Some(json!({"title": "Op", "objective": "o", "lead_country": "DE", "countries": []})),
        )
        .await;
    assert_eq!(other.status, 201);
    assert_ne!(other.json()["id"], first.json()["id"]);

    let op = first.json()["id"].as_str().expect("id").to_owned();
    let task_body = json!({"assignee_country": "DE", "title": "t", "details": "d"});
    let tkey = [("Idempotency-Key", "task-1")];
    let t1 = w
        .send(
            "POST",
            &format!("/v1/operations/{op}/tasks"),
            Some(&fr),
            &tkey,
            Some(task_body.clone()),
        )
        .await;
    let t2 = w
        .send(
            "POST",
            &format!("/v1/operations/{op}/tasks"),
            Some(&fr),
            &tkey,
            Some(task_body.clone()),
        )
        .await;
    assert_eq!(t1.json()["id"], t2.json()["id"]);
    let v = w.get(&format!("/v1/operations/{op}"), &fr).await.json();
    assert_eq!(v["version"], 2, "one task, not two: {v}");

    // If-Match: the current version passes, a stale one is 409.
    let stale = [("If-Match", "\"1\"")];
    let p = problem(
        &w.send(
            "POST",
            &format!("/v1/operations/{op}/participants"),
            Some(&fr),
            &stale,
            Some(json!({"country": "IT"})),
        )
        .await,
        409,
        "conflict",
    );
    assert_eq!(p["details"]["actual"], 2, "{p}");
    let current = [("If-Match", "\"2\"")];
    let r = w
        .send(
            "POST",
            &format!("/v1/operations/{op}/participants"),
            Some(&fr),
            &current,
            Some(json!({"country": "IT"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.header("etag"), Some("\"3\""));
    problem(
        &w.send(
            "POST",
            &format!("/v1/operations/{op}/close"),
            Some(&fr),
            &[("If-Match", "soon")],
            Some(json!({"outcome": "o"})),
        )
        .await,
        400,
        "invalid",
    );
}

/// A `422` for a key used for another request: the problem type of its own,
/// and nothing of the first request (its id, its version).
fn reused(r: &Response, first_id: &str) -> Value {
    let p = problem(r, 422, "rule_violated");
    assert_eq!(
        p["type"], "https://concord.example/problems/idempotency_key_reused",
        "{p}"
    );
    assert_eq!(p["title"], "Idempotency-Key is already used", "{p}");
    assert!(
        p["detail"].as_str().is_some_and(|d| d.contains("another request")),
        "{p}"
    );
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains(first_id) && !text.contains("version"), "{text}");
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("etag"), None);
    p
}

fn version_of(id: &str) -> usize {
    uuid::Uuid::parse_str(id).expect("a uuid").get_version_num()
}

#[tokio::test]
async fn an_idempotency_key_names_one_request() {
    let w = world().await;
    let fr = token(Role::Coordinator, "FR");
    let body = json!({"title": "Op Key", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
    let key = [("Idempotency-Key", "open-key-1")];
    let first = w
        .send("POST", "/v1/operations", Some(&fr), &key, Some(body.clone()))
        .await;
    assert_eq!(first.status, 201, "{:?}", first.json());
    let op = first.json()["id"].as_str().expect("id").to_owned();
    // The minted id comes from the key, so the retry is the same request.
    assert_eq!(version_of(&op), 5, "{op}");
    let again = w
        .send("POST", "/v1/operations", Some(&fr), &key, Some(body.clone()))
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), Some("\"1\""));

    // The key on another body, another route, or by another role of the
    // same sub and country (so the same command id): 422, nothing done.
    let mut other_body = body.clone();
    other_body["title"] = json!("Op Other");
    reused(
        &w.send("POST", "/v1/operations", Some(&fr), &key, Some(other_body))
            .await,
        &op,
    );
    reused(
        &w.send(
            "POST",
            &format!("/v1/operations/{op}/participants"),
            Some(&fr),
            &key,
            Some(json!({"country": "IT"})),
        )
        .await,
        &op,
    );
    let same_person_as_liaison = sign(
        &Claims {
            sub: "FR-coordinator".into(),
            role: Role::Liaison,
            country: CountryCode::parse("FR").expect("FR"),
            exp: chrono::Utc::now().timestamp() + 3600,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
        },
        SECRET,
    )
    .expect("sign");
    reused(
        &w.send(
            "POST",
            &format!("/v1/operations/{op}/tasks/{}/status", uuid::Uuid::now_v7()),
            Some(&same_person_as_liaison),
            &key,
            Some(json!({"status": "accepted"})),
        )
        .await,
        &op,
    );
    let v = w.get(&format!("/v1/operations/{op}"), &fr).await.json();
    assert_eq!(
        (v["version"].clone(), v["title"].clone()),
        (json!(1), json!("Op Key")),
        "{v}"
    );

    // A creation under a key mints the same id on every retry, one per
    // field; without a key every id is fresh.
    let task_body = json!({"assignee_country": "DE", "title": "t", "details": "d"});
    let tkey = [("Idempotency-Key", "task-key-1")];
    let t1 = w
        .send(
            "POST",
            &format!("/v1/operations/{op}/tasks"),
            Some(&fr),
            &tkey,
            Some(task_body.clone()),
        )
        .await;
    let t2 = w
        .send(
            "POST",
            &format!("/v1/operations/{op}/tasks"),
            Some(&fr),
            &tkey,
            Some(task_body.clone()),
        )
        .await;
    assert_eq!(t1.status, 201, "{:?}", t1.json());
    assert_eq!(t1.json(), t2.json());
    assert_eq!(version_of(t1.json()["id"].as_str().expect("task")), 5);
    let fresh = w.post("/v1/operations", &fr, body.clone()).await;
    let fresh_id = fresh.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(version_of(&fresh_id), 7);
    assert_ne!(fresh_id, op);
    let v = w.get(&format!("/v1/operations/{op}"), &fr).await.json();
    assert_eq!(v["version"], 2, "one task: {v}");
}

#[tokio::test]
async fn the_trace_context_reaches_the_published_events() {
    let w = world().await;
    let client = async_nats::connect(w.nats.url()).await.expect("connect");
    let mut events = client.subscribe("concord.evt.operations.>").await.expect("sub");
    client.flush().await.expect("flush");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let tp = format!("00-{trace}-00f067aa0ba902b7-01");
    let r = w
        .send(
            "POST",
            "/v1/operations",
            Some(&token(Role::Coordinator, "FR")),
            &[("traceparent", &tp)],
            Some(json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": []})),
        )
        .await;
    assert_eq!(r.status, 201);
    let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("event in time")
        .expect("event");
    let header = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
        .expect("traceparent on the event");
    assert!(header.starts_with(&format!("00-{trace}-")), "{header}");
}

#[tokio::test]
async fn readiness_openapi_and_503_when_no_service_answers() {
    let w = world().await;
    let r = request(&w.addr, "GET", "/healthz", &[], None).await.expect("http");
    assert_eq!(r.status, 200);
    let r = request(&w.addr, "GET", "/readyz", &[], None).await.expect("http");
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["checks"]["services"]["operations"], "up");
    let r = request(&w.addr, "GET", "/openapi.json", &[], None).await.expect("http");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.json()["paths"]["/v1/operations/{id}/tasks"]["post"].is_object());
    // The served document, for a validator run outside the test suite.
    if let Some(path) = std::env::var_os("CONCORD_OPENAPI_OUT") {
        std::fs::write(path, &r.body).expect("write the document");
    }

    // A gateway whose services are not running: not ready, and commands
    // answer 503 with Retry-After rather than hang.
    let nats = NatsServer::start().expect("nats-server");
    let lonely = World {
        addr: gateway(&nats, Duration::from_millis(500)).await,
        nats,
        _dir: tempfile::TempDir::new().expect("tmp"),
    };
    let r = request(&lonely.addr, "GET", "/readyz", &[], None).await.expect("http");
    let p = problem(&r, 503, "unavailable");
    assert_eq!(p["details"]["services"]["operations"], "down");
    let r = lonely
        .post(
            "/v1/operations",
            &token(Role::Coordinator, "FR"),
            json!({"title": "t", "objective": "o", "lead_country": "FR", "countries": []}),
        )
        .await;
    problem(&r, 503, "unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
}

/// `/readyz` answers from a check kept current in the background: with
/// NATS gone it says so (and which services it last saw), rather than
/// waiting on NATS; when NATS is back, ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_lost_nats_and_recovers() {
    let mut w = world().await;
    let r = request(&w.addr, "GET", "/readyz", &[], None).await.expect("http");
    assert_eq!(r.status, 200, "{:?}", r.json());
    w.nats.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let p = loop {
        let r = request(&w.addr, "GET", "/readyz", &[], None).await.expect("http");
        if r.status == 503 && r.json()["details"]["nats"] != "connected" {
            break r.json();
        }
        assert!(std::time::Instant::now() < deadline, "still ready without NATS");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(p["code"], "unavailable", "{p}");
    assert!(p["details"]["services"]["operations"].is_string(), "{p}");
    w.nats.restart().expect("restart");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = request(&w.addr, "GET", "/readyz", &[], None).await.expect("http");
        if r.status == 200 {
            assert_eq!(r.json()["checks"]["services"]["operations"], "up");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ready again: {:?}", r.json());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every operation the served document describes is routed: without a
/// token each table route answers 401 (an unrouted one would be 404 or
/// 405), and the gateway's own routes answer.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let w = world().await;
    let doc = request(&w.addr, "GET", "/openapi.json", &[], None)
        .await
        .expect("http")
        .json();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 20, "{}", paths.len());
    for (template, item) in paths {
        let path: String = template
            .split('/')
            .map(|seg| match seg {
                "{country}" => "DE".to_owned(),
                s if s.starts_with('{') => uuid::Uuid::now_v7().to_string(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_ascii_uppercase();
            let r = request(&w.addr, &method, &path, &[], None).await.expect("http");
            if op["security"] == json!([]) {
                assert!(r.status == 200, "{method} {path}: {}", r.status);
            } else {
                problem(&r, 401, "unauthorized");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_an_identity_provider_are_verified_with_its_jwks() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let cfg = concord_bus::service::Config::new(dir.path().join("operations"));
    let svc = concord_operations::bind(&cfg, async_nats::connect(nats.url()).await.expect("connect"))
        .await
        .expect("bind");
    tokio::spawn(svc.run(std::future::pending()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let keys = concord_core::auth::Keys {
        secret: None,
        public: concord_core::auth::parse_jwks(&concord_testkit::idp::jwks()).expect("jwks"),
    };
    let mut config = Config::with_keys(keys, vec![Service::Operations]);
    config.token_rules.issuer = Some("https://idp.police.example".into());
    config.token_rules.audience = Some("concord".into());
    tokio::spawn(concord_gateway::serve(
        listener,
        async_nats::connect(nats.url()).await.expect("connect"),
        config,
        std::future::pending(),
    ));
    let w = World { nats, _dir: dir, addr };

    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str| {
        json!({"sub": "fr-coord", "role": "coordinator", "country": "FR", "iat": now, "exp": now + 600,
            "iss": iss, "aud": [aud, "other"], "jti": "t-1", "email": "coord@police.fr"})
    };
    let body = || json!({"title": "Op", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
    for kid in ["ed-1", "ec-1", "rsa-1"] {
        let t = concord_testkit::idp::token(kid, &claims("https://idp.police.example", "concord"));
        let r = w.post("/v1/operations", &t, body()).await;
        assert_eq!(r.status, 201, "{kid}: {}", String::from_utf8_lossy(&r.body));
    }
    let wrong_issuer = concord_testkit::idp::token("ec-1", &claims("https://elsewhere.example", "concord"));
    problem(
        &w.post("/v1/operations", &wrong_issuer, body()).await,
        401,
        "unauthorized",
    );
    let wrong_audience = concord_testkit::idp::token("ec-1", &claims("https://idp.police.example", "intranet"));
    problem(
        &w.post("/v1/operations", &wrong_audience, body()).await,
        401,
        "unauthorized",
    );
    // The demo's shared-secret tokens are not accepted beside a provider.
    problem(
        &w.post("/v1/operations", &token(Role::Coordinator, "FR"), body()).await,
        401,
        "unauthorized",
    );
}

/// A read is answered only once the audit's access log has recorded it:
/// with no audit service to record it, the reader gets 503 and nothing of
/// the data, whatever the read (an object, a refused one).
#[tokio::test]
async fn a_read_that_cannot_be_recorded_returns_nothing() {
    let w = world().await;
    let id = w.open().await;
    let client = async_nats::connect(w.nats.url()).await.expect("connect");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut config = Config::new(SECRET.to_vec(), vec![Service::Operations]);
    config.access_log = true;
    tokio::spawn(concord_gateway::serve(listener, client, config, std::future::pending()));
    let recorded = World {
        nats: NatsServer::start().expect("nats-server"),
        _dir: tempfile::TempDir::new().expect("tmp"),
        addr,
    };
    let fr = token(Role::Coordinator, "FR");
    // Without the access log the read is answered...
    let r = w.get(&format!("/v1/operations/{id}"), &fr).await;
    assert_eq!(r.status, 200);
    // ...with it, and no audit to record it, it is not.
    let r = recorded.get(&format!("/v1/operations/{id}"), &fr).await;
    let p = problem(&r, 503, "unavailable");
    assert!(p["detail"].as_str().unwrap_or("").contains("access log"), "{p}");
    assert!(!String::from_utf8_lossy(&r.body).contains("Op Lys"));
    let r = recorded
        .get(&format!("/v1/operations/{id}"), &token(Role::Liaison, "IT"))
        .await;
    problem(&r, 503, "unavailable");
    // A command is no read: it is not held up.
    let r = recorded
        .post(
            "/v1/operations",
            &fr,
            json!({"title": "Op Lys", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Nor a read without a token anyone verifies: it names nobody.
    let r = recorded
        .send("GET", &format!("/v1/operations/{id}"), None, &[], None)
        .await;
    problem(&r, 401, "unauthorized");
}
