//! Signing key pairs: generation, PKCS#8 import, and compact JWS signing with pre-parsed keys.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::{Algorithm, Error, Jwk, Result, thumbprint};

/// RSA modulus sizes svctoken generates; 2048 is the default.
pub const RSA_BITS: [usize; 3] = [2048, 3072, 4096];

/// A private signing key, parsed once and pinned to one algorithm.
///
/// Holds ring's parsed key (so signing parses nothing), the public JWK with its RFC 7638
/// thumbprint as `kid`, and the pre-encoded JWS header `{"alg","typ":"JWT","kid"}`. The PKCS#8
/// bytes are kept only in a buffer zeroized on drop, for export through [`crate::dangerous`];
/// `Debug` prints the algorithm and `kid`, never key material.
///
/// A key held outside the process (in an HSM) is one too, through [`SigningKey::external`]:
/// the same header, algorithm pinning and `kid`, its signatures made by an [`ExternalKey`].
pub struct SigningKey {
    alg: Algorithm,
    inner: Inner,
    public: Jwk,
    header_b64: String,
    pkcs8: Zeroizing<Vec<u8>>,
    rng: SystemRandom,
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
    /// Signed elsewhere; the raw signature's length (the modulus for RS256).
    External(Arc<dyn ExternalKey>, usize),
}

/// A private key that never enters this process (a key in an HSM), which signs on request.
pub trait ExternalKey: Send + Sync + 'static {
    /// Signs `message` with the key's pinned algorithm and returns the raw JWS signature: the
    /// RSASSA-PKCS1-v1_5 signature for RS256, `r || s` (32 bytes each) for ES256, the 64-byte
    /// signature for EdDSA.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

