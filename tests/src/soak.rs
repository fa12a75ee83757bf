//! The soak's load generator (the `soak-load` binary, which `bench/soak` runs): the clients and
//! the trusted upstream issuer of a scenario, and the load they put on a real issuer.
//!
//! [`Scenario::start`] makes the credentials (a client secret, a client key pair for
//! `private_key_jwt`, the upstream's signing key), serves the upstream's JWKS on 127.0.0.1,
//! and writes the issuer's configuration (`svctoken.toml`: the embedded default plus those two
//! clients, the upstream as a trusted issuer, and one-minute key rotation). [`Scenario::drive`]
//! then sends token requests over `connections` connections until the time is up, cycling
//! through the three grants, and reports requests, errors and latency per grant.
//!
//! wrk can't do this: each `private_key_jwt` request carries a freshly signed assertion (a new
//! `jti`, `aud` = the issuer identifier), and each token exchange a freshly minted user token.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use svctoken_issuer::clients::{SecretHash, generate_secret, jwks_toml_line};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_mint::{Clock as _, IssuerUrl, MintRequest, Minter, SystemClock};
use zeroize::Zeroizing;

/// The client authenticating with a secret (client credentials and token exchange).
pub const SECRET_CLIENT: &str = "soak-secret";
/// The client authenticating with `private_key_jwt`.
pub const KEY_CLIENT: &str = "soak-key";
/// The audience the upstream's user tokens carry for this issuer.
const UPSTREAM_AUDIENCE: &str = "svctoken";
/// Lifetime of a client assertion, as `svctoken-client` signs them.
const ASSERTION_LIFETIME: u64 = 60;
/// How many error answers are kept, to show what went wrong.
const ERROR_SAMPLES: usize = 5;

/// The three kinds of request the soak sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `client_credentials`, `client_secret_basic`.
    Secret,
    /// `client_credentials`, `private_key_jwt`.
    KeyJwt,
    /// RFC 8693 token exchange of an upstream user token, `client_secret_basic`.
    Exchange,
}

impl Grant {
    /// Every grant, in the order requests cycle through them.
    pub const ALL: [Grant; 3] = [Grant::Secret, Grant::KeyJwt, Grant::Exchange];

    fn name(self) -> &'static str {
        match self {
            Grant::Secret => "client_credentials (secret)",
            Grant::KeyJwt => "client_credentials (private_key_jwt)",
            Grant::Exchange => "token exchange",
        }
    }
}

/// The clients and the upstream of one soak, and the configuration it wrote.
pub struct Scenario {
    /// The issuer's URL (its `iss`, and where it listens).
    pub issuer: String,
    /// Its admin listener's URL (`/readyz`, `/metrics`).
    pub admin: String,
    /// The configuration file written.
    pub config: PathBuf,
    secret: Zeroizing<String>,
    client_key: Arc<SigningKey>,
    upstream: Minter,
}

