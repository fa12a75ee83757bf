//! When keys are made, activated and removed: the [`Schedule`] and the pure threshold
//! predicates [`rotate`](super::rotate) applies. Each predicate is a function of the key set
//! (or one record), the schedule and `now`, and nothing else.
//!
//! With period P and lead L (`jwks_max_age` + 5 s), a key activated at A signs until A + P; its
//! standby is published at A (as soon as there is no standby, in general) and signs from
//! A + P, or a full lead after it was published if that is later. Since P is at least 2 L, the
//! standby has been in every caching verifier's copy of the JWKS for most of the period when it
//! takes over, ready for an emergency revocation of the signing key.

use std::time::Duration;

use svctoken_jwks::Algorithm;

use crate::store::{KeyRecord, KeySet, KeyState};
use crate::{Error, Result};

/// Clock skew tolerated by verifiers (Convex: 5 s).
pub const SKEW: Duration = Duration::from_secs(5);

/// The longest `rotation_period` or `jwks_max_age` accepted: 100 years (of 365.25 days, as
/// durations are written). Anything longer is a typo, and the lifecycle adds these durations
/// to dates.
pub const LONGEST_PERIOD: Duration = Duration::from_secs(100 * 31_557_600);

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
    /// The propagation bound P: how long until every replica serves a key another published.
    /// Default zero (one process);
    /// [`postgres::PROPAGATION`](crate::postgres::PROPAGATION) for replicas.
    pub propagation: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            algorithm: Algorithm::ES256,
            rsa_bits: 2048,
            rotation_period: Duration::from_secs(24 * 3600),
            jwks_max_age: Duration::from_secs(300),
            max_token_lifetime: Duration::from_secs(300),
            propagation: Duration::ZERO,
        }
    }
}

impl Schedule {
    /// How long before signing a new key is published: `max-age` + skew + propagation, so a
    /// key is in every replica's JWKS for a full `max-age` before it signs.
    pub fn prepare_lead(&self) -> Duration {
        self.jwks_max_age
            .saturating_add(SKEW)
            .saturating_add(self.propagation)
    }

    /// How long a retired key stays published: maximum token lifetime + skew.
    pub fn retire_tail(&self) -> Duration {
        self.max_token_lifetime.saturating_add(SKEW)
    }

