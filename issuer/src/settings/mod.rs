//! Configuration: one TOML file (every key optional), overridden by flags and `SVCTOKEN_*`
//! environment variables, validated once into [`Settings`], whose fields can't be wrong.
//!
//! [`Config`] is the file as read (or the embedded default), not yet validated: `serve` reads
//! the address to bind from it and adds the embedded default's development client to it before
//! validating, so the bound address and that client pass the same checks as everything else.

mod client;
mod file;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use svctoken_jwks::Algorithm;
use svctoken_mint::{DEFAULT_TTL, IssuerUrl};

pub use crate::audience::{Audience, Profile};
pub use client::MAX_TTL_LIMIT;
pub use file::{
    AuditConfig, ClientConfig, RateLimitConfig, TlsConfig, TrustedIssuerConfig, parse_duration,
};

use crate::clients::ClientRegistry;
use crate::peer::TrustedProxies;
use crate::rotation::Schedule;
use crate::store::pkcs11::{PIN_ENV, PinSource, Pkcs11Config};
use crate::{Error, Result};
use file::{BackendName, ConfigFile, KeysConfig};

/// Default `listen`: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `admin_listen`: `127.0.0.1:8081` (port 0 when `listen`'s port is 0).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// The `admin_listen` value that turns the admin listener off.
pub const ADMIN_LISTEN_OFF: &str = "off";
/// Default `data_dir`: `./svctoken-data`.
pub const DEFAULT_DATA_DIR: &str = "./svctoken-data";
/// Default `replica_lease`: one hour.
pub const DEFAULT_REPLICA_LEASE: Duration = Duration::from_secs(3600);
/// The shortest `replica_lease`: a minute (twelve lifecycle runs to renew it).
pub const SHORTEST_REPLICA_LEASE: Duration = Duration::from_secs(60);

/// Where private keys live (`[keys] backend`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyBackend {
    /// PKCS#8 files, mode 0600, in `<data_dir>/private` (the default).
    Files,
    /// A PKCS#11 token (an HSM): keys are generated in it and never leave it.
    Pkcs11(Pkcs11Config),
}

impl KeyBackend {
    /// `files` or `pkcs11`, as configured.
    pub fn name(&self) -> &'static str {
        match self {
            KeyBackend::Files => "files",
            KeyBackend::Pkcs11(_) => "pkcs11",
        }
    }

    fn from_config(keys: &KeysConfig, base: &Path) -> Result<KeyBackend> {
        let pkcs11_only = [
            ("module", keys.module.is_some()),
            ("token_label", keys.token_label.is_some()),
            ("pin_file", keys.pin_file.is_some()),
            ("sessions", keys.sessions.is_some()),
        ];
        if keys.backend != Some(BackendName::Pkcs11) {
            if let Some((name, _)) = pkcs11_only.iter().find(|(_, set)| *set) {
                return Err(Error::Config(format!(
                    "[keys] {name} is for backend = \"pkcs11\"; set that, or remove {name}"
                )));
            }
            return Ok(KeyBackend::Files);
        }
        let (Some(module), Some(token_label)) = (&keys.module, &keys.token_label) else {
            return Err(Error::Config(
                "[keys] backend = \"pkcs11\" needs module (the PKCS#11 library's path) and \
                 token_label"
                    .into(),
            ));
        };
        let pin = match &keys.pin_file {
            Some(path) => PinSource::File(base.join(path)),
            None if std::env::var_os(PIN_ENV).is_some() => PinSource::Env,
            None => {
                return Err(Error::Config(format!(
                    "[keys] backend = \"pkcs11\" needs the token's user PIN: set pin_file, or \
                     the environment variable {PIN_ENV} (never on the command line)"
                )));
            }
        };
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let sessions = keys.sessions.unwrap_or((2 * cpus).max(4));
        if !(1..=1024).contains(&sessions) {
            return Err(Error::Config(
                "[keys] sessions must be between 1 and 1024".into(),
            ));
        }
        Ok(KeyBackend::Pkcs11(Pkcs11Config {
            module: base.join(module),
            token_label: token_label.clone(),
            pin,
            sessions,
        }))
    }
}

/// Several replicas sharing state on PostgreSQL.
#[derive(Clone)]
pub struct Replication {
    url: zeroize::Zeroizing<String>,
    replica_id: Option<String>,
    lease: Duration,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("url", &"[redacted]")
            .field("replica_id", &self.replica_id)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Replication {
    /// The database URL (it may hold a password: never log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The configured replica id. Default: derived (see
    /// [`replica_id_for`](crate::postgres::replica_id_for)).
    pub fn replica_id(&self) -> Option<&str> {
        self.replica_id.as_deref()
    }

    /// How long a replica may sign without reaching the database. Default 1h.
    pub fn lease(&self) -> Duration {
        self.lease
    }
}

/// Values given on the command line or in `SVCTOKEN_*` variables; they win over the file and
/// relative paths in them are relative to the working directory.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--issuer` / `SVCTOKEN_ISSUER`.
    pub issuer: Option<String>,
    /// `--listen` / `SVCTOKEN_LISTEN`.
    pub listen: Option<String>,
    /// `--admin-listen` / `SVCTOKEN_ADMIN_LISTEN` (`serve` only).
    pub admin_listen: Option<String>,
    /// `--data-dir` / `SVCTOKEN_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `SVCTOKEN_DATABASE_URL`.
    pub database_url: Option<String>,
}

