//! OAuth 2.0 client credentials (RFC 6749 section 4.4) against an svctoken issuer or any
//! token endpoint.

use std::time::Duration;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Deserialize;
use serde_json::json;
use svctoken_jwks::SigningKey;
use svctoken_mint::oauth::{CLIENT_ASSERTION_TYPE, ErrorBody, TokenResponse};
use svctoken_mint::{Clock as _, SystemClock};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::source::{FetchFuture, TokenSource};
use crate::{Error, FetchedToken, Result};

/// The lifetime assumed when a token endpoint omits `expires_in` (svctoken's default).
pub const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// How a secret is sent to the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMethod {
    /// `Authorization: Basic` (RFC 6749 section 2.3.1). The default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// What proves the client's identity.
enum Credential {
    Secret(Zeroizing<String>),
    /// `private_key_jwt` (RFC 7523 section 2.2): a fresh signed assertion per request.
    Key(Box<SigningKey>),
}

/// Lifetime of each `private_key_jwt` assertion.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Where the token endpoint is.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// Discovered from `<issuer>/.well-known/openid-configuration` on first use.
    Issuer(String),
    /// Given directly.
    TokenEndpoint(String),
}

/// Fetches tokens with `grant_type=client_credentials`.
pub struct ClientCredentials {
    http: reqwest::Client,
    endpoint: Endpoint,
    discovered: OnceCell<Discovered>,
    /// The `aud` of client assertions when no discovery tells it.
    issuer_identifier: Option<String>,
    client_id: String,
    credential: Credential,
    method: AuthMethod,
    audience: Option<String>,
    scope: Option<String>,
    subject: Option<String>,
}

/// What discovery told: the issuer identifier (the audience of client assertions) and the token
/// endpoint.
struct Discovered {
    issuer: String,
    token_endpoint: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    token_endpoint: String,
}

impl ClientCredentials {
    /// A source for `client_id` with `client_secret` at `endpoint`, with a default HTTP client
    /// (10 s timeout).
    pub fn new(
        endpoint: Endpoint,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let secret = Credential::Secret(Zeroizing::new(client_secret.into()));
        Self::with_credential(endpoint, client_id.into(), secret)
    }

    /// A source for a client registered with a public key: each request carries an assertion
    /// signed with `key` (`private_key_jwt`); no secret exists anywhere.
    pub fn with_private_key(
        endpoint: Endpoint,
        client_id: impl Into<String>,
        key: SigningKey,
    ) -> Self {
        Self::with_credential(endpoint, client_id.into(), Credential::Key(Box::new(key)))
    }

