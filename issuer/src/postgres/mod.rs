//! PostgreSQL, for several replicas behind a load balancer: the [`Database`] handle and what
//! the replicas share through it.
//!
//! - [`PgStore`]: each replica's key lineage (public keys and schedule) and lease, in one
//!   table; every replica serves the union of all published keys. Private keys stay in the
//!   replica's own `data_dir`: a copy of the database gives no signing key.
//! - The `private_key_jwt` replay cache and the per-client rate-limit buckets
//!   ([`SharedReplay`], [`SharedLimiter`]).
//! - The audit trail ([`AuditTable`]): one hash chain per replica, lines exactly as a chained
//!   file holds them, checked by [`verify_database`] (`svctoken audit verify --database-url`).
//!
//! The schema is created and migrated at start-up by embedded migrations (`refinery`), run
//! under an advisory lock so replicas starting together migrate once. The driver is
//! `tokio-postgres` with TLS by rustls on ring; a URL without `sslmode` to a loopback host
//! connects without TLS, any other uses TLS when the server offers it (`sslmode=require`:
//! only with TLS), with the server's certificate checked against the Mozilla roots.
//!
//! Connections live on a thread of their own (`svctoken-db`, its own small runtime), so the
//! synchronous key store API and the audit writer thread can wait on the database from
//! anywhere, and async callers await the same operations. Every operation is bounded by
//! [`OPERATION_TIMEOUT`]: a database that is down fails fast, and the callers decide (the
//! active key keeps signing; `private_key_jwt` is refused with `temporarily_unavailable`).

mod audit;
mod keys;
mod shared;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Error, Result};

pub use audit::{AuditTable, ReplicaChain, verify_database};
pub use keys::{PgStore, replica_id_for};
pub use shared::{SharedLimiter, SharedReplay};

/// How long one database operation (waiting for a connection included) may take before it
/// counts as failed.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The propagation bound P: a key set saved by one replica is served by every replica within
/// this time. Replicas are told at once (LISTEN/NOTIFY) and, should a notification be lost,
/// re-read the key sets every lifecycle run (5 s); P allows for a slow run.
pub const PROPAGATION: Duration = Duration::from_secs(10);

/// Lets a message through at most once per [`Throttle::EVERY`]: a database that is down fails
/// every request that needs it, and one log line per request would flood the log.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: std::sync::atomic::AtomicU64,
}

impl Throttle {
    /// The shortest time between two messages.
    pub(crate) const EVERY: Duration = Duration::from_secs(10);

    /// True if a message may be logged at `now` (seconds since the epoch); the others are
    /// counted by the metrics their callers keep.
    pub(crate) fn allow(&self, now: u64) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let last = self.last.load(Relaxed);
        (last == 0 || now >= last + Self::EVERY.as_secs())
            && self
                .last
                .compare_exchange(last, now.max(1), Relaxed, Relaxed)
                .is_ok()
    }
}

/// The channel key set changes are announced on.
const CHANNEL: &str = "svctoken_keys";

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A PostgreSQL database shared by the replicas: a connection pool, migrated at connect.
/// Cheap to clone; the connections close when the last clone is dropped.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    handle: tokio::runtime::Handle,
    name: String,
    /// Dropped with the last clone: the connection thread then stops.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Database").field(&self.inner.name).finish()
    }
}

