//! TLS on the NATS connections: a private certificate authority and the
//! nats-server's certificate signed by it, made once per installation in
//! `<dir>/tls/`, and the server configuration that requires TLS of every
//! client (`concord-tls.conf`: the permissions file [`CONFIG_FILE`] included
//! unchanged, plus a `tls` block).
//!
//! A private CA rather than a self-signed server certificate: clients trust
//! one file ([`Tls::ca`]) that stays valid when the server's certificate is
//! issued again from it, and an operator who has a CA of their own points
//! nats-server and clients at it instead without any change here
//! (`docs/security.md`, TLS). Keys are ECDSA P-256, made with `rcgen` on
//! `ring` (no C toolchain); the server certificate names `localhost`,
//! `127.0.0.1` and `::1`, where `concord up` listens.
//!
//! Must not: replace certificates or keys that exist (clients trust the CA
//! made the first time; rotating is deleting the directory), use a key file
//! others can read, or print a key.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::permissions::CONFIG_FILE;

/// The directory of the certificates and keys, inside the NATS directory.
pub const TLS_DIR: &str = "tls";
/// The nats-server configuration requiring TLS, beside [`CONFIG_FILE`].
pub const TLS_CONFIG_FILE: &str = "concord-tls.conf";
/// The environment variable naming a CA file to trust (as `--nats-ca`).
pub const CA_ENV: &str = "CONCORD_NATS_CA";
/// The CA's certificate: what clients trust.
pub const CA_CERT: &str = "ca.pem";
/// The CA's key: signs the server's certificate; needed again only to
/// issue another one by hand, so it may be moved off the host (nats-server
/// never reads it, and [`ensure`] does not need it once the server's
/// certificate exists).
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVER_CERT: &str = "server.pem";
pub const SERVER_KEY: &str = "server-key.pem";
/// The names the server's certificate is valid for: where `concord up`'s
/// nats-server listens, by name and by address.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// How long the certificates are valid. Long, since nothing renews them:
/// rotating is deleting the directory (`docs/security.md`).
const VALID_DAYS: u64 = 10 * 365;
/// Seconds nats-server gives a client to complete the TLS handshake:
/// generous, since `concord up` connects every service at once, on a
/// machine that may be busy.
const HANDSHAKE_TIMEOUT_SECS: u32 = 5;
/// Prefix of the directory the certificates are made in before it is
/// renamed to [`TLS_DIR`] (suffixed with the making process's id).
const STAGING_PREFIX: &str = "tls.partial-";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} can be read by others (mode {mode:o}); it is a TLS private key: `chmod 600 {path}`, \
         or delete its directory to make new certificates (docs/security.md, TLS)"
    )]
    Exposed { path: String, mode: u32 },
    #[error(
        "{dir} has no {missing}: delete {dir} to make new certificates (clients must then trust the new {CA_CERT})"
    )]
    Incomplete { dir: String, missing: &'static str },
    #[error("making the TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}: a nats-server configuration cannot name a path with a quote, a backslash or a control character")]
    Path(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The TLS files of one installation (absolute paths).
#[derive(Debug, Clone)]
pub struct Tls {
    /// The NATS directory: `tls/` and the configuration are in it.
    dir: PathBuf,
}

impl Tls {
    /// The CA certificate clients trust (`--nats-ca`, [`CA_ENV`]).
    pub fn ca(&self) -> PathBuf {
        self.dir.join(TLS_DIR).join(CA_CERT)
    }

    /// The nats-server configuration file to start the server with.
    pub fn config(&self) -> PathBuf {
        self.dir.join(TLS_CONFIG_FILE)
    }

    /// The server's certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join(TLS_DIR).join(SERVER_CERT)
    }

    /// The server's private key.
    pub fn key(&self) -> PathBuf {
        self.dir.join(TLS_DIR).join(SERVER_KEY)
    }
}

/// Makes, once, the CA and the server's certificate in `<dir>/tls/`
/// (directory 0700, keys 0600) and writes `<dir>/concord-tls.conf`, which
/// includes `concord.conf` (written by `credentials::ensure` on the same
/// `dir`) and requires TLS with them. Existing certificates are kept; the
/// configuration is rewritten each time (the data directory may have
/// moved, and its paths are absolute).
pub fn ensure(dir: &Path) -> Result<Tls, TlsError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    remove_abandoned(&dir);
    let tls_dir = dir.join(TLS_DIR);
    if !tls_dir.exists() {
        make(&dir, &tls_dir)?;
    }
    for file in [CA_CERT, SERVER_CERT, SERVER_KEY] {
        if !tls_dir.join(file).is_file() {
            return Err(TlsError::Incomplete {
                dir: tls_dir.display().to_string(),
                missing: file,
            });
        }
    }
    private(&tls_dir.join(SERVER_KEY))?;
    let ca_key = tls_dir.join(CA_KEY);
    if ca_key.exists() {
        private(&ca_key)?;
    }
    let tls = Tls { dir };
    write_atomically(&tls.config(), &server_config(&tls)?)?;
    Ok(tls)
}