    /// Like [`ClientCredentials::with_private_key`], with the PEM private key in `path`
    /// (PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub fn from_key_file(
        endpoint: Endpoint,
        client_id: impl Into<String>,
        path: impl AsRef<Path>,
    ) -> Result<Self> {
        let key = crate::source::read_private_key(path.as_ref())?;
        Ok(Self::with_private_key(endpoint, client_id, key))
    }

    fn with_credential(endpoint: Endpoint, client_id: String, credential: Credential) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        ClientCredentials {
            http,
            endpoint,
            discovered: OnceCell::new(),
            issuer_identifier: None,
            client_id,
            credential,
            method: AuthMethod::default(),
            audience: None,
            scope: None,
            subject: None,
        }
    }

    /// Acts on behalf of `subject` (the issuer's `act_as` policy must allow it): the tokens'
    /// `sub` is the user and `act.sub` this client's subject. Default: the client itself. Use
    /// one source (and cache) per subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// The `audience` parameter. Default none (an svctoken issuer then uses the client's only
    /// audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The issuer identifier, as its discovery document spells it: the `aud` of the client
    /// assertions (`private_key_jwt`), which an svctoken issuer accepts only when it is exactly
    /// its issuer identifier, never the token endpoint URL. Needed only with
    /// [`Endpoint::TokenEndpoint`]; with [`Endpoint::Issuer`] it comes from discovery.
    pub fn issuer_identifier(mut self, issuer: impl Into<String>) -> Self {
        self.issuer_identifier = Some(issuer.into());
        self
    }

    /// The `scope` parameter, space-separated. Default none (all of the client's scopes).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// How a secret is sent. Default `client_secret_basic`; ignored for key clients.
    pub fn auth_method(mut self, method: AuthMethod) -> Self {
        self.method = method;
        self
    }

    /// Uses this HTTP client (connection pool, timeouts, proxies).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The token endpoint, and the issuer identifier if known.
    async fn endpoints(&self) -> Result<(&str, Option<&str>)> {
        let issuer = match &self.endpoint {
            Endpoint::TokenEndpoint(url) => return Ok((url, self.issuer_identifier.as_deref())),
            Endpoint::Issuer(issuer) => issuer,
        };
        let found = self
            .discovered
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.trim_end_matches('/')
                );
                let response = self.http.get(&url).send().await.map_err(Error::transport)?;
                if !response.status().is_success() {
                    return Err(Error::Protocol(format!(
                        "discovery {url} answered {}",
                        response.status()
                    )));
                }
                let doc: Discovery = response
                    .json()
                    .await
                    .map_err(|e| Error::Protocol(format!("discovery {url}: {e}")))?;
                // Mix-up defence: the document must speak for the issuer we asked.
                if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
                    return Err(Error::Protocol(format!(
                        "discovery at {url} is for issuer {:?}, not {issuer:?}",
                        doc.issuer
                    )));
                }
                Ok(Discovered {
                    issuer: doc.issuer,
                    token_endpoint: doc.token_endpoint,
                })
            })
            .await?;
        Ok((&found.token_endpoint, Some(&found.issuer)))
    }

    async fn request(&self) -> Result<FetchedToken> {
        let (endpoint, issuer) = self.endpoints().await?;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(a) = &self.audience {
            form.push(("audience", a));
        }
        if let Some(s) = &self.scope {
            form.push(("scope", s));
        }
        if let Some(s) = &self.subject {
            form.push(("subject", s));
        }
        let mut request = self.http.post(endpoint);
        let assertion;
        match (&self.credential, self.method) {
            (Credential::Secret(secret), AuthMethod::ClientSecretBasic) => {
                // RFC 6749 section 2.3.1: each part is form-urlencoded before base64.
                let encode =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair =
                    Zeroizing::new(format!("{}:{}", encode(&self.client_id), encode(secret)));
                let header = Zeroizing::new(format!("Basic {}", STANDARD.encode(pair.as_bytes())));
                request = request.header(reqwest::header::AUTHORIZATION, header.as_str());
            }
            (Credential::Secret(secret), AuthMethod::ClientSecretPost) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
            }
            (Credential::Key(key), _) => {
                let audience = issuer.ok_or_else(|| {
                    Error::Config(
                        "private_key_jwt needs the issuer identifier as the assertion audience: \
                         use Endpoint::Issuer, or set issuer_identifier(...)"
                            .into(),
                    )
                })?;
                assertion = self.assertion(key, audience)?;
                form.push(("client_id", &self.client_id));
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                form.push(("client_assertion", &assertion));
            }
        }
        let requested_at = Instant::now();
        let response = request.form(&form).send().await.map_err(Error::transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(Error::transport)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(f) => Error::OAuth {
                    status: status.as_u16(),
                    error: f.error,
                    description: f.error_description.map(String::from),
                },
                Err(_) => Error::Protocol(format!(
                    "token endpoint answered {status} without an OAuth error body"
                )),
            });
        }
        let success: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Protocol(format!("token endpoint answer: {e}")))?;
        if !success.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Protocol(format!(
                "token_type {:?} is not Bearer",
                success.token_type
            )));
        }
        Ok(FetchedToken {
            access_token: success.access_token,
            lifetime: Some(
                success
                    .expires_in
                    .map_or(ASSUMED_LIFETIME, Duration::from_secs),
            ),
            requested_at,
        })
    }
}

impl ClientCredentials {
    /// A one-minute assertion: `iss` = `sub` = client id, `aud` = the issuer identifier (one
    /// string), a random `jti` (the issuer refuses any replay).
    fn assertion(&self, key: &SigningKey, issuer: &str) -> Result<String> {
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| Error::Mint("no randomness for the assertion jti".into()))?;
        let now = SystemClock.unix_secs();
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": issuer,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs(),
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        key.sign_jwt(&claims)
            .map_err(|e| Error::Mint(format!("signing the client assertion: {e}")))
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(self.request())
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("method", &self.method)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}
