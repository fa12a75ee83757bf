//! PEM key files in the forms people have them: private keys as PKCS#8 `PRIVATE KEY`, SEC1
//! `EC PRIVATE KEY` (what `openssl ecparam -genkey` writes) or PKCS#1 `RSA PRIVATE KEY`
//! (`openssl genrsa -traditional`), public keys as SPKI `PUBLIC KEY` or PKCS#1
//! `RSA PUBLIC KEY`.
//!
//! The DER structures are read with the RustCrypto `pkcs8`, `sec1`, `pkcs1` and `spki` crates
//! (no cryptography in them); a private key in another form is converted to PKCS#8 with their
//! types, and ring parses and checks the result.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkcs8::der::asn1::{AnyRef, ObjectIdentifier};
use pkcs8::der::{Decode as _, Encode as _};
use zeroize::Zeroizing;

use crate::{Algorithm, Error, Jwk, Result, SigningKey, thumbprint};

/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The P-256 curve, `prime256v1` / `secp256r1` (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-Ed25519` (RFC 8410).
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// PEM blocks that accompany a key without being one (`openssl ecparam -genkey` writes the
/// curve before the key).
const SKIPPED_BLOCKS: [&str; 1] = ["EC PARAMETERS"];

/// The shell line that converts the private key in `input` to unencrypted PKCS#8, next to it
/// (`worker.pem` to `worker.pkcs8.pem`): `openssl pkcs8 -topk8 -nocrypt -in IN -out OUT`.
pub fn pkcs8_conversion_command(input: &Path) -> String {
    let output = input.with_extension("pkcs8.pem");
    format!(
        "openssl pkcs8 -topk8 -nocrypt -in {} -out {}",
        shell_word(&input.display().to_string()),
        shell_word(&output.display().to_string())
    )
}

/// `text` as one shell word: as it is when it is only safe characters, single-quoted otherwise.
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The one key block of a PEM text, skipping companion blocks such as `EC PARAMETERS`.
fn key_block(text: &str) -> Result<pem::Pem> {
    let blocks =
        pem::parse_many(text).map_err(|e| Error::InvalidKey(format!("not a PEM file: {e}")))?;
    let mut keys = blocks
        .into_iter()
        .filter(|b| !SKIPPED_BLOCKS.contains(&b.tag()));
    match (keys.next(), keys.next()) {
        (Some(block), None) => Ok(block),
        (None, _) => Err(Error::InvalidKey("no PEM key block in it".into())),
        (Some(_), Some(_)) => Err(Error::InvalidKey(
            "several PEM key blocks in it; keep one key per file".into(),
        )),
    }
}

/// Why a PEM block that is not a key form this crate reads can't be used, and whether a
/// conversion to PKCS#8 would help.
fn unreadable(tag: &str) -> Error {
    match tag {
        "ENCRYPTED PRIVATE KEY" => Error::UnsupportedKeyFormat(
            "an encrypted PKCS#8 private key (a passphrase protects it)".into(),
        ),
        "OPENSSH PRIVATE KEY" => Error::InvalidKey(
            "an OpenSSH private key; `ssh-keygen -p -m PKCS8 -f FILE` rewrites it as PKCS#8".into(),
        ),
        "CERTIFICATE" => Error::InvalidKey(
            "a certificate; give the key itself (`openssl x509 -pubkey -noout -in FILE` prints \
             its public key)"
                .into(),
        ),
        other => Error::UnsupportedKeyFormat(format!("a PEM {other:?} block")),
    }
}

impl SigningKey {
    /// Parses a PEM private key: PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY` (P-256, with its
    /// public point, as OpenSSL writes it) or PKCS#1 `RSA PRIVATE KEY`. An `EC PARAMETERS`
    /// block before the key is skipped. [`Error::UnsupportedKeyFormat`] means a conversion to
    /// PKCS#8 ([`pkcs8_conversion_command`]) makes it readable.
    pub fn from_pem(text: &str) -> Result<Self> {
        let block = key_block(text)?;
        let der = Zeroizing::new(block.contents().to_vec());
        match block.tag() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "EC PRIVATE KEY" => Self::from_pkcs8_der(&sec1_to_pkcs8(&der)?),
            "RSA PRIVATE KEY" => Self::from_pkcs8_der(&pkcs1_to_pkcs8(&der)?),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(Error::InvalidKey(
                "a public key where the private key is needed".into(),
            )),
            other => Err(unreadable(other)),
        }
    }
}

