//! The HTTP gateway: the API for people and tools (docs/design.md, HTTP API).
//!
//! Owns: bearer-token authentication, the role a route needs, turning an
//! HTTP request into a command or query on NATS (ids it mints, idempotency,
//! expected version, trace context) and a reply into JSON or an RFC 9457
//! problem, `/healthz`, `/readyz` (from a check kept current in the
//! background), `/metrics` and `/openapi.json`. Every `/v1` route
//! is a row of one table ([`routes::ROUTES`]) from which the router and the
//! OpenAPI document are both derived; a command's fields are described
//! only by the service's JSON Schema.
//!
//! Must not: hold state, touch a log, or decide a business rule: every
//! rule and every visibility check is the owning service's, so a client on
//! NATS gets the same answers as one on HTTP.

pub mod access;
pub mod auth;
pub mod body;
pub mod call;
pub mod export;
pub mod handler;
pub mod openapi;
pub mod parse_errors;
pub mod problem;
pub mod respond;
pub mod routes;
pub mod sse;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State as NatsState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use concord_bus::runtime::Health;
use concord_core::reply::ErrorCode;
use concord_core::{Service, subjects};
use serde_json::json;

use crate::problem::Problem;

/// Largest request body accepted (413 beyond). Commands are small; the
/// biggest event a log takes is 64 KiB of data.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Connections served at once; past it the listener accepts no more until
/// one closes (the kernel's backlog holds them). Rationale: each holds a
/// task and buffers; unbounded, idle or slow clients exhaust memory and
/// file descriptors for everyone.
pub const CONNECTIONS_MAX: usize = 1024;
/// How long a client may take to send a request's headers; then the
/// connection is closed. Rationale: a client holding headers open (70 s
/// was accepted) holds a connection slot for nothing.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take from its headers to its answer (reading
/// its body included); then it is answered 408. Rationale: a body sent a
/// byte at a time holds a slot as long as headers held open would; the
/// longest honest request is a NATS round trip (`call::REQUEST_TIMEOUT`).
pub const REQUEST_TIMEOUT_TOTAL: Duration = Duration::from_secs(30);
/// Most request headers one request may carry (431 beyond).
pub const HEADERS_MAX: usize = 64;
/// How long the readiness check waits for each service's `$SRV.STATS`
/// (all are asked at once).
pub const READY_PING_TIMEOUT: Duration = Duration::from_millis(500);
/// How often readiness is checked in the background. Rationale: `/readyz`
/// answers from the last check, so a probe with a short timeout never
/// waits on NATS (a probe once took 4 s during an outage); with the ping
/// timeout, what it says is at most ~1 s old.
pub const READY_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// A check older than this (the checking task stalled) is not trusted.
pub const READY_STALE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Config {
    /// The keys bearer tokens are verified with: the demo's HS256 secret
    /// and/or an identity provider's public keys (JWKS).
    pub keys: concord_core::auth::Keys,
    /// How their registered claims are judged (skew, lifetime, iss, aud).
    pub token_rules: concord_core::auth::Rules,
    /// How long a NATS request may take before the client gets 503.
    pub request_timeout: Duration,
    /// The services `/readyz` expects to answer.
    pub services: Vec<Service>,
    /// Whether `/readyz` expects the projector (the views) to answer.
    pub projector: bool,
    /// Whether every read is recorded in the audit's access log before it
    /// is answered (`access`); `concord up` and `concord serve gateway`
    /// always set it, a test of the gateway alone may leave it out.
    pub access_log: bool,
    /// Limits of the HTTP edge (the constants above unless a test sets
    /// others).
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub request_timeout_total: Duration,
}

impl Config {
    /// Tokens signed with the demo's HS256 `secret`.
    pub fn new(secret: Vec<u8>, services: Vec<Service>) -> Config {
        Config::with_keys(concord_core::auth::Keys::secret(secret), services)
    }

    /// Tokens verified with `keys`.
    pub fn with_keys(keys: concord_core::auth::Keys, services: Vec<Service>) -> Config {
        Config {
            keys,
            token_rules: concord_core::auth::Rules::default(),
            request_timeout: call::REQUEST_TIMEOUT,
            services,
            projector: false,
            access_log: false,
            connections_max: CONNECTIONS_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout_total: REQUEST_TIMEOUT_TOTAL,
        }
    }
}

pub struct Gateway {
    pub client: async_nats::Client,
    pub config: Config,
    /// The event streams open per token.
    pub streams: sse::Streams,
    /// Set when the gateway stops: open event streams end.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The last readiness check ([`check_readiness`], kept current in the
    /// background); none before the first.
    pub readiness: tokio::sync::watch::Receiver<Option<Checked>>,
}

/// One readiness check of everything the gateway depends on.
#[derive(Debug, Clone)]
pub struct Checked {
    pub at: std::time::Instant,
    /// Each service, the audit and the projector: `up` or why not.
    pub services: serde_json::Map<String, serde_json::Value>,
    pub ready: bool,
}

pub type AppState = Arc<Gateway>;

