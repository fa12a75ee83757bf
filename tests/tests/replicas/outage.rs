//! The database going down and coming back, with a cluster of the test's own: the replica keeps
//! signing with its active key (past its period, if need be, but never past its lease) and
//! serving its JWKS; `private_key_jwt` is refused with `temporarily_unavailable` (the replay
//! cache can't be checked); when the database is back the replica recovers by itself.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use svctoken_issuer::postgres::{Database, PgStore};
use svctoken_issuer::store::KeyStore;
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Clock as _, MockClock};
use svctoken_tests::harness::{TestIssuer, key_client, spawn_replica, worker_client};
use svctoken_tests::postgres::TestCluster;

use super::{ISSUER, START, refresh};

async fn with_assertion(t: &TestIssuer, key: &SigningKey, now: u64, jti: &str) -> (u16, Value) {
    let assertion = key
        .sign_jwt(
            &json!({"iss": "job", "sub": "job", "aud": ISSUER, "iat": now,
                          "exp": now + 60, "jti": jti}),
        )
        .expect("sign");
    let response = t
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ],
            false,
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn kid_of(token: &str) -> String {
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("jwt");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_outlives_a_database_outage_and_recovers_by_itself() {
    let Some(cluster) = TestCluster::start("a database outage") else {
        return;
    };
    let url = cluster.url();
    let db = tokio::task::spawn_blocking(move || Database::connect(&url))
        .await
        .expect("join")
        .expect("connects");
    let key = SigningKey::generate(Algorithm::ES256).expect("key");
    let config = format!(
        "[keys]\nrotation_period = \"1h\"\njwks_max_age = \"1m\"\n{}{}",
        worker_client(""),
        key_client("job", &key, "")
    );
    let clock = Arc::new(MockClock::at_unix(START));
    let dir = tempfile::tempdir().expect("tempdir");
    let lease = Duration::from_secs(2 * 3600);
    let store: Arc<dyn KeyStore> =
        Arc::new(PgStore::open(db.clone(), "a", dir.path(), lease).expect("store"));
    let a = spawn_replica(ISSUER, &config, store, clock.clone()).await;
    let first = a.token(&[]).await;
    let (status, body) = with_assertion(&a, &key, clock.unix_secs(), "j1").await;
    assert_eq!(status, 200, "{body}");

    cluster.stop();
    // Past the signing key's period: the standby is due, but the lifecycle can't run.
    clock.advance(Duration::from_secs(3600 + 120));
    assert!(
        refresh(&a).await.is_err(),
        "the lifecycle fails while the database is down"
    );
    let during = a.token(&[]).await;
    assert_eq!(
        kid_of(&during),
        kid_of(&first),
        "the active key signs past its period"
    );
    let jwks = a.jwks(&a.audience_jwks("convex")).await;
    let validation = svctoken_jwks::Validation::new(ISSUER, "convex");
    svctoken_jwks::Verifier::new(&jwks, validation)
        .verify(&during, clock.now())
        .expect("its token verifies against the JWKS it still serves");
    let (status, body) = with_assertion(&a, &key, clock.unix_secs(), "j2").await;
    assert_eq!(
        (status, &body["error"]),
        (503, &json!("temporarily_unavailable")),
        "{body}"
    );
    // The running lifecycle (every 5 s) counts its failures.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while a.issuer.metrics().rotation_failures() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a failed run is counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back: no restart; the overdue standby takes over and private_key_jwt works again.
    let restart = std::thread::spawn(move || {
        cluster.start_again();
        cluster
    });
    let cluster = tokio::task::spawn_blocking(move || restart.join().expect("restart"))
        .await
        .expect("join");
    refresh(&a).await.expect("the lifecycle runs again");
    let after = a.token(&[]).await;
    assert_ne!(
        kid_of(&after),
        kid_of(&first),
        "the rotation that waited has happened"
    );
    let (status, body) = with_assertion(&a, &key, clock.unix_secs(), "j2").await;
    assert_eq!(status, 200, "{body}");

    // Down for longer than the lease: the replica stops signing (the others retire its key
    // as of the lease's end), and starts again once it has renewed its lease.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .expect("join");
    clock.advance(lease);
    let refused = a
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    assert_eq!(refused.status(), 503, "no signature past the lease");
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_again();
        cluster
    })
    .await
    .expect("join");
    refresh(&a).await.expect("the lifecycle runs again");
    a.token(&[]).await;
    drop(cluster);
}
