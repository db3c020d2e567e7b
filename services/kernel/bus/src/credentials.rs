//! The NATS identities' keys on disk, the server configuration that names
//! them, and how a process connects as one.
//!
//! Each identity ([`Identity`]) is an nkey user: its seed (the secret) is
//! in `<dir>/identities/<name>.nk`, made once and readable by its owner
//! only; the server knows only public keys (`identities.conf`), so its
//! configuration holds no secret and the permissions file beside it
//! (`concord.conf`, from [`permissions::server_config`]) is the same on
//! every installation. Rotating an identity is deleting its seed file and
//! running [`ensure`] again (`docs/security.md`).
//!
//! Must not: print or log a seed (`Seed`'s `Debug` hides it), overwrite an
//! existing seed, or accept a seed file others can read.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::permissions::{self, CONFIG_FILE, IDENTITIES_FILE, Identity};
use concord_core::CountryCode;

/// The directory of the seeds, inside the NATS directory.
pub const SEEDS_DIR: &str = "identities";
/// The environment variable that may carry a seed instead of a file.
pub const SEED_ENV: &str = "CONCORD_NATS_SEED";

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{from}: not an nkey user seed (it starts with SU): {reason}")]
    BadSeed { from: String, reason: String },
    #[error(
        "{path} can be read by others (mode {mode:o}); a NATS seed is a password: `chmod 600 {path}`, \
         or delete it to make a new one (docs/security.md, rotating)"
    )]
    Exposed { path: String, mode: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CredentialsError + '_ {
    move |source| CredentialsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// An identity's nkey seed: the secret it signs the server's challenge
/// with. Never shown.
#[derive(Clone)]
pub struct Seed(String);

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(…)")
    }
}

impl Seed {
    /// A fresh user seed.
    pub fn generate() -> Result<Seed, CredentialsError> {
        nkeys::KeyPair::new_user()
            .seed()
            .map(Seed)
            .map_err(|e| CredentialsError::BadSeed {
                from: "a new key".into(),
                reason: e.to_string(),
            })
    }

    /// Reads a seed (`from` names where it came from, for the error).
    pub fn parse(text: &str, from: &str) -> Result<Seed, CredentialsError> {
        let text = text.trim();
        let bad = |reason: String| CredentialsError::BadSeed {
            from: from.to_owned(),
            reason,
        };
        if !text.starts_with("SU") {
            return Err(bad("not a user seed".into()));
        }
        nkeys::KeyPair::from_seed(text).map_err(|e| bad(e.to_string()))?;
        Ok(Seed(text.to_owned()))
    }

    /// Reads a seed file, refusing one that others can read.
    pub fn read_file(path: &Path) -> Result<Seed, CredentialsError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialsError::Exposed {
                path: path.display().to_string(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        Seed::parse(&text, &path.display().to_string())
    }

    /// The public key the server knows it by (`U…`).
    pub fn public_key(&self) -> String {
        // A `Seed` is only ever made from a seed that parsed.
        nkeys::KeyPair::from_seed(&self.0)
            .map(|k| k.public_key())
            .unwrap_or_default()
    }
}

/// How `identity` connects: its name, its own inbox prefix (replies to its
/// requests arrive there, and only it may subscribe there), with a seed its
/// key, and with `ca` (a PEM file of certificates, e.g. `tls::Tls::ca`)
/// TLS required and a server certificate issued by that CA only, not by
/// the system's CAs. Without a seed it connects anonymously, which a
/// server configured by [`ensure`] refuses; without `ca` it uses TLS only
/// when the URL (`tls://`) or the server asks for it, trusting the
/// system's CAs.
pub fn connect_options(identity: Identity, seed: Option<&Seed>, ca: Option<&Path>) -> async_nats::ConnectOptions {
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("concord-{identity}"))
        .custom_inbox_prefix(identity.inbox_prefix());
    if let Some(s) = seed {
        opts = opts.nkey(s.0.clone());
    }
    if let Some(ca) = ca {
        // Required, not merely taken when the server offers it: something
        // posing as the server without TLS would otherwise get the
        // connection, and could relay the real server's nonce for this
        // key to sign and then speak as this identity.
        opts = opts.require_tls(true).add_root_certificates(ca.to_owned());
    }
    opts
}

