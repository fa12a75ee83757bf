//! `svctoken-verify` in front of an axum API, against a real issuer: its tokens are accepted
//! (the handler sees the identity, the actor of a delegated token included) across rotations
//! and revocations, and everything else is refused per RFC 6750, always with the right status
//! and `WWW-Authenticate` challenge.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};
use svctoken_issuer::audit::ChangedBy;
use svctoken_issuer::rotation::{self, AuditJournal};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{MockClock, from_unix_secs};
use svctoken_tests::forge;
use svctoken_tests::harness::{TestIssuer, spawn_issuer, worker_client};
use svctoken_verify::{ServiceIdentity, SvctokenAuth};
use tower::ServiceExt as _;

const START: u64 = 1_800_000_000;
const INVALID: &str =
    "Bearer error=\"invalid_token\", error_description=\"the token is not valid\"";

async fn whoami(identity: ServiceIdentity) -> Json<Value> {
    Json(json!({
        "sub": identity.sub,
        "client_id": identity.client_id,
        "scopes": identity.scopes,
        "act": identity.act,
        "team": identity.claims.get("team"),
    }))
}

/// An API for audience `reports` behind the layer configured by `auth`.
fn app(auth: SvctokenAuth) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .layer(auth.layer().expect("valid configuration"))
}

