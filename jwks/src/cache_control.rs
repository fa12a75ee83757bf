//! How long a `Cache-Control` header lets a JWKS be kept: read once here for every cache of a
//! key set (the verifying layer, the issuer's upstream keys, `svctoken doctor`'s check of how
//! Convex will cache ours).

use std::time::Duration;

/// What a `Cache-Control` header says about caching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// No header, or one with neither `max-age` nor `no-store`/`no-cache`.
    Unspecified,
    /// `no-store` or `no-cache`: refetched every time.
    Never,
    /// `max-age` (an unparsable one counts as 0).
    MaxAge(Duration),
}

impl Caching {
    /// Parses `Cache-Control` (all of its header lines, comma-joined): `no-store` and
    /// `no-cache` win, then the first `max-age`; names are case-insensitive, a quoted value is
    /// read without its quotes.
    pub fn parse(value: Option<&str>) -> Caching {
        let mut max_age = None;
        for directive in value.unwrap_or_default().split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Caching::Never;
            }
            if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
                let secs = value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                max_age = Some(Duration::from_secs(secs));
            }
        }
        max_age.map_or(Caching::Unspecified, Caching::MaxAge)
    }

    /// How long the document stays fresh: `max-age`, none for `Never`, `default` when the
    /// header doesn't say.
    pub fn freshness(self, default: Duration) -> Duration {
        match self {
            Caching::Unspecified => default,
            Caching::Never => Duration::ZERO,
            Caching::MaxAge(age) => age,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_no_store_then_the_first_max_age() {
        let parse = |v| Caching::parse(Some(v));
        assert_eq!(Caching::parse(None), Caching::Unspecified);
        assert_eq!(parse("public"), Caching::Unspecified);
        assert_eq!(
            parse("public, max-age=300"),
            Caching::MaxAge(Duration::from_secs(300))
        );
        assert_eq!(
            parse("Max-Age=\"60\", max-age=10"),
            Caching::MaxAge(Duration::from_secs(60))
        );
        assert_eq!(parse("max-age=lots"), Caching::MaxAge(Duration::ZERO));
        assert_eq!(parse("max-age=300, no-cache"), Caching::Never);
        assert_eq!(parse("no-store"), Caching::Never);
        let default = Duration::from_secs(7);
        assert_eq!(parse("public").freshness(default), default);
        assert_eq!(parse("no-store").freshness(default), Duration::ZERO);
        assert_eq!(
            parse("max-age=300").freshness(default),
            Duration::from_secs(300)
        );
    }
}
