//! `svctoken doctor`: checks a live issuer the way Convex will, and prints a checklist of
//! `pass` / `warn` / `fail` lines, each saying what to change.
//!
//! Every network exchange is bounded by 5 s and goes only to the URLs given (the issuer, the
//! endpoints its discovery document names, the deployment); redirects are not followed. No
//! secret and no token is printed: only the token's claims.

mod checks;
mod keys;
mod net;
mod report;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use reqwest::Url;
use reqwest::header::{CACHE_CONTROL, DATE};
use serde_json::{Map, Value, json};
use svctoken_client::{ClientCredentials, Endpoint, TokenSource as _};
use svctoken_jwks::Jwks;
use zeroize::Zeroizing;

use checks::Profile;
use net::{Fetched, PeerCertificate};
use report::{Outcome, Report};

/// The exit code of a bad command line (clap's own usage errors exit 2 too).
const USAGE: u8 = 2;

/// `svctoken doctor`'s arguments.
#[derive(Args, Clone, Debug)]
pub(crate) struct DoctorArgs {
    /// The issuer URL exactly as Convex's auth.config.ts names it.
    #[arg(long, env = "SVCTOKEN_ISSUER")]
    issuer: String,
    /// The audience (Convex's applicationID): its /audiences/<A>/jwks.json is checked when the
    /// issuer serves one, and the token is asked for it.
    #[arg(long)]
    audience: Option<String>,
    /// The audience's profile (its Convex provider type), which the issuer's discovery does
    /// not say.
    #[arg(long, value_enum, default_value = "convex-custom-jwt")]
    profile: Profile,
    /// A client id, to fetch a token and check it the way Convex will.
    #[arg(long, env = "SVCTOKEN_CLIENT_ID")]
    client_id: Option<String>,
    /// A file holding the client secret (else SVCTOKEN_CLIENT_SECRET).
    #[arg(long, requires = "client_id")]
    client_secret_file: Option<PathBuf>,
    /// Authenticate with this PEM private key (private_key_jwt) instead of a secret.
    #[arg(long, requires = "client_id", conflicts_with = "client_secret_file")]
    private_key: Option<PathBuf>,
    /// A Convex deployment URL, to call --function with the token.
    #[arg(long, requires_all = ["function", "client_id"])]
    deployment: Option<String>,
    /// A query to call, e.g. auth:whoami (one returning ctx.auth.getUserIdentity()).
    #[arg(long, requires = "deployment")]
    function: Option<String>,
    /// On the issuer's machine: also check the key store this configuration file names (with
    /// SVCTOKEN_DATA_DIR and SVCTOKEN_DATABASE_URL applied): where its private keys live (files
    /// or a PKCS#11 token), and that each published key's private half loads and signs.
    #[arg(long, env = "SVCTOKEN_CONFIG")]
    config: Option<PathBuf>,
}

