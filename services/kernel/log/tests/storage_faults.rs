//! Storage faults under the log, injected by the power-cut disk
//! (`concord-powercut`): fsync answering `EIO`, and a full disk answering
//! `ENOSPC`. Every waiting append is answered `unavailable`, nothing is
//! acknowledged after the fault, the log reopened from disk verifies and
//! takes appends again once the disk is healthy, and a power cut after all
//! of it still finds every acknowledged event.
//!
//! Without `/dev/fuse` these tests fail; they never skip.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, LogError, NewEvent};
use concord_powercut::{Disk, Faults};
use serde_json::json;

const WRITERS: u64 = 8;

fn request(tag: &str, i: u64) -> AppendRequest {
    let actor = Actor {
        sub: "storage-faults".into(),
        role: Role::Liaison,
        country: CountryCode::parse("DE").expect("country"),
    };
    let stream = format!("lead-{}", i % 5);
    let fingerprint = Fingerprint::new("post_lead", &stream, &json!({"i": i}), &actor).expect("fingerprint");
    AppendRequest {
        fingerprint,
        stream,
        expected: ExpectedVersion::Any,
        command_id: format!("{tag}-{i}"),
        actor,
        correlation_id: format!("corr-{i}"),
        causation_id: None,
        observed_hlc: None,
        events: vec![NewEvent {
            event_type: "lead.posted".into(),
            schema_version: 1,
            data: json!({"i": i, "pad": "x".repeat(200)}),
        }],
    }
}

/// The answers of `n` appends sent at once.
async fn burst(log: &Log, tag: &str, n: u64) -> Vec<Result<(u64, String), LogError>> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (log, tag) = (log.clone(), tag.to_owned());
            tokio::spawn(async move {
                log.append(request(&tag, i))
                    .await
                    .map(|a| (a.last_seq(), a.events[0].hash.clone()))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("append task"));
    }
    out
}

/// Reopens the log from disk, backing off while it cannot be opened.
fn reopen(dir: &std::path::Path) -> Log {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut wait = Duration::from_millis(5);
    loop {
        match Log::open(dir, Service::Intel) {
            Ok(log) => return log,
            Err(e) if Instant::now() < deadline => {
                eprintln!("reopen failed ({e}); again in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
            Err(e) => panic!("the log does not reopen: {e}"),
        }
    }
}

/// Every acknowledged event is in `log` with its hash, the chain verifies
/// from seq 1 and is gapless.
fn all_there(log: &Log, acked: &BTreeMap<u64, String>) {
    let report = log.verify().expect("verify");
    assert_eq!(report.first_bad, None, "the chain verifies");
    assert_eq!(report.events_verified, report.head.seq, "gapless");
    for (seq, hash) in acked {
        let e = log.read_events(*seq, 1).expect("read");
        assert_eq!(
            e.first().map(|e| (e.seq, e.hash.as_str())),
            Some((*seq, hash.as_str())),
            "acknowledged seq {seq}"
        );
    }
}

/// Drives one fault: a healthy start, the fault during a burst of
/// concurrent appends, the fault cleared, reopen, more appends, a power
/// cut. Returns (acknowledged before, answered unavailable, acknowledged
/// after reopen).
fn fault_cycle(faults: Faults) -> (usize, usize, usize) {
    let mut disk = Disk::mount().expect("mount the power-cut disk (these tests need /dev/fuse)");
    let dir = disk.path().join("data").join("intel");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut acked = BTreeMap::new();
    let log = Log::open(&dir, Service::Intel).expect("open");
    for r in rt.block_on(burst(&log, "before", 20)) {
        let (seq, hash) = r.expect("healthy disk acknowledges");
        acked.insert(seq, hash);
    }
    let before = acked.len();
    let head_before = log.head();

    disk.set_faults(faults);
    let during = rt.block_on(burst(&log, "during", WRITERS * 4));
    let mut unavailable = 0;
    for r in during {
        match r {
            Err(LogError::Unavailable { .. }) => unavailable += 1,
            Ok(a) => panic!("acknowledged {a:?} while every fsync or write fails"),
            Err(e) => panic!("{faults:?}: answered {e} instead of unavailable"),
        }
    }
    assert_eq!(
        unavailable as u64,
        WRITERS * 4,
        "every waiting append is answered unavailable"
    );
    assert_eq!(log.head(), head_before, "the head does not move past what was durable");
    // The disk is healthy again, but this log is not: after a failed commit
    // nothing may be acknowledged until it is reopened from disk.
    disk.set_faults(Faults::default());
    let again = rt.block_on(burst(&log, "poisoned", 4));
    assert!(
        again.iter().all(|r| matches!(r, Err(LogError::Unavailable { .. }))),
        "a poisoned log acknowledges nothing: {again:?}"
    );
    drop(log);

    let log = reopen(&dir);
    all_there(&log, &acked);
    let mut after = 0;
    for r in rt.block_on(burst(&log, "after", 20)) {
        let (seq, hash) = r.expect("the reopened log acknowledges again");
        acked.insert(seq, hash);
        after += 1;
    }
    all_there(&log, &acked);
    disk.pull_plug();
    drop(log);
    disk.remount().expect("remount");
    let log = reopen(&dir);
    all_there(&log, &acked);
    eprintln!(
        "{faults:?}: {before} acknowledged before, {unavailable} answered unavailable during, \
         {after} acknowledged after reopen; all {} found after a power cut",
        acked.len()
    );
    (before, unavailable, after)
}

#[test]
fn fsync_eio_answers_unavailable_and_the_reopened_log_verifies() {
    fault_cycle(Faults {
        fsync_eio: true,
        full: false,
    });
}

#[test]
fn a_full_disk_answers_unavailable_loses_nothing_and_works_again() {
    fault_cycle(Faults {
        fsync_eio: false,
        full: true,
    });
}
