//! Operating `concord up` as an operator would: its nats-server child
//! killed and restarted under it, `/readyz` saying what is not ready,
//! `/metrics` scraped, and JSON log lines carrying the request's trace id.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ok, up_with};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Generous bounds for what happens in the background; never asserted as
/// a duration.
const DEADLINE: Duration = Duration::from_secs(60);

fn nats_pid(data: &Path) -> String {
    std::fs::read_to_string(data.join("nats").join("nats-server.pid"))
        .expect("nats-server's pid file")
        .trim()
        .to_owned()
}

fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

async fn metrics(sys: &common::Up) -> String {
    let r = sys.call("GET", "/metrics", None, &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    String::from_utf8(r.body).expect("utf-8")
}

/// The value of the series `name{labels…}` whose labels include every one
/// of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        (n == name && labels.iter().all(|want| rest.contains(want)))
            .then(|| value.parse().ok())
            .flatten()
    })
}

fn is_uuid_like(word: &str) -> bool {
    word.len() == 36 && word.bytes().filter(|b| *b == b'-').count() == 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concord_up_restarts_its_nats_server_and_reports_it() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up_with(&data, &common::free_addr(), &["--log-format", "json"]);

    // A command whose trace the log lines must carry.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let opened = ok(
        &sys.call(
            "POST",
            "/v1/operations",
            Some("FR_COORDINATOR"),
            &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
            Some(json!({"title": "Op Lys", "objective": "o", "lead_country": "FR", "countries": ["DE"]})),
        )
        .await,
        201,
    );
    let op = common::id(&opened);

    // Metrics: the command counted, the append and its fsync timed, the
    // projector's lag, the HTTP request by its route template.
    let deadline = Instant::now() + DEADLINE;
    let text = loop {
        let text = metrics(&sys).await;
        if sample(
            &text,
            "concord_consumer_lag_events",
            &[r#"consumer="projector""#, r#"source="operations""#],
        ) == Some(0.0)
            || Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let commands = sample(
        &text,
        "concord_commands_total",
        &[r#"service="operations""#, r#"command="open""#, r#"result="ok""#],
    );
    assert_eq!(commands, Some(1.0), "{text}");
    for (name, labels) in [
        ("concord_log_fsync_duration_seconds_count", vec![r#"log="operations""#]),
        ("concord_log_append_batch_events_count", vec![r#"log="operations""#]),
        (
            "concord_command_duration_seconds_count",
            vec![r#"service="operations""#],
        ),
        (
            "concord_http_request_duration_seconds_count",
            vec![r#"method="POST""#, r#"route="/v1/operations""#, r#"status="201""#],
        ),
    ] {
        assert!(
            sample(&text, name, &labels).is_some_and(|v| v >= 1.0),
            "{name} {labels:?}:\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "concord_consumer_lag_events",
            &[r#"consumer="projector""#, r#"source="operations""#]
        ),
        Some(0.0),
        "{text}"
    );
    // A histogram, not a summary: buckets an operator can aggregate.
    assert!(text.contains("concord_log_fsync_duration_seconds_bucket{"), "{text}");
    // No series names what was worked on.
    assert!(
        !text
            .split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
            .any(is_uuid_like),
        "an id in the metrics:\n{text}"
    );

    // An open event stream is counted while it is open.
    let sse = {
        let mut stream = tokio::net::TcpStream::connect(&sys.addr).await.expect("connect");
        let req = format!(
            "GET /v1/countries/DE/feed HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            sys.addr,
            sys.token("DE_LIAISON")
        );
        stream.write_all(req.as_bytes()).await.expect("send");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).await.expect("status line");
        assert!(status.contains(" 200 "), "{status}");
        reader
    };
    let text = metrics(&sys).await;
    assert_eq!(sample(&text, "concord_sse_connections", &[]), Some(1.0), "{text}");
    drop(sse);

    // The nats-server child dies: it is started again, the services
    // reconnect, nothing acknowledged is lost.
    let first = nats_pid(&data);
    assert!(running(&first));
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &first])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = nats_pid(&data);
        if now != first && running(&now) {
            break;
        }
        assert!(Instant::now() < deadline, "nats-server was not restarted");
        assert!(matches!(sys.child.try_wait(), Ok(None)), "concord up exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + DEADLINE;
    let ready = loop {
        let r = sys.call("GET", "/readyz", None, &[], None).await;
        if r.status == 200 {
            break r.json();
        }
        // Not ready says why, and in the problem format.
        assert_eq!(r.status, 503);
        let p = r.json();
        assert_eq!(p["code"], "unavailable", "{p}");
        assert!(
            p["details"]["nats"].is_string() && p["details"]["services"].is_object(),
            "{p}"
        );
        assert!(Instant::now() < deadline, "not ready again: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["checks"]["nats"], "connected", "{ready}");
    for part in ["operations", "intel", "crisis", "deployments", "audit", "projector"] {
        assert_eq!(ready["checks"]["services"][part], "up", "{ready}");
    }
    // A command after the restart, retried with its key until answered.
    let deadline = Instant::now() + DEADLINE;
    let task = loop {
        let r = sys
            .call(
                "POST",
                &format!("/v1/operations/{op}/tasks"),
                Some("FR_COORDINATOR"),
                &[("Idempotency-Key", "after-the-restart")],
                Some(json!({"assignee_country": "DE", "title": "t", "details": "d"})),
            )
            .await;
        if r.status == 201 {
            break r.json();
        }
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline, "no answer after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(task["version"], 2, "{task}");
    let seen = ok(&sys.get(&format!("/v1/operations/{op}"), "DE_LIAISON").await, 200);
    assert_eq!(seen["id"], op.as_str(), "{seen}");
    let text = metrics(&sys).await;
    assert_eq!(
        sample(&text, "concord_nats_server_restarts_total", &[]),
        Some(1.0),
        "{text}"
    );
    let deadline = Instant::now() + DEADLINE;
    while sample(&metrics(&sys).await, "concord_sse_connections", &[]) != Some(0.0) {
        assert!(Instant::now() < deadline, "the closed stream is still counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The log lines: one JSON object each; the request's lines carry its
    // trace id, and the restart was logged.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &sys.child.id().to_string()])
        .status();
    let _ = sys.child.wait();
    let stderr = std::fs::read_to_string(data.with_extension("stderr")).expect("stderr");
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["trace_id"] == trace && l["span"]["name"] == "http"),
        "no line of the request with its trace id:\n{stderr}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nats-server child was restarted"))),
        "{stderr}"
    );
    // Everything the log writer wrote is JSON (only the last words of
    // `concord up`, printed for people, are not).
    for l in stderr.lines().filter(|l| !l.starts_with('{')) {
        assert!(l == "stopping" || l.starts_with("warning: "), "not JSON: {l}");
    }
}

/// A start and a clean stop are quiet: the services that follow each
/// other (crisis and deployments) find each other without a warning, and
/// stopping (which stops the nats-server too) does not have every client
/// warn of its lost connection, dozens of lines each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_and_a_clean_stop_warn_of_nothing_expected() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = common::up(&data, &common::free_addr());
    sys.open_operation().await;
    // SIGTERM, then waits for the process to end.
    drop(sys);
    let said = std::fs::read_to_string(data.with_extension("stderr")).expect("up's stderr");
    let noisy: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("NATS client error") || l.contains("cannot reach its source"))
        .collect();
    assert!(
        noisy.is_empty(),
        "{} warnings of an expected start or stop, e.g.:\n{}",
        noisy.len(),
        noisy.iter().take(5).copied().collect::<Vec<_>>().join("\n")
    );
    assert!(said.contains("stopping"), "it stopped cleanly:\n{said}");
}

/// Ctrl-C in the terminal stops the nats-server at the same moment as the
/// services: they do not wait for a server that is gone (a flush would
/// wait for it to come back, for ever) until the stop gives up on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_every_service_though_its_nats_server_goes_first() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = common::up(&data, &common::free_addr());
    sys.open_operation().await;
    let status = sys.interrupt();
    let said = std::fs::read_to_string(data.with_extension("stderr")).expect("up's stderr");
    assert!(status.success(), "a stop on Ctrl-C is a clean exit ({status}):\n{said}");
    assert!(said.contains("stopping"), "it stopped on the signal:\n{said}");
    let stuck: Vec<&str> = said.lines().filter(|l| l.contains("stopping anyway")).collect();
    assert!(stuck.is_empty(), "a service did not stop:\n{}", stuck.join("\n"));
}
