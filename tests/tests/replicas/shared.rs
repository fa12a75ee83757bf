//! What replicas share: an assertion used at one is refused at every other, a client's rate
//! is limited across them, each keeps an intact audit chain in the database, key changes are
//! announced, a joining replica waits until its key is in every verifier's JWKS, and a replica
//! whose lease lapsed has its keys retired by the others.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use svctoken_issuer::audit::Outcome;
use svctoken_issuer::postgres::{PgStore, verify_database};
use svctoken_issuer::rotation::{self, Schedule};
use svctoken_issuer::store::{KeyState, KeyStore};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Clock as _, MockClock};
use svctoken_tests::harness::{TestIssuer, key_client, spawn_replica, worker_client};
use svctoken_tests::postgres::TestSchema;

use super::{ISSUER, START, convex_via, refresh, replica};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Starts replicas `a` and `b` of `config` on `schema`'s database and lets `b`'s first key
/// have its lead, so both sign.
async fn two_signing(
    schema: &TestSchema,
    config: &str,
    clock: &Arc<MockClock>,
    dirs: &[tempfile::TempDir; 2],
) -> (TestIssuer, TestIssuer) {
    let db = schema.connect();
    let a = replica(&db, "a", dirs[0].path(), config, clock.clone()).await;
    let b = replica(&db, "b", dirs[1].path(), config, clock.clone()).await;
    let lead = a.issuer.settings().schedule().prepare_lead();
    clock.advance(lead);
    for t in [&a, &b] {
        refresh(t).await.expect("lifecycle runs");
    }
    assert!(
        b.issuer.keys().can_sign(clock.unix_secs()),
        "b signs after its lead"
    );
    (a, b)
}

/// Moves `clock` on by `by` in steps of 30 s, each replica renewing its lease and running its
/// lifecycle after each step, as running replicas do.
async fn in_steps(clock: &MockClock, by: Duration, replicas: &[&TestIssuer]) {
    for _ in 0..by.as_secs().div_ceil(30) {
        clock.advance(Duration::from_secs(30));
        for t in replicas {
            refresh(t).await.expect("runs");
        }
    }
}

fn dirs() -> [tempfile::TempDir; 2] {
    [
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    ]
}

async fn post(t: &TestIssuer, form: &[(&str, &str)]) -> (u16, Value) {
    let response = t.post_token(form, false).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn an_assertion_used_at_one_replica_is_refused_at_every_other() {
    let Some(schema) = TestSchema::new("replay across replicas") else {
        return;
    };
    let key = SigningKey::generate(Algorithm::ES256).expect("key");
    let clock = Arc::new(MockClock::at_unix(START));
    let dirs = dirs();
    let (a, b) = two_signing(&schema, &key_client("job", &key, ""), &clock, &dirs).await;
    let now = clock.unix_secs();
    let assertion = key
        .sign_jwt(
            &json!({"iss": "job", "sub": "job", "aud": ISSUER, "iat": now,
                          "exp": now + 60, "jti": "once-only"}),
        )
        .expect("sign");
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (status, body) = post(&a, &form).await;
    assert_eq!(status, 200, "{body}");
    for (replica, t) in [("b", &b), ("a", &a)] {
        let (status, body) = post(t, &form).await;
        assert_eq!(
            (status, &body["error"]),
            (401, &json!("invalid_client")),
            "at {replica}"
        );
    }
    b.issuer.auditor().flush().await.expect("flush");
    let refused = b.audit_events();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].reason.as_deref(),
        Some("assertion: jti already used (replay)")
    );
}

