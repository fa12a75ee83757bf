//! An adapter for the official convex-rs client (feature `convex-rs`): plug a [`TokenCache`]
//! into `ConvexClient::set_auth_callback`.
//!
//! convex-rs calls the callback when it connects (`force_refresh = false`) and on every
//! reconnect or auth error (`true`); it does no timer-based refresh, so the cache's refresh
//! ahead of expiry is what keeps its tokens valid.
//!
//! ```no_run
//! # async fn f(tokens: svctoken_client::TokenCache) -> anyhow::Result<()> {
//! let mut client = convex::ConvexClient::new("https://happy-otter-123.convex.cloud").await?;
//! client.set_auth_callback(Some(svctoken_client::convex_rs::auth_callback(tokens))).await;
//! # Ok(()) }
//! ```

use convex::{AuthTokenFetcher, AuthenticationToken};

use crate::TokenCache;

/// A callback for `set_auth_callback` that hands out `tokens`' current token, or a freshly
/// fetched one when convex-rs asks for a forced refresh.
pub fn auth_callback(tokens: TokenCache) -> AuthTokenFetcher {
    Box::new(move |force_refresh: bool| {
        let tokens = tokens.clone();
        Box::pin(async move {
            let token = if force_refresh {
                tokens.force_refresh().await
            } else {
                tokens.token().await
            };
            let token = token.map_err(anyhow::Error::new)?;
            Ok(AuthenticationToken::User(token.as_str().to_owned()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FetchFuture, FetchedToken, TokenSource};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    struct Counting(AtomicU64);

    impl TokenSource for Counting {
        fn fetch(&self) -> FetchFuture<'_> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                Ok(FetchedToken {
                    access_token: svctoken_mint::AccessToken::new(format!("token-{n}")),
                    lifetime: Some(Duration::from_secs(300)),
                    requested_at: tokio::time::Instant::now(),
                })
            })
        }
    }

    #[tokio::test]
    async fn honours_force_refresh() {
        let tokens = TokenCache::new(Counting(AtomicU64::new(0)));
        let callback = auth_callback(tokens.clone());
        let user = |t: AuthenticationToken| match t {
            AuthenticationToken::User(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(user(callback(false).await.expect("token")), "token-1");
        assert_eq!(
            user(callback(false).await.expect("token")),
            "token-1",
            "cached"
        );
        assert_eq!(
            user(callback(true).await.expect("token")),
            "token-2",
            "forced"
        );
        assert_eq!(tokens.fetch_count(), 2);
    }
}
