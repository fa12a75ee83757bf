//! [`AuditEvent`] and [`Outcome`]: what one line of the trail says.

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};

use svctoken_mint::Actor;

use super::actor::ScrubbedActor;
use super::lifecycle::Lifecycle;
use super::scrub::clean;

/// Whether a request got a token, or that the event is about a signing key instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A token was minted and handed out.
    Issued,
    /// The request was refused (the default, so an event built carelessly never claims a
    /// token was issued).
    #[default]
    Refused,
    /// Not a request: a signing key changed state (see [`Lifecycle`]).
    Lifecycle,
    /// Not a request: the running issuer took up a new configuration (SIGHUP); `reason` says
    /// what changed.
    Reloaded,
}

/// One audit record: a token minted, a request refused, or a signing key's change of state.
/// Absent values are omitted from the JSON. There is deliberately no field that could hold a
/// token, a secret or key material.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct AuditEvent {
    /// When, in unix seconds; written as RFC 3339 UTC (`2026-11-01T12:00:00Z`).
    #[serde(deserialize_with = "rfc3339::deserialize")]
    pub time: u64,
    /// Issued or refused.
    pub outcome: Outcome,
    /// The OAuth error code of a refusal, e.g. `invalid_client`.
    pub error: Option<String>,
    /// Why the request was refused, in detail (built from fixed text and identifiers only).
    pub reason: Option<String>,
    /// The authenticated (or claimed, for a refusal) client.
    pub client_id: Option<String>,
    /// The token's subject.
    pub sub: Option<String>,
    /// The token's audience.
    pub aud: Option<String>,
    /// The actor, when the token acts on behalf of a user.
    pub act: Option<Actor>,
    /// The granted (or requested, for a refusal) scope.
    pub scope: Option<String>,
    /// The token's id.
    pub jti: Option<String>,
    /// The id of the key that signed the token, or of the key a lifecycle event is about.
    pub kid: Option<String>,
    /// What happened to the key `kid` (lifecycle events only).
    pub lifecycle: Option<Lifecycle>,
    /// The token's expiry, in unix seconds.
    pub exp: Option<u64>,
    /// The caller's address.
    pub peer: Option<String>,
}

/// Writes the fields in their fixed order, omitting absent ones; every string scrubbed of
/// token-shaped text and cut at 1 KiB.
impl Serialize for AuditEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("time", &Rfc3339Time(self.time))?;
        map.serialize_entry("outcome", &self.outcome)?;
        let before_act = [
            ("error", &self.error),
            ("reason", &self.reason),
            ("client_id", &self.client_id),
            ("sub", &self.sub),
            ("aud", &self.aud),
        ];
        for (name, value) in before_act {
            if let Some(value) = value {
                map.serialize_entry(name, &clean(value))?;
            }
        }
        if let Some(act) = &self.act {
            map.serialize_entry("act", &ScrubbedActor(act))?;
        }
        for (name, value) in [
            ("scope", &self.scope),
            ("jti", &self.jti),
            ("kid", &self.kid),
        ] {
            if let Some(value) = value {
                map.serialize_entry(name, &clean(value))?;
            }
        }
        if let Some(lifecycle) = &self.lifecycle {
            map.serialize_entry("lifecycle", lifecycle)?;
        }
        if let Some(exp) = self.exp {
            map.serialize_entry("exp", &exp)?;
        }
        if let Some(peer) = &self.peer {
            map.serialize_entry("peer", &clean(peer))?;
        }
        map.end()
    }
}

/// Unix seconds written as RFC 3339.
struct Rfc3339Time(u64);

impl Serialize for Rfc3339Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        rfc3339::serialize(&self.0, s)
    }
}

impl AuditEvent {
    /// An issuance event at `time` (unix seconds, from the issuer's clock); fill in the rest
    /// with struct update syntax (`AuditEvent { jti: Some(..), ..AuditEvent::issued(now) }`).
    pub fn issued(time: u64) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Issued,
            ..AuditEvent::default()
        }
    }

    /// A refusal at `time` with its OAuth error code and detailed reason.
    pub fn refused(time: u64, error: impl Into<String>, reason: impl Into<String>) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Refused,
            error: Some(error.into()),
            reason: Some(reason.into()),
            ..AuditEvent::default()
        }
    }

    /// The configuration was reloaded at `time`; `changes` says what changed (names of
    /// clients, audiences and trusted issuers from the configuration, never a secret).
    pub fn reloaded(time: u64, changes: impl Into<String>) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Reloaded,
            reason: Some(changes.into()),
            ..AuditEvent::default()
        }
    }

    /// A change to the signing key `kid` at `time`.
    pub fn lifecycle(time: u64, kid: impl Into<String>, lifecycle: Lifecycle) -> Self {
        AuditEvent {
            time,
            outcome: Outcome::Lifecycle,
            kid: Some(kid.into()),
            lifecycle: Some(lifecycle),
            ..AuditEvent::default()
        }
    }
}

