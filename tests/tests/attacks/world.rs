//! The world the attacks run in: the keys (clients', the trusted upstream's, strangers'), the
//! issuer's configuration, a trusted upstream that serves its JWKS on 127.0.0.1, and the honest
//! claims every forgery starts from.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use svctoken_issuer::clients::SecretHash;
use svctoken_jwks::{Algorithm, Jwks, SigningKey};
use svctoken_mint::{Clock as _, SystemClock};
use svctoken_tests::harness::{CLIENT_ID, CLIENT_SECRET, key_client, worker_client};

/// A second secret client, with its own audience.
pub(crate) const OTHER_ID: &str = "other";
/// Its secret (svctoken-shaped, so the scrubber knows it).
pub(crate) const OTHER_SECRET: &str = "sts_0ther-client-secret-that-must-never-be-logged";
/// A secret client whose secret needs form-encoding in a Basic header (RFC 6749 2.3.1).
pub(crate) const SPACEY_ID: &str = "spacey";
/// Its secret: a space and a plus.
pub(crate) const SPACEY_SECRET: &str = "sts_spaced secret+plus/slash";
/// The audience subject tokens of the trusted upstream carry.
pub(crate) const UPSTREAM_AUDIENCE: &str = "svctoken";

/// Every key of the world, generated once per test binary (RSA generation is slow).
pub(crate) struct Keys {
    /// Client `es`'s key (ES256).
    pub(crate) es: SigningKey,
    /// Client `rs`'s key (RS256).
    pub(crate) rs: SigningKey,
    /// Client `ed`'s key (EdDSA).
    pub(crate) ed: SigningKey,
    /// The trusted upstream's keys.
    pub(crate) up_rs: SigningKey,
    /// ES256.
    pub(crate) up_es: SigningKey,
    /// EdDSA.
    pub(crate) up_ed: SigningKey,
    /// Keys nobody registered, one per algorithm.
    pub(crate) stranger_es: SigningKey,
    /// RS256.
    pub(crate) stranger_rs: SigningKey,
    /// EdDSA.
    pub(crate) stranger_ed: SigningKey,
}

/// The world's keys.
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |alg| SigningKey::generate(alg).expect("key");
        Keys {
            es: key(Algorithm::ES256),
            rs: key(Algorithm::RS256),
            ed: key(Algorithm::EdDSA),
            up_rs: key(Algorithm::RS256),
            up_es: key(Algorithm::ES256),
            up_ed: key(Algorithm::EdDSA),
            stranger_es: key(Algorithm::ES256),
            stranger_rs: key(Algorithm::RS256),
            stranger_ed: key(Algorithm::EdDSA),
        }
    })
}

impl Keys {
    /// The registered key client ids and their keys.
    pub(crate) fn clients(&self) -> [(&'static str, &SigningKey); 3] {
        [("es", &self.es), ("rs", &self.rs), ("ed", &self.ed)]
    }

    /// The upstream's JWKS.
    pub(crate) fn upstream_jwks(&self) -> Jwks {
        Jwks {
            keys: [&self.up_rs, &self.up_es, &self.up_ed]
                .map(|k| k.public_jwk().clone())
                .to_vec(),
        }
    }
}

/// The issuer's configuration: three audiences; `worker` (secret; two audiences, two scopes,
/// acts for `user:*`), `other` (secret; the `billing` audience), `spacey` (secret needing
/// form-encoding), `es`, `rs`, `ed` (`private_key_jwt`); and the upstream at `upstream_url`
/// as a trusted issuer.
pub(crate) fn issuer_config(upstream_url: &str) -> String {
    let k = keys();
    let mut config = String::from(
        "[[audiences]]\nname = \"convex\"\n\
         [[audiences]]\nname = \"reports\"\nprofile = \"generic\"\n\
         [[audiences]]\nname = \"billing\"\n",
    );
    config.push_str(&format!(
        "[[trusted_issuers]]\nissuer = \"{upstream_url}\"\njwks_uri = \"{upstream_url}/jwks.json\"\n\
         audience = \"{UPSTREAM_AUDIENCE}\"\nalgorithms = [\"RS256\", \"ES256\", \"EdDSA\"]\n"
    ));
    config.push_str(&worker_client(
        "audiences = [\"convex\", \"reports\"]\nscopes = [\"jobs:run\", \"jobs:read\"]\nact_as = [\"user:*\"]",
    ));
    for (id, secret, audience) in [
        (OTHER_ID, OTHER_SECRET, "billing"),
        (SPACEY_ID, SPACEY_SECRET, "convex"),
    ] {
        config.push_str(&format!(
            "[[clients]]\nid = \"{id}\"\nsecret_sha256 = \"{}\"\naudiences = [\"{audience}\"]\n",
            SecretHash::of(secret).to_hex()
        ));
    }
    for (id, key) in k.clients() {
        config.push_str(&key_client(
            id,
            key,
            "audiences = [\"convex\"]\nact_as = [\"user:*\"]",
        ));
    }
    config
}

/// The secrets of the world's secret clients.
pub(crate) fn client_secrets() -> [&'static str; 3] {
    [CLIENT_SECRET, OTHER_SECRET, SPACEY_SECRET]
}

/// The id of the client whose secret is [`CLIENT_SECRET`].
pub(crate) const WORKER: &str = CLIENT_ID;

/// Seconds since the epoch, now.
pub(crate) fn now() -> u64 {
    SystemClock.unix_secs()
}

/// A `jti` never used before in this process.
pub(crate) fn fresh_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// Honest claims of a client assertion by `client` for the issuer `issuer_url`: `iss` = `sub`
/// = the client id, `aud` the issuer identifier, a minute long, a fresh `jti`.
pub(crate) fn assertion_claims(client: &str, issuer_url: &str) -> Value {
    let now = now();
    json!({
        "iss": client, "sub": client, "aud": issuer_url,
        "iat": now, "exp": now + 60, "jti": fresh_jti(),
    })
}

/// Honest claims of a user token from the upstream: `sub` = `user:42`, five minutes long.
pub(crate) fn subject_claims(upstream_url: &str) -> Value {
    let now = now();
    json!({
        "iss": upstream_url, "sub": "user:42", "aud": UPSTREAM_AUDIENCE,
        "iat": now, "nbf": now, "exp": now + 300, "jti": fresh_jti(),
    })
}

/// A trusted upstream: serves [`Keys::upstream_jwks`] at `/jwks.json` on 127.0.0.1 until
/// dropped.
pub(crate) struct Upstream {
    /// Its base URL, which is also its `iss`.
    pub(crate) url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    /// Starts it.
    pub(crate) async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let body = Arc::new(keys().upstream_jwks().to_json());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let body = body.clone();
                async move {
                    (
                        [
                            ("content-type", "application/json"),
                            ("cache-control", "public, max-age=300"),
                        ],
                        body.to_string(),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Upstream { url, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
