//! Log behaviour through the real fjall store on a temp dir.

use std::sync::Arc;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use concord_core::envelope::Role;
use concord_core::{CountryCode, Service};

pub(crate) fn actor() -> Actor {
    Actor {
        sub: "alice".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
    }
}

/// The fingerprint of a test command that asks for `n` events on `stream`.
pub(crate) fn fingerprint(stream: &str, n: usize, actor: &Actor) -> Fingerprint {
    Fingerprint::new("test", stream, &json!({"n": n}), actor).expect("canonical")
}

pub(crate) fn req(stream: &str, expected: ExpectedVersion, command_id: &str, n: usize) -> AppendRequest {
    AppendRequest {
        stream: stream.into(),
        expected,
        command_id: command_id.into(),
        fingerprint: fingerprint(stream, n, &actor()),
        actor: actor(),
        correlation_id: format!("corr-{command_id}"),
        causation_id: None,
        observed_hlc: None,
        events: (0..n)
            .map(|i| NewEvent {
                event_type: "test.happened".into(),
                schema_version: 1,
                data: json!({"i": i, "note": format!("{command_id}/{i}")}),
            })
            .collect(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn open(dir: &TempDir) -> Log {
    Log::open(dir.path(), Service::Operations).expect("open log")
}

#[test]
fn append_assigns_gapless_seqs_versions_and_a_chain() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    rt().block_on(async {
        let a = log
            .append(req("op-a", ExpectedVersion::NoStream, "c1", 2))
            .await
            .expect("a");
        let b = log.append(req("op-b", ExpectedVersion::Any, "c2", 1)).await.expect("b");
        let c = log
            .append(req("op-a", ExpectedVersion::Exact(2), "c3", 1))
            .await
            .expect("c");
        assert_eq!(
            a.events.iter().map(|e| (e.seq, e.version)).collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        assert_eq!((b.first_seq(), b.version()), (3, 1));
        assert_eq!((c.first_seq(), c.version()), (4, 3));
        assert!(!a.duplicate && !c.duplicate);
        assert_eq!(a.events[0].prev_hash, concord_core::chain::GENESIS_HASH);
        assert_eq!(a.events[1].prev_hash, a.events[0].hash);
        assert_eq!(b.events[0].prev_hash, a.events[1].hash);
        assert_eq!(
            log.head(),
            Head {
                seq: 4,
                hash: c.events[0].hash.clone()
            }
        );
        assert!(a.events[0].hlc < a.events[1].hlc && a.events[1].hlc < c.events[0].hlc);
    });
    let all = log.read_events(1, 100).expect("read");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let stream = log.read_stream("op-a", 2, 10).expect("stream");
    assert_eq!(
        stream.iter().map(|e| (e.seq, e.version)).collect::<Vec<_>>(),
        [(2, 2), (4, 3)]
    );
    assert_eq!(log.stream_version("op-a").expect("v"), 3);
    assert_eq!(
        log.stream_version("op-").expect("v"),
        0,
        "a prefix of a stream name is another stream"
    );
    assert_eq!(log.read_from(3, 1).expect("read").events.len(), 1);
    assert_eq!(log.read_from(5, 10).expect("read").events.len(), 0);
    let report = log.verify().expect("verify");
    assert_eq!((report.events_verified, report.first_bad), (4, None));
}

#[test]
fn a_stale_writer_gets_a_conflict_and_writes_nothing() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    rt().block_on(async {
        log.append(req("op-a", ExpectedVersion::NoStream, "c1", 1))
            .await
            .expect("first");
        let head = log.head();
        for (expected, cmd) in [
            (ExpectedVersion::NoStream, "c2"),
            (ExpectedVersion::Exact(2), "c3"),
            (ExpectedVersion::Exact(7), "c4"),
        ] {
            match log.append(req("op-a", expected, cmd, 1)).await {
                Err(LogError::Conflict {
                    actual, expected: e, ..
                }) => {
                    assert_eq!((actual, e), (1, expected));
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
        assert_eq!(log.head(), head);
        // The refused command ids were not recorded: they may be used again.
        let ok = log
            .append(req("op-a", ExpectedVersion::Exact(1), "c3", 1))
            .await
            .expect("retry");
        assert!(!ok.duplicate);
    });
}

#[test]
fn racing_writers_on_one_version_have_exactly_one_winner() {
    const WRITERS: usize = 16;
    const ROUNDS: u64 = 20;
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    rt().block_on(async {
        for round in 0..ROUNDS {
            let expected = if round == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(round)
            };
            let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let log = log.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        log.append(req("op-race", expected, &format!("r{round}-w{w}"), 1)).await
                    })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                match t.await.expect("task") {
                    Ok(a) => {
                        wins += 1;
                        assert_eq!(a.version(), round + 1);
                    }
                    Err(LogError::Conflict { actual, .. }) => assert_eq!(actual, round + 1),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert_eq!(wins, 1, "round {round}");
        }
    });
    let events = log.read_events(1, 1000).expect("read");
    assert_eq!(events.len() as u64, ROUNDS);
    for (i, e) in events.iter().enumerate() {
        assert_eq!((e.seq, e.version), (i as u64 + 1, i as u64 + 1));
    }
}

/// Seeded random schedule: writers retry on conflicts across a few streams;
/// every acknowledged event is readable, seqs are gapless, and each
/// (stream, version) was won by exactly one command.
#[test]
fn seeded_concurrent_appends_stay_gapless_and_readable() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    let acked = rt().block_on(async {
        let tasks: Vec<_> = (0..12u64)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut rng = StdRng::seed_from_u64(0xC0C0 + w);
                    let mut acked = Vec::new();
                    for i in 0..25 {
                        let stream = format!("op-{}", rng.random_range(0..3));
                        let n = rng.random_range(1..4);
                        let cmd = format!("w{w}-{i}");
                        loop {
                            let v = log.stream_version(&stream).expect("version");
                            let expected = if v == 0 {
                                ExpectedVersion::NoStream
                            } else {
                                ExpectedVersion::Exact(v)
                            };
                            for _ in 0..rng.random_range(0..3) {
                                tokio::task::yield_now().await;
                            }
                            match log.append(req(&stream, expected, &cmd, n)).await {
                                Ok(a) => {
                                    acked.extend(a.events);
                                    break;
                                }
                                Err(LogError::Conflict { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let stored = log.read_events(1, 10_000).expect("read");
    assert_eq!(stored.len(), acked.len());
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "gapless");
    }
    let mut seen = std::collections::HashSet::new();
    for e in &acked {
        assert_eq!(
            &stored[e.seq as usize - 1],
            e,
            "acknowledged event reads back as acknowledged"
        );
        assert!(seen.insert((e.stream.clone(), e.version)), "one winner per version");
    }
    assert_eq!(log.verify().expect("verify").first_bad, None);
}

#[test]
fn a_retried_command_returns_the_first_result_also_after_reopen() {
    let dir = TempDir::new().expect("tmp");
    let first = {
        let log = open(&dir);
        rt().block_on(async {
            let first = log
                .append(req("op-a", ExpectedVersion::NoStream, "cmd-1", 2))
                .await
                .expect("first");
            // The same request again, even with a stale expectation.
            let again = log
                .append(req("op-a", ExpectedVersion::NoStream, "cmd-1", 2))
                .await
                .expect("again");
            assert!(again.duplicate);
            assert_eq!(again.events, first.events);
            first
        })
    };
    let log = open(&dir);
    rt().block_on(async {
        let again = log
            .append(req("op-a", ExpectedVersion::Any, "cmd-1", 2))
            .await
            .expect("after reopen");
        assert!(again.duplicate);
        assert_eq!(again.events, first.events);
    });
    assert_eq!(
        log.recorded("cmd-1", &fingerprint("op-a", 2, &actor()))
            .expect("lookup"),
        Recorded::Same(Appended {
            events: first.events.clone(),
            duplicate: true,
            raw: first.raw.clone(),
        })
    );
    assert_eq!(log.head().seq, 2, "nothing appended by the retries");
}

#[test]
fn a_command_id_under_another_request_is_refused_and_reveals_nothing() {
    let dir = TempDir::new().expect("tmp");
    let mut other_actor = actor();
    other_actor.role = Role::Liaison;
    let others = || {
        let mut by_other = req("op-a", ExpectedVersion::Any, "cmd-1", 1);
        by_other.fingerprint = fingerprint("op-a", 1, &other_actor);
        by_other.actor = other_actor.clone();
        let mut other_command = req("op-a", ExpectedVersion::Any, "cmd-1", 1);
        other_command.fingerprint = Fingerprint::new("other", "op-a", &json!({"n": 1}), &actor()).expect("canonical");
        [
            ("other data", req("op-a", ExpectedVersion::Any, "cmd-1", 2)),
            ("other stream", req("op-b", ExpectedVersion::Any, "cmd-1", 1)),
            ("other actor", by_other),
            ("other command", other_command),
        ]
    };
    {
        let log = open(&dir);
        rt().block_on(async {
            log.append(req("op-a", ExpectedVersion::NoStream, "cmd-1", 1))
                .await
                .expect("first");
            for (what, r) in others() {
                let fp = r.fingerprint.clone();
                match log.append(r).await {
                    Err(e @ LogError::IdempotencyKeyReused) => {
                        let said = e.to_string();
                        assert!(!said.contains("op-a") && !said.contains("cmd-1"), "{what}: {said}");
                    }
                    other => panic!("{what}: {other:?}"),
                }
                assert_eq!(log.recorded("cmd-1", &fp).expect("lookup"), Recorded::Reused, "{what}");
            }
            assert_eq!(log.head().seq, 1, "nothing appended");
        });
    }
    // The record is on disk: the refusal survives a reopen.
    let log = open(&dir);
    rt().block_on(async {
        for (what, r) in others() {
            assert!(
                matches!(log.append(r).await, Err(LogError::IdempotencyKeyReused)),
                "{what} after reopen"
            );
        }
    });
    assert_eq!(
        log.recorded("unknown", &fingerprint("op-a", 1, &actor()))
            .expect("lookup"),
        Recorded::Unknown
    );
    assert_eq!(log.head().seq, 1);
    assert_eq!(log.stream_version("op-b").expect("version"), 0);
}

#[test]
fn another_request_racing_inside_one_group_commit_is_refused() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    let results = rt().block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(req("op-a", ExpectedVersion::Any, "same", 1 + i % 2)).await })
            })
            .collect();
        let mut out = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            out.push((1 + i % 2, t.await.expect("task")));
        }
        out
    });
    // One request won (one event or two); every other append under its id
    // is its retry or refused.
    let count = log.stream_version("op-a").expect("version") as usize;
    assert!(count == 1 || count == 2, "{count}");
    assert_eq!(log.head().seq, count as u64);
    for (n, r) in results {
        match r {
            Ok(a) => assert_eq!(n, count, "a retry of the winner: {a:?}"),
            Err(LogError::IdempotencyKeyReused) => assert_ne!(n, count),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A command record as releases before fingerprints wrote it.
#[test]
fn a_command_recorded_without_a_fingerprint_answers_any_request_under_its_id() {
    let dir = TempDir::new().expect("tmp");
    let first = {
        let log = open(&dir);
        let first = rt().block_on(async {
            log.append(req("op-a", ExpectedVersion::NoStream, "old-1", 1))
                .await
                .expect("first")
        });
        log.inner
            .stores
            .commands
            .insert(b"old-1", br#"{"first_seq":1,"count":1}"#)
            .expect("rewrite the record");
        log.inner.stores.db.persist(PersistMode::SyncAll).expect("persist");
        first
    };
    let log = open(&dir);
    rt().block_on(async {
        let again = log
            .append(req("op-b", ExpectedVersion::Any, "old-1", 3))
            .await
            .expect("not checkable, so a retry");
        assert!(again.duplicate);
        assert_eq!(again.events, first.events);
    });
    assert!(matches!(
        log.recorded("old-1", &fingerprint("op-zzz", 7, &actor())),
        Ok(Recorded::Same(_))
    ));
    assert_eq!(log.head().seq, 1);
}

#[test]
fn a_fingerprint_must_be_the_append_s_own() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    let mut elsewhere = req("op-a", ExpectedVersion::Any, "c1", 1);
    elsewhere.fingerprint = fingerprint("op-b", 1, &actor());
    let mut someone_else = req("op-a", ExpectedVersion::Any, "c2", 1);
    someone_else.actor.sub = "bob".into();
    let mut unnamed = req("op-a", ExpectedVersion::Any, "c3", 1);
    unnamed.fingerprint = Fingerprint::new("", "op-a", &json!({}), &actor()).expect("canonical");
    rt().block_on(async {
        for (r, want) in [
            (elsewhere, "the fingerprint's stream is not the append's"),
            (someone_else, "the fingerprint's actor is not the append's"),
            (unnamed, "fingerprint.command is empty"),
        ] {
            match log.append(r).await {
                Err(LogError::Invalid(e)) => assert_eq!(e.to_string(), want),
                other => panic!("{want}: {other:?}"),
            }
        }
    });
    assert!(
        Fingerprint::new("test", "op-a", &json!({"x": 1.5}), &actor()).is_err(),
        "a float has no canonical form"
    );
    assert_eq!(
        Fingerprint::new("test", "op-a", &json!({"a": 1, "b": 2}), &actor()).expect("fp"),
        Fingerprint::new(
            "test",
            "op-a",
            &serde_json::from_str(r#"{ "b":2,"a":1 }"#).expect("json"),
            &actor()
        )
        .expect("fp"),
        "the same data in another key order and spacing is the same request"
    );
    assert_eq!(log.head().seq, 0);
}

#[test]
fn retries_racing_inside_one_group_commit_append_once() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    let results = rt().block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let log = log.clone();
                tokio::spawn(async move { log.append(req("op-a", ExpectedVersion::Any, "same", 1)).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task").expect("append"));
        }
        out
    });
    assert_eq!(log.head().seq, 1);
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(results.iter().all(|r| r.events == results[0].events));
}

#[test]
fn bad_input_is_refused_precisely_and_writes_nothing() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    let big = "x".repeat(EVENT_DATA_BYTES_MAX);
    let cases: Vec<(AppendRequest, &str)> = vec![
        (req("", ExpectedVersion::Any, "c", 1), "stream name is empty"),
        (
            req(&"s".repeat(129), ExpectedVersion::Any, "c", 1),
            "stream name is 129 bytes",
        ),
        (req("op a", ExpectedVersion::Any, "c", 1), "may only hold"),
        (req("op-a", ExpectedVersion::Any, "", 1), "command_id is empty"),
        (req("op-a", ExpectedVersion::Any, "c", 0), "at least one event"),
        (
            req("op-a", ExpectedVersion::Any, "c", EVENTS_PER_APPEND_MAX + 1),
            "the limit is 256",
        ),
        (
            {
                let mut r = req("op-a", ExpectedVersion::Any, "c", 1);
                r.events[0].data = json!({ "blob": big });
                r
            },
            "event 0 data is 65547 bytes, the limit is 65536",
        ),
        (
            {
                let mut r = req("op-a", ExpectedVersion::Any, "c", 2);
                r.events[1].data = json!({"lat": 43.7});
                r
            },
            "event 1 data: number 43.7 at $.lat is not an integer",
        ),
        (
            {
                let mut r = req("op-a", ExpectedVersion::Any, "c", 1);
                r.events[0].event_type = "Opened!".into();
                r
            },
            "event 0 has type \"Opened!\"",
        ),
        (
            {
                let mut r = req("op-a", ExpectedVersion::Any, "c", 1);
                r.events[0].data = json!([1]);
                r
            },
            "event 0 data must be a JSON object",
        ),
    ];
    rt().block_on(async {
        for (r, want) in cases {
            match log.append(r).await {
                Err(LogError::Invalid(e)) => assert!(e.to_string().contains(want), "{e} should say {want}"),
                other => panic!("expected invalid ({want}), got {other:?}"),
            }
        }
    });
    assert_eq!(log.head(), Head::empty());
    assert_eq!(log.read_from(1, 10).expect("read").events.len(), 0);
}

