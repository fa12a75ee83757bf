//! Writes seed inputs for the fuzz targets (see `fuzz/README.md`): valid tokens of each
//! algorithm signed by the fixture keys for the fixed time of `svctoken_tests::fuzz`, JWKS
//! documents, real token requests, configuration files, Convex values and a real audit chain,
//! each next to near misses.
//!
//! `cargo run -p svctoken-tests --example fuzz_seeds [-- DIR]` writes `DIR/<target>/seed-*`
//! (default `fuzz/corpus`); then minimise the corpus with `cargo fuzz cmin`.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use svctoken_client::{Bytes, Float, Int64};
use svctoken_issuer::audit::{AuditEvent, ChainedFile};
use svctoken_issuer::audit::{AuditSink as _, head_path};
use svctoken_issuer::clients::{SecretHash, jwks_toml_line};
use svctoken_jwks::SigningKey;
use svctoken_mint::Actor;
use svctoken_mint::oauth::{
    CLIENT_ASSERTION_TYPE as ASSERTION_TYPE, JWT_TOKEN_TYPE as JWT_TYPE, TOKEN_EXCHANGE as EXCHANGE,
};
use svctoken_tests::fuzz::{
    AUDIENCE, ISSUER, KEY_CLIENT, NOW, SECRET, SECRET_CLIENT, USER_AUDIENCE, USER_ISSUER,
    fixture_jwks, fixture_keys, forge, run, sign,
};

/// Named inputs of one target.
type Seeds = Vec<(String, Vec<u8>)>;

const FORM: &str = "application/x-www-form-urlencoded";

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    let seeds: [(&str, Seeds); 6] = [
        ("jws", jws()),
        ("jwk", jwk()),
        ("token_form", token_form()),
        ("config", config()),
        ("convex_json", convex_json()),
        ("audit_chain", audit_chain()?),
    ];
    for (target, inputs) in seeds {
        let out = dir.join(target);
        std::fs::create_dir_all(&out)?;
        let mut accepted = 0;
        for (name, data) in &inputs {
            std::fs::write(out.join(format!("seed-{name}")), data)?;
            // Each seed goes through its target once: a seed must not crash it either.
            let outcome = run(target, data).flatten();
            println!("  {target}/seed-{name}: {}", outcome.unwrap_or("refused"));
            accepted += usize::from(outcome.is_some());
        }
        println!(
            "{target}: {} seeds ({accepted} accepted) in {}",
            inputs.len(),
            out.display()
        );
    }
    Ok(())
}

fn text(name: &str, data: impl Into<String>) -> (String, Vec<u8>) {
    (name.to_owned(), data.into().into_bytes())
}

fn keys() -> [(&'static str, &'static SigningKey); 3] {
    let [es, rs, ed] = fixture_keys();
    [("es256", es), ("rs256", rs), ("eddsa", ed)]
}