/// Wraps a SEC1 `ECPrivateKey` of a P-256 key in a PKCS#8 `PrivateKeyInfo`.
fn sec1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let key = sec1::EcPrivateKey::from_der(der)
        .map_err(|e| Error::InvalidKey(format!("not a SEC1 EC private key: {e}")))?;
    match key.parameters.and_then(|p| p.named_curve()) {
        Some(curve) if curve == P256 => {}
        None => {}
        Some(curve) => {
            return Err(Error::InvalidKey(format!(
                "an EC key on curve {curve}; only P-256 (prime256v1, ES256) keys are used"
            )));
        }
    }
    if key.public_key.is_none() {
        // ring needs the public point, and computing it is a curve operation, not a format
        // change; OpenSSL computes it while converting.
        return Err(Error::UnsupportedKeyFormat(
            "a SEC1 EC private key without its public point".into(),
        ));
    }
    let info = pkcs8::PrivateKeyInfo::new(
        pkcs8::AlgorithmIdentifierRef {
            oid: EC_PUBLIC_KEY,
            parameters: Some(AnyRef::from(&P256)),
        },
        der,
    );
    encode(&info)
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo`.
fn pkcs1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    pkcs1::RsaPrivateKey::from_der(der)
        .map_err(|e| Error::InvalidKey(format!("not a PKCS#1 RSA private key: {e}")))?;
    let info = pkcs8::PrivateKeyInfo::new(
        pkcs8::AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        der,
    );
    encode(&info)
}

fn encode(info: &pkcs8::PrivateKeyInfo<'_>) -> Result<Zeroizing<Vec<u8>>> {
    info.to_der()
        .map(Zeroizing::new)
        .map_err(|e| Error::InvalidKey(format!("PKCS#8 encoding: {e}")))
}

/// The public JWK of the key in a PEM text, with `kid` (its RFC 7638 thumbprint), `alg` and
/// `use: sig`: a public key (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`), or the public half
/// of a private key in any form [`SigningKey::from_pem`] reads.
pub fn public_jwk_from_pem(text: &str) -> Result<Jwk> {
    let block = key_block(text)?;
    let jwk = match block.tag() {
        "PUBLIC KEY" => spki_jwk(block.contents())?,
        "RSA PUBLIC KEY" => rsa_jwk(block.contents())?,
        _ => return Ok(SigningKey::from_pem(text)?.public_jwk().clone()),
    };
    finish_public_jwk(jwk)
}

/// Sets `alg` (from the key type), `use: sig` and the thumbprint `kid` on a bare public JWK,
/// after checking its members.
pub(crate) fn finish_public_jwk(mut jwk: Jwk) -> Result<Jwk> {
    let alg: Algorithm = jwk.validate()?;
    jwk.alg = Some(alg.as_str().to_owned());
    jwk.use_ = Some("sig".to_owned());
    jwk.kid = Some(thumbprint(&jwk)?);
    Ok(jwk)
}

/// A JWK with only `kty` set.
pub(crate) fn bare_jwk(kty: &str) -> Jwk {
    Jwk {
        kty: kty.to_owned(),
        kid: None,
        use_: None,
        alg: None,
        crv: None,
        n: None,
        e: None,
        x: None,
        y: None,
        other: Default::default(),
    }
}

fn spki_jwk(der: &[u8]) -> Result<Jwk> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| Error::InvalidKey(format!("not an SPKI public key: {e}")))?;
    let key = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Error::InvalidKey("the public key is not a whole number of bytes".into()))?;
    let b64 = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
    let oid = info.algorithm.oid;
    if oid == EC_PUBLIC_KEY {
        let curve = info.algorithm.parameters_oid().ok();
        if curve != Some(P256) {
            let named = curve.map_or_else(|| "an unnamed curve".to_owned(), |c| c.to_string());
            return Err(Error::InvalidKey(format!(
                "an EC key on {named}; only P-256 (prime256v1, ES256) keys are used"
            )));
        }
        let point = match key {
            [4, point @ ..] if point.len() == 64 => point,
            _ => {
                return Err(Error::InvalidKey(
                    "a P-256 public key that is not an uncompressed point".into(),
                ));
            }
        };
        let mut jwk = bare_jwk("EC");
        jwk.crv = Some("P-256".into());
        jwk.x = b64(&point[..32]);
        jwk.y = b64(&point[32..]);
        Ok(jwk)
    } else if oid == RSA_ENCRYPTION {
        rsa_jwk(key)
    } else if oid == ED25519 {
        let mut jwk = bare_jwk("OKP");
        jwk.crv = Some("Ed25519".into());
        jwk.x = b64(key);
        Ok(jwk)
    } else {
        Err(Error::InvalidKey(format!(
            "a public key of type {oid}; P-256 EC, RSA and Ed25519 keys are used"
        )))
    }
}

