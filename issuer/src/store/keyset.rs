//! The persisted key set: every published key with the state it is in, and the revocations.
//!
//! A key's state is an enum whose variants carry their own times, so a prepared key always has
//! an activation time and a retired key always has a removal time. On disk the state is tagged
//! inline with its times beside it, the layout every earlier version wrote and reads:
//!
//! ```json
//! {"kid": "...", "alg": "ES256", "state": "retired", "public": {...}, "published_at": 1,
//!  "activated_at": 2, "retired_at": 3, "remove_at": 4}
//! ```

use serde::{Deserialize, Serialize};
use svctoken_jwks::{Algorithm, Jwk};

/// Where a key is in its life, with the times that state needs. Times are seconds since the
/// Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not signing yet.
    Prepared {
        /// When it may start signing: a full lead after it was published, or earlier in an
        /// emergency (the first key of a store, a revocation).
        activate_at: u64,
    },
    /// Published and signing.
    Active {
        /// When it started signing.
        activated_at: u64,
    },
    /// Published, no longer signing; removed once every token it signed has expired.
    Retired {
        /// When it started signing.
        activated_at: u64,
        /// When it stopped signing (its last signature).
        retired_at: u64,
        /// When it leaves the JWKS and its private key is destroyed.
        remove_at: u64,
    },
}

impl KeyState {
    /// The state's name as stored and printed: `prepared`, `active` or `retired`.
    pub fn name(&self) -> &'static str {
        match self {
            KeyState::Prepared { .. } => "prepared",
            KeyState::Active { .. } => "active",
            KeyState::Retired { .. } => "retired",
        }
    }

    /// When the key started signing (`None` while prepared).
    pub fn activated_at(&self) -> Option<u64> {
        match *self {
            KeyState::Prepared { .. } => None,
            KeyState::Active { activated_at } | KeyState::Retired { activated_at, .. } => {
                Some(activated_at)
            }
        }
    }
}

/// One key's public half and state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The algorithm the key is pinned to.
    pub alg: Algorithm,
    /// Lifecycle state and its times.
    #[serde(flatten)]
    pub state: KeyState,
    /// The public JWK as published.
    pub public: Jwk,
    /// When it was first published (seconds since the Unix epoch).
    pub published_at: u64,
}

impl KeyRecord {
    /// True while the key signs.
    pub fn is_active(&self) -> bool {
        matches!(self.state, KeyState::Active { .. })
    }

    /// True while the key waits to sign.
    pub fn is_prepared(&self) -> bool {
        matches!(self.state, KeyState::Prepared { .. })
    }
}

/// A key another replica publishes (see [`KeyStore::peer_keys`](super::KeyStore::peer_keys)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKey {
    /// The replica whose lineage it is.
    pub replica_id: String,
    /// The key.
    pub key: KeyRecord,
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

/// The persisted key set: what the JWKS publishes and the state of each key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Incremented by every save; lets readers tell whether anything changed, and lets a store
    /// refuse a save computed from a stale copy.
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
        self.keys.iter().find(|k| k.is_active())
    }

    /// The key waiting to sign next.
    pub fn prepared(&self) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.is_prepared())
    }

    /// A key by id.
    pub fn get(&self, kid: &str) -> Option<&KeyRecord> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key set as written before states carried their own times: every time was an optional
    /// field beside the state, and an active or retired key kept its `activate_at`.
    const LEGACY: &str = include_str!("../../tests/data/keys-legacy.json");

    #[test]
    fn a_key_set_in_the_legacy_layout_loads_with_every_time() {
        let set: KeySet = serde_json::from_str(LEGACY).expect("legacy key set loads");
        assert_eq!(set.generation, 6);
        let states: Vec<KeyState> = set.keys.iter().map(|k| k.state).collect();
        assert_eq!(
            states,
            [
                KeyState::Retired {
                    activated_at: 1_800_000_000,
                    retired_at: 1_800_003_600,
                    remove_at: 1_800_004_205,
                },
                KeyState::Active {
                    activated_at: 1_800_003_600
                },
                KeyState::Prepared {
                    activate_at: 1_800_003_685
                },
            ]
        );
        assert_eq!(set.keys[2].published_at, 1_800_003_620);
        assert_eq!(set.revoked[0].trusted_until, 1_800_003_675);
        for k in &set.keys {
            assert_eq!(k.public.kid.as_deref(), Some(k.kid.as_str()));
        }
    }

    #[test]
    fn the_layout_written_is_the_legacy_layout_minus_unused_times() {
        let set: KeySet = serde_json::from_str(LEGACY).expect("load");
        let written = serde_json::to_value(&set).expect("write");
        let legacy: serde_json::Value = serde_json::from_str(LEGACY).expect("json");
        for (new, old) in written["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .zip(legacy["keys"].as_array().expect("keys"))
        {
            // Every member written is one the legacy reader knows, with the same value.
            for (name, value) in new.as_object().expect("object") {
                assert_eq!(Some(value), old.get(name), "{name}");
            }
        }
        assert_eq!(written["revoked"], legacy["revoked"]);
        let reread: KeySet = serde_json::from_value(written).expect("reread");
        assert_eq!(reread, set);
    }

    #[test]
    fn a_state_without_its_times_is_refused() {
        let mut record: serde_json::Value =
            serde_json::from_str::<serde_json::Value>(LEGACY).expect("json")["keys"][0].clone();
        record.as_object_mut().expect("object").remove("remove_at");
        let err = serde_json::from_value::<KeyRecord>(record).expect_err("no remove_at");
        assert!(err.to_string().contains("remove_at"), "{err}");
    }

    #[test]
    fn names_and_activation_times() {
        let table = [
            (KeyState::Prepared { activate_at: 5 }, "prepared", None),
            (KeyState::Active { activated_at: 6 }, "active", Some(6)),
            (
                KeyState::Retired {
                    activated_at: 7,
                    retired_at: 8,
                    remove_at: 9,
                },
                "retired",
                Some(7),
            ),
        ];
        for (state, name, activated) in table {
            assert_eq!(state.name(), name);
            assert_eq!(state.activated_at(), activated, "{name}");
        }
    }
}
