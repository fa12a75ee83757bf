//! The `Verifier`: checks compact JWS tokens against a key set, algorithm pinned per key.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::dangerous::json_segment;
use crate::jwk::PublicKey;
use crate::{Algorithm, Error, Jwks, Result};

/// A token's verified claims.
pub type Claims = Map<String, Value>;

/// The longest token [`Verifier::verify`] reads, in bytes: far above any real JWT (a large
/// identity-provider token is a few KiB), far below what could cost real work to parse.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The largest NumericDate accepted: 9999-12-31T23:59:59Z.
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The exact `iss` expected (compared byte for byte).
    pub issuer: String,
    /// Audiences accepted: `aud` (a string or an array) must contain one of them.
    pub audiences: Vec<String>,
    /// When true, `aud` must be one JSON string, never an array: the rule for client
    /// assertions, whose only audience is the authorization server. Default false.
    pub single_audience: bool,
    /// Tolerated clock difference on `exp`, `nbf` and `iat`. Default 5 s (as Convex).
    pub leeway: Duration,
    /// Algorithms accepted at all; a key pinned to another algorithm is not used. Default: all.
    pub algorithms: Vec<Algorithm>,
}

impl Validation {
    /// Also accepts `audience`.
    pub fn or_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Expects `issuer` and `audience`, with the defaults above.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            single_audience: false,
            leeway: Duration::from_secs(5),
            algorithms: Algorithm::ALL.to_vec(),
        }
    }
}

struct VerifyingKey {
    kid: Option<String>,
    alg: Algorithm,
    key: PublicKey,
}

/// Verifies tokens against a fixed key set.
///
/// Each key's algorithm comes from the key (its type and curve, and its `alg` if present), never
/// from the token: a token whose `alg` differs from its key's is refused, so `none`, HMAC and
/// RSA/EC confusion can't happen. `jku`, `x5u`, `jwk` and `x5c` headers are ignored (keys come
/// only from the set); `crit`, `b64`, `cty`, `enc` and `zip` are refused.
///
/// Everything read is held to strict rules (RFC 8725): exactly three base64url segments without
/// padding or stray bits, JSON objects with unique member names at every depth, `exp` required
/// and every date an integer NumericDate in range, `iss`, `sub` and `jti` strings when present,
/// `aud` a string or an array of strings.
pub struct Verifier {
    keys: Vec<VerifyingKey>,
    validation: Validation,
}

