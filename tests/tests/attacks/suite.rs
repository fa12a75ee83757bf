//! The attack suite against a real issuer: every case sent over real HTTP, its answer checked
//! against the table; after each group, the issuer still issues, its JWKS hold no private
//! member, and no log or audit line holds a credential used so far.

use std::sync::Arc;
use std::time::Instant;

use aho_corasick::AhoCorasick;
use serde_json::Value;
use svctoken_mint::oauth::{CLIENT_ASSERTION_TYPE, JWT_TOKEN_TYPE, TOKEN_EXCHANGE};
use svctoken_mint::{MintRequest, SystemClock};
use svctoken_tests::harness::{CLIENT_SECRET, TestIssuer, spawn_issuer_auditing_to};
use svctoken_tests::raw_http::RawRequest;

use crate::catalogue::{self, Context, TokenCase};
use crate::requests::{self, basic, enc, form};
use crate::world::{self, Upstream, WORKER, keys};

/// What the issuer must answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// 200 with a token (a control: the same request without the attack).
    Issued,
    /// The HTTP status and the OAuth error code (RFC 6749 section 5.2).
    Refused(u16, &'static str),
    /// A status from the HTTP layer, before the token endpoint (no OAuth body, no token).
    Http(u16),
}

/// One request of the suite.
pub(crate) struct Case {
    /// What it tries.
    pub(crate) name: String,
    /// The request, byte for byte.
    pub(crate) request: RawRequest,
    /// The answer it must get.
    pub(crate) expect: Expect,
    /// Credentials the request carries (tokens, assertions), which no log line may hold.
    pub(crate) secrets: Vec<String>,
}

/// The request presenting a catalogue token where it belongs.
fn token_request(case: &TokenCase) -> RawRequest {
    match &case.context {
        Context::Assertion { client_id, .. } => {
            let mut body = format!(
                "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
                enc(CLIENT_ASSERTION_TYPE),
                enc(&case.token)
            );
            if let Some(id) = client_id {
                body.push_str(&format!("&client_id={}", enc(id)));
            }
            form(body)
        }
        Context::Subject => form(format!(
            "grant_type={}&subject_token={}&subject_token_type={}&audience=convex",
            enc(TOKEN_EXCHANGE),
            enc(&case.token),
            enc(JWT_TOKEN_TYPE)
        ))
        .header("Authorization", basic(WORKER, CLIENT_SECRET)),
    }
}

fn from_token_case(case: TokenCase) -> Case {
    Case {
        request: token_request(&case),
        secrets: vec![case.token],
        name: case.name,
        expect: case.expect,
    }
}

/// The issuer under attack, the upstream it trusts, and what the run has seen.
struct Run {
    issuer: TestIssuer,
    audit_file: std::path::PathBuf,
    /// Every credential used or issued so far.
    secrets: Vec<String>,
    cases: usize,
    /// How many cases reached the token endpoint: each is one log line and one audit line.
    issued: usize,
    refused: usize,
    failures: Vec<String>,
}

impl Run {
    /// Sends each case in order and checks its answer.
    async fn group(&mut self, name: &str, cases: Vec<Case>) {
        let started = Instant::now();
        let count = cases.len();
        for case in cases {
            self.secrets.extend(case.secrets.iter().cloned());
            match case.expect {
                Expect::Issued => self.issued += 1,
                Expect::Refused(..) => self.refused += 1,
                Expect::Http(_) => {}
            }
            match case.request.send(self.issuer.addr()).await {
                Ok(response) => {
                    if let Some(problem) = self.check(case.expect, &response).await {
                        self.failures
                            .push(format!("[{name}] {}: {problem}", case.name));
                    }
                }
                Err(e) => self
                    .failures
                    .push(format!("[{name}] {}: no answer ({e})", case.name)),
            }
        }
        self.cases += count;
        self.after_group(name).await;
        eprintln!("{name}: {count} cases in {:?}", started.elapsed());
    }

