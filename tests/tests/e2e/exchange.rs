//! RFC 8693 token exchange: a user token from a trusted upstream issuer (here a second svctoken
//! issuer playing the app's own user-auth provider) becomes a service token acting for that
//! user; expired, forged and untrusted tokens are refused; the upstream JWKS cache refetches
//! once, rate limited, on an unknown kid. Also the per-client rate limit.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use svctoken_issuer::rotation;
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Actor, Clock as _, IssuerUrl, MintRequest, Minter, MockClock, SystemClock};
use svctoken_tests::harness::{TestIssuer, spawn_issuer, worker_client};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

fn user_token(minter: &Minter, sub: &str, actor: Option<&str>) -> String {
    let actor = actor.map(Actor::new);
    minter
        .mint(
            &MintRequest::new(sub, "svctoken")
                .ttl(Duration::from_secs(300))
                .actor(actor.as_ref()),
        )
        .expect("mint")
        .token
        .secret()
        .to_owned()
}

async fn upstream() -> TestIssuer {
    spawn_issuer(
        "[keys]\nalgorithm = \"RS256\"\n[[audiences]]\nname = \"svctoken\"\nprofile = \"generic\"",
        Arc::new(SystemClock),
    )
    .await
}

async fn ours(upstream: &TestIssuer) -> TestIssuer {
    let config = format!(
        "[[trusted_issuers]]\nissuer = \"{u}\"\njwks_uri = \"{u}/.well-known/jwks.json\"\naudience = \"svctoken\"\nalgorithms = [\"RS256\"]\n{}",
        worker_client("act_as = [\"user:*\"]"),
        u = upstream.url
    );
    spawn_issuer(&config, Arc::new(SystemClock)).await
}

async fn exchange(t: &TestIssuer, subject_token: &str) -> (u16, Value) {
    let r = t
        .post_token(
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", JWT),
            ],
            true,
        )
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_user_token_becomes_a_service_token_acting_for_that_user() {
    let up = upstream().await;
    let t = ours(&up).await;
    let convex = t.convex();
    let minter = up.issuer.minter().clone();

    let (status, body) = exchange(&t, &user_token(&minter, "user:42", None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let identity = convex
        .verify(body["access_token"].as_str().expect("token"))
        .await
        .expect("Convex accepts it");
    assert_eq!(identity.subject, "user:42");
    assert_eq!(identity.fields["act.sub"], "svc:worker");

    // An existing actor is kept, nested under ours.
    let (status, body) = exchange(&t, &user_token(&minter, "user:42", Some("svc:frontend"))).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) =
        svctoken_jwks::dangerous::decode_unverified(body["access_token"].as_str().expect("token"))
            .expect("jwt");
    assert_eq!(
        claims["act"],
        json!({"sub": "svc:worker", "act": {"sub": "svc:frontend"}})
    );

    // Refusals.
    let past = Minter::new(
        IssuerUrl::parse(&up.url).expect("url"),
        up.issuer.keys().signer(),
        Arc::new(MockClock::at_unix(SystemClock.unix_secs() - 3600)),
    );
    let expired = user_token(&past, "user:42", None);
    let valid = user_token(&minter, "user:42", None);
    let (head, sig) = valid.rsplit_once('.').expect("jws");
    let forged = format!(
        "{head}.{}{}",
        if sig.starts_with('A') { "B" } else { "A" },
        &sig[1..]
    );
    let stranger = Minter::with_key(
        IssuerUrl::parse(&up.url).expect("url"),
        SigningKey::generate(Algorithm::RS256).expect("key"),
        Arc::new(SystemClock),
    );
    let untrusted_issuer = Minter::with_key(
        IssuerUrl::parse("https://evil.example").expect("url"),
        SigningKey::generate(Algorithm::RS256).expect("key"),
        Arc::new(SystemClock),
    );
    for (name, token, error) in [
        ("expired", expired, "invalid_request"),
        ("tampered signature", forged, "invalid_request"),
        (
            "signed by a key the upstream never published",
            user_token(&stranger, "user:42", None),
            "invalid_request",
        ),
        (
            "untrusted issuer",
            user_token(&untrusted_issuer, "user:42", None),
            "invalid_request",
        ),
        (
            "a subject act_as does not allow",
            user_token(&minter, "admin:1", None),
            "unauthorized_client",
        ),
        ("not a JWT", "garbage".to_owned(), "invalid_request"),
    ] {
        let (status, body) = exchange(&t, &token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{name}: {body}"
        );
    }
    let r = t
        .post_token(&[("grant_type", EXCHANGE), ("subject_token", &valid)], true)
        .await;
    assert_eq!(r.status(), 400, "subject_token_type is required");
    // A delegation chain already at the depth limit can't grow.
    let deep = Actor::chain(["svc:a", "svc:b", "svc:c", "svc:d"]);
    let too_deep = minter
        .mint(
            &MintRequest::new("user:42", "svctoken")
                .ttl(Duration::from_secs(300))
                .actor(deep.as_ref()),
        )
        .expect("mint")
        .token
        .secret()
        .to_owned();
    let (status, body) = exchange(&t, &too_deep).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // One audit event per request (2 exchanges, 8 refusals); the exchanged user and the
    // nested actor chain are recorded, the subject tokens never are.
    let events = t.audit_events();
    assert_eq!(events.len(), 10);
    let nested = events[1].act.as_ref().expect("act");
    assert_eq!(
        nested.subjects().collect::<Vec<_>>(),
        ["svc:worker", "svc:frontend"]
    );
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains(&valid)
    );
    assert!(
        events[2]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("xpired")),
        "{:?}",
        events[2]
    );
}

