//! The audit trail: one structured event per token minted, per request refused, and per
//! change in a signing key's life.
//!
//! # Events
//!
//! An [`AuditEvent`] has typed fields only (no free-form map), so it cannot carry a token, a
//! client secret or a request body by construction. As a last guard, every string field is
//! scrubbed when serialised: any substring shaped like a compact JWS/JWE (`eyJ…` followed by at
//! least two more `.`-separated base64url segments) is written as `[redacted]`, and a string
//! longer than 1 KiB is cut there and marked `…[truncated]` (so a caller cannot flood the
//! trail through a field it controls). Callers must still build `reason` from fixed text and
//! identifiers, never by echoing what the caller sent. `act` is a typed
//! [`Actor`](svctoken_mint::Actor) chain rather than a JSON value: only the nested `sub`s, each
//! scrubbed, reach the trail.
//!
//! Fields, in this fixed order: `time` (RFC 3339 UTC, whole seconds, e.g.
//! `2026-11-01T12:00:00Z`), `outcome` (`"issued"`, `"refused"` or `"lifecycle"`), `error` (the
//! OAuth error code of a refusal), `reason`, `client_id`, `sub`, `aud`, `act` (an actor chain:
//! `{"sub": ..., "act": {...}}`), `scope`, `jti`, `kid`, `lifecycle`, `exp` (unix seconds) and
//! `peer`. **Absent values are omitted** (never written as `null`), so a line holds only what is
//! known.
//!
//! A `"lifecycle"` event is about the key `kid`, not a request: its [`Lifecycle`] says what
//! changed (`prepared`, `rescheduled`, `activated`, `retired`, `removed`, `revoked`) with the
//! times involved, who changed it (`timer`: the running issuer; `cli`: a `svctoken` command)
//! and the key's algorithm, never key material. Lifecycle events are recorded with
//! [`Auditor::record_now`] while the key store's lock is held, so the events of an issuer and
//! of `svctoken keys` commands sharing one store and one chained file appear in the order the
//! changes were made. Commands write them to the chained file only, not to standard output.
//!
//! # Sinks
//!
//! - [`StdoutSink`]: one JSON object per line on standard output (the issuer's logs go to
//!   standard error, so standard output is the audit stream).
//! - [`ChainedFile`]: an append-only, hash-chained file (below).
//! - [`MemorySink`]: keeps events in memory, for tests.
//!
//! # The writer and group commit
//!
//! [`Auditor`] owns the sinks through one dedicated OS thread, `svctoken-audit` (so no async
//! runtime is needed to open it, and no request ever waits on the blocking pool). Callers queue
//! events to it; the writer takes the first event waiting, then **every** event queued behind it
//! (up to the queue's capacity, 4096), and records them as one batch: each sink gets the whole
//! batch ([`AuditSink::record_batch`]), so a [`ChainedFile`] appends it with one `write` and one
//! `fdatasync` and replaces its head file once, and [`StdoutSink`] writes it at once. While a
//! batch is on its way to the disk the next one gathers, so throughput is bounded by the disk's
//! syncs per second times the batch size, not by one sync per event. A fail-open auditor's
//! batches (nobody waits for them) start at most once every 5 ms: an event arriving sooner
//! after the previous batch started waits out the rest of those 5 ms, gathering the events
//! behind it, so under load the per-batch cost is paid at most 200 times a second instead of
//! once per sync time. They are also written without a sync
//! ([`AuditSink::record_batch_unsynced`]: for the chained file one `write`, in the page cache
//! at once, so the events outlive the process): the sync and the head file follow at most
//! 100 ms after the first unsynced batch, whether or not more events come, or sooner with a
//! batch someone waits for, a [`Auditor::flush`], or the writer's end. A fail-closed auditor
//! never waits, and syncs every batch. Events are recorded in the order they were queued. An auditor without sinks ([`Auditor::disabled`], or
//! the audit file and stdout both off) starts no thread and [`Auditor::record`] returns at once.
//!
//! The batch succeeds or fails as a whole in each sink: if the write or the sync fails, every
//! event of the batch counts as not recorded. A sink failure is logged with `tracing::error!`
//! (once per batch) and counted once per event ([`Auditor::failures`], served at the admin
//! listener's `/metrics` as `svctoken_audit_failures_total`, beside each batch's size and time,
//! `svctoken_audit_batch_size` and `svctoken_audit_sync_duration_seconds`); whether it also fails
//! the request is the caller's choice, made once in [`Auditor::new`] (`fail_closed`).
//!
//! **Fail open or fail closed.** With `fail_closed = false`, [`Auditor::record`] queues the event
//! and returns `Ok` without waiting for the disk; a failed sink never affects the request: the
//! event is lost from that sink, logged and counted (its batch may start up to 5 ms later, and
//! be synced up to 100 ms after that, see above; a failed sync counts each event it concerned). With `fail_closed = true`, [`Auditor::record`] waits for its batch and returns the
//! first sink error after every sink was tried, and the issuer must then answer `server_error`
//! and *not* hand out the token it minted (record an issuance *before* sending the response);
//! every request waiting in a failed batch gets the error. Fail closed applies to every sink, so
//! give such an auditor only sinks you require. In fail-closed mode the trail may over-report
//! (an event of a batch that failed after its lines were written, e.g. when the head file could
//! not be replaced, is in the file although the token was withheld) but never under-reports.
//!
//! **Overload.** The queue is bounded (4096 events, a few MiB at most), so memory stays bounded
//! when the disk stalls. A fail-closed caller waits for room (back-pressure: requests slow down
//! to the disk's pace). A fail-open caller never waits: when the queue is full its event is
//! dropped and counted as a failure, and the loss is logged at most once a second with the
//! number of events lost since the last such line.
//!
//! **Shutdown.** [`Auditor::flush`] returns once everything queued before it is recorded (the
//! server calls it after its last request). When the last clone of an [`Auditor`] is dropped,
//! the queue is closed and the drop waits for the writer to record what is still queued; the
//! sinks are then dropped, and a [`ChainedFile`] logs its head.
//!
//! # The chained file
//!
//! Each line is the event's JSON object preceded by `seq` (the 1-based line number) and `prev`
//! (the lowercase hex SHA-256 of the previous line's exact bytes without its newline; 64 zeros
//! for line 1), serialised in a fixed field order:
//!
//! ```text
//! {"seq":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","time":"2026-11-01T12:00:00Z","outcome":"issued","client_id":"billing","sub":"svc:billing","aud":"convex","scope":"read write","jti":"3q2-7w","kid":"k-2026-11","exp":1793534700,"peer":"10.0.0.5:51234"}
//! ```
//!
//! A sidecar `<file>.head` holds `{"lines":N,"head":"<hash of line N>"}` and is replaced
//! atomically (write `<file>.head.tmp`, sync, rename) after **every** sync of the file, after
//! the lines have been synced, so the head never runs ahead of the durable file, even after a
//! machine crash; the anchors logged every 1000 lines are taken at the same moments. A crash
//! between the two, or before the sync of unsynced lines, leaves the head behind the file's
//! end, which verification accepts (the lines after line N are still checked by the chain);
//! opening the file rewrites the head.
//!
//! Each batch is one `write_all` of all its lines, each with its newline, to a file opened with
//! `O_APPEND` (created with mode 0600), followed by one `sync_data` (fail-open batches: by the
//! next sync, see above). If the write fails, the file is cut back to its previous length; if
//! that or the sync fails, the end of the file is unknown and the [`ChainedFile`] refuses
//! further records ([`Error::AuditPoisoned`]) until it is reopened, which re-verifies it. A
//! process crash (`kill -9`) loses the events still queued or being written; a machine crash
//! (power loss) also loses those written but not yet synced. No fail-closed request was
//! answered for any of them, but fail-open requests may have been: fail-open, a `kill -9`
//! loses at most the last 5 ms of events, a power loss at most the last 105 ms or so.
//!
//! **Several writers.** A running issuer and `svctoken keys` commands (separate processes)
//! append to the same file. Each batch is written holding an exclusive `flock` on the file
//! (waiting for it: another writer holds it for one batch, about 0.5 ms): under the lock the
//! writer first compares the file's length with where its own last batch ended and, if another
//! writer appended since, reads and verifies those lines from there (each must continue the
//! chain, and the head file must agree), then appends after them and replaces the head file.
//! A file that became shorter, or whose new lines do not continue the chain, is refused
//! ([`Error::AuditBrokenChain`]) instead of being forked. [`ChainedFile::open`] verifies under
//! the same lock, and [`verify_chain`] reads under a shared one, so it never sees half a batch.
//!
//! [`ChainedFile::open`] verifies an existing file first and refuses to append to a broken
//! chain ([`Error::AuditBrokenChain`] names the line); otherwise it continues `seq` and `prev`
//! from the last line. A torn last line (power loss during a write) is therefore refused too: an
//! operator decides what to do with the file.
//!
//! ## Verification and the first broken line
//!
//! [`verify_chain`] reads the head file, then the lines, and reports the **lowest-numbered
//! line** that fails one of these checks:
//!
//! - it lacks its newline (a truncated last line) or is not a JSON object (UTF-8 throughout)
//!   with `seq` and `prev`;
//! - its `seq` is not its line number (a line before it was deleted or inserted, or lines were
//!   reordered: the line is reported where it now stands);
//! - its bytes do not hash to the `prev` recorded by the next line: the line itself is reported,
//!   so editing any field of line k is reported as **line k**, not k+1. (Editing only the `prev`
//!   field of line k is reported as line k-1: line k no longer vouches for it, and the two cases
//!   cannot be told apart from the file alone);
//! - it is line N of the head file and does not hash to the head's hash (catches an edit of the
//!   last line);
//! - the file has fewer lines than the head file records: the first missing line is reported
//!   (whole lines removed from the end).
//!
//! A [`ChainBreak`] with `line: 0` is not about a line: the file or the head file could not be
//! read, the head file is corrupt, or it is missing while the file has lines. A missing head file
//! is accepted only for an empty file (a log that was never written).
//!
//! ## Threat model
//!
//! The chain is tamper-*evident*, not tamper-proof, and has no key. It detects edits, deletions,
//! insertions, reordering and truncation by someone who changes the file but not the head file,
//! and accidental damage. Someone who can rewrite both the file and its head file can rewrite
//! history at will (recompute every hash from the first changed line on), and anyone who can
//! write the file can append forged events. To narrow that, the head (`lines` and `head`) is
//! logged with `tracing::info!` when the file is opened, after every 1000 records, at the first
//! batch 60 seconds or more after the last such log, and when the file is closed; with logs
//! shipped elsewhere, [`verify_chain_against`] checks the file against such an anchor
//! ([`verify_reader`] checks lines that are not in a file, with or without one). Deleting
//! both files is only detectable from those anchors. Verification of a live file takes a shared
//! lock, so it waits for the batch being written (if any) and sees whole batches only.
//! Verification reads the whole file (115–180 MB/s, 350,000–550,000 lines a second, in a
//! release build), which [`ChainedFile::open`] also does: rotate large files (close, move both
//! files aside, open a new one).
//!
//! ## Cost
//!
//! Per batch, a [`ChainedFile`] pays one `write`, one `sync_data` and one head-file replacement
//! (create, write, sync, rename), whatever the batch size; per event, it pays serialising and
//! hashing its line (about 2 µs) and its share of the write. Measured with
//! `cargo bench -p svctoken-issuer --bench audit` (release build, ~320-byte lines, a file on the
//! 2-core development VM's ext4 disk, shared with other work, so the figures are rough):
//!
//! | what | time per iteration | events a second |
//! | --- | --- | --- |
//! | one record at a time (a batch of one: write, sync, head) | 0.49 ms | 2,000 |
//! | 32 fail-closed records at once, each awaited | 0.98 ms | 33,000 |
//! | 256 fail-closed records at once, each awaited | 1.67 ms | 154,000 |
//!
//! A batch costs about 0.5 ms however many events it holds, so a fail-closed request waits one
//! to two batch times (the batch being written, then its own), and the trail's throughput grows
//! with the number of requests waiting instead of stopping at one sync per event. Fail-open
//! requests only pay for queueing the event. Where a disk syncs slowly, batches simply grow.
//!
//! Most of a batch's 0.5 ms is waiting for the disk, but not all: on the development VM the
//! sync and the head file replacement also cost about 0.2 ms of CPU per batch (the kernel's
//! block layer and the virtual disk's notifications), taken from the cores that serve requests.
//! Unpaced, a fail-open writer under load ran a batch every sync, about 1,000 a second, a fifth
//! of a core; paced to one every 5 ms, the writer costs about 2.5 µs of CPU per event in all
//! (serialising, hashing, its share of the write and of the batch).
//!
//! End to end, on the same VM (release `svctoken serve`, ES256, `RUST_LOG=warn`, one client
//! with `client_secret_basic`, `wrk -t2 -c32 -d10s` on the same two cores): with the audit file
//! on and `fail_closed = true`, 22,900 tokens a second, p50 1.3 ms, p99 2.9 ms; with the audit
//! file off, 23,000 a second. The trail no longer limits the token endpoint; `svctoken audit
//! verify` accepted the file (about 230,000 lines) after the run.

