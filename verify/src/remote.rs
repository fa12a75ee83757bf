//! [`RemoteJwks`]: an issuer's key set fetched over HTTP and cached as its `Cache-Control`
//! says, refetched early (at most once a minute) for a `kid` the cached copy lacks.
//!
//! Every fetch is bounded: [`FETCH_TIMEOUT`] for the whole exchange, [`MAX_BODY`] for the
//! body. One fetch is under way at a time and concurrent callers wait for it; after a failed
//! fetch none is tried for [`FETCH_RETRY_AFTER`], and the cached copy, stale or not, serves
//! meanwhile. Time comes from the injected [`Clock`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use svctoken_jwks::{Caching, Jwks};
use svctoken_mint::Clock;
use tokio::sync::Mutex;

use crate::{Error, Result};

/// Freshness when the JWKS response has no `Cache-Control: max-age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// The longest freshness honoured, whatever `max-age` says.
pub const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// At most one early refetch for an unknown `kid` per this interval.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(60);
/// The longest one fetch (discovery or JWKS) may take: connecting, the answer and its body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed fetch, none is tried for this long.
pub const FETCH_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The largest body read from a discovery document or a JWKS: 1 MiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// Where the keys are: discovered from the issuer, or at a URL given directly.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must be this one exactly
    /// and whose `jwks_uri` names the key set.
    Discover {
        /// The issuer URL, as in `iss`.
        issuer: String,
    },
    /// The key set's URL.
    Url(String),
}

/// A remote JWKS, cached.
pub struct RemoteJwks {
    source: JwksSource,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    state: Mutex<CacheState>,
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct CacheState {
    /// The JWKS URL, once discovered (or as given).
    jwks_url: Option<String>,
    jwks: Option<Arc<Jwks>>,
    fetched_at: Option<SystemTime>,
    max_age: Duration,
    last_unknown_kid_fetch: Option<SystemTime>,
    /// When the last fetch failed, if none has succeeded since.
    failed_at: Option<SystemTime>,
    fetches: u64,
}

/// The keys as cached, and whether the last attempt to refresh them failed (so a `kid` they
/// lack may be one the issuer has since published).
#[derive(Clone, Debug)]
pub struct CachedKeys {
    /// The key set.
    pub jwks: Arc<Jwks>,
    /// The last fetch failed.
    pub unconfirmed: bool,
}

/// Whether `later` is at least `interval` after `earlier` (true when the clock went back, so
/// that a clock stepped backwards can't freeze the cache).
fn elapsed(earlier: SystemTime, later: SystemTime, interval: Duration) -> bool {
    later
        .duration_since(earlier)
        .map_or(true, |gone| gone >= interval)
}

impl RemoteJwks {
    /// A cache for the keys at `source`, fetched with `http`, timed by `clock`.
    pub fn new(source: JwksSource, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        let jwks_url = match &source {
            JwksSource::Url(url) => Some(url.clone()),
            JwksSource::Discover { .. } => None,
        };
        RemoteJwks {
            source,
            http,
            clock,
            state: Mutex::new(CacheState {
                jwks_url,
                ..CacheState::default()
            }),
        }
    }

    /// The URL the keys are found through: the JWKS URL given, or the discovery document.
    pub fn source_url(&self) -> String {
        match &self.source {
            JwksSource::Url(url) => url.clone(),
            JwksSource::Discover { issuer } => discovery_url(issuer),
        }
    }

    /// How many fetches of the JWKS (discovery included) were attempted.
    pub async fn fetch_count(&self) -> u64 {
        self.state.lock().await.fetches
    }

