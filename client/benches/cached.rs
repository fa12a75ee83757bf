//! Reading a cached, fresh token: what every call through the cache pays. Target: under
//! 100 ns, no lock, no allocation.
//!
//! Run with: `cargo bench -p svctoken-client --bench cached`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use svctoken_client::{StaticToken, TokenCache};

/// Polls a future that completes without waiting (the fast path never awaits).
fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fast path must not wait"),
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let cache = TokenCache::new(StaticToken::with_lifetime(
        "eyJhbGciOiJFUzI1NiJ9.e30.sig",
        std::time::Duration::from_secs(3600),
    ));
    runtime.block_on(cache.token()).expect("first fetch");

    let mut group = c.benchmark_group("cached_token");
    // The floor: reading the monotonic clock, which the freshness check must do.
    group.bench_function("Instant::now() alone", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()))
    });
    group.bench_function("cached()", |b| b.iter(|| black_box(cache.cached())));
    group.bench_function("token().await", |b| {
        b.iter(|| black_box(ready(cache.token())))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
