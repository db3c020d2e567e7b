//! Test harness: a real nats-server on a free loopback port with its own
//! temp dir, stopped on drop. Tests never touch a server they did not start
//! (the machine's own one on 4222 included), so they run in parallel and
//! may kill theirs on purpose.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting nats-server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up (another process may grab a free port
/// between our probe and nats-server's bind).
const START_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("nats-server was not found on PATH: install it (Debian: apt-get install nats-server)")]
    NotInstalled,
    #[error("nats-server did not start: {0}")]
    Start(String),
}

/// A nats-server child process.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on PATH,
/// else Debian's `/usr/sbin/nats-server` (not on a normal user's PATH).
pub fn nats_server_binary() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .ok_or(HarnessError::NotInstalled)
}

fn free_port() -> Result<u16, HarnessError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| HarnessError::Start(format!("finding a free port: {e}")))
}

impl NatsServer {
    /// Starts a server on a free port in a new temp dir.
    pub fn start() -> Result<NatsServer, HarnessError> {
        let dir = tempfile::TempDir::new().map_err(|e| HarnessError::Start(e.to_string()))?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn(port, dir.path()) {
                Ok(child) => {
                    return Ok(NatsServer {
                        child: Some(child),
                        port,
                        dir,
                    });
                }
                Err(HarnessError::Start(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(HarnessError::Start(last))
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and dir.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.child = Some(spawn(self.port, self.dir.path())?);
        Ok(())
    }
}

fn spawn(port: u16, dir: &Path) -> Result<Child, HarnessError> {
    let bin = nats_server_binary()?;
    let log = dir.join("nats.log");
    let mut child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .arg("-l")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| HarnessError::Start(e.to_string()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(child);
        }
        let exited = child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(HarnessError::Start(format!("port {port}: {}", why.trim())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