#[test]
fn a_log_refuses_to_open_as_another_service_and_open_existing_needs_a_log() {
    let dir = TempDir::new().expect("tmp");
    drop(open(&dir));
    let e = Log::open(dir.path(), Service::Intel).expect_err("wrong service");
    assert!(
        e.to_string().contains("this is the operations log, not the intel log"),
        "{e}"
    );
    assert_eq!(
        Log::open_existing(dir.path()).expect("existing").service(),
        Service::Operations
    );
    let empty = TempDir::new().expect("tmp");
    let e = Log::open_existing(empty.path()).expect_err("empty dir");
    assert!(e.to_string().contains("no log here"), "{e}");
    let e = Log::open_existing(empty.path().join("nope")).expect_err("missing dir");
    assert!(e.to_string().contains("cannot open log"), "{e}");
}

#[test]
fn a_log_in_use_is_refused_not_shared() {
    let dir = TempDir::new().expect("tmp");
    let _log = open(&dir);
    let e = Log::open(dir.path(), Service::Operations).expect_err("locked");
    assert!(e.to_string().contains("in use by another process"), "{e}");
}

// --- tampering: edit the store underneath the log, then verify ----------

fn tampered(n: usize, tamper: impl FnOnce(&Keyspace)) -> VerifyReport {
    let dir = TempDir::new().expect("tmp");
    {
        let log = open(&dir);
        rt().block_on(async {
            for i in 0..n {
                log.append(req(&format!("op-{}", i % 3), ExpectedVersion::Any, &format!("c{i}"), 1))
                    .await
                    .expect("append");
            }
        });
        assert_eq!(log.verify().expect("verify").first_bad, None);
    }
    {
        let db = Database::builder(dir.path()).open().expect("raw open");
        let events = db.keyspace(KS_EVENTS, KeyspaceCreateOptions::default).expect("ks");
        tamper(&events);
        db.persist(PersistMode::SyncAll).expect("persist");
    }
    // As `concord log verify` does: on a private copy, never refused for
    // the high-water mark (an insertion moves the head past it).
    Log::open_read_only(dir.path())
        .expect("open a copy")
        .verify()
        .expect("verify runs")
}

