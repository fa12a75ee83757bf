//! The key lifecycle: Prepared -> Active -> Retired -> removed, driven by an idempotent
//! [`rotate`] that any process may run at any time.
//!
//! With JWKS `max-age` M, skew S and maximum token lifetime T:
//! - a key is published at least M + S (the *lead*) before it signs, because verifiers such as
//!   Convex never refetch the JWKS on an unknown `kid`;
//! - a retired key stays published T + S (the *tail*) after its last signature;
//! - the JWKS is served with `max-age` M, never more than the lead minus the skew.
//!
//! Every function here takes the store's lock, reads the key set, changes it and saves it
//! before destroying any private key, so a crash at any point leaves a loadable store in which
//! every published key is still published.

use std::time::Duration;

use svctoken_jwks::Algorithm;

use crate::store::{KeyRecord, KeySet, KeyState, KeyStore, Revocation};
use crate::{Error, Result};

/// Clock skew tolerated by verifiers (Convex: 5 s).
pub const SKEW: Duration = Duration::from_secs(5);

/// When keys are made, activated and removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Algorithm of new keys. Default ES256.
    pub algorithm: Algorithm,
    /// RSA modulus size for new RS256 keys. Default 2048.
    pub rsa_bits: usize,
    /// How long a key signs before the next one takes over. Default 24 h.
    pub rotation_period: Duration,
    /// The JWKS `Cache-Control: max-age`. Default 5 min.
    pub jwks_max_age: Duration,
    /// The longest lifetime of any token the issuer mints. Default 5 min.
    pub max_token_lifetime: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            algorithm: Algorithm::ES256,
            rsa_bits: 2048,
            rotation_period: Duration::from_secs(24 * 3600),
            jwks_max_age: Duration::from_secs(300),
            max_token_lifetime: Duration::from_secs(300),
        }
    }
}

impl Schedule {
    /// How long before signing a new key is published: `max-age` + skew.
    pub fn prepare_lead(&self) -> Duration {
        self.jwks_max_age + SKEW
    }

    /// How long a retired key stays published: maximum token lifetime + skew.
    pub fn retire_tail(&self) -> Duration {
        self.max_token_lifetime + SKEW
    }

    /// Refuses a schedule that can't keep its promises, saying what to change.
    pub fn validate(&self) -> Result<()> {
        if self.rotation_period < self.prepare_lead() * 2 {
            return Err(Error::Config(format!(
                "[keys] rotation_period ({}) must be at least twice jwks_max_age + 5s ({}): \
                 lengthen rotation_period or shorten jwks_max_age",
                humantime::format_duration(self.rotation_period),
                humantime::format_duration(self.prepare_lead() * 2)
            )));
        }
        if self.algorithm == Algorithm::RS256 && !svctoken_jwks::RSA_BITS.contains(&self.rsa_bits) {
            return Err(Error::Config(format!(
                "[keys] rsa_bits = {} is not offered: use 2048, 3072 or 4096",
                self.rsa_bits
            )));
        }
        Ok(())
    }
}

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
/// then runs [`rotate`]. Returns the events and the waiting key's activation time.
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
        let gone = k.state == KeyState::Retired && k.remove_at.is_some_and(|at| at <= now);
        if gone {
            events.push(Event::Removed { kid: k.kid.clone() });
        }
        !gone
    });

    // 2. Always have a signing key: promote the waiting one early, or make one.
    if set.active().is_none() {
        if set.prepared().is_none() {
            let jwk = store.create_key(schedule.algorithm, schedule.rsa_bits)?;
            set.keys
                .push(new_record(jwk, schedule.algorithm, now, now)?);
        }
        if let Some(k) = set.keys.iter_mut().find(|k| k.state == KeyState::Prepared) {
            let early = k.activate_at.is_some_and(|at| at > now);
            activate(k, now);
            events.push(Event::Activated {
                kid: k.kid.clone(),
                early,
            });
        }
    }

    let lead = schedule.prepare_lead().as_secs();
    let period = schedule.rotation_period.as_secs();
    let active = set.active().cloned().ok_or(Error::NoActiveKey)?;
    let activated_at = active.activated_at.unwrap_or(active.published_at);

    // 3. Publish the next key a lead ahead of the end of the period (or at once if the
    //    configured algorithm changed).
    if set.prepared().is_none() {
        let end_of_period = activated_at + period;
        if active.alg != schedule.algorithm {
            prepare(store, schedule, set, now, now + lead, events)?;
        } else if end_of_period.saturating_sub(lead) <= now {
            prepare(
                store,
                schedule,
                set,
                now,
                end_of_period.max(now + lead),
                events,
            )?;
        }
    }

    // 4. Hand over once the waiting key has been published for its lead and is due.
    let ready = set
        .prepared()
        .is_some_and(|p| p.activate_at.is_some_and(|at| at <= now));
    if ready {
        let tail = schedule.retire_tail().as_secs();
        for k in &mut set.keys {
            match k.state {
                KeyState::Active => {
                    k.state = KeyState::Retired;
                    k.retired_at = Some(now);
                    k.remove_at = Some(now + tail);
                    events.push(Event::Retired {
                        kid: k.kid.clone(),
                        remove_at: now + tail,
                    });
                }
                KeyState::Prepared => {
                    activate(k, now);
                    events.push(Event::Activated {
                        kid: k.kid.clone(),
                        early: false,
                    });
                }
                KeyState::Retired => {}
            }
        }
    }
    Ok(())
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
        state: KeyState::Prepared,
        public: jwk,
        published_at: now,
        activate_at: Some(activate_at),
        activated_at: None,
        retired_at: None,
        remove_at: None,
    })
}

fn activate(k: &mut KeyRecord, now: u64) {
    k.state = KeyState::Active;
    k.activated_at = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    const T0: u64 = 1_800_000_000;

    fn schedule() -> Schedule {
        Schedule {
            rotation_period: Duration::from_secs(3600),
            jwks_max_age: Duration::from_secs(60),
            max_token_lifetime: Duration::from_secs(600),
            ..Schedule::default()
        }
    }

    fn states(store: &MemoryStore) -> Vec<KeyState> {
        store
            .load()
            .expect("load")
            .keys
            .iter()
            .map(|k| k.state)
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
        assert_eq!(states(&store), [KeyState::Active, KeyState::Prepared]);
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

    #[test]
    fn a_schedule_that_cannot_keep_the_lead_is_refused() {
        let s = Schedule {
            rotation_period: Duration::from_secs(100),
            ..schedule()
        };
        assert!(s.validate().is_err());
        assert!(schedule().validate().is_ok());
    }
}
