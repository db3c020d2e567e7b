//! An identity provider for tests: a JWKS of one Ed25519, one P-256 and
//! one RSA key (made with openssl for the tests only; `fixtures/`), and
//! tokens signed with them as a real provider would sign them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

const FIXTURE: &str = include_str!("../fixtures/idp-keys.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("the identity provider fixture is JSON")
}

/// The provider's public keys, as the JWKS file a gateway is given.
pub fn jwks() -> Vec<u8> {
    serde_json::to_vec(&fixture()["jwks"]).expect("jwks")
}

/// A token with `claims`, signed by key `kid` (`ed-1` EdDSA, `ec-1`
/// ES256, `rsa-1` RS256) and naming it in its header.
pub fn token(kid: &str, claims: &Value) -> String {
    let der = STANDARD
        .decode(fixture()["private_der"][kid].as_str().expect("a key of the fixture"))
        .expect("base64");
    let (alg, key) = match kid {
        "ed-1" => (
            jsonwebtoken::Algorithm::EdDSA,
            jsonwebtoken::EncodingKey::from_ed_der(&der),
        ),
        "ec-1" => (
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_der(&der),
        ),
        _ => (
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_der(&der),
        ),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}
