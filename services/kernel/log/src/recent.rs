//! The log's newest committed events, kept in memory exactly as stored.
//!
//! Rationale: every consumer of a live log reads its tail, right after the
//! writer committed it (four consumers of the operations log in `concord
//! up`). Answered from fjall, each read is a blocking call moved off the
//! async threads (a thread hand-off both ways, ~20 % of the context
//! switches of a command over HTTP); answered from here, it is a copy
//! under a lock held for a push. Only committed (fsynced) events enter,
//! in seq order, so a read from here answers what a read from disk would.
//!
//! Must not: hold an event the writer has not committed, or grow past its
//! bounds.

use std::collections::VecDeque;

use super::{Gathered, RawEvent};

/// Most events kept. A bound, not a tuning knob: a consumer further
/// behind than this reads from disk, as before.
pub const RECENT_EVENTS_MAX: usize = 2048;
/// Most bytes of events kept.
pub const RECENT_BYTES_MAX: usize = 2 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct Recent {
    events: VecDeque<RawEvent>,
    bytes: usize,
}

impl Recent {
    /// Keeps the event committed at `seq`, the oldest ones leaving past
    /// the bounds. An event that does not follow the last one kept starts
    /// the window over: the window only ever holds a gapless run.
    pub fn push(&mut self, seq: u64, bytes: &[u8]) {
        if self.events.back().is_some_and(|last| last.seq + 1 != seq) {
            self.events.clear();
            self.bytes = 0;
        }
        self.bytes += bytes.len();
        self.events.push_back(RawEvent {
            seq,
            bytes: bytes.to_vec(),
        });
        while self.events.len() > RECENT_EVENTS_MAX || (self.bytes > RECENT_BYTES_MAX && self.events.len() > 1) {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    /// The events `from..=last` gathered into `read`, cut where it cuts
    /// them (`read_from`'s rule); `None` unless the window holds the whole
    /// range.
    pub fn read(&self, from: u64, last: u64, mut read: Gathered) -> Option<Vec<RawEvent>> {
        let first = self.events.front()?.seq;
        let newest = self.events.back()?.seq;
        if from < first || last > newest || from > last {
            return None;
        }
        let start = usize::try_from(from - first).ok()?;
        for e in self.events.range(start..).take_while(|e| e.seq <= last) {
            if !read.take(e.seq, &e.bytes) {
                break;
            }
        }
        Some(read.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upto(max_bytes: usize) -> Gathered {
        Gathered::new(usize::MAX, max_bytes)
    }

    fn filled(seqs: std::ops::RangeInclusive<u64>, size: usize) -> Recent {
        let mut r = Recent::default();
        for seq in seqs {
            r.push(seq, &vec![(seq % 251) as u8; size]);
        }
        r
    }

    #[test]
    fn answers_only_a_range_it_holds_whole() {
        let r = filled(1..=10, 8);
        let got = r.read(3, 7, upto(usize::MAX)).expect("held");
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7]);
        assert!(got.iter().all(|e| e.bytes == vec![(e.seq % 251) as u8; 8]));
        assert!(r.read(3, 11, upto(usize::MAX)).is_none(), "past the newest");
        assert!(r.read(0, 2, upto(usize::MAX)).is_none(), "before the oldest");
        assert!(Recent::default().read(1, 1, upto(usize::MAX)).is_none());
    }

    #[test]
    fn keeps_the_newest_within_its_bounds() {
        let r = filled(1..=(RECENT_EVENTS_MAX as u64 + 5), 8);
        assert!(r.read(5, 5, upto(usize::MAX)).is_none(), "the oldest left");
        assert_eq!(r.read(6, 6, upto(usize::MAX)).map(|v| v.len()), Some(1));
        let big = filled(1..=40, 100 * 1024);
        assert!(big.bytes <= RECENT_BYTES_MAX);
        assert!(big.read(20, 20, upto(usize::MAX)).is_none());
        assert_eq!(big.read(40, 40, upto(usize::MAX)).map(|v| v.len()), Some(1));
    }

    #[test]
    fn cuts_a_batch_after_max_bytes_but_never_before_its_first_event() {
        let r = filled(1..=10, 100);
        assert_eq!(r.read(1, 10, upto(250)).map(|v| v.len()), Some(2));
        assert_eq!(r.read(1, 10, upto(10)).map(|v| v.len()), Some(1));
    }

    #[test]
    fn cuts_a_batch_at_its_most_events() {
        let r = filled(1..=10, 8);
        let got = r.read(2, 10, Gathered::new(3, usize::MAX)).expect("held");
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn a_gap_starts_the_window_over() {
        let mut r = filled(1..=5, 8);
        r.push(9, b"x");
        assert!(r.read(5, 5, upto(usize::MAX)).is_none());
        assert_eq!(
            r.read(9, 9, upto(usize::MAX)).map(|v| v[0].bytes.clone()),
            Some(b"x".to_vec())
        );
    }
}
