//! Token exchange (RFC 8693): the user's token from a trusted issuer is verified, and its
//! subject and chain of actors are read under the same rules as everything else svctoken reads.

use std::time::SystemTime;

use serde_json::Value;
use svctoken_mint::{Actor, MAX_ACTOR_DEPTH, check_subject};

use super::SubjectTokenFailure;
use super::trusted::TrustedIssuer;

/// The user a subject token names, and the actors it already carries (newest first).
pub(crate) struct Subject {
    pub(crate) sub: String,
    pub(crate) prior: Option<Actor>,
}

/// Verifies `token` against the trusted issuer its `iss` names, then reads `sub` (the subject
/// rules) and `act` (a chain of actors with room for one more).
pub(crate) async fn verify_subject_token(
    token: &str,
    trusted: &[TrustedIssuer],
    now: SystemTime,
) -> Result<Subject, SubjectTokenFailure> {
    let (header, payload) = svctoken_jwks::dangerous::decode_unverified(token)
        .map_err(|_| SubjectTokenFailure::Unreadable)?;
    let iss = payload.get("iss").and_then(Value::as_str);
    let issuer = trusted
        .iter()
        .find(|t| Some(t.issuer()) == iss)
        .ok_or(SubjectTokenFailure::UntrustedIssuer)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let claims = issuer.verify(token, kid, now).await?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|sub| check_subject(sub).is_ok())
        .ok_or(SubjectTokenFailure::BadSubject)?;
    let prior = match claims.get("act") {
        None => None,
        Some(act) => {
            let chain = Actor::from_claim(act).map_err(|_| SubjectTokenFailure::BadActor)?;
            if chain.depth() >= MAX_ACTOR_DEPTH {
                return Err(SubjectTokenFailure::ActorChainTooLong);
            }
            Some(chain)
        }
    };
    Ok(Subject {
        sub: sub.to_owned(),
        prior,
    })
}
