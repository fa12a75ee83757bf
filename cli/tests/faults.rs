//! Faults a running `svctoken serve` survives, made with real file systems and processes, not
//! mocks: the audit trail's disk full and read-only (fail-closed withholds every token it could
//! not record and answers `server_error`; fail-open keeps issuing and counts each failure), and
//! the key directory read-only during a rotation (the signing key keeps signing, the failure is
//! counted and logged, the next run after it catches up).
//!
//! # How the faults are made
//!
//! The tests run as root, so file modes stop nothing. Each issuer runs in its own user and
//! mount namespaces (`unshare --user --map-root-user --mount`, which works for root and, where
//! user namespaces are allowed, for anyone), where it may mount what it likes without touching
//! the machine's mounts, and where everything it mounted disappears with it:
//!
//! - **disk full**: the audit trail lives on a `tmpfs` of 64 KiB, so the kernel answers
//!   `ENOSPC` once it fills; deleting a ballast file written there first frees space again.
//! - **read-only**: a read-only bind mount is laid over the directory while the issuer runs
//!   (`nsenter` into its namespaces, `mount --bind -o ro`), so every write through a path fails
//!   with `EROFS`. The kernel refuses to turn a mount read-only while a file on it is open for
//!   writing (`EBUSY`), and the audit file is: its open descriptor keeps appending, and what
//!   fails is the head file that ends every batch, which fails the batch as a whole (the trail
//!   then over-reports, as documented, never under-reports). The key directory holds no open
//!   file between lifecycle runs, so there every write fails, starting with the lock file.
//!
//! The issuer listens on 127.0.0.1 of the machine (the network namespace is shared); the tests
//! read the namespace's files through `/proc/<pid>/root`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, worker_client};

const BIN: &str = env!("CARGO_BIN_EXE_svctoken");

/// `svctoken serve` in its own user and mount namespaces; killed when dropped.
struct Isolated {
    child: Child,
    url: String,
    /// The admin listener's base URL (`/metrics`).
    admin: String,
    pid: u32,
    /// Its standard error (the logs).
    log: PathBuf,
    http: reqwest::Client,
}

impl Isolated {
    /// Writes `config` to `<dir>/svctoken.toml`, then runs `setup` (shell lines, in `dir`,
    /// inside the new namespaces) and `svctoken serve` there; waits for its banner.
    fn start(dir: &Path, config: &str, setup: &str) -> Isolated {
        std::fs::write(dir.join("svctoken.toml"), config).expect("config");
        let log = dir.join("serve.log");
        let script = format!("set -e\n{setup}\nexec \"$0\" serve --config svctoken.toml");
        let mut child = Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script, BIN])
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("run unshare (util-linux)");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, banner) = mpsc::channel();
        // Read to the end: a closed pipe would fail the issuer's next line of output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let _ = lines.send(line.unwrap_or_default());
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut url = None;
        let admin;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match banner.recv_timeout(left) {
                Ok(line) if line.contains(" listening on ") => {
                    url = line.split_whitespace().nth(2).map(str::to_owned);
                }
                // The banner's last line: it serves.
                Ok(line) if line.contains("admin:") => {
                    admin = line.split_whitespace().nth(1).map(str::to_owned);
                    break;
                }
                Ok(_) => {}
                Err(_) => panic!(
                    "no banner from serve in a user+mount namespace (are user namespaces \
                     allowed here?): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        let pid = child.id();
        Isolated {
            child,
            url: url.expect("url"),
            admin: admin.expect("admin url"),
            pid,
            log,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// Runs `script` inside its namespaces (as their root), which must succeed.
    fn inside(&self, script: &str) {
        let out = Command::new("nsenter")
            .args(["--target", &self.pid.to_string()])
            .args(["--user", "--mount", "--preserve-credentials"])
            .args(["sh", "-c", script])
            .output()
            .expect("run nsenter (util-linux)");
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    }

    /// Where `path` (absolute, as the issuer sees it) can be read from outside.
    fn seen_from_outside(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid)).join(path.strip_prefix("/").expect("abs"))
    }

    /// A client credentials request: the status and the body.
    async fn token(&self) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/oauth/token", self.url))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap_or_else(|e| panic!("token request: {e}\n{}", self.logs()));
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    /// The body of `GET <base><path>`.
    async fn get_from(&self, base: &str, path: &str) -> String {
        let response = self.http.get(format!("{base}{path}")).send().await;
        response.expect(path).text().await.expect("body")
    }

    /// The body of `GET <path>` on the public listener.
    async fn get(&self, path: &str) -> String {
        self.get_from(&self.url, path).await
    }

    /// The value of counter `name` at the admin listener's `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let text = self.get_from(&self.admin, "/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    }

    /// Waits (bounded) until counter `name` reaches `at_least`.
    async fn wait_for_metric(&self, name: &str, at_least: u64, patience: Duration) -> u64 {
        let deadline = Instant::now() + patience;
        loop {
            let value = self.metric(name).await;
            if value >= at_least || Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).expect("logs")
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn jti(token: &str) -> String {
    let (_, claims) = svctoken_jwks::dangerous::decode_unverified(token).expect("jwt");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// `svctoken audit verify` of `file` must pass; the `jti`s of the issuances the trail holds.
fn verified_issuances(file: &Path) -> Vec<String> {
    let out: Output = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(file)
        .output()
        .expect("audit verify");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("intact"),
        "{}",
        text(&out.stdout)
    );
    std::fs::read_to_string(file)
        .expect("trail")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|e| e["outcome"] == "issued")
        .map(|e| e["jti"].as_str().expect("jti").to_owned())
        .collect()
}

/// An issuer whose audit trail (fail-closed or not) is on a 64 KiB tmpfs at `<dir>/audit`,
/// 16 KiB of which a ballast file takes.
fn with_audit_on_a_small_disk(dir: &Path, fail_closed: bool) -> Isolated {
    std::fs::create_dir(dir.join("audit")).expect("mount point");
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[audit]\nfile = \"audit/audit.log\"\n\
         fail_closed = {fail_closed}\n{}",
        worker_client("")
    );
    Isolated::start(
        dir,
        &config,
        "mount -t tmpfs -o size=64k tmpfs audit\nhead -c 16384 /dev/zero > audit/ballast",
    )
}

