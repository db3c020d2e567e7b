//! A log served on `concord.log.<service>.read|head` over a real
//! nats-server started by the harness.

use concord_bus::logs::{BusError, LogServer, fetch_head, fetch_log, request};
use concord_core::chain::ChainVerifier;
use concord_core::reply::ErrorCode;
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service, subjects};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use concord_testkit::NatsServer;
use serde_json::json;

async fn filled_log(dir: &std::path::Path, n: usize) -> Log {
    let log = Log::open(dir, Service::Operations).expect("open");
    for i in 0..n {
        let stream = format!("operation-{}", i % 4);
        let actor = Actor {
            sub: "fr".into(),
            role: Role::Coordinator,
            country: CountryCode::parse("FR").expect("FR"),
        };
        log.append(AppendRequest {
            fingerprint: Fingerprint::new("open", &stream, &json!({ "i": i }), &actor).expect("canonical"),
            stream,
            expected: ExpectedVersion::Any,
            command_id: format!("c{i}"),
            actor,
            correlation_id: "r".into(),
            causation_id: None,
            observed_hlc: None,
            events: vec![NewEvent {
                event_type: "operation.opened".into(),
                schema_version: 1,
                data: json!({"i": i, "title": "Opération «Héron»"}),
            }],
        })
        .await
        .expect("append");
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_is_readable_over_nats_exactly_as_stored() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = filled_log(dir.path(), 30).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bound = LogServer::bind(client.clone(), log.clone()).await.expect("bind");
    let server = tokio::spawn(bound.run(async {
        let _ = stopped.await;
    }));

    let first = fetch_log(&client, Service::Operations, 1, 10).await.expect("read");
    assert_eq!(first.head_seq, 30);
    assert_eq!(
        first.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let rest = fetch_log(&client, Service::Operations, 11, 1000).await.expect("read");
    assert_eq!(rest.events.len(), 20);
    // Byte for byte as stored: the chain re-verifies from what came over the bus.
    let mut v = ChainVerifier::new();
    for raw in first.raw.iter().chain(&rest.raw) {
        v.check(None, raw.as_bytes()).expect("chain verifies over the bus");
    }
    let head = fetch_head(&client, Service::Operations).await.expect("head");
    assert_eq!((head.seq, head.hash.as_str()), (30, v.head_hash()));
    assert_eq!(
        fetch_log(&client, Service::Operations, 31, 10)
            .await
            .expect("read")
            .events
            .len(),
        0
    );

    // Malformed requests get `invalid`, precisely.
    for bad in [
        &b"not json"[..],
        b"{\"from_seq\": 1}",
        b"{\"from_seq\": -1, \"max_events\": 5}",
        b"{\"from_seq\":1,\"max_events\":5,\"x\":1}",
    ] {
        match request(&client, subjects::log_read(Service::Operations), bad.to_vec()).await {
            Err(BusError::Refused { code, message, .. }) => {
                assert_eq!(code, ErrorCode::Invalid);
                assert!(message.starts_with("log read request must be"), "{message}");
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }
    // Nobody serves intel here: the caller learns it at once.
    assert!(matches!(
        fetch_head(&client, Service::Intel).await,
        Err(BusError::NoResponders { .. })
    ));
    let _ = stop.send(());
    server.await.expect("join").expect("served");
}

#[test]
fn the_harness_restarts_a_killed_server_on_the_same_port() {
    let mut nats = NatsServer::start().expect("nats-server");
    let url = nats.url();
    nats.stop();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    assert!(
        rt.block_on(async_nats::connect(url.clone())).is_err(),
        "stopped server still answers"
    );
    nats.restart().expect("restart");
    assert_eq!(nats.url(), url);
    rt.block_on(async_nats::connect(url)).expect("reconnects after restart");
}

/// A read answered by something else than a log server: every answer a
/// strict parser would read two ways is refused as malformed, the one
/// well-formed answer is taken, exactly as it came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_answer_that_parsers_would_read_two_ways_is_refused() {
    use futures::StreamExt;
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = filled_log(dir.path(), 1).await;
    let event = String::from_utf8(log.read_from(1, 1).expect("read").events[0].bytes.clone()).expect("utf-8");
    // The same event with a member of its data written twice: not its
    // canonical form, and a strict parser refuses it.
    let twice = event.replacen("\"data\":{", "\"data\":{\"i\":7,", 1);
    let padded = event.replacen("{", "{ ", 1);
    let answers = vec![
        (format!(r#"{{"ok":true,"head_seq":1,"events":[{event}]}}"#), None),
        (format!(r#"{{"ok":true,"head_seq":1,"events":[{padded}]}}"#), None),
        (
            format!(r#"{{"ok":true,"head_seq":1,"events":[],"events":[{event}]}}"#),
            Some("duplicate field"),
        ),
        (
            format!(r#"{{"ok":false,"ok":true,"head_seq":1,"events":[{event}]}}"#),
            Some("duplicate field"),
        ),
        (
            format!(r#"{{"ok":true,"head_seq":1,"events":[{twice}]}}"#),
            Some("duplicate key \"i\""),
        ),
        (
            format!(r#"{{"ok":true,"head_seq":9007199254740992,"events":[{event}]}}"#),
            Some("beyond"),
        ),
    ];
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let mut reads = client
        .subscribe(subjects::log_read(Service::Operations))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let forged = answers.clone();
    let responder = client.clone();
    let server = tokio::spawn(async move {
        for (answer, _) in forged {
            let msg = reads.next().await.expect("a read");
            responder
                .publish(msg.reply.expect("a reply subject"), answer.into())
                .await
                .expect("answer");
        }
    });
    for (answer, refused) in answers {
        let got = fetch_log(&client, Service::Operations, 1, 1).await;
        match (refused, got) {
            (None, Ok(read)) => {
                assert_eq!(read.events.len(), 1, "{answer}");
                assert_eq!(read.events[0].seq, 1);
                assert!(answer.contains(&read.raw[0]), "the event is kept as it came");
            }
            (Some(why), Err(BusError::Malformed { reason, .. })) => {
                assert!(reason.contains(why), "{answer}: {reason}");
            }
            (refused, got) => panic!("{answer}: expected {refused:?}, got {:?}", got.map(|r| r.raw)),
        }
    }
    server.await.expect("forged server");
}
