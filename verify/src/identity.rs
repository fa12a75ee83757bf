//! [`ServiceIdentity`]: who a verified token speaks for, as a handler sees it.

use serde_json::{Map, Value};
use svctoken_mint::Actor;

use crate::{Error, Result};

/// The verified identity of a request, inserted into its extensions by the layer.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ServiceIdentity {
    /// `sub`: the service (`svc:<client id>`), or the user it acts for in a delegated token.
    pub sub: String,
    /// `client_id`: the OAuth client the token was issued to.
    pub client_id: Option<String>,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
    /// `act`: who acts for `sub` in a delegated token (RFC 8693), newest first.
    pub act: Option<Actor>,
    /// Every verified claim, the above included.
    pub claims: Map<String, Value>,
}

impl ServiceIdentity {
    /// Reads the identity out of verified claims; `sub` must be a string, `client_id` and
    /// `scope` strings when present, and `act` a well-formed actor chain when present.
    pub fn from_claims(claims: Map<String, Value>) -> Result<Self> {
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(Error::InvalidClaim("sub"))?
            .to_owned();
        let client_id = match claims.get("client_id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(Error::InvalidClaim("client_id")),
        };
        let scopes = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(scope)) => scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(Error::InvalidClaim("scope")),
        };
        let act = match claims.get("act") {
            None => None,
            Some(claim) => Some(Actor::from_claim(claim).map_err(|_| Error::InvalidClaim("act"))?),
        };
        Ok(ServiceIdentity {
            sub,
            client_id,
            scopes,
            act,
            claims,
        })
    }

    /// Whether the token was granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}
