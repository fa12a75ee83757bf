//! The OAuth 2.0 token endpoint, independent of HTTP: client credentials (RFC 6749 section
//! 4.4) and token exchange (RFC 8693), clients authenticated by secret or `private_key_jwt`
//! (RFC 7523), acting for a user with an `act` claim.
//!
//! One step per module: [`TokenForm`] is parsed into a typed `Grant` and `ClientProof`
//! (`request`); `authn` authenticates; `ratelimit`, `exchange` and `policy` decide; the
//! minter signs. A refusal is a [`RefusalReason`], mapped to its wire [`OAuthError`] in
//! `refusal`.

mod assertion;
mod authn;
mod exchange;
mod policy;
mod ratelimit;
mod refusal;
mod request;
mod trusted;

use std::sync::Arc;

use svctoken_mint::oauth::{ACCESS_TOKEN_TYPE, TokenResponse};
use svctoken_mint::{Actor, Clock, MintRequest, Minted, Minter};

pub use assertion::{MAX_ASSERTION_LIFETIME, ReplayCache};
pub use ratelimit::RateLimiter;
pub use refusal::{AssertionFailure, JoseFailure, OAuthError, RefusalReason, SubjectTokenFailure};
pub use request::{BODY_LIMIT, TokenForm};
pub use trusted::{FETCH_RETRY_AFTER, RemoteJwks, TrustedIssuer, UPSTREAM_FETCH_TIMEOUT};

use crate::RateLimitConfig;
use crate::clients::Client;
use crate::postgres::{Database, SharedLimiter, SharedReplay};
use crate::{Result, Settings};
use assertion::Replay;
use ratelimit::Limiter;
use request::{Grant, TokenRequest};

/// How many assertion `jti`s are remembered at most: with one-minute assertions, about
/// 13,000 `private_key_jwt` requests a second sustained, in 10 to 20 MB at worst (the memory is
/// only taken under such a load).
const REPLAY_CAPACITY: usize = 1_000_000;

/// A granted request: the answer, and the facts the log and the audit trail record.
pub(crate) struct Granted {
    pub(crate) response: TokenResponse,
    pub(crate) client_id: String,
    pub(crate) subject: String,
    pub(crate) audience: String,
    pub(crate) actor: Option<Actor>,
    pub(crate) jti: String,
    pub(crate) kid: String,
    pub(crate) expires_at: u64,
}

/// A refused request: the reason, and what is known of the request (never a credential).
pub(crate) struct Refusal {
    pub(crate) reason: RefusalReason,
    pub(crate) client_id: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) audience: Option<String>,
}

impl Refusal {
    pub(crate) fn new(reason: RefusalReason, client_id: Option<&str>) -> Self {
        Refusal {
            reason,
            client_id: client_id.map(str::to_owned),
            subject: None,
            audience: None,
        }
    }

    fn audience(mut self, audience: Option<&str>) -> Self {
        self.audience = audience.map(str::to_owned);
        self
    }

    fn subject(mut self, subject: Option<String>) -> Self {
        self.subject = subject;
        self
    }
}

impl Granted {
    /// The answer for `minted`, and who it is for.
    fn new(minted: Minted, client: &Client, audience: &str, who: Who, grant: &Grant) -> Self {
        let expires_in = minted.expires_in();
        Granted {
            response: TokenResponse {
                access_token: minted.token,
                token_type: "Bearer".into(),
                expires_in: Some(expires_in),
                scope: who.scope,
                issued_token_type: matches!(grant, Grant::TokenExchange { .. })
                    .then_some(ACCESS_TOKEN_TYPE.into()),
            },
            client_id: client.id.clone(),
            subject: who.subject,
            audience: audience.to_owned(),
            actor: who.actor,
            jti: minted.jti,
            kid: minted.kid,
            expires_at: minted.expires_at,
        }
    }
}

/// Whom a token is for, who acts, and what it may do.
struct Who {
    subject: String,
    actor: Option<Actor>,
    scope: Option<String>,
}

/// The refusal a minting failure becomes: an audience that can't verify the active key's
/// algorithm waits for the next key; anything else is our failure.
fn mint_failure(e: &svctoken_mint::Error) -> RefusalReason {
    match e {
        svctoken_mint::Error::AlgorithmNotAllowed(_) => RefusalReason::AlgorithmChanging,
        e => {
            tracing::error!(error = %e, "signing failed");
            RefusalReason::SigningFailed
        }
    }
}

/// Runs `f`, which may wait on a device, without holding up the other tasks of this worker
/// thread (on a multi-threaded runtime; on another, it just runs).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The token endpoint: client authentication, policy, minting.
///
/// It holds what lives across requests (upstream key caches, the replay cache, rate-limit
/// buckets, the minter); clients and audiences are read from the issuer's [`Settings`].
pub struct TokenEndpoint {
    trusted: Vec<TrustedIssuer>,
    /// Kept across configuration reloads: a reload must not make an assertion usable twice.
    replay: Arc<Replay>,
    /// Kept across reloads that leave `[rate_limit]` as it was.
    limiter: Option<(RateLimitConfig, Arc<Limiter>)>,
    minter: Minter,
    /// Raised when the minter fails to sign, so the key ring reloads at once.
    signing_failed: Arc<tokio::sync::Notify>,
    clock: Arc<dyn Clock>,
    shared: Option<Database>,
    http: reqwest::Client,
}