    /// The keys: fetched when there are none or the cached copy is stale, or once more (at
    /// most every [`UNKNOWN_KID_REFETCH`]) when it holds no key with `kid`.
    pub async fn keys(&self, kid: Option<&str>) -> Result<CachedKeys> {
        let mut state = self.state.lock().await;
        let now = self.clock.now();
        let stale = match state.fetched_at {
            None => true,
            Some(at) => elapsed(at, now, state.max_age),
        };
        let unknown = match (&state.jwks, kid) {
            (Some(jwks), Some(kid)) => jwks.find(kid).is_none(),
            _ => false,
        };
        let may_refetch = state
            .last_unknown_kid_fetch
            .is_none_or(|at| elapsed(at, now, UNKNOWN_KID_REFETCH));
        let backing_off = state
            .failed_at
            .is_some_and(|at| !elapsed(at, now, FETCH_RETRY_AFTER));
        if (state.jwks.is_none() || stale || (unknown && may_refetch)) && !backing_off {
            if unknown && !stale {
                state.last_unknown_kid_fetch = Some(now);
            }
            state.fetches += 1;
            match self.fetch(&mut state).await {
                Ok((jwks, max_age)) => {
                    state.jwks = Some(Arc::new(jwks));
                    state.fetched_at = Some(now);
                    state.max_age = max_age;
                    state.failed_at = None;
                }
                Err(e) => {
                    state.failed_at = Some(now);
                    if state.jwks.is_none() {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached copy");
                }
            }
        }
        let jwks = state.jwks.clone().ok_or_else(|| Error::KeysUnavailable {
            url: self.describe(&state),
            message: format!(
                "not fetched: the last attempt failed less than {}s ago",
                FETCH_RETRY_AFTER.as_secs()
            ),
        })?;
        Ok(CachedKeys {
            jwks,
            unconfirmed: state.failed_at.is_some(),
        })
    }

    fn describe(&self, state: &CacheState) -> String {
        match (&state.jwks_url, &self.source) {
            (Some(url), _) => url.clone(),
            (None, JwksSource::Discover { issuer }) => discovery_url(issuer),
            (None, JwksSource::Url(url)) => url.clone(),
        }
    }

    async fn fetch(&self, state: &mut CacheState) -> Result<(Jwks, Duration)> {
        let url = match (&state.jwks_url, &self.source) {
            (Some(url), _) => url.clone(),
            (None, JwksSource::Url(url)) => url.clone(),
            (None, JwksSource::Discover { issuer }) => {
                let url = self.discover(issuer).await?;
                state.jwks_url = Some(url.clone());
                url
            }
        };
        let (body, max_age) = self.get(&url).await?;
        let jwks = serde_json::from_slice::<Jwks>(&body).map_err(|e| Error::KeysUnavailable {
            url: url.clone(),
            message: format!("not a JWKS: {e}"),
        })?;
        Ok((jwks, max_age))
    }

    /// The `jwks_uri` of `issuer`'s discovery document, whose `issuer` must match exactly.
    async fn discover(&self, issuer: &str) -> Result<String> {
        let url = discovery_url(issuer);
        let unavailable = |message: String| Error::KeysUnavailable {
            url: url.clone(),
            message,
        };
        let (body, _) = self.get(&url).await?;
        let doc: Value = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("not a discovery document: {e}")))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(unavailable(
                "its `issuer` is not the configured issuer".into(),
            ));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| unavailable("no http(s) `jwks_uri`".into()))?;
        Ok(jwks_uri.to_owned())
    }

    /// GETs `url`: a 2xx answer's body, at most [`MAX_BODY`] bytes, and the freshness its
    /// `Cache-Control` grants.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Duration)> {
        let unavailable = |message: String| Error::KeysUnavailable {
            url: url.to_owned(),
            message,
        };
        let exchange = async {
            let mut response = self
                .http
                .get(url)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            if !response.status().is_success() {
                return Err(unavailable(format!("answered {}", response.status())));
            }
            if response
                .content_length()
                .is_some_and(|len| len > MAX_BODY as u64)
            {
                return Err(unavailable("body larger than 1 MiB".into()));
            }
            let max_age = response
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .map_or(DEFAULT_MAX_AGE, parse_max_age)
                .min(LONGEST_MAX_AGE);
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| unavailable(e.to_string()))?
            {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(unavailable("body larger than 1 MiB".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, max_age))
        };
        tokio::time::timeout(FETCH_TIMEOUT, exchange)
            .await
            .map_err(|_| unavailable(format!("no answer within {}s", FETCH_TIMEOUT.as_secs())))?
    }
}

/// `<issuer>/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!("{issuer}/.well-known/openid-configuration")
}

/// The freshness `Cache-Control` grants: none for `no-store` or `no-cache` (or a bad
/// `max-age`), else `max-age`, else [`DEFAULT_MAX_AGE`].
pub fn parse_max_age(header: &str) -> Duration {
    Caching::parse(Some(header)).freshness(DEFAULT_MAX_AGE)
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
