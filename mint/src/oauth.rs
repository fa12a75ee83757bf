//! OAuth 2.0 wire types shared by the issuer and its clients: error codes and bodies
//! (RFC 6749 section 5.2), the token response (section 5.1), and the URNs of the grants and
//! assertions svctoken speaks.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AccessToken;

/// The client credentials grant (RFC 6749 section 4.4).
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// The token exchange grant (RFC 8693).
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The `client_assertion_type` of `private_key_jwt` (RFC 7523 section 2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 8693 token type: an OAuth access token (what svctoken issues).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 token type: a JWT.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693 token type: an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The `subject_token_type`s accepted in a token exchange.
pub const SUBJECT_TOKEN_TYPES: [&str; 3] = [JWT_TOKEN_TYPE, ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE];

/// An OAuth error code: RFC 6749 section 5.2, RFC 8707's `invalid_target`, and the two codes
/// svctoken also sends from its token endpoint (`server_error`, `temporarily_unavailable`).
/// A code this crate does not know (from another server) is kept as [`ErrorCode::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter; unreadable body.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (e.g. an authorization code) is invalid.
    InvalidGrant,
    /// The client may not use this grant, audience or subject.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// A requested scope is not the client's.
    InvalidScope,
    /// The audience is unknown or not the client's (RFC 8707).
    InvalidTarget,
    /// Something failed on the server's side.
    ServerError,
    /// The server can't answer this request now; retry later.
    TemporarilyUnavailable,
    /// Any other code, as sent.
    Other(Box<str>),
}

impl ErrorCode {
    /// The `error` string.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::Other(code) => code,
        }
    }

    /// The code `text` names.
    pub fn parse(text: &str) -> ErrorCode {
        match text {
            "invalid_request" => ErrorCode::InvalidRequest,
            "invalid_client" => ErrorCode::InvalidClient,
            "invalid_grant" => ErrorCode::InvalidGrant,
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "unsupported_grant_type" => ErrorCode::UnsupportedGrantType,
            "invalid_scope" => ErrorCode::InvalidScope,
            "invalid_target" => ErrorCode::InvalidTarget,
            "server_error" => ErrorCode::ServerError,
            "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
            other => ErrorCode::Other(other.into()),
        }
    }

    /// True for codes that a retry can't fix without a change of configuration or request:
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable | ErrorCode::Other(_)
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cow::<'de, str>::deserialize(d).map(|code| ErrorCode::parse(&code))
    }
}

/// An error answer of a token endpoint: `{"error", "error_description"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The code.
    pub error: ErrorCode,
    /// A human description for the developer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<Cow<'static, str>>,
}

/// A successful token answer (RFC 6749 section 5.1; RFC 8693 section 2.2.1).
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The token.
    pub access_token: AccessToken,
    /// `Bearer` for svctoken.
    pub token_type: Cow<'static, str>,
    /// Seconds until it expires (svctoken always sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// Granted scopes, space-separated (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// For a token exchange: the type of what was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<Cow<'static, str>>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("issued_token_type", &self.issued_token_type)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
            "server_error",
            "temporarily_unavailable",
            "slow_down",
        ] {
            let parsed = ErrorCode::parse(code);
            assert_eq!(parsed.as_str(), code);
            assert_eq!(parsed == ErrorCode::Other(code.into()), code == "slow_down");
        }
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"invalid_scope","error_description":"no"}"#)
                .expect("parse");
        assert_eq!(body.error, ErrorCode::InvalidScope);
        assert!(body.error.is_permanent());
        assert!(!ErrorCode::TemporarilyUnavailable.is_permanent());
    }
}