mod actor;
mod chain;

mod event;
mod file;
mod lifecycle;
mod scrub;
mod sinks;
#[cfg(test)]
mod testing;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::AuditMetrics;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::Error;
pub use chain::{
    ChainBreak, ChainReport, head_path, verify_chain, verify_chain_against, verify_reader,
};
pub(crate) use chain::{ZERO_HASH, chain_events};
pub use event::{AuditEvent, Outcome};
pub use file::ChainedFile;
pub use lifecycle::{ChangedBy, KeyChange, KeyRole, Lifecycle};
pub use sinks::{AuditSink, MemorySink, StdoutSink};

use writer::{Job, Pace, Sinks, Writer};

/// How a fail-open auditor spaces and syncs its batches (see the module docs): nobody waits
/// for them, so they gather for up to 5 ms, are written at once, and are synced (with the head
/// file) at most 100 ms after the first unsynced one instead of one sync and head file each.
const FAIL_OPEN_PACE: Pace = Pace {
    batches: Duration::from_millis(5),
    sync_within: Some(Duration::from_millis(100)),
};

/// The least time between two log lines about events lost to a full queue.
const LOSS_LOG_EVERY: Duration = Duration::from_secs(1);

/// Records each event in every sink, through one writer thread with group commit (see the
/// module docs). Cheap to clone: clones share the writer, the sinks and the failure count. When
/// the last clone is dropped, what is queued is recorded and the sinks are closed.
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<Shared>,
}

