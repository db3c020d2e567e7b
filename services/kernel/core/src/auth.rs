//! Auth claims and HS256 JWTs: who is calling, as the gateway and
//! `concord token` see it. Pure (the caller passes the clock and the
//! secret), so it is unit-tested without IO.
//!
//! Only HS256 is accepted: a token whose header says anything else, `none`
//! included, is refused before its signature is even looked at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::country::CountryCode;
use crate::envelope::{Actor, Role};

/// Shortest secret accepted: 256 bits, as RFC 7518 asks for HS256.
pub const SECRET_BYTES_MIN: usize = 32;
/// Longest token read; anything longer is refused unparsed.
pub const TOKEN_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub country: CountryCode,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

impl Claims {
    pub fn actor(&self) -> Actor {
        Actor {
            sub: self.sub.clone(),
            role: self.role,
            country: self.country,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not accepted (HS256 only)")]
    Algorithm(String),
    #[error("token signature is wrong")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("secret is {0} bytes, at least {SECRET_BYTES_MIN} are needed")]
    WeakSecret(usize),
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

fn mac(secret: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
    if secret.len() < SECRET_BYTES_MIN {
        return Err(AuthError::WeakSecret(secret.len()));
    }
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| AuthError::WeakSecret(secret.len()))
}

/// Signs `claims` as an HS256 JWT.
pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String, AuthError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|e| AuthError::Malformed(e.to_string()))?);
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret)?;
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Verifies an HS256 JWT at time `now` (seconds since the epoch).
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<Claims, AuthError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(AuthError::Malformed("too long".into()));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed("a JWT has three dot-separated parts".into()));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AuthError::Malformed(format!("{what} is not base64url")))
    };
    let header: Header =
        crate::json::from_slice(&decode(h, "header")?).map_err(|e| AuthError::Malformed(format!("header: {e}")))?;
    if header.alg != "HS256" {
        return Err(AuthError::Algorithm(header.alg));
    }
    let mut m = mac(secret)?;
    m.update(format!("{h}.{p}").as_bytes());
    m.verify_slice(&decode(s, "signature")?)
        .map_err(|_| AuthError::Signature)?;
    let claims: Claims =
        crate::json::from_slice(&decode(p, "payload")?).map_err(|e| AuthError::Malformed(format!("claims: {e}")))?;
    if claims.sub.is_empty() || claims.sub.len() > 128 {
        return Err(AuthError::Malformed("sub must be 1 to 128 bytes".into()));
    }
    if claims.exp <= now {
        return Err(AuthError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "anna".into(),
            role: Role::Liaison,
            country: CountryCode::parse("DE").expect("DE"),
            exp,
            iat: Some(1000),
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = sign(&claims(2000), SECRET).expect("sign");
        assert_eq!(verify(&t, SECRET, 1999), Ok(claims(2000)));
        assert_eq!(verify(&t, SECRET, 2000), Err(AuthError::Expired));
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let t = sign(&claims(2000), SECRET).expect("sign");
        assert_eq!(
            verify(&t, b"another-secret-another-secret-xx", 0),
            Err(AuthError::Signature)
        );
        // Payload swapped for one claiming another country.
        let mut forged = claims(2000);
        forged.country = CountryCode::parse("FR").expect("FR");
        let other = sign(&forged, SECRET).expect("sign");
        let parts: Vec<&str> = t.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert_eq!(verify(&spliced, SECRET, 0), Err(AuthError::Signature));
        // alg none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(2000)).expect("json"))
        );
        assert_eq!(verify(&none, SECRET, 0), Err(AuthError::Algorithm("none".into())));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(matches!(verify(bad, SECRET, 0), Err(AuthError::Malformed(_))), "{bad}");
        }
        assert_eq!(sign(&claims(1), b"short"), Err(AuthError::WeakSecret(5)));
    }

    #[test]
    fn claims_with_unknown_roles_or_countries_are_refused() {
        let mut m = mac(SECRET).expect("mac");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","role":"admin","country":"DE","exp":9999999999}"#);
        m.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert!(matches!(
            verify(&format!("{h}.{p}.{s}"), SECRET, 0),
            Err(AuthError::Malformed(_))
        ));
    }
}