/// Revokes the issuer's signing key (its standby takes over) and lets it pick that up.
async fn revoke_signing_key(issuer: &TestIssuer) {
    let issuer = issuer.issuer.clone();
    let kid = issuer.minter().active_key().kid().to_owned();
    tokio::task::spawn_blocking(move || {
        let schedule = issuer.settings().schedule().clone();
        rotation::revoke(
            issuer.keys().store(),
            &schedule,
            &kid,
            SystemClock.unix_secs(),
            &(),
        )
        .expect("revoke");
        issuer.refresh().expect("refresh");
    })
    .await
    .expect("join");
}

/// Unlike Convex, the upstream JWKS cache refetches once on an unknown kid (so an upstream
/// rotation doesn't lock users out for max-age), but at most once a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_jwks_is_refetched_once_on_an_unknown_kid() {
    let up = upstream().await;
    let t = ours(&up).await;
    let minter = up.issuer.minter().clone();
    assert_eq!(
        exchange(&t, &user_token(&minter, "user:1", None)).await.0,
        200
    );
    let endpoint = t.issuer.endpoint();
    let jwks = endpoint.trusted_issuers()[0].jwks();
    assert_eq!(jwks.fetch_count().await, 1);
    assert_eq!(
        exchange(&t, &user_token(&minter, "user:1", None)).await.0,
        200
    );
    assert_eq!(jwks.fetch_count().await, 1, "cached (max-age=300)");

    // The upstream revokes its signing key in an emergency: its standby, already in the
    // cached JWKS, signs at once, and nothing is refetched.
    revoke_signing_key(&up).await;
    assert_eq!(
        exchange(&t, &user_token(&minter, "user:1", None)).await.0,
        200
    );
    assert_eq!(jwks.fetch_count().await, 1, "the standby was cached");
    // Again: now the standby published a moment ago signs, which the cached copy lacks.
    revoke_signing_key(&up).await;
    assert_eq!(
        exchange(&t, &user_token(&minter, "user:1", None)).await.0,
        200,
        "refetched for the new kid"
    );
    assert_eq!(jwks.fetch_count().await, 2);

    // Another unknown kid right after: no second refetch within the minute.
    let stranger = Minter::with_key(
        IssuerUrl::parse(&up.url).expect("url"),
        SigningKey::generate(Algorithm::RS256).expect("key"),
        Arc::new(SystemClock),
    );
    assert_eq!(
        exchange(&t, &user_token(&stranger, "user:1", None)).await.0,
        400
    );
    assert_eq!(jwks.fetch_count().await, 2, "rate limited");
}

#[tokio::test]
async fn clients_over_their_rate_limit_get_429_with_retry_after() {
    let config = format!(
        "[rate_limit]\nburst = 2\nper_minute = 60\n{}",
        worker_client("")
    );
    let t = spawn_issuer(&config, Arc::new(MockClock::at_unix(1_800_000_000))).await;
    t.token(&[]).await;
    t.token(&[]).await;
    let r = t
        .post_token(&[("grant_type", "client_credentials")], true)
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
}
