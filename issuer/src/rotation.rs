//! The key lifecycle: Prepared (the *standby*) -> Active -> Retired -> removed, driven by an
//! idempotent [`rotate`] that any process may run at any time.
//!
//! With JWKS `max-age` M, skew S and maximum token lifetime T:
//! - a key is published at least M + S (the *lead*) before it signs, because verifiers such as
//!   Convex never refetch the JWKS on an unknown `kid`;
//! - the next key (the standby) is published as soon as the key before it starts signing, and
//!   starts signing at the end of that key's period (or a full lead after it was published,
//!   whichever is later). So once the first lead has passed, every caching verifier holds the
//!   standby, and an emergency [`revoke`] of the signing key hands over to it with no verifier
//!   rejecting a token. The steady state is the active key and the standby, plus a retired key
//!   during its tail;
//! - a retired key stays published T + S (the *tail*) after its last signature;
//! - the JWKS is served with `max-age` M, never more than the lead minus the skew.
//!
//! [`rotate`] applies pure threshold predicates ([`should_remove`], [`should_withdraw`],
//! [`should_activate`], [`should_prepare`]) to the stored key set; they decide, this module
//! only carries out.
//!
//! Every function here takes the store's lock, reads the key set, changes it and saves it
//! before destroying any private key, so a crash at any point leaves a loadable store in which
//! every published key is still published. What changed is then given to a [`Journal`] (the
//! audit trail), still under the lock.

mod journal;
mod schedule;

use svctoken_jwks::Algorithm;

use crate::store::{KeyRecord, KeySet, KeyState, KeyStore, Revocation};
use crate::{Error, Result};

pub use journal::{AuditJournal, Journal};
pub use schedule::{
    LONGEST_PERIOD, SKEW, Schedule, should_activate, should_prepare, should_remove, should_withdraw,
};

/// Something [`rotate`], [`rotate_now`] or [`revoke`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new key was published as the standby; it signs from `activate_at`.
    Prepared {
        /// The new key.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
        /// When it will start signing.
        activate_at: u64,
    },
    /// The standby was moved to sign sooner (`svctoken keys rotate`).
    Rescheduled {
        /// The standby.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
        /// When it will now start signing.
        activate_at: u64,
    },
    /// A key started signing.
    Activated {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
        /// When it was published.
        published_at: u64,
        /// True when it signs less than a lead after it was published (no standby was ready
        /// when the signing key was revoked, or the standby was too new): verifiers holding an
        /// older cached JWKS may reject its tokens until their cache expires. Never set for the
        /// first key of a store.
        early: bool,
    },
    /// A key stopped signing; it leaves the JWKS at `remove_at`.
    Retired {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
        /// When it leaves the JWKS.
        remove_at: u64,
    },
    /// A key left the JWKS at the end of its life and its private key was destroyed: a retired
    /// key whose tokens have all expired, or a standby of an algorithm no longer configured
    /// (it never signed).
    Removed {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
    },
    /// A key was removed from the JWKS at once (an emergency) and its private key destroyed.
    Revoked {
        /// The key.
        kid: String,
        /// Its algorithm.
        alg: Algorithm,
        /// The state it was in.
        was: KeyState,
        /// Until when verifiers caching the JWKS may still trust it: `max-age` from now.
        trusted_until: u64,
    },
}

impl Event {
    /// The key the event is about.
    pub fn kid(&self) -> &str {
        match self {
            Event::Prepared { kid, .. }
            | Event::Rescheduled { kid, .. }
            | Event::Activated { kid, .. }
            | Event::Retired { kid, .. }
            | Event::Removed { kid, .. }
            | Event::Revoked { kid, .. } => kid,
        }
    }
}

/// Runs the lifecycle at time `now` (seconds since the epoch). Idempotent: running it twice at
/// the same time changes nothing the second time. Returns what it did, which it also gives to
/// `journal`.
pub fn rotate(
    store: &dyn KeyStore,
    schedule: &Schedule,
    now: u64,
    journal: &dyn Journal,
) -> Result<Vec<Event>> {
    // Most runs find nothing due: they read the set and take no lock.
    if !anything_due(&store.load()?, schedule, now) {
        return Ok(Vec::new());
    }
    transact(store, journal, now, |set, events| {
        step(store, schedule, set, now, events)
    })
}

