//! Which chain format a log is written in, and `migrate`, the one-off that
//! rewrites a log of the previous format into the current one.
//!
//! Format 1 hashed each event's `data` itself; format 2 (`chain`) hashes
//! its SHA-256 digest, so a payload can be erased while the chain still
//! verifies. Every hash differs between the two, so a release reads one
//! format only and refuses a log of the other with a message naming
//! `concord log migrate`, rather than answer "broken" for an intact log.

use std::path::Path;

use fjall::{Database, Keyspace, PersistMode};
use serde_json::Value;

use concord_core::chain::{self, CHAIN_FORMAT, ChainVerifier, canonical_json, seal};
use concord_core::envelope::{EventEnvelope, Service};

use super::{KS_EVENTS, KS_META, KS_VIEWS, LogError, META_SERVICE, key_seq};

/// `meta` key of the chain format a log is written in (decimal text).
/// Absent in logs of releases before format 2, which are format 1.
pub(crate) const META_CHAIN_FORMAT: &[u8] = b"chain_format";

/// Checks that the log is in the current chain format; a log without any
/// event is simply marked so (it has no hash yet). Called on every open.
pub(crate) fn check(
    dir: &Path,
    service: Service,
    db: &Database,
    meta: &Keyspace,
    events: &Keyspace,
) -> Result<(), LogError> {
    let open_err = |reason: String| LogError::Open {
        path: dir.to_path_buf(),
        reason,
    };
    match stored_format(meta).map_err(open_err)? {
        Some(CHAIN_FORMAT) => Ok(()),
        Some(found) if found > CHAIN_FORMAT => Err(LogError::NewerChainFormat {
            service: service.to_string(),
            path: dir.to_path_buf(),
            found,
        }),
        Some(found) => Err(old(dir, service, found)),
        None if events.first_key_value().is_none() => meta
            .insert(META_CHAIN_FORMAT, CHAIN_FORMAT.to_string())
            .and_then(|()| db.persist(PersistMode::SyncAll))
            .map_err(|e| open_err(format!("storing the chain format: {e}"))),
        None => Err(old(dir, service, 1)),
    }
}

fn old(dir: &Path, service: Service, found: u32) -> LogError {
    // A log lives in `<data dir>/<service>`; `operations` alone is in `.`.
    let data_dir = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    LogError::OldChainFormat {
        service: service.to_string(),
        path: dir.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        found,
    }
}

fn stored_format(meta: &Keyspace) -> Result<Option<u32>, String> {
    let Some(v) = meta.get(META_CHAIN_FORMAT).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.parse::<u32>().ok())
        .map(Some)
        .ok_or_else(|| format!("the chain format in the log's metadata is not a number: {v:?}"))
}

/// What `migrate` did to one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// Already in the current format: nothing was written.
    Current { service: Service, events: u64 },
    /// Every event re-hashed in the current format, in one atomic commit.
    Migrated {
        service: Service,
        events: u64,
        /// The head hash in the old format, and in the new one.
        old_head: String,
        new_head: String,
    },
}