impl Verifier {
    /// A verifier over the usable keys of `jwks`; keys of unknown type or with bad material are
    /// skipped (as a remote set may hold keys for other consumers).
    pub fn new(jwks: &Jwks, validation: Validation) -> Verifier {
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let alg = jwk.algorithm().ok()?;
                let key = jwk.public_key().ok()?;
                validation.algorithms.contains(&alg).then(|| VerifyingKey {
                    kid: jwk.kid.clone(),
                    alg,
                    key,
                })
            })
            .collect();
        Verifier { keys, validation }
    }

    /// How many keys this verifier can use.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` at time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Malformed("token longer than 16 KiB"));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or(Error::Malformed("a compact JWS has exactly three segments"))?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(Error::Malformed("a compact JWS has exactly three segments"))?;
        if payload.contains('.') {
            return Err(Error::Malformed("a compact JWS has exactly three segments"));
        }
        let header = json_segment(header)?;
        if header.contains_key("crit") {
            return Err(Error::UnsupportedCritical);
        }
        if let Some(refused) = ["b64", "cty", "enc", "zip"]
            .into_iter()
            .find(|name| header.contains_key(*name))
        {
            return Err(Error::UnsupportedHeader(refused));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(Error::Malformed("header without a string alg"))?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(Error::Malformed("kid is not a string")),
        };
        if header.get("typ").is_some_and(|typ| !typ.is_string()) {
            return Err(Error::Malformed("typ is not a string"));
        }
        let key = self.key_for(kid)?;
        if alg != key.alg.as_str() {
            return Err(Error::AlgorithmMismatch {
                expected: key.alg,
                found: alg.to_owned(),
            });
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Error::Malformed("signature is not base64url"))?;
        key.key
            .verify(key.alg, signing_input.as_bytes(), &signature)?;
        let claims = json_segment(payload)?;
        self.check_claims(&claims, now)?;
        Ok(claims)
    }

    fn key_for(&self, kid: Option<&str>) -> Result<&VerifyingKey> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or_else(|| Error::UnknownKey(kid.map(str::to_owned)))
    }

    fn check_claims(&self, claims: &Claims, now: SystemTime) -> Result<()> {
        let v = &self.validation;
        match claims.get("iss") {
            None => return Err(Error::MissingClaim("iss")),
            Some(Value::String(iss)) if *iss == v.issuer => {}
            Some(Value::String(_)) => return Err(Error::WrongIssuer),
            Some(_) => return Err(Error::InvalidClaim("iss")),
        }
        for name in ["sub", "jti"] {
            if claims.get(name).is_some_and(|value| !value.is_string()) {
                return Err(Error::InvalidClaim(name));
            }
        }
        let accepted = |aud: &str| v.audiences.iter().any(|a| a == aud);
        let audience_ok = match claims.get("aud") {
            None => return Err(Error::MissingClaim("aud")),
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(_)) if v.single_audience => return Err(Error::InvalidClaim("aud")),
            Some(Value::Array(auds)) => {
                let mut any = false;
                for aud in auds {
                    let aud = aud.as_str().ok_or(Error::InvalidClaim("aud"))?;
                    any |= accepted(aud);
                }
                any
            }
            Some(_) => return Err(Error::InvalidClaim("aud")),
        };
        if !audience_ok {
            return Err(Error::WrongAudience);
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let exp = numeric_date(claims, "exp")?.ok_or(Error::MissingClaim("exp"))?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        if now >= exp + v.leeway {
            return Err(Error::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now + v.leeway) {
            return Err(Error::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now + v.leeway) {
            return Err(Error::IssuedInFuture);
        }
        Ok(())
    }
}

/// The date claim `name` as time since the epoch: absent, or an integer NumericDate between 0
/// and [`MAX_NUMERIC_DATE`]. A fraction (`1.5`), an exponent (`1e9`), a negative or a string
/// is refused.
pub fn numeric_date(claims: &Claims, name: &'static str) -> Result<Option<Duration>> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&secs| secs <= MAX_NUMERIC_DATE)
            .map(|secs| Some(Duration::from_secs(secs)))
            .ok_or(Error::InvalidDate(name)),
        Some(_) => Err(Error::InvalidDate(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use serde_json::json;

    const ISS: &str = "https://issuer.test";
    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "svc:a", "aud": "convex", "iat": NOW, "nbf": NOW, "exp": NOW + 300})
    }

    fn setup(alg: Algorithm) -> (SigningKey, Verifier) {
        let key = SigningKey::generate(alg).expect("generate");
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        (key, Verifier::new(&jwks, Validation::new(ISS, "convex")))
    }

    fn forge(header: Value, payload: &Value, signature: &[u8]) -> String {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
        format!(
            "{}.{}.{}",
            enc(&header),
            enc(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn accepts_each_algorithm_and_checks_time_with_leeway() {
        for alg in Algorithm::ALL {
            let (key, verifier) = setup(alg);
            let token = key.sign_jwt(&claims()).expect("sign");
            let got = verifier.verify(&token, at(NOW)).expect("valid");
            assert_eq!(got["sub"], "svc:a");
            assert!(
                verifier.verify(&token, at(NOW + 304)).is_ok(),
                "inside leeway"
            );
            assert!(matches!(
                verifier.verify(&token, at(NOW + 305)),
                Err(Error::Expired)
            ));
            assert!(matches!(
                verifier.verify(&token, at(NOW - 6)),
                Err(Error::NotYetValid)
            ));
        }
    }

    #[test]
    fn claim_checks() {
        let (key, verifier) = setup(Algorithm::ES256);
        let with = |patch: Value| {
            let mut c = claims();
            for (k, v) in patch.as_object().expect("object") {
                if v.is_null() {
                    c.as_object_mut().expect("object").remove(k);
                } else {
                    c[k] = v.clone();
                }
            }
            verifier.verify(&key.sign_jwt(&c).expect("sign"), at(NOW))
        };
        assert!(matches!(
            with(json!({"iss": "https://other"})),
            Err(Error::WrongIssuer)
        ));
        assert!(matches!(
            with(json!({"iss": null})),
            Err(Error::MissingClaim("iss"))
        ));
        assert!(matches!(
            with(json!({"aud": "other"})),
            Err(Error::WrongAudience)
        ));
        assert!(with(json!({"aud": ["other", "convex"]})).is_ok());
        let either = Verifier::new(
            &Jwks {
                keys: vec![key.public_jwk().clone()],
            },
            Validation::new(ISS, "a").or_audience("convex"),
        );
        assert!(
            either
                .verify(&key.sign_jwt(&claims()).expect("sign"), at(NOW))
                .is_ok()
        );
        assert!(matches!(
            with(json!({"aud": null})),
            Err(Error::MissingClaim("aud"))
        ));
        assert!(matches!(
            with(json!({"exp": null})),
            Err(Error::MissingClaim("exp"))
        ));
        for exp in [
            json!("soon"),
            json!(1.8e9),
            json!(NOW as f64 + 300.5),
            json!(-1),
        ] {
            assert!(
                matches!(with(json!({ "exp": exp })), Err(Error::InvalidDate("exp"))),
                "{exp}"
            );
        }
        assert!(matches!(
            with(json!({"exp": MAX_NUMERIC_DATE + 1})),
            Err(Error::InvalidDate("exp"))
        ));
        assert!(with(json!({"exp": MAX_NUMERIC_DATE})).is_ok());
        assert!(matches!(
            with(json!({"nbf": 1.5})),
            Err(Error::InvalidDate("nbf"))
        ));
        assert!(matches!(
            with(json!({"iat": u64::MAX})),
            Err(Error::InvalidDate("iat"))
        ));
        assert!(matches!(
            with(json!({"iss": ["https://issuer.test"]})),
            Err(Error::InvalidClaim("iss"))
        ));
        assert!(matches!(
            with(json!({"sub": 7})),
            Err(Error::InvalidClaim("sub"))
        ));
        assert!(matches!(
            with(json!({"aud": ["convex", 1]})),
            Err(Error::InvalidClaim("aud"))
        ));
        assert!(matches!(
            with(json!({"iat": NOW + 60})),
            Err(Error::IssuedInFuture)
        ));
    }

    #[test]
    fn single_audience_refuses_arrays() {
        let (key, _) = setup(Algorithm::ES256);
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        let mut validation = Validation::new(ISS, "convex");
        validation.single_audience = true;
        let verifier = Verifier::new(&jwks, validation);
        let mut c = claims();
        assert!(
            verifier
                .verify(&key.sign_jwt(&c).expect("sign"), at(NOW))
                .is_ok()
        );
        for aud in [json!(["convex"]), json!(["convex", "other"])] {
            c["aud"] = aud;
            assert!(matches!(
                verifier.verify(&key.sign_jwt(&c).expect("sign"), at(NOW)),
                Err(Error::InvalidClaim("aud"))
            ));
        }
    }

    #[test]
    fn refuses_repeated_members_and_unsupported_headers_even_when_signed() {
        let (key, verifier) = setup(Algorithm::ES256);
        let kid = key.kid().to_owned();
        let signed = |header: &str, payload: &str| {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let sig = key.sign(input.as_bytes()).expect("sign");
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        let header = format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{kid}"}}"#);
        let payload = format!(
            r#"{{"iss":"{ISS}","sub":"svc:a","aud":"convex","exp":{}}}"#,
            NOW + 300
        );
        assert!(verifier.verify(&signed(&header, &payload), at(NOW)).is_ok());
        let twice = payload.replacen(r#""sub":"svc:a""#, r#""sub":"svc:a","sub":"svc:admin""#, 1);
        assert!(matches!(
            verifier.verify(&signed(&header, &twice), at(NOW)),
            Err(Error::Malformed(_))
        ));
        let header_twice = format!(r#"{{"alg":"ES256","alg":"ES256","kid":"{kid}"}}"#);
        assert!(matches!(
            verifier.verify(&signed(&header_twice, &payload), at(NOW)),
            Err(Error::Malformed(_))
        ));
        for (member, value) in [("b64", "false"), ("cty", r#""JWT""#), ("zip", r#""DEF""#)] {
            let header = format!(r#"{{"alg":"ES256","kid":"{kid}","{member}":{value}}}"#);
            assert!(
                matches!(
                    verifier.verify(&signed(&header, &payload), at(NOW)),
                    Err(Error::UnsupportedHeader(_))
                ),
                "{member}"
            );
        }
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(
            verifier.verify(&huge, at(NOW)),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn refuses_none_hmac_and_algorithm_confusion() {
        let (key, verifier) = setup(Algorithm::RS256);
        let kid = key.kid().to_owned();
        let none = forge(json!({"alg": "none", "kid": kid}), &claims(), b"");
        assert!(matches!(
            verifier.verify(&none, at(NOW)),
            Err(Error::AlgorithmMismatch { .. })
        ));
        // HS256 keyed with the public key's bytes: the classic confusion attack.
        let n = key.public_jwk().n.clone().expect("rsa");
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let unsigned = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, n.as_bytes()),
            unsigned.as_bytes(),
        );
        let hs = format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
        assert!(matches!(
            verifier.verify(&hs, at(NOW)),
            Err(Error::AlgorithmMismatch { .. })
        ));
        // A token signed by an ES256 key, relabelled with the RS256 key's kid.
        let other = SigningKey::generate(Algorithm::ES256).expect("generate");
        let sig = other.sign(b"x").expect("sign");
        let es = forge(json!({"alg": "ES256", "kid": kid}), &claims(), &sig);
        assert!(matches!(
            verifier.verify(&es, at(NOW)),
            Err(Error::AlgorithmMismatch { .. })
        ));
    }

    #[test]
    fn refuses_tampering_crit_unknown_kid_and_junk() {
        let (key, verifier) = setup(Algorithm::ES256);
        let token = key.sign_jwt(&claims()).expect("sign");
        let (head, _) = token.rsplit_once('.').expect("three parts");
        let mut forged_claims = claims();
        forged_claims["sub"] = json!("svc:admin");
        let tampered = format!(
            "{}.{}.{}",
            head.split('.').next().expect("header"),
            URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
            token.rsplit('.').next().expect("sig")
        );
        assert!(matches!(
            verifier.verify(&tampered, at(NOW)),
            Err(Error::BadSignature)
        ));

        let kid = key.kid();
        let crit = key.sign(b"unused").expect("sign");
        let crit = forge(
            json!({"alg":"ES256","kid":kid,"crit":["exp"],"exp":1}),
            &claims(),
            &crit,
        );
        assert!(matches!(
            verifier.verify(&crit, at(NOW)),
            Err(Error::UnsupportedCritical)
        ));

        // An embedded `jwk` header must not be trusted: the attacker signs with their own key.
        let attacker = SigningKey::generate(Algorithm::ES256).expect("generate");
        let header = json!({"alg":"ES256","kid":"nope","jwk": attacker.public_jwk()});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let sig = attacker.sign(input.as_bytes()).expect("sign");
        let embedded = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
        assert!(matches!(
            verifier.verify(&embedded, at(NOW)),
            Err(Error::UnknownKey(_))
        ));

        for junk in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            "e30.e30.",
            "W10.e30.AA",
        ] {
            assert!(verifier.verify(junk, at(NOW)).is_err(), "{junk:?}");
        }
    }
}