/// Starts a rotation now: the standby signs as soon as it has been published a full lead (at
/// once if it has), and a new standby is published when it does (without a standby, one is
/// published first, to sign a lead from now). Does nothing while the signing key has signed
/// for less than a lead (a rotation has just happened: running the command twice rotates
/// once), or when the standby is already due as soon as it can be. Returns what it did.
pub fn rotate_now(
    store: &dyn KeyStore,
    schedule: &Schedule,
    now: u64,
    journal: &dyn Journal,
) -> Result<Vec<Event>> {
    transact(store, journal, now, |set, events| {
        step(store, schedule, set, now, events)?;
        let lead = schedule.prepare_lead().as_secs();
        let Some(KeyState::Active { activated_at }) = set.active().map(|k| k.state) else {
            return Ok(());
        };
        if now < activated_at + lead {
            return Ok(());
        }
        // The step above published a standby if there was none.
        if let Some(standby) = set.keys.iter_mut().find(|k| k.is_prepared()) {
            let soonest = now.max(standby.published_at + lead);
            if let KeyState::Prepared { activate_at } = &mut standby.state
                && *activate_at > soonest
            {
                *activate_at = soonest;
                // Due now: the step below activates it, and that is the event.
                if soonest > now {
                    events.push(Event::Rescheduled {
                        kid: standby.kid.clone(),
                        alg: standby.alg,
                        activate_at: soonest,
                    });
                }
            }
        }
        step(store, schedule, set, now, events)
    })
}

/// What [`revoke`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The revocation record (with the time until which caching verifiers may still trust the
    /// key: `max-age` from now).
    pub revocation: Revocation,
    /// The state the key was in.
    pub was: KeyState,
    /// When the signing key was revoked: the key that signs in its place.
    pub successor: Option<Successor>,
    /// Everything that changed, the revocation first.
    pub events: Vec<Event>,
}

/// The key that took over from a revoked signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Successor {
    /// The key.
    pub kid: String,
    /// When it was published.
    pub published_at: u64,
    /// True when it was the standby; false when there was none and it was made on the spot.
    pub was_standby: bool,
}

impl Revoked {
    /// Until when verifiers that obey the JWKS cache headers may reject the successor's tokens
    /// (a lead after it was published: a verifier that fetched the JWKS just before holds that
    /// copy for `max-age`, plus the skew), or `None` when none may: every caching verifier
    /// already holds it, or the revoked key was not signing.
    pub fn rejections_until(&self, schedule: &Schedule) -> Option<u64> {
        let successor = self.successor.as_ref()?;
        let until = successor.published_at + schedule.prepare_lead().as_secs();
        (until > self.revocation.revoked_at).then_some(until)
    }
}

/// Removes a key from the JWKS at once (an emergency) and destroys its private key. If it was
/// signing, the standby (which every caching verifier already holds, once it has been published
/// a lead) signs from now on, or a new key if there is none; then a new standby is published.
pub fn revoke(
    store: &dyn KeyStore,
    schedule: &Schedule,
    kid: &str,
    now: u64,
    journal: &dyn Journal,
) -> Result<Revoked> {
    let mut outcome = None;
    let events = transact(store, journal, now, |set, events| {
        let index = set
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
        let standby = set.prepared().map(|k| k.kid.clone());
        let record = set.keys.remove(index);
        let revocation = Revocation {
            kid: record.kid.clone(),
            revoked_at: now,
            // A replica may serve the key for up to P more before it learns of the revocation.
            trusted_until: now + (schedule.jwks_max_age + schedule.propagation).as_secs(),
        };
        set.revoked.push(revocation.clone());
        events.push(Event::Revoked {
            kid: record.kid.clone(),
            alg: record.alg,
            was: record.state,
            trusted_until: revocation.trusted_until,
        });
        step(store, schedule, set, now, events)?;
        let successor = set
            .active()
            .filter(|_| record.is_active())
            .map(|k| Successor {
                kid: k.kid.clone(),
                published_at: k.published_at,
                was_standby: standby.as_deref() == Some(k.kid.as_str()),
            });
        outcome = Some((revocation, record.state, successor));
        Ok(())
    })?;
    let (revocation, was, successor) = outcome.ok_or_else(|| Error::UnknownKey(kid.to_owned()))?;
    Ok(Revoked {
        revocation,
        was,
        successor,
        events,
    })
}

