//! `svctoken-client` against a real issuer: both client authentication methods, discovery,
//! typed OAuth errors, the in-process minter, ten thousand tasks across token expiries, and an
//! issuer outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use svctoken_mint::oauth::ErrorCode;

use svctoken_client::{
    AuthMethod, CacheConfig, ClientCredentials, Endpoint, Error, MinterSource, TokenCache,
};
use svctoken_issuer::store::MemoryStore;
use svctoken_jwks::{Algorithm, Jwks, SigningKey, Validation, Verifier};
use svctoken_mint::SystemClock;
use svctoken_tests::harness::{
    CLIENT_ID, CLIENT_SECRET, TestIssuer, spawn_issuer, spawn_issuer_at, worker_client,
};

fn source(t: &TestIssuer) -> ClientCredentials {
    ClientCredentials::new(Endpoint::Issuer(t.url.clone()), CLIENT_ID, CLIENT_SECRET)
}

#[tokio::test]
async fn client_credentials_with_discovery_both_methods_and_typed_errors() {
    let config = format!(
        "[[audiences]]\nname = \"convex\"\n[[audiences]]\nname = \"reports\"\n{}",
        worker_client("audiences = [\"convex\", \"reports\"]\nscopes = [\"a\", \"b\"]")
    );
    let t = spawn_issuer(&config, Arc::new(SystemClock)).await;

    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        let cache = TokenCache::new(
            source(&t)
                .audience("reports")
                .scope("b")
                .auth_method(method),
        );
        let token = cache.token().await.expect("token");
        let claims = t.verify(token.as_str(), "reports").await;
        assert_eq!(claims["scope"], "b", "{method:?}");
        assert_eq!(claims["sub"], "svc:worker");
    }
    // A token endpoint given directly, without discovery.
    let direct = ClientCredentials::new(
        Endpoint::TokenEndpoint(format!("{}/oauth/token", t.url)),
        CLIENT_ID,
        CLIENT_SECRET,
    )
    .audience("convex");
    TokenCache::new(direct)
        .token()
        .await
        .expect("direct endpoint");

    let wrong = ClientCredentials::new(Endpoint::Issuer(t.url.clone()), CLIENT_ID, "sts_wrong")
        .audience("convex");
    let err = TokenCache::new(wrong).token().await.expect_err("refused");
    assert_eq!(err.oauth_error(), Some(&ErrorCode::InvalidClient));
    assert!(err.is_permanent());
    let err = TokenCache::new(source(&t).audience("billing"))
        .token()
        .await
        .expect_err("refused");
    assert_eq!(err.oauth_error(), Some(&ErrorCode::InvalidTarget), "{err}");
    let err = TokenCache::new(source(&t))
        .token()
        .await
        .expect_err("two audiences, none chosen");
    assert_eq!(err.oauth_error(), Some(&ErrorCode::InvalidRequest), "{err}");

    // Discovery must speak for the issuer asked (mix-up defence).
    let other = ClientCredentials::new(
        Endpoint::Issuer(format!("{}/elsewhere", t.url)),
        CLIENT_ID,
        CLIENT_SECRET,
    );
    assert!(matches!(
        TokenCache::new(other).token().await,
        Err(Error::Protocol(_))
    ));
}

#[tokio::test]
async fn in_process_minter_signs_with_a_key_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::generate(Algorithm::ES256).expect("key");
    let path = dir.path().join("key.pem");
    std::fs::write(
        &path,
        svctoken_jwks::dangerous::export_pkcs8_pem(&key)
            .expect("a key held in memory exports")
            .as_bytes(),
    )
    .expect("write");
    let source =
        MinterSource::from_key_file("https://jobs.example.com", &path, "svc:nightly", "convex")
            .expect("source")
            .ttl(Duration::from_secs(120));
    let cache = TokenCache::new(source);
    let token = cache.token().await.expect("token");
    let jwks = Jwks {
        keys: vec![key.public_jwk().clone()],
    };
    let claims = Verifier::new(&jwks, Validation::new("https://jobs.example.com", "convex"))
        .verify(token.as_str(), std::time::SystemTime::now())
        .expect("valid");
    assert_eq!(claims["sub"], "svc:nightly");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        120
    );
    assert!(
        MinterSource::from_key_file(
            "https://x.example",
            dir.path().join("missing.pem"),
            "s",
            "a"
        )
        .is_err()
    );
}

/// 10,000 tasks share one cache across several token lifetimes: the issuer sees one request
/// per lifetime, and every call gets a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_make_one_issuer_request_per_lifetime() {
    let lifetime = 4.0;
    let t = spawn_issuer(&worker_client("max_ttl = \"4s\""), Arc::new(SystemClock)).await;
    let cache = TokenCache::new(source(&t));
    let run_for = Duration::from_secs(7);
    let deadline = tokio::time::Instant::now() + run_for;
    let tasks: Vec<_> = (0..10_000u64)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                let mut calls = 0u32;
                while tokio::time::Instant::now() < deadline {
                    let token = cache.token().await.expect("every call gets a token");
                    seen.insert(token.as_str().to_owned());
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(100 + i % 200)).await;
                }
                (seen, calls)
            })
        })
        .collect();
    let mut distinct = HashSet::new();
    let mut calls = 0u64;
    for task in tasks {
        let (seen, n) = task.await.expect("task");
        distinct.extend(seen);
        calls += u64::from(n);
    }
    let issued = t.issuer.metrics().tokens_issued();
    // Refresh starts with 25-35 % of the lifetime left: one request at start, then one per
    // 2.6-3.0 s of the 7 s run.
    let most = 1 + (run_for.as_secs_f64() / (lifetime * 0.65)) as u64;
    assert!(calls > 100_000, "{calls} calls");
    assert!(
        (3..=most).contains(&issued),
        "{issued} issuer requests for {calls} calls"
    );
    assert_eq!(issued, cache.fetch_count());
    assert!(
        distinct.len() as u64 >= issued - 1,
        "every fetched token was used"
    );
}

/// With the issuer down, calls keep succeeding on the cached token until it expires, then fail
/// with a transport error; once the issuer is back, they succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_an_issuer_outage() {
    let store = Arc::new(MemoryStore::new());
    let config = worker_client("max_ttl = \"4s\"");
    let t = spawn_issuer_at("127.0.0.1:0", &config, store.clone(), Arc::new(SystemClock)).await;
    let addr = t.addr().to_owned();
    let cache = TokenCache::with_config(
        source(&t),
        CacheConfig {
            max_backoff: Duration::from_millis(300),
            ..CacheConfig::default()
        },
    );
    let first = cache.token().await.expect("token");
    let expires = first.expires_at().expect("expires");
    t.stop().await;

    // Until expiry: the cached token, although every background refresh fails.
    while tokio::time::Instant::now() + Duration::from_millis(100) < expires {
        let token = cache
            .token()
            .await
            .expect("served from cache during the outage");
        assert_eq!(token.as_str(), first.as_str());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep_until(expires).await;
    let err = cache.token().await.expect_err("expired and no issuer");
    assert!(matches!(err, Error::Transport(_)), "{err}");
    assert!(
        err.to_string().contains("onnect"),
        "says what failed: {err}"
    );

    let t = spawn_issuer_at(&addr, &config, store, Arc::new(SystemClock)).await;
    let mut waited = 0;
    let token = loop {
        match cache.token().await {
            Ok(token) => break token,
            Err(_) if waited < 50 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not back after the issuer returned: {e}"),
        }
    };
    assert_ne!(token.as_str(), first.as_str());
    t.verify(token.as_str(), "convex").await;
}
