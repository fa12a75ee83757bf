//! Thirty simulated days of three replicas rotating their own keys on one database, under
//! Convex's cache model (each JWKS cached for its `max-age`, never refetched for an unknown
//! `kid`). Every minute each replica runs its lifecycle, then a token from each replica is
//! verified by a verifier holding a JWKS fetched from *another* replica, and so is each
//! replica's token of nine minutes earlier. Not one may be rejected.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use svctoken_mint::MockClock;
use svctoken_tests::harness::{TestIssuer, worker_client};
use svctoken_tests::postgres::TestSchema;
use svctoken_tests::simulation::{TokenAges, assert_no_rejections};

use super::{START, convex_via, refresh, replica};

const MINUTES: u64 = 30 * 24 * 60;
const REPLICAS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_of_three_replicas_reject_no_token_across_replicas() {
    let Some(schema) = TestSchema::new("30 days of three replicas") else {
        return;
    };
    let db = schema.connect();
    let clock = Arc::new(MockClock::at_unix(START));
    let config = format!(
        "[keys]\nrotation_period = \"6h\"\njwks_max_age = \"5m\"\n{}",
        worker_client("max_ttl = \"10m\"")
    );
    let dirs: Vec<_> = (0..REPLICAS)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut replicas = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        replicas.push(
            replica(
                &db,
                &format!("replica-{i}"),
                dir.path(),
                &config,
                clock.clone(),
            )
            .await,
        );
    }
    // Replica i's tokens are checked by a verifier that fetches the JWKS from replica i + 1.
    let verifiers: Vec<_> = (0..REPLICAS)
        .map(|i| convex_via(&replicas[(i + 1) % REPLICAS], clock.clone()))
        .collect();
    let lead = replicas[0]
        .issuer
        .settings()
        .schedule()
        .prepare_lead()
        .as_secs();
    assert_eq!(lead, 300 + 5 + 10, "max-age + skew + propagation");

    // Verifiers fetch at arbitrary moments: off the rotation grid.
    clock.advance(Duration::from_secs(150));

    let mut tokens: Vec<TokenAges> = (0..REPLICAS).map(|_| TokenAges::default()).collect();
    let mut signing: Vec<HashSet<String>> = vec![HashSet::new(); REPLICAS];
    let (mut rejections, mut waiting, mut most_published) = (Vec::new(), 0, 0);
    for minute in 0..MINUTES {
        // The replicas run their lifecycles side by side, as they would on their machines.
        let (r0, r1, r2) = tokio::join!(
            refresh(&replicas[0]),
            refresh(&replicas[1]),
            refresh(&replicas[2])
        );
        for ran in [r0, r1, r2] {
            ran.expect("lifecycle runs");
        }
        let (t0, t1, t2) = tokio::join!(
            token(&replicas[0]),
            token(&replicas[1]),
            token(&replicas[2])
        );
        for (i, (t, (status, body))) in replicas.iter().zip([t0, t1, t2]).enumerate() {
            let published = t.issuer.keys().published();
            most_published = most_published.max(published.all.jwks.keys.len());
            drop(published);
            if status == 503 && minute * 60 < lead + 60 {
                // A replica that joined while another signed waits a lead for its first key.
                assert_eq!(body["error"], "temporarily_unavailable");
                waiting += 1;
                continue;
            }
            assert_eq!(status, 200, "minute {minute}, replica {i}: {body}");
            let token = body["access_token"].as_str().expect("token").to_owned();
            let (header, _) = svctoken_jwks::dangerous::decode_unverified(&token).expect("jwt");
            signing[i].insert(header["kid"].as_str().expect("kid").to_owned());
            let at = format!("minute {minute}, replica {i}");
            tokens[i]
                .verify(&verifiers[i], token, &at, &mut rejections)
                .await;
        }
        clock.advance(Duration::from_secs(60));
    }

    assert_no_rejections(&rejections);
    // The two replicas that joined waited one lead (about 6 minutes) each, no more.
    assert!(
        (2..=2 * 7).contains(&waiting),
        "{waiting} refusals while joining"
    );
    for (i, kids) in signing.iter().enumerate() {
        // 6-hour periods over 30 days: about 120 keys each.
        assert!(
            (119..=122).contains(&kids.len()),
            "replica {i}: {} signing keys",
            kids.len()
        );
    }
    // Each replica publishes its signing key and standby, and a retired key in its tail.
    assert!(
        most_published <= 3 * REPLICAS,
        "{most_published} keys published at once"
    );
    for t in &replicas {
        assert_eq!(t.issuer.metrics().rotation_failures(), 0);
    }
    let fetches: usize = verifiers.iter().map(|v| v.fetch_count()).sum();
    eprintln!(
        "30 days, {REPLICAS} replicas: {} signing keys, {fetches} JWKS fetches, 0 rejections",
        signing.iter().map(HashSet::len).sum::<usize>()
    );
}

/// A client-credentials token request to `t`: the status and the body.
async fn token(t: &TestIssuer) -> (u16, serde_json::Value) {
    let response = t
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}
