//! `svctoken-tests`: what the end-to-end tests share.
//!
//! # Layout
//! - [`convex`]: a verifier that applies exactly the rules Convex applies, with its
//!   JWKS HTTP cache; written independently of the code under test.
//! - [`fake_convex`]: a fake deployment that authenticates like Convex and answers like its
//!   HTTP API, recording requests and the identity each function saw.
//! - [`interop`]: runs independent JOSE implementations (Node `jose`, Python `PyJWT`) against
//!   our tokens and JWKS.
//! - [`harness`]: [`harness::spawn_issuer`] and friends: a real issuer on 127.0.0.1:0.
//! - [`forge`]: compact tokens built piece by piece (any header, raw JSON payloads, wrong
//!   algorithms, HMACs keyed with public keys), for the attack suite.
//! - [`postgres`]: a schema of the test's own in the machine's PostgreSQL, or a cluster of its
//!   own that it can stop and start.
//! - [`simulation`]: days of rotation under Convex's cache model, against any key store.
//! - [`softhsm`]: SoftHSM2 tokens in a temporary directory, for the PKCS#11 key backend, and
//!   what those tokens hold.
//! - [`raw_http`]: HTTP/1.1 requests written byte for byte (repeated or malformed headers,
//!   any body), for requests an HTTP client library refuses to send.
//! - [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, which the corpus replay test runs
//!   too.
//! - [`soak`]: the load generator of `bench/soak` (the `soak-load` binary).

pub mod convex;
pub mod fake_convex;
pub mod forge;
pub mod fuzz;
pub mod harness;
pub mod interop;
pub mod postgres;
pub mod raw_http;
pub mod simulation;
pub mod soak;
pub mod softhsm;
