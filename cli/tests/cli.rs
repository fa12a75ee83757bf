//! The `svctoken` binary as an operator uses it: the embedded default, client creation, key
//! management, offline minting, the Convex config, clear errors, and crash safety.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use svctoken_issuer::store::{FileStore, KeyStore};
use svctoken_jwks::{Jwks, Validation, Verifier};

#[path = "cli/hsm.rs"]
mod hsm;

const BIN: &str = env!("CARGO_BIN_EXE_svctoken");

fn svctoken(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("SVCTOKEN_CONFIG")
        .env_remove("SVCTOKEN_ISSUER")
        .env_remove("SVCTOKEN_LISTEN")
        .env_remove("SVCTOKEN_DATA_DIR")
        .env_remove("SVCTOKEN_CLIENT_ID")
        .env_remove("SVCTOKEN_CLIENT_SECRET")
        .output()
        .expect("run svctoken")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn fails(output: &Output) -> String {
    assert!(!output.status.success(), "unexpectedly succeeded");
    String::from_utf8(output.stderr.clone()).expect("utf-8 stderr")
}

/// A minimal HTTP/1.1 exchange with 127.0.0.1 (Connection: close).
fn http(url: &str, method: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    try_http(url, method, headers, body).expect("an HTTP exchange with the issuer")
}

/// Like [`http`], `None` if the exchange fails (nobody listening, connection cut, a response
/// that is not whole).
fn try_http(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

struct Server {
    child: Child,
    lines: Vec<String>,
    /// The rest of stdout, read until the process exits.
    rest: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `svctoken serve <args>` in `cwd` and reads its banner up to the token endpoint
    /// line (and the curl line, on the embedded default).
    fn start(cwd: &Path, args: &[&str], wait_for_curl: bool) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "no banner: {lines:?}");
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0 {
                panic!("serve exited early: {lines:?}");
            }
            let done = if wait_for_curl {
                line.contains("curl")
            } else {
                line.contains("admin:")
            };
            lines.push(line.trim_end().to_owned());
            if done {
                break;
            }
        }
        let rest = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            rest
        });
        Server {
            child,
            lines,
            rest: Some(rest),
        }
    }

    fn issuer(&self) -> String {
        // The banner's first line (audit events on stdout may come before it).
        let first = self
            .lines
            .iter()
            .find(|l| l.starts_with("svctoken: issuer "))
            .expect("banner");
        let url = first.split_whitespace().nth(2).expect("issuer url");
        url.to_owned()
    }

    /// The admin listener's base URL, from the banner's `admin:` line.
    fn admin(&self) -> String {
        let line = self
            .lines
            .iter()
            .find(|l| l.trim_start().starts_with("admin:"))
            .expect("an admin line in the banner");
        line.split_whitespace()
            .nth(1)
            .expect("admin url")
            .to_owned()
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns what it printed after the banner.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve exited with {status}");
                let rest = self.rest.take().expect("reader");
                return rest.join().expect("stdout reader");
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `svctoken serve --config svctoken.toml` in `dir`, the file holding `extra` (TOML
/// tables), keys in `dir/data`, and a client `w` whose secret is `secret`.
fn serve_with_client_w(dir: &Path, secret: &str, extra: &str) -> Server {
    serve_config(
        dir,
        &format!(
            "{extra}[[clients]]\nid = \"w\"\nsecret_sha256 = \"{}\"\n",
            svctoken_issuer::clients::SecretHash::of(secret).to_hex()
        ),
    )
}

/// `serve --config svctoken.toml` in `dir` on a free port, the file being `toml` with
/// `data_dir` set to `dir/data`.
fn serve_config(dir: &Path, toml: &str) -> Server {
    let config = format!("data_dir = \"{}\"\n{toml}", dir.join("data").display());
    std::fs::write(dir.join("svctoken.toml"), config).expect("write");
    Server::start(
        dir,
        &["--config", "svctoken.toml", "--listen", "127.0.0.1:0"],
        false,
    )
}

fn fetch_token(issuer: &str, id: &str, secret: &str, audience: Option<&str>) -> (u16, Value) {
    let (status, text) =
        try_fetch_token(issuer, id, secret, audience).expect("a token endpoint exchange");
    (status, serde_json::from_str(&text).expect("json answer"))
}

/// A `client_credentials` request with Basic authentication; `None` if the exchange fails.
fn try_fetch_token(
    issuer: &str,
    id: &str,
    secret: &str,
    audience: Option<&str>,
) -> Option<(u16, String)> {
    let auth = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let mut body = "grant_type=client_credentials".to_owned();
    if let Some(a) = audience {
        body.push_str(&format!("&audience={a}"));
    }
    try_http(
        &format!("{issuer}/oauth/token"),
        "POST",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    )
}

fn verify_served(issuer: &str, token: &str, audience: &str) -> serde_json::Map<String, Value> {
    let (status, jwks) = http(&format!("{issuer}/.well-known/jwks.json"), "GET", &[], "");
    assert_eq!(status, 200);
    let jwks: Jwks = serde_json::from_str(&jwks).expect("jwks");
    Verifier::new(&jwks, Validation::new(issuer, audience))
        .verify(token, SystemTime::now())
        .expect("the token verifies against the served JWKS")
}

#[test]
fn serve_on_the_embedded_default_prints_a_curl_line_that_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--listen", "127.0.0.1:0"], true);
    let issuer = server.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer}");
    let curl = server.lines.last().expect("curl line");
    assert!(
        curl.contains("-u \"dev:$(cat ./svctoken-data/dev-client-secret)\""),
        "{curl}"
    );
    assert!(curl.contains(&format!("{issuer}/oauth/token")), "{curl}");

    let secret_file = dir.path().join("svctoken-data/dev-client-secret");
    let mode = std::fs::metadata(&secret_file)
        .expect("secret file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&secret_file)
        .expect("read")
        .trim()
        .to_owned();
    assert!(
        !server.lines.iter().any(|l| l.contains(&secret)),
        "the secret is never printed"
    );

    let (status, body) = fetch_token(&issuer, "dev", &secret, None);
    assert_eq!(status, 200, "{body}");
    let claims = verify_served(
        &issuer,
        body["access_token"].as_str().expect("token"),
        "convex",
    );
    assert_eq!(claims["sub"], "svc:dev");
    assert_eq!(claims["iss"], issuer.as_str());
    let kid =
        svctoken_jwks::dangerous::decode_unverified(body["access_token"].as_str().expect("t"))
            .expect("jwt")
            .0["kid"]
            .clone();
    let _ = server.stop();

    // A restart keeps the key and the development secret.
    let again = Server::start(dir.path(), &["--listen", "127.0.0.1:0"], true);
    let (status, body) = fetch_token(&again.issuer(), "dev", &secret, None);
    assert_eq!(status, 200, "{body}");
    let kid_again =
        svctoken_jwks::dangerous::decode_unverified(body["access_token"].as_str().expect("t"))
            .expect("jwt")
            .0["kid"]
            .clone();
    assert_eq!(kid, kid_again);
    let _ = again.stop();
}

#[test]
fn clients_add_prints_the_secret_once_and_a_block_the_issuer_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(&svctoken(
        dir.path(),
        &[
            "clients",
            "add",
            "--id",
            "billing-worker",
            "--audience",
            "convex",
            "--scope",
            "billing:write",
            "--max-ttl",
            "10m",
        ],
    ));
    let secret = out
        .lines()
        .find(|l| l.starts_with("sts_"))
        .expect("secret line")
        .to_owned();
    assert_eq!(out.matches(&secret).count(), 1, "printed once");
    let block = &out[out.find("[[clients]]").expect("block")..];
    assert!(!block.contains(&secret), "only the hash goes in the block");
    let config = format!(
        "issuer = \"http://127.0.0.1:1\"\ndata_dir = \"{}\"\n[[audiences]]\nname = \"convex\"\n{block}",
        dir.path().join("data").display()
    );
    std::fs::write(dir.path().join("svctoken.toml"), config).expect("write config");
    let server = Server::start(
        dir.path(),
        &[
            "--config",
            "svctoken.toml",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            "http://127.0.0.1:1",
        ],
        false,
    );
    let port = server.lines[0].rsplit(':').next().expect("port").to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let (status, body) = fetch_token(&base, "billing-worker", &secret, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "billing:write");
    let (status, body) = fetch_token(&base, "billing-worker", "sts_wrong", None);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let _ = server.stop();

    let err = fails(&svctoken(dir.path(), &["clients", "add", "--id", "bad id"]));
    assert!(err.contains("client id"), "{err}");
}