fn jws() -> Seeds {
    let claims = json!({"iss": ISSUER, "sub": "svc:billing", "aud": AUDIENCE, "iat": NOW,
        "nbf": NOW, "exp": NOW + 300, "jti": "j-1", "scope": "read write"});
    let mut seeds = Vec::new();
    for (alg, key) in keys() {
        seeds.push(text(&format!("valid-{alg}"), sign(key, &claims)));
    }
    let [es, rs, ed] = fixture_keys();
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            if v.is_null() {
                c.as_object_mut().map(|m| m.remove(k));
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let acting = with(json!({"sub": "user:42", "act": {"sub": "svc:billing",
        "act": {"sub": "svc:gateway", "iss": "x"}}, "aud": ["other", AUDIENCE]}));
    seeds.push(text("valid-act-es256", sign(es, &acting)));
    seeds.push(text("claims-valid", claims.to_string()));
    seeds.push(text("claims-act", acting.to_string()));
    seeds.push(text(
        "valid-float-dates-eddsa",
        sign(
            ed,
            &with(json!({"exp": NOW as f64 + 0.5, "iat": NOW as f64})),
        ),
    ));
    for (name, patch) in [
        ("expired", json!({"exp": NOW - 100})),
        ("not-yet", json!({"nbf": NOW + 100})),
        ("future-iat", json!({"iat": NOW + 100})),
        ("wrong-iss", json!({"iss": "https://evil.example.com"})),
        ("no-iss", json!({"iss": null})),
        ("wrong-aud", json!({"aud": "other"})),
        ("aud-number", json!({"aud": 7})),
        ("no-exp", json!({"exp": null})),
        ("exp-string", json!({"exp": "soon"})),
        (
            "deep-act",
            json!({"act": {"sub": "a", "act": {"sub": "b", "act": {"sub": "c",
            "act": {"sub": "d", "act": {"sub": "e"}}}}}}),
        ),
        ("bad-act", json!({"act": {"sub": "a\u{7}"}})),
    ] {
        let claims = with(patch);
        seeds.push(text(name, sign(es, &claims)));
        // The same claims raw: the target signs an input that starts with `{` itself.
        seeds.push(text(&format!("claims-{name}"), claims.to_string()));
    }
    let kid = es.kid();
    let rs_kid = rs.kid();
    for (name, header) in [
        ("alg-none", json!({"alg": "none", "kid": kid})),
        ("alg-hs256", json!({"alg": "HS256", "kid": rs_kid})),
        ("alg-mismatch", json!({"alg": "RS256", "kid": kid})),
        ("no-kid", json!({"alg": "ES256"})),
        ("unknown-kid", json!({"alg": "ES256", "kid": "nope"})),
        ("kid-number", json!({"alg": "ES256", "kid": 1})),
        ("crit", json!({"alg": "ES256", "kid": kid, "crit": ["exp"]})),
        (
            "bad-signature",
            json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
        ),
        (
            "bad-signature-rs256",
            json!({"alg": "RS256", "kid": rs_kid}),
        ),
        (
            "jwk-header",
            json!({"alg": "EdDSA", "kid": "x", "jwk": ed.public_jwk()}),
        ),
    ] {
        seeds.push(text(name, forge(&header, &claims)));
    }
    let valid = sign(rs, &claims);
    let mut parts = valid.split('.');
    let (h, p) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    seeds.extend([
        text("four-parts", format!("{valid}.AA")),
        text("two-parts", format!("{h}.{p}")),
        text("padded", format!("{h}=.{p}.AA")),
        text("header-array", format!("W10.{p}.AA")),
        text("empty", ""),
        text("dots", ".."),
        text(
            "payload-array",
            format!("{h}.{}.AA", URL_SAFE_NO_PAD.encode("[1]")),
        ),
    ]);
    seeds
}

fn jwk() -> Seeds {
    let mut seeds = vec![
        text("fixture-jwks", fixture_jwks().to_json()),
        text("empty-set", r#"{"keys":[]}"#),
        text(
            "rfc7638-rsa",
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        ),
        text(
            "rfc8037-okp",
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        ),
        text(
            "ec-extra-members",
            r#"{"keys":[{"kty":"EC","kid":"k1","use":"sig","alg":"ES256","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","x5t":"abc","ext":true,"key_ops":["verify"],"n":null}]}"#,
        ),
        text(
            "ec-private",
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
        ),
        text(
            "mixed-set",
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"OKP","crv":"X25519","x":"AA"},{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"EC","crv":"P-256","alg":"RS256","x":"AA","y":"AA"},{"kty":"OKP","crv":"Ed25519","x":"!!"}]}"#,
        ),
        text("not-a-key", r#"{"keys":[{"kid":"x"}]}"#),
    ];
    for (alg, key) in keys() {
        let jwk = serde_json::to_string(key.public_jwk()).unwrap_or_default();
        seeds.push(text(&format!("fixture-{alg}"), jwk));
    }
    seeds
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

fn request(name: &str, content_type: &str, authorization: &str, body: &str) -> (String, Vec<u8>) {
    text(name, format!("{content_type}\n{authorization}\n{body}"))
}

fn assertion(key: &SigningKey, jti: &str) -> String {
    sign(
        key,
        &json!({"iss": KEY_CLIENT, "sub": KEY_CLIENT, "aud": ISSUER,
            "jti": jti, "iat": NOW, "exp": NOW + 60}),
    )
}

fn user_token(key: &SigningKey, act: Option<&Actor>) -> String {
    let mut claims = json!({"iss": USER_ISSUER, "sub": "user:42", "aud": USER_AUDIENCE,
        "iat": NOW, "exp": NOW + 600});
    if let Some(act) = act {
        claims["act"] = serde_json::to_value(act).unwrap_or_default();
    }
    sign(key, &claims)
}

fn token_form() -> Seeds {
    let cc = "grant_type=client_credentials";
    let worker = basic(SECRET_CLIENT, SECRET);
    let mut seeds = vec![
        request(
            "basic",
            FORM,
            &worker,
            &format!("{cc}&audience={AUDIENCE}&scope=read"),
        ),
        request(
            "basic-form-encoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            &basic("wor%6Ber", &SECRET.replace('-', "%2D")),
            &format!("{cc}&scope=read+write&audience=api"),
        ),
        request(
            "post",
            FORM,
            "",
            &format!("{cc}&client_id={SECRET_CLIENT}&client_secret={SECRET}&audience=api"),
        ),
        request(
            "subject",
            FORM,
            &worker,
            &format!("{cc}&subject=user%3A42&audience={AUDIENCE}"),
        ),
        request("wrong-secret", FORM, &basic(SECRET_CLIENT, "nope"), cc),
        request("no-auth", FORM, "", cc),
        request("bearer-auth", FORM, "Bearer abc", cc),
        request(
            "json",
            "application/json",
            &worker,
            r#"{"grant_type":"client_credentials"}"#,
        ),
        request("no-content-type", "", &worker, cc),
        request("repeated", FORM, &worker, &format!("{cc}&scope=a&scope=b")),
        request(
            "encoded-names",
            FORM,
            &worker,
            "grant%5Ftype=client_credentials&scop%65=read",
        ),
        request(
            "bad-utf8",
            FORM,
            &worker,
            "grant_type=client_credentials&scope=%FF",
        ),
        request(
            "unknown-grant",
            FORM,
            &worker,
            "grant_type=password&username=a",
        ),
        request("bad-scope", FORM, &worker, &format!("{cc}&scope=admin")),
        request(
            "bad-audience",
            FORM,
            &worker,
            &format!("{cc}&audience=nope"),
        ),
        request("bad-subject", FORM, &worker, &format!("{cc}&subject=admin")),
        request(
            "two-methods",
            FORM,
            &worker,
            &format!("{cc}&client_secret={SECRET}"),
        ),
    ];
    let [es, rs, ed] = fixture_keys();
    for (alg, key) in keys() {
        let body = format!(
            "{cc}&client_assertion_type={ASSERTION_TYPE}&client_assertion={}",
            assertion(key, &format!("seed-{alg}"))
        );
        seeds.push(request(&format!("assertion-{alg}"), FORM, "", &body));
    }
    seeds.push(request(
        "assertion-subject",
        FORM,
        "",
        &format!(
            "{cc}&client_id={KEY_CLIENT}&subject=org%3A7&audience=api&client_assertion_type={}&client_assertion={}",
            ASSERTION_TYPE.replace(':', "%3A"),
            assertion(es, "seed-subject")
        ),
    ));
    seeds.push(request(
        "assertion-and-basic",
        FORM,
        &worker,
        &format!(
            "{cc}&client_assertion_type={ASSERTION_TYPE}&client_assertion={}",
            assertion(ed, "seed-both")
        ),
    ));
    let exchange = |user: &str| {
        format!("grant_type={EXCHANGE}&subject_token_type={JWT_TYPE}&subject_token={user}")
    };
    seeds.push(request(
        "exchange-secret",
        FORM,
        &worker,
        &format!("{}&audience={AUDIENCE}", exchange(&user_token(rs, None))),
    ));
    let prior = Actor::chain(["svc:gateway", "svc:edge"]);
    seeds.push(request(
        "exchange-assertion-act",
        FORM,
        "",
        &format!(
            "{}&client_assertion_type={ASSERTION_TYPE}&client_assertion={}",
            exchange(&user_token(ed, prior.as_ref())),
            assertion(rs, "seed-exchange")
        ),
    ));
    seeds.push(request(
        "exchange-untrusted",
        FORM,
        &worker,
        &exchange(&forge(
            &json!({"alg": "ES256"}),
            &json!({"iss": "https://evil.example.com", "sub": "user:1"}),
        )),
    ));
    seeds.push(request(
        "exchange-actor-token",
        FORM,
        &worker,
        &format!(
            "{}&actor_token=x&actor_token_type={JWT_TYPE}",
            exchange("x.y.z")
        ),
    ));
    seeds
}

fn config() -> Seeds {
    let hash = SecretHash::of(SECRET).to_hex();
    let keys = jwks_toml_line(&fixture_jwks().keys);
    vec![
        text("empty", ""),
        text(
            "readme",
            format!(
                r#"issuer = "https://auth.example.com"   # published and minted exactly as written
listen = "127.0.0.1:8080"
data_dir = "./svctoken-data"
[keys]
algorithm = "ES256"                   # ES256 | RS256 | EdDSA
rotation_period = "24h"
jwks_max_age = "5m"
[[audiences]]
name = "convex"                       # the aud claim; Convex's applicationID
profile = "convex-custom-jwt"         # convex-custom-jwt | convex-oidc | generic
[[clients]]                           # `svctoken clients add --id billing-worker` prints this
id = "billing-worker"
secret_sha256 = "{hash}"
subject = "svc:billing-worker"
audiences = ["convex"]
scopes = ["billing:write"]
max_ttl = "10m"
claims = {{ team = "payments" }}
"#
            ),
        ),
        text(
            "everything",
            format!(
                r#"issuer = "https://auth.example.com/tenant"
listen = "[::1]:9090"
data_dir = "/var/lib/svctoken"
[keys]
algorithm = "RS256"
rsa_bits = 3072
rotation_period = "7days 12h"
jwks_max_age = "1h 30m"
[[audiences]]
name = "convex"
[[audiences]]
name = "oidc"
profile = "convex-oidc"
[[audiences]]
name = "api"
profile = "generic"
[[clients]]
id = "billing.worker@prod"
{keys}act_as = ["user:*", "org_42:*"]
audiences = []
[[clients]]
id = "reports"
secret_sha256 = "{hash}"
scopes = ["read", "write"]
max_ttl = "24h"
[[trusted_issuers]]
issuer = "https://users.example.com"
jwks_uri = "https://users.example.com/.well-known/jwks.json"
audience = "svctoken"
algorithms = ["RS256", "EdDSA"]
[rate_limit]
burst = 10
per_minute = 60
[audit]
file = ""
stdout = true
fail_closed = true
"#
            ),
        ),
        text("eddsa-for-convex", "[keys]\nalgorithm = \"EdDSA\"\n"),
        text(
            "short-rotation",
            "[keys]\nrotation_period = \"5m\"\njwks_max_age = \"5m\"\n",
        ),
        text("trailing-slash", "issuer = \"https://auth.example.com/\"\n"),
        text("unknown-key", "isuer = \"https://auth.example.com\"\n"),
        text("no-audiences", "audiences = []\n"),
        text(
            "padded-audience",
            "[[audiences]]\nname = \" convex\"\n[[audiences]]\nname = \"convex\"\n",
        ),
        text(
            "client-both",
            format!("[[clients]]\nid = \"a\"\nsecret_sha256 = \"{hash}\"\n{keys}"),
        ),
        text(
            "client-bad",
            "[[clients]]\nid = \"a b\"\nsecret_sha256 = \"00\"\nmax_ttl = \"2days\"\nclaims = { sub = \"x\" }\n",
        ),
        text("rate-zero", "[rate_limit]\nburst = 0\n"),
        text("listen-bad", "listen = \"localhost\"\n"),
    ]
}

fn convex_json() -> Seeds {
    let args = json!({
        "id": Int64(-2),
        "big": Int64(i64::MAX),
        "n": 1.5,
        "nan": Float(f64::NAN),
        "neg_zero": Float(-0.0),
        "inf": Float(f64::INFINITY),
        "blob": Bytes(vec![0, 1, 2, 255]),
        "list": [1, "two", null, true, {"nested": [Int64(7)]}],
        "small": 9_007_199_254_740_991_u64,
    });
    vec![
        text("args", args.to_string()),
        text("int64-string", "\"-9223372036854775808\""),
        text("int64-number", "123"),
        text("int64-encoded", r#"{"$integer":"/v////////8="}"#),
        text("int64-short", r#"{"$integer":"AQ=="}"#),
        text("float-encoded", r#"{"x":{"$float":"AAAAAAAA+H8="}}"#),
        text("reserved", r#"{"$set":1}"#),
        text("too-big", r#"{"big":9007199254740993}"#),
        text("negative-big", r#"{"a":[-9007199254740993]}"#),
        text("not-object", "[1,2,3]"),
        text(
            "deep",
            format!("{}{}", "{\"a\":[".repeat(40), "]}".repeat(40)),
        ),
        (
            "raw-bytes".to_owned(),
            vec![0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 2],
        ),
    ]
}

fn audit_chain() -> anyhow::Result<Seeds> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit.log");
    let file = ChainedFile::open(&path)?;
    let events = [
        AuditEvent {
            client_id: Some("billing".into()),
            sub: Some("user:42".into()),
            aud: Some("convex".into()),
            act: Some(Actor::new("svc:billing")),
            scope: Some("read write".into()),
            jti: Some("jti-1".into()),
            kid: Some("k1".into()),
            exp: Some(NOW + 300),
            peer: Some("10.0.0.5:51234".into()),
            ..AuditEvent::issued(NOW)
        },
        AuditEvent {
            client_id: Some("billing".into()),
            reason: Some("unknown client".into()),
            ..AuditEvent::refused(NOW + 1, "invalid_client", "bad secret")
        },
        AuditEvent {
            sub: Some("user:\"quoted\" é ✓".into()),
            ..AuditEvent::refused(NOW + 2, "invalid_request", "repeated parameter scope")
        },
    ];
    file.record_batch(&events)?;
    drop(file);
    let chain = std::fs::read(&path)?;
    let head = std::fs::read(head_path(&path))?;
    let first_line = chain.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let contents = String::from_utf8_lossy(&chain).into_owned();
    let lines: Vec<&str> = contents.lines().collect();
    Ok(vec![
        ("chain".to_owned(), chain.clone()),
        ("one-line".to_owned(), chain[..first_line].to_vec()),
        ("torn".to_owned(), chain[..chain.len() - 10].to_vec()),
        text("edited", contents.replacen("user:42", "user:43", 1)),
        text(
            "reordered",
            format!("{}\n{}\n{}\n", lines[1], lines[0], lines[2]),
        ),
        ("head-file".to_owned(), head),
        text("empty", ""),
        text("not-json", "hello\n"),
        text(
            "wrong-first-prev",
            format!("{{\"seq\":1,\"prev\":\"{}\"}}\n", "a".repeat(64)),
        ),
    ])
}
