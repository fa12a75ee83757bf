//! The audit trail: one structured event per token minted and per request refused.
//!
//! # Events
//!
//! An [`AuditEvent`] has typed fields only (no free-form map), so it cannot carry a token, a
//! client secret or a request body by construction. As a last guard, every string field is
//! scrubbed when serialised: any substring shaped like a compact JWS/JWE (`eyJ…` followed by at
//! least two more `.`-separated base64url segments) is written as `[redacted]`, and a string
//! longer than 1 KiB is cut there and marked `…[truncated]` (so a caller cannot flood the
//! trail through a field it controls). Callers must still build `reason` from fixed text and
//! identifiers, never by echoing what the caller sent. `act` is a typed [`Actor`] chain rather
//! than a JSON value: [`Actor::from_claim`] keeps the nested `sub`s of an `act` claim and
//! nothing else.
//!
//! Fields, in this fixed order: `time` (RFC 3339 UTC, whole seconds, e.g.
//! `2026-11-01T12:00:00Z`), `outcome` (`"issued"` or `"refused"`), `error` (the OAuth error code
//! of a refusal), `reason`, `client_id`, `sub`, `aud`, `act` (an [`Actor`]: `{"sub": ..., "act":
//! {...}}`), `scope`, `jti`, `kid`, `exp` (unix seconds) and `peer`. **Absent values are omitted**
//! (never written as `null`), so a line holds only what is known.
//!
//! # Sinks
//!
//! - [`StdoutSink`]: one JSON object per line on standard output (the issuer's logs go to
//!   standard error, so standard output is the audit stream).
//! - [`ChainedFile`]: an append-only, hash-chained file (below).
//! - [`MemorySink`]: keeps events in memory, for tests.
//!
//! [`Auditor`] fans an event out to every sink. A sink failure is logged with `tracing::error!`
//! and counted ([`Auditor::failures`]); whether it also fails the request is the caller's choice,
//! made once in [`Auditor::new`] (`fail_closed`). Recording is synchronous and a [`ChainedFile`]
//! waits for the disk (two syncs per record), so an async caller should record from
//! `spawn_blocking` (or `block_in_place`).
//!
//! **Fail open or fail closed.** With `fail_closed = false`, a failed sink never affects the
//! request: the event is lost from that sink, logged and counted. With `fail_closed = true`,
//! [`Auditor::record`] returns the first sink error after trying every sink, and the issuer must
//! then answer `server_error` and *not* hand out the token it minted (record an issuance
//! *before* sending the response). Fail closed applies to every sink, so give such an auditor
//! only sinks you require. In fail-closed mode the trail may over-report (an event whose record
//! failed after its line was written, e.g. when the head file could not be replaced, is in the
//! file although the token was withheld) but never under-reports.
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
//! atomically (write `<file>.head.tmp`, sync, rename) after **every** record, after the line
//! itself has been synced, so the head never runs ahead of the file. A crash between the two
//! leaves the head one line behind, which verification accepts (the lines after line N are
//! still checked by the chain); opening the file rewrites the head.
//!
//! Each record is one `write_all` of the whole line and its newline to a file opened with
//! `O_APPEND` (created with mode 0600), under a mutex, followed by `sync_data`. If the write fails,
//! the file is cut back to its previous length; if that or the sync fails, the end of the file
//! is unknown and the [`ChainedFile`] refuses further records ([`AuditError::Poisoned`]) until it
//! is reopened, which re-verifies it. An exclusive `flock` is held for the life of a
//! [`ChainedFile`], so a second writer (another process, or a second `open` in this one) fails
//! with [`AuditError::Locked`] instead of corrupting the chain.
//!
//! [`ChainedFile::open`] verifies an existing file first and refuses to append to a broken
//! chain ([`AuditError::BrokenChain`] names the line); otherwise it continues `seq` and `prev`
//! from the last line. A torn last line (power loss during a write) is therefore refused too: an
//! operator decides what to do with the file.
//!
//! ## Verification and the first broken line
//!
//! [`verify_chain`] reads the head file, then the lines, and reports the **lowest-numbered
//! line** that fails one of these checks:
//!
//! - it lacks its newline (a truncated last line) or is not a JSON object with `seq` and `prev`;
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
//! record 60 seconds or more after the last such log, and when the file is closed; with logs shipped elsewhere, [`verify_chain_against`] checks
//! the file against such an anchor. Deleting both files is only detectable from those anchors.
//! Verification of a live file does not take the lock; it may, rarely, see a line being written
//! and report it as truncated: verify again. Verification reads the whole file (115–180 MB/s,
//! 350,000–550,000 lines a second, in a release build), which [`ChainedFile::open`] also does:
//! rotate large files (close, move both files aside, open a new one).
//!
//! ## Cost
//!
//! Measured on this project's 2-core VM disk (release build, one writer, ~320-byte lines,
//! runs of 1000–2000 records): serialising and hashing a line takes about 2 µs, its `write`
//! about 1 µs, its `sync_data` 0.15–0.3 ms, and replacing the head file (create, write, sync,
//! rename) 0.4–1.3 ms, so the head is about two thirds of the cost. A whole record costs
//! **0.6–1.8 ms** (one run averaged 5 ms), and records are serialised by the file's mutex: one
//! [`ChainedFile`] takes roughly 500–1700 records a second. That is the price of "every
//! acknowledged event is on disk and covered by the head". Where it matters (a flood of
//! refused requests, say), rate-limit before the auditor, or audit refusals fail-open.

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize, Serializer};

