//! [`AuditTable`]: the audit trail in PostgreSQL, one hash chain per replica, and
//! [`verify_database`], which checks every chain.
//!
//! A line is exactly what a chained file holds (`{"seq":..,"prev":..,<event>}`, `prev` the
//! SHA-256 of the line before), so the same verifier reads both. Each replica appends to its own
//! chain, in `svctoken_audit`, a row per batch (its lines as the file would hold them: the
//! database's cost is per batch, not per event), with its head (line count, hash of the last
//! line) in
//! `svctoken_audit_heads`: a batch is one statement that moves the head from where the writer
//! saw it and inserts the lines, or does nothing if another writer moved it first (the writer
//! then chains from the new head), so two writers on one chain (the server and a `svctoken
//! keys` command) interleave whole batches and the chain stays intact. One round trip a batch
//! keeps a fail-closed issuer's wait short; per-replica chains keep replicas from waiting on
//! each other's appends.

use std::io::Cursor;
use std::sync::{Arc, Mutex, PoisonError};

use super::Database;
use crate::audit::{AuditEvent, AuditSink, ChainBreak, ChainReport, ZERO_HASH, chain_events};
use crate::{Error, Result};

/// Rows (batches) read per query by [`verify_database`].
const PAGE: i64 = 1_000;

/// The audit sink appending to this replica's chain in the database.
#[derive(Clone, Debug)]
pub struct AuditTable {
    db: Database,
    replica: String,
    /// The chain's end as this writer last wrote or read it: line count and last hash.
    head: Arc<Mutex<Option<(u64, String)>>>,
}

impl AuditTable {
    /// The chain of `replica_id` in `db`.
    pub fn new(db: Database, replica_id: &str) -> Self {
        AuditTable {
            db,
            replica: replica_id.to_owned(),
            head: Arc::new(Mutex::new(None)),
        }
    }
}

impl AuditSink for AuditTable {
    fn record(&self, event: &AuditEvent) -> Result<(), Error> {
        self.record_batch(std::slice::from_ref(event))
    }

    /// One statement per batch: it moves the head only if it is still where this writer saw it,
    /// and inserts the lines only if it moved, so a batch is all or nothing and two writers on
    /// one chain (the server and a `svctoken keys` command) never interleave. A writer that
    /// finds the head moved appends under a lock on the head row instead, from the head it then
    /// reads.
    fn record_batch(&self, events: &[AuditEvent]) -> Result<(), Error> {
        let known = self
            .head
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let moved = match known {
            Some((lines, head)) => self.append_after(lines, &head, events)?,
            None => None,
        };
        let moved = match moved {
            Some(moved) => moved,
            None => self.append_locked(events)?,
        };
        *self.head.lock().unwrap_or_else(PoisonError::into_inner) = Some(moved);
        Ok(())
    }
}

/// A batch's lines, chained after a head: the row to insert and the new head.
struct Chained {
    first: i64,
    text: String,
    total: u64,
    head: String,
}

fn chain(lines: u64, head: &str, events: &[AuditEvent]) -> Result<Chained> {
    let mut new_head = head.to_owned();
    let mut buf = Vec::with_capacity(events.len() * 512);
    let total = chain_events(&mut buf, lines, &mut new_head, events)?;
    Ok(Chained {
        first: to_i64(lines + 1),
        // serde_json writes UTF-8: nothing is replaced.
        text: String::from_utf8_lossy(&buf).into_owned(),
        total,
        head: new_head,
    })
}

impl AuditTable {
    /// Appends `events` if the head is still `lines`, `head`: the new head, or `None` if another
    /// writer moved it.
    fn append_after(
        &self,
        lines: u64,
        head: &str,
        events: &[AuditEvent],
    ) -> Result<Option<(u64, String)>> {
        let c = chain(lines, head, events)?;
        let (replica, old_head, from) = (self.replica.clone(), head.to_owned(), to_i64(lines));
        let (total, new_head) = (c.total, c.head.clone());
        let appended = self.db.block_on(move |db| async move {
            let client = db.client().await?;
            let append = client
                .prepare_cached(
                    "WITH moved AS (UPDATE svctoken_audit_heads SET lines = $4, head = $5 \
                     WHERE replica_id = $1 AND lines = $6 AND head = $7 RETURNING 1) \
                     INSERT INTO svctoken_audit (replica_id, first_seq, last_seq, lines) \
                     SELECT $1, $2::bigint, $4, $3::text WHERE EXISTS (SELECT 1 FROM moved)",
                )
                .await
                .map_err(|e| db.error(e))?;
            let inserted = client
                .execute(
                    &append,
                    &[
                        &replica,
                        &c.first,
                        &c.text,
                        &to_i64(c.total),
                        &c.head,
                        &from,
                        &old_head,
                    ],
                )
                .await
                .map_err(|e| db.error(e))?;
            Ok(inserted > 0)
        })?;
        Ok(appended.then_some((total, new_head)))
    }

    /// Appends `events` in a transaction holding the head row (created if the chain has none):
    /// the new head.
    fn append_locked(&self, events: &[AuditEvent]) -> Result<(u64, String)> {
        let events = events.to_vec();
        let replica = self.replica.clone();
        self.db.block_on(move |db| async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.error(e))?;
            let lock_head = tx
                .prepare_cached(
                    "INSERT INTO svctoken_audit_heads AS h (replica_id, lines, head) \
                     VALUES ($1, 0, $2) ON CONFLICT (replica_id) DO UPDATE SET lines = h.lines \
                     RETURNING lines, head",
                )
                .await
                .map_err(|e| db.error(e))?;
            let row = tx
                .query_one(&lock_head, &[&replica, &ZERO_HASH])
                .await
                .map_err(|e| db.error(e))?;
            let lines = u64::try_from(row.get::<_, i64>(0)).unwrap_or_default();
            let head: String = row.get(1);
            let c = chain(lines, &head, &events)?;
            let append = tx
                .prepare_cached(
                    "WITH appended AS (INSERT INTO svctoken_audit \
                     (replica_id, first_seq, last_seq, lines) VALUES ($1, $2, $4, $3)) \
                     UPDATE svctoken_audit_heads SET lines = $4, head = $5 WHERE replica_id = $1",
                )
                .await
                .map_err(|e| db.error(e))?;
            tx.execute(
                &append,
                &[&replica, &c.first, &c.text, &to_i64(c.total), &c.head],
            )
            .await
            .map_err(|e| db.error(e))?;
            tx.commit().await.map_err(|e| db.error(e))?;
            Ok((c.total, c.head))
        })
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
                    "SELECT last_seq, lines FROM svctoken_audit WHERE replica_id = $1 \
                     AND first_seq > $2 AND last_seq <= $3 ORDER BY first_seq LIMIT $4",
                    &[&replica, &after, &last, &PAGE],
                )
                .await
                .map_err(|e| db.error(e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let Some((last_seq, _)) = page.last() else {
            return Ok(text);
        };
        after = *last_seq;
        for (_, lines) in page {
            text.extend_from_slice(lines.as_bytes());
        }
    }
}
