//! Black-box: a country's live feed, as Server-Sent Events over HTTP and
//! as NATS messages to a national site, through `concord up`.
//!
//! - DE connected to its event stream receives a task newly assigned to
//!   DE, and nothing of an operation DE is not in nor of a lead restricted
//!   to others; after a dropped connection it resumes with `Last-Event-ID`
//!   and, with what it received before, holds exactly its feed (no gap, no
//!   duplicate); a token opens at most so many streams.
//! - DE's national site, connected with its own NATS identity, hears DE's
//!   feed and nothing else, each message naming the one before it, and
//!   reads what it missed from `concord.feed.DE.read`.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Up, free_addr, ok, token_for, up};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Within this, what was acknowledged reaches a live feed.
const DEADLINE: Duration = Duration::from_secs(10);

/// A Server-Sent Events client over one HTTP/1.1 connection (chunked).
struct Sse {
    reader: BufReader<TcpStream>,
    text: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Sse {
    async fn connect(addr: &str, path: &str, token: &str, last_event_id: Option<u64>) -> Sse {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.expect("send");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut headers = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        Sse {
            reader,
            text: String::new(),
            status,
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The next chunk of the body, appended to `text`.
    async fn chunk(&mut self) -> bool {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
            return false;
        };
        if size == 0 {
            return false;
        }
        let mut data = vec![0u8; size + 2];
        if self.reader.read_exact(&mut data).await.is_err() {
            return false;
        }
        self.text.push_str(&String::from_utf8_lossy(&data[..size]));
        true
    }

    /// The next event's `(id, data)`, heartbeats skipped; `None` when the
    /// stream ended or nothing came before `until`.
    async fn next(&mut self, until: Instant) -> Option<(u64, Value)> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let (mut id, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some((id, serde_json::from_str(&data).expect("data is JSON")));
                }
            }
            let left = until.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.chunk()).await {
                Ok(true) => {}
                _ => return None,
            }
        }
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

/// Two operations led by FR, one with DE and one without; returns their ids.
async fn two_operations(sys: &Up) -> (String, String) {
    let with_de = ok(
        &sys.post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Rhein", "objective": "o", "lead_country": "FR", "countries": ["DE"]}),
        )
        .await,
        201,
    );
    let without_de = ok(
        &sys.post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Tevere", "objective": "o", "lead_country": "FR", "countries": ["IT"]}),
        )
        .await,
        201,
    );
    (id(&with_de), id(&without_de))
}

async fn assign(sys: &Up, op: &str, to: &str, title: &str) -> String {
    id(&ok(
        &sys.post(
            &format!("/v1/operations/{op}/tasks"),
            "FR_COORDINATOR",
            json!({"assignee_country": to, "title": title, "details": "d"}),
        )
        .await,
        201,
    ))
}

/// Then: a lead of FR's in Rhein restricted to FR alone, a task for IT in
/// Tevere, a task for DE in Rhein. Returns what DE must never receive (the
/// ids of Tevere, IT's task and the lead) and DE's task.
async fn then_a_task_for_de_and_what_it_may_not_see(sys: &Up, rhein: &str, tevere: &str) -> (Vec<String>, String) {
    let restricted = id(&ok(
        &sys.post(
            &format!("/v1/operations/{rhein}/leads"),
            "FR_LIAISON",
            json!({"summary": "only for France", "restricted_to": []}),
        )
        .await,
        201,
    ));
    let italian = assign(sys, tevere, "IT", "for Italy").await;
    let task = assign(sys, rhein, "DE", "for Germany").await;
    (vec![tevere.to_owned(), italian, restricted], task)
}

/// DE's whole feed as the JSON read gives it: positions and events.
async fn feed_of_de(sys: &Up) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = ok(
            &sys.get(&format!("/v1/countries/DE/feed?after={after}&max=500"), "DE_LIAISON")
                .await,
            200,
        );
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            return out;
        }
        for e in events {
            after = e["position"].as_u64().expect("position");
            out.push((after, e["event"].clone()));
        }
    }
}

