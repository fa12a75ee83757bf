//! The HTTP surface: discovery, JWKS caching headers and conditional requests, per-audience
//! JWKS filtering, health and metrics.

use std::sync::Arc;

use serde_json::Value;
use svctoken_issuer::Issuer;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_issuer::store::FileStore;
use svctoken_mint::MockClock;
use svctoken_tests::harness::{spawn_issuer, spawn_issuer_with, worker_client};

const START: u64 = 1_800_000_000;

#[tokio::test]
async fn discovery_names_what_verifiers_need() {
    let t = spawn_issuer(
        &worker_client("scopes = [\"a\", \"b\"]"),
        Arc::new(MockClock::at_unix(START)),
    )
    .await;
    let response = t
        .http
        .get(format!("{}/.well-known/openid-configuration", t.url))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.expect("json");
    assert_eq!(doc["issuer"], t.url, "byte for byte, no trailing slash");
    assert_eq!(doc["jwks_uri"], format!("{}/.well-known/jwks.json", t.url));
    assert_eq!(doc["token_endpoint"], format!("{}/oauth/token", t.url));
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(doc["scopes_supported"], serde_json::json!(["a", "b"]));
}

#[tokio::test]
async fn jwks_is_cacheable_with_etag_and_answers_304() {
    let t = spawn_issuer(&worker_client(""), Arc::new(MockClock::at_unix(START))).await;
    let url = format!("{}/.well-known/jwks.json", t.url);
    let response = t.http.get(&url).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    // max-age is the configured 5 minutes, which is below the prepare lead (max-age + 5 s).
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let lead = t.issuer.settings().schedule().prepare_lead().as_secs();
    assert!(300 < lead);
    let etag = headers["etag"].to_str().expect("ascii").to_owned();
    let jwks: Value = response.json().await.expect("json");
    // The signing key and its standby.
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));

    let again = t
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    let other = t
        .http
        .get(&url)
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 200);
}

/// A Convex customJwt audience never sees an Ed25519 key, even while the issuer moves from
/// EdDSA to ES256 and both are published; and while the old EdDSA key still signs, the token
/// endpoint refuses to mint for that audience rather than mint what it can't verify.
#[tokio::test]
async fn convex_custom_jwt_audience_gets_only_keys_it_can_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FileStore::open(dir.path()).expect("store"));
    let clock = Arc::new(MockClock::at_unix(START));
    // First life: EdDSA for an OIDC audience.
    let before = Settings::from_toml(
        "[audit]\nfile = \"\"\n[keys]\nalgorithm = \"EdDSA\"\n[[audiences]]\nname = \"convex\"\nprofile = \"convex-oidc\"",
        &Overrides { issuer: Some("http://127.0.0.1:1".into()), ..Default::default() },
    )
    .expect("valid");
    let store2 = store.clone();
    let clock2 = clock.clone();
    tokio::task::spawn_blocking(move || Issuer::open(before, store2, clock2).map(|_| ()))
        .await
        .expect("join")
        .expect("first life");

    // Second life: ES256, the same audience name now customJwt, plus a generic one.
    let config = format!(
        "[[audiences]]\nname = \"convex\"\nprofile = \"convex-custom-jwt\"\n\
         [[audiences]]\nname = \"api\"\nprofile = \"generic\"\n{}",
        worker_client("")
    );
    let t = spawn_issuer_with(&config, store, clock.clone()).await;
    let get = |url: String| {
        let http = t.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("get")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let kty = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kty"].as_str().expect("kty").to_owned())
            .collect()
    };
    let all = get(format!("{}/.well-known/jwks.json", t.url)).await;
    assert_eq!(
        kty(&all),
        ["OKP", "EC"],
        "the old key signs until the new one's lead is over"
    );
    let convex = get(t.audience_jwks("convex")).await;
    assert_eq!(kty(&convex), ["EC"]);
    let api = get(t.audience_jwks("api")).await;
    assert_eq!(kty(&api), ["OKP", "EC"]);
    let missing = t
        .http
        .get(t.audience_jwks("nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);

    let refused = t
        .post_token(
            &[("grant_type", "client_credentials"), ("audience", "convex")],
            true,
        )
        .await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    t.token(&[("audience", "api")]).await;

    clock.advance(t.issuer.settings().schedule().prepare_lead());
    let issuer = t.issuer.clone();
    tokio::task::spawn_blocking(move || issuer.refresh())
        .await
        .expect("join")
        .expect("refresh");
    let token = t.token(&[("audience", "convex")]).await;
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(&token).expect("decodes");
    assert_eq!(header["alg"], "ES256");
}

#[tokio::test]
async fn health_readiness_and_metrics_are_on_the_admin_listener_only() {
    let t = spawn_issuer(&worker_client(""), Arc::new(MockClock::at_unix(START))).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, body) = t.admin_get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let public = t
            .http
            .get(format!("{}{path}", t.url))
            .send()
            .await
            .expect("get");
        assert_eq!(public.status(), 404, "{path} on the public listener");
    }
    for path in ["/nope", "/oauth/token", "/.well-known/jwks.json"] {
        let (status, _) = t.admin_get(path).await;
        assert_eq!(status, 404, "{path} on the admin listener");
    }
    let missing = t
        .http
        .get(format!("{}/nope", t.url))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_token_request_moves_the_issued_counter_and_the_latency_histogram() {
    let t = spawn_issuer(&worker_client(""), Arc::new(MockClock::at_unix(START))).await;
    let issued = "svctoken_tokens_issued_total{client=\"worker\"}";
    let latency = "svctoken_token_request_duration_seconds_count{outcome=\"issued\"}";
    let refused_latency = "svctoken_token_request_duration_seconds_count{outcome=\"refused\"}";
    assert_eq!(t.metric(issued).await, Some(0.0));
    assert_eq!(t.metric(latency).await, Some(0.0));
    t.token(&[]).await;
    assert_eq!(t.metric(issued).await, Some(1.0));
    assert_eq!(t.metric(latency).await, Some(1.0));

    // Refusals count under the configured client, or `unknown` for an id nobody configured.
    let _ = t
        .post_token(&[("grant_type", "client_credentials")], false)
        .await;
    let _ = t
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "mallory-1"),
                ("client_secret", "x"),
            ],
            false,
        )
        .await;
    let _ = t
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "nope")],
            true,
        )
        .await;
    assert_eq!(t.metric(refused_latency).await, Some(3.0));
    assert_eq!(
        t.metric(
            "svctoken_token_requests_refused_total{client=\"unknown\",error=\"invalid_client\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        t.metric(
            "svctoken_token_requests_refused_total{client=\"worker\",error=\"invalid_scope\"}"
        )
        .await,
        Some(1.0)
    );
    let (_, text) = t.admin_get("/metrics").await;
    assert!(
        !text.contains("mallory"),
        "a claimed id adds no series: {text}"
    );

    let _ = t
        .http
        .get(format!("{}/.well-known/jwks.json", t.url))
        .send()
        .await
        .expect("jwks");
    for (series, expected) in [
        ("svctoken_jwks_requests_total{route=\"all\"}", 1.0),
        ("svctoken_jwks_requests_total{route=\"audience\"}", 0.0),
        ("svctoken_published_keys", 2.0),
        ("svctoken_key_standby_present", 1.0),
        ("svctoken_key_can_sign", 1.0),
        ("svctoken_active_key_age_seconds", 0.0),
        ("svctoken_audit_failures_total", 0.0),
    ] {
        assert_eq!(t.metric(series).await, Some(expected), "{series}");
    }
    assert!(
        t.metric("svctoken_audit_batch_size_count").await >= Some(1.0),
        "the fail-closed trail recorded batches"
    );
}

