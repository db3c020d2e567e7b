//! Trace context across NATS (W3C `traceparent`): a span continues the
//! trace a request or an event names, and what it sends on names it. When
//! spans are exported (the binary installs an OpenTelemetry layer for
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), parents link span to span across the
//! processes: HTTP request → command → decide → append → publish →
//! projector; without one, the trace id alone is passed on, for logs.
//!
//! Must not: export anything itself or depend on an exporter (the binary
//! chooses one; tests use an in-memory one).

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Says spans are exported from now on (the process installed an
/// OpenTelemetry layer): a request without a `traceparent` then starts its
/// trace at its own span rather than under a made-up remote parent.
pub fn set_exporting() {
    EXPORTING.store(true, Ordering::Release);
}

/// Whether [`set_exporting`] was called.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

/// The parts of a valid W3C `traceparent` (version 00–fe, non-zero ids,
/// lower-case hex): trace id, parent span id, flags.
pub fn parse(traceparent: &str) -> Option<(&str, &str, u8)> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match parts.as_slice() {
        [ver, trace, span, flags]
            if hex_of(ver, 2)
                && *ver != "ff"
                && hex_of(trace, 32)
                && hex_of(span, 16)
                && hex_of(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && span.bytes().any(|b| b != b'0') =>
        {
            Some((trace, span, u8::from_str_radix(flags, 16).ok()?))
        }
        _ => None,
    }
}

/// The trace id of a valid `traceparent`, for log lines.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    parse(traceparent).map(|(trace, _, _)| trace)
}

/// Makes `span` a child of the remote span `traceparent` names, when spans
/// are exported and it is valid; else nothing.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    let Some((trace, parent, flags)) = traceparent.and_then(parse) else {
        return;
    };
    let (Ok(trace), Ok(parent)) = (TraceId::from_hex(trace), SpanId::from_hex(parent)) else {
        return;
    };
    let remote = SpanContext::new(trace, parent, TraceFlags::new(flags), true, TraceState::default());
    // Without the OpenTelemetry layer there is nothing to link: fine.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
}

/// The `traceparent` naming `span` when spans are exported; `None` when
/// they are not (the caller passes on what it received).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid()
        .then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}
