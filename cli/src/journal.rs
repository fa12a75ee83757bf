//! [`CliJournal`]: key lifecycle changes a command makes, recorded in the issuer's audit file.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use svctoken_issuer::audit::{AuditEvent, AuditSink as _, ChainedFile, ChangedBy};
use svctoken_issuer::rotation::{Event, Journal};
use svctoken_issuer::settings::Settings;

/// Appends each change a command makes to the hash-chained audit file the settings name (not
/// to standard output, which is the command's own), as made by `cli`. The file is opened only
/// when there is something to record, and shared with a running issuer: each batch is written
/// under the file's lock, after whatever the issuer appended. A failure is kept for
/// [`CliJournal::finish`]: the change stands either way.
pub(crate) struct CliJournal {
    file: Option<PathBuf>,
    failed: RefCell<Option<String>>,
}

impl CliJournal {
    /// The journal for the audit file of `settings` (none when `[audit] file = ""`).
    pub(crate) fn new(settings: &Settings) -> Self {
        CliJournal {
            file: settings.audit().file.clone(),
            failed: RefCell::new(None),
        }
    }

    /// An error if a change could not be recorded; call it once the command has said what it
    /// changed.
    pub(crate) fn finish(self) -> Result<()> {
        match (self.failed.into_inner(), &self.file) {
            (Some(error), Some(file)) => Err(anyhow!(
                "the key store was changed, but the change could not be recorded in the audit \
                 file {}: {error}",
                file.display()
            )),
            _ => Ok(()),
        }
    }
}

impl Journal for CliJournal {
    fn record(&self, now: u64, events: &[Event]) {
        let Some(path) = &self.file else { return };
        let lines: Vec<AuditEvent> = events
            .iter()
            .map(|e| e.audit_event(now, ChangedBy::Cli))
            .collect();
        let recorded = ChainedFile::open(path).and_then(|file| file.record_batch(&lines));
        if let Err(error) = recorded {
            self.failed.borrow_mut().get_or_insert(error.to_string());
        }
    }
}
