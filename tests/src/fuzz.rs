//! The bodies of the fuzz targets in `fuzz/`, in one place that the corpus replay test
//! (`tests/fuzz_corpus.rs`) calls too, so every input the fuzzer kept, and every crash it found,
//! runs again under `cargo test`.
//!
//! Each function takes one raw input. It must not panic on any input: it panics only when an
//! invariant of the code under test fails, which is a bug in that code. It returns an
//! [`Outcome`]: which path accepted the input, or `None` when it was refused.
//!
//! The keys every target trusts are fixed (`tests/fixtures/fuzz/*.pem`, test keys used
//! nowhere else), and time stands still at [`NOW`], so an input means the same thing on every
//! run: a token signed for [`NOW`] by a fixture key is accepted today and in ten years.
//! `cargo run -p svctoken-tests --example fuzz_seeds` writes seed inputs made with them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use svctoken_client::{Bytes, Float, Int64, MAX_SAFE_INTEGER, encode_args};
use svctoken_issuer::Issuer;
use svctoken_issuer::audit::{
    AuditEvent, AuditSink, Auditor, ChainReport, Outcome as AuditOutcome, StdoutSink, verify_reader,
};
use svctoken_issuer::settings::{Config, Overrides};
use svctoken_issuer::store::MemoryStore;
use svctoken_jwks::{
    Algorithm, DATA_URI_PREFIX, Jwk, Jwks, SigningKey, Validation, Verifier, dangerous, data_uri,
    thumbprint,
};
use svctoken_mint::{Actor, MAX_ACTOR_DEPTH, MockClock, check_subject};
use tower::ServiceExt as _;

/// What a target made of an input: the path that accepted it (for example the algorithm of a
/// verified token), or `None` when it was refused cleanly.
pub type Outcome = Option<&'static str>;

/// The time every target runs at, in unix seconds (2027-01-15).
pub const NOW: u64 = 1_800_000_000;
/// The issuer the `jws` target expects, and the `token_form` target's issuer.
pub const ISSUER: &str = "https://auth.example.com";
/// The audience the `jws` target expects; one of the `token_form` issuer's audiences.
pub const AUDIENCE: &str = "convex";
/// The `token_form` issuer's secret client.
pub const SECRET_CLIENT: &str = "worker";
/// Its secret.
pub const SECRET: &str = "sts_fuzz-secret-for-the-worker-client-0000000000";
/// The `token_form` issuer's `private_key_jwt` client, registered with every fixture key.
pub const KEY_CLIENT: &str = "signer";
/// The upstream issuer the `token_form` issuer trusts for token exchange (its keys are the
/// fixture keys too).
pub const USER_ISSUER: &str = "https://users.example.com";
/// The audience its user tokens carry.
pub const USER_AUDIENCE: &str = "svctoken";

/// The targets, in the order of `fuzz/Cargo.toml`.
pub const TARGETS: [&str; 6] = [
    "jws",
    "jwk",
    "token_form",
    "config",
    "convex_json",
    "audit_chain",
];

/// Runs target `name` on `data`; `None` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> Option<Outcome> {
    let target: fn(&[u8]) -> Outcome = match name {
        "jws" => jws,
        "jwk" => jwk,
        "token_form" => token_form,
        "config" => config,
        "convex_json" => convex_json,
        "audit_chain" => audit_chain,
        _ => return None,
    };
    Some(target(data))
}

/// The fixture keys: ES256, RS256 and EdDSA, in that order.
pub fn fixture_keys() -> &'static [SigningKey; 3] {
    static KEYS: OnceLock<[SigningKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            include_str!("../fixtures/fuzz/es256.pem"),
            include_str!("../fixtures/fuzz/rs256.pem"),
            include_str!("../fixtures/fuzz/eddsa.pem"),
        ]
        .map(|pem| SigningKey::from_pkcs8_pem(pem).expect("the fixture keys are valid PKCS#8"))
    })
}

/// The public halves of [`fixture_keys`].
pub fn fixture_jwks() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| Jwks {
        keys: fixture_keys()
            .iter()
            .map(|key| key.public_jwk().clone())
            .collect(),
    })
}

fn at_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

