//! A real issuer on 127.0.0.1:0 with a known client, for end-to-end tests.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use svctoken_issuer::Issuer;
use svctoken_issuer::audit::Auditor;
use svctoken_issuer::audit::{AuditEvent, AuditSink, MemorySink, Outcome};
use svctoken_issuer::clients::SecretHash;
use svctoken_issuer::settings::{Overrides, Settings};
use svctoken_issuer::store::{KeyStore, MemoryStore};
use svctoken_mint::Clock;
use tokio::sync::oneshot;

use crate::convex::{ConvexAuth, Now, Provider};

/// The client every test issuer knows.
pub const CLIENT_ID: &str = "worker";
/// Its secret.
pub const CLIENT_SECRET: &str = "sts_test-secret-for-the-worker-client-000000000";

/// A running issuer; stops when dropped.
pub struct TestIssuer {
    /// The issuer (settings, key ring, minter).
    pub issuer: Issuer,
    /// Its base URL, which is also its `iss` (path included: see [`spawn_issuer_under`]; but
    /// for a replica: see [`spawn_replica`]).
    pub url: String,
    /// The base URL of its admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin_url: String,
    /// The HTTP client tests use.
    pub http: reqwest::Client,
    audit: Arc<MemorySink>,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

/// A `[[clients]]` block for [`CLIENT_ID`] with the given extra TOML lines.
pub fn worker_client(extra: &str) -> String {
    format!(
        "[[clients]]\nid = \"{CLIENT_ID}\"\nsecret_sha256 = \"{}\"\n{extra}\n",
        SecretHash::of(CLIENT_SECRET).to_hex()
    )
}

/// A `[[clients]]` block for a client `id` registered with `key`'s public half
/// (`private_key_jwt`), with extra TOML lines.
pub fn key_client(id: &str, key: &svctoken_jwks::SigningKey, extra: &str) -> String {
    let jwks = svctoken_issuer::clients::jwks_toml_line(std::slice::from_ref(key.public_jwk()));
    format!("[[clients]]\nid = \"{id}\"\n{jwks}{extra}\n")
}

/// Starts an issuer whose configuration is `config` (TOML; `issuer` is set to its address),
/// over `store`, with `clock`.
pub async fn spawn_issuer_with(
    config: &str,
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
) -> TestIssuer {
    spawn_issuer_at("127.0.0.1:0", config, store, clock).await
}

/// Like [`spawn_issuer_with`], listening on `addr` (to restart an issuer on the same port).
pub async fn spawn_issuer_at(
    addr: &str,
    config: &str,
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
) -> TestIssuer {
    let audit = Audit {
        extra_sinks: Vec::new(),
        fail_closed: true,
    };
    spawn(addr, IssuerAt::Own, config, store, clock, audit).await
}

/// Like [`spawn_issuer`], with an issuer URL that has a path: `http://127.0.0.1:PORT<path>`
/// (`path` like `"/auth"`). [`TestIssuer::url`] includes the path.
pub async fn spawn_issuer_under(path: &str, config: &str, clock: Arc<dyn Clock>) -> TestIssuer {
    let audit = Audit {
        extra_sinks: Vec::new(),
        fail_closed: true,
    };
    let store = Arc::new(MemoryStore::new());
    spawn(
        "127.0.0.1:0",
        IssuerAt::Path(path),
        config,
        store,
        clock,
        audit,
    )
    .await
}

/// Starts one replica of several behind a load balancer whose URL, `issuer`, is the `iss` of
/// them all, over `store` (a replica's [`PgStore`](svctoken_issuer::postgres::PgStore)), with
/// `clock`. Its audit trail goes, fail-open as `serve`'s by default, to memory and to the
/// replica's chain in the store's database (call `issuer.auditor().flush()` before reading).
pub async fn spawn_replica(
    issuer: &str,
    config: &str,
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
) -> TestIssuer {
    let mut extra_sinks: Vec<Box<dyn AuditSink>> = Vec::new();
    if let (Some(db), Some(replica)) = (store.database(), store.replica_id()) {
        extra_sinks.push(Box::new(svctoken_issuer::postgres::AuditTable::new(
            db.clone(),
            replica,
        )));
    }
    let audit = Audit {
        extra_sinks,
        fail_closed: false,
    };
    spawn(
        "127.0.0.1:0",
        IssuerAt::Url(issuer),
        config,
        store,
        clock,
        audit,
    )
    .await
}

/// Like [`spawn_issuer`], also recording the audit trail in the hash-chained file at
/// `audit_file` (as `serve` does), so a test can read the lines the issuer really writes.
pub async fn spawn_issuer_auditing_to(
    config: &str,
    clock: Arc<dyn Clock>,
    audit_file: &std::path::Path,
) -> TestIssuer {
    let file = svctoken_issuer::audit::ChainedFile::open(audit_file).expect("audit file opens");
    let sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(file)];
    // Fail open, as `serve` is by default: batches of events, one sync each. Call
    // `issuer.auditor().flush()` before reading the file.
    let audit = Audit {
        extra_sinks: sinks,
        fail_closed: false,
    };
    spawn(
        "127.0.0.1:0",
        IssuerAt::Own,
        config,
        Arc::new(MemoryStore::new()),
        clock,
        audit,
    )
    .await
}

