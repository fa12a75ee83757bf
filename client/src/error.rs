//! The one error type of the client.

use serde_json::Value;
use svctoken_mint::oauth::ErrorCode;

/// Everything fetching a token or calling Convex can fail with. Cheap to clone, so a failed
/// refresh can be handed to every caller waiting on it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint refused (RFC 6749 section 5.2), e.g. `invalid_client`.
    #[error("token endpoint answered {status} {error}{}", describe(.description))]
    OAuth {
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: ErrorCode,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// An endpoint could not be reached or did not answer in time.
    #[error("transport: {0}")]
    Transport(String),
    /// An endpoint answered something this client does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The in-process minter failed.
    #[error("minting: {0}")]
    Mint(String),
    /// The client is misconfigured (bad URL, unreadable key file...).
    #[error("configuration: {0}")]
    Config(String),
    /// The Convex function ran and threw.
    #[error("function error: {message}")]
    Function {
        /// `errorMessage`.
        message: String,
        /// `errorData` (a `ConvexError`'s data), if any.
        data: Option<Value>,
        /// The HTTP status it came with (200 or 560).
        status: u16,
    },
    /// Convex rejected the bearer token (HTTP 401); the function did not run.
    #[error("Convex refused the token: {code}: {message}")]
    Unauthorized {
        /// `InvalidAuthHeader`, `NoAuthProvider`, `Unauthenticated`...
        code: String,
        /// Convex's message.
        message: String,
    },
    /// Convex answered with an unexpected status.
    #[error("Convex answered HTTP {status}: {body}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The arguments can't be expressed as Convex values.
    #[error("arguments: {0}")]
    Encode(String),
    /// The function's value does not fit the requested type.
    #[error("result: {0}")]
    Decode(String),
}

fn describe(description: &Option<String>) -> String {
    description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

impl Error {
    /// The OAuth error code, when the token endpoint refused.
    pub fn oauth_error(&self) -> Option<&ErrorCode> {
        match self {
            Error::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True for failures that retrying can't fix without a change of configuration
    /// (`invalid_client`, `unauthorized_client`, `invalid_scope`, `invalid_target`,
    /// `invalid_request`, `unsupported_grant_type`, a bad key file): the cache does not retry
    /// them on its own.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::OAuth { error, .. } => error.is_permanent(),
            Error::Config(_) => true,
            _ => false,
        }
    }

    pub(crate) fn transport(e: reqwest::Error) -> Error {
        // reqwest's Display omits the cause ("error sending request"); keep the chain.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::Transport(message)
    }
}

/// The result type of the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;
