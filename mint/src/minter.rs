//! The `Minter`: turns a request into a signed service JWT with the active key.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use serde_json::{Map, Value};
use svctoken_jwks::{Algorithm, SigningKey};

use crate::{AccessToken, Actor, Clock, Error, IssuerUrl, Result, check_custom_claims};

/// The lifetime of a token when the request names none: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// What to mint. Build it with [`MintRequest::new`] and the setters.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct MintRequest<'a> {
    /// `sub`: the service subject, or the user acted for.
    pub subject: &'a str,
    /// `aud`: one audience name.
    pub audience: &'a str,
    /// Lifetime: `exp` = `iat` + ttl (whole seconds, at least 1). Default [`DEFAULT_TTL`].
    pub ttl: Duration,
    /// `client_id`, when minted for an OAuth client. Default none.
    pub client_id: Option<&'a str>,
    /// `scope`, space-separated; omitted when `None` or empty. Default none.
    pub scope: Option<&'a str>,
    /// `act`: the service acting on behalf of `subject`, and the chain it acts within.
    /// Default none.
    pub actor: Option<&'a Actor>,
    /// Custom claims (reserved names refused). Default none.
    pub claims: Option<&'a Map<String, Value>>,
    /// The algorithms the audience verifies; the key that signs is checked against them under
    /// the same load that signs. Empty (the default) allows any.
    pub algorithms: &'a [Algorithm],
}

impl<'a> MintRequest<'a> {
    /// A token for `subject` and `audience`, with the defaults above.
    pub fn new(subject: &'a str, audience: &'a str) -> Self {
        MintRequest {
            subject,
            audience,
            ttl: DEFAULT_TTL,
            client_id: None,
            scope: None,
            actor: None,
            claims: None,
            algorithms: &[],
        }
    }

    /// Sets the lifetime.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets `client_id`.
    pub fn client_id(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets `scope`.
    pub fn scope(mut self, scope: Option<&'a str>) -> Self {
        self.scope = scope;
        self
    }

    /// Sets `act`.
    pub fn actor(mut self, actor: Option<&'a Actor>) -> Self {
        self.actor = actor;
        self
    }

    /// Sets the custom claims.
    pub fn claims(mut self, claims: &'a Map<String, Value>) -> Self {
        self.claims = Some(claims);
        self
    }

    /// Restricts the signing algorithm to `algorithms`.
    pub fn algorithms(mut self, algorithms: &'a [Algorithm]) -> Self {
        self.algorithms = algorithms;
        self
    }
}

/// A signed token and the facts worth logging about it (log `jti` and `kid`, never `token`).
#[derive(Clone)]
pub struct Minted {
    /// The compact JWS.
    pub token: AccessToken,
    /// Its `jti`.
    pub jti: String,
    /// The `kid` of the key that signed it.
    pub kid: String,
    /// The algorithm it was signed with.
    pub alg: Algorithm,
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

impl fmt::Debug for Minted {
    /// The facts worth logging: `jti`, `kid`, algorithm and times; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Minted {{ jti: {}, kid: {}, alg: {}, iat: {}, exp: {} }}",
            self.jti, self.kid, self.alg, self.issued_at, self.expires_at
        )
    }
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
    act: Option<&'a Actor>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    claims: Option<&'a Map<String, Value>>,
}

/// Signs tokens for one issuer with whatever key is active.
///
/// Cheap to clone. The active key is read through an [`ArcSwap`], so minting takes no lock
/// and rotation swaps keys under running requests.
#[derive(Clone)]
pub struct Minter {
    issuer: IssuerUrl,
    key: Arc<ArcSwap<SigningKey>>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    jtis: Arc<Mutex<JtiPool>>,
}

/// Random bytes for `jti`s, drawn from the system [`JTI_POOL`] bytes at a time rather than
/// with one system call per token. Each byte is handed out once.
struct JtiPool {
    bytes: [u8; JTI_POOL],
    used: usize,
}

/// Bytes of a `jti`: 128 random bits.
const JTI_BYTES: usize = 16;
/// Bytes drawn from the system at once for `jti`s: 64 of them.
const JTI_POOL: usize = 64 * JTI_BYTES;

