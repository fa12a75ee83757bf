//! The key lifecycle: Prepared -> Active -> Retired -> removed, driven by an idempotent
//! [`rotate`] that any process may run at any time.
//!
//! With JWKS `max-age` M, skew S and maximum token lifetime T:
//! - a key is published at least M + S (the *lead*) before it signs, because verifiers such as
//!   Convex never refetch the JWKS on an unknown `kid`;
//! - a retired key stays published T + S (the *tail*) after its last signature;
//! - the JWKS is served with `max-age` M, never more than the lead minus the skew.
//!
//! [`rotate`] applies pure threshold predicates ([`should_remove`], [`should_activate`],
//! [`should_prepare`]) to the stored key set; they decide, this module only carries out.
//!
//! Every function here takes the store's lock, reads the key set, changes it and saves it
//! before destroying any private key, so a crash at any point leaves a loadable store in which
//! every published key is still published.

mod schedule;

use svctoken_jwks::Algorithm;

use crate::store::{KeyRecord, KeySet, KeyState, KeyStore, Revocation};
use crate::{Error, Result};

pub use schedule::{
    LONGEST_PERIOD, SKEW, Schedule, should_activate, should_prepare, should_remove,
};

/// Something [`rotate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new key was published as Prepared; it signs from `activate_at`.
    Prepared {
        /// The new key.
        kid: String,
        /// When it will start signing.
        activate_at: u64,
    },
    /// A key started signing.
    Activated {
        /// The key.
        kid: String,
        /// True when it signs before its full lead (a fresh store, or after a revocation):
        /// verifiers holding an older cached JWKS may reject its tokens for up to `max-age`.
        early: bool,
    },
    /// A key stopped signing; it leaves the JWKS at `remove_at`.
    Retired {
        /// The key.
        kid: String,
        /// When it leaves the JWKS.
        remove_at: u64,
    },
    /// A retired key left the JWKS and its private key was destroyed.
    Removed {
        /// The key.
        kid: String,
    },
}

/// Runs the lifecycle at time `now` (seconds since the epoch). Idempotent: running it twice at
/// the same time changes nothing the second time. Returns what it did.
pub fn rotate(store: &dyn KeyStore, schedule: &Schedule, now: u64) -> Result<Vec<Event>> {
    transact(store, |set, events| step(store, schedule, set, now, events))
}

/// Starts a rotation now: publishes a new key (if none is waiting) that signs after the lead,
/// then runs [`rotate`]. Returns what it did (nothing when a key is already waiting).
pub fn rotate_now(store: &dyn KeyStore, schedule: &Schedule, now: u64) -> Result<Vec<Event>> {
    transact(store, |set, events| {
        if set.prepared().is_none() && set.active().is_some() {
            let activate_at = now + schedule.prepare_lead().as_secs();
            prepare(store, schedule, set, now, activate_at, events)?;
        }
        step(store, schedule, set, now, events)
    })
}

/// Removes a key from the JWKS at once (an emergency). If it was signing, the waiting key (or
/// a new one) signs from now on. Returns the revocation record (with the time until which
/// verifiers may still trust the key: `max-age` from now) and the events.
pub fn revoke(
    store: &dyn KeyStore,
    schedule: &Schedule,
    kid: &str,
    now: u64,
) -> Result<(Revocation, Vec<Event>)> {
    let mut revocation = None;
    let events = transact(store, |set, events| {
        let index = set
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
        set.keys.remove(index);
        let record = Revocation {
            kid: kid.to_owned(),
            revoked_at: now,
            trusted_until: now + schedule.jwks_max_age.as_secs(),
        };
        set.revoked.push(record.clone());
        revocation = Some(record);
        step(store, schedule, set, now, events)
    })?;
    let revocation = revocation.ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
    // The key set no longer names it: now its private half can go.
    store.destroy_key(kid)?;
    Ok((revocation, events))
}

/// Lock, load, apply `f`, save if anything happened, then destroy removed keys' private halves.
fn transact(
    store: &dyn KeyStore,
    f: impl FnOnce(&mut KeySet, &mut Vec<Event>) -> Result<()>,
) -> Result<Vec<Event>> {
    let _lock = store.lock()?;
    let mut set = store.load()?;
    let before = set.clone();
    let mut events = Vec::new();
    f(&mut set, &mut events)?;
    if set != before {
        store.save(&mut set)?;
    }
    for event in &events {
        if let Event::Removed { kid } = event {
            store.destroy_key(kid)?;
        }
    }
    Ok(events)
}