/// The hex `prev` of line 1.
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How deeply nested an `act` chain may be; deeper actors are dropped.
const MAX_ACT_DEPTH: usize = 16;
/// Log the chain's head after this many records...
const ANCHOR_EVERY_RECORDS: u64 = 1000;
/// ...or after this much time with at least one record since the last anchor.
const ANCHOR_EVERY: Duration = Duration::from_secs(60);
/// What replaces a token-shaped substring of a string field.
const REDACTED: &str = "[redacted]";
/// The longest a string field is written, in bytes (longer ones are cut, at a character
/// boundary, and marked); this bounds a line to well under [`MAX_LINE`].
const MAX_FIELD: usize = 1024;
/// What marks a string field that was cut.
const TRUNCATED: &str = "…[truncated]";
/// The longest line verification accepts, newline included.
const MAX_LINE: usize = 1 << 20;

/// An audit failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O operation on an audit file (or its head file) failed.
    #[error("audit file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing to standard output failed.
    #[error("audit stdout: {0}")]
    Stdout(#[source] io::Error),
    /// The event could not be serialised (its `time` is past the year 9999).
    #[error("audit event: {0}")]
    Encode(#[source] serde_json::Error),
    /// Another [`ChainedFile`] (in this process or another) holds the file's lock.
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
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a request got a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A token was minted and handed out.
    Issued,
    /// The request was refused (the default, so an event built carelessly never claims a
    /// token was issued).
    #[default]
    Refused,
}

/// The actor of a delegated token (the JWT `act` claim, RFC 8693): `sub` acts on behalf of the
/// token's subject, and `act`, if any, is the actor `sub` itself acted for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's subject, e.g. `svc:billing`.
    #[serde(serialize_with = "scrubbed_str")]
    pub sub: String,
    /// The prior actor in the delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// An actor with no prior actor.
    pub fn new(sub: impl Into<String>) -> Self {
        Actor {
            sub: sub.into(),
            act: None,
        }
    }

    /// A delegation chain, current actor first; `None` if `subs` is empty. At most 16 actors
    /// are kept.
    pub fn chain<I, S>(subs: I) -> Option<Actor>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let subs: Vec<String> = subs
            .into_iter()
            .take(MAX_ACT_DEPTH)
            .map(Into::into)
            .collect();
        subs.into_iter().rev().fold(None, |inner, sub| {
            Some(Actor {
                sub,
                act: inner.map(Box::new),
            })
        })
    }

    /// Reads an `act` claim: the `sub` of each nested `act` object, every other member ignored
    /// (so nothing else in the claim can reach the audit trail). `None` if the value has no
    /// string `sub`; the chain stops at the first level without one, and after 16 levels.
    pub fn from_claim(claim: &serde_json::Value) -> Option<Actor> {
        let mut subs = Vec::new();
        let mut level = Some(claim);
        while let Some(value) = level {
            if subs.len() == MAX_ACT_DEPTH {
                break;
            }
            let Some(sub) = value.get("sub").and_then(serde_json::Value::as_str) else {
                break;
            };
            subs.push(sub.to_owned());
            level = value.get("act");
        }
        Actor::chain(subs)
    }

    /// The subjects of the chain, current actor first.
    pub fn subjects(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut next = self.act.as_deref();
        while let Some(actor) = next {
            out.push(actor.sub.as_str());
            next = actor.act.as_deref();
        }
        out
    }
}

/// One audit record: a token minted or a request refused. Absent values are omitted from the
/// JSON. There is deliberately no field that could hold a token or a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, in unix seconds; written as RFC 3339 UTC (`2026-11-01T12:00:00Z`).
    #[serde(with = "rfc3339")]
    pub time: u64,
    /// Issued or refused.
    pub outcome: Outcome,
    /// The OAuth error code of a refusal, e.g. `invalid_client`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub error: Option<String>,
    /// Why the request was refused, in detail (built from fixed text and identifiers only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub reason: Option<String>,
    /// The authenticated (or claimed, for a refusal) client.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub client_id: Option<String>,
    /// The token's subject.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub sub: Option<String>,
    /// The token's audience.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub aud: Option<String>,
    /// The actor, when the token acts on behalf of a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The granted (or requested, for a refusal) scope.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub scope: Option<String>,
    /// The token's id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub jti: Option<String>,
    /// The id of the key that signed the token.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub kid: Option<String>,
    /// The token's expiry, in unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// The caller's address.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "scrubbed"
    )]
    pub peer: Option<String>,
}

impl AuditEvent {
    /// An issuance event at `time` (unix seconds, from the issuer's clock); fill in the rest
    /// with struct update syntax (`AuditEvent { jti: Some(..), ..AuditEvent::issued(now) }`).
    pub fn issued(time: u64) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Issued,
            ..AuditEvent::default()
        }
    }

    /// A refusal at `time` with its OAuth error code and detailed reason.
    pub fn refused(time: u64, error: impl Into<String>, reason: impl Into<String>) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Refused,
            error: Some(error.into()),
            reason: Some(reason.into()),
            ..AuditEvent::default()
        }
    }
}

mod rfc3339 {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
        let time = i64::try_from(*secs)
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| S::Error::custom(format!("time {secs} is out of range")))?;
        let text = time.format(&Rfc3339).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let time = OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)?;
        u64::try_from(time.unix_timestamp())
            .map_err(|_| D::Error::custom(format!("time {text} is before 1970")))
    }
}

