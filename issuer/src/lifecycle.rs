//! The key lifecycle of a running issuer: [`run`] applies [`rotate`](crate::rotation::rotate)
//! every [`LIFECYCLE_INTERVAL`] at the issuer's clock's time and swaps in whatever changed,
//! including changes another process made (`svctoken keys revoke`).
//!
//! A failed run is logged and counted (`svctoken_key_rotation_failures_total`), and the key
//! that signs keeps signing: nothing is swapped in until a run succeeds. Every change (a key
//! published, rescheduled, activated, retired, removed, revoked) is logged at `info` and
//! recorded in the audit trail as made by the `timer`.
//!
//! Each run that changed the key set counts in `svctoken_key_rotations_total{by="timer"}`.
//! Changes another process saved (`svctoken keys rotate` or `revoke`) are counted with
//! `by="cli"` when the issuer picks them up: the key set's generation grows by one per save,
//! so the saves beyond the issuer's own are the others'.

use std::time::Duration;

use crate::audit::ChangedBy;
use crate::rotation::{AuditJournal, Event};
use crate::store::KeyState;
use crate::{Issuer, Result};

/// How often the server runs the key lifecycle (and picks up `svctoken keys revoke`).
pub const LIFECYCLE_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the lifecycle now and then every [`LIFECYCLE_INTERVAL`], off the async executor,
/// until the task is aborted. Never returns on its own: failures are logged and counted.
pub(crate) async fn run(issuer: Issuer) {
    let mut tick = tokio::time::interval(LIFECYCLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Replicas announce their key changes; without announcements, every run re-reads them.
    let changes = issuer.keys().store().changes();
    let signing_failed = issuer.keys().signing_failed();
    loop {
        let announced = async {
            match &changes {
                Some(changes) => changes.notified().await,
                None => std::future::pending().await,
            }
        };
        let full_run = tokio::select! {
            _ = tick.tick() => true,
            () = announced => false,
            () = signing_failed.notified() => false,
        };
        let worker = issuer.clone();
        let ran = tokio::task::spawn_blocking(move || {
            if full_run {
                refresh(&worker).map(drop)
            } else {
                reload(&worker)
            }
        })
        .await;
        match ran {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                issuer.metrics().rotation_failed();
                tracing::error!(error = %e, "key lifecycle failed; the current key keeps signing");
                warn_if_overdue(&issuer);
            }
            Err(e) => {
                issuer.metrics().rotation_failed();
                tracing::error!(error = %e, "key lifecycle task panicked; the current key keeps signing");
            }
        }
    }
}

/// Says so when the lifecycle can't run and the signing key signs past its period (the
/// standby is due), or the replica's lease runs out (it then stops signing).
fn warn_if_overdue(issuer: &Issuer) {
    let now = issuer.clock().unix_secs();
    let published = issuer.keys().published();
    if let Some(KeyState::Prepared { activate_at }) = published.set.prepared().map(|k| k.state)
        && activate_at <= now
        && published.set.active().is_some()
    {
        issuer.metrics().signed_past_period();
        tracing::warn!(
            overdue_secs = now - activate_at,
            "the signing key signs past its period: the rotation waits for the key store"
        );
    }
    if let Some(until) = issuer.keys().sign_until() {
        tracing::warn!(
            lease_until = until,
            "the replica's lease could not be renewed; it stops signing at lease_until unless \
             the database answers before"
        );
    }
}

/// One run at the issuer's clock's time: rotate (recording each change in the audit trail),
/// pick up changes, log and count what changed. Blocking (it takes the store's lock, may
/// generate keys, and waits for the audit trail's disk).
pub(crate) fn refresh(issuer: &Issuer) -> Result<Vec<Event>> {
    let journal = AuditJournal::new(issuer.auditor(), ChangedBy::Timer);
    let before = generation(issuer);
    let events = issuer
        .keys()
        .refresh(issuer.clock().unix_secs(), &journal)?;
    count_changes(issuer, before, !events.is_empty());
    events.iter().for_each(log);
    Ok(events)
}

/// Re-reads the key set (another replica or a command announced a change), counting what
/// commands changed.
fn reload(issuer: &Issuer) -> Result<()> {
    let before = generation(issuer);
    issuer.keys().reload()?;
    count_changes(issuer, before, false);
    Ok(())
}

/// The generation of this issuer's key set as last loaded.
fn generation(issuer: &Issuer) -> u64 {
    issuer.keys().published().set.generation
}

