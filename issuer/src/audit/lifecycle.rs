//! [`Lifecycle`]: what an audit line about a signing key (rather than a token request) says.
//!
//! A key's change is recorded as an event with `outcome` `"lifecycle"`, the key's id in `kid`,
//! and a `lifecycle` object: the change with the times it involves, who made it, and the key's
//! algorithm. Every member is a typed enum or a number, so nothing a caller sent, and no key
//! material, can reach it:
//!
//! ```text
//! {"seq":7,"prev":"…","time":"2027-01-15T09:00:00Z","outcome":"lifecycle","kid":"Xb3…",
//!  "lifecycle":{"change":"activated","published_at":1800000000,"early":false,"by":"timer","alg":"ES256"}}
//! ```

use serde::{Deserialize, Serialize};
use svctoken_jwks::Algorithm;

/// One change in a signing key's life, with who made it and the key's algorithm. The key's id
/// is the event's `kid` and the moment of the change is its `time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// What changed, with the times involved.
    #[serde(flatten)]
    pub change: KeyChange,
    /// Who made the change.
    pub by: ChangedBy,
    /// The algorithm the key is pinned to.
    pub alg: Algorithm,
}

/// What happened to a key. Times are seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum KeyChange {
    /// Published (in the JWKS), not signing yet.
    Prepared {
        /// When it is due to start signing.
        activate_at: u64,
    },
    /// A published key's start was moved (`svctoken keys rotate`).
    Rescheduled {
        /// When it is now due to start signing.
        activate_at: u64,
    },
    /// Started signing.
    Activated {
        /// When it was published.
        published_at: u64,
        /// True when it was published less than `jwks_max_age` + 5 s before: verifiers holding
        /// an older cached JWKS may reject its tokens until their cache expires.
        early: bool,
    },
    /// Stopped signing; stays published until every token it signed has expired.
    Retired {
        /// When it leaves the JWKS.
        remove_at: u64,
    },
    /// Left the JWKS at the end of its life; its private key was destroyed.
    Removed,
    /// Removed from the JWKS at once, in an emergency; its private key was destroyed.
    Revoked {
        /// The state it was in.
        was: KeyRole,
        /// Until when verifiers caching the JWKS may still trust it.
        trusted_until: u64,
    },
}

/// The state a key was in when it was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Published and waiting to sign (the standby).
    Prepared,
    /// Signing.
    Active,
    /// Published after it stopped signing.
    Retired,
}

/// Who changed a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangedBy {
    /// The running issuer's lifecycle (including its first run at start-up).
    Timer,
    /// A `svctoken` command (`keys rotate`, `keys revoke`, or one that opens the key store and
    /// brings it up to date: `mint`, `convex-config`).
    Cli,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_change_is_written_flat_with_its_times() {
        let table = [
            (
                KeyChange::Prepared { activate_at: 5 },
                serde_json::json!({"change": "prepared", "activate_at": 5}),
            ),
            (
                KeyChange::Rescheduled { activate_at: 6 },
                serde_json::json!({"change": "rescheduled", "activate_at": 6}),
            ),
            (
                KeyChange::Activated {
                    published_at: 1,
                    early: true,
                },
                serde_json::json!({"change": "activated", "published_at": 1, "early": true}),
            ),
            (
                KeyChange::Retired { remove_at: 9 },
                serde_json::json!({"change": "retired", "remove_at": 9}),
            ),
            (KeyChange::Removed, serde_json::json!({"change": "removed"})),
            (
                KeyChange::Revoked {
                    was: KeyRole::Active,
                    trusted_until: 7,
                },
                serde_json::json!({"change": "revoked", "was": "active", "trusted_until": 7}),
            ),
        ];
        for (change, mut expected) in table {
            let lifecycle = Lifecycle {
                change,
                by: ChangedBy::Cli,
                alg: Algorithm::RS256,
            };
            let value = serde_json::to_value(&lifecycle).unwrap();
            let object = expected.as_object_mut().unwrap();
            object.insert("by".into(), "cli".into());
            object.insert("alg".into(), "RS256".into());
            assert_eq!(value, expected);
            assert_eq!(
                serde_json::from_value::<Lifecycle>(value).unwrap(),
                lifecycle
            );
        }
    }
}