#[tokio::test]
async fn a_clients_rate_is_limited_across_replicas() {
    let Some(schema) = TestSchema::new("rate limit across replicas") else {
        return;
    };
    let config = format!(
        "[rate_limit]\nburst = 3\nper_minute = 60\n{}",
        worker_client("")
    );
    let clock = Arc::new(MockClock::at_unix(START));
    let dirs = dirs();
    let (a, b) = two_signing(&schema, &config, &clock, &dirs).await;
    for t in [&a, &b, &a] {
        t.token(&[]).await;
    }
    let response = b
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    assert_eq!(
        response.status(),
        429,
        "the burst of 3 is shared by both replicas"
    );
    assert_eq!(response.headers()["retry-after"], "1");
    // A second refills one request (60 a minute), at whichever replica asks first.
    clock.advance(Duration::from_secs(1));
    b.token(&[]).await;
    let again = a
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    assert_eq!(again.status(), 429);
}

#[tokio::test]
async fn every_replica_keeps_an_intact_audit_chain_and_an_edit_is_found() {
    let Some(schema) = TestSchema::new("audit chains in the database") else {
        return;
    };
    let clock = Arc::new(MockClock::at_unix(START));
    let dirs = dirs();
    let (a, b) = two_signing(&schema, &worker_client(""), &clock, &dirs).await;
    let mut jtis = Vec::new();
    for t in [&a, &b, &a, &b, &a] {
        let token = t.token(&[]).await;
        let (_, claims) = svctoken_jwks::dangerous::decode_unverified(&token).expect("jwt");
        jtis.push(claims["jti"].as_str().expect("jti").to_owned());
    }
    for t in [&a, &b] {
        t.issuer.auditor().flush().await.expect("flush");
    }
    let db = schema.connect();
    let chains = verify_database(&db).expect("verify");
    let names: Vec<&str> = chains.iter().map(|c| c.replica_id.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    for chain in &chains {
        let report = chain.verified.as_ref().expect("intact");
        let memory = if chain.replica_id == "a" { &a } else { &b };
        // Every event the replica recorded, lifecycle changes included, is on its chain.
        let recorded = memory.audit_events().len() + memory.lifecycle_events().len();
        assert_eq!(
            report.lines, recorded as u64,
            "replica {}",
            chain.replica_id
        );
    }
    let issued: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|t| t.audit_events())
        .filter(|e| e.outcome == Outcome::Issued)
        .filter_map(|e| e.jti)
        .collect();
    for jti in &jtis {
        assert!(issued.contains(jti), "{jti} audited");
    }

    // An edited line is found, on its chain only.
    schema.execute(
        "UPDATE svctoken_audit SET lines = replace(lines, '\"client_id\":\"worker\"', \
         '\"client_id\":\"other\"') WHERE replica_id = 'a' AND first_seq = (SELECT \
         max(first_seq) FROM svctoken_audit WHERE replica_id = 'a' AND lines LIKE '%worker%')",
    );
    let chains = verify_database(&db).expect("verify");
    let broken = chains[0]
        .verified
        .as_ref()
        .expect_err("a's chain was edited");
    let lines_a = a.audit_events().len() + a.lifecycle_events().len();
    assert!((1..=lines_a as u64).contains(&broken.line), "{broken}");
    assert!(chains[1].verified.is_ok(), "b's chain is untouched");
    // So is a batch removed from the end of a chain.
    schema.execute(
        "DELETE FROM svctoken_audit WHERE replica_id = 'b' AND first_seq = (SELECT \
         max(first_seq) FROM svctoken_audit WHERE replica_id = 'b')",
    );
    let chains = verify_database(&db).expect("verify");
    assert!(chains[1].verified.is_err(), "b's chain lost its last line");
}

