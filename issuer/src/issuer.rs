//! [`Issuer`]: a running issuer's shared state, and [`Issuer::token`], the one call that turns
//! a token request into a token or a refusal, audited and counted.

use std::sync::Arc;

use arc_swap::ArcSwap;

use svctoken_mint::oauth::TokenResponse;
use svctoken_mint::{Clock, Minter};

use crate::audit::{self, AuditEvent, Auditor, ChangedBy};
use crate::oauth::{Granted, OAuthError, Refusal, RefusalReason, TokenEndpoint, TokenForm};
use crate::rotation::AuditJournal;
use crate::{AuditConfig, KeyRing, KeyStore, Metrics, Peer, Result, Settings};

/// A running issuer's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Issuer {
    inner: Arc<Inner>,
}

struct Inner {
    /// The settings and the token endpoint built from them: swapped together, in one store, by
    /// [`Issuer::reload`], so a request never sees one without the other.
    current: ArcSwap<Configured>,
    keys: KeyRing,
    minter: Minter,
    /// One reload at a time.
    reloading: std::sync::Mutex<()>,
    auditor: Auditor,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

/// What a reload replaces.
struct Configured {
    settings: Arc<Settings>,
    endpoint: Arc<TokenEndpoint>,
}

impl Issuer {
    /// Opens the issuer: runs the key lifecycle once (creating the first key and its standby on
    /// an empty store), recording what changed in the audit trail, and loads the active key.
    pub fn open(
        settings: Settings,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Issuer> {
        let auditor = audit_from(settings.audit(), store.as_ref())?;
        Self::open_with_auditor(settings, store, clock, auditor)
    }

    /// Like [`Issuer::open`], recording the audit trail with `auditor` instead of the sinks the
    /// settings name.
    pub fn open_with_auditor(
        settings: Settings,
        store: Arc<dyn KeyStore>,
        clock: Arc<dyn Clock>,
        auditor: Auditor,
    ) -> Result<Issuer> {
        let keys = KeyRing::open(
            store,
            settings.schedule().clone(),
            settings.audiences().to_vec(),
            clock.unix_secs(),
            &AuditJournal::new(&auditor, ChangedBy::Timer),
        )?;
        let minter = Minter::new(settings.issuer().clone(), keys.signer(), clock.clone());
        let endpoint = TokenEndpoint::new(
            &settings,
            minter.clone(),
            keys.signing_failed(),
            clock.clone(),
            keys.store().database(),
        )?;
        let metrics = Metrics::new(
            settings.clients().iter().map(|c| c.id.as_str()),
            auditor.metrics().clone(),
        );
        Ok(Issuer {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(Configured {
                    settings: Arc::new(settings),
                    endpoint: Arc::new(endpoint),
                }),
                keys,
                minter,
                reloading: std::sync::Mutex::new(()),
                auditor,
                metrics,
                clock,
            }),
        })
    }

    /// Answers a token request from `peer`: a token, or the error to send. The issuance or the
    /// refusal is logged, counted and recorded in the audit trail before this returns; with a
    /// fail-closed trail, a token whose issuance could not be recorded is withheld.
    pub async fn token(
        &self,
        form: TokenForm,
        peer: Option<Peer>,
    ) -> Result<TokenResponse, OAuthError> {
        if !self.inner.keys.can_sign(self.inner.clock.unix_secs()) {
            let refusal = Refusal::new(RefusalReason::NotSigning, None);
            return Err(self.refused(refusal, peer).await);
        }
        // Owned, not guards: a reload may swap both while this request is under way, and it
        // finishes under the configuration it started with.
        let current = self.inner.current.load_full();
        match current.endpoint.handle(&current.settings, form).await {
            Ok(granted) => self.issued(granted, peer).await,
            Err(refusal) => Err(self.refused(refusal, peer).await),
        }
    }

    async fn issued(
        &self,
        granted: Granted,
        peer: Option<Peer>,
    ) -> Result<TokenResponse, OAuthError> {
        tracing::debug!(
            client_id = %granted.client_id, sub = %granted.subject, aud = %granted.audience,
            jti = %granted.jti, kid = %granted.kid, exp = granted.expires_at, "token issued"
        );
        // Looked up before the id moves into the event: counting allocates nothing.
        let counters = self.inner.metrics.client(Some(&granted.client_id));
        let event = AuditEvent {
            client_id: Some(granted.client_id),
            sub: Some(granted.subject),
            aud: Some(granted.audience),
            act: granted.actor,
            scope: granted.response.scope.clone(),
            jti: Some(granted.jti),
            kid: Some(granted.kid),
            exp: Some(granted.expires_at),
            peer: peer.map(|p| p.to_string()),
            ..AuditEvent::issued(self.inner.clock.unix_secs())
        };
        if !self.record(event).await {
            let error = OAuthError::from(RefusalReason::AuditFailed);
            counters.refused(&error.code);
            tracing::error!("the audit trail could not record an issuance; the token is withheld");
            return Err(error);
        }
        counters.issued();
        Ok(granted.response)
    }