fn scrubbed<S: Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(text) => scrubbed_str(text, s),
        None => s.serialize_none(),
    }
}

fn scrubbed_str<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&clean(text))
}

/// `text` scrubbed of token-shaped substrings, then cut to [`MAX_FIELD`] bytes.
fn clean(text: &str) -> Cow<'_, str> {
    let scrubbed = scrub(text);
    if scrubbed.len() <= MAX_FIELD {
        return scrubbed;
    }
    let mut end = MAX_FIELD;
    while !scrubbed.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = scrubbed.get(..end).unwrap_or_default().to_owned();
    out.push_str(TRUNCATED);
    Cow::Owned(out)
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Where a compact JWS/JWE starting at `start` (at an `eyJ`) ends, if it is one: base64url
/// segments joined by at least two dots.
fn compact_jose_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    let skip_segment = |mut at: usize| {
        while bytes.get(at).is_some_and(|&b| is_base64url(b)) {
            at += 1;
        }
        at
    };
    at = skip_segment(at);
    let mut dots = 0;
    while bytes.get(at) == Some(&b'.') {
        dots += 1;
        at = skip_segment(at + 1);
    }
    (dots >= 2).then_some(at)
}

/// `text` with every token-shaped substring replaced by `[redacted]`.
fn scrub(text: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(offset) = text.get(from..).and_then(|rest| rest.find("eyJ")) {
        let start = from + offset;
        match compact_jose_end(text.as_bytes(), start) {
            Some(end) => {
                let out = out.get_or_insert_with(String::new);
                out.push_str(text.get(copied..start).unwrap_or_default());
                out.push_str(REDACTED);
                copied = end;
                from = end;
            }
            None => from = start + 3,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(text.get(copied..).unwrap_or_default());
            Cow::Owned(out)
        }
    }
}

/// Somewhere audit events go.
pub trait AuditSink: Send + Sync {
    /// Records one event; returns once the sink has it (for a file: once it is on disk).
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError>;
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        (**self).record(event)
    }
}

impl<T: AuditSink + ?Sized> AuditSink for Box<T> {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        (**self).record(event)
    }
}

/// Writes each event as one JSON object on one line of standard output.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdoutSink;

impl StdoutSink {
    /// The line [`StdoutSink`] writes for `event`: compact JSON (string escapes keep it on one
    /// line) and a newline.
    pub fn format_line(event: &AuditEvent) -> Result<String, AuditError> {
        let mut line = serde_json::to_string(event).map_err(AuditError::Encode)?;
        line.push('\n');
        Ok(line)
    }
}

impl AuditSink for StdoutSink {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let line = Self::format_line(event)?;
        let mut out = io::stdout().lock();
        out.write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .map_err(AuditError::Stdout)
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
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
        Ok(())
    }
}

/// Fans each event out to its sinks. Cheap to clone (clones share the sinks and the failure
/// count).
#[derive(Clone)]
pub struct Auditor {
    inner: Arc<AuditorInner>,
}

struct AuditorInner {
    sinks: Vec<Box<dyn AuditSink>>,
    fail_closed: bool,
    failures: AtomicU64,
}

