//! Access tokens: what a source fetched, and what the cache hands out.

use std::fmt;
use std::time::Duration;

use svctoken_mint::AccessToken;
use tokio::time::Instant;

/// A token as a [`TokenSource`](crate::TokenSource) obtained it.
pub struct FetchedToken {
    /// The bearer token.
    pub access_token: AccessToken,
    /// Its lifetime as the issuer stated it (`expires_in`); `None` when it never expires or
    /// the issuer did not say.
    pub lifetime: Option<Duration>,
    /// The local moment the request for it was sent. Expiry is computed from this and the
    /// lifetime, never by comparing the issuer's clock with ours; taking the send time rather
    /// than the receive time errs on the early side by one round trip.
    pub requested_at: Instant,
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A token held by the cache. Its `Debug` never shows the token.
pub struct CachedToken {
    value: AccessToken,
    obtained_at: Instant,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
}

impl CachedToken {
    pub(crate) fn new(
        fetched: FetchedToken,
        refresh_at: Option<Instant>,
        expires_at: Option<Instant>,
    ) -> Self {
        CachedToken {
            value: fetched.access_token,
            obtained_at: fetched.requested_at,
            refresh_at,
            expires_at,
        }
    }

    /// The bearer token, for an `Authorization: Bearer` header.
    pub fn as_str(&self) -> &str {
        self.value.secret()
    }

    /// When the cache stops handing it out (local monotonic time); `None`: never.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// When the cache starts refreshing it in the background.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    pub(crate) fn obtained_at(&self) -> Instant {
        self.obtained_at
    }

    pub(crate) fn is_valid_at(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

    pub(crate) fn is_fresh_at(&self, now: Instant) -> bool {
        self.refresh_at.is_none_or(|at| now < at)
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
