//! The HTTP edge against slow and greedy clients, over real TCP: headers
//! held open are cut off, a connection beyond the cap waits for a slot, a
//! request that takes too long is answered 408, too many headers 431, and
//! no answer may be cached.

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
