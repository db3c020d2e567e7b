//! Auth claims and JWTs: who is calling, as the gateway and `concord
//! token` see it. Pure (the caller passes the clock and the keys), so it is
//! unit-tested without IO.
//!
//! Two kinds of keys: the demo's shared secret (HS256, signed by `concord
//! token`), and the public keys of an identity provider from a JWKS file
//! (EdDSA, ES256, RS256). The key decides the algorithm: a token is
//! verified only with a key whose one algorithm is the token's, so an RSA
//! public key can never be used as an HMAC secret, and `none` or any other
//! algorithm is refused before the signature is looked at.
//!
//! The registered claims are evaluated, not refused: `exp` (required) and
//! `nbf` with `Rules::skew_secs` of allowed clock skew, `iat` not in the
//! future, at most `Rules::lifetime_max_secs` from issue (or start) to
//! expiry, and `iss` / `aud` when the gateway is configured with them.
//! Claims this code does not know (an identity provider adds many) are
//! ignored.

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
pub const TOKEN_BYTES_MAX: usize = 8192;
/// Longest `sub` a token may name (the envelope schema's `actor.sub`).
pub const SUB_BYTES_MAX: usize = 128;
/// Clock skew allowed between the token's issuer and the gateway.
pub const SKEW_SECS: i64 = 60;
/// Longest a token may live, from `iat` (or `nbf`, or now) to `exp`.
/// Rationale: a stolen token of a police officer must not open the system
/// for days; identity providers issue tokens of minutes to hours.
pub const LIFETIME_MAX_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub country: CountryCode,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audiences>,
}

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audiences {
    One(String),
    Many(Vec<String>),
}

impl Audiences {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Audiences::One(a) => a == audience,
            Audiences::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

impl Claims {
    /// Claims of `sub` with no registered claim but `exp`.
    pub fn new(sub: impl Into<String>, role: Role, country: CountryCode, exp: i64) -> Claims {
        Claims {
            sub: sub.into(),
            role,
            country,
            exp,
            iat: None,
            nbf: None,
            iss: None,
            aud: None,
        }
    }

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
    #[error("token algorithm {0:?} is not accepted here")]
    Algorithm(String),
    #[error("no key of this gateway verifies {0}")]
    UnknownKey(String),
    #[error("token signature is wrong")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid before {0} (nbf)")]
    NotYetValid(i64),
    #[error("token was issued in the future (iat {0})")]
    IssuedInFuture(i64),
    #[error("token lives {lifetime} s, longer than the {max} s accepted")]
    TooLong { lifetime: i64, max: i64 },
    #[error("token issuer is not {0:?}")]
    WrongIssuer(String),
    #[error("token audience does not include {0:?}")]
    WrongAudience(String),
    #[error("secret is {0} bytes, at least {SECRET_BYTES_MIN} are needed")]
    WeakSecret(usize),
    #[error("JWKS: {0}")]
    Jwks(String),
}

/// The algorithms a public key may verify: each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EdDsa,
    Es256,
    Rs256,
}

impl KeyAlgorithm {
    fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EdDsa => "EdDSA",
            KeyAlgorithm::Es256 => "ES256",
            KeyAlgorithm::Rs256 => "RS256",
        }
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            KeyAlgorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            KeyAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            KeyAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// One public key of an identity provider.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: KeyAlgorithm,
    key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Reads a JWKS (RFC 7517 key set) of EdDSA (Ed25519), ES256 (P-256) and
