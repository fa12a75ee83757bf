//! [`CliJournal`]: key lifecycle changes a command makes, recorded in the issuer's audit file.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use svctoken_issuer::audit::{AuditEvent, AuditSink as _, ChainedFile, ChangedBy};
use svctoken_issuer::postgres::AuditTable;
use svctoken_issuer::rotation::{Event, Journal};
use svctoken_issuer::settings::Settings;
use svctoken_issuer::store::KeyStore;

/// Appends each change a command makes to the hash-chained audit file the settings name (not
/// to standard output, which is the command's own), as made by `cli`. The file is opened only
/// when there is something to record, and shared with a running issuer: each batch is written
/// under the file's lock, after whatever the issuer appended. A failure is kept for
/// [`CliJournal::finish`]: the change stands either way.
/// For a replica, the changes also go to its chain in the database.
pub(crate) struct CliJournal {
    file: Option<PathBuf>,
    table: Option<AuditTable>,
    failed: RefCell<Option<String>>,
}

impl CliJournal {
    /// The journal for the audit file of `settings` (none when `[audit] file = ""`) and, for
    /// a replica's `store`, its chain in the database.
    pub(crate) fn new(settings: &Settings, store: &dyn KeyStore) -> Self {
        CliJournal {
            file: settings.audit().file.clone(),
            table: store
                .database()
                .zip(store.replica_id())
                .map(|(db, replica)| AuditTable::new(db.clone(), replica)),
            failed: RefCell::new(None),
        }
    }

    /// An error if a change could not be recorded; call it once the command has said what it
    /// changed.
    pub(crate) fn finish(self) -> Result<()> {
        match self.failed.into_inner() {
            Some(error) => Err(anyhow!(
                "the key store was changed, but the change could not be recorded in the audit \
                 trail: {error}"
            )),
            None => Ok(()),
        }
    }
}

impl Journal for CliJournal {
    fn record(&self, now: u64, events: &[Event]) {
        let lines: Vec<AuditEvent> = events
            .iter()
            .map(|e| e.audit_event(now, ChangedBy::Cli))
            .collect();
        if let Some(path) = &self.file {
            let recorded = ChainedFile::open(path).and_then(|file| file.record_batch(&lines));
            if let Err(error) = recorded {
                let error = format!("{}: {error}", path.display());
                self.failed.borrow_mut().get_or_insert(error);
            }
        }
        if let Some(table) = &self.table
            && let Err(error) = table.record_batch(&lines)
        {
            self.failed.borrow_mut().get_or_insert(error.to_string());
        }
    }
}
