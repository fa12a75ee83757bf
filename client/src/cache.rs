//! `TokenCache`: tokens that are always ready.
//!
//! - A fresh token is read with one atomic load and a reference-count increment: no lock, no
//!   allocation.
//! - When a quarter of its lifetime is left (minus up to a tenth, at random, so a fleet of
//!   processes doesn't refresh in step), one background task fetches the next token while
//!   callers keep getting the current one.
//! - Any number of concurrent callers that need a token cause at most one request to the source
//!   (single flight).
//! - A failed refresh keeps the current token in service while it is valid and retries with
//!   exponential backoff and jitter; once it has expired, callers get the source's error (for
//!   an issuer, its OAuth error). Permanent errors such as `invalid_client` are not retried
//!   until [`TokenCache::force_refresh`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::{CachedToken, Error, FetchedToken, Result, TokenSource};

/// When the cache refreshes and how it backs off.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Refresh once this fraction of the lifetime is left. Default 0.25.
    pub refresh_ahead: f64,
    /// Refresh up to this fraction of the lifetime earlier still, at random. Default 0.1.
    pub jitter: f64,
    /// Stop handing a token out this long before it expires (at most a tenth of its
    /// lifetime), so it does not expire in flight. Default 5 s.
    pub expiry_margin: Duration,
    /// First retry delay after a failure. Default 250 ms.
    pub min_backoff: Duration,
    /// Longest retry delay. Default 30 s.
    pub max_backoff: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            refresh_ahead: 0.25,
            jitter: 0.1,
            expiry_margin: Duration::from_secs(5),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Caches the tokens of a [`TokenSource`]. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    source: Box<dyn TokenSource>,
    config: CacheConfig,
    current: ArcSwapOption<CachedToken>,
    flight: Mutex<Flight>,
    background: AtomicBool,
    /// No background refresh before this many milliseconds after `epoch` (backoff).
    quiet_until_ms: AtomicU64,
    epoch: Instant,
    fetches: AtomicU64,
    rng: SystemRandom,
}

#[derive(Default)]
struct Flight {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<Error>,
    /// A permanent error: no automatic retry until `force_refresh`.
    stopped: bool,
}

impl TokenCache {
    /// A cache over `source` with the default [`CacheConfig`].
    pub fn new(source: impl TokenSource) -> Self {
        Self::with_config(source, CacheConfig::default())
    }

    /// A cache over `source` with `config`.
    pub fn with_config(source: impl TokenSource, config: CacheConfig) -> Self {
        TokenCache {
            shared: Arc::new(Shared {
                source: Box::new(source),
                config,
                current: ArcSwapOption::empty(),
                flight: Mutex::new(Flight::default()),
                background: AtomicBool::new(false),
                quiet_until_ms: AtomicU64::new(0),
                epoch: Instant::now(),
                fetches: AtomicU64::new(0),
                rng: SystemRandom::new(),
            }),
        }
    }

    /// The cached token if it is fresh (not yet due for refresh): no lock, no allocation.
    #[inline]
    pub fn cached(&self) -> Option<Arc<CachedToken>> {
        let guard = self.shared.current.load();
        match &*guard {
            Some(t) if t.is_fresh_at(Instant::now()) => Some(Arc::clone(t)),
            _ => None,
        }
    }

    /// A valid token: the cached one when possible (starting a background refresh when it is
    /// due), otherwise a new one, fetched once for all concurrent callers.
    pub async fn token(&self) -> Result<Arc<CachedToken>> {
        let now = Instant::now();
        if let Some(t) = &*self.shared.current.load() {
            if t.is_fresh_at(now) {
                return Ok(Arc::clone(t));
            }
            if t.is_valid_at(now) {
                self.refresh_in_background(now);
                return Ok(Arc::clone(t));
            }
        }
        // Boxed so this future stays small for the fast path above; the slow path fetches
        // over the network anyway.
        Box::pin(self.refresh(None)).await
    }

