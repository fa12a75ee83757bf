//! `private_key_jwt` client authentication (RFC 7523 section 2.2, RFC 7521): the client signs
//! a short-lived JWT with a key registered in its `[[clients]]` block.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use svctoken_jwks::{Claims, Validation, Verifier};

use svctoken_mint::unix_secs;

use super::{AssertionFailure, JoseFailure, RefusalReason};
use crate::clients::{Client, ClientAuth};

/// An assertion may not be valid for longer than this.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// Tolerated clock difference with clients.
const LEEWAY: Duration = Duration::from_secs(5);

/// Remembers every assertion `jti` until the assertion expires, so none is accepted twice.
#[derive(Debug)]
pub struct ReplayCache {
    seen: Mutex<HashMap<(String, String), u64>>,
    capacity: usize,
}

impl ReplayCache {
    /// A cache holding at most `capacity` live `jti`s; when full of live entries it refuses
    /// new assertions rather than forget (fail closed).
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records `jti` for `client` until `exp`; false if it was already used (or the cache is
    /// full of live entries).
    pub fn first_use(&self, client: &str, jti: &str, exp: u64, now: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (client.to_owned(), jti.to_owned());
        if seen
            .get(&key)
            .is_some_and(|&until| until + LEEWAY.as_secs() >= now)
        {
            return false;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, &mut until| until + LEEWAY.as_secs() >= now);
            if seen.len() >= self.capacity {
                return false;
            }
        }
        seen.insert(key, exp);
        true
    }
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
pub(crate) fn verify(
    client: &Client,
    assertion: &str,
    issuer: &str,
    replay: &ReplayCache,
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
    if !replay.first_use(&client.id, jti, exp, now_secs) {
        return fail(AssertionFailure::Replay);
    }
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
            cache.first_use("c", "b", 200, 110),
            "expired entries were purged"
        );
        assert!(
            cache.first_use("c", "a", 300, 110),
            "an expired jti may come back"
        );
    }
}
