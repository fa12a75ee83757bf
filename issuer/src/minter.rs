//! The `Minter`: turns a validated request into a signed service JWT with the active key.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::{Map, Value};
use svctoken_jwks::SigningKey;

use crate::{Clock, Error, Result};

/// Claim names that can't be set as custom claims: registered JWT claims, the claims svctoken
/// sets itself, and the names Convex gives its own identity fields.
pub const RESERVED_CLAIMS: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "tokenIdentifier",
    "subject",
    "issuer",
    "act",
    "client_id",
    "scope",
];

/// Refuses custom claims that use a reserved name.
pub fn check_custom_claims(claims: &Map<String, Value>) -> Result<()> {
    match claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        Some(name) => Err(Error::Mint(format!(
            "custom claim {name:?} is reserved; reserved names are {}",
            RESERVED_CLAIMS.join(" ")
        ))),
        None => Ok(()),
    }
}

/// What to mint.
#[derive(Clone, Copy, Debug)]
pub struct MintRequest<'a> {
    /// `sub`: the service subject, or the user acted for.
    pub subject: &'a str,
    /// `aud`: one audience name.
    pub audience: &'a str,
    /// Lifetime: `exp` = `iat` + ttl (whole seconds, at least 1).
    pub ttl: Duration,
    /// `client_id`, when minted for an OAuth client.
    pub client_id: Option<&'a str>,
    /// `scope`, space-separated; omitted when `None` or empty.
    pub scope: Option<&'a str>,
    /// `act.sub`: the service acting on behalf of `subject`.
    pub actor: Option<&'a str>,
    /// The `act` of the token being exchanged, nested under the new actor (RFC 8693 section
    /// 4.1: the chain of delegation, newest first). Ignored without `actor`.
    pub prior_actor: Option<&'a Value>,
    /// Custom claims (reserved names refused).
    pub claims: Option<&'a Map<String, Value>>,
}

/// A signed token and the facts worth logging about it (never log `token`).
#[derive(Clone, Debug)]
pub struct Minted {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// The `kid` of the key that signed it.
    pub kid: String,
    /// `iat`, seconds since the epoch.
    pub issued_at: u64,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

impl Minted {
    /// Seconds from issue to expiry (the OAuth `expires_in`).
    pub fn expires_in(&self) -> u64 {
        self.expires_at - self.issued_at
    }
}

#[derive(Serialize)]
struct Act<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a Value>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<Act<'a>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    claims: Option<&'a Map<String, Value>>,
}

/// Signs tokens for one issuer with whatever key is active.
///
/// Cheap to clone. The active key is read through an [`ArcSwap`], so minting takes no lock
/// and rotation swaps keys under running requests.
#[derive(Clone)]
pub struct Minter {
    issuer: Arc<str>,
    key: Arc<ArcSwap<SigningKey>>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
}

impl Minter {
    /// A minter for `issuer` (used exactly as given in `iss`) signing with `key`.
    pub fn new(issuer: &str, key: Arc<ArcSwap<SigningKey>>, clock: Arc<dyn Clock>) -> Minter {
        Minter {
            issuer: issuer.into(),
            key,
            clock,
            rng: SystemRandom::new(),
        }
    }