fn step(
    store: &dyn KeyStore,
    schedule: &Schedule,
    set: &mut KeySet,
    now: u64,
    events: &mut Vec<Event>,
) -> Result<()> {
    // 1. Retired keys whose tokens have all expired leave the JWKS.
    set.keys.retain(|k| {
        let gone = should_remove(k, now);
        if gone {
            events.push(Event::Removed { kid: k.kid.clone() });
        }
        !gone
    });

    // 2. Always have a signing key: with none signing and none waiting, make one that may sign
    //    at once (a fresh store, or the last key was revoked).
    if set.active().is_none() && set.prepared().is_none() {
        let jwk = store.create_key(schedule.algorithm, schedule.rsa_bits)?;
        set.keys
            .push(new_record(jwk, schedule.algorithm, now, now)?);
    }

    // 3. Hand over once the waiting key is due (or at once if no key signs).
    if should_activate(set, now) {
        hand_over(set, schedule, now, events);
    }

    // 4. Publish the next key a lead ahead of its activation.
    if let Some(activate_at) = should_prepare(set, schedule, now) {
        prepare(store, schedule, set, now, activate_at, events)?;
    }
    Ok(())
}

/// The waiting key signs from `now`; the key signing until now (if any) retires.
fn hand_over(set: &mut KeySet, schedule: &Schedule, now: u64, events: &mut Vec<Event>) {
    let remove_at = now + schedule.retire_tail().as_secs();
    for k in &mut set.keys {
        match k.state {
            KeyState::Active { activated_at } => {
                k.state = KeyState::Retired {
                    activated_at,
                    retired_at: now,
                    remove_at,
                };
                events.push(Event::Retired {
                    kid: k.kid.clone(),
                    remove_at,
                });
            }
            KeyState::Prepared { activate_at } => {
                k.state = KeyState::Active { activated_at: now };
                events.push(Event::Activated {
                    kid: k.kid.clone(),
                    early: activate_at > now,
                });
            }
            KeyState::Retired { .. } => {}
        }
    }
}

fn prepare(
    store: &dyn KeyStore,
    schedule: &Schedule,
    set: &mut KeySet,
    now: u64,
    activate_at: u64,
    events: &mut Vec<Event>,
) -> Result<()> {
    let jwk = store.create_key(schedule.algorithm, schedule.rsa_bits)?;
    let record = new_record(jwk, schedule.algorithm, now, activate_at)?;
    events.push(Event::Prepared {
        kid: record.kid.clone(),
        activate_at,
    });
    set.keys.push(record);
    Ok(())
}

