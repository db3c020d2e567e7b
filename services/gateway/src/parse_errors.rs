//! The answers hyper gives by itself, sent as problems like every other.
//!
//! When hyper cannot parse a request's head (a control byte or a NUL in a
//! header value, a header line without a colon, more than
//! [`crate::HEADERS_MAX`] headers, a head beyond its buffer, a target too
//! long, a malformed request line) it answers by itself, `400`, `431` or
//! `414` with no body, and closes the connection. The router never sees
//! that request, so neither its problems nor its `Cache-Control: no-store`
//! apply, and hyper has no hook to shape that answer. Loosening the parser
//! instead (hyper's `ignore_invalid_headers`) is no option: a proxy in
//! front and the gateway that disagree on what a request holds is how
//! requests are smuggled.
//!
//! So the bytes hyper writes on a connection are followed on their way out
//! ([`ProblemIo`]): each response head is read with `httparse` and its body
//! skipped by its framing (`Content-Length`, chunked; none after a HEAD,
//! a 1xx, 204 or 304). A final answer for which no request was handed to
//! the router ([`Served`] notes each one) is one hyper made itself; when
//! it is an error without `Cache-Control` (every answer of the router
//! carries `no-store`), the problem with the same status is written in its
//! place, with `Cache-Control: no-store` and `Connection: close`, and
//! whatever hyper writes after it is dropped (it writes nothing more: it
//! closes). Whatever it cannot follow (a body running to the close, a
//! protocol switch, a head it cannot read or that is not whole when hyper
//! flushes) makes it step aside: from then on every byte passes unchanged.
//! At worst an answer stays hyper's bare one; an answer of the router is
//! never altered.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use axum::http::{Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::problem::{CONTENT_TYPE, Problem};

/// The longest response head, chunk-size line or trailer section followed.
/// Neither the router nor hyper writes anything near it; past it the
/// bytes pass unchanged, so a stream it misread is never held back.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Most header fields of a response head it reads (the router's carry a
/// handful); a head with more is stepped aside from.
const RESPONSE_HEADERS_MAX: usize = 64;

/// The IO and the service for one connection, watched together: `io` is
/// what hyper reads and writes, `service` what it hands requests to.
pub fn watch<T, S>(io: T, service: S) -> (ProblemIo<T>, Served<S>) {
    let dispatched = Dispatched::default();
    let served = Served {
        inner: service,
        dispatched: dispatched.clone(),
    };
    (ProblemIo::new(io, dispatched), served)
}

/// The requests of a connection handed to the router whose answer's head
/// has not gone out yet, oldest first; `true` for a HEAD, whose answer
/// has no body whatever its `Content-Length` says. hyper answers requests
/// in the order it reads them, so the next answer out is the oldest's.
#[derive(Debug, Clone, Default)]
pub struct Dispatched(Arc<Mutex<VecDeque<bool>>>);

impl Dispatched {
    // A panic while the lock is held cannot leave the queue half changed
    // (each use is one push or pop), so a poisoned lock is used as it is.
    fn push(&self, head: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push_back(head);
    }

    fn pop(&self) -> Option<bool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }
}

/// A connection's service: the router, noting each request it is handed.
#[derive(Debug, Clone)]
pub struct Served<S> {
    inner: S,
    dispatched: Dispatched,
}

impl<S, B> hyper::service::Service<Request<B>> for Served<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, req: Request<B>) -> Self::Future {
        self.dispatched.push(req.method() == Method::HEAD);
        self.inner.call(req)
    }
}

/// A connection's IO whose writes are followed answer by answer (module
/// docs). Reads pass unchanged.
#[derive(Debug)]
pub struct ProblemIo<T> {
    inner: T,
    answers: Answers,
    /// Bytes decided on and not yet taken by `inner`, from `sent` on.
    out: Vec<u8>,
    sent: usize,
}

