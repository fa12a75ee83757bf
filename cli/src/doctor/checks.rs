//! The checks that need no network: each takes what was fetched and says how Convex will take
//! it.

use std::time::{Duration, SystemTime};

use clap::ValueEnum;
use serde_json::{Map, Value};
use svctoken_jwks::{Algorithm, Caching, Jwk, Jwks};

use super::report::Outcome;

/// A JWKS `max-age` above this delays a rotation or a revocation reaching Convex too long.
pub(crate) const LONGEST_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Clock skew above this is worth fixing (Convex allows 5 s on customJwt times).
pub(crate) const SKEW_WARN: Duration = Duration::from_secs(5);

/// Clock skew above this makes fresh tokens look expired or not yet valid.
pub(crate) const SKEW_FAIL: Duration = Duration::from_secs(60);

/// A certificate expiring sooner than this is a warning.
pub(crate) const CERT_WARN: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// A token lifetime (`exp - iat`) above this is not "short-lived".
pub(crate) const LONGEST_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// JWK members that only a private or secret key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The Convex provider type an audience is meant for (svctoken's audience profiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Profile {
    /// Convex `type: "customJwt"`: ES256 or RS256, the JWKS named in auth.config.ts.
    ConvexCustomJwt,
    /// Convex's OIDC provider (`domain`): RS256 or EdDSA, keys found through discovery.
    ConvexOidc,
    /// Not for Convex: any algorithm svctoken signs with.
    Generic,
}

impl Profile {
    /// The Convex provider type, as auth.config.ts spells it.
    pub(crate) fn provider(self) -> &'static str {
        match self {
            Profile::ConvexCustomJwt => "customJwt",
            Profile::ConvexOidc => "OIDC (domain + applicationID)",
            Profile::Generic => "none (generic profile: Convex verifies only the convex-* ones)",
        }
    }

    /// The algorithms this provider type verifies.
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Profile::ConvexCustomJwt => &[Algorithm::ES256, Algorithm::RS256],
            Profile::ConvexOidc => &[Algorithm::RS256, Algorithm::EdDSA],
            Profile::Generic => &Algorithm::ALL,
        }
    }
}

/// Whether the issuer URL's scheme lets Convex reach it: https passes; http warns, with the
/// reason (loopback: a cloud deployment can't reach it at all).
pub(crate) fn scheme(issuer: &str, loopback: bool) -> Outcome {
    if has_scheme(issuer, "https://") {
        Outcome::pass("https")
    } else if loopback {
        Outcome::warn(
            "http on a loopback host: only a Convex backend on this machine can reach it; \
             Convex in the cloud can't. Serve it at a public https URL (--issuer https://auth.example.com) \
             or embed the JWKS with `svctoken convex-config --data-uri`",
        )
    } else {
        Outcome::warn(
            "http: the JWKS and tokens travel unprotected; put the issuer behind https \
             (a TLS-terminating proxy) and publish that URL as its issuer",
        )
    }
}

/// Whether `url` starts with `scheme` (`"https://"`), ignoring ASCII case.
pub(crate) fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
}

/// The scheme of an http(s) URL, lower-cased; `None` for anything else.
pub(crate) fn http_scheme(url: &str) -> Option<&'static str> {
    if has_scheme(url, "https://") {
        Some("https")
    } else if has_scheme(url, "http://") {
        Some("http")
    } else {
        None
    }
}

/// The discovery document's `issuer` against `--issuer`, byte for byte (as Convex compares it
/// with the token's `iss`).
pub(crate) fn issuer_matches(given: &str, document: Option<&str>) -> Outcome {
    match document {
        Some(found) if found == given => Outcome::pass(format!("{found:?}, as given")),
        Some(found) => Outcome::fail(format!(
            "discovery says {found:?} but --issuer is {given:?}: Convex compares them (and each \
             token's iss) byte for byte. Use exactly {found:?} in auth.config.ts and --issuer, or \
             set the issuer's `issuer` to the URL Convex reaches it at"
        )),
        None => Outcome::fail("the discovery document has no string `issuer`"),
    }
}