impl Scenario {
    /// Makes the credentials, serves the upstream's JWKS on 127.0.0.1 (until the runtime
    /// stops), and writes `<dir>/svctoken.toml` for an issuer on `issuer_port` (0: a free one).
    pub async fn start(dir: &Path, issuer_port: u16) -> Result<Scenario> {
        let issuer_port = match issuer_port {
            0 => free_port()?,
            port => port,
        };
        let issuer = format!("http://127.0.0.1:{issuer_port}");
        let mut admin_port = free_port()?;
        while admin_port == issuer_port {
            admin_port = free_port()?;
        }
        let admin = format!("http://127.0.0.1:{admin_port}");
        let secret = generate_secret()?;
        let client_key = SigningKey::generate(Algorithm::ES256)?;
        let upstream_key = SigningKey::generate(Algorithm::ES256)?;
        let upstream_jwks = json!({"keys": [upstream_key.public_jwk()]}).to_string();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the upstream's JWKS server")?;
        let upstream_url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let body = upstream_jwks.clone();
                async move {
                    (
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "max-age=300"),
                        ],
                        body,
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });

        let config = dir.join("svctoken.toml");
        let text = format!(
            "listen = \"127.0.0.1:{issuer_port}\"\n\
             admin_listen = \"127.0.0.1:{admin_port}\"\n\
             data_dir = \"data\"\n\
             [keys]\n\
             rotation_period = \"1m\"\n\
             jwks_max_age = \"25s\"\n\
             [[trusted_issuers]]\n\
             issuer = \"{upstream_url}\"\n\
             jwks_uri = \"{upstream_url}/jwks.json\"\n\
             audience = \"{UPSTREAM_AUDIENCE}\"\n\
             [[clients]]\n\
             id = \"{SECRET_CLIENT}\"\n\
             secret_sha256 = \"{}\"\n\
             act_as = [\"user:*\"]\n\
             [[clients]]\n\
             id = \"{KEY_CLIENT}\"\n\
             {}",
            SecretHash::of(&secret).to_hex(),
            jwks_toml_line(std::slice::from_ref(client_key.public_jwk())),
        );
        // Whole or absent: bench/soak starts the issuer once the file is there.
        let partial = dir.join("svctoken.toml.tmp");
        std::fs::write(&partial, text).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &config)?;
        let upstream = Minter::with_key(
            IssuerUrl::parse(&upstream_url)?,
            upstream_key,
            Arc::new(SystemClock),
        );
        Ok(Scenario {
            issuer,
            admin,
            config,
            secret,
            client_key: Arc::new(client_key),
            upstream,
        })
    }

    /// Waits (at most `patience`) until the issuer's admin listener answers `/readyz` with 200.
    pub async fn wait_ready(&self, patience: Duration) -> Result<()> {
        let http = client()?;
        let deadline = Instant::now() + patience;
        loop {
            let ready = http
                .get(format!("{}/readyz", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the issuer at {} was not ready within {patience:?}",
                    self.issuer
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends token requests over `connections` connections (one task and one HTTP connection
    /// each) for `duration`, each connection cycling through [`Grant::ALL`].
    pub async fn drive(self, duration: Duration, connections: usize) -> Result<Report> {
        let scenario = Arc::new(self);
        let deadline = Instant::now() + duration;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for connection in 0..connections {
            let scenario = Arc::clone(&scenario);
            tasks.spawn(async move { scenario.connection(connection, deadline).await });
        }
        let mut report = Report::default();
        while let Some(done) = tasks.join_next().await {
            report.merge(done.context("a connection's task")??);
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    async fn connection(&self, connection: usize, deadline: Instant) -> Result<Report> {
        let http = client()?;
        let mut report = Report::default();
        let mut n = connection;
        while Instant::now() < deadline {
            let grant = Grant::ALL[n % Grant::ALL.len()];
            let request = self.request(&http, grant, connection, n)?;
            let sent = Instant::now();
            let answer = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    (status.is_success() && body.contains("\"access_token\""))
                        .then_some(())
                        .ok_or(format!("{status}: {body}"))
                }
                Err(e) => Err(format!("transport: {e}")),
            };
            report.record(grant, sent.elapsed(), answer);
            n += 1;
        }
        Ok(report)
    }

    fn request(
        &self,
        http: &reqwest::Client,
        grant: Grant,
        connection: usize,
        n: usize,
    ) -> Result<reqwest::RequestBuilder> {
        let endpoint = format!("{}/oauth/token", self.issuer);
        let post = http.post(endpoint);
        Ok(match grant {
            Grant::Secret => post
                .basic_auth(SECRET_CLIENT, Some(self.secret.as_str()))
                .form(&[("grant_type", "client_credentials")]),
            Grant::KeyJwt => {
                let now = SystemClock.unix_secs();
                let assertion = self.client_key.sign_jwt(&json!({
                    "iss": KEY_CLIENT,
                    "sub": KEY_CLIENT,
                    "aud": self.issuer,
                    "iat": now,
                    "exp": now + ASSERTION_LIFETIME,
                    "jti": format!("{connection}-{n}-{}", std::process::id()),
                }))?;
                post.form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", KEY_CLIENT),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                ])
            }
            Grant::Exchange => {
                let user = format!("user:{}", n % 1000);
                let minted = self.upstream.mint(
                    &MintRequest::new(&user, UPSTREAM_AUDIENCE).ttl(Duration::from_secs(300)),
                )?;
                post.basic_auth(SECRET_CLIENT, Some(self.secret.as_str()))
                    .form(&[
                        ("grant_type", svctoken_mint::oauth::TOKEN_EXCHANGE),
                        ("subject_token", minted.token.secret()),
                        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ])
            }
        })
    }
}

/// One HTTP connection's client (no proxy, one idle connection kept).
fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// Requests, errors and latencies per grant.
#[derive(Debug, Default)]
pub struct Report {
    latencies: [Vec<Duration>; 3],
    errors: [u64; 3],
    samples: Vec<String>,
    elapsed: Duration,
}

impl Report {
    fn slot(grant: Grant) -> usize {
        Grant::ALL.iter().position(|g| *g == grant).unwrap_or(0)
    }

    fn record(&mut self, grant: Grant, took: Duration, answer: Result<(), String>) {
        let slot = Self::slot(grant);
        self.latencies[slot].push(took);
        if let Err(error) = answer {
            self.errors[slot] += 1;
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(format!("{}: {error}", grant.name()));
            }
        }
    }

    fn merge(&mut self, other: Report) {
        for (mine, theirs) in self.latencies.iter_mut().zip(other.latencies) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        for sample in other.samples {
            if self.samples.len() < ERROR_SAMPLES {
                self.samples.push(sample);
            }
        }
    }

    /// Requests sent for `grant`.
    pub fn requests(&self, grant: Grant) -> usize {
        self.latencies[Self::slot(grant)].len()
    }

    /// Requests that did not get a token (an error status, a body without one, or no answer).
    pub fn errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Requests in all.
    pub fn total(&self) -> usize {
        self.latencies.iter().map(Vec::len).sum()
    }
}

/// The `q` quantile (0 to 1) of `latencies`, in milliseconds.
fn quantile_ms(latencies: &mut [Duration], q: f64) -> f64 {
    if latencies.is_empty() {
        return 0.0;
    }
    latencies.sort_unstable();
    // The nearest rank: the smallest value with at least q of them at or below it.
    let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
    latencies[rank - 1].as_secs_f64() * 1000.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| grant | requests | errors | p50 ms | p99 ms |\n|---|---|---|---|---|"
        )?;
        let mut all = Vec::with_capacity(self.total());
        for (grant, (latencies, errors)) in Grant::ALL
            .iter()
            .zip(self.latencies.iter().zip(self.errors))
        {
            let mut sorted = latencies.clone();
            writeln!(
                f,
                "| {} | {} | {errors} | {:.2} | {:.2} |",
                grant.name(),
                sorted.len(),
                quantile_ms(&mut sorted, 0.5),
                quantile_ms(&mut sorted, 0.99)
            )?;
            all.extend(sorted);
        }
        let seconds = self.elapsed.as_secs_f64().max(f64::EPSILON);
        writeln!(
            f,
            "| all | {} ({:.0}/s over {:.0} s) | {} | {:.2} | {:.2} |",
            all.len(),
            all.len() as f64 / seconds,
            seconds,
            self.errors(),
            quantile_ms(&mut all, 0.5),
            quantile_ms(&mut all, 0.99)
        )?;
        for sample in &self.samples {
            writeln!(f, "error: {sample}")?;
        }
        Ok(())
    }
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