fn new_record(
    jwk: svctoken_jwks::Jwk,
    alg: Algorithm,
    now: u64,
    activate_at: u64,
) -> Result<KeyRecord> {
    Ok(KeyRecord {
        kid: svctoken_jwks::thumbprint(&jwk)?,
        alg,
        state: KeyState::Prepared { activate_at },
        public: jwk,
        published_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::schedule::tests::{T0, schedule};
    use super::*;

    use crate::store::MemoryStore;

    fn states(store: &MemoryStore) -> Vec<&'static str> {
        store
            .load()
            .expect("load")
            .keys
            .iter()
            .map(|k| k.state.name())
            .collect()
    }

    #[test]
    fn a_fresh_store_gets_an_active_key_and_rotate_is_idempotent() {
        let store = MemoryStore::new();
        let events = rotate(&store, &schedule(), T0).expect("rotate");
        assert!(
            matches!(&events[..], [Event::Activated { early: false, .. }]),
            "{events:?}"
        );
        let set = store.load().expect("load");
        assert_eq!(rotate(&store, &schedule(), T0).expect("again"), vec![]);
        assert_eq!(
            store.load().expect("load"),
            set,
            "nothing saved the second time"
        );
    }

    #[test]
    fn the_full_lifecycle_keeps_the_lead_and_the_tail() {
        let s = schedule();
        let store = MemoryStore::new();
        rotate(&store, &s, T0).expect("bootstrap");
        let first = store
            .load()
            .expect("load")
            .active()
            .expect("active")
            .kid
            .clone();
        let lead = s.prepare_lead().as_secs(); // 65
        let tail = s.retire_tail().as_secs(); // 605

        // Just before the period's end minus the lead, nothing happens.
        assert_eq!(
            rotate(&store, &s, T0 + 3600 - lead - 1).expect("rotate"),
            vec![]
        );
        // At it, the next key is published, to sign at the end of the period.
        let events = rotate(&store, &s, T0 + 3600 - lead).expect("rotate");
        let Some(Event::Prepared {
            kid: next,
            activate_at,
        }) = events.first().cloned()
        else {
            panic!("{events:?}");
        };
        assert_eq!(activate_at, T0 + 3600);
        assert_eq!(states(&store), ["active", "prepared"]);
        assert_eq!(rotate(&store, &s, T0 + 3599).expect("rotate"), vec![]);

        // At the end of the period it takes over; the old key stays published for the tail.
        let events = rotate(&store, &s, T0 + 3600).expect("rotate");
        assert!(events.contains(&Event::Retired {
            kid: first.clone(),
            remove_at: T0 + 3600 + tail
        }));
        assert!(events.contains(&Event::Activated {
            kid: next.clone(),
            early: false
        }));
        assert_eq!(
            store.load().expect("load").active().expect("active").kid,
            next
        );
        assert!(
            store.signing_key(&first).is_ok(),
            "private key kept while published"
        );

        assert_eq!(
            rotate(&store, &s, T0 + 3600 + tail - 1).expect("rotate"),
            vec![]
        );
        let events = rotate(&store, &s, T0 + 3600 + tail).expect("rotate");
        assert_eq!(events, vec![Event::Removed { kid: first.clone() }]);
        assert!(
            store.signing_key(&first).is_err(),
            "private key destroyed after removal"
        );
    }

    #[test]
    fn a_late_timer_still_waits_for_the_full_lead() {
        let s = schedule();
        let store = MemoryStore::new();
        rotate(&store, &s, T0).expect("bootstrap");
        // The issuer was down: the first run after the period's end publishes the next key,
        // which may only sign a full lead later.
        let late = T0 + 5000;
        let events = rotate(&store, &s, late).expect("rotate");
        assert!(
            matches!(events[..], [Event::Prepared { activate_at, .. }] if activate_at == late + 65)
        );
        assert_eq!(rotate(&store, &s, late + 64).expect("rotate"), vec![]);
        assert_eq!(rotate(&store, &s, late + 65).expect("rotate").len(), 2);
    }

    #[test]
    fn rotate_now_publishes_first_and_activates_after_the_lead() {
        let s = schedule();
        let store = MemoryStore::new();
        rotate(&store, &s, T0).expect("bootstrap");
        let events = rotate_now(&store, &s, T0 + 10).expect("rotate now");
        assert!(
            matches!(events[..], [Event::Prepared { activate_at, .. }] if activate_at == T0 + 75)
        );
        assert_eq!(
            rotate_now(&store, &s, T0 + 11).expect("again"),
            vec![],
            "idempotent"
        );
        assert_eq!(rotate(&store, &s, T0 + 75).expect("rotate").len(), 2);
    }

    #[test]
    fn revoking_the_signing_key_promotes_the_next_one_at_once() {
        let s = schedule();
        let store = MemoryStore::new();
        rotate(&store, &s, T0).expect("bootstrap");
        rotate_now(&store, &s, T0).expect("prepare");
        let set = store.load().expect("load");
        let (active, next) = (
            set.active().expect("a").kid.clone(),
            set.prepared().expect("p").kid.clone(),
        );
        let (revocation, events) = revoke(&store, &s, &active, T0 + 20).expect("revoke");
        assert_eq!(revocation.trusted_until, T0 + 20 + 60);
        assert_eq!(
            events,
            vec![Event::Activated {
                kid: next.clone(),
                early: true
            }]
        );
        let set = store.load().expect("load");
        assert!(set.get(&active).is_none());
        assert_eq!(set.revoked.len(), 1);
        assert!(
            store.signing_key(&active).is_err(),
            "revoked private key destroyed"
        );
        assert!(matches!(
            revoke(&store, &s, "nope", T0),
            Err(Error::UnknownKey(_))
        ));
        // With no key waiting, a new one is made and signs at once.
        let (_, events) = revoke(&store, &s, &next, T0 + 30).expect("revoke");
        assert!(
            matches!(&events[..], [Event::Activated { .. }]),
            "{events:?}"
        );
        assert!(store.load().expect("load").active().is_some());
    }

    #[test]
    fn an_algorithm_change_prepares_a_key_of_the_new_algorithm_at_once() {
        let store = MemoryStore::new();
        rotate(&store, &schedule(), T0).expect("bootstrap");
        let eddsa = Schedule {
            algorithm: Algorithm::EdDSA,
            ..schedule()
        };
        let events = rotate(&store, &eddsa, T0 + 1).expect("rotate");
        assert!(
            matches!(events[..], [Event::Prepared { activate_at, .. }] if activate_at == T0 + 66)
        );
        rotate(&store, &eddsa, T0 + 66).expect("rotate");
        assert_eq!(
            store.load().expect("load").active().expect("active").alg,
            Algorithm::EdDSA
        );
    }
}
