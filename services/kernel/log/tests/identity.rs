//! A log's identity: made once, when the log is created (or, for a log of
//! an older release, on its first open), kept with it, and never another
//! for the same log; two logs never share one.

use std::path::Path;

use concord_core::Service;
use concord_log::Log;

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
    let log = Log::open(&data, Service::Operations).expect("an old log opens");
    let given = log.identity();
    let report = log.verify().expect("verify");
    assert_eq!((report.events_verified, report.first_bad), (7, None));
    drop(log);
    let log = Log::open(&data, Service::Operations).expect("reopen");
    assert_eq!(log.identity(), given);
    assert_eq!(log.verify().expect("verify").first_bad, None);
}