/// A discovery member that names an endpoint: present, http(s), and under the issuer's scheme.
pub(crate) fn endpoint(name: &str, value: Option<&str>, issuer_scheme: &str) -> Outcome {
    let Some(url) = value else {
        return Outcome::fail(format!("the discovery document has no string `{name}`"));
    };
    match http_scheme(url) {
        None => Outcome::fail(format!("{name} {url:?} is not an http(s) URL")),
        Some(scheme) if scheme != issuer_scheme => Outcome::warn(format!(
            "{name} {url} is {scheme} under a {issuer_scheme} issuer: publish it under {issuer_scheme}"
        )),
        Some(_) => Outcome::pass(url.to_owned()),
    }
}

/// How the JWKS's caching serves Convex, which caches it per `Cache-Control` and never
/// refetches it on an unknown `kid`.
pub(crate) fn cache_control(value: Option<&str>) -> Outcome {
    match Caching::parse(value) {
        Caching::Unspecified => Outcome::warn(format!(
            "Cache-Control {value:?} has no max-age: Convex refetches the JWKS for every token. \
             Send `Cache-Control: public, max-age=300` (svctoken: jwks_max_age)"
        )),
        Caching::Never => Outcome::warn(format!(
            "Cache-Control {value:?}: Convex refetches the JWKS for every token. Send a max-age \
             of minutes (svctoken: jwks_max_age)"
        )),
        Caching::MaxAge(age) if age.is_zero() => Outcome::warn(
            "max-age=0: Convex refetches the JWKS for every token; send a max-age of minutes",
        ),
        Caching::MaxAge(age) if age > LONGEST_MAX_AGE => Outcome::warn(format!(
            "max-age={}s is over a day: Convex holds the JWKS that long, so a new key must be \
             published that long before it signs and a revoked key stays trusted that long. \
             Lower it (svctoken: jwks_max_age)",
            age.as_secs()
        )),
        Caching::MaxAge(age) => Outcome::pass(format!(
            "max-age={}s: Convex refetches the JWKS at most that often (a key is published at \
             least that long before it signs)",
            age.as_secs()
        )),
    }
}

/// What the JWKS holds, judged for a profile.
#[derive(Debug)]
pub(crate) struct JwksVerdict {
    /// Private or secret key members anywhere in the set.
    pub(crate) private: Outcome,
    /// Whether the provider type accepts the set.
    pub(crate) compatible: Outcome,
    /// The keys the provider can verify with (`use` not `enc`).
    pub(crate) signing_keys: usize,
    /// The set as parsed, for verifying a token.
    pub(crate) jwks: Jwks,
}

/// One entry of a JWKS, as far as it could be read.
struct Entry {
    index: usize,
    jwk: Option<Jwk>,
    /// The key's algorithm, or why it can't be used.
    algorithm: Result<Algorithm, String>,
}

/// Reads the JWKS `body` and judges it for `profile`; `Err` when it is not a JWKS at all.
pub(crate) fn judge_jwks(body: &[u8], profile: Profile) -> Result<JwksVerdict, String> {
    let entries = jwks_entries(body)?;
    let private = private_members(&entries);
    let entries: Vec<Entry> = entries.iter().enumerate().map(entry).collect();
    let (compatible, usable) = match profile {
        Profile::ConvexCustomJwt => custom_jwt(&entries),
        Profile::ConvexOidc => oidc(&entries),
        Profile::Generic => generic(&entries),
    };
    let signing_keys = usable
        .iter()
        .filter(|jwk| jwk.use_.as_deref() != Some("enc"))
        .count();
    Ok(JwksVerdict {
        private,
        compatible,
        signing_keys,
        jwks: Jwks { keys: usable },
    })
}

/// The `keys` array of a JWKS document.
fn jwks_entries(body: &[u8]) -> Result<Vec<Value>, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut map)) => match map.remove("keys") {
            Some(Value::Array(keys)) => Ok(keys),
            _ => Err("the JWKS has no `keys` array".into()),
        },
        Ok(_) => Err("the JWKS is not a JSON object".into()),
        Err(e) => Err(format!("the JWKS is not JSON: {e}")),
    }
}

