//! Black-box: `concord up --tls` runs its nats-server with TLS required of
//! every client and connects every service with the CA it made: the HTTP
//! story works through it, its banner names the `tls://` URL and the CA,
//! a plaintext client is refused, and the operator's tools and a separate
//! `concord serve` process connect with that CA (`--nats-ca`,
//! `CONCORD_NATS_CA`, or the CA beside the log for `log backup` of a
//! `tls://` URL).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::*;
use concord_bus::credentials::{self, Seed};
use concord_bus::permissions::Identity;
use concord_core::Service;
use serde_json::json;

/// A process stopped with SIGTERM (then SIGKILL) when dropped.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the server sends a client that speaks plaintext after its INFO:
/// the INFO line, what came after the client's CONNECT and PING, and
/// whether the server closed the connection.
fn plaintext_client(url: &str) -> (String, String, bool) {
    let addr = url.rsplit_once("://").map_or(url, |(_, a)| a);
    let stream = TcpStream::connect(addr).expect("tcp");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut info = String::new();
    reader.read_line(&mut info).expect("INFO");
    let mut writer = stream;
    // It may already be closed; what the server answered is the test.
    let _ = writer
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"protocol\":1}\r\nPING\r\n");
    let (mut after, mut buf) = (Vec::new(), [0u8; 4096]);
    let closed = loop {
        match reader.read(&mut buf) {
            Ok(0) => break true,
            Err(e) => break !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            Ok(n) => after.extend_from_slice(&buf[..n]),
        }
    };
    (info, String::from_utf8_lossy(&after).into_owned(), closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_tls_serves_the_story_and_refuses_plaintext() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let data = dir.path().join("data");
    let sys = up_with(&data, &free_addr(), &["--tls"]);

    let url = sys.nats_url();
    assert!(url.starts_with("tls://127.0.0.1:"), "{url}");
    let ca = data.join("nats").join("tls").join("ca.pem");
    assert!(ca.is_file());
    assert!(
        sys.banner.iter().any(|l| l.contains(&*ca.to_string_lossy())),
        "the banner says where the CA is: {:#?}",
        sys.banner
    );

    // The story, through services that reach each other over TLS only.
    let r = sys
        .post(
            "/v1/operations",
            "FR_COORDINATOR",
            json!({"title": "Op Lys", "objective": "dismantle the network", "lead_country": "FR", "countries": ["DE", "ES"]}),
        )
        .await;
    let op = ok(&r, 201)["id"].as_str().expect("id").to_owned();
    let ready = sys.call("GET", "/readyz", None, &[], None).await;
    assert_eq!(ready.status, 200, "{:?}", ready.json());

    // Every connection of Concord's own, and the start-up check, went
    // through the handshake: the server logged no failed one.
    let log = std::fs::read_to_string(data.join("nats").join("nats.log")).expect("nats.log");
    assert!(log.contains("TLS required for client connections"), "{log}");
    assert!(!log.contains("TLS handshake error"), "{log}");

    // A plaintext client: told TLS is required, then closed; its CONNECT
    // is never read as NATS (no PONG, not even an authorization error).
    let (info, after, closed) = plaintext_client(&url);
    assert!(
        info.starts_with("INFO ") && info.contains("\"tls_required\":true"),
        "{info}"
    );
    assert!(!after.contains("PONG") && !after.contains("Authorization"), "{after:?}");
    assert!(closed, "the server closes a plaintext connection");

    // The operator's key with the printed CA: connected, and it reads the
    // head of the log the story wrote to.
    let seed = Seed::read_file(&data.join("nats").join(credentials::SEEDS_DIR).join("operator.nk")).expect("seed");
    let client = credentials::connect_options(Identity::Operator, Some(&seed), Some(&ca))
        .connect(&url)
        .await
        .expect("the operator connects with the CA");
    let head = concord_bus::logs::fetch_head(&client, Service::Operations)
        .await
        .expect("head");
    assert!(head.seq >= 1, "{op}: {head:?}");
    // The same key trusting only the system's CAs is refused.
    assert!(
        credentials::connect_options(Identity::Operator, Some(&seed), None)
            .connect(&url)
            .await
            .is_err()
    );

    // `log backup` of the running service: over `tls://` it finds the CA
    // beside the log as it finds the operator's seed; over `nats://` it
    // takes the CA from CONCORD_NATS_CA.
    let plain_url = url.replacen("tls://", "nats://", 1);
    for (i, (nats, env_ca)) in [(url.as_str(), None), (plain_url.as_str(), Some(&ca))]
        .into_iter()
        .enumerate()
    {
        let out_dir = dir.path().join(format!("backup-{i}"));
        let mut cmd = Command::new(BIN);
        cmd.args(["log", "backup"])
            .arg(data.join("operations"))
            .arg("--out")
            .arg(&out_dir)
            .args(["--nats", nats])
            .env_remove("NATS_URL")
            .env_remove("CONCORD_NATS_SEED")
            .env_remove("CONCORD_NATS_CA");
        if let Some(ca) = env_ca {
            cmd.env("CONCORD_NATS_CA", ca);
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("backup"))
            .await
            .expect("join");
        assert!(out.status.success(), "{nats}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("read from nats"));
        assert!(out_dir.join("events.jsonl").is_file());
    }

    // A separate gateway process (`concord serve`) with `--nats-ca`: it
    // reaches every service over TLS (its /readyz asks each one).
    let gw_addr = free_addr();
    let gateway = Stopped(
        Command::new(BIN)
            .args(["serve", "gateway", "--data"])
            .arg(&data)
            .args(["--http", &gw_addr, "--creds"])
            .arg(data.join("nats").join(credentials::SEEDS_DIR).join("gateway.nk"))
            .arg("--nats-ca")
            .arg(&ca)
            .env("NATS_URL", &url)
            .env_remove("CONCORD_NATS_SEED")
            .env_remove("CONCORD_NATS_CA")
            .env_remove("CONCORD_JWT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve gateway"),
    );
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let r = concord_testkit::http::request(&gw_addr, "GET", "/readyz", &[], None).await;
        if matches!(&r, Ok(r) if r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the served gateway never got ready: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gateway);
    drop(sys);
    assert_tls_dir_private(&data.join("nats").join("tls"));
}

fn assert_tls_dir_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o700);
    assert_eq!(mode(&dir.join("server-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
}
