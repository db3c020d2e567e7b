//! Dev-only test tooling: a nats-server child on a free port in a temp dir
//! (so tests run in parallel and may kill theirs on purpose), a minimal
//! HTTP/1.1 client for black-box tests, and JSON Schema assertions.
//!
//! Must not: be a dependency of anything but tests and benches' dev builds.

pub mod actors;
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