/// Lock, load, apply `f`, save if anything happened, destroy the private halves of keys that
/// left the JWKS, and give the events to `journal`, all under the lock.
fn transact(
    store: &dyn KeyStore,
    journal: &dyn Journal,
    now: u64,
    f: impl FnOnce(&mut KeySet, &mut Vec<Event>) -> Result<()>,
) -> Result<Vec<Event>> {
    let _lock = store.lock()?;
    let mut set = store.load()?;
    // With no signing key, whether the next one may sign at once depends on the other
    // replicas: decide and save under their common lock.
    let _replicas = match set.active() {
        None => store.lock_replicas()?,
        Some(_) => None,
    };
    let before = set.clone();
    let mut events = Vec::new();
    f(&mut set, &mut events)?;
    if set != before {
        store.save(&mut set)?;
    }
    for event in &events {
        if let Event::Removed { kid, .. } | Event::Revoked { kid, .. } = event {
            store.destroy_key(kid)?;
        }
    }
    if !events.is_empty() {
        journal.record(now, &events);
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
    // 1. Retired keys whose tokens have all expired leave the JWKS, and so does a standby of
    //    an algorithm no longer configured (it never signed; one of the new algorithm replaces
    //    it below).
    let withdraw = should_withdraw(set, schedule);
    set.keys.retain(|k| {
        let gone = should_remove(k, now) || (withdraw && k.is_prepared());
        if gone {
            events.push(Event::Removed {
                kid: k.kid.clone(),
                alg: k.alg,
            });
        }
        !gone
    });

    // 2. Always have a signing key: with none signing and none waiting, make one. It may sign
    //    at once (a fresh store, or the signing key was revoked with no standby) unless other
    //    replicas sign: verifiers then hold JWKS documents without it, and the others serve
    //    while it waits a full lead (a replica joining a running cluster).
    let first_key = set.keys.is_empty() && set.revoked.is_empty();
    let others_sign = set.active().is_none() && others_sign(store)?;
    if set.active().is_none() && set.prepared().is_none() {
        let lead = schedule.prepare_lead().as_secs();
        let activate_at = if others_sign { now + lead } else { now };
        prepare(store, schedule, set, now, activate_at, events)?;
    }

    // 3. Hand over once the standby is due (or at once if no key signs, here or elsewhere).
    if should_activate(set, now, others_sign) {
        hand_over(set, schedule, now, first_key && !others_sign, events);
    }

    // 4. Publish the next standby as soon as the signing key has none.
    if let Some(activate_at) = should_prepare(set, schedule, now) {
        prepare(store, schedule, set, now, activate_at, events)?;
    }
    Ok(())
}

/// Whether a run at `now` may change `set` (the same predicates as [`step`], erring towards
/// yes: [`step`] decides under the lock).
fn anything_due(set: &KeySet, schedule: &Schedule, now: u64) -> bool {
    set.active().is_none()
        || set.keys.iter().any(|k| should_remove(k, now))
        || should_withdraw(set, schedule)
        || should_activate(set, now, false)
        || should_prepare(set, schedule, now).is_some()
}

/// Whether another replica sharing the store has a key signing.
fn others_sign(store: &dyn KeyStore) -> Result<bool> {
    Ok(store.peer_keys()?.iter().any(|p| p.key.is_active()))
}

/// The lifecycle of a replica that lost its lease at `lapsed_at`, run by another replica at
/// `now`. A replica signs only while it holds its lease, so its signing key signed nothing
/// after `lapsed_at`: it retires as of then and leaves the JWKS a tail later. Its standby never
/// signed and leaves at once; retired keys leave when due. Pure: the caller saves the set (its
/// private keys are on the lost replica, which sweeps them if it comes back).
pub fn reap(set: &mut KeySet, lapsed_at: u64, schedule: &Schedule, now: u64) -> Vec<Event> {
    let mut events = Vec::new();
    let remove_at = lapsed_at.saturating_add(schedule.retire_tail().as_secs());
    for k in &mut set.keys {
        retire(k, lapsed_at, remove_at, &mut events);
    }
    set.keys.retain(|k| {
        let gone = k.is_prepared() || should_remove(k, now);
        if gone {
            events.push(Event::Removed {
                kid: k.kid.clone(),
                alg: k.alg,
            });
        }
        !gone
    });
    events
}

/// A signing key `k` stops signing at `retired_at` and leaves the JWKS at `remove_at`; any
/// other key is left as it is.
fn retire(k: &mut KeyRecord, retired_at: u64, remove_at: u64, events: &mut Vec<Event>) {
    if let KeyState::Active { activated_at } = k.state {
        k.state = KeyState::Retired {
            activated_at,
            retired_at,
            remove_at,
        };
        events.push(Event::Retired {
            kid: k.kid.clone(),
            alg: k.alg,
            remove_at,
        });
    }
}

/// The standby signs from `now`; the key signing until now (if any) retires. `first_key`: the
/// store had never published a key, so no verifier can hold an older JWKS.
fn hand_over(
    set: &mut KeySet,
    schedule: &Schedule,
    now: u64,
    first_key: bool,
    events: &mut Vec<Event>,
) {
    let remove_at = now + schedule.retire_tail().as_secs();
    let lead = schedule.prepare_lead().as_secs();
    for k in &mut set.keys {
        match k.state {
            KeyState::Active { .. } => retire(k, now, remove_at, events),
            KeyState::Prepared { .. } => {
                k.state = KeyState::Active { activated_at: now };
                events.push(Event::Activated {
                    kid: k.kid.clone(),
                    alg: k.alg,
                    published_at: k.published_at,
                    early: !first_key && now < k.published_at + lead,
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
    let record = KeyRecord {
        kid: svctoken_jwks::thumbprint(&jwk)?,
        alg: schedule.algorithm,
        state: KeyState::Prepared { activate_at },
        public: jwk,
        published_at: now,
    };
    events.push(Event::Prepared {
        kid: record.kid.clone(),
        alg: record.alg,
        activate_at,
    });
    set.keys.push(record);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

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

    fn active_kid(store: &MemoryStore) -> String {
        store
            .load()
            .expect("load")
            .active()
            .expect("active")
            .kid
            .clone()
    }

    fn standby_kid(store: &MemoryStore) -> String {
        store
            .load()
            .expect("load")
            .prepared()
            .expect("standby")
            .kid
            .clone()
    }

    /// A store at T0: an active key and its standby, both published at T0; and their kids.
    fn bootstrapped() -> (MemoryStore, String, String) {
        let store = MemoryStore::new();
        rotate(&store, &schedule(), T0, &()).expect("bootstrap");
        let (active, standby) = (active_kid(&store), standby_kid(&store));
        (store, active, standby)
    }

    /// Drops the standby as a key set written before standbys existed would lack it.
    fn without_standby(store: &MemoryStore) {
        let _lock = store.lock().expect("lock");
        let mut set = store.load().expect("load");
        set.keys.retain(|k| !k.is_prepared());
        store.save(&mut set).expect("save");
    }

    fn prepared(kid: &str, activate_at: u64) -> Event {
        Event::Prepared {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            activate_at,
        }
    }

    fn activated(kid: &str, published_at: u64, early: bool) -> Event {
        Event::Activated {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            published_at,
            early,
        }
    }

    fn retired(kid: &str, remove_at: u64) -> Event {
        Event::Retired {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            remove_at,
        }
    }

    /// The kid of the key an event at `index` names (for keys the test could not know).
    fn kid_at(events: &[Event], index: usize) -> String {
        events.get(index).expect("event").kid().to_owned()
    }

    #[test]
    fn a_fresh_store_gets_an_active_key_and_a_standby_and_rotate_is_idempotent() {
        let store = MemoryStore::new();
        let events = rotate(&store, &schedule(), T0, &()).expect("rotate");
        let (first, standby) = (kid_at(&events, 0), kid_at(&events, 2));
        assert_eq!(
            events,
            [
                prepared(&first, T0),
                activated(&first, T0, false),
                prepared(&standby, T0 + 3600),
            ],
            "the first key signs at once (no verifier can hold an older JWKS); its standby \
             is published with it"
        );
        assert_eq!(states(&store), ["active", "prepared"]);
        let set = store.load().expect("load");
        assert_eq!(rotate(&store, &schedule(), T0, &()).expect("again"), vec![]);
        assert_eq!(
            store.load().expect("load"),
            set,
            "nothing saved the second time"
        );
    }

    #[test]
    fn the_standby_takes_over_at_the_end_of_the_period_and_is_replaced_at_once() {
        let s = schedule();
        let (store, first, standby) = bootstrapped();
        let tail = s.retire_tail().as_secs(); // 605

        // The standby waits out the period, published all along.
        assert_eq!(rotate(&store, &s, T0 + 3599, &()).expect("rotate"), vec![]);
        let events = rotate(&store, &s, T0 + 3600, &()).expect("rotate");
        let next = kid_at(&events, 2);
        assert_eq!(
            events,
            [
                retired(&first, T0 + 3600 + tail),
                activated(&standby, T0, false),
                prepared(&next, T0 + 7200),
            ]
        );
        // Steady state: the signing key, its standby, and the retired key during its tail.
        assert_eq!(states(&store), ["retired", "active", "prepared"]);
        assert!(
            store.signing_key(&first).is_ok(),
            "private key kept while published"
        );

        assert_eq!(
            rotate(&store, &s, T0 + 3600 + tail - 1, &()).expect("rotate"),
            vec![]
        );
        let events = rotate(&store, &s, T0 + 3600 + tail, &()).expect("rotate");
        assert_eq!(
            events,
            vec![Event::Removed {
                kid: first.clone(),
                alg: Algorithm::ES256
            }]
        );
        assert!(
            store.signing_key(&first).is_err(),
            "private key destroyed after removal"
        );
        assert_eq!(states(&store), ["active", "prepared"]);
    }

    #[test]
    fn a_late_timer_hands_over_at_once_to_a_standby_published_long_ago() {
        let s = schedule();
        let (store, first, standby) = bootstrapped();
        // The issuer was down past the period's end: the standby, published at T0, takes over
        // on the first run, and its own standby signs a full period later.
        let late = T0 + 5000;
        let events = rotate(&store, &s, late, &()).expect("rotate");
        let next = kid_at(&events, 2);
        assert_eq!(
            events,
            [
                retired(&first, late + 605),
                activated(&standby, T0, false),
                prepared(&next, late + 3600),
            ]
        );
    }

    #[test]
    fn rotate_now_hands_over_once_the_standby_has_a_full_lead() {
        let s = schedule();
        let (store, first, standby) = bootstrapped();
        // The first key signs since T0: a rotation "just happened".
        assert_eq!(
            rotate_now(&store, &s, T0 + 10, &()).expect("rotate"),
            vec![]
        );

        // The standby has been published 100 s (lead 65 s): it takes over at once.
        let events = rotate_now(&store, &s, T0 + 100, &()).expect("rotate now");
        let next = kid_at(&events, 2);
        assert_eq!(
            events,
            [
                retired(&first, T0 + 100 + 605),
                activated(&standby, T0, false),
                prepared(&next, T0 + 3700),
            ]
        );
        assert_eq!(
            rotate_now(&store, &s, T0 + 101, &()).expect("again"),
            vec![],
            "running it twice rotates once"
        );

        // A standby only 20 s old (the previous one was revoked) is moved to sign once it has
        // its full lead, not at once.
        revoke(&store, &s, &next, T0 + 200, &()).expect("revoke the standby");
        let fresh = standby_kid(&store);
        let events = rotate_now(&store, &s, T0 + 220, &()).expect("rotate now");
        assert_eq!(
            events,
            vec![Event::Rescheduled {
                kid: fresh.clone(),
                alg: Algorithm::ES256,
                activate_at: T0 + 265
            }]
        );
        assert_eq!(
            rotate_now(&store, &s, T0 + 230, &()).expect("again"),
            vec![]
        );
        assert_eq!(rotate(&store, &s, T0 + 264, &()).expect("rotate"), vec![]);
        let events = rotate(&store, &s, T0 + 265, &()).expect("rotate");
        assert!(
            events.contains(&activated(&fresh, T0 + 200, false)),
            "{events:?}"
        );
    }

    #[test]
    fn rotate_now_without_a_standby_publishes_one_to_sign_a_lead_later() {
        let s = schedule();
        let (store, ..) = bootstrapped();
        without_standby(&store);
        let events = rotate_now(&store, &s, T0 + 1000, &()).expect("rotate now");
        let standby = kid_at(&events, 0);
        assert_eq!(
            events,
            [
                prepared(&standby, T0 + 3600),
                Event::Rescheduled {
                    kid: standby.clone(),
                    alg: Algorithm::ES256,
                    activate_at: T0 + 1065
                }
            ]
        );
    }

    #[test]
    fn revoking_the_signing_key_hands_over_to_the_standby_at_once() {
        let s = schedule();
        let (store, first, standby) = bootstrapped();
        let revoked = revoke(&store, &s, &first, T0 + 100, &()).expect("revoke");
        assert_eq!(revoked.revocation.trusted_until, T0 + 100 + 60);
        assert_eq!(revoked.was, KeyState::Active { activated_at: T0 });
        assert_eq!(
            revoked.successor,
            Some(Successor {
                kid: standby.clone(),
                published_at: T0,
                was_standby: true
            })
        );
        assert_eq!(
            revoked.rejections_until(&s),
            None,
            "every caching verifier holds the standby"
        );
        let next = kid_at(&revoked.events, 2);
        assert_eq!(
            revoked.events,
            [
                Event::Revoked {
                    kid: first.clone(),
                    alg: Algorithm::ES256,
                    was: KeyState::Active { activated_at: T0 },
                    trusted_until: T0 + 160
                },
                activated(&standby, T0, false),
                prepared(&next, T0 + 100 + 3600),
            ]
        );
        let set = store.load().expect("load");
        assert!(set.get(&first).is_none());
        assert_eq!(set.revoked.len(), 1);
        assert!(
            store.signing_key(&first).is_err(),
            "revoked private key destroyed"
        );
        assert!(matches!(
            revoke(&store, &s, "nope", T0 + 101, &()),
            Err(Error::UnknownKey(_))
        ));
    }

    #[test]
    fn revoking_the_signing_key_with_a_new_or_no_standby_reports_rejections() {
        let s = schedule();
        // The standby was published 20 s before: verifiers that cached the JWKS before it may
        // reject its tokens until it has had its lead.
        let (store, first, standby) = bootstrapped();
        let revoked = revoke(&store, &s, &first, T0 + 20, &()).expect("revoke");
        assert_eq!(revoked.rejections_until(&s), Some(T0 + 65));
        assert!(revoked.events.contains(&activated(&standby, T0, true)));

        // No standby: a new key is made and signs at once.
        let (store, first, _) = bootstrapped();
        without_standby(&store);
        let revoked = revoke(&store, &s, &first, T0 + 500, &()).expect("revoke");
        let made = kid_at(&revoked.events, 1);
        assert_eq!(
            revoked.successor,
            Some(Successor {
                kid: made.clone(),
                published_at: T0 + 500,
                was_standby: false
            })
        );
        assert_eq!(revoked.rejections_until(&s), Some(T0 + 565));
        assert_eq!(
            revoked.events[1..3],
            [prepared(&made, T0 + 500), activated(&made, T0 + 500, true)]
        );
        assert!(
            store.load().expect("load").prepared().is_some(),
            "and a standby"
        );
    }

    #[test]
    fn revoking_the_standby_or_a_retired_key_changes_no_signer() {
        let s = schedule();
        let (store, first, standby) = bootstrapped();
        let revoked = revoke(&store, &s, &standby, T0 + 30, &()).expect("revoke");
        assert_eq!(revoked.successor, None);
        assert_eq!(revoked.rejections_until(&s), None);
        let next = kid_at(&revoked.events, 1);
        assert_eq!(
            revoked.events[1..],
            [prepared(&next, T0 + 3600)],
            "a new standby, on the same schedule"
        );
        assert_eq!(active_kid(&store), first);

        rotate(&store, &s, T0 + 3600, &()).expect("rotate");
        let revoked = revoke(&store, &s, &first, T0 + 3700, &()).expect("revoke retired");
        assert!(matches!(revoked.was, KeyState::Retired { .. }));
        assert_eq!(revoked.events.len(), 1, "{:?}", revoked.events);
        assert_eq!(revoked.successor, None);
        assert_eq!(active_kid(&store), next);
    }

    #[test]
    fn an_algorithm_change_replaces_the_standby_at_once() {
        let (store, _, old_standby) = bootstrapped();
        let eddsa = Schedule {
            algorithm: Algorithm::EdDSA,
            ..schedule()
        };
        let events = rotate(&store, &eddsa, T0 + 1, &()).expect("rotate");
        let next = kid_at(&events, 1);
        assert_eq!(
            events,
            [
                Event::Removed {
                    kid: old_standby,
                    alg: Algorithm::ES256
                },
                Event::Prepared {
                    kid: next.clone(),
                    alg: Algorithm::EdDSA,
                    activate_at: T0 + 66
                }
            ]
        );
        rotate(&store, &eddsa, T0 + 66, &()).expect("rotate");
        let set = store.load().expect("load");
        assert_eq!(set.active().expect("active").alg, Algorithm::EdDSA);
        assert_eq!(set.prepared().expect("standby").alg, Algorithm::EdDSA);
    }

    #[test]
    fn revoking_the_signing_key_during_an_algorithm_change_still_uses_the_standby() {
        let (store, first, standby) = bootstrapped();
        let eddsa = Schedule {
            algorithm: Algorithm::EdDSA,
            ..schedule()
        };
        let revoked = revoke(&store, &eddsa, &first, T0 + 100, &()).expect("revoke");
        assert_eq!(
            revoked.successor.map(|s| (s.kid, s.was_standby)),
            Some((standby, true))
        );
        let set = store.load().expect("load");
        assert_eq!(set.prepared().expect("standby").alg, Algorithm::EdDSA);
    }

    /// One call of a journal: its time, its events, and the key signing in the store then.
    type Call = (u64, Vec<Event>, Option<String>);

    /// Keeps what it is given, and what the store held when it was given it.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<Call>>,
        store: MemoryStore,
    }

    impl Journal for Recorder {
        fn record(&self, now: u64, events: &[Event]) {
            let active = self
                .store
                .load()
                .expect("load")
                .active()
                .map(|k| k.kid.clone());
            self.calls.borrow_mut().push((now, events.to_vec(), active));
        }
    }

    #[test]
    fn the_journal_gets_every_change_once_after_it_was_saved() {
        let s = schedule();
        let journal = Recorder::default();
        let store = journal.store.clone();
        let bootstrap = rotate(&store, &s, T0, &journal).expect("rotate");
        rotate(&store, &s, T0 + 10, &journal).expect("nothing to do");
        let revoked = revoke(&store, &s, &active_kid(&store), T0 + 100, &journal).expect("revoke");
        let calls = journal.calls.borrow();
        assert_eq!(calls.len(), 2, "a run that changed nothing records nothing");
        assert_eq!(calls[0].0, T0);
        assert_eq!(calls[0].1, bootstrap);
        assert_eq!(calls[1].0, T0 + 100);
        assert_eq!(calls[1].1, revoked.events);
        assert_eq!(
            calls[1].2.as_deref(),
            Some(kid_at(&revoked.events, 1).as_str()),
            "the store already holds the change when it is recorded"
        );
    }

    #[test]
    fn audit_events_name_the_key_its_algorithm_and_the_times_never_key_material() {
        use crate::audit::{ChangedBy, KeyChange, KeyRole, Outcome};
        let (store, kid, _) = bootstrapped();
        let public = store
            .load()
            .expect("load")
            .active()
            .expect("active")
            .public
            .clone();
        let revoked = revoke(&store, &schedule(), &kid, T0 + 100, &()).expect("revoke");
        let event = revoked.events[0].audit_event(T0 + 100, ChangedBy::Cli);
        assert_eq!(event.outcome, Outcome::Lifecycle);
        assert_eq!(event.time, T0 + 100);
        assert_eq!(event.kid.as_deref(), Some(kid.as_str()));
        let lifecycle = event.lifecycle.clone().expect("lifecycle");
        assert_eq!(
            lifecycle.change,
            KeyChange::Revoked {
                was: KeyRole::Active,
                trusted_until: T0 + 160
            }
        );
        assert_eq!(lifecycle.by, ChangedBy::Cli);
        assert_eq!(lifecycle.alg, Algorithm::ES256);
        let line = serde_json::to_string(&event).expect("json");
        for value in [&public.x, &public.y, &public.n].into_iter().flatten() {
            assert!(!line.contains(value.as_str()), "{line}");
        }
    }
}