#[tokio::test]
async fn a_replica_hears_of_another_ones_key_change_at_once() {
    let Some(schema) = TestSchema::new("key changes announced") else {
        return;
    };
    let db = schema.connect();
    let dirs = dirs();
    let hour = Duration::from_secs(3600);
    let a = PgStore::open(db.clone(), "a", dirs[0].path(), hour).expect("a");
    let b = PgStore::open(db.clone(), "b", dirs[1].path(), hour).expect("b");
    let changes = a
        .changes()
        .expect("a store replicas share announces changes");
    // The first signal says the listener is connected (changes may have been missed before).
    tokio::time::timeout(Duration::from_secs(5), changes.notified())
        .await
        .expect("listening");
    let schedule = Schedule::default();
    let b_moves = tokio::task::spawn_blocking(move || {
        rotation::rotate(&b, &schedule, START, &()).expect("b rotates")
    });
    tokio::time::timeout(Duration::from_secs(2), changes.notified())
        .await
        .expect("a hears of b's new keys well within the lifecycle's 5 s poll");
    assert!(!b_moves.await.expect("join").is_empty());
    let seen = tokio::task::spawn_blocking(move || a.peer_keys().expect("peers"))
        .await
        .expect("join");
    assert_eq!(seen.len(), 2, "b's signing key and standby");
}

