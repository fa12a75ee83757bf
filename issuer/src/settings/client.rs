//! Validation of `[[clients]]` entries.

use std::path::Path;
use std::time::Duration;

use svctoken_mint::{DEFAULT_TTL, check_custom_claims};

use super::ClientConfig;
use crate::clients::{Client, ClientAuth, SecretHash, read_jwks_file, validate_client_id};
use crate::{Audience, Error, Result};

/// Longest `max_ttl` a client may have: 24 hours.
pub const MAX_TTL_LIMIT: Duration = Duration::from_secs(24 * 3600);

fn client_auth(c: &ClientConfig, base: &Path) -> Result<ClientAuth> {
    let keys = match (&c.jwks, &c.jwks_file) {
        (Some(_), Some(_)) => {
            return Err(Error::Config("give jwks or jwks_file, not both".into()));
        }
        (Some(keys), None) => Some(keys.clone()),
        (None, Some(file)) => Some(read_jwks_file(&base.join(file))?),
        (None, None) => None,
    };
    match (&c.secret_sha256, keys) {
        (Some(hash), None) => Ok(ClientAuth::Secret(SecretHash::from_hex(hash)?)),
        (None, Some(mut keys)) => {
            if keys.is_empty() {
                return Err(Error::Config("jwks holds no key".into()));
            }
            for key in &mut keys {
                key.validate()
                    .map_err(|e| Error::Config(format!("a client key: {e}")))?;
                if key.kid.is_none() {
                    key.kid = Some(svctoken_jwks::thumbprint(key)?);
                }
            }
            Ok(ClientAuth::Keys(svctoken_jwks::Jwks { keys }))
        }
        (Some(_), Some(_)) => Err(Error::Config(
            "give a secret_sha256 or public keys (jwks, jwks_file), not both".into(),
        )),
        (None, None) => Err(Error::Config(
            "needs secret_sha256 (svctoken clients add) or public keys (jwks or jwks_file)".into(),
        )),
    }
}

/// Validates one `[[clients]]` entry; relative paths are relative to `base`.
pub(super) fn client(c: &ClientConfig, audiences: &[Audience], base: &Path) -> Result<Client> {
    validate_client_id(&c.id)?;
    let context = |e: Error| Error::Config(format!("client {:?}: {e}", c.id));
    let auth = client_auth(c, base).map_err(context)?;
    if let Some(bad) = c.act_as.iter().find(|p| p.is_empty()) {
        return Err(Error::Config(format!(
            "client {:?}: act_as pattern {bad:?} is empty",
            c.id
        )));
    }
    let client_audiences = c
        .audiences
        .clone()
        .unwrap_or_else(|| audiences.iter().map(|a| a.name.clone()).collect());
    if let Some(unknown) = client_audiences
        .iter()
        .find(|name| !audiences.iter().any(|a| &a.name == *name))
    {
        return Err(Error::Config(format!(
            "client {:?} names audience {unknown:?}, which no [[audiences]] entry defines",
            c.id
        )));
    }
    if let Some(bad) = c.scopes.iter().find(|s| {
        s.is_empty() || s.contains(|ch: char| ch.is_whitespace() || ch == '"' || ch == '\\')
    }) {
        return Err(Error::Config(format!(
            "client {:?}: scope {bad:?} must be non-empty with no spaces, quotes or backslashes",
            c.id
        )));
    }
    let max_ttl = c.max_ttl.unwrap_or(DEFAULT_TTL);
    if max_ttl < Duration::from_secs(1) || max_ttl > MAX_TTL_LIMIT {
        return Err(Error::Config(format!(
            "client {:?}: max_ttl must be between 1s and 24h",
            c.id
        )));
    }
    check_custom_claims(&c.claims).map_err(|e| context(e.into()))?;
    Ok(Client {
        subject: c.subject.clone().unwrap_or_else(|| format!("svc:{}", c.id)),
        id: c.id.clone(),
        auth,
        audiences: client_audiences,
        scopes: c.scopes.clone(),
        max_ttl,
        claims: c.claims.clone(),
        act_as: c.act_as.clone(),
    })
}