/// The value of the series `series` (name and labels as exposed) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
        .and_then(|(_, v)| v.parse().ok())
}

/// `/metrics`, `/healthz` and `/readyz` answer on the admin listener the banner names, not on
/// the public one; a `svctoken keys rotate` next to the running issuer shows as `by="cli"`.
#[test]
fn the_admin_listener_serves_metrics_and_counts_a_command_s_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    // Bootstrapped an hour ago: `keys rotate` hands over to the standby at once.
    store_bootstrapped_ago(&data, 3600);
    let server = Server::start(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--data-dir", d],
        true,
    );
    let (public, admin) = (server.issuer(), server.admin());
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    assert_ne!(public, admin);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, body) = http(&format!("{admin}{path}"), "GET", &[], "");
        assert_eq!(status, 200, "{path}: {body}");
        let (status, _) = http(&format!("{public}{path}"), "GET", &[], "");
        assert_eq!(status, 404, "{path} on the public listener");
    }
    let cli = "svctoken_key_rotations_total{by=\"cli\"}";
    let (_, text) = http(&format!("{admin}/metrics"), "GET", &[], "");
    assert_eq!(metric(&text, cli), Some(0.0), "{text}");

    let out = ok(&svctoken(dir.path(), &["keys", "rotate", "--data-dir", d]));
    assert!(out.contains("now signs"), "{out}");
    // The issuer picks the change up at its next lifecycle run (every 5 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (_, text) = http(&format!("{admin}/metrics"), "GET", &[], "");
        if metric(&text, cli) == Some(1.0) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(metric(&text, cli), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "svctoken_key_rotations_total{by=\"timer\"}"),
        Some(0.0),
        "{text}"
    );
    let _ = server.stop();

    let off = Server::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            d,
            "--admin-listen",
            "off",
        ],
        true,
    );
    assert!(
        off.lines.iter().any(|l| l.trim() == "admin:     off"),
        "{:?}",
        off.lines
    );
    let _ = off.stop();
}

/// A store as a running issuer would have left it `age` seconds ago: the signing key and its
/// standby, both published then (on the embedded default's schedule: 24 h, lead 5 min 5 s).
fn store_bootstrapped_ago(data: &Path, age: u64) -> FileStore {
    use svctoken_issuer::rotation::{self, Schedule};
    let store = FileStore::open(data).expect("store");
    let then = svctoken_mint::Clock::unix_secs(&svctoken_mint::SystemClock) - age;
    rotation::rotate(&store, &Schedule::default(), then, &()).expect("bootstrap");
    store
}

/// The kid of the first `keys list` line whose role is `role`.
fn listed(list: &str, role: &str) -> String {
    list.lines()
        .find(|l| l.split_whitespace().nth(2) == Some(role))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {role} key in\n{list}"))
        .to_owned()
}

/// What a command printed on stdout and stderr, which it must have exited 0 with.
fn ok_both(output: &Output) -> (String, String) {
    let out = ok(output);
    (
        out,
        String::from_utf8(output.stderr.clone()).expect("utf-8"),
    )
}

#[test]
fn keys_rotate_list_and_revoke() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    // Bootstrapped an hour ago: the standby has long had its lead.
    store_bootstrapped_ago(&data, 3600);
    let keys = |args: &[&str]| {
        let mut full = vec!["keys"];
        full.extend_from_slice(args);
        full.extend(["--data-dir", d]);
        svctoken(dir.path(), &full)
    };
    let list = ok(&keys(&["list"]));
    assert!(
        list.contains(" active ") && list.contains(" standby "),
        "{list}"
    );
    assert!(list.contains("ready: caching verifiers hold it"), "{list}");
    let (first, standby) = (listed(&list, "active"), listed(&list, "standby"));

    // A rotation hands over to the standby at once, and publishes the next one.
    let out = ok(&keys(&["rotate"]));
    assert!(out.contains(&format!("{standby} now signs")), "{out}");
    assert!(out.contains("as the standby; it signs from"), "{out}");
    let again = ok(&keys(&["rotate"]));
    assert!(again.contains("nothing to do"), "{again}");
    let list = ok(&keys(&["list"]));
    assert_eq!(listed(&list, "active"), standby);
    assert_eq!(listed(&list, "retired"), first);
    let next = listed(&list, "standby");
    assert!(
        list.contains("ready for an emergency revocation from"),
        "a standby published just now is not ready yet: {list}"
    );

    // Revoking the standby or a retired key changes no signer and warns about nothing.
    let (out, err) = ok_both(&keys(&["revoke", &next]));
    assert!(
        out.contains(&format!("revoked {next}, the standby (it never signed)"))
            && out.contains("no longer in the JWKS")
            && out.contains("may trust it until")
            && out.contains("as the standby; it signs from"),
        "{out}"
    );
    assert!(!err.contains("WARNING"), "{err}");
    let (out, err) = ok_both(&keys(&["revoke", &first]));
    assert!(out.contains("a retired key"), "{out}");
    assert!(!err.contains("WARNING"), "{err}");

    // Revoking the signing key while its standby is minutes old: loud, and says for how long.
    let list = ok(&keys(&["list"]));
    let (signing, fresh) = (listed(&list, "active"), listed(&list, "standby"));
    let (out, err) = ok_both(&keys(&["revoke", &signing]));
    assert!(
        out.contains(&format!("The standby {fresh} signs from now")),
        "{out}"
    );
    assert!(
        out.contains("redeployed with a new `svctoken convex-config"),
        "{out}"
    );
    assert!(
        err.contains("WARNING: verifiers may REJECT new tokens for up to 5m")
            && err.contains(&format!("the standby {fresh} was published only at")),
        "{err}"
    );

    let list = ok(&keys(&["list"]));
    for kid in [&first, &next, &signing] {
        assert!(list.contains(&format!("{kid} revoked")), "{list}");
        assert!(!data.join("private").join(format!("{kid}.pem")).exists());
    }
    let err = fails(&keys(&["revoke", "nope"]));
    assert!(err.contains("keys list"), "{err}");

    // Every change is in the audit file, made by the command, and the chain is intact.
    let out = ok(&svctoken(
        dir.path(),
        &["audit", "verify", "data/audit.log"],
    ));
    assert!(out.contains("intact"), "{out}");
    let changes = lifecycle_lines(&data.join("audit.log"));
    assert!(changes.iter().all(|(by, _, _)| by == "cli"), "{changes:?}");
    let revoked: Vec<&str> = changes
        .iter()
        .filter(|(_, change, _)| change == "revoked")
        .map(|(_, _, kid)| kid.as_str())
        .collect();
    assert_eq!(revoked, [next.as_str(), first.as_str(), signing.as_str()]);
}

/// The lifecycle lines of an audit file: who, what change, which key.
fn lifecycle_lines(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .expect("audit file")
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|event| event["outcome"] == "lifecycle")
        .map(|event| {
            let field = |v: &Value| v.as_str().expect("a string").to_owned();
            (
                field(&event["lifecycle"]["by"]),
                field(&event["lifecycle"]["change"]),
                field(&event["kid"]),
            )
        })
        .collect()
}

/// The emergency: the signing key is revoked and a standby that caching verifiers already hold
/// signs at once, with no warning; without a standby, the warning says so.
#[test]
fn revoking_the_signing_key_hands_over_to_a_ready_standby_or_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let store = store_bootstrapped_ago(&data, 3600);
    let set = store.load().expect("load");
    let (signing, standby) = (
        set.active().expect("active").kid.clone(),
        set.prepared().expect("standby").kid.clone(),
    );
    let (out, err) = ok_both(&svctoken(
        dir.path(),
        &["keys", "revoke", &signing, "--data-dir", d],
    ));
    assert!(
        out.contains(&format!("revoked {signing}, the signing key"))
            && out.contains(&format!("The standby {standby} signs from now"))
            && out.contains("no token it signs is rejected"),
        "{out}"
    );
    assert!(err.is_empty(), "no warning: {err}");

    // A store without a standby (as written before standbys existed).
    {
        let _lock = store.lock().expect("lock");
        let mut set = store.load().expect("load");
        set.keys.retain(|k| !k.is_prepared());
        store.save(&mut set).expect("save");
    }
    let (out, err) = ok_both(&svctoken(
        dir.path(),
        &["keys", "revoke", &standby, "--data-dir", d],
    ));
    assert!(out.contains("the signing key"), "{out}");
    assert!(
        err.contains("WARNING: verifiers may REJECT new tokens for up to 5m 5s")
            && err.contains("there was no standby"),
        "{err}"
    );
}

