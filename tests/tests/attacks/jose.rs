//! Forged tokens that every verifier of svctoken must refuse, whatever it verifies: a client
//! assertion or a subject token. Each family builds its variants from a [`Target`]: the key the
//! verifier trusts and the honest claims it would accept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use svctoken_jwks::{Algorithm, MAX_NUMERIC_DATE, MAX_TOKEN_LEN, SigningKey};
use svctoken_tests::forge::{
    b64, ecdsa_der_signature, header_of, hmac, public_key_encodings, rsa_sign_as, signed,
    signed_text, signing_input, standard_base64, with_signature, with_trailing_bits,
};

use crate::world::now;

/// One forged token and what it tries.
#[derive(Clone, Debug)]
pub(crate) struct Forged {
    /// What the token tries, e.g. `alg none (nOnE), empty signature`.
    pub(crate) name: String,
    /// The token.
    pub(crate) token: String,
}

fn forged(name: impl Into<String>, token: String) -> Forged {
    Forged {
        name: name.into(),
        token,
    }
}

/// What a verifier trusts: `key`, and tokens with claims like `claims()` (fresh on each call).
pub(crate) struct Target<'a> {
    /// The key the verifier trusts for these tokens.
    pub(crate) key: &'a SigningKey,
    /// Honest claims (a fresh `jti` on each call).
    pub(crate) claims: &'a dyn Fn() -> Value,
    /// Keys of other principals: another client's, a stranger's.
    pub(crate) foreign: Vec<&'a SigningKey>,
}

impl Target<'_> {
    /// An honest token: the key's own header, honest claims.
    pub(crate) fn honest(&self) -> String {
        signed(self.key, &header_of(self.key), &(self.claims)())
    }

    /// Honest claims under `header`, signed by the key.
    fn with_header(&self, header: Value) -> String {
        signed(self.key, &header, &(self.claims)())
    }

    /// Honest claims with each of `members` set (or added).
    pub(crate) fn set_claims(&self, members: &[(&str, Value)]) -> Value {
        let mut claims = (self.claims)();
        for (name, value) in members {
            claims[*name] = value.clone();
        }
        claims
    }

    /// Honest claims with each of `members` set (or added), signed by the key under its
    /// own header.
    pub(crate) fn set_all(&self, members: &[(&str, Value)]) -> String {
        signed(self.key, &header_of(self.key), &self.set_claims(members))
    }

    /// Honest claims with `name` set to `value`, signed by the key under its own header.
    pub(crate) fn set(&self, name: &str, value: Value) -> String {
        self.set_all(&[(name, value)])
    }

    /// Honest claims without `names`, signed by the key under its own header.
    pub(crate) fn without(&self, names: &[&str]) -> String {
        let mut claims = (self.claims)();
        let object = claims.as_object_mut().expect("claims are an object");
        for name in names {
            object.remove(*name);
        }
        signed(self.key, &header_of(self.key), &claims)
    }

    /// A payload given as JSON text, signed by the key under its own header.
    fn with_payload_text(&self, payload: &str) -> String {
        signed_text(self.key, &header_of(self.key).to_string(), payload)
    }

    /// Honest claims with member `name` written as the raw JSON text `raw` (a number form
    /// `serde_json` would never write, say), signed by the key.
    pub(crate) fn with_raw_member(&self, name: &str, raw: &str) -> String {
        let mut claims = (self.claims)();
        claims.as_object_mut().expect("object").remove(name);
        self.with_payload_text(&splice_first(&claims.to_string(), name, raw))
    }

    /// The key's header with `kid`.
    fn header_with_kid(&self, kid: Value) -> Value {
        let mut header = header_of(self.key);
        header["kid"] = kid;
        header
    }

    fn kid(&self) -> &str {
        self.key.kid()
    }

    fn alg(&self) -> &'static str {
        self.key.algorithm().as_str()
    }
}