/// `jws`: a compact JWS through `Verifier::verify` (against the fixture keys, expecting
/// [`ISSUER`] and [`AUDIENCE`] at [`NOW`]) and `dangerous::decode_unverified`, and the claims
/// svctoken reads from a verified token (`sub`, `act`) through their parsers. An input that
/// starts with `{` is also taken as the payload of a token the EdDSA fixture key signs, so
/// the claim checks, which only run behind a valid signature, see fuzzed claims.
///
/// Invariants: a token the verifier accepts decodes to the same claims; its `iss`, `aud`,
/// `exp`, `nbf` and `iat` are what the verifier promises; its `alg` is its key's.
pub fn jws(data: &[u8]) -> Outcome {
    let signed = if data.first() == Some(&b'{') {
        let [_, _, eddsa] = fixture_keys();
        let token = eddsa
            .sign_jwt_json(data)
            .expect("Ed25519 signs any payload");
        verify_token(&token).map(|_| "claims")
    } else {
        None
    };
    let as_token = verify_token(std::str::from_utf8(data).ok()?);
    as_token.or(signed)
}

/// Verifies `token` against the fixture keys and checks what the verifier promises; the
/// algorithm that accepted it.
fn verify_token(token: &str) -> Outcome {
    let decoded = dangerous::decode_unverified(token);
    if let Ok((_, payload)) = &decoded {
        read_claims(payload);
    }
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let verifier =
        VERIFIER.get_or_init(|| Verifier::new(fixture_jwks(), Validation::new(ISSUER, AUDIENCE)));
    let claims = verifier.verify(token, at_now()).ok()?;
    let (header, payload) = decoded.expect("a token the verifier accepts decodes unverified");
    assert_eq!(
        payload, claims,
        "decoding and verifying disagree on the claims"
    );
    assert_eq!(
        claims.get("iss"),
        Some(&json!(ISSUER)),
        "accepted a wrong iss"
    );
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(auds)) => auds.contains(&json!(AUDIENCE)),
        _ => false,
    };
    assert!(audience_ok, "accepted a wrong aud");
    let date = |name: &str| claims.get(name).map(Value::as_f64);
    let now = NOW as f64;
    assert!(
        date("exp").flatten().is_some_and(|exp| exp + 5.0 > now),
        "accepted an expired token"
    );
    for name in ["nbf", "iat"] {
        assert!(
            date(name).is_none_or(|at| at.is_some_and(|at| at <= now + 5.0)),
            "accepted a token with {name} {:?}",
            claims.get(name)
        );
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let key = kid
        .and_then(|kid| fixture_jwks().find(kid))
        .expect("with several keys, only a token naming one by kid is accepted");
    let alg = key.algorithm().expect("fixture keys are valid");
    assert_eq!(
        header.get("alg"),
        Some(&json!(alg.as_str())),
        "accepted an alg that is not its key's"
    );
    Some(alg.as_str())
}

/// What the issuer reads from a verified user token, applied to any claims: `sub` under the
/// subject rules, and `act` as a chain of actors that round-trips.
fn read_claims(claims: &serde_json::Map<String, Value>) {
    if let Some(sub) = claims.get("sub").and_then(Value::as_str)
        && check_subject(sub).is_ok()
    {
        assert!(
            !sub.is_empty() && sub.len() <= 256,
            "check_subject let {sub:?} through"
        );
    }
    let Some(act) = claims.get("act") else {
        return;
    };
    let Ok(actor) = Actor::from_claim(act) else {
        return;
    };
    assert!(
        (1..=MAX_ACTOR_DEPTH).contains(&actor.depth()),
        "an actor chain of depth {}",
        actor.depth()
    );
    assert!(actor.subjects().all(|sub| check_subject(sub).is_ok()));
    let written = serde_json::to_value(&actor).expect("an actor serialises");
    let again = Actor::from_claim(&written).expect("a chain read once reads again");
    assert_eq!(again, actor, "an actor chain does not round-trip");
}

