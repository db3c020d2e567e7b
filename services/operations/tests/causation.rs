//! A command carries its cause's clock stamp (`causation_hlc`, sent by a
//! service reacting to an event, never by the gateway): what it appends is
//! stamped after it, even when the cause's clock runs ahead; a malformed
//! stamp is refused as `invalid` and appends nothing.

use concord_bus::logs::{fetch_head, fetch_log};
use concord_bus::service::Config;
use concord_core::reply::Reply;
use concord_core::{Hlc, Service, subjects};
use concord_operations::bind;
use concord_testkit::NatsServer;
use serde_json::{Value, json};

async fn open(client: &async_nats::Client, id: &str, causation_hlc: Value) -> Value {
    let env = json!({
        "command_id": format!("cmd-{id}"),
        "actor": {"sub": "fr-coordinator", "role": "coordinator", "country": "FR"},
        "issued_at": "2026-11-23T10:00:00Z",
        "correlation_id": "req",
        "causation_hlc": causation_hlc,
        "data": {"operation_id": id, "title": "Héron", "objective": "o", "lead_country": "FR", "countries": ["DE"]},
    });
    let msg = client
        .request(
            subjects::command("operations", "open"),
            serde_json::to_vec(&env).expect("json").into(),
        )
        .await
        .expect("reply");
    Reply::parse(&msg.payload).expect("reply").to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_command_appends_is_stamped_after_its_cause() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let svc = bind(&Config::new(dir.path().join("operations")), client.clone())
        .await
        .expect("bind");
    tokio::spawn(svc.run(std::future::pending()));

    // The cause was stamped by a clock 20 s ahead of this service's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    let ahead = u64::try_from(now.as_millis()).expect("ms fit u64") + 20_000;
    let cause = Hlc {
        wall_ms: ahead,
        logical: 4,
    };
    let r = open(
        &client,
        "019ab0c4-5e00-7000-8000-0000000000a1",
        json!({"wall_ms": ahead, "logical": 4}),
    )
    .await;
    assert_eq!(r["ok"], true, "{r}");
    let read = fetch_log(&client, Service::Operations, 1, 10).await.expect("read");
    let stamped = read.events[0].hlc;
    assert!(stamped > cause, "{stamped:?} after its cause {cause:?}");

    for bad in [
        json!({"wall_ms": -1, "logical": 0}),
        json!({"wall_ms": 1}),
        json!({"wall_ms": 1, "logical": 0, "extra": 1}),
        json!("yesterday"),
    ] {
        let r = open(&client, "019ab0c4-5e00-7000-8000-0000000000a2", bad.clone()).await;
        assert_eq!(r["error"]["code"], "invalid", "{bad}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("causation_hlc"), "{message}");
    }
    assert_eq!(fetch_head(&client, Service::Operations).await.expect("head").seq, 1);
}
