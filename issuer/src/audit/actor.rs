//! How an [`Actor`] chain is written to the trail: `{"sub": ..., "act": {...}}`, each `sub`
//! scrubbed and cut like every other string field.

use std::borrow::Cow;

use serde::{Serialize, Serializer};
use svctoken_mint::Actor;

use super::scrub::clean;

#[derive(Serialize)]
struct Scrubbed<'a> {
    sub: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<Box<Scrubbed<'a>>>,
}

impl<'a> Scrubbed<'a> {
    fn of(actor: &'a Actor) -> Self {
        Scrubbed {
            sub: clean(&actor.sub),
            act: actor.act.as_deref().map(|a| Box::new(Scrubbed::of(a))),
        }
    }
}

/// Serialises an event's `act`.
pub(super) fn scrubbed_actor<S: Serializer>(
    actor: &Option<Actor>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match actor {
        Some(actor) => Scrubbed::of(actor).serialize(s),
        None => s.serialize_none(),
    }
}
