//! Audiences and their verification profiles: what each consumer can verify.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use svctoken_jwks::Algorithm;

use crate::{Error, Result};

/// What a consumer of our tokens can verify (Convex's provider types, or any JOSE verifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Convex `customJwt` provider: ES256 or RS256, a JWKS of RSA and P-256 keys only.
    ConvexCustomJwt,
    /// Convex OIDC provider (`domain` + `applicationID`): RS256 or EdDSA.
    ConvexOidc,
    /// Any JOSE verifier: every algorithm svctoken signs with.
    Generic,
}

impl Profile {
    /// The algorithms a consumer of this profile verifies.
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Profile::ConvexCustomJwt => &[Algorithm::ES256, Algorithm::RS256],
            Profile::ConvexOidc => &[Algorithm::RS256, Algorithm::EdDSA],
            Profile::Generic => &Algorithm::ALL,
        }
    }

    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::ConvexCustomJwt => "convex-custom-jwt",
            Profile::ConvexOidc => "convex-oidc",
            Profile::Generic => "generic",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [
            Profile::ConvexCustomJwt,
            Profile::ConvexOidc,
            Profile::Generic,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown profile {s:?}: use convex-custom-jwt, convex-oidc or generic"
            ))
        })
    }
}

/// A consumer of tokens: its name is the `aud` claim (Convex's `applicationID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    /// The `aud` value.
    pub name: String,
    /// What it can verify.
    pub profile: Profile,
}

impl Audience {
    /// Refuses an algorithm this audience can't verify, saying what to change.
    pub fn check_algorithm(&self, alg: Algorithm) -> Result<()> {
        let allowed = self.profile.algorithms();
        if allowed.contains(&alg) {
            return Ok(());
        }
        let names: Vec<_> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Err(Error::Config(format!(
            "audience {:?} has profile {}, which verifies only {}, but [keys] algorithm is \
             \"{alg}\": set [keys] algorithm to {}, or give the audience a profile that accepts \
             {alg}",
            self.name,
            self.profile,
            names.join(" or "),
            names.join(" or ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_match_what_convex_verifies() {
        let custom = Audience {
            name: "convex".into(),
            profile: Profile::ConvexCustomJwt,
        };
        assert!(custom.check_algorithm(Algorithm::ES256).is_ok());
        assert!(custom.check_algorithm(Algorithm::RS256).is_ok());
        let err = custom.check_algorithm(Algorithm::EdDSA).expect_err("EdDSA");
        assert!(err.to_string().contains("set [keys] algorithm"), "{err}");
        let oidc = Audience {
            name: "convex".into(),
            profile: Profile::ConvexOidc,
        };
        assert!(oidc.check_algorithm(Algorithm::ES256).is_err());
        assert!(oidc.check_algorithm(Algorithm::EdDSA).is_ok());
        assert_eq!(
            "generic".parse::<Profile>().expect("known"),
            Profile::Generic
        );
        assert!("convex".parse::<Profile>().is_err());
    }
}
