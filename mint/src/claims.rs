//! Reserved claim names: custom claims may not use them.

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

/// Refuses custom claims that use a reserved name.
pub fn check_custom_claims(claims: &Map<String, Value>) -> Result<()> {
    match claims
        .keys()
        .find(|k| RESERVED_CLAIMS.contains(&k.as_str()))
    {
        Some(name) => Err(Error::ReservedClaim(name.clone())),
        None => Ok(()),
    }
}
