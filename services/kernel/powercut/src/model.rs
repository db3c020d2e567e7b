//! The filesystem's two states, without FUSE: what a power cut would leave
//! (`durable`) and what programs see now (`volatile`).
//!
//! Every change lands in `volatile`. A file's data and size reach `durable`
//! only when the file is fsynced; a directory's entries (creations,
//! renames, removals) only when the directory is fsynced. Rationale: that
//! is all POSIX promises, and a log that relies on anything more (a new
//! file's name surviving without a directory fsync, data surviving without
//! a file fsync) loses acknowledged events on some real disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::sync::Arc;
use std::time::SystemTime;

/// Files are kept in pages, so a sparse file (fjall pre-allocates 64 MiB
/// journals with `set_len`) costs only what was written.
pub const PAGE: u64 = 4096;
pub const ROOT: u64 = 1;

/// Why an operation failed; the FUSE side answers the matching errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fail {
    #[error("no such file or directory")]
    NoEnt,
    #[error("file exists")]
    Exist,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument")]
    Inval,
    #[error("input/output error")]
    Io,
    #[error("no space left on device")]
    NoSpc,
}

#[derive(Debug, Clone, Default)]
struct FileData {
    size: u64,
    /// Page index → its bytes (`PAGE` long); absent pages read as zeros.
    pages: BTreeMap<u64, Arc<Vec<u8>>>,
    /// Pages changed since the last fsync (volatile state only).
    dirty: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
enum Body {
    File(FileData),
    Dir(BTreeMap<OsString, u64>),
}

#[derive(Debug, Clone)]
struct Node {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
}

impl Node {
    fn empty_like(&self) -> Node {
        let body = match self.body {
            Body::File(_) => Body::File(FileData::default()),
            Body::Dir(_) => Body::Dir(BTreeMap::new()),
        };
        Node { body, ..self.clone() }
    }
}

#[derive(Debug, Clone, Default)]
struct Image {
    nodes: HashMap<u64, Node>,
}

impl Image {
    fn node(&self, ino: u64) -> Result<&Node, Fail> {
        self.nodes.get(&ino).ok_or(Fail::NoEnt)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Fail> {
        self.nodes.get_mut(&ino).ok_or(Fail::NoEnt)
    }

    fn dir(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Fail> {
        match &self.node(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Fail::NotDir),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Fail> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Fail::NotDir),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Fail> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Fail::IsDir),
        }
    }

    /// Only what the root reaches: after a power cut an inode no durable
    /// entry names is gone.
    fn reachable(&self) -> Image {
        let mut out = Image::default();
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            let Some(node) = self.nodes.get(&ino) else { continue };
            if let Body::Dir(d) = &node.body {
                todo.extend(d.values().copied().filter(|c| !out.nodes.contains_key(c)));
            }
            out.nodes.insert(ino, node.clone());
        }
        out
    }
}

/// What a file or directory looks like (for `getattr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub dir: bool,
    pub size: u64,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
}

/// Faults the test turns on and off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every fsync answers `EIO`, and the writes it should have made
    /// durable are dropped (as a failed writeback loses them).
    pub fsync_eio: bool,
    /// The disk is full: every write and creation answers `ENOSPC`.
    pub full: bool,
}

/// Counts, for the test's figures and assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub file_fsyncs: u64,
    pub dir_fsyncs: u64,
    pub failed_fsyncs: u64,
    pub enospc: u64,
    pub power_cuts: u64,
}

#[derive(Debug)]
pub struct Model {
    durable: Image,
    volatile: Image,
    next_ino: u64,
    pub faults: Faults,
    pub stats: Stats,
}

