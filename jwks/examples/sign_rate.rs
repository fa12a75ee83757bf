//! Run with: cargo run --release -p svctoken-jwks --example sign_rate -- RS256 [threads] [seconds]
//!
//! How many JWS signatures ring alone makes per second on this machine: one freshly generated
//! key (`ES256`, `RS256` or `EdDSA`), shared by `threads` threads (default: the number of
//! cores), each signing a typical access-token signing input (`header.payload`, the bytes
//! `svctoken serve` signs for one token) in a loop for `seconds` (default 10).
//!
//! This is the ceiling of a token endpoint on the same cores: an issuer that does nothing
//! but sign reaches it. The last line is `<alg> <threads> threads <seconds> s: <rate>
//! signatures/s`.

use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use svctoken_jwks::{Algorithm, SigningKey};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let alg: Algorithm = args.next().as_deref().unwrap_or("RS256").parse()?;
    let threads = match args.next() {
        Some(text) => text.parse::<usize>()?,
        None => thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let seconds = match args.next() {
        Some(text) => text.parse::<f64>()?,
        None => 10.0,
    };
    if threads == 0 || !seconds.is_finite() || seconds <= 0.0 {
        return Err("threads and seconds must be positive".into());
    }

    let key = SigningKey::generate(alg)?;
    let input = signing_input(&key);
    // One signature up front, so a broken key fails here and not inside a thread.
    key.sign(input.as_bytes())?;

    let stop = AtomicBool::new(false);
    let total = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    thread::scope(|scope| -> Result<(), Box<dyn Error>> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), svctoken_jwks::Error> {
                    let mut count = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let signature = key.sign(input.as_bytes())?;
                        std::hint::black_box(signature);
                        count += 1;
                        if Instant::now() >= deadline {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    total.fetch_add(count, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| "a signing thread panicked")??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let signatures = total.load(Ordering::Relaxed);
    let rate = signatures as f64 / elapsed;
    println!(
        "{signatures} signatures in {elapsed:.2} s, {:.1} µs each per thread",
        elapsed * 1e6 * threads as f64 / signatures.max(1) as f64
    );
    println!("{alg} {threads} threads {seconds} s: {rate:.0} signatures/s");
    Ok(())
}

/// `base64url(header) . base64url(claims)` as `svctoken serve` builds it for a
/// client_credentials token: the key's header and the usual registered claims.
fn signing_input(key: &SigningKey) -> String {
    let header =
        serde_json::json!({"alg": key.algorithm().as_str(), "typ": "JWT", "kid": key.kid()});
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:8080",
        "sub": "svc:dev",
        "aud": "convex",
        "iat": 1_795_426_749u64,
        "nbf": 1_795_426_749u64,
        "exp": 1_795_427_049u64,
        "jti": "48_2GEvrdZohCJHP_nsRXw",
        "client_id": "dev",
    });
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