struct Shared {
    /// `None` when there are no sinks.
    writer: Option<Writer>,
    /// The same sinks the writer records in, for [`Auditor::record_now`].
    sinks: Sinks,
    fail_closed: bool,
    metrics: AuditMetrics,
    losses: LossLog,
}

impl Auditor {
    /// An auditor writing to `sinks` from its own writer thread (none if `sinks` is empty).
    /// With `fail_closed`, [`Auditor::record`] waits for the event's batch and returns the
    /// first sink error, and the caller must refuse the request; without it, failures are only
    /// logged and counted. If the thread cannot be started, that is logged and every record
    /// fails ([`Error::AuditWriterStopped`]).
    pub fn new(sinks: Vec<Box<dyn AuditSink>>, fail_closed: bool) -> Self {
        let metrics = AuditMetrics::default();
        let sinks: Sinks = sinks.into();
        let pace = if fail_closed {
            Pace::EVERY_BATCH_SYNCED
        } else {
            FAIL_OPEN_PACE
        };
        let writer =
            (!sinks.is_empty()).then(|| Writer::paced(Arc::clone(&sinks), metrics.clone(), pace));
        Auditor {
            inner: Arc::new(Shared {
                writer,
                sinks,
                fail_closed,
                metrics,
                losses: LossLog::default(),
            }),
        }
    }