    /// Replaces the cached token now, for a token a server rejected. Concurrent calls share
    /// one fetch. Clears a permanent failure, so it also retries after `invalid_client`.
    pub async fn force_refresh(&self) -> Result<Arc<CachedToken>> {
        self.refresh(Some(Instant::now())).await
    }

    /// How many times the source was asked for a token.
    pub fn fetch_count(&self) -> u64 {
        self.shared.fetches.load(Ordering::Relaxed)
    }

    fn refresh_in_background(&self, now: Instant) {
        let shared = &self.shared;
        let since_epoch = now.duration_since(shared.epoch).as_millis() as u64;
        if since_epoch < shared.quiet_until_ms.load(Ordering::Relaxed)
            || shared.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.refresh(None).await {
                tracing::debug!(error = %e, "background token refresh failed");
            }
            this.shared.background.store(false, Ordering::Release);
        });
    }

    async fn refresh(&self, forced_at: Option<Instant>) -> Result<Arc<CachedToken>> {
        let shared = &self.shared;
        let mut flight = shared.flight.lock().await;
        let now = Instant::now();
        let current = shared.current.load_full();
        let valid = current.as_ref().filter(|t| t.is_valid_at(now)).cloned();
        match (&current, forced_at) {
            // Someone fetched while we waited for the lock.
            (Some(t), Some(at)) if t.obtained_at() >= at => return Ok(Arc::clone(t)),
            (Some(t), None) if t.is_fresh_at(now) => return Ok(Arc::clone(t)),
            _ => {}
        }
        if forced_at.is_none() {
            let waiting = flight.stopped || flight.retry_at.is_some_and(|at| now < at);
            if waiting {
                return match (valid, &flight.last_error) {
                    (Some(t), _) => Ok(t),
                    (None, Some(e)) => Err(e.clone()),
                    (None, None) => Err(Error::Protocol("no token yet".into())),
                };
            }
        }
        shared.fetches.fetch_add(1, Ordering::Relaxed);
        match shared.source.fetch().await {
            Ok(fetched) => {
                let token = Arc::new(self.schedule(fetched));
                shared.current.store(Some(Arc::clone(&token)));
                *flight = Flight::default();
                shared.quiet_until_ms.store(0, Ordering::Relaxed);
                Ok(token)
            }
            Err(e) => {
                flight.failures = flight.failures.saturating_add(1);
                flight.last_error = Some(e.clone());
                let quiet_until = if e.is_permanent() {
                    flight.stopped = true;
                    flight.retry_at = None;
                    u64::MAX
                } else {
                    let at = now + self.backoff(flight.failures);
                    flight.retry_at = Some(at);
                    at.duration_since(shared.epoch).as_millis() as u64
                };
                shared.quiet_until_ms.store(quiet_until, Ordering::Relaxed);
                tracing::warn!(error = %e, failures = flight.failures, "token refresh failed");
                match valid {
                    Some(t) if forced_at.is_none() => Ok(t),
                    _ => Err(e),
                }
            }
        }
    }

    fn schedule(&self, fetched: FetchedToken) -> CachedToken {
        let Some(lifetime) = fetched.lifetime else {
            return CachedToken::new(fetched, None, None);
        };
        let c = &self.shared.config;
        let start = fetched.requested_at;
        let expires = start + lifetime - c.expiry_margin.min(lifetime / 10);
        let ahead = lifetime.mul_f64(c.refresh_ahead + c.jitter * self.random_unit());
        let refresh = (start + lifetime.saturating_sub(ahead)).min(expires);
        CachedToken::new(fetched, Some(refresh), Some(expires))
    }

    fn backoff(&self, failures: u32) -> Duration {
        let c = &self.shared.config;
        let exp = c
            .min_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        exp.min(c.max_backoff)
            .mul_f64(0.5 + 0.5 * self.random_unit())
    }

    /// A uniform number in [0, 1).
    fn random_unit(&self) -> f64 {
        let mut bytes = [0u8; 8];
        if self.shared.rng.fill(&mut bytes).is_err() {
            return 0.5;
        }
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}
