//! [`PgStore`]: a replica's key lineage in PostgreSQL, its private keys in its own directory.
//!
//! Each replica runs its own lineage (active key, standby, retired keys) under the common
//! schedule, in one row of `svctoken_key_sets` with its lease. Every replica serves the union
//! of all lineages ([`KeyStore::peer_keys`]). A replica renews its lease on every lifecycle
//! run and signs only while it holds it; once a replica's lease has lapsed, the others retire
//! its signing key as of the lapse and remove its keys once their tokens have expired
//! ([`rotation::reap`]), then its row.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use svctoken_jwks::{Algorithm, Jwk, SigningKey};

use super::{CHANNEL, Database};
use crate::rotation::{self, Journal, Schedule};
use crate::store::{KeySet, KeyStore, PeerKey, PrivateKeys, StoreLock};
use crate::{Error, Result};

/// The advisory lock named `$1` (`keys/<replica>`: one lineage; `replicas`: them all), per
/// schema.
const LOCK_KEY: &str = "hashtextextended(coalesce(current_schema(), '') || '/svctoken/' || $1, 0)";

/// How often a waiting writer retries a lineage's lock.
const LOCK_RETRY: Duration = Duration::from_millis(50);

/// A replica's key store on a shared PostgreSQL database.
pub struct PgStore {
    db: Database,
    replica: String,
    private: PrivateKeys,
    lease: Duration,
    changes: OnceLock<Arc<tokio::sync::Notify>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.db.name())
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// The lineage of replica `replica_id` on `db`, its private keys in `<data_dir>/private`
    /// (created 0700). It signs while it holds a lease of `lease`, renewed by
    /// [`KeyStore::maintain`].
    pub fn open(db: Database, replica_id: &str, data_dir: &Path, lease: Duration) -> Result<Self> {
        Self::open_with(
            db,
            replica_id,
            PrivateKeys::files(data_dir.join("private"))?,
            lease,
        )
    }

    /// [`PgStore::open`] with the replica's private keys in `private` (an HSM, say).
    pub fn open_with(
        db: Database,
        replica_id: &str,
        private: PrivateKeys,
        lease: Duration,
    ) -> Result<Self> {
        check_replica_id(replica_id)?;
        Ok(PgStore {
            db,
            replica: replica_id.to_owned(),
            private,
            lease,
            changes: OnceLock::new(),
        })
    }

    /// Takes the lock of `replica`'s lineage: waits for it (bounded by the operation timeout)
    /// or, with `wait` false, gives up at once if another holds it.
    fn lock_lineage(&self, replica: &str, wait: bool) -> Result<Option<AdvisoryLock>> {
        self.advisory_lock(format!("keys/{replica}"), wait)
    }

    /// Takes the advisory lock `name`, as [`PgStore::lock_lineage`] does.
    fn advisory_lock(&self, name: String, wait: bool) -> Result<Option<AdvisoryLock>> {
        let replica = name;
        self.db.block_on(move |db| async move {
            // A connection that fails mid-way is closed rather than pooled, so no session can
            // keep a lock nobody knows it holds.
            let client = Detach(Some(db.client().await?));
            let deadline = tokio::time::Instant::now() + super::OPERATION_TIMEOUT - LOCK_RETRY * 4;
            loop {
                let row = client
                    .get()
                    .query_one(
                        &format!("SELECT pg_try_advisory_lock({LOCK_KEY})"),
                        &[&replica],
                    )
                    .await
                    .map_err(|e| db.error(e))?;
                if row.get::<_, bool>(0) {
                    return Ok(Some(AdvisoryLock {
                        client: client.keep(),
                        name: replica,
                        db: db.clone(),
                    }));
                }
                if !wait {
                    client.keep();
                    return Ok(None);
                }
                if tokio::time::Instant::now() >= deadline {
                    client.keep();
                    return Err(
                        db.error(format!("the lock {replica} stayed held by another writer"))
                    );
                }
                tokio::time::sleep(LOCK_RETRY).await;
            }
        })
    }

    /// `replica`'s key set and lease (an empty set and no lease if it has no row).
    fn load_lineage(&self, replica: &str) -> Result<(KeySet, u64)> {
        let replica = replica.to_owned();
        let row = self.db.block_on(move |db| async move {
            let client = db.client().await?;
            let select = client
                .prepare_cached(
                    "SELECT generation, key_set::text, lease_until FROM svctoken_key_sets \
                     WHERE replica_id = $1",
                )
                .await
                .map_err(|e| db.error(e))?;
            client
                .query_opt(&select, &[&replica])
                .await
                .map_err(|e| db.error(e))
                .map(|row| {
                    row.map(|r| {
                        (
                            r.get::<_, i64>(0),
                            r.get::<_, String>(1),
                            r.get::<_, i64>(2),
                        )
                    })
                })
        })?;
        let Some((generation, json, lease_until)) = row else {
            return Ok((KeySet::default(), 0));
        };
        let mut set = self.parse(&json)?;
        set.generation = u64::try_from(generation).unwrap_or_default();
        Ok((set, u64::try_from(lease_until).unwrap_or_default()))
    }

    /// Compare-and-replace of `replica`'s key set, then a notification to every replica.
    fn save_lineage(&self, replica: &str, set: &mut KeySet) -> Result<()> {
        let replica = replica.to_owned();
        let loaded =
            i64::try_from(set.generation).map_err(|_| self.db.error("generation overflow"))?;
        let json = serde_json::to_string(&KeySet {
            generation: set.generation + 1,
            ..set.clone()
        })
        .map_err(|e| self.db.error(e))?;
        let saved = self.db.block_on(move |db| async move {
            let client = db.client().await?;
            let mut saved = client
                .query_opt(
                    "UPDATE svctoken_key_sets SET generation = generation + 1, \
                     key_set = $2::text::jsonb, updated_at = now() \
                     WHERE replica_id = $1 AND generation = $3 RETURNING generation",
                    &[&replica, &json, &loaded],
                )
                .await
                .map_err(|e| db.error(e))?;
            if saved.is_none() && loaded == 0 {
                saved = client
                    .query_opt(
                        "INSERT INTO svctoken_key_sets (replica_id, generation, key_set) \
                         VALUES ($1, 1, $2::text::jsonb) ON CONFLICT DO NOTHING RETURNING generation",
                        &[&replica, &json],
                    )
                    .await
                    .map_err(|e| db.error(e))?;
            }
            if saved.is_some() {
                client
                    .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &replica])
                    .await
                    .map_err(|e| db.error(e))?;
                return Ok(None);
            }
            let stored = client
                .query_opt(
                    "SELECT generation FROM svctoken_key_sets WHERE replica_id = $1",
                    &[&replica],
                )
                .await
                .map_err(|e| db.error(e))?;
            Ok(Some(stored.map_or(0, |r| r.get::<_, i64>(0))))
        })?;
        match saved {
            None => {
                set.generation += 1;
                Ok(())
            }
            Some(stored) => Err(crate::store::stale_save(
                self.describe(),
                u64::try_from(stored).unwrap_or_default(),
                set.generation,
            )),
        }
    }

    fn parse(&self, json: &str) -> Result<KeySet> {
        serde_json::from_str(json).map_err(|e| Error::Store {
            store: self.describe(),
            message: format!("a stored key set is not valid: {e}"),
        })
    }

    /// Retires the lineage of `replica`, whose lease lapsed, if no other replica is at it.
    fn reap(
        &self,
        replica: &str,
        schedule: &Schedule,
        now: u64,
        journal: &dyn Journal,
    ) -> Result<()> {
        let Some(_lock) = self.lock_lineage(replica, false)? else {
            return Ok(());
        };
        let (mut set, lease_until) = self.load_lineage(replica)?;
        if lease_until >= now {
            return Ok(());
        }
        let events = rotation::reap(&mut set, lease_until, schedule, now);
        if set.keys.is_empty() {
            let replica = replica.to_owned();
            let generation = i64::try_from(set.generation).unwrap_or(i64::MAX);
            let lapsed = i64::try_from(now).unwrap_or(i64::MAX);
            self.db.block_on(move |db| async move {
                let client = db.client().await?;
                client
                    .execute(
                        "DELETE FROM svctoken_key_sets WHERE replica_id = $1 \
                         AND generation = $2 AND lease_until < $3",
                        &[&replica, &generation, &lapsed],
                    )
                    .await
                    .map_err(|e| db.error(e))?;
                client
                    .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &replica])
                    .await
                    .map_err(|e| db.error(e))?;
                Ok(())
            })?;
        } else if !events.is_empty() {
            self.save_lineage(replica, &mut set)?;
        }
        if !events.is_empty() {
            tracing::info!(
                replica,
                lapsed_at = lease_until,
                "the lease of a replica lapsed: its keys are retired"
            );
            journal.record(now, &events);
        }
        Ok(())
    }
}

