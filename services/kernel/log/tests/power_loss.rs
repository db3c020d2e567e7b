//! Power cuts: the log on a disk that loses everything not fsynced when the
//! plug is pulled (`concord-powercut`, a FUSE layer). Many tasks append,
//! the plug is pulled at a seeded random moment, the disk is remounted with
//! only what was durable, and the log is reopened: every acknowledged event
//! is there with its hash, the chain verifies, seqs are gapless.
//!
//! The negative control runs the same cycles on a log that commits without
//! fsync (`PersistMode::Buffer`, a switch of test builds only) and must see
//! acknowledged events lost: the proof that these cycles detect a missing
//! fsync, which a process kill (`crash.rs`) cannot.
//!
//! Without `/dev/fuse` these tests fail; they never skip.
//! Figures: `cargo test -p concord-log --test power_loss -- --nocapture`
//! (`CONCORD_POWER_SEED`, `CONCORD_POWER_CYCLES` override the defaults).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use concord_core::chain::{GENESIS_HASH, inspect};
use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, LogError, NewEvent};
use concord_powercut::Disk;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

const CYCLES: usize = 200;
const CONTROL_CYCLES: usize = 20;
const WRITERS: usize = 8;
const SEED: u64 = 0x00C0_FFEE_5EED;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One append of 1–3 events, under a command id unique to this run.
pub fn request(tag: &str, writer: usize, i: u64) -> AppendRequest {
    let actor = Actor {
        sub: "power-loss".into(),
        role: Role::Liaison,
        country: CountryCode::parse("DE").expect("country"),
    };
    let stream = format!("lead-{}", i % 7);
    let fingerprint = Fingerprint::new("post_lead", &stream, &json!({"i": i}), &actor).expect("fingerprint");
    AppendRequest {
        fingerprint,
        stream,
        expected: ExpectedVersion::Any,
        command_id: format!("{tag}-{writer}-{i}"),
        actor,
        correlation_id: format!("corr-{writer}-{i}"),
        causation_id: None,
        observed_hlc: None,
        events: (0..1 + i % 3)
            .map(|k| NewEvent {
                event_type: "lead.posted".into(),
                schema_version: 1,
                data: json!({"writer": writer, "i": i, "k": k, "pad": "x".repeat(300)}),
            })
            .collect(),
    }
}

/// seq → hash of every event the log acknowledged.
type Acked = Arc<Mutex<BTreeMap<u64, String>>>;

/// Appends from `WRITERS` tasks until `stop`; records every acknowledged
/// event. Any answer but `Ok` or `Unavailable` fails the test.
pub async fn append_until(log: &Log, tag: &str, acked: &Acked, stop: &Arc<AtomicBool>) -> Vec<String> {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (log, acked, stop, tag) = (log.clone(), acked.clone(), stop.clone(), tag.to_owned());
            tokio::spawn(async move {
                let mut odd = Vec::new();
                for i in 0u64.. {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    match log.append(request(&tag, w, i)).await {
                        Ok(a) => {
                            let mut acked = acked.lock().expect("acked");
                            for e in &a.events {
                                acked.insert(e.seq, e.hash.clone());
                            }
                        }
                        Err(LogError::Unavailable { .. }) => {
                            // The plug was pulled: nothing more can commit.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => odd.push(e.to_string()),
                    }
                }
                odd
            })
        })
        .collect();
    let mut odd = Vec::new();
    for t in tasks {
        odd.extend(t.await.expect("writer task"));
    }
    odd
}

/// What reopening after a cut found of what was acknowledged.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    cycles: usize,
    acknowledged: usize,
    found: usize,
    lost: usize,
    cycles_losing: usize,
    chain_broken: usize,
    /// Opens refused because the log holds less than its high-water mark
    /// says it acknowledged: a loss detected by the log itself.
    refused: usize,
}

/// Where the chain was last verified: every event up to it was checked.
struct Verified {
    seq: u64,
    hash: String,
}