impl Model {
    /// An empty disk: a root directory owned by `uid`/`gid`.
    pub fn new(uid: u32, gid: u32) -> Model {
        let root = Node {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o755,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let mut durable = Image::default();
        durable.nodes.insert(ROOT, root);
        Model {
            volatile: durable.clone(),
            durable,
            next_ino: ROOT + 1,
            faults: Faults::default(),
            stats: Stats::default(),
        }
    }

    /// The plug is pulled: everything not made durable is gone, and what
    /// programs see from now on is what was on the disk.
    pub fn power_cut(&mut self) {
        self.durable = self.durable.reachable();
        self.volatile = self.durable.clone();
        self.stats.power_cuts += 1;
    }

    pub fn attr(&self, ino: u64) -> Result<Attr, Fail> {
        let n = self.volatile.node(ino)?;
        let (dir, size) = match &n.body {
            Body::File(f) => (false, f.size),
            Body::Dir(d) => (true, d.len() as u64),
        };
        Ok(Attr {
            ino,
            dir,
            size,
            perm: n.perm,
            uid: n.uid,
            gid: n.gid,
            mtime: n.mtime,
        })
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attr, Fail> {
        let ino = *self.volatile.dir(parent)?.get(name).ok_or(Fail::NoEnt)?;
        self.attr(ino)
    }

    fn make(&mut self, parent: u64, name: &OsStr, body: Body, perm: u16, uid: u32, gid: u32) -> Result<Attr, Fail> {
        if self.faults.full {
            self.stats.enospc += 1;
            return Err(Fail::NoSpc);
        }
        let dir = self.volatile.dir(parent)?;
        if dir.contains_key(name) {
            return Err(Fail::Exist);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let node = Node {
            body,
            perm,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        self.volatile.nodes.insert(ino, node);
        self.volatile.dir_mut(parent)?.insert(name.to_owned(), ino);
        self.attr(ino)
    }

    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Attr, Fail> {
        self.make(parent, name, Body::File(FileData::default()), perm, uid, gid)
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Result<Attr, Fail> {
        self.make(parent, name, Body::Dir(BTreeMap::new()), perm, uid, gid)
    }

    /// Removes a name. The inode stays readable by whoever holds it open
    /// (nodes are only dropped at a power cut, when nothing is open).
    pub fn unlink(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Fail> {
        let ino = *self.volatile.dir(parent)?.get(name).ok_or(Fail::NoEnt)?;
        match (&self.volatile.node(ino)?.body, dir) {
            (Body::Dir(_), false) => return Err(Fail::IsDir),
            (Body::File(_), true) => return Err(Fail::NotDir),
            (Body::Dir(d), true) if !d.is_empty() => return Err(Fail::NotEmpty),
            _ => {}
        }
        self.volatile.dir_mut(parent)?.remove(name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Fail> {
        let ino = *self.volatile.dir(parent)?.get(name).ok_or(Fail::NoEnt)?;
        let moving_dir = matches!(self.volatile.node(ino)?.body, Body::Dir(_));
        if let Some(&old) = self.volatile.dir(new_parent)?.get(new_name) {
            if old == ino {
                return Ok(());
            }
            if no_replace {
                return Err(Fail::Exist);
            }
            match (&self.volatile.node(old)?.body, moving_dir) {
                (Body::Dir(_), false) => return Err(Fail::IsDir),
                (Body::File(_), true) => return Err(Fail::NotDir),
                (Body::Dir(d), true) if !d.is_empty() => return Err(Fail::NotEmpty),
                _ => {}
            }
        }
        self.volatile.dir_mut(parent)?.remove(name);
        self.volatile.dir_mut(new_parent)?.insert(new_name.to_owned(), ino);
        Ok(())
    }

    pub fn readdir(&self, ino: u64) -> Result<Vec<(u64, bool, OsString)>, Fail> {
        let dir = self.volatile.dir(ino)?;
        Ok(dir
            .iter()
            .map(|(name, &child)| {
                let is_dir = matches!(self.volatile.nodes.get(&child).map(|n| &n.body), Some(Body::Dir(_)));
                (child, is_dir, name.clone())
            })
            .collect())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Fail> {
        let f = match &self.volatile.node(ino)?.body {
            Body::File(f) => f,
            Body::Dir(_) => return Err(Fail::IsDir),
        };
        let end = f.size.min(offset.saturating_add(u64::from(size)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; usize::try_from(end - offset).map_err(|_| Fail::Inval)?];
        let mut pos = offset;
        while pos < end {
            let page = pos / PAGE;
            let in_page = pos % PAGE;
            let n = (PAGE - in_page).min(end - pos);
            if let Some(bytes) = f.pages.get(&page) {
                let from = idx(in_page)?;
                let to = idx(pos - offset)?;
                out[to..to + idx(n)?].copy_from_slice(&bytes[from..from + idx(n)?]);
            }
            pos += n;
        }
        Ok(out)
    }

    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Fail> {
        if self.faults.full {
            self.stats.enospc += 1;
            return Err(Fail::NoSpc);
        }
        let written = u32::try_from(data.len()).map_err(|_| Fail::Inval)?;
        let f = self.volatile.file_mut(ino)?;
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let page = pos / PAGE;
            let in_page = idx(pos % PAGE)?;
            let n = (idx(PAGE)? - in_page).min(rest.len());
            let bytes = f
                .pages
                .entry(page)
                .or_insert_with(|| Arc::new(vec![0u8; PAGE as usize]));
            Arc::make_mut(bytes)[in_page..in_page + n].copy_from_slice(&rest[..n]);
            f.dirty.insert(page);
            rest = &rest[n..];
            pos += n as u64;
        }
        f.size = f.size.max(pos);
        self.stats.writes += 1;
        self.touch(ino);
        Ok(written)
    }

    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Fail> {
        let f = self.volatile.file_mut(ino)?;
        if size > f.size && self.faults.full {
            self.stats.enospc += 1;
            return Err(Fail::NoSpc);
        }
        if size < f.size {
            // Pages past the end go; the tail of the last one is zeroed, so
            // growing again reads zeros as it must.
            let first_gone = size.div_ceil(PAGE);
            let gone: Vec<u64> = f.pages.range(first_gone..).map(|(p, _)| *p).collect();
            for p in gone {
                f.pages.remove(&p);
                f.dirty.insert(p);
            }
            if !size.is_multiple_of(PAGE)
                && let Some(bytes) = f.pages.get_mut(&(size / PAGE))
            {
                Arc::make_mut(bytes)[idx(size % PAGE)?..].fill(0);
                f.dirty.insert(size / PAGE);
            }
        }
        f.size = size;
        self.touch(ino);
        Ok(())
    }

    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Fail> {
        self.volatile.node_mut(ino)?.perm = perm;
        Ok(())
    }

    fn touch(&mut self, ino: u64) {
        if let Some(n) = self.volatile.nodes.get_mut(&ino) {
            n.mtime = SystemTime::now();
        }
    }

    /// Makes a file's data and size durable (its name needs its
    /// directory's fsync). With `fsync_eio` on, answers `Io` and drops the
    /// writes it should have made durable.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Fail> {
        let node = self.volatile.node(ino)?;
        if let Body::Dir(_) = node.body {
            return self.fsync_dir(ino);
        }
        if self.faults.fsync_eio {
            self.stats.failed_fsyncs += 1;
            self.revert(ino)?;
            return Err(Fail::Io);
        }
        self.stats.file_fsyncs += 1;
        let empty = node.empty_like();
        let (perm, mtime) = (node.perm, node.mtime);
        let (size, pages, dirty) = match &mut self.volatile.node_mut(ino)?.body {
            Body::File(f) => (f.size, f.pages.clone(), std::mem::take(&mut f.dirty)),
            Body::Dir(_) => return Err(Fail::IsDir),
        };
        let d = self.durable.nodes.entry(ino).or_insert(empty);
        d.perm = perm;
        d.mtime = mtime;
        let Body::File(df) = &mut d.body else {
            return Err(Fail::Io);
        };
        for p in dirty {
            match pages.get(&p) {
                Some(bytes) => df.pages.insert(p, bytes.clone()),
                None => df.pages.remove(&p),
            };
        }
        df.size = size;
        Ok(())
    }

    /// The failed writeback lost them: the file reads as the disk has it.
    fn revert(&mut self, ino: u64) -> Result<(), Fail> {
        let durable = match self.durable.nodes.get(&ino).map(|n| &n.body) {
            Some(Body::File(f)) => f.clone(),
            _ => FileData::default(),
        };
        let f = self.volatile.file_mut(ino)?;
        for p in std::mem::take(&mut f.dirty) {
            match durable.pages.get(&p) {
                Some(bytes) => f.pages.insert(p, bytes.clone()),
                None => f.pages.remove(&p),
            };
        }
        f.size = durable.size;
        Ok(())
    }

    /// Makes a directory's entries durable. An entry whose inode was never
    /// fsynced is durable as an empty file or directory.
    pub fn fsync_dir(&mut self, ino: u64) -> Result<(), Fail> {
        if self.faults.fsync_eio {
            self.stats.failed_fsyncs += 1;
            return Err(Fail::Io);
        }
        self.stats.dir_fsyncs += 1;
        let node = self.volatile.node(ino)?.clone();
        let Body::Dir(entries) = &node.body else {
            return Err(Fail::NotDir);
        };
        for child in entries.values() {
            if !self.durable.nodes.contains_key(child) {
                let empty = self.volatile.node(*child)?.empty_like();
                self.durable.nodes.insert(*child, empty);
            }
        }
        let d = self.durable.nodes.entry(ino).or_insert_with(|| node.empty_like());
        d.perm = node.perm;
        d.mtime = node.mtime;
        d.body = Body::Dir(entries.clone());
        Ok(())
    }
}

fn idx(n: u64) -> Result<usize, Fail> {
    usize::try_from(n).map_err(|_| Fail::Inval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn unsynced_data_is_lost_and_synced_data_kept() {
        let mut m = Model::new(0, 0);
        let f = m.create(ROOT, name("a"), 0o644, 0, 0).expect("create").ino;
        m.fsync_dir(ROOT).expect("dir");
        m.write(f, 0, b"hello").expect("write");
        m.fsync(f).expect("fsync");
        m.write(f, 5, b" world").expect("write");
        assert_eq!(m.read(f, 0, 100).expect("read"), b"hello world");
        m.power_cut();
        let f = m.lookup(ROOT, name("a")).expect("still named").ino;
        assert_eq!(m.read(f, 0, 100).expect("read"), b"hello");
    }

    #[test]
    fn a_name_needs_its_directory_fsynced() {
        let mut m = Model::new(0, 0);
        let f = m.create(ROOT, name("a"), 0o644, 0, 0).expect("create").ino;
        m.write(f, 0, b"data").expect("write");
        m.fsync(f).expect("fsync");
        m.power_cut();
        assert_eq!(m.lookup(ROOT, name("a")), Err(Fail::NoEnt));

        let f = m.create(ROOT, name("b"), 0o644, 0, 0).expect("create").ino;
        m.write(f, 0, b"data").expect("write");
        m.fsync_dir(ROOT).expect("dir");
        m.power_cut();
        let f = m.lookup(ROOT, name("b")).expect("named").ino;
        assert_eq!(
            m.attr(f).expect("attr").size,
            0,
            "named, but its data was never fsynced"
        );
    }

    #[test]
    fn rename_and_unlink_are_undone_until_the_directory_is_fsynced() {
        let mut m = Model::new(0, 0);
        m.create(ROOT, name("tmp"), 0o644, 0, 0).expect("create");
        m.create(ROOT, name("gone"), 0o644, 0, 0).expect("create");
        m.fsync_dir(ROOT).expect("dir");
        m.rename(ROOT, name("tmp"), ROOT, name("current"), false)
            .expect("rename");
        m.unlink(ROOT, name("gone"), false).expect("unlink");
        m.power_cut();
        assert!(m.lookup(ROOT, name("tmp")).is_ok());
        assert!(m.lookup(ROOT, name("gone")).is_ok());
        assert_eq!(m.lookup(ROOT, name("current")), Err(Fail::NoEnt));
        m.rename(ROOT, name("tmp"), ROOT, name("current"), false)
            .expect("rename");
        m.fsync_dir(ROOT).expect("dir");
        m.power_cut();
        assert!(m.lookup(ROOT, name("current")).is_ok());
        assert_eq!(m.lookup(ROOT, name("tmp")), Err(Fail::NoEnt));
    }

    #[test]
    fn sparse_files_truncate_and_read_zeros() {
        let mut m = Model::new(0, 0);
        let f = m.create(ROOT, name("j"), 0o644, 0, 0).expect("create").ino;
        m.truncate(f, 64 * 1024 * 1024).expect("preallocate");
        m.write(f, PAGE - 2, b"abcd").expect("write across pages");
        assert_eq!(m.read(f, PAGE - 3, 6).expect("read"), b"\0abcd\0");
        m.truncate(f, PAGE - 1).expect("shrink");
        m.truncate(f, PAGE + 10).expect("grow");
        assert_eq!(m.read(f, PAGE - 3, 6).expect("read"), b"\0a\0\0\0\0");
    }

    #[test]
    fn a_failed_fsync_loses_the_writes_and_reports_eio() {
        let mut m = Model::new(0, 0);
        let f = m.create(ROOT, name("a"), 0o644, 0, 0).expect("create").ino;
        m.fsync_dir(ROOT).expect("dir");
        m.write(f, 0, b"kept").expect("write");
        m.fsync(f).expect("fsync");
        m.faults.fsync_eio = true;
        m.write(f, 4, b"lost").expect("write");
        assert_eq!(m.fsync(f), Err(Fail::Io));
        assert_eq!(m.read(f, 0, 100).expect("read"), b"kept");
        m.faults.fsync_eio = false;
        m.fsync(f).expect("fsync works again");
        m.power_cut();
        assert_eq!(m.read(f, 0, 100).expect("read"), b"kept");
    }

    #[test]
    fn a_full_disk_refuses_writes_and_creations() {
        let mut m = Model::new(0, 0);
        let f = m.create(ROOT, name("a"), 0o644, 0, 0).expect("create").ino;
        m.faults.full = true;
        assert_eq!(m.write(f, 0, b"x"), Err(Fail::NoSpc));
        assert_eq!(m.create(ROOT, name("b"), 0o644, 0, 0), Err(Fail::NoSpc));
        m.faults.full = false;
        assert_eq!(m.write(f, 0, b"x"), Ok(1));
    }
}
