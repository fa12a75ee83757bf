//! Client authentication: a secret (hashed, compared in constant time) or a `private_key_jwt`
//! assertion (verified against the client's keys, its `jti` never accepted twice).

use std::time::SystemTime;

use super::assertion::{self, Replay};
use super::request::ClientProof;
use super::{AssertionFailure, RefusalReason};
use crate::Settings;
use crate::clients::Client;

/// The client `proof` authenticates among `settings`' clients; every failure is a reason
/// mapped to `invalid_client`. An assertion's audience must be the issuer identifier.
pub(crate) async fn authenticate<'s>(
    proof: &ClientProof,
    settings: &'s Settings,
    replay: &Replay,
    now: SystemTime,
) -> Result<&'s Client, RefusalReason> {
    let clients = settings.clients();
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
            assertion::verify(client, assertion, settings.issuer().as_str(), replay, now).await?;
            Ok(client)
        }
    }
}
