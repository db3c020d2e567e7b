//! The intel service over a real nats-server, beside a real operations
//! service: it learns operations only from their log (started after the
//! operations changed, it catches up), survives a restart without
//! duplicate effects, and refuses malformed input with `invalid`.

use concord_bus::logs::fetch_head;
use concord_core::reply::Reply;
use concord_core::{Service, subjects};
use concord_testkit::NatsServer;
use serde_json::{Value, json};
use uuid::Uuid;

/// A running service: the sender stops it, the handle says when it has.
type Running = (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>);

struct World {
    _nats: NatsServer,
    dir: tempfile::TempDir,
    url: String,
    client: async_nats::Client,
    operations: std::sync::Mutex<Option<Running>>,
}

async fn world() -> World {
    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let w = World {
        url: nats.url(),
        _nats: nats,
        dir,
        client,
        operations: std::sync::Mutex::new(None),
    };
    w.start_operations().await;
    w
}

/// Runs a bound service until the returned sender fires.
fn run_until_stopped<A: concord_core::decider::Aggregate>(svc: concord_bus::runtime::Bound<A>) -> Running {
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

impl World {
    async fn start_operations(&self) {
        let ops = concord_operations::bind(
            &concord_bus::service::Config::new(self.dir.path().join("operations")),
            async_nats::connect(&self.url).await.expect("connect"),
        )
        .await
        .expect("operations");
        *self.operations.lock().expect("lock") = Some(run_until_stopped(ops));
    }

    /// Stops the operations service; NATS stays up.
    async fn stop_operations(&self) {
        let running = self.operations.lock().expect("lock").take();
        if let Some((stop, stopped)) = running {
            stop.send(()).expect("stop");
            stopped.await.expect("stopped");
        }
    }

    /// Starts intel; the returned sender stops it, the handle says when it
    /// has stopped.
    async fn start_intel(&self) -> Running {
        let svc = concord_intel::bind(
            &concord_bus::service::Config::new(self.dir.path().join("intel")),
            async_nats::connect(&self.url).await.expect("connect"),
        )
        .await
        .expect("intel");
        run_until_stopped(svc)
    }

    async fn raw(&self, service: &str, command: &str, body: Vec<u8>) -> Value {
        let subject = subjects::command(service, command);
        let msg = self
            .client
            .request(subject.clone(), body.into())
            .await
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
        Reply::parse(&msg.payload).expect("reply").to_json()
    }

    async fn cmd_as(
        &self,
        command_id: &str,
        service: &str,
        command: &str,
        role: &str,
        country: &str,
        data: Value,
    ) -> Value {
        let env = json!({
            "command_id": command_id,
            "actor": {"sub": format!("{country}-{role}"), "role": role, "country": country},
            "issued_at": "2026-11-23T10:00:00Z",
            "correlation_id": "req",
            "data": data,
        });
        self.raw(service, command, serde_json::to_vec(&env).expect("json"))
            .await
    }

    async fn cmd(&self, service: &str, command: &str, role: &str, country: &str, data: Value) -> Value {
        self.cmd_as(&Uuid::now_v7().to_string(), service, command, role, country, data)
            .await
    }

    async fn post_lead(&self, country: &str, op: Uuid, summary: &str) -> Value {
        self.cmd(
            "intel",
            "post_lead",
            "liaison",
            country,
            json!({"lead_id": Uuid::now_v7(), "operation_id": op, "summary": summary}),
        )
        .await
    }
}

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intel_started_late_catches_up_with_the_operations_log() {
    let w = world().await;
    let op = Uuid::now_v7();
    let open =
        json!({"operation_id": op, "title": "Op", "objective": "o", "lead_country": "FR", "countries": ["MC", "ES"]});
    assert_eq!(w.cmd("operations", "open", "coordinator", "FR", open).await["ok"], true);
    let add = json!({"operation_id": op, "country": "RS"});
    assert_eq!(
        w.cmd("operations", "add_participant", "coordinator", "FR", add).await["ok"],
        true
    );
    let remove = json!({"operation_id": op, "country": "ES"});
    assert_eq!(
        w.cmd("operations", "remove_participant", "coordinator", "FR", remove)
            .await["ok"],
        true
    );

    // Only now does intel start: it knows all of the above from the log.
    let _stop = w.start_intel().await;
    assert_eq!(w.post_lead("MC", op, "prints").await["ok"], true);
    assert_eq!(
        w.post_lead("RS", op, "links").await["ok"],
        true,
        "added later, still a participant"
    );
    assert_eq!(
        code(&w.post_lead("ES", op, "x").await),
        "not_found",
        "removed: may not see it"
    );
    assert_eq!(code(&w.post_lead("US", op, "x").await), "not_found");
    assert_eq!(code(&w.post_lead("MC", Uuid::now_v7(), "x").await), "not_found");

    // A change made while intel runs is known to the very next command.
    let close = json!({"operation_id": op, "outcome": "done"});
    assert_eq!(
        w.cmd("operations", "close", "coordinator", "FR", close).await["ok"],
        true
    );
    assert_eq!(code(&w.post_lead("MC", op, "late").await), "rule_violated");
    assert_eq!(fetch_head(&w.client, Service::Intel).await.expect("head").seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_has_no_duplicate_effect() {
    let w = world().await;
    let op = Uuid::now_v7();
    let open = json!({"operation_id": op, "title": "Op", "objective": "o", "lead_country": "FR", "countries": ["MC"]});
    assert_eq!(w.cmd("operations", "open", "coordinator", "FR", open).await["ok"], true);
    let (stop, stopped) = w.start_intel().await;
    let lead = Uuid::now_v7();
    let data = json!({"lead_id": lead, "operation_id": op, "summary": "prints"});
    let first = w
        .cmd_as("cmd-1", "intel", "post_lead", "liaison", "MC", data.clone())
        .await;
    assert_eq!(first["ok"], true, "{first}");
    stop.send(()).expect("stop");
    stopped.await.expect("stopped");
    assert!(
        fetch_head(&w.client, Service::Intel).await.is_err(),
        "nobody serves intel now"
    );

    let _stop = w.start_intel().await;
    // The retried command answers its first result; nothing is appended.
    let again = w.cmd_as("cmd-1", "intel", "post_lead", "liaison", "MC", data).await;
    assert_eq!(again, first);
    let retract = json!({"lead_id": lead, "reason": "wrong prints"});
    let r = w
        .cmd_as("cmd-2", "intel", "retract_lead", "liaison", "MC", retract.clone())
        .await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        w.cmd_as("cmd-2", "intel", "retract_lead", "liaison", "MC", retract.clone())
            .await,
        r
    );
    // A new command to retract again is a rule violation, not a second event.
    assert_eq!(
        code(&w.cmd("intel", "retract_lead", "liaison", "MC", retract).await),
        "rule_violated"
    );
    assert_eq!(fetch_head(&w.client, Service::Intel).await.expect("head").seq, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_invalid_and_append_nothing() {
    let w = world().await;
    let _stop = w.start_intel().await;
    assert_eq!(
        code(&w.raw("intel", "post_lead", b"{not json".to_vec()).await),
        "invalid"
    );
    let bad_colour = json!({"notice_id": Uuid::now_v7(), "color": "crimson", "subject": {"kind": "person", "description": "d"}, "reason": "r"});
    let r = w.cmd("intel", "request_notice", "liaison", "MC", bad_colour).await;
    assert_eq!(code(&r), "invalid", "{r}");
    let extra = json!({"lead_id": Uuid::now_v7(), "operation_id": Uuid::now_v7(), "summary": "s", "sneaky": true});
    assert_eq!(
        code(&w.cmd("intel", "post_lead", "liaison", "MC", extra).await),
        "invalid"
    );
    assert_eq!(fetch_head(&w.client, Service::Intel).await.expect("head").seq, 0);
}

/// Intel never decides on a view of operations it cannot prove current:
/// with the operations service unreachable (NATS up), a lead to an
/// operation closed just before is answered `unavailable`, never accepted;
/// once operations answers again, so does intel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_operations_log_unreachable_intel_answers_unavailable() {
    let w = world().await;
    let op = Uuid::now_v7();
    let open = json!({"operation_id": op, "title": "Op", "objective": "o", "lead_country": "FR", "countries": ["MC"]});
    assert_eq!(w.cmd("operations", "open", "coordinator", "FR", open).await["ok"], true);
    let _intel = w.start_intel().await;
    assert_eq!(w.post_lead("MC", op, "prints").await["ok"], true);
    let close = json!({"operation_id": op, "outcome": "done"});
    assert_eq!(
        w.cmd("operations", "close", "coordinator", "FR", close).await["ok"],
        true
    );

    w.stop_operations().await;
    let r = w.post_lead("MC", op, "late").await;
    assert_eq!(code(&r), "unavailable", "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("operations"), "{message}");
    assert_eq!(fetch_head(&w.client, Service::Intel).await.expect("head").seq, 1);

    w.start_operations().await;
    assert_eq!(code(&w.post_lead("MC", op, "late").await), "rule_violated");
    let other = Uuid::now_v7();
    let open =
        json!({"operation_id": other, "title": "Op 2", "objective": "o", "lead_country": "FR", "countries": ["MC"]});
    assert_eq!(w.cmd("operations", "open", "coordinator", "FR", open).await["ok"], true);
    assert_eq!(w.post_lead("MC", other, "prints").await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_intel_resumes_its_kept_view_instead_of_refolding_the_operations_log() {
    let w = world().await;
    let op = Uuid::now_v7();
    let open =
        json!({"operation_id": op, "title": "Op", "objective": "o", "lead_country": "FR", "countries": ["MC", "ES"]});
    assert_eq!(w.cmd("operations", "open", "coordinator", "FR", open).await["ok"], true);
    for i in 0..20 {
        let task = json!({"operation_id": op, "task_id": Uuid::now_v7(), "assignee_country": "MC", "title": format!("t{i}"), "details": ""});
        let r = w.cmd("operations", "assign_task", "coordinator", "FR", task).await;
        assert_eq!(r["ok"], true, "{r}");
    }
    let remove = json!({"operation_id": op, "country": "ES"});
    assert_eq!(
        w.cmd("operations", "remove_participant", "coordinator", "FR", remove)
            .await["ok"],
        true
    );
    let head = fetch_head(&w.client, Service::Operations).await.expect("head").seq;
    assert_eq!(head, 22);

    let (stop, stopped) = w.start_intel().await;
    assert_eq!(w.post_lead("MC", op, "prints").await["ok"], true);
    stop.send(()).expect("stop");
    stopped.await.expect("stopped");

    // Sniff intel's reads of the operations log across its restart.
    let mut reads = w
        .client
        .subscribe(subjects::log_read(Service::Operations))
        .await
        .expect("subscribe");
    w.client.flush().await.expect("flush");
    let _running = w.start_intel().await;

    // The view it resumed decides as the one it kept...
    assert_eq!(w.post_lead("MC", op, "more prints").await["ok"], true);
    assert_eq!(
        code(&w.post_lead("ES", op, "x").await),
        "not_found",
        "removed before the restart"
    );
    // ...and it goes on following from there.
    let close = json!({"operation_id": op, "outcome": "done"});
    assert_eq!(
        w.cmd("operations", "close", "coordinator", "FR", close).await["ok"],
        true
    );
    assert_eq!(code(&w.post_lead("MC", op, "late").await), "rule_violated");

    let froms = concord_testkit::sniff::read_froms(&mut reads, std::time::Duration::from_millis(300)).await;
    assert!(
        froms.iter().all(|f| *f >= head),
        "intel read the operations log from {froms:?}, not from where its kept view stood (seq {head})"
    );
}