/// Verifies the chain of the reopened log: from seq 1 when `full`, else
/// from `verified` on (which must still be there, with its hash: each hash
/// covers the one before, so everything before it is then unchanged too).
/// Re-verifying the whole log at every cut made the run quadratic.
fn verify_chain(log: &Log, verified: &mut Verified, full: bool) -> Result<(), String> {
    if full {
        let report = log.verify().expect("verify");
        if report.first_bad.is_some() || report.events_verified != report.head.seq {
            return Err(format!(
                "chain: {:?}, {} verified for head {}",
                report.first_bad, report.events_verified, report.head.seq
            ));
        }
        *verified = Verified {
            seq: report.head.seq,
            hash: report.head.hash,
        };
        return Ok(());
    }
    let head = log.head();
    if head.seq < verified.seq {
        return Err(format!(
            "head {} is behind seq {}, verified before",
            head.seq, verified.seq
        ));
    }
    if verified.seq > 0 {
        let at = log.read_events(verified.seq, 1).expect("read");
        if at.first().map(|e| (e.seq, e.hash.as_str())) != Some((verified.seq, verified.hash.as_str())) {
            return Err(format!("seq {} verified before is now {:?}", verified.seq, at.first()));
        }
    }
    while verified.seq < head.seq {
        let batch = log.read_from(verified.seq + 1, 1000).expect("read");
        if batch.events.is_empty() {
            return Err(format!(
                "no event after seq {} though the head is {}",
                verified.seq, head.seq
            ));
        }
        for raw in batch.events {
            let link = inspect(&raw.bytes).map_err(|b| format!("seq {}: {:?}", raw.seq, b.reason))?;
            let expected = verified.seq + 1;
            if raw.seq != expected || link.seq != expected {
                return Err(format!(
                    "gap: seq {} (stored under {}) after {}",
                    link.seq, raw.seq, verified.seq
                ));
            }
            if link.prev_hash != verified.hash || link.computed != link.stored {
                return Err(format!("seq {expected} does not link or hash: {link:?}"));
            }
            *verified = Verified {
                seq: expected,
                hash: link.computed,
            };
        }
    }
    Ok(())
}

/// Checks the reopened log against what was acknowledged and counts what
/// it lacks (or holds with another hash); those are dropped from `acked`,
/// so each loss counts once and a seq given again after it is checked anew.
///
/// Each event acknowledged since `fresh_from` is read back; of the earlier
/// ones, only the newest: the chain verifies, and each hash covers the one
/// before, so that one event having its acknowledged hash proves every
/// earlier one is the acknowledged event too. The last check reads all.
fn check(
    log: &Log,
    acked: &Acked,
    fresh_from: u64,
    verified: &mut Verified,
    full: bool,
    figures: &mut Figures,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(p) = verify_chain(log, verified, full) {
        figures.chain_broken += 1;
        problems.push(p);
        // Go on from what this log holds now.
        if let Err(p) = verify_chain(log, verified, true) {
            problems.push(p);
        }
    }
    let head = log.head();
    let mut acked = acked.lock().expect("acked");
    let mut lost = Vec::new();
    let anchor = acked.range(..fresh_from).next_back();
    for (seq, hash) in anchor.into_iter().chain(acked.range(fresh_from..)) {
        let found = log.read_events(*seq, 1).expect("read");
        match found.first() {
            Some(e) if e.seq == *seq && e.hash == *hash => {}
            other => {
                if lost.is_empty() {
                    problems.push(format!(
                        "acknowledged seq {seq} ({hash}) is {:?} after the cut (head {})",
                        other.map(|e| (e.seq, &e.hash)),
                        head.seq
                    ));
                }
                lost.push(*seq);
            }
        }
    }
    if !lost.is_empty() {
        figures.cycles_losing += 1;
        figures.lost += lost.len();
        problems.push(format!("{} of {} acknowledged events lost", lost.len(), acked.len()));
    }
    for seq in lost {
        acked.remove(&seq);
    }
    problems
}

