//! A log's identity: made once, when the log is created (or, for a log of
//! an older release, on its first open), kept with it, and never another
//! for the same log; two logs never share one. And a log of the previous
//! chain format (the fixture of an older release): refused on open,
//! migrated by `migrate` with its seqs, versions and command ids.

use std::path::Path;

use concord_core::{Actor, CountryCode, ExpectedVersion, Role, Service};
use concord_log::{AppendRequest, Fingerprint, Log, LogError, Migration, NewEvent, Recorded, migrate};

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

#[test]
fn a_log_keeps_its_identity_across_reopens_and_two_logs_differ() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let first = Log::open(dir.path(), Service::Operations).expect("open").identity();
    let again = Log::open(dir.path(), Service::Operations).expect("reopen").identity();
    assert_eq!(first, again, "the same log, the same identity");
    let tool = Log::open_existing(dir.path()).expect("open existing").identity();
    assert_eq!(first, tool);

    let other = tempfile::TempDir::new().expect("tmp");
    let second = Log::open(other.path(), Service::Operations).expect("open").identity();
    assert_ne!(first, second, "another log, another identity");
}

#[test]
fn a_log_of_an_older_release_gets_an_identity_on_first_open_and_keeps_it() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("operations");
    copy_dir(Path::new(V1_OPERATIONS), &data);
    assert!(matches!(migrate(&data), Ok(Migration::Migrated { events: 7, .. })));
    let log = Log::open(&data, Service::Operations).expect("an old log opens once migrated");
    let given = log.identity();
    let report = log.verify().expect("verify");
    assert_eq!((report.events_verified, report.first_bad), (7, None));
    drop(log);
    let log = Log::open(&data, Service::Operations).expect("reopen");
    assert_eq!(log.identity(), given);
    assert_eq!(log.verify().expect("verify").first_bad, None);
}

/// The fixture's operations log is in chain format 1. Opening it is refused
/// with a message naming the way out; `migrate` rewrites it (once: a second
/// run finds nothing to do) keeping every event's seq, id, stream, version,
/// command id, time and data, re-hashed; a command recorded then still
/// answers its retry; the old chain is checked before anything is written.
#[test]
fn a_log_of_the_previous_chain_format_is_refused_until_migrated() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("operations");
    copy_dir(Path::new(V1_OPERATIONS), &data);
    let e = Log::open(&data, Service::Operations).expect_err("format 1");
    assert!(matches!(e, LogError::OldChainFormat { found: 1, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("chain format 1")
            && text.contains(&format!("concord log migrate --data-dir {}", dir.path().display())),
        "{text}"
    );
    assert!(Log::open_existing(&data).is_err(), "tools refuse it too");

    let old: Vec<serde_json::Value> = {
        let db = fjall::Database::builder(&data).open().expect("raw");
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        events
            .iter()
            .map(|kv| serde_json::from_slice(&kv.into_inner().expect("kv").1).expect("json"))
            .collect()
    };
    {
        // A view the service kept of another log, at a checkpoint in that
        // log's old chain.
        let db = fjall::Database::builder(&data).open().expect("raw");
        let views = db.keyspace("views", fjall::KeyspaceCreateOptions::default).expect("ks");
        views.insert("operations:membership", b"{}".as_slice()).expect("keep");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let Ok(Migration::Migrated {
        events: 7,
        old_head,
        new_head,
        ..
    }) = migrate(&data)
    else {
        panic!("migrated");
    };
    assert_eq!(old_head, old[6]["hash"].as_str().expect("hash"));
    assert_ne!(old_head, new_head);
    assert_eq!(
        migrate(&data).expect("again"),
        Migration::Current {
            service: Service::Operations,
            events: 7
        }
    );

    let log = Log::open(&data, Service::Operations).expect("open");
    let report = log.verify().expect("verify");
    assert_eq!(
        (report.events_verified, report.first_bad, report.head.hash.as_str()),
        (7, None, new_head.as_str())
    );
    assert_eq!(
        log.kept_view("operations:membership").expect("read"),
        None,
        "dropped, to be refolded"
    );
    let new = log.read_events(1, 100).expect("read");
    for (before, after) in old.iter().zip(&new) {
        for field in [
            "id",
            "seq",
            "stream",
            "version",
            "type",
            "command_id",
            "recorded_at",
            "data",
            "actor",
        ] {
            let after = serde_json::to_value(after).expect("json");
            assert_eq!(before[field], after[field], "{field} kept");
        }
        assert_ne!(before["hash"], serde_json::json!(after.hash), "re-hashed");
    }
    // The fixture opened its operation under this command id.
    let actor = Actor {
        sub: "fr-coord".into(),
        role: Role::Coordinator,
        country: CountryCode::parse("FR").expect("FR"),
    };
    let first = &new[0];
    let retry = log
        .recorded(
            &first.command_id,
            &Fingerprint::new("open", &first.stream, &serde_json::json!({}), &actor).expect("canonical"),
        )
        .expect("lookup");
    assert!(
        matches!(retry, Recorded::Same(ref a) if a.events[0] == *first),
        "{retry:?}"
    );

    // It takes new events in the new format.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(log.append(AppendRequest {
        stream: first.stream.clone(),
        expected: ExpectedVersion::Any,
        command_id: "after-migration".into(),
        fingerprint: Fingerprint::new("note", &first.stream, &serde_json::json!({}), &actor).expect("canonical"),
        actor,
        correlation_id: "r".into(),
        causation_id: None,
        observed_hlc: None,
        events: vec![NewEvent {
            event_type: "operation.noted".into(),
            schema_version: 1,
            data: serde_json::json!({}),
        }],
    }))
    .expect("append");
    assert_eq!(log.verify().expect("verify").events_verified, 8);
}

#[test]
fn a_log_whose_old_chain_is_broken_is_not_migrated() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("operations");
    copy_dir(Path::new(V1_OPERATIONS), &data);
    {
        let db = fjall::Database::builder(&data).open().expect("raw");
        let events = db
            .keyspace("events", fjall::KeyspaceCreateOptions::default)
            .expect("ks");
        let mut v = events.get(3u64.to_be_bytes()).expect("get").expect("seq 3").to_vec();
        let at = v.iter().position(|b| *b == b'"').expect("a string") + 1;
        v[at] ^= 0x01;
        events.insert(3u64.to_be_bytes(), v).expect("edit");
        db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    let e = migrate(&data).expect_err("broken");
    assert!(
        e.to_string()
            .starts_with("operations log is corrupt at seq 3: the log does not verify in chain format 1"),
        "{e}"
    );
    assert!(
        matches!(
            Log::open(&data, Service::Operations),
            Err(LogError::OldChainFormat { .. })
        ),
        "nothing was rewritten"
    );
}