/// `keys` commands manage an existing store only: pointed at a directory without one (by
/// `--data-dir`, `SVCTOKEN_DATA_DIR`, a config file or the default), each fails, names the
/// directory it looked in and how to point at the right one, and creates nothing.
/// Output piped into a reader that leaves (`svctoken keys list | head -1`): the command ends as
/// Unix tools do, on SIGPIPE, never with a panic.
#[test]
fn a_reader_that_leaves_ends_the_command_without_a_panic() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    ok(&svctoken(
        dir.path(),
        &["mint", "--sub", "svc:x", "--aud", "convex", "--data-dir", d],
    ));
    for _ in 0..3 {
        let mut child = Command::new(BIN)
            .args(["keys", "list", "--data-dir", d])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            output.status.signal(),
            Some(13),
            "ended by SIGPIPE: {stderr}"
        );
    }
}

#[test]
fn keys_commands_never_create_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().canonicalize().expect("canonical");
    let typo = cwd.join("dta");
    std::fs::write(
        cwd.join("svctoken.toml"),
        format!("data_dir = \"{}\"\n", typo.display()),
    )
    .expect("write");
    let t = typo.to_str().expect("utf-8");
    for command in [
        &["keys", "list"][..],
        &["keys", "rotate"],
        &["keys", "revoke", "kid"],
    ] {
        let pointed: [(Vec<&str>, Option<&str>, std::path::PathBuf); 4] = [
            (vec!["--data-dir", t], None, typo.clone()),
            (vec![], Some(t), typo.clone()),
            (vec!["--config", "svctoken.toml"], None, typo.clone()),
            (vec![], None, cwd.join("svctoken-data")),
        ];
        for (flags, env, looked_in) in pointed {
            let mut cmd = Command::new(BIN);
            cmd.args(command)
                .args(&flags)
                .current_dir(&cwd)
                .env_remove("SVCTOKEN_CONFIG")
                .env_remove("SVCTOKEN_DATA_DIR");
            if let Some(env) = env {
                cmd.env("SVCTOKEN_DATA_DIR", env);
            }
            let err = fails(&cmd.output().expect("run"));
            let case = format!("{command:?} {flags:?} {env:?}");
            assert!(
                err.starts_with("svctoken: no key store in "),
                "{case}: {err}"
            );
            assert!(
                err.contains(&format!("{} (no keys.json", looked_in.display())),
                "{case}: names the directory: {err}"
            );
            for how in ["--data-dir", "SVCTOKEN_DATA_DIR", "--config"] {
                assert!(err.contains(how), "{case}: says how to point at it: {err}");
            }
            assert_eq!(
                std::fs::read_dir(&cwd).expect("ls").count(),
                1,
                "{case}: nothing created"
            );
        }
    }

    // Once a store exists there, the same commands work.
    ok(&svctoken(
        &cwd,
        &["mint", "--sub", "svc:x", "--aud", "convex", "--data-dir", t],
    ));
    assert!(ok(&svctoken(&cwd, &["keys", "list", "--data-dir", t])).contains(" active "));
}

/// The claims of a token `mint` printed, verified against every key in the store in `data`
/// (issuer `issuer`, audience `convex`).
fn verify_offline(data: &Path, issuer: &str, token: &str) -> serde_json::Map<String, Value> {
    let store = FileStore::open(data).expect("store");
    let jwks = Jwks {
        keys: store
            .load()
            .expect("load")
            .keys
            .iter()
            .map(|k| k.public.clone())
            .collect(),
    };
    Verifier::new(&jwks, Validation::new(issuer, "convex"))
        .verify(token.trim(), SystemTime::now())
        .expect("valid")
}

#[test]
fn mint_signs_offline_and_explains_bad_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let d = d.to_str().expect("utf-8");
    let issuer = "https://auth.example.com";
    let token = ok(&svctoken(
        dir.path(),
        &[
            "mint",
            "--sub",
            "svc:backfill",
            "--aud",
            "convex",
            "--ttl",
            "2m",
            "--claim",
            "team=payments",
            "--claim",
            "tier=2",
            "--issuer",
            issuer,
            "--data-dir",
            d,
        ],
    ));
    let claims = verify_offline(Path::new(d), issuer, &token);
    assert_eq!(claims["sub"], "svc:backfill");
    assert_eq!(claims["tier"], 2);
    assert_eq!(claims["team"], "payments");
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        120
    );

    for (args, expect) in [
        (vec!["--aud", "elsewhere"], "not a configured audience"),
        (
            vec!["--aud", "convex", "--ttl", "1h"],
            "raise a client's max_ttl",
        ),
        (vec!["--aud", "convex", "--claim", "sub=root"], "reserved"),
        (vec!["--aud", "convex", "--claim", "novalue"], "name=value"),
        (vec!["--aud", "convex", "--ttl", "soon"], "not a duration"),
    ] {
        let mut full = vec!["mint", "--sub", "svc:x", "--data-dir", d];
        full.extend(args);
        let err = fails(&svctoken(dir.path(), &full));
        assert!(err.contains(expect), "{full:?}: {err}");
    }
}

/// A custom claim named like an OpenID Connect standard claim, with another JSON type, would
/// make a convex-oidc audience refuse the whole token: the issuer won't start with one in its
/// configuration, and `mint --claim` refuses it before touching the key store.
#[test]
fn standard_oidc_claims_with_the_wrong_type_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let oidc = "issuer = \"https://auth.example.com\"\n[audit]\nfile = \"\"\n[keys]\nalgorithm = \"EdDSA\"\n\
                [[audiences]]\nname = \"convex\"\nprofile = \"convex-oidc\"\n";
    let client = |claims: &str| {
        format!(
            "{oidc}[[clients]]\nid = \"worker\"\nsecret_sha256 = \"{}\"\nclaims = {{ {claims} }}\n",
            "ab".repeat(32)
        )
    };
    std::fs::write(
        dir.path().join("bad.toml"),
        client("email_verified = \"yes\""),
    )
    .expect("write");
    let err = fails(&svctoken(
        dir.path(),
        &[
            "serve",
            "--config",
            "bad.toml",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "serve-data",
        ],
    ));
    assert!(err.starts_with("svctoken: "), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    assert!(
        err.contains(
            "client \"worker\": mint: claim \"email_verified\" must be a boolean, not a string \
             (an OpenID Connect standard claim: OIDC verifiers, a convex-oidc audience among \
             them, refuse the whole token otherwise)"
        ),
        "{err}"
    );
    assert!(
        !dir.path().join("serve-data").exists(),
        "a refused configuration leaves no key store behind"
    );

    std::fs::write(dir.path().join("oidc.toml"), oidc).expect("write");
    let mint = |claims: &[&str], data: &str| {
        let mut args = vec![
            "mint",
            "--sub",
            "svc:report",
            "--aud",
            "convex",
            "--config",
            "oidc.toml",
            "--data-dir",
            data,
        ];
        for claim in claims {
            args.extend(["--claim", claim]);
        }
        svctoken(dir.path(), &args)
    };
    for (claim, expect) in [
        (
            "email_verified=yes",
            "\"email_verified\" must be a boolean, not a string",
        ),
        ("name=5", "\"name\" must be a string, not a number"),
        (
            "address=1 Main St",
            "\"address\" must be an object whose members are strings",
        ),
        (
            "updated_at=2024-01-01",
            "\"updated_at\" must be a number of whole seconds",
        ),
        (
            "amr=pwd",
            "\"amr\" must be an array of strings, not a string",
        ),
        (
            "auth_time=soon",
            "\"auth_time\" must be a number of whole seconds",
        ),
        ("name#en=[1]", "\"name#en\" must be a string, not an array"),
    ] {
        let err = fails(&mint(&[claim], "refused-data"));
        assert!(err.contains(expect), "{claim}: {err}");
        assert!(
            !dir.path().join("refused-data").exists(),
            "{claim}: no key store created"
        );
    }

    let token = ok(&mint(
        &[
            "email=ada@example.com",
            "email_verified=true",
            "name=Ada",
            "address={\"formatted\": \"1 Main St\"}",
            "updated_at=1700000000",
            "amr=[\"pwd\"]",
        ],
        "data",
    ));
    let claims = verify_offline(&dir.path().join("data"), "https://auth.example.com", &token);
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Ada");
    assert_eq!(
        claims["address"],
        serde_json::json!({"formatted": "1 Main St"})
    );
    assert_eq!(claims["updated_at"], 1_700_000_000);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
}