/// Refuses a key file others can read or write.
fn private(path: &Path) -> Result<(), TlsError> {
    let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// The nats-server configuration: the permissions as they are, and TLS
/// required of every client (a `tls` block without `allow_non_tls`).
fn server_config(tls: &Tls) -> Result<String, TlsError> {
    let quoted = |p: PathBuf| {
        let s = p.display().to_string();
        if s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(TlsError::Path(s));
        }
        Ok(format!("\"{s}\""))
    };
    Ok(format!(
        "# Concord's NATS permissions with TLS required of every client, written by\n\
         # concord_bus::tls (concord up --tls). The certificates are in tls/: clients\n\
         # trust tls/{CA_CERT} (concord --nats-ca, {CA_ENV}).\n\
         include \"{CONFIG_FILE}\"\n\
         \n\
         tls {{\n  cert_file: {}\n  key_file: {}\n  timeout: {HANDSHAKE_TIMEOUT_SECS}\n}}\n",
        quoted(tls.cert())?,
        quoted(tls.key())?,
    ))
}

/// The PEM texts of a new CA and a server certificate signed by it.
struct Made {
    ca_cert: String,
    ca_key: String,
    server_cert: String,
    server_key: String,
}

fn generate() -> Result<Made, rcgen::Error> {
    // From yesterday: a client whose clock is a little behind still
    // accepts a certificate made a moment ago.
    let today = chrono::Utc::now().date_naive();
    let ymd = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let not_before = ymd(today - chrono::Days::new(1));
    let not_after = ymd(today + chrono::Days::new(VALID_DAYS));
    let name = |cn: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Concord");
        dn.push(DnType::CommonName, cn);
        dn
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    // Named after its key: each installation's CA has a name of its own,
    // so a client given another installation's CA finds no issuer of that
    // name rather than one whose signature fails, and a person reading a
    // trust store can tell two installations apart.
    let id: String = ca
        .key_identifier(&ca_key)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    ca.distinguished_name = name(&format!("Concord NATS CA {id}"));
    // It signs server certificates only: no intermediate CA below it.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
    server.distinguished_name = name("Concord nats-server");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = not_before;
    server.not_after = not_after;
    let server_cert = server.signed_by(&server_key, &Issuer::from_params(&ca, &ca_key))?;

    Ok(Made {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
    })
}

/// Makes the four files in a staging directory and renames it to
/// `tls_dir` in one step: a crash leaves either no `tls/` (made again on
/// the next start) or a complete one, never a CA without its server
/// certificate.
fn make(dir: &Path, tls_dir: &Path) -> Result<(), TlsError> {
    let staging = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(io(&staging))?;
    let made = generate()?;
    let written = [
        (CA_CERT, &made.ca_cert, 0o644),
        (CA_KEY, &made.ca_key, 0o600),
        (SERVER_CERT, &made.server_cert, 0o644),
        (SERVER_KEY, &made.server_key, 0o600),
    ]
    .into_iter()
    .try_for_each(|(name, text, mode)| write_new(&staging.join(name), text, mode));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    match std::fs::rename(&staging, tls_dir) {
        Ok(()) => {}
        // Another process made them meanwhile: theirs are the ones kept.
        Err(_) if tls_dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&staging);
            return Ok(());
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(io(tls_dir)(e));
        }
    }
    // The rename is durable only once the directory holding it is synced.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Writes a new file with `mode` from its creation (a key is never