fn get(ks: &Keyspace, seq: u64) -> Vec<u8> {
    ks.get(seq.to_be_bytes()).expect("get").expect("present").to_vec()
}

#[test]
fn verify_names_an_edited_event() {
    let report = tampered(10, |ks| {
        let mut v = get(ks, 5);
        // Flip one byte inside the data: `"i":0` becomes `"i":1`.
        let at = v.windows(4).position(|w| w == b"\"i\":").expect("field") + 4;
        v[at] = if v[at] == b'0' { b'1' } else { b'0' };
        ks.insert(5u64.to_be_bytes(), v).expect("edit");
    });
    let bad = report.first_bad.expect("detected");
    assert_eq!(bad.seq, 5);
    assert!(
        bad.reason.contains("does not match the digest of the data"),
        "{}",
        bad.reason
    );
}

#[test]
fn verify_names_an_edit_that_breaks_the_json() {
    let report = tampered(10, |ks| {
        let mut v = get(ks, 7);
        v[0] = b'#';
        ks.insert(7u64.to_be_bytes(), v).expect("edit");
    });
    let bad = report.first_bad.expect("detected");
    assert_eq!(bad.seq, 7);
    assert!(bad.reason.starts_with("record is unreadable: "), "{}", bad.reason);
}

#[test]
fn verify_names_a_deleted_event() {
    let report = tampered(10, |ks| ks.remove(4u64.to_be_bytes()).expect("delete"));
    let bad = report.first_bad.expect("detected");
    // The first bad seq is the one found where 4 was due.
    assert_eq!((bad.seq, bad.reason.as_str()), (5, "seq 4 is missing"));
}

