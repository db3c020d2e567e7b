//! A disk whose plug a test can pull: a FUSE filesystem (LazyFS-style)
//! that keeps every write not yet fsynced, and every directory entry not
//! yet made durable by an fsync of its directory, in memory only. Pulling
//! the plug discards all of it; after `remount` the files are exactly what
//! a power cut would have left. It can also answer `EIO` to fsync and
//! `ENOSPC` to writes (see `Faults`).
//!
//! Dev-only: a dev-dependency of the log's power-loss tests, never a
//! dependency of production code.
//!
//! The kernel keeps no page cache for it (every file is opened
//! `direct_io`, attributes are never cached): what a program reads is what
//! this filesystem holds, so a dropped write cannot hide in a cache.

mod model;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use model::{Attr, Fail, Model};
pub use model::{Faults, Stats};

#[derive(Debug, thiserror::Error)]
pub enum PowerCutError {
    #[error(
        "the power-loss tests need FUSE and {path} is missing: load the fuse module (`modprobe fuse`) \
         or run them where /dev/fuse exists; they never skip"
    )]
    NoFuse { path: &'static str },
    #[error(
        "mounting the power-cut filesystem at {mountpoint} failed: {source} \
         (the tests run as root, or need `fusermount3` from Debian's fuse3 package)"
    )]
    Mount {
        mountpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("making a mount point: {0}")]
    TempDir(#[source] std::io::Error),
}

const DEV_FUSE: &str = "/dev/fuse";

/// What every mount of one disk shares: the two states, and which mount
/// may still touch them.
struct State {
    model: Model,
    /// Bumped at each remount: a mount of an earlier generation (one only
    /// lazily detached because a file on it was still open) answers `EIO`.
    generation: u64,
    /// The plug is pulled: nothing more reaches the disk until `remount`.
    dead: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in one handler leaves the model whole (every change is
    // made after its checks), so the state stays usable.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A mounted disk in a private temp directory; unmounted on drop, even
/// when a test fails.
pub struct Disk {
    mountpoint: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk").field("mountpoint", &self.path()).finish()
    }
}

impl Disk {
    /// An empty disk, mounted. Fails (never skips) without `/dev/fuse`.
    pub fn mount() -> Result<Disk, PowerCutError> {
        if !Path::new(DEV_FUSE).exists() {
            return Err(PowerCutError::NoFuse { path: DEV_FUSE });
        }
        let mountpoint = tempfile::Builder::new()
            .prefix("concord-powercut-")
            .tempdir()
            .map_err(PowerCutError::TempDir)?;
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let state = Arc::new(Mutex::new(State {
            model: Model::new(uid, gid),
            generation: 0,
            dead: false,
        }));
        let mut disk = Disk {
            mountpoint,
            state,
            session: None,
        };
        disk.attach()?;
        Ok(disk)
    }

    pub fn path(&self) -> &Path {
        self.mountpoint.path()
    }

    /// Pulls the plug: from this instant nothing more reaches the disk
    /// (every operation on the mount answers `EIO`), and whatever was not
    /// durable is gone. Call `remount` to see what survived.
    pub fn pull_plug(&self) {
        let mut st = lock(&self.state);
        st.dead = true;
        st.model.power_cut();
    }

    /// Unmounts and mounts the disk again (power back on). Close every file
    /// on it first (drop the log): a busy mount is only detached lazily.
    pub fn remount(&mut self) -> Result<(), PowerCutError> {
        self.detach();
        {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.dead = false;
        }
        self.attach()
    }

    /// Turns faults on or off (they stay until changed).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).model.faults = faults;
    }

    pub fn stats(&self) -> Stats {
        lock(&self.state).model.stats
    }

    fn attach(&mut self) -> Result<(), PowerCutError> {
        let generation = lock(&self.state).generation;
        let fs = PowerCutFs {
            state: self.state.clone(),
            generation,
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName("concord-powercut".into()), MountOption::RW];
        let session =
            fuser::spawn_mount(fs, self.mountpoint.path(), &config).map_err(|source| PowerCutError::Mount {
                mountpoint: self.mountpoint.path().display().to_string(),
                source,
            })?;
        self.session = Some(session);
        Ok(())
    }

