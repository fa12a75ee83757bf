//! `svctoken-issuer`: issues short-lived service JWTs that Convex (and any JWKS-verifying API)
//! trusts, and rotates its signing keys by itself.
//!
//! An [`Issuer`] ties together validated [`Settings`], a [`KeyRing`] over a [`KeyStore`], the
//! [`Minter`] and the [`ClientRegistry`]; [`router`] exposes it over HTTP and [`serve`] runs it.
//!
//! ```
//! use std::sync::Arc;
//! use svctoken_issuer::{FileStore, Issuer, MintRequest, Overrides, Settings, SystemClock};
//!
//! let dir = tempfile::tempdir()?;
//! let overrides = Overrides { data_dir: Some(dir.path().into()), ..Overrides::default() };
//! let settings = Settings::from_toml(r#"issuer = "https://auth.example.com""#, &overrides)?;
//! let store = Arc::new(FileStore::open(&settings.data_dir)?);
//! let issuer = Issuer::open(settings, store, Arc::new(SystemClock))?;
//! let minted = issuer.minter().mint(&MintRequest {
//!     subject: "svc:nightly-report",
//!     audience: "convex",
//!     ttl: std::time::Duration::from_secs(300),
//!     client_id: None,
//!     scope: None,
//!     actor: None,
//!     prior_actor: None,
//!     claims: None,
//! })?;
//! assert_eq!(minted.expires_in(), 300);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `config`: the TOML file, overrides, [`Settings`].
//! - `audience`: [`Audience`] and its verification [`Profile`].
//! - `clients`: [`ClientRegistry`], secret generation and hashing.
//! - `minter`: [`Minter`], the token format, reserved claims.
//! - [`store`]: the [`KeyStore`] trait, [`FileStore`], [`MemoryStore`], and the contract suite
//!   every store passes (`store::contract`, with the `test-util` feature).
//! - [`rotation`]: the key lifecycle, [`rotation::rotate`] and its threshold predicates.
//! - `lifecycle`: the loop a running issuer runs the lifecycle in.
//! - `keyring`: [`KeyRing`], the running view of the keys and the rendered JWKS.
//! - [`oauth`]: the token endpoint logic and RFC 6749 errors.
//! - `server`: [`router`] and [`serve`].
//! - `metrics`, `clock`, `error`.

mod assertion;
mod audience;
pub mod audit;
mod clients;
mod clock;
mod config;
mod error;
mod keyring;
mod lifecycle;
mod metrics;
mod minter;
pub mod oauth;
mod ratelimit;
pub mod rotation;
mod server;
pub mod store;
mod trusted;

use std::sync::Arc;

pub use assertion::{CLIENT_ASSERTION_TYPE, MAX_ASSERTION_LIFETIME, ReplayCache};
pub use audience::{Audience, Profile};
pub use audit::Auditor;
pub use clients::{
    Client, ClientAuth, ClientRegistry, SECRET_PREFIX, SecretHash, generate_secret, glob_match,
};
pub use clock::{Clock, MockClock, SystemClock, from_unix_secs, unix_secs};
pub use config::{
    AuditConfig, RateLimitConfig, TrustedIssuerConfig, jwks_toml_line, read_jwks_file,
    validate_client_id,
};
pub use config::{
    DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_TTL, MAX_TTL_LIMIT, Overrides, Settings,
    parse_duration, validate_issuer,
};
pub use error::{Error, Result};
pub use keyring::{KeyRing, Published, RenderedJwks, copy_valid_until};
pub use lifecycle::LIFECYCLE_INTERVAL;
pub use metrics::Metrics;
pub use minter::{MintRequest, Minted, Minter, RESERVED_CLAIMS, check_custom_claims};
pub use oauth::{OAuthError, TokenEndpoint};
pub use ratelimit::RateLimiter;
pub use rotation::Schedule;
pub use server::{router, serve};
pub use store::{FileStore, KeyStore, MemoryStore};
pub use trusted::{RemoteJwks, TrustedIssuer};

/// A running issuer's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    keys: KeyRing,
    minter: Minter,
    endpoint: TokenEndpoint,
    auditor: Auditor,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

impl Issuer {
    /// Opens the issuer: runs the key lifecycle once (creating the first key on an empty store)
    /// and loads the active key.
    pub fn open(
        settings: Settings,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Issuer> {
        let auditor = audit_from(&settings.audit)?;
        Self::open_with_auditor(settings, store, clock, auditor)
    }

    /// Like [`Issuer::open`], recording the audit trail with `auditor` instead of the sinks the
    /// settings name.
    pub fn open_with_auditor(
        settings: Settings,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        auditor: Auditor,
    ) -> Result<Issuer> {
        let keys = KeyRing::open(
            store,
            settings.schedule.clone(),
            settings.audiences.clone(),
            clock.unix_secs(),
        )?;
        let minter = Minter::new(&settings.issuer, keys.signer(), clock.clone());
        let endpoint = TokenEndpoint::new(&settings, minter.clone(), clock.clone())?;
        Ok(Issuer {
            inner: Arc::new(Inner {
                settings,
                keys,
                minter,
                endpoint,
                auditor,
                metrics: Metrics::default(),
                clock,
            }),
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The minter (signs with the active key).
    pub fn minter(&self) -> &Minter {
        &self.inner.minter
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The registered clients.
    pub fn clients(&self) -> &ClientRegistry {
        self.inner.endpoint.clients()
    }

    /// The token endpoint.
    pub fn endpoint(&self) -> &TokenEndpoint {
        &self.inner.endpoint
    }

    /// The audit trail.
    pub fn auditor(&self) -> &Auditor {
        &self.inner.auditor
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Runs the key lifecycle now and picks up changes, logging and counting what changed: the
    /// run [`serve`] makes every [`LIFECYCLE_INTERVAL`]. Blocking: call it off the executor.
    pub fn refresh(&self) -> Result<()> {
        lifecycle::refresh(self).map(drop)
    }
}

/// The auditor the settings describe: the chained file (created 0600 beside the keys by
/// default) and, if asked, stdout.
fn audit_from(config: &AuditConfig) -> Result<Auditor> {
    let mut sinks: Vec<Box<dyn audit::AuditSink>> = Vec::new();
    if let Some(path) = &config.file {
        let file = audit::ChainedFile::open(path)
            .map_err(|e| Error::Config(format!("audit file: {e}")))?;
        sinks.push(Box::new(file));
    }
    if config.stdout {
        sinks.push(Box::new(audit::StdoutSink));
    }
    Ok(Auditor::new(sinks, config.fail_closed))
}