#[test]
fn convex_config_prints_a_provider_entry_convex_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let d = d.to_str().expect("utf-8");
    let issuer = "https://auth.example.com";
    let out = ok(&svctoken(
        dir.path(),
        &["convex-config", "--issuer", issuer, "--data-dir", d],
    ));
    for needle in [
        "type: \"customJwt\"",
        "applicationID: \"convex\"",
        "issuer: \"https://auth.example.com\"",
        "jwks: \"https://auth.example.com/audiences/convex/jwks.json\"",
        "algorithm: \"ES256\"",
    ] {
        assert!(out.contains(needle), "{needle} missing from\n{out}");
    }

    let out = ok(&svctoken(
        dir.path(),
        &[
            "convex-config",
            "--issuer",
            issuer,
            "--data-dir",
            d,
            "--data-uri",
        ],
    ));
    let (_, embedded) = printed_data_uri(&out);
    let store = FileStore::open(d).expect("store");
    let set = store.load().expect("load");
    assert_eq!(embedded.keys.len(), set.keys.len());
    assert!(out.contains("Redeploy"), "{out}");

    std::fs::write(
        dir.path().join("oidc.toml"),
        "issuer = \"https://auth.example.com\"\n[keys]\nalgorithm = \"RS256\"\n[[audiences]]\nname = \"convex\"\nprofile = \"convex-oidc\"\n",
    )
    .expect("write");
    let out = ok(&svctoken(
        dir.path(),
        &["convex-config", "--config", "oidc.toml"],
    ));
    assert!(
        out.contains("domain: \"https://auth.example.com\"")
            && out.contains("applicationID: \"convex\""),
        "{out}"
    );
    let err = fails(&svctoken(
        dir.path(),
        &["convex-config", "--config", "oidc.toml", "--data-uri"],
    ));
    assert!(
        err.contains("only with the convex-custom-jwt profile"),
        "{err}"
    );
}

/// The `data:` URI `convex-config --data-uri` printed, and the JWKS it holds.
fn printed_data_uri(out: &str) -> (String, Jwks) {
    let uri = out
        .split('"')
        .find(|s| s.starts_with("data:"))
        .expect("data uri");
    let body = uri
        .strip_prefix(svctoken_jwks::DATA_URI_PREFIX)
        .expect("prefix");
    let jwks = serde_json::from_slice(&STANDARD.decode(body).expect("base64")).expect("jwks");
    (uri.to_owned(), jwks)
}

/// `convex-config --data-uri` embeds the standby with the signing key: once the standby takes
/// over, its tokens verify against the URI printed before, with Convex never fetching.
#[tokio::test]
async fn the_data_uri_holds_the_standby_whose_tokens_verify_once_it_signs() {
    use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let d = data.to_str().expect("utf-8");
    let issuer = "https://auth.example.com";
    let set = store_bootstrapped_ago(&data, 3600).load().expect("load");
    let (signing, standby) = (
        set.active().expect("active").kid.clone(),
        set.prepared().expect("standby").kid.clone(),
    );
    let out = ok(&svctoken(
        dir.path(),
        &[
            "convex-config",
            "--data-uri",
            "--issuer",
            issuer,
            "--data-dir",
            d,
        ],
    ));
    let (uri, embedded) = printed_data_uri(&out);
    let kids: Vec<&str> = embedded
        .keys
        .iter()
        .map(|k| k.kid.as_deref().expect("kid"))
        .collect();
    assert_eq!(kids, [signing.as_str(), standby.as_str()]);

    // The standby takes over (as at the end of the period), and signs the next token.
    let out = ok(&svctoken(dir.path(), &["keys", "rotate", "--data-dir", d]));
    assert!(out.contains(&format!("{standby} now signs")), "{out}");
    let token = ok(&svctoken(
        dir.path(),
        &[
            "mint",
            "--sub",
            "svc:x",
            "--aud",
            "convex",
            "--issuer",
            issuer,
            "--data-dir",
            d,
        ],
    ));
    let convex = ConvexAuth::new(vec![Provider::CustomJwt {
        issuer: issuer.into(),
        jwks: uri,
        algorithm: CustomJwtAlgorithm::ES256,
        application_id: Some("convex".into()),
    }]);
    let identity = convex
        .verify(token.trim())
        .await
        .expect("the standby's token verifies against the data: URI printed before");
    assert_eq!(identity.subject, "svc:x");
    assert_eq!(convex.fetch_count(), 0);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim().split('.').next().expect("header"))
            .expect("base64url"),
    )
    .expect("json");
    assert_eq!(header["kid"], standby.as_str(), "signed by the standby");
}

#[test]
fn bad_configuration_is_refused_with_what_to_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("eddsa.toml"),
        "[keys]\nalgorithm = \"EdDSA\"\n",
    )
    .expect("write");
    for (args, expect) in [
        (
            vec!["serve", "--config", "eddsa.toml"],
            "set [keys] algorithm to \"ES256\" or \"RS256\"",
        ),
        (vec!["serve", "--config", "missing.toml"], "missing.toml"),
        (
            vec!["serve", "--issuer", "https://auth.example.com/"],
            "remove it",
        ),
        (vec!["serve", "--listen", "nowhere"], "not an address"),
    ] {
        let err = fails(&svctoken(dir.path(), &args));
        assert!(err.starts_with("svctoken: "), "{err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let help = ok(&svctoken(dir.path(), &["--help"]));
    for sub in ["serve", "clients", "keys", "mint", "convex-config"] {
        assert!(help.contains(sub), "{sub} missing from --help");
    }
    for sub in [
        &["serve"][..],
        &["clients", "add"],
        &["keys", "rotate"],
        &["mint"],
        &["convex-config"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        assert!(
            ok(&svctoken(dir.path(), &args)).contains("Examples:"),
            "{sub:?}"
        );
    }
}

/// `rounds` runs of `svctoken keys rotate` (or `keys revoke` of the standby, when there is one)
/// with the configuration `config` in `cwd`, each killed (`kill -9`) at a moment spread
/// deterministically over `0..spread_ms`. After each: `store` loads, no published key but the
/// one revoked is lost, and the active key's private half loads. Returns how many runs were
/// killed before they finished.
fn kill_9_rounds(
    cwd: &Path,
    config: &str,
    store: &dyn KeyStore,
    rounds: u64,
    spread_ms: u64,
) -> usize {
    let mut interrupted = 0;
    for round in 0..rounds {
        let before = store.load().expect("loadable before");
        let revoking = before.prepared().map(|k| k.kid.clone());
        let command: Vec<&str> = match &revoking {
            Some(kid) => vec!["keys", "revoke", kid, "--config", config],
            None => vec!["keys", "rotate", "--config", config],
        };
        let mut child = Command::new(BIN)
            .args(&command)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis((round * 37) % spread_ms));
        if child.try_wait().expect("poll").is_none() {
            interrupted += 1;
        }
        child.kill().ok();
        child.wait().expect("reap");

        let after = store
            .load()
            .unwrap_or_else(|e| panic!("round {round}: store does not load: {e}"));
        for key in &before.keys {
            if Some(&key.kid) != revoking.as_ref() {
                assert!(
                    after.get(&key.kid).is_some(),
                    "round {round}: published key {} lost",
                    key.kid
                );
            }
        }
        let active = after.active().expect("an active key");
        store
            .signing_key(&active.kid)
            .unwrap_or_else(|e| panic!("round {round}: the active key does not sign: {e}"));
    }
    interrupted
}

/// `kill -9` at arbitrary moments of rotations and revocations (RSA keys, so each run spends
/// long enough generating to be caught mid-way) never leaves a store that fails to load, and
/// never loses a published key other than the one being revoked.
#[test]
fn kill_9_at_any_moment_leaves_a_loadable_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("rsa.toml"),
        format!(
            "data_dir = \"{}\"\n[keys]\nalgorithm = \"RS256\"\nrsa_bits = 3072\n",
            data.display()
        ),
    )
    .expect("write");
    ok(&svctoken(
        dir.path(),
        &[
            "mint", "--sub", "svc:x", "--aud", "convex", "--config", "rsa.toml",
        ],
    ));
    let store = FileStore::open(&data).expect("store");

    let interrupted = kill_9_rounds(dir.path(), "rsa.toml", &store, 24, 400);
    assert!(
        interrupted >= 5,
        "only {interrupted} runs were interrupted: the test proves nothing"
    );
    ok(&svctoken(
        dir.path(),
        &["keys", "list", "--config", "rsa.toml"],
    ));

    // The next writer sweeps what killed ones left: no temporary files, no unnamed private keys.
    ok(&svctoken(
        dir.path(),
        &["keys", "rotate", "--config", "rsa.toml"],
    ));
    let set = store.load().expect("load");
    for sub in [data.clone(), data.join("private")] {
        for entry in std::fs::read_dir(&sub).expect("ls").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp."), "left behind: {name}");
            if let Some(kid) = name.strip_suffix(".pem") {
                assert!(set.get(kid).is_some(), "orphan private key {kid}");
            }
        }
    }
}

