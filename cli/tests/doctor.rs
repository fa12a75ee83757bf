//! `svctoken doctor` against a running `svctoken serve` (and a fake Convex deployment): the
//! checklist it prints and its exit code.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_svctoken");

/// A `svctoken serve` on the embedded default, on ephemeral ports, in its own directory.
struct Server {
    child: Child,
    issuer: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server and reads the issuer URL from its banner.
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("SVCTOKEN_CONFIG")
            .env_remove("SVCTOKEN_ISSUER")
            .env_remove("SVCTOKEN_LISTEN")
            .env_remove("SVCTOKEN_DATA_DIR")
            .env_remove("SVCTOKEN_ADMIN_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut issuer = None;
        let mut lines = Vec::new();
        while issuer.is_none() || !lines.iter().any(|l: &String| l.contains("curl")) {
            assert!(Instant::now() < deadline, "no banner: {lines:?}");
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).expect("read") > 0,
                "serve exited early: {lines:?}"
            );
            if let Some(rest) = line.strip_prefix("svctoken: issuer ") {
                issuer = rest.split_whitespace().next().map(str::to_owned);
            }
            lines.push(line);
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        Server {
            child,
            issuer: issuer.expect("issuer"),
            dir,
        }
    }

    /// The file `serve` wrote the development client's secret to.
    fn secret_file(&self) -> PathBuf {
        self.dir.path().join("svctoken-data/dev-client-secret")
    }

    fn secret(&self) -> String {
        std::fs::read_to_string(self.secret_file())
            .expect("secret")
            .trim()
            .to_owned()
    }

    /// `--client-id dev --client-secret-file <the dev secret>`.
    fn dev_client(&self) -> Vec<String> {
        vec![
            "--client-id".into(),
            "dev".into(),
            "--client-secret-file".into(),
            self.secret_file().to_str().expect("utf-8").into(),
        ]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `svctoken doctor <args>` in `cwd`.
fn doctor(cwd: &Path, args: &[String]) -> Output {
    Command::new(BIN)
        .arg("doctor")
        .args(args)
        .current_dir(cwd)
        .env_remove("SVCTOKEN_ISSUER")
        .env_remove("SVCTOKEN_CLIENT_ID")
        .env_remove("SVCTOKEN_CLIENT_SECRET")
        .output()
        .expect("run svctoken doctor")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

/// The lines of check `name`.
fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name}:")))
        })
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{out}"))
}

fn statuses<'a>(out: &'a str, status: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.starts_with(&format!("{status}  ")))
        .collect()
}

