//! The kernel's NATS side: serving a log on `concord.log.<service>.read` and
//! `.head`, and the client calls that read them. Every answer names the
//! log's identity, so a reader can tell when another log answers.
//!
//! Must not: decide anything about a domain, answer from anything but the
//! durable log or the committed tail it keeps in memory (a reader must
//! only ever see acknowledged events), or share
//! a log's subjects in a queue group (a log has one writer, and every
//! instance that answers for it must be heard).

use std::future::Future;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use concord_core::envelope::{EventEnvelope, Service};
use concord_core::reply::{ErrorCode, Reply};
use concord_core::subjects;
use concord_log::{Log, LogError, LogIdentity, READ_BATCH_EVENTS_MAX};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("{subject}: no service answers")]
    NoResponders { subject: String },
    #[error("{subject}: peer refused ({code:?}): {message}")]
    Refused {
        subject: String,
        code: ErrorCode,
        message: String,
    },
    #[error("{subject}: malformed reply: {reason}")]
    Malformed { subject: String, reason: String },
}

/// `concord.log.<service>.read` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogReadRequest {
    pub from_seq: u64,
    pub max_events: usize,
}

/// Events read from a peer's log, with their bytes exactly as stored.
#[derive(Debug, Clone)]
pub struct LogRead {
    pub events: Vec<EventEnvelope>,
    pub raw: Vec<String>,
    pub head_seq: u64,
    /// Which log answered; `None` from a release before log identities.
    pub identity: Option<LogIdentity>,
}

/// What `concord.log.<service>.head` answers: where the log stands and
/// which log it is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct LogHead {
    pub seq: u64,
    pub hash: String,
    /// `None` from a release before log identities.
    #[serde(default)]
    pub identity: Option<LogIdentity>,
}

fn log_error_reply(e: &LogError) -> Reply {
    match e {
        LogError::Invalid(_) => Reply::error(ErrorCode::Invalid, e.to_string()),
        LogError::Conflict { .. } => Reply::error(ErrorCode::Conflict, e.to_string()),
        LogError::Unavailable { .. } => Reply::error(ErrorCode::Unavailable, e.to_string()),
        _ => Reply::error(ErrorCode::Internal, e.to_string()),
    }
}

/// Answers a read request; the events go into the reply as they are stored
/// (no re-serialization, so a reader can re-verify the chain byte for byte).
async fn answer_read(log: &Log, payload: &[u8]) -> Vec<u8> {
    let req: LogReadRequest = match concord_core::json::from_slice(payload) {
        Ok(r) => r,
        Err(e) => {
            return Reply::error(
                ErrorCode::Invalid,
                format!("log read request must be {{\"from_seq\": u64, \"max_events\": u64}}: {e}"),
            )
            .to_bytes();
        }
    };
    // The tail, which is what live consumers read, is answered in place;
    // anything older is read from disk off the async threads.
    let read = match log.read_recent(req.from_seq, req.max_events) {
        Some(batch) => Ok(Ok(batch)),
        None => {
            let log2 = log.clone();
            tokio::task::spawn_blocking(move || log2.read_from(req.from_seq, req.max_events)).await
        }
    };
    match read {
        Ok(Ok(batch)) => {
            let mut out = Vec::with_capacity(64 + batch.events.iter().map(|e| e.bytes.len() + 1).sum::<usize>());
            out.extend_from_slice(
                format!(
                    "{{\"ok\":true,\"head_seq\":{},\"identity\":\"{}\",\"events\":[",
                    batch.head_seq,
                    log.identity()
                )
                .as_bytes(),
            );
            for (i, e) in batch.events.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&e.bytes);
            }
            out.extend_from_slice(b"]}");
            out
        }
        Ok(Err(e)) => log_error_reply(&e).to_bytes(),
        Err(e) => Reply::error(ErrorCode::Internal, format!("read task failed: {e}")).to_bytes(),
    }
}

/// A log's read subjects, subscribed and ready to answer.
pub struct LogServer {
    client: async_nats::Client,
    log: Log,
    reads: async_nats::Subscriber,
    heads: async_nats::Subscriber,
}

impl LogServer {
    /// Subscribes `log.read` and `log.head` of `log`'s service; when this
    /// returns, the server has registered them (requests will be answered).
    ///
    /// Plain subscriptions, not a queue group: were a second instance ever
    /// to serve another log of the service, a queue group would hand each
    /// request to one of them at random, and a reader would see two
    /// histories as one. Subscribed by all, every instance hears every
    /// request, and the identity in its answer tells them apart.
    pub async fn bind(client: async_nats::Client, log: Log) -> Result<LogServer, BusError> {
        let service = log.service();
        let nats = |e: async_nats::SubscribeError| BusError::Nats(e.to_string());
        let reads = client.subscribe(subjects::log_read(service)).await.map_err(nats)?;
        let heads = client.subscribe(subjects::log_head(service)).await.map_err(nats)?;
        client.flush().await.map_err(|e| BusError::Nats(e.to_string()))?;
        Ok(LogServer {
            client,
            log,
            reads,
            heads,
        })
    }

    /// Answers until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), BusError> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                msg = self.reads.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    let Some(reply) = msg.reply else { continue };
                    let body = answer_read(&self.log, &msg.payload).await;
                    let _ = self.client.publish(reply, body.into()).await;
                }
                msg = self.heads.next() => {
                    let Some(msg) = msg else { return Ok(()) };
                    let Some(reply) = msg.reply else { continue };
                    let head = self.log.head();
                    let body = Reply::ok(LogHead {
                        seq: head.seq,
                        hash: head.hash,
                        identity: Some(self.log.identity()),
                    })
                    .to_bytes();
                    let _ = self.client.publish(reply, body.into()).await;
                }
            }
        }
    }
}

