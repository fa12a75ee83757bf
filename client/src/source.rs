//! The `TokenSource` trait, and the sources that need no network: a static token and an
//! in-process minter.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use svctoken_jwks::SigningKey;
use svctoken_mint::{AccessToken, IssuerUrl, MintRequest, Minter, SystemClock};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::{Error, FetchedToken, Result};

/// The future a [`TokenSource`] returns.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<FetchedToken>> + Send + 'a>>;

/// Something that can obtain a fresh access token. Wrap it in a
/// [`TokenCache`](crate::TokenCache) to reuse tokens until shortly before they expire.
pub trait TokenSource: Send + Sync + 'static {
    /// Obtains a new token (always a new one: caching is the cache's job).
    fn fetch(&self) -> FetchFuture<'_>;
}

/// A fixed token, for tests and scripts. It never expires unless given a lifetime.
pub struct StaticToken {
    token: AccessToken,
    lifetime: Option<Duration>,
}

impl StaticToken {
    /// A token that is always valid.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken {
            token: AccessToken::new(token.into()),
            lifetime: None,
        }
    }

    /// A token valid for `lifetime` from each fetch.
    pub fn with_lifetime(token: impl Into<String>, lifetime: Duration) -> Self {
        StaticToken {
            token: AccessToken::new(token.into()),
            lifetime: Some(lifetime),
        }
    }
}

impl TokenSource for StaticToken {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            Ok(FetchedToken {
                access_token: self.token.clone(),
                lifetime: self.lifetime,
                requested_at: Instant::now(),
            })
        })
    }
}

/// Mints tokens in-process with svctoken's [`Minter`], for a process that holds its own key.
///
/// The process's key must be published where the audience looks (for example an issuer's
/// JWKS or a `data:` URI built from it).
pub struct MinterSource {
    minter: Minter,
    subject: String,
    audience: String,
    ttl: Duration,
    scope: Option<String>,
    claims: Map<String, Value>,
}

impl MinterSource {
    /// Mints for `subject` and `audience` with `minter`; tokens live 5 minutes by default.
    pub fn new(minter: Minter, subject: impl Into<String>, audience: impl Into<String>) -> Self {
        MinterSource {
            minter,
            subject: subject.into(),
            audience: audience.into(),
            ttl: svctoken_mint::DEFAULT_TTL,
            scope: None,
            claims: Map::new(),
        }
    }

    /// Signs with the PEM private key in `path` (PKCS#8, SEC1 or PKCS#1) as `issuer`.
    pub fn from_key_file(
        issuer: &str,
        path: impl AsRef<Path>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self> {
        let key = read_private_key(path.as_ref())?;
        let issuer = IssuerUrl::parse(issuer).map_err(|e| Error::Config(e.to_string()))?;
        let minter = Minter::with_key(issuer, key, Arc::new(SystemClock));
        Ok(Self::new(minter, subject, audience))
    }

    /// Token lifetime. Default 5 minutes.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The `scope` claim. Default none.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Custom claims (reserved names are refused at mint time). Default none.
    pub fn claims(mut self, claims: Map<String, Value>) -> Self {
        self.claims = claims;
        self
    }
}

/// Reads a PEM private key (PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), warning
/// when the file is readable by group or others; a form that converts to PKCS#8 gets the
/// `openssl` line that converts it.
pub(crate) fn read_private_key(path: &Path) -> Result<SigningKey> {
    use std::os::unix::fs::PermissionsExt as _;
    let pem =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!("reading the private key {}: {e}", path.display()))
        })?);
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "private key file is readable by others: chmod 600 it");
    }
    SigningKey::from_pem(&pem).map_err(|e| {
        let fix = match e {
            svctoken_jwks::Error::UnsupportedKeyFormat(_) => {
                format!(": `{}`", svctoken_jwks::pkcs8_conversion_command(path))
            }
            _ => String::new(),
        };
        Error::Config(format!("{}: {e}{fix}", path.display()))
    })
}

impl TokenSource for MinterSource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let requested_at = Instant::now();
            let minted = self
                .minter
                .mint(
                    &MintRequest::new(&self.subject, &self.audience)
                        .ttl(self.ttl)
                        .scope(self.scope.as_deref())
                        .claims(&self.claims),
                )
                .map_err(|e| Error::Mint(e.to_string()))?;
            let lifetime = Duration::from_secs(minted.expires_in());
            Ok(FetchedToken {
                access_token: minted.token,
                lifetime: Some(lifetime),
                requested_at,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test key file of `svctoken-jwks` (see `jwks/tests/keys/README.md`).
    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../jwks/tests/keys")
            .join(name)
    }

    #[test]
    fn private_keys_are_read_as_pkcs8_sec1_and_pkcs1() {
        let pkcs8 = read_private_key(&fixture("ec-p256-pkcs8.pem")).expect("pkcs8");
        let sec1 = read_private_key(&fixture("ec-p256-sec1.pem")).expect("sec1");
        assert_eq!(sec1.kid(), pkcs8.kid());
        let rsa = read_private_key(&fixture("rsa-pkcs1.pem")).expect("pkcs1");
        assert_eq!(rsa.algorithm(), svctoken_jwks::Algorithm::RS256);
    }

    #[test]
    fn an_unreadable_key_gets_the_openssl_line_that_converts_it() {
        let path = fixture("ec-p256-encrypted.pem");
        let err = read_private_key(&path).expect_err("encrypted").to_string();
        let line = format!(
            "openssl pkcs8 -topk8 -nocrypt -in {} -out {}",
            path.display(),
            path.with_extension("pkcs8.pem").display()
        );
        assert!(err.contains(&line), "{err}");
        let err = read_private_key(&fixture("ec-p256-public.pem"))
            .expect_err("public")
            .to_string();
        assert!(!err.contains("openssl"), "{err}");
    }
}
