//! The contract every [`KeyStore`] meets, one public function per promise made on the trait.
//! Enabled by the `test-util` feature so a store in another crate runs the same suite.
//!
//! Each case takes `open`, which opens a new handle on one fresh, empty store (the same data
//! every call, as a second process or replica would see it). [`run_all`] runs every case, each
//! on a fresh store; in a test file, [`key_store_contract!`] with the same closure generates
//! one `#[test]` per case instead.
//!
//! ```
//! use std::sync::Arc;
//! use svctoken_issuer::store::{FileStore, KeyStore, contract};
//!
//! contract::run_all(|| {
//!     let dir = tempfile::tempdir().expect("tempdir");
//!     move || -> Arc<dyn KeyStore> { Arc::new(FileStore::open(dir.path()).expect("open")) }
//! });
//! ```
//!
//! [`key_store_contract!`]: crate::key_store_contract

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use svctoken_jwks::{Algorithm, Jwk};

use super::{KeyRecord, KeySet, KeyState, KeyStore, Revocation};

/// Opens a handle on the store under test.
pub type Open<'a> = &'a dyn Fn() -> Arc<dyn KeyStore>;

/// One contract case.
pub type Case = fn(Open<'_>);

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    (
        "an_empty_store_loads_an_empty_set",
        an_empty_store_loads_an_empty_set,
    ),
    (
        "saves_replace_the_set_faithfully",
        saves_replace_the_set_faithfully,
    ),
    (
        "a_stale_save_is_refused_and_changes_nothing",
        a_stale_save_is_refused_and_changes_nothing,
    ),
    (
        "an_interrupted_write_loses_no_published_key",
        an_interrupted_write_loses_no_published_key,
    ),
    (
        "private_keys_roundtrip_from_any_handle",
        private_keys_roundtrip_from_any_handle,
    ),
    (
        "destroyed_keys_are_gone_and_destroy_is_idempotent",
        destroyed_keys_are_gone_and_destroy_is_idempotent,
    ),
    (
        "unknown_and_malformed_kids_are_refused",
        unknown_and_malformed_kids_are_refused,
    ),
    (
        "the_lock_excludes_every_other_handle",
        the_lock_excludes_every_other_handle,
    ),
];

/// Runs every case, each on a fresh store: `fixture` makes one and returns its `open`.
pub fn run_all<O>(fixture: impl Fn() -> O)
where
    O: Fn() -> Arc<dyn KeyStore>,
{
    for (name, case) in CASES {
        let open = fixture();
        eprintln!("key store contract: {name}");
        case(&open);
    }
}

/// Generates one `#[test]` per contract case. The argument is an expression that makes a
/// fresh store and returns its `open` (a closure returning `Arc<dyn KeyStore>`, the same data
/// on every call), as [`run_all`] takes.
#[macro_export]
macro_rules! key_store_contract {
    ($fixture:expr) => {
        $crate::key_store_contract!(@cases $fixture;
            an_empty_store_loads_an_empty_set,
            saves_replace_the_set_faithfully,
            a_stale_save_is_refused_and_changes_nothing,
            an_interrupted_write_loses_no_published_key,
            private_keys_roundtrip_from_any_handle,
            destroyed_keys_are_gone_and_destroy_is_idempotent,
            unknown_and_malformed_kids_are_refused,
            the_lock_excludes_every_other_handle,
        );
    };
    (@cases $fixture:expr; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let open = ($fixture)();
                $crate::store::contract::$case(&open);
            }
        )*

        #[test]
        fn the_contract_tests_cover_every_case() {
            let generated = [$(stringify!($case)),*];
            let cases: Vec<&str> = $crate::store::contract::CASES.iter().map(|c| c.0).collect();
            assert_eq!(generated[..], cases[..], "key_store_contract! lists every case");
        }
    };
}

fn kid(jwk: &Jwk) -> String {
    jwk.kid.clone().expect("a store's JWKs carry their kid")
}

fn record(jwk: Jwk, state: KeyState) -> KeyRecord {
    KeyRecord {
        kid: kid(&jwk),
        alg: jwk
            .algorithm()
            .expect("a store's JWKs carry their algorithm"),
        state,
        public: jwk,
        published_at: 1_000,
    }
}

/// A store never saved loads as an empty key set at generation 0.
pub fn an_empty_store_loads_an_empty_set(open: Open<'_>) {
    assert_eq!(open().load().expect("empty load"), KeySet::default());
}

/// `load` returns exactly what the last save stored, to every handle: keys in every state with
/// their times, revocations, removals. Each save counts one generation.
pub fn saves_replace_the_set_faithfully(open: Open<'_>) {
    let store = open();
    let _lock = store.lock().expect("lock");
    let states = [
        KeyState::Retired {
            activated_at: 1_000,
            retired_at: 2_000,
            remove_at: 2_605,
        },
        KeyState::Active {
            activated_at: 2_000,
        },
        KeyState::Prepared { activate_at: 3_000 },
    ];
    let mut set = KeySet::default();
    for state in states {
        let jwk = store.create_key(Algorithm::ES256, 2048).expect("create");
        set.keys.push(record(jwk, state));
    }
    set.revoked.push(Revocation {
        kid: "revoked-kid".into(),
        revoked_at: 1_500,
        trusted_until: 1_800,
    });
    store.save(&mut set).expect("save");
    assert_eq!(set.generation, 1, "the first save stores generation 1");
    let other = open();
    assert_eq!(other.load().expect("load"), set, "a second handle sees it");

    // Removal: the retired key leaves the set.
    let removed = set.keys.remove(0);
    store.save(&mut set).expect("save again");
    assert_eq!(set.generation, 2);
    let loaded = other.load().expect("load");
    assert_eq!(loaded, set);
    assert!(
        loaded.get(&removed.kid).is_none(),
        "a removed key stays removed"
    );
}

