//! `svctoken-jwks`: the JOSE building blocks of svctoken, on ring.
//!
//! Public keys as JWKs and JWKS (RFC 7517), their RFC 7638 thumbprints (svctoken's `kid`),
//! signing keys for ES256, RS256 and EdDSA with PKCS#8 import and export, compact JWS signing
//! with keys parsed once, and a [`Verifier`] that pins each key to one algorithm.
//!
//! ```
//! use std::time::SystemTime;
//! use svctoken_jwks::{Algorithm, Jwks, SigningKey, Validation, Verifier};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
//! let token = key.sign_jwt(&serde_json::json!({
//!     "iss": "https://auth.example.com", "sub": "svc:billing", "aud": "convex",
//!     "iat": now, "exp": now + 300,
//! }))?;
//!
//! let jwks = Jwks { keys: vec![key.public_jwk().clone()] };
//! let verifier = Verifier::new(&jwks, Validation::new("https://auth.example.com", "convex"));
//! let claims = verifier.verify(&token, SystemTime::now())?;
//! assert_eq!(claims["sub"], "svc:billing");
//! # Ok::<(), svctoken_jwks::Error>(())
//! ```
//!
//! # Layout
//! - [`algorithm`](Algorithm): the supported algorithms; no `none`, no HMAC.
//! - `jwk`: [`Jwk`] and [`Jwks`].
//! - `thumbprint`: [`thumbprint()`], RFC 7638.
//! - `key`: [`SigningKey`], generation, PKCS#8 import, compact JWS signing.
//! - `pem_keys`: [`SigningKey::from_pem`] (PKCS#8, SEC1, PKCS#1) and [`public_jwk_from_pem`]
//!   (SPKI and PKCS#1 public keys too).
//! - `verify`: [`Verifier`] and [`Validation`].
//! - `data_uri`: [`data_uri()`] for verifiers that must not fetch.
//! - [`dangerous`]: private key export and unverified decoding.

mod algorithm;
mod cache_control;
pub mod dangerous;
mod data_uri;
mod error;
mod jwk;
mod key;
mod pem_keys;
mod strict_json;
mod thumbprint;
mod verify;

pub use algorithm::Algorithm;
pub use cache_control::Caching;
pub use data_uri::{DATA_URI_PREFIX, data_uri};
pub use error::{Error, Result};
pub use jwk::{Jwk, Jwks};
pub use key::{ExternalKey, RSA_BITS, SigningKey};
pub use pem_keys::{pkcs8_conversion_command, public_jwk_from_pem};
pub use thumbprint::thumbprint;
pub use verify::{Claims, MAX_NUMERIC_DATE, MAX_TOKEN_LEN, Validation, Verifier, numeric_date};