/// RS256 keys. Each key's algorithm comes from its `alg`, or from its type
/// and curve when it has none; a key of another kind (a symmetric one
/// included) makes the whole set refused, so a misconfiguration is seen at
/// start, not at the first token.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<PublicKey>, AuthError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm as Ka};
    let set: JwkSet = crate::json::from_slice(bytes).map_err(|e| AuthError::Jwks(e.to_string()))?;
    if set.keys.is_empty() {
        return Err(AuthError::Jwks("the key set holds no key".into()));
    }
    let mut out = Vec::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let name = jwk.common.key_id.clone().unwrap_or_else(|| format!("key {i}"));
        let by_type = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => KeyAlgorithm::EdDsa,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => KeyAlgorithm::Es256,
            AlgorithmParameters::RSA(_) => KeyAlgorithm::Rs256,
            _ => {
                return Err(AuthError::Jwks(format!(
                    "{name}: only Ed25519 (EdDSA), P-256 (ES256) and RSA (RS256) public keys are accepted"
                )));
            }
        };
        match jwk.common.key_algorithm {
            None => {}
            Some(Ka::EdDSA) if by_type == KeyAlgorithm::EdDsa => {}
            Some(Ka::ES256) if by_type == KeyAlgorithm::Es256 => {}
            Some(Ka::RS256) if by_type == KeyAlgorithm::Rs256 => {}
            Some(other) => {
                return Err(AuthError::Jwks(format!(
                    "{name}: alg {other:?} does not fit a {} key",
                    by_type.name()
                )));
            }
        }
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Jwks(format!("{name}: {e}")))?;
        out.push(PublicKey {
            kid: jwk.common.key_id.clone(),
            alg: by_type,
            key,
        });
    }
    Ok(out)
}

/// The keys tokens are verified with.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// The demo's shared secret (HS256); `None` where an identity provider
    /// signs the tokens.
    pub secret: Option<Vec<u8>>,
    pub public: Vec<PublicKey>,
}

impl Keys {
    /// The demo's shared secret alone.
    pub fn secret(secret: Vec<u8>) -> Keys {
        Keys {
            secret: Some(secret),
            public: Vec::new(),
        }
    }
}

/// How the registered claims are judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub skew_secs: i64,
    pub lifetime_max_secs: i64,
    /// `iss` must be this, when set.
    pub issuer: Option<String>,
    /// `aud` must include this, when set.
    pub audience: Option<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            skew_secs: SKEW_SECS,
            lifetime_max_secs: LIFETIME_MAX_SECS,
            issuer: None,
            audience: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn mac(secret: &[u8]) -> Result<Hmac<Sha256>, AuthError> {
    if secret.len() < SECRET_BYTES_MIN {
        return Err(AuthError::WeakSecret(secret.len()));
    }
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).map_err(|_| AuthError::WeakSecret(secret.len()))
}

/// Signs `claims` as an HS256 JWT (the demo's tokens).
pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String, AuthError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|e| AuthError::Malformed(e.to_string()))?);
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret)?;
    m.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

/// Verifies a JWT with `keys` and judges its claims by `rules` at time
/// `now` (seconds since the epoch).
pub fn verify(token: &str, keys: &Keys, rules: &Rules, now: i64) -> Result<Claims, AuthError> {
    let claims = signed_claims(token, keys)?;
    judge(&claims, rules, now)?;
    Ok(claims)
}

/// The claims of a token whose signature `keys` verify, not judged (it
/// may have expired): who a refused request came from, for the access
/// log. Never grants anything.
pub fn signed_claims(token: &str, keys: &Keys) -> Result<Claims, AuthError> {
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
    let signing_input = format!("{h}.{p}");
    let signature = decode(s, "signature")?;
    if header.alg == "HS256" {
        let Some(secret) = &keys.secret else {
            return Err(AuthError::Algorithm(header.alg));
        };
        let mut m = mac(secret)?;
        m.update(signing_input.as_bytes());
        m.verify_slice(&signature).map_err(|_| AuthError::Signature)?;
    } else {
        let Some(alg) = [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256, KeyAlgorithm::Rs256]
            .into_iter()
            .find(|a| a.name() == header.alg)
        else {
            return Err(AuthError::Algorithm(header.alg));
        };
        // Only keys made for the token's algorithm (and its kid, if it
        // names one) are tried: the key decides the algorithm.
        let candidates: Vec<&PublicKey> = keys
            .public
            .iter()
            .filter(|k| k.alg == alg && (header.kid.is_none() || k.kid == header.kid))
            .collect();
        if candidates.is_empty() {
            let which = header
                .kid
                .as_deref()
                .map_or_else(|| alg.name().to_owned(), |k| format!("{} key {k:?}", alg.name()));
            return Err(AuthError::UnknownKey(which));
        }
        let verified = candidates
            .iter()
            .any(|k| jsonwebtoken::crypto::verify(s, signing_input.as_bytes(), &k.key, alg.jwt()).unwrap_or(false));
        if !verified {
            return Err(AuthError::Signature);
        }
    }
    crate::json::from_slice(&decode(p, "payload")?).map_err(|e| AuthError::Malformed(format!("claims: {e}")))
}

