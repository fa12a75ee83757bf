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

/// An event's `act`, as written.
pub(super) struct ScrubbedActor<'a>(pub(super) &'a Actor);

impl Serialize for ScrubbedActor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Scrubbed::of(self.0).serialize(s)
    }
}
