//! Key stores: where the key set (public keys and their schedule) and the private keys live.
//!
//! Every backend passes the same contract suite ([`contract`]), run from each backend's tests.

mod files;
mod memory;

use serde::{Deserialize, Serialize};
use svctoken_jwks::{Algorithm, Jwk, SigningKey};

use crate::Result;

pub use files::FileStore;
pub use memory::MemoryStore;

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Prepared,
    /// Published and signing.
    Active,
    /// Published, no longer signing; removed once every token it signed has expired.
    Retired,
}

/// One key's public half and schedule. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The algorithm the key is pinned to.
    pub alg: Algorithm,
    /// Lifecycle state.
    pub state: KeyState,
    /// The public JWK as published.
    pub public: Jwk,
    /// When it was first published.
    pub published_at: u64,
    /// When a prepared key may start signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_at: Option<u64>,
    /// When it started signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<u64>,
    /// When it stopped signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
    /// When a retired key leaves the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_at: Option<u64>,
}

/// A key revoked in an emergency: kept so operators can see what happened and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The revoked key.
    pub kid: String,
    /// When it left the JWKS.
    pub revoked_at: u64,
    /// The moment every verifier that obeys the JWKS cache headers stops trusting it.
    pub trusted_until: u64,
}

/// The persisted key set: what the JWKS publishes and the schedule of each key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Incremented by every save; lets readers tell whether anything changed.
    pub generation: u64,
    /// Published keys (prepared, active, retired).
    pub keys: Vec<KeyRecord>,
    /// Emergency revocations, newest last.
    #[serde(default)]
    pub revoked: Vec<Revocation>,
}

impl KeySet {
    /// The signing key's record.
    pub fn active(&self) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.state == KeyState::Active)
    }

    /// The key waiting to sign next.
    pub fn prepared(&self) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.state == KeyState::Prepared)
    }

    /// A key by id.
    pub fn get(&self, kid: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// An exclusive hold on a store; released on drop.
pub type StoreLock = Box<dyn Send>;

/// A place for the key set and private keys.
///
/// Writers take [`KeyStore::lock`] first so two processes never rotate at once; readers may
/// [`KeyStore::load`] at any time and always see a complete key set. Private keys are written
/// durably before the key set names them, and destroyed only after it stops naming them, so a
/// crash at any moment leaves every published key published and every signing key usable.
pub trait KeyStore: Send + Sync + 'static {
    /// A name for messages (a path, a URL without credentials).
    fn describe(&self) -> String;
    /// Takes the store's exclusive writer lock, waiting for it.
    fn lock(&self) -> Result<StoreLock>;
    /// Reads the key set (empty when none was ever saved).
    fn load(&self) -> Result<KeySet>;
    /// Replaces the key set atomically, incrementing its generation. Hold the lock.
    fn save(&self, set: &mut KeySet) -> Result<()>;
    /// Generates a key pair, stores its private half durably, returns its public JWK.
    fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk>;
    /// Loads the private key with this kid, parsed and ready to sign.
    fn signing_key(&self, kid: &str) -> Result<SigningKey>;
    /// Destroys a private key; destroying a missing key is not an error.
    fn destroy_key(&self, kid: &str) -> Result<()>;
}

/// The contract every [`KeyStore`] must meet; each backend's tests call [`contract::run`].
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    fn record(jwk: Jwk, state: KeyState) -> KeyRecord {
        KeyRecord {
            kid: jwk.kid.clone().expect("kid"),
            alg: jwk.algorithm().expect("alg"),
            state,
            public: jwk,
            published_at: 1,
            activate_at: None,
            activated_at: Some(1),
            retired_at: None,
            remove_at: None,
        }
    }

    /// Runs the whole contract against `store` (and `reopen`, a second handle on the same data).
    pub(crate) fn run(store: &dyn KeyStore, reopen: &dyn Fn() -> Box<dyn KeyStore>) {
        assert_eq!(store.load().expect("empty load"), KeySet::default());

        let _lock = store.lock().expect("lock");
        let mut set = KeySet::default();
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let jwk = store.create_key(alg, 2048).expect("create");
            let key = store
                .signing_key(jwk.kid.as_deref().expect("kid"))
                .expect("load");
            assert_eq!(key.public_jwk(), &jwk, "private key matches its JWK");
            assert_eq!(key.algorithm(), alg);
            set.keys.push(record(jwk, KeyState::Active));
        }
        store.save(&mut set).expect("save");
        assert_eq!(set.generation, 1);
        store.save(&mut set).expect("save again");
        assert_eq!(set.generation, 2);

        let other = reopen();
        assert_eq!(
            other.load().expect("load"),
            set,
            "a second handle sees the same set"
        );
        let kid = set.keys[0].kid.clone();
        assert_eq!(other.signing_key(&kid).expect("key").kid(), kid);

        store.destroy_key(&kid).expect("destroy");
        store.destroy_key(&kid).expect("destroy is idempotent");
        assert!(other.signing_key(&kid).is_err());
        assert!(store.signing_key("no-such-kid").is_err());
        assert!(store.signing_key("../../etc/passwd").is_err());
    }
}
