//! [`ChainedFile`]: the append-only, hash-chained file and its head file.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::chain::{
    ChainBreak, ChainReport, Verified, chain_events, head_path, verify_appended, verify_file,
};
use super::event::AuditEvent;
use super::sinks::AuditSink;
use crate::Error;

/// Log the chain's head after this many records...
const ANCHOR_EVERY_RECORDS: u64 = 1000;
/// ...or after this much time with at least one record since the last anchor.
const ANCHOR_EVERY: Duration = Duration::from_secs(60);

/// A hash-chained, append-only audit file with a head file beside it (see the module docs).
/// Several writers, in this process or others, may append to the same file: each batch is
/// written under an exclusive lock on the file, after catching up with whatever the others
/// appended since. An [`Auditor`](super::Auditor) gives it to its writer thread, which appends
/// each batch with one write and one sync (or, fail-open, with one write, syncing at most every
/// 100 ms); it can also be used directly (each [`AuditSink::record`] is then a batch of one).
pub struct ChainedFile {
    path: PathBuf,
    head_path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// Opened with `O_APPEND`; locked (`flock`) while a batch is written.
    file: File,
    chain: Chain,
}

/// The end of the chain as this writer last saw it.
struct Chain {
    lines: u64,
    head: String,
    len: u64,
    poisoned: bool,
    since_anchor: u64,
    last_anchor: Instant,
    /// Lines written by [`AuditSink::record_batch_unsynced`] and not synced since: the head
    /// file is behind them until the next sync.
    unsynced: bool,
}

/// The exclusive lock on the audit file, held while a batch is written; released on drop
/// (and by the kernel if the process dies).
struct Held<'a>(&'a File);

impl<'a> Held<'a> {
    /// Waits for the lock: another writer holds it only while it writes one batch.
    fn take(file: &'a File, path: &Path) -> Result<Self, Error> {
        file.lock().map_err(Error::io(path))?;
        Ok(Held(file))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // If this fails the lock goes with the file when it is closed.
        let _ = self.0.unlock();
    }
}

impl ChainedFile {
    /// Opens (creating with mode 0600) the chained file at `path`, verifies it and its head
    /// file under the file's lock, and continues the chain from its last line.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(Error::io(&path))?;
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
        let head_path = head_path(&path);
        let verified = {
            let _held = Held::take(&file, &path)?;
            let verified = verify_file(&path, &file).map_err(|chain| Error::AuditBrokenChain {
                path: path.clone(),
                chain,
            })?;
            write_head(&path, verified.lines, &verified.head).map_err(Error::io(&head_path))?;
            sync_parent(&path).map_err(Error::io(&path))?;
            verified
        };
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
                chain: Chain {
                    lines: verified.lines,
                    head: verified.head,
                    len: verified.bytes,
                    poisoned: false,
                    since_anchor: 0,
                    last_anchor: Instant::now(),
                    unsynced: false,
                },
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head as this writer last saw it (after its own last batch, or the last batch of
    /// another writer it caught up with): the number of lines and the hash of the last one.
    pub fn head(&self) -> ChainReport {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        ChainReport {
            lines: state.chain.lines,
            head: state.chain.head.clone(),
        }
    }

    /// With the lock held: takes in what other writers appended since this one last wrote,
    /// checking that it continues the chain; refuses a file that lost lines.
    fn catch_up(&self, file: &File, chain: &mut Chain) -> Result<(), Error> {
        let len = file.metadata().map_err(Error::io(&self.path))?.len();
        if len == chain.len {
            return Ok(());
        }
        let broken = |chain| Error::AuditBrokenChain {
            path: self.path.clone(),
            chain,
        };
        if len < chain.len {
            return Err(broken(ChainBreak::at(
                0,
                format!(
                    "the file is {len} bytes, shorter than the {} bytes ({} lines) it had: \
                     lines were removed",
                    chain.len, chain.lines
                ),
            )));
        }
        let from = Verified {
            lines: chain.lines,
            head: chain.head.clone(),
            bytes: chain.len,
        };
        let caught_up = verify_appended(&self.path, file, &from).map_err(broken)?;
        chain.lines = caught_up.lines;
        chain.head = caught_up.head;
        chain.len = caught_up.bytes;
        Ok(())
    }

    /// With the lock held and caught up: appends `events` as one write, then, if `sync`, makes
    /// the file durable and replaces the head file (see [`ChainedFile::make_durable`]).
    fn append(
        &self,
        file: &File,
        chain: &mut Chain,
        events: &[AuditEvent],
        sync: bool,
    ) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(events.len() * 512);
        let mut head = chain.head.clone();
        let lines = chain_events(&mut buf, chain.lines, &mut head, events)?;
        if let Err(e) = (&*file).write_all(&buf) {
            // Cut a partial batch off so the chain stays intact; if that fails too, the end of
            // the file is unknown.
            if file.set_len(chain.len).is_err() {
                chain.poisoned = true;
            }
            return Err(Error::io(&self.path)(e));
        }
        chain.lines = lines;
        chain.head = head;
        chain.len += buf.len() as u64;
        chain.since_anchor += events.len() as u64;
        chain.unsynced = true;
        if sync {
            self.make_durable(file, chain)?;
        }
        Ok(())
    }