/// Rewrites the log in `dir` from chain format 1 into the current one:
/// every event keeps its seq, id, stream, version, command id, time and
/// data; its `data_digest` is added and `prev_hash` and `hash` are
/// recomputed. The log's identity, stream index and command records stay
/// as they are. The views its service kept of other logs are dropped: they
/// hold checkpoints (seq and hash) in those logs' old chain, which would
/// no longer match once those are migrated too; they are refolded. The old chain is verified first (a log that does not
/// verify is not migrated: that would launder the damage), and everything
/// is written in one fsynced batch, so a crash leaves the old log or the
/// new one, never a mix. The whole log passes through memory once: meant
/// for development data directories, not for logs of many gigabytes.
///
/// The services must be stopped (the log's lock refuses otherwise).
pub fn migrate(dir: &Path) -> Result<Migration, LogError> {
    let open_err = |reason: String| LogError::Open {
        path: dir.to_path_buf(),
        reason,
    };
    if !dir.is_dir() {
        return Err(open_err("no such directory".into()));
    }
    let db = crate::open_database(dir).map_err(|e| match e {
        fjall::Error::Locked => open_err("the log is in use by another process: stop its service first".into()),
        other => open_err(other.to_string()),
    })?;
    let ks =
        |name: &str| crate::open_keyspace(&db, name).map_err(|e| open_err(format!("opening keyspace {name}: {e}")));
    let meta = ks(KS_META)?;
    let events = ks(KS_EVENTS)?;
    let service = meta
        .get(META_SERVICE)
        .map_err(|e| open_err(e.to_string()))?
        .and_then(|v| Service::parse(&String::from_utf8_lossy(&v)))
        .ok_or_else(|| open_err("no Concord log here".into()))?;
    // A store error of this offline tool says which log and what it was
    // doing; the tool stops there and the log is as it was.
    let storage = |doing: &'static str| move |e: fjall::Error| open_err(format!("{doing}: {e}"));
    let corrupt = |seq: u64, reason: String| LogError::Corrupt {
        service: service.to_string(),
        seq,
        reason,
    };
    match stored_format(&meta).map_err(open_err)? {
        Some(CHAIN_FORMAT) => {
            return Ok(Migration::Current {
                service,
                events: events.len().map_err(storage("counting events"))? as u64,
            });
        }
        Some(found) if found != 1 => return Err(open_err(format!("chain format {found} cannot be migrated"))),
        _ => {}
    }

    // A high-water mark (head.json) names a head in the old chain: the log
    // must reach it (migrating a log that lost events would launder the
    // loss), and it is rewritten at the new head once migrated.
    let mark = super::mark::read(dir).map_err(|e| open_err(e.to_string()))?;
    let mut old_hash_at_mark = (mark.as_ref().is_some_and(|m| m.seq == 0)).then(|| chain::GENESIS_HASH.to_owned());

    // The old chain must hold before anything is rewritten.
    let mut old = ChainVerifier::new();
    let mut records = Vec::new();
    for item in events.iter() {
        let (k, v) = item.into_inner().map_err(storage("reading events"))?;
        let key = key_seq(&k);
        old.link(key, chain::format1::inspect(&v)).map_err(|bad| {
            corrupt(
                bad.seq,
                format!("the log does not verify in chain format 1, so it is not migrated: {bad}"),
            )
        })?;
        if mark.as_ref().is_some_and(|m| m.seq == old.verified()) {
            old_hash_at_mark = Some(old.head_hash().to_owned());
        }
        records.push((k, v));
    }
    if let Some(m) = &mark
        && old_hash_at_mark.as_deref() != Some(m.hash.as_str())
    {
        return Err(open_err(format!(
            "it does not reach its high-water mark (seq {} hash {}), so it is not migrated: {}",
            m.seq,
            m.hash,
            super::RESTORE_ADVICE
        )));
    }
    let old_head = old.head_hash().to_owned();

    let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
    let mut prev = chain::GENESIS_HASH.to_owned();
    for (seq, (k, v)) in (1u64..).zip(&records) {
        let mut env = format1_envelope(v).map_err(|why| corrupt(seq, format!("cannot be migrated: {why}")))?;
        let data = canonical_json(&env.data).map_err(|e| corrupt(seq, format!("cannot be migrated: data: {e}")))?;
        env.prev_hash = std::mem::take(&mut prev);
        let bytes = seal(&mut env, &data);
        prev = env.hash;
        batch.insert(&events, k.clone(), bytes);
    }
    let views = ks(KS_VIEWS)?;
    for item in views.iter() {
        let key = item.key().map_err(storage("reading kept views"))?;
        batch.remove(&views, key);
    }
    batch.insert(&meta, META_CHAIN_FORMAT, CHAIN_FORMAT.to_string());
    batch.commit().map_err(storage("writing the migrated log"))?;
    if let Some(m) = mark {
        let head = super::Head {
            seq: records.len() as u64,
            hash: prev.clone(),
        };
        super::mark::write(dir, &super::Mark::new(&m.service, m.identity, &head))
            .map_err(|e| open_err(format!("the log is migrated, but its high-water mark is not: {e}")))?;
    }
    Ok(Migration::Migrated {
        service,
        events: records.len() as u64,
        old_head,
        new_head: prev,
    })
}

/// Reads a record of chain format 1 (no `data_digest`) as an envelope.
fn format1_envelope(bytes: &[u8]) -> Result<EventEnvelope, String> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let map = value.as_object_mut().ok_or("not a JSON object")?;
    map.insert("data_digest".into(), Value::String(String::new()));
    serde_json::from_value(value).map_err(|e| e.to_string())
}