/// Runs the checks and prints the checklist: exit 0 when nothing failed, 1 when something
/// did, 2 for a bad command line.
pub(crate) fn doctor(args: &DoctorArgs) -> ExitCode {
    let prepared = validate(args).and_then(|()| credentials(args));
    let credentials = match prepared {
        Ok(credentials) => credentials,
        Err(e) => {
            eprintln!("svctoken doctor: {e:#}");
            return ExitCode::from(USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("svctoken doctor: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let http = match net::http_client() {
        Ok(http) => http,
        Err(e) => {
            eprintln!("svctoken doctor: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    if let Some(config) = &args.config {
        // Before the async runtime: a store on PostgreSQL runs its own.
        keys::check(config, &mut report);
    }
    let mut doctor = Doctor {
        args,
        http,
        report,
        fell_back: false,
    };
    runtime.block_on(doctor.run(credentials));
    doctor.report.summary();
    if doctor.report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Refuses URLs that are not http(s) with a host.
fn validate(args: &DoctorArgs) -> Result<()> {
    http_url("--issuer", &args.issuer)?;
    if let Some(deployment) = &args.deployment {
        http_url("--deployment", deployment)?;
    }
    if args.function.as_deref().is_some_and(str::is_empty) {
        bail!("--function is empty: name a query, like auth:whoami");
    }
    Ok(())
}

/// `value` as an http(s) URL with a host.
fn http_url(flag: &str, value: &str) -> Result<Url> {
    let url = Url::parse(value).with_context(|| format!("{flag} {value:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("{flag} {value:?} is not an http(s) URL with a host");
    }
    Ok(url)
}

/// The client's credentials, read before any network exchange (so an unreadable file is a
/// usage error); the token source is made once discovery has named the token endpoint.
struct Credentials {
    client_id: String,
    /// The secret, unless a private key file authenticates the client.
    secret: Option<Zeroizing<String>>,
    private_key: Option<PathBuf>,
    audience: Option<String>,
}

/// The credentials the arguments name, if any.
fn credentials(args: &DoctorArgs) -> Result<Option<Credentials>> {
    let Some(client_id) = &args.client_id else {
        return Ok(None);
    };
    let secret = match &args.private_key {
        Some(key) => {
            // Read once now only to refuse an unreadable key before any network exchange.
            let endpoint = Endpoint::TokenEndpoint(String::new());
            ClientCredentials::from_key_file(endpoint, client_id, key)
                .with_context(|| format!("reading the private key {}", key.display()))?;
            None
        }
        None => Some(crate::remote::read_client_secret(
            args.client_secret_file.as_deref(),
        )?),
    };
    Ok(Some(Credentials {
        client_id: client_id.clone(),
        secret,
        private_key: args.private_key.clone(),
        audience: args.audience.clone(),
    }))
}

impl Credentials {
    /// A token source for the token endpoint discovery named (the issuer's discovery when it
    /// named none), assertions addressed to the issuer discovery named.
    fn source(&self, issuer: &str, discovery: &Discovery) -> Result<ClientCredentials> {
        let endpoint = match discovery.str("token_endpoint") {
            Some(url) => Endpoint::TokenEndpoint(url.to_owned()),
            None => Endpoint::Issuer(issuer.trim_end_matches('/').to_owned()),
        };
        let mut source = match (&self.private_key, &self.secret) {
            (Some(key), _) => ClientCredentials::from_key_file(endpoint, &self.client_id, key)
                .with_context(|| format!("reading the private key {}", key.display()))?,
            (None, Some(secret)) => {
                ClientCredentials::new(endpoint, &self.client_id, secret.as_str())
            }
            (None, None) => bail!("no client secret or private key"),
        };
        if let Some(identifier) = discovery.str("issuer") {
            source = source.issuer_identifier(identifier);
        }
        if let Some(audience) = &self.audience {
            source = source.audience(audience);
        }
        Ok(source)
    }
}

/// The discovery document, as fetched.
struct Discovery {
    document: Map<String, Value>,
}

impl Discovery {
    /// A string member.
    fn str(&self, name: &str) -> Option<&str> {
        self.document.get(name).and_then(Value::as_str)
    }
}

/// One run of the checks.
struct Doctor<'a> {
    args: &'a DoctorArgs,
    http: reqwest::Client,
    report: Report,
    /// The issuer serves no JWKS for `--audience`: `jwks_uri` was checked instead.
    fell_back: bool,
}

impl Doctor<'_> {
    /// Every check, in order; those that need what a failed one would have given are left out.
    async fn run(&mut self, credentials: Option<Credentials>) {
        let issuer = self.args.issuer.clone();
        let loopback = crate::loopback::loopback_http(&issuer).is_some();
        self.report
            .add("issuer url", checks::scheme(&issuer, loopback));
        let Some(discovery) = self.discovery(&issuer).await else {
            return;
        };
        self.report.add(
            "issuer",
            checks::issuer_matches(&issuer, discovery.str("issuer")),
        );
        let scheme = checks::http_scheme(&issuer).unwrap_or("https");
        for name in ["jwks_uri", "token_endpoint"] {
            let outcome = checks::endpoint(name, discovery.str(name), scheme);
            self.report.add(name, outcome);
        }
        if scheme == "https" {
            self.tls(&issuer).await;
        }
        let jwks = self.jwks(&issuer, &discovery).await;
        let Some(credentials) = credentials else {
            return;
        };
        let Some(token) = self.token(&credentials, &issuer, &discovery).await else {
            return;
        };
        self.check_token(&token, jwks.as_ref(), discovery.str("issuer"));
        if let (Some(deployment), Some(function)) = (&self.args.deployment, &self.args.function) {
            self.call(deployment, function, &token).await;
        }
    }

    /// GETs discovery: reachable, 200, JSON; checks the clock against its `Date`.
    async fn discovery(&mut self, issuer: &str) -> Option<Discovery> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let fetched = match net::get(&self.http, &url).await {
            Ok(fetched) => fetched,
            Err(e) => {
                let outcome = Outcome::fail(format!(
                    "{e:#}. Is the issuer running, and is --issuer the URL it is reachable at?"
                ));
                self.report.add("discovery", outcome);
                return None;
            }
        };
        let mut outcome = discovery_outcome(&url, &fetched);
        let document = match serde_json::from_slice::<Value>(&fetched.body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        if document.is_none() && outcome.status != report::Status::Fail {
            outcome = Outcome::fail(format!("{url} answered 200 but not a JSON object"));
        }
        self.report.add("discovery", outcome);
        self.clock(&fetched);
        // Read on after a wrong Content-Type: the rest still tells what Convex would see.
        document.map(|document| Discovery { document })
    }

    /// Compares the `Date` of a response with this machine's clock.
    fn clock(&mut self, fetched: &Fetched) {
        let outcome = match fetched.header(DATE) {
            None => Outcome::warn("the issuer sends no Date header: its clock can't be compared"),
            Some(date) => match httpdate::parse_http_date(date.trim()) {
                Ok(server) => checks::clock_skew(server, SystemTime::now()),
                Err(_) => Outcome::warn(format!("the issuer's Date {date:?} is not an HTTP date")),
            },
        };
        self.report.add("clock", outcome);
    }

    /// The TLS certificate's expiry, from a rustls connection to the issuer's host.
    async fn tls(&mut self, issuer: &str) {
        let outcome = match tls_target(issuer) {
            Err(e) => Outcome::warn(format!("not checked: {e:#}")),
            Ok((host, port)) => match net::certificate_not_after(&host, port).await {
                Ok(PeerCertificate::NotAfter(not_after)) => {
                    checks::certificate_expiry(not_after, SystemTime::now())
                }
                Ok(PeerCertificate::Expired) => Outcome::fail(format!(
                    "the certificate of {host}:{port} has expired: Convex can't fetch the JWKS. \
                     Renew it"
                )),
                Err(e) => Outcome::warn(format!("certificate not checked: {e:#}")),
            },
        };
        self.report.add("tls", outcome);
    }

    /// Fetches the JWKS Convex will use and checks it: status, type, caching, keys, standby.
    async fn jwks(&mut self, issuer: &str, discovery: &Discovery) -> Option<Jwks> {
        let (url, fetched) = self.fetch_jwks(issuer, discovery).await?;
        if let Some(refused) = jwks_response_refused(&url, &fetched) {
            self.report.add("jwks", refused);
            return None;
        }
        let verdict = match checks::judge_jwks(&fetched.body, self.args.profile) {
            Ok(verdict) => verdict,
            Err(e) => {
                self.report
                    .add("jwks", Outcome::fail(format!("{url}: {e}")));
                return None;
            }
        };
        let note = if self.fell_back {
            " (the issuer serves no JWKS for --audience: jwks_uri, as for Convex OIDC)"
        } else {
            ""
        };
        self.report
            .add("jwks", Outcome::pass(format!("{url}{note}")));
        let cache_control = fetched.header(CACHE_CONTROL);
        self.report.add(
            "jwks cache",
            checks::cache_control(cache_control.as_deref()),
        );
        self.report.add("jwks private", verdict.private);
        self.report.add(
            "provider",
            provider_outcome(self.args.profile, verdict.compatible),
        );
        let max_age = match svctoken_jwks::Caching::parse(cache_control.as_deref()) {
            svctoken_jwks::Caching::MaxAge(age) => Some(age),
            _ => None,
        };
        self.report
            .add("standby", checks::standby(verdict.signing_keys, max_age));
        Some(verdict.jwks)
    }

    /// GETs the audience's JWKS when the profile reads it (customJwt) and the issuer serves
    /// one, else `jwks_uri`.
    async fn fetch_jwks(
        &mut self,
        issuer: &str,
        discovery: &Discovery,
    ) -> Option<(String, Fetched)> {
        if let (Some(audience), true) = (
            &self.args.audience,
            self.args.profile != Profile::ConvexOidc,
        ) && let Some(url) = audience_jwks_url(issuer, audience)
        {
            match net::get(&self.http, &url).await {
                Ok(fetched) if fetched.status != 404 => return Some((url, fetched)),
                Ok(_) => self.fell_back = true,
                Err(e) => {
                    self.report.add("jwks", Outcome::fail(format!("{e:#}")));
                    return None;
                }
            }
        }
        let url = discovery.str("jwks_uri")?.to_owned();
        match net::get(&self.http, &url).await {
            Ok(fetched) => Some((url, fetched)),
            Err(e) => {
                self.report.add("jwks", Outcome::fail(format!("{e:#}")));
                None
            }
        }
    }

    /// Fetches a token with the credentials.
    async fn token(
        &mut self,
        credentials: &Credentials,
        issuer: &str,
        discovery: &Discovery,
    ) -> Option<String> {
        let source = match credentials.source(issuer, discovery) {
            Ok(source) => source.http_client(self.http.clone()),
            Err(e) => {
                self.report.add("token", Outcome::fail(format!("{e:#}")));
                return None;
            }
        };
        match source.fetch().await {
            Ok(fetched) => {
                let lifetime = fetched.lifetime.map_or("no expires_in".to_owned(), |l| {
                    format!("expires_in {}s", l.as_secs())
                });
                self.report
                    .add("token", Outcome::pass(format!("issued ({lifetime})")));
                Some(fetched.access_token.secret().to_owned())
            }
            Err(e) => {
                let outcome = Outcome::fail(format!(
                    "the issuer gave no token: {e}. Check --client-id and its secret or key, and \
                     that the client may ask for this audience"
                ));
                self.report.add("token", outcome);
                None
            }
        }
    }

    /// Checks the token under Convex's rules for the profile, and prints the claims Convex
    /// will expose.
    fn check_token(&mut self, token: &str, jwks: Option<&Jwks>, discovered: Option<&str>) {
        let (header, claims) = match svctoken_jwks::dangerous::decode_unverified(token) {
            Ok(parts) => parts,
            Err(e) => {
                self.report
                    .add("token", Outcome::fail(format!("not a JWT: {e}")));
                return;
            }
        };
        let outcome = token::issuer(&claims, &self.args.issuer, discovered);
        self.report.add("token iss", outcome);
        let outcome = token::audience(&claims, self.args.audience.as_deref(), self.args.profile);
        self.report.add("token aud", outcome);
        let outcome = token::header(&header, jwks, self.args.profile);
        self.report.add("token header", outcome);
        if let Some(jwks) = jwks {
            self.report
                .add("token signature", token::signature(token, &claims, jwks));
        }
        self.report.add(
            "token times",
            checks::token_times(&claims, self.args.profile),
        );
        self.report.add("token sub", token::subject(&claims));
        self.report.add("claims", token::exposed_claims(&claims));
    }

    /// Calls `function` as a query with the token and prints what it returns.
    async fn call(&mut self, deployment: &str, function: &str, token: &str) {
        let url = format!("{}/api/query", deployment.trim_end_matches('/'));
        let body = json!({ "path": function, "args": {}, "format": "json" });
        let outcome = match net::post_json(&self.http, &url, token, &body).await {
            Ok(fetched) => query_outcome(function, &fetched),
            Err(e) => Outcome::fail(format!("{e:#}")),
        };
        self.report.add("deployment", outcome);
    }
}

/// The `pass`/`fail` of a discovery response: 200 and `Content-Type: application/json`.
fn discovery_outcome(url: &str, fetched: &Fetched) -> Outcome {
    if fetched.status != 200 {
        Outcome::fail(format!(
            "GET {url} answered {}: Convex needs 200. Is --issuer the issuer's URL (with its \
             path, if any)?",
            fetched.status
        ))
    } else if !fetched.content_type_is(&["application/json"]) {
        Outcome::fail(format!(
            "GET {url} answered Content-Type {:?}: Convex needs application/json",
            fetched.header(reqwest::header::CONTENT_TYPE)
        ))
    } else {
        Outcome::pass(format!("{url}: 200, application/json"))
    }
}

/// The `fail` of a JWKS response Convex refuses (not 200, not a JSON content type); `None`
/// when it reads on.
fn jwks_response_refused(url: &str, fetched: &Fetched) -> Option<Outcome> {
    if fetched.status != 200 {
        Some(Outcome::fail(format!(
            "GET {url} answered {}: Convex needs 200",
            fetched.status
        )))
    } else if !fetched.content_type_is(&["application/json", "application/jwk-set+json"]) {
        Some(Outcome::fail(format!(
            "GET {url} answered Content-Type {:?}: Convex needs application/json (or \
             application/jwk-set+json)",
            fetched.header(reqwest::header::CONTENT_TYPE)
        )))
    } else {
        None
    }
}

/// The provider line: which Convex provider type the profile means, and whether it accepts the
/// keys.
fn provider_outcome(profile: Profile, compatible: Outcome) -> Outcome {
    Outcome {
        detail: format!(
            "provider type {} (profile {}, from --profile: discovery does not say): {}",
            profile.provider(),
            profile_name(profile),
            compatible.detail
        ),
        ..compatible
    }
}

/// The host and port of an https issuer, for the TLS check.
fn tls_target(issuer: &str) -> Result<(String, u16)> {
    let url = Url::parse(issuer)?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("{issuer} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow!("{issuer} has no port"))?;
    Ok((host, port))
}

/// `<issuer>/audiences/<audience>/jwks.json`, the audience's segment escaped.
fn audience_jwks_url(issuer: &str, audience: &str) -> Option<String> {
    let mut url = Url::parse(issuer).ok()?;
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["audiences", audience, "jwks.json"]);
    Some(url.to_string())
}

/// The profile as `--profile` spells it.
fn profile_name(profile: Profile) -> &'static str {
    match profile {
        Profile::ConvexCustomJwt => "convex-custom-jwt",
        Profile::ConvexOidc => "convex-oidc",
        Profile::Generic => "generic",
    }
}

/// What a Convex `/api/query` answer says: the function's value, or its error.
fn query_outcome(function: &str, fetched: &Fetched) -> Outcome {
    let body: Value = match serde_json::from_slice(&fetched.body) {
        Ok(body) => body,
        Err(_) => {
            let text = String::from_utf8_lossy(&fetched.body);
            let text: String = text.chars().take(300).collect();
            return Outcome::fail(format!("HTTP {}: {text}", fetched.status));
        }
    };
    match body.get("status").and_then(Value::as_str) {
        Some("success") if fetched.status == 200 => match body.get("value") {
            Some(Value::Null) | None => Outcome::warn(format!(
                "{function} returned null: the function saw no identity. Does it return \
                 ctx.auth.getUserIdentity(), and does auth.config.ts trust this issuer?"
            )),
            Some(value) => Outcome::pass(format!("{function} ran as identity {value}")),
        },
        Some("error") => Outcome::fail(format!(
            "{function} failed: {}",
            body.get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or("no errorMessage")
        )),
        _ => Outcome::fail(format!(
            "HTTP {}: {}. A 401 means Convex refused the token: compare auth.config.ts with the \
             lines above",
            fetched.status,
            body.get("message")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_owned)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::Status;

    fn answer(status: u16, body: &str) -> Fetched {
        Fetched {
            status,
            headers: reqwest::header::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn query_answers_are_read_as_convex_sends_them() {
        let ok = answer(
            200,
            r#"{"status":"success","value":{"subject":"svc:dev"},"logLines":[]}"#,
        );
        let outcome = query_outcome("auth:whoami", &ok);
        assert_eq!(outcome.status, Status::Pass);
        assert!(
            outcome.detail.contains(r#"{"subject":"svc:dev"}"#),
            "{}",
            outcome.detail
        );

        let null = answer(200, r#"{"status":"success","value":null,"logLines":[]}"#);
        assert_eq!(query_outcome("auth:whoami", &null).status, Status::Warn);

        let error = answer(
            200,
            r#"{"status":"error","errorMessage":"Could not find function","logLines":[]}"#,
        );
        let outcome = query_outcome("auth:whoami", &error);
        assert_eq!(outcome.status, Status::Fail);
        assert!(outcome.detail.contains("Could not find function"));

        let refused = answer(
            401,
            r#"{"code":"InvalidAuthHeader","message":"Token expired"}"#,
        );
        let outcome = query_outcome("auth:whoami", &refused);
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.detail.contains("HTTP 401: Token expired"),
            "{}",
            outcome.detail
        );

        let html = answer(502, "<html>bad gateway</html>");
        assert_eq!(query_outcome("auth:whoami", &html).status, Status::Fail);
    }

    #[test]
    fn urls_derived_from_the_issuer() {
        assert_eq!(
            audience_jwks_url("https://auth.example.com", "convex").as_deref(),
            Some("https://auth.example.com/audiences/convex/jwks.json")
        );
        assert_eq!(
            audience_jwks_url("https://example.com/auth", "a b/c").as_deref(),
            Some("https://example.com/auth/audiences/a%20b%2Fc/jwks.json")
        );
        assert_eq!(
            tls_target("https://auth.example.com").expect("target"),
            ("auth.example.com".to_owned(), 443)
        );
        assert_eq!(
            tls_target("https://[::1]:8443/x").expect("target"),
            ("::1".to_owned(), 8443)
        );
        assert!(http_url("--issuer", "auth.example.com").is_err());
        assert!(http_url("--issuer", "ftp://auth.example.com").is_err());
        assert!(http_url("--issuer", "https://auth.example.com").is_ok());
    }
}