/// A route of the gateway itself, outside the table: a GET that needs no
/// token and asks no service a command or query.
pub struct Own {
    pub path: &'static str,
    pub methods: fn() -> MethodRouter<AppState>,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// The answers it gives, `(status, description)`.
    pub responses: &'static [(u16, &'static str)],
    /// The media type of its successful answer.
    pub media: &'static str,
}

pub static OWN: &[Own] = &[
    Own {
        path: "/healthz",
        methods: || get(healthz),
        operation_id: "health.healthz",
        summary: "The process is up (it answers); says nothing of its dependencies",
        responses: &[(200, "the gateway process is up")],
        media: "application/json",
    },
    Own {
        path: "/readyz",
        methods: || get(readyz),
        operation_id: "health.readyz",
        summary: "Ready: NATS connected, every configured service answering its `$SRV.STATS` and following the logs it decides with, and the projector answering",
        responses: &[
            (200, "NATS connected and every service answers and follows its sources"),
            (503, "not ready; `details` says what is missing"),
        ],
        media: "application/json",
    },
    Own {
        path: "/metrics",
        methods: || get(metrics_text),
        operation_id: "health.metrics",
        summary: "Metrics in Prometheus text format: commands by service, command and result, append batch sizes and fsync latency, consumer lag, HTTP latency by route, open event streams (every part running in this process)",
        responses: &[(200, "the metrics, Prometheus text format 0.0.4")],
        media: "text/plain",
    },
    Own {
        path: "/openapi.json",
        methods: || get(openapi::serve),
        operation_id: "health.openapi",
        summary: "This document",
        responses: &[(200, "the OpenAPI 3.1 description of the API")],
        media: "application/json",
    },
];

pub fn router(client: async_nats::Client, config: Config) -> Router {
    app(client, config).0
}

/// The router and its state (which [`serve`] tells when it stops).
fn app(client: async_nats::Client, config: Config) -> (Router, AppState) {
    let timeout = config.request_timeout_total;
    let (ready_tx, readiness) = tokio::sync::watch::channel(None);
    let state: AppState = Arc::new(Gateway {
        client,
        config,
        streams: sse::Streams::default(),
        closing: tokio::sync::watch::channel(false).0,
        readiness,
    });
    tokio::spawn(keep_readiness(Arc::downgrade(&state), ready_tx));
    let router = OWN
        .iter()
        .fold(handler::routes(), |router, own| router.route(own.path, (own.methods)()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), access::record))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(move |req, next| within(timeout, req, next)))
        .layer(axum::middleware::from_fn(no_store))
        .layer(axum::middleware::from_fn(observe))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::extract::Request| {
                    let incoming = req.headers().get(call::TRACEPARENT).and_then(|v| v.to_str().ok());
                    let span = tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %req.uri().path(),
                        trace_id = tracing::field::Empty
                    );
                    concord_bus::trace::continue_from(&span, incoming);
                    let own = concord_bus::trace::traceparent_of(&span);
                    let trace_id = own
                        .as_deref()
                        .or(incoming)
                        .and_then(concord_bus::trace::trace_id_of)
                        .unwrap_or("");
                    span.record("trace_id", trace_id);
                    span
                })
                .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(axum::middleware::from_fn(trace_context))
        .with_state(Arc::clone(&state));
    concord_bus::metrics::install();
    (router, state)
}

/// Nothing the API answers may be kept by a cache between the caller and
/// the gateway: it is police data, and what a country may see changes.
async fn no_store(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// The request answered within `limit`, or a 408 problem.
async fn within(limit: Duration, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => Problem::http(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {limit:?}"),
        )
        .into_response(),
    }
}

