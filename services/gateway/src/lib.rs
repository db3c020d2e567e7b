//! The HTTP gateway: the API for people and tools (docs/design.md, HTTP API).
//!
//! Owns: bearer-token authentication, the role a route needs, turning an
//! HTTP request into a command or query on NATS (ids it mints, idempotency,
//! expected version, trace context) and a reply into JSON or an RFC 9457
//! problem, `/healthz`, `/readyz` and `/openapi.json`. Every `/v1` route
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
/// How long `/readyz` waits for each service's `$SRV.STATS`.
pub const READY_PING_TIMEOUT: Duration = Duration::from_secs(1);

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
}

pub static OWN: &[Own] = &[
    Own {
        path: "/healthz",
        methods: || get(healthz),
        operation_id: "health.healthz",
        summary: "The process is up (it answers); says nothing of its dependencies",
        responses: &[(200, "the gateway process is up")],
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
    },
    Own {
        path: "/openapi.json",
        methods: || get(openapi::serve),
        operation_id: "health.openapi",
        summary: "This document",
        responses: &[(200, "the OpenAPI 3.1 description of the API")],
    },
];

pub fn router(client: async_nats::Client, config: Config) -> Router {
    app(client, config).0
}

/// The router and its state (which [`serve`] tells when it stops).
fn app(client: async_nats::Client, config: Config) -> (Router, AppState) {
    let timeout = config.request_timeout_total;
    let state: AppState = Arc::new(Gateway {
        client,
        config,
        streams: sse::Streams::default(),
        closing: tokio::sync::watch::channel(false).0,
    });
    let router = OWN
        .iter()
        .fold(handler::routes(), |router, own| router.route(own.path, (own.methods)()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), access::record))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn(move |req, next| within(timeout, req, next)))
        .layer(axum::middleware::from_fn(no_store))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(Arc::clone(&state));
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

async fn readyz(State(gw): State<AppState>) -> Response {
    let connected = gw.client.connection_state() == NatsState::Connected;
    let mut services = serde_json::Map::new();
    let mut all = connected;
    // Reads wait on the access log: no audit, no read.
    let audit = gw.config.access_log && !gw.config.services.contains(&Service::Audit);
    for s in gw.config.services.iter().chain(audit.then_some(&Service::Audit)) {
        let ready = service_ready(&gw.client, *s).await;
        all &= ready.is_ok();
        services.insert(s.to_string(), json!(ready.err().unwrap_or_else(|| "up".to_owned())));
    }
    if gw.config.projector {
        let asked = gw
            .client
            .send_request(
                subjects::query(concord_bus::permissions::PROJECTOR, "health"),
                async_nats::Request::new().timeout(Some(READY_PING_TIMEOUT)),
            )
            .await;
        let up = asked.is_ok_and(|m| {
            matches!(
                concord_core::reply::Reply::parse(&m.payload),
                Ok(concord_core::reply::Reply::Ok(_))
            )
        });
        all &= up;
        services.insert(
            concord_bus::permissions::PROJECTOR.to_owned(),
            json!(if up { "up" } else { "down" }),
        );
    }
    let report = json!({"nats": if connected {"connected"} else {"disconnected"}, "services": services});
    if all {
        (StatusCode::OK, axum::Json(json!({"status": "ready", "checks": report}))).into_response()
    } else {
        Problem::new(ErrorCode::Unavailable, "not ready")
            .with_details(report)
            .into_response()
    }
}
