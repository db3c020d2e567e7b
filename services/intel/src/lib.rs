//! The intel service: the intel contract (`concord_contracts::intel`:
//! leads, arrests, notices and their review, and who may see each) run on
//! the kernel's runtime, with what it knows of operations (who takes part,
//! whether closed) folded into the contract's facts from the operations
//! log, followed from its start at every start (the fold is small and never
//! stale). The runtime waits for that fold to reach the operations log's
//! head before deciding or answering, so a lead from a removed country or
//! to a closed operation is refused even right after the change.
//!
//! Must not: call the operations service (it learns operations from their
//! log only), hold a rule (the contract has them all), or do anything the
//! runtime does not do for every service besides following that log.

use std::sync::{Arc, RwLock};

use concord_bus::runtime::{Bound, Host};
use concord_bus::service::{self, Config, Error};
use concord_contracts::operations::Operations;
use concord_contracts::operations::membership::OperationsView;
use uuid::Uuid;

pub use concord_contracts::intel::Intel;

/// Starts following the operations log and binds the intel subjects; they
/// answer when this returns.
pub async fn bind(cfg: &Config, client: async_nats::Client) -> Result<Bound<Intel>, Error> {
    let facts = Arc::new(RwLock::new(OperationsView::default()));
    let followed =
        service::follow::<Operations, OperationsView, _>(client.clone(), facts.clone(), |view, envelope, event| {
            let operation_id = envelope
                .stream
                .strip_prefix("operation-")
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| {
                    format!(
                        "operations {} on stream {:?}, not operation-<uuid>",
                        envelope.event_type, envelope.stream
                    )
                })?;
            view.apply(operation_id, &event)
        })
        .await?;
    let host = Host {
        facts,
        followed: vec![followed],
        tasks: vec![],
    };
    service::bind(cfg, client, host).await
}

/// Runs the intel service until `shutdown` resolves.
pub async fn run(
    cfg: &Config,
    client: async_nats::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    Ok(bind(cfg, client).await?.run(shutdown).await?)
}
