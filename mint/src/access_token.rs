//! `AccessToken`: a bearer token that never prints itself.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A bearer token (a compact JWS). It is zeroized on drop, and its `Debug` shows
/// `AccessToken([redacted])`: it has no `Display`, so it can't reach a log line by accident.
/// [`AccessToken::secret`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: String) -> Self {
        AccessToken(Zeroizing::new(token))
    }

    /// The token itself, to send as `Authorization: Bearer <token>`.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl Serialize for AccessToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccessToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(AccessToken::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_token() {
        let token = AccessToken::new("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".into());
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert_eq!(token.secret(), "eyJhbGciOiJFUzI1NiJ9.e30.c2ln");
        let json = serde_json::to_string(&token).expect("json");
        assert_eq!(json, "\"eyJhbGciOiJFUzI1NiJ9.e30.c2ln\"");
        let back: AccessToken = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, token);
    }
}
