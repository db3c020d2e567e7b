//! The operations service: the operations contract
//! (`concord_contracts::operations`) run on the kernel's runtime. It
//! follows no other log and reacts to nothing, so it is the generic
//! adapter and nothing more.
//!
//! Must not: hold a rule (the contract has them all), or do anything the
//! runtime does not do for every service.

use concord_bus::runtime::{Bound, Host};
use concord_bus::service::{self, Config, Error};
pub use concord_contracts::operations::Operations;

/// Binds the operations subjects; they answer when this returns.
pub async fn bind(cfg: &Config, client: async_nats::Client) -> Result<Bound<Operations>, Error> {
    service::bind(cfg, client, Host::default()).await
}
