//! A Convex-faithful JWT verifier, independent of the code under test.
//!
//! This module re-implements, from scratch, the rules the Convex backend applies
//! to a bearer JWT, so the end-to-end tests can prove that tokens minted by the
//! issuer would be accepted by Convex. It deliberately shares no code with any
//! svctoken crate.
//!
//! Two provider types are modelled:
//!
//! * [`Provider::CustomJwt`]: a pinned algorithm (RS256 or ES256), a JWKS given
//!   as an http(s) URL or a `data:` URI, an optional application id (`aud`).
//! * [`Provider::Oidc`]: OpenID Connect discovery from the token's `iss`,
//!   RS256 or EdDSA, `aud` must contain the application id; the payload must
//!   parse as an OpenID Connect ID token ([`parse_id_token`]: every standard
//!   claim typed).
//!
//! The [`Identity`] each builds (customJwt: claims flattened to dotted names;
//! OIDC: standard claims as typed camelCase fields, other claims as they are)
//! comes from [`custom_jwt_fields`] and [`parse_id_token`].
//!
//! All HTTP traffic (JWKS and discovery documents) goes through one cache per
//! [`ConvexAuth`] (clones share it) that obeys `Cache-Control` / `Expires`
//! against the injected clock, so tests can move a mock clock forward and see
//! cached documents expire exactly as they would in production.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value};

mod identity;

pub use identity::{IdTokenClaims, custom_jwt_fields, parse_id_token};

/// The clock used for every time decision (token lifetimes and cache freshness).
pub type Now = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Clock skew, in seconds, that Convex allows on `exp`, `nbf` and `iat` for
/// `customJwt` providers. OIDC providers get no leeway on `exp`.
pub const CUSTOM_JWT_LEEWAY_SECS: i64 = 5;

/// Timeout of every HTTP request (JWKS and discovery).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Claims that never become identity fields.
const REGISTERED_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Discovery statuses that Convex passes back to the client unchanged.
const DISCOVERY_PASSTHROUGH_STATUSES: [u16; 6] = [401, 403, 404, 421, 425, 429];

/// The signing algorithm pinned by a `customJwt` provider.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomJwtAlgorithm {
    /// ECDSA P-256 with SHA-256, raw `r || s` signatures.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192 bit moduli.
    RS256,
}

impl CustomJwtAlgorithm {
    /// The JOSE `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            CustomJwtAlgorithm::ES256 => "ES256",
            CustomJwtAlgorithm::RS256 => "RS256",
        }
    }
}

/// One entry of Convex's `auth.config.ts` `providers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// `{ type: "customJwt", issuer, jwks, algorithm, applicationID? }`.
    CustomJwt {
        /// The expected issuer; must be an http(s) URL, compared after trimming trailing `/`.
        issuer: String,
        /// JWKS location: an http(s) URL or a `data:` URI holding the JWKS.
        jwks: String,
        /// The only algorithm accepted.
        algorithm: CustomJwtAlgorithm,
        /// When set, `aud` is required and must contain it.
        application_id: Option<String>,
    },
    /// `{ domain, applicationID }`: an OpenID Connect provider found by discovery.
    Oidc {
        /// The issuer domain, compared with the token's `iss` after trimming trailing `/`.
        domain: String,
        /// Must be the token's (single) audience.
        application_id: String,
    },
}

/// What a Convex function sees as `ctx.auth.getUserIdentity()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `"<iss>|<sub>"`, using the raw `iss` from the token.
    pub token_identifier: String,
    /// The `sub` claim.
    pub subject: String,
    /// The raw `iss` claim.
    pub issuer: String,
    /// Every other identity field (flattened custom claims, or OIDC standard
    /// claims in camelCase plus pass-through claims).
    pub fields: Map<String, Value>,
}

/// The specific reason a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Not three base64url segments, or header/payload is not a JSON object,
    /// or a header parameter has the wrong JSON type.
    Malformed,
    /// No provider's issuer matches the token's `iss`.
    NoAuthProvider,
    /// A provider's issuer matches but its application id is not in `aud`.
    WrongAudience,
    /// OIDC: `aud` is an array with more than one entry.
    MultipleAudiences,
    /// OIDC: the discovery document's `issuer` differs from the token's `iss`.
    IssuerMismatch,
    /// A required claim is absent.
    MissingClaim(&'static str),
    /// A claim has the wrong JSON type (e.g. a non-integer `exp`).
    InvalidClaim(&'static str),
    /// OIDC: the payload does not parse as an OpenID Connect ID token because of this claim
    /// (a standard claim of the wrong JSON type, a language tag on a claim that takes none,
    /// or a claim given twice).
    IdTokenClaim(String),
    /// `exp` has passed (beyond the leeway, for `customJwt`).
    Expired,
    /// `nbf` is more than the leeway in the future.
    NotYetValid,
    /// `iat` is more than the leeway in the future.
    IatInFuture,
    /// The `typ` header is not acceptable for the provider type.
    BadTyp,
    /// `alg` (header or JWK) differs from the provider's pinned algorithm, or
    /// the key's type cannot produce it.
    AlgorithmMismatch,
    /// OIDC: `alg` is neither RS256 nor EdDSA.
    UnsupportedAlgorithm,
    /// `customJwt`: the header has no `kid`.
    KidMissing,
    /// No key in the JWKS fits the token's `kid` (and algorithm).
    KeyNotFound,
    /// OIDC: no `kid` and more than one usable key.
    AmbiguousKey,
    /// The selected key is unusable (e.g. RSA modulus outside 2048..=8192 bits).
    InvalidKey,
    /// The signature does not verify.
    BadSignature,
    /// The JWKS could not be fetched (network, status, content type, bad `data:` URI).
    JwksFetch,
    /// The JWKS is not valid JSON, has no `keys`, or (customJwt) holds a key of
    /// an unsupported type.
    JwksParse,
    /// OIDC discovery failed; carries the HTTP status Convex answers with.
    DiscoveryFailed(u16),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Malformed => f.write_str("malformed token"),
            Reason::NoAuthProvider => f.write_str("no auth provider matches the token issuer"),
            Reason::WrongAudience => f.write_str("wrong audience"),
            Reason::MultipleAudiences => f.write_str("multiple audiences"),
            Reason::IssuerMismatch => f.write_str("issuer mismatch"),
            Reason::MissingClaim(c) => write!(f, "missing claim `{c}`"),
            Reason::InvalidClaim(c) => write!(f, "invalid claim `{c}`"),
            Reason::IdTokenClaim(c) => write!(f, "not an OIDC ID token: claim `{c}`"),
            Reason::Expired => f.write_str("expired"),
            Reason::NotYetValid => f.write_str("not yet valid (nbf)"),
            Reason::IatInFuture => f.write_str("issued in the future (iat)"),
            Reason::BadTyp => f.write_str("bad typ"),
            Reason::AlgorithmMismatch => f.write_str("algorithm mismatch"),
            Reason::UnsupportedAlgorithm => f.write_str("unsupported algorithm"),
            Reason::KidMissing => f.write_str("KidMissing"),
            Reason::KeyNotFound => f.write_str("KeyNotFound"),
            Reason::AmbiguousKey => f.write_str("AmbiguousKey"),
            Reason::InvalidKey => f.write_str("invalid key"),
            Reason::BadSignature => f.write_str("bad signature"),
            Reason::JwksFetch => f.write_str("Could not fetch JWKS"),
            Reason::JwksParse => f.write_str("Could not parse JWKS"),
            Reason::DiscoveryFailed(status) => write!(f, "OIDC discovery failed (HTTP {status})"),
        }
    }
}

/// A rejection, shaped like Convex's error answer
/// (`{"code": ..., "message": ...}` with an HTTP status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvexAuthError {
    status: u16,
    code: &'static str,
    reason: Reason,
    message: String,
}

impl ConvexAuthError {
    fn new(status: u16, code: &'static str, reason: Reason, detail: impl fmt::Display) -> Self {
        let message = format!("{reason}: {detail}");
        Self {
            status,
            code,
            reason,
            message,
        }
    }

    /// 401 `InvalidAuthHeader`: the token itself is unacceptable.
    fn invalid(reason: Reason, detail: impl fmt::Display) -> Self {
        Self::new(401, "InvalidAuthHeader", reason, detail)
    }

    /// 401 `NoAuthProvider`: no configured provider matches the token.
    fn no_provider(reason: Reason, detail: impl fmt::Display) -> Self {
        Self::new(401, "NoAuthProvider", reason, detail)
    }

    /// `AuthProviderDiscoveryFailed` with the given status (400, or a passed-through one).
    fn discovery(status: u16, reason: Reason, detail: impl fmt::Display) -> Self {
        Self::new(status, "AuthProviderDiscoveryFailed", reason, detail)
    }

