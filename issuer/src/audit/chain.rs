//! The chain's format and its verification: [`verify_chain`], [`verify_chain_against`],
//! [`ChainReport`] and [`ChainBreak`].

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::AuditEvent;

/// The hex `prev` of line 1.
pub(crate) const ZERO_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
/// The longest line verification accepts, newline included.
const MAX_LINE: usize = 1 << 20;

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
    pub(super) fn at(line: u64, reason: impl Into<String>) -> Self {
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

/// Appends the lowercase hex of `bytes` to `out` (as `hex::encode`, without a new string).
pub(super) fn push_hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

pub(super) fn sha256(bytes: &[u8]) -> [u8; 32] {
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
pub(super) struct ChainLine<'a> {
    pub(super) seq: u64,
    pub(super) prev: &'a str,
    #[serde(flatten)]
    pub(super) event: &'a AuditEvent,
}

/// Appends the chain lines of `events` to `buf`, each with its newline, continuing a chain of
/// `lines` lines whose last line hashes to `head`; updates `head` and returns the new count.
pub(crate) fn chain_events(
    buf: &mut Vec<u8>,
    lines: u64,
    head: &mut String,
    events: &[AuditEvent],
) -> Result<u64, crate::Error> {
    let mut lines = lines;
    for event in events {
        let start = buf.len();
        let line = ChainLine {
            seq: lines + 1,
            prev: head,
            event,
        };
        serde_json::to_writer(&mut *buf, &line).map_err(crate::Error::audit_encode)?;
        head.clear();
        push_hex(&sha256(buf.get(start..).unwrap_or_default()), head);
        buf.push(b'\n');
        lines += 1;
    }
    Ok(lines)
}

/// What verification established.
pub(super) struct Verified {
    pub(super) lines: u64,
    pub(super) head: String,
    pub(super) bytes: u64,
}

/// Where an anchor came from, for messages.
struct Anchor<'a> {
    report: &'a ChainReport,
    origin: String,
}

/// Verifies the lines from `reader` against `anchor`, if any.
fn verify_lines<R: BufRead>(
    reader: R,
    anchor: Option<&Anchor<'_>>,
) -> Result<Verified, ChainBreak> {
    let start = Verified {
        lines: 0,
        head: ZERO_HASH.to_owned(),
        bytes: 0,
    };
    verify_lines_from(reader, &start, anchor)
}