/// `json` (an object's text) with `"name":raw` inserted as its first member.
pub(crate) fn splice_first(json: &str, name: &str, raw: &str) -> String {
    let rest = json.strip_prefix('{').expect("an object");
    let separator = if rest == "}" { "" } else { "," };
    format!("{{\"{name}\":{raw}{separator}{rest}")
}

/// `json` (an object's text) with `"name":raw` appended as its last member.
pub(crate) fn splice_last(json: &str, name: &str, raw: &str) -> String {
    let rest = json.strip_suffix('}').expect("an object");
    format!("{rest},\"{name}\":{raw}}}")
}

/// Every family below, for `target`.
pub(crate) fn all(target: &Target<'_>) -> Vec<Forged> {
    [
        alg_none(target),
        hmac_with_public_key(target),
        algorithm_confusion(target),
        signatures(target),
        kids(target),
        key_headers(target),
        refused_headers(target),
        dates(target),
        typed_claims(target),
        repeated_members(target),
        base64_forms(target),
        shapes(target),
        sizes(target),
    ]
    .concat()
}

/// `alg: none` in four spellings, with an empty signature, a garbage one, and the key's real
/// signature of the same input.
pub(crate) fn alg_none(t: &Target<'_>) -> Vec<Forged> {
    let mut out = Vec::new();
    for spelling in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": spelling, "typ": "JWT", "kid": t.kid()});
        let input = signing_input(&header.to_string(), &(t.claims)().to_string());
        out.push(forged(
            format!("alg {spelling}, empty signature"),
            format!("{input}."),
        ));
        out.push(forged(
            format!("alg {spelling}, garbage signature"),
            with_signature(&input, b"garbage"),
        ));
        let real = t.key.sign(input.as_bytes()).expect("sign");
        out.push(forged(
            format!("alg {spelling}, the key's real signature"),
            with_signature(&input, &real),
        ));
    }
    out
}

/// HS256/384/512 keyed with the trusted public key in each of its encodings.
pub(crate) fn hmac_with_public_key(t: &Target<'_>) -> Vec<Forged> {
    let mut out = Vec::new();
    for alg in ["HS256", "HS384", "HS512"] {
        for (encoding, secret) in public_key_encodings(t.key) {
            let header = json!({"alg": alg, "typ": "JWT", "kid": t.kid()});
            let input = signing_input(&header.to_string(), &(t.claims)().to_string());
            out.push(forged(
                format!("{alg} keyed with the public key ({encoding})"),
                with_signature(&input, &hmac(alg, &secret, &input)),
            ));
        }
    }
    out
}

/// The trusted key's real signature under another algorithm's name; RSA signatures with
/// other paddings and hashes; foreign keys (another type) signing under the trusted `kid`;
/// a lower-case `alg`.
pub(crate) fn algorithm_confusion(t: &Target<'_>) -> Vec<Forged> {
    let mut out = Vec::new();
    for alg in [
        "ES256", "ES384", "ES512", "ES256K", "RS256", "RS512", "PS256", "EdDSA", "Ed25519", "HS256",
    ] {
        if alg != t.alg() {
            out.push(forged(
                format!("{} signature labelled {alg}", t.alg()),
                t.with_header(json!({"alg": alg, "typ": "JWT", "kid": t.kid()})),
            ));
        }
    }
    if t.key.algorithm() == Algorithm::RS256 {
        for alg in ["PS256", "PS384", "PS512", "RS384", "RS512"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": t.kid()});
            let input = signing_input(&header.to_string(), &(t.claims)().to_string());
            out.push(forged(
                format!("real {alg} signature by the trusted RSA key"),
                with_signature(&input, &rsa_sign_as(t.key, alg, &input)),
            ));
        }
    }
    for foreign in &t.foreign {
        let own = header_of(foreign);
        out.push(forged(
            format!(
                "signed by a foreign {} key under its own kid",
                foreign.algorithm().as_str()
            ),
            signed(foreign, &own, &(t.claims)()),
        ));
        let mut under_ours = own;
        under_ours["kid"] = json!(t.kid());
        out.push(forged(
            format!(
                "signed by a foreign {} key under the trusted kid",
                foreign.algorithm().as_str()
            ),
            signed(foreign, &under_ours, &(t.claims)()),
        ));
    }
    out.push(forged(
        "alg in lower case",
        t.with_header(json!({"alg": t.alg().to_lowercase(), "typ": "JWT", "kid": t.kid()})),
    ));
    out.push(forged(
        "alg missing",
        t.with_header(json!({"typ": "JWT", "kid": t.kid()})),
    ));
    out.push(forged(
        "alg not a string",
        t.with_header(json!({"alg": [t.alg()], "typ": "JWT", "kid": t.kid()})),
    ));
    if t.key.algorithm() == Algorithm::ES256 {
        let header = header_of(t.key).to_string();
        let input = signing_input(&header, &(t.claims)().to_string());
        out.push(forged(
            "ES256 signature in ASN.1 DER, not r||s",
            with_signature(&input, &ecdsa_der_signature(t.key, &input)),
        ));
    }
    out
}

