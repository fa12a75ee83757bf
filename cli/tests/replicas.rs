//! Three `svctoken serve` processes as replicas of one issuer behind a load balancer, on one
//! PostgreSQL database, with clients fetching tokens from all of them while the replicas join,
//! rotate, crash and restart, and while the database itself goes down and comes back.
//!
//! # What is tested
//!
//! 1. **Joining.** Replica 0 on the empty database signs at once. Replicas 1 and 2 join while it
//!    signs: until their first key has been published a full lead (`jwks_max_age` + 5 s skew +
//!    10 s propagation) `/readyz` (on its admin listener) answers 503, and so does the token
//!    endpoint (`temporarily_unavailable`, `Retry-After: 2`); then they sign.
//! 2. **Tokens verify everywhere.** A client loop fetches tokens round-robin from the replicas
//!    for the whole test; every token, whichever replica signed it, must verify under Convex's
//!    rules against the JWKS of every replica, fetched fresh for each check, and against one
//!    `ConvexAuth` that caches replica 2's JWKS as Convex does (obeying `Cache-Control`), which
//!    shows the cache model holds across replicas and rotations.
//! 3. **A crash during a rotation.** Replica 0 is killed with SIGKILL the moment its log says
//!    its standby was activated; the others keep serving and still publish its keys; restarted
//!    on the same data directory it comes back with the same replica id (its banner and
//!    `svctoken keys list` say so) and signs at once with the key it had just activated.
//! 4. **The database restarted** (stopped at once, as in a crash): meanwhile clients with a
//!    secret keep getting tokens that verify, `private_key_jwt` gets 503
//!    `temporarily_unavailable` (its replay cache is the shared table); once it is back, with no
//!    replica restarted, `private_key_jwt` works again within a bounded time.
//! 5. **Replay across replicas.** One client assertion used at one replica is refused (401
//!    `invalid_client`) at the others, before and after the database restart.
//! 6. **The audit chains.** After the replicas stop, `svctoken audit verify --database-url`
//!    exits 0 and prints an intact chain for each replica.
//!
//! # How
//!
//! PostgreSQL is a cluster of the test's own (`TestCluster`: `initdb` and `pg_ctl` on a free
//! port of 127.0.0.1), so the test can stop and start it; without PostgreSQL installed the test
//! prints why it skips (under `CI=true` it fails). Each replica is the real binary with its own
//! directory (configuration file, data directory, `serve.log` holding its JSON logs) and its
//! own port on 127.0.0.1; all mint and publish the same issuer URL, the load balancer's (here
//! replica 0's address). The schedule is short (`rotation_period = "1m"`, `jwks_max_age =
//! "10s"`: a 25 s lead) so joins and rotations happen within the test, which takes about a
//! minute and a half. Every wait is bounded.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use svctoken_jwks::{Algorithm, SigningKey};
use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, key_client, worker_client};
use svctoken_tests::postgres::TestCluster;

const BIN: &str = env!("CARGO_BIN_EXE_svctoken");

/// The client registered with a public key (`private_key_jwt`).
const KEY_CLIENT: &str = "keyed";

/// How long each key signs.
const ROTATION_PERIOD: Duration = Duration::from_secs(60);

/// How long a new key is published before it signs: `jwks_max_age` (10 s) + 5 s skew + 10 s
/// propagation between replicas.
const LEAD: Duration = Duration::from_secs(25);

/// How many replicas run.
const REPLICAS: usize = 3;

/// What the client loop may expect of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// Not running: skipped.
    Down = 0,
    /// Running, its first key waiting for its lead: 503 `temporarily_unavailable` or a token.
    Joining = 1,
    /// Running and signing: a token, every time.
    Up = 2,
}

/// One `svctoken serve` process, restartable on the same directory and port; killed when
/// dropped.
struct Replica {
    index: usize,
    dir: PathBuf,
    port: u16,
    /// Its admin listener's port (`/readyz`).
    admin_port: u16,
    child: Option<Child>,
    /// What it printed on stdout (the banner), read until it exits.
    stdout: Arc<Mutex<Vec<String>>>,
    /// How far [`Replica::new_log_lines`] has read `serve.log`.
    log_read: u64,
}