    /// The HTTP status Convex would answer with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Convex's error code: `InvalidAuthHeader`, `NoAuthProvider` or
    /// `AuthProviderDiscoveryFailed`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The specific reason, for assertions.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The human-readable message (starts with the reason's text).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConvexAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ConvexAuthError {}

/// The verifier: configured providers, a shared HTTP cache and a clock.
#[derive(Clone)]
pub struct ConvexAuth {
    providers: Vec<Provider>,
    http: Arc<HttpCache>,
    now: Now,
}

impl fmt::Debug for ConvexAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvexAuth")
            .field("providers", &self.providers)
            .field("fetch_count", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl ConvexAuth {
    /// A verifier using the real system clock.
    pub fn new(providers: Vec<Provider>) -> Self {
        Self::with_clock(providers, Arc::new(SystemTime::now))
    }

    /// A verifier using an injected clock for token times and cache freshness.
    pub fn with_clock(providers: Vec<Provider>, now: Now) -> Self {
        Self {
            providers,
            http: Arc::new(HttpCache::new()),
            now,
        }
    }

    /// The configured providers, in selection order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Number of HTTP requests actually sent (JWKS and discovery, including
    /// conditional revalidations and failed attempts; a followed redirect
    /// counts once).
    pub fn fetch_count(&self) -> usize {
        self.http.fetches.load(Ordering::SeqCst)
    }

    /// Forget every cached HTTP response.
    pub fn clear_cache(&self) {
        lock(&self.http.entries).clear();
    }

    /// Verify a bearer token the way Convex does, returning the identity a
    /// Convex function would see.
    pub async fn verify(&self, token: &str) -> Result<Identity, ConvexAuthError> {
        let token = ParsedToken::parse(token)?;
        match self.select_provider(&token)? {
            Provider::CustomJwt {
                jwks,
                algorithm,
                application_id,
                ..
            } => {
                self.verify_custom_jwt(&token, jwks, *algorithm, application_id.as_deref())
                    .await
            }
            Provider::Oidc { application_id, .. } => self.verify_oidc(&token, application_id).await,
        }
    }

    fn now(&self) -> SystemTime {
        (self.now)()
    }

    fn now_secs(&self) -> i64 {
        unix_secs(self.now())
    }

    /// First provider whose issuer matches and, if it has an application id,
    /// whose application id is in `aud` (payload decoded without verification).
    fn select_provider(&self, token: &ParsedToken) -> Result<&Provider, ConvexAuthError> {
        let iss = token.iss()?;
        let audiences = claim_audiences(&token.payload)?;
        let mut issuer_matched = false;
        for provider in &self.providers {
            let (configured, application_id) = match provider {
                Provider::CustomJwt {
                    issuer,
                    application_id,
                    ..
                } => {
                    if !is_http_url(issuer) {
                        // Convex refuses such a config at deploy time; it never matches here.
                        continue;
                    }
                    (issuer.as_str(), application_id.as_deref())
                }
                Provider::Oidc {
                    domain,
                    application_id,
                } => (domain.as_str(), Some(application_id.as_str())),
            };
            if !issuers_match(configured, iss) {
                continue;
            }
            issuer_matched = true;
            match application_id {
                None => return Ok(provider),
                Some(id) => {
                    if audiences.as_ref().is_some_and(|a| a.contains(&id)) {
                        return Ok(provider);
                    }
                }
            }
        }
        if !issuer_matched {
            Err(ConvexAuthError::no_provider(
                Reason::NoAuthProvider,
                format!("no configured provider has issuer {iss:?}"),
            ))
        } else if audiences.is_none() {
            Err(ConvexAuthError::no_provider(
                Reason::MissingClaim("aud"),
                "a provider matches the issuer but requires an audience and the token has no `aud`",
            ))
        } else {
            Err(ConvexAuthError::no_provider(
                Reason::WrongAudience,
                format!("no provider with issuer {iss:?} has an applicationID in `aud`"),
            ))
        }
    }

    async fn verify_custom_jwt(
        &self,
        token: &ParsedToken,
        jwks_location: &str,
        algorithm: CustomJwtAlgorithm,
        application_id: Option<&str>,
    ) -> Result<Identity, ConvexAuthError> {
        let typ = token.header_str("typ")?;
        if typ != Some("JWT") {
            return Err(ConvexAuthError::invalid(
                Reason::BadTyp,
                format!("customJwt requires typ \"JWT\", got {typ:?}"),
            ));
        }
        let alg = token.alg()?;
        if alg != algorithm.as_str() {
            return Err(ConvexAuthError::invalid(
                Reason::AlgorithmMismatch,
                format!(
                    "token alg {alg:?}, provider algorithm {}",
                    algorithm.as_str()
                ),
            ));
        }
        let Some(kid) = token.header_str("kid")? else {
            return Err(ConvexAuthError::invalid(
                Reason::KidMissing,
                "the token header has no `kid`",
            ));
        };

        let body = self.load_custom_jwks(jwks_location).await?;
        let keys =
            parse_custom_jwks(&body).map_err(|e| ConvexAuthError::invalid(Reason::JwksParse, e))?;
        let Some(key) = keys.iter().find(|k| k.kid.as_deref() == Some(kid)) else {
            return Err(ConvexAuthError::invalid(
                Reason::KeyNotFound,
                format!("no key with kid {kid:?} in the JWKS"),
            ));
        };
        if let Some(key_alg) = key.alg.as_deref()
            && key_alg != algorithm.as_str()
        {
            return Err(ConvexAuthError::invalid(
                Reason::AlgorithmMismatch,
                format!(
                    "JWK alg {key_alg:?}, provider algorithm {}",
                    algorithm.as_str()
                ),
            ));
        }
        verify_signature(&key.material, algorithm.as_str(), token)?;

        let iss = token.iss()?;
        let sub = required_str(&token.payload, "sub")?;
        let now = self.now_secs();
        let exp = required_int(&token.payload, "exp")?;
        if now > exp.saturating_add(CUSTOM_JWT_LEEWAY_SECS) {
            return Err(ConvexAuthError::invalid(
                Reason::Expired,
                format!("exp {exp} is more than {CUSTOM_JWT_LEEWAY_SECS}s before now {now}"),
            ));
        }
        if let Some(nbf) = optional_int(&token.payload, "nbf")?
            && nbf > now.saturating_add(CUSTOM_JWT_LEEWAY_SECS)
        {
            return Err(ConvexAuthError::invalid(
                Reason::NotYetValid,
                format!("nbf {nbf} is more than {CUSTOM_JWT_LEEWAY_SECS}s after now {now}"),
            ));
        }
        if let Some(iat) = optional_int(&token.payload, "iat")?
            && iat > now.saturating_add(CUSTOM_JWT_LEEWAY_SECS)
        {
            return Err(ConvexAuthError::invalid(
                Reason::IatInFuture,
                format!("iat {iat} is more than {CUSTOM_JWT_LEEWAY_SECS}s after now {now}"),
            ));
        }
        if let Some(id) = application_id {
            let audiences = claim_audiences(&token.payload)?;
            if !audiences.is_some_and(|a| a.contains(&id)) {
                return Err(ConvexAuthError::invalid(
                    Reason::WrongAudience,
                    format!("`aud` does not contain {id:?}"),
                ));
            }
        }

        Ok(Identity {
            token_identifier: format!("{iss}|{sub}"),
            subject: sub.to_owned(),
            issuer: iss.to_owned(),
            fields: custom_jwt_fields(&token.payload),
        })
    }

    async fn load_custom_jwks(&self, location: &str) -> Result<Vec<u8>, ConvexAuthError> {
        if has_scheme(location, "data:") {
            return parse_data_uri(location)
                .ok_or_else(|| ConvexAuthError::invalid(Reason::JwksFetch, "malformed data: URI"));
        }
        self.fetch_jwks(location)
            .await
            .map_err(|e| ConvexAuthError::invalid(Reason::JwksFetch, e))
    }

    /// GET a JWKS through the cache: 200 and a JWKS content type required.
    async fn fetch_jwks(&self, url: &str) -> Result<Vec<u8>, String> {
        if !is_http_url(url) {
            return Err(format!("{url:?} is not an http(s) URL"));
        }
        let response = self.http.get(url, self.now()).await?;
        if response.status != 200 {
            return Err(format!("GET {url} answered {}", response.status));
        }
        if !content_type_ok(
            &response.headers,
            &["application/json", "application/jwk-set+json"],
        ) {
            return Err(format!(
                "GET {url} answered Content-Type {:?}",
                header(&response.headers, "content-type")
            ));
        }
        Ok(response.body)
    }

    async fn verify_oidc(
        &self,
        token: &ParsedToken,
        application_id: &str,
    ) -> Result<Identity, ConvexAuthError> {
        let typ = token.header_str("typ")?;
        if !matches!(typ, None | Some("JWT") | Some("application/jose")) {
            return Err(ConvexAuthError::invalid(
                Reason::BadTyp,
                format!("OIDC accepts no typ, \"JWT\" or \"application/jose\", got {typ:?}"),
            ));
        }
        let alg = token.alg()?;
        if alg != "RS256" && alg != "EdDSA" {
            return Err(ConvexAuthError::invalid(
                Reason::UnsupportedAlgorithm,
                format!("OIDC accepts RS256 and EdDSA, got {alg:?}"),
            ));
        }
        let kid = token.header_str("kid")?;
        let iss = token.iss()?;

        // Discovery.
        let discovery_url = if iss.ends_with('/') {
            format!("{iss}.well-known/openid-configuration")
        } else {
            format!("{iss}/.well-known/openid-configuration")
        };
        if !is_http_url(iss) {
            return Err(ConvexAuthError::discovery(
                400,
                Reason::DiscoveryFailed(400),
                format!("issuer {iss:?} is not an http(s) URL"),
            ));
        }
        let response = self
            .http
            .get(&discovery_url, self.now())
            .await
            .map_err(|e| ConvexAuthError::discovery(400, Reason::DiscoveryFailed(400), e))?;
        if response.status != 200 {
            let status = if DISCOVERY_PASSTHROUGH_STATUSES.contains(&response.status) {
                response.status
            } else {
                400
            };
            return Err(ConvexAuthError::discovery(
                status,
                Reason::DiscoveryFailed(status),
                format!("GET {discovery_url} answered {}", response.status),
            ));
        }
        if !content_type_ok(&response.headers, &["application/json"]) {
            return Err(ConvexAuthError::discovery(
                400,
                Reason::DiscoveryFailed(400),
                format!(
                    "GET {discovery_url} answered Content-Type {:?}",
                    header(&response.headers, "content-type")
                ),
            ));
        }
        let document: Value = serde_json::from_slice(&response.body).map_err(|e| {
            ConvexAuthError::discovery(
                400,
                Reason::DiscoveryFailed(400),
                format!("discovery document is not JSON: {e}"),
            )
        })?;
        let (Some(doc_issuer), Some(jwks_uri)) = (
            document.get("issuer").and_then(Value::as_str),
            document.get("jwks_uri").and_then(Value::as_str),
        ) else {
            return Err(ConvexAuthError::discovery(
                400,
                Reason::DiscoveryFailed(400),
                "discovery document lacks a string `issuer` or `jwks_uri`",
            ));
        };
        if doc_issuer != iss {
            return Err(ConvexAuthError::discovery(
                400,
                Reason::IssuerMismatch,
                format!("discovery issuer {doc_issuer:?} differs from token iss {iss:?}"),
            ));
        }

        // Keys.
        let body = self
            .fetch_jwks(jwks_uri)
            .await
            .map_err(|e| ConvexAuthError::discovery(400, Reason::JwksFetch, e))?;
        let keys = parse_oidc_jwks(&body)
            .map_err(|e| ConvexAuthError::discovery(400, Reason::JwksParse, e))?;
        // The token is parsed as an ID token before its signature is checked.
        let claims = parse_id_token(&token.payload)?;
        let key = select_oidc_key(&keys, alg, kid)?;
        verify_signature(&key.material, alg, token)?;

        // Claims.
        let audiences = &claims.audiences;
        if audiences.is_empty() {
            return Err(ConvexAuthError::invalid(
                Reason::MissingClaim("aud"),
                "OIDC tokens require `aud`",
            ));
        }
        if !audiences.iter().any(|a| a == application_id) {
            return Err(ConvexAuthError::invalid(
                Reason::WrongAudience,
                format!("`aud` does not contain {application_id:?}"),
            ));
        }
        if audiences.len() > 1 {
            return Err(ConvexAuthError::invalid(
                Reason::MultipleAudiences,
                format!("`aud` has {} entries", audiences.len()),
            ));
        }
        let now = self.now();
        if now >= SystemTime::from(claims.expiration) {
            return Err(ConvexAuthError::invalid(
                Reason::Expired,
                format!(
                    "exp {} is not after now {} (no leeway for OIDC)",
                    claims.expiration.timestamp(),
                    unix_secs(now)
                ),
            ));
        }
        Ok(Identity {
            token_identifier: format!("{iss}|{}", claims.subject),
            subject: claims.subject,
            issuer: iss.to_owned(),
            fields: claims.fields,
        })
    }
}

// ---------------------------------------------------------------------------
// Token parsing and claims
// ---------------------------------------------------------------------------

struct ParsedToken {
    header: Map<String, Value>,
    payload: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl ParsedToken {
    fn parse(token: &str) -> Result<Self, ConvexAuthError> {
        let malformed = |detail: &str| ConvexAuthError::invalid(Reason::Malformed, detail);
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT has exactly three segments"));
        };
        let decode = |segment: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(segment)
                .map_err(|_| malformed(&format!("{what} is not unpadded base64url")))
        };
        let object = |bytes: Vec<u8>, what: &str| match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(malformed(&format!("{what} is not a JSON object"))),
        };
        let header_map = object(decode(header, "header")?, "header")?;
        let payload_map = object(decode(payload, "payload")?, "payload")?;
        let signature_bytes = decode(signature, "signature")?;
        Ok(Self {
            header: header_map,
            payload: payload_map,
            signing_input: format!("{header}.{payload}"),
            signature: signature_bytes,
        })
    }

