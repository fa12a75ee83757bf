//! The token checks: a fetched token read under Convex's rules for the audience's profile.

use std::time::SystemTime;

use serde_json::{Map, Value};
use svctoken_jwks::{Jwks, Validation, Verifier};

use super::checks::{self, Profile};
use super::report::Outcome;

/// `iss` equal byte for byte to `--issuer` and to discovery's `issuer`.
pub(super) fn issuer(
    claims: &Map<String, Value>,
    given: &str,
    discovered: Option<&str>,
) -> Outcome {
    let Some(iss) = claims.get("iss").and_then(Value::as_str) else {
        return Outcome::fail("the token has no string `iss`");
    };
    if iss != given {
        return Outcome::fail(format!(
            "iss {iss:?} differs from --issuer {given:?}: Convex matches the provider's issuer \
             against it. Use {iss:?} in auth.config.ts, or set the issuer's `issuer`"
        ));
    }
    match discovered {
        Some(d) if d != iss => {
            Outcome::fail(format!("iss {iss:?} differs from discovery's issuer {d:?}"))
        }
        _ => Outcome::pass(format!("{iss:?}, as given")),
    }
}

/// `aud` contains the audience (Convex's applicationID); OIDC wants exactly one.
pub(super) fn audience(
    claims: &Map<String, Value>,
    audience: Option<&str>,
    profile: Profile,
) -> Outcome {
    let audiences = match checks::audiences(claims) {
        Ok(audiences) => audiences,
        Err(e) => return Outcome::fail(e),
    };
    if profile == Profile::ConvexOidc && audiences.len() > 1 {
        return Outcome::fail(format!(
            "aud {audiences:?} has several entries: Convex's OIDC provider accepts one"
        ));
    }
    match audience {
        Some(a) if audiences.contains(&a) => {
            Outcome::pass(format!("{audiences:?} contains {a:?} (the applicationID)"))
        }
        Some(a) => Outcome::fail(format!(
            "aud {audiences:?} lacks {a:?}: Convex matches applicationID against it. Ask for \
             audience {a:?} (the client must be allowed it)"
        )),
        None if audiences.is_empty() => {
            Outcome::fail("the token has no `aud`: a provider with an applicationID refuses it")
        }
        None => Outcome::pass(format!(
            "{audiences:?}: auth.config.ts's applicationID must be one of these (--audience checks \
             which)"
        )),
    }
}

/// The header as the provider reads it: `typ`, `alg` and `kid`, and the key it names.
pub(super) fn header(
    header: &Map<String, Value>,
    jwks: Option<&Jwks>,
    profile: Profile,
) -> Outcome {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let typ = header.get("typ").and_then(Value::as_str);
    let kid = header.get("kid").and_then(Value::as_str);
    match profile {
        Profile::ConvexCustomJwt if typ != Some("JWT") => {
            return Outcome::fail(format!("typ {typ:?}: customJwt needs \"JWT\""));
        }
        Profile::ConvexCustomJwt if !matches!(alg, "ES256" | "RS256") => {
            return Outcome::fail(format!("alg {alg:?}: customJwt verifies ES256 or RS256"));
        }
        Profile::ConvexOidc if !matches!(alg, "RS256" | "EdDSA") => {
            return Outcome::fail(format!(
                "alg {alg:?}: Convex's OIDC provider verifies RS256 or EdDSA"
            ));
        }
        _ => {}
    }
    let Some(kid) = kid else {
        return match profile {
            Profile::ConvexCustomJwt => Outcome::fail("no `kid`: customJwt needs one"),
            _ => Outcome::warn("no `kid`: Convex can pick a key only while the JWKS has one"),
        };
    };
    let Some(jwks) = jwks else {
        return Outcome::warn(format!(
            "alg {alg}, kid {kid:?} (the JWKS could not be checked)"
        ));
    };
    let Some(key) = jwks.find(kid) else {
        return Outcome::fail(format!(
            "kid {kid:?} is not in the JWKS Convex reads: it never refetches on an unknown kid, \
             so tokens fail until max-age passes. Publish keys before they sign"
        ));
    };
    match key.algorithm() {
        Ok(key_alg) if key_alg.as_str() == alg => Outcome::pass(format!(
            "typ {}, alg {alg}, kid {kid:?} found in the JWKS",
            typ.unwrap_or("(none)")
        )),
        Ok(key_alg) => Outcome::fail(format!(
            "alg {alg} but key {kid:?} is {}: the provider refuses it",
            key_alg.as_str()
        )),
        Err(e) => Outcome::fail(format!("key {kid:?}: {e}")),
    }
}

/// The signature, checked with the key set (and the token's own `iss` and `aud`: those have
/// their own lines).
pub(super) fn signature(token: &str, claims: &Map<String, Value>, jwks: &Jwks) -> Outcome {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(aud) = checks::audiences(claims)
        .ok()
        .and_then(|a| a.first().map(|s| s.to_string()))
    else {
        return Outcome::fail("no `aud` to verify against");
    };
    match Verifier::new(jwks, Validation::new(iss, aud)).verify(token, SystemTime::now()) {
        Ok(_) => Outcome::pass("verifies with the published key"),
        Err(e) => Outcome::fail(format!("{e}: Convex would refuse the token")),
    }
}

