//! Rebuilding a log directory from a backup: its events exactly as stored,
//! in seq order, with the identity and the head the backup names.
//!
//! Every event's chain link is checked before anything is written, the
//! stream index and the command records are derived from the events, and
//! the log is built in a sibling directory renamed into place only once it
//! is complete, durable and marked: a restore that fails leaves nothing
//! that could be mistaken for the log.
//!
//! What a backup does not carry: the fingerprint of each command id
//! (which request it named). The restored records have none, as records of
//! releases before fingerprints: a request under an id of the backup
//! answers its first result, unchecked (docs/reliability.md).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fjall::PersistMode;

use concord_core::chain::{CHAIN_FORMAT, ChainVerifier};
use concord_core::envelope::Service;

use super::{
    CommandRecord, Head, KS_COMMANDS, KS_EVENTS, KS_META, KS_STREAMS, LogIdentity, META_IDENTITY, META_SERVICE, decode,
    describe, format::META_CHAIN_FORMAT, mark, stream_key,
};

/// Events written per fjall batch while restoring (bounded memory).
const RESTORE_BATCH_EVENTS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{dir} exists and is not empty: restore builds a new log directory (move the old one aside first)")]
    NotEmpty { dir: PathBuf },
    #[error("the backup cannot be read at seq {seq}: {reason}")]
    Read { seq: u64, reason: String },
    #[error("the backup's chain breaks at seq {seq}: {reason}")]
    Chain { seq: u64, reason: String },
    #[error("the backup's event at seq {seq} is of the {found} log, not the {service} log")]
    OtherService { seq: u64, service: Service, found: Service },
    #[error("the backup ends at seq {seq} with hash {hash}, but its manifest names head {}:{}", head.seq, head.hash)]
    NotItsHead { seq: u64, hash: String, head: Head },
    #[error("the backup holds a command id twice, apart (at seq {seq}): not one log's history")]
    CommandTwice { seq: u64 },
    #[error("writing {dir}: {reason}")]
    Write { dir: PathBuf, reason: String },
}

/// Builds the log of `service` with `identity` in `dir` (which must not
/// exist or be empty) from `events` (the stored bytes of seqs 1, 2, …),
/// which must end at `head`. Its high-water mark is `head`. Blocking.
pub fn restore(
    dir: &Path,
    service: Service,
    identity: LogIdentity,
    head: &Head,
    events: impl IntoIterator<Item = Result<Vec<u8>, String>>,
) -> Result<Head, RestoreError> {
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(RestoreError::NotEmpty { dir: dir.to_path_buf() });
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let building = dir.with_file_name(format!(".{name}.restoring-{}", std::process::id()));
    let write = |reason: String| RestoreError::Write {
        dir: building.clone(),
        reason,
    };
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| write(e.to_string()))?;
    }
    let built = build(&building, service, identity, head, events);
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&building);
        return Err(e);
    }
    // An empty target directory (made by hand) gives way to the new one.
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| write(format!("replacing the empty {}: {e}", dir.display())))?;
    }
    std::fs::rename(&building, dir).map_err(|e| write(format!("renaming it to {}: {e}", dir.display())))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| write(format!("syncing {}: {e}", parent.display())))?;
    }
    Ok(head.clone())
}

fn build(
    dir: &Path,
    service: Service,
    identity: LogIdentity,
    head: &Head,
    events: impl IntoIterator<Item = Result<Vec<u8>, String>>,
) -> Result<(), RestoreError> {
    let write = |reason: String| RestoreError::Write {
        dir: dir.to_path_buf(),
        reason,
    };
    let storage = |e: fjall::Error| write(describe(&e));
    std::fs::create_dir_all(dir).map_err(|e| write(e.to_string()))?;
    let db = crate::open_database(dir).map_err(storage)?;
    let ks = |name: &str| crate::open_keyspace(&db, name).map_err(storage);
    let meta = ks(KS_META)?;
    let ks_events = ks(KS_EVENTS)?;
    let ks_streams = ks(KS_STREAMS)?;
    let ks_commands = ks(KS_COMMANDS)?;
    meta.insert(META_SERVICE, service.as_str()).map_err(storage)?;
    meta.insert(META_IDENTITY, identity.to_string()).map_err(storage)?;
    // A backup holds events of the current chain format (its links are
    // checked in it below).
    meta.insert(META_CHAIN_FORMAT, CHAIN_FORMAT.to_string())
        .map_err(storage)?;

    let mut verifier = ChainVerifier::new();
    let mut batch = db.batch();
    let mut in_batch = 0usize;
    // The command being read: its events are consecutive (one append).
    let mut current: Option<(String, CommandRecord)> = None;
    let mut seen = HashSet::new();
    let mut put_record = |batch: &mut fjall::OwnedWriteBatch, (id, record): (String, CommandRecord), seq: u64| {
        if !seen.insert(id.clone()) {
            return Err(RestoreError::CommandTwice { seq });
        }
        // Integers only (no fingerprint): always serializes.
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        batch.insert(&ks_commands, id.into_bytes(), bytes);
        Ok(())
    };
    for (i, bytes) in events.into_iter().enumerate() {
        let seq = i as u64 + 1;
        let bytes = bytes.map_err(|reason| RestoreError::Read { seq, reason })?;
        verifier.check(Some(seq), &bytes).map_err(|bad| RestoreError::Chain {
            seq: bad.seq,
            reason: bad.reason.to_string(),
        })?;
        let env = decode(service, seq, &bytes).map_err(|e| RestoreError::Read {
            seq,
            reason: e.to_string(),
        })?;
        if env.service != service {
            return Err(RestoreError::OtherService {
                seq,
                service,
                found: env.service,
            });
        }
        match &mut current {
            Some((id, record)) if *id == env.command_id => record.count += 1,
            _ => {
                if let Some(done) = current.take() {
                    put_record(&mut batch, done, seq)?;
                }
                current = Some((
                    env.command_id.clone(),
                    CommandRecord {
                        first_seq: seq,
                        count: 1,
                        fingerprint: None,
                    },
                ));
            }
        }
        batch.insert(&ks_streams, stream_key(&env.stream, env.version), seq.to_be_bytes());
        batch.insert(&ks_events, seq.to_be_bytes(), bytes);
        in_batch += 1;
        if in_batch == RESTORE_BATCH_EVENTS {
            std::mem::replace(&mut batch, db.batch()).commit().map_err(storage)?;
            in_batch = 0;
        }
    }
    if let Some(done) = current.take() {
        put_record(&mut batch, done, verifier.verified())?;
    }
    batch.commit().map_err(storage)?;
    if verifier.verified() != head.seq || verifier.head_hash() != head.hash {
        return Err(RestoreError::NotItsHead {
            seq: verifier.verified(),
            hash: verifier.head_hash().to_owned(),
            head: head.clone(),
        });
    }
    db.persist(PersistMode::SyncAll).map_err(storage)?;
    drop(db);
    mark::write(dir, &mark::Mark::new(service.as_str(), identity, head)).map_err(|e| write(e.to_string()))?;
    Ok(())
}