/// An honest token with its signature truncated, emptied, padded, doubled, flipped, zeroed,
/// or taken from another token.
pub(crate) fn signatures(t: &Target<'_>) -> Vec<Forged> {
    let honest = t.honest();
    let (input, sig) = honest.rsplit_once('.').expect("three segments");
    let raw = svctoken_tests::forge::unb64(sig);
    let mut flipped = raw.clone();
    flipped[0] ^= 1;
    let mut last_flipped = raw.clone();
    *last_flipped.last_mut().expect("bytes") ^= 0x80;
    let other = t.honest();
    let other_sig = other.rsplit_once('.').expect("three segments").1;
    vec![
        forged("signature empty", format!("{input}.")),
        forged("signature missing", input.to_owned()),
        forged(
            "signature truncated by one byte",
            with_signature(input, &raw[..raw.len() - 1]),
        ),
        forged(
            "signature truncated to half",
            with_signature(input, &raw[..raw.len() / 2]),
        ),
        forged(
            "signature with a zero byte appended",
            with_signature(input, &[raw.as_slice(), &[0]].concat()),
        ),
        forged("signature doubled", format!("{input}.{sig}{sig}")),
        forged(
            "signature's first bit flipped",
            with_signature(input, &flipped),
        ),
        forged(
            "signature's last byte changed",
            with_signature(input, &last_flipped),
        ),
        forged(
            "signature all zeros (r = s = 0)",
            with_signature(input, &vec![0; raw.len()]),
        ),
        forged("signature of another token", format!("{input}.{other_sig}")),
    ]
}

/// The trusted key's signature under `kid`s that name no trusted key: unknown, hostile
/// (path traversal, SQL, very long, NUL), mistyped, another principal's.
#[rustfmt::skip]
pub(crate) fn kids(t: &Target<'_>) -> Vec<Forged> {
    let mut out: Vec<Forged> = [
        ("unknown kid", json!("attacker-key-1")),
        ("kid with path traversal", json!("../../../../etc/passwd")),
        ("kid with a file URL", json!("file:///dev/null")),
        ("kid with SQL", json!("' OR '1'='1' --")),
        ("kid of 8000 characters", json!("k".repeat(8000))),
        ("empty kid", json!("")),
        ("kid with a NUL", json!(format!("{}\u{0}", t.kid()))),
        ("kid in upper case", json!(t.kid().to_uppercase())),
        ("kid a number", json!(5)),
        ("kid null", Value::Null),
        ("kid an array holding the trusted kid", json!([t.kid()])),
        ("kid an object", json!({"kid": t.kid()})),
    ]
    .into_iter()
    .map(|(name, kid)| forged(name, t.with_header(t.header_with_kid(kid))))
    .collect();
    for foreign in &t.foreign {
        out.push(forged(format!("kid of a foreign {} key, signed by the trusted key", foreign.algorithm().as_str()), t.with_header(t.header_with_kid(json!(foreign.kid())))));
    }
    out
}