/// Runs `cycles` power cuts on one log; `open` opens it on the disk.
fn cycles(label: &str, cycles: usize, seed: u64, open: fn(&Path) -> Result<Log, LogError>) -> (Figures, Vec<String>) {
    eprintln!("power-loss {label}: seed {seed:#x} (CONCORD_POWER_SEED), {cycles} cycles");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut disk = Disk::mount().expect("mount the power-cut disk (the power-loss tests need /dev/fuse)");
    // `<data>/<service>` as a service keeps it: the log's own directory is
    // created on the disk too, so its name must be made durable as well.
    let dir = disk.path().join("data").join("intel");
    let rt = runtime();
    let acked: Acked = Arc::default();
    let mut figures = Figures::default();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut fresh_from = 0u64;
    let mut verified = Verified {
        seq: 0,
        hash: GENESIS_HASH.to_owned(),
    };
    for cycle in 0..cycles {
        let log = match open(&dir) {
            Ok(log) => log,
            Err(e) => {
                // The log refuses to open below its mark: acknowledged
                // events are gone, and this log cannot go on. The journal
                // it kept as evidence is of no use to a test.
                if let LogError::BehindMark {
                    evidence: Some(kept), ..
                } = &e
                {
                    let _ = std::fs::remove_dir_all(kept);
                }
                figures.refused += 1;
                failures.push(format!("cycle {cycle}: reopen after the cut: {e}"));
                break;
            }
        };
        if cycle > 0 {
            // The whole chain now and then; from where it was verified else.
            let full = cycle % 50 == 0;
            for p in check(&log, &acked, fresh_from, &mut verified, full, &mut figures) {
                failures.push(format!("cycle {cycle}: {p}"));
            }
        }
        let before = acked.lock().expect("acked").len();
        fresh_from = acked.lock().expect("acked").keys().next_back().map_or(0, |s| s + 1);
        // Let the writers get going, then cut at a random moment: within a
        // group commit, between two, or while fjall writes its journal.
        let wait_acks = rng.random_range(1..40usize);
        let jitter = Duration::from_micros(rng.random_range(0..3000));
        let stop = Arc::new(AtomicBool::new(false));
        let tag = format!("c{cycle}");
        let odd = rt.block_on(async {
            let writers = append_until(&log, &tag, &acked, &stop);
            let cutter = async {
                let deadline = Instant::now() + Duration::from_secs(10);
                while acked.lock().expect("acked").len() < before + wait_acks && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                tokio::time::sleep(jitter).await;
                disk.pull_plug();
                stop.store(true, Ordering::Release);
            };
            let (odd, ()) = tokio::join!(writers, cutter);
            odd
        });
        assert!(odd.is_empty(), "{label} cycle {cycle}: unexpected answers: {odd:?}");
        let now = acked.lock().expect("acked").len();
        assert!(
            now > before,
            "{label} cycle {cycle}: nothing acknowledged before the cut"
        );
        figures.acknowledged += now - before;
        drop(log);
        disk.remount().expect("remount");
    }
    if figures.refused == 0 {
        match open(&dir) {
            Ok(log) => {
                for p in check(&log, &acked, 0, &mut verified, true, &mut figures) {
                    failures.push(format!("after the last cycle: {p}"));
                }
            }
            Err(e) => {
                figures.refused += 1;
                failures.push(format!("reopen after the last cut: {e}"));
            }
        }
    }
    figures.cycles = cycles;
    // A refused log cannot be read: what it still holds is not counted.
    figures.found = if figures.refused == 0 {
        figures.acknowledged - figures.lost
    } else {
        0
    };
    let stats = disk.stats();
    eprintln!(
        "power-loss {label}: {} cycles, {} acknowledged, {} found, {} lost ({} cycles lost events, {} broke the chain, \
         {} opens refused below the mark); {} file fsyncs, {} directory fsyncs; {:.1} s",
        figures.cycles,
        figures.acknowledged,
        figures.found,
        figures.lost,
        figures.cycles_losing,
        figures.chain_broken,
        figures.refused,
        stats.file_fsyncs,
        stats.dir_fsyncs,
        started.elapsed().as_secs_f64()
    );
    (figures, failures)
}

fn open_fsync(dir: &Path) -> Result<Log, LogError> {
    Log::open(dir, Service::Intel)
}

fn open_buffer(dir: &Path) -> Result<Log, LogError> {
    Log::open_without_fsync_for_tests(dir, Service::Intel)
}

#[test]
fn power_cuts_never_lose_an_acknowledged_event() {
    let seed = env_or("CONCORD_POWER_SEED", SEED);
    let n = env_or("CONCORD_POWER_CYCLES", CYCLES);
    let (figures, failures) = cycles("fsync", n, seed, open_fsync);
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} problems, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!((figures.lost, figures.refused), (0, 0));
    assert!(
        figures.acknowledged >= n,
        "too few appends to mean anything: {figures:?}"
    );
}

/// The same cycles must catch a log that does not fsync.
#[test]
fn negative_control_a_log_without_fsync_is_caught() {
    let seed = env_or("CONCORD_POWER_SEED", SEED);
    let (figures, failures) = cycles("buffer (negative control)", CONTROL_CYCLES, seed, open_buffer);
    eprintln!(
        "negative control caught: {}",
        failures.first().map_or("nothing", String::as_str)
    );
    assert!(
        (figures.lost > 0 || figures.refused > 0) && !failures.is_empty(),
        "seed {seed:#x}: a log committing without fsync lost nothing in {CONTROL_CYCLES} power cuts, \
         so the power-loss test cannot tell a missing fsync: {figures:?}"
    );
}