/// The servers of a NATS URL as Concord takes it (`NATS_URL`, `--nats`):
/// one URL, or a cluster's nodes separated by commas
/// (`nats://a:4222,nats://b:4222,nats://c:4222`), as NATS' own clients
/// read `NATS_URL`. async-nats reads a `&str` as one URL only (a list
/// fails as an invalid port), so pass this to `connect`.
pub fn server_urls(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The identities of one installation: their seeds, and the server
/// configuration that admits them.
#[derive(Debug, Clone)]
pub struct Identities {
    dir: PathBuf,
    seeds: HashMap<Identity, Seed>,
}

impl Identities {
    /// The nats-server configuration file to start the server with.
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Where `identity`'s seed is kept.
    pub fn seed_file(&self, identity: Identity) -> PathBuf {
        seed_file(&self.dir, identity)
    }

    /// The countries with a national site, in order.
    pub fn sites(&self) -> Vec<CountryCode> {
        let mut sites: Vec<CountryCode> = self
            .seeds
            .keys()
            .filter_map(|id| match id {
                Identity::Site(cc) => Some(*cc),
                _ => None,
            })
            .collect();
        sites.sort();
        sites
    }

    pub fn seed(&self, identity: Identity) -> Option<&Seed> {
        self.seeds.get(&identity)
    }

    /// How `identity` connects, without TLS (see [`connect_options`]).
    pub fn connect_options(&self, identity: Identity) -> async_nats::ConnectOptions {
        connect_options(identity, self.seed(identity), None)
    }
}

fn seed_file(dir: &Path, identity: Identity) -> PathBuf {
    dir.join(SEEDS_DIR).join(format!("{}.nk", identity.name()))
}

/// Makes, once, a seed for every identity that has none in `dir`
/// (`<dir>/identities/<name>.nk`, mode 0600, in a 0700 directory), and
/// writes the server configuration for them (`identities.conf` with the
/// public keys, `concord.conf` with the permissions): rewritten each time,
/// so a new release's permissions and a rotated key take effect. The
/// national sites are those whose seed is there ([`add_site`]).
pub fn ensure(dir: &Path) -> Result<Identities, CredentialsError> {
    let seeds_dir = dir.join(SEEDS_DIR);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&seeds_dir)
        .map_err(io(&seeds_dir))?;
    let sites = sites_in(dir)?;
    let mut seeds = HashMap::new();
    for identity in Identity::ALL {
        seeds.insert(identity, seed_made_once(&seed_file(dir, identity))?);
    }
    for &cc in &sites {
        let file = seed_file(dir, Identity::Site(cc));
        seeds.insert(Identity::Site(cc), Seed::read_file(&file)?);
    }
    let identities = Identities {
        dir: dir.to_owned(),
        seeds,
    };
    let keys = permissions::identities_config(
        |id| identities.seed(id).map(Seed::public_key).unwrap_or_default(),
        &sites,
    );
    write_atomically(&dir.join(IDENTITIES_FILE), &keys)?;
    write_atomically(&dir.join(CONFIG_FILE), &permissions::server_config(&sites))?;
    Ok(identities)
}

/// Gives `country` a national site: makes its identity's seed once and
/// rewrites the server configuration with its user ([`ensure`]). A
/// running nats-server takes it on a reload (`nats-server --signal
/// reload`) or its next start.
pub fn add_site(dir: &Path, country: CountryCode) -> Result<Identities, CredentialsError> {
    ensure(dir)?;
    seed_made_once(&seed_file(dir, Identity::Site(country)))?;
    ensure(dir)
}