/// Headers that point at or embed an attacker's key (`jwk`, `jku`, `x5u`, `x5c`), the token
/// signed with that key.
pub(crate) fn key_headers(t: &Target<'_>) -> Vec<Forged> {
    let attacker = t
        .foreign
        .iter()
        .find(|k| k.algorithm() == t.key.algorithm())
        .expect("a foreign key of the trusted key's algorithm");
    let attacker_jwk: Value = serde_json::from_str(
        &svctoken_jwks::Jwks {
            keys: vec![attacker.public_jwk().clone()],
        }
        .to_json(),
    )
    .expect("json");
    let spki = public_key_encodings(attacker)
        .into_iter()
        .find(|(name, _)| *name == "DER SPKI")
        .expect("SPKI")
        .1;
    let base = |extra: (&str, Value), kid: &str| {
        let mut header = json!({"alg": t.alg(), "typ": "JWT", "kid": kid});
        header[extra.0] = extra.1;
        signed(attacker, &header, &(t.claims)())
    };
    let jwk = attacker_jwk["keys"][0].clone();
    vec![
        forged(
            "jwk header embedding the attacker's key, trusted kid",
            base(("jwk", jwk.clone()), t.kid()),
        ),
        forged(
            "jwk header embedding the attacker's key, its own kid",
            base(("jwk", jwk), attacker.kid()),
        ),
        forged(
            "jku header pointing at the attacker's JWKS",
            base(("jku", json!("http://127.0.0.1:9/jwks.json")), t.kid()),
        ),
        forged(
            "x5u header pointing at the attacker's certificate",
            base(("x5u", json!("http://127.0.0.1:9/cert.pem")), t.kid()),
        ),
        forged(
            "x5c header holding the attacker's key",
            base(("x5c", json!([STANDARD.encode(&spki)])), t.kid()),
        ),
        forged(
            "jwk header, no kid",
            signed(
                attacker,
                &json!({"alg": t.alg(), "typ": "JWT", "jwk": attacker_jwk["keys"][0]}),
                &(t.claims)(),
            ),
        ),
    ]
}

/// Honest signatures under header members svctoken refuses to act on: `crit`, `b64`
/// (with an encoded and an unencoded payload), `cty` (a nested JWT), `zip`, `enc`.
#[rustfmt::skip]
pub(crate) fn refused_headers(t: &Target<'_>) -> Vec<Forged> {
    let with = |name: &str, value: Value| {
        let mut header = header_of(t.key);
        header[name] = value;
        header
    };
    let mut out: Vec<Forged> = [
        ("crit [\"exp\"]", with("crit", json!(["exp"]))),
        ("crit [\"b64\"]", with("crit", json!(["b64"]))),
        ("crit []", with("crit", json!([]))),
        ("crit a string", with("crit", json!("exp"))),
        ("b64 false", with("b64", json!(false))),
        ("b64 true", with("b64", json!(true))),
        ("cty JWT", with("cty", json!("JWT"))),
        ("zip DEF", with("zip", json!("DEF"))),
        ("enc A256GCM", with("enc", json!("A256GCM"))),
    ]
    .into_iter()
    .map(|(name, header)| forged(name, t.with_header(header)))
    .collect();
    // RFC 7797: with b64 false the payload travels unencoded and is signed as is.
    let mut header = with("b64", json!(false));
    header["crit"] = json!(["b64"]);
    let payload = (t.claims)().to_string();
    let input = format!("{}.{payload}", b64(header.to_string()));
    let sig = t.key.sign(input.as_bytes()).expect("sign");
    out.push(forged("b64 false with crit, unencoded payload", with_signature(&input, &sig)));
    // A nested JWT: the payload is itself an honest token.
    let inner = t.honest();
    let header = with("cty", json!("JWT")).to_string();
    let input = format!("{}.{}", b64(&header), b64(&inner));
    let sig = t.key.sign(input.as_bytes()).expect("sign");
    out.push(forged("nested JWT (cty JWT, the payload an honest token)", with_signature(&input, &sig)));
    let input = format!("{}.{}", b64(header_of(t.key).to_string()), b64(&inner));
    let sig = t.key.sign(input.as_bytes()).expect("sign");
    out.push(forged("nested JWT without cty", with_signature(&input, &sig)));
    out
}

