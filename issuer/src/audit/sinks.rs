//! [`AuditSink`], and the sinks that are not files: [`StdoutSink`] and [`MemorySink`].

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

use super::event::AuditEvent;
use crate::Error;

/// Somewhere audit events go. An [`Auditor`](super::Auditor) calls it from its writer thread,
/// one batch at a time, so a sink may block on I/O.
pub trait AuditSink: Send + Sync {
    /// Records one event; returns once the sink has it (for a file: once it is on disk).
    fn record(&self, event: &AuditEvent) -> Result<(), Error>;

    /// Records `events`, in order, as one unit where the sink can (one write and one sync for
    /// a [`ChainedFile`](super::ChainedFile)). An error means the batch as a whole failed:
    /// every event in it counts as not recorded, even if some were (a trail may over-report a
    /// failure, never under-report one). The default records each event in turn, carries on
    /// after a failure, and returns the first error.
    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        let mut first = None;
        for event in events {
            if let Err(error) = self.record(event) {
                first.get_or_insert(error);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Records `events` like [`record_batch`](AuditSink::record_batch), except that a sink
    /// which syncs to disk may leave them unsynced until its next [`sync`](AuditSink::sync) or
    /// its next `record_batch`: written, so they outlive the process, but not yet a machine
    /// crash. For batches nobody waits for. The default is `record_batch`.
    fn record_batch_unsynced(&self, events: &[AuditEvent]) -> Result<(), Error> {
        self.record_batch(events)
    }

    /// Makes durable what [`record_batch_unsynced`](AuditSink::record_batch_unsynced) left
    /// unsynced. An error means those events may be lost. The default has nothing to do.
    fn sync(&self) -> Result<(), Error> {
        Ok(())
    }
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        (**self).record(event)
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        (**self).record_batch(events)
    }

    fn record_batch_unsynced(&self, events: &[AuditEvent]) -> Result<(), Error> {
        (**self).record_batch_unsynced(events)
    }

    fn sync(&self) -> Result<(), Error> {
        (**self).sync()
    }
}

impl<T: AuditSink + ?Sized> AuditSink for Box<T> {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        (**self).record(event)
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        (**self).record_batch(events)
    }

    fn record_batch_unsynced(&self, events: &[AuditEvent]) -> Result<(), Error> {
        (**self).record_batch_unsynced(events)
    }

    fn sync(&self) -> Result<(), Error> {
        (**self).sync()
    }
}

/// Writes each event as one JSON object on one line of standard output (one write per batch).
#[derive(Clone, Copy, Debug, Default)]
pub struct StdoutSink;

impl StdoutSink {
    /// The line [`StdoutSink`] writes for `event`: compact JSON (string escapes keep it on one
    /// line) and a newline.
    pub fn format_line(event: &AuditEvent) -> Result<String, Error> {
        let mut line = serde_json::to_string(event).map_err(Error::audit_encode)?;
        line.push('\n');
        Ok(line)
    }
}

impl AuditSink for StdoutSink {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        let mut text = String::new();
        for event in events {
            text.push_str(&Self::format_line(event)?);
        }
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::AuditStdout(Arc::new(e)))
    }
}

/// Keeps events in memory (for tests of code that audits).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// The events recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::testing::event;

    #[test]
    fn stdout_format_is_one_json_object_per_line() {
        let event = AuditEvent {
            reason: Some("line one\nline two\r\u{2028}".to_owned()),
            ..event(2)
        };
        let line = StdoutSink::format_line(&event).unwrap();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        assert!(!line.contains('\r'));
        let value: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert!(value.is_object());
        assert_eq!(value["time"], "2026-11-01T12:00:02Z");
        assert_eq!(value["outcome"], "refused");
        assert_eq!(value["error"], "invalid_client");
        assert!(value.get("seq").is_none());
        assert_eq!(serde_json::from_value::<AuditEvent>(value).unwrap(), event);
    }

    /// Fails on the events whose `time` is odd.
    struct OddFails;
    impl AuditSink for OddFails {
        fn record(&self, event: &AuditEvent) -> Result<(), Error> {
            if event.time % 2 == 1 {
                Err(Error::AuditSinkPanicked)
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_batch_fails_as_a_whole_and_memory_keeps_order() {
        assert!(OddFails.record_batch(&[event(2), event(4)]).is_ok());
        assert!(
            OddFails
                .record_batch(&[event(2), event(3), event(4)])
                .is_err()
        );
        let memory = MemorySink::new();
        memory.record(&event(1)).unwrap();
        memory.record_batch(&[event(2), event(3)]).unwrap();
        assert_eq!(memory.events(), [event(1), event(2), event(3)]);
    }
}