mod rfc3339 {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(secs: &u64, s: S) -> Result<S::Ok, S::Error> {
        let time = i64::try_from(*secs)
            .ok()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| S::Error::custom(format!("time {secs} is out of range")))?;
        if time.year() > 9999 {
            // What `time` refuses to write as RFC 3339.
            let text = time.format(&Rfc3339).map_err(S::Error::custom)?;
            return s.serialize_str(&text);
        }
        // `YYYY-MM-DDTHH:MM:SSZ`, exactly as `time` writes a whole second in UTC as RFC 3339,
        // without allocating.
        let mut text = [0u8; 20];
        let fields = [
            (0, 4, time.year().unsigned_abs()),
            (5, 2, u32::from(u8::from(time.month()))),
            (8, 2, u32::from(time.day())),
            (11, 2, u32::from(time.hour())),
            (14, 2, u32::from(time.minute())),
            (17, 2, u32::from(time.second())),
        ];
        for (at, width, mut value) in fields {
            for digit in text.iter_mut().skip(at).take(width).rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        for (at, sep) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'Z'),
        ] {
            if let Some(slot) = text.get_mut(at) {
                *slot = sep;
            }
        }
        s.serialize_str(std::str::from_utf8(&text).map_err(S::Error::custom)?)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let time = OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)?;
        u64::try_from(time.unix_timestamp())
            .map_err(|_| D::Error::custom(format!("time {text} is before 1970")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;
    use crate::audit::{ChangedBy, Error, KeyChange, StdoutSink};

    #[test]
    fn times_are_written_as_time_writes_rfc3339() {
        use time::OffsetDateTime;
        use time::format_description::well_known::Rfc3339;
        for secs in [
            0,
            59,
            951_782_400,
            1_793_534_700,
            4_102_444_799,
            253_402_300_799,
        ] {
            let line = serde_json::to_value(AuditEvent::issued(secs)).unwrap();
            let expected = OffsetDateTime::from_unix_timestamp(secs as i64)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(line["time"], expected, "{secs}");
        }
    }

    #[test]
    fn the_field_set_is_exactly_the_audit_fields() {
        let full = AuditEvent {
            time: 1,
            outcome: Outcome::Refused,
            error: Some("invalid_grant".into()),
            reason: Some("r".into()),
            client_id: Some("c".into()),
            sub: Some("s".into()),
            aud: Some("a".into()),
            act: Actor::chain(["svc:billing", "svc:gateway"]),
            scope: Some("x".into()),
            jti: Some("j".into()),
            kid: Some("k".into()),
            lifecycle: Some(Lifecycle {
                change: KeyChange::Removed,
                by: ChangedBy::Timer,
                alg: svctoken_jwks::Algorithm::ES256,
            }),
            exp: Some(2),
            peer: Some("p".into()),
        };
        let value = serde_json::to_value(&full).unwrap();
        let keys: BTreeSet<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "time",
            "outcome",
            "error",
            "reason",
            "client_id",
            "sub",
            "aud",
            "act",
            "scope",
            "jti",
            "kid",
            "lifecycle",
            "exp",
            "peer",
        ]
        .into();
        assert_eq!(keys, expected);
        assert_eq!(
            value["act"],
            serde_json::json!({"sub": "svc:billing", "act": {"sub": "svc:gateway"}})
        );
        // Nothing named like a credential, at any depth.
        let text = serde_json::to_string(&full).unwrap().to_lowercase();
        for word in [
            "token",
            "secret",
            "password",
            "assertion",
            "authorization",
            "key\"",
        ] {
            assert!(!text.contains(word), "{word} in {text}");
        }
        // Absent values are omitted, not null.
        let bare = serde_json::to_value(AuditEvent::default()).unwrap();
        assert_eq!(
            bare,
            serde_json::json!({"time": "1970-01-01T00:00:00Z", "outcome": "refused"})
        );
    }

    #[test]
    fn time_is_rfc3339_utc_seconds() {
        let now = AuditEvent::issued(1_793_534_400);
        assert!(now.time > 1_700_000_000);
        let value = serde_json::to_value(&now).unwrap();
        let text = value["time"].as_str().unwrap();
        assert_eq!(text.len(), 20, "{text}");
        assert!(text.ends_with('Z'));
        let far = AuditEvent {
            time: u64::MAX,
            ..AuditEvent::default()
        };
        assert!(matches!(
            StdoutSink::format_line(&far),
            Err(Error::AuditEncode(_))
        ));
    }
}
