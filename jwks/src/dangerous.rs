//! Operations that bypass the crate's safety rails, fenced off so that every use is visible.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::{Error, Result, SigningKey};

/// Exports the private key as a PKCS#8 PEM `PRIVATE KEY` block, in a buffer zeroized on drop.
///
/// Write it only to a file created with mode 0600. A key held outside the process (see
/// [`SigningKey::external`]) has nothing to export: that is an error.
pub fn export_pkcs8_pem(key: &SigningKey) -> Result<Zeroizing<String>> {
    let block = pem::Pem::new("PRIVATE KEY", key.pkcs8_der()?.to_vec());
    let text = pem::encode(&block);
    // `pem::Pem` owns a copy of the key bytes; its contents are dropped right here.
    let mut contents = block.into_contents();
    zeroize::Zeroize::zeroize(&mut contents);
    Ok(Zeroizing::new(text))
}

/// Decodes a compact JWS's header and payload WITHOUT verifying anything.
///
/// For routing (choosing which issuer's keys to use) and for logging only; never trust what
/// it returns.
pub fn decode_unverified(token: &str) -> Result<(Map<String, Value>, Map<String, Value>)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed("a compact JWS has exactly three segments"));
    };
    Ok((json_segment(header)?, json_segment(payload)?))
}

pub(crate) fn json_segment(segment: &str) -> Result<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Error::Malformed("segment is not base64url without padding"))?;
    crate::strict_json::object(&bytes)
        .map_err(|_| Error::Malformed("segment is not a JSON object with unique member names"))
}
