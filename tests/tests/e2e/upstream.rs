//! A trusted issuer's JWKS endpoint down or slow, during token exchange: the wait is bounded by
//! `UPSTREAM_FETCH_TIMEOUT` (measured here, with a generous margin), the refusal is a
//! `temporarily_unavailable` 503 with `Retry-After` that says the upstream keys were
//! unavailable, and cached keys keep serving while the endpoint is down.
//!
//! The upstream is a local server on 127.0.0.1 whose behaviour the test switches: serve the
//! JWKS, answer 503, answer only after a delay, or accept the connection and never answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use svctoken_issuer::oauth::{FETCH_RETRY_AFTER, UPSTREAM_FETCH_TIMEOUT};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{IssuerUrl, MintRequest, Minter, SystemClock};
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, TestIssuer, spawn_issuer, worker_client};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Added to the bound for scheduling on a busy 2-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// Under this, a request did not wait for a fetch: half the bound.
const NO_WAIT: Duration = Duration::from_millis(UPSTREAM_FETCH_TIMEOUT.as_millis() as u64 / 2);

/// How the stub upstream answers `GET /jwks.json`.
#[derive(Clone, Copy)]
enum Mode {
    /// The JWKS, with `Cache-Control: max-age=<seconds>`.
    Serve(u64),
    /// 503, at once.
    Down,
    /// The JWKS, after this delay.
    Slow(Duration),
    /// Never.
    Hang,
}

#[derive(Clone)]
struct Upstream {
    url: String,
    mode: Arc<Mutex<Mode>>,
    /// The public half of the key it signs user tokens with.
    jwk: Arc<svctoken_jwks::Jwk>,
    /// Signs user tokens with that key.
    minter: Minter,
}