impl Auditor {
    /// An auditor writing to `sinks`. With `fail_closed`, [`Auditor::record`] returns the first
    /// sink error, and the caller must refuse the request; without it, failures are only
    /// logged and counted.
    pub fn new(sinks: Vec<Box<dyn AuditSink>>, fail_closed: bool) -> Self {
        Auditor {
            inner: Arc::new(AuditorInner {
                sinks,
                fail_closed,
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// An auditor with no sinks (records nothing, never fails).
    pub fn disabled() -> Self {
        Auditor::new(Vec::new(), false)
    }

    /// Records `event` in every sink, in order, even after one fails. Never panics (a sink's
    /// panic is caught and counted as a failure). Each failure is logged and counted; the
    /// first is returned only if the auditor fails closed.
    pub fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let mut first = None;
        for sink in &self.inner.sinks {
            let result = catch_unwind(AssertUnwindSafe(|| sink.record(event)))
                .unwrap_or(Err(AuditError::SinkPanicked));
            if let Err(error) = result {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %error,
                    outcome = ?event.outcome,
                    client_id = event.client_id.as_deref().unwrap_or(""),
                    jti = event.jti.as_deref().unwrap_or(""),
                    fail_closed = self.inner.fail_closed,
                    "audit sink failed to record an event"
                );
                first.get_or_insert(error);
            }
        }
        match first {
            Some(error) if self.inner.fail_closed => Err(error),
            _ => Ok(()),
        }
    }

    /// How many times a sink has failed to record an event (one event failing in two sinks
    /// counts twice).
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// Whether a sink failure fails [`Auditor::record`].
    pub fn is_fail_closed(&self) -> bool {
        self.inner.fail_closed
    }

    /// How many sinks there are.
    pub fn sink_count(&self) -> usize {
        self.inner.sinks.len()
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

/// A verified chain: how many lines it has and the hash of the last one. The head file holds
/// exactly this, as JSON; it is also the anchor [`verify_chain_against`] takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainReport {
    /// The number of lines.
    pub lines: u64,
    /// The lowercase hex SHA-256 of the last line without its newline (64 zeros if none).
    pub head: String,
}

/// Where and how a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first broken line (1-based); 0 when the problem is not a line (the file or head file
    /// could not be read, or the head file is corrupt or missing).
    pub line: u64,
    /// What is wrong, for a person.
    pub reason: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl std::error::Error for ChainBreak {}

impl ChainBreak {
    fn at(line: u64, reason: impl Into<String>) -> Self {
        ChainBreak {
            line,
            reason: reason.into(),
        }
    }
}

/// The head file of the chained file at `path`: `path` with `.head` appended.
pub fn head_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

fn head_tmp_path(path: &Path) -> PathBuf {
    let mut name = head_path(path).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The `seq` and `prev` of a line; deserialising it also checks the line is one JSON object.
#[derive(Deserialize)]
struct Link {
    seq: u64,
    prev: String,
}

/// A line as written: `seq`, `prev`, then the event's fields.
#[derive(Serialize)]
struct ChainLine<'a> {
    seq: u64,
    prev: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

/// What verification established.
struct Verified {
    lines: u64,
    head: String,
    bytes: u64,
}

/// Where an anchor came from, for messages.
struct Anchor<'a> {
    report: &'a ChainReport,
    origin: String,
}

/// Verifies the lines from `reader` against `anchor`, if any.
fn verify_lines<R: BufRead>(
    mut reader: R,
    anchor: Option<&Anchor<'_>>,
) -> Result<Verified, ChainBreak> {
    let mut buf = Vec::new();
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut prev = ZERO_HASH.to_owned();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ChainBreak::at(0, format!("reading line {}: {e}", lines + 1)))?;
        if read == 0 {
            break;
        }
        let at = lines + 1;
        if read > MAX_LINE {
            return Err(ChainBreak::at(
                at,
                format!("longer than {MAX_LINE} bytes: not a line svctoken writes"),
            ));
        }
        let Some(line) = buf.strip_suffix(b"\n") else {
            return Err(ChainBreak::at(
                at,
                "incomplete: no newline at the end of the file (truncated, or a torn write)",
            ));
        };
        let link: Link = serde_json::from_slice(line)
            .map_err(|e| ChainBreak::at(at, format!("not a JSON object with seq and prev: {e}")))?;
        if link.seq != at {
            return Err(ChainBreak::at(
                at,
                format!(
                    "seq is {}, expected {at}: a line before it was removed or inserted, or lines \
                     were reordered",
                    link.seq
                ),
            ));
        }
        if link.prev != prev {
            return Err(if at == 1 {
                ChainBreak::at(1, "prev is not 64 zeros, so this is not the first line")
            } else {
                ChainBreak::at(
                    lines,
                    format!(
                        "does not hash to the prev recorded by line {at}: line {lines} was altered \
                         (or line {at}'s prev was)"
                    ),
                )
            });
        }
        prev = hex::encode(sha256(line));
        lines = at;
        bytes += read as u64;
        if let Some(anchor) = anchor
            && anchor.report.lines == at
            && anchor.report.head != prev
        {
            return Err(ChainBreak::at(
                at,
                format!(
                    "does not hash to the head recorded by {}: the line was altered",
                    anchor.origin
                ),
            ));
        }
    }
    if let Some(anchor) = anchor
        && anchor.report.lines > lines
    {
        return Err(ChainBreak::at(
            lines + 1,
            format!(
                "missing: the file ends after {lines} lines but {} records {}; lines {}..={} \
                     were removed",
                anchor.origin,
                anchor.report.lines,
                lines + 1,
                anchor.report.lines
            ),
        ));
    }
    Ok(Verified {
        lines,
        head: prev,
        bytes,
    })
}

fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads the head file; `None` if there is none.
fn read_head(head: &Path) -> Result<Option<ChainReport>, ChainBreak> {
    let text = match std::fs::read(head) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ChainBreak::at(0, format!("{}: {e}", head.display()))),
    };
    let report: ChainReport = serde_json::from_slice(&text)
        .map_err(|e| ChainBreak::at(0, format!("{} is corrupt: {e}", head.display())))?;
    if !is_hash(&report.head) {
        return Err(ChainBreak::at(
            0,
            format!(
                "{} is corrupt: head is not a lowercase hex SHA-256",
                head.display()
            ),
        ));
    }
    Ok(Some(report))
}

/// Verifies the file read from `file` (from its start) against its head file.
fn verify_file(path: &Path, file: &File) -> Result<Verified, ChainBreak> {
    let head = head_path(path);
    // The head first: a writer appends the line before replacing the head, so the file read
    // afterwards is never behind the head read here.
    let report = read_head(&head)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| ChainBreak::at(0, format!("{}: {e}", path.display())))?;
    let anchor = report.as_ref().map(|report| Anchor {
        report,
        origin: format!("the head file {}", head.display()),
    });
    let verified = verify_lines(reader, anchor.as_ref())?;
    if report.is_none() && verified.lines > 0 {
        return Err(ChainBreak::at(
            0,
            format!(
                "the head file {} is missing, so removal of lines at the end cannot be ruled out",
                head.display()
            ),
        ));
    }
    Ok(verified)
}

/// Verifies the chained file at `path` and its head file (see the module docs for the checks
/// and which line is reported).
pub fn verify_chain(path: &Path) -> Result<ChainReport, ChainBreak> {
    let file =
        File::open(path).map_err(|e| ChainBreak::at(0, format!("{}: {e}", path.display())))?;
    let verified = verify_file(path, &file)?;
    Ok(ChainReport {
        lines: verified.lines,
        head: verified.head,
    })
}