#[tokio::test]
async fn a_joining_replica_signs_only_once_every_verifier_holds_its_key() {
    let Some(schema) = TestSchema::new("a replica joining") else {
        return;
    };
    let db = schema.connect();
    let clock = Arc::new(MockClock::at_unix(START));
    let dirs = dirs();
    let config = worker_client("");
    let a = replica(&db, "a", dirs[0].path(), &config, clock.clone()).await;
    let convex = convex_via(&a, clock.clone());
    convex
        .verify(&a.token(&[]).await)
        .await
        .expect("a signs at once: the first replica");

    clock.advance(Duration::from_secs(100));
    let b = replica(&db, "b", dirs[1].path(), &config, clock.clone()).await;
    let refused = b
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "2");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    let ready = b
        .http
        .get(format!("{}/readyz", b.admin_url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503, "a load balancer routes around it");
    let b_kid = b
        .issuer
        .keys()
        .published()
        .set
        .prepared()
        .expect("b's key")
        .kid
        .clone();
    // a serves b's key as soon as it hears of it.
    refresh(&a).await.expect("a runs");
    let a_jwks = a.jwks(&a.audience_jwks("convex")).await;
    assert!(
        a_jwks
            .keys
            .iter()
            .any(|k| k.kid.as_deref() == Some(b_kid.as_str()))
    );

    // A lead later b signs, and a verifier that cached a's JWKS (max-age 5 m) a moment after b
    // joined, and kept it, accepts b's tokens: it held b's key before b signed with it.
    let lead = b.issuer.settings().schedule().prepare_lead();
    clock.advance(lead - Duration::from_secs(1));
    refresh(&b).await.expect("b runs");
    assert!(
        !b.issuer.keys().can_sign(clock.unix_secs()),
        "not a second early"
    );
    clock.advance(Duration::from_secs(1));
    refresh(&b).await.expect("b runs");
    let token = b.token(&[]).await;
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(&token).expect("jwt");
    assert_eq!(header["kid"], b_kid.as_str());
    convex
        .verify(&token)
        .await
        .expect("b's token verifies through a's JWKS");
    let ready = b
        .http
        .get(format!("{}/readyz", b.admin_url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_keys_of_a_replica_whose_lease_lapsed_are_retired_then_removed() {
    let Some(schema) = TestSchema::new("a lapsed replica") else {
        return;
    };
    let db = schema.connect();
    let clock = Arc::new(MockClock::at_unix(START));
    let dirs = dirs();
    let minute = Duration::from_secs(60);
    let config = worker_client("");
    let start = |id: &'static str, dir: std::path::PathBuf| {
        let store: Arc<dyn KeyStore> =
            Arc::new(PgStore::open(db.clone(), id, &dir, minute).expect("store"));
        spawn_replica(ISSUER, &config, store, clock.clone())
    };
    let a = start("a", dirs[0].path().to_owned()).await;
    let b = start("b", dirs[1].path().to_owned()).await;
    let schedule = a.issuer.settings().schedule().clone();
    // Both renew their one-minute leases as time goes by, until b's key has its lead.
    let lead = schedule.prepare_lead();
    in_steps(&clock, lead, &[&a, &b]).await;
    let b_set = b.issuer.keys().published().set.clone();
    let b_signing = b_set.active().expect("b signs").kid.clone();
    let b_standby = b_set.prepared().expect("b's standby").kid.clone();
    let lapsed_at = clock.unix_secs() + 60;
    assert!(b.issuer.keys().can_sign(clock.unix_secs()), "b signs");

    // b stops renewing (a crash, a partition: its server and its lifecycle stop); had it
    // gone on serving, it would have stopped signing when its lease ended.
    let b_keys = b.issuer.clone();
    b.stop().await;
    clock.advance(minute + Duration::from_secs(1));
    assert!(
        !b_keys.keys().can_sign(clock.unix_secs()),
        "b fences itself"
    );
    refresh(&a).await.expect("a runs");
    let peers = a.issuer.keys().published().peers.clone();
    let tail = schedule.retire_tail().as_secs();
    assert_eq!(
        peers.len(),
        1,
        "b's standby, which never signed, left at once"
    );
    assert_eq!(peers[0].key.kid, b_signing);
    assert!(matches!(
        peers[0].key.state,
        KeyState::Retired { retired_at, remove_at, .. } if retired_at == lapsed_at && remove_at == lapsed_at + tail
    ));
    a.issuer.auditor().flush().await.expect("flush");
    let changes: Vec<(String, String)> = a
        .lifecycle_events()
        .into_iter()
        .filter_map(|e| {
            Some((
                e.kid?,
                serde_json::to_value(e.lifecycle?).ok()?["change"]
                    .as_str()?
                    .to_owned(),
            ))
        })
        .filter(|(kid, _)| *kid == b_signing || *kid == b_standby)
        .collect();
    assert_eq!(
        changes,
        [
            (b_signing.clone(), "retired".to_owned()),
            (b_standby.clone(), "removed".to_owned())
        ],
        "a recorded what it did to b's keys"
    );

    // Once every token b signed has expired, its key leaves the JWKS, and b's row goes.
    clock.set(svctoken_mint::from_unix_secs(lapsed_at + tail));
    refresh(&a).await.expect("a runs");
    assert!(a.issuer.keys().published().peers.is_empty());
    schema.execute("DO $$ BEGIN IF EXISTS (SELECT 1 FROM svctoken_key_sets WHERE replica_id = 'b') THEN RAISE 'b is still there'; END IF; END $$");

    // b comes back: a new key, which waits a lead (a signs meanwhile), then signs.
    let b = start("b", dirs[1].path().to_owned()).await;
    assert!(!b.issuer.keys().can_sign(clock.unix_secs()));
    in_steps(&clock, lead, &[&a, &b]).await;
    let token = b.token(&[]).await;
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(&token).expect("jwt");
    assert_ne!(header["kid"], b_signing.as_str(), "a new key");
    assert!(
        b.issuer.keys().store().signing_key(&b_signing).is_err(),
        "the old private key was swept"
    );
}

/// Two writers on one chain (the server, and a `svctoken keys` command on its machine): each
/// batch lands whole, after the other's, and the chain stays intact.
#[test]
fn two_writers_on_one_chain_keep_it_intact() {
    use svctoken_issuer::audit::{AuditEvent, AuditSink as _};
    use svctoken_issuer::postgres::AuditTable;
    let Some(schema) = TestSchema::new("two writers on one chain") else {
        return;
    };
    let db = schema.connect();
    let (server, command) = (
        AuditTable::new(db.clone(), "a"),
        AuditTable::new(db.clone(), "a"),
    );
    let events: Vec<AuditEvent> = (0..5).map(|i| AuditEvent::issued(START + i)).collect();
    let writers: Vec<_> = [server, command]
        .into_iter()
        .map(|table| {
            let events = events.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    table.record_batch(&events).expect("a batch lands");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    let chains = verify_database(&db).expect("verify");
    assert_eq!(chains.len(), 1);
    let report = chains[0].verified.as_ref().expect("intact");
    assert_eq!(report.lines, 2 * 20 * 5);
}