/// Fails when any key carries a private or secret member.
fn private_members(entries: &[Value]) -> Outcome {
    let found: Vec<String> = entries
        .iter()
        .enumerate()
        .filter_map(|(index, key)| {
            let key = key.as_object()?;
            let members: Vec<&str> = PRIVATE_MEMBERS
                .into_iter()
                .filter(|m| key.contains_key(*m))
                .collect();
            (!members.is_empty()).then(|| format!("key #{index} has {}", members.join(", ")))
        })
        .collect();
    if found.is_empty() {
        Outcome::pass("public keys only")
    } else {
        Outcome::fail(format!(
            "{}: the JWKS publishes private key material. Remove it from the JWKS now and \
             replace those keys (svctoken keys revoke KID)",
            found.join("; ")
        ))
    }
}

/// Reads one JWKS entry with svctoken's JWK rules (type, curve, sizes, `alg` fitting the key).
fn entry((index, value): (usize, &Value)) -> Entry {
    match serde_json::from_value::<Jwk>(value.clone()) {
        Ok(jwk) => Entry {
            index,
            algorithm: jwk.validate().map_err(|e| e.to_string()),
            jwk: Some(jwk),
        },
        Err(e) => Entry {
            index,
            jwk: None,
            algorithm: Err(format!("not a JWK: {e}")),
        },
    }
}

/// customJwt: the whole set must parse, ES256 (P-256) or RS256 (2048+ bits) only, `alg` set;
/// the provider pins one algorithm.
fn custom_jwt(entries: &[Entry]) -> (Outcome, Vec<Jwk>) {
    let mut problems = Vec::new();
    let mut usable = Vec::new();
    for e in entries {
        match (&e.jwk, &e.algorithm) {
            (Some(jwk), Ok(alg)) if Profile::ConvexCustomJwt.algorithms().contains(alg) => {
                if jwk.alg.is_none() {
                    problems.push(format!("key #{} ({alg}) has no `alg`: set it", e.index));
                }
                usable.push(jwk.clone());
            }
            (_, Ok(Algorithm::EdDSA)) => problems.push(format!(
                "key #{} is OKP (Ed25519), which customJwt refuses",
                e.index
            )),
            (_, Ok(alg)) => problems.push(format!("key #{} is {alg}", e.index)),
            (_, Err(why)) => problems.push(format!("key #{}: {why}", e.index)),
        }
    }
    if !problems.is_empty() {
        return (
            Outcome::fail(format!(
                "customJwt refuses the whole JWKS: {}. Publish only ES256 or RS256 keys (RSA \
                 2048+ bits) with `alg` set to this audience (svctoken: the audience's \
                 /audiences/<name>/jwks.json)",
                problems.join("; ")
            )),
            usable,
        );
    }
    if usable.is_empty() {
        return (Outcome::fail("customJwt: the JWKS holds no key"), usable);
    }
    let mut algorithms: Vec<&str> = usable.iter().filter_map(|k| k.alg.as_deref()).collect();
    algorithms.dedup();
    if algorithms.len() > 1 {
        return (
            Outcome::warn(format!(
                "keys of several algorithms ({}): a customJwt provider pins one `algorithm`, so \
                 tokens signed with the others are refused",
                algorithms.join(", ")
            )),
            usable,
        );
    }
    let outcome = Outcome::pass(format!(
        "customJwt accepts all {} keys (algorithm: \"{}\")",
        usable.len(),
        algorithms.first().unwrap_or(&"?")
    ));
    (outcome, usable)
}

/// OIDC: RS256 and EdDSA keys are used; others are skipped.
fn oidc(entries: &[Entry]) -> (Outcome, Vec<Jwk>) {
    let usable: Vec<Jwk> = entries
        .iter()
        .filter(|e| {
            e.algorithm
                .as_ref()
                .is_ok_and(|alg| Profile::ConvexOidc.algorithms().contains(alg))
        })
        .filter_map(|e| e.jwk.clone())
        .collect();
    let skipped = entries.len() - usable.len();
    let outcome = if usable.is_empty() {
        Outcome::fail(
            "Convex's OIDC provider finds no RS256 or EdDSA key in the JWKS: sign with RS256 or \
             EdDSA",
        )
    } else if skipped > 0 {
        Outcome::warn(format!(
            "Convex's OIDC provider uses {} keys and skips {skipped} (not RS256/EdDSA, or \
             unreadable): tokens signed with those are refused",
            usable.len()
        ))
    } else {
        Outcome::pass(format!(
            "the OIDC provider accepts all {} keys",
            usable.len()
        ))
    };
    (outcome, usable)
}

