//! The kernel consumer against a real nats-server: every event of the source
//! once, in order, whatever was missed live; and a loud stop on a source
//! that went back in history.

use std::time::Duration;

use concord_bus::consumer::{Checkpoint, Consumer, ConsumerError, start_of_log};
use concord_bus::logs::{LogServer, publish_appended};
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, NewEvent};
use concord_testkit::NatsServer;
use serde_json::json;

const POLL: Duration = Duration::from_millis(50);

struct Source {
    log: Log,
    client: async_nats::Client,
    _dir: tempfile::TempDir,
    next: usize,
}

impl Source {
    async fn start(nats: &NatsServer) -> Source {
        let dir = tempfile::TempDir::new().expect("tmp");
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let bound = LogServer::bind(client.clone(), log.clone()).await.expect("bind");
        tokio::spawn(bound.run(std::future::pending()));
        Source {
            log,
            client,
            _dir: dir,
            next: 0,
        }
    }

    /// Appends `n` events, publishing them live only when `publish`.
    async fn produce(&mut self, n: usize, publish: bool) {
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let stream = format!("operation-{}", i % 7);
            let actor = Actor {
                sub: "fr".into(),
                role: Role::Coordinator,
                country: CountryCode::parse("FR").expect("FR"),
            };
            let appended = self
                .log
                .append(AppendRequest {
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
                        data: json!({ "i": i }),
                    }],
                })
                .await
                .expect("append");
            if publish {
                publish_appended(&self.client, &appended).await.expect("publish");
            }
        }
    }
}

async fn consumer(nats: &NatsServer, from: Checkpoint) -> Consumer {
    let client = async_nats::connect(nats.url()).await.expect("connect");
    Consumer::start(client, Service::Operations, from)
        .await
        .expect("consumer")
        .with_poll_interval(POLL)
}

