//! [`Pkcs11Keys`]: private keys generated and kept in a PKCS#11 token (an HSM), which signs
//! with them; the key material never enters this process.
//!
//! Each key is a pair of token objects made by the token itself (`C_GenerateKeyPair`): the
//! private key `CKA_SENSITIVE`, not `CKA_EXTRACTABLE`, `CKA_SIGN` only; the public key beside
//! it. Both are labelled (`CKA_LABEL`) with the kid, so an operator finds them with any PKCS#11
//! tool, and carry `CKA_ID` `svctoken/<owner>/<kid>`: the owner is the replica id, so replicas
//! sharing one token (or other applications using it) never touch each other's objects.
//!
//! A key is generated under a pending id and label, then renamed once its public half, and so
//! its kid, is known. The store's writer lock holder sweeps its owner's objects that are
//! pending or that the saved key set does not name (what a writer killed mid-way left); no
//! other object in the token is ever destroyed.

mod pool;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::AuthPin;
use der::Decode as _;
use der::asn1::{OctetStringRef, UintRef};
use svctoken_jwks::{Algorithm, ExternalKey, Jwk, SigningKey};
use zeroize::Zeroizing;

use super::KeySet;
use crate::{Error, Result};
use pool::SessionPool;

/// The label and `CKA_ID` tail of a key pair between its generation and its renaming.
const PENDING: &str = "pending";

/// `[keys] backend = "pkcs11"`: which token holds the keys and how to log in to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (a shared library, such as `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The label of the token (`CKA_LABEL` of its token info) the keys live in.
    pub token_label: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Sessions opened at most, each signing one token at a time.
    pub sessions: usize,
}

/// Where the token's user PIN is read from, when the token is opened: never from the command
/// line, never logged, zeroized once the module has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one line; not readable by others).
    File(PathBuf),
    /// The environment variable [`PIN_ENV`].
    Env,
}

/// The environment variable that holds the user PIN when no `pin_file` is set.
pub const PIN_ENV: &str = "SVCTOKEN_PKCS11_PIN";

impl PinSource {
    /// Reads the PIN.
    fn read(&self) -> Result<AuthPin> {
        Ok(AuthPin::new(self.read_text()?.as_str().into()))
    }

    fn read_text(&self) -> Result<Zeroizing<String>> {
        let text = match self {
            PinSource::File(path) => {
                use std::os::unix::fs::MetadataExt as _;
                let meta = std::fs::metadata(path).map_err(Error::io(path))?;
                if meta.mode() & 0o007 != 0 {
                    return Err(Error::Config(format!(
                        "pin_file {} can be read by other users: chmod 600 (or 640) it",
                        path.display()
                    )));
                }
                Zeroizing::new(std::fs::read_to_string(path).map_err(Error::io(path))?)
            }
            PinSource::Env => Zeroizing::new(std::env::var(PIN_ENV).map_err(|_| {
                Error::Config(format!(
                    "[keys] backend = \"pkcs11\" needs the token's user PIN: set pin_file, or \
                     {PIN_ENV}"
                ))
            })?),
        };
        let pin = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned());
        if pin.is_empty() {
            return Err(Error::Config("the PKCS#11 user PIN is empty".into()));
        }
        Ok(pin)
    }
}

/// The modules loaded in this process, by path: `C_Initialize` runs once per module per
/// process, and finalizing one handle would end every other's sessions, so they are shared and
/// never finalized.
fn module(path: &Path) -> Result<Pkcs11> {
    static MODULES: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    let key = std::fs::canonicalize(path).map_err(|e| {
        Error::Config(format!(
            "the PKCS#11 module {} can't be read: {e} (install the HSM's PKCS#11 library, or \
             fix [keys] module)",
            path.display()
        ))
    })?;
    let mut modules =
        (MODULES.get_or_init(Default::default).lock()).unwrap_or_else(PoisonError::into_inner);
    if let Some((_, loaded)) = modules.iter().find(|(p, _)| *p == key) {
        return Ok(loaded.clone());
    }
    let loaded = Pkcs11::new(&key).map_err(|e| {
        Error::Config(format!(
            "{} is not a PKCS#11 module this process can load: {e}",
            path.display()
        ))
    })?;
    match loaded.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(Error::Config(format!(
                "the PKCS#11 module {} failed to initialise: {e}",
                path.display()
            )));
        }
    }
    modules.push((key, loaded.clone()));
    Ok(loaded)
}

/// One token, logged in, with its pool of sessions.
struct Token {
    describe: String,
    label: String,
    module: Pkcs11,
    sessions: SessionPool,
}