/// Verifies the chained file at `path` against an anchor recorded elsewhere (a head logged
/// earlier) instead of its head file: the chain must be intact, have at least `anchor.lines`
/// lines, and line `anchor.lines` must hash to `anchor.head`.
pub fn verify_chain_against(path: &Path, anchor: &ChainReport) -> Result<ChainReport, ChainBreak> {
    let file =
        File::open(path).map_err(|e| ChainBreak::at(0, format!("{}: {e}", path.display())))?;
    let report = ChainReport {
        lines: anchor.lines,
        head: anchor.head.to_ascii_lowercase(),
    };
    let anchor = Anchor {
        report: &report,
        origin: "the anchor".to_owned(),
    };
    let verified = verify_lines(BufReader::with_capacity(1 << 16, file), Some(&anchor))?;
    Ok(ChainReport {
        lines: verified.lines,
        head: verified.head,
    })
}

/// A hash-chained, append-only audit file with a head file beside it (see the module docs).
/// Holds an exclusive lock on the file while it lives.
pub struct ChainedFile {
    path: PathBuf,
    head_path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// Opened with `O_APPEND`; its lock is held until it is dropped.
    file: File,
    lines: u64,
    head: String,
    len: u64,
    poisoned: bool,
    since_anchor: u64,
    last_anchor: Instant,
}

impl ChainedFile {
    /// Opens (creating with mode 0600) the chained file at `path`, locks it, verifies it and
    /// its head file, and continues the chain from its last line.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditError> {
        let path = path.into();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(AuditError::Locked { path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&path)(e)),
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = file.metadata()
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "audit file is readable or writable by others than its owner"
                );
            }
        }
        let verified = verify_file(&path, &file).map_err(|chain| AuditError::BrokenChain {
            path: path.clone(),
            chain,
        })?;
        let head_path = head_path(&path);
        write_head(&path, verified.lines, &verified.head).map_err(io_err(&head_path))?;
        sync_parent(&path).map_err(io_err(&path))?;
        tracing::info!(
            path = %path.display(),
            lines = verified.lines,
            head = %verified.head,
            "audit chain opened"
        );
        Ok(ChainedFile {
            path,
            head_path,
            state: Mutex::new(State {
                file,
                lines: verified.lines,
                head: verified.head,
                len: verified.bytes,
                poisoned: false,
                since_anchor: 0,
                last_anchor: Instant::now(),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current head: the number of lines and the hash of the last one.
    pub fn head(&self) -> ChainReport {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        ChainReport {
            lines: state.lines,
            head: state.head.clone(),
        }
    }

    fn append(&self, state: &mut State, event: &AuditEvent) -> Result<(), AuditError> {
        let seq = state.lines + 1;
        let mut line = serde_json::to_vec(&ChainLine {
            seq,
            prev: &state.head,
            event,
        })
        .map_err(AuditError::Encode)?;
        let hash = hex::encode(sha256(&line));
        line.push(b'\n');
        if let Err(e) = (&state.file).write_all(&line) {
            // Cut a partial line off so the chain stays intact; if that fails too, the end of
            // the file is unknown.
            if state.file.set_len(state.len).is_err() {
                state.poisoned = true;
            }
            return Err(io_err(&self.path)(e));
        }
        if let Err(e) = state.file.sync_data() {
            // After a failed sync the kernel may have dropped the data: stop here.
            state.poisoned = true;
            return Err(io_err(&self.path)(e));
        }
        state.lines = seq;
        state.head = hash;
        state.len += line.len() as u64;
        // The line is durable; a head file left behind by a failure here is accepted by
        // verification (it only weakens the truncation check until the next record).
        write_head(&self.path, state.lines, &state.head).map_err(io_err(&self.head_path))?;
        state.since_anchor += 1;
        if state.since_anchor >= ANCHOR_EVERY_RECORDS || state.last_anchor.elapsed() >= ANCHOR_EVERY
        {
            log_anchor(&self.path, state, "audit chain anchor");
        }
        Ok(())
    }
}

fn log_anchor(path: &Path, state: &mut State, message: &str) {
    tracing::info!(
        path = %path.display(),
        lines = state.lines,
        head = %state.head,
        "{message}"
    );
    state.since_anchor = 0;
    state.last_anchor = Instant::now();
}

impl AuditSink for ChainedFile {
    fn record(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let poisoned = || AuditError::Poisoned {
            path: self.path.clone(),
        };
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if state.poisoned {
            return Err(poisoned());
        }
        self.append(&mut state, event)
    }
}

impl fmt::Debug for ChainedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = self.head();
        f.debug_struct("ChainedFile")
            .field("path", &self.path)
            .field("lines", &head.lines)
            .field("head", &head.head)
            .finish()
    }
}

impl Drop for ChainedFile {
    fn drop(&mut self) {
        let path = self.path.clone();
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        log_anchor(&path, state, "audit chain closed");
    }
}

/// Replaces the head file of `path` atomically: write a temporary file, sync it, rename it.
fn write_head(path: &Path, lines: u64, head: &str) -> io::Result<()> {
    let tmp = head_tmp_path(path);
    let mut text = serde_json::to_vec(&ChainReport {
        lines,
        head: head.to_owned(),
    })?;
    text.push(b'\n');
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&text)?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&tmp, head_path(path))
}

