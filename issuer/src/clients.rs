//! The client registry: who may ask for tokens, with which secret, for what.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::oauth::RefusalReason;
use crate::{Error, Result};

/// Prefix of every generated client secret, so secret scanners can recognise a leaked one.
pub const SECRET_PREFIX: &str = "sts_";

/// The SHA-256 of a client secret: the only form in which a secret is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes a presented secret.
    pub fn of(secret: &str) -> SecretHash {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        SecretHash(bytes)
    }

    /// Parses the 64 hex digits of `secret_sha256`.
    pub fn from_hex(text: &str) -> Result<SecretHash> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| {
            Error::Config(
                "secret_sha256 must be 64 hex digits, as printed by `svctoken clients add`".into(),
            )
        })?;
        Ok(SecretHash(bytes))
    }

    /// The 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// Generates a new client secret: 256 random bits, base64url, behind [`SECRET_PREFIX`].
pub fn generate_secret() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new().fill(bytes.as_mut())?;
    let mut secret = Zeroizing::new(String::from(SECRET_PREFIX));
    URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut secret);
    Ok(secret)
}

/// How a client proves who it is.
#[derive(Clone, Debug)]
pub enum ClientAuth {
    /// A secret, of which only the hash is kept (`client_secret_basic` / `_post`).
    Secret(SecretHash),
    /// Public keys: it signs a JWT assertion (`private_key_jwt`, RFC 7523 section 2.2).
    Keys(svctoken_jwks::Jwks),
}

/// A registered client and its policy.
#[derive(Clone, Debug)]
pub struct Client {
    /// The OAuth `client_id`.
    pub id: String,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// The `sub` of its tokens. Default `svc:<id>`.
    pub subject: String,
    /// Audiences it may ask for. Default: every configured audience.
    pub audiences: Vec<String>,
    /// Scopes it may ask for. Default: none.
    pub scopes: Vec<String>,
    /// Lifetime of its tokens (they never live longer). Default 5 minutes.
    pub max_ttl: Duration,
    /// Custom claims added to each of its tokens. Default none.
    pub claims: Map<String, Value>,
    /// Subjects it may act for (glob patterns, `*` matches any run of characters). Default
    /// none.
    pub act_as: Vec<String>,
}

impl Client {
    /// Whether its policy lets it act on behalf of `subject`.
    pub fn may_act_as(&self, subject: &str) -> bool {
        self.act_as
            .iter()
            .any(|pattern| glob_match(pattern, subject))
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Every registered client, by id.
#[derive(Clone, Debug, Default)]
pub struct ClientRegistry {
    by_id: HashMap<String, Client>,
}

impl ClientRegistry {
    /// A registry of these clients; duplicate ids are refused.
    pub fn new(clients: impl IntoIterator<Item = Client>) -> Result<Self> {
        let mut by_id = HashMap::new();
        for client in clients {
            if let Some(dup) = by_id.insert(client.id.clone(), client) {
                return Err(Error::Config(format!(
                    "client id {:?} is registered twice",
                    dup.id
                )));
            }
        }
        Ok(ClientRegistry { by_id })
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<&Client> {
        self.by_id.get(id)
    }

    /// All clients.
    pub fn iter(&self) -> impl Iterator<Item = &Client> {
        self.by_id.values()
    }

    /// Authenticates `id` with `secret`. The secret is hashed and compared in constant time,
    /// and an unknown id costs the same hash and comparison, so timing tells nothing.
    pub fn authenticate(&self, id: &str, secret: &str) -> Result<&Client, RefusalReason> {
        let presented = SecretHash::of(secret);
        match self.by_id.get(id) {
            Some(client) => match &client.auth {
                ClientAuth::Secret(hash) if hash.matches(&presented) => Ok(client),
                ClientAuth::Secret(_) => Err(RefusalReason::WrongSecret),
                ClientAuth::Keys(_) => Err(RefusalReason::NotASecretClient),
            },
            None => {
                let _ = SecretHash([0; 32]).matches(&presented);
                Err(RefusalReason::UnknownClient)
            }
        }
    }
}

/// Checks a client id: letters, digits and `- _ . @`.
pub fn validate_client_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "client id {id:?}: use letters, digits and - _ . @"
        )))
    }
}