#[test]
fn verify_names_the_first_of_two_swapped_events() {
    let report = tampered(10, |ks| {
        let (a, b) = (get(ks, 3), get(ks, 6));
        ks.insert(3u64.to_be_bytes(), b).expect("swap");
        ks.insert(6u64.to_be_bytes(), a).expect("swap");
    });
    let bad = report.first_bad.expect("detected");
    assert_eq!(
        (bad.seq, bad.reason.as_str()),
        (6, "record is stored under seq 3 but says seq 6")
    );
}

#[test]
fn verify_names_an_inserted_event() {
    // Insert a forged event at seq 4 and shift the rest up by one, fixing
    // their seq fields as a careless forger would (hashes untouched).
    let report = tampered(8, |ks| {
        let originals: Vec<Vec<u8>> = (1..=8).map(|s| get(ks, s)).collect();
        for (i, bytes) in originals.iter().enumerate().skip(3) {
            let mut v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            let seq = i as u64 + 2;
            v["seq"] = json!(seq);
            ks.insert(seq.to_be_bytes(), serde_json::to_vec(&v).expect("ser"))
                .expect("shift");
        }
        let mut forged: serde_json::Value = serde_json::from_slice(&originals[3]).expect("json");
        forged["data"] = json!({"forged": true});
        ks.insert(4u64.to_be_bytes(), serde_json::to_vec(&forged).expect("ser"))
            .expect("insert");
    });
    assert_eq!(report.first_bad.expect("detected").seq, 4);
}