/// A configuration as read, not yet validated.
#[derive(Debug)]
pub struct Config {
    file: ConfigFile,
    /// The directory relative paths in the file are relative to.
    base: PathBuf,
    /// The file it came from; `None` for the embedded default.
    path: Option<PathBuf>,
}

impl Config {
    /// Reads the file at `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else {
            return Ok(Config {
                file: ConfigFile::default(),
                base: PathBuf::from("."),
                path: None,
            });
        };
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        let file =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(Config {
            file,
            base: path.parent().unwrap_or(Path::new(".")).to_owned(),
            path: Some(path.to_owned()),
        })
    }

    /// Parses TOML text; relative paths in it are relative to the working directory.
    pub fn from_toml(text: &str) -> Result<Config> {
        Ok(Config {
            file: toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?,
            base: PathBuf::from("."),
            path: None,
        })
    }

    /// True for the embedded default (no file).
    pub fn is_embedded_default(&self) -> bool {
        self.path.is_none()
    }

    /// The address to listen on.
    pub fn listen(&self, overrides: &Overrides) -> Result<SocketAddr> {
        let text = overrides
            .listen
            .as_deref()
            .or(self.file.listen.as_deref())
            .unwrap_or(DEFAULT_LISTEN);
        text.parse().map_err(|_| {
            Error::Config(format!(
                "listen = {text:?} is not an address like \"127.0.0.1:8080\""
            ))
        })
    }

    /// The admin listener's address, `None` when it is `"off"`. Unset, it is loopback port
    /// 8081, or loopback port 0 when `listen`'s port is 0 (so that tests binding any free port
    /// do not collide). Only an address set explicitly may be other than loopback; it must
    /// differ from `listen`.
    pub fn admin_listen(&self, overrides: &Overrides) -> Result<Option<SocketAddr>> {
        let listen = self.listen(overrides)?;
        let set = overrides
            .admin_listen
            .as_deref()
            .or(self.file.admin_listen.as_deref());
        let Some(text) = set else {
            return Ok(Some(default_admin_listen(listen)));
        };
        if text == ADMIN_LISTEN_OFF {
            return Ok(None);
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            Error::Config(format!(
                "admin_listen = {text:?} is not an address like \"127.0.0.1:8081\", nor \"off\""
            ))
        })?;
        if addr.port() != 0 && addr == listen {
            return Err(Error::Config(format!(
                "admin_listen = {text:?} is listen's address: the admin routes need their own"
            )));
        }
        Ok(Some(addr))
    }

    /// The files store directory.
    pub fn data_dir(&self, overrides: &Overrides) -> PathBuf {
        match (&overrides.data_dir, &self.file.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => self.base.join(dir),
            (None, None) => DEFAULT_DATA_DIR.into(),
        }
    }

    /// Adds a client, validated with the others.
    pub fn add_client(&mut self, client: ClientConfig) {
        self.file.clients.push(client);
    }

    /// Validates everything; the error names the file and says what to change.
    pub fn validate(self, overrides: &Overrides) -> Result<Settings> {
        let named = |e: Error| match &self.path {
            Some(path) => Error::Config(format!("{}: {e}", path.display())),
            None => e,
        };
        self.validate_inner(overrides).map_err(named)
    }

    fn validate_inner(&self, overrides: &Overrides) -> Result<Settings> {
        let listen = self.listen(overrides)?;
        let admin_listen = self.admin_listen(overrides)?;
        let issuer_text = overrides
            .issuer
            .clone()
            .or(self.file.issuer.clone())
            .unwrap_or_else(|| {
                let scheme = if self.file.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{listen}")
            });
        let issuer = IssuerUrl::parse(&issuer_text).map_err(|e| Error::Config(e.to_string()))?;
        check_issuer_path(&issuer)?;
        let audiences = audiences(&self.file)?;
        let clients = ClientRegistry::new(
            self.file
                .clients
                .iter()
                .map(|c| client::client(c, &audiences, &self.base))
                .collect::<Result<Vec<_>>>()?,
        )?;
        for t in &self.file.trusted_issuers {
            IssuerUrl::parse(&t.issuer)
                .and_then(|_| IssuerUrl::parse(&t.jwks_uri))
                .map_err(|e| Error::Config(format!("[[trusted_issuers]] {:?}: {e}", t.issuer)))?;
        }
        let trusted_proxies = TrustedProxies::parse(&self.file.trusted_proxies)?;
        let rate_limit = self.file.rate_limit;
        if rate_limit.is_some_and(|r| r.burst == 0 || r.per_minute == 0) {
            return Err(Error::Config(
                "[rate_limit] burst and per_minute must be at least 1".into(),
            ));
        }
        let longest = clients.iter().map(|c| c.max_ttl).max().unwrap_or_default();
        let replication = self.replication(overrides)?;
        let keys = &self.file.keys;
        let schedule = Schedule {
            algorithm: keys.algorithm.unwrap_or(Algorithm::ES256),
            rsa_bits: keys.rsa_bits.unwrap_or(2048),
            rotation_period: keys
                .rotation_period
                .unwrap_or(Duration::from_secs(24 * 3600)),
            jwks_max_age: keys.jwks_max_age.unwrap_or(Duration::from_secs(300)),
            max_token_lifetime: longest.max(DEFAULT_TTL),
            // A key must be in every replica's JWKS for a full max-age before it signs.
            propagation: if replication.is_some() {
                crate::postgres::PROPAGATION
            } else {
                Duration::ZERO
            },
        };
        schedule.validate()?;
        let key_backend = KeyBackend::from_config(keys, &self.base)?;
        for a in &audiences {
            a.check_algorithm(schedule.algorithm)?;
        }
        let data_dir = self.data_dir(overrides);
        let audit_file = match &self.file.audit.file {
            // Replicas audit to the database; a file only when one is named.
            None if replication.is_some() => None,
            None => Some(data_dir.join("audit.log")),
            Some(path) if path.as_os_str().is_empty() => None,
            Some(path) => Some(self.base.join(path)),
        };
        Ok(Settings {
            issuer,
            listen,
            admin_listen,
            data_dir,
            schedule,
            key_backend,
            audiences,
            clients,
            trusted_issuers: self.file.trusted_issuers.clone(),
            trusted_proxies,
            rate_limit,
            replication,
            audit: AuditConfig {
                file: audit_file,
                ..self.file.audit.clone()
            },
            tls: self.file.tls.as_ref().map(|tls| TlsConfig {
                cert: self.base.join(&tls.cert),
                key: self.base.join(&tls.key),
            }),
            embedded_default: self.is_embedded_default(),
        })
    }
}