    /// A string header parameter; any other JSON type is malformed. `jku`,
    /// `x5u`, `jwk` and friends are never read.
    fn header_str(&self, name: &str) -> Result<Option<&str>, ConvexAuthError> {
        match self.header.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ConvexAuthError::invalid(
                Reason::Malformed,
                format!("header `{name}` is not a string"),
            )),
        }
    }

    fn alg(&self) -> Result<&str, ConvexAuthError> {
        self.header_str("alg")?
            .ok_or_else(|| ConvexAuthError::invalid(Reason::Malformed, "header has no `alg`"))
    }

    fn iss(&self) -> Result<&str, ConvexAuthError> {
        required_str(&self.payload, "iss")
    }
}

fn required_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, ConvexAuthError> {
    match claims.get(name) {
        None => Err(ConvexAuthError::invalid(
            Reason::MissingClaim(name),
            format!("`{name}` is required"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ConvexAuthError::invalid(
            Reason::InvalidClaim(name),
            format!("`{name}` must be a string"),
        )),
    }
}

fn optional_int(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, ConvexAuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            ConvexAuthError::invalid(
                Reason::InvalidClaim(name),
                format!("`{name}` must be an integer NumericDate"),
            )
        }),
    }
}

fn required_int(claims: &Map<String, Value>, name: &'static str) -> Result<i64, ConvexAuthError> {
    optional_int(claims, name)?.ok_or_else(|| {
        ConvexAuthError::invalid(Reason::MissingClaim(name), format!("`{name}` is required"))
    })
}

/// `aud` as a list: a string is a one-entry list; absent is `None`.
fn claim_audiences(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, ConvexAuthError> {
    let invalid = || {
        ConvexAuthError::invalid(
            Reason::InvalidClaim("aud"),
            "`aud` must be a string or an array of strings",
        )
    };
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

fn unix_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn has_scheme(s: &str, scheme: &str) -> bool {
    s.get(..scheme.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
}

fn is_http_url(s: &str) -> bool {
    s.strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// A scheme-less issuer gets `https://`; trailing slashes are trimmed.
fn normalize_issuer(s: &str) -> String {
    let with_scheme = if s.starts_with("http://") || s.starts_with("https://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    };
    with_scheme.trim_end_matches('/').to_owned()
}

fn issuers_match(configured: &str, token_iss: &str) -> bool {
    normalize_issuer(configured) == normalize_issuer(token_iss)
}

// ---------------------------------------------------------------------------
// Keys and signatures
// ---------------------------------------------------------------------------

enum KeyMaterial {
    /// Big-endian modulus and exponent, as given in the JWK.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// P-256 uncompressed point `04 || x || y`.
    EcP256 { point: Vec<u8> },
    /// Ed25519 public key.
    Ed25519 { x: Vec<u8> },
}

struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    material: KeyMaterial,
}

fn jwk_b64(key: &Map<String, Value>, member: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("JWK lacks string member `{member}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("JWK member `{member}` is not unpadded base64url"))
}

fn jwk_opt_str(key: &Map<String, Value>, member: &str) -> Result<Option<String>, String> {
    match key.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("JWK member `{member}` is not a string")),
    }
}

/// Parse one JWK of a type we can verify with: RSA, EC P-256 or OKP Ed25519.
fn parse_jwk(value: &Value) -> Result<Jwk, String> {
    let key = value.as_object().ok_or("JWK is not a JSON object")?;
    let kty = key
        .get("kty")
        .and_then(Value::as_str)
        .ok_or("JWK lacks a string `kty`")?;
    let material = match kty {
        "RSA" => KeyMaterial::Rsa {
            n: jwk_b64(key, "n")?,
            e: jwk_b64(key, "e")?,
        },
        "EC" => {
            let crv = key.get("crv").and_then(Value::as_str);
            if crv != Some("P-256") {
                return Err(format!("unsupported EC curve {crv:?}"));
            }
            let x = jwk_b64(key, "x")?;
            let y = jwk_b64(key, "y")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates must be 32 bytes".to_owned());
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            KeyMaterial::EcP256 { point }
        }
        "OKP" => {
            let crv = key.get("crv").and_then(Value::as_str);
            if crv != Some("Ed25519") {
                return Err(format!("unsupported OKP curve {crv:?}"));
            }
            let x = jwk_b64(key, "x")?;
            if x.len() != 32 {
                return Err("Ed25519 public keys are 32 bytes".to_owned());
            }
            KeyMaterial::Ed25519 { x }
        }
        other => return Err(format!("unsupported key type {other:?}")),
    };
    Ok(Jwk {
        kid: jwk_opt_str(key, "kid")?,
        alg: jwk_opt_str(key, "alg")?,
        key_use: jwk_opt_str(key, "use")?,
        material,
    })
}

fn jwks_entries(body: &[u8]) -> Result<Vec<Value>, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("JWKS is not JSON: {e}"))?;
    match document {
        Value::Object(mut map) => match map.remove("keys") {
            Some(Value::Array(keys)) => Ok(keys),
            _ => Err("JWKS lacks a `keys` array".to_owned()),
        },
        _ => Err("JWKS is not a JSON object".to_owned()),
    }
}

/// customJwt: the whole set must parse, and only RSA and EC P-256 keys are allowed.
fn parse_custom_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    jwks_entries(body)?
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let jwk = parse_jwk(value).map_err(|e| format!("key #{index}: {e}"))?;
            if matches!(jwk.material, KeyMaterial::Ed25519 { .. }) {
                return Err(format!(
                    "key #{index}: OKP keys are not supported by customJwt"
                ));
            }
            Ok(jwk)
        })
        .collect()
}

/// OIDC: keys of unknown or unparsable types are skipped.
fn parse_oidc_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    Ok(jwks_entries(body)?
        .iter()
        .filter_map(|value| parse_jwk(value).ok())
        .collect())
}

/// OIDC key selection: by `kid` when given, else the one usable key.
fn select_oidc_key<'a>(
    keys: &'a [Jwk],
    alg: &str,
    kid: Option<&str>,
) -> Result<&'a Jwk, ConvexAuthError> {
    let usable: Vec<&Jwk> = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
        .filter(|k| k.key_use.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == alg))
        .filter(|k| {
            matches!(
                (alg, &k.material),
                ("RS256", KeyMaterial::Rsa { .. }) | ("EdDSA", KeyMaterial::Ed25519 { .. })
            )
        })
        .collect();
    match usable.as_slice() {
        [key] => Ok(key),
        [] => Err(ConvexAuthError::invalid(
            Reason::KeyNotFound,
            format!("no {alg} key with kid {kid:?} in the JWKS"),
        )),
        _ => Err(ConvexAuthError::invalid(
            Reason::AmbiguousKey,
            format!("{} {alg} keys fit kid {kid:?}", usable.len()),
        )),
    }
}

