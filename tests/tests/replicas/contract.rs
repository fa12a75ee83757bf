//! The key store contract every store passes, against a replica's store on PostgreSQL: each
//! case on a fresh schema, every handle the same replica (as a second process on its machine
//! would be), its private keys in one directory.

use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::postgres::PgStore;
use svctoken_issuer::store::KeyStore;
use svctoken_issuer::store::contract::CASES;
use svctoken_tests::postgres::TestSchema;

#[test]
fn the_database_store_meets_the_key_store_contract() {
    for (name, case) in CASES {
        let Some(schema) = TestSchema::new("key store contract on PostgreSQL") else {
            return;
        };
        let db = schema.connect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        let open = move || -> Arc<dyn KeyStore> {
            Arc::new(
                PgStore::open(db.clone(), "replica-a", &path, Duration::from_secs(3600))
                    .expect("open"),
            )
        };
        eprintln!("key store contract on PostgreSQL: {name}");
        case(&open);
    }
}

/// Two replicas' lineages are apart: one's saves never touch the other's set, and each sees
/// the other's keys as peers.
#[test]
fn replicas_lineages_are_apart_and_each_sees_the_others() {
    let Some(schema) = TestSchema::new("replica lineages") else {
        return;
    };
    let db = schema.connect();
    let (da, db_dir) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = PgStore::open(db.clone(), "a", da.path(), Duration::from_secs(3600)).expect("a");
    let b = PgStore::open(db.clone(), "b", db_dir.path(), Duration::from_secs(3600)).expect("b");
    let schedule = svctoken_issuer::rotation::Schedule::default();
    svctoken_issuer::rotation::rotate(&a, &schedule, super::START, &()).expect("a rotates");
    assert_eq!(b.load().expect("b").keys.len(), 0, "b's lineage is empty");
    let a_keys = a.load().expect("a").keys;
    assert_eq!(a_keys.len(), 2, "a's signing key and standby");
    let seen: Vec<_> = b
        .peer_keys()
        .expect("peers")
        .into_iter()
        .map(|p| (p.replica_id, p.key))
        .collect();
    assert_eq!(seen.len(), 2);
    for (replica, key) in &seen {
        assert_eq!(replica, "a");
        assert!(a_keys.contains(key));
    }
    assert!(
        a.peer_keys().expect("peers").is_empty(),
        "a's own keys are not its peers'"
    );
    // b's first key waits a full lead: a signs, and verifiers hold JWKS without b's key.
    svctoken_issuer::rotation::rotate(&b, &schedule, super::START, &()).expect("b rotates");
    let b_set = b.load().expect("b");
    assert!(b_set.active().is_none(), "b does not sign yet");
    let standby = b_set.prepared().expect("b's first key");
    assert_eq!(
        standby.state,
        svctoken_issuer::store::KeyState::Prepared {
            activate_at: super::START + schedule.prepare_lead().as_secs()
        }
    );
    // Private keys stay with their replica.
    assert!(
        a.signing_key(&standby.kid).is_err(),
        "a cannot load b's private key"
    );
}

/// Replicas starting together on an empty database: one signs at once, the others wait a lead
/// (verifiers may have fetched a JWKS that holds only the first one's key).
#[test]
fn of_replicas_starting_together_one_signs_at_once() {
    let Some(schema) = TestSchema::new("replicas starting together") else {
        return;
    };
    let db = schema.connect();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().expect("tmp")).collect();
    let barrier = Arc::new(std::sync::Barrier::new(dirs.len()));
    let starts: Vec<_> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let store = PgStore::open(
                db.clone(),
                &format!("r{i}"),
                dir.path(),
                Duration::from_secs(3600),
            )
            .expect("open");
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let schedule = svctoken_issuer::rotation::Schedule::default();
                svctoken_issuer::rotation::rotate(&store, &schedule, super::START, &())
                    .expect("rotates");
                store.load().expect("load")
            })
        })
        .collect();
    let sets: Vec<_> = starts
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let signing = sets.iter().filter(|s| s.active().is_some()).count();
    assert_eq!(signing, 1, "exactly one replica signs at once");
    for set in sets.iter().filter(|s| s.active().is_none()) {
        assert!(set.prepared().is_some(), "the others wait with a key");
    }
}

/// Replicas starting together on a fresh database: one creates the schema, the others wait for
/// it and find nothing to do; all connect.
#[test]
fn replicas_starting_together_migrate_the_schema_once() {
    let Some(schema) = TestSchema::new("migrations racing") else {
        return;
    };
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let (url, barrier) = (schema.url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                svctoken_issuer::postgres::Database::connect(&url).map(drop)
            })
        })
        .collect();
    for connect in connects {
        connect
            .join()
            .expect("thread")
            .expect("every replica connects");
    }
    // One migration recorded, once.
    schema.execute(
        "DO $$ BEGIN IF (SELECT count(*) FROM svctoken_migrations) <> 1 THEN \
         RAISE 'the migration was applied more than once'; END IF; END $$",
    );
}
