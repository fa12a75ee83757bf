//! The audit trail's group commit: N requests recording fail-closed at once (each waits for
//! its batch to be on disk), against one record at a time (a sync and a head per event).
//!
//! Run with: `cargo bench -p svctoken-issuer --bench audit`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use svctoken_issuer::audit::{AuditEvent, AuditSink, Auditor, ChainedFile};
use svctoken_mint::Actor;

/// A typical issuance: about 320 bytes as a chained line.
fn event(i: u64) -> AuditEvent {
    AuditEvent {
        client_id: Some("billing-worker".to_owned()),
        sub: Some("svc:billing-worker".to_owned()),
        aud: Some("convex".to_owned()),
        act: Actor::chain(["svc:gateway"]),
        scope: Some("billing:write".to_owned()),
        jti: Some(format!("jti-{i:016}")),
        kid: Some("k-2026-11-23".to_owned()),
        exp: Some(1_793_534_700 + i),
        peer: Some("127.0.0.1:51234".to_owned()),
        ..AuditEvent::issued(1_793_534_400 + i)
    }
}

fn bench(c: &mut Criterion) {
    // On the build disk (not a tmpfs /tmp), so that a sync costs what it costs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("audit");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    group.throughput(Throughput::Elements(1));
    let file = ChainedFile::open(dir.path().join("one-at-a-time.log")).expect("open");
    let mut i = 0;
    group.bench_function("one_at_a_time", |b| {
        b.iter(|| {
            i += 1;
            file.record(&event(i)).expect("record")
        })
    });
    drop(file);

    for concurrent in [32u64, 256] {
        let path = dir.path().join(format!("group-{concurrent}.log"));
        let auditor = Auditor::new(vec![Box::new(ChainedFile::open(path).expect("open"))], true);
        group.throughput(Throughput::Elements(concurrent));
        let mut i = 0;
        group.bench_with_input(
            BenchmarkId::new("fail_closed_concurrent", concurrent),
            &concurrent,
            |b, &n| {
                b.iter(|| {
                    runtime.block_on(async {
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                i += 1;
                                let auditor = auditor.clone();
                                let event = event(i);
                                tokio::spawn(async move { auditor.record(event).await })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("join").expect("recorded");
                        }
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
