//! `svctoken-issuer`: issues short-lived service JWTs that Convex (and any JWKS-verifying API)
//! trusts, and rotates its signing keys by itself.
//!
//! An [`Issuer`] ties together validated [`Settings`], a
//! [`KeyRing`] over a [`KeyStore`], the minter and the
//! token endpoint; [`Issuer::token`] is the one call that turns a token request into a token or
//! a refusal, audited and counted. [`router`] exposes it over HTTP and [`serve`] runs it.
//!
//! ```
//! use std::sync::Arc;
//! use svctoken_issuer::Issuer;
//! use svctoken_issuer::settings::{Overrides, Settings};
//! use svctoken_issuer::store::FileStore;
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
//! - [`settings`]: the TOML file as read ([`Config`](settings::Config)), overrides, and the
//!   validated [`Settings`]; audiences and their verification profiles.
//! - [`clients`]: the client registry, secret generation and hashing.
//! - `issuer`: [`Issuer`] and [`Issuer::token`].
//! - [`oauth`]: the token operation, one step per module (request, authn, ratelimit, exchange,
//!   policy) and the refusal reasons with their RFC 6749 answers.
//! - `http`: [`router`], [`admin_router`] and [`serve`]; the token endpoint's extractor and responses.
//! - `peer`: the request's [`Peer`], read from forwarding headers only behind
//!   [`TrustedProxies`].
//! - [`store`]: the key store trait, the files and memory stores, and the contract suite every
//!   store passes (`store::contract`, with the `test-util` feature).
//! - [`postgres`]: the state several replicas share on PostgreSQL: their key lineages,
//!   the replay cache, rate limits and the audit trail.
//! - [`rotation`]: the key lifecycle, its schedule and threshold predicates.
//! - `lifecycle`: the loop a running issuer runs the lifecycle in.
//! - [`keyring`]: the running view of the keys and the rendered JWKS.
//! - [`audit`]: the hash-chained audit trail and its group-commit writer.
//! - [`metrics`]: the metrics served at the admin listener's `/metrics`.
//! - `error`.

mod audience;
pub mod audit;
pub mod clients;
mod error;
mod http;
mod issuer;
pub mod keyring;
mod lifecycle;
pub mod metrics;
pub mod oauth;
mod peer;
pub mod postgres;
pub mod rotation;
pub mod settings;
pub mod store;

pub use error::{Error, Result};
pub use http::{TlsCertificate, TlsListener, admin_router, router, serve, tls};
pub use issuer::Issuer;
pub use lifecycle::LIFECYCLE_INTERVAL;
pub use metrics::Metrics;
pub use peer::{Peer, TrustedProxies};

// Short paths for the crate's own modules; the public path of each is its module's.
use audience::{Audience, Profile};
use keyring::KeyRing;
use settings::{AuditConfig, RateLimitConfig, Settings, TrustedIssuerConfig};
use store::KeyStore;