impl<T> ProblemIo<T> {
    fn new(inner: T, dispatched: Dispatched) -> ProblemIo<T> {
        ProblemIo {
            inner,
            answers: Answers::new(dispatched),
            out: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Writes `out` to `inner` until it is all taken.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

// Not vectored (the trait's default): hyper then writes each answer's head
// and body from one buffer, so a head comes whole in one write.
impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was decided before goes first, so `out` stays one write long.
        ready!(this.poll_send(cx))?;
        this.answers.feed(buf, &mut this.out);
        // Taken now: what the socket does not take yet goes on the next
        // write or flush (hyper flushes whatever it writes).
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.answers.release(&mut this.out);
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.answers.release(&mut this.out);
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Where the stream of answers is.
#[derive(Debug)]
enum State {
    /// Before an answer's head; holds what was written of it so far.
    Head(Vec<u8>),
    /// In a body of known length: this many bytes more.
    Body(u64),
    /// In a chunked body, before a chunk-size line; holds what was written
    /// of the line (already sent on).
    ChunkSize(Vec<u8>),
    /// In a chunk: this many bytes more, its closing CRLF included.
    Chunk(u64),
    /// After the last chunk, before the end of the trailer section; holds
    /// what was written of it (already sent on).
    Trailers(Vec<u8>),
    /// hyper's answer was replaced by a problem: nothing more goes out.
    Replaced,
    /// Framing it cannot follow: every byte passes unchanged.
    Aside,
}

/// What an answer's head says.
enum Head {
    /// Not whole yet.
    Partial,
    /// Not a response head it can read.
    Unreadable,
    /// `len` bytes long; sent on as it is, or replaced by `replacement`;
    /// followed by `next`.
    Whole {
        len: usize,
        next: State,
        replacement: Option<Vec<u8>>,
    },
}

/// The stream of answers hyper writes on one connection, byte by byte.
#[derive(Debug)]
struct Answers {
    state: State,
    dispatched: Dispatched,
}

impl Answers {
    fn new(dispatched: Dispatched) -> Answers {
        Answers {
            state: State::Head(Vec::new()),
            dispatched,
        }
    }

    /// Takes `input`, the next bytes hyper writes, and adds to `out` what
    /// is to go on the wire for them. Only an answer's head is held back
    /// (until it is whole: the decision needs all of it).
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Aside);
            let (next, used) = self.step(state, input, out);
            self.state = next;
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// Sends on a head held back: hyper flushes only whole answers, so a
    /// part of one at a flush is something it cannot follow.
    fn release(&mut self, out: &mut Vec<u8>) {
        if let State::Head(held) = &self.state
            && !held.is_empty()
        {
            out.extend_from_slice(held);
            self.state = State::Aside;
        }
    }

    /// One step over `input` from `state`: the next state and how many
    /// bytes of `input` it took.
    fn step(&self, state: State, input: &[u8], out: &mut Vec<u8>) -> (State, usize) {
        match state {
            State::Aside => {
                out.extend_from_slice(input);
                (State::Aside, input.len())
            }
            State::Replaced => (State::Replaced, input.len()),
            State::Body(left) => {
                let n = pass(left, input, out);
                (after(left, n, State::Head(Vec::new()), State::Body), n)
            }
            State::Chunk(left) => {
                let n = pass(left, input, out);
                (after(left, n, State::ChunkSize(Vec::new()), State::Chunk), n)
            }
            State::Head(mut held) => {
                let before = held.len();
                held.extend_from_slice(input);
                match self.head(&held) {
                    Head::Whole { len, next, replacement } if len > before => {
                        match replacement {
                            Some(problem) => out.extend_from_slice(&problem),
                            None => out.extend_from_slice(&held[..len]),
                        }
                        (next, len - before)
                    }
                    Head::Partial if held.len() <= HEAD_BYTES_MAX => (State::Head(held), input.len()),
                    // Too long, unreadable, or (cannot be: it was not whole
                    // before) whole within what was held.
                    _ => {
                        out.extend_from_slice(&held);
                        (State::Aside, input.len())
                    }
                }
            }
            State::ChunkSize(mut line) => {
                let before = line.len();
                line.extend_from_slice(input);
                match httparse::parse_chunk_size(&line) {
                    Ok(httparse::Status::Complete((len, size))) if len > before => {
                        let used = len - before;
                        out.extend_from_slice(&input[..used]);
                        let next = match size {
                            0 => State::Trailers(Vec::new()),
                            size => State::Chunk(size.saturating_add(2)),
                        };
                        (next, used)
                    }
                    Ok(httparse::Status::Partial) if line.len() <= HEAD_BYTES_MAX => {
                        out.extend_from_slice(input);
                        (State::ChunkSize(line), input.len())
                    }
                    _ => {
                        out.extend_from_slice(input);
                        (State::Aside, input.len())
                    }
                }
            }
            State::Trailers(mut held) => {
                let before = held.len();
                held.extend_from_slice(input);
                // The section ends at the first empty line: at once when
                // there are no trailers (RFC 9112, 7.1).
                let end = if held.starts_with(b"\r\n") {
                    Some(2)
                } else {
                    held.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
                };
                match end {
                    Some(end) if end > before => {
                        let used = end - before;
                        out.extend_from_slice(&input[..used]);
                        (State::Head(Vec::new()), used)
                    }
                    None if held.len() <= HEAD_BYTES_MAX => {
                        out.extend_from_slice(input);
                        (State::Trailers(held), input.len())
                    }
                    _ => {
                        out.extend_from_slice(input);
                        (State::Aside, input.len())
                    }
                }
            }
        }
    }

    /// Reads the answer's head at the start of `bytes` and decides on it.
    fn head(&self, bytes: &[u8]) -> Head {
        let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Head::Partial,
            Err(_) => return Head::Unreadable,
        };
        let Some(status) = response.code else {
            return Head::Unreadable;
        };
        let headers = &*response.headers;
        let whole = |next, replacement| Head::Whole { len, next, replacement };
        if (100..200).contains(&status) {
            // An interim answer (100 Continue) comes before the final one;
            // after a 101 the connection speaks another protocol.
            return whole(
                if status == 101 {
                    State::Aside
                } else {
                    State::Head(Vec::new())
                },
                None,
            );
        }
        let Some(to_head) = self.dispatched.pop() else {
            // No request was handed to the router for it: hyper's own
            // answer to a request it could not parse. Replaced only if it
            // looks like one, an error without `Cache-Control`.
            return if status >= 400 && value(headers, "cache-control").is_none() {
                whole(State::Replaced, Some(problem(status, value(headers, "date"))))
            } else {
                whole(State::Aside, None)
            };
        };
        if to_head || status == 204 || status == 304 {
            return whole(State::Head(Vec::new()), None);
        }
        whole(framing(headers), None)
    }
}

/// Sends on at most `left` bytes of `input`; how many.
fn pass(left: u64, input: &[u8], out: &mut Vec<u8>) -> usize {
    let n = usize::try_from(left).map_or(input.len(), |left| left.min(input.len()));
    out.extend_from_slice(&input[..n]);
    n
}

/// The state after `n` of `left` bytes: `done` once none is left.
fn after(left: u64, n: usize, done: State, more: fn(u64) -> State) -> State {
    match left.saturating_sub(n as u64) {
        0 => done,
        left => more(left),
    }
}

/// The value of the header `name`, if it has one.
fn value<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// How the body after a final answer's head ends (RFC 9112, 6.3).
fn framing(headers: &[httparse::Header<'_>]) -> State {
    let named = |name: &'static str| headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name));
    if let Some(last) = named("transfer-encoding").next_back() {
        // Chunked only when it is the last coding; else the body runs to
        // the close.
        let chunked = last
            .value
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return if chunked {
            State::ChunkSize(Vec::new())
        } else {
            State::Aside
        };
    }
    let mut lengths = named("content-length");
    let length = match (lengths.next(), lengths.next()) {
        (Some(one), None) => std::str::from_utf8(one.value).ok().and_then(|v| v.parse::<u64>().ok()),
        // None: the body runs to the close; several: ambiguous.
        _ => None,
    };
    match length {
        Some(0) => State::Head(Vec::new()),
        Some(n) => State::Body(n),
        None => State::Aside,
    }
}

/// What the client is told: hyper does not say which rule the request
/// broke, only the status.
fn detail(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "the request is not well-formed HTTP/1.1: its request line, a header line \
                                    or a header value is malformed (a control character or NUL in a value, a \
                                    line without a colon …); nothing was done"
            .to_owned(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => format!(
            "the request has more than {} header fields, or a header section larger than the gateway \
             reads; nothing was done",
            crate::HEADERS_MAX
        ),
        StatusCode::URI_TOO_LONG => "the request target is too long; nothing was done".to_owned(),
        _ => "the request could not be read; nothing was done".to_owned(),
    }
}

/// The problem answering in hyper's place, as it goes on the wire; with
/// hyper's `Date`, when it wrote one.
fn problem(status: u16, date: Option<&[u8]>) -> Vec<u8> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::to_vec(&Problem::http(status, detail(status)).body()).unwrap_or_default();
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {CONTENT_TYPE}\r\ncache-control: no-store\r\nconnection: close\r\n\
         content-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes();
    if let Some(date) = date {
        bytes.extend_from_slice(b"date: ");
        bytes.extend_from_slice(date);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(&body);
    bytes
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// hyper's own answer to a request it could not parse, as it writes it.
    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 01 Dec 2025 10:00:00 GMT\r\n\r\n";

    /// Answers of the router as hyper writes them, and whether each
    /// answers a HEAD: a body by length, a 100 Continue before a chunked
    /// body with trailers, a HEAD's answer announcing a length it does not
    /// send, a 204, a problem of the router (with `Cache-Control`), a
    /// chunked body without trailers.
    fn routed() -> (Vec<u8>, Vec<bool>) {
        let bytes = [
            &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}"[..],
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 201 Created\r\ncache-control: no-store\r\ntransfer-encoding: gzip, chunked\r\n\r\n4;x=y\r\nHTTP\r\n18\r\n/1.1 400 Bad Request\r\n\r\n\r\n0\r\nx-t: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncontent-length: 15\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\ncache-control: no-store\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncache-control: no-store\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncache-control: no-store\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ]
        .concat();
        (bytes, vec![false, false, true, false, false, false])
    }

    /// What goes on the wire for `input` written in pieces cut at `cuts`,
    /// when the router was handed requests `dispatched`.
    fn through(input: &[u8], cuts: &[usize], dispatched: &[bool]) -> Vec<u8> {
        let queue = Dispatched::default();
        for d in dispatched {
            queue.push(*d);
        }
        let mut answers = Answers::new(queue);
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([&input.len()]) {
            answers.feed(&input[from..cut], &mut out);
            from = cut;
        }
        out
    }

    /// `through` for every way of cutting `input` in two, and byte by byte;
    /// each must give the same bytes, which are returned.
    fn through_any_cut(input: &[u8], dispatched: &[bool]) -> Vec<u8> {
        let whole = through(input, &[], dispatched);
        for cut in 0..=input.len() {
            assert_eq!(through(input, &[cut], dispatched), whole, "cut at {cut}");
        }
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(through(input, &bytes, dispatched), whole, "byte by byte");
        whole
    }

    /// The problem that replaced hyper's answer: its status and headers,
    /// and its body.
    fn read_problem(bytes: &[u8]) -> (u16, Vec<(String, String)>, Value) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut head = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = head.parse(bytes) else {
            panic!("not a head: {}", String::from_utf8_lossy(bytes))
        };
        let headers = head
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
            .collect::<Vec<_>>();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a length");
        assert_eq!(bytes.len(), len + length, "one answer, nothing after it");
        let body = serde_json::from_slice(&bytes[len..]).expect("JSON");
        (head.code.expect("status"), headers, body)
    }

