//! Signed checkpoints of the logs, in the C2SP `tlog-checkpoint` format
//! (https://c2sp.org/tlog-checkpoint) as a C2SP signed note
//! (https://c2sp.org/signed-note): the body is
//!
//! ```text
//! concord/<service>/<log identity>
//! <size: the log's head seq>
//! <base64 of the head event's hash (32 bytes)>
//! ```
//!
//! followed by an empty line and one signature line `— <key name>
//! <base64(key id ‖ Ed25519 signature of the body)>`, the key id being the
//! first 4 bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key). The
//! verifier key is written `<name>+<key id hex>+<base64(0x01 ‖ public
//! key)>`. Whoever saved a checkpoint can later prove the log still
//! extends it: the event at seq `size` still has that hash, which the hash
//! chain ties to every event before it.
//!
//! Pure (no IO): the key's bytes come from the caller.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in signed notes.
const ED25519_TYPE: u8 = 0x01;
/// The em dash that starts a signature line.
const DASH: &str = "\u{2014}";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    #[error("no signature by key {0}")]
    Unsigned(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("the key: {0}")]
    Key(String),
}

/// One checkpoint: which log, how long, its head's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub hash: [u8; 32],
}

impl Checkpoint {
    /// The origin of `service`'s log with `identity`.
    pub fn origin_of(service: &str, identity: &str) -> String {
        format!("concord/{service}/{identity}")
    }

    /// The note's body (what is signed).
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.hash))
    }

    /// `(service, identity)` of a `concord/<service>/<identity>` origin.
    pub fn log(&self) -> Option<(&str, &str)> {
        let rest = self.origin.strip_prefix("concord/")?;
        rest.split_once('/')
    }

    /// The checkpoint a note states, its signatures not checked: for notes
    /// this audit signed itself and kept (anyone else's goes through
    /// [`verify`]).
    pub fn stated_by(note: &str) -> Result<Checkpoint, NoteError> {
        let (body, _) = note
            .split_once("\n\n")
            .ok_or_else(|| NoteError::Malformed("no empty line before the signatures".into()))?;
        Checkpoint::parse_body(&format!("{body}\n"))
    }

    fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let bad = |why: &str| NoteError::Malformed(why.to_owned());
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| {
                s.parse::<u64>()
                    .ok()
                    .filter(|_| !s.starts_with('+') && (s == "0" || !s.starts_with('0')))
            })
            .ok_or_else(|| bad("the second line is not a size"))?;
        let hash = lines
            .next()
            .and_then(|h| B64.decode(h).ok())
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .ok_or_else(|| bad("the third line is not a base64 SHA-256 hash"))?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            hash,
        })
    }
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// The audit's signing key.
pub struct Signer {
    name: String,
    pair: Ed25519KeyPair,
}

impl Signer {
    /// A new key, as PKCS#8 bytes to keep.
    pub fn generate() -> Result<Vec<u8>, NoteError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|e| NoteError::Key(e.to_string()))
    }

    pub fn from_pkcs8(name: &str, pkcs8: &[u8]) -> Result<Signer, NoteError> {
        if name.is_empty() || name.contains(['+', ' ', '\n']) {
            return Err(NoteError::Key(format!("{name:?} is not a key name")));
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| NoteError::Key(e.to_string()))?;
        Ok(Signer {
            name: name.to_owned(),
            pair,
        })
    }

    /// The verifier key: `<name>+<key id hex>+<base64(0x01 ‖ public key)>`.
    pub fn verifier_key(&self) -> String {
        let public = self.pair.public_key().as_ref();
        let mut typed = vec![ED25519_TYPE];
        typed.extend_from_slice(public);
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(key_id(&self.name, public)),
            B64.encode(typed)
        )
    }

    /// `checkpoint` as a signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let public = self.pair.public_key().as_ref();
        let mut sig = key_id(&self.name, public).to_vec();
        sig.extend_from_slice(self.pair.sign(body.as_bytes()).as_ref());
        format!("{body}\n{DASH} {} {}\n", self.name, B64.encode(sig))
    }
}

/// The checkpoint of `note` if `verifier_key` signed it.
pub fn verify(note: &str, verifier_key: &str) -> Result<Checkpoint, NoteError> {
    let key_bad = |why: &str| NoteError::Key(format!("{verifier_key:?}: {why}"));
    // The key's base64 may hold '+' too: the name and the id cannot.
    let mut parts = verifier_key.trim().splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(key_bad("not <name>+<id>+<key>"));
    };
    let typed = B64.decode(key_b64).map_err(|_| key_bad("the key is not base64"))?;
    let (Some(&ED25519_TYPE), Some(public)) = (typed.first(), typed.get(1..)) else {
        return Err(key_bad("not an Ed25519 key"));
    };
    if public.len() != 32 || hex::encode(key_id(name, public)) != id_hex {
        return Err(key_bad("its id does not match it"));
    }
    let Some((body, signatures)) = note.split_once("\n\n") else {
        return Err(NoteError::Malformed("no empty line before the signatures".into()));
    };
    let body = format!("{body}\n");
    let checkpoint = Checkpoint::parse_body(&body)?;
    let wanted_id = key_id(name, public);
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix(&format!("{DASH} ")) else {
            continue;
        };
        let Some((signer, sig_b64)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(sig) = B64.decode(sig_b64) else { continue };
        if signer != name || sig.len() != 68 || sig[..4] != wanted_id {
            continue;
        }
        return UnparsedPublicKey::new(&ED25519, public)
            .verify(body.as_bytes(), &sig[4..])
            .map(|()| checkpoint)
            .map_err(|_| NoteError::BadSignature(name.to_owned()));
    }
    Err(NoteError::Unsigned(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::from_pkcs8("concord-audit", &Signer::generate().expect("key")).expect("signer")
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_only() {
        let s = signer();
        let cp = Checkpoint {
            origin: Checkpoint::origin_of("intel", "0190d2a4-0000-7000-8000-000000000000"),
            size: 42,
            hash: [7; 32],
        };
        let note = s.sign(&cp);
        assert!(note.starts_with("concord/intel/0190d2a4-0000-7000-8000-000000000000\n42\n"));
        assert!(note.contains("\n\n\u{2014} concord-audit "));
        assert_eq!(verify(&note, &s.verifier_key()).expect("verifies"), cp);
        assert_eq!(cp.log(), Some(("intel", "0190d2a4-0000-7000-8000-000000000000")));

        // Another key, a changed size, a changed signature: refused.
        assert!(matches!(
            verify(&note, &signer().verifier_key()),
            Err(NoteError::Unsigned(_))
        ));
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert!(matches!(
            verify(&forged, &s.verifier_key()),
            Err(NoteError::BadSignature(_))
        ));
        assert!(verify("concord/x\n1\n", &s.verifier_key()).is_err());
        assert!(verify(&note, "concord-audit+00000000+AQ==").is_err());
    }
}