/// Dates that are missing, mistyped, fractional, negative, out of range, expired or in the
/// future (`exp`, `nbf`, `iat`).
#[rustfmt::skip]
pub(crate) fn dates(t: &Target<'_>) -> Vec<Forged> {
    let now = now();
    let soon = now + 60;
    let mut out = vec![
        forged("exp missing", t.without(&["exp"])),
        forged("expired an hour ago", t.set("exp", json!(now - 3600))),
        forged("expired 30 s ago (past the 5 s leeway)", t.set("exp", json!(now - 30))),
        forged("exp 0", t.set("exp", json!(0))),
        forged("nbf an hour ahead", t.set("nbf", json!(now + 3600))),
        forged("iat an hour ahead", t.set("iat", json!(now + 3600))),
    ];
    for (name, raw) in [
        ("a string", format!("\"{soon}\"")),
        ("1.5e9", "1.5e9".to_owned()),
        ("a fraction", format!("{soon}.5")),
        ("an integer written with .0", format!("{soon}.0")),
        (
            "an integer written with an exponent",
            format!("{}e1", soon / 10),
        ),
        ("negative", "-1".to_owned()),
        ("past the year 9999", (MAX_NUMERIC_DATE + 1).to_string()),
        ("u64::MAX", u64::MAX.to_string()),
        ("beyond u64", "99999999999999999999999".to_owned()),
        ("null", "null".to_owned()),
        ("true", "true".to_owned()),
        ("an array", format!("[{soon}]")),
        ("an object", format!("{{\"at\":{soon}}}")),
    ] {
        out.push(forged(format!("exp {name}"), t.with_raw_member("exp", &raw)));
    }
    let past = now - 60;
    for (name, raw) in [
        ("a string", format!("\"{past}\"")),
        ("a fraction", format!("{past}.5")),
        ("an integer written with .0", format!("{past}.0")),
        ("negative", "-1".to_owned()),
        ("past the year 9999", (MAX_NUMERIC_DATE + 1).to_string()),
        ("null", "null".to_owned()),
    ] {
        for claim in ["nbf", "iat"] {
            out.push(forged(format!("{claim} {name}"), t.with_raw_member(claim, &raw)));
        }
    }
    out
}

/// `iss`, `sub`, `jti` and `aud` mistyped, missing or wrong in ways no context accepts.
#[rustfmt::skip]
pub(crate) fn typed_claims(t: &Target<'_>) -> Vec<Forged> {
    let set = |name, value| t.set(name, value);
    let iss = (t.claims)()["iss"].clone();
    let aud = (t.claims)()["aud"].clone();
    vec![
        forged("iss missing", t.without(&["iss"])),
        forged("iss a number", set("iss", json!(5))),
        forged("iss null", set("iss", Value::Null)),
        forged("iss an array holding the right issuer", set("iss", json!([iss]))),
        forged("iss of a stranger", set("iss", json!("https://attacker.example"))),
        forged("iss with a trailing slash", set("iss", json!(format!("{}/", iss.as_str().unwrap_or_default())))),
        forged("iss in upper case", set("iss", json!(iss.as_str().unwrap_or_default().to_uppercase()))),
        forged("sub a number", set("sub", json!(5))),
        forged("sub null", set("sub", Value::Null)),
        forged("sub an array", set("sub", json!([(t.claims)()["sub"]]))),
        forged("sub an object", set("sub", json!({"id": 1}))),
        forged("jti a number", set("jti", json!(7))),
        forged("jti null", set("jti", Value::Null)),
        forged("jti an object", set("jti", json!({"id": "x"}))),
        forged("aud missing", t.without(&["aud"])),
        forged("aud null", set("aud", Value::Null)),
        forged("aud a number", set("aud", json!(5))),
        forged("aud empty", set("aud", json!(""))),
        forged("aud an empty array", set("aud", json!([]))),
        forged("aud an array of a number", set("aud", json!([5]))),
        forged("aud an array with a number", set("aud", json!([aud, 5]))),
        forged("aud an object", set("aud", json!({"aud": aud}))),
        forged("aud of a stranger", set("aud", json!("https://attacker.example"))),
        forged("aud in upper case", set("aud", json!(aud.as_str().unwrap_or_default().to_uppercase()))),
    ]
}