impl JtiPool {
    fn empty() -> Self {
        JtiPool {
            bytes: [0; JTI_POOL],
            used: JTI_POOL,
        }
    }

    /// The next `jti`'s random bytes, refilling the pool from `rng` when it is spent.
    fn take(&mut self, rng: &SystemRandom) -> Result<[u8; JTI_BYTES]> {
        if self.used + JTI_BYTES > JTI_POOL {
            rng.fill(&mut self.bytes)?;
            self.used = 0;
        }
        let mut out = [0; JTI_BYTES];
        if let Some(next) = self.bytes.get_mut(self.used..self.used + JTI_BYTES) {
            out.copy_from_slice(next);
            next.fill(0);
        }
        self.used += JTI_BYTES;
        Ok(out)
    }
}

impl Minter {
    /// A minter for `issuer` (used exactly as given in `iss`) signing with the key `key`
    /// holds at each mint.
    pub fn new(issuer: IssuerUrl, key: Arc<ArcSwap<SigningKey>>, clock: Arc<dyn Clock>) -> Minter {
        Minter {
            issuer,
            key,
            clock,
            rng: SystemRandom::new(),
            jtis: Arc::new(Mutex::new(JtiPool::empty())),
        }
    }

    /// A minter with one fixed key (for processes that sign their own tokens).
    pub fn with_key(issuer: IssuerUrl, key: SigningKey, clock: Arc<dyn Clock>) -> Minter {
        Self::new(issuer, Arc::new(ArcSwap::from_pointee(key)), clock)
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &IssuerUrl {
        &self.issuer
    }

    /// The key that signs right now.
    pub fn active_key(&self) -> Arc<SigningKey> {
        self.key.load_full()
    }

    /// True when the active key lives outside the process (an HSM): a mint then waits on the
    /// device.
    pub fn signs_externally(&self) -> bool {
        self.key.load().is_external()
    }

    /// Signs a token: one load of the active key, its algorithm checked against
    /// `req.algorithms`, one signature.
    pub fn mint(&self, req: &MintRequest<'_>) -> Result<Minted> {
        let ttl = req.ttl.as_secs();
        if ttl == 0 {
            return Err(Error::ZeroLifetime);
        }
        if req.subject.is_empty() || req.audience.is_empty() {
            return Err(Error::EmptySubjectOrAudience);
        }
        if let Some(claims) = req.claims {
            check_custom_claims(claims)?;
        }
        let key = self.key.load();
        if !req.algorithms.is_empty() && !req.algorithms.contains(&key.algorithm()) {
            return Err(Error::AlgorithmNotAllowed(key.algorithm()));
        }
        let jti_bytes = (self.jtis.lock())
            .unwrap_or_else(PoisonError::into_inner)
            .take(&self.rng)?;
        let jti = URL_SAFE_NO_PAD.encode(jti_bytes);
        let now = self.clock.unix_secs();
        let claims = Claims {
            iss: self.issuer.as_str(),
            sub: req.subject,
            aud: req.audience,
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: &jti,
            client_id: req.client_id,
            scope: req.scope.filter(|s| !s.is_empty()),
            act: req.actor,
            claims: req.claims.filter(|c| !c.is_empty()),
        };
        let token = key.sign_jwt(&claims)?;
        Ok(Minted {
            token: AccessToken::new(token),
            jti,
            kid: key.kid().to_owned(),
            alg: key.algorithm(),
            issued_at: now,
            expires_at: now + ttl,
        })
    }
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("kid", &self.key.load().kid())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MockClock, RESERVED_CLAIMS};
    use serde_json::json;
    use svctoken_jwks::{Jwks, Validation, Verifier};

    fn issuer() -> IssuerUrl {
        IssuerUrl::parse("https://auth.test").expect("valid")
    }

    /// A minter with a fresh `alg` key at a fixed time, the JWKS to verify it, and its clock.
    fn minter_at(alg: Algorithm) -> (Minter, Jwks, Arc<MockClock>) {
        let clock = Arc::new(MockClock::at_unix(1_800_000_000));
        let key = SigningKey::generate(alg).expect("key");
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        (Minter::with_key(issuer(), key, clock.clone()), jwks, clock)
    }