/// Generic: every key svctoken can verify with.
fn generic(entries: &[Entry]) -> (Outcome, Vec<Jwk>) {
    let usable: Vec<Jwk> = entries
        .iter()
        .filter(|e| e.algorithm.is_ok())
        .filter_map(|e| e.jwk.clone())
        .collect();
    let outcome = if usable.len() == entries.len() && !usable.is_empty() {
        Outcome::pass(format!(
            "{} keys, all usable (generic profile: Convex itself needs convex-custom-jwt or \
             convex-oidc)",
            usable.len()
        ))
    } else {
        Outcome::warn(format!("{} of {} keys usable", usable.len(), entries.len()))
    };
    (outcome, usable)
}

/// A standby key lets a rotation happen without Convex rejecting tokens.
pub(crate) fn standby(signing_keys: usize, max_age: Option<Duration>) -> Outcome {
    let window = max_age.map_or("its cache lifetime".to_owned(), |a| {
        format!("up to {}s (max-age)", a.as_secs())
    });
    match signing_keys {
        0 => Outcome::fail("no signing key is published"),
        1 => Outcome::warn(format!(
            "one signing key and no standby: after a rotation Convex rejects new tokens for \
             {window}, until it refetches the JWKS. Publish the next key before it signs \
             (svctoken does: keys list shows the standby)"
        )),
        n => Outcome::pass(format!(
            "{n} signing keys published (a standby is in place)"
        )),
    }
}

/// Classifies the difference between the issuer's clock (its `Date`) and ours.
pub(crate) fn clock_skew(server: SystemTime, local: SystemTime) -> Outcome {
    let (skew, direction) = match server.duration_since(local) {
        Ok(ahead) => (ahead, "ahead of"),
        Err(behind) => (behind.duration(), "behind"),
    };
    let secs = skew.as_secs();
    if skew > SKEW_FAIL {
        Outcome::fail(format!(
            "the issuer's clock is {secs}s {direction} this one: its tokens look expired or not \
             yet valid to Convex (5 s leeway). Run NTP on the issuer (or here)"
        ))
    } else if skew > SKEW_WARN {
        Outcome::warn(format!(
            "the issuer's clock is {secs}s {direction} this one, more than Convex's 5 s leeway: \
             run NTP on the issuer (or here)"
        ))
    } else {
        Outcome::pass(format!("within {}s of this machine", SKEW_WARN.as_secs()))
    }
}

/// Classifies a certificate's remaining validity.
pub(crate) fn certificate_expiry(not_after: SystemTime, now: SystemTime) -> Outcome {
    let when = crate::time(unix_secs(not_after));
    match not_after.duration_since(now) {
        Err(_) => Outcome::fail(format!(
            "the certificate expired at {when}: Convex can't fetch the JWKS. Renew it"
        )),
        Ok(left) if left < CERT_WARN => Outcome::warn(format!(
            "the certificate expires at {when}, in {} days: renew it",
            left.as_secs() / 86_400
        )),
        Ok(left) => Outcome::pass(format!(
            "valid until {when} ({} days)",
            left.as_secs() / 86_400
        )),
    }
}

/// Seconds since the epoch (0 before it).
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An integer NumericDate claim: `Ok(None)` when absent, `Err` when not an integer.
pub(crate) fn int_claim(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("`{name}` is {v}, not an integer NumericDate")),
    }
}

/// `aud` as a list of strings (a string is a list of one); `Err` for other types.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, String> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().ok_or("`aud` holds a non-string".to_owned()))
            .collect(),
        Some(other) => Err(format!("`aud` is {other}, not a string or array")),
    }
}

