//! Dev-only test tooling: a nats-server child on a free port in a temp dir
//! (so tests run in parallel and may kill theirs on purpose), a minimal
//! HTTP/1.1 client for black-box tests, and JSON Schema assertions.
//!
//! Must not: be a dependency of anything but tests and benches' dev builds.

pub mod actors;
pub mod decider;
pub mod http;
pub mod idp;
pub mod schemas;
pub mod sniff;

use std::ops::{Deref, DerefMut};

use concord_bus::credentials::{self, Identities};
pub use concord_bus::nats_server::NatsServerError;
use concord_bus::permissions::Identity;

/// A nats-server on a free loopback port with its files in a temp dir,
/// killed and removed on drop.
pub struct NatsServer {
    // Declared first: dropped (killed) before its directory is removed.
    server: concord_bus::nats_server::NatsServer,
    identities: Option<Identities>,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// A server that lets anyone do anything (tests of what the bus
    /// carries, not of who may use it).
    pub fn start() -> Result<NatsServer, NatsServerError> {
        let dir = tempfile::TempDir::new().map_err(|e| NatsServerError::Start(e.to_string()))?;
        let server = concord_bus::nats_server::NatsServer::start_in(dir.path())?;
        Ok(NatsServer {
            server,
            identities: None,
            _dir: dir,
        })
    }

    /// A server as `concord up` runs it: the generated identities and
    /// permissions, no anonymous connection.
    pub fn start_secured() -> Result<NatsServer, NatsServerError> {
        let dir = tempfile::TempDir::new().map_err(|e| NatsServerError::Start(e.to_string()))?;
        let identities = credentials::ensure(dir.path()).map_err(|e| NatsServerError::Start(e.to_string()))?;
        let server = concord_bus::nats_server::NatsServer::start_with_config(dir.path(), &identities.config())?;
        Ok(NatsServer {
            server,
            identities: Some(identities),
            _dir: dir,
        })
    }

    /// The identities of a secured server.
    pub fn identities(&self) -> Option<&Identities> {
        self.identities.as_ref()
    }

    /// A connection as `identity`: with its key on a secured server, its
    /// inbox prefix on both.
    pub async fn connect_as(&self, identity: Identity) -> Result<async_nats::Client, async_nats::ConnectError> {
        let opts = match &self.identities {
            Some(ids) => ids.connect_options(identity),
            None => credentials::connect_options(identity, None, None),
        };
        opts.connect(self.url()).await
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

/// The Python of the pinned test toolchain (`requirements-test.txt`):
/// `CONCORD_TEST_PYTHON` as `scripts/test` sets it, else the repository's
/// `.venv-test`. A test that needs it fails when it is missing: nothing is
/// skipped.
pub fn test_python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("CONCORD_TEST_PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../.venv-test/bin/python");
    assert!(
        venv.is_file(),
        "the test toolchain is missing: run scripts/test (it installs requirements-test.txt into .venv-test)"
    );
    venv
}