impl Replica {
    /// Writes replica `index`'s configuration: the common issuer URL and schedule, the
    /// database, its own ports (public and admin) and data directory, a secret client and a
    /// key client.
    fn new(
        root: &Path,
        index: usize,
        ports: (u16, u16),
        issuer: &str,
        db: &str,
        key: &SigningKey,
    ) -> Self {
        let (port, admin_port) = ports;
        let dir = root.join(format!("replica-{index}"));
        std::fs::create_dir_all(&dir).expect("replica dir");
        let config = format!(
            "issuer = \"{issuer}\"\nlisten = \"127.0.0.1:{port}\"\n\
             admin_listen = \"127.0.0.1:{admin_port}\"\ndata_dir = \"{}\"\n\
             database_url = \"{db}\"\n[keys]\nrotation_period = \"{}\"\njwks_max_age = \"10s\"\n\
             {}{}",
            dir.join("data").display(),
            humantime::format_duration(ROTATION_PERIOD),
            worker_client(""),
            key_client(KEY_CLIENT, key, ""),
        );
        std::fs::write(dir.join("svctoken.toml"), config).expect("write config");
        Replica {
            index,
            dir,
            port,
            admin_port,
            child: None,
            stdout: Arc::default(),
            log_read: 0,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("svctoken.toml")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    /// Starts `svctoken serve` (its logs, JSON, appended to `serve.log`) and waits (bounded)
    /// for its banner's replica line: it listens. Blocking.
    fn start(&mut self) {
        assert!(self.child.is_none(), "replica {} runs already", self.index);
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("log file");
        let mut child = svctoken()
            .arg("serve")
            .arg("--config")
            .arg(self.config())
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn svctoken serve");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (banner, read) = mpsc::channel();
        let kept = lines.clone();
        // Read to the end: a closed pipe would fail the issuer's next line of output.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap_or_default();
                kept.lock().expect("stdout lines").push(line.clone());
                let _ = banner.send(line);
            }
        });
        self.child = Some(child);
        self.stdout = lines;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match read.recv_timeout(left) {
                Ok(line) if line.trim_start().starts_with("replica:") => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "replica {}: no banner from serve (exited: {:?}); stdout {:?}\n{}",
                    self.index,
                    self.child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten()),
                    self.banner(),
                    self.log_tail()
                ),
            }
        }
    }

    /// The lines of its banner (stdout) so far.
    fn banner(&self) -> Vec<String> {
        self.stdout.lock().expect("stdout lines").clone()
    }

    /// The replica id its banner names (`  replica:   <id> on <database>`).
    fn banner_replica_id(&self) -> String {
        self.banner()
            .iter()
            .find_map(|l| {
                let rest = l.trim_start().strip_prefix("replica:")?;
                rest.split_whitespace().next().map(str::to_owned)
            })
            .expect("a replica line in the banner")
    }

    /// Whether its banner says it waits for its first key (bounded wait for the line, which
    /// follows the replica line at once).
    fn banner_says_waiting(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self
                .banner()
                .iter()
                .any(|l| l.trim_start().starts_with("waiting:"))
            {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (`kill -9`), as in a crash; waits until it is gone.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        child.wait().expect("reap");
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(&mut self) {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "replica {} exited with {status} on SIGTERM\n{}",
                    self.index,
                    self.log_tail()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "replica {} did not stop on SIGTERM\n{}",
                    self.index,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log lines (parsed JSON) written since the last call.
    fn new_log_lines(&mut self) -> Vec<Value> {
        let Ok(mut file) = std::fs::File::open(self.log()) else {
            return Vec::new();
        };
        file.seek(SeekFrom::Start(self.log_read)).expect("seek");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("read log");
        // Only whole lines: the rest is read next time.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        self.log_read += whole as u64;
        text[..whole]
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last lines of its logs, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("--- replica {} serve.log (tail) ---\n{tail}", self.index)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The binary, with none of the caller's `SVCTOKEN_*` settings.
fn svctoken() -> Command {
    let mut command = Command::new(BIN);
    for var in [
        "SVCTOKEN_CONFIG",
        "SVCTOKEN_ISSUER",
        "SVCTOKEN_LISTEN",
        "SVCTOKEN_DATA_DIR",
        "SVCTOKEN_DATABASE_URL",
        "SVCTOKEN_LOG_FORMAT",
    ] {
        command.env_remove(var);
    }
    command
}

fn run(command: &mut Command) -> (Output, String) {
    let out = command.output().expect("run svctoken");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// `n` free ports of 127.0.0.1 (bound together, so distinct, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}

/// A token endpoint's answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Answer {
    fn token(&self) -> &str {
        assert_eq!(self.status, 200, "{self:?}");
        self.body["access_token"].as_str().expect("access_token")
    }

    fn is_temporarily_unavailable(&self) -> bool {
        self.status == 503
            && self.body["error"] == "temporarily_unavailable"
            && self.retry_after.as_deref() == Some("2")
    }
}

async fn post_token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
    basic: bool,
) -> Result<Answer, reqwest::Error> {
    let mut request = http.post(format!("{base}/oauth/token")).form(form);
    if basic {
        request = request.basic_auth(CLIENT_ID, Some(CLIENT_SECRET));
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// A `client_credentials` request of the secret client.
async fn secret_token(http: &reqwest::Client, base: &str) -> Result<Answer, reqwest::Error> {
    post_token(http, base, &[("grant_type", "client_credentials")], true).await
}

/// A `client_credentials` request of the key client with `assertion`.
async fn key_token(
    http: &reqwest::Client,
    base: &str,
    assertion: &str,
) -> Result<Answer, reqwest::Error> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", KEY_CLIENT),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    post_token(http, base, &form, false).await
}

/// A fresh `private_key_jwt` assertion: `aud` the issuer identifier, a new `jti`, two
/// minutes of life.
fn assertion(key: &SigningKey, issuer: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let now = unix_now();
    let jti = format!(
        "replicas-{}-{now}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    key.sign_jwt(&json!({
        "iss": KEY_CLIENT,
        "sub": KEY_CLIENT,
        "aud": issuer,
        "iat": now,
        "exp": now + 120,
        "jti": jti,
    }))
    .expect("sign the assertion")
}

/// A verifier with Convex's rules, trusting `issuer` and fetching the JWKS of audience
/// `convex` from the replica at `base`: what `svctoken convex-config` prints.
fn convex_via(issuer: &str, base: &str) -> ConvexAuth {
    ConvexAuth::new(vec![Provider::CustomJwt {
        issuer: issuer.to_owned(),
        jwks: format!("{base}/audiences/convex/jwks.json"),
        algorithm: CustomJwtAlgorithm::ES256,
        application_id: Some("convex".into()),
    }])
}

fn kid_of(token: &str) -> String {
    let (header, _) = svctoken_jwks::dangerous::decode_unverified(token).expect("a JWT");
    header["kid"].as_str().expect("kid").to_owned()
}

/// The kids the replica at `base` publishes.
async fn published_kids(http: &reqwest::Client, base: &str) -> BTreeSet<String> {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks request")
        .json()
        .await
        .expect("a JWKS");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn readyz(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
        .as_u16()
}

/// `token` verifies under Convex's rules against the JWKS of every replica in `bases`,
/// each fetched fresh; the identity is the secret client's.
async fn assert_verifies_everywhere(token: &str, issuer: &str, bases: &[String], what: &str) {
    for base in bases {
        let identity = convex_via(issuer, base)
            .verify(token)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{what}: kid {} rejected against the JWKS of {base}: {e}",
                    kid_of(token)
                )
            });
        assert_eq!(identity.issuer, issuer, "{what}");
    }
}

