//! Reloading a running issuer's configuration (`Issuer::reload`, what SIGHUP does): clients,
//! audiences and trusted issuers change at once; the replay cache survives (an assertion used
//! before the reload is still refused after it); what only a restart can change is refused and
//! the configuration in use kept; the reload is audited and new clients get their metrics.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use svctoken_issuer::audit::Outcome;
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Clock as _, SystemClock};
use svctoken_tests::harness::{key_client, spawn_issuer, worker_client};

const REPORTER_SECRET: &str = "sts_reporter-secret-for-the-reload-test-0000000";

async fn post(
    t: &svctoken_tests::harness::TestIssuer,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> StatusCode {
    let mut request = t.http.post(format!("{}/oauth/token", t.url)).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.expect("token request").status()
}

fn settings(t: &svctoken_tests::harness::TestIssuer, config: &str) -> Settings {
    let overrides = Overrides {
        issuer: Some(t.url.clone()),
        ..Overrides::default()
    };
    Settings::from_toml(config, &overrides).expect("valid configuration")
}

#[tokio::test]
async fn clients_and_audiences_change_at_once_and_the_replay_cache_survives() {
    let key = SigningKey::generate(Algorithm::ES256).expect("key");
    let signer = key_client("signer", &key, "");
    let before = format!("{}{signer}", worker_client(""));
    let t = spawn_issuer(&before, Arc::new(SystemClock)).await;

    let now = SystemClock.unix_secs();
    let assertion = key
        .sign_jwt(&json!({
            "iss": "signer", "sub": "signer", "aud": t.url,
            "iat": now, "exp": now + 60, "jti": "used-once-across-a-reload",
        }))
        .expect("assertion");
    let with_assertion = [
        ("grant_type", "client_credentials"),
        ("client_id", "signer"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    assert_eq!(post(&t, &with_assertion, None).await, StatusCode::OK);
    let worker = Some((
        svctoken_tests::harness::CLIENT_ID,
        svctoken_tests::harness::CLIENT_SECRET,
    ));
    let plain = [("grant_type", "client_credentials")];
    assert_eq!(post(&t, &plain, worker).await, StatusCode::OK);

    // The worker goes, a reporter with its own audience comes.
    let after = format!(
        "[[audiences]]\nname = \"convex\"\nprofile = \"convex-custom-jwt\"\n\
         [[audiences]]\nname = \"reports\"\nprofile = \"generic\"\n\
         [[clients]]\nid = \"reporter\"\nsecret_sha256 = \"{}\"\naudiences = [\"reports\"]\n{signer}",
        SecretHash::of(REPORTER_SECRET).to_hex()
    );
    let changes = t
        .issuer
        .reload(settings(&t, &after))
        .await
        .expect("reloaded");
    assert!(
        changes.contains("clients: +[reporter] -[worker]"),
        "{changes}"
    );
    assert!(changes.contains("audiences: +[reports]"), "{changes}");

    assert_eq!(post(&t, &plain, worker).await, StatusCode::UNAUTHORIZED);
    let reporter = Some(("reporter", REPORTER_SECRET));
    assert_eq!(post(&t, &plain, reporter).await, StatusCode::OK);
    let jwks = t
        .http
        .get(t.audience_jwks("reports"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(
        jwks.status(),
        StatusCode::OK,
        "the new audience's JWKS is served"
    );
    // The assertion used before the reload stays used.
    assert_eq!(
        post(&t, &with_assertion, None).await,
        StatusCode::UNAUTHORIZED
    );

    let reloaded: Vec<_> = t
        .audit_events()
        .into_iter()
        .filter(|e| e.outcome == Outcome::Reloaded)
        .collect();
    assert_eq!(reloaded.len(), 1);
    assert_eq!(reloaded[0].reason.as_deref(), Some(changes.as_str()));
    let issued = t
        .metric("svctoken_tokens_issued_total{client=\"reporter\"}")
        .await;
    assert_eq!(issued, Some(1.0), "a new client gets its own series");
}

#[tokio::test]
async fn what_only_a_restart_changes_is_refused_and_the_configuration_kept() {
    let t = spawn_issuer(&worker_client(""), Arc::new(SystemClock)).await;
    let changed = format!(
        "[keys]\nrotation_period = \"7d\"\n[audit]\nfail_closed = true\n{}",
        worker_client("")
    );
    let error = t
        .issuer
        .reload(settings(&t, &changed))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("[keys]") && error.contains("restart"),
        "{error}"
    );
    // Still the configuration it started with.
    assert_eq!(
        t.issuer.settings().schedule().rotation_period,
        Settings::from_toml(
            &worker_client(""),
            &Overrides {
                issuer: Some(t.url.clone()),
                ..Overrides::default()
            }
        )
        .expect("settings")
        .schedule()
        .rotation_period
    );
    let worker = Some((
        svctoken_tests::harness::CLIENT_ID,
        svctoken_tests::harness::CLIENT_SECRET,
    ));
    assert_eq!(
        post(&t, &[("grant_type", "client_credentials")], worker).await,
        StatusCode::OK
    );
    assert!(
        t.audit_events()
            .iter()
            .all(|e| e.outcome != Outcome::Reloaded)
    );
}
