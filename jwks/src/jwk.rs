//! JWK and JWKS types (RFC 7517) for RSA, EC P-256 and OKP Ed25519 public keys.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Algorithm, Error, Result};

/// One public JSON Web Key.
///
/// Members this crate understands are typed; any other member is kept in [`Jwk::other`], so a
/// JWK read and written again keeps every member and value. Private members (`d`, `p`...) are
/// never produced by this crate and are refused by [`Jwk::public_key`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP` (others parse but can't be used).
    pub kty: String,
    /// Key id; svctoken always sets the RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Public key use; svctoken sets `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The algorithm this key is pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Curve, for EC (`P-256`) and OKP (`Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// EC x coordinate, or the OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Every other member, kept as read.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// A JSON Web Key Set: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, in publication order.
    pub keys: Vec<Jwk>,
}

/// A parsed, validated public key, ready for ring.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed SEC1 point `04||x||y`.
    P256(Vec<u8>),
    /// The 32-byte Ed25519 public key.
    Ed25519(Vec<u8>),
}

impl Jwk {
    /// The value of a string member by name (typed members and [`Jwk::other`] alike).
    pub fn member(&self, name: &str) -> Option<&str> {
        let typed = match name {
            "kty" => Some(&self.kty),
            "kid" => self.kid.as_ref(),
            "use" => self.use_.as_ref(),
            "alg" => self.alg.as_ref(),
            "crv" => self.crv.as_ref(),
            "n" => self.n.as_ref(),
            "e" => self.e.as_ref(),
            "x" => self.x.as_ref(),
            "y" => self.y.as_ref(),
            _ => return self.other.get(name).and_then(Value::as_str),
        };
        typed.map(String::as_str)
    }

    /// The one algorithm this key can verify, from its key type and curve.
    ///
    /// Each supported key type has exactly one algorithm (RSA: RS256, EC P-256: ES256, OKP
    /// Ed25519: EdDSA), so the algorithm is always derived from the key, never from a token. A
    /// JWK whose `alg` disagrees with its key type is an error.
    pub fn algorithm(&self) -> Result<Algorithm> {
        let derived = match (self.kty.as_str(), self.crv.as_deref()) {
            ("RSA", _) => Algorithm::RS256,
            ("EC", Some("P-256")) => Algorithm::ES256,
            ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
            (kty, crv) => {
                return Err(Error::InvalidJwk(format!(
                    "unsupported key type {kty:?} (curve {crv:?})"
                )));
            }
        };
        match self.alg.as_deref() {
            Some(alg) if alg != derived.as_str() => Err(Error::InvalidJwk(format!(
                "alg {alg:?} does not fit a {} key",
                self.kty
            ))),
            _ => Ok(derived),
        }
    }

    /// Checks that this is a usable public key (known type and curve, members of the right
    /// sizes, no private members) and returns the algorithm it is pinned to.
    pub fn validate(&self) -> Result<Algorithm> {
        self.public_key()?;
        self.algorithm()
    }

    /// Decodes and size-checks the key material.
    pub(crate) fn public_key(&self) -> Result<PublicKey> {
        if self.other.contains_key("d") {
            return Err(Error::InvalidJwk(
                "a private JWK where a public one belongs".into(),
            ));
        }
        let field = |name: &'static str| -> Result<Vec<u8>> {
            let text = self
                .member(name)
                .ok_or_else(|| Error::InvalidJwk(format!("{} key without {name:?}", self.kty)))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| Error::InvalidJwk(format!("{name:?} is not base64url")))
        };
        match self.algorithm()? {
            Algorithm::RS256 => {
                let n = field("n")?;
                let e = field("e")?;
                let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err(Error::InvalidJwk(format!(
                        "RSA modulus of about {bits} bits; 2048 to 8192 allowed"
                    )));
                }
                Ok(PublicKey::Rsa { n, e })
            }
            Algorithm::ES256 => {
                let (x, y) = (field("x")?, field("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(Error::InvalidJwk(
                        "P-256 coordinates must be 32 bytes".into(),
                    ));
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Ok(PublicKey::P256(point))
            }
            Algorithm::EdDSA => {
                let x = field("x")?;
                if x.len() != 32 {
                    return Err(Error::InvalidJwk("Ed25519 keys are 32 bytes".into()));
                }
                Ok(PublicKey::Ed25519(x))
            }
        }
    }
}

impl PublicKey {
    /// Verifies a raw JWS signature over `message` with `alg`'s ring primitive.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<()> {
        let outcome = match self {
            PublicKey::Rsa { n, e } => ring::signature::RsaPublicKeyComponents { n, e }.verify(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            ),
            PublicKey::P256(bytes) | PublicKey::Ed25519(bytes) => {
                ring::signature::UnparsedPublicKey::new(alg.verification(), bytes)
                    .verify(message, signature)
            }
        };
        outcome.map_err(|_| Error::BadSignature)
    }
}

impl Jwks {
    /// Serialises the set as compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and maps of JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"keys\":[]}"))
    }

    /// The keys whose algorithm is one of `algorithms` (for consumers that reject a whole set
    /// holding a key type they don't know, such as Convex's customJwt).
    pub fn only(&self, algorithms: &[Algorithm]) -> Jwks {
        let keys = self
            .keys
            .iter()
            .filter(|k| k.algorithm().is_ok_and(|alg| algorithms.contains(&alg)))
            .cloned()
            .collect();
        Jwks { keys }
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_member() {
        let text = r#"{"keys":[{"kty":"EC","kid":"k1","use":"sig","alg":"ES256","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","x5t":"abc","ext":true}]}"#;
        let jwks: Jwks = serde_json::from_str(text).expect("valid JWKS");
        let again: Jwks = serde_json::from_str(&jwks.to_json()).expect("re-parses");
        assert_eq!(jwks, again);
        let original: Value = serde_json::from_str(text).expect("json");
        let written: Value = serde_json::from_str(&jwks.to_json()).expect("json");
        assert_eq!(original, written);
        assert_eq!(jwks.keys[0].algorithm().expect("P-256"), Algorithm::ES256);
    }

    #[test]
    fn rejects_inconsistent_keys() {
        for (text, why) in [
            (r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#, "P-384"),
            (
                r#"{"kty":"EC","crv":"P-256","alg":"RS256","x":"AA","y":"AA"}"#,
                "alg vs kty",
            ),
            (r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#, "short key"),
            (r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#, "tiny modulus"),
            (r#"{"kty":"OKP","crv":"Ed25519","x":"!!"}"#, "not base64url"),
            (r#"{"kty":"oct","k":"c2VjcmV0"}"#, "symmetric"),
        ] {
            let jwk: Jwk = serde_json::from_str(text).expect("parses");
            assert!(jwk.public_key().is_err(), "{why}");
        }
    }

    #[test]
    fn only_filters_by_algorithm() {
        let jwks: Jwks = serde_json::from_str(
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AA"},{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"foo"}]}"#,
        )
        .expect("parses");
        let only = jwks.only(&[Algorithm::ES256, Algorithm::RS256]);
        assert_eq!(only.keys.len(), 1);
        assert_eq!(only.keys[0].kty, "EC");
    }
}