/// A PKCS#1 `RSAPublicKey` as a JWK.
fn rsa_jwk(der: &[u8]) -> Result<Jwk> {
    let key = pkcs1::RsaPublicKey::from_der(der)
        .map_err(|e| Error::InvalidKey(format!("not a PKCS#1 RSA public key: {e}")))?;
    let mut jwk = bare_jwk("RSA");
    jwk.n = Some(URL_SAFE_NO_PAD.encode(key.modulus.as_bytes()));
    jwk.e = Some(URL_SAFE_NO_PAD.encode(key.public_exponent.as_bytes()));
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test key file from `tests/keys` (see its README).
    fn fixture(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name);
        std::fs::read_to_string(&path).expect("fixture")
    }

    fn kid_of_public(name: &str) -> String {
        let jwk = public_jwk_from_pem(&fixture(name)).expect(name);
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        jwk.kid.expect("kid")
    }

    #[test]
    fn every_private_form_signs_with_the_key_of_its_public_pem() {
        for (private, public, alg) in [
            ("ec-p256-sec1.pem", "ec-p256-public.pem", Algorithm::ES256),
            ("ec-p256-pkcs8.pem", "ec-p256-public.pem", Algorithm::ES256),
            ("rsa-pkcs1.pem", "rsa-public.pem", Algorithm::RS256),
            ("rsa-pkcs8.pem", "rsa-public.pem", Algorithm::RS256),
            ("rsa-pkcs8.pem", "rsa-pkcs1-public.pem", Algorithm::RS256),
            ("ed25519-pkcs8.pem", "ed25519-public.pem", Algorithm::EdDSA),
        ] {
            let key = SigningKey::from_pem(&fixture(private)).expect(private);
            assert_eq!(key.algorithm(), alg, "{private}");
            assert_eq!(key.kid(), kid_of_public(public), "{private} and {public}");
            let jwk = public_jwk_from_pem(&fixture(public)).expect(public);
            assert_eq!(&jwk, key.public_jwk(), "{public}");
            assert_eq!(jwk.alg.as_deref(), Some(alg.as_str()));
            // The public half of a private key file is the same JWK.
            let from_private = public_jwk_from_pem(&fixture(private)).expect(private);
            assert_eq!(&from_private, key.public_jwk(), "{private}");
            // And the converted key signs what the public key verifies.
            let token = key
                .sign_jwt(&serde_json::json!({"sub": "a"}))
                .expect("sign");
            let (head, signature) = token.rsplit_once('.').expect("jws");
            let signature = URL_SAFE_NO_PAD.decode(signature).expect("b64");
            jwk.public_key()
                .and_then(|k| k.verify(alg, head.as_bytes(), &signature))
                .expect(private);
        }
    }

    #[test]
    fn a_converted_key_exports_as_pkcs8_and_reads_back() {
        for name in ["ec-p256-sec1.pem", "rsa-pkcs1.pem"] {
            let key = SigningKey::from_pem(&fixture(name)).expect(name);
            let pem =
                crate::dangerous::export_pkcs8_pem(&key).expect("a key held in memory exports");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{name}");
            let again = SigningKey::from_pkcs8_pem(&pem).expect("pkcs8");
            assert_eq!(again.kid(), key.kid(), "{name}");
        }
    }

    #[test]
    fn keys_generated_by_ring_read_as_pem_and_public_pem() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = SigningKey::generate(alg).expect("generate");
            let pem =
                crate::dangerous::export_pkcs8_pem(&key).expect("a key held in memory exports");
            assert_eq!(SigningKey::from_pem(&pem).expect("pem").kid(), key.kid());
            assert_eq!(public_jwk_from_pem(&pem).expect("jwk"), *key.public_jwk());
        }
    }

    #[test]
    fn unreadable_forms_say_whether_a_conversion_helps() {
        for name in ["ec-p256-encrypted.pem", "ec-p256-sec1-no-public.pem"] {
            let err = SigningKey::from_pem(&fixture(name)).expect_err(name);
            assert!(
                matches!(err, Error::UnsupportedKeyFormat(_)),
                "{name}: {err}"
            );
            assert!(public_jwk_from_pem(&fixture(name)).is_err(), "{name}");
        }
        let err = SigningKey::from_pem(&fixture("ec-p384-sec1.pem")).expect_err("p-384");
        assert!(err.to_string().contains("only P-256"), "{err}");
        let err = SigningKey::from_pem(&fixture("ec-p256-public.pem")).expect_err("public");
        assert!(err.to_string().contains("public key where"), "{err}");
        let two = fixture("ec-p256-pkcs8.pem") + &fixture("rsa-pkcs8.pem");
        let err = SigningKey::from_pem(&two).expect_err("two keys");
        assert!(err.to_string().contains("several"), "{err}");
        assert!(SigningKey::from_pem("not pem").is_err());
        let ssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(ssh).expect_err("ssh");
        assert!(err.to_string().contains("ssh-keygen -p -m PKCS8"), "{err}");
    }

    #[test]
    fn the_conversion_command_names_both_files_as_shell_words() {
        assert_eq!(
            pkcs8_conversion_command(Path::new("keys/worker.pem")),
            "openssl pkcs8 -topk8 -nocrypt -in keys/worker.pem -out keys/worker.pkcs8.pem"
        );
        assert_eq!(
            pkcs8_conversion_command(Path::new("my key.pem")),
            "openssl pkcs8 -topk8 -nocrypt -in 'my key.pem' -out 'my key.pkcs8.pem'"
        );
    }
}
