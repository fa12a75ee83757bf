//! Client authentication: a secret (hashed, compared in constant time) or a `private_key_jwt`
//! assertion (verified against the client's keys, its `jti` never accepted twice).

use std::time::SystemTime;

use super::assertion::{self, ReplayCache};
use super::request::ClientProof;
use super::{AssertionFailure, RefusalReason};
use crate::clients::{Client, ClientRegistry};

/// Who may be named as an assertion's audience: the token endpoint URL and the issuer.
pub(crate) struct AssertionAudiences<'a> {
    pub(crate) token_endpoint: &'a str,
    pub(crate) issuer: &'a str,
}

/// The client `proof` authenticates; every failure is a reason mapped to `invalid_client`.
pub(crate) fn authenticate<'r>(
    proof: &ClientProof,
    clients: &'r ClientRegistry,
    audiences: &AssertionAudiences<'_>,
    replay: &ReplayCache,
    now: SystemTime,
) -> Result<&'r Client, RefusalReason> {
    match proof {
        ClientProof::Secret { id, secret } => clients.authenticate(id, secret),
        ClientProof::Assertion { id, assertion } => {
            let claimed = assertion::claimed_client(assertion);
            let id = match (id.as_deref(), claimed.as_deref()) {
                (Some(given), Some(claimed)) if given != claimed => {
                    return Err(RefusalReason::Assertion(AssertionFailure::ClientMismatch));
                }
                (Some(id), _) | (None, Some(id)) => id,
                (None, None) => return Err(RefusalReason::Assertion(AssertionFailure::NoClient)),
            };
            let client = clients.get(id).ok_or(RefusalReason::UnknownClient)?;
            let accepted = [audiences.token_endpoint, audiences.issuer];
            assertion::verify(client, assertion, &accepted, replay, now)?;
            Ok(client)
        }
    }
}