    /// An auditor with no sinks (records nothing, never fails, starts no thread).
    pub fn disabled() -> Self {
        Auditor::new(Vec::new(), false)
    }

    /// Queues `event` for every sink. Fail-open: returns `Ok` as soon as the event is queued
    /// (or dropped and counted, if the queue is full). Fail-closed: waits for room in the
    /// queue, then for the event's batch to be recorded, and returns the first sink error.
    /// Never panics (a sink's panic is caught and counted as a failure). If the returned future
    /// is dropped after the event was queued, the event is still recorded.
    pub async fn record(&self, event: AuditEvent) -> Result<(), Error> {
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        if !self.inner.fail_closed {
            match writer.try_send(Job::Record { event, reply: None }) {
                Err(error) => self.lost(&error),
                Ok(()) => self.inner.losses.settle(),
            }
            return Ok(());
        }
        let (reply, result) = oneshot::channel();
        let queued = writer.send(Job::Record {
            event,
            reply: Some(reply),
        });
        let recorded = match queued.await {
            Ok(()) => result.await.unwrap_or(Err(Error::AuditWriterStopped)),
            Err(error) => Err(error),
        };
        if let Err(Error::AuditWriterStopped) = &recorded {
            self.lost(&Error::AuditWriterStopped);
        }
        recorded
    }

