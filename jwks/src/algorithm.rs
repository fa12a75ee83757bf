//! The signature algorithms svctoken supports, and what each needs from ring.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A JWS signature algorithm (RFC 7518 names). Every key is pinned to exactly one.
///
/// There is deliberately no `none` and no HMAC: asymmetric keys only (RFC 8725 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256; signatures are the raw 64-byte `r||s`.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys.
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Algorithm {
    /// All supported algorithms.
    pub const ALL: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

    /// The RFC 7518 name, as it appears in `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The JWK key type (`kty`) this algorithm uses.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC",
            Algorithm::RS256 => "RSA",
            Algorithm::EdDSA => "OKP",
        }
    }

    pub(crate) fn verification(self) -> &'static dyn ring::signature::VerificationAlgorithm {
        match self {
            Algorithm::ES256 => &ring::signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::RS256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::EdDSA => &ring::signature::ED25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses an RFC 7518 name exactly (case-sensitive, as `alg` is).
    fn from_str(s: &str) -> Result<Self> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnsupportedAlgorithm(s.to_owned()))
    }
}