/// A save computed from a key set another writer has replaced since is refused, and leaves
/// the stored set (and the caller's generation) as they were: no published key is lost.
pub fn a_stale_save_is_refused_and_changes_nothing(open: Open<'_>) {
    let (a, b) = (open(), open());
    let mut first = a.load().expect("load");
    let mut stale = b.load().expect("load");
    {
        let _lock = a.lock().expect("lock");
        let jwk = a.create_key(Algorithm::ES256, 2048).expect("create");
        first.keys.push(record(
            jwk,
            KeyState::Active {
                activated_at: 1_000,
            },
        ));
        a.save(&mut first).expect("save");
    }
    let _lock = b.lock().expect("lock");
    stale.keys.clear();
    assert!(b.save(&mut stale).is_err(), "a stale save is refused");
    assert_eq!(stale.generation, 0, "a refused save counts no generation");
    assert_eq!(
        b.load().expect("load"),
        first,
        "the stored set is unchanged"
    );

    let mut fresh = b.load().expect("load");
    fresh.revoked.push(Revocation {
        kid: "r".into(),
        revoked_at: 1,
        trusted_until: 2,
    });
    b.save(&mut fresh)
        .expect("a save from a fresh load succeeds");
    assert_eq!(fresh.generation, 2);
}

/// A writer that dies between creating a key and saving the set leaves the published set as
/// it was, every published key still able to sign.
pub fn an_interrupted_write_loses_no_published_key(open: Open<'_>) {
    let store = open();
    let mut set = KeySet::default();
    let published = {
        let _lock = store.lock().expect("lock");
        let jwk = store.create_key(Algorithm::ES256, 2048).expect("create");
        set.keys.push(record(
            jwk.clone(),
            KeyState::Active {
                activated_at: 1_000,
            },
        ));
        store.save(&mut set).expect("save");
        // The next writer creates a key, then "dies" before saving: its lock goes.
        store.create_key(Algorithm::ES256, 2048).expect("create");
        jwk
    };
    let after = open();
    let _lock = after.lock().expect("the dead writer's lock is released");
    assert_eq!(after.load().expect("load"), set);
    let key = after.signing_key(&kid(&published)).expect("still signs");
    assert_eq!(key.public_jwk(), &published);
}

/// The private half `create_key` stored is the one `signing_key` returns, from any handle, for
/// every algorithm.
pub fn private_keys_roundtrip_from_any_handle(open: Open<'_>) {
    let store = open();
    let other = open();
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let jwk = store.create_key(alg, 2048).expect("create");
        assert_eq!(jwk.algorithm().expect("alg"), alg);
        assert_eq!(
            svctoken_jwks::thumbprint(&jwk).expect("thumbprint"),
            kid(&jwk),
            "the kid is the RFC 7638 thumbprint"
        );
        for handle in [&store, &other] {
            let key = handle.signing_key(&kid(&jwk)).expect("load");
            assert_eq!(
                key.public_jwk(),
                &jwk,
                "{alg:?}: private key matches its JWK"
            );
            assert_eq!(key.algorithm(), alg);
        }
    }
}

/// After `destroy_key` no handle can load the key; destroying it again is not an error.
pub fn destroyed_keys_are_gone_and_destroy_is_idempotent(open: Open<'_>) {
    let (store, other) = (open(), open());
    let gone = kid(&store.create_key(Algorithm::ES256, 2048).expect("create"));
    let kept = kid(&store.create_key(Algorithm::ES256, 2048).expect("create"));
    store.destroy_key(&gone).expect("destroy");
    store.destroy_key(&gone).expect("destroy is idempotent");
    assert!(
        other.signing_key(&gone).is_err(),
        "destroyed for every handle"
    );
    assert!(store.signing_key(&gone).is_err());
    assert!(
        other.signing_key(&kept).is_ok(),
        "only that key is destroyed"
    );
}

/// `signing_key` refuses kids it never made, including ones shaped to escape the store.
pub fn unknown_and_malformed_kids_are_refused(open: Open<'_>) {
    let store = open();
    store.create_key(Algorithm::ES256, 2048).expect("create");
    for kid in ["no-such-kid", "", "../../etc/passwd", "a/b", "..", "kid\0"] {
        assert!(store.signing_key(kid).is_err(), "{kid:?} refused");
    }
}

/// The writer lock excludes every other handle until it is dropped.
pub fn the_lock_excludes_every_other_handle(open: Open<'_>) {
    let (a, b) = (open(), open());
    let held = a.lock().expect("lock");
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _second = b.lock().expect("lock");
        tx.send(()).expect("send");
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a second handle waits while the lock is held"
    );
    drop(held);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the lock is acquired once released");
    waiter.join().expect("thread");
}