/// `jwk`: the input as a JWKS and as one JWK (`serde_json` into [`Jwks`] and [`Jwk`]), then
/// each key's algorithm, validation and RFC 7638 thumbprint, the `data:` URI of the set, and a
/// verifier over it.
///
/// Invariants: a set or key written again parses to the same value; a valid key has a
/// thumbprint, which ignores `kid`, `alg`, `use` and unknown members; a verifier never uses
/// more keys than are valid.
pub fn jwk(data: &[u8]) -> Outcome {
    let mut outcome = None;
    if let Ok(set) = serde_json::from_slice::<Jwks>(data) {
        let again: Jwks = serde_json::from_str(&set.to_json()).expect("a written JWKS parses");
        assert_eq!(again, set, "a JWKS does not round-trip");
        let uri = data_uri(&set);
        let body = uri.strip_prefix(DATA_URI_PREFIX).expect("the data: prefix");
        let decoded = STANDARD
            .decode(body)
            .expect("a data: URI is standard base64");
        let from_uri: Jwks = serde_json::from_slice(&decoded).expect("a data: URI holds a JWKS");
        assert_eq!(from_uri, set, "a data: URI does not carry the set");
        let valid = set.keys.iter().filter(|key| check_key(key)).count();
        let verifier = Verifier::new(&set, Validation::new(ISSUER, AUDIENCE));
        assert!(
            verifier.key_count() <= valid,
            "the verifier uses an invalid key"
        );
        let convex = set.only(&[Algorithm::ES256, Algorithm::RS256]);
        assert!(
            convex
                .keys
                .iter()
                .all(|key| { key.algorithm().is_ok_and(|alg| alg != Algorithm::EdDSA) })
        );
        outcome = Some("jwks");
    }
    if let Ok(key) = serde_json::from_slice::<Jwk>(data) {
        let written = serde_json::to_string(&key).expect("a JWK serialises");
        let again: Jwk = serde_json::from_str(&written).expect("a written JWK parses");
        assert_eq!(again, key, "a JWK does not round-trip");
        if check_key(&key) {
            outcome = Some(key.algorithm().map_or("jwk", Algorithm::as_str));
        }
    }
    outcome
}

/// Checks one key's algorithm, validation and thumbprint against each other; true if valid.
fn check_key(key: &Jwk) -> bool {
    let algorithm = key.algorithm();
    let valid = key.validate();
    let print = thumbprint(key);
    if let Ok(print) = &print {
        assert_eq!(
            print.len(),
            43,
            "a SHA-256 thumbprint is 43 base64url characters"
        );
        let mut bare = key.clone();
        bare.kid = Some("another kid".into());
        bare.alg = None;
        bare.use_ = None;
        bare.other.clear();
        assert_eq!(
            thumbprint(&bare).ok().as_ref(),
            Some(print),
            "the thumbprint depends on an optional member"
        );
    }
    match valid {
        Ok(alg) => {
            assert_eq!(algorithm.ok(), Some(alg), "validate and algorithm disagree");
            assert!(print.is_ok(), "a valid key without a thumbprint");
            assert!(
                !key.other.contains_key("d"),
                "a private key passed as public"
            );
            true
        }
        Err(_) => false,
    }
}

