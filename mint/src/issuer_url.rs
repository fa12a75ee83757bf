//! `IssuerUrl`: an issuer identifier every verifier will match.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A validated issuer URL: `https://` (or `http://` for local development), a host, an optional
/// path, no trailing slash, no query, fragment or white space. It is used exactly as written in
/// `iss` and in discovery, which OIDC verifiers compare byte for byte. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IssuerUrl(Arc<str>);

impl IssuerUrl {
    /// Validates `url`; the error says what to change.
    pub fn parse(url: &str) -> Result<IssuerUrl> {
        let invalid = |why: &str| Err(Error::InvalidIssuer(format!("issuer {url:?} {why}")));
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return invalid("must start with https:// (or http:// for local development)");
        };
        if rest.is_empty() || rest.starts_with('/') {
            return invalid("has no host");
        }
        if url.ends_with('/') {
            return invalid(
                "ends with '/': remove it (OIDC verifiers compare the issuer byte for byte, and \
                 svctoken publishes and mints it exactly as written)",
            );
        }
        if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("must not contain a query, a fragment or white space");
        }
        Ok(IssuerUrl(url.into()))
    }

    /// The URL, exactly as validated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path part: `""` for `https://auth.example.com`, `"/auth"` for
    /// `https://example.com/auth`. An issuer with a path serves every route under it.
    pub fn path(&self) -> &str {
        let rest = self.0.split_once("://").map_or(&*self.0, |(_, rest)| rest);
        rest.find('/').map_or("", |at| &rest[at..])
    }

    /// The URL of `path` under the issuer (`path` starts with `/`), e.g. the token endpoint
    /// `join("/oauth/token")`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl TryFrom<String> for IssuerUrl {
    type Error = Error;
    fn try_from(url: String) -> Result<IssuerUrl> {
        IssuerUrl::parse(&url)
    }
}

impl From<IssuerUrl> for String {
    fn from(url: IssuerUrl) -> String {
        url.0.to_string()
    }
}

impl std::str::FromStr for IssuerUrl {
    type Err = Error;
    fn from_str(url: &str) -> Result<IssuerUrl> {
        IssuerUrl::parse(url)
    }
}

impl AsRef<str> for IssuerUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_verifiers_match_and_nothing_else() {
        for good in [
            "https://auth.example.com",
            "https://example.com/auth",
            "http://127.0.0.1:8080",
        ] {
            assert_eq!(IssuerUrl::parse(good).expect(good).as_str(), good);
        }
        for bad in [
            "auth.example.com",
            "ftp://x",
            "https://",
            "https:///x",
            "https://a.com/",
            "https://a.com?x=1",
            "https://a.com#f",
            "https://a .com",
        ] {
            assert!(IssuerUrl::parse(bad).is_err(), "{bad}");
        }
        let url = IssuerUrl::parse("https://example.com/auth").expect("ok");
        assert_eq!(
            url.join("/oauth/token"),
            "https://example.com/auth/oauth/token"
        );
        for (url, path) in [
            ("https://auth.example.com", ""),
            ("http://127.0.0.1:8080", ""),
            ("https://example.com/auth", "/auth"),
            ("https://example.com:8443/a/b", "/a/b"),
        ] {
            assert_eq!(IssuerUrl::parse(url).expect(url).path(), path, "{url}");
        }
    }
}