    /// What is wrong with `response` given `expect`, if anything.
    async fn check(
        &mut self,
        expect: Expect,
        response: &svctoken_tests::raw_http::RawResponse,
    ) -> Option<String> {
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let token = body["access_token"].as_str();
        let got = format!("got {} {}", response.status, response.text());
        match expect {
            Expect::Issued => {
                let Some(token) = token.filter(|_| response.status == 200) else {
                    return Some(format!("want a token, {got}"));
                };
                self.secrets.push(token.to_owned());
                let (_, claims) = svctoken_jwks::dangerous::decode_unverified(token).ok()?;
                let aud = claims["aud"].as_str().unwrap_or_default().to_owned();
                // Panics (fails the test) unless it verifies against the issuer's JWKS.
                self.issuer.verify(token, &aud).await;
                None
            }
            Expect::Refused(status, error) => {
                if let Some(token) = token {
                    self.secrets.push(token.to_owned());
                    return Some(format!("A TOKEN WAS ISSUED: {got}"));
                }
                let mut problems = Vec::new();
                if response.status != status || body["error"] != error {
                    problems.push(format!("want {status} {error}, {got}"));
                }
                if response.header("content-type") != Some("application/json") {
                    problems.push("not application/json".to_owned());
                }
                if response.header("cache-control") != Some("no-store") {
                    problems.push("no Cache-Control: no-store".to_owned());
                }
                if status == 401 && response.header("www-authenticate").is_none() {
                    problems.push("401 without WWW-Authenticate".to_owned());
                }
                // Every failed client authentication reads the same: no oracle for an attacker.
                if status == 401 && body["error_description"] != "client authentication failed" {
                    problems.push(format!("401 that says more: {got}"));
                }
                (!problems.is_empty()).then(|| problems.join("; "))
            }
            Expect::Http(status) => {
                if token.is_some() {
                    return Some(format!("A TOKEN WAS ISSUED: {got}"));
                }
                (response.status != status).then(|| format!("want HTTP {status}, {got}"))
            }
        }
    }

    /// The issuer still issues; no JWKS it serves holds a private member; no log or audit
    /// line holds a credential seen so far.
    async fn after_group(&mut self, group: &str) {
        let alive = self.issuer.token(&[("audience", "convex")]).await;
        self.secrets.push(alive);
        for url in [
            format!("{}/.well-known/jwks.json", self.issuer.url),
            self.issuer.audience_jwks("convex"),
            self.issuer.audience_jwks("reports"),
            self.issuer.audience_jwks("billing"),
        ] {
            let jwks: Value = self
                .issuer
                .http
                .get(&url)
                .send()
                .await
                .expect("JWKS request")
                .json()
                .await
                .expect("JWKS JSON");
            let keys = jwks["keys"].as_array().expect("keys");
            assert!(!keys.is_empty(), "{url}: no keys");
            for key in keys {
                for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                    if key.get(private).is_some() {
                        self.failures
                            .push(format!("[{group}] {url} serves private member {private}"));
                    }
                }
            }
        }
        self.issuer
            .issuer
            .auditor()
            .flush()
            .await
            .expect("audit flush");
        let audit_file = std::fs::read_to_string(&self.audit_file).expect("audit file");
        assert!(audit_file.lines().count() > 0, "the audit file is written");
        let events = serde_json::to_string(&self.issuer.audit_events()).expect("json");
        for (what, text) in [
            ("log", crate::logs::captured()),
            ("audit file", audit_file),
            ("audit events", events),
        ] {
            for leak in leaks(&self.secrets, &text) {
                self.failures
                    .push(format!("[{group}] the {what} holds {leak}"));
            }
        }
    }
}