/// `token_form`: one request to the token endpoint of a real issuer (the `router`, so the
/// extractor reads the headers and the body as for a socket), with a secret client, a
/// `private_key_jwt` client holding the fixture keys, and a trusted upstream issuer whose JWKS
/// (the fixture keys) is served on 127.0.0.1.
///
/// The input is `Content-Type`, a newline, `Authorization`, a newline, then the body; an empty
/// line sends no such header, and a value that is not a valid header value is not sent either
/// (an HTTP server refuses it before any handler runs).
///
/// Invariants: no answer is a server error; a 200 carries a Bearer token that verifies against
/// the issuer's keys for one of its audiences and names a registered client; an error answer
/// carries an RFC 6749 error code; every request leaves exactly one audit event, of the right
/// outcome, whose line holds nothing token-shaped and never the issued token.
pub fn token_form(data: &[u8]) -> Outcome {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let content_type = parts.next().unwrap_or_default();
    let authorization = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut request = axum::http::Request::post("/oauth/token");
    for (name, value) in [
        (axum::http::header::CONTENT_TYPE, content_type),
        (axum::http::header::AUTHORIZATION, authorization),
    ] {
        if let Ok(value) = axum::http::HeaderValue::from_bytes(value)
            && !value.is_empty()
        {
            request = request.header(name, value);
        }
    }
    let request = request
        .body(Body::from(body.to_vec()))
        .expect("a request with checked headers");
    let harness = TokenHarness::get();
    let (status, answer) = harness.runtime.block_on(async {
        let response = harness
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("an answer body is in memory");
        (status, bytes)
    });
    // Key lifecycle events (the key and its standby made at start) are not the request's.
    let events: Vec<_> = (harness.audit.take().into_iter())
        .filter(|(event, _)| event.outcome != svctoken_issuer::audit::Outcome::Lifecycle)
        .collect();
    assert!(
        !status.is_server_error(),
        "answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    let answer: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
    assert_eq!(
        events.len(),
        1,
        "{} audit events for one request",
        events.len()
    );
    let (event, line) = &events[0];
    assert!(
        !has_compact_jose(line),
        "a token-shaped string in the audit line {line}"
    );
    if !status.is_success() {
        assert_eq!(
            event.outcome,
            AuditOutcome::Refused,
            "a refusal audited as {line}"
        );
        let code = answer.get("error").and_then(Value::as_str);
        assert!(
            code.is_some_and(|code| OAUTH_ERRORS.contains(&code)),
            "an error answer without an RFC 6749 code: {answer}"
        );
        return None;
    }
    assert_eq!(
        event.outcome,
        AuditOutcome::Issued,
        "an issuance audited as {line}"
    );
    assert_eq!(answer.get("token_type"), Some(&json!("Bearer")));
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .expect("a 200 carries an access token");
    assert!(
        !line.contains(token),
        "the issued token is in the audit trail"
    );
    let claims = harness
        .issued
        .verify(token, at_now())
        .expect("an issued token verifies against the issuer's keys");
    let client = claims.get("client_id").and_then(Value::as_str);
    assert_eq!(client, event.client_id.as_deref(), "audited another client");
    let acting = claims.contains_key("act");
    if answer.get("issued_token_type").is_some() {
        assert!(acting, "an exchanged token without act");
        return Some("exchange");
    }
    match (client, acting) {
        (Some(SECRET_CLIENT), false) => Some("secret"),
        (Some(SECRET_CLIENT), true) => Some("secret, acting for a user"),
        (Some(KEY_CLIENT), false) => Some("assertion"),
        (Some(KEY_CLIENT), true) => Some("assertion, acting for a user"),
        (other, _) => panic!("a token issued to {other:?}, which is not a registered client"),
    }
}

/// The error codes of RFC 6749 section 5.2 and RFC 8693 section 2.2.2.
const OAUTH_ERRORS: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

/// Whether `text` holds a compact JWS or JWE: `eyJ` and base64url, then at least two more
/// `.`-separated base64url segments (what the audit trail promises to redact).
fn has_compact_jose(text: &str) -> bool {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices("eyJ").any(|(start, _)| {
        let rest = text.get(start..).unwrap_or_default();
        let first = rest.trim_start_matches(b64);
        let Some(second) = first.strip_prefix('.') else {
            return false;
        };
        second.trim_start_matches(b64).starts_with('.')
    })
}

/// The issuer the `token_form` target talks to, built once per process.
struct TokenHarness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    /// Verifies what the issuer issues, for any of its audiences.
    issued: Verifier,
    audit: Arc<AuditCapture>,
}

impl TokenHarness {
    fn get() -> &'static TokenHarness {
        static HARNESS: OnceLock<TokenHarness> = OnceLock::new();
        HARNESS.get_or_init(TokenHarness::new)
    }

    fn new() -> TokenHarness {
        let jwks_uri = serve_fixture_jwks();
        let secret_hash = svctoken_issuer::clients::SecretHash::of(SECRET).to_hex();
        let keys = svctoken_issuer::clients::jwks_toml_line(&fixture_jwks().keys);
        let config = format!(
            r#"issuer = "{ISSUER}"
[audit]
file = ""
[[audiences]]
name = "{AUDIENCE}"
[[audiences]]
name = "api"
profile = "generic"
[[clients]]
id = "{SECRET_CLIENT}"
secret_sha256 = "{secret_hash}"
scopes = ["read", "write"]
act_as = ["user:*"]
claims = {{ team = "payments" }}
[[clients]]
id = "{KEY_CLIENT}"
{keys}act_as = ["user:*", "org:*"]
audiences = ["api"]
max_ttl = "10m"
[[trusted_issuers]]
issuer = "{USER_ISSUER}"
jwks_uri = "{jwks_uri}"
audience = "{USER_AUDIENCE}"
"#
        );
        let settings = Config::from_toml(&config)
            .and_then(|config| config.validate(&Overrides::default()))
            .expect("the token_form configuration is valid");
        let audit = Arc::new(AuditCapture::default());
        // Fail closed: `Issuer::token` returns only once its event is recorded, so the event
        // of each request is in `audit` when its answer is.
        let auditor = Auditor::new(vec![Box::new(Arc::clone(&audit))], true);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let issuer = {
            let _entered = runtime.enter();
            Issuer::open_with_auditor(
                settings,
                Arc::new(MemoryStore::new()),
                Arc::new(MockClock::at_unix(NOW)),
                auditor,
            )
            .expect("the issuer opens")
        };
        let published = issuer.keys().published();
        let validation = Validation::new(ISSUER, AUDIENCE).or_audience("api");
        let issued = Verifier::new(&published.all.jwks, validation);
        TokenHarness {
            router: svctoken_issuer::router(issuer),
            runtime,
            issued,
            audit,
        }
    }
}