/// The claims a Convex function sees in `ctx.auth.getUserIdentity()` (besides `issuer` and
/// `tokenIdentifier`).
pub(super) fn exposed_claims(claims: &Map<String, Value>) -> Outcome {
    let shown: Map<String, Value> = ["sub", "client_id", "scope", "act"]
        .into_iter()
        .filter_map(|name| claims.get(name).map(|v| (name.to_owned(), v.clone())))
        .collect();
    Outcome::pass(format!(
        "Convex will expose {} (sub as `subject`)",
        Value::Object(shown)
    ))
}

/// `sub` a string, as Convex's `subject`.
pub(super) fn subject(claims: &Map<String, Value>) -> Outcome {
    match claims.get("sub") {
        Some(Value::String(sub)) => Outcome::pass(format!("{sub:?}")),
        Some(other) => Outcome::fail(format!("`sub` is {other}: Convex needs a string")),
        None => Outcome::fail("the token has no `sub`: Convex needs one"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use svctoken_jwks::{Algorithm, SigningKey};

    use super::*;
    use crate::doctor::report::Status;

    const ISSUER: &str = "https://auth.example.com";

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().expect("object").clone()
    }

    /// A key, the JWKS holding it, and a token it signed with `claims`.
    fn signed(claims: &Value) -> (SigningKey, Jwks, String) {
        let key = SigningKey::generate(Algorithm::ES256).expect("key");
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        let token = key.sign_jwt(claims).expect("sign");
        (key, jwks, token)
    }

    #[test]
    fn iss_aud_and_sub_follow_convex() {
        let claims = map(json!({"iss": ISSUER, "aud": ["convex", "other"], "sub": "svc:a"}));
        assert_eq!(issuer(&claims, ISSUER, Some(ISSUER)).status, Status::Pass);
        assert_eq!(
            issuer(&claims, "https://auth.example.com/", None).status,
            Status::Fail
        );
        assert_eq!(
            issuer(&claims, ISSUER, Some("https://other")).status,
            Status::Fail
        );
        assert_eq!(issuer(&map(json!({})), ISSUER, None).status, Status::Fail);

        let custom = Profile::ConvexCustomJwt;
        assert_eq!(
            audience(&claims, Some("convex"), custom).status,
            Status::Pass
        );
        assert_eq!(
            audience(&claims, Some("billing"), custom).status,
            Status::Fail
        );
        assert_eq!(audience(&claims, None, custom).status, Status::Pass);
        // Convex's OIDC provider takes one audience only.
        let oidc = audience(&claims, Some("convex"), Profile::ConvexOidc);
        assert_eq!(oidc.status, Status::Fail);
        assert_eq!(
            audience(&map(json!({"aud": 3})), None, custom).status,
            Status::Fail
        );
        assert_eq!(audience(&map(json!({})), None, custom).status, Status::Fail);

        assert_eq!(subject(&claims).status, Status::Pass);
        assert_eq!(subject(&map(json!({"sub": 7}))).status, Status::Fail);
        assert_eq!(subject(&map(json!({}))).status, Status::Fail);
    }

    #[test]
    fn the_header_needs_typ_alg_and_a_published_kid() {
        let (key, jwks, _) = signed(&json!({}));
        let kid = key.kid().to_owned();
        let custom = Profile::ConvexCustomJwt;
        let good = map(json!({"typ": "JWT", "alg": "ES256", "kid": kid}));
        assert_eq!(header(&good, Some(&jwks), custom).status, Status::Pass);
        let cases = [
            json!({"alg": "ES256", "kid": kid}),
            json!({"typ": "JWT", "alg": "EdDSA", "kid": kid}),
            json!({"typ": "JWT", "alg": "RS256", "kid": kid}),
            json!({"typ": "JWT", "alg": "ES256"}),
            json!({"typ": "JWT", "alg": "ES256", "kid": "unknown"}),
        ];
        for case in cases {
            let outcome = header(&map(case.clone()), Some(&jwks), custom);
            assert_eq!(outcome.status, Status::Fail, "{case}: {}", outcome.detail);
        }
        // ES256 is not among the OIDC provider's algorithms.
        assert_eq!(
            header(&good, Some(&jwks), Profile::ConvexOidc).status,
            Status::Fail
        );
    }

    #[test]
    fn the_signature_is_checked_with_the_published_keys() {
        let claims =
            json!({"iss": ISSUER, "aud": "convex", "sub": "svc:a", "exp": 4_000_000_000_u64});
        let (_, jwks, token) = signed(&claims);
        let claims = map(claims);
        assert_eq!(signature(&token, &claims, &jwks).status, Status::Pass);
        let (_, other_jwks, _) = signed(&json!({}));
        assert_eq!(signature(&token, &claims, &other_jwks).status, Status::Fail);
    }

    #[test]
    fn exposed_claims_name_what_convex_shows() {
        let claims = map(json!({
            "sub": "user:1", "client_id": "w", "scope": "a b",
            "act": {"sub": "svc:w"}, "jti": "x", "iss": ISSUER
        }));
        let outcome = exposed_claims(&claims);
        assert_eq!(outcome.status, Status::Pass);
        for shown in [
            "\"sub\":\"user:1\"",
            "\"client_id\":\"w\"",
            "\"scope\":\"a b\"",
            "\"act\":{",
        ] {
            assert!(outcome.detail.contains(shown), "{}", outcome.detail);
        }
        assert!(!outcome.detail.contains("jti"), "{}", outcome.detail);
    }
}
