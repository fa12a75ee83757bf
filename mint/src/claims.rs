//! Custom claims: reserved names are refused, and standard OpenID Connect names must have their
//! standard type.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// Claim names that can't be set as custom claims: registered JWT claims, the claims svctoken
/// sets itself, and the names Convex gives its own identity fields.
pub const RESERVED_CLAIMS: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "tokenIdentifier",
    "subject",
    "issuer",
    "act",
    "client_id",
    "scope",
];

/// Refuses custom claims that use a reserved name, or an OpenID Connect standard claim's name
/// with a value OIDC parsers refuse ([`crate::oidc::check_standard_claims`]), whatever the
/// audience.
pub fn check_custom_claims(claims: &Map<String, Value>) -> Result<()> {
    if let Some(name) = claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        return Err(Error::ReservedClaim(name.clone()));
    }
    crate::oidc::check_standard_claims(claims)
}