/// Nothing secret in the output: not the client secret, no JWT.
fn assert_no_secrets(output: &Output, secret: &str) {
    for text in [
        stdout(output),
        String::from_utf8_lossy(&output.stderr).into(),
    ] {
        assert!(!text.contains(secret), "the secret was printed:\n{text}");
        assert!(!text.contains("eyJ"), "a token was printed:\n{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn a_healthy_issuer_passes_with_only_the_loopback_warning() {
    let server = Server::start();
    let mut list = args(&["--issuer", &server.issuer, "--audience", "convex"]);
    list.extend(server.dev_client());
    let output = doctor(server.dir.path(), &list);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert_eq!(statuses(&out, "fail"), Vec::<&str>::new(), "{out}");
    let warns = statuses(&out, "warn");
    assert_eq!(warns.len(), 1, "{out}");
    assert!(warns[0].starts_with("warn  issuer url:"), "{out}");
    assert!(warns[0].contains("loopback"), "{out}");
    for name in [
        "discovery",
        "clock",
        "issuer",
        "jwks_uri",
        "token_endpoint",
        "jwks",
        "jwks cache",
        "jwks private",
        "provider",
        "standby",
        "token",
        "token iss",
        "token aud",
        "token header",
        "token signature",
        "token times",
        "token sub",
        "claims",
    ] {
        assert!(line(&out, name).starts_with("pass"), "{name}: {out}");
    }
    assert!(
        line(&out, "jwks").contains("/audiences/convex/jwks.json"),
        "{out}"
    );
    assert!(line(&out, "provider").contains("customJwt"), "{out}");
    assert!(line(&out, "jwks cache").contains("max-age=300s"), "{out}");
    assert!(
        line(&out, "claims").contains("\"sub\":\"svc:dev\""),
        "{out}"
    );
    assert!(
        line(&out, "claims").contains("\"client_id\":\"dev\""),
        "{out}"
    );
    assert!(out.contains("summary: "), "{out}");
    assert_no_secrets(&output, &server.secret());
}

#[test]
fn an_issuer_spelled_differently_fails_the_equality_checks() {
    let server = Server::start();
    let localhost = server.issuer.replace("127.0.0.1", "localhost");
    let mut list = args(&["--issuer", &localhost]);
    list.extend(server.dev_client());
    let output = doctor(server.dir.path(), &list);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let issuer = line(&out, "issuer");
    assert!(issuer.starts_with("fail"), "{out}");
    assert!(issuer.contains(&format!("{:?}", server.issuer)), "{out}");
    assert!(issuer.contains("byte for byte"), "{out}");
    // The token is still fetched (from the endpoint discovery names) and its iss is named.
    assert!(line(&out, "token iss").starts_with("fail"), "{out}");
    assert!(line(&out, "token signature").starts_with("pass"), "{out}");
    assert_no_secrets(&output, &server.secret());
}

#[test]
fn a_wrong_secret_fails_the_token_check() {
    let server = Server::start();
    let bad = server.dir.path().join("bad-secret");
    std::fs::write(&bad, "sts_not-the-secret-at-all\n").expect("write");
    let list = args(&[
        "--issuer",
        &server.issuer,
        "--client-id",
        "dev",
        "--client-secret-file",
        bad.to_str().expect("utf-8"),
    ]);
    let output = doctor(server.dir.path(), &list);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let token = line(&out, "token");
    assert!(token.starts_with("fail"), "{out}");
    assert!(token.contains("invalid_client"), "{out}");
    assert_eq!(statuses(&out, "fail").len(), 1, "{out}");
    assert_no_secrets(&output, "sts_not-the-secret-at-all");
}

#[test]
fn an_unreachable_issuer_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = doctor(dir.path(), &args(&["--issuer", &issuer]));
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let discovery = line(&out, "discovery");
    assert!(discovery.starts_with("fail"), "{out}");
    assert!(discovery.contains("can't reach"), "{out}");
    assert!(discovery.contains(&issuer), "{out}");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for list in [
        args(&["--issuer", "auth.example.com"]),
        args(&["--issuer", "ftp://auth.example.com"]),
        args(&[
            "--issuer",
            "https://a.example",
            "--deployment",
            "https://d.example",
        ]),
        args(&[
            "--issuer",
            "https://a.example",
            "--client-id",
            "x",
            "--client-secret-file",
            "/nonexistent/secret",
        ]),
    ] {
        let output = doctor(dir.path(), &list);
        assert_eq!(output.status.code(), Some(2), "{list:?}: {output:?}");
        assert!(output.stdout.is_empty(), "{list:?}");
    }
}

/// What the fake deployment saw: the request bodies and whether each had a bearer token.
type Seen = Arc<Mutex<Vec<(Value, bool)>>>;

/// A fake Convex `/api/query` that answers as `whoami` would: the identity from the bearer
/// token's claims (decoded, not verified: this fake only shows what reached it).
async fn fake_query(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    seen.lock().expect("lock").push((body, token.is_some()));
    let claims: Value = token
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let identity = json!({
        "subject": claims["sub"],
        "issuer": claims["iss"],
        "tokenIdentifier": format!("{}|{}", claims["iss"].as_str().unwrap_or(""), claims["sub"].as_str().unwrap_or("")),
        "client_id": claims["client_id"],
    });
    Json(json!({ "status": "success", "value": identity, "logLines": [] }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_call_prints_the_identity_the_function_returns() {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/api/query", post(fake_query))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let deployment = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let server = tokio::task::spawn_blocking(Server::start)
        .await
        .expect("join");
    let mut list = args(&[
        "--issuer",
        &server.issuer,
        "--audience",
        "convex",
        "--deployment",
        &deployment,
        "--function",
        "auth:whoami",
    ]);
    list.extend(server.dev_client());
    let cwd = server.dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || doctor(&cwd, &list))
        .await
        .expect("join");
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let call = line(&out, "deployment");
    assert!(call.starts_with("pass"), "{out}");
    assert!(call.contains("auth:whoami"), "{out}");
    assert!(call.contains("\"subject\":\"svc:dev\""), "{out}");
    assert!(
        call.contains(&format!("\"issuer\":\"{}\"", server.issuer)),
        "{out}"
    );

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].0,
        json!({ "path": "auth:whoami", "args": {}, "format": "json" })
    );
    assert!(seen[0].1, "the call carried a bearer token");
    assert_no_secrets(&output, &server.secret());
}

/// On the issuer's machine, `--config` adds the key store that file names: where its private
/// keys live, and that each published key's private half loads and signs; a missing one fails,
/// named.
#[test]
fn with_config_it_checks_the_key_store_on_this_machine() {
    let server = Server::start();
    std::fs::write(
        server.dir.path().join("c.toml"),
        "data_dir = \"svctoken-data\"\n",
    )
    .expect("write");
    let list = args(&["--issuer", &server.issuer, "--config", "c.toml"]);
    let output = doctor(server.dir.path(), &list);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let backend = line(&out, "key backend");
    assert!(
        backend.starts_with("pass  key backend: files: PKCS#8 files, mode 0600, in ")
            && backend.ends_with("svctoken-data/private"),
        "{out}"
    );
    assert!(
        line(&out, "private keys").starts_with(
            "pass  private keys: 2 published keys, each loads and signs (the active one: "
        ),
        "{out}"
    );

    let private = server.dir.path().join("svctoken-data/private");
    let keys: Vec<_> = (std::fs::read_dir(&private).expect("ls").flatten())
        .map(|e| e.path())
        .collect();
    std::fs::remove_file(&keys[0]).expect("remove a private key");
    let kid = keys[0].file_stem().and_then(|s| s.to_str()).expect("kid");
    let output = doctor(server.dir.path(), &list);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    let missing = line(&out, "private keys");
    assert!(
        missing.starts_with("fail") && missing.contains(&format!("svctoken keys revoke {kid}")),
        "{out}"
    );
}
