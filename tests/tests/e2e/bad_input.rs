//! Every malformed or unauthorised token request gets its RFC 6749 error, with the right
//! status, as JSON, never a panic; and the two client authentication methods work.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use svctoken_issuer::clients::SecretHash;
use svctoken_mint::MockClock;
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, TestIssuer, spawn_issuer, worker_client};

const FORM: &str = "application/x-www-form-urlencoded";

async fn setup() -> TestIssuer {
    let config = format!(
        "[[audiences]]\nname = \"convex\"\n[[audiences]]\nname = \"reports\"\n[[audiences]]\nname = \"billing\"\n\
         {}\n[[clients]]\nid = \"lonely\"\nsecret_sha256 = \"{}\"\naudiences = []\n",
        worker_client(
            "audiences = [\"convex\", \"reports\"]\nscopes = [\"jobs:run\", \"jobs:read\"]"
        ),
        SecretHash::of("lonely-secret").to_hex()
    );
    spawn_issuer(&config, Arc::new(MockClock::at_unix(1_800_000_000))).await
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

struct Case {
    name: &'static str,
    content_type: Option<&'static str>,
    authorization: Option<String>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
}

fn case(
    name: &'static str,
    authorization: Option<String>,
    body: &str,
    status: u16,
    error: &'static str,
) -> Case {
    Case {
        name,
        content_type: Some(FORM),
        authorization,
        body: body.as_bytes().to_vec(),
        status,
        error,
    }
}

#[tokio::test]
async fn malformed_requests_get_their_rfc6749_error() {
    let t = setup().await;
    let good = || Some(basic(CLIENT_ID, CLIENT_SECRET));
    let cc = "grant_type=client_credentials";
    let mut cases = vec![
        case(
            "missing grant type",
            good(),
            "audience=convex",
            400,
            "invalid_request",
        ),
        case(
            "unknown grant type",
            good(),
            "grant_type=password&audience=convex",
            400,
            "unsupported_grant_type",
        ),
        case(
            "empty grant type is absent",
            good(),
            "grant_type=&audience=convex",
            400,
            "invalid_request",
        ),
        case(
            "malformed Basic: not base64",
            Some("Basic !!!".into()),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "malformed Basic: no colon",
            Some(format!("Basic {}", STANDARD.encode("worker"))),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "malformed Basic: other scheme",
            Some("Bearer abc".into()),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "malformed Basic: empty id",
            Some(basic("", CLIENT_SECRET)),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "unknown client",
            Some(basic("nobody", CLIENT_SECRET)),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "wrong secret",
            Some(basic(CLIENT_ID, "sts_wrong")),
            cc,
            401,
            "invalid_client",
        ),
        case(
            "wrong secret in body",
            None,
            &format!("{cc}&client_id={CLIENT_ID}&client_secret=nope&audience=convex"),
            401,
            "invalid_client",
        ),
        case(
            "client_id without secret",
            None,
            &format!("{cc}&client_id={CLIENT_ID}"),
            401,
            "invalid_client",
        ),
        case("no client authentication", None, cc, 401, "invalid_client"),
        case(
            "two authentication methods",
            good(),
            &format!("{cc}&client_secret={CLIENT_SECRET}"),
            400,
            "invalid_request",
        ),
        case(
            "audience required for two",
            good(),
            cc,
            400,
            "invalid_request",
        ),
        case(
            "disallowed audience",
            good(),
            &format!("{cc}&audience=billing"),
            400,
            "invalid_target",
        ),
        case(
            "unknown audience",
            good(),
            &format!("{cc}&audience=elsewhere"),
            400,
            "invalid_target",
        ),
        case(
            "disallowed scope",
            good(),
            &format!("{cc}&audience=convex&scope=jobs:run+admin"),
            400,
            "invalid_scope",
        ),
        case(
            "client with no audience",
            Some(basic("lonely", "lonely-secret")),
            cc,
            400,
            "unauthorized_client",
        ),
        case(
            "repeated parameter",
            good(),
            &format!("{cc}&audience=convex&audience=reports"),
            400,
            "invalid_request",
        ),
        case(
            "repeated grant type",
            good(),
            &format!("{cc}&{cc}&audience=convex"),
            400,
            "invalid_request",
        ),
        case(
            "percent-encoded invalid UTF-8",
            good(),
            &format!("{cc}&audience=%FF%FE"),
            400,
            "invalid_request",
        ),
    ];
    cases.push(Case {
        name: "raw invalid UTF-8",
        content_type: Some(FORM),
        authorization: good(),
        body: [
            b"grant_type=client_credentials&audience=".as_slice(),
            &[0xff, 0xfe],
        ]
        .concat(),
        status: 400,
        error: "invalid_request",
    });
    cases.push(Case {
        name: "body over 64 KiB",
        content_type: Some(FORM),
        authorization: good(),
        body: format!("{cc}&audience=convex&pad={}", "a".repeat(64 * 1024)).into_bytes(),
        status: 413,
        error: "invalid_request",
    });
    cases.push(Case {
        name: "JSON instead of a form",
        content_type: Some("application/json"),
        authorization: good(),
        body: br#"{"grant_type":"client_credentials"}"#.to_vec(),
        status: 400,
        error: "invalid_request",
    });
    cases.push(Case {
        name: "no content type",
        content_type: None,
        authorization: good(),
        body: cc.as_bytes().to_vec(),
        status: 400,
        error: "invalid_request",
    });
    cases.push(Case {
        name: "Basic header that decodes to invalid UTF-8",
        content_type: Some(FORM),
        authorization: Some(format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe]))),
        body: cc.as_bytes().to_vec(),
        status: 401,
        error: "invalid_client",
    });

    let expected_errors: Vec<&str> = cases.iter().map(|c| c.error).collect();
    let audited_before = t.audit_events().len();
    let mut failures = Vec::new();
    for c in cases {
        let mut req = t
            .http
            .post(format!("{}/oauth/token", t.url))
            .body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        if let Some(auth) = &c.authorization {
            req = req.header("authorization", auth);
        }
        let response = req.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut problems = Vec::new();
        if status != c.status {
            problems.push(format!("status {status}, want {}", c.status));
        }
        if body["error"] != c.error {
            problems.push(format!("body {text}, want error {}", c.error));
        }
        if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
            problems.push("not application/json".into());
        }
        if headers.get("cache-control").and_then(|v| v.to_str().ok()) != Some("no-store") {
            problems.push("no Cache-Control: no-store".into());
        }
        if status == 401 && headers.get("www-authenticate").is_none() {
            problems.push("401 without WWW-Authenticate".into());
        }
        if text.contains(CLIENT_SECRET) {
            problems.push("the secret is echoed".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", c.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Exactly one audit event per request, each a refusal with its OAuth error; the secret
    // never appears in the trail.
    let events = t.audit_events();
    let refused: Vec<&str> = events[audited_before..]
        .iter()
        .map(|e| e.error.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(refused, expected_errors);
    assert!(
        events[audited_before..]
            .iter()
            .all(|e| e.outcome == svctoken_issuer::audit::Outcome::Refused)
    );
    let trail = serde_json::to_string(&events).expect("json");
    assert!(
        !trail.contains(CLIENT_SECRET),
        "a secret reached the audit trail"
    );
    let wrong_secret = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("wrong secret"))
        .expect("reason kept");
    assert_eq!(wrong_secret.client_id.as_deref(), Some(CLIENT_ID));

    // The server is still healthy after all of that.
    t.token(&[("audience", "convex")]).await;
    let last = t.audit_events().pop().expect("event");
    assert_eq!(last.outcome, svctoken_issuer::audit::Outcome::Issued);
    assert_eq!(last.client_id.as_deref(), Some(CLIENT_ID));
    assert!(last.jti.is_some() && last.kid.is_some() && last.exp.is_some() && last.peer.is_some());
}

#[tokio::test]
async fn both_authentication_methods_and_scope_selection() {
    let t = setup().await;
    // client_secret_post, with a subset of scopes.
    let response = t
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("audience", "reports"),
                ("scope", "jobs:read"),
            ],
            false,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "jobs:read");
    let (_, claims) =
        svctoken_jwks::dangerous::decode_unverified(body["access_token"].as_str().expect("token"))
            .expect("jwt");
    assert_eq!(claims["aud"], "reports");
    assert_eq!(claims["scope"], "jobs:read");

    // client_secret_basic with the default scopes: all of the client's.
    let response = t
        .post_token(
            &[("grant_type", "client_credentials"), ("audience", "convex")],
            true,
        )
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["scope"], "jobs:run jobs:read");
}
