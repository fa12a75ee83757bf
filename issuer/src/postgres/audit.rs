//! [`AuditTable`]: the audit trail in PostgreSQL, one hash chain per replica, and
//! [`verify_database`], which checks every chain.
//!
//! A line is exactly what a chained file holds (`{"seq":..,"prev":..,<event>}`, `prev` the
//! SHA-256 of the line before), so the same verifier reads both. Each replica appends to its own
//! chain, in `svctoken_audit` with its head (line count, hash of the last line) in
//! `svctoken_audit_heads`: a batch is one transaction that locks the head row, inserts the
//! lines and moves the head, so two writers on one chain (the server and a `svctoken keys`
//! command) interleave whole batches and the chain stays intact. Per-replica chains keep
//! replicas from waiting on each other's appends.

use std::io::Cursor;

use futures_util::SinkExt as _;

use super::Database;
use crate::audit::{AuditEvent, AuditSink, ChainBreak, ChainReport, ZERO_HASH, chain_events};
use crate::{Error, Result};

/// Lines read per query by [`verify_database`].
const PAGE: i64 = 10_000;

/// The audit sink appending to this replica's chain in the database.
#[derive(Clone, Debug)]
pub struct AuditTable {
    db: Database,
    replica: String,
}

impl AuditTable {
    /// The chain of `replica_id` in `db`.
    pub fn new(db: Database, replica_id: &str) -> Self {
        AuditTable {
            db,
            replica: replica_id.to_owned(),
        }
    }
}

impl AuditSink for AuditTable {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        let events = events.to_vec();
        let replica = self.replica.clone();
        self.db.block_on(move |db| async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.error(e))?;
            // The upsert locks the chain's head row until the commit: writers on one chain
            // append whole batches, one after the other.
            let head_row = tx
                .prepare_cached(
                    "INSERT INTO svctoken_audit_heads AS h (replica_id, lines, head) \
                     VALUES ($1, 0, $2) ON CONFLICT (replica_id) DO UPDATE SET lines = h.lines \
                     RETURNING lines, head",
                )
                .await
                .map_err(|e| db.error(e))?;
            let row = tx
                .query_one(&head_row, &[&replica, &ZERO_HASH])
                .await
                .map_err(|e| db.error(e))?;
            let lines = u64::try_from(row.get::<_, i64>(0)).unwrap_or_default();
            let mut head: String = row.get(1);
            let mut buf = Vec::with_capacity(events.len() * 512);
            let total = chain_events(&mut buf, lines, &mut head, &events)?;
            // COPY, the cheapest way into a table: a row per line, tab-separated text.
            let copy = tx
                .copy_in("COPY svctoken_audit (replica_id, seq, line) FROM STDIN")
                .await
                .map_err(|e| db.error(e))?;
            let rows = copy_rows(&replica, lines, &buf);
            let mut copy = std::pin::pin!(copy);
            copy.send(bytes::Bytes::from(rows))
                .await
                .map_err(|e| db.error(e))?;
            copy.as_mut().finish().await.map_err(|e| db.error(e))?;
            let total = i64::try_from(total).unwrap_or(i64::MAX);
            let move_head = tx
                .prepare_cached(
                    "UPDATE svctoken_audit_heads SET lines = $2, head = $3 WHERE replica_id = $1",
                )
                .await
                .map_err(|e| db.error(e))?;
            tx.execute(&move_head, &[&replica, &total, &head])
                .await
                .map_err(|e| db.error(e))?;
            tx.commit().await.map_err(|e| db.error(e))
        })
    }
}

/// The rows of COPY's text format for the chain lines in `buf` (each ending in a newline),
/// numbered from `after + 1`: `replica`, tab, `seq`, tab, the line with its backslashes doubled
/// (a JSON line holds no raw tab or newline: JSON escapes them).
fn copy_rows(replica: &str, after: u64, buf: &[u8]) -> Vec<u8> {
    let mut rows = Vec::with_capacity(buf.len() + buf.len() / 8);
    for (seq, line) in (after + 1..).zip(buf.split(|&b| b == b'\n').filter(|l| !l.is_empty())) {
        rows.extend_from_slice(replica.as_bytes());
        rows.push(b'\t');
        rows.extend_from_slice(seq.to_string().as_bytes());
        rows.push(b'\t');
        for &b in line {
            if b == b'\\' {
                rows.push(b'\\');
            }
            rows.push(b);
        }
        rows.push(b'\n');
    }
    rows
}

/// One replica's chain as [`verify_database`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaChain {
    /// The replica.
    pub replica_id: String,
    /// Its line count and head, or where and why it is broken.
    pub verified: Result<ChainReport, ChainBreak>,
}

/// Verifies every replica's chain in `db` against its stored head, as `svctoken audit verify`
/// checks a file: each line's `seq` and `prev`, and that the chain reaches the head. Replicas
/// may go on appending meanwhile: each chain is checked up to the head read first.
pub fn verify_database(db: &Database) -> Result<Vec<ReplicaChain>> {
    let replicas: Vec<(String, Option<(i64, String)>)> = db.block_on(|db| async move {
        let client = db.client().await?;
        let rows = client
            .query(
                "SELECT r.replica_id, h.lines, h.head FROM \
                 (SELECT replica_id FROM svctoken_audit_heads \
                  UNION SELECT DISTINCT replica_id FROM svctoken_audit) r \
                 LEFT JOIN svctoken_audit_heads h USING (replica_id) ORDER BY r.replica_id",
                &[],
            )
            .await
            .map_err(|e| db.error(e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let head = r
                    .get::<_, Option<i64>>(1)
                    .zip(r.get::<_, Option<String>>(2));
                (r.get(0), head)
            })
            .collect())
    })?;
    let mut chains = Vec::new();
    for (replica_id, head) in replicas {
        let verified = match head {
            None => Err(ChainBreak {
                line: 0,
                reason: "the chain has lines but no head row".into(),
            }),
            Some((lines, head)) => {
                // Lines and their head are committed together, so every line up to the head
                // read above is there; lines appended since are for a later check.
                let text = read_chain(db, &replica_id, lines)?;
                let anchor = ChainReport {
                    lines: u64::try_from(lines).unwrap_or_default(),
                    head,
                };
                crate::audit::verify_reader(Cursor::new(text), Some(&anchor))
            }
        };
        chains.push(ReplicaChain {
            replica_id,
            verified,
        });
    }
    Ok(chains)
}

/// The lines of `replica`'s chain up to `seq` `last`, in order, each with its newline.
fn read_chain(db: &Database, replica: &str, last: i64) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    let mut after = 0i64;
    loop {
        let replica = replica.to_owned();
        let page: Vec<(i64, String)> = db.block_on(move |db| async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT seq, line FROM svctoken_audit WHERE replica_id = $1 AND seq > $2 \
                     AND seq <= $3 ORDER BY seq LIMIT $4",
                    &[&replica, &after, &last, &PAGE],
                )
                .await
                .map_err(|e| db.error(e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let Some((last, _)) = page.last() else {
            return Ok(text);
        };
        after = *last;
        for (_, line) in page {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_number_the_lines_and_double_backslashes() {
        let buf = b"{\"a\":\"x\\\"y\"}\n{\"b\":\"\\u2028\"}\n";
        let rows = copy_rows("web-1", 41, buf);
        assert_eq!(
            String::from_utf8(rows).expect("utf-8"),
            "web-1\t42\t{\"a\":\"x\\\\\"y\"}\nweb-1\t43\t{\"b\":\"\\\\u2028\"}\n"
        );
    }
}
