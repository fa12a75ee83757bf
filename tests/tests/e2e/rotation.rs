//! Thirty simulated days of automatic rotation: a token is fetched over HTTP and verified by
//! the cache-faithful Convex verifier every simulated minute, and so is the token fetched nine
//! minutes earlier. Not one valid token may be rejected.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::store::FileStore;
use svctoken_mint::MockClock;
use svctoken_tests::convex::{CustomJwtAlgorithm, Provider};
use svctoken_tests::harness::{convex_with_clock, spawn_issuer_with, worker_client};

const START: u64 = 1_800_000_000;
const MINUTES: u64 = 30 * 24 * 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_of_rotation_reject_no_valid_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FileStore::open(dir.path()).expect("store"));
    let clock = Arc::new(MockClock::at_unix(START));
    let config = format!(
        "[keys]\nrotation_period = \"6h\"\njwks_max_age = \"5m\"\n{}",
        worker_client("max_ttl = \"10m\"")
    );
    let t = spawn_issuer_with(&config, store, clock.clone()).await;
    let convex = convex_with_clock(
        vec![Provider::CustomJwt {
            issuer: t.url.clone(),
            jwks: t.audience_jwks("convex"),
            algorithm: CustomJwtAlgorithm::ES256,
            application_id: Some("convex".into()),
        }],
        clock.clone(),
    );

    // Real verifiers fetch at arbitrary moments: start their cache cycle off the rotation grid,
    // or every activation would coincide with a cache expiry and hide a missing lead.
    clock.advance(Duration::from_secs(150));

    let mut recent: VecDeque<String> = VecDeque::new();
    let mut signing_kids = HashSet::new();
    let mut most_published = 0;
    let mut rejections = Vec::new();
    for minute in 0..MINUTES {
        let issuer = t.issuer.clone();
        tokio::task::spawn_blocking(move || issuer.refresh())
            .await
            .expect("join")
            .expect("lifecycle runs");
        signing_kids.insert(t.issuer.minter().active_key().kid().to_owned());
        most_published = most_published.max(t.issuer.keys().published().set.keys.len());

        let token = t.token(&[]).await;
        if let Err(e) = convex.verify(&token).await {
            rejections.push(format!("minute {minute}: fresh token: {e}"));
        }
        recent.push_back(token);
        if recent.len() > 9 {
            let old = recent.pop_front().expect("nine minutes old");
            if let Err(e) = convex.verify(&old).await {
                rejections.push(format!("minute {minute}: 9-minute-old token: {e}"));
            }
        }
        clock.advance(Duration::from_secs(60));
    }

    assert!(
        rejections.is_empty(),
        "{} rejections, first: {:?}",
        rejections.len(),
        &rejections[..rejections.len().min(5)]
    );
    // 6-hour periods over 30 days: about 120 keys signed, never more than 3 published at once.
    assert!(
        (119..=121).contains(&signing_kids.len()),
        "{} signing keys",
        signing_kids.len()
    );
    assert!(
        most_published <= 3,
        "{most_published} keys published at once"
    );
    // The verifier obeyed max-age=300: about one fetch per five simulated minutes.
    let fetches = convex.fetch_count() as u64;
    assert!(
        (MINUTES / 5 - 1..=MINUTES / 5 + 200).contains(&fetches),
        "{fetches} JWKS fetches"
    );
    assert_eq!(t.issuer.metrics().rotation_failures(), 0);
}
