//! Generations of the views: each store lives in `<dir>/views-<n>`, and
//! `<dir>/CURRENT` names the one that serves. A rebuild writes the next
//! generation beside the live one and switches by replacing `CURRENT` in
//! one rename; a crash before the rename keeps the old generation, after
//! it the new one, and whatever other generation is left is removed at the
//! next start.
//!
//! Must not: be called on the async runtime's threads.

use std::path::{Path, PathBuf};

use crate::store::StoreError;

const CURRENT: &str = "CURRENT";
const PREFIX: &str = "views-";

fn io(dir: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::Fjall {
        dir: dir.to_owned(),
        source: fjall::Error::Io(e),
    }
}

/// The directory of generation `n`.
pub fn path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{n}"))
}

/// The generation that serves, after tidying `dir`: other generations
/// (a rebuild that did not finish, one replaced) are removed; a store of
/// the layout before generations is set aside (the logs rebuild it).
pub fn current(dir: &Path) -> Result<u64, StoreError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let named = match std::fs::read_to_string(dir.join(CURRENT)) {
        Ok(text) => Some(text.trim().parse::<u64>().map_err(|_| StoreError::Corrupt {
            dir: dir.to_owned(),
            what: format!("{CURRENT} holds {text:?}, not a generation number"),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(dir)(e)),
    };
    let mut others = Vec::new();
    let mut earlier_layout = false;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.strip_prefix(PREFIX).and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if Some(n) != named => others.push(entry.path()),
            Some(_) => {}
            None if name == CURRENT || name.ends_with(".tmp") => {}
            None => earlier_layout = true,
        }
    }
    if named.is_none() && earlier_layout {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = dir.with_file_name(format!("projector.earlier-{secs}"));
        tracing::warn!(aside = %aside.display(), "the projector's store is of an earlier layout; building the views again from the logs");
        std::fs::rename(dir, &aside).map_err(io(dir))?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        others.clear();
    }
    for other in others {
        tracing::info!(dir = %other.display(), "removing a generation of the views that does not serve");
        std::fs::remove_dir_all(&other).map_err(io(&other))?;
    }
    match named {
        Some(n) => Ok(n),
        None => {
            switch(dir, 1)?;
            Ok(1)
        }
    }
}

/// Makes generation `n` the one that serves, durably.
pub fn switch(dir: &Path, n: u64) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{CURRENT}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(n.to_string().as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, dir.join(CURRENT)).map_err(io(dir))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_generation_serves_and_the_others_go() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let dir = tmp.path().join("projector");
        assert_eq!(current(&dir).expect("fresh"), 1);
        std::fs::create_dir_all(path(&dir, 1)).expect("gen 1");
        // A rebuild that did not switch leaves its generation: removed.
        std::fs::create_dir_all(path(&dir, 2)).expect("gen 2");
        assert_eq!(current(&dir).expect("again"), 1);
        assert!(!path(&dir, 2).exists());
        // One that switched: the old one goes.
        std::fs::create_dir_all(path(&dir, 2)).expect("gen 2");
        switch(&dir, 2).expect("switch");
        assert_eq!(current(&dir).expect("switched"), 2);
        assert!(!path(&dir, 1).exists() && path(&dir, 2).exists());
    }

    #[test]
    fn a_store_of_the_earlier_layout_is_set_aside() {
        let tmp = tempfile::TempDir::new().expect("tmp");
        let dir = tmp.path().join("projector");
        std::fs::create_dir_all(dir.join("keyspaces")).expect("old layout");
        assert_eq!(current(&dir).expect("fresh"), 1);
        assert!(!dir.join("keyspaces").exists());
        let aside: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("projector.earlier-"))
            .collect();
        assert_eq!(aside.len(), 1);
    }
}