impl Token {
    fn error(&self, message: impl std::fmt::Display) -> Error {
        Error::Store {
            store: self.describe.clone(),
            message: message.to_string(),
        }
    }

    /// Runs `f` on a pooled session; an error from the session is reported as the token's.
    fn with<R>(
        &self,
        what: &str,
        f: impl FnMut(&Session) -> cryptoki::error::Result<R>,
    ) -> Result<R> {
        self.sessions
            .run(f)
            .map_err(|e| self.error(format!("{what}: {}", explain(&e))))
    }

    /// Whether the token offers every mechanism in `wanted` (asked one by one: listing them
    /// all would log each one the binding doesn't know).
    fn offers(&self, wanted: &[MechanismType]) -> Result<bool> {
        for mechanism in wanted {
            match self
                .module
                .get_mechanism_info(self.sessions.slot(), *mechanism)
            {
                Ok(_) => {}
                Err(CkError::Pkcs11(RvError::MechanismInvalid, _)) => return Ok(false),
                Err(e) => {
                    return Err(self.error(format!("asking for {mechanism:?}: {}", explain(&e))));
                }
            }
        }
        Ok(true)
    }
}

/// A PKCS#11 error in words an operator acts on (never holding the PIN: the module never
/// returns it).
fn explain(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => {
            "the token refused the user PIN (CKR_PIN_INCORRECT): check pin_file or \
             SVCTOKEN_PKCS11_PIN"
                .into()
        }
        CkError::Pkcs11(RvError::PinLocked, _) => {
            "the token's user PIN is locked (CKR_PIN_LOCKED): the security officer must \
             unlock it"
                .into()
        }
        other => other.to_string(),
    }
}

/// Private keys in a PKCS#11 token, for one owner (a replica id).
#[derive(Clone)]
pub(crate) struct Pkcs11Keys {
    token: Arc<Token>,
    owner: String,
}

