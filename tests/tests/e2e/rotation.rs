//! Key rotation under Convex's cache model (the JWKS cached for its `max-age`, never refetched
//! for an unknown `kid`):
//! - thirty simulated days of automatic rotation: a token is fetched over HTTP and verified by
//!   the cache-faithful Convex verifier every simulated minute, and so is the token fetched nine
//!   minutes earlier. Not one valid token may be rejected;
//! - an emergency revocation of the signing key mid-stream: not one token of a key that was not
//!   revoked may be rejected, and the revoked key's tokens are rejected once caches expire.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::audit::{ChangedBy, KeyChange, KeyRole};
use svctoken_issuer::rotation::{self, AuditJournal};
use svctoken_issuer::store::FileStore;
use svctoken_mint::{Clock as _, MockClock};
use svctoken_tests::convex::{CustomJwtAlgorithm, Provider, Reason};
use svctoken_tests::harness::{TestIssuer, convex_with_clock, spawn_issuer, worker_client};
use svctoken_tests::simulation;

const START: u64 = 1_800_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_days_of_rotation_reject_no_valid_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FileStore::open(dir.path()).expect("store"));
    simulation::days_of_rotation_reject_no_valid_token(30, store).await;
}

/// An emergency revocation of the signing key in the middle of a stream of tokens, under the
/// Convex cache model. A verifier has cached the JWKS (a minute and a half before); a token is
/// fetched every 20 simulated seconds and verified at once, and every token still unexpired is
/// verified again at each step; one hour and four minutes in, the signing key is revoked (as
/// `svctoken keys revoke` does, recorded in the same audit trail) and the running issuer picks
/// that up. Then:
///
/// - not one token signed by a key that was not revoked is rejected, before or after: the
///   standby that takes over was published with the first key, so the verifier's cached copy
///   already holds it and the first token it signs is accepted without a refetch;
/// - the revoked key's tokens are still accepted from that cached copy (the documented worst
///   case: `jwks_max_age`), and rejected (`KeyNotFound`) once it has expired; a verifier that
///   fetches the JWKS after the revocation rejects them at once.
///
/// Without the standby the test fails. Had the lifecycle published the next key only a lead
/// before the period's end (as before standby keys), no key would wait one hour into a six-hour
/// period: the revocation would make a key that signs at once, which the cached JWKS does not
/// hold and Convex never refetches for, so every token it signs is rejected until the cached
/// copy expires. Checked by running this test with `should_prepare` returning `None` until a
/// lead before the period's end: it failed with 55 rejections, all `KeyNotFound` (the 10 tokens
/// the new key signed in the 200 s the cached copy had left, each rejected at every step), the
/// first at the revocation itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_revocation_rejects_no_token_of_a_key_that_was_not_revoked() {
    const STEP: u64 = 20;
    let clock = Arc::new(MockClock::at_unix(START));
    let config = format!(
        "[keys]\nrotation_period = \"6h\"\njwks_max_age = \"5m\"\n{}",
        worker_client("max_ttl = \"10m\"")
    );
    let t = spawn_issuer(&config, clock.clone()).await;
    let convex = convex_with_clock(vec![provider(&t)], clock.clone());
    // Off the rotation grid: the verifier fetches at 150 s, then every 300 s (…, 3750, 4050).
    clock.advance(Duration::from_secs(150));
    let revoke_at = START + 3850;

    let mut live: VecDeque<(String, String, u64)> = VecDeque::new(); // token, kid, exp
    let mut rejections = Vec::new();
    let mut revoked: Option<(String, u64)> = None; // kid, when
    let mut outcome = None;
    // The verifier's fetches before the revocation, and once it has verified the first token of
    // the key that took over.
    let mut fetches = (0, 0);
    let (mut revoked_accepted_from_cache, mut revoked_rejected_after) = (0, 0);
    while clock.unix_secs() < START + 2 * 3600 {
        let now = clock.unix_secs();
        if now == revoke_at {
            let kid = t.issuer.minter().active_key().kid().to_owned();
            fetches.0 = convex.fetch_count();
            outcome = Some(revoke(&t, &kid).await);
            assert_ne!(
                t.issuer.minter().active_key().kid(),
                kid,
                "another key signs"
            );
            // A verifier that fetches the JWKS now no longer finds the revoked key.
            let fresh = convex_with_clock(vec![provider(&t)], clock.clone());
            let (token, ..) = live.back().expect("a token of the revoked key");
            let err = fresh.verify(token).await.expect_err("revoked");
            assert_eq!(err.reason(), &Reason::KeyNotFound, "{err}");
            revoked = Some((kid, now));
        } else {
            let issuer = t.issuer.clone();
            tokio::task::spawn_blocking(move || issuer.refresh())
                .await
                .expect("join")
                .expect("lifecycle runs");
        }
        let token = t.token(&[]).await;
        let kid = kid_of(&token);
        let exp = now + 600;
        live.push_back((token, kid, exp));
        live.retain(|(_, _, exp)| *exp > now);
        for (token, kid, _) in &live {
            let result = convex.verify(token).await;
            match &revoked {
                Some((gone, at)) if gone == kid => {
                    if now < at + 300 {
                        revoked_accepted_from_cache += usize::from(result.is_ok());
                    } else {
                        let err = result.expect_err("the revoked key, once the cache expired");
                        assert_eq!(err.reason(), &Reason::KeyNotFound, "{err}");
                        revoked_rejected_after += 1;
                    }
                }
                _ => {
                    if let Err(e) = result {
                        rejections.push(format!("{} s: token of {kid}: {e}", now - START));
                    }
                }
            }
        }
        if now == revoke_at {
            fetches.1 = convex.fetch_count();
        }
        clock.advance(Duration::from_secs(STEP));
    }

    assert!(
        rejections.is_empty(),
        "{} rejections of tokens signed by keys that were not revoked, first: {:?}",
        rejections.len(),
        &rejections[..rejections.len().min(5)]
    );
    let outcome = outcome.expect("the revocation happened");
    assert_eq!(
        outcome.successor.as_ref().map(|s| s.was_standby),
        Some(true),
        "the standby took over"
    );
    assert_eq!(
        outcome.rejections_until(t.issuer.settings().schedule()),
        None
    );
    assert_eq!(
        fetches.0, fetches.1,
        "the first tokens after the revocation were accepted from the cached JWKS"
    );
    assert!(
        revoked_accepted_from_cache > 0,
        "the verifier's cached copy was in use after the revocation"
    );
    assert!(
        revoked_rejected_after > 0,
        "revoked tokens were checked after the cache expired"
    );

    // The revocation and the hand-over are in the audit trail, in order, with the new standby.
    let (gone, at) = revoked.expect("revoked");
    let changes: Vec<(u64, String, KeyChange, ChangedBy)> = t
        .lifecycle_events()
        .into_iter()
        .filter(|e| e.time == at)
        .map(|e| {
            let lifecycle = e.lifecycle.expect("lifecycle");
            (e.time, e.kid.expect("kid"), lifecycle.change, lifecycle.by)
        })
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0].1, gone);
    assert_eq!(
        changes[0].2,
        KeyChange::Revoked {
            was: KeyRole::Active,
            trusted_until: at + 300
        }
    );
    assert!(matches!(
        changes[1].2,
        KeyChange::Activated { early: false, .. }
    ));
    assert!(matches!(changes[2].2, KeyChange::Prepared { .. }));
    assert!(changes.iter().all(|c| c.3 == ChangedBy::Cli));
}

fn provider(t: &TestIssuer) -> Provider {
    Provider::CustomJwt {
        issuer: t.url.clone(),
        jwks: t.audience_jwks("convex"),
        algorithm: CustomJwtAlgorithm::ES256,
        application_id: Some("convex".into()),
    }
}

/// Revokes `kid` as `svctoken keys revoke` does (recorded in the issuer's audit trail as made
/// by a command), then lets the running issuer pick the change up.
async fn revoke(t: &TestIssuer, kid: &str) -> rotation::Revoked {
    let (issuer, kid) = (t.issuer.clone(), kid.to_owned());
    tokio::task::spawn_blocking(move || {
        let schedule = issuer.settings().schedule().clone();
        let journal = AuditJournal::new(issuer.auditor(), ChangedBy::Cli);
        let now = issuer.clock().unix_secs();
        let revoked = rotation::revoke(issuer.keys().store(), &schedule, &kid, now, &journal)
            .expect("revoke");
        issuer.refresh().expect("refresh");
        revoked
    })
    .await
    .expect("join")
}

fn kid_of(token: &str) -> String {
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("a JWS");
    header["kid"].as_str().expect("kid").to_owned()
}