    /// Logs, counts and records a refusal; the error to send.
    pub(crate) async fn refused(&self, refusal: Refusal, peer: Option<Peer>) -> OAuthError {
        let error = OAuthError::from(refusal.reason);
        self.inner
            .metrics
            .refused(refusal.client_id.as_deref(), &error.code);
        tracing::info!(
            client_id = refusal.client_id.as_deref().unwrap_or("-"),
            error = %error.code, reason = %refusal.reason, peer = ?peer,
            "token request refused"
        );
        let event = AuditEvent {
            client_id: refusal.client_id,
            sub: refusal.subject,
            aud: refusal.audience,
            peer: peer.map(|p| p.to_string()),
            ..AuditEvent::refused(
                self.inner.clock.unix_secs(),
                error.code.as_str(),
                refusal.reason.to_string(),
            )
        };
        // A refusal is answered whatever the trail says; a failure is logged and counted there.
        let _ = self.record(event).await;
        error
    }

    /// Queues the event for the audit writer; when fail-closed, waits for its batch to be on
    /// disk. False only when fail-closed and the event could not be recorded.
    async fn record(&self, event: AuditEvent) -> bool {
        self.inner.auditor.record(event).await.is_ok()
    }

    /// The settings it runs with now (a reload may replace them).
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.inner.current.load().settings)
    }

    /// Takes up `next`, a new configuration of the running issuer (SIGHUP): clients,
    /// audiences, trusted issuers, trusted proxies and rate limits change at once; requests
    /// under way finish under the configuration they started with. The replay cache of
    /// `private_key_jwt` assertions is kept (a reload never makes an assertion usable twice), and
    /// so are the rate-limit buckets when `[rate_limit]` is unchanged. What only a restart can
    /// change (the issuer URL, the listeners, the keys and their schedule, the store, the audit
    /// trail, TLS) is refused, and the configuration in use is kept. Audited; returns what
    /// changed.
    pub async fn reload(&self, next: Settings) -> Result<String> {
        let changes = {
            let _one = self
                .inner
                .reloading
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let current = self.inner.current.load_full();
            current.settings.check_reloadable(&next)?;
            let changes = current.settings.changes_to(&next);
            let endpoint = current.endpoint.reconfigured(&next);
            self.inner.keys.set_audiences(next.audiences().to_vec());
            self.inner
                .metrics
                .set_clients(next.clients().iter().map(|c| c.id.as_str()));
            self.inner.current.store(Arc::new(Configured {
                settings: Arc::new(next),
                endpoint: Arc::new(endpoint),
            }));
            changes
        };
        tracing::info!(changes = %changes, "configuration reloaded");
        let event = AuditEvent::reloaded(self.inner.clock.unix_secs(), changes.clone());
        if !self.record(event).await {
            tracing::error!("the audit trail could not record a configuration reload");
        }
        Ok(changes)
    }

    /// The minter (signs with the active key).
    pub fn minter(&self) -> &Minter {
        &self.inner.minter
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The token endpoint, as configured now.
    pub fn endpoint(&self) -> Arc<TokenEndpoint> {
        Arc::clone(&self.inner.current.load().endpoint)
    }

    /// The audit trail.
    pub fn auditor(&self) -> &Auditor {
        &self.inner.auditor
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// Runs the key lifecycle now and picks up changes, logging and counting what changed: the
    /// run [`serve`](crate::serve) makes every [`LIFECYCLE_INTERVAL`](crate::LIFECYCLE_INTERVAL).
    /// Blocking: call it off the executor.
    pub fn refresh(&self) -> Result<()> {
        crate::lifecycle::refresh(self).map(drop)
    }
}

/// The auditor the settings describe: the chained file (created 0600 beside the keys by
/// default), the replica's chain in the database replicas share, and, if asked, stdout.
fn audit_from(config: &AuditConfig, store: &dyn KeyStore) -> Result<Auditor> {
    let mut sinks: Vec<Box<dyn audit::AuditSink>> = Vec::new();
    if let (Some(db), Some(replica)) = (store.database(), store.replica_id()) {
        sinks.push(Box::new(crate::postgres::AuditTable::new(
            db.clone(),
            replica,
        )));
    }
    if let Some(path) = &config.file {
        let file = audit::ChainedFile::open(path)?;
        sinks.push(Box::new(file));
    }
    if config.stdout {
        sinks.push(Box::new(audit::StdoutSink));
    }
    Ok(Auditor::new(sinks, config.fail_closed))
}