/// Honest signatures over JSON with a member name repeated: `sub`, `exp`, `iss`, `aud`, a
/// nested one, and in the header `alg`, `kid` and `typ`.
#[rustfmt::skip]
pub(crate) fn repeated_members(t: &Target<'_>) -> Vec<Forged> {
    let claims = (t.claims)();
    let json = claims.to_string();
    let sub = &claims["sub"];
    let exp = claims["exp"].as_u64().unwrap_or_default();
    let header = header_of(t.key).to_string();
    let signed_header = |header: String| signed_text(t.key, &header, &json);
    vec![
        forged("sub twice, an admin first", t.with_payload_text(&splice_first(&json, "sub", "\"admin\""))),
        forged("sub twice, an admin last", t.with_payload_text(&splice_last(&json, "sub", "\"admin\""))),
        forged("sub twice, the same value", t.with_payload_text(&splice_last(&json, "sub", &sub.to_string()))),
        forged("exp twice, a far one last", t.with_payload_text(&splice_last(&json, "exp", &(exp + 86_400 * 365).to_string()))),
        forged("exp twice, an expired one first", t.with_payload_text(&splice_first(&json, "exp", "1"))),
        forged("iss twice", t.with_payload_text(&splice_last(&json, "iss", "\"https://attacker.example\""))),
        forged("aud twice", t.with_payload_text(&splice_last(&json, "aud", "\"https://attacker.example\""))),
        forged("jti twice", t.with_payload_text(&splice_last(&json, "jti", "\"again\""))),
        forged("a member repeated inside a nested object", t.with_payload_text(&splice_last(&json, "ext", "{\"role\":\"user\",\"role\":\"admin\"}"))),
        forged("a member repeated inside an array's object", t.with_payload_text(&splice_last(&json, "ext", "[{\"a\":1,\"a\":2}]"))),
        forged("alg twice, none first", signed_header(splice_first(&header, "alg", "\"none\""))),
        forged("alg twice, none last", signed_header(splice_last(&header, "alg", "\"none\""))),
        forged("alg twice, the same value", signed_header(splice_last(&header, "alg", &format!("\"{}\"", t.alg())))),
        forged("kid twice", signed_header(splice_first(&header, "kid", "\"attacker-key-1\""))),
        forged("typ twice", signed_header(splice_last(&header, "typ", "\"JWT\""))),
    ]
}

