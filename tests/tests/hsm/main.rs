//! Keys in a PKCS#11 token (SoftHSM2, in a temporary directory of each test's own): the key
//! store contract with private keys in the token (the files store, and a replica's store on
//! PostgreSQL), what the token holds through a key's life, replicas and other applications
//! sharing one token, concurrent signing on the session pool, clear errors, and thirty
//! simulated days of rotation under Convex's cache model. `kill -9` during rotations, and the
//! command line, are in `cli/tests/hsm.rs`.
//!
//! Each test runs in a child process of its own whose `SOFTHSM2_CONF` names its tokens
//! ([`SoftHsm::in_child`]). Without SoftHSM2 they print why they skip, and fail under `CI=true`.

use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::rotation::{self, Schedule};
use svctoken_issuer::store::contract::CASES;
use svctoken_issuer::store::pkcs11::{PinSource, Pkcs11Config};
use svctoken_issuer::store::{FileStore, KeyState, KeyStore, PrivateKeys};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_tests::postgres::TestSchema;
use svctoken_tests::simulation;
use svctoken_tests::softhsm::{SoftHsm, TokenObject, USER_PIN};

/// 2027-01-15, a moment for the schedules.
const START: u64 = 1_800_000_000;

/// A files store in `dir` whose private keys are in token `i`, owned by `owner`.
fn store(hsm: &SoftHsm, i: usize, owner: &str, dir: &std::path::Path) -> Arc<FileStore> {
    Arc::new(FileStore::open_with(dir, hsm.keys(i, owner)).expect("store"))
}

/// `hsm`'s key objects in token `i` owned by `owner` (their `CKA_ID` is `svctoken/<owner>/…`).
fn owned(hsm: &SoftHsm, i: usize, owner: &str) -> Vec<TokenObject> {
    let prefix = format!("svctoken/{owner}/");
    let mut objects: Vec<_> = (hsm.objects(i).into_iter())
        .filter(|o| o.id.starts_with(&prefix))
        .collect();
    objects.sort_by(|a, b| (&a.label, &a.class).cmp(&(&b.label, &b.class)));
    objects
}

/// Verifies `token` with jsonwebtoken (the reference implementation) against `key`'s JWK.
fn verify_with_jsonwebtoken(token: &str, key: &SigningKey) -> serde_json::Value {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(serde_json::to_value(key.public_jwk()).expect("jwk"))
            .expect("jsonwebtoken reads the JWK");
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let alg = match key.algorithm() {
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .unwrap_or_else(|e| panic!("{:?}: jsonwebtoken refuses the token: {e}", key.algorithm()))
        .claims
}

#[test]
fn the_files_store_with_keys_in_a_token_meets_the_key_store_contract() {
    let Some(hsm) = SoftHsm::in_child("key store contract, keys in a token", CASES.len()) else {
        return;
    };
    for (i, (name, case)) in CASES.iter().enumerate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        let config = hsm.config(i, 4);
        let open = move || -> Arc<dyn KeyStore> {
            let keys = PrivateKeys::pkcs11(&config, "replica-a").expect("token opens");
            Arc::new(FileStore::open_with(&path, keys).expect("open"))
        };
        eprintln!("key store contract, keys in a token: {name}");
        case(&open);
    }
}

#[test]
fn the_database_store_with_keys_in_a_token_meets_the_key_store_contract() {
    let Some(hsm) = SoftHsm::in_child("key store contract, PostgreSQL + token", CASES.len()) else {
        return;
    };
    for (i, (name, case)) in CASES.iter().enumerate() {
        let Some(schema) = TestSchema::new("key store contract on PostgreSQL, keys in a token")
        else {
            return;
        };
        let db = schema.connect();
        let config = hsm.config(i, 4);
        let open = move || -> Arc<dyn KeyStore> {
            let keys = PrivateKeys::pkcs11(&config, "replica-a").expect("token opens");
            Arc::new(
                svctoken_issuer::postgres::PgStore::open_with(
                    db.clone(),
                    "replica-a",
                    keys,
                    Duration::from_secs(3600),
                )
                .expect("open"),
            )
        };
        eprintln!("key store contract on PostgreSQL, keys in a token: {name}");
        case(&open);
    }
}

