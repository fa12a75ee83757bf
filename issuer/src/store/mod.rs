//! Key stores: where the key set (public keys and their schedule) and the private keys live.
//!
//! Every backend passes the same contract suite, `contract` (behind the `test-util` feature),
//! which a backend in another crate runs from its own tests.

#[cfg(any(test, feature = "test-util"))]
pub mod contract;
mod files;
mod keyset;
mod memory;
pub mod pkcs11;
pub(crate) mod private_dir;
mod private_keys;

use std::sync::Arc;

use svctoken_jwks::{Algorithm, Jwk, SigningKey};

use crate::Result;
use crate::postgres::Database;
use crate::rotation::{Journal, Schedule};

pub use files::FileStore;
pub(crate) use files::write_atomic;
pub use keyset::{KeyRecord, KeySet, KeyState, PeerKey, Revocation};
pub use memory::MemoryStore;
pub use private_keys::PrivateKeys;

/// An exclusive hold on a store; released on drop.
pub type StoreLock = Box<dyn Send>;

/// A place for the key set and private keys.
///
/// What every implementation promises (each promise is a case of the contract suite):
/// - **Empty start.** [`load`](KeyStore::load) on a store never saved returns an empty
///   [`KeySet`] with generation 0.
/// - **Faithful.** `load` returns exactly what the last successful `save` stored: every key,
///   every state with its times, every revocation. The store never changes the set by itself,
///   and every handle on the same store (another process, another replica) sees it.
/// - **Atomic compare-and-replace.** [`save`](KeyStore::save) replaces the set only if the
///   stored generation is still the one `set` was loaded at; it then stores and returns
///   generation + 1. Otherwise it fails and the stored set is unchanged. Readers never see a
///   partial set, and a failed or interrupted save leaves the previous set, so no published key
///   is lost.
/// - **One writer.** [`lock`](KeyStore::lock) is exclusive across every handle and process on
///   the same store; it waits for the holder and is released when dropped (or when the holding
///   process dies). Writers load, change and save under it.
/// - **Private keys durable first, destroyed last.** [`create_key`](KeyStore::create_key) stores
///   the private half durably before returning; the key set names it only once the caller
///   saves. [`destroy_key`](KeyStore::destroy_key) is called only after a save stopped naming
///   it; it is idempotent, and afterwards no handle can load the key. So a crash at any moment
///   leaves every published key published and every signing key usable.
/// - **Replicas** (a store several replicas share; the defaults are those of a store with one
///   writer): [`peer_keys`](KeyStore::peer_keys) returns what the other replicas publish,
///   [`maintain`](KeyStore::maintain) renews this replica's lease and retires the keys of
///   replicas whose lease lapsed, [`changes`](KeyStore::changes) is raised when another
///   replica changed its keys.
/// - **Private keys stay private.** [`signing_key`](KeyStore::signing_key) returns the key whose
///   public half is the JWK `create_key` returned, from any handle; it refuses an unknown or
///   malformed kid and never reads outside the store. Private key material is never part of the
///   key set, is zeroized in memory once parsed, and is never `Debug`-printed; files holding it
///   are readable by their owner only (mode 0600).
pub trait KeyStore: Send + Sync + 'static {
    /// A name for messages (a path, a URL without credentials).
    fn describe(&self) -> String;
    /// Takes the store's exclusive writer lock, waiting for it.
    fn lock(&self) -> Result<StoreLock>;
    /// Reads the key set (empty when none was ever saved).
    fn load(&self) -> Result<KeySet>;
    /// Replaces the key set atomically if the stored generation is still `set.generation`,
    /// then sets `set.generation` to the new one. Hold the lock.
    fn save(&self, set: &mut KeySet) -> Result<()>;
    /// Generates a key pair, stores its private half durably, returns its public JWK.
    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk>;
    /// Loads the private key with this kid, parsed and ready to sign.
    fn signing_key(&self, kid: &str) -> Result<SigningKey>;
    /// Destroys a private key; destroying a missing key is not an error.
    fn destroy_key(&self, kid: &str) -> Result<()>;

    /// Where the private key `kid` lives, for operators: a file, a PKCS#11 URI (RFC 7512).
    /// Default: this process's memory.
    fn private_key_location(&self, kid: &str) -> String {
        let _ = kid;
        "in memory".into()
    }

    /// The database several replicas share, when this store is one of theirs: their replay
    /// cache, rate limits and audit trail live there too. Default: none.
    fn database(&self) -> Option<&Database> {
        None
    }

    /// A lock every replica sharing the store takes, held while a replica with no signing key
    /// decides whether its next key may sign at once (no other replica signs) and saves it, so
    /// that replicas starting together on an empty store don't each sign at once. Default: none
    /// (one lineage).
    fn lock_replicas(&self) -> Result<Option<StoreLock>> {
        Ok(None)
    }

    /// This replica's id, when several replicas share the store. Default: none.
    fn replica_id(&self) -> Option<&str> {
        None
    }

    /// The keys the other replicas publish, which this one serves beside its own. Default:
    /// none.
    fn peer_keys(&self) -> Result<Vec<PeerKey>> {
        Ok(Vec::new())
    }

    /// Renews this replica's lease at `now` and retires the keys of replicas whose lease has
    /// lapsed, recording those changes in `journal`. Returns until when this process may sign
    /// (`None`: no limit). Default: nothing to do, no limit.
    fn maintain(
        &self,
        schedule: &Schedule,
        now: u64,
        journal: &dyn Journal,
    ) -> Result<Option<u64>> {
        let _ = (schedule, now, journal);
        Ok(None)
    }

    /// A signal raised when another process changed the keys (without one, the lifecycle's
    /// regular run picks changes up). Default: none.
    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// The error a store returns when a save was computed from a stale key set.
pub(crate) fn stale_save(store: String, stored: u64, loaded: u64) -> crate::Error {
    crate::Error::Store {
        store,
        message: format!(
            "the key set changed underneath this writer (stored generation {stored}, loaded \
             {loaded}); nothing was saved, load it again"
        ),
    }
}