/// The registered claims' verdict (see the module doc).
fn judge(claims: &Claims, rules: &Rules, now: i64) -> Result<(), AuthError> {
    if claims.sub.is_empty() || claims.sub.len() > SUB_BYTES_MAX {
        return Err(AuthError::Malformed(format!("sub must be 1 to {SUB_BYTES_MAX} bytes")));
    }
    let skew = rules.skew_secs;
    if claims.exp.saturating_add(skew) <= now {
        return Err(AuthError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(skew)
    {
        return Err(AuthError::NotYetValid(nbf));
    }
    if let Some(iat) = claims.iat
        && iat > now.saturating_add(skew)
    {
        return Err(AuthError::IssuedInFuture(iat));
    }
    let start = claims.iat.or(claims.nbf).unwrap_or(now);
    let lifetime = claims.exp.saturating_sub(start);
    if lifetime > rules.lifetime_max_secs {
        return Err(AuthError::TooLong {
            lifetime,
            max: rules.lifetime_max_secs,
        });
    }
    if let Some(issuer) = &rules.issuer
        && claims.iss.as_ref() != Some(issuer)
    {
        return Err(AuthError::WrongIssuer(issuer.clone()));
    }
    if let Some(audience) = &rules.audience
        && !claims.aud.as_ref().is_some_and(|a| a.contains(audience))
    {
        return Err(AuthError::WrongAudience(audience.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(exp: i64) -> Claims {
        Claims {
            iat: Some(1000),
            ..Claims::new("anna", Role::Liaison, CountryCode::parse("DE").expect("DE"), exp)
        }
    }

    fn demo() -> Keys {
        Keys::secret(SECRET.to_vec())
    }

    fn check(token: &str, now: i64) -> Result<Claims, AuthError> {
        verify(token, &demo(), &Rules::default(), now)
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires_with_the_skew() {
        let t = sign(&claims(2000), SECRET).expect("sign");
        assert_eq!(check(&t, 1999), Ok(claims(2000)));
        assert_eq!(check(&t, 2000 + SKEW_SECS - 1), Ok(claims(2000)));
        assert_eq!(check(&t, 2000 + SKEW_SECS), Err(AuthError::Expired));
    }

    #[test]
    fn an_expired_token_still_names_who_signed_it_for_the_access_log_only() {
        let t = sign(&claims(2000), SECRET).expect("sign");
        assert_eq!(check(&t, 9000), Err(AuthError::Expired));
        assert_eq!(signed_claims(&t, &demo()), Ok(claims(2000)));
        let other = Keys::secret(b"another-secret-another-secret-xx".to_vec());
        assert_eq!(signed_claims(&t, &other), Err(AuthError::Signature));
    }

    #[test]
    fn registered_claims_are_judged() {
        let at = |c: &Claims, now: i64, rules: &Rules| verify(&sign(c, SECRET).expect("sign"), &demo(), rules, now);
        let rules = Rules::default();
        let nbf = Claims {
            nbf: Some(5000),
            ..claims(6000)
        };
        assert_eq!(
            at(&nbf, 5000 - SKEW_SECS - 1, &rules),
            Err(AuthError::NotYetValid(5000))
        );
        assert!(at(&nbf, 5000 - SKEW_SECS, &rules).is_ok());
        let future = Claims {
            iat: Some(9000),
            ..claims(9500)
        };
        assert_eq!(at(&future, 8000, &rules), Err(AuthError::IssuedInFuture(9000)));
        let long = claims(1000 + LIFETIME_MAX_SECS + 1);
        assert_eq!(
            at(&long, 1500, &rules),
            Err(AuthError::TooLong {
                lifetime: LIFETIME_MAX_SECS + 1,
                max: LIFETIME_MAX_SECS
            })
        );
        assert!(at(&claims(1000 + LIFETIME_MAX_SECS), 1500, &rules).is_ok());
        // No iat: the lifetime counts from now.
        let no_iat = Claims::new(
            "anna",
            Role::Liaison,
            CountryCode::parse("DE").expect("DE"),
            10 * LIFETIME_MAX_SECS,
        );
        assert!(matches!(at(&no_iat, 0, &rules), Err(AuthError::TooLong { .. })));

        let strict = Rules {
            issuer: Some("https://idp.example".into()),
            audience: Some("concord".into()),
            ..Rules::default()
        };
        let mut c = claims(2000);
        assert_eq!(
            at(&c, 1500, &strict),
            Err(AuthError::WrongIssuer("https://idp.example".into()))
        );
        c.iss = Some("https://idp.example".into());
        assert_eq!(at(&c, 1500, &strict), Err(AuthError::WrongAudience("concord".into())));
        c.aud = Some(Audiences::Many(vec!["other".into(), "concord".into()]));
        assert!(at(&c, 1500, &strict).is_ok());
        c.aud = Some(Audiences::One("other".into()));
        assert_eq!(at(&c, 1500, &strict), Err(AuthError::WrongAudience("concord".into())));
    }

    #[test]
    fn claims_an_identity_provider_adds_are_ignored() {
        let mut m = mac(SECRET).expect("mac");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"x","role":"liaison","country":"DE","exp":2000,"iat":1000,"jti":"j","email":"x@de"}"#);
        m.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert!(check(&format!("{h}.{p}.{s}"), 1500).is_ok());
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let t = sign(&claims(2000), SECRET).expect("sign");
        let other_key = Keys::secret(b"another-secret-another-secret-xx".to_vec());
        assert_eq!(
            verify(&t, &other_key, &Rules::default(), 1500),
            Err(AuthError::Signature)
        );
        // Payload swapped for one claiming another country.
        let mut forged = claims(2000);
        forged.country = CountryCode::parse("FR").expect("FR");
        let other = sign(&forged, SECRET).expect("sign");
        let parts: Vec<&str> = t.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        assert_eq!(check(&spliced, 1500), Err(AuthError::Signature));
        // alg none, unsigned.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(2000)).expect("json"))
        );
        assert_eq!(check(&none, 1500), Err(AuthError::Algorithm("none".into())));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(matches!(check(bad, 0), Err(AuthError::Malformed(_))), "{bad}");
        }
        assert_eq!(sign(&claims(1), b"short"), Err(AuthError::WeakSecret(5)));
        // Without the demo secret, HS256 is not accepted at all.
        assert_eq!(
            verify(&t, &Keys::default(), &Rules::default(), 1500),
            Err(AuthError::Algorithm("HS256".into()))
        );
    }

    #[test]
    fn claims_with_unknown_roles_or_countries_are_refused() {
        let mut m = mac(SECRET).expect("mac");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","role":"admin","country":"DE","exp":2000}"#);
        m.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert!(matches!(
            check(&format!("{h}.{p}.{s}"), 1500),
            Err(AuthError::Malformed(_))
        ));
    }

    /// The identity provider of the tests: a JWKS and the private keys
    /// behind it (made with openssl for these tests only).
    struct Idp {
        keys: Keys,
        private: serde_json::Value,
        rsa_public_pem: String,
    }

    fn idp() -> Idp {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../testkit/fixtures/idp-keys.json")).expect("fixture");
        let jwks = serde_json::to_vec(&fixture["jwks"]).expect("jwks");
        Idp {
            keys: Keys {
                secret: None,
                public: parse_jwks(&jwks).expect("the fixture's JWKS reads"),
            },
            private: fixture["private_der"].clone(),
            rsa_public_pem: fixture["rsa_public_pem"].as_str().expect("pem").to_owned(),
        }
    }

    fn signed_by(idp: &Idp, kid: &str, alg: jsonwebtoken::Algorithm, claims: &Claims) -> String {
        use base64::engine::general_purpose::STANDARD;
        let der = STANDARD
            .decode(idp.private[kid].as_str().expect("der"))
            .expect("base64");
        let key = match alg {
            jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_der(&der),
            jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_der(&der),
            _ => jsonwebtoken::EncodingKey::from_rsa_der(&der),
        };
        let mut header = jsonwebtoken::Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    #[test]
    fn tokens_of_an_identity_provider_verify_with_its_jwks() {
        let idp = idp();
        let rules = Rules::default();
        for (kid, alg) in [
            ("ed-1", jsonwebtoken::Algorithm::EdDSA),
            ("ec-1", jsonwebtoken::Algorithm::ES256),
            ("rsa-1", jsonwebtoken::Algorithm::RS256),
        ] {
            let t = signed_by(&idp, kid, alg, &claims(2000));
            assert_eq!(verify(&t, &idp.keys, &rules, 1500), Ok(claims(2000)), "{kid}");
            // Any change to the payload breaks the signature.
            let mut forged = claims(2000);
            forged.role = Role::Coordinator;
            let other = signed_by(&idp, kid, alg, &forged);
            let (a, b): (Vec<&str>, Vec<&str>) = (t.split('.').collect(), other.split('.').collect());
            let spliced = format!("{}.{}.{}", a[0], b[1], a[2]);
            assert_eq!(
                verify(&spliced, &idp.keys, &rules, 1500),
                Err(AuthError::Signature),
                "{kid}"
            );
            // Expiry still counts.
            assert_eq!(verify(&t, &idp.keys, &rules, 2000 + SKEW_SECS), Err(AuthError::Expired));
        }
    }

    #[test]
    fn the_key_decides_the_algorithm() {
        let idp = idp();
        let rules = Rules::default();
        // The classic confusion: HS256 "signed" with the RSA public key as
        // the secret. No demo secret here, so HS256 is refused outright.
        let pem = idp.rsa_public_pem.as_bytes();
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(pem).expect("mac");
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"rsa-1"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(2000)).expect("json"));
        m.update(format!("{h}.{p}").as_bytes());
        let s = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        assert_eq!(
            verify(&format!("{h}.{p}.{s}"), &idp.keys, &rules, 1500),
            Err(AuthError::Algorithm("HS256".into()))
        );
        // A token naming the RSA key but claiming ES256: that key verifies
        // RS256 only.
        let t = signed_by(&idp, "ec-1", jsonwebtoken::Algorithm::ES256, &claims(2000));
        let parts: Vec<&str> = t.split('.').collect();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","kid":"rsa-1"}"#);
        assert_eq!(
            verify(&format!("{h}.{}.{}", parts[1], parts[2]), &idp.keys, &rules, 1500),
            Err(AuthError::UnknownKey("ES256 key \"rsa-1\"".into()))
        );
        for alg in ["none", "HS512", "PS256", "ES384"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(
                verify(&format!("{h}.{}.{}", parts[1], parts[2]), &idp.keys, &rules, 1500),
                Err(AuthError::Algorithm(alg.into()))
            );
        }
    }

    #[test]
    fn a_jwks_with_a_key_of_another_kind_is_refused() {
        let symmetric = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#;
        assert!(matches!(parse_jwks(symmetric), Err(AuthError::Jwks(_))));
        let lying = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"qB-byuIuNXFK3_VXfDwYgTx2oXUOh8Pm7J595WXAuj8","alg":"RS256","kid":"e"}]}"#;
        assert!(matches!(parse_jwks(lying), Err(AuthError::Jwks(_))));
        assert!(matches!(parse_jwks(br#"{"keys":[]}"#), Err(AuthError::Jwks(_))));
    }
}