#[test]
fn a_corrupt_head_record_is_a_clear_error_on_open() {
    let dir = TempDir::new().expect("tmp");
    {
        let log = open(&dir);
        rt().block_on(async {
            for i in 0..3 {
                log.append(req("op-a", ExpectedVersion::Any, &format!("c{i}"), 1))
                    .await
                    .expect("append");
            }
        });
    }
    {
        let db = Database::builder(dir.path()).open().expect("raw open");
        let events = db.keyspace(KS_EVENTS, KeyspaceCreateOptions::default).expect("ks");
        events
            .insert(3u64.to_be_bytes(), b"{not json".as_slice())
            .expect("edit");
        db.persist(PersistMode::SyncAll).expect("persist");
    }
    let e = Log::open(dir.path(), Service::Operations).expect_err("corrupt head");
    assert!(e.to_string().starts_with("operations log is corrupt at seq 3"), "{e}");
}

/// Appends `events` events in appends of `per_append` (each a new stream)
/// and checks that the log as written verifies whole.
fn fill_and_verify(dir: &TempDir, events: u64, per_append: usize) {
    let log = open(dir);
    rt().block_on(async {
        for i in 0..events / per_append as u64 {
            log.append(req(
                &format!("op-{i}"),
                ExpectedVersion::NoStream,
                &format!("c{i}"),
                per_append,
            ))
            .await
            .expect("append");
        }
    });
    let report = log.verify().expect("verify");
    assert_eq!((report.events_verified, report.first_bad), (events, None));
}