    /// Refuses a schedule that can't keep its promises, saying what to change.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("rotation_period", self.rotation_period),
            ("jwks_max_age", self.jwks_max_age),
        ] {
            if value > LONGEST_PERIOD {
                return Err(Error::Config(format!(
                    "[keys] {name} ({}) is longer than {}: shorten it",
                    humantime::format_duration(value),
                    humantime::format_duration(LONGEST_PERIOD)
                )));
            }
        }
        if self.rotation_period < self.prepare_lead().saturating_mul(2) {
            let lead = if self.propagation.is_zero() {
                "jwks_max_age + 5s"
            } else {
                "jwks_max_age + 5s + the replicas' 10s propagation bound"
            };
            return Err(Error::Config(format!(
                "[keys] rotation_period ({}) must be at least twice {lead} ({}): \
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

/// Whether a new key (the standby) must be published at `now`, and if so the time it may start
/// signing.
///
/// - Never while a standby waits, nor while no key signs (the first key of a store, or the one
///   replacing a revoked key with no standby, is made to sign at once instead).
/// - Otherwise at once, so that the standby is published for as long as possible before it is
///   needed. When the signing key's algorithm is the configured one, the standby signs at the
///   end of the signing key's period, or a full lead after `now` if that is later (the
///   lifecycle ran late, or the previous standby was revoked or withdrawn). When it is not, the
///   standby signs a full lead after `now`.
pub fn should_prepare(set: &KeySet, schedule: &Schedule, now: u64) -> Option<u64> {
    if set.prepared().is_some() {
        return None;
    }
    let active = set.active()?;
    let KeyState::Active { activated_at } = active.state else {
        return None;
    };
    let lead = schedule.prepare_lead().as_secs();
    if active.alg != schedule.algorithm {
        return Some(now + lead);
    }
    let end_of_period = activated_at + schedule.rotation_period.as_secs();
    Some(end_of_period.max(now + lead))
}

/// Whether the standby must leave the JWKS unused at `now`: its algorithm is no longer the
/// configured one while another key signs (a standby of the new algorithm replaces it). With
/// no key signing it is kept: it takes over at once, and verifiers already hold it.
pub fn should_withdraw(set: &KeySet, schedule: &Schedule) -> bool {
    set.active().is_some()
        && set
            .prepared()
            .is_some_and(|standby| standby.alg != schedule.algorithm)
}

/// Whether the standby starts signing at `now`: once its activation time has come, or at once
/// when no key signs (an emergency: the signing key was revoked), unless `others_sign`: other
/// replicas sharing the store sign meanwhile, so it waits for its time.
pub fn should_activate(set: &KeySet, now: u64, others_sign: bool) -> bool {
    match set.prepared().map(|k| k.state) {
        Some(KeyState::Prepared { activate_at }) => {
            activate_at <= now || (set.active().is_none() && !others_sign)
        }
        _ => false,
    }
}

/// Whether a key leaves the JWKS at `now`: a retired key whose tokens have all expired.
pub fn should_remove(record: &KeyRecord, now: u64) -> bool {
    matches!(record.state, KeyState::Retired { remove_at, .. } if remove_at <= now)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A moment for tests: 2027-01-15.
    pub(in crate::rotation) const T0: u64 = 1_800_000_000;

    /// Period 1 h, lead 65 s, tail 605 s.
    pub(in crate::rotation) fn schedule() -> Schedule {
        Schedule {
            rotation_period: Duration::from_secs(3600),
            jwks_max_age: Duration::from_secs(60),
            max_token_lifetime: Duration::from_secs(600),
            ..Schedule::default()
        }
    }

    fn key(alg: Algorithm, state: KeyState) -> KeyRecord {
        let jwk = svctoken_jwks::SigningKey::generate(alg)
            .expect("key")
            .public_jwk()
            .clone();
        KeyRecord {
            kid: jwk.kid.clone().expect("kid"),
            alg,
            state,
            public: jwk,
            published_at: T0 - 100,
        }
    }

    fn set(keys: Vec<KeyRecord>) -> KeySet {
        KeySet {
            keys,
            ..KeySet::default()
        }
    }

    fn active(activated_at: u64) -> KeyRecord {
        key(Algorithm::ES256, KeyState::Active { activated_at })
    }

    fn prepared(activate_at: u64) -> KeyRecord {
        key(Algorithm::ES256, KeyState::Prepared { activate_at })
    }

    fn retired(remove_at: u64) -> KeyRecord {
        key(
            Algorithm::ES256,
            KeyState::Retired {
                activated_at: T0 - 3600,
                retired_at: T0,
                remove_at,
            },
        )
    }

    #[test]
    fn should_prepare_the_standby_as_soon_as_the_signing_key_has_none() {
        // Lead 65 s, period 3600 s; the active key signs from T0.
        let end = T0 + 3600;
        let eddsa = key(Algorithm::EdDSA, KeyState::Active { activated_at: T0 });
        let table: [(&str, KeySet, u64, Option<u64>); 9] = [
            ("empty store", set(vec![]), T0, None),
            ("no key signs", set(vec![retired(T0 + 9)]), end, None),
            (
                "the moment the key activates: to sign at the period's end",
                set(vec![active(T0)]),
                T0,
                Some(end),
            ),
            (
                "mid-period (the standby was revoked)",
                set(vec![active(T0)]),
                T0 + 1800,
                Some(end),
            ),
            (
                "one second before the prepare lead: still at the period's end",
                set(vec![active(T0)]),
                end - 65,
                Some(end),
            ),
            (
                "within the prepare lead: a full lead from now",
                set(vec![active(T0)]),
                end - 5,
                Some(end + 60),
            ),
            (
                "late: a full lead from now",
                set(vec![active(T0)]),
                end + 900,
                Some(end + 965),
            ),
            (
                "a standby already waits",
                set(vec![active(T0), prepared(end)]),
                T0 + 10,
                None,
            ),
            (
                "algorithm changed: a full lead from now",
                set(vec![eddsa]),
                T0 + 1,
                Some(T0 + 66),
            ),
        ];
        for (case, keys, now, expect) in table {
            assert_eq!(should_prepare(&keys, &schedule(), now), expect, "{case}");
        }
    }

    #[test]
    fn should_withdraw_only_a_standby_of_another_algorithm_while_a_key_signs() {
        let eddsa_standby = key(Algorithm::EdDSA, KeyState::Prepared { activate_at: T0 });
        let table: [(&str, KeySet, bool); 5] = [
            ("no standby", set(vec![active(T0)]), false),
            (
                "standby of the configured algorithm",
                set(vec![active(T0), prepared(T0 + 3600)]),
                false,
            ),
            (
                "standby of another algorithm",
                set(vec![active(T0), eddsa_standby.clone()]),
                true,
            ),
            (
                "no key signs: it takes over instead",
                set(vec![eddsa_standby]),
                false,
            ),
            ("empty store", set(vec![]), false),
        ];
        for (case, keys, expect) in table {
            assert_eq!(should_withdraw(&keys, &schedule()), expect, "{case}");
        }
    }

    #[test]
    fn should_activate_once_the_lead_has_passed_or_no_key_signs() {
        let table: [(&str, KeySet, u64, bool, bool); 9] = [
            (
                "nothing waits",
                set(vec![active(T0)]),
                T0 + 10_000,
                false,
                false,
            ),
            (
                "before its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 64,
                false,
                false,
            ),
            (
                "at its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 65,
                false,
                true,
            ),
            (
                "after its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 99,
                false,
                true,
            ),
            (
                "no key signs: at once",
                set(vec![prepared(T0 + 65)]),
                T0,
                false,
                true,
            ),
            (
                "no key signs here, other replicas do: it waits",
                set(vec![prepared(T0 + 65)]),
                T0,
                true,
                false,
            ),
            (
                "no key signs here, other replicas do: at its time",
                set(vec![prepared(T0 + 65)]),
                T0 + 65,
                true,
                true,
            ),
            (
                "other replicas don't change a due hand-over",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 65,
                true,
                true,
            ),
            ("empty store", set(vec![]), T0, false, false),
        ];
        for (case, keys, now, others_sign, expect) in table {
            assert_eq!(should_activate(&keys, now, others_sign), expect, "{case}");
        }
    }

    #[test]
    fn should_remove_only_retired_keys_whose_tail_has_passed() {
        let table = [
            (
                "retired, before its time",
                retired(T0 + 605),
                T0 + 604,
                false,
            ),
            ("retired, at its time", retired(T0 + 605), T0 + 605, true),
            (
                "retired, after its time",
                retired(T0 + 605),
                T0 + 9_999,
                true,
            ),
            ("active", active(T0), T0 + 1_000_000, false),
            ("prepared", prepared(T0), T0 + 1_000_000, false),
        ];
        for (case, record, now, expect) in table {
            assert_eq!(should_remove(&record, now), expect, "{case}");
        }
    }

    #[test]
    fn a_schedule_that_cannot_keep_the_lead_is_refused() {
        let s = Schedule {
            rotation_period: Duration::from_secs(100),
            ..schedule()
        };
        assert!(s.validate().is_err());
        assert!(schedule().validate().is_ok());
        let rsa = Schedule {
            algorithm: Algorithm::RS256,
            rsa_bits: 1024,
            ..schedule()
        };
        assert!(rsa.validate().is_err());
    }
}
