//! Reading a log without touching it: a private copy.
//!
//! fjall 3 has no read-only open: opening a database recovers its journal,
//! which trims the journal's pre-allocated tail and truncates whatever it
//! takes for a torn write, in place. A tool that checks a log must not
//! destroy the evidence it checks, so `verify`, `export` and `backup` open
//! a copy in a temporary directory (`TMPDIR`), made while holding a shared
//! lock on fjall's lock file: a service holding the log (an exclusive lock)
//! makes the copy refuse, since its files change under it. Neither the
//! lock nor the reads change a byte or a timestamp of the directory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::LogError;

/// fjall's lock file in a database directory.
const LOCK_FILE: &str = "lock";
/// Copy buffer; a zero-filled chunk is skipped (a hole), so fjall's
/// pre-allocated journal (64 MiB of zeros) costs no disk in the copy.
const CHUNK: usize = 1 << 20;

/// A private copy of a log directory, removed when dropped.
pub struct Copy {
    /// The directory it was copied from.
    pub original: PathBuf,
    dir: tempfile::TempDir,
}

impl Copy {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn make(original: &Path) -> Result<Copy, LogError> {
        let err = |reason: String| LogError::Open {
            path: original.to_path_buf(),
            reason,
        };
        let empty = std::fs::read_dir(original)
            .map(|mut d| d.next().is_none())
            .map_err(|e| err(e.to_string()))?;
        if empty {
            return Err(err("the directory is empty: no log here".into()));
        }
        // Held until the copy is done; released by dropping the file.
        let _lock = match File::open(original.join(LOCK_FILE)) {
            Ok(f) => match f.try_lock_shared() {
                Ok(()) => Some(f),
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(LogError::InUse {
                        path: original.to_path_buf(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(err(format!("locking it for reading: {e}"))),
            },
            // No lock file: not a fjall directory (the open will say so).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err(format!("opening its lock file: {e}"))),
        };
        let dir = tempfile::Builder::new()
            .prefix("concord-log-copy-")
            .tempdir()
            .map_err(|e| err(format!("making a private copy: {e}")))?;
        copy_tree(original, dir.path())
            .map_err(|e| err(format!("making a private copy in {}: {e}", dir.path().display())))?;
        Ok(Copy {
            original: original.to_path_buf(),
            dir,
        })
    }
}

/// A copy of the journal files (`*.jnl`) of the log in `dir`, in a new
/// temporary directory, or `None` when it has none.
pub fn copy_journals(dir: &Path) -> std::io::Result<Option<tempfile::TempDir>> {
    let mut copy = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_file() && path.extension().is_some_and(|e| e == "jnl") {
            let to = match &copy {
                Some(t) => t,
                None => copy.insert(
                    tempfile::Builder::new()
                        .prefix("concord-journal-before-open-")
                        .tempdir()?,
                ),
            };
            copy_file(&path, &to.path().join(entry.file_name()))?;
        }
    }
    Ok(copy)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target)?;
        }
        // fjall makes nothing else; anything else is not the log's.
    }
    Ok(())
}

/// Copies the bytes of `from`, leaving holes where it holds only zeros.
fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = File::open(from)?;
    let len = src.metadata()?.len();
    let mut dst = File::create(to)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = read_full(&mut src, &mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().all(|b| *b == 0) {
            dst.seek(SeekFrom::Current(n as i64))?;
        } else {
            dst.write_all(&buf[..n])?;
        }
    }
    dst.set_len(len)?;
    Ok(())
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