/// The `jwks = [...]` line of a `[[clients]]` block registering `keys` (inline TOML tables of
/// their string members), as `svctoken clients add --jwk-file` prints it.
pub fn jwks_toml_line(keys: &[svctoken_jwks::Jwk]) -> String {
    let tables: Vec<String> = keys
        .iter()
        .map(|jwk| {
            let members: Vec<String> = ["kty", "kid", "use", "alg", "crv", "n", "e", "x", "y"]
                .iter()
                .filter_map(|name| jwk.member(name).map(|v| format!("{name} = {v:?}")))
                .collect();
            format!("{{ {} }}", members.join(", "))
        })
        .collect();
    format!("jwks = [{}]\n", tables.join(", "))
}

/// The largest public-key file [`read_jwks_file`] reads: far above any real key set.
pub const MAX_JWKS_FILE: u64 = 1024 * 1024;

/// Reads public keys from a file holding a JWKS (`{"keys": [...]}`) or a single JWK, of at
/// most [`MAX_JWKS_FILE`] bytes (so a path such as `/dev/zero` is refused, not read forever).
pub fn read_jwks_file(path: &Path) -> Result<Vec<svctoken_jwks::Jwk>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut text = String::new();
    file.take(MAX_JWKS_FILE + 1)
        .read_to_string(&mut text)
        .map_err(Error::io(path))?;
    if text.len() as u64 > MAX_JWKS_FILE {
        return Err(Error::Config(format!(
            "{}: longer than 1 MiB, which no key set is: name the file holding the public keys",
            path.display()
        )));
    }
    if let Ok(set) = serde_json::from_str::<svctoken_jwks::Jwks>(&text) {
        return Ok(set.keys);
    }
    serde_json::from_str::<svctoken_jwks::Jwk>(&text)
        .map(|k| vec![k])
        .map_err(|e| Error::Config(format!("{}: not a JWK or a JWKS ({e})", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_file_is_bounded() {
        let err = read_jwks_file(Path::new("/dev/zero")).expect_err("endless");
        assert!(err.to_string().contains("longer than 1 MiB"), "{err}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("key.json");
        let key =
            svctoken_jwks::SigningKey::generate(svctoken_jwks::Algorithm::ES256).expect("key");
        let jwk = serde_json::to_vec(key.public_jwk()).expect("json");
        std::fs::write(&path, jwk).expect("write");
        assert_eq!(
            read_jwks_file(&path).expect("one key"),
            vec![key.public_jwk().clone()]
        );
    }

    fn client(id: &str, secret: &str) -> Client {
        Client {
            id: id.into(),
            auth: ClientAuth::Secret(SecretHash::of(secret)),
            subject: format!("svc:{id}"),
            audiences: vec!["convex".into()],
            scopes: vec![],
            max_ttl: Duration::from_secs(300),
            claims: Map::new(),
            act_as: vec![],
        }
    }

    #[test]
    fn glob_patterns() {
        for (pattern, text, expect) in [
            ("user:*", "user:42", true),
            ("user:*", "user:", true),
            ("user:*", "users:42", false),
            ("org_42:*", "org_42:user:7", true),
            ("org_42:*", "org_4:user", false),
            ("*", "anything", true),
            ("user:42", "user:42", true),
            ("user:42", "user:420", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXcYYb", false),
            ("*:admin", "org:admin", true),
            ("*:admin", "org:admins", false),
        ] {
            assert_eq!(glob_match(pattern, text), expect, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn secrets_are_long_random_and_only_hashes_are_kept() {
        let a = generate_secret().expect("rng");
        let b = generate_secret().expect("rng");
        assert_ne!(*a, *b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43, "256 bits in base64url");
        let hash = SecretHash::of(&a);
        assert_eq!(SecretHash::from_hex(&hash.to_hex()).expect("hex"), hash);
        assert!(!format!("{hash:?}").contains(&hash.to_hex()));
        assert!(SecretHash::from_hex("abc").is_err());
    }

    #[test]
    fn authenticates_only_the_right_secret() {
        let registry = ClientRegistry::new([client("a", "s1"), client("b", "s2")]).expect("ok");
        assert_eq!(registry.authenticate("a", "s1").expect("ok").id, "a");
        assert_eq!(
            registry.authenticate("a", "s2").err(),
            Some(RefusalReason::WrongSecret)
        );
        assert_eq!(
            registry.authenticate("c", "s1").err(),
            Some(RefusalReason::UnknownClient)
        );
        assert!(ClientRegistry::new([client("a", "x"), client("a", "y")]).is_err());
    }
}
