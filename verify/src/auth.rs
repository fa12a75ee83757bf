//! [`SvctokenAuth`], what an API accepts, and the [`Authenticator`] it builds, which verifies
//! tokens against the issuer's cached keys.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use svctoken_jwks::{Jwks, MAX_TOKEN_LEN, Validation, Verifier};
use svctoken_mint::{Clock, IssuerUrl, SystemClock};

use crate::remote::{FETCH_TIMEOUT, JwksSource, RemoteJwks};
use crate::{Error, Result, ServiceIdentity, SvctokenAuthLayer};

/// What an API accepts: tokens of one issuer for one audience, optionally with required scopes
/// and from listed clients only. Build it into an [`Authenticator`] or straight into a
/// [`SvctokenAuthLayer`].
///
/// Each key's algorithm is pinned by the key (its type and curve), never read from the token.
#[derive(Clone)]
pub struct SvctokenAuth {
    issuer: String,
    audience: String,
    jwks_url: Option<String>,
    scopes: Vec<String>,
    clients: Option<BTreeSet<String>>,
    leeway: Duration,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl std::fmt::Debug for SvctokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvctokenAuth")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_url", &self.jwks_url)
            .field("scopes", &self.scopes)
            .field("clients", &self.clients)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl SvctokenAuth {
    /// Tokens whose `iss` is exactly `issuer` and whose `aud` contains `audience`; the keys
    /// are found through the issuer's OpenID discovery document.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        SvctokenAuth {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            scopes: Vec::new(),
            clients: None,
            leeway: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            http: None,
        }
    }

    /// Fetches the keys from `url` instead of discovering it (e.g. the issuer's
    /// `/audiences/<audience>/jwks.json`).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Requires `scope` (each call adds one; all are required). A token without it is
    /// answered 403 `insufficient_scope`.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// Accepts only tokens whose `client_id` is one of `clients` (calls add up).
    pub fn allow_clients<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.clients
            .get_or_insert_with(BTreeSet::new)
            .extend(clients.into_iter().map(Into::into));
        self
    }

    /// Tolerated clock difference on `exp`, `nbf` and `iat`. Default 5 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The clock tokens and the key cache are timed by. Default the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client keys are fetched with. Default: a new rustls client; each fetch is
    /// bounded to 5 s and 1 MiB either way.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Authenticator> {
        IssuerUrl::parse(&self.issuer)
            .map_err(|e| Error::Config(format!("issuer {:?}: {e}", self.issuer)))?;
        if self.audience.is_empty() {
            return Err(Error::Config("the audience is empty".into()));
        }
        if let Some(url) = &self.jwks_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(Error::Config(format!("JWKS URL {url:?} is not http(s)")));
        }
        if let Some(bad) = self.scopes.iter().find(|s| {
            s.is_empty()
                || s.chars()
                    .any(|c| c == '"' || c == '\\' || c.is_whitespace() || c.is_control())
        }) {
            return Err(Error::Config(format!(
                "scope {bad:?} must be non-empty with no spaces, quotes or backslashes"
            )));
        }
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .build()
                .map_err(|e| Error::Config(format!("HTTP client: {e}")))?,
        };
        let source = match self.jwks_url {
            Some(url) => JwksSource::Url(url),
            None => JwksSource::Discover {
                issuer: self.issuer.clone(),
            },
        };
        let mut validation = Validation::new(&self.issuer, &self.audience);
        validation.leeway = self.leeway;
        Ok(Authenticator {
            inner: Arc::new(Inner {
                jwks: RemoteJwks::new(source, http, self.clock.clone()),
                validation,
                scopes: self.scopes,
                clients: self.clients,
                clock: self.clock,
                verifier: Mutex::new(None),
            }),
        })
    }

    /// Builds the verifier into a tower layer.
    pub fn layer(self) -> Result<SvctokenAuthLayer> {
        self.build().map(SvctokenAuthLayer::new)
    }
}

/// Verifies bearer tokens as its [`SvctokenAuth`] says. Cheap to clone (clones share the key
/// cache).
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    jwks: RemoteJwks,
    validation: Validation,
    scopes: Vec<String>,
    clients: Option<BTreeSet<String>>,
    clock: Arc<dyn Clock>,
    /// The verifier over the cached key set it was built from (keys are parsed once).
    verifier: Mutex<Option<(Arc<Jwks>, Arc<Verifier>)>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwks", &self.jwks)
            .field("validation", &self.validation)
            .field("scopes", &self.scopes)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Verifies `token` (the bare token, without `Bearer `): signature by one of the issuer's
    /// keys, `iss`, `aud`, `exp`/`nbf`/`iat` with the leeway, then the client and scope rules.
    pub async fn verify(&self, token: &str) -> Result<ServiceIdentity> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::InvalidToken(svctoken_jwks::Error::Malformed(
                "token longer than 16 KiB",
            )));
        }
        let (header, _) = svctoken_jwks::dangerous::decode_unverified(token)?;
        let kid = header.get("kid").and_then(serde_json::Value::as_str);
        let keys = inner.jwks.keys(kid).await?;
        let verifier = self.verifier_for(&keys.jwks);
        let claims = verifier
            .verify(token, inner.clock.now())
            .map_err(|e| match e {
                svctoken_jwks::Error::UnknownKey(_) if keys.unconfirmed => Error::KeysUnavailable {
                    url: inner.jwks.source_url(),
                    message: "the token's key is not cached and the keys can't be refreshed".into(),
                },
                e => Error::InvalidToken(e),
            })?;
        let identity = ServiceIdentity::from_claims(claims)?;
        if let Some(clients) = &inner.clients
            && !identity
                .client_id
                .as_ref()
                .is_some_and(|id| clients.contains(id))
        {
            return Err(Error::ClientNotAllowed);
        }
        if !inner.scopes.iter().all(|s| identity.has_scope(s)) {
            return Err(Error::InsufficientScope {
                required: inner.scopes.clone(),
            });
        }
        Ok(identity)
    }

    /// The issuer's key cache.
    pub fn jwks(&self) -> &RemoteJwks {
        &self.inner.jwks
    }

    fn verifier_for(&self, jwks: &Arc<Jwks>) -> Arc<Verifier> {
        let mut cached = self
            .inner
            .verifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*cached {
            Some((set, verifier)) if Arc::ptr_eq(set, jwks) => verifier.clone(),
            _ => {
                let verifier = Arc::new(Verifier::new(jwks, self.inner.validation.clone()));
                *cached = Some((jwks.clone(), verifier.clone()));
                verifier
            }
        }
    }
}
