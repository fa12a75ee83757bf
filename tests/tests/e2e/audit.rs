//! `[audit] fail_closed`: a token whose issuance can't be recorded is not handed out; fail-open
//! (the default) hands it out and counts the failure.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use svctoken_issuer::Error;
use svctoken_issuer::Issuer;
use svctoken_issuer::audit::Auditor;
use svctoken_issuer::audit::{AuditEvent, AuditSink};
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_issuer::store::MemoryStore;
use svctoken_mint::MockClock;
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, worker_client};
use tower::ServiceExt as _;

/// A sink whose disk is always full.
struct Broken;

impl AuditSink for Broken {
    fn record(&self, _: &AuditEvent) -> Result<(), Error> {
        Err(Error::AuditStdout(Arc::new(std::io::Error::other(
            "disk full",
        ))))
    }
}

/// One token request to an issuer whose audit sink always fails: the answer, the auditor, and
/// the failures counted before the request (the first key and its standby, made as the issuer
/// opened, could not be recorded either).
async fn token_request(fail_closed: bool) -> (u16, Value, Auditor, u64) {
    let settings = Settings::from_toml(
        &format!("[audit]\nfile = \"\"\n{}", worker_client("")),
        &Overrides {
            issuer: Some("https://auth.example.com".into()),
            ..Overrides::default()
        },
    )
    .expect("valid");
    let auditor = Auditor::new(vec![Box::new(Broken)], fail_closed);
    let issuer = Issuer::open_with_auditor(
        settings,
        Arc::new(MemoryStore::new()),
        Arc::new(MockClock::at_unix(1_800_000_000)),
        auditor.clone(),
    )
    .expect("the issuer opens: a lifecycle change stands when it cannot be recorded");
    let before = auditor.failures();
    let request = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        )))
        .expect("request");
    let response = svctoken_issuer::router(issuer)
        .oneshot(request)
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&body).expect("json"),
        auditor,
        before,
    )
}

#[tokio::test]
async fn fail_closed_withholds_a_token_the_trail_could_not_record() {
    let (status, body, auditor, before) = token_request(true).await;
    assert_eq!(before, 3, "prepared, activated, prepared");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "server_error");
    assert!(body.get("access_token").is_none(), "the token is withheld");
    assert_eq!(auditor.failures() - before, 1);

    let (status, body, auditor, before) = token_request(false).await;
    assert_eq!(status, 200, "fail-open hands the token out: {body}");
    assert!(body["access_token"].is_string());
    // Fail-open answers without waiting for the writer; the failure is counted once it tried.
    auditor.flush().await.expect("the writer runs");
    assert_eq!(auditor.failures() - before, 1, "and counts the failure");
}