    /// Records `events` in every sink from the calling thread, as one batch, and returns once
    /// they are recorded (for the chained file: on disk), with the first sink error; failures
    /// are logged and counted as for queued events, whether or not the auditor fails closed.
    /// Blocking (it may wait for the disk and for another process's batch): for rare events
    /// that must be on disk before the caller goes on, such as key lifecycle changes, which
    /// are recorded while the key store's lock is held so that two processes' records appear
    /// in the order of their changes. Events queued by [`Auditor::record`] before this call may
    /// be recorded after it.
    pub fn record_now(&self, events: &[AuditEvent]) -> Result<(), Error> {
        writer::record_batch(&self.inner.sinks, events, &self.inner.metrics)
    }

    /// Returns once every event queued before the call has been recorded (or has failed), with
    /// the chained file's head written: call it before exiting. `Err` only if the writer is
    /// not running.
    pub async fn flush(&self) -> Result<(), Error> {
        let Some(writer) = &self.inner.writer else {
            return Ok(());
        };
        let (done, flushed) = oneshot::channel();
        writer.send(Job::Flush(done)).await?;
        flushed.await.map_err(|_| Error::AuditWriterStopped)
    }

    /// How many times a sink has failed to record an event (one event failing in two sinks
    /// counts twice; an event dropped from a full queue counts once).
    pub fn failures(&self) -> u64 {
        self.inner.metrics.failures()
    }

    /// Its metrics (failures, batch sizes, sync times), registered by the issuer's.
    pub(crate) fn metrics(&self) -> &AuditMetrics {
        &self.inner.metrics
    }

    /// Whether a sink failure fails [`Auditor::record`].
    pub fn is_fail_closed(&self) -> bool {
        self.inner.fail_closed
    }

    /// How many sinks there are.
    pub fn sink_count(&self) -> usize {
        self.inner.sinks.len()
    }

    /// Counts an event that never reached the writer, and logs it (rate-limited).
    fn lost(&self, error: &Error) {
        self.inner.metrics.failed(1);
        self.inner.losses.note(error, self.inner.fail_closed);
    }
}

impl Default for Auditor {
    fn default() -> Self {
        Auditor::disabled()
    }
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("sinks", &self.inner.sinks.len())
            .field("fail_closed", &self.inner.fail_closed)
            .field("failures", &self.failures())
            .finish()
    }
}

