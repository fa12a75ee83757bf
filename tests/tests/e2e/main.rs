//! End-to-end tests: a real issuer on 127.0.0.1:0, real HTTP, and verifiers that apply
//! Convex's rules and other JOSE implementations'. One binary, shared helpers in
//! `svctoken_tests::harness`.

mod audit;
mod bad_input;
mod bearer;
mod cache;
mod client;
mod clock;
mod convex;
mod convex_client;
mod delegation;
mod exchange;
mod external_key;
mod http;
mod interop;
mod issuer_path;
mod proxy;
mod reload;
mod rotation;
mod soak;
mod tls;
mod upstream;
mod verify_layer;