/// Through a key's life in the token, for each algorithm: made there, sensitive and never
/// extractable, labelled by kid; its tokens verify with the reference implementation; nothing
/// is written to the data directory's `private/`; revocation and removal destroy the objects.
#[test]
fn keys_live_and_die_in_the_token() {
    let Some(hsm) = SoftHsm::in_child("key lifecycle in a token", 3) else {
        return;
    };
    for (i, alg) in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&hsm, i, "a", dir.path());
        let schedule = Schedule {
            algorithm: alg,
            ..Schedule::default()
        };
        rotation::rotate(store.as_ref(), &schedule, START, &()).expect("first keys");
        let set = store.load().expect("load");
        let (active, standby) = (
            set.active().expect("active"),
            set.prepared().expect("standby"),
        );
        assert!(!dir.path().join("private").exists(), "no private key file");

        let objects = owned(&hsm, i, "a");
        assert_eq!(objects.len(), 4, "{alg:?}: two pairs: {objects:?}");
        for key in [active, standby] {
            let pair: Vec<_> = objects.iter().filter(|o| o.label == key.kid).collect();
            let classes: Vec<&str> = pair.iter().map(|o| o.class.as_str()).collect();
            assert_eq!(classes, ["private", "public"], "{alg:?}");
            assert_eq!(pair[0].sensitive, Some(true), "{alg:?}: sensitive");
            assert_eq!(pair[0].extractable, Some(false), "{alg:?}: not extractable");
            assert!(
                pair.iter()
                    .all(|o| o.id == format!("svctoken/a/{}", key.kid))
            );
            assert_eq!(
                store.private_key_location(&key.kid),
                format!("pkcs11:token=token-{i};object={};type=private", key.kid)
            );
        }

        let key = store.signing_key(&active.kid).expect("signing key");
        assert!(key.is_external());
        assert_eq!((key.algorithm(), key.public_jwk()), (alg, &active.public));
        let token = key
            .sign_jwt(&serde_json::json!({"sub": "svc:a"}))
            .expect("sign");
        assert_eq!(verify_with_jsonwebtoken(&token, &key)["sub"], "svc:a");
        assert!(svctoken_jwks::dangerous::export_pkcs8_pem(&key).is_err());

        // Revoking the signing key destroys its objects; the standby signs.
        let revoked = rotation::revoke(store.as_ref(), &schedule, &active.kid, START + 60, &())
            .expect("revoke");
        let successor = revoked.successor.expect("the standby took over");
        assert_eq!(
            (successor.kid.as_str(), successor.was_standby),
            (standby.kid.as_str(), true)
        );
        assert!(owned(&hsm, i, "a").iter().all(|o| o.label != active.kid));
        let err = store
            .signing_key(&active.kid)
            .expect_err("revoked")
            .to_string();
        assert!(err.contains("not in the token"), "{err}");

        // A day on, the standby retired and removed once its tokens expired: its objects too.
        let later = START + 2 * 24 * 3600;
        rotation::rotate(store.as_ref(), &schedule, later, &()).expect("rotate");
        rotation::rotate(store.as_ref(), &schedule, later + 3600, &()).expect("rotate");
        let set = store.load().expect("load");
        assert!(
            set.get(&standby.kid).is_none(),
            "{alg:?}: the old standby left"
        );
        let labels: Vec<String> = owned(&hsm, i, "a").into_iter().map(|o| o.label).collect();
        assert!(
            !labels.contains(&standby.kid),
            "{alg:?}: its objects are gone"
        );
        for key in &set.keys {
            assert_eq!(labels.iter().filter(|l| **l == key.kid).count(), 2);
        }
        assert_eq!(labels.len(), 2 * set.keys.len(), "{alg:?}: nothing else");
    }
}

/// Two replicas' lineages (owners `a` and `b`) and another application share one token: a
/// writer's sweep destroys only its own leftovers (a pair never named, one still pending),
/// never the other replica's keys or the other application's.
#[test]
fn replicas_and_other_applications_sharing_a_token_keep_their_keys() {
    let Some(hsm) = SoftHsm::in_child("a token shared", 1) else {
        return;
    };
    let (da, db) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let (a, b) = (
        store(&hsm, 0, "a", da.path()),
        store(&hsm, 0, "b", db.path()),
    );
    let schedule = Schedule::default();
    rotation::rotate(a.as_ref(), &schedule, START, &()).expect("a");
    rotation::rotate(b.as_ref(), &schedule, START, &()).expect("b");
    hsm.add_key(0, "another-application", "another-application");
    // b made a key and died before saving a set naming it; and left a pair mid-generation.
    let orphan = b.create_key(Algorithm::ES256, 2048).expect("orphan");
    hsm.add_key(0, "pending", "svctoken/b/pending");
    let before_a = owned(&hsm, 0, "a");

    drop(a.lock().expect("a's writer sweeps"));
    assert_eq!(
        owned(&hsm, 0, "a"),
        before_a,
        "a's sweep leaves b and others alone"
    );
    assert_eq!(owned(&hsm, 0, "b").len(), 2 * 2 + 2 + 2);

    drop(b.lock().expect("b's writer sweeps"));
    let left_b = owned(&hsm, 0, "b");
    let kids: Vec<&str> = left_b.iter().map(|o| o.label.as_str()).collect();
    assert_eq!(left_b.len(), 4, "{kids:?}");
    assert!(!kids.contains(&orphan.kid.as_deref().expect("kid")));
    assert!(!kids.contains(&"pending"));
    let foreign = hsm.objects(0);
    assert_eq!(
        (foreign.iter())
            .filter(|o| o.label == "another-application")
            .count(),
        2,
        "the other application's key pair is untouched"
    );
    for store in [&a, &b] {
        let set = store.load().expect("load");
        for key in &set.keys {
            store
                .signing_key(&key.kid)
                .expect("every published key signs");
        }
    }
}

