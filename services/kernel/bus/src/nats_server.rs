//! A nats-server child process on a free loopback port, with its files in
//! a directory it keeps, stopped on drop: what `concord up` runs when no
//! `NATS_URL` is given, and what the testkit wraps in a temp dir.
//!
//! Must not: touch a server it did not start (the machine's own one on 4222
//! included).

use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting nats-server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up (another process may grab a free port
/// between our probe and nats-server's bind).
const START_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    #[error("nats-server was not found on PATH: install it (Debian: apt-get install nats-server)")]
    NotInstalled,
    #[error("nats-server did not start: {0}")]
    Start(String),
}

/// A nats-server child process.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// The configuration file it runs with (`credentials::ensure`'s: who
    /// may connect and what each may do); none: anyone, anything.
    config: Option<PathBuf>,
    /// Started to die with the thread that started it (`start_tied`).
    tied: bool,
}

/// Oldest nats-server release without known advisories (docs/security.md:
/// GHSA-fr2g-9hjm-wr23 fixed in 2.9.23, CVE-2026-33248 in 2.12.6).
pub const NATS_SERVER_VERSION_MIN: (u32, u32, u32) = (2, 12, 6);

/// The installed nats-server's version, from `nats-server --version`.
pub fn nats_server_version() -> Result<(u32, u32, u32), NatsServerError> {
    let out = Command::new(nats_server_binary()?)
        .arg("--version")
        .output()
        .map_err(|e| NatsServerError::Start(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| NatsServerError::Start(format!("unreadable version {:?}", text.trim())))
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split(['.', '-']).map(|p| p.parse::<u32>());
    Some((parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?))
}

/// The nats-server binary: `NATS_SERVER_BIN`, else `nats-server` on PATH,
/// else Debian's `/usr/sbin/nats-server` (not on a normal user's PATH).
pub fn nats_server_binary() -> Result<PathBuf, NatsServerError> {
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
        .ok_or(NatsServerError::NotInstalled)
}

fn free_port() -> Result<u16, NatsServerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| NatsServerError::Start(format!("finding a free port: {e}")))
}

impl NatsServer {
    /// Starts a server on a free port with its log, pid file and store in
    /// `dir`, which is kept. A server left running by an earlier process
    /// that was killed (its pid file names it) is stopped first.
    pub fn start_in(dir: &Path) -> Result<NatsServer, NatsServerError> {
        Self::start(dir, None, false)
    }

    /// `start_in` with the configuration file `config` (address and port
    /// still given on the command line, which wins over the file).
    pub fn start_with_config(dir: &Path, config: &Path) -> Result<NatsServer, NatsServerError> {
        Self::start(dir, Some(config), false)
    }

    /// `start_with_config` for a server that must not outlive the thread
    /// that calls this (`concord up`'s main thread, which lives as long as
    /// the process): it is started through util-linux `setpriv
    /// --pdeathsig KILL`, so the kernel kills it when that thread ends,
    /// even by `kill -9`. Without `setpriv` it starts as `start_with_config`
    /// does (a warning says so), and the next start on `dir` stops what
    /// was left. Call it, and `restart` such a server, from a thread that
    /// lives as long as the server should.
    pub fn start_tied(dir: &Path, config: &Path) -> Result<NatsServer, NatsServerError> {
        Self::start(dir, Some(config), true)
    }