impl Upstream {
    async fn start(mode: Mode) -> Upstream {
        let key = SigningKey::generate(Algorithm::ES256).expect("key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let jwk = Arc::new(key.public_jwk().clone());
        let upstream = Upstream {
            minter: minter(&url, key),
            url,
            mode: Arc::new(Mutex::new(mode)),
            jwk,
        };
        let app = axum::Router::new()
            .route("/jwks.json", axum::routing::get(jwks))
            .with_state(upstream.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        upstream
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    /// A user token signed with its key.
    fn user_token(&self) -> String {
        user_token(&self.minter)
    }

    /// Our issuer, trusting this upstream.
    async fn issuer(&self) -> TestIssuer {
        let config = format!(
            "[[trusted_issuers]]\nissuer = \"{u}\"\njwks_uri = \"{u}/jwks.json\"\naudience = \"svctoken\"\n{}",
            worker_client("act_as = [\"user:*\"]"),
            u = self.url
        );
        spawn_issuer(&config, Arc::new(SystemClock)).await
    }
}

/// A minter signing as the upstream at `url` with `key`.
fn minter(url: &str, key: SigningKey) -> Minter {
    Minter::with_key(
        IssuerUrl::parse(url).expect("url"),
        key,
        Arc::new(SystemClock),
    )
}

fn user_token(minter: &Minter) -> String {
    minter
        .mint(&MintRequest::new("user:7", "svctoken").ttl(Duration::from_secs(300)))
        .expect("mint")
        .token
        .secret()
        .to_owned()
}

async fn jwks(State(upstream): State<Upstream>) -> Response {
    let mode = *upstream.mode.lock().expect("mode");
    let body = json!({"keys": [*upstream.jwk]}).to_string();
    let serve = |max_age: u64| {
        (
            [
                ("content-type", "application/json".to_owned()),
                ("cache-control", format!("max-age={max_age}")),
            ],
            body.clone(),
        )
            .into_response()
    };
    match mode {
        Mode::Serve(max_age) => serve(max_age),
        Mode::Down => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            serve(300)
        }
        Mode::Hang => std::future::pending().await,
    }
}

/// An exchange's status, body, `Retry-After`, and how long it took.
type Answer = (u16, Value, Option<String>, Duration);

/// Exchanges `subject_token` as the worker client.
async fn exchange(t: &TestIssuer, subject_token: &str) -> Answer {
    exchange_at(t.http.clone(), t.url.clone(), subject_token.to_owned()).await
}

async fn exchange_at(http: reqwest::Client, url: String, subject_token: String) -> Answer {
    let started = Instant::now();
    let r = http
        .post(format!("{url}/oauth/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &subject_token),
            ("subject_token_type", JWT),
        ])
        .send()
        .await
        .expect("token request");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = r.json().await.expect("json");
    (status, body, retry_after, started.elapsed())
}

fn assert_keys_unavailable(status: u16, body: &Value, retry_after: Option<&str>) {
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.contains("could not be fetched"),
        "{description}"
    );
    assert_eq!(
        retry_after,
        Some(FETCH_RETRY_AFTER.as_secs().to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_costs_each_request_one_bounded_wait() {
    assert!(
        UPSTREAM_FETCH_TIMEOUT <= Duration::from_secs(3),
        "well under a client's 10 s"
    );
    let up = Upstream::start(Mode::Hang).await;
    let t = up.issuer().await;
    let token = up.user_token();

    // Eight requests at once: one fetch, the others wait for it, none waits for its own.
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        requests.spawn(exchange_at(t.http.clone(), t.url.clone(), token.clone()));
    }
    let answers = requests.join_all().await;
    for (status, body, retry_after, took) in &answers {
        assert_keys_unavailable(*status, body, retry_after.as_deref());
        assert!(
            *took <= UPSTREAM_FETCH_TIMEOUT + MARGIN,
            "waited {took:?}, bound {UPSTREAM_FETCH_TIMEOUT:?}"
        );
    }
    let longest = answers.iter().map(|a| a.3).max().expect("answers");
    assert!(
        longest >= UPSTREAM_FETCH_TIMEOUT - Duration::from_millis(100),
        "the fetch was given its full time: {longest:?}"
    );
    let endpoint = t.issuer.endpoint();
    let jwks = endpoint.trusted_issuers()[0].jwks();
    assert_eq!(jwks.fetch_count().await, 1, "one fetch for all eight");

    // Right after a failure, requests are refused at once instead of waiting again.
    let (status, body, retry_after, took) = exchange(&t, &token).await;
    assert_keys_unavailable(status, &body, retry_after.as_deref());
    assert!(took < NO_WAIT, "{took:?}");
    assert_eq!(jwks.fetch_count().await, 1);

    // The refusal is recorded as what it is.
    let event = t.audit_events().pop().expect("event");
    assert_eq!(event.error.as_deref(), Some("temporarily_unavailable"));
    assert!(
        event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("keys could not be fetched")),
        "{event:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_is_given_up_on_after_the_bound_then_recovers() {
    let up = Upstream::start(Mode::Slow(Duration::from_secs(6))).await;
    let t = up.issuer().await;
    let token = up.user_token();
    let (status, body, retry_after, took) = exchange(&t, &token).await;
    assert_keys_unavailable(status, &body, retry_after.as_deref());
    assert!(
        took >= UPSTREAM_FETCH_TIMEOUT - Duration::from_millis(100)
            && took <= UPSTREAM_FETCH_TIMEOUT + MARGIN,
        "{took:?}"
    );

    // Once it answers in time again, and the retry delay has passed, exchanges go through.
    up.set(Mode::Serve(300));
    tokio::time::sleep(FETCH_RETRY_AFTER).await;
    let (status, body, _, _) = exchange(&t, &token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_serve_while_the_upstream_is_down() {
    let up = Upstream::start(Mode::Serve(300)).await;
    let t = up.issuer().await;
    let token = up.user_token();
    let endpoint = t.issuer.endpoint();
    let jwks = endpoint.trusted_issuers()[0].jwks();
    assert_eq!(exchange(&t, &token).await.0, 200);
    assert_eq!(jwks.fetch_count().await, 1);

    // Within max-age, an upstream that answers 503 or never answers is never asked.
    for mode in [Mode::Down, Mode::Hang] {
        up.set(mode);
        let (status, body, _, took) = exchange(&t, &token).await;
        assert_eq!(status, 200, "{body}");
        assert!(took < NO_WAIT, "{took:?}");
    }
    assert_eq!(jwks.fetch_count().await, 1, "served from the cache");

    // A kid the cache lacks, while the upstream is down: the upstream might have published it,
    // so that is its keys being unavailable, not a bad token.
    up.set(Mode::Down);
    let newcomer = minter(
        &up.url,
        SigningKey::generate(Algorithm::ES256).expect("key"),
    );
    let (status, body, retry_after, _) = exchange(&t, &user_token(&newcomer)).await;
    assert_keys_unavailable(status, &body, retry_after.as_deref());
    assert_eq!(
        jwks.fetch_count().await,
        2,
        "one refetch for the unknown kid"
    );
    // The cached keys still serve the known kid meanwhile.
    assert_eq!(exchange(&t, &token).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_copy_serves_when_the_refresh_fails_and_the_wait_stays_bounded() {
    let up = Upstream::start(Mode::Serve(1)).await;
    let t = up.issuer().await;
    let token = up.user_token();
    assert_eq!(exchange(&t, &token).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    up.set(Mode::Hang);
    let (status, body, _, took) = exchange(&t, &token).await;
    assert_eq!(status, 200, "the stale copy beats none: {body}");
    assert!(took <= UPSTREAM_FETCH_TIMEOUT + MARGIN, "{took:?}");
    // The failure is remembered: the next request uses the copy without waiting.
    let (status, _, _, took) = exchange(&t, &token).await;
    assert_eq!(status, 200);
    assert!(took < NO_WAIT, "{took:?}");
}