impl std::fmt::Debug for Pkcs11Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Keys")
            .field("token", &self.token.describe)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Keys {
    /// Loads the module, finds the token labelled `config.token_label`, reads the PIN and logs
    /// in; `owner` names this replica's objects.
    pub(crate) fn open(config: &Pkcs11Config, owner: &str) -> Result<Self> {
        let describe = format!(
            "PKCS#11 token {:?} ({})",
            config.token_label,
            config.module.display()
        );
        let module = module(&config.module)?;
        let slots = module
            .get_slots_with_initialized_token()
            .map_err(|e| Error::Config(format!("{describe}: listing its slots: {e}")))?;
        let mut labels = Vec::new();
        let mut found = Vec::new();
        for slot in slots {
            let Ok(info) = module.get_token_info(slot) else {
                continue;
            };
            let label = info.label().trim_end().to_owned();
            if label == config.token_label {
                found.push(slot);
            }
            labels.push(label);
        }
        let slot = match found[..] {
            [slot] => slot,
            [] => {
                return Err(Error::Config(format!(
                    "{describe}: no initialised token has this label (tokens found: {}); \
                     initialise one, or fix [keys] token_label",
                    if labels.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("{labels:?}")
                    }
                )));
            }
            _ => {
                return Err(Error::Config(format!(
                    "{describe}: {} tokens have this label; give each a label of its own",
                    found.len()
                )));
            }
        };
        let sessions = SessionPool::new(module.clone(), slot, config.pin.read()?, config.sessions);
        let token = Token {
            describe: describe.clone(),
            label: config.token_label.clone(),
            module,
            sessions,
        };
        // Log in now, so that a wrong PIN or a missing token stops the start, not a mint.
        token.with("logging in", |_| Ok(()))?;
        Ok(Pkcs11Keys {
            token: Arc::new(token),
            owner: owner.to_owned(),
        })
    }

    pub(crate) fn describe(&self) -> &str {
        &self.token.describe
    }

    /// Where the key `kid` lives: its RFC 7512 PKCS#11 URI.
    pub(crate) fn location(&self, kid: &str) -> String {
        // RFC 7512 section 2.3: everything but the unreserved characters is percent-encoded.
        const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, RESERVED).to_string();
        format!(
            "pkcs11:token={};object={};type=private",
            encode(&self.token.label),
            encode(kid)
        )
    }

    fn object_id(&self, kid: &str) -> Vec<u8> {
        format!("svctoken/{}/{kid}", self.owner).into_bytes()
    }

    /// Generates a key pair in the token and returns its public JWK.
    pub(crate) fn create(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        let (generate, sign, kind) = match alg {
            Algorithm::ES256 => (Mechanism::EccKeyPairGen, MechanismType::ECDSA, "ES256"),
            Algorithm::RS256 => (
                Mechanism::RsaPkcsKeyPairGen,
                MechanismType::SHA256_RSA_PKCS,
                "RS256",
            ),
            Algorithm::EdDSA => (
                Mechanism::EccEdwardsKeyPairGen,
                MechanismType::EDDSA,
                "EdDSA",
            ),
        };
        if !self.token.offers(&[generate.mechanism_type(), sign])? {
            return Err(self.token.error(format!(
                "the token does not offer {kind} keys ({:?} and {sign:?}); set [keys] \
                 algorithm = \"ES256\" or \"RS256\"",
                generate.mechanism_type()
            )));
        }
        let pending = self.object_id(PENDING);
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(PENDING.into()),
            Attribute::Id(pending.clone()),
        ];
        match alg {
            // DER OID prime256v1 (1.2.840.10045.3.1.7).
            Algorithm::ES256 => public.push(Attribute::EcParams(
                [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07].into(),
            )),
            // DER PrintableString "edwards25519".
            Algorithm::EdDSA => public.push(Attribute::EcParams(
                [&[0x13, 0x0c][..], b"edwards25519"].concat(),
            )),
            Algorithm::RS256 => {
                let bits = u64::try_from(rsa_bits).unwrap_or(2048);
                public.push(Attribute::ModulusBits(bits.into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            }
        }
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(PENDING.into()),
            Attribute::Id(pending),
        ];
        let (public_handle, private_handle) = self.token.with("generating a key pair", |s| {
            s.generate_key_pair(&generate, &public, &private)
        })?;
        let jwk = self.public_jwk(alg, public_handle)?;
        let kid = jwk.kid.clone().unwrap_or_default();
        let named = [
            Attribute::Label(kid.clone().into_bytes()),
            Attribute::Id(self.object_id(&kid)),
        ];
        self.token.with("naming the new key pair", |s| {
            s.update_attributes(public_handle, &named)?;
            s.update_attributes(private_handle, &named)
        })?;
        Ok(jwk)
    }

    /// The public JWK of the public key object `handle`, its thumbprint as `kid`.
    fn public_jwk(&self, alg: Algorithm, handle: ObjectHandle) -> Result<Jwk> {
        let wanted: &[AttributeType] = match alg {
            Algorithm::RS256 => &[AttributeType::Modulus, AttributeType::PublicExponent],
            Algorithm::ES256 | Algorithm::EdDSA => &[AttributeType::EcPoint],
        };
        let attributes = self
            .token
            .with("reading a public key", |s| s.get_attributes(handle, wanted))?;
        let b64 = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk: Jwk =
            serde_json::from_str(r#"{"kty":""}"#).map_err(|e| self.token.error(e))?;
        for attribute in &attributes {
            match attribute {
                Attribute::Modulus(n) => {
                    jwk.kty = "RSA".into();
                    jwk.n = b64(strip_zeros(n));
                }
                Attribute::PublicExponent(e) => jwk.e = b64(strip_zeros(e)),
                Attribute::EcPoint(point) => {
                    let point = unwrap_octet_string(point);
                    match (alg, point.len()) {
                        (Algorithm::ES256, 65) if point[0] == 4 => {
                            jwk.kty = "EC".into();
                            jwk.crv = Some("P-256".into());
                            jwk.x = b64(&point[1..33]);
                            jwk.y = b64(&point[33..]);
                        }
                        (Algorithm::EdDSA, 32) => {
                            jwk.kty = "OKP".into();
                            jwk.crv = Some("Ed25519".into());
                            jwk.x = b64(point);
                        }
                        _ => {
                            return Err(self.token.error(format!(
                                "the token's {alg:?} public key is a {}-byte point this \
                                 issuer does not read",
                                point.len()
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        jwk.alg = Some(alg.as_str().into());
        jwk.use_ = Some("sig".into());
        jwk.validate()
            .map_err(|e| self.token.error(format!("its public key: {e}")))?;
        jwk.kid = Some(svctoken_jwks::thumbprint(&jwk).map_err(|e| self.token.error(e))?);
        Ok(jwk)
    }

    /// The objects labelled `kid` of `class`.
    fn find(&self, kid: &str, class: ObjectClass) -> Result<Vec<ObjectHandle>> {
        let template = [
            Attribute::Class(class),
            Attribute::Label(kid.as_bytes().to_vec()),
        ];
        self.token
            .with("finding a key", |s| s.find_objects(&template))
    }

    /// The key `kid`, signing in the token, checked to sign for its public half.
    pub(crate) fn load(&self, kid: &str) -> Result<SigningKey> {
        super::private_dir::check_kid(kid)?;
        let missing = |what: &str| {
            self.token.error(format!(
                "the {what} of {kid} is not in the token (no object labelled {kid}): restore \
                 it, or run `svctoken keys revoke {kid}` to withdraw the key (the standby signs \
                 in its place)"
            ))
        };
        let one = |class, what: &str| -> Result<ObjectHandle> {
            match self.find(kid, class)?[..] {
                [handle] => Ok(handle),
                [] => Err(missing(what)),
                ref several => Err(self.token.error(format!(
                    "{} objects are labelled {kid} as its {what}; remove the copies",
                    several.len()
                ))),
            }
        };
        let private = one(ObjectClass::PRIVATE_KEY, "private key")?;
        let public_handle = one(ObjectClass::PUBLIC_KEY, "public key")?;
        let key_type = self.token.with("reading a key type", |s| {
            s.get_attributes(private, &[AttributeType::KeyType])
        })?;
        let alg = match key_type.first() {
            Some(Attribute::KeyType(t)) if *t == KeyType::EC => Algorithm::ES256,
            Some(Attribute::KeyType(t)) if *t == KeyType::EC_EDWARDS => Algorithm::EdDSA,
            Some(Attribute::KeyType(t)) if *t == KeyType::RSA => Algorithm::RS256,
            other => {
                return Err(self.token.error(format!(
                    "{kid} is a key of type {other:?}, which svctoken does not sign with"
                )));
            }
        };
        let public = self.public_jwk(alg, public_handle)?;
        if public.kid.as_deref() != Some(kid) {
            return Err(self.token.error(format!(
                "the object labelled {kid} holds key {}, not {kid}",
                public.kid.as_deref().unwrap_or_default()
            )));
        }
        let signer = Arc::new(TokenSigner {
            keys: self.clone(),
            kid: kid.to_owned(),
            alg,
            handle: Mutex::new(private),
        });
        SigningKey::external(&public, signer).map_err(|e| self.token.error(e))
    }

    /// Destroys both objects of `kid`; a missing one is not an error.
    pub(crate) fn destroy(&self, kid: &str) -> Result<()> {
        super::private_dir::check_kid(kid)?;
        let template = [Attribute::Label(kid.as_bytes().to_vec())];
        self.token.with("destroying a key", |s| {
            for handle in s.find_objects(&template)? {
                match s.destroy_object(handle) {
                    Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    /// Destroys this owner's key objects that are pending or that `set` does not name. Call
    /// it with the store's lock held. Best effort: a failure costs space in the token, never a
    /// key.
    pub(crate) fn sweep(&self, set: &KeySet) {
        let prefix = self.object_id("");
        let _ = self.token.with("sweeping", |s| {
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                for handle in s.find_objects(&[Attribute::Class(class)])? {
                    let id = match s.get_attributes(handle, &[AttributeType::Id])?.first() {
                        Some(Attribute::Id(id)) => id.clone(),
                        _ => continue,
                    };
                    let Some(kid) = id.strip_prefix(prefix.as_slice()) else {
                        continue;
                    };
                    let named = std::str::from_utf8(kid).is_ok_and(|kid| set.get(kid).is_some());
                    if !named {
                        let _ = s.destroy_object(handle);
                    }
                }
            }
            Ok(())
        });
    }
}

/// `00 00 01` → `01`: JWK integers have no leading zeros.
fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the point; some modules answer the bare point.
fn unwrap_octet_string(bytes: &[u8]) -> &[u8] {
    match OctetStringRef::from_der(bytes) {
        Ok(inner) => inner.as_bytes(),
        Err(_) => bytes,
    }
}

/// An ECDSA P-256 signature in JOSE form, `r || s` with 32 bytes each (RFC 7518 section 3.4).
/// PKCS#11 specifies that form for `CKM_ECDSA`; a module answering in DER
/// (`SEQUENCE { INTEGER r, INTEGER s }`) is converted.
fn ecdsa_jose(signature: Vec<u8>) -> svctoken_jwks::Result<Vec<u8>> {
    if signature.len() == 64 {
        return Ok(signature);
    }
    let wrong = || {
        svctoken_jwks::Error::Signer(format!(
            "the token answered a {}-byte ECDSA signature, neither r || s nor DER",
            signature.len()
        ))
    };
    let (r, s) = der::SliceReader::new(&signature)
        .and_then(|mut reader| {
            use der::Reader as _;
            let pair = reader.sequence(|seq| Ok((UintRef::decode(seq)?, UintRef::decode(seq)?)))?;
            reader.finish(pair)
        })
        .map_err(|_| wrong())?;
    let mut jose = vec![0; 64];
    for (half, value) in jose.chunks_mut(32).zip([r.as_bytes(), s.as_bytes()]) {
        let start = 32usize.checked_sub(value.len()).ok_or_else(wrong)?;
        half[start..].copy_from_slice(value);
    }
    Ok(jose)
}

/// Signs with a private key object in the token.
struct TokenSigner {
    keys: Pkcs11Keys,
    kid: String,
    alg: Algorithm,
    /// Found again if the token stops knowing it (a handle is only valid while the module
    /// keeps it).
    handle: Mutex<ObjectHandle>,
}

impl ExternalKey for TokenSigner {
    fn sign(&self, message: &[u8]) -> svctoken_jwks::Result<Vec<u8>> {
        let digest;
        let eddsa = EddsaParams::new(EddsaSignatureScheme::Pure);
        let (mechanism, data) = match self.alg {
            // CKM_ECDSA signs a digest: hash here, as tokens without CKM_ECDSA_SHA256 need.
            Algorithm::ES256 => {
                digest = ring::digest::digest(&ring::digest::SHA256, message);
                (Mechanism::Ecdsa, digest.as_ref())
            }
            Algorithm::RS256 => (Mechanism::Sha256RsaPkcs, message),
            Algorithm::EdDSA => (Mechanism::Eddsa(eddsa), message),
        };
        let token = &self.keys.token;
        let mut refound = false;
        loop {
            let handle = *self.handle.lock().unwrap_or_else(PoisonError::into_inner);
            match token.sessions.run(|s| s.sign(&mechanism, handle, data)) {
                Ok(signature) if self.alg == Algorithm::ES256 => return ecdsa_jose(signature),
                Ok(signature) => return Ok(signature),
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) if !refound => {
                    refound = true;
                    let found = self
                        .keys
                        .find(&self.kid, ObjectClass::PRIVATE_KEY)
                        .map_err(|e| svctoken_jwks::Error::Signer(e.to_string()))?;
                    let [again] = found[..] else {
                        return Err(svctoken_jwks::Error::Signer(format!(
                            "{}: the private key {} is gone",
                            token.describe, self.kid
                        )));
                    };
                    *self.handle.lock().unwrap_or_else(PoisonError::into_inner) = again;
                }
                Err(e) => {
                    return Err(svctoken_jwks::Error::Signer(format!(
                        "{}: {}",
                        token.describe,
                        explain(&e)
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_come_out_in_jose_form() {
        let raw: Vec<u8> = (1..=64).collect();
        assert_eq!(ecdsa_jose(raw.clone()).expect("raw"), raw);
        // DER: r with a leading zero (its high bit set), s short (leading zeros dropped).
        let mut r = vec![0x80];
        r.extend(1..32u8);
        let s = vec![0x01, 0x02];
        let mut der = vec![0x30, 0, 0x02, 33, 0x00];
        der.extend(&r);
        der.extend([0x02, 2]);
        der.extend(&s);
        der[1] = u8::try_from(der.len() - 2).expect("short");
        let jose = ecdsa_jose(der).expect("der");
        assert_eq!(&jose[..32], &r[..]);
        assert_eq!(&jose[32..62], &[0; 30]);
        assert_eq!(&jose[62..], &s[..]);
        for bad in [vec![0x30, 0x00], vec![1; 63], vec![0x30, 3, 2, 1, 1]] {
            let err = ecdsa_jose(bad).expect_err("malformed");
            assert!(err.to_string().contains("ECDSA signature"), "{err}");
        }
    }

    #[test]
    fn ec_points_are_read_wrapped_or_bare() {
        let point: Vec<u8> = [4].into_iter().chain(1..=64).collect();
        let wrapped = [&[0x04, 65][..], &point].concat();
        assert_eq!(unwrap_octet_string(&wrapped), &point[..]);
        assert_eq!(unwrap_octet_string(&point), &point[..]);
        assert_eq!(strip_zeros(&[0, 0, 1, 0]), &[1, 0]);
    }

    #[test]
    fn a_pin_file_others_can_read_is_refused_and_its_newline_dropped() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = PinSource::File(path.clone())
            .read()
            .expect_err("world-readable");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let pin = PinSource::File(path.clone()).read_text().expect("pin");
        assert_eq!(pin.as_str(), "1234");
        std::fs::write(&path, "\n").expect("write");
        let err = PinSource::File(path).read_text().expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
