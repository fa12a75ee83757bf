//! Minting a token against ring signing the same bytes alone: the cost svctoken adds on top of
//! the signature (claims serialisation, base64, jti, the key swap read); and the custom claim
//! check alone.
//!
//! Run with: `cargo bench -p svctoken-mint --bench mint` (or `scripts/bench` for the ratios).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use serde_json::json;
use svctoken_jwks::{Algorithm, SigningKey, dangerous};
use svctoken_mint::{IssuerUrl, MintRequest, Minter, SystemClock, check_custom_claims};

fn der(key: &SigningKey) -> Vec<u8> {
    pem::parse(
        dangerous::export_pkcs8_pem(key)
            .expect("a key held in memory exports")
            .as_bytes(),
    )
    .expect("our own PEM parses")
    .into_contents()
}

fn bench(c: &mut Criterion) {
    let claims = json!({"team": "payments"});
    let claims = claims.as_object().expect("object");
    let request = MintRequest::new("svc:billing-worker", "convex")
        .ttl(Duration::from_secs(300))
        .client_id("billing-worker")
        .scope(Some("billing:write"))
        .claims(claims);
    let issuer = IssuerUrl::parse("https://auth.example.com").expect("valid issuer");
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let key = SigningKey::generate(alg).expect("key");
        let pkcs8 = der(&key);
        let minter = Minter::with_key(issuer.clone(), key, Arc::new(SystemClock));
        let token = minter.mint(&request).expect("mint").token;
        let (signing_input, _) = token.secret().rsplit_once('.').expect("jws");
        let input = signing_input.as_bytes().to_vec();
        let rng = SystemRandom::new();

        let mut group = c.benchmark_group(alg.as_str());
        match alg {
            Algorithm::ES256 => {
                let raw = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &rng,
                )
                .expect("ring key");
                group.bench_function("raw_sign", |b| {
                    b.iter(|| raw.sign(&rng, black_box(&input)).expect("sign"))
                });
            }
            Algorithm::EdDSA => {
                let raw = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).expect("ring key");
                group.bench_function("raw_sign", |b| b.iter(|| raw.sign(black_box(&input))));
            }
            Algorithm::RS256 => {
                let raw = RsaKeyPair::from_pkcs8(&pkcs8).expect("ring key");
                let mut sig = vec![0; raw.public().modulus_len()];
                group.bench_function("raw_sign", |b| {
                    b.iter(|| {
                        raw.sign(
                            &signature::RSA_PKCS1_SHA256,
                            &rng,
                            black_box(&input),
                            &mut sig,
                        )
                        .expect("sign")
                    })
                });
            }
        }
        group.bench_function("mint", |b| {
            b.iter(|| minter.mint(black_box(&request)).expect("mint"))
        });
        group.finish();
    }

    // The custom claim check every mint runs (reserved names, standard OIDC claim types), on a
    // client's claims with a few standard ones.
    let claims = json!({
        "team": "payments", "svc": {"tier": 2}, "email": "billing@example.com",
        "email_verified": true, "name": "Billing", "updated_at": 1_700_000_000,
    });
    let claims = claims.as_object().expect("object");
    c.bench_function("check_custom_claims", |b| {
        b.iter(|| check_custom_claims(black_box(claims)).expect("valid"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
