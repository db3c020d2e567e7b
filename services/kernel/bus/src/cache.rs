//! The runtime's cache of folded stream states, bounded in bytes.
//!
//! A state holds what its events said, so its size is estimated by the
//! bytes of the events folded into it (cheap to know: the log hands back
//! each appended event's stored bytes). Past the bound, the streams used
//! least recently leave one by one (quick_cache's CLOCK-Pro), never all at
//! once: a service under memory pressure keeps its hot streams and refolds
//! a cold one from the log when it is asked for again.
//!
//! Must not: move a stream's state backwards: after a command was told
//! version v, every later read of the cache answers at least v.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use quick_cache::Weighter;
use serde::Serialize;

/// Bytes of folded state one service keeps in memory, estimated from the
/// bytes of the events folded into each state. Rationale: a quarter of the
/// 256 MiB a service may use, enough for thousands of busy operations.
pub const STATE_CACHE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// What one cached entry costs beyond its events: the map slot, the key,
/// the state's own fields.
const ENTRY_OVERHEAD_BYTES: u64 = 256;

struct Cached<S> {
    version: u64,
    state: Arc<S>,
    bytes: u64,
}

#[derive(Clone, Copy)]
struct ByBytes;

impl<S> Weighter<String, Cached<S>> for ByBytes {
    fn weight(&self, key: &String, v: &Cached<S>) -> u64 {
        (key.len() as u64)
            .saturating_add(ENTRY_OVERHEAD_BYTES)
            .saturating_add(v.bytes)
    }
}

/// A stream's state at a version, and the bytes of the events folded into it.
pub(crate) struct Entry<S> {
    pub version: u64,
    pub state: Arc<S>,
    pub bytes: u64,
}

pub(crate) struct StateCache<S> {
    inner: Mutex<quick_cache::unsync::Cache<String, Cached<S>, ByBytes>>,
}

impl<S> StateCache<S> {
    pub fn new(bytes_max: u64) -> StateCache<S> {
        let items = usize::try_from(bytes_max / 4096).unwrap_or(usize::MAX).max(16);
        StateCache {
            inner: Mutex::new(quick_cache::unsync::Cache::with_weighter(items, bytes_max, ByBytes)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, quick_cache::unsync::Cache<String, Cached<S>, ByBytes>> {
        // The cache holds nothing a panic can leave half-written.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, stream: &str) -> Option<Entry<S>> {
        self.lock().get(stream).map(|c| Entry {
            version: c.version,
            state: Arc::clone(&c.state),
            bytes: c.bytes,
        })
    }

    /// Caches `entry` unless a newer version of the stream is cached, and
    /// answers the newest of the two: a command may have cached a newer
    /// version while the caller folded the log.
    pub fn offer(&self, stream: &str, entry: Entry<S>) -> Entry<S> {
        let mut cache = self.lock();
        if let Some(c) = cache.get(stream)
            && c.version > entry.version
        {
            return Entry {
                version: c.version,
                state: Arc::clone(&c.state),
                bytes: c.bytes,
            };
        }
        cache.insert(
            stream.to_owned(),
            Cached {
                version: entry.version,
                state: Arc::clone(&entry.state),
                bytes: entry.bytes,
            },
        );
        entry
    }

    /// Takes the stream's entry out when it holds `state`, so that the
    /// caller, once it drops its other handles, moves the state instead of
    /// cloning it.
    pub fn take_if_same(&self, stream: &str, state: &Arc<S>) {
        let mut cache = self.lock();
        if cache.get(stream).is_some_and(|c| Arc::ptr_eq(&c.state, state)) {
            cache.remove(stream);
        }
    }

    pub fn forget(&self, stream: &str) {
        self.lock().remove(stream);
    }

    /// The estimated bytes held.
    #[cfg(test)]
    pub fn weight(&self) -> u64 {
        self.lock().weight()
    }
}

/// The bytes of `value` as JSON, counted without writing them anywhere.
pub(crate) fn json_bytes(value: &impl Serialize) -> u64 {
    struct Count(u64);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len() as u64);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail; a value that cannot be written
    // counts what was written before it failed.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, bytes: u64) -> Entry<u64> {
        Entry {
            version,
            state: Arc::new(version),
            bytes,
        }
    }

    #[test]
    fn holds_no_more_bytes_than_its_bound_and_evicts_gradually() {
        let bound = 1024 * 1024;
        let cache = StateCache::new(bound);
        let mut full = false;
        for i in 0..10_000u64 {
            cache.offer(&format!("stream-{i}"), entry(1, 4096));
            let held = cache.weight();
            assert!(held <= bound, "{held} bytes held after {i} streams");
            // Gradual: once full it stays nearly full; clearing everything
            // at a bound would drop it to one entry.
            full |= held >= bound * 9 / 10;
            assert!(!full || held >= bound / 2, "emptied to {held} bytes after {i} streams");
        }
        assert!(full, "never filled");
    }

    #[test]
    fn a_hot_stream_stays_while_cold_ones_come_and_go() {
        let cache = StateCache::new(256 * 1024);
        cache.offer("hot", entry(1, 1024));
        for i in 0..5_000u64 {
            assert!(cache.get("hot").is_some(), "the hot stream left after {i} cold ones");
            cache.offer(&format!("cold-{i}"), entry(1, 1024));
        }
    }

    #[test]
    fn never_moves_backwards() {
        let cache = StateCache::new(1024 * 1024);
        cache.offer("s", entry(51, 10));
        let kept = cache.offer("s", entry(49, 10));
        assert_eq!(kept.version, 51);
        assert_eq!(cache.get("s").map(|e| e.version), Some(51));
        cache.offer("s", entry(52, 10));
        assert_eq!(cache.get("s").map(|e| e.version), Some(52));
    }

    #[test]
    fn counts_json_bytes() {
        assert_eq!(
            json_bytes(&serde_json::json!({"a": "bc"})),
            br#"{"a":"bc"}"#.len() as u64
        );
    }
}
