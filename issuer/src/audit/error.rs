//! [`AuditError`]: what can go wrong recording an event.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::chain::ChainBreak;

/// An audit failure. Cheap to clone (the underlying errors are shared), because the writer
/// hands one batch's error to every request waiting in that batch.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O operation on an audit file (or its head file) failed.
    #[error("audit file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: Arc<io::Error>,
    },
    /// Writing to standard output failed.
    #[error("audit stdout: {0}")]
    Stdout(#[source] Arc<io::Error>),
    /// The event could not be serialised (its `time` is past the year 9999).
    #[error("audit event: {0}")]
    Encode(#[source] Arc<serde_json::Error>),
    /// Another [`ChainedFile`](super::ChainedFile) (in this process or another) holds the
    /// file's lock.
    #[error(
        "audit file {}: locked by another writer (another svctoken process, or a second open \
         in this one); two writers would corrupt the chain",
        path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// The existing file fails verification, so nothing is appended to it.
    #[error("audit file {}: refusing to append to a broken chain: {chain}", path.display())]
    BrokenChain {
        /// The file.
        path: PathBuf,
        /// Where and how the chain is broken.
        chain: ChainBreak,
    },
    /// An earlier write or sync failed and left the end of the file uncertain; reopen the file
    /// (which verifies it) to record again.
    #[error(
        "audit file {}: an earlier write failed and left the end of the file uncertain; \
         reopen it to record again",
        path.display()
    )]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
    /// A sink panicked while recording.
    #[error("audit sink panicked")]
    SinkPanicked,
    /// The queue to the writer was full and the auditor fails open, so the event was dropped.
    #[error("audit queue full: the event was dropped")]
    QueueFull,
    /// The writer thread is gone (it could not be started, or it stopped), so nothing can be
    /// recorded.
    #[error("audit writer is not running")]
    WriterStopped,
}

impl AuditError {
    /// An I/O error on the audit file at `path`.
    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
        move |source| AuditError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    /// An error serialising an event.
    pub(super) fn encode(source: serde_json::Error) -> AuditError {
        AuditError::Encode(Arc::new(source))
    }
}
