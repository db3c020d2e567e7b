//! The process's metrics in Prometheus text: the one place the recorder is
//! installed, what each metric means, and rendering it (the gateway's
//! `/metrics`, `concord serve --metrics`). Crates record through the
//! `metrics` facade (a no-op until [`install`]); the names are here so
//! each is written once.
//!
//! Must not: label a metric with anything a country could be told apart
//! by (an id, a country, a subject): labels are services, commands,
//! routes, results and log names only.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Commands answered, by `service`, `command` and `result` (`ok` or the
/// reply's error code).
pub const COMMANDS: &str = "concord_commands_total";
/// Time from a command's arrival to its reply, by `service`.
pub const COMMAND_SECONDS: &str = "concord_command_duration_seconds";
pub use concord_log::metric::{APPEND_BATCH, FSYNC_SECONDS};
/// Events a consumer knows its source has and has not yet applied, by
/// `consumer` and `source`.
pub const CONSUMER_LAG: &str = "concord_consumer_lag_events";
/// HTTP requests by `method`, `route` (the template, never the ids) and
/// `status`, with their duration.
pub const HTTP_SECONDS: &str = "concord_http_request_duration_seconds";
/// Server-Sent Event streams open now.
pub const SSE_OPEN: &str = "concord_sse_connections";
/// Times `concord up` restarted its nats-server child.
pub const NATS_RESTARTS: &str = "concord_nats_server_restarts_total";

/// Upper bounds of the latency buckets, seconds: from a fast fsync
/// (~100 µs) to the longest request the gateway waits for.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of group-commit sizes, events.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// How often histograms' recent samples are folded in.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's Prometheus recorder once (later calls return
/// the same). `None` when another recorder was installed first: then
/// nothing is rendered.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(APPEND_BATCH.to_owned()), BATCH_BUCKETS))
                .and_then(PrometheusBuilder::install_recorder);
            match handle {
                Ok(handle) => {
                    describe();
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".to_owned())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "no metrics upkeep thread: histograms fold in at each scrape only");
                    }
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// The metrics now, in Prometheus text format 0.0.4.
pub fn render() -> String {
    install().map_or_else(String::new, |h| {
        h.run_upkeep();
        h.render()
    })
}

/// The media type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn describe() {
    metrics::describe_counter!(
        COMMANDS,
        "Commands answered, by service, command and result (ok or the error code)"
    );
    metrics::describe_histogram!(
        COMMAND_SECONDS,
        metrics::Unit::Seconds,
        "Time from a command's arrival to its reply, durable append included"
    );
    metrics::describe_histogram!(APPEND_BATCH, metrics::Unit::Count, "Events written by one group commit");
    metrics::describe_histogram!(
        FSYNC_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one group commit's write and fsync"
    );
    metrics::describe_gauge!(
        CONSUMER_LAG,
        metrics::Unit::Count,
        "Events of the source log known and not yet applied by the consumer"
    );
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "HTTP requests by method, route template and status"
    );
    metrics::describe_gauge!(SSE_OPEN, metrics::Unit::Count, "Server-Sent Event streams open now");
    metrics::describe_counter!(NATS_RESTARTS, "Restarts of concord up's own nats-server child");
}

/// Serves [`render`] at `GET /metrics` on `listener` until `stop`
/// resolves: `concord serve --metrics` for a process without the gateway.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    install();
    tokio::pin!(stop);
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics scrape failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => return Ok(()),
        };
        tokio::spawn(async move {
            // One small request per connection; its head fits in 8 KiB.
            let mut head = vec![0u8; 8192];
            let mut read = 0;
            let got = tokio::time::timeout(Duration::from_secs(5), async {
                while read < head.len() {
                    let n = stream.read(&mut head[read..]).await?;
                    if n == 0 {
                        break;
                    }
                    read += n;
                    if head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(got, Ok(Ok(()))) {
                return;
            }
            let line = head[..read].split(|b| *b == b'\n').next().unwrap_or_default();
            let (status, body, kind) = if line.starts_with(b"GET /metrics ") {
                ("200 OK", render(), CONTENT_TYPE)
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics here\n".to_owned(),
                    "text/plain; charset=utf-8",
                )
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
