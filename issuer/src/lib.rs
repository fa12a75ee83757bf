//! `svctoken-issuer`: issues short-lived service JWTs that Convex (and any JWKS-verifying API)
//! trusts, and rotates its signing keys by itself.
//!
//! An [`Issuer`] ties together validated [`Settings`], a [`KeyRing`] over a [`KeyStore`], the
//! [`Minter`] and the [`ClientRegistry`]; [`router`] exposes it over HTTP and [`serve`] runs it.
//!
//! ```
//! use std::sync::Arc;
//! use svctoken_issuer::{FileStore, Issuer, Overrides, Settings};
//! use svctoken_mint::{MintRequest, SystemClock};
//!
//! let dir = tempfile::tempdir()?;
//! let overrides = Overrides { data_dir: Some(dir.path().into()), ..Overrides::default() };
//! let settings = Settings::from_toml(r#"issuer = "https://auth.example.com""#, &overrides)?;
//! let store = Arc::new(FileStore::open(settings.data_dir())?);
//! let issuer = Issuer::open(settings, store, Arc::new(SystemClock))?;
//! let minted = issuer.minter().mint(&MintRequest::new("svc:nightly-report", "convex"))?;
//! assert_eq!(minted.expires_in(), 300);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `config`: the TOML file, overrides, [`Settings`].
//! - `audience`: [`Audience`] and its verification [`Profile`].
//! - `clients`: [`ClientRegistry`], secret generation and hashing.
//! - [`store`]: the [`KeyStore`] trait, [`FileStore`], [`MemoryStore`], and the contract suite
//!   every store passes (`store::contract`, with the `test-util` feature).
//! - [`rotation`]: the key lifecycle, [`rotation::rotate`] and its threshold predicates.
//! - `lifecycle`: the loop a running issuer runs the lifecycle in.
//! - `keyring`: [`KeyRing`], the running view of the keys and the rendered JWKS.
//! - [`oauth`]: the token endpoint logic and RFC 6749 errors.
//! - [`audit`]: the hash-chained audit trail and its group-commit writer, [`Auditor`].
//! - `server`: [`router`] and [`serve`].
//! - `metrics`, `error`.

mod audience;
pub mod audit;
mod clients;
mod error;
mod http;
mod issuer;
mod keyring;
mod lifecycle;
mod metrics;
pub mod oauth;
pub mod rotation;
mod settings;
pub mod store;

pub use audience::{Audience, Profile};
pub use audit::Auditor;
pub use clients::{
    Client, ClientAuth, ClientRegistry, SECRET_PREFIX, SecretHash, generate_secret, glob_match,
};
pub use error::{Error, Result};
pub use http::{router, serve};
pub use issuer::Issuer;
pub use keyring::{KeyRing, Published, RenderedJwks, copy_valid_until};
pub use lifecycle::LIFECYCLE_INTERVAL;
pub use metrics::Metrics;
pub use oauth::{OAuthError, TokenEndpoint};
pub use rotation::Schedule;
pub use settings::{
    AuditConfig, ClientConfig, Config, DEFAULT_DATA_DIR, DEFAULT_LISTEN, MAX_TTL_LIMIT, Overrides,
    RateLimitConfig, Settings, TrustedIssuerConfig, jwks_toml_line, parse_duration, read_jwks_file,
    validate_client_id,
};
pub use store::{FileStore, KeyStore, MemoryStore};
