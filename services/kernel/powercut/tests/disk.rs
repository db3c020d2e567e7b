//! The disk through the kernel, with the syscalls fjall uses: what was
//! fsynced (data by the file's fsync, names by the directory's) survives a
//! pulled plug, nothing else does.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use concord_powercut::{Disk, Faults};

fn sync_dir(dir: &Path) {
    File::open(dir).expect("open dir").sync_all().expect("fsync dir");
}

fn read(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    File::open(path).expect("open").read_to_end(&mut out).expect("read");
    out
}

#[test]
fn what_was_fsynced_survives_and_nothing_else() {
    let mut disk = Disk::mount().expect("mount (this test needs /dev/fuse)");
    let root = disk.path().to_path_buf();
    fs::create_dir(root.join("db")).expect("mkdir");
    sync_dir(&root);
    let db = root.join("db");

    let mut synced = File::create_new(db.join("synced")).expect("create");
    synced.write_all(b"durable").expect("write");
    synced.sync_all().expect("fsync");
    synced.write_all(b" and lost").expect("write");
    let mut named_only = File::create_new(db.join("named-only")).expect("create");
    named_only.write_all(b"never fsynced").expect("write");
    sync_dir(&db);
    let mut unnamed = File::create_new(root.join("unnamed")).expect("create");
    unnamed.write_all(b"fsynced, but its name never was").expect("write");
    unnamed.sync_all().expect("fsync");
    // The atomic-rewrite dance of lsm-tree's version file, durable.
    fs::write(db.join("tmp"), b"v2").expect("write tmp");
    File::open(db.join("tmp")).expect("open").sync_all().expect("fsync");
    fs::rename(db.join("tmp"), db.join("current")).expect("rename");
    sync_dir(&db);
    // And one whose rename was never made durable.
    fs::write(db.join("tmp2"), b"v3").expect("write tmp2");
    File::open(db.join("tmp2")).expect("open").sync_all().expect("fsync");
    sync_dir(&db);
    fs::rename(db.join("tmp2"), db.join("current2")).expect("rename");
    assert_eq!(
        read(&db.join("synced")),
        b"durable and lost",
        "before the cut, all is visible"
    );

    drop((synced, named_only, unnamed));
    disk.pull_plug();
    assert!(fs::read(db.join("synced")).is_err(), "a dead disk answers nothing");
    disk.remount().expect("remount");

    assert_eq!(read(&db.join("synced")), b"durable");
    assert_eq!(
        read(&db.join("named-only")),
        b"",
        "named but empty: its data was never fsynced"
    );
    assert!(
        !root.join("unnamed").exists(),
        "its directory was never fsynced after it was made"
    );
    assert_eq!(read(&db.join("current")), b"v2");
    assert!(!db.join("tmp").exists());
    assert_eq!(read(&db.join("tmp2")), b"v3", "the rename was not durable");
    assert!(!db.join("current2").exists(), "the rename was not durable");
    let stats = disk.stats();
    assert!(stats.file_fsyncs >= 4 && stats.dir_fsyncs >= 3, "{stats:?}");
}

#[test]
fn preallocated_files_truncation_and_appends_behave_as_on_a_disk() {
    let mut disk = Disk::mount().expect("mount (this test needs /dev/fuse)");
    let path = disk.path().join("0.jnl");
    let mut f = File::create_new(&path).expect("create");
    f.set_len(64 * 1024 * 1024).expect("preallocate");
    f.sync_all().expect("fsync");
    sync_dir(disk.path());
    f.write_all(b"batch-1").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"batch-2").expect("write");
    drop(f);
    disk.pull_plug();
    disk.remount().expect("remount");
    let mut f = OpenOptions::new().read(true).write(true).open(&path).expect("open");
    assert_eq!(f.metadata().expect("stat").len(), 64 * 1024 * 1024);
    let mut head = [0u8; 14];
    f.read_exact(&mut head).expect("read");
    assert_eq!(&head, b"batch-1\0\0\0\0\0\0\0");
    f.set_len(7).expect("trim");
    f.sync_all().expect("fsync");
    drop(f);
    let mut f = OpenOptions::new().append(true).open(&path).expect("reopen for append");
    f.write_all(b"batch-3").expect("append");
    f.sync_all().expect("fsync");
    drop(f);
    assert_eq!(read(&path), b"batch-1batch-3");
    let mut f = File::open(&path).expect("open");
    f.seek(SeekFrom::Start(7)).expect("seek");
    let mut rest = String::new();
    f.read_to_string(&mut rest).expect("read");
    assert_eq!(rest, "batch-3");
}

#[test]
fn fsync_eio_and_a_full_disk_are_reported() {
    let disk = Disk::mount().expect("mount (this test needs /dev/fuse)");
    let path = disk.path().join("f");
    let mut f = File::create_new(&path).expect("create");
    sync_dir(disk.path());
    f.write_all(b"kept").expect("write");
    f.sync_all().expect("fsync");
    disk.set_faults(Faults {
        fsync_eio: true,
        full: false,
    });
    f.write_all(b"lost").expect("write lands in memory");
    let err = f.sync_all().expect_err("fsync fails");
    assert_eq!(err.raw_os_error(), Some(5), "EIO: {err}");
    assert_eq!(read(&path), b"kept", "the failed writeback lost the write");
    disk.set_faults(Faults {
        fsync_eio: false,
        full: true,
    });
    let err = f.write_all(b"more").expect_err("no space");
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
    assert!(File::create_new(disk.path().join("g")).is_err());
    disk.set_faults(Faults::default());
    f.write_all(b"back").expect("space is back");
    f.sync_all().expect("fsync");
    assert!(disk.stats().failed_fsyncs >= 1 && disk.stats().enospc >= 2);
}