/// Long enough for every verify helper to get several chunks: the results
/// are linked in the order the chunks were read, whichever helper hashed
/// them, and the first bad seq is the first in that order.
#[test]
fn verify_across_many_chunks_names_the_first_bad_seq_in_log_order() {
    const EVENTS: u64 = 20_000;
    let dir = TempDir::new().expect("tmp");
    fill_and_verify(&dir, EVENTS, 200);
    {
        let db = Database::builder(dir.path()).open().expect("raw open");
        let events = db.keyspace(KS_EVENTS, KeyspaceCreateOptions::default).expect("ks");
        // Two edits in different chunks: the later one is hashed by a
        // helper that may finish first; the earlier one must be named.
        for seq in [4096 * 3 + 17, 4096 * 4 + 5] {
            let mut v = get(&events, seq);
            let at = v.windows(4).position(|w| w == b"\"i\":").expect("field") + 4;
            v[at] = if v[at] == b'0' { b'1' } else { b'0' };
            events.insert(seq.to_be_bytes(), v).expect("edit");
        }
        db.persist(PersistMode::SyncAll).expect("persist");
    }
    let report = Log::open_read_only(dir.path())
        .expect("open a copy")
        .verify()
        .expect("verify runs");
    let bad = report.first_bad.expect("detected");
    assert_eq!(bad.seq, 4096 * 3 + 17);
    assert_eq!(report.events_verified, 4096 * 3 + 16);
}