/// Serves the API on `listener` until `shutdown` resolves; requests in
/// flight are finished first. HTTP/1.1, at most `connections_max`
/// connections at once, headers within `header_read_timeout`; a request
/// hyper cannot parse is answered with a problem too.
pub async fn serve(
    listener: tokio::net::TcpListener,
    client: async_nats::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let slots = Arc::new(tokio::sync::Semaphore::new(config.connections_max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_headers(HEADERS_MAX);
    let (app, state) = app(client, config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, not die.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // What hyper answers by itself, to a request it cannot parse, goes
        // out as a problem like every other error (`parse_errors`).
        let (io, service) = parse_errors::watch(stream, hyper_util::service::TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Event streams end (a client reconnects elsewhere with Last-Event-ID);
    // requests in flight finish; idle connections close.
    state.closing.send_replace(true);
    if tokio::time::timeout(REQUEST_TIMEOUT_TOTAL, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {REQUEST_TIMEOUT_TOTAL:?}; stopping anyway");
    }
    Ok(())
}

async fn not_found() -> Problem {
    Problem::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::http(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method")
}

async fn metrics_text() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, concord_bus::metrics::CONTENT_TYPE)],
        concord_bus::metrics::render(),
    )
        .into_response()
}

/// Times each request by its route's template (never the ids in it: a
/// series per operation would grow without bound and say who is worked
/// on), its method and status.
async fn observe(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    metrics::histogram!(
        concord_bus::metrics::HTTP_SECONDS,
        "method" => method,
        "route" => route,
        "status" => resp.status().as_u16().to_string()
    )
    .record(started.elapsed().as_secs_f64());
    resp
}

/// Gives a request without a valid W3C `traceparent` a new trace, so that
/// its log lines, the NATS requests it makes and the events they append
/// all carry one trace id.
async fn trace_context(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    call::ensure_traceparent(req.headers_mut());
    next.run(req).await
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// One service's readiness: `up`, `down` (it does not answer), or `not
/// ready: <why>` (it answers, but stopped following a log it decides
/// with, so it answers `unavailable`).
async fn service_ready(client: &async_nats::Client, service: Service) -> Result<(), String> {
    let stats = client
        .send_request(
            subjects::service_api("STATS", service.as_str()),
            async_nats::Request::new().timeout(Some(READY_PING_TIMEOUT)),
        )
        .await
        .map_err(|_| "down".to_owned())?;
    // Each endpoint carries the service's health; one says it.
    let health = concord_core::json::parse(&stats.payload)
        .ok()
        .and_then(|v| v.pointer("/endpoints/0/data").cloned())
        .and_then(|d| serde_json::from_value::<Health>(d).ok());
    match health {
        Some(h) if !h.ready => Err(format!(
            "not ready: {}",
            h.reason.unwrap_or_else(|| "no reason given".to_owned())
        )),
        Some(_) => Ok(()),
        None => Err("not ready: its STATS carry no health".to_owned()),
    }
}

/// Checks readiness every [`READY_CHECK_INTERVAL`] until the gateway is
/// gone (only a weak reference is kept between checks).
async fn keep_readiness(gw: std::sync::Weak<Gateway>, tx: tokio::sync::watch::Sender<Option<Checked>>) {
    loop {
        let Some(gw) = gw.upgrade() else { return };
        let checked = check_readiness(&gw).await;
        tx.send_replace(Some(checked));
        drop(gw);
        tokio::time::sleep(READY_CHECK_INTERVAL).await;
    }
}

/// Asks every part at once, each within [`READY_PING_TIMEOUT`].
pub async fn check_readiness(gw: &Gateway) -> Checked {
    // Reads wait on the access log: no audit, no read.
    let audit = gw.config.access_log && !gw.config.services.contains(&Service::Audit);
    let parts: Vec<Service> = gw
        .config
        .services
        .iter()
        .copied()
        .chain(audit.then_some(Service::Audit))
        .collect();
    let services_asked = futures::future::join_all(parts.iter().map(|s| service_ready(&gw.client, *s)));
    let projector_asked = async {
        if !gw.config.projector {
            return None;
        }
        let asked = gw
            .client
            .send_request(
                subjects::query(concord_bus::permissions::PROJECTOR, "health"),
                async_nats::Request::new().timeout(Some(READY_PING_TIMEOUT)),
            )
            .await;
        Some(asked.is_ok_and(|m| {
            matches!(
                concord_core::reply::Reply::parse(&m.payload),
                Ok(concord_core::reply::Reply::Ok(_))
            )
        }))
    };
    let (answers, projector) = futures::future::join(services_asked, projector_asked).await;
    let mut services = serde_json::Map::new();
    let mut ready = true;
    for (s, answer) in parts.iter().zip(answers) {
        ready &= answer.is_ok();
        services.insert(s.to_string(), json!(answer.err().unwrap_or_else(|| "up".to_owned())));
    }
    if let Some(up) = projector {
        ready &= up;
        services.insert(
            concord_bus::permissions::PROJECTOR.to_owned(),
            json!(if up { "up" } else { "down" }),
        );
    }
    Checked {
        at: std::time::Instant::now(),
        services,
        ready,
    }
}

/// Answers from the last background check and the NATS connection's state
/// now: never waits on NATS, except for the very first check after start
/// (at most [`READY_PING_TIMEOUT`] and a little).
async fn readyz(State(gw): State<AppState>) -> Response {
    let nats = match gw.client.connection_state() {
        NatsState::Connected => "connected",
        NatsState::Disconnected => "disconnected",
        NatsState::Pending => "connecting",
    };
    let mut rx = gw.readiness.clone();
    let first = tokio::time::timeout(READY_PING_TIMEOUT * 2, rx.wait_for(Option::is_some)).await;
    let checked = match first {
        Ok(Ok(c)) => c.clone(),
        _ => None,
    };
    let (services, ready, age) = match checked {
        Some(c) => (json!(c.services), c.ready, Some(c.at.elapsed())),
        None => (json!("not checked yet"), false, None),
    };
    let stale = age.is_none_or(|a| a > READY_STALE);
    let mut report = json!({"nats": nats, "services": services});
    if let Some(age) = age {
        report["checked_ms_ago"] = json!(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
    }
    if stale && age.is_some() {
        report["stale"] = json!(true);
    }
    if ready && nats == "connected" && !stale {
        (StatusCode::OK, axum::Json(json!({"status": "ready", "checks": report}))).into_response()
    } else {
        Problem::new(ErrorCode::Unavailable, "not ready")
            .with_details(report)
            .into_response()
    }
}