fn verify_signature(
    material: &KeyMaterial,
    alg: &str,
    token: &ParsedToken,
) -> Result<(), ConvexAuthError> {
    let message = token.signing_input.as_bytes();
    let signature = token.signature.as_slice();
    let bad_signature = |_| ConvexAuthError::invalid(Reason::BadSignature, "signature rejected");
    match (alg, material) {
        ("ES256", KeyMaterial::EcP256 { point }) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .map_err(bad_signature)
        }
        ("RS256", KeyMaterial::Rsa { n, e }) => {
            let bits = match n.first() {
                Some(&first) if first != 0 => n.len() * 8 - first.leading_zeros() as usize,
                _ => 0,
            };
            if !(2048..=8192).contains(&bits) {
                return Err(ConvexAuthError::invalid(
                    Reason::InvalidKey,
                    format!(
                        "RSA modulus must be 2048..=8192 bits without leading zeros, got {bits} bits"
                    ),
                ));
            }
            signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .map_err(bad_signature)
        }
        ("EdDSA", KeyMaterial::Ed25519 { x }) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(message, signature)
            .map_err(bad_signature),
        _ => Err(ConvexAuthError::invalid(
            Reason::AlgorithmMismatch,
            format!("the selected key cannot verify {alg}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// data: URIs
// ---------------------------------------------------------------------------

/// `data:[<mediatype>][;base64],<data>` (RFC 2397).
fn parse_data_uri(uri: &str) -> Option<Vec<u8>> {
    let rest = uri.get(5..)?;
    let (meta, data) = rest.split_once(',')?;
    let raw = percent_decode(data)?;
    let is_base64 = meta
        .rsplit(';')
        .next()
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("base64"));
    if is_base64 {
        let text: Vec<u8> = raw
            .into_iter()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        STANDARD
            .decode(&text)
            .or_else(|_| STANDARD_NO_PAD.decode(&text))
            .ok()
    } else {
        Some(raw)
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// HTTP with a private cache
// ---------------------------------------------------------------------------

type Headers = Vec<(String, String)>;

struct HttpResponse {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

struct CacheEntry {
    headers: Headers,
    body: Vec<u8>,
    /// `None`: stale, kept only for conditional revalidation.
    fresh_until: Option<SystemTime>,
}

struct HttpCache {
    client: reqwest::Client,
    entries: Mutex<HashMap<String, CacheEntry>>,
    fetches: AtomicUsize,
}

enum CachePolicy {
    NoStore,
    Store { fresh_until: Option<SystemTime> },
}

/// Headers a 304 must not overwrite in the stored response.
const NOT_UPDATED_BY_304: [&str; 5] = [
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The media type must be one of `allowed`; a `charset`, if given, must be utf-8.
fn content_type_ok(headers: &Headers, allowed: &[&str]) -> bool {
    let Some(value) = header(headers, "content-type") else {
        return false;
    };
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !allowed.contains(&media.as_str()) {
        return false;
    }
    parts.all(|param| {
        let param = param.trim();
        if param.is_empty() {
            return true;
        }
        match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            }
            Some(_) => true,
            None => false,
        }
    })
}

/// Freshness per `Cache-Control` (no-store, no-cache, max-age; s-maxage ignored
/// as a private cache) and `Expires` (relative to `Date` when present, else to
/// the clock), minus `Age`. No heuristic freshness.
fn cache_policy(headers: &Headers, now: SystemTime) -> CachePolicy {
    let cache_control = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut no_cache = false;
    let mut max_age = None;
    for directive in cache_control.split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-store") {
            return CachePolicy::NoStore;
        } else if name.eq_ignore_ascii_case("no-cache") {
            no_cache = true;
        } else if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
            // An unparsable max-age makes the response stale.
            max_age = Some(value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
        }
    }
    if no_cache {
        return CachePolicy::Store { fresh_until: None };
    }
    let lifetime = match (max_age, header(headers, "expires")) {
        (Some(max_age), _) => max_age,
        (None, Some(expires)) => match httpdate::parse_http_date(expires.trim()) {
            Ok(expires) => {
                let base = header(headers, "date")
                    .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
                    .unwrap_or(now);
                expires.duration_since(base).map_or(0, |d| d.as_secs())
            }
            Err(_) => 0,
        },
        (None, None) => 0,
    };
    let age = header(headers, "age")
        .and_then(|a| a.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let remaining = lifetime.saturating_sub(age);
    CachePolicy::Store {
        fresh_until: (remaining > 0).then(|| now + Duration::from_secs(remaining)),
    }
}

impl HttpCache {
    fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            client,
            entries: Mutex::new(HashMap::new()),
            fetches: AtomicUsize::new(0),
        }
    }

    /// GET `url`, answering from the cache while fresh, revalidating with
    /// `If-None-Match` when a stale entry has an ETag.
    async fn get(&self, url: &str, now: SystemTime) -> Result<HttpResponse, String> {
        let etag = {
            let entries = lock(&self.entries);
            match entries.get(url) {
                Some(entry) if entry.fresh_until.is_some_and(|until| until > now) => {
                    return Ok(HttpResponse {
                        status: 200,
                        headers: entry.headers.clone(),
                        body: entry.body.clone(),
                    });
                }
                Some(entry) => header(&entry.headers, "etag").map(str::to_owned),
                None => None,
            }
        };

        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut request = self.client.get(url);
        if let Some(tag) = &etag {
            request = request.header("if-none-match", tag.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {url} failed: {e}"))?;
        let status = response.status().as_u16();
        let headers: Headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: reading the body failed: {e}"))?
            .to_vec();

        let mut entries = lock(&self.entries);
        if status == 304 && etag.is_some() {
            let Some(entry) = entries.get_mut(url) else {
                return Err(format!("GET {url} answered 304 but nothing is cached"));
            };
            for (name, _) in &headers {
                if !NOT_UPDATED_BY_304.contains(&name.as_str()) {
                    entry.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                }
            }
            for (name, value) in &headers {
                if !NOT_UPDATED_BY_304.contains(&name.as_str()) {
                    entry.headers.push((name.clone(), value.clone()));
                }
            }
            let answer = HttpResponse {
                status: 200,
                headers: entry.headers.clone(),
                body: entry.body.clone(),
            };
            match cache_policy(&entry.headers, now) {
                CachePolicy::NoStore => {
                    entries.remove(url);
                }
                CachePolicy::Store { fresh_until } => entry.fresh_until = fresh_until,
            }
            return Ok(answer);
        }
        if status == 200 {
            match cache_policy(&headers, now) {
                CachePolicy::Store { fresh_until }
                    if fresh_until.is_some() || header(&headers, "etag").is_some() =>
                {
                    entries.insert(
                        url.to_owned(),
                        CacheEntry {
                            headers: headers.clone(),
                            body: body.clone(),
                            fresh_until,
                        },
                    );
                }
                _ => {
                    entries.remove(url);
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicU64;

    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A fixed 2048-bit RSA key (PKCS#8 DER, base64), generated once with openssl.
    const RSA_PKCS8_B64: &str = concat!(
        "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCR6cdxV6+aNxdMEoKfBRCqMM+Z",
        "z8q4xNZJC933xeHiZ/Vr1eij2jneHACEVASbVPr6iCT178diUtK5bS3ojTMCfsXh/17cOcoj72N/",
        "KgyAnswNBe4dtVxAEHu34r9wFozBh901d2PyPJRjZEFXzXPsaZUMYPKSgbpR+gM+odY7eJSPMZq2",
        "JqPphnCJ2ly7n2fhg2Lut/PaFQeVzvCKhI22RRWmtNGK+jsSbHdeVDSTZ12VMBpk2FXBkaB2kLoB",
        "l41E8NEovDB+alsh1aw6/9ft1BBZ0RIy7RovKiFzmlIN84ijtidjWEOkjfG0gjWt43heZkDjIyLV",
        "UQ/+eexQmhphAgMBAAECggEABHvEONeaqfis4tXDxTqc3TnkOyPvJPfJZNO0RZeDPhd3K1HWlOhQ",
        "9GH0YxyIyrQVBSs3RYZRYFROrMttyHJEQbye/HeCFO7CpxGFQ2RJn48hknne6/NFayOGhas2Oi27",
        "M/wmgCzTuZ8CaT5sopPJztccsRVuhrFtRfUScfN7l3asadqwXbkyTUsVNcjWyjkOdHcNxCESxDq3",
        "P4Roj7c1hYWnn+Yduqo4GS7krfJff0r6TjKFPUzlHM4sKUfrs+an6mddcry6iBaFQ76LlHPLda5O",
        "TWynYrlfJ3TrDMNAS8UbxP2sfeSB5hnOMxplqGZVKVMyn2UMUcjD/2Nvb3WR0QKBgQDHU0+kibJq",
        "UpeIKwWwxf9T2MW3ijKP8PstX7BkPkEVCsLA2aMcZTDR4kRo6tMKUFb8kJdwN5ZIFs+zAV5tfhkH",
        "U3LRxWdCPRs/06BqDHOTPY7zqiWTCAQjVlmyYM/rim5hxAi3w9Zkeb/2qItBuoEIdQhSoBBAJYbS",
        "rNumsL8nqQKBgQC7ZqXFbpVWizhzHRGOPGP08vguf/gKFt5cO0/EgOxDuXBTA7PndCqg+iEEtvAv",
        "W5IZO6n+Y4YTrhcTD60KhrC6wbBbu2hYxzrJBXPb0F0NXCyUL+nwlFwwCy2+WGK4wvfYpZaOOGBe",
        "aBXM6V/EVgkXcZGM729XqfaSF6AjQBCv+QKBgQC1Z8gbCkq7YzGP9v+102095RKEqRy9Ted7cxP5",
        "F4Np4CJBG5HMXPfifJggGF87isSwFfQNaDm4oDIlSwCii9nBhhwAeDUy3qQ3IaZj/bMN9T9t2ZNa",
        "zjfd5U+6/Usdph4xkhUREgXD6d5gYSJkDpYymTia4hwIFV8vy6wYd9FxCQKBgQCYvclPahp+N2sD",
        "KCYu8DnoZEC0ZckdMBZ8xjr1xr7LVFGg19vCQoScQEK5PQH3F4O03VRo62VUlQhpmNVJRw60qTm9",
        "Crq54Wigf7k26FVvljkfbw4V8FZTMklOY2vTe9XW1uAnevvQ9rUOFwjfVeCDIyWm4WC26uj1mhwD",
        "nyv6wQKBgG4wTpKq6J2mHwysvOYtNsYC+2ToStJ6HEkeHhximm2xXywAaZrGwz4LzZPbimk6CvE6",
        "jhCYV3Iyc1xdnRqMZ1QwuRLgnvZTz42Us77LrbP423bjZ9vfvlBPTuvGq2sUQblTs4DmkaBK9Ajp",
        "+onwPawl1HEP1Y1g3LLL6AbtBKiO",
    );

    const T0: u64 = 1_700_000_000;

    // ----- clock -----

    #[derive(Clone)]
    struct Clock(Arc<AtomicU64>);

    impl Clock {
        fn new() -> Self {
            Clock(Arc::new(AtomicU64::new(T0)))
        }
        fn now(&self) -> Now {
            let secs = self.0.clone();
            Arc::new(move || UNIX_EPOCH + Duration::from_secs(secs.load(Ordering::SeqCst)))
        }
        fn secs(&self) -> i64 {
            i64::try_from(self.0.load(Ordering::SeqCst)).expect("clock fits i64")
        }
        fn advance(&self, secs: u64) {
            self.0.fetch_add(secs, Ordering::SeqCst);
        }
    }

    // ----- keys and tokens -----

    enum KeyPairKind {
        Ec(EcdsaKeyPair),
        Rsa(RsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    struct Signer {
        kid: String,
        key: KeyPairKind,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    impl Signer {
        fn ec(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("generate EC key");
            let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("load EC key");
            Signer {
                kid: kid.to_owned(),
                key: KeyPairKind::Ec(pair),
            }
        }

        fn rsa(kid: &str) -> Self {
            let der = STANDARD.decode(RSA_PKCS8_B64).expect("RSA key base64");
            let pair = RsaKeyPair::from_pkcs8(&der).expect("load RSA key");
            Signer {
                kid: kid.to_owned(),
                key: KeyPairKind::Rsa(pair),
            }
        }

        fn ed(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("generate Ed25519 key");
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("load Ed25519 key");
            Signer {
                kid: kid.to_owned(),
                key: KeyPairKind::Ed(pair),
            }
        }

        fn alg(&self) -> &'static str {
            match self.key {
                KeyPairKind::Ec(_) => "ES256",
                KeyPairKind::Rsa(_) => "RS256",
                KeyPairKind::Ed(_) => "EdDSA",
            }
        }

        /// The public JWK (with `kid`, without `alg`).
        fn jwk(&self) -> Value {
            match &self.key {
                KeyPairKind::Ec(pair) => {
                    let point = pair.public_key().as_ref();
                    assert_eq!(point.len(), 65);
                    json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
                           "x": b64(&point[1..33]), "y": b64(&point[33..])})
                }
                KeyPairKind::Rsa(pair) => {
                    let components: signature::RsaPublicKeyComponents<Vec<u8>> =
                        pair.public().into();
                    json!({"kty": "RSA", "kid": self.kid,
                           "n": b64(&components.n), "e": b64(&components.e)})
                }
                KeyPairKind::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid,
                       "x": b64(pair.public_key().as_ref())}),
            }
        }

        fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match &self.key {
                KeyPairKind::Ec(pair) => pair
                    .sign(&rng, message)
                    .expect("ES256 sign")
                    .as_ref()
                    .to_vec(),
                KeyPairKind::Rsa(pair) => {
                    let mut sig = vec![0; pair.public().modulus_len()];
                    pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                        .expect("RS256 sign");
                    sig
                }
                KeyPairKind::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            }
        }

        /// Sign arbitrary header and claims.
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let sig = self.sign_bytes(input.as_bytes());
            format!("{input}.{}", b64(&sig))
        }

        /// Sign with the standard header `{alg, typ: "JWT", kid}`.
        fn token(&self, claims: &Value) -> String {
            self.sign(
                &json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
                claims,
            )
        }
    }

    fn jwks(keys: &[Value]) -> Value {
        json!({ "keys": keys })
    }

    fn data_uri(jwks: &Value) -> String {
        format!(
            "data:text/plain;charset=utf-8;base64,{}",
            STANDARD.encode(jwks.to_string())
        )
    }

    const ISS: &str = "https://issuer.test";
    const APP: &str = "convex-app";

    /// Valid claims for `iss` at clock time `now`.
    fn claims(iss: &str, now: i64) -> Value {
        json!({"iss": iss, "sub": "svc-1", "aud": APP, "iat": now, "exp": now + 3600})
    }

    fn custom(jwks: String, algorithm: CustomJwtAlgorithm) -> Provider {
        Provider::CustomJwt {
            issuer: ISS.to_owned(),
            jwks,
            algorithm,
            application_id: Some(APP.to_owned()),
        }
    }

    async fn reject(auth: &ConvexAuth, token: &str) -> ConvexAuthError {
        match auth.verify(token).await {
            Ok(identity) => panic!("token unexpectedly accepted: {identity:?}"),
            Err(e) => e,
        }
    }

    async fn accept(auth: &ConvexAuth, token: &str) -> Identity {
        match auth.verify(token).await {
            Ok(identity) => identity,
            Err(e) => panic!("token unexpectedly rejected: {e}"),
        }
    }

    // ----- a tiny HTTP/1.1 server on 127.0.0.1 -----

    #[derive(Clone)]
    struct Route {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        /// When set and the request's If-None-Match equals it: answer 304.
        etag: Option<String>,
    }

    impl Route {
        fn json(body: &Value, headers: &[(&str, &str)]) -> Self {
            let mut all = vec![("Content-Type".to_owned(), "application/json".to_owned())];
            all.extend(
                headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            Route {
                status: 200,
                headers: all,
                body: body.to_string(),
                etag: None,
            }
        }

        fn raw(status: u16, headers: &[(&str, &str)], body: &str) -> Self {
            Route {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body: body.to_owned(),
                etag: None,
            }
        }
    }

    #[derive(Clone, Default)]
    struct ServerState {
        routes: Arc<Mutex<HashMap<String, Route>>>,
        hits: Arc<Mutex<HashMap<String, usize>>>,
    }

    struct TestServer {
        base: String,
        state: ServerState,
    }

    impl TestServer {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let state = ServerState::default();
            let shared = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, shared.clone()));
                }
            });
            TestServer {
                base: format!("http://{addr}"),
                state,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        fn set(&self, path: &str, route: Route) {
            lock(&self.state.routes).insert(path.to_owned(), route);
        }

        fn hits(&self, path: &str) -> usize {
            lock(&self.state.hits).get(path).copied().unwrap_or(0)
        }

        /// Serve an OIDC discovery document for this server's base URL.
        fn set_discovery(&self, issuer: &str, jwks_path: &str) {
            self.set(
                "/.well-known/openid-configuration",
                Route::json(
                    &json!({"issuer": issuer, "jwks_uri": self.url(jwks_path)}),
                    &[],
                ),
            );
        }
    }

    fn reason_phrase(status: u16) -> &'static str {
        match status {
            200 => "OK",
            302 => "Found",
            304 => "Not Modified",
            404 => "Not Found",
            _ => "Status",
        }
    }

    async fn serve(mut stream: TcpStream, state: ServerState) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or("/")
            .to_owned();
        let if_none_match = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("if-none-match"))
            .map(|(_, value)| value.trim().to_owned());
        *lock(&state.hits).entry(path.clone()).or_default() += 1;
        let route = lock(&state.routes)
            .get(&path)
            .cloned()
            .unwrap_or_else(|| Route::raw(404, &[], "not found"));
        let not_modified = route.etag.is_some() && route.etag == if_none_match;
        let (status, body) = if not_modified {
            (304, String::new())
        } else {
            (route.status, route.body.clone())
        };
        let mut response = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
        for (name, value) in &route.headers {
            if not_modified && name.eq_ignore_ascii_case("content-type") {
                continue;
            }
            response.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(tag) = &route.etag {
            response.push_str(&format!("ETag: {tag}\r\n"));
        }
        if !not_modified {
            response.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        response.push_str("Connection: close\r\n\r\n");
        response.push_str(&body);
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    // ----- customJwt: acceptance and identity -----

    #[tokio::test]
    async fn custom_es256_accepted_with_flattened_identity() {
        let server = TestServer::start().await;
        let signer = Signer::ec("ec-1");
        server.set("/jwks", Route::json(&jwks(&[signer.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/jwks"), CustomJwtAlgorithm::ES256)],
            clock.now(),
        );
        let now = clock.secs();
        let token = signer.token(&json!({
            "iss": ISS, "sub": "svc-1", "aud": [APP], "iat": now, "nbf": now,
            "exp": now + 600, "jti": "j-1",
            "svc": {"id": 1, "meta": {"team": "core", "tags": ["a", "b"]}},
            "scopes": ["read", "write"], "admin": false, "weight": 1.5, "empty": null,
        }));
        let identity = accept(&auth, &token).await;
        assert_eq!(identity.token_identifier, format!("{ISS}|svc-1"));
        assert_eq!(identity.subject, "svc-1");
        assert_eq!(identity.issuer, ISS);
        let expected = json!({
            "svc.id": 1, "svc.meta.team": "core", "svc.meta.tags": ["a", "b"],
            "scopes": ["read", "write"], "admin": false, "weight": 1.5, "empty": null,
        });
        assert_eq!(Value::Object(identity.fields), expected);
        assert_eq!(auth.fetch_count(), 1);
        assert_eq!(server.hits("/jwks"), 1);
    }

    #[tokio::test]
    async fn custom_rs256_accepted() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa-1");
        let mut jwk = signer.jwk();
        jwk["alg"] = json!("RS256");
        jwk["use"] = json!("sig");
        server.set(
            "/jwks",
            Route::raw(
                200,
                &[("Content-Type", "application/jwk-set+json; charset=UTF-8")],
                &jwks(&[Signer::ec("other").jwk(), jwk]).to_string(),
            ),
        );
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/jwks"), CustomJwtAlgorithm::RS256)],
            clock.now(),
        );
        let identity = accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(identity.token_identifier, "https://issuer.test|svc-1");
        assert!(identity.fields.is_empty(), "{:?}", identity.fields);
    }

    #[tokio::test]
    async fn custom_without_application_id_needs_no_aud() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![Provider::CustomJwt {
                issuer: ISS.to_owned(),
                jwks: data_uri(&jwks(&[signer.jwk()])),
                algorithm: CustomJwtAlgorithm::ES256,
                application_id: None,
            }],
            clock.now(),
        );
        let now = clock.secs();
        accept(
            &auth,
            &signer.token(&json!({"iss": ISS, "sub": "s", "exp": now + 60})),
        )
        .await;
        // exp is still required.
        let e = reject(&auth, &signer.token(&json!({"iss": ISS, "sub": "s"}))).await;
        assert_eq!(e.reason(), &Reason::MissingClaim("exp"));
        // sub too.
        let e = reject(&auth, &signer.token(&json!({"iss": ISS, "exp": now + 60}))).await;
        assert_eq!(e.reason(), &Reason::MissingClaim("sub"));
        assert_eq!(e.code(), "InvalidAuthHeader");
        // and exp must be an integer.
        let e = reject(
            &auth,
            &signer.token(&json!({"iss": ISS, "sub": "s", "exp": "soon"})),
        )
        .await;
        assert_eq!(e.reason(), &Reason::InvalidClaim("exp"));
    }

    // ----- time rules -----

    #[tokio::test]
    async fn custom_exp_has_five_second_skew() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let now = clock.secs();
        let with_exp = |exp: i64| {
            let mut c = claims(ISS, now - 100);
            c["exp"] = json!(exp);
            signer.token(&c)
        };
        accept(&auth, &with_exp(now - 4)).await;
        accept(&auth, &with_exp(now - 5)).await;
        let e = reject(&auth, &with_exp(now - 6)).await;
        assert_eq!(e.reason(), &Reason::Expired);
        assert_eq!((e.status(), e.code()), (401, "InvalidAuthHeader"));
        assert!(e.message().contains("expired"), "{e}");
    }

    #[tokio::test]
    async fn custom_nbf_and_iat_have_five_second_skew() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let now = clock.secs();
        let with = |name: &str, value: i64| {
            let mut c = claims(ISS, now);
            c[name] = json!(value);
            signer.token(&c)
        };
        accept(&auth, &with("nbf", now + 5)).await;
        assert_eq!(
            reject(&auth, &with("nbf", now + 6)).await.reason(),
            &Reason::NotYetValid
        );
        accept(&auth, &with("iat", now + 5)).await;
        assert_eq!(
            reject(&auth, &with("iat", now + 6)).await.reason(),
            &Reason::IatInFuture
        );
        // No maximum lifetime.
        accept(&auth, &with("exp", now + 10 * 365 * 86_400)).await;
    }

    // ----- provider selection and audience -----

    #[tokio::test]
    async fn custom_wrong_audience_matches_no_provider() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let mut c = claims(ISS, clock.secs());
        c["aud"] = json!("someone-else");
        let e = reject(&auth, &signer.token(&c)).await;
        assert_eq!((e.status(), e.code()), (401, "NoAuthProvider"));
        assert_eq!(e.reason(), &Reason::WrongAudience);
        assert!(e.message().contains("wrong audience"), "{e}");

        c["aud"] = json!(["someone-else", APP]);
        accept(&auth, &signer.token(&c)).await;

        c.as_object_mut().expect("object").remove("aud");
        let e = reject(&auth, &signer.token(&c)).await;
        assert_eq!(e.code(), "NoAuthProvider");
        assert_eq!(e.reason(), &Reason::MissingClaim("aud"));
    }

    #[tokio::test]
    async fn unknown_issuer_has_no_auth_provider() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let e = reject(
            &auth,
            &signer.token(&claims("https://evil.test", clock.secs())),
        )
        .await;
        assert_eq!((e.status(), e.code()), (401, "NoAuthProvider"));
        assert_eq!(e.reason(), &Reason::NoAuthProvider);
        // A path suffix is a different issuer.
        let e = reject(
            &auth,
            &signer.token(&claims("https://issuer.test/x", clock.secs())),
        )
        .await;
        assert_eq!(e.reason(), &Reason::NoAuthProvider);
        // No iss at all.
        let mut c = claims(ISS, clock.secs());
        c.as_object_mut().expect("object").remove("iss");
        assert_eq!(
            reject(&auth, &signer.token(&c)).await.reason(),
            &Reason::MissingClaim("iss")
        );
    }

    #[tokio::test]
    async fn first_matching_provider_wins() {
        let first = Signer::ec("k1");
        let second = Signer::ec("k2");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![
                Provider::CustomJwt {
                    issuer: ISS.to_owned(),
                    jwks: data_uri(&jwks(&[first.jwk()])),
                    algorithm: CustomJwtAlgorithm::ES256,
                    application_id: Some("only-first".to_owned()),
                },
                Provider::CustomJwt {
                    issuer: format!("{ISS}/"),
                    jwks: data_uri(&jwks(&[second.jwk()])),
                    algorithm: CustomJwtAlgorithm::ES256,
                    application_id: None,
                },
            ],
            clock.now(),
        );
        // aud doesn't name the first provider's app: the second is used.
        accept(&auth, &second.token(&claims(ISS, clock.secs()))).await;
        // A token for the first provider, with the first provider's aud, must not
        // fall through to the second provider's keys.
        let mut c = claims(ISS, clock.secs());
        c["aud"] = json!("only-first");
        accept(&auth, &first.token(&c)).await;
        let e = reject(&auth, &second.token(&c)).await;
        assert_eq!(e.reason(), &Reason::KeyNotFound);
    }

    #[tokio::test]
    async fn iss_without_scheme_gets_https_prefix() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let identity = accept(&auth, &signer.token(&claims("issuer.test", clock.secs()))).await;
        assert_eq!(identity.issuer, "issuer.test");
        assert_eq!(identity.token_identifier, "issuer.test|svc-1");
        let identity = accept(
            &auth,
            &signer.token(&claims("https://issuer.test//", clock.secs())),
        )
        .await;
        assert_eq!(identity.token_identifier, "https://issuer.test//|svc-1");
        // The prefix is https, never http.
        let e = reject(
            &auth,
            &signer.token(&claims("http://issuer.test", clock.secs())),
        )
        .await;
        assert_eq!(e.reason(), &Reason::NoAuthProvider);
        // A configured issuer that is not an http(s) URL never matches.
        let auth = ConvexAuth::with_clock(
            vec![Provider::CustomJwt {
                issuer: "issuer.test".to_owned(),
                jwks: data_uri(&jwks(&[signer.jwk()])),
                algorithm: CustomJwtAlgorithm::ES256,
                application_id: Some(APP.to_owned()),
            }],
            clock.now(),
        );
        let e = reject(&auth, &signer.token(&claims("issuer.test", clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::NoAuthProvider);
    }

    // ----- signatures, algorithms, headers -----

    #[tokio::test]
    async fn tampered_signature_or_payload_rejected() {
        let signer = Signer::rsa("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::RS256,
            )],
            clock.now(),
        );
        let token = signer.token(&claims(ISS, clock.secs()));
        accept(&auth, &token).await;

        let (input, sig) = token.rsplit_once('.').expect("three segments");
        let mut sig = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        sig[10] ^= 1;
        let e = reject(&auth, &format!("{input}.{}", b64(&sig))).await;
        assert_eq!(e.reason(), &Reason::BadSignature);
        assert!(e.message().contains("bad signature"), "{e}");

        let mut forged = claims(ISS, clock.secs());
        forged["sub"] = json!("admin");
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(
            reject(&auth, &swapped).await.reason(),
            &Reason::BadSignature
        );

        // Signed by a different key under the same kid.
        let other = Signer::ec("k");
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[Signer::ec("k").jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let e = reject(&auth, &other.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::BadSignature);
    }

    #[tokio::test]
    async fn custom_algorithm_is_pinned() {
        let ec = Signer::ec("ec");
        let rsa = Signer::rsa("rsa");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[ec.jwk(), rsa.jwk()])),
                CustomJwtAlgorithm::RS256,
            )],
            clock.now(),
        );
        let c = claims(ISS, clock.secs());
        accept(&auth, &rsa.token(&c)).await;

        // ES256 token (valid signature, key in the JWKS) against an RS256 provider.
        let e = reject(&auth, &ec.token(&c)).await;
        assert_eq!(e.reason(), &Reason::AlgorithmMismatch);
        assert_eq!(e.code(), "InvalidAuthHeader");

        // Header says RS256 but kid names the EC key.
        let token = rsa.sign(&json!({"alg": "RS256", "typ": "JWT", "kid": "ec"}), &c);
        assert_eq!(
            reject(&auth, &token).await.reason(),
            &Reason::AlgorithmMismatch
        );

        // alg none, empty signature.
        let header = b64(json!({"alg": "none", "typ": "JWT", "kid": "rsa"})
            .to_string()
            .as_bytes());
        let none = format!("{header}.{}.", b64(c.to_string().as_bytes()));
        assert_eq!(
            reject(&auth, &none).await.reason(),
            &Reason::AlgorithmMismatch
        );

        // HS256 keyed with the public JWK (classic confusion attack).
        let header = b64(json!({"alg": "HS256", "typ": "JWT", "kid": "rsa"})
            .to_string()
            .as_bytes());
        let input = format!("{header}.{}", b64(c.to_string().as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, rsa.jwk().to_string().as_bytes());
        let tag = ring::hmac::sign(&key, input.as_bytes());
        let hs = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(
            reject(&auth, &hs).await.reason(),
            &Reason::AlgorithmMismatch
        );
    }

    #[tokio::test]
    async fn jwk_alg_must_match_and_rsa_size_is_checked() {
        let rsa = Signer::rsa("rsa");
        let clock = Clock::new();
        let c = claims(ISS, clock.secs());
        let mut jwk = rsa.jwk();
        jwk["alg"] = json!("RS384");
        let auth = ConvexAuth::with_clock(
            vec![custom(data_uri(&jwks(&[jwk])), CustomJwtAlgorithm::RS256)],
            clock.now(),
        );
        assert_eq!(
            reject(&auth, &rsa.token(&c)).await.reason(),
            &Reason::AlgorithmMismatch
        );

        // A 1024-bit modulus (first half of the real one).
        let mut short = rsa.jwk();
        let n = URL_SAFE_NO_PAD
            .decode(short["n"].as_str().expect("n"))
            .expect("b64");
        short["n"] = json!(b64(&n[..128]));
        let auth = ConvexAuth::with_clock(
            vec![custom(data_uri(&jwks(&[short])), CustomJwtAlgorithm::RS256)],
            clock.now(),
        );
        assert_eq!(
            reject(&auth, &rsa.token(&c)).await.reason(),
            &Reason::InvalidKey
        );
    }

    #[tokio::test]
    async fn custom_kid_and_typ_required() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let c = claims(ISS, clock.secs());
        let e = reject(
            &auth,
            &signer.sign(&json!({"alg": "ES256", "typ": "JWT"}), &c),
        )
        .await;
        assert_eq!(e.reason(), &Reason::KidMissing);
        assert!(e.message().contains("KidMissing"), "{e}");

        let e = reject(
            &auth,
            &signer.sign(&json!({"alg": "ES256", "kid": "k"}), &c),
        )
        .await;
        assert_eq!(e.reason(), &Reason::BadTyp);
        let e = reject(
            &auth,
            &signer.sign(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "k"}), &c),
        )
        .await;
        assert_eq!(e.reason(), &Reason::BadTyp);

        let e = reject(
            &auth,
            &signer.sign(&json!({"alg": "ES256", "typ": "JWT", "kid": "nope"}), &c),
        )
        .await;
        assert_eq!(e.reason(), &Reason::KeyNotFound);
        assert!(e.message().contains("KeyNotFound"), "{e}");
    }

    #[tokio::test]
    async fn jku_x5u_and_jwk_headers_are_ignored() {
        let server = TestServer::start().await;
        let legit = Signer::ec("k");
        let attacker = Signer::ec("k");
        server.set("/jwks", Route::json(&jwks(&[legit.jwk()]), &[]));
        server.set("/attacker", Route::json(&jwks(&[attacker.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/jwks"), CustomJwtAlgorithm::ES256)],
            clock.now(),
        );
        let header = json!({
            "alg": "ES256", "typ": "JWT", "kid": "k",
            "jku": server.url("/attacker"), "x5u": server.url("/attacker"), "jwk": attacker.jwk(),
        });
        let e = reject(&auth, &attacker.sign(&header, &claims(ISS, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::BadSignature);
        assert_eq!(server.hits("/attacker"), 0);
        // The same extra headers on a legitimately signed token are harmless.
        accept(&auth, &legit.sign(&header, &claims(ISS, clock.secs()))).await;
    }

    #[tokio::test]
    async fn malformed_tokens_rejected() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        let token = signer.token(&claims(ISS, clock.secs()));
        accept(&auth, &token).await;
        let parts: Vec<&str> = token.split('.').collect();
        let array_payload = b64(b"[1,2]");
        let string_header = b64(b"\"ES256\"");
        let std_b64_header = STANDARD
            .encode(json!({"alg": "ES256", "typ": "JWT", "kid": "k", "x": "???"}).to_string());
        let cases = [
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.extra"),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], array_payload, parts[2]),
            format!("{}.{}.{}", string_header, parts[1], parts[2]),
            format!("{}.{}.{}", std_b64_header, parts[1], parts[2]),
            format!("{}.{}.{}", b64(b"{not json"), parts[1], parts[2]),
            format!(
                "{}.{}.{}",
                b64(json!({"alg": 256, "typ": "JWT", "kid": "k"})
                    .to_string()
                    .as_bytes()),
                parts[1],
                parts[2]
            ),
            format!(" {token}"),
            String::new(),
        ];
        for case in cases {
            let e = reject(&auth, &case).await;
            assert_eq!(e.reason(), &Reason::Malformed, "{case:?}: {e}");
            assert_eq!(e.status(), 401);
        }
    }

    // ----- JWKS fetching, parsing and caching -----

    #[tokio::test]
    async fn unknown_kid_is_not_refetched_until_max_age_passes() {
        let server = TestServer::start().await;
        let old = Signer::ec("old");
        let new = Signer::ec("new");
        server.set(
            "/jwks",
            Route::json(
                &jwks(&[old.jwk()]),
                &[("Cache-Control", "public, max-age=3600, s-maxage=10")],
            ),
        );
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/jwks"), CustomJwtAlgorithm::ES256)],
            clock.now(),
        );
        accept(&auth, &old.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 1);

        // Rotate on the server; the cached JWKS is still fresh.
        server.set(
            "/jwks",
            Route::json(
                &jwks(&[old.jwk(), new.jwk()]),
                &[("Cache-Control", "max-age=3600")],
            ),
        );
        clock.advance(3599);
        let e = reject(&auth, &new.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::KeyNotFound);
        assert_eq!(auth.fetch_count(), 1, "no refetch on an unknown kid");
        assert_eq!(server.hits("/jwks"), 1);

        clock.advance(1);
        accept(&auth, &new.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 2);

        // 30 simulated days later the cache has long expired.
        clock.advance(30 * 86_400);
        accept(&auth, &new.token(&claims(ISS, clock.secs()))).await;
        accept(&auth, &old.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 3);

        // Clones share the cache; clear_cache forces a refetch.
        let clone = auth.clone();
        accept(&clone, &old.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 3);
        auth.clear_cache();
        accept(&clone, &old.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 4);
        assert_eq!(server.hits("/jwks"), 4);
    }

    #[tokio::test]
    async fn uncacheable_jwks_is_fetched_every_time() {
        let server = TestServer::start().await;
        let signer = Signer::ec("k");
        let keys = jwks(&[signer.jwk()]);
        server.set("/plain", Route::json(&keys, &[]));
        server.set(
            "/no-store",
            Route::json(&keys, &[("Cache-Control", "no-store, max-age=3600")]),
        );
        server.set(
            "/no-cache",
            Route::json(&keys, &[("Cache-Control", "max-age=3600, no-cache")]),
        );
        server.set(
            "/zero",
            Route::json(&keys, &[("Cache-Control", "max-age=0")]),
        );
        server.set(
            "/aged",
            Route::json(&keys, &[("Cache-Control", "max-age=60"), ("Age", "60")]),
        );
        server.set("/bad-expires", Route::json(&keys, &[("Expires", "0")]));
        server.set(
            "/last-modified",
            Route::json(&keys, &[("Last-Modified", "Mon, 01 Jan 2001 00:00:00 GMT")]),
        );
        let clock = Clock::new();
        for path in [
            "/plain",
            "/no-store",
            "/no-cache",
            "/zero",
            "/aged",
            "/bad-expires",
            "/last-modified",
        ] {
            let auth = ConvexAuth::with_clock(
                vec![custom(server.url(path), CustomJwtAlgorithm::ES256)],
                clock.now(),
            );
            for _ in 0..3 {
                accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
            }
            assert_eq!(auth.fetch_count(), 3, "{path}");
            assert_eq!(server.hits(path), 3, "{path}");
        }
    }

    #[tokio::test]
    async fn expires_is_relative_to_date_or_the_clock() {
        let server = TestServer::start().await;
        let signer = Signer::ec("k");
        let keys = jwks(&[signer.jwk()]);
        let clock = Clock::new();
        let at = |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        // Date and Expires far in the past, 100 s apart: fresh for 100 s on our clock.
        server.set(
            "/dated",
            Route::json(
                &keys,
                &[("Date", &at(1_000_000)), ("Expires", &at(1_000_100))],
            ),
        );
        // No Date: Expires is compared with the injected clock.
        server.set(
            "/undated",
            Route::json(&keys, &[("Expires", &at(T0 + 100))]),
        );
        for path in ["/dated", "/undated"] {
            let clock = Clock::new();
            let auth = ConvexAuth::with_clock(
                vec![custom(server.url(path), CustomJwtAlgorithm::ES256)],
                clock.now(),
            );
            accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
            clock.advance(99);
            accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
            assert_eq!(auth.fetch_count(), 1, "{path}");
            clock.advance(1);
            accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
            assert_eq!(auth.fetch_count(), 2, "{path}");
        }
        // max-age wins over Expires.
        server.set(
            "/both",
            Route::json(
                &keys,
                &[("Cache-Control", "max-age=10"), ("Expires", &at(T0 + 1000))],
            ),
        );
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/both"), CustomJwtAlgorithm::ES256)],
            clock.now(),
        );
        accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        clock.advance(10);
        accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 2);
    }

    #[tokio::test]
    async fn etag_revalidation_refreshes_the_cached_jwks() {
        let server = TestServer::start().await;
        let signer = Signer::ec("k");
        let mut route = Route::json(&jwks(&[signer.jwk()]), &[("Cache-Control", "max-age=60")]);
        route.etag = Some("\"v1\"".to_owned());
        server.set("/jwks", route.clone());
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(
            vec![custom(server.url("/jwks"), CustomJwtAlgorithm::ES256)],
            clock.now(),
        );
        accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        // Stale: revalidated; the server answers 304 with an empty body.
        route.body = "this body must never be parsed".to_owned();
        server.set("/jwks", route);
        clock.advance(60);
        accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 2);
        // The 304 made the entry fresh for another 60 s.
        clock.advance(59);
        accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(auth.fetch_count(), 2);
        assert_eq!(server.hits("/jwks"), 2);
    }

    #[tokio::test]
    async fn jwks_status_and_content_type_are_checked() {
        let server = TestServer::start().await;
        let signer = Signer::ec("k");
        let body = jwks(&[signer.jwk()]).to_string();
        let cases: [(&str, Route, bool); 9] = [
            (
                "/json",
                Route::raw(200, &[("Content-Type", "application/json")], &body),
                true,
            ),
            (
                "/jwk-set",
                Route::raw(200, &[("Content-Type", "application/jwk-set+json")], &body),
                true,
            ),
            (
                "/utf8",
                Route::raw(
                    200,
                    &[("Content-Type", "Application/JSON; charset=\"utf-8\"")],
                    &body,
                ),
                true,
            ),
            (
                "/text",
                Route::raw(200, &[("Content-Type", "text/plain")], &body),
                false,
            ),
            ("/none", Route::raw(200, &[], &body), false),
            (
                "/latin1",
                Route::raw(
                    200,
                    &[("Content-Type", "application/json; charset=iso-8859-1")],
                    &body,
                ),
                false,
            ),
            (
                "/500",
                Route::raw(500, &[("Content-Type", "application/json")], &body),
                false,
            ),
            (
                "/201",
                Route::raw(201, &[("Content-Type", "application/json")], &body),
                false,
            ),
            (
                "/redirect",
                Route::raw(302, &[("Location", "/json")], ""),
                true,
            ),
        ];
        let clock = Clock::new();
        for (path, route, ok) in cases {
            server.set(path, route);
            let auth = ConvexAuth::with_clock(
                vec![custom(server.url(path), CustomJwtAlgorithm::ES256)],
                clock.now(),
            );
            let result = auth.verify(&signer.token(&claims(ISS, clock.secs()))).await;
            match (ok, result) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    assert_eq!(e.reason(), &Reason::JwksFetch, "{path}: {e}");
                    assert_eq!(e.status(), 401, "{path}");
                    assert!(e.message().contains("Could not fetch JWKS"), "{e}");
                }
                (ok, result) => panic!("{path}: expected ok={ok}, got {result:?}"),
            }
        }
        assert_eq!(server.hits("/json"), 2, "the redirect was followed");

        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", closed.local_addr().expect("addr"));
        drop(closed);
        let auth =
            ConvexAuth::with_clock(vec![custom(url, CustomJwtAlgorithm::ES256)], clock.now());
        let e = reject(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::JwksFetch);
        assert_eq!(auth.fetch_count(), 1);
    }

    #[tokio::test]
    async fn custom_jwks_must_parse_as_a_whole() {
        let signer = Signer::ec("k");
        let clock = Clock::new();
        let c = claims(ISS, clock.secs());
        let mut p384 = signer.jwk();
        p384["crv"] = json!("P-384");
        let sets = [
            jwks(&[signer.jwk(), Signer::ed("ed").jwk()]),
            jwks(&[
                signer.jwk(),
                json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
            ]),
            jwks(&[signer.jwk(), p384]),
            jwks(&[
                signer.jwk(),
                json!({"kty": "RSA", "kid": "r", "n": "not base64!", "e": "AQAB"}),
            ]),
            json!({"not_keys": [signer.jwk()]}),
            json!([signer.jwk()]),
        ];
        for set in sets {
            let auth = ConvexAuth::with_clock(
                vec![custom(data_uri(&set), CustomJwtAlgorithm::ES256)],
                clock.now(),
            );
            let e = reject(&auth, &signer.token(&c)).await;
            assert_eq!(e.reason(), &Reason::JwksParse, "{set}: {e}");
        }
        // The same key alone is fine.
        let auth = ConvexAuth::with_clock(
            vec![custom(
                data_uri(&jwks(&[signer.jwk()])),
                CustomJwtAlgorithm::ES256,
            )],
            clock.now(),
        );
        accept(&auth, &signer.token(&c)).await;
    }

    #[tokio::test]
    async fn data_uri_providers_never_fetch() {
        let signer = Signer::rsa("k");
        let clock = Clock::new();
        let set = jwks(&[signer.jwk()]);
        let percent = format!(
            "data:application/json,{}",
            set.to_string()
                .replace('%', "%25")
                .replace('"', "%22")
                .replace(' ', "%20")
        );
        for uri in [
            data_uri(&set),
            format!(
                "data:application/json;base64,{}",
                STANDARD.encode(set.to_string())
            ),
            percent,
        ] {
            let auth = ConvexAuth::with_clock(
                vec![custom(uri.clone(), CustomJwtAlgorithm::RS256)],
                clock.now(),
            );
            for _ in 0..3 {
                accept(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
            }
            assert_eq!(auth.fetch_count(), 0, "{uri}");
        }
        let auth = ConvexAuth::with_clock(
            vec![custom(
                "data:text/plain;base64,@@@".to_owned(),
                CustomJwtAlgorithm::RS256,
            )],
            clock.now(),
        );
        let e = reject(&auth, &signer.token(&claims(ISS, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::JwksFetch);
        assert_eq!(auth.fetch_count(), 0);
    }

    // ----- OIDC -----

    fn oidc(server: &TestServer) -> Provider {
        Provider::Oidc {
            domain: server.base.clone(),
            application_id: APP.to_owned(),
        }
    }

    #[tokio::test]
    async fn oidc_rs256_accepted_via_discovery() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa");
        server.set_discovery(&server.base, "/keys");
        server.set(
            "/keys",
            Route::json(&jwks(&[signer.jwk()]), &[("Cache-Control", "max-age=300")]),
        );
        let clock = Clock::new();
        // The configured domain may carry a trailing slash.
        let auth = ConvexAuth::with_clock(
            vec![Provider::Oidc {
                domain: format!("{}/", server.base),
                application_id: APP.to_owned(),
            }],
            clock.now(),
        );
        let now = clock.secs();
        let token = signer.token(&json!({
            "iss": server.base, "sub": "user-1", "aud": APP, "iat": now, "exp": now + 60,
            "nbf": now + 1000, "jti": "j",
            "name": "Ada", "given_name": "Ada", "family_name": "Lovelace", "nickname": "ada",
            "preferred_username": "ada.l", "profile": "https://p", "picture": "https://pic",
            "website": "https://w", "email": "ada@example.com", "email_verified": true,
            "gender": "f", "birthdate": "1815-12-10", "zoneinfo": "Europe/London", "locale": "en-GB",
            "phone_number": "+44", "phone_number_verified": false,
            "address": {"formatted": "1 Main St", "country": "UK"}, "updated_at": 1234,
            "org": {"id": 7}, "roles": ["a"],
        }));
        let identity = accept(&auth, &token).await;
        assert_eq!(identity.token_identifier, format!("{}|user-1", server.base));
        assert_eq!(identity.issuer, server.base);
        let expected = json!({
            "name": "Ada", "givenName": "Ada", "familyName": "Lovelace", "nickname": "ada",
            "preferredUsername": "ada.l", "profileUrl": "https://p", "pictureUrl": "https://pic",
            "websiteUrl": "https://w", "email": "ada@example.com", "emailVerified": true,
            "gender": "f", "birthday": "1815-12-10", "timezone": "Europe/London", "language": "en-GB",
            "phoneNumber": "+44", "phoneNumberVerified": false,
            "address": "1 Main St", "updatedAt": "1970-01-01T00:20:34+00:00",
            "org": {"id": 7}, "roles": ["a"],
        });
        assert_eq!(Value::Object(identity.fields), expected);
        assert_eq!(auth.fetch_count(), 2);
        assert_eq!(server.hits("/.well-known/openid-configuration"), 1);

        // Discovery had no cache headers: fetched again; the JWKS is cached.
        accept(&auth, &token).await;
        assert_eq!(server.hits("/.well-known/openid-configuration"), 2);
        assert_eq!(server.hits("/keys"), 1);
        assert_eq!(auth.fetch_count(), 3);
    }

    #[tokio::test]
    async fn oidc_eddsa_without_kid_and_unknown_key_types_skipped() {
        let server = TestServer::start().await;
        let signer = Signer::ed("ed");
        server.set_discovery(&server.base, "/keys");
        let mut enc_key = Signer::ed("enc").jwk();
        enc_key["use"] = json!("enc");
        server.set(
            "/keys",
            Route::json(
                &jwks(&[
                    json!({"kty": "oct", "k": "c2VjcmV0"}),
                    json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9; 32])}),
                    Signer::ec("ec").jwk(),
                    Signer::rsa("rsa").jwk(),
                    enc_key,
                    signer.jwk(),
                ]),
                &[],
            ),
        );
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let c = claims(&server.base, clock.secs());
        accept(&auth, &signer.sign(&json!({"alg": "EdDSA"}), &c)).await;
        accept(
            &auth,
            &signer.sign(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "ed"}), &c),
        )
        .await;
        accept(
            &auth,
            &signer.sign(&json!({"alg": "EdDSA", "typ": "application/jose"}), &c),
        )
        .await;
        let e = reject(
            &auth,
            &signer.sign(&json!({"alg": "EdDSA", "kid": "missing"}), &c),
        )
        .await;
        assert_eq!(e.reason(), &Reason::KeyNotFound);
        assert_eq!(e.code(), "InvalidAuthHeader");
    }

    #[tokio::test]
    async fn oidc_ambiguous_keys_need_a_kid() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("a");
        let mut twin = signer.jwk();
        twin["kid"] = json!("b");
        server.set_discovery(&server.base, "/keys");
        server.set("/keys", Route::json(&jwks(&[signer.jwk(), twin]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let c = claims(&server.base, clock.secs());
        let e = reject(&auth, &signer.sign(&json!({"alg": "RS256"}), &c)).await;
        assert_eq!(e.reason(), &Reason::AmbiguousKey);
        accept(
            &auth,
            &signer.sign(&json!({"alg": "RS256", "kid": "b"}), &c),
        )
        .await;
    }

    #[tokio::test]
    async fn oidc_exp_has_no_leeway_and_iat_is_required() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa");
        server.set_discovery(&server.base, "/keys");
        server.set("/keys", Route::json(&jwks(&[signer.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let now = clock.secs();
        let mut c = claims(&server.base, now - 10);
        c["exp"] = json!(now + 1);
        accept(&auth, &signer.token(&c)).await;
        c["exp"] = json!(now);
        let e = reject(&auth, &signer.token(&c)).await;
        assert_eq!(e.reason(), &Reason::Expired);
        assert_eq!(e.code(), "InvalidAuthHeader");

        let mut c = claims(&server.base, now);
        c.as_object_mut().expect("object").remove("iat");
        assert_eq!(
            reject(&auth, &signer.token(&c)).await.reason(),
            &Reason::MissingClaim("iat")
        );
        // nbf is ignored, even far in the future.
        let mut c = claims(&server.base, now);
        c["nbf"] = json!(now + 1000);
        accept(&auth, &signer.token(&c)).await;
    }

    #[tokio::test]
    async fn oidc_discovery_issuer_must_match_byte_for_byte() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa");
        server.set_discovery(&format!("{}/", server.base), "/keys");
        server.set("/keys", Route::json(&jwks(&[signer.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let e = reject(&auth, &signer.token(&claims(&server.base, clock.secs()))).await;
        assert_eq!(e.reason(), &Reason::IssuerMismatch);
        assert_eq!((e.status(), e.code()), (400, "AuthProviderDiscoveryFailed"));
        assert_eq!(server.hits("/keys"), 0);

        // With the slash in the token's iss it matches (discovery URL has no double slash).
        let with_slash = format!("{}/", server.base);
        let identity = accept(&auth, &signer.token(&claims(&with_slash, clock.secs()))).await;
        assert_eq!(identity.token_identifier, format!("{with_slash}|svc-1"));
    }

    #[tokio::test]
    async fn oidc_audience_rules() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa");
        server.set_discovery(&server.base, "/keys");
        server.set("/keys", Route::json(&jwks(&[signer.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let mut c = claims(&server.base, clock.secs());
        c["aud"] = json!([APP]);
        accept(&auth, &signer.token(&c)).await;
        c["aud"] = json!([APP, "other"]);
        let e = reject(&auth, &signer.token(&c)).await;
        assert_eq!(e.reason(), &Reason::MultipleAudiences);
        assert_eq!(e.code(), "InvalidAuthHeader");
        c["aud"] = json!("other");
        let e = reject(&auth, &signer.token(&c)).await;
        assert_eq!(
            (e.code(), e.reason()),
            ("NoAuthProvider", &Reason::WrongAudience)
        );
    }

    #[tokio::test]
    async fn oidc_typ_and_algorithm_rules() {
        let server = TestServer::start().await;
        let rsa = Signer::rsa("rsa");
        let ec = Signer::ec("ec");
        server.set_discovery(&server.base, "/keys");
        server.set("/keys", Route::json(&jwks(&[rsa.jwk(), ec.jwk()]), &[]));
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let c = claims(&server.base, clock.secs());
        accept(&auth, &rsa.sign(&json!({"alg": "RS256", "kid": "rsa"}), &c)).await;
        for typ in ["at+jwt", "jwt", "application/jwt"] {
            let e = reject(
                &auth,
                &rsa.sign(&json!({"alg": "RS256", "kid": "rsa", "typ": typ}), &c),
            )
            .await;
            assert_eq!(e.reason(), &Reason::BadTyp, "{typ}");
        }
        let e = reject(&auth, &ec.token(&c)).await;
        assert_eq!(e.reason(), &Reason::UnsupportedAlgorithm);
        assert!(e.message().contains("unsupported algorithm"), "{e}");
        let header = b64(json!({"alg": "none"}).to_string().as_bytes());
        let none = format!("{header}.{}.", b64(c.to_string().as_bytes()));
        assert_eq!(
            reject(&auth, &none).await.reason(),
            &Reason::UnsupportedAlgorithm
        );
    }

    #[tokio::test]
    async fn oidc_discovery_failures() {
        let server = TestServer::start().await;
        let signer = Signer::rsa("rsa");
        let clock = Clock::new();
        let auth = ConvexAuth::with_clock(vec![oidc(&server)], clock.now());
        let token = signer.token(&claims(&server.base, clock.secs()));
        let discovery = "/.well-known/openid-configuration";
        for status in [401, 403, 404, 421, 425, 429] {
            server.set(
                discovery,
                Route::raw(status, &[("Content-Type", "application/json")], "{}"),
            );
            let e = reject(&auth, &token).await;
            assert_eq!(e.status(), status);
            assert_eq!(e.reason(), &Reason::DiscoveryFailed(status));
            assert_eq!(e.code(), "AuthProviderDiscoveryFailed");
        }
        let failures = [
            Route::raw(500, &[("Content-Type", "application/json")], "{}"),
            Route::raw(200, &[("Content-Type", "text/html")], "{}"),
            Route::json(&json!({"issuer": server.base}), &[]),
            Route::json(&json!({"jwks_uri": server.url("/keys")}), &[]),
            Route::raw(200, &[("Content-Type", "application/json")], "not json"),
        ];
        for route in failures {
            server.set(discovery, route);
            let e = reject(&auth, &token).await;
            assert_eq!(
                (e.status(), e.reason()),
                (400, &Reason::DiscoveryFailed(400)),
                "{e}"
            );
        }
        // Discovery fine but the JWKS cannot be fetched.
        server.set_discovery(&server.base, "/missing");
        let e = reject(&auth, &token).await;
        assert_eq!((e.status(), e.reason()), (400, &Reason::JwksFetch));
        server.set_discovery(&server.base, "/keys");
        server.set("/keys", Route::json(&json!({"keys": "nope"}), &[]));
        let e = reject(&auth, &token).await;
        assert_eq!((e.status(), e.reason()), (400, &Reason::JwksParse));
        server.set("/keys", Route::json(&jwks(&[signer.jwk()]), &[]));
        accept(&auth, &token).await;
    }
}
