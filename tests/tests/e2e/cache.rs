//! The client cache's promises, on tokio's paused clock: single flight, refresh ahead in the
//! background, serving through failures with backoff, typed errors after expiry, permanent
//! errors not retried, forced refreshes shared.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use svctoken_mint::oauth::ErrorCode;

use svctoken_client::{
    AccessToken, CacheConfig, Error, FetchFuture, FetchedToken, TokenCache, TokenSource,
};
use tokio::time::{Instant, advance, sleep};

/// A source that answers from a script (then succeeds), after `delay`, counting requests.
#[derive(Clone)]
struct Scripted {
    calls: Arc<AtomicU64>,
    script: Arc<Mutex<VecDeque<Result<(), Error>>>>,
    delay: Duration,
    lifetime: Duration,
}

impl Scripted {
    fn new(lifetime: Duration) -> Self {
        Scripted {
            calls: Arc::new(AtomicU64::new(0)),
            script: Arc::new(Mutex::new(VecDeque::new())),
            delay: Duration::from_millis(50),
            lifetime,
        }
    }

    fn then_fail(&self, e: Error) {
        self.script.lock().expect("lock").push_back(Err(e));
    }
}

impl TokenSource for Scripted {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let requested_at = Instant::now();
            sleep(self.delay).await;
            if let Some(Err(e)) = self.script.lock().expect("lock").pop_front() {
                return Err(e);
            }
            Ok(FetchedToken {
                access_token: AccessToken::new(format!("token-{n}")),
                lifetime: Some(self.lifetime),
                requested_at,
            })
        })
    }
}

fn transport() -> Error {
    Error::Transport("connection refused".into())
}

fn invalid_client() -> Error {
    Error::OAuth {
        status: 401,
        error: ErrorCode::InvalidClient,
        description: None,
    }
}

fn config() -> CacheConfig {
    CacheConfig {
        max_backoff: Duration::from_secs(2),
        ..CacheConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_cause_one_fetch() {
    let source = Scripted::new(Duration::from_secs(300));
    let cache = TokenCache::with_config(source.clone(), config());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.map(|t| t.as_str().to_owned()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("token"), "token-1");
    }
    assert_eq!(cache.fetch_count(), 1);
    assert!(
        cache.cached().is_some(),
        "fresh token readable without waiting"
    );
}

#[tokio::test(start_paused = true)]
async fn refreshes_ahead_in_the_background_without_making_callers_wait() {
    let lifetime = Duration::from_secs(100);
    let source = Scripted::new(lifetime);
    let cache = TokenCache::with_config(source.clone(), config());
    let first = cache.token().await.expect("token");
    let refresh_at = first.refresh_at().expect("has a refresh time");
    let requested = first.expires_at().expect("expires") + Duration::from_secs(5) - lifetime;
    // 25% of the lifetime left, minus up to 10% of jitter.
    assert!(
        refresh_at >= requested + Duration::from_secs(65)
            && refresh_at <= requested + Duration::from_secs(75)
    );
    // Expiry is local send time + expires_in - margin: no clock comparison.
    assert_eq!(
        first.expires_at(),
        Some(requested + lifetime - Duration::from_secs(5))
    );

    advance(Duration::from_secs(76)).await;
    assert!(cache.cached().is_none(), "due for refresh");
    let started = Instant::now();
    let same = cache.token().await.expect("token");
    assert_eq!(
        Instant::now(),
        started,
        "the caller did not wait for the fetch"
    );
    assert_eq!(
        same.as_str(),
        "token-1",
        "still served while the next one is fetched"
    );
    for _ in 0..50 {
        let _ = cache.token().await.expect("token");
    }
    sleep(Duration::from_millis(60)).await;
    assert_eq!(cache.fetch_count(), 2, "one background fetch");
    assert_eq!(cache.token().await.expect("token").as_str(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn serves_through_failures_then_returns_the_error_after_expiry() {
    let source = Scripted::new(Duration::from_secs(100));
    let cache = TokenCache::with_config(source.clone(), config());
    cache.token().await.expect("token");
    for _ in 0..100 {
        source.then_fail(transport());
    }
    advance(Duration::from_secs(80)).await;
    // Through the rest of the lifetime the old token keeps being served, while the cache
    // retries with backoff (2 s at most here), not on every call.
    let end = Instant::now() + Duration::from_secs(14);
    while Instant::now() < end {
        let t = cache
            .token()
            .await
            .expect("the valid token is still served");
        assert_eq!(t.as_str(), "token-1");
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(2)).await;
    let fetches = cache.fetch_count();
    assert!(
        (5..=40).contains(&fetches),
        "{fetches} fetches in 14 s: backoff works"
    );
    // Now expired (100 s - 5 s margin): the caller gets the source's error.
    let err = cache.token().await.expect_err("expired");
    assert!(matches!(err, Error::Transport(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn recovers_once_the_source_is_back() {
    let source = Scripted::new(Duration::from_secs(10));
    let cache = TokenCache::with_config(source.clone(), config());
    for _ in 0..3 {
        source.then_fail(transport());
    }
    assert!(cache.token().await.is_err(), "first attempt fails");
    assert!(
        cache.token().await.is_err(),
        "within backoff: the error, no new request"
    );
    assert_eq!(cache.fetch_count(), 1);
    let mut attempts = 0;
    let token = loop {
        attempts += 1;
        sleep(Duration::from_millis(500)).await;
        if let Ok(t) = cache.token().await {
            break t;
        }
        assert!(attempts < 40, "never recovered");
    };
    assert_eq!(token.as_str(), "token-4");
}

#[tokio::test(start_paused = true)]
async fn invalid_client_is_not_retried_until_forced() {
    let source = Scripted::new(Duration::from_secs(300));
    source.then_fail(invalid_client());
    let cache = TokenCache::with_config(source.clone(), config());
    let err = cache.token().await.expect_err("refused");
    assert_eq!(err.oauth_error(), Some(&ErrorCode::InvalidClient));
    for _ in 0..5 {
        sleep(Duration::from_secs(60)).await;
        let again = cache.token().await.expect_err("still refused");
        assert_eq!(again.oauth_error(), Some(&ErrorCode::InvalidClient));
    }
    assert_eq!(cache.fetch_count(), 1, "never retried on its own");
    assert_eq!(
        cache.force_refresh().await.expect("forced").as_str(),
        "token-2"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_forced_refreshes_share_one_fetch() {
    let source = Scripted::new(Duration::from_secs(300));
    let cache = TokenCache::with_config(source.clone(), config());
    cache.token().await.expect("token");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.force_refresh().await.map(|t| t.as_str().to_owned()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("token"), "token-2");
    }
    assert_eq!(cache.fetch_count(), 2);
}