impl TokenEndpoint {
    /// The endpoint of an issuer with these settings, signing with `minter` (raising
    /// `signing_failed` when it fails); with `shared`,
    /// the replay cache and the rate limits are those of the replicas sharing that database.
    pub(crate) fn new(
        settings: &Settings,
        minter: Minter,
        signing_failed: Arc<tokio::sync::Notify>,
        clock: Arc<dyn Clock>,
        shared: Option<&Database>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))?;
        let replay = Arc::new(match shared {
            Some(db) => Replay::Shared(SharedReplay::new(db.clone())),
            None => Replay::Local(ReplayCache::new(REPLAY_CAPACITY)),
        });
        let empty = TokenEndpoint {
            trusted: Vec::new(),
            replay,
            limiter: None,
            minter,
            signing_failed,
            clock,
            shared: shared.cloned(),
            http,
        };
        Ok(empty.reconfigured(settings))
    }

    /// This endpoint under new `settings` (a configuration reload): trusted issuers as they
    /// now are (their key caches start empty), rate limits as they now are (buckets kept when
    /// `[rate_limit]` is unchanged), and the same replay cache, minter and clock.
    pub(crate) fn reconfigured(&self, settings: &Settings) -> TokenEndpoint {
        let limiter = settings.rate_limit().map(|config| match &self.limiter {
            Some((was, limiter)) if *was == config => (config, Arc::clone(limiter)),
            _ => (
                config,
                Arc::new(match &self.shared {
                    Some(db) => Limiter::Shared {
                        shared: SharedLimiter::new(db.clone(), config),
                        fallback: RateLimiter::new(config),
                    },
                    None => Limiter::Local(RateLimiter::new(config)),
                }),
            ),
        });
        TokenEndpoint {
            trusted: settings
                .trusted_issuers()
                .iter()
                .map(|t| TrustedIssuer::new(t.clone(), self.http.clone()))
                .collect(),
            replay: Arc::clone(&self.replay),
            limiter,
            minter: self.minter.clone(),
            signing_failed: self.signing_failed.clone(),
            clock: Arc::clone(&self.clock),
            shared: self.shared.clone(),
            http: self.http.clone(),
        }
    }

    /// The trusted upstream issuers.
    pub fn trusted_issuers(&self) -> &[TrustedIssuer] {
        &self.trusted
    }

    /// Handles one token request for the issuer configured by `settings`: parse,
    /// authenticate, limit, decide, sign.
    pub(crate) async fn handle(
        &self,
        settings: &Settings,
        form: TokenForm,
    ) -> Result<Granted, Refusal> {
        let request = TokenRequest::parse(form).map_err(|r| Refusal::new(r, None))?;
        let client = authn::authenticate(&request.proof, settings, &self.replay, self.clock.now())
            .await
            .map_err(|r| {
                // The log and the audit trail name the client only when it is one we know: an
                // unknown id is caller text, and may be a credential sent in the wrong field.
                let known =
                    (request.proof.claimed_id()).filter(|id| settings.clients().get(id).is_some());
                Refusal::new(r, known)
            })?;
        // Likewise the audience asked for is recorded only when it is a configured one.
        let asked = request.audience.as_deref();
        let known_audience =
            asked.filter(|name| settings.audiences().iter().any(|a| a.name == *name));
        let refuse = |reason| Refusal::new(reason, Some(&client.id)).audience(known_audience);
        self.rate_limit(client).await.map_err(refuse)?;
        let (audience, algorithms) =
            policy::audience(client, settings.audiences(), asked).map_err(refuse)?;
        let scope = policy::scope(client, request.scope.as_deref()).map_err(refuse)?;
        let (subject, actor) = (self.subject(client, &request.grant).await)
            .map_err(|(reason, subject)| refuse(reason).subject(subject))?;
        let mint = MintRequest::new(&subject, audience)
            .ttl(client.max_ttl)
            .client_id(&client.id)
            .scope(scope.as_deref())
            .actor(actor.as_ref())
            .claims(&client.claims)
            .algorithms(algorithms);
        // A key in an HSM signs in the device, for as long as it takes: meanwhile this worker's
        // other tasks move to another thread, and other requests sign side by side.
        let minted = if self.minter.signs_externally() {
            blocking(|| self.minter.mint(&mint))
        } else {
            self.minter.mint(&mint)
        };
        let minted = minted.map_err(|e| {
            let reason = mint_failure(&e);
            if reason == RefusalReason::SigningFailed {
                self.signing_failed.notify_one();
            }
            refuse(reason)
        })?;
        let who = Who {
            subject,
            actor,
            scope,
        };
        Ok(Granted::new(minted, client, audience, who, &request.grant))
    }

    async fn rate_limit(&self, client: &Client) -> Result<(), RefusalReason> {
        let Some((_, limiter)) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check(&client.id, self.clock.now())
            .await
            .map_err(|wait| RefusalReason::RateLimited {
                retry_after: wait.as_secs().max(1),
            })
    }

    /// Whom the token is for, and who acts: the client itself; a user it acts for
    /// (`subject=`); or the user of an exchanged token, with the client on top of its actors.
    async fn subject(
        &self,
        client: &Client,
        grant: &Grant,
    ) -> Result<(String, Option<Actor>), (RefusalReason, Option<String>)> {
        let (subject, prior) = match grant {
            Grant::ClientCredentials { subject: None } => {
                return Ok((client.subject.clone(), None));
            }
            Grant::ClientCredentials {
                subject: Some(user),
            } => (user.clone(), None),
            Grant::TokenExchange { subject_token } => {
                let user =
                    exchange::verify_subject_token(subject_token, &self.trusted, self.clock.now())
                        .await
                        .map_err(|why| (RefusalReason::SubjectToken(why), None))?;
                (user.sub, user.prior)
            }
        };
        policy::act_as(client, &subject).map_err(|reason| (reason, Some(subject.clone())))?;
        let actor = Actor::on_top_of(client.subject.clone(), prior);
        Ok((subject, Some(actor)))
    }
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("issuer", self.minter.issuer())
            .finish_non_exhaustive()
    }
}
