//! RFC 7638 JWK thumbprints, used as every key's `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::{Error, Jwk, Result};

/// The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding.
///
/// Only the required members of the key type take part, in lexicographic order, serialised
/// without white space, so the thumbprint ignores `kid`, `alg`, `use` and any private member.
/// A JWK missing one of its required members is an error, never a panic.
pub fn thumbprint(jwk: &Jwk) -> Result<String> {
    let members: &[&str] = match jwk.kty.as_str() {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(Error::InvalidJwk(format!("unknown kty {other:?}"))),
    };
    // serde_json's Map is ordered by key (no `preserve_order` feature), which is exactly the
    // lexicographic order RFC 7638 section 3.3 asks for.
    let mut canonical = Map::new();
    for &name in members {
        let value = jwk
            .member(name)
            .ok_or_else(|| Error::InvalidJwk(format!("{} key without {name:?}", jwk.kty)))?;
        canonical.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    let json = serde_json::to_vec(&canonical)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &json);
    Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of RFC 7638 section 3.1.
    #[test]
    fn rfc7638_example() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA",
                "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
                "e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .expect("the RFC's JWK parses");
        assert_eq!(
            thumbprint(&jwk).expect("complete key"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ignores_optional_members_and_rejects_incomplete_keys() {
        let base =
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let mut jwk: Jwk = serde_json::from_str(base).expect("valid");
        let plain = thumbprint(&jwk).expect("complete");
        // RFC 8037 appendix A.3 gives the thumbprint of this key.
        assert_eq!(plain, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        jwk.kid = Some("other".into());
        jwk.alg = Some("EdDSA".into());
        assert_eq!(thumbprint(&jwk).expect("complete"), plain);

        for broken in [
            r#"{"kty":"OKP","crv":"Ed25519"}"#,
            r#"{"kty":"EC","crv":"P-256","x":"AA"}"#,
            r#"{"kty":"RSA","n":"AA"}"#,
            r#"{"kty":"oct","k":"AA"}"#,
        ] {
            let jwk: Jwk = serde_json::from_str(broken).expect("parses as a JWK");
            assert!(thumbprint(&jwk).is_err(), "{broken}");
        }
    }
}
