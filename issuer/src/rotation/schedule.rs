//! When keys are made, activated and removed: the [`Schedule`] and the pure threshold
//! predicates [`rotate`](super::rotate) applies. Each predicate is a function of the key set
//! (or one record), the schedule and `now`, and nothing else.

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
        self.jwks_max_age.saturating_add(SKEW)
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

/// Whether a new key must be published at `now`, and if so the time it may start signing.
///
/// - Never while a key is waiting, nor while none signs (the first key of a store, or the one
///   replacing a revoked key, is made to sign at once instead).
/// - At once when the signing key's algorithm is not the configured one: the new key signs a
///   full lead later.
/// - Otherwise from one lead before the signing key's period ends: the new key signs at the
///   period's end, or a full lead after `now` when the lifecycle runs late.
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
    (end_of_period.saturating_sub(lead) <= now).then(|| end_of_period.max(now + lead))
}

/// Whether the waiting key starts signing at `now`: once its activation time has come, or at
/// once when no key signs (an emergency: it then signs before its full lead).
pub fn should_activate(set: &KeySet, now: u64) -> bool {
    match set.prepared().map(|k| k.state) {
        Some(KeyState::Prepared { activate_at }) => activate_at <= now || set.active().is_none(),
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
    fn should_prepare_a_lead_before_the_period_ends() {
        // Lead 65 s, period 3600 s; the active key signs from T0.
        let end = T0 + 3600;
        let eddsa = key(Algorithm::EdDSA, KeyState::Active { activated_at: T0 });
        let table: [(&str, KeySet, u64, Option<u64>); 9] = [
            ("empty store", set(vec![]), T0, None),
            ("no key signs", set(vec![retired(T0 + 9)]), end, None),
            ("early in the period", set(vec![active(T0)]), T0 + 10, None),
            (
                "one second before the lead",
                set(vec![active(T0)]),
                end - 66,
                None,
            ),
            ("at the lead", set(vec![active(T0)]), end - 65, Some(end)),
            (
                "within the lead",
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
                "a key already waits",
                set(vec![active(T0), prepared(end)]),
                end,
                None,
            ),
            (
                "algorithm changed: at once",
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
    fn should_activate_once_the_lead_has_passed_or_no_key_signs() {
        let table: [(&str, KeySet, u64, bool); 6] = [
            ("nothing waits", set(vec![active(T0)]), T0 + 10_000, false),
            (
                "before its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 64,
                false,
            ),
            (
                "at its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 65,
                true,
            ),
            (
                "after its time",
                set(vec![active(T0), prepared(T0 + 65)]),
                T0 + 99,
                true,
            ),
            (
                "no key signs: at once",
                set(vec![prepared(T0 + 65)]),
                T0,
                true,
            ),
            ("empty store", set(vec![]), T0, false),
        ];
        for (case, keys, now, expect) in table {
            assert_eq!(should_activate(&keys, now), expect, "{case}");
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