/// What a test issuer's `iss` is.
enum IssuerAt<'a> {
    /// Its own address, `http://127.0.0.1:PORT`.
    Own,
    /// Its own address followed by this path.
    Path(&'a str),
    /// This URL (a load balancer's, for a replica).
    Url(&'a str),
}

/// Where a test issuer's audit events go besides memory, and whether it waits for them.
struct Audit {
    extra_sinks: Vec<Box<dyn AuditSink>>,
    fail_closed: bool,
}

async fn spawn(
    addr: &str,
    at: IssuerAt<'_>,
    config: &str,
    store: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    audit_to: Audit,
) -> TestIssuer {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind 127.0.0.1");
    let mut url = format!("http://{}", listener.local_addr().expect("local addr"));
    let issuer = match at {
        IssuerAt::Own => url.clone(),
        IssuerAt::Path(path) => {
            url.push_str(path);
            url.clone()
        }
        IssuerAt::Url(issuer) => issuer.to_owned(),
    };
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the admin listener");
    let admin_url = format!("http://{}", admin.local_addr().expect("local addr"));
    let overrides = Overrides {
        issuer: Some(issuer),
        // A test names the database through its store; the settings only need to know there
        // is one (the lead includes the propagation bound, the trail goes to the database).
        database_url: store
            .database()
            .map(|_| "postgres://replicas.invalid/svctoken".to_owned()),
        ..Overrides::default()
    };
    let settings = Settings::from_toml(config, &overrides).expect("test configuration is valid");
    // Every event goes to memory, where tests can count and read them.
    let audit = Arc::new(MemorySink::new());
    let mut sinks: Vec<Box<dyn AuditSink>> = vec![Box::new(audit.clone())];
    sinks.extend(audit_to.extra_sinks);
    let auditor = Auditor::new(sinks, audit_to.fail_closed);
    let issuer = tokio::task::spawn_blocking(move || {
        Issuer::open_with_auditor(settings, store, clock, auditor)
    })
    .await
    .expect("join")
    .expect("issuer opens");
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let served = issuer.clone();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stop_rx.await;
        };
        svctoken_issuer::serve(listener, Some(admin), served, shutdown)
            .await
            .expect("serve");
        let _ = done_tx.send(());
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    TestIssuer {
        issuer,
        url,
        admin_url,
        http,
        audit,
        stop: Some(stop),
        stopped: Some(done_rx),
    }
}

/// Starts an issuer with a memory store.
pub async fn spawn_issuer(config: &str, clock: Arc<dyn Clock>) -> TestIssuer {
    spawn_issuer_with(config, Arc::new(MemoryStore::new()), clock).await
}

/// The JWKS URL Convex should use for audience `convex`.
impl TestIssuer {
    /// `<url>/audiences/<audience>/jwks.json`.
    pub fn audience_jwks(&self, audience: &str) -> String {
        format!("{}/audiences/{audience}/jwks.json", self.url)
    }

    /// `GET <admin_url><path>` on the admin listener: its status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.admin_url))
            .send()
            .await
            .expect("admin request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("admin body"))
    }

    /// The value of the series `series` (name and labels as exposed, e.g.
    /// `svctoken_tokens_issued_total{client="worker"}`) at the admin listener's `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = self.admin_get("/metrics").await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Posts a raw form to the token endpoint, authenticated with Basic when `basic` is set.
    pub async fn post_token(&self, form: &[(&str, &str)], basic: bool) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/oauth/token", self.url))
            .form(form);
        if basic {
            req = req.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
        }
        req.send().await.expect("token request")
    }

    /// Fetches a token for [`CLIENT_ID`] with extra parameters; panics unless it succeeds.
    pub async fn token(&self, extra: &[(&str, &str)]) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let response = self.post_token(&form, true).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json body");
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

impl TestIssuer {
    /// Stops the server and waits until it no longer listens.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await;
        }
    }

    /// A verifier applying Convex's rules to this issuer's tokens, configured with the entry
    /// `svctoken convex-config` prints for the default audience: customJwt, ES256, `convex`.
    pub fn convex(&self) -> ConvexAuth {
        ConvexAuth::new(vec![Provider::CustomJwt {
            issuer: self.url.clone(),
            jwks: self.audience_jwks("convex"),
            algorithm: crate::convex::CustomJwtAlgorithm::ES256,
            application_id: Some("convex".into()),
        }])
    }

    /// Verifies `token` against the JWKS this issuer serves (iss and `audience` checked).
    pub async fn verify(&self, token: &str, audience: &str) -> serde_json::Map<String, Value> {
        let jwks = self
            .jwks(&format!("{}/.well-known/jwks.json", self.url))
            .await;
        svctoken_jwks::Verifier::new(&jwks, svctoken_jwks::Validation::new(&self.url, audience))
            .verify(token, SystemTime::now())
            .expect("the issuer's token verifies against its JWKS")
    }

    /// The JWKS served at `url`.
    pub async fn jwks(&self, url: &str) -> svctoken_jwks::Jwks {
        let response = self.http.get(url).send().await.expect("jwks request");
        assert_eq!(response.status(), 200, "{url}");
        response.json().await.expect("a JWKS")
    }

    /// Every audit event about a token request (issued or refused) recorded so far.
    pub fn audit_events(&self) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.outcome != Outcome::Lifecycle)
            .collect()
    }

    /// Every audit event about a signing key's lifecycle recorded so far.
    pub fn lifecycle_events(&self) -> Vec<AuditEvent> {
        self.audit
            .events()
            .into_iter()
            .filter(|e| e.outcome == Outcome::Lifecycle)
            .collect()
    }

    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        let rest = self.url.trim_start_matches("http://");
        rest.split_once('/').map_or(rest, |(addr, _)| addr)
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A Convex verifier whose clock (token times and HTTP cache freshness) is `clock`.
pub fn convex_with_clock(providers: Vec<Provider>, clock: Arc<dyn Clock>) -> ConvexAuth {
    let now: Now = Arc::new(move || -> SystemTime { clock.now() });
    ConvexAuth::with_clock(providers, now)
}
