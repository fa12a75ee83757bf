//! A few seconds of the soak's load generator against a real issuer configured by the file it
//! writes: every grant it mixes gets tokens, none fails. (`bench/soak` runs it for minutes
//! against the release binary.)

use std::sync::Arc;
use std::time::Duration;

use svctoken_issuer::store::MemoryStore;
use svctoken_mint::SystemClock;
use svctoken_tests::harness::spawn_issuer_at;
use svctoken_tests::soak::{Grant, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_generator_gets_tokens_for_every_grant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut scenario = Scenario::start(dir.path(), 0).await.expect("scenario");
    let config = std::fs::read_to_string(&scenario.config).expect("config written");
    let addr = scenario.issuer.trim_start_matches("http://").to_owned();
    let issuer = spawn_issuer_at(
        &addr,
        &config,
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    )
    .await;
    // The in-process issuer's admin routes are on a listener of the harness's own.
    scenario.admin = issuer.admin_url.clone();
    scenario
        .wait_ready(Duration::from_secs(10))
        .await
        .expect("ready");
    let report = scenario
        .drive(Duration::from_secs(2), 4)
        .await
        .expect("load");
    assert_eq!(report.errors(), 0, "{report}");
    for grant in Grant::ALL {
        assert!(report.requests(grant) > 0, "{grant:?}: {report}");
    }
}
