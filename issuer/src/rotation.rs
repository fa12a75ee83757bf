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
