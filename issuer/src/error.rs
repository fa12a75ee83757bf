//! The one error type of the issuer library.

use std::path::PathBuf;

/// Everything the issuer library can fail with, apart from OAuth answers to callers
/// ([`crate::oauth::OAuthError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message says what to change.
    #[error("configuration: {0}")]
    Config(String),
    /// A key store operation failed.
    #[error("key store {store}: {message}")]
    Store {
        /// Which store (its path or name).
        store: String,
        /// What went wrong.
        message: String,
    },
    /// An I/O operation on a path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key or token operation failed.
    #[error(transparent)]
    Jose(#[from] svctoken_jwks::Error),
    /// Minting failed, or a mint request is invalid (reserved claim, zero lifetime...).
    #[error("mint: {0}")]
    Mint(#[from] svctoken_mint::Error),
    /// The key ring has no active key (the store is empty and can't be written).
    #[error("no active signing key")]
    NoActiveKey,
    /// The audit trail could not be opened or written.
    #[error("audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A trusted issuer's JWKS could not be fetched or read.
    #[error("JWKS {url}: {message}")]
    RemoteJwks {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A key id named by the caller is not in the store.
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        Error::Jose(svctoken_jwks::Error::Crypto)
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

/// The result type of the issuer library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
