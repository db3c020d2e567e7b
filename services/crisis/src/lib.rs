//! The crisis service: the crisis contract (`concord_contracts::crisis`)
//! run on the kernel's runtime.
//!
//! Owns what is special about it: what it knows of deployments. Which
//! countries have a team deployed for a crisis (the contract's facts, the
//! deployments contract's `teams::TeamsView`) is folded from the
//! deployments log, typed by the deployments contract; the runtime waits
//! for that fold to reach the log's head before it decides or answers.
//!
//! Must not: hold a rule (the contract has them all), call the deployments
//! service, or depend on its runtime.

use std::sync::{Arc, RwLock};

use concord_bus::runtime::{Bound, Host};
use concord_bus::service::{self, Config, Error, Part, follow};
use concord_contracts::deployments::teams::TeamsView;
use concord_contracts::deployments::{self, Deployments};

pub use concord_contracts::crisis::Crisis;

/// Starts following the deployments log and binds the crisis subjects;
/// they answer when this returns.
pub async fn bind(cfg: &Config, client: async_nats::Client) -> Result<Bound<Crisis>, Error> {
    let log = service::open::<Crisis>(cfg).await?;
    let teams = Arc::new(RwLock::new(TeamsView::default()));
    let deployments_log = follow::<Deployments, _, _, _>(
        client.clone(),
        &log,
        teams.clone(),
        Part::whole("teams"),
        |teams, envelope, event| teams.apply(deployments::STREAM.id_of(&envelope.stream)?, &event),
    )
    .await?;
    let host = Host {
        facts: teams,
        followed: vec![deployments_log],
        tasks: Vec::new(),
        ..Host::default()
    };
    service::bind_log(log, client, host).await
}
