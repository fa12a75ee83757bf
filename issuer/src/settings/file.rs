//! The configuration file as written: every key optional, each documented with its default.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use svctoken_jwks::Algorithm;

use crate::Profile;

/// The configuration file, as written. See `docs/configuration.md` for every key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Issuer URL, published and minted exactly as written. Default `http://<listen>`.
    pub(crate) issuer: Option<String>,
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub(crate) listen: Option<String>,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`), or `"off"`. Default
    /// `127.0.0.1:8081` (port 0 when `listen`'s port is 0).
    pub(crate) admin_listen: Option<String>,
    /// Directory of the files key store. Default `./svctoken-data`.
    pub(crate) data_dir: Option<PathBuf>,
    /// PostgreSQL URL of the state several replicas share. Default: none (one process, the
    /// files store).
    pub(crate) database_url: Option<String>,
    /// This replica's id. Default: derived once and kept in `<data_dir>/replica-id`.
    pub(crate) replica_id: Option<String>,
    /// How long a replica may sign without reaching the database. Default 1h.
    #[serde(default, deserialize_with = "duration")]
    pub(crate) replica_lease: Option<Duration>,
    /// Proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client. Default: none.
    #[serde(default)]
    pub(crate) trusted_proxies: Vec<String>,
    /// Key settings.
    #[serde(default)]
    pub(crate) keys: KeysConfig,
    /// Audiences. Default: one, `convex`, profile `convex-custom-jwt`.
    pub(crate) audiences: Option<Vec<AudienceConfig>>,
    /// Clients. Default: none.
    #[serde(default)]
    pub(crate) clients: Vec<ClientConfig>,
    /// Upstream issuers whose user tokens may be exchanged (RFC 8693). Default: none.
    #[serde(default)]
    pub(crate) trusted_issuers: Vec<TrustedIssuerConfig>,
    /// Per-client rate limit of the token endpoint. Default: none (a `[rate_limit]` table,
    /// even empty, turns it on).
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// The audit trail.
    #[serde(default)]
    pub(crate) audit: AuditConfig,
    /// TLS on the public listener. Default: none (plain HTTP, behind a TLS-terminating proxy).
    pub(crate) tls: Option<TlsConfig>,
}

/// `[tls]`: the public listener serves HTTPS with this certificate.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// `[audit]`: where every mint and refusal is recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Also write each event as a JSON line to stdout. Default false.
    #[serde(default)]
    pub stdout: bool,
    /// The hash-chained audit file. Default `<data_dir>/audit.log`; `""` turns it off.
    pub file: Option<PathBuf>,
    /// Refuse to hand out a token whose issuance could not be recorded. Default false.
    #[serde(default)]
    pub fail_closed: bool,
}

/// `[[trusted_issuers]]`: an issuer of user tokens (for example the app's own auth provider).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerConfig {
    /// Its `iss`, compared exactly.
    pub issuer: String,
    /// Where its keys are.
    pub jwks_uri: String,
    /// The `aud` its tokens must carry to be exchanged here.
    pub audience: String,
    /// Algorithms accepted from it. Default RS256, ES256, EdDSA.
    pub algorithms: Option<Vec<Algorithm>>,
}

/// `[rate_limit]`: a token bucket per client, off unless the table is present.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a client may make at once. Default 100.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Sustained requests per client per minute. Default 600.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
}

fn default_burst() -> u32 {
    100
}

fn default_per_minute() -> u32 {
    600
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            burst: default_burst(),
            per_minute: default_per_minute(),
        }
    }
}

/// `[keys]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeysConfig {
    /// `ES256` | `RS256` | `EdDSA`. Default ES256.
    pub(crate) algorithm: Option<Algorithm>,
    /// RSA modulus bits: 2048, 3072 or 4096. Default 2048.
    pub(crate) rsa_bits: Option<usize>,
    /// How long each key signs. Default 24h.
    #[serde(default, deserialize_with = "duration")]
    pub(crate) rotation_period: Option<Duration>,
    /// JWKS `Cache-Control: max-age`. Default 5m.
    #[serde(default, deserialize_with = "duration")]
    pub(crate) jwks_max_age: Option<Duration>,
    /// Where private keys live: `files` (`<data_dir>/private`) or `pkcs11` (an HSM). Default
    /// `files`.
    pub(crate) backend: Option<BackendName>,
    /// `pkcs11`: the module (shared library) path.
    pub(crate) module: Option<PathBuf>,
    /// `pkcs11`: the token's label.
    pub(crate) token_label: Option<String>,
    /// `pkcs11`: a file holding the user PIN. Default: `SVCTOKEN_PKCS11_PIN`.
    pub(crate) pin_file: Option<PathBuf>,
    /// `pkcs11`: sessions open at most. Default: twice the CPUs, at least 4.
    pub(crate) sessions: Option<usize>,
}

/// `[keys] backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BackendName {
    /// PKCS#8 files.
    Files,
    /// A PKCS#11 token.
    Pkcs11,
}

/// `[[audiences]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AudienceConfig {
    /// The `aud` claim; Convex's `applicationID`.
    pub(crate) name: String,
    /// Default `convex-custom-jwt`.
    pub(crate) profile: Option<Profile>,
}

/// `[[clients]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `client_id`.
    pub id: String,
    /// SHA-256 of the secret, hex, as printed by `svctoken clients add`.
    pub secret_sha256: Option<String>,
    /// Public keys, inline, for `private_key_jwt` instead of a secret.
    pub jwks: Option<Vec<svctoken_jwks::Jwk>>,
    /// A file holding the public keys (a JWKS or one JWK), relative to the configuration file.
    pub jwks_file: Option<PathBuf>,
    /// Subjects it may act for, as glob patterns (`"user:*"`). Default none.
    #[serde(default)]
    pub act_as: Vec<String>,
    /// `sub` of its tokens. Default `svc:<id>`.
    pub subject: Option<String>,
    /// Audiences it may use. Default all.
    pub audiences: Option<Vec<String>>,
    /// Scopes it may ask for. Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Lifetime of its tokens. Default 5m, at most 24h.
    #[serde(default, deserialize_with = "duration")]
    pub max_ttl: Option<Duration>,
    /// Custom claims. Default none.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses `"24h"`, `"5m"`, `"90s"`, `"1h 30m"`.
pub fn parse_duration(text: &str) -> crate::Result<Duration> {
    humantime::parse_duration(text).map_err(|e| {
        crate::Error::Config(format!(
            "{text:?} is not a duration like \"5m\" or \"24h\" ({e})"
        ))
    })
}