impl Database {
    /// Connects to the database at `url` (`postgres://user:password@host:5432/dbname`) and
    /// creates or migrates the schema. Blocking.
    pub fn connect(url: &str) -> Result<Database> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::Config(format!(
                "database_url is not a PostgreSQL URL ({e}); write \
                 postgres://user:password@host:5432/dbname"
            ))
        })?;
        let name = describe(&config);
        if !url.contains("sslmode=") && is_loopback(&config) {
            config.ssl_mode(SslMode::Disable);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(OPERATION_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("svctoken");
        }
        let tls = tls()?;
        let (handle, stop) = spawn_runtime().map_err(|e| Error::Database {
            database: name.clone(),
            message: format!("starting the connection thread: {e}"),
        })?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(OPERATION_TIMEOUT))
            .create_timeout(Some(OPERATION_TIMEOUT))
            .recycle_timeout(Some(OPERATION_TIMEOUT))
            .build()
            .map_err(|e| Error::Database {
                database: name.clone(),
                message: e.to_string(),
            })?;
        let db = Database {
            inner: Arc::new(Inner {
                pool,
                config,
                tls,
                handle,
                name,
                _stop: stop,
            }),
        };
        db.block_on(|db| async move { db.migrate().await })?;
        Ok(db)
    }

    /// The database's URL without credentials, for messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Runs `f` on the connection thread and waits for it, bounded by [`OPERATION_TIMEOUT`].
    /// Blocking: for the key store and the audit writer, which run off the async executor.
    pub(crate) fn block_on<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        futures_executor::block_on(self.run(f))
    }

    /// Runs `f` on the connection thread, bounded by [`OPERATION_TIMEOUT`].
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let work = f(self.clone());
        let name = self.inner.name.clone();
        let task = self.inner.handle.spawn(async move {
            match tokio::time::timeout(OPERATION_TIMEOUT, work).await {
                Ok(result) => result,
                Err(_) => Err(Error::Database {
                    database: name,
                    message: format!(
                        "no answer within {}",
                        humantime::format_duration(OPERATION_TIMEOUT)
                    ),
                }),
            }
        });
        task.await
            .map_err(|e| self.error(format!("operation failed: {e}")))?
    }

    /// Runs `f` on the connection thread without waiting for it.
    pub(crate) fn spawn_detached(&self, f: impl Future<Output = ()> + Send + 'static) {
        drop(self.inner.handle.spawn(f));
    }

    /// A pooled connection. Call it on the connection thread (inside [`Database::run`]).
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| self.error(format!("no connection: {e}")))
    }

    /// The error for a failed operation.
    pub(crate) fn error(&self, message: impl fmt::Display) -> Error {
        Error::Database {
            database: self.inner.name.clone(),
            message: message.to_string(),
        }
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        // Replicas starting together: the first migrates, the others wait, then find nothing
        // to do. The lock is per schema, so tests in their own schemas don't wait on each other.
        const KEY: &str =
            "hashtextextended(coalesce(current_schema(), '') || '/svctoken/migrations', 0)";
        client
            .batch_execute(&format!("SELECT pg_advisory_lock({KEY})"))
            .await
            .map_err(|e| self.error(e))?;
        let pg: &mut tokio_postgres::Client = &mut client;
        let migrated = embedded::migrations::runner()
            .set_migration_table_name("svctoken_migrations")
            .run_async(pg)
            .await;
        let unlocked = client
            .batch_execute(&format!("SELECT pg_advisory_unlock({KEY})"))
            .await;
        migrated.map_err(|e| self.error(format!("migrating the schema: {e}")))?;
        unlocked.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Starts listening for key set changes announced by any replica: the returned signal is
    /// raised for each, and after every reconnection (changes may have been missed). Keeps
    /// reconnecting while the database is down; stops when the database handle is dropped.
    pub(crate) fn listen_key_changes(&self) -> Arc<tokio::sync::Notify> {
        let changed = Arc::new(tokio::sync::Notify::new());
        let signal = changed.clone();
        let weak = Arc::downgrade(&self.inner);
        self.inner.handle.spawn(async move {
            let mut pause = Duration::from_millis(250);
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let (config, tls) = (inner.config.clone(), inner.tls.clone());
                drop(inner);
                match listen(&config, tls, &signal).await {
                    Ok(()) => pause = Duration::from_millis(250),
                    Err(e) => {
                        tracing::debug!(error = %e, "key change notifications interrupted; reconnecting");
                        pause = (pause * 2).min(Duration::from_secs(5));
                    }
                }
                tokio::time::sleep(pause).await;
            }
        });
        changed
    }
}

/// One LISTEN session: raises `signal` once connected (changes may have been missed while
/// not listening) and for every notification, until the connection fails.
async fn listen(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    signal: &tokio::sync::Notify,
) -> std::result::Result<(), tokio_postgres::Error> {
    use tokio_postgres::AsyncMessage;
    let (client, mut connection) = config.connect(tls).await?;
    let subscribe = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        signal.notify_one();
        std::future::pending::<std::result::Result<(), tokio_postgres::Error>>().await
    };
    let drive = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => signal.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    };
    tokio::select! {
        r = subscribe => r,
        r = drive => r,
    }
}

/// The wall clock in seconds, for log throttling only (decisions use the issuer's clock).
fn now_secs() -> u64 {
    svctoken_mint::Clock::unix_secs(&svctoken_mint::SystemClock)
}

/// `postgres://user@host:port/dbname`, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(name) => format!("{name}:{port}"),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{dbname}", hosts.join(","))
}

fn is_loopback(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Host::Unix(_) => true,
    })
}

/// TLS by rustls on ring, the server's certificate checked against the Mozilla roots.
fn tls() -> Result<MakeRustlsConnect> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("database TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A thread running a small runtime for the connections; it stops when the sender returned
/// is dropped.
fn spawn_runtime() -> std::io::Result<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (started, handle) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("svctoken-db".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let _ = started.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            }
        })?;
    let handle = handle
        .recv()
        .map_err(|_| std::io::Error::other("the connection thread did not start"))??;
    Ok((handle, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_message_through_per_period() {
        let throttle = Throttle::default();
        assert!(throttle.allow(100));
        assert!(!throttle.allow(100));
        assert!(!throttle.allow(109));
        assert!(throttle.allow(110));
        assert!(!throttle.allow(111));
    }

    #[test]
    fn the_name_never_holds_the_password() {
        let config: tokio_postgres::Config = "postgres://svc:hunter2@db.internal:6432/auth"
            .parse()
            .expect("url");
        assert_eq!(describe(&config), "postgres://svc@db.internal:6432/auth");
        assert!(!is_loopback(&config));
        let local: tokio_postgres::Config =
            "postgres://postgres@127.0.0.1/test".parse().expect("url");
        assert_eq!(describe(&local), "postgres://postgres@127.0.0.1:5432/test");
        assert!(is_loopback(&local));
    }

    #[test]
    fn a_bad_url_says_what_to_write_without_echoing_it() {
        let err = Database::connect("mysql://root:secret@x/y").expect_err("not postgres");
        let text = err.to_string();
        assert!(text.contains("postgres://user:password@host"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