    /// With the lock held and caught up: syncs the file (every line in it, whoever wrote it),
    /// then replaces the head file with its end, and logs an anchor when one is due. The head
    /// and the anchors only ever name synced lines, so a machine crash can't leave them ahead
    /// of the file.
    fn make_durable(&self, file: &File, chain: &mut Chain) -> Result<(), Error> {
        if let Err(e) = file.sync_data() {
            // After a failed sync the kernel may have dropped the data: stop here.
            chain.poisoned = true;
            return Err(Error::io(&self.path)(e));
        }
        chain.unsynced = false;
        // The lines are durable; a head file left behind by a failure here is accepted by
        // verification (it only weakens the truncation check until the next sync).
        write_head(&self.path, chain.lines, &chain.head).map_err(Error::io(&self.head_path))?;
        if chain.since_anchor >= ANCHOR_EVERY_RECORDS || chain.last_anchor.elapsed() >= ANCHOR_EVERY
        {
            log_anchor(&self.path, chain, "audit chain anchor");
        }
        Ok(())
    }

    /// Locks the state and the file, catches up with other writers, and runs `f`; refuses a
    /// poisoned file.
    fn locked(&self, f: impl FnOnce(&File, &mut Chain) -> Result<(), Error>) -> Result<(), Error> {
        let poisoned = || Error::AuditPoisoned {
            path: self.path.clone(),
        };
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if state.chain.poisoned {
            return Err(poisoned());
        }
        let State { file, chain } = &mut *state;
        let _held = Held::take(file, &self.path)?;
        self.catch_up(file, chain)?;
        f(file, chain)
    }
}

fn log_anchor(path: &Path, chain: &mut Chain, message: &str) {
    tracing::info!(
        path = %path.display(),
        lines = chain.lines,
        head = %chain.head,
        "{message}"
    );
    chain.since_anchor = 0;
    chain.last_anchor = Instant::now();
}

impl AuditSink for ChainedFile {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    /// Appends every event of the batch with one `write` and one `sync_data` (which also
    /// makes durable any unsynced batch before it), then replaces the head file once; all or
    /// nothing.
    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        if events.is_empty() {
            return self.sync();
        }
        self.locked(|file, chain| self.append(file, chain, events, true))
    }

    /// Appends every event of the batch with one `write`; the sync and the head file wait for
    /// [`AuditSink::sync`] or the next `record_batch`.
    fn record_batch_unsynced(&self, events: &[AuditEvent]) -> Result<(), Error> {
        if events.is_empty() {
            return Ok(());
        }
        self.locked(|file, chain| self.append(file, chain, events, false))
    }

    /// Syncs the lines written since the last sync, and the head file after them.
    fn sync(&self) -> Result<(), Error> {
        self.locked(|file, chain| {
            if chain.unsynced {
                self.make_durable(file, chain)
            } else {
                Ok(())
            }
        })
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
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.chain.unsynced
            && !state.chain.poisoned
            && let Err(error) = self.sync()
        {
            tracing::error!(%error, "the audit file's last lines could not be synced");
        }
        let path = self.path.clone();
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        log_anchor(&path, &mut state.chain, "audit chain closed");
    }
}