    fn detach(&mut self) {
        let Some(session) = self.session.take() else { return };
        if session.umount_and_join().is_err() {
            // Still busy (a file left open, e.g. by a test that failed):
            // detach it lazily so the temp dir can go and nothing hangs.
            let _ = nix::mount::umount2(self.mountpoint.path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // No more writes to a disk being thrown away.
        lock(&self.state).dead = true;
        self.detach();
    }
}

/// Attributes are never cached by the kernel: a remount, a revert after a
/// failed fsync and a truncation must be seen at once.
const TTL: Duration = Duration::ZERO;

struct PowerCutFs {
    state: Arc<Mutex<State>>,
    generation: u64,
}

fn errno(f: Fail) -> Errno {
    match f {
        Fail::NoEnt => Errno::ENOENT,
        Fail::Exist => Errno::EEXIST,
        Fail::NotDir => Errno::ENOTDIR,
        Fail::IsDir => Errno::EISDIR,
        Fail::NotEmpty => Errno::ENOTEMPTY,
        Fail::Inval => Errno::EINVAL,
        Fail::Io => Errno::EIO,
        Fail::NoSpc => Errno::ENOSPC,
    }
}

fn file_attr(a: Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: if a.dir {
            FileType::Directory
        } else {
            FileType::RegularFile
        },
        perm: a.perm,
        nlink: if a.dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    u16::try_from(mode & !umask & 0o7777).unwrap_or(0o644)
}

impl PowerCutFs {
    /// Runs `op` on the model unless the plug was pulled or this mount is
    /// an earlier generation's.
    fn with<T>(&self, op: impl FnOnce(&mut Model) -> Result<T, Fail>) -> Result<T, Errno> {
        let mut st = lock(&self.state);
        if st.dead || st.generation != self.generation {
            return Err(Errno::EIO);
        }
        op(&mut st.model).map_err(errno)
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.with(|m| m.lookup(parent.0, name)) {
            Ok(a) => reply.entry(&TTL, &file_attr(a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|m| m.attr(ino.0)) {
            Ok(a) => reply.attr(&TTL, &file_attr(a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.with(|m| {
            if let Some(size) = size {
                m.truncate(ino.0, size)?;
            }
            if let Some(mode) = mode {
                m.set_perm(ino.0, perm_of(mode, 0))?;
            }
            m.attr(ino.0)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &file_attr(a)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        match self.with(|m| m.mkdir(parent.0, name, perm_of(mode, umask), req.uid(), req.gid())) {
            Ok(a) => reply.entry(&TTL, &file_attr(a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.with(|m| m.unlink(parent.0, name, false)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.with(|m| m.unlink(parent.0, name, true)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        match self.with(|m| m.rename(parent.0, name, newparent.0, newname, no_replace)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|m| m.attr(ino.0)) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.with(|m| m.create(parent.0, name, perm_of(mode, umask), req.uid(), req.gid())) {
            Ok(a) => reply.created(&TTL, &file_attr(a), Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|m| m.read(ino.0, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|m| m.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _owner: fuser::LockOwner, reply: ReplyEmpty) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // fdatasync is taken as fsync: the size is kept with the data.
        match self.with(|m| m.fsync(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|m| m.attr(ino.0)) {
            Ok(a) if a.dir => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.with(|m| m.readdir(ino.0)) {
            Ok(e) => e,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        // "." and ".." first; each entry's offset is the next one's index.
        let dots = [(ino.0, true, OsStr::new(".").to_owned()), (ino.0, true, "..".into())];
        for (i, (child, dir, name)) in dots.into_iter().chain(entries).enumerate().skip(offset as usize) {
            let kind = if dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        match self.with(|m| m.fsync_dir(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}