impl Config {
    fn replication(&self, overrides: &Overrides) -> Result<Option<Replication>> {
        let url = overrides
            .database_url
            .clone()
            .or_else(|| self.file.database_url.clone())
            .filter(|url| !url.is_empty());
        let lease = self.file.replica_lease.unwrap_or(DEFAULT_REPLICA_LEASE);
        let Some(url) = url else {
            if self.file.replica_id.is_some() || self.file.replica_lease.is_some() {
                return Err(Error::Config(
                    "replica_id and replica_lease need database_url (the database replicas \
                     share)"
                        .into(),
                ));
            }
            return Ok(None);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::Config(
                "database_url must be a PostgreSQL URL: postgres://user:password@host:5432/dbname"
                    .into(),
            ));
        }
        if !(SHORTEST_REPLICA_LEASE..=crate::rotation::LONGEST_PERIOD).contains(&lease) {
            return Err(Error::Config(format!(
                "replica_lease ({}) must be between 1m and 100 years",
                humantime::format_duration(lease)
            )));
        }
        Ok(Some(Replication {
            url: zeroize::Zeroizing::new(url),
            replica_id: self.file.replica_id.clone(),
            lease,
        }))
    }
}

/// The admin listener when none is set: loopback, port 8081 (0 when `listen`'s port is 0).
fn default_admin_listen(listen: SocketAddr) -> SocketAddr {
    let mut addr: SocketAddr = DEFAULT_ADMIN_LISTEN
        .parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081)));
    if listen.port() == 0 {
        addr.set_port(0);
    }
    addr
}

fn audiences(file: &ConfigFile) -> Result<Vec<Audience>> {
    let audiences: Vec<Audience> = match &file.audiences {
        None => vec![Audience {
            name: "convex".into(),
            profile: Profile::ConvexCustomJwt,
        }],
        Some(list) => list
            .iter()
            .map(|a| Audience {
                name: a.name.clone(),
                profile: a.profile.unwrap_or(Profile::ConvexCustomJwt),
            })
            .collect(),
    };
    if audiences.is_empty() {
        return Err(Error::Config("at least one [[audiences]] is needed".into()));
    }
    for (i, a) in audiences.iter().enumerate() {
        if a.name.trim().is_empty() || a.name.trim() != a.name {
            return Err(Error::Config(format!(
                "audience name {:?} is empty or padded",
                a.name
            )));
        }
        if audiences[..i].iter().any(|b| b.name == a.name) {
            return Err(Error::Config(format!(
                "audience {:?} is listed twice",
                a.name
            )));
        }
    }
    Ok(audiences)
}

