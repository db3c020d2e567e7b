//! Which log answers, over a real nats-server: every log answer names its
//! log's identity, every instance serving a log hears every request (no
//! queue group), and a follower that finds another log answering for its
//! source stops, naming both, instead of mixing two histories.

use std::time::Duration;

use concord_bus::consumer::{Consumer, ConsumerError, start_of_log};
use concord_bus::follow::{Followed, Resume};
use concord_bus::logs::{LogServer, fetch_head, fetch_log, publish_appended};
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service, subjects};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use concord_testkit::NatsServer;
use futures::StreamExt;
use serde_json::json;

const POLL: Duration = Duration::from_millis(50);

/// An operations log served on the bus until `stop`.
struct Source {
    log: Log,
    client: async_nats::Client,
    _dir: tempfile::TempDir,
    stop: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Source {
    async fn start(nats: &NatsServer, events: usize) -> Source {
        let dir = tempfile::TempDir::new().expect("tmp");
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let bound = LogServer::bind(client.clone(), log.clone()).await.expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            let _ = bound
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let source = Source {
            log,
            client,
            _dir: dir,
            stop: Some((tx, served)),
        };
        source.produce(events).await;
        source
    }

    async fn produce(&self, n: usize) {
        for _ in 0..n {
            let appended = self
                .log
                .append(AppendRequest {
                    stream: "operation-1".into(),
                    expected: ExpectedVersion::Any,
                    command_id: format!("c{}", self.log.head().seq + 1),
                    fingerprint: Fingerprint::new("open", "operation-1", &json!({}), &fr()).expect("canonical"),
                    actor: fr(),
                    correlation_id: "r".into(),
                    causation_id: None,
                    observed_hlc: None,
                    events: vec![NewEvent {
                        event_type: "operation.opened".into(),
                        schema_version: 1,
                        data: json!({}),
                    }],
                })
                .await
                .expect("append");
            publish_appended(&self.client, &appended).await.expect("publish");
        }
    }

    async fn stop(&mut self) {
        if let Some((tx, served)) = self.stop.take() {
            let _ = tx.send(());
            served.await.expect("stopped");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_answers_name_the_log_and_reach_every_instance() {
    let nats = NatsServer::start().expect("nats-server");
    let a = Source::start(&nats, 2).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let head = fetch_head(&client, Service::Operations).await.expect("head");
    assert_eq!((head.seq, head.identity), (2, Some(a.log.identity())));
    let read = fetch_log(&client, Service::Operations, 1, 10).await.expect("read");
    assert_eq!(read.identity, Some(a.log.identity()));

    // A second log served for the same service: both hear the request.
    let b = Source::start(&nats, 1).await;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.expect("sub");
    client
        .publish_with_reply(subjects::log_head(Service::Operations), inbox, "{}".into())
        .await
        .expect("ask");
    let mut identities = Vec::new();
    for _ in 0..2 {
        // As generous as the other tests' bounds: CI runs many test
        // processes on two cores, and a reply that never comes still fails.
        let msg = tokio::time::timeout(Duration::from_secs(30), replies.next())
            .await
            .expect("every instance answers")
            .expect("reply");
        let body: serde_json::Value = serde_json::from_slice(&msg.payload).expect("json");
        identities.push(body["identity"].as_str().expect("identity").to_owned());
    }
    identities.sort();
    let mut want = vec![a.log.identity().to_string(), b.log.identity().to_string()];
    want.sort();
    assert_eq!(identities, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stops_when_another_log_answers_for_its_source() {
    let nats = NatsServer::start().expect("nats-server");
    let mut a = Source::start(&nats, 3).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let mut consumer = Consumer::start(client, Service::Operations, start_of_log())
        .await
        .expect("consumer")
        .with_poll_interval(POLL);
    for seq in 1..=3 {
        let e = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("in time")
            .expect("event");
        assert_eq!(e.seq, seq);
    }
    assert_eq!(consumer.position().identity, Some(a.log.identity()));

    // Another operations log, further on, answers instead.
    a.stop().await;
    let b = Source::start(&nats, 6).await;
    let stopped = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("in time");
    match stopped {
        Err(e @ ConsumerError::IdentityChanged { .. }) => {
            let message = e.to_string();
            for part in [
                "operations".to_owned(),
                a.log.identity().to_string(),
                b.log.identity().to_string(),
            ] {
                assert!(message.contains(&part), "{part:?} in {message:?}");
            }
        }
        other => panic!("expected the consumer to stop on another log, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_of_a_source_that_changed_log_is_unavailable() {
    let nats = NatsServer::start().expect("nats-server");
    let mut a = Source::start(&nats, 2).await;
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let followed = Followed::start(client, Service::Operations, Resume::from_start(), |_| Ok(()), None)
        .await
        .expect("follow");
    tokio::time::timeout(Duration::from_secs(10), followed.caught_up())
        .await
        .expect("in time")
        .expect("caught up with the first log");

    a.stop().await;
    // Behind the view: its head alone would let a decision through.
    let b = Source::start(&nats, 1).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), followed.caught_up())
        .await
        .expect("in time");
    let message = refused.expect_err("a view of another log is not caught up").to_string();
    for part in [a.log.identity().to_string(), b.log.identity().to_string()] {
        assert!(message.contains(&part), "{part:?} in {message:?}");
    }
}

fn fr() -> Actor {
    Actor {
        sub: "fr".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
    }
}