/// `iat`, `exp` and the lifetime between them, as Convex reads them.
pub(crate) fn token_times(claims: &Map<String, Value>, profile: Profile) -> Outcome {
    let (iat, exp) = match (int_claim(claims, "iat"), int_claim(claims, "exp")) {
        (Err(e), _) | (_, Err(e)) => return Outcome::fail(e),
        (Ok(iat), Ok(exp)) => (iat, exp),
    };
    let Some(exp) = exp else {
        return Outcome::fail("the token has no `exp`: Convex requires one");
    };
    let Some(iat) = iat else {
        return match profile {
            Profile::ConvexOidc => Outcome::fail("the token has no `iat`: OIDC requires one"),
            _ => Outcome::warn("the token has no `iat`: its lifetime can't be checked"),
        };
    };
    let lifetime = exp.saturating_sub(iat);
    if lifetime <= 0 {
        Outcome::fail(format!(
            "exp - iat is {lifetime}s: the token is born expired"
        ))
    } else if lifetime.unsigned_abs() > LONGEST_LIFETIME.as_secs() {
        Outcome::warn(format!(
            "exp - iat is {lifetime}s: a service token should live minutes (lower the client's \
             max_ttl)"
        ))
    } else {
        Outcome::pass(format!("integer iat and exp, lifetime {lifetime}s"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;

    fn status(outcome: &Outcome) -> Status {
        outcome.status
    }

    #[test]
    fn cache_control_is_read_like_convex_reads_it() {
        assert_eq!(Caching::parse(None), Caching::Unspecified);
        assert_eq!(Caching::parse(Some("public")), Caching::Unspecified);
        assert_eq!(
            Caching::parse(Some("public, max-age=300")),
            Caching::MaxAge(Duration::from_secs(300))
        );
        assert_eq!(
            Caching::parse(Some("Max-Age=\"60\", max-age=10")),
            Caching::MaxAge(Duration::from_secs(60))
        );
        assert_eq!(
            Caching::parse(Some("max-age=lots")),
            Caching::MaxAge(Duration::ZERO)
        );
        assert_eq!(
            Caching::parse(Some("max-age=300, no-cache")),
            Caching::Never
        );
        assert_eq!(Caching::parse(Some("no-store")), Caching::Never);

        assert_eq!(
            status(&cache_control(Some("public, max-age=300"))),
            Status::Pass
        );
        assert_eq!(status(&cache_control(Some("max-age=86400"))), Status::Pass);
        assert_eq!(status(&cache_control(Some("max-age=86401"))), Status::Warn);
        assert_eq!(status(&cache_control(None)), Status::Warn);
        assert_eq!(status(&cache_control(Some("no-store"))), Status::Warn);
        assert_eq!(status(&cache_control(Some("max-age=0"))), Status::Warn);
    }

    #[test]
    fn clock_skew_is_classified_both_ways() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |delta: i64| {
            if delta >= 0 {
                now + Duration::from_secs(delta.unsigned_abs())
            } else {
                now - Duration::from_secs(delta.unsigned_abs())
            }
        };
        for (delta, expected) in [
            (0, Status::Pass),
            (5, Status::Pass),
            (-5, Status::Pass),
            (6, Status::Warn),
            (-60, Status::Warn),
            (61, Status::Fail),
            (-3600, Status::Fail),
        ] {
            let outcome = clock_skew(at(delta), now);
            assert_eq!(outcome.status, expected, "{delta}: {}", outcome.detail);
        }
        assert!(clock_skew(at(-90), now).detail.contains("90s behind"));
    }

    #[test]
    fn certificate_expiry_warns_two_weeks_ahead() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            status(&certificate_expiry(now + 90 * day, now)),
            Status::Pass
        );
        assert_eq!(
            status(&certificate_expiry(now + 13 * day, now)),
            Status::Warn
        );
        assert_eq!(status(&certificate_expiry(now - day, now)), Status::Fail);
    }

    fn ec_jwk(kid: &str, alg: Option<&str>) -> Value {
        let key = svctoken_jwks::SigningKey::generate(Algorithm::ES256).expect("key");
        let mut jwk = serde_json::to_value(key.public_jwk()).expect("json");
        jwk["kid"] = kid.into();
        match alg {
            Some(alg) => jwk["alg"] = alg.into(),
            None => {
                jwk.as_object_mut().expect("object").remove("alg");
            }
        }
        jwk
    }

    fn ed_jwk(kid: &str) -> Value {
        let key = svctoken_jwks::SigningKey::generate(Algorithm::EdDSA).expect("key");
        let mut jwk = serde_json::to_value(key.public_jwk()).expect("json");
        jwk["kid"] = kid.into();
        jwk
    }

    fn judge(keys: Vec<Value>, profile: Profile) -> JwksVerdict {
        let body = serde_json::json!({ "keys": keys }).to_string();
        judge_jwks(body.as_bytes(), profile).expect("a JWKS")
    }

    #[test]
    fn jwks_compatibility_follows_the_provider_type() {
        let two = judge(
            vec![ec_jwk("a", Some("ES256")), ec_jwk("b", Some("ES256"))],
            Profile::ConvexCustomJwt,
        );
        assert_eq!(
            two.compatible.status,
            Status::Pass,
            "{}",
            two.compatible.detail
        );
        assert_eq!(two.private.status, Status::Pass);
        assert_eq!(two.signing_keys, 2);
        assert_eq!(status(&standby(two.signing_keys, None)), Status::Pass);

        let one = judge(vec![ec_jwk("a", Some("ES256"))], Profile::ConvexCustomJwt);
        assert_eq!(status(&standby(one.signing_keys, None)), Status::Warn);

        // An OKP key makes customJwt refuse the whole set; OIDC skips the EC key instead.
        let mixed = vec![ec_jwk("a", Some("ES256")), ed_jwk("b")];
        let custom = judge(mixed.clone(), Profile::ConvexCustomJwt);
        assert_eq!(custom.compatible.status, Status::Fail);
        assert!(
            custom.compatible.detail.contains("OKP"),
            "{}",
            custom.compatible.detail
        );
        let oidc = judge(mixed.clone(), Profile::ConvexOidc);
        assert_eq!(
            oidc.compatible.status,
            Status::Warn,
            "{}",
            oidc.compatible.detail
        );
        assert_eq!(oidc.signing_keys, 1);
        assert_eq!(
            judge(mixed, Profile::Generic).compatible.status,
            Status::Pass
        );

        let no_alg = judge(vec![ec_jwk("a", None)], Profile::ConvexCustomJwt);
        assert_eq!(no_alg.compatible.status, Status::Fail);
        assert!(no_alg.compatible.detail.contains("no `alg`"));

        let only_ec = judge(vec![ec_jwk("a", Some("ES256"))], Profile::ConvexOidc);
        assert_eq!(only_ec.compatible.status, Status::Fail);

        let mut private = ec_jwk("a", Some("ES256"));
        private["d"] = "c2VjcmV0".into();
        let leaked = judge(vec![private], Profile::ConvexCustomJwt);
        assert_eq!(leaked.private.status, Status::Fail);
        assert!(leaked.private.detail.contains("key #0 has d"));

        assert!(judge_jwks(b"[]", Profile::ConvexCustomJwt).is_err());
        assert!(judge_jwks(b"{\"keys\": 1}", Profile::ConvexCustomJwt).is_err());
        assert!(judge_jwks(b"not json", Profile::ConvexCustomJwt).is_err());
    }

    #[test]
    fn token_times_and_issuer_equality() {
        let claims = |v: Value| v.as_object().expect("object").clone();
        let t = |v: Value| token_times(&claims(v), Profile::ConvexCustomJwt).status;
        assert_eq!(t(serde_json::json!({"iat": 100, "exp": 400})), Status::Pass);
        assert_eq!(
            t(serde_json::json!({"iat": 100, "exp": 100_000})),
            Status::Warn
        );
        assert_eq!(
            t(serde_json::json!({"iat": 100.5, "exp": 400})),
            Status::Fail
        );
        assert_eq!(t(serde_json::json!({"iat": 100})), Status::Fail);
        assert_eq!(t(serde_json::json!({"exp": 400})), Status::Warn);

        let given = "http://127.0.0.1:8080";
        assert_eq!(issuer_matches(given, Some(given)).status, Status::Pass);
        assert_eq!(
            issuer_matches("http://localhost:8080", Some(given)).status,
            Status::Fail
        );
        assert_eq!(
            issuer_matches(given, Some("http://127.0.0.1:8080/")).status,
            Status::Fail
        );
        assert_eq!(issuer_matches(given, None).status, Status::Fail);

        assert_eq!(endpoint("jwks_uri", None, "https").status, Status::Fail);
        assert_eq!(
            endpoint("jwks_uri", Some("http://a/jwks.json"), "https").status,
            Status::Warn
        );
        assert_eq!(
            endpoint("jwks_uri", Some("https://a/jwks.json"), "https").status,
            Status::Pass
        );
        assert_eq!(scheme("https://a", false).status, Status::Pass);
        assert_eq!(scheme("http://127.0.0.1:1", true).status, Status::Warn);
    }
}