/// Verifies the lines from `reader`, which continue the chain `start` ends with (its line
/// count, last hash and length in bytes), against `anchor`, if any.
fn verify_lines_from<R: BufRead>(
    mut reader: R,
    start: &Verified,
    anchor: Option<&Anchor<'_>>,
) -> Result<Verified, ChainBreak> {
    let mut buf = Vec::new();
    let mut lines = start.lines;
    let mut bytes = start.bytes;
    let mut prev = start.head.clone();
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
        // JSON is UTF-8; serde_json checks that only in the members it reads, so check it all.
        let line = std::str::from_utf8(line)
            .map_err(|e| ChainBreak::at(at, format!("not UTF-8, so not JSON: {e}")))?;
        let link: Link = serde_json::from_str(line)
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
        prev.clear();
        push_hex(&sha256(line.as_bytes()), &mut prev);
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
pub(super) fn verify_file(path: &Path, file: &File) -> Result<Verified, ChainBreak> {
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

/// Verifies what another writer appended to `file` (the chained file at `path`) after the
/// chain `from` (read from the byte after it), against the head file. Call it holding the
/// file's lock.
pub(super) fn verify_appended(
    path: &Path,
    file: &File,
    from: &Verified,
) -> Result<Verified, ChainBreak> {
    let head = head_path(path);
    let report = read_head(&head)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader
        .seek(SeekFrom::Start(from.bytes))
        .map_err(|e| ChainBreak::at(0, format!("{}: {e}", path.display())))?;
    let anchor = report.as_ref().map(|report| Anchor {
        report,
        origin: format!("the head file {}", head.display()),
    });
    verify_lines_from(reader, from, anchor.as_ref())
}

/// Opens `path` for verification and takes a shared lock on it, so that no writer is halfway
/// through a batch while it is read.
fn open_locked(path: &Path) -> Result<File, ChainBreak> {
    let file =
        File::open(path).map_err(|e| ChainBreak::at(0, format!("{}: {e}", path.display())))?;
    file.lock_shared()
        .map_err(|e| ChainBreak::at(0, format!("{}: locking: {e}", path.display())))?;
    Ok(file)
}

/// Verifies the chained file at `path` and its head file (see the module docs for the checks
/// and which line is reported).
pub fn verify_chain(path: &Path) -> Result<ChainReport, ChainBreak> {
    let file = open_locked(path)?;
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
    let file = open_locked(path)?;
    verify_reader(BufReader::with_capacity(1 << 16, file), Some(anchor))
}

/// Verifies the chained lines read from `reader` (an audit file's contents from its start,
/// piped or restored from a backup rather than on disk beside its head file), against `anchor`
/// if given, with the checks of [`verify_chain_against`]. Without an anchor only the chain
/// itself is checked, so whole lines removed from the end go unnoticed.
pub fn verify_reader<R: BufRead>(
    reader: R,
    anchor: Option<&ChainReport>,
) -> Result<ChainReport, ChainBreak> {
    let report = anchor.map(|anchor| ChainReport {
        lines: anchor.lines,
        head: anchor.head.to_ascii_lowercase(),
    });
    let anchor = report.as_ref().map(|report| Anchor {
        report,
        origin: "the anchor".to_owned(),
    });
    let verified = verify_lines(reader, anchor.as_ref())?;
    Ok(ChainReport {
        lines: verified.lines,
        head: verified.head,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::audit::testing::{chain_of, event, read_lines, write_lines};
    use crate::audit::{ChainedFile, Error};

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
            Err(Error::AuditBrokenChain { .. })
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
    fn verify_reader_checks_contents_not_on_disk() {
        let (_dir, path) = chain_of(4);
        let contents = std::fs::read(&path).unwrap();
        let report = verify_chain(&path).unwrap();
        assert_eq!(verify_reader(&contents[..], None).unwrap(), report);
        assert_eq!(verify_reader(&contents[..], Some(&report)).unwrap(), report);
        let upper = ChainReport {
            lines: report.lines,
            head: report.head.to_ascii_uppercase(),
        };
        assert_eq!(verify_reader(&contents[..], Some(&upper)).unwrap(), report);
        // Whole lines cut from the end: only an anchor notices.
        let three = contents
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(2)
            .unwrap()
            .0;
        let cut = &contents[..=three];
        assert_eq!(verify_reader(cut, None).unwrap().lines, 3);
        let err = verify_reader(cut, Some(&report)).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.reason.contains("the anchor"), "{err}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_refused() {
        let (_dir, path) = chain_of(2);
        let mut lines = read_lines(&path);
        // A byte that is not UTF-8, in a member verification does not otherwise read.
        let mut last = lines.pop().unwrap().into_bytes();
        let at = last.windows(6).position(|w| w == b"reason").unwrap() + 10;
        last[at] = 0xf6;
        let mut contents = lines.join("\n").into_bytes();
        contents.push(b'\n');
        contents.extend_from_slice(&last);
        contents.push(b'\n');
        let err = verify_reader(&contents[..], None).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.reason.contains("UTF-8"), "{err}");
    }

    #[test]
    fn long_lines_are_refused() {
        let (_dir, path) = chain_of(2);
        let mut lines = read_lines(&path);
        lines.push("x".repeat(MAX_LINE + 10));
        write_lines(&path, &lines);
        let err = verify_chain(&path).unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("longer than"), "{err}");
    }
}