#[test]
fn environment_variables_set_the_top_level_keys_and_flags_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        ok(&cmd.output().expect("run"))
    };
    std::fs::write(
        dir.path().join("file.toml"),
        "issuer = \"https://file.example\"\n",
    )
    .expect("write");
    let env = [
        ("SVCTOKEN_ISSUER", "https://env.example"),
        ("SVCTOKEN_DATA_DIR", d.to_str().expect("utf-8")),
        ("SVCTOKEN_CONFIG", "file.toml"),
    ];
    let out = run(&["convex-config"], &env);
    assert!(
        out.contains("issuer: \"https://env.example\""),
        "env wins over the file: {out}"
    );
    let out = run(&["convex-config", "--issuer", "https://flag.example"], &env);
    assert!(
        out.contains("issuer: \"https://flag.example\""),
        "the flag wins: {out}"
    );
    let out = run(&["convex-config"], &[("SVCTOKEN_CONFIG", "file.toml")]);
    assert!(out.contains("issuer: \"https://file.example\""), "{out}");
    run(&["mint", "--sub", "s", "--aud", "convex"], &env);
    assert!(
        d.join("keys.json").exists(),
        "SVCTOKEN_DATA_DIR chose the store"
    );
}

/// `svctoken token` prints a token the issuer's JWKS verifies; `svctoken call` calls a
/// Convex-faithful deployment with it and prints the value, or the error with a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_call_from_the_command_line() {
    use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};
    use svctoken_tests::fake_convex::{FakeConvex, Kind, Outcome};

    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--listen", "127.0.0.1:0"], true);
    let issuer = server.issuer();
    let secret_file = dir.path().join("svctoken-data/dev-client-secret");
    let secret_file = secret_file.to_str().expect("utf-8").to_owned();
    let cwd = dir.path().to_path_buf();
    let run = move |args: Vec<String>| {
        let cwd = cwd.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            svctoken(&cwd, &args)
        })
    };
    let id_args = vec![
        "--issuer".to_owned(),
        issuer.clone(),
        "--client-id".into(),
        "dev".into(),
        "--client-secret-file".into(),
        secret_file.clone(),
    ];

    let mut token_args = vec!["token".to_owned()];
    token_args.extend(id_args.clone());
    let out = ok(&run(token_args).await.expect("join"));
    let claims = verify_served(&issuer, out.trim(), "convex");
    assert_eq!(claims["sub"], "svc:dev");

    let auth = ConvexAuth::new(vec![Provider::CustomJwt {
        issuer: issuer.clone(),
        jwks: format!("{issuer}/audiences/convex/jwks.json"),
        algorithm: CustomJwtAlgorithm::ES256,
        application_id: Some("convex".into()),
    }]);
    let fake = FakeConvex::start(auth).await;
    fake.function(Kind::Mutation, "messages:send", |identity, args| {
        Outcome::Success(
            serde_json::json!({"from": identity.map(|i| i.subject.clone()), "body": args["body"]}),
        )
    });
    fake.function(Kind::Query, "messages:fail", |_, _| Outcome::Error {
        message: "no such channel".into(),
        data: Some(serde_json::json!({"channel": 7})),
    });
    let call = |kind: &str, path: &str, args: &str| {
        let mut v = vec![
            "call".to_owned(),
            "--deployment".into(),
            fake.url.clone(),
            kind.into(),
            path.into(),
            args.into(),
        ];
        v.extend(id_args.clone());
        v
    };
    let out = ok(&run(call("mutation", "messages:send", r#"{"body":"hi"}"#))
        .await
        .expect("join"));
    let value: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(value, serde_json::json!({"from": "svc:dev", "body": "hi"}));

    let err = fails(
        &run(call("query", "messages:fail", "{}"))
            .await
            .expect("join"),
    );
    assert!(
        err.contains("no such channel") && err.contains("\"channel\":7"),
        "{err}"
    );
    let err = fails(
        &run(call("query", "messages:fail", "[1]"))
            .await
            .expect("join"),
    );
    assert!(err.contains("JSON object"), "{err}");
    let err = fails(
        &run(vec![
            "token".into(),
            "--issuer".into(),
            issuer.clone(),
            "--client-id".into(),
            "dev".into(),
        ])
        .await
        .expect("join"),
    );
    assert!(err.contains("SVCTOKEN_CLIENT_SECRET"), "{err}");
    let _ = server.stop();
}

/// The secretless flow from the command line: register a client by its key, then fetch a
/// token acting for a user with `--private-key` and `--subject`.
#[test]
fn secretless_client_acting_for_a_user_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = svctoken_jwks::SigningKey::generate(svctoken_jwks::Algorithm::EdDSA).expect("key");
    let key_path = dir.path().join("worker.pem");
    std::fs::write(
        &key_path,
        svctoken_jwks::dangerous::export_pkcs8_pem(&key)
            .expect("a key held in memory exports")
            .as_bytes(),
    )
    .expect("write");
    let key_arg = key_path.to_str().expect("utf-8");
    let out = ok(&svctoken(
        dir.path(),
        &[
            "clients",
            "add",
            "--id",
            "billing-worker",
            "--jwk-file",
            key_arg,
            "--act-as",
            "user:*",
        ],
    ));
    assert!(!out.contains("sts_"), "no secret is made for a key client");
    assert!(!out.contains("PRIVATE"), "only the public key is printed");
    let block = &out[out.find("[[clients]]").expect("block")..];
    assert!(block.contains(key.kid()), "{block}");
    let server = serve_config(
        dir.path(),
        &format!("[keys]\nalgorithm = \"ES256\"\n{block}"),
    );
    let issuer = server.issuer();
    let token = ok(&svctoken(
        dir.path(),
        &[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "billing-worker",
            "--private-key",
            key_arg,
            "--subject",
            "user:42",
        ],
    ));
    let claims = verify_served(&issuer, token.trim(), "convex");
    assert_eq!(claims["sub"], "user:42");
    assert_eq!(
        claims["act"],
        serde_json::json!({"sub": "svc:billing-worker"})
    );
    let err = fails(&svctoken(
        dir.path(),
        &[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "billing-worker",
            "--private-key",
            key_arg,
            "--subject",
            "admin:1",
        ],
    ));
    assert!(err.contains("unauthorized_client"), "{err}");
    let _ = server.stop();
}

/// The issuer writes a hash-chained audit file; `svctoken audit verify` accepts it intact and
/// names the first broken line once a line is edited or the end is cut off.
#[test]
fn audit_file_is_chained_and_tampering_is_named_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--listen", "127.0.0.1:0"], true);
    let issuer = server.issuer();
    let secret = std::fs::read_to_string(dir.path().join("svctoken-data/dev-client-secret"))
        .expect("secret");
    let secret = secret.trim();
    assert_eq!(fetch_token(&issuer, "dev", secret, None).0, 200);
    assert_eq!(fetch_token(&issuer, "dev", "sts_wrong", None).0, 401);
    let (status, token) = fetch_token(&issuer, "dev", secret, None);
    assert_eq!(status, 200);
    assert_eq!(fetch_token(&issuer, "nobody", "x", None).0, 401);
    let _ = server.stop();

    let log = dir.path().join("svctoken-data/audit.log");
    let text = std::fs::read_to_string(&log).expect("audit file");
    // The first key and its standby, made by the issuer as it started, then one line per
    // request.
    let outcomes: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["outcome"].to_string())
        .collect();
    assert_eq!(
        outcomes,
        [
            "\"lifecycle\"",
            "\"lifecycle\"",
            "\"lifecycle\"",
            "\"issued\"",
            "\"refused\"",
            "\"issued\"",
            "\"refused\""
        ],
        "{text}"
    );
    assert!(!text.contains(secret) && !text.contains(token["access_token"].as_str().expect("t")));
    let mode = std::fs::metadata(&log).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = ok(&svctoken(
        dir.path(),
        &["audit", "verify", "svctoken-data/audit.log"],
    ));
    assert!(out.contains("intact, 7 lines"), "{out}");

    // Edit line 5 (turn the refusal into an issuance): detected at line 5.
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 4 {
                l.replace("\"refused\"", "\"issued\"")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&log, format!("{}\n", edited.join("\n"))).expect("write");
    let err = fails(&svctoken(
        dir.path(),
        &["audit", "verify", "svctoken-data/audit.log"],
    ));
    assert!(err.contains("broken at line 5"), "{err}");

    // Cut the last line off: the head file says seven lines existed.
    let cut: Vec<&str> = text.lines().take(6).collect();
    std::fs::write(&log, format!("{}\n", cut.join("\n"))).expect("write");
    let err = fails(&svctoken(
        dir.path(),
        &["audit", "verify", "svctoken-data/audit.log"],
    ));
    assert!(err.contains("broken at line 7"), "{err}");
}

