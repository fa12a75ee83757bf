//! `private_key_jwt` client authentication (RFC 7523 section 2.2, RFC 7521): the client signs
//! a short-lived JWT with a key registered in its `[[clients]]` block.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use svctoken_jwks::{Claims, Validation, Verifier};

use svctoken_mint::unix_secs;

use super::{AssertionFailure, JoseFailure, RefusalReason};
use crate::clients::{Client, ClientAuth};
use crate::postgres::SharedReplay;

/// An assertion may not be valid for longer than this.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Tolerated clock difference with clients.
const LEEWAY: Duration = Duration::from_secs(5);

/// Remembers every assertion `jti` until the assertion expires, so none is accepted twice.
///
/// An entry is a 64-bit digest of (client, `jti`) in the set of the [`BUCKET_SECS`] its `exp`
/// falls in; a set is dropped whole once the last `exp` it may hold has passed, so forgetting
/// scans nothing, and a `jti` costs some 10 to 20 bytes (a million, 10 to 20 MB). A `jti`
/// is therefore remembered up to `BUCKET_SECS` longer than it must be. Two pairs sharing a
/// digest (about one chance in 10^8 with a million live entries) would only refuse the second
/// assertion, never accept a replay.
#[derive(Debug)]
pub struct ReplayCache {
    buckets: Mutex<Buckets>,
    capacity: usize,
}

/// Live entries by `exp / BUCKET_SECS`.
#[derive(Debug, Default)]
struct Buckets {
    by_expiry: BTreeMap<u64, HashSet<u64>>,
    len: usize,
}

/// The span of `exp` values one set holds.
const BUCKET_SECS: u64 = 10;

impl ReplayCache {
    /// A cache holding at most `capacity` live `jti`s; when full of live entries it refuses
    /// new assertions rather than forget (fail closed).
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            buckets: Mutex::new(Buckets::default()),
            capacity,
        }
    }

    /// Records `jti` for `client` until `exp`; false if it was already used (or the cache is
    /// full of live entries).
    pub fn first_use(&self, client: &str, jti: &str, exp: u64, now: u64) -> bool {
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest(client, jti)[..8]);
        let key = u64::from_le_bytes(first);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = &mut *buckets;
        // Sets whose every assertion has expired (with the leeway) go whole.
        while let Some(oldest) = b.by_expiry.first_entry() {
            let last_exp = oldest.key() * BUCKET_SECS + BUCKET_SECS - 1;
            if last_exp + LEEWAY.as_secs() >= now {
                break;
            }
            b.len -= oldest.remove().len();
        }
        if b.by_expiry.values().any(|set| set.contains(&key)) || b.len >= self.capacity {
            return false;
        }
        b.by_expiry
            .entry(exp / BUCKET_SECS)
            .or_default()
            .insert(key);
        b.len += 1;
        true
    }
}

/// Where used assertion `jti`s are remembered: in this process, or in the database several
/// replicas share (an assertion used at one replica is refused at all).
#[derive(Debug)]
pub(crate) enum Replay {
    /// This process's [`ReplayCache`].
    Local(ReplayCache),
    /// The replicas' table; when it can't be reached, assertions are refused.
    Shared(SharedReplay),
}

impl Replay {
    /// Records `jti` for `client` until `exp`; refuses a replay, and (shared) an assertion that
    /// can't be checked.
    async fn first_use(
        &self,
        client: &str,
        jti: &str,
        exp: u64,
        now: u64,
    ) -> Result<(), RefusalReason> {
        let first = match self {
            Replay::Local(cache) => cache.first_use(client, jti, exp, now),
            Replay::Shared(shared) => {
                let mut key = [0u8; 16];
                key.copy_from_slice(&digest(client, jti)[..16]);
                // A failure is logged (throttled) where it happens.
                match shared.first_use(key, exp + LEEWAY.as_secs()).await {
                    Ok(first) => first,
                    Err(_) => return Err(RefusalReason::ReplayCacheUnavailable),
                }
            }
        };
        if first {
            Ok(())
        } else {
            Err(RefusalReason::Assertion(AssertionFailure::Replay))
        }
    }
}