/// An honest token re-encoded: `=` padding, the standard alphabet, non-zero trailing bits,
/// whitespace and line breaks, in each segment.
pub(crate) fn base64_forms(t: &Target<'_>) -> Vec<Forged> {
    // The standard alphabet differs only where a segment holds `-` or `_`: sign until the
    // signature does (a random ES256 signature almost always does; EdDSA and RS256 are
    // deterministic, so the claims' fresh jti varies it).
    let honest = (0..64)
        .map(|_| t.honest())
        .find(|token| {
            let sig = token.rsplit('.').next().unwrap_or_default();
            sig.contains(['-', '_']) && !sig.len().is_multiple_of(4)
        })
        .expect("a signature with - or _ and unused bits within 64 tries");
    let segments: Vec<&str> = honest.split('.').collect();
    let mut out = Vec::new();
    let rebuilt = |i: usize, segment: &str| {
        let mut parts: Vec<&str> = segments.clone();
        parts[i] = segment;
        parts.join(".")
    };
    for (i, name) in ["header", "payload", "signature"].into_iter().enumerate() {
        let segment = segments[i];
        if !segment.len().is_multiple_of(4) {
            let padding = "=".repeat(4 - segment.len() % 4);
            out.push(forged(
                format!("{name} with = padding"),
                rebuilt(i, &format!("{segment}{padding}")),
            ));
        }
        if segment.contains(['-', '_']) || !segment.len().is_multiple_of(4) {
            out.push(forged(
                format!("{name} in standard base64 (+/ and padding)"),
                rebuilt(i, &standard_base64(segment)),
            ));
        }
        if let Some(changed) = with_trailing_bits(segment) {
            out.push(forged(
                format!("{name} with non-zero trailing bits"),
                rebuilt(i, &changed),
            ));
        }
        let middle = segment.len() / 2;
        for (what, inserted) in [
            ("a space", " "),
            ("a tab", "\t"),
            ("a line break", "\n"),
            ("a CRLF", "\r\n"),
        ] {
            out.push(forged(
                format!("{name} with {what} inside"),
                rebuilt(
                    i,
                    &format!("{}{inserted}{}", &segment[..middle], &segment[middle..]),
                ),
            ));
        }
    }
    out.push(forged("leading space", format!(" {honest}")));
    out.push(forged("trailing line break", format!("{honest}\n")));
    out
}

/// Wrong numbers of segments, JWE-shaped tokens, empty ones.
#[rustfmt::skip]
pub(crate) fn shapes(t: &Target<'_>) -> Vec<Forged> {
    let honest = t.honest();
    let (input, _) = honest.rsplit_once('.').expect("three segments");
    let jwe_header =
        b64(json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": t.kid()}).to_string());
    vec![
        forged("JWE-shaped: five segments", format!("{jwe_header}.{}.{}.{}.{}", b64([1; 256]), b64([2; 12]), b64(b"ciphertext"), b64([3; 16]))),
        forged("an honest token with a fourth segment", format!("{honest}.{}", b64("x"))),
        forged("an honest token with a trailing dot", format!("{honest}.")),
        forged("an honest token with a leading dot", format!(".{honest}")),
        forged("an honest token twice, dot-joined", format!("{honest}.{honest}")),
        forged("two segments", input.to_owned()),
        forged("one segment", b64((t.claims)().to_string())),
        forged("empty", String::new()),
        forged("only dots", "..".to_owned()),
        forged("not base64 at all", "not.a.jwt".to_owned()),
        forged("header not JSON", format!("{}.{}.{}", b64("alg=ES256"), b64((t.claims)().to_string()), b64([0; 64]))),
        forged("payload a JSON array", signed_text(t.key, &header_of(t.key).to_string(), "[1,2,3]")),
        forged("payload a JSON string", signed_text(t.key, &header_of(t.key).to_string(), "\"sub\"")),
        forged("payload with trailing text after the object", signed_text(t.key, &header_of(t.key).to_string(), &format!("{} x", (t.claims)()))),
        forged("payload with a lone surrogate escape", signed_text(t.key, &header_of(t.key).to_string(), &splice_last(&(t.claims)().to_string(), "x", "\"\\ud800\""))),
    ]
}

/// Tokens over the 16 KiB limit (honestly signed), and deeply nested JSON.
#[rustfmt::skip]
pub(crate) fn sizes(t: &Target<'_>) -> Vec<Forged> {
    let padded =
        |bytes: usize| t.set("pad", json!("p".repeat(bytes)));
    let deep = |depth: usize| {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        t.with_payload_text(&splice_last(&(t.claims)().to_string(), "deep", &nested))
    };
    let over = padded(MAX_TOKEN_LEN);
    assert!(over.len() > MAX_TOKEN_LEN);
    vec![
        forged("an honest token just over 16 KiB", over),
        forged("an honest token of 40 KiB", padded(30 * 1024)),
        forged("JSON nested 200 deep", deep(200)),
        forged("JSON nested 5000 deep", deep(5000)),
    ]
}
