//! Upstream issuers whose user tokens may be exchanged (RFC 8693), with a JWKS cache that
//! honours `Cache-Control` and, unlike Convex, refetches once on an unknown `kid` (at most once
//! a minute), so an upstream rotation never locks users out for a whole `max-age`.

use std::time::{Duration, SystemTime};

use svctoken_jwks::{Algorithm, Claims, Jwks, Validation, Verifier};
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
    fetches: u64,
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
    /// holds no key with `kid`. Concurrent callers share one fetch.
    pub async fn keys(&self, kid: Option<&str>) -> Result<Jwks> {
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
        if state.jwks.is_none() || stale || (unknown && may_refetch) {
            if unknown && !stale {
                state.last_unknown_kid_fetch = Some(now);
            }
            state.fetches += 1;
            match self.fetch().await {
                Ok((jwks, max_age)) => {
                    state.jwks = Some(jwks);
                    state.fresh_until = Some(now + max_age);
                }
                // A stale copy beats none while the upstream is unreachable.
                Err(e) if state.jwks.is_none() => return Err(e),
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed; using the cached copy")
                }
            }
        }
        state.jwks.clone().ok_or_else(|| self.error("no JWKS"))
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

/// The freshness `Cache-Control` grants: `no-store`/`no-cache` none, else `max-age`.
fn parse_max_age(header: &str) -> Duration {
    let mut max_age = DEFAULT_MAX_AGE;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            max_age = n
                .trim_matches('"')
                .parse()
                .map_or(Duration::ZERO, Duration::from_secs);
        }
    }
    max_age
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
    pub(crate) async fn verify(
        &self,
        token: &str,
        kid: Option<&str>,
        now: SystemTime,
    ) -> Result<Claims, SubjectTokenFailure> {
        let jwks = self.jwks.keys(kid).await.map_err(|e| {
            tracing::warn!(issuer = %self.config.issuer, error = %e, "trusted issuer JWKS unavailable");
            SubjectTokenFailure::KeysUnavailable
        })?;
        let mut validation = Validation::new(&self.config.issuer, &self.config.audience);
        validation.algorithms = self
            .config
            .algorithms
            .clone()
            .unwrap_or_else(|| vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]);
        Verifier::new(&jwks, validation)
            .verify(token, now)
            .map_err(|e| SubjectTokenFailure::Jose(JoseFailure::from(&e)))
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
