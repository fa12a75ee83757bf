//! An issuer URL with a path (`http://127.0.0.1:PORT/auth`): every route is served under it,
//! discovery and tokens name it, Convex's OIDC discovery (which appends
//! `/.well-known/openid-configuration` to the domain) and customJwt provider both accept its
//! tokens, and nothing answers at the bare host.

use std::sync::Arc;

use serde_json::Value;
use svctoken_mint::SystemClock;
use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, spawn_issuer_under, worker_client};

const CONFIG: &str = "[keys]\nalgorithm = \"RS256\"\n\
     [[audiences]]\nname = \"convex\"\nprofile = \"convex-custom-jwt\"\n\
     [[audiences]]\nname = \"oidc\"\nprofile = \"convex-oidc\"\n";

#[tokio::test]
async fn every_route_lives_under_the_issuer_path() {
    let config = format!(
        "{CONFIG}{}",
        worker_client("audiences = [\"convex\", \"oidc\"]")
    );
    let t = spawn_issuer_under("/auth", &config, Arc::new(SystemClock)).await;
    assert!(t.url.ends_with("/auth"), "{}", t.url);
    let host = t.url.trim_end_matches("/auth").to_owned();

    let doc: Value = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.url))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["issuer"], t.url.as_str());
    assert_eq!(doc["jwks_uri"], format!("{}/.well-known/jwks.json", t.url));
    assert_eq!(doc["token_endpoint"], format!("{}/oauth/token", t.url));
    // Each URL discovery names answers.
    t.jwks(doc["jwks_uri"].as_str().expect("jwks_uri")).await;
    t.jwks(&t.audience_jwks("convex")).await;

    let response = t
        .http
        .post(doc["token_endpoint"].as_str().expect("token_endpoint"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("audience", "convex")])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let token = body["access_token"].as_str().expect("token").to_owned();

    let custom = ConvexAuth::new(vec![Provider::CustomJwt {
        issuer: t.url.clone(),
        jwks: t.audience_jwks("convex"),
        algorithm: CustomJwtAlgorithm::RS256,
        application_id: Some("convex".into()),
    }]);
    let identity = custom.verify(&token).await.expect("customJwt accepts it");
    assert_eq!(identity.issuer, t.url);

    let oidc_token = t.token(&[("audience", "oidc")]).await;
    let oidc = ConvexAuth::new(vec![Provider::Oidc {
        domain: t.url.clone(),
        application_id: "oidc".into(),
    }]);
    oidc.verify(&oidc_token)
        .await
        .expect("Convex's OIDC discovery under the path accepts it");

    // Nothing at the bare host: a proxy that strips the path would break discovery's URLs.
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/audiences/convex/jwks.json",
    ] {
        let status = t
            .http
            .get(format!("{host}{path}"))
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let status = t
        .http
        .post(format!("{host}/oauth/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("post")
        .status();
    assert_eq!(status, 404);
}