/// `[audit] stdout = true`: every mint and refusal is also one JSON line on stdout, without the
/// token or the secret.
#[test]
fn audit_events_go_to_stdout_as_json_lines_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "sts_stdout-audit-test-secret";
    let server = serve_with_client_w(dir.path(), secret, "[audit]\nstdout = true\nfile = \"\"\n");
    let issuer = server.issuer();
    let (status, token) = fetch_token(&issuer, "w", secret, None);
    assert_eq!(status, 200);
    assert_eq!(fetch_token(&issuer, "w", "sts_wrong", None).0, 401);
    let banner = server.lines.clone();
    let out = server.stop();
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("outcome").is_some())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["outcome"], "issued");
    assert_eq!(events[0]["client_id"], "w");
    assert_eq!(events[1]["outcome"], "refused");
    assert_eq!(events[1]["error"], "invalid_client");
    assert!(!out.contains(secret) && !out.contains(token["access_token"].as_str().expect("token")));
    assert!(
        !dir.path().join("data/audit.log").exists(),
        "file = \"\" turns the file off"
    );
    // The key lifecycle is in the same stream: the first key and its standby, made as the
    // issuer started, before its banner.
    let changes: Vec<Value> = banner
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["outcome"] == "lifecycle")
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(changes.iter().all(|c| c["lifecycle"]["by"] == "timer"));
}

/// A running issuer (its lifecycle timer, and its writer thread recording token requests) and
/// `svctoken keys` commands (other processes) append to one audit chain at the same time: it
/// stays intact, and each key's changes appear in the order they were made.
#[test]
fn keys_commands_and_a_running_issuer_share_one_audit_chain() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "sts_shared-chain-test-secret";
    // Lead 6 s, period 12 s: the timer has changes of its own to make within seconds.
    let server = serve_with_client_w(
        dir.path(),
        secret,
        "[keys]\nrotation_period = \"12s\"\njwks_max_age = \"1s\"\n",
    );
    let issuer = server.issuer();
    let stop = Arc::new(AtomicBool::new(false));
    let fetched = Arc::new(AtomicUsize::new(0));
    let fetcher = {
        let (stop, fetched) = (Arc::clone(&stop), Arc::clone(&fetched));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(fetch_token(&issuer, "w", secret, None).0, 200);
                fetched.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let keys = |args: &[&str]| {
        let mut full = vec!["keys"];
        full.extend_from_slice(args);
        full.extend(["--config", "svctoken.toml"]);
        ok(&svctoken(dir.path(), &full))
    };
    let log = dir.path().join("data/audit.log");
    for _ in 0..3 {
        let standby = listed(&keys(&["list"]), "standby");
        keys(&["revoke", &standby]);
        keys(&["rotate"]);
        let signing = listed(&keys(&["list"]), "active");
        keys(&["revoke", &signing]);
    }
    // Then the timer makes a change of its own after the commands' (at the latest when the
    // signing key's 12 s period ends).
    let commands_done = lifecycle_lines(&log).len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lifecycle_lines(&log)[commands_done..]
        .iter()
        .any(|(by, change, _)| by == "timer" && change == "activated")
    {
        assert!(Instant::now() < deadline, "the timer made no change");
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    fetcher.join().expect("fetcher");
    let _ = server.stop();

    let out = ok(&svctoken(
        dir.path(),
        &["audit", "verify", "data/audit.log"],
    ));
    assert!(out.contains("intact"), "{out}");
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .expect("audit file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let issued = lines.iter().filter(|l| l["outcome"] == "issued").count();
    assert_eq!(issued, fetched.load(Ordering::SeqCst), "one line per token");
    assert!(issued > 0);

    // Lifecycle events by both, interleaved, in time order, and each key's in lifecycle order.
    let changes = lifecycle_lines(&log);
    let first_cli = changes.iter().position(|c| c.0 == "cli").expect("cli");
    let last_timer = changes.iter().rposition(|c| c.0 == "timer").expect("timer");
    assert!(first_cli > 0 && last_timer > first_cli, "{changes:?}");
    let times: Vec<&str> = lines
        .iter()
        .filter(|l| l["outcome"] == "lifecycle")
        .map(|l| l["time"].as_str().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let mut seen: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for (_, change, kid) in &changes {
        seen.entry(kid).or_default().push(change);
    }
    for (kid, history) in seen {
        let mut rest = history.as_slice();
        assert_eq!(rest.first(), Some(&"prepared"), "{kid}: {history:?}");
        rest = &rest[1..];
        while rest.first() == Some(&"rescheduled") {
            rest = &rest[1..];
        }
        for next in ["activated", "retired", "removed"] {
            if rest.first() == Some(&next) {
                rest = &rest[1..];
            }
        }
        if rest.first() == Some(&"revoked") {
            rest = &rest[1..];
        }
        assert!(rest.is_empty(), "{kid}: out of order: {history:?}");
    }
}

/// The `jti` of a compact JWS, read without verification (the test only needs the id).
fn jti_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a compact JWS");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url payload"),
    )
    .expect("JSON claims");
    claims["jti"].as_str().expect("a jti").to_owned()
}

/// `[audit] fail_closed = true` under load from concurrent clients, then `kill -9`: the audit
/// file still verifies, and it holds an issuance event for every token a client received.
#[test]
fn kill_9_under_load_loses_no_audit_event_of_a_token_handed_out() {
    const CLIENTS: usize = 8;
    const MAX_REQUESTS: usize = 5_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "sts_kill-9-audit-test-secret";
    let mut server = serve_with_client_w(dir.path(), secret, "[audit]\nfail_closed = true\n");
    let issuer = server.issuer();

    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let issuer = issuer.clone();
            let received = std::sync::Arc::clone(&received);
            std::thread::spawn(move || {
                for _ in 0..MAX_REQUESTS {
                    // Until the issuer is gone: a refused connection or a cut response.
                    let Some((status, body)) = try_fetch_token(&issuer, "w", secret, None) else {
                        return true;
                    };
                    let Ok(body) = serde_json::from_str::<Value>(&body) else {
                        return true; // an answer cut short: not received
                    };
                    assert_eq!(status, 200, "{body}");
                    let token = body["access_token"].as_str().expect("a token");
                    received.lock().expect("lock").push(jti_of(token));
                }
                false
            })
        })
        .collect();

    // Kill it mid-load: once the clients have been answered a few hundred times.
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().expect("lock").len() < 300 {
        assert!(Instant::now() < deadline, "the clients got too few tokens");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reap");
    let cut_off = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .filter(|&cut| cut)
        .count();
    assert_eq!(
        cut_off, CLIENTS,
        "every client was still fetching when the issuer died"
    );

    let out = ok(&svctoken(
        dir.path(),
        &["audit", "verify", "data/audit.log"],
    ));
    assert!(out.contains("intact"), "{out}");
    let text = std::fs::read_to_string(dir.path().join("data/audit.log")).expect("audit file");
    let audited: std::collections::HashSet<String> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a JSON line"))
        .filter(|event| event["outcome"] == "issued")
        .map(|event| event["jti"].as_str().expect("jti").to_owned())
        .collect();
    let received = received.lock().expect("lock");
    assert!(received.len() >= 300);
    let missing: Vec<&String> = received.iter().filter(|j| !audited.contains(*j)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} tokens handed out have no audit event: {missing:?}",
        missing.len(),
        received.len()
    );
}

/// The README's quick start installs the command before it uses it and says what Convex in
/// the cloud needs; no shell walkthrough exports `SVCTOKEN_ISSUER` (which `serve` in that
/// shell would advertise); the command table lists `init`.
#[test]
fn the_readme_installs_the_command_first_and_keeps_serve_and_client_shells_apart() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme.find("## Quick start").expect("quick start");
    let quick = &readme[start..];
    let quick = &quick[..quick[3..].find("\n## ").expect("next section") + 3];
    let install = quick
        .find("cargo install --locked --path cli")
        .expect("the install line");
    let first_use = quick.find("svctoken serve").expect("serve");
    assert!(install < first_use, "install before use");
    assert!(quick.contains("https") && quick.contains("convex-config --data-uri"));
    for block in readme.split("```sh").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        assert!(
            !block.contains("export SVCTOKEN_ISSUER"),
            "a walkthrough exports SVCTOKEN_ISSUER: {block}"
        );
    }
    assert!(readme.contains("| `svctoken init"), "init in the table");
}

