//! One trace from the HTTP request to the projector's update: the gateway,
//! the services and the projector run in this process on a real
//! nats-server, with OpenTelemetry's in-memory exporter in place of OTLP,
//! and the spans' parent links are checked across every hop (HTTP → NATS
//! command → decide → append → publish → projector).

use std::time::{Duration, Instant};

use concord_core::auth::{Claims, sign};
use concord_core::{CountryCode, Role, Service};
use concord_testkit::NatsServer;
use concord_testkit::http::request;
use opentelemetry::trace::{SpanId, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const SECRET: &[u8] = b"a test secret of at least thirty-two bytes";

fn token() -> String {
    let claims = Claims {
        sub: "fr-coordinator".to_owned(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("country"),
        exp: chrono::Utc::now().timestamp() + 3600,
        iat: None,
        nbf: None,
        iss: None,
        aud: None,
    };
    sign(&claims, SECRET).expect("sign")
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_links_the_request_to_the_projectors_update() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();
    concord_bus::trace::set_exporting();

    let nats = NatsServer::start().expect("nats-server");
    let dir = tempfile::TempDir::new().expect("tmp");
    let connect = || async { async_nats::connect(nats.url()).await.expect("connect") };
    let cfg = |s| concord_bus::service::Config::in_data_dir(dir.path(), s);
    let ops = concord_operations::bind(&cfg(Service::Operations), connect().await)
        .await
        .expect("operations");
    tokio::spawn(ops.run(std::future::pending()));
    let intel = concord_intel::bind(&cfg(Service::Intel), connect().await)
        .await
        .expect("intel");
    tokio::spawn(intel.run(std::future::pending()));
    let crisis = concord_crisis::bind(&cfg(Service::Crisis), connect().await)
        .await
        .expect("crisis");
    tokio::spawn(crisis.run(std::future::pending()));
    let deployments = concord_deployments::bind(&cfg(Service::Deployments), connect().await)
        .await
        .expect("deployments");
    tokio::spawn(deployments.run(std::future::pending()));
    let _projector = concord_projector::Projector::bind(&concord_projector::dir_in(dir.path()), connect().await)
        .await
        .expect("projector");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let config = concord_gateway::Config::new(SECRET.to_vec(), Service::ALL.to_vec());
    tokio::spawn(concord_gateway::serve(
        listener,
        connect().await,
        config,
        std::future::pending(),
    ));

    let bearer = format!("Bearer {}", token());
    let body = serde_json::to_vec(&json!({
        "title": "Op Lys", "objective": "o", "lead_country": "FR", "countries": ["DE"]
    }))
    .expect("json");
    let r = request(
        &addr,
        "POST",
        "/v1/operations",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        Some(&body),
    )
    .await
    .expect("http");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // Every span of the request's trace, once the projector's is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (http, spans) = loop {
        let spans = exporter.get_finished_spans().expect("spans");
        let http = spans
            .iter()
            .find(|s| s.name == "http" && attribute(s, "path").as_deref() == Some("/v1/operations"))
            .cloned();
        if let Some(http) = http {
            let trace = http.span_context.trace_id();
            let ours: Vec<SpanData> = spans
                .into_iter()
                .filter(|s| s.span_context.trace_id() == trace)
                .collect();
            if ours.iter().any(|s| s.name == "project") {
                break (http, ours);
            }
        }
        assert!(Instant::now() < deadline, "no projector span in the request's trace");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let named = |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let child_of = |name: &str, parent: SpanId| -> &SpanData {
        named(name)
            .into_iter()
            .find(|s| s.parent_span_id == parent)
            .unwrap_or_else(|| {
                panic!(
                    "no {name} span under {parent}: {:#?}",
                    spans
                        .iter()
                        .map(|s| (&s.name, s.span_context.span_id(), s.parent_span_id))
                        .collect::<Vec<_>>()
                )
            })
    };
    // The request's span starts the trace (it came without a traceparent).
    assert_eq!(http.parent_span_id, SpanId::INVALID, "{http:?}");
    let command = child_of("command", http.span_context.span_id());
    assert!(command.parent_span_is_remote, "the command's parent is across NATS");
    assert_eq!(attribute(command, "command").as_deref(), Some("open"));
    assert_eq!(attribute(command, "service").as_deref(), Some("operations"));
    let at = command.span_context.span_id();
    child_of("decide", at);
    child_of("append", at);
    let publish = child_of("publish", at);
    let project = child_of("project", publish.span_context.span_id());
    assert!(project.parent_span_is_remote, "the projector's parent is across NATS");
    assert_eq!(attribute(project, "service").as_deref(), Some("operations"));
    // The trace id is the one the log lines carry.
    assert_eq!(
        attribute(&http, "trace_id").as_deref(),
        Some(http.span_context.trace_id().to_string().as_str())
    );
}