/// The layer's configuration for `t`'s tokens for `reports`, keys found through discovery.
fn auth(t: &TestIssuer, clock: &Arc<MockClock>) -> SvctokenAuth {
    SvctokenAuth::new(&t.url, "reports")
        .http_client(t.http.clone())
        .clock(clock.clone())
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

/// `GET /whoami` with these `Authorization` headers.
async fn call(app: &Router, authorization: &[&str]) -> Answer {
    let mut request = Request::get("/whoami");
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("served");
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body = serde_json::from_slice(&body).expect("a JSON body");
    Answer {
        status,
        challenge,
        body,
    }
}

async fn bearer(app: &Router, token: &str) -> Answer {
    call(app, &[&format!("Bearer {token}")]).await
}

fn assert_ok(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
    assert_eq!(answer.challenge, None, "{what}");
}

fn assert_refused(answer: &Answer, status: StatusCode, challenge: &str, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert_eq!(answer.challenge.as_deref(), Some(challenge), "{what}");
}

async fn issuer(clock: &Arc<MockClock>) -> TestIssuer {
    let config = format!(
        "[[audiences]]\nname = \"convex\"\n[[audiences]]\nname = \"reports\"\n\
         [keys]\nrotation_period = \"6h\"\njwks_max_age = \"5m\"\n{}",
        worker_client(
            "scopes = [\"reports:read\", \"jobs:run\"]\nact_as = [\"user:*\"]\n\
             claims = { team = \"payments\" }\nmax_ttl = \"10m\""
        )
    );
    spawn_issuer(&config, clock.clone()).await
}

/// An issuer on a mock clock, a verifier built for it, and an API behind that verifier (kept
/// apart so a test can count the verifier's fetches).
async fn verified_api() -> (
    Arc<MockClock>,
    TestIssuer,
    svctoken_verify::Authenticator,
    Router,
) {
    let clock = Arc::new(MockClock::at_unix(START));
    let t = issuer(&clock).await;
    let built = auth(&t, &clock).build().expect("valid configuration");
    let api = Router::new()
        .route("/whoami", get(whoami))
        .layer(svctoken_verify::SvctokenAuthLayer::new(built.clone()));
    (clock, t, built, api)
}

async fn refresh(t: &TestIssuer) {
    let issuer = t.issuer.clone();
    tokio::task::spawn_blocking(move || issuer.refresh())
        .await
        .expect("join")
        .expect("lifecycle runs");
}

/// Revokes `kid` as `svctoken keys revoke` does, then lets the running issuer pick it up.
async fn revoke(t: &TestIssuer, kid: &str) {
    let (issuer, kid) = (t.issuer.clone(), kid.to_owned());
    tokio::task::spawn_blocking(move || {
        let schedule = issuer.settings().schedule().clone();
        let journal = AuditJournal::new(issuer.auditor(), ChangedBy::Cli);
        let now = issuer.clock().unix_secs();
        rotation::revoke(issuer.keys().store(), &schedule, &kid, now, &journal).expect("revoke");
        issuer.refresh().expect("refresh");
    })
    .await
    .expect("join");
}

fn kid_of(token: &str) -> String {
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("a JWS");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_real_token_is_accepted_and_the_handler_sees_the_identity() {
    let clock = Arc::new(MockClock::at_unix(START));
    let t = issuer(&clock).await;
    let api = app(auth(&t, &clock).require_scope("reports:read"));

    let token = t
        .token(&[("audience", "reports"), ("scope", "reports:read jobs:run")])
        .await;
    let answer = bearer(&api, &token).await;
    assert_ok(&answer, "a service token");
    assert_eq!(
        answer.body,
        json!({"sub": "svc:worker", "client_id": "worker", "scopes": ["reports:read", "jobs:run"],
               "act": null, "team": "payments"})
    );
    // The scheme is case-insensitive.
    assert_ok(&call(&api, &[&format!("bearer {token}")]).await, "bearer");

    let delegated = t
        .token(&[
            ("audience", "reports"),
            ("scope", "reports:read"),
            ("subject", "user:42"),
        ])
        .await;
    let answer = bearer(&api, &delegated).await;
    assert_ok(&answer, "a delegated token");
    assert_eq!(answer.body["sub"], "user:42");
    assert_eq!(answer.body["client_id"], "worker");
    assert_eq!(answer.body["act"], json!({"sub": "svc:worker"}));

    // A JWKS URL given directly works as well as discovery.
    let direct = app(auth(&t, &clock).jwks_url(t.audience_jwks("reports")));
    assert_ok(&bearer(&direct, &token).await, "JWKS URL given");
}

#[tokio::test]
async fn tokens_are_accepted_across_rotations() {
    let (clock, t, built, api) = verified_api().await;
    // Off the rotation grid, as real verifiers fetch at arbitrary moments.
    clock.advance(Duration::from_secs(150));

    let mut kids = std::collections::HashSet::new();
    let mut previous: Option<String> = None;
    let steps = 14 * 12; // 14 hours in 5-minute steps: two hand-overs.
    for step in 0..steps {
        refresh(&t).await;
        let token = t.token(&[("audience", "reports")]).await;
        kids.insert(kid_of(&token));
        assert_ok(&bearer(&api, &token).await, &format!("step {step}: fresh"));
        if let Some(old) = &previous {
            assert_ok(
                &bearer(&api, old).await,
                &format!("step {step}: 5 minutes old"),
            );
        }
        previous = Some(token);
        clock.advance(Duration::from_secs(300));
    }
    assert!(kids.len() >= 3, "{} signing keys", kids.len());
    // One discovery and about one JWKS fetch per `max-age`: never one per request.
    let fetches = built.jwks().fetch_count().await;
    assert!(fetches <= steps + 2, "{fetches} fetches");
}

#[tokio::test]
async fn a_revoked_keys_tokens_are_refused_once_the_cache_refetches() {
    let (clock, t, built, api) = verified_api().await;

    let first = t.token(&[("audience", "reports")]).await;
    assert_ok(&bearer(&api, &first).await, "before the revocation");
    let fetched = built.jwks().fetch_count().await;

    // The standby that takes over was in the cached JWKS: no refetch needed.
    revoke(&t, &kid_of(&first)).await;
    let second = t.token(&[("audience", "reports")]).await;
    assert_ne!(kid_of(&second), kid_of(&first));
    assert_ok(&bearer(&api, &second).await, "the standby's token");
    // The revoked key's token is still accepted from the cached copy (the documented worst
    // case: the issuer's `jwks_max_age`).
    assert_ok(&bearer(&api, &first).await, "revoked, but cached");
    assert_eq!(built.jwks().fetch_count().await, fetched);

    // Revoking again makes a key the cached copy lacks sign: its first token makes the cache
    // refetch at once, after which the first revoked key is gone too.
    revoke(&t, &kid_of(&second)).await;
    let third = t.token(&[("audience", "reports")]).await;
    assert_ok(
        &bearer(&api, &third).await,
        "a key published after the fetch",
    );
    assert_eq!(built.jwks().fetch_count().await, fetched + 1);
    let answer = bearer(&api, &first).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, INVALID, "revoked key");
    assert_eq!(answer.body["error"], "invalid_token");
    assert_refused(
        &bearer(&api, &second).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "second revoked key",
    );
    // Unknown kids refetch at most once a minute.
    let stranger = SigningKey::generate(Algorithm::ES256).expect("key");
    let forged = forge::signed(
        &stranger,
        &forge::header_of(&stranger),
        &json!({"iss": t.url, "sub": "svc:x", "aud": "reports", "exp": START + 300}),
    );
    assert_refused(
        &bearer(&api, &forged).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "stranger",
    );
    assert_eq!(built.jwks().fetch_count().await, fetched + 1);
    clock.advance(Duration::from_secs(61));
    assert_refused(
        &bearer(&api, &forged).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "stranger",
    );
    assert_eq!(built.jwks().fetch_count().await, fetched + 2);
}

#[tokio::test]
async fn everything_else_is_refused_with_the_rfc_6750_challenge() {
    let clock = Arc::new(MockClock::at_unix(START));
    let t = issuer(&clock).await;
    let api = app(auth(&t, &clock));
    let token = t
        .token(&[("audience", "reports"), ("scope", "reports:read")])
        .await;
    assert_ok(&bearer(&api, &token).await, "the reference token");

    // No token at all: a bare challenge, no error code.
    let none = call(&api, &[]).await;
    assert_refused(&none, StatusCode::UNAUTHORIZED, "Bearer", "no header");
    assert_eq!(none.body["error"], "unauthorized");
    assert_refused(
        &call(&api, &["Basic d29ya2VyOnNlY3JldA=="]).await,
        StatusCode::UNAUTHORIZED,
        "Bearer",
        "another scheme",
    );
    // Two Authorization headers: `invalid_request`, even when both hold the valid token.
    let bearer_header = format!("Bearer {token}");
    assert_refused(
        &call(&api, &[&bearer_header, &bearer_header]).await,
        StatusCode::BAD_REQUEST,
        "Bearer error=\"invalid_request\", error_description=\"the request's authorization is malformed\"",
        "two headers",
    );

    // Wrong audience, wrong issuer.
    let convex = t.token(&[("audience", "convex")]).await;
    assert_refused(
        &bearer(&api, &convex).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "audience",
    );
    let elsewhere = app(SvctokenAuth::new("https://auth.example.com", "reports")
        .jwks_url(format!("{}/.well-known/jwks.json", t.url))
        .http_client(t.http.clone())
        .clock(clock.clone()));
    assert_refused(
        &bearer(&elsewhere, &token).await,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "issuer",
    );

    // Forgeries: `none`, HMAC keyed with the public key, another key (under its own kid and
    // under the issuer's), a tampered payload, junk.
    let jwks = t.jwks(&t.audience_jwks("reports")).await;
    let kid = kid_of(&token);
    let jwk = jwks.find(&kid).expect("the signing key is published");
    let (_, claims) = svctoken_jwks::dangerous::decode_unverified(&token).expect("JWS");
    let mut admin = claims.clone();
    admin.insert("sub".into(), json!("svc:admin"));
    let payload = Value::Object(admin.clone()).to_string();
    let none = format!(
        "{}.",
        forge::signing_input(&json!({"alg": "none", "kid": kid}).to_string(), &payload)
    );
    let hs_input = forge::signing_input(
        &json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string(),
        &payload,
    );
    let public_key = serde_json::to_vec(jwk).expect("JWK JSON");
    let hs = forge::with_signature(&hs_input, &forge::hmac("HS256", &public_key, &hs_input));
    let hs_x = forge::with_signature(
        &hs_input,
        &forge::hmac(
            "HS256",
            jwk.x.as_deref().unwrap_or("").as_bytes(),
            &hs_input,
        ),
    );
    let stranger = SigningKey::generate(Algorithm::ES256).expect("key");
    let own_kid = forge::signed(
        &stranger,
        &forge::header_of(&stranger),
        &Value::Object(admin.clone()),
    );
    let mut header = forge::header_of(&stranger);
    header["kid"] = json!(kid);
    let their_kid = forge::signed(&stranger, &header, &Value::Object(admin));
    let (head, rest) = token.split_once('.').expect("JWS");
    let signature = rest.rsplit_once('.').expect("JWS").1;
    let tampered = format!("{head}.{}.{signature}", forge::b64(&payload));
    for (what, forged) in [
        ("alg none", none.as_str()),
        ("HS256 keyed with the JWK", &hs),
        ("HS256 keyed with x", &hs_x),
        ("another key, its own kid", &own_kid),
        ("another key, the issuer's kid", &their_kid),
        ("tampered payload", &tampered),
        ("junk", "not-a-jwt"),
    ] {
        let answer = bearer(&api, forged).await;
        assert_refused(&answer, StatusCode::UNAUTHORIZED, INVALID, what);
        assert!(
            !answer.body.to_string().contains(forged),
            "{what}: the token is echoed"
        );
    }
    let bad_chars = call(&api, &["Bearer a b"]).await;
    assert_refused(
        &bad_chars,
        StatusCode::UNAUTHORIZED,
        INVALID,
        "not a b64token",
    );

    // A required scope the token lacks: 403 naming the scope.
    let scoped = app(auth(&t, &clock)
        .require_scope("reports:read")
        .require_scope("reports:write"));
    let answer = bearer(&scoped, &token).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        "Bearer error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"reports:read reports:write\"",
        "missing scope",
    );
    assert_eq!(answer.body["error"], "insufficient_scope");

    // A client not allowed.
    let billing_only = app(auth(&t, &clock).allow_clients(["billing"]));
    assert_refused(
        &bearer(&billing_only, &token).await,
        StatusCode::UNAUTHORIZED,
        "Bearer error=\"invalid_token\", error_description=\"the token is not valid for this API\"",
        "client not allowed",
    );
    let worker_allowed = app(auth(&t, &clock).allow_clients(["billing", "worker"]));
    assert_ok(&bearer(&worker_allowed, &token).await, "client allowed");

    // Expired: accepted within the 5 s leeway, refused after it.
    let exp = claims["exp"].as_u64().expect("exp");
    clock.set(from_unix_secs(exp + 4));
    assert_ok(&bearer(&api, &token).await, "within the leeway");
    clock.advance(Duration::from_secs(1));
    let expired = bearer(&api, &token).await;
    assert_refused(
        &expired,
        StatusCode::UNAUTHORIZED,
        "Bearer error=\"invalid_token\", error_description=\"the token has expired\"",
        "expired",
    );
}