impl SigningKey {
    /// Generates a new key for `alg` (RSA keys are 2048-bit; see [`SigningKey::generate_rsa`]).
    pub fn generate(alg: Algorithm) -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = match alg {
            Algorithm::ES256 => Zeroizing::new(
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?
                    .as_ref()
                    .to_vec(),
            ),
            Algorithm::EdDSA => {
                Zeroizing::new(Ed25519KeyPair::generate_pkcs8(&rng)?.as_ref().to_vec())
            }
            Algorithm::RS256 => return Self::generate_rsa(2048),
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Generates an RS256 key of `bits` (one of [`RSA_BITS`]). ring can't generate RSA keys;
    /// the `rsa` crate does, and ring signs with the result.
    pub fn generate_rsa(bits: usize) -> Result<Self> {
        use rsa::pkcs8::EncodePrivateKey as _;
        if !RSA_BITS.contains(&bits) {
            return Err(Error::InvalidKey(format!(
                "RSA keys of {bits} bits are not offered; use 2048, 3072 or 4096"
            )));
        }
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits)
            .map_err(|e| Error::InvalidKey(format!("RSA key generation: {e}")))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::InvalidKey(format!("RSA PKCS#8 encoding: {e}")))?;
        Self::from_pkcs8_der(der.as_bytes())
    }

    /// Parses a PKCS#8 DER private key; the algorithm follows from the key type.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let (alg, inner) = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            (Algorithm::EdDSA, Inner::Ed25519(k))
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            (Algorithm::ES256, Inner::Ecdsa(k))
        } else {
            let k = RsaKeyPair::from_pkcs8(der).map_err(|e| {
                Error::InvalidKey(format!(
                    "not a PKCS#8 Ed25519, P-256 or RSA (2048..8192-bit) private key ({e})"
                ))
            })?;
            (Algorithm::RS256, Inner::Rsa(k))
        };
        let public = public_jwk(&inner);
        Self::assemble(alg, inner, public, Zeroizing::new(der.to_vec()))
    }

    /// A key whose private half lives elsewhere (an HSM) and signs through `signer`; `public`
    /// is its public JWK, from which the algorithm follows (as for every key, never from a
    /// token). The pair is checked before it is returned: `signer` signs a probe message and
    /// the signature must verify with `public`, so a label pointing at the wrong key, or a
    /// signature in the wrong form, is an error here rather than a token nobody can verify.
    pub fn external(public: &Jwk, signer: Arc<dyn ExternalKey>) -> Result<Self> {
        let alg = public.validate()?;
        let verifying = public.public_key()?;
        let signature_len = match alg {
            Algorithm::RS256 => public
                .member("n")
                .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
                .map_or(0, |n| n.iter().skip_while(|&&b| b == 0).count()),
            Algorithm::ES256 | Algorithm::EdDSA => 64,
        };
        // The key members only: what the thumbprint and the published JWK are made of.
        let bare = Jwk {
            crv: public.crv.clone(),
            n: public.n.clone(),
            e: public.e.clone(),
            x: public.x.clone(),
            y: public.y.clone(),
            ..crate::pem_keys::bare_jwk(&public.kty)
        };
        let key = Self::assemble(
            alg,
            Inner::External(signer, signature_len),
            bare,
            Zeroizing::new(Vec::new()),
        )?;
        let probe = format!("svctoken key check {}", key.kid());
        let signature = key.sign(probe.as_bytes())?;
        verifying
            .verify(alg, probe.as_bytes(), &signature)
            .map_err(|_| {
                Error::InvalidKey(format!(
                    "the external key {} made a {}-byte signature that does not verify with \
                     its public key (a {} signature of {signature_len} bytes was expected)",
                    key.kid(),
                    signature.len(),
                    alg.as_str()
                ))
            })?;
        Ok(key)
    }

    /// Completes a key: `alg` and `use` on the public JWK, its thumbprint as `kid`, the header.
    fn assemble(
        alg: Algorithm,
        inner: Inner,
        mut public: Jwk,
        pkcs8: Zeroizing<Vec<u8>>,
    ) -> Result<Self> {
        public.alg = Some(alg.as_str().to_owned());
        public.use_ = Some("sig".to_owned());
        let kid = thumbprint(&public)?;
        let header = serde_json::json!({"alg": alg.as_str(), "typ": "JWT", "kid": kid});
        let header_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        public.kid = Some(kid);
        Ok(SigningKey {
            alg,
            inner,
            public,
            header_b64,
            pkcs8,
            rng: SystemRandom::new(),
        })
    }

    /// Parses a PEM `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self> {
        let block =
            pem::parse(text).map_err(|e| Error::InvalidKey(format!("not a PEM block: {e}")))?;
        if block.tag() != "PRIVATE KEY" {
            return Err(Error::InvalidKey(format!(
                "PEM block is {:?}; a PKCS#8 \"PRIVATE KEY\" is expected",
                block.tag()
            )));
        }
        let der = Zeroizing::new(block.into_contents());
        Self::from_pkcs8_der(&der)
    }

    /// The algorithm this key is pinned to.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        self.public.kid.as_deref().unwrap_or_default()
    }

    /// The public JWK (`kty`, `kid`, `use: sig`, `alg` and the key members).
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    /// Signs `message`, returning the raw JWS signature (`r||s` for ES256).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(match &self.inner {
            Inner::Ecdsa(k) => k.sign(&self.rng, message)?.as_ref().to_vec(),
            Inner::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            Inner::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)?;
                sig
            }
            Inner::External(signer, _) => signer.sign(message)?,
        })
    }

    /// True when the private key lives outside this process (see [`SigningKey::external`]).
    pub fn is_external(&self) -> bool {
        matches!(self.inner, Inner::External(..))
    }

    /// The length of a raw signature: 64 bytes for ES256 and EdDSA, the modulus for RS256.
    fn signature_len(&self) -> usize {
        match &self.inner {
            Inner::Ecdsa(_) | Inner::Ed25519(_) => 64,
            Inner::Rsa(k) => k.public().modulus_len(),
            Inner::External(_, len) => *len,
        }
    }

    /// Signs a compact JWT whose payload is `claims` serialised as JSON.
    pub fn sign_jwt<C: Serialize + ?Sized>(&self, claims: &C) -> Result<String> {
        // A token's claims fit without growing the buffer.
        let mut json = Vec::with_capacity(512);
        serde_json::to_writer(&mut json, claims)?;
        self.sign_jwt_json(&json)
    }

    /// Signs a compact JWT whose payload is the given JSON bytes, with this key's header.
    ///
    /// One allocation for the token; the header was encoded when the key was parsed.
    pub fn sign_jwt_json(&self, claims_json: &[u8]) -> Result<String> {
        let payload_len = base64::encoded_len(claims_json.len(), false).unwrap_or(0);
        let signature_len = base64::encoded_len(self.signature_len(), false).unwrap_or(700);
        let mut token =
            String::with_capacity(self.header_b64.len() + payload_len + 2 + signature_len);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The PKCS#8 DER of a key held in this process; an external key has none.
    pub(crate) fn pkcs8_der(&self) -> Result<&[u8]> {
        if self.is_external() {
            return Err(Error::InvalidKey(format!(
                "{} is held outside this process (an HSM) and cannot be exported",
                self.kid()
            )));
        }
        Ok(&self.pkcs8)
    }
}

