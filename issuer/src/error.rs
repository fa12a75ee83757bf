//! The one error type of the issuer library.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::ChainBreak;

/// Everything the issuer library can fail with, apart from OAuth answers to callers
/// ([`crate::oauth::OAuthError`]). Cheap to clone (underlying errors are shared), because the
/// audit writer hands one batch's error to every request waiting on that batch.
#[derive(Clone, Debug, thiserror::Error)]
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
    /// The PostgreSQL database several replicas share failed or could not be reached.
    #[error("database {database}: {message}")]
    Database {
        /// Which database (its URL without credentials).
        database: String,
        /// What went wrong.
        message: String,
    },
    /// An I/O operation on a path (a key file, an audit file, its head file...) failed.
    ///
    /// The message holds the OS error, which is therefore not also its `source()`: a report
    /// that prints the chain (`anyhow`'s `{:#}`) would say it twice.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: Arc<io::Error>,
    },
    /// A key or token operation failed.
    #[error(transparent)]
    Jose(Arc<svctoken_jwks::Error>),
    /// Minting failed, or a mint request is invalid (reserved claim, zero lifetime...).
    #[error("mint: {0}")]
    Mint(Arc<svctoken_mint::Error>),
    /// The key ring has no active key (the store is empty and can't be written).
    #[error("no active signing key")]
    NoActiveKey,
    /// A key id named by the caller is not in the store.
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    /// A trusted issuer's JWKS could not be fetched or read.
    #[error("JWKS {url}: {message}")]
    RemoteJwks {
        /// Where it was fetched from.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Writing audit events to standard output failed.
    #[error("audit stdout: {0}")]
    AuditStdout(Arc<io::Error>),
    /// An audit event could not be serialised (its `time` is past the year 9999).
    #[error("audit event: {0}")]
    AuditEncode(Arc<serde_json::Error>),
    /// The existing audit file fails verification, so nothing is appended to it.
    #[error("audit file {}: refusing to append to a broken chain: {chain}", path.display())]
    AuditBrokenChain {
        /// The file.
        path: PathBuf,
        /// Where and how the chain is broken.
        chain: ChainBreak,
    },
    /// An earlier audit write or sync failed and left the end of the file uncertain; reopen
    /// the file (which verifies it) to record again.
    #[error(
        "audit file {}: an earlier write failed and left the end of the file uncertain; \
         reopen it to record again",
        path.display()
    )]
    AuditPoisoned {
        /// The file.
        path: PathBuf,
    },
    /// An audit sink panicked while recording.
    #[error("audit sink panicked")]
    AuditSinkPanicked,
    /// The queue to the audit writer was full and the auditor fails open, so the event was
    /// dropped.
    #[error("audit queue full: the event was dropped")]
    AuditQueueFull,
    /// The audit writer thread is gone (it could not be started, or it stopped), so nothing
    /// can be recorded.
    #[error("audit writer is not running")]
    AuditWriterStopped,
}

impl From<svctoken_jwks::Error> for Error {
    fn from(e: svctoken_jwks::Error) -> Self {
        Error::Jose(Arc::new(e))
    }
}

impl From<svctoken_mint::Error> for Error {
    fn from(e: svctoken_mint::Error) -> Self {
        Error::Mint(Arc::new(e))
    }
}

impl From<ring::error::Unspecified> for Error {
    fn from(_: ring::error::Unspecified) -> Self {
        svctoken_jwks::Error::Crypto.into()
    }
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |error| Error::Io {
            path,
            error: Arc::new(error),
        }
    }

    /// An error serialising an audit event.
    pub(crate) fn audit_encode(source: serde_json::Error) -> Error {
        Error::AuditEncode(Arc::new(source))
    }
}

/// The result type of the issuer library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_said_once_in_a_chain() {
        let e = Error::io("/nowhere/keys.json")(io::Error::from(io::ErrorKind::NotFound));
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.to_string(), "/nowhere/keys.json: entity not found");
    }
}