/// `svctoken serve`, stopped once its banner is out; what it wrote on standard error.
fn serve_stderr(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env_remove("SVCTOKEN_ISSUER")
        .env_remove("SVCTOKEN_LISTEN")
        .env_remove("SVCTOKEN_CONFIG")
        .env_remove("SVCTOKEN_DATA_DIR")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("signing:") {
        line.clear();
        assert!(stdout.read_line(&mut line).expect("read") > 0, "no banner");
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let output = child.wait_with_output().expect("wait");
    String::from_utf8(output.stderr).expect("utf-8")
}

#[test]
fn serve_warns_when_it_would_advertise_a_loopback_issuer_it_does_not_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = ["--listen", "127.0.0.1:0"];
    let warnings = |err: &str| -> Vec<String> {
        err.lines()
            .filter(|l| l.contains("loopback URL"))
            .map(str::to_owned)
            .collect()
    };
    // The README's old walkthrough: SVCTOKEN_ISSUER exported for the client commands.
    let err = serve_stderr(
        dir.path(),
        &listen,
        &[("SVCTOKEN_ISSUER", "http://127.0.0.1:8080")],
    );
    let found = warnings(&err);
    assert_eq!(found.len(), 1, "one line: {err}");
    assert!(found[0].contains("WARN"), "{err}");
    assert!(
        found[0].contains("(from SVCTOKEN_ISSUER)") && found[0].contains("unset SVCTOKEN_ISSUER"),
        "{err}"
    );
    let err = serve_stderr(
        dir.path(),
        &[&listen[..], &["--issuer", "http://localhost:1"]].concat(),
        &[],
    );
    assert!(warnings(&err)[0].contains("(from --issuer)"), "{err}");
    // The issuer it serves, a public one, or the default: no warning.
    for args in [
        &listen[..],
        &[&listen[..], &["--issuer", "https://auth.example.com"]].concat(),
    ] {
        let err = serve_stderr(dir.path(), args, &[]);
        assert!(warnings(&err).is_empty(), "{args:?}: {err}");
    }
}

#[test]
fn init_writes_a_file_that_keeps_the_dev_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(&svctoken(dir.path(), &["init"]));
    assert!(
        out.contains("svctoken serve --config svctoken.toml"),
        "{out}"
    );
    let file = dir.path().join("svctoken.toml");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o644);
    let secret_file = dir.path().join("svctoken-data/dev-client-secret");
    assert_eq!(mode(&secret_file), 0o600);
    let secret = std::fs::read_to_string(&secret_file).expect("secret");
    let text = std::fs::read_to_string(&file).expect("config");
    for key in [
        "# listen = ",
        "# issuer = ",
        "algorithm = \"ES256\"",
        "[audit]",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
    let err = fails(&svctoken(dir.path(), &["init"]));
    assert!(err.contains("--force"), "{err}");
    ok(&svctoken(dir.path(), &["init", "--force"]));
    assert_eq!(
        std::fs::read_to_string(&secret_file).expect("secret"),
        secret,
        "the secret is kept"
    );
    let server = Server::start(
        dir.path(),
        &["--config", "svctoken.toml", "--listen", "127.0.0.1:0"],
        false,
    );
    let (status, body) = fetch_token(&server.issuer(), "dev", secret.trim(), None);
    assert_eq!(status, 200, "{body}");
    let _ = server.stop();

    // A data directory the embedded default made: its secret is the one kept.
    let other = tempfile::tempdir().expect("tempdir");
    let data = other.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("dev-client-secret"), "sts_made_by_serve\n").expect("write");
    let config = other.path().join("etc/svctoken.toml");
    std::fs::create_dir(config.parent().expect("parent")).expect("mkdir");
    ok(&svctoken(
        other.path(),
        &[
            "init",
            "--config",
            "etc/svctoken.toml",
            "--data-dir",
            "data",
        ],
    ));
    let text = std::fs::read_to_string(&config).expect("config");
    let hash = svctoken_issuer::clients::SecretHash::of("sts_made_by_serve").to_hex();
    assert!(text.contains(&hash), "{text}");
    let settings = svctoken_issuer::settings::Settings::load(Some(&config), &Default::default())
        .expect("loads");
    assert_eq!(
        std::fs::canonicalize(settings.data_dir()).expect("data dir"),
        std::fs::canonicalize(&data).expect("data")
    );
}

/// The test keys of `svctoken-jwks`, made by openssl (see `jwks/tests/keys/README.md`).
fn test_key(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../jwks/tests/keys")
        .join(name)
}

#[test]
fn clients_add_takes_public_keys_and_token_takes_a_sec1_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pkcs8 = |name: &str| {
        let text = std::fs::read_to_string(test_key(name)).expect("key");
        svctoken_jwks::SigningKey::from_pkcs8_pem(&text).expect("pkcs8")
    };
    let ec = pkcs8("ec-p256-pkcs8.pem");
    let jwk_file = dir.path().join("ec.jwk.json");
    std::fs::write(
        &jwk_file,
        serde_json::to_string(ec.public_jwk()).expect("json"),
    )
    .expect("w");
    let jwks_file = dir.path().join("ec.jwks.json");
    let jwks = serde_json::json!({"keys": [ec.public_jwk()]});
    std::fs::write(&jwks_file, jwks.to_string()).expect("write");
    let mut private_jwk = serde_json::to_value(ec.public_jwk()).expect("json");
    private_jwk["d"] = "c2VjcmV0".into();
    let private_jwk_file = dir.path().join("ec.private.jwk.json");
    std::fs::write(&private_jwk_file, private_jwk.to_string()).expect("write");
    let rsa = pkcs8("rsa-pkcs8.pem");
    let ed = pkcs8("ed25519-pkcs8.pem");
    for (file, kid) in [
        (test_key("ec-p256-public.pem"), ec.kid()),
        (test_key("ec-p256-sec1.pem"), ec.kid()),
        (jwk_file, ec.kid()),
        (jwks_file, ec.kid()),
        (private_jwk_file, ec.kid()),
        (test_key("rsa-public.pem"), rsa.kid()),
        (test_key("rsa-pkcs1-public.pem"), rsa.kid()),
        (test_key("rsa-pkcs1.pem"), rsa.kid()),
        (test_key("ed25519-public.pem"), ed.kid()),
    ] {
        let path = file.to_str().expect("utf-8");
        let out = ok(&svctoken(
            dir.path(),
            &["clients", "add", "--id", "w", "--jwk-file", path],
        ));
        assert!(out.contains(kid), "{path}: {out}");
        assert!(
            !out.contains("PRIVATE") && !out.contains("c2VjcmV0"),
            "{out}"
        );
    }
    let encrypted = test_key("ec-p256-encrypted.pem");
    let err = fails(&svctoken(
        dir.path(),
        &[
            "clients",
            "add",
            "--id",
            "w",
            "--jwk-file",
            encrypted.to_str().expect("utf-8"),
        ],
    ));
    let convert = format!(
        "openssl pkcs8 -topk8 -nocrypt -in {} -out {}",
        encrypted.display(),
        encrypted.with_extension("pkcs8.pem").display()
    );
    assert!(err.contains(&convert), "{err}");

    // The public PEM registered; the SEC1 private key `openssl ecparam -genkey` wrote signs.
    let out = ok(&svctoken(
        dir.path(),
        &[
            "clients",
            "add",
            "--id",
            "w",
            "--jwk-file",
            test_key("ec-p256-public.pem").to_str().expect("utf-8"),
        ],
    ));
    let block = &out[out.find("[[clients]]").expect("block")..];
    let server = serve_config(dir.path(), block);
    let issuer = server.issuer();
    let sec1 = test_key("ec-p256-sec1.pem");
    let token = ok(&svctoken(
        dir.path(),
        &[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "w",
            "--private-key",
            sec1.to_str().expect("utf-8"),
        ],
    ));
    assert_eq!(
        verify_served(&issuer, token.trim(), "convex")["sub"],
        "svc:w"
    );
    let err = fails(&svctoken(
        dir.path(),
        &[
            "token",
            "--issuer",
            &issuer,
            "--client-id",
            "w",
            "--private-key",
            encrypted.to_str().expect("utf-8"),
        ],
    ));
    assert!(err.contains(&convert), "{err}");
    let _ = server.stop();
}

/// An OS error appears once in a message, however deep the chain.
fn os_error_once(err: &str) {
    assert!(err.matches("os error").count() <= 1, "said twice: {err}");
}

