//! The one error type of this crate, and how each error is answered over HTTP (RFC 6750).

use http::StatusCode;

/// Everything that can go wrong configuring the verifier or verifying a request.
///
/// Towards the caller, refusals are coarse ([`Error::status`], [`Error::www_authenticate`],
/// [`Error::body`]); the variant itself, which says exactly why, is for logs and tests. No
/// variant holds the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (a bad issuer or JWKS URL, no HTTP client).
    #[error("configuration: {0}")]
    Config(String),
    /// The issuer's keys could not be fetched (discovery or JWKS), and no cached copy can
    /// decide: the token may well be valid. Answered 503 with `Retry-After`.
    #[error("the keys at {url} are unavailable: {message}")]
    KeysUnavailable {
        /// The URL that failed (discovery document or JWKS).
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The request carries no bearer token (no `Authorization` header, or another scheme).
    #[error("no bearer token")]
    MissingToken,
    /// The request is malformed (RFC 6750 `invalid_request`), e.g. two `Authorization` headers.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The token failed verification: signature, key, algorithm, `iss`, `aud`, `exp`, `nbf`...
    #[error("invalid token: {0}")]
    InvalidToken(#[from] svctoken_jwks::Error),
    /// A verified token's claim is not what an svctoken token holds (`sub`, `client_id`,
    /// `scope` or `act` missing or of the wrong form).
    #[error("invalid token: claim {0:?} missing or malformed")]
    InvalidClaim(&'static str),
    /// The token's client is not one of those allowed.
    #[error("the token's client is not allowed")]
    ClientNotAllowed,
    /// The token lacks a required scope (RFC 6750 `insufficient_scope`, 403).
    #[error("insufficient scope: {required:?} required")]
    InsufficientScope {
        /// Every scope the API requires (all of them, space-separated in `WWW-Authenticate`).
        required: Vec<String>,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Seconds a caller should wait after a 503 (keys unavailable) before retrying.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

impl Error {
    /// The HTTP status answered: 401 (no or invalid token), 400 (malformed request), 403
    /// (insufficient scope), 503 (keys unavailable) or 500 (misconfiguration).
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::MissingToken
            | Error::InvalidToken(_)
            | Error::InvalidClaim(_)
            | Error::ClientNotAllowed => StatusCode::UNAUTHORIZED,
            Error::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Error::InsufficientScope { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 error code, if any: none for a missing token (nor for 503/500).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Error::InvalidToken(_) | Error::InvalidClaim(_) | Error::ClientNotAllowed => {
                Some("invalid_token")
            }
            Error::InvalidRequest(_) => Some("invalid_request"),
            Error::InsufficientScope { .. } => Some("insufficient_scope"),
            Error::MissingToken | Error::Config(_) | Error::KeysUnavailable { .. } => None,
        }
    }

    /// A short description safe to show the caller: never the token, nor which check failed
    /// beyond expiry (so a forger learns nothing).
    pub fn description(&self) -> &'static str {
        match self {
            Error::Config(_) => "the server is misconfigured",
            Error::KeysUnavailable { .. } => "the keys to verify tokens are unavailable; retry",
            Error::MissingToken => "a bearer token is required",
            Error::InvalidRequest(_) => "the request's authorization is malformed",
            Error::InvalidToken(svctoken_jwks::Error::Expired) => "the token has expired",
            Error::InvalidToken(_) | Error::InvalidClaim(_) => "the token is not valid",
            Error::ClientNotAllowed => "the token is not valid for this API",
            Error::InsufficientScope { .. } => "the token lacks a required scope",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 section 3), if the answer carries one: `Bearer`
    /// alone for a missing token, `Bearer error="..."` otherwise, with `scope="..."` for
    /// `insufficient_scope`.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            Error::Config(_) | Error::KeysUnavailable { .. } => None,
            Error::MissingToken => Some("Bearer".to_owned()),
            Error::InsufficientScope { required } => Some(format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}\", scope=\"{}\"",
                self.description(),
                required.join(" ")
            )),
            _ => Some(format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                self.code().unwrap_or("invalid_token"),
                self.description()
            )),
        }
    }

    /// The JSON body answered: `{"error": ..., "error_description": ...}`.
    pub fn body(&self) -> serde_json::Value {
        let code = match self {
            Error::Config(_) => "server_error",
            Error::KeysUnavailable { .. } => "temporarily_unavailable",
            Error::MissingToken => "unauthorized",
            _ => self.code().unwrap_or("invalid_token"),
        };
        serde_json::json!({"error": code, "error_description": self.description()})
    }

    /// The whole answer as an HTTP response with body `B`.
    pub fn to_response<B: From<String>>(&self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.body().to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        if let Some(value) = self
            .www_authenticate()
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
        {
            headers.insert(http::header::WWW_AUTHENTICATE, value);
        }
        if matches!(self, Error::KeysUnavailable { .. }) {
            headers.insert(http::header::RETRY_AFTER, RETRY_AFTER_SECS.into());
        }
        response
    }
}
