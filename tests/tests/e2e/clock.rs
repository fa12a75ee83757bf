//! The issuer's clock jumping backwards and forwards by hours (a VM resumed, NTP stepping a
//! clock that was off), driven through `MockClock`, with the key lifecycle run every simulated
//! minute, and a token fetched over HTTP right after each run and the second before the next.
//! Measured in the issuer's own clock:
//!
//! - no key signs before it has been published for the full lead (`jwks_max_age` + 5 s), the
//!   first key of an empty store excepted;
//! - no key leaves the JWKS while a token it signed is unexpired;
//! - every token verifies against the JWKS served when it was issued;
//! - a backwards jump never makes the issuer sign with an older key, nor stop signing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::store::FileStore;
use svctoken_jwks::{Validation, Verifier};
use svctoken_mint::{Clock as _, MockClock, from_unix_secs};
use svctoken_tests::harness::{TestIssuer, spawn_issuer_with, worker_client};

const START: u64 = 1_800_000_000;
const HOUR: i64 = 3600;
/// `jwks_max_age` 1 m + 5 s.
const LEAD: u64 = 65;

/// What the test has seen of each key.
#[derive(Default)]
struct Key {
    /// The clock when it first appeared in the JWKS.
    published_at: u64,
    /// The latest `exp` of the tokens it signed.
    last_exp: Option<u64>,
    /// The order in which it first signed (0 for the first key).
    signing_rank: Option<usize>,
}

struct Observer {
    keys: HashMap<String, Key>,
    published: Vec<String>,
    signing_order: Vec<String>,
    failures: Vec<String>,
}

impl Observer {
    /// Runs the lifecycle at the clock's time, then checks what left and what joined the JWKS.
    async fn lifecycle(&mut self, t: &TestIssuer, now: u64) {
        let issuer = t.issuer.clone();
        tokio::task::spawn_blocking(move || issuer.refresh())
            .await
            .expect("join")
            .expect("the lifecycle runs");
        let published: Vec<String> = t
            .issuer
            .keys()
            .published()
            .set
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect();
        for kid in &self.published {
            if !published.contains(kid)
                && let Some(exp) = self.keys.get(kid).and_then(|k| k.last_exp)
                && exp > now
            {
                self.failures.push(format!(
                    "at {now}: {kid} left the JWKS, a token it signed is valid until {exp}"
                ));
            }
        }
        for kid in &published {
            self.keys.entry(kid.clone()).or_insert_with(|| Key {
                published_at: now,
                ..Key::default()
            });
        }
        self.published = published;
    }

    /// Fetches a token over HTTP and checks who signed it and that the served JWKS verifies it.
    async fn token(&mut self, t: &TestIssuer, clock: &MockClock) {
        let now = clock.unix_secs();
        let token = t.token(&[]).await;
        let (header, claims) = svctoken_jwks::dangerous::decode_unverified(&token).expect("jwt");
        let kid = header["kid"].as_str().expect("kid").to_owned();
        let exp = claims["exp"].as_u64().expect("exp");
        let jwks = t.jwks(&format!("{}/.well-known/jwks.json", t.url)).await;
        if let Err(e) =
            Verifier::new(&jwks, Validation::new(&t.url, "convex")).verify(&token, clock.now())
        {
            self.failures
                .push(format!("at {now}: token of {kid} does not verify: {e}"));
        }
        let first_key = self.signing_order.is_empty();
        let rank = self.signing_order.len();
        let key = self.keys.entry(kid.clone()).or_default();
        key.last_exp = key.last_exp.max(Some(exp));
        match key.signing_rank {
            None => {
                if !first_key && now < key.published_at + LEAD {
                    self.failures.push(format!(
                        "at {now}: {kid} signs {}s after it was published",
                        now.saturating_sub(key.published_at)
                    ));
                }
                key.signing_rank = Some(rank);
                self.signing_order.push(kid);
            }
            Some(rank) if rank + 1 != self.signing_order.len() => self.failures.push(format!(
                "at {now}: {kid} signs again after {} took over",
                self.signing_order[rank + 1]
            )),
            Some(_) => {}
        }
        assert_eq!(
            claims["iat"].as_u64(),
            Some(now),
            "minted at the clock's time"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumps_of_hours_never_break_the_key_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(FileStore::open(dir.path()).expect("store"));
    let clock = Arc::new(MockClock::at_unix(START));
    let config = format!(
        "[keys]\nrotation_period = \"10m\"\njwks_max_age = \"1m\"\n{}",
        worker_client("")
    );
    let t = spawn_issuer_with(&config, store, clock.clone()).await;
    let mut seen = Observer {
        keys: HashMap::new(),
        published: Vec::new(),
        signing_order: Vec::new(),
        failures: Vec::new(),
    };

    // Minute by minute for 16 simulated hours; at some minutes the clock jumps first, some
    // jumps landing while a key waits to activate or a retired key waits to leave the JWKS.
    let jumps: HashMap<u64, i64> = [
        (50, 3 * HOUR),    // forward, while no key waits
        (58, -5 * HOUR),   // back, to before the first key existed
        (170, 2 * HOUR),   // forward
        (172, -2 * HOUR),  // and straight back
        (239, HOUR / 2),   // forward across a waiting key's activation
        (300, -90 * 60),   // back, while retired keys wait to leave
        (400, 6 * HOUR),   // forward past every removal
        (401, -6 * HOUR),  // back again
        (402, -3 * HOUR),  // and further back
        (700, 12 * HOUR),  // forward by half a day
        (701, -11 * HOUR), // most of the way back
        (900, 4 * HOUR),   // forward
    ]
    .into_iter()
    .collect();
    let mut jumps_seen = 0;
    for minute in 0..960 {
        if let Some(&by) = jumps.get(&minute) {
            let now = clock.unix_secs().saturating_add_signed(by);
            clock.set(from_unix_secs(now));
            jumps_seen += 1;
        }
        let now = clock.unix_secs();
        seen.lifecycle(&t, now).await;
        seen.token(&t, &clock).await;
        // And one the second before the next run, when the signing key may be handing over.
        clock.advance(Duration::from_secs(59));
        seen.token(&t, &clock).await;
        clock.advance(Duration::from_secs(1));
    }

    assert_eq!(jumps_seen, jumps.len());
    assert!(seen.failures.is_empty(), "{:#?}", seen.failures);
    assert!(
        seen.signing_order.len() >= 5,
        "keys rotated through the jumps: {}",
        seen.signing_order.len()
    );
    assert_eq!(t.issuer.metrics().rotation_failures(), 0);
}
