//! Tokens fetched over HTTP are accepted by the Convex-faithful verifier for every supported
//! provider type and algorithm, and rejected when Convex would reject them.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use svctoken_issuer::rotation;
use svctoken_mint::MockClock;
use svctoken_tests::convex::{CustomJwtAlgorithm, Provider, Reason};
use svctoken_tests::harness::{TestIssuer, convex_with_clock, spawn_issuer, worker_client};

const START: u64 = 1_800_000_000;

fn config(algorithm: &str, profile: &str) -> String {
    format!(
        "[keys]\nalgorithm = \"{algorithm}\"\n\
         [[audiences]]\nname = \"convex\"\nprofile = \"{profile}\"\n\
         [[audiences]]\nname = \"other\"\nprofile = \"generic\"\n{}",
        worker_client(
            "audiences = [\"convex\", \"other\"]\nscopes = [\"jobs:run\"]\n\
             claims = { team = \"payments\", svc = { tier = 2, tags = [\"a\"] } }"
        )
    )
}

fn provider(t: &TestIssuer, custom: Option<CustomJwtAlgorithm>) -> Provider {
    match custom {
        Some(algorithm) => Provider::CustomJwt {
            issuer: t.url.clone(),
            jwks: t.audience_jwks("convex"),
            algorithm,
            application_id: Some("convex".into()),
        },
        None => Provider::Oidc {
            domain: t.url.clone(),
            application_id: "convex".into(),
        },
    }
}

