//! TLS on the bus, against a real nats-server run with `tls::ensure`'s
//! `concord-tls.conf` (the generated permissions plus a `tls` block): an
//! identity connecting with TLS, trusting the installation's CA, and with
//! its nkey works; a client speaking plaintext is refused even with a
//! valid key; a TLS client that does not trust the CA is refused.
//!
//! The plaintext client is a raw TCP one (async-nats switches to TLS by
//! itself when the server's INFO asks for it, so it cannot be made to stay
//! plaintext). It signs the server's nonce with a valid seed exactly as a
//! real client does, and the same probe against the same configuration
//! without the `tls` block gets its PONG: the refusal is TLS's, not a
//! broken probe's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use concord_bus::credentials::{self, Identities, Seed};
use concord_bus::nats_server::NatsServer;
use concord_bus::permissions::Identity;
use concord_bus::tls::{self, Tls};
use futures::StreamExt;

/// An installation's NATS directory: identities, certificates, and a
/// nats-server run with `config` in a directory of its own.
struct Installation {
    server: NatsServer,
    identities: Identities,
    tls: Tls,
    _dir: tempfile::TempDir,
}

fn start(with_tls: bool) -> Installation {
    let dir = tempfile::TempDir::new().expect("tmp");
    let nats = dir.path().join("nats");
    let identities = credentials::ensure(&nats).expect("identities");
    let tls = tls::ensure(&nats).expect("tls");
    let config = if with_tls { tls.config() } else { identities.config() };
    let server = NatsServer::start_with_config(&dir.path().join("server"), &config).expect("nats-server");
    Installation {
        server,
        identities,
        tls,
        _dir: dir,
    }
}

fn seed(ids: &Identities, id: Identity) -> Seed {
    ids.seed(id).expect("seed").clone()
}

async fn connect(url: &str, ids: &Identities, id: Identity, ca: Option<&Path>) -> Result<async_nats::Client, String> {
    credentials::connect_options(id, Some(&seed(ids, id)), ca)
        .connection_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_identity_with_tls_and_its_key_requests_and_responds() {
    let inst = start(true);
    let ca = inst.tls.ca();
    // Both URLs work: `tls://` says it, and with a CA the client requires
    // TLS on a `nats://` URL too.
    for url in [inst.server.tls_url(), inst.server.url()] {
        let service = connect(
            &url,
            &inst.identities,
            Identity::Service(concord_core::Service::Operations),
            Some(&ca),
        )
        .await
        .expect("operations connects with TLS");
        assert!(service.server_info().tls_required, "the server requires TLS");
        let mut heads = service.subscribe("concord.log.operations.head").await.expect("sub");
        service.flush().await.expect("flush");
        let answering = tokio::spawn(async move {
            let req = heads.next().await.expect("a request");
            let reply = req.reply.expect("a reply subject");
            service.publish(reply, "head".into()).await.expect("reply");
            service.flush().await.expect("flush");
        });

        let operator = connect(&url, &inst.identities, Identity::Operator, Some(&ca))
            .await
            .expect("the operator connects with TLS");
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            operator.request("concord.log.operations.head", "".into()),
        )
        .await
        .expect("answered in time")
        .expect("request");
        assert_eq!(&answer.payload[..], b"head");
        answering.await.expect("answered");
    }
}

/// A plaintext client as the NATS protocol has it: reads INFO, signs its
/// nonce with the seed in `seed_file`, sends CONNECT and PING, and returns
/// what the server answered: its INFO line, everything it sent after it,
/// and whether it closed the connection (else it went quiet, or sent PONG).
fn plaintext_client(url: &str, seed_file: &Path) -> Answer {
    let addr = url.rsplit_once("://").map_or(url, |(_, a)| a);
    let stream = TcpStream::connect(addr).expect("tcp");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut info = String::new();
    reader.read_line(&mut info).expect("INFO");
    let fields: serde_json::Value =
        serde_json::from_str(info.trim().strip_prefix("INFO ").expect("an INFO line")).expect("INFO json");
    let nonce = fields["nonce"].as_str().expect("a nonce to sign");
    let seed = std::fs::read_to_string(seed_file).expect("seed file");
    let key = nkeys::KeyPair::from_seed(seed.trim()).expect("seed");
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.sign(nonce.as_bytes()).expect("sign"));
    let connect = serde_json::json!({
        "verbose": false, "pedantic": false, "tls_required": false, "name": "plaintext-probe",
        "lang": "raw", "version": "0", "protocol": 1, "headers": true,
        "nkey": key.public_key(), "sig": sig,
    });
    let mut writer = stream;
    // The server may already have closed it; what it answered is the test.
    let _ = writer.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    let mut after = Vec::new();
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match reader.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) => {
                closed = !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
                break;
            }
            Ok(n) => {
                after.extend_from_slice(&buf[..n]);
                if after.windows(4).any(|w| w == b"PONG") {
                    break;
                }
            }
        }
    }
    Answer {
        info,
        after: String::from_utf8_lossy(&after).into_owned(),
        closed,
    }
}

struct Answer {
    info: String,
    after: String,
    closed: bool,
}

#[test]
fn a_plaintext_client_is_refused_even_with_a_valid_key() {
    let op = Identity::Operator;
    // The probe works: the same configuration without TLS answers it.
    let plain = start(false);
    let answer = plaintext_client(&plain.server.url(), &plain.identities.seed_file(op));
    assert!(!answer.info.contains("\"tls_required\":true"), "{}", answer.info);
    assert!(
        answer.after.contains("PONG"),
        "the valid key is admitted in plaintext without TLS: {:?}",
        answer.after
    );

    let secured = start(true);
    let answer = plaintext_client(&secured.server.url(), &secured.identities.seed_file(op));
    assert!(
        answer.info.contains("\"tls_required\":true"),
        "the server says TLS is required: {}",
        answer.info
    );
    assert!(
        !answer.after.contains("PONG") && !answer.after.contains("+OK"),
        "a plaintext client was served: {:?}",
        answer.after
    );
    assert!(answer.closed, "the server closes a plaintext connection");
}

#[tokio::test]
async fn a_tls_client_that_does_not_trust_the_ca_is_refused() {
    let inst = start(true);
    let op = Identity::Operator;
    // Another installation's CA: the server's certificate is not from it.
    let other_dir = tempfile::TempDir::new().expect("tmp");
    let other = tls::ensure(other_dir.path()).expect("other CA");
    let err = connect(&inst.server.tls_url(), &inst.identities, op, Some(&other.ca()))
        .await
        .expect_err("a certificate from an untrusted CA is refused");
    assert!(err.contains("certificate"), "{err}");
    // No CA named: the system's CAs, none of which issued it (on either
    // URL: the client takes TLS when the server asks for it).
    for url in [inst.server.tls_url(), inst.server.url()] {
        let err = connect(&url, &inst.identities, op, None)
            .await
            .expect_err("the system's CAs do not vouch for a private CA's certificate");
        assert!(err.contains("certificate"), "{url}: {err}");
    }
    // The right CA, the same key: admitted.
    connect(&inst.server.tls_url(), &inst.identities, op, Some(&inst.tls.ca()))
        .await
        .expect("trusting the installation's CA");
}