/// A log whose length is a whole number of verify chunks: the last chunks
/// read are still linked (they once were not, and verify reported none of
/// them verified and missed an edit in them).
#[test]
fn verify_links_every_chunk_when_the_log_ends_on_a_chunk_boundary() {
    let chunk = crate::VERIFY_CHUNK_EVENTS as u64;
    for chunks in [1, 2, 5] {
        let events = chunk * chunks;
        let dir = TempDir::new().expect("tmp");
        fill_and_verify(&dir, events, 256);
        {
            let db = Database::builder(dir.path()).open().expect("raw open");
            let ks = db.keyspace(KS_EVENTS, KeyspaceCreateOptions::default).expect("ks");
            // The one before the head: opening checks the head itself.
            let mut v = get(&ks, events - 1);
            let at = v.windows(8).position(|w| w == b"\"note\":\"").expect("field") + 8;
            v[at] ^= 1;
            ks.insert((events - 1).to_be_bytes(), v).expect("edit");
            db.persist(PersistMode::SyncAll).expect("persist");
        }
        let report = Log::open_read_only(dir.path())
            .expect("open a copy")
            .verify()
            .expect("verify runs");
        assert_eq!(
            report.first_bad.map(|b| b.seq),
            Some(events - 1),
            "{chunks} chunks: edit found"
        );
        assert_eq!(report.events_verified, events - 2, "{chunks} chunks");
    }
}

#[test]
fn a_read_of_the_tail_from_memory_answers_what_the_disk_holds() {
    let dir = TempDir::new().expect("tmp");
    let log = open(&dir);
    // Past the window, in appends of a few events (each a group of its own).
    let appends = RECENT_EVENTS_MAX / 3 + 10;
    rt().block_on(async {
        for i in 0..appends {
            log.append(req(&format!("s-{}", i % 7), ExpectedVersion::Any, &format!("c{i}"), 3))
                .await
                .expect("append");
        }
    });
    let head = log.head().seq;
    assert_eq!(head, appends as u64 * 3);
    let oldest_kept = head - RECENT_EVENTS_MAX as u64 + 1;
    let mut answered = 0;
    for from in [
        1,
        oldest_kept - 1,
        oldest_kept,
        oldest_kept + 1,
        head - 5,
        head,
        head + 1,
        head + 10,
    ] {
        for max in [1, 3, 100, READ_BATCH_EVENTS_MAX] {
            let disk = log.read_from(from, max).expect("read");
            match log.read_recent(from, max) {
                Some(mem) => {
                    answered += 1;
                    assert!(from >= oldest_kept, "{from} is not held");
                    assert_eq!(mem.head_seq, disk.head_seq);
                    assert_eq!(
                        mem.events.iter().map(|e| (e.seq, &e.bytes)).collect::<Vec<_>>(),
                        disk.events.iter().map(|e| (e.seq, &e.bytes)).collect::<Vec<_>>(),
                        "from {from}, max {max}"
                    );
                }
                None => assert!(from < oldest_kept, "{from}..+{max} is held but not answered"),
            }
        }
    }
    assert!(answered >= 20);
    // Reopened, nothing is held: every read goes to disk.
    drop(log);
    let log = open(&dir);
    assert!(log.read_recent(head, 1).is_none());
    assert_eq!(
        log.read_recent(head + 1, 1).map(|b| (b.events.len(), b.head_seq)),
        Some((0, head))
    );
}