fn public_jwk(inner: &Inner) -> Jwk {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let mut jwk = crate::pem_keys::bare_jwk("");
    match inner {
        Inner::Ecdsa(k) => {
            // ring's public key is the uncompressed point 04 || x (32) || y (32).
            let point = k.public_key().as_ref();
            jwk.kty = "EC".into();
            jwk.crv = Some("P-256".into());
            jwk.x = Some(b64(&point[1..33]));
            jwk.y = Some(b64(&point[33..65]));
        }
        Inner::Ed25519(k) => {
            jwk.kty = "OKP".into();
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(b64(k.public_key().as_ref()));
        }
        Inner::Rsa(k) => {
            let parts: signature::RsaPublicKeyComponents<Vec<u8>> = k.public().into();
            jwk.kty = "RSA".into();
            jwk.n = Some(b64(&parts.n));
            jwk.e = Some(b64(&parts.e));
        }
        Inner::External(..) => {}
    }
    jwk
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_pem_with_the_same_kid() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let key = SigningKey::generate(alg).expect("generate");
            assert_eq!(key.algorithm(), alg);
            let pem =
                crate::dangerous::export_pkcs8_pem(&key).expect("a key held in memory exports");
            let again = SigningKey::from_pkcs8_pem(&pem).expect("re-import");
            assert_eq!(again.kid(), key.kid());
            assert_eq!(again.public_jwk(), key.public_jwk());
            assert_eq!(key.public_jwk().alg.as_deref(), Some(alg.as_str()));
            assert_eq!(thumbprint(key.public_jwk()).expect("kid"), key.kid());
        }
    }

    #[test]
    fn a_token_is_one_allocation_of_exactly_its_length() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let key = SigningKey::generate(alg).expect("generate");
            let token = key.sign_jwt_json(br#"{"sub":"a"}"#).expect("sign");
            assert_eq!(token.capacity(), token.len(), "{alg:?}");
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = SigningKey::generate(Algorithm::ES256).expect("generate");
        let pem = crate::dangerous::export_pkcs8_pem(&key).expect("a key held in memory exports");
        let body: String = pem
            .lines()
            .nth(1)
            .expect("pem body")
            .chars()
            .take(16)
            .collect();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()));
        assert!(!debug.contains(&body));
    }

    /// An external key backed by a key in memory, or by a signer that answers wrongly.
    struct Elsewhere(SigningKey, fn(Vec<u8>) -> Vec<u8>);

    impl ExternalKey for Elsewhere {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
            self.0.sign(message).map(self.1)
        }
    }

    #[test]
    fn an_external_key_signs_like_the_key_it_stands_for_and_exports_nothing() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let held = SigningKey::generate(alg).expect("generate");
            let public = held.public_jwk().clone();
            let kid = held.kid().to_owned();
            let key = SigningKey::external(&public, Arc::new(Elsewhere(held, |sig| sig)))
                .expect("external");
            assert!(key.is_external());
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.kid(), kid);
            assert_eq!(key.public_jwk(), &public);
            let token = key.sign_jwt_json(br#"{"sub":"a"}"#).expect("sign");
            assert_eq!(
                token.capacity(),
                token.len(),
                "{alg:?}: the length is known"
            );
            let jwks = crate::Jwks { keys: vec![public] };
            let (header, _) = crate::dangerous::decode_unverified(&token).expect("jwt");
            assert_eq!(header["kid"], kid.as_str());
            let message = token.rsplit_once('.').expect("signed").0;
            let signature = URL_SAFE_NO_PAD
                .decode(token.rsplit_once('.').expect("signed").1)
                .expect("b64");
            (jwks.keys[0].public_key().expect("public"))
                .verify(alg, message.as_bytes(), &signature)
                .expect("verifies");
            let err = crate::dangerous::export_pkcs8_pem(&key).expect_err("not exportable");
            assert!(err.to_string().contains("cannot be exported"), "{err}");
        }
    }

    #[test]
    fn an_external_key_whose_signatures_do_not_verify_is_refused() {
        let held = SigningKey::generate(Algorithm::ES256).expect("generate");
        let public = held.public_jwk().clone();
        // A module that answers in DER, or with the halves swapped, is caught at load.
        let swapped = |sig: Vec<u8>| [&sig[32..], &sig[..32]].concat();
        let err = SigningKey::external(&public, Arc::new(Elsewhere(held, swapped)))
            .expect_err("swapped halves");
        assert!(err.to_string().contains("does not verify"), "{err}");
        let other = SigningKey::generate(Algorithm::ES256).expect("generate");
        let err = SigningKey::external(&public, Arc::new(Elsewhere(other, |sig| sig)))
            .expect_err("another key");
        assert!(err.to_string().contains("does not verify"), "{err}");
    }

    #[test]
    fn rejects_bad_imports_with_a_reason() {
        assert!(SigningKey::from_pkcs8_pem("not pem").is_err());
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        let err = SigningKey::from_pkcs8_pem(public).expect_err("public key");
        assert!(err.to_string().contains("PRIVATE KEY"), "{err}");
        assert!(SigningKey::from_pkcs8_der(b"garbage").is_err());
        assert!(SigningKey::generate_rsa(1024).is_err());
    }
}