#[test]
fn errors_name_what_to_fix_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A missing configuration file is named as one, once.
    for args in [
        &["keys", "list"][..],
        &["serve"],
        &["mint", "--sub", "s", "--aud", "convex"],
    ] {
        let args = [args, &["--config", "nope.toml"]].concat();
        let err = fails(&svctoken(dir.path(), &args));
        assert_eq!(
            err, "svctoken: config file nope.toml (from --config/SVCTOKEN_CONFIG) not found\n",
            "{args:?}"
        );
    }

    // A missing private key names its kid and how to recover.
    ok(&svctoken(
        dir.path(),
        &["mint", "--sub", "s", "--aud", "convex"],
    ));
    let data = dir.path().join("svctoken-data");
    let active = listed(&ok(&svctoken(dir.path(), &["keys", "list"])), "active");
    std::fs::remove_file(data.join(format!("private/{active}.pem"))).expect("rm");
    let err = fails(&svctoken(
        dir.path(),
        &["mint", "--sub", "s", "--aud", "convex"],
    ));
    assert!(
        err.contains(&format!("the private key of {active} is missing")),
        "{err}"
    );
    assert!(
        err.contains(&format!("`svctoken keys revoke {active}`")),
        "{err}"
    );
    os_error_once(&err);
    ok(&svctoken(dir.path(), &["keys", "revoke", &active]));
    ok(&svctoken(
        dir.path(),
        &["mint", "--sub", "s", "--aud", "convex"],
    ));

    // --ttl beyond the cap: the cap, and where it comes from.
    let err = fails(&svctoken(
        dir.path(),
        &["mint", "--sub", "s", "--aud", "convex", "--ttl", "1h"],
    ));
    assert!(
        err.contains("at most 5m (the default token lifetime 5m"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("ttl.toml"),
        format!(
            "data_dir = \"svctoken-data\"\n[[clients]]\nid = \"w\"\nsecret_sha256 = \"{}\"\nmax_ttl = \"10m\"\n",
            "ab".repeat(32)
        ),
    )
    .expect("write");
    let err = fails(&svctoken(
        dir.path(),
        &[
            "mint", "--sub", "s", "--aud", "convex", "--ttl", "1h", "--config", "ttl.toml",
        ],
    ));
    assert!(
        err.contains("at most 10m (the longest max_ttl of the clients in ttl.toml, client \"w\"'s"),
        "{err}"
    );

    // An address in use: which flag or variable chose it; nothing is created.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let err = fails(&svctoken(
        dir.path(),
        &["serve", "--listen", &addr, "--data-dir", "fresh"],
    ));
    assert!(
        err.contains(&format!("cannot listen on {addr} (from --listen)")),
        "{err}"
    );
    assert!(err.contains("SVCTOKEN_LISTEN"), "{err}");
    assert!(!dir.path().join("fresh").exists(), "no data directory");
    let output = Command::new(BIN)
        .args(["serve", "--data-dir", "fresh"])
        .current_dir(dir.path())
        .env("SVCTOKEN_LISTEN", &addr)
        .output()
        .expect("run");
    let err = fails(&output);
    assert!(err.contains("(from SVCTOKEN_LISTEN)"), "{err}");
    assert!(!dir.path().join("fresh").exists(), "no data directory");

    // A second serve on one data directory.
    let server = Server::start(dir.path(), &["--listen", "127.0.0.1:0"], true);
    let err = fails(&svctoken(dir.path(), &["serve", "--listen", "127.0.0.1:0"]));
    let pid = server.child.id();
    assert!(
        err.contains(&format!("another svctoken serve (pid {pid}) holds ")),
        "{err}"
    );
    assert!(err.contains("svctoken-data: stop it first"), "{err}");
    let _ = server.stop();
}

/// A data directory the user may not write: which directory, and which permission. The tests
/// run as root, whom modes don't stop, so the command runs as `nobody` then (`setpriv`).
#[test]
fn a_data_directory_without_permission_is_named_with_the_permission_needed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let root = Command::new("id").arg("-u").output().expect("id").stdout == b"0\n";
    let run = |args: &[&str]| {
        let mut command = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Command::new(BIN)
        };
        command
            .args(args)
            .current_dir(dir.path())
            .env_remove("SVCTOKEN_DATA_DIR")
            .env_remove("SVCTOKEN_CONFIG")
            .output()
            .expect("run")
    };
    let data = locked.join("data");
    let err = fails(&run(&[
        "mint",
        "--sub",
        "s",
        "--aud",
        "convex",
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]));
    assert!(
        err.contains(&format!(
            "cannot create the data directory {}: permission denied on {}",
            data.display(),
            locked.display()
        )),
        "{err}"
    );
    assert!(err.contains("write and execute permission"), "{err}");
    os_error_once(&err);
    let err = fails(&run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        locked.to_str().expect("utf-8"),
    ]));
    assert!(
        err.contains(&format!(
            "the data directory {} refuses access",
            locked.display()
        )),
        "{err}"
    );
    assert!(err.contains("read, write and execute permission"), "{err}");
}

#[test]
fn help_shows_only_the_flags_a_command_uses_and_examples_on_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let help = |args: &[&str]| ok(&svctoken(dir.path(), &[args, &["--help"]].concat()));
    for args in [
        &["keys", "list"][..],
        &["keys", "rotate"],
        &["keys", "revoke"],
        &["mint"],
    ] {
        assert!(!help(args).contains("--listen"), "{args:?}");
    }
    for args in [
        &["keys", "list"][..],
        &["keys", "rotate"],
        &["keys", "revoke"],
    ] {
        assert!(!help(args).contains("--issuer"), "{args:?}");
    }
    assert!(help(&["mint"]).contains("--issuer"));
    for args in [&["serve"][..], &["convex-config"]] {
        assert!(help(args).contains("--listen"), "{args:?}");
    }
    for args in [&["clients"][..], &["keys"], &["audit"], &["init"]] {
        assert!(help(args).contains("Examples:"), "{args:?}");
    }
    // Piped, as here: not wrapped, so each example is one line.
    let lines: Vec<String> = help(&["serve"]).lines().map(str::to_owned).collect();
    assert!(
        lines.contains(
            &"  SVCTOKEN_ISSUER=https://auth.example.com svctoken serve --listen 0.0.0.0:8080"
                .to_owned()
        ),
        "{lines:#?}"
    );
    let token = help(&["token"]);
    assert!(
        token
            .lines()
            .any(|l| l.starts_with("  curl -H ") && l.ends_with("dev-client-secret)\" ...")),
        "{token}"
    );
}

#[test]
fn convex_config_warns_that_the_cloud_cannot_reach_a_loopback_issuer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = svctoken(dir.path(), &["convex-config"]);
    ok(&output);
    let err = String::from_utf8(output.stderr).expect("utf-8");
    assert!(
        err.contains("warning: the issuer http://127.0.0.1:8080 is a loopback URL"),
        "{err}"
    );
    assert!(
        err.contains("--issuer https://") && err.contains("--data-uri"),
        "{err}"
    );
    for args in [
        &["convex-config", "--issuer", "https://auth.example.com"][..],
        &["convex-config", "--data-uri"],
    ] {
        let output = svctoken(dir.path(), args);
        ok(&output);
        assert!(
            output.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// SIGHUP makes a running `serve` read its configuration file again: a client added to the
/// file gets tokens without a restart; a file that doesn't load is refused and the clients in
/// use keep working.
#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    ok(&svctoken(dir.path(), &["init"]));
    let dev = std::fs::read_to_string(dir.path().join("svctoken-data/dev-client-secret"))
        .expect("dev secret");
    let server = Server::start(
        dir.path(),
        &["--config", "svctoken.toml", "--listen", "127.0.0.1:0"],
        false,
    );
    let hang_up = || {
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    };
    let file = dir.path().join("svctoken.toml");
    let original = std::fs::read_to_string(&file).expect("config");
    let secret = "sts_added-while-running-000000000000000000000";
    let added = format!(
        "{original}\n[[clients]]\nid = \"later\"\nsecret_sha256 = \"{}\"\n",
        svctoken_issuer::clients::SecretHash::of(secret).to_hex()
    );
    std::fs::write(&file, added).expect("write config");
    assert_eq!(fetch_token(&server.issuer(), "later", secret, None).0, 401);
    hang_up();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch_token(&server.issuer(), "later", secret, None).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the added client never got a token"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(&file, "[[clients]]\nid = 5\n").expect("write a broken config");
    hang_up();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fetch_token(&server.issuer(), "later", secret, None).0, 200);
    assert_eq!(
        fetch_token(&server.issuer(), "dev", dev.trim(), None).0,
        200
    );
    let _ = server.stop();
}