/// What DE must never receive: anything naming the operation it is not
/// in, or the lead restricted to others.
fn foreign(event: &Value, secrets: &[&str]) -> bool {
    let text = event.to_string();
    secrets.iter().any(|s| text.contains(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn de_hears_its_new_task_live_and_resumes_after_a_drop_with_no_gap_and_no_duplicate() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let mut sys = up(&data, &free_addr());
    let de = token_for(&data, "liaison", "DE");
    sys.tokens.insert("DE_LIAISON".into(), de.clone());
    sys.tokens
        .insert("FR_LIAISON".into(), token_for(&data, "liaison", "FR"));
    let (rhein, tevere) = two_operations(&sys).await;

    let mut stream = Sse::connect(&sys.addr, "/v1/countries/DE/feed", &de, None).await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));

    let (secrets, task) = then_a_task_for_de_and_what_it_may_not_see(&sys, &rhein, &tevere).await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut received: Vec<(u64, Value)> = Vec::new();
    let until = Instant::now() + DEADLINE;
    loop {
        let (position, entry) = stream
            .next(until)
            .await
            .unwrap_or_else(|| panic!("DE's stream gave no task.assigned of {task} within {DEADLINE:?}: {received:?}"));
        assert_eq!(entry["position"].as_u64(), Some(position));
        let event = entry["event"].clone();
        assert!(!foreign(&event, &secrets), "DE received what it may not see: {event}");
        received.push((position, event.clone()));
        if event["type"] == "task.assigned" && event["data"]["task_id"] == json!(task) {
            break;
        }
    }

    // Dropped; meanwhile more happens; it comes back with Last-Event-ID.
    drop(stream);
    let last = received.last().map(|(p, _)| *p).expect("one event");
    let second = assign(&sys, &rhein, "DE", "again for Germany").await;
    assign(&sys, &tevere, "IT", "again for Italy").await;
    let mut stream = Sse::connect(&sys.addr, "/v1/countries/DE/feed", &de, Some(last)).await;
    assert_eq!(stream.status, 200);
    let until = Instant::now() + DEADLINE;
    loop {
        let (position, entry) = stream
            .next(until)
            .await
            .unwrap_or_else(|| panic!("the resumed stream gave no task.assigned of {second}: {received:?}"));
        let event = entry["event"].clone();
        assert!(!foreign(&event, &secrets), "DE received what it may not see: {event}");
        received.push((position, event.clone()));
        if event["type"] == "task.assigned" && event["data"]["task_id"] == json!(second) {
            break;
        }
    }
    drop(stream);

    // What the two connections gave is DE's feed, each event once, in order.
    let feed = feed_of_de(&sys).await;
    let positions = |v: &[(u64, Value)]| v.iter().map(|(p, _)| *p).collect::<Vec<_>>();
    assert_eq!(
        positions(&received),
        positions(&feed[..received.len()]),
        "no gap, no duplicate"
    );
    for ((_, a), (_, b)) in received.iter().zip(&feed) {
        assert_eq!(a, b);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_a_bounded_number_of_streams_and_only_its_own_countrys() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up(&data, &free_addr());
    let de = token_for(&data, "liaison", "DE");
    let mut open = Vec::new();
    for _ in 0..4 {
        let s = Sse::connect(&sys.addr, "/v1/countries/DE/feed", &de, None).await;
        assert_eq!(s.status, 200);
        open.push(s);
    }
    let refused = Sse::connect(&sys.addr, "/v1/countries/DE/feed", &de, None).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert!(refused.header("retry-after").is_some());
    // Another token is not counted against this one.
    let other = token_for(&data, "coordinator", "DE");
    assert_eq!(
        Sse::connect(&sys.addr, "/v1/countries/DE/feed", &other, None)
            .await
            .status,
        200
    );
    // One closed, one more may open.
    drop(open.pop());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = Sse::connect(&sys.addr, "/v1/countries/DE/feed", &de, None).await;
        if s.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "a closed stream's place is given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another country's stream is refused like its feed.
    let fr = Sse::connect(&sys.addr, "/v1/countries/FR/feed", &other, None).await;
    assert_eq!(fr.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_national_site_hears_only_its_countrys_feed_and_reads_what_it_missed() {
    use concord_bus::credentials::{self, Seed};
    use concord_bus::permissions::Identity;
    use concord_core::{CountryCode, Service, subjects};

    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let de: CountryCode = "DE".parse().expect("DE");
    credentials::add_site(&data.join("nats"), de).expect("DE's site");
    let mut sys = up(&data, &free_addr());
    sys.tokens
        .insert("FR_LIAISON".into(), token_for(&data, "liaison", "FR"));
    let seed = Seed::read_file(&data.join("nats").join(credentials::SEEDS_DIR).join("site-de.nk")).expect("seed");
    let site = credentials::connect_options(Identity::Site(de), Some(&seed), None)
        .connect(sys.nats_url())
        .await
        .expect("DE's site connects");
    let mut heard = futures::stream::select_all(
        futures::future::join_all(
            Service::ALL
                .into_iter()
                .map(|s| site.subscribe(subjects::feed_of(Some("DE"), s))),
        )
        .await
        .into_iter()
        .map(|s| s.expect("subscribe to DE's feed")),
    );
    site.flush().await.expect("flush");

    let (rhein, tevere) = two_operations(&sys).await;
    let (secrets, task) = then_a_task_for_de_and_what_it_may_not_see(&sys, &rhein, &tevere).await;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();

    let mut positions = Vec::new();
    let mut previous = 0;
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, heard.next())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("DE's site heard no task.assigned of {task}; heard {positions:?}"));
        assert!(m.subject.as_str().starts_with("concord.feed.DE."), "{}", m.subject);
        let header = |name: &str| -> u64 {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .and_then(|v| v.as_str().parse().ok())
                .unwrap_or_else(|| panic!("{} has no {name}", m.subject))
        };
        let (position, before) = (header(subjects::FEED_POSITION), header(subjects::FEED_PREVIOUS));
        // Nothing was missed here: each names the one heard before (the
        // first, whatever came before it, read below).
        if !positions.is_empty() {
            assert_eq!(before, previous, "{} names the message before it", m.subject);
        }
        previous = position;
        positions.push(position);
        let event: Value = serde_json::from_slice(&m.payload).expect("an event");
        assert!(
            !foreign(&event, &secrets),
            "DE's site received what DE may not see: {event}"
        );
        assert_eq!(
            m.subject.as_str(),
            format!(
                "concord.feed.DE.{}.{}",
                event["service"].as_str().unwrap_or(""),
                event["type"].as_str().unwrap_or("")
            )
        );
        if event["type"] == "task.assigned" && event["data"]["task_id"] == json!(task) {
            break;
        }
    }

    // What it missed (everything before it subscribed, here nothing; the
    // read is what a site does after a gap) is read from the projector.
    let read = site
        .request(
            subjects::feed_read(Some("DE")),
            json!({"after": 0, "max": 500}).to_string().into(),
        )
        .await
        .expect("DE's site reads its feed");
    let read: Value = serde_json::from_slice(&read.payload).expect("json");
    assert_eq!(read["ok"], true, "{read}");
    let all: Vec<u64> = read["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["position"].as_u64().expect("position"))
        .collect();
    let heard_set: BTreeSet<u64> = positions.iter().copied().collect();
    assert!(heard_set.iter().all(|p| all.contains(p)), "what it heard is its feed");
    for e in read["events"].as_array().expect("events") {
        assert!(
            !foreign(&e["event"], &secrets),
            "the read gave what DE may not see: {e}"
        );
    }
    let after_first: Vec<u64> = all.iter().copied().filter(|p| *p >= positions[0]).collect();
    assert_eq!(after_first, positions, "live messages and the read agree, in order");

    // A malformed read is refused precisely.
    let bad = site
        .request(subjects::feed_read(Some("DE")), "{\"after\": -1}".into())
        .await
        .expect("answered");
    let bad: Value = serde_json::from_slice(&bad.payload).expect("json");
    assert_eq!(bad["error"]["code"], "invalid", "{bad}");
}