/// Serves the fixture JWKS on 127.0.0.1 (fresh for a day) from a thread of its own; its URL.
fn serve_fixture_jwks() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("a bound address");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let body = fixture_jwks().to_json();
    std::thread::Builder::new()
        .name("fuzz-jwks".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let app = axum::Router::new().route(
                    "/jwks.json",
                    axum::routing::get(move || async move {
                        (
                            [
                                (axum::http::header::CONTENT_TYPE, "application/json"),
                                (axum::http::header::CACHE_CONTROL, "max-age=86400"),
                            ],
                            body,
                        )
                    }),
                );
                axum::serve(listener, app).await.expect("serve the JWKS");
            });
        })
        .expect("spawn the JWKS thread");
    format!("http://{addr}/jwks.json")
}

/// An audit sink that keeps each event with its line as the trail writes it, until taken.
#[derive(Default)]
struct AuditCapture(Mutex<Vec<(AuditEvent, String)>>);

impl AuditCapture {
    fn take(&self) -> Vec<(AuditEvent, String)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AuditSink for AuditCapture {
    fn record(&self, event: &AuditEvent) -> Result<(), svctoken_issuer::Error> {
        let line = StdoutSink::format_line(event)?;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((event.clone(), line));
        Ok(())
    }
}

/// `config`: the input as the TOML configuration file (`Config::from_toml`), then validated
/// (`Config::validate`) without overrides.
///
/// Invariants: validated settings keep the promises of `docs/configuration.md`: an issuer
/// without a trailing slash, at least one audience, unique and unpadded, each client's
/// audiences among them, each client's `max_ttl` between 1 s and 24 h, and a schedule whose
/// rotation period is at least twice the JWKS max-age plus 5 s and whose durations can be added
/// to dates.
pub fn config(data: &[u8]) -> Outcome {
    let text = std::str::from_utf8(data).ok()?;
    let settings = Config::from_toml(text)
        .ok()?
        .validate(&Overrides::default())
        .ok()?;
    let issuer = settings.issuer().as_str();
    assert!(
        !issuer.ends_with('/'),
        "issuer {issuer:?} ends with a slash"
    );
    assert!(issuer.starts_with("http://") || issuer.starts_with("https://"));
    let names: BTreeSet<&str> = settings
        .audiences()
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(!names.is_empty(), "no audience");
    assert_eq!(names.len(), settings.audiences().len(), "an audience twice");
    assert!(
        names
            .iter()
            .all(|name| !name.is_empty() && name.trim() == *name)
    );
    for client in settings.clients().iter() {
        assert!(
            client.audiences.iter().all(|a| names.contains(a.as_str())),
            "client {:?} names an unknown audience",
            client.id
        );
        assert!(
            (Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&client.max_ttl)
        );
    }
    let schedule = settings.schedule();
    let lead = schedule.jwks_max_age.checked_add(Duration::from_secs(5));
    assert!(
        lead.and_then(|lead| lead.checked_mul(2))
            .is_some_and(|twice| schedule.rotation_period >= twice),
        "rotation_period {:?} is under twice jwks_max_age {:?} + 5s",
        schedule.rotation_period,
        schedule.jwks_max_age
    );
    // The key lifecycle adds these to the current time: they must fit, for centuries to come.
    let horizon = [
        schedule.rotation_period,
        schedule.jwks_max_age,
        schedule.max_token_lifetime,
    ]
    .iter()
    .try_fold(NOW * 2, |at, d| at.checked_add(d.as_secs().checked_add(5)?));
    assert!(
        horizon.is_some(),
        "a schedule beyond any date: {schedule:?}"
    );
    for audience in settings.audiences() {
        assert!(audience.check_algorithm(schedule.algorithm).is_ok());
    }
    Some(if settings.clients().iter().next().is_some() {
        "valid, with clients"
    } else {
        "valid"
    })
}

/// `convex_json`: Convex's encoded JSON. The input's first bytes as an [`Int64`], a [`Float`]
/// and [`Bytes`]; the input as JSON through `encode_args` and as an `int64` field.
///
/// Invariants: each encoding decodes to the exact value (bit for bit for floats); arguments
/// `encode_args` accepts are returned unchanged, read back the same from the JSON text they
/// are sent as, form an object, and use `$` only in the three
/// encodings; what it refuses is not an object, or has a `$` field name or an integer beyond
/// 2^53 - 1; an `int64` field that reads a value writes and reads it again unchanged.
pub fn convex_json(data: &[u8]) -> Outcome {
    if let Some(first) = data.first_chunk::<8>() {
        let int = i64::from_le_bytes(*first);
        let written = serde_json::to_value(Int64(int)).expect("an Int64 serialises");
        assert_eq!(
            read_int64(&written),
            Some(int),
            "Int64 {int} does not round-trip"
        );
        let float = f64::from_le_bytes(*first);
        let written = serde_json::to_value(Float(float)).expect("a Float serialises");
        let back = match &written {
            Value::Number(n) => n.as_f64(),
            Value::Object(map) => encoded(map, "$float")
                .and_then(|bytes| bytes.try_into().ok())
                .map(f64::from_le_bytes),
            _ => None,
        };
        assert_eq!(
            back.map(f64::to_bits),
            Some(float.to_bits()),
            "Float {float:?} does not round-trip: {written}"
        );
        let args = encode_args(&json!({"int": Int64(int), "float": Float(float)}));
        assert!(args.is_ok(), "encoded values refused: {args:?}");
    }
    let written = serde_json::to_value(Bytes(data.to_vec())).expect("Bytes serialise");
    let back = written.as_object().and_then(|map| encoded(map, "$bytes"));
    assert_eq!(back.as_deref(), Some(data), "Bytes do not round-trip");

    let value: Value = serde_json::from_slice(data).ok()?;
    if let Some(int) = read_int64(&value) {
        let written = serde_json::to_value(IntField { v: int }).expect("an int64 field");
        let again: IntField = serde_json::from_value(written).expect("an int64 field reads");
        assert_eq!(again.v, int, "an int64 field does not round-trip");
    }
    if value.as_i64().is_some() {
        assert_eq!(
            read_int64(&value),
            value.as_i64(),
            "an int64 field misreads {value}"
        );
    }
    match encode_args(&value) {
        Ok(encoded) => {
            assert_eq!(encoded, value, "encode_args changed its arguments");
            let text = serde_json::to_string(&encoded).expect("arguments serialise");
            let sent: Value = serde_json::from_str(&text).expect("arguments as sent parse");
            assert_eq!(
                sent, encoded,
                "arguments change on the way to JSON text and back"
            );
            assert!(value.is_object(), "arguments that are not an object");
            assert!(
                dollars_only_in_encodings(&value),
                "a reserved field name: {value}"
            );
            assert!(!has_unsafe_integer(&value), "an unsafe integer: {value}");
            Some("args")
        }
        Err(_) => {
            assert!(
                !value.is_object() || has_dollar_name(&value) || has_unsafe_integer(&value),
                "refused valid arguments {value}"
            );
            None
        }
    }
}

/// A struct with an `int64` field, as a caller declares one.
#[derive(Serialize, Deserialize)]
struct IntField {
    #[serde(with = "svctoken_client::int64")]
    v: i64,
}

fn read_int64(value: &Value) -> Option<i64> {
    serde_json::from_value::<IntField>(json!({ "v": value }))
        .ok()
        .map(|field| field.v)
}

/// The bytes of `{key: "<standard base64>"}`, the only member of `map`.
fn encoded(map: &serde_json::Map<String, Value>, key: &str) -> Option<Vec<u8>> {
    if map.len() != 1 {
        return None;
    }
    STANDARD.decode(map.get(key)?.as_str()?).ok()
}

fn has_dollar_name(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(has_dollar_name),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_dollar_name(v)),
        _ => false,
    }
}

