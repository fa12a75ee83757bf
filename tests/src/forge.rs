//! Forging JOSE: compact tokens built piece by piece, so a test can send what no honest signer
//! would: any header, a payload given as raw JSON text (repeated members, odd numbers), a
//! signature made with the wrong algorithm, an HMAC keyed with a public key in any of its
//! encodings, a DER-encoded ECDSA signature.
//!
//! Everything here signs with ring (the keys' PKCS#8 is exported through
//! [`svctoken_jwks::dangerous`]); nothing verifies.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use serde_json::Value;
use svctoken_jwks::{Algorithm, SigningKey};

/// base64url without padding, as JOSE wants it.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; panics on bad input (test data only).
pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url test data")
}

/// The signing input `b64(header).b64(payload)` of two JSON texts, taken byte for byte (so
/// repeated members and unusual numbers survive).
pub fn signing_input(header_json: &str, payload_json: &str) -> String {
    format!("{}.{}", b64(header_json), b64(payload_json))
}

/// A compact JWS of `header` and `payload` signed by `key` (whatever `alg` the header claims).
pub fn signed(key: &SigningKey, header: &Value, payload: &Value) -> String {
    signed_text(key, &header.to_string(), &payload.to_string())
}

/// Like [`signed`], with the header and payload given as JSON text.
pub fn signed_text(key: &SigningKey, header_json: &str, payload_json: &str) -> String {
    let input = signing_input(header_json, payload_json);
    let signature = key.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64(signature))
}

/// The header an honest signer with `key` writes: `{"alg","typ":"JWT","kid"}`.
pub fn header_of(key: &SigningKey) -> Value {
    serde_json::json!({"alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid()})
}

/// `input` with `signature` appended as the third segment.
pub fn with_signature(input: &str, signature: &[u8]) -> String {
    format!("{input}.{}", b64(signature))
}

/// An HMAC (`HS256`, `HS384` or `HS512`) of `input` keyed with `secret`.
pub fn hmac(alg: &str, secret: &[u8], input: &str) -> Vec<u8> {
    let algorithm = match alg {
        "HS256" => ring::hmac::HMAC_SHA256,
        "HS384" => ring::hmac::HMAC_SHA384,
        "HS512" => ring::hmac::HMAC_SHA512,
        other => panic!("not an HMAC algorithm: {other}"),
    };
    let key = ring::hmac::Key::new(algorithm, secret);
    ring::hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
}

/// The DER prefix of a P-256 `SubjectPublicKeyInfo`, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The DER prefix of an Ed25519 `SubjectPublicKeyInfo`, before the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// `key`'s public half in every encoding an attacker might try as an HMAC secret (the
/// classic RS256-to-HS256 confusion): PEM and DER `SubjectPublicKeyInfo`, PEM and DER PKCS#1
/// (RSA), the raw key (RSA modulus, EC point, Ed25519 bytes), the JWK JSON, the JWK's `n` or
/// `x` text, and the RFC 7638 thumbprint. Each with a short name.
pub fn public_key_encodings(key: &SigningKey) -> Vec<(&'static str, Vec<u8>)> {
    let jwk = key.public_jwk();
    let member = |name: &str| jwk.member(name).expect("public key member").to_owned();
    let pem = |tag: &str, der: &[u8]| {
        let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
        pem::encode_config(&pem::Pem::new(tag, der.to_vec()), config).into_bytes()
    };
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    match key.algorithm() {
        Algorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPublicKey as _;
            use rsa::pkcs8::EncodePublicKey as _;
            let n = unb64(&member("n"));
            let e = unb64(&member("e"));
            let public = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .expect("RSA public key");
            let spki = public
                .to_public_key_der()
                .expect("SPKI")
                .as_bytes()
                .to_vec();
            let pkcs1 = public.to_pkcs1_der().expect("PKCS#1").as_bytes().to_vec();
            out.push(("PEM SPKI", pem("PUBLIC KEY", &spki)));
            out.push(("PEM PKCS#1", pem("RSA PUBLIC KEY", &pkcs1)));
            out.push(("DER SPKI", spki));
            out.push(("DER PKCS#1", pkcs1));
            out.push(("raw modulus", n));
            out.push(("JWK n text", member("n").into_bytes()));
        }
        Algorithm::ES256 => {
            let point = [vec![0x04], unb64(&member("x")), unb64(&member("y"))].concat();
            let spki = [P256_SPKI_PREFIX.as_slice(), &point].concat();
            out.push(("PEM SPKI", pem("PUBLIC KEY", &spki)));
            out.push(("DER SPKI", spki));
            out.push(("raw EC point", point));
            out.push(("JWK x text", member("x").into_bytes()));
        }
        Algorithm::EdDSA => {
            let raw = unb64(&member("x"));
            let spki = [ED25519_SPKI_PREFIX.as_slice(), &raw].concat();
            out.push(("PEM SPKI", pem("PUBLIC KEY", &spki)));
            out.push(("DER SPKI", spki));
            out.push(("raw Ed25519 key", raw));
            out.push(("JWK x text", member("x").into_bytes()));
        }
    }
    let jwks = svctoken_jwks::Jwks {
        keys: vec![jwk.clone()],
    };
    let jwks_json: Value = serde_json::from_str(&jwks.to_json()).expect("JWKS JSON");
    out.push(("JWK JSON", jwks_json["keys"][0].to_string().into_bytes()));
    out.push(("thumbprint", key.kid().as_bytes().to_vec()));
    out
}

/// `key`'s PKCS#8 DER (through the crate's fenced-off export).
fn pkcs8_der(key: &SigningKey) -> Vec<u8> {
    let pem_text =
        svctoken_jwks::dangerous::export_pkcs8_pem(key).expect("a key held in memory exports");
    pem::parse(pem_text.as_bytes())
        .expect("PKCS#8 PEM")
        .into_contents()
}

/// Signs `input` with an RSA `key` under another RSA algorithm: `PS256`, `PS384`, `PS512`,
/// `RS384` or `RS512`: a genuine signature by the registered key, with the wrong algorithm.
pub fn rsa_sign_as(key: &SigningKey, alg: &str, input: &str) -> Vec<u8> {
    let padding: &dyn signature::RsaEncoding = match alg {
        "PS256" => &signature::RSA_PSS_SHA256,
        "PS384" => &signature::RSA_PSS_SHA384,
        "PS512" => &signature::RSA_PSS_SHA512,
        "RS384" => &signature::RSA_PKCS1_SHA384,
        "RS512" => &signature::RSA_PKCS1_SHA512,
        other => panic!("not an RSA algorithm: {other}"),
    };
    let pair = RsaKeyPair::from_pkcs8(&pkcs8_der(key)).expect("RSA key");
    let mut out = vec![0; pair.public().modulus_len()];
    pair.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut out)
        .expect("RSA signature");
    out
}