/// Validated settings: everything the issuer needs, checked once.
#[derive(Clone, Debug)]
pub struct Settings {
    issuer: IssuerUrl,
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    data_dir: PathBuf,
    schedule: Schedule,
    key_backend: KeyBackend,
    audiences: Vec<Audience>,
    clients: ClientRegistry,
    trusted_issuers: Vec<TrustedIssuerConfig>,
    trusted_proxies: TrustedProxies,
    rate_limit: Option<RateLimitConfig>,
    replication: Option<Replication>,
    audit: AuditConfig,
    tls: Option<TlsConfig>,
    embedded_default: bool,
}

impl Settings {
    /// Loads `path` (or the embedded default when `None`) and applies `overrides`.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Settings> {
        Config::load(path)?.validate(overrides)
    }

    /// Parses and validates TOML text (relative paths are relative to the working directory).
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Settings> {
        Config::from_toml(text)?.validate(overrides)
    }

    /// The issuer URL (`iss`). Default `http://<listen>`.
    pub fn issuer(&self) -> &IssuerUrl {
        &self.issuer
    }

    /// The address to listen on. Default `127.0.0.1:8080`.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The admin listener's address (`/metrics`, `/healthz`, `/readyz`), `None` when off.
    /// Default `127.0.0.1:8081` (port 0 when `listen`'s port is 0).
    pub fn admin_listen(&self) -> Option<SocketAddr> {
        self.admin_listen
    }

    /// Refuses `next` as a reload of these settings when it changes what only a restart can:
    /// the error names each such key.
    pub fn check_reloadable(&self, next: &Settings) -> Result<()> {
        let replication = |s: &Settings| {
            s.replication
                .as_ref()
                .map(|r| (r.url.to_string(), r.replica_id.clone(), r.lease))
        };
        let fixed = [
            ("issuer", self.issuer != next.issuer),
            ("listen", self.listen != next.listen),
            ("admin_listen", self.admin_listen != next.admin_listen),
            ("data_dir", self.data_dir != next.data_dir),
            (
                "[keys]",
                self.schedule != next.schedule || self.key_backend != next.key_backend,
            ),
            (
                "database_url, replica_id or replica_lease",
                replication(self) != replication(next),
            ),
            ("[audit]", self.audit != next.audit),
            ("[tls]", self.tls != next.tls),
        ];
        let changed: Vec<&str> = fixed
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| *key)
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::Config(format!(
            "a reload can't change {}: restart svctoken serve for that (the configuration in \
             use is kept)",
            changed.join(", ")
        )))
    }

    /// What a reload to `next` changes, in words for the log and the audit trail: client,
    /// audience and trusted issuer names added or removed, rate limits (never a secret).
    pub fn changes_to(&self, next: &Settings) -> String {
        fn diff(what: &str, was: Vec<String>, now: Vec<String>) -> Option<String> {
            let added: Vec<&str> = now
                .iter()
                .filter(|n| !was.contains(n))
                .map(String::as_str)
                .collect();
            let removed: Vec<&str> = was
                .iter()
                .filter(|w| !now.contains(w))
                .map(String::as_str)
                .collect();
            (!added.is_empty() || !removed.is_empty())
                .then(|| format!("{what}: +[{}] -[{}]", added.join(" "), removed.join(" ")))
        }
        let clients = |s: &Settings| s.clients.iter().map(|c| c.id.clone()).collect();
        let audiences = |s: &Settings| s.audiences.iter().map(|a| a.name.clone()).collect();
        let trusted = |s: &Settings| s.trusted_issuers.iter().map(|t| t.issuer.clone()).collect();
        let mut parts: Vec<String> = [
            diff("clients", clients(self), clients(next)),
            diff("audiences", audiences(self), audiences(next)),
            diff("trusted issuers", trusted(self), trusted(next)),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.rate_limit != next.rate_limit {
            parts.push(match next.rate_limit {
                Some(r) => format!("rate limit: {r:?}"),
                None => "rate limit: off".into(),
            });
        }
        if parts.is_empty() {
            "no change to clients, audiences, trusted issuers or rate limits (client settings may \
             have changed)"
                .into()
        } else {
            parts.join("; ")
        }
    }

    /// The public listener's certificate and key files (`[tls]`), when it serves HTTPS.
    pub fn tls(&self) -> Option<&TlsConfig> {
        self.tls.as_ref()
    }

    /// The files store directory. Default `./svctoken-data`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The key schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Where private keys live. Default: files in `<data_dir>/private`.
    pub fn key_backend(&self) -> &KeyBackend {
        &self.key_backend
    }

    /// The audiences. Default: one, `convex`, profile `convex-custom-jwt`.
    pub fn audiences(&self) -> &[Audience] {
        &self.audiences
    }

    /// The audience with this name.
    pub fn audience(&self, name: &str) -> Option<&Audience> {
        self.audiences.iter().find(|a| a.name == name)
    }

    /// The registered clients. Default none.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// Upstream issuers whose tokens may be exchanged. Default none.
    pub fn trusted_issuers(&self) -> &[TrustedIssuerConfig] {
        &self.trusted_issuers
    }

    /// The proxies whose forwarding headers name the client (the audit trail's and the logs'
    /// `peer`). Default none: the TCP peer is the client.
    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// The per-client rate limit, if `[rate_limit]` is configured (then 100 at once and 600
    /// a minute unless it says otherwise). Default none.
    pub fn rate_limit(&self) -> Option<RateLimitConfig> {
        self.rate_limit
    }

    /// The database several replicas share, if `database_url` is set. Default none.
    pub fn replication(&self) -> Option<&Replication> {
        self.replication.as_ref()
    }

    /// The audit trail, with `file` resolved (`None`: no file).
    pub fn audit(&self) -> &AuditConfig {
        &self.audit
    }

    /// True when no configuration file was given (the embedded default).
    pub fn is_embedded_default(&self) -> bool {
        self.embedded_default
    }

    /// `<issuer>/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> String {
        self.issuer.join("/.well-known/jwks.json")
    }

    /// The JWKS URL for one audience: only keys its profile can parse.
    pub fn audience_jwks_uri(&self, audience: &str) -> String {
        self.issuer
            .join(&format!("/audiences/{audience}/jwks.json"))
    }

    /// `<issuer>/oauth/token`.
    pub fn token_endpoint(&self) -> String {
        self.issuer.join("/oauth/token")
    }
}
/// An issuer with a path serves every route under it, so the path must be one the router
/// matches literally: segments of unreserved URL characters (RFC 3986: letters, digits,
/// `-._~`), none empty, none `.` or `..`.
fn check_issuer_path(issuer: &IssuerUrl) -> Result<()> {
    let path = issuer.path();
    let plain = |segment: &str| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if path.is_empty() || path[1..].split('/').all(plain) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "issuer {:?}: its path {path:?} must be segments of letters, digits and -._~ (the \
         issuer serves every route under it)",
        issuer.as_str()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::ClientAuth;

    const HASH: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

    fn load(text: &str) -> Result<Settings> {
        Settings::from_toml(text, &Overrides::default())
    }

    #[test]
    fn the_documented_example_loads() {
        let text = format!(
            r#"
            issuer = "https://auth.example.com"
            listen = "127.0.0.1:8080"
            data_dir = "./svctoken-data"
            [keys]
            algorithm = "ES256"
            rotation_period = "24h"
            jwks_max_age = "5m"
            [[audiences]]
            name = "convex"
            profile = "convex-custom-jwt"
            [[clients]]
            id = "billing-worker"
            secret_sha256 = "{HASH}"
            subject = "svc:billing-worker"
            audiences = ["convex"]
            scopes = ["billing:write"]
            max_ttl = "10m"
            claims = {{ team = "payments" }}
            "#
        );
        let s = load(&text).expect("valid");
        assert_eq!(s.issuer().as_str(), "https://auth.example.com");
        assert_eq!(s.schedule().max_token_lifetime, Duration::from_secs(600));
        let client = s.clients().get("billing-worker").expect("client");
        assert_eq!(client.claims["team"], "payments");
        assert_eq!(client.max_ttl, Duration::from_secs(600));
    }

    #[test]
    fn key_clients_from_a_file_beside_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = svctoken_jwks::SigningKey::generate(Algorithm::EdDSA).expect("key");
        let jwks = serde_json::json!({"keys": [key.public_jwk()]});
        std::fs::write(dir.path().join("worker.jwks.json"), jwks.to_string()).expect("write");
        let config = dir.path().join("svctoken.toml");
        std::fs::write(
            &config,
            "[audit]\nfile = \"\"\n[[clients]]\nid = \"w\"\njwks_file = \"worker.jwks.json\"\nact_as = [\"user:*\"]\n",
        )
        .expect("write");
        let s = Settings::load(Some(&config), &Overrides::default()).expect("valid");
        let client = s.clients().get("w").expect("client");
        match &client.auth {
            ClientAuth::Keys(set) => assert_eq!(set.keys[0].kid.as_deref(), Some(key.kid())),
            other => panic!("{other:?}"),
        }
        assert!(client.may_act_as("user:7"));
        assert!(
            s.audit().file.is_none(),
            "an empty file name turns the file off"
        );
        let both = format!("[[clients]]\nid = \"w\"\nsecret_sha256 = \"{HASH}\"\njwks = []\n");
        assert!(
            load(&both)
                .expect_err("both")
                .to_string()
                .contains("not both")
        );
        let neither = "[[clients]]\nid = \"w\"\n";
        assert!(
            load(neither)
                .expect_err("neither")
                .to_string()
                .contains("needs secret_sha256")
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::load(None, &Overrides::default()).expect("embedded default");
        assert!(s.is_embedded_default());
        assert_eq!(s.issuer().as_str(), "http://127.0.0.1:8080");
        assert_eq!(s.audiences()[0].name, "convex");
        assert_eq!(s.audiences()[0].profile, Profile::ConvexCustomJwt);
        assert_eq!(s.schedule(), &Schedule::default());
        assert!(s.rate_limit().is_none(), "no rate limit unless configured");
        assert!(
            s.trusted_proxies().is_empty(),
            "no proxy trusted unless configured"
        );
        let proxied = load("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]").expect("CIDRs");
        assert!(
            proxied
                .trusted_proxies()
                .contains("10.1.2.3".parse().expect("ip"))
        );
        let limited = load("[rate_limit]").expect("an empty table");
        assert_eq!(
            limited.rate_limit().map(|r| (r.burst, r.per_minute)),
            Some((100, 600))
        );
        assert_eq!(s.data_dir(), Path::new(DEFAULT_DATA_DIR));
        assert_eq!(
            s.audit().file.as_deref(),
            Some(Path::new(DEFAULT_DATA_DIR).join("audit.log").as_path())
        );
        let over = Overrides {
            issuer: Some("https://id.example".into()),
            listen: Some("0.0.0.0:9000".into()),
            data_dir: Some("/tmp/x".into()),
            ..Overrides::default()
        };
        let s = Settings::from_toml("issuer = \"https://file.example\"", &over).expect("ok");
        assert_eq!(s.issuer().as_str(), "https://id.example");
        assert_eq!(s.listen().port(), 9000);
        assert_eq!(s.data_dir(), Path::new("/tmp/x"));
    }

    #[test]
    fn the_admin_listener_is_loopback_unless_set_and_may_be_off() {
        let default = Settings::load(None, &Overrides::default()).expect("embedded default");
        assert_eq!(
            default.admin_listen(),
            Some("127.0.0.1:8081".parse().expect("addr"))
        );
        let public = Overrides {
            listen: Some("0.0.0.0:9000".into()),
            ..Overrides::default()
        };
        let s = Settings::from_toml("", &public).expect("ok");
        assert_eq!(
            s.admin_listen(),
            Some("127.0.0.1:8081".parse().expect("addr")),
            "a public listen leaves the admin listener on loopback"
        );
        let any_port = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let s = Settings::from_toml("", &any_port).expect("ok");
        assert_eq!(s.admin_listen(), Some("127.0.0.1:0".parse().expect("addr")));
        let s = Settings::from_toml("admin_listen = \"0.0.0.0:9100\"", &any_port).expect("ok");
        assert_eq!(
            s.admin_listen(),
            Some("0.0.0.0:9100".parse().expect("addr"))
        );
        let off = Settings::from_toml("admin_listen = \"off\"", &Overrides::default());
        assert_eq!(off.expect("ok").admin_listen(), None);
        let flag = Overrides {
            admin_listen: Some("127.0.0.1:9999".into()),
            ..Overrides::default()
        };
        let s = Settings::from_toml("admin_listen = \"off\"", &flag).expect("ok");
        assert_eq!(
            s.admin_listen(),
            Some("127.0.0.1:9999".parse().expect("addr")),
            "the flag wins over the file"
        );
        for (text, expected) in [
            ("admin_listen = \"localhost\"", "not an address"),
            ("admin_listen = \"127.0.0.1:8080\"", "listen's address"),
        ] {
            let error = load(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("svctoken.toml");
        std::fs::write(
            &config,
            "data_dir = \"keys\"\n[audit]\nfile = \"logs/audit.log\"\n",
        )
        .expect("write");
        let s = Settings::load(Some(&config), &Overrides::default()).expect("valid");
        assert_eq!(s.data_dir(), dir.path().join("keys"));
        assert_eq!(
            s.audit().file.as_deref(),
            Some(dir.path().join("logs/audit.log").as_path())
        );
        std::fs::write(&config, "data_dir = \"keys\"\n").expect("write");
        let s = Settings::load(Some(&config), &Overrides::default()).expect("valid");
        assert_eq!(
            s.audit().file.as_deref(),
            Some(dir.path().join("keys/audit.log").as_path()),
            "the default audit file sits in the resolved data_dir"
        );
        let flag = Overrides {
            data_dir: Some("elsewhere".into()),
            ..Overrides::default()
        };
        let s = Settings::load(Some(&config), &flag).expect("valid");
        assert_eq!(
            s.data_dir(),
            Path::new("elsewhere"),
            "a flag is relative to the working directory"
        );
    }

    #[test]
    fn the_bound_address_and_an_added_client_are_validated() {
        let mut config = Config::load(None).expect("embedded");
        let bound = Overrides {
            listen: Some("127.0.0.1:41234".into()),
            ..Overrides::default()
        };
        config.add_client(ClientConfig {
            id: "dev".into(),
            secret_sha256: Some(HASH.into()),
            ..ClientConfig::default()
        });
        let s = config.validate(&bound).expect("valid");
        assert_eq!(s.issuer().as_str(), "http://127.0.0.1:41234");
        assert_eq!(
            s.clients().get("dev").map(|c| c.audiences.clone()),
            Some(vec!["convex".to_owned()])
        );
        let mut twice = Config::load(None).expect("embedded");
        for _ in 0..2 {
            twice.add_client(ClientConfig {
                id: "dev".into(),
                secret_sha256: Some(HASH.into()),
                ..ClientConfig::default()
            });
        }
        assert!(
            twice
                .validate(&bound)
                .expect_err("duplicate")
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn the_key_backend_is_files_by_default_or_a_named_token() {
        assert_eq!(load("").expect("default").key_backend(), &KeyBackend::Files);
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("svctoken.toml");
        std::fs::write(
            &config,
            "[keys]\nbackend = \"pkcs11\"\nmodule = \"lib/p11.so\"\ntoken_label = \"hsm\"\n\
             pin_file = \"pin\"\nsessions = 3\n",
        )
        .expect("write");
        let s = Settings::load(Some(&config), &Overrides::default()).expect("pkcs11");
        assert_eq!(
            s.key_backend(),
            &KeyBackend::Pkcs11(Pkcs11Config {
                module: dir.path().join("lib/p11.so"),
                token_label: "hsm".into(),
                pin: PinSource::File(dir.path().join("pin")),
                sessions: 3,
            })
        );
        assert_eq!(s.key_backend().name(), "pkcs11");
        let files = load("[keys]\nbackend = \"files\"").expect("files");
        let err = files
            .check_reloadable(&s)
            .expect_err("backend changed")
            .to_string();
        assert!(err.contains("[keys]"), "{err}");

        let token = "[keys]\nbackend = \"pkcs11\"\nmodule = \"m.so\"\ntoken_label = \"t\"\n";
        let mut refused = vec![
            (
                "[keys]\nmodule = \"m.so\"".to_owned(),
                "[keys] module is for backend = \"pkcs11\"",
            ),
            (
                "[keys]\npin_file = \"p\"".to_owned(),
                "[keys] pin_file is for backend",
            ),
            (
                "[keys]\nbackend = \"pkcs11\"\ntoken_label = \"t\"".to_owned(),
                "needs module (the PKCS#11 library's path) and token_label",
            ),
            (
                format!("{token}pin_file = \"p\"\nsessions = 0"),
                "sessions must be between 1 and 1024",
            ),
            ("[keys]\nbackend = \"hsm\"".to_owned(), "unknown variant"),
        ];
        if std::env::var_os(PIN_ENV).is_none() {
            refused.push((
                token.to_owned(),
                "set pin_file, or the environment variable SVCTOKEN_PKCS11_PIN",
            ));
        }
        for (text, expected) in refused {
            let err = load(&text).expect_err(expected).to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn standard_oidc_claims_must_have_their_standard_types() {
        let config = |profile: &str, claims: &str| {
            format!(
                "[keys]\nalgorithm = \"RS256\"\n[[audiences]]\nname = \"convex\"\n\
                 profile = \"{profile}\"\n[[clients]]\nid = \"a\"\nsecret_sha256 = \"{HASH}\"\n\
                 claims = {{ {claims} }}\n"
            )
        };
        let err = load(&config("convex-oidc", "email_verified = \"yes\""))
            .expect_err("a string email_verified")
            .to_string();
        assert!(err.contains("client \"a\""), "{err}");
        assert!(
            err.contains(
                "claim \"email_verified\" must be a boolean, not a string (an OpenID Connect \
                 standard claim: OIDC verifiers, a convex-oidc audience among them, refuse the \
                 whole token otherwise)"
            ),
            "{err}"
        );
        for (claims, expect) in [
            ("name = 5", "\"name\" must be a string, not a number"),
            ("address = \"1 Main St\"", "\"address\" must be an object"),
            (
                "updated_at = \"2024-01-01\"",
                "\"updated_at\" must be a number",
            ),
            ("amr = \"pwd\"", "\"amr\" must be an array of strings"),
            ("auth_time = \"soon\"", "\"auth_time\" must be a number"),
            ("\"email#en\" = \"a@b\"", "takes no language tag"),
        ] {
            // Refused whatever the audience's profile: the names mean the same everywhere.
            for profile in ["convex-oidc", "convex-custom-jwt", "generic"] {
                let err = load(&config(profile, claims))
                    .expect_err(claims)
                    .to_string();
                assert!(err.contains(expect), "{profile} {claims}: {err}");
            }
        }
        let typed = load(&config(
            "convex-oidc",
            "email = \"ada@example.com\", email_verified = true, \"name#fr\" = \"Ada\", \
             updated_at = 1700000000, address = { formatted = \"1 Main St\" }, amr = [\"pwd\"]",
        ))
        .expect("typed standard claims are accepted");
        let client = typed.clients().get("a").expect("client");
        assert_eq!(client.claims["email_verified"], true);
        assert_eq!(client.claims["updated_at"], 1_700_000_000);
        assert_eq!(client.claims["address"]["formatted"], "1 Main St");
    }

    #[test]
    fn refuses_what_would_break_consumers_with_a_fix() {
        let client =
            |extra: &str| format!("[[clients]]\nid = \"a\"\nsecret_sha256 = \"{HASH}\"\n{extra}");
        for (text, expect) in [
            ("issuer = \"https://a.example/\"".to_owned(), "remove it"),
            ("issuer = \"auth.example\"".to_owned(), "must start with https://"),
            ("issuer = \"https://a.example/{id}\"".to_owned(), "its path"),
            ("issuer = \"https://a.example/a//b\"".to_owned(), "its path"),
            ("issuer = \"https://a.example/a/../b\"".to_owned(), "its path"),
            ("issuer = \"https://a.example/%41\"".to_owned(), "its path"),
            ("[keys]\nalgorithm = \"EdDSA\"".to_owned(), "set [keys] algorithm"),
            (
                "[keys]\nalgorithm = \"ES256\"\n[[audiences]]\nname = \"c\"\nprofile = \"convex-oidc\""
                    .to_owned(),
                "convex-oidc",
            ),
            ("[keys]\nrotation_period = \"1m\"".to_owned(), "rotation_period"),
            ("[keys]\nrotation_period = \"soon\"".to_owned(), "is not a duration"),
            ("[keys]\nrotation_period = \"101y\"".to_owned(), "longer than 100years"),
            // Twice this overflows a Duration: refused with a message, not a panic.
            (
                "[keys]\njwks_max_age = \"18446744073709551615s\"".to_owned(),
                "jwks_max_age",
            ),
            ("[[trusted_issuers]]\nissuer = \"x\"\njwks_uri = \"https://x/j\"\naudience = \"a\"".to_owned(), "must start with https://"),
            ("colour = \"blue\"".to_owned(), "unknown field"),
            (client("claims = { sub = \"root\" }"), "reserved"),
            (client("claims = { tokenIdentifier = \"x\" }"), "reserved"),
            (client("audiences = [\"nope\"]"), "no [[audiences]] entry"),
            (client("max_ttl = \"48h\""), "max_ttl"),
            (client("scopes = [\"a b\"]"), "scope"),
            ("[[clients]]\nid = \"a\"\nsecret_sha256 = \"xyz\"".to_owned(), "64 hex digits"),
            (format!("{}\n{}", client(""), client("")), "twice"),
            ("listen = \"localhost\"".to_owned(), "not an address"),
            ("trusted_proxies = [\"10.0.0.0/40\"]".to_owned(), "trusted_proxies"),
        ] {
            let err = match load(&text) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("accepted: {text}"),
            };
            assert!(err.contains(expect), "{text}\n=> {err}");
        }
    }

    #[test]
    fn a_database_url_makes_replicas_audit_to_it_and_lengthens_the_lead() {
        let plain = Settings::from_toml("", &Overrides::default()).expect("ok");
        assert!(plain.replication().is_none());
        let over = Overrides {
            database_url: Some("postgres://svc:pw@db:5432/auth".into()),
            ..Overrides::default()
        };
        let s = Settings::from_toml("replica_id = \"web-1\"", &over).expect("ok");
        let r = s.replication().expect("replicas");
        assert_eq!(
            (r.url(), r.replica_id()),
            ("postgres://svc:pw@db:5432/auth", Some("web-1"))
        );
        assert_eq!(r.lease(), DEFAULT_REPLICA_LEASE);
        assert!(
            !format!("{s:?}").contains("pw@"),
            "the URL is never Debug-printed"
        );
        assert_eq!(s.audit().file, None, "the audit trail goes to the database");
        assert_eq!(
            s.schedule().prepare_lead(),
            plain.schedule().prepare_lead() + crate::postgres::PROPAGATION
        );
        let named = Settings::from_toml("[audit]\nfile = \"a.log\"", &over).expect("ok");
        assert_eq!(named.audit().file.as_deref(), Some(Path::new("./a.log")));
        for (toml, why) in [
            (
                "replica_id = \"a\"",
                "replica_id and replica_lease need database_url",
            ),
            ("database_url = \"mysql://x\"", "must be a PostgreSQL URL"),
        ] {
            let err = Settings::from_toml(toml, &Overrides::default()).expect_err(toml);
            assert!(err.to_string().contains(why), "{err}");
        }
        let err = Settings::from_toml("replica_lease = \"30s\"", &over).expect_err("short");
        assert!(err.to_string().contains("between 1m"), "{err}");
    }
}