    #[test]
    fn answers_of_the_router_pass_unchanged() {
        let (routed, dispatched) = routed();
        assert_eq!(through_any_cut(&routed, &dispatched), routed);
    }

    #[test]
    fn hyper_s_own_answer_after_them_becomes_a_problem() {
        let (routed, dispatched) = routed();
        let out = through_any_cut(&[&routed[..], HYPER_400].concat(), &dispatched);
        assert_eq!(&out[..routed.len()], &routed[..]);
        let (status, headers, body) = read_problem(&out[routed.len()..]);
        assert_eq!(status, 400);
        for (name, value) in [
            ("content-type", "application/problem+json"),
            ("cache-control", "no-store"),
            ("connection", "close"),
            ("date", "Mon, 01 Dec 2025 10:00:00 GMT"),
        ] {
            assert!(
                headers.contains(&(name.to_owned(), value.to_owned())),
                "{name}: {headers:?}"
            );
        }
        assert_eq!(body["status"], 400);
        assert_eq!(body["code"], "invalid");
        assert_eq!(body["type"], "https://concord.example/problems/invalid");
        assert_eq!(body["title"], "Invalid request");
        assert!(body["detail"].as_str().is_some_and(|d| d.contains("header")), "{body}");
    }

    #[test]
    fn each_status_keeps_its_own_and_what_follows_is_dropped() {
        for (status, title) in [
            (431, "Request Header Fields Too Large"),
            (414, "URI Too Long"),
            (400, "Invalid request"),
        ] {
            let hyper = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            let out = through(format!("{hyper}more bytes").as_bytes(), &[], &[]);
            let (got, headers, body) = read_problem(&out);
            assert_eq!((got, body["status"].as_u64()), (status, Some(u64::from(status))));
            assert_eq!(body["title"], title);
            assert!(!headers.iter().any(|(k, _)| k == "date"), "hyper wrote none");
        }
    }

