//! The running issuer's view of its keys: the signer the [`Minter`](svctoken_mint::Minter) uses and the
//! JWKS documents it serves, both swapped atomically when the key set changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use svctoken_jwks::{Jwks, SigningKey};

use crate::rotation::{self, Event, Journal, Schedule};
use crate::store::{KeyRecord, KeySet, KeyState, KeyStore, PeerKey};
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
    /// This process's key set (its replica's lineage) as stored.
    pub set: KeySet,
    /// The keys other replicas publish (none for a store with one writer).
    pub peers: Vec<PeerKey>,
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
    /// Swapped by a configuration reload.
    audiences: ArcSwap<Vec<Audience>>,
    signer: Arc<ArcSwap<SigningKey>>,
    published: ArcSwap<Published>,
    /// Tokens are signed only from `sign_from` (a replica waiting for its first key to be in
    /// every verifier's JWKS) until `sign_until` (the end of its lease), in seconds since the
    /// epoch.
    sign_from: AtomicU64,
    sign_until: AtomicU64,
    /// Raised when the signing key failed to sign (its private half gone from an HSM, say,
    /// after `svctoken keys revoke` from another process): the lifecycle reloads at once
    /// instead of at its next run.
    signing_failed: Arc<tokio::sync::Notify>,
}

impl KeyRing {
    /// Opens the key ring: renews the replica's lease (for a store replicas share) and runs
    /// the lifecycle once at `now` (creating the first key and its standby on an empty store),
    /// recording what changed in `journal`, then loads the signing key.
    pub fn open(
        store: Arc<dyn KeyStore>,
        schedule: Schedule,
        audiences: Vec<Audience>,
        now: u64,
        journal: &dyn Journal,
    ) -> Result<KeyRing> {
        let sign_until = store.maintain(&schedule, now, journal)?;
        rotation::rotate(store.as_ref(), &schedule, now, journal)?;
        let set = store.load()?;
        let peers = store.peer_keys()?;
        let (key, sign_from) = load_signer(store.as_ref(), &set)?;
        Ok(KeyRing {
            store,
            schedule,
            signer: Arc::new(ArcSwap::from_pointee(key)),
            published: ArcSwap::from_pointee(render(set, peers, &audiences)),
            audiences: ArcSwap::from_pointee(audiences),
            sign_from: AtomicU64::new(sign_from),
            sign_until: AtomicU64::new(sign_until.unwrap_or(u64::MAX)),
            signing_failed: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Raised when the signing key failed to sign; the lifecycle then reloads the keys at once.
    pub fn signing_failed(&self) -> Arc<tokio::sync::Notify> {
        self.signing_failed.clone()
    }

    /// The signing key, shared with the minter.
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

    /// Whether tokens may be signed at `now`: the signing key is active (not a first key still
    /// waiting to be in every verifier's JWKS) and the replica's lease has not lapsed. Always
    /// true for a store with one writer once its first key exists.
    pub fn can_sign(&self, now: u64) -> bool {
        self.sign_from.load(Ordering::Relaxed) <= now
            && now < self.sign_until.load(Ordering::Relaxed)
    }

    /// Until when this replica may sign (its lease), or `None` without a limit.
    pub fn sign_until(&self) -> Option<u64> {
        Some(self.sign_until.load(Ordering::Relaxed)).filter(|&t| t != u64::MAX)
    }

    /// Renews the lease, runs the lifecycle at `now`, recording what changed in `journal`, and
    /// picks up any change to the keys, including changes made by another process (`svctoken
    /// keys revoke`, another replica). Blocking: call it off the async executor.
    pub fn refresh(&self, now: u64, journal: &dyn Journal) -> Result<Vec<Event>> {
        if let Some(until) = self.store.maintain(&self.schedule, now, journal)? {
            self.sign_until.store(until, Ordering::Relaxed);
        }
        let events = rotation::rotate(self.store.as_ref(), &self.schedule, now, journal)?;
        self.reload()?;
        Ok(events)
    }

    /// Re-reads the key sets and swaps in whatever changed.
    pub fn reload(&self) -> Result<()> {
        let set = self.store.load()?;
        let peers = self.store.peer_keys()?;
        let current = self.published.load();
        if set == current.set && peers == current.peers {
            return Ok(());
        }
        let (kid, from) = signer_of(&set)?;
        if kid != self.signer.load().kid() {
            let (key, _) = load_signer(self.store.as_ref(), &set)?;
            tracing::info!(kid = key.kid(), alg = %key.algorithm(), "signing key activated");
            self.signer.store(Arc::new(key));
        }
        self.sign_from.store(from, Ordering::Relaxed);
        self.published
            .store(Arc::new(render(set, peers, &self.audiences.load())));
        Ok(())
    }

    /// The audiences are now `audiences` (a configuration reload): their JWKS documents are
    /// rendered again from the keys published now.
    pub fn set_audiences(&self, audiences: Vec<Audience>) {
        let current = self.published.load_full();
        self.audiences.store(Arc::new(audiences));
        self.published.store(Arc::new(render(
            current.set.clone(),
            current.peers.clone(),
            &self.audiences.load(),
        )));
    }
}

/// The key this process signs with and from when: the active key at once, or, with none
/// active, the standby from its activation time (a replica joining a cluster waits for its
/// first key to be in every verifier's JWKS).
fn signer_of(set: &KeySet) -> Result<(&str, u64)> {
    if let Some(active) = set.active() {
        return Ok((&active.kid, 0));
    }
    match set.prepared() {
        Some(KeyRecord {
            kid,
            state: KeyState::Prepared { activate_at },
            ..
        }) => Ok((kid, *activate_at)),
        _ => Err(Error::NoActiveKey),
    }
}

fn load_signer(store: &dyn KeyStore, set: &KeySet) -> Result<(SigningKey, u64)> {
    let (kid, from) = signer_of(set)?;
    Ok((store.signing_key(kid)?, from))
}

fn render(set: KeySet, peers: Vec<PeerKey>, audiences: &[Audience]) -> Published {
    // Publication order: signing keys first (this replica's, then the others'), then the
    // standbys, then the retiring ones.
    let mut records: Vec<&KeyRecord> = set
        .keys
        .iter()
        .chain(peers.iter().map(|p| &p.key))
        .collect();
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
        peers,
    }
}

/// The first moment a key that is not yet published signs, at the earliest: a consumer holding
/// a copy of today's JWKS (a `data:` URI, which holds the standby too) must be given a new copy
/// before then. For each lineage (this process's, and each other replica's) that is a period
/// after its standby starts signing, when its own standby would; the earliest of them counts.
/// `svctoken keys rotate` or `keys revoke` make it sooner, and so does a replica that joins.
pub fn copy_valid_until(published: &Published, schedule: &Schedule) -> Option<u64> {
    let mut lineages: HashMap<&str, Vec<&KeyRecord>> = HashMap::new();
    lineages.insert("", published.set.keys.iter().collect());
    for peer in &published.peers {
        lineages
            .entry(&peer.replica_id)
            .or_default()
            .push(&peer.key);
    }
    lineages
        .values()
        .filter_map(|keys| {
            let next = keys
                .iter()
                .find(|k| k.is_prepared())
                .or_else(|| keys.iter().find(|k| k.is_active()))?;
            let last = match next.state {
                KeyState::Prepared { activate_at } => activate_at,
                KeyState::Active { activated_at } | KeyState::Retired { activated_at, .. } => {
                    activated_at
                }
            };
            Some(last + schedule.rotation_period.as_secs())
        })
        .min()
}
