//! What replicas share on the token path: the `private_key_jwt` replay cache
//! ([`SharedReplay`]) and the per-client rate-limit buckets ([`SharedLimiter`]). One statement
//! each, prepared once per connection.

use std::time::Duration;

use super::{Database, Throttle};
use crate::{RateLimitConfig, Result};

/// The replay cache every replica checks: an assertion used at one is refused at all.
#[derive(Debug)]
pub struct SharedReplay {
    db: Database,
    quiet: Throttle,
}

impl SharedReplay {
    /// The cache in `db`.
    pub fn new(db: Database) -> Self {
        SharedReplay {
            db,
            quiet: Throttle::default(),
        }
    }

    /// Records `digest` (of the client and the assertion's `jti`) until `expires_at`; false if
    /// it was recorded before. An error means the database could not say: the caller must
    /// refuse the assertion (fail closed). Expired entries are deleted by the lifecycle.
    pub async fn first_use(&self, digest: [u8; 16], expires_at: u64) -> Result<bool> {
        let expires_at = i64::try_from(expires_at).unwrap_or(i64::MAX);
        let checked = self.check(digest, expires_at).await;
        if let Err(e) = &checked
            && self.quiet.allow(super::now_secs())
        {
            tracing::error!(
                error = %e,
                "the shared replay cache can't be reached: private_key_jwt is refused (this is \
                 logged at most every 10 s)"
            );
        }
        checked
    }

    async fn check(&self, digest: [u8; 16], expires_at: i64) -> Result<bool> {
        self.db
            .run(move |db| async move {
                let client = db.client().await?;
                let insert = client
                    .prepare_cached(
                        "INSERT INTO svctoken_replay (digest, expires_at) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .await
                    .map_err(|e| db.error(e))?;
                let inserted = client
                    .execute(&insert, &[&&digest[..], &expires_at])
                    .await
                    .map_err(|e| db.error(e))?;
                Ok(inserted == 1)
            })
            .await
    }
}

/// Token buckets every replica draws from, so a client's rate is limited across replicas.
#[derive(Debug)]
pub struct SharedLimiter {
    db: Database,
    burst: f64,
    per_second: f64,
    quiet: Throttle,
}

impl SharedLimiter {
    /// Buckets in `db` allowing `config.burst` requests at once and `config.per_minute`
    /// sustained.
    pub fn new(db: Database, config: RateLimitConfig) -> Self {
        SharedLimiter {
            db,
            burst: f64::from(config.burst),
            per_second: f64::from(config.per_minute) / 60.0,
            quiet: Throttle::default(),
        }
    }

    /// Whether a failure may be logged now (at most every 10 s).
    pub(crate) fn may_log(&self, now: u64) -> bool {
        self.quiet.allow(now)
    }

    /// Takes one request from `client`'s bucket at `now` (seconds since the epoch): `Ok(Ok)`
    /// if allowed, `Ok(Err(wait))` over the limit. An error means the database could not say.
    pub async fn check(&self, client: &str, now: f64) -> Result<Result<(), Duration>> {
        let (client_id, burst, per_second) = (client.to_owned(), self.burst, self.per_second);
        let (allowed, tokens) = self
            .db
            .run(move |db| async move {
                let client = db.client().await?;
                // Every expression of DO UPDATE reads the row as it was.
                let take = client
                    .prepare_cached(
                        "INSERT INTO svctoken_rate_limit AS b (client_id, tokens, at, allowed) \
                         VALUES ($1, $2::float8 - 1, $3, true) \
                         ON CONFLICT (client_id) DO UPDATE SET \
                         allowed = LEAST($2, b.tokens + GREATEST(0, $3 - b.at) * $4) >= 1, \
                         tokens = LEAST($2, b.tokens + GREATEST(0, $3 - b.at) * $4) - \
                           CASE WHEN LEAST($2, b.tokens + GREATEST(0, $3 - b.at) * $4) >= 1 \
                           THEN 1 ELSE 0 END, \
                         at = GREATEST(b.at, $3) \
                         RETURNING allowed, tokens",
                    )
                    .await
                    .map_err(|e| db.error(e))?;
                let row = client
                    .query_one(&take, &[&client_id, &burst, &now, &per_second])
                    .await
                    .map_err(|e| db.error(e))?;
                Ok((row.get::<_, bool>(0), row.get::<_, f64>(1)))
            })
            .await?;
        if allowed {
            Ok(Ok(()))
        } else {
            Ok(Err(Duration::from_secs_f64(
                ((1.0 - tokens) / self.per_second).max(0.0),
            )))
        }
    }
}