    /// A minter with one fixed key (for processes that sign their own tokens).
    pub fn with_key(issuer: &str, key: SigningKey, clock: Arc<dyn Clock>) -> Minter {
        Self::new(issuer, Arc::new(ArcSwap::from_pointee(key)), clock)
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key that signs right now.
    pub fn active_key(&self) -> Arc<SigningKey> {
        self.key.load_full()
    }

    /// Signs a token.
    pub fn mint(&self, req: &MintRequest<'_>) -> Result<Minted> {
        let ttl = req.ttl.as_secs();
        if ttl == 0 {
            return Err(Error::Mint(
                "the lifetime must be at least one second".into(),
            ));
        }
        if req.subject.is_empty() || req.audience.is_empty() {
            return Err(Error::Mint("sub and aud must not be empty".into()));
        }
        if let Some(claims) = req.claims {
            check_custom_claims(claims)?;
        }
        let mut jti_bytes = [0u8; 16];
        self.rng.fill(&mut jti_bytes)?;
        let mut jti_buf = [0u8; 22];
        let jti_len = URL_SAFE_NO_PAD
            .encode_slice(jti_bytes, &mut jti_buf)
            .map_err(|_| Error::Mint("jti encoding".into()))?;
        let jti = std::str::from_utf8(&jti_buf[..jti_len]).unwrap_or_default();
        let now = self.clock.unix_secs();
        let claims = Claims {
            iss: &self.issuer,
            sub: req.subject,
            aud: req.audience,
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti,
            client_id: req.client_id,
            scope: req.scope.filter(|s| !s.is_empty()),
            act: req.actor.map(|sub| Act {
                sub,
                act: req.prior_actor,
            }),
            claims: req.claims.filter(|c| !c.is_empty()),
        };
        let key = self.key.load();
        let token = key.sign_jwt(&claims)?;
        Ok(Minted {
            token,
            jti: jti.to_owned(),
            kid: key.kid().to_owned(),
            issued_at: now,
            expires_at: now + ttl,
        })
    }
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("kid", &self.key.load().kid())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockClock;
    use serde_json::json;
    use svctoken_jwks::{Algorithm, Jwks, Validation, Verifier};

    #[test]
    fn mints_the_designed_claims() {
        let clock = Arc::new(MockClock::at_unix(1_800_000_000));
        let key = SigningKey::generate(Algorithm::ES256).expect("key");
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        let minter = Minter::with_key("https://auth.test", key, clock.clone());
        let extra = json!({"team": "payments", "svc": {"tier": 2}});
        let minted = minter
            .mint(&MintRequest {
                subject: "user:42",
                audience: "convex",
                ttl: Duration::from_secs(300),
                client_id: Some("billing"),
                scope: Some("a b"),
                actor: Some("svc:billing"),
                prior_actor: None,
                claims: extra.as_object(),
            })
            .expect("mint");
        let verifier = Verifier::new(&jwks, Validation::new("https://auth.test", "convex"));
        let claims = verifier.verify(&minted.token, clock.now()).expect("valid");
        assert_eq!(claims["sub"], "user:42");
        assert_eq!(claims["aud"], "convex");
        assert_eq!(claims["iat"], 1_800_000_000u64);
        assert_eq!(claims["nbf"], 1_800_000_000u64);
        assert_eq!(claims["exp"], 1_800_000_300u64);
        assert_eq!(claims["client_id"], "billing");
        assert_eq!(claims["scope"], "a b");
        assert_eq!(claims["act"], json!({"sub": "svc:billing"}));
        assert_eq!(claims["team"], "payments");
        assert_eq!(claims["svc"], json!({"tier": 2}));
        assert_eq!(claims["jti"].as_str().map(str::len), Some(22), "128 bits");
        assert_eq!(minted.expires_in(), 300);
        let (header, _) =
            svctoken_jwks::dangerous::decode_unverified(&minted.token).expect("decodes");
        assert_eq!(
            header,
            json!({"alg":"ES256","typ":"JWT","kid": minted.kid})
                .as_object()
                .cloned()
                .expect("obj")
        );
    }

    #[test]
    fn refuses_reserved_claims_and_zero_lifetimes() {
        let clock = Arc::new(MockClock::at_unix(1_800_000_000));
        let key = SigningKey::generate(Algorithm::EdDSA).expect("key");
        let minter = Minter::with_key("https://auth.test", key, clock);
        fn req(claims: Option<&Map<String, Value>>, ttl: u64) -> MintRequest<'_> {
            MintRequest {
                subject: "svc:a",
                audience: "convex",
                ttl: Duration::from_secs(ttl),
                client_id: None,
                scope: None,
                actor: None,
                prior_actor: None,
                claims,
            }
        }
        for name in RESERVED_CLAIMS {
            let mut extra = Map::new();
            extra.insert(name.into(), json!("x"));
            assert!(minter.mint(&req(Some(&extra), 60)).is_err(), "{name}");
        }
        assert!(minter.mint(&req(None, 0)).is_err());
        let a = minter.mint(&req(None, 60)).expect("mint");
        let b = minter.mint(&req(None, 60)).expect("mint");
        assert_ne!(a.jti, b.jti);
    }
}
