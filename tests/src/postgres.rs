//! PostgreSQL for tests: a fresh schema in the machine's server ([`TestSchema`]), or a cluster
//! of the test's own that it can stop and start ([`TestCluster`]).
//!
//! The machine's server is `postgres://postgres@127.0.0.1:5432/test` (trust auth), or the URL
//! in `SVCTOKEN_TEST_DATABASE_URL`. When it does not answer, or `initdb`/`pg_ctl` are not
//! installed, a test skips with a printed reason, except under `CI=true`, where that is a
//! failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use svctoken_issuer::postgres::Database;

use crate::interop::under_ci;

/// The machine's test database.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn base_url() -> String {
    std::env::var("SVCTOKEN_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// Skips a test (prints why and returns `None`), or fails it under CI.
fn unavailable<T>(what: &str, why: impl std::fmt::Display) -> Option<T> {
    if under_ci() {
        panic!(
            "{what}: {why}; under CI=true PostgreSQL must be running (see scripts/install-test-deps)"
        );
    }
    eprintln!("SKIPPED: {what}: {why} (start PostgreSQL on 127.0.0.1:5432 to run it)");
    None
}

/// Runs SQL statements on `url`, from any thread (a runtime of its own on a thread of its own).
pub fn execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let (client, connection) = tokio::time::timeout(
                Duration::from_secs(5),
                tokio_postgres::connect(&url, tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| "no answer within 5s".to_owned())?
            .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let done = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            done
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the SQL thread panicked".into()))
}

/// A schema of its own in the machine's test database, dropped with it. Every handle
/// connected through [`TestSchema::url`] works in that schema only.
pub struct TestSchema {
    /// The URL that selects the schema (`options=-c search_path=...`).
    pub url: String,
    base: String,
    schema: String,
}

impl TestSchema {
    /// A new empty schema, or `None` (a printed skip) when the server does not answer.
    pub fn new(what: &str) -> Option<TestSchema> {
        let base = base_url();
        let mut random = [0u8; 6];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .expect("random");
        let schema = format!("svctoken_test_{}", hex_string(&random));
        if let Err(e) = execute(&base, &format!("CREATE SCHEMA {schema}")) {
            return unavailable(what, format!("PostgreSQL at {base}: {e}"));
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(TestSchema { url, base, schema })
    }

    /// A database handle on the schema (migrated).
    pub fn connect(&self) -> Database {
        Database::connect(&self.url).expect("the test schema connects and migrates")
    }

    /// Runs SQL in the schema.
    pub fn execute(&self, sql: &str) {
        execute(&self.url, sql).expect("SQL runs");
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = execute(
            &self.base,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
        );
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PostgreSQL cluster of the test's own (`initdb` in a temporary directory, `pg_ctl` on a
/// free port of 127.0.0.1), so a test can stop and start the database. Stopped when dropped.
pub struct TestCluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    /// Run the server's commands as this user (`postgres`, when the tests run as root, whom
    /// `initdb` refuses).
    run_as: Option<String>,
}

impl TestCluster {
    /// Creates and starts a cluster, or `None` (a printed skip) when `initdb` is missing.
    pub fn start(what: &str) -> Option<TestCluster> {
        let Some(bin) = find_bin() else {
            return unavailable(what, "initdb and pg_ctl are not installed");
        };
        let dir = tempfile::Builder::new()
            .prefix("svctoken-pg-")
            .tempdir()
            .expect("tempdir");
        let run_as = is_root().then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let (uid, gid) = match user_ids(user) {
                Some(ids) => ids,
                None => return unavailable(what, format!("running as root and no user {user}")),
            };
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cluster = TestCluster {
            dir,
            port,
            bin,
            run_as,
        };
        let data = cluster.data_dir();
        let init = cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        if let Err(e) = init {
            return unavailable(what, format!("initdb failed: {e}"));
        }
        cluster.start_again();
        Some(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let data = self.data_dir().display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "30", "start",
            ],
        )
        .expect("pg_ctl start");
        let deadline = Instant::now() + Duration::from_secs(30);
        while execute(&self.url(), "SELECT 1").is_err() {
            assert!(
                Instant::now() < deadline,
                "the test cluster did not accept connections"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server at once (`-m immediate`: as if it crashed), closing every connection.
    pub fn stop(&self) {
        let data = self.data_dir().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            .expect("pg_ctl stop");
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {args:?}: {}{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.data_dir().display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, else Debian's newest version.
fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    debian.sort();
    on_path
        .chain(debian.into_iter().rev())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .map(|dir| resolve(&dir))
}

/// `pg_ctl` on `PATH` may be a link into Debian's tree; use the directory it points into, so
/// `initdb` and `pg_ctl` come from one version.
fn resolve(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir.join("pg_ctl"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("initdb").is_file())
        .unwrap_or_else(|| dir.to_path_buf())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
            .flatten()
    })
}
