//! A token bucket per client for the token endpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::RateLimitConfig;
use crate::postgres::SharedLimiter;

/// The per-client limit: this process's buckets, or the ones replicas share.
#[derive(Debug)]
pub(crate) enum Limiter {
    /// This process's buckets.
    Local(RateLimiter),
    /// Buckets in the database; while it can't be reached, this process's own buckets limit
    /// each replica on its own (a client then gets up to the limit at each replica).
    Shared {
        /// The shared buckets.
        shared: SharedLimiter,
        /// The buckets used while the database can't be reached.
        fallback: RateLimiter,
    },
}

impl Limiter {
    /// Takes one request from `client`'s bucket at `now`; over the limit, how long to wait.
    pub(crate) async fn check(&self, client: &str, now: SystemTime) -> Result<(), Duration> {
        match self {
            Limiter::Local(local) => local.check(client, now),
            Limiter::Shared { shared, fallback } => {
                let secs = now
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                match shared.check(client, secs).await {
                    Ok(verdict) => verdict,
                    Err(e) => {
                        if shared.may_log(secs as u64) {
                            tracing::warn!(
                                error = %e,
                                "the shared rate limit can't be reached: each replica limits on \
                                 its own (this is logged at most every 10 s)"
                            );
                        }
                        fallback.check(client, now)
                    }
                }
            }
        }
    }
}

/// Per-client token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, f64)>>,
}

impl RateLimiter {
    /// A limiter allowing `burst` requests at once and `per_minute` sustained.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            burst: f64::from(config.burst),
            per_second: f64::from(config.per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `client`'s bucket at `now`; over the limit, how long to wait.
    pub fn check(&self, client: &str, now: SystemTime) -> Result<(), Duration> {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets
            .entry(client.to_owned())
            .or_insert((self.burst, now));
        *tokens = (*tokens + (now - *at).max(0.0) * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(RateLimitConfig {
            burst: 3,
            per_minute: 60,
        });
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        for _ in 0..3 {
            assert!(limiter.check("a", t0).is_ok());
        }
        let wait = limiter.check("a", t0).expect_err("over the burst");
        assert!((0.9..=1.0).contains(&wait.as_secs_f64()), "{wait:?}");
        assert!(limiter.check("b", t0).is_ok(), "buckets are per client");
        assert!(
            limiter.check("a", t0 + Duration::from_secs(1)).is_ok(),
            "refilled one"
        );
        assert!(limiter.check("a", t0 + Duration::from_secs(1)).is_err());
    }
}
