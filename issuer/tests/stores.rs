//! The key store contract, run from outside the crate as another store's tests would, against
//! the files store and the memory store; and the files store's on-disk compatibility.

use std::sync::Arc;

use svctoken_issuer::rotation::{self, Event};
use svctoken_issuer::store::{FileStore, KeySet, KeyState, KeyStore, MemoryStore};
use svctoken_jwks::Algorithm;

mod file_store {
    use super::*;

    svctoken_issuer::key_store_contract!(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        move || -> Arc<dyn KeyStore> { Arc::new(FileStore::open(dir.path()).expect("open")) }
    });
}

mod memory_store {
    use super::*;

    svctoken_issuer::key_store_contract!(|| {
        let store = MemoryStore::new();
        move || -> Arc<dyn KeyStore> { Arc::new(store.clone()) }
    });
}

#[test]
fn the_whole_contract_runs_from_one_call() {
    svctoken_issuer::store::contract::run_all(|| {
        let store = MemoryStore::new();
        move || -> Arc<dyn KeyStore> { Arc::new(store.clone()) }
    });
}

/// A contract case fails on a store that breaks its promise.
#[test]
#[should_panic(expected = "a stale save is refused")]
fn the_contract_catches_a_store_that_saves_blindly() {
    struct Blind(MemoryStore);
    impl KeyStore for Blind {
        fn describe(&self) -> String {
            "blind".into()
        }
        fn lock(&self) -> svctoken_issuer::Result<svctoken_issuer::store::StoreLock> {
            self.0.lock()
        }
        fn load(&self) -> svctoken_issuer::Result<KeySet> {
            self.0.load()
        }
        fn save(&self, set: &mut KeySet) -> svctoken_issuer::Result<()> {
            // Overwrites whatever is stored, as a store without compare-and-replace would.
            set.generation = self.0.load()?.generation;
            self.0.save(set)
        }
        fn create_key(
            &self,
            alg: Algorithm,
            rsa_bits: usize,
        ) -> svctoken_issuer::Result<svctoken_jwks::Jwk> {
            self.0.create_key(alg, rsa_bits)
        }
        fn signing_key(&self, kid: &str) -> svctoken_issuer::Result<svctoken_jwks::SigningKey> {
            self.0.signing_key(kid)
        }
        fn destroy_key(&self, kid: &str) -> svctoken_issuer::Result<()> {
            self.0.destroy_key(kid)
        }
    }
    let store = MemoryStore::new();
    svctoken_issuer::store::contract::a_stale_save_is_refused_and_changes_nothing(&move || {
        Arc::new(Blind(store.clone())) as Arc<dyn KeyStore>
    });
}

const LEGACY: &str = include_str!("data/keys-legacy.json");

#[test]
fn a_store_written_by_earlier_versions_opens_and_rotates() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("keys.json"), LEGACY).expect("write");
    let store = FileStore::open_existing(dir.path()).expect("an existing store opens");
    let set = store.load().expect("loads");
    assert_eq!(set.generation, 6);
    let retired = set.keys[0].clone();
    assert!(matches!(
        retired.state,
        KeyState::Retired {
            remove_at: 1_800_004_205,
            ..
        }
    ));

    // The lifecycle runs on it: the retired key leaves at its time, the waiting key (due since
    // 1_800_003_685) takes over, a standby is published, and what is saved reads back in the
    // new states.
    let schedule = rotation::Schedule {
        rotation_period: std::time::Duration::from_secs(3600),
        jwks_max_age: std::time::Duration::from_secs(60),
        max_token_lifetime: std::time::Duration::from_secs(600),
        ..Default::default()
    };
    let now = 1_800_004_205;
    let events = rotation::rotate(&store, &schedule, now, &()).expect("rotate");
    let (active, next) = (set.keys[1].kid.clone(), set.keys[2].kid.clone());
    let standby = events.last().expect("events").kid().to_owned();
    assert_eq!(
        events,
        [
            Event::Removed {
                kid: retired.kid,
                alg: Algorithm::ES256
            },
            Event::Retired {
                kid: active.clone(),
                alg: Algorithm::ES256,
                remove_at: now + 605
            },
            Event::Activated {
                kid: next.clone(),
                alg: Algorithm::ES256,
                published_at: 1_800_003_620,
                early: false
            },
            Event::Prepared {
                kid: standby.clone(),
                alg: Algorithm::ES256,
                activate_at: now + 3600
            },
        ]
    );
    let after = store.load().expect("reload");
    assert_eq!(after.generation, 7);
    let states: Vec<_> = after
        .keys
        .iter()
        .map(|k| (k.kid.clone(), k.state))
        .collect();
    assert_eq!(
        states,
        [
            (
                active,
                KeyState::Retired {
                    activated_at: 1_800_003_600,
                    retired_at: now,
                    remove_at: now + 605
                }
            ),
            (next, KeyState::Active { activated_at: now }),
            (
                standby,
                KeyState::Prepared {
                    activate_at: now + 3600
                }
            ),
        ]
    );
    assert_eq!(after.revoked, set.revoked);
}

#[test]
fn open_existing_refuses_a_directory_without_a_store_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("not-here");
    let err = FileStore::open_existing(&missing).expect_err("no store");
    assert!(err.to_string().contains("not-here"), "{err}");
    assert!(err.to_string().contains("no key store"), "{err}");
    assert!(!missing.exists(), "nothing created");

    FileStore::open_existing(dir.path()).expect_err("an empty directory is no store");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}
