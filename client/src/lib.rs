//! `svctoken-client`: service tokens that are always ready, and Convex calls made with them.
//!
//! A [`TokenSource`] obtains tokens ([`ClientCredentials`] from an issuer, [`MinterSource`]
//! in-process, [`StaticToken`]); a [`TokenCache`] keeps one ready, refreshing it in the
//! background before it expires; a [`ConvexClient`] calls Convex's HTTP API with it, and
//! [`BearerLayer`] / [`TokenCache::authorize`] do the same for any other API.
//!
//! ```
//! use svctoken_client::{StaticToken, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), svctoken_client::Error> {
//! let tokens = TokenCache::new(StaticToken::new("eyJ..."));
//! assert_eq!(tokens.token().await?.as_str(), "eyJ...");
//! // With an issuer instead:
//! // let source = ClientCredentials::new(Endpoint::Issuer("https://auth.example.com".into()),
//! //     "billing-worker", std::env::var("SVCTOKEN_CLIENT_SECRET")?).audience("convex");
//! // let convex = ConvexClient::new("https://happy-otter-123.convex.cloud", TokenCache::new(source))?;
//! // let id: String = convex.mutation("invoices:create", serde_json::json!({"amount": 12})).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `source`: [`TokenSource`], [`StaticToken`], [`MinterSource`].
//! - `client_credentials`: [`ClientCredentials`] (`client_secret_basic` / `_post`, discovery).
//! - `cache`: [`TokenCache`] and [`CacheConfig`].
//! - `token`: [`CachedToken`], [`FetchedToken`].
//! - `convex`: [`ConvexClient`].
//! - `values`: Convex's encoded JSON: [`Int64`], [`Bytes`], [`Float`], [`int64`], [`encode_args`].
//! - `bearer`: [`BearerLayer`] for tower stacks.
//! - [`convex_rs`] (feature `convex-rs`): the `set_auth_callback` adapter.

mod bearer;
mod cache;
mod client_credentials;
mod convex;
#[cfg(feature = "convex-rs")]
pub mod convex_rs;
mod error;
mod source;
mod token;
mod values;

pub use bearer::{Bearer, BearerLayer, BoxError};
pub use cache::{CacheConfig, TokenCache};
pub use client_credentials::{
    ASSERTION_LIFETIME, ASSUMED_LIFETIME, AuthMethod, ClientCredentials, Endpoint,
};
pub use convex::{CONVEX_CLIENT, ConvexClient, DEFAULT_TIMEOUT};
pub use error::{Error, Result};
pub use source::{FetchFuture, MinterSource, StaticToken, TokenSource};
pub use svctoken_mint::AccessToken;
pub use token::{CachedToken, FetchedToken};
pub use values::{Bytes, Float, Int64, MAX_SAFE_INTEGER, encode_args, int64};
