//! Upstream issuers whose user tokens may be exchanged (RFC 8693), with a JWKS cache that
//! honours `Cache-Control` and, unlike Convex, refetches once on an unknown `kid` (at most once
//! a minute), so an upstream rotation never locks users out for a whole `max-age`.
//!
//! An upstream that is down or slow costs a token request at most [`UPSTREAM_FETCH_TIMEOUT`]:
//! one fetch is under way at a time and the others wait for it, and after a failed fetch none
//! is tried for [`FETCH_RETRY_AFTER`], during which requests use the cached keys or are
//! refused at once. The refusal is `temporarily_unavailable` (HTTP 503, `Retry-After`): the
//! subject token may well be valid, so a client should retry, not drop the user's session.

use std::time::{Duration, SystemTime};

use svctoken_jwks::{Algorithm, Caching, Claims, Jwks, Validation, Verifier};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{JoseFailure, SubjectTokenFailure};
use crate::{Error, Result, TrustedIssuerConfig};

/// Freshness when the JWKS response has no `Cache-Control: max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60);
/// Longest freshness honoured.
const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// At most one refetch for an unknown `kid` per this interval.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);
/// The longest one upstream JWKS fetch may take (connecting, the answer and its body): well
/// under the 10 s a client such as `svctoken-client` gives the whole token request, so that an
/// upstream that is down or never answers gets the client a clear refusal, not a timeout.
pub const UPSTREAM_FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed fetch, none is tried for this long (the refusal's `Retry-After`): requests
/// meanwhile use the cached keys or are refused at once, instead of each waiting for a fetch
/// of its own.
pub const FETCH_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A remote JWKS, cached.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    jwks: Option<Jwks>,
    fresh_until: Option<Instant>,
    last_unknown_kid_fetch: Option<Instant>,
    /// When the last fetch failed, if no fetch has succeeded since.
    failed_at: Option<Instant>,
    fetches: u64,
}

/// The cached keys, and whether the upstream could be asked for them when they last needed
/// refreshing.
struct Current {
    jwks: Jwks,
    /// The last fetch failed: a `kid` missing from `jwks` may be one the upstream has since
    /// published.
    unconfirmed: bool,
}

impl RemoteJwks {
    /// A cache for the JWKS at `url`.
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        RemoteJwks {
            url: url.into(),
            http,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// How many times the JWKS was fetched.
    pub async fn fetch_count(&self) -> u64 {
        self.state.lock().await.fetches
    }

    /// The keys, fetched when the cached copy is stale, or once more (rate limited) when it
    /// holds no key with `kid`. Concurrent callers share one fetch; a failed fetch is not
    /// retried for [`FETCH_RETRY_AFTER`], and the cached copy, stale or not, is used meanwhile.
    pub async fn keys(&self, kid: Option<&str>) -> Result<Jwks> {
        self.current(kid).await.map(|current| current.jwks)
    }

    async fn current(&self, kid: Option<&str>) -> Result<Current> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let stale = state.fresh_until.is_none_or(|until| now >= until);
        let unknown = match (&state.jwks, kid) {
            (Some(jwks), Some(kid)) => jwks.find(kid).is_none(),
            _ => false,
        };
        let may_refetch = state
            .last_unknown_kid_fetch
            .is_none_or(|at| now.duration_since(at) >= UNKNOWN_KID_REFETCH);
        let backing_off = state
            .failed_at
            .is_some_and(|at| now.duration_since(at) < FETCH_RETRY_AFTER);
        if (state.jwks.is_none() || stale || (unknown && may_refetch)) && !backing_off {
            if unknown && !stale {
                state.last_unknown_kid_fetch = Some(now);
            }
            state.fetches += 1;
            match self.fetch().await {
                Ok((jwks, max_age)) => {
                    state.jwks = Some(jwks);
                    state.fresh_until = Some(now + max_age);
                    state.failed_at = None;
                }
                Err(e) => {
                    state.failed_at = Some(Instant::now());
                    // A stale copy beats none while the upstream is unreachable.
                    if state.jwks.is_none() {
                        return Err(e);
                    }
                    tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed; using the cached copy");
                }
            }
        }
        let jwks = state.jwks.clone().ok_or_else(|| {
            self.error(format!(
                "not fetched: the last attempt failed less than {}s ago",
                FETCH_RETRY_AFTER.as_secs()
            ))
        })?;
        Ok(Current {
            jwks,
            unconfirmed: state.failed_at.is_some(),
        })
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::RemoteJwks {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    async fn fetch(&self) -> Result<(Jwks, Duration)> {
        let response = self
            .http
            .get(&self.url)
            .timeout(UPSTREAM_FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.error(e.to_string()))?;
        if !response.status().is_success() {
            return Err(self.error(format!("answered {}", response.status())));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map_or(DEFAULT_MAX_AGE, parse_max_age);
        let jwks = response
            .json::<Jwks>()
            .await
            .map_err(|e| self.error(format!("not a JWKS: {e}")))?;
        Ok((jwks, max_age.min(LONGEST_MAX_AGE)))
    }
}

/// The freshness `Cache-Control` grants: `no-store`/`no-cache` none, else `max-age`, else
/// [`DEFAULT_MAX_AGE`].
fn parse_max_age(header: &str) -> Duration {
    Caching::parse(Some(header)).freshness(DEFAULT_MAX_AGE)
}

/// A configured upstream issuer and its key cache.
#[derive(Debug)]
pub struct TrustedIssuer {
    config: TrustedIssuerConfig,
    jwks: RemoteJwks,
}

impl TrustedIssuer {
    /// From configuration.
    pub fn new(config: TrustedIssuerConfig, http: reqwest::Client) -> Self {
        let jwks = RemoteJwks::new(&config.jwks_uri, http);
        TrustedIssuer { config, jwks }
    }

    /// Its `iss`.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Its key cache.
    pub fn jwks(&self) -> &RemoteJwks {
        &self.jwks
    }

    /// Verifies a user token it issued: signature by one of its keys (algorithm pinned per key
    /// and limited to the configured ones), `iss`, `aud`, `exp`/`nbf`/`iat` with 5 s leeway.
    /// Keys that can't be fetched, or a `kid` the cached keys lack while the upstream can't be
    /// asked, are [`SubjectTokenFailure::KeysUnavailable`], not a bad token.
    pub(crate) async fn verify(
        &self,
        token: &str,
        kid: Option<&str>,
        now: SystemTime,
    ) -> Result<Claims, SubjectTokenFailure> {
        let current = self.jwks.current(kid).await.map_err(|e| {
            tracing::warn!(issuer = %self.config.issuer, error = %e, "trusted issuer JWKS unavailable");
            SubjectTokenFailure::KeysUnavailable
        })?;
        let mut validation = Validation::new(&self.config.issuer, &self.config.audience);
        validation.algorithms = self
            .config
            .algorithms
            .clone()
            .unwrap_or_else(|| vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]);
        Verifier::new(&current.jwks, validation)
            .verify(token, now)
            .map_err(|e| match e {
                svctoken_jwks::Error::UnknownKey(_) if current.unconfirmed => {
                    SubjectTokenFailure::KeysUnavailable
                }
                e => SubjectTokenFailure::Jose(JoseFailure::from(&e)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Duration::from_secs(300)
        );
        assert_eq!(parse_max_age("no-store"), Duration::ZERO);
        assert_eq!(parse_max_age("max-age=60, no-cache"), Duration::ZERO);
        assert_eq!(parse_max_age("public"), DEFAULT_MAX_AGE);
        assert_eq!(parse_max_age("max-age=junk"), Duration::ZERO);
    }
}