/// Counts the key set changes since generation `before`: one by the timer if this run saved
/// one (`ours`), every other save by a command.
fn count_changes(issuer: &Issuer, before: u64, ours: bool) {
    let saves = generation(issuer).saturating_sub(before);
    if ours {
        issuer.metrics().rotated(ChangedBy::Timer, 1);
    }
    let theirs = saves.saturating_sub(u64::from(ours));
    if theirs > 0 {
        issuer.metrics().rotated(ChangedBy::Cli, theirs);
    }
}

fn log(event: &Event) {
    match event {
        Event::Prepared {
            kid, activate_at, ..
        } => {
            tracing::info!(kid, activate_at, "key published; it signs from activate_at");
        }
        Event::Rescheduled {
            kid, activate_at, ..
        } => {
            tracing::info!(
                kid,
                activate_at,
                "standby rescheduled; it signs from activate_at"
            );
        }
        Event::Activated {
            kid, early: false, ..
        } => {
            tracing::info!(kid, early = false, "key activated: it signs from now");
        }
        Event::Activated {
            kid, early: true, ..
        } => {
            tracing::info!(kid, early = true, "key activated: it signs from now");
            tracing::warn!(
                kid,
                "key activated before a full jwks_max_age since it was published: verifiers \
                 holding an older cached JWKS may reject its tokens until their cache expires"
            );
        }
        Event::Retired { kid, remove_at, .. } => {
            tracing::info!(
                kid,
                remove_at,
                "key retired; it leaves the JWKS at remove_at"
            );
        }
        Event::Removed { kid, .. } => {
            tracing::info!(
                kid,
                "key removed from the JWKS; its private key was destroyed"
            );
        }
        Event::Revoked {
            kid, trusted_until, ..
        } => {
            tracing::warn!(
                kid,
                trusted_until,
                "key revoked: removed from the JWKS, its private key destroyed; caching \
                 verifiers may trust it until trusted_until"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use svctoken_jwks::{Algorithm, Jwk, SigningKey};

    use crate::Error;
    use crate::settings::{Overrides, Settings};
    use crate::store::MemoryStore;
    use crate::store::{KeySet, KeyStore, StoreLock};
    use svctoken_mint::MockClock;

    const T0: u64 = 1_800_000_000;

    /// A memory store whose writer lock can be made to fail.
    struct Flaky {
        inner: MemoryStore,
        broken: AtomicBool,
    }

    impl KeyStore for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        fn lock(&self) -> Result<StoreLock> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(Error::Store {
                    store: self.describe(),
                    message: "unreachable".into(),
                });
            }
            self.inner.lock()
        }
        fn load(&self) -> Result<KeySet> {
            self.inner.load()
        }
        fn save(&self, set: &mut KeySet) -> Result<()> {
            self.inner.save(set)
        }
        fn create_key(&self, alg: Algorithm, rsa_bits: usize) -> Result<Jwk> {
            self.inner.create_key(alg, rsa_bits)
        }
        fn signing_key(&self, kid: &str) -> Result<SigningKey> {
            self.inner.signing_key(kid)
        }
        fn destroy_key(&self, kid: &str) -> Result<()> {
            self.inner.destroy_key(kid)
        }
    }

    fn issuer(store: Arc<dyn KeyStore>, clock: Arc<MockClock>) -> Issuer {
        issuer_auditing(store, clock, crate::audit::Auditor::new(Vec::new(), false))
    }

    fn issuer_auditing(
        store: Arc<dyn KeyStore>,
        clock: Arc<MockClock>,
        auditor: crate::audit::Auditor,
    ) -> Issuer {
        let settings = Settings::from_toml(
            "issuer = \"https://auth.example.com\"\n[keys]\nrotation_period = \"1h\"\n\
             jwks_max_age = \"1m\"\n",
            &Overrides::default(),
        )
        .expect("settings");
        Issuer::open_with_auditor(settings, store, clock, auditor).expect("open")
    }

    #[tokio::test]
    async fn a_failed_run_is_counted_and_the_current_key_keeps_signing() {
        let store = Arc::new(Flaky {
            inner: MemoryStore::new(),
            broken: AtomicBool::new(false),
        });
        let clock = Arc::new(MockClock::at_unix(T0));
        let issuer = issuer(store.clone(), clock.clone());
        let signing = issuer.keys().signer().load().kid().to_owned();
        let published = issuer.keys().published().all.etag.clone();

        store.broken.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(3600 * 5));
        let task = tokio::spawn(run(issuer.clone()));
        // The first run starts at once.
        for _ in 0..200 {
            if issuer.metrics().rotation_failures() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        assert_eq!(issuer.metrics().rotation_failures(), 1);
        assert_eq!(issuer.keys().signer().load().kid(), signing);
        assert_eq!(issuer.keys().published().all.etag, published);

        // Once the store answers again the next run catches up.
        store.broken.store(false, Ordering::SeqCst);
        let events = refresh(&issuer).expect("refresh");
        assert!(
            matches!(
                &events[..],
                [
                    Event::Retired { .. },
                    Event::Activated { .. },
                    Event::Prepared { .. }
                ]
            ),
            "{events:?}"
        );
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn standby_of(issuer: &Issuer) -> String {
        let published = issuer.keys().published();
        published.set.prepared().expect("standby").kid.clone()
    }

    #[test]
    fn every_lifecycle_change_is_logged_at_info() {
        let clock = Arc::new(MockClock::at_unix(T0));
        let issuer = issuer(Arc::new(MemoryStore::new()), clock.clone());
        let first = issuer.keys().signer().load().kid().to_owned();
        let standby = standby_of(&issuer);
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Period 1 h, lead 65 s, tail 5 min + 5 s.
            for at in [3600, 3600 + 305] {
                clock.set(svctoken_mint::from_unix_secs(T0 + at));
                assert!(!refresh(&issuer).expect("refresh").is_empty(), "{at}");
            }
        });
        let logs = String::from_utf8(captured.0.lock().expect("logs").clone()).expect("utf-8");
        let next = standby_of(&issuer);
        for (message, kid) in [
            ("key published", &next),
            ("key activated", &standby),
            ("key retired", &first),
            ("key removed", &first),
        ] {
            assert!(
                logs.lines().any(|l| l.contains(" INFO ")
                    && l.contains(message)
                    && l.contains(kid.as_str())),
                "{message} {kid}: {logs}"
            );
        }
        assert_eq!(issuer.metrics().rotation_failures(), 0);
    }

    /// Start-up, a rotation at the period's end and a removal at the tail's end: each change
    /// is one audit event, in order, made by the timer.
    #[test]
    fn every_lifecycle_change_is_an_audit_event_in_order() {
        use crate::audit::{ChangedBy, KeyChange, MemorySink, Outcome};
        let clock = Arc::new(MockClock::at_unix(T0));
        let sink = Arc::new(MemorySink::new());
        let auditor = crate::audit::Auditor::new(vec![Box::new(Arc::clone(&sink))], false);
        let issuer = issuer_auditing(Arc::new(MemoryStore::new()), clock.clone(), auditor);
        for at in [3600, 3600 + 305] {
            clock.set(svctoken_mint::from_unix_secs(T0 + at));
            refresh(&issuer).expect("refresh");
        }
        let recorded: Vec<(u64, String, &'static str)> = sink
            .events()
            .iter()
            .map(|e| {
                assert_eq!(e.outcome, Outcome::Lifecycle);
                let lifecycle = e.lifecycle.as_ref().expect("lifecycle");
                assert_eq!(lifecycle.by, ChangedBy::Timer);
                let change = match lifecycle.change {
                    KeyChange::Prepared { .. } => "prepared",
                    KeyChange::Rescheduled { .. } => "rescheduled",
                    KeyChange::Activated { .. } => "activated",
                    KeyChange::Retired { .. } => "retired",
                    KeyChange::Removed => "removed",
                    KeyChange::Revoked { .. } => "revoked",
                };
                (e.time - T0, e.kid.clone().expect("kid"), change)
            })
            .collect();
        let kid = |i: usize| recorded[i].1.clone();
        let (k1, k2, k3) = (kid(0), kid(2), kid(5));
        assert_eq!(
            recorded,
            [
                (0, k1.clone(), "prepared"),
                (0, k1.clone(), "activated"),
                (0, k2.clone(), "prepared"),
                (3600, k1.clone(), "retired"),
                (3600, k2.clone(), "activated"),
                (3600, k3.clone(), "prepared"),
                (3905, k1.clone(), "removed"),
            ]
        );
        assert_eq!(issuer.keys().signer().load().kid(), k2);
    }
}