fn tamper(token: &str) -> String {
    let (rest, sig) = token.rsplit_once('.').expect("three parts");
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
    bytes[0] ^= 0x01;
    format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

async fn accepted_and_rejected_as_convex_would(
    algorithm: &str,
    profile: &str,
    custom: Option<CustomJwtAlgorithm>,
) {
    let clock = Arc::new(MockClock::at_unix(START));
    let t = spawn_issuer(&config(algorithm, profile), clock.clone()).await;
    let convex = convex_with_clock(vec![provider(&t, custom)], clock.clone());

    let token = t.token(&[("audience", "convex")]).await;
    let identity = convex
        .verify(&token)
        .await
        .expect("Convex accepts the token");
    assert_eq!(identity.subject, "svc:worker");
    assert_eq!(identity.issuer, t.url);
    assert_eq!(identity.token_identifier, format!("{}|svc:worker", t.url));
    assert_eq!(identity.fields["client_id"], "worker");
    assert_eq!(identity.fields["scope"], "jobs:run");
    assert_eq!(identity.fields["team"], "payments");
    if custom.is_some() {
        // customJwt flattens nested claims into dotted names.
        assert_eq!(identity.fields["svc.tier"], 2);
        assert_eq!(identity.fields["svc.tags"], json!(["a"]));
    } else {
        assert_eq!(identity.fields["svc"], json!({"tier": 2, "tags": ["a"]}));
    }

    // A token for another audience is not this Convex deployment's.
    let other = t.token(&[("audience", "other")]).await;
    let err = convex.verify(&other).await.expect_err("other audience");
    assert_eq!(err.status(), 401, "{err}");

    // A tampered signature.
    let err = convex.verify(&tamper(&token)).await.expect_err("tampered");
    assert_eq!(err.reason(), &Reason::BadSignature, "{err}");

    // Expired: customJwt allows 5 s of skew, OIDC none.
    clock.advance(Duration::from_secs(300));
    let at_exp = convex.verify(&token).await;
    assert_eq!(at_exp.is_ok(), custom.is_some(), "at exp: {at_exp:?}");
    clock.advance(Duration::from_secs(6));
    let err = convex.verify(&token).await.expect_err("expired");
    assert_eq!(err.reason(), &Reason::Expired, "{err}");
}

#[tokio::test]
async fn custom_jwt_es256() {
    accepted_and_rejected_as_convex_would(
        "ES256",
        "convex-custom-jwt",
        Some(CustomJwtAlgorithm::ES256),
    )
    .await;
}

#[tokio::test]
async fn custom_jwt_rs256() {
    accepted_and_rejected_as_convex_would(
        "RS256",
        "convex-custom-jwt",
        Some(CustomJwtAlgorithm::RS256),
    )
    .await;
}

#[tokio::test]
async fn oidc_rs256() {
    accepted_and_rejected_as_convex_would("RS256", "convex-oidc", None).await;
}

#[tokio::test]
async fn oidc_eddsa() {
    accepted_and_rejected_as_convex_would("EdDSA", "convex-oidc", None).await;
}

/// A revoked key leaves the JWKS at once; verifiers that cached the JWKS keep trusting it for
/// at most `max-age`, then reject its tokens.
#[tokio::test]
async fn revoked_key_is_rejected_after_max_age() {
    let clock = Arc::new(MockClock::at_unix(START));
    let config = format!(
        "[keys]\njwks_max_age = \"2m\"\n{}",
        worker_client("max_ttl = \"1h\"")
    );
    let t = spawn_issuer(&config, clock.clone()).await;
    let convex = convex_with_clock(
        vec![provider(&t, Some(CustomJwtAlgorithm::ES256))],
        clock.clone(),
    );
    let token = t.token(&[]).await;
    convex
        .verify(&token)
        .await
        .expect("accepted before revocation");

    let kid = t.issuer.minter().active_key().kid().to_owned();
    let issuer = t.issuer.clone();
    let schedule = issuer.settings().schedule().clone();
    let revocation = tokio::task::spawn_blocking(move || {
        let out = rotation::revoke(issuer.keys().store(), &schedule, &kid, START, &());
        issuer.refresh().expect("refresh");
        out
    })
    .await
    .expect("join")
    .expect("revoke")
    .revocation;
    assert_eq!(
        revocation.trusted_until,
        START + 120,
        "worst case is max-age"
    );
    assert_ne!(
        t.issuer.minter().active_key().kid(),
        revocation.kid,
        "a new key signs"
    );

    let served = t.jwks(&t.audience_jwks("convex")).await;
    assert!(
        served.find(&revocation.kid).is_none(),
        "gone from the JWKS at once"
    );

    // Within max-age the verifier's cached JWKS still holds the key (the reported worst case).
    clock.advance(Duration::from_secs(60));
    convex
        .verify(&token)
        .await
        .expect("still cached: the documented worst case");
    clock.advance(Duration::from_secs(61));
    let err = convex
        .verify(&token)
        .await
        .expect_err("rejected after max-age");
    assert_eq!(err.reason(), &Reason::KeyNotFound, "{err}");
}

/// With the JWKS embedded as a data: URI Convex never fetches, and still accepts.
#[tokio::test]
async fn data_uri_provider_never_fetches() {
    let clock = Arc::new(MockClock::at_unix(START));
    let t = spawn_issuer(&worker_client(""), clock.clone()).await;
    let published = t.issuer.keys().published();
    let jwks = &published.jwks(Some("convex")).expect("convex jwks").jwks;
    let convex = convex_with_clock(
        vec![Provider::CustomJwt {
            issuer: t.url.clone(),
            jwks: svctoken_jwks::data_uri(jwks),
            algorithm: CustomJwtAlgorithm::ES256,
            application_id: Some("convex".into()),
        }],
        clock,
    );
    convex.verify(&t.token(&[]).await).await.expect("accepted");
    assert_eq!(convex.fetch_count(), 0);
}

/// Custom claims named like OpenID Connect standard claims, with their standard types: a
/// Convex OIDC provider shows them as typed camelCase fields (and drops `amr` and tagged
/// variants); customJwt shows them under their own names, flattened. With another type they
/// could not have been minted: the issuer refuses such a configuration, and a token carrying one
/// anyway (signed with the same key by hand) is refused by the OIDC provider as a whole.
#[tokio::test]
async fn typed_standard_claims_reach_the_identity_and_mistyped_ones_never_do() {
    let clock = Arc::new(MockClock::at_unix(START));
    let standard = "email = \"ada@example.com\", email_verified = true, name = \"Billing\", \
                    \"name#fr\" = \"Facturation\", website = \"https://billing.example\", \
                    address = { formatted = \"1 Main St\", country = \"UK\" }, \
                    updated_at = 1700000000, amr = [\"pwd\"], team = \"payments\"";
    let config = |algorithm: &str, profile: &str, claims: &str| {
        format!(
            "[keys]\nalgorithm = \"{algorithm}\"\n[[audiences]]\nname = \"convex\"\n\
             profile = \"{profile}\"\n{}",
            worker_client(&format!("claims = {{ {claims} }}"))
        )
    };

    let t = spawn_issuer(&config("EdDSA", "convex-oidc", standard), clock.clone()).await;
    let convex = convex_with_clock(vec![provider(&t, None)], clock.clone());
    let token = t.token(&[]).await;
    let identity = convex.verify(&token).await.expect("Convex accepts it");
    assert_eq!(
        serde_json::Value::Object(identity.fields),
        json!({
            "email": "ada@example.com", "emailVerified": true, "name": "Billing",
            "websiteUrl": "https://billing.example", "address": "1 Main St",
            "updatedAt": "2023-11-14T22:13:20+00:00", "client_id": "worker", "team": "payments",
        })
    );

    // Signed by hand with the issuer's own key: Convex can't parse it as an ID token.
    let (_, mut claims) = svctoken_jwks::dangerous::decode_unverified(&token).expect("decodes");
    for (name, value) in svctoken_mint::oidc::mistyped_examples() {
        let original = claims.insert(name.to_owned(), value.clone());
        let forged = t
            .issuer
            .minter()
            .active_key()
            .sign_jwt(&claims)
            .expect("sign");
        let err = convex.verify(&forged).await.expect_err(name);
        assert_eq!(err.reason(), &Reason::IdTokenClaim(name.into()), "{err}");
        assert_eq!((err.status(), err.code()), (401, "InvalidAuthHeader"));
        match original {
            Some(v) => claims.insert(name.to_owned(), v),
            None => claims.remove(name),
        };

        // And the issuer would not have started with it in its configuration.
        let toml = format!("{name} = {value}");
        let refused = svctoken_issuer::settings::Settings::from_toml(
            &config("EdDSA", "convex-oidc", &toml),
            &svctoken_issuer::settings::Overrides::default(),
        )
        .expect_err(name)
        .to_string();
        assert!(
            refused.contains(&format!("claim \"{name}\" must be")),
            "{refused}"
        );
    }
    convex
        .verify(
            &t.issuer
                .minter()
                .active_key()
                .sign_jwt(&claims)
                .expect("sign"),
        )
        .await
        .expect("restored claims are accepted again");
    t.stop().await;

    // customJwt shows the same claims under their own names, flattened.
    let t = spawn_issuer(
        &config("ES256", "convex-custom-jwt", standard),
        clock.clone(),
    )
    .await;
    let convex = convex_with_clock(
        vec![provider(&t, Some(CustomJwtAlgorithm::ES256))],
        clock.clone(),
    );
    let identity = convex
        .verify(&t.token(&[]).await)
        .await
        .expect("Convex accepts it");
    assert_eq!(
        serde_json::Value::Object(identity.fields),
        json!({
            "email": "ada@example.com", "email_verified": true, "name": "Billing",
            "name#fr": "Facturation", "website": "https://billing.example",
            "address.formatted": "1 Main St", "address.country": "UK",
            "updated_at": 1_700_000_000, "amr": ["pwd"], "client_id": "worker",
            "team": "payments",
        })
    );
}