/// Serves `log.read` and `log.head` for `log` until `shutdown` resolves.
pub async fn serve_log(
    client: async_nats::Client,
    log: Log,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BusError> {
    LogServer::bind(client, log).await?.run(shutdown).await
}

/// Sends a request and parses the reply, turning refusals into errors.
pub async fn request(
    client: &async_nats::Client,
    subject: String,
    body: Vec<u8>,
) -> Result<serde_json::Map<String, serde_json::Value>, BusError> {
    let msg = client
        .request(subject.clone(), body.into())
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => BusError::NoResponders {
                subject: subject.clone(),
            },
            _ => BusError::Nats(format!("{subject}: {e}")),
        })?;
    match Reply::parse(&msg.payload) {
        Ok(Reply::Ok(map)) => Ok(map),
        Ok(Reply::Err(e)) => Err(BusError::Refused {
            subject,
            code: e.code,
            message: e.message,
        }),
        Err(reason) => Err(BusError::Malformed { subject, reason }),
    }
}

/// Reads a peer's log from `from_seq` (at most `max_events`).
pub async fn fetch_log(
    client: &async_nats::Client,
    service: Service,
    from_seq: u64,
    max_events: usize,
) -> Result<LogRead, BusError> {
    #[derive(Deserialize)]
    struct Wire {
        ok: bool,
        head_seq: u64,
        #[serde(default)]
        identity: Option<LogIdentity>,
        events: Vec<Box<RawValue>>,
    }
    let subject = subjects::log_read(service);
    let body = serde_json::to_vec(&LogReadRequest {
        from_seq,
        max_events: max_events.min(READ_BATCH_EVENTS_MAX),
    })
    .unwrap_or_default();
    let msg = client
        .request(subject.clone(), body.into())
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => BusError::NoResponders {
                subject: subject.clone(),
            },
            _ => BusError::Nats(format!("{subject}: {e}")),
        })?;
    let malformed = |reason: String| BusError::Malformed {
        subject: subject.clone(),
        reason,
    };
    // Read once with the events kept as their raw bytes (serde refuses a
    // duplicate member of `Wire`), then each event held to what the strict
    // parser accepts: at once when it is canonical, as a sealed event is,
    // else by the strict parser itself, which names what is wrong.
    let wire = serde_json::from_slice::<Wire>(&msg.payload)
        .map_err(|e| e.to_string())
        .and_then(|w| {
            if !w.ok {
                return Err("not an answer with events".to_owned());
            }
            if w.head_seq > concord_core::chain::INTEGER_MAX {
                return Err(format!("head_seq {} is beyond ±(2^53−1)", w.head_seq));
            }
            for (i, r) in w.events.iter().enumerate() {
                let bytes = r.get().as_bytes();
                if !concord_core::chain::is_canonical(bytes) {
                    concord_core::json::parse(bytes).map_err(|e| format!("event {i} of the answer: {e}"))?;
                }
            }
            Ok(w)
        });
    let wire = match wire {
        Ok(w) => w,
        Err(e) => {
            return match Reply::parse(&msg.payload) {
                Ok(Reply::Err(err)) => Err(BusError::Refused {
                    subject,
                    code: err.code,
                    message: err.message,
                }),
                _ => Err(malformed(e)),
            };
        }
    };
    let mut events = Vec::with_capacity(wire.events.len());
    let mut raw = Vec::with_capacity(wire.events.len());
    for r in wire.events {
        let env: EventEnvelope = serde_json::from_str(r.get()).map_err(|e| malformed(format!("event: {e}")))?;
        events.push(env);
        raw.push(r.get().to_owned());
    }
    Ok(LogRead {
        events,
        raw,
        head_seq: wire.head_seq,
        identity: wire.identity,
    })
}

/// The head `{seq, hash, identity}` of a peer's log.
pub async fn fetch_head(client: &async_nats::Client, service: Service) -> Result<LogHead, BusError> {
    let subject = subjects::log_head(service);
    let map = request(client, subject.clone(), b"{}".to_vec()).await?;
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| BusError::Malformed {
        subject,
        reason: e.to_string(),
    })
}

/// The W3C trace context header, carried from a request onto what it causes.
pub const TRACEPARENT: &str = "traceparent";

/// Publishes freshly appended events on `concord.evt.<service>.<type>`, as
/// stored. Call only after `Log::append` answered (i.e. after the fsync).
/// Core NATS may drop these; consumers fill gaps from `log.read`.
pub async fn publish_appended(client: &async_nats::Client, appended: &concord_log::Appended) -> Result<(), BusError> {
    publish_appended_traced(client, appended, None).await
}

/// `publish_appended` with the `traceparent` of the command that caused it.
pub async fn publish_appended_traced(
    client: &async_nats::Client,
    appended: &concord_log::Appended,
    traceparent: Option<&str>,
) -> Result<(), BusError> {
    for (event, raw) in appended.events.iter().zip(&appended.raw) {
        let subject = subjects::event(event.service, &event.event_type);
        let sent = match traceparent {
            Some(tp) => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(TRACEPARENT, tp);
                client.publish_with_headers(subject, headers, raw.clone().into()).await
            }
            None => client.publish(subject, raw.clone().into()).await,
        };
        sent.map_err(|e| BusError::Nats(e.to_string()))?;
    }
    Ok(())
}
