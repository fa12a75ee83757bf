//! Differential checks: `svctoken_jwks::Verifier` against `jsonwebtoken::decode`, configured
//! alike (issuer, audience, 5 s leeway, `exp`, `iss` and `aud` required, `nbf` checked, each
//! key used for its own algorithm only, the key chosen by `kid`), on every catalogue token and
//! on thousands of seeded mutations of honest tokens.
//!
//! They must agree, accept or refuse, except where svctoken is deliberately stricter: each
//! such rule is a [`Stricter`] variant, and a disagreement passes only when svctoken refused,
//! `jsonwebtoken` accepted, svctoken's error names the rule, and the token visibly breaks it.
//! A token svctoken accepts and `jsonwebtoken` refuses is always a failure.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};
use svctoken_jwks::{
    Algorithm, Claims, Jwks, MAX_NUMERIC_DATE, MAX_TOKEN_LEN, SigningKey, Validation, Verifier,
};
use svctoken_mint::{Actor, IssuerUrl, MintRequest, Minter, SystemClock};
use svctoken_tests::forge::{
    b64, header_of, signed_text, standard_base64, unb64, with_trailing_bits,
};

use crate::catalogue::{self, Context, TokenCase};
use crate::jose::{splice_first, splice_last};
use crate::world::{UPSTREAM_AUDIENCE, assertion_claims, keys, subject_claims};

/// The leeway both verifiers allow, as Convex does.
const LEEWAY: Duration = Duration::from_secs(5);
/// The issuer identifier of the catalogue's client assertions (no issuer runs here).
const ISSUER: &str = "http://127.0.0.1:9";
/// The trusted upstream's `iss`.
const UPSTREAM: &str = "http://127.0.0.1:10";
/// The seed of the mutations: the same tokens on every run.
const SEED: u64 = 0x5eed_0fa7_7ac5;

/// A rule on which svctoken is deliberately stricter than `jsonwebtoken`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Stricter {
    /// A member name appears twice in the header or the claims, at any depth: readers that
    /// keep the first and readers that keep the last would see different tokens.
    RepeatedMember,
    /// `kid` or `typ` present but not a string (`jsonwebtoken` reads `null` as absent, and
    /// with one key and no `kid` uses that key).
    TypedHeader,
    /// `crit`, `b64`, `cty`, `enc` or `zip` in the header: svctoken acts on none of them, so it
    /// refuses them rather than verify a token as something it is not.
    RefusedHeader,
    /// `exp`, `nbf` or `iat` that is not an integer NumericDate between 0 and 9999-12-31
    /// (`jsonwebtoken` rounds fractions and ignores a mistyped `nbf`; it never reads `iat`).
    IntegerDate,
    /// `iat` after now plus the leeway (`jsonwebtoken` never reads `iat`).
    IssuedInFuture,
    /// `iss` not one string, `sub` or `jti` not a string (`jsonwebtoken` accepts an `iss`
    /// array and reads `sub` only when told to match it, `jti` never).
    TypedClaims,
    /// A client assertion's `aud` is one string, never an array (RFC 7523 as svctoken reads it).
    SingleAudience,
    /// Tokens over 16 KiB.
    TokenSize,
    /// `exp` exactly `now - leeway`: `jsonwebtoken` accepts it (`exp < now - leeway` is
    /// expired), svctoken does not (`now >= exp + leeway` is).
    ExpiryBoundary,
}

impl fmt::Display for Stricter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a verifier is told: the keys, the issuer and audience, and whether the audience
/// must be one string.
struct Setup {
    jwks: Jwks,
    issuer: String,
    audience: String,
    single_audience: bool,
    algorithms: Vec<Algorithm>,
}

impl Setup {
    /// The setup the issuer verifies `context`'s tokens with.
    fn of(context: &Context) -> Setup {
        let k = keys();
        match context {
            Context::Assertion { client, .. } => {
                let key = k
                    .clients()
                    .into_iter()
                    .find(|(id, _)| id == client)
                    .expect("a key client")
                    .1;
                Setup {
                    jwks: Jwks {
                        keys: vec![key.public_jwk().clone()],
                    },
                    issuer: (*client).to_owned(),
                    audience: ISSUER.to_owned(),
                    single_audience: true,
                    algorithms: Algorithm::ALL.to_vec(),
                }
            }
            Context::Subject => Setup {
                jwks: k.upstream_jwks(),
                issuer: UPSTREAM.to_owned(),
                audience: UPSTREAM_AUDIENCE.to_owned(),
                single_audience: false,
                algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            },
        }
    }

