//! The HTTP edge against slow, greedy and malformed clients, over real
//! TCP: headers held open are cut off, a connection beyond the cap waits
//! for a slot, a request that takes too long is answered 408, too many
//! headers 431, no answer may be cached, and a request hyper cannot parse
//! (bad header bytes, too many headers, a line without a colon, alone or
//! after good ones on the same connection) is answered with a problem.

use std::time::Duration;

use concord_core::auth::{Claims, sign};
use concord_core::{CountryCode, Role, Service};
use concord_gateway::Config;
use concord_testkit::NatsServer;
use concord_testkit::http::request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
/// How long a test waits for what must happen; never a measured duration.
const DEADLINE: Duration = Duration::from_secs(20);

async fn gateway(nats: &NatsServer, tune: impl FnOnce(&mut Config)) -> String {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut config = Config::new(SECRET.to_vec(), vec![Service::Operations]);
    tune(&mut config);
    tokio::spawn(concord_gateway::serve(listener, client, config, std::future::pending()));
    addr
}

/// Reads until the server closes the connection (or `DEADLINE`).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open: {got:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_held_open_are_cut_off() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    // Never finishes its headers: the server closes (with or without a 408).
    let got = read_to_close(&mut slow).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // Others are served meanwhile and after.
    let r = request(&addr, "GET", "/healthz", &[], None).await.expect("http");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_the_cap_waits_for_a_slot() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |c| c.connections_max = 1).await;
    // The one slot: a connection that sent nothing yet.
    let holder = TcpStream::connect(&addr).await.expect("connect");
    let second = tokio::spawn({
        let addr = addr.clone();
        async move { request(&addr, "GET", "/healthz", &[], None).await }
    });
    // While the slot is held the second request is not answered (watched
    // for a while: with the cap this can never fail, without it the answer
    // would come in a few milliseconds); once the holder closes, it is.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "served beyond the cap");
    }
    drop(holder);
    let r = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("served once a slot freed")
        .expect("join")
        .expect("http");
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_takes_too_long_is_answered_408_and_too_many_headers_431() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |c| c.request_timeout_total = Duration::from_millis(300)).await;
    // A body announced and never sent, by a coordinator.
    let claims = Claims {
        sub: "fr-coordinator".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
        exp: chrono::Utc::now().timestamp() + 3600,
        iat: None,
        nbf: None,
        iss: None,
        aud: None,
    };
    let token = sign(&claims, SECRET).expect("sign");
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/operations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, slow.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");

    let many: Vec<(String, String)> = (0..100).map(|i| (format!("X-H{i}"), "v".to_owned())).collect();
    let headers: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // hyper may also close the connection instead of answering.
    if let Ok(r) = request(&addr, "GET", "/healthz", &headers, None).await {
        assert_eq!(r.status, 431, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_may_be_cached() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |_| {}).await;
    for (method, path) in [
        ("GET", "/v1/operations/019ab0c4-5e00-7000-8000-0000000000aa"),
        ("POST", "/v1/operations"),
        ("GET", "/v1/nothing-here"),
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
    ] {
        let r = request(&addr, method, path, &[], None).await.expect("http");
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{method} {path} ({})",
            r.status
        );
    }
}

/// One answer read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The answers in `raw`, in order, framed by `Content-Length`; `bodiless[i]`
/// when the i-th answers a HEAD (no body whatever its length says). Bytes
/// that are not a whole answer fail the test.
fn answers(mut raw: &[u8], bodiless: &[bool]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut headers);
        let n = match head.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("not an answer ({other:?}): {:?}", String::from_utf8_lossy(raw)),
        };
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map_or(0, |(_, v)| v.parse().expect("a length"));
        let length = if bodiless.get(out.len()).copied().unwrap_or(false) {
            0
        } else {
            length
        };
        let body = raw.get(n..n + length).expect("the whole body").to_vec();
        out.push(Answer {
            status: head.code.expect("a status"),
            headers,
            body,
        });
        raw = &raw[n + length..];
    }
    out
}

/// Sends `bytes` on a fresh connection and reads every answer until the
/// server closes it.
async fn exchange(addr: &str, bytes: &[u8], bodiless: &[bool]) -> Vec<Answer> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    answers(&read_to_close(&mut stream).await, bodiless)
}

/// An answer hyper gives itself, before any route sees the request, is a
/// problem like every other error of the API.
fn assert_problem(a: &Answer, status: u16, what: &str) {
    let body = String::from_utf8_lossy(&a.body);
    assert_eq!(a.status, status, "{what}: {body}");
    assert_eq!(a.header("content-type"), Some("application/problem+json"), "{what}");
    assert_eq!(a.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(a.header("connection"), Some("close"), "{what}");
    let p: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(p["status"], status, "{what}: {p}");
    assert_eq!(p["code"], "invalid", "{what}: {p}");
    assert_eq!(p["type"], "https://concord.example/problems/invalid", "{what}: {p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{what}: {p}");
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_are_answered_as_problems() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |_| {}).await;
    let many: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_target = format!("/{}", "a".repeat(70_000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a header value with a 0x01 byte",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a header value with a NUL",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a header line without a colon",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo-Colon-Here\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a malformed request line",
            b"GET /he lthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
        ),
        (
            "70 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(),
            431,
        ),
        (
            "a 70 000-byte target",
            format!("GET {long_target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            414,
        ),
    ];
    for (what, bytes, status) in cases {
        let got = exchange(&addr, &bytes, &[]).await;
        assert_eq!(got.len(), 1, "{what}: {got:?}");
        assert_problem(&got[0], status, what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_after_good_ones_on_one_connection_is_answered_as_a_problem() {
    let nats = NatsServer::start().expect("nats-server");
    let addr = gateway(&nats, |_| {}).await;
    let good = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let bad = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n";

    // Pipelined: the good one is answered as ever, then the bad one.
    let got = exchange(&addr, &[&good[..], &bad[..]].concat(), &[]).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).expect("json")["status"],
        "ok"
    );
    assert_problem(&got[1], 400, "after a good request");

    // After a HEAD, whose answer announces a length it does not send, and
    // a 404 of the router (a problem already), the same.
    let head = b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let missing = b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n";
    let got = exchange(&addr, &[&head[..], &missing[..], &good[..], &bad[..]].concat(), &[true]).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].status, 200);
    assert!(got[0].body.is_empty());
    assert_eq!(got[1].status, 404);
    assert_eq!(got[1].header("content-type"), Some("application/problem+json"));
    assert_eq!(got[2].status, 200);
    assert_problem(&got[3], 400, "after a HEAD, a 404 and a good request");
}