/// SHA-256 of (client, `jti`), the client's length first so no two pairs collide by
/// concatenation.
fn digest(client: &str, jti: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&(client.len() as u64).to_le_bytes());
    context.update(client.as_bytes());
    context.update(jti.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The client an assertion claims to come from (its unverified `sub`, else `iss`): only to
/// find the keys to verify it with.
pub(crate) fn claimed_client(assertion: &str) -> Option<String> {
    let (_, payload) = svctoken_jwks::dangerous::decode_unverified(assertion).ok()?;
    payload
        .get("sub")
        .or_else(|| payload.get("iss"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Verifies `assertion` for `client`: signed by one of its keys (algorithm pinned to the key),
/// `iss` = `sub` = the client id, `aud` exactly `issuer` (one JSON string: the audience of an
/// RFC 7523 client assertion is the authorization server's issuer identifier, and only that,
/// never the token endpoint URL), an integer `exp` at most five minutes ahead, a `jti` never
/// seen before.
pub(crate) async fn verify(
    client: &Client,
    assertion: &str,
    issuer: &str,
    replay: &Replay,
    now: SystemTime,
) -> Result<Claims, RefusalReason> {
    let fail = |why| Err(RefusalReason::Assertion(why));
    let ClientAuth::Keys(jwks) = &client.auth else {
        return Err(RefusalReason::NotAKeyClient);
    };
    let mut validation = Validation::new(&client.id, issuer);
    validation.single_audience = true;
    validation.leeway = LEEWAY;
    let claims = match Verifier::new(jwks, validation).verify(assertion, now) {
        Ok(claims) => claims,
        Err(e) => return fail(AssertionFailure::Jose(JoseFailure::from(&e))),
    };
    if claims.get("sub").and_then(Value::as_str) != Some(client.id.as_str()) {
        return fail(AssertionFailure::SubjectNotClient);
    }
    // The verifier has already required `exp` and held it to an integer NumericDate in range.
    let exp = match svctoken_jwks::numeric_date(&claims, "exp") {
        Ok(Some(exp)) => exp.as_secs(),
        _ => return fail(AssertionFailure::Jose(JoseFailure::MissingClaim)),
    };
    let now_secs = unix_secs(now);
    if exp > now_secs + MAX_ASSERTION_LIFETIME.as_secs() + LEEWAY.as_secs() {
        return fail(AssertionFailure::TooLong);
    }
    let Some(jti) = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
    else {
        return fail(AssertionFailure::NoJti);
    };
    replay.first_use(&client.id, jti, exp, now_secs).await?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_cache_forgets_only_expired_entries_and_fails_closed() {
        let cache = ReplayCache::new(2);
        assert!(cache.first_use("c", "a", 100, 50));
        assert!(!cache.first_use("c", "a", 100, 60), "replay");
        assert!(cache.first_use("d", "a", 100, 60), "jtis are per client");
        assert!(
            !cache.first_use("c", "b", 100, 60),
            "full of live entries: refuse"
        );
        assert!(
            !cache.first_use("c", "b", 200, 110),
            "still full: entries are kept to the end of their 10 s set"
        );
        assert!(
            cache.first_use("c", "b", 200, 115),
            "expired entries were purged"
        );
        assert!(
            cache.first_use("c", "a", 300, 115),
            "an expired jti may come back"
        );
    }

    #[test]
    fn replay_cache_keeps_every_live_jti_across_buckets_and_drops_expired_ones() {
        let cache = ReplayCache::new(1000);
        for i in 0..500u64 {
            assert!(cache.first_use("c", &i.to_string(), 1000 + i, 990));
        }
        for i in 0..500u64 {
            assert!(!cache.first_use("c", &i.to_string(), 2000, 1000 + i), "{i}");
        }
        // Past every exp (+ leeway): whole sets were dropped, the cache is empty again.
        assert!(cache.first_use("c", "0", 3000, 1505));
        let buckets = cache.buckets.lock().expect("lock");
        assert_eq!((buckets.len, buckets.by_expiry.len()), (1, 1));
    }
}