fn head_tmp_path(path: &Path) -> PathBuf {
    let mut name = head_path(path).into_os_string();
    name.push(".tmp");
    PathBuf::from(name)
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
    use crate::audit::testing::{
        assert_holds_events_in_order, chain_of, event, read_lines, write_lines,
    };
    use crate::audit::verify_chain;

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

    fn head_file(path: &Path) -> ChainReport {
        serde_json::from_slice(&std::fs::read(head_path(path)).unwrap()).unwrap()
    }

    #[test]
    fn unsynced_lines_are_in_the_file_at_once_and_the_head_follows_at_the_sync() {
        let (_dir, path) = chain_of(2);
        let file = ChainedFile::open(&path).unwrap();
        let events: Vec<_> = (3..=5).map(event).collect();
        file.record_batch_unsynced(&events).unwrap();
        // Written (another process reads them, and verification accepts the head behind)...
        assert_eq!(read_lines(&path).len(), 5);
        assert_eq!(verify_chain(&path).unwrap().lines, 5);
        // ...but the head file names only synced lines.
        assert_eq!(head_file(&path).lines, 2);
        file.sync().unwrap();
        assert_eq!(head_file(&path), file.head());
        assert_eq!(head_file(&path).lines, 5);

        // A synced batch syncs the unsynced lines before it.
        file.record_batch_unsynced(&[event(6)]).unwrap();
        file.record(&event(7)).unwrap();
        assert_eq!(head_file(&path).lines, 7);

        // Closing syncs what is left.
        file.record_batch_unsynced(&[event(8)]).unwrap();
        assert_eq!(head_file(&path).lines, 7);
        drop(file);
        assert_eq!(head_file(&path).lines, 8);
        assert_eq!(verify_chain(&path).unwrap().lines, 8);
        assert_holds_events_in_order(&path);
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
            matches!(&err, Error::AuditBrokenChain { chain, .. } if chain.line == 2),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 2:"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing appended");
    }

    #[test]
    fn two_writers_on_one_file_take_turns_and_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // As the running issuer and a `svctoken keys` command would: two opens, each with its
        // own view of the end of the chain.
        let first = ChainedFile::open(&path).unwrap();
        let second = ChainedFile::open(&path).unwrap();
        first.record(&event(1)).unwrap();
        second.record_batch(&[event(2), event(3)]).unwrap();
        first.record(&event(4)).unwrap();
        second.record(&event(5)).unwrap();
        assert_eq!(first.head().lines, 4, "as of its own last batch");
        assert_eq!(second.head().lines, 5);
        let report = verify_chain(&path).unwrap();
        assert_eq!(report, second.head());
        assert_holds_events_in_order(&path);
    }

    #[test]
    fn a_writer_refuses_to_continue_after_another_writer_broke_the_file() {
        let (_dir, path) = chain_of(3);
        let file = ChainedFile::open(&path).unwrap();
        // Someone appends a line that does not continue the chain.
        let mut lines = read_lines(&path);
        lines.push(lines[0].clone());
        write_lines(&path, &lines);
        let err = file.record(&event(4)).unwrap_err();
        assert!(
            matches!(&err, Error::AuditBrokenChain { chain, .. } if chain.line == 4),
            "{err:?}"
        );
        // Or cuts lines off.
        write_lines(&path, &lines[..2]);
        let err = file.record(&event(4)).unwrap_err();
        assert!(err.to_string().contains("lines were removed"), "{err}");
        assert_eq!(read_lines(&path).len(), 2, "nothing appended");
    }

    #[test]
    fn a_batch_waits_for_the_lock_another_writer_holds() {
        let (_dir, path) = chain_of(1);
        let file = ChainedFile::open(&path).unwrap();
        let other = File::open(&path).unwrap();
        other.lock().unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                file.record(&event(2)).unwrap();
                done_tx.send(()).unwrap();
            });
            assert!(
                done.recv_timeout(Duration::from_millis(200)).is_err(),
                "recorded while another writer held the lock"
            );
            other.unlock().unwrap();
            done.recv_timeout(Duration::from_secs(10))
                .expect("recorded once the lock was released");
        });
        assert_eq!(verify_chain(&path).unwrap().lines, 2);
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
    fn a_batch_is_one_append_that_continues_the_chain() {
        let (_dir, path) = chain_of(2);
        let file = ChainedFile::open(&path).unwrap();
        let batch: Vec<AuditEvent> = (3..=9).map(event).collect();
        file.record_batch(&batch).unwrap();
        file.record_batch(&[]).unwrap();
        let head = file.head();
        assert_eq!(head.lines, 9);
        drop(file);
        assert_eq!(verify_chain(&path).unwrap(), head);
        assert_holds_events_in_order(&path);
    }

    #[test]
    fn a_failed_write_poisons_the_file_until_it_is_reopened() {
        let (_dir, path) = chain_of(3);
        let file = ChainedFile::open(&path).unwrap();
        // Swap the append handle for a read-only one on the same file: the write fails, and so
        // does cutting the file back, so the end of the file is unknown.
        file.state.lock().unwrap().file = File::open(&path).unwrap();
        assert!(matches!(
            file.record_batch(&[event(4), event(5)]),
            Err(Error::Io { .. })
        ));
        match file.record(&event(6)) {
            Err(Error::AuditPoisoned { path: p }) => assert_eq!(p, path),
            other => panic!("expected Poisoned, got {other:?}"),
        }
        assert_eq!(file.head().lines, 3, "nothing counted");
        drop(file);
        let file = ChainedFile::open(&path).unwrap();
        assert_eq!(file.head().lines, 3);
        file.record(&event(4)).unwrap();
        drop(file);
        assert_eq!(verify_chain(&path).unwrap().lines, 4);
    }
}
