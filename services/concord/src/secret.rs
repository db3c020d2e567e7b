//! The HS256 secret of the bearer tokens and `concord token`.
//!
//! `CONCORD_JWT_SECRET` wins; otherwise `<data>/jwt-secret`, which
//! `concord up` creates once (random, owner-only) so that tokens printed by
//! one run stay valid after a restart.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use concord_core::auth::{self, Claims, SECRET_BYTES_MIN};
use concord_core::{CountryCode, Role};
use rand::RngCore;

pub const ENV: &str = "CONCORD_JWT_SECRET";
pub const FILE: &str = "jwt-secret";

pub fn path(data: &Path) -> PathBuf {
    data.join(FILE)
}

fn checked(bytes: Vec<u8>, from: &str) -> anyhow::Result<Vec<u8>> {
    if bytes.len() < SECRET_BYTES_MIN {
        bail!(
            "the JWT secret from {from} is {} bytes; at least {SECRET_BYTES_MIN} are needed",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// The secret: from the environment, else the data dir's file, created
/// when `create` and missing.
pub fn load(data: &Path, create: bool) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = std::env::var_os(ENV) {
        return checked(s.into_encoded_bytes(), ENV);
    }
    let file = path(data);
    match std::fs::read_to_string(&file) {
        Ok(s) => checked(s.trim().as_bytes().to_vec(), &file.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            let text = hex_encode(&raw);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)
                .with_context(|| format!("creating {}", file.display()))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            Ok(text.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no JWT secret: set {ENV}, or run `concord up --data {}` once to create {}",
            data.display(),
            file.display()
        ),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `90s`, `30m`, `12h`, `7d` (or bare seconds) → seconds.
pub fn parse_ttl(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 12h or 7d"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (use s, m, h or d)")),
    };
    if n <= 0 || n > 366 * 86_400 / mult {
        return Err(format!("{s:?} must be more than 0 and at most a year"));
    }
    Ok(n * mult)
}

/// A signed token for `sub`, valid `ttl_secs` from now.
pub fn token(secret: &[u8], role: Role, country: CountryCode, sub: &str, ttl_secs: i64) -> anyhow::Result<String> {
    if sub.is_empty() || sub.len() > 128 {
        bail!("--sub must be 1 to 128 bytes");
    }
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        role,
        country,
        exp: now + ttl_secs,
        iat: Some(now),
        nbf: None,
        iss: None,
        aud: None,
    };
    Ok(auth::sign(&claims, secret)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("12h"), Ok(43_200));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert_eq!(parse_ttl("60"), Ok(60));
        for bad in ["", "h", "0h", "-1h", "3w", "400d", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_file_is_created_once_and_kept_private() {
        let dir = tempfile::TempDir::new().expect("tmp");
        if std::env::var_os(ENV).is_some() {
            return; // the environment decides; nothing to test here
        }
        assert!(load(dir.path(), false).is_err(), "no file, no create");
        let first = load(dir.path(), true).expect("create");
        assert_eq!(first, load(dir.path(), false).expect("read"));
        let mode = std::fs::metadata(path(dir.path())).expect("meta").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        std::fs::write(path(dir.path()), "short").expect("write");
        assert!(load(dir.path(), false).is_err(), "a weak secret is refused");
    }
}
