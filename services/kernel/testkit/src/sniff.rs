//! Watching the bus the way an outsider would: which reads of a log a
//! service makes (a subscription to `concord.log.<svc>.read` sees every
//! request beside the service answering it).

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

/// The `from_seq` of every log read request seen on `reads`: the first
/// (waited for up to 10 s), then every one that follows within `pause`
/// of the one before.
pub async fn read_froms(reads: &mut async_nats::Subscriber, pause: Duration) -> Vec<u64> {
    let from = |m: async_nats::Message| {
        serde_json::from_slice::<Value>(&m.payload).expect("a log read request")["from_seq"]
            .as_u64()
            .expect("from_seq")
    };
    let first = tokio::time::timeout(Duration::from_secs(10), reads.next())
        .await
        .expect("a read of the log")
        .expect("subscription");
    let mut froms = vec![from(first)];
    while let Ok(Some(m)) = tokio::time::timeout(pause, reads.next()).await {
        froms.push(from(m));
    }
    froms
}