    fn ours(&self, token: &str) -> Result<Claims, svctoken_jwks::Error> {
        let mut validation = Validation::new(&self.issuer, &self.audience);
        validation.single_audience = self.single_audience;
        validation.leeway = LEEWAY;
        validation.algorithms = self.algorithms.clone();
        Verifier::new(&self.jwks, validation).verify(token, SystemTime::now())
    }

    /// `jsonwebtoken` as a careful user sets it up for the same keys: the key chosen by the
    /// header's `kid` (or the only key), verified with that key's algorithm only.
    fn theirs(&self, token: &str) -> Result<Map<String, Value>, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let jwk = match (&header.kid, self.jwks.keys.as_slice()) {
            (Some(kid), keys) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
            (None, [only]) => Some(only),
            (None, _) => None,
        }
        .ok_or("no key for the kid")?;
        let alg = jwk.algorithm().map_err(|e| e.to_string())?;
        if !self.algorithms.contains(&alg) {
            return Err("algorithm not allowed".into());
        }
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(
            &Jwks {
                keys: vec![jwk.clone()],
            }
            .to_json(),
        )
        .map(|set: Value| set["keys"][0].clone())
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
        let mut validation = jsonwebtoken::Validation::new(match alg {
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        });
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }

    /// The stricter rules `token` visibly breaks, judged on its leniently decoded segments
    /// (independently of the verifier under test).
    fn broken_rules(&self, token: &str) -> HashSet<Stricter> {
        let mut rules = HashSet::new();
        if token.len() > MAX_TOKEN_LEN {
            rules.insert(Stricter::TokenSize);
        }
        let segments: Vec<Option<Vec<u8>>> = token
            .split('.')
            .map(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .collect();
        if segments
            .iter()
            .take(2)
            .flatten()
            .any(|bytes| has_repeated_member(bytes))
        {
            rules.insert(Stricter::RepeatedMember);
        }
        let lenient = |segment: Option<&Option<Vec<u8>>>| {
            segment
                .and_then(Option::as_ref)
                .and_then(|b| serde_json::from_slice::<Map<String, Value>>(b).ok())
        };
        if let Some(header) = lenient(segments.first()) {
            if ["crit", "b64", "cty", "enc", "zip"]
                .iter()
                .any(|m| header.contains_key(*m))
            {
                rules.insert(Stricter::RefusedHeader);
            }
            if ["kid", "typ"]
                .iter()
                .any(|m| header.get(*m).is_some_and(|v| !v.is_string()))
            {
                rules.insert(Stricter::TypedHeader);
            }
        }
        let Some(claims) = lenient(segments.get(1)) else {
            return rules;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        for date in ["exp", "nbf", "iat"] {
            if claims
                .get(date)
                .is_some_and(|d| d.as_u64().is_none_or(|d| d > MAX_NUMERIC_DATE))
            {
                rules.insert(Stricter::IntegerDate);
            }
        }
        if claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat > now + LEEWAY.as_secs())
        {
            rules.insert(Stricter::IssuedInFuture);
        }
        let not_string = |name: &str| claims.get(name).is_some_and(|v| !v.is_string());
        if not_string("iss") || not_string("sub") || not_string("jti") {
            rules.insert(Stricter::TypedClaims);
        }
        if self.single_audience && claims.get("aud").is_some_and(Value::is_array) {
            rules.insert(Stricter::SingleAudience);
        }
        if claims
            .get("exp")
            .and_then(Value::as_u64)
            .is_some_and(|exp| exp.saturating_add(LEEWAY.as_secs()).abs_diff(now) <= 1)
        {
            rules.insert(Stricter::ExpiryBoundary);
        }
        rules
    }
}

/// The stricter rule an error of svctoken's verifier refuses under, if it is one.
fn rule_of(error: &svctoken_jwks::Error, single_audience: bool) -> Option<Stricter> {
    use svctoken_jwks::Error as E;
    match error {
        E::Malformed(why) if why.contains("unique member names") => Some(Stricter::RepeatedMember),
        E::Malformed(why) if why.contains("16 KiB") => Some(Stricter::TokenSize),
        E::Malformed("kid is not a string" | "typ is not a string") => Some(Stricter::TypedHeader),
        E::UnsupportedCritical | E::UnsupportedHeader(_) => Some(Stricter::RefusedHeader),
        E::InvalidDate(_) => Some(Stricter::IntegerDate),
        E::IssuedInFuture => Some(Stricter::IssuedInFuture),
        E::InvalidClaim("aud") if single_audience => Some(Stricter::SingleAudience),
        E::InvalidClaim("iss" | "sub" | "jti") => Some(Stricter::TypedClaims),
        E::Expired => Some(Stricter::ExpiryBoundary),
        _ => None,
    }
}

