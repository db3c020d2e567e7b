//! The high-water mark (`head.json`): written after commits, never ahead of
//! the durable head, and a log that holds less than it (or another event at
//! its seq) is not opened for writing. The journal-damage cases that make
//! fjall's recovery shorten a log are in the black-box tests
//! (`tests/storage_integrity.rs`); here the mark file itself is edited.

use std::path::Path;
use std::time::{Duration, Instant};

use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{
    AppendRequest, Fingerprint, Head, Log, LogError, MARK_FILE, MARK_INTERVAL, Mark, MarkBreach, MarkCheck, NewEvent,
};
use serde_json::json;

fn append_n(log: &Log, from: usize, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        for i in from..from + n {
            let stream = format!("operation-{}", i % 3);
            let actor = Actor {
                sub: "fr-coord".into(),
                role: Role::Coordinator,
                country: CountryCode::parse("FR").expect("FR"),
            };
            log.append(AppendRequest {
                fingerprint: Fingerprint::new("open", &stream, &json!({ "i": i }), &actor).expect("canonical"),
                stream,
                expected: ExpectedVersion::Any,
                command_id: format!("c{i}"),
                actor,
                correlation_id: format!("r{i}"),
                causation_id: None,
                observed_hlc: None,
                events: vec![NewEvent {
                    event_type: "operation.opened".into(),
                    schema_version: 1,
                    data: json!({ "n": i }),
                }],
            })
            .await
            .expect("append");
        }
    });
}

/// A writing open that must be refused; the journal copy a refusal keeps
/// (in the temp dir) is removed.
fn refused(dir: &Path) -> LogError {
    let e = Log::open(dir, Service::Operations).expect_err("refused");
    if let LogError::BehindMark {
        evidence: Some(kept), ..
    } = &e
    {
        std::fs::remove_dir_all(kept).expect("remove the kept journal");
    }
    e
}

fn read_mark(dir: &Path) -> Mark {
    serde_json::from_slice(&std::fs::read(dir.join(MARK_FILE)).expect("head.json")).expect("a mark")
}

fn write_mark(dir: &Path, mark: &Mark) {
    std::fs::write(dir.join(MARK_FILE), serde_json::to_vec(mark).expect("json")).expect("write head.json");
}