/// Logs events that never reached the writer at most once per [`LOSS_LOG_EVERY`], with how
/// many were lost since the last line.
#[derive(Default)]
struct LossLog {
    unlogged: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl LossLog {
    fn note(&self, error: &Error, fail_closed: bool) {
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        // Whoever holds the lock is logging; this event is in its count or the next one.
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < LOSS_LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let lost = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::error!(
            %error,
            lost,
            fail_closed,
            "audit events were not recorded (logged at most once a second)"
        );
    }

    /// Logs the losses not logged yet (those after the last line, within its second), once
    /// that second is over: called when an event was queued again, so a burst of losses that
    /// ends is still reported whole. One atomic load when there are none.
    fn settle(&self) {
        if self.unlogged.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Ok(mut last) = self.last.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < LOSS_LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let lost = self.unlogged.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::error!(
                lost,
                fail_closed = false,
                "audit events were not recorded (the rest of a burst: the queue was full)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::io;

    use super::testing::{event, gate, read_lines};
    use super::writer::QUEUE_CAPACITY;
    use super::*;

    struct FailingSink;
    impl AuditSink for FailingSink {
        fn record(&self, _: &AuditEvent) -> Result<(), Error> {
            Err(Error::AuditStdout(Arc::new(io::Error::other(
                "broken pipe",
            ))))
        }
    }

    struct PanickingSink;
    impl AuditSink for PanickingSink {
        fn record(&self, _: &AuditEvent) -> Result<(), Error> {
            panic!("sink bug")
        }
    }

    #[tokio::test]
    async fn auditor_fails_open_or_closed_and_counts_failures() {
        let memory = Arc::new(MemorySink::new());
        let open = Auditor::new(
            vec![
                Box::new(FailingSink),
                Box::new(PanickingSink),
                Box::new(Arc::clone(&memory)),
            ],
            false,
        );
        assert!(open.record(event(1)).await.is_ok());
        open.flush().await.unwrap();
        assert_eq!(open.failures(), 2);
        assert_eq!(memory.events(), [event(1)], "later sinks still record");

        let closed = Auditor::new(
            vec![Box::new(FailingSink), Box::new(Arc::clone(&memory))],
            true,
        );
        assert!(matches!(
            closed.record(event(2)).await,
            Err(Error::AuditStdout(_))
        ));
        assert_eq!(closed.clone().failures(), 1);
        assert_eq!(memory.events().len(), 2);
        assert_eq!(closed.sink_count(), 2);
        assert!(closed.is_fail_closed());

        let disabled = Auditor::disabled();
        assert!(disabled.record(event(3)).await.is_ok());
        assert!(disabled.flush().await.is_ok());
        assert_eq!(disabled.sink_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_fail_closed_records_keep_the_chain_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let file = Arc::new(ChainedFile::open(&path).unwrap());
        let auditor = Auditor::new(vec![Box::new(Arc::clone(&file))], true);
        let mut tasks = Vec::new();
        for t in 0..8 {
            let auditor = auditor.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    auditor.record(event(t * 100 + i)).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(verify_chain(&path).unwrap(), file.head());
        assert_eq!(file.head().lines, 200);
        assert_eq!(auditor.failures(), 0);
        let written: BTreeSet<String> = read_lines(&path)
            .iter()
            .map(|line| {
                let event: AuditEvent = serde_json::from_str(line).unwrap();
                serde_json::to_string(&event).unwrap()
            })
            .collect();
        let sent: BTreeSet<String> = (0..8)
            .flat_map(|t| (0..25).map(move |i| serde_json::to_string(&event(t * 100 + i)).unwrap()))
            .collect();
        assert_eq!(written, sent);
    }

    #[tokio::test]
    async fn dropping_the_last_clone_records_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let auditor = Auditor::new(vec![Box::new(ChainedFile::open(&path).unwrap())], false);
        let clone = auditor.clone();
        for i in 1..=50 {
            clone.record(event(i)).await.unwrap();
        }
        drop(clone);
        drop(auditor);
        let reopened = ChainedFile::open(&path).unwrap();
        assert_eq!(reopened.head().lines, 50);
    }

    #[tokio::test]
    async fn record_now_is_on_disk_when_it_returns_and_shares_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let file = Arc::new(ChainedFile::open(&path).unwrap());
        let auditor = Auditor::new(vec![Box::new(Arc::clone(&file))], false);
        auditor.record(event(1)).await.unwrap();
        auditor.record_now(&[event(2), event(3)]).unwrap();
        // Fail-open: event 1 may still be queued, but 2 and 3 are on disk.
        let lines = read_lines(&path);
        assert!(lines.len() >= 2, "{lines:?}");
        auditor.flush().await.unwrap();
        assert_eq!(verify_chain(&path).unwrap().lines, 3);
        assert_eq!(auditor.failures(), 0);

        let failing = Auditor::new(vec![Box::new(FailingSink)], false);
        assert!(failing.record_now(&[event(4), event(5)]).is_err());
        assert_eq!(failing.failures(), 2, "counted per event, fail-open or not");
    }

    #[tokio::test]
    async fn fail_open_drops_and_counts_what_a_full_queue_cannot_take() {
        let (gate, control) = gate();
        let auditor = Auditor::new(vec![Box::new(gate)], false);
        auditor.record(event(0)).await.unwrap();
        assert_eq!(control.entered.recv().unwrap(), 1);
        // The writer is stuck in that batch: the queue fills, then overflows.
        for i in 1..=QUEUE_CAPACITY as u64 + 5 {
            assert!(
                auditor.record(event(i)).await.is_ok(),
                "fail-open never fails"
            );
        }
        assert_eq!(auditor.failures(), 5, "each dropped event is counted");
        control.release.send(()).unwrap();
        control.release.send(()).unwrap();
        auditor.flush().await.unwrap();
        assert_eq!(*control.batches.lock().unwrap(), [1, QUEUE_CAPACITY]);
        // The second batch failed in the sink: every one of its events counts too.
        assert_eq!(auditor.failures(), 5 + QUEUE_CAPACITY as u64);
    }

    #[test]
    fn losses_after_the_last_log_line_are_reported_once_its_second_is_over() {
        let log = LossLog::default();
        for _ in 0..5 {
            log.note(&Error::AuditQueueFull, false);
        }
        let unlogged = || log.unlogged.load(Ordering::Relaxed);
        assert_eq!(
            unlogged(),
            4,
            "the first was logged, four wait for the next second"
        );
        log.settle();
        assert_eq!(unlogged(), 4, "not within the second");
        *log.last.lock().unwrap() = Instant::now().checked_sub(LOSS_LOG_EVERY);
        log.settle();
        assert_eq!(unlogged(), 0, "reported once the second is over");
    }
}