/// Whether the JSON text holds an object with a member name twice, at any depth. Written here
/// rather than borrowed from `svctoken_jwks`: the oracle must not be the code under test.
fn has_repeated_member(bytes: &[u8]) -> bool {
    struct Walk;
    impl<'de> DeserializeSeed<'de> for Walk {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(inner) = seq.next_element_seed(Walk)? {
                found |= inner;
            }
            Ok(found)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let (mut names, mut found) = (HashSet::new(), false);
            while let Some(name) = map.next_key::<String>()? {
                found |= !names.insert(name);
                found |= map.next_value_seed(Walk)?;
            }
            Ok(found)
        }
    }
    Walk.deserialize(&mut serde_json::Deserializer::from_slice(bytes))
        .unwrap_or(false)
}

/// The outcome of comparing the two verifiers on a corpus.
#[derive(Default)]
struct Tally {
    tokens: usize,
    both_accept: usize,
    both_refuse: usize,
    /// Disagreements explained by a stricter rule, per rule.
    stricter: std::collections::BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn compare(&mut self, name: &str, token: &str, setup: &Setup) {
        self.tokens += 1;
        match (setup.ours(token), setup.theirs(token)) {
            (Ok(_), Ok(_)) => self.both_accept += 1,
            (Err(_), Err(_)) => self.both_refuse += 1,
            (Ok(_), Err(theirs)) => self.failures.push(format!(
                "{name}: svctoken ACCEPTS what jsonwebtoken refuses ({theirs}): {token}"
            )),
            (Err(ours), Ok(_)) => {
                let broken = setup.broken_rules(token);
                match rule_of(&ours, setup.single_audience) {
                    Some(rule) if broken.contains(&rule) => {
                        *self.stricter.entry(rule.to_string()).or_default() += 1;
                    }
                    claimed => self.failures.push(format!(
                        "{name}: svctoken refuses ({ours}; rule {claimed:?}) what jsonwebtoken accepts, \
                         and the token breaks {broken:?}: {token}"
                    )),
                }
            }
        }
    }