/// The client loop's shared state: what it may expect of each replica, and what it saw.
struct Traffic {
    states: [AtomicU8; REPLICAS],
    stop: AtomicBool,
    issued: [AtomicUsize; REPLICAS],
    refused_while_joining: AtomicUsize,
    checks: AtomicUsize,
    kids: Mutex<[BTreeSet<String>; REPLICAS]>,
    failures: Mutex<Vec<String>>,
}

impl Traffic {
    fn new() -> Self {
        Traffic {
            states: std::array::from_fn(|_| AtomicU8::new(State::Down as u8)),
            stop: AtomicBool::new(false),
            issued: std::array::from_fn(|_| AtomicUsize::new(0)),
            refused_while_joining: AtomicUsize::new(0),
            checks: AtomicUsize::new(0),
            kids: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    fn state(&self, i: usize) -> State {
        match self.states[i].load(Ordering::SeqCst) {
            0 => State::Down,
            1 => State::Joining,
            _ => State::Up,
        }
    }

    fn set(&self, i: usize, state: State) {
        self.states[i].store(state as u8, Ordering::SeqCst);
    }

    fn fail(&self, what: String) {
        eprintln!("client loop: {what}");
        self.failures.lock().expect("failures").push(what);
    }

    fn kids(&self, i: usize) -> BTreeSet<String> {
        self.kids.lock().expect("kids")[i].clone()
    }
}

/// Fetches tokens round-robin from the replicas until told to stop; checks every token
/// against every running replica's JWKS (fetched fresh) and against the JWKS of replica 2 as
/// a caching Convex holds it. Records what does not hold; returns how many times the caching
/// verifier fetched that JWKS.
async fn client_loop(traffic: Arc<Traffic>, bases: Vec<String>, issuer: String) -> usize {
    let http = http_client();
    let fresh: Vec<ConvexAuth> = bases.iter().map(|b| convex_via(&issuer, b)).collect();
    let cached = convex_via(&issuer, &bases[2]);
    let mut n = 0usize;
    while !traffic.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let i = n % REPLICAS;
        n += 1;
        let before = traffic.state(i);
        if before == State::Down {
            continue;
        }
        let answer = secret_token(&http, &bases[i]).await;
        let after = traffic.state(i);
        let answer = match answer {
            Ok(answer) => answer,
            Err(_) if after == State::Down => continue,
            Err(e) => {
                traffic.fail(format!("replica {i}: token request failed: {e}"));
                continue;
            }
        };
        if answer.status != 200 {
            if after == State::Down {
                continue;
            }
            let joining = before == State::Joining || after == State::Joining;
            if joining && answer.is_temporarily_unavailable() {
                traffic
                    .refused_while_joining
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                traffic.fail(format!("replica {i} ({after:?}) refused: {answer:?}"));
            }
            continue;
        }
        let token = answer.token();
        let kid = kid_of(token);
        traffic.issued[i].fetch_add(1, Ordering::Relaxed);
        traffic.kids.lock().expect("kids")[i].insert(kid.clone());
        for (j, verifier) in fresh.iter().enumerate() {
            if traffic.state(j) == State::Down {
                continue;
            }
            verifier.clear_cache();
            match verifier.verify(token).await {
                Ok(identity) if identity.subject == format!("svc:{CLIENT_ID}") => {}
                Ok(identity) => traffic.fail(format!("unexpected identity {identity:?}")),
                Err(_) if traffic.state(j) == State::Down => {}
                Err(e) => traffic.fail(format!(
                    "a token of replica {i} (kid {kid}) is rejected against replica {j}'s \
                     JWKS, fetched fresh: {e}"
                )),
            }
        }
        if traffic.state(2) != State::Down {
            match cached.verify(token).await {
                Ok(_) => {}
                Err(_) if traffic.state(2) == State::Down => {}
                Err(e) => traffic.fail(format!(
                    "a token of replica {i} (kid {kid}) is rejected by a Convex caching \
                     replica 2's JWKS: {e}"
                )),
            }
        }
        traffic.checks.fetch_add(1, Ordering::Relaxed);
    }
    cached.fetch_count()
}

/// Progress on stderr, with the time since the start.
fn say(start: Instant, what: &str) {
    eprintln!("[{:>6.1}s] {what}", start.elapsed().as_secs_f64());
}

/// Runs blocking work (starting processes, `pg_ctl`) without stalling the client loop.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_join_rotate_crash_and_outlive_a_database_restart() {
    let Some(cluster) = TestCluster::start("cli/tests/replicas.rs") else {
        return;
    };
    let start = Instant::now();
    let db = cluster.url();
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(2 * REPLICAS);
    // The load balancer's URL: every replica mints and publishes it.
    let issuer = format!("http://127.0.0.1:{}", ports[0]);
    let client_key = SigningKey::generate(Algorithm::ES256).expect("client key");
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let ports = (ports[i], ports[REPLICAS + i]);
            Replica::new(root.path(), i, ports, &issuer, &db, &client_key)
        })
        .collect();
    let bases: Vec<String> = replicas.iter().map(Replica::url).collect();
    let admins: Vec<String> = replicas.iter().map(Replica::admin_url).collect();
    let http = http_client();

    // 1. Replica 0, on the empty database, signs at once.
    let started_0 = Instant::now();
    blocking(|| replicas[0].start());
    say(start, "replica 0 started");
    assert_eq!(
        readyz(&http, &admins[0]).await,
        200,
        "the first replica signs at once"
    );
    let first = secret_token(&http, &bases[0]).await.expect("token");
    assert_verifies_everywhere(
        first.token(),
        &issuer,
        &bases[..1],
        "replica 0's first token",
    )
    .await;
    let id_0 = replicas[0].banner_replica_id();

    let traffic = Arc::new(Traffic::new());
    traffic.set(0, State::Up);
    let client = tokio::spawn(client_loop(traffic.clone(), bases.clone(), issuer.clone()));

    // Replicas 1 and 2 join while replica 0 signs: 503 until their first key has its lead.
    let joined = Instant::now();
    blocking(|| {
        for replica in &mut replicas[1..] {
            replica.start();
            traffic.set(replica.index, State::Joining);
        }
    });
    say(start, "replicas 1 and 2 started");
    let ids: Vec<String> = std::iter::once(id_0.clone())
        .chain(replicas[1..].iter().map(Replica::banner_replica_id))
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        REPLICAS,
        "three replica ids: {ids:?}"
    );
    for i in 1..REPLICAS {
        assert!(
            blocking(|| replicas[i].banner_says_waiting()),
            "replica {i}'s banner says it waits: {:?}",
            replicas[i].banner()
        );
        assert_eq!(readyz(&http, &admins[i]).await, 503, "replica {i} joining");
        let answer = secret_token(&http, &bases[i]).await.expect("token request");
        assert!(
            answer.is_temporarily_unavailable(),
            "a joining replica answers 503 temporarily_unavailable, Retry-After 2: {answer:?}"
        );
        // It serves the union of the keys at once: replica 0's tokens verify against it.
        let token = secret_token(&http, &bases[0]).await.expect("token");
        assert_verifies_everywhere(token.token(), &issuer, &bases, "while joining").await;
    }
    let mut ready_after = [None; REPLICAS];
    let deadline = joined + LEAD + Duration::from_secs(20);
    while ready_after[1..].iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "replicas 1 and 2 never became ready: {ready_after:?}\n{}\n{}",
            replicas[1].log_tail(),
            replicas[2].log_tail()
        );
        for i in 1..REPLICAS {
            if ready_after[i].is_none() && readyz(&http, &admins[i]).await == 200 {
                ready_after[i] = Some(joined.elapsed());
                traffic.set(i, State::Up);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(
        start,
        &format!("replicas 1 and 2 ready after {ready_after:?}"),
    );
    for (i, after) in ready_after.iter().enumerate().skip(1) {
        let after = after.expect("ready");
        // The key was published after the process started, at a whole second.
        assert!(
            after + Duration::from_secs(2) >= LEAD,
            "replica {i} signed after {after:?}, before a full lead ({LEAD:?})"
        );
        let answer = secret_token(&http, &bases[i]).await.expect("token request");
        assert_verifies_everywhere(answer.token(), &issuer, &bases, "a joined replica's token")
            .await;
        let answer = key_token(&http, &bases[i], &assertion(&client_key, &issuer))
            .await
            .expect("token request");
        assert_eq!(
            answer.status, 200,
            "private_key_jwt at replica {i}: {answer:?}"
        );
        assert_verifies_everywhere(answer.token(), &issuer, &bases, "a private_key_jwt token")
            .await;
    }

    // 5. One assertion, used at replica 1, is refused at the others.
    assert_replay_refused_elsewhere(&http, &bases, &client_key, &issuer, 1).await;
    say(
        start,
        "a replayed assertion is refused at every other replica",
    );

    // 3. Replica 0 killed the moment its standby takes over.
    let deadline = started_0 + ROTATION_PERIOD + Duration::from_secs(30);
    let _ = replicas[0].new_log_lines();
    let activated = loop {
        let lines = replicas[0].new_log_lines();
        let activated = lines.iter().find_map(|l| {
            let message = l["fields"]["message"].as_str()?;
            message
                .starts_with("key activated")
                .then(|| l["fields"]["kid"].as_str().map(str::to_owned))
                .flatten()
        });
        if let Some(kid) = activated {
            traffic.set(0, State::Down);
            replicas[0].kill();
            break kid;
        }
        assert!(
            Instant::now() < deadline,
            "replica 0 never rotated\n{}",
            replicas[0].log_tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    say(
        start,
        &format!("replica 0 killed right after activating {activated}"),
    );
    // What replica 0 signed with before the kill: its old key, and the new one too if a token
    // request reached it between the swap and the kill (the log line follows the swap).
    let before_kill = traffic.kids(0);
    assert!(
        !before_kill.is_empty(),
        "replica 0 signed no token before the kill"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 1..REPLICAS {
        let answer = secret_token(&http, &bases[i]).await.expect("token request");
        assert_verifies_everywhere(answer.token(), &issuer, &bases[1..], "with replica 0 down")
            .await;
        let kids = published_kids(&http, &bases[i]).await;
        assert!(
            kids.contains(&activated) && before_kill.is_subset(&kids),
            "replica {i} still publishes replica 0's keys ({activated}, {before_kill:?}): {kids:?}"
        );
    }
    blocking(|| replicas[0].start());
    traffic.set(0, State::Up);
    say(start, "replica 0 restarted on its data directory");
    assert_eq!(replicas[0].banner_replica_id(), id_0, "the same replica id");
    assert_eq!(readyz(&http, &admins[0]).await, 200, "it signs at once");
    let answer = secret_token(&http, &bases[0]).await.expect("token request");
    assert_eq!(
        kid_of(answer.token()),
        activated,
        "it signs with the key it activated before the crash"
    );
    assert_verifies_everywhere(answer.token(), &issuer, &bases, "replica 0 restarted").await;
    let (out, listed) = blocking(|| {
        run(svctoken()
            .args(["keys", "list", "--config"])
            .arg(replicas[0].config()))
    });
    assert!(
        out.status.success(),
        "keys list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.starts_with(&format!("replica {id_0} on ")),
        "keys list names the replica: {listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&activated) && l.contains("active")),
        "keys list shows {activated} active: {listed}"
    );

    // 4. PostgreSQL restarted, as in a crash.
    blocking(|| cluster.stop());
    let down = Instant::now();
    say(start, "PostgreSQL stopped");
    let mut rounds = 0;
    while down.elapsed() < Duration::from_secs(6) {
        for (i, base) in bases.iter().enumerate() {
            let answer = secret_token(&http, base).await.expect("token request");
            assert_eq!(
                answer.status,
                200,
                "replica {i}: a secret client gets tokens while the database is down: {answer:?}\n{}",
                replicas[i].log_tail()
            );
            assert_verifies_everywhere(answer.token(), &issuer, &bases, "database down").await;
            let answer = key_token(&http, base, &assertion(&client_key, &issuer))
                .await
                .expect("token request");
            assert!(
                answer.is_temporarily_unavailable(),
                "replica {i}: private_key_jwt while the database is down: {answer:?}"
            );
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(rounds >= 2, "{rounds} rounds while down");
    blocking(|| cluster.start_again());
    let back = Instant::now();
    say(start, "PostgreSQL started again");
    let mut recovered = [None; REPLICAS];
    let deadline = back + Duration::from_secs(30);
    while recovered.iter().any(Option::is_none) {
        assert!(
            Instant::now() < deadline,
            "private_key_jwt did not recover within 30 s of the database's return: \
             {recovered:?}\n{}",
            replicas
                .iter()
                .map(Replica::log_tail)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for (i, base) in bases.iter().enumerate() {
            if recovered[i].is_some() {
                continue;
            }
            let answer = key_token(&http, base, &assertion(&client_key, &issuer))
                .await
                .expect("token request");
            match answer.status {
                200 => recovered[i] = Some(back.elapsed()),
                _ => assert!(
                    answer.is_temporarily_unavailable(),
                    "replica {i}, database coming back: {answer:?}"
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(start, &format!("private_key_jwt back after {recovered:?}"));
    assert_replay_refused_elsewhere(&http, &bases, &client_key, &issuer, 2).await;

    // Every replica rotates at least once under the client loop.
    let deadline = joined + LEAD + ROTATION_PERIOD + Duration::from_secs(30);
    while (0..REPLICAS).any(|i| traffic.kids(i).len() < 2) {
        assert!(
            Instant::now() < deadline,
            "not every replica rotated: {:?}",
            (0..REPLICAS).map(|i| traffic.kids(i)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    traffic.stop.store(true, Ordering::SeqCst);
    let cached_fetches = client.await.expect("the client loop");
    let issued: Vec<usize> = traffic
        .issued
        .iter()
        .map(|n| n.load(Ordering::Relaxed))
        .collect();
    say(
        start,
        &format!(
            "client loop: {issued:?} tokens, {} checked, {} refused while joining, the \
             caching verifier fetched replica 2's JWKS {cached_fetches} times, kids {:?}",
            traffic.checks.load(Ordering::Relaxed),
            traffic.refused_while_joining.load(Ordering::Relaxed),
            (0..REPLICAS).map(|i| traffic.kids(i)).collect::<Vec<_>>()
        ),
    );
    let failures = traffic.failures.lock().expect("failures").clone();
    assert!(
        failures.is_empty(),
        "{} failures in the client loop, the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(
        issued.iter().all(|&n| n > 10),
        "every replica issued: {issued:?}"
    );
    assert!(
        traffic.refused_while_joining.load(Ordering::Relaxed) > 0,
        "the client loop met the joining replicas' 503"
    );
    // The caching verifier did cache: about one fetch per max-age (10 s), not one per token.
    assert!(
        cached_fetches > 0 && cached_fetches * 20 < traffic.checks.load(Ordering::Relaxed),
        "the caching verifier fetched {cached_fetches} times"
    );

    // 6. The audit chains, once every replica has stopped (and flushed).
    blocking(|| replicas.iter_mut().for_each(Replica::terminate));
    let (out, report) =
        blocking(|| run(svctoken().args(["audit", "verify", "--database-url", &db])));
    assert!(
        out.status.success(),
        "audit verify: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in &ids {
        assert!(
            report
                .lines()
                .any(|l| l.contains(&format!(" replica {id}: intact, "))),
            "an intact chain for replica {id}: {report}"
        );
    }
    assert_eq!(report.lines().count(), REPLICAS, "{report}");
    say(start, "audit chains intact");
}

/// An assertion used at replica `at` (200) is refused at every other replica, and at `at`
/// again (401 `invalid_client`).
async fn assert_replay_refused_elsewhere(
    http: &reqwest::Client,
    bases: &[String],
    key: &SigningKey,
    issuer: &str,
    at: usize,
) {
    let once = assertion(key, issuer);
    let answer = key_token(http, &bases[at], &once)
        .await
        .expect("token request");
    assert_eq!(answer.status, 200, "first use at replica {at}: {answer:?}");
    for (i, base) in bases.iter().enumerate() {
        let answer = key_token(http, base, &once).await.expect("token request");
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (401, Some("invalid_client")),
            "the assertion used at replica {at}, replayed at replica {i}: {answer:?}"
        );
    }
}
