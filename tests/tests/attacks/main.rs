//! The attack suite: a catalogue of forged tokens and hostile token requests, each with the
//! answer it must get from a real issuer on 127.0.0.1, and differential checks of
//! `svctoken_jwks::Verifier` against the `jsonwebtoken` crate.
//!
//! Its own test binary, because it installs a process-wide log capture ([`logs`]): every
//! `tracing` event of the issuer, at TRACE, is kept as JSON lines and searched for every
//! credential the run used or was given.
//!
//! - [`world`]: keys, the issuer's configuration, the trusted upstream.
//! - [`jose`]: forgeries any verifier must refuse, generated from a trusted key and honest
//!   claims.
//! - [`catalogue`]: those, per client key and per upstream key, plus what only a client
//!   assertion or a subject token has.
//! - [`requests`]: attacks on the token request itself.
//! - [`suite`]: the run against the issuer and the checks after each group.
//! - [`differential`]: the verifier against `jsonwebtoken`.

mod catalogue;
mod differential;
mod jose;
mod logs;
mod requests;
mod suite;
mod world;