    #[test]
    fn what_it_cannot_follow_passes_unchanged() {
        let cases: [(&str, Vec<u8>, &[bool]); 7] = [
            (
                "a body running to the close",
                [
                    &b"HTTP/1.1 200 OK\r\ncache-control: no-store\r\n\r\nbody"[..],
                    HYPER_400,
                ]
                .concat(),
                &[false],
            ),
            (
                "a coding after chunked",
                [
                    &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n0\r\n\r\n"[..],
                    HYPER_400,
                ]
                .concat(),
                &[false],
            ),
            (
                "two lengths",
                [
                    &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-length: 0\r\n\r\n"[..],
                    HYPER_400,
                ]
                .concat(),
                &[false],
            ),
            (
                "a switch of protocol",
                [&b"HTTP/1.1 101 Switching Protocols\r\n\r\n"[..], HYPER_400].concat(),
                &[],
            ),
            ("not a response", [&b"HELLO\r\n\r\n"[..], HYPER_400].concat(), &[]),
            (
                "an answer nobody asked for that is no error",
                [&b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..], HYPER_400].concat(),
                &[],
            ),
            (
                "an error of the router, with cache-control, nobody asked for",
                b"HTTP/1.1 400 Bad Request\r\ncache-control: no-store\r\ncontent-length: 0\r\n\r\n".to_vec(),
                &[],
            ),
        ];
        for (what, input, dispatched) in cases {
            assert_eq!(through_any_cut(&input, dispatched), input, "{what}");
        }
        let long = [&b"HTTP/1.1 200 OK\r\nx: "[..], &vec![b'a'; HEAD_BYTES_MAX]].concat();
        assert_eq!(through(&long, &[], &[false]), long, "a head too long to follow");
    }

    /// Over a pipe narrower than an answer (the socket taking a little at a
    /// time): every byte arrives, in order; a head cut by a flush is sent on.
    #[tokio::test]
    async fn the_io_writes_everything_through_a_narrow_pipe() {
        let (routed, dispatched) = routed();
        let (near, mut far) = tokio::io::duplex(7);
        let (mut io, _) = watch(near, ());
        for d in dispatched {
            io.answers.dispatched.push(d);
        }
        let expected = routed.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.expect("read");
            got
        });
        for piece in routed.chunks(40) {
            io.write_all(piece).await.expect("write");
        }
        io.flush().await.expect("flush");
        io.write_all(b"HTTP/1.1 400 Bad").await.expect("write");
        io.flush().await.expect("flush");
        io.write_all(b" Request\r\n\r\n").await.expect("write");
        io.shutdown().await.expect("shutdown");
        drop(io);
        let got = reader.await.expect("join");
        assert_eq!(got, [&expected[..], b"HTTP/1.1 400 Bad Request\r\n\r\n"].concat());
    }
}
