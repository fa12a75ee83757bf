//! `svctoken-verify`: accept svctoken service tokens in a Rust API.
//!
//! [`SvctokenAuth`] says what the API accepts (issuer, audience, required scopes, allowed
//! clients, leeway); the [`Authenticator`] it builds verifies tokens against the issuer's keys,
//! fetched through OpenID discovery (or from a given JWKS URL) and cached by a [`RemoteJwks`]
//! that honours `Cache-Control` and refetches early, at most once a minute, for a `kid` it
//! lacks, so key rotations and revocations are picked up. [`SvctokenAuthLayer`] puts it in
//! front of any tower service: requests without a valid `Authorization: Bearer` token are
//! answered per RFC 6750, and the others reach the service with a [`ServiceIdentity`] in their
//! extensions, which axum handlers can take as an extractor (feature `axum`).
//!
//! Each key's algorithm is pinned by the key, never read from the token: `none`, HMAC and
//! key-type confusion are refused by construction.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use svctoken_verify::{ServiceIdentity, SvctokenAuth};
//! use tower::{Layer as _, ServiceExt as _};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = SvctokenAuth::new("https://auth.example.com", "reports-api")
//!     .require_scope("reports:read")
//!     .allow_clients(["nightly-report"])
//!     .layer()?;
//! let api = layer.layer(tower::service_fn(|request: Request<String>| async move {
//!     let caller = request.extensions().get::<ServiceIdentity>().expect("verified");
//!     Ok::<_, Infallible>(Response::new(format!("hello, {}", caller.sub)))
//! }));
//!
//! // No token: 401 and a bare `WWW-Authenticate: Bearer` challenge (no key fetched).
//! let response = api.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `auth`: [`SvctokenAuth`] (the configuration) and [`Authenticator`] (the checks).
//! - `remote`: [`RemoteJwks`], the bounded, cached key fetch.
//! - `identity`: [`ServiceIdentity`].
//! - `layer`: [`SvctokenAuthLayer`], [`SvctokenAuthService`], [`bearer_token`].
//! - `error`: [`Error`] and its RFC 6750 answers.
//! - `axum` (feature `axum`): [`ServiceIdentity`] as an extractor.

mod auth;
#[cfg(feature = "axum")]
mod axum;
mod error;
mod identity;
mod layer;
mod remote;

pub use auth::{Authenticator, SvctokenAuth};
pub use error::{Error, Result};
pub use identity::ServiceIdentity;
pub use layer::{SvctokenAuthLayer, SvctokenAuthService, bearer_token, identity};
pub use remote::{
    CachedKeys, DEFAULT_MAX_AGE, FETCH_RETRY_AFTER, FETCH_TIMEOUT, JwksSource, LONGEST_MAX_AGE,
    MAX_BODY, RemoteJwks, UNKNOWN_KID_REFETCH, discovery_url, parse_max_age,
};