    fn start(dir: &Path, config: Option<&Path>, tied: bool) -> Result<NatsServer, NatsServerError> {
        std::fs::create_dir_all(dir).map_err(|e| NatsServerError::Start(format!("{}: {e}", dir.display())))?;
        stop_orphan(dir);
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn(port, dir, config, tied) {
                Ok(child) => {
                    return Ok(NatsServer {
                        child: Some(child),
                        port,
                        dir: dir.to_owned(),
                        config: config.map(Path::to_owned),
                        tied,
                    });
                }
                Err(NatsServerError::Start(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(NatsServerError::Start(last))
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// `tls://127.0.0.1:<port>`: the URL that says TLS is required, for a
    /// server started with `tls::ensure`'s configuration.
    pub fn tls_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id while it runs (what `bench peers` reads
    /// its memory from).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the server process has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and dir.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.stop();
        self.child = Some(spawn(self.port, &self.dir, self.config.as_deref(), self.tied)?);
        Ok(())
    }
}

/// util-linux's `setpriv`, which sets the parent-death signal and execs
/// the server (no unsafe code here): where Debian puts it, or on `PATH`.
fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .or_else(|| {
            Command::new("setpriv")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()
                .filter(std::process::ExitStatus::success)
                .map(|_| PathBuf::from("setpriv"))
        })
}

fn spawn(port: u16, dir: &Path, config: Option<&Path>, tied: bool) -> Result<Child, NatsServerError> {
    let bin = nats_server_binary()?;
    let log = dir.join("nats.log");
    // The log is appended to across restarts: only what this start writes
    // says whether it is ready.
    let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len());
    let mut cmd = match tied.then(setpriv).flatten() {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
            c
        }
        None => {
            if tied {
                tracing::warn!("util-linux setpriv not found: the nats-server child may outlive a killed parent");
            }
            Command::new(bin)
        }
    };
    if let Some(config) = config {
        cmd.arg("-c").arg(config);
    }
    let mut child = cmd
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .arg("-l")
        .arg(&log)
        .arg("-P")
        .arg(dir.join(PID_FILE))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| NatsServerError::Start(e.to_string()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if logged_ready(&log, logged_before) {
            return Ok(child);
        }
        let exited = child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(NatsServerError::Start(format!("port {port}: {}", why.trim())));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What nats-server logs once it accepts clients (2.9 to 2.15 alike).
const READY_LINE: &str = "Server is ready";

/// Whether the log says, after its first `from` bytes, that the server is
/// ready. Read rather than probed by connecting: a server requiring TLS
/// logs every connection that leaves without a handshake as an error (one
/// per start), and another process that took the port between our probe
/// and nats-server's bind would accept a connection in its place.
fn logged_ready(log: &Path, from: u64) -> bool {
    let Ok(mut f) = std::fs::File::open(log) else {
        return false;
    };
    let mut text = Vec::new();
    f.seek(SeekFrom::Start(from)).is_ok()
        && f.read_to_end(&mut text).is_ok()
        && String::from_utf8_lossy(&text).contains(READY_LINE)
}

const PID_FILE: &str = "nats-server.pid";

/// Kills the nats-server an earlier, killed owner of `dir` left behind: only
/// if the pid file's process is still a nats-server started on this dir.
fn stop_orphan(dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(dir.join(PID_FILE)) else {
        return;
    };
    let pid = pid.trim();
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let cmdline = String::from_utf8_lossy(&cmdline);
    let ours = cmdline.contains("nats-server") && cmdline.contains(&*dir.join(PID_FILE).to_string_lossy());
    if ours {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
        // Its port is released when it is gone; do not race the new one.
        let deadline = Instant::now() + START_TIMEOUT;
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A process that exists and is not a zombie.
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("nats-server: v2.9.10\n"), Some((2, 9, 10)));
        assert_eq!(parse_version("nats-server: v2.12.6-beta"), Some((2, 12, 6)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn a_kept_dir_survives_and_an_orphan_is_replaced() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let first = NatsServer::start_in(dir.path()).expect("start");
        let pid = std::fs::read_to_string(dir.path().join(PID_FILE)).expect("pid");
        // As if the owner had been killed: the child is not stopped.
        std::mem::forget(first);
        let second = NatsServer::start_in(dir.path()).expect("start again");
        assert!(!alive(pid.trim()), "orphan left running");
        drop(second);
        assert!(dir.path().join("nats.log").exists());
    }
}