/// Many threads sign at once through a pool smaller than they are: every signature verifies.
#[test]
fn signing_runs_concurrently_on_the_session_pool() {
    let Some(hsm) = SoftHsm::in_child("concurrent signing", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = PrivateKeys::pkcs11(&hsm.config(0, 3), "a").expect("token");
    let store = Arc::new(FileStore::open_with(dir.path(), keys).expect("store"));
    rotation::rotate(store.as_ref(), &Schedule::default(), START, &()).expect("keys");
    let kid = store
        .load()
        .expect("load")
        .active()
        .expect("active")
        .kid
        .clone();
    let key = Arc::new(store.signing_key(&kid).expect("key"));
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let key = key.clone();
            std::thread::spawn(move || {
                (0..40)
                    .map(|n| {
                        let claims = serde_json::json!({"sub": format!("svc:{t}-{n}")});
                        key.sign_jwt(&claims).expect("signs")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut count = 0;
    for thread in threads {
        for token in thread.join().expect("thread") {
            verify_with_jsonwebtoken(&token, &key);
            count += 1;
        }
    }
    assert_eq!(count, 12 * 40);
}

/// A wrong PIN, a token that isn't there, a module that isn't one: each says what to fix, and
/// no message holds the PIN.
#[test]
fn opening_a_token_fails_with_what_to_fix() {
    let Some(hsm) = SoftHsm::in_child("token errors", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong-pin");
    std::fs::write(&wrong, "0000-wrong\n").expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let cases = [
        (
            Pkcs11Config {
                pin: PinSource::File(wrong),
                ..hsm.config(0, 2)
            },
            "refused the user PIN",
        ),
        (
            Pkcs11Config {
                token_label: "nope".into(),
                ..hsm.config(0, 2)
            },
            "no initialised token has this label (tokens found: [\"token-0\"])",
        ),
        (
            Pkcs11Config {
                module: dir.path().join("missing.so"),
                ..hsm.config(0, 2)
            },
            "can't be read",
        ),
        (
            Pkcs11Config {
                module: "/etc/hostname".into(),
                ..hsm.config(0, 2)
            },
            "is not a PKCS#11 module",
        ),
    ];
    for (config, expected) in cases {
        let err = PrivateKeys::pkcs11(&config, "a")
            .expect_err(expected)
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(
            !err.contains(USER_PIN) && !err.contains("0000-wrong"),
            "{err}"
        );
    }
    // A key whose objects were deleted behind the issuer's back: named, with what to do.
    let store = store(&hsm, 0, "a", dir.path());
    rotation::rotate(store.as_ref(), &Schedule::default(), START, &()).expect("keys");
    let set = store.load().expect("load");
    let kid = &set.active().expect("active").kid;
    store.destroy_key(kid).expect("deleted");
    let err = store.signing_key(kid).expect_err("missing").to_string();
    assert!(
        err.contains(&format!("svctoken keys revoke {kid}")),
        "{err}"
    );
    assert!(matches!(
        set.prepared().expect("standby").state,
        KeyState::Prepared { .. }
    ));
}

/// Thirty simulated days of rotation with every key in the token, under Convex's cache model:
/// not one valid token rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_of_rotation_in_a_token_reject_no_valid_token() {
    let Some(hsm) = SoftHsm::in_child("30 days of rotation in a token", 1) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&hsm, 0, "a", dir.path());
    let signed = simulation::days_of_rotation_reject_no_valid_token(30, store).await;
    eprintln!("30 days, keys in a token: {signed} signing keys, 0 rejections");
    // Only the keys still published are left in the token.
    assert!(owned(&hsm, 0, "a").len() <= 2 * 3);
}
