//! The one error type of this crate.

/// Everything that can go wrong in `svctoken-jwks`.
///
/// Token verification failures are deliberately coarse towards callers that answer untrusted
/// parties (log [`Error`] itself, answer a generic "invalid token"); each variant still names
/// the exact reason for logs and tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not three base64url segments holding JSON objects.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The algorithm is not one this crate implements (`none` and every HMAC algorithm included).
    #[error("unsupported algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The token's `alg` differs from the algorithm pinned to the key that would verify it.
    #[error("algorithm mismatch: the key is pinned to {expected}, the token says {found:?}")]
    AlgorithmMismatch {
        /// The algorithm pinned to the key.
        expected: crate::Algorithm,
        /// The `alg` header the token carried.
        found: String,
    },
    /// The token's header has a `crit` member; no extension is understood (RFC 7515 section 4.1.11).
    #[error("the token has critical header parameters this verifier does not understand")]
    UnsupportedCritical,
    /// The header has a member this verifier refuses to act on: `b64` (RFC 7797), `cty`
    /// (a nested JWT), `enc` or `zip` (JWE).
    #[error("the token's {0:?} header parameter is not supported")]
    UnsupportedHeader(&'static str),
    /// No key in the set matches the token's `kid` (or there is no `kid` and several keys).
    #[error("no key matches kid {0:?}")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The token has expired (`exp` plus leeway is in the past).
    #[error("token expired")]
    Expired,
    /// The token is not valid yet (`nbf` minus leeway is in the future).
    #[error("token not valid yet")]
    NotYetValid,
    /// The token claims to be issued in the future (`iat` minus leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim is missing or has the wrong JSON type.
    #[error("claim {0:?} missing or of the wrong type")]
    MissingClaim(&'static str),
    /// A date claim is not an integer NumericDate between 0 and 9999-12-31 (RFC 7519 section
    /// 2: seconds since the epoch; fractions and exponents are refused so that no two readers
    /// can disagree about it).
    #[error("claim {0:?} is not an integer NumericDate in range")]
    InvalidDate(&'static str),
    /// A claim has the wrong JSON type (`iss`, `sub`, `jti` not strings; `aud` not a string or
    /// an array of strings, or an array where one string is required).
    #[error("claim {0:?} has the wrong JSON type")]
    InvalidClaim(&'static str),
    /// A JWK is incomplete or inconsistent (wrong sizes, unknown curve, missing member).
    #[error("invalid JWK: {0}")]
    InvalidJwk(String),
    /// A private key could not be parsed or generated.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A private key in a form this crate does not read (encrypted, or a SEC1 EC key without
    /// its public point); converting it to unencrypted PKCS#8 (see
    /// [`pkcs8_conversion_command`](crate::pkcs8_conversion_command)) makes it readable.
    #[error("unsupported key format: {0}; convert it to unencrypted PKCS#8")]
    UnsupportedKeyFormat(String),
    /// A key held outside the process (an HSM) failed to sign; the message says why.
    #[error("the signing key's device failed: {0}")]
    Signer(String),
    /// JSON (de)serialisation failed.
    #[error("JSON: {0}")]
    Json(serde_json::Error),
    /// The system random number generator or the signing primitive failed.
    #[error("cryptographic operation failed")]
    Crypto,
}

// Not `#[from]`, which would make the JSON error also the `source()`: the message holds it
// already, and a report printing the chain would say it twice.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Crypto
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
