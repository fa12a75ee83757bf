//! The running issuer's view of its keys: the signer the [`Minter`](svctoken_mint::Minter) uses and the
//! JWKS documents it serves, both swapped atomically when the key set changes.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use svctoken_jwks::{Jwks, SigningKey};

use crate::rotation::{self, Event, Journal, Schedule};
use crate::store::{KeySet, KeyState, KeyStore};
use crate::{Audience, Error, Result};

/// A JWKS document rendered once per key-set change.
#[derive(Clone, Debug)]
pub struct RenderedJwks {
    /// The keys.
    pub jwks: Jwks,
    /// Its JSON, as served.
    pub body: Arc<str>,
    /// Its strong `ETag` (quoted).
    pub etag: Arc<str>,
}

impl RenderedJwks {
    fn new(jwks: Jwks) -> Self {
        let body = jwks.to_json();
        let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
        RenderedJwks {
            jwks,
            body: body.into(),
            etag: etag.into(),
        }
    }
}

/// What is published right now.
#[derive(Debug)]
pub struct Published {
    /// The key set as stored.
    pub set: KeySet,
    /// Every published key.
    pub all: RenderedJwks,
    /// Per audience name: only the keys its profile can parse.
    pub by_audience: HashMap<String, RenderedJwks>,
}

impl Published {
    /// The JWKS for an audience, or all keys for `None`.
    pub fn jwks(&self, audience: Option<&str>) -> Option<&RenderedJwks> {
        match audience {
            None => Some(&self.all),
            Some(name) => self.by_audience.get(name),
        }
    }
}

/// The key ring of a running issuer.
pub struct KeyRing {
    store: Arc<dyn KeyStore>,
    schedule: Schedule,
    audiences: Vec<Audience>,
    signer: Arc<ArcSwap<SigningKey>>,
    published: ArcSwap<Published>,
}

impl KeyRing {
    /// Opens the key ring: runs the lifecycle once at `now` (creating the first key and its
    /// standby on an empty store), recording what changed in `journal`, and loads the active
    /// key.
    pub fn open(
        store: Arc<dyn KeyStore>,
        schedule: Schedule,
        audiences: Vec<Audience>,
        now: u64,
        journal: &dyn Journal,
    ) -> Result<KeyRing> {
        rotation::rotate(store.as_ref(), &schedule, now, journal)?;
        let set = store.load()?;
        let signer = Arc::new(ArcSwap::from_pointee(load_active(store.as_ref(), &set)?));
        let published = ArcSwap::from_pointee(render(set, &audiences));
        Ok(KeyRing {
            store,
            schedule,
            audiences,
            signer,
            published,
        })
    }

    /// The active signing key, shared with the minter.
    pub fn signer(&self) -> Arc<ArcSwap<SigningKey>> {
        self.signer.clone()
    }

    /// What is published now.
    pub fn published(&self) -> arc_swap::Guard<Arc<Published>> {
        self.published.load()
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The store.
    pub fn store(&self) -> &dyn KeyStore {
        self.store.as_ref()
    }

    /// Runs the lifecycle at `now`, recording what changed in `journal`, and picks up any
    /// change to the key set, including changes made by another process (`svctoken keys
    /// revoke`). Blocking: call it off the async executor.
    pub fn refresh(&self, now: u64, journal: &dyn Journal) -> Result<Vec<Event>> {
        let events = rotation::rotate(self.store.as_ref(), &self.schedule, now, journal)?;
        self.reload()?;
        Ok(events)
    }

    /// Re-reads the key set and swaps in whatever changed.
    pub fn reload(&self) -> Result<()> {
        let set = self.store.load()?;
        let current = self.published.load();
        if set == current.set {
            return Ok(());
        }
        let active = set.active().ok_or(Error::NoActiveKey)?;
        if active.kid != self.signer.load().kid() {
            let key = load_active(self.store.as_ref(), &set)?;
            tracing::info!(kid = key.kid(), alg = %key.algorithm(), "signing key activated");
            self.signer.store(Arc::new(key));
        }
        self.published.store(Arc::new(render(set, &self.audiences)));
        Ok(())
    }
}

fn load_active(store: &dyn KeyStore, set: &KeySet) -> Result<SigningKey> {
    let active = set.active().ok_or(Error::NoActiveKey)?;
    store.signing_key(&active.kid)
}

fn render(set: KeySet, audiences: &[Audience]) -> Published {
    // Publication order: the signing key first, then the standby, then the retiring ones.
    let mut records: Vec<_> = set.keys.iter().collect();
    records.sort_by_key(|k| match k.state {
        KeyState::Active { .. } => 0,
        KeyState::Prepared { .. } => 1,
        KeyState::Retired { .. } => 2,
    });
    let all = Jwks {
        keys: records.iter().map(|k| k.public.clone()).collect(),
    };
    let by_audience = audiences
        .iter()
        .map(|a| {
            let jwks = all.only(a.profile.algorithms());
            (a.name.clone(), RenderedJwks::new(jwks))
        })
        .collect();
    Published {
        all: RenderedJwks::new(all),
        by_audience,
        set,
    }
}

/// The first moment a key that is not yet published signs, at the earliest: a consumer holding
/// a copy of today's JWKS (a `data:` URI, which holds the standby too) must be given a new copy
/// before then. That is a period after the standby starts signing, when its own standby would;
/// `svctoken keys rotate` or `keys revoke` make it sooner.
pub fn copy_valid_until(set: &KeySet, schedule: &Schedule) -> Option<u64> {
    let last = match set.prepared().or_else(|| set.active())?.state {
        KeyState::Prepared { activate_at } => activate_at,
        KeyState::Active { activated_at } | KeyState::Retired { activated_at, .. } => activated_at,
    };
    Some(last + schedule.rotation_period.as_secs())
}