#[tokio::test]
async fn a_key_change_saved_by_a_command_counts_as_by_cli() {
    use svctoken_issuer::audit::{Auditor, ChangedBy};
    use svctoken_issuer::rotation::{AuditJournal, rotate_now};
    use svctoken_issuer::store::{KeyStore, MemoryStore};
    use svctoken_mint::Clock;

    let clock = Arc::new(MockClock::at_unix(START));
    let store = Arc::new(MemoryStore::new());
    let t = spawn_issuer_with(&worker_client(""), store.clone(), clock.clone()).await;
    let timer = "svctoken_key_rotations_total{by=\"timer\"}";
    let cli = "svctoken_key_rotations_total{by=\"cli\"}";
    assert_eq!(t.metric(cli).await, Some(0.0));

    // What `svctoken keys rotate` does from its own process, on the same store.
    clock.advance(std::time::Duration::from_secs(3600));
    let schedule = t.issuer.settings().schedule().clone();
    let command = Auditor::disabled();
    let journal = AuditJournal::new(&command, ChangedBy::Cli);
    let events = rotate_now(
        store.as_ref() as &dyn KeyStore,
        &schedule,
        clock.unix_secs(),
        &journal,
    )
    .expect("rotate");
    assert!(!events.is_empty());
    let issuer = t.issuer.clone();
    tokio::task::spawn_blocking(move || issuer.refresh())
        .await
        .expect("join")
        .expect("refresh");
    // One count per save the command made (a hand-over may be saved in one or two steps, and
    // the issuer's own lifecycle run may notice them between the two): at least one.
    let by_cli = t.metric(cli).await.expect("the by=cli series");
    assert!(
        by_cli >= 1.0,
        "a command's key change counts as by=cli: {by_cli}"
    );
    assert_eq!(
        t.metric(timer).await,
        Some(0.0),
        "the timer changed nothing"
    );
    let (_, text) = t.admin_get("/metrics").await;
    assert!(
        text.contains("svctoken_key_next_activation_seconds"),
        "{text}"
    );
}
