//! Long runs of the issuer under Convex's cache model (the JWKS cached for its `max-age`,
//! never refetched for an unknown `kid`), shared by the tests of each key backend.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::store::KeyStore;
use svctoken_mint::{Clock as _, MockClock};

use crate::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};
use crate::harness::{convex_with_clock, spawn_issuer_with, worker_client};

/// 2027-01-15, where the simulations start.
const START: u64 = 1_800_000_000;

/// `days` simulated days of automatic rotation (6-hour periods, a 5-minute JWKS `max-age`,
/// 10-minute tokens) of an issuer on `store`: every simulated minute a token is fetched over
/// HTTP and verified by the cache-faithful Convex verifier, and so is the token fetched nine
/// minutes earlier. Not one may be rejected; a standby is always published; the verifier
/// fetched the JWKS about once per `max-age`. Returns how many keys signed.
pub async fn days_of_rotation_reject_no_valid_token(days: u64, store: Arc<dyn KeyStore>) -> usize {
    let minutes = days * 24 * 60;
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

    let mut tokens = TokenAges::default();
    let mut signing_kids = HashSet::new();
    let mut most_published = 0;
    let mut rejections = Vec::new();
    let lead = t.issuer.settings().schedule().prepare_lead().as_secs();
    // Minutes in which no standby was published, and in which it had not had its full lead (an
    // emergency revocation then would have made caching verifiers reject tokens).
    let (mut without_standby, mut standby_not_ready) = (0, 0);
    for minute in 0..minutes {
        let issuer = t.issuer.clone();
        tokio::task::spawn_blocking(move || issuer.refresh())
            .await
            .expect("join")
            .expect("lifecycle runs");
        signing_kids.insert(t.issuer.minter().active_key().kid().to_owned());
        let published = t.issuer.keys().published();
        most_published = most_published.max(published.set.keys.len());
        match published.set.prepared() {
            None => without_standby += 1,
            Some(standby) if standby.published_at + lead > clock.unix_secs() => {
                standby_not_ready += 1;
            }
            Some(_) => {}
        }
        drop(published);

        let token = t.token(&[]).await;
        tokens
            .verify(&convex, token, &format!("minute {minute}"), &mut rejections)
            .await;
        clock.advance(Duration::from_secs(60));
    }

    assert_no_rejections(&rejections);
    // 6-hour periods: four keys a day, never more than 3 published at once (the signing key,
    // its standby, and the retired key during its tail).
    let periods = usize::try_from(days * 4).expect("days");
    assert!(
        (periods - 1..=periods + 1).contains(&signing_kids.len()),
        "{} signing keys",
        signing_kids.len()
    );
    assert!(
        most_published <= 3,
        "{most_published} keys published at once"
    );
    // A standby always, ready for an emergency revocation except during the prepare lead
    // (5 min 5 s) after each hand-over, when it was just published: at most 6 minutes per key.
    assert_eq!(without_standby, 0, "minutes without a standby");
    assert!(
        standby_not_ready <= 6 * signing_kids.len(),
        "{standby_not_ready} minutes with a standby not yet held by caching verifiers"
    );
    // The verifier obeyed max-age=300: about one fetch per five simulated minutes.
    let fetches = convex.fetch_count() as u64;
    assert!(
        (minutes / 5 - 1..=minutes / 5 + 200).contains(&fetches),
        "{fetches} JWKS fetches"
    );
    assert_eq!(t.issuer.metrics().rotation_failures(), 0);
    signing_kids.len()
}

/// The tokens of the last nine simulated minutes (one a minute), each verified when fetched and
/// again when nine minutes old, as a client that caches a 10-minute token presents it.
#[derive(Default)]
pub struct TokenAges(VecDeque<String>);

impl TokenAges {
    /// Verifies `token`, fetched now, and the token fetched nine minutes ago, with `convex`;
    /// each rejection goes into `rejections`, prefixed by `at`.
    pub async fn verify(
        &mut self,
        convex: &ConvexAuth,
        token: String,
        at: &str,
        rejections: &mut Vec<String>,
    ) {
        if let Err(e) = convex.verify(&token).await {
            rejections.push(format!("{at}: fresh token: {e}"));
        }
        self.0.push_back(token);
        if self.0.len() > 9 {
            let old = self.0.pop_front().expect("nine minutes old");
            if let Err(e) = convex.verify(&old).await {
                rejections.push(format!("{at}: 9-minute-old token: {e}"));
            }
        }
    }
}

/// Fails with how many tokens were rejected, and the first few.
pub fn assert_no_rejections(rejections: &[String]) {
    assert!(
        rejections.is_empty(),
        "{} rejections, first: {:?}",
        rejections.len(),
        &rejections[..rejections.len().min(5)]
    );
}