/// The credentials of `secrets` found in `text`: each whole, a client secret without its
/// `sts_` prefix, a token's signature segment, and each of these JSON-escaped. A long one is
/// looked for by its first and last 128 bytes (a leak of the whole holds both; a line cut
/// short holds the first).
pub(crate) fn leaks(secrets: &[String], text: &str) -> Vec<String> {
    const PART: usize = 128;
    let mut needles: Vec<String> = Vec::new();
    let mut add = |needle: &str| {
        if needle.len() < 16 {
            return;
        }
        let mut parts = vec![needle];
        if needle.len() > 2 * PART {
            let head = needle
                .char_indices()
                .nth(PART)
                .map_or(needle.len(), |(i, _)| i);
            let tail = needle
                .char_indices()
                .rev()
                .nth(PART - 1)
                .map_or(0, |(i, _)| i);
            parts = vec![&needle[..head], &needle[tail..]];
        }
        for part in parts {
            needles.push(part.to_owned());
            let escaped = serde_json::to_string(part).expect("json");
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != part {
                needles.push(escaped.to_owned());
            }
        }
    };
    for secret in secrets {
        add(secret);
        if let Some(bare) = secret.strip_prefix("sts_") {
            add(bare);
        }
        if secret.matches('.').count() >= 2 {
            add(secret.rsplit('.').next().unwrap_or_default());
        }
    }
    needles.sort();
    needles.dedup();
    let finder = AhoCorasick::new(&needles).expect("automaton");
    let mut found: Vec<String> = finder
        .find_overlapping_iter(text)
        .map(|m| {
            let needle = &needles[m.pattern().as_usize()];
            let line_start = text[..m.start()].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[m.end()..]
                .find('\n')
                .map_or(text.len(), |i| m.end() + i);
            let shown: String = needle.chars().take(40).collect();
            let line: String = text[line_start..line_end].chars().take(400).collect();
            format!("{shown}… in line: {line}")
        })
        .collect();
    found.truncate(20);
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attack_catalogue_gets_no_token_and_leaks_nothing() {
    crate::logs::install();
    let started = Instant::now();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let audit_file = dir.path().join("audit.log");
    let issuer = spawn_issuer_auditing_to(
        &world::issuer_config(&upstream.url),
        Arc::new(SystemClock),
        &audit_file,
    )
    .await;
    let minted = issuer
        .issuer
        .minter()
        .mint(&MintRequest::new("user:42", world::UPSTREAM_AUDIENCE))
        .expect("mint")
        .token
        .secret()
        .to_owned();
    let issuer_url = issuer.url.clone();
    let upstream_url = upstream.url.clone();
    let mut run = Run {
        issuer,
        audit_file,
        secrets: world::client_secrets().map(str::to_owned).to_vec(),
        cases: 0,
        issued: 0,
        refused: 0,
        failures: Vec::new(),
    };
    leak_detector_self_check();
    run.secrets.push(minted.clone());

    let assertions = catalogue::assertions(&issuer_url);
    run.group(
        "client assertions",
        assertions.into_iter().map(from_token_case).collect(),
    )
    .await;
    let subjects = catalogue::subject_tokens(&upstream_url, minted);
    run.group(
        "subject tokens",
        subjects.into_iter().map(from_token_case).collect(),
    )
    .await;
    let k = keys();
    let assertion = || {
        svctoken_tests::forge::signed(
            &k.es,
            &svctoken_tests::forge::header_of(&k.es),
            &world::assertion_claims("es", &issuer_url),
        )
    };
    let subject_token = || {
        svctoken_tests::forge::signed(
            &k.up_rs,
            &svctoken_tests::forge::header_of(&k.up_rs),
            &world::subject_claims(&upstream_url),
        )
    };
    run.group(
        "token requests",
        requests::cases(&assertion, &subject_token),
    )
    .await;

    eprintln!(
        "{} attack cases in {:?}; {} credentials checked against the logs and the audit trail",
        run.cases,
        started.elapsed(),
        run.secrets.len()
    );
    assert!(run.cases >= 250, "only {} cases", run.cases);
    // The logs and the trail searched above are the issuer's own: every request that reached
    // the token endpoint is in both (refusals at info, issuances at debug), and more (the
    // liveness checks).
    let log = crate::logs::captured();
    let logged_refusals = log.matches("token request refused").count();
    let logged_issues = log.matches("token issued").count();
    assert!(
        logged_refusals >= run.refused,
        "{logged_refusals} refusals logged of {}",
        run.refused
    );
    assert!(
        logged_issues >= run.issued,
        "{logged_issues} issuances logged of {}",
        run.issued
    );
    let audited = std::fs::read_to_string(&run.audit_file)
        .expect("audit file")
        .lines()
        .count();
    assert!(audited >= run.refused + run.issued, "{audited} audit lines");
    assert!(
        run.failures.is_empty(),
        "{} failures:\n{}",
        run.failures.len(),
        run.failures.join("\n")
    );
    run.issuer.stop().await;
}

/// The capture and the search work: a secret logged on purpose is found, so is one logged
/// without its `sts_` prefix, and a token of which only the signature was logged.
fn leak_detector_self_check() {
    let whole = "sts_canary-logged-whole-on-purpose-0001";
    let bare = "sts_canary-logged-without-its-prefix-0002";
    let signature = "c2lnbmF0dXJlLW9mLWEtY2FuYXJ5LXRva2Vu";
    let token = format!("eyJhbGciOiJub25lIn0.eyJzdWIiOiJjYW5hcnkifQ.{signature}");
    tracing::info!(value = whole, "leak detector self-check");
    tracing::trace!(value = &bare[4..], "leak detector self-check");
    tracing::debug!(value = signature, "leak detector self-check");
    let log = crate::logs::captured();
    for (what, secret) in [
        ("a secret", whole.to_owned()),
        ("a secret without its prefix", bare.to_owned()),
        ("a token's signature", token),
    ] {
        assert!(
            !leaks(&[secret], &log).is_empty(),
            "{what} logged on purpose is not found"
        );
    }
}