/// readable by others, not even for a moment) and syncs it.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// Removes staging directories left by a process that died while making
/// certificates (they may hold a CA key): only those whose process is gone.
fn remove_abandoned(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(STAGING_PREFIX)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Replaces `path` with `text` in one step: a server (re)started meanwhile
/// reads the old file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<(), TlsError> {
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).expect("read")
    }

    #[test]
    fn made_once_private_and_kept() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let first = ensure(dir.path()).expect("ensure");
        let tls_dir = dir.path().join(TLS_DIR);
        assert_eq!(mode(&tls_dir), 0o700);
        assert_eq!(mode(&tls_dir.join(CA_KEY)), 0o600);
        assert_eq!(mode(&first.key()), 0o600);
        assert_eq!(first.ca(), tls_dir.join(CA_CERT));
        let files = [first.ca(), tls_dir.join(CA_KEY), first.cert(), first.key()];
        let before: Vec<_> = files.iter().map(|f| read(f)).collect();

        let again = ensure(dir.path()).expect("again");
        let after: Vec<_> = files.iter().map(|f| read(f)).collect();
        assert_eq!(before, after, "a second call keeps every certificate and key");
        assert_eq!(again.ca(), first.ca());

        let conf = std::fs::read_to_string(first.config()).expect("config");
        assert_eq!(first.config(), dir.path().join(TLS_CONFIG_FILE));
        assert!(conf.contains(&format!("include \"{CONFIG_FILE}\"")), "{conf}");
        assert!(
            conf.contains(&format!("cert_file: \"{}\"", first.cert().display())),
            "{conf}"
        );
        assert!(
            conf.contains(&format!("key_file: \"{}\"", first.key().display())),
            "{conf}"
        );
        assert!(first.cert().is_absolute());
        assert!(!conf.contains("allow_non_tls"), "every client must use TLS: {conf}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(STAGING_PREFIX) || n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // Rotating: a deleted directory is made anew, with another CA.
        std::fs::remove_dir_all(&tls_dir).expect("rm");
        let rotated = ensure(dir.path()).expect("rotate");
        assert_ne!(read(&rotated.ca()), before[0]);
    }

    #[test]
    fn an_exposed_key_or_a_missing_file_is_refused() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let tls = ensure(dir.path()).expect("ensure");
        for key in [dir.path().join(TLS_DIR).join(CA_KEY), tls.key()] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
            assert!(matches!(ensure(dir.path()), Err(TlsError::Exposed { .. })), "{key:?}");
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        ensure(dir.path()).expect("private again");
        // The CA's key may be taken off the host: it is not needed to run.
        std::fs::remove_file(dir.path().join(TLS_DIR).join(CA_KEY)).expect("rm");
        ensure(dir.path()).expect("without the CA's key");
        std::fs::remove_file(tls.cert()).expect("rm");
        let err = ensure(dir.path()).expect_err("incomplete");
        assert!(
            matches!(
                err,
                TlsError::Incomplete {
                    missing: SERVER_CERT,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!tls.cert().exists(), "not made again behind the CA's back");
    }

    #[test]
    fn an_abandoned_staging_directory_is_removed() {
        let dir = tempfile::TempDir::new().expect("tmp");
        // No process has this id (above the kernel's pid_max).
        let abandoned = dir.path().join(format!("{STAGING_PREFIX}4194305"));
        std::fs::create_dir(&abandoned).expect("mkdir");
        std::fs::write(abandoned.join(CA_KEY), "secret").expect("write");
        ensure(dir.path()).expect("ensure");
        assert!(!abandoned.exists());
    }

    #[test]
    fn the_server_certificate_verifies_against_the_ca_for_loopback() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let tls = ensure(dir.path()).expect("ensure");
        let ca = CertificateDer::from_pem_file(tls.ca()).expect("ca pem");
        let anchor = webpki::anchor_from_trusted_cert(&ca).expect("anchor");
        let server = CertificateDer::from_pem_file(tls.cert()).expect("server pem");
        let cert = webpki::EndEntityCert::try_from(&server).expect("server cert");
        let verify = |anchors: &[rustls_pki_types::TrustAnchor<'_>]| {
            cert.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                anchors,
                &[],
                UnixTime::now(),
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map(|_| ())
        };
        verify(std::slice::from_ref(&anchor)).expect("signed by the CA, valid now, for server auth");
        for name in SERVER_NAMES {
            let name = ServerName::try_from(name).expect("name");
            cert.verify_is_valid_for_subject_name(&name).expect("named");
        }
        let elsewhere = ServerName::try_from("10.0.0.1").expect("name");
        assert!(cert.verify_is_valid_for_subject_name(&elsewhere).is_err());

        // Another installation's CA does not vouch for it.
        let other_dir = tempfile::TempDir::new().expect("tmp");
        let other = CertificateDer::from_pem_file(ensure(other_dir.path()).expect("other").ca()).expect("pem");
        let other_anchor = webpki::anchor_from_trusted_cert(&other).expect("anchor");
        assert!(verify(std::slice::from_ref(&other_anchor)).is_err());
    }
}
