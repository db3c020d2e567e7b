//! One writing instance per service log, over a real nats-server: a second
//! operations service on another data directory refuses to start, naming
//! the service and both logs; the first keeps serving, alone. The same log
//! takes over again after its instance stopped (a restart).

use concord_bus::logs::request;
use concord_bus::runtime::Bound;
use concord_bus::service::Config;
use concord_core::reply::Reply;
use concord_core::{Service, subjects};
use concord_log::Log;
use concord_operations::{Operations, bind};
use concord_testkit::NatsServer;
use serde_json::{Value, json};

const OP: &str = "019ab0c4-5e00-7000-8000-0000000000aa";

type Running = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>);

fn run_until_stopped(svc: Bound<Operations>) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let _ = svc
            .run(async move {
                let _ = rx.await;
            })
            .await;
    });
    (tx, done)
}

async fn cmd(client: &async_nats::Client, id: &str, command: &str, data: Value) -> Value {
    let env = json!({
        "command_id": id,
        "actor": {"sub": "fr-coordinator", "role": "coordinator", "country": "FR"},
        "issued_at": "2026-11-23T10:00:00Z",
        "correlation_id": id,
        "data": data,
    });
    let msg = client
        .request(
            subjects::command("operations", command),
            serde_json::to_vec(&env).expect("json").into(),
        )
        .await
        .expect("reply");
    Reply::parse(&msg.payload).expect("reply").to_json()
}

/// `log.head` of the operations log as it comes over the bus.
async fn head(client: &async_nats::Client) -> serde_json::Map<String, Value> {
    request(client, subjects::log_head(Service::Operations), b"{}".to_vec())
        .await
        .expect("head")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_operations_instance_on_another_log_refuses_to_start() {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let one = Config::new(dir.path().join("one").join("operations"));
    let two = Config::new(dir.path().join("two").join("operations"));
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let first = bind(&one, async_nats::connect(nats.url()).await.expect("connect"))
        .await
        .expect("the first instance starts");
    let (stop, stopped) = run_until_stopped(first);
    let open =
        json!({"operation_id": OP, "title": "Héron", "objective": "o", "lead_country": "FR", "countries": ["DE"]});
    assert_eq!(cmd(&client, "c1", "open", open).await["ok"], true);
    let first_identity = head(&client).await["identity"].as_str().expect("identity").to_owned();

    let second = bind(&two, async_nats::connect(nats.url()).await.expect("connect")).await;
    let error = match second {
        Ok(_) => panic!("a second operations instance started on another log"),
        Err(e) => e.to_string(),
    };
    // Its log was created before it refused: the error names it.
    let second_identity = Log::open(&two.log_dir, Service::Operations)
        .expect("the refused instance let its log go")
        .identity()
        .to_string();
    assert_ne!(first_identity, second_identity);
    for part in ["operations", first_identity.as_str(), second_identity.as_str()] {
        assert!(error.contains(part), "{part:?} in {error:?}");
    }

    // The first keeps serving, alone.
    let add = json!({"operation_id": OP, "country": "ES"});
    let r = cmd(&client, "c2", "add_participant", add).await;
    assert_eq!(r["version"], json!(2), "{r}");
    let h = head(&client).await;
    assert_eq!(
        (h["seq"].clone(), h["identity"].clone()),
        (json!(2), json!(first_identity))
    );

    // Stopped, the same log takes over again.
    stop.send(()).expect("stop");
    stopped.await.expect("stopped");
    let again = bind(&one, async_nats::connect(nats.url()).await.expect("connect"))
        .await
        .expect("the same log restarts");
    let _running = run_until_stopped(again);
    let add = json!({"operation_id": OP, "country": "IT"});
    assert_eq!(cmd(&client, "c3", "add_participant", add).await["version"], json!(3));
}
