//! The OAuth 2.0 token endpoint (RFC 6749 section 4.4, client credentials), independent of
//! HTTP plumbing: parse the form, authenticate the client, apply its policy, mint.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::clients::{AuthFailure, Client, ClientRegistry};
use crate::minter::{MintRequest, Minted, Minter};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The only grant type svctoken answers so far.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

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
    /// changes to one the audience can verify (503).
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
    /// HTTP status override (413 for a body over the limit).
    #[serde(skip)]
    pub status: Option<u16>,
}

impl OAuthError {
    /// An error with a description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            error_description: Some(description.into()),
            status: None,
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

/// The outcome of a granted request, for the log and the metrics.
#[derive(Debug)]
pub struct Grant {
    /// The answer to send.
    pub response: TokenResponse,
    /// The authenticated client.
    pub client_id: String,
    /// What was minted.
    pub minted: Minted,
    /// The audience.
    pub audience: String,
}

/// A failed request: the answer, and what the log should know (the client id, if one was
/// named, and the real reason).
#[derive(Debug)]
pub struct Refusal {
    /// The answer to send.
    pub error: OAuthError,
    /// The client id the request named, if any.
    pub client_id: Option<String>,
    /// Why, for the log only.
    pub reason: String,
}

/// Handles one token request.
pub fn token(
    clients: &ClientRegistry,
    minter: &Minter,
    audiences: &[crate::Audience],
    req: &TokenRequest<'_>,
) -> Result<Grant, Refusal> {
    let refuse = |error: OAuthError, client_id: Option<&str>, reason: &str| Refusal {
        reason: reason.to_owned(),
        client_id: client_id.map(str::to_owned),
        error,
    };
    let form = Form::parse(req).map_err(|e| {
        let reason = e.to_string();
        refuse(e, None, &reason)
    })?;

    let grant_type = form.get("grant_type").ok_or_else(|| {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "grant_type is required");
        refuse(e, None, "no grant_type")
    })?;
    if grant_type != CLIENT_CREDENTIALS {
        let e = OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type must be {CLIENT_CREDENTIALS}"),
        );
        return Err(refuse(e, None, &format!("grant_type {grant_type:?}")));
    }

    let (id, secret) =
        credentials(req.authorization, &form).map_err(|(e, why)| refuse(e, None, &why))?;
    let client = clients.authenticate(&id, &secret).map_err(|failure| {
        let why = match failure {
            AuthFailure::UnknownClient => "unknown client",
            AuthFailure::WrongSecret => "wrong secret",
        };
        refuse(OAuthError::invalid_client(), Some(&id), why)
    })?;
    let denied = |e: OAuthError| {
        let reason = e.to_string();
        refuse(e, Some(&client.id), &reason)
    };

    let audience = choose_audience(client, audiences, form.get("audience")).map_err(denied)?;
    let scope = grant_scope(client, form.get("scope")).map_err(denied)?;
    check_algorithm(minter, audiences, audience).map_err(denied)?;
    let minted = minter
        .mint(&MintRequest {
            subject: &client.subject,
            audience,
            ttl: client.max_ttl,
            client_id: Some(&client.id),
            scope: scope.as_deref(),
            actor: None,
            claims: Some(&client.claims),
        })
        .map_err(|e| {
            let error = OAuthError::new(ErrorCode::ServerError, "the token could not be signed");
            refuse(error, Some(&client.id), &e.to_string())
        })?;
    Ok(Grant {
        response: TokenResponse {
            access_token: minted.token.clone(),
            token_type: "Bearer",
            expires_in: minted.expires_in(),
            scope,
        },
        client_id: client.id.clone(),
        audience: audience.to_owned(),
        minted,
    })
}

fn choose_audience<'a>(
    client: &'a Client,
    audiences: &[crate::Audience],
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
    audiences: &[crate::Audience],
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
