//! Several replicas on PostgreSQL, in process: the key store contract against the database
//! store (each case in a schema of its own), thirty simulated days of three replicas under the
//! Convex cache model, what replicas share (the replay cache, rate limits, the audit chains,
//! key changes announced), a replica joining late and one whose lease lapses, and the database
//! going down and coming back. The same with `svctoken serve` processes is in
//! `cli/tests/replicas.rs`.
//!
//! Every test works in a schema of its own in the machine's PostgreSQL
//! (`svctoken_tests::postgres::TestSchema`), or, to stop the database, in a cluster of its own
//! (`TestCluster`); without PostgreSQL they print why they skip, and fail under `CI=true`.

mod contract;
mod outage;
mod shared;
mod simulation;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::postgres::{Database, PgStore};
use svctoken_issuer::store::KeyStore;
use svctoken_mint::Clock;
use svctoken_tests::convex::{ConvexAuth, CustomJwtAlgorithm, Provider};
use svctoken_tests::harness::{TestIssuer, convex_with_clock, spawn_replica};

/// The one issuer URL every replica mints and publishes: the load balancer's.
const ISSUER: &str = "https://auth.example.com";

/// 2027-01-15, a moment for mock clocks.
const START: u64 = 1_800_000_000;

/// Replica `id`'s store on `db`, its private keys in `dir`, with a lease of an hour.
fn store(db: &Database, id: &str, dir: &Path) -> Arc<PgStore> {
    Arc::new(PgStore::open(db.clone(), id, dir, Duration::from_secs(3600)).expect("store opens"))
}

/// Starts replica `id` of [`ISSUER`] on `db` with `config`.
async fn replica(
    db: &Database,
    id: &str,
    dir: &Path,
    config: &str,
    clock: Arc<dyn Clock>,
) -> TestIssuer {
    let store: Arc<dyn KeyStore> = store(db, id, dir);
    spawn_replica(ISSUER, config, store, clock).await
}

/// A verifier applying Convex's rules, trusting [`ISSUER`] and fetching the JWKS from `from`
/// (one replica), with `clock`.
fn convex_via(from: &TestIssuer, clock: Arc<dyn Clock>) -> ConvexAuth {
    convex_with_clock(
        vec![Provider::CustomJwt {
            issuer: ISSUER.into(),
            jwks: from.audience_jwks("convex"),
            algorithm: CustomJwtAlgorithm::ES256,
            application_id: Some("convex".into()),
        }],
        clock,
    )
}

/// Runs a replica's lifecycle once (lease, rotation, others' changes), off the executor.
async fn refresh(t: &TestIssuer) -> svctoken_issuer::Result<()> {
    let issuer = t.issuer.clone();
    tokio::task::spawn_blocking(move || issuer.refresh())
        .await
        .expect("join")
}