#[test]
fn the_mark_follows_the_head_within_its_interval_and_is_exact_after_close() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = Log::open(dir.path(), Service::Operations).expect("open");
    // A new log is held to its (empty) head at once.
    assert_eq!(read_mark(dir.path()).seq, 0);
    append_n(&log, 0, 5);
    let head = log.head();
    let deadline = Instant::now() + MARK_INTERVAL * 20;
    loop {
        let mark = read_mark(dir.path());
        assert!(mark.seq <= head.seq, "the mark never leads: {mark:?} > {head:?}");
        if mark.head() == head {
            break;
        }
        assert!(Instant::now() < deadline, "the mark did not catch up: {mark:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    append_n(&log, 5, 3);
    let head = log.head();
    let identity = log.identity();
    drop(log);
    let mark = read_mark(dir.path());
    assert_eq!(mark.head(), head, "written at close");
    assert_eq!((mark.identity, mark.service.as_str()), (identity, "operations"));
    assert!(!dir.path().join("head.json.tmp").exists(), "no temp file left");
    let log = Log::open(dir.path(), Service::Operations).expect("reopens at its mark");
    assert_eq!(log.mark_check(), &MarkCheck::Holds(head));
}

/// Many appenders; the mark thread reads the head while commits go on:
/// every mark seen is a head the log had acknowledged by then.
#[test]
fn the_mark_never_leads_the_acknowledged_head_under_load() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let log = Log::open(dir.path(), Service::Operations).expect("open");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            append_n(&log, 0, 300);
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            // Read the mark first: the head can only have grown since.
            if let Ok(bytes) = std::fs::read(dir.path().join(MARK_FILE)) {
                let mark: Mark = serde_json::from_slice(&bytes).expect("never a torn mark");
                assert!(mark.seq <= log.head().seq, "{mark:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
}

#[test]
fn a_log_of_a_release_before_marks_opens_and_is_held_from_then_on() {
    let dir = tempfile::TempDir::new().expect("tmp");
    {
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        append_n(&log, 0, 4);
    }
    std::fs::remove_file(dir.path().join(MARK_FILE)).expect("as an older release left it");
    let log = Log::open(dir.path(), Service::Operations).expect("opens without a mark");
    assert_eq!(log.mark_check(), &MarkCheck::Absent);
    assert_eq!(read_mark(dir.path()).head(), log.head(), "marked at open");
}

/// The mark names seq 9 while the log ends at 6: what fjall's recovery
/// leaves after damage in the middle of its journal.
#[test]
fn a_log_below_its_mark_is_not_opened_and_the_error_says_what_is_missing_and_what_to_do() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let identity = {
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        append_n(&log, 0, 6);
        log.identity()
    };
    let mut mark = read_mark(dir.path());
    mark.seq = 9;
    mark.hash = "ab".repeat(32);
    write_mark(dir.path(), &mark);
    let e = refused(dir.path());
    match &e {
        LogError::BehindMark { breach, .. } => assert_eq!(
            **breach,
            MarkBreach::Missing {
                head_seq: 6,
                expected: Head {
                    seq: 9,
                    hash: "ab".repeat(32)
                }
            }
        ),
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    for want in [
        format!("operations log at {}", dir.path().display()),
        identity.to_string(),
        "ends at seq 6".into(),
        "seqs 7–9 are missing".into(),
        "concord log restore".into(),
        "concord log backup".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in: {text}");
    }
    assert_eq!(read_mark(dir.path()), mark, "the refusal leaves the mark as it was");
    // A tool's read-only open is not refused: it reports.
    let copy = Log::open_read_only(dir.path()).expect("inspect");
    assert!(matches!(
        copy.mark_check(),
        MarkCheck::Breach(MarkBreach::Missing { .. })
    ));
}

#[test]
fn another_event_at_the_mark_s_seq_or_another_log_s_mark_is_refused() {
    let dir = tempfile::TempDir::new().expect("tmp");
    {
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        append_n(&log, 0, 6);
    }
    let good = read_mark(dir.path());
    let mut diverged = good.clone();
    diverged.seq = 4;
    diverged.hash = "cd".repeat(32);
    write_mark(dir.path(), &diverged);
    let e = refused(dir.path());
    assert!(
        matches!(&e, LogError::BehindMark { breach, .. } if matches!(**breach, MarkBreach::Diverged { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("its event at seq 4 has hash"), "{e}");

    let other = tempfile::TempDir::new().expect("tmp");
    let other_identity = Log::open(other.path(), Service::Operations).expect("other").identity();
    let mut foreign = good.clone();
    foreign.identity = other_identity;
    write_mark(dir.path(), &foreign);
    let e = refused(dir.path());
    assert!(e.to_string().contains("that of another log"), "{e}");

    std::fs::write(dir.path().join(MARK_FILE), b"{\"seq\":").expect("torn by hand");
    let e = refused(dir.path());
    assert!(matches!(e, LogError::Mark { .. }), "{e:?}");
    assert!(e.to_string().contains("is not a high-water mark"), "{e}");

    write_mark(dir.path(), &good);
    Log::open(dir.path(), Service::Operations).expect("its own mark: opens");
}

/// A mark below the head (it lags) is fine: the log holds it.
#[test]
fn a_lagging_mark_holds() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let at_3 = {
        let log = Log::open(dir.path(), Service::Operations).expect("open");
        append_n(&log, 0, 3);
        let h = log.head();
        append_n(&log, 3, 3);
        h
    };
    let mut mark = read_mark(dir.path());
    mark.seq = at_3.seq;
    mark.hash = at_3.hash.clone();
    write_mark(dir.path(), &mark);
    let log = Log::open(dir.path(), Service::Operations).expect("open");
    assert_eq!(log.mark_check(), &MarkCheck::Holds(at_3));
    assert_eq!(log.head().seq, 6);
}

const V1_OPERATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/v1/operations");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A log of the previous chain format (7 events) with an identity.
fn old_log(at: &Path) -> concord_log::LogIdentity {
    copy_dir(Path::new(V1_OPERATIONS), at);
    let identity: concord_log::LogIdentity =
        serde_json::from_value(json!("019ab0c4-5e00-7000-8000-000000000001")).expect("uuid");
    let db = fjall::Database::builder(at).open().expect("raw open");
    let meta = db
        .keyspace("meta", fjall::KeyspaceCreateOptions::default)
        .expect("meta");
    meta.insert("identity", identity.to_string()).expect("identity");
    db.persist(fjall::PersistMode::SyncAll).expect("persist");
    identity
}

/// `concord log migrate` re-hashes every event: a mark in the old chain
/// is checked before (a log below it is not migrated) and rewritten at the
/// new head after, so the migrated log opens.
#[test]
fn migrate_checks_the_mark_in_the_old_chain_and_moves_it_to_the_new_head() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    let probe = tmp.path().join("probe");
    old_log(&probe);
    let Ok(concord_log::Migration::Migrated { old_head, new_head, .. }) = concord_log::migrate(&probe) else {
        panic!("the fixture migrates");
    };

    let dir = tmp.path().join("marked");
    let identity = old_log(&dir);
    let at = |seq, hash: &str| Mark {
        format: 1,
        service: "operations".into(),
        identity,
        seq,
        hash: hash.to_owned(),
    };
    write_mark(&dir, &at(7, &old_head));
    concord_log::migrate(&dir).expect("migrates");
    assert_eq!(read_mark(&dir), at(7, &new_head));
    let log = Log::open(&dir, Service::Operations).expect("opens once migrated");
    assert_eq!(log.mark_check(), &MarkCheck::Holds(at(7, &new_head).head()));
    drop(log);

    let short = tmp.path().join("short");
    old_log(&short);
    write_mark(&short, &at(9, &old_head));
    let e = concord_log::migrate(&short).expect_err("below its mark");
    assert!(e.to_string().contains("does not reach its high-water mark"), "{e}");
    assert_eq!(read_mark(&short), at(9, &old_head), "left as it was");
}