/// Makes the creation of `path` and its head file durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::BTreeSet;

    fn event(i: u64) -> AuditEvent {
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

    /// A chained file with `n` events, closed again.
    fn chain_of(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let file = ChainedFile::open(&path).unwrap();
        for i in 1..=n {
            file.record(&event(i)).unwrap();
        }
        (dir, path)
    }

    fn read_lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn round_trip_verifies_with_count_and_head() {
        let (_dir, path) = chain_of(200);
        let lines = read_lines(&path);
        assert_eq!(lines.len(), 200);
        let mut prev = ZERO_HASH.to_owned();
        for (i, line) in lines.iter().enumerate() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["seq"], i as u64 + 1);
            assert_eq!(value["prev"], prev.as_str());
            let back: AuditEvent = serde_json::from_str(line).unwrap();
            assert_eq!(back, event(i as u64 + 1));
            prev = hex::encode(sha256(line.as_bytes()));
        }
        let report = verify_chain(&path).unwrap();
        assert_eq!(
            report,
            ChainReport {
                lines: 200,
                head: prev.clone()
            }
        );
        let head: ChainReport =
            serde_json::from_slice(&std::fs::read(head_path(&path)).unwrap()).unwrap();
        assert_eq!(head, report);
        assert_eq!(verify_chain_against(&path, &report).unwrap(), report);
    }

    #[test]
    fn line_format_is_fixed() {
        let (_dir, path) = chain_of(1);
        let line = &read_lines(&path)[0];
        assert_eq!(
            line,
            &format!(
                "{{\"seq\":1,\"prev\":\"{ZERO_HASH}\",\"time\":\"2026-11-01T12:00:01Z\",\
                 \"outcome\":\"issued\",\"client_id\":\"billing\",\"sub\":\"user-1\",\
                 \"aud\":\"convex\",\"act\":{{\"sub\":\"svc:billing\"}},\"scope\":\"read write\",\
                 \"jti\":\"jti-1\",\"kid\":\"k1\",\"exp\":1793534701,\"peer\":\"10.0.0.5:51234\"}}"
            )
        );
    }

    #[test]
    fn editing_a_field_of_line_k_is_reported_at_k() {
        for k in [1usize, 5, 9, 10] {
            let (_dir, path) = chain_of(10);
            let mut lines = read_lines(&path);
            let edited = lines[k - 1].replace(&format!("user-{k}"), "user-X");
            let edited = if edited == lines[k - 1] {
                lines[k - 1].replace("unknown client", "unknown clienT")
            } else {
                edited
            };
            assert_ne!(edited, lines[k - 1]);
            lines[k - 1] = edited;
            write_lines(&path, &lines);
            let err = verify_chain(&path).unwrap_err();
            assert_eq!(err.line, k as u64, "k={k}: {err}");
        }
    }

    #[test]
    fn editing_only_prev_of_line_k_is_reported_at_k_minus_1() {
        let (_dir, path) = chain_of(6);
        let mut lines = read_lines(&path);
        let value: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
        let prev = value["prev"].as_str().unwrap();
        lines[3] = lines[3].replace(prev, &"a".repeat(64));
        write_lines(&path, &lines);
        assert_eq!(verify_chain(&path).unwrap_err().line, 3);
    }

    #[test]
    fn deleting_a_line_is_reported_where_it_was() {
        let (_dir, path) = chain_of(8);
        let mut lines = read_lines(&path);
        lines.remove(4);
        write_lines(&path, &lines);
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        assert!(err.reason.contains("seq is 6"), "{err}");
    }

    #[test]
    fn swapping_two_lines_is_reported() {
        let (_dir, path) = chain_of(8);
        let mut lines = read_lines(&path);
        lines.swap(2, 3);
        write_lines(&path, &lines);
        assert_eq!(verify_chain(&path).unwrap_err().line, 3);
    }

    #[test]
    fn inserting_a_line_is_reported() {
        let (_dir, path) = chain_of(6);
        let mut lines = read_lines(&path);
        // A copy of line 2 inserted after it.
        let copy = lines[1].clone();
        lines.insert(2, copy);
        write_lines(&path, &lines);
        assert_eq!(verify_chain(&path).unwrap_err().line, 3);

        // A forged line with the right seq and prev: the line after it is out of sequence.
        let (_dir, path) = chain_of(6);
        let mut lines = read_lines(&path);
        let prev = hex::encode(sha256(lines[1].as_bytes()));
        let forged = serde_json::to_string(&ChainLine {
            seq: 3,
            prev: &prev,
            event: &event(99),
        })
        .unwrap();
        lines.insert(2, forged);
        write_lines(&path, &lines);
        assert_eq!(verify_chain(&path).unwrap_err().line, 4);
    }

    #[test]
    fn truncating_the_last_line_midway_is_reported() {
        let (_dir, path) = chain_of(5);
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 20]).unwrap();
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 5);
        assert!(err.reason.contains("no newline"), "{err}");
        // Only the newline gone: still incomplete.
        std::fs::write(&path, &text[..text.len() - 1]).unwrap();
        assert_eq!(verify_chain(&path).unwrap_err().line, 5);
    }

    #[test]
    fn truncating_whole_lines_at_the_end_is_caught_by_the_head_file() {
        let (_dir, path) = chain_of(10);
        let lines = read_lines(&path);
        write_lines(&path, &lines[..7]);
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 8, "{err}");
        assert!(err.reason.contains("records 10"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert_eq!(verify_chain(&path).unwrap_err().line, 1);
        // Truncated, then made as long again with a forged tail that continues the chain:
        // line 10 no longer hashes to the head.
        let (_dir, path) = chain_of(10);
        let mut lines = read_lines(&path);
        lines.truncate(7);
        for seq in 8..=10u64 {
            let prev = hex::encode(sha256(lines.last().unwrap().as_bytes()));
            let forged = ChainLine {
                seq,
                prev: &prev,
                event: &event(seq + 100),
            };
            lines.push(serde_json::to_string(&forged).unwrap());
        }
        write_lines(&path, &lines);
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 10, "{err}");
        assert!(err.reason.contains("head"), "{err}");
    }

    #[test]
    fn a_head_file_one_line_behind_is_accepted_and_reopening_resyncs_it() {
        let (_dir, path) = chain_of(4);
        let head_then = ChainReport {
            lines: 4,
            head: verify_chain(&path).unwrap().head,
        };
        {
            let file = ChainedFile::open(&path).unwrap();
            file.record(&event(5)).unwrap();
        }
        // As if the process died between the line's sync and the head's rename.
        std::fs::write(head_path(&path), serde_json::to_vec(&head_then).unwrap()).unwrap();
        assert_eq!(verify_chain(&path).unwrap().lines, 5);
        let file = ChainedFile::open(&path).unwrap();
        let head: ChainReport =
            serde_json::from_slice(&std::fs::read(head_path(&path)).unwrap()).unwrap();
        assert_eq!(head, file.head());
        assert_eq!(head.lines, 5);
    }

    #[test]
    fn missing_or_corrupt_head_file() {
        let (_dir, path) = chain_of(3);
        let head = head_path(&path);
        std::fs::write(&head, "{\"lines\":3}").unwrap();
        assert_eq!(verify_chain(&path).unwrap_err().line, 0);
        std::fs::remove_file(&head).unwrap();
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 0);
        assert!(err.reason.contains("missing"), "{err}");
        assert!(matches!(
            ChainedFile::open(&path),
            Err(AuditError::BrokenChain { .. })
        ));
        // An empty file without a head is a log never written.
        std::fs::write(&path, "").unwrap();
        assert_eq!(
            verify_chain(&path).unwrap(),
            ChainReport {
                lines: 0,
                head: ZERO_HASH.to_owned()
            }
        );
        assert_eq!(
            verify_chain(&path.with_extension("nope")).unwrap_err().line,
            0
        );
    }

    #[test]
    fn reopening_continues_the_chain() {
        let (_dir, path) = chain_of(3);
        let file = ChainedFile::open(&path).unwrap();
        assert_eq!(file.head().lines, 3);
        file.record(&event(4)).unwrap();
        file.record(&event(5)).unwrap();
        let head = file.head();
        drop(file);
        let report = verify_chain(&path).unwrap();
        assert_eq!(report, head);
        assert_eq!(report.lines, 5);
        let last: serde_json::Value =
            serde_json::from_str(read_lines(&path).last().unwrap()).unwrap();
        assert_eq!(last["seq"], 5);
    }

    #[test]
    fn reopening_a_broken_file_is_refused_naming_the_line() {
        let (_dir, path) = chain_of(6);
        let mut lines = read_lines(&path);
        lines[1] = lines[1].replace("2026-11-01", "2026-11-02");
        write_lines(&path, &lines);
        let before = std::fs::read(&path).unwrap();
        let err = ChainedFile::open(&path).unwrap_err();
        assert!(
            matches!(&err, AuditError::BrokenChain { chain, .. } if chain.line == 2),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 2:"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing appended");
    }

    #[test]
    fn a_second_open_fails_while_the_first_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let first = ChainedFile::open(&path).unwrap();
        first.record(&event(1)).unwrap();
        match ChainedFile::open(&path) {
            Err(AuditError::Locked { path: p }) => assert_eq!(p, path),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        let second = ChainedFile::open(&path).unwrap();
        assert_eq!(second.head().lines, 1);
    }

    #[cfg(unix)]
    #[test]
    fn files_are_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = chain_of(1);
        for p in [path.clone(), head_path(&path)] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn concurrent_records_keep_the_chain_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let file = Arc::new(ChainedFile::open(&path).unwrap());
        let auditor = Auditor::new(vec![Box::new(Arc::clone(&file))], true);
        std::thread::scope(|s| {
            for t in 0..4 {
                let auditor = auditor.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        auditor.record(&event(t * 100 + i)).unwrap();
                    }
                });
            }
        });
        assert_eq!(verify_chain(&path).unwrap(), file.head());
        assert_eq!(file.head().lines, 100);
        assert_eq!(auditor.failures(), 0);
    }

    #[test]
    fn the_field_set_is_exactly_the_audit_fields() {
        let full = AuditEvent {
            time: 1,
            outcome: Outcome::Refused,
            error: Some("invalid_grant".into()),
            reason: Some("r".into()),
            client_id: Some("c".into()),
            sub: Some("s".into()),
            aud: Some("a".into()),
            act: Actor::chain(["svc:billing", "svc:gateway"]),
            scope: Some("x".into()),
            jti: Some("j".into()),
            kid: Some("k".into()),
            exp: Some(2),
            peer: Some("p".into()),
        };
        let value = serde_json::to_value(&full).unwrap();
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "time",
            "outcome",
            "error",
            "reason",
            "client_id",
            "sub",
            "aud",
            "act",
            "scope",
            "jti",
            "kid",
            "exp",
            "peer",
        ]
        .into();
        assert_eq!(keys, expected);
        assert_eq!(
            value["act"],
            serde_json::json!({"sub": "svc:billing", "act": {"sub": "svc:gateway"}})
        );
        // Nothing named like a credential, at any depth.
        let text = serde_json::to_string(&full).unwrap().to_lowercase();
        for word in [
            "token",
            "secret",
            "password",
            "assertion",
            "authorization",
            "key\"",
        ] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        // Absent values are omitted, not null.
        let bare = serde_json::to_value(AuditEvent::default()).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"time": "1970-01-01T00:00:00Z", "outcome": "refused"})
        );
    }

    #[test]
    fn token_shaped_strings_are_redacted() {
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let event = AuditEvent {
            reason: Some(format!("bad assertion {jwt}, and eyJ alone; {jwt}.")),
            sub: Some(jwt.to_owned()),
            peer: Some("10.0.0.1:1".to_owned()),
            ..AuditEvent::refused(1_793_534_400, "invalid_grant", "")
        };
        let line = StdoutSink::format_line(&event).unwrap();
        assert!(!line.contains("eyJhbGci"), "{line}");
        let back: AuditEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back.reason.as_deref(),
            Some("bad assertion [redacted], and eyJ alone; [redacted]")
        );
        assert_eq!(back.sub.as_deref(), Some("[redacted]"));
        assert_eq!(back.peer.as_deref(), Some("10.0.0.1:1"));
        assert_eq!(scrub("a.b.c eyJx.y"), "a.b.c eyJx.y");
        // A five-part JWE goes whole.
        assert_eq!(scrub("x eyJa.b.c.d.e y"), "x [redacted] y");
    }

    #[test]
    fn long_fields_are_cut_and_long_lines_refused() {
        let event = AuditEvent {
            client_id: Some("é".repeat(5000)),
            act: Some(Actor::new("x".repeat(5000))),
            ..AuditEvent::refused(1_793_534_400, "invalid_client", "unknown client")
        };
        let back: AuditEvent =
            serde_json::from_str(&StdoutSink::format_line(&event).unwrap()).unwrap();
        let client_id = back.client_id.unwrap();
        assert!(client_id.ends_with(TRUNCATED));
        assert_eq!(client_id.len(), MAX_FIELD + TRUNCATED.len());
        assert_eq!(back.act.unwrap().sub.len(), MAX_FIELD + TRUNCATED.len());

        let (_dir, path) = chain_of(2);
        let mut lines = read_lines(&path);
        lines.push("x".repeat(MAX_LINE + 10));
        write_lines(&path, &lines);
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("longer than"), "{err}");
    }

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

    #[test]
    fn actor_from_claim_keeps_only_subjects() {
        let claim = serde_json::json!({
            "sub": "svc:billing",
            "token": "eyJ...",
            "act": {"sub": "svc:gateway", "secret": "x", "act": {"nosub": true}}
        });
        let actor = Actor::from_claim(&claim).unwrap();
        assert_eq!(actor.subjects(), ["svc:billing", "svc:gateway"]);
        assert_eq!(
            serde_json::to_value(&actor).unwrap(),
            serde_json::json!({"sub": "svc:billing", "act": {"sub": "svc:gateway"}})
        );
        assert_eq!(Actor::from_claim(&serde_json::json!("svc:x")), None);
        assert_eq!(Actor::chain(Vec::<String>::new()), None);
        let mut deep = serde_json::json!({"sub": "s0"});
        for i in 1..40 {
            deep = serde_json::json!({"sub": format!("s{i}"), "act": deep});
        }
        assert_eq!(
            Actor::from_claim(&deep).unwrap().subjects().len(),
            MAX_ACT_DEPTH
        );
    }

    struct FailingSink;
    impl AuditSink for FailingSink {
        fn record(&self, _: &AuditEvent) -> Result<(), AuditError> {
            Err(AuditError::Stdout(io::Error::other("broken pipe")))
        }
    }

    struct PanickingSink;
    impl AuditSink for PanickingSink {
        fn record(&self, _: &AuditEvent) -> Result<(), AuditError> {
            panic!("sink bug")
        }
    }

    #[test]
    fn auditor_fails_open_or_closed_and_counts_failures() {
        let memory = Arc::new(MemorySink::new());
        let open = Auditor::new(
            vec![
                Box::new(FailingSink),
                Box::new(PanickingSink),
                Box::new(Arc::clone(&memory)),
            ],
            false,
        );
        assert!(open.record(&event(1)).is_ok());
        assert_eq!(open.failures(), 2);
        assert_eq!(memory.events(), [event(1)], "later sinks still record");

        let closed = Auditor::new(
            vec![Box::new(FailingSink), Box::new(Arc::clone(&memory))],
            true,
        );
        assert!(matches!(
            closed.record(&event(2)),
            Err(AuditError::Stdout(_))
        ));
        assert_eq!(closed.clone().failures(), 1);
        assert_eq!(memory.events().len(), 2);
        assert!(Auditor::disabled().record(&event(3)).is_ok());
    }

    #[test]
    fn time_is_rfc3339_utc_seconds() {
        let now = AuditEvent::issued(1_793_534_400);
        assert!(now.time > 1_700_000_000);
        let value = serde_json::to_value(&now).unwrap();
        let text = value["time"].as_str().unwrap();
        assert_eq!(text.len(), 20, "{text}");
        assert!(text.ends_with('Z'));
        let far = AuditEvent {
            time: u64::MAX,
            ..AuditEvent::default()
        };
        assert!(matches!(
            StdoutSink::format_line(&far),
            Err(AuditError::Encode(_))
        ));
    }
}
