//! `svctoken-mint`: sign svctoken service JWTs in-process, and the OAuth wire types svctoken's
//! issuer and its clients share.
//!
//! A [`Minter`] signs for one [`IssuerUrl`] with whatever key it holds; a [`MintRequest`] says
//! for whom, for which audience and for how long; the [`Minted`] token is an [`AccessToken`]
//! that never prints itself.
//!
//! ```
//! use std::sync::Arc;
//! use svctoken_jwks::{Algorithm, SigningKey};
//! use svctoken_mint::{IssuerUrl, MintRequest, Minter, SystemClock};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let issuer = IssuerUrl::parse("https://auth.example.com")?;
//! let minter = Minter::with_key(issuer, key, Arc::new(SystemClock));
//! let minted = minter.mint(&MintRequest::new("svc:nightly-report", "convex"))?;
//! assert_eq!(minted.expires_in(), 300);
//! let bearer = format!("Bearer {}", minted.token.secret());
//! # assert!(bearer.starts_with("Bearer eyJ"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - `minter`: [`Minter`], [`MintRequest`], [`Minted`], the token format.
//! - `claims`: [`RESERVED_CLAIMS`] and the custom claim check.
//! - [`oidc`]: the JSON type each OpenID Connect standard claim must have.
//! - `actor`: [`Actor`], the `act` chain, and the subject rules.
//! - `issuer_url`: [`IssuerUrl`].
//! - `access_token`: [`AccessToken`].
//! - `clock`: [`Clock`], [`SystemClock`] (and `MockClock` with the `test-util` feature).
//! - [`oauth`]: error codes and bodies, the token response, grant and assertion URNs.

mod access_token;
mod actor;
mod claims;
mod clock;
mod error;
mod issuer_url;
mod minter;
pub mod oauth;
pub mod oidc;

pub use access_token::AccessToken;
pub use actor::{Actor, MAX_ACTOR_DEPTH, MAX_SUBJECT_LEN, check_subject};
pub use claims::{RESERVED_CLAIMS, check_custom_claims};
#[cfg(any(test, feature = "test-util"))]
pub use clock::MockClock;
pub use clock::{Clock, SystemClock, from_unix_secs, unix_secs};
pub use error::{Error, Result};
pub use issuer_url::IssuerUrl;
pub use minter::{DEFAULT_TTL, MintRequest, Minted, Minter};