/// An ES256 signature of `input` by `key` in ASN.1 DER (what OpenSSL returns), not JOSE's
/// fixed `r||s`.
pub fn ecdsa_der_signature(key: &SigningKey, input: &str) -> Vec<u8> {
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8_der(key),
        &rng,
    )
    .expect("EC key");
    pair.sign(&rng, input.as_bytes())
        .expect("ECDSA signature")
        .as_ref()
        .to_vec()
}

/// A segment re-encoded with the standard base64 alphabet and its `=` padding.
pub fn standard_base64(segment: &str) -> String {
    STANDARD.encode(unb64(segment))
}

/// `segment` with the unused low bits of its last character set (a non-canonical encoding
/// of the same bytes), or `None` when its length leaves no unused bits.
pub fn with_trailing_bits(segment: &str) -> Option<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused = match segment.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *segment.as_bytes().last()?;
    let value = ALPHABET.iter().position(|&c| c == last)?;
    let changed = ALPHABET[value | ((1 << unused) - 1)];
    Some(format!(
        "{}{}",
        &segment[..segment.len() - 1],
        changed as char
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bits_change_the_text_not_the_bytes() {
        let segment = b64(b"ab");
        let changed = with_trailing_bits(&segment).expect("2 chars of padding");
        assert_ne!(changed, segment);
        assert_eq!(
            base64::engine::GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_allow_trailing_bits(true)
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
            )
            .decode(&changed)
            .expect("lenient decode"),
            b"ab"
        );
        assert!(URL_SAFE_NO_PAD.decode(&changed).is_err());
        assert_eq!(with_trailing_bits(&b64(b"abc")), None);
    }
}
