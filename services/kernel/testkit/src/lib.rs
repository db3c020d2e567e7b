//! Dev-only test tooling: a nats-server child on a free port in a temp dir
//! (so tests run in parallel and may kill theirs on purpose), a minimal
//! HTTP/1.1 client for black-box tests, and JSON Schema assertions.
//!
//! Must not: be a dependency of anything but tests and benches' dev builds.

pub mod decider;
pub mod http;
pub mod schemas;

use std::ops::{Deref, DerefMut};

pub use concord_bus::nats_server::NatsServerError;

/// A nats-server on a free loopback port with its files in a temp dir,
/// killed and removed on drop.
pub struct NatsServer {
    // Declared first: dropped (killed) before its directory is removed.
    server: concord_bus::nats_server::NatsServer,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Result<NatsServer, NatsServerError> {
        let dir = tempfile::TempDir::new().map_err(|e| NatsServerError::Start(e.to_string()))?;
        let server = concord_bus::nats_server::NatsServer::start_in(dir.path())?;
        Ok(NatsServer { server, _dir: dir })
    }
}

impl Deref for NatsServer {
    type Target = concord_bus::nats_server::NatsServer;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.server
    }
}
