//! The one error type of the minting library.

use svctoken_jwks::Algorithm;

/// Everything minting, or validating what is minted, can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A custom claim uses a name svctoken sets itself or Convex reserves.
    #[error("custom claim {0:?} is reserved; reserved names are {names}", names = crate::RESERVED_CLAIMS.join(" "))]
    ReservedClaim(String),
    /// A custom claim named like an OpenID Connect standard claim, with a value OIDC parsers
    /// refuse (`problem` says what it must be and what it is).
    #[error(
        "claim {claim:?} {problem} (an OpenID Connect standard claim: OIDC verifiers, a \
         convex-oidc audience among them, refuse the whole token otherwise)"
    )]
    StandardClaim {
        /// The claim's name, as given.
        claim: String,
        /// What is wrong, e.g. `must be a boolean, not a string`.
        problem: String,
    },
    /// The token lifetime is zero.
    #[error("the lifetime must be at least one second")]
    ZeroLifetime,
    /// `sub` or `aud` is empty.
    #[error("sub and aud must not be empty")]
    EmptySubjectOrAudience,
    /// The key that would sign uses an algorithm the audience can't verify.
    #[error("the signing key's algorithm {0} is not one the audience accepts")]
    AlgorithmNotAllowed(Algorithm),
    /// An issuer URL Convex and OIDC verifiers could not match; the message says what to change.
    #[error("{0}")]
    InvalidIssuer(String),
    /// An `act` claim that is not a chain of `{"sub": string}` objects, or too deep.
    #[error("act: {0}")]
    InvalidActor(&'static str),
    /// Signing failed, or the system has no randomness for the `jti`.
    #[error(transparent)]
    Jose(#[from] svctoken_jwks::Error),
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Jose(svctoken_jwks::Error::Crypto)
    }
}

/// The result type of the minting library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
