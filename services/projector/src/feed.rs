//! Each country's feed on NATS: once a burst of applied events is written,
//! every event is published to each country it reached, on
//! `concord.feed.<CC>.<service>.<type>` (nothing else on that subject, so
//! a national site allowed `concord.feed.<CC>.>` hears only what its
//! country may see). Each message carries its feed position and the
//! position of the country's entry before it: a subscriber whose last
//! position is not that one missed something (a dropped connection, a
//! projector that stopped between writing and publishing) and reads it
//! from `concord.feed.<CC>.read`, which the projector answers from its
//! store, the truth.
//!
//! Must not: publish before the burst is durable, or to a country the
//! event's reach does not name.

use std::collections::BTreeMap;

use bytes::Bytes;
use concord_core::{CountryCode, subjects};

use crate::store::{FeedEntry, Store, StoreError};

/// One feed message, ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub subject: String,
    pub position: u64,
    /// The country's entry before this one (0: none).
    pub previous: u64,
    pub payload: Bytes,
}

impl Message {
    pub fn headers(&self) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert(subjects::FEED_POSITION, self.position.to_string().as_str());
        h.insert(subjects::FEED_PREVIOUS, self.previous.to_string().as_str());
        h
    }
}

/// Where each country's feed stands, to chain its messages.
#[derive(Debug, Clone, Default)]
pub struct Publisher {
    /// The last entry that reached the country by name.
    last: BTreeMap<CountryCode, u64>,
    /// The last entry that reached everyone.
    everyone: u64,
}

impl Publisher {
    /// Where the feeds stand in `store` (after a restart, so the first
    /// message's `previous` is right).
    pub fn resume(store: &Store) -> Result<Publisher, StoreError> {
        let (last, everyone) = store.feed_heads()?;
        Ok(Publisher { last, everyone })
    }

    fn previous(&self, country: CountryCode) -> u64 {
        self.last.get(&country).copied().unwrap_or(0).max(self.everyone)
    }

    /// The messages of `entries` (in position order), and the feeds
    /// advanced past them.
    pub fn messages(&mut self, entries: &[FeedEntry]) -> Vec<Message> {
        let mut out = Vec::new();
        for entry in entries {
            let Ok(payload) = serde_json::to_vec(&entry.event) else {
                continue;
            };
            let payload = Bytes::from(payload);
            let (service, event_type) = (entry.event.service, entry.event.event_type.as_str());
            let countries: Vec<CountryCode> = if entry.reach.everyone {
                CountryCode::all().collect()
            } else {
                entry.reach.countries.iter().copied().collect()
            };
            for cc in countries {
                out.push(Message {
                    subject: subjects::feed_event(cc.as_str(), service, event_type),
                    position: entry.position,
                    previous: self.previous(cc),
                    payload: payload.clone(),
                });
                if !entry.reach.everyone {
                    self.last.insert(cc, entry.position);
                }
            }
            if entry.reach.everyone {
                self.everyone = entry.position;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::Reach;
    use concord_core::Service;
    use std::collections::BTreeSet;

    fn cc(s: &str) -> CountryCode {
        s.parse().expect("country")
    }

    fn entry(logs: &mut crate::tests::Logs, position: u64, everyone: bool, countries: &[&str]) -> FeedEntry {
        FeedEntry {
            position,
            reach: Reach {
                everyone,
                countries: countries.iter().map(|c| cc(c)).collect::<BTreeSet<_>>(),
                reviewers: false,
            },
            event: logs.event(Service::Operations, "s", "task.assigned", "FR", serde_json::json!({})),
        }
    }

    /// Each country's messages chain: `previous` is the position of the
    /// country's message before, whether it reached it by name or as
    /// everyone's; a country an entry does not reach gets nothing of it.
    #[test]
    fn each_countrys_messages_name_the_one_before() {
        let mut p = Publisher::default();
        let logs = &mut crate::tests::Logs::new();
        let got = p.messages(&[
            entry(logs, 1, false, &["FR", "DE"]),
            entry(logs, 2, false, &["FR"]),
            entry(logs, 3, true, &[]),
            entry(logs, 4, false, &["DE"]),
        ]);
        let of = |c: &str| -> Vec<(u64, u64)> {
            got.iter()
                .filter(|m| m.subject.starts_with(&format!("concord.feed.{c}.")))
                .map(|m| (m.position, m.previous))
                .collect()
        };
        assert_eq!(of("FR"), vec![(1, 0), (2, 1), (3, 2)]);
        assert_eq!(of("DE"), vec![(1, 0), (3, 1), (4, 3)]);
        assert_eq!(of("IT"), vec![(3, 0)]);
        assert_eq!(got[0].subject, "concord.feed.DE.operations.task.assigned");
        assert_eq!(
            got.iter().filter(|m| m.position == 3).count(),
            CountryCode::all().count()
        );
    }
}