    fn assert_clean(&self, what: &str) {
        eprintln!(
            "{what}: {} tokens, {} accepted by both, {} refused by both, stricter: {:?}",
            self.tokens, self.both_accept, self.both_refuse, self.stricter
        );
        assert!(
            self.failures.is_empty(),
            "{what}: {} disagreements outside the named rules:\n{}",
            self.failures.len(),
            self.failures
                .iter()
                .take(30)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A token of the issuer at [`ISSUER`] (not trusted for exchange), as the catalogue wants one.
fn minted_elsewhere() -> String {
    let minter = Minter::with_key(
        IssuerUrl::parse(ISSUER).expect("url"),
        SigningKey::generate(Algorithm::ES256).expect("key"),
        Arc::new(SystemClock),
    );
    minter
        .mint(&MintRequest::new("user:42", UPSTREAM_AUDIENCE))
        .expect("mint")
        .token
        .secret()
        .to_owned()
}

#[test]
fn the_verifier_agrees_with_jsonwebtoken_on_every_catalogue_token() {
    let mut tally = Tally::default();
    let cases: Vec<TokenCase> = [
        catalogue::assertions(ISSUER),
        catalogue::subject_tokens(UPSTREAM, minted_elsewhere()),
    ]
    .concat();
    for case in &cases {
        tally.compare(&case.name, &case.token, &Setup::of(&case.context));
    }
    tally.assert_clean("catalogue");
    // The catalogue's honest tokens are accepted by both; so the agreement is not vacuous.
    assert!(
        tally.both_accept >= 10,
        "{} accepted by both",
        tally.both_accept
    );
    for rule in [
        "RepeatedMember",
        "TypedHeader",
        "RefusedHeader",
        "IntegerDate",
        "IssuedInFuture",
        "TypedClaims",
        "SingleAudience",
        "TokenSize",
    ] {
        assert!(
            tally.stricter.contains_key(rule),
            "the catalogue exercises {rule}"
        );
    }
}

/// Ways to change one JSON value's type, for "every claim retyped".
fn retypings(original: &Value) -> Vec<Value> {
    let mut out = vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(1e3),
        json!(u64::MAX),
        json!(MAX_NUMERIC_DATE + 1),
        json!(""),
        json!("text"),
        json!([]),
        json!({}),
        json!([original]),
        json!({"value": original}),
    ];
    if let Some(n) = original.as_u64() {
        out.extend([json!(n.to_string()), json!(n as f64 + 0.5), json!(n as f64)]);
    }
    out
}

/// Honest tokens to mutate, with their setups: an assertion and a user token per algorithm.
fn bases() -> Vec<(&'static str, SigningKey, Value, Setup)> {
    let k = keys();
    let reuse = |key: &SigningKey| {
        SigningKey::from_pkcs8_pem(
            &svctoken_jwks::dangerous::export_pkcs8_pem(key).expect("a key held in memory exports"),
        )
        .expect("key")
    };
    let mut out = Vec::new();
    for (client, key) in k.clients() {
        let context = Context::Assertion {
            client,
            client_id: None,
        };
        out.push((
            "assertion",
            reuse(key),
            assertion_claims(client, ISSUER),
            Setup::of(&context),
        ));
    }
    for key in [&k.up_rs, &k.up_es, &k.up_ed] {
        let mut claims = subject_claims(UPSTREAM);
        claims["act"] = json!({"sub": "svc:frontend", "act": {"sub": "svc:gateway"}});
        claims["scope"] = json!("read write");
        out.push((
            "subject token",
            reuse(key),
            claims,
            Setup::of(&Context::Subject),
        ));
    }
    out
}

/// One seeded mutation of the JSON text `text`: a byte replaced, deleted, doubled or a run
/// moved, biased towards the bytes JSON cares about.
fn mutate_json(text: &str, rng: &mut ChaCha8Rng) -> String {
    const INTERESTING: &[u8] = b"{}[]\":,0123456789-.eE+ \\tnul";
    let mut bytes = text.as_bytes().to_vec();
    let at = rng.gen_range(0..bytes.len());
    match rng.gen_range(0..5) {
        0 => bytes[at] = *INTERESTING.choose(rng).expect("non-empty"),
        1 => bytes[at] = rng.gen_range(0x20..0x7f),
        2 => drop(bytes.remove(at)),
        3 => bytes.insert(at, bytes[at]),
        _ => {
            let end = rng.gen_range(at..bytes.len());
            let run: Vec<u8> = bytes[at..=end.min(bytes.len() - 1)].to_vec();
            let to = rng.gen_range(0..bytes.len());
            bytes.splice(to..to, run);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One seeded change of a compact token's text, not re-signed: a bit of one segment's bytes
/// flipped (re-encoded), or a character replaced, deleted or inserted.
fn mutate_compact(token: &str, rng: &mut ChaCha8Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n";
    let mut segments: Vec<String> = token.split('.').map(str::to_owned).collect();
    let i = rng.gen_range(0..segments.len());
    if rng.gen_bool(0.5) {
        let mut bytes = unb64(&segments[i]);
        let at = rng.gen_range(0..bytes.len());
        bytes[at] ^= 1 << rng.gen_range(0..8);
        segments[i] = b64(bytes);
        return segments.join(".");
    }
    let mut chars = segments[i].as_bytes().to_vec();
    let at = rng.gen_range(0..chars.len());
    let c = *CHARS.choose(rng).expect("non-empty");
    match rng.gen_range(0..3) {
        0 => chars[at] = c,
        1 => drop(chars.remove(at)),
        _ => chars.insert(at, c),
    }
    segments[i] = String::from_utf8_lossy(&chars).into_owned();
    segments.join(".")
}

#[test]
fn the_verifier_agrees_with_jsonwebtoken_on_seeded_mutations_of_honest_tokens() {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut tally = Tally::default();
    for (kind, key, claims, setup) in bases() {
        let alg = key.algorithm().as_str();
        let header = header_of(&key);
        let sign = |header: &Value, claims: &Value| {
            signed_text(&key, &header.to_string(), &claims.to_string())
        };
        let honest = sign(&header, &claims);
        tally.compare(&format!("{kind} {alg}: honest"), &honest, &setup);

        // Every claim removed, and retyped.
        for name in claims.as_object().expect("object").keys() {
            let mut without = claims.clone();
            without.as_object_mut().expect("object").remove(name);
            tally.compare(
                &format!("{kind} {alg}: {name} removed"),
                &sign(&header, &without),
                &setup,
            );
            for value in retypings(&claims[name]) {
                let mut retyped = claims.clone();
                retyped[name] = value.clone();
                tally.compare(
                    &format!("{kind} {alg}: {name} = {value}"),
                    &sign(&header, &retyped),
                    &setup,
                );
            }
        }
        // Every claim twice, the copy first and last, with its own value and another.
        let claims_text = claims.to_string();
        for (name, value) in claims.as_object().expect("object") {
            for copy in [value.to_string(), json!("other").to_string()] {
                for text in [
                    splice_first(&claims_text, name, &copy),
                    splice_last(&claims_text, name, &copy),
                ] {
                    let token = signed_text(&key, &header.to_string(), &text);
                    tally.compare(&format!("{kind} {alg}: {name} twice"), &token, &setup);
                }
            }
        }
        // exp at the leeway's edge: refused by svctoken, accepted by jsonwebtoken (unless the
        // clock ticks between the two, when both refuse).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let mut edge = claims.clone();
        edge["exp"] = json!(now - LEEWAY.as_secs());
        tally.compare(
            &format!("{kind} {alg}: exp = now - leeway"),
            &sign(&header, &edge),
            &setup,
        );
        // Header members added or retyped.
        for (name, value) in [
            ("crit", json!(["exp"])),
            ("b64", json!(false)),
            ("cty", json!("JWT")),
            ("zip", json!("DEF")),
            ("enc", json!("A128GCM")),
            ("typ", json!("at+jwt")),
            ("typ", json!(5)),
            ("kid", json!(5)),
            ("kid", Value::Null),
            ("jku", json!("http://127.0.0.1:9/jwks")),
            ("x5u", json!("http://127.0.0.1:9/x")),
            ("x5t", json!("AAAA")),
            ("extra", json!({"nested": [1, 2]})),
            ("alg", json!("none")),
            ("alg", json!("HS256")),
        ] {
            let mut changed = header.clone();
            changed[name] = value.clone();
            tally.compare(
                &format!("{kind} {alg}: header {name} = {value}"),
                &sign(&changed, &claims),
                &setup,
            );
        }
        // Re-encodings of each segment, not re-signed.
        let segments: Vec<&str> = honest.split('.').collect();
        for i in 0..3 {
            let mut variants = vec![standard_base64(segments[i]), format!("{}=", segments[i])];
            variants.extend(with_trailing_bits(segments[i]));
            for variant in variants {
                let mut parts = segments.clone();
                parts[i] = &variant;
                tally.compare(
                    &format!("{kind} {alg}: segment {i} re-encoded"),
                    &parts.join("."),
                    &setup,
                );
            }
        }
        // Seeded mutations: of the compact text (not re-signed), and of the JSON (re-signed).
        let header_text = header.to_string();
        for round in 0..150 {
            tally.compare(
                &format!("{kind} {alg}: compact mutation {round}"),
                &mutate_compact(&honest, &mut rng),
                &setup,
            );
            let token = signed_text(&key, &header_text, &mutate_json(&claims_text, &mut rng));
            tally.compare(
                &format!("{kind} {alg}: claims mutation {round}"),
                &token,
                &setup,
            );
            let token = signed_text(&key, &mutate_json(&header_text, &mut rng), &claims_text);
            tally.compare(
                &format!("{kind} {alg}: header mutation {round}"),
                &token,
                &setup,
            );
        }
    }
    tally.assert_clean("mutations");
    assert!(tally.tokens >= 3000, "{} mutated tokens", tally.tokens);
    assert!(
        tally.both_accept >= 6,
        "the honest bases are accepted by both"
    );
    assert!(
        tally.stricter.contains_key("RepeatedMember"),
        "repeated members are exercised"
    );
}

#[test]
fn tokens_minted_by_svctoken_verify_under_jsonwebtoken() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).expect("key");
        let jwks = Jwks {
            keys: vec![key.public_jwk().clone()],
        };
        let minter = Minter::with_key(
            IssuerUrl::parse(ISSUER).expect("url"),
            key,
            Arc::new(SystemClock),
        );
        let actor = Actor::chain(["svc:worker", "svc:gateway"]);
        let minted = minter
            .mint(
                &MintRequest::new("user:42", "convex")
                    .scope(Some("notes:write"))
                    .actor(actor.as_ref()),
            )
            .expect("mint");
        let setup = Setup {
            jwks,
            issuer: ISSUER.to_owned(),
            audience: "convex".to_owned(),
            single_audience: false,
            algorithms: vec![alg],
        };
        let token = minted.token.secret();
        let theirs = setup
            .theirs(token)
            .unwrap_or_else(|e| panic!("{alg:?}: jsonwebtoken refuses our token: {e}"));
        let ours = setup.ours(token).expect("our verifier accepts it");
        assert_eq!(theirs, ours, "{alg:?}: both read the same claims");
        assert_eq!(theirs["sub"], "user:42");
        assert_eq!(
            theirs["act"],
            json!({"sub": "svc:worker", "act": {"sub": "svc:gateway"}})
        );
    }
}