/// The countries with a national site's seed in `dir`, in order.
fn sites_in(dir: &Path) -> Result<Vec<CountryCode>, CredentialsError> {
    let seeds_dir = dir.join(SEEDS_DIR);
    let mut sites = Vec::new();
    for entry in std::fs::read_dir(&seeds_dir).map_err(io(&seeds_dir))? {
        let entry = entry.map_err(io(&seeds_dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str().and_then(|n| n.strip_suffix(".nk")) else {
            continue;
        };
        if let Some(Identity::Site(cc)) = Identity::parse(name) {
            sites.push(cc);
        }
    }
    sites.sort();
    Ok(sites)
}

/// The seed in `file`, made (0600, fsynced) when there is none.
fn seed_made_once(file: &Path) -> Result<Seed, CredentialsError> {
    match Seed::read_file(file) {
        Ok(s) => Ok(s),
        Err(CredentialsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let seed = Seed::generate()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .map_err(io(file))?;
            f.write_all(seed.0.as_bytes()).map_err(io(file))?;
            f.sync_all().map_err(io(file))?;
            Ok(seed)
        }
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `text` in one step: a server (re)started meanwhile
/// reads the old file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<(), CredentialsError> {
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_made_once_private_and_named_in_the_config() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let first = ensure(dir.path()).expect("ensure");
        let again = ensure(dir.path()).expect("again");
        let keys = std::fs::read_to_string(dir.path().join(IDENTITIES_FILE)).expect("keys");
        for id in Identity::ALL {
            let (a, b) = (first.seed(id).expect("seed"), again.seed(id).expect("seed"));
            assert_eq!(a.public_key(), b.public_key(), "{id}: kept");
            assert!(keys.contains(&format!("{}: \"{}\"", id.nkey_variable(), a.public_key())));
            let mode = std::fs::metadata(first.seed_file(id))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{id}");
            assert!(!keys.contains(&a.0), "no seed in the server config");
        }
        let dir_mode = std::fs::metadata(dir.path().join(SEEDS_DIR))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(format!("{:?}", first.seed(Identity::Gateway)), "Some(Seed(…))");

        // Rotating: a deleted seed is made anew, the others stay.
        std::fs::remove_file(first.seed_file(Identity::Gateway)).expect("rm");
        let rotated = ensure(dir.path()).expect("rotate");
        let key = |i: &Identities, id| i.seed(id).map(Seed::public_key);
        assert_ne!(key(&rotated, Identity::Gateway), key(&first, Identity::Gateway));
        assert_eq!(key(&rotated, Identity::Operator), key(&first, Identity::Operator));

        // A seed others can read is refused, not used.
        let file = first.seed_file(Identity::Operator);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(ensure(dir.path()), Err(CredentialsError::Exposed { .. })));
    }

    #[test]
    fn a_national_site_is_added_once_and_kept_in_the_config() {
        let dir = tempfile::TempDir::new().expect("tmp");
        let de: CountryCode = "DE".parse().expect("DE");
        let first = ensure(dir.path()).expect("ensure");
        assert!(first.seed(Identity::Site(de)).is_none(), "no site until one is added");
        let added = add_site(dir.path(), de).expect("add");
        let key = added.seed(Identity::Site(de)).expect("seed").public_key();
        let again = ensure(dir.path()).expect("again");
        assert_eq!(again.seed(Identity::Site(de)).map(Seed::public_key), Some(key.clone()));
        let keys = std::fs::read_to_string(dir.path().join(IDENTITIES_FILE)).expect("keys");
        assert!(keys.contains(&format!("CONCORD_NKEY_SITE_DE: \"{key}\"")), "{keys}");
        let config = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).expect("config");
        assert!(config.contains("nkey: $CONCORD_NKEY_SITE_DE"), "{config}");
        assert!(config.contains("concord.feed.DE.read"));
    }

    #[test]
    fn a_cluster_url_is_a_list_of_servers() {
        assert_eq!(server_urls("nats://127.0.0.1:4222"), ["nats://127.0.0.1:4222"]);
        assert_eq!(
            server_urls("nats://a:4222, nats://b:4222,nats://c:4222,"),
            ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
        );
    }

    #[test]
    fn only_user_seeds_are_read() {
        assert!(Seed::parse("not a seed", "x").is_err());
        let account = nkeys::KeyPair::new_account().seed().expect("seed");
        assert!(Seed::parse(&account, "x").is_err());
        let user = Seed::generate().expect("seed");
        assert!(Seed::parse(&format!("{}\n", user.0), "x").is_ok());
    }
}