    #[test]
    fn jtis_are_never_repeated_across_pool_refills() {
        let (rng, mut pool) = (SystemRandom::new(), JtiPool::empty());
        let taken: std::collections::HashSet<[u8; JTI_BYTES]> = (0..5 * JTI_POOL / JTI_BYTES)
            .map(|_| pool.take(&rng).expect("random"))
            .collect();
        assert_eq!(taken.len(), 5 * JTI_POOL / JTI_BYTES);
        assert!(!taken.contains(&[0; JTI_BYTES]));
    }

    #[test]
    fn mints_the_designed_claims() {
        let (minter, jwks, clock) = minter_at(Algorithm::ES256);
        let extra = json!({"team": "payments", "svc": {"tier": 2}});
        let actor = Actor::new("svc:billing");
        let minted = minter
            .mint(
                &MintRequest::new("user:42", "convex")
                    .client_id("billing")
                    .scope(Some("a b"))
                    .actor(Some(&actor))
                    .claims(extra.as_object().expect("object")),
            )
            .expect("mint");
        let verifier = Verifier::new(&jwks, Validation::new("https://auth.test", "convex"));
        let claims = verifier
            .verify(minted.token.secret(), clock.now())
            .expect("valid");
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
        assert_eq!(minted.alg, Algorithm::ES256);
        let (header, _) =
            svctoken_jwks::dangerous::decode_unverified(minted.token.secret()).expect("decodes");
        assert_eq!(
            header,
            json!({"alg":"ES256","typ":"JWT","kid": minted.kid})
                .as_object()
                .cloned()
                .expect("obj")
        );
        assert!(!format!("{minted:?}").contains(minted.token.secret()));
    }

    #[test]
    fn refuses_reserved_claims_zero_lifetimes_and_foreign_algorithms() {
        let clock = Arc::new(MockClock::at_unix(1_800_000_000));
        let key = SigningKey::generate(Algorithm::EdDSA).expect("key");
        let minter = Minter::with_key(issuer(), key, clock);
        let req = MintRequest::new("svc:a", "convex").ttl(Duration::from_secs(60));
        for name in RESERVED_CLAIMS {
            let mut extra = Map::new();
            extra.insert(name.into(), json!("x"));
            assert!(
                matches!(minter.mint(&req.claims(&extra)), Err(Error::ReservedClaim(n)) if n == name),
                "{name}"
            );
        }
        assert!(matches!(
            minter.mint(&req.ttl(Duration::ZERO)),
            Err(Error::ZeroLifetime)
        ));
        assert!(matches!(
            minter.mint(&req.algorithms(&[Algorithm::ES256, Algorithm::RS256])),
            Err(Error::AlgorithmNotAllowed(Algorithm::EdDSA))
        ));
        assert!(minter.mint(&req.algorithms(&[Algorithm::EdDSA])).is_ok());
        let a = minter.mint(&req).expect("mint");
        let b = minter.mint(&req).expect("mint");
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn standard_claims_are_minted_only_with_their_oidc_types() {
        let (minter, jwks, clock) = minter_at(Algorithm::EdDSA);
        let req = MintRequest::new("svc:a", "convex");
        for (name, value) in crate::oidc::mistyped_examples() {
            let mut extra = Map::new();
            extra.insert(name.into(), value);
            assert!(
                matches!(minter.mint(&req.claims(&extra)), Err(Error::StandardClaim { claim, .. }) if claim == name),
                "{name}"
            );
        }
        let typed = json!({
            "email": "ada@example.com", "email_verified": true, "name": "Ada",
            "address": {"formatted": "1 Main St"}, "updated_at": 1_700_000_000, "amr": ["pwd"],
        });
        let minted = minter
            .mint(&req.claims(typed.as_object().expect("object")))
            .expect("typed standard claims are minted");
        let claims = Verifier::new(&jwks, Validation::new("https://auth.test", "convex"))
            .verify(minted.token.secret(), clock.now())
            .expect("valid");
        for (name, value) in typed.as_object().expect("object") {
            assert_eq!(&claims[name], value, "{name}");
        }
    }
}