fn assert_withheld(status: u16, body: &Value) {
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "server_error", "{body}");
    assert_eq!(
        body["error_description"],
        "the issuance could not be recorded"
    );
    assert!(
        body.get("access_token").is_none(),
        "nothing handed out: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_disk_full_fail_closed_hands_out_nothing_it_could_not_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = with_audit_on_a_small_disk(dir.path(), true);
    let mut handed_out = Vec::new();
    let mut first_refusal = None;
    for _ in 0..2000 {
        let (status, body) = issuer.token().await;
        if status == 200 {
            handed_out.push(jti(body["access_token"].as_str().expect("token")));
        } else {
            first_refusal = Some((status, body));
            break;
        }
    }
    let (status, body) = first_refusal.expect("the 64 KiB disk filled up");
    assert_withheld(status, &body);
    assert!(handed_out.len() > 20, "{} tokens first", handed_out.len());
    for _ in 0..5 {
        let (status, body) = issuer.token().await;
        assert_withheld(status, &body);
    }
    assert!(issuer.metric("svctoken_audit_failures_total").await >= 6);
    assert!(issuer.logs().contains("No space left on device"));

    // Space comes back: so do tokens.
    let audit = dir.path().join("audit");
    std::fs::remove_file(issuer.seen_from_outside(&audit.join("ballast"))).expect("ballast");
    for _ in 0..5 {
        let (status, body) = issuer.token().await;
        assert_eq!(status, 200, "{body}");
        handed_out.push(jti(body["access_token"].as_str().expect("token")));
    }

    // The trail is intact and holds every token handed out.
    let recorded = verified_issuances(&issuer.seen_from_outside(&audit.join("audit.log")));
    for jti in &handed_out {
        assert!(
            recorded.contains(jti),
            "token {jti} was handed out unrecorded"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_disk_full_fail_open_keeps_issuing_and_counts_each_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = with_audit_on_a_small_disk(dir.path(), false);
    // Far more events than 48 KiB holds (about 300 bytes each).
    for _ in 0..600 {
        let (status, body) = issuer.token().await;
        assert_eq!(status, 200, "fail-open keeps issuing: {body}");
    }
    let failures = issuer
        .wait_for_metric("svctoken_audit_failures_total", 1, Duration::from_secs(10))
        .await;
    assert!(failures >= 100, "{failures} events counted as lost");
    assert!(issuer.logs().contains("No space left on device"));
    let audit = issuer.seen_from_outside(&dir.path().join("audit/audit.log"));
    // The last events may still be queued (a fail-open batch waits up to 5 ms): read both
    // again until they add up, or time runs out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (recorded, failures) = loop {
        let failures = issuer.metric("svctoken_audit_failures_total").await;
        let recorded = verified_issuances(&audit).len() as u64;
        if recorded + failures >= 600 || Instant::now() > deadline {
            break (recorded, failures);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        recorded + failures >= 600,
        "every event is recorded or counted: {recorded} + {failures}"
    );
}

/// The audit directory turned read-only under a running issuer, then writable again; first
/// fail-closed, then fail-open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_read_only_fail_closed_withholds_and_fail_open_counts() {
    for fail_closed in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = with_audit_on_a_small_disk(dir.path(), fail_closed);
        let audit = dir.path().join("audit");
        let mut handed_out = Vec::new();
        for _ in 0..3 {
            let (status, body) = issuer.token().await;
            assert_eq!(status, 200, "{body}");
            handed_out.push(jti(body["access_token"].as_str().expect("token")));
        }
        issuer.inside(&format!("mount --bind -o ro '{0}' '{0}'", audit.display()));
        for _ in 0..5 {
            let (status, body) = issuer.token().await;
            if fail_closed {
                assert_withheld(status, &body);
            } else {
                assert_eq!(status, 200, "fail-open keeps issuing: {body}");
            }
        }
        let failures = issuer
            .wait_for_metric("svctoken_audit_failures_total", 5, Duration::from_secs(10))
            .await;
        assert!(failures >= 5, "fail_closed={fail_closed}: {failures}");
        assert!(issuer.logs().contains("Read-only file system"));

        issuer.inside(&format!("umount '{}'", audit.display()));
        let (status, body) = issuer.token().await;
        assert_eq!(status, 200, "writable again: {body}");
        handed_out.push(jti(body["access_token"].as_str().expect("token")));
        let recorded = verified_issuances(&issuer.seen_from_outside(&audit.join("audit.log")));
        for jti in &handed_out {
            assert!(recorded.contains(jti), "token {jti} handed out unrecorded");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_directory_read_only_during_a_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // A 12 s period with a 6 s lead: the next key is due about 10 s after start.
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[keys]\nrotation_period = \"12s\"\n\
         jwks_max_age = \"1s\"\n[audit]\nfile = \"\"\n{}",
        worker_client("")
    );
    let issuer = Isolated::start(dir.path(), &config, "");
    issuer.inside(&format!("mount --bind -o ro '{0}' '{0}'", data.display()));
    let first = kid_of(&issuer).await;

    // The store starts with the signing key and its standby. The lifecycle runs every 5 s;
    // from the moment the standby is due to take over (12 s), each run fails.
    let failures = issuer
        .wait_for_metric(
            "svctoken_key_rotation_failures_total",
            3,
            Duration::from_secs(45),
        )
        .await;
    assert!(failures >= 3, "{failures}");
    assert_eq!(kid_of(&issuer).await, first, "the active key keeps signing");
    assert_eq!(
        jwks_len(&issuer).await,
        2,
        "the signing key and its standby, nothing more"
    );
    let logs = issuer.logs();
    assert!(logs.contains("key lifecycle failed"), "{logs}");
    assert!(logs.contains("Read-only file system"), "{logs}");

    // Writable again: the next run publishes the next key, which signs after its lead.
    issuer.inside(&format!("umount '{}'", data.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let kid = kid_of(&issuer).await;
        if kid != first {
            break kid;
        }
        assert!(Instant::now() < deadline, "no rotation after recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        published_kids(&issuer).await.contains(&first),
        "the old key stays published for its tokens"
    );
    assert_ne!(next, first);
    let after = issuer.metric("svctoken_key_rotation_failures_total").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        issuer.metric("svctoken_key_rotation_failures_total").await,
        after,
        "no failure once writable"
    );
}

async fn kid_of(issuer: &Isolated) -> String {
    let (status, body) = issuer.token().await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("jwt");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn published_kids(issuer: &Isolated) -> Vec<String> {
    let jwks: Value =
        serde_json::from_str(&issuer.get("/.well-known/jwks.json").await).expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn jwks_len(issuer: &Isolated) -> usize {
    published_kids(issuer).await.len()
}
