//! What the audit module's unit tests share.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::{Actor, AuditEvent, AuditSink, ChainedFile, Outcome};

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

/// Replaces `path` with `lines`, each ended by a newline.
pub(super) fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}
