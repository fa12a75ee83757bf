//! Secretless clients (`private_key_jwt`) and acting on behalf of a user (`subject=`), end to
//! end: every way an assertion can be wrong is refused with `invalid_client`, and Convex sees
//! the user as the subject and the service as the actor.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use svctoken_client::{ClientCredentials, Endpoint, TokenCache};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Clock as _, SystemClock};
use svctoken_tests::harness::{
    CLIENT_ID, CLIENT_SECRET, TestIssuer, key_client, spawn_issuer, worker_client,
};

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn claims(t: &TestIssuer, id: &str, now: u64) -> Value {
    json!({
        "iss": id, "sub": id, "aud": t.url,
        "iat": now, "exp": now + 60, "jti": format!("jti-{now}-{}", next_jti_suffix()),
    })
}

fn next_jti_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn with_assertion(t: &TestIssuer, id: &str, assertion: &str) -> (u16, Value) {
    let r = t
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
            ],
            false,
        )
        .await;
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").is_some();
    let body: Value = r.json().await.expect("json");
    if status == 401 {
        assert!(www, "401 without WWW-Authenticate");
    }
    (status, body)
}

#[tokio::test]
async fn private_key_jwt_accepts_registered_keys_and_refuses_everything_else() {
    // Real time: the client library signs its assertions with the system clock.
    let start = SystemClock.unix_secs();
    let es = SigningKey::generate(Algorithm::ES256).expect("key");
    let rs = SigningKey::generate(Algorithm::RS256).expect("key");
    let ed = SigningKey::generate(Algorithm::EdDSA).expect("key");
    let config = format!(
        "{}{}{}",
        key_client("es", &es, ""),
        key_client("rs", &rs, ""),
        key_client("ed", &ed, "")
    );
    let t = spawn_issuer(&config, Arc::new(SystemClock)).await;

    // Each registered algorithm works, with aud = the issuer identifier.
    for (id, key) in [("es", &es), ("rs", &rs), ("ed", &ed)] {
        let token = key.sign_jwt(&claims(&t, id, start)).expect("sign");
        let (status, body) = with_assertion(&t, id, &token).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
    // The client library's source, end to end.
    let source = ClientCredentials::with_private_key(
        Endpoint::Issuer(t.url.clone()),
        "es",
        SigningKey::from_pkcs8_pem(
            &svctoken_jwks::dangerous::export_pkcs8_pem(&es).expect("a key held in memory exports"),
        )
        .expect("key"),
    );
    TokenCache::new(source)
        .token()
        .await
        .expect("the client's private_key_jwt source works");
    // A token endpoint given directly: the assertion audience (the issuer) must be named.
    let pem =
        svctoken_jwks::dangerous::export_pkcs8_pem(&es).expect("a key held in memory exports");
    let direct = || {
        ClientCredentials::with_private_key(
            Endpoint::TokenEndpoint(format!("{}/oauth/token", t.url)),
            "es",
            SigningKey::from_pkcs8_pem(&pem).expect("key"),
        )
    };
    let err = TokenCache::new(direct())
        .token()
        .await
        .expect_err("no issuer");
    assert!(
        matches!(&err, svctoken_client::Error::Config(m) if m.contains("issuer_identifier")),
        "{err}"
    );
    TokenCache::new(direct().issuer_identifier(t.url.clone()))
        .token()
        .await
        .expect("direct endpoint with the issuer identifier");

    let replayed = es.sign_jwt(&claims(&t, "es", start)).expect("sign");
    assert_eq!(with_assertion(&t, "es", &replayed).await.0, 200);

    let kid = es.kid().to_owned();
    let mut cases: Vec<(&str, String)> = vec![("replayed jti", replayed)];
    let mut c = claims(&t, "es", start);
    c["aud"] = json!("https://elsewhere.example/oauth/token");
    cases.push(("wrong aud", es.sign_jwt(&c).expect("sign")));
    // The audience is this issuer and only this issuer: not the token endpoint URL (which
    // RFC 7523 once allowed), not an array, not an array holding the issuer among others.
    let mut c = claims(&t, "es", start);
    c["aud"] = json!(format!("{}/oauth/token", t.url));
    cases.push(("aud = token endpoint", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start);
    c["aud"] = json!([t.url]);
    cases.push(("aud = [issuer]", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start);
    c["aud"] = json!([t.url, "https://other.example"]);
    cases.push(("aud with two audiences", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start);
    c["exp"] = json!(start as f64 + 60.5);
    cases.push(("fractional exp", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start - 600);
    c["exp"] = json!(start - 10);
    cases.push(("expired", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start);
    c["exp"] = json!(start + 3600);
    cases.push((
        "exp more than 5 minutes ahead",
        es.sign_jwt(&c).expect("sign"),
    ));
    let mut c = claims(&t, "es", start);
    c.as_object_mut().expect("obj").remove("jti");
    cases.push(("no jti", es.sign_jwt(&c).expect("sign")));
    let mut c = claims(&t, "es", start);
    c["sub"] = json!("rs");
    cases.push(("sub is another client", es.sign_jwt(&c).expect("sign")));
    cases.push((
        "signed by another client's key",
        rs.sign_jwt(&claims(&t, "es", start)).expect("sign"),
    ));
    let stranger = SigningKey::generate(Algorithm::ES256).expect("key");
    cases.push((
        "unregistered key",
        stranger.sign_jwt(&claims(&t, "es", start)).expect("sign"),
    ));
    // An RS256 signature presented under the registered ES256 key's kid.
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        b64(&claims(&t, "es", start))
    );
    let sig = rs.sign(input.as_bytes()).expect("sign");
    cases.push((
        "alg other than the registered key's",
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)),
    ));
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": kid})),
        b64(&claims(&t, "es", start))
    );
    cases.push(("alg none", none));
    // HS256 keyed with the registered public key's bytes.
    let x = es.public_jwk().x.clone().expect("x");
    let input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        b64(&claims(&t, "es", start))
    );
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, x.as_bytes()),
        input.as_bytes(),
    );
    cases.push((
        "HMAC with the public key as secret",
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref())),
    ));
    cases.push(("garbage", "not.a.jwt".into()));

    let audited_before = t.audit_events().len();
    let case_count = cases.len();
    let mut failures = Vec::new();
    for (name, assertion) in cases {
        let (status, body) = with_assertion(&t, "es", &assertion).await;
        if status != 401 || body["error"] != "invalid_client" {
            failures.push(format!("{name}: {status} {body}"));
        }
        // The reason stays in the log: the caller learns nothing more.
        if body["error_description"] != "client authentication failed" {
            failures.push(format!("{name}: leaks {body}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    let events = t.audit_events();
    assert_eq!(
        events.len() - audited_before,
        case_count,
        "one audit event per refused assertion"
    );
    let replay = &events[audited_before];
    assert_eq!(
        replay.reason.as_deref(),
        Some("assertion: jti already used (replay)")
    );
    assert_eq!(replay.client_id.as_deref(), Some("es"));

    // A key client can't fall back to a secret.
    let r = t
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "es"),
                ("client_secret", "guess"),
            ],
            false,
        )
        .await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn acting_for_a_user_is_what_the_policy_allows_and_convex_sees_both() {
    let config = format!(
        "{}\n[[clients]]\nid = \"plain\"\nsecret_sha256 = \"{}\"\n",
        worker_client("act_as = [\"user:*\", \"org_42:*\"]\nclaims = { team = \"payments\" }"),
        svctoken_issuer::clients::SecretHash::of("plain-secret").to_hex()
    );
    let t = spawn_issuer(&config, Arc::new(SystemClock)).await;
    let convex = t.convex();

    let source = ClientCredentials::new(Endpoint::Issuer(t.url.clone()), CLIENT_ID, CLIENT_SECRET)
        .subject("user:42");
    let token = TokenCache::new(source)
        .token()
        .await
        .expect("allowed subject");
    let identity = convex
        .verify(token.as_str())
        .await
        .expect("Convex accepts it");
    assert_eq!(identity.subject, "user:42");
    assert_eq!(identity.token_identifier, format!("{}|user:42", t.url));
    assert_eq!(
        identity.fields["act.sub"], "svc:worker",
        "flattened for customJwt"
    );
    assert_eq!(identity.fields["client_id"], "worker");
    assert_eq!(identity.fields["team"], "payments");
    t.token(&[("subject", "org_42:user:7")]).await;

    let refused =
        |status: u16, error: &'static str, form: Vec<(&'static str, &'static str)>, basic: bool| {
            let t = &t;
            async move {
                let r = t.post_token(&form, basic).await;
                assert_eq!(r.status().as_u16(), status, "{form:?}");
                let body: Value = r.json().await.expect("json");
                assert_eq!(body["error"], error, "{form:?}: {body}");
            }
        };
    refused(
        400,
        "unauthorized_client",
        vec![("grant_type", "client_credentials"), ("subject", "admin:1")],
        true,
    )
    .await;
    refused(
        400,
        "unauthorized_client",
        vec![
            ("grant_type", "client_credentials"),
            ("subject", "org_43:user:7"),
        ],
        true,
    )
    .await;
    refused(
        400,
        "invalid_request",
        vec![
            ("grant_type", "client_credentials"),
            ("subject", "user:\u{7}bell"),
        ],
        true,
    )
    .await;
    refused(
        400,
        "unauthorized_client",
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "plain"),
            ("client_secret", "plain-secret"),
            ("subject", "user:42"),
        ],
        false,
    )
    .await;

    // Through the fake deployment: the function sees the user as the subject and the service
    // as the actor, exactly as a Convex function would.
    let fake = svctoken_tests::fake_convex::FakeConvex::start(t.convex()).await;
    fake.function(
        svctoken_tests::fake_convex::Kind::Mutation,
        "notes:addForUser",
        |identity, _| {
            let identity = identity.expect("authenticated");
            svctoken_tests::fake_convex::Outcome::Success(json!({
                "subject": identity.subject,
                "actor": identity.fields["act.sub"],
                "client": identity.fields["client_id"],
            }))
        },
    );
    let source = ClientCredentials::new(Endpoint::Issuer(t.url.clone()), CLIENT_ID, CLIENT_SECRET)
        .subject("user:42");
    let convex =
        svctoken_client::ConvexClient::new(&fake.url, TokenCache::new(source)).expect("client");
    let seen: Value = convex
        .mutation("notes:addForUser", json!({"body": "paid"}))
        .await
        .expect("runs");
    assert_eq!(
        seen,
        json!({"subject": "user:42", "actor": "svc:worker", "client": "worker"})
    );

    // One audit event per request: three grants acting for users, four refusals.
    let events = t.audit_events();
    assert_eq!(events.len(), 7, "{events:#?}");
    let delegated = &events[0];
    assert_eq!(delegated.sub.as_deref(), Some("user:42"));
    assert_eq!(
        delegated.act.as_ref().map(|a| a.sub.as_str()),
        Some("svc:worker")
    );
    let denied = &events[2];
    assert_eq!(denied.error.as_deref(), Some("unauthorized_client"));
    assert_eq!(
        denied.sub.as_deref(),
        Some("admin:1"),
        "the refused subject is recorded"
    );
}