/// True if every `$` field name is the only member of its object, one of the three encodings
/// with a string of the right length.
fn dollars_only_in_encodings(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(dollars_only_in_encodings),
        Value::Object(map) => {
            let encoding = ["$integer", "$float", "$bytes"].iter().any(|key| {
                encoded(map, key).is_some_and(|bytes| *key == "$bytes" || bytes.len() == 8)
            });
            encoding
                || map
                    .iter()
                    .all(|(k, v)| !k.starts_with('$') && dollars_only_in_encodings(v))
        }
        _ => true,
    }
}

fn has_unsafe_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(i64::unsigned_abs)
            .or(n.as_u64())
            .is_some_and(|x| x > MAX_SAFE_INTEGER),
        Value::Array(items) => items.iter().any(has_unsafe_integer),
        Value::Object(map) => map.values().any(has_unsafe_integer),
        _ => false,
    }
}

/// `audit_chain`: the input as the contents of a hash-chained audit file, through
/// `verify_reader` without an anchor, then against the anchor it reported.
///
/// Invariants, checked independently of the verifier: an accepted file is empty or ends with
/// a newline, each of its lines is a JSON object whose `seq` is its line number and whose
/// `prev` is the SHA-256 of the line before (64 zeros for line 1), and the report names its
/// line count and the hash of its last line; it verifies again against that report, and
/// against one claiming a line more it breaks at that line. A file refused at line `k` has at
/// least `k - 1` lines, and its first `k - 1` lines verify on their own.
pub fn audit_chain(data: &[u8]) -> Outcome {
    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    match verify_reader(data, None) {
        Ok(report) => {
            assert!(
                data.is_empty() || data.ends_with(b"\n"),
                "a torn last line passed"
            );
            assert_eq!(report.lines, lines.len() as u64, "wrong line count");
            let mut prev = "0".repeat(64);
            for (i, line) in lines.iter().enumerate() {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let text = std::str::from_utf8(line).expect("an accepted line is UTF-8");
                // Any JSON object (its other members unread, but checked against the grammar).
                let object: HashMap<String, IgnoredAny> =
                    serde_json::from_str(text).expect("an accepted line is a JSON object");
                let link: LinkFields =
                    serde_json::from_str(text).expect("an accepted line has seq and prev");
                assert!(object.contains_key("seq") && object.contains_key("prev"));
                assert_eq!(link.seq, json!(i + 1), "line {} has a wrong seq", i + 1);
                assert_eq!(link.prev, json!(prev), "line {} breaks the chain", i + 1);
                prev = sha256_hex(line);
            }
            assert_eq!(report.head, prev, "wrong head");
            assert_eq!(
                verify_reader(data, Some(&report)).as_ref(),
                Ok(&report),
                "refused against its own report"
            );
            let longer = ChainReport {
                lines: report.lines + 1,
                head: report.head.clone(),
            };
            let broken = verify_reader(data, Some(&longer)).expect_err("a missing line passed");
            assert_eq!(broken.line, report.lines + 1, "{broken}");
            Some(if report.lines == 0 { "empty" } else { "chain" })
        }
        Err(broken) => {
            let line = usize::try_from(broken.line).expect("a line number fits");
            assert!(line >= 1, "a break outside any line in memory: {broken}");
            assert!(line <= lines.len(), "a break after the end: {broken}");
            let prefix: usize = lines.iter().take(line - 1).map(|l| l.len()).sum();
            let head = verify_reader(&data[..prefix], None)
                .unwrap_or_else(|e| panic!("the lines before {broken} do not verify: {e}"));
            assert_eq!(head.lines, broken.line - 1, "{broken}");
            None
        }
    }
}

/// The two members of an audit line that chain it, as any JSON values.
#[derive(Deserialize)]
struct LinkFields {
    seq: Value,
    prev: Value,
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A compact JWS of `claims` signed by fixture key `key` (with its `kid`), for seeds.
pub fn sign(key: &SigningKey, claims: &Value) -> String {
    key.sign_jwt(claims).expect("a fixture key signs")
}

/// `header.payload.signature` with the signature of another message: a well-formed token that
/// must be refused, for seeds.
pub fn forge(header: &Value, claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}
