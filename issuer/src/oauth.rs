//! The OAuth 2.0 token endpoint (RFC 6749 section 4.4, client credentials), independent of
//! HTTP plumbing: parse the form, authenticate the client, apply its policy, mint. Also RFC
//! 8693 token exchange, `private_key_jwt` client authentication and acting for a user.

// A refusal carries what the log and the audit trail need; it answers a bad request, where
// moving 144 bytes is nothing next to the network round trip.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};

use crate::assertion::{self, ReplayCache};
use crate::clients::{AuthFailure, Client, ClientRegistry};
use crate::minter::{MintRequest, Minted, Minter};
use crate::ratelimit::RateLimiter;
use crate::trusted::TrustedIssuer;
use crate::{Audience, Clock, Result, Settings};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The client credentials grant (RFC 6749 section 4.4).
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The token exchange grant (RFC 8693).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type svctoken issues, in token exchange answers.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Subject token types accepted in a token exchange.
pub const SUBJECT_TOKEN_TYPES: [&str; 3] = [
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:id_token",
];
/// The deepest chain of actors a token may carry.
pub const MAX_ACTOR_DEPTH: usize = 4;

/// An RFC 6749 section 5.2 error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter; unreadable body.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// A requested scope is not the client's.
    InvalidScope,
    /// The audience is unknown or not the client's (RFC 8707).
    InvalidTarget,
    /// Something failed on our side (500).
    ServerError,
    /// The issuer can't mint for this audience right now, e.g. while its signing algorithm
    /// changes to one the audience can verify (503), or the client is over its rate limit
    /// (429 with `Retry-After`).
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The `error` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status it is sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An error answer of the token endpoint: `{"error", "error_description"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    /// The code.
    pub error: ErrorCode,
    /// A human description for the caller (never a secret, never why a client failed to
    /// authenticate: that goes to the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// HTTP status override (413 for a body over the limit, 429 over the rate limit).
    #[serde(skip)]
    pub status: Option<u16>,
    /// Seconds for a `Retry-After` header.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            error_description: Some(description.into()),
            status: None,
            retry_after: None,
        }
    }

    /// The HTTP status to send.
    pub fn http_status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.error.status())
    }

    fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error.as_str())?;
        if let Some(d) = &self.error_description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// A successful answer.
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Granted scopes, space-separated (absent when none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// For a token exchange: what was issued (RFC 8693 section 2.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// A token request as received: the body and the `Authorization` header.
#[derive(Clone, Copy, Debug)]
pub struct TokenRequest<'a> {
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `Authorization`, if any.
    pub authorization: Option<&'a str>,
    /// The raw body.
    pub body: &'a [u8],
}

/// The outcome of a granted request, for the log, the metrics and the audit trail.
#[derive(Debug)]
pub struct Grant {
    /// The answer to send.
    pub response: TokenResponse,
    /// The authenticated client.
    pub client_id: String,
    /// What was minted (`jti`, `kid`, times).
    pub minted: Minted,
    /// `sub` of the token.
    pub subject: String,
    /// `aud` of the token.
    pub audience: String,
    /// `act` of the token, when a service acts for a user.
    pub act: Option<Value>,
}

/// A failed request: the answer, and what the log and audit trail should know (the real
/// reason never goes to the caller).
#[derive(Debug)]
pub struct Refusal {
    /// The answer to send.
    pub error: OAuthError,
    /// The client id the request named, if any.
    pub client_id: Option<String>,
    /// The subject asked for, if any.
    pub subject: Option<String>,
    /// The audience asked for, if any.
    pub audience: Option<String>,
    /// Why, for the log only.
    pub reason: String,
}

impl Refusal {
    fn new(error: OAuthError, reason: impl Into<String>) -> Self {
        Refusal {
            error,
            client_id: None,
            subject: None,
            audience: None,
            reason: reason.into(),
        }
    }

    fn from_error(error: OAuthError) -> Self {
        let reason = error.to_string();
        Self::new(error, reason)
    }

    fn client(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_owned());
        self
    }
}

/// The token endpoint: client authentication, policy, minting.
pub struct TokenEndpoint {
    clients: ClientRegistry,
    minter: Minter,
    audiences: Vec<Audience>,
    issuer: String,
    token_endpoint: String,
    trusted: Vec<TrustedIssuer>,
    replay: ReplayCache,
    limiter: RateLimiter,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// How the client authenticated.
enum ClientProof<'a> {
    Secret {
        id: String,
        secret: String,
    },
    Assertion {
        id: Option<&'a str>,
        assertion: &'a str,
    },
}

impl TokenEndpoint {
    /// The endpoint of an issuer with these settings, signing with `minter`.
    pub fn new(settings: &Settings, minter: Minter, clock: Arc<dyn Clock>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))?;
        Ok(TokenEndpoint {
            clients: ClientRegistry::new(settings.clients.clone())?,
            minter,
            audiences: settings.audiences.clone(),
            issuer: settings.issuer.clone(),
            token_endpoint: settings.token_endpoint(),
            trusted: settings
                .trusted_issuers
                .iter()
                .map(|t| TrustedIssuer::new(t.clone(), http.clone()))
                .collect(),
            replay: ReplayCache::new(100_000),
            limiter: RateLimiter::new(settings.rate_limit),
            clock,
        })
    }

    /// The registered clients.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// The trusted upstream issuers.
    pub fn trusted_issuers(&self) -> &[TrustedIssuer] {
        &self.trusted
    }

    /// Handles one token request.
    pub async fn handle(&self, req: &TokenRequest<'_>) -> Result<Grant, Refusal> {
        let form = Form::parse(req).map_err(Refusal::from_error)?;
        let grant_type = form.get("grant_type").ok_or_else(|| {
            Refusal::new(
                OAuthError::new(ErrorCode::InvalidRequest, "grant_type is required"),
                "no grant_type",
            )
        })?;
        if grant_type != CLIENT_CREDENTIALS && grant_type != TOKEN_EXCHANGE {
            let e = OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type must be {CLIENT_CREDENTIALS} or {TOKEN_EXCHANGE}"),
            );
            return Err(Refusal::new(e, format!("grant_type {grant_type:?}")));
        }
        let client = self.authenticate(req.authorization, &form)?;
        let refuse = |e: OAuthError| {
            let mut r = Refusal::from_error(e).client(&client.id);
            r.subject = form.get("subject").map(str::to_owned);
            r.audience = form.get("audience").map(str::to_owned);
            r
        };
        if let Err(wait) = self.limiter.check(&client.id, self.clock.now()) {
            let mut e = OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many token requests from this client; retry later",
            );
            e.status = Some(429);
            e.retry_after = Some(wait.as_secs().max(1));
            return Err(refuse(e));
        }
        let audience =
            choose_audience(client, &self.audiences, form.get("audience")).map_err(refuse)?;
        let scope = grant_scope(client, form.get("scope")).map_err(refuse)?;
        check_algorithm(&self.minter, &self.audiences, audience).map_err(refuse)?;

        // Whom the token is for, and who acts.
        let (subject, actor, prior_actor, exchanged) = if grant_type == TOKEN_EXCHANGE {
            let claims = self.exchange_subject(&form).await.map_err(|(e, why)| {
                let mut r = refuse(e);
                r.reason = why;
                r
            })?;
            let user = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let prior = claims.get("act").cloned();
            (user, Some(client.subject.as_str()), prior, true)
        } else {
            match form.get("subject") {
                None => (client.subject.clone(), None, None, false),
                Some(user) => {
                    check_subject(user).map_err(refuse)?;
                    (user.to_owned(), Some(client.subject.as_str()), None, false)
                }
            }
        };
        if actor.is_some() {
            if !client.may_act_as(&subject) {
                let mut r = refuse(OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "this client may not act on behalf of that subject",
                ));
                r.subject = Some(subject.clone());
                r.reason = format!("act_as does not allow {subject:?}");
                return Err(r);
            }
            if prior_actor
                .as_ref()
                .is_some_and(|p| actor_depth(p) >= MAX_ACTOR_DEPTH)
            {
                let mut r = refuse(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "the subject_token's chain of actors is too long",
                ));
                r.subject = Some(subject.clone());
                return Err(r);
            }
        }
        let minted = self
            .minter
            .mint(&MintRequest {
                subject: &subject,
                audience,
                ttl: client.max_ttl,
                client_id: Some(&client.id),
                scope: scope.as_deref(),
                actor,
                prior_actor: prior_actor.as_ref(),
                claims: Some(&client.claims),
            })
            .map_err(|e| {
                let mut r = refuse(OAuthError::new(
                    ErrorCode::ServerError,
                    "the token could not be signed",
                ));
                r.reason = e.to_string();
                r
            })?;
        let act = actor.map(|sub| match &prior_actor {
            Some(prior) => json!({"sub": sub, "act": prior}),
            None => json!({"sub": sub}),
        });
        Ok(Grant {
            response: TokenResponse {
                access_token: minted.token.clone(),
                token_type: "Bearer",
                expires_in: minted.expires_in(),
                scope,
                issued_token_type: exchanged.then_some(ACCESS_TOKEN_TYPE),
            },
            client_id: client.id.clone(),
            audience: audience.to_owned(),
            subject,
            act,
            minted,
        })
    }

    /// Authenticates the client by secret (Basic or body) or by signed assertion; every
    /// failure is `invalid_client` (the reason goes to the log and the audit trail).
    fn authenticate(&self, authorization: Option<&str>, form: &Form) -> Result<&Client, Refusal> {
        let proof = client_proof(authorization, form).map_err(|(e, why)| Refusal::new(e, why))?;
        let invalid = |id: Option<&str>, why: &str| {
            let mut r = Refusal::new(OAuthError::invalid_client(), why);
            r.client_id = id.map(str::to_owned);
            r
        };
        match proof {
            ClientProof::Secret { id, secret } => {
                self.clients.authenticate(&id, &secret).map_err(|failure| {
                    let why = match failure {
                        AuthFailure::UnknownClient => "unknown client",
                        AuthFailure::WrongSecret => "wrong secret",
                        AuthFailure::NotASecretClient => "a key-registered client sent a secret",
                    };
                    invalid(Some(&id), why)
                })
            }
            ClientProof::Assertion { id, assertion } => {
                let claimed = assertion::claimed_client(assertion);
                let id = match (id, claimed.as_deref()) {
                    (Some(given), Some(claimed)) if given != claimed => {
                        return Err(invalid(
                            Some(given),
                            "client_id differs from the assertion's sub",
                        ));
                    }
                    (Some(given), _) => given,
                    (None, Some(claimed)) => claimed,
                    (None, None) => return Err(invalid(None, "unreadable client assertion")),
                };
                let client = self
                    .clients
                    .get(id)
                    .ok_or_else(|| invalid(Some(id), "unknown client"))?;
                let audiences = [self.token_endpoint.as_str(), self.issuer.as_str()];
                assertion::verify(
                    client,
                    assertion,
                    &audiences,
                    &self.replay,
                    self.clock.now(),
                )
                .map_err(|why| invalid(Some(id), &why))?;
                Ok(client)
            }
        }
    }

    /// Verifies the `subject_token` of a token exchange against the trusted issuers.
    async fn exchange_subject(
        &self,
        form: &Form,
    ) -> Result<svctoken_jwks::Claims, (OAuthError, String)> {
        let bad = |why: String| {
            (
                OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "the subject_token is not acceptable",
                ),
                why,
            )
        };
        let token = form.get("subject_token").ok_or_else(|| {
            (
                OAuthError::new(ErrorCode::InvalidRequest, "subject_token is required"),
                "no subject_token".to_owned(),
            )
        })?;
        match form.get("subject_token_type") {
            Some(t) if SUBJECT_TOKEN_TYPES.contains(&t) => {}
            other => {
                return Err((
                    OAuthError::new(
                        ErrorCode::InvalidRequest,
                        "subject_token_type must be urn:ietf:params:oauth:token-type:jwt (or access_token, id_token)",
                    ),
                    format!("subject_token_type {other:?}"),
                ));
            }
        }
        if let Some(t) = form.get("requested_token_type")
            && t != ACCESS_TOKEN_TYPE
            && t != SUBJECT_TOKEN_TYPES[0]
        {
            return Err((
                OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "only access tokens (JWTs) are issued",
                ),
                format!("requested_token_type {t:?}"),
            ));
        }
        if form.get("actor_token").is_some() {
            return Err((
                OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "actor_token is not supported: the authenticated client is the actor",
                ),
                "actor_token sent".into(),
            ));
        }
        let (header, payload) = svctoken_jwks::dangerous::decode_unverified(token)
            .map_err(|e| bad(format!("subject_token: {e}")))?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let trusted = self
            .trusted
            .iter()
            .find(|t| t.issuer() == iss)
            .ok_or_else(|| bad(format!("subject_token from untrusted issuer {iss:?}")))?;
        let kid = header.get("kid").and_then(Value::as_str);
        trusted
            .verify(token, kid, self.clock.now())
            .await
            .map_err(bad)
    }
}

fn actor_depth(act: &Value) -> usize {
    let mut depth = 0;
    let mut current = Some(act);
    while let Some(a) = current {
        depth += 1;
        current = a.get("act");
        if depth > MAX_ACTOR_DEPTH {
            break;
        }
    }
    depth
}

/// A subject to act for: non-empty, at most 256 characters, no control characters.
fn check_subject(subject: &str) -> Result<(), OAuthError> {
    if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "subject must be 1 to 256 characters without control characters",
        ));
    }
    Ok(())
}

fn choose_audience<'a>(
    client: &'a Client,
    audiences: &[Audience],
    asked: Option<&str>,
) -> Result<&'a str, OAuthError> {
    if client.audiences.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not obtain tokens for any audience",
        ));
    }
    match asked {
        None if client.audiences.len() == 1 => Ok(&client.audiences[0]),
        None => Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            format!(
                "audience is required: this client may use {}",
                client.audiences.join(", ")
            ),
        )),
        Some(name) => match client.audiences.iter().find(|a| *a == name) {
            Some(a) if audiences.iter().any(|known| known.name == *a) => Ok(a),
            _ => Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                format!("audience {name:?} is not available to this client"),
            )),
        },
    }
}

/// Never mint what the audience can't verify: while the configured algorithm changes, the old
/// key may still be signing for up to one prepare lead.
fn check_algorithm(
    minter: &Minter,
    audiences: &[Audience],
    audience: &str,
) -> Result<(), OAuthError> {
    let alg = minter.active_key().algorithm();
    match audiences.iter().find(|a| a.name == audience) {
        Some(a) if !a.profile.algorithms().contains(&alg) => Err(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!(
                "the signing key ({alg}) is being replaced by one audience {audience:?} can verify; retry in a few minutes"
            ),
        )),
        _ => Ok(()),
    }
}

fn grant_scope(client: &Client, asked: Option<&str>) -> Result<Option<String>, OAuthError> {
    let granted: Vec<&str> = match asked {
        None => client.scopes.iter().map(String::as_str).collect(),
        Some(text) => {
            let mut list: Vec<&str> = Vec::new();
            for s in text.split(' ').filter(|s| !s.is_empty()) {
                if !client.scopes.iter().any(|own| own == s) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("scope {s:?} is not granted to this client"),
                    ));
                }
                if !list.contains(&s) {
                    list.push(s);
                }
            }
            list
        }
    };
    Ok((!granted.is_empty()).then(|| granted.join(" ")))
}

/// How the client authenticates: a JWT assertion (`client_assertion_type` +
/// `client_assertion`), or a secret; more than one method at once is an error.
fn client_proof<'a>(
    authorization: Option<&str>,
    form: &'a Form,
) -> Result<ClientProof<'a>, (OAuthError, String)> {
    match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (None, None) => {
            let (id, secret) = credentials(authorization, form)?;
            Ok(ClientProof::Secret { id, secret })
        }
        (Some(kind), Some(assertion)) => {
            if kind != assertion::CLIENT_ASSERTION_TYPE {
                return Err((
                    OAuthError::invalid_client(),
                    format!("client_assertion_type {kind:?}"),
                ));
            }
            if authorization.is_some() || form.get("client_secret").is_some() {
                let e = OAuthError::new(
                    ErrorCode::InvalidRequest,
                    "use one client authentication method, not an assertion and a secret",
                );
                return Err((e, "two authentication methods".into()));
            }
            Ok(ClientProof::Assertion {
                id: form.get("client_id"),
                assertion,
            })
        }
        _ => Err((
            OAuthError::invalid_client(),
            "client_assertion and client_assertion_type go together".into(),
        )),
    }
}

/// Client id and secret from `Authorization: Basic` (RFC 6749 section 2.3.1: each part is
/// form-urlencoded before base64) or from the body; both at once is an error.
fn credentials(
    authorization: Option<&str>,
    form: &Form,
) -> Result<(String, String), (OAuthError, String)> {
    let in_body = (form.get("client_id"), form.get("client_secret"));
    let Some(header) = authorization else {
        return match in_body {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            (Some(_), None) => Err((
                OAuthError::invalid_client(),
                "client_id without secret".into(),
            )),
            _ => Err((
                OAuthError::invalid_client(),
                "no client authentication".into(),
            )),
        };
    };
    if in_body.1.is_some() {
        let e = OAuthError::new(
            ErrorCode::InvalidRequest,
            "use one client authentication method, not both Basic and client_secret",
        );
        return Err((e, "two authentication methods".into()));
    }
    let malformed = || {
        (
            OAuthError::invalid_client(),
            "malformed Basic header".to_owned(),
        )
    };
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(malformed());
    }
    let decoded = STANDARD.decode(value.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = form_decode(id).ok_or_else(malformed)?;
    let secret = form_decode(secret).ok_or_else(malformed)?;
    if id.is_empty() {
        return Err(malformed());
    }
    if in_body.0.is_some_and(|body_id| body_id != id) {
        let e = OAuthError::new(
            ErrorCode::InvalidRequest,
            "client_id differs from the Basic header",
        );
        return Err((e, "client_id mismatch".into()));
    }
    Ok((id, secret))
}

/// Decodes one `application/x-www-form-urlencoded` component; `None` if not UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// A parsed form: each parameter at most once, empty values treated as absent
/// (RFC 6749 section 3.1).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(req: &TokenRequest<'_>) -> Result<Form, OAuthError> {
        let media_type = req
            .content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim);
        if !media_type.is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body = std::str::from_utf8(req.body)
            .map_err(|_| OAuthError::new(ErrorCode::InvalidRequest, "the body is not UTF-8"))?;
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in body.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad =
                || OAuthError::new(ErrorCode::InvalidRequest, "a parameter is not valid UTF-8");
            let (k, v) = (
                form_decode(k).ok_or_else(bad)?,
                form_decode(v).ok_or_else(bad)?,
            );
            if params.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!("parameter {k:?} is repeated"),
                ));
            }
            params.push((k, v));
        }
        params.retain(|(_, v)| !v.is_empty());
        Ok(Form(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Result<Form, OAuthError> {
        Form::parse(&TokenRequest {
            content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
            authorization: None,
            body: body.as_bytes(),
        })
    }

    #[test]
    fn form_parsing() {
        let f = form("grant_type=client_credentials&scope=a+b%20c&empty=").expect("ok");
        assert_eq!(f.get("scope"), Some("a b c"));
        assert_eq!(f.get("empty"), None);
        assert!(form("a=1&a=2").is_err());
        assert!(form("a=%FF").is_err());
        let wrong_type = Form::parse(&TokenRequest {
            content_type: Some("application/json"),
            authorization: None,
            body: b"{}",
        });
        assert!(wrong_type.is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let f = form("").expect("ok");
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bcret+x"));
        let (id, secret) = credentials(Some(&header), &f).expect("ok");
        assert_eq!((id.as_str(), secret.as_str()), ("my:client", "s+cret x"));
        for bad in [
            "Basic !!",
            "Bearer abc",
            "Basic",
            &format!("Basic {}", STANDARD.encode("nocolon")),
        ] {
            let (e, _) = credentials(Some(bad), &f).expect_err(bad);
            assert_eq!(e.error, ErrorCode::InvalidClient);
        }
    }
}
