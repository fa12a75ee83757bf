//! The actor chain of a delegated token: the JWT `act` claim (RFC 8693 section 4.1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The deepest chain of actors a token may carry (the service acting now included).
pub const MAX_ACTOR_DEPTH: usize = 4;

/// The longest subject, in bytes, svctoken accepts or mints.
pub const MAX_SUBJECT_LEN: usize = 256;

/// Checks a subject svctoken would act for or put in `act`: 1 to 256 bytes, no control
/// characters (C0, DEL, C1) and no bidirectional formatting characters (Unicode's
/// `Bidi_Control`: the embeddings, overrides, isolates and marks), which would make a subject
/// read differently from what it is wherever it is shown: `user:\u{202E}24` displays as
/// `user:42`. The same rule holds for `subject=` in a request, a subject token's `sub`, and
/// every `sub` of an `act` chain.
pub fn check_subject(subject: &str) -> Result<(), &'static str> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
        return Err("a subject is 1 to 256 bytes long");
    }
    if subject.chars().any(char::is_control) {
        return Err("a subject has no control characters");
    }
    if subject.chars().any(is_bidi_control) {
        return Err("a subject has no bidirectional formatting characters");
    }
    Ok(())
}

/// Whether `c` has the Unicode property `Bidi_Control`.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Who acts: `sub` acts on behalf of the token's subject, and `act`, if any, is the actor `sub`
/// itself acted for (newest first). Serialised as the JWT claim `{"sub": ..., "act": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's subject, e.g. `svc:billing`.
    pub sub: String,
    /// The prior actor in the delegation chain.
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

    /// `sub` acting now, on top of the chain `prior` (the `act` of the token being exchanged).
    pub fn on_top_of(sub: impl Into<String>, prior: Option<Actor>) -> Self {
        Actor {
            sub: sub.into(),
            act: prior.map(Box::new),
        }
    }

    /// A chain, current actor first; `None` if `subs` is empty.
    pub fn chain<I, S>(subs: I) -> Option<Actor>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let subs: Vec<String> = subs.into_iter().map(Into::into).collect();
        subs.into_iter()
            .rev()
            .fold(None, |prior, sub| Some(Actor::on_top_of(sub, prior)))
    }

    /// Reads an `act` claim strictly: an object whose `sub` is a string passing
    /// [`check_subject`], whose `act`, if present, is such an object too, at most
    /// [`MAX_ACTOR_DEPTH`] deep. Other members (RFC 8693 allows them) are dropped.
    pub fn from_claim(claim: &Value) -> Result<Actor> {
        let mut subs = Vec::new();
        let mut level = Some(claim);
        while let Some(value) = level {
            if subs.len() == MAX_ACTOR_DEPTH {
                return Err(Error::InvalidActor("the chain of actors is too long"));
            }
            let object = value
                .as_object()
                .ok_or(Error::InvalidActor("act is not an object"))?;
            let sub = object
                .get("sub")
                .and_then(Value::as_str)
                .ok_or(Error::InvalidActor("act has no string sub"))?;
            check_subject(sub).map_err(Error::InvalidActor)?;
            subs.push(sub);
            level = object.get("act");
        }
        Actor::chain(subs).ok_or(Error::InvalidActor("act is empty"))
    }

    /// How many actors the chain holds (1 for a single actor).
    pub fn depth(&self) -> usize {
        self.subjects().count()
    }

    /// The subjects of the chain, current actor first.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(self), |a| a.act.as_deref()).map(|a| a.sub.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_act_claims_strictly() {
        let nested = json!({"sub": "svc:b", "iss": "x", "act": {"sub": "svc:a"}});
        let actor = Actor::from_claim(&nested).expect("valid");
        assert_eq!(actor.subjects().collect::<Vec<_>>(), ["svc:b", "svc:a"]);
        assert_eq!(
            serde_json::to_value(&actor).expect("json"),
            json!({"sub": "svc:b", "act": {"sub": "svc:a"}}),
            "members other than sub and act are dropped"
        );
        for bad in [
            json!("svc:a"),
            json!(["svc:a"]),
            json!({"sub": 5}),
            json!({"sub": ""}),
            json!({"sub": "a\u{0}b"}),
            json!({"sub": "x".repeat(257)}),
            json!({"sub": "svc:a", "act": "svc:b"}),
            json!({"sub": "a", "act": {"sub": "b", "act": {"sub": "c", "act": {"sub": "d", "act": {"sub": "e"}}}}}),
        ] {
            assert!(Actor::from_claim(&bad).is_err(), "{bad}");
        }
        let four =
            json!({"sub": "a", "act": {"sub": "b", "act": {"sub": "c", "act": {"sub": "d"}}}});
        assert_eq!(Actor::from_claim(&four).expect("four deep").depth(), 4);
    }

    #[test]
    fn subjects_hold_no_control_or_bidirectional_formatting_characters() {
        for good in [
            "user:42",
            "svc:billing",
            "user:é",
            "user:*",
            &"a".repeat(256),
        ] {
            assert_eq!(check_subject(good), Ok(()), "{good}");
        }
        for bad in [
            String::new(),
            "a".repeat(257),
            "user:\u{0}".into(),
            "user:\n1".into(),
            "user:\u{7f}".into(),
            "user:\u{85}".into(),
            "user:\u{202E}24".into(),
            "user:\u{202A}42".into(),
            "user:\u{2067}42\u{2069}".into(),
            "user:42\u{200F}".into(),
            "user:42\u{061C}".into(),
        ] {
            assert!(check_subject(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn chains_newest_first() {
        let chain = Actor::chain(["svc:now", "svc:before"]).expect("chain");
        assert_eq!(
            chain,
            Actor::on_top_of("svc:now", Some(Actor::new("svc:before")))
        );
        assert_eq!(Actor::chain(Vec::<String>::new()), None);
    }
}