async fn take(c: &mut Consumer, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(30), c.next())
            .await
            .expect("an event within 30 s")
            .expect("event");
        seqs.push(e.seq);
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_down_while_1000_events_are_appended_gets_each_once_in_order() {
    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let mut c = consumer(&nats, start_of_log()).await;
    source.produce(100, true).await;
    assert_eq!(take(&mut c, 100).await, (1..=100).collect::<Vec<_>>());
    let checkpoint = c.position().clone();
    drop(c);

    source.produce(1000, true).await;

    let mut c = consumer(&nats, checkpoint).await;
    assert_eq!(take(&mut c, 1000).await, (101..=1100).collect::<Vec<_>>());
    // Nothing left over or repeated: the next event delivered is the next one appended.
    source.produce(1, true).await;
    assert_eq!(take(&mut c, 1).await, [1101]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_whose_live_messages_were_lost_are_still_delivered() {
    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let mut c = consumer(&nats, start_of_log()).await;
    source.produce(5, true).await;
    source.produce(40, false).await; // lost on the wire
    source.produce(5, true).await;
    assert_eq!(take(&mut c, 50).await, (1..=50).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_survives_a_nats_server_restart() {
    let mut nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let mut c = consumer(&nats, start_of_log()).await;
    source.produce(10, true).await;
    assert_eq!(take(&mut c, 10).await, (1..=10).collect::<Vec<_>>());
    nats.stop();
    // Appended while the bus is down: nobody hears about them live.
    source.produce(10, false).await;
    nats.restart().expect("restart");
    source.produce(10, true).await;
    assert_eq!(take(&mut c, 20).await, (11..=30).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_went_back_in_history_stops_the_consumer() {
    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    source.produce(20, true).await;

    // The source lost its tail: our checkpoint is ahead of its head.
    let ahead = Checkpoint {
        seq: 500,
        hash: "ab".repeat(32),
        identity: None,
    };
    match consumer(&nats, ahead).await.next().await {
        Err(ConsumerError::Regression { at_seq, what, .. }) => {
            assert_eq!(at_seq, 500);
            assert!(what.contains("head is seq 20"), "{what}");
        }
        other => panic!("expected a regression, got {other:?}"),
    }

    // The source serves another event at a seq we already applied.
    let altered = Checkpoint {
        seq: 10,
        hash: "cd".repeat(32),
        identity: None,
    };
    match consumer(&nats, altered).await.next().await {
        Err(ConsumerError::Regression { at_seq, what, .. }) => {
            assert_eq!(at_seq, 10);
            assert!(what.contains("now has hash"), "{what}");
        }
        other => panic!("expected a regression, got {other:?}"),
    }
}

/// A live message with a duplicate key is no event, even when its digest
/// and hash are computed over its own bytes: serde_json would read the
/// last `i`, another consumer the first. The consumer takes it for a hint
/// and delivers seq 1 as the log holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_message_with_a_duplicate_key_is_not_delivered() {
    use concord_core::chain::{GENESIS_HASH, canonical_json, chain_hash, data_digest, seal};
    use concord_core::{EventEnvelope, Hlc};

    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let mut c = consumer(&nats, start_of_log()).await;
    // The consumer makes first contact (an empty log) and waits live.
    let first = tokio::spawn(async move {
        let got = tokio::time::timeout(Duration::from_secs(30), c.next()).await;
        (c, got)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Seq 1 as a forger would send it before the real one is appended.
    let data = json!({"i": 0});
    let mut env = EventEnvelope {
        id: uuid::Uuid::now_v7(),
        service: Service::Operations,
        seq: 1,
        stream: "operation-0".into(),
        version: 1,
        event_type: "operation.opened".into(),
        schema_version: 1,
        recorded_at: "2026-11-23T09:30:00.000000Z".into(),
        hlc: Hlc::default(),
        actor: Actor {
            sub: "fr".into(),
            role: Role::Coordinator,
            country: CountryCode::parse("FR").expect("FR"),
        },
        command_id: "c0".into(),
        correlation_id: "r".into(),
        causation_id: None,
        data: data.clone(),
        data_digest: String::new(),
        prev_hash: GENESIS_HASH.into(),
        hash: String::new(),
    };
    let sealed = String::from_utf8(seal(&mut env, &canonical_json(&data).expect("ok"))).expect("utf-8");
    let (head, rest) = sealed.split_once("\"data\":{\"i\":0},").expect("data member");
    let (_, tail) = rest.split_once(",\"hash\":\"").expect("hash member");
    let tail = &tail[65..];
    let forged_data = "{\"i\":666,\"i\":0}";
    let digest = data_digest(forged_data.as_bytes());
    let hash = chain_hash(
        GENESIS_HASH,
        format!("{head}\"data_digest\":\"{digest}\"{tail}").as_bytes(),
    );
    let forged = format!("{head}\"data\":{forged_data},\"data_digest\":\"{digest}\",\"hash\":\"{hash}\"{tail}");
    let parsed: EventEnvelope = serde_json::from_str(&forged).expect("serde_json reads it");
    assert_eq!(parsed.data, data, "as the last member");
    source
        .client
        .publish("concord.evt.operations.operation.opened", forged.into_bytes().into())
        .await
        .expect("publish");
    source.client.flush().await.expect("flush");
    // Time to take the forged message for what it is before seq 1 exists.
    tokio::time::sleep(Duration::from_millis(300)).await;

    source.produce(2, true).await;
    let real = source.log.read_events(1, 1).expect("read").remove(0);
    let (mut c, got) = first.await.expect("task");
    let got = got.expect("an event").expect("not a regression");
    assert_eq!((got.seq, got.hash.as_str()), (1, real.hash.as_str()));
    assert_ne!(real.hash, hash);
    assert_eq!(take(&mut c, 1).await, [2]);
}

/// An event as anyone allowed to publish on `concord.evt.operations.>`
/// could make it: well formed, linked to `prev_hash`, correctly hashed.
fn forged(seq: u64, prev_hash: &str, data: serde_json::Value) -> String {
    use concord_core::chain::{canonical_json, seal};
    use concord_core::{EventEnvelope, Hlc};
    let mut env = EventEnvelope {
        id: uuid::Uuid::now_v7(),
        service: Service::Operations,
        seq,
        stream: "operation-forged".into(),
        version: 1,
        event_type: "operation.opened".into(),
        schema_version: 1,
        recorded_at: "2026-11-23T09:30:00.000000Z".into(),
        hlc: Hlc::default(),
        actor: Actor {
            sub: "forger".into(),
            role: Role::Coordinator,
            country: CountryCode::parse("US").expect("US"),
        },
        command_id: format!("forged-{seq}"),
        correlation_id: "r".into(),
        causation_id: None,
        data: data.clone(),
        data_digest: String::new(),
        prev_hash: prev_hash.into(),
        hash: String::new(),
    };
    String::from_utf8(seal(&mut env, &canonical_json(&data).expect("ok"))).expect("utf-8")
}

async fn publish_raw(client: &async_nats::Client, body: impl Into<Vec<u8>>) {
    client
        .publish("concord.evt.operations.operation.opened", body.into().into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
}

async fn rejected_reaches(c: &Consumer, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while c.rejected() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rejected {} of {n} in time",
            c.rejected()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Defence in depth: a publisher that may publish the source's events (a
/// stolen key, a misconfigured permission) still cannot inject history. A
/// correctly hashed event that links to the last delivered one is not
/// delivered unless the source's log serves it; every live message that
/// does not match is dropped and counted, and the consumer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correctly_hashed_forged_live_event_is_never_delivered_and_does_not_stop_the_consumer() {
    use concord_core::chain::{GENESIS_HASH, inspect};

    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let mut c = consumer(&nats, start_of_log()).await;
    source.produce(2, true).await;
    assert_eq!(take(&mut c, 2).await, [1, 2]);
    let at = c.position().clone();

    // The next seq, linked to what was delivered, hashing to its stamp:
    // everything a live message can prove, and it is still not delivered.
    let next = forged(3, &at.hash, json!({"i": "forged"}));
    let link = inspect(next.as_bytes()).expect("a sealed event");
    assert_eq!(link.computed, link.stored, "correctly hashed");
    let forger = async_nats::connect(nats.url()).await.expect("connect");
    publish_raw(&forger, next.clone()).await;
    // One for a seq already delivered, with another content.
    publish_raw(&forger, forged(1, GENESIS_HASH, json!({"i": "rewritten"}))).await;
    // One that does not hash, and one that is no event at all.
    publish_raw(&forger, next.replace("\"forged\"", "\"tampered\"")).await;
    publish_raw(&forger, b"{\"seq\": 3".to_vec()).await;

    // The consumer reads the log (whose head is 2) and delivers nothing;
    // each false message is counted; the consumer still follows.
    let waited = tokio::time::timeout(Duration::from_millis(800), c.next()).await;
    assert!(waited.is_err(), "nothing delivered, no stop: {waited:?}");
    rejected_reaches(&c, 4).await;
    source.produce(2, true).await;
    let real = source.log.read_events(3, 1).expect("read").remove(0);
    let got = tokio::time::timeout(Duration::from_secs(30), c.next())
        .await
        .expect("in time")
        .expect("the real seq 3");
    assert_eq!((got.seq, got.hash.as_str()), (3, real.hash.as_str()));
    assert_eq!(got.actor.sub, "fr", "the log's event, not the forger's");
    assert_eq!(take(&mut c, 1).await, [4]);
    assert_eq!(c.rejected(), 4, "each false message once");

    // A forged seq 5 published before the real one: the log's seq 5 wins,
    // the claim that differs from it is counted.
    let before = c.rejected();
    let at = c.position().clone();
    publish_raw(&forger, forged(5, &at.hash, json!({"i": "early"}))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    source.produce(1, true).await;
    let real = source.log.read_events(5, 1).expect("read").remove(0);
    let got = tokio::time::timeout(Duration::from_secs(30), c.next())
        .await
        .expect("in time")
        .expect("the real seq 5");
    assert_eq!(got.hash, real.hash);
    assert!(c.rejected() > before, "the early forgery is counted");
}

/// With a read interval, a steady flow is read from the log at most once
/// per interval (plus the first read), and still delivered whole, once,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_with_a_read_interval_reads_a_steady_flow_in_few_reads() {
    use futures::StreamExt;
    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    let sniffer = async_nats::connect(nats.url()).await.expect("connect");
    let mut reads = sniffer
        .subscribe(concord_core::subjects::log_read(Service::Operations))
        .await
        .expect("subscribe");
    sniffer.flush().await.expect("flush");
    let interval = Duration::from_millis(200);
    let mut c = consumer(&nats, start_of_log()).await.with_read_interval(interval);
    const EVENTS: usize = 30;
    let started = tokio::time::Instant::now();
    let taker = tokio::spawn(async move { take(&mut c, EVENTS).await });
    for _ in 0..EVENTS {
        source.produce(1, true).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(taker.await.expect("taker"), (1..=EVENTS as u64).collect::<Vec<_>>());
    let elapsed = started.elapsed();
    let mut n = 0u128;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), reads.next()).await {
        n += 1;
    }
    // Bounded by the elapsed time itself, never by a guess of it.
    let bound = elapsed.as_millis() / interval.as_millis() + 2;
    assert!(
        n <= bound && n < EVENTS as u128,
        "{n} reads for {EVENTS} events over {elapsed:?} (at most {bound} expected)"
    );
}

/// A consumer waiting out its read interval reads at once when hurried,
/// also when hurried before the live message came: whoever waits on it
/// (a command deciding on a caught-up view) is not left to the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hurried_consumer_reads_before_its_interval_ends() {
    let nats = NatsServer::start().expect("nats-server");
    let mut source = Source::start(&nats).await;
    // Longer than the test may take: only a hurry can end the wait (nor
    // may a quiet poll of the head read the event instead).
    let interval = Duration::from_secs(3600);
    let mut c = consumer(&nats, start_of_log())
        .await
        .with_read_interval(interval)
        .with_poll_interval(interval);
    let hurry = c.hurry();
    source.produce(1, true).await;
    assert_eq!(
        take(&mut c, 1).await,
        [1],
        "the first message after a quiet spell is read at once"
    );

    // Within the interval: the live message is held until the hurry.
    source.produce(1, true).await;
    let waiting = tokio::spawn(async move {
        let got = take(&mut c, 1).await;
        (c, got)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "read before the interval ended, unhurried");
    hurry.now();
    let (mut c, got) = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("read once hurried")
        .expect("task");
    assert_eq!(got, [2]);

    // Hurried first, told after: the hurry is kept for the next wait.
    hurry.now();
    source.produce(1, true).await;
    let got = tokio::time::timeout(Duration::from_secs(30), take(&mut c, 1))
        .await
        .expect("read at once");
    assert_eq!(got, [3]);
}