impl KeyStore for PgStore {
    fn describe(&self) -> String {
        format!("{} (replica {})", self.db.name(), self.replica)
    }

    fn lock(&self) -> Result<StoreLock> {
        let lock = self
            .lock_lineage(&self.replica, true)?
            .ok_or_else(|| self.db.error("lock not taken"))?;
        // Under the lock no writer is between making a key and saving the set that names it:
        // private keys the set does not name were left by a killed writer.
        if let Ok(set) = self.load() {
            self.private.sweep(&set);
        }
        Ok(Box::new(lock))
    }

    fn load(&self) -> Result<KeySet> {
        self.load_lineage(&self.replica).map(|(set, _)| set)
    }

    fn save(&self, set: &mut KeySet) -> Result<()> {
        self.save_lineage(&self.replica.clone(), set)
    }

    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
        self.private.create(alg, rsa_bits)
    }

    fn signing_key(&self, kid: &str) -> Result<SigningKey> {
        self.private.load(kid, &self.describe())
    }

    fn destroy_key(&self, kid: &str) -> Result<()> {
        self.private.destroy(kid)
    }

    fn private_key_location(&self, kid: &str) -> String {
        self.private.location(kid)
    }

    fn database(&self) -> Option<&Database> {
        Some(&self.db)
    }

    fn lock_replicas(&self) -> Result<Option<StoreLock>> {
        let lock = self
            .advisory_lock("replicas".to_owned(), true)?
            .ok_or_else(|| self.db.error("lock not taken"))?;
        Ok(Some(Box::new(lock)))
    }

    fn replica_id(&self) -> Option<&str> {
        Some(&self.replica)
    }

    fn peer_keys(&self) -> Result<Vec<PeerKey>> {
        let replica = self.replica.clone();
        let rows = self.db.block_on(move |db| async move {
            let client = db.client().await?;
            let select = client
                .prepare_cached(
                    "SELECT replica_id, key_set::text FROM svctoken_key_sets \
                     WHERE replica_id <> $1 ORDER BY replica_id",
                )
                .await
                .map_err(|e| db.error(e))?;
            let rows = client
                .query(&select, &[&replica])
                .await
                .map_err(|e| db.error(e))?;
            Ok(rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>())
        })?;
        let mut keys = Vec::new();
        for (replica_id, json) in rows {
            for key in self.parse(&json)?.keys {
                keys.push(PeerKey {
                    replica_id: replica_id.clone(),
                    key,
                });
            }
        }
        Ok(keys)
    }

    fn maintain(
        &self,
        schedule: &Schedule,
        now: u64,
        journal: &dyn Journal,
    ) -> Result<Option<u64>> {
        let lease_until = now.saturating_add(self.lease.as_secs());
        let replica = self.replica.clone();
        let (until, now_i) = (
            i64::try_from(lease_until).unwrap_or(i64::MAX),
            i64::try_from(now).unwrap_or(i64::MAX),
        );
        let lapsed: Vec<String> = self.db.block_on(move |db| async move {
            let client = db.client().await?;
            // One statement: renew this replica's lease, forget expired assertion ids, and
            // name the replicas whose lease lapsed.
            let renew = client
                .prepare_cached(
                    "WITH renewed AS (INSERT INTO svctoken_key_sets (replica_id, lease_until) \
                     VALUES ($1, $2) ON CONFLICT (replica_id) DO UPDATE SET lease_until = \
                     GREATEST(svctoken_key_sets.lease_until, EXCLUDED.lease_until)), \
                     forgotten AS (DELETE FROM svctoken_replay WHERE expires_at < $3) \
                     SELECT replica_id FROM svctoken_key_sets \
                     WHERE replica_id <> $1 AND lease_until < $3",
                )
                .await
                .map_err(|e| db.error(e))?;
            let rows = client
                .query(&renew, &[&replica, &until, &now_i])
                .await
                .map_err(|e| db.error(e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        for replica in lapsed {
            self.reap(&replica, schedule, now, journal)?;
        }
        Ok(Some(lease_until))
    }

    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(
            self.changes
                .get_or_init(|| self.db.listen_key_changes())
                .clone(),
        )
    }
}

/// An advisory lock: a connection holding it, unlocked when dropped (or closed, which also
/// releases it).
struct AdvisoryLock {
    client: Option<deadpool_postgres::Object>,
    name: String,
    db: Database,
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        let client = Detach(self.client.take());
        let replica = std::mem::take(&mut self.name);
        self.db.spawn_detached(async move {
            let unlocked = client
                .get()
                .execute(
                    &format!("SELECT pg_advisory_unlock({LOCK_KEY})"),
                    &[&replica],
                )
                .await;
            if unlocked.is_ok() {
                client.keep();
            }
        });
    }
}

/// A pooled connection that is closed instead of going back to the pool, unless kept: a
/// session whose state is unknown (a lock may be held) must not be reused.
struct Detach(Option<deadpool_postgres::Object>);

impl Detach {
    fn get(&self) -> &deadpool_postgres::Object {
        // Invariant: the connection is only taken out by `keep`, which consumes the guard.
        self.0
            .as_ref()
            .expect("a Detach holds its connection until kept")
    }

    fn keep(mut self) -> Option<deadpool_postgres::Object> {
        self.0.take()
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

/// The file in a data directory that keeps a replica's derived id.
const REPLICA_ID_FILE: &str = "replica-id";

/// The replica id: `configured` if given, else the one kept in `<data_dir>/replica-id`, made
/// on first use from the host name and 32 random bits (`web-1-3f9a0c12`). Stable across
/// restarts as long as the data directory (which also holds the replica's private keys) is.
pub fn replica_id_for(configured: Option<&str>, data_dir: &Path) -> Result<String> {
    if let Some(id) = configured {
        check_replica_id(id)?;
        return Ok(id.to_owned());
    }
    let path = data_dir.join(REPLICA_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            check_replica_id(&id).map_err(|_| {
                Error::Config(format!(
                    "{} does not hold a replica id: delete it to derive a new one, or set \
                     replica_id",
                    path.display()
                ))
            })?;
            return Ok(id);
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path)(e)),
        Err(_) => {}
    }
    let host: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let mut random = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)?;
    let id = match host.trim_matches('-') {
        "" => format!("replica-{}", hex::encode(random)),
        host => format!("{host}-{}", hex::encode(random)),
    };
    std::fs::create_dir_all(data_dir).map_err(Error::io(data_dir))?;
    crate::store::write_atomic(&path, format!("{id}\n").as_bytes(), 0o644)?;
    Ok(id)
}

/// A replica id is 1 to 64 ASCII letters, digits, `-`, `_` and `.`.
fn check_replica_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "replica_id {id:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_replica_id_is_kept_and_a_configured_one_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = replica_id_for(None, dir.path()).expect("derive");
        assert!(check_replica_id(&first).is_ok(), "{first}");
        assert_eq!(replica_id_for(None, dir.path()).expect("again"), first);
        assert_eq!(
            replica_id_for(Some("web-2"), dir.path()).expect("set"),
            "web-2"
        );
        for bad in ["", "a b", "../x", &"x".repeat(65)] {
            assert!(replica_id_for(Some(bad), dir.path()).is_err(), "{bad:?}");
        }
    }
}
