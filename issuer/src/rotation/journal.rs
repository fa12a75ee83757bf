//! [`Journal`]: where the lifecycle writes down what it changed, and [`AuditJournal`], the
//! running issuer's, which records each change in the audit trail.

use crate::audit::{AuditEvent, Auditor, ChangedBy, KeyChange, KeyRole, Lifecycle};
use crate::store::KeyState;

use super::Event;

/// Where [`rotate`](super::rotate), [`rotate_now`](super::rotate_now) and
/// [`revoke`](super::revoke) write down what they changed. Called once per run that changed
/// something, after the key set was saved and while the store's lock is still held, so the
/// records of two processes sharing a store appear in the order their changes were made.
///
/// Recording cannot undo a change, so it cannot fail the run: a journal that could not write
/// reports that itself (the audit trail logs and counts it; a command keeps the error to report
/// once it has said what it changed).
pub trait Journal {
    /// Writes down `events`, all made at `now` (seconds since the epoch), in order.
    fn record(&self, now: u64, events: &[Event]);
}

/// Writes nothing down: for tests, and for tools whose changes need no record.
impl Journal for () {
    fn record(&self, _: u64, _: &[Event]) {}
}

/// Records each change as an audit event in every sink of an [`Auditor`], on disk before the
/// store's lock is released ([`Auditor::record_now`]).
#[derive(Debug)]
pub struct AuditJournal<'a> {
    auditor: &'a Auditor,
    by: ChangedBy,
}

impl<'a> AuditJournal<'a> {
    /// A journal recording in `auditor` changes made `by` the timer or a command.
    pub fn new(auditor: &'a Auditor, by: ChangedBy) -> Self {
        AuditJournal { auditor, by }
    }
}

impl Journal for AuditJournal<'_> {
    fn record(&self, now: u64, events: &[Event]) {
        let lines: Vec<AuditEvent> = events.iter().map(|e| e.audit_event(now, self.by)).collect();
        // A failure was logged and counted by the auditor; the change stands either way.
        let _ = self.auditor.record_now(&lines);
    }
}

impl Event {
    /// The audit event recording this change, made at `now` by `by`. It holds the key's id,
    /// algorithm and the times involved, never key material.
    pub fn audit_event(&self, now: u64, by: ChangedBy) -> AuditEvent {
        let (alg, change) = match *self {
            Event::Prepared {
                alg, activate_at, ..
            } => (alg, KeyChange::Prepared { activate_at }),
            Event::Rescheduled {
                alg, activate_at, ..
            } => (alg, KeyChange::Rescheduled { activate_at }),
            Event::Activated {
                alg,
                published_at,
                early,
                ..
            } => (
                alg,
                KeyChange::Activated {
                    published_at,
                    early,
                },
            ),
            Event::Retired { alg, remove_at, .. } => (alg, KeyChange::Retired { remove_at }),
            Event::Removed { alg, .. } => (alg, KeyChange::Removed),
            Event::Revoked {
                alg,
                was,
                trusted_until,
                ..
            } => (
                alg,
                KeyChange::Revoked {
                    was: role(was),
                    trusted_until,
                },
            ),
        };
        AuditEvent::lifecycle(now, self.kid(), Lifecycle { change, by, alg })
    }
}

fn role(state: KeyState) -> KeyRole {
    match state {
        KeyState::Prepared { .. } => KeyRole::Prepared,
        KeyState::Active { .. } => KeyRole::Active,
        KeyState::Retired { .. } => KeyRole::Retired,
    }
}
