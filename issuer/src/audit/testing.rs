//! What the audit module's unit tests share.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use svctoken_mint::Actor;

use super::{AuditEvent, AuditSink, ChainedFile, Outcome};
use crate::Error;

/// Event `i`: a refusal when `i % 3 == 2`, otherwise an issuance acting for `user-<i>`.
pub(super) fn event(i: u64) -> AuditEvent {
    if i % 3 == 2 {
        AuditEvent {
            time: 1_793_534_400 + i,
            client_id: Some(format!("client-{i}")),
            peer: Some("127.0.0.1:40000".to_owned()),
            ..AuditEvent::refused(1_793_534_400, "invalid_client", "unknown client")
        }
    } else {
        AuditEvent {
            time: 1_793_534_400 + i,
            outcome: Outcome::Issued,
            client_id: Some("billing".to_owned()),
            sub: Some(format!("user-{i}")),
            aud: Some("convex".to_owned()),
            act: Actor::chain(["svc:billing"]),
            scope: Some("read write".to_owned()),
            jti: Some(format!("jti-{i}")),
            kid: Some("k1".to_owned()),
            exp: Some(1_793_534_700 + i),
            peer: Some("10.0.0.5:51234".to_owned()),
            ..AuditEvent::default()
        }
    }
}

/// A chained file with `n` events, recorded one at a time, closed again.
pub(super) fn chain_of(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let file = ChainedFile::open(&path).unwrap();
    for i in 1..=n {
        file.record(&event(i)).unwrap();
    }
    (dir, path)
}

/// The lines of `path`, without their newlines.
pub(super) fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Asserts that the chained file at `path` holds `event(1)`, `event(2)`, ... in that order.
pub(super) fn assert_holds_events_in_order(path: &Path) {
    for (i, line) in read_lines(path).iter().enumerate() {
        assert_eq!(
            serde_json::from_str::<AuditEvent>(line).unwrap(),
            event(i as u64 + 1)
        );
    }
}

/// Replaces `path` with `lines`, each ended by a newline.
pub(super) fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// A sink that holds each batch until the test releases it, and fails every batch after the
/// first (made by [`gate`]).
pub(super) struct Gate {
    entered: Mutex<Sender<usize>>,
    release: Mutex<Receiver<()>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

/// The test's side of a [`Gate`].
pub(super) struct GateControl {
    /// The size of each batch, as it reaches the sink.
    pub(super) entered: Receiver<usize>,
    /// Lets one batch through.
    pub(super) release: Sender<()>,
    /// The size of each batch so far.
    pub(super) batches: Arc<Mutex<Vec<usize>>>,
}

/// A [`Gate`] and its control.
pub(super) fn gate() -> (Gate, GateControl) {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
        batches: Arc::clone(&batches),
    };
    let control = GateControl {
        entered,
        release,
        batches,
    };
    (gate, control)
}

impl AuditSink for Gate {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        let first = {
            let mut batches = self.batches.lock().unwrap();
            batches.push(events.len());
            batches.len() == 1
        };
        // The test may have stopped listening; the batch is held until released either way.
        let _ = self.entered.lock().unwrap().send(events.len());
        let _ = self.release.lock().unwrap().recv();
        if first {
            Ok(())
        } else {
            Err(Error::AuditPoisoned {
                path: "audit.log".into(),
            })
        }
    }
}
