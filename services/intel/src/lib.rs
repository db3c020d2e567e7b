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
use concord_bus::service::{self, Config, Error, Part};
use concord_contracts::operations::membership::OperationsView;
use concord_contracts::operations::{self, Operations};

pub use concord_contracts::intel::Intel;

/// Starts following the operations log and binds the intel subjects; they
/// answer when this returns.
pub async fn bind(cfg: &Config, client: async_nats::Client) -> Result<Bound<Intel>, Error> {
    let log = service::open::<Intel>(cfg).await?;
    let facts = Arc::new(RwLock::new(OperationsView::default()));
    let followed = service::follow::<Operations, _, _, _>(
        client.clone(),
        &log,
        facts.clone(),
        Part::whole("membership"),
        |view, envelope, event| view.apply(operations::STREAM.id_of(&envelope.stream)?, &event),
    )
    .await?;
    let host = Host {
        facts,
        followed: vec![followed],
        tasks: vec![],
        ..Host::default()
    };
    service::bind_log(log, client, host).await
}
