//! [`Actor`]: the delegation chain of a token (the JWT `act` claim), as the trail records it.

use serde::{Deserialize, Serialize};

use super::scrub::scrubbed_str;

/// How deeply nested an `act` chain may be; deeper actors are dropped.
pub(super) const MAX_ACT_DEPTH: usize = 16;

/// The actor of a delegated token (the JWT `act` claim, RFC 8693): `sub` acts on behalf of the
/// token's subject, and `act`, if any, is the actor `sub` itself acted for. Serialised as
/// `{"sub": ..., "act": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's subject, e.g. `svc:billing`.
    #[serde(serialize_with = "scrubbed_str")]
    pub sub: String,
    /// The prior actor in the delegation chain (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// An actor with no prior actor.
    pub fn new(sub: impl Into<String>) -> Self {
        Actor {
            sub: sub.into(),
            act: None,
        }
    }

    /// A delegation chain, current actor first; `None` if `subs` is empty. At most 16 actors
    /// are kept.
    pub fn chain<I, S>(subs: I) -> Option<Actor>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let subs: Vec<String> = subs
            .into_iter()
            .take(MAX_ACT_DEPTH)
            .map(Into::into)
            .collect();
        subs.into_iter().rev().fold(None, |inner, sub| {
            Some(Actor {
                sub,
                act: inner.map(Box::new),
            })
        })
    }

    /// Reads an `act` claim: the `sub` of each nested `act` object, every other member ignored
    /// (so nothing else in the claim can reach the audit trail). `None` if the value has no
    /// string `sub`; the chain stops at the first level without one, and after 16 levels.
    pub fn from_claim(claim: &serde_json::Value) -> Option<Actor> {
        let mut subs = Vec::new();
        let mut level = Some(claim);
        while let Some(value) = level {
            if subs.len() == MAX_ACT_DEPTH {
                break;
            }
            let Some(sub) = value.get("sub").and_then(serde_json::Value::as_str) else {
                break;
            };
            subs.push(sub.to_owned());
            level = value.get("act");
        }
        Actor::chain(subs)
    }

    /// The subjects of the chain, current actor first.
    pub fn subjects(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut next = self.act.as_deref();
        while let Some(actor) = next {
            out.push(actor.sub.as_str());
            next = actor.act.as_deref();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn actor_from_claim_keeps_only_subjects() {
        let claim = serde_json::json!({
            "sub": "svc:billing",
            "token": "eyJ...",
            "act": {"sub": "svc:gateway", "secret": "x", "act": {"nosub": true}}
        });
        let actor = Actor::from_claim(&claim).unwrap();
        assert_eq!(actor.subjects(), ["svc:billing", "svc:gateway"]);
        assert_eq!(
            serde_json::to_value(&actor).unwrap(),
            serde_json::json!({"sub": "svc:billing", "act": {"sub": "svc:gateway"}})
        );
        assert_eq!(Actor::from_claim(&serde_json::json!("svc:x")), None);
        assert_eq!(Actor::chain(Vec::<String>::new()), None);
        let mut deep = serde_json::json!({"sub": "s0"});
        for i in 1..40 {
            deep = serde_json::json!({"sub": format!("s{i}"), "act": deep});
        }
        assert_eq!(
            Actor::from_claim(&deep).unwrap().subjects().len(),
            MAX_ACT_DEPTH
        );
    }
}
